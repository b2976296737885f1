//! Thin wrappers over the mount API syscalls, and the kernel-backed [`Mounter`].

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags};

use crate::options::{
    MountAttrs, MOUNT_ATTR_IDMAP, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
};
use crate::resolve::{is_dir, open_in_root, Create};
use crate::{MountError, Mounter, Result, Step};

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `open_tree(OPEN_TREE_CLONE)`: a detached copy of the mount at `path` (relative to `dir`;
/// an empty path means `dir` itself).
pub(crate) fn clone_tree(dir: BorrowedFd<'_>, path: &Path, recursive: bool) -> Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    if path.as_os_str().is_empty() {
        flags |= OpenTreeFlags::AT_EMPTY_PATH;
    }
    rustix::mount::open_tree(dir, path, flags).map_err(|e| MountError::sys("open_tree", path, e))
}

/// `mount_setattr(2)` on the mount `fd` refers to.
pub(crate) fn set_attrs(
    fd: BorrowedFd<'_>,
    what: &Path,
    attrs: MountAttrs,
    recursive: bool,
    userns: Option<BorrowedFd<'_>>,
) -> Result<()> {
    let mut a = MountAttr {
        attr_set: attrs.set,
        attr_clr: attrs.clr,
        propagation: 0,
        userns_fd: 0,
    };
    if let Some(u) = userns {
        a.attr_set |= MOUNT_ATTR_IDMAP;
        a.userns_fd = u.as_raw_fd() as u64;
    }
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: fd is valid for the call, the path is a NUL-terminated empty string, and `a` is a
    // properly sized and initialised `struct mount_attr` that the kernel only reads.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &mut a as *mut MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r == -1 {
        return Err(MountError::sys(
            "mount_setattr",
            what,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// `move_mount(2)`: attaches the detached mount `mnt` on top of `target` (an `O_PATH` fd).
pub(crate) fn attach_fd(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>, what: &Path) -> Result<()> {
    rustix::mount::move_mount(
        mnt,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| MountError::sys("move_mount", what, e))
}

/// `move_mount(2)` onto a path in the caller's mount namespace.
pub(crate) fn attach_path(mnt: BorrowedFd<'_>, target: &Path) -> Result<()> {
    rustix::mount::move_mount(
        mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| MountError::sys("move_mount", target, e))
}

/// `fsopen` + `fsconfig` + `fsmount`: a new detached filesystem instance.
pub(crate) fn fs_instance(
    fstype: &str,
    source: &str,
    data: &[(String, Option<String>)],
    attrs: MountAttrs,
    dest: &Path,
) -> Result<OwnedFd> {
    let err = |op, e: Errno| MountError::Sys {
        op,
        path: dest.to_owned(),
        source: std::io::Error::from(e),
    };
    let fs =
        rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| err("fsopen", e))?;
    rustix::mount::fsconfig_set_string(fs.as_fd(), "source", source)
        .map_err(|e| err("fsconfig source", e))?;
    for (k, v) in data {
        let r = match v {
            Some(v) => rustix::mount::fsconfig_set_string(fs.as_fd(), k.as_str(), v.as_str()),
            None => rustix::mount::fsconfig_set_flag(fs.as_fd(), k.as_str()),
        };
        r.map_err(|e| MountError::Invalid {
            dest: dest.to_owned(),
            reason: format!(
                "{fstype} rejects option {k}{}: {e}",
                v.as_ref().map(|v| format!("={v}")).unwrap_or_default()
            ),
        })?;
    }
    rustix::mount::fsconfig_create(fs.as_fd()).map_err(|e| err("fsconfig create", e))?;
    let flags = MountAttrFlags::from_bits_retain(attrs.set as u32);
    rustix::mount::fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, flags)
        .map_err(|e| err("fsmount", e))
}

/// `f_type` of an mqueue filesystem (linux/magic.h; not in the libc crate).
const MQUEUE_MAGIC: u64 = 0x1980_0202;

/// The [`Mounter`] that performs steps with real syscalls.
#[derive(Debug, Default)]
pub struct KernelMounter {
    /// Notes about fallbacks taken (for `--debug` output), e.g. sysfs bound instead of mounted.
    pub notes: Vec<String>,
    /// Detached mounts prepared elsewhere (e.g. idmapped by a privileged parent), used for the bind
    /// with the same destination instead of cloning its source.
    pub premade: Vec<(std::path::PathBuf, OwnedFd)>,
}

impl KernelMounter {
    fn bind(
        &mut self,
        root: BorrowedFd<'_>,
        source: &Path,
        dest: &Path,
        recursive: bool,
        attrs: MountAttrs,
    ) -> Result<()> {
        let src = match self.premade.iter().position(|(d, _)| d == dest) {
            Some(i) => self.premade.swap_remove(i).1,
            None => clone_tree(CWD, source, recursive)?,
        };
        let kind = if is_dir(src.as_fd()) {
            Create::Dir
        } else {
            Create::File
        };
        if attrs.set != 0 || attrs.clr != 0 {
            set_attrs(src.as_fd(), source, attrs, recursive, None)?;
        }
        let target = open_in_root(root, dest, kind)?;
        attach_fd(src.as_fd(), target.as_fd(), dest)
    }

    /// A new instance of `fstype` for `dest`, with the fallbacks a user namespace needs.
    fn instance(
        &mut self,
        fstype: &str,
        source: &str,
        data: &[(String, Option<String>)],
        attrs: MountAttrs,
        dest: &Path,
    ) -> Result<OwnedFd> {
        Ok(match fs_instance(fstype, source, data, attrs, dest) {
            Ok(m) => m,
            // sysfs needs a network namespace owned by our user namespace; without one,
            // bind the host's /sys read-only (as runc and podman do).
            Err(e) if fstype == "sysfs" && e.errno() == Some(libc::EPERM) => {
                self.notes
                    .push(format!("sysfs: {e}; bound /sys read-only instead"));
                let m = clone_tree(CWD, Path::new("/sys"), true)?;
                set_attrs(m.as_fd(), dest, attrs.with(MOUNT_ATTR_RDONLY), true, None)?;
                m
            }
            // No usable cgroup2 hierarchy for this namespace (e.g. a hybrid host whose controllers
            // are bound to v1): an empty read-only tmpfs keeps /sys/fs/cgroup present but inert.
            Err(e) if fstype == "cgroup2" && e.errno() == Some(libc::EPERM) => {
                self.notes.push(format!(
                    "{}: cgroup2 refused ({e}); mounted an empty read-only tmpfs",
                    dest.display()
                ));
                let ro = MountAttrs::set(
                    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                );
                fs_instance(
                    "tmpfs",
                    "cgroup",
                    &[("size".into(), Some("0".into()))],
                    ro,
                    dest,
                )?
            }
            // devpts rejects gid= when that group is not mapped (single-id rootless maps).
            Err(MountError::Invalid { .. })
                if fstype == "devpts" && data.iter().any(|(k, _)| k == "gid") =>
            {
                self.notes
                    .push("devpts: gid not mapped, mounted without gid=".into());
                let data: Vec<_> = data.iter().filter(|(k, _)| k != "gid").cloned().collect();
                fs_instance(fstype, source, &data, attrs, dest)?
            }
            Err(e) => return Err(e),
        })
    }
}

impl Mounter for KernelMounter {
    fn apply(&mut self, root: BorrowedFd<'_>, step: &Step) -> Result<()> {
        match step {
            Step::Fs {
                dest,
                fstype,
                source,
                attrs,
                data,
            } => {
                let target = open_in_root(root, dest, Create::Dir)?;
                // Gocker supports cgroup v2 only: a "cgroup" mount (as in runc's default config.json)
                // becomes the cgroup2 view of the container's cgroup namespace, as crun does.
                let fstype = if fstype == "cgroup" {
                    self.notes
                        .push(format!("{}: cgroup mounted as cgroup2", dest.display()));
                    "cgroup2"
                } else {
                    fstype.as_str()
                };
                // An mqueue made by a privileged parent in an IPC namespace joined by path (a pod's,
                // which the container's own user namespace does not own). Only an mqueue instance
                // is taken: premade binds may share the destination (CRI binds /dev/shm over a tmpfs).
                let premade = self.premade.iter().position(|(d, fd)| {
                    d == dest
                        && fstype == "mqueue"
                        && rustix::fs::fstatfs(fd)
                            .is_ok_and(|s| u64::try_from(s.f_type).ok() == Some(MQUEUE_MAGIC))
                });
                let mnt = match premade.map(|i| self.premade.swap_remove(i).1) {
                    Some(m) => {
                        set_attrs(m.as_fd(), dest, *attrs, false, None)?;
                        m
                    }
                    None => self.instance(fstype, source, data, *attrs, dest)?,
                };
                attach_fd(mnt.as_fd(), target.as_fd(), dest)
            }
            Step::Bind {
                source,
                dest,
                recursive,
                attrs,
            } => self.bind(root, source, dest, *recursive, *attrs),
            Step::Symlink { target, link } => {
                let parent =
                    open_in_root(root, link.parent().unwrap_or(Path::new("/")), Create::Dir)?;
                let name = link.file_name().unwrap_or_default();
                match rustix::fs::symlinkat(target.as_str(), parent.as_fd(), name) {
                    Ok(()) | Err(Errno::EXIST) => Ok(()),
                    Err(e) => Err(MountError::sys("symlink", link, e)),
                }
            }
            Step::Mask { path } => {
                let target = match open_in_root(root, path, Create::Nothing) {
                    Ok(t) => t,
                    Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(()),
                    Err(e) => return Err(e),
                };
                let mnt = if is_dir(target.as_fd()) {
                    let ro = MountAttrs::set(
                        MOUNT_ATTR_RDONLY
                            | MOUNT_ATTR_NOSUID
                            | MOUNT_ATTR_NODEV
                            | MOUNT_ATTR_NOEXEC,
                    );
                    fs_instance(
                        "tmpfs",
                        "tmpfs",
                        &[("size".into(), Some("0".into()))],
                        ro,
                        path,
                    )?
                } else {
                    clone_tree(CWD, Path::new("/dev/null"), false)?
                };
                attach_fd(mnt.as_fd(), target.as_fd(), path)
            }
            Step::ReadOnly { path } => {
                let target = match open_in_root(root, path, Create::Nothing) {
                    Ok(t) => t,
                    Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(()),
                    Err(e) => return Err(e),
                };
                let mnt = clone_tree(target.as_fd(), Path::new(""), true)?;
                set_attrs(
                    mnt.as_fd(),
                    path,
                    MountAttrs::set(MOUNT_ATTR_RDONLY),
                    true,
                    None,
                )?;
                attach_fd(mnt.as_fd(), target.as_fd(), path)
            }
        }
    }
}
