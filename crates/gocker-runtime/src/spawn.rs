//! The exec spawn mode: rings as separately executed binaries.
//!
//! ring0 (or ring1) writes the [`ContainerConfig`] as JSON into a sealed memfd, forks, and the child
//! execs the ring binary with `GOCKER_RING=ring1|ring2` and `GOCKER_RING_FDS=config,chan,chan2[,extra...]`.
//! Between fork and exec the child makes only async-signal-safe raw syscalls, so this mode is safe
//! from multi-threaded embedders.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::{ContainerConfig, Result, RuntimeError};

pub(crate) const ENV_RING: &str = "GOCKER_RING";
pub(crate) const ENV_FDS: &str = "GOCKER_RING_FDS";
/// Which premade (idmapped) mounts follow the fixed descriptors of ring2.
pub(crate) const ENV_MOUNTS: &str = "GOCKER_RING_MOUNTS";
/// ring2's end of the ring1<->ring2 channel (seccomp listener), by descriptor number.
pub(crate) const ENV_SUP: &str = "GOCKER_RING_SUP";

/// Everything the child needs for `execve`, prepared before fork (no allocation after it).
pub(crate) struct Prepared {
    path: CString,
    argv: [*const libc::c_char; 2],
    envp: Vec<*const libc::c_char>,
    _strings: Vec<CString>,
    keep: Vec<RawFd>,
}

/// Writes the config into a memfd readable through `/proc/self/fd`-free `read`.
pub(crate) fn config_memfd(cfg: &ContainerConfig) -> Result<OwnedFd> {
    let fd = rustix::fs::memfd_create("gocker-config", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| RuntimeError::sys("memfd_create", "ring config", e))?;
    let mut f = std::fs::File::from(fd);
    f.write_all(&serde_json::to_vec(cfg).map_err(|e| RuntimeError::Protocol(e.to_string()))?)
        .map_err(|e| RuntimeError::sys("write", "ring config", e))?;
    Ok(OwnedFd::from(f))
}

pub(crate) fn prepare(binary: &Path, ring: &str, fds: &[RawFd]) -> Result<Prepared> {
    let c = |s: &[u8]| {
        CString::new(s)
            .map_err(|_| RuntimeError::Config(format!("NUL byte in {}", binary.display())))
    };
    let path = c(binary.as_os_str().as_bytes())?;
    let arg0 = c(format!("gocker-{ring}").as_bytes())?;
    let fd_list: Vec<String> = fds.iter().map(|f| f.to_string()).collect();
    let mut strings = vec![
        arg0,
        c(format!("{ENV_RING}={ring}").as_bytes())?,
        c(format!("{ENV_FDS}={}", fd_list.join(",")).as_bytes())?,
    ];
    for var in [ENV_MOUNTS, ENV_SUP] {
        if let Ok(m) = std::env::var(var) {
            strings.push(c(format!("{var}={m}").as_bytes())?);
        }
    }
    for (k, v) in std::env::vars_os() {
        if k != ENV_RING && k != ENV_FDS && k != ENV_MOUNTS && k != ENV_SUP {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            if let Ok(s) = CString::new(kv) {
                strings.push(s);
            }
        }
    }
    let argv = [strings[0].as_ptr(), std::ptr::null()];
    let mut envp: Vec<_> = strings[1..].iter().map(|s| s.as_ptr()).collect();
    envp.push(std::ptr::null());
    Ok(Prepared {
        path,
        argv,
        envp,
        _strings: strings,
        keep: fds.to_vec(),
    })
}

impl Prepared {
    /// In the forked child: clears close-on-exec on the descriptors to pass and execs. Only raw,
    /// async-signal-safe syscalls; never returns.
    pub(crate) fn exec_in_child(&self) -> ! {
        // SAFETY: fcntl, execve and _exit are async-signal-safe; every pointer was prepared before
        // the fork and stays valid (self outlives the call, which does not return).
        unsafe {
            for fd in &self.keep {
                libc::fcntl(*fd, libc::F_SETFD, 0);
            }
            libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr());
            libc::_exit(127)
        }
    }
}

/// In the forked child before exec: become root of the new user namespace with raw syscalls
/// (an exec by an unmapped uid would drop every capability). Async-signal-safe.
pub(crate) fn become_ns_root_raw(setgroups: bool) -> bool {
    // SAFETY: raw credential syscalls on the only thread of this child; no memory is touched.
    unsafe {
        (!setgroups || libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) == 0)
            && libc::syscall(libc::SYS_setresgid, 0, 0, 0) == 0
            && libc::syscall(libc::SYS_setresuid, 0, 0, 0) == 0
    }
}

pub(crate) fn raw(fd: &impl AsRawFd) -> RawFd {
    fd.as_raw_fd()
}
