use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Errors of gocker-net. Each names the interface, address, path or value it is about.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("netlink {op} {target}: {source}")]
    Netlink {
        op: &'static str,
        target: String,
        source: std::io::Error,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{flag} {value:?}: {reason}")]
    Invalid {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "--network {mode}: {helper} is not installed (install the Debian package `{package}`)"
    )]
    MissingHelper {
        mode: String,
        helper: &'static str,
        package: &'static str,
    },
    /// A mode that cannot work on this host (see [`crate::probe`]).
    #[error("--network {mode}: {reason}; fix: {fix}")]
    Unavailable {
        mode: String,
        reason: String,
        fix: String,
    },
    #[error("{helper}: {message}")]
    Helper {
        helper: &'static str,
        message: String,
    },
    #[error("no free address in {subnet}/{prefix} for the bridge network (all leases taken)")]
    SubnetFull { subnet: Ipv4Addr, prefix: u8 },
    #[error("bridge subnet {subnet}/{prefix} collides with the host route {route} (set GOCKER_BRIDGE_SUBNET to a free range)")]
    SubnetCollision {
        subnet: Ipv4Addr,
        prefix: u8,
        route: String,
    },
    #[error("nft: {0}")]
    Nft(String),
    #[error("--network {mode} needs root (rootless containers use slirp4netns or pasta)")]
    NeedsRoot { mode: String },
    #[error("publishing ports needs a network namespace with a route out (--network bridge, slirp4netns or pasta), not --network {mode}")]
    PortsNeedNetwork { mode: String },

    #[error("network with name {0} already exists")]
    NetworkExists(String),
    #[error("network {0} not found (see `gocker network ls`)")]
    NetworkNotFound(String),
    #[error("container {container} is already connected to network {network}")]
    AlreadyConnected { container: String, network: String },
    #[error("container {container} is not connected to network {network}")]
    NotConnected { container: String, network: String },
    #[error("container {container} was started on network {network}: that network cannot be disconnected (it carries the default route); stop the container instead")]
    PrimaryNetwork { container: String, network: String },
    #[error("container {container} is not on a bridge network (started with --network none, host, slirp4netns or pasta, or its network is gone): only a container on a bridge can be connected to another network")]
    NotOnBridge { container: String },
    #[error("network {network} is in use by container {containers}: remove the container first (`gocker rm -f {first}`)")]
    NetworkInUse {
        network: String,
        containers: String,
        first: String,
    },
    #[error("--subnet {subnet} of network {network} overlaps {other_subnet} of {other}")]
    SubnetOverlap {
        subnet: String,
        network: String,
        other_subnet: String,
        other: String,
    },
}

pub type Result<T> = std::result::Result<T, NetError>;

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> NetError {
    let path = path.into();
    move |source| NetError::Io { op, path, source }
}
