//! The namespace-sharing flags of `run` and `create`, as docker's: `--pid`, `--ipc` and `--uts`
//! `host|container:NAME`, `--network container:NAME`, and `--userns host|keep-id`
//! (docs/cli.md, "Sharing namespaces").
//!
//! They only change the OCI spec. A namespace left out of `linux.namespaces` is the caller's
//! (`host`); one with a path is joined: `/proc/PID/ns/KIND` of the other container's payload,
//! which the runtime joins together with the user namespace that owns it (gocker_runtime's
//! `joins`), so a container can only share the namespaces of a container of the same user. The
//! dependency is recorded in the annotation [`JOINS`] (`KIND=ID,...`), from which `gocker start`
//! resolves the paths again ([`rejoin`]): a pid recorded in a saved spec is never trusted.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use gocker_idmap::{IdMap, IdMaps};
use gocker_runtime::state::{ContainerState, StateStore};
use gocker_runtime::{ContainerConfig, Status};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, Spec};

use crate::cli::RunArgs;
use crate::failure::{usage, Failure};

/// The annotation that records which container's namespaces a container joins: `pid=ID,net=ID`.
pub(crate) const JOINS: &str = "io.gocker.joins";

/// The annotation that records `--userns` (`host`, `keep-id`), for `inspect`'s UsernsMode.
pub(crate) const USERNS: &str = "io.gocker.userns";

/// What one of `--pid`, `--ipc`, `--uts`, `--network` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Share {
    /// A namespace of its own (the default; `--ipc private|shareable`).
    Own,
    /// The caller's namespace (`host`).
    Host,
    /// The namespace of the running container NAME (`container:NAME`).
    Container(String),
    /// `--ipc none`: an IPC namespace of its own without `/dev/shm`.
    NoShm,
}

/// The kinds, each with its flag and its name in [`JOINS`] and in `/proc/PID/ns`.
const KINDS: [(LinuxNamespaceType, &str, &str); 4] = [
    (LinuxNamespaceType::Pid, "--pid", "pid"),
    (LinuxNamespaceType::Ipc, "--ipc", "ipc"),
    (LinuxNamespaceType::Uts, "--uts", "uts"),
    (LinuxNamespaceType::Network, "--network", "net"),
];

/// Parses one flag's value. `--ipc` also takes `private`, `shareable` (both: its own namespace,
/// which other containers may join, as every gocker IPC namespace) and `none`.
pub(crate) fn parse(flag: &str, v: &str) -> Result<Share, Failure> {
    if let Some(name) = v.strip_prefix("container:") {
        if name.is_empty() {
            return Err(usage(format!(
                "{flag} {v:?}: a container name or id is needed after `container:`"
            )));
        }
        if !crate::names::valid_name(name) {
            return Err(usage(format!(
                "{flag} {v:?}: {name:?} is not a container name or id"
            )));
        }
        return Ok(Share::Container(name.to_owned()));
    }
    match (flag, v) {
        (_, "host") => Ok(Share::Host),
        ("--ipc", "private" | "shareable") => Ok(Share::Own),
        ("--ipc", "none") => Ok(Share::NoShm),
        ("--ipc", _) => Err(usage(format!(
            "--ipc {v:?}: expected private, shareable, none, host or container:NAME"
        ))),
        _ => Err(usage(format!(
            "{flag} {v:?}: expected host or container:NAME"
        ))),
    }
}

/// A running container whose namespaces are joined.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub id: String,
    pub name: String,
    /// The payload's host pid: `/proc/PID/ns/*`.
    pub pid: i32,
    /// Its state directory (its `hosts` and `resolv.conf`).
    pub dir: PathBuf,
    /// Its hostname, from its saved spec.
    pub hostname: Option<String>,
}

/// The running container `name` of the caller's own state store, for `flag container:NAME`:
/// it must exist, run, and have a user namespace created by the caller's uid.
pub(crate) fn source(store: &StateStore, flag: &str, name: &str) -> Result<Source, Failure> {
    let what = format!("{flag} container:{name}");
    let st: ContainerState = store
        .lookup(name)
        .map_err(|_| usage(format!("{what}: no such container")))?;
    if st.status != Status::Running || !StateStore::monitor_alive(&st) {
        return Err(usage(format!(
            "{what}: container {} is not running (start it first)",
            st.name
        )));
    }
    let pid = st
        .pid
        .filter(|p| *p > 0)
        .ok_or_else(|| usage(format!("{what}: container {} has no process", st.name)))?;
    let userns = gocker_ns::open(pid, gocker_ns::Namespace::User)
        .map_err(|e| usage(format!("{what}: {e}")))?;
    let owner = gocker_ns::owner_uid(userns.as_fd(), &format!("/proc/{pid}/ns/user"))
        .map_err(|e| usage(format!("{what}: {e}")))?;
    let me = rustix::process::geteuid().as_raw();
    if owner != me {
        return Err(usage(format!(
            "{what}: its user namespace belongs to uid {owner}, not to you (uid {me}): only the \
             namespaces of your own containers can be joined"
        )));
    }
    let hostname = store
        .load_config(&st.id)
        .ok()
        .and_then(|c| c.spec.hostname().clone());
    Ok(Source {
        dir: store.container_dir(&st.id),
        id: st.id,
        name: st.name,
        pid,
        hostname,
    })
}

/// The namespace flags of one run, parsed and their containers resolved.
#[derive(Debug, Clone)]
pub(crate) struct Shares {
    /// Per kind of [`KINDS`]: what is asked, and the container when it is one.
    kinds: Vec<(LinuxNamespaceType, Share, Option<Source>)>,
    pub userns: Userns,
}

/// `--userns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Userns {
    /// gocker's default maps (a range of its own as root, your uid and /etc/subuid range rootless).
    Default,
    /// Root only: container ids are host ids (an identity map, still in a user namespace).
    Host,
    /// Rootless only: your uid and gid keep their numbers inside, and the command runs as them.
    KeepId,
}

impl Shares {
    /// From the flags; resolves each `container:NAME` in the caller's store and refuses the
    /// combinations docker refuses.
    pub(crate) fn from_args(a: &RunArgs) -> Result<Shares, Failure> {
        let flags = [&a.pid, &a.ipc, &a.uts, &a.network];
        let mut kinds = Vec::new();
        let mut store = None;
        for ((typ, flag, _), v) in KINDS.iter().zip(flags) {
            let share = match v.as_deref() {
                None => Share::Own,
                // --network's other modes are gocker-net's (netflags).
                Some(v) if *flag == "--network" && !v.starts_with("container:") => Share::Own,
                Some(v) => parse(flag, v)?,
            };
            let src = match &share {
                Share::Container(name) => {
                    if store.is_none() {
                        store = Some(StateStore::open(StateStore::default_root())?);
                    }
                    let s = store.as_ref().expect("opened above");
                    s.collect_stale();
                    Some(source(s, flag, name)?)
                }
                _ => None,
            };
            kinds.push((*typ, share, src));
        }
        let userns = match a.userns.as_deref() {
            None | Some("") => Userns::Default,
            Some("host") => Userns::Host,
            Some("keep-id") => Userns::KeepId,
            Some(v) => return Err(usage(format!("--userns {v:?}: expected host or keep-id"))),
        };
        let s = Shares { kinds, userns };
        s.check(a)?;
        Ok(s)
    }

    fn get(&self, typ: LinuxNamespaceType) -> &Share {
        &self
            .kinds
            .iter()
            .find(|k| k.0 == typ)
            .expect("every kind")
            .1
    }

    fn sources(&self) -> impl Iterator<Item = (&str, &Source)> {
        self.kinds.iter().filter_map(|(typ, _, src)| {
            let key = KINDS.iter().find(|k| k.0 == *typ).expect("a kind").2;
            src.as_ref().map(|s| (key, s))
        })
    }

    fn check(&self, a: &RunArgs) -> Result<(), Failure> {
        let uts = self.get(LinuxNamespaceType::Uts);
        if a.hostname.is_some() && *uts != Share::Own {
            return Err(usage(format!(
                "--hostname cannot be combined with --uts {}: the container has no UTS namespace \
                 of its own to set it in",
                a.uts.as_deref().unwrap_or_default()
            )));
        }
        if let Share::Container(n) = self.get(LinuxNamespaceType::Network) {
            let conflict = [
                (a.hostname.is_some(), "--hostname"),
                (!a.publish.is_empty(), "--publish"),
                (a.publish_all, "--publish-all"),
                (!a.dns.is_empty(), "--dns"),
                (!a.add_host.is_empty(), "--add-host"),
            ];
            if let Some((_, flag)) = conflict.iter().find(|c| c.0) {
                return Err(usage(format!(
                    "{flag} cannot be combined with --network container:{n}: the network, its \
                     ports, hostname and /etc files are {n}'s"
                )));
            }
        }
        if let (Some((key, src)), Some(remap)) = (self.sources().next(), &a.userns_remap) {
            return Err(usage(format!(
                "--userns-remap {remap} cannot be combined with --{} container:{}: the container \
                 shares {}'s user namespace and its id maps",
                flag_of(key),
                src.name,
                src.name
            )));
        }
        if self.userns != Userns::Default {
            if let Some((key, s)) = self.sources().next() {
                return Err(usage(format!(
                    "--userns cannot be combined with --{} container:{}: the container then \
                     shares {}'s user namespace",
                    flag_of(key),
                    s.name,
                    s.name
                )));
            }
            if a.userns_remap.is_some() {
                return Err(usage(
                    "--userns cannot be combined with --userns-remap: each chooses the id maps",
                ));
            }
        }
        Ok(())
    }

    /// The hostname the container sees when it is not `--hostname`'s or its own id: the host's
    /// with `--uts host`, the other container's with `--uts` or `--network container:NAME`.
    pub(crate) fn hostname(&self) -> Option<String> {
        let from = |typ| match self.kinds.iter().find(|k| k.0 == typ) {
            Some((_, Share::Container(_), Some(s))) => s.hostname.clone(),
            _ => None,
        };
        match self.get(LinuxNamespaceType::Uts) {
            Share::Host => Some(
                rustix::system::uname()
                    .nodename()
                    .to_string_lossy()
                    .into_owned(),
            ),
            Share::Container(_) => from(LinuxNamespaceType::Uts),
            _ => from(LinuxNamespaceType::Network),
        }
    }

    /// Whether the container has a UTS namespace of its own (where its hostname is set).
    pub(crate) fn own_uts(&self) -> bool {
        *self.get(LinuxNamespaceType::Uts) == Share::Own
    }

    /// Carries the flags out on the spec: `host` leaves the namespace out, `container:NAME`
    /// gives it NAME's path (and records NAME in [`JOINS`]), `--ipc none` drops `/dev/shm`.
    pub(crate) fn apply(&self, spec: &mut Spec) -> Result<(), Failure> {
        let mut namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        let mut joins = Vec::new();
        for (typ, share, src) in &self.kinds {
            match (share, src) {
                (Share::Host, _) => {
                    namespaces.retain(|n| n.typ() != *typ);
                    if *typ == LinuxNamespaceType::Ipc && !host_has_mqueue() {
                        // The runtime binds the host's /dev/mqueue (a new instance for the host's
                        // IPC namespace cannot be made from a user namespace): without one, none.
                        let mut mounts = spec.mounts().clone().unwrap_or_default();
                        mounts.retain(|m| m.typ().as_deref() != Some("mqueue"));
                        spec.set_mounts(Some(mounts));
                    }
                }
                (Share::Container(_), Some(s)) => {
                    let key = KINDS.iter().find(|k| k.0 == *typ).expect("a kind").2;
                    set_path(&mut namespaces, *typ, proc_ns(s.pid, key))?;
                    joins.push(format!("{key}={}", s.id));
                }
                (Share::NoShm, _) => {
                    let mut mounts = spec.mounts().clone().unwrap_or_default();
                    mounts.retain(|m| m.destination() != Path::new("/dev/shm"));
                    spec.set_mounts(Some(mounts));
                }
                _ => {}
            }
        }
        if let Some(linux) = spec.linux_mut().as_mut() {
            linux.set_namespaces(Some(namespaces));
        }
        let mut ann = spec.annotations().clone().unwrap_or_default();
        if joins.is_empty() {
            ann.remove(JOINS);
        } else {
            ann.insert(JOINS.into(), joins.join(","));
        }
        match self.userns {
            Userns::Default => ann.remove(USERNS),
            Userns::Host => ann.insert(USERNS.into(), "host".into()),
            Userns::KeepId => ann.insert(USERNS.into(), "keep-id".into()),
        };
        spec.set_annotations(Some(ann));
        Ok(())
    }

    /// `--network container:NAME`: the container gets copies of NAME's `/etc/hosts` and
    /// `/etc/resolv.conf` (as its own files: ring1 copies them, nothing written reaches NAME's).
    pub(crate) fn network_files(&self, cfg: &mut ContainerConfig) {
        let Some((_, _, Some(src))) = self
            .kinds
            .iter()
            .find(|k| k.0 == LinuxNamespaceType::Network)
        else {
            return;
        };
        add_network_files(cfg, &src.dir);
    }

    /// The id maps `--userns` asks for (`None`: gocker's default ones).
    pub(crate) fn idmaps(&self, root: bool) -> Result<Option<IdMaps>, Failure> {
        match (self.userns, root) {
            (Userns::Default, _) => Ok(None),
            (Userns::Host, true) => Ok(Some(identity())),
            (Userns::Host, false) => Err(usage(
                "--userns host: as an unprivileged user only your own ids exist on the host, and \
                 they are already the container's (its root is your uid, by default); use \
                 --userns keep-id to run as your own uid inside",
            )),
            (Userns::KeepId, true) => Err(usage(
                "--userns keep-id is for unprivileged users (it keeps your uid inside); as root, \
                 --userns host makes container ids host ids",
            )),
            (Userns::KeepId, false) => {
                let uid = rustix::process::geteuid().as_raw();
                let gid = rustix::process::getegid().as_raw();
                let base = IdMaps::rootless(uid, gid, &crate::host::user_name(uid))
                    .map_err(|e| usage(format!("--userns keep-id: {e}")))?;
                keep_id(&base, uid, gid).map(Some).ok_or_else(|| {
                    usage(format!(
                        "--userns keep-id needs a subordinate id range for uid {uid} in \
                         /etc/subuid and /etc/subgid (and newuidmap/newgidmap): container root \
                         must map to an id other than yours"
                    ))
                })
            }
        }
    }
}

/// Whether the host has an mqueue filesystem at `/dev/mqueue` (`f_type` MQUEUE_MAGIC).
fn host_has_mqueue() -> bool {
    const MQUEUE_MAGIC: u64 = 0x1980_0202;
    rustix::fs::statfs("/dev/mqueue").is_ok_and(|s| s.f_type as u64 == MQUEUE_MAGIC)
}

/// The flag (without `--`) of a kind's key in [`JOINS`].
fn flag_of(key: &str) -> &'static str {
    KINDS
        .iter()
        .find(|k| k.2 == key)
        .map(|k| &k.1[2..])
        .unwrap_or("network")
}

fn proc_ns(pid: i32, key: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/{key}"))
}

fn set_path(
    namespaces: &mut Vec<LinuxNamespace>,
    typ: LinuxNamespaceType,
    path: PathBuf,
) -> Result<(), Failure> {
    namespaces.retain(|n| n.typ() != typ);
    namespaces.push(
        LinuxNamespaceBuilder::default()
            .typ(typ)
            .path(path)
            .build()
            .map_err(|e| usage(e.to_string()))?,
    );
    Ok(())
}

fn add_network_files(cfg: &mut ContainerConfig, dir: &Path) {
    let mut mounts = cfg.spec.mounts().clone().unwrap_or_default();
    for (file, dest) in [("hosts", "/etc/hosts"), ("resolv.conf", "/etc/resolv.conf")] {
        let src = dir.join(file);
        if !src.is_file() || mounts.iter().any(|m| m.destination() == Path::new(dest)) {
            continue;
        }
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination(dest)
                .typ("bind")
                .source(src)
                .options(vec!["bind".into(), "ro".into()])
                .build()
                .expect("all fields set"),
        );
        cfg.own_files.push(dest.into());
    }
    cfg.spec.set_mounts(Some(mounts));
}

/// `--userns host` as root: every id maps to itself.
fn identity() -> IdMaps {
    let all = vec![IdMap {
        inside: 0,
        outside: 0,
        count: u32::MAX,
    }];
    IdMaps {
        uids: all.clone(),
        gids: all,
        method: gocker_idmap::WriteMethod::Direct,
        deny_setgroups: false,
    }
}

/// `--userns keep-id`: from the rootless maps (`0` → your id, `1..` → the subordinate ranges),
/// maps that keep your id: `0..ID` → the first subordinate ids, `ID` → yours, the rest after it.
/// `None` without subordinate ranges (container root would have no id of its own).
fn keep_id(base: &IdMaps, uid: u32, gid: u32) -> Option<IdMaps> {
    fn one(maps: &[IdMap], id: u32) -> Option<Vec<IdMap>> {
        // The subordinate ids, in container order.
        let sub: Vec<IdMap> = maps.iter().filter(|m| m.inside > 0).copied().collect();
        let total: u64 = sub.iter().map(|m| u64::from(m.count)).sum();
        if total == 0 {
            return None;
        }
        let mut out = vec![IdMap {
            inside: id,
            outside: id,
            count: 1,
        }];
        // Inside ids 0.., skipping `id`, in the order of the subordinate ranges.
        let id = u64::from(id);
        let mut next: u64 = if id == 0 { 1 } else { 0 };
        for m in sub {
            let (mut outside, mut left) = (u64::from(m.outside), u64::from(m.count));
            while left > 0 && next < u64::from(u32::MAX) {
                let room = if next < id {
                    id - next
                } else {
                    u64::from(u32::MAX) - next
                };
                let n = left.min(room);
                out.push(IdMap {
                    inside: next as u32,
                    outside: outside as u32,
                    count: n as u32,
                });
                next += n;
                outside += n;
                left -= n;
                if next == id {
                    next += 1;
                }
            }
        }
        Some(out)
    }
    Some(IdMaps {
        uids: one(&base.uids, uid)?,
        gids: one(&base.gids, gid)?,
        method: base.method,
        deny_setgroups: base.deny_setgroups,
    })
}

/// docker's `HostConfig` modes for `inspect`, from a saved spec: `PidMode`, `IpcMode`, `UTSMode`
/// (`""`/`private` for its own namespace, `host`, `container:ID`), `NetworkMode` (`container:ID`,
/// `host`, else `network`: gocker's mode) and `UsernsMode` (`""`, `host`, `keep-id`).
pub(crate) fn host_config(spec: &Spec, network: &str) -> Vec<(&'static str, String)> {
    let ann = spec.annotations().clone().unwrap_or_default();
    let joined: Vec<(&str, &str)> = ann
        .get(JOINS)
        .map(|j| j.split(',').filter_map(|e| e.split_once('=')).collect())
        .unwrap_or_default();
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let mode = |typ: LinuxNamespaceType, key: &str, own: &str| match namespaces
        .iter()
        .find(|n| n.typ() == typ)
    {
        None => "host".to_owned(),
        Some(n) if n.path().is_some() => joined
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, id)| format!("container:{id}"))
            .unwrap_or_else(|| "container:".into()),
        Some(_) => own.to_owned(),
    };
    let ipc_own = if spec
        .mounts()
        .iter()
        .flatten()
        .any(|m| m.destination() == Path::new("/dev/shm"))
    {
        "private"
    } else {
        "none"
    };
    vec![
        ("PidMode", mode(LinuxNamespaceType::Pid, "pid", "")),
        ("IpcMode", mode(LinuxNamespaceType::Ipc, "ipc", ipc_own)),
        ("UTSMode", mode(LinuxNamespaceType::Uts, "uts", "")),
        (
            "NetworkMode",
            mode(LinuxNamespaceType::Network, "net", network),
        ),
        ("UsernsMode", ann.get(USERNS).cloned().unwrap_or_default()),
    ]
}

/// `gocker start`: the paths of a saved spec's joined namespaces resolved again from [`JOINS`]
/// (the containers must be running now, as docker's start requires), and the copies of the
/// network container's files refreshed.
pub(crate) fn rejoin(store: &StateStore, cfg: &mut ContainerConfig) -> Result<(), Failure> {
    let Some(joins) = cfg
        .spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(JOINS))
        .cloned()
    else {
        return Ok(());
    };
    let mut namespaces = cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for entry in joins.split(',').filter(|e| !e.is_empty()) {
        let (key, id) = entry
            .split_once('=')
            .ok_or_else(|| usage(format!("annotation {JOINS}: {entry:?} is not KIND=ID")))?;
        let (typ, flag, _) = KINDS
            .iter()
            .find(|k| k.2 == key)
            .ok_or_else(|| usage(format!("annotation {JOINS}: unknown kind {key:?}")))?;
        if !crate::names::valid_name(id) {
            return Err(usage(format!("annotation {JOINS}: {id:?} is not an id")));
        }
        let src = source(store, flag, id)?;
        set_path(&mut namespaces, *typ, proc_ns(src.pid, key))?;
        if *typ == LinuxNamespaceType::Network {
            add_network_files(cfg, &src.dir);
        }
    }
    if let Some(linux) = cfg.spec.linux_mut().as_mut() {
        linux.set_namespaces(Some(namespaces));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(inside: u32, outside: u32, count: u32) -> IdMap {
        IdMap {
            inside,
            outside,
            count,
        }
    }

    #[test]
    fn values_are_parsed_as_docker_names_them() {
        assert_eq!(parse("--pid", "host").ok(), Some(Share::Host));
        assert_eq!(
            parse("--pid", "container:web").ok(),
            Some(Share::Container("web".into()))
        );
        assert_eq!(parse("--ipc", "shareable").ok(), Some(Share::Own));
        assert_eq!(parse("--ipc", "private").ok(), Some(Share::Own));
        assert_eq!(parse("--ipc", "none").ok(), Some(Share::NoShm));
        let e = parse("--pid", "container:").expect_err("refused");
        assert!(e.message.contains("--pid") && e.message.contains("after `container:`"));
        assert_eq!(e.code, 125);
        let e = parse("--uts", "container:../x").expect_err("refused");
        assert!(e.message.contains("--uts") && e.message.contains("not a container name"));
        assert!(
            parse("--uts", "private").is_err(),
            "private is --ipc's only"
        );
        assert!(parse("--pid", "").is_err());
    }

    #[test]
    fn keep_id_keeps_the_callers_id_and_maps_root_to_a_subordinate_id() {
        let base = IdMaps {
            uids: vec![m(0, 1000, 1), m(1, 100000, 65536)],
            gids: vec![m(0, 1000, 1), m(1, 100000, 65536)],
            method: gocker_idmap::WriteMethod::Helpers,
            deny_setgroups: false,
        };
        let k = keep_id(&base, 1000, 1000).expect("has ranges");
        assert_eq!(
            k.uids,
            vec![m(1000, 1000, 1), m(0, 100000, 1000), m(1001, 101000, 64536)]
        );
        // Two ranges, the id beyond the first.
        let base = IdMaps {
            uids: vec![m(0, 5, 1), m(1, 100, 3), m(4, 200, 4)],
            gids: vec![m(0, 5, 1), m(1, 100, 3), m(4, 200, 4)],
            ..base
        };
        let k = keep_id(&base, 5, 5).expect("has ranges");
        assert_eq!(
            k.uids,
            vec![m(5, 5, 1), m(0, 100, 3), m(3, 200, 2), m(6, 202, 2)]
        );
        // Without subordinate ids there is no id for container root.
        let single = IdMaps {
            uids: vec![m(0, 1000, 1)],
            gids: vec![m(0, 1000, 1)],
            method: gocker_idmap::WriteMethod::Direct,
            deny_setgroups: true,
        };
        assert!(keep_id(&single, 1000, 1000).is_none());
    }

    #[test]
    fn identity_maps_every_id_to_itself() {
        let i = identity();
        assert_eq!(i.uids, vec![m(0, 0, u32::MAX)]);
        assert_eq!(i.gids, i.uids);
    }
}
