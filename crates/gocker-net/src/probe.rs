//! Whether a network mode can work on this host, found out for real: the executables a mode
//! runs are looked up on PATH and must be executable by the caller, and `/dev/net/tun` is opened
//! (and a tap device created) from a new network namespace — in a new user namespace too when
//! not root — exactly as pasta and slirp4netns do it inside the container's namespaces.
//!
//! [`default_mode`] walks the default's fallbacks (root: bridge, slirp4netns, none; other users:
//! pasta, slirp4netns, none) and says why it left each one; [`check`] is the same test for a mode
//! asked for by name, whose failure is an error naming the missing piece and the fix.

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::{helper, Mode, NetError};

pub const TUN: &str = "/dev/net/tun";

/// Why a mode cannot work here, and what would fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    pub mode: Mode,
    /// The missing piece, e.g. "nftables' `nft` is not on PATH".
    pub reason: String,
    /// What to install or change.
    pub fix: String,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.reason, self.fix)
    }
}

impl From<Unavailable> for NetError {
    fn from(u: Unavailable) -> NetError {
        NetError::Unavailable {
            mode: u.mode.to_string(),
            reason: u.reason,
            fix: u.fix,
        }
    }
}

/// `name` in the directories of PATH only (as `Command::new(name)` finds it), executable by the
/// caller (access(2) X_OK: the kernel's answer, not a file test).
pub fn on_path(name: &str) -> Option<PathBuf> {
    find_in(&std::env::var_os("PATH")?, name)
}

fn find_in(path: &std::ffi::OsStr, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(name))
        .find(|p| p.is_file() && rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok())
}

/// The bridge's firewall: the `nft` executable (nftables), which NAT and port DNAT are applied
/// with, on PATH.
pub fn nft() -> Result<PathBuf, Unavailable> {
    nft_in(&std::env::var_os("PATH").unwrap_or_default())
}

fn nft_in(path: &std::ffi::OsStr) -> Result<PathBuf, Unavailable> {
    find_in(path, "nft").ok_or_else(|| Unavailable {
        mode: Mode::Bridge,
        reason: format!(
            "nftables' `nft` is not on PATH ({})",
            path.to_string_lossy()
        ),
        fix: "install the Debian package `nftables` (or add its directory, /usr/sbin, to PATH), \
              or use --network none"
            .into(),
    })
}

/// Where a tun probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunStage {
    /// unshare(CLONE_NEWUSER|CLONE_NEWNET): no namespaces to probe in (the container itself
    /// cannot be created either, and says so itself).
    Namespaces,
    /// open("/dev/net/tun", O_RDWR).
    Open,
    /// ioctl(TUNSETIFF) for a tap device.
    SetIff,
}

/// A failed tun probe: the stage and the errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunFailure {
    pub stage: TunStage,
    pub errno: i32,
}

impl TunFailure {
    fn io(&self) -> std::io::Error {
        std::io::Error::from_raw_os_error(self.errno)
    }
}

/// Opens `/dev/net/tun` and creates a tap device with it in a new network namespace (and, when
/// not root, a new user namespace: the caller's uid, as pasta's and slirp4netns's), in a child
/// process that exits at once (the device goes with its namespace). `Ok` when that worked.
/// Thorough but slow: the child's exit waits for the device's unregistration (an RCU grace
/// period, ~10-30 ms), so `gocker info` uses it and a run [`tun_open`].
pub fn tun() -> Result<(), TunFailure> {
    tun_probe(true)
}

/// [`tun`] without the tap device: the open of `/dev/net/tun` in new user and network
/// namespaces, which is where a mode 0600 or a missing device fails (well under a millisecond).
pub fn tun_open() -> Result<(), TunFailure> {
    tun_probe(false)
}

fn tun_probe(device: bool) -> Result<(), TunFailure> {
    let root = rustix::process::geteuid().is_root();
    let flags = libc::CLONE_NEWNET | if root { 0 } else { libc::CLONE_NEWUSER };
    let path = CString::new(TUN).expect("no NUL");
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"gkprobe0") {
        *d = *s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    let mut pipe = [0i32; 2];
    // SAFETY: pipe2 fills the two-element array it is given.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(TunFailure {
            stage: TunStage::Namespaces,
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        });
    }
    let [r, w] = pipe;
    // The child makes only async-signal-safe system calls (unshare, open, ioctl, write, _exit) on
    // memory prepared before the fork, which is sound in a multi-threaded process.
    // SAFETY: see above; the child never returns from its branch.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: see the fork above; `report` writes 8 bytes from a local array to the pipe.
        unsafe {
            let report = |stage: i32| -> ! {
                let e = *libc::__errno_location();
                let msg = [stage, e];
                libc::write(w, msg.as_ptr().cast(), 8);
                libc::_exit(1)
            };
            if libc::unshare(flags) != 0 {
                report(0);
            }
            let fd = libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            if fd < 0 {
                report(1);
            }
            if device && libc::ioctl(fd, libc::TUNSETIFF, &ifr as *const libc::ifreq) != 0 {
                report(2);
            }
            libc::_exit(0)
        }
    }
    let fork_errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    // SAFETY: w is our write end; closing it lets the read below see EOF once the child is gone.
    unsafe { libc::close(w) };
    let mut msg = [0i32; 2];
    let n = if pid > 0 {
        loop {
            // SAFETY: reads at most 8 bytes into the local array; r is our read end.
            let n = unsafe { libc::read(r, msg.as_mut_ptr().cast(), 8) };
            if n >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break n;
            }
        }
    } else {
        -1
    };
    // SAFETY: r is ours and not used after this.
    unsafe { libc::close(r) };
    if pid < 0 {
        return Err(TunFailure {
            stage: TunStage::Namespaces,
            errno: fork_errno,
        });
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above (ours: no one else reaps it).
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
    {}
    let exited_0 = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if n != 8 && !exited_0 {
        // Killed before it could say (a seccomp filter, say): nothing is known about the device.
        return Err(TunFailure {
            stage: TunStage::Namespaces,
            errno: 0,
        });
    }
    if n == 8 {
        let stage = match msg[0] {
            0 => TunStage::Namespaces,
            1 => TunStage::Open,
            _ => TunStage::SetIff,
        };
        return Err(TunFailure {
            stage,
            errno: msg[1],
        });
    }
    Ok(())
}

/// The mode, owner and group of /dev/net/tun, as `0600 root:root`.
fn tun_mode() -> String {
    match std::fs::metadata(TUN) {
        Ok(m) => format!(
            "mode {:04o}, owner uid {} gid {}",
            m.mode() & 0o7777,
            m.uid(),
            m.gid()
        ),
        Err(e) => e.to_string(),
    }
}

/// Whether the user-mode drivers (pasta, slirp4netns) can open `/dev/net/tun` in the container's
/// namespaces ([`tun_open`]), as an [`Unavailable`] of `mode` when they cannot. `Ok` too when the probe could
/// not create namespaces at all: the container cannot either, and its own error says why.
pub fn tun_for(mode: Mode) -> Result<(), Unavailable> {
    explain_tun(mode, tun_open())
}

/// A tun probe's result as an [`Unavailable`] of `mode`.
pub fn explain_tun(mode: Mode, probe: Result<(), TunFailure>) -> Result<(), Unavailable> {
    let f = match probe {
        Ok(()) => return Ok(()),
        Err(f) if f.stage == TunStage::Namespaces => return Ok(()),
        Err(f) => f,
    };
    let uid = rustix::process::geteuid().as_raw();
    let (reason, fix) = match (f.stage, f.errno) {
        (TunStage::Open, libc::EACCES | libc::EPERM) => (
            format!(
                "{TUN} cannot be opened by uid {uid} in a user namespace ({}): {}",
                tun_mode(),
                f.io()
            ),
            format!(
                "as root: `chmod 0666 {TUN}`, the mode distributions ship (persistently: a udev rule \
                 KERNEL==\"tun\", MODE=\"0666\"), or use --network none"
            ),
        ),
        (TunStage::Open, libc::ENOENT | libc::ENODEV | libc::ENXIO) => (
            format!("no tun device: open {TUN}: {}", f.io()),
            format!(
                "as root: `modprobe tun` (and `mknod {TUN} c 10 200; chmod 0666 {TUN}`), or use \
                 --network none"
            ),
        ),
        (TunStage::Open, _) => (
            format!("open {TUN} ({}): {}", tun_mode(), f.io()),
            "check the device node, or use --network none".into(),
        ),
        (TunStage::SetIff | TunStage::Namespaces, _) => (
            format!(
                "{TUN} opens but creating a tap device in a new network namespace fails (TUNSETIFF): {}",
                f.io()
            ),
            "a kernel with CONFIG_TUN, a seccomp or LSM policy that allows it, or --network none"
                .into(),
        ),
    };
    Err(Unavailable { mode, reason, fix })
}

/// The user-mode driver `mode`'s executable (pasta from the package passt, or slirp4netns).
fn driver(mode: Mode) -> Result<PathBuf, Unavailable> {
    let (name, package) = match mode {
        Mode::Pasta => ("pasta", "passt"),
        _ => ("slirp4netns", "slirp4netns"),
    };
    helper::find(name).ok_or_else(|| Unavailable {
        mode,
        reason: format!("{name} is not installed (not on PATH, nor in /usr/bin, /usr/sbin)"),
        fix: format!("install the Debian package `{package}`, or use --network none"),
    })
}

/// Whether `mode` can work on this host for the caller (`root`: euid 0). Privilege rules
/// (bridge needs root, pasta is rootless) are [`crate::NetworkOptions::validate`]'s.
pub fn check(mode: Mode) -> Result<(), Unavailable> {
    match mode {
        Mode::None | Mode::Host => Ok(()),
        Mode::Bridge => nft().map(drop),
        Mode::Pasta | Mode::Slirp4netns => {
            driver(mode)?;
            tun_for(mode)
        }
    }
}

/// The default's candidates, in order: root bridge then slirp4netns (pasta refuses to serve a
/// remapped root's namespaces, see `validate`); other users pasta then slirp4netns.
pub fn candidates(root: bool) -> [Mode; 2] {
    if root {
        [Mode::Bridge, Mode::Slirp4netns]
    } else {
        [Mode::Pasta, Mode::Slirp4netns]
    }
}

/// The default mode for the caller: the first candidate that works here, else `none`; with why
/// the first choice was left (None when it works).
pub fn default_mode(root: bool) -> (Mode, Option<Unavailable>) {
    let mut first = None;
    for m in candidates(root) {
        match check(m) {
            Ok(()) => return (m, first),
            Err(u) => {
                first.get_or_insert(u);
            }
        }
    }
    (Mode::None, first)
}

/// The one warning line for a default that fell back from `why.mode` to `chosen`.
pub fn fallback_warning(chosen: Mode, why: &Unavailable) -> String {
    format!(
        "warning: the default network ({}) cannot work here: {}; fix: {}; running with --network {chosen}{}",
        why.mode,
        why.reason,
        why.fix,
        if chosen == Mode::None {
            " (loopback only; pass --network none to silence this)"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_is_found_on_path_only() {
        let dir = std::env::temp_dir().join(format!("gocker-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = std::ffi::OsString::from(format!("/nonexistent:{}", dir.display()));
        let e = nft_in(&path).unwrap_err();
        assert!(e.reason.contains("`nft` is not on PATH"), "{e}");
        assert!(e.fix.contains("nftables"), "{e}");
        // A file that is not executable does not count.
        let f = dir.join("nft");
        std::fs::write(&f, "#!/bin/sh\n").unwrap();
        assert!(nft_in(&path).is_err());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(nft_in(&path).unwrap(), f);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The probe's tap device lives in the child's own network namespace only, and the answer
    /// agrees with what an open of the device says (the user namespace adds no permission).
    #[test]
    fn tun_probe_leaves_nothing_on_the_host() {
        let r = tun();
        // The quick probe agrees with the thorough one where the open is what fails.
        if let Err(f) = &r {
            if f.stage == TunStage::Open {
                assert_eq!(tun_open(), r);
            }
        } else {
            assert_eq!(tun_open(), Ok(()));
        }
        let links = crate::netlink::Netlink::new().unwrap().links().unwrap();
        assert!(!links.iter().any(|l| l.name == "gkprobe0"), "{links:?}");
        let opens = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(TUN)
            .map(drop)
            .map_err(|e| e.raw_os_error());
        match (&r, opens) {
            (Ok(()), o) => assert!(o.is_ok(), "the probe passed but open fails: {o:?}"),
            (Err(f), Err(Some(e))) if f.stage == TunStage::Open => assert_eq!(f.errno, e),
            (Err(f), _) => assert_ne!(f.stage, TunStage::Open, "{f:?}"),
        }
    }

    #[test]
    fn warning_is_one_line_naming_mode_reason_and_fix() {
        let u = Unavailable {
            mode: Mode::Pasta,
            reason: "r".into(),
            fix: "f".into(),
        };
        let w = fallback_warning(Mode::None, &u);
        assert!(!w.contains('\n'));
        assert!(w.contains("(pasta)") && w.contains("fix: f") && w.contains("--network none"));
    }
}
