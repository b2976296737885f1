//! ring1: the namespace supervisor. Root inside the new user namespace; sets hostname and loopback,
//! makes the mount tree private, starts ring2 in a new PID namespace and reports its exit status.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use gocker_ns::{Forked, Namespace, NamespaceSet};
use rustix::process::{Gid, Uid};

use crate::channel::Channel;
use crate::config::SpawnMode;
use crate::initsys::Ring1Sys;
use crate::proto::{Down, Up};
use crate::ring2::Premade;
use crate::sys::{die_with_parent, exit, Parent};
use crate::{ring2, ContainerConfig, ExitStatus, Result, RuntimeError};

/// Runs ring1 in the child created by ring0. Never returns.
pub(crate) fn main(cfg: &ContainerConfig, up: Channel, ring2_chan: Channel, parent: i32) -> ! {
    crate::logs::close_in_ring();
    let mut k = Kernel {
        cfg,
        up: &up,
        parent: Parent::Pid(parent),
        ring2_chan: Some(ring2_chan),
        premade: Premade::default(),
        own_files: Vec::new(),
        me: None,
        lift: None,
        sup: None,
        ring2: None,
    };
    let outcome = match run(cfg, &mut k) {
        // OCI mode: ring2 is not ours; nothing is left to supervise (notify rules need the
        // spec's listenerPath, see crate::oci). ring0 reaps us.
        Ok(None) => exit(0),
        Ok(Some(status)) => Ok(status),
        Err(e) => Err(e),
    };
    drop(k);
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

/// The order of ring1's steps: namespaces joined (OCI), the id maps awaited, root of the user
/// namespace, hostname, sysctls, private mounts, loopback, the premade mounts, ring2 forked and
/// reported, then the enclave and the supervisor. Every step goes through `sys`
/// ([`crate::initsys`]). `None`: OCI mode, where ring1 exits once ring2 exists.
fn run(cfg: &ContainerConfig, sys: &mut dyn Ring1Sys) -> Result<Option<ExitStatus>> {
    sys.die_with_parent()?;
    // Off the caller's session (and its controlling terminal): nothing ring1 starts — ring2,
    // lifted commands, seccomp helpers — can reach the caller's terminal with TIOCSTI or get
    // its job-control signals.
    sys.setsid()?;
    let (ns1, ns2) = cfg.namespaces();
    crate::joins::enter(sys, &cfg.joined_fds(), ns1)?;
    sys.wait_for_maps()?;
    // Rootless: the spec's bind sources are opened here, with the caller's groups still ours
    // (ring2 runs without them), instead of by ring2 (ring0 opens them when root).
    if !cfg.rootful {
        sys.open_bind_sources()?;
    }

    // Become root of the new user namespace.
    sys.become_root(!cfg.idmaps.deny_setgroups)?;
    // Credential changes clear the parent-death signal.
    sys.die_with_parent()?;

    if ns1.contains(Namespace::Uts) {
        if let Some(h) = cfg.spec.hostname() {
            sys.set_hostname(h)?;
        }
        if let Some(d) = cfg.spec.domainname() {
            sys.set_domainname(d)?;
        }
    }
    if let Some(sysctl) = cfg.spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        let joined = cfg.oci.as_ref().map(|o| o.foreign_joins).unwrap_or(0);
        let joined = crate::sysctl::namespaces_from_bits(joined);
        sys.apply_sysctl(&crate::sysctl::plan(sysctl, ns1, joined)?)?;
    }
    sys.make_rprivate()?;
    if ns1.contains(Namespace::Net) {
        sys.loopback_up()?;
    }

    // ring2 lives in a new PID namespace where getppid() is 0: it watches this pidfd instead.
    sys.open_self_pidfd()?;
    // ring0 has made the root and the premade mounts meanwhile (the steps above overlap them).
    sys.receive_premade()?;
    // The container's own /etc/hosts and /etc/resolv.conf: copies on a bounded tmpfs.
    sys.own_files()?;
    // Workspace mode: lift's tmpfs (client + socket), attached by ring2 at /.gocker.
    crate::workspace::prepare_lift(cfg, sys)?;
    // OCI mode: ring2 is a sibling (a child of ring0), so that it outlives ring0 and ring1.
    let pid = sys.fork_ring2(ns2, cfg.oci.is_some())?;
    sys.report_ring2(pid)?;
    if cfg.oci.is_some() {
        return Ok(None);
    }
    crate::workspace::serve_enclave(cfg, sys)?;
    sys.supervise().map(Some)
}

/// [`Ring1Sys`] carried out.
struct Kernel<'a> {
    cfg: &'a ContainerConfig,
    up: &'a Channel,
    parent: Parent<'static>,
    /// ring2's end of the ring0 channel, until ring2 is forked.
    ring2_chan: Option<Channel>,
    /// What ring2 attaches: from ring0's message of the maps, the rootless bind sources, the own
    /// files, lift's directory; until ring2 is forked.
    premade: Premade,
    /// Templates of the container's own files, from ring0.
    own_files: Vec<(PathBuf, OwnedFd)>,
    /// ring1's own pidfd, for ring2.
    me: Option<OwnedFd>,
    lift: Option<crate::lift::Server>,
    /// ring1's end of the channel over which ring2 sends the seccomp listener.
    sup: Option<Channel>,
    ring2: Option<(rustix::process::Pid, OwnedFd)>,
}

impl crate::initsys::RealNamespaces for Kernel<'_> {}

impl Ring1Sys for Kernel<'_> {
    fn die_with_parent(&mut self) -> Result<()> {
        die_with_parent(&self.parent)
    }

    fn setsid(&mut self) -> Result<()> {
        rustix::process::setsid().map_err(|e| ring_err("setsid", e))?;
        Ok(())
    }

    fn wait_for_maps(&mut self) -> Result<()> {
        match self
            .up
            .recv::<Down>(Some(self.cfg.stage_timeout), "ring0 to write the id maps")?
        {
            Some((Down::Maps, fds)) if fds.is_empty() => Ok(()),
            Some(_) => Err(ring_err("ring1", "unexpected message before the id maps")),
            None => Err(ring_err(
                "ring1",
                "ring0 went away before writing the id maps",
            )),
        }
    }

    fn receive_premade(&mut self) -> Result<()> {
        let cfg = self.cfg;
        // Premade mounts that did not fit in the message of the maps come first (proto::Down).
        let mut ahead = Vec::new();
        let (msg, mut fds) = loop {
            let (msg, fds) = self
                .up
                .recv::<Down>(Some(cfg.stage_timeout), "ring0 to send the premade mounts")?
                .ok_or_else(|| {
                    ring_err("ring1", "ring0 went away before sending the premade mounts")
                })?;
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
        match msg {
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
                // After the rootless bind sources that ring1 opened itself.
                self.premade.rootfs = fds.pop();
                self.premade.volumes.append(&mut ahead);
                self.own_files = files.into_iter().zip(templates).collect();
                Ok(())
            }
            Down::Maps | Down::Volumes(_) | Down::Start | Down::Enclave | Down::OciState(_) => Err(
                ring_err("ring1", "unexpected message before the premade mounts"),
            ),
        }
    }

    fn open_bind_sources(&mut self) -> Result<()> {
        let cfg = self.cfg;
        let mut notes = Vec::new();
        // The first premade mounts: ring0's (receive_premade) come after them.
        self.premade.volumes = Premade::binds(&cfg.spec, &cfg.own_files, None, &mut notes);
        for n in notes {
            tracing::debug!("{n}");
        }
        Ok(())
    }

    fn become_root(&mut self, clear_groups: bool) -> Result<()> {
        if clear_groups {
            rustix::thread::set_thread_groups(&[])
                .map_err(|e| ring_err("setgroups in the user namespace", e))?;
        }
        rustix::thread::set_thread_res_gid(Gid::ROOT, Gid::ROOT, Gid::ROOT)
            .map_err(|e| ring_err("setresgid(0)", e))?;
        rustix::thread::set_thread_res_uid(Uid::ROOT, Uid::ROOT, Uid::ROOT)
            .map_err(|e| ring_err("setresuid(0)", e))?;
        Ok(())
    }

    fn set_hostname(&mut self, h: &str) -> Result<()> {
        rustix::system::sethostname(h.as_bytes())
            .map_err(|e| ring_err(&format!("sethostname({h})"), e))?;
        Ok(())
    }

    fn set_domainname(&mut self, d: &str) -> Result<()> {
        rustix::system::setdomainname(d.as_bytes())
            .map_err(|e| ring_err(&format!("setdomainname({d})"), e))?;
        Ok(())
    }

    fn apply_sysctl(&mut self, planned: &[crate::sysctl::Planned]) -> Result<()> {
        crate::sysctl::apply(planned)
    }

    fn make_rprivate(&mut self) -> Result<()> {
        Ok(gocker_mounts::root::make_rprivate()?)
    }

    fn loopback_up(&mut self) -> Result<()> {
        crate::net::loopback_up()
    }

    fn open_self_pidfd(&mut self) -> Result<()> {
        let me = rustix::process::pidfd_open(
            rustix::process::getpid(),
            rustix::process::PidfdFlags::empty(),
        )
        .map_err(|e| ring_err("pidfd_open(ring1)", e))?;
        self.me = Some(me);
        Ok(())
    }

    fn own_files(&mut self) -> Result<()> {
        crate::own_files::setup(
            std::mem::take(&mut self.own_files),
            &mut self.premade.volumes,
        )
    }

    fn prepare_lift(&mut self) -> Result<()> {
        if let Some((server, mnt)) = crate::lift::setup(self.cfg)? {
            let dest = PathBuf::from(crate::workspace::LIFT_DIR);
            self.premade.volumes.retain(|(d, _)| *d != dest);
            self.premade.volumes.push((dest, mnt));
            self.lift = Some(server);
        }
        Ok(())
    }

    fn fork_ring2(&mut self, ns2: NamespaceSet, sibling: bool) -> Result<i32> {
        let cfg = self.cfg;
        // ring2 sends the seccomp notification descriptor over this channel; ring1 serves it.
        let (sup, sup_ring2) = crate::channel::pair()?;
        let forked = if sibling {
            // ring1 is single-threaded (a fork of single-threaded ring0 that started no threads).
            // SAFETY: single-threaded, and not the init of a PID namespace.
            unsafe { gocker_ns::fork_sibling_into(ns2) }?
        } else {
            // SAFETY: ring1 is single-threaded (a fork of single-threaded ring0 that started no threads).
            unsafe { gocker_ns::fork_into(ns2, None) }?
        };
        let ring2_chan = self.ring2_chan.take();
        let premade = std::mem::take(&mut self.premade);
        match forked {
            // ring2 keeps a copy of the ring0 channel until exec (it is close-on-exec); ring0 watches
            // ring1's pidfd, not only this channel, to notice ring1's death.
            Forked::Child => {
                let (Some(ring2_chan), Some(me)) = (ring2_chan, self.me.as_ref()) else {
                    exit(125)
                };
                match &cfg.spawn {
                    SpawnMode::Fork => ring2::main(cfg, ring2_chan, sup_ring2, premade, me.as_fd()),
                    SpawnMode::Exec { ring2: binary, .. } => {
                        // ring1 is single-threaded: preparing the exec after the fork is fine here.
                        let prepared = crate::spawn::config_memfd(cfg).and_then(|config| {
                            let mut fds = vec![
                                crate::spawn::raw(&config),
                                crate::spawn::raw(&ring2_chan.as_fd()),
                                crate::spawn::raw(me),
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
                }
            }
            Forked::Parent { pid, pidfd } => {
                drop(ring2_chan);
                drop(sup_ring2);
                drop(premade);
                self.sup = Some(sup);
                self.ring2 = Some((pid, pidfd));
                Ok(pid.as_raw_nonzero().get())
            }
        }
    }

    fn report_ring2(&mut self, pid: i32) -> Result<()> {
        self.up.send(&Up::Ring2Pid(pid), &[])
    }

    fn serve_enclave(&mut self, cmd: &[String]) -> Result<()> {
        let (_, pidfd) = self
            .ring2
            .as_ref()
            .ok_or_else(|| ring_err("ring1", "the enclave before ring2"))?;
        crate::workspace::run_enclave_in_ring1(self.cfg, self.up, pidfd.as_fd(), cmd)
    }

    fn supervise(&mut self) -> Result<ExitStatus> {
        let (Some((pid, pidfd)), Some(sup)) = (self.ring2.take(), self.sup.take()) else {
            return Err(ring_err("ring1", "supervising before ring2 exists"));
        };
        crate::supervise::serve(self.cfg, pid, pidfd.as_fd(), sup, self.lift.take())
    }
}

#[cfg(test)]
mod tests {
    use gocker_ns::{Namespace, NamespaceSet};

    use super::run;
    use crate::config::LiftPolicy;
    use crate::initsys::{test_config, Recording};
    use crate::OciMode;

    fn ring1(cfg: &crate::ContainerConfig) -> Recording {
        let mut rec = Recording::default();
        run(cfg, &mut rec).expect("ring1's steps");
        rec
    }

    #[test]
    fn run_ring1_becomes_root_only_once_the_maps_are_written_and_forks_ring2_last() {
        let cfg = test_config();
        let rec = ring1(&cfg);
        let ring2 = NamespaceSet::EMPTY
            .with(Namespace::Mount)
            .with(Namespace::Pid);
        assert_eq!(
            rec.log,
            [
                "pdeathsig".to_string(),
                "setsid".into(),
                "wait maps".into(),
                "become root (setgroups: true)".into(),
                // Credential changes clear the death signal: set again right after.
                "pdeathsig".into(),
                "sethostname box".into(),
                "make rprivate".into(),
                "lo up".into(),
                "pidfd_open(self)".into(),
                "receive premade".into(),
                "own files".into(),
                format!("clone3({ring2})"),
                "report ring2 2".into(),
                "supervise".into(),
            ]
        );
    }

    #[test]
    fn run_rootless_ring1_opens_the_bind_sources_before_it_drops_the_callers_groups() {
        let mut cfg = test_config();
        cfg.rootful = false;
        cfg.idmaps.deny_setgroups = true;
        let rec = ring1(&cfg);
        rec.before("wait maps", "open bind sources");
        rec.before("open bind sources", "become root (setgroups: false)");
    }

    fn oci_mode() -> OciMode {
        OciMode {
            exec_fifo_fd: crate::config::InheritedFd::of(&7),
            preserve_fds: 2,
            seccomp_agent_fd: None,
            userns_fd: Some(crate::config::InheritedFd::of(&10)),
            pidns_fd: Some(crate::config::InheritedFd::of(&11)),
            foreign_joins: 0,
        }
    }

    #[test]
    fn oci_create_ring1_joins_the_user_namespace_first_then_makes_the_others_then_joins_pid() {
        let mut cfg = test_config();
        cfg.oci = Some(oci_mode());
        let rec = ring1(&cfg);
        let (ns1, ns2) = cfg.namespaces();
        let rest = ns1.without(Namespace::User);
        assert!(rest.contains(Namespace::Mount) && rest.contains(Namespace::Net));
        let unshare = format!("unshare({rest})");
        rec.before("setsid", "setns(user)");
        rec.before("setns(user)", &unshare);
        rec.before(&unshare, "setns(pid)");
        // The joined namespace's maps are its own; ring1 still waits for ring0's message, and
        // nothing is mounted or forked before the mount namespace is made.
        rec.before("setns(pid)", "wait maps");
        rec.before(&unshare, "make rprivate");
        rec.before(&unshare, "own files");
        rec.before("wait maps", "become root");
        // ring2 is a sibling (a child of the creating process), and ring1 leaves it alone.
        assert_eq!(
            rec.log[rec.log.len() - 2..],
            [
                format!("clone3({ns2}|CLONE_PARENT)"),
                "report ring2 2".into()
            ]
        );
        assert!(!rec.has("supervise"));
    }

    #[test]
    fn oci_create_ring1_without_joins_makes_no_namespace_itself() {
        let mut cfg = test_config();
        cfg.oci = Some(OciMode {
            userns_fd: None,
            pidns_fd: None,
            ..oci_mode()
        });
        let rec = ring1(&cfg);
        assert!(!rec.has("setns(") && !rec.has("unshare("), "{:#?}", rec.log);
    }

    #[test]
    fn workspace_ring1_makes_lifts_tmpfs_before_ring2_and_runs_the_enclave_before_supervising() {
        let mut cfg = test_config();
        cfg.workspace.lift = LiftPolicy::On;
        cfg.workspace.enclave = Some(vec!["setup".into(), "--net".into()]);
        let rec = ring1(&cfg);
        rec.before("own files", "lift tmpfs");
        rec.before("lift tmpfs", "clone3(");
        rec.before("report ring2", "enclave setup --net");
        rec.before("enclave setup --net", "supervise");
        // Without lift and enclave: neither step.
        let rec = ring1(&test_config());
        assert!(!rec.has("lift") && !rec.has("enclave"));
    }
}
