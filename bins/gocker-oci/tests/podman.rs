//! podman with `--runtime gocker-oci` (root phase of `cargo xtask itest`, which installs podman),
//! with podman's stock configuration and storage: Debian's own containers.conf (no
//! `CONTAINERS_CONF`: its `default_sysctls` has `net.ipv4.ping_group_range`, and the default
//! network is podman's bridge, whose namespace podman creates and the container joins by path),
//! podman's default storage driver (overlay here, which cannot be idmapped) and its storage
//! layout and permissions (`0700` directories owned by root, which the container's remapped root
//! cannot traverse). docs/oci.md, "podman".
//!
//! The only flags are where the storage lives and the ones this host forces:
//! - `--root`/`--runroot` in a temporary directory, made `0700` like `/var/lib/containers` (the
//!   test leaves the host's storage alone); podman makes everything below it with its own modes;
//! - `--pids-limit -1`: podman's default limit of 2048 needs the pids controller on cgroup v2,
//!   which this hybrid host binds to v1; gocker-oci refuses it rather than dropping it (tested);
//! - `--ulimit nofile=1024:1024 --ulimit nproc=1000:1000`: podman's defaults exceed this
//!   machine's hard limits, and the container's user namespace cannot raise them.
//!
//! The default network is CNI's bridge on Debian 12: the test removes the `cni-podman0` bridge,
//! the CNI firewall chains and the lease directory afterwards when it created them.

mod common;
use common::{ok, rootfs};

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Podman {
    dir: PathBuf,
}

/// What this host forces (see the module's documentation); nothing else is changed.
const LIMITS: [&str; 6] = [
    "--pids-limit",
    "-1",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1000:1000",
];

impl Podman {
    fn base(&self) -> Vec<String> {
        let d = self.dir.display();
        [
            "podman".to_owned(),
            format!("--root={d}/root"),
            format!("--runroot={d}/run"),
            format!("--runtime={}", env!("CARGO_BIN_EXE_gocker-oci")),
        ]
        .into()
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let b = self.base();
        let mut c = Command::new(&b[0]);
        c.args(&b[1..])
            .args(args)
            .stdin(Stdio::null())
            .env_remove("CONTAINERS_CONF");
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd(&["rm", "-af", "-t", "0"]).output();
        let _ = self.cmd(&["rmi", "-af"]).output();
        // The overlay driver leaves its directory mounted (and a container's root, had one been
        // left): unmounted before the directory is removed.
        let root = self.dir.join("root");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| Path::new(m).starts_with(&root))
            .collect();
        under.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in under {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `path` is a directory owned by root with mode 0700, as podman's stock storage is.
#[track_caller]
fn assert_private(path: &Path) {
    let m = std::fs::metadata(path).unwrap();
    assert!(
        m.is_dir() && m.uid() == 0 && m.permissions().mode() & 0o7777 == 0o700,
        "{}: mode {:o}, uid {}",
        path.display(),
        m.permissions().mode(),
        m.uid()
    );
}

#[test]
fn stock_podman_with_gocker_oci() {
    if std::env::var("GOCKER_TEST_MODE").as_deref() != Ok("root") {
        eprintln!(
            "podman test: root phase only (rootless podman needs its own user namespace setup)"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("gocker-podman-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let _cleanup = CniCleanup::new();
    let p = Podman { dir: dir.clone() };

    // Import the test rootfs as an image.
    let mut tar = Command::new("tar")
        .args(["-C", &rootfs(), "-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let o = p
        .cmd(&["import", "-", "gocker-test-busybox"])
        .stdin(tar.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(tar.wait().unwrap().success());
    ok(&o);
    // podman's own layout and modes, untouched: its directories are root's and 0700.
    let driver = ok(&p.run(&["info", "--format", "{{.Store.GraphDriverName}}"]));
    let driver = driver.trim();
    for d in [
        dir.join("root"),
        dir.join("run"),
        dir.join(format!("root/{driver}-containers")),
        dir.join(format!("root/{driver}-layers")),
        dir.join(format!("run/{driver}-containers")),
    ] {
        assert_private(&d);
    }

    // run --rm with the default network: output, uid 0, the rlimits reached the container, and
    // containers.conf's ping_group_range is set in podman's network namespace, in the
    // container's own gids; the bind targets the image lacked were made.
    let mut args = vec!["run", "--rm"];
    args.extend(LIMITS);
    args.extend([
        "gocker-test-busybox",
        "sh",
        "-c",
        "echo ok; id; ulimit -n; cat /proc/sys/net/ipv4/ping_group_range; \
         ip -4 -o addr show eth0 | grep -o 'inet [0-9.]*'; \
         test -f /run/.containerenv && echo containerenv; cat /etc/hostname",
    ]);
    let out = ok(&p.run(&args));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"ok"), "{out}");
    assert!(
        lines.get(1).is_some_and(|l| l.starts_with("uid=0(root)")),
        "{out}"
    );
    assert_eq!(lines.get(2), Some(&"1024"), "{out}");
    assert_eq!(lines.get(3), Some(&"0\t0"), "{out}");
    assert!(
        lines.get(4).is_some_and(|l| l.starts_with("inet 10.88.")),
        "{out}"
    );
    assert_eq!(lines.get(5), Some(&"containerenv"), "{out}");
    assert!(lines.get(6).is_some_and(|h| !h.is_empty()), "{out}");

    // podman's default pids limit cannot be applied on this host: refused, not dropped.
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let o = p.run(&[
            "run",
            "--rm",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1000:1000",
            "gocker-test-busybox",
            "true",
        ]);
        assert!(!o.status.success());
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("pids"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    // run -d, exec, logs, stop, rm.
    let name = format!("gocker-podman-{}", std::process::id());
    let mut args = vec!["run", "-d", "--name", &name];
    args.extend(LIMITS);
    args.extend([
        "gocker-test-busybox",
        "sh",
        "-c",
        "echo hello-log; trap 'echo got-term; exit 0' TERM; while :; do sleep 0.1; done",
    ]);
    ok(&p.run(&args));
    let o = p.run(&[
        "exec",
        &name,
        "sh",
        "-c",
        "echo in-exec $(cat /proc/1/cmdline | tr '\\0' ' '); exit 3",
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("in-exec sh -c"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // --pid container:NAME: podman passes that container's PID namespace by path; its payload
    // is PID 1 here.
    let pid_mode = format!("container:{name}");
    let mut args = vec!["run", "--rm", "--pid", &pid_mode];
    args.extend(LIMITS);
    args.extend([
        "gocker-test-busybox",
        "sh",
        "-c",
        "echo pid1 $(cat /proc/1/cmdline | tr '\\0' ' ')",
    ]);
    let out = ok(&p.run(&args));
    assert!(out.contains("pid1 sh -c echo hello-log"), "{out}");
    let logs = ok(&p.run(&["logs", &name]));
    assert!(logs.contains("hello-log"), "{logs}");
    ok(&p.run(&["stop", "-t", "10", &name]));
    let logs = ok(&p.run(&["logs", &name]));
    assert!(
        logs.contains("got-term"),
        "SIGTERM reached the container: {logs}"
    );
    let st = ok(&p.run(&["inspect", "--format", "{{.State.ExitCode}}", &name]));
    assert_eq!(st.trim(), "0");
    ok(&p.run(&["rm", &name]));
    let gone = p.run(&["inspect", &name]);
    assert!(!gone.status.success());

    // run -it and exec -it under a pseudo-terminal: the console socket hands the pty to conmon.
    let inner = format!(
        "{} run --rm -it {} gocker-test-busybox sh -c 'tty; [ -t 0 ] && echo stdin-is-tty; sleep 0.5'",
        p.base().join(" "),
        LIMITS.join(" ")
    );
    let out = ok(&under_script(&inner));
    assert!(
        out.contains("/dev/pts/") && out.contains("stdin-is-tty"),
        "{out:?}"
    );
    let name = format!("gocker-podman-tty-{}", std::process::id());
    let mut args = vec!["run", "-d", "--name", &name];
    args.extend(LIMITS);
    args.extend(["gocker-test-busybox", "sleep", "60"]);
    ok(&p.run(&args));
    let inner = format!(
        "{} exec -it {name} sh -c 'tty; [ -t 0 ] && echo exec-stdin-is-tty; exit 4'",
        p.base().join(" "),
    );
    let o = under_script(&inner);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(4), "{out}");
    assert!(
        out.contains("/dev/pts/") && out.contains("exec-stdin-is-tty"),
        "{out:?}"
    );
    ok(&p.run(&["rm", "-f", "-t", "0", &name]));

    // --network none: a network namespace of the container's own (ring1's), where ring1 writes
    // the sysctl.
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend(LIMITS);
    args.extend([
        "gocker-test-busybox",
        "cat",
        "/proc/sys/net/ipv4/ping_group_range",
    ]);
    assert_eq!(ok(&p.run(&args)).trim_end(), "0\t0");

    // podman's default bridge: the container reaches the host's bridge address.
    let listener = std::net::TcpListener::bind("10.88.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        // Bounded: a container that cannot reach us must fail the test, not hang it.
        listener.set_nonblocking(true).unwrap();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let (mut c, peer) = loop {
            match listener.accept() {
                Ok(c) => break c,
                Err(_) if std::time::Instant::now() < end => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(e) => panic!("no connection from the container: {e}"),
            }
        };
        c.set_nonblocking(false).unwrap();
        let mut req = [0u8; 1024];
        let _ = c.read(&mut req);
        let body = format!("hello-from-host {}", peer.ip());
        let _ = write!(
            c,
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    });
    // busybox-static's wget crashes in its static resolver; nc speaks HTTP/1.0 as well.
    let probe =
        format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 10 10.88.0.1 {port} | tail -n 1");
    let mut args = vec!["run", "--rm"];
    args.extend(LIMITS);
    args.extend(["gocker-test-busybox", "sh", "-c", &probe]);
    let out = ok(&p.run(&args));
    server.join().unwrap();
    assert!(out.starts_with("hello-from-host 10.88."), "{out}");

    // Nothing left in gocker-oci's state root.
    let left = common::containers_left(Path::new("/run/gocker-oci"));
    assert!(left.is_empty(), "left in /run/gocker-oci: {left:?}");
    drop(p);
}

/// Runs a shell command line under util-linux `script` (a fresh pseudo-terminal). Its stdin stays
/// open (an idle pipe) while the command runs: at end of input script would send an end-of-file to
/// the terminal.
fn under_script(inner: &str) -> Output {
    let mut idle = Command::new("sleep")
        .arg("20")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let o = Command::new("script")
        .args(["-qec", inner, "/dev/null"])
        .env_remove("CONTAINERS_CONF")
        .stdin(idle.stdout.take().unwrap())
        .output()
        .unwrap();
    let _ = idle.kill();
    let _ = idle.wait();
    o
}

/// Removes what CNI leaves on the host after podman's bridge was first used: the `cni-podman0`
/// link and the firewall plugin's chains, when they did not exist before the test.
struct CniCleanup {
    had_bridge: bool,
    had_chains: bool,
    had_leases: bool,
}

const CNI_LEASES: &str = "/var/lib/cni/networks/podman";

impl CniCleanup {
    fn new() -> CniCleanup {
        CniCleanup {
            had_bridge: Path::new("/sys/class/net/cni-podman0").exists(),
            had_chains: iptables(&["-S", "CNI-FORWARD"]),
            had_leases: Path::new(CNI_LEASES).exists(),
        }
    }
}

fn iptables(args: &[&str]) -> bool {
    Command::new("iptables")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Drop for CniCleanup {
    fn drop(&mut self) {
        if !self.had_bridge {
            let _ = Command::new("ip")
                .args(["link", "del", "cni-podman0"])
                .status();
        }
        if !self.had_leases {
            let _ = std::fs::remove_dir_all(CNI_LEASES);
        }
        if !self.had_chains {
            let comment = "CNI firewall plugin rules";
            let _ = iptables(&[
                "-D",
                "FORWARD",
                "-m",
                "comment",
                "--comment",
                comment,
                "-j",
                "CNI-FORWARD",
            ]);
            for chain in ["CNI-FORWARD", "CNI-ADMIN"] {
                let _ = iptables(&["-F", chain]);
            }
            for chain in ["CNI-FORWARD", "CNI-ADMIN"] {
                let _ = iptables(&["-X", chain]);
            }
        }
    }
}
