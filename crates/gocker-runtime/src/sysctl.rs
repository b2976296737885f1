//! The spec's `linux.sysctl`, `process.oomScoreAdj` and `domainname`: applied, or refused with an
//! error that names them, never dropped.
//!
//! Only sysctls that belong to a namespace of the container are accepted (like runc's
//! validation): IPC ones when it has an IPC namespace of its own, `net.*` when it has a network
//! namespace of its own. A namespace of its own is one that ring1 creates, or one joined by path
//! that is not the runtime's own (podman's network namespace, a pod's; the host's is refused,
//! compared by inode with `/proc/self/ns/*` before the runtime joins anything, as runc does).
//! ring1 writes those of the namespaces it created, from inside them; ring0 writes those of the
//! joined ones, which it joined with the caller's privileges (ring1's user namespace does not own
//! them, so its root may not write their sysctls). `/proc/sys/net` and the IPC entries of any
//! procfs show the namespaces of the task that opens them.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use gocker_ns::{Namespace, NamespaceSet};
use oci_spec::runtime::Spec;

use crate::{Result, RuntimeError};

const IPC_KEYS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// One checked sysctl: its key, `/proc/sys` path and value, and whether it belongs to a namespace
/// joined by path (written by ring0) rather than one ring1 creates (written by ring1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    pub key: String,
    pub path: PathBuf,
    pub value: String,
    pub joined: bool,
}

/// The namespaces of `spec` given by path that are not the calling process's own: each path's
/// namespace compared (device and inode) with `/proc/self/ns/KIND`. Called before the runtime
/// joins them. A path that cannot be opened is left out (joining it reports the error).
pub(crate) fn foreign_joins(spec: &Spec) -> NamespaceSet {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .filter_map(|n| Some((Namespace::from(n.typ()), n.path().as_deref()?)))
        .filter(|(ns, path)| {
            let own = Path::new("/proc/self/ns").join(ns.proc_name());
            match (gocker_ns::open_path(path), gocker_ns::open_path(&own)) {
                (Ok(p), Ok(o)) => !gocker_ns::same_fd(p.as_fd(), o.as_fd()),
                _ => false,
            }
        })
        .map(|(ns, _)| ns)
        .collect()
}

/// [`foreign_joins`] as carried in the configuration (`NamespaceSet::bits`).
pub(crate) fn namespaces_from_bits(bits: u64) -> NamespaceSet {
    Namespace::ALL
        .into_iter()
        .filter(|n| bits & n.clone_flag() != 0)
        .collect()
}

/// Checks each key against the container's namespaces: `own`, the ones ring1 creates, and
/// `joined`, the ones joined by path that are not the runtime's own ([`foreign_joins`]). Returns
/// the writes in a stable order.
pub(crate) fn plan(
    sysctl: &HashMap<String, String>,
    own: NamespaceSet,
    joined: NamespaceSet,
) -> Result<Vec<Planned>> {
    let mut keys: Vec<&String> = sysctl.keys().collect();
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        let value = &sysctl[key];
        let ipc = IPC_KEYS.contains(&key.as_str()) || key.starts_with("fs.mqueue.");
        let net = key.starts_with("net.");
        let ns = match (ipc, net) {
            (true, _) => Some(Namespace::Ipc),
            (_, true) => Some(Namespace::Net),
            _ => None,
        };
        let mine = ns.is_some_and(|n| own.contains(n));
        let joined = !mine && ns.is_some_and(|n| joined.contains(n));
        if !(mine || joined) || key.contains("..") || key.contains('/') {
            let why = if ns.is_some() {
                "the container does not have its own namespace for it (a namespace joined by \
                 path counts unless it is the runtime's own)"
            } else {
                "not a namespaced sysctl"
            };
            return Err(RuntimeError::Config(format!("linux.sysctl {key:?}: {why}")));
        }
        out.push(Planned {
            key: key.clone(),
            path: PathBuf::from("/proc/sys").join(key.replace('.', "/")),
            value: value.clone(),
            joined,
        });
    }
    Ok(out)
}

/// The value ring0 writes for a sysctl of a joined namespace. `net.ipv4.ping_group_range` is a
/// range of gids, which the kernel reads in the writer's user namespace: the container's gids are
/// translated to the host's (`host_gid`), so that the range means what it would mean written from
/// inside the container (as runc, in the container's user namespace, writes it). An empty range
/// (low above high, the kernel's "nobody") is written as given.
pub(crate) fn host_value(
    planned: &Planned,
    host_gid: impl Fn(u32) -> Option<u32>,
) -> Result<String> {
    if planned.key != "net.ipv4.ping_group_range" {
        return Ok(planned.value.clone());
    }
    let bad = |why: &str| {
        RuntimeError::Config(format!(
            "linux.sysctl {:?}: {:?}: {why}",
            planned.key, planned.value
        ))
    };
    let ids: Vec<u32> = planned
        .value
        .split_whitespace()
        .map(|v| v.parse::<u32>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad("expected two gids"))?;
    let [low, high] = ids[..] else {
        return Err(bad("expected two gids"));
    };
    if low > high {
        return Ok(planned.value.clone());
    }
    match (host_gid(low), host_gid(high)) {
        (Some(l), Some(h)) if h.checked_sub(l) == Some(high - low) => Ok(format!("{l}\t{h}")),
        (Some(_), Some(_)) => Err(bad(
            "the range spans more than one of the container's gid mappings",
        )),
        _ => Err(bad("a gid of the range is not mapped in the container")),
    }
}

/// Writes the planned sysctls of the namespaces ring1 created (in ring1, inside them).
pub(crate) fn apply(planned: &[Planned]) -> Result<()> {
    for p in planned.iter().filter(|p| !p.joined) {
        write(&p.path, &p.value)?;
    }
    Ok(())
}

/// Writes the planned sysctls of the joined namespaces (in ring0, which has joined them), with
/// ids translated by [`host_value`].
pub(crate) fn apply_joined(
    planned: &[Planned],
    host_gid: impl Fn(u32) -> Option<u32>,
) -> Result<()> {
    for p in planned.iter().filter(|p| p.joined) {
        write(&p.path, &host_value(p, &host_gid)?)?;
    }
    Ok(())
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|e| RuntimeError::Ring {
        stage: "linux.sysctl".into(),
        message: format!("write {value:?} to {}: {e}", path.display()),
    })
}

/// Sets `process.oomScoreAdj` on the payload (from ring0, which has the caller's privileges: lowering
/// the score needs CAP_SYS_RESOURCE on the host).
pub(crate) fn set_oom_score_adj(pid: i32, value: i32) -> Result<()> {
    if !(-1000..=1000).contains(&value) {
        return Err(RuntimeError::Config(format!(
            "process.oomScoreAdj {value}: must be -1000..1000"
        )));
    }
    let path = format!("/proc/{pid}/oom_score_adj");
    std::fs::write(&path, value.to_string()).map_err(|e| {
        RuntimeError::Config(format!("process.oomScoreAdj {value}: write {path}: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn namespaced_sysctls_map_to_proc_sys() {
        let own = NamespaceSet::EMPTY
            .with(Namespace::Net)
            .with(Namespace::Ipc);
        let p = plan(
            &map(&[
                ("net.ipv4.ip_forward", "1"),
                ("kernel.shmmax", "65536"),
                ("fs.mqueue.msg_max", "20"),
            ]),
            own,
            NamespaceSet::EMPTY,
        )
        .unwrap();
        assert!(p.iter().all(|p| !p.joined));
        let paths: Vec<String> = p.iter().map(|p| p.path.display().to_string()).collect();
        assert_eq!(
            paths,
            [
                "/proc/sys/fs/mqueue/msg_max",
                "/proc/sys/kernel/shmmax",
                "/proc/sys/net/ipv4/ip_forward"
            ]
        );
    }

    #[test]
    fn host_wide_or_unowned_sysctls_are_refused_by_name() {
        let own = NamespaceSet::EMPTY.with(Namespace::Ipc);
        let e = plan(
            &map(&[("net.ipv4.ip_forward", "1")]),
            own,
            NamespaceSet::EMPTY,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("net.ipv4.ip_forward") && e.contains("own namespace"),
            "{e}"
        );
        let e = plan(&map(&[("vm.swappiness", "1")]), own, own)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("vm.swappiness") && e.contains("not a namespaced"),
            "{e}"
        );
        let e = plan(&map(&[("kernel.hostname", "x")]), own, own)
            .unwrap_err()
            .to_string();
        assert!(e.contains("kernel.hostname"), "{e}");
    }

    #[test]
    fn sysctls_of_a_joined_namespace_are_written_by_ring0_with_host_gids() {
        let own = NamespaceSet::EMPTY.with(Namespace::Ipc);
        let joined = NamespaceSet::EMPTY.with(Namespace::Net);
        let p = plan(
            &map(&[("net.ipv4.ping_group_range", "0 0"), ("kernel.shmmni", "9")]),
            own,
            joined,
        )
        .unwrap();
        assert_eq!(p.len(), 2);
        assert!(!p[0].joined && p[0].key == "kernel.shmmni");
        assert!(p[1].joined && p[1].path == Path::new("/proc/sys/net/ipv4/ping_group_range"));
        let host = |g: u32| (g < 65536).then_some(1_000_000_000 + g);
        assert_eq!(host_value(&p[1], host).unwrap(), "1000000000\t1000000000");
        let mut wide = p[1].clone();
        wide.value = "0 2147483647".into();
        let e = host_value(&wide, host).unwrap_err().to_string();
        assert!(e.contains("not mapped"), "{e}");
        wide.value = "1 0".into();
        assert_eq!(host_value(&wide, host).unwrap(), "1 0");
        wide.value = "0".into();
        assert!(host_value(&wide, host).is_err());
        // Any other sysctl is written as given.
        let mut other = p[1].clone();
        other.key = "net.ipv4.ip_forward".into();
        other.value = "1".into();
        assert_eq!(host_value(&other, host).unwrap(), "1");
    }

    #[test]
    fn the_runtimes_own_namespace_is_not_foreign() {
        let mut spec = Spec::default();
        let mut linux = spec.linux().clone().unwrap_or_default();
        let ns = oci_spec::runtime::LinuxNamespaceBuilder::default()
            .typ(oci_spec::runtime::LinuxNamespaceType::Network)
            .path("/proc/self/ns/net")
            .build()
            .unwrap();
        linux.set_namespaces(Some(vec![ns]));
        spec.set_linux(Some(linux));
        assert!(foreign_joins(&spec).is_empty());
        let bits = NamespaceSet::EMPTY
            .with(Namespace::Net)
            .with(Namespace::Ipc)
            .bits();
        assert_eq!(
            namespaces_from_bits(bits),
            NamespaceSet::EMPTY
                .with(Namespace::Net)
                .with(Namespace::Ipc)
        );
    }
}
