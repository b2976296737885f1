//! Container root filesystem preparation.
//!
//! The work is split so that the logic can be tested without privileges:
//! * [`plan::plan`] turns an OCI [`Spec`](oci_spec::runtime::Spec) into a list of [`Step`]s (pure);
//! * [`Mounter`] carries the steps out; [`KernelMounter`] does so with the new mount API
//!   (`open_tree`, `fsopen`/`fsmount`, `move_mount`, `mount_setattr`), every target resolved inside the
//!   rootfs with `openat2(RESOLVE_IN_ROOT)` so that a symlink in the rootfs can never lead a mount outside it;
//! * [`root`] holds the root-level operations: idmapped clones, attach, read-only, `pivot_root`;
//! * [`files`] puts small files on a size-limited tmpfs of their own, bound one by one (a
//!   container's own `/etc/hosts` and `/etc/resolv.conf`).

pub mod files;
pub mod options;
pub mod plan;
pub mod resolve;
pub mod root;
mod sys;

use std::os::fd::BorrowedFd;
use std::path::PathBuf;

pub use options::MountAttrs;
pub use plan::{plan, DeviceKind, Step};
pub use sys::{device_node, KernelMounter};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{op} {path}: {source}")]
    Sys {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mount {dest}: unsupported option {option:?}")]
    Option { dest: PathBuf, option: String },
    #[error("mount {dest}: {reason}")]
    Invalid { dest: PathBuf, reason: String },
    /// A path that resolves, or would resolve, outside the container's root: a `/proc` magic link
    /// such as `/proc/self/fd/N` (a descriptor of the runtime's, CVE-2024-21626), or a directory
    /// that the kernel reports as unreachable from the root.
    #[error("{what} {path}: refused: it resolves outside the container's root ({reason})")]
    OutsideRoot {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
}

impl MountError {
    pub(crate) fn sys(
        op: &'static str,
        path: impl Into<PathBuf>,
        e: impl Into<std::io::Error>,
    ) -> Self {
        MountError::Sys {
            op,
            path: path.into(),
            source: e.into(),
        }
    }
    /// The OS error behind this error, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            MountError::Sys { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, MountError>;

/// Carries out [`Step`]s against the rootfs opened as `root`.
pub trait Mounter {
    fn apply(&mut self, root: BorrowedFd<'_>, step: &Step) -> Result<()>;
}

/// Applies every step in order, stopping at the first error.
pub fn apply_all(m: &mut dyn Mounter, root: BorrowedFd<'_>, steps: &[Step]) -> Result<()> {
    steps.iter().try_for_each(|s| m.apply(root, s))
}
