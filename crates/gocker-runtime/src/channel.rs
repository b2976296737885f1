//! Messages between rings: one JSON value per `SOCK_SEQPACKET` datagram, descriptors alongside as
//! `SCM_RIGHTS`, every receive bounded by a timeout that names the stage it was waiting for.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::RuntimeError;

const MAX_MSG: usize = 64 * 1024;
/// At most this many descriptors per message (the idmapped rootfs and volumes).
pub(crate) const MAX_FDS: usize = 32;

/// A raw datagram and the descriptors that came with it.
pub(crate) type Datagram = (Vec<u8>, Vec<OwnedFd>);

/// One end of a ring-to-ring channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// Creates a connected pair of channels (close-on-exec).
pub fn pair() -> Result<(Channel, Channel), RuntimeError> {
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| RuntimeError::sys("socketpair", "ring channel", e))?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl From<OwnedFd> for Channel {
    fn from(fd: OwnedFd) -> Self {
        Channel { fd }
    }
}

impl Channel {
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Sends `msg` with `fds` attached.
    pub fn send<T: Serialize>(&self, msg: &T, fds: &[BorrowedFd<'_>]) -> Result<(), RuntimeError> {
        let body = serde_json::to_vec(msg)
            .map_err(|e| RuntimeError::Protocol(format!("encode message: {e}")))?;
        self.send_bytes(&body, fds)
    }

    /// Sends one datagram of raw bytes with `fds` attached.
    pub(crate) fn send_bytes(
        &self,
        body: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> Result<(), RuntimeError> {
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() {
            control.push(SendAncillaryMessage::ScmRights(fds));
        }
        loop {
            match rustix::net::sendmsg(
                &self.fd,
                &[IoSlice::new(body)],
                &mut control,
                SendFlags::NOSIGNAL,
            ) {
                Err(Errno::INTR) => continue,
                Err(e) => return Err(RuntimeError::sys("sendmsg", "ring channel", e)),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// Sends `body` without waiting: `Err(AGAIN)` when the peer's queue is full.
    pub(crate) fn try_send_bytes(&self, body: &[u8]) -> rustix::io::Result<()> {
        loop {
            match rustix::net::send(&self.fd, body, SendFlags::NOSIGNAL | SendFlags::DONTWAIT) {
                Err(Errno::INTR) => continue,
                r => return r.map(|_| ()),
            }
        }
    }

    /// Receives one message, waiting at most `timeout` (forever when `None`). Returns `Ok(None)`
    /// when the peer closed its end. `stage` names what was awaited, for the timeout error.
    pub fn recv<T: DeserializeOwned>(
        &self,
        timeout: Option<Duration>,
        stage: &str,
    ) -> Result<Option<(T, Vec<OwnedFd>)>, RuntimeError> {
        self.wait_readable(timeout, stage)?;
        self.recv_now(stage)
    }

    /// [`Channel::recv`] for a datagram of raw bytes.
    pub(crate) fn recv_bytes(
        &self,
        timeout: Option<Duration>,
        stage: &str,
    ) -> Result<Option<Datagram>, RuntimeError> {
        self.wait_readable(timeout, stage)?;
        self.recv_bytes_now(stage)
    }

    fn wait_readable(&self, timeout: Option<Duration>, stage: &str) -> Result<(), RuntimeError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Err(RuntimeError::Timeout {
                    stage: stage.to_owned(),
                    after: timeout.unwrap_or_default(),
                });
            }
            let ts = left.map(|l| Timespec {
                tv_sec: l.as_secs() as i64,
                tv_nsec: l.subsec_nanos() as i64,
            });
            let mut pfd = [PollFd::new(&self.fd, PollFlags::IN)];
            match rustix::event::poll(&mut pfd, ts.as_ref()) {
                Err(Errno::INTR) | Ok(0) => continue,
                Err(e) => return Err(RuntimeError::sys("poll", stage, e)),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// Receives a message that is known to be ready (or EOF).
    pub fn recv_now<T: DeserializeOwned>(
        &self,
        stage: &str,
    ) -> Result<Option<(T, Vec<OwnedFd>)>, RuntimeError> {
        let Some((body, fds)) = self.recv_bytes_now(stage)? else {
            return Ok(None);
        };
        let msg = serde_json::from_slice(&body)
            .map_err(|e| RuntimeError::Protocol(format!("{stage}: bad message: {e}")))?;
        Ok(Some((msg, fds)))
    }

    /// Receives one datagram of raw bytes that is known to be ready; `None` at EOF.
    pub(crate) fn recv_bytes_now(&self, stage: &str) -> Result<Option<Datagram>, RuntimeError> {
        // The datagram's length first (MSG_PEEK|MSG_TRUNC takes nothing, descriptors included):
        // a buffer of that size, rather than a zeroed MAX_MSG one that faults in 16 pages per
        // message in every ring.
        let len = loop {
            match rustix::net::recv(&self.fd, &mut [0u8; 0], RecvFlags::PEEK | RecvFlags::TRUNC) {
                Err(Errno::INTR) => continue,
                Err(Errno::CONNRESET) => return Ok(None),
                Err(e) => return Err(RuntimeError::sys("recv(MSG_PEEK)", stage, e)),
                Ok((_, full)) => break full,
            }
        };
        let mut buf = vec![0u8; len.clamp(1, MAX_MSG)];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let n = loop {
            match rustix::net::recvmsg(
                &self.fd,
                &mut [IoSliceMut::new(&mut buf)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Err(Errno::INTR) => continue,
                // The peer died with data unread: treat as closed.
                Err(Errno::CONNRESET) => return Ok(None),
                Err(e) => return Err(RuntimeError::sys("recvmsg", stage, e)),
                Ok(r) => break r.bytes,
            }
        };
        let mut fds = Vec::new();
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = m {
                fds.extend(rights);
            }
        }
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((buf, fds)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_fd_and_eof() {
        let (a, b) = pair().unwrap();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        a.send(&serde_json::json!({"hello": 1}), &[file.as_fd()])
            .unwrap();
        let (v, fds): (serde_json::Value, _) = b
            .recv(Some(Duration::from_secs(1)), "test")
            .unwrap()
            .unwrap();
        assert_eq!(v["hello"], 1);
        assert_eq!(fds.len(), 1);
        drop(a);
        assert!(b
            .recv::<serde_json::Value>(Some(Duration::from_secs(1)), "test")
            .unwrap()
            .is_none());
    }

    #[test]
    fn timeout_names_the_stage() {
        let (_a, b) = pair().unwrap();
        let e = b
            .recv::<serde_json::Value>(Some(Duration::from_millis(20)), "ring1 ready")
            .unwrap_err();
        assert!(e.to_string().contains("ring1 ready"), "{e}");
    }
}
