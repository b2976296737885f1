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

/// Puts a copy-on-write layer over the root mounted at `lower`, with its upper directory on a
/// fresh tmpfs that exists only in the caller's mount namespace: the container's writes never
/// reach the directory under `lower`, nor any path on the host. Made in the container's user
/// namespace, so files are stored with the container's own credentials (the mapped host ids),
/// which is how a rootful container's root, seeing host root's files as its own through an
/// idmapped mount, is kept from leaving setuid-root files where host users can run them
/// (docs/security.md). The tmpfs is charged to the memory cgroup of the processes writing it.
/// Returns the overlay, detached: the caller attaches it (see [`attach`]).
pub fn ephemeral_overlay(lower: &Path) -> Result<OwnedFd> {
    let upper_fs = fs_instance(
        "tmpfs",
        "gocker-rw",
        &[("mode".into(), Some("0755".into()))],
        MountAttrs::default(),
        lower,
    )?;
    for d in ["upper", "work"] {
        rustix::fs::mkdirat(&upper_fs, d, Mode::from_raw_mode(0o755))
            .map_err(|e| MountError::sys("mkdir", Path::new("(upper tmpfs)").join(d), e))?;
    }
    use std::os::fd::AsRawFd;
    let via = |d: &str| format!("/proc/self/fd/{}/{d}", upper_fs.as_raw_fd());
    let data = [
        ("lowerdir".to_string(), Some(lower.display().to_string())),
        ("upperdir".to_string(), Some(via("upper"))),
        ("workdir".to_string(), Some(via("work"))),
        // Unprivileged overlayfs (in a user namespace) keeps its metadata in user.* xattrs.
        ("userxattr".to_string(), None),
    ];
    fs_instance(
        "overlay",
        "gocker-root",
        &data,
        MountAttrs::default(),
        lower,
    )
}

/// A detached new instance of `fstype` made by the calling process (so it belongs to the caller's
/// namespaces, e.g. an mqueue of the IPC namespace it has joined), for a premade mount at `dest`.
/// Mount attributes are left to whoever attaches it.
pub fn instance(fstype: &str, source: &str, dest: &Path) -> Result<OwnedFd> {
    fs_instance(fstype, source, &[], MountAttrs::default(), dest)
}
