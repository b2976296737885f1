//! ring2: the payload side. PID 1 of a new PID namespace with its own mount namespace: builds the
//! container's mount tree, pivots into it, drops privileges, waits at the start barrier and execs.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use gocker_mounts::resolve::{open_in_root, Create};
use gocker_mounts::{root, KernelMounter};

use crate::channel::Channel;
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
    let parent = Parent::Pidfd(parent);
    let plan = match prepare(cfg, &chan, &sup, premade, &parent) {
        Ok(p) => p,
        Err(e) => {
            let _ = chan.send(&Up::failed("ring2", &e), &[]);
            crate::oci_init::report_after_create(cfg, &e);
            exit(125)
        }
    };
    let errno = plan.exec();
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

fn prepare(
    cfg: &ContainerConfig,
    chan: &Channel,
    sup: &Channel,
    premade: Premade,
    parent: &Parent<'_>,
) -> Result<ExecPlan> {
    match cfg.oci {
        None => die_with_parent(parent)?,
        // OCI mode: our parent is ring0 (CLONE_PARENT); die with it until created (cleared at the barrier).
        Some(_) => crate::oci_init::die_with_creator()?,
    }
    let proc_ = cfg
        .spec
        .process()
        .as_ref()
        .ok_or_else(|| RuntimeError::Config("spec has no process".into()))?;
    let rootfd = if cfg.oci.is_some() && cfg.root_mode == RootMode::Rootfs {
        // OCI mode: the rootfs is our working directory (see crate::oci::mount_root_at_cwd).
        stage(
            "mount rootfs",
            crate::oci_init::mount_root_at_cwd(premade.rootfs),
        )?
    } else {
        let rootdir = stage("mount rootfs", mount_root(cfg, premade.rootfs))?;
        root::open_dir(&rootdir)?
    };
    stage(
        "enter the container's cgroup namespace",
        crate::workspace::enter_cgroup_view(cfg),
    )?;
    let steps = gocker_mounts::plan(&cfg.spec)?;
    let mut mounter = KernelMounter {
        premade: premade.volumes,
        ..Default::default()
    };
    stage(
        "mount container filesystems",
        gocker_mounts::apply_all(&mut mounter, rootfd.as_fd(), &steps).map_err(Into::into),
    )?;
    let cwd = proc_.cwd().clone();
    // Like docker, create a missing working directory (best effort: the rootfs may be read-only).
    let _ = open_in_root(rootfd.as_fd(), &cwd, Create::Dir);
    if cfg.readonly_root() {
        stage(
            "make rootfs read-only",
            root::root_readonly(rootfd.as_fd()).map_err(Into::into),
        )?;
    }
    stage(
        "pivot_root",
        root::pivot_root(rootfd.as_fd()).map_err(Into::into),
    )?;
    if let Some((propagation, recursive)) = gocker_mounts::plan::after_pivot(&cfg.spec) {
        stage(
            "linux.rootfsPropagation",
            root::set_root_propagation(propagation, recursive).map_err(Into::into),
        )?;
    }
    drop(rootfd);
    // Resolved inside the new root, never through a magic link such as /proc/self/fd/N (one of
    // our own descriptors: CVE-2024-21626), and checked to be reachable from it.
    gocker_mounts::resolve::enter_dir(&cwd).map_err(|e| RuntimeError::Ring {
        stage: "set working directory (process.cwd)".into(),
        message: e.to_string(),
    })?;

    // -t: a terminal from the container's own devpts; its master goes to ring0 with "ready".
    let mut master = None;
    if cfg.tty {
        let (m, peer) = stage("create the terminal", crate::tty::open_pair())?;
        // Size the new terminal before anything runs: the spec's consoleSize, else like the
        // caller's terminal (our stdio is still the caller's).
        crate::tty::initial_size(m.as_fd(), proc_.console_size().as_ref());
        let owner = (proc_.user().uid(), proc_.user().gid());
        stage(
            "attach the terminal",
            crate::tty::become_controlled(peer, Some(owner)),
        )?;
        master = Some(m);
    } else {
        // A session of its own, without a controlling terminal: the payload cannot push input
        // into the caller's terminal with TIOCSTI (which the kernel allows on one's controlling
        // terminal only), nor receive its job-control signals (ring0 forwards them).
        rustix::process::setsid().map_err(|e| RuntimeError::sys("setsid", "payload", e))?;
        if !cfg.stdin {
            let null = rustix::fs::open(
                "/dev/null",
                rustix::fs::OFlags::RDWR,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| RuntimeError::sys("open", "/dev/null", e))?;
            rustix::stdio::dup2_stdin(&null).map_err(|e| RuntimeError::sys("dup2", "stdin", e))?;
        }
    }
    // OCI `--preserve-fds N`: the caller's descriptors 3..3+N are passed on.
    let first = 3 + cfg.oci.as_ref().map(|o| o.preserve_fds).unwrap_or(0);
    process::preamble(proc_, &cfg.spec, first)?;
    let plan = ExecPlan::new(proc_)?;
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
        process::set_non_dumpable()?;
    }

    // The start barrier (OCI "created"): wait until ring0 says start, however long that is.
    crate::workspace::before_barrier(cfg)?;
    if cfg.oci.is_some() {
        crate::oci_init::outlive_creator()?;
    }
    let fds: Vec<_> = master.iter().map(|m| m.as_fd()).collect();
    chan.send(&Up::Ready, &fds)?;
    drop(fds);
    drop(master);
    let mut oci_state = None;
    match &cfg.oci {
        None => match chan.recv::<Down>(None, "start")? {
            Some((Down::Start, _)) => {}
            _ => exit(125),
        },
        Some(oci) => {
            if crate::oci_init::needs_state(&cfg.spec) {
                let stage = "the container's state from create";
                match chan.recv::<Down>(Some(cfg.stage_timeout), stage)? {
                    Some((Down::OciState(s), _)) => oci_state = Some(s),
                    _ => exit(125),
                }
            }
            crate::oci_init::start_barrier(oci)?;
            // startContainer: after `start`, before the payload; paths resolve in the container.
            if let (Some(h), Some(state)) = (cfg.spec.hooks(), &oci_state) {
                crate::oci_init::run_hooks(
                    "startContainer",
                    h.start_container(),
                    state.as_bytes(),
                )?;
            }
        }
    }
    crate::workspace::after_barrier(cfg)?;

    let load = filter
        .as_ref()
        .map(|f| move || load_seccomp(cfg, f, sup, oci_state.as_deref()));
    process::become_payload(
        proc_,
        !cfg.idmaps.deny_setgroups,
        load.as_ref().map(|l| l as &dyn Fn() -> Result<()>),
        &|| match cfg.oci {
            None => die_with_parent(parent),
            Some(_) => Ok(()),
        },
    )?;
    Ok(plan)
}

/// Attaches the rootfs (the idmapped mount from ring0, or a recursive bind) and returns the
/// directory that becomes `/`.
fn mount_root(cfg: &ContainerConfig, idmapped: Option<OwnedFd>) -> Result<PathBuf> {
    let rootfs = cfg.rootfs()?;
    match cfg.root_mode {
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
