//! Signals taken as data: a set blocked in the calling thread and read from a `signalfd`, so that
//! poll loops (ring0's wait, the attach client) see them next to their descriptors.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::{Result, RuntimeError};

/// A blocked signal set and its `signalfd`; the previous mask comes back on drop.
pub(crate) struct SignalFd {
    fd: OwnedFd,
    old_mask: libc::sigset_t,
}

impl SignalFd {
    /// Blocks `signals` (and the real-time signals with `realtime`) and opens a non-blocking
    /// `signalfd` for them.
    pub(crate) fn install(signals: &[i32], realtime: bool) -> Result<Self> {
        let rt = libc::SIGRTMIN()..=libc::SIGRTMAX();
        let rt = rt.filter(|_| realtime);
        // SAFETY: sigset_t values are initialised by sigemptyset before use; pthread_sigmask and
        // signalfd receive valid pointers; the returned fd is fresh and owned here.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in signals.iter().copied().chain(rt) {
                libc::sigaddset(&mut set, s);
            }
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                let e = std::io::Error::last_os_error();
                libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
                return Err(RuntimeError::sys("signalfd", "blocked signals", e));
            }
            Ok(SignalFd {
                fd: OwnedFd::from_raw_fd(fd),
                old_mask: old,
            })
        }
    }

    /// Reads the pending signals.
    pub(crate) fn drain(&self) -> Vec<i32> {
        let mut out = Vec::new();
        let mut buf = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        while let Ok(n) = rustix::io::read(&self.fd, &mut buf) {
            if n != buf.len() {
                break;
            }
            out.push(u32::from_ne_bytes(buf[..4].try_into().expect("4 bytes")) as i32);
        }
        out
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved at install time.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut()) };
    }
}
