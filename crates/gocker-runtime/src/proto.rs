//! The messages between the rings (length-prefixed JSON over the `SOCK_SEQPACKET` channels of
//! [`crate::channel`], descriptors beside them): the leaf every ring depends on.

use std::path::PathBuf;

use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::{ExitStatus, RuntimeError};

/// Messages from ring0 down to ring1/ring2.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Down {
    /// The id maps are written. Descriptors travel with the message: first the detached idmapped
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
            Up::ExecFailed { cmd, errno } => {
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
            other => RuntimeError::Protocol(format!(
                "unexpected {other:?} while waiting for {waiting_for}"
            )),
        }
    }
}

/// The message that carries the seccomp listener from ring2 to ring1.
pub(crate) const LISTENER_MSG: &str = "seccomp-listener";
