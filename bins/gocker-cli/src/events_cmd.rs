//! `gocker events`: docker's events from the state store's journal
//! ([`gocker_runtime::events`]): the recorded ones within `--since`/`--until`, then, without
//! `--until`, the new ones as they come until interrupted. `--filter type=|event=|container=|
//! image=|volume=` (values of one key OR, different keys AND) and `--format` (a Go template over
//! docker's JSON message; `json` or `{{json .}}`: one JSON line each).
//!
//! Recording is [`gocker_runtime::events`]: the runtime records create, start, die, rename and
//! destroy; the CLI kill, stop, exec_*, images and volumes.

use std::io::Write;
use std::time::Duration;

use gocker_runtime::events::{self, Event};
use gocker_runtime::state::StateStore;

use crate::cli::EventsArgs;
use crate::failure::{report, usage, Failure};

/// The parsed `--filter`s.
#[derive(Debug, Default)]
struct Filters {
    types: Vec<String>,
    events: Vec<String>,
    containers: Vec<String>,
    images: Vec<String>,
    volumes: Vec<String>,
}

const HELP: &str =
    "supported: type=container|image|volume, event=ACTION, container=NAME|ID, image=NAME, volume=NAME";

impl Filters {
    fn parse(flags: &[String]) -> Result<Filters, Failure> {
        let mut f = Filters::default();
        for raw in flags {
            let Some((k, v)) = raw.split_once('=') else {
                return Err(usage(format!(
                    "--filter {raw:?}: bad format of filter (expected name=value); {HELP}"
                )));
            };
            let list = match k {
                "type" => {
                    if !["container", "image", "volume", "network"].contains(&v) {
                        return Err(usage(format!(
                            "--filter {raw:?}: unknown type {v:?} (container, image, volume, network)"
                        )));
                    }
                    &mut f.types
                }
                "event" => &mut f.events,
                "container" => &mut f.containers,
                "image" => &mut f.images,
                "volume" => &mut f.volumes,
                _ => {
                    return Err(usage(format!(
                        "--filter {raw:?}: invalid filter '{k}'; {HELP}"
                    )))
                }
            };
            list.push(v.to_owned());
        }
        Ok(f)
    }

    fn matches(&self, e: &Event) -> bool {
        let any =
            |l: &Vec<String>, hit: &dyn Fn(&str) -> bool| l.is_empty() || l.iter().any(|v| hit(v));
        let attr = |k: &str| e.actor.attributes.get(k).map(String::as_str).unwrap_or("");
        // docker's exec events carry the command after a colon: `event=exec_start` matches.
        let action = e.action.split(':').next().unwrap_or("");
        any(&self.types, &|v| e.kind == v)
            && any(&self.events, &|v| action == v || e.action == v)
            && any(&self.containers, &|v| {
                e.kind == "container"
                    && (attr("name") == v || (!v.is_empty() && e.actor.id.starts_with(v)))
            })
            && any(&self.images, &|v| {
                (e.kind == "image" && (e.actor.id == v || attr("name") == v))
                    || (e.kind == "container" && attr("image") == v)
            })
            && any(&self.volumes, &|v| e.kind == "volume" && e.actor.id == v)
    }
}

/// docker's default line: `TIME TYPE ACTION ID (k=v, ...)`.
fn plain(e: &Event) -> String {
    let t = e.time_nano;
    let secs = i64::try_from(t.div_euclid(1_000_000_000)).unwrap_or(0);
    let nanos = u32::try_from(t.rem_euclid(1_000_000_000)).unwrap_or(0);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    let when = time::OffsetDateTime::from_unix_timestamp(secs)
        .map(|d| d + time::Duration::nanoseconds(i64::from(nanos)))
        .ok()
        .and_then(|d| d.format(&f).ok())
        .unwrap_or_default();
    let attrs: Vec<String> = e
        .actor
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if attrs.is_empty() {
        format!("{when} {} {} {}", e.kind, e.action, e.actor.id)
    } else {
        format!(
            "{when} {} {} {} ({})",
            e.kind,
            e.action,
            e.actor.id,
            attrs.join(", ")
        )
    }
}

fn time_flag(flag: &str, v: Option<&str>, now: i128) -> Result<Option<i128>, Failure> {
    v.map(|v| {
        crate::timeflags::parse_instant(v, now).ok_or_else(|| {
            usage(format!(
                "{flag} {v:?}: not a timestamp (RFC 3339 such as 2026-12-01T10:00:00Z, or Unix seconds) nor a duration (10m, 1h30m)"
            ))
        })
    })
    .transpose()
}

fn events_inner(a: &EventsArgs) -> Result<(), Failure> {
    let now = crate::timeflags::now_ns();
    let since = time_flag("--since", a.since.as_deref(), now)?;
    let until = time_flag("--until", a.until.as_deref(), now)?;
    let filters = Filters::parse(&a.filters)?;
    let format = crate::format::Format::parse(a.format.as_deref())?;
    let store = StateStore::open(StateStore::default_root())?;
    // Following starts before the past is read, so that nothing falls in between.
    let mut follower = events::Follower::new(store.root());
    let within = |e: &Event| {
        since.is_none_or(|s| e.time_nano >= s) && until.is_none_or(|u| e.time_nano <= u)
    };
    let print = |list: Vec<Event>| -> Result<(), Failure> {
        let shown: Vec<Event> = list
            .into_iter()
            .filter(|e| within(e) && filters.matches(e))
            .collect();
        if shown.is_empty() {
            return Ok(());
        }
        let text = if format.is_default() {
            shown.iter().map(|e| plain(e) + "\n").collect()
        } else {
            let values: Vec<serde_json::Value> = shown
                .iter()
                .map(|e| serde_json::to_value(e).unwrap_or_default())
                .collect();
            format.render(&values, &[])?.unwrap_or_default()
        };
        let mut out = std::io::stdout().lock();
        crate::failure::wrote(out.write_all(text.as_bytes()).and_then(|()| out.flush()));
        Ok(())
    };
    // docker: without --since, only what happens from now on.
    if since.is_some() {
        let past: Vec<Event> = events::read_all(store.root())
            .into_iter()
            .filter(|e| e.time_nano <= now)
            .collect();
        print(past)?;
    }
    if until.is_some_and(|u| u <= now) {
        return Ok(());
    }
    // Leave quietly when the reader of our output goes away (`| head -1`), also while idle.
    crate::failure::exit_when_stdout_closes();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let fresh = follower.poll();
        let later = crate::timeflags::now_ns();
        print(fresh)?;
        if until.is_some_and(|u| later > u) {
            return Ok(());
        }
    }
}

pub(crate) fn events(a: EventsArgs) -> i32 {
    match events_inner(&a) {
        Ok(()) => 0,
        Err(f) => report(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gocker_runtime::events::Kind;

    fn ev(kind: Kind, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        Event::new(kind, action, id, attrs)
    }

    #[test]
    fn filters_or_within_a_key_and_across_keys() {
        let start = ev(
            Kind::Container,
            "start",
            "abc123",
            &[("name", "web"), ("image", "alpine")],
        );
        let exec = ev(
            Kind::Container,
            "exec_start: sh -c true",
            "abc123",
            &[("name", "web")],
        );
        let vol = ev(Kind::Volume, "create", "data", &[]);
        let f = Filters::parse(&[
            "type=container".into(),
            "event=start".into(),
            "event=exec_start".into(),
        ])
        .ok()
        .unwrap();
        assert!(f.matches(&start) && f.matches(&exec) && !f.matches(&vol));
        let f = Filters::parse(&["container=abc".into()]).ok().unwrap();
        assert!(f.matches(&start) && !f.matches(&vol));
        let f = Filters::parse(&["container=web".into(), "image=alpine".into()])
            .ok()
            .unwrap();
        assert!(f.matches(&start) && !f.matches(&exec));
        let f = Filters::parse(&["volume=data".into()]).ok().unwrap();
        assert!(f.matches(&vol) && !f.matches(&start));
        for bad in ["type=bogus", "nope=1", "event"] {
            assert_eq!(
                Filters::parse(&[bad.into()]).err().map(|e| e.code),
                Some(125),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_plain_line_is_dockers() {
        let mut e = ev(
            Kind::Container,
            "die",
            "abc",
            &[("name", "web"), ("exitCode", "0")],
        );
        e.time_nano = 1_764_583_200_123_456_789;
        assert_eq!(
            plain(&e),
            "2025-12-01T10:00:00.123456789Z container die abc (exitCode=0, name=web)"
        );
    }
}
