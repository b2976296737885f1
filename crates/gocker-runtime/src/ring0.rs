//! ring0: the host-side monitor and the OCI lifecycle (create, start, wait, delete).

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use gocker_ns::{Forked, Namespace, NamespaceSet};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, WaitOptions};

use crate::channel::{self, Channel};
use crate::config::SpawnMode;
use crate::proto::{Down, Up};
use crate::signals::SignalFd;
use crate::state::{process_start_time, ContainerState, StateStore, Status};
use crate::{ring1, ContainerConfig, ExitStatus, Result, RootMode, RuntimeError};

/// Signals ring0 forwards to the payload (everything but those the kernel or the job control of
/// the caller's terminal must keep: SIGKILL, SIGSTOP, SIGCHLD, SIGPIPE, the synchronous faults).
const FORWARDED: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGTERM,
    libc::SIGCONT,
    libc::SIGURG,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGWINCH,
    libc::SIGIO,
    libc::SIGPWR,
    libc::SIGSYS,
];

/// The exec-mode child before execve: dies with ring0, waits until the id maps are written, then
/// becomes root of the user namespace so that the exec keeps its capabilities. Raw syscalls only.
fn exec_child_wait(parent: i32, sync: std::os::fd::BorrowedFd<'_>, setgroups: bool) {
    use std::os::fd::AsRawFd;
    // SAFETY: prctl, getppid, read and _exit are async-signal-safe; `b` is a valid 1-byte buffer.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != parent {
            libc::_exit(125);
        }
        let mut b = 0u8;
        if libc::read(sync.as_raw_fd(), &mut b as *mut u8 as *mut libc::c_void, 1) != 1 {
            libc::_exit(125);
        }
    }
    if !crate::spawn::become_ns_root_raw(setgroups) {
        // SAFETY: async-signal-safe exit.
        unsafe { libc::_exit(125) };
    }
}

/// A container driven by this process (ring0).
pub struct Container {
    config: ContainerConfig,
    store: StateStore,
    state: ContainerState,
    ring1: Option<(Pid, OwnedFd)>,
    ring2: Option<(i32, OwnedFd)>,
    to_ring1: Option<Channel>,
    to_ring2: Option<Channel>,
    signals: Option<SignalFd>,
    cgroup: Option<gocker_cgroups::Cgroup>,
    /// The master of the payload's terminal (`tty`), until taken or relayed by [`Container::wait`].
    pty: Option<OwnedFd>,
    net: Option<gocker_net::Network>,
    /// Notes for `--debug` (fallbacks taken).
    pub notes: Vec<String>,
    /// Handed over by [`Container::release`]: drop leaves everything in place.
    released: bool,
    /// The record of this container's previous run when it is being started again: put back if
    /// this start fails, so a failed `gocker start` does not lose the container and its logs.
    previous: Option<ContainerState>,
    /// Namespaces of other containers that ring1 joins (`gocker run --pid container:NAME`, ...):
    /// held open while the container exists.
    _joins: crate::joins::Joins,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn check_rootfs(cfg: &ContainerConfig) -> Result<()> {
    if cfg.root_mode == RootMode::HostView {
        return Ok(());
    }
    let p = cfg.rootfs()?;
    let reason = match std::fs::metadata(&p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no such directory".to_owned(),
        Err(e) => e.to_string(),
        Ok(m) if !m.is_dir() => "not a directory".to_owned(),
        Ok(_) => return Ok(()),
    };
    Err(RuntimeError::Rootfs { path: p, reason })
}

impl Container {
    /// OCI `create`: sets up every namespace and mount, and leaves the payload waiting at the start
    /// barrier. `name` must be unique in `store`.
    ///
    /// The calling process must be single-threaded: ring1 is forked from it without an exec.
    pub fn create(
        mut config: ContainerConfig,
        store: StateStore,
        name: &str,
        auto_remove: bool,
    ) -> Result<Container> {
        check_rootfs(&config)?;
        if let Some(sysctl) = config
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.sysctl().as_ref())
        {
            let joined = config.oci.as_ref().map(|o| o.foreign_joins).unwrap_or(0);
            let planned = crate::sysctl::plan(
                sysctl,
                config.namespaces().0,
                crate::sysctl::namespaces_from_bits(joined),
            )?;
            // Namespaces joined by path (OCI mode: crate::oci has joined them in this process,
            // with the caller's privileges): their sysctls are written here, since the container's
            // user namespace does not own them. ring1 writes those of the namespaces it makes.
            crate::sysctl::apply_joined(&planned, |g| config.idmaps.host_gid(g))?;
        }
        if config.spec.domainname().is_some() && !config.namespaces().0.contains(Namespace::Uts) {
            return Err(RuntimeError::Config(
                "domainname: the spec has no UTS namespace of its own to set it in".into(),
            ));
        }
        // `gocker run`'s namespaces by path (OCI mode: crate::oci has joined or opened them):
        // opened here and kept until the container is gone; ring1 joins them (crate::joins).
        let joins = match config.oci {
            None => crate::joins::open_for_run(&mut config)?,
            Some(_) => crate::joins::Joins::default(),
        };
        if config.oci.is_none() {
            // OCI containers outlive their creating process: their store has no monitors.
            store.collect_stale();
        }
        let me = rustix::process::getpid().as_raw_nonzero().get();
        let state = ContainerState {
            id: config.id.clone(),
            name: name.to_owned(),
            status: Status::Creating,
            pid: None,
            monitor_pid: me,
            monitor_start: process_start_time(me).unwrap_or(0),
            rootfs: config.rootfs()?,
            command: config
                .spec
                .process()
                .as_ref()
                .and_then(|p| p.args().clone())
                .unwrap_or_default(),
            created: now(),
            exit: None,
            auto_remove,
            cgroup: None,
            oom_killed: false,
            ip: None,
        };
        let previous = store
            .load(&state.id)
            .ok()
            .filter(|s| s.status == Status::Stopped);
        store.reserve(&state.id, name)?;
        let mut c = Container {
            config,
            store,
            state,
            ring1: None,
            ring2: None,
            to_ring1: None,
            to_ring2: None,
            signals: None,
            cgroup: None,
            pty: None,
            net: None,
            notes: Vec::new(),
            released: false,
            previous,
            _joins: joins,
        };
        // From here on, Drop cleans up whatever exists if a step fails.
        c.store.save(&c.state)?;
        if c.previous.is_none() && c.config.oci.is_none() {
            c.event("create", &[]);
        }
        c.prepare_cow_root()?;
        c.net = crate::net::prepare(&mut c.config, &c.store)?;
        crate::workspace::prepare(&mut c.config, &c.store.container_dir(&c.state.id))?;
        c.create_cgroup()?;
        crate::workspace::cgroup_view(&mut c.config, c.cgroup.as_ref().map(|g| g.path()))?;
        c.compile_seccomp()?;
        c.spawn()?;
        crate::net::attach(
            &mut c.net,
            &mut c.state,
            c.ring1.as_ref().map(|r| r.0.as_raw_nonzero().get()),
            c.config.stage_timeout,
        )?;
        // Workspace mode: the enclave, once ring2 is prepared and the network attached.
        if let Some(ch) = &c.to_ring1 {
            crate::workspace::run_enclave(&c.config, ch)?;
        }
        // Recorded by whatever comes next: `start` records `running` at once (a run saves no
        // `created` record that the next instant replaces), `release` records `created`.
        c.state.status = Status::Created;
        Ok(c)
    }

    /// A cgroup with the spec's resource limits, when it has any. A limit that cannot be applied is
    /// an error naming what is missing, never a silent no-op.
    /// Without limits, a cgroup is still created where cgroup v2 is usable (for stats, OOM reports
    /// and kill), and skipped quietly where it is not (nothing was asked of it).
    fn create_cgroup(&mut self) -> Result<()> {
        let linux = self.config.spec.linux().as_ref();
        let writes = match linux.and_then(|l| l.resources().as_ref()) {
            Some(res) => gocker_cgroups::limits::plan(res)?,
            None => Vec::new(),
        };
        // OCI `linux.cgroupsPath` places the cgroup; without it, `<gocker parent>/<id>`.
        let explicit = linux
            .and_then(|l| l.cgroups_path().as_ref())
            .map(|p| p.to_string_lossy().into_owned());
        let id = self.state.id.clone();
        let place = || -> Result<gocker_cgroups::Placement> {
            Ok(gocker_cgroups::Hierarchy::find()?.placement(explicit.as_deref(), &id)?)
        };
        let cg = if writes.is_empty() {
            // Nothing asked of the cgroup: use the usual controllers where they are available;
            // only an explicit path on a host where it cannot be made is an error (for root).
            let attempt = || -> Result<gocker_cgroups::Cgroup> {
                let p = place()?;
                let mut ctrls: Vec<&str> = vec!["memory", "pids", "cpu"];
                if explicit.is_some() {
                    let have = gocker_cgroups::Hierarchy::controllers(&p.base)?;
                    ctrls.retain(|c| have.iter().any(|h| h == c));
                }
                Ok(gocker_cgroups::Cgroup::create_under(
                    &p.base, &p.rel, &ctrls,
                )?)
            };
            match attempt() {
                Ok(cg) => cg,
                Err(e)
                    if explicit.is_some()
                        && (rustix::process::geteuid().is_root()
                            || matches!(
                                e,
                                RuntimeError::Cgroup(gocker_cgroups::CgroupError::Invalid(_))
                            )) =>
                {
                    return Err(e)
                }
                Err(e) => {
                    if explicit.is_some() {
                        tracing::warn!(
                            "linux.cgroupsPath not applied (no resources requested, rootless): {e}"
                        );
                    }
                    self.notes
                        .push(format!("no cgroup for this container: {e}"));
                    return Ok(());
                }
            }
        } else {
            let p = place()?;
            gocker_cgroups::Cgroup::create_under(
                &p.base,
                &p.rel,
                &gocker_cgroups::limits::required_controllers(&writes),
            )?
        };
        self.state.cgroup = Some(cg.path().to_owned());
        let applied = cg.apply(&writes);
        self.cgroup = Some(cg);
        applied?;
        self.store.save(&self.state)?;
        Ok(())
    }

    /// Compiles the spec's `linux.seccomp` (or takes it from the cache) before any ring exists.
    fn compile_seccomp(&mut self) -> Result<()> {
        if self.config.seccomp.is_some() {
            return Ok(());
        }
        if self.config.oci.is_some() {
            crate::oci_init::check_seccomp(&self.config.spec)?;
        }
        if let Some(c) = crate::seccomp::compile_spec(&self.config.spec, &mut self.notes)? {
            self.config.seccomp = Some(c);
        }
        Ok(())
    }

    /// Whether the OOM killer killed a process of the container (known once it has a cgroup).
    pub fn oom_killed(&self) -> bool {
        self.state.oom_killed || self.oom_kills() > 0
    }

    /// The `oom_kill` count of the container's `memory.events` (0 without a cgroup).
    pub fn oom_kills(&self) -> u64 {
        self.cgroup.as_ref().map(|c| c.oom_kills()).unwrap_or(0)
    }

    fn spawn(&mut self) -> Result<()> {
        let cfg = &self.config;
        let (ns1, _) = cfg.namespaces();
        let (r0_1, r1_0) = channel::pair()?;
        let (r0_2, r2_0) = channel::pair()?;
        if cfg.forward_signals {
            self.signals = Some(SignalFd::install(FORWARDED, true)?);
        }
        let me = rustix::process::getpid().as_raw_nonzero().get();
        // Exec mode: everything the child needs is prepared before the fork.
        let exec = match &cfg.spawn {
            SpawnMode::Fork => None,
            SpawnMode::Exec { ring1, .. } => {
                let config = crate::spawn::config_memfd(cfg)?;
                let (sync_r, sync_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                    .map_err(|e| RuntimeError::sys("pipe", "ring1 sync", e))?;
                let prepared = crate::spawn::prepare(
                    ring1,
                    "ring1",
                    &[
                        crate::spawn::raw(&config),
                        crate::spawn::raw(&r1_0.as_fd()),
                        crate::spawn::raw(&r2_0.as_fd()),
                    ],
                )?;
                Some((config, sync_r, sync_w, prepared))
            }
        };
        // A joined user namespace (OCI mode): ring1 enters it itself, then makes the others.
        let joined_user = cfg.joined_fds().user;
        let fork_set = match joined_user {
            Some(_) if exec.is_some() => {
                return Err(RuntimeError::Config(
                    "joining a user namespace by path needs the fork spawn mode".into(),
                ))
            }
            Some(_) => NamespaceSet::EMPTY,
            None => ns1,
        };
        // SAFETY: in fork mode the caller guarantees this process is single-threaded (documented on
        // `create`); in exec mode the child only makes async-signal-safe calls before execve.
        match unsafe { gocker_ns::fork_into(fork_set, None) }? {
            Forked::Child => match &exec {
                Some((_, sync_r, _, prepared)) => {
                    exec_child_wait(me, sync_r.as_fd(), !cfg.idmaps.deny_setgroups);
                    prepared.exec_in_child()
                }
                None => {
                    drop(r0_1);
                    drop(r0_2);
                    ring1::main(cfg, r1_0, r2_0, me)
                }
            },
            Forked::Parent { pid, pidfd } => {
                self.ring1 = Some((pid, pidfd));
            }
        }
        drop(r1_0);
        drop(r2_0);
        let ring1_pid = self
            .ring1
            .as_ref()
            .map(|r| r.0.as_raw_nonzero().get())
            .expect("set above");

        if joined_user.is_none() {
            cfg.idmaps.apply(ring1_pid)?;
        }
        if let Some((config, sync_r, sync_w, _)) = exec {
            drop(sync_r);
            rustix::io::write(&sync_w, &[1])
                .map_err(|e| RuntimeError::sys("write", "ring1 sync", e))?;
            drop(config);
        }
        // ring1 becomes root and sets up its namespaces while the root is made below.
        r0_1.send(&Down::Maps, &[])?;
        // The idmapped clones under a copy-on-write root are held until ring1 has the overlay:
        // dropping a detached mount waits for an RCU grace period, best spent while the rings work.
        let mut layer_clones = Vec::new();
        let cow = self
            .config
            .cow
            .as_ref()
            .filter(|_| self.config.root_mode == RootMode::Rootfs);
        let mnt = match cow.map(|c| c.by_ring0) {
            Some(true) => {
                self.make_cow_dirs()?;
                self.cow_root(ring1_pid, &mut layer_clones)?
            }
            Some(false) => {
                self.make_cow_dirs()?;
                self.idmapped_rootfs(ring1_pid)
            }
            None => self.idmapped_rootfs(ring1_pid),
        };
        if mnt.is_none() {
            self.make_mount_targets();
        }
        let files = crate::own_files::open_templates(&self.config)?;
        let mut volumes = self.premade_binds(ring1_pid);
        volumes.extend(self.premade_devices()?);
        let joined = self.joined_ipc_mqueue();
        volumes.extend(joined);
        // One message carries at most MAX_FDS descriptors: the first volumes go ahead in as many
        // `Volumes` messages as they need, the rest with the rootfs and the own files.
        let room = crate::channel::MAX_FDS - usize::from(mnt.is_some()) - files.len();
        let ahead = volumes.len().saturating_sub(room);
        for batch in volumes[..ahead].chunks(crate::channel::MAX_FDS) {
            let fds: Vec<_> = batch.iter().map(|v| v.1.as_fd()).collect();
            let dests = batch.iter().map(|v| v.0.clone()).collect();
            r0_1.send(&Down::Volumes(dests), &fds)?;
        }
        let fds: Vec<_> = mnt
            .iter()
            .chain(volumes[ahead..].iter().map(|v| &v.1))
            .chain(files.iter().map(|f| &f.1))
            .map(|m| m.as_fd())
            .collect();
        let dests = volumes[ahead..].iter().map(|v| v.0.clone()).collect();
        r0_1.send(
            &Down::Mapped {
                rootfs: mnt.is_some(),
                volumes: dests,
                files: files.iter().map(|f| f.0.clone()).collect(),
            },
            &fds,
        )?;
        drop(fds);
        drop(mnt);
        drop(volumes);
        drop(files);
        drop(layer_clones);

        let t = self.config.stage_timeout;
        let ring2_pid = match r0_1.recv::<Up>(Some(t), "ring1 to start ring2")? {
            Some((Up::Ring2Pid(p), _)) => p,
            Some((other, _)) => return Err(other.into_error("ring1 to start ring2")),
            None => {
                return Err(RuntimeError::Protocol(
                    "ring1 exited while starting ring2".into(),
                ))
            }
        };
        let ring2 = Pid::from_raw(ring2_pid).ok_or_else(|| {
            RuntimeError::Protocol(format!("ring1 reported ring2 as pid {ring2_pid}"))
        })?;
        let pidfd = match rustix::process::pidfd_open(ring2, PidfdFlags::empty()) {
            Ok(fd) => fd,
            // ring2 failed fast and was reaped already: its report says why.
            Err(Errno::SRCH) => {
                return Err(
                    match r0_2.recv::<Up>(Some(t), "ring2 to prepare the container")? {
                        Some((msg, _)) => msg.into_error("ring2 to prepare the container"),
                        None => RuntimeError::Protocol(
                            "ring2 exited while preparing the container".into(),
                        ),
                    },
                )
            }
            Err(e) => {
                return Err(RuntimeError::sys(
                    "pidfd_open",
                    format!("ring2 pid {ring2_pid}"),
                    e,
                ))
            }
        };
        self.ring2 = Some((ring2_pid, pidfd));
        self.state.pid = Some(ring2_pid);
        if let Some(adj) = self
            .config
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.oom_score_adj())
        {
            crate::sysctl::set_oom_score_adj(ring2_pid, adj)?;
        }
        // Only the payload side goes into the container's cgroup: ring2 is moved while it is still
        // preparing mounts (before it can fork or exec anything). ring1 stays outside, so it neither
        // counts against --pids-limit nor is a candidate for the container's OOM killer.
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.attach(ring2_pid) {
                // ring2 may have failed (and exited) already: then its report is the error to show.
                if let Ok(Some((msg, _))) = r0_2.recv::<Up>(
                    Some(std::time::Duration::from_millis(100)),
                    "ring2's report",
                ) {
                    if !matches!(msg, Up::Ready) {
                        return Err(msg.into_error("ring2 to prepare the container"));
                    }
                }
                return Err(e.into());
            }
        }
        match r0_2.recv::<Up>(Some(t), "ring2 to prepare the container")? {
            Some((Up::Ready, mut fds)) => {
                if self.config.tty {
                    self.pty =
                        Some(fds.pop().ok_or_else(|| {
                            RuntimeError::Protocol("ring2 sent no terminal".into())
                        })?);
                }
            }
            Some((other, _)) => return Err(other.into_error("ring2 to prepare the container")),
            None => {
                return Err(RuntimeError::Protocol(
                    "ring2 exited while preparing the container".into(),
                ))
            }
        }
        self.to_ring1 = Some(r0_1);
        self.to_ring2 = Some(r0_2);
        Ok(())
    }

    /// A copy-on-write root (docs/storage-roots.md): where its `upper` and `work` are, recorded
    /// in the configuration before the rings exist: the container's directory in the state
    /// store, or (`--rm`, `ephemeral`) a tmpfs of its own that goes with its mount namespace.
    fn prepare_cow_root(&mut self) -> Result<()> {
        if self.config.root_mode != RootMode::Rootfs {
            return Ok(());
        }
        let Some(cow) = self.config.cow.as_mut() else {
            return Ok(());
        };
        cow.dir = Some(self.store.root_dir(&self.state.id));
        cow.ephemeral = self.state.auto_remove;
        // Rootful --rm over --rootfs: ring2 mounts the overlay over the idmapped rootfs, with
        // its upper on a tmpfs of its own; nothing needs host root's reach.
        cow.by_ring0 =
            rustix::process::geteuid().is_root() && !(cow.ephemeral && cow.lowers.is_empty());
        Ok(())
    }

    /// The directories of [`Container::prepare_cow_root`], made unless present (a stopped
    /// container started again keeps its upper, and with it its changes), while ring1 starts
    /// (metadata writes to the store's filesystem, which may be a busy disk) and before the
    /// overlay is mounted. The upper directory is the root of the container's `/`: it belongs to
    /// the container's root as mapped on the host (rootful: the first id of the remapped range;
    /// rootless: the caller) and has the mode of the top lower layer's root. `work` is the
    /// mounter's, 0700. Rootless, the id maps are recorded beside them, for removing the
    /// container as its own root later.
    fn make_cow_dirs(&mut self) -> Result<()> {
        let Some(cow) = self.config.cow.as_ref().filter(|c| !c.ephemeral) else {
            return Ok(());
        };
        let Some(dir) = cow.dir.clone() else {
            return Ok(());
        };
        let mode = cow.upper_mode(&self.config.rootfs()?)?;
        let owner = self.upper_owner()?;
        let err = |path: &std::path::Path, e: rustix::io::Errno| RuntimeError::State {
            path: path.to_owned(),
            reason: std::io::Error::from(e).to_string(),
        };
        // As few metadata writes as it takes (the state store may be on a busy disk): a mode is
        // set again only where the umask took bits off.
        let make = |p: &std::path::Path, mode: u32, owner: Option<(u32, u32)>| -> Result<()> {
            use rustix::fs::{Gid, Mode, Uid};
            match rustix::fs::mkdir(p, Mode::from_raw_mode(mode)) {
                Ok(()) => {}
                Err(rustix::io::Errno::EXIST) => return Ok(()),
                Err(e) => return Err(err(p, e)),
            }
            if let Some((u, g)) = owner {
                rustix::fs::chown(p, Some(Uid::from_raw(u)), Some(Gid::from_raw(g)))
                    .map_err(|e| err(p, e))?;
            }
            let st = rustix::fs::stat(p).map_err(|e| err(p, e))?;
            if st.st_mode & 0o7777 != mode {
                rustix::fs::chmod(p, Mode::from_raw_mode(mode)).map_err(|e| err(p, e))?;
            }
            Ok(())
        };
        make(&dir.join("work"), 0o700, None)?;
        let root = rustix::process::geteuid().is_root();
        make(&dir.join("upper"), mode, root.then_some(owner))?;
        if !root {
            self.store
                .save_root_maps(&self.state.id, &self.config.idmaps)?;
        }
        Ok(())
    }

    /// The owner of the upper directory: the container's root as mapped on the host.
    fn upper_owner(&self) -> Result<(u32, u32)> {
        let maps = &self.config.idmaps;
        match (maps.host_uid(0), maps.host_gid(0)) {
            (Some(u), Some(g)) => Ok((u, g)),
            _ => Err(RuntimeError::Config(
                "the container's root (uid 0) is not mapped: no owner for its upper directory"
                    .into(),
            )),
        }
    }

    /// Rootful, copy-on-write root: the overlay, made here as host root (the upper directory is
    /// in the root-only state store, which the container's root cannot reach), over an idmapped
    /// clone of each lower layer (host root's files are the container root's inside, and copied
    /// up they are stored with the container's mapped ids). Passed to ring2 detached, which
    /// attaches it at `root.path` in its own mount namespace: nothing is mounted on the host.
    /// Where a layer cannot be idmapped, or the kernel refuses idmapped layers (before Linux
    /// 6.15, which takes detached mounts as layers), the layers are used as they are (noted).
    /// Only when [`crate::CowRoot::by_ring0`]: otherwise ring2 mounts the overlay in the
    /// container's user namespace.
    fn cow_root(&mut self, ring1_pid: i32, clones: &mut Vec<OwnedFd>) -> Result<Option<OwnedFd>> {
        use std::os::fd::AsRawFd;
        let cfg = &self.config;
        let rootfs = cfg.rootfs()?;
        let cow = cfg
            .cow
            .as_ref()
            .expect("cow_root is for a copy-on-write root");
        // --rm: the upper layer on a tmpfs of its own, held by the overlay (and, until ring1 has
        // the overlay, by `clones`): nothing of it reaches the store's disk.
        let (upper, work) = if cow.ephemeral {
            let owner = self.upper_owner()?;
            let tmp = gocker_mounts::root::ephemeral_upper(
                cow.upper_mode(&rootfs)?,
                Some(owner),
                &rootfs,
            )?;
            let paths = gocker_mounts::root::ephemeral_paths(tmp.as_fd());
            clones.push(tmp);
            paths
        } else {
            cow.upper_work().ok_or_else(|| {
                RuntimeError::Protocol("copy-on-write root without a directory".into())
            })?
        };
        let layers = cow.layers(&rootfs);
        let userns = if cfg.idmap_rootfs {
            ring1_userns(cfg, ring1_pid).ok()
        } else {
            None
        };
        let mut idmapped = Vec::new();
        for l in &layers {
            let Some(u) = &userns else {
                idmapped.push(l.clone());
                continue;
            };
            let attempt = || -> Result<OwnedFd> {
                let m = gocker_mounts::root::clone(l, false)?;
                gocker_mounts::root::make_private(m.as_fd(), l, false)?;
                gocker_mounts::root::idmap(m.as_fd(), l, u.as_fd(), false)?;
                Ok(m)
            };
            match attempt() {
                Ok(m) => {
                    idmapped.push(PathBuf::from(format!("/proc/self/fd/{}", m.as_raw_fd())));
                    clones.push(m);
                }
                Err(e) => {
                    self.notes.push(format!(
                        "layer {} not idmapped ({e}): files owned by host root appear as nobody",
                        l.display()
                    ));
                    idmapped.push(l.clone());
                }
            }
        }
        let stage = |e: gocker_mounts::MountError| RuntimeError::Ring {
            stage: "copy-on-write root".into(),
            message: format!(
                "overlayfs over {} with upper {}: {e}",
                layers
                    .iter()
                    .map(|l| l.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                upper.display()
            ),
        };
        let flags = gocker_mounts::root::OverlayFlags { userxattr: false };
        let mounted =
            gocker_mounts::root::overlay(&idmapped, Some((&upper, &work)), flags, &rootfs);
        let ovl = match mounted {
            Ok(m) => {
                self.notes.push(format!(
                    "root: overlayfs over {} ({} idmapped), upper {}",
                    rootfs.display(),
                    clones.len(),
                    upper.display()
                ));
                m
            }
            Err(e) if !clones.is_empty() => {
                self.notes.push(format!(
                    "overlayfs refused idmapped layers ({e}); layers used as they are (files \
                     owned by host root appear as nobody)"
                ));
                gocker_mounts::root::overlay(&layers, Some((&upper, &work)), flags, &rootfs)
                    .map_err(stage)?
            }
            Err(e) => return Err(stage(e)),
        };
        Ok(Some(ovl))
    }

    /// Rootful: an idmapped clone of the rootfs so that host-root-owned files look root-owned inside
    /// and container root can write them. `None` when not applicable or refused (noted for --debug).
    fn idmapped_rootfs(&mut self, ring1_pid: i32) -> Option<OwnedFd> {
        let cfg = &self.config;
        if !cfg.idmap_rootfs
            || cfg.root_mode != RootMode::Rootfs
            || !rustix::process::geteuid().is_root()
        {
            return None;
        }
        let rootfs = cfg.rootfs().ok()?;
        let attempt = || -> Result<OwnedFd> {
            let userns = ring1_userns(cfg, ring1_pid)?;
            let mnt = gocker_mounts::root::clone(&rootfs, true)?;
            gocker_mounts::root::make_private(mnt.as_fd(), &rootfs, true)?;
            gocker_mounts::root::idmap(mnt.as_fd(), &rootfs, userns.as_fd(), true)?;
            Ok(mnt)
        };
        match attempt() {
            Ok(m) => {
                self.notes
                    .push(format!("rootfs {} mounted idmapped", rootfs.display()));
                Some(m)
            }
            Err(e) => {
                self.notes.push(format!("idmapped rootfs refused ({e}); using a plain bind (files owned by host root appear as nobody)"));
                None
            }
        }
    }

    /// Rootful: every bind source of the spec opened here, with host root's access, and idmapped
    /// like the rootfs where the filesystem allows it (`Premade::binds`). Rootless, ring1 makes
    /// them, before it drops the caller's groups.
    fn premade_binds(&mut self, ring1_pid: i32) -> Vec<(PathBuf, OwnedFd)> {
        let cfg = &self.config;
        if !rustix::process::geteuid().is_root() {
            return Vec::new();
        }
        let userns = if cfg.idmap_rootfs {
            ring1_userns(cfg, ring1_pid).ok()
        } else {
            None
        };
        crate::ring2::Premade::binds(
            &cfg.spec,
            &cfg.own_files,
            userns.as_ref().map(|u| u.as_fd()),
            &mut self.notes,
        )
    }

    /// Rootful: the character and block devices of `linux.devices`, made here on a detached tmpfs
    /// each (`KernelMounter::premade_device`: only root of the initial user namespace may create
    /// device nodes, and the container's user namespace cannot), with the spec's `fileMode` and
    /// its `uid`/`gid` (default 0) mapped to host ids through the container's maps, as runc makes
    /// them; ring2 binds each at its path, resolved in the container's root. Nothing is made on a
    /// path here. A node that cannot be made is left to ring2 when the host has one of that type
    /// and number for it to bind (noted), else it is the error. Rootless: nothing (ring2 binds the
    /// host's node, or refuses the device by name). FIFOs are made in place by ring2.
    fn premade_devices(&mut self) -> Result<Vec<(PathBuf, OwnedFd)>> {
        // Only the spec's own `linux.devices`: the default nodes (/dev/null, /dev/zero, ...) are
        // the host's, bound as they are, with no tmpfs made for each at every start.
        let listed: Vec<PathBuf> = self
            .config
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.devices().as_ref())
            .map(|d| d.iter().map(|d| d.path().clone()).collect())
            .unwrap_or_default();
        if listed.is_empty() || !rustix::process::geteuid().is_root() {
            return Ok(Vec::new());
        }
        let Ok(steps) = gocker_mounts::plan(&self.config.spec) else {
            return Ok(Vec::new());
        };
        let maps = &self.config.idmaps;
        let mut out = Vec::new();
        for step in steps {
            let gocker_mounts::Step::Device {
                dest,
                kind,
                major,
                minor,
                mode,
                uid,
                gid,
            } = step
            else {
                continue;
            };
            if kind == gocker_mounts::DeviceKind::Fifo || !listed.contains(&dest) {
                continue;
            }
            let unmapped = |what: &str, id: u32| {
                RuntimeError::Mount(gocker_mounts::MountError::Invalid {
                    dest: dest.clone(),
                    reason: format!(
                        "{} {major}:{minor}: {what} {id} is not mapped in the container's user \
                         namespace",
                        kind.letter()
                    ),
                })
            };
            let (uid, gid) = (uid.unwrap_or(0), gid.unwrap_or(0));
            let host_uid = maps.host_uid(uid).ok_or_else(|| unmapped("uid", uid))?;
            let host_gid = maps.host_gid(gid).ok_or_else(|| unmapped("gid", gid))?;
            let made = gocker_mounts::KernelMounter::premade_device(
                &dest,
                kind,
                major,
                minor,
                mode,
                (host_uid, host_gid),
            );
            match made {
                Ok(m) => out.push((dest, m)),
                Err(e)
                    if gocker_mounts::KernelMounter::host_device_node(
                        &dest, kind, major, minor,
                    )
                    .is_some() =>
                {
                    self.notes.push(format!("{e}"));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// OCI mode, rootful, on a rootfs that could not be idmapped (overlayfs, podman's default
    /// storage driver, has no idmap support of its own; an older kernel): files owned by host root
    /// appear as nobody's inside, and the container's root, an unprivileged host uid, cannot
    /// create the mount targets that the rootfs lacks (`/etc/hostname`, `/run/.containerenv`).
    /// ring0 creates them first, as host root and confined to the rootfs like ring2's lookups
    /// (`openat2(RESOLVE_IN_ROOT)`), as runc and crun do. The rootfs is this process's working
    /// directory (crate::oci); gocker run's rootfs is not written to (it is shared between
    /// containers). A target that cannot be made is left to ring2, which reports it.
    fn make_mount_targets(&mut self) {
        let cfg = &self.config;
        if cfg.oci.is_none()
            || cfg.root_mode != RootMode::Rootfs
            || !rustix::process::geteuid().is_root()
        {
            return;
        }
        let Ok(steps) = gocker_mounts::plan(&cfg.spec) else {
            return;
        };
        let root = match gocker_mounts::root::open_dir(std::path::Path::new(".")) {
            Ok(r) => r,
            Err(e) => {
                self.notes
                    .push(format!("mount targets not made by ring0: {e}"));
                return;
            }
        };
        for e in gocker_mounts::root::make_targets(root.as_fd(), &steps) {
            self.notes
                .push(format!("mount target not made by ring0: {e}"));
        }
    }

    /// An mqueue mount shows the IPC namespace of the process that made it, and making one needs
    /// CAP_SYS_ADMIN over that namespace's owner. A container that joins an IPC namespace by path
    /// (a pod's: the sandbox's, owned by the sandbox's user namespace) cannot mount it from its own
    /// user namespace, so ring0, which joined it with the caller's privileges (`oci::create`), makes
    /// the instance and ring2 attaches it at the spec's destination. If ring0 cannot either, ring2
    /// tries as usual and reports its own error.
    fn joined_ipc_mqueue(&mut self) -> Vec<(PathBuf, OwnedFd)> {
        let spec = &self.config.spec;
        let joined = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
            .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Ipc && n.path().is_some());
        if !joined || self.config.oci.is_none() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for m in spec.mounts().iter().flatten() {
            if m.typ().as_deref() != Some("mqueue") {
                continue;
            }
            let dest = m.destination();
            let source = m
                .source()
                .as_deref()
                .and_then(|p| p.to_str())
                .unwrap_or("mqueue");
            match gocker_mounts::root::instance("mqueue", source, dest) {
                Ok(fd) => out.push((dest.clone(), fd)),
                Err(e) => self.notes.push(format!(
                    "{}: mqueue of the joined IPC namespace not made by the runtime ({e})",
                    dest.display()
                )),
            }
        }
        out
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }
    pub fn state(&self) -> &ContainerState {
        &self.state
    }
    /// Host pid of the payload.
    pub fn pid(&self) -> Option<i32> {
        self.ring2.as_ref().map(|r| r.0)
    }
    /// Host pid of ring1.
    pub fn ring1_pid(&self) -> Option<i32> {
        self.ring1.as_ref().map(|r| r.0.as_raw_nonzero().get())
    }

    /// The master of the payload's terminal (when created with `tty`). Taken, [`Container::wait`]
    /// no longer relays it: the caller owns the terminal's I/O (a log, a console socket).
    pub fn take_pty(&mut self) -> Option<OwnedFd> {
        self.pty.take()
    }

    /// OCI mode: the state JSON for the `startContainer` hooks, which ring2 runs after the start
    /// barrier, and for the seccomp agent (ring2 waits for it only when `oci::needs_state`).
    pub(crate) fn send_oci_state(&self, state: &[u8]) -> Result<()> {
        let ch = self
            .to_ring2
            .as_ref()
            .ok_or_else(|| RuntimeError::Protocol("container not created".into()))?;
        ch.send(
            &Down::OciState(String::from_utf8_lossy(state).into_owned()),
            &[],
        )
    }

    /// OCI `start`: releases the payload from the start barrier and waits until it has exec'd.
    pub fn start(&mut self) -> Result<()> {
        let ch = self
            .to_ring2
            .take()
            .ok_or_else(|| RuntimeError::Protocol("container already started".into()))?;
        ch.send(&Down::Start, &[])?;
        // Recorded while ring2 loads its filter and execs, not before Start: nothing reads the
        // saved spec (`exec`, `start` again, `inspect`) before the record says running. A failed
        // exec is an error below, after which Drop removes or restores the record.
        self.store
            .save_config(&self.config, !self.state.auto_remove)?;
        self.state.status = Status::Running;
        self.store.save(&self.state)?;
        self.event("start", &[]);
        // EOF means the exec succeeded (the channel is close-on-exec); a message means it failed.
        match ch.recv::<Up>(Some(self.config.stage_timeout), "the payload to exec")? {
            None => {}
            Some((msg, _)) => return Err(msg.into_error("the payload to exec")),
        }
        Ok(())
    }

    /// Sends `sig` to the payload.
    pub fn kill(&self, sig: i32) -> Result<()> {
        let (pid, fd) = self
            .ring2
            .as_ref()
            .ok_or_else(|| RuntimeError::Protocol("container has no process".into()))?;
        // SAFETY: signal numbers are checked by the kernel; Signal is a plain integer wrapper.
        let s = unsafe { Signal::from_raw_unchecked(sig) };
        match rustix::process::pidfd_send_signal(fd, s) {
            Ok(()) | Err(Errno::SRCH) => Ok(()),
            Err(e) => Err(RuntimeError::sys(
                "pidfd_send_signal",
                format!("pid {pid}"),
                e,
            )),
        }
    }

    /// Waits for the payload to exit, forwarding signals when configured, and records the status.
    /// With a terminal that was not taken, relays it to the caller's stdin/stdout meanwhile.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        let ch = self
            .to_ring1
            .take()
            .ok_or_else(|| RuntimeError::Protocol("container not created".into()))?;
        let mut relay = self
            .pty
            .take()
            .map(|m| crate::tty::Relay::new(m, self.config.stdin));
        // After a forwarded SIGTERM: when the grace period (stop_timeout) ends, SIGKILL.
        let mut kill_at: Option<std::time::Instant> = None;
        let status = loop {
            let sig_fd = self.signals.as_ref().map(|s| s.as_fd());
            let ring1_fd = self.ring1.as_ref().map(|r| r.1.as_fd()).expect("created");
            let mut fds = vec![
                PollFd::from_borrowed_fd(ch.as_fd(), PollFlags::IN),
                PollFd::from_borrowed_fd(ring1_fd, PollFlags::IN),
            ];
            fds.push(match sig_fd {
                Some(s) => PollFd::from_borrowed_fd(s, PollFlags::IN),
                None => PollFd::from_borrowed_fd(ch.as_fd(), PollFlags::empty()),
            });
            if let Some(r) = &relay {
                fds.extend(r.poll_fds());
            }
            let left = kill_at.map(|t| t.saturating_duration_since(std::time::Instant::now()));
            let ts = left.map(|l| rustix::event::Timespec {
                tv_sec: l.as_secs() as i64,
                tv_nsec: l.subsec_nanos() as i64,
            });
            match rustix::event::poll(&mut fds, ts.as_ref()) {
                Err(Errno::INTR) => continue,
                Err(e) => return Err(RuntimeError::sys("poll", "container", e)),
                Ok(_) => {}
            }
            if kill_at.is_some_and(|t| std::time::Instant::now() >= t) {
                tracing::debug!("grace period after SIGTERM over: SIGKILL");
                kill_at = None;
                drop(fds);
                self.kill(libc::SIGKILL)?;
                continue;
            }
            let (msg_ready, ring1_gone) =
                (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
            let sig_ready = !fds[2].revents().is_empty();
            let io_ready = fds[3..].iter().any(|f| !f.revents().is_empty());
            drop(fds);
            if io_ready {
                if let Some(r) = relay.as_mut() {
                    r.service();
                }
            }
            if sig_ready {
                for sig in self.signals.as_ref().map(|s| s.drain()).unwrap_or_default() {
                    if sig == libc::SIGWINCH {
                        if let Some(r) = &relay {
                            // The terminal's size change makes the kernel signal its foreground group.
                            crate::tty::sync_winsize(r.master());
                            continue;
                        }
                    }
                    tracing::debug!(sig, "forwarding signal to the container");
                    self.kill(sig)?;
                    if sig == libc::SIGTERM && kill_at.is_none() {
                        kill_at = self
                            .config
                            .stop_timeout
                            .map(|t| std::time::Instant::now() + t);
                    }
                }
            }
            if msg_ready || ring1_gone {
                if let Some(r) = relay.as_mut() {
                    r.drain_output();
                }
                match ch.recv_now::<Up>("the container to exit")? {
                    Some((Up::Exited(st), _)) => break st,
                    Some((other, _)) => return Err(other.into_error("the container to exit")),
                    // ring1 gone without a word: killed from outside (its children die with it).
                    None if self.oom_kills() > 0 => break ExitStatus::Signaled(libc::SIGKILL),
                    None => {
                        return Err(RuntimeError::Protocol(
                            "ring1 died without reporting an exit status".into(),
                        ))
                    }
                }
            }
        };
        self.reap_ring1();
        self.state.oom_killed = self.oom_killed();
        self.state.status = Status::Stopped;
        self.state.exit = Some(status);
        if !self.state.auto_remove {
            self.store.save(&self.state)?;
        }
        // docker's `die`, by the monitor that reaped the container.
        let code = status.code().to_string();
        self.event("die", &[("exitCode", &code)]);
        Ok(status)
    }

    /// Records a container event ([`crate::events`]) with docker's attributes (name, image).
    fn event(&self, action: &str, extra: &[(&str, &str)]) {
        let image = crate::events::container_image(
            self.config.spec.annotations().as_ref(),
            &self.state.rootfs,
        );
        self.store
            .record_container_event(&self.state, Some(&image), action, extra);
    }

    fn reap_ring1(&mut self) {
        if let Some((pid, _fd)) = self.ring1.take() {
            while let Err(Errno::INTR) = rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            }
        }
    }

    /// OCI mode (`gocker-oci create`): hands the created container over to the state directory and
    /// the caller's subreaper. Reaps ring1 (which exits once ring2 is set up) and leaves ring2
    /// waiting at its FIFO barrier, its cgroup and state in place.
    pub fn release(mut self) -> Result<ContainerState> {
        if self.config.oci.is_none() {
            return Err(RuntimeError::Protocol(
                "release is for containers created in OCI mode".into(),
            ));
        }
        self.reap_ring1();
        self.store
            .save_config(&self.config, !self.state.auto_remove)?;
        self.store.save(&self.state)?;
        self.released = true;
        Ok(self.state.clone())
    }

    /// OCI `delete`: kills whatever still runs and removes the container's state.
    pub fn delete(mut self) -> Result<()> {
        self.teardown();
        self.store.remove(&self.state.id, &self.state.name)
    }

    fn teardown(&mut self) {
        if let Some((pid, fd)) = self.ring2.take() {
            let _ = rustix::process::pidfd_send_signal(&fd, Signal::KILL);
            if self.config.oci.is_some() {
                // OCI mode: ring2 is our own child (CLONE_PARENT); reap it.
                if let Some(pid) = Pid::from_raw(pid) {
                    while let Err(Errno::INTR) =
                        rustix::process::waitpid(Some(pid), WaitOptions::empty())
                    {
                    }
                }
            }
        }
        if let Some((_, fd)) = self.ring1.as_ref() {
            let _ = rustix::process::pidfd_send_signal(fd, Signal::KILL);
        }
        self.reap_ring1();
        // After the rings: the veth's host end is gone with their network namespace.
        self.net = None;
        self.signals = None;
        if let Some(cg) = self.cgroup.take() {
            let path = cg.path().to_owned();
            if let Err(e) = cg.remove(std::time::Duration::from_secs(2)) {
                tracing::warn!("could not remove cgroup {}: {e}", path.display());
            }
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.teardown();
        if self.state.status != Status::Stopped {
            if let Some(prev) = self.previous.take() {
                let _ = self.store.save(&prev);
                return;
            }
        }
        if self.state.auto_remove || self.state.status != Status::Stopped {
            let _ = self.store.remove(&self.state.id, &self.state.name);
        }
    }
}

/// The container's user namespace: ring1's, or the one it joins (which ring1 may not have entered
/// yet when ring0 asks).
fn ring1_userns(cfg: &ContainerConfig, ring1_pid: i32) -> Result<OwnedFd> {
    match cfg.joined_fds().user {
        // SAFETY: the OCI create process (or `Container::joins`) keeps the joined namespace open while the rings start.
        Some(fd) => unsafe { fd.borrow() }
            .try_clone_to_owned()
            .map_err(|e| RuntimeError::sys("dup", "the joined user namespace", e)),
        None => Ok(gocker_ns::open(ring1_pid, Namespace::User)?),
    }
}

/// The rootfs directory of a container (for messages).
pub fn describe_root(cfg: &ContainerConfig) -> String {
    match cfg.root_mode {
        RootMode::HostView => "read-only view of the host's /".into(),
        RootMode::Rootfs => cfg
            .rootfs()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    }
}
