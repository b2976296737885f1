//! Choosing the stores from `SESSION_STORE_BACKEND` / `INVOCATION_STORE_BACKEND`.

use std::path::Path;
use std::sync::Arc;

use gocker_workspace::model::{Invocation, Session};
use gocker_workspace::store::{FileStore, MemoryStore, Store};
use gocker_workspace::store_redb::RedbStore;
use gocker_workspace::store_valkey::ValkeyStore;
use gocker_workspace::Result;
use sha2::{Digest, Sha256};

use crate::config::{Backend, ValkeyConfig};

/// The redb database next to the file backend's directory: `WORKSPACE_ROOT/state` → `WORKSPACE_ROOT/state.redb`.
pub fn redb_path(dir: &Path) -> std::path::PathBuf {
    dir.with_extension("redb")
}

fn one(b: Backend, dir: &Path, v: &ValkeyConfig) -> Result<Arc<dyn Store>> {
    Ok(match b {
        Backend::Memory => Arc::new(MemoryStore::default()),
        Backend::Redb => Arc::new(RedbStore::open(&redb_path(dir))?),
        Backend::File => Arc::new(FileStore::open(dir)?),
        Backend::Valkey => Arc::new(ValkeyStore::open(&v.url, &v.prefix, v.invocation_ttl_secs)?),
    })
}

/// Sessions in one backend and invocations in another.
struct Split {
    sessions: Arc<dyn Store>,
    invocations: Arc<dyn Store>,
}

impl Store for Split {
    fn name(&self) -> &'static str {
        "split"
    }
    fn put_session(&self, s: &Session) -> Result<()> {
        self.sessions.put_session(s)
    }
    fn get_session(&self, id: &str) -> Result<Option<Session>> {
        self.sessions.get_session(id)
    }
    fn delete_session(&self, id: &str) -> Result<()> {
        self.sessions.delete_session(id)
    }
    fn list_sessions(&self) -> Result<Vec<Session>> {
        self.sessions.list_sessions()
    }
    fn put_invocation(&self, i: &Invocation) -> Result<()> {
        self.invocations.put_invocation(i)
    }
    fn get_invocation(&self, id: &str) -> Result<Option<Invocation>> {
        self.invocations.get_invocation(id)
    }
    fn session_invocations(&self, session_id: &str) -> Result<Vec<Invocation>> {
        self.invocations.session_invocations(session_id)
    }
    fn delete_invocation(&self, id: &str) -> Result<()> {
        self.invocations.delete_invocation(id)
    }
    fn ping(&self) -> Result<()> {
        self.sessions.ping()?;
        self.invocations.ping()
    }
}

pub fn open(
    sessions: Backend,
    invocations: Backend,
    dir: &Path,
    v: &ValkeyConfig,
) -> Result<Arc<dyn Store>> {
    if sessions == invocations {
        return one(sessions, dir, v);
    }
    Ok(Arc::new(Split {
        sessions: one(sessions, dir, v)?,
        invocations: one(invocations, dir, v)?,
    }))
}

/// Sandbox names of this service instance: `gws-` and a digest of its WORKSPACE_ROOT, so that
/// two instances of one user never take each other's sandboxes for orphans.
pub fn sandbox_prefix(root: &Path) -> String {
    let d = Sha256::digest(root.as_os_str().as_encoded_bytes());
    format!(
        "gws-{}-",
        d.iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}
