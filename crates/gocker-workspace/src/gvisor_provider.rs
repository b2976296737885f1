//! The gVisor provider: the same root (the configured rootfs, writable through gVisor's
//! in-memory overlay, so the rootfs itself stays unchanged) and the workspace bound read-write at the same path as the native
//! sandbox, as an OCI bundle that `runsc` runs in gVisor's user-space kernel.
//!
//! Every sandbox is `runsc --root <own state dir> --platform P --network=none
//! [--rootless] create/start/exec/kill/delete`; its bundle lives in `<dir>/bundles/<name>`.
//! The workspace is a gofer-served bind mount with shared file access, so writes from the
//! service side (the confined file tools) and from inside are seen both ways.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Result, WorkspaceError};
use crate::gocker_provider::read_bounded;
use crate::provider::{ExecOutcome, ExecRequest, SandboxHandle, SandboxProvider, SandboxSpec};

/// Runs sandboxes with `runsc`.
#[derive(Debug, Clone)]
pub struct GvisorProvider {
    pub runsc: PathBuf,
    pub rootfs: PathBuf,
    /// `runsc --root`: this service's own container state.
    pub state_root: PathBuf,
    /// Where the bundles (config.json) are written.
    pub bundles: PathBuf,
    /// The platform actually used (`systrap`, `ptrace` or `kvm`).
    pub platform: String,
    /// `--rootless --ignore-cgroups` (the service is not root).
    pub rootless: bool,
}

/// How long runsc may take to create or start a sandbox (nested KVM can hang).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Finds runsc: `explicit` (WORKSPACE_RUNSC_PATH) when given, else the first `runsc` on PATH.
pub fn find_runsc(explicit: Option<&Path>) -> std::result::Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if let Some(p) = explicit {
        return if executable(p) {
            Ok(p.to_path_buf())
        } else {
            Err(format!(
                "gVisor runtime (runsc) not found at WORKSPACE_RUNSC_PATH={}",
                p.display()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("runsc"))
        .find(|p| executable(p))
        .ok_or_else(|| "gVisor runtime (runsc) not found on PATH".to_string())
}

/// Runs `c` to its end, killing it after `timeout`; (status, stdout, stderr).
fn output_within(mut c: Command, timeout: Duration) -> Result<std::process::Output> {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .map_err(|e| WorkspaceError::Internal(format!("runsc: {e}")))?;
    let out = child
        .stdout
        .take()
        .map(|o| std::thread::spawn(move || read_bounded(o, 1 << 20).0));
    let err = child
        .stderr
        .take()
        .map(|o| std::thread::spawn(move || read_bounded(o, 1 << 20).0));
    let end = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= end => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(WorkspaceError::Timeout(format!(
                    "runsc did not finish within {}s",
                    timeout.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(WorkspaceError::Internal(format!("waiting for runsc: {e}"))),
        }
    };
    let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    Ok(std::process::Output {
        status,
        stdout: join(out),
        stderr: join(err),
    })
}

fn runsc_err(what: &str, o: &std::process::Output) -> WorkspaceError {
    WorkspaceError::ExecutionFailed(format!(
        "runsc {what} failed with {}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr).trim()
    ))
}

/// Whether this runsc knows `platform` (`runsc --platform P list` refuses unknown ones).
fn knows_platform(runsc: &Path, scratch: &Path, platform: &str) -> bool {
    let mut c = Command::new(runsc);
    c.arg("--root")
        .arg(scratch)
        .arg("--platform")
        .arg(platform)
        .arg("list");
    output_within(c, Duration::from_secs(20)).is_ok_and(|o| o.status.success())
}

/// Whether /dev/kvm opens read-write (a KVM platform can only work then; the startup probe
/// then proves a sandbox really boots on it, within a timeout).
fn kvm_opens() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

impl GvisorProvider {
    /// Sets the provider up under `dir`: `requested` is WORKSPACE_GVISOR_PLATFORM (default
    /// `systrap`; `ptrace` when this runsc has no systrap). An error says why gVisor is not
    /// available.
    pub fn detect(
        runsc: PathBuf,
        rootfs: PathBuf,
        dir: &Path,
        requested: Option<&str>,
        rootless: bool,
    ) -> std::result::Result<Self, String> {
        let state_root = dir.join("state");
        let bundles = dir.join("bundles");
        for d in [&state_root, &bundles] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let mut version = Command::new(&runsc);
        version.arg("--version");
        match output_within(version, Duration::from_secs(20)) {
            Ok(o) if o.status.success() => {}
            Ok(o) => return Err(format!("{} --version: {}", runsc.display(), o.status)),
            Err(e) => return Err(format!("{} --version: {e}", runsc.display())),
        }
        let platform = match requested.unwrap_or("systrap") {
            "kvm" => {
                if !kvm_opens() {
                    return Err(
                        "WORKSPACE_GVISOR_PLATFORM=kvm: /dev/kvm does not open read-write".into(),
                    );
                }
                "kvm"
            }
            "systrap" if knows_platform(&runsc, &state_root, "systrap") => "systrap",
            "systrap" | "ptrace" => "ptrace",
            other => {
                return Err(format!(
                    "WORKSPACE_GVISOR_PLATFORM={other:?}: expected systrap, ptrace or kvm"
                ))
            }
        };
        if !knows_platform(&runsc, &state_root, platform) {
            return Err(format!(
                "{} does not know the platform {platform}",
                runsc.display()
            ));
        }
        Ok(GvisorProvider {
            runsc,
            rootfs,
            state_root,
            bundles,
            platform: platform.to_string(),
            rootless,
        })
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.runsc);
        c.arg("--root")
            .arg(&self.state_root)
            .arg("--platform")
            .arg(&self.platform)
            .arg("--network=none")
            .arg("--overlay2=root:memory");
        if self.rootless {
            c.arg("--rootless").arg("--ignore-cgroups");
        }
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, what: &str, args: &[&str], timeout: Duration) -> Result<std::process::Output> {
        let mut c = self.cmd();
        c.args(args);
        let o = output_within(c, timeout)?;
        if o.status.success() {
            Ok(o)
        } else {
            Err(runsc_err(what, &o))
        }
    }

    /// Runs a runsc command that leaves the sandbox's processes behind (create, start): they
    /// inherit its stdio, so nothing is piped (a pipe would never see its end); its stderr
    /// goes to `log` and is read back when it fails.
    fn run_detached(&self, what: &str, args: &[&str], log: &Path) -> Result<()> {
        let f = std::fs::File::create(log).map_err(|e| WorkspaceError::io(log.display(), e))?;
        let mut c = self.cmd();
        c.args(args).stdout(Stdio::null()).stderr(f);
        let mut child = c
            .spawn()
            .map_err(|e| WorkspaceError::Internal(format!("{}: {e}", self.runsc.display())))?;
        let end = Instant::now() + START_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() >= end => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(WorkspaceError::Timeout(format!(
                        "runsc {what} did not finish within {}s (platform {})",
                        START_TIMEOUT.as_secs(),
                        self.platform
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(WorkspaceError::Internal(format!("waiting for runsc: {e}"))),
            }
        };
        if status.success() {
            return Ok(());
        }
        let msg = std::fs::read_to_string(log).unwrap_or_default();
        Err(WorkspaceError::ExecutionFailed(format!(
            "runsc {what} failed with {status}: {}",
            msg.trim()
        )))
    }

    fn bundle_dir(&self, name: &str) -> Result<PathBuf> {
        if name.is_empty()
            || name.starts_with('-')
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(WorkspaceError::InvalidArgument(format!(
                "sandbox name {name:?}: only letters, digits, '-' and '_', not starting with '-'"
            )));
        }
        Ok(self.bundles.join(name))
    }

    /// The OCI config of a sandbox: the rootfs under gVisor's memory overlay, the
    /// workspace bound read-write, no network, an idle PID 1.
    fn config(&self, spec: &SandboxSpec) -> serde_json::Value {
        let caps = [
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FOWNER",
            "CAP_FSETID",
            "CAP_KILL",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT",
        ];
        serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": {"uid": 0, "gid": 0},
                "args": ["/bin/sleep", "2147483647"],
                "env": [
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "HOME=/root",
                    "HOSTNAME=workspace",
                ],
                "cwd": spec.workspace_path,
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
                "noNewPrivileges": true,
            },
            // Writable as the native sandbox's copy-on-write root, but through gVisor's
            // memory overlay (--overlay2=root:memory): the shared rootfs is never written.
            "root": {"path": self.rootfs, "readonly": false},
            "hostname": "workspace",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "nodev", "mode=1777"]},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
                {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]},
                {"destination": spec.workspace_path, "type": "bind", "source": spec.workspace_dir, "options": ["rbind", "rw"]},
            ],
            "linux": {
                "namespaces": [
                    {"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                    {"type": "mount"}, {"type": "network"},
                ],
            },
        })
    }

    /// Kills every process of the sandbox but its PID 1 (`kill -9 -1` from inside).
    fn kill_all(&self, sandbox: &str) {
        let mut c = self.cmd();
        c.args(["exec", sandbox, "/bin/sh", "-c", "kill -9 -1"]);
        let _ = output_within(c, Duration::from_secs(20));
    }

    fn state(&self, sandbox: &str) -> Option<String> {
        let o = self
            .run("state", &["state", sandbox], Duration::from_secs(20))
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
        v["status"].as_str().map(str::to_string)
    }
}

impl SandboxProvider for GvisorProvider {
    fn name(&self) -> &'static str {
        "gvisor"
    }

    fn create(&self, spec: &SandboxSpec) -> Result<SandboxHandle> {
        if spec.network {
            return Err(WorkspaceError::InvalidArgument(
                "the gvisor provider runs sandboxes without network (--network=none); WORKSPACE_SANDBOX_NETWORK is not supported with it yet".into(),
            ));
        }
        let t = Instant::now();
        let dir = self.bundle_dir(&spec.name)?;
        std::fs::create_dir_all(&dir).map_err(|e| WorkspaceError::io(dir.display(), e))?;
        let cfg = dir.join("config.json");
        let made = std::fs::write(&cfg, self.config(spec).to_string())
            .map_err(|e| WorkspaceError::io(cfg.display(), e))
            .and_then(|_| {
                let bundle = dir.display().to_string();
                let log = dir.join("runsc.log");
                self.run_detached("create", &["create", "--bundle", &bundle, &spec.name], &log)?;
                self.run_detached("start", &["start", &spec.name], &log)
            });
        if let Err(e) = made {
            let _ = self.destroy(&spec.name);
            return Err(e);
        }
        Ok(SandboxHandle {
            id: spec.name.clone(),
            start_time: t.elapsed(),
        })
    }

    fn exec(&self, sandbox: &str, req: &ExecRequest) -> Result<ExecOutcome> {
        if req.argv.is_empty() {
            return Err(WorkspaceError::InvalidArgument("argv: empty".into()));
        }
        let t = Instant::now();
        let mut c = self.cmd();
        c.args(["exec", "--cwd", &req.workdir]);
        for (k, v) in &req.env {
            c.arg("--env").arg(format!("{k}={v}"));
        }
        // runsc takes everything after the container id as the program's argv.
        c.arg(sandbox).args(&req.argv);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .map_err(|e| WorkspaceError::Internal(format!("{}: {e}", self.runsc.display())))?;
        let limit = req.output_limit;
        let out = child
            .stdout
            .take()
            .map(|o| std::thread::spawn(move || read_bounded(o, limit)));
        let err = child
            .stderr
            .take()
            .map(|o| std::thread::spawn(move || read_bounded(o, limit)));
        let deadline = t + req.timeout;
        let mut timed_out = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() >= deadline => {
                    timed_out = true;
                    self.kill_all(sandbox);
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => {
                    return Err(WorkspaceError::Internal(format!(
                        "waiting for runsc exec: {e}"
                    )))
                }
            }
        };
        let join = |h: Option<std::thread::JoinHandle<(Vec<u8>, bool)>>| {
            h.and_then(|h| h.join().ok()).unwrap_or_default()
        };
        let (stdout, t1) = join(out);
        let (stderr, t2) = join(err);
        use std::os::unix::process::ExitStatusExt;
        Ok(ExecOutcome {
            exit_code: status.map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))),
            stdout,
            stderr,
            truncated: t1 || t2,
            timed_out,
            duration: t.elapsed(),
        })
    }

    fn kill_processes(&self, sandbox: &str) -> Result<()> {
        self.kill_all(sandbox);
        Ok(())
    }

    fn exists(&self, sandbox: &str) -> Result<bool> {
        Ok(self.state(sandbox).as_deref() == Some("running"))
    }

    fn destroy(&self, sandbox: &str) -> Result<()> {
        let dir = self.bundle_dir(sandbox)?;
        let o = self.run(
            "delete",
            &["delete", "--force", sandbox],
            Duration::from_secs(60),
        );
        if let Err(e) = o {
            if self.list(sandbox)?.iter().any(|n| n == sandbox) {
                return Err(e);
            }
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(WorkspaceError::io(dir.display(), e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let o = self.run("list", &["list", "--quiet"], Duration::from_secs(20))?;
        Ok(String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::trim)
            .filter(|n| !n.is_empty() && n.starts_with(prefix))
            .map(str::to_string)
            .collect())
    }

    fn health(&self) -> Result<()> {
        self.run("list", &["list", "--quiet"], Duration::from_secs(20))
            .map(|_| ())
    }

    fn isolation(&self) -> &'static str {
        "gvisor"
    }

    fn platform(&self) -> Option<&str> {
        Some(&self.platform)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_runsc_is_reported() {
        let e = find_runsc(Some(Path::new("/nonexistent/runsc"))).unwrap_err();
        assert!(e.contains("not found"), "{e}");
    }

    #[test]
    fn hostile_sandbox_names_are_refused() {
        let p = GvisorProvider {
            runsc: "/bin/false".into(),
            rootfs: "/".into(),
            state_root: "/tmp/x".into(),
            bundles: "/tmp/x".into(),
            platform: "ptrace".into(),
            rootless: false,
        };
        for n in ["", "../x", "a/b", "-x y", "-x"] {
            assert!(p.bundle_dir(n).is_err(), "{n:?}");
        }
        assert!(p.bundle_dir("gws-abc_1").is_ok());
    }
}
