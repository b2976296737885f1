//! The messages between the rings (length-prefixed JSON over the `SOCK_SEQPACKET` channels of
//! [`crate::channel`], descriptors beside them): the leaf every ring depends on.

use std::path::PathBuf;

use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::{ExitStatus, RuntimeError};

/// Messages from ring0 down to ring1/ring2.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Down {
    /// The id maps are written: ring1 may become root of its user namespace and set up its
    /// namespaces while ring0 still makes the root and the premade mounts (`Mapped`).
    Maps,
    /// The premade mounts and own files. Descriptors travel with the message: first the detached idmapped
    /// rootfs when `rootfs`, then one mount per bind destination in `volumes`, then the template
    /// (opened for reading) of each of the container's own files in `files` (crate::own_files).
    Mapped {
        rootfs: bool,
        volumes: Vec<PathBuf>,
        #[serde(default)]
        files: Vec<PathBuf>,
    },
    /// Premade mounts that did not fit in `Mapped`'s message (a message carries at most
    /// `channel::MAX_FDS` descriptors): one per destination, in order, before `Mapped`, whose
    /// `volumes` follow them.
    Volumes(Vec<PathBuf>),
    /// Leave the start barrier and exec.
    Start,
    /// Workspace mode: run the enclave command now (ring2 is prepared).
    Enclave,
    /// OCI mode, when ring2 needs it (`startContainer` hooks, a seccomp agent): the state JSON.
    OciState(String),
}

/// Messages from ring1/ring2 up to ring0.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Up {
    Ring2Pid(i32),
    Ready,
    Failed {
        stage: String,
        message: String,
    },
    ExecFailed {
        cmd: String,
        errno: i32,
    },
    Exited(ExitStatus),
    /// Workspace mode: how the enclave command ended.
    EnclaveDone(ExitStatus),
}

impl Up {
    pub(crate) fn failed(ring: &str, e: &RuntimeError) -> Up {
        match e {
            RuntimeError::Ring { stage, message } => Up::Failed {
                stage: stage.clone(),
                message: message.clone(),
            },
            other => Up::Failed {
                stage: ring.to_owned(),
                message: other.to_string(),
            },
        }
    }
    pub(crate) fn into_error(self, waiting_for: &str) -> RuntimeError {
        match self {
            Up::Failed { stage, message } => RuntimeError::Ring { stage, message },
            Up::ExecFailed { cmd, errno } => exec_error(cmd, errno),
            other => RuntimeError::Protocol(format!(
                "unexpected {other:?} while waiting for {waiting_for}"
            )),
        }
    }
}

/// A failed `execve` of `cmd` (from ring2 or from `exec`'s payload): a missing program is 127's
/// "not found" (a bare name searched in PATH) or "no such file" (a path), as docker words them.
pub(crate) fn exec_error(cmd: String, errno: i32) -> RuntimeError {
    let e = Errno::from_raw_os_error(errno);
    if e == Errno::NOENT {
        if cmd.contains('/') {
            RuntimeError::ExecFailed {
                cmd,
                reason: "no such file or directory".into(),
                not_found: true,
            }
        } else {
            RuntimeError::ExecNotFound { cmd }
        }
    } else {
        RuntimeError::ExecFailed {
            cmd,
            reason: std::io::Error::from(e).to_string(),
            not_found: false,
        }
    }
}

/// The message that carries the seccomp listener from ring2 to ring1.
pub(crate) const LISTENER_MSG: &str = "seccomp-listener";

/// A child's report to the process that forked it, over a pipe rather than a ring channel (the
/// child may have no channel, or be about to exec): one JSON line per report, written in one
/// `write` (a line shorter than `PIPE_BUF` never interleaves with another writer's). Used by the
/// detach monitor (its start) and by `exec`'s intermediate process and payload (the payload's
/// host pid, a failed step, a failed `execve`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Report {
    /// The detach monitor started the container.
    Started { id: String },
    /// The detach monitor failed with this exit code (127 for a missing command, as docker).
    Refused { code: i32, message: String },
    /// `exec --detach`: the exec'd process's pid in the host's PID namespace.
    Pid(i32),
    /// `exec`: a step before `execve` failed.
    Failed { stage: String, message: String },
    /// `exec`: `execve` of `cmd` failed with `errno`.
    ExecFailed { errno: i32, cmd: String },
}

/// The longest message a report carries; longer ones are cut (on a character boundary), so that
/// every report stays one atomic pipe write.
const REPORT_TEXT: usize = 3000;

fn cut(s: &str) -> String {
    let mut end = s.len().min(REPORT_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

impl Report {
    /// `exec`'s failures as `ChildEnd::Failed` words them: `STAGE: MESSAGE`.
    pub(crate) fn failed(text: &str) -> Report {
        let (stage, message) = text.split_once(": ").unwrap_or(("exec", text));
        Report::Failed {
            stage: cut(stage),
            message: cut(message),
        }
    }

    /// Writes the report as one line (errors are the reader's to notice: no report is no news).
    pub(crate) fn send(&self, to: impl std::os::fd::AsFd) {
        let bounded = match self {
            Report::Refused { code, message } => Report::Refused {
                code: *code,
                message: cut(message),
            },
            Report::ExecFailed { errno, cmd } => Report::ExecFailed {
                errno: *errno,
                cmd: cut(cmd),
            },
            other => other.clone(),
        };
        if let Ok(mut line) = serde_json::to_vec(&bounded) {
            line.push(b'\n');
            let _ = rustix::io::write(to, &line);
        }
    }

    /// The reports in `text` (what was read from the pipe), in order; a line that is not a report
    /// becomes a `Failed` one carrying it, so nothing a child said is lost.
    pub(crate) fn parse_all(text: &str) -> Vec<Report> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| Report::failed(l)))
            .collect()
    }
}

#[cfg(test)]
mod report_tests {
    use super::Report;

    #[test]
    fn reports_round_trip_one_per_line_and_stray_text_is_kept() {
        let (r, w) = rustix::pipe::pipe().unwrap();
        Report::Pid(42).send(&w);
        Report::failed("setns: Operation not permitted").send(&w);
        Report::ExecFailed {
            errno: 2,
            cmd: "/nope".into(),
        }
        .send(&w);
        rustix::io::write(&w, b"raw words\n").unwrap();
        drop(w);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut text).unwrap();
        assert_eq!(
            Report::parse_all(&text),
            [
                Report::Pid(42),
                Report::Failed {
                    stage: "setns".into(),
                    message: "Operation not permitted".into()
                },
                Report::ExecFailed {
                    errno: 2,
                    cmd: "/nope".into()
                },
                Report::Failed {
                    stage: "exec".into(),
                    message: "raw words".into()
                },
            ]
        );
    }

    #[test]
    fn a_long_message_is_cut_to_one_atomic_write_on_a_character_boundary() {
        let long = "é".repeat(5000);
        let (r, w) = rustix::pipe::pipe().unwrap();
        Report::Refused {
            code: 125,
            message: long,
        }
        .send(&w);
        drop(w);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut text).unwrap();
        assert!(text.len() < 4096, "{}", text.len());
        match &Report::parse_all(&text)[..] {
            [Report::Refused { code: 125, message }] => assert!(message.starts_with("éé")),
            other => panic!("{other:?}"),
        }
    }
}
