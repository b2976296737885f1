//! `gocker ps`, with docker's `-q`, `--filter` (values of one key OR, different keys AND; `id=` a
//! prefix of the id, `name=` a regular expression found in the name,
//! `status=created|running|paused|exited`, `label=KEY[=VALUE]`), `-n/--last` and `-l/--latest`.

use std::collections::HashMap;

use gocker_runtime::state::StateStore;
use gocker_runtime::{ContainerState, Status};

use crate::cli::PsArgs;
use crate::failure::{report, usage, Failure};

pub(crate) use crate::ps_row::{labels_of, status_word};

fn ps_inner(a: &PsArgs) -> Result<(), Failure> {
    let filters = PsFilters::parse(&a.filters)?;
    let store = StateStore::open(StateStore::default_root())?;
    store.collect_stale();
    let n = if a.latest { Some(1) } else { a.last };
    // docker: -n, -l and a status filter look at every container, not only the running ones.
    let all = a.all || filters.has_status() || n.is_some_and(|n| n >= 0);
    let mut list: Vec<ContainerState> = store
        .list()?
        .into_iter()
        .filter(|s| {
            let running = s.status != Status::Stopped && StateStore::monitor_alive(s);
            let shown = all || (s.status != Status::Stopped && !s.never_started());
            let labels = if filters.has_labels() {
                labels_of(&store, s)
            } else {
                HashMap::new()
            };
            shown && filters.matches(s, running, &labels)
        })
        .collect();
    if n.is_some() {
        // Created in the same second (the record's resolution): their directories' birth times
        // tell which came last.
        list.sort_by_cached_key(|s| (s.created, born(&store.container_dir(&s.id))));
    }
    last(&mut list, n);
    if a.format.as_deref() == Some("json") {
        println!(
            "{}",
            serde_json::to_string_pretty(&list).expect("state serialises")
        );
        return Ok(());
    }
    let short = |id: &str| -> String {
        if a.no_trunc {
            id.to_owned()
        } else {
            id[..12.min(id.len())].to_owned()
        }
    };
    if a.quiet {
        let mut out = String::new();
        for s in &list {
            out.push_str(&short(&s.id));
            out.push('\n');
        }
        crate::failure::wrote(std::io::Write::write_all(
            &mut std::io::stdout(),
            out.as_bytes(),
        ));
        return Ok(());
    }
    let format = crate::format::Format::parse(a.format.as_deref())?;
    if !format.is_default() {
        let rows: Vec<serde_json::Value> = list
            .iter()
            .map(|s| {
                let running = s.status != Status::Stopped && StateStore::monitor_alive(s);
                let restarting = crate::monitor_flags::restarting(&store, s);
                crate::ps_row::ps_row(&store, s, running, restarting, !a.no_trunc)
            })
            .collect();
        let text = format
            .render(&rows, crate::ps_row::PS_HEADER)?
            .unwrap_or_default();
        crate::failure::wrote(std::io::Write::write_all(
            &mut std::io::stdout(),
            text.as_bytes(),
        ));
        return Ok(());
    }
    let mut t = crate::table::Table::new(&["CONTAINER ID", "NAME", "STATUS", "COMMAND", "PORTS"]);
    for s in &list {
        // docker's STATUS: `Up 5 seconds (healthy)`, `Exited (3) 2 minutes ago`, ...
        let status = crate::ps_row::status_text(
            &store,
            s,
            s.status != Status::Stopped && StateStore::monitor_alive(s),
            crate::monitor_flags::restarting(&store, s),
        );
        // As docker: the published ports of a running container.
        let ports = if s.status == Status::Running {
            crate::port::ps_text(&crate::port::recorded(&store, &s.id))
        } else {
            String::new()
        };
        t.row(vec![
            short(&s.id),
            s.name.clone(),
            status,
            s.command.join(" "),
            ports,
        ]);
    }
    t.print();
    Ok(())
}

pub(crate) fn ps(a: PsArgs) -> i32 {
    match ps_inner(&a) {
        Ok(()) => 0,
        Err(f) => report(f),
    }
}

/// The parsed filters of one `ps`.
#[derive(Debug, Default)]
pub(crate) struct PsFilters {
    ids: Vec<String>,
    names: Vec<regex::Regex>,
    statuses: Vec<&'static str>,
    /// (KEY, VALUE or any)
    labels: Vec<(String, Option<String>)>,
}

const HELP: &str =
    "supported: id=PREFIX, name=REGEX, status=created|running|paused|exited, label=KEY[=VALUE]";

impl PsFilters {
    pub(crate) fn parse(flags: &[String]) -> Result<PsFilters, Failure> {
        let mut f = PsFilters::default();
        for raw in flags {
            let Some((key, value)) = raw.split_once('=') else {
                return Err(usage(format!(
                    "--filter {raw:?}: bad format of filter (expected name=value); {HELP}"
                )));
            };
            match key {
                "id" => f.ids.push(value.to_owned()),
                "name" => f.names.push(
                    regex::Regex::new(value)
                        .map_err(|e| usage(format!("--filter {raw:?}: {e}")))?,
                ),
                "status" => f.statuses.push(match value {
                    "created" => "created",
                    "running" => "running",
                    "paused" => "paused",
                    "exited" => "exited",
                    _ => {
                        return Err(usage(format!(
                            "--filter {raw:?}: invalid filter 'status={value}' (created, running, paused or exited)"
                        )))
                    }
                }),
                "label" => {
                    let (k, v) = match value.split_once('=') {
                        Some((k, v)) => (k, Some(v.to_owned())),
                        None => (value, None),
                    };
                    if k.is_empty() {
                        return Err(usage(format!("--filter {raw:?}: an empty label name")));
                    }
                    f.labels.push((k.to_owned(), v));
                }
                _ => return Err(usage(format!("--filter {raw:?}: invalid filter '{key}'; {HELP}"))),
            }
        }
        Ok(f)
    }

    /// A status filter lists every container that has the status, as docker's (no -a needed).
    pub(crate) fn has_status(&self) -> bool {
        !self.statuses.is_empty()
    }

    pub(crate) fn has_labels(&self) -> bool {
        !self.labels.is_empty()
    }

    /// Whether `st` (running when `running`, with these labels) passes every key's filter.
    pub(crate) fn matches(
        &self,
        st: &ContainerState,
        running: bool,
        labels: &HashMap<String, String>,
    ) -> bool {
        let any = |empty: bool, hit: bool| empty || hit;
        any(self.ids.is_empty(), self.ids.iter().any(|p| st.id.starts_with(p.as_str())))
            && any(
                self.names.is_empty(),
                self.names.iter().any(|r| r.is_match(&st.name)),
            )
            && any(
                self.statuses.is_empty(),
                self.statuses.contains(&status_word(st, running)),
            )
            // docker's labels: every label filter must match (AND, also for one key).
            && self.labels.iter().all(|(k, v)| match (labels.get(k), v) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            })
    }
}

/// The birth time of `dir` in nanoseconds (statx; 0 where the filesystem has none).
fn born(dir: &std::path::Path) -> i128 {
    use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
    statx(CWD, dir, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BTIME)
        .ok()
        .filter(|x| StatxFlags::from_bits_retain(x.stx_mask).contains(StatxFlags::BTIME))
        .map_or(0, |x| {
            i128::from(x.stx_btime.tv_sec) * 1_000_000_000 + i128::from(x.stx_btime.tv_nsec)
        })
}

/// `-n N` / `-l`: the N containers created last, of a list sorted by creation (oldest first);
/// docker's `-n` with a negative N (its default -1) shows what the other flags say.
pub(crate) fn last(list: &mut Vec<ContainerState>, n: Option<i64>) {
    if let Some(n) = n.filter(|n| *n >= 0) {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let drop = list.len().saturating_sub(n);
        list.drain(..drop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(id: &str, name: &str, status: Status) -> ContainerState {
        ContainerState {
            id: id.into(),
            name: name.into(),
            status,
            pid: None,
            monitor_pid: 0,
            monitor_start: 0,
            rootfs: "/".into(),
            command: vec![],
            created: 0,
            exit: None,
            auto_remove: false,
            cgroup: None,
            oom_killed: false,
            ip: None,
        }
    }

    #[test]
    fn one_key_ors_and_keys_and() {
        let none = HashMap::new();
        let web = st("abc123", "web-1", Status::Running);
        let db = st("def456", "db", Status::Stopped);
        let f = PsFilters::parse(&["name=web".into(), "name=^db$".into()])
            .ok()
            .unwrap();
        assert!(f.matches(&web, true, &none) && f.matches(&db, false, &none));
        let f = PsFilters::parse(&["name=web".into(), "status=exited".into()])
            .ok()
            .unwrap();
        assert!(!f.matches(&web, true, &none));
        assert!(f.matches(&web, false, &none), "a dead monitor is exited");
        let f = PsFilters::parse(&[
            "id=def".into(),
            "status=running".into(),
            "status=exited".into(),
        ])
        .ok()
        .unwrap();
        assert!(f.matches(&db, false, &none) && !f.matches(&web, true, &none));
        let labels: HashMap<String, String> = [("tier".into(), "front".into())].into();
        let f = PsFilters::parse(&["label=tier".into()]).ok().unwrap();
        assert!(f.matches(&web, true, &labels) && !f.matches(&web, true, &none));
        let f = PsFilters::parse(&["label=tier=back".into()]).ok().unwrap();
        assert!(!f.matches(&web, true, &labels));
        let created = st("0123", "new", Status::Created);
        let f = PsFilters::parse(&["status=created".into()]).ok().unwrap();
        assert!(f.matches(&created, false, &none) && !f.matches(&db, false, &none));
        for bad in ["status=restarting", "nope=1", "name", "name=(", "label="] {
            let e = PsFilters::parse(&[bad.into()]).expect_err(bad);
            assert_eq!(e.code, 125);
        }
    }

    #[test]
    fn last_keeps_the_newest() {
        let mut v: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|n| st(n, n, Status::Stopped))
            .collect();
        last(&mut v, Some(2));
        assert_eq!(
            v.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
        last(&mut v, Some(-1));
        assert_eq!(v.len(), 2);
        last(&mut v, Some(0));
        assert!(v.is_empty());
    }
}
