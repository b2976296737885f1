//! Operations on the container's root mount as a whole.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, CWD};
use rustix::mount::{MountPropagationFlags, UnmountFlags};

use crate::options::{MountAttrs, MOUNT_ATTR_RDONLY};
use crate::resolve::{open_in_root, Create};
use crate::sys::{attach_path, clone_tree, fs_instance, set_attrs};
use crate::{MountError, Result, Step};

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

/// Takes the detached mount `mnt` (with its submounts when recursive) out of any peer group. A
/// clone of a shared mount is a peer of the original: a mount made below one appears below the
/// other, so a clone made in the host's mount namespace and attached in a container's would let
/// the container mount onto the host. A container's mounts are private ([`make_rprivate`]); a
/// clone made for it elsewhere must be too.
pub fn make_private(mnt: BorrowedFd<'_>, what: &Path, recursive: bool) -> Result<()> {
    crate::sys::set_propagation(mnt, what, crate::options::Propagation::Private, recursive)
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
    // The current root, which becomes the old root: held so that it alone, with the mounts below
    // it, is made private after the pivot (a path such as "." would name the new root, and
    // recursively reset the propagation the container's mounts asked for).
    let old = open_dir(Path::new("/"))?;
    rustix::process::fchdir(root).map_err(|e| MountError::sys("fchdir", "rootfs", e))?;
    rustix::process::pivot_root(".", ".")
        .map_err(|e| MountError::sys("pivot_root", "rootfs", e))?;
    // The old root is now mounted on top of the new one at "."; make it private before detaching
    // so the unmount does not propagate anywhere, then lazily detach it.
    crate::sys::set_propagation(
        std::os::fd::AsFd::as_fd(&old),
        Path::new("old root"),
        crate::options::Propagation::Private,
        true,
    )?;
    drop(old);
    rustix::mount::unmount(".", UnmountFlags::DETACH)
        .map_err(|e| MountError::sys("umount", "old root", e))?;
    rustix::process::chdir("/").map_err(|e| MountError::sys("chdir", "/", e))
}

/// Sets the propagation of the root mount (`/`), recursively when asked: after `pivot_root`
/// (see [`crate::plan::after_pivot`]).
pub fn set_root_propagation(
    propagation: crate::options::Propagation,
    recursive: bool,
) -> Result<()> {
    let root = open_dir(Path::new("/"))?;
    crate::sys::set_propagation(
        std::os::fd::AsFd::as_fd(&root),
        Path::new("/"),
        propagation,
        recursive,
    )
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

/// The mount targets of `steps` that lie in the rootfs itself, with what each must be: the
/// destinations of filesystems (directories) and binds (a directory or a file, as the source is),
/// leaving out those inside a filesystem that an earlier step mounts (a target under a `/dev`
/// tmpfs exists only once that tmpfs does, and is made there). Pure; see [`make_targets`].
/// `is_dir` tells whether a bind source is a directory.
pub fn rootfs_targets(steps: &[Step], is_dir: impl Fn(&Path) -> bool) -> Vec<(PathBuf, Create)> {
    let mut mounted: Vec<&Path> = Vec::new();
    let mut out = Vec::new();
    for s in steps {
        let (dest, kind) = match s {
            Step::Fs { dest, .. } => (dest, Create::Dir),
            Step::Bind { dest, source, .. } => (
                dest,
                if is_dir(source) {
                    Create::Dir
                } else {
                    Create::File
                },
            ),
            _ => continue,
        };
        let dest_rel = crate::resolve::relative(dest);
        if !mounted
            .iter()
            .any(|m| dest_rel != *m && dest_rel.starts_with(m))
            && !out.iter().any(|(d, _)| *d == dest_rel)
        {
            out.push((dest_rel.clone(), kind));
        }
        mounted.push(dest.strip_prefix("/").unwrap_or(dest));
    }
    out
}

/// Creates the mount targets of `steps` that lie in the rootfs ([`rootfs_targets`]) with the
/// caller's credentials, resolved inside `root` as every target is (`openat2(RESOLVE_IN_ROOT)`:
/// a symlink in the rootfs cannot lead outside it). For a privileged caller preparing a rootfs
/// that the container's own root cannot write (a rootful container's remapped root on a rootfs
/// that could not be idmapped). Returns the failures: whoever carries the steps out tries again
/// and reports them.
pub fn make_targets(root: BorrowedFd<'_>, steps: &[Step]) -> Vec<MountError> {
    let is_dir = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_dir());
    rootfs_targets(steps, is_dir)
        .into_iter()
        .filter_map(|(dest, kind)| open_in_root(root, &Path::new("/").join(dest), kind).err())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn fs(dest: &str) -> Step {
        Step::Fs {
            dest: dest.into(),
            fstype: "tmpfs".into(),
            source: "tmpfs".into(),
            attrs: MountAttrs::default(),
            data: Vec::new(),
            propagation: None,
            host_instance: None,
        }
    }
    fn bind(source: &str, dest: &str) -> Step {
        Step::Bind {
            source: source.into(),
            dest: dest.into(),
            recursive: false,
            attrs: MountAttrs::default(),
            propagation: None,
        }
    }

    #[test]
    fn only_targets_outside_earlier_mounts_are_made_beforehand() {
        let steps = [
            fs("/proc"),
            fs("/dev"),
            fs("/dev/pts"),
            bind("/host/shm", "/dev/shm"),
            bind("/host/hosts", "/etc/hosts"),
            bind("/host/dir", "/data"),
            bind("/host/file", "/data/inner"),
            fs("/sys"),
            fs("/sys/fs/cgroup"),
            bind("/host/env", "/run/.containerenv"),
            bind("/host/dir", "/data"),
            fs("/devices"),
            Step::Symlink {
                target: "pts/ptmx".into(),
                link: "/dev/ptmx".into(),
            },
        ];
        let t = rootfs_targets(&steps, |p| p.ends_with("dir") || p.ends_with("shm"));
        let want: Vec<(PathBuf, Create)> = [
            ("proc", Create::Dir),
            ("dev", Create::Dir),
            ("etc/hosts", Create::File),
            ("data", Create::Dir),
            ("sys", Create::Dir),
            ("run/.containerenv", Create::File),
            ("devices", Create::Dir),
        ]
        .into_iter()
        .map(|(d, k)| (PathBuf::from(d), k))
        .collect();
        assert_eq!(t, want);
    }

    #[test]
    fn targets_are_made_inside_the_root() {
        let base = std::env::temp_dir().join(format!("gocker-targets-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(base.join("src")).unwrap();
        std::fs::write(base.join("file"), "x").unwrap();
        // A symlink in the rootfs that points at the host's directory stays inside the root.
        std::os::unix::fs::symlink(&base, root.join("escape")).unwrap();
        let inside = root.join(base.strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        let src = base.join("src").display().to_string();
        let file = base.join("file").display().to_string();
        let steps = [
            bind(&src, "/data/vol"),
            bind(&file, "/etc/hostname"),
            bind(&file, "/escape/planted"),
        ];
        let rfd = open_dir(&root).unwrap();
        let errors = make_targets(rfd.as_fd(), &steps);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(root.join("data/vol").is_dir());
        assert!(root.join("etc/hostname").is_file());
        assert!(!base.join("planted").exists());
        assert!(inside.join("planted").is_file());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
