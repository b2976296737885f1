//! The OCI runtime lifecycle as runc implements it (used by `gocker-oci`), on top of the rings.
//!
//! Process model: `create` runs ring0 in the calling process. ring1 forks ring2 with
//! `CLONE_PARENT`, so ring2 is a child of the *creating* process, and exits once ring2 exists.
//! ring2 prepares the container, reports ready, clears its parent-death signal and blocks opening
//! `<state>/<id>/exec.fifo` for writing (through `/proc/self/fd/N` of an `O_PATH` descriptor
//! inherited from ring0). `create` then exits: ring2 is reparented to the caller's subreaper
//! (conmon, containerd-shim), which reaps it as its own child. `start` opens the FIFO for reading,
//! which releases ring2, reads its byte and removes the FIFO. The status is derived like runc's:
//! FIFO present and process alive → created; alive → running; otherwise stopped.

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Spec};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal};
use serde::{Deserialize, Serialize};

use crate::state::{process_start_time, StateStore};
use crate::{bundle, Container, ContainerConfig, OciMode, Result, RuntimeError};

use crate::oci_init::{has_hooks, listener_path, needs_state, run_hooks, FIFO};
const RECORD: &str = "oci.json";

/// The OCI state of a container (runtime spec "State"), as `gocker-oci state` prints it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    /// `creating`, `created`, `running` or `stopped`.
    pub status: String,
    /// Host pid of the container's process (0 once stopped, as runc prints it).
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// RFC 3339 creation time (runc's `state` field; not in the spec's State).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
}

/// What `create` records beside the ring state (`oci.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    bundle: PathBuf,
    annotations: HashMap<String, String>,
    pid: i32,
    /// Start time of `pid` in clock ticks since boot: a recycled pid is never mistaken for ours.
    pid_start: u64,
    created: String,
    cgroup: Option<PathBuf>,
    /// Hooks to run later (poststart, poststop), from config.json.
    hooks: Option<oci_spec::runtime::Hooks>,
}

/// Options of `gocker-oci create` (and `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
}

/// Errors of the OCI layer name the container id or path.
fn cfg_err(msg: String) -> RuntimeError {
    RuntimeError::Config(msg)
}

/// A container id must be a single path component (it names the state directory).
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id != "names"
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(cfg_err(format!(
            "invalid container id {id:?}: use letters, digits and - _ . +"
        )))
    }
}

/// Default state root: `/run/gocker-oci` for root, `$XDG_RUNTIME_DIR/gocker-oci` otherwise.
pub fn default_root() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/run/gocker-oci");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("gocker-oci"),
        _ => std::env::temp_dir().join(format!(
            "gocker-oci-{}",
            rustix::process::geteuid().as_raw()
        )),
    }
}

/// The current time in RFC 3339 (UTC, nanoseconds).
pub fn now_rfc3339() -> String {
    crate::logs::now()
}

/// Which Linux security modules this host enforces (the seam for [`check_unsupported`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HostLsm {
    pub apparmor: bool,
    pub selinux: bool,
}

impl HostLsm {
    pub(crate) fn probe() -> HostLsm {
        HostLsm {
            apparmor: std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
                .is_ok_and(|v| v.trim() == "Y"),
            selinux: Path::new("/sys/fs/selinux/enforce").exists(),
        }
    }
}

/// Settings of config.json gocker-oci does not apply: refused when they would matter, else noted
/// (the returned notes). As runc, an AppArmor profile or SELinux label is ignored on a host that
/// does not enforce that module; where it does, gocker-oci refuses rather than run unconfined.
/// `linux.intelRdt` is always refused; `linux.personality` flags are (the domain is applied).
pub(crate) fn check_unsupported(
    spec: &Spec,
    host: &HostLsm,
) -> std::result::Result<Vec<String>, String> {
    let mut notes = Vec::new();
    let process = spec.process().as_ref();
    let linux = spec.linux().as_ref();
    if let Some(profile) = process.and_then(|p| p.apparmor_profile().as_ref()) {
        if host.apparmor {
            return Err(format!("process.apparmorProfile {profile:?}: gocker-oci does not apply AppArmor profiles, and this host enforces AppArmor (ask for none to run without one, e.g. podman --security-opt apparmor=unconfined)"));
        }
        notes.push(format!(
            "process.apparmorProfile {profile:?} ignored: AppArmor is not enabled on this host"
        ));
    }
    let labels = [
        (
            "process.selinuxLabel",
            process.and_then(|p| p.selinux_label().clone()),
        ),
        (
            "linux.mountLabel",
            linux.and_then(|l| l.mount_label().clone()),
        ),
    ];
    for (field, label) in labels {
        if let Some(label) = label {
            if host.selinux {
                return Err(format!("{field} {label:?}: gocker-oci does not apply SELinux labels, and this host has SELinux enabled"));
            }
            notes.push(format!(
                "{field} {label:?} ignored: SELinux is not enabled on this host"
            ));
        }
    }
    let refused = refused_fields(spec);
    if !refused.is_empty() {
        return Err(refused.join("; "));
    }
    Ok(notes)
}

/// Every field of `spec` that gocker-oci cannot honour, each as `JSON path: why`: a setting that
/// is refused is never silently ignored (runtime spec: "runtimes MUST generate an error when
/// invalid or unsupported values are encountered"). The limits in `linux.resources` that gocker
/// applies are cgroup v2's (`gocker_cgroups::limits`); the fields below have no cgroup v2
/// interface, or none that gocker writes. A mount plan that the mount code would refuse (an
/// unsupported option, a relative destination, a `linux.rootfsPropagation` that is not a
/// propagation type) is refused here too, before anything exists.
pub(crate) fn refused_fields(spec: &Spec) -> Vec<String> {
    let mut out = Vec::new();
    let mut refuse = |field: &str, why: &str| out.push(format!("{field}: {why}"));
    const V1_ONLY: &str = "cgroup v1 only (gocker uses cgroup v2, which has no such setting)";
    const NOT_WRITTEN: &str = "not supported by gocker-oci";
    if let Some(p) = spec.process().as_ref() {
        if p.io_priority().is_some() {
            refuse("process.ioPriority", NOT_WRITTEN);
        }
        if p.scheduler().is_some() {
            refuse("process.scheduler", NOT_WRITTEN);
        }
        if p.exec_cpu_affinity().is_some() {
            refuse("process.execCPUAffinity", NOT_WRITTEN);
        }
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if m.uid_mappings().as_ref().is_some_and(|v| !v.is_empty())
            || m.gid_mappings().as_ref().is_some_and(|v| !v.is_empty())
        {
            refuse(
                &format!("mounts[{i}].uidMappings/gidMappings"),
                "idmapped mounts with mappings of their own are not supported by gocker-oci",
            );
        }
    }
    if spec.vm().is_some() {
        refuse("vm", "gocker-oci runs containers, not virtual machines");
    }
    let Some(linux) = spec.linux().as_ref() else {
        return out;
    };
    if linux.intel_rdt().is_some() {
        refuse(
            "linux.intelRdt",
            "resctrl (Intel RDT) is not supported by gocker-oci",
        );
    }
    if let Some(p) = linux.personality().as_ref() {
        if let Some(f) = p.flags().as_ref().filter(|f| !f.is_empty()) {
            refuse(
                "linux.personality.flags",
                &format!("{f:?}: personality flags are not supported (only the domain)"),
            );
        }
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        refuse("linux.netDevices", NOT_WRITTEN);
    }
    if linux.memory_policy().is_some() {
        refuse("linux.memoryPolicy", NOT_WRITTEN);
    }
    if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
        refuse(
            "linux.timeOffsets",
            "time namespaces are not supported by gocker-oci",
        );
    }
    if let Some(r) = linux.resources().as_ref() {
        if let Some(m) = r.memory().as_ref() {
            if m.kernel().is_some() {
                refuse("linux.resources.memory.kernel", V1_ONLY);
            }
            if m.kernel_tcp().is_some() {
                refuse("linux.resources.memory.kernelTCP", V1_ONLY);
            }
            if m.swappiness().is_some() {
                refuse("linux.resources.memory.swappiness", V1_ONLY);
            }
            if m.disable_oom_killer() == Some(true) {
                refuse("linux.resources.memory.disableOOMKiller", V1_ONLY);
            }
            if m.use_hierarchy() == Some(false) {
                refuse(
                    "linux.resources.memory.useHierarchy",
                    "false: cgroup v2 is always hierarchical",
                );
            }
            if m.check_before_update() == Some(true) {
                refuse("linux.resources.memory.checkBeforeUpdate", NOT_WRITTEN);
            }
        }
        if let Some(c) = r.cpu().as_ref() {
            if c.realtime_runtime().is_some() {
                refuse("linux.resources.cpu.realtimeRuntime", V1_ONLY);
            }
            if c.realtime_period().is_some() {
                refuse("linux.resources.cpu.realtimePeriod", V1_ONLY);
            }
            if c.idle().is_some() {
                refuse("linux.resources.cpu.idle", NOT_WRITTEN);
            }
            if c.burst().is_some() {
                refuse("linux.resources.cpu.burst", NOT_WRITTEN);
            }
        }
        if let Some(b) = r.block_io().as_ref() {
            if b.leaf_weight().is_some() {
                refuse("linux.resources.blockIO.leafWeight", V1_ONLY);
            }
            if b.weight_device().as_ref().is_some_and(|w| !w.is_empty()) {
                refuse("linux.resources.blockIO.weightDevice", NOT_WRITTEN);
            }
        }
        if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
            refuse("linux.resources.hugepageLimits", NOT_WRITTEN);
        }
        if let Some(n) = r.network().as_ref() {
            if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
                refuse(
                    "linux.resources.network",
                    "net_cls and net_prio are cgroup v1 only (gocker uses cgroup v2, which has neither)",
                );
            }
        }
        if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
            refuse("linux.resources.rdma", NOT_WRITTEN);
        }
    }
    if let Err(e) = gocker_mounts::plan(spec) {
        out.push(e.to_string());
    }
    out
}

/// `linux.resources.devices` rules that deny a node of `linux.devices` (character and block
/// devices; the default ones are always allowed, as runc allows them). gocker-oci has no device
/// cgroup (cgroup v2 needs a BPF device program) and cannot enforce such a rule: the node is
/// there and opens as on the host. Without a rule, a container can only reach the nodes gocker
/// gives it: none can be created in its user namespace, and what it mounts is `nodev`.
pub(crate) fn unenforced_device_rules(spec: &Spec) -> Vec<String> {
    use oci_spec::runtime::LinuxDeviceType as T;
    let Some(linux) = spec.linux().as_ref() else {
        return Vec::new();
    };
    let rules: &[oci_spec::runtime::LinuxDeviceCgroup] = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().as_deref())
        .unwrap_or(&[]);
    let mut out = Vec::new();
    for d in linux.devices().iter().flatten() {
        let typ = match d.typ() {
            T::C | T::U => T::C,
            T::B => T::B,
            _ => continue,
        };
        if gocker_mounts::plan::DEFAULT_DEVICES
            .iter()
            .any(|p| Path::new(p) == d.path())
        {
            continue;
        }
        // The last rule that matches decides, for each of read and write.
        let denied: String = ['r', 'w']
            .into_iter()
            .filter(|access| {
                let last = rules.iter().rev().find(|rule| {
                    let t = rule.typ().unwrap_or(T::A);
                    let t = if t == T::U { T::C } else { t };
                    (t == T::A || t == typ)
                        && rule.major().is_none_or(|m| m == d.major())
                        && rule.minor().is_none_or(|m| m == d.minor())
                        && rule.access().as_deref().is_none_or(|a| a.contains(*access))
                });
                last.is_some_and(|rule| !rule.allow())
            })
            .collect();
        if !denied.is_empty() {
            out.push(format!(
                "linux.resources.devices denies {denied:?} on {} ({} {}:{}), which gocker-oci cannot enforce (no device cgroup): the node is accessible",
                d.path().display(),
                typ.as_str(),
                d.major(),
                d.minor()
            ));
        }
    }
    out
}

fn is_alive(pid: i32, start: u64) -> bool {
    if process_start_time(pid) != Some(start) {
        return false;
    }
    // A zombie has exited: stopped (its parent, the caller's subreaper, has not reaped it yet).
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').and_then(|i| s[i + 2..].chars().next()))
        .map(|c| c != 'Z' && c != 'X')
        .unwrap_or(false)
}

/// The id maps for an OCI spec: its own mappings (a single mapping of the caller's own ids is
/// written directly with setgroups denied, as an unprivileged user may), else Gocker's defaults.
fn idmaps(spec: &Spec) -> Result<gocker_idmap::IdMaps> {
    let mut maps = bundle::idmaps_for(spec)?;
    let root = rustix::process::geteuid().is_root();
    let (uid, gid) = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    let own =
        |m: &[gocker_idmap::IdMap], id: u32| m.len() == 1 && m[0].outside == id && m[0].count == 1;
    if !root && own(&maps.uids, uid) && own(&maps.gids, gid) {
        maps.method = gocker_idmap::WriteMethod::Direct;
        maps.deny_setgroups = true;
    }
    Ok(maps)
}

/// Runs `f` with `dir` as the working directory, then returns to the previous one.
fn with_cwd<T>(dir: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let back = rustix::fs::open(
        ".",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RuntimeError::sys("open", "the working directory", e))?;
    rustix::process::chdir(dir).map_err(|e| RuntimeError::Rootfs {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    let r = f();
    rustix::process::fchdir(&back)
        .map_err(|e| RuntimeError::sys("fchdir", "the previous working directory", e))?;
    r
}

/// Joins the spec's namespaces given by `path` in this (the creating) process before the rings
/// are forked: they inherit them, and ring1 creates only the namespaces without a path. Network,
/// IPC, UTS and cgroup namespaces are joined here (e.g. podman's network namespace, a pod's
/// sandbox); user and PID namespaces are left to ring1 ([`crate::joins`]); a mount namespace by
/// path is refused (ring2 always builds the container's mount tree in one of its own).
fn join_namespaces(spec: &Spec, config: &Path) -> Result<()> {
    use oci_spec::runtime::LinuxNamespaceType as T;
    for n in spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        let Some(path) = n.path() else { continue };
        match n.typ() {
            T::Network | T::Ipc | T::Uts | T::Cgroup => {
                gocker_ns::enter_path(path, gocker_ns::Namespace::from(n.typ()))?;
            }
            T::User | T::Pid => {}
            other => {
                return Err(cfg_err(format!(
                    "{}: joining an existing {other:?} namespace ({}) is not supported (user, pid, network, ipc, uts and cgroup are)",
                    config.display(),
                    path.display()
                )))
            }
        }
    }
    Ok(())
}

/// Rootful: raises this process's limits to the spec's `process.rlimits` before the rings are
/// forked (they inherit them). ring2 sets them again inside the container's user namespace, where
/// raising a hard limit above the inherited one is refused (CAP_SYS_RESOURCE counts only in the
/// initial user namespace); runc raises them as host root in the same way. Failures are left to
/// ring2, which reports the limit by name.
fn raise_rlimits(spec: &Spec) {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    for r in spec
        .process()
        .as_ref()
        .and_then(|p| p.rlimits().as_ref())
        .into_iter()
        .flatten()
    {
        let resource = match r.typ() {
            oci_spec::runtime::PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
            oci_spec::runtime::PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
            oci_spec::runtime::PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
            oci_spec::runtime::PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
            oci_spec::runtime::PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
            _ => continue,
        };
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit reads a valid rlimit struct.
        unsafe { libc::setrlimit(resource, &lim) };
    }
}

/// runc's reading of `linux.resources.pids.limit`: 0 or less asks for no limit (podman writes 0
/// for `--pids-limit -1`). A fresh cgroup has no limit already, so nothing is written and the
/// pids controller is not required for it.
fn unset_unlimited_pids(spec: &mut Spec) {
    if let Some(res) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.resources_mut().as_mut())
    {
        if res.pids().as_ref().is_some_and(|p| p.limit() <= 0) {
            res.set_pids(None);
        }
    }
}

fn has_userns(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
        })
        .unwrap_or(false)
}

/// The lifecycle operations on one state root (`--root`).
pub struct Runtime {
    store: StateStore,
}

impl Runtime {
    pub fn open(root: &Path) -> Result<Runtime> {
        let store = StateStore::open(root)?;
        Ok(Runtime { store })
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.store.container_dir(id)
    }

    fn record(&self, id: &str) -> Result<Record> {
        check_id(id)?;
        let path = self.dir(id).join(RECORD);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NoSuchContainer(id.to_owned()))
            }
            Err(e) => {
                return Err(RuntimeError::State {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        serde_json::from_slice(&text).map_err(|e| RuntimeError::State {
            path,
            reason: e.to_string(),
        })
    }

    fn save_record(&self, id: &str, r: &Record) -> Result<()> {
        let path = self.dir(id).join(RECORD);
        let tmp = path.with_extension("json.tmp");
        let err = |e: std::io::Error| RuntimeError::State {
            path: path.clone(),
            reason: e.to_string(),
        };
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(r).expect("record serialises"),
        )
        .map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)
    }

    fn oci_state(&self, id: &str, r: &Record) -> OciState {
        let alive = is_alive(r.pid, r.pid_start);
        let frozen = || {
            r.cgroup
                .as_ref()
                .is_some_and(|cg| gocker_cgroups::Cgroup::open(cg).is_frozen())
        };
        let status = if alive && self.dir(id).join(FIFO).exists() {
            "created"
        } else if alive && frozen() {
            // `pause`: runc reports a frozen container as paused.
            "paused"
        } else if alive {
            "running"
        } else {
            "stopped"
        };
        OciState {
            oci_version: "1.2.0".into(),
            id: id.to_owned(),
            status: status.into(),
            pid: if alive { r.pid } else { 0 },
            bundle: r.bundle.clone(),
            annotations: r.annotations.clone(),
            created: r.created.clone(),
            owner: String::new(),
        }
    }

    /// `state ID`.
    pub fn state(&self, id: &str) -> Result<OciState> {
        let r = self.record(id)?;
        Ok(self.oci_state(id, &r))
    }

    /// `list`: every container of this root.
    pub fn list(&self) -> Result<Vec<OciState>> {
        let rd = std::fs::read_dir(self.store.root()).map_err(|e| RuntimeError::State {
            path: self.store.root().to_owned(),
            reason: e.to_string(),
        })?;
        let mut v: Vec<OciState> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|id| id != "names")
            .filter_map(|id| self.record(&id).ok().map(|r| self.oci_state(&id, &r)))
            .collect();
        v.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(v)
    }

    /// `create ID --bundle DIR`: the container's process waits at the FIFO barrier when this
    /// returns. The caller must be single-threaded (the rings are forked from it).
    pub fn create(&self, id: &str, bundle_dir: &Path, opts: &CreateOptions) -> Result<OciState> {
        let c = self.create_container(id, bundle_dir, opts)?;
        let st = c.release()?;
        let r = self.record(id)?;
        debug_assert_eq!(st.pid, Some(r.pid));
        Ok(self.oci_state(id, &r))
    }

    /// Like [`Runtime::create`], but keeps the [`Container`] (for `run`: the process stays our child).
    fn create_container(
        &self,
        id: &str,
        bundle_dir: &Path,
        opts: &CreateOptions,
    ) -> Result<Container> {
        check_id(id)?;
        let bundle_dir = std::path::absolute(bundle_dir)
            .map_err(|e| cfg_err(format!("bundle {}: {e}", bundle_dir.display())))?;
        let mut spec = bundle::load(&bundle_dir)?;
        unset_unlimited_pids(&mut spec);
        if self.dir(id).exists() {
            return Err(cfg_err(format!(
                "container {id} already exists in {}",
                self.store.root().display()
            )));
        }
        if !rustix::process::geteuid().is_root() && !has_userns(&spec) {
            return Err(cfg_err(format!(
                "{}: a rootless container needs a user namespace with mappings of your own ids (see `gocker-oci spec --rootless`)",
                bundle_dir.join("config.json").display()
            )));
        }
        let terminal = spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        if terminal && opts.console_socket.is_none() {
            return Err(cfg_err(
                "process.terminal is true: --console-socket is required".into(),
            ));
        }
        let notes = check_unsupported(&spec, &HostLsm::probe())
            .map_err(|e| cfg_err(format!("{}: {e}", bundle_dir.join("config.json").display())))?;
        for n in notes {
            tracing::debug!("{n}");
        }
        for w in unenforced_device_rules(&spec) {
            tracing::warn!("{}: {w}", bundle_dir.join("config.json").display());
        }
        // Before joining: whose namespaces they are decides which sysctls the container may set.
        let foreign_joins = crate::sysctl::foreign_joins(&spec);
        join_namespaces(&spec, &bundle_dir.join("config.json"))?;
        raise_rlimits(&spec);
        let rootfs = spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .unwrap_or_default();
        let mut cfg = ContainerConfig::new(id, spec.clone(), idmaps(&spec)?);
        cfg.stdin = true;
        cfg.tty = terminal;
        // Kept open until the rings have started: ring1 joins them.
        let joins = crate::joins::open(&spec, &mut cfg.idmaps, &bundle_dir.join("config.json"))?;
        // The FIFO barrier, opened O_PATH here and inherited by ring1 and ring2 (fork mode). It
        // is made beside the state directories and renamed into the container's directory once
        // Container::create has made that (the descriptor follows the inode).
        let staged = self.store.root().join(format!(".{id}.{FIFO}"));
        let _ = std::fs::remove_file(&staged);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &staged,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .map_err(|e| RuntimeError::sys("mkfifo", staged.display().to_string(), e))?;
        let fifo = rustix::fs::open(&staged, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| RuntimeError::sys("open", staged.display().to_string(), e));
        let fifo = match fifo {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&staged);
                return Err(e);
            }
        };
        // ring2 reopens the FIFO as root of the container's user namespace: it must own it.
        let owner = (cfg.idmaps.host_uid(0), cfg.idmaps.host_gid(0));
        if let (Some(u), Some(g)) = owner {
            rustix::fs::chown(
                &staged,
                Some(rustix::fs::Uid::from_raw(u)),
                Some(rustix::fs::Gid::from_raw(g)),
            )
            .map_err(|e| RuntimeError::sys("chown", staged.display().to_string(), e))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&staged);
            })?;
        }
        // The seccomp agent is reached with our credentials, before any ring exists.
        let agent = connect_seccomp_agent(&spec)?;
        cfg.oci = Some(OciMode {
            exec_fifo_fd: crate::config::InheritedFd::of(&fifo),
            preserve_fds: opts.preserve_fds,
            seccomp_agent_fd: agent.as_ref().map(crate::config::InheritedFd::of),
            userns_fd: joins.user_fd(),
            pidns_fd: joins.pid_fd(),
            foreign_joins: foreign_joins.bits(),
        });
        // The rings inherit the working directory: ring2 attaches the rootfs there (mount_root_at_cwd).
        let c = with_cwd(&rootfs, || {
            Container::create(cfg, self.store.clone(), id, false)
        })
        .and_then(|c| {
            std::fs::rename(&staged, self.dir(id).join(FIFO)).map_err(|e| RuntimeError::State {
                path: staged.clone(),
                reason: e.to_string(),
            })?;
            Ok(c)
        });
        let mut c = match c {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&staged);
                return Err(e);
            }
        };
        drop(fifo);
        drop(joins);
        let pid = c.pid().expect("created");
        let record = Record {
            bundle: bundle_dir.clone(),
            annotations: spec.annotations().clone().unwrap_or_default(),
            pid,
            pid_start: process_start_time(pid).unwrap_or(0),
            created: now_rfc3339(),
            cgroup: c.state().cgroup.clone(),
            hooks: spec.hooks().clone(),
        };
        // On any failure from here, dropping `c` kills and reaps ring2 and removes the state.
        self.save_record(id, &record)?;
        if let Some(sock) = &opts.console_socket {
            let master = c
                .take_pty()
                .ok_or_else(|| RuntimeError::Protocol("ring2 sent no terminal".into()))?;
            crate::tty::send_console(sock, master.as_fd())?;
        }
        if let Some(pf) = &opts.pid_file {
            write_pid_file(pf, pid)?;
        }
        let st = self.oci_state(id, &record);
        if let Some(h) = spec.hooks() {
            let state = serde_json::to_vec(&st).expect("state serialises");
            run_hooks("createRuntime", h.create_runtime(), &state)?;
            run_hooks("prestart", h.prestart(), &state)?;
            run_hooks_in_container(h.create_container(), &state, pid)?;
        }
        // ring2 waits for the state when it has startContainer hooks to run or a seccomp agent
        // to tell about the container.
        if needs_state(&spec) {
            c.send_oci_state(&serde_json::to_vec(&st).expect("state serialises"))?;
        }
        Ok(c)
    }

    /// `start ID`: releases the process from the FIFO barrier.
    pub fn start(&self, id: &str) -> Result<()> {
        let r = self.record(id)?;
        let st = self.oci_state(id, &r);
        if st.status != "created" {
            return Err(cfg_err(format!(
                "container {id} is {}, not created: cannot start it",
                st.status
            )));
        }
        let path = self.dir(id).join(FIFO);
        let fifo = rustix::fs::open(
            &path,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RuntimeError::sys("open", path.display().to_string(), e))?;
        // The process opens the FIFO for writing (now unblocked) and writes one byte.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut p = [PollFd::new(&fifo, PollFlags::IN)];
            let _ = rustix::event::poll(
                &mut p,
                Some(&Timespec {
                    tv_sec: 0,
                    tv_nsec: 50_000_000,
                }),
            );
            let mut b = [0u8; 1];
            match rustix::io::read(&fifo, &mut b) {
                Ok(1) => break,
                Ok(_) | Err(Errno::AGAIN) | Err(Errno::INTR) => {}
                Err(e) => return Err(RuntimeError::sys("read", path.display().to_string(), e)),
            }
            if !is_alive(r.pid, r.pid_start) {
                return Err(cfg_err(format!(
                    "container {id}: its process (pid {}) exited before start",
                    r.pid
                )));
            }
            if Instant::now() > deadline {
                return Err(RuntimeError::Timeout {
                    stage: format!("container {id} to open {}", path.display()),
                    after: Duration::from_secs(30),
                });
            }
        }
        std::fs::remove_file(&path).map_err(|e| RuntimeError::State {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if let Some(h) = &r.hooks {
            let st = serde_json::to_vec(&self.oci_state(id, &r)).expect("state serialises");
            // Failures of poststart hooks are logged, not fatal (runtime spec).
            if let Err(e) = run_hooks("poststart", h.poststart(), &st) {
                tracing::warn!("{e}");
            }
        }
        Ok(())
    }

    /// `kill ID SIGNAL [--all]`. As runc: `--all` on a stopped container signals what is left in
    /// its cgroup (nothing, once its PID namespace is gone) and succeeds; a plain kill of a stopped
    /// container fails with "container not running", the words containerd's shim maps to "process
    /// already finished" (anything else makes its StopPodSandbox retry forever).
    pub fn kill(&self, id: &str, sig: i32, all: bool) -> Result<()> {
        let r = self.record(id)?;
        if !is_alive(r.pid, r.pid_start) {
            if all {
                for pid in r.cgroup.iter().flat_map(|cg| {
                    std::fs::read_to_string(cg.join("cgroup.procs"))
                        .unwrap_or_default()
                        .lines()
                        .filter_map(|l| l.trim().parse::<i32>().ok())
                        .collect::<Vec<_>>()
                }) {
                    signal(pid, sig)?;
                }
                return Ok(());
            }
            return Err(cfg_err(format!("container {id}: container not running")));
        }
        let pids = if all { self.pids_of(&r) } else { vec![r.pid] };
        for pid in pids {
            signal(pid, sig)?;
        }
        Ok(())
    }

    /// Processes of the container: those in its PID namespace (or, sharing the host's, in its cgroup).
    fn pids_of(&self, r: &Record) -> Vec<i32> {
        if !is_alive(r.pid, r.pid_start) {
            return Vec::new();
        }
        let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        let mine = ns(rustix::process::getpid().as_raw_nonzero().get());
        let target = ns(r.pid);
        if target.is_some() && target != mine {
            let mut v: Vec<i32> = std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .filter(|p| ns(*p) == target)
                .collect();
            v.sort();
            return v;
        }
        if let Some(cg) = &r.cgroup {
            if let Ok(t) = std::fs::read_to_string(cg.join("cgroup.procs")) {
                return t.lines().filter_map(|l| l.trim().parse().ok()).collect();
            }
        }
        vec![r.pid]
    }

    /// `ps ID`: host pids of the container's processes.
    pub fn ps(&self, id: &str) -> Result<Vec<i32>> {
        let r = self.record(id)?;
        Ok(self.pids_of(&r))
    }

    /// `delete ID [--force]`: a running container needs `force` (SIGKILL first).
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let r = self.record(id)?;
        let st = self.oci_state(id, &r);
        if (st.status == "running" || st.status == "paused") && !force {
            return Err(cfg_err(format!(
                "container {id} is {}: stop it first or use --force",
                st.status
            )));
        }
        if is_alive(r.pid, r.pid_start) {
            // A created container is killed without --force, as runc does.
            kill_and_wait(r.pid, r.pid_start, id)?;
        }
        if let Some(cg) = &r.cgroup {
            gocker_cgroups::Cgroup::open(cg.clone()).remove(Duration::from_secs(2))?;
        }
        self.store.remove(id, id)?;
        if let Some(h) = &r.hooks {
            let mut st = st;
            st.status = "stopped".into();
            st.pid = 0;
            let st = serde_json::to_vec(&st).expect("state serialises");
            if let Err(e) = run_hooks("poststop", h.poststop(), &st) {
                tracing::warn!("{e}");
            }
        }
        Ok(())
    }

    /// `pause` / `resume`: the cgroup v2 freezer ([`crate::control::freeze`], shared with
    /// `gocker pause`).
    pub fn freeze(&self, id: &str, frozen: bool) -> Result<()> {
        let r = self.record(id)?;
        crate::control::freeze(id, id, r.cgroup.as_deref(), frozen)
    }

    /// `update ID`: applies new resource limits to the container's cgroup
    /// ([`crate::control::apply_limits`], shared with `gocker update`).
    pub fn update(&self, id: &str, res: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let r = self.record(id)?;
        crate::control::apply_limits(id, id, r.cgroup.as_deref(), res)
    }

    /// `run ID`: create, start, wait (the process is our own child), delete. Returns the exit code.
    pub fn run(
        &self,
        id: &str,
        bundle_dir: &Path,
        opts: &CreateOptions,
        detach: bool,
    ) -> Result<i32> {
        let c = self.create_container(id, bundle_dir, opts)?;
        let st = c.release()?;
        let pid = st.pid.expect("created");
        if let Err(e) = self.start(id) {
            let _ = self.delete(id, true);
            return Err(e);
        }
        if detach {
            return Ok(0);
        }
        let status = loop {
            match rustix::process::waitpid(
                Pid::from_raw(pid),
                rustix::process::WaitOptions::empty(),
            ) {
                Ok(Some((_, s))) => break crate::ExitStatus::from_wait(s),
                Err(Errno::INTR) | Ok(None) => continue,
                Err(e) => {
                    return Err(RuntimeError::sys(
                        "waitpid",
                        format!("container {id} pid {pid}"),
                        e,
                    ))
                }
            }
        };
        self.delete(id, true)?;
        Ok(status.code())
    }

    /// `exec ID`: runs `req` in the container (its namespaces, cgroup, privilege drop and filter).
    pub fn exec(&self, id: &str, req: &crate::nsexec::ExecRequest) -> Result<crate::ExitStatus> {
        let st = self.exec_state(id)?;
        match crate::nsexec::exec(&self.store, &st, req)? {
            crate::nsexec::ExecEnd::Exited(s) => Ok(s),
            // runc's exec has no detach keys: requests from gocker-oci carry none.
            crate::nsexec::ExecEnd::Detached => Err(RuntimeError::Protocol(
                "exec detached without detach keys".into(),
            )),
        }
    }

    /// `exec --detach [--pid-file F]`: returns the new process's host pid once it has exec'd.
    pub fn exec_detached(
        &self,
        id: &str,
        req: &crate::nsexec::ExecRequest,
        pid_file: Option<&Path>,
    ) -> Result<i32> {
        let st = self.exec_state(id)?;
        let pid = crate::nsexec::exec_detached(&self.store, &st, req)?;
        if let Some(f) = pid_file {
            write_pid_file(f, pid)?;
        }
        Ok(pid)
    }

    fn exec_state(&self, id: &str) -> Result<crate::ContainerState> {
        let r = self.record(id)?;
        if self.oci_state(id, &r).status != "running" {
            return Err(cfg_err(format!("container {id} is not running")));
        }
        let mut st = self.store.load(id)?;
        // nsexec checks that the process keeping the container alive still is: here the payload.
        st.monitor_pid = r.pid;
        st.monitor_start = r.pid_start;
        st.status = crate::Status::Running;
        Ok(st)
    }
}

/// A pid read from a container's record: a record holding no positive pid is refused, not trusted.
fn recorded_pid(pid: i32) -> Result<Pid> {
    Pid::from_raw(pid).ok_or_else(|| {
        RuntimeError::Protocol(format!(
            "the container's record holds the pid {pid}, not a process"
        ))
    })
}

fn signal(pid: i32, sig: i32) -> Result<()> {
    let fd = match rustix::process::pidfd_open(recorded_pid(pid)?, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(Errno::SRCH) => return Ok(()),
        Err(e) => return Err(RuntimeError::sys("pidfd_open", format!("pid {pid}"), e)),
    };
    if !(1..=64).contains(&sig) {
        return Err(cfg_err(format!("invalid signal {sig}")));
    }
    // SAFETY: the number is in the kernel's signal range (checked above).
    let s = unsafe { Signal::from_raw_unchecked(sig) };
    match rustix::process::pidfd_send_signal(&fd, s) {
        Ok(()) | Err(Errno::SRCH) => Ok(()),
        Err(e) => Err(RuntimeError::sys(
            "pidfd_send_signal",
            format!("pid {pid} signal {sig}"),
            e,
        )),
    }
}

/// SIGKILL and wait until the process has exited (it is not our child: poll its pidfd).
fn kill_and_wait(pid: i32, start: u64, id: &str) -> Result<()> {
    let fd = match rustix::process::pidfd_open(recorded_pid(pid)?, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(Errno::SRCH) => return Ok(()),
        Err(e) => {
            return Err(RuntimeError::sys(
                "pidfd_open",
                format!("container {id} pid {pid}"),
                e,
            ))
        }
    };
    if process_start_time(pid) != Some(start) {
        return Ok(());
    }
    match rustix::process::pidfd_send_signal(&fd, Signal::KILL) {
        Ok(()) | Err(Errno::SRCH) => {}
        Err(e) => {
            return Err(RuntimeError::sys(
                "pidfd_send_signal",
                format!("container {id} pid {pid}"),
                e,
            ))
        }
    }
    let mut p = [PollFd::new(&fd, PollFlags::IN)];
    match rustix::event::poll(
        &mut p,
        Some(&Timespec {
            tv_sec: 10,
            tv_nsec: 0,
        }),
    ) {
        Ok(n) if n > 0 => Ok(()),
        _ => Err(RuntimeError::Timeout {
            stage: format!("container {id} (pid {pid}) to die"),
            after: Duration::from_secs(10),
        }),
    }
}

fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("gocker-oci.tmp");
    let err = |e: std::io::Error| RuntimeError::State {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    std::fs::write(&tmp, pid.to_string()).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Connects to `linux.seccomp.listenerPath` (a unix stream socket), when the spec names one.
fn connect_seccomp_agent(spec: &Spec) -> Result<Option<OwnedFd>> {
    let Some(path) = listener_path(spec) else {
        return Ok(None);
    };
    let s = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
        cfg_err(format!(
            "linux.seccomp.listenerPath {}: {e}",
            path.display()
        ))
    })?;
    Ok(Some(OwnedFd::from(s)))
}

/// `createContainer` hooks: each program is opened here (its path resolves in the runtime's mount
/// namespace), then run in the container's namespaces, as root of its user namespace, with the
/// state on stdin. A child joins the namespaces (setns needs a single-threaded process) and
/// spawns the hook, which so is also inside the container's PID namespace.
fn run_hooks_in_container(hooks: &Option<Vec<Hook>>, state: &[u8], pid: i32) -> Result<()> {
    if !has_hooks(hooks) {
        return Ok(());
    }
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid)
            .ok_or_else(|| cfg_err("no container process".into()))?,
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| RuntimeError::sys("pidfd_open", format!("pid {pid}"), e))?;
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let set = gocker_ns::differing(me, pid);
    for h in hooks.iter().flatten() {
        let what = format!("createContainer hook {}", h.path().display());
        // Not close-on-exec: the hook is executed as /proc/self/fd/N, which the container's /proc
        // resolves for a process in its PID namespace (an interpreter gets that path too).
        let prog = rustix::fs::open(h.path(), OFlags::RDONLY, Mode::empty())
            .map_err(|e| cfg_err(format!("{what}: {e}")))?;
        let mut inner = h.clone();
        let via = format!("/proc/self/fd/{}", prog.as_raw_fd());
        inner.set_path(PathBuf::from(&via));
        let (err_r, err_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| RuntimeError::sys("pipe", &what, e))?;
        // SAFETY: gocker-oci is single-threaded here; the child only joins namespaces, spawns
        // and waits for the hook, and exits.
        match unsafe { gocker_ns::fork_into(gocker_ns::NamespaceSet::EMPTY, None) }? {
            gocker_ns::Forked::Child => {
                drop(err_r);
                let r = gocker_ns::nsenter(pidfd.as_fd(), pid, set, true)
                    .map_err(RuntimeError::from)
                    .and_then(|()| run_hooks("createContainer", &Some(vec![inner]), state));
                let code = match r {
                    Ok(()) => 0,
                    Err(e) => {
                        let _ = rustix::io::write(&err_w, e.to_string().as_bytes());
                        1
                    }
                };
                crate::sys::exit(code)
            }
            gocker_ns::Forked::Parent { pid: child, .. } => {
                drop(err_w);
                let mut msg = String::new();
                let _ = std::fs::File::from(err_r).read_to_string(&mut msg);
                let status = loop {
                    match rustix::process::waitpid(
                        Some(child),
                        rustix::process::WaitOptions::empty(),
                    ) {
                        Err(Errno::INTR) => continue,
                        Ok(Some((_, st))) => break st.exit_status(),
                        Ok(None) | Err(_) => break None,
                    }
                };
                if status != Some(0) {
                    let msg = msg.trim();
                    return Err(cfg_err(if msg.is_empty() {
                        format!("{what}: the helper that runs it in the container failed")
                    } else {
                        msg.replace(&via, &h.path().display().to_string())
                    }));
                }
            }
        }
    }
    Ok(())
}

/// `spec`: runc's default config.json (rootfs `rootfs`, `sh` on a terminal) with Gocker's defaults;
/// `rootless`: mappings of the caller's own uid and gid to root.
pub fn default_spec(rootless: bool) -> Result<Spec> {
    let mut spec = crate::spec::default_spec(PathBuf::from("/rootfs"), vec!["sh".into()])?;
    if let Some(root) = spec.root_mut().as_mut() {
        root.set_path(PathBuf::from("rootfs"));
        root.set_readonly(Some(true));
    }
    if let Some(p) = spec.process_mut().as_mut() {
        p.set_terminal(Some(true));
        p.set_env(Some(vec![
            format!("PATH={}", crate::process::DEFAULT_PATH),
            "TERM=xterm".into(),
        ]));
    }
    spec.set_hostname(Some("gocker".into()));
    if rootless {
        let map = |id: u32| {
            oci_spec::runtime::LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(id)
                .size(1u32)
                .build()
                .expect("all fields set")
        };
        if let Some(l) = spec.linux_mut().as_mut() {
            l.set_uid_mappings(Some(vec![map(rustix::process::geteuid().as_raw())]));
            l.set_gid_mappings(Some(vec![map(rustix::process::getegid().as_raw())]));
        }
    }
    Ok(spec)
}

/// `features`: what this runtime supports (OCI runtime-spec features.md).
pub fn features() -> serde_json::Value {
    let caps: Vec<String> = caps::all().into_iter().map(|c| c.to_string()).collect();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        // The mount-option parser's own table: nothing is advertised that it refuses.
        "mountOptions": gocker_mounts::options::supported().collect::<Vec<_>>(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": false, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {"enabled": true, "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
                "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRAP", "SCMP_ACT_TRACE",
                "SCMP_ACT_NOTIFY"],
                "operators": ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
                "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"], "archs": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}}
        },
        "annotations": {"org.opencontainers.runc.checkpoint.enabled": "false", "io.gocker.version": env!("CARGO_PKG_VERSION")}
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci_init::check_seccomp;

    #[test]
    fn ids_are_single_components() {
        assert!(check_id("abc-1_2.3").is_ok());
        for bad in ["", ".", "..", "a/b", "names", "a b"] {
            let e = check_id(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 30, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T",
            "{t}"
        );
    }

    #[test]
    fn lsm_settings_are_refused_where_enforced_and_noted_elsewhere() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.0",
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                        "apparmorProfile": "docker-default", "selinuxLabel": "system_u:system_r:container_t:s0"},
            "linux": {"mountLabel": "system_u:object_r:container_file_t:s0"},
        }))
        .unwrap();
        let notes = check_unsupported(&spec, &HostLsm::default()).unwrap();
        assert_eq!(notes.len(), 3, "{notes:?}");
        let e = check_unsupported(
            &spec,
            &HostLsm {
                apparmor: true,
                selinux: false,
            },
        )
        .unwrap_err();
        assert!(e.contains("apparmorProfile"), "{e}");
        let e = check_unsupported(
            &spec,
            &HostLsm {
                apparmor: false,
                selinux: true,
            },
        )
        .unwrap_err();
        assert!(e.contains("selinuxLabel"), "{e}");

        let rdt: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.0", "linux": {"intelRdt": {"closID": "x"}},
        }))
        .unwrap();
        assert!(check_unsupported(&rdt, &HostLsm::default())
            .unwrap_err()
            .contains("intelRdt"));
        let pers: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.0", "linux": {"personality": {"domain": "LINUX32", "flags": ["X"]}},
        }))
        .unwrap();
        assert!(check_unsupported(&pers, &HostLsm::default())
            .unwrap_err()
            .contains("flags"));
    }

    #[test]
    fn notify_needs_a_listener_path() {
        let mut spec = crate::spec::default_spec("/r".into(), vec!["sh".into()]).unwrap();
        assert!(check_seccomp(&spec).is_ok());
        let seccomp: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}]
        }))
        .unwrap();
        spec.linux_mut()
            .as_mut()
            .unwrap()
            .set_seccomp(Some(seccomp));
        assert!(check_seccomp(&spec)
            .unwrap_err()
            .to_string()
            .contains("listenerPath"));
        let l = spec.linux_mut().as_mut().unwrap();
        let mut s = l.seccomp().clone().unwrap();
        s.set_listener_path(Some("/run/agent.sock".into()));
        l.set_seccomp(Some(s));
        assert!(check_seccomp(&spec).is_ok());
    }

    #[test]
    fn a_default_notify_action_needs_a_listener_path_too() {
        let mut spec = crate::spec::default_spec("/r".into(), vec!["sh".into()]).unwrap();
        let seccomp: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_NOTIFY",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]
        }))
        .unwrap();
        spec.linux_mut()
            .as_mut()
            .unwrap()
            .set_seccomp(Some(seccomp));
        assert!(check_seccomp(&spec).is_err());
        // A rule that merely mentions the string elsewhere (an errno name, say) is no notify rule.
        let seccomp: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerMetadata": "SCMP_ACT_NOTIFY",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]
        }))
        .unwrap();
        spec.linux_mut()
            .as_mut()
            .unwrap()
            .set_seccomp(Some(seccomp));
        assert!(check_seccomp(&spec).is_ok());
    }

    fn spec_json(v: serde_json::Value) -> Spec {
        let mut base = serde_json::to_value(
            crate::spec::default_spec("/r".into(), vec!["sh".into()]).unwrap(),
        )
        .unwrap();
        fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
            match (a, b) {
                (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                    for (k, v) in b {
                        merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                    }
                }
                (a, b) => *a = b,
            }
        }
        merge(&mut base, v);
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn fields_gocker_cannot_honour_are_refused_by_name() {
        let base = crate::spec::default_spec("/r".into(), vec!["sh".into()]).unwrap();
        assert_eq!(refused_fields(&base), Vec::<String>::new());
        assert!(check_unsupported(&base, &HostLsm::default()).is_ok());
        for (edit, field) in [
            (
                serde_json::json!({"linux": {"resources": {"network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 1}]}}}}),
                "linux.resources.network",
            ),
            (
                serde_json::json!({"linux": {"resources": {"hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}]}}}),
                "linux.resources.hugepageLimits",
            ),
            (
                serde_json::json!({"linux": {"resources": {"rdma": {"mlx5_1": {"hcaHandles": 3}}}}}),
                "linux.resources.rdma",
            ),
            (
                serde_json::json!({"linux": {"resources": {"memory": {"kernel": 1048576}}}}),
                "linux.resources.memory.kernel",
            ),
            (
                serde_json::json!({"linux": {"resources": {"memory": {"swappiness": 10}}}}),
                "linux.resources.memory.swappiness",
            ),
            (
                serde_json::json!({"linux": {"resources": {"memory": {"disableOOMKiller": true}}}}),
                "linux.resources.memory.disableOOMKiller",
            ),
            (
                serde_json::json!({"linux": {"resources": {"cpu": {"realtimeRuntime": 1000}}}}),
                "linux.resources.cpu.realtimeRuntime",
            ),
            (
                serde_json::json!({"linux": {"resources": {"cpu": {"idle": 1}}}}),
                "linux.resources.cpu.idle",
            ),
            (
                serde_json::json!({"linux": {"resources": {"blockIO": {"leafWeight": 10}}}}),
                "linux.resources.blockIO.leafWeight",
            ),
            (
                serde_json::json!({"linux": {"resources": {"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 500}]}}}}),
                "linux.resources.blockIO.weightDevice",
            ),
            (
                serde_json::json!({"linux": {"intelRdt": {"closID": "x"}}}),
                "linux.intelRdt",
            ),
            (
                serde_json::json!({"linux": {"timeOffsets": {"monotonic": {"secs": 1, "nanosecs": 0}}}}),
                "linux.timeOffsets",
            ),
            (
                serde_json::json!({"linux": {"rootfsPropagation": "sideways"}}),
                "linux.rootfsPropagation",
            ),
            (
                serde_json::json!({"process": {"ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0}}}),
                "process.ioPriority",
            ),
            (
                serde_json::json!({"process": {"scheduler": {"policy": "SCHED_IDLE"}}}),
                "process.scheduler",
            ),
        ] {
            let spec = spec_json(edit.clone());
            let refused = refused_fields(&spec);
            assert!(
                refused.len() == 1 && refused[0].contains(field),
                "{edit}: {refused:?}"
            );
            let e = check_unsupported(&spec, &HostLsm::default()).unwrap_err();
            assert!(e.contains(field), "{e}");
        }
        // Settings that gocker applies, or that mean what it does anyway, are not refused.
        let fine = spec_json(serde_json::json!({"linux": {
            "rootfsPropagation": "rprivate",
            "resources": {"memory": {"limit": 67108864, "useHierarchy": true, "disableOOMKiller": false},
                          "cpu": {"shares": 512}, "pids": {"limit": 10}}
        }}));
        assert_eq!(refused_fields(&fine), Vec::<String>::new());
        // A mount option the mount code refuses is refused before anything is created.
        let sync = spec_json(serde_json::json!({}));
        let mut sync = sync;
        let mut mounts = sync.mounts().clone().unwrap();
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination("/data")
                .typ("tmpfs")
                .source("tmpfs")
                .options(vec!["sync".to_string()])
                .build()
                .unwrap(),
        );
        sync.set_mounts(Some(mounts));
        let refused = refused_fields(&sync);
        assert!(
            refused.len() == 1 && refused[0].contains("\"sync\""),
            "{refused:?}"
        );
    }

    #[test]
    fn features_advertise_only_the_mount_options_the_parser_applies() {
        let f = features();
        let opts: Vec<String> = f["mountOptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap().to_owned())
            .collect();
        assert!(opts.iter().any(|o| o == "rbind") && opts.iter().any(|o| o == "rshared"));
        for refused in ["sync", "remount", "dirsync", "mand", "tmpcopyup"] {
            assert!(!opts.iter().any(|o| o == refused), "{refused} advertised");
        }
        for o in &opts {
            let parsed =
                gocker_mounts::options::parse(Path::new("/x"), std::slice::from_ref(o)).unwrap();
            assert!(
                parsed.data.is_empty(),
                "{o} is not a VFS option the parser knows"
            );
        }
    }

    #[test]
    fn device_rules_that_cannot_be_enforced_are_named() {
        let spec = spec_json(serde_json::json!({"linux": {
            "devices": [
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
                {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
                {"path": "/dev/loop0", "type": "b", "major": 7, "minor": 0}
            ],
            "resources": {"devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "b", "major": 7, "access": "rw"}
            ]}
        }}));
        let w = unenforced_device_rules(&spec);
        // /dev/fuse is denied and cannot be enforced; /dev/null is always allowed (as with runc);
        // /dev/loop0 is allowed by the later rule.
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("/dev/fuse") && w[0].contains("\"rw\""),
            "{w:?}"
        );
        let allowed = spec_json(serde_json::json!({"linux": {
            "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
            "resources": {"devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
            ]}
        }}));
        assert!(unenforced_device_rules(&allowed).is_empty());
    }
}
