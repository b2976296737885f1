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

impl std::str::FromStr for PortMapping {
    type Err = NetError;

    fn from_str(v: &str) -> Result<PortMapping> {
        let bad = |reason: String| NetError::Invalid {
            flag: "--publish",
            value: v.into(),
            reason,
        };
        let (rest, proto) = match v.rsplit_once('/') {
            Some((r, "tcp")) => (r, Proto::Tcp),
            Some((r, "udp")) => (r, Proto::Udp),
            Some((_, p)) => return Err(bad(format!("unknown protocol {p:?} (tcp or udp)"))),
            None => (v, Proto::Tcp),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let (ip, host, cont) = match parts.as_slice() {
            [h, c] => (None, *h, *c),
            [ip, h, c] => (Some(*ip), *h, *c),
            [_] => return Err(bad("expected [IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp] (a host port is required)".into())),
            _ => return Err(bad("expected [IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp] (IPv6 host addresses are not supported)".into())),
        };
        let host_ip = match ip {
            None | Some("") => None,
            Some(s) => match s.parse::<Ipv4Addr>() {
                Ok(a) if a.is_unspecified() => None,
                Ok(a) => Some(a),
                Err(_) => return Err(bad(format!("host address {s:?} is not an IPv4 address"))),
            },
        };
        Ok(PortMapping {
            host_ip,
            host_port: port(v, "host", host)?,
            container_port: port(v, "container", cont)?,
            proto,
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
