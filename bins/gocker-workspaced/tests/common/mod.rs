//! Helpers of gocker-workspaced's integration tests: the real binary started on a free port
//! with its own WORKSPACE_ROOT, an HTTP client, and the checks that nothing is left behind.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The gocker binary (`GOCKER_BIN`, set by `cargo xtask itest`), else the one cargo built.
pub fn gocker_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GOCKER_BIN") {
        return PathBuf::from(p);
    }
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_gocker-workspaced"));
    exe.with_file_name("gocker")
}

pub fn workspaced_bin() -> PathBuf {
    std::env::var_os("GOCKER_WORKSPACED_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_gocker-workspaced")))
}

pub fn mode() -> String {
    std::env::var("GOCKER_TEST_MODE").unwrap_or_else(|_| "root".into())
}

/// The test rootfs, or `None` (the caller skips, saying why) when it is not configured.
pub fn rootfs() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("GOCKER_TEST_ROOTFS")?);
    p.join("bin/sh").exists().then_some(p)
}

/// Whether the tests can run here; prints the reason when not.
#[must_use]
pub fn ready(test: &str) -> bool {
    if rootfs().is_none() {
        eprintln!("SKIP {test}: GOCKER_TEST_ROOTFS is not set to a root with /bin/sh (run via cargo xtask itest)");
        return false;
    }
    if !gocker_bin().is_file() {
        eprintln!(
            "SKIP {test}: no gocker binary at {} (build -p gocker-cli --bins or set GOCKER_BIN)",
            gocker_bin().display()
        );
        return false;
    }
    true
}

/// A directory of this test process under /tmp, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "gwsd-{tag}-{}-{}-{}",
            rustix::process::getuid().as_raw(),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running gocker-workspaced.
pub struct Server {
    pub child: Option<Child>,
    pub url: String,
    pub root: PathBuf,
    pub env: Vec<(String, String)>,
    pub stderr_log: PathBuf,
}

impl Server {
    /// Starts the service with its WORKSPACE_ROOT at `root` and the extra variables `env`.
    pub fn start(root: &Path, env: &[(&str, &str)]) -> Server {
        Self::start_owned(
            root,
            env.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    pub fn start_owned(root: &Path, env: Vec<(String, String)>) -> Server {
        let log = std::env::temp_dir().join(format!(
            "gwsd-{}-{}.log",
            std::process::id(),
            root.parent()
                .and_then(|p| p.file_name())
                .unwrap_or_default()
                .to_string_lossy()
        ));
        let mut c = Command::new(workspaced_bin());
        c.env("PORT", "0")
            .env("WORKSPACE_ROOT", root)
            .env("WORKSPACE_GOCKER_BIN", gocker_bin())
            .env("WORKSPACE_SANDBOX_ROOTFS", rootfs().expect("rootfs"))
            .env("LOG_LEVEL", "info")
            // The suite tests the native sandbox unless a test asks for another provider.
            .env("WORKSPACE_DEFAULT_PROVIDER", "gocker")
            // No background measurement of the providers (sandboxes started and removed beside
            // every test's own) unless a test asks for it (tests/providers.rs).
            .env("WORKSPACE_PROVIDER_PROBE_ROUNDS", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in &env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("spawn gocker-workspaced");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = std::io::BufReader::new(out);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the service never blocks on a full pipe.
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let url = match line.trim().strip_prefix("gocker-workspaced listening on ") {
            Some(u) => u.to_string(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "gocker-workspaced did not start: {line:?}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        Server {
            child: Some(child),
            url,
            root: root.to_path_buf(),
            env,
            stderr_log: log,
        }
    }

    /// `kill -9` of the service (its sandboxes stay: they are gocker's).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (graceful shutdown).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = rustix::process::Pid::from_raw(c.id() as i32).unwrap();
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let end = Instant::now() + Duration::from_secs(60);
            while Instant::now() < end {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Resp {
        let mut r =
            ureq::request(method, &format!("{}{path}", self.url)).timeout(Duration::from_secs(300));
        for (k, v) in headers {
            r = r.set(k, v);
        }
        let res = match body {
            Some(b) => r
                .set("content-type", "application/json")
                .send_string(&b.to_string()),
            None => r.call(),
        };
        Resp::from(res)
    }

    pub fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut r =
            ureq::request(method, &format!("{}{path}", self.url)).timeout(Duration::from_secs(300));
        for (k, v) in headers {
            r = r.set(k, v);
        }
        Resp::from(r.send_bytes(body))
    }

    pub fn get(&self, path: &str) -> Resp {
        self.call("GET", path, &[], None)
    }

    /// Creates a session for tenant `t`, actor `agent`, `roles`; panics unless 201.
    pub fn session(&self, body: Value) -> Value {
        let r = self.call("POST", "/v1/sessions", &[], Some(&body));
        assert_eq!(r.status, 201, "create: {}\n{}", r.body, self.logs());
        r.json["session"].clone()
    }

    pub fn invoke(&self, session: &str, tool: &str, body: Value) -> Resp {
        self.call(
            "POST",
            &format!("/v1/sessions/{session}/tools/{tool}/invoke"),
            &[],
            Some(&body),
        )
    }

    pub fn delete(&self, session: &str) -> Resp {
        self.call("DELETE", &format!("/v1/sessions/{session}"), &[], None)
    }

    /// The sandbox names of this instance that gocker knows.
    pub fn sandboxes(&self) -> Vec<String> {
        let o = Command::new(gocker_bin())
            .args(["ps", "-a", "--format", "json"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "gocker ps: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let prefix = sandbox_prefix(&self.root);
        v.as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str().map(String::from))
            .filter(|n| n.starts_with(&prefix))
            .collect()
    }

    /// Session directories under WORKSPACE_ROOT/sessions.
    pub fn session_dirs(&self) -> Vec<String> {
        std::fs::read_dir(self.root.join("sessions"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        self.remove_sandboxes();
        // A provider probe the kill interrupted (its scratch directory is still there) may have
        // a `gocker run` or `runsc create` helper finishing now: once more after it.
        let probing = std::fs::read_dir(self.root.join("probe"))
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if probing {
            std::thread::sleep(Duration::from_millis(1500));
            self.remove_sandboxes();
        }
        if std::env::var_os("GWSD_KEEP_LOG").is_none() {
            let _ = std::fs::remove_file(&self.stderr_log);
        }
    }
}

impl Server {
    /// Removes this instance's gocker and runsc sandboxes (session and probe ones).
    fn remove_sandboxes(&self) {
        // Whatever a failed test left: this instance's sandboxes.
        if let Ok(o) = Command::new(gocker_bin())
            .args(["ps", "-a", "--format", "json"])
            .stdin(Stdio::null())
            .output()
        {
            let prefix = sandbox_prefix(&self.root);
            let probes = format!("{}probe-", prefix.trim_end_matches('-'));
            if let Ok(v) = serde_json::from_slice::<Value>(&o.stdout) {
                for n in v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["name"].as_str())
                {
                    if n.starts_with(&prefix) || n.starts_with(&probes) {
                        let _ = Command::new(gocker_bin())
                            .args(["rm", "-f", n])
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status();
                    }
                }
            }
        }
        // And its runsc containers (gvisor sessions, or a probe the kill interrupted).
        let state = self.root.join("gvisor/state");
        if state.is_dir() {
            let runsc = |args: &[&str]| {
                Command::new("runsc")
                    .arg("--root")
                    .arg(&state)
                    .arg("--network=none")
                    .args(args)
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .output()
            };
            if let Ok(o) = runsc(&["list", "--quiet"]) {
                for c in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = runsc(&["delete", "--force", c]);
                }
            }
        }
    }
}

/// The service's sandbox name prefix for a WORKSPACE_ROOT (as stores::sandbox_prefix).
pub fn sandbox_prefix(root: &Path) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(root.as_os_str().as_encoded_bytes());
    format!(
        "gws-{}-",
        d.iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

pub struct Resp {
    pub status: u16,
    pub body: String,
    pub json: Value,
    pub retry_after: Option<String>,
}

impl From<Result<ureq::Response, ureq::Error>> for Resp {
    fn from(r: Result<ureq::Response, ureq::Error>) -> Self {
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("HTTP: {e}"),
        };
        let status = resp.status();
        let retry_after = resp.header("retry-after").map(String::from);
        let body = resp.into_string().unwrap_or_default();
        let json = serde_json::from_str(&body).unwrap_or(Value::Null);
        Resp {
            status,
            body,
            json,
            retry_after,
        }
    }
}

pub fn principal(tenant: &str, roles: &[&str]) -> Value {
    json!({"tenant_id": tenant, "actor_id": "agent", "roles": roles})
}

pub fn sha256_hex(d: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(d)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A small git repository made with the host's git: a `test.sh` runner with a passing and a
/// failing test, and a text file to patch.
pub fn git_repo(dir: &Path) -> PathBuf {
    let r = dir.join("repo");
    std::fs::create_dir_all(&r).unwrap();
    std::fs::write(r.join("greeting.txt"), "hello\nworld\n").unwrap();
    std::fs::write(
        r.join("test.sh"),
        "#!/bin/sh\n# A tiny test runner: each test is a function; FAIL lines name the failures.\n\
         failed=0\n\
         test_greeting_exists() { test -f greeting.txt; }\n\
         test_says_goodbye() { grep -q goodbye greeting.txt; }\n\
         for t in test_greeting_exists test_says_goodbye; do\n\
           if $t; then echo \"PASS: $t\"; else echo \"FAIL: $t\"; failed=$((failed+1)); fi\n\
         done\n\
         echo \"$failed failed\"\n\
         [ $failed -eq 0 ]\n",
    )
    .unwrap();
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .args([
                "-c",
                "user.name=test",
                "-c",
                "user.email=test@example.invalid",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(&r)
            .env("HOME", dir)
            .output()
            .expect("git on the host (the test makes its repository with it)");
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "initial"]);
    r
}

/// A sandbox root with git: the test rootfs (busybox) plus the host's git and the libraries it
/// links (found with ldd), built once per test process in `dir`. `None` when the host has no git.
pub fn toolchain_rootfs(dir: &Path) -> Option<PathBuf> {
    let git = ["/usr/local/bin/git", "/usr/bin/git"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())?;
    let dst = dir.join("toolchain-root");
    // Rootless, parts of the root (its /root, 0700) cannot be read: they are not needed.
    let _ = Command::new("cp")
        .args(["-RP", "--preserve=mode,timestamps"])
        .arg(rootfs()?)
        .arg(&dst)
        .stderr(Stdio::null())
        .status();
    assert!(
        dst.join("bin/sh").exists(),
        "copying the rootfs to {}",
        dst.display()
    );
    let _ = std::fs::create_dir_all(dst.join("root"));
    let copy = |src: &Path| {
        let to = dst.join(src.strip_prefix("/").unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(src, &to).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    };
    copy(&git);
    let o = Command::new("ldd").arg(&git).output().ok()?;
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = l
            .split("=>")
            .last()
            .unwrap_or("")
            .trim()
            .split(' ')
            .next()
            .unwrap_or("");
        if path.starts_with('/') {
            copy(Path::new(path));
        }
    }
    Some(dst)
}

/// Polls `f` until it gives a value; panics naming `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
