//! Running an OCI bundle (a directory with `config.json` and a rootfs) through the whole lifecycle.

use std::io::Read;
use std::path::Path;

use gocker_idmap::IdMaps;
use oci_spec::runtime::Spec;
use serde::de::DeserializeOwned;

use crate::state::StateStore;
use crate::{Container, ContainerConfig, ExitStatus, Result, RuntimeError, SpawnMode};

/// The largest JSON input accepted: config.json, `gocker-oci exec --process`, `update -r`
/// (16 MiB). runc has no bound; a config.json is a few KiB, a few hundred with a big seccomp
/// profile.
pub const MAX_JSON_BYTES: u64 = 16 << 20;

pub use crate::error::InputError;

/// Reads the JSON file `path` (at most [`MAX_JSON_BYTES`], a regular file: a FIFO, a directory
/// or a device is refused without being read) and deserialises it; errors name the file and, for
/// a bad value, the field's JSON path and the value.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let input = |problem| RuntimeError::Input {
        path: path.to_owned(),
        problem,
    };
    let bytes = read_bounded(path).map_err(input)?;
    parse_json(&bytes).map_err(input)
}

/// Loads an OCI runtime spec (`config.json`) as [`read_json`] does: instead of oci-spec's
/// `Spec::load`, whose errors are only "serde failed" or "io operation failed".
pub fn load_spec(path: &Path) -> Result<Spec> {
    read_json(path)
}

/// Reads at most `limit` bytes of `r` (standard input for `update -r -`), refusing more.
pub fn read_bounded_from(r: impl Read, limit: u64) -> std::result::Result<Vec<u8>, InputError> {
    let mut buf = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(InputError::Io)?;
    if buf.len() as u64 > limit {
        return Err(InputError::TooLong { limit });
    }
    Ok(buf)
}

fn file_kind(t: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let kind = if t.is_file() {
        return None;
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    };
    Some(kind)
}

/// The whole of the regular file `path` (symlinks followed, as runc does), at most
/// [`MAX_JSON_BYTES`]. A FIFO, directory or device is refused by its type before it is opened;
/// the check is repeated on the opened file (non-blocking, so a FIFO swapped in meanwhile does
/// not hang), which is what counts.
pub fn read_bounded(path: &Path) -> std::result::Result<Vec<u8>, InputError> {
    use std::os::unix::fs::OpenOptionsExt;
    let check = |md: &std::fs::Metadata| {
        if let Some(kind) = file_kind(md.file_type()) {
            return Err(InputError::NotRegular(kind));
        }
        if md.len() > MAX_JSON_BYTES {
            return Err(InputError::TooLarge {
                size: md.len(),
                limit: MAX_JSON_BYTES,
            });
        }
        Ok(())
    };
    check(&std::fs::metadata(path).map_err(InputError::Io)?)?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(InputError::Io)?;
    check(&f.metadata().map_err(InputError::Io)?)?;
    // The file may still grow after the check: read_bounded_from stops one byte past the limit.
    read_bounded_from(f, MAX_JSON_BYTES)
}

/// Deserialises JSON text, naming the JSON path of the field a type or value error is in.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, InputError> {
    let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Err(InputError::Empty);
    };
    // Every input is an object (serde would take an array for a struct, field by field).
    if *first != b'{' {
        let found = match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(serde_json::Value::Array(_)) => "an array",
            Ok(serde_json::Value::String(_)) => "a string",
            Ok(serde_json::Value::Number(_)) => "a number",
            Ok(serde_json::Value::Bool(_)) => "a boolean",
            Ok(_) => "null",
            Err(e) => return Err(json_error(None, e)),
        };
        return Err(InputError::NotAnObject(found));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = json_path(e.path());
        json_error((!field.is_empty()).then_some(field), e.into_inner())
    })?;
    // Trailing text after the value.
    de.end().map_err(|e| json_error(None, e))?;
    Ok(v)
}

/// `process.user.uid`, `mounts[2].options`: the path without the unknown segments (`?`, a key
/// not read yet) that serde_path_to_error puts at its end when the JSON breaks inside an object.
fn json_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let known = segments
        .iter()
        .rposition(|s| !matches!(s, Segment::Unknown))
        .map_or(0, |i| i + 1);
    let mut out = String::new();
    for s in &segments[..known] {
        if !out.is_empty() && !matches!(s, Segment::Seq { .. }) {
            out.push('.');
        }
        out.push_str(&s.to_string());
    }
    out
}

fn json_error(field: Option<String>, e: serde_json::Error) -> InputError {
    let (line, column) = (e.line(), e.column());
    let text = e.to_string();
    // serde_json appends " at line L column C"; it is given once, in parentheses.
    let message = text
        .strip_suffix(&format!(" at line {line} column {column}"))
        .unwrap_or(&text)
        .to_owned();
    match field {
        Some(field) => InputError::Field {
            field,
            message,
            line,
            column,
        },
        None => InputError::Syntax {
            message,
            line,
            column,
        },
    }
}

/// The major version of the OCI runtime spec this runtime implements.
pub const OCI_VERSION_MAJOR: u64 = 1;

/// `ociVersion` must be a SemVer 2.0.0 version (runtime spec, config.md) of major version 1. A
/// later minor version than the newest one gocker knows (`features`' `ociVersionMax`) is
/// accepted: the spec keeps compatibility within a major version, and a field gocker does not
/// know is either ignored as the spec asks or, where gocker knows it and cannot honour it,
/// refused by name.
pub fn check_oci_version(v: &str) -> std::result::Result<(), String> {
    let (core, build) = match v.split_once('+') {
        Some((c, b)) => (c, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match core.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (core, None),
    };
    let numeric = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
    };
    let ident =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 || !parts.iter().all(|p| numeric(p)) {
        return Err("not a SemVer 2.0.0 version (MAJOR.MINOR.PATCH, e.g. \"1.2.0\")".into());
    }
    if let Some(pre) = pre {
        let ok = pre
            .split('.')
            .all(|p| ident(p) && (!p.bytes().all(|b| b.is_ascii_digit()) || numeric(p)));
        if !ok {
            return Err(format!("pre-release {pre:?} is not SemVer 2.0.0"));
        }
    }
    if let Some(build) = build {
        if !build.split('.').all(ident) {
            return Err(format!("build metadata {build:?} is not SemVer 2.0.0"));
        }
    }
    let major: u64 = parts[0]
        .parse()
        .map_err(|_| format!("major version {} is too large", parts[0]))?;
    if major != OCI_VERSION_MAJOR {
        return Err(format!(
            "gocker implements version {OCI_VERSION_MAJOR} of the OCI runtime spec (1.0.0 to 1.x)"
        ));
    }
    Ok(())
}

/// Loads `bundle/config.json` ([`load_spec`]), making `root.path` absolute and checking
/// `ociVersion` ([`check_oci_version`]).
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let mut spec = load_spec(&path)?;
    // Required by the runtime spec; an empty path would make the bundle directory itself the
    // container's root (mount points created in it).
    let required = |field| RuntimeError::Input {
        path: path.clone(),
        problem: InputError::Required(field),
    };
    if spec.version().is_empty() {
        return Err(required("ociVersion"));
    }
    check_oci_version(spec.version()).map_err(|reason| {
        RuntimeError::Config(format!(
            "{}: ociVersion: invalid value {:?}: {reason}",
            path.display(),
            spec.version()
        ))
    })?;
    match spec.root() {
        None => return Err(required("root")),
        Some(r) if r.path().as_os_str().is_empty() => return Err(required("root.path")),
        Some(_) => {}
    }
    if let Some(root) = spec.root_mut().as_mut() {
        if root.path().is_relative() {
            let abs = std::path::absolute(bundle.join(root.path()))
                .map_err(|e| RuntimeError::Config(format!("{}: {e}", bundle.display())))?;
            root.set_path(abs);
        }
    }
    Ok(spec)
}

/// The id maps for `spec`: its own `uidMappings`/`gidMappings` when present, otherwise Gocker's
/// defaults for the caller (rootful range, or the rootless user's own id and subordinate range).
pub fn idmaps_for(spec: &Spec) -> Result<IdMaps> {
    let root = rustix::process::geteuid().is_root();
    if let Some(l) = spec.linux() {
        if let (Some(u), Some(g)) = (l.uid_mappings(), l.gid_mappings()) {
            if !u.is_empty() && !g.is_empty() {
                return Ok(IdMaps::from_oci(u, g, root));
            }
        }
    }
    if root {
        return Ok(IdMaps::rootful(
            gocker_idmap::ROOTFUL_DEFAULT_BASE,
            gocker_idmap::ROOTFUL_DEFAULT_SIZE,
        )?);
    }
    let uid = rustix::process::geteuid().as_raw();
    let name = std::env::var("USER").unwrap_or_default();
    Ok(IdMaps::rootless(
        uid,
        rustix::process::getegid().as_raw(),
        &name,
    )?)
}

/// create → start → wait → delete for the bundle; returns the payload's exit status.
pub fn run(bundle: &Path, id: &str, spawn: SpawnMode) -> Result<ExitStatus> {
    let spec = load(bundle)?;
    let mut cfg = ContainerConfig::new(id, spec.clone(), idmaps_for(&spec)?);
    cfg.spawn = spawn;
    cfg.forward_signals = true;
    let store = StateStore::open(StateStore::default_root())?;
    let mut c = Container::create(cfg, store, id, true)?;
    c.start()?;
    let status = c.wait()?;
    c.delete()?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The error for `Spec::default()` (a valid spec) edited by `edit`, pretty-printed.
    fn spec_error(edit: impl FnOnce(&mut Value)) -> String {
        let mut v = serde_json::to_value(Spec::default()).unwrap();
        edit(&mut v);
        let text = serde_json::to_vec_pretty(&v).unwrap();
        parse_json::<Spec>(&text).unwrap_err().to_string()
    }

    #[track_caller]
    fn contains_all(msg: &str, parts: &[&str]) {
        for p in parts {
            assert!(msg.contains(p), "{p:?} is not in {msg:?}");
        }
    }

    #[test]
    fn the_unedited_default_spec_parses() {
        let text = serde_json::to_vec_pretty(&Spec::default()).unwrap();
        let spec: Spec = parse_json(&text).unwrap();
        assert_eq!(spec, Spec::default());
    }

    #[test]
    fn a_negative_uid_names_file_field_value_and_position() {
        let dir = std::env::temp_dir().join(format!("gocker-bundle-uid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");
        std::fs::write(
            &path,
            "{\n  \"ociVersion\": \"1.2.0\",\n  \"process\": {\n    \"cwd\": \"/\",\n    \"user\": {\"uid\": -1, \"gid\": 0}\n  }\n}\n",
        )
        .unwrap();
        let e = load_spec(&path).unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            e.to_string(),
            format!(
                "{}: process.user.uid: invalid value: integer `-1`, expected u32 (line 5, column 22)",
                path.display()
            )
        );
        match e {
            RuntimeError::Input {
                problem: InputError::Field { field, line, .. },
                ..
            } => assert_eq!((field.as_str(), line), ("process.user.uid", 5)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            RuntimeError::Input {
                path: path.clone(),
                problem: InputError::Empty
            }
            .exit_code(),
            125
        );
    }

    #[test]
    fn type_and_value_errors_name_the_json_path_and_the_value() {
        let e = spec_error(|v| v["process"]["user"]["gid"] = "zero".into());
        contains_all(
            &e,
            &["process.user.gid: ", "invalid type: string \"zero\"", "u32"],
        );

        let e = spec_error(|v| v["process"]["args"] = "sh -c true".into());
        contains_all(&e, &["process.args: ", "string \"sh -c true\"", "sequence"]);

        let e = spec_error(|v| v["process"]["cwd"] = 7.into());
        contains_all(&e, &["process.cwd: ", "integer `7`"]);

        let e = spec_error(|v| v["process"]["env"] = json!({"A": "B"}));
        contains_all(&e, &["process.env: ", "invalid type: map", "sequence"]);

        let e = spec_error(|v| v["linux"]["namespaces"][1]["type"] = "bogus".into());
        contains_all(&e, &["linux.namespaces[1].type: ", "bogus"]);

        let e = spec_error(|v| v["mounts"] = json!({"destination": "/proc"}));
        contains_all(&e, &["mounts: ", "invalid type: map", "sequence"]);

        let e = spec_error(|v| v["mounts"][2]["options"] = "ro".into());
        contains_all(&e, &["mounts[2].options: ", "string \"ro\""]);

        let e = spec_error(|v| {
            v["linux"]["resources"] = json!({"memory": {"limit": "1G"}});
        });
        contains_all(
            &e,
            &["linux.resources.memory.limit: ", "string \"1G\"", "i64"],
        );

        let e = spec_error(|v| {
            v["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": "many", "soft": 1}]);
        });
        contains_all(&e, &["process.rlimits[0].hard: ", "string \"many\"", "u64"]);

        let e = spec_error(|v| v["hooks"] = json!({"prestart": [{"path": 1}]}));
        contains_all(&e, &["hooks.prestart[0].path: ", "integer `1`"]);

        let e = spec_error(|v| v["ociVersion"] = 1.into());
        contains_all(&e, &["ociVersion: ", "integer `1`", "string"]);

        let e = spec_error(|v| v["process"]["user"]["additionalGids"] = json!([0, -5]));
        contains_all(&e, &["process.user.additionalGids[1]: ", "integer `-5`"]);
    }

    #[test]
    fn truncated_empty_and_trailing_text_are_told_apart() {
        let text = serde_json::to_string_pretty(&Spec::default()).unwrap();
        let cut = &text[..text.find("\"user\"").unwrap() + 14];
        let e = parse_json::<Spec>(cut.as_bytes()).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(&e, InputError::Field { field, .. } if field.starts_with("process.user")),
            "{msg}"
        );
        contains_all(&msg, &["EOF while parsing", "(line "]);

        // Broken inside an object, before a key: the path stops at the object.
        let e = parse_json::<Spec>(br#"{"process": {"user": {"uid": 0,"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "process.user: EOF while parsing a value (line 1, column 31)"
        );

        for empty in ["", " \n\t"] {
            let e = parse_json::<Spec>(empty.as_bytes()).unwrap_err();
            assert!(matches!(e, InputError::Empty), "{e}");
            assert_eq!(e.to_string(), "empty, expected a JSON object");
        }

        let e = parse_json::<Spec>(b"{} x").unwrap_err();
        assert_eq!(e.to_string(), "trailing characters (line 1, column 4)");
        let e = parse_json::<Spec>(b"{ this is not json").unwrap_err();
        assert!(matches!(e, InputError::Syntax { line: 1, .. }), "{e}");
        let e = parse_json::<Spec>(b"[1, 2]").unwrap_err();
        assert_eq!(e.to_string(), "expected a JSON object, found an array");
        let e = parse_json::<Spec>(b" null").unwrap_err();
        assert_eq!(e.to_string(), "expected a JSON object, found null");
        let e = parse_json::<Spec>(b"\"x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "EOF while parsing a string (line 1, column 2)"
        );
    }

    #[test]
    fn oci_versions_are_semver_of_major_version_1() {
        for good in [
            "1.0.0",
            "1.2.0",
            "1.0.2-dev",
            "1.1.0-rc.1",
            "1.3.0",
            "1.0.0+build.7",
            "1.0.0-0.3.7",
        ] {
            assert_eq!(check_oci_version(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("invalid", "SemVer"),
            ("1.0", "SemVer"),
            ("1.0.0.0", "SemVer"),
            ("01.0.0", "SemVer"),
            ("1.0.0-", "pre-release"),
            ("1.0.0-01", "pre-release"),
            ("1.0.0+", "build metadata"),
            ("v1.0.0", "SemVer"),
            ("2.0.0", "version 1 of the OCI runtime spec"),
            ("0.9.0", "version 1 of the OCI runtime spec"),
        ] {
            let e = check_oci_version(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_bundle_with_an_invalid_oci_version_is_refused_naming_it() {
        let dir = std::env::temp_dir().join(format!("gocker-bundle-ver-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.json");
        let mut v = serde_json::to_value(Spec::default()).unwrap();
        v["root"] = json!({"path": "rootfs"});
        v["ociVersion"] = "invalid".into();
        std::fs::write(&config, v.to_string()).unwrap();
        let e = load(&dir).unwrap_err().to_string();
        assert!(
            e.ends_with(&format!(
                "{}: ociVersion: invalid value \"invalid\": not a SemVer 2.0.0 version (MAJOR.MINOR.PATCH, e.g. \"1.2.0\")",
                config.display()
            )),
            "{e}"
        );
        v.as_object_mut().unwrap().remove("ociVersion");
        std::fs::write(&config, v.to_string()).unwrap();
        let e = load(&dir).unwrap_err().to_string();
        assert!(
            e.ends_with("ociVersion: required, and missing or empty"),
            "{e}"
        );
        v["ociVersion"] = "1.2.0".into();
        std::fs::write(&config, v.to_string()).unwrap();
        assert!(load(&dir).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_bundle_without_root_path_is_refused() {
        let dir = std::env::temp_dir().join(format!("gocker-bundle-root-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.json");
        let mut v = serde_json::to_value(Spec::default()).unwrap();
        v["root"] = json!({"readonly": true});
        std::fs::write(&config, v.to_string()).unwrap();
        let e = load(&dir).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: root.path: required, and missing or empty",
                config.display()
            )
        );
        v.as_object_mut().unwrap().remove("root");
        std::fs::write(&config, v.to_string()).unwrap();
        let e = load(&dir).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("{}: root: required, and missing or empty", config.display())
        );
        v["root"] = json!({"path": "rootfs"});
        std::fs::write(&config, v.to_string()).unwrap();
        let spec = load(&dir).unwrap();
        assert_eq!(spec.root().as_ref().unwrap().path(), &dir.join("rootfs"));
        // Nothing was created in the bundle: only config.json is there.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["config.json"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn special_and_oversized_files_are_refused_without_reading() {
        let dir = std::env::temp_dir().join(format!("gocker-bundle-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a-directory")).unwrap();
        let fifo = dir.join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let big = dir.join("big.json");
        // Sparse: no 16 MiB written.
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_JSON_BYTES + 1)
            .unwrap();
        let zero_link = dir.join("zero.json");
        std::os::unix::fs::symlink("/dev/zero", &zero_link).unwrap();

        let t = std::time::Instant::now();
        let err = |p: &Path| load_spec(p).unwrap_err().to_string();
        let e = err(&fifo);
        assert_eq!(
            e,
            format!("{}: not a regular file but a FIFO", fifo.display())
        );
        let e = err(&dir.join("a-directory"));
        contains_all(&e, &["a-directory: not a regular file but a directory"]);
        let e = err(&zero_link);
        contains_all(
            &e,
            &["zero.json: not a regular file but a character device"],
        );
        let e = err(&big);
        assert_eq!(
            e,
            format!(
                "{}: too large: 16777217 bytes, the limit is 16777216 bytes (16 MiB)",
                big.display()
            )
        );
        let e = err(&dir.join("missing.json"));
        contains_all(&e, &["missing.json: No such file or directory"]);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );

        // A stream longer than the bound (standard input of `update -r -`) is cut off at it.
        let e = read_bounded_from(std::io::repeat(b' '), 1000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "too large: more than the limit of 1000 bytes"
        );
        assert_eq!(read_bounded_from(&b"{}"[..], 2).unwrap(), b"{}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
