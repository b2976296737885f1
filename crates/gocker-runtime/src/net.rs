//! The one network operation the runtime needs before gocker-net exists: bringing up `lo`.

use std::os::fd::AsRawFd;

use crate::{Result, RuntimeError};

#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Sets `IFF_UP` on the loopback interface of the caller's network namespace.
pub(crate) fn loopback_up() -> Result<()> {
    let sock = rustix::net::socket(rustix::net::AddressFamily::INET, rustix::net::SocketType::DGRAM, None)
        .map_err(|e| RuntimeError::sys("socket", "loopback", e))?;
    let mut req = IfReqFlags { name: [0; libc::IFNAMSIZ], flags: 0, _pad: [0; 22] };
    req.name[..2].copy_from_slice(b"lo");
    // SAFETY: `req` is a properly sized, initialised `struct ifreq` (name + flags union member)
    // that lives across both calls; the socket fd is valid.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) == -1 {
            return Err(RuntimeError::sys("ioctl(SIOCGIFFLAGS)", "lo", std::io::Error::last_os_error()));
        }
        req.flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req) == -1 {
            return Err(RuntimeError::sys("ioctl(SIOCSIFFLAGS)", "lo", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}
