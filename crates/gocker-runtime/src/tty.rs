//! Pseudo-terminals for `-t`: the pty is created *inside* the container (from its own devpts
//! instance, so `tty` prints a `/dev/pts/N` of the container), its master travels to the host side
//! over `SCM_RIGHTS`, and the host side relays between its own terminal (in raw mode) and the
//! master, keeping the window size in step.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::pty::OpenptFlags;
use rustix::termios::{OptionalActions, Termios};

use crate::{Result, RuntimeError};

/// A new pty pair from the devpts instance behind `/dev/ptmx` of the caller's mount namespace.
/// The peer is opened through the master (`TIOCGPTPEER`): no path lookup in the container's /dev/pts.
pub(crate) fn open_pair() -> Result<(OwnedFd, OwnedFd)> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .map_err(|e| RuntimeError::sys("open", "/dev/ptmx", e))?;
    rustix::pty::unlockpt(&master).map_err(|e| RuntimeError::sys("unlockpt", "/dev/ptmx", e))?;
    let peer = rustix::pty::ioctl_tiocgptpeer(&master, OpenptFlags::RDWR | OpenptFlags::NOCTTY)
        .map_err(|e| RuntimeError::sys("ioctl(TIOCGPTPEER)", "/dev/ptmx", e))?;
    Ok((master, peer))
}

/// Makes `peer` the controlling terminal of a new session of the calling process and its stdin,
/// stdout and stderr. Optionally hands the terminal to `owner` (the payload's uid/gid).
pub(crate) fn become_controlled(peer: OwnedFd, owner: Option<(u32, u32)>) -> Result<()> {
    if let Some(owner) = owner {
        chown_peer(peer.as_fd(), owner);
    }
    rustix::process::setsid().map_err(|e| RuntimeError::sys("setsid", "tty", e))?;
    rustix::process::ioctl_tiocsctty(&peer)
        .map_err(|e| RuntimeError::sys("ioctl(TIOCSCTTY)", "tty", e))?;
    rustix::stdio::dup2_stdin(&peer).map_err(|e| RuntimeError::sys("dup2", "tty stdin", e))?;
    rustix::stdio::dup2_stdout(&peer).map_err(|e| RuntimeError::sys("dup2", "tty stdout", e))?;
    rustix::stdio::dup2_stderr(&peer).map_err(|e| RuntimeError::sys("dup2", "tty stderr", e))?;
    Ok(())
}

/// Gives the terminal to the process's user (best effort: the ids may be unmapped in a
/// single-id user namespace). Needs `CAP_CHOWN`: call it before the identity changes.
pub(crate) fn chown_peer(peer: BorrowedFd<'_>, (uid, gid): (u32, u32)) {
    let _ = rustix::fs::fchown(
        peer,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    );
}

/// Sizes a new terminal: `process.consoleSize` when the spec has one, else like the caller's.
pub(crate) fn initial_size(master: BorrowedFd<'_>, console: Option<&oci_spec::runtime::Box>) {
    match console {
        Some(b) => {
            let ws = rustix::termios::Winsize {
                ws_row: b.height().min(u16::MAX as u64) as u16,
                ws_col: b.width().min(u16::MAX as u64) as u16,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            let _ = rustix::termios::tcsetwinsize(master, ws);
        }
        None => sync_winsize(master),
    }
}

/// Copies the window size of the caller's terminal (stdin, else stdout) to `master`.
pub(crate) fn sync_winsize(master: BorrowedFd<'_>) {
    let size = rustix::termios::tcgetwinsize(rustix::stdio::stdin())
        .or_else(|_| rustix::termios::tcgetwinsize(rustix::stdio::stdout()));
    if let Ok(ws) = size {
        let _ = rustix::termios::tcsetwinsize(master, ws);
    }
}

/// The caller's terminal in raw mode for as long as this lives (restored on drop): every key,
/// Ctrl-C and Ctrl-D included, goes to the container's terminal, whose line discipline turns them
/// into SIGINT and end-of-file there, as with docker.
pub(crate) struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    pub(crate) fn enter() -> RawMode {
        let stdin = rustix::stdio::stdin();
        let Ok(saved) = rustix::termios::tcgetattr(stdin) else {
            return RawMode { saved: None };
        };
        let mut raw = saved.clone();
        raw.make_raw();
        if rustix::termios::tcsetattr(stdin, OptionalActions::Now, &raw).is_err() {
            return RawMode { saved: None };
        }
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = rustix::termios::tcsetattr(rustix::stdio::stdin(), OptionalActions::Now, t);
        }
    }
}

/// Relays between the caller's stdin/stdout and a pty master. The owner polls [`Relay::fds`]
/// together with its own descriptors and calls [`Relay::service`] when any of them is ready.
pub(crate) struct Relay {
    master: OwnedFd,
    /// Forward stdin to the terminal (`-i`); cleared at end of input.
    stdin: bool,
    /// The master still delivers output (cleared at EIO: every slave descriptor is closed).
    open: bool,
    /// Looks for the detach keys in stdin ([`Relay::with_detach_keys`]).
    detach: Option<crate::keys::Scanner>,
    _raw: Option<RawMode>,
}

impl Relay {
    pub(crate) fn new(master: OwnedFd, stdin: bool) -> Relay {
        sync_winsize(master.as_fd());
        let raw = (stdin && rustix::termios::isatty(rustix::stdio::stdin())).then(RawMode::enter);
        let _ = rustix::io::ioctl_fionbio(&master, true);
        Relay {
            master,
            stdin,
            open: true,
            detach: None,
            _raw: raw,
        }
    }

    /// Watches stdin for `keys`: [`Relay::service`] reports them instead of passing them on.
    pub(crate) fn with_detach_keys(mut self, keys: crate::keys::DetachKeys) -> Relay {
        self.detach = Some(crate::keys::Scanner::new(keys));
        self
    }

    /// Gives the master back (e.g. to keep the terminal open after a detach), blocking again.
    pub(crate) fn into_master(self) -> OwnedFd {
        let _ = rustix::io::ioctl_fionbio(&self.master, false);
        self.master
    }

    pub(crate) fn master(&self) -> BorrowedFd<'_> {
        self.master.as_fd()
    }

    /// Descriptors to poll: the master (output), and stdin while forwarding.
    pub(crate) fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut v = Vec::new();
        if self.open {
            v.push(PollFd::from_borrowed_fd(self.master.as_fd(), PollFlags::IN));
        }
        if self.stdin {
            v.push(PollFd::from_borrowed_fd(
                rustix::stdio::stdin(),
                PollFlags::IN,
            ));
        }
        v
    }

    /// Moves whatever is ready, without blocking on the master. True when the detach keys were
    /// typed (they are not passed on).
    pub(crate) fn service(&mut self) -> bool {
        self.drain_output();
        // stdin stays blocking (its file description is shared with the caller's shell): read it
        // only when poll says a read will not block.
        let mut p = [PollFd::from_borrowed_fd(
            rustix::stdio::stdin(),
            PollFlags::IN,
        )];
        let stdin_ready = self.stdin
            && matches!(rustix::event::poll(&mut p, Some(&rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 })), Ok(n) if n > 0);
        if stdin_ready {
            let mut buf = [0u8; 4096];
            match rustix::io::read(rustix::stdio::stdin(), &mut buf) {
                Ok(0) => {
                    // End of input (not a terminal): pass an end-of-file to the terminal, as docker.
                    let _ = rustix::io::write(&self.master, &[4]);
                    self.stdin = false;
                }
                Ok(n) => match &mut self.detach {
                    None => write_all(self.master.as_fd(), &buf[..n]),
                    Some(scanner) => {
                        let mut pass = Vec::with_capacity(n);
                        let detach = scanner.feed(&buf[..n], &mut pass);
                        write_all(self.master.as_fd(), &pass);
                        if detach {
                            return true;
                        }
                    }
                },
                Err(Errno::INTR) | Err(Errno::AGAIN) => {}
                Err(_) => self.stdin = false,
            }
        }
        false
    }

    /// Copies pending terminal output to stdout.
    pub(crate) fn drain_output(&mut self) {
        let mut buf = [0u8; 16384];
        while self.open {
            match rustix::io::read(&self.master, &mut buf) {
                Ok(0) | Err(Errno::IO) => self.open = false,
                Ok(n) => write_all(rustix::stdio::stdout(), &buf[..n]),
                Err(Errno::INTR) => continue,
                Err(_) => break,
            }
        }
    }
}

pub(crate) fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => {
                let mut p = [PollFd::from_borrowed_fd(fd, PollFlags::OUT)];
                let _ = rustix::event::poll(&mut p, None);
            }
            Err(_) => return,
        }
    }
}

/// runc's console socket protocol: connect to the unix socket and send the pty master with
/// `SCM_RIGHTS` (the data is the terminal's name).
pub(crate) fn send_console(socket: &Path, master: BorrowedFd<'_>) -> Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let what = || format!("console socket {}", socket.display());
    let stream = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| RuntimeError::sys("connect", what(), e))?;
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [master];
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        &stream,
        &[std::io::IoSlice::new(b"/dev/ptmx")],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .map_err(|e| RuntimeError::sys("sendmsg", what(), e))?;
    Ok(())
}
