//! The events journal: docker's events (container create, start, die, stop, kill, destroy,
//! rename, exec_create, exec_start, ...; image pull, tag, delete; volume create, destroy) as JSON
//! lines in the state store, `<store>/events.jsonl`, written where the thing happens (`die` by
//! the monitor that reaps the container) and read by `gocker events`.
//!
//! Writing: [`record`] takes `events.lock` (flock, exclusive), then appends one line with one
//! `write` on a descriptor opened with O_APPEND, so concurrent writers never interleave. The
//! journal is bounded: once it holds more than [`MAX_BYTES`], it is renamed to
//! `events.jsonl.1` (replacing the previous one) under the same lock and a new one starts, so at
//! most twice that is kept. A failure to record is logged and never fails the operation.
//!
//! Reading: [`read_all`] returns the events of both files, oldest first, skipping lines that are
//! not events (a torn or foreign line) and lines longer than [`MAX_LINE`]. [`Follower`] yields
//! the events appended since it started, across rotations.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The journal's size at which it is rotated.
pub const MAX_BYTES: u64 = 1 << 20;
/// The longest line read back; a longer one (damage, or a foreign writer) is skipped.
pub const MAX_LINE: usize = 64 * 1024;
/// The longest attribute value recorded (longer ones are cut), so that an event stays a line.
const MAX_VALUE: usize = 4096;

const JOURNAL: &str = "events.jsonl";
const ROTATED: &str = "events.jsonl.1";
const LOCK: &str = "events.lock";

/// What an event is about (docker's `Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Container,
    Image,
    Volume,
    Network,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Image => "image",
            Kind::Volume => "volume",
            Kind::Network => "network",
        }
    }
}

/// The subject of an event: its id and attributes (docker's `Actor`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes", default)]
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// One event, as docker's JSON message (`docker events --format '{{json .}}'`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// docker's legacy copy of the action (containers and images only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// docker's legacy copy of the actor's id (containers and images only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// docker's legacy copy of the image of a container.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    /// Unix seconds.
    pub time: i64,
    /// Unix nanoseconds.
    #[serde(rename = "timeNano")]
    pub time_nano: i128,
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

fn cut(s: &str) -> String {
    if s.len() <= MAX_VALUE {
        return s.to_owned();
    }
    let mut end = MAX_VALUE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

impl Event {
    /// An event happening now.
    pub fn new(kind: Kind, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        let t = now_ns();
        let attributes = attrs
            .iter()
            .map(|(k, v)| (cut(k), cut(v)))
            .collect::<std::collections::BTreeMap<_, _>>();
        let legacy = matches!(kind, Kind::Container | Kind::Image);
        Event {
            status: if legacy {
                action.to_owned()
            } else {
                String::new()
            },
            id: if legacy { id.to_owned() } else { String::new() },
            from: if kind == Kind::Container {
                attributes.get("image").cloned().unwrap_or_default()
            } else {
                String::new()
            },
            kind: kind.as_str().to_owned(),
            action: action.to_owned(),
            actor: Actor {
                id: cut(id),
                attributes,
            },
            scope: "local".to_owned(),
            time: i64::try_from(t / 1_000_000_000).unwrap_or(0),
            time_nano: t,
        }
    }
}

/// An error of the journal, naming its file.
#[derive(Debug, thiserror::Error)]
#[error("events journal {path}: {reason}")]
pub struct EventsError {
    pub path: PathBuf,
    pub reason: String,
}

fn err(path: &Path, e: impl std::fmt::Display) -> EventsError {
    EventsError {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Records an event in the journal of the state store at `store_root` (see the module's
/// documentation). For a container, `StateStore::record_container_event` fills in
/// docker's attributes (name, image); for images and volumes, `state::record_event`
/// finds the caller's store. A failure is logged (warn) and otherwise ignored: an event that
/// cannot be recorded does not fail what happened.
pub fn record(store_root: &Path, kind: Kind, action: &str, id: &str, attrs: &[(&str, &str)]) {
    if let Err(e) = append(store_root, &Event::new(kind, action, id, attrs)) {
        tracing::warn!("{e}");
    }
}

/// The store's annotation of docker's `Config` that `gocker run` records (its `Image`).
const CONFIG_ANNOTATION: &str = "io.gocker.config";

/// The image a container was made from: the recorded `Config.Image` of its spec's annotations,
/// else its rootfs directory.
pub fn container_image(
    annotations: Option<&std::collections::HashMap<String, String>>,
    rootfs: &Path,
) -> String {
    annotations
        .and_then(|a| a.get(CONFIG_ANNOTATION))
        .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
        .and_then(|c| c["Image"].as_str().map(str::to_owned))
        .unwrap_or_else(|| rootfs.display().to_string())
}

/// Appends `ev` to the journal (under the lock, rotating first when it is full).
pub fn append(store_root: &Path, ev: &Event) -> Result<(), EventsError> {
    let lock_path = store_root.join(LOCK);
    let lock = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(|e| err(&lock_path, e))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| err(&lock_path, e))?;
    let path = store_root.join(JOURNAL);
    if fs::symlink_metadata(&path).is_ok_and(|m| m.len() >= MAX_BYTES) {
        fs::rename(&path, store_root.join(ROTATED)).map_err(|e| err(&path, e))?;
    }
    let mut line = serde_json::to_vec(ev).map_err(|e| err(&path, e))?;
    line.push(b'\n');
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| err(&path, e))?;
    // One write of the whole line: O_APPEND places it at the end atomically.
    f.write_all(&line).map_err(|e| err(&path, e))?;
    drop(lock);
    Ok(())
}

/// The events of `bytes` (whole lines only), skipping what is not an event.
fn parse_lines(bytes: &[u8], out: &mut Vec<Event>) {
    for line in bytes.split(|b| *b == b'\n') {
        if line.is_empty() || line.len() > MAX_LINE {
            continue;
        }
        if let Ok(ev) = serde_json::from_slice::<Event>(line) {
            out.push(ev);
        }
    }
}

/// Reads `path` from `offset` to its last complete line: the bytes and the offset after them.
fn read_from(path: &Path, offset: u64) -> (Vec<u8>, u64) {
    let Ok(mut f) = File::open(path) else {
        return (Vec::new(), offset);
    };
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(offset)).is_err()
        || f.take(2 * MAX_BYTES + MAX_LINE as u64)
            .read_to_end(&mut buf)
            .is_err()
    {
        return (Vec::new(), offset);
    }
    // A line being written has no newline yet: left for the next read.
    let whole = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    buf.truncate(whole);
    (buf, offset + whole as u64)
}

/// Every recorded event, oldest first.
pub fn read_all(store_root: &Path) -> Vec<Event> {
    let mut out = Vec::new();
    for f in [ROTATED, JOURNAL] {
        parse_lines(&read_from(&store_root.join(f), 0).0, &mut out);
    }
    out
}

/// Follows the journal: the events appended after [`Follower::new`], across rotations.
pub struct Follower {
    root: PathBuf,
    ino: Option<u64>,
    offset: u64,
}

impl Follower {
    /// Starts at the journal's current end.
    pub fn new(store_root: &Path) -> Follower {
        let path = store_root.join(JOURNAL);
        let (ino, offset) = match fs::metadata(&path) {
            Ok(m) => (Some(m.ino()), read_from(&path, 0).1),
            Err(_) => (None, 0),
        };
        Follower {
            root: store_root.to_owned(),
            ino,
            offset,
        }
    }

    /// The events appended since the last call (none when nothing new).
    pub fn poll(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        let path = self.root.join(JOURNAL);
        let ino = fs::metadata(&path).ok().map(|m| m.ino());
        if ino != self.ino {
            // Rotated (or created): the rest of the old file first, when it is the rotated one.
            let rotated = self.root.join(ROTATED);
            if self.ino.is_some() && fs::metadata(&rotated).ok().map(|m| m.ino()) == self.ino {
                parse_lines(&read_from(&rotated, self.offset).0, &mut out);
            }
            self.ino = ino;
            self.offset = 0;
        }
        if self.ino.is_some() {
            let (bytes, next) = read_from(&path, self.offset);
            parse_lines(&bytes, &mut out);
            self.offset = next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gocker-events-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn records_read_back_and_garbage_is_skipped() {
        let d = dir("rw");
        let mut f = Follower::new(&d);
        record(
            &d,
            Kind::Container,
            "start",
            "abc",
            &[("name", "web"), ("image", "alpine")],
        );
        // A garbage line, a huge line and a torn line (no newline) in the journal.
        let mut j = OpenOptions::new()
            .append(true)
            .open(d.join(JOURNAL))
            .unwrap();
        j.write_all(b"not json\n").unwrap();
        j.write_all(&vec![b'{'; MAX_LINE + 10]).unwrap();
        j.write_all(b"\n").unwrap();
        record(&d, Kind::Volume, "create", "v1", &[]);
        j.write_all(b"{\"Type\":\"container\",\"Act").unwrap();
        let all = read_all(&d);
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(all[0].action, "start");
        assert_eq!(all[0].from, "alpine");
        assert_eq!(all[0].actor.attributes["name"], "web");
        assert_eq!(all[1].kind, "volume");
        assert!(all[1].id.is_empty() && all[1].status.is_empty());
        let got = f.poll();
        assert_eq!(got.len(), 2);
        assert!(f.poll().is_empty(), "the torn line is not read");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn concurrent_writers_never_interleave_and_rotation_bounds_the_size() {
        let d = dir("conc");
        let big = "x".repeat(3000);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let d = d.clone();
                let big = big.clone();
                std::thread::spawn(move || {
                    for i in 0..250 {
                        record(
                            &d,
                            Kind::Container,
                            "exec_start",
                            &format!("{t}-{i}"),
                            &[("cmd", &big)],
                        );
                    }
                })
            })
            .collect();
        let mut f = Follower::new(&d);
        let mut followed = 0;
        for t in threads {
            followed += f.poll().len();
            t.join().unwrap();
        }
        followed += f.poll().len();
        let main = fs::metadata(d.join(JOURNAL)).unwrap().len();
        let old = fs::metadata(d.join(ROTATED)).unwrap().len();
        assert!(
            main <= MAX_BYTES + 4096 && old <= MAX_BYTES + 4096,
            "{main} {old}"
        );
        // Every line of both files is a whole event.
        for name in [JOURNAL, ROTATED] {
            let text = fs::read_to_string(d.join(name)).unwrap();
            for l in text.lines() {
                serde_json::from_str::<Event>(l).unwrap_or_else(|e| panic!("{e}: {l:.80}"));
            }
        }
        // 1000 events of ~3.2 KB: more than fit in two files, so the oldest went.
        let kept = read_all(&d).len();
        assert!(kept < 1000 && kept > 300, "{kept}");
        assert!(followed <= 1000 && followed > 0, "{followed}");
        fs::remove_dir_all(&d).unwrap();
    }
}
