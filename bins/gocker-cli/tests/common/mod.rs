//! Helpers shared by the integration tests of `gocker` (each test file is its own crate and uses
//! a subset: hence the `dead_code` allowance).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The gocker binary: `GOCKER_BIN` (the user phases run a copy they can reach), else cargo's.
pub fn bin() -> PathBuf {
    std::env::var_os("GOCKER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_gocker")))
}

/// The test rootfs (`GOCKER_TEST_ROOTFS`, set by `cargo xtask itest`), checked for a shell.
pub fn rootfs_path() -> PathBuf {
    let p = PathBuf::from(
        std::env::var_os("GOCKER_TEST_ROOTFS")
            .expect("set GOCKER_TEST_ROOTFS (run via cargo xtask itest)"),
    );
    assert!(
        p.join("bin/sh").exists(),
        "GOCKER_TEST_ROOTFS={} has no /bin/sh",
        p.display()
    );
    p
}

/// [`rootfs_path`] as a string, for argument lists.
pub fn rootfs() -> String {
    rootfs_path().display().to_string()
}

/// A name unique to this test process and call.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// gocker's state store for the current user.
pub fn state_dir() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        PathBuf::from("/run/gocker")
    } else {
        PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR").expect("XDG_RUNTIME_DIR")).join("gocker")
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The containers that this test thread named (`--name` through [`g`]). When the thread ends —
/// also after a failed assertion — those still present are removed with `rm -f`, so that a failing
/// test leaves no container running behind it.
struct Named(std::cell::RefCell<Vec<String>>);

impl Drop for Named {
    fn drop(&mut self) {
        let names = state_dir().join("names");
        let left: Vec<String> = self
            .0
            .take()
            .into_iter()
            .filter(|n| names.join(n).symlink_metadata().is_ok())
            .collect();
        if !left.is_empty() {
            let _ = Command::new(bin())
                .args(["rm", "-f"])
                .args(&left)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

thread_local! {
    static NAMED: Named = const { Named(std::cell::RefCell::new(Vec::new())) };
}

/// Runs gocker with `args` and stdin from /dev/null.
pub fn g(args: &[&str]) -> Output {
    if let Some(i) = args.iter().position(|a| *a == "--name") {
        if let Some(n) = args.get(i + 1) {
            NAMED.with(|v| v.0.borrow_mut().push(n.to_string()));
        }
    }
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Asserts exit status 0 (showing both streams otherwise) and returns stdout.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {} stderr: {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// Host pids (other than this test's) whose command line contains `marker`; arguments are
/// separated by NUL there, so a marker may span several of them (`"exec\0-it\0NAME"`).
pub fn pids_with(marker: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| *p != me)
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .collect()
}

/// A `gocker ARGS...` command with stdin from /dev/null, to adjust before running.
pub fn gocker(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args).stdin(Stdio::null());
    c
}

/// `gocker run --rm --rootfs R EXTRA... /bin/sh -c SCRIPT`
pub fn sh(extra: &[&str], script: &str) -> Output {
    let r = rootfs();
    let mut args = vec!["run", "--rm", "--rootfs", r.as_str()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["/bin/sh", "-c", script]);
    gocker(&args).output().expect("spawn gocker")
}

pub fn stdout(o: &Output) -> String {
    text(&o.stdout)
}

pub fn stderr(o: &Output) -> String {
    text(&o.stderr)
}

/// Polls `f` every 10 ms until it gives a value; fails naming `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The command line of `pid`, arguments separated by spaces ("" once it is gone).
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default()
}

/// A static C program `name` built from `source` with `gcc -static` (extra `flags` after
/// `-O1`), in a directory of its own that the tests bind into containers. Built once per user
/// and source, and reused by later runs: a build cache in the temp directory, named by a hash of
/// the source, not litter of one run. Returns the directory.
pub fn static_program(name: &str, source: &str, flags: &[&str]) -> PathBuf {
    let sum = source
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    let d = std::env::temp_dir().join(format!(
        "gocker-test-{name}-{}-{sum:08x}",
        rustix::process::geteuid().as_raw()
    ));
    if d.join(name).exists() {
        return d;
    }
    let tmp = std::env::temp_dir().join(format!("gocker-test-{name}-build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let c = tmp.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let o = Command::new("gcc")
        .args(["-static", "-O1"])
        .args(flags)
        .arg("-o")
        .arg(tmp.join(name))
        .arg(&c)
        .output()
        .expect("gcc");
    assert!(
        o.status.success(),
        "gcc -static {name}: {}",
        text(&o.stderr)
    );
    // Another test process may have won the race: either copy is the same program.
    if std::fs::rename(&tmp, &d).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(d.join(name).exists());
    d
}

/// The lock that serialises the tests depending on `/dev/net/tun`'s mode, across test threads,
/// test binaries and users (`cargo xtask itest` sets it to 0666 while the suite runs). A test
/// that needs the distribution's 0666 (rootless pasta/slirp4netns, a container's own tun) holds
/// [`tun_shared`]; one that changes the mode holds [`TunMode`], which excludes them.
pub const TUN_LOCK: &str = "/tmp/gocker-test-dev-net-tun.lock";

fn tun_lock_file() -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    // Open before create: under fs.protected_regular, root may not O_CREAT-open a file that
    // another user created in sticky /tmp.
    if let Ok(f) = std::fs::File::open(TUN_LOCK) {
        return f;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(TUN_LOCK)
    {
        Ok(f) => {
            // Readable by every test user whatever the umask.
            use std::os::unix::fs::PermissionsExt;
            let _ = f.set_permissions(std::fs::Permissions::from_mode(0o644));
            f
        }
        Err(_) => std::fs::File::open(TUN_LOCK).expect("open the tun test lock"),
    }
}

/// Holds the tun lock shared: `/dev/net/tun` keeps its mode while this lives.
pub fn tun_shared() -> std::fs::File {
    let f = tun_lock_file();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockShared).expect("flock the tun lock");
    f
}

/// `/dev/net/tun` at a given mode (root only) with the tun lock held exclusively; the previous
/// mode is put back on drop, also after a failed assertion.
pub struct TunMode {
    _lock: std::fs::File,
    old: u32,
}

pub const TUN: &str = "/dev/net/tun";

impl TunMode {
    pub fn set(mode: u32) -> TunMode {
        use std::os::unix::fs::PermissionsExt;
        let lock = tun_lock_file();
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .expect("flock the tun lock");
        let old = std::fs::metadata(TUN)
            .unwrap_or_else(|e| panic!("{TUN}: {e}"))
            .permissions()
            .mode()
            & 0o7777;
        std::fs::set_permissions(TUN, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {mode:o} {TUN}: {e}"));
        TunMode { _lock: lock, old }
    }
}

impl Drop for TunMode {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(TUN, std::fs::Permissions::from_mode(self.old));
    }
}

/// An unprivileged test user created by `cargo xtask itest` (gocker-sub: a /etc/subuid range;
/// gocker-nosub: none), for root-mode tests that run gocker as that user.
pub struct TestUser {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
}

impl TestUser {
    /// The user, or a failure saying how to create it.
    pub fn get(name: &'static str) -> TestUser {
        let id = |flag: &str| -> u32 {
            let o = Command::new("id").args([flag, name]).output().expect("id");
            assert!(
                o.status.success(),
                "no test user {name}: run via `cargo xtask itest`, which creates it"
            );
            text(&o.stdout).trim().parse().expect("numeric id")
        };
        TestUser {
            name,
            uid: id("-u"),
            gid: id("-g"),
        }
    }

    /// `gocker ARGS...` as this user (setpriv, a clean environment as itest's user phases
    /// have; `env` adds variables), stdin from /dev/null.
    pub fn gocker(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let runtime = format!("/run/user/{}", self.uid);
        if !std::path::Path::new(&runtime).exists() {
            std::fs::create_dir_all(&runtime).unwrap();
            let _ = Command::new("chown")
                .arg(format!("{}:{}", self.uid, self.gid))
                .arg(&runtime)
                .status();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            &self.uid.to_string(),
            "--regid",
            &self.gid.to_string(),
            "--init-groups",
            "--reset-env",
            "env",
        ])
        .arg(format!("HOME=/home/{}", self.name))
        .arg(format!("XDG_RUNTIME_DIR={runtime}"))
        .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
        for (k, v) in env {
            c.arg(format!("{k}={v}"));
        }
        c.arg(bin())
            .args(args)
            .current_dir("/tmp")
            .stdin(Stdio::null());
        c
    }
}

/// A user-defined network made by `gocker network create ARGS... NAME`, removed (`network rm
/// -f`) when dropped — also after a failed assertion — after the containers named through
/// [`NetworkGuard::container`] (which would keep it in use).
pub struct NetworkGuard {
    pub name: String,
    pub id: String,
    containers: std::cell::RefCell<Vec<String>>,
}

impl NetworkGuard {
    /// Creates the network, asserting success.
    #[track_caller]
    pub fn create(name: &str, args: &[&str]) -> NetworkGuard {
        let mut a = vec!["network", "create"];
        a.extend_from_slice(args);
        a.push(name);
        let id = ok(&g(&a)).trim().to_owned();
        NetworkGuard {
            name: name.to_owned(),
            id,
            containers: Default::default(),
        }
    }

    /// A network made otherwise (e.g. by one of several concurrent creates), removed on drop.
    pub fn adopt(name: &str, id: &str) -> NetworkGuard {
        NetworkGuard {
            name: name.to_owned(),
            id: id.to_owned(),
            containers: Default::default(),
        }
    }

    /// A unique container name, removed (`rm -f`) before the network.
    pub fn container(&self, tag: &str) -> String {
        let n = unique(tag);
        self.containers.borrow_mut().push(n.clone());
        n
    }

    /// The network's bridge: `gkbr-` + the first 10 hex digits of its id.
    pub fn bridge(&self) -> String {
        format!("gkbr-{}", &self.id[..10])
    }
}

impl Drop for NetworkGuard {
    fn drop(&mut self) {
        let left = self.containers.take();
        if !left.is_empty() {
            let _ = Command::new(bin())
                .args(["rm", "-f"])
                .args(&left)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new(bin())
            .args(["network", "rm", "-f", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
