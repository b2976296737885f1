//! User-defined networks: `gocker network create|ls|inspect|rm|prune`, with docker's names, flags
//! and output (docs/networking.md, *User-defined networks*). The store is gocker-net's
//! [`Networks`], beside the container state store (root: /run/gocker-net/networks).
//!
//! A container on a user-defined network records the network's id in its spec's annotation
//! [`NETWORK_ANNOTATION`] (the state store's `config.json`), so that `network rm` refuses a
//! network that a container (running, or stopped and not removed) uses.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use gocker_net::networks::{CreateRequest, NetworkRecord, Networks};
use gocker_net::{NetError, Subnet};
use gocker_runtime::StateStore;

use crate::failure::{usage, Failure};

/// The spec annotation naming the user-defined network (its id) a container is attached to.
pub const NETWORK_ANNOTATION: &str = "io.gocker.network";

const STORE_HELP: &str = "User-defined networks need root: each is a Linux bridge of its own \
(gkbr-<id>) with its own subnet (default: the next free /24 of 10.90.0.0/16) in the host's \
network namespace, NAT out unless --internal, no traffic between different networks. Containers \
on one network (`run --network NAME`) find each other by container name and --network-alias \
through the embedded resolver at 127.0.0.11; `network connect` adds a running container to a \
further network for its current run. Records: /run/gocker-net/networks. See docs/networking.md.";

/// `network ...`: flattened into gocker's top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum NetworkCommands {
    /// Manage user-defined networks (create, ls, inspect, rm, prune, connect, disconnect).
    #[command(subcommand, after_help = STORE_HELP)]
    Network(NetworkCommand),
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network (a bridge with its own subnet) and print its id. Root only.
    #[command(after_help = STORE_HELP)]
    Create(CreateArgs),
    /// List networks (NETWORK ID, NAME, DRIVER, SCOPE), the predefined ones too.
    #[command(alias = "list", after_help = STORE_HELP)]
    Ls(LsArgs),
    /// Show networks as a JSON array (docker's fields: Name, Id, Created, Driver, IPAM,
    /// Internal, Containers, Options, Labels ...).
    #[command(after_help = STORE_HELP)]
    Inspect(InspectArgs),
    /// Remove networks. A network that a container uses (running, or stopped and not removed)
    /// is refused, naming the container.
    #[command(alias = "remove", after_help = STORE_HELP)]
    Rm(RmArgs),
    /// Remove every user-defined network that no container uses.
    #[command(after_help = STORE_HELP)]
    Prune(PruneArgs),
    /// Connect a running container (on a bridge) to a user-defined network as well: a further
    /// interface (eth1, ...) with an address of that network, its name and aliases answered by
    /// that network's resolver. Lasts for the container's current run. Root only.
    #[command(after_help = STORE_HELP)]
    Connect(ConnectArgs),
    /// Disconnect a container from a network it was connected to (`network connect`): its
    /// interface, address and names there are removed. Root only.
    #[command(after_help = STORE_HELP)]
    Disconnect(DisconnectArgs),
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// A further name of the container on this network (repeatable).
    #[arg(long = "alias", value_name = "ALIAS")]
    pub aliases: Vec<String>,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// No error when the container is not connected (or not running): its leftovers on the
    /// network are removed.
    #[arg(short, long)]
    pub force: bool,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Network driver: only `bridge`.
    #[arg(short, long, default_value = "bridge", value_name = "DRIVER")]
    pub driver: String,
    /// Subnet in CIDR form, e.g. 10.91.0.0/24 (prefix 8..30); default: the next free /24 of
    /// 10.90.0.0/16. Refused when it overlaps another network, the default bridge or a host route.
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// The bridge's address, the containers' default route (default: the subnet's first address).
    #[arg(long, value_name = "IP")]
    pub gateway: Option<String>,
    /// No access from or to the outside: no NAT, no default route, nothing routed to other
    /// networks or the host's interfaces (containers on it still reach each other).
    #[arg(long)]
    pub internal: bool,
    /// Set a label (KEY=VALUE, or KEY for an empty value; repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Driver options: com.docker.network.driver.mtu=N (576..65535) is understood.
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    pub opts: Vec<String>,
    /// IPv6 is not supported on gocker's bridges: refused rather than ignored.
    #[arg(long)]
    pub ipv6: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only print network ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate the ids.
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter: name=SUBSTRING, id=PREFIX, driver=DRIVER, label=KEY[=VALUE], type=custom|builtin,
    /// dangling=true|false (used by no container). Repeatable: several of one key match any,
    /// different keys must all match.
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not fail on networks that do not exist.
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(short, long)]
    pub force: bool,
    /// Only networks matching: label=KEY[=VALUE], label!=KEY[=VALUE] (repeatable).
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
}

/// The predefined networks docker lists too: (name, driver).
const BUILTIN: [(&str, &str); 3] = [("bridge", "bridge"), ("host", "host"), ("none", "null")];

fn net_dir() -> PathBuf {
    gocker_runtime::net::net_dir(&StateStore::default_root())
}

fn store() -> Networks {
    Networks::new(&net_dir())
}

fn fail(e: NetError) -> Failure {
    let code = match e {
        NetError::Invalid { .. }
        | NetError::SubnetOverlap { .. }
        | NetError::AlreadyConnected { .. }
        | NetError::NotConnected { .. }
        | NetError::PrimaryNetwork { .. }
        | NetError::NotOnBridge { .. } => 125,
        _ => 1,
    };
    Failure {
        code,
        message: e.to_string(),
    }
}

/// A stable id for a predefined network (docker's are random per daemon).
fn builtin_id(name: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(format!("gocker-builtin-network:{name}").as_bytes());
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// Network id → the containers of the state store whose spec names it: (name, id).
/// Unreadable container records fail: no network is removed without knowing who uses it.
fn users() -> Result<BTreeMap<String, Vec<(String, String)>>, Failure> {
    let unknown = |e: gocker_runtime::RuntimeError| {
        usage(format!(
            "cannot tell which containers use networks: the container state store: {e}"
        ))
    };
    let st = StateStore::open(StateStore::default_root()).map_err(unknown)?;
    st.collect_stale();
    let mut map: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for c in st.list().map_err(unknown)? {
        let spec: serde_json::Value = std::fs::read(st.container_dir(&c.id).join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if let Some(n) = spec["annotations"][NETWORK_ANNOTATION].as_str() {
            map.entry(n.to_owned())
                .or_default()
                .push((c.name.clone(), c.id.clone()));
        }
    }
    Ok(map)
}

pub fn main(c: NetworkCommands) -> i32 {
    let NetworkCommands::Network(c) = c;
    let (what, r) = match c {
        NetworkCommand::Create(a) => ("network create", create(&a)),
        NetworkCommand::Ls(a) => ("network ls", ls(&a)),
        NetworkCommand::Inspect(a) => ("network inspect", inspect(&a)),
        NetworkCommand::Rm(a) => ("network rm", rm(&a)),
        NetworkCommand::Prune(a) => ("network prune", prune(&a)),
        NetworkCommand::Connect(a) => ("network connect", connect(&a)),
        NetworkCommand::Disconnect(a) => ("network disconnect", disconnect(&a)),
    };
    match r {
        Ok(code) => code,
        Err(f) => {
            eprintln!("gocker: {what}: {}", f.message);
            f.code
        }
    }
}

fn parse_labels(labels: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    let mut m = BTreeMap::new();
    for l in labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            return Err(usage(format!(
                "--label {l:?}: empty key (expected KEY=VALUE)"
            )));
        }
        m.insert(k.to_owned(), v.to_owned());
    }
    Ok(m)
}

/// Why user-defined networks are refused rootless, and what to use instead.
pub const ROOTLESS: &str = "user-defined networks need root: their bridge, veths and firewall \
rules live in the host's network namespace, which an unprivileged user cannot change (see \
docs/networking.md); rootless containers use --network pasta or slirp4netns and reach each \
other through published ports (-p)";

fn create(a: &CreateArgs) -> Result<i32, Failure> {
    if !rustix::process::geteuid().is_root() {
        return Err(usage(ROOTLESS));
    }
    if a.driver != gocker_net::networks::DRIVER {
        return Err(usage(format!(
            "--driver {:?}: only the bridge driver is supported",
            a.driver
        )));
    }
    if a.ipv6 {
        return Err(usage(
            "--ipv6: IPv6 is not supported on gocker's bridges (IPv4 only)",
        ));
    }
    let subnet = a
        .subnet
        .as_deref()
        .map(|s| {
            s.parse::<Subnet>()
                .map_err(|_| {
                    usage(format!(
                        "--subnet {s:?}: expected A.B.C.D/PREFIX with PREFIX 8..30"
                    ))
                })
                .and_then(|n| {
                    let given: std::net::Ipv4Addr = s
                        .split('/')
                        .next()
                        .and_then(|a| a.parse().ok())
                        .unwrap_or(n.addr);
                    if given != n.addr {
                        Err(usage(format!(
                            "--subnet {s:?}: not a network address (did you mean {n}?)"
                        )))
                    } else {
                        Ok(n)
                    }
                })
        })
        .transpose()?;
    let gateway = a
        .gateway
        .as_deref()
        .map(|g| {
            g.parse()
                .map_err(|_| usage(format!("--gateway {g:?}: not an IPv4 address")))
        })
        .transpose()?;
    if gateway.is_some() && subnet.is_none() {
        return Err(usage("--gateway needs --subnet"));
    }
    let mut mtu = 1500;
    for o in &a.opts {
        match o.split_once('=') {
            Some(("com.docker.network.driver.mtu", v)) => {
                mtu = v
                    .parse()
                    .ok()
                    .filter(|m| (576..=65535).contains(m))
                    .ok_or_else(|| usage(format!("--opt {o:?}: the MTU must be 576..65535")))?;
            }
            _ => {
                return Err(usage(format!(
                    "--opt {o:?}: unknown option (supported: com.docker.network.driver.mtu=N)"
                )))
            }
        }
    }
    let req = CreateRequest {
        name: a.name.clone(),
        subnet,
        gateway,
        internal: a.internal,
        labels: parse_labels(&a.labels)?,
        default_bridge: Some(gocker_net::BridgeOptions::from_env().map_err(fail)?),
        mtu,
    };
    let nets = store();
    let lock = nets.lock().map_err(fail)?;
    let rec = nets.create(&lock, &req, &net_dir()).map_err(fail)?;
    drop(lock);
    println!("{}", rec.id);
    Ok(0)
}

/// A row of `ls`: user-defined or predefined.
struct Row {
    id: String,
    name: String,
    driver: String,
    labels: BTreeMap<String, String>,
    builtin: bool,
}

fn rows() -> Vec<Row> {
    let mut v: Vec<Row> = BUILTIN
        .iter()
        .map(|(n, d)| Row {
            id: builtin_id(n),
            name: (*n).into(),
            driver: (*d).into(),
            labels: BTreeMap::new(),
            builtin: true,
        })
        .collect();
    v.extend(store().list().into_iter().map(|r| Row {
        id: r.id,
        name: r.name,
        driver: r.driver,
        labels: r.labels,
        builtin: false,
    }));
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

fn label_matches(labels: &BTreeMap<String, String>, spec: &str) -> bool {
    match spec.split_once('=') {
        Some((k, val)) => labels.get(k).is_some_and(|x| x == val),
        None => labels.contains_key(spec),
    }
}

fn ls(a: &LsArgs) -> Result<i32, Failure> {
    let mut by_key: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for f in &a.filters {
        match f.split_once('=') {
            Some((k @ ("name" | "id" | "driver" | "label" | "type" | "dangling"), v)) => {
                if k == "type" && !["custom", "builtin"].contains(&v) {
                    return Err(usage(format!("--filter {f:?}: type is custom or builtin")));
                }
                if k == "dangling" && !["true", "false", "1", "0"].contains(&v) {
                    return Err(usage(format!("--filter {f:?}: expected true or false")));
                }
                by_key.entry(k).or_default().push(v.to_owned());
            }
            _ => {
                return Err(usage(format!(
                    "--filter {f:?}: supported: name=..., id=..., driver=..., label=KEY[=VALUE], type=custom|builtin, dangling=true|false"
                )))
            }
        }
    }
    let used = if by_key.contains_key("dangling") {
        users()?
    } else {
        BTreeMap::new()
    };
    let nets = store();
    let any =
        |k: &str, f: &dyn Fn(&str) -> bool| by_key.get(k).is_none_or(|vs| vs.iter().any(|v| f(v)));
    let list: Vec<Row> = rows()
        .into_iter()
        .filter(|r| any("name", &|v| r.name.contains(v)))
        .filter(|r| any("id", &|v| r.id.starts_with(v)))
        .filter(|r| any("driver", &|v| r.driver == v))
        .filter(|r| any("type", &|v| (v == "builtin") == r.builtin))
        .filter(|r| {
            by_key
                .get("label")
                .is_none_or(|vs| vs.iter().all(|v| label_matches(&r.labels, v)))
        })
        .filter(|r| {
            any("dangling", &|v| {
                let dangling =
                    !r.builtin && !used.contains_key(&r.id) && nets.endpoints(&r.id).is_empty();
                dangling == (v == "true" || v == "1")
            })
        })
        .collect();
    let id = |r: &Row| {
        if a.no_trunc {
            r.id.clone()
        } else {
            r.id[..12].to_owned()
        }
    };
    if a.quiet {
        let mut out = std::io::stdout().lock();
        for r in &list {
            crate::failure::wrote(writeln!(out, "{}", id(r)));
        }
        return Ok(0);
    }
    let mut t = crate::table::Table::new(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"]);
    for r in &list {
        t.row(vec![
            id(r),
            r.name.clone(),
            r.driver.clone(),
            "local".into(),
        ]);
    }
    t.print();
    Ok(0)
}

fn inspect_json(r: &NetworkRecord, nets: &Networks) -> serde_json::Value {
    let containers: serde_json::Map<String, serde_json::Value> = nets
        .endpoints(&r.id)
        .into_iter()
        .map(|e| {
            (
                e.container_id.clone(),
                serde_json::json!({
                    "Name": e.name,
                    "EndpointID": e.container_id,
                    "MacAddress": "",
                    "IPv4Address": format!("{}/{}", e.ip, r.subnet.prefix),
                    "IPv6Address": "",
                    "Aliases": e.aliases,
                }),
            )
        })
        .collect();
    serde_json::json!({
        "Name": r.name,
        "Id": r.id,
        "Created": gocker_runtime::logs::rfc3339(r.created, 0),
        "Scope": "local",
        "Driver": r.driver,
        "EnableIPv4": true,
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [{"Subnet": r.subnet.to_string(), "Gateway": r.gateway.to_string()}],
        },
        "Internal": r.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": {
            "com.docker.network.bridge.name": r.bridge,
            "com.docker.network.driver.mtu": r.mtu.to_string(),
        },
        "Labels": r.labels,
    })
}

fn builtin_json(name: &str, driver: &str) -> serde_json::Value {
    let mut config = Vec::new();
    let mut options = serde_json::Map::new();
    if name == "bridge" {
        if let Ok(b) = gocker_net::BridgeOptions::from_env() {
            config.push(serde_json::json!({"Subnet": b.subnet.to_string(), "Gateway": b.gateway().to_string()}));
            options.insert("com.docker.network.bridge.name".into(), b.name.into());
        }
    }
    serde_json::json!({
        "Name": name,
        "Id": builtin_id(name),
        "Scope": "local",
        "Driver": driver,
        "EnableIPv4": name == "bridge",
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": {},
        "Options": options,
        "Labels": {},
    })
}

fn inspect(a: &InspectArgs) -> Result<i32, Failure> {
    let nets = store();
    let mut found = Vec::new();
    let mut code = 0;
    for n in &a.names {
        if let Some((name, driver)) = BUILTIN
            .iter()
            .find(|(b, _)| b == n || builtin_id(b).starts_with(n.as_str()) && n.len() >= 12)
        {
            found.push(builtin_json(name, driver));
            continue;
        }
        match nets.find(n) {
            Ok(r) => found.push(inspect_json(&r, &nets)),
            Err(e) => {
                eprintln!("gocker: network inspect: {e}");
                code = fail(e).code;
            }
        }
    }
    let mut out = std::io::stdout().lock();
    crate::failure::wrote(writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&found).expect("networks serialise")
    ));
    Ok(code)
}

/// Removes one network unless a container uses it; the firewall's shared rules are rewritten
/// without it.
fn remove_one(
    nets: &Networks,
    lock: &gocker_net::ipam::NetLock,
    r: &NetworkRecord,
    used: &BTreeMap<String, Vec<(String, String)>>,
) -> Result<(), Failure> {
    if let Some(u) = used.get(&r.id) {
        let list = u
            .iter()
            .map(|(n, id)| format!("{n} ({})", &id[..12.min(id.len())]))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(fail(NetError::NetworkInUse {
            network: r.name.clone(),
            containers: list,
            first: u[0].0.clone(),
        }));
    }
    nets.remove(lock, r, &net_dir()).map_err(fail)?;
    gocker_net::refresh_firewall(&net_dir()).map_err(fail)
}

fn rm(a: &RmArgs) -> Result<i32, Failure> {
    let nets = store();
    let mut code = 0;
    let lock = match nets.lock() {
        Ok(l) => Some(l),
        // Rootless: nothing to remove (and the store may not be creatable).
        Err(_) if !rustix::process::geteuid().is_root() => None,
        Err(e) => return Err(fail(e)),
    };
    let used = users()?;
    for n in &a.names {
        let r = (|| -> Result<(), Failure> {
            if BUILTIN.iter().any(|(b, _)| b == n) {
                return Err(Failure {
                    code: 1,
                    message: format!("{n} is a pre-defined network and cannot be removed"),
                });
            }
            let rec = match nets.find(n) {
                Err(NetError::NetworkNotFound(_)) if a.force => return Ok(()),
                Err(e) => return Err(fail(e)),
                Ok(r) => r,
            };
            let lock = lock.as_ref().ok_or_else(|| usage(ROOTLESS))?;
            remove_one(&nets, lock, &rec, &used)?;
            println!("{n}");
            Ok(())
        })();
        if let Err(f) = r {
            eprintln!("gocker: network rm: {}", f.message);
            code = f.code;
        }
    }
    Ok(code)
}

fn prune(a: &PruneArgs) -> Result<i32, Failure> {
    let mut want = Vec::new();
    for f in &a.filters {
        match f
            .split_once("!=")
            .map(|(k, v)| (k, v, false))
            .or_else(|| f.split_once('=').map(|(k, v)| (k, v, true)))
        {
            Some(("label", v, positive)) if !v.is_empty() => want.push((v.to_owned(), positive)),
            _ => {
                return Err(usage(format!(
                    "--filter {f:?}: supported: label=KEY[=VALUE], label!=KEY[=VALUE]"
                )))
            }
        }
    }
    if !a.force
        && !crate::failure::confirmed(
            "WARNING! This will remove all custom networks not used by at least one container.",
        )
    {
        eprintln!("network prune cancelled: nothing removed");
        return Ok(0);
    }
    let nets = store();
    let list = nets.list();
    if list.is_empty() {
        return Ok(0);
    }
    let lock = nets.lock().map_err(fail)?;
    let used = users()?;
    let mut deleted = Vec::new();
    let mut code = 0;
    for r in list {
        if used.contains_key(&r.id)
            || !nets.endpoints(&r.id).is_empty()
            || !want
                .iter()
                .all(|(l, pos)| label_matches(&r.labels, l) == *pos)
        {
            continue;
        }
        match remove_one(&nets, &lock, &r, &used) {
            Ok(()) => deleted.push(r.name),
            Err(f) => {
                eprintln!("gocker: network prune: {}", f.message);
                code = f.code;
            }
        }
    }
    if !deleted.is_empty() {
        println!("Deleted Networks:");
        for n in &deleted {
            println!("{n}");
        }
    }
    Ok(code)
}

/// A user-defined network for `connect`/`disconnect` (the predefined ones are modes, chosen at
/// `run`).
fn user_network(name: &str) -> Result<NetworkRecord, Failure> {
    if !rustix::process::geteuid().is_root() {
        return Err(usage(ROOTLESS));
    }
    store().find(name).map_err(|e| match e {
        NetError::NetworkNotFound(_) if BUILTIN.iter().any(|(n, _)| *n == name) => usage(format!(
            "network {name:?} is a mode chosen at `run --network {name}`, not a network a running container can be connected to"
        )),
        NetError::NetworkNotFound(_) => Failure {
            code: 1,
            message: format!("network {name} not found (see `gocker network ls`)"),
        },
        e => fail(e),
    })
}

/// The container `name` of the state store.
fn container(name: &str) -> Result<gocker_runtime::ContainerState, Failure> {
    let st = StateStore::open(StateStore::default_root())?;
    st.collect_stale();
    st.lookup(name).map_err(Failure::from)
}

fn connect(a: &ConnectArgs) -> Result<i32, Failure> {
    let rec = user_network(&a.network)?;
    let aliases = a
        .aliases
        .iter()
        .map(|v| gocker_net::parse_alias(v).map_err(fail))
        .collect::<Result<Vec<_>, _>>()?;
    let st = container(&a.container)?;
    let running = st.status == gocker_runtime::Status::Running && StateStore::monitor_alive(&st);
    let pid = st.pid.filter(|_| running).ok_or_else(|| {
        usage(format!(
            "container {} is not running: only a running container can be connected",
            st.name
        ))
    })?;
    gocker_net::connect::connect(
        &net_dir(),
        &rec,
        &gocker_net::connect::Target {
            id: &st.id,
            name: &st.name,
            pid,
            aliases,
        },
    )
    .map_err(fail)?;
    Ok(0)
}

fn disconnect(a: &DisconnectArgs) -> Result<i32, Failure> {
    let rec = user_network(&a.network)?;
    let st = container(&a.container)?;
    gocker_net::connect::disconnect(&net_dir(), &rec, &st.id, &st.name, a.force).map_err(fail)?;
    Ok(0)
}

/// `inspect`'s NetworkSettings.Networks of a container on the network `net_id`: its name →
/// NetworkID, IPAddress, IPPrefixLen, Gateway, Aliases (IPAddress empty while it is not running).
pub fn container_json(net_id: &str, container_id: &str) -> serde_json::Value {
    let nets = store();
    let Ok(r) = nets.find(net_id) else {
        return serde_json::json!({});
    };
    let ep = nets
        .endpoints(&r.id)
        .into_iter()
        .find(|e| e.container_id == container_id);
    let mut m = serde_json::Map::new();
    m.insert(
        r.name.clone(),
        serde_json::json!({
            "NetworkID": r.id,
            "EndpointID": ep.as_ref().map(|e| e.container_id.clone()).unwrap_or_default(),
            "IPAddress": ep.as_ref().map(|e| e.ip.to_string()).unwrap_or_default(),
            "IPPrefixLen": if ep.is_some() { r.subnet.prefix } else { 0 },
            "Gateway": if ep.is_some() { r.gateway.to_string() } else { String::new() },
            "Aliases": ep.map(|e| e.aliases).unwrap_or_default(),
        }),
    );
    serde_json::Value::Object(m)
}

/// For `run --network NAME`: the user-defined network NAME, or why there is none.
pub fn lookup_for_run(name: &str) -> Result<NetworkRecord, Failure> {
    if !rustix::process::geteuid().is_root() {
        return Err(usage(format!(
            "--network {name:?}: not a network mode (none, host, bridge, slirp4netns, pasta); {ROOTLESS}"
        )));
    }
    store().find(name).map_err(|e| match e {
        NetError::NetworkNotFound(_) => usage(format!(
            "--network {name:?}: no such network: create it with `gocker network create {name}`, or use a mode (none, host, bridge, slirp4netns, pasta)"
        )),
        e => usage(format!("--network {name:?}: {e}")),
    })
}
