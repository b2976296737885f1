//! `gocker network connect` / `disconnect` (docker's): a running container on a bridge gets a
//! second endpoint on a user-defined network — a veth pair whose host side is a port of that
//! network's bridge and whose container side (`eth1`, `eth2`, ...) is in the container's network
//! namespace, an address leased from that network's IPAM, and an endpoint record that the
//! network's resolver answers for (the container's name and `--alias`es).
//!
//! The lease and the endpoint are owned by the container's own network owner (the process that
//! holds its first lease, its ring0), so that they live exactly as long as the container: its
//! teardown ([`crate::Network::teardown`], via [`release_connected`]) removes them, and after a
//! SIGKILL the stale collection does (the owner is dead). The veth goes with the container's
//! network namespace. The firewall's rules are the network's shared ones, already there: the
//! bridges stay isolated from each other as before.

use std::os::fd::AsFd;
use std::path::Path;

use crate::ipam::{Ipam, Owner};
use crate::networks::{Endpoint, NetworkRecord, Networks};
use crate::{netlink, BridgeOptions, NetError, Result};

/// The host-side veth of container `container_id`'s endpoint on network `net_id`: `gx` + 6 hex
/// digits of the network id + 7 of the container id (15 characters, the kernel's limit; not
/// `gk...`, the names of first endpoints that the stale collection owns).
pub fn connected_veth_name(net_id: &str, container_id: &str) -> String {
    format!(
        "gx{}{}",
        &net_id[..net_id.len().min(6)],
        &container_id[..container_id.len().min(7)]
    )
}

/// The live owner of container `container_id`'s network (its first lease, on the default bridge
/// or a user-defined network), if it has one.
pub fn owner_of(net_dir: &Path, container_id: &str) -> Option<Owner> {
    let mut bridges = vec![BridgeOptions::from_env().unwrap_or_default().name];
    bridges.extend(Networks::new(net_dir).list().into_iter().map(|r| r.bridge));
    bridges.into_iter().find_map(|b| {
        Ipam::new(net_dir.join(b))
            .leases()
            .into_iter()
            .filter_map(|(_, o)| o)
            .find(|o| o.id == container_id && o.alive())
    })
}

/// The container to connect.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// A host pid of a process in the container's network namespace (its payload).
    pub pid: i32,
    pub aliases: Vec<String>,
}

/// Connects `t` to `rec`; returns its new endpoint. Refused when it is connected already (its
/// first network included). Nothing is left behind when a step fails.
pub fn connect(net_dir: &Path, rec: &NetworkRecord, t: &Target) -> Result<Endpoint> {
    let nets = Networks::new(net_dir);
    let already = || NetError::AlreadyConnected {
        container: t.name.to_owned(),
        network: rec.name.clone(),
    };
    let owner = owner_of(net_dir, t.id).ok_or_else(|| NetError::NotOnBridge {
        container: t.name.to_owned(),
    })?;
    let ipam = Ipam::new(net_dir.join(&rec.bridge));
    // Under the network's lock, which `network rm` takes too: it still exists.
    let lock = ipam
        .lock_existing()
        .map_err(|_| NetError::NetworkNotFound(rec.name.clone()))?;
    nets.find(&rec.id)?;
    if nets
        .endpoints(&rec.id)
        .iter()
        .any(|e| e.container_id == t.id)
        || ipam
            .leases()
            .iter()
            .any(|(_, o)| o.as_ref().is_some_and(|o| o.id == t.id && o.alive()))
    {
        return Err(already());
    }
    let ns_path = format!("/proc/{}/ns/net", t.pid);
    let netns = rustix::fs::open(
        &ns_path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| NetError::Io {
        op: "open",
        path: ns_path.clone().into(),
        source: e.into(),
    })?;
    let ip = ipam.allocate_reserving(&lock, &rec.subnet, Some(rec.gateway), &owner)?;
    let host = connected_veth_name(&rec.id, t.id);
    let mut nl = match netlink::Netlink::new() {
        Ok(nl) => nl,
        Err(e) => {
            let _ = ipam.release(ip);
            return Err(e);
        }
    };
    let attached = (|| -> Result<()> {
        let b = rec.bridge_options();
        crate::ensure_bridge(&mut nl, &b)?;
        let mut inner = netlink::Netlink::in_netns(netns.as_fd())?;
        let names: Vec<String> = inner.links()?.into_iter().map(|l| l.name).collect();
        let peer = (1..)
            .map(|i| format!("eth{i}"))
            .find(|n| !names.contains(n))
            .expect("a free name");
        nl.del_link(&host)?;
        nl.add_veth(&host, &peer, netns.as_fd(), b.mtu)?;
        nl.set_master(&host, &b.name, false)?;
        nl.set_up(&host, None)?;
        inner.set_up(&peer, Some(b.mtu))?;
        inner.add_addr(&peer, ip, b.subnet.prefix)?;
        Ok(())
    })();
    if let Err(e) = attached {
        let _ = nl.del_link(&host);
        let _ = ipam.release(ip);
        return Err(e);
    }
    let ep = Endpoint {
        container_id: t.id.to_owned(),
        name: t.name.to_owned(),
        aliases: t.aliases.clone(),
        ip,
        owner,
        link: Some(host.clone()),
    };
    if let Err(e) = nets.add_endpoint(&rec.id, &ep) {
        let _ = nl.del_link(&host);
        let _ = ipam.release(ip);
        return Err(e);
    }
    drop(lock);
    Ok(ep)
}

/// Disconnects container `container_id` (named `name`) from `rec`: deletes its veth there (both
/// ends), its lease and its endpoint, so the network's resolver no longer answers for it. Its
/// first network cannot be disconnected (that one is its default route). `force`: no error when
/// it is not connected (only its leftovers are removed).
pub fn disconnect(
    net_dir: &Path,
    rec: &NetworkRecord,
    container_id: &str,
    name: &str,
    force: bool,
) -> Result<()> {
    let nets = Networks::new(net_dir);
    let ipam = Ipam::new(net_dir.join(&rec.bridge));
    let lock = ipam
        .lock_existing()
        .map_err(|_| NetError::NetworkNotFound(rec.name.clone()))?;
    let ep = nets.endpoint(&rec.id, container_id);
    match &ep {
        Some(e) if e.link.is_none() => {
            return Err(NetError::PrimaryNetwork {
                container: name.to_owned(),
                network: rec.name.clone(),
            })
        }
        None if !force => {
            return Err(NetError::NotConnected {
                container: name.to_owned(),
                network: rec.name.clone(),
            })
        }
        _ => {}
    }
    // The endpoint first: the resolver stops answering before the address goes away.
    nets.remove_endpoint(&rec.id, container_id);
    let host = connected_veth_name(&rec.id, container_id);
    netlink::Netlink::new()?.del_link(&host)?;
    for (ip, o) in ipam.leases() {
        if o.is_some_and(|o| o.id == container_id) || ep.as_ref().is_some_and(|e| e.ip == ip) {
            ipam.release(ip)?;
        }
    }
    drop(lock);
    Ok(())
}

/// At a container's teardown: the endpoints and leases of the networks it was connected to
/// (`network connect`) are removed (the veths go with its network namespace).
pub(crate) fn release_connected(net_dir: &Path, container_id: &str) {
    let nets = Networks::new(net_dir);
    for rec in nets.list() {
        let Some(ep) = nets.endpoint(&rec.id, container_id) else {
            continue;
        };
        if ep.link.is_none() {
            continue;
        }
        let ipam = Ipam::new(net_dir.join(&rec.bridge));
        let Ok(_lock) = ipam.lock_existing() else {
            continue;
        };
        nets.remove_endpoint(&rec.id, container_id);
        if let Err(e) = ipam.release(ep.ip) {
            tracing::warn!("{e}");
        }
    }
}

/// The ids of the user-defined networks where container `container_id` has an endpoint.
pub fn networks_of(net_dir: &Path, container_id: &str) -> Vec<String> {
    let nets = Networks::new(net_dir);
    nets.list()
        .into_iter()
        .filter(|r| nets.endpoint(&r.id, container_id).is_some())
        .map(|r| r.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connected_veths_fit_and_are_not_first_endpoints() {
        let n = connected_veth_name(&"ab".repeat(32), &"cd".repeat(16));
        assert_eq!(n, "gxababab".to_owned() + "cdcdcdc");
        assert_eq!(n.len(), 15, "IFNAMSIZ - 1");
        assert!(!n.starts_with("gk"));
    }

    #[test]
    fn no_owner_without_a_lease() {
        let d = std::env::temp_dir().join(format!("gocker-connect-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        assert!(owner_of(&d, "nope").is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
