//! ring1: the namespace supervisor. Root inside the new user namespace; sets hostname and loopback,
//! makes the mount tree private, starts ring2 in a new PID namespace and reports its exit status.

use std::os::fd::AsFd;

use gocker_ns::{Forked, Namespace};
use rustix::process::{Gid, Uid};

use crate::channel::Channel;
use crate::config::SpawnMode;
use crate::proto::{Down, Up};
use crate::ring2::Premade;
use crate::sys::{die_with_parent, exit, Parent};
use crate::{ring2, ContainerConfig, ExitStatus, Result, RuntimeError};

/// Runs ring1 in the child created by ring0. Never returns.
pub(crate) fn main(cfg: &ContainerConfig, up: Channel, ring2_chan: Channel, parent: i32) -> ! {
    let outcome = run(cfg, &up, ring2_chan, parent);
    crate::workspace::debug_sleep(cfg, &outcome);
    match outcome {
        Ok(status) => {
            let _ = up.send(&Up::Exited(status), &[]);
            exit(0)
        }
        Err(e) => {
            let _ = up.send(&Up::failed("ring1", &e), &[]);
            exit(125)
        }
    }
}

fn ring_err(stage: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Ring {
        stage: stage.to_owned(),
        message: e.to_string(),
    }
}

fn run(
    cfg: &ContainerConfig,
    up: &Channel,
    ring2_chan: Channel,
    parent: i32,
) -> Result<ExitStatus> {
    let parent = Parent::Pid(parent);
    die_with_parent(&parent)?;
    // Off the caller's session (and its controlling terminal): nothing ring1 starts — ring2,
    // lifted commands, seccomp helpers — can reach the caller's terminal with TIOCSTI or get
    // its job-control signals.
    rustix::process::setsid().map_err(|e| ring_err("setsid", e))?;
    let (ns1, ns2) = cfg.namespaces();
    if let Some(o) = &cfg.oci {
        crate::joins::enter(o.userns_fd, o.pidns_fd, ns1)?;
    }
    // Premade mounts that did not fit in the message of the maps come first (proto::Down).
    let mut ahead = Vec::new();
    let (msg, mut fds) = loop {
        let (msg, fds) = up
            .recv::<Down>(Some(cfg.stage_timeout), "ring0 to write the id maps")?
            .ok_or_else(|| ring_err("ring1", "ring0 went away before writing the id maps"))?;
        match msg {
            Down::Volumes(dests) if dests.len() == fds.len() => {
                ahead.extend(dests.into_iter().zip(fds))
            }
            Down::Volumes(dests) => {
                return Err(ring_err(
                    "ring1",
                    format!("expected {} premade mounts, got {}", dests.len(), fds.len()),
                ))
            }
            other => break (other, fds),
        }
    };
    let (mut premade, own_files) = match msg {
        Down::Mapped {
            rootfs,
            volumes,
            files,
        } => {
            let expected = usize::from(rootfs) + volumes.len() + files.len();
            if fds.len() != expected {
                return Err(ring_err(
                    "ring1",
                    format!(
                        "expected {expected} descriptors (idmapped mounts and own files), got {}",
                        fds.len()
                    ),
                ));
            }
            let templates = fds.split_off(usize::from(rootfs) + volumes.len());
            let rest = fds.split_off(usize::from(rootfs));
            ahead.extend(volumes.into_iter().zip(rest));
            (
                Premade {
                    rootfs: fds.pop(),
                    volumes: ahead,
                },
                files.into_iter().zip(templates).collect(),
            )
        }
        Down::Volumes(_) | Down::Start | Down::Enclave | Down::OciState(_) => {
            return Err(ring_err("ring1", "unexpected message before the id maps"))
        }
    };
    // Rootless: the spec's bind sources are opened here, with the caller's groups still ours
    // (ring2 runs without them), instead of by ring2 (ring0 opens them when root).
    if !cfg.rootful {
        let mut notes = Vec::new();
        let mut binds = Premade::binds(&cfg.spec, &cfg.own_files, None, &mut notes);
        binds.append(&mut premade.volumes);
        premade.volumes = binds;
        for n in notes {
            tracing::debug!("{n}");
        }
    }

    // Become root of the new user namespace.
    if !cfg.idmaps.deny_setgroups {
        rustix::thread::set_thread_groups(&[])
            .map_err(|e| ring_err("setgroups in the user namespace", e))?;
    }
    rustix::thread::set_thread_res_gid(Gid::ROOT, Gid::ROOT, Gid::ROOT)
        .map_err(|e| ring_err("setresgid(0)", e))?;
    rustix::thread::set_thread_res_uid(Uid::ROOT, Uid::ROOT, Uid::ROOT)
        .map_err(|e| ring_err("setresuid(0)", e))?;
    // Credential changes clear the parent-death signal.
    die_with_parent(&parent)?;

    if ns1.contains(Namespace::Uts) {
        if let Some(h) = cfg.spec.hostname() {
            rustix::system::sethostname(h.as_bytes())
                .map_err(|e| ring_err(&format!("sethostname({h})"), e))?;
        }
        if let Some(d) = cfg.spec.domainname() {
            rustix::system::setdomainname(d.as_bytes())
                .map_err(|e| ring_err(&format!("setdomainname({d})"), e))?;
        }
    }
    if let Some(sysctl) = cfg.spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        let joined = cfg.oci.as_ref().map(|o| o.foreign_joins).unwrap_or(0);
        let joined = crate::sysctl::namespaces_from_bits(joined);
        crate::sysctl::apply(&crate::sysctl::plan(sysctl, ns1, joined)?)?;
    }
    gocker_mounts::root::make_rprivate()?;
    if ns1.contains(Namespace::Net) {
        crate::net::loopback_up()?;
    }

    // ring2 lives in a new PID namespace where getppid() is 0: it watches this pidfd instead.
    let me = rustix::process::pidfd_open(
        rustix::process::getpid(),
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| ring_err("pidfd_open(ring1)", e))?;
    // The container's own /etc/hosts and /etc/resolv.conf: copies on a bounded tmpfs.
    crate::own_files::setup(own_files, &mut premade.volumes)?;
    // Workspace mode: lift's tmpfs (client + socket), attached by ring2 at /.gocker.
    let lift = match crate::lift::setup(cfg)? {
        Some((server, mnt)) => {
            let dest = std::path::PathBuf::from(crate::workspace::LIFT_DIR);
            premade.volumes.retain(|(d, _)| *d != dest);
            premade.volumes.push((dest, mnt));
            Some(server)
        }
        None => None,
    };
    // ring2 sends the seccomp notification descriptor over this channel; ring1 serves it.
    let (sup, sup_ring2) = crate::channel::pair()?;
    // OCI mode: ring2 is a sibling (a child of ring0), so that it outlives ring0 and ring1.
    let forked = match cfg.oci {
        // SAFETY: ring1 is single-threaded (a fork of single-threaded ring0 that started no threads).
        None => unsafe { gocker_ns::fork_into(ns2, None) }?,
        // SAFETY: as above; ring1 is not the init of a PID namespace.
        Some(_) => unsafe { gocker_ns::fork_sibling_into(ns2) }?,
    };
    let (pid, pidfd) = match forked {
        // ring2 keeps a copy of the ring0 channel until exec (it is close-on-exec); ring0 watches
        // ring1's pidfd, not only this channel, to notice ring1's death.
        Forked::Child => match &cfg.spawn {
            SpawnMode::Fork => ring2::main(cfg, ring2_chan, sup_ring2, premade, me.as_fd()),
            SpawnMode::Exec { ring2: binary, .. } => {
                // ring1 is single-threaded: preparing the exec after the fork is fine here.
                let prepared = crate::spawn::config_memfd(cfg).and_then(|config| {
                    let mut fds = vec![
                        crate::spawn::raw(&config),
                        crate::spawn::raw(&ring2_chan.as_fd()),
                        crate::spawn::raw(&me),
                    ];
                    fds.extend(
                        premade
                            .rootfs
                            .iter()
                            .chain(premade.volumes.iter().map(|v| &v.1))
                            .map(crate::spawn::raw),
                    );
                    fds.push(crate::spawn::raw(&sup_ring2.as_fd()));
                    std::env::set_var(crate::spawn::ENV_MOUNTS, premade.describe());
                    std::env::set_var(
                        crate::spawn::ENV_SUP,
                        crate::spawn::raw(&sup_ring2.as_fd()).to_string(),
                    );
                    crate::spawn::prepare(binary, "ring2", &fds).map(|p| (p, config))
                });
                match prepared {
                    Ok((p, _config)) => p.exec_in_child(),
                    Err(e) => {
                        let _ = ring2_chan.send(&Up::failed("exec ring2", &e), &[]);
                        exit(125)
                    }
                }
            }
        },
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(ring2_chan);
    drop(sup_ring2);
    drop(premade);
    up.send(&Up::Ring2Pid(pid), &[])?;
    if cfg.oci.is_some() {
        // OCI mode: ring2 is not ours; nothing is left to supervise (notify rules need the
        // spec's listenerPath, see crate::oci). ring0 reaps us.
        exit(0);
    }
    crate::workspace::serve_enclave(cfg, up, pidfd.as_fd())?;

    let pid = rustix::process::Pid::from_raw(pid).expect("positive pid");
    crate::supervise::serve(cfg, pid, pidfd.as_fd(), sup, lift)
}
