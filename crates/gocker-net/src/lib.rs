//! Container networking for Gocker, usable on its own.
//!
//! * [`netlink`]: a synchronous rtnetlink client (links, veth, bridge, addresses, routes), fork-safe.
//! * [`ipam`]: address leases with flock, released on every exit path and collectable after a SIGKILL.
//! * [`nft`]: NAT and port DNAT in one nftables table `ip gocker` (pure rule building + the [`nft::Firewall`] seam).
//! * [`proxy`]: the userland proxy for published ports on loopback (like docker-proxy).
//! * [`helper`]: the rootless drivers slirp4netns and pasta.
//! * [`files`]: per-container resolv.conf and hosts.
//! * [`networks`]: user-defined networks (`gocker network create`), each a bridge of its own.
//! * [`connect`]: `network connect`/`disconnect`, a further endpoint of a running container.
//! * [`dns`]: the embedded resolver (127.0.0.11) of containers on a user-defined network.
//! * [`probe`]: whether a mode can work on this host (nft, the drivers, `/dev/net/tun`), and the
//!   default's fallbacks.
//!
//! [`Network`] composes them for one container: [`Network::prepare`] before the container's
//! processes exist (lease, files), [`Network::attach`] once its network namespace exists (host
//! side, container side, helpers), and teardown on drop.

pub mod connect;
pub mod dns;
pub mod error;
pub mod files;
pub mod helper;
pub mod ipam;
pub mod netlink;
pub mod networks;
pub mod nft;
pub mod ports;
pub mod probe;
pub mod proxy;

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use error::{NetError, Result};
pub use ipam::{Ipam, Owner, Subnet};
pub use ports::{parse_publish, PortMapping, Proto};

use error::io_err;
use nft::Firewall;

/// `--network` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A private namespace with only loopback.
    #[default]
    None,
    /// The host's namespace.
    Host,
    /// veth into a host bridge with NAT (rootful).
    Bridge,
    /// User-mode networking by slirp4netns (rootless).
    Slirp4netns,
    /// User-mode networking by pasta (rootless).
    Pasta,
}

impl std::str::FromStr for Mode {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Mode> {
        Ok(match s {
            "none" => Mode::None,
            "host" => Mode::Host,
            "bridge" => Mode::Bridge,
            "slirp4netns" => Mode::Slirp4netns,
            "pasta" => Mode::Pasta,
            _ => {
                return Err(NetError::Invalid {
                    flag: "--network",
                    value: s.into(),
                    reason: "unknown mode (none, host, bridge, slirp4netns, pasta)".into(),
                })
            }
        })
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::None => "none",
            Mode::Host => "host",
            Mode::Bridge => "bridge",
            Mode::Slirp4netns => "slirp4netns",
            Mode::Pasta => "pasta",
        })
    }
}

impl Mode {
    /// The default the caller would get on a host where every mode works: bridge for root; for
    /// other users pasta, else slirp4netns, whichever is installed. See [`probe::default_mode`]
    /// for the default that also works on this host.
    pub fn default_for(root: bool) -> Result<Mode> {
        if root {
            return Ok(Mode::Bridge);
        }
        if helper::find("pasta").is_some() {
            Ok(Mode::Pasta)
        } else if helper::find("slirp4netns").is_some() {
            Ok(Mode::Slirp4netns)
        } else {
            Err(NetError::MissingHelper {
                mode: "(default)".into(),
                helper: "pasta or slirp4netns",
                package: "passt` or `slirp4netns",
            })
        }
    }
}

/// The bridge network (rootful).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeOptions {
    pub name: String,
    pub subnet: Subnet,
    pub mtu: u32,
    /// The bridge's address, when not the subnet's first (`network create --gateway`).
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
}

impl Default for BridgeOptions {
    fn default() -> Self {
        BridgeOptions {
            name: "gocker0".into(),
            subnet: Subnet {
                addr: Ipv4Addr::new(10, 87, 0, 0),
                prefix: 16,
            },
            mtu: 1500,
            gateway: None,
        }
    }
}

impl BridgeOptions {
    /// The bridge's address: the containers' default route.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway.unwrap_or_else(|| self.subnet.gateway())
    }

    /// The defaults, overridden by GOCKER_BRIDGE, GOCKER_BRIDGE_SUBNET and GOCKER_BRIDGE_MTU.
    pub fn from_env() -> Result<BridgeOptions> {
        let mut b = BridgeOptions::default();
        if let Ok(n) = std::env::var("GOCKER_BRIDGE") {
            if n.is_empty() || n.len() > 15 || n.contains('/') || n.contains(char::is_whitespace) {
                return Err(NetError::Invalid {
                    flag: "GOCKER_BRIDGE",
                    value: n,
                    reason: "not a valid interface name (1-15 characters)".into(),
                });
            }
            b.name = n;
        }
        if let Ok(s) = std::env::var("GOCKER_BRIDGE_SUBNET") {
            b.subnet = s.parse().map_err(|_| NetError::Invalid {
                flag: "GOCKER_BRIDGE_SUBNET",
                value: s.clone(),
                reason: "expected A.B.C.D/PREFIX with PREFIX 8..30".into(),
            })?;
        }
        if let Ok(m) = std::env::var("GOCKER_BRIDGE_MTU") {
            b.mtu = m
                .parse()
                .ok()
                .filter(|v| (576..=65535).contains(v))
                .ok_or_else(|| NetError::Invalid {
                    flag: "GOCKER_BRIDGE_MTU",
                    value: m.clone(),
                    reason: "expected 576..65535".into(),
                })?;
        }
        Ok(b)
    }
}

/// Everything `gocker run` asks of the network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkOptions {
    pub mode: Mode,
    pub ports: Vec<PortMapping>,
    pub dns: Vec<IpAddr>,
    pub add_hosts: Vec<(String, IpAddr)>,
    /// Bridge only: this container cannot reach other isolated containers on the bridge, nor be
    /// reached by them (like docker's enable_icc=false), while the host stays reachable.
    pub isolate: bool,
    pub bridge: BridgeOptions,
    /// Generate the container's own resolv.conf and hosts (gocker run does; an OCI bundle keeps
    /// the files of its rootfs).
    #[serde(default)]
    pub manage_files: bool,
    /// A user-defined network (`--network NAME`): `bridge` is then that network's bridge.
    #[serde(default)]
    pub user: Option<UserNetwork>,
}

/// The container's side of a user-defined network (see [`networks`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserNetwork {
    /// The network's id and name (the id is what a later `gocker start` looks up).
    pub id: String,
    pub name: String,
    /// The container's name, and its `--network-alias`es, as the network's resolver answers them.
    pub container_name: String,
    pub aliases: Vec<String>,
    pub internal: bool,
}

/// `--network-alias NAME`: a DNS label (letters, digits, '-', '_', '.').
pub fn parse_alias(v: &str) -> Result<String> {
    let ok = !v.is_empty()
        && v.len() <= 253
        && !v.starts_with(['.', '-'])
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(NetError::Invalid {
            flag: "--network-alias",
            value: v.into(),
            reason: "a DNS name: letters, digits, '-', '_' and '.', not starting with '.' or '-'"
                .into(),
        })
    }
}

/// `--add-host HOST:IP`.
pub fn parse_add_host(v: &str) -> Result<(String, IpAddr)> {
    let bad = |reason: &str| NetError::Invalid {
        flag: "--add-host",
        value: v.into(),
        reason: reason.into(),
    };
    let (h, ip) = v.split_once(':').ok_or_else(|| bad("expected HOST:IP"))?;
    if h.is_empty()
        || !h
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    {
        return Err(bad(
            "the host name may contain letters, digits, '-', '.', '_'",
        ));
    }
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    Ok((
        h.to_owned(),
        ip.parse().map_err(|_| bad("not an IP address"))?,
    ))
}

/// `--dns IP`.
pub fn parse_dns(v: &str) -> Result<IpAddr> {
    v.parse().map_err(|_| NetError::Invalid {
        flag: "--dns",
        value: v.into(),
        reason: "not an IP address".into(),
    })
}

impl NetworkOptions {
    /// Checks the options before anything is created: privileges, helpers, ports.
    pub fn validate(&self, root: bool) -> Result<()> {
        ports::check_unique(&self.ports)?;
        match self.mode {
            Mode::None | Mode::Host if !self.ports.is_empty() => {
                return Err(NetError::PortsNeedNetwork {
                    mode: self.mode.to_string(),
                })
            }
            Mode::Bridge if !root => {
                return Err(NetError::NeedsRoot {
                    mode: "bridge".into(),
                })
            }
            // pasta drops every capability (and switches to nobody) as root, after which it may not
            // open the namespaces of the container's processes, which run as the remapped root.
            Mode::Pasta if root => {
                return Err(NetError::Invalid {
                    flag: "--network",
                    value: "pasta".into(),
                    reason: "pasta is a rootless driver; as root use bridge (or slirp4netns)"
                        .into(),
                })
            }
            Mode::Slirp4netns if helper::find("slirp4netns").is_none() => {
                return Err(NetError::MissingHelper {
                    mode: "slirp4netns".into(),
                    helper: "slirp4netns",
                    package: "slirp4netns",
                })
            }
            Mode::Pasta if helper::find("pasta").is_none() => {
                return Err(NetError::MissingHelper {
                    mode: "pasta".into(),
                    helper: "pasta",
                    package: "passt",
                })
            }
            _ => {}
        }
        if !root && matches!(self.mode, Mode::Pasta | Mode::Slirp4netns) {
            // The driver binds the host ports as the caller: below the sysctl it cannot.
            let start = unprivileged_port_start();
            if let Some(p) = self.ports.iter().find(|p| p.host_port < start) {
                return Err(NetError::Invalid {
                    flag: "--publish",
                    value: p.to_string(),
                    reason: format!(
                        "host port {} is below net.ipv4.ip_unprivileged_port_start ({start}), so {} (running as you) cannot bind it; publish a port >= {start}, or as root lower the limit: sysctl -w net.ipv4.ip_unprivileged_port_start={}",
                        p.host_port, self.mode, p.host_port
                    ),
                });
            }
        }
        if self.mode == Mode::Bridge {
            if let Some(p) = self.ports.iter().find(|p| {
                p.proto == Proto::Udp && p.host_ip.map(|h| h.is_loopback()).unwrap_or(false)
            }) {
                return Err(NetError::Invalid {
                    flag: "--publish",
                    value: p.to_string(),
                    reason: "UDP on a loopback address is not supported with --network bridge (DNAT cannot reach 127.0.0.0/8; publish on another address)".into(),
                });
            }
        }
        if let Some(u) = &self.user {
            if u.internal && !self.ports.is_empty() {
                return Err(NetError::Invalid {
                    flag: "--publish",
                    value: self.ports[0].to_string(),
                    reason: format!(
                        "network {} is --internal: nothing is forwarded to or from it",
                        u.name
                    ),
                });
            }
        }
        if self.isolate && self.mode != Mode::Bridge {
            return Err(NetError::Invalid {
                flag: "--icc",
                value: "false".into(),
                reason: format!("isolation applies to --network bridge, not {}", self.mode),
            });
        }
        Ok(())
    }

    /// Whether the container gets its own network namespace.
    pub fn private_netns(&self) -> bool {
        self.mode != Mode::Host
    }
}

/// The lowest port an unprivileged process may bind in this network namespace
/// (`net.ipv4.ip_unprivileged_port_start`; 1024 when unreadable).
pub fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .map(|v| v.min(65535) as u16)
        .unwrap_or(1024)
}

/// The name of a container's host-side veth: `gk` + the first 12 characters of its id.
pub fn veth_name(id: &str) -> String {
    format!("gk{}", &id[..id.len().min(12)])
}

/// A helper record, so a later gocker can kill a helper whose monitor was SIGKILLed.
#[derive(Debug, Serialize, Deserialize)]
struct HelperRecord {
    helper: Owner,
    owner: Owner,
}

/// The network of one container. Dropping it removes everything it created.
pub struct Network {
    opts: NetworkOptions,
    id: String,
    ipam: Ipam,
    net_dir: PathBuf,
    container_dir: PathBuf,
    ip: Option<Ipv4Addr>,
    veth: Option<String>,
    nft: bool,
    helper: Option<helper::Helper>,
    proxies: Vec<proxy::Proxy>,
    files: Vec<(PathBuf, &'static str)>,
    resolver: Option<dns::Resolver>,
    endpoint: bool,
}

impl Network {
    /// Before the container's namespaces exist: leases an address (bridge) and writes the
    /// container's resolv.conf and hosts into `container_dir`. `net_dir` holds the shared state
    /// (leases, lock, helper records).
    pub fn prepare(
        opts: NetworkOptions,
        id: &str,
        hostname: &str,
        net_dir: &Path,
        container_dir: &Path,
    ) -> Result<Network> {
        helper::reap_stopped();
        let mut n = Network {
            ipam: Ipam::new(net_dir.join(&opts.bridge.name)),
            opts,
            id: id.to_owned(),
            net_dir: net_dir.to_owned(),
            container_dir: container_dir.to_owned(),
            ip: None,
            veth: None,
            nft: false,
            helper: None,
            proxies: Vec::new(),
            files: Vec::new(),
            resolver: None,
            endpoint: false,
        };
        if let Some(u) = &n.opts.user {
            // The network may have been removed since this container was created.
            let rec = networks::Networks::new(net_dir).find(&u.id)?;
            n.opts.bridge = rec.bridge_options();
            n.ipam = Ipam::new(net_dir.join(&n.opts.bridge.name));
        }
        if let Some(u) = &n.opts.user {
            // Under the network's lock (which `network rm` takes too): it still exists.
            let lock = n
                .ipam
                .lock_existing()
                .map_err(|_| NetError::NetworkNotFound(u.name.clone()))?;
            networks::Networks::new(net_dir).find(&u.id)?;
            n.ip = Some(n.ipam.allocate_reserving(
                &lock,
                &n.opts.bridge.subnet,
                n.opts.bridge.gateway,
                &Owner::me(id),
            )?);
        } else if n.opts.mode == Mode::Bridge {
            let lock = n.ipam.lock()?;
            n.ip = Some(n.ipam.allocate_reserving(
                &lock,
                &n.opts.bridge.subnet,
                n.opts.bridge.gateway,
                &Owner::me(id),
            )?);
        }
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let (builtin, keep_lo, ip) = match n.opts.mode {
            Mode::Slirp4netns => (Some(helper::SLIRP_DNS), false, Some(helper::SLIRP_GUEST)),
            Mode::Host => (None, true, None),
            _ => (None, false, n.ip),
        };
        // On a user-defined network the embedded resolver answers (and relays the rest to
        // --dns or the host's servers).
        let embedded = [IpAddr::V4(dns::ADDR)];
        let dns_list: &[IpAddr] = if n.opts.user.is_some() {
            &embedded
        } else {
            &n.opts.dns
        };
        let resolv = files::resolv_conf(&host_resolv, dns_list, builtin, keep_lo);
        let hosts = files::hosts(hostname, ip, &n.opts.add_hosts);
        for (name, body, dest) in [
            ("resolv.conf", resolv, "/etc/resolv.conf"),
            ("hosts", hosts, "/etc/hosts"),
        ] {
            let p = container_dir.join(name);
            std::fs::write(&p, body).map_err(io_err("write", &p))?;
            n.files.push((p, dest));
        }
        Ok(n)
    }

    /// Generated files and where they go in the container.
    pub fn files(&self) -> &[(PathBuf, &'static str)] {
        &self.files
    }

    /// The container's address on the bridge.
    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.ip
    }

    pub fn mode(&self) -> Mode {
        self.opts.mode
    }

    /// Once the network namespace of process `pid` exists (and before the payload runs): the host
    /// side, the container side, the firewall and the helpers. Starts threads (the port proxies):
    /// call it after the last fork without exec.
    pub fn attach(&mut self, pid: i32, timeout: Duration) -> Result<()> {
        match self.opts.mode {
            Mode::None | Mode::Host => Ok(()),
            Mode::Bridge => self.attach_bridge(pid),
            Mode::Slirp4netns => {
                let api = self.container_dir.join("slirp4netns.sock");
                let h = helper::slirp4netns(pid, &api, &self.opts.ports, timeout)?;
                self.record_helper(&h);
                self.helper = Some(h);
                Ok(())
            }
            Mode::Pasta => {
                let pidfile = self.container_dir.join("pasta.pid");
                let h = helper::pasta(pid, &pidfile, &self.opts.ports, timeout)?;
                self.record_helper(&h);
                self.helper = Some(h);
                Ok(())
            }
        }
    }

    fn helpers_dir(net_dir: &Path) -> PathBuf {
        net_dir.join("helpers")
    }

    fn record_helper(&self, h: &helper::Helper) {
        let dir = Self::helpers_dir(&self.net_dir);
        let rec = HelperRecord {
            helper: Owner {
                id: h.name.into(),
                pid: h.pid(),
                start: ipam::process_start_time(h.pid()).unwrap_or(0),
            },
            owner: Owner::me(&self.id),
        };
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::write(
                dir.join(&self.id),
                serde_json::to_vec(&rec).expect("record serialises"),
            );
        }
    }

    fn attach_bridge(&mut self, pid: i32) -> Result<()> {
        let b = self.opts.bridge.clone();
        let ip = self.ip.expect("bridge mode leases an address in prepare");
        let lock = self.ipam.lock()?;
        let mut nl = netlink::Netlink::new()?;
        ensure_bridge(&mut nl, &b)?;
        enable_forwarding()?;
        let ns_path = format!("/proc/{pid}/ns/net");
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
        let host = veth_name(&self.id);
        // A link of this name can only be this container's own from its previous run (`gocker
        // start` reuses the id) that the kernel has not finished tearing down with the old namespace.
        nl.del_link(&host)?;
        nl.add_veth(&host, "eth0", netns.as_fd(), b.mtu)?;
        self.veth = Some(host.clone());
        nl.set_master(&host, &b.name, self.opts.isolate)?;
        nl.set_up(&host, None)?;
        let mut inner = netlink::Netlink::in_netns(netns.as_fd())?;
        inner.set_up("eth0", Some(b.mtu))?;
        inner.add_addr("eth0", ip, b.subnet.prefix)?;
        let internal = self.opts.user.as_ref().is_some_and(|u| u.internal);
        if !internal {
            inner.add_default_route(b.gateway())?;
        }

        // One nft call: table, chains, masquerade and isolation of every bridge, and this
        // container's DNAT rules, atomically.
        // The bridges are listed under the firewall lock: listed before it, a network removed
        // meanwhile (whose removal refreshes the rules under the same lock) would get its rules
        // back from this batch.
        self.nft = true;
        {
            let _fw = firewall_lock(&self.net_dir)?;
            let mut batch =
                nft::base_batch(&all_bridges(&self.net_dir, &b, self.opts.user.as_ref()));
            if let (Some(all), Some(ports)) = (
                batch["nftables"].as_array_mut(),
                nft::port_batch(&self.id, ip, &self.opts.ports)["nftables"].as_array(),
            ) {
                all.extend(ports.iter().cloned());
            }
            nft::NftCli.apply(&batch)?;
        }
        drop(lock);
        if let Some(u) = self.opts.user.clone() {
            let nets = networks::Networks::new(&self.net_dir);
            nets.add_endpoint(
                &u.id,
                &networks::Endpoint {
                    container_id: self.id.clone(),
                    name: u.container_name.clone(),
                    aliases: u.aliases.clone(),
                    ip,
                    owner: Owner::me(&self.id),
                    link: None,
                },
            )?;
            self.endpoint = true;
            let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            let net_id = u.id.clone();
            let me = self.id.clone();
            // Its own network's names first, then those of the networks it was connected to
            // later (`network connect`), as docker's resolver answers.
            let lookup = move |q: &str| {
                let find = |id: &str| {
                    nets.endpoints(id)
                        .into_iter()
                        .find(|e| e.answers(q))
                        .map(|e| e.ip)
                };
                find(&net_id).or_else(|| {
                    nets.list()
                        .into_iter()
                        .filter(|r| r.id != net_id && nets.endpoint(&r.id, &me).is_some())
                        .find_map(|r| find(&r.id))
                })
            };
            self.resolver = Some(dns::Resolver::start(
                netns.as_fd(),
                Box::new(lookup),
                dns::upstreams(&host_resolv, &self.opts.dns),
            )?);
        }
        for p in self.opts.ports.iter().filter(|p| p.proto == Proto::Tcp) {
            let listen = SocketAddrV4::new(p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED), p.host_port);
            self.proxies.push(proxy::Proxy::start(
                listen,
                SocketAddrV4::new(ip, p.container_port),
            )?);
        }
        Ok(())
    }

    /// Removes everything this network created; safe to call more than once. Call it after the
    /// container's processes are dead (the veth goes with their network namespace).
    pub fn teardown(&mut self) {
        self.proxies.clear();
        self.resolver = None;
        if self.opts.mode == Mode::Bridge {
            // The networks `network connect` added: their endpoints and leases.
            connect::release_connected(&self.net_dir, &self.id);
        }
        if std::mem::take(&mut self.endpoint) {
            if let Some(u) = &self.opts.user {
                networks::Networks::new(&self.net_dir).remove_endpoint(&u.id, &self.id);
            }
        }
        if self.helper.take().is_some() {
            let _ = std::fs::remove_file(Self::helpers_dir(&self.net_dir).join(&self.id));
        }
        if self.opts.mode != Mode::Bridge || (self.ip.is_none() && self.veth.is_none() && !self.nft)
        {
            return;
        }
        let lock = match self.ipam.lock() {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("network teardown of {}: {e}", self.id);
                return;
            }
        };
        // The veth pair is not deleted here: the kernel deletes both ends when the container's
        // network namespace goes away (the caller tears the network down after killing the
        // container's processes), in its cleanup worker, whereas an explicit RTM_DELLINK would
        // block for an RCU grace period (~30 ms per container). An orphan (a namespace kept alive
        // from outside) is removed by `prune` once its lease is gone.
        self.veth = None;
        if let Some(ip) = self.ip.take() {
            if let Err(e) = self.ipam.release(ip) {
                tracing::warn!("{e}");
            }
        }
        if std::mem::take(&mut self.nft) {
            let comment = nft::owner_comment(&self.id);
            let has_rules = self
                .opts
                .ports
                .iter()
                .any(|p| !p.host_ip.map(|h| h.is_loopback()).unwrap_or(false));
            let fw = firewall_lock(&self.net_dir);
            let idle = no_leases(&self.net_dir);
            if let Err(e) =
                fw.and_then(|_fw| clean_firewall(&nft::NftCli, idle, has_rules, |c| c == comment))
            {
                tracing::warn!("firewall cleanup for {}: {e}", self.id);
            }
        }
        drop(lock);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// The lock around firewall changes that depend on the leases of every bridge (the table is
/// deleted when no bridge has a container left; an attach on another bridge must not be lost).
/// Taken after a bridge's lock, never before.
fn firewall_lock(net_dir: &Path) -> Result<ipam::NetLock> {
    std::fs::create_dir_all(net_dir).map_err(io_err("create", net_dir))?;
    ipam::lock_file(net_dir.join("firewall.lock"))
}

/// Whether no bridge (the default one, user-defined ones) has a lease left.
fn no_leases(net_dir: &Path) -> bool {
    bridge_networks(net_dir)
        .iter()
        .all(|(_, ipam)| ipam.leases().is_empty())
}

/// Every bridge the firewall knows: `current` (the one being attached), the default bridge and
/// the user-defined networks.
fn all_bridges(
    net_dir: &Path,
    current: &BridgeOptions,
    user: Option<&UserNetwork>,
) -> Vec<nft::BridgeNet> {
    let mut v = vec![nft::BridgeNet {
        bridge: current.name.clone(),
        subnet: current.subnet,
        internal: user.is_some_and(|u| u.internal),
    }];
    if user.is_some() {
        let d = BridgeOptions::from_env().unwrap_or_default();
        v.push(nft::BridgeNet {
            bridge: d.name,
            subnet: d.subnet,
            internal: false,
        });
    }
    for r in networks::Networks::new(net_dir).list() {
        if !v.iter().any(|b| b.bridge == r.bridge) {
            v.push(nft::BridgeNet {
                bridge: r.bridge,
                subnet: r.subnet,
                internal: r.internal,
            });
        }
    }
    v
}

/// After `network rm`: when the table exists (some container runs), rewrites its shared rules
/// without the removed network's bridge, so that nothing names it.
pub fn refresh_firewall(net_dir: &Path) -> Result<()> {
    let _fw = firewall_lock(net_dir)?;
    if no_leases(net_dir) {
        return Ok(());
    }
    let d = BridgeOptions::from_env().unwrap_or_default();
    nft::NftCli.apply(&nft::base_batch(&all_bridges(net_dir, &d, None)))
}

/// Deletes the whole table when no lease is left on any bridge (`idle`; one nft call, no
/// listing); otherwise, when `has_rules`, the rules whose comment matches.
fn clean_firewall(
    fw: &dyn Firewall,
    idle: bool,
    has_rules: bool,
    pred: impl Fn(&str) -> bool,
) -> Result<Vec<String>> {
    if idle {
        return Ok(if fw.delete_table()? {
            vec![format!("nft table {} {}", nft::FAMILY, nft::TABLE)]
        } else {
            Vec::new()
        });
    }
    if !has_rules {
        return Ok(Vec::new());
    }
    let Some(listing) = fw.list()? else {
        return Ok(Vec::new());
    };
    let removed: Vec<String> = nft::rules(&listing)
        .into_iter()
        .filter(|r| pred(&r.2))
        .map(|r| format!("nft rule {} ({})", r.1, r.2))
        .collect();
    if let Some(batch) = nft::delete_batch(&listing, pred) {
        fw.apply(&batch)?;
    }
    Ok(removed)
}

/// Creates the bridge with its gateway address when missing, refusing a subnet that overlaps a
/// host route. The caller holds the network lock.
fn ensure_bridge(nl: &mut netlink::Netlink, b: &BridgeOptions) -> Result<()> {
    if nl.index(&b.name)?.is_none() {
        for r in nl.routes_v4()? {
            if r.prefix == 0 {
                continue;
            }
            let route = Subnet {
                addr: r.dst,
                prefix: r.prefix.max(1),
            };
            if (Subnet {
                addr: r.dst,
                prefix: r.prefix,
            })
            .overlaps(&b.subnet)
                || route.overlaps(&b.subnet)
            {
                return Err(NetError::SubnetCollision {
                    subnet: b.subnet.addr,
                    prefix: b.subnet.prefix,
                    route: format!("{}/{}", r.dst, r.prefix),
                });
            }
        }
        match nl.add_bridge(&b.name, b.mtu) {
            Err(NetError::Netlink { source, .. })
                if source.raw_os_error() == Some(libc::EEXIST) => {}
            r => r?,
        }
    }
    let gw = b.gateway();
    if !nl.addrs_v4(&b.name)?.iter().any(|(a, _)| *a == gw) {
        nl.add_addr(&b.name, gw, b.subnet.prefix)?;
    }
    nl.set_up(&b.name, None)
}

/// Turns on IPv4 forwarding (needed for NAT to the outside) when it is off.
fn enable_forwarding() -> Result<()> {
    let p = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(p)
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
    {
        return Ok(());
    }
    std::fs::write(p, "1").map_err(io_err("write", p))
}

/// Collects what dead containers left (their monitor was SIGKILLed): stale leases, their nft
/// rules, veths without a live lease, helper processes whose owner is gone. Cheap when there is
/// nothing stale (no netlink or nft calls). Returns what was removed.
pub fn collect_stale(net_dir: &Path) -> Vec<String> {
    let mut removed = Vec::new();
    // Helpers whose owner died.
    if let Ok(rd) = std::fs::read_dir(Network::helpers_dir(net_dir)) {
        for e in rd.flatten() {
            let Some(rec) = std::fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<HelperRecord>(&b).ok())
            else {
                let _ = std::fs::remove_file(e.path());
                continue;
            };
            if rec.owner.alive() {
                continue;
            }
            if rec.helper.alive() {
                if let Some(pid) = rustix::process::Pid::from_raw(rec.helper.pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
                removed.push(format!("{} pid {}", rec.helper.id, rec.helper.pid));
            }
            let _ = std::fs::remove_file(e.path());
        }
    }
    for (_, ipam) in bridge_networks(net_dir) {
        let Ok(lock) = ipam.lock_existing() else {
            continue;
        };
        let stale = ipam.release_stale(&lock);
        if stale.is_empty() {
            continue;
        }
        removed.extend(stale.iter().map(|(ip, id)| format!("lease {ip} ({id})")));
        removed.extend(prune_bridge_locked(net_dir, &lock));
    }
    removed.extend(networks::Networks::new(net_dir).collect_stale());
    removed
}

/// The bridge networks under `net_dir`: one directory per bridge, holding its leases.
fn bridge_networks(net_dir: &Path) -> Vec<(String, Ipam)> {
    let Ok(rd) = std::fs::read_dir(net_dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_name() != "helpers" && e.path().join("leases").is_dir())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                Ipam::new(e.path()),
            )
        })
        .collect()
}

/// With a bridge's lock held: veths and nft rules of containers without a live lease on any
/// bridge.
fn prune_bridge_locked(net_dir: &Path, _lock: &ipam::NetLock) -> Vec<String> {
    let mut removed = Vec::new();
    let live: Vec<String> = bridge_networks(net_dir)
        .iter()
        .flat_map(|(_, ipam)| ipam.leases())
        .filter_map(|(_, o)| o.map(|o| o.id))
        .collect();
    if let Ok(mut nl) = netlink::Netlink::new() {
        for l in nl.links().unwrap_or_default() {
            let ours =
                l.kind.as_deref() == Some("veth") && l.name.starts_with("gk") && l.name.len() == 14;
            if ours
                && !live.iter().any(|id| veth_name(id) == l.name)
                && nl.del_link(&l.name).unwrap_or(false)
            {
                removed.push(format!("veth {}", l.name));
            }
        }
    }
    let live_comments: Vec<String> = live.iter().map(|id| nft::owner_comment(id)).collect();
    let cleaned = firewall_lock(net_dir).and_then(|_fw| {
        clean_firewall(&nft::NftCli, no_leases(net_dir), true, |c| {
            c != nft::SHARED && !live_comments.iter().any(|l| l == c)
        })
    });
    match cleaned {
        Ok(r) => removed.extend(r),
        Err(e) => tracing::warn!("firewall cleanup: {e}"),
    }
    removed
}

/// `gocker system prune`: [`collect_stale`], then for each bridge network also the leftovers that
/// have no stale lease to point at them, and the default bridge itself when no container uses it
/// (a user-defined network's bridge stays until `network rm` or `network prune`).
pub fn prune(net_dir: &Path) -> Vec<String> {
    let mut removed = collect_stale(net_dir);
    let user: Vec<String> = networks::Networks::new(net_dir)
        .list()
        .into_iter()
        .map(|n| n.bridge)
        .collect();
    for (bridge, ipam) in bridge_networks(net_dir) {
        let Ok(lock) = ipam.lock_existing() else {
            continue;
        };
        removed.extend(prune_bridge_locked(net_dir, &lock));
        if ipam.leases().is_empty() && !user.contains(&bridge) {
            if let Ok(mut nl) = netlink::Netlink::new() {
                if nl.del_link(&bridge).unwrap_or(false) {
                    removed.push(format!("bridge {bridge}"));
                }
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for m in ["none", "host", "bridge", "slirp4netns", "pasta"] {
            assert_eq!(m.parse::<Mode>().unwrap().to_string(), m);
        }
        let e = "wifi".parse::<Mode>().unwrap_err().to_string();
        assert!(e.contains("--network") && e.contains("wifi"), "{e}");
        assert_eq!(Mode::default_for(true).unwrap(), Mode::Bridge);
    }

    #[test]
    fn validation() {
        let p: PortMapping = "8080:80".parse().unwrap();
        let o = NetworkOptions {
            mode: Mode::None,
            ports: vec![p],
            ..Default::default()
        };
        assert!(o
            .validate(true)
            .unwrap_err()
            .to_string()
            .contains("--network none"));
        let o = NetworkOptions {
            mode: Mode::Bridge,
            ..Default::default()
        };
        assert!(o
            .validate(false)
            .unwrap_err()
            .to_string()
            .contains("needs root"));
        assert!(o.validate(true).is_ok());
        let o = NetworkOptions {
            mode: Mode::Pasta,
            isolate: true,
            ..Default::default()
        };
        assert!(o.validate(false).is_err());
        let udp_lo: PortMapping = "127.0.0.1:53:53/udp".parse().unwrap();
        let o = NetworkOptions {
            mode: Mode::Bridge,
            ports: vec![udp_lo],
            ..Default::default()
        };
        assert!(o
            .validate(true)
            .unwrap_err()
            .to_string()
            .contains("UDP on a loopback"));
        let o = NetworkOptions {
            mode: Mode::Pasta,
            ..Default::default()
        };
        assert!(o
            .validate(true)
            .unwrap_err()
            .to_string()
            .contains("rootless driver"));
    }

    #[test]
    fn add_host_and_dns() {
        assert_eq!(
            parse_add_host("db:192.0.2.7").unwrap(),
            ("db".into(), "192.0.2.7".parse().unwrap())
        );
        assert_eq!(
            parse_add_host("v6:[::1]").unwrap().1,
            "::1".parse::<IpAddr>().unwrap()
        );
        let e = parse_add_host("db").unwrap_err().to_string();
        assert!(e.contains("--add-host") && e.contains("\"db\""), "{e}");
        assert!(parse_dns("x").unwrap_err().to_string().contains("--dns"));
    }

    /// Records batches and serves a fixed listing (the seam for firewall logic without root).
    struct Recorder {
        listing: serde_json::Value,
        applied: std::cell::RefCell<Vec<serde_json::Value>>,
    }

    impl Firewall for Recorder {
        fn apply(&self, batch: &serde_json::Value) -> Result<()> {
            self.applied.borrow_mut().push(batch.clone());
            Ok(())
        }
        fn list(&self) -> Result<Option<serde_json::Value>> {
            Ok(Some(self.listing.clone()))
        }
    }

    #[test]
    fn firewall_cleanup_deletes_own_rules_then_the_table() {
        let dir = std::env::temp_dir().join(format!("gocker-net-fw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ipam = Ipam::new(&dir);
        let fw = Recorder {
            listing: serde_json::json!({"nftables": [
                {"rule": {"chain": "prerouting", "handle": 7, "comment": "gocker:a"}},
                {"rule": {"chain": "output", "handle": 8, "comment": "gocker:b"}},
                {"rule": {"chain": "postrouting", "handle": 9, "comment": "gocker:bridge"}}
            ]}),
            applied: Default::default(),
        };
        // Another container still holds a lease: only a's rules go.
        let lock = ipam.lock().unwrap();
        let other = ipam
            .allocate(&lock, &"10.97.0.0/24".parse().unwrap(), &Owner::me("b"))
            .unwrap();
        let removed =
            clean_firewall(&fw, ipam.leases().is_empty(), true, |c| c == "gocker:a").unwrap();
        assert_eq!(removed.len(), 1);
        let applied = fw.applied.borrow().clone();
        assert_eq!(applied.len(), 1);
        assert_eq!(applied[0]["nftables"][0]["delete"]["rule"]["handle"], 7);
        // Without rules of its own and with others running: no nft call at all.
        assert!(
            clean_firewall(&fw, ipam.leases().is_empty(), false, |c| c == "gocker:a")
                .unwrap()
                .is_empty()
        );
        assert_eq!(fw.applied.borrow().len(), 1);
        // The last one out deletes the table, in one call.
        ipam.release(other).unwrap();
        clean_firewall(&fw, ipam.leases().is_empty(), true, |c| c == "gocker:b").unwrap();
        let applied = fw.applied.borrow().clone();
        assert_eq!(applied.len(), 2);
        assert_eq!(applied[1], nft::delete_table_batch());
        drop(lock);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn veth_names_fit_ifnamsiz() {
        assert_eq!(veth_name("0123456789abcdef0123"), "gk0123456789ab");
        assert!(veth_name("0123456789abcdef0123").len() < 16);
    }

    #[test]
    fn prepare_writes_files_without_root() {
        let dir = std::env::temp_dir().join(format!("gocker-net-prepare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let o = NetworkOptions {
            mode: Mode::Slirp4netns,
            add_hosts: vec![("db".into(), "192.0.2.7".parse().unwrap())],
            ..Default::default()
        };
        let n = Network::prepare(o, "abc", "box", &dir.join("net"), &dir).unwrap();
        let hosts = std::fs::read_to_string(dir.join("hosts")).unwrap();
        assert!(
            hosts.contains("10.0.2.100\tbox") && hosts.contains("192.0.2.7\tdb"),
            "{hosts}"
        );
        assert!(std::fs::read_to_string(dir.join("resolv.conf"))
            .unwrap()
            .contains("nameserver 10.0.2.3"));
        assert_eq!(n.files().len(), 2);
        drop(n);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
