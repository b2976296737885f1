//! `gocker stats`: docker's columns (CONTAINER ID, NAME, CPU %, MEM USAGE / LIMIT, MEM %,
//! NET I/O, BLOCK I/O, PIDS), one row per container, from what can be measured on this host: the
//! container's cgroup v2 files where its cgroup has them, else the container's processes in
//! /proc. A value that cannot be measured is shown as `--`, never guessed.

use std::io::Write;
use std::time::{Duration, Instant};

use gocker_runtime::state::StateStore;
use gocker_runtime::{ContainerState, Status};

use crate::cli::StatsArgs;
use crate::failure::{report, wrote, Failure};
use crate::manage::{container_pids, running};

/// One reading of a container; `None` where nothing measures it.
#[derive(Debug, Default, Clone, PartialEq)]
struct Usage {
    /// CPU time used so far, in microseconds.
    cpu_usec: Option<u64>,
    mem: Option<u64>,
    limit: Option<u64>,
    /// Bytes received and sent on the container's own interfaces (loopback excluded).
    net: Option<(u64, u64)>,
    /// Bytes read from and written to storage.
    block: Option<(u64, u64)>,
    /// Tasks (threads) of the container.
    pids: Option<u64>,
}

/// The container's cgroup, when it has one that still exists.
fn cgroup_of(st: &ContainerState) -> Option<gocker_cgroups::Cgroup> {
    let p = st.cgroup.clone()?;
    p.is_dir().then(|| gocker_cgroups::Cgroup::open(p))
}

/// Fields of `/proc/PID/stat` after the command (field 3, the state, is index 0).
fn stat_fields(pid: i32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(
        rest.split(' ')
            .skip(1)
            .map(|f| f.trim().parse().unwrap_or(0))
            .collect(),
    )
}

/// A `Key:   N ...` line of `/proc/PID/status` or /proc/meminfo (the first number).
fn keyed_number(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix(key)?
            .strip_prefix(':')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// Sums `f` over the processes. `None` when one that still exists cannot be read (a partial sum
/// would be a wrong number; rootless, a process running as another of the user's ids may keep
/// its /proc/PID/io from the user) or when there is no process; one that exited meanwhile is
/// left out.
fn sum_over(pids: &[i32], f: impl Fn(i32) -> Option<u64>) -> Option<u64> {
    let mut total = None;
    for p in pids {
        match f(*p) {
            Some(v) => total = Some(total.unwrap_or(0) + v),
            None if std::path::Path::new(&format!("/proc/{p}")).exists() => return None,
            None => {}
        }
    }
    total
}

/// Received and sent bytes in a `/proc/PID/net/dev` text, loopback excluded.
fn net_dev_totals(text: &str) -> (u64, u64) {
    let mut rx = 0;
    let mut tx = 0;
    for l in text.lines().skip(2) {
        let Some((iface, counters)) = l.split_once(':') else {
            continue;
        };
        if iface.trim() == "lo" {
            continue;
        }
        let n: Vec<u64> = counters
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        rx += n.first().copied().unwrap_or(0);
        tx += n.get(8).copied().unwrap_or(0);
    }
    (rx, tx)
}

/// Read and written bytes in a cgroup's `io.stat` (`MAJ:MIN rbytes=N wbytes=N ...` lines).
fn io_stat_totals(text: &str) -> (u64, u64) {
    let mut r = 0;
    let mut w = 0;
    for kv in text.split_whitespace() {
        if let Some(v) = kv.strip_prefix("rbytes=") {
            r += v.parse().unwrap_or(0);
        } else if let Some(v) = kv.strip_prefix("wbytes=") {
            w += v.parse().unwrap_or(0);
        }
    }
    (r, w)
}

fn measure(st: &ContainerState) -> Usage {
    if !running(st) {
        return Usage::default();
    }
    let cg = cgroup_of(st);
    let pids = container_pids(st).unwrap_or_default();
    let tick = rustix::param::clock_ticks_per_second().max(1);
    let status = |p: i32| std::fs::read_to_string(format!("/proc/{p}/status")).ok();

    let cpu_usec = cg
        .as_ref()
        .and_then(|c| c.keyed("cpu.stat").ok())
        .and_then(|v| {
            v.into_iter()
                .find(|(k, _)| k == "usage_usec")
                .map(|(_, n)| n)
        })
        .or_else(|| {
            // utime + stime of each live process, and cutime + cstime: what its exited and
            // reaped children used (a child's own children included).
            sum_over(&pids, |p| {
                let f = stat_fields(p)?;
                Some(f.get(10..14)?.iter().sum::<u64>())
            })
            .map(|ticks| ticks * 1_000_000 / tick)
        });
    let mem = cg
        .as_ref()
        .and_then(|c| c.value("memory.current").ok())
        .or_else(|| {
            sum_over(&pids, |p| {
                // A zombie has no VmRSS: it holds no memory.
                status(p).map(|t| keyed_number(&t, "VmRSS").unwrap_or(0) * 1024)
            })
        });
    let limit = cg
        .as_ref()
        .and_then(|c| c.value("memory.max").ok())
        .or_else(|| {
            let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
            keyed_number(&meminfo, "MemTotal").map(|k| k * 1024)
        });
    let net = st.pid.and_then(|p| {
        let ns = std::fs::read_link(format!("/proc/{p}/ns/net")).ok()?;
        // The host's network (--network host): not the container's own traffic.
        if std::fs::read_link("/proc/self/ns/net").ok()? == ns {
            return None;
        }
        std::fs::read_to_string(format!("/proc/{p}/net/dev"))
            .ok()
            .map(|t| net_dev_totals(&t))
    });
    let block = cg
        .as_ref()
        .and_then(|c| std::fs::read_to_string(c.path().join("io.stat")).ok())
        .map(|t| io_stat_totals(&t))
        .or_else(|| {
            let io = |p: i32| std::fs::read_to_string(format!("/proc/{p}/io")).ok();
            let r = sum_over(&pids, |p| keyed_number(&io(p)?, "read_bytes"))?;
            let w = sum_over(&pids, |p| keyed_number(&io(p)?, "write_bytes"))?;
            Some((r, w))
        });
    let pids = cg
        .as_ref()
        .and_then(|c| c.value("pids.current").ok())
        .or_else(|| {
            sum_over(&pids, |p| {
                status(p).and_then(|t| keyed_number(&t, "Threads"))
            })
        });
    Usage {
        cpu_usec,
        mem,
        limit,
        net,
        block,
        pids,
    }
}

/// `v` with `digits` significant digits, trailing zeros dropped (Go's `%.Ng` for the values
/// below 10^digits that sizes have).
fn significant(v: f64, digits: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let int_digits = (v.abs().log10().floor() as i64 + 1).max(1) as usize;
    let s = format!("{v:.*}", digits.saturating_sub(int_digits));
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// Memory as docker shows it (units.BytesSize: binary units, 4 significant digits).
fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{}{}", significant(v, 4), UNITS[i])
}

/// Traffic and sizes as docker shows them (units.HumanSizeWithPrecision: decimal units, `digits`
/// significant digits; 3 in `stats`, 4 for docker's HumanSize).
pub(crate) fn decimal_size(bytes: u64, digits: usize) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", significant(v, digits), UNITS[i])
}

const UNKNOWN: &str = "--";

/// A row: the container, its reading now and the one `elapsed` before it.
fn row(st: &ContainerState, before: &Usage, now: &Usage, elapsed: Duration) -> Vec<String> {
    let cpu = match (before.cpu_usec, now.cpu_usec) {
        (Some(a), Some(b)) => format!(
            "{:.2}%",
            b.saturating_sub(a) as f64 / elapsed.as_micros().max(1) as f64 * 100.0
        ),
        _ => UNKNOWN.into(),
    };
    let shown = |v: Option<u64>| v.map_or(UNKNOWN.into(), binary_size);
    let mem_pct = match (now.mem, now.limit) {
        (Some(m), Some(l)) if l > 0 => format!("{:.2}%", m as f64 / l as f64 * 100.0),
        _ => UNKNOWN.into(),
    };
    let pair = |v: Option<(u64, u64)>| {
        v.map_or(UNKNOWN.into(), |(a, b)| {
            format!("{} / {}", decimal_size(a, 3), decimal_size(b, 3))
        })
    };
    vec![
        st.id[..12.min(st.id.len())].to_owned(),
        st.name.clone(),
        cpu,
        format!("{} / {}", shown(now.mem), shown(now.limit)),
        mem_pct,
        pair(now.net),
        pair(now.block),
        now.pids.map_or(UNKNOWN.into(), |p| p.to_string()),
    ]
}

const HEADER: [&str; 8] = [
    "CONTAINER ID",
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "NET I/O",
    "BLOCK I/O",
    "PIDS",
];

/// docker's fields of a stats row for `--format` (the cells of [`row`]).
fn template_row(r: &[String]) -> serde_json::Value {
    let cell = |i: usize| r.get(i).cloned().unwrap_or_default();
    serde_json::json!({
        "Container": cell(0),
        "ID": cell(0),
        "Name": cell(1),
        "CPUPerc": cell(2),
        "MemUsage": cell(3),
        "MemPerc": cell(4),
        "NetIO": cell(5),
        "BlockIO": cell(6),
        "PIDs": cell(7),
    })
}

/// The header row of a `table` template: docker's titles.
const TEMPLATE_HEADER: [(&str, &str); 9] = [
    ("Container", "CONTAINER"),
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

/// The containers to show: those named (each must exist), else all running ones.
fn targets(store: &StateStore, names: &[String]) -> Result<Vec<ContainerState>, Failure> {
    if names.is_empty() {
        let mut all: Vec<ContainerState> = store
            .list()
            .map_err(Failure::from)?
            .into_iter()
            .filter(|s| s.status != Status::Stopped && running(s))
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        return Ok(all);
    }
    names
        .iter()
        .map(|n| store.lookup(n).map_err(Failure::from))
        .collect()
}

pub fn stats(a: StatsArgs) -> i32 {
    let r = (|| -> Result<i32, Failure> {
        let format = crate::format::Format::parse(a.format.as_deref())?;
        let store = StateStore::open(StateStore::default_root())?;
        store.collect_stale();
        let mut shown = targets(&store, &a.containers)?;
        let mut before: Vec<(Usage, Instant)> =
            shown.iter().map(|s| (measure(s), Instant::now())).collect();
        loop {
            std::thread::sleep(Duration::from_millis(if a.no_stream { 500 } else { 1000 }));
            let mut t = crate::table::Table::new(&HEADER);
            let mut objs = Vec::new();
            let mut next = Vec::new();
            for (st, (prev, at)) in shown.iter().zip(&before) {
                // A stopped container keeps its row (as docker), without values.
                let st = store.load(&st.id).unwrap_or_else(|_| st.clone());
                let now = measure(&st);
                let r = row(&st, prev, &now, at.elapsed());
                if !format.is_default() {
                    objs.push(template_row(&r));
                }
                t.row(r);
                next.push((now, Instant::now()));
            }
            let mut out = std::io::stdout().lock();
            if !a.no_stream {
                wrote(write!(out, "\x1b[2J\x1b[H"));
            }
            let text = match format.render(&objs, &TEMPLATE_HEADER)? {
                Some(text) => text,
                None => t.render(),
            };
            wrote(out.write_all(text.as_bytes()));
            wrote(out.flush());
            drop(out);
            if a.no_stream {
                return Ok(0);
            }
            before = next;
            if a.containers.is_empty() {
                // Containers started since come in, stopped ones go (docker's stats without names).
                let now = targets(&store, &[])?;
                before = now
                    .iter()
                    .map(|s| {
                        shown
                            .iter()
                            .position(|o| o.id == s.id)
                            .map(|i| before[i].clone())
                            .unwrap_or_else(|| (measure(s), Instant::now()))
                    })
                    .collect();
                shown = now;
            }
        }
    })();
    r.unwrap_or_else(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(1023), "1023B");
        assert_eq!(binary_size(1536 * 1024), "1.5MiB");
        assert_eq!(binary_size(8_232_000_000), "7.667GiB");
        assert_eq!(decimal_size(0, 3), "0B");
        assert_eq!(decimal_size(1234, 3), "1.23kB");
        assert_eq!(decimal_size(999, 3), "999B");
        assert_eq!(decimal_size(45_600_000, 3), "45.6MB");
    }

    #[test]
    fn net_dev_skips_loopback_and_sums_the_rest() {
        let t = "Inter-|   Receive                                                |  Transmit\n \
face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:  500 5 0 0 0 0 0 0  500 5 0 0 0 0 0 0\n  \
eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n  \
tap1: 1 1 0 0 0 0 0 0 2 1 0 0 0 0 0 0\n";
        assert_eq!(net_dev_totals(t), (1001, 2002));
    }

    #[test]
    fn io_stat_sums_devices() {
        let t = "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n\
253:1 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n";
        assert_eq!(io_stat_totals(t), (4097, 8194));
    }

    #[test]
    fn unmeasured_values_are_dashes() {
        let st = ContainerState {
            id: "0123456789abcdef0123456789abcdef".into(),
            name: "c".into(),
            status: Status::Running,
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
        };
        let none = Usage::default();
        let r = row(&st, &none, &none, Duration::from_secs(1));
        assert_eq!(
            r,
            ["0123456789ab", "c", "--", "-- / --", "--", "--", "--", "--"]
        );
        let a = Usage {
            cpu_usec: Some(1_000_000),
            ..Usage::default()
        };
        let b = Usage {
            cpu_usec: Some(1_500_000),
            mem: Some(1024 * 1024),
            limit: Some(4 * 1024 * 1024),
            net: Some((1234, 0)),
            block: Some((0, 4096)),
            pids: Some(3),
        };
        let r = row(&st, &a, &b, Duration::from_secs(1));
        assert_eq!(
            r[2..],
            [
                "50.00%",
                "1MiB / 4MiB",
                "25.00%",
                "1.23kB / 0B",
                "0B / 4.1kB",
                "3"
            ]
        );
    }
}
