//! The ring seam: each namespace, mount, barrier and privilege step that ring1, ring2 and `exec`
//! make is one method of a trait here, so that the order of the steps is the one the rings'
//! own sequencing functions produce, and is tested without root or a kernel (youki's recording
//! `Syscall` double is the model).
//!
//! * [`Namespaces`]: `setns` by descriptor, `unshare`.
//! * [`crate::process::Privileges`] and [`crate::process::Finalize`]: the descriptor sweep,
//!   rlimits, personality, bounding set, identity, capabilities, `no_new_privs`, signals, seccomp,
//!   `execve` — shared by the container's init and `exec`.
//! * [`Ring1Sys`], [`Ring2Sys`], [`ExecSys`]: what each of the three processes does besides.
//!
//! The sequencing functions (`ring1::run`, `ring2::prepare`, `nsexec::become_exec`, and the
//! workspace and namespace-join hooks they call) take `&mut dyn` one of these; each of those
//! files has a `Kernel` that makes the real calls and holds what they need (channels,
//! descriptors, premade mounts), and [`Recording`] (tests only) logs the calls instead. Only the
//! decisions (which step, in which order, with which argument) are in the sequencing functions;
//! a Kernel method is one step, never a choice between steps.

use std::path::Path;
use std::time::Duration;

use gocker_mounts::options::Propagation;
use gocker_mounts::Step;
use gocker_ns::{Namespace, NamespaceSet};

use crate::process::Finalize;
use crate::{ExitStatus, OciMode, Result};

/// Entering and making namespaces.
pub(crate) trait Namespaces {
    /// `setns(2)` into the namespace of `kind` behind the inherited descriptor number `fd`.
    fn setns(&mut self, fd: i32, kind: Namespace, what: &str) -> Result<()>;
    /// `unshare(2)` of `set`.
    fn unshare(&mut self, set: NamespaceSet) -> Result<()>;
}

/// A process that makes the real calls for [`Namespaces`].
pub(crate) trait RealNamespaces {}

impl<T: RealNamespaces> Namespaces for T {
    fn setns(&mut self, fd: i32, kind: Namespace, what: &str) -> Result<()> {
        // The descriptor numbers given here are inherited ones that the creating process keeps
        // open until this one reports (crate::joins).
        // SAFETY: the descriptor is open for the call, and the borrow ends with it.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        gocker_ns::enter_fd(fd, kind, what)?;
        Ok(())
    }
    fn unshare(&mut self, set: NamespaceSet) -> Result<()> {
        gocker_ns::unshare(set)?;
        Ok(())
    }
}

/// ring1, the namespace supervisor: in the namespaces ring0 made (or joined), root there.
pub(crate) trait Ring1Sys: Namespaces {
    /// `PR_SET_PDEATHSIG(SIGKILL)`, and exit if ring0 is already gone.
    fn die_with_parent(&mut self) -> Result<()>;
    /// A session of its own, off the caller's terminal.
    fn setsid(&mut self) -> Result<()>;
    /// Waits (bounded) for ring0's message that the id maps are written.
    fn wait_for_maps(&mut self) -> Result<()>;
    /// Waits (bounded) for ring0's premade mounts (the root, volumes) and own-file templates.
    fn receive_premade(&mut self) -> Result<()>;
    /// Rootless: clones of the spec's bind sources, with the caller's groups still ours.
    fn open_bind_sources(&mut self) -> Result<()>;
    /// `setgroups([])` (when `clear_groups`), `setresgid(0)`, `setresuid(0)`.
    fn become_root(&mut self, clear_groups: bool) -> Result<()>;
    fn set_hostname(&mut self, name: &str) -> Result<()>;
    fn set_domainname(&mut self, name: &str) -> Result<()>;
    /// Writes the planned `linux.sysctl` keys of the container's own namespaces.
    fn apply_sysctl(&mut self, planned: &[crate::sysctl::Planned]) -> Result<()>;
    /// Every mount of ring1's mount namespace private.
    fn make_rprivate(&mut self) -> Result<()>;
    fn loopback_up(&mut self) -> Result<()>;
    /// A pidfd of ring1 itself, which ring2 watches (its `getppid()` is 0).
    fn open_self_pidfd(&mut self) -> Result<()>;
    /// The container's own `/etc/hosts` and `/etc/resolv.conf`: copies on a bounded tmpfs.
    fn own_files(&mut self) -> Result<()>;
    /// Workspace mode: lift's tmpfs (client and socket), for ring2 to attach at `/.gocker`.
    fn prepare_lift(&mut self) -> Result<()>;
    /// `clone3` of ring2 into `set` (`CLONE_PARENT` when `sibling`); returns its pid. In the
    /// child, ring2 runs and this never returns.
    fn fork_ring2(&mut self, set: NamespaceSet, sibling: bool) -> Result<i32>;
    /// Tells ring0 ring2's pid.
    fn report_ring2(&mut self, pid: i32) -> Result<()>;
    /// Workspace mode: runs the enclave command in ring2's namespaces on ring0's go.
    fn serve_enclave(&mut self, cmd: &[String]) -> Result<()>;
    /// Serves seccomp notifications and lift, reaps; ring2's exit status.
    fn supervise(&mut self) -> Result<ExitStatus>;
}

/// ring2, the container's init until it execs the payload.
pub(crate) trait Ring2Sys: Namespaces + Finalize {
    /// `PR_SET_PDEATHSIG(SIGKILL)`, and exit if ring1 is already gone.
    fn die_with_parent(&mut self) -> Result<()>;
    /// OCI mode: `PR_SET_PDEATHSIG(SIGKILL)` for the creating process (ring2's parent).
    fn die_with_creator(&mut self) -> Result<()>;
    /// Attaches the rootfs (idmapped or a recursive bind; `at_cwd`: over the working directory,
    /// which is then the root).
    fn mount_root(&mut self, at_cwd: bool) -> Result<()>;
    /// Opens the attached rootfs directory as the root of the mount plan.
    fn open_root(&mut self) -> Result<()>;
    /// Workspace mode: waits (bounded) until ring0 has moved us into the cgroup `leaf`.
    fn wait_in_cgroup(&mut self, leaf: &str, timeout: Duration) -> Result<()>;
    /// One step of the mount plan, under the root.
    fn mount(&mut self, step: &Step) -> Result<()>;
    /// Creates a missing working directory (best effort).
    fn make_cwd(&mut self, cwd: &Path);
    fn root_readonly(&mut self) -> Result<()>;
    fn pivot_root(&mut self) -> Result<()>;
    /// `linux.rootfsPropagation` that can only be set after `pivot_root`.
    fn set_root_propagation(&mut self, p: Propagation, recursive: bool) -> Result<()>;
    /// Closes the old root's descriptor and changes into `process.cwd` inside the new root.
    fn enter_cwd(&mut self, cwd: &Path) -> Result<()>;
    /// `-t`: a terminal of the container's devpts, sized, as the controlling terminal.
    fn open_terminal(
        &mut self,
        size: Option<&oci_spec::runtime::Box>,
        owner: (u32, u32),
    ) -> Result<()>;
    /// A session of its own; stdin from `/dev/null` when `stdin_null`.
    fn new_session(&mut self, stdin_null: bool) -> Result<()>;
    /// `PR_SET_DUMPABLE`, on or off (workspace mode's enclave around the barrier).
    fn set_dumpable(&mut self, dumpable: bool) -> Result<()>;
    /// OCI mode: clears the parent-death signal, to outlive `create`.
    fn outlive_creator(&mut self) -> Result<()>;
    /// Tells ring0 "ready" (OCI "created"), with the terminal's master.
    fn report_ready(&mut self) -> Result<()>;
    /// The start barrier of `gocker run`: ring0's start message.
    fn wait_start(&mut self) -> Result<()>;
    /// OCI mode: the container's state from `create` (for hooks and the seccomp agent).
    fn recv_oci_state(&mut self) -> Result<()>;
    /// OCI mode: the start barrier, `exec.fifo` opened for writing (returns when `start` reads).
    fn fifo_barrier(&mut self, oci: &OciMode) -> Result<()>;
    /// OCI mode: the `startContainer` hooks.
    fn start_container_hooks(&mut self) -> Result<()>;
}

/// `exec`: the process that joins a running container and forks the new one into its PID
/// namespace.
pub(crate) trait ExecSys: Finalize {
    /// Off the caller's session (best effort).
    fn leave_session(&mut self);
    /// Writes itself into the container's `cgroup.procs`.
    fn join_cgroup(&mut self, cgroup: &Path) -> std::io::Result<()>;
    /// `setns(pidfd, set)`: every namespace of `set` at once (the kernel enters the user
    /// namespace first).
    fn join(&mut self, set: NamespaceSet) -> Result<()>;
    /// `-t`: a terminal of the container's devpts (the master goes to the caller).
    fn open_terminal(&mut self) -> Result<()>;
    /// `process.cwd`, resolved inside the container.
    fn enter_cwd(&mut self, cwd: &Path) -> Result<()>;
    /// `clone(SIGCHLD)`: 0 in the child (in the container's PID namespace), its pid in the parent.
    fn fork_into_pidns(&mut self) -> std::io::Result<i32>;
    /// `PR_SET_PDEATHSIG(SIGKILL)` (best effort).
    fn die_with_parent(&mut self);
    /// The terminal from [`ExecSys::open_terminal`] as the controlling terminal.
    fn controlling_terminal(&mut self) -> Result<()>;
    /// A session of its own.
    fn new_session(&mut self) -> rustix::io::Result<()>;
}

#[cfg(test)]
pub(crate) use recording::{test_config, Recording};

#[cfg(test)]
mod recording {
    use std::path::Path;
    use std::time::Duration;

    use gocker_mounts::options::Propagation;
    use gocker_mounts::Step;
    use gocker_ns::{Namespace, NamespaceSet};
    use gocker_seccomp::load::Prepared;
    use oci_spec::runtime::{Process, Spec};

    use super::{ExecSys, Namespaces, Ring1Sys, Ring2Sys};
    use crate::process::{ExecPlan, Finalize, Privileges};
    use crate::{ContainerConfig, ExitStatus, OciMode, Result};

    /// Logs every step instead of making it; succeeds at each. Steps are short strings, e.g.
    /// `unshare(net|mnt)`, `mount proc /proc`, `pivot_root`, `setresuid`, `exec sh`.
    #[derive(Debug, Default)]
    pub(crate) struct Recording {
        pub log: Vec<String>,
        /// What [`ExecSys::fork_into_pidns`] returns (0: follow the child).
        pub fork_returns: i32,
    }

    impl Recording {
        fn push(&mut self, s: impl Into<String>) {
            self.log.push(s.into());
        }

        /// Index of the first step that starts with `prefix`; panics (showing the log) if none.
        pub fn first(&self, prefix: &str) -> usize {
            self.log
                .iter()
                .position(|s| s.starts_with(prefix))
                .unwrap_or_else(|| panic!("no step {prefix:?} in {:#?}", self.log))
        }

        /// Index of the last step that starts with `prefix`; panics (showing the log) if none.
        pub fn last(&self, prefix: &str) -> usize {
            self.log
                .iter()
                .rposition(|s| s.starts_with(prefix))
                .unwrap_or_else(|| panic!("no step {prefix:?} in {:#?}", self.log))
        }

        pub fn has(&self, prefix: &str) -> bool {
            self.log.iter().any(|s| s.starts_with(prefix))
        }

        /// Asserts that every step starting with `a` comes before every one starting with `b`.
        #[track_caller]
        pub fn before(&self, a: &str, b: &str) {
            assert!(
                self.last(a) < self.first(b),
                "expected every {a:?} before every {b:?} in {:#?}",
                self.log
            );
        }
    }

    /// A `gocker run` of the default OCI spec (hostname `box`, root `/rootfs`, `noNewPrivileges`)
    /// as root, with a seccomp filter.
    pub(crate) fn test_config() -> ContainerConfig {
        let mut spec = Spec::default();
        spec.set_hostname(Some("box".into()));
        let mut root = spec.root().clone().unwrap_or_default();
        root.set_path("/rootfs".into());
        spec.set_root(Some(root));
        if let Some(p) = spec.process_mut() {
            p.set_no_new_privileges(Some(true));
        }
        let idmaps = gocker_idmap::IdMaps::from_oci(&[], &[], true);
        let mut cfg = ContainerConfig::new("c1", spec, idmaps);
        cfg.rootful = true;
        cfg.seccomp = Some(crate::process::test_bpf());
        cfg
    }

    fn describe(step: &Step) -> String {
        let d = |p: &Path| p.display().to_string();
        match step {
            Step::Fs { dest, fstype, .. } => format!("mount {fstype} {}", d(dest)),
            Step::Bind { source, dest, .. } => format!("mount bind {} {}", d(source), d(dest)),
            Step::Device { dest, .. } => format!("mount device {}", d(dest)),
            Step::Symlink { link, .. } => format!("mount symlink {}", d(link)),
            Step::Mask { path } => format!("mask {}", d(path)),
            Step::ReadOnly { path } => format!("readonly {}", d(path)),
            Step::RootPropagation { .. } => "mount root propagation".into(),
        }
    }

    impl Namespaces for Recording {
        fn setns(&mut self, _: i32, kind: Namespace, _: &str) -> Result<()> {
            self.push(format!("setns({kind})"));
            Ok(())
        }
        fn unshare(&mut self, set: NamespaceSet) -> Result<()> {
            self.push(format!("unshare({set})"));
            Ok(())
        }
    }

    impl Privileges for Recording {
        fn load_seccomp(&mut self, _: &Prepared) -> Result<()> {
            self.push("seccomp");
            Ok(())
        }
        fn keep_capabilities(&mut self, keep: bool) -> Result<()> {
            self.push(format!("keepcaps={}", u8::from(keep)));
            Ok(())
        }
        fn set_user(&mut self, p: &Process, _: bool) -> Result<()> {
            self.push(format!("setresuid({})", p.user().uid()));
            Ok(())
        }
        fn set_capabilities(&mut self, _: &Process) -> Result<()> {
            self.push("capset");
            Ok(())
        }
        fn set_non_dumpable(&mut self) -> Result<()> {
            self.push("nondumpable");
            Ok(())
        }
        fn after_identity(&mut self) -> Result<()> {
            self.push("after identity");
            Ok(())
        }
        fn set_no_new_privs(&mut self) -> Result<()> {
            self.push("nnp");
            Ok(())
        }
        fn reset_signals(&mut self) {
            self.push("signals");
        }
    }

    impl Finalize for Recording {
        fn cloexec_from(&mut self, first: u32) -> std::io::Result<()> {
            self.push(format!("cloexec({first})"));
            Ok(())
        }
        fn set_rlimits(&mut self, _: &Process) -> Result<()> {
            self.push("rlimits");
            Ok(())
        }
        fn set_personality(&mut self, _: &Spec) -> Result<()> {
            self.push("personality");
            Ok(())
        }
        fn drop_bounding(&mut self, _: &Process) -> Result<()> {
            self.push("bounding");
            Ok(())
        }
        fn exec(&mut self, plan: &ExecPlan) -> rustix::io::Errno {
            self.push(format!("exec {}", plan.cmd));
            rustix::io::Errno::NOENT
        }
    }

    impl Ring1Sys for Recording {
        fn die_with_parent(&mut self) -> Result<()> {
            self.push("pdeathsig");
            Ok(())
        }
        fn setsid(&mut self) -> Result<()> {
            self.push("setsid");
            Ok(())
        }
        fn wait_for_maps(&mut self) -> Result<()> {
            self.push("wait maps");
            Ok(())
        }
        fn receive_premade(&mut self) -> Result<()> {
            self.push("receive premade");
            Ok(())
        }
        fn open_bind_sources(&mut self) -> Result<()> {
            self.push("open bind sources");
            Ok(())
        }
        fn become_root(&mut self, clear_groups: bool) -> Result<()> {
            self.push(format!("become root (setgroups: {clear_groups})"));
            Ok(())
        }
        fn set_hostname(&mut self, name: &str) -> Result<()> {
            self.push(format!("sethostname {name}"));
            Ok(())
        }
        fn set_domainname(&mut self, name: &str) -> Result<()> {
            self.push(format!("setdomainname {name}"));
            Ok(())
        }
        fn apply_sysctl(&mut self, planned: &[crate::sysctl::Planned]) -> Result<()> {
            self.push(format!("sysctl ({} keys)", planned.len()));
            Ok(())
        }
        fn make_rprivate(&mut self) -> Result<()> {
            self.push("make rprivate");
            Ok(())
        }
        fn loopback_up(&mut self) -> Result<()> {
            self.push("lo up");
            Ok(())
        }
        fn open_self_pidfd(&mut self) -> Result<()> {
            self.push("pidfd_open(self)");
            Ok(())
        }
        fn own_files(&mut self) -> Result<()> {
            self.push("own files");
            Ok(())
        }
        fn prepare_lift(&mut self) -> Result<()> {
            self.push("lift tmpfs");
            Ok(())
        }
        fn fork_ring2(&mut self, set: NamespaceSet, sibling: bool) -> Result<i32> {
            let parent = if sibling { "|CLONE_PARENT" } else { "" };
            self.push(format!("clone3({set}{parent})"));
            Ok(2)
        }
        fn report_ring2(&mut self, pid: i32) -> Result<()> {
            self.push(format!("report ring2 {pid}"));
            Ok(())
        }
        fn serve_enclave(&mut self, cmd: &[String]) -> Result<()> {
            self.push(format!("enclave {}", cmd.join(" ")));
            Ok(())
        }
        fn supervise(&mut self) -> Result<ExitStatus> {
            self.push("supervise");
            Ok(ExitStatus::Exited(0))
        }
    }

    impl Ring2Sys for Recording {
        fn die_with_parent(&mut self) -> Result<()> {
            self.push("pdeathsig");
            Ok(())
        }
        fn die_with_creator(&mut self) -> Result<()> {
            self.push("pdeathsig(creator)");
            Ok(())
        }
        fn mount_root(&mut self, at_cwd: bool) -> Result<()> {
            self.push(if at_cwd {
                "attach root at cwd"
            } else {
                "attach root"
            });
            Ok(())
        }
        fn open_root(&mut self) -> Result<()> {
            self.push("open root");
            Ok(())
        }
        fn wait_in_cgroup(&mut self, leaf: &str, _: Duration) -> Result<()> {
            self.push(format!("wait in cgroup {leaf}"));
            Ok(())
        }
        fn mount(&mut self, step: &Step) -> Result<()> {
            self.push(describe(step));
            Ok(())
        }
        fn make_cwd(&mut self, cwd: &Path) {
            self.push(format!("mkdir cwd {}", cwd.display()));
        }
        fn root_readonly(&mut self) -> Result<()> {
            self.push("root readonly");
            Ok(())
        }
        fn pivot_root(&mut self) -> Result<()> {
            self.push("pivot_root");
            Ok(())
        }
        fn set_root_propagation(&mut self, p: Propagation, recursive: bool) -> Result<()> {
            self.push(format!("root propagation {p:?} {recursive}"));
            Ok(())
        }
        fn enter_cwd(&mut self, cwd: &Path) -> Result<()> {
            self.push(format!("chdir {}", cwd.display()));
            Ok(())
        }
        fn open_terminal(
            &mut self,
            _: Option<&oci_spec::runtime::Box>,
            _: (u32, u32),
        ) -> Result<()> {
            self.push("terminal");
            Ok(())
        }
        fn new_session(&mut self, stdin_null: bool) -> Result<()> {
            self.push(format!("setsid (stdin null: {stdin_null})"));
            Ok(())
        }
        fn set_dumpable(&mut self, dumpable: bool) -> Result<()> {
            self.push(format!("dumpable={}", u8::from(dumpable)));
            Ok(())
        }
        fn outlive_creator(&mut self) -> Result<()> {
            self.push("clear pdeathsig");
            Ok(())
        }
        fn report_ready(&mut self) -> Result<()> {
            self.push("ready");
            Ok(())
        }
        fn wait_start(&mut self) -> Result<()> {
            self.push("wait start");
            Ok(())
        }
        fn recv_oci_state(&mut self) -> Result<()> {
            self.push("recv state");
            Ok(())
        }
        fn fifo_barrier(&mut self, oci: &OciMode) -> Result<()> {
            self.push(format!("open fifo {}", oci.exec_fifo_fd.raw()));
            Ok(())
        }
        fn start_container_hooks(&mut self) -> Result<()> {
            self.push("startContainer hooks");
            Ok(())
        }
    }

    impl ExecSys for Recording {
        fn leave_session(&mut self) {
            self.push("leave session");
        }
        fn join_cgroup(&mut self, cgroup: &Path) -> std::io::Result<()> {
            self.push(format!("join cgroup {}", cgroup.display()));
            Ok(())
        }
        fn join(&mut self, set: NamespaceSet) -> Result<()> {
            self.push(format!("setns(pidfd, {set})"));
            Ok(())
        }
        fn open_terminal(&mut self) -> Result<()> {
            self.push("terminal");
            Ok(())
        }
        fn enter_cwd(&mut self, cwd: &Path) -> Result<()> {
            self.push(format!("chdir {}", cwd.display()));
            Ok(())
        }
        fn fork_into_pidns(&mut self) -> std::io::Result<i32> {
            self.push("clone into pid ns");
            Ok(self.fork_returns)
        }
        fn die_with_parent(&mut self) {
            self.push("pdeathsig");
        }
        fn controlling_terminal(&mut self) -> Result<()> {
            self.push("controlling terminal");
            Ok(())
        }
        fn new_session(&mut self) -> rustix::io::Result<()> {
            self.push("setsid");
            Ok(())
        }
    }
}
