//! Integration tests for `gocker run` against the real kernel: what issue 2 must show.
//! Run by `cargo xtask itest` as root (GOCKER_TEST_MODE=root) and as unprivileged users
//! (rootless-subuid: a /etc/subuid range; rootless-single: one mapped id).

mod common;
use common::*;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[derive(Debug, PartialEq, Clone, Copy)]
enum Mode {
    Root,
    Subuid,
    Single,
}

fn mode() -> Mode {
    match std::env::var("GOCKER_TEST_MODE").as_deref() {
        Ok("rootless-subuid") => Mode::Subuid,
        Ok("rootless-single") => Mode::Single,
        Ok("root") => Mode::Root,
        _ if rustix::process::geteuid().is_root() => Mode::Root,
        _ => panic!("set GOCKER_TEST_MODE for unprivileged runs"),
    }
}

/// Starts `gocker run` of `sh -c SCRIPT MARKER` in the background; returns the child and the
/// payload's host pid (found by the marker argument). SCRIPT must not end in a simple command,
/// which the shell would exec in place (losing the marker).
fn spawn_marked(script: &str, marker: &str) -> (Child, i32) {
    let r = rootfs_path();
    let child = gocker(&[
        "run",
        "--rm",
        "--rootfs",
        r.to_str().unwrap(),
        "/bin/sh",
        "-c",
        script,
        marker,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let gpid = child.id() as i32;
    let payload = wait_for("the payload to start", Duration::from_secs(5), || {
        pids_with(marker)
            .into_iter()
            .find(|p| *p != gpid && !cmdline(*p).contains("gocker"))
    });
    (child, payload)
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a pid we started.
    unsafe { libc_kill(pid, sig) };
}
extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn command_is_pid_1_and_sees_no_host_process() {
    let marker = unique("hostmarker");
    // A host process carrying the marker (the shell stays, since its script does not end in a
    // simple command); its stdio must not hold the test harness's pipes.
    let mut host = Command::new("sh")
        .args(["-c", "while :; do sleep 1; done", &marker])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = ok(&sh(
        &[],
        "echo pid=$$; ps -o pid,args; ls /proc | grep -c '^[0-9]'",
    ));
    host.kill().unwrap();
    let _ = host.wait();
    assert!(out.starts_with("pid=1\n"), "{out}");
    assert!(
        !out.contains(&marker),
        "a host process is visible inside: {out}"
    );
    // Only the shell and ps exist: at most 3 numeric entries (sh, ps, grep/ls).
    let n: usize = out.lines().last().unwrap().trim().parse().unwrap();
    assert!(n <= 4, "too many processes visible: {out}");
}

#[test]
fn own_hostname() {
    assert_eq!(ok(&sh(&["--hostname", "box1"], "hostname")), "box1\n");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let inside = ok(&sh(&[], "hostname"));
    assert_ne!(inside, host);
    assert_eq!(
        inside.trim().len(),
        12,
        "default hostname is the short id: {inside}"
    );
}

#[test]
fn host_files_are_unreachable() {
    let dir = std::env::temp_dir().join(unique("secret"));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret.txt");
    std::fs::write(&secret, "TOPSECRET").unwrap();
    let s = secret.display();
    let script = format!(
        "cat {s}; cat /proc/1/root{s}; cat /proc/self/root{s}; ln -s {s} /tmp/l 2>/dev/null; cat /tmp/l; \
         readlink /proc/1/root; ls /proc/1/root/ | grep -c . ; true"
    );
    let o = sh(&[], &script);
    let out = ok(&o);
    assert!(!out.contains("TOPSECRET"), "host file reached: {out}");
    assert!(
        out.contains("/\n"),
        "readlink /proc/1/root should be /: {out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn container_root_is_not_host_root() {
    let out = ok(&sh(&[], "head -n1 /proc/self/uid_map; id -u"));
    let mut l = out.lines();
    let map: Vec<u64> = l
        .next()
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(map[0], 0);
    assert_ne!(map[1], 0, "uid 0 inside maps to host root: {out}");
    assert_eq!(l.next(), Some("0"));

    // From the host: the payload's real uid is non-zero.
    let marker = unique("uidmarker");
    let (mut child, pid) = spawn_marked("sleep 5; true", &marker);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_owned();
    signal(pid, 9);
    let _ = child.wait();
    let uid: u64 = uid_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_ne!(uid, 0, "payload runs as host root: {uid_line}");
    assert_eq!(
        uid as u32,
        if mode() == Mode::Root {
            map[1] as u32
        } else {
            rustix::process::geteuid().as_raw()
        }
    );
}

#[test]
fn exit_codes_follow_docker() {
    assert_eq!(sh(&[], "exit 7").status.code(), Some(7));
    let r = rootfs_path();
    let o = gocker(&[
        "run",
        "--rm",
        "--rootfs",
        r.to_str().unwrap(),
        "no-such-command-xyz",
    ])
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(stderr(&o).contains("no-such-command-xyz"), "{}", stderr(&o));
    let o = gocker(&["run", "--rm", "--rootfs", r.to_str().unwrap(), "/etc"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    let o = gocker(&[
        "run",
        "--rm",
        "--rootfs",
        "/nonexistent/rootfs-x",
        "/bin/true",
    ])
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("/nonexistent/rootfs-x"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        stderr(&o).lines().count(),
        1,
        "one-line error: {}",
        stderr(&o)
    );
    let o = gocker(&["run", "--no-such-flag", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "usage errors are gocker errors");
    assert!(stderr(&o).contains("--no-such-flag"), "{}", stderr(&o));
}

#[test]
fn killed_payload_gives_128_plus_signal() {
    let marker = unique("killmarker");
    let (child, pid) = spawn_marked("sleep 100; true", &marker);
    signal(pid, 9);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
}

#[test]
fn signals_sent_to_gocker_reach_the_command() {
    for (sig, code) in [(15, 42), (2, 43), (10, 44)] {
        let marker = unique("sigmarker");
        let script = "trap 'exit 42' TERM; trap 'exit 43' INT; trap 'exit 44' USR1; echo ready; while true; do sleep 0.05; done";
        let (child, _pid) = spawn_marked(script, &marker);
        std::thread::sleep(Duration::from_millis(100));
        signal(child.id() as i32, sig);
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(code), "signal {sig}: {}", stderr(&o));
    }
}

#[test]
fn stdin_passes_through_only_with_i() {
    let r = rootfs_path();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--rm", "--rootfs", r.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push("cat");
        let mut c = Command::new(bin())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(b"hello\n").unwrap();
        c.wait_with_output().unwrap()
    };
    assert_eq!(ok(&run(&["-i"])), "hello\n");
    assert_eq!(ok(&run(&[])), "", "without -i the command reads /dev/null");
}

#[test]
fn env_workdir_and_user() {
    let out = ok(&sh(
        &["-e", "FOO=bar baz", "-w", "/work/dir"],
        "echo \"$FOO\"; pwd",
    ));
    assert_eq!(out, "bar baz\n/work/dir\n");
    assert_eq!(ok(&sh(&["-u", "0:0"], "id -u; id -g")), "0\n0\n");
    let o = sh(
        &["-u", "1000:1000"],
        "id -u; id -g; grep CapEff /proc/self/status",
    );
    if mode() == Mode::Single {
        assert_eq!(o.status.code(), Some(125));
        assert!(stderr(&o).contains("not mapped"), "{}", stderr(&o));
    } else {
        let out = ok(&o);
        assert!(out.starts_with("1000\n1000\n"), "{out}");
        assert!(
            out.contains("CapEff:\t0000000000000000"),
            "non-root keeps capabilities: {out}"
        );
    }
}

#[test]
fn read_only_root() {
    let o = sh(
        &["--read-only"],
        "touch /newfile; echo rc=$?; echo x > /dev/shm/ok && cat /dev/shm/ok",
    );
    let out = ok(&o);
    assert!(out.contains("rc=1"), "{out}");
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    assert!(out.contains("x\n"), "/dev/shm stays writable: {out}");
}

#[test]
fn rootfs_ownership_per_mode() {
    // The test rootfs is owned by host root.
    let o = sh(
        &[],
        "stat -c %u /bin; f=/etc/gocker-own-$$; touch $f && echo wrote && rm $f; true",
    );
    let out = ok(&o);
    match mode() {
        // Idmapped: host root's files are container root's, and container root can write them.
        Mode::Root => assert!(out.starts_with("0\nwrote"), "{out} {}", stderr(&o)),
        // Rootless: no idmap; host root's files show as nobody and are not writable.
        _ => {
            assert!(out.starts_with("65534\n"), "{out}");
            assert!(!out.contains("wrote"), "{out}");
        }
    }
}

#[test]
fn security_defaults() {
    let script = "grep -E '^(NoNewPrivs|CapBnd|CapEff)' /proc/self/status; \
        for f in /proc/kcore /proc/keys /proc/timer_list; do [ -e $f ] && echo masked=$(cat $f | wc -c); done; \
        echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo procsys=rw || echo procsys=ro; \
        echo rocount=$(grep -E ' /sys | /proc/sys ' /proc/self/mountinfo | grep -c ' ro,'); \
        echo dev=$(ls -A /dev | tr '\\n' ' '); echo x > /dev/null && echo devnull=ok; \
        echo net=$(ls /sys/class/net | tr '\\n' ' '); echo lo=$(cat /sys/class/net/lo/operstate); \
        echo devpts=$(grep -c ' /dev/pts .* devpts ' /proc/self/mountinfo)";
    let out = ok(&sh(&["--network", "none"], script));
    let get = |k: &str| -> Vec<String> {
        out.lines()
            .filter_map(|l| {
                l.strip_prefix(&format!("{k}="))
                    .map(|v| v.trim().to_owned())
            })
            .collect()
    };
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("CapBnd:\t00000000a80425fb"), "{out}");
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    let masked = get("masked");
    assert!(
        !masked.is_empty() && masked.iter().all(|v| v == "0"),
        "masked /proc files must read empty: {out}"
    );
    assert_eq!(get("procsys"), ["ro"], "{out}");
    assert_eq!(
        get("rocount"),
        ["2"],
        "/sys and /proc/sys must be read-only: {out}"
    );
    let dev = get("dev");
    let mut dev: Vec<&str> = dev[0].split_whitespace().collect();
    dev.sort();
    assert_eq!(
        dev,
        [
            "core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr",
            "stdin", "stdout", "tty", "urandom", "zero"
        ],
        "{out}"
    );
    assert_eq!(get("devnull"), ["ok"], "{out}");
    assert_eq!(get("net"), ["lo"], "only loopback: {out}");
    assert!(
        matches!(get("lo")[0].as_str(), "unknown" | "up"),
        "lo is up: {out}"
    );
    assert_eq!(get("devpts"), ["1"], "devpts mounted: {out}");
}

fn mount_lines() -> std::collections::BTreeSet<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Mounts that appeared on the host since `before` and belong to gocker: anything on or under the
/// rootfs or the state directory, or naming gocker. (Other mounts may come and go on a shared host
/// while the test runs; those are not ours.)
#[track_caller]
fn assert_no_new_gocker_mounts(before: &std::collections::BTreeSet<String>) {
    let rootfs = rootfs_path().display().to_string();
    let state = state_dir().display().to_string();
    let ours: Vec<String> = mount_lines()
        .difference(before)
        .filter(|l| l.contains(&rootfs) || l.contains(&state) || l.contains("gocker"))
        // The store's own tmpfs, which the first gocker on a host without a tmpfs /run mounts
        // and leaves (gocker-runtime's volatile.rs): the mount point itself, never below it.
        .filter(|l| !is_store_tmpfs(l, &state))
        .cloned()
        .collect();
    assert!(ours.is_empty(), "host mount table changed: {ours:#?}");
}

/// A mountinfo line of a tmpfs mounted exactly at the state store.
fn is_store_tmpfs(line: &str, state: &str) -> bool {
    let Some((pre, post)) = line.split_once(" - ") else {
        return false;
    };
    pre.split_whitespace().nth(4) == Some(state) && post.starts_with("tmpfs ")
}

fn container_dirs() -> Vec<String> {
    std::fs::read_dir(state_dir())
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "names")
                .collect()
        })
        .unwrap_or_default()
}

/// Containers this test binary started (by the marker in their command) that have a record.
fn records_with(marker: &str) -> usize {
    container_dirs()
        .iter()
        .filter(|d| {
            std::fs::read_to_string(state_dir().join(d).join("state.json"))
                .map(|s| s.contains(marker))
                .unwrap_or(false)
        })
        .count()
}

#[test]
fn many_runs_leave_nothing_behind() {
    let n: usize = std::env::var("GOCKER_TEST_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let marker = unique("manyruns");
    let before = mount_lines();
    let r = rootfs_path();
    for i in 0..n {
        let o = gocker(&[
            "run",
            "--rm",
            "--rootfs",
            r.to_str().unwrap(),
            "/bin/sh",
            "-c",
            "true",
            &marker,
        ])
        .output()
        .unwrap();
        assert_eq!(o.status.code(), Some(0), "run {i}: {}", stderr(&o));
    }
    assert_no_new_gocker_mounts(&before);
    assert!(pids_with(&marker).is_empty(), "processes left behind");
    assert_eq!(records_with(&marker), 0, "state records left behind");
}

#[test]
fn sigkill_at_random_moments_leaves_nothing_behind() {
    let marker = unique("sigkillruns");
    let before = mount_lines();
    let r = rootfs_path();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for _ in 0..30 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = (seed >> 33) % 40;
        let mut c = gocker(&[
            "run",
            "--rm",
            "--rootfs",
            r.to_str().unwrap(),
            "/bin/sh",
            "-c",
            "sleep 30",
            &marker,
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        c.kill().unwrap();
        c.wait().unwrap();
    }
    wait_for(
        "the rings to die with ring0",
        Duration::from_secs(3),
        || pids_with(&marker).is_empty().then_some(()),
    );
    assert_no_new_gocker_mounts(&before);
    // The next gocker invocation collects the records of the killed monitors.
    let o = gocker(&["ps", "-a"]).output().unwrap();
    assert!(!stdout(&o).contains(&marker), "{}", stdout(&o));
    assert_eq!(records_with(&marker), 0, "state records left behind");
}

#[test]
fn kept_record_without_rm() {
    let name = unique("kept");
    let r = rootfs_path();
    let o = gocker(&[
        "run",
        "--name",
        &name,
        "--rootfs",
        r.to_str().unwrap(),
        "/bin/sh",
        "-c",
        "exit 3",
    ])
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let ps = ok(&gocker(&["ps", "-a"]).output().unwrap());
    let line = ps
        .lines()
        .find(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("{name} not listed: {ps}"));
    assert!(line.contains("Exited (3) "), "{line}");
    assert!(
        !ok(&gocker(&["ps"]).output().unwrap()).contains(&name),
        "stopped containers only with -a"
    );
    let o = gocker(&[
        "run",
        "--name",
        &name,
        "--rootfs",
        r.to_str().unwrap(),
        "/bin/true",
    ])
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("already in use"), "{}", stderr(&o));
    ok(&gocker(&["rm", &name]).output().unwrap());
    assert!(!ok(&gocker(&["ps", "-a"]).output().unwrap()).contains(&name));
    let o = gocker(&["rm", &name]).output().unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("no such container"), "{}", stderr(&o));
}

#[test]
fn default_rootfs_is_announced() {
    // With an empty data dir, gocker uses /var/lib/gocker/rootfs/alpine if provisioned, else the host view.
    let home = std::env::temp_dir().join(unique("home"));
    std::fs::create_dir_all(&home).unwrap();
    let o = gocker(&["run", "--rm", "/bin/sh", "-c", "echo hi"])
        .env("HOME", &home)
        .env_remove("XDG_DATA_HOME")
        .output()
        .unwrap();
    assert_eq!(ok(&o), "hi\n");
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    let expected = if Path::new("/var/lib/gocker/rootfs/alpine/bin/sh").exists() {
        "gocker: using the provisioned rootfs"
    } else {
        "gocker: no rootfs provisioned"
    };
    assert!(lines[0].starts_with(expected), "{err}");
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn host_view_has_private_writable_tmp() {
    let r = Path::new("/");
    let _ = r;
    let o = gocker(&[
        "run",
        "--rm",
        "/bin/sh",
        "-c",
        "touch /tmp/x && echo tmp-ok; touch /etc/gocker-x 2>/dev/null || echo etc-ro",
    ])
    .env("HOME", "/nonexistent")
    .env_remove("XDG_DATA_HOME")
    .output()
    .unwrap();
    if stderr(&o).contains("no rootfs provisioned") {
        assert_eq!(ok(&o), "tmp-ok\netc-ro\n");
    }
}

#[test]
fn exec_spawn_mode_behaves_the_same() {
    let r = rootfs_path();
    let o = gocker(&[
        "run",
        "--rm",
        "--rootfs",
        r.to_str().unwrap(),
        "/bin/sh",
        "-c",
        "echo $$; grep NoNewPrivs /proc/self/status; exit 5",
    ])
    .env("GOCKER_SPAWN", "exec")
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(stdout(&o), "1\nNoNewPrivs:\t1\n");
}

/// Controllers enabled at the root of the host's cgroup2 hierarchy ("" when there is none).
fn host_v2_controllers() -> String {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = mi.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        (post.split_whitespace().next()? == "cgroup2")
            .then(|| pre.split_whitespace().nth(4).map(str::to_owned))?
    });
    mount
        .and_then(|m| std::fs::read_to_string(Path::new(&m).join("cgroup.controllers")).ok())
        .unwrap_or_default()
}

#[test]
fn limits_are_never_a_silent_no_op() {
    let usable = host_v2_controllers()
        .split_whitespace()
        .any(|c| c == "memory")
        && mode() == Mode::Root;
    let o = sh(&["--memory", "64m"], "echo ran");
    if usable {
        // A pure cgroup v2 host (the VM tests cover the limits themselves).
        assert_eq!(ok(&o), "ran\n");
    } else {
        // Hybrid host (controllers bound to v1) or rootless without delegation: a clear error.
        assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
        assert_eq!(stdout(&o), "", "the command must not run without its limit");
        let err = stderr(&o);
        assert!(err.contains("memory") || err.contains("delegat"), "{err}");
        assert!(err.contains("cgroup"), "{err}");
    }
    // A run without limits works everywhere.
    assert_eq!(ok(&sh(&[], "echo ran")), "ran\n");
    // Bad values name the flag.
    let o = sh(&["--memory", "12q"], "true");
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("--memory"), "{}", stderr(&o));
}
