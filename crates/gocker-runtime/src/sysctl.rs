//! The spec's `linux.sysctl`, `process.oomScoreAdj` and `domainname`: applied, or refused with an
//! error that names them, never dropped.
//!
//! Only sysctls that belong to a namespace the container owns are accepted (like runc's
//! validation): IPC ones when it has its own IPC namespace, `net.*` when it has its own network
//! namespace. They are written by ring1, which runs in those namespaces: `/proc/sys/net` and the
//! IPC entries of any procfs show the namespaces of the task that opens them.

use std::collections::HashMap;
use std::path::PathBuf;

use gocker_ns::{Namespace, NamespaceSet};

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

/// Checks each key against the container's namespaces; returns `/proc/sys` paths and values in a stable order.
pub(crate) fn plan(
    sysctl: &HashMap<String, String>,
    own: NamespaceSet,
) -> Result<Vec<(PathBuf, String)>> {
    let mut keys: Vec<&String> = sysctl.keys().collect();
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        let value = &sysctl[key];
        let ipc = IPC_KEYS.contains(&key.as_str()) || key.starts_with("fs.mqueue.");
        let net = key.starts_with("net.");
        let allowed =
            (ipc && own.contains(Namespace::Ipc)) || (net && own.contains(Namespace::Net));
        if !allowed || key.contains("..") || key.contains('/') {
            let why = if ipc || net {
                "the container does not have its own namespace for it"
            } else {
                "not a namespaced sysctl"
            };
            return Err(RuntimeError::Config(format!("linux.sysctl {key:?}: {why}")));
        }
        out.push((
            PathBuf::from("/proc/sys").join(key.replace('.', "/")),
            value.clone(),
        ));
    }
    Ok(out)
}

/// Writes the planned sysctls (in ring1, inside the container's namespaces).
pub(crate) fn apply(planned: &[(PathBuf, String)]) -> Result<()> {
    for (path, value) in planned {
        std::fs::write(path, value).map_err(|e| RuntimeError::Ring {
            stage: "linux.sysctl".into(),
            message: format!("write {value:?} to {}: {e}", path.display()),
        })?;
    }
    Ok(())
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
        )
        .unwrap();
        let paths: Vec<String> = p.iter().map(|(p, _)| p.display().to_string()).collect();
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
        let e = plan(&map(&[("net.ipv4.ip_forward", "1")]), own)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("net.ipv4.ip_forward") && e.contains("own namespace"),
            "{e}"
        );
        let e = plan(&map(&[("vm.swappiness", "1")]), own)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("vm.swappiness") && e.contains("not a namespaced"),
            "{e}"
        );
        let e = plan(&map(&[("kernel.hostname", "x")]), own)
            .unwrap_err()
            .to_string();
        assert!(e.contains("kernel.hostname"), "{e}");
    }
}
