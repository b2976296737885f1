//! `lift`: run a command from inside the container in ring1's context.
//!
//! ring1 (root of the container's user namespace, with all its capabilities and no seccomp filter)
//! makes a small tmpfs holding the static `lift` client (built from `bins/lift` and embedded here)
//! and a listening `SOCK_SEQPACKET` socket `lift.sock`; ring2 mounts it read-only at `/.gocker`.
//! For each connection ring1 checks the peer's credentials (`SO_PEERCRED`) against the policy and
//! counts the running handlers **itself**, refusing without forking anything; only then does it
//! fork a handler (ring1 stays single-threaded and never blocks on a client). The handler makes
//! itself non-dumpable, receives the request and the caller's stdin/stdout/stderr (`SCM_RIGHTS`),
//! joins ring2's **mount and PID namespaces** (so the command sees the container's filesystem and
//! processes, and dies with the container), forks the command with the caller's descriptors as its
//! stdio, forwards the signals the client relays, and sends back the exit status.
//!
//! The command keeps ring1's credentials: uid 0 of the user namespace with its full capability set,
//! no seccomp filter, no `no_new_privs`. It is not in the container's cgroup (ring1's cgroup).
//! With a terminal, the caller's terminal descriptors are passed: the command gets them as stdio,
//! but it cannot make the terminal its controlling one (it already controls the caller's session;
//! stealing it needs CAP_SYS_ADMIN in the initial namespace), so terminal signals (Ctrl-C, window
//! size) reach the client, which forwards them.
//!
//! The wire format is documented in `bins/lift/src/main.rs`.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use gocker_ns::{Forked, Namespace, NamespaceSet};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use rustix::process::{Pid, Signal};

use crate::config::LiftPolicy;
use crate::sys::exit;
use crate::{ContainerConfig, ExitStatus, Result, RuntimeError};

/// The static lift client (see build.rs).
pub const BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/lift"));

const MAX_REQUEST: usize = 256 * 1024;
/// How long a handler waits for the request after accepting a connection.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many handlers (connections waiting for their request, and lifted commands) at a
/// time per container; ring1 refuses further connections without forking.
const MAX_HANDLERS: usize = 16;

fn err(stage: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Ring {
        stage: stage.to_owned(),
        message: e.to_string(),
    }
}

/// A parsed lift request.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Request {
    pub tty: bool,
    pub cwd: Option<String>,
    pub env: Vec<String>,
    pub args: Vec<String>,
}

impl Request {
    pub(crate) fn parse(body: &[u8]) -> std::result::Result<Request, String> {
        let mut r = Request::default();
        let mut version = false;
        for f in body.split(|b| *b == 0).filter(|f| !f.is_empty()) {
            let f = std::str::from_utf8(f).map_err(|_| "request field is not UTF-8".to_owned())?;
            let (k, v) = f
                .split_once('=')
                .ok_or_else(|| format!("bad request field {f:?}"))?;
            match k {
                "v" if v == "1" => version = true,
                "v" => return Err(format!("unsupported lift protocol version {v}")),
                "tty" => r.tty = v == "1",
                "cwd" => r.cwd = Some(v.to_owned()),
                "env" => r.env.push(v.to_owned()),
                "arg" => r.args.push(v.to_owned()),
                _ => {} // unknown fields are ignored (newer clients)
            }
        }
        if !version {
            return Err("not a lift request (no version field)".into());
        }
        if r.args.is_empty() {
            return Err("no command".into());
        }
        Ok(r)
    }
}

/// ring1's lift endpoint: the listening socket and the handlers it forked.
pub(crate) struct Server {
    listener: OwnedFd,
    policy: LiftPolicy,
    /// pidfds of the handlers that may still run (at most [`MAX_HANDLERS`]).
    handlers: Vec<OwnedFd>,
}

/// Why ring1 refuses a connection before forking anything: the policy, given the peer's uid in
/// the container (`SO_PEERCRED`), or the bound on concurrent handlers. `None`: fork a handler.
fn refusal(
    policy: LiftPolicy,
    peer_uid: std::result::Result<u32, Errno>,
    running: usize,
) -> Option<String> {
    const ROOT_ONLY: &str = "refused: this container allows lift for root only (--lift=root)";
    match (policy, peer_uid) {
        (LiftPolicy::Off, _) => Some("refused: lift is off in this container".into()),
        (LiftPolicy::Root, Err(e)) => Some(format!(
            "{ROOT_ONLY}, and the caller's credentials are unknown (SO_PEERCRED: {e})"
        )),
        (LiftPolicy::Root, Ok(uid)) if uid != 0 => {
            Some(format!("{ROOT_ONLY}, and the caller is uid {uid}"))
        }
        _ if running >= MAX_HANDLERS => Some(format!(
            "refused: too many lift requests at once (the limit is {MAX_HANDLERS} per container)"
        )),
        _ => None,
    }
}

/// ring1, before creating ring2: the tmpfs with the client and the socket. Returns the server and
/// the detached mount that ring2 attaches at [`crate::workspace::LIFT_DIR`].
pub(crate) fn setup(cfg: &ContainerConfig) -> Result<Option<(Server, OwnedFd)>> {
    if cfg.workspace.lift == LiftPolicy::Off {
        return Ok(None);
    }
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};
    let stage = "lift: prepare /.gocker";
    let fs = rustix::mount::fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| err(stage, format!("fsopen(tmpfs): {e}")))?;
    rustix::mount::fsconfig_set_string(&fs, "mode", "0755")
        .map_err(|e| err(stage, format!("fsconfig(mode): {e}")))?;
    rustix::mount::fsconfig_set_string(&fs, "size", "16m")
        .map_err(|e| err(stage, format!("fsconfig(size): {e}")))?;
    rustix::mount::fsconfig_create(&fs)
        .map_err(|e| err(stage, format!("fsconfig(create): {e}")))?;
    let mnt = rustix::mount::fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
    )
    .map_err(|e| err(stage, format!("fsmount(tmpfs): {e}")))?;
    let bin = rustix::fs::openat(
        &mnt,
        "lift",
        rustix::fs::OFlags::CREATE | rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::from_raw_mode(0o555),
    )
    .map_err(|e| err(stage, format!("create lift: {e}")))?;
    let mut f = std::fs::File::from(bin);
    std::io::Write::write_all(&mut f, BINARY)
        .map_err(|e| err(stage, format!("write lift: {e}")))?;
    drop(f);
    let listener = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .map_err(|e| err(stage, format!("socket: {e}")))?;
    // The detached tmpfs has no path; bind through the magic link of its descriptor.
    let path = format!("/proc/self/fd/{}/lift.sock", mnt.as_raw_fd());
    let addr =
        SocketAddrUnix::new(path.as_str()).map_err(|e| err(stage, format!("{path}: {e}")))?;
    rustix::net::bind(&listener, &addr).map_err(|e| err(stage, format!("bind {path}: {e}")))?;
    // Any uid of the container may connect; the policy is checked per connection.
    rustix::fs::chmodat(
        &mnt,
        "lift.sock",
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::AtFlags::empty(),
    )
    .map_err(|e| err(stage, format!("chmod lift.sock: {e}")))?;
    rustix::net::listen(&listener, 64).map_err(|e| err(stage, format!("listen: {e}")))?;
    Ok(Some((
        Server {
            listener,
            policy: cfg.workspace.lift,
            handlers: Vec::new(),
        },
        mnt,
    )))
}

impl Server {
    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// Accepts pending connections; refuses those that the policy or the bound on handlers
    /// refuses, and forks a handler for each other one. Never blocks.
    pub(crate) fn accept(&mut self, ring2: BorrowedFd<'_>) {
        let ring1 = rustix::process::getpid();
        loop {
            let conn = match rustix::net::accept_with(&self.listener, SocketFlags::CLOEXEC) {
                Ok(c) => c,
                Err(Errno::INTR) => continue,
                Err(_) => return, // EAGAIN: none left
            };
            // Checked here, before anything is forked: the peer's credentials are those of the
            // process that connected, translated into ring1's (the container's) user namespace.
            let uid = rustix::net::sockopt::socket_peercred(&conn).map(|c| c.uid.as_raw());
            self.prune();
            if let Some(why) = refusal(self.policy, uid, self.handlers.len()) {
                refuse(conn.as_fd(), &why);
                continue;
            }
            // SAFETY: ring1 is single-threaded; the child runs the handler and exits.
            match unsafe { gocker_ns::fork_into(NamespaceSet::EMPTY, None) } {
                Ok(Forked::Child) => handle(conn, ring2, ring1),
                // Reaped by ring1's wait loop; the pidfd tells when it has exited.
                Ok(Forked::Parent { pidfd, .. }) => self.handlers.push(pidfd),
                Err(e) => refuse(conn.as_fd(), &format!("ring1 cannot fork a handler: {e}")),
            }
        }
    }

    /// Forgets the handlers that have exited (their pidfd is readable).
    fn prune(&mut self) {
        if self.handlers.is_empty() {
            return;
        }
        let mut p: Vec<PollFd> = self
            .handlers
            .iter()
            .map(|h| PollFd::from_borrowed_fd(h.as_fd(), PollFlags::IN))
            .collect();
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if rustix::event::poll(&mut p, Some(&now)).is_err() {
            return; // keep counting them: the bound errs on the safe side
        }
        let exited: Vec<bool> = p.iter().map(|f| !f.revents().is_empty()).collect();
        drop(p);
        let mut exited = exited.into_iter();
        self.handlers.retain(|_| !exited.next().unwrap_or(false));
    }
}

fn send_with(conn: BorrowedFd<'_>, text: &str, flags: SendFlags) {
    let mut body = text.as_bytes().to_vec();
    body.push(0);
    let mut control = SendAncillaryBuffer::default();
    let _ = rustix::net::sendmsg(
        conn,
        &[IoSlice::new(&body)],
        &mut control,
        flags | SendFlags::NOSIGNAL,
    );
}

fn send(conn: BorrowedFd<'_>, text: &str) {
    send_with(conn, text, SendFlags::empty())
}

fn reply_err(conn: BorrowedFd<'_>, code: i32, msg: &str) {
    send(conn, &format!("err={code}:{}", msg.replace('\0', " ")));
}

/// ring1's own answer (status 125) to a connection it does not hand to a handler: never blocks
/// (a fresh connection's queue has room for it), and the connection is closed after it.
fn refuse(conn: BorrowedFd<'_>, msg: &str) {
    send_with(
        conn,
        &format!("err=125:{}", msg.replace('\0', " ")),
        SendFlags::DONTWAIT,
    );
}

/// One datagram and the descriptors that came with it.
type Datagram = (Vec<u8>, Vec<OwnedFd>);

/// Receives one datagram with descriptors, waiting at most `timeout`. `None` on EOF.
fn recv(
    conn: BorrowedFd<'_>,
    timeout: Option<Duration>,
) -> std::result::Result<Option<Datagram>, Errno> {
    if let Some(t) = timeout {
        let ts = Timespec {
            tv_sec: t.as_secs() as i64,
            tv_nsec: 0,
        };
        let mut p = [PollFd::from_borrowed_fd(conn, PollFlags::IN)];
        if rustix::event::poll(&mut p, Some(&ts))? == 0 {
            return Err(Errno::TIMEDOUT);
        }
    }
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(8))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let n = loop {
        match rustix::net::recvmsg(
            conn,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(Errno::INTR) => continue,
            Err(Errno::CONNRESET) => return Ok(None),
            Err(e) => return Err(e),
            Ok(r) => break r.bytes,
        }
    };
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(r) = m {
            fds.extend(r);
        }
    }
    if n == 0 {
        return Ok(None);
    }
    buf.truncate(n);
    Ok(Some((buf, fds)))
}

/// Makes the calling process non-dumpable, so that nothing in the container can ptrace it or open
/// its `/proc/PID/exe` (the host binary) once it or its children are in the container's
/// namespaces (CVE-2019-5736 class). ring1 is not necessarily non-dumpable itself: rootless, its
/// `setresuid(0)` leaves the host uid unchanged, so the kernel keeps it dumpable. An `execve`
/// inside makes the new program dumpable again as usual.
fn not_dumpable() -> std::result::Result<(), Errno> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
}

/// The handler, in a child of ring1 (which checked the policy). Never returns.
fn handle(conn: OwnedFd, ring2: BorrowedFd<'_>, ring1: Pid) -> ! {
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
    // ring1 may have died before the death signal was set.
    if rustix::process::getppid() != Some(ring1) {
        exit(125)
    }
    let conn = conn.as_fd();
    if let Err(e) = not_dumpable() {
        reply_err(conn, 125, &format!("prctl(PR_SET_DUMPABLE, 0): {e}"));
        exit(0)
    }
    let (body, fds) = match recv(conn, Some(REQUEST_TIMEOUT)) {
        Ok(Some(x)) => x,
        Ok(None) => exit(0),
        Err(Errno::TIMEDOUT) => {
            let secs = REQUEST_TIMEOUT.as_secs();
            reply_err(conn, 125, &format!("timed out: no request within {secs}s"));
            exit(0)
        }
        Err(e) => {
            reply_err(conn, 125, &format!("reading the request: {e}"));
            exit(0)
        }
    };
    let req = match Request::parse(&body) {
        Ok(r) => r,
        Err(e) => {
            reply_err(conn, 125, &e);
            exit(0)
        }
    };
    if fds.len() != 3 {
        reply_err(
            conn,
            125,
            &format!(
                "expected the caller's stdin, stdout and stderr, got {} descriptors",
                fds.len()
            ),
        );
        exit(0)
    }
    let join = NamespaceSet::EMPTY
        .with(Namespace::Mount)
        .with(Namespace::Pid);
    if let Err(e) = gocker_ns::enter_pidfd(ring2, join) {
        reply_err(conn, 125, &format!("joining the container: {e}"));
        exit(0)
    }
    let plan = match exec_plan(&req) {
        Ok(p) => p,
        Err(e) => {
            reply_err(conn, 125, &e.to_string());
            exit(0)
        }
    };
    let handler = match rustix::process::pidfd_open(
        rustix::process::getpid(),
        rustix::process::PidfdFlags::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => {
            reply_err(conn, 125, &format!("pidfd_open: {e}"));
            exit(0)
        }
    };
    // SAFETY: this handler is single-threaded.
    let (pid, pidfd) = match unsafe { gocker_ns::fork_into(NamespaceSet::EMPTY, None) } {
        Ok(Forked::Child) => {
            let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
            // The handler's pid, seen from the joined PID namespace, is 0: check its pidfd instead.
            if crate::sys::die_with_parent(&crate::sys::Parent::Pidfd(handler.as_fd())).is_err() {
                exit(125)
            }
            let r = (|| -> std::result::Result<(), Errno> {
                rustix::stdio::dup2_stdin(&fds[0])?;
                rustix::stdio::dup2_stdout(&fds[1])?;
                rustix::stdio::dup2_stderr(&fds[2])?;
                Ok(())
            })();
            if let Err(e) = r {
                reply_err(conn, 125, &format!("stdio: {e}"));
                exit(125)
            }
            drop(fds);
            let _ = rustix::process::chdir(req.cwd.as_deref().unwrap_or("/"))
                .or_else(|_| rustix::process::chdir("/"));
            crate::process::reset_signals();
            // No descriptor of ring1 reaches the command.
            let _ = crate::process::cloexec_from(3);
            let errno = plan.exec();
            let (code, what) = if errno == Errno::NOENT {
                (127, "not found")
            } else {
                (126, "cannot execute")
            };
            reply_err(conn, code, &format!("{}: {what} ({errno})", plan.cmd));
            exit(code)
        }
        Ok(Forked::Parent { pid, pidfd }) => (pid, pidfd),
        Err(e) => {
            reply_err(conn, 125, &format!("fork: {e}"));
            exit(0)
        }
    };
    drop(fds);
    let mut client = true;
    loop {
        let mut p = vec![PollFd::from_borrowed_fd(pidfd.as_fd(), PollFlags::IN)];
        if client {
            p.push(PollFd::from_borrowed_fd(conn, PollFlags::IN));
        }
        match rustix::event::poll(&mut p, None) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(_) => exit(125),
        }
        let exited = !p[0].revents().is_empty();
        let msg = p.get(1).map(|c| !c.revents().is_empty()).unwrap_or(false);
        drop(p);
        if msg {
            match recv(conn, None) {
                Ok(Some((body, _))) => {
                    let text = String::from_utf8_lossy(&body);
                    if let Some(n) = text
                        .trim_end_matches('\0')
                        .strip_prefix("sig=")
                        .and_then(|n| n.parse::<i32>().ok())
                    {
                        if (1..=64).contains(&n) {
                            // SAFETY: the number is range-checked; the kernel validates it further.
                            let _ = rustix::process::pidfd_send_signal(&pidfd, unsafe {
                                Signal::from_raw_unchecked(n)
                            });
                        }
                    }
                }
                // The client is gone (killed): the command goes with it.
                Ok(None) | Err(_) => {
                    client = false;
                    let _ = rustix::process::pidfd_send_signal(&pidfd, Signal::KILL);
                }
            }
        }
        if exited {
            let Ok(status) = crate::sys::wait_status(pid) else {
                exit(125)
            };
            send(conn, &format!("exit={}", status.code()));
            exit(0)
        }
    }
}

fn exec_plan(req: &Request) -> Result<crate::process::ExecPlan> {
    let mut env = req.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={}", crate::process::DEFAULT_PATH));
    }
    let p = oci_spec::runtime::ProcessBuilder::default()
        .args(req.args.clone())
        .env(env)
        .build()
        .map_err(|e| RuntimeError::Config(e.to_string()))?;
    crate::process::ExecPlan::new(&p)
}

/// Runs `argv` in a child of ring1 joined to `set` of the process behind `target` (ring2), with
/// ring1's stdio and credentials; waits at most `timeout`. Used for the enclave command.
pub(crate) fn run_joined(
    target: BorrowedFd<'_>,
    set: NamespaceSet,
    argv: &[String],
    timeout: Duration,
) -> Result<ExitStatus> {
    let req = Request {
        args: argv.to_vec(),
        env: vec![format!("PATH={}", crate::process::DEFAULT_PATH)],
        ..Default::default()
    };
    let plan = exec_plan(&req)?;
    let ring1 = rustix::process::getpid().as_raw_nonzero().get();
    // SAFETY: ring1 is single-threaded.
    match unsafe { gocker_ns::fork_into(NamespaceSet::EMPTY, None) }? {
        Forked::Child => {
            if crate::sys::die_with_parent(&crate::sys::Parent::Pid(ring1)).is_err() {
                exit(125)
            }
            if let Err(e) = not_dumpable() {
                eprintln!("gocker: enclave: prctl(PR_SET_DUMPABLE, 0): {e}");
                exit(125)
            }
            if let Err(e) = gocker_ns::enter_pidfd(target, set) {
                eprintln!("gocker: enclave: {e}");
                exit(125)
            }
            crate::process::reset_signals();
            let _ = crate::process::cloexec_from(3);
            let errno = plan.exec();
            eprintln!("gocker: enclave: exec {}: {errno}", plan.cmd);
            exit(if errno == Errno::NOENT { 127 } else { 126 })
        }
        Forked::Parent { pid, pidfd } => {
            let ts = Timespec {
                tv_sec: timeout.as_secs() as i64,
                tv_nsec: 0,
            };
            let mut p = [PollFd::from_borrowed_fd(pidfd.as_fd(), PollFlags::IN)];
            let ready = loop {
                match rustix::event::poll(&mut p, Some(&ts)) {
                    Err(Errno::INTR) => continue,
                    Err(e) => return Err(err("enclave", format!("poll: {e}"))),
                    Ok(n) => break n > 0,
                }
            };
            if !ready {
                let _ = rustix::process::pidfd_send_signal(&pidfd, Signal::KILL);
            }
            let st = crate::sys::wait_status(pid)
                .map_err(|e| err("enclave", format!("waitpid: {e}")))?;
            if !ready {
                return Err(RuntimeError::Timeout {
                    stage: format!("the enclave command {argv:?}"),
                    after: timeout,
                });
            }
            Ok(st)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_parses_and_rejects() {
        let body = b"v=1\0tty=1\0cwd=/work\0env=A=b=c\0arg=sh\0arg=-c\0arg=exit 3\0";
        let r = Request::parse(body).unwrap();
        assert_eq!(
            r,
            Request {
                tty: true,
                cwd: Some("/work".into()),
                env: vec!["A=b=c".into()],
                args: vec!["sh".into(), "-c".into(), "exit 3".into()]
            }
        );
        assert!(Request::parse(b"arg=x\0").unwrap_err().contains("version"));
        assert!(Request::parse(b"v=2\0arg=x\0")
            .unwrap_err()
            .contains("version 2"));
        assert!(Request::parse(b"v=1\0").unwrap_err().contains("no command"));
    }

    #[test]
    fn ring1_refuses_by_policy_first_then_by_the_bound() {
        let root = LiftPolicy::Root;
        assert_eq!(refusal(root, Ok(0), 0), None);
        assert_eq!(refusal(LiftPolicy::On, Ok(1000), MAX_HANDLERS - 1), None);
        let r = refusal(root, Ok(1000), 0).unwrap();
        assert!(r.contains("--lift=root") && r.ends_with("uid 1000"), "{r}");
        // The policy is named even when the bound is reached too.
        assert!(refusal(root, Ok(1000), MAX_HANDLERS)
            .unwrap()
            .contains("uid 1000"));
        let r = refusal(root, Err(Errno::NOTCONN), 0).unwrap();
        assert!(r.contains("unknown"), "{r}");
        for p in [root, LiftPolicy::On] {
            let r = refusal(p, Ok(0), MAX_HANDLERS).unwrap();
            assert!(r.contains(&format!("the limit is {MAX_HANDLERS}")), "{r}");
        }
        assert!(refusal(LiftPolicy::Off, Ok(0), 0).is_some());
    }

    #[test]
    fn the_embedded_client_is_static() {
        // An ELF without a PT_INTERP program header needs no dynamic loader (no libc in the container).
        assert_eq!(&BINARY[..4], b"\x7fELF");
        let phoff = u64::from_le_bytes(BINARY[0x20..0x28].try_into().unwrap()) as usize;
        let phentsize = u16::from_le_bytes(BINARY[0x36..0x38].try_into().unwrap()) as usize;
        let phnum = u16::from_le_bytes(BINARY[0x38..0x3a].try_into().unwrap()) as usize;
        for i in 0..phnum {
            let off = phoff + i * phentsize;
            let typ = u32::from_le_bytes(BINARY[off..off + 4].try_into().unwrap());
            assert_ne!(typ, 3, "lift has a PT_INTERP header: it is not static");
        }
    }
}
