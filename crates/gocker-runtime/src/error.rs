use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything that can go wrong while running a container. [`RuntimeError::exit_code`] gives the
/// docker-style exit code (125 for a gocker error, 126 and 127 for exec failures).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{op} ({what}): {source}")]
    Sys {
        op: &'static str,
        what: String,
        source: std::io::Error,
    },
    #[error("timed out after {after:?} waiting for {stage}")]
    Timeout { stage: String, after: Duration },
    #[error("ring protocol: {0}")]
    Protocol(String),
    #[error("{stage}: {message}")]
    Ring { stage: String, message: String },
    #[error("exec {cmd:?}: executable file not found in $PATH")]
    ExecNotFound { cmd: String },
    #[error("exec {cmd:?}: {reason}")]
    ExecFailed {
        cmd: String,
        reason: String,
        not_found: bool,
    },
    #[error("rootfs {path}: {reason}")]
    Rootfs { path: PathBuf, reason: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A JSON input (config.json, `gocker-oci exec --process`, `update -r`) that could not be
    /// read or parsed: the file, and what is wrong (a bad value names its field's JSON path).
    #[error("{}: {problem}", path.display())]
    Input { path: PathBuf, problem: InputError },
    #[error(transparent)]
    Ns(#[from] gocker_ns::NsError),
    #[error("user namespace maps: {0}")]
    IdMap(#[from] gocker_idmap::IdMapError),
    #[error(transparent)]
    Mount(#[from] gocker_mounts::MountError),
    #[error(transparent)]
    Cgroup(#[from] gocker_cgroups::CgroupError),
    #[error(transparent)]
    Seccomp(#[from] gocker_seccomp::SeccompError),
    #[error("network: {0}")]
    Net(#[from] gocker_net::NetError),
    #[error("state {path}: {reason}")]
    State { path: PathBuf, reason: String },
    #[error("the container name {0:?} is already in use (remove it with `gocker rm {0}` or choose another --name)")]
    NameInUse(String),
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    /// `pause`, `update`, ... of a container that has no cgroup: what it cannot do, and why this
    /// host gives it none.
    #[error("container {name} has no cgroup, so it cannot {what}: {why}")]
    NoCgroup {
        name: String,
        what: &'static str,
        why: String,
    },
    /// An error another process (a container's monitor) reported, with the exit code it chose.
    #[error("{message}")]
    Reported { code: i32, message: String },
}

impl RuntimeError {
    pub(crate) fn sys(
        op: &'static str,
        what: impl Into<String>,
        e: impl Into<std::io::Error>,
    ) -> Self {
        RuntimeError::Sys {
            op,
            what: what.into(),
            source: e.into(),
        }
    }

    /// docker's convention: 127 command not found, 126 command not executable, 125 anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            RuntimeError::ExecNotFound { .. }
            | RuntimeError::ExecFailed {
                not_found: true, ..
            } => 127,
            RuntimeError::ExecFailed { .. } => 126,
            RuntimeError::Reported { code, .. } => *code,
            _ => 125,
        }
    }
}

/// How the container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    /// The shell-style code: the exit status, or 128+N when killed by signal N.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }

    pub(crate) fn from_wait(w: rustix::process::WaitStatus) -> Self {
        match (w.exit_status(), w.terminating_signal()) {
            (Some(c), _) => ExitStatus::Exited(c),
            (None, Some(s)) => ExitStatus::Signaled(s),
            _ => ExitStatus::Exited(255),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_exit_codes() {
        assert_eq!(ExitStatus::Exited(7).code(), 7);
        assert_eq!(ExitStatus::Signaled(9).code(), 137);
        assert_eq!(
            RuntimeError::ExecNotFound { cmd: "x".into() }.exit_code(),
            127
        );
        let denied = RuntimeError::ExecFailed {
            cmd: "x".into(),
            reason: "permission denied".into(),
            not_found: false,
        };
        assert_eq!(denied.exit_code(), 126);
        assert_eq!(RuntimeError::Config("bad".into()).exit_code(), 125);
    }
}

/// What is wrong with a JSON input file; [`RuntimeError::Input`] adds the file's name.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{0}")]
    Io(std::io::Error),
    #[error("not a regular file but {0}")]
    NotRegular(&'static str),
    #[error("too large: {size} bytes, the limit is {limit} bytes ({} MiB)", limit >> 20)]
    TooLarge { size: u64, limit: u64 },
    /// A stream (or a file that grew while read) that went on past the limit.
    #[error("too large: more than the limit of {limit} bytes")]
    TooLong { limit: u64 },
    #[error("empty, expected a JSON object")]
    Empty,
    /// A value of the wrong type or out of range, or JSON that ends or breaks inside `field`
    /// (its JSON path, e.g. `process.user.uid` or `mounts[2].options`).
    #[error("{field}: {message} (line {line}, column {column})")]
    Field {
        field: String,
        message: String,
        line: usize,
        column: usize,
    },
    #[error("expected a JSON object, found {0}")]
    NotAnObject(&'static str),
    /// A field the OCI runtime spec requires that is absent or empty (its JSON path).
    #[error("{0}: required, and missing or empty")]
    Required(&'static str),
    /// Broken JSON outside any field (before the first key, or text after the end).
    #[error("{message} (line {line}, column {column})")]
    Syntax {
        message: String,
        line: usize,
        column: usize,
    },
}
