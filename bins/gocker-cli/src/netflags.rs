//! `gocker run` network flags (--network, -p, --dns, --add-host, --icc) and --cap-add/--cap-drop.

use std::str::FromStr;

use gocker_net::{Mode, NetworkOptions};
use oci_spec::runtime::{Capability, Spec};

use crate::cli::RunArgs;
use crate::failure::{usage, Failure};

fn net_err(e: gocker_net::NetError) -> Failure {
    usage(e.to_string())
}

/// The container's network options from the flags.
pub(crate) fn network(
    a: &RunArgs,
    publish_all: &[String],
    container_name: &str,
) -> Result<NetworkOptions, Failure> {
    // The network namespace of another container (nsflags.rs): nothing of its own to set up.
    if a.network
        .as_deref()
        .is_some_and(|n| n.starts_with("container:"))
    {
        return Ok(NetworkOptions {
            mode: Mode::None,
            manage_files: false,
            ..NetworkOptions::default()
        });
    }
    let root = rustix::process::geteuid().is_root();
    // A mode asked for by name (--network or GOCKER_NETWORK) is checked after validation and
    // fails when it cannot work here; the default falls back with one warning line. A name that
    // is no mode is a user-defined network.
    let mut user = None;
    let (mode, fallback) = match &a.network {
        Some(m) => match Mode::from_str(m) {
            Ok(mode) => (mode, None),
            Err(_) => {
                user = Some(crate::network_cmds::lookup_for_run(m)?);
                (Mode::Bridge, None)
            }
        },
        None => {
            let (mode, why) = gocker_net::probe::default_mode(root);
            (mode, why.map(|w| (mode, w)))
        }
    };
    if !a.network_alias.is_empty() && user.is_none() {
        return Err(usage(format!(
            "--network-alias {:?}: network-scoped aliases are supported only on user-defined networks (--network NAME, from `gocker network create`), not on --network {}",
            a.network_alias[0], mode
        )));
    }
    let aliases = a
        .network_alias
        .iter()
        .map(|v| gocker_net::parse_alias(v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(net_err)?;
    let bridge = match &user {
        Some(r) => r.bridge_options(),
        None => gocker_net::BridgeOptions::from_env().map_err(net_err)?,
    };
    let user = user.map(|r| gocker_net::UserNetwork {
        id: r.id,
        name: r.name,
        container_name: container_name.to_owned(),
        aliases,
        internal: r.internal,
    });
    let opts = NetworkOptions {
        mode,
        ports: a
            .publish
            .iter()
            .chain(publish_all)
            .map(|p| gocker_net::parse_publish(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(net_err)?
            .into_iter()
            .flatten()
            .collect(),
        dns: a
            .dns
            .iter()
            .map(|d| gocker_net::parse_dns(d))
            .collect::<Result<_, _>>()
            .map_err(net_err)?,
        add_hosts: a
            .add_host
            .iter()
            .map(|h| gocker_net::parse_add_host(h))
            .collect::<Result<_, _>>()
            .map_err(net_err)?,
        isolate: !a.icc,
        bridge,
        manage_files: true,
        user,
    };
    if let Some((chosen, why)) = &fallback {
        if !opts.ports.is_empty() && *chosen == Mode::None {
            // Publishing needs a network: no silent fallback that drops the ports.
            return Err(usage(format!(
                "--publish needs a network, and the default network ({}) cannot work here: {}; fix: {}",
                why.mode, why.reason, why.fix
            )));
        }
    }
    opts.validate(root).map_err(|e| Failure {
        code: 125,
        message: e.to_string(),
    })?;
    match fallback {
        Some((chosen, why)) => eprintln!(
            "gocker: {}",
            gocker_net::probe::fallback_warning(chosen, &why)
        ),
        None if a.network.is_some() => {
            gocker_net::probe::check(opts.mode).map_err(|u| net_err(u.into()))?
        }
        None => {}
    }
    Ok(opts)
}

/// Records the user-defined network in the spec's annotations (`network rm` refuses a network
/// that a container, running or stopped, uses).
pub(crate) fn record(spec: &mut Spec, opts: &NetworkOptions) {
    if let Some(u) = &opts.user {
        let mut ann = spec.annotations().clone().unwrap_or_default();
        ann.insert(
            crate::network_cmds::NETWORK_ANNOTATION.to_owned(),
            u.id.clone(),
        );
        spec.set_annotations(Some(ann));
    }
}

pub(crate) fn all_caps() -> Vec<Capability> {
    // Every capability name oci-spec knows (strum's SCREAMING_SNAKE_CASE names).
    [
        "AUDIT_CONTROL",
        "AUDIT_READ",
        "AUDIT_WRITE",
        "BLOCK_SUSPEND",
        "BPF",
        "CHECKPOINT_RESTORE",
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "IPC_LOCK",
        "IPC_OWNER",
        "KILL",
        "LEASE",
        "LINUX_IMMUTABLE",
        "MAC_ADMIN",
        "MAC_OVERRIDE",
        "MKNOD",
        "NET_ADMIN",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_RAW",
        "PERFMON",
        "SETGID",
        "SETFCAP",
        "SETPCAP",
        "SETUID",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_CHROOT",
        "SYS_MODULE",
        "SYS_NICE",
        "SYS_PACCT",
        "SYS_PTRACE",
        "SYS_RAWIO",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "SYSLOG",
        "WAKE_ALARM",
    ]
    .into_iter()
    .filter_map(|n| Capability::from_str(n).ok())
    .collect()
}

fn parse_cap(flag: &str, v: &str) -> Result<Vec<Capability>, Failure> {
    let name = v.trim().to_ascii_uppercase();
    let name = name.strip_prefix("CAP_").unwrap_or(&name);
    if name == "ALL" {
        return Ok(all_caps());
    }
    Capability::from_str(name).map(|c| vec![c]).map_err(|_| {
        usage(format!(
            "{flag} {v:?}: unknown capability (e.g. NET_ADMIN, SYS_PTRACE, ALL)"
        ))
    })
}

/// Applies --cap-drop then --cap-add to the process's bounding, effective and permitted sets;
/// with NET_ADMIN in a network namespace of its own, binds /dev/net/tun so that tun/tap devices
/// can be created there.
pub(crate) fn capabilities(spec: &mut Spec, a: &RunArgs) -> Result<(), Failure> {
    if a.cap_add.is_empty() && a.cap_drop.is_empty() {
        return Ok(());
    }
    let process = spec
        .process_mut()
        .as_mut()
        .expect("default spec has a process");
    let mut caps = process
        .capabilities()
        .clone()
        .expect("default spec has capabilities");
    let mut set = caps.bounding().clone().unwrap_or_default();
    for d in &a.cap_drop {
        for c in parse_cap("--cap-drop", d)? {
            set.remove(&c);
        }
    }
    for d in &a.cap_add {
        set.extend(parse_cap("--cap-add", d)?);
    }
    let net_admin = set.contains(&Capability::NetAdmin);
    caps.set_bounding(Some(set.clone()));
    caps.set_effective(Some(set.clone()));
    caps.set_permitted(Some(set));
    process.set_capabilities(Some(caps));
    let own_netns = a.network.as_deref() != Some("host");
    if net_admin && own_netns && std::path::Path::new("/dev/net/tun").exists() {
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination("/dev/net/tun")
                .typ("bind")
                .source("/dev/net/tun")
                .options(vec!["bind".into(), "nosuid".into(), "noexec".into()])
                .build()
                .map_err(|e| usage(e.to_string()))?,
        );
        spec.set_mounts(Some(mounts));
    }
    Ok(())
}
