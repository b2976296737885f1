//! A userland TCP proxy for published ports, like docker-proxy: it owns the host port (so a
//! conflict is an error at start) and carries the connections DNAT cannot, those to 127.0.0.1
//! (routing 127/8 to a bridge would need route_localnet, which opens martian traffic on the host).

use std::net::{Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::{NetError, Result};

/// A running proxy; dropping it closes the listener and every connection.
pub struct Proxy {
    listener: TcpListener,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `listen` and forwards each connection to `target`. Threads are started: call
    /// this only where forking without exec is over (ring0 after the rings exist).
    pub fn start(listen: SocketAddrV4, target: SocketAddrV4) -> Result<Proxy> {
        let listener = TcpListener::bind(listen).map_err(|e| NetError::Invalid {
            flag: "--publish",
            value: listen.to_string(),
            reason: format!("cannot listen on the host port: {e}"),
        })?;
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let l = listener.try_clone().map_err(|e| NetError::Io {
            op: "dup",
            path: listen.to_string().into(),
            source: e,
        })?;
        let c = conns.clone();
        let thread = std::thread::spawn(move || {
            // accept fails once Drop shuts the listening socket down.
            while let Ok((client, _)) = l.accept() {
                let Ok(upstream) = TcpStream::connect(target) else {
                    continue;
                };
                let pair = (client.try_clone(), upstream.try_clone());
                let (Ok(c2), Ok(u2)) = pair else { continue };
                if let Ok(mut v) = c.lock() {
                    v.retain(|s| s.peer_addr().is_ok());
                    v.extend(
                        [client.try_clone(), upstream.try_clone()]
                            .into_iter()
                            .flatten(),
                    );
                }
                std::thread::spawn(move || pump(client, u2));
                std::thread::spawn(move || pump(upstream, c2));
            }
        });
        Ok(Proxy {
            listener,
            conns,
            thread: Some(thread),
        })
    }
}

/// Copies `from` to `to` until EOF with splice(2) through a pipe (no copy through user space),
/// falling back to a buffered copy where splice is refused; then half-closes.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    if splice_all(&from, &to).is_err() {
        let _ = std::io::copy(&mut from, &mut to);
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

fn splice_all(from: &TcpStream, to: &TcpStream) -> std::io::Result<()> {
    use rustix::pipe::{splice, SpliceFlags};
    const CHUNK: usize = 1 << 20;
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let _ = rustix::pipe::fcntl_setpipe_size(&w, CHUNK);
    loop {
        let n = splice(
            from,
            None,
            &w,
            None,
            CHUNK,
            SpliceFlags::MOVE | SpliceFlags::MORE,
        )?;
        if n == 0 {
            return Ok(());
        }
        let mut left = n;
        while left > 0 {
            let m = splice(
                &r,
                None,
                to,
                None,
                left,
                SpliceFlags::MOVE | SpliceFlags::MORE,
            )?;
            if m == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            left -= m;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = rustix::net::shutdown(self.listener.as_fd(), rustix::net::Shutdown::Both);
        if let Ok(v) = self.conns.lock() {
            for s in v.iter() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
