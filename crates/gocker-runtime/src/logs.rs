//! Container logs: JSON lines `{"time": RFC3339-ish, "stream": "stdout"|"stderr", "log": "..."}` in
//! `<state>/<id>/container.log`, rotated to `container.log.1` past a size cap.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Default size of one log file before rotation.
pub const MAX_LOG_BYTES: u64 = 10 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogLine {
    /// RFC 3339, UTC, nanoseconds.
    pub time: String,
    pub stream: String,
    pub log: String,
}

pub fn log_path(dir: &Path) -> PathBuf {
    dir.join("container.log")
}

/// RFC 3339 UTC with nanoseconds, like docker's log timestamps.
pub fn rfc3339(secs: u64, nanos: u32) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    let at = time::OffsetDateTime::UNIX_EPOCH
        + time::Duration::new(i64::try_from(secs).unwrap_or(i64::MAX), nanos as i32);
    at.format(FORMAT).unwrap_or_default()
}

/// The current time in RFC 3339 (UTC, nanoseconds).
pub(crate) fn now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs(), d.subsec_nanos())
}

/// Appends lines from both streams to the log file, rotating it past `max` bytes.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
}

impl LogWriter {
    pub fn create(dir: &Path, max: u64) -> std::io::Result<Arc<Mutex<LogWriter>>> {
        let path = log_path(dir);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Arc::new(Mutex::new(LogWriter {
            path,
            file,
            size,
            max,
        })))
    }

    fn write(&mut self, stream: &str, text: &str) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&LogLine {
            time: now(),
            stream: stream.into(),
            log: text.into(),
        })?;
        line.push(b'\n');
        if self.size + line.len() as u64 > self.max && self.size > 0 {
            std::fs::rename(&self.path, self.path.with_extension("log.1"))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.size = 0;
        }
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }
}

/// Copies `src` into the log line by line (partial lines at EOF too) until EOF.
pub fn pump(mut src: impl Read, stream: &'static str, w: Arc<Mutex<LogWriter>>) {
    let mut lines = LineLog::new(stream, w);
    let mut buf = [0u8; 16384];
    loop {
        match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => lines.push(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    lines.finish();
}

/// Like [`pump`], and each chunk is also written to `forward` (the caller's own stdout or
/// stderr) first. When `forward` is gone (EPIPE: `gocker run ... | head -1`), the pump stops and
/// drops `src`, so the payload's next write fails as it would on the closed stream itself.
pub fn tee(
    mut src: impl Read,
    mut forward: impl Write,
    stream: &'static str,
    w: Arc<Mutex<LogWriter>>,
) {
    let mut lines = LineLog::new(stream, w);
    let mut buf = [0u8; 16384];
    loop {
        match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                lines.push(&buf[..n]);
                if forward.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    lines.finish();
}

/// The output of a foreground container (`gocker run` without `-d`, `-t` or `--rm`) kept in its
/// log like a detached one's, so that `gocker logs NAME` shows it afterwards, as with docker.
///
/// [`Tee::divert`] (before `Container::create`) makes this process's stdout and stderr pipes,
/// which the rings and the payload inherit; [`Tee::start`] (once the rings exist: threads are
/// safe then) puts the caller's own streams back and copies each pipe to its stream and into the
/// log; [`Tee::finish`] (after the payload and ring1 are gone) waits for the copies to drain.
/// A `Tee` dropped before `start` puts the caller's streams back; dropped after it, it drains
/// the copies like [`Tee::finish`].
/// Descriptors of this process that a ring forked from it must not keep: a [`Tee`]'s read ends
/// (a ring holding one would keep a closed consumer from reaching the payload as EPIPE) and the
/// caller's saved streams. Closed by ring1 first thing ([`close_in_ring`]); exec'd rings lose
/// them to close-on-exec.
static RING_CLOSE: Mutex<Vec<std::os::fd::RawFd>> = Mutex::new(Vec::new());

/// ring1, first thing after the fork: closes the descriptors of [`RING_CLOSE`].
pub(crate) fn close_in_ring() {
    let fds = RING_CLOSE.lock().map(|v| v.clone()).unwrap_or_default();
    for fd in fds {
        // SAFETY: a freshly forked child closing its copies of the parent's Tee descriptors,
        // which it never uses (it never drops the Tee: the rings end with `_exit`).
        unsafe { drop(std::os::fd::OwnedFd::from_raw_fd(fd)) };
    }
}

pub struct Tee {
    /// The caller's stdout and stderr, while fds 1 and 2 are the pipes' write ends.
    saved: Option<[std::os::fd::OwnedFd; 2]>,
    readers: Option<[std::os::fd::OwnedFd; 2]>,
    pumps: Vec<std::thread::JoinHandle<()>>,
}

impl Tee {
    pub fn divert() -> crate::Result<Tee> {
        use rustix::pipe::{pipe_with, PipeFlags};
        let sys = |what: &str, e| crate::RuntimeError::sys("pipe", what.to_owned(), e);
        let (out_r, out_w) =
            pipe_with(PipeFlags::CLOEXEC).map_err(|e| sys("container stdout", e))?;
        let (err_r, err_w) =
            pipe_with(PipeFlags::CLOEXEC).map_err(|e| sys("container stderr", e))?;
        let dup = |fd| {
            rustix::io::fcntl_dupfd_cloexec(fd, 3)
                .map_err(|e| crate::RuntimeError::sys("dup", "the caller's stdio".to_owned(), e))
        };
        let saved = [dup(rustix::stdio::stdout())?, dup(rustix::stdio::stderr())?];
        if let Ok(mut close) = RING_CLOSE.lock() {
            use std::os::fd::AsRawFd;
            close.clear();
            close.extend(saved.iter().chain([&out_r, &err_r]).map(|f| f.as_raw_fd()));
        }
        let tee = Tee {
            saved: Some(saved),
            readers: Some([out_r, err_r]),
            pumps: Vec::new(),
        };
        // dup2 clears close-on-exec on 1 and 2: the rings inherit them, like the caller's own.
        rustix::stdio::dup2_stdout(&out_w)
            .map_err(|e| crate::RuntimeError::sys("dup2", "stdout".to_owned(), e))?;
        rustix::stdio::dup2_stderr(&err_w)
            .map_err(|e| crate::RuntimeError::sys("dup2", "stderr".to_owned(), e))?;
        Ok(tee)
    }

    /// Puts the caller's stdout and stderr back on fds 1 and 2 (closing this process's copies of
    /// the pipes' write ends).
    fn restore(&self) {
        if let Some([out, err]) = &self.saved {
            let _ = rustix::stdio::dup2_stdout(out);
            let _ = rustix::stdio::dup2_stderr(err);
        }
    }

    /// Starts the copies into `dir`'s log. The caller must not fork after this.
    pub fn start(&mut self, dir: &Path) -> crate::Result<()> {
        self.restore();
        let writer = LogWriter::create(dir, MAX_LOG_BYTES).map_err(|e| {
            crate::RuntimeError::sys("open", log_path(dir).display().to_string(), e)
        })?;
        let (Some([out_r, err_r]), Some([out, err])) = (self.readers.take(), self.saved.take())
        else {
            return Ok(());
        };
        for (src, fwd, stream) in [(out_r, out, "stdout"), (err_r, err, "stderr")] {
            let w = writer.clone();
            self.pumps.push(std::thread::spawn(move || {
                tee(File::from(src), File::from(fwd), stream, w)
            }));
        }
        Ok(())
    }

    /// Waits until both copies have drained (EOF once every holder of the write ends is gone:
    /// call it after the payload and ring1 have exited, or after the container was torn down).
    pub fn finish(self) {}
}

impl Drop for Tee {
    fn drop(&mut self) {
        if let Ok(mut close) = RING_CLOSE.lock() {
            close.clear();
        }
        self.restore();
        for p in self.pumps.drain(..) {
            let _ = p.join();
        }
    }
}

/// Cuts a byte stream into log lines: complete lines go to the log as they arrive, a partial one
/// at [`LineLog::finish`].
pub(crate) struct LineLog {
    stream: &'static str,
    w: Arc<Mutex<LogWriter>>,
    pending: Vec<u8>,
}

impl LineLog {
    pub(crate) fn new(stream: &'static str, w: Arc<Mutex<LogWriter>>) -> LineLog {
        LineLog {
            stream,
            w,
            pending: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
        if let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') {
            let rest = self.pending.split_off(end + 1);
            let done = std::mem::replace(&mut self.pending, rest);
            for line in done.split_inclusive(|&b| b == b'\n') {
                self.write(line);
            }
        }
    }

    pub(crate) fn finish(mut self) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.write(&rest);
        }
    }

    fn write(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        if let Ok(mut w) = self.w.lock() {
            let _ = w.write(self.stream, &text);
        }
    }
}

/// All lines of the container's log (rotated file first).
pub fn read_all(dir: &Path) -> Vec<LogLine> {
    let mut out = Vec::new();
    for p in [log_path(dir).with_extension("log.1"), log_path(dir)] {
        if let Ok(f) = File::open(&p) {
            out.extend(
                BufReader::new(f)
                    .lines()
                    .map_while(|l| l.ok())
                    .filter_map(|l| serde_json::from_str(&l).ok()),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(
            rfc3339(1_795_361_591, 244_188_182),
            "2026-11-22T15:33:11.244188182Z"
        );
    }

    #[test]
    fn chunks_are_cut_into_lines() {
        let dir = std::env::temp_dir().join(format!("gocker-linelog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = LogWriter::create(&dir, MAX_LOG_BYTES).unwrap();
        let mut l = LineLog::new("stdout", w);
        for chunk in [&b"a"[..], b"b\nc\nd", b"", b"e\n\nf"] {
            l.push(chunk);
        }
        l.finish();
        let got: Vec<String> = read_all(&dir).into_iter().map(|l| l.log).collect();
        assert_eq!(got, ["ab\n", "c\n", "de\n", "\n", "f"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lines_round_trip_and_rotate() {
        let dir = std::env::temp_dir().join(format!("gocker-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = LogWriter::create(&dir, 200).unwrap();
        pump(&b"one\ntwo\nthree"[..], "stdout", w.clone());
        pump(&b"err\n"[..], "stderr", w.clone());
        let lines = read_all(&dir);
        let logs: Vec<(&str, &str)> = lines
            .iter()
            .map(|l| (l.stream.as_str(), l.log.as_str()))
            .collect();
        assert_eq!(
            logs,
            [
                ("stdout", "one\n"),
                ("stdout", "two\n"),
                ("stdout", "three"),
                ("stderr", "err\n")
            ]
        );
        assert!(
            log_path(&dir).with_extension("log.1").exists(),
            "rotated past 200 bytes"
        );
        assert!(std::fs::metadata(log_path(&dir)).unwrap().len() <= 200);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
