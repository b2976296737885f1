//! Per-container `/etc/resolv.conf` and `/etc/hosts`: generated into the container's state
//! directory and bound over the container's files (the container's own copies: editable inside,
//! never the host's files).

use std::net::{IpAddr, Ipv4Addr};

/// Docker's fallback when the host has only local resolvers the container cannot reach.
pub const FALLBACK_DNS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// resolv.conf for a container: `dns` when given; else the host's nameservers that are reachable
/// from the container (`keep_loopback` only in the host's namespace), else `builtin` (e.g.
/// slirp4netns's DNS forwarder), else docker's public fallback. `search` and `options` lines of
/// the host are kept.
pub fn resolv_conf(
    host: &str,
    dns: &[IpAddr],
    builtin: Option<Ipv4Addr>,
    keep_loopback: bool,
) -> String {
    let mut out = String::new();
    for l in host.lines() {
        let t = l.trim();
        if t.starts_with("search ") || t.starts_with("options ") || t.starts_with("domain ") {
            out.push_str(t);
            out.push('\n');
        }
    }
    let servers: Vec<String> = if !dns.is_empty() {
        dns.iter().map(|d| d.to_string()).collect()
    } else {
        let host_servers: Vec<String> = host
            .lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .map(|s| s.trim().to_owned())
            .filter(|s| {
                keep_loopback || !s.parse::<IpAddr>().map(|a| a.is_loopback()).unwrap_or(true)
            })
            .collect();
        match (host_servers.is_empty(), builtin) {
            (_, Some(b)) => vec![b.to_string()],
            (false, None) => host_servers,
            (true, None) => FALLBACK_DNS.iter().map(|s| s.to_string()).collect(),
        }
    };
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    out
}

/// /etc/hosts: localhost, the hostname (on the container's address when it has one, else on
/// 127.0.0.1) and the `--add-host` entries.
pub fn hosts(hostname: &str, ip: Option<Ipv4Addr>, extra: &[(String, IpAddr)]) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    match ip {
        Some(a) => out.push_str(&format!("{a}\t{hostname}\n")),
        None => out.push_str(&format!("127.0.0.1\t{hostname}\n")),
    }
    for (h, a) in extra {
        out.push_str(&format!("{a}\t{h}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "# generated\nsearch example.org\nnameserver 127.0.0.53\nnameserver 192.0.2.53\noptions edns0\n";

    #[test]
    fn resolv_filters_loopback_and_keeps_search() {
        let r = resolv_conf(HOST, &[], None, false);
        assert_eq!(
            r,
            "search example.org\noptions edns0\nnameserver 192.0.2.53\n"
        );
        let only_local = resolv_conf("nameserver 127.0.0.53\n", &[], None, false);
        assert_eq!(only_local, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        assert!(resolv_conf(HOST, &[], None, true).contains("127.0.0.53"));
    }

    #[test]
    fn resolv_dns_flag_and_builtin_win() {
        let d: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(
            resolv_conf(HOST, &[d], Some(Ipv4Addr::new(10, 0, 2, 3)), false)
                .ends_with("nameserver 192.0.2.1\n")
        );
        assert!(
            resolv_conf(HOST, &[], Some(Ipv4Addr::new(10, 0, 2, 3)), false)
                .ends_with("nameserver 10.0.2.3\n")
        );
    }

    #[test]
    fn hosts_maps_hostname() {
        let h = hosts(
            "box",
            Some(Ipv4Addr::new(10, 88, 0, 2)),
            &[("db".into(), "192.0.2.9".parse().unwrap())],
        );
        assert!(
            h.contains("10.88.0.2\tbox\n")
                && h.contains("192.0.2.9\tdb\n")
                && h.starts_with("127.0.0.1\tlocalhost\n")
        );
        assert!(hosts("box", None, &[]).contains("127.0.0.1\tbox\n"));
    }
}
