//! ring2: the payload side. PID 1 of a new PID namespace with its own mount namespace: builds the
//! container's mount tree, pivots into it, drops privileges, waits at the start barrier and execs.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use gocker_mounts::resolve::{open_in_root, Create};
use gocker_mounts::{root, KernelMounter};

use crate::channel::Channel;
use crate::initsys::Ring2Sys;
use crate::process::{self, ExecPlan};
use crate::proto::{Down, Up};
use crate::sys::{die_with_parent, exit, Parent};
use crate::{ContainerConfig, Result, RootMode, RuntimeError};

/// Where the host-view root is attached before pivot_root (inside ring2's private mount namespace).
const HOST_VIEW_STAGING: &str = "/tmp";

/// Detached mounts made before ring2 exists: the rootfs (idmapped, by ring0), and volumes by
/// destination (the spec's bind sources, [`Premade::binds`]; the container's own files and
/// lift's directory, by ring1; an mqueue of a joined IPC namespace, by ring0).
#[derive(Debug, Default)]
pub(crate) struct Premade {
    pub rootfs: Option<OwnedFd>,
    pub volumes: Vec<(PathBuf, OwnedFd)>,
}

impl Premade {
    /// Detached clones (`open_tree(OPEN_TREE_CLONE)`, with `AT_RECURSIVE` for `rbind`, made
    /// private: a clone of a shared mount would be a peer of the host's) of the spec's bind
    /// sources, made with the caller's credentials before the container's are taken:
    /// by ring0 as root, which reaches sources the container's remapped root cannot (podman's
    /// storage and run directories are 0700 and root's, as is gocker's state directory), and
    /// idmapped through `userns` where given and the filesystem allows it (else noted and bound
    /// as is); by ring1 when rootless, before it drops the caller's groups. ring2 attaches them
    /// at their destinations ([`KernelMounter::premade`]) instead of opening the sources inside
    /// the container's user namespace. Left out: the default device nodes (world-readable under
    /// the host's `/dev`) and `skip` (the container's own files, which ring1 binds as copies).
    /// The mount plan's checks come first: a spec whose plan is refused (a `/proc` magic link as
    /// a source, an unsupported option) gets nothing here, and ring2 reports the refusal; a
    /// source that cannot be cloned is left to ring2 too, which reports its error.
    pub(crate) fn binds(
        spec: &oci_spec::runtime::Spec,
        skip: &[PathBuf],
        userns: Option<BorrowedFd<'_>>,
        notes: &mut Vec<String>,
    ) -> Vec<(PathBuf, OwnedFd)> {
        let Ok(steps) = gocker_mounts::plan(spec) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for step in steps {
            let gocker_mounts::Step::Bind {
                source,
                dest,
                recursive,
                ..
            } = step
            else {
                continue;
            };
            let device = source == dest
                && gocker_mounts::plan::DEFAULT_DEVICES
                    .iter()
                    .any(|d| Path::new(d) == dest);
            if device || skip.contains(&dest) {
                continue;
            }
            let cloned = root::clone(&source, recursive)
                .and_then(|m| root::make_private(m.as_fd(), &source, recursive).map(|()| m));
            let mnt = match cloned {
                Ok(m) => m,
                Err(e) => {
                    notes.push(format!(
                        "bind {}: not premade ({e}); left to ring2",
                        source.display()
                    ));
                    continue;
                }
            };
            if let Some(u) = userns {
                // mount_setattr changes nothing when it fails: the clone is bound as it is.
                if let Err(e) = root::idmap(mnt.as_fd(), &source, u, recursive) {
                    notes.push(format!(
                        "volume {}: not idmapped ({e}); bound as is",
                        source.display()
                    ));
                }
            }
            out.push((dest, mnt));
        }
        out
    }

    /// For the exec spawn mode: which descriptors follow the fixed ones.
    pub(crate) fn describe(&self) -> String {
        serde_json::json!({"rootfs": self.rootfs.is_some(), "volumes": self.volumes.iter().map(|v| &v.0).collect::<Vec<_>>()})
            .to_string()
    }

    pub(crate) fn from_described(text: &str, mut fds: Vec<OwnedFd>) -> Option<Premade> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let rootfs = v["rootfs"].as_bool()?;
        let dests: Vec<PathBuf> = v["volumes"]
            .as_array()?
            .iter()
            .filter_map(|d| d.as_str().map(PathBuf::from))
            .collect();
        if fds.len() != usize::from(rootfs) + dests.len() {
            return None;
        }
        let rest = fds.split_off(usize::from(rootfs));
        Some(Premade {
            rootfs: fds.pop(),
            volumes: dests.into_iter().zip(rest).collect(),
        })
    }
}

/// Runs ring2 in the child created by ring1. Never returns.
/// `sup` is the channel to ring1, which receives the seccomp notification descriptor.
pub(crate) fn main(
    cfg: &ContainerConfig,
    chan: Channel,
    sup: Channel,
    premade: Premade,
    parent: BorrowedFd<'_>,
) -> ! {
    let mut k = Kernel {
        cfg,
        chan: &chan,
        sup: &sup,
        parent: Parent::Pidfd(parent),
        rootfs: premade.rootfs,
        mounter: Some(KernelMounter {
            premade: premade.volumes,
            // The spec's mount order in mountinfo is OCI's (runtime-tools checks it); `gocker run`
            // does not pay a grace period per premade mount for it.
            spec_order: cfg.oci.is_some(),
            ..Default::default()
        }),
        rootdir: None,
        root: None,
        master: None,
        oci_state: None,
    };
    let (plan, errno) = match run(cfg, &mut k) {
        Ok(p) => p,
        Err(e) => {
            let _ = chan.send(&Up::failed("ring2", &e), &[]);
            crate::oci_init::report_after_create(cfg, &e);
            exit(125)
        }
    };
    let _ = chan.send(
        &Up::ExecFailed {
            cmd: plan.cmd.clone(),
            errno: errno.raw_os_error(),
        },
        &[],
    );
    crate::oci_init::report_after_create(
        cfg,
        &format!("exec {:?}: {}", plan.cmd, std::io::Error::from(errno)),
    );
    exit(if errno == rustix::io::Errno::NOENT {
        127
    } else {
        126
    })
}

fn stage<T>(name: &str, r: Result<T>) -> Result<T> {
    r.map_err(|e| match e {
        RuntimeError::Ring { .. } => e,
        other => RuntimeError::Ring {
            stage: name.to_owned(),
            message: other.to_string(),
        },
    })
}

/// Loads the filter. A notify listener goes to ring1's supervisor, or in OCI mode to the seccomp
/// agent of `linux.seccomp.listenerPath` (with the container's state, `oci_state`), and is closed
/// here, so the payload never holds it.
fn load_seccomp(
    cfg: &ContainerConfig,
    filter: &gocker_seccomp::load::Prepared,
    sup: &Channel,
    oci_state: Option<&str>,
) -> Result<()> {
    let listener = stage("load seccomp filter", filter.load().map_err(Into::into))?;
    let agent = cfg.oci.as_ref().and_then(|o| o.seccomp_agent_fd);
    match (listener, agent, oci_state) {
        (Some(l), Some(fd), Some(state)) => stage(
            "send the seccomp listener to linux.seccomp.listenerPath",
            crate::oci_init::send_to_seccomp_agent(cfg, fd, l.as_fd(), state),
        ),
        (Some(l), _, _) => sup.send(&crate::proto::LISTENER_MSG, &[l.as_fd()]),
        (None, _, _) => Ok(()),
    }
}

/// ring2 from its first step to the payload's `execve`: [`prepare`], then the exec (the errno
/// when it fails).
fn run(cfg: &ContainerConfig, sys: &mut dyn Ring2Sys) -> Result<(ExecPlan, rustix::io::Errno)> {
    let plan = prepare(cfg, sys)?;
    let errno = sys.exec(&plan);
    Ok((plan, errno))
}

/// The order of ring2's steps: rootfs, cgroup view, the mount plan, `pivot_root`, working
/// directory, terminal, the preamble of the privilege drop, "ready", the start barrier, the drop
/// itself. Every step goes through `sys` ([`crate::initsys`]).
fn prepare(cfg: &ContainerConfig, sys: &mut dyn Ring2Sys) -> Result<ExecPlan> {
    match cfg.oci {
        None => sys.die_with_parent()?,
        // OCI mode: our parent is ring0 (CLONE_PARENT); die with it until created (cleared at the barrier).
        Some(_) => sys.die_with_creator()?,
    }
    let proc_ = cfg
        .spec
        .process()
        .as_ref()
        .ok_or_else(|| RuntimeError::Config("spec has no process".into()))?;
    // OCI mode: the rootfs is our working directory (see crate::oci::mount_root_at_cwd).
    let at_cwd = cfg.oci.is_some() && cfg.root_mode == RootMode::Rootfs;
    stage("mount rootfs", sys.mount_root(at_cwd))?;
    if !at_cwd {
        sys.open_root()?;
    }
    stage(
        "enter the container's cgroup namespace",
        crate::workspace::enter_cgroup_view(cfg, sys),
    )?;
    let steps = gocker_mounts::plan(&cfg.spec)?;
    stage(
        "mount container filesystems",
        steps.iter().try_for_each(|s| sys.mount(s)),
    )?;
    let cwd = proc_.cwd().clone();
    // Like docker, create a missing working directory (best effort: the rootfs may be read-only).
    sys.make_cwd(&cwd);
    if cfg.readonly_root() {
        stage("make rootfs read-only", sys.root_readonly())?;
    }
    stage("pivot_root", sys.pivot_root())?;
    if let Some((propagation, recursive)) = gocker_mounts::plan::after_pivot(&cfg.spec) {
        stage(
            "linux.rootfsPropagation",
            sys.set_root_propagation(propagation, recursive),
        )?;
    }
    sys.enter_cwd(&cwd)?;

    // -t: a terminal from the container's own devpts; its master goes to ring0 with "ready".
    if cfg.tty {
        let owner = (proc_.user().uid(), proc_.user().gid());
        sys.open_terminal(proc_.console_size().as_ref(), owner)?;
    } else {
        // A session of its own, without a controlling terminal: the payload cannot push input
        // into the caller's terminal with TIOCSTI (which the kernel allows on one's controlling
        // terminal only), nor receive its job-control signals (ring0 forwards them).
        sys.new_session(!cfg.stdin)?;
    }
    // OCI `--preserve-fds N`: the caller's descriptors 3..3+N are passed on.
    let first = 3 + cfg.oci.as_ref().map(|o| o.preserve_fds).unwrap_or(0);
    process::preamble(sys, proc_, &cfg.spec, first)?;
    let plan = ExecPlan::new(proc_)?;
    // --init: the plan executes Gocker's init with the command as its arguments.
    let plan = crate::init::wrap(cfg, plan)?;
    let filter = match &cfg.seccomp {
        Some(b) => Some(gocker_seccomp::load::Prepared::new(
            b,
            gocker_seccomp::LoadFlags::for_program(b),
        )?),
        None => None,
    };
    // From "created" on, processes of the container may exist beside us (OCI hooks, `exec`)
    // while we still run the runtime's binary with capabilities: none of them may ptrace us or
    // open our /proc/PID/exe. ring0 needs ptrace access to us until here (oom_score_adj) and, when
    // rootless, later too (joining a created container by pidfd), which a non-dumpable process
    // refuses to a caller without host CAP_SYS_PTRACE; rootless, ring2 is covered instead by
    // holding every capability until the start (docs/security.md).
    if cfg.rootful {
        sys.set_non_dumpable()?;
    }

    // The start barrier (OCI "created"): wait until ring0 says start, however long that is.
    crate::workspace::before_barrier(cfg, sys)?;
    if cfg.oci.is_some() {
        sys.outlive_creator()?;
    }
    sys.report_ready()?;
    match &cfg.oci {
        None => sys.wait_start()?,
        Some(oci) => {
            let state = crate::oci_init::needs_state(&cfg.spec);
            if state {
                sys.recv_oci_state()?;
            }
            sys.fifo_barrier(oci)?;
            // startContainer: after `start`, before the payload; paths resolve in the container.
            if state && cfg.spec.hooks().is_some() {
                sys.start_container_hooks()?;
            }
        }
    }
    crate::workspace::after_barrier(cfg, sys)?;

    process::become_payload(sys, proc_, !cfg.idmaps.deny_setgroups, filter.as_ref())?;
    Ok(plan)
}

/// [`Ring2Sys`] carried out.
struct Kernel<'a> {
    cfg: &'a ContainerConfig,
    chan: &'a Channel,
    sup: &'a Channel,
    parent: Parent<'a>,
    /// ring0's idmapped rootfs, until attached.
    rootfs: Option<OwnedFd>,
    /// With the premade volumes; until `pivot_root`.
    mounter: Option<KernelMounter>,
    /// The attached rootfs directory, until opened.
    rootdir: Option<PathBuf>,
    /// The root of the mount plan, until the working directory is entered.
    root: Option<OwnedFd>,
    /// The terminal's master, until reported.
    master: Option<OwnedFd>,
    oci_state: Option<String>,
}

impl Kernel<'_> {
    fn root(&self) -> Result<BorrowedFd<'_>> {
        self.root
            .as_ref()
            .map(|r| r.as_fd())
            .ok_or_else(|| RuntimeError::Protocol("ring2: no root mounted".into()))
    }
}

impl crate::initsys::RealNamespaces for Kernel<'_> {}

impl process::KernelHooks for Kernel<'_> {
    fn load_seccomp(&mut self, filter: &gocker_seccomp::load::Prepared) -> Result<()> {
        load_seccomp(self.cfg, filter, self.sup, self.oci_state.as_deref())
    }
    fn after_identity(&mut self) -> Result<()> {
        match self.cfg.oci {
            None => die_with_parent(&self.parent),
            Some(_) => Ok(()),
        }
    }
}

impl Ring2Sys for Kernel<'_> {
    fn die_with_parent(&mut self) -> Result<()> {
        die_with_parent(&self.parent)
    }
    fn die_with_creator(&mut self) -> Result<()> {
        crate::oci_init::die_with_creator()
    }
    fn mount_root(&mut self, at_cwd: bool) -> Result<()> {
        if at_cwd {
            self.root = Some(crate::oci_init::mount_root_at_cwd(self.rootfs.take())?);
        } else {
            self.rootdir = Some(mount_root(self.cfg, self.rootfs.take())?);
        }
        Ok(())
    }
    fn open_root(&mut self) -> Result<()> {
        let dir = self.rootdir.take().unwrap_or_default();
        self.root = Some(root::open_dir(&dir)?);
        Ok(())
    }
    fn wait_in_cgroup(&mut self, leaf: &str, timeout: std::time::Duration) -> Result<()> {
        crate::workspace::wait_in_cgroup(leaf, timeout)
    }
    fn mount(&mut self, step: &gocker_mounts::Step) -> Result<()> {
        let root = self.root.as_ref().map(|r| r.as_fd());
        match (self.mounter.as_mut(), root) {
            (Some(m), Some(r)) => Ok(gocker_mounts::Mounter::apply(m, r, step)?),
            _ => Err(RuntimeError::Protocol(
                "ring2: mount after pivot_root".into(),
            )),
        }
    }
    fn make_cwd(&mut self, cwd: &Path) {
        if let Ok(r) = self.root() {
            let _ = open_in_root(r, cwd, Create::Dir);
        }
    }
    fn root_readonly(&mut self) -> Result<()> {
        Ok(root::root_readonly(self.root()?)?)
    }
    fn pivot_root(&mut self) -> Result<()> {
        Ok(root::pivot_root(self.root()?)?)
    }
    fn set_root_propagation(
        &mut self,
        p: gocker_mounts::options::Propagation,
        recursive: bool,
    ) -> Result<()> {
        Ok(root::set_root_propagation(p, recursive)?)
    }
    fn enter_cwd(&mut self, cwd: &Path) -> Result<()> {
        self.root = None;
        self.mounter = None;
        // Resolved inside the new root, never through a magic link such as /proc/self/fd/N (one of
        // our own descriptors: CVE-2024-21626), and checked to be reachable from it.
        gocker_mounts::resolve::enter_dir(cwd).map_err(|e| RuntimeError::Ring {
            stage: "set working directory (process.cwd)".into(),
            message: e.to_string(),
        })
    }
    fn open_terminal(
        &mut self,
        size: Option<&oci_spec::runtime::Box>,
        owner: (u32, u32),
    ) -> Result<()> {
        let (m, peer) = stage("create the terminal", crate::tty::open_pair())?;
        // Size the new terminal before anything runs: the spec's consoleSize, else like the
        // caller's terminal (our stdio is still the caller's).
        crate::tty::initial_size(m.as_fd(), size);
        stage(
            "attach the terminal",
            crate::tty::become_controlled(peer, Some(owner)),
        )?;
        self.master = Some(m);
        Ok(())
    }
    fn new_session(&mut self, stdin_null: bool) -> Result<()> {
        rustix::process::setsid().map_err(|e| RuntimeError::sys("setsid", "payload", e))?;
        if stdin_null {
            let null = rustix::fs::open(
                "/dev/null",
                rustix::fs::OFlags::RDWR,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| RuntimeError::sys("open", "/dev/null", e))?;
            rustix::stdio::dup2_stdin(&null).map_err(|e| RuntimeError::sys("dup2", "stdin", e))?;
        }
        Ok(())
    }
    fn set_dumpable(&mut self, dumpable: bool) -> Result<()> {
        crate::workspace::set_dumpable(dumpable)
    }
    fn outlive_creator(&mut self) -> Result<()> {
        crate::oci_init::outlive_creator()
    }
    fn report_ready(&mut self) -> Result<()> {
        let master = self.master.take();
        let fds: Vec<_> = master.iter().map(|m| m.as_fd()).collect();
        self.chan.send(&Up::Ready, &fds)
    }
    fn wait_start(&mut self) -> Result<()> {
        match self.chan.recv::<Down>(None, "start")? {
            Some((Down::Start, _)) => Ok(()),
            _ => exit(125),
        }
    }
    fn recv_oci_state(&mut self) -> Result<()> {
        let stage = "the container's state from create";
        match self
            .chan
            .recv::<Down>(Some(self.cfg.stage_timeout), stage)?
        {
            Some((Down::OciState(s), _)) => {
                self.oci_state = Some(s);
                Ok(())
            }
            _ => exit(125),
        }
    }
    fn fifo_barrier(&mut self, oci: &crate::OciMode) -> Result<()> {
        crate::oci_init::start_barrier(oci)
    }
    fn start_container_hooks(&mut self) -> Result<()> {
        if let (Some(h), Some(state)) = (self.cfg.spec.hooks(), &self.oci_state) {
            crate::oci_init::run_hooks("startContainer", h.start_container(), state.as_bytes())?;
        }
        Ok(())
    }
}

/// Attaches the rootfs and returns the directory that becomes `/`: a copy-on-write root
/// ([`ContainerConfig::cow`]: the overlay ring0 made, or one made here), else the idmapped mount
/// from ring0 or a recursive bind of `root.path`.
fn mount_root(cfg: &ContainerConfig, idmapped: Option<OwnedFd>) -> Result<PathBuf> {
    let rootfs = cfg.rootfs()?;
    match cfg.root_mode {
        RootMode::Rootfs if cfg.cow.is_some() => {
            let by_ring0 = cfg.cow.as_ref().is_some_and(|c| c.by_ring0);
            let overlay = match idmapped {
                Some(m) if by_ring0 => Some(m),
                premade => {
                    // ring0's idmapped clone of root.path, the lower layer, beneath the overlay.
                    if let Some(m) = premade {
                        root::attach(m.as_fd(), &rootfs)?;
                    }
                    userns_overlay(cfg, &rootfs)?
                }
            };
            // Attached over root.path in this mount namespace only: nothing is written there.
            if let Some(m) = overlay {
                root::attach(m.as_fd(), &rootfs)?;
            }
            Ok(rootfs)
        }
        RootMode::Rootfs => {
            let idmapped_rw = idmapped.is_some() && !cfg.readonly_root();
            let mnt = match idmapped {
                Some(m) => m,
                None => root::clone(&rootfs, true)?,
            };
            root::attach(mnt.as_fd(), &rootfs)?;
            if idmapped_rw {
                // Through the idmapped mount, container root writes as host root: its writes go
                // to a layer of its own instead, so that nothing it creates (a setuid-root copy
                // of a shell, say) lands in the rootfs directory, where host users could run it.
                let overlay = root::ephemeral_overlay(&rootfs).map_err(|e| RuntimeError::Ring {
                    stage: "copy-on-write layer over the idmapped rootfs".into(),
                    message: format!("{e} (run with --read-only, or --no-idmap for a plain bind)"),
                })?;
                root::attach(overlay.as_fd(), &rootfs)?;
            }
            Ok(rootfs)
        }
        RootMode::HostView => {
            let mnt = root::clone(Path::new("/"), true)?;
            root::set_readonly(mnt.as_fd(), Path::new("/"), true, true)?;
            root::attach(mnt.as_fd(), Path::new(HOST_VIEW_STAGING))?;
            Ok(PathBuf::from(HOST_VIEW_STAGING))
        }
    }
}

/// Copy-on-write root, unless ring0 mounted it (rootless; rootful `--rm` over `--rootfs`):
/// overlayfs mounted here, in the container's user namespace
/// (`userxattr`: its metadata in `user.overlay.*` xattrs), over the lower layers by path, with
/// the upper and work directories in the container's state directory, which the container's
/// root (the caller) owns, or (`--rm`) on a tmpfs of its own. Where the kernel refuses it,
/// `fuse-overlayfs` mounts it at `rootfs` instead (`None`: nothing to attach); without it, the
/// error names both.
fn userns_overlay(cfg: &ContainerConfig, rootfs: &Path) -> Result<Option<OwnedFd>> {
    let stage = |message: String| RuntimeError::Ring {
        stage: "copy-on-write root".into(),
        message,
    };
    let cow = cfg.cow.as_ref().expect("a copy-on-write root");
    // The tmpfs is held by the overlay once mounted; the descriptor, until then.
    let tmp = match cow.ephemeral {
        true => Some(root::ephemeral_upper(
            cow.upper_mode(rootfs)?,
            None,
            rootfs,
        )?),
        false => None,
    };
    let (upper, work) = match &tmp {
        Some(t) => root::ephemeral_paths(t.as_fd()),
        None => cow
            .upper_work()
            .ok_or_else(|| stage("no directory for the upper layer".into()))?,
    };
    let layers = cow.layers(rootfs);
    let flags = root::OverlayFlags { userxattr: true };
    let kernel = match root::overlay(&layers, Some((&upper, &work)), flags, rootfs) {
        Ok(m) => return Ok(Some(m)),
        // Kernels before 6.15 take no detached mount as the upper layer ("overlayfs: failed to
        // clone upperpath"): attach the tmpfs in this mount namespace first, stacked on the
        // rootfs path itself (nothing on the host sees it, and pivot_root drops it), and name
        // a lower at that path by a descriptor opened before.
        Err(e) if e.errno() == Some(libc::EINVAL) && tmp.is_some() => {
            let under = root::open_dir(rootfs)?;
            let by_fd = PathBuf::from(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&under)
            ));
            if let Some(t) = &tmp {
                root::attach(t.as_fd(), rootfs)?;
            }
            let layers: Vec<PathBuf> = layers
                .iter()
                .map(|l| {
                    if l == rootfs {
                        by_fd.clone()
                    } else {
                        l.clone()
                    }
                })
                .collect();
            match root::overlay(&layers, Some((&upper, &work)), flags, rootfs) {
                Ok(m) => return Ok(Some(m)),
                Err(again) => again,
            }
        }
        Err(e) => e,
    };
    let described = format!(
        "overlayfs over {} with upper {}",
        layers
            .iter()
            .map(|l| l.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        upper.display()
    );
    match root::fuse_overlayfs_binary() {
        Some(bin) => {
            // fuse-overlayfs reaches the tmpfs by the same descriptor number, inherited.
            if let Some(t) = &tmp {
                rustix::io::fcntl_setfd(t, rustix::io::FdFlags::empty())
                    .map_err(|e| RuntimeError::sys("fcntl", "the upper tmpfs", e))?;
            }
            root::fuse_overlay(&bin, &layers, Some((&upper, &work)), rootfs).map_err(|e| {
                stage(format!(
                    "the kernel refused {described} in the container's user namespace ({kernel}), \
                     and fuse-overlayfs failed too: {e}"
                ))
            })?;
            Ok(None)
        }
        None => Err(stage(format!(
            "the kernel refused {described} in the container's user namespace ({kernel}), and \
             fuse-overlayfs, the fallback, is not installed (Debian package fuse-overlayfs)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::run;
    use crate::initsys::{test_config, Recording};

    fn ring2(cfg: &crate::ContainerConfig) -> Recording {
        let mut rec = Recording::default();
        run(cfg, &mut rec).expect("ring2's steps");
        rec
    }

    /// The steps from `from` on.
    fn from<'a>(rec: &'a Recording, step: &str) -> &'a [String] {
        &rec.log[rec.first(step)..]
    }

    #[test]
    fn run_ring2_mounts_everything_then_masks_then_pivots_then_drops_privileges_and_filters_last() {
        let rec = ring2(&test_config());
        assert_eq!(rec.log[..3], ["pdeathsig", "attach root", "open root"]);
        // The plan's mounts, then its masked and read-only paths, all under the old root.
        rec.before("open root", "mount ");
        rec.before("mount ", "mask ");
        rec.before("mount ", "readonly ");
        rec.before("mask ", "pivot_root");
        rec.before("readonly ", "pivot_root");
        rec.before("root readonly", "pivot_root");
        assert_eq!(
            from(&rec, "pivot_root"),
            [
                "pivot_root",
                "chdir /",
                "setsid (stdin null: true)",
                // The preamble: descriptors, rlimits, personality, bounding set.
                "cloexec(3)",
                "rlimits",
                "personality",
                "bounding",
                // Rootful: nothing of the container may ptrace us from "created" on.
                "nondumpable",
                "ready",
                "wait start",
                // The drop, after the barrier; with no_new_privs the filter is the last step.
                "setresuid(0)",
                "capset",
                "nondumpable",
                "after identity",
                "nnp",
                "signals",
                "seccomp",
                "exec sh",
            ]
        );
    }

    #[test]
    fn run_ring2_sets_a_shared_root_propagation_after_pivot_root_and_before_anything_else() {
        let mut cfg = test_config();
        if let Some(l) = cfg.spec.linux_mut() {
            l.set_rootfs_propagation(Some("rshared".into()));
        }
        let rec = ring2(&cfg);
        assert_eq!(
            from(&rec, "pivot_root")[..3],
            ["pivot_root", "root propagation Shared true", "chdir /"]
        );
    }

    #[test]
    fn run_ring2_without_no_new_privs_loads_the_filter_right_after_the_barrier_while_privileged() {
        let mut cfg = test_config();
        if let Some(p) = cfg.spec.process_mut() {
            p.set_no_new_privileges(Some(false));
        }
        let rec = ring2(&cfg);
        assert_eq!(
            from(&rec, "wait start")[..3],
            ["wait start", "seccomp", "setresuid(0)"]
        );
        assert!(!rec.has("nnp"));
        rec.before("signals", "exec sh");
    }

    #[test]
    fn run_ring2_with_a_terminal_opens_it_in_the_new_root_and_hands_it_over_with_ready() {
        let mut cfg = test_config();
        cfg.tty = true;
        cfg.rootful = false;
        let rec = ring2(&cfg);
        assert_eq!(
            from(&rec, "pivot_root")[..4],
            ["pivot_root", "chdir /", "terminal", "cloexec(3)"]
        );
        rec.before("terminal", "ready");
        // Rootless: no non-dumpable step before the barrier, only the one of the drop.
        rec.before("wait start", "nondumpable");
        assert!(!rec.has("setsid"));
    }

    #[test]
    fn oci_create_ring2_waits_at_the_fifo_after_ready_and_before_the_privilege_drop() {
        let mut cfg = test_config();
        cfg.oci = Some(crate::OciMode {
            exec_fifo_fd: crate::config::InheritedFd::of(&7),
            preserve_fds: 2,
            seccomp_agent_fd: None,
            userns_fd: None,
            pidns_fd: None,
            foreign_joins: 0,
        });
        let hook = serde_json::json!({"startContainer": [{"path": "/bin/hook"}]});
        cfg.spec
            .set_hooks(Some(serde_json::from_value(hook).expect("hooks")));
        let rec = ring2(&cfg);
        // Dies with the creating process until created; the rootfs is the working directory.
        assert_eq!(rec.log[..2], ["pdeathsig(creator)", "attach root at cwd"]);
        assert!(!rec.has("open root") && !rec.has("wait start"));
        rec.before("attach root at cwd", "mount ");
        rec.before("mount ", "pivot_root");
        // --preserve-fds 2: descriptors 3 and 4 pass.
        rec.before("pivot_root", "cloexec(5)");
        assert_eq!(
            from(&rec, "clear pdeathsig"),
            [
                "clear pdeathsig",
                "ready",
                "recv state",
                "open fifo 7",
                "startContainer hooks",
                "setresuid(0)",
                "capset",
                "nondumpable",
                // OCI mode: ring2's parent is the creating process, which is gone by now.
                "after identity",
                "nnp",
                "signals",
                "seccomp",
                "exec sh",
            ]
        );
    }

    #[test]
    fn workspace_ring2_enters_its_cgroup_view_before_mounting_and_is_dumpable_only_at_the_barrier()
    {
        let mut cfg = test_config();
        cfg.workspace.private_cgroup = true;
        cfg.workspace.cgroup_leaf = Some("leaf".into());
        cfg.workspace.enclave = Some(vec!["setup".into()]);
        let rec = ring2(&cfg);
        rec.before("open root", "wait in cgroup leaf");
        rec.before("wait in cgroup leaf", "unshare(cgroup)");
        rec.before("unshare(cgroup)", "mount ");
        // ring1's enclave joins ring2 through its pidfd while it waits at the barrier.
        assert_eq!(
            from(&rec, "bounding")[..6],
            [
                "bounding",
                "nondumpable",
                "dumpable=1",
                "ready",
                "wait start",
                "dumpable=0"
            ]
        );
        rec.before("dumpable=0", "setresuid(0)");
        // A plain container has neither.
        let rec = ring2(&test_config());
        assert!(!rec.has("unshare(") && !rec.has("dumpable="));
    }
}
