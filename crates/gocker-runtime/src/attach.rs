//! Attaching to a container's terminal: `gocker run -it` and `gocker attach`.
//!
//! A container with a terminal runs under its monitor (see [`crate::detach`]), which owns the pty
//! master: it copies the terminal's output into the log and to every attached client, and serves
//! `attach.sock` in the container's state directory. Per client, one `SOCK_SEQPACKET` connection:
//!
//! ```text
//! monitor -> client   'h' + the pty master (SCM_RIGHTS)   once, on connect
//!                     'o' + output bytes                  as the terminal prints
//!                     'x' + {"code":N,"oom_kills":K}      when the payload has exited
//! client -> monitor   nothing; closing the connection detaches
//! ```
//!
//! The client writes its keyboard input and window size straight to its copy of the master, so
//! input needs no protocol and no copy in the monitor. It watches the input for the detach keys
//! (Ctrl-P Ctrl-Q by default, as docker): on that sequence it closes the connection and leaves the
//! container running.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::logs::{LineLog, LogWriter};
use crate::signals::SignalFd;
use crate::{Result, RuntimeError};

pub(crate) use crate::keys::Scanner;
pub use crate::keys::{BadDetachKeys, DetachKeys, DEFAULT_DETACH_KEYS};

/// The socket's name in the container's state directory.
pub const SOCKET: &str = "attach.sock";
const HELLO: u8 = b'h';
const OUTPUT: u8 = b'o';
const EXIT: u8 = b'x';

#[derive(Debug, Serialize, Deserialize)]
struct ExitReport {
    code: i32,
    oom_kills: u64,
}

/// How an attached session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The payload exited with this code (and the OOM killer struck that often).
    Exited { code: i32, oom_kills: u64 },
    /// The detach keys were typed; the container keeps running.
    Detached,
    /// A signal (SIGHUP, SIGINT, SIGTERM) ended the session; the container keeps running.
    Interrupted(i32),
    /// The monitor went away without reporting an exit status.
    Lost,
}

/// The monitor's side: the listening socket, created in the container's state directory.
pub(crate) fn listen(dir: &Path) -> Result<OwnedFd> {
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| RuntimeError::sys("socket", SOCKET, e))?;
    let path = dir.join(SOCKET);
    let _ = std::fs::remove_file(&path);
    let (_dirfd, addr) = short_addr(dir)?;
    rustix::net::bind(&sock, &addr)
        .map_err(|e| RuntimeError::sys("bind", path.display().to_string(), e))?;
    rustix::net::listen(&sock, 16)
        .map_err(|e| RuntimeError::sys("listen", path.display().to_string(), e))?;
    Ok(sock)
}

/// The socket's address through `/proc/self/fd/N/`, so that a long state directory path does not
/// hit the 108-byte limit of `sun_path`. The directory descriptor must stay open while used.
fn short_addr(dir: &Path) -> Result<(OwnedFd, SocketAddrUnix)> {
    let dirfd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| RuntimeError::sys("open", dir.display().to_string(), e))?;
    let p = format!("/proc/self/fd/{}/{SOCKET}", dirfd.as_raw_fd());
    let addr =
        SocketAddrUnix::new(p.as_str()).map_err(|e| RuntimeError::sys("socket address", p, e))?;
    Ok((dirfd, addr))
}

/// The monitor's terminal hub: output to the log and to the attached clients, new clients from
/// the listening socket.
pub(crate) struct Hub {
    master: OwnedFd,
    listener: OwnedFd,
    clients: Vec<Channel>,
    log: LineLog,
}

impl Hub {
    pub(crate) fn new(master: OwnedFd, listener: OwnedFd, log: Arc<Mutex<LogWriter>>) -> Hub {
        Hub {
            master,
            listener,
            clients: Vec::new(),
            log: LineLog::new("stdout", log),
        }
    }

    /// Greets a client with the master; a client that cannot take it is dropped.
    pub(crate) fn add(&mut self, client: Channel) {
        if client.send_bytes(&[HELLO], &[self.master.as_fd()]).is_ok() {
            self.clients.push(client);
        }
    }

    /// Serves until every descriptor of the terminal's other side is closed (the payload and
    /// everything that inherited its terminal have exited). Returns the clients still attached.
    pub(crate) fn serve(mut self) -> Vec<Channel> {
        let mut buf = vec![0u8; 16384];
        buf[0] = OUTPUT;
        loop {
            let mut fds = vec![
                PollFd::new(&self.master, PollFlags::IN),
                PollFd::new(&self.listener, PollFlags::IN),
            ];
            fds.extend(
                self.clients
                    .iter()
                    .map(|c| PollFd::from_borrowed_fd(c.as_fd(), PollFlags::IN)),
            );
            match rustix::event::poll(&mut fds, None) {
                Err(Errno::INTR) => continue,
                Err(_) => break,
                Ok(_) => {}
            }
            let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
            drop(fds);
            // Clients never send: readable means gone (or misbehaving), either way detach it.
            for i in (0..self.clients.len()).rev() {
                if ready[2 + i] {
                    self.clients.swap_remove(i);
                }
            }
            if ready[1] {
                if let Ok(c) = rustix::net::accept_with(&self.listener, SocketFlags::CLOEXEC) {
                    self.add(Channel::from(c));
                }
            }
            if ready[0] {
                match rustix::io::read(&self.master, &mut buf[1..]) {
                    // EIO: no descriptor of the terminal's other side is open any more.
                    Ok(0) | Err(Errno::IO) => break,
                    Ok(n) => {
                        self.log.push(&buf[1..=n]);
                        // A client that does not keep up (stopped, or its own output blocked)
                        // misses what its queue has no room for: it must not stall the
                        // container's terminal and log. A failed send detaches it.
                        self.clients.retain(|c| {
                            matches!(c.try_send_bytes(&buf[..=n]), Ok(()) | Err(Errno::AGAIN))
                        });
                    }
                    Err(Errno::INTR) | Err(Errno::AGAIN) => {}
                    Err(_) => break,
                }
            }
        }
        self.log.finish();
        self.clients
    }
}

/// Tells the clients still attached how the payload ended. A client whose queue stays full for
/// two seconds is given up on (it sees the connection close), so that a stalled client cannot
/// hold the monitor, and with it the container's removal, forever.
pub(crate) fn report_exit(clients: &[Channel], code: i32, oom_kills: u64) {
    let mut msg = vec![EXIT];
    msg.extend(serde_json::to_vec(&ExitReport { code, oom_kills }).expect("serialises"));
    for c in clients {
        let mut p = [PollFd::from_borrowed_fd(c.as_fd(), PollFlags::OUT)];
        let wait = rustix::event::Timespec {
            tv_sec: 2,
            tv_nsec: 0,
        };
        if matches!(rustix::event::poll(&mut p, Some(&wait)), Ok(n) if n > 0) {
            let _ = c.try_send_bytes(&msg);
        }
    }
}

/// A client's session with a container's terminal.
pub struct Session {
    channel: Channel,
    master: OwnedFd,
}

impl Session {
    /// Connects to the monitor of the container whose state directory is `dir`.
    pub fn connect(dir: &Path) -> Result<Session> {
        let sock = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| RuntimeError::sys("socket", SOCKET, e))?;
        let (_dirfd, addr) = short_addr(dir)?;
        rustix::net::connect(&sock, &addr)
            .map_err(|e| RuntimeError::sys("connect", dir.join(SOCKET).display().to_string(), e))?;
        Session::greeted(Channel::from(sock))
    }

    /// Waits for the monitor's greeting (with the master) on an established connection.
    pub(crate) fn greeted(channel: Channel) -> Result<Session> {
        let stage = "the container's monitor to hand over the terminal";
        let poll = channel.recv_bytes(Some(std::time::Duration::from_secs(30)), stage)?;
        match poll {
            Some((msg, mut fds)) if msg == [HELLO] && fds.len() == 1 => Ok(Session {
                channel,
                master: fds.pop().expect("one fd"),
            }),
            Some(_) => Err(RuntimeError::Protocol(format!("{stage}: bad greeting"))),
            None => Err(RuntimeError::Protocol(format!(
                "{stage}: the monitor closed the connection (the container has exited)"
            ))),
        }
    }

    /// Relays until the payload exits, the detach keys are typed or a terminating signal
    /// arrives: input (forwarded only with `stdin`) goes to the terminal, its output to stdout,
    /// and the window size follows ours. Our terminal is in raw mode meanwhile.
    pub fn relay(self, stdin: bool, keys: DetachKeys) -> Result<Outcome> {
        let signals = SignalFd::install(
            &[libc::SIGWINCH, libc::SIGHUP, libc::SIGINT, libc::SIGTERM],
            false,
        )?;
        crate::tty::sync_winsize(self.master.as_fd());
        let _raw = (stdin && rustix::termios::isatty(rustix::stdio::stdin()))
            .then(crate::tty::RawMode::enter);
        let mut scanner = Scanner::new(keys);
        let mut stdin_open = stdin;
        let mut buf = vec![0u8; 4096];
        let mut pass = Vec::with_capacity(4096);
        loop {
            let mut fds = vec![
                PollFd::from_borrowed_fd(self.channel.as_fd(), PollFlags::IN),
                PollFd::new(&signals, PollFlags::IN),
            ];
            if stdin_open {
                fds.push(PollFd::from_borrowed_fd(
                    rustix::stdio::stdin(),
                    PollFlags::IN,
                ));
            }
            match rustix::event::poll(&mut fds, None) {
                Err(Errno::INTR) => continue,
                Err(e) => return Err(RuntimeError::sys("poll", "attach", e)),
                Ok(_) => {}
            }
            let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
            drop(fds);
            if ready[1] {
                for sig in signals.drain() {
                    if sig == libc::SIGWINCH {
                        crate::tty::sync_winsize(self.master.as_fd());
                    } else {
                        return Ok(Outcome::Interrupted(sig));
                    }
                }
            }
            if ready.get(2) == Some(&true) {
                match rustix::io::read(rustix::stdio::stdin(), &mut buf) {
                    Ok(0) => {
                        // End of input (not a terminal): an end-of-file for the terminal, as docker.
                        crate::tty::write_all(self.master.as_fd(), &[4]);
                        stdin_open = false;
                    }
                    Ok(n) => {
                        pass.clear();
                        let detach = scanner.feed(&buf[..n], &mut pass);
                        crate::tty::write_all(self.master.as_fd(), &pass);
                        if detach {
                            return Ok(Outcome::Detached);
                        }
                    }
                    Err(Errno::INTR) | Err(Errno::AGAIN) => {}
                    Err(_) => stdin_open = false,
                }
            }
            if ready[0] {
                match self.channel.recv_bytes_now("the container's terminal")? {
                    None => return Ok(Outcome::Lost),
                    Some((msg, _)) => match msg.split_first() {
                        Some((&OUTPUT, data)) => {
                            crate::tty::write_all(rustix::stdio::stdout(), data)
                        }
                        Some((&EXIT, body)) => {
                            let r: ExitReport = serde_json::from_slice(body).map_err(|e| {
                                RuntimeError::Protocol(format!("bad exit report: {e}"))
                            })?;
                            return Ok(Outcome::Exited {
                                code: r.code,
                                oom_kills: r.oom_kills,
                            });
                        }
                        _ => {}
                    },
                }
            }
        }
    }
}
