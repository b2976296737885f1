//! `gocker run --init`: the container's PID 1 is Gocker's own small init — the static lift
//! binary run as `gocker-init` (bins/lift/src/init.rs), which runs the command as its child,
//! forwards signals to it and reaps orphans — instead of the command itself.
//!
//! ring2 copies the embedded binary into a sealed memfd (no write, grow or shrink, and no new
//! seals) and executes that descriptor ([`crate::process::ExecPlan::under_init`]): nothing is
//! added to the container's filesystem, so `--init` works on any rootfs (read-only, without a
//! `/sbin`), and a process of the container that opens `/proc/1/exe` finds a sealed memory file,
//! never a host binary it could rewrite (the CVE-2019-5736 class).

use std::os::fd::OwnedFd;

use rustix::fs::{MemfdFlags, SealFlags};

use crate::process::ExecPlan;
use crate::{ContainerConfig, Result, RuntimeError};

/// The init's `argv[0]` (what `ps` shows as PID 1), which also selects the binary's init mode.
pub(crate) const ARGV0: &str = "gocker-init";

/// The sealed memfd holding the init.
pub(crate) fn memfd() -> Result<OwnedFd> {
    let err = |what: &'static str, e| RuntimeError::sys(what, "the --init memfd", e);
    // MFD_EXEC (Linux 6.3+) says it is meant to be executed; older kernels refuse the flag.
    let exec = MemfdFlags::from_bits_retain(libc::MFD_EXEC);
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    let fd = rustix::fs::memfd_create(ARGV0, flags | exec)
        .or_else(|_| rustix::fs::memfd_create(ARGV0, flags))
        .map_err(|e| err("memfd_create", e))?;
    let mut rest = crate::lift::BINARY;
    while !rest.is_empty() {
        let n = rustix::io::write(&fd, rest).map_err(|e| err("write", e))?;
        rest = &rest[n..];
    }
    rustix::fs::fcntl_add_seals(
        &fd,
        SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
    )
    .map_err(|e| err("fcntl(F_ADD_SEALS)", e))?;
    Ok(fd)
}

/// ring2's hook: with `--init`, the plan executes the init with the command as its arguments.
pub(crate) fn wrap(cfg: &ContainerConfig, plan: ExecPlan) -> Result<ExecPlan> {
    if !cfg.init {
        return Ok(plan);
    }
    Ok(plan.under_init(memfd()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memfd_is_sealed_and_holds_the_binary() {
        let fd = memfd().unwrap();
        let seals = rustix::fs::fcntl_get_seals(&fd).unwrap();
        assert!(seals.contains(SealFlags::WRITE | SealFlags::SEAL | SealFlags::GROW));
        assert_eq!(
            rustix::fs::fstat(&fd).unwrap().st_size as usize,
            crate::lift::BINARY.len()
        );
        assert!(
            rustix::io::pwrite(&fd, b"x", 0).is_err(),
            "a write is refused"
        );
    }
}
