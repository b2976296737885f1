//! The valkey (or redis) backend of [`Store`]: records as JSON under key prefixes, sets as
//! indexes, TTLs on sessions that expire and on invocations.
//!
//! Keys (`P` is the prefix, default `workspace:`): `P session:ID` (the session), `P sessions`
//! (set of session ids), `P invocation:ID`, `P session:ID:invocations` (set of its invocation ids).

use std::sync::Mutex;

use redis::Commands;

use crate::error::{Result, WorkspaceError};
use crate::ids::now;
use crate::model::{Invocation, Session};
use crate::store::Store;

pub struct ValkeyStore {
    client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
    prefix: String,
    invocation_ttl_secs: u64,
}

fn verr(e: redis::RedisError) -> WorkspaceError {
    WorkspaceError::Internal(format!("valkey: {e}"))
}

impl ValkeyStore {
    /// Connects to `url` (`redis://[:PASSWORD@]HOST:PORT/DB`); checks the server answers.
    pub fn open(url: &str, prefix: &str, invocation_ttl_secs: u64) -> Result<Self> {
        let client = redis::Client::open(url).map_err(verr)?;
        let s = ValkeyStore {
            client,
            conn: Mutex::new(None),
            prefix: prefix.to_string(),
            invocation_ttl_secs,
        };
        s.ping()?;
        Ok(s)
    }

    /// Runs `f` on the connection, reconnecting once when it failed.
    fn with<T>(&self, f: impl Fn(&mut redis::Connection) -> redis::RedisResult<T>) -> Result<T> {
        let mut g = self
            .conn
            .lock()
            .map_err(|_| WorkspaceError::Internal("valkey: poisoned lock".into()))?;
        for attempt in 0..2 {
            if g.is_none() {
                *g = Some(self.client.get_connection().map_err(verr)?);
            }
            match f(g.as_mut().expect("connected")) {
                Ok(v) => return Ok(v),
                Err(e) if attempt == 0 && (e.is_io_error() || e.is_connection_dropped()) => {
                    *g = None;
                }
                Err(e) => return Err(verr(e)),
            }
        }
        Err(WorkspaceError::Internal("valkey: no connection".into()))
    }

    fn k(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let v: Option<String> = self.with(|c| c.get(key))?;
        v.map(|s| {
            serde_json::from_str(&s)
                .map_err(|e| WorkspaceError::Internal(format!("valkey {key}: {e}")))
        })
        .transpose()
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| WorkspaceError::Internal(e.to_string()))
}

impl Store for ValkeyStore {
    fn name(&self) -> &'static str {
        "valkey"
    }

    fn put_session(&self, s: &Session) -> Result<()> {
        let key = self.k(&format!("session:{}", s.id));
        let data = json(s)?;
        // A session that expires keeps its record an hour longer, so that the reaper finds it.
        let ttl = s
            .expires_at
            .map(|e| ((e - now()).whole_seconds().max(0) as u64) + 3600);
        let all = self.k("sessions");
        self.with(|c| {
            let mut p = redis::pipe();
            p.atomic();
            match ttl {
                Some(t) => p.set_ex(&key, &data, t).ignore(),
                None => p.set(&key, &data).ignore(),
            };
            p.sadd(&all, &s.id).ignore();
            p.query::<()>(c)
        })
    }

    fn get_session(&self, id: &str) -> Result<Option<Session>> {
        self.get_json(&self.k(&format!("session:{id}")))
    }

    fn delete_session(&self, id: &str) -> Result<()> {
        let key = self.k(&format!("session:{id}"));
        let all = self.k("sessions");
        let idx = self.k(&format!("session:{id}:invocations"));
        self.with(|c| {
            redis::pipe()
                .atomic()
                .del(&key)
                .ignore()
                .srem(&all, id)
                .ignore()
                .del(&idx)
                .ignore()
                .query::<()>(c)
        })
    }

    fn list_sessions(&self) -> Result<Vec<Session>> {
        let ids: Vec<String> = self.with(|c| c.smembers(self.k("sessions")))?;
        let mut out = Vec::new();
        for id in ids {
            match self.get_session(&id)? {
                Some(s) => out.push(s),
                // Its record expired: drop it from the index.
                None => self.with(|c| c.srem::<_, _, ()>(self.k("sessions"), &id))?,
            }
        }
        Ok(out)
    }

    fn put_invocation(&self, i: &Invocation) -> Result<()> {
        let key = self.k(&format!("invocation:{}", i.id));
        let idx = self.k(&format!("session:{}:invocations", i.session_id));
        let data = json(i)?;
        let ttl = self.invocation_ttl_secs;
        self.with(|c| {
            redis::pipe()
                .atomic()
                .set_ex(&key, &data, ttl)
                .ignore()
                .sadd(&idx, &i.id)
                .ignore()
                .query::<()>(c)
        })
    }

    fn get_invocation(&self, id: &str) -> Result<Option<Invocation>> {
        self.get_json(&self.k(&format!("invocation:{id}")))
    }

    fn session_invocations(&self, session_id: &str) -> Result<Vec<Invocation>> {
        let ids: Vec<String> =
            self.with(|c| c.smembers(self.k(&format!("session:{session_id}:invocations"))))?;
        let mut v = Vec::new();
        for id in ids {
            if let Some(i) = self.get_invocation(&id)? {
                v.push(i);
            }
        }
        v.sort_by_key(|i: &Invocation| i.started_at);
        Ok(v)
    }

    fn delete_invocation(&self, id: &str) -> Result<()> {
        let key = self.k(&format!("invocation:{id}"));
        self.with(|c| c.del::<_, ()>(&key))
    }

    fn ping(&self) -> Result<()> {
        self.with(|c| redis::cmd("PING").query::<String>(c))
            .map(|_| ())
    }
}
