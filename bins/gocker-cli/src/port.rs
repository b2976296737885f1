//! `gocker port CONTAINER [PRIVATE_PORT[/PROTO]]`, as docker's: the published ports (`run -p`)
//! of a running container, `80/tcp -> 0.0.0.0:8080`, or the host addresses of one of them.
//! `run` records the ports in the container's spec (an annotation), so that a `--rm` container
//! has them too.

use std::collections::HashMap;

use gocker_net::PortMapping;
use gocker_runtime::state::StateStore;
use gocker_runtime::Status;

use crate::cli::PortArgs;
use crate::failure::{report, usage, Failure};

/// The annotation with the container's published ports: JSON, a list of [`PortMapping`].
const PORTS_ANNOTATION: &str = "io.gocker.ports";

/// Records `ports` in `spec` for [`port`] (nothing when there are none).
pub(crate) fn record(spec: &mut oci_spec::runtime::Spec, ports: &[PortMapping]) {
    if ports.is_empty() {
        return;
    }
    let mut ann = spec.annotations().clone().unwrap_or_default();
    ann.insert(
        PORTS_ANNOTATION.to_owned(),
        serde_json::to_string(ports).expect("ports serialise"),
    );
    spec.set_annotations(Some(ann));
}

/// The published ports as docker's `ps` shows them: `127.0.0.1:8080->80/tcp, ...`.
pub(crate) fn ps_text(ports: &[PortMapping]) -> String {
    ports
        .iter()
        .map(|p| {
            let ip = p.host_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
            format!(
                "{ip}:{}->{}/{}",
                p.host_port,
                p.container_port,
                p.proto.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The published ports as docker's `inspect` shows them (`NetworkSettings.Ports`):
/// `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}`.
pub(crate) fn inspect_json(ports: &[PortMapping]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for p in ports {
        let key = format!("{}/{}", p.container_port, p.proto.as_str());
        let entry = serde_json::json!({
            "HostIp": p.host_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED).to_string(),
            "HostPort": p.host_port.to_string(),
        });
        match map.get_mut(&key).and_then(|v| v.as_array_mut()) {
            Some(list) => list.push(entry),
            None => {
                map.insert(key, serde_json::json!([entry]));
            }
        }
    }
    serde_json::Value::Object(map)
}

/// The ports recorded in the spec saved in the container's directory.
pub(crate) fn recorded(store: &StateStore, id: &str) -> Vec<PortMapping> {
    let spec: Option<serde_json::Value> =
        std::fs::read(store.container_dir(id).join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
    spec.and_then(|s| {
        let ann: HashMap<String, String> = serde_json::from_value(s["annotations"].clone()).ok()?;
        serde_json::from_str(ann.get(PORTS_ANNOTATION)?).ok()
    })
    .unwrap_or_default()
}

/// `PORT[/PROTO]` (tcp by default), as docker's `port` takes it.
fn private_port(s: &str) -> Result<(u16, gocker_net::ports::Proto), Failure> {
    use gocker_net::ports::Proto;
    let (p, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let proto = match proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        _ => {
            return Err(usage(format!(
                "invalid protocol {proto:?} in {s:?} (tcp or udp)"
            )))
        }
    };
    match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok((n, proto)),
        _ => Err(usage(format!(
            "invalid port {s:?} (PORT[/tcp|/udp], PORT in 1..65535)"
        ))),
    }
}

fn host(m: &PortMapping) -> String {
    let ip = m.host_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
    format!("{ip}:{}", m.host_port)
}

fn port_inner(a: &PortArgs) -> Result<(), Failure> {
    let wanted = a.port.as_deref().map(private_port).transpose()?;
    let store = StateStore::open(StateStore::default_root())?;
    store.collect_stale();
    let st = store.lookup(&a.container)?;
    // docker lists the ports of a running container only (a stopped one has none bound).
    let running = st.status != Status::Stopped && StateStore::monitor_alive(&st);
    let mut ports = if running {
        recorded(&store, &st.id)
    } else {
        Vec::new()
    };
    ports.sort_by_key(|m| (m.container_port, m.proto.as_str(), m.host_port));
    let mut out = String::new();
    match wanted {
        None => {
            for m in &ports {
                out.push_str(&format!(
                    "{}/{} -> {}\n",
                    m.container_port,
                    m.proto.as_str(),
                    host(m)
                ));
            }
        }
        Some((p, proto)) => {
            for m in ports
                .iter()
                .filter(|m| m.container_port == p && m.proto == proto)
            {
                out.push_str(&host(m));
                out.push('\n');
            }
            if out.is_empty() {
                return Err(usage(format!(
                    "No public port '{p}/{}' published for {}",
                    proto.as_str(),
                    a.container
                )));
            }
        }
    }
    crate::failure::wrote(std::io::Write::write_all(
        &mut std::io::stdout(),
        out.as_bytes(),
    ));
    Ok(())
}

pub(crate) fn port(a: PortArgs) -> i32 {
    match port_inner(&a) {
        Ok(()) => 0,
        Err(f) => report(f),
    }
}
