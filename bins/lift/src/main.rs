//! `lift CMD [ARG...]`: run CMD in ring1's context (outside the container's seccomp filter and
//! capability drop, still inside its user namespace), from inside a Gocker workspace.
//!
//! Protocol (one `SOCK_SEQPACKET` connection to `/.gocker/lift.sock`, or `$GOCKER_LIFT_SOCKET`):
//! * request: one datagram of NUL-terminated `key=value` fields — `v=1`, `tty=0|1`, `cwd=DIR`,
//!   `env=K=V`..., `arg=A`... — with the caller's stdin, stdout and stderr as `SCM_RIGHTS`;
//! * then the client sends `sig=N` for every signal it receives (forwarded to the command);
//! * ring1 answers `exit=CODE` (the shell-style status: 128+N when killed by signal N) or
//!   `err=CODE:MESSAGE` (refused, not found, ...). The client exits with CODE. ring1 may refuse
//!   and close before reading the request (policy, too many handlers): the answer is then still
//!   queued although the send fails (EPIPE) or the first read reports ECONNRESET.
//!
//! Run as `gocker-init` (argv[0]), the same binary is the container's init for `gocker run --init`
//! (`init.rs`).
//!
//! Deliberately dependency-free (libc only): gocker-runtime builds it as a static binary and
//! embeds it, since containers need not have any libc at all.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

const DEFAULT_SOCKET: &str = "/.gocker/lift.sock";
/// Signals forwarded to the lifted command (not SIGKILL/SIGSTOP, which cannot be caught, nor the
/// synchronous faults or SIGCHLD/SIGPIPE, which concern the client itself).
const FORWARDED: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGTERM,
    libc::SIGCONT,
    libc::SIGURG,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGWINCH,
    libc::SIGIO,
    libc::SIGPWR,
    libc::SIGSYS,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

fn die(code: i32, msg: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "lift: {msg}");
    std::process::exit(code)
}

fn last_err() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn connect(path: &[u8]) -> OwnedFd {
    // SAFETY: plain socket(2) call; the result is checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        die(125, &format!("socket: {}", last_err()));
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if path.len() >= addr.sun_path.len() {
        die(125, "socket path too long");
    }
    for (d, s) in addr.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + path.len() + 1) as libc::socklen_t;
    // SAFETY: addr is a valid sockaddr_un of at least `len` bytes.
    if unsafe {
        libc::connect(
            sock.as_raw_fd(),
            &addr as *const _ as *const libc::sockaddr,
            len,
        )
    } != 0
    {
        let e = last_err();
        let p = String::from_utf8_lossy(path);
        die(125, &format!("connect {p}: {e} (is lift enabled for this container? `gocker run --lift=on` or --workspace)"));
    }
    sock
}

/// Sends one datagram, with `fds` attached as SCM_RIGHTS when not empty.
fn send(sock: &OwnedFd, body: &[u8], fds: &[i32]) -> std::io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: body.as_ptr() as *mut libc::c_void,
        iov_len: body.len(),
    };
    // Room for a cmsghdr with up to 3 ints, 8-byte aligned.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; every pointer set below points into live locals.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let data_len = std::mem::size_of_val(fds) as u32;
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
        let space = unsafe { libc::CMSG_SPACE(data_len) } as usize;
        assert!(space <= std::mem::size_of_val(&control));
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space;
        // SAFETY: msg_control points at `space` writable, aligned bytes, so the first header and
        // its data fit; the fds are copied as plain ints.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(data_len) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c) as *mut i32, fds.len());
        }
    }
    loop {
        // SAFETY: msg is fully initialised and its buffers outlive the call.
        let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if r >= 0 {
            return Ok(());
        }
        let e = last_err();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

fn field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(0);
}

mod init;

/// The name under which gocker-runtime executes this binary as the container's init
/// (`gocker run --init`).
const INIT_NAME: &str = "gocker-init";

fn main() {
    let mut all = std::env::args_os();
    let argv0 = all.next().unwrap_or_default();
    let args: Vec<OsString> = all.collect();
    if argv0 == INIT_NAME {
        init::main(args)
    }
    if args.is_empty() || args[0] == "--help" || args[0] == "-h" {
        die(125, "usage: lift COMMAND [ARG...]  (runs COMMAND in ring1's context: see docs/workspace-mode.md)");
    }
    let path = std::env::var_os("GOCKER_LIFT_SOCKET")
        .map(|p| p.into_vec())
        .unwrap_or_else(|| DEFAULT_SOCKET.as_bytes().to_vec());
    if path.contains(&0) {
        die(125, "GOCKER_LIFT_SOCKET contains a NUL byte");
    }

    // Block the forwarded signals before connecting so none is lost; read them from a signalfd.
    // SAFETY: sigset_t is initialised by sigemptyset before use; the pointers are valid.
    let sigfd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED {
            libc::sigaddset(&mut set, *s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
        if fd < 0 {
            die(125, &format!("signalfd: {}", last_err()));
        }
        OwnedFd::from_raw_fd(fd)
    };
    let sock = connect(&path);

    // SAFETY: isatty only inspects descriptor 0.
    let tty = unsafe { libc::isatty(0) } == 1;
    let mut req = Vec::new();
    field(&mut req, "v", b"1");
    field(&mut req, "tty", if tty { b"1" } else { b"0" });
    if let Ok(cwd) = std::env::current_dir() {
        field(&mut req, "cwd", cwd.as_os_str().as_bytes());
    }
    for (k, v) in std::env::vars_os() {
        let mut kv = k.into_vec();
        kv.push(b'=');
        kv.extend(v.into_vec());
        if !kv.contains(&0) {
            field(&mut req, "env", &kv);
        }
    }
    for a in &args {
        if a.as_bytes().contains(&0) {
            die(125, "argument contains a NUL byte");
        }
        field(&mut req, "arg", a.as_bytes());
    }
    let mut buf = vec![0u8; 65536];
    if let Err(e) = send(&sock, &req, &[0, 1, 2]) {
        // ring1 may have refused the connection (and closed it) before the request went out:
        // its answer is still queued for us.
        if let Ok(n @ 1..) = recv_reply(&sock, &mut buf, libc::MSG_DONTWAIT) {
            answer(&buf[..n]);
        }
        die(125, &format!("send request: {e}"));
    }

    loop {
        let mut p = [
            libc::pollfd {
                fd: sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sigfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: p is a valid array of 2 pollfd.
        if unsafe { libc::poll(p.as_mut_ptr(), 2, -1) } < 0 {
            if last_err().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            die(125, &format!("poll: {}", last_err()));
        }
        if p[1].revents != 0 {
            // SAFETY: signalfd_siginfo is plain data, for which all-zero bytes are a valid value.
            let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            // SAFETY: reads at most size_of::<signalfd_siginfo>() bytes into `si`, which is that large.
            let n = unsafe {
                libc::read(
                    sigfd.as_raw_fd(),
                    &mut si as *mut _ as *mut libc::c_void,
                    std::mem::size_of::<libc::signalfd_siginfo>(),
                )
            };
            if n == std::mem::size_of::<libc::signalfd_siginfo>() as isize {
                let _ = send(&sock, format!("sig={}\0", si.ssi_signo).as_bytes(), &[]);
            }
        }
        if p[0].revents != 0 {
            match recv_reply(&sock, &mut buf, 0) {
                Ok(0) | Err(_) => die(125, "ring1 closed the connection without an exit status"),
                Ok(n) => answer(&buf[..n]),
            }
        }
    }
}

/// Receives one datagram from ring1 (0: end of the connection). When ring1 refuses a connection
/// itself, it answers and closes it without reading what we sent; the kernel then reports
/// ECONNRESET once before the answer that is still queued, so read again after it.
fn recv_reply(sock: &OwnedFd, buf: &mut [u8], flags: i32) -> std::io::Result<usize> {
    let mut reset_seen = false;
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                flags,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = last_err();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::ECONNRESET) if !reset_seen => reset_seen = true,
            _ => return Err(e),
        }
    }
}

/// Exits as ring1's final answer says (`exit=CODE` or `err=CODE:MESSAGE`); returns on anything else.
fn answer(datagram: &[u8]) {
    let msg = String::from_utf8_lossy(datagram)
        .trim_end_matches('\0')
        .to_owned();
    if let Some(code) = msg.strip_prefix("exit=") {
        std::process::exit(code.parse().unwrap_or(125));
    }
    if let Some(rest) = msg.strip_prefix("err=") {
        let (code, text) = rest.split_once(':').unwrap_or(("125", rest));
        die(code.parse().unwrap_or(125), text);
    }
}
