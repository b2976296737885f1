//! `-p/--publish [IP:]HOST:CONTAINER[/tcp|/udp]`.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::{NetError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// Host address to listen on; `None` means every address (0.0.0.0).
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

fn port(flag_value: &str, what: &str, s: &str) -> Result<u16> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(NetError::Invalid {
            flag: "--publish",
            value: flag_value.into(),
            reason: format!("{what} port {s:?} must be a number in 1..65535"),
        }),
    }
}

/// The words of a `-p` value: host address, host part, container part, protocol.
struct Words<'a> {
    host_ip: Option<Ipv4Addr>,
    host: &'a str,
    cont: &'a str,
    proto: Proto,
}

fn invalid(v: &str, reason: String) -> NetError {
    NetError::Invalid {
        flag: "--publish",
        value: v.into(),
        reason,
    }
}

/// Splits `[IP:][HOST:]CONTAINER[/proto]` (an empty host part when there is none).
fn words(v: &str) -> Result<Words<'_>> {
    let (rest, proto) = match v.rsplit_once('/') {
        Some((r, "tcp")) => (r, Proto::Tcp),
        Some((r, "udp")) => (r, Proto::Udp),
        Some((_, p)) => return Err(invalid(v, format!("unknown protocol {p:?} (tcp or udp)"))),
        None => (v, Proto::Tcp),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, cont) = match parts.as_slice() {
        [c] => (None, "", *c),
        [h, c] => (None, *h, *c),
        [ip, h, c] => (Some(*ip), *h, *c),
        _ => return Err(invalid(v, "expected [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|/udp] (IPv6 host addresses are not supported)".into())),
    };
    let host_ip = match ip {
        None | Some("") => None,
        Some(s) => match s.parse::<Ipv4Addr>() {
            Ok(a) if a.is_unspecified() => None,
            Ok(a) => Some(a),
            Err(_) => {
                return Err(invalid(
                    v,
                    format!("host address {s:?} is not an IPv4 address"),
                ))
            }
        },
    };
    Ok(Words {
        host_ip,
        host,
        cont,
        proto,
    })
}

/// One mapping with both ports given (`[IP:]HOST:CONTAINER[/proto]`); [`parse_publish`] takes
/// ranges and a missing host port too.
impl std::str::FromStr for PortMapping {
    type Err = NetError;

    fn from_str(v: &str) -> Result<PortMapping> {
        let w = words(v)?;
        if w.host.is_empty() {
            return Err(invalid(
                v,
                "expected [IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp] (a host port is required)"
                    .into(),
            ));
        }
        Ok(PortMapping {
            host_ip: w.host_ip,
            host_port: port(v, "host", w.host)?,
            container_port: port(v, "container", w.cont)?,
            proto: w.proto,
        })
    }
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        write!(
            f,
            "{ip}:{}:{}/{}",
            self.host_port,
            self.container_port,
            self.proto.as_str()
        )
    }
}

/// `-p` as docker takes it, to one mapping or several:
/// - `[IP:]HOST:CONTAINER[/proto]`, one port each;
/// - ranges of equal length, `[IP:]8000-8002:80-82`;
/// - no host port, `CONTAINER`, `IP::CONTAINER` or a range of them: each container port gets a
///   free host port, chosen by asking the kernel for an ephemeral one on the host address (as
///   docker picks from its ephemeral range; `gocker port` and `inspect` show which).
pub fn parse_publish(v: &str) -> Result<Vec<PortMapping>> {
    let bad = |reason: String| invalid(v, reason);
    let Words {
        host_ip,
        host,
        cont,
        proto,
    } = words(v)?;
    let range = |what: &str, s: &str| -> Result<(u16, u16)> {
        match s.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (port(v, what, a)?, port(v, what, b)?);
                if a > b {
                    return Err(bad(format!("{what} port range {s:?} runs backwards")));
                }
                Ok((a, b))
            }
            None => {
                let p = port(v, what, s)?;
                Ok((p, p))
            }
        }
    };
    let (c0, c1) = range("container", cont)?;
    let hosts: Vec<u16> = if host.is_empty() {
        (c0..=c1)
            .map(|_| free_port(host_ip, proto).map_err(|e| bad(format!("no free host port: {e}"))))
            .collect::<Result<_>>()?
    } else {
        let (h0, h1) = range("host", host)?;
        if h1 - h0 != c1 - c0 {
            return Err(bad(format!(
                "the host range {host} and the container range {cont} differ in length"
            )));
        }
        (h0..=h1).collect()
    };
    Ok(hosts
        .into_iter()
        .zip(c0..=c1)
        .map(|(host_port, container_port)| PortMapping {
            host_ip,
            host_port,
            container_port,
            proto,
        })
        .collect())
}

/// A host port the kernel reports free on `ip` now (bound to port 0, then released).
fn free_port(ip: Option<Ipv4Addr>, proto: Proto) -> std::io::Result<u16> {
    let at = std::net::SocketAddrV4::new(ip.unwrap_or(Ipv4Addr::UNSPECIFIED), 0);
    Ok(match proto {
        Proto::Tcp => std::net::TcpListener::bind(at)?.local_addr()?.port(),
        Proto::Udp => std::net::UdpSocket::bind(at)?.local_addr()?.port(),
    })
}

/// Rejects two mappings of the same host address, port and protocol.
pub fn check_unique(ports: &[PortMapping]) -> Result<()> {
    for (i, a) in ports.iter().enumerate() {
        for b in &ports[i + 1..] {
            let overlap = a.host_ip.is_none() || b.host_ip.is_none() || a.host_ip == b.host_ip;
            if overlap && a.host_port == b.host_port && a.proto == b.proto {
                return Err(NetError::Invalid {
                    flag: "--publish",
                    value: b.to_string(),
                    reason: format!("host port already published by {a}"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_takes_ranges_and_leaves_the_host_port_to_the_kernel() {
        let m = parse_publish("127.0.0.1:8000-8002:80-82/udp").unwrap();
        assert_eq!(
            m.iter()
                .map(|p| (p.host_port, p.container_port))
                .collect::<Vec<_>>(),
            [(8000, 80), (8001, 81), (8002, 82)]
        );
        assert!(m
            .iter()
            .all(|p| p.proto == Proto::Udp && p.host_ip == Some(Ipv4Addr::LOCALHOST)));
        for v in ["80", "127.0.0.1::80", "80-81"] {
            let m = parse_publish(v).unwrap();
            assert!(m.iter().all(|p| p.host_port >= 1024), "{v}: {m:?}");
            assert_eq!(m[0].container_port, 80, "{v}");
        }
        assert_eq!(
            parse_publish("8080:80").unwrap(),
            ["8080:80".parse::<PortMapping>().unwrap()]
        );
        assert!(parse_publish("8000-8001:80").is_err(), "lengths differ");
        assert!(parse_publish("82-80").is_err(), "backwards");
        assert!(parse_publish("0:80").is_err());
        assert!(parse_publish("80/sctp").is_err());
    }

    #[test]
    fn parses_docker_forms() {
        let p: PortMapping = "8080:80".parse().unwrap();
        assert_eq!(
            p,
            PortMapping {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                proto: Proto::Tcp
            }
        );
        let p: PortMapping = "127.0.0.1:18080:80/udp".parse().unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(p.proto, Proto::Udp);
        let p: PortMapping = "0.0.0.0:1:2/tcp".parse().unwrap();
        assert_eq!(p.host_ip, None);
        assert_eq!(p.to_string(), "0.0.0.0:1:2/tcp");
    }

    #[test]
    fn errors_name_flag_and_value() {
        for (v, why) in [
            ("80", "host port is required"),
            ("0:80", "must be a number"),
            ("70000:80", "must be a number"),
            ("1:2/sctp", "unknown protocol"),
            ("foo:1:2", "not an IPv4 address"),
            ("::1:1:2", "IPv6"),
            ("a:80", "must be a number"),
        ] {
            let e = v.parse::<PortMapping>().unwrap_err().to_string();
            assert!(
                e.starts_with("--publish ") && e.contains(&format!("{v:?}")) && e.contains(why),
                "{v}: {e}"
            );
        }
    }

    #[test]
    fn duplicates_are_rejected() {
        let a: PortMapping = "8080:80".parse().unwrap();
        let b: PortMapping = "127.0.0.1:8080:81".parse().unwrap();
        let c: PortMapping = "8080:80/udp".parse().unwrap();
        assert!(check_unique(&[a, c]).is_ok());
        assert!(check_unique(&[a, b])
            .unwrap_err()
            .to_string()
            .contains("already published"));
    }
}
