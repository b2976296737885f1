//! Detached containers: run -d, ps, logs, exec, stop, kill, wait, inspect, rm — as root and as
//! unprivileged users (the test runs in every GOCKER_TEST_MODE).

mod common;
use common::*;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn name(tag: &str) -> String {
    format!("{tag}-{}", std::process::id())
}

fn ps_json(all: bool) -> Vec<serde_json::Value> {
    let args: &[&str] = if all {
        &["ps", "-a", "--format", "json"]
    } else {
        &["ps", "--format", "json"]
    };
    serde_json::from_str(&ok(&g(args))).expect("ps --format json parses")
}

fn pid_alive(pid: i64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn detached_lifecycle() {
    let n = name("web");
    let r = rootfs();
    let script = "echo started; echo to-stderr >&2; trap 'echo got-term; exit 0' TERM; while :; do sleep 0.1; done";
    let id = ok(&g(&[
        "run", "-d", "--name", &n, "--rootfs", &r, "/bin/sh", "-c", script,
    ]))
    .trim()
    .to_owned();
    assert_eq!(id.len(), 32, "prints the full id: {id}");

    // ps lists it, and --format json parses with the right fields.
    assert!(ok(&g(&["ps"]))
        .lines()
        .any(|l| l.contains(&n) && l.contains(" Up ")));
    let entry = ps_json(false)
        .into_iter()
        .find(|c| c["name"] == n.as_str())
        .expect("listed in json");
    assert_eq!(entry["id"], id.as_str());
    let payload = entry["pid"].as_i64().unwrap();
    assert!(pid_alive(payload));

    // logs: both streams, in their own streams.
    let end = Instant::now() + Duration::from_secs(5);
    let logs = loop {
        let o = g(&["logs", &n]);
        // Two pumps copy the two streams independently: wait for both lines.
        let both = String::from_utf8_lossy(&o.stderr).contains("to-stderr")
            && String::from_utf8_lossy(&o.stdout).contains("started");
        if both || Instant::now() > end {
            break o;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "started\n");
    assert!(String::from_utf8_lossy(&logs.stderr).contains("to-stderr"));
    let ts = ok(&g(&["logs", "-t", "--tail", "1", &n]));
    assert!(
        ts.is_empty() || ts.contains('T') && ts.contains('Z'),
        "RFC 3339 timestamps: {ts}"
    );

    // exec runs inside: same hostname, the payload is PID 1 there.
    let inside = ok(&g(&[
        "exec",
        &n,
        "sh",
        "-c",
        "echo hi; cat /proc/1/cmdline | tr '\\0' ' '",
    ]));
    assert!(
        inside.starts_with("hi\n") && inside.contains("while :"),
        "{inside}"
    );
    assert_eq!(
        g(&["exec", &n, "sh", "-c", "exit 4"]).status.code(),
        Some(4)
    );
    assert_eq!(g(&["exec", &n, "no-such-cmd"]).status.code(), Some(127));

    // stop: SIGTERM reaches the trap, well within the grace period.
    let t = Instant::now();
    ok(&g(&["stop", "-t", "10", &n]));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        t.elapsed()
    );
    assert!(
        !pid_alive(payload)
            || std::fs::read_to_string(format!("/proc/{payload}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true)
    );
    assert!(ok(&g(&["logs", &n])).contains("got-term"));
    assert_eq!(ok(&g(&["wait", &n])).trim(), "0");
    let insp: serde_json::Value = serde_json::from_str(&ok(&g(&["inspect", &n]))).unwrap();
    assert_eq!(insp[0]["exit_code"], 0);
    assert_eq!(insp[0]["running"], false);
    assert_eq!(insp[0]["spec"]["process"]["args"][2], script);
    assert!(!ps_json(false).iter().any(|c| c["name"] == n.as_str()));

    // rm removes it and its state.
    ok(&g(&["rm", &n]));
    assert!(!ps_json(true).iter().any(|c| c["name"] == n.as_str()));
    assert!(!state_dir().join(&id).exists());
    assert!(!state_dir().join("names").join(&n).exists());
}

#[test]
fn stop_kills_after_the_grace_period() {
    let n = name("stubborn");
    let r = rootfs();
    ok(&g(&[
        "run",
        "-d",
        "--name",
        &n,
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "trap '' TERM; while :; do sleep 0.1; done",
    ]));
    let t = Instant::now();
    ok(&g(&["stop", "-t", "1", &n]));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(ok(&g(&["wait", &n])).trim(), "137");
    ok(&g(&["rm", &n]));
}

#[test]
fn twenty_detached_containers() {
    let r = rootfs();
    let names: Vec<String> = (0..20).map(|i| name(&format!("many{i}"))).collect();
    for n in &names {
        ok(&g(&[
            "run",
            "-d",
            "--rm",
            "--name",
            n,
            "--rootfs",
            &r,
            "/bin/sh",
            "-c",
            "trap 'exit 0' TERM; while :; do sleep 0.2; done",
        ]));
    }
    let listed = ps_json(false);
    for n in &names {
        assert!(
            listed.iter().any(|c| c["name"] == n.as_str()),
            "{n} not listed"
        );
    }
    let mut args = vec!["stop", "-t", "5"];
    args.extend(names.iter().map(String::as_str));
    ok(&g(&args));
    // --rm: the monitors remove the records once the payloads are gone.
    let end = Instant::now() + Duration::from_secs(5);
    while ps_json(true)
        .iter()
        .any(|c| names.iter().any(|n| c["name"] == n.as_str()))
    {
        assert!(Instant::now() < end, "records left behind");
        std::thread::sleep(Duration::from_millis(50));
    }
    for n in &names {
        assert!(!state_dir().join("names").join(n).exists(), "{n}");
    }
    // No monitor (its command line carries the name) and no cgroup is left.
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<i32> = names
            .iter()
            .flat_map(|n| pids_with(&format!("\0{n}\0")))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < end, "processes left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn errors_name_the_container() {
    let o = g(&["logs", "no-such-container-xyz"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-container-xyz"));
    let o = g(&["exec", "no-such-container-xyz", "true"]);
    assert_eq!(o.status.code(), Some(125));
    let o = g(&["kill", "-s", "NOPE", "x"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("NOPE"));
}

/// Runs `cmd` under a fresh pseudo-terminal of `rows`x`cols` (util-linux `script`).
fn under_pty(rows: u16, cols: u16, cmd: &str) -> Output {
    let inner = format!("stty rows {rows} cols {cols}; {cmd}");
    Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux)")
}

fn quoted(args: &[&str]) -> String {
    args.iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn run_and_exec_with_a_terminal() {
    let r = rootfs();
    let b = bin();
    let probe = "tty; stty size; exit 6";
    let run = quoted(&[
        b.to_str().unwrap(),
        "run",
        "--rm",
        "-it",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        probe,
    ]);
    let o = under_pty(27, 91, &run);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(6), "{out}");
    assert!(
        out.contains("/dev/pts/0"),
        "tty prints the container's pts: {out}"
    );
    assert!(
        out.contains("27 91"),
        "stty size matches the outer window: {out}"
    );

    // Without a terminal on our side, -t still gives the payload one.
    let o = g(&["run", "--rm", "-t", "--rootfs", &r, "/bin/sh", "-c", "tty"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("/dev/pts/"),
        "{o:?}"
    );

    let n = name("tty");
    ok(&g(&[
        "run",
        "-d",
        "--name",
        &n,
        "--rootfs",
        &r,
        "/bin/sleep",
        "1000",
    ]));
    let exec = quoted(&[
        b.to_str().unwrap(),
        "exec",
        "-it",
        &n,
        "/bin/sh",
        "-c",
        probe,
    ]);
    let o = under_pty(22, 77, &exec);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(6), "{out}");
    assert!(out.contains("/dev/pts/") && out.contains("22 77"), "{out}");
    ok(&g(&["rm", "-f", &n]));
}

/// Runs `cmd` under a fresh pseudo-terminal of `rows`x`cols` and types `steps` into it, each
/// after its delay in milliseconds; returns once `cmd` exited (at most 30 s).
fn typed_under_pty(rows: u16, cols: u16, cmd: &str, steps: &[(u64, &[u8])]) -> Output {
    use std::io::{Read, Write};
    let inner = format!("stty rows {rows} cols {cols}; {cmd}");
    let mut child = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let mut stdin = child.stdin.take().unwrap();
    for (delay, bytes) in steps {
        std::thread::sleep(Duration::from_millis(*delay));
        let _ = stdin.write_all(bytes);
        let _ = stdin.flush();
    }
    // Input stays open until the command is done: script ends its session at end of input.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    let mut stderr = Vec::new();
    let _ = child.stderr.take().unwrap().read_to_end(&mut stderr);
    Output {
        status,
        stdout: reader.join().unwrap(),
        stderr,
    }
}

fn status_of(name: &str) -> Option<String> {
    ps_json(true)
        .into_iter()
        .find(|c| c["name"] == name)
        .map(|c| c["status"].as_str().unwrap_or_default().to_owned())
}

#[test]
fn detach_keys_and_attach() {
    let r = rootfs();
    let b = bin();
    let b = b.to_str().unwrap();

    // Ctrl-P Ctrl-Q leaves the shell running; `attach` comes back to it with our window size.
    let n = name("detach");
    let run = quoted(&[b, "run", "-it", "--name", &n, "--rootfs", &r, "/bin/sh"]);
    let o = typed_under_pty(
        30,
        100,
        &run,
        &[(1500, b"echo a$((40+2))\n"), (1000, b"\x10\x11")],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("a42"), "input reached the shell: {out}");
    assert!(out.contains("detached from"), "{out}");
    assert_eq!(status_of(&n).as_deref(), Some("running"), "{out}");
    let attach = quoted(&[b, "attach", &n]);
    let o = typed_under_pty(
        20,
        50,
        &attach,
        &[(1000, b"stty size; echo b$((1+2))\n"), (500, b"exit 5\n")],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(5), "the payload's exit code: {out}");
    assert!(out.contains("20 50") && out.contains("b3"), "{out}");
    assert_eq!(status_of(&n).as_deref(), Some("stopped"), "{out}");
    ok(&g(&["rm", &n]));

    // A Ctrl-P that does not start the sequence reaches the container; other keys can be chosen;
    // a --rm container is removed when it ends after a detach.
    let n = name("detach-rm");
    let probe = "read x; printf %s \"$x\" | od -An -tx1; read y; echo got-$y";
    let run = quoted(&[
        b,
        "run",
        "-it",
        "--rm",
        "--detach-keys",
        "ctrl-x",
        "--name",
        &n,
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        probe,
    ]);
    let o = typed_under_pty(24, 80, &run, &[(1500, b"\x10z\n"), (1000, b"\x18")]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("10 7a"), "Ctrl-P z reached the payload: {out}");
    assert_eq!(status_of(&n).as_deref(), Some("running"), "{out}");
    let attach = quoted(&[b, "attach", &n]);
    let o = typed_under_pty(24, 80, &attach, &[(1000, b"last\n")]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("got-last"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while status_of(&n).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status_of(&n), None, "--rm removed the container");
    assert!(!state_dir().join(&n).exists());

    // Errors name what is wrong.
    let o = g(&[
        "run",
        "-it",
        "--detach-keys",
        "ctrl-1",
        "--rootfs",
        &r,
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("--detach-keys") && e.contains("ctrl-1"), "{e}");
    let o = g(&["run", "-d", "-i", "--rootfs", &r, "true"]);
    assert_eq!(o.status.code(), Some(125));
    // A command that does not exist: 127 (as docker), through the monitor too, leaving nothing.
    // `-it` needs a terminal on stdin (else `the input device is not a TTY`): under a pty, where
    // gocker's stderr comes through the terminal, so on script's stdout.
    for mode in ["-d", "-t", "-it"] {
        let n = name("missing-cmd");
        let (code, err) = if mode == "-it" {
            let b = bin();
            let cmd = quoted(&[
                b.to_str().unwrap(),
                "run",
                mode,
                "--name",
                &n,
                "--rootfs",
                &r,
                "/nope",
            ]);
            let o = under_pty(24, 80, &cmd);
            (o.status.code(), text(&o.stdout))
        } else {
            let o = g(&["run", mode, "--name", &n, "--rootfs", &r, "/nope"]);
            (o.status.code(), text(&o.stderr))
        };
        assert_eq!(code, Some(127), "{mode}: {err}");
        assert!(err.contains("/nope"), "{mode}: {err}");
        assert_eq!(status_of(&n), None, "{mode}: no record left");
    }
    let n = name("attach-notty");
    ok(&g(&[
        "run",
        "-d",
        "--name",
        &n,
        "--rootfs",
        &r,
        "/bin/sleep",
        "1000",
    ]));
    let o = g(&["attach", &n]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no terminal"),
        "{o:?}"
    );
    ok(&g(&["rm", "-f", &n]));
    let o = g(&["attach", &n]);
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn start_restart_top() {
    let n = name("again");
    let r = rootfs();
    ok(&g(&[
        "run",
        "-d",
        "--name",
        &n,
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "echo run; exec sleep 1000",
    ]));
    ok(&g(&["stop", "-t", "1", &n]));
    assert!(!ps_json(false).iter().any(|c| c["name"] == n.as_str()));
    ok(&g(&["start", &n]));
    let first = ps_json(false)
        .into_iter()
        .find(|c| c["name"] == n.as_str())
        .expect("running again");
    let top = ok(&g(&["top", &n]));
    let pid = first["pid"].as_i64().unwrap().to_string();
    assert!(top.lines().any(|l| l.split_whitespace().nth(1) == Some(pid.as_str()) && l.ends_with("sleep 1000")), "{top}");
    ok(&g(&["restart", "-t", "1", &n]));
    let second = ps_json(false)
        .into_iter()
        .find(|c| c["name"] == n.as_str())
        .expect("running after restart");
    assert_ne!(first["pid"], second["pid"], "a new payload");
    assert_eq!(first["id"], second["id"], "the same container");
    let end = Instant::now() + Duration::from_secs(5);
    while ok(&g(&["logs", &n])).matches("run\n").count() < 3 {
        assert!(
            Instant::now() < end,
            "logs keep every run: {}",
            ok(&g(&["logs", &n]))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ok(&g(&["rm", "-f", &n]));
    assert!(!ps_json(true).iter().any(|c| c["name"] == n.as_str()));
}

#[test]
fn entrypoint_and_env_file() {
    let r = rootfs();
    let file = std::env::temp_dir().join(format!("gocker-envfile-{}", std::process::id()));
    std::fs::write(&file, "# comment\nA=from-file\n\nB=two words\n").unwrap();
    let out = ok(&g(&[
        "run",
        "--rm",
        "--rootfs",
        &r,
        "--env-file",
        file.to_str().unwrap(),
        "-e",
        "A=from-flag",
        "--entrypoint",
        "/bin/sh",
        "--",
        "-c",
        "echo \"$A|$B\"",
    ]));
    assert_eq!(out, "from-flag|two words\n");
    let o = g(&[
        "run",
        "--rm",
        "--rootfs",
        &r,
        "--env-file",
        "/no/such/envfile",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--env-file /no/such/envfile"));
    std::fs::remove_file(file).unwrap();
}

#[test]
fn info_reports_the_cgroup_setup() {
    let out = ok(&g(&["info"]));
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v1_memory = mountinfo.lines().any(|l| {
        l.split(" - ")
            .nth(1)
            .is_some_and(|p| p.starts_with("cgroup ") && p.contains("memory"))
    });
    let line = out
        .lines()
        .find(|l| l.contains("cgroup v2 controllers"))
        .expect("a cgroup line");
    if v1_memory {
        assert!(
            line.contains("hybrid") && line.contains("memory") && line.starts_with("WARN"),
            "{out}"
        );
    } else {
        assert!(!line.contains("hybrid"), "{out}");
    }
    let json: serde_json::Value = serde_json::from_str(&ok(&g(&["info", "--json"]))).unwrap();
    assert_eq!(json["rootless"], !rustix::process::geteuid().is_root());
}

#[test]
fn a_failed_start_keeps_the_container_and_its_logs() {
    let n = name("keep");
    let r = rootfs();
    let vol = std::env::temp_dir().join(format!("gocker-keep-{}", std::process::id()));
    std::fs::create_dir_all(&vol).unwrap();
    let v = format!("{}:/data", vol.display());
    ok(&g(&[
        "run",
        "-d",
        "--name",
        &n,
        "-v",
        &v,
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "echo first",
    ]));
    assert_eq!(ok(&g(&["wait", &n])).trim(), "0");
    // The volume's source is gone: starting again must fail, and leave the stopped container as it was.
    std::fs::remove_dir(&vol).unwrap();
    let o = g(&["start", &n]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    let entry = ps_json(true)
        .into_iter()
        .find(|c| c["name"] == n.as_str())
        .expect("still listed after a failed start");
    assert_eq!(entry["status"], "stopped");
    assert_eq!(ok(&g(&["logs", &n])), "first\n");
    ok(&g(&["rm", &n]));
}

/// `exec -it`: the detach keys leave the exec'd command running, and what it prints afterwards is
/// drained (a command that writes megabytes to its terminal after the detach still gets on);
/// nothing of the exec is left once the container is gone.
#[test]
fn exec_detach_keys() {
    let r = rootfs();
    let b = bin();
    let b = b.to_str().unwrap();
    let n = name("exec-detach");
    ok(&g(&[
        "run", "-d", "--name", &n, "--rootfs", &r, "sleep", "1000",
    ]));
    let exec = quoted(&[b, "exec", "-it", &n, "/bin/sh"]);
    let o = typed_under_pty(
        24,
        80,
        &exec,
        &[
            (1000, b"(sleep 1; seq 1 300000; exec sleep 301) &\n"),
            (300, b"echo c$((2+5))\n"),
            (500, b"\x10\x11"),
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("c7") && out.contains("detached from"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let top = ok(&g(&["top", &n]));
        if top.contains("sleep 301") {
            assert!(top.contains("/bin/sh"), "the shell is still there: {top}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the output after the detach was not drained: {top}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !pids_with(&format!("exec\0-it\0{n}\0")).is_empty(),
        "the keeper holds the terminal"
    );

    // Without -i and -t the flag is refused by name.
    let o = g(&["exec", "--detach-keys", "ctrl-x", &n, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(text(&o.stderr).contains("--detach-keys"), "{o:?}");

    ok(&g(&["rm", "-f", &n]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids_with(&format!("exec\0-it\0{n}\0")).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left behind: {:?}",
            pids_with(&format!("exec\0-it\0{n}\0"))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An attached client that stops reading (here: its own output is never read) misses output but
/// does not stall the container's terminal or its log; the container still ends and is removed.
#[test]
fn a_stalled_attach_client_does_not_stall_the_container() {
    let r = rootfs();
    let b = bin();
    let b = b.to_str().unwrap();
    let n = name("stalled");
    ok(&g(&[
        "run",
        "-dit",
        "--rm",
        "--name",
        &n,
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "sleep 2; seq 1 200000; echo done-seq; sleep 3",
    ]));
    // `script` relays attach's terminal to a pipe that nobody reads: it blocks, then attach does.
    let client = Command::new("script")
        .args([
            "-qec",
            &quoted(&[b, "attach", "--no-stdin", &n]),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux)");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _client = Kill(client);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok(&g(&["logs", "--tail", "1", &n])).contains("done-seq") {
        assert!(
            Instant::now() < deadline,
            "the container's output stalled behind the attached client"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The monitor gives up on the client at the end and removes the --rm container.
    let deadline = Instant::now() + Duration::from_secs(20);
    while status_of(&n).is_some() {
        assert!(Instant::now() < deadline, "the container was not removed");
        std::thread::sleep(Duration::from_millis(200));
    }
}
