//! Installing a compiled program with `seccomp(2)` directly (no libseccomp at load time: the
//! program may come from the cache, and the loading process may be a fork that must not allocate).

use std::os::fd::{FromRawFd, OwnedFd};

use crate::{Bpf, Result, SeccompError};

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const FLAG_TSYNC: libc::c_ulong = 1;
const FLAG_LOG: libc::c_ulong = 2;
const FLAG_SPEC_ALLOW: libc::c_ulong = 4;
const FLAG_NEW_LISTENER: libc::c_ulong = 8;
const FLAG_TSYNC_ESRCH: libc::c_ulong = 16;
const FLAG_WAIT_KILLABLE_RECV: libc::c_ulong = 32;

/// How to load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadFlags {
    /// Apply to every thread of the process (SECCOMP_FILTER_FLAG_TSYNC).
    pub tsync: bool,
    /// Return a notification descriptor (SECCOMP_FILTER_FLAG_NEW_LISTENER).
    pub listener: bool,
    pub log: bool,
    pub spec_allow: bool,
    pub wait_killable_recv: bool,
}

impl LoadFlags {
    /// TSYNC always; a listener when some rule notifies; the profile's own OCI flags.
    pub fn for_program(b: &Bpf) -> LoadFlags {
        let has = |f: &str| b.flags.iter().any(|x| x == f);
        LoadFlags {
            tsync: true,
            listener: b.listener,
            log: has("SECCOMP_FILTER_FLAG_LOG"),
            spec_allow: has("SECCOMP_FILTER_FLAG_SPEC_ALLOW"),
            wait_killable_recv: has("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"),
        }
    }

    fn bits(self) -> libc::c_ulong {
        let mut f = 0;
        if self.tsync {
            f |= FLAG_TSYNC;
            // TSYNC together with NEW_LISTENER is only accepted with TSYNC_ESRCH (Linux >= 5.7):
            // otherwise a positive return value would be ambiguous (thread id or descriptor).
            if self.listener {
                f |= FLAG_TSYNC_ESRCH;
            }
        }
        if self.listener {
            f |= FLAG_NEW_LISTENER;
        }
        if self.log {
            f |= FLAG_LOG;
        }
        if self.spec_allow {
            f |= FLAG_SPEC_ALLOW;
        }
        if self.wait_killable_recv {
            f |= FLAG_WAIT_KILLABLE_RECV;
        }
        f
    }
}

/// A program in the kernel's instruction layout, ready for [`Prepared::load`] (which then
/// allocates nothing).
pub struct Prepared {
    insns: Vec<libc::sock_filter>,
    flags: LoadFlags,
}

impl Prepared {
    pub fn new(b: &Bpf, flags: LoadFlags) -> Result<Prepared> {
        if !b.program.len().is_multiple_of(8) || b.program.is_empty() || b.program.len() / 8 > 4096
        {
            return Err(SeccompError::BadProgram(b.program.len()));
        }
        let insns = b
            .program
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(Prepared { insns, flags })
    }

    /// Installs the filter on the calling thread (all threads with TSYNC). Needs no_new_privs or
    /// CAP_SYS_ADMIN in the current user namespace. Returns the listener when asked for one.
    pub fn load(&self) -> Result<Option<OwnedFd>> {
        let prog = libc::sock_fprog {
            len: self.insns.len() as u16,
            filter: self.insns.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `insns`, which outlives the call; the kernel copies the program.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                self.flags.bits(),
                &prog as *const libc::sock_fprog,
            )
        };
        if r < 0 {
            return Err(SeccompError::sys(
                "seccomp(SECCOMP_SET_MODE_FILTER)",
                format!(
                    "{} instructions, flags {:#x}",
                    self.insns.len(),
                    self.flags.bits()
                ),
                std::io::Error::last_os_error(),
            ));
        }
        if self.flags.listener {
            // SAFETY: with NEW_LISTENER a non-negative return value is a fresh descriptor we own.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(r as i32) }));
        }
        if r > 0 {
            return Err(SeccompError::sys(
                "seccomp(SECCOMP_FILTER_FLAG_TSYNC)",
                format!("thread {r} could not be synchronised"),
                std::io::Error::from_raw_os_error(libc::ESRCH),
            ));
        }
        Ok(None)
    }
}

/// Prepares and loads in one step.
pub fn load(b: &Bpf, flags: LoadFlags) -> Result<Option<OwnedFd>> {
    Prepared::new(b, flags)?.load()
}
