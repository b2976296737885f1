//! Workspace mode (issue 5): lift, nsenter, signals and grace period, binds, supervisor, core
//! limit, enclave, debug sleep, the container's own /etc files. Run by `cargo xtask itest` as root
//! and as the unprivileged users (GOCKER_TEST_MODE).

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The test rootfs, which must have the `/.gocker` mount point of workspace mode.
fn rootfs() -> String {
    let p = rootfs_path();
    assert!(
        p.join(".gocker").is_dir(),
        "GOCKER_TEST_ROOTFS={} has no /.gocker (rebuild it: gocker rootfs build)",
        p.display()
    );
    p.to_str().unwrap().to_owned()
}

fn single_id() -> bool {
    std::env::var("GOCKER_TEST_MODE").as_deref() == Ok("rootless-single")
}

fn lines_with<'a>(out: &'a str, key: &str) -> Vec<&'a str> {
    out.lines().filter_map(|l| l.strip_prefix(key)).collect()
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a process this test started.
    unsafe { libc_kill(pid, sig) };
}
extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn records_with(marker: &str) -> usize {
    std::fs::read_dir(state_dir())
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("state.json"))
                        .map(|s| s.contains(marker))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

fn mount_lines() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// New host mounts that could be this container's: on the rootfs, the state directory or lift's
/// tmpfs (other software on a shared host may mount things meanwhile).
fn new_container_mounts(before: &[String]) -> Vec<String> {
    let (r, s) = (rootfs(), state_dir().display().to_string());
    mount_lines()
        .into_iter()
        .filter(|l| !before.contains(l))
        .filter(|l| {
            l.contains(&r) || l.contains(&s) || l.contains("/.gocker") || l.contains("lift")
        })
        .collect()
}

/// Kills a child when a test fails before waiting for it.
struct Reap(Option<Child>);
impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn lift_returns_the_status_passes_stdio_and_does_what_ring2_cannot() {
    let script = "/.gocker/lift sh -c 'exit 3'; echo rc=$?; \
        echo cap-payload=$(grep CapEff /proc/self/status | cut -f2); \
        echo cap-lift=$(/.gocker/lift grep CapEff /proc/self/status | cut -f2); \
        echo seccomp-payload=$(grep '^Seccomp:' /proc/self/status | cut -f2); \
        echo seccomp-lift=$(/.gocker/lift grep '^Seccomp:' /proc/self/status | cut -f2); \
        mkdir -p /dev/shm/a /dev/shm/b; echo data > /dev/shm/a/f; \
        mount --bind /dev/shm/a /dev/shm/b 2>/dev/null; echo direct=$?; \
        /.gocker/lift mount --bind /dev/shm/a /dev/shm/b; echo lifted=$?; \
        echo seen=$(cat /dev/shm/b/f); \
        echo stdin=$(echo piped | /.gocker/lift cat); \
        /.gocker/lift sh -c 'echo to-stderr >&2' 2>&1 | sed 's/^/stderr=/'; \
        echo pid1=$(/.gocker/lift cat /proc/1/cmdline | tr '\\0' ' '); \
        /.gocker/lift no-such-cmd-xyz 2>/dev/null; echo notfound=$?";
    let out = ok(&sh(&["--workspace"], script));
    assert_eq!(lines_with(&out, "rc="), ["3"], "{out}");
    let (cp, cl) = (
        lines_with(&out, "cap-payload=")[0],
        lines_with(&out, "cap-lift=")[0],
    );
    assert_eq!(cp, "00000000a80425fb", "{out}");
    assert_ne!(cl, cp, "lift keeps ring1's capabilities: {out}");
    assert!(
        u64::from_str_radix(cl, 16).unwrap() & (1 << 21) != 0,
        "CAP_SYS_ADMIN through lift: {out}"
    );
    assert_eq!(
        lines_with(&out, "seccomp-payload="),
        ["2"],
        "the payload is filtered: {out}"
    );
    assert_eq!(
        lines_with(&out, "seccomp-lift="),
        ["0"],
        "lift runs without the filter: {out}"
    );
    assert_eq!(
        lines_with(&out, "direct="),
        ["1"],
        "the default profile refuses a bind mount: {out}"
    );
    assert_eq!(lines_with(&out, "lifted="), ["0"], "{out}");
    assert_eq!(
        lines_with(&out, "seen="),
        ["data"],
        "the lifted mount is in the container's mount namespace: {out}"
    );
    assert_eq!(lines_with(&out, "stdin="), ["piped"], "{out}");
    assert_eq!(lines_with(&out, "stderr="), ["to-stderr"], "{out}");
    assert!(
        lines_with(&out, "pid1=")[0].starts_with("/bin/sh -c"),
        "lift sees the container's PID namespace: {out}"
    );
    assert_eq!(lines_with(&out, "notfound="), ["127"], "{out}");
}

#[test]
fn lift_forwards_signals() {
    let script = "/.gocker/lift sh -c 'trap \"exit 9\" USR1; echo up; while :; do sleep 0.05; done' > /dev/shm/lift-out & p=$!; \
        while ! grep -q up /dev/shm/lift-out 2>/dev/null; do sleep 0.05; done; \
        kill -USR1 $p; wait $p; echo rc=$?; \
        /.gocker/lift sh -c 'kill -TERM $$; sleep 5'; echo killed=$?";
    let out = ok(&sh(&["--workspace"], script));
    assert_eq!(lines_with(&out, "rc="), ["9"], "{out}");
    assert_eq!(lines_with(&out, "killed="), ["143"], "128+SIGTERM: {out}");
}

#[test]
fn lift_is_absent_when_off_and_refused_by_policy() {
    let probe = "ls -A /.gocker | wc -l | sed 's/^ */entries=/'; /.gocker/lift true 2>/dev/null; echo rc=$?";
    for extra in [&[][..], &["--workspace", "--lift=off"][..]] {
        let out = ok(&sh(extra, probe));
        assert_eq!(
            lines_with(&out, "entries="),
            ["0"],
            "{extra:?}: neither binary nor socket: {out}"
        );
        assert_eq!(lines_with(&out, "rc="), ["127"], "{extra:?}: {out}");
    }
    // A plain container can have lift on explicitly.
    assert_eq!(lines_with(&ok(&sh(&["--lift=on"], probe)), "rc="), ["0"]);
    // --lift=root: ring1 refuses other users with a clear error and a non-zero status.
    let out = ok(&sh(&["--workspace", "--lift=root"], "/.gocker/lift id -u"));
    assert_eq!(out, "0\n");
    if !single_id() {
        let o = sh(
            &["--workspace", "--lift=root", "-u", "1000:1000"],
            "/.gocker/lift id -u; echo rc=$?",
        );
        let out = ok(&o);
        assert_eq!(lines_with(&out, "rc="), ["125"], "{out}");
        assert!(
            stderr(&o).contains("refused") && stderr(&o).contains("uid 1000"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn lift_passes_the_callers_terminal() {
    let r = rootfs();
    let o = gocker(&["run", "--rm", "-t", "--workspace", "--rootfs", &r, "/bin/sh", "-c", "/.gocker/lift sh -c 'test -t 0 && test -t 1 && echo lifted-tty=$(tty)'; echo own-tty=$(tty)"])
        .output()
        .unwrap();
    let out = ok(&o).replace('\r', "");
    let lifted = lines_with(&out, "lifted-tty=");
    assert_eq!(lifted.len(), 1, "{out}");
    assert!(lifted[0].starts_with("/dev/pts/"), "{out}");
    assert_eq!(
        lines_with(&out, "own-tty="),
        lifted,
        "the same terminal: {out}"
    );
}

#[test]
fn nsenter_shows_the_containers_processes() {
    let name = unique("nsenter");
    let inner = unique("inside");
    let outer = unique("outside");
    let mut host = Command::new("sh")
        .args(["-c", "while :; do sleep 1; done", &outer])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let r = rootfs();
    ok(&gocker(&[
        "run",
        "-d",
        "--rm",
        "--name",
        &name,
        "--hostname",
        "nsbox",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "while :; do sleep 1; done",
        &inner,
    ])
    .output()
    .unwrap());
    let ps = gocker(&[
        "nsenter", "--target", &name, "--mount", "--pid", "ps", "-o", "pid,args",
    ])
    .output()
    .unwrap();
    let all = gocker(&["nsenter", "--target", &name, "hostname"])
        .output()
        .unwrap();
    let _ = gocker(&["kill", &name]).output();
    host.kill().unwrap();
    let _ = host.wait();
    let out = ok(&ps);
    assert!(out.contains(&inner), "the container's processes: {out}");
    assert!(!out.contains(&outer), "a host process is visible: {out}");
    let pid1 = out
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap_or_default();
    assert!(pid1.contains(&inner), "the payload is PID 1 there: {out}");
    assert_eq!(
        ok(&all),
        "nsbox\n",
        "no flags: every namespace, UTS included"
    );
    let o = gocker(&["nsenter", "--target", "no-such-container-xyz", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("no-such-container-xyz"),
        "{}",
        stderr(&o)
    );
}

/// Starts `gocker run EXTRA... sh -c SCRIPT MARKER` in the background; returns the child once a
/// process carrying the marker runs inside.
fn spawn_marked(extra: &[&str], script: &str, marker: &str) -> Child {
    let r = rootfs();
    let mut args = vec!["run", "--rm", "--rootfs", r.as_str()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["/bin/sh", "-c", script, marker]);
    let child = gocker(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let gpid = child.id() as i32;
    wait_for("the payload to start", Duration::from_secs(5), || {
        pids_with(marker)
            .into_iter()
            .find(|p| *p != gpid && !cmdline(*p).contains("gocker"))
    });
    child
}

#[test]
fn sigterm_reaches_the_payload_and_a_deaf_one_is_killed_after_the_grace_period() {
    let marker = unique("term");
    let child = spawn_marked(
        &["--workspace"],
        "trap 'exit 42' TERM; while true; do sleep 0.05; done",
        &marker,
    );
    std::thread::sleep(Duration::from_millis(100));
    signal(child.id() as i32, libc_sigterm());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));

    let marker = unique("deaf");
    let child = spawn_marked(
        &["--workspace", "--stop-timeout", "1"],
        "trap '' TERM; while true; do sleep 0.05; done",
        &marker,
    );
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    signal(child.id() as i32, libc_sigterm());
    let o = child.wait_with_output().unwrap();
    let took = t.elapsed();
    assert_eq!(
        o.status.code(),
        Some(137),
        "SIGKILL after the grace period: {}",
        stderr(&o)
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "grace period 1s, took {took:?}"
    );
}

fn libc_sigterm() -> i32 {
    15
}

#[test]
fn sigkill_of_ring0_takes_the_rings_and_lifted_commands_down() {
    let marker = unique("ring0kill");
    let before = mount_lines();
    let lifted = format!("{marker}-lifted");
    let script =
        format!("/.gocker/lift sh -c 'sleep 30; true' {lifted} & while true; do sleep 0.05; done");
    let child = spawn_marked(&["--workspace"], &script, &marker);
    let mut child = Reap(Some(child));
    wait_for("the lifted command", Duration::from_secs(5), || {
        (!pids_with(&lifted).is_empty()).then_some(())
    });
    let c = child.0.as_mut().unwrap();
    c.kill().unwrap();
    let t = Instant::now();
    c.wait().unwrap();
    child.0 = None;
    wait_for(
        "the rings to die with ring0",
        Duration::from_secs(1),
        || pids_with(&marker).is_empty().then_some(()),
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(
        new_container_mounts(&before),
        Vec::<String>::new(),
        "host mounts left behind"
    );
    let o = gocker(&["ps", "-a"]).output().unwrap();
    assert!(!stdout(&o).contains(&marker), "{}", stdout(&o));
    assert_eq!(records_with(&marker), 0, "state records left behind");
}

#[test]
fn binds_supervisor_and_core_limit() {
    let dir = std::env::temp_dir().join(unique("wsbind"));
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(a.join("from-env"), "env-bind\n").unwrap();
    std::fs::write(
        b.join("super"),
        "#!/bin/sh\necho \"supervisor pid $$ args: $*\"\nexec \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        b.join("super"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let json = format!(
        r#"[{{"source":"{}","target":"/srv","readonly":true}}]"#,
        a.display()
    );
    let flag = format!("{}:/opt", b.display());
    let r = rootfs();
    let o = gocker(&["run", "--rm", "--workspace", "--rootfs", &r, "--bind", &flag, "--supervisor", "/opt/super", "--core-limit", "1m", "/bin/sh", "-c",
        "cat /srv/from-env; touch /srv/x 2>/dev/null || echo env-ro; echo core=$(ulimit -c); grep 'core file' /proc/self/limits | tr -s ' '; echo pid=$$"])
        .env("GOCKER_WORKSPACE_BINDS", &json)
        .output()
        .unwrap();
    let out = ok(&o);
    assert!(
        out.starts_with("supervisor pid 1 args: /bin/sh -c"),
        "the supervisor is PID 1 with the command as arguments: {out}"
    );
    assert!(out.contains("env-bind\n"), "{out}");
    assert!(out.contains("env-ro\n"), "readonly from the JSON: {out}");
    assert!(
        out.contains("Max core file size 1048576 1048576 bytes"),
        "{out}"
    );
    // busybox's ulimit -c counts 512-byte blocks.
    assert_eq!(lines_with(&out, "core="), ["2048"], "{out}");
    assert_eq!(
        lines_with(&out, "pid="),
        ["1"],
        "the supervisor exec'd the command: {out}"
    );
    for (limit, shown) in [("0", "0"), ("unlimited", "unlimited")] {
        let out = ok(&sh(&["--workspace", "--core-limit", limit], "ulimit -c"));
        assert_eq!(out.trim(), shown, "--core-limit {limit}");
    }
    let o = sh(&["--bind", "/nonexistent-src-xyz:/x"], "true");
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("/nonexistent-src-xyz"),
        "{}",
        stderr(&o)
    );
    let o = gocker(&["run", "--rm", "--workspace", "--rootfs", &r, "true"])
        .env("GOCKER_WORKSPACE_BINDS", "{bad")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("GOCKER_WORKSPACE_BINDS"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn enclave_runs_privileged_in_ring2s_namespaces_before_the_payload() {
    let out = ok(&sh(
        &["--workspace", "--enclave", "mount -t tmpfs enclave /mnt && echo from-enclave > /mnt/x && ip link set lo mtu 1500 && echo $$ > /mnt/pid"],
        "cat /mnt/x; grep -c ' /mnt .* - tmpfs enclave' /proc/self/mountinfo; echo pid=$$",
    ));
    assert_eq!(out, "from-enclave\n1\npid=1\n", "{out}");
    let o = sh(&["--workspace", "--enclave", "exit 5"], "echo payload-ran");
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "",
        "the payload must not start after a failed enclave"
    );
    assert!(
        stderr(&o).contains("enclave") && stderr(&o).contains("status 5"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn debug_sleep_keeps_ring1_for_nsenter_after_a_failure() {
    let r = rootfs();
    let t = Instant::now();
    let mut child = gocker(&[
        "run",
        "--rm",
        "--workspace",
        "--hostname",
        "dbgbox",
        "--debug-sleep",
        "3",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "exit 4",
    ])
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 && !line.contains("keeps its namespaces") {
        line.clear();
    }
    let pid = line
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_else(|| panic!("no ring1 pid in {line:?}"))
        .to_owned();
    let ns = gocker(&["nsenter", "--target", &pid, "--uts", "hostname"])
        .output()
        .unwrap();
    let st = child.wait().unwrap();
    assert_eq!(ok(&ns), "dbgbox\n", "ring1's namespaces during the sleep");
    assert_eq!(st.code(), Some(4));
    assert!(t.elapsed() >= Duration::from_secs(3), "{:?}", t.elapsed());
    // No failure, no sleep.
    let t = Instant::now();
    ok(&sh(&["--workspace", "--debug-sleep", "3"], "true"));
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn hosts_and_resolv_conf_are_the_containers_own_and_editable() {
    let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    let out = ok(&sh(
        &["--workspace", "--hostname", "wshost"],
        "grep -E '^127.0.0.1[[:space:]]+wshost$' /etc/hosts && echo mapped; echo '192.0.2.7 added' >> /etc/hosts && grep -c added /etc/hosts; \
         echo 'nameserver 192.0.2.53' > /etc/resolv.conf && cat /etc/resolv.conf",
    ));
    assert_eq!(out.lines().filter(|l| *l == "mapped").count(), 1, "{out}");
    assert!(out.contains("\n1\nnameserver 192.0.2.53\n"), "{out}");
    assert_eq!(
        std::fs::read_to_string("/etc/hosts").unwrap(),
        host_hosts,
        "the host's file is untouched"
    );
}

#[test]
fn lift_and_enclave_in_exec_spawn_mode() {
    let r = rootfs();
    let o = gocker(&[
        "run",
        "--rm",
        "--workspace",
        "--enclave",
        "echo enclave-ran",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "/.gocker/lift sh -c 'exit 3'; echo rc=$?",
    ])
    .env("GOCKER_SPAWN", "exec")
    .output()
    .unwrap();
    assert_eq!(ok(&o), "enclave-ran\nrc=3\n");
}

#[test]
fn a_stopped_workspace_starts_again_with_lift() {
    let name = unique("wsrestart");
    let r = rootfs();
    let o = gocker(&[
        "run",
        "--workspace",
        "--name",
        &name,
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "/.gocker/lift sh -c 'exit 7'; echo lift=$?; grep -c . /etc/hosts",
    ])
    .output()
    .unwrap();
    let first = ok(&o);
    assert!(first.starts_with("lift=7\n"), "{first}");
    ok(&gocker(&["start", &name]).output().unwrap());
    let w = gocker(&["wait", &name]).output().unwrap();
    let logs = gocker(&["logs", &name]).output().unwrap();
    let _ = gocker(&["rm", "-f", &name]).output();
    assert_eq!(ok(&w), "0\n");
    // The log holds both runs (the foreground one is logged too, as with docker), and the
    // second prints what the first did.
    assert_eq!(
        ok(&logs),
        format!("{first}{first}"),
        "the same mounts and files on the second start, none doubled"
    );
}

/// Issue 16: lift needs nothing in the rootfs. Over a copy-on-write root, its mount point is made
/// in the container's upper layer; the rootfs directory never gains a `/.gocker`.
#[test]
fn lift_works_over_a_rootfs_without_its_mount_point_and_leaves_the_rootfs_alone() {
    let dir = std::env::temp_dir().join(format!("gocker-nolift-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Files this user cannot read are skipped (rootless phases): the shell and lift need none.
    let _ = Command::new("cp")
        .args(["-a", &format!("{}/.", rootfs_path().display())])
        .arg(&dir)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let _ = std::fs::remove_dir(dir.join(".gocker"));
    assert!(dir.join("bin/sh").exists() && !dir.join(".gocker").exists());
    let r = dir.to_str().unwrap().to_owned();
    let probe = "test -x /.gocker/lift && test -S /.gocker/lift.sock && echo lift-ready";
    let o = gocker(&[
        "run",
        "--rm",
        "--workspace",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        probe,
    ])
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert_eq!(stdout(&o), "lift-ready\n", "--rm: {}", stderr(&o));
    let n = unique("nolift");
    let o = gocker(&[
        "run",
        "--name",
        &n,
        "--workspace",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        probe,
    ])
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert_eq!(stdout(&o), "lift-ready\n", "named: {}", stderr(&o));
    ok(&g(&["rm", &n]));
    assert!(
        !dir.join(".gocker").exists(),
        "the rootfs gained a /.gocker: {}",
        dir.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
