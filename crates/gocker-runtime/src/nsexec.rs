//! `gocker exec`: run another process inside a running container — joined to all of its
//! namespaces through a pidfd, placed in its cgroup, with the same privilege drop as the payload.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use gocker_ns::{Forked, Namespace, NamespaceSet};
use oci_spec::runtime::Process;
use rustix::process::{Pid, PidfdFlags};

use crate::process::{self, ExecPlan};
use crate::state::{ContainerState, StateStore};
use crate::sys::exit;
use crate::{ExitStatus, Result, RuntimeError};

/// What to run: the container's spec process with these overrides.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub args: Vec<String>,
    /// Extra `K=V` variables (override the container's).
    pub env: Vec<String>,
    pub cwd: Option<String>,
    pub user: Option<(u32, u32)>,
    /// A pseudo-terminal of the container's devpts (relayed to the caller's stdin/stdout).
    pub tty: bool,
    /// Forward stdin (with `tty`: to the terminal).
    pub stdin: bool,
    /// With `tty`: send the terminal's master to this unix socket (runc's console socket
    /// protocol) instead of relaying it.
    pub console_socket: Option<std::path::PathBuf>,
    /// With `tty`: the terminal's initial size (`process.consoleSize`); else the caller's.
    pub console_size: Option<oci_spec::runtime::Box>,
    /// With `tty` and `stdin`, relayed: typing these keys detaches from the terminal (`gocker
    /// exec -it`); the process keeps running and its further output is discarded, as docker's.
    pub detach_keys: Option<crate::keys::DetachKeys>,
}

/// How an [`exec`] ended for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecEnd {
    /// The process exited with this status.
    Exited(ExitStatus),
    /// The caller typed the detach keys; the process goes on without a terminal reader.
    Detached,
}

/// Runs `req` in the container of `st` with the caller's stdio; returns how it ended.
/// The caller must be single-threaded (it forks).
pub fn exec(store: &StateStore, st: &ContainerState, req: &ExecRequest) -> Result<ExecEnd> {
    match exec_inner(store, st, req, false)? {
        Outcome::Exited(s) => Ok(ExecEnd::Exited(s)),
        Outcome::Left => Ok(ExecEnd::Detached),
        Outcome::Detached(_) => Err(RuntimeError::Protocol("exec detached unexpectedly".into())),
    }
}

/// Like [`exec`], but returns once the process has exec'd, with its host pid (`runc exec
/// --detach`): the intermediate process exits, so the new one is reparented to the caller's
/// subreaper (conmon, a containerd shim), which reaps it.
pub fn exec_detached(store: &StateStore, st: &ContainerState, req: &ExecRequest) -> Result<i32> {
    match exec_inner(store, st, req, true)? {
        Outcome::Detached(pid) => Ok(pid),
        Outcome::Exited(s) => Err(RuntimeError::Protocol(format!(
            "detached exec ended with {s:?} before reporting its pid"
        ))),
        Outcome::Left => Err(RuntimeError::Protocol(
            "detach keys in a detached exec".into(),
        )),
    }
}

enum Outcome {
    Exited(ExitStatus),
    /// `--detach`: the new process's host pid.
    Detached(i32),
    /// The detach keys were typed while relaying its terminal.
    Left,
}

fn exec_inner(
    store: &StateStore,
    st: &ContainerState,
    req: &ExecRequest,
    detach: bool,
) -> Result<Outcome> {
    if st.status == crate::Status::Stopped || !StateStore::monitor_alive(st) {
        return Err(RuntimeError::Config(format!(
            "container {} is not running",
            st.name
        )));
    }
    let pid = st
        .pid
        .and_then(Pid::from_raw)
        .ok_or_else(|| RuntimeError::Config("no payload pid".into()))?;
    let pidfd = rustix::process::pidfd_open(pid, PidfdFlags::empty())
        .map_err(|e| RuntimeError::sys("pidfd_open", format!("pid {pid:?}"), e))?;
    let spec_path = store.container_dir(&st.id).join("config.json");
    let spec = crate::bundle::load_spec(&spec_path)?;
    let mut p: Process = spec
        .process()
        .clone()
        .ok_or_else(|| RuntimeError::Config("spec has no process".into()))?;
    p.set_args(Some(req.args.clone()));
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &req.env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(c) = &req.cwd {
        p.set_cwd(c.into());
    }
    if let Some((u, g)) = req.user {
        p.user_mut().set_uid(u);
        p.user_mut().set_gid(g);
    }
    let plan = ExecPlan::new(&p)?;
    // The container's filter, compiled (or taken from the cache) before the fork. There is no
    // supervisor for an exec'd process: notify rules become EPERM.
    let mut notes = Vec::new();
    let filter = match crate::seccomp::compile_spec_without_notify(&spec, &mut notes)? {
        Some(b) => Some(gocker_seccomp::load::Prepared::new(
            &b,
            gocker_seccomp::LoadFlags {
                listener: false,
                ..gocker_seccomp::LoadFlags::for_program(&b)
            },
        )?),
        None => None,
    };
    for n in &notes {
        tracing::debug!("{n}");
    }
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let target = pid.as_raw_nonzero().get();
    let join = gocker_ns::differing(me, target).without(Namespace::Time);
    let setgroups = std::fs::read_to_string(format!("/proc/{target}/setgroups"))
        .map(|s| s.trim() == "allow")
        .unwrap_or(false);
    let (err_r, err_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| RuntimeError::sys("pipe", "exec", e))?;
    let tty_chan = if req.tty {
        Some(crate::channel::pair()?)
    } else {
        None
    };
    let owner = (p.user().uid(), p.user().gid());

    // SAFETY: the caller is single-threaded (documented).
    match unsafe { gocker_ns::fork_into(NamespaceSet::EMPTY, None) }? {
        Forked::Child => {
            drop(err_r);
            let fail = |stage: &str, e: &dyn std::fmt::Display| -> ! {
                let _ = rustix::io::write(&err_w, format!("{stage}: {e}").as_bytes());
                exit(125)
            };
            if req.tty && req.console_socket.is_none() {
                // Off the caller's terminal session: after a detach (the caller exits) its hangup
                // must not reach this process, whose death would kill the exec'd one (its parent-
                // death signal). The exec'd process has a session and a terminal of its own.
                let _ = rustix::process::setsid();
            }
            // This process is the host's runtime binary and is about to enter the container. It
            // prepares the exec'd process completely — working directory, limits, identity,
            // capabilities, seccomp — *before* it forks into the container's PID namespace, so
            // that no process the container can see ever runs unfiltered or privileged. It is
            // non-dumpable throughout (no ptrace, no /proc/PID/exe for the container), and none
            // of the caller's descriptors survive the exec (the CVE-2024-21626 sweep of ring2).
            if let Err(e) = process::set_non_dumpable() {
                fail("prepare", &e);
            }
            // The caller's descriptors are close-on-exec before we join anything.
            if let Err(e) = process::cloexec_from(3) {
                fail("close-on-exec sweep of fds >= 3", &e);
            }
            if let Some(cg) = &st.cgroup {
                if let Err(e) = std::fs::write(cg.join("cgroup.procs"), "0") {
                    fail(&format!("join cgroup {}", cg.display()), &e);
                }
            }
            if let Err(e) = gocker_ns::enter_pidfd(pidfd.as_fd(), join) {
                fail("join the container's namespaces", &e);
            }
            let r = (|| -> Result<Option<OwnedFd>> {
                let mut peer = None;
                if let Some((_, child_end)) = &tty_chan {
                    // The container's /dev/ptmx: this process is in its mount namespace now.
                    let (master, p) = crate::tty::open_pair()?;
                    crate::tty::initial_size(master.as_fd(), req.console_size.as_ref());
                    child_end.send(&(), &[master.as_fd()])?;
                    crate::tty::chown_peer(p.as_fd(), owner);
                    peer = Some(p);
                }
                gocker_mounts::resolve::enter_dir(p.cwd()).map_err(|e| RuntimeError::Ring {
                    stage: "set working directory (process.cwd)".into(),
                    message: e.to_string(),
                })?;
                process::preamble(&p, &spec, 3)?;
                let load = filter
                    .as_ref()
                    .map(|f| move || -> Result<()> { f.load().map(drop).map_err(Into::into) });
                process::become_payload(
                    &p,
                    setgroups,
                    load.as_ref().map(|l| l as &dyn Fn() -> Result<()>),
                    &|| Ok(()),
                )?;
                Ok(peer)
            })();
            let peer = match r {
                Ok(peer) => peer,
                Err(e) => fail("prepare", &e),
            };
            // setns and the identity change reset the dumpable flag (fs.suid_dumpable): set it
            // again, for the child to inherit.
            if let Err(e) = process::set_non_dumpable() {
                fail("prepare", &e);
            }
            // Joining a PID namespace applies to children: fork once more, under the filter
            // (clone(2) with no flags but the exit signal: the default profiles refuse clone3).
            // SAFETY: this child is single-threaded; without CLONE_VM the new process gets a
            // copy of the address space and returns here on its own copy of the stack.
            let forked = unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    libc::SIGCHLD as libc::c_ulong,
                    0usize,
                    0usize,
                    0usize,
                    0usize,
                )
            } as i32;
            if forked < 0 {
                fail(
                    "fork into the PID namespace",
                    &std::io::Error::last_os_error(),
                );
            }
            if forked > 0 {
                if detach {
                    // The host pid (fork returns it in our own, the host's, PID namespace).
                    let _ = rustix::io::write(&err_w, format!("pid:{forked}\n").as_bytes());
                    exit(0)
                }
                forward_signals_to(forked);
                match Pid::from_raw(forked).map(crate::sys::wait_status) {
                    Some(Ok(s)) => exit(s.code()),
                    _ => exit(125),
                }
            }
            // In the container's PID namespace, already filtered and with its final identity.
            // Detached, the parent exits at once: the process must outlive it.
            if !detach {
                let _ = rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ));
            }
            match peer {
                Some(peer) => {
                    if let Err(e) = crate::tty::become_controlled(peer, None) {
                        fail("attach the terminal", &e);
                    }
                }
                // A session of its own: no TIOCSTI into the caller's terminal.
                None => {
                    if let Err(e) = rustix::process::setsid() {
                        fail("setsid", &e);
                    }
                }
            }
            let errno = plan.exec();
            let _ = rustix::io::write(
                &err_w,
                format!("exec:{}:{}", errno.raw_os_error(), plan.cmd).as_bytes(),
            );
            exit(if errno == rustix::io::Errno::NOENT {
                127
            } else {
                126
            })
        }
        Forked::Parent { pid, pidfd: child } => {
            drop(err_w);
            let pid = Pid::from_raw(pid).expect("positive");
            if let Some((mine, theirs)) = tty_chan {
                drop(theirs);
                if let Some(((), mut fds)) = mine.recv::<()>(
                    Some(std::time::Duration::from_secs(10)),
                    "the exec'd process's terminal",
                )? {
                    match (fds.pop(), &req.console_socket) {
                        (Some(master), Some(sock)) => {
                            crate::tty::send_console(sock, master.as_fd())?
                        }
                        (Some(master), None) => {
                            let keys = req.detach_keys.clone().filter(|_| req.stdin);
                            if let Some(master) =
                                relay_until_exit(master, req.stdin, keys, child.as_fd())
                            {
                                keep_draining(master)?;
                                return Ok(Outcome::Left);
                            }
                        }
                        (None, _) => {}
                    }
                }
            }
            let status = crate::sys::wait_status(pid)
                .map_err(|e| RuntimeError::sys("waitpid", "exec", e))?;
            let mut msg = String::new();
            // EOF once every writer is gone: with --detach, when the new process has exec'd.
            let _ = std::fs::File::from(err_r).read_to_string(&mut msg);
            let mut detached = None;
            if let Some(rest) = msg.strip_prefix("pid:") {
                let (n, tail) = rest.split_once('\n').unwrap_or((rest, ""));
                detached = n.parse::<i32>().ok();
                msg = tail.to_owned();
            }
            if let Some(rest) = msg.strip_prefix("exec:") {
                let (errno, cmd) = rest.split_once(':').unwrap_or(("2", rest));
                let e = rustix::io::Errno::from_raw_os_error(errno.parse().unwrap_or(2));
                return Err(if e == rustix::io::Errno::NOENT {
                    RuntimeError::ExecNotFound {
                        cmd: cmd.to_owned(),
                    }
                } else {
                    RuntimeError::ExecFailed {
                        cmd: cmd.to_owned(),
                        reason: std::io::Error::from(e).to_string(),
                        not_found: false,
                    }
                });
            }
            if !msg.is_empty() {
                let (stage, message) = msg.split_once(": ").unwrap_or(("exec", &msg));
                return Err(RuntimeError::Ring {
                    stage: stage.to_owned(),
                    message: message.to_owned(),
                });
            }
            match (detach, detached) {
                (false, _) => Ok(Outcome::Exited(status)),
                (true, Some(pid)) => Ok(Outcome::Detached(pid)),
                (true, None) => Err(RuntimeError::Protocol(format!(
                    "detached exec reported no pid (intermediate: {status:?})"
                ))),
            }
        }
    }
}

/// The exec'd process's host pid, for [`forward_signals_to`]'s handler.
static FORWARD_TO: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = FORWARD_TO.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe and touches no memory of ours.
        unsafe { libc::kill(pid, sig) };
    }
}

/// In the intermediate process: the exec'd process has a session of its own, so the caller's
/// terminal no longer signals it directly; the intermediate (still in the caller's process group)
/// passes on what the terminal and the caller send it.
fn forward_signals_to(pid: i32) {
    FORWARD_TO.store(pid, std::sync::atomic::Ordering::Relaxed);
    for sig in [
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
    ] {
        // SAFETY: the handler only calls the async-signal-safe kill(2) with an atomic's value.
        unsafe { libc::signal(sig, forward_signal as *const () as libc::sighandler_t) };
    }
}

/// Relays the terminal until `child` (a pidfd) exits, then flushes the remaining output. When
/// `keys` are typed first, stops and returns the master (our terminal restored).
fn relay_until_exit(
    master: OwnedFd,
    stdin: bool,
    keys: Option<crate::keys::DetachKeys>,
    child: std::os::fd::BorrowedFd<'_>,
) -> Option<OwnedFd> {
    use rustix::event::{PollFd, PollFlags};
    let mut relay = crate::tty::Relay::new(master, stdin);
    if let Some(k) = keys {
        relay = relay.with_detach_keys(k);
    }
    loop {
        let mut fds = vec![PollFd::from_borrowed_fd(child, PollFlags::IN)];
        fds.extend(relay.poll_fds());
        match rustix::event::poll(&mut fds, None) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return None,
            Ok(_) => {}
        }
        let exited = !fds[0].revents().is_empty();
        drop(fds);
        if relay.service() {
            return Some(relay.into_master());
        }
        if exited {
            relay.drain_output();
            return None;
        }
    }
}

/// After a detach: a process of its own (a new session, off our terminal) holds the master and
/// discards the output until the last slave descriptor closes, so that the exec'd process neither
/// gets a hangup nor blocks on a full terminal. Its intermediate parent, our child, is reparented
/// when we exit and reaps it. The caller must be single-threaded.
fn keep_draining(master: OwnedFd) -> Result<()> {
    let (ready_r, ready_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| RuntimeError::sys("pipe", "exec terminal keeper", e))?;
    // SAFETY: documented requirement: the caller is single-threaded.
    match unsafe { gocker_ns::fork_into(NamespaceSet::EMPTY, None) }? {
        Forked::Child => {
            drop(ready_r);
            let _ = rustix::process::setsid();
            // Our parent waits for this before it exits: its exit hangs up its terminal, whose
            // SIGHUP must find us in a session of our own already.
            drop(ready_w);
            process::stdio_to_null(true, true, true);
            let mut buf = [0u8; 16384];
            loop {
                match rustix::io::read(&master, &mut buf) {
                    Ok(0) | Err(rustix::io::Errno::IO) => exit(0),
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(_) => exit(0),
                }
            }
        }
        Forked::Parent { .. } => {
            drop(ready_w);
            let mut b = [0u8; 1];
            // EOF once the keeper has its own session (or died).
            while let Err(rustix::io::Errno::INTR) = rustix::io::read(&ready_r, &mut b) {}
            Ok(())
        }
    }
}
