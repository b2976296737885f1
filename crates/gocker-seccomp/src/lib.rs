//! seccomp for containers, as a mechanism crate usable on its own:
//!
//! * [`Profile`]: the policy model (default action, per-syscall rules with argument conditions,
//!   architectures), loaded from OCI `LinuxSeccomp` or docker/podman profile JSON and written back
//!   as OCI ([`Profile::from_oci`], [`Profile::from_docker_json`], [`Profile::to_oci`]).
//! * [`builtin`]: the `default` profile (an allow-list that answers EPERM, never kills) and the
//!   tighter `strict` one for untrusted tools. `docs/seccomp.md` gives the reason for each refusal.
//! * [`compile`]: BPF through libseccomp (binary-tree optimisation), cached by profile hash.
//! * [`load`]: installs a compiled program with `seccomp(2)` (TSYNC, NEW_LISTENER).
//! * [`notify`]: the user-notification supervisor API (receive, id validity, respond, continue,
//!   ADDFD) and the [`notify::Target`] seam that makes decision logic testable without root.

pub mod builtin;
pub mod compile;
pub mod load;
pub mod notify;
mod profile;

pub use compile::{compile, compile_cached, Bpf, Cache, CacheOutcome};
pub use load::{load, LoadFlags};
pub use profile::{Action, ArchSpec, Arg, CondFilter, Op, Profile, Rule};

use std::path::PathBuf;

/// Everything that can go wrong, naming the syscall, path or value involved.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp profile {source_name}: {reason}")]
    Profile { source_name: String, reason: String },
    #[error("seccomp profile: unknown action {0:?}")]
    UnknownAction(String),
    #[error("seccomp profile: unknown architecture {0:?}")]
    UnknownArch(String),
    #[error("seccomp profile: unknown comparison operator {0:?}")]
    UnknownOp(String),
    #[error("seccomp profile: syscall {syscall}: argument index {index} out of range (0..=5)")]
    ArgIndex { syscall: String, index: u32 },
    #[error("libseccomp: {what}: {source}")]
    Libseccomp {
        what: String,
        source: libseccomp::error::SeccompError,
    },
    #[error("seccomp cache {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{op} ({what}): {source}")]
    Sys {
        op: &'static str,
        what: String,
        source: std::io::Error,
    },
    #[error("compiled seccomp program has {0} bytes, not a whole number of 8-byte BPF instructions (or more than 4096 of them)")]
    BadProgram(usize),
}

impl SeccompError {
    pub(crate) fn sys(
        op: &'static str,
        what: impl Into<String>,
        e: impl Into<std::io::Error>,
    ) -> Self {
        SeccompError::Sys {
            op,
            what: what.into(),
            source: e.into(),
        }
    }

    /// The errno of a failed system call, if this is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            SeccompError::Sys { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, SeccompError>;
