//! `run --init`, `--restart` and `--health-*`: what the kernel and the state store show really
//! happened — the init is PID 1 and the command its child, orphans are reaped, `stop`'s SIGTERM
//! reaches the command; restarts make new processes after docker's backoff and are counted, and
//! `stop`/`kill`/`rm -f` end them; the health status follows the check. Every mode (root,
//! rootless, rootless-single).

mod common;
use common::*;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn inspect(n: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&ok(&g(&["inspect", n]))).expect("json");
    v[0].clone()
}

/// (pid, comm, state, ppid) of every process of the container, read from its own /proc.
fn procs(n: &str) -> Vec<(i32, String, char, i32)> {
    let out = ok(&g(&[
        "exec",
        n,
        "/bin/sh",
        "-c",
        "for p in /proc/[0-9]*; do cat $p/stat 2>/dev/null; echo; done",
    ]));
    out.lines()
        .filter_map(|l| {
            let open = l.find('(')?;
            let close = l.rfind(')')?;
            let pid = l[..open].trim().parse().ok()?;
            let comm = l[open + 1..close].to_owned();
            let mut rest = l[close + 2..].split(' ');
            let state = rest.next()?.chars().next()?;
            let ppid = rest.next()?.parse().ok()?;
            Some((pid, comm, state, ppid))
        })
        .collect()
}

fn wait_stopped(n: &str, within: Duration) -> serde_json::Value {
    wait_for("the container to stop", within, || {
        let v = inspect(n);
        (v["running"] == false && v["State"]["Restarting"] == false).then_some(v)
    })
}

#[test]
fn init_is_pid1_reaps_orphans_and_forwards_stop() {
    let n = unique("init");
    let r = rootfs();
    // The command traps TERM and exits 7; `(sleep 0.3 &)` leaves an orphan that PID 1 must reap.
    let script = "trap 'exit 7' TERM; (sleep 0.3 &); while :; do sleep 0.1; done";
    ok(&g(&[
        "run", "-d", "--init", "--name", &n, "--rootfs", &r, "/bin/sh", "-c", script,
    ]));
    let cmdline = ok(&g(&["exec", &n, "cat", "/proc/1/cmdline"]));
    assert!(
        cmdline.starts_with("gocker-init\0--\0/bin/sh\0-c\0"),
        "PID 1 is the init: {cmdline:?}"
    );
    // The orphan has exited by now: nothing is left a zombie, and the shell is the init's child.
    std::thread::sleep(Duration::from_millis(1200));
    let ps = procs(&n);
    assert!(
        ps.iter().all(|p| p.2 != 'Z'),
        "no zombie under the init: {ps:?}"
    );
    let sh: Vec<_> = ps.iter().filter(|p| p.1 == "sh" && p.3 == 1).collect();
    assert_eq!(sh.len(), 1, "the command is PID 1's child: {ps:?}");
    assert_ne!(sh[0].0, 1);
    // /proc/1/exe is the sealed memfd, not a file of the rootfs or the host.
    let exe = ok(&g(&["exec", &n, "readlink", "/proc/1/exe"]));
    assert!(exe.contains("memfd:gocker-init"), "{exe}");
    let w = g(&["exec", &n, "/bin/sh", "-c", "echo x >> /proc/1/exe"]);
    assert_ne!(w.status.code(), Some(0), "the init cannot be rewritten");

    // The grace period is 60 s: a stop that returns well before it was not a SIGKILL.
    let t = Instant::now();
    ok(&g(&["stop", "-t", "60", &n]));
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "SIGTERM reached the command"
    );
    assert_eq!(inspect(&n)["exit_code"], 7, "the command's own exit code");
    ok(&g(&["rm", &n]));
}

#[test]
fn init_lets_a_command_without_handlers_die_of_sigterm() {
    // Without --init, `sleep` is PID 1 and the kernel drops the SIGTERM it has no handler for:
    // `stop` would wait out the grace period. Under the init it dies at once: 128+15.
    let n = unique("init-term");
    let r = rootfs();
    ok(&g(&[
        "run", "-d", "--init", "--name", &n, "--rootfs", &r, "sleep", "300",
    ]));
    let t = Instant::now();
    ok(&g(&["stop", "-t", "60", &n]));
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert_eq!(inspect(&n)["exit_code"], 143);
    // A missing command: the init says so and exits 127, as docker's.
    let o = g(&[
        "run",
        "--rm",
        "--init",
        "--rootfs",
        &r,
        "no-such-command-here",
    ]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no-such-command-here"),
        "{}",
        stderr(&o)
    );
    ok(&g(&["rm", &n]));
}

/// The times of the container's log lines that say `run`, in seconds.
fn run_times(n: &str) -> Vec<f64> {
    let id = inspect(n)["id"].as_str().unwrap().to_owned();
    let log = std::fs::read_to_string(state_dir().join(&id).join("container.log")).unwrap();
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["log"].as_str().unwrap_or("").starts_with("run"))
        .map(|v| {
            let t = v["time"].as_str().unwrap();
            let parsed =
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .unwrap();
            parsed.unix_timestamp_nanos() as f64 / 1e9
        })
        .collect()
}

#[test]
fn on_failure_restarts_with_dockers_backoff_up_to_the_limit() {
    let n = unique("restart-of");
    let r = rootfs();
    ok(&g(&[
        "run",
        "-d",
        "--restart",
        "on-failure:4",
        "--name",
        &n,
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "echo run; exit 3",
    ]));
    let v = wait_stopped(&n, Duration::from_secs(90));
    assert_eq!(v["RestartCount"], 4, "{v}");
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 4);
    let times = wait_for("five runs in the log", Duration::from_secs(5), || {
        let t = run_times(&n);
        (t.len() == 5).then_some(t)
    });
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // Each gap is docker's delay (100, 200, 400, 800 ms) plus the next run's start; a start
    // takes well under 10 s even on a loaded machine.
    for (gap, delay) in gaps.iter().zip([0.1, 0.2, 0.4, 0.8]) {
        assert!(
            *gap >= delay - 0.01,
            "gap {gap} s before delay {delay} s: {gaps:?}"
        );
        assert!(*gap < delay + 10.0, "gap {gap} s: {gaps:?}");
    }
    // Exit 0 is not a failure: no restart.
    let m = unique("restart-ok");
    ok(&g(&[
        "run",
        "-d",
        "--restart",
        "on-failure",
        "--name",
        &m,
        "--rootfs",
        &r,
        "true",
    ]));
    let v = wait_stopped(&m, Duration::from_secs(20));
    assert_eq!(v["RestartCount"], 0);
    ok(&g(&["rm", &n, &m]));
}

#[test]
fn always_restarts_with_new_pids_and_stop_ends_it() {
    let n = unique("restart-al");
    let r = rootfs();
    ok(&g(&[
        "run",
        "-d",
        "--restart",
        "always",
        "--name",
        &n,
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "sleep 0.5; exit 0",
    ]));
    let mut pids = BTreeSet::new();
    let mut restarting_seen = None;
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end && (pids.len() < 3 || restarting_seen.is_none()) {
        let v = inspect(&n);
        if v["running"] == true {
            if let Some(p) = v["pid"].as_i64() {
                pids.insert(p);
            }
        }
        if restarting_seen.is_none() && v["State"]["Restarting"] == true {
            let line = ok(&g(&["ps", "-a", "--filter", &format!("name={n}")]));
            if line.contains("Restarting (0)") {
                restarting_seen = Some(line);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(pids.len() >= 3, "new processes: {pids:?}");
    let line = restarting_seen.expect("ps showed Restarting between runs");
    assert!(line.contains(" ago"), "{line}");
    assert!(inspect(&n)["RestartCount"].as_u64().unwrap() >= 2);

    ok(&g(&["stop", &n]));
    let v = inspect(&n);
    let count = v["RestartCount"].clone();
    assert_eq!(v["running"], false);
    std::thread::sleep(Duration::from_millis(1500));
    let v = inspect(&n);
    assert_eq!(v["running"], false, "stop ends the restarts: {v}");
    assert_eq!(v["RestartCount"], count);
    // `start` begins again under the same policy.
    ok(&g(&["start", &n]));
    wait_for("a restart after start", Duration::from_secs(20), || {
        (inspect(&n)["RestartCount"].as_u64() > count.as_u64()).then_some(())
    });
    // kill ends it too (a kill that falls between two runs says "not running": again).
    wait_for("a kill of a running run", Duration::from_secs(10), || {
        let o = g(&["kill", &n]);
        if o.status.code() != Some(0) {
            assert!(stderr(&o).contains("is not running"), "{}", stderr(&o));
        }
        (o.status.code() == Some(0)).then_some(())
    });
    let v = wait_stopped(&n, Duration::from_secs(10));
    let c = v["RestartCount"].clone();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(inspect(&n)["RestartCount"], c, "kill ends the restarts");
    assert_eq!(inspect(&n)["running"], false);
    ok(&g(&["rm", &n]));
}

#[test]
fn rm_force_ends_restarts_and_rm_with_restart_is_refused() {
    let r = rootfs();
    let n = unique("restart-rm");
    let marker = format!("marker-{n}");
    let script = format!("sleep 0.2; echo {marker} >/dev/null; exit 1");
    ok(&g(&[
        "run",
        "-d",
        "--restart",
        "always",
        "--name",
        &n,
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        &script,
    ]));
    wait_for("a restart", Duration::from_secs(20), || {
        (inspect(&n)["RestartCount"].as_u64() >= Some(1)).then_some(())
    });
    ok(&g(&["rm", "-f", &n]));
    std::thread::sleep(Duration::from_millis(1000));
    assert!(g(&["inspect", &n]).status.code() != Some(0), "removed");
    assert!(pids_with(&marker).is_empty(), "nothing left running");

    let o = g(&[
        "run",
        "--rm",
        "-d",
        "--restart",
        "always",
        "--rootfs",
        &r,
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("--rm"), "{}", stderr(&o));
    let o = g(&[
        "run",
        "-d",
        "--restart",
        "sometimes",
        "--rootfs",
        &r,
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("sometimes"), "{}", stderr(&o));
}

#[test]
fn health_status_follows_the_check() {
    let n = unique("health");
    let r = rootfs();
    ok(&g(&[
        "run",
        "-d",
        "--name",
        &n,
        "--health-cmd",
        "test -f /health-ok && echo fine",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "touch /health-ok; exec sleep 300",
    ]));
    let v = wait_for("healthy", Duration::from_secs(20), || {
        let v = inspect(&n);
        (v["State"]["Health"]["Status"] == "healthy").then_some(v)
    });
    let log = v["State"]["Health"]["Log"].as_array().unwrap();
    let last = log.last().unwrap();
    assert_eq!(last["ExitCode"], 0);
    assert_eq!(last["Output"], "fine\n");
    assert_eq!(v["Config"]["Healthcheck"]["Retries"], 2);
    let ps = ok(&g(&["ps", "--filter", &format!("name={n}")]));
    assert!(ps.contains("(healthy)"), "{ps}");

    ok(&g(&["exec", &n, "rm", "/health-ok"]));
    let v = wait_for("unhealthy", Duration::from_secs(20), || {
        let v = inspect(&n);
        (v["State"]["Health"]["Status"] == "unhealthy").then_some(v)
    });
    assert!(
        v["State"]["Health"]["FailingStreak"].as_u64().unwrap() >= 2,
        "{v}"
    );
    assert_eq!(
        v["State"]["Health"]["Log"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["ExitCode"],
        1
    );
    let ps = ok(&g(&["ps", "--filter", &format!("name={n}")]));
    assert!(ps.contains("(unhealthy)"), "{ps}");
    assert!(v["State"]["Health"]["Log"].as_array().unwrap().len() <= 5);
    ok(&g(&["rm", "-f", &n]));
}

#[test]
fn health_check_timeout_and_flag_errors() {
    let n = unique("health-to");
    let r = rootfs();
    ok(&g(&[
        "run",
        "-d",
        "--name",
        &n,
        "--health-cmd",
        "sleep 5",
        "--health-interval",
        "100ms",
        "--health-timeout",
        "300ms",
        "--health-retries",
        "1",
        "--rootfs",
        &r,
        "sleep",
        "300",
    ]));
    let v = wait_for("unhealthy by timeout", Duration::from_secs(20), || {
        let v = inspect(&n);
        (v["State"]["Health"]["Status"] == "unhealthy").then_some(v)
    });
    let last = v["State"]["Health"]["Log"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["ExitCode"], -1, "{last}");
    assert!(
        last["Output"]
            .as_str()
            .unwrap()
            .contains("exceeded timeout"),
        "{last}"
    );
    ok(&g(&["rm", "-f", &n]));

    for (args, word) in [
        (
            vec!["--no-healthcheck", "--health-cmd", "true"],
            "conflicts",
        ),
        (
            vec!["--health-cmd", "true", "--health-interval", "soon"],
            "--health-interval",
        ),
        (vec!["--health-retries", "2"], "need a check"),
    ] {
        let mut a = vec!["run", "-d", "--rootfs", &r];
        a.extend(args);
        a.push("true");
        let o = g(&a);
        assert_eq!(o.status.code(), Some(125), "{a:?}");
        assert!(stderr(&o).contains(word), "{a:?}: {}", stderr(&o));
    }
}
