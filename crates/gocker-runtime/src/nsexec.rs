//! `gocker exec`: run another process inside a running container — joined to all of its
//! namespaces through a pidfd, placed in its cgroup, with the same privilege drop as the payload.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use gocker_ns::{Forked, Namespace, NamespaceSet};
use oci_spec::runtime::Process;
use rustix::process::{Pid, PidfdFlags};

use crate::initsys::ExecSys;
use crate::process::{self, ExecPlan};
use crate::proto::Report;
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
            let fail = |msg: &str| -> ! {
                Report::failed(msg).send(&err_w);
                exit(125)
            };
            let mut k = Kernel {
                pidfd: pidfd.as_fd(),
                tty: tty_chan.as_ref().map(|(_, c)| c),
                console_size: req.console_size.as_ref(),
                owner,
                peer: None,
            };
            let steps = Steps {
                leave_session: req.tty && req.console_socket.is_none(),
                cgroup: st.cgroup.as_deref(),
                join,
                tty: req.tty,
                process: &p,
                spec: &spec,
                setgroups,
                filter: filter.as_ref(),
                detach,
                plan: &plan,
            };
            match become_exec(&mut k, &steps) {
                ChildEnd::Failed(msg) => fail(&msg),
                ChildEnd::Intermediate(forked) => {
                    if detach {
                        // The host pid (fork returns it in our own, the host's, PID namespace).
                        Report::Pid(forked).send(&err_w);
                        exit(0)
                    }
                    forward_signals_to(forked);
                    match Pid::from_raw(forked).map(crate::sys::wait_status) {
                        Some(Ok(s)) => exit(s.code()),
                        _ => exit(125),
                    }
                }
                ChildEnd::ExecFailed(errno) => {
                    Report::ExecFailed {
                        errno: errno.raw_os_error(),
                        cmd: plan.cmd.clone(),
                    }
                    .send(&err_w);
                    exit(if errno == rustix::io::Errno::NOENT {
                        127
                    } else {
                        126
                    })
                }
            }
        }
        Forked::Parent { pid, pidfd: child } => {
            drop(err_w);
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
            for report in Report::parse_all(&msg) {
                match report {
                    Report::Pid(p) => detached = Some(p),
                    Report::ExecFailed { errno, cmd } => {
                        return Err(crate::proto::exec_error(cmd, errno))
                    }
                    Report::Failed { stage, message } => {
                        return Err(RuntimeError::Ring { stage, message })
                    }
                    Report::Started { .. } | Report::Refused { .. } => {}
                }
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

/// What the process that enters the container ([`become_exec`]) is given.
struct Steps<'a> {
    /// Off the caller's terminal session (`-t` relayed by us).
    leave_session: bool,
    cgroup: Option<&'a std::path::Path>,
    /// The namespaces in which the container differs from us.
    join: NamespaceSet,
    tty: bool,
    process: &'a Process,
    spec: &'a oci_spec::runtime::Spec,
    setgroups: bool,
    filter: Option<&'a gocker_seccomp::load::Prepared>,
    detach: bool,
    plan: &'a ExecPlan,
}

/// How [`become_exec`] ended.
enum ChildEnd {
    /// `stage: error`, for the caller.
    Failed(String),
    /// In the intermediate process: the exec'd one's host pid.
    Intermediate(i32),
    /// In the exec'd process: `execve` failed.
    ExecFailed(rustix::io::Errno),
}

/// The order of `exec`'s steps, in the child of the caller: non-dumpable, the caller's
/// descriptors close-on-exec, the cgroup, the container's namespaces, terminal and working
/// directory, the same preamble and privilege drop as the container's init (seccomp included),
/// then the fork into the container's PID namespace and the exec. Every step goes through `sys`
/// ([`crate::initsys`]).
fn become_exec(sys: &mut dyn ExecSys, x: &Steps<'_>) -> ChildEnd {
    let fail = |stage: &str, e: &dyn std::fmt::Display| ChildEnd::Failed(format!("{stage}: {e}"));
    if x.leave_session {
        // Off the caller's terminal session: after a detach (the caller exits) its hangup
        // must not reach this process, whose death would kill the exec'd one (its parent-
        // death signal). The exec'd process has a session and a terminal of its own.
        sys.leave_session();
    }
    // This process is the host's runtime binary and is about to enter the container. It
    // prepares the exec'd process completely — working directory, limits, identity,
    // capabilities, seccomp — *before* it forks into the container's PID namespace, so
    // that no process the container can see ever runs unfiltered or privileged. It is
    // non-dumpable throughout (no ptrace, no /proc/PID/exe for the container), and none
    // of the caller's descriptors survive the exec (the CVE-2024-21626 sweep of ring2).
    if let Err(e) = sys.set_non_dumpable() {
        return fail("prepare", &e);
    }
    // The caller's descriptors are close-on-exec before we join anything.
    if let Err(e) = sys.cloexec_from(3) {
        return fail("close-on-exec sweep of fds >= 3", &e);
    }
    if let Some(cg) = x.cgroup {
        if let Err(e) = sys.join_cgroup(cg) {
            return fail(&format!("join cgroup {}", cg.display()), &e);
        }
    }
    if let Err(e) = sys.join(x.join) {
        return fail("join the container's namespaces", &e);
    }
    let r = (|| -> Result<()> {
        if x.tty {
            sys.open_terminal()?;
        }
        sys.enter_cwd(x.process.cwd())?;
        process::preamble(sys, x.process, x.spec, 3)?;
        process::become_payload(sys, x.process, x.setgroups, x.filter)
    })();
    if let Err(e) = r {
        return fail("prepare", &e);
    }
    // setns and the identity change reset the dumpable flag (fs.suid_dumpable): set it
    // again, for the child to inherit.
    if let Err(e) = sys.set_non_dumpable() {
        return fail("prepare", &e);
    }
    // Joining a PID namespace applies to children: fork once more, under the filter.
    let forked = match sys.fork_into_pidns() {
        Ok(f) => f,
        Err(e) => return fail("fork into the PID namespace", &e),
    };
    if forked > 0 {
        return ChildEnd::Intermediate(forked);
    }
    // In the container's PID namespace, already filtered and with its final identity.
    // Detached, the parent exits at once: the process must outlive it.
    if !x.detach {
        sys.die_with_parent();
    }
    if x.tty {
        if let Err(e) = sys.controlling_terminal() {
            return fail("attach the terminal", &e);
        }
    } else if let Err(e) = sys.new_session() {
        // A session of its own: no TIOCSTI into the caller's terminal.
        return fail("setsid", &e);
    }
    ChildEnd::ExecFailed(sys.exec(x.plan))
}

/// [`ExecSys`] carried out.
struct Kernel<'a> {
    /// The container's init.
    pidfd: std::os::fd::BorrowedFd<'a>,
    /// `-t`: where the terminal's master goes.
    tty: Option<&'a crate::channel::Channel>,
    console_size: Option<&'a oci_spec::runtime::Box>,
    owner: (u32, u32),
    /// The terminal's slave, once opened.
    peer: Option<OwnedFd>,
}

impl process::KernelHooks for Kernel<'_> {
    fn load_seccomp(&mut self, filter: &gocker_seccomp::load::Prepared) -> Result<()> {
        // There is no supervisor for an exec'd process: the filter has no listener.
        filter.load().map(drop).map_err(Into::into)
    }
    fn after_identity(&mut self) -> Result<()> {
        Ok(())
    }
}

impl ExecSys for Kernel<'_> {
    fn leave_session(&mut self) {
        let _ = rustix::process::setsid();
    }
    fn join_cgroup(&mut self, cgroup: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(cgroup.join("cgroup.procs"), "0")
    }
    fn join(&mut self, set: NamespaceSet) -> Result<()> {
        Ok(gocker_ns::enter_pidfd(self.pidfd, set)?)
    }
    fn open_terminal(&mut self) -> Result<()> {
        let Some(chan) = self.tty else {
            return Ok(());
        };
        // The container's /dev/ptmx: this process is in its mount namespace now.
        let (master, p) = crate::tty::open_pair()?;
        crate::tty::initial_size(master.as_fd(), self.console_size);
        chan.send(&(), &[master.as_fd()])?;
        crate::tty::chown_peer(p.as_fd(), self.owner);
        self.peer = Some(p);
        Ok(())
    }
    fn enter_cwd(&mut self, cwd: &std::path::Path) -> Result<()> {
        gocker_mounts::resolve::enter_dir(cwd).map_err(|e| RuntimeError::Ring {
            stage: "set working directory (process.cwd)".into(),
            message: e.to_string(),
        })
    }
    fn fork_into_pidns(&mut self) -> std::io::Result<i32> {
        // clone(2) with no flags but the exit signal: the default profiles refuse clone3. Without
        // CLONE_VM the new process gets a copy of the address space and returns here on its own
        // copy of the stack.
        // SAFETY: this process is single-threaded; nothing is shared with the copy.
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
            return Err(std::io::Error::last_os_error());
        }
        Ok(forked)
    }
    fn die_with_parent(&mut self) {
        let _ =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    }
    fn controlling_terminal(&mut self) -> Result<()> {
        match self.peer.take() {
            Some(peer) => crate::tty::become_controlled(peer, None),
            None => Ok(()),
        }
    }
    fn new_session(&mut self) -> rustix::io::Result<()> {
        rustix::process::setsid().map(drop)
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

#[cfg(test)]
mod tests {
    use gocker_ns::{Namespace, NamespaceSet};

    use super::{become_exec, ChildEnd, Steps};
    use crate::initsys::{test_config, Recording};
    use crate::process::ExecPlan;

    /// `exec` into a container that differs from us in these namespaces, in its cgroup.
    fn exec(tty: bool, fork_returns: i32) -> (Recording, ChildEnd) {
        let cfg = test_config();
        let p = cfg.spec.process().clone().expect("process");
        let plan = ExecPlan::new(&p).expect("plan");
        let filter = cfg.seccomp.as_ref().map(|b| {
            gocker_seccomp::load::Prepared::new(b, gocker_seccomp::LoadFlags::for_program(b))
                .expect("filter")
        });
        let join = [
            Namespace::User,
            Namespace::Mount,
            Namespace::Pid,
            Namespace::Net,
        ]
        .into_iter()
        .fold(NamespaceSet::EMPTY, NamespaceSet::with);
        let steps = Steps {
            leave_session: tty,
            cgroup: Some(std::path::Path::new("/sys/fs/cgroup/c1")),
            join,
            tty,
            process: &p,
            spec: &cfg.spec,
            setgroups: true,
            filter: filter.as_ref(),
            detach: false,
            plan: &plan,
        };
        let mut rec = Recording {
            fork_returns,
            ..Default::default()
        };
        let end = become_exec(&mut rec, &steps);
        (rec, end)
    }

    fn joined() -> String {
        let set = [
            Namespace::User,
            Namespace::Mount,
            Namespace::Pid,
            Namespace::Net,
        ]
        .into_iter()
        .fold(NamespaceSet::EMPTY, NamespaceSet::with);
        format!("setns(pidfd, {set})")
    }

    #[test]
    fn exec_sweeps_the_callers_descriptors_before_joining_and_drops_privileges_before_the_pid_ns() {
        let (rec, end) = exec(false, 0);
        assert!(matches!(end, ChildEnd::ExecFailed(_)));
        assert_eq!(
            rec.log,
            [
                "nondumpable".to_string(),
                // Nothing of the caller's reaches the container (CVE-2024-21626).
                "cloexec(3)".into(),
                "join cgroup /sys/fs/cgroup/c1".into(),
                // One setns(2) through the pidfd: the kernel enters the user namespace first.
                joined(),
                "chdir /".into(),
                // The same preamble and drop as the container's init.
                "cloexec(3)".into(),
                "rlimits".into(),
                "personality".into(),
                "bounding".into(),
                "setresuid(0)".into(),
                "capset".into(),
                "nondumpable".into(),
                "after identity".into(),
                "nnp".into(),
                "signals".into(),
                "seccomp".into(),
                // Re-set after the credential change, for the child to inherit.
                "nondumpable".into(),
                "clone into pid ns".into(),
                "pdeathsig".into(),
                "setsid".into(),
                "exec sh".into(),
            ]
        );
    }

    #[test]
    fn exec_with_a_terminal_opens_it_in_the_container_before_the_drop() {
        let (rec, _) = exec(true, 0);
        assert_eq!(rec.log[0], "leave session");
        rec.before(&joined(), "terminal");
        rec.before("terminal", "chdir /");
        rec.before("clone into pid ns", "controlling terminal");
        rec.before("controlling terminal", "exec sh");
        assert!(!rec.has("setsid"));
    }

    #[test]
    fn exec_intermediate_process_stops_at_the_fork_filtered_and_with_the_final_identity() {
        let (rec, end) = exec(false, 42);
        assert!(matches!(end, ChildEnd::Intermediate(42)));
        assert_eq!(
            rec.log.last().map(String::as_str),
            Some("clone into pid ns")
        );
        rec.before("seccomp", "clone into pid ns");
        rec.before("setresuid(0)", "clone into pid ns");
        assert!(!rec.has("exec"));
    }
}
