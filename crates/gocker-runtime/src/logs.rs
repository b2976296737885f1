//! Container logs: JSON lines `{"time": RFC3339-ish, "stream": "stdout"|"stderr", "log": "..."}` in
//! `<state>/<id>/container.log`, rotated to `container.log.1` past a size cap.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
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
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
