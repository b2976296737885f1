//! The native provider: each sandbox is a Gocker container, driven through the `gocker` binary
//! (a helper process per operation, so the multi-threaded service never forks the rings itself).
//!
//! The container: the configured rootfs as a copy-on-write root, `--network none` unless asked,
//! the default seccomp profile, its own user namespace (rootful: container root is host uid
//! 1000000000; rootless: the caller's uid with its subordinate range), the workspace bound
//! read-write at the workspace path, and an idle PID 1 that keeps it alive between tools.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Result, WorkspaceError};
use crate::provider::{ExecOutcome, ExecRequest, SandboxHandle, SandboxProvider, SandboxSpec};

/// Runs sandboxes with the `gocker` binary.
#[derive(Debug, Clone)]
pub struct GockerProvider {
    pub gocker: PathBuf,
    pub rootfs: PathBuf,
}

fn exec_err(what: &str, o: &std::process::Output) -> WorkspaceError {
    WorkspaceError::ExecutionFailed(format!(
        "gocker {what} failed with {}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr).trim()
    ))
}

impl GockerProvider {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.gocker);
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, what: &str, args: &[&str]) -> Result<std::process::Output> {
        self.cmd()
            .args(args)
            .output()
            .map_err(|e| WorkspaceError::Internal(format!("{}: {e}", self.gocker.display())))
            .and_then(|o| {
                if o.status.success() {
                    Ok(o)
                } else {
                    Err(exec_err(what, &o))
                }
            })
    }

    /// Every container of this user: (name, status).
    fn containers(&self) -> Result<Vec<(String, String)>> {
        let o = self.run("ps", &["ps", "-a", "--format", "json"])?;
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .map_err(|e| WorkspaceError::Internal(format!("gocker ps --format json: {e}")))?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| {
                        Some((
                            c["name"].as_str()?.to_string(),
                            c["status"].as_str().unwrap_or("").to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Kills every process of the sandbox but its PID 1 (`kill -9 -1` from inside).
    fn kill_all(&self, sandbox: &str) {
        let _ = self
            .cmd()
            .args(["exec", sandbox, "/bin/sh", "-c", "kill -9 -1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Reads `r` to its end, keeping the first `limit` bytes; `true` when more came.
pub(crate) fn read_bounded(mut r: impl Read, limit: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let mut over = false;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                over |= n > room;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    (kept, over)
}

impl SandboxProvider for GockerProvider {
    fn name(&self) -> &'static str {
        "gocker"
    }

    fn create(&self, spec: &SandboxSpec) -> Result<SandboxHandle> {
        let t = Instant::now();
        let vol = format!("{}:{}", spec.workspace_dir.display(), spec.workspace_path);
        let rootfs = self.rootfs.display().to_string();
        let net = if spec.network { "slirp4netns" } else { "none" };
        // PID 1 idles in the sandbox; every tool's program is a `gocker exec` next to it.
        self.run(
            "run",
            &[
                "run",
                "-d",
                "--name",
                &spec.name,
                "--network",
                net,
                "--hostname",
                "workspace",
                "--rootfs",
                &rootfs,
                "-v",
                &vol,
                "-w",
                &spec.workspace_path,
                "/bin/sleep",
                "2147483647",
            ],
        )?;
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
        c.args(["exec", "-w", &req.workdir]);
        for (k, v) in &req.env {
            c.arg("-e").arg(format!("{k}={v}"));
        }
        c.arg(sandbox).arg("--").args(&req.argv);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .map_err(|e| WorkspaceError::Internal(format!("{}: {e}", self.gocker.display())))?;
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
                        "waiting for gocker exec: {e}"
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
        Ok(self
            .containers()?
            .iter()
            .any(|(n, status)| n == sandbox && status == "running"))
    }

    fn destroy(&self, sandbox: &str) -> Result<()> {
        let o = self
            .cmd()
            .args(["rm", "-f", sandbox])
            .output()
            .map_err(|e| WorkspaceError::Internal(format!("{}: {e}", self.gocker.display())))?;
        let gone = || -> Result<bool> { Ok(!self.list(sandbox)?.iter().any(|n| n == sandbox)) };
        if o.status.success() || gone()? {
            Ok(())
        } else {
            Err(exec_err("rm -f", &o))
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .containers()?
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with(prefix))
            .collect())
    }

    fn health(&self) -> Result<()> {
        self.run("ps", &["ps", "-q"]).map(|_| ())
    }

    fn isolation(&self) -> &'static str {
        "namespaces"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn bounded_reads_keep_the_head_and_drain_the_rest() {
        let data = vec![b'x'; 200_000];
        let (k, over) = read_bounded(&data[..], 1000);
        assert_eq!((k.len(), over), (1000, true));
        let (k, over) = read_bounded(&data[..10], 1000);
        assert_eq!((k.len(), over), (10, false));
    }
}
