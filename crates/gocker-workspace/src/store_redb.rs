//! The embedded durable default store: one [redb](https://www.redb.org) file,
//! `WORKSPACE_ROOT/state.redb`.
//!
//! Three tables: `sessions` (id → JSON), `invocations` (id → JSON) and `session_invocations`
//! ((session id, started_at in nanoseconds, invocation id) → ()), the index that answers
//! [`Store::session_invocations`] oldest first without reading every invocation. Every put and
//! delete is one write transaction committed with redb's default immediate durability, so a
//! `kill -9` after a call returned loses nothing of it, and one during a call leaves the old state.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::error::{Result, WorkspaceError};
use crate::model::{Invocation, Session};
use crate::store::Store;

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const INVOCATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("invocations");
/// (session id, started_at as Unix nanoseconds, invocation id) → ().
const BY_SESSION: TableDefinition<(&str, i128, &str), ()> =
    TableDefinition::new("session_invocations");

/// What can go wrong in the redb store; each becomes an `internal` [`WorkspaceError`] naming the file.
#[derive(Debug, thiserror::Error)]
pub enum RedbStoreError {
    #[error(
        "{path}: the state database is already open in another process \
         (another gocker-workspaced with the same WORKSPACE_ROOT?)"
    )]
    AlreadyOpen { path: PathBuf },
    #[error("{path}: not a readable state database (corrupt or not a redb file): {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("{path}: cannot create the directory: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {op}: {source}")]
    Database {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: redb::Error,
    },
    #[error("{path}: record {id:?}: {source}")]
    Json {
        path: PathBuf,
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

impl From<RedbStoreError> for WorkspaceError {
    fn from(e: RedbStoreError) -> Self {
        WorkspaceError::Internal(e.to_string())
    }
}

/// The number of records in each table of a [`RedbStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordCounts {
    pub sessions: u64,
    pub invocations: u64,
    pub index_entries: u64,
}

/// Sessions and invocations in one redb database file.
pub struct RedbStore {
    path: PathBuf,
    db: Database,
}

fn nanos(i: &Invocation) -> i128 {
    i.started_at.unix_timestamp_nanos()
}

impl RedbStore {
    /// Opens (or creates) the database at `path`, creating its parent directory and the tables.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| RedbStoreError::Dir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => RedbStoreError::AlreadyOpen {
                path: path.to_path_buf(),
            },
            redb::DatabaseError::Storage(redb::StorageError::Io(io)) => RedbStoreError::Database {
                path: path.to_path_buf(),
                op: "open",
                source: redb::StorageError::Io(io).into(),
            },
            other => RedbStoreError::Corrupt {
                path: path.to_path_buf(),
                source: other.into(),
            },
        })?;
        let s = RedbStore {
            path: path.to_path_buf(),
            db,
        };
        s.write("create the tables", |tx| {
            tx.open_table(SESSIONS)?;
            tx.open_table(INVOCATIONS)?;
            tx.open_table(BY_SESSION)?;
            Ok(())
        })?;
        Ok(s)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many sessions, invocations and index entries the database holds (for checks and tests).
    pub fn record_counts(&self) -> Result<RecordCounts> {
        self.read("count records", |tx| {
            Ok(RecordCounts {
                sessions: tx.open_table(SESSIONS)?.len()?,
                invocations: tx.open_table(INVOCATIONS)?.len()?,
                index_entries: tx.open_table(BY_SESSION)?.len()?,
            })
        })
    }

    fn err(&self, op: &'static str) -> impl Fn(redb::Error) -> RedbStoreError + '_ {
        move |source| RedbStoreError::Database {
            path: self.path.clone(),
            op,
            source,
        }
    }

    /// Runs `f` in one write transaction and commits it durably.
    fn write<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&redb::WriteTransaction) -> std::result::Result<T, redb::Error>,
    ) -> Result<T> {
        let run = || -> std::result::Result<T, redb::Error> {
            let tx = self.db.begin_write()?;
            let v = f(&tx)?;
            tx.commit()?;
            Ok(v)
        };
        Ok(run().map_err(self.err(op))?)
    }

    fn read<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&redb::ReadTransaction) -> std::result::Result<T, redb::Error>,
    ) -> Result<T> {
        let run = || -> std::result::Result<T, redb::Error> {
            let tx = self.db.begin_read()?;
            f(&tx)
        };
        Ok(run().map_err(self.err(op))?)
    }

    fn encode<T: serde::Serialize>(&self, id: &str, v: &T) -> Result<Vec<u8>> {
        Ok(
            serde_json::to_vec(v).map_err(|source| RedbStoreError::Json {
                path: self.path.clone(),
                id: id.to_string(),
                source,
            })?,
        )
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, id: &str, d: &[u8]) -> Result<T> {
        Ok(
            serde_json::from_slice(d).map_err(|source| RedbStoreError::Json {
                path: self.path.clone(),
                id: id.to_string(),
                source,
            })?,
        )
    }

    fn get_raw(&self, table: TableDefinition<&str, &[u8]>, id: &str) -> Result<Option<Vec<u8>>> {
        self.read("get", |tx| {
            let t = tx.open_table(table)?;
            Ok(t.get(id)?.map(|v| v.value().to_vec()))
        })
    }
}

impl Store for RedbStore {
    fn name(&self) -> &'static str {
        "redb"
    }

    fn put_session(&self, s: &Session) -> Result<()> {
        let data = self.encode(&s.id, s)?;
        self.write("put session", |tx| {
            tx.open_table(SESSIONS)?
                .insert(s.id.as_str(), data.as_slice())?;
            Ok(())
        })
    }

    fn get_session(&self, id: &str) -> Result<Option<Session>> {
        self.get_raw(SESSIONS, id)?
            .map(|d| self.decode(id, &d))
            .transpose()
    }

    fn delete_session(&self, id: &str) -> Result<()> {
        self.write("delete session", |tx| {
            tx.open_table(SESSIONS)?.remove(id)?;
            Ok(())
        })
    }

    fn list_sessions(&self) -> Result<Vec<Session>> {
        let raw: Vec<(String, Vec<u8>)> = self.read("list sessions", |tx| {
            let t = tx.open_table(SESSIONS)?;
            let mut out = Vec::new();
            for r in t.iter()? {
                let (k, v) = r?;
                out.push((k.value().to_string(), v.value().to_vec()));
            }
            Ok(out)
        })?;
        raw.iter().map(|(id, d)| self.decode(id, d)).collect()
    }

    fn put_invocation(&self, i: &Invocation) -> Result<()> {
        let data = self.encode(&i.id, i)?;
        self.write("put invocation", |tx| {
            let mut inv = tx.open_table(INVOCATIONS)?;
            // The old record, read in the same (serialized) write transaction, to move its index
            // entry when the session or the start time changed. An undecodable old record has no
            // entry we could name.
            let old = inv
                .get(i.id.as_str())?
                .and_then(|v| serde_json::from_slice::<Invocation>(v.value()).ok());
            let mut idx = tx.open_table(BY_SESSION)?;
            if let Some(o) = &old {
                idx.remove((o.session_id.as_str(), nanos(o), i.id.as_str()))?;
            }
            idx.insert((i.session_id.as_str(), nanos(i), i.id.as_str()), ())?;
            inv.insert(i.id.as_str(), data.as_slice())?;
            Ok(())
        })
    }

    fn get_invocation(&self, id: &str) -> Result<Option<Invocation>> {
        self.get_raw(INVOCATIONS, id)?
            .map(|d| self.decode(id, &d))
            .transpose()
    }

    fn session_invocations(&self, session_id: &str) -> Result<Vec<Invocation>> {
        let raw: Vec<(String, Vec<u8>)> = self.read("list session invocations", |tx| {
            let idx = tx.open_table(BY_SESSION)?;
            let inv = tx.open_table(INVOCATIONS)?;
            let mut out = Vec::new();
            for r in idx.range((session_id, i128::MIN, "")..)? {
                let (k, _) = r?;
                let (sid, _, id) = k.value();
                if sid != session_id {
                    break;
                }
                if let Some(v) = inv.get(id)? {
                    out.push((id.to_string(), v.value().to_vec()));
                }
            }
            Ok(out)
        })?;
        raw.iter().map(|(id, d)| self.decode(id, d)).collect()
    }

    fn delete_invocation(&self, id: &str) -> Result<()> {
        self.write("delete invocation", |tx| {
            let mut inv = tx.open_table(INVOCATIONS)?;
            let old = inv.remove(id)?.map(|v| v.value().to_vec());
            if let Some(d) = old {
                // An undecodable record has no index entry we could find; removing the record is enough.
                if let Ok(o) = serde_json::from_slice::<Invocation>(&d) {
                    tx.open_table(BY_SESSION)?
                        .remove((o.session_id.as_str(), nanos(&o), id))?;
                }
            }
            Ok(())
        })
    }

    fn ping(&self) -> Result<()> {
        self.read("ping", |tx| {
            tx.open_table(SESSIONS)?.len()?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InvocationStatus, Principal};
    use time::OffsetDateTime;

    fn principal() -> Principal {
        Principal {
            tenant_id: "t".into(),
            actor_id: "a".into(),
            roles: vec!["developer".into()],
        }
    }

    fn session(id: &str) -> Session {
        let now = OffsetDateTime::now_utc();
        Session {
            id: id.into(),
            workspace_path: "/workspace".into(),
            allowed_paths: vec![".".into()],
            principal: principal(),
            metadata: Default::default(),
            created_at: now,
            expires_at: Some(now + time::Duration::hours(1)),
            provider: "gocker".into(),
            sandbox_id: format!("gws-{id}"),
            source_repo_path: None,
            sandbox_start_ms: 0,
            degraded_isolation: false,
            isolation: None,
            platform: None,
        }
    }

    fn invocation(id: &str, sid: &str, at_secs: i64) -> Invocation {
        Invocation {
            id: id.into(),
            session_id: sid.into(),
            tool_name: "fs.list".into(),
            correlation_id: format!("c-{id}"),
            status: InvocationStatus::Running,
            started_at: OffsetDateTime::from_unix_timestamp(1_700_000_000 + at_secs).unwrap(),
            completed_at: None,
            duration_ms: 0,
            exit_code: None,
            output: serde_json::Value::Null,
            logs: vec![],
            artifacts: vec![],
            error: None,
            principal: principal(),
        }
    }

    #[test]
    fn round_trips_and_lists() {
        let d = tempfile::tempdir().unwrap();
        let s = RedbStore::open(&d.path().join("state.redb")).unwrap();
        assert_eq!(s.name(), "redb");
        s.ping().unwrap();
        assert!(s.get_session("s1").unwrap().is_none());
        s.put_session(&session("s1")).unwrap();
        s.put_session(&session("s2")).unwrap();
        let got = s.get_session("s1").unwrap().unwrap();
        assert_eq!(got.id, "s1");
        let mut ids: Vec<_> = s
            .list_sessions()
            .unwrap()
            .into_iter()
            .map(|x| x.id)
            .collect();
        ids.sort();
        assert_eq!(ids, ["s1", "s2"]);
        s.delete_session("s1").unwrap();
        s.delete_session("never").unwrap();
        assert!(s.get_session("s1").unwrap().is_none());
        assert_eq!(s.list_sessions().unwrap().len(), 1);

        let mut i = invocation("i1", "s2", 0);
        s.put_invocation(&i).unwrap();
        i.status = InvocationStatus::Succeeded;
        i.exit_code = Some(0);
        s.put_invocation(&i).unwrap();
        let g = s.get_invocation("i1").unwrap().unwrap();
        assert_eq!(g.status, InvocationStatus::Succeeded);
        assert_eq!(g.exit_code, Some(0));
        // Re-putting kept one index entry, not two.
        assert_eq!(s.session_invocations("s2").unwrap().len(), 1);
    }

    #[test]
    fn session_invocations_oldest_first_among_many() {
        let d = tempfile::tempdir().unwrap();
        let s = RedbStore::open(&d.path().join("state.redb")).unwrap();
        // Interleave three sessions, insert out of order; ids sort differently from times.
        let n = 300;
        for k in (0..n).rev() {
            for sid in ["sa", "sb", "sc"] {
                let id = format!("{sid}-{:04}", (k * 7919) % 10007);
                s.put_invocation(&invocation(&id, sid, k)).unwrap();
            }
        }
        for sid in ["sa", "sb", "sc"] {
            let v = s.session_invocations(sid).unwrap();
            assert_eq!(v.len(), n as usize);
            assert!(v.iter().all(|i| i.session_id == sid));
            assert!(v.windows(2).all(|w| w[0].started_at < w[1].started_at));
        }
        // A session id that is a prefix of another does not pick up its invocations.
        s.put_invocation(&invocation("p1", "s", 5)).unwrap();
        assert_eq!(s.session_invocations("s").unwrap().len(), 1);
        assert!(s.session_invocations("none").unwrap().is_empty());

        // Moving an invocation's start time moves its index entry.
        let mut i = invocation("sa-late", "sa", -10);
        s.put_invocation(&i).unwrap();
        assert_eq!(s.session_invocations("sa").unwrap()[0].id, "sa-late");
        i.started_at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        s.put_invocation(&i).unwrap();
        let v = s.session_invocations("sa").unwrap();
        assert_eq!(v.len(), n as usize + 1);
        assert_eq!(v.last().unwrap().id, "sa-late");
    }

    #[test]
    fn delete_removes_index_entries() {
        let d = tempfile::tempdir().unwrap();
        let s = RedbStore::open(&d.path().join("state.redb")).unwrap();
        for k in 0..5 {
            s.put_invocation(&invocation(&format!("i{k}"), "s1", k))
                .unwrap();
        }
        s.delete_invocation("i2").unwrap();
        s.delete_invocation("i2").unwrap();
        s.delete_invocation("missing").unwrap();
        assert!(s.get_invocation("i2").unwrap().is_none());
        let ids: Vec<_> = s
            .session_invocations("s1")
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, ["i0", "i1", "i3", "i4"]);
        // The index itself holds no entry for the deleted invocation.
        let c = s.record_counts().unwrap();
        assert_eq!((c.invocations, c.index_entries), (4, 4));
        for k in [0, 1, 3, 4] {
            s.delete_invocation(&format!("i{k}")).unwrap();
        }
        let c = s.record_counts().unwrap();
        assert_eq!((c.invocations, c.index_entries), (0, 0));
        assert!(s.session_invocations("s1").unwrap().is_empty());
    }

    #[test]
    fn concurrent_updates_keep_one_index_entry_each() {
        let d = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(RedbStore::open(&d.path().join("state.redb")).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for k in 0..25 {
                        // Every thread rewrites the same ten invocations with its own start times.
                        let mut i = invocation(&format!("i{}", k % 10), "s1", t * 100 + k);
                        s.put_invocation(&i).unwrap();
                        i.status = InvocationStatus::Failed;
                        s.put_invocation(&i).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let c = s.record_counts().unwrap();
        assert_eq!((c.invocations, c.index_entries), (10, 10));
        let v = s.session_invocations("s1").unwrap();
        assert_eq!(v.len(), 10);
        assert!(v.windows(2).all(|w| w[0].started_at <= w[1].started_at));
    }

    #[test]
    fn reopen_after_drop_keeps_everything() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("nested/dir/state.redb");
        {
            let s = RedbStore::open(&p).unwrap();
            s.put_session(&session("s1")).unwrap();
            for k in 0..10 {
                s.put_invocation(&invocation(&format!("i{k}"), "s1", 10 - k))
                    .unwrap();
            }
            s.delete_invocation("i0").unwrap();
        }
        let s = RedbStore::open(&p).unwrap();
        assert_eq!(s.path(), p);
        assert_eq!(s.get_session("s1").unwrap().unwrap().id, "s1");
        let v = s.session_invocations("s1").unwrap();
        assert_eq!(v.len(), 9);
        assert_eq!(v[0].id, "i9");
        assert_eq!(v[8].id, "i1");
    }

    #[test]
    fn second_open_while_open_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.redb");
        let first = RedbStore::open(&p).unwrap();
        let e = RedbStore::open(&p).err().expect("a second open must fail");
        let msg = e.to_string();
        assert_eq!(e.code(), crate::error::ErrorCode::Internal);
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert!(msg.contains("already open"), "{msg}");
        // The first one still works, and once it is gone the file opens again.
        first.put_session(&session("s1")).unwrap();
        drop(first);
        let again = RedbStore::open(&p).unwrap();
        assert!(again.get_session("s1").unwrap().is_some());
    }

    #[test]
    fn garbage_file_is_a_clear_error_not_a_panic() {
        let d = tempfile::tempdir().unwrap();
        for (name, data) in [
            ("garbage.redb", vec![0xabu8; 64 * 1024]),
            ("text.redb", b"this is not a database\n".repeat(200)),
            ("short.redb", b"redb".to_vec()),
        ] {
            let p = d.path().join(name);
            std::fs::write(&p, &data).unwrap();
            let e = RedbStore::open(&p)
                .err()
                .unwrap_or_else(|| panic!("{name}: garbage must not open"));
            let msg = e.to_string();
            assert!(msg.contains(&p.display().to_string()), "{msg}");
            // The file was not overwritten.
            assert_eq!(std::fs::read(&p).unwrap(), data, "{name}");
        }
    }

    #[test]
    fn a_directory_in_the_way_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.redb");
        std::fs::create_dir(&p).unwrap();
        let msg = RedbStore::open(&p).err().unwrap().to_string();
        assert!(msg.contains(&p.display().to_string()), "{msg}");
    }
}
