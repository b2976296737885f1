//! docker's view of a container for `--format` templates: the fields of a `ps` row (ID, Image,
//! Command, CreatedAt, RunningFor, Ports, State, Status, Size, Names, Labels, Label "KEY",
//! Mounts, Networks, LocalVolumes) and the `State` object of `inspect`, with docker's texts
//! (`Up 3 seconds`, `Exited (0) 2 minutes ago`, `Created`).
//!
//! The times: a container's current run started when its monitor did (the monitor's start time
//! in /proc, in clock ticks since boot, plus the boot time); it finished when its record was
//! last written (the monitor writes the exit status there as the container is reaped).

use gocker_runtime::state::StateStore;
use gocker_runtime::{ContainerState, Status};
use serde_json::{json, Value};

use crate::format::{ellipsis, go_time_string, human_duration};

use std::collections::HashMap;

/// The labels `run` recorded for the container (its spec's Config, `gocker inspect`'s
/// Config.Labels).
pub(crate) fn labels_of(store: &StateStore, st: &ContainerState) -> HashMap<String, String> {
    let cfg = store.load_config(&st.id).ok();
    let from_config =
        crate::run_image::recorded_config(cfg.as_ref().and_then(|c| c.spec.annotations().as_ref()));
    // A --rm container has no container.json: its spec (config.json) has the same annotations.
    let config = from_config.or_else(|| {
        let spec: serde_json::Value = serde_json::from_slice(
            &std::fs::read(store.container_dir(&st.id).join("config.json")).ok()?,
        )
        .ok()?;
        let ann: HashMap<String, String> =
            serde_json::from_value(spec["annotations"].clone()).ok()?;
        crate::run_image::recorded_config(Some(&ann))
    });
    config
        .and_then(|c| serde_json::from_value(c["Labels"].clone()).ok())
        .unwrap_or_default()
}

/// docker's four states a container shows in a status filter (its `restarting`, `removing`
/// and `dead` do not happen here: they are refused as unknown). A paused container is not
/// `running`, as in docker.
pub(crate) fn status_word(st: &ContainerState, running: bool) -> &'static str {
    match st.status {
        Status::Creating | Status::Created => "created",
        Status::Running if running && st.paused() => "paused",
        Status::Running if running => "running",
        _ => "exited",
    }
}

/// The header row of `ps --format 'table ...'`: docker's column titles.
pub(crate) const PS_HEADER: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

/// Unix seconds now.
fn now() -> i64 {
    i64::try_from(crate::timeflags::now_ns() / 1_000_000_000).unwrap_or(i64::MAX)
}

/// The host's boot time in Unix seconds (/proc/stat `btime`).
fn boot_time() -> Option<i64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

/// The start time of host process `pid` in Unix seconds (/proc/PID/stat `starttime`).
fn process_start(pid: i32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let start: i64 = stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let ticks = i64::try_from(rustix::param::clock_ticks_per_second()).ok()?;
    Some(boot_time()? + start / ticks.max(1))
}

/// When the container's current run started (Unix seconds): its payload's start while it runs
/// (a `--restart` run is newer than its monitor), else its monitor's, while that monitor is the
/// one recorded.
pub(crate) fn started_at(st: &ContainerState) -> Option<i64> {
    if st.monitor_pid == 0 || st.monitor_start == 0 {
        return None;
    }
    let monitor = || {
        let ticks = i64::try_from(rustix::param::clock_ticks_per_second()).ok()?;
        let start = i64::try_from(st.monitor_start).ok()?;
        Some(boot_time()? + start / ticks.max(1))
    };
    let payload = st
        .pid
        .filter(|_| st.status == Status::Running)
        .and_then(process_start);
    match (payload, monitor()) {
        (Some(p), Some(m)) if p >= m => Some(p),
        (_, m) => m,
    }
}

/// When a stopped container finished (Unix seconds): the last write of its record.
pub(crate) fn finished_at(store: &StateStore, st: &ContainerState) -> Option<i64> {
    if st.status != Status::Stopped {
        return None;
    }
    let m = std::fs::metadata(store.container_dir(&st.id).join("state.json")).ok()?;
    Some(std::os::unix::fs::MetadataExt::mtime(&m))
}

/// docker's STATUS text (its `State.String()`): `Up 5 seconds`, `Up 3 seconds (Paused)`,
/// `Up 1 minute (healthy)` / `(health: starting)` / `(unhealthy)` with a health check,
/// `Restarting (1) 2 seconds ago` between two runs of `--restart` (`restarting`, as
/// [`crate::monitor_flags::restarting`] says), `Exited (0) 3 minutes ago`, `Created`.
pub(crate) fn status_text(
    store: &StateStore,
    st: &ContainerState,
    running: bool,
    restarting: bool,
) -> String {
    let t = now();
    let dir = store.container_dir(&st.id);
    if !running && restarting {
        if let Some(r) = gocker_runtime::restart::RestartRecord::load(&dir) {
            let code = r.last_exit.or(st.exit.map(|e| e.code())).unwrap_or(0);
            let ago = r
                .finished_ms
                .map(|f| gocker_runtime::restart::now_ms().saturating_sub(f) / 1000)
                .unwrap_or(0);
            return format!(
                "Restarting ({code}) {} ago",
                human_duration(i64::try_from(ago).unwrap_or(i64::MAX))
            );
        }
    }
    match st.status {
        Status::Creating | Status::Created => "Created".into(),
        Status::Running if running => {
            let up = match started_at(st) {
                Some(s) => format!("Up {}", human_duration(t - s)),
                None => "Up".into(),
            };
            if st.paused() {
                return format!("{up} (Paused)");
            }
            match gocker_runtime::health::Health::load(&dir) {
                Some(h) if h.status == gocker_runtime::health::HealthStatus::Starting => {
                    format!("{up} (health: starting)")
                }
                Some(h) => format!("{up} ({})", h.status.as_str()),
                None => up,
            }
        }
        _ => {
            let code = st.exit.map_or(-1, |e| e.code());
            match finished_at(store, st) {
                Some(f) => format!("Exited ({code}) {} ago", human_duration(t - f)),
                None => format!("Exited ({code})"),
            }
        }
    }
}

/// The container's recorded spec (config.json), or null.
fn spec_of(store: &StateStore, id: &str) -> Value {
    std::fs::read(store.container_dir(id).join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// The named volumes the container uses (the spec's volumes annotation).
fn volumes_of(spec: &Value) -> Vec<String> {
    spec["annotations"][crate::volume_cmds::VOLUMES_ANNOTATION]
        .as_str()
        .unwrap_or("")
        .split(',')
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// docker's MOUNTS: each named volume by its name and each bind mount by its source (the
/// files gocker itself binds, /etc/hosts and the like, /dev, /proc and /sys, left out).
fn mounts_of(spec: &Value, trunc: bool) -> Vec<String> {
    let vols = volumes_of(spec);
    let store = crate::volume_cmds::store_dir();
    let mut out = Vec::new();
    for m in spec["mounts"].as_array().into_iter().flatten() {
        let dst = m["destination"].as_str().unwrap_or("");
        let src = m["source"].as_str().unwrap_or("");
        let bind = m["type"] == "bind"
            || m["options"]
                .as_array()
                .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"));
        let internal = ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"].contains(&dst)
            || ["/dev", "/proc", "/sys", "/.gocker"]
                .iter()
                .any(|p| dst == *p || dst.starts_with(&format!("{p}/")));
        if !bind || internal || src.is_empty() {
            continue;
        }
        let name = std::path::Path::new(src)
            .strip_prefix(&store)
            .ok()
            .and_then(|r| r.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .filter(|n| vols.contains(n))
            .unwrap_or_else(|| src.to_owned());
        out.push(if trunc { ellipsis(&name, 15) } else { name });
    }
    out
}

/// The container's network mode (its recorded configuration; empty when it has none, as a
/// `--rm` container's).
fn network_of(store: &StateStore, id: &str) -> String {
    store
        .load_config(id)
        .map(|c| format!("{:?}", c.network.mode).to_lowercase())
        .unwrap_or_default()
}

/// docker's `ps` row of `st` (`trunc`: ids, commands and mount names shortened, as without
/// `--no-trunc`).
pub(crate) fn ps_row(
    store: &StateStore,
    st: &ContainerState,
    running: bool,
    restarting: bool,
    trunc: bool,
) -> Value {
    let spec = spec_of(store, &st.id);
    let config = crate::run_image::recorded_config(
        serde_json::from_value(spec["annotations"].clone())
            .ok()
            .as_ref(),
    );
    let image = config
        .as_ref()
        .and_then(|c| c["Image"].as_str().map(str::to_owned))
        .unwrap_or_else(|| st.rootfs.display().to_string());
    let mut labels: Vec<(String, String)> = labels_of(store, st).into_iter().collect();
    labels.sort();
    let id = if trunc {
        st.id[..12.min(st.id.len())].to_owned()
    } else {
        st.id.clone()
    };
    let command = st.command.join(" ");
    let command = if trunc {
        ellipsis(&command, 20)
    } else {
        command
    };
    let ports = if st.status == Status::Running {
        crate::port::ps_text(&crate::port::recorded(store, &st.id))
    } else {
        String::new()
    };
    let created = i64::try_from(st.created).unwrap_or(0);
    json!({
        "ID": id,
        "Image": image,
        "Command": serde_json::to_string(&command).unwrap_or_default(),
        "CreatedAt": go_time_string(created),
        "RunningFor": format!("{} ago", human_duration(now() - created)),
        "Ports": ports,
        "State": status_word(st, running),
        "Status": status_text(store, st, running, restarting),
        // docker without --size: nothing measured.
        "Size": "0B",
        "Names": st.name,
        "Labels": labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        "LabelMap": labels.into_iter().map(|(k, v)| (k, Value::String(v))).collect::<serde_json::Map<String, Value>>(),
        "Mounts": mounts_of(&spec, trunc).join(","),
        "Networks": network_of(store, &st.id),
        "LocalVolumes": volumes_of(&spec).len().to_string(),
    })
}

/// docker's `State` object of `inspect`.
pub(crate) fn inspect_state(store: &StateStore, st: &ContainerState, running: bool) -> Value {
    let rfc = |t: Option<i64>| {
        t.and_then(|s| u64::try_from(s).ok()).map_or_else(
            || "0001-01-01T00:00:00Z".to_owned(),
            |s| gocker_runtime::logs::rfc3339(s, 0),
        )
    };
    let started = if st.never_started() {
        None
    } else {
        started_at(st)
    };
    json!({
        "Status": status_word(st, running),
        "Running": running,
        "Paused": running && st.paused(),
        "Restarting": false,
        "OOMKilled": st.oom_killed,
        "Dead": false,
        "Pid": if running { st.pid.unwrap_or(0) } else { 0 },
        "ExitCode": st.exit.map_or(0, |e| e.code()),
        "Error": "",
        "StartedAt": rfc(started),
        "FinishedAt": rfc(finished_at(store, st)),
    })
}
