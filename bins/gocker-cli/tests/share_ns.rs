//! Issue 16: docker's namespace-sharing flags — `--pid`, `--ipc`, `--uts` `host|container:NAME`,
//! `--network container:NAME`, `--userns` — checked against the kernel: the namespace links of
//! the processes read from the host, what the container sees, and the clear refusals. Run as root
//! and as the unprivileged users (`cargo xtask itest`).

mod common;
use common::*;

use std::time::Duration;

fn mode() -> String {
    std::env::var("GOCKER_TEST_MODE").unwrap_or_else(|_| "root".into())
}

fn root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `gocker inspect NAME`'s payload pid.
fn pid_of(name: &str) -> i32 {
    let o = ok(&g(&["inspect", name]));
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    v[0]["pid"].as_i64().expect("pid") as i32
}

/// The `/proc/PID/ns/KIND` link, read from the host.
fn ns(pid: i32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap_or_else(|e| panic!("readlink /proc/{pid}/ns/{kind}: {e}"))
        .display()
        .to_string()
}

/// A detached container NAME running `script` (then its pid), with `extra` flags (and
/// `--network none` unless they name a network).
fn detached(name: &str, extra: &[&str], script: &str) -> i32 {
    let r = rootfs();
    let mut args = vec!["run", "-d", "--name", name, "--rootfs", &r];
    if !extra.contains(&"--network") {
        args.extend_from_slice(&["--network", "none"]);
    }
    args.extend_from_slice(extra);
    args.extend_from_slice(&["/bin/sh", "-c", script]);
    ok(&g(&args));
    pid_of(name)
}

/// Waits until the container's record says it is no longer running; its exit code.
fn wait_exit(name: &str) -> i64 {
    wait_for(&format!("{name} to stop"), Duration::from_secs(20), || {
        let o = g(&["inspect", name]);
        let v: serde_json::Value = serde_json::from_str(&text(&o.stdout)).ok()?;
        (v[0]["running"] == serde_json::Value::Bool(false))
            .then(|| v[0]["exit_code"].as_i64().unwrap_or(-1))
    })
}

/// The container's user namespace and the others, when all of `--pid --ipc --uts --network
/// container:A` are given: the same as A's (read from the host), and its own mount namespace.
#[test]
fn container_mode_joins_the_other_containers_namespaces() {
    let a = unique("share-a");
    let b = unique("share-b");
    let apid = detached(&a, &["--hostname", "alpha"], "sleep 31337");
    let target = format!("container:{a}");
    let bpid = detached(
        &b,
        &[
            "--pid",
            &target,
            "--ipc",
            &target,
            "--uts",
            &target,
            "--network",
            &target,
        ],
        "sleep 31338",
    );
    for kind in ["pid", "ipc", "uts", "net", "user"] {
        assert_eq!(ns(bpid, kind), ns(apid, kind), "{kind} namespace");
    }
    assert_ne!(ns(bpid, "mnt"), ns(apid, "mnt"), "its own mount namespace");
    // And not the host's (the test runs in the host's namespaces).
    let me = std::process::id() as i32;
    for kind in ["pid", "ipc", "uts", "net"] {
        assert_ne!(ns(bpid, kind), ns(me, kind), "{kind}: not the host's");
    }
    // B sees A's hostname, and the dependency is recorded for `start`.
    let o = ok(&g(&["exec", &b, "hostname"]));
    assert_eq!(o.trim(), "alpha");
    let v: serde_json::Value = serde_json::from_str(&ok(&g(&["inspect", &b]))).unwrap();
    let joins = v[0]["spec"]["annotations"]["io.gocker.joins"]
        .as_str()
        .expect("io.gocker.joins")
        .to_owned();
    let aid = {
        let v: serde_json::Value = serde_json::from_str(&ok(&g(&["inspect", &a]))).unwrap();
        v[0]["id"].as_str().unwrap().to_owned()
    };
    for k in ["pid", "ipc", "uts", "net"] {
        assert!(joins.contains(&format!("{k}={aid}")), "{joins}");
    }
    // And shown as docker's HostConfig modes.
    let want = serde_json::Value::String(format!("container:{aid}"));
    for k in ["PidMode", "IpcMode", "UTSMode", "NetworkMode"] {
        assert_eq!(v[0]["HostConfig"][k], want, "{k}");
    }
    let va: serde_json::Value = serde_json::from_str(&ok(&g(&["inspect", &a]))).unwrap();
    assert_eq!(va[0]["HostConfig"]["PidMode"], "");
    assert_eq!(va[0]["HostConfig"]["IpcMode"], "private");
    assert_eq!(va[0]["HostConfig"]["NetworkMode"], "none");
    ok(&g(&["rm", "-f", &b, &a]));
}

#[test]
fn pid_container_sees_the_other_containers_processes() {
    let a = unique("pidshare");
    let apid = detached(&a, &[], "sleep 31339");
    let o = sh(
        &["--network", "none", "--pid", &format!("container:{a}")],
        "echo self=$$; for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done",
    );
    let out = ok(&o);
    assert!(out.contains("sleep 31339"), "A's process is visible: {out}");
    // A's first process is PID 1 of the shared namespace; this shell is another.
    assert!(!out.contains("self=1\n"), "{out}");
    let host_pid = std::fs::read_to_string(format!("/proc/{apid}/status")).unwrap();
    assert!(host_pid.contains("NSpid:"), "{host_pid}");
    assert!(
        host_pid
            .lines()
            .find(|l| l.starts_with("NSpid:"))
            .unwrap()
            .trim_end()
            .ends_with("\t1"),
        "A's payload is PID 1 in its namespace: {host_pid}"
    );
    ok(&g(&["rm", "-f", &a]));
}

/// A POSIX message queue (an IPC namespace object) made in A is seen by B with `--ipc
/// container:A` and by no one else.
#[test]
fn ipc_container_shares_message_queues() {
    let a = unique("ipcshare");
    let q = format!("q{}", std::process::id());
    detached(&a, &[], &format!("touch /dev/mqueue/{q} && sleep 31340"));
    wait_for("the queue", Duration::from_secs(10), || {
        let o = g(&["exec", &a, "ls", "/dev/mqueue"]);
        text(&o.stdout).contains(&q).then_some(())
    });
    let o = sh(
        &["--network", "none", "--ipc", &format!("container:{a}")],
        "ls /dev/mqueue",
    );
    assert!(ok(&o).contains(&q), "B sees A's queue: {}", stdout(&o));
    let o = sh(&["--network", "none"], "ls /dev/mqueue");
    assert!(!ok(&o).contains(&q), "a container of its own does not");
    ok(&g(&["rm", "-f", &a]));
}

/// A listener on A's 127.0.0.1 answers B with `--network container:A`.
#[test]
fn network_container_reaches_the_listener_on_loopback() {
    let a = unique("netshare");
    let port = 20000 + (std::process::id() % 20000);
    // busybox httpd serves /srv/x from A's own tmpfs.
    detached(
        &a,
        &["--tmpfs", "/srv"],
        &format!("echo from-a > /srv/x && httpd -f -p 127.0.0.1:{port} -h /srv"),
    );
    let url = format!("http://127.0.0.1:{port}/x");
    let o = sh(
        &["--network", &format!("container:{a}")],
        &format!("for i in $(seq 50); do wget -q -O - {url} && exit 0; sleep 0.1; done; exit 1"),
    );
    assert_eq!(ok(&o), "from-a\n");
    // Without it, the same address is nobody's.
    let o = sh(&["--network", "none"], &format!("wget -q -T 2 -O - {url}"));
    assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));
    ok(&g(&["rm", "-f", &a]));
}

#[test]
fn host_modes_use_the_callers_namespaces() {
    let me = std::process::id() as i32;
    let o = sh(
        &[
            "--network",
            "host",
            "--pid",
            "host",
            "--ipc",
            "host",
            "--uts",
            "host",
        ],
        &format!(
            "for k in pid ipc uts net; do readlink /proc/self/ns/$k; done; hostname; \
             test -d /proc/{me} && echo sees-the-test"
        ),
    );
    let out = ok(&o);
    let want: String = ["pid", "ipc", "uts", "net"]
        .iter()
        .map(|k| format!("{}\n", ns(me, k)))
        .collect();
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    assert_eq!(out, format!("{want}{host}\nsees-the-test\n"));
}

#[test]
fn hostile_values_are_refused_naming_the_flag() {
    let stopped = unique("share-stopped");
    ok(&g(&[
        "run",
        "--name",
        &stopped,
        "--rootfs",
        &rootfs(),
        "--network",
        "none",
        "/bin/true",
    ]));
    let missing = unique("share-missing");
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            vec!["--pid".into(), format!("container:{missing}")],
            vec![
                format!("--pid container:{missing}"),
                "no such container".into(),
            ],
        ),
        (
            vec!["--ipc".into(), format!("container:{stopped}")],
            vec![format!("--ipc container:{stopped}"), "not running".into()],
        ),
        (
            vec!["--network".into(), "container:".into()],
            vec!["--network".into(), "after `container:`".into()],
        ),
        (
            vec!["--uts".into(), "container:".into()],
            vec!["--uts".into(), "after `container:`".into()],
        ),
        (
            vec!["--pid".into(), "container:../../proc/1".into()],
            vec!["--pid".into(), "not a container name".into()],
        ),
        (
            vec!["--pid".into(), "sideways".into()],
            vec!["--pid".into(), "host or container:NAME".into()],
        ),
        (
            vec![
                "--uts".into(),
                "host".into(),
                "--hostname".into(),
                "x".into(),
            ],
            vec!["--hostname".into(), "--uts host".into()],
        ),
        (
            vec!["--userns".into(), "nobody".into()],
            vec!["--userns".into(), "host or keep-id".into()],
        ),
    ];
    for (args, words) in cases {
        let name = unique("share-refused");
        let mut full: Vec<&str> = vec!["run", "--rm", "--name", &name, "--rootfs"];
        let r = rootfs();
        full.push(&r);
        full.extend(args.iter().map(String::as_str));
        full.push("/bin/true");
        let o = g(&full);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        for w in &words {
            assert!(e.contains(w.as_str()), "{args:?}: {w:?} not in {e}");
        }
        assert!(
            !state_dir().join("names").join(&name).exists(),
            "{args:?}: nothing is left"
        );
    }
    // --network container:A refuses what would be A's.
    let a = unique("share-netconf");
    detached(&a, &[], "sleep 31341");
    for (flag, value) in [("-p", "8080:80"), ("--dns", "1.1.1.1"), ("--hostname", "b")] {
        let o = sh(
            &["--network", &format!("container:{a}"), flag, value],
            "true",
        );
        assert_eq!(o.status.code(), Some(125), "{flag}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("container:{a}")),
            "{}",
            stderr(&o)
        );
    }
    // The joined user namespace's maps are the container's: no other ones can be asked for.
    for (flag, value) in [("--userns-remap", "200000"), ("--userns", "host")] {
        let o = sh(&["--pid", &format!("container:{a}"), flag, value], "true");
        assert_eq!(o.status.code(), Some(125), "{flag}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains(flag) && e.contains(&format!("container:{a}")),
            "{e}"
        );
    }
    ok(&g(&["rm", "-f", &a, &stopped]));
}

/// As docker: the source may be removed while a dependant runs. A network namespace lives on
/// while a process is in it, so the dependant keeps its loopback; the PID namespace ends with
/// its first process, and the kernel kills the dependant, which exits 137.
#[test]
fn removing_the_source_keeps_a_network_dependant_and_ends_a_pid_one() {
    let a = unique("share-src");
    let apid = detached(&a, &[], "sleep 31342");
    let netns = ns(apid, "net");
    let net_b = unique("share-netdep");
    let pid_b = unique("share-piddep");
    let nb = detached(
        &net_b,
        &["--network", &format!("container:{a}")],
        "sleep 31343",
    );
    detached(&pid_b, &["--pid", &format!("container:{a}")], "sleep 31344");
    ok(&g(&["rm", "-f", &a]));
    assert_eq!(wait_exit(&pid_b), 137, "killed with its PID namespace");
    // The network dependant still runs, in the same namespace, with a working loopback.
    assert_eq!(ns(nb, "net"), netns);
    let o = g(&[
        "exec",
        &net_b,
        "/bin/sh",
        "-c",
        "ip -o link show lo || ifconfig lo",
    ]);
    assert!(ok(&o).contains("UP"), "{}", stdout(&o));
    // Starting it again needs the source: refused, naming it.
    ok(&g(&["stop", "-t", "1", &net_b]));
    let o = g(&["start", &net_b]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("no such container"), "{}", stderr(&o));
    ok(&g(&["rm", "-f", &net_b, &pid_b]));
}

/// `start` looks the source up again: after the source was restarted (a new process and new
/// namespaces), the dependant joins the new ones, not whatever has the old pid now.
#[test]
fn start_joins_the_sources_current_namespaces() {
    let a = unique("share-restart");
    let b = unique("share-restarted");
    detached(&a, &[], "sleep 31345");
    detached(&b, &["--uts", &format!("container:{a}")], "sleep 31346");
    ok(&g(&["stop", "-t", "1", &b]));
    ok(&g(&["restart", "-t", "1", &a]));
    let apid = pid_of(&a);
    ok(&g(&["start", &b]));
    let bpid = pid_of(&b);
    assert_eq!(ns(bpid, "uts"), ns(apid, "uts"));
    assert_eq!(ns(bpid, "user"), ns(apid, "user"));
    ok(&g(&["rm", "-f", &b, &a]));
}

#[test]
fn userns_host_and_keep_id() {
    let r = sh(
        &["--network", "none", "--userns", "host"],
        "cat /proc/self/uid_map; id -u",
    );
    let k = sh(
        &["--network", "none", "--userns", "keep-id"],
        "cat /proc/self/uid_map; id -u; id -g",
    );
    match mode().as_str() {
        "root" => {
            let out = ok(&r);
            let words: Vec<&str> = out.split_whitespace().collect();
            assert_eq!(words, ["0", "0", "4294967295", "0"], "{out}");
            assert_eq!(k.status.code(), Some(125));
            assert!(stderr(&k).contains("--userns keep-id"), "{}", stderr(&k));
        }
        m => {
            assert_eq!(r.status.code(), Some(125));
            assert!(stderr(&r).contains("--userns host"), "{}", stderr(&r));
            let uid = rustix::process::geteuid().as_raw();
            let gid = rustix::process::getegid().as_raw();
            if m == "rootless-single" {
                assert_eq!(k.status.code(), Some(125));
                assert!(stderr(&k).contains("/etc/subuid"), "{}", stderr(&k));
            } else {
                let out = ok(&k);
                assert!(
                    out.lines().any(|l| {
                        let w: Vec<&str> = l.split_whitespace().collect();
                        w == [uid.to_string(), uid.to_string(), "1".into()]
                    }),
                    "{out}"
                );
                assert!(out.ends_with(&format!("\n{uid}\n{gid}\n")), "{out}");
            }
        }
    }
}

/// Names resolve in the caller's own state store only: an unprivileged user cannot join root's
/// container (root mode, with itest's user).
#[test]
fn another_users_container_cannot_be_joined() {
    if !root() {
        eprintln!("skipped: needs root to run a container that another user then names");
        return;
    }
    if std::process::Command::new("id")
        .arg("gocker-sub")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        eprintln!("skipped: no test user gocker-sub (cargo xtask itest creates it)");
        return;
    }
    let a = unique("share-roots");
    detached(&a, &[], "sleep 31347");
    let user = TestUser::get("gocker-sub");
    let o = user
        .gocker(
            &[
                "run",
                "--rm",
                "--rootfs",
                &rootfs(),
                "--network",
                "none",
                "--pid",
                &format!("container:{a}"),
                "/bin/true",
            ],
            &[],
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("no such container"), "{}", stderr(&o));
    ok(&g(&["rm", "-f", &a]));
}
