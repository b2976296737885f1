//! The workspace service's settings.

use std::path::PathBuf;

/// Limits of the service (the `WORKSPACE_MAX_*` variables).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_output_bytes: usize,
    pub max_artifacts: usize,
    pub max_artifact_bytes: u64,
    pub max_concurrency_per_session: usize,
    /// Sessions that may exist at once (`WORKSPACE_MAX_CONCURRENT`).
    pub max_concurrent_sessions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_output_bytes: 1024 * 1024,
            max_artifacts: 10,
            max_artifact_bytes: 10 * 1024 * 1024,
            max_concurrency_per_session: 4,
            max_concurrent_sessions: 10,
        }
    }
}

/// A connection profile from `WORKSPACE_CONN_PROFILE_ENDPOINTS_JSON`.
#[derive(Debug, Clone)]
pub struct ConnProfile {
    pub name: String,
    /// Everything the operator wrote for it (credentials are filtered when shown).
    pub fields: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Sessions' workspaces live in `workspace_root/sessions/<id>/workspace`.
    pub workspace_root: PathBuf,
    pub artifact_root: PathBuf,
    /// Where the workspace appears inside the sandbox.
    pub workspace_path: String,
    pub limits: Limits,
    /// Sandboxes get network access (off by default).
    pub network: bool,
    pub conn_profiles: Vec<ConnProfile>,
    pub conn_host_allowlist: Vec<String>,
    /// Prefix of the provider's sandbox names (orphans with it are reaped).
    pub sandbox_prefix: String,
}

impl Config {
    pub fn new(workspace_root: PathBuf, artifact_root: PathBuf) -> Self {
        Config {
            workspace_root,
            artifact_root,
            workspace_path: "/workspace".into(),
            limits: Limits::default(),
            network: false,
            conn_profiles: vec![],
            conn_host_allowlist: vec![],
            sandbox_prefix: "gws-".into(),
        }
    }
}
