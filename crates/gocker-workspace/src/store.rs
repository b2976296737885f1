//! Where sessions and invocations are kept: the [`Store`] trait and its backends.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{Result, WorkspaceError};
use crate::model::{Invocation, Session};

/// The state of the service. Implementations must be safe to call from many threads.
pub trait Store: Send + Sync {
    /// The backend's name (`memory`, `file`, `valkey`).
    fn name(&self) -> &'static str;
    fn put_session(&self, s: &Session) -> Result<()>;
    fn get_session(&self, id: &str) -> Result<Option<Session>>;
    fn delete_session(&self, id: &str) -> Result<()>;
    fn list_sessions(&self) -> Result<Vec<Session>>;
    fn put_invocation(&self, i: &Invocation) -> Result<()>;
    fn get_invocation(&self, id: &str) -> Result<Option<Invocation>>;
    /// The invocations of a session, oldest first.
    fn session_invocations(&self, session_id: &str) -> Result<Vec<Invocation>>;
    fn delete_invocation(&self, id: &str) -> Result<()>;
    /// Whether the store answers (for `/healthz`).
    fn ping(&self) -> Result<()>;
}

/// Everything in memory, gone with the process (as the model's `memory` backend).
#[derive(Default)]
pub struct MemoryStore {
    sessions: Mutex<HashMap<String, Session>>,
    invocations: Mutex<HashMap<String, Invocation>>,
}

fn poisoned<T>(_: T) -> WorkspaceError {
    WorkspaceError::Internal("the memory store's lock is poisoned".into())
}

impl Store for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn put_session(&self, s: &Session) -> Result<()> {
        self.sessions
            .lock()
            .map_err(poisoned)?
            .insert(s.id.clone(), s.clone());
        Ok(())
    }
    fn get_session(&self, id: &str) -> Result<Option<Session>> {
        Ok(self.sessions.lock().map_err(poisoned)?.get(id).cloned())
    }
    fn delete_session(&self, id: &str) -> Result<()> {
        self.sessions.lock().map_err(poisoned)?.remove(id);
        Ok(())
    }
    fn list_sessions(&self) -> Result<Vec<Session>> {
        Ok(self
            .sessions
            .lock()
            .map_err(poisoned)?
            .values()
            .cloned()
            .collect())
    }
    fn put_invocation(&self, i: &Invocation) -> Result<()> {
        self.invocations
            .lock()
            .map_err(poisoned)?
            .insert(i.id.clone(), i.clone());
        Ok(())
    }
    fn get_invocation(&self, id: &str) -> Result<Option<Invocation>> {
        Ok(self.invocations.lock().map_err(poisoned)?.get(id).cloned())
    }
    fn session_invocations(&self, session_id: &str) -> Result<Vec<Invocation>> {
        let mut v: Vec<_> = self
            .invocations
            .lock()
            .map_err(poisoned)?
            .values()
            .filter(|i| i.session_id == session_id)
            .cloned()
            .collect();
        v.sort_by_key(|i| i.started_at);
        Ok(v)
    }
    fn delete_invocation(&self, id: &str) -> Result<()> {
        self.invocations.lock().map_err(poisoned)?.remove(id);
        Ok(())
    }
    fn ping(&self) -> Result<()> {
        Ok(())
    }
}

/// A durable store in a directory (one JSON file per record, written to a temporary name,
/// synced and renamed over the old one, so a `kill -9` leaves either the old or the new record).
pub struct FileStore {
    dir: std::path::PathBuf,
    lock: Mutex<()>,
}

impl FileStore {
    pub fn open(dir: &std::path::Path) -> Result<Self> {
        for sub in ["sessions", "invocations"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| WorkspaceError::io(dir.join(sub).display(), e))?;
        }
        Ok(FileStore {
            dir: dir.to_path_buf(),
            lock: Mutex::new(()),
        })
    }

    fn path(&self, kind: &str, id: &str) -> Result<std::path::PathBuf> {
        if !crate::ids::is_id(id) {
            return Err(WorkspaceError::NotFound(format!("{id:?}: no such record")));
        }
        Ok(self.dir.join(kind).join(format!("{id}.json")))
    }

    fn put<T: serde::Serialize>(&self, kind: &str, id: &str, v: &T) -> Result<()> {
        use std::io::Write;
        let p = self.path(kind, id)?;
        let tmp = p.with_extension("tmp");
        let data = serde_json::to_vec(v).map_err(|e| WorkspaceError::io(p.display(), e))?;
        let _g = self.lock.lock().map_err(poisoned)?;
        let mut f =
            std::fs::File::create(&tmp).map_err(|e| WorkspaceError::io(tmp.display(), e))?;
        f.write_all(&data)
            .and_then(|_| f.sync_data())
            .map_err(|e| WorkspaceError::io(tmp.display(), e))?;
        std::fs::rename(&tmp, &p).map_err(|e| WorkspaceError::io(p.display(), e))
    }

    fn get<T: serde::de::DeserializeOwned>(&self, kind: &str, id: &str) -> Result<Option<T>> {
        let Ok(p) = self.path(kind, id) else {
            return Ok(None);
        };
        match std::fs::read(&p) {
            Ok(d) => serde_json::from_slice(&d)
                .map(Some)
                .map_err(|e| WorkspaceError::io(p.display(), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(WorkspaceError::io(p.display(), e)),
        }
    }

    fn del(&self, kind: &str, id: &str) -> Result<()> {
        let Ok(p) = self.path(kind, id) else {
            return Ok(());
        };
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(WorkspaceError::io(p.display(), e)),
        }
    }

    fn all<T: serde::de::DeserializeOwned>(&self, kind: &str) -> Result<Vec<T>> {
        let d = self.dir.join(kind);
        let mut out = Vec::new();
        for e in std::fs::read_dir(&d).map_err(|e| WorkspaceError::io(d.display(), e))? {
            let e = e.map_err(|e| WorkspaceError::io(d.display(), e))?;
            let name = e.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if let Some(v) = self.get(kind, id)? {
                out.push(v);
            }
        }
        Ok(out)
    }
}

impl Store for FileStore {
    fn name(&self) -> &'static str {
        "file"
    }
    fn put_session(&self, s: &Session) -> Result<()> {
        self.put("sessions", &s.id, s)
    }
    fn get_session(&self, id: &str) -> Result<Option<Session>> {
        self.get("sessions", id)
    }
    fn delete_session(&self, id: &str) -> Result<()> {
        self.del("sessions", id)
    }
    fn list_sessions(&self) -> Result<Vec<Session>> {
        self.all("sessions")
    }
    fn put_invocation(&self, i: &Invocation) -> Result<()> {
        self.put("invocations", &i.id, i)
    }
    fn get_invocation(&self, id: &str) -> Result<Option<Invocation>> {
        self.get("invocations", id)
    }
    fn session_invocations(&self, session_id: &str) -> Result<Vec<Invocation>> {
        let mut v: Vec<Invocation> = self
            .all("invocations")?
            .into_iter()
            .filter(|i: &Invocation| i.session_id == session_id)
            .collect();
        v.sort_by_key(|i| i.started_at);
        Ok(v)
    }
    fn delete_invocation(&self, id: &str) -> Result<()> {
        self.del("invocations", id)
    }
    fn ping(&self) -> Result<()> {
        std::fs::metadata(self.dir.join("sessions"))
            .map(|_| ())
            .map_err(|e| WorkspaceError::io(self.dir.display(), e))
    }
}
