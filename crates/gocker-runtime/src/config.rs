use std::path::PathBuf;
use std::time::Duration;

use gocker_idmap::IdMaps;
use gocker_ns::{Namespace, NamespaceSet};
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::{Result, RuntimeError};

/// What becomes the container's `/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RootMode {
    /// `spec.root.path`, a root filesystem directory.
    Rootfs,
    /// A read-only view of the host's `/` (used when no rootfs is provisioned); `spec.root.path` is `/`.
    HostView,
}

/// How ring1 and ring2 come to life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpawnMode {
    /// Fork without exec (fastest; like bubblewrap and crun). The caller must be single-threaded.
    Fork,
    /// Fork, then exec these binaries as ring1 and ring2 (safe from multi-threaded callers: the
    /// child only makes async-signal-safe calls before exec). A binary becomes a ring by calling
    /// [`crate::ring_entry`] first thing in `main`; `/proc/self/exe` works for such a program.
    Exec { ring1: PathBuf, ring2: PathBuf },
}

/// Everything needed to create one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// Unique id (also the state directory name).
    pub id: String,
    /// The OCI spec; `root.path` must be absolute.
    pub spec: Spec,
    /// uid/gid maps of the container's user namespace and how to write them.
    pub idmaps: IdMaps,
    pub root_mode: RootMode,
    /// Pass the caller's stdin to the payload (`-i`); otherwise the payload reads /dev/null.
    pub stdin: bool,
    /// Give the payload a pseudo-terminal (`-t`); its master reaches ring0 ([`crate::Container::take_pty`]).
    #[serde(default)]
    pub tty: bool,
    /// Try an idmapped mount of the rootfs (rootful only; falls back to a plain bind when refused).
    pub idmap_rootfs: bool,
    /// The container is created by host root (ring0 holds `CAP_SYS_PTRACE` over its rings).
    #[serde(default)]
    pub rootful: bool,
    /// Upper bound for each wait between rings.
    pub stage_timeout: Duration,
    /// Block the forwardable signals in the caller and deliver them to the payload in [`crate::Container::wait`].
    pub forward_signals: bool,
    pub spawn: SpawnMode,
    /// The compiled `linux.seccomp` of the spec. [`crate::Container::create`] fills it in (from the
    /// BPF cache when it can); set it beforehand to use a program compiled elsewhere.
    #[serde(default)]
    pub seccomp: Option<gocker_seccomp::Bpf>,
    /// The container's network (default: `none`, a private namespace with only loopback).
    #[serde(default)]
    pub network: gocker_net::NetworkOptions,
    /// After a forwarded SIGTERM, how long the payload has to exit before ring0 sends SIGKILL
    /// (`--stop-timeout`; `None`: never).
    #[serde(default)]
    pub stop_timeout: Option<Duration>,
    /// Workspace mode: lift, the enclave command, the debug sleep, own /etc files
    /// ([`crate::workspace`]). The default is a plain container.
    #[serde(default)]
    pub workspace: RingOptions,
    /// The OCI runtime process model (`gocker-oci`, see [`crate::oci`]); `None` for `gocker run`.
    #[serde(default)]
    pub oci: Option<OciMode>,
    /// Destinations of spec bind mounts whose sources are templates of files the container owns
    /// (its generated `/etc/hosts` and `/etc/resolv.conf`): the container gets copies of them on
    /// a small size-limited tmpfs of its own instead of the sources themselves, so that nothing
    /// written to them inside reaches the host's storage (docs/networking.md). Filled in by
    /// [`crate::Container::create`] for the files it generates.
    #[serde(default)]
    pub own_files: Vec<PathBuf>,
    /// A copy-on-write root (`gocker run`): an overlayfs of read-only lower directories under an
    /// upper directory in the container's state directory (a tmpfs of its own for `--rm`), so
    /// that no run writes into its rootfs or image (docs/storage-roots.md). `None`: `root.path` itself is the container's
    /// root, writable unless `root.readonly`, as runc has it (OCI bundles).
    #[serde(default)]
    pub cow: Option<CowRoot>,
    /// `gocker run`'s namespaces joined by path (`--pid container:NAME`, ...): the descriptors
    /// [`crate::Container::create`] opened and ring1 inherits ([`crate::joins::open_for_run`]).
    /// Never saved: a saved configuration is joined afresh from its paths.
    #[serde(skip)]
    pub(crate) joined: JoinedFds,
    /// `--init`: PID 1 of the container is Gocker's own small init (the static `gocker-init`,
    /// executed from a sealed memfd, [`crate::init`]), which runs the command as its child,
    /// forwards signals to it and reaps every orphan.
    #[serde(default)]
    pub init: bool,
    /// What the detached monitor does beside waiting: the restart policy and the health check
    /// ([`crate::detach`]).
    #[serde(default)]
    pub monitor: MonitorOptions,
}

/// The detached monitor's duties (`gocker run -d --restart`, `--health-*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorOptions {
    #[serde(default)]
    pub restart: crate::restart::RestartPolicy,
    #[serde(default)]
    pub health: Option<crate::health::Healthcheck>,
}

/// Descriptor numbers of namespaces that ring1 joins: the user namespace first, then `others`
/// (network, IPC, UTS, cgroup: namespaces that user namespace owns), then it unshares the
/// container's new namespaces, then the PID namespace (for ring2). In OCI mode they come from
/// [`OciMode`] (user and PID only: the creating process joins the others itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct JoinedFds {
    pub user: Option<InheritedFd>,
    pub pid: Option<InheritedFd>,
    pub others: Vec<(gocker_ns::Namespace, InheritedFd)>,
}

/// The layers of a copy-on-write root ([`ContainerConfig::cow`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CowRoot {
    /// The read-only lower directories, highest first and lowest last (overlayfs's `lowerdir`
    /// order): an image's layers. Empty: `root.path` alone. `root.path` is where the root is
    /// attached in the container's mount namespace (it must exist; nothing is written to it).
    #[serde(default)]
    pub lowers: Vec<PathBuf>,
    /// The directory holding `upper` and `work`: filled in by [`crate::Container::create`] with
    /// the container's state directory ([`crate::StateStore::root_dir`]).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// The upper layer goes with the container (`--rm`): on a tmpfs private to the container's
    /// mount namespace instead of in [`CowRoot::dir`]. Set by [`crate::Container::create`].
    #[serde(default)]
    pub ephemeral: bool,
    /// ring0 mounts the overlay (as host root: the upper directory is in the root-only store,
    /// or the lowers are an image's, which the container's root cannot reach) and ring2 attaches
    /// it; otherwise ring2 mounts it in the container's user namespace, over ring0's idmapped
    /// clone of `root.path` when there is one. Set by [`crate::Container::create`].
    #[serde(default)]
    pub by_ring0: bool,
}

impl CowRoot {
    /// The lower layers: [`CowRoot::lowers`], or `rootfs` alone.
    pub fn layers(&self, rootfs: &std::path::Path) -> Vec<PathBuf> {
        if self.lowers.is_empty() {
            vec![rootfs.to_owned()]
        } else {
            self.lowers.clone()
        }
    }

    /// The mode of the upper directory, the root inode of the container's `/`: that of the top
    /// lower layer's root.
    pub(crate) fn upper_mode(&self, rootfs: &std::path::Path) -> Result<u32> {
        use std::os::unix::fs::MetadataExt;
        let layers = self.layers(rootfs);
        let top = layers.first().map(|p| p.as_path()).unwrap_or(rootfs);
        std::fs::metadata(top)
            .map(|m| m.mode() & 0o7777)
            .map_err(|e| RuntimeError::Rootfs {
                path: top.to_owned(),
                reason: e.to_string(),
            })
    }

    /// The upper and work directories, once [`CowRoot::dir`] is set.
    pub fn upper_work(&self) -> Option<(PathBuf, PathBuf)> {
        self.dir.as_ref().map(|d| (d.join("upper"), d.join("work")))
    }
}

/// How a container differs when driven by an OCI runtime CLI (`gocker-oci create`), like runc:
/// the creating process exits after `create`, so ring1 forks ring2 as a sibling (`CLONE_PARENT`:
/// ring2 becomes a child of the creating process, reparented to the caller's subreaper when that
/// exits) and then exits itself; ring2 waits at a FIFO start barrier instead of a ring0 message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciMode {
    /// Descriptor number (inherited across ring1's and ring2's forks, opened `O_PATH` by ring0)
    /// of the state directory's `exec.fifo`. ring2 opens it for writing through
    /// `/proc/self/fd/N` (blocks until `start` opens it for reading) and writes one byte.
    pub exec_fifo_fd: InheritedFd,
    /// `--preserve-fds N`: descriptors 3..3+N of the creating process reach the payload.
    #[serde(default)]
    pub preserve_fds: u32,
    /// Descriptor number (inherited like `exec_fifo_fd`) of a unix stream connected by ring0 to
    /// `linux.seccomp.listenerPath`: ring2 sends the seccomp listener there once it has loaded the
    /// filter, with the container process state (runtime spec, "seccomp agent").
    #[serde(default)]
    pub seccomp_agent_fd: Option<InheritedFd>,
    /// Descriptor numbers (inherited like `exec_fifo_fd`) of a user and a PID namespace that ring1
    /// joins (`linux.namespaces` by path, see [`crate::joins`]). With a user namespace, ring1 is
    /// forked into no new namespace, joins it and then unshares the container's other ones.
    #[serde(default)]
    pub userns_fd: Option<InheritedFd>,
    #[serde(default)]
    pub pidns_fd: Option<InheritedFd>,
    /// The namespaces joined by path that are not the runtime's own (`NamespaceSet::bits`, found
    /// by `sysctl::foreign_joins` before they are joined): their namespaced `linux.sysctl` keys are
    /// accepted, and written by ring0.
    #[serde(default)]
    pub foreign_joins: u64,
}

/// A descriptor that ring0 opens for the rings and that they inherit under the same number: across
/// their forks, and across `execve` in the exec spawn mode (it is serialized with the
/// configuration). A number, not an owner: the process that opened it keeps the `OwnedFd` until
/// the rings have used it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InheritedFd(std::os::fd::RawFd);

impl InheritedFd {
    /// The number under which the rings will find `fd`.
    pub fn of(fd: &impl std::os::fd::AsRawFd) -> InheritedFd {
        InheritedFd(fd.as_raw_fd())
    }

    pub fn raw(self) -> std::os::fd::RawFd {
        self.0
    }

    /// The inherited descriptor, borrowed.
    ///
    /// # Safety
    /// The descriptor must be open in this process (inherited, not yet closed) while the borrow
    /// lives.
    pub unsafe fn borrow<'a>(self) -> std::os::fd::BorrowedFd<'a> {
        // SAFETY: the caller's contract above.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.0) }
    }

    /// Takes ownership of this process's copy (to close it).
    ///
    /// # Safety
    /// The descriptor must be open in this process and used by nothing else afterwards.
    pub unsafe fn take(self) -> std::os::fd::OwnedFd {
        // SAFETY: the caller's contract above.
        unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(self.0) }
    }
}

impl ContainerConfig {
    pub fn new(id: impl Into<String>, spec: Spec, idmaps: IdMaps) -> Self {
        ContainerConfig {
            id: id.into(),
            spec,
            idmaps,
            root_mode: RootMode::Rootfs,
            stdin: false,
            tty: false,
            idmap_rootfs: true,
            rootful: rustix::process::geteuid().is_root(),
            stage_timeout: Duration::from_secs(10),
            forward_signals: false,
            spawn: SpawnMode::Fork,
            seccomp: None,
            oci: None,
            network: gocker_net::NetworkOptions::default(),
            stop_timeout: Some(Duration::from_secs(10)),
            workspace: Default::default(),
            own_files: Vec::new(),
            cow: None,
            init: false,
            monitor: MonitorOptions::default(),
            joined: JoinedFds::default(),
        }
    }

    /// The namespaces ring1 joins: OCI mode's, or those of `gocker run` ([`JoinedFds`]).
    pub(crate) fn joined_fds(&self) -> JoinedFds {
        match &self.oci {
            Some(o) => JoinedFds {
                user: o.userns_fd,
                pid: o.pidns_fd,
                others: Vec::new(),
            },
            None => self.joined.clone(),
        }
    }

    /// The rootfs path from the spec.
    pub fn rootfs(&self) -> Result<PathBuf> {
        let root = self
            .spec
            .root()
            .as_ref()
            .ok_or_else(|| RuntimeError::Config("spec has no root".into()))?;
        let p = root.path().clone();
        if !p.is_absolute() {
            return Err(RuntimeError::Config(format!(
                "root.path {} must be absolute",
                p.display()
            )));
        }
        Ok(p)
    }

    pub fn readonly_root(&self) -> bool {
        self.spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false)
    }

    /// The namespaces from the spec, split into ring1's (everything but pid, always with user and
    /// mount) and ring2's (pid when asked for, and always a mount namespace of its own).
    pub(crate) fn namespaces(&self) -> (NamespaceSet, NamespaceSet) {
        let all: NamespaceSet = self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
            .filter(|n| n.path().is_none())
            .map(|n| Namespace::from(n.typ()))
            .collect();
        let ring1 = all
            .without(Namespace::Pid)
            .with(Namespace::User)
            .with(Namespace::Mount);
        let mut ring2 = NamespaceSet::EMPTY.with(Namespace::Mount);
        if all.contains(Namespace::Pid) {
            ring2 = ring2.with(Namespace::Pid);
        }
        (ring1, ring2)
    }
}

/// Who may use `lift` in a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LiftPolicy {
    /// No lift: neither the binary nor the socket is provided (the default for plain containers).
    #[default]
    Off,
    /// Any process of the container may lift (the default in workspace mode).
    On,
    /// Only callers whose uid in the container is 0; others get a clear refusal.
    Root,
}

impl std::str::FromStr for LiftPolicy {
    type Err = RuntimeError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "off" | "false" | "0" => Ok(LiftPolicy::Off),
            "on" | "true" | "1" => Ok(LiftPolicy::On),
            "root" => Ok(LiftPolicy::Root),
            other => Err(RuntimeError::Config(format!(
                "lift {other:?}: expected off, on or root"
            ))),
        }
    }
}

/// What the rings do differently in workspace mode (travels in [`ContainerConfig`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RingOptions {
    pub lift: LiftPolicy,
    /// Run by ring1 (root of the user namespace, all its capabilities, no seccomp filter) joined to
    /// ring2's mount and network namespaces, after ring2 is prepared and before the payload starts.
    /// A non-zero exit fails the start.
    pub enclave: Option<Vec<String>>,
    /// After a failure (payload exit status non-zero, or a ring error), ring1 keeps its namespaces
    /// this long before reporting, so that one can `gocker nsenter --target <ring1 pid>`.
    pub debug_sleep: Option<Duration>,
    /// Give the container its own `/etc/hosts` (hostname on 127.0.0.1) and `/etc/resolv.conf`
    /// (a copy of the host's), editable inside, unless the spec already mounts them.
    pub own_etc_files: bool,
    /// Set by ring0 when the container has its own cgroup: ring2 enters a cgroup namespace rooted
    /// at it, and `/sys/fs/cgroup` is a cgroup2 mount of that view.
    #[serde(default)]
    pub private_cgroup: bool,
    /// The last component of that cgroup's path (the id, or the leaf of `linux.cgroupsPath`):
    /// ring2 waits until its own cgroup ends in it.
    #[serde(default)]
    pub cgroup_leaf: Option<String>,
}
