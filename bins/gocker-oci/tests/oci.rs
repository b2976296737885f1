//! OCI lifecycle of `gocker-oci` against bundles made from the test rootfs, as root and as the
//! unprivileged test users (`cargo xtask itest`). The test process is a child subreaper, like
//! conmon and containerd's shim: the container's process is reparented to it when `create` exits,
//! and it reaps it itself.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gocker-oci"))
}

fn rootfs() -> String {
    std::env::var("GOCKER_TEST_ROOTFS").expect("set GOCKER_TEST_ROOTFS (run via cargo xtask itest)")
}

fn rootless() -> bool {
    !rustix::process::geteuid().is_root()
}

/// A scratch directory with a state root and a bundle; removed on drop.
struct Env {
    dir: PathBuf,
}

impl Env {
    fn new(tag: &str) -> Env {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) has no memory-safety preconditions.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let dir =
            std::env::temp_dir().join(format!("gocker-oci-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bundle")).unwrap();
        Env { dir }
    }
    fn root(&self) -> PathBuf {
        self.dir.join("state")
    }
    fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--root")
            .arg(self.root())
            .args(args)
            .stdin(Stdio::null());
        c
    }
    fn oci(&self, args: &[&str]) -> Output {
        // Output to files: the container's process inherits create's stdio and keeps it open.
        let out = self.dir.join("cmd.out");
        let err = self.dir.join("cmd.err");
        let st = self
            .cmd(args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        Output {
            status: st,
            stdout: std::fs::read(&out).unwrap(),
            stderr: std::fs::read(&err).unwrap(),
        }
    }
    /// Writes config.json from `gocker-oci spec` with the test rootfs and `args`.
    fn spec(&self, args: &[&str], edit: impl FnOnce(&mut serde_json::Value)) {
        let _ = std::fs::remove_file(self.bundle().join("config.json"));
        let mut c = Command::new(bin());
        c.args(["spec", "--bundle"]).arg(self.bundle());
        if rootless() {
            c.arg("--rootless");
        }
        assert!(c.status().unwrap().success());
        let path = self.bundle().join("config.json");
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        v["root"] = serde_json::json!({"path": rootfs(), "readonly": true});
        v["process"]["terminal"] = false.into();
        v["process"]["args"] = serde_json::json!(args);
        edit(&mut v);
        std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }
    /// `create` with the container's stdout and stderr going to `out`.
    fn create(&self, id: &str, out: &Path, extra: &[&str]) {
        let mut args = vec!["create", "--bundle"];
        let b = self.bundle();
        args.push(b.to_str().unwrap());
        args.extend_from_slice(extra);
        args.push(id);
        let f = std::fs::File::create(out).unwrap();
        let o = self
            .cmd(&args)
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "create failed: {}",
            std::fs::read_to_string(out).unwrap()
        );
    }
    fn state(&self, id: &str) -> serde_json::Value {
        let o = self.oci(&["state", id]);
        assert!(
            o.status.success(),
            "state {id}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[track_caller]
fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "stdout: {} stderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reaps `pid` (reparented to us, the subreaper); returns the raw wait status.
fn reap(pid: i32) -> i32 {
    let mut st = 0;
    // SAFETY: waitpid writes the status into a valid i32.
    let r = unsafe { libc::waitpid(pid, &mut st, 0) };
    assert_eq!(
        r,
        pid,
        "pid {pid} is our child after create exited: {}",
        std::io::Error::last_os_error()
    );
    st
}

fn mounts_mentioning(s: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(s))
        .map(str::to_owned)
        .collect()
}

#[test]
fn create_start_kill_delete() {
    let env = Env::new("life");
    let id = format!("life-{}", std::process::id());
    env.spec(
        &[
            "sh",
            "-c",
            "echo payload-ran uid=$(id -u) pid=$$; exec sleep 60",
        ],
        |_| {},
    );
    let out = env.dir.join("container.out");
    let pid_file = env.dir.join("pid");
    env.create(&id, &out, &["--pid-file", pid_file.to_str().unwrap()]);

    // created: the process is alive, waiting at the barrier; nothing of the payload ran yet.
    let st = env.state(&id);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["ociVersion"], "1.2.0");
    assert_eq!(st["bundle"], env.bundle().to_str().unwrap());
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string(),
        "--pid-file has the host pid"
    );
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: i32 = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        ppid as u32,
        std::process::id(),
        "the container's process was reparented to the subreaper"
    );
    assert!(env.root().join(&id).join("exec.fifo").exists());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "",
        "the payload must not run before start"
    );
    // Its PID namespace is its own.
    assert_ne!(
        std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(),
        std::fs::read_link("/proc/self/ns/pid").unwrap()
    );

    // list shows it.
    let o = env.oci(&["list", "-q"]);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).lines().any(|l| l == id));

    // start: the payload runs as PID 1 of the container, as root.
    ok(&env.oci(&["start", &id]));
    wait_for("the payload's output", || {
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("payload-ran")
    });
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("uid=0 pid=1"), "{text}");
    assert_eq!(env.state(&id)["status"], "running");
    assert!(!env.root().join(&id).join("exec.fifo").exists());
    // A second start is refused.
    let o = env.oci(&["start", &id]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains(&id));
    // delete without --force refuses a running container.
    let o = env.oci(&["delete", &id]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("running"));

    // ps lists the payload.
    let o = env.oci(&["ps", "--format", "json", &id]);
    ok(&o);
    let pids: Vec<i32> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(pids, vec![pid]);

    // exec joins it.
    let o = env.oci(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo exec-ran $(cat /proc/1/cmdline | tr '\\0' ' ')",
    ]);
    ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("exec-ran sleep 60"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // kill: stopped, and the subreaper reaps the process.
    ok(&env.oci(&["kill", &id, "KILL"]));
    let status = reap(pid);
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        "status {status:#x}"
    );
    assert_eq!(env.state(&id)["status"], "stopped");
    assert_eq!(env.state(&id)["pid"], 0);

    // delete: nothing left.
    ok(&env.oci(&["delete", &id]));
    assert!(!env.root().join(&id).exists(), "state directory removed");
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "process gone");
    assert!(
        mounts_mentioning(&id).is_empty()
            && mounts_mentioning(env.dir.to_str().unwrap()).is_empty()
    );
    let o = env.oci(&["state", &id]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&id),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn delete_of_a_created_container_kills_it() {
    let env = Env::new("created");
    let id = format!("created-{}", std::process::id());
    env.spec(&["sh", "-c", "echo must-not-run"], |_| {});
    let out = env.dir.join("container.out");
    env.create(&id, &out, &[]);
    let pid = env.state(&id)["pid"].as_i64().unwrap() as i32;
    ok(&env.oci(&["delete", &id]));
    let status = reap(pid);
    assert!(libc::WIFSIGNALED(status), "status {status:#x}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
    assert!(!env.root().join(&id).exists());
}

#[test]
fn errors_name_the_id_or_path_and_leave_nothing() {
    let env = Env::new("errors");
    let o = env.oci(&["state", "no-such-container"]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("no such container: no-such-container"), "{e}");

    std::fs::write(env.bundle().join("config.json"), "{ this is not json").unwrap();
    let id = format!("bad-{}", std::process::id());
    let o = env.oci(&["create", "--bundle", env.bundle().to_str().unwrap(), &id]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(env.bundle().join("config.json").to_str().unwrap()),
        "names the file: {e}"
    );
    assert!(!env.root().join(&id).exists());
    let left: Vec<_> = std::fs::read_dir(env.root())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "names")
        .collect();
    assert!(left.is_empty(), "left in the state root: {left:?}");

    // A rootfs that does not exist: refused, nothing left either.
    env.spec(&["true"], |v| {
        v["root"]["path"] = "/nonexistent-rootfs".into()
    });
    let o = env.oci(&["create", "--bundle", env.bundle().to_str().unwrap(), &id]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("/nonexistent-rootfs"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!env.root().join(&id).exists());

    // Bad ids and unsupported options are clear errors.
    let o = env.oci(&["state", "../etc"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid container id \"../etc\""));
    let o = env.oci(&["--systemd-cgroup", "list"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("systemd"));
    // --log gets the error as JSON.
    let log = env.dir.join("log.json");
    let o = env.oci(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "missing-one",
    ]);
    assert!(!o.status.success());
    let line: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("missing-one"));
}

#[test]
fn run_returns_the_exit_status_and_cleans_up() {
    let env = Env::new("run");
    let id = format!("run-{}", std::process::id());
    env.spec(&["sh", "-c", "exit 7"], |_| {});
    let o = env.oci(&["run", "--bundle", env.bundle().to_str().unwrap(), &id]);
    assert_eq!(
        o.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!env.root().join(&id).exists());
}

#[test]
fn hooks_get_the_state_on_stdin() {
    let env = Env::new("hooks");
    let id = format!("hooks-{}", std::process::id());
    let d = env.dir.display().to_string();
    let hook = |name: &str| serde_json::json!([{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {d}/{name}.json")]}]);
    env.spec(&["sh", "-c", "sleep 60"], |v| {
        v["hooks"] = serde_json::json!({
            "createRuntime": hook("createRuntime"), "prestart": hook("prestart"),
            "poststart": hook("poststart"), "poststop": hook("poststop"),
        });
        v["annotations"] = serde_json::json!({"org.example.test": "yes"});
    });
    let out = env.dir.join("container.out");
    env.create(&id, &out, &[]);
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_slice(
            &std::fs::read(env.dir.join(format!("{name}.json")))
                .unwrap_or_else(|e| panic!("{name} hook ran: {e}")),
        )
        .unwrap()
    };
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    for name in ["createRuntime", "prestart"] {
        let s = read(name);
        assert_eq!(
            (s["id"].as_str(), s["status"].as_str(), s["pid"].as_i64()),
            (Some(id.as_str()), Some("created"), Some(pid)),
            "{name}: {s}"
        );
        assert_eq!(s["annotations"]["org.example.test"], "yes");
    }
    assert!(!env.dir.join("poststart.json").exists());
    ok(&env.oci(&["start", &id]));
    assert_eq!(read("poststart")["status"], "running");
    ok(&env.oci(&["delete", "--force", &id]));
    reap(pid as i32);
    assert_eq!(read("poststop")["status"], "stopped");

    // A failing createRuntime hook fails create and leaves nothing.
    let id2 = format!("hookfail-{}", std::process::id());
    env.spec(&["true"], |v| {
        v["hooks"] = serde_json::json!({"createRuntime": [{"path": "/bin/false"}]})
    });
    let o = env.oci(&["create", "--bundle", env.bundle().to_str().unwrap(), &id2]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("createRuntime hook /bin/false"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!env.root().join(&id2).exists());
}

/// Receives one descriptor from a unix stream (runc's console socket protocol).
fn recv_fd(stream: &std::os::unix::net::UnixStream) -> OwnedFd {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut buf = [0u8; 256];
    rustix::net::recvmsg(
        stream,
        &mut [std::io::IoSliceMut::new(&mut buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .unwrap();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            return fds.next().expect("one fd");
        }
    }
    panic!("no descriptor received on the console socket");
}

/// Reads a pty master until `needle` shows up (at most 10 s); returns what was read. The caller
/// keeps the master open (closing it hangs the terminal up: SIGHUP for its session).
fn read_terminal_until(master: &OwnedFd, needle: &str) -> String {
    let mut f = std::fs::File::from(master.try_clone().unwrap());
    let mut text = String::new();
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    while !text.contains(needle) && t.elapsed() < Duration::from_secs(10) {
        let mut p = [rustix::event::PollFd::new(&f, rustix::event::PollFlags::IN)];
        let ts = rustix::event::Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        if rustix::event::poll(&mut p, Some(&ts)).unwrap() > 0 {
            match f.read(&mut buf) {
                Ok(n) if n > 0 => text.push_str(&String::from_utf8_lossy(&buf[..n])),
                _ => break,
            }
        }
    }
    text
}

#[test]
fn console_socket_gets_the_pty_master() {
    let env = Env::new("console");
    let id = format!("console-{}", std::process::id());
    env.spec(
        &[
            "sh",
            "-c",
            "tty; [ -t 0 ] && [ -t 1 ] && echo stdio-is-a-tty; sleep 60",
        ],
        |v| v["process"]["terminal"] = true.into(),
    );
    let sock = env.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        recv_fd(&stream)
    });
    let out = env.dir.join("container.out");
    env.create(&id, &out, &["--console-socket", sock.to_str().unwrap()]);
    let master = receiver.join().unwrap();
    let pid = env.state(&id)["pid"].as_i64().unwrap() as i32;
    ok(&env.oci(&["start", &id]));
    let text = read_terminal_until(&master, "stdio-is-a-tty");
    assert!(
        text.contains("/dev/pts/") && text.contains("stdio-is-a-tty"),
        "terminal output: {text:?}"
    );

    // exec --tty --detach --console-socket: the exec'd process's own terminal, sized by the
    // process's consoleSize, goes to the socket; --pid-file names the process, reparented to us.
    let sock2 = env.dir.join("exec-console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock2).unwrap();
    let receiver = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        recv_fd(&stream)
    });
    let process = env.dir.join("process.json");
    std::fs::write(
        &process,
        serde_json::to_vec(&serde_json::json!({
            "terminal": true, "consoleSize": {"height": 33, "width": 77},
            "user": {"uid": 0, "gid": 0}, "cwd": "/",
            "args": ["sh", "-c", "tty; stty size; echo exec-tty-done"],
            "env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"],
        }))
        .unwrap(),
    )
    .unwrap();
    let pid_file = env.dir.join("exec.pid");
    ok(&env.oci(&[
        "exec",
        "--detach",
        "--console-socket",
        sock2.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--process",
        process.to_str().unwrap(),
        &id,
    ]));
    let exec_master = receiver.join().unwrap();
    let text = read_terminal_until(&exec_master, "exec-tty-done");
    assert!(
        text.contains("/dev/pts/") && text.contains("33 77"),
        "exec terminal output: {text:?}"
    );
    let exec_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(reap(exec_pid), 0);
    drop(exec_master);
    let o = env.oci(&[
        "exec",
        "--console-socket",
        sock2.to_str().unwrap(),
        &id,
        "true",
    ]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("needs a terminal"),
        "{o:?}"
    );
    ok(&env.oci(&["delete", "--force", &id]));
    reap(pid);
    // terminal without --console-socket is refused.
    let o = env.oci(&["create", "--bundle", env.bundle().to_str().unwrap(), &id]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--console-socket"));
}

#[test]
fn features_and_spec() {
    let o = Command::new(bin()).arg("features").output().unwrap();
    ok(&o);
    let f: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(f["ociVersionMax"], "1.2.0");
    assert!(f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == "user"));
    let env = Env::new("spec");
    assert!(Command::new(bin())
        .args(["spec", "--rootless", "--bundle"])
        .arg(env.bundle())
        .status()
        .unwrap()
        .success());
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.bundle().join("config.json")).unwrap()).unwrap();
    assert_eq!(
        v["linux"]["uidMappings"][0]["hostID"],
        rustix::process::geteuid().as_raw()
    );
    assert_eq!(v["root"]["path"], "rootfs");
    // A second spec does not overwrite.
    assert!(!Command::new(bin())
        .args(["spec", "--bundle"])
        .arg(env.bundle())
        .status()
        .unwrap()
        .success());
}

#[test]
fn joins_a_network_namespace_by_path() {
    if rootless() {
        // Joining a namespace owned by the host's user namespace needs host privileges.
        return;
    }
    let env = Env::new("netns");
    let name = format!("gocker-oci-test-{}", std::process::id());
    assert!(Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .unwrap()
        .success());
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["netns", "delete", &self.0])
                .status();
        }
    }
    let _del = Del(name.clone());
    let path = format!("/run/netns/{name}");
    let want = format!(
        "net:[{}]",
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap())
    );
    let id = format!("netns-{}", std::process::id());
    env.spec(&["sh", "-c", "readlink /proc/self/ns/net"], |v| {
        for n in v["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "network" {
                n["path"] = path.clone().into();
            }
        }
    });
    let o = env.oci(&["run", "--bundle", env.bundle().to_str().unwrap(), &id]);
    ok(&o);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        want,
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A mount namespace by path is refused, naming the file and the path.
    env.spec(&["true"], |v| {
        for n in v["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "mount" {
                n["path"] = "/proc/1/ns/mnt".into();
            }
        }
    });
    let o = env.oci(&["run", "--bundle", env.bundle().to_str().unwrap(), &id]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("/proc/1/ns/mnt") && e.contains("config.json"),
        "{e}"
    );
    assert!(!env.root().join(&id).exists());
}

/// containerd's layout: the rootfs is a mount inside a bundle directory that only host root can
/// search (0700). The container's root (an unprivileged host uid) must not need to walk that path.
#[test]
fn rootfs_under_a_private_bundle_directory() {
    if rootless() {
        return;
    }
    let env = Env::new("private");
    let private = env.dir.join("private");
    let rootfs_dir = private.join("rootfs");
    std::fs::create_dir_all(&rootfs_dir).unwrap();
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    assert!(Command::new("mount")
        .args(["--bind", &rootfs()])
        .arg(&rootfs_dir)
        .status()
        .unwrap()
        .success());
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Umount(rootfs_dir.clone());
    let id = format!("private-{}", std::process::id());
    env.spec(&["sh", "-c", "echo inside; id -u"], |v| {
        v["root"]["path"] = rootfs_dir.to_str().unwrap().into()
    });
    let o = env.oci(&["run", "--bundle", env.bundle().to_str().unwrap(), &id]);
    ok(&o);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "inside\n0\n");
    assert!(!env.root().join(&id).exists());
}

#[test]
fn sysctl_oom_score_adj_and_domainname_are_applied_or_refused() {
    let env = Env::new("knobs");
    let id = format!("knobs-{}", std::process::id());
    let probe = "cat /proc/sys/kernel/shmmni /proc/self/oom_score_adj /proc/sys/kernel/domainname";
    env.spec(&["sh", "-c", probe], |v| {
        v["linux"]["sysctl"] = serde_json::json!({"kernel.shmmni": "1234"});
        v["process"]["oomScoreAdj"] = 500.into();
        v["domainname"] = "example.test".into();
    });
    let o = env.oci(&["run", "--bundle", env.bundle().to_str().unwrap(), &id]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "1234\n500\nexample.test\n"
    );
    // The host's value is untouched (the container has its own IPC namespace).
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/shmmni")
            .unwrap()
            .trim(),
        "1234"
    );

    // A host-wide sysctl is refused by name, before anything is created.
    env.spec(&["true"], |v| {
        v["linux"]["sysctl"] = serde_json::json!({"vm.swappiness": "1"})
    });
    let o = env.oci(&["run", "--bundle", env.bundle().to_str().unwrap(), &id]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("vm.swappiness"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!env.root().join(&id).exists());
}

fn cgroup2_mount() -> Option<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| {
            l.split(" - ")
                .nth(1)
                .is_some_and(|t| t.starts_with("cgroup2 "))
        })
        .and_then(|l| l.split_whitespace().nth(4).map(PathBuf::from))
}

#[test]
fn cgroups_path_places_the_cgroup_or_is_refused() {
    let env = Env::new("cgpath");
    let out = env.dir.join("out");
    let top = format!("gocker-oci-cgtest-{}", std::process::id());
    let cases = [
        (format!("/{top}/c1"), format!("0::/{top}/c1")),
        (format!("{top}-rel"), format!("0::/gocker/{top}-rel")),
    ];
    for (i, (path, want)) in cases.iter().enumerate() {
        let id = format!("cgpath{i}-{}", std::process::id());
        env.spec(&["true"], |v| {
            v["linux"]["cgroupsPath"] = path.as_str().into()
        });
        env.create(&id, &out, &[]);
        let pid = env.state(&id)["pid"].as_i64().unwrap();
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        if rootless() {
            // Without delegation (this host) a rootless container with no resources runs
            // without a cgroup, as with runc; the path is not forced on it.
            assert!(!own.contains(&top), "{own}");
        } else {
            assert!(own.lines().any(|l| l == want), "{path}: {own}");
        }
        ok(&env.oci(&["delete", "--force", &id]));
        reap(pid as i32);
        if let Some(m) = cgroup2_mount() {
            assert!(
                !m.join(want.trim_start_matches("0::/")).exists(),
                "{path} removed"
            );
        }
    }
    if let Some(m) = cgroup2_mount() {
        let _ = std::fs::remove_dir(m.join(&top));
    }

    // Paths that escape or use systemd's notation are refused by name, and nothing is left.
    for bad in ["/a/../../b", "system.slice:gocker:x"] {
        let id = format!("cgbad-{}", std::process::id());
        env.spec(&["true"], |v| v["linux"]["cgroupsPath"] = bad.into());
        let o = env.oci(&["create", "--bundle", env.bundle().to_str().unwrap(), &id]);
        assert_ne!(o.status.code(), Some(0));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("linux.cgroupsPath"), "{bad}: {e}");
        assert!(!env.root().join(&id).exists());
    }
}

#[test]
fn create_and_start_container_hooks_run_inside_the_container() {
    let env = Env::new("inhooks");
    let id = format!("inhooks-{}", std::process::id());
    // createContainer: a program of the host (this script), run in the container's namespaces.
    let script = env.dir.join("create-container.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n{ cat; echo; uname -n; } > /dev/shm/create-container\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script_path = script.display().to_string();
    env.spec(
        &[
            "sh",
            "-c",
            "cat /dev/shm/create-container; cat /dev/shm/start-container",
        ],
        |v| {
            v["hostname"] = "hooked".into();
            v["hooks"] = serde_json::json!({
                "createContainer": [{"path": script_path}],
                // startContainer: a program of the container.
                "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /dev/shm/start-container"],
                                    "env": ["PATH=/bin:/usr/bin"]}],
            });
        },
    );
    let out = env.dir.join("container.out");
    env.create(&id, &out, &[]);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    ok(&env.oci(&["start", &id]));
    let st = reap(pid as i32);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(st, 0, "{text}");
    let mut lines = text.lines();
    let created: serde_json::Value = serde_json::from_str(lines.next().unwrap_or("")).expect(&text);
    assert_eq!(
        (created["id"].as_str(), created["pid"].as_i64()),
        (Some(id.as_str()), Some(pid)),
        "{text}"
    );
    assert_eq!(
        lines.next(),
        Some("hooked"),
        "createContainer ran in the UTS namespace: {text}"
    );
    let started: serde_json::Value = serde_json::from_str(lines.next().unwrap_or("")).expect(&text);
    assert_eq!(started["id"].as_str(), Some(id.as_str()), "{text}");
    ok(&env.oci(&["delete", &id]));

    // A failing createContainer hook fails create, names the hook and leaves nothing.
    let id2 = format!("inhookfail-{}", std::process::id());
    env.spec(&["true"], |v| {
        v["hooks"] = serde_json::json!({"createContainer": [{"path": "/bin/false"}]})
    });
    let o = env.oci(&["create", "--bundle", env.bundle().to_str().unwrap(), &id2]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("createContainer hook /bin/false"), "{e}");
    assert!(!env.root().join(&id2).exists());
}

/// A seccomp agent: accepts one connection on `sock`, checks the container process state that
/// comes with the listener, and answers every notification with EOPNOTSUPP (counting them).
fn seccomp_agent(
    listener: std::os::unix::net::UnixListener,
) -> std::thread::JoinHandle<(serde_json::Value, u32)> {
    std::thread::spawn(move || {
        use std::io::IoSliceMut;
        use std::mem::MaybeUninit;
        let (stream, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
        let r = rustix::net::recvmsg(
            &stream,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            rustix::net::RecvFlags::CMSG_CLOEXEC,
        )
        .unwrap();
        let mut fds = Vec::new();
        for m in control.drain() {
            if let rustix::net::RecvAncillaryMessage::ScmRights(r) = m {
                fds.extend(r);
            }
        }
        let state: serde_json::Value = serde_json::from_slice(&buf[..r.bytes]).unwrap();
        assert_eq!(fds.len(), 1, "one listener with {state}");
        let l = gocker_seccomp::notify::Listener::new(fds.pop().unwrap());
        let mut answered = 0;
        while let Ok(n) = l.recv() {
            let _ = l.respond(
                n.id,
                gocker_seccomp::notify::Response::Errno(libc::EOPNOTSUPP),
            );
            answered += 1;
        }
        (state, answered)
    })
}

#[test]
fn seccomp_notifications_go_to_the_listener_path_agent() {
    let env = Env::new("agent");
    let id = format!("agent-{}", std::process::id());
    let sock = env.dir.join("agent.sock");
    let agent = seccomp_agent(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let sock_path = sock.display().to_string();
    env.spec(
        &[
            "sh",
            "-c",
            "mkdir /dev/shm/x; echo mkdir=$?; [ -d /dev/shm/x ] || echo absent",
        ],
        |v| {
            v["linux"]["seccomp"] = serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "listenerPath": sock_path,
                "listenerMetadata": "gocker-test-metadata",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
            });
        },
    );
    let o = env.oci(&["run", "--bundle", env.bundle().to_str().unwrap(), &id]);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{out} {err}");
    let (state, answered) = agent.join().unwrap();
    assert!(answered >= 1, "the agent answered the mkdir: {state}");
    assert!(
        out.contains("mkdir=1") && out.contains("absent"),
        "the agent's EOPNOTSUPP reached the payload: {out} {err}"
    );
    assert_eq!(state["fds"], serde_json::json!(["seccompFd"]), "{state}");
    assert_eq!(state["metadata"], "gocker-test-metadata", "{state}");
    assert_eq!(state["state"]["id"], id.as_str(), "{state}");
    assert!(state["pid"].as_i64().unwrap_or(0) > 0, "{state}");

    // A listenerPath nobody listens on fails create, naming it, and leaves nothing.
    drop(std::fs::remove_file(&sock));
    let o = env.oci(&["create", "--bundle", env.bundle().to_str().unwrap(), &id]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("listenerPath") && e.contains("agent.sock"),
        "{e}"
    );
    assert!(!env.root().join(&id).exists());
}

#[test]
fn personality_is_applied_and_unsupported_settings_are_refused() {
    let env = Env::new("persona");
    let id = format!("persona-{}", std::process::id());
    env.spec(&["uname", "-m"], |v| {
        v["linux"]["personality"] = serde_json::json!({"domain": "LINUX32"})
    });
    let o = env.oci(&["run", "--bundle", env.bundle().to_str().unwrap(), &id]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "i686");

    env.spec(&["true"], |v| {
        v["linux"]["intelRdt"] = serde_json::json!({"closID": "gocker-test"})
    });
    let o = env.oci(&["create", "--bundle", env.bundle().to_str().unwrap(), &id]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("linux.intelRdt") && e.contains("config.json"),
        "{e}"
    );
    assert!(!env.root().join(&id).exists());
}

fn set_ns_path(v: &mut serde_json::Value, typ: &str, path: &str) {
    let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != typ);
    ns.push(serde_json::json!({"type": typ, "path": path}));
}

fn ns_link(pid: i32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

/// A Kubernetes pod with `shareProcessNamespace`: the second container joins the first one's PID
/// namespace by path, and with it the user namespace that owns it; a user namespace given by path
/// is joined with its own maps. Maps that differ, and the runtime's own namespaces, are refused.
#[test]
fn joins_pid_and_user_namespaces_by_path() {
    let env = Env::new("pidns");
    let me = std::process::id();
    let a = format!("pidns-a-{me}");
    env.spec(&["sleep", "100"], |_| {});
    let out = env.dir.join("a.out");
    env.create(&a, &out, &[]);
    ok(&env.oci(&["start", &a]));
    let apid = env.state(&a)["pid"].as_i64().unwrap() as i32;
    let pid_path = format!("/proc/{apid}/ns/pid");
    let user_path = format!("/proc/{apid}/ns/user");
    let show = "echo $(cat /proc/1/cmdline | tr '\\0' ' '); \
                for n in pid user mnt; do readlink /proc/self/ns/$n; done; id -u; \
                cat /proc/self/uid_map";
    let run = |id: &str| env.oci(&["run", "--bundle", env.bundle().to_str().unwrap(), id]);

    // PID namespace by path: A's sleep is PID 1 here; the user namespace is A's, the mount
    // namespace is B's own.
    let b = format!("pidns-b-{me}");
    env.spec(&["sh", "-c", show], |v| set_ns_path(v, "pid", &pid_path));
    let o = run(&b);
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "sleep 100", "{text}");
    assert_eq!(lines[1], ns_link(apid, "pid"), "{text}");
    assert_eq!(lines[2], ns_link(apid, "user"), "{text}");
    assert_ne!(lines[3], ns_link(apid, "mnt"), "{text}");
    assert_eq!(lines[4], "0", "{text}");
    let a_map = std::fs::read_to_string(format!("/proc/{apid}/uid_map")).unwrap();
    assert!(!env.root().join(&b).exists());

    // User namespace by path, no mappings in config.json: its own maps; a new PID namespace.
    env.spec(&["sh", "-c", show], |v| {
        set_ns_path(v, "user", &user_path);
        v["linux"].as_object_mut().unwrap().remove("uidMappings");
        v["linux"].as_object_mut().unwrap().remove("gidMappings");
    });
    let o = run(&b);
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("sh -c"),
        "its own PID namespace: {text}"
    );
    assert_ne!(lines[1], ns_link(apid, "pid"), "{text}");
    assert_eq!(lines[2], ns_link(apid, "user"), "{text}");
    assert_eq!(
        lines[5..].join("\n").split_whitespace().collect::<Vec<_>>(),
        a_map.split_whitespace().collect::<Vec<_>>(),
        "{text}"
    );

    // Maps that differ from the joined namespace's are refused, naming the path; nothing is left.
    let (uid, gid) = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    env.spec(&["true"], |v| {
        set_ns_path(v, "pid", &pid_path);
        v["linux"]["uidMappings"] =
            serde_json::json!([{"containerID": 1, "hostID": uid, "size": 1}]);
        v["linux"]["gidMappings"] =
            serde_json::json!([{"containerID": 1, "hostID": gid, "size": 1}]);
    });
    let o = run(&b);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&pid_path) && e.contains("config.json") && e.contains("not the container's"),
        "{e}"
    );
    assert!(!env.root().join(&b).exists());

    // The runtime's own PID namespace belongs to its own user namespace: refused.
    env.spec(&["true"], |v| set_ns_path(v, "pid", "/proc/self/ns/pid"));
    let o = run(&b);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("/proc/self/ns/pid") && e.contains("own user namespace"),
        "{e}"
    );
    assert!(!env.root().join(&b).exists());

    ok(&env.oci(&["kill", &a, "KILL"]));
    reap(apid);
    ok(&env.oci(&["delete", &a]));
    assert!(!env.root().join(&a).exists());
}

/// podman's default network, without podman: a network namespace made for the container and
/// joined by path takes the spec's `net.*` sysctls (written by the runtime, which joined it with
/// the caller's privileges; a gid range in the container's own ids, as written from inside); the
/// runtime's own (the host's) namespace by path does not, and nothing is created or changed.
#[test]
fn sysctls_of_a_network_namespace_joined_by_path() {
    if rootless() {
        // Joining a namespace owned by the host's user namespace needs host privileges.
        return;
    }
    let env = Env::new("netsysctl");
    let name = format!("gocker-oci-sysctl-{}", std::process::id());
    assert!(Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .unwrap()
        .success());
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["netns", "delete", &self.0])
                .status();
        }
    }
    let _del = Del(name.clone());
    let in_netns = |file: &str| {
        let o = Command::new("ip")
            .args(["netns", "exec", &name, "cat", file])
            .output()
            .unwrap();
        ok(&o);
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    let set_net = |v: &mut serde_json::Value, path: &str| {
        for n in v["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "network" {
                n["path"] = path.into();
            }
        }
        v["linux"]["sysctl"] = serde_json::json!({
            "net.ipv4.ping_group_range": "0 0",
            "net.ipv4.ip_unprivileged_port_start": "80",
        });
    };
    let id = format!("netsysctl-{}", std::process::id());
    let path = format!("/run/netns/{name}");
    env.spec(
        &[
            "cat",
            "/proc/sys/net/ipv4/ping_group_range",
            "/proc/sys/net/ipv4/ip_unprivileged_port_start",
        ],
        |v| set_net(v, &path),
    );
    let o = env.oci(&["run", "--bundle", env.bundle().to_str().unwrap(), &id]);
    ok(&o);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "0\t0\n80\n");
    // Seen from the host: the container's gid 0 is its root's host gid.
    let root_gid = std::fs::read_to_string(env.bundle().join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["linux"]["gidMappings"][0]["hostID"].as_u64())
        .unwrap_or(1_000_000_000);
    assert_eq!(
        in_netns("/proc/sys/net/ipv4/ping_group_range"),
        format!("{root_gid}\t{root_gid}")
    );
    assert_eq!(
        in_netns("/proc/sys/net/ipv4/ip_unprivileged_port_start"),
        "80"
    );

    // The runtime's own network namespace by path: its sysctls are the host's. Refused by name,
    // before anything is created; the host's values are untouched.
    let before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    env.spec(&["true"], |v| set_net(v, "/proc/self/ns/net"));
    let o = env.oci(&["run", "--bundle", env.bundle().to_str().unwrap(), &id]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("net.ipv4.") && e.contains("own namespace"),
        "{e}"
    );
    assert!(!env.root().join(&id).exists());
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap(),
        before
    );
}
