//! The records of the service: principals, sessions, invocations, logs and artifacts, in the
//! JSON shapes of the API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::ErrorCode;
use crate::ids::rfc3339;

/// Who acts: sessions and invocations are bound to tenant + actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    pub tenant_id: String,
    pub actor_id: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

impl Principal {
    /// Whether `other` is the same tenant and actor (roles may differ between calls).
    pub fn owns(&self, other: &Principal) -> bool {
        self.tenant_id == other.tenant_id && self.actor_id == other.actor_id
    }

    /// `tenant/actor`, the key of per-principal limits.
    pub fn key(&self) -> String {
        format!("{}/{}", self.tenant_id, self.actor_id)
    }
}

/// A session: one sandbox with its workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    /// The workspace's path inside the sandbox.
    pub workspace_path: String,
    pub allowed_paths: Vec<String>,
    pub principal: Principal,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(with = "rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
    /// The sandbox provider's name for the sandbox (`gocker`).
    pub provider: String,
    /// The provider's handle of the sandbox (a container name for gocker).
    pub sandbox_id: String,
    /// Whether the workspace started as a copy of `source_repo_path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_repo_path: Option<String>,
    /// The sandbox start time, in milliseconds.
    #[serde(default)]
    pub sandbox_start_ms: u64,
    /// The session got a weaker provider than the configured default (which is unavailable).
    #[serde(default)]
    pub degraded_isolation: bool,
    /// The provider's isolation (`namespaces`, `gvisor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// The gVisor platform the sandbox runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

impl Session {
    pub fn expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

/// `POST /v1/sessions`'s body.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    #[serde(default)]
    pub principal: Option<Principal>,
    #[serde(default)]
    pub source_repo_path: Option<String>,
    #[serde(default)]
    pub allowed_paths: Vec<String>,
    #[serde(default)]
    pub expires_in_seconds: Option<u64>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The provider asked for by name (never replaced by another: unavailable → 503).
    #[serde(default)]
    pub provider: Option<String>,
}

/// `POST /v1/sessions/{id}/tools/{tool}/invoke`'s body.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct InvokeRequest {
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub approved: bool,
    #[serde(default = "empty_object")]
    pub args: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvocationStatus {
    Running,
    Succeeded,
    Failed,
    Denied,
}

impl InvocationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvocationStatus::Running => "running",
            InvocationStatus::Succeeded => "succeeded",
            InvocationStatus::Failed => "failed",
            InvocationStatus::Denied => "denied",
        }
    }
}

/// One log line of an invocation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogEntry {
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
    /// `stdout`, `stderr` or `service`.
    pub channel: String,
    pub message: String,
}

/// A file an invocation produced, kept under the artifact root.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Artifact {
    pub id: String,
    pub name: String,
    /// Where it is stored, relative to the artifact root.
    pub path: String,
    pub content_type: String,
    pub size_bytes: u64,
    pub sha256: String,
    #[serde(with = "rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Why an invocation did not succeed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InvocationError {
    pub code: ErrorCode,
    pub message: String,
    pub retryable: bool,
}

/// One call of a tool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invocation {
    pub id: String,
    pub session_id: String,
    pub tool_name: String,
    pub correlation_id: String,
    pub status: InvocationStatus,
    #[serde(with = "rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "rfc3339::option", default)]
    pub completed_at: Option<OffsetDateTime>,
    pub duration_ms: u64,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub output: serde_json::Value,
    #[serde(default)]
    pub logs: Vec<LogEntry>,
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
    #[serde(default)]
    pub error: Option<InvocationError>,
    /// Who called it (not part of the model's record; used to bind it to tenant + actor).
    pub principal: Principal,
}
