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
