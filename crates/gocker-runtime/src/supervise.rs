//! ring1 as the seccomp supervisor: it holds the notification descriptor that ring2 sent over
//! SCM_RIGHTS and answers each notification in a forked helper, so that a slow one never blocks
//! the others (ring1 stays single-threaded, so forking is safe).
//!
//! The one notified call of the built-in profiles is `mount`: a `proc`, `sysfs` (always read-only)
//! or `tmpfs` mount requested by container root is carried out on its behalf (like Gitpod's
//! workspacekit does for docker-in-workspace); everything else gets EPERM. The filesystem is
//! created with fsopen/fsconfig/fsmount from ring1's context — whose mount namespace has a fully
//! visible proc and sysfs, which the kernel requires for mounting them in a user namespace —
//! after joining the caller's PID (and network) namespace, so proc shows the container's
//! processes. The container's masked and read-only paths are applied to the new tree, then the
//! helper enters the caller's mount namespace, root and working directory, resolves the target
//! there and attaches the tree with move_mount.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use gocker_ns::{Namespace, NamespaceSet};
use gocker_seccomp::notify::{string_arg, Listener, Notification, ProcessTarget, Response, Target};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags};
use rustix::process::{Pid, WaitOptions};

use crate::channel::Channel;
use crate::sys::exit;
use crate::{ContainerConfig, ExitStatus, Result, RuntimeError};

const MS_RDONLY: u64 = libc::MS_RDONLY;
const MS_NOSUID: u64 = libc::MS_NOSUID;
const MS_NODEV: u64 = libc::MS_NODEV;
const MS_NOEXEC: u64 = libc::MS_NOEXEC;
const MS_NOATIME: u64 = libc::MS_NOATIME;
const MS_NODIRATIME: u64 = libc::MS_NODIRATIME;
const MS_RELATIME: u64 = libc::MS_RELATIME;
const MS_STRICTATIME: u64 = libc::MS_STRICTATIME;
/// The magic number old programs put in the upper 16 bits of the flags.
const MS_MGC_MSK: u64 = 0xffff_0000;
const MS_MGC_VAL: u64 = 0xC0ED_0000;
/// Anything that is not a new mount: bind, move, remount, propagation changes.
const NOT_A_NEW_MOUNT: u64 = libc::MS_REMOUNT
    | libc::MS_BIND
    | libc::MS_MOVE
    | libc::MS_SHARED
    | libc::MS_PRIVATE
    | libc::MS_SLAVE
    | libc::MS_UNBINDABLE;
/// Flags a new mount may carry (attributes and ignorable ones).
const KNOWN: u64 = MS_RDONLY
    | MS_NOSUID
    | MS_NODEV
    | MS_NOEXEC
    | MS_NOATIME
    | MS_NODIRATIME
    | MS_RELATIME
    | MS_STRICTATIME
    | libc::MS_SILENT
    | libc::MS_REC
    | libc::MS_LAZYTIME;

/// Filesystems the supervisor mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fs {
    Proc,
    Sysfs,
    Tmpfs,
}

impl Fs {
    fn name(self) -> &'static str {
        match self {
            Fs::Proc => "proc",
            Fs::Sysfs => "sysfs",
            Fs::Tmpfs => "tmpfs",
        }
    }
}

/// A `mount(2)` call as read from the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountRequest {
    pub fstype: Option<String>,
    pub target: Option<String>,
    pub flags: u64,
    pub data: Option<String>,
}

/// What to do on the caller's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountPlan {
    pub fs: Fs,
    pub target: String,
    pub attrs: MountAttrFlags,
    /// fsconfig options: `key` or `key=value`.
    pub options: Vec<(String, Option<String>)>,
}

impl MountRequest {
    /// Reads mount(source, target, fstype, flags, data) from the caller, re-checking after each
    /// read that the notification is still pending.
    pub(crate) fn read(n: &Notification, t: &dyn Target) -> gocker_seccomp::Result<MountRequest> {
        let fstype = string_arg(t, n.args[2], 64)?;
        let target = string_arg(t, n.args[1], libc::PATH_MAX as usize)?;
        let flags = n.args[3];
        let data = match fstype.as_deref() {
            Some("proc") | Some("tmpfs") => string_arg(t, n.args[4], 4096)?,
            _ => None,
        };
        Ok(MountRequest {
            fstype,
            target,
            flags,
            data,
        })
    }
}

/// The policy, pure: which requests are carried out and how. `caller_euid` is the caller's
/// effective uid in the container (only container root may mount, as the kernel would demand).
pub(crate) fn decide(
    req: &MountRequest,
    caller_euid: u32,
) -> std::result::Result<MountPlan, Errno> {
    let mut flags = req.flags;
    if flags & MS_MGC_MSK == MS_MGC_VAL {
        flags &= !MS_MGC_MSK;
    }
    if caller_euid != 0 || flags & NOT_A_NEW_MOUNT != 0 || flags & !KNOWN != 0 {
        return Err(Errno::PERM);
    }
    let fs = match req.fstype.as_deref() {
        Some("proc") => Fs::Proc,
        Some("sysfs") => Fs::Sysfs,
        Some("tmpfs") => Fs::Tmpfs,
        _ => return Err(Errno::PERM),
    };
    let target = req
        .target
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or(Errno::NOENT)?;
    let mut attrs = MountAttrFlags::empty();
    for (ms, attr) in [
        (MS_RDONLY, MountAttrFlags::MOUNT_ATTR_RDONLY),
        (MS_NOSUID, MountAttrFlags::MOUNT_ATTR_NOSUID),
        (MS_NODEV, MountAttrFlags::MOUNT_ATTR_NODEV),
        (MS_NOEXEC, MountAttrFlags::MOUNT_ATTR_NOEXEC),
        (MS_NOATIME, MountAttrFlags::MOUNT_ATTR_NOATIME),
        (MS_NODIRATIME, MountAttrFlags::MOUNT_ATTR_NODIRATIME),
        (MS_STRICTATIME, MountAttrFlags::MOUNT_ATTR_STRICTATIME),
    ] {
        if flags & ms != 0 {
            attrs |= attr;
        }
    }
    // proc and sysfs: as restrictive as the container's own (and the kernel demands at least the
    // visible instance's nosuid/nodev/noexec in a user namespace); sysfs is always read-only.
    let locked = MountAttrFlags::MOUNT_ATTR_NOSUID
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOEXEC;
    match fs {
        Fs::Proc => attrs |= locked,
        Fs::Sysfs => attrs |= locked | MountAttrFlags::MOUNT_ATTR_RDONLY,
        Fs::Tmpfs => {}
    }
    let mut options = Vec::new();
    if fs != Fs::Sysfs {
        for o in req
            .data
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|o| !o.is_empty())
        {
            let (k, v) = match o.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (o.to_owned(), None),
            };
            options.push((k, v));
        }
    }
    Ok(MountPlan {
        fs,
        target,
        attrs,
        options,
    })
}

fn ring_err(stage: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Ring {
        stage: stage.to_owned(),
        message: e.to_string(),
    }
}

/// ring1's loop after starting ring2: serves notifications until ring2 exits; returns its status.
/// With `lift`, also accepts lift connections (checked, then each handled in a forked child, see
/// [`crate::lift`]).
pub(crate) fn serve(
    cfg: &ContainerConfig,
    ring2: Pid,
    ring2_pidfd: BorrowedFd<'_>,
    sup: Channel,
    mut lift: Option<crate::lift::Server>,
) -> Result<ExitStatus> {
    let mut sup = Some(sup);
    let mut listener: Option<Listener> = None;
    loop {
        // Reap ring2 and finished helpers (any child: ring2 may be in another process group after
        // setsid for a terminal, which waitpid(0) would not see).
        loop {
            match rustix::process::wait(WaitOptions::NOHANG) {
                Ok(Some((pid, st))) if pid == ring2 => return Ok(ExitStatus::from_wait(st)),
                Ok(Some(_)) => continue,
                Ok(None) | Err(Errno::CHILD) => break,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(ring_err("wait for ring2", e)),
            }
        }
        let mut fds = vec![PollFd::from_borrowed_fd(ring2_pidfd, PollFlags::IN)];
        if let Some(s) = &sup {
            fds.push(PollFd::from_borrowed_fd(s.as_fd(), PollFlags::IN));
        }
        if let Some(l) = &listener {
            fds.push(PollFd::from_borrowed_fd(l.as_fd(), PollFlags::IN));
        }
        let lift_at = lift.as_ref().map(|s| {
            fds.push(PollFd::from_borrowed_fd(s.as_fd(), PollFlags::IN));
            fds.len() - 1
        });
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(ring_err("poll ring2 and the seccomp listener", e)),
        }
        let revents: Vec<PollFlags> = fds.iter().map(|f| f.revents()).collect();
        drop(fds);
        if let (Some(server), Some(i)) = (&mut lift, lift_at) {
            if !revents[i].is_empty() {
                server.accept(ring2_pidfd);
            }
        }
        // Indexes into `revents` as polled (the states below change while handling them).
        let sup_at = sup.as_ref().map(|_| 1);
        let listener_at = listener.as_ref().map(|_| 1 + usize::from(sup.is_some()));
        if let Some(i) = sup_at {
            if !revents[i].is_empty() {
                match sup
                    .as_ref()
                    .expect("checked")
                    .recv_now::<String>("ring2's seccomp listener")?
                {
                    Some((msg, mut got)) if msg == crate::proto::LISTENER_MSG && got.len() == 1 => {
                        listener = Some(Listener::new(got.pop().expect("one")));
                        sup = None;
                    }
                    Some((msg, _)) => {
                        return Err(ring_err(
                            "ring1",
                            format!("unexpected message from ring2: {msg:?}"),
                        ))
                    }
                    None => sup = None,
                }
            }
        }
        if let (Some(l), Some(i)) = (&listener, listener_at) {
            let r = revents[i];
            if r.contains(PollFlags::IN) {
                match l.recv() {
                    Ok(n) => spawn_handler(cfg, l, n),
                    // The caller died between poll and receive.
                    Err(e) if e.errno() == Some(libc::ENOENT) || e.errno() == Some(libc::EINTR) => {
                    }
                    Err(e) => return Err(RuntimeError::from(e)),
                }
            } else if r.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) {
                // Every filtered process is gone.
                listener = None;
            }
        }
    }
}

/// Answers one notification in a child of ring1.
fn spawn_handler(cfg: &ContainerConfig, l: &Listener, n: Notification) {
    // SAFETY: ring1 is single-threaded; the child only runs this handler and exits.
    match unsafe { libc::fork() } {
        0 => {
            let _ = rustix::process::set_parent_process_death_signal(Some(
                rustix::process::Signal::KILL,
            ));
            let resp = match handle(cfg, l, &n) {
                Ok(()) => Response::Value(0),
                Err(e) => Response::Errno(e.raw_os_error()),
            };
            if let Err(e) = l.respond(n.id, resp) {
                tracing::debug!("seccomp supervisor: {e}");
            }
            exit(0)
        }
        -1 => {
            // Cannot fork: answer here rather than leave the caller blocked.
            let _ = l.respond(n.id, Response::Errno(libc::EAGAIN));
        }
        _ => {}
    }
}

fn caller_euid(pid: u32) -> std::result::Result<u32, Errno> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|_| Errno::SRCH)?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .ok_or(Errno::SRCH)
}

fn errno_of(e: &gocker_seccomp::SeccompError) -> Errno {
    Errno::from_raw_os_error(e.errno().unwrap_or(libc::EPERM))
}

fn handle(cfg: &ContainerConfig, l: &Listener, n: &Notification) -> std::result::Result<(), Errno> {
    if n.arch != gocker_seccomp::notify::native_audit_arch() || n.nr != libc::SYS_mount as i32 {
        return Err(Errno::PERM);
    }
    let target = ProcessTarget::open(l, n).map_err(|e| errno_of(&e))?;
    let euid = caller_euid(n.pid)?;
    let req = MountRequest::read(n, &target).map_err(|e| errno_of(&e))?;
    let plan = decide(&req, euid)?;
    // Handles on the caller, each confirmed to belong to it by re-checking the notification.
    let pid = Pid::from_raw(n.pid as i32).ok_or(Errno::SRCH)?;
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
    let o_path =
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC;
    let root = rustix::fs::open(
        format!("/proc/{}/root", n.pid),
        o_path,
        rustix::fs::Mode::empty(),
    )?;
    let cwd = rustix::fs::open(
        format!("/proc/{}/cwd", n.pid),
        o_path,
        rustix::fs::Mode::empty(),
    )?;
    if !target.still_valid() {
        return Err(Errno::NOENT);
    }
    let mut join = NamespaceSet::EMPTY.with(Namespace::Pid);
    if plan.fs == Fs::Sysfs {
        join = join.with(Namespace::Net);
    }
    gocker_ns::enter_pidfd(pidfd.as_fd(), join).map_err(|_| Errno::PERM)?;
    let (masked, readonly) = container_masks(cfg, plan.fs);
    // Joining a PID namespace applies to children: the filesystem is created in one.
    // SAFETY: this helper is single-threaded.
    match unsafe { libc::fork() } {
        0 => {
            let _ = rustix::process::set_parent_process_death_signal(Some(
                rustix::process::Signal::KILL,
            ));
            let code = match perform(
                &plan,
                pidfd.as_fd(),
                root.as_fd(),
                cwd.as_fd(),
                &masked,
                &readonly,
            ) {
                Ok(()) => 0,
                Err(e) => e.raw_os_error(),
            };
            exit(code)
        }
        -1 => Err(Errno::AGAIN),
        child => {
            let child = Pid::from_raw(child).expect("positive");
            loop {
                match rustix::process::waitpid(Some(child), WaitOptions::empty()) {
                    Ok(Some((_, st))) => {
                        return match st.exit_status() {
                            Some(0) => Ok(()),
                            Some(e) => Err(Errno::from_raw_os_error(e)),
                            None => Err(Errno::PERM),
                        }
                    }
                    Err(Errno::INTR) | Ok(None) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// The spec's masked and read-only paths inside the new filesystem, relative to its root.
fn container_masks(cfg: &ContainerConfig, fs: Fs) -> (Vec<String>, Vec<String>) {
    let prefix = match fs {
        Fs::Proc => "/proc/",
        Fs::Sysfs => "/sys/",
        Fs::Tmpfs => return (Vec::new(), Vec::new()),
    };
    let rel = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter()
            .flatten()
            .filter_map(|p| p.strip_prefix(prefix))
            .filter(|p| !p.is_empty() && !p.contains(".."))
            .map(str::to_owned)
            .collect()
    };
    let linux = cfg.spec.linux().as_ref();
    (
        rel(&linux.and_then(|l| l.masked_paths().clone())),
        rel(&linux.and_then(|l| l.readonly_paths().clone())),
    )
}

/// Where the new tree is assembled, in a private copy of ring1's mount namespace.
const STAGING: &str = "/tmp";

/// In the grandchild (inside the caller's PID namespace, still in ring1's mount namespace).
fn perform(
    plan: &MountPlan,
    pidfd: BorrowedFd<'_>,
    root: BorrowedFd<'_>,
    cwd: BorrowedFd<'_>,
    masked: &[String],
    readonly: &[String],
) -> std::result::Result<(), Errno> {
    let fs = rustix::mount::fsopen(plan.fs.name(), FsOpenFlags::FSOPEN_CLOEXEC)?;
    for (k, v) in &plan.options {
        match v {
            Some(v) => rustix::mount::fsconfig_set_string(&fs, k.as_str(), v.as_str())?,
            None => rustix::mount::fsconfig_set_flag(&fs, k.as_str())?,
        }
    }
    rustix::mount::fsconfig_create(&fs)?;
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, plan.attrs)?;
    let tree = if masked.is_empty() && readonly.is_empty() {
        mnt
    } else {
        masked_tree(mnt, masked, readonly)?
    };
    gocker_ns::enter_pidfd(pidfd, NamespaceSet::EMPTY.with(Namespace::Mount))
        .map_err(|_| Errno::PERM)?;
    // The caller's view: its root and working directory (the target may be relative, and
    // symlinks in it resolve against the caller's root, as for its own mount(2)).
    rustix::process::fchdir(root)?;
    rustix::process::chroot(".")?;
    rustix::process::fchdir(cwd)?;
    let target = rustix::fs::open(
        plan.target.as_str(),
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    rustix::mount::move_mount(
        &tree,
        "",
        &target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
}

/// Applies masks to a detached filesystem: attached at [`STAGING`] in a private mount namespace,
/// masked (`/dev/null` over files, an empty read-only tmpfs over directories) and made read-only
/// where the container's own are, then cloned recursively as a new detached tree.
fn masked_tree(
    mnt: OwnedFd,
    masked: &[String],
    readonly: &[String],
) -> std::result::Result<OwnedFd, Errno> {
    gocker_ns::unshare(NamespaceSet::EMPTY.with(Namespace::Mount)).map_err(|_| Errno::PERM)?;
    let cwd = rustix::fs::CWD;
    rustix::mount::move_mount(
        &mnt,
        "",
        cwd,
        STAGING,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    let clone_flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    for rel in masked {
        let path = format!("{STAGING}/{rel}");
        let Ok(st) = rustix::fs::lstat(path.as_str()) else {
            continue;
        };
        let cover =
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
                let t = rustix::mount::fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)?;
                rustix::mount::fsconfig_create(&t)?;
                rustix::mount::fsmount(
                    &t,
                    FsMountFlags::FSMOUNT_CLOEXEC,
                    MountAttrFlags::MOUNT_ATTR_RDONLY
                        | MountAttrFlags::MOUNT_ATTR_NOSUID
                        | MountAttrFlags::MOUNT_ATTR_NODEV
                        | MountAttrFlags::MOUNT_ATTR_NOEXEC,
                )?
            } else {
                rustix::mount::open_tree(cwd, "/dev/null", clone_flags)?
            };
        rustix::mount::move_mount(
            &cover,
            "",
            cwd,
            path.as_str(),
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )?;
    }
    for rel in readonly {
        let path = format!("{STAGING}/{rel}");
        if rustix::fs::lstat(path.as_str()).is_err() {
            continue;
        }
        let m = rustix::mount::open_tree(
            cwd,
            path.as_str(),
            clone_flags | OpenTreeFlags::AT_RECURSIVE,
        )?;
        mount_setattr_rdonly(m.as_fd())?;
        rustix::mount::move_mount(
            &m,
            "",
            cwd,
            path.as_str(),
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )?;
    }
    rustix::mount::open_tree(cwd, STAGING, clone_flags | OpenTreeFlags::AT_RECURSIVE)
}

fn mount_setattr_rdonly(m: BorrowedFd<'_>) -> std::result::Result<(), Errno> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: MountAttrFlags::MOUNT_ATTR_RDONLY.bits() as u64,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    // SAFETY: mount_setattr reads a valid mount_attr of the size passed; the path is the empty
    // C string with AT_EMPTY_PATH, so it acts on the detached tree behind `m`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            std::os::fd::AsRawFd::as_raw_fd(&m),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r == -1 {
        return Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EPERM),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(fstype: &str, target: &str, flags: u64, data: Option<&str>) -> MountRequest {
        MountRequest {
            fstype: Some(fstype.into()),
            target: Some(target.into()),
            flags,
            data: data.map(Into::into),
        }
    }

    #[test]
    fn proc_sysfs_tmpfs_are_performed_others_refused() {
        let p = decide(&req("proc", "/mnt", 0, None), 0).unwrap();
        assert_eq!(p.fs, Fs::Proc);
        assert!(p.attrs.contains(
            MountAttrFlags::MOUNT_ATTR_NOSUID
                | MountAttrFlags::MOUNT_ATTR_NOEXEC
                | MountAttrFlags::MOUNT_ATTR_NODEV
        ));
        let s = decide(&req("sysfs", "/sys2", 0, Some("anything")), 0).unwrap();
        assert!(
            s.attrs.contains(MountAttrFlags::MOUNT_ATTR_RDONLY),
            "sysfs is always read-only"
        );
        assert!(s.options.is_empty());
        let t = decide(
            &req(
                "tmpfs",
                "/mnt",
                MS_MGC_VAL | MS_NOSUID,
                Some("size=1m,mode=755,noswap"),
            ),
            0,
        )
        .unwrap();
        assert_eq!(t.attrs, MountAttrFlags::MOUNT_ATTR_NOSUID);
        assert_eq!(
            t.options,
            [
                ("size".into(), Some("1m".into())),
                ("mode".into(), Some("755".into())),
                ("noswap".into(), None)
            ]
        );
        assert_eq!(decide(&req("ext4", "/mnt", 0, None), 0), Err(Errno::PERM));
        assert_eq!(
            decide(&req("overlay", "/mnt", 0, None), 0),
            Err(Errno::PERM)
        );
        assert_eq!(
            decide(
                &MountRequest {
                    fstype: None,
                    ..req("x", "/mnt", 0, None)
                },
                0
            ),
            Err(Errno::PERM)
        );
    }

    #[test]
    fn binds_remounts_and_non_root_callers_are_refused() {
        for f in [
            libc::MS_BIND,
            libc::MS_REMOUNT,
            libc::MS_MOVE,
            libc::MS_SHARED | libc::MS_REC,
            libc::MS_PRIVATE,
        ] {
            assert_eq!(
                decide(&req("tmpfs", "/mnt", f, None), 0),
                Err(Errno::PERM),
                "flags {f:#x}"
            );
        }
        assert_eq!(
            decide(&req("proc", "/mnt", 0, None), 1000),
            Err(Errno::PERM)
        );
        assert_eq!(decide(&req("proc", "", 0, None), 0), Err(Errno::NOENT));
    }

    struct Fake(Vec<(u64, &'static str)>, std::cell::Cell<bool>);
    impl Target for Fake {
        fn read_cstr(&self, addr: u64, _max: usize) -> gocker_seccomp::Result<Vec<u8>> {
            Ok(self
                .0
                .iter()
                .find(|(a, _)| *a == addr)
                .map(|(_, s)| s.as_bytes().to_vec())
                .unwrap_or_default())
        }
        fn still_valid(&self) -> bool {
            self.1.get()
        }
    }

    #[test]
    fn request_is_read_from_the_callers_memory_and_revalidated() {
        let n = Notification {
            id: 7,
            pid: 1,
            nr: libc::SYS_mount as i32,
            arch: 0,
            args: [0x10, 0x20, 0x30, libc::MS_NOEXEC, 0x40, 0],
        };
        let f = Fake(
            vec![(0x20, "/mnt"), (0x30, "tmpfs"), (0x40, "size=4k")],
            true.into(),
        );
        let r = MountRequest::read(&n, &f).unwrap();
        assert_eq!(r, req("tmpfs", "/mnt", libc::MS_NOEXEC, Some("size=4k")));
        f.1.set(false);
        assert!(
            MountRequest::read(&n, &f).is_err(),
            "a notification that went away must not be acted on"
        );
    }
}
