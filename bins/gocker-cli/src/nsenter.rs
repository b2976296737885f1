//! `gocker nsenter`: run a program in the namespaces of a container or of any process, through a
//! pidfd (gocker_ns::nsenter). Without namespace flags, every namespace in which the target
//! differs from gocker (like `nsenter -a`).

use std::os::unix::process::ExitStatusExt;

use gocker_ns::{Namespace, NamespaceSet};
use gocker_runtime::state::StateStore;

use crate::cli::NsenterArgs;
use crate::run::{report, usage, Failure};

fn target_pid(t: &str) -> Result<i32, Failure> {
    if let Ok(pid) = t.parse::<i32>() {
        if pid > 0 {
            return Ok(pid);
        }
    }
    let store = StateStore::open(StateStore::default_root())?;
    store.collect_stale();
    let st = store.lookup(t)?;
    if st.status == gocker_runtime::Status::Stopped || !StateStore::monitor_alive(&st) {
        return Err(usage(format!("container {t} is not running")));
    }
    st.pid
        .ok_or_else(|| usage(format!("container {t} has no process")))
}

fn inner(a: &NsenterArgs) -> Result<i32, Failure> {
    let target = target_pid(&a.target)?;
    let pid = rustix::process::Pid::from_raw(target)
        .ok_or_else(|| usage(format!("--target {target}: not a pid")))?;
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
        .map_err(|e| usage(format!("--target {}: pidfd_open({target}): {e}", a.target)))?;
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let chosen: NamespaceSet = [
        (a.mount, Namespace::Mount),
        (a.net, Namespace::Net),
        (a.pid, Namespace::Pid),
        (a.uts, Namespace::Uts),
        (a.ipc, Namespace::Ipc),
        (a.user, Namespace::User),
        (a.cgroup, Namespace::Cgroup),
    ]
    .into_iter()
    .filter_map(|(on, ns)| on.then_some(ns))
    .collect();
    let differing = gocker_ns::differing(me, target);
    let mut set = if chosen.is_empty() { differing } else { chosen };
    // Without privileges over the target's namespaces (rootless), its user namespace must be
    // joined first: the others belong to it.
    if !rustix::process::geteuid().is_root() && differing.contains(Namespace::User) {
        set = set.with(Namespace::User);
    }
    // Joining a namespace one is already in is refused by setns for the user namespace.
    if !differing.contains(Namespace::User) {
        set = set.without(Namespace::User);
    }
    gocker_ns::nsenter(
        std::os::fd::AsFd::as_fd(&pidfd),
        target,
        set,
        !a.preserve_credentials,
    )
    .map_err(|e| usage(format!("nsenter --target {}: {e}", a.target)))?;
    // A child, so that a joined PID namespace applies to it.
    let st = std::process::Command::new(&a.command[0])
        .args(&a.command[1..])
        .status()
        .map_err(|e| Failure {
            code: if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            },
            message: format!("exec {:?}: {e}", a.command[0]),
        })?;
    Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)))
}

pub fn nsenter(a: NsenterArgs) -> i32 {
    match inner(&a) {
        Ok(c) => c,
        Err(f) => report(f),
    }
}
