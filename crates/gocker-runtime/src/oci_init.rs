//! The OCI runtime spec's process model as the rings carry it out (`gocker-oci`, see
//! [`crate::oci`] for the lifecycle on top): the FIFO start barrier, the parent-death rules of a
//! process that outlives `create`, the rootfs at the working directory, hooks, the seccomp agent.
//! Plain functions of the config and the spec; nothing here knows the rings.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Spec};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::process::Signal;

use crate::{ContainerConfig, OciMode, Result, RuntimeError};

/// The start barrier in the container's state directory (runc's name).
pub(crate) const FIFO: &str = "exec.fifo";

fn cfg_err(msg: String) -> RuntimeError {
    RuntimeError::Config(msg)
}

/// In ring2 (OCI mode), first thing: die with the creating process until the container is created.
/// Our parent is ring0 (`CLONE_PARENT`), outside our PID namespace, so `getppid()` cannot confirm
/// it is still alive; ring0 kills and reaps ring2 on every failure path of `create` anyway.
pub(crate) fn die_with_creator() -> Result<()> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL)).map_err(|e| {
        RuntimeError::Ring {
            stage: "set parent death signal".into(),
            message: e.to_string(),
        }
    })
}

/// In ring2 (OCI mode), before reporting ready: `create` exits once it has the report, and ring2
/// must survive that (on a failure of `create` after it, ring0 kills ring2 through its pidfd).
pub(crate) fn outlive_creator() -> Result<()> {
    rustix::process::set_parent_process_death_signal(None).map_err(|e| RuntimeError::Ring {
        stage: "clear parent death signal".into(),
        message: e.to_string(),
    })
}

/// In ring2 (OCI mode), at the start barrier: blocks until `start` opens the FIFO for reading.
pub(crate) fn start_barrier(oci: &OciMode) -> Result<()> {
    let err = |what: &str, e: Errno| RuntimeError::Ring {
        stage: "start barrier".into(),
        message: format!("{what}: {e}"),
    };
    let path = format!("/proc/self/fd/{}", oci.exec_fifo_fd.raw());
    let fifo = loop {
        match rustix::fs::open(&path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty()) {
            Err(Errno::INTR) => continue,
            Err(e) => return Err(err(&format!("open {path} ({FIFO}) for writing"), e)),
            Ok(f) => break f,
        }
    };
    rustix::io::write(&fifo, b"0").map_err(|e| err(&format!("write {FIFO}"), e))?;
    // SAFETY: the descriptor was opened by ring0 for ring2 alone; nothing else uses its number.
    drop(unsafe { oci.exec_fifo_fd.take() });
    Ok(())
}

/// In ring2 (OCI mode): a failure after `create` has exited reaches nobody over the ring channel;
/// write it to the container's stderr (the caller's, e.g. conmon's log), as runc does.
pub(crate) fn report_after_create(cfg: &ContainerConfig, e: &dyn std::fmt::Display) {
    if cfg.oci.is_some() {
        let msg = format!("gocker-oci: container {}: {e}\n", cfg.id);
        let _ = rustix::io::write(rustix::stdio::stderr(), msg.as_bytes());
    }
}

/// In ring2 (OCI mode): attaches the rootfs (ring0's idmapped mount, or a recursive bind) over
/// the working directory and returns the mount's root. `create` changes into the rootfs before
/// the rings are forked, and each new mount namespace carries the working directory over, so no
/// path is walked: bundles under directories the container's root cannot search (containerd's
/// bundle directories are 0700, owned by host root) work as they do for runc.
pub(crate) fn mount_root_at_cwd(idmapped: Option<OwnedFd>) -> Result<OwnedFd> {
    let here = Path::new(".");
    let mnt = match idmapped {
        Some(m) => m,
        None => gocker_mounts::root::clone(here, true)?,
    };
    gocker_mounts::root::attach(mnt.as_fd(), here)?;
    Ok(mnt)
}

pub(crate) fn has_hooks(hooks: &Option<Vec<Hook>>) -> bool {
    hooks.as_ref().is_some_and(|v| !v.is_empty())
}

/// Whether ring2 needs the container's state JSON from `create` (see [`Container::send_oci_state`]).
pub(crate) fn needs_state(spec: &Spec) -> bool {
    spec.hooks()
        .as_ref()
        .is_some_and(|h| has_hooks(h.start_container()))
        || listener_path(spec).is_some()
}

pub(crate) fn listener_path(spec: &Spec) -> Option<&Path> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .and_then(|s| s.listener_path().as_deref())
}

/// In ring2, right after loading a filter with notify rules: sends the listener to the seccomp
/// agent with the container process state (runtime spec: `fds: ["seccompFd"]`, the pid, the
/// `listenerMetadata`, and the container's state), then closes the connection.
pub(crate) fn send_to_seccomp_agent(
    cfg: &ContainerConfig,
    agent_fd: crate::config::InheritedFd,
    listener: BorrowedFd<'_>,
    state: &str,
) -> Result<()> {
    // SAFETY: the descriptor was connected by ring0 for ring2 alone and is used only here.
    let agent = unsafe { agent_fd.take() };
    let state: serde_json::Value = serde_json::from_str(state)
        .map_err(|e| RuntimeError::Protocol(format!("container state: {e}")))?;
    let metadata = cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .and_then(|s| s.listener_metadata().clone())
        .unwrap_or_default();
    let msg = serde_json::json!({
        "ociVersion": state["ociVersion"],
        "fds": ["seccompFd"],
        "pid": state["pid"],
        "metadata": metadata,
        "state": state,
    })
    .to_string();
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
    let fds = [listener];
    control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        &agent,
        &[std::io::IoSlice::new(msg.as_bytes())],
        &mut control,
        rustix::net::SendFlags::NOSIGNAL,
    )
    .map_err(|e| RuntimeError::sys("sendmsg", "linux.seccomp.listenerPath", e))?;
    Ok(())
}

/// Runs each hook with the state JSON on stdin; a failing hook is an error naming it.
pub(crate) fn run_hooks(kind: &str, hooks: &Option<Vec<Hook>>, state: &[u8]) -> Result<()> {
    for h in hooks.iter().flatten() {
        let path = h.path();
        let what = format!("{kind} hook {}", path.display());
        let mut cmd = Command::new(path);
        if let Some(args) = h.args() {
            if let Some((arg0, rest)) = args.split_first() {
                std::os::unix::process::CommandExt::arg0(&mut cmd, arg0);
                cmd.args(rest);
            }
        }
        cmd.env_clear();
        for kv in h.env().iter().flatten() {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| cfg_err(format!("{what}: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(state);
        }
        let timeout = Duration::from_secs(h.timeout().map(|t| t.max(1) as u64).unwrap_or(30));
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(cfg_err(format!("{what}: timed out after {timeout:?}")));
                }
                Err(e) => return Err(cfg_err(format!("{what}: {e}"))),
            }
        };
        if !status.success() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return Err(cfg_err(format!("{what} failed ({status}): {}", err.trim())));
        }
    }
    Ok(())
}

/// `SCMP_ACT_NOTIFY` in an OCI bundle needs a seccomp agent (`linux.seccomp.listenerPath`):
/// gocker-oci runs no supervisor of its own for a container that outlives it.
pub(crate) fn check_seccomp(spec: &Spec) -> Result<()> {
    use oci_spec::runtime::LinuxSeccompAction as A;
    let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(());
    };
    let notify = s.default_action() == A::ScmpActNotify
        || s.syscalls()
            .iter()
            .flatten()
            .any(|r| r.action() == A::ScmpActNotify);
    if notify && s.listener_path().is_none() {
        return Err(cfg_err("linux.seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath (gocker-oci has no supervisor of its own)".into()));
    }
    Ok(())
}
