//! The workspace service without its transport: sessions, invocations and their records,
//! through a [`Store`] and a [`SandboxProvider`]. The HTTP server (bins/gocker-workspaced) and
//! the MCP endpoint are thin layers over [`Service`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::artifacts::ArtifactStore;
use crate::catalog::{self, ToolSpec};
pub use crate::config::{Config, ConnProfile, Limits};
use crate::confined::WorkspaceDir;
use crate::error::{ErrorCode, Result, WorkspaceError};
use crate::ids::{is_id, new_id, now};
use crate::model::{
    CreateSession, Invocation, InvocationError, InvocationStatus, InvokeRequest, LogEntry,
    Principal, Session,
};
use crate::paths::AllowedPaths;
use crate::policy::Policy;
use crate::provider::{SandboxProvider, SandboxSpec};
use crate::providers::Providers;
use crate::store::Store;
use crate::tools;

/// What [`Service::recover`] found and did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recovery {
    pub sessions: usize,
    pub sandboxes_recreated: usize,
    pub interrupted_invocations: usize,
    pub orphan_sandboxes_removed: usize,
    pub orphan_workspaces_removed: usize,
    pub expired_sessions_reaped: usize,
}

pub struct Service {
    cfg: Config,
    store: Arc<dyn Store>,
    providers: Providers,
    policy: Policy,
    artifacts: ArtifactStore,
    running: Mutex<HashMap<String, usize>>,
    /// Sessions being created now (counted against `max_concurrent_sessions`).
    creating: Mutex<usize>,
}

/// A reservation of one of the service's session places while a session is created.
struct Creating<'a>(&'a Service);

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        if let Ok(mut n) = self.0.creating.lock() {
            *n -= 1;
        }
    }
}

/// Holds one of a session's concurrency slots.
struct Slot<'a>(&'a Service, String);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.0.running.lock() {
            if let Some(n) = m.get_mut(&self.1) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.1);
                }
            }
        }
    }
}

fn status_for(code: ErrorCode) -> InvocationStatus {
    match code {
        ErrorCode::PolicyDenied
        | ErrorCode::ApprovalRequired
        | ErrorCode::RateLimited
        | ErrorCode::Unauthorized
        | ErrorCode::InvalidArgument => InvocationStatus::Denied,
        _ => InvocationStatus::Failed,
    }
}

fn inv_error(e: &WorkspaceError) -> InvocationError {
    InvocationError {
        code: e.code(),
        message: e.to_string(),
        retryable: e.code().retryable(),
    }
}

impl Service {
    pub fn new(
        cfg: Config,
        store: Arc<dyn Store>,
        provider: Arc<dyn SandboxProvider>,
        policy: Policy,
    ) -> Result<Self> {
        Self::with_providers(cfg, store, Providers::single(provider), policy)
    }

    /// A service with several providers (sessions get the default one unless they name one).
    pub fn with_providers(
        cfg: Config,
        store: Arc<dyn Store>,
        providers: Providers,
        policy: Policy,
    ) -> Result<Self> {
        let sessions = cfg.workspace_root.join("sessions");
        std::fs::create_dir_all(&sessions)
            .map_err(|e| WorkspaceError::io(sessions.display(), e))?;
        let artifacts = ArtifactStore::open(&cfg.artifact_root)?;
        Ok(Service {
            cfg,
            store,
            providers,
            policy,
            artifacts,
            running: Mutex::new(HashMap::new()),
            creating: Mutex::new(0),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The default provider.
    pub fn provider(&self) -> &dyn SandboxProvider {
        &**self
            .providers
            .get(None)
            .expect("the default provider is available")
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// The provider of a session's sandbox.
    fn provider_of(&self, s: &Session) -> Result<&dyn SandboxProvider> {
        self.providers.get(Some(&s.provider)).map(|p| &**p)
    }

    /// Reserves a place for a new session: `rate_limited` when `max_concurrent_sessions`
    /// sessions exist or are being created.
    fn reserve(&self) -> Result<Creating<'_>> {
        let mut n = self
            .creating
            .lock()
            .map_err(|_| WorkspaceError::Internal("session places: poisoned lock".into()))?;
        let t = now();
        let active = self
            .store
            .list_sessions()?
            .iter()
            .filter(|s| !s.expired(t))
            .count();
        let max = self.cfg.limits.max_concurrent_sessions;
        if active + *n >= max {
            return Err(WorkspaceError::RateLimited {
                message: format!(
                    "{max} sessions are active (WORKSPACE_MAX_CONCURRENT): delete one or retry later"
                ),
                retry_after_secs: 5,
            });
        }
        *n += 1;
        Ok(Creating(self))
    }

    /// The stored content of an artifact of an invocation record.
    pub fn read_artifact(&self, a: &crate::model::Artifact) -> Result<Vec<u8>> {
        self.artifacts.read(a)
    }

    fn session_dir(&self, id: &str) -> PathBuf {
        self.cfg.workspace_root.join("sessions").join(id)
    }

    /// The host directory of a session's workspace.
    pub fn workspace_dir(&self, id: &str) -> PathBuf {
        self.session_dir(id).join("workspace")
    }

    fn sandbox_name(&self, id: &str) -> String {
        format!("{}{id}", self.cfg.sandbox_prefix)
    }

    fn remove_session_dir(&self, id: &str) -> Result<()> {
        let d = self.session_dir(id);
        match std::fs::remove_dir_all(&d) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(WorkspaceError::io(d.display(), e)),
        }
    }

    /// Creates a session for `principal`: its workspace (a copy of `source_repo_path`, or
    /// empty) and its sandbox. On any failure nothing of it is left.
    pub fn create_session(&self, principal: Principal, req: CreateSession) -> Result<Session> {
        if principal.tenant_id.is_empty() || principal.actor_id.is_empty() {
            return Err(WorkspaceError::InvalidArgument(
                "principal: tenant_id and actor_id are required".into(),
            ));
        }
        let allowed = AllowedPaths::parse(&req.allowed_paths)?;
        let source = match &req.source_repo_path {
            None => None,
            Some(p) => Some(check_source(p)?),
        };
        let provider = self.providers.get(req.provider.as_deref())?.clone();
        let degraded = req.provider.is_none() && self.providers.degraded().is_some();
        let _place = self.reserve()?;
        let id = new_id();
        let ws = self.workspace_dir(&id);
        let made = (|| -> Result<Session> {
            std::fs::create_dir_all(&ws).map_err(|e| WorkspaceError::io(ws.display(), e))?;
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(
                self.session_dir(&id),
                std::fs::Permissions::from_mode(0o700),
            );
            if let Some(src) = &source {
                WorkspaceDir::open(&ws)?.import_tree(src)?;
            }
            let spec = SandboxSpec {
                name: self.sandbox_name(&id),
                workspace_dir: ws.clone(),
                workspace_path: self.cfg.workspace_path.clone(),
                network: self.cfg.network,
            };
            let h = provider.create(&spec)?;
            let created = now();
            let s = Session {
                id: id.clone(),
                workspace_path: self.cfg.workspace_path.clone(),
                allowed_paths: allowed.as_strings(),
                principal: principal.clone(),
                metadata: req.metadata.clone(),
                created_at: created,
                expires_at: req
                    .expires_in_seconds
                    .map(|s| created + Duration::from_secs(s)),
                provider: provider.name().into(),
                sandbox_id: h.id.clone(),
                source_repo_path: source.as_ref().map(|p| p.display().to_string()),
                sandbox_start_ms: h.start_time.as_millis() as u64,
                degraded_isolation: degraded,
                isolation: Some(provider.isolation().to_string()),
                platform: provider.platform().map(str::to_string),
            };
            if let Err(e) = self.store.put_session(&s) {
                let _ = provider.destroy(&h.id);
                return Err(e);
            }
            Ok(s)
        })();
        if made.is_err() {
            let _ = self.remove_session_dir(&id);
        }
        made
    }

    /// The session `id` when `principal` may see it (same tenant and actor; `None` skips the
    /// check, as payload auth does for calls without principal headers) and it has not expired.
    pub fn session(&self, principal: Option<&Principal>, id: &str) -> Result<Session> {
        let nf = || WorkspaceError::NotFound(format!("session {id:?} not found"));
        if !is_id(id) {
            return Err(nf());
        }
        let s = self.store.get_session(id)?.ok_or_else(nf)?;
        if principal.is_some_and(|p| !p.owns(&s.principal)) || s.expired(now()) {
            return Err(nf());
        }
        Ok(s)
    }

    /// Removes a session: its sandbox, its workspace, its invocations and artifacts, its record.
    pub fn delete_session(&self, principal: Option<&Principal>, id: &str) -> Result<()> {
        let s = self.session(principal, id)?;
        self.remove(&s)
    }

    fn remove(&self, s: &Session) -> Result<()> {
        self.provider_of(s)?.destroy(&s.sandbox_id)?;
        self.remove_session_dir(&s.id)?;
        for i in self.store.session_invocations(&s.id)? {
            self.artifacts.remove_invocation(&i.id)?;
            self.store.delete_invocation(&i.id)?;
        }
        self.store.delete_session(&s.id)
    }

    /// The tools of the catalog that the principal's roles may call.
    pub fn tools(&self, principal: &Principal) -> Vec<ToolSpec> {
        catalog::catalog()
            .into_iter()
            .filter(|t| self.policy.allows(principal, &t.name))
            .collect()
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// An invocation record that `principal` may see.
    pub fn invocation(&self, principal: Option<&Principal>, id: &str) -> Result<Invocation> {
        let nf = || WorkspaceError::NotFound(format!("invocation {id:?} not found"));
        if !is_id(id) {
            return Err(nf());
        }
        let i = self.store.get_invocation(id)?.ok_or_else(nf)?;
        if principal.is_some_and(|p| !p.owns(&i.principal)) {
            return Err(nf());
        }
        Ok(i)
    }

    /// Calls a tool. Session-level problems (unknown or foreign session, unknown tool) are
    /// errors; everything about the call itself is in the returned record (status, error).
    pub fn invoke(
        &self,
        principal: &Principal,
        check_owner: bool,
        session_id: &str,
        tool: &str,
        req: InvokeRequest,
    ) -> Result<Invocation> {
        let InvokeRequest {
            correlation_id,
            approved,
            args,
        } = req;
        let session = self.session(check_owner.then_some(principal), session_id)?;
        let spec = catalog::find(tool)
            .ok_or_else(|| WorkspaceError::NotFound(format!("tool {tool:?} not found")))?;
        let started = now();
        let mut inv = Invocation {
            id: new_id(),
            session_id: session.id.clone(),
            tool_name: tool.to_string(),
            correlation_id: correlation_id.unwrap_or_else(new_id),
            status: InvocationStatus::Running,
            started_at: started,
            completed_at: None,
            duration_ms: 0,
            exit_code: None,
            output: serde_json::Value::Null,
            logs: vec![],
            artifacts: vec![],
            error: None,
            principal: principal.clone(),
        };
        let t0 = Instant::now();
        let pre = self.policy.check(principal, tool).and_then(|_| {
            if spec.requires_approval && !approved {
                Err(WorkspaceError::ApprovalRequired(format!(
                    "{tool} requires approval: call it again with \"approved\": true"
                )))
            } else {
                Ok(())
            }
        });
        let provider = self.provider_of(&session)?;
        let slot = pre.and_then(|_| self.acquire(&session.id));
        let slot = match slot {
            Ok(s) => s,
            Err(e) => {
                inv.status = status_for(e.code());
                inv.error = Some(inv_error(&e));
                inv.completed_at = Some(now());
                self.store.put_invocation(&inv)?;
                return Ok(inv);
            }
        };
        self.store.put_invocation(&inv)?;
        let env = tools::Env {
            cfg: &self.cfg,
            provider,
            store: &*self.store,
            artifacts: &self.artifacts,
            workspace_dir: self.workspace_dir(&session.id),
        };
        let result = tools::run(&env, &session, &spec, principal, args);
        drop(slot);
        let r = match result {
            Ok(r) => r,
            Err(e) => tools::ToolResult::failed(e),
        };
        inv.output = r.output;
        inv.exit_code = r.exit_code;
        let at = now();
        inv.logs = r
            .logs
            .into_iter()
            .map(|(channel, message)| LogEntry {
                at,
                channel,
                message,
            })
            .collect();
        let mut total = 0u64;
        for (name, ctype, data) in r.artifacts {
            if inv.artifacts.len() >= self.cfg.limits.max_artifacts
                || total + data.len() as u64 > self.cfg.limits.max_artifact_bytes
            {
                inv.logs.push(LogEntry {
                    at,
                    channel: "service".into(),
                    message: format!(
                        "artifact {name} dropped: over the per-invocation artifact limits ({} artifacts, {} bytes)",
                        self.cfg.limits.max_artifacts, self.cfg.limits.max_artifact_bytes
                    ),
                });
                continue;
            }
            total += data.len() as u64;
            inv.artifacts
                .push(self.artifacts.put(&inv.id, &name, &ctype, &data)?);
        }
        match r.error {
            None => inv.status = InvocationStatus::Succeeded,
            Some(e) => {
                inv.status = status_for(e.code());
                inv.error = Some(inv_error(&e));
            }
        }
        inv.completed_at = Some(now());
        inv.duration_ms = t0.elapsed().as_millis() as u64;
        self.store.put_invocation(&inv)?;
        Ok(inv)
    }

    fn acquire(&self, session: &str) -> Result<Slot<'_>> {
        let mut m = self
            .running
            .lock()
            .map_err(|_| WorkspaceError::Internal("session slots: poisoned lock".into()))?;
        let n = m.entry(session.to_string()).or_insert(0);
        if *n >= self.cfg.limits.max_concurrency_per_session {
            return Err(WorkspaceError::RateLimited {
                message: format!(
                    "session {session} already runs {} invocations (WORKSPACE_MAX_CONCURRENCY_PER_SESSION)",
                    *n
                ),
                retry_after_secs: 1,
            });
        }
        *n += 1;
        Ok(Slot(self, session.to_string()))
    }

    /// After a start (also after a `kill -9`): running invocations become failed with a
    /// retryable `interrupted` error; sessions whose sandbox is gone get a new one on the same
    /// workspace; expired sessions are reaped; sandboxes and workspaces of no session removed.
    pub fn recover(&self) -> Result<Recovery> {
        let mut r = Recovery::default();
        let sessions = self.store.list_sessions()?;
        let t = now();
        let mut live = std::collections::HashSet::new();
        for s in sessions {
            let mut interrupted_here = 0;
            for mut i in self.store.session_invocations(&s.id)? {
                if i.status == InvocationStatus::Running {
                    interrupted_here += 1;
                    i.status = InvocationStatus::Failed;
                    let e = WorkspaceError::Interrupted(
                        "the service stopped while the invocation ran".into(),
                    );
                    i.error = Some(inv_error(&e));
                    i.completed_at = Some(t);
                    self.store.put_invocation(&i)?;
                    r.interrupted_invocations += 1;
                }
            }
            if s.expired(t) {
                self.remove(&s)?;
                r.expired_sessions_reaped += 1;
                continue;
            }
            let provider = match self.provider_of(&s) {
                Ok(p) => p,
                Err(e) => {
                    // Kept as it is (workspace and sandbox): its tools answer
                    // provider_unavailable until the provider is back.
                    tracing::warn!(session = %s.id, provider = %s.provider, error = %e, "a session's provider is unavailable");
                    live.insert(s.id.clone());
                    r.sessions += 1;
                    continue;
                }
            };
            let alive = provider.exists(&s.sandbox_id)?;
            if alive && interrupted_here > 0 {
                // What the interrupted calls started must not run on unobserved.
                provider.kill_processes(&s.sandbox_id)?;
            }
            if !alive {
                let spec = SandboxSpec {
                    name: s.sandbox_id.clone(),
                    workspace_dir: self.workspace_dir(&s.id),
                    workspace_path: s.workspace_path.clone(),
                    network: self.cfg.network,
                };
                // A stopped container of that name (after a reboot) goes first.
                provider.destroy(&s.sandbox_id)?;
                provider.create(&spec)?;
                r.sandboxes_recreated += 1;
            }
            live.insert(s.id.clone());
            r.sessions += 1;
        }
        for provider in self.providers.available() {
            for name in provider.list(&self.cfg.sandbox_prefix)? {
                let id = &name[self.cfg.sandbox_prefix.len()..];
                if !live.contains(id) {
                    provider.destroy(&name)?;
                    r.orphan_sandboxes_removed += 1;
                }
            }
        }
        let dir = self.cfg.workspace_root.join("sessions");
        for e in std::fs::read_dir(&dir).map_err(|e| WorkspaceError::io(dir.display(), e))? {
            let e = e.map_err(|e| WorkspaceError::io(dir.display(), e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if is_id(&name) && !live.contains(&name) {
                self.remove_session_dir(&name)?;
                r.orphan_workspaces_removed += 1;
            }
        }
        Ok(r)
    }

    /// Removes the sessions that have expired; returns how many.
    pub fn reap_expired(&self) -> Result<usize> {
        let t = now();
        let mut n = 0;
        for s in self.store.list_sessions()? {
            if s.expired(t) {
                self.remove(&s)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Whether the store and the provider answer: the failing part otherwise.
    pub fn health(&self) -> std::result::Result<(), (&'static str, String)> {
        self.store.ping().map_err(|e| ("store", e.to_string()))?;
        for p in self.providers.available() {
            p.health()
                .map_err(|e| ("provider", format!("{}: {e}", p.name())))?;
        }
        Ok(())
    }
}

fn check_source(p: &str) -> Result<PathBuf> {
    let bad = |why: &str| {
        Err(WorkspaceError::InvalidArgument(format!(
            "source_repo_path {p:?}: {why}"
        )))
    };
    if p.contains('\0') {
        return bad("contains a NUL byte");
    }
    let path = Path::new(p);
    if !path.is_absolute() {
        return bad("must be an absolute path");
    }
    if path
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return bad("must not contain '..'");
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(path.to_path_buf()),
        Ok(_) => bad("is not a directory"),
        Err(e) => bad(&e.to_string()),
    }
}
