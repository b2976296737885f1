//! The runtime's side of networking: gocker-net does the work; this glues it into the rings.
//! ring1 brings up `lo`; ring0 prepares the container's resolv.conf/hosts and bridge lease before
//! the rings exist, and attaches the network once ring1's namespace exists (before the payload
//! starts). The network is torn down after the rings (see `Container::teardown`).

use std::time::Duration;

use std::os::fd::AsFd;

use gocker_mounts::resolve::{open_in_root, Create};

pub use crate::state::net_dir;
use crate::state::{ContainerState, StateStore};
use crate::{ContainerConfig, Result, RootMode, RuntimeError};

/// Sets `IFF_UP` on the loopback interface of the caller's network namespace (netlink).
pub(crate) fn loopback_up() -> Result<()> {
    gocker_net::netlink::loopback_up().map_err(|e| RuntimeError::Ring {
        stage: "loopback".into(),
        message: e.to_string(),
    })
}

/// Before the rings: validates the options, leases an address, writes resolv.conf and hosts and
/// adds them to the spec as the container's own files (bound as copies, see crate::own_files).
/// `None` when there is nothing to do (an OCI bundle without network options: loopback only, its
/// rootfs's own files).
pub(crate) fn prepare(
    cfg: &mut ContainerConfig,
    store: &StateStore,
) -> Result<Option<gocker_net::Network>> {
    let opts = cfg.network.clone();
    let has_netns = cfg.namespaces().0.contains(gocker_ns::Namespace::Net);
    if opts.mode == gocker_net::Mode::None && !opts.manage_files {
        return Ok(None);
    }
    if has_netns == (opts.mode == gocker_net::Mode::Host) {
        return Err(RuntimeError::Config(format!(
            "--network {}: the spec {} a network namespace",
            opts.mode,
            if has_netns { "asks for" } else { "has no" }
        )));
    }
    opts.validate(rustix::process::geteuid().is_root())?;
    let hostname = cfg
        .spec
        .hostname()
        .clone()
        .unwrap_or_else(|| "localhost".into());
    let net = gocker_net::Network::prepare(
        opts,
        &cfg.id,
        &hostname,
        &net_dir(store.root()),
        &store.container_dir(&cfg.id),
    )?;
    // The mount targets: a rootfs without /etc/resolv.conf or /etc/hosts gets an empty file made
    // here (confined to the rootfs), as ring2 would make a bind target, but with ring0's
    // privileges; where even that fails (a read-only rootfs, say) the file is skipped.
    let rootfd = match cfg.root_mode {
        RootMode::Rootfs => Some(gocker_mounts::root::open_dir(&cfg.rootfs()?)?),
        RootMode::HostView => None,
    };
    let mut mounts = cfg.spec.mounts().clone().unwrap_or_default();
    for (src, dest) in net.files() {
        if let Some(m) = mounts.iter().find(|m| m.destination().as_os_str() == *dest) {
            // A configuration saved by an earlier run (`gocker start`) binds the same template
            // again: still one of the container's own files. Anything else there (a volume) is
            // the user's.
            if m.source().as_deref() == Some(src.as_path()) {
                crate::own_files::register(&mut cfg.own_files, m.destination());
            }
            continue;
        }
        if let Some(fd) = &rootfd {
            if let Err(e) = open_in_root(fd.as_fd(), std::path::Path::new(dest), Create::File) {
                tracing::debug!("no {dest} in the container: {e}");
                continue;
            }
        }
        // The container gets a copy on a bounded tmpfs, not this file (crate::own_files).
        crate::own_files::add(&mut cfg.own_files, &mut mounts, dest, src);
    }
    cfg.spec.set_mounts(Some(mounts));
    Ok(Some(net))
}

/// Once ring1 (and its network namespace) exists.
pub(crate) fn attach(
    net: &mut Option<gocker_net::Network>,
    state: &mut ContainerState,
    ring1: Option<i32>,
    timeout: Duration,
) -> Result<()> {
    let (Some(n), Some(pid)) = (net.as_mut(), ring1) else {
        return Ok(());
    };
    n.attach(pid, timeout)?;
    state.ip = n.ip();
    Ok(())
}

/// `gocker system prune`: network leftovers, and the bridge when no container uses it.
pub fn prune(store: &StateStore) -> Vec<String> {
    gocker_net::prune(&net_dir(store.root()))
}
