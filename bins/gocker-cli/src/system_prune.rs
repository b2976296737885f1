//! `gocker system prune`, as docker's: a warning listing what goes and a `[y/N]` question unless
//! `-f`, `--filter until=...` and `--filter label...` on the containers, the ids removed and the
//! total reclaimed space.

use std::collections::HashMap;
use std::io::Write;

use gocker_runtime::state::StateStore;
use gocker_runtime::{ContainerState, Status};

use crate::cli::SystemPruneArgs;
use crate::failure::{report, usage, Failure};
use crate::timeflags::parse_until;

/// What `--filter` selects: containers created before `until` (Unix seconds), carrying the
/// `label=` labels and not the `label!=` ones.
#[derive(Debug, Default, PartialEq)]
struct Filters {
    until: Option<i64>,
    /// (KEY, VALUE or any, wanted)
    labels: Vec<(String, Option<String>, bool)>,
}

const FILTER_HELP: &str =
    "supported: until=DURATION|TIMESTAMP, label=KEY[=VALUE], label!=KEY[=VALUE]";

fn parse_filters(flags: &[String], now: i64) -> Result<Filters, Failure> {
    let mut f = Filters::default();
    for raw in flags {
        let bad = || usage(format!("--filter {raw:?}: {FILTER_HELP}"));
        if let Some(v) = raw.strip_prefix("until=") {
            if f.until.is_some() {
                return Err(usage(format!(
                    "--filter {raw:?}: more than one until filter specified"
                )));
            }
            f.until = Some(parse_until(v, now).ok_or_else(|| {
                usage(format!(
                    "--filter {raw:?}: not a duration (24h, 90m), Unix timestamp or RFC 3339 time"
                ))
            })?);
        } else if let Some((wanted, v)) = raw
            .strip_prefix("label!=")
            .map(|v| (false, v))
            .or_else(|| raw.strip_prefix("label=").map(|v| (true, v)))
        {
            let (k, val) = match v.split_once('=') {
                Some((k, val)) => (k, Some(val.to_owned())),
                None => (v, None),
            };
            if k.is_empty() {
                return Err(bad());
            }
            f.labels.push((k.to_owned(), val, wanted));
        } else {
            return Err(bad());
        }
    }
    Ok(f)
}

impl Filters {
    fn matches(&self, st: &ContainerState, labels: &HashMap<String, String>) -> bool {
        if self.until.is_some_and(|u| st.created as i64 >= u) {
            return false;
        }
        self.labels.iter().all(|(k, v, wanted)| {
            let has = match (labels.get(k), v) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            };
            has == *wanted
        })
    }

    fn is_empty(&self) -> bool {
        self.until.is_none() && self.labels.is_empty()
    }
}

/// Bytes in the files under `dir` (apparent sizes, not following symlinks nor leaving its
/// filesystem); what cannot be read is not counted.
fn dir_size(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.dev() != top.dev() {
                continue;
            }
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

fn prune(a: &SystemPruneArgs) -> Result<i32, Failure> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let filters = parse_filters(&a.filters, now)?;
    if !a.force {
        let mut warning = String::from("WARNING! This will remove:\n  - all stopped containers");
        if filters.is_empty() {
            warning.push_str("\n  - the network state that no container uses (leases, nft rules, veths, helper processes; the bridge when no container uses it)");
        } else {
            warning.push_str("\n\nItems to be pruned will be filtered with:");
            for f in &a.filters {
                warning.push_str(&format!("\n  - {f}"));
            }
        }
        warning.push('\n');
        if !crate::failure::confirmed(&warning) {
            eprintln!("system prune cancelled: nothing removed");
            return Ok(0);
        }
    }
    let store = StateStore::open(StateStore::default_root())?;
    store.collect_stale();
    let mut removed = Vec::new();
    let mut freed = 0;
    for s in store
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.status == Status::Stopped)
    {
        if !filters.matches(&s, &crate::ps::labels_of(&store, &s)) {
            continue;
        }
        let size = dir_size(&store.container_dir(&s.id));
        match store.remove(&s.id, &s.name) {
            Ok(()) => {
                freed += size;
                removed.push(s.id);
            }
            Err(e) => eprintln!("gocker: container {}: {e}", s.name),
        }
    }
    // The network state of dead containers has no labels nor creation time that a filter could
    // select (docker's filters apply to networks too): only an unfiltered prune removes it.
    let net = if filters.is_empty() {
        gocker_runtime::net::prune(&store)
    } else {
        Vec::new()
    };
    let mut out = String::new();
    if !removed.is_empty() {
        out.push_str("Deleted Containers:\n");
        for id in &removed {
            out.push_str(&format!("{id}\n"));
        }
        out.push('\n');
    }
    if !net.is_empty() {
        out.push_str("Deleted network state:\n");
        for r in &net {
            out.push_str(&format!("{r}\n"));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        crate::stats::decimal_size(freed, 4)
    ));
    crate::failure::wrote(std::io::stdout().write_all(out.as_bytes()));
    Ok(0)
}

pub(crate) fn system_prune(a: SystemPruneArgs) -> i32 {
    prune(&a).unwrap_or_else(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000;

    #[test]
    fn filters_parse_and_refuse_what_they_do_not_know() {
        let f = parse_filters(
            &[
                "until=10m".into(),
                "label=a".into(),
                "label=b=2".into(),
                "label!=c".into(),
            ],
            NOW,
        )
        .ok()
        .unwrap();
        assert_eq!(f.until, Some(NOW - 600));
        assert_eq!(
            f.labels,
            [
                ("a".into(), None, true),
                ("b".into(), Some("2".into()), true),
                ("c".into(), None, false)
            ]
        );
        for bad in [
            vec!["name=x".to_string()],
            vec!["label=".into()],
            vec!["until=soon".into()],
            vec!["until=1h".into(), "until=2h".into()],
        ] {
            let e = parse_filters(&bad, NOW).expect_err("refused");
            assert_eq!(e.code, 125);
            assert!(e.message.contains("--filter"), "{}", e.message);
        }
    }
}
