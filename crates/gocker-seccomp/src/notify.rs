//! The user-notification supervisor API (`SECCOMP_RET_USER_NOTIF`): receive a notification,
//! check that its id is still valid, answer with an errno or a value, let the call continue,
//! install a descriptor into the caller (ADDFD).
//!
//! Decision logic reads the caller's memory through the [`Target`] trait, so it can be tested
//! with a fake target, without root and without a filter.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;

use crate::{Result, SeccompError};

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct SeccompData {
    nr: i32,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct SeccompNotifAddfd {
    id: u64,
    flags: u32,
    srcfd: u32,
    newfd: u32,
    newfd_flags: u32,
}

const fn iowr(nr: u64, size: usize) -> u64 {
    (3 << 30) | ((size as u64) << 16) | ((b'!' as u64) << 8) | nr
}
const fn iow(nr: u64, size: usize) -> u64 {
    (1 << 30) | ((size as u64) << 16) | ((b'!' as u64) << 8) | nr
}
const NOTIF_RECV: u64 = iowr(0, std::mem::size_of::<SeccompNotif>());
const NOTIF_SEND: u64 = iowr(1, std::mem::size_of::<SeccompNotifResp>());
const NOTIF_ID_VALID: u64 = iow(2, std::mem::size_of::<u64>());
const NOTIF_ADDFD: u64 = iow(3, std::mem::size_of::<SeccompNotifAddfd>());
const USER_NOTIF_FLAG_CONTINUE: u32 = 1;
const ADDFD_FLAG_SETFD: u32 = 1;
const ADDFD_FLAG_SEND: u32 = 2;

/// One intercepted system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    pub id: u64,
    /// The caller's pid in the supervisor's PID namespace.
    pub pid: u32,
    pub nr: i32,
    pub arch: u32,
    pub args: [u64; 6],
}

impl Notification {
    /// The syscall's name, as libseccomp knows it for the caller's architecture.
    pub fn syscall_name(&self) -> String {
        let sc = libseccomp::ScmpSyscall::from(self.nr);
        let arch = libseccomp::ScmpArch::native();
        sc.get_name_by_arch(arch)
            .unwrap_or_else(|_| format!("syscall {}", self.nr))
    }
}

/// The AUDIT_ARCH value the kernel reports in notifications for this program's architecture.
pub const fn native_audit_arch() -> u32 {
    if cfg!(target_arch = "x86_64") {
        0xC000_003E
    } else if cfg!(target_arch = "aarch64") {
        0xC000_00B7
    } else if cfg!(target_arch = "riscv64") {
        0xC000_00F3
    } else if cfg!(target_arch = "s390x") {
        0x8000_0016
    } else if cfg!(target_arch = "powerpc64") {
        0xC000_0015
    } else {
        0
    }
}

/// The answer to a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Fail with this errno (positive, e.g. `libc::EPERM`).
    Errno(i32),
    /// Succeed with this return value (the supervisor did the work).
    Value(i64),
    /// Let the kernel run the call as if there were no filter (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
    /// Only safe for calls whose outcome the supervisor does not need to control: the caller's
    /// memory may change after the decision.
    Continue,
}

/// Where an ADDFD descriptor lands in the caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddFd {
    /// This number (SECCOMP_ADDFD_FLAG_SETFD), else the lowest free one.
    pub target: Option<u32>,
    pub cloexec: bool,
    /// Install and answer the notification with the new number in one step (SECCOMP_ADDFD_FLAG_SEND).
    pub send: bool,
}

/// The supervisor end of a filter (the descriptor from SECCOMP_FILTER_FLAG_NEW_LISTENER).
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
}

fn ioctl<T>(fd: BorrowedFd<'_>, req: u64, arg: *mut T) -> std::io::Result<i32> {
    loop {
        // SAFETY: `req` is one of the seccomp notification ioctls and `arg` points at the struct
        // (of the size encoded in `req`) that it reads or writes, valid for the whole call.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as libc::Ioctl, arg) };
        if r >= 0 {
            return Ok(r);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

impl Listener {
    pub fn new(fd: OwnedFd) -> Listener {
        Listener { fd }
    }

    /// Waits for (blocking) and returns the next notification. `ENOENT` means the caller went away
    /// before it could be received: poll again.
    pub fn recv(&self) -> Result<Notification> {
        let mut n = SeccompNotif::default();
        ioctl(self.fd.as_fd(), NOTIF_RECV, &mut n)
            .map_err(|e| SeccompError::sys("ioctl(SECCOMP_IOCTL_NOTIF_RECV)", "listener", e))?;
        Ok(Notification {
            id: n.id,
            pid: n.pid,
            nr: n.data.nr,
            arch: n.data.arch,
            args: n.data.args,
        })
    }

    /// Whether notification `id` is still pending (its caller alive and still in the call).
    /// Checked after reading the caller's memory: the pid may have been reused meanwhile.
    pub fn id_valid(&self, id: u64) -> bool {
        let mut v = id;
        ioctl(self.fd.as_fd(), NOTIF_ID_VALID, &mut v).is_ok()
    }

    /// Answers notification `id`. `ENOENT` means the caller is gone (e.g. killed): not an error
    /// worth more than a note.
    pub fn respond(&self, id: u64, r: Response) -> Result<()> {
        let mut resp = SeccompNotifResp {
            id,
            ..Default::default()
        };
        match r {
            Response::Errno(e) => resp.error = -e.abs(),
            Response::Value(v) => resp.val = v,
            Response::Continue => resp.flags = USER_NOTIF_FLAG_CONTINUE,
        }
        ioctl(self.fd.as_fd(), NOTIF_SEND, &mut resp)
            .map(|_| ())
            .map_err(|e| {
                SeccompError::sys(
                    "ioctl(SECCOMP_IOCTL_NOTIF_SEND)",
                    format!("notification {id}: {r:?}"),
                    e,
                )
            })
    }

    /// Installs a duplicate of `fd` in the caller of notification `id`; returns its number there.
    pub fn add_fd(&self, id: u64, fd: BorrowedFd<'_>, how: AddFd) -> Result<i32> {
        let mut a = SeccompNotifAddfd {
            id,
            flags: if how.target.is_some() {
                ADDFD_FLAG_SETFD
            } else {
                0
            } | if how.send { ADDFD_FLAG_SEND } else { 0 },
            srcfd: fd.as_raw_fd() as u32,
            newfd: how.target.unwrap_or(0),
            newfd_flags: if how.cloexec {
                libc::O_CLOEXEC as u32
            } else {
                0
            },
        };
        ioctl(self.fd.as_fd(), NOTIF_ADDFD, &mut a).map_err(|e| {
            SeccompError::sys(
                "ioctl(SECCOMP_IOCTL_NOTIF_ADDFD)",
                format!("notification {id}, fd {}", fd.as_raw_fd()),
                e,
            )
        })
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// What decision logic may ask about the caller of a notification.
pub trait Target {
    /// Reads a NUL-terminated string of at most `max` bytes at `addr` in the caller's memory.
    fn read_cstr(&self, addr: u64, max: usize) -> Result<Vec<u8>>;
    /// Whether the notification is still pending (to be asked after reading memory).
    fn still_valid(&self) -> bool;
}

/// A real caller: its `/proc/PID/mem`, opened and then validated against the notification id
/// (so the pid was not reused by another process in between).
pub struct ProcessTarget<'a> {
    listener: &'a Listener,
    id: u64,
    mem: std::fs::File,
}

impl<'a> ProcessTarget<'a> {
    pub fn open(listener: &'a Listener, n: &Notification) -> Result<ProcessTarget<'a>> {
        let path = format!("/proc/{}/mem", n.pid);
        let mem =
            std::fs::File::open(&path).map_err(|e| SeccompError::sys("open", path.clone(), e))?;
        if !listener.id_valid(n.id) {
            return Err(SeccompError::sys(
                "ioctl(SECCOMP_IOCTL_NOTIF_ID_VALID)",
                path,
                std::io::Error::from_raw_os_error(libc::ENOENT),
            ));
        }
        Ok(ProcessTarget {
            listener,
            id: n.id,
            mem,
        })
    }
}

impl Target for ProcessTarget<'_> {
    fn read_cstr(&self, addr: u64, max: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        let mut at = addr;
        while out.len() < max {
            let n = self
                .mem
                .read_at(&mut buf, at)
                .map_err(|e| SeccompError::sys("pread", format!("/proc/PID/mem at {at:#x}"), e))?;
            if n == 0 {
                break;
            }
            if let Some(end) = buf[..n].iter().position(|b| *b == 0) {
                out.extend_from_slice(&buf[..end]);
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
            at += n as u64;
        }
        Err(SeccompError::sys(
            "read string",
            format!("at {addr:#x}"),
            std::io::Error::from_raw_os_error(libc::ENAMETOOLONG),
        ))
    }

    fn still_valid(&self) -> bool {
        self.listener.id_valid(self.id)
    }
}

/// Reads a string argument and only then re-checks that the notification is still pending
/// (TOCTOU: the process whose memory we read must be the one still waiting for our answer).
/// A null pointer reads as `None`.
pub fn string_arg(t: &dyn Target, addr: u64, max: usize) -> Result<Option<String>> {
    if addr == 0 {
        return Ok(None);
    }
    let bytes = t.read_cstr(addr, max)?;
    if !t.still_valid() {
        return Err(SeccompError::sys(
            "ioctl(SECCOMP_IOCTL_NOTIF_ID_VALID)",
            "after reading the caller's memory",
            std::io::Error::from_raw_os_error(libc::ENOENT),
        ));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        assert_eq!(NOTIF_RECV, 0xc050_2100);
        assert_eq!(NOTIF_SEND, 0xc018_2101);
        assert_eq!(NOTIF_ID_VALID, 0x4008_2102);
        assert_eq!(NOTIF_ADDFD, 0x4018_2103);
    }

    struct Fake {
        mem: Vec<(u64, Vec<u8>)>,
        valid: std::cell::Cell<bool>,
    }
    impl Target for Fake {
        fn read_cstr(&self, addr: u64, max: usize) -> Result<Vec<u8>> {
            let (_, b) = self.mem.iter().find(|(a, _)| *a == addr).ok_or_else(|| {
                SeccompError::sys(
                    "pread",
                    "fake",
                    std::io::Error::from_raw_os_error(libc::EFAULT),
                )
            })?;
            let s: Vec<u8> = b.iter().copied().take_while(|c| *c != 0).collect();
            if s.len() > max {
                return Err(SeccompError::sys(
                    "read string",
                    "fake",
                    std::io::Error::from_raw_os_error(libc::ENAMETOOLONG),
                ));
            }
            Ok(s)
        }
        fn still_valid(&self) -> bool {
            self.valid.get()
        }
    }

    #[test]
    fn string_args_recheck_validity() {
        let f = Fake {
            mem: vec![(0x1000, b"proc\0junk".to_vec())],
            valid: true.into(),
        };
        assert_eq!(string_arg(&f, 0x1000, 64).unwrap().as_deref(), Some("proc"));
        assert_eq!(string_arg(&f, 0, 64).unwrap(), None);
        assert!(string_arg(&f, 0x2000, 64).is_err());
        f.valid.set(false);
        assert_eq!(
            string_arg(&f, 0x1000, 64).unwrap_err().errno(),
            Some(libc::ENOENT)
        );
    }
}
