//! docker's container status words (`ps`'s STATUS column, `{{.Status}}`, `{{.State}}`, inspect's
//! `State`) and `update --restart`: checked against what really ran (the exit code the payload
//! chose, the restarts the monitor counted). Root and the unprivileged users (GOCKER_TEST_MODE).

mod common;
use common::*;

use std::time::Duration;

fn inspect(n: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&ok(&g(&["inspect", n]))).expect("json");
    v[0].clone()
}

/// A detached container without network running `script`; extra `run` flags first.
fn detached(name: &str, extra: &[&str], script: &str) {
    let r = rootfs();
    let mut a = vec!["run", "-d", "--name", name, "--network", "none"];
    a.extend_from_slice(extra);
    a.extend_from_slice(&["--rootfs", &r, "/bin/sh", "-c", script]);
    ok(&g(&a));
}

/// `ps -a --format TEMPLATE` of the one container named exactly `name`.
fn ps_field(name: &str, template: &str) -> String {
    ok(&g(&[
        "ps",
        "-a",
        "--filter",
        &format!("name=^{name}$"),
        "--format",
        template,
    ]))
    .trim_end()
    .to_owned()
}

fn is_rfc3339(v: &serde_json::Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() >= 20 && s.ends_with('Z') && !s.starts_with("0001"))
}

#[test]
fn ps_and_inspect_show_dockers_status_words() {
    let up = unique("st-up");
    let exited = unique("st-ex");
    let created = unique("st-cr");
    detached(&up, &[], "sleep 300");
    detached(&exited, &[], "exit 3");
    ok(&g(&[
        "create",
        "--name",
        &created,
        "--network",
        "none",
        "--rootfs",
        &rootfs(),
        "true",
    ]));

    // Running: `Up N seconds` (or `Less than a second`), state `running`, in the table too.
    let status = ps_field(&up, "{{.Status}}");
    assert!(status.starts_with("Up "), "{status:?}");
    assert!(
        status.ends_with(" seconds")
            || status.ends_with(" second")
            || status.ends_with("than a second"),
        "{status:?}"
    );
    assert_eq!(ps_field(&up, "{{.State}}"), "running");
    let line = ps_field(&up, "{{.Names}}\t{{.Status}}");
    assert!(line.starts_with(&format!("{up}\tUp ")), "{line:?}");
    let table = ok(&g(&["ps", "--filter", &format!("name=^{up}$")]));
    let row = table.lines().find(|l| l.contains(&up)).expect("listed");
    assert!(row.contains(" Up "), "{row}");
    let v = inspect(&up);
    assert_eq!(v["State"]["Status"], "running");
    assert_eq!(v["State"]["Running"], true);
    assert_eq!(v["State"]["Paused"], false);
    assert_eq!(v["State"]["ExitCode"], 0);
    assert!(is_rfc3339(&v["State"]["StartedAt"]), "{}", v["State"]);
    assert_eq!(v["State"]["FinishedAt"], "0001-01-01T00:00:00Z");

    // Exited with the payload's own code: `Exited (3) N seconds ago`, state `exited`.
    let status = wait_for("the exit", Duration::from_secs(20), || {
        let s = ps_field(&exited, "{{.Status}}");
        s.starts_with("Exited").then_some(s)
    });
    assert!(status.starts_with("Exited (3) "), "{status:?}");
    assert!(status.ends_with(" ago"), "{status:?}");
    assert_eq!(ps_field(&exited, "{{.State}}"), "exited");
    let table = ok(&g(&["ps", "-a", "--filter", &format!("name=^{exited}$")]));
    let row = table.lines().find(|l| l.contains(&exited)).expect("listed");
    assert!(row.contains("Exited (3) "), "{row}");
    let v = inspect(&exited);
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["Running"], false);
    assert_eq!(v["State"]["ExitCode"], 3);
    assert!(is_rfc3339(&v["State"]["StartedAt"]), "{}", v["State"]);
    assert!(is_rfc3339(&v["State"]["FinishedAt"]), "{}", v["State"]);

    // Made by `create`, never started: `Created`.
    assert_eq!(ps_field(&created, "{{.Status}}"), "Created");
    assert_eq!(ps_field(&created, "{{.State}}"), "created");
    let v = inspect(&created);
    assert_eq!(v["State"]["Status"], "created");
    assert_eq!(v["State"]["StartedAt"], "0001-01-01T00:00:00Z");

    ok(&g(&["rm", "-f", &up, &exited, &created]));
}

#[test]
fn update_restart_changes_what_the_monitor_does_at_the_next_exit() {
    let n = unique("upd-rs");
    // Started with --restart=no; the first run fails after 3 s, time enough for the update.
    detached(&n, &["--restart", "no"], "sleep 3; exit 1");
    assert_eq!(inspect(&n)["HostConfig"]["RestartPolicy"]["Name"], "no");
    assert_eq!(
        ok(&g(&["update", "--restart", "on-failure:2", &n])).trim(),
        n
    );
    let v = inspect(&n);
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);
    // Two restarts (each a new run that fails again), then it stays down with the run's code.
    let v = wait_for("the restarts to end", Duration::from_secs(60), || {
        let v = inspect(&n);
        (v["running"] == false && v["State"]["Restarting"] == false && v["RestartCount"] == 2)
            .then_some(v)
    });
    assert_eq!(v["State"]["ExitCode"], 1, "{}", v["State"]);
    std::thread::sleep(Duration::from_millis(1500));
    let v = inspect(&n);
    assert_eq!(v["RestartCount"], 2, "at most 2 restarts");
    assert_eq!(v["running"], false);
    ok(&g(&["rm", &n]));
}

#[test]
fn update_restart_refuses_bad_policies_and_rm_containers() {
    let n = unique("upd-bad");
    detached(&n, &[], "sleep 300");
    for bad in ["sometimes", "on-failure:x", "always:3"] {
        let o = g(&["update", "--restart", bad, &n]);
        assert_eq!(o.status.code(), Some(125), "{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains("--restart"), "{bad}: {}", stderr(&o));
    }
    assert_eq!(
        inspect(&n)["HostConfig"]["RestartPolicy"]["Name"],
        "no",
        "nothing recorded"
    );
    let o = g(&["update", "--restart", "always", "no-such-container-xyz"]);
    assert_ne!(o.status.code(), Some(0));
    let rm = unique("upd-rm");
    detached(&rm, &["--rm"], "sleep 300");
    let o = g(&["update", "--restart", "always", &rm]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("--rm"), "{}", stderr(&o));
    ok(&g(&["rm", "-f", &n, &rm]));
}
