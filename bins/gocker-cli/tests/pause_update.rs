//! `gocker pause`, `unpause` and `update` (issue 16), as root and rootless. Where the container
//! has a cgroup (a cgroup v2 host; root, or a user with a delegated subtree) the freezer and the
//! limits are checked in the kernel's files and the process's CPU time; where it has none (this
//! CI's hybrid host, or rootless without delegation) each is refused with the reason and nothing
//! changes: the process keeps running (no SIGSTOP stands in) and the record is not rewritten.
//! The freezer on a real cgroup v2 kernel is also proven by `cargo xtask vmtest`.

mod common;

use std::time::Duration;

use common::*;

/// The container's record (`inspect`'s first element).
fn inspect(name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&ok(&g(&["inspect", name]))).unwrap();
    v[0].clone()
}

/// CPU time (utime + stime, clock ticks) of a host pid.
fn cpu_ticks(pid: i64) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// The scheduler state letter of a host pid (R running, S sleeping, T stopped, ...).
fn state_of(pid: i64) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap()
}

/// Whether `ps` with these extra arguments lists `name`.
fn ps_lists(extra: &[&str], name: &str) -> bool {
    let mut a = vec!["ps", "-a"];
    a.extend_from_slice(extra);
    ok(&g(&a))
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(name))
}

/// A detached busy loop; returns its name and host pid.
fn busy(tag: &str) -> (String, i64) {
    let n = unique(tag);
    let r = rootfs();
    ok(&g(&[
        "run",
        "-d",
        "--name",
        &n,
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "while :; do :; done",
    ]));
    let pid = inspect(&n)["pid"].as_i64().expect("a pid");
    (n, pid)
}

#[test]
fn pause_freezes_the_container_or_is_refused_with_the_reason() {
    let (n, pid) = busy("pause");
    let rec = inspect(&n);
    let Some(cg) = rec["cgroup"].as_str().map(std::path::PathBuf::from) else {
        // No cgroup: refused, naming why; nothing else stands in for the freezer.
        let o = g(&["pause", &n]);
        assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains(&format!(
                "container {n} has no cgroup, so it cannot be paused: "
            )) && e.contains("cgroup"),
            "{e}"
        );
        std::thread::sleep(Duration::from_millis(200));
        assert_ne!(state_of(pid), 'T', "the process was stopped by a signal");
        let t0 = cpu_ticks(pid);
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            cpu_ticks(pid) > t0,
            "the busy loop did not run after the refusal"
        );
        assert!(ps_lists(&["--filter", "status=running"], &n));
        assert!(!ps_lists(&["--filter", "status=paused"], &n));
        assert_eq!(inspect(&n)["paused"], false);
        let o = g(&["unpause", &n]);
        assert_eq!(o.status.code(), Some(125));
        assert!(stderr(&o).contains("is not paused"), "{}", stderr(&o));
        ok(&g(&["rm", "-f", &n]));
        return;
    };
    // The freezer: cgroup.events says frozen, the CPU time stands still, docker's statuses.
    assert_eq!(ok(&g(&["pause", &n])).trim(), n);
    let events = std::fs::read_to_string(cg.join("cgroup.events")).unwrap();
    assert!(events.lines().any(|l| l == "frozen 1"), "{events}");
    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    assert!(cpu_ticks(pid) <= t0 + 1, "CPU time advanced while paused");
    assert!(ps_lists(&["--filter", "status=paused"], &n));
    assert!(!ps_lists(&["--filter", "status=running"], &n));
    let rec = inspect(&n);
    assert_eq!(rec["status"], "paused");
    assert_eq!(rec["paused"], true);
    let o = g(&["pause", &n]);
    assert!(stderr(&o).contains("is already paused"), "{}", stderr(&o));
    let o = g(&["exec", &n, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("is paused, unpause the container before exec"));
    let o = g(&["rm", &n]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("You cannot remove a paused container"));
    // unpause: it runs again.
    assert_eq!(ok(&g(&["unpause", &n])).trim(), n);
    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        cpu_ticks(pid) > t0 + 20,
        "CPU time did not advance after unpause"
    );
    // stop of a paused container: signalled, thawed, stopped (SIGKILL after the grace).
    ok(&g(&["pause", &n]));
    ok(&g(&["stop", "-t", "1", &n]));
    assert!(!ps_lists(&["--filter", "status=running"], &n));
    assert!(!cg.exists(), "the cgroup {} is left", cg.display());
    ok(&g(&["rm", &n]));
    // rm -f of a paused one.
    let (m, _) = busy("pause-rmf");
    ok(&g(&["pause", &m]));
    ok(&g(&["rm", "-f", &m]));
    assert!(!ps_lists(&[], &m));
}

/// `update` of a stopped container records the limits in its saved configuration (what `start`
/// runs), merged with those it had; bad values are refused naming them, and nothing is written.
#[test]
fn update_records_limits_and_refuses_bad_ones() {
    let n = unique("update");
    let r = rootfs();
    ok(&g(&[
        "run",
        "--name",
        &n,
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/true",
    ]));
    let config = state_dir()
        .join(inspect(&n)["id"].as_str().unwrap())
        .join("container.json");
    let resources = || -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
        v["spec"]["linux"]["resources"].clone()
    };
    assert_eq!(
        ok(&g(&["update", "--memory", "64m", "--pids-limit", "50", &n])).trim(),
        n
    );
    assert_eq!(resources()["memory"]["limit"], 64 << 20);
    assert_eq!(resources()["pids"]["limit"], 50);
    // A later update keeps what it does not set.
    ok(&g(&[
        "update",
        "--cpus",
        "0.5",
        "--memory-swap",
        "128m",
        &n,
    ]));
    let res = resources();
    assert_eq!(res["memory"]["limit"], 64 << 20);
    assert_eq!(res["memory"]["swap"], 128 << 20);
    assert_eq!(res["pids"]["limit"], 50);
    assert_eq!(res["cpu"]["quota"], 50_000);
    for (args, says) in [
        (vec!["--memory", "1k"], "minimum is 6 MiB"),
        (vec!["--memory", "256m"], "smaller than the memory limit"),
        (vec!["--pids-limit", "0"], "--pids-limit 0"),
        (vec!["--cpus", "-1"], "--cpus -1"),
        (vec!["--cpu-shares", "1"], "--cpu-shares 1"),
        (vec![], "one or more flags"),
    ] {
        let mut a = vec!["update"];
        a.extend(args.iter().copied());
        a.push(&n);
        let o = g(&a);
        assert_eq!(o.status.code(), Some(125), "{args:?}");
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(resources(), res, "a refused update changed the record");
    let o = g(&["update", "--memory", "64m", "gocker-no-such-container"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("gocker-no-such-container"));
    ok(&g(&["rm", &n]));
}

/// `update` of a running container: written into its cgroup (`memory.max`, `pids.max`), or,
/// without a cgroup, refused with the reason and not recorded.
#[test]
fn update_of_a_running_container_writes_its_cgroup_or_is_refused() {
    let n = unique("update-live");
    let r = rootfs();
    ok(&g(&[
        "run",
        "-d",
        "--name",
        &n,
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/sleep",
        "300",
    ]));
    let rec = inspect(&n);
    let config = state_dir()
        .join(rec["id"].as_str().unwrap())
        .join("container.json");
    let before = std::fs::read(&config).unwrap();
    let o = g(&["update", "--memory", "48m", "--pids-limit", "30", &n]);
    match rec["cgroup"].as_str().map(std::path::PathBuf::from) {
        Some(cg) => {
            assert_eq!(ok(&o).trim(), n);
            let read = |f: &str| {
                std::fs::read_to_string(cg.join(f))
                    .unwrap()
                    .trim()
                    .to_owned()
            };
            assert_eq!(read("memory.max"), (48u64 << 20).to_string());
            assert_eq!(read("pids.max"), "30");
            assert_ne!(std::fs::read(&config).unwrap(), before);
        }
        None => {
            assert_eq!(o.status.code(), Some(125));
            assert!(
                stderr(&o).contains(&format!(
                    "container {n} has no cgroup, so it cannot have its limits changed: "
                )),
                "{}",
                stderr(&o)
            );
            assert_eq!(
                std::fs::read(&config).unwrap(),
                before,
                "the record changed"
            );
        }
    }
    ok(&g(&["rm", "-f", &n]));
}
