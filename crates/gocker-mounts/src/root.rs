//! Operations on the container's root mount as a whole.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, CWD};
use rustix::mount::{MountPropagationFlags, UnmountFlags};

use crate::options::{MountAttrs, MOUNT_ATTR_RDONLY};
use crate::sys::{attach_path, clone_tree, fs_instance, set_attrs};
use crate::{MountError, Result};

/// Makes every mount in the caller's (new) mount namespace private, so nothing the container
/// mounts propagates back to the host and host mount events do not reach the container.
pub fn make_rprivate() -> Result<()> {
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| MountError::sys("make-rprivate", "/", e))
}

/// A detached copy of the tree at `path` (recursive: with its submounts).
pub fn clone(path: &Path, recursive: bool) -> Result<OwnedFd> {
    clone_tree(CWD, path, recursive)
}

/// Makes the detached mount `mnt` idmapped through the user namespace `userns`: an on-disk id `k`
/// appears as whatever `k` maps to in `userns` (so files owned by host root look owned by
/// container root). Needs `CAP_SYS_ADMIN` over the filesystem and a filesystem that supports it.
pub fn idmap(
    mnt: BorrowedFd<'_>,
    what: &Path,
    userns: BorrowedFd<'_>,
    recursive: bool,
) -> Result<()> {
    set_attrs(mnt, what, MountAttrs::default(), recursive, Some(userns))
}

/// Sets or clears read-only on the mount `mnt` refers to (and its submounts when recursive).
pub fn set_readonly(
    mnt: BorrowedFd<'_>,
    what: &Path,
    readonly: bool,
    recursive: bool,
) -> Result<()> {
    let attrs = if readonly {
        MountAttrs::set(MOUNT_ATTR_RDONLY)
    } else {
        MountAttrs {
            set: 0,
            clr: MOUNT_ATTR_RDONLY,
        }
    };
    set_attrs(mnt, what, attrs, recursive, None)
}

/// Attaches a detached mount on top of `target` in the caller's mount namespace.
pub fn attach(mnt: BorrowedFd<'_>, target: &Path) -> Result<()> {
    attach_path(mnt, target)
}

/// Opens a directory as an `O_PATH` handle (the container root for [`crate::Mounter`]).
pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| MountError::sys("open", path, e))
}

/// Makes `root` the root of the caller's mount namespace with `pivot_root(".", ".")` and detaches
/// the old root, so no path to the host's tree remains. Ends with the cwd at the new `/`.
pub fn pivot_root(root: BorrowedFd<'_>) -> Result<()> {
    rustix::process::fchdir(root).map_err(|e| MountError::sys("fchdir", "rootfs", e))?;
    rustix::process::pivot_root(".", ".")
        .map_err(|e| MountError::sys("pivot_root", "rootfs", e))?;
    // The old root is now mounted on top of the new one at "."; make it private before detaching
    // so the unmount does not propagate anywhere, then lazily detach it.
    rustix::mount::mount_change(
        ".",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| MountError::sys("make-rprivate", "old root", e))?;
    rustix::mount::unmount(".", UnmountFlags::DETACH)
        .map_err(|e| MountError::sys("umount", "old root", e))?;
    rustix::process::chdir("/").map_err(|e| MountError::sys("chdir", "/", e))
}

/// Makes the rootfs mount itself read-only (not the mounts below it).
pub fn root_readonly(root: BorrowedFd<'_>) -> Result<()> {
    set_readonly(root, Path::new("/"), true, false)
}

/// A detached new instance of `fstype` made by the calling process (so it belongs to the caller's
/// namespaces, e.g. an mqueue of the IPC namespace it has joined), for a premade mount at `dest`.
/// Mount attributes are left to whoever attaches it.
pub fn instance(fstype: &str, source: &str, dest: &Path) -> Result<OwnedFd> {
    fs_instance(fstype, source, &[], MountAttrs::default(), dest)
}
