//! User-defined networks (`gocker network create`): each one a bridge of its own with its own
//! subnet, recorded under `<net_dir>/networks/<id>/network.json`, with the endpoints of the
//! containers attached to it under `<net_dir>/networks/<id>/endpoints/<container id>` (what the
//! embedded resolver answers from, see [`crate::dns`]). Every change happens under the flock of
//! `<net_dir>/networks/lock`, so concurrent creates of one name give one network.
//!
//! Rootful only: the bridge lives in the host's network namespace (docs/networking.md says why).

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::io_err;
use crate::ipam::{lock_file, Ipam, NetLock, Owner, Subnet};
use crate::{netlink, NetError, Result};

/// The only driver.
pub const DRIVER: &str = "bridge";
/// Names `--network` gives another meaning to (docker refuses `bridge`, `host`, `none` too).
pub const RESERVED: [&str; 6] = ["none", "host", "bridge", "default", "slirp4netns", "pasta"];
/// Where subnets come from when `--subnet` is not given: the /24s of 10.90.0.0/16, clear of the
/// default bridge (10.87.0.0/16), podman (10.88.0.0/16, 10.89.x.0/24), docker (172.17.0.0/16
/// and up) and the Kubernetes ranges.
pub const POOL: Subnet = Subnet {
    addr: Ipv4Addr::new(10, 90, 0, 0),
    prefix: 16,
};
const POOL_PREFIX: u8 = 24;

/// One user-defined network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// 64 hex digits, like docker's network ids.
    pub id: String,
    pub name: String,
    pub driver: String,
    /// The host bridge: `gkbr-` + the first 10 hex digits of the id.
    pub bridge: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    /// No masquerade, no default route, no forwarding to or from other interfaces.
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    /// Unix time (seconds) of `network create`.
    pub created: u64,
    pub mtu: u32,
}

impl NetworkRecord {
    /// The options of a container's bridge on this network.
    pub fn bridge_options(&self) -> crate::BridgeOptions {
        crate::BridgeOptions {
            name: self.bridge.clone(),
            subnet: self.subnet,
            mtu: self.mtu,
            gateway: Some(self.gateway),
        }
    }
}

/// A container attached to a network (written by its monitor, removed at teardown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub container_id: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub ip: Ipv4Addr,
    pub owner: Owner,
    /// The host-side veth of an endpoint added by `network connect` ([`crate::connect`]); none
    /// for the network a container was started on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl Endpoint {
    /// Whether `q` (lowercase, no trailing dot) names this endpoint: its container name, an
    /// alias, or the short (12) or full container id, as docker's embedded DNS answers.
    pub fn answers(&self, q: &str) -> bool {
        self.name.eq_ignore_ascii_case(q)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(q))
            || (q.len() >= 12 && self.container_id.starts_with(q))
    }
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: String,
    pub subnet: Option<Subnet>,
    pub gateway: Option<Ipv4Addr>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    /// The default bridge, whose subnet a user network may not overlap even while it is down.
    pub default_bridge: Option<crate::BridgeOptions>,
    pub mtu: u32,
}

/// docker's rule for network names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn validate_name(n: &str) -> Result<()> {
    let bad = |reason: &str| NetError::Invalid {
        flag: "network name",
        value: n.into(),
        reason: reason.into(),
    };
    let mut chars = n.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return Err(bad("must start with a letter or digit")),
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
        return Err(bad("may contain only letters, digits, '_', '.', '-'"));
    }
    if n.len() > 128 {
        return Err(bad("longer than 128 characters"));
    }
    if RESERVED.contains(&n) {
        return Err(bad(&format!(
            "{n} is a predefined network mode (--network {n}); choose another name"
        )));
    }
    Ok(())
}

/// The network store of one user (root's: `/run/gocker-net/networks`).
#[derive(Debug, Clone)]
pub struct Networks {
    dir: PathBuf,
}

impl Networks {
    pub fn new(net_dir: &Path) -> Networks {
        Networks {
            dir: net_dir.join("networks"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the store's lock.
    pub fn lock(&self) -> Result<NetLock> {
        fs::create_dir_all(&self.dir).map_err(io_err("create", &self.dir))?;
        lock_file(self.dir.join("lock"))
    }

    /// All networks, by name. Unreadable records are skipped.
    pub fn list(&self) -> Vec<NetworkRecord> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut v: Vec<NetworkRecord> = rd
            .flatten()
            .filter_map(|e| fs::read(e.path().join("network.json")).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// A network by name, full id or unique id prefix (docker's lookup order).
    pub fn find(&self, key: &str) -> Result<NetworkRecord> {
        let all = self.list();
        if let Some(n) = all.iter().find(|n| n.name == key || n.id == key) {
            return Ok(n.clone());
        }
        let mut by_prefix = all
            .iter()
            .filter(|n| !key.is_empty() && n.id.starts_with(key));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(n), None) => Ok(n.clone()),
            (Some(_), Some(_)) => Err(NetError::Invalid {
                flag: "network",
                value: key.into(),
                reason: "this id prefix names more than one network".into(),
            }),
            _ => Err(NetError::NetworkNotFound(key.into())),
        }
    }

    fn net_path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    fn endpoints_dir(&self, id: &str) -> PathBuf {
        self.net_path(id).join("endpoints")
    }

    /// Creates the network: checks the name and the subnet (against the other networks, the
    /// default bridge and the host's routes), creates its bridge with the gateway address, and
    /// writes the record. On any failure nothing is left (no bridge, no record).
    pub fn create(
        &self,
        _lock: &NetLock,
        req: &CreateRequest,
        net_dir: &Path,
    ) -> Result<NetworkRecord> {
        validate_name(&req.name)?;
        let existing = self.list();
        if existing.iter().any(|n| n.name == req.name) {
            return Err(NetError::NetworkExists(req.name.clone()));
        }
        let mut nl = netlink::Netlink::new()?;
        let routes: Vec<Subnet> = nl
            .routes_v4()?
            .into_iter()
            .filter(|r| r.prefix > 0)
            .map(|r| Subnet {
                addr: r.dst,
                prefix: r.prefix,
            })
            .collect();
        let mut taken: Vec<(Subnet, String)> = existing
            .iter()
            .map(|n| (n.subnet, format!("network {}", n.name)))
            .collect();
        if let Some(b) = &req.default_bridge {
            taken.push((b.subnet, format!("the default bridge network ({})", b.name)));
        }
        let subnet = match req.subnet {
            Some(s) => {
                let s = Subnet::new(s.addr, s.prefix)?;
                if let Some((o, who)) = taken.iter().find(|(o, _)| o.overlaps(&s)) {
                    return Err(NetError::SubnetOverlap {
                        subnet: s.to_string(),
                        network: req.name.clone(),
                        other_subnet: o.to_string(),
                        other: who.clone(),
                    });
                }
                if let Some(r) = routes.iter().find(|r| r.overlaps(&s)) {
                    return Err(NetError::SubnetOverlap {
                        subnet: s.to_string(),
                        network: req.name.clone(),
                        other_subnet: r.to_string(),
                        other: "a route of the host (ip route)".into(),
                    });
                }
                s
            }
            None => pick_subnet(&taken, &routes).ok_or_else(|| NetError::Invalid {
                flag: "--subnet",
                value: String::new(),
                reason: format!(
                    "every /{POOL_PREFIX} of the pool {POOL} is taken by a network or a host route; give one with --subnet"
                ),
            })?,
        };
        let gateway = match req.gateway {
            Some(g) => {
                if !subnet.contains(g) || g == subnet.addr || g == subnet.broadcast() {
                    return Err(NetError::Invalid {
                        flag: "--gateway",
                        value: g.to_string(),
                        reason: format!("not a host address of the subnet {subnet}"),
                    });
                }
                g
            }
            None => subnet.gateway(),
        };
        let id = random_id();
        let rec = NetworkRecord {
            bridge: format!("gkbr-{}", &id[..10]),
            id,
            name: req.name.clone(),
            driver: DRIVER.into(),
            subnet,
            gateway,
            internal: req.internal,
            labels: req.labels.clone(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            mtu: if req.mtu == 0 { 1500 } else { req.mtu },
        };
        let leases = Ipam::new(net_dir.join(&rec.bridge));
        let made = (|| -> Result<()> {
            // The lease directory first: containers lock it without creating it.
            drop(leases.lock()?);
            nl.add_bridge(&rec.bridge, rec.mtu)?;
            nl.add_addr(&rec.bridge, rec.gateway, rec.subnet.prefix)?;
            nl.set_up(&rec.bridge, None)?;
            let dir = self.net_path(&rec.id);
            fs::create_dir_all(self.endpoints_dir(&rec.id)).map_err(io_err("create", &dir))?;
            let tmp = dir.join("network.json.tmp");
            fs::write(
                &tmp,
                serde_json::to_vec_pretty(&rec).expect("record serialises"),
            )
            .map_err(io_err("write", &tmp))?;
            fs::rename(&tmp, dir.join("network.json")).map_err(io_err("rename", &tmp))
        })();
        if let Err(e) = made {
            let _ = nl.del_link(&rec.bridge);
            let _ = fs::remove_dir_all(leases.dir());
            let _ = fs::remove_dir_all(self.net_path(&rec.id));
            return Err(e);
        }
        Ok(rec)
    }

    /// The endpoints of a network whose monitor still runs.
    pub fn endpoints(&self, id: &str) -> Vec<Endpoint> {
        let Ok(rd) = fs::read_dir(self.endpoints_dir(id)) else {
            return Vec::new();
        };
        let mut v: Vec<Endpoint> = rd
            .flatten()
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<Endpoint>(&b).ok())
            .filter(|e| e.owner.alive())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Records a container's endpoint (atomically: the resolver may read it at any time).
    pub fn add_endpoint(&self, id: &str, ep: &Endpoint) -> Result<()> {
        let dir = self.endpoints_dir(id);
        if !dir.is_dir() {
            return Err(NetError::NetworkNotFound(id.into()));
        }
        let tmp = dir.join(format!(".{}.tmp", ep.container_id));
        fs::write(&tmp, serde_json::to_vec(ep).expect("endpoint serialises"))
            .map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, dir.join(&ep.container_id)).map_err(io_err("rename", &tmp))
    }

    /// The live endpoint of container `container_id` on network `id`.
    pub fn endpoint(&self, id: &str, container_id: &str) -> Option<Endpoint> {
        fs::read(self.endpoints_dir(id).join(container_id))
            .ok()
            .and_then(|b| serde_json::from_slice::<Endpoint>(&b).ok())
            .filter(|e| e.owner.alive())
    }

    pub fn remove_endpoint(&self, id: &str, container_id: &str) {
        let _ = fs::remove_file(self.endpoints_dir(id).join(container_id));
    }

    /// Removes endpoint records whose monitor is dead; returns what was removed.
    pub fn collect_stale(&self) -> Vec<String> {
        let mut removed = Vec::new();
        for n in self.list() {
            let Ok(rd) = fs::read_dir(self.endpoints_dir(&n.id)) else {
                continue;
            };
            for e in rd.flatten() {
                let live = fs::read(e.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Endpoint>(&b).ok())
                    .is_some_and(|ep| ep.owner.alive());
                if !live && fs::remove_file(e.path()).is_ok() {
                    removed.push(format!(
                        "endpoint {} on network {}",
                        e.file_name().to_string_lossy(),
                        n.name
                    ));
                }
            }
        }
        removed
    }

    /// Removes a network: refused while a live container is attached (naming it); deletes the
    /// bridge, the network's lease directory and its record. The caller removes the firewall
    /// rules that named the bridge (see [`crate::refresh_firewall`]).
    pub fn remove(&self, _lock: &NetLock, rec: &NetworkRecord, net_dir: &Path) -> Result<()> {
        // Under the network's own lock, which a starting container holds while it takes its
        // lease: either its lease is seen here, or it finds the network gone.
        let ipam = Ipam::new(net_dir.join(&rec.bridge));
        let held = ipam.lock_existing().ok();
        let starting: Vec<String> = ipam
            .leases()
            .into_iter()
            .filter_map(|(_, o)| o.filter(|o| o.alive()).map(|o| o.id))
            .collect();
        let mut eps = self.endpoints(&rec.id);
        for id in starting {
            if !eps.iter().any(|e| e.container_id == id) {
                eps.push(Endpoint {
                    name: id[..12.min(id.len())].to_owned(),
                    container_id: id,
                    aliases: Vec::new(),
                    ip: Ipv4Addr::UNSPECIFIED,
                    owner: Owner::me(""),
                    link: None,
                });
            }
        }
        if let Some(first) = eps.first() {
            return Err(NetError::NetworkInUse {
                network: rec.name.clone(),
                containers: eps
                    .iter()
                    .map(|e| {
                        format!(
                            "{} ({})",
                            e.name,
                            &e.container_id[..12.min(e.container_id.len())]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                first: first.name.clone(),
            });
        }
        let mut nl = netlink::Netlink::new()?;
        nl.del_link(&rec.bridge)?;
        let dir = self.net_path(&rec.id);
        fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))?;
        let leases = ipam.dir();
        let r = match fs::remove_dir_all(leases) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("remove", leases)(e)),
            _ => Ok(()),
        };
        drop(held);
        r
    }
}

/// The first /24 of [`POOL`] that overlaps neither a taken subnet nor a host route.
fn pick_subnet(taken: &[(Subnet, String)], routes: &[Subnet]) -> Option<Subnet> {
    let base = u32::from(POOL.addr);
    let step = 1u32 << (32 - POOL_PREFIX);
    let count = 1u32 << (POOL_PREFIX - POOL.prefix);
    (0..count)
        .map(|i| Subnet {
            addr: Ipv4Addr::from(base + i * step),
            prefix: POOL_PREFIX,
        })
        .find(|s| {
            !taken.iter().any(|(t, _)| t.overlaps(s)) && !routes.iter().any(|r| r.overlaps(s))
        })
}

/// 64 random hex digits.
fn random_id() -> String {
    let mut b = [0u8; 32];
    let mut filled = 0;
    while filled < b.len() {
        match rustix::rand::getrandom(&mut b[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => {
                // No getrandom: time and pid still give an id nobody else uses at once.
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let seed = t ^ (u128::from(std::process::id()) << 64);
                b[..16].copy_from_slice(&seed.to_le_bytes());
                b[16..].copy_from_slice(&seed.rotate_left(37).to_le_bytes());
                break;
            }
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "net-1", "A.b_c"] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "-a", "a b", "a/b", "..", "bridge", "host", "none"] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn pool_skips_taken_and_routes() {
        let taken = vec![("10.90.0.0/24".parse().unwrap(), "network a".to_string())];
        let routes = vec!["10.90.1.0/25".parse().unwrap()];
        assert_eq!(
            pick_subnet(&taken, &routes).unwrap().to_string(),
            "10.90.2.0/24"
        );
        let all = vec![(POOL, "x".to_string())];
        assert!(pick_subnet(&all, &[]).is_none());
    }

    #[test]
    fn endpoints_answer_names_aliases_and_ids() {
        let ep = Endpoint {
            container_id: "0123456789abcdef".repeat(4),
            name: "web".into(),
            aliases: vec!["Api".into()],
            ip: Ipv4Addr::new(10, 90, 0, 2),
            owner: Owner::me("x"),
            link: None,
        };
        for q in ["web", "WEB", "api", "0123456789ab"] {
            assert!(ep.answers(q), "{q}");
        }
        for q in ["we", "db", "0123"] {
            assert!(!ep.answers(q), "{q}");
        }
    }

    #[test]
    fn ids_are_hex_and_differ() {
        let (a, b) = (random_id(), random_id());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn endpoints_of_dead_monitors_are_not_listed() {
        let dir = std::env::temp_dir().join(format!("gocker-net-eps-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let nets = Networks::new(&dir);
        let rec_dir = nets.net_path("n1");
        fs::create_dir_all(nets.endpoints_dir("n1")).unwrap();
        let rec = NetworkRecord {
            id: "n1".into(),
            name: "one".into(),
            driver: DRIVER.into(),
            bridge: "gkbr-n1".into(),
            subnet: "10.90.9.0/24".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 90, 9, 1),
            internal: false,
            labels: BTreeMap::new(),
            created: 0,
            mtu: 1500,
        };
        fs::write(
            rec_dir.join("network.json"),
            serde_json::to_vec(&rec).unwrap(),
        )
        .unwrap();
        assert_eq!(nets.find("one").unwrap(), rec);
        assert_eq!(nets.find("n").unwrap(), rec);
        assert!(matches!(
            nets.find("two"),
            Err(NetError::NetworkNotFound(_))
        ));
        let live = Endpoint {
            container_id: "c1".into(),
            name: "a".into(),
            aliases: vec![],
            ip: Ipv4Addr::new(10, 90, 9, 2),
            owner: Owner::me("c1"),
            link: None,
        };
        let dead = Endpoint {
            container_id: "c2".into(),
            owner: Owner {
                id: "c2".into(),
                pid: i32::MAX,
                start: 1,
            },
            ..live.clone()
        };
        nets.add_endpoint("n1", &live).unwrap();
        nets.add_endpoint("n1", &dead).unwrap();
        assert_eq!(nets.endpoints("n1"), vec![live.clone()]);
        assert_eq!(nets.collect_stale().len(), 1);
        let lock = nets.lock().unwrap();
        let e = nets.remove(&lock, &rec, &dir).unwrap_err().to_string();
        assert!(e.contains("in use by container a (c1)"), "{e}");
        nets.remove_endpoint("n1", "c1");
        assert!(nets.endpoints("n1").is_empty());
        drop(lock);
        fs::remove_dir_all(&dir).unwrap();
    }
}
