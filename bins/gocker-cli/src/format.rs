//! docker's `--format`: a Go template (text/template, through the `gtmpl` crate) evaluated over
//! each object a command lists, docker's `table` prefix (a header row and aligned columns) and
//! `json` (one JSON object a line).
//!
//! As docker's formatter: the literal two-character sequences `\t` and `\n` in the flag become a
//! tab and a newline, blanks around the template are trimmed, each object's output ends with a
//! newline, and the functions are docker's: `json`, `join`, `split`, `upper`, `lower`, `title`,
//! `pad`, `truncate`, beside Go's own (`printf`, `index`, `len`, `eq`, `and`, `or`, `not`, ...).
//! Objects are docker's structs (an unknown field is an error) and maps (`Labels`, `Ports`, ...:
//! an unknown key prints `<no value>`). `{{.Label "KEY"}}` of `ps` (a method with an argument in
//! docker) is `index` over the labels.

use std::collections::HashMap;

use gtmpl::{Context, Func, FuncError, Template, Value};

/// A `--format` that cannot be used: names the template and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FormatError {
    #[error("--format {template:?}: template parsing error: {reason}")]
    Parse { template: String, reason: String },
    #[error("--format {template:?}: template: {reason}")]
    Exec { template: String, reason: String },
}

impl From<FormatError> for crate::failure::Failure {
    fn from(e: FormatError) -> Self {
        crate::failure::usage(e.to_string())
    }
}

/// What `--format` asked for.
pub(crate) enum Format {
    /// No flag, or `table` alone: the command's own table.
    Default,
    /// `json`: each object as one line of JSON (`{{json .}}`).
    Json,
    /// A template; `table` when it came with docker's `table` prefix (a header row first, the
    /// columns aligned on the tabs).
    Template {
        source: String,
        /// The template as parsed (tabs and newlines replaced, `.Label` rewritten).
        body: String,
        template: Box<Template>,
        table: bool,
    },
}

/// docker's functions beside Go's builtins (docker's cli/templates).
const FUNCS: &[(&str, Func)] = &[
    ("json", json),
    ("join", join),
    ("split", split),
    ("upper", upper),
    ("lower", lower),
    ("title", title),
    ("pad", pad),
    ("truncate", truncate),
    ("dockerLabel", docker_label),
];

/// The same names for the header row: each gives back its first argument, as docker's
/// HeaderFunctions, so `{{upper .Names}}` heads its column with NAMES.
const HEADER_FUNCS: &[(&str, Func)] = &[
    ("json", first),
    ("join", first),
    ("split", first),
    ("upper", first),
    ("lower", first),
    ("title", first),
    ("pad", first),
    ("truncate", first),
    ("dockerLabel", label_header),
];

/// The keys whose JSON objects are Go maps in docker's types (an unknown key is `<no value>`, not
/// an error); every other object is a struct.
const MAP_KEYS: &[&str] = &[
    "Labels",
    "LabelMap",
    "Options",
    "Ports",
    "ExposedPorts",
    "Volumes",
    "Networks",
    "annotations",
    "Status",
    "Attributes",
];

impl Format {
    /// Parses a `--format` value (`None`: no flag).
    pub(crate) fn parse(flag: Option<&str>) -> Result<Format, FormatError> {
        let Some(raw) = flag else {
            return Ok(Format::Default);
        };
        let trimmed = raw.trim();
        match trimmed {
            "" | "table" => return Ok(Format::Default),
            "json" => return Ok(Format::Json),
            _ => {}
        }
        let (table, body) = match trimmed.strip_prefix("table") {
            Some(rest) => (true, rest.trim()),
            None => (false, trimmed),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let body = label_calls(&body);
        let mut t = Template::default();
        t.add_funcs(FUNCS);
        t.parse(body.as_str()).map_err(|e| FormatError::Parse {
            template: raw.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Format::Template {
            source: raw.to_owned(),
            body,
            template: Box::new(t),
            table,
        })
    }

    /// Whether the command prints its own table.
    pub(crate) fn is_default(&self) -> bool {
        matches!(self, Format::Default)
    }

    /// The text for `rows` (docker's objects as JSON); `header` maps each field name to its
    /// column title (the header row of a `table` template). `None` for [`Format::Default`].
    pub(crate) fn render(
        &self,
        rows: &[serde_json::Value],
        header: &[(&str, &str)],
    ) -> Result<Option<String>, FormatError> {
        match self {
            Format::Default => Ok(None),
            Format::Json => {
                let mut out = String::new();
                for r in rows {
                    out.push_str(&serde_json::to_string(r).unwrap_or_default());
                    out.push('\n');
                }
                Ok(Some(out))
            }
            Format::Template {
                source,
                body,
                template,
                table,
            } => {
                let exec = |reason: String| FormatError::Exec {
                    template: source.clone(),
                    reason,
                };
                let mut out = String::new();
                for r in rows {
                    let text = template
                        .render(&Context::from(to_value(r, false)))
                        .map_err(|e| exec(exec_reason(&e)))?;
                    out.push_str(&text);
                    out.push('\n');
                }
                if !*table {
                    return Ok(Some(out));
                }
                let mut head = Template::default();
                head.add_funcs(HEADER_FUNCS);
                head.parse(body.as_str()).map_err(|e| exec(e.to_string()))?;
                let titles: HashMap<String, Value> = header
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
                    .collect();
                // A field without a title (or one of a row's objects) heads its column blank.
                let head = head
                    .render(&Context::from(Value::Map(titles)))
                    .unwrap_or_default()
                    .replace("<no value>", "");
                let text = format!("{head}\n{out}");
                let lines: Vec<Vec<String>> = text
                    .trim_end_matches('\n')
                    .split('\n')
                    .map(|l| l.split('\t').map(str::to_owned).collect())
                    .collect();
                Ok(Some(crate::table::render(&lines)))
            }
        }
    }
}

/// docker's `{{.Label "KEY"}}` (a method of ps's rows) as `{{dockerLabel .LabelMap "KEY"}}`:
/// gtmpl's fields take no arguments.
fn label_calls(t: &str) -> String {
    let re = regex::Regex::new(r#"\.Label\s+("(?:[^"\\]|\\.)*"|`[^`]*`)"#).expect("regex");
    re.replace_all(t, "(dockerLabel .LabelMap $1)").into_owned()
}

/// The value of a label, or "" without it (docker's `Label`).
fn docker_label(args: &[Value]) -> Result<Value, FuncError> {
    let key = string_arg(args, 1, "Label")?;
    Ok(match arg(args, 0, "Label")? {
        Value::Map(m) | Value::Object(m) => m.get(&key).cloned().unwrap_or(Value::from("")),
        _ => Value::from(""),
    })
}

/// `Label` in the header row: LABEL.
fn label_header(_: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from("LABEL"))
}

/// gtmpl's execution error, without the dump of the whole object it may end with.
fn exec_reason(e: &gtmpl::error::ExecError) -> String {
    let s = e.to_string();
    match s.find(" for {") {
        Some(i) if s.starts_with("no field ") => {
            format!("can't evaluate field {}", &s["no field ".len()..i])
        }
        _ => s,
    }
}

/// JSON as a template value: objects are structs, or maps under [`MAP_KEYS`].
fn to_value(v: &serde_json::Value, map: bool) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(|x| to_value(x, false)).collect()),
        serde_json::Value::Object(o) => {
            let m = o
                .iter()
                .map(|(k, x)| (k.clone(), to_value(x, MAP_KEYS.contains(&k.as_str()))))
                .collect();
            if map {
                Value::Map(m)
            } else {
                Value::Object(m)
            }
        }
    }
}

/// A template value as JSON (for `json`): maps and structs as objects (keys sorted), `<no
/// value>` as null.
fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                serde_json::json!(u)
            } else if let Some(i) = n.as_i64() {
                serde_json::json!(i)
            } else {
                serde_json::json!(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Value::Object(m) | Value::Map(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), to_json(x)))
                .collect::<serde_json::Map<_, _>>(),
        ),
    }
}

fn arg<'a>(args: &'a [Value], i: usize, f: &str) -> Result<&'a Value, FuncError> {
    args.get(i).ok_or_else(|| {
        FuncError::Generic(format!(
            "wrong number of args for {f}: want {}, got {}",
            i + 1,
            args.len()
        ))
    })
}

fn string_arg(args: &[Value], i: usize, f: &str) -> Result<String, FuncError> {
    match arg(args, i, f)? {
        Value::String(s) => Ok(s.clone()),
        other => Err(FuncError::Generic(format!(
            "{f}: argument {} is not a string: {other}",
            i + 1
        ))),
    }
}

fn int_arg(args: &[Value], i: usize, f: &str) -> Result<usize, FuncError> {
    match arg(args, i, f)? {
        Value::Number(n) => n
            .as_u64()
            .and_then(|u| usize::try_from(u).ok())
            .ok_or_else(|| FuncError::Generic(format!("{f}: {n} is not a count"))),
        other => Err(FuncError::Generic(format!(
            "{f}: argument {} is not a number: {other}",
            i + 1
        ))),
    }
}

fn json(args: &[Value]) -> Result<Value, FuncError> {
    let v = arg(args, 0, "json")?;
    Ok(Value::String(
        serde_json::to_string(&to_json(v)).unwrap_or_default(),
    ))
}

fn join(args: &[Value]) -> Result<Value, FuncError> {
    let sep = string_arg(args, 1, "join")?;
    match arg(args, 0, "join")? {
        Value::Array(a) => Ok(Value::String(
            a.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(&sep),
        )),
        other => Err(FuncError::Generic(format!("join: {other} is not a list"))),
    }
}

fn split(args: &[Value]) -> Result<Value, FuncError> {
    let s = string_arg(args, 0, "split")?;
    let sep = string_arg(args, 1, "split")?;
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        s.split(sep.as_str())
            .map(|p| Value::String(p.to_owned()))
            .collect()
    };
    Ok(Value::Array(parts))
}

fn upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(string_arg(args, 0, "upper")?.to_uppercase()))
}

fn lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(string_arg(args, 0, "lower")?.to_lowercase()))
}

/// Go's strings.Title: the first letter of each word upper case.
fn title(args: &[Value]) -> Result<Value, FuncError> {
    let s = string_arg(args, 0, "title")?;
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    Ok(Value::String(out))
}

/// docker's `pad S LEFT RIGHT`: blanks before and after.
fn pad(args: &[Value]) -> Result<Value, FuncError> {
    let s = string_arg(args, 0, "pad")?;
    let l = int_arg(args, 1, "pad")?;
    let r = int_arg(args, 2, "pad")?;
    Ok(Value::String(format!(
        "{}{s}{}",
        " ".repeat(l.min(4096)),
        " ".repeat(r.min(4096))
    )))
}

/// docker's `truncate S N`: the first N characters.
fn truncate(args: &[Value]) -> Result<Value, FuncError> {
    let s = string_arg(args, 0, "truncate")?;
    let n = int_arg(args, 1, "truncate")?;
    Ok(Value::String(s.chars().take(n).collect()))
}

fn first(args: &[Value]) -> Result<Value, FuncError> {
    Ok(args.first().cloned().unwrap_or(Value::NoValue))
}

/// docker's HumanDuration (go-units): "Less than a second", "About a minute", "3 hours", ...
pub(crate) fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 1 {
        return "Less than a second".into();
    }
    if s == 1 {
        return "1 second".into();
    }
    if s < 60 {
        return format!("{s} seconds");
    }
    let minutes = s / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    // Go rounds to the nearest hour here (half away from zero).
    let hours = (s + 1800) / 3600;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", s / 3600 / 24 / 365)
}

/// Go's `time.Time.String()` of Unix seconds, in UTC: `2026-12-01 10:00:00 +0000 UTC`.
pub(crate) fn go_time_string(secs: i64) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&f).ok())
        .map(|t| format!("{t} +0000 UTC"))
        .unwrap_or_default()
}

/// docker's Ellipsis: at most `max` characters, the last of them `…` when cut.
pub(crate) fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fmt(t: &str, rows: &[serde_json::Value], header: &[(&str, &str)]) -> String {
        Format::parse(Some(t))
            .map_err(|e| e.to_string())
            .and_then(|f| f.render(rows, header).map_err(|e| e.to_string()))
            .map(Option::unwrap_or_default)
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn fields_tabs_and_nested_fields() {
        let rows = [
            json!({"Names": "web", "Status": "Up 3 seconds"}),
            json!({"Names": "db", "Status": "Exited (0) 2 minutes ago"}),
        ];
        assert_eq!(
            fmt(r"{{.Names}}\t{{.Status}}", &rows, &[]),
            "web\tUp 3 seconds\ndb\tExited (0) 2 minutes ago\n"
        );
        let st = [json!({"State": {"Pid": 4242, "Running": true, "ExitCode": 0}})];
        assert_eq!(fmt("{{.State.Pid}}", &st, &[]), "4242\n");
        assert_eq!(fmt("{{.State.Running}}", &st, &[]), "true\n");
        assert_eq!(
            fmt("{{json .State}}", &st, &[]),
            "{\"ExitCode\":0,\"Pid\":4242,\"Running\":true}\n"
        );
        assert_eq!(
            fmt("{{if .State.Running}}up{{else}}down{{end}}", &st, &[]),
            "up\n"
        );
        assert_eq!(fmt("  {{.State.Pid}}  ", &st, &[]), "4242\n");
    }

    #[test]
    fn table_prefix_prints_the_header_and_aligns() {
        let rows = [
            json!({"Names": "web", "Image": "alpine"}),
            json!({"Names": "a-long-container-name", "Image": "busybox"}),
        ];
        let h = [("Names", "NAMES"), ("Image", "IMAGE")];
        assert_eq!(
            fmt(r"table {{.Names}}\t{{.Image}}", &rows, &h),
            "NAMES                   IMAGE\nweb                     alpine\na-long-container-name   busybox\n"
        );
        // Header functions give their argument back.
        assert_eq!(
            fmt(r"table {{upper .Names}}", &rows[..1], &h),
            "NAMES\nWEB\n"
        );
        assert_eq!(fmt("table", &rows, &h), "", "`table` alone is the default");
        assert!(Format::parse(Some("table")).unwrap().is_default());
    }

    #[test]
    fn json_and_docker_functions() {
        let rows = [json!({"Names": "web", "Labels": {"a": "1"}, "Mounts": ["x", "y"]})];
        assert_eq!(
            fmt("json", &rows, &[]),
            "{\"Labels\":{\"a\":\"1\"},\"Mounts\":[\"x\",\"y\"],\"Names\":\"web\"}\n"
        );
        assert_eq!(fmt("{{json .Labels}}", &rows, &[]), "{\"a\":\"1\"}\n");
        assert_eq!(fmt(r#"{{join .Mounts ","}}"#, &rows, &[]), "x,y\n");
        assert_eq!(
            fmt("{{upper .Names}} {{title .Names}}", &rows, &[]),
            "WEB Web\n"
        );
        assert_eq!(fmt("{{lower (upper .Names)}}", &rows, &[]), "web\n");
        assert_eq!(fmt(r#"{{printf "%s-%d" .Names 3}}"#, &rows, &[]), "web-3\n");
        assert_eq!(
            fmt(r#"{{range .Mounts}}<{{.}}>{{end}}"#, &rows, &[]),
            "<x><y>\n"
        );
        assert_eq!(fmt(r#"{{index .Labels "a"}}"#, &rows, &[]), "1\n");
        assert_eq!(fmt("{{.Labels.nope}}", &rows, &[]), "<no value>\n");
        assert_eq!(
            fmt(r#"{{range split "a:b" ":"}}{{.}};{{end}}"#, &rows, &[]),
            "a;b;\n"
        );
        assert_eq!(fmt(r#"{{truncate .Names 2}}"#, &rows, &[]), "we\n");
        let lab = [json!({"LabelMap": {"tier": "front"}})];
        assert_eq!(fmt(r#"{{.Label "tier"}}"#, &lab, &[]), "front\n");
        assert_eq!(fmt(r#"{{.Label "nope"}}|"#, &lab, &[]), "|\n");
        assert_eq!(
            fmt(r#"table {{.Label "tier"}}"#, &lab, &[]),
            "LABEL\nfront\n"
        );
    }

    #[test]
    fn bad_templates_name_the_template_and_the_error() {
        for bad in ["{{.Names", "{{end}}", "{{nosuchfunc .}}", "{{else}}"] {
            let out = fmt(bad, &[json!({"Names": "x"})], &[]);
            assert!(out.starts_with("ERR --format"), "{bad}: {out}");
            assert!(out.contains(&format!("{bad:?}")), "{bad}: {out}");
        }
        // An unknown field of a struct is an error, as docker's.
        let out = fmt("{{.Nope}}", &[json!({"Names": "x"})], &[]);
        assert_eq!(
            out,
            "ERR --format \"{{.Nope}}\": template: can't evaluate field Nope"
        );
        let out = fmt(r#"{{join .Names ","}}"#, &[json!({"Names": "x"})], &[]);
        assert!(out.starts_with("ERR"), "{out}");
    }

    #[test]
    fn docker_durations_and_times() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(60), "About a minute");
        assert_eq!(human_duration(119), "About a minute");
        assert_eq!(human_duration(120), "2 minutes");
        assert_eq!(human_duration(3599), "59 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(2 * 3600), "2 hours");
        assert_eq!(human_duration(47 * 3600), "47 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(15 * 86400), "2 weeks");
        assert_eq!(human_duration(90 * 86400), "3 months");
        assert_eq!(human_duration(800 * 86400), "2 years");
        // go-units' boundaries: hours are rounded (half away from zero), the rest truncated.
        assert_eq!(human_duration(-5), "Less than a second");
        assert_eq!(human_duration(2), "2 seconds");
        assert_eq!(human_duration(5399), "About an hour");
        assert_eq!(human_duration(5400), "2 hours");
        assert_eq!(human_duration(47 * 3600 + 1799), "47 hours");
        assert_eq!(human_duration(47 * 3600 + 1800), "2 days");
        assert_eq!(human_duration(13 * 86400 + 23 * 3600), "13 days");
        assert_eq!(human_duration(14 * 86400), "2 weeks");
        assert_eq!(human_duration(59 * 86400), "8 weeks");
        assert_eq!(human_duration(60 * 86400), "2 months");
        assert_eq!(human_duration(729 * 86400), "24 months");
        assert_eq!(human_duration(730 * 86400), "2 years");
        assert_eq!(human_duration(3 * 365 * 86400 + 86399), "3 years");
        assert_eq!(go_time_string(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(ellipsis("abcdef", 4), "abc…");
        assert_eq!(ellipsis("abc", 4), "abc");
    }
}
