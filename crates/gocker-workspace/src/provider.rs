//! Sandboxes behind one trait: the service asks a [`SandboxProvider`] for a sandbox per
//! session and runs every program of a tool inside it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Result;

/// What a new sandbox is made of.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// The provider's name for it (unique; a session id prefixed).
    pub name: String,
    /// The host directory that is the workspace.
    pub workspace_dir: PathBuf,
    /// Where the workspace appears inside the sandbox.
    pub workspace_path: String,
    /// Network access (off unless asked for).
    pub network: bool,
}

/// A running sandbox.
#[derive(Debug, Clone)]
pub struct SandboxHandle {
    pub id: String,
    pub start_time: Duration,
}

/// One program to run inside a sandbox.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Absolute path inside the sandbox.
    pub workdir: String,
    pub timeout: Duration,
    /// Bytes kept of stdout and of stderr each; the rest is read and dropped.
    pub output_limit: usize,
}

/// How a program ended.
#[derive(Debug, Clone, Default)]
pub struct ExecOutcome {
    /// Its exit status (128+N when killed by signal N); `None` when it timed out.
    pub exit_code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Whether output beyond `output_limit` was dropped.
    pub truncated: bool,
    pub timed_out: bool,
    pub duration: Duration,
}

/// A sandbox provider (`gocker`; later `gvisor`, `docker`).
pub trait SandboxProvider: Send + Sync {
    fn name(&self) -> &'static str;
    /// Starts a sandbox whose workspace is `spec.workspace_dir` at `spec.workspace_path`.
    fn create(&self, spec: &SandboxSpec) -> Result<SandboxHandle>;
    /// Runs a program in the sandbox; on timeout every process it started is killed.
    fn exec(&self, sandbox: &str, req: &ExecRequest) -> Result<ExecOutcome>;
    /// Kills every process of the sandbox except its init (after an interrupted invocation).
    fn kill_processes(&self, sandbox: &str) -> Result<()>;
    /// Whether the sandbox still exists and runs.
    fn exists(&self, sandbox: &str) -> Result<bool>;
    /// Removes the sandbox (a missing one is fine).
    fn destroy(&self, sandbox: &str) -> Result<()>;
    /// Sandboxes of this provider that exist, by name (for reaping orphans).
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Whether the provider answers (for `/healthz`).
    fn health(&self) -> Result<()>;
    /// The isolation boundary of its sandboxes: `namespaces` (Linux namespaces, seccomp) or
    /// `gvisor` (a user-space kernel).
    fn isolation(&self) -> &'static str;
    /// The gVisor platform its sandboxes run on (`systrap`, `ptrace`, `kvm`), if any.
    fn platform(&self) -> Option<&str> {
        None
    }
}

/// What a provider can do, measured by [`probe`] at startup.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Capabilities {
    /// A file written in the workspace by one sandbox is there for the next sandbox on it.
    pub supports_persistence: bool,
    /// The provider can snapshot a sandbox (no provider has that operation yet).
    pub supports_snapshots: bool,
    /// Sandboxes can be started before a session asks (no warm pool is built yet).
    pub supports_warm_pool: bool,
    /// Its sandboxes need /dev/kvm (the gVisor `kvm` platform).
    pub requires_kvm: bool,
    /// Median of three create+destroy rounds, in milliseconds.
    pub startup_ms: u64,
    pub isolation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// Measures `p`: `rounds` sandboxes (3 at startup) in turn on one scratch workspace under
/// `scratch` (created and removed here). The first writes a file from inside; the later ones
/// check it is still there (persistence of the workspace across sandboxes).
pub fn probe(
    p: &dyn SandboxProvider,
    scratch: &std::path::Path,
    workspace_path: &str,
    name_prefix: &str,
    rounds: usize,
) -> Result<Capabilities> {
    use crate::error::WorkspaceError;
    let ws = scratch.join("workspace");
    std::fs::create_dir_all(&ws).map_err(|e| WorkspaceError::io(ws.display(), e))?;
    let result = (|| {
        let mut times = Vec::new();
        let mut persisted = true;
        for round in 0..rounds.max(1) {
            let spec = SandboxSpec {
                name: format!("{name_prefix}probe-{round}"),
                workspace_dir: ws.clone(),
                workspace_path: workspace_path.to_string(),
                network: false,
            };
            let t = std::time::Instant::now();
            let _ = p.destroy(&spec.name);
            let h = p.create(&spec)?;
            let run = |script: &str| {
                p.exec(
                    &h.id,
                    &ExecRequest {
                        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
                        env: BTreeMap::new(),
                        workdir: workspace_path.to_string(),
                        timeout: Duration::from_secs(30),
                        output_limit: 4096,
                    },
                )
            };
            let checked = if round == 0 {
                run("echo probe > .gws-probe")
            } else {
                run("cat .gws-probe")
            };
            let destroyed = p.destroy(&h.id);
            let o = checked?;
            destroyed?;
            times.push(t.elapsed().as_millis() as u64);
            if round == 0 && o.exit_code != Some(0) {
                return Err(WorkspaceError::ExecutionFailed(format!(
                    "probe: writing the workspace from inside failed ({:?}): {}",
                    o.exit_code,
                    String::from_utf8_lossy(&o.stderr).trim()
                )));
            }
            if round > 0 {
                persisted &= o.exit_code == Some(0) && o.stdout == b"probe\n";
            }
        }
        times.sort_unstable();
        Ok(Capabilities {
            supports_persistence: persisted,
            supports_snapshots: false,
            supports_warm_pool: false,
            requires_kvm: p.platform() == Some("kvm"),
            startup_ms: times[times.len() / 2],
            isolation: p.isolation().to_string(),
            platform: p.platform().map(str::to_string),
        })
    })();
    let _ = std::fs::remove_dir_all(scratch);
    result
}

/// Reads a file of a workspace from the service side (confined: see [`crate::confined`]).
pub fn read_file(
    ws: &crate::confined::WorkspaceDir,
    rel: &crate::paths::RelPath,
    max: u64,
) -> Result<(Vec<u8>, bool)> {
    ws.read(rel, max)
}

/// Writes a file of a workspace from the service side (confined: see [`crate::confined`]).
pub fn write_file(
    ws: &crate::confined::WorkspaceDir,
    rel: &crate::paths::RelPath,
    data: &[u8],
    create_dirs: bool,
) -> Result<u64> {
    ws.write(rel, data, create_dirs)
}
