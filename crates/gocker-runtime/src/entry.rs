//! The entry point of a ring binary in the exec spawn mode ([`crate::spawn`]): reads the
//! configuration and the descriptors its parent ring passed, and runs that ring. The top of the
//! rings: it knows both of them; they know nothing of it.

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::channel::Channel;
use crate::spawn::{ENV_FDS, ENV_MOUNTS, ENV_RING, ENV_SUP};
use crate::{ring1, ring2, ContainerConfig};

fn fail(msg: &str) -> ! {
    eprintln!("gocker ring: {msg}");
    crate::sys::exit(125)
}

/// Runs the ring named by `GOCKER_RING`, if this process was started as one; returns otherwise.
/// Call it first thing in `main` of any program used as an exec-mode ring binary.
pub fn ring_entry() {
    let Some(ring) = std::env::var_os(ENV_RING) else {
        return;
    };
    let sup: Option<RawFd> = std::env::var(ENV_SUP).ok().and_then(|s| s.parse().ok());
    let fds: Vec<RawFd> = std::env::var(ENV_FDS)
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| s.parse().ok())
        .filter(|fd| Some(*fd) != sup)
        .collect();
    // SAFETY: as below: passed to us by the ring that exec'd this process, taken once.
    let sup = sup.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    if let Some(fd) = &sup {
        let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
    }
    let mut owned: Vec<OwnedFd> = fds
        .iter()
        // SAFETY: the descriptors were passed to us by the ring that exec'd this process, which
        // owns nothing else under these numbers here; each is taken once.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(*fd) })
        .collect();
    for fd in &owned {
        let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
    }
    if owned.len() < 3 {
        fail(&format!("{ENV_FDS} must name at least 3 descriptors"));
    }
    let rest = owned.split_off(3);
    let mut it = owned.into_iter();
    let (cfg_fd, a, b) = (
        it.next().expect("3"),
        it.next().expect("3"),
        it.next().expect("3"),
    );
    let mut text = Vec::new();
    let mut f = std::fs::File::from(cfg_fd);
    if let Err(e) =
        std::io::Seek::rewind(&mut f).and_then(|_| std::io::Read::read_to_end(&mut f, &mut text))
    {
        fail(&format!("read config: {e}"));
    }
    let cfg: ContainerConfig = match serde_json::from_slice(&text) {
        Ok(c) => c,
        Err(e) => fail(&format!("bad config: {e}")),
    };
    drop(f);
    match ring.to_str() {
        // ring1: a = channel to ring0, b = ring2's channel to ring0.
        Some("ring1") => {
            let parent = rustix::process::getppid()
                .map(|p| p.as_raw_nonzero().get())
                .unwrap_or(0);
            ring1::main(&cfg, Channel::from(a), Channel::from(b), parent)
        }
        // ring2: a = channel to ring0, b = ring1's pidfd, then the premade mounts.
        Some("ring2") => {
            let parent: BorrowedFd<'_> = std::os::fd::AsFd::as_fd(&b);
            let described = std::env::var(ENV_MOUNTS)
                .unwrap_or_else(|_| r#"{"rootfs":false,"volumes":[]}"#.into());
            let Some(premade) = ring2::Premade::from_described(&described, rest) else {
                fail(&format!(
                    "{ENV_MOUNTS} does not match the descriptors passed"
                ))
            };
            let Some(sup) = sup else {
                fail(&format!("{ENV_SUP} is not set"))
            };
            ring2::main(&cfg, Channel::from(a), Channel::from(sup), premade, parent)
        }
        _ => fail(&format!("unknown {ENV_RING} {ring:?}")),
    }
}
