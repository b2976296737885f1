//! Linux namespaces for Gocker and for anyone embedding it.
//!
//! * [`Namespace`] names one namespace kind and knows its clone flag and its `/proc/PID/ns` entry.
//! * [`NamespaceSet`] is a set of kinds, built from an OCI spec or by hand.
//! * [`fork_into`] creates a child process in new namespaces with `clone3` (returning a pidfd).
//! * [`unshare`], [`enter_path`] and [`enter_pidfd`] move the calling thread.
//! * [`differing`] and [`nsenter`] are `nsenter(1)` for embedders: join another process's
//!   namespaces through its pidfd, and become root of its user namespace.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxNamespaceType;
use rustix::fs::{Mode, OFlags};

/// Errors from namespace operations; each names the syscall and what it acted on.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("clone3({flags}) failed: {source}")]
    Clone {
        flags: NamespaceSet,
        source: std::io::Error,
    },
    #[error("unshare({flags}) failed: {source}")]
    Unshare {
        flags: NamespaceSet,
        source: std::io::Error,
    },
    #[error("open namespace {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("setns({ns}) into {what} failed: {source}")]
    Setns {
        ns: String,
        what: String,
        source: std::io::Error,
    },
    #[error("{op} in the joined user namespace failed: {source}")]
    Credentials {
        op: &'static str,
        source: std::io::Error,
    },
    #[error("ioctl({op}) on namespace {what} failed: {source}")]
    Ioctl {
        op: &'static str,
        what: String,
        source: std::io::Error,
    },
    #[error("reading {path} inside user namespace {what} failed: {reason}")]
    ReadInside {
        path: String,
        what: String,
        reason: String,
    },
}

pub type Result<T> = std::result::Result<T, NsError>;

/// One namespace kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    User,
    Mount,
    Pid,
    Uts,
    Ipc,
    Net,
    Cgroup,
    Time,
}

impl Namespace {
    /// All kinds, in the order a joiner should enter them (user first so that the others are permitted).
    pub const ALL: [Namespace; 8] = [
        Namespace::User,
        Namespace::Mount,
        Namespace::Pid,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::Net,
        Namespace::Cgroup,
        Namespace::Time,
    ];

    /// The `CLONE_NEW*` flag of this kind.
    pub const fn clone_flag(self) -> u64 {
        (match self {
            Namespace::User => libc::CLONE_NEWUSER,
            Namespace::Mount => libc::CLONE_NEWNS,
            Namespace::Pid => libc::CLONE_NEWPID,
            Namespace::Uts => libc::CLONE_NEWUTS,
            Namespace::Ipc => libc::CLONE_NEWIPC,
            Namespace::Net => libc::CLONE_NEWNET,
            Namespace::Cgroup => libc::CLONE_NEWCGROUP,
            Namespace::Time => libc::CLONE_NEWTIME,
        }) as u64
    }

    /// The entry name under `/proc/PID/ns/`.
    pub const fn proc_name(self) -> &'static str {
        match self {
            Namespace::User => "user",
            Namespace::Mount => "mnt",
            Namespace::Pid => "pid",
            Namespace::Uts => "uts",
            Namespace::Ipc => "ipc",
            Namespace::Net => "net",
            Namespace::Cgroup => "cgroup",
            Namespace::Time => "time",
        }
    }

    /// `/proc/PID/ns/KIND`.
    pub fn proc_path(self, pid: i32) -> PathBuf {
        PathBuf::from(format!("/proc/{pid}/ns/{}", self.proc_name()))
    }
}

impl From<LinuxNamespaceType> for Namespace {
    fn from(t: LinuxNamespaceType) -> Self {
        match t {
            LinuxNamespaceType::User => Namespace::User,
            LinuxNamespaceType::Mount => Namespace::Mount,
            LinuxNamespaceType::Pid => Namespace::Pid,
            LinuxNamespaceType::Uts => Namespace::Uts,
            LinuxNamespaceType::Ipc => Namespace::Ipc,
            LinuxNamespaceType::Network => Namespace::Net,
            LinuxNamespaceType::Cgroup => Namespace::Cgroup,
            LinuxNamespaceType::Time => Namespace::Time,
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.proc_name())
    }
}

/// A set of namespace kinds (a mask of `CLONE_NEW*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NamespaceSet(u64);

impl NamespaceSet {
    pub const EMPTY: NamespaceSet = NamespaceSet(0);

    pub fn with(mut self, ns: Namespace) -> Self {
        self.0 |= ns.clone_flag();
        self
    }
    pub fn without(mut self, ns: Namespace) -> Self {
        self.0 &= !ns.clone_flag();
        self
    }
    pub fn contains(self, ns: Namespace) -> bool {
        self.0 & ns.clone_flag() != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn bits(self) -> u64 {
        self.0
    }
    pub fn iter(self) -> impl Iterator<Item = Namespace> {
        Namespace::ALL
            .into_iter()
            .filter(move |n| self.contains(*n))
    }
}

impl FromIterator<Namespace> for NamespaceSet {
    fn from_iter<I: IntoIterator<Item = Namespace>>(iter: I) -> Self {
        iter.into_iter()
            .fold(NamespaceSet::EMPTY, NamespaceSet::with)
    }
}

impl fmt::Display for NamespaceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.iter().map(Namespace::proc_name).collect();
        f.write_str(&names.join("|"))
    }
}

/// What [`fork_into`] returns: in the parent the child's pid and pidfd, in the child nothing.
#[derive(Debug)]
pub enum Forked {
    Parent {
        pid: rustix::process::Pid,
        pidfd: OwnedFd,
    },
    Child,
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Creates a child process in the namespaces of `set` with `clone3(CLONE_PIDFD)`, like `fork`:
/// it returns twice, once in the parent and once in the child. `cgroup`, when given, places the
/// child into that cgroup directory at creation (`CLONE_INTO_CGROUP`).
///
/// # Safety
/// The child is a copy of the calling process with one thread. If the caller has other threads,
/// the child may only call async-signal-safe functions until it execs or exits (a lock held by
/// another thread stays locked forever in the child). Single-threaded callers have no such limit.
pub unsafe fn fork_into(
    set: NamespaceSet,
    cgroup: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<Forked> {
    // SAFETY: forwarded from the caller.
    unsafe { clone_child(set, cgroup, 0) }
}

/// Like [`fork_into`], but the child becomes a child of the caller's *parent* (`CLONE_PARENT`),
/// a sibling of the caller: it outlives the caller without being reparented away from the
/// parent's process tree. The pidfd still refers to the child.
///
/// # Safety
/// As [`fork_into`]. The caller must not be the init process of a PID namespace (EINVAL).
pub unsafe fn fork_sibling_into(set: NamespaceSet) -> Result<Forked> {
    // SAFETY: forwarded from the caller.
    unsafe { clone_child(set, None, libc::CLONE_PARENT as u64) }
}

unsafe fn clone_child(
    set: NamespaceSet,
    cgroup: Option<std::os::fd::BorrowedFd<'_>>,
    extra: u64,
) -> Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: set.bits() | libc::CLONE_PIDFD as u64 | extra,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        // clone3 refuses an exit signal with CLONE_PARENT: the child inherits the caller's.
        exit_signal: if extra & libc::CLONE_PARENT as u64 != 0 {
            0
        } else {
            libc::SIGCHLD as u64
        },
        ..Default::default()
    };
    if let Some(cg) = cgroup {
        args.flags |= 0x200000000; // CLONE_INTO_CGROUP
        args.cgroup = cg.as_raw_fd() as u64;
    }
    // SAFETY: args is a valid, fully initialised clone_args of the size we pass; no CLONE_VM and no
    // new stack, so the child continues on a private copy of our stack exactly like fork(2).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(NsError::Clone {
            flags: set,
            source: std::io::Error::last_os_error(),
        }),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            // A positive return of clone3 is the child's pid.
            pid: rustix::process::Pid::from_raw(pid as i32).ok_or_else(|| NsError::Clone {
                flags: set,
                source: std::io::Error::other(format!("clone3 returned {pid}")),
            })?,
            // SAFETY: with CLONE_PIDFD the kernel stored a fresh pidfd that nothing else owns.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

/// Moves the calling thread into new namespaces of the kinds in `set`.
/// A new PID namespace applies to children created afterwards, not to the caller.
pub fn unshare(set: NamespaceSet) -> Result<()> {
    let flags = rustix::thread::UnshareFlags::from_bits_retain(set.bits() as u32);
    // SAFETY: unshare only changes this thread's namespace membership; callers that unshare
    // CLONE_FILES/CLONE_FS-like state are not possible here as the set only holds CLONE_NEW* bits.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(|e| NsError::Unshare {
        flags: set,
        source: e.into(),
    })
}

/// Opens `/proc/PID/ns/KIND`.
pub fn open(pid: i32, ns: Namespace) -> Result<OwnedFd> {
    open_path(&ns.proc_path(pid))
}

/// Opens a namespace file such as a bind-mounted `/run/netns/NAME`.
pub fn open_path(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| {
        NsError::Open {
            path: path.to_owned(),
            source: e.into(),
        }
    })
}

/// Joins the namespace of kind `ns` that `path` refers to (`nsenter --net=PATH`).
pub fn enter_path(path: &Path, ns: Namespace) -> Result<()> {
    let fd = open_path(path)?;
    setns(
        fd.as_fd(),
        ns.clone_flag(),
        ns.proc_name().to_owned(),
        path.display().to_string(),
    )
}

/// Joins the namespace of kind `ns` behind the open namespace file `fd`; `what` names it in errors.
/// A user namespace grants full capabilities in it; a PID namespace applies to children created
/// afterwards.
pub fn enter_fd(fd: BorrowedFd<'_>, ns: Namespace, what: &str) -> Result<()> {
    setns(
        fd,
        ns.clone_flag(),
        ns.proc_name().to_owned(),
        what.to_owned(),
    )
}

/// The user namespace that owns the namespace behind `fd` (`ioctl(NS_GET_USERNS)`).
pub fn owner_userns(fd: BorrowedFd<'_>, what: &str) -> Result<OwnedFd> {
    // _IO(0xb7, 0x1) from <linux/nsfs.h>.
    const NS_GET_USERNS: libc::Ioctl = 0xb701;
    // SAFETY: NS_GET_USERNS takes no argument and returns a new descriptor (close-on-exec) or -1.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_USERNS) };
    if r < 0 {
        return Err(NsError::Ioctl {
            op: "NS_GET_USERNS",
            what: what.to_owned(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: the kernel returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// The host uid that created the user namespace behind `fd` (`ioctl(NS_GET_OWNER_UID)`): whose
/// it is. `what` names it in errors.
pub fn owner_uid(fd: BorrowedFd<'_>, what: &str) -> Result<u32> {
    // _IO(0xb7, 0x4) from <linux/nsfs.h>.
    const NS_GET_OWNER_UID: libc::Ioctl = 0xb704;
    let mut uid: libc::uid_t = 0;
    // SAFETY: NS_GET_OWNER_UID writes one uid_t through the pointer, which is valid for the call.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            NS_GET_OWNER_UID,
            &mut uid as *mut libc::uid_t,
        )
    };
    if r < 0 {
        return Err(NsError::Ioctl {
            op: "NS_GET_OWNER_UID",
            what: what.to_owned(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(uid)
}

/// True when the two open namespace files refer to the same namespace.
pub fn same_fd(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    match (rustix::fs::fstat(a), rustix::fs::fstat(b)) {
        (Ok(a), Ok(b)) => a.st_ino == b.st_ino && a.st_dev == b.st_dev,
        _ => false,
    }
}

/// The contents of `paths` as a member of the user namespace `userns` sees them (an id map such as
/// `/proc/self/uid_map` reads relative to the reader's namespace): a child joins it, reads them
/// and sends the text back. `what` names the namespace in errors.
///
/// # Safety
/// As [`fork_into`]: the caller must be single-threaded.
pub unsafe fn read_inside_userns(
    userns: BorrowedFd<'_>,
    what: &str,
    paths: &[&str],
) -> Result<Vec<String>> {
    use std::io::{Read, Write};
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| {
        NsError::ReadInside {
            path: "pipe".into(),
            what: what.to_owned(),
            reason: e.to_string(),
        }
    })?;
    // SAFETY: forwarded from the caller.
    match unsafe { fork_into(NamespaceSet::EMPTY, None) }? {
        Forked::Child => {
            drop(r);
            let mut w = std::fs::File::from(w);
            // One record per path, "ok <text>" or "err <reason>", or a single "join <reason>";
            // each ended by a NUL.
            let mut out = Vec::new();
            match enter_fd(userns, Namespace::User, what) {
                Err(e) => out.extend(format!("join {e}\0").into_bytes()),
                Ok(()) => {
                    for p in paths {
                        match std::fs::read_to_string(p) {
                            Ok(t) => out.extend(format!("ok {t}\0").into_bytes()),
                            Err(e) => out.extend(format!("err {e}\0").into_bytes()),
                        }
                    }
                }
            }
            let _ = w.write_all(&out);
            // SAFETY: _exit skips the atexit handlers and buffers that belong to the parent.
            unsafe { libc::_exit(0) }
        }
        Forked::Parent { pidfd, .. } => {
            drop(w);
            let mut text = String::new();
            let read = std::fs::File::from(r).read_to_string(&mut text);
            let _ = rustix::process::waitid(
                rustix::process::WaitId::PidFd(pidfd.as_fd()),
                rustix::process::WaitIdOptions::EXITED,
            );
            let fail = |path: &str, reason: String| NsError::ReadInside {
                path: path.to_owned(),
                what: what.to_owned(),
                reason,
            };
            read.map_err(|e| fail("pipe", e.to_string()))?;
            let records: Vec<&str> = text.split_terminator('\0').collect();
            if let Some(e) = records.first().and_then(|r| r.strip_prefix("join ")) {
                return Err(fail("(none: joining it)", e.to_owned()));
            }
            if records.len() != paths.len() {
                return Err(fail("all files", "the reader exited early".into()));
            }
            paths
                .iter()
                .zip(records)
                .map(|(p, r)| match r.split_once(' ') {
                    Some(("ok", t)) => Ok(t.to_owned()),
                    Some((_, e)) => Err(fail(p, e.to_owned())),
                    None => Ok(String::new()),
                })
                .collect()
        }
    }
}

/// Joins every namespace in `set` of the process behind `pidfd` in one atomic `setns` call.
pub fn enter_pidfd(pidfd: std::os::fd::BorrowedFd<'_>, set: NamespaceSet) -> Result<()> {
    setns(
        pidfd,
        set.bits(),
        set.to_string(),
        format!("pidfd {}", pidfd.as_raw_fd()),
    )
}

fn setns(fd: std::os::fd::BorrowedFd<'_>, flags: u64, ns: String, what: String) -> Result<()> {
    // SAFETY: fd is a valid borrowed descriptor for the duration of the call.
    let r = unsafe { libc::setns(fd.as_raw_fd(), flags as libc::c_int) };
    if r == -1 {
        return Err(NsError::Setns {
            ns,
            what,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// The namespace kinds in which process `target` differs from process `me` (kinds the kernel does
/// not have, e.g. time on old kernels, are left out): what `nsenter -a` joins.
pub fn differing(me: i32, target: i32) -> NamespaceSet {
    Namespace::ALL
        .into_iter()
        .filter(|n| !same(me, target, *n).unwrap_or(true))
        .collect()
}

/// Joins `set` of the process behind `pidfd` (whose pid is `target`) in one atomic `setns`, like
/// `nsenter --target PID`. With the user namespace in the set and `become_root`, switches to uid
/// and gid 0 there (as nsenter does unless `--preserve-credentials`), clearing supplementary groups
/// where the namespace allows `setgroups`. The calling process must be single-threaded (setns of
/// a user namespace demands it). A PID namespace applies to children created afterwards.
pub fn nsenter(
    pidfd: std::os::fd::BorrowedFd<'_>,
    target: i32,
    set: NamespaceSet,
    become_root: bool,
) -> Result<()> {
    let setgroups = std::fs::read_to_string(format!("/proc/{target}/setgroups"))
        .map(|s| s.trim() == "allow")
        .unwrap_or(false);
    enter_pidfd(pidfd, set)?;
    if set.contains(Namespace::User) && become_root {
        let cred = |op, r: rustix::io::Result<()>| {
            r.map_err(|e| NsError::Credentials {
                op,
                source: e.into(),
            })
        };
        if setgroups {
            cred("setgroups([])", rustix::thread::set_thread_groups(&[]))?;
        }
        cred(
            "setresgid(0)",
            rustix::thread::set_thread_res_gid(
                rustix::process::Gid::ROOT,
                rustix::process::Gid::ROOT,
                rustix::process::Gid::ROOT,
            ),
        )?;
        cred(
            "setresuid(0)",
            rustix::thread::set_thread_res_uid(
                rustix::process::Uid::ROOT,
                rustix::process::Uid::ROOT,
                rustix::process::Uid::ROOT,
            ),
        )?;
    }
    Ok(())
}

/// True when the two processes share the namespace of kind `ns`.
pub fn same(pid_a: i32, pid_b: i32, ns: Namespace) -> Result<bool> {
    let stat = |pid| {
        let p = ns.proc_path(pid);
        rustix::fs::stat(&p).map_err(|e| NsError::Open {
            path: p,
            source: e.into(),
        })
    };
    let (a, b) = (stat(pid_a)?, stat(pid_b)?);
    Ok(a.st_ino == b.st_ino && a.st_dev == b.st_dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_round_trips_and_displays() {
        let s: NamespaceSet = [Namespace::User, Namespace::Net, Namespace::Pid]
            .into_iter()
            .collect();
        assert!(
            s.contains(Namespace::User) && s.contains(Namespace::Net) && s.contains(Namespace::Pid)
        );
        assert!(!s.contains(Namespace::Mount));
        assert_eq!(s.to_string(), "user|pid|net");
        assert_eq!(s.without(Namespace::Pid).to_string(), "user|net");
        assert_eq!(NamespaceSet::EMPTY.to_string(), "none");
    }

    #[test]
    fn oci_kinds_map_to_kernel_flags() {
        for t in [
            LinuxNamespaceType::User,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Cgroup,
            LinuxNamespaceType::Time,
        ] {
            // oci-spec encodes the kernel flag as the discriminant.
            assert_eq!(Namespace::from(t).clone_flag(), t as u64, "{t:?}");
        }
    }

    #[test]
    fn process_shares_its_own_namespaces() {
        let me = std::process::id() as i32;
        assert!(same(me, me, Namespace::Mount).unwrap());
        assert!(differing(me, me).is_empty());
    }
}
