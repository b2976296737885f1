//! The first hour of a docker user (issue 16): the defects they hit, each checked against what
//! really happened (the container's environment, ids, hostname; the state store's record).
//!
//! Runs as root and as the unprivileged users (GOCKER_TEST_MODE).

mod common;
use common::*;

use std::process::Stdio;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn single_id() -> bool {
    std::env::var("GOCKER_TEST_MODE").as_deref() == Ok("rootless-single")
}

fn scratch(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(unique(tag));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[track_caller]
fn fails_125(o: &std::process::Output, needles: &[&str]) -> String {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(125), "{e}");
    for n in needles {
        assert!(e.contains(n), "{n:?} not in: {e}");
    }
    e
}

#[test]
fn env_files_follow_dockers_rules() {
    let d = scratch("envfile");
    let r = rootfs();
    // `export A=1` is not special in docker's env files: a name with whitespace is refused.
    for (body, name) in [("export A=1\n", "export A"), ("# c\nA =1\n", "A ")] {
        let f = d.join("bad.env");
        std::fs::write(&f, body).unwrap();
        let n = unique("envfile-bad");
        let o = g(&[
            "run",
            "--rm",
            "--name",
            &n,
            "--env-file",
            f.to_str().unwrap(),
            "--rootfs",
            &r,
            "/bin/true",
        ]);
        let line = if body.starts_with('#') { 2 } else { 1 };
        fails_125(
            &o,
            &[
                &format!("--env-file {} line {line}", f.display()),
                &format!("{name:?}"),
                "whitespace",
            ],
        );
        assert!(!state_dir().join("names").join(&n).exists());
    }
    let o = {
        let f = d.join("bad.env");
        std::fs::write(&f, "export A=1\n").unwrap();
        g(&[
            "run",
            "--rm",
            "--env-file",
            f.to_str().unwrap(),
            "--rootfs",
            &r,
            "true",
        ])
    };
    assert!(
        stderr(&o).contains("write `A=1` without `export`"),
        "{}",
        stderr(&o)
    );
    // What docker passes through: a BOM dropped, leading blanks dropped, the value untouched
    // (quotes and trailing blanks kept), a bare name copied from gocker's environment, comments
    // and blank lines skipped.
    let f = d.join("good.env");
    std::fs::write(
        &f,
        "\u{feff}B=2\n   C=\"x y\" \n#D=no\n\nFROM_HOST\nUNSET_ON_HOST\nE=a=b\n",
    )
    .unwrap();
    let out = ok(&gocker(&[
        "run",
        "--rm",
        "--env-file",
        f.to_str().unwrap(),
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "echo \"[$B][$C][$FROM_HOST][${UNSET_ON_HOST-unset}][$E]\"; env | grep -c '^export' || true",
    ])
    .env("FROM_HOST", "copied")
    .env_remove("UNSET_ON_HOST")
    .output()
    .unwrap());
    assert_eq!(out, "[2][\"x y\" ][copied][unset][a=b]\n0\n");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn negative_cpus_is_an_error_naming_the_flag_and_value() {
    let r = rootfs();
    for v in ["-1", "-0.5"] {
        let o = g(&["run", "--rm", "--cpus", v, "--rootfs", &r, "/bin/true"]);
        let e = fails_125(&o, &[&format!("--cpus {v}"), "more than 0"]);
        assert!(!e.contains("unexpected argument"), "{e}");
    }
    let o = g(&[
        "run",
        "--rm",
        "--cpu-shares",
        "-1",
        "--rootfs",
        &r,
        "/bin/true",
    ]);
    let e = fails_125(&o, &["--cpu-shares", "-1"]);
    assert!(!e.contains("unexpected argument"), "{e}");
}

#[test]
fn run_help_shows_the_command_as_required() {
    let help = ok(&g(&["run", "--help"]));
    let usage: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Usage:"))
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert!(
        usage[0].contains("gocker run [OPTIONS] <COMMAND [ARG...]>"),
        "{usage:?}"
    );
    assert!(
        usage.iter().any(|l| l.contains("--entrypoint <PROGRAM>")),
        "{usage:?}"
    );
    let arg = help
        .lines()
        .find(|l| l.trim_start().starts_with("[COMMAND [ARG...]]"))
        .unwrap_or_else(|| panic!("{help}"));
    assert!(arg.contains("required"), "{arg}");
    // And it is required indeed.
    let r = rootfs();
    let o = g(&["run", "--rm", "--rootfs", &r]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
}

/// The id of `name` in the test rootfs's /etc/passwd or /etc/group.
fn id_in(file: &str, name: &str) -> u32 {
    let text = std::fs::read_to_string(rootfs_path().join("etc").join(file)).unwrap();
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == name).then(|| f[2].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {name} in the test rootfs's /etc/{file}"))
}

#[test]
fn user_names_come_from_the_containers_passwd() {
    if single_id() {
        // One mapped id: nobody (65534) cannot be mapped; the error says so.
        return;
    }
    let r = rootfs();
    let nobody = id_in("passwd", "nobody");
    let nogroup = id_in("group", "nogroup");
    let out = ok(&sh(&["-u", "nobody"], "id -u; id -g"));
    assert_eq!(out, format!("{nobody}\n{nobody}\n"));
    let out = ok(&sh(&["-u", "nobody:nogroup"], "id -u; id -g"));
    assert_eq!(out, format!("{nobody}\n{nogroup}\n"));
    let o = g(&[
        "run",
        "--rm",
        "-u",
        "nosuchuser",
        "--rootfs",
        &r,
        "/bin/true",
    ]);
    fails_125(&o, &["--user \"nosuchuser\"", "/etc/passwd"]);
    let o = g(&[
        "run",
        "--rm",
        "-u",
        "0:nosuchgroup",
        "--rootfs",
        &r,
        "/bin/true",
    ]);
    fails_125(&o, &["nosuchgroup", "/etc/group"]);
}

/// The names are read inside the rootfs: an absolute symlink there resolves in the rootfs, never
/// to a host file (here: to a path that exists on the host only), and one that stays inside is
/// followed.
#[test]
fn user_lookup_stays_in_the_rootfs() {
    let d = scratch("passwd-link");
    let host_file = d.join("host-passwd");
    std::fs::write(&host_file, "hostonly:x:0:0::/:/bin/sh\n").unwrap();
    let root = d.join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::os::unix::fs::symlink(&host_file, root.join("etc/passwd")).unwrap();
    let o = g(&[
        "run",
        "--rm",
        "-u",
        "hostonly",
        "--rootfs",
        root.to_str().unwrap(),
        "/bin/true",
    ]);
    fails_125(&o, &["no user \"hostonly\""]);
    // The same file inside the rootfs, through the same absolute link: found.
    let inside = root.join(host_file.strip_prefix("/").unwrap());
    std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
    std::fs::copy(&host_file, &inside).unwrap();
    let o = g(&[
        "run",
        "--rm",
        "-u",
        "hostonly",
        "--rootfs",
        root.to_str().unwrap(),
        "/nonexistent-command",
    ]);
    // Past the lookup: the run fails only for the missing command (127).
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn root_runs_any_numeric_uid() {
    if !is_root() {
        return;
    }
    let out = ok(&sh(
        &["-u", "70000:70001"],
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map",
    ));
    let mut l = out.lines();
    assert_eq!(l.next(), Some("70000"), "{out}");
    assert_eq!(l.next(), Some("70001"), "{out}");
    // A mapping of its own, to a distinct host id beside the default range.
    let maps: Vec<Vec<u64>> = l
        .map(|x| x.split_whitespace().map(|n| n.parse().unwrap()).collect())
        .collect();
    for id in [70000u64, 70001] {
        assert!(
            maps.iter().any(|m| m[0] == id && m[2] == 1 && m[1] > 65536),
            "{id} not mapped on its own: {out}"
        );
    }
    // An explicit remap range is kept, and a uid outside it refused.
    let r = rootfs();
    let o = g(&[
        "run",
        "--rm",
        "--userns-remap",
        "2000000000:65536",
        "-u",
        "70000",
        "--rootfs",
        &r,
        "/bin/true",
    ]);
    fails_125(&o, &["--user 70000", "--userns-remap"]);
}

#[test]
fn no_new_privileges_is_accepted() {
    for opt in [
        "no-new-privileges",
        "no-new-privileges=true",
        "no-new-privileges:true",
    ] {
        let out = ok(&sh(
            &["--security-opt", opt],
            "grep NoNewPrivs /proc/self/status",
        ));
        assert_eq!(out.split_whitespace().last(), Some("1"), "{opt}: {out}");
    }
    let r = rootfs();
    let o = g(&[
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges=false",
        "--rootfs",
        &r,
        "/bin/true",
    ]);
    fails_125(&o, &["no-new-privileges=false", "always"]);
    let o = g(&[
        "run",
        "--rm",
        "--security-opt",
        "apparmor=x",
        "--rootfs",
        &r,
        "true",
    ]);
    fails_125(&o, &["apparmor=x", "no-new-privileges"]);
}

#[test]
fn hostnames_are_validated() {
    let r = rootfs();
    let long = "a".repeat(64);
    for h in ["a b", "-a", "a-", "a..b", "a_b", "", long.as_str()] {
        let flag = format!("--hostname={h}");
        let o = g(&["run", "--rm", &flag, "--rootfs", &r, "/bin/true"]);
        fails_125(&o, &[&format!("--hostname {h:?}"), "invalid hostname"]);
    }
    let ok63 = "b".repeat(63);
    for h in ["box-1.example", "x", ok63.as_str()] {
        assert_eq!(ok(&sh(&["--hostname", h], "hostname")), format!("{h}\n"));
    }
}

#[test]
fn inspect_shows_rfc3339_times() {
    let r = rootfs();
    let n = unique("inspect-time");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
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
    let v: serde_json::Value = serde_json::from_str(&ok(&g(&["inspect", &n]))).unwrap();
    let created = v[0]["created"].as_str().unwrap_or_else(|| panic!("{v}"));
    // 2026-12-02T01:02:03.000000000Z
    let b = created.as_bytes();
    assert!(
        created.len() == 30
            && created.ends_with('Z')
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'.',
        "{created}"
    );
    // The same instant as the record's: today's date, from `date -u`.
    let today = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{before}"), "+%Y-%m-%dT%H"])
        .output()
        .unwrap();
    let hour = text(&today.stdout).trim().to_owned();
    let next = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{}", before + 60), "+%Y-%m-%dT%H"])
        .output()
        .unwrap();
    let next = text(&next.stdout).trim().to_owned();
    assert!(
        created.starts_with(&hour) || created.starts_with(&next),
        "{created} vs {hour}"
    );
    ok(&g(&["rm", &n]));
}

/// A pty pair: (master, slave) with the slave open as a file.
fn pty() -> (std::os::fd::OwnedFd, std::fs::File) {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let m = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&m).unwrap();
    unlockpt(&m).unwrap();
    let name = ptsname(&m, Vec::new()).unwrap();
    let s = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    (m, s)
}

#[test]
fn a_shell_without_i_at_a_terminal_says_how_to_get_one() {
    let r = rootfs();
    // README's first command is the interactive one.
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let first = readme
        .lines()
        .find(|l| l.starts_with("cargo run -p gocker-cli"))
        .unwrap();
    assert!(first.contains("-- run -it /bin/sh"), "{first}");

    let run_at_terminal = |args: &[&str]| {
        let (_master, slave) = pty();
        gocker(args).stdin(Stdio::from(slave)).output().unwrap()
    };
    let o = run_at_terminal(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/sh",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("stdin is not attached") && e.contains("gocker run -it"),
        "{e}"
    );
    // Not for other commands, nor where stdin is not a terminal.
    let o = run_at_terminal(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/true",
    ]);
    assert_eq!((o.status.code(), stderr(&o)), (Some(0), String::new()));
    let o = g(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/sh",
    ]);
    assert_eq!((o.status.code(), stderr(&o)), (Some(0), String::new()));
}

#[test]
fn a_terminal_comes_with_term() {
    let r = rootfs();
    // -t without -i: the output comes through the container's terminal (CRLF).
    let o = g(&[
        "run",
        "--rm",
        "-t",
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "echo \"[$TERM]\"",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("[xterm]"), "{}", stdout(&o));
    let o = g(&[
        "run",
        "--rm",
        "-t",
        "-e",
        "TERM=vt100",
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "echo \"[$TERM]\"",
    ]);
    assert!(stdout(&o).contains("[vt100]"), "{}", stdout(&o));
    // No terminal, no TERM (as docker).
    assert_eq!(
        ok(&sh(&["--network", "none"], "echo \"[${TERM-unset}]\"")),
        "[unset]\n"
    );
}

#[test]
fn stop_uses_the_containers_stop_timeout() {
    let r = rootfs();
    let n = unique("stop-timeout");
    // PID 1 without a handler ignores SIGTERM: only the SIGKILL after the grace period stops it.
    ok(&g(&[
        "run",
        "-d",
        "--name",
        &n,
        "--stop-timeout",
        "1",
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "while :; do sleep 1; done",
    ]));
    let t = std::time::Instant::now();
    ok(&g(&["stop", &n]));
    let took = t.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(900) && took < std::time::Duration::from_secs(6),
        "stop took {took:?} (--stop-timeout 1; the default would be 10 s)"
    );
    ok(&g(&["rm", &n]));
}

#[test]
fn rootless_low_ports_name_the_sysctl() {
    if is_root() {
        return;
    }
    let start: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if start <= 80 {
        return;
    }
    let r = rootfs();
    let _tun = tun_shared();
    for mode in ["pasta", "slirp4netns"] {
        let o = g(&[
            "run",
            "--rm",
            "--network",
            mode,
            "-p",
            "80:80",
            "--rootfs",
            &r,
            "/bin/true",
        ]);
        fails_125(
            &o,
            &[
                "--publish",
                "80:80",
                "ip_unprivileged_port_start",
                &format!("({start})"),
            ],
        );
    }
}

#[test]
fn help_texts_name_the_installed_command() {
    let help = ok(&g(&["run", "--help"]));
    assert!(!help.contains("cargo xtask"), "{help}");
    assert!(help.contains("gocker rootfs build"), "{help}");
}
