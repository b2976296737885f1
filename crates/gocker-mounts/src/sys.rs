//! Thin wrappers over the mount API syscalls, and the kernel-backed [`Mounter`].

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags,
};

use crate::options::{
    MountAttrs, Propagation, MOUNT_ATTR_IDMAP, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
};
use crate::plan::{DeviceKind, DEVICE_ATTRS};
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

/// `mount_setattr(2)` with only a propagation type (`MS_SHARED`, `MS_SLAVE`, `MS_PRIVATE` or
/// `MS_UNBINDABLE`) for the mount `fd` is on, and with `recursive` for the mounts below it.
pub(crate) fn set_propagation(
    fd: BorrowedFd<'_>,
    what: &Path,
    propagation: Propagation,
    recursive: bool,
) -> Result<()> {
    let mut a = MountAttr {
        attr_set: 0,
        attr_clr: 0,
        propagation: propagation.ms_flag(),
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: as in set_attrs: a valid fd, an empty C string and a `struct mount_attr`.
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
            "mount_setattr (propagation)",
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
/// `f_type` of procfs (linux/magic.h).
const PROC_SUPER_MAGIC: u64 = 0x9fa0;

/// The [`Mounter`] that performs steps with real syscalls.
#[derive(Debug, Default)]
pub struct KernelMounter {
    /// Notes about fallbacks taken (for `--debug` output), e.g. sysfs bound instead of mounted.
    pub notes: Vec<String>,
    /// Detached mounts prepared elsewhere (e.g. idmapped by a privileged parent), used for the bind
    /// with the same destination instead of cloning its source.
    pub premade: Vec<(std::path::PathBuf, OwnedFd)>,
    /// Renew each premade mount once attached, so that the namespace's mountinfo lists the mounts
    /// in the order they were asked for (OCI runtimes are checked for it). Each renewal detaches
    /// a mount, which waits for an RCU grace period: callers that do not need the order leave it
    /// off.
    pub spec_order: bool,
}

impl KernelMounter {
    #[allow(clippy::too_many_arguments)]
    fn bind(
        &mut self,
        root: BorrowedFd<'_>,
        source: &Path,
        dest: &Path,
        recursive: bool,
        attrs: MountAttrs,
        propagation: Option<(Propagation, bool)>,
    ) -> Result<()> {
        let premade = self
            .premade
            .iter()
            .position(|(d, _)| d == dest)
            .map(|i| self.premade.swap_remove(i).1);
        let from_premade = premade.is_some();
        let src = match premade {
            Some(m) => m,
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
        attach_fd(src.as_fd(), target.as_fd(), dest)?;
        if from_premade && self.spec_order {
            renew(root, dest, recursive)?;
        }
        self.propagate(root, dest, propagation)
    }

    /// Sets the propagation an option asked for on the mount just attached at `dest`.
    fn propagate(
        &mut self,
        root: BorrowedFd<'_>,
        dest: &Path,
        propagation: Option<(Propagation, bool)>,
    ) -> Result<()> {
        let Some((kind, recursive)) = propagation else {
            return Ok(());
        };
        let mounted = open_in_root(root, dest, Create::Nothing)?;
        set_propagation(mounted.as_fd(), dest, kind, recursive)
    }

    /// A device node of `linux.devices` at `dest`: a FIFO is made in place; a character or block
    /// device is the host's node of that number, bound (at the same path on the host, or under
    /// `/dev/char` or `/dev/block`), or made in place where that is allowed (not in a user
    /// namespace: then the error names the device). A node prepared by a privileged parent
    /// ([`KernelMounter::premade`], by destination) is bound as it is.
    #[allow(clippy::too_many_arguments)]
    fn device(
        &mut self,
        root: BorrowedFd<'_>,
        dest: &Path,
        kind: DeviceKind,
        major: u64,
        minor: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<()> {
        if let Some(i) = self.premade.iter().position(|(d, _)| d == dest) {
            let m = self.premade.swap_remove(i).1;
            let target = open_in_root(root, dest, Create::File)?;
            return attach_fd(m.as_fd(), target.as_fd(), dest);
        }
        let number = |n: u64| {
            u32::try_from(n).map_err(|_| MountError::Invalid {
                dest: dest.to_owned(),
                reason: format!("device number {n} is out of range"),
            })
        };
        let rdev = rustix::fs::makedev(number(major)?, number(minor)?);
        let node = Node {
            kind,
            rdev,
            mode,
            uid,
            gid,
        };
        if kind == DeviceKind::Fifo {
            return node.make(root, dest);
        }
        let looked = match find_host_node(dest, &node, major, minor) {
            Ok((candidate, st)) => {
                let src = clone_tree(CWD, &candidate, false)?;
                set_attrs(
                    src.as_fd(),
                    &candidate,
                    MountAttrs::set(DEVICE_ATTRS),
                    false,
                    None,
                )?;
                if mode.is_some_and(|m| m != st.st_mode & 0o7777) {
                    self.notes.push(format!(
                        "{}: bound the host's node {}, whose mode {:o} is kept",
                        dest.display(),
                        candidate.display(),
                        st.st_mode & 0o7777
                    ));
                }
                let target = open_in_root(root, dest, Create::File)?;
                return attach_fd(src.as_fd(), target.as_fd(), dest);
            }
            Err(looked) => looked,
        };
        match node.make(root, dest) {
            Err(e) if e.errno() == Some(libc::EPERM) => Err(MountError::Invalid {
                dest: dest.to_owned(),
                reason: format!(
                    "the host has no {} {major}:{minor} device node to bind ({}), and a user \
                     namespace cannot create one",
                    kind.letter(),
                    looked.join(", ")
                ),
            }),
            r => r,
        }
    }

    /// A new instance of `fstype` for `dest`, with the fallbacks a user namespace needs.
    fn instance(
        &mut self,
        fstype: &str,
        source: &str,
        data: &[(String, Option<String>)],
        attrs: MountAttrs,
        dest: &Path,
        host_instance: Option<&Path>,
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
            // A PID or IPC namespace the container shares with the runtime belongs to the
            // runtime's user namespace: no new proc or mqueue instance for it can be made from
            // the container's. The runtime's own instance shows that namespace, so it is bound
            // (as podman does for --pid=host); masked and read-only paths apply on top as usual.
            Err(e) if e.errno() == Some(libc::EPERM) && host_instance.is_some() => {
                let host = host_instance.expect("checked");
                let m = clone_tree(CWD, host, true).map_err(|e2| MountError::Invalid {
                    dest: dest.to_owned(),
                    reason: format!(
                        "{e} (the namespace is the runtime's, which the container's user \
                         namespace does not own), and the runtime's own instance cannot be \
                         bound instead: {e2}"
                    ),
                })?;
                let magic = rustix::fs::fstatfs(&m)
                    .ok()
                    .and_then(|s| u64::try_from(s.f_type).ok());
                let want = if fstype == "mqueue" {
                    MQUEUE_MAGIC
                } else {
                    PROC_SUPER_MAGIC
                };
                if magic != Some(want) {
                    return Err(MountError::Invalid {
                        dest: dest.to_owned(),
                        reason: format!(
                            "{e}; and {} on the host is no {fstype} instance to bind instead",
                            host.display()
                        ),
                    });
                }
                self.notes.push(format!(
                    "{}: {e}; the namespace is the runtime's: bound its {}",
                    dest.display(),
                    host.display()
                ));
                if attrs.set != 0 || attrs.clr != 0 {
                    set_attrs(m.as_fd(), dest, attrs, true, None)?;
                }
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

/// For a privileged parent that makes the device nodes a container's host lacks.
impl KernelMounter {
    /// The host's node of that type and number that [`KernelMounter`] binds for a device at `dest`
    /// when none is premade (at `dest` on the host, or under `/dev/char` or `/dev/block`), if any.
    pub fn host_device_node(
        dest: &Path,
        kind: DeviceKind,
        major: u64,
        minor: u64,
    ) -> Option<std::path::PathBuf> {
        let rdev = rustix::fs::makedev(u32::try_from(major).ok()?, u32::try_from(minor).ok()?);
        let node = Node {
            kind,
            rdev,
            mode: None,
            uid: None,
            gid: None,
        };
        find_host_node(dest, &node, major, minor)
            .ok()
            .map(|(p, _)| p)
    }

    /// For a privileged parent (root in the initial user namespace): the character or block device
    /// of `linux.devices` at `dest` ([`crate::Step::Device`]) made on a detached tmpfs of its own
    /// ([`device_node`]), with the spec's permission bits (`0666` when it names none) and `owner`
    /// in host ids (the spec's `uid`/`gid`, default 0, mapped through the container's id maps), for
    /// [`KernelMounter::premade`] under `dest`. Nothing is made at `dest` or anywhere on a path: the
    /// container's side binds the node, resolving `dest` in its own root. Errors name `dest`, the
    /// type and number, the cause, and whether the host has a node of that number to bind instead.
    pub fn premade_device(
        dest: &Path,
        kind: DeviceKind,
        major: u64,
        minor: u64,
        mode: Option<u32>,
        owner: (u32, u32),
    ) -> Result<OwnedFd> {
        let device = format!("{} {major}:{minor}", kind.letter());
        let invalid = |reason: String| MountError::Invalid {
            dest: dest.to_owned(),
            reason: format!("{device}: {reason}"),
        };
        if kind == DeviceKind::Fifo {
            return Err(invalid("a FIFO is made in place, not premade".into()));
        }
        let number = |n: u64| {
            u32::try_from(n).map_err(|_| invalid(format!("device number {n} is out of range")))
        };
        let (ma, mi) = (number(major)?, number(minor)?);
        device_node(kind, ma, mi, mode.unwrap_or(0o666) & 0o7777, Some(owner)).map_err(|e| {
            let why = if e.errno() == Some(libc::EINVAL) {
                " (copying a node out of a detached mount needs Linux 6.15)"
            } else {
                ""
            };
            let host = match Self::host_device_node(dest, kind, major, minor) {
                Some(p) => format!("the host's node {} can be bound instead", p.display()),
                None => "the host has no such node to bind instead".into(),
            };
            invalid(format!(
                "the runtime could not make the node: {e}{why}; {host}"
            ))
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
                propagation,
                host_instance,
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
                    None => {
                        self.instance(fstype, source, data, *attrs, dest, host_instance.as_deref())?
                    }
                };
                attach_fd(mnt.as_fd(), target.as_fd(), dest)?;
                self.propagate(root, dest, *propagation)
            }
            Step::Bind {
                source,
                dest,
                recursive,
                attrs,
                propagation,
            } => self.bind(root, source, dest, *recursive, *attrs, *propagation),
            Step::RootPropagation {
                propagation,
                recursive,
            } => set_propagation(root, Path::new("/"), *propagation, *recursive),
            Step::Device {
                dest,
                kind,
                major,
                minor,
                mode,
                uid,
                gid,
            } => self.device(root, dest, *kind, *major, *minor, *mode, *uid, *gid),
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

/// Replaces the mount just attached at `dest` (a premade one) by a copy made now, best effort.
/// A namespace's mountinfo lists its mounts in the order they were made, and the spec's mounts
/// must appear in the spec's order; a mount prepared by a privileged parent was made before all
/// the others. The kernel lets a process copy only a mount of its own namespace, so the copy is
/// taken once the premade mount is attached, which is then detached from under it. Where any of
/// that is refused, the premade mount stays; once it is detached, the copy must take its place.
fn renew(root: BorrowedFd<'_>, dest: &Path, recursive: bool) -> Result<()> {
    let Ok(attached) = open_in_root(root, dest, Create::Nothing) else {
        return Ok(());
    };
    let Ok(copy) = clone_tree(attached.as_fd(), Path::new(""), recursive) else {
        return Ok(());
    };
    // The mount is named by its own descriptor: no path is walked again.
    let name = format!("/proc/self/fd/{}", attached.as_raw_fd());
    if rustix::mount::unmount(name.as_str(), UnmountFlags::DETACH).is_err() {
        return Ok(());
    }
    // From here the copy must take the premade mount's place.
    let target = open_in_root(root, dest, Create::Nothing)?;
    attach_fd(copy.as_fd(), target.as_fd(), dest)
}

/// A device node on a tiny tmpfs of its own, as a detached bind mount of just that node: for a
/// privileged parent (root in the initial user namespace, which alone may create device nodes)
/// to hand to a container whose host lacks the device, as the [`KernelMounter::premade`] entry for
/// the device's destination. `owner` is in host ids (the container's ids mapped). The tmpfs is
/// never attached anywhere; copying a node out of a detached mount needs Linux 6.15.
pub fn device_node(
    kind: DeviceKind,
    major: u32,
    minor: u32,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<OwnedFd> {
    let what = Path::new("device node");
    let fs = fs_instance(
        "tmpfs",
        "gocker-dev",
        &[
            ("size".into(), Some("4k".into())),
            ("mode".into(), Some("711".into())),
        ],
        MountAttrs::set(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC),
        what,
    )?;
    let node = Node {
        kind,
        rdev: rustix::fs::makedev(major, minor),
        mode: Some(mode),
        uid: owner.map(|o| o.0),
        gid: owner.map(|o| o.1),
    };
    node.make(fs.as_fd(), Path::new("/node"))?;
    let m = rustix::mount::open_tree(
        fs.as_fd(),
        "node",
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| MountError::sys("open_tree", what, e))?;
    Ok(m)
}

/// The host's node of `kind` and number `major:minor` for the device at `dest`: the node at `dest`
/// itself on the host, else `/dev/char/MAJOR:MINOR` or `/dev/block/MAJOR:MINOR`. A node of another
/// type or number never stands in. `Err` lists what was looked at, for the caller's error.
fn find_host_node(
    dest: &Path,
    node: &Node,
    major: u64,
    minor: u64,
) -> std::result::Result<(std::path::PathBuf, rustix::fs::Stat), Vec<String>> {
    let by_number = format!(
        "/dev/{}/{major}:{minor}",
        if node.kind == DeviceKind::Char {
            "char"
        } else {
            "block"
        }
    );
    let mut looked = Vec::new();
    for candidate in [dest, Path::new(&by_number)] {
        match rustix::fs::stat(candidate) {
            Ok(st) if node.is(&st) => return Ok((candidate.to_owned(), st)),
            Ok(st) => looked.push(format!("{} is {}", candidate.display(), describe(&st))),
            Err(Errno::NOENT) => looked.push(format!("no {}", candidate.display())),
            Err(e) => looked.push(format!("{}: {e}", candidate.display())),
        }
    }
    Err(looked)
}

/// A device node to make: its type, number, permission bits and owner.
struct Node {
    kind: DeviceKind,
    rdev: rustix::fs::Dev,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
}

impl Node {
    fn file_type(&self) -> rustix::fs::FileType {
        match self.kind {
            DeviceKind::Char => rustix::fs::FileType::CharacterDevice,
            DeviceKind::Block => rustix::fs::FileType::BlockDevice,
            DeviceKind::Fifo => rustix::fs::FileType::Fifo,
        }
    }

    /// `st` is a node of this type (and number, for a device).
    fn is(&self, st: &rustix::fs::Stat) -> bool {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == self.file_type()
            && (self.kind == DeviceKind::Fifo || st.st_rdev == self.rdev)
    }

    /// `mknodat` at `dest` in the root, then the mode (not reduced by the umask) and owner. An
    /// existing node of the same type and number is taken as it is (as runc does).
    fn make(&self, root: BorrowedFd<'_>, dest: &Path) -> Result<()> {
        let parent = open_in_root(root, dest.parent().unwrap_or(Path::new("/")), Create::Dir)?;
        let name = dest.file_name().ok_or_else(|| MountError::Invalid {
            dest: dest.to_owned(),
            reason: "a device path needs a file name".into(),
        })?;
        let mode = self.mode.unwrap_or(0o666);
        match rustix::fs::mknodat(
            parent.as_fd(),
            name,
            self.file_type(),
            rustix::fs::Mode::from_raw_mode(mode),
            self.rdev,
        ) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let st =
                    rustix::fs::statat(parent.as_fd(), name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| MountError::sys("stat", dest, e))?;
                if self.is(&st) {
                    return Ok(());
                }
                return Err(MountError::Invalid {
                    dest: dest.to_owned(),
                    reason: format!("exists and is {}", describe(&st)),
                });
            }
            Err(e) => return Err(MountError::sys("mknod", dest, e)),
        }
        rustix::fs::chmodat(
            parent.as_fd(),
            name,
            rustix::fs::Mode::from_raw_mode(mode),
            rustix::fs::AtFlags::empty(),
        )
        .map_err(|e| MountError::sys("chmod", dest, e))?;
        if self.uid.is_some() || self.gid.is_some() {
            rustix::fs::chownat(
                parent.as_fd(),
                name,
                self.uid.map(rustix::fs::Uid::from_raw),
                self.gid.map(rustix::fs::Gid::from_raw),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| MountError::sys("chown", dest, e))?;
        }
        Ok(())
    }
}

/// `a character device 1:3`, `a directory`, ...
fn describe(st: &rustix::fs::Stat) -> String {
    use rustix::fs::FileType as F;
    let (major, minor) = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
    match F::from_raw_mode(st.st_mode) {
        F::CharacterDevice => format!("a character device {major}:{minor}"),
        F::BlockDevice => format!("a block device {major}:{minor}"),
        F::Fifo => "a FIFO".into(),
        F::Directory => "a directory".into(),
        F::RegularFile => "a regular file".into(),
        F::Symlink => "a symbolic link".into(),
        F::Socket => "a socket".into(),
        F::Unknown => "of an unknown type".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_node_the_host_lacks_is_made_on_a_detached_tmpfs() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root (CAP_MKNOD in the initial user namespace)");
            return;
        }
        let m = match device_node(DeviceKind::Char, 10, 666, 0o640, Some((123, 456))) {
            Ok(m) => m,
            // Copying out of a detached mount needs Linux 6.15.
            Err(e) if e.errno() == Some(libc::EINVAL) => {
                eprintln!("skipped: {e} (Linux 6.15 is needed)");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let st = rustix::fs::fstat(&m).unwrap();
        assert_eq!(
            rustix::fs::FileType::from_raw_mode(st.st_mode),
            rustix::fs::FileType::CharacterDevice
        );
        assert_eq!(
            (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev)),
            (10, 666)
        );
        assert_eq!(st.st_mode & 0o7777, 0o640);
        assert_eq!((st.st_uid, st.st_gid), (123, 456));
    }

    #[test]
    fn the_host_node_of_a_device_is_found_by_path_or_number_and_never_by_path_alone() {
        use std::path::PathBuf;
        let found = |dest: &str, kind, major, minor| {
            KernelMounter::host_device_node(Path::new(dest), kind, major, minor)
        };
        assert_eq!(
            found("/dev/null", DeviceKind::Char, 1, 3),
            Some(PathBuf::from("/dev/null"))
        );
        // Another path: the host's node of that number, where the host has /dev/char.
        if Path::new("/dev/char/1:3").exists() {
            assert_eq!(
                found("/dev/gocker-no-such-node", DeviceKind::Char, 1, 3),
                Some(PathBuf::from("/dev/char/1:3"))
            );
        }
        // The right path with another number or type is not it (1:5 is /dev/zero, found by its
        // number where the host has /dev/char).
        let zero = Path::new("/dev/char/1:5");
        assert_eq!(
            found("/dev/null", DeviceKind::Char, 1, 5),
            zero.exists().then(|| zero.to_owned())
        );
        assert_eq!(found("/dev/null", DeviceKind::Block, 1, 3), None);
        assert_eq!(found("/dev/gocker-test", DeviceKind::Char, 10, 666), None);
        assert_eq!(found("/dev/null", DeviceKind::Char, 1 << 40, 3), None);
    }

    #[test]
    fn a_premade_device_that_cannot_be_made_is_an_error_naming_it() {
        let e = KernelMounter::premade_device(
            Path::new("/dev/test1"),
            DeviceKind::Char,
            10,
            1 << 33,
            None,
            (0, 0),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/dev/test1") && e.contains("c 10:8589934592") && e.contains("out of range"),
            "{e}"
        );
        let e = KernelMounter::premade_device(
            Path::new("/dev/p"),
            DeviceKind::Fifo,
            0,
            0,
            None,
            (0, 0),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/dev/p") && e.contains("FIFO"), "{e}");
        if rustix::process::geteuid().is_root() {
            return;
        }
        // Without CAP_MKNOD in the initial user namespace: the error says so, and what the host has.
        let e = KernelMounter::premade_device(
            Path::new("/dev/test1"),
            DeviceKind::Char,
            10,
            666,
            Some(0o600),
            (0, 0),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/dev/test1")
                && e.contains("c 10:666")
                && e.contains("could not make the node")
                && e.contains("the host has no such node"),
            "{e}"
        );
    }
}
