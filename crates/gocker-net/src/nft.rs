//! NAT and port publishing in one nftables table owned by gocker (`ip gocker`), built as nft's
//! JSON command language and applied atomically with `nft -j -f -` (see docs/networking.md for
//! why not a netlink library). Rule building is pure and unit-tested; [`Firewall`] is the seam.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::ipam::Subnet;
use crate::ports::PortMapping;
use crate::{NetError, Result};

pub const FAMILY: &str = "ip";
pub const TABLE: &str = "gocker";
/// Comment of the rules shared by all containers of the bridge.
pub const SHARED: &str = "gocker:bridge";

/// Comment carried by a container's rules.
pub fn owner_comment(id: &str) -> String {
    format!("gocker:{id}")
}

/// Applies and lists nftables state.
pub trait Firewall {
    /// Applies one batch (`{"nftables": [...]}`) atomically.
    fn apply(&self, batch: &Value) -> Result<()>;
    /// `nft -j list table ip gocker`, or None when the table does not exist.
    fn list(&self) -> Result<Option<Value>>;
    /// Deletes the table; Ok(false) when it did not exist.
    fn delete_table(&self) -> Result<bool> {
        match self.apply(&delete_table_batch()) {
            Ok(()) => Ok(true),
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The `nft` binary (package nftables).
pub struct NftCli;

impl Firewall for NftCli {
    fn apply(&self, batch: &Value) -> Result<()> {
        let mut child = Command::new("nft")
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                NetError::Nft(format!(
                    "cannot run `nft` from PATH {:?}: {e} (install the Debian package `nftables`, or use --network none)",
                    std::env::var("PATH").unwrap_or_default()
                ))
            })?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(batch.to_string().as_bytes())
            .map_err(|e| NetError::Nft(e.to_string()))?;
        let out = child
            .wait_with_output()
            .map_err(|e| NetError::Nft(e.to_string()))?;
        if !out.status.success() {
            return Err(NetError::Nft(format!(
                "{}: {}",
                String::from_utf8_lossy(&out.stderr).trim(),
                batch
            )));
        }
        Ok(())
    }

    fn list(&self) -> Result<Option<Value>> {
        let out = Command::new("nft")
            .args(["-j", "list", "table", FAMILY, TABLE])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                NetError::Nft(format!(
                    "cannot run `nft` from PATH {:?}: {e} (install the Debian package `nftables`, or use --network none)",
                    std::env::var("PATH").unwrap_or_default()
                ))
            })?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("No such file or directory") || err.contains("does not exist") {
                return Ok(None);
            }
            return Err(NetError::Nft(format!(
                "list table {FAMILY} {TABLE}: {}",
                err.trim()
            )));
        }
        serde_json::from_slice(&out.stdout)
            .map(Some)
            .map_err(|e| NetError::Nft(format!("parse nft -j output: {e}")))
    }

    /// The last container out deletes the table on every run, so this one is spoken directly over
    /// nfnetlink (one batch with NFT_MSG_DELTABLE) instead of starting nft (~10 ms).
    fn delete_table(&self) -> Result<bool> {
        delete_table_netlink()
    }
}

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_DELTABLE: u16 = 2;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFTA_TABLE_NAME: u16 = 1;
const NFPROTO_IPV4: u8 = 2;

/// One nfnetlink message: nlmsghdr, nfgenmsg, attributes (already padded).
fn nfnl_msg(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16, attrs: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[family, 0]);
    m.extend_from_slice(&res_id.to_be_bytes());
    m.extend_from_slice(attrs);
    m
}

/// A string attribute (NUL-terminated, padded to 4 bytes).
fn nla_str(kind: u16, s: &str) -> Vec<u8> {
    let len = 4 + s.len() + 1;
    let mut a = Vec::with_capacity((len + 3) & !3);
    a.extend_from_slice(&(len as u16).to_ne_bytes());
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(s.as_bytes());
    a.push(0);
    while a.len() % 4 != 0 {
        a.push(0);
    }
    a
}

/// The batch that deletes table `ip gocker`.
pub fn delete_table_message(seq: u32) -> Vec<u8> {
    use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST};
    let mut b = nfnl_msg(
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    b.extend(nfnl_msg(
        (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELTABLE,
        NLM_F_REQUEST | NLM_F_ACK,
        seq + 1,
        NFPROTO_IPV4,
        0,
        &nla_str(NFTA_TABLE_NAME, TABLE),
    ));
    b.extend(nfnl_msg(
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        seq + 2,
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    ));
    b
}

fn delete_table_netlink() -> Result<bool> {
    use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};
    let err = |what: &str, e: std::io::Error| {
        NetError::Nft(format!("delete table {FAMILY} {TABLE}: {what}: {e}"))
    };
    let mut sock =
        Socket::new(NETLINK_NETFILTER).map_err(|e| err("socket(NETLINK_NETFILTER)", e))?;
    sock.bind_auto().map_err(|e| err("bind", e))?;
    let seq = 1;
    sock.send(&delete_table_message(seq), 0)
        .map_err(|e| err("send", e))?;
    loop {
        let (data, _) = sock.recv_from_full().map_err(|e| err("recv", e))?;
        let mut off = 0;
        while off + 20 <= data.len() {
            let len = u32::from_ne_bytes(data[off..off + 4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes(data[off + 4..off + 6].try_into().expect("2 bytes"));
            let mseq = u32::from_ne_bytes(data[off + 8..off + 12].try_into().expect("4 bytes"));
            if kind == netlink_packet_core::NLMSG_ERROR && mseq == seq + 1 {
                let code =
                    i32::from_ne_bytes(data[off + 16..off + 20].try_into().expect("4 bytes"));
                return match -code {
                    0 => Ok(true),
                    libc::ENOENT => Ok(false),
                    e => Err(err(
                        "NFT_MSG_DELTABLE",
                        std::io::Error::from_raw_os_error(e),
                    )),
                };
            }
            if len == 0 {
                break;
            }
            off += (len + 3) & !3;
        }
    }
}

fn m(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn ip_field(field: &str) -> Value {
    json!({"payload": {"protocol": "ip", "field": field}})
}

fn prefix(s: &Subnet) -> Value {
    json!({"prefix": {"addr": s.addr.to_string(), "len": s.prefix}})
}

fn rule(chain: &str, comment: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {"family": FAMILY, "table": TABLE, "chain": chain, "comment": comment, "expr": expr}}})
}

/// One bridge as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeNet {
    pub bridge: String,
    pub subnet: Subnet,
    /// `network create --internal`: no masquerade, nothing forwarded to or from other interfaces.
    pub internal: bool,
}

/// The table, its chains and the shared rules of every bridge: masquerade out of each
/// non-internal bridge, and isolation between bridges (docker's DOCKER-ISOLATION): a packet
/// routed from one gocker bridge into another is dropped, as is anything routed into or out of
/// an internal one. Idempotent, so it needs no listing first: `add` of an existing table or chain
/// is a no-op, and the postrouting and forward chains (which hold only these shared rules) are
/// flushed and refilled in the same atomic batch.
pub fn base_batch(bridges: &[BridgeNet]) -> Value {
    let chain = |name: &str, typ: &str, hook: &str, prio: i32| json!({"add": {"chain": {"family": FAMILY, "table": TABLE, "name": name, "type": typ, "hook": hook, "prio": prio, "policy": "accept"}}});
    let mut v = vec![
        json!({"add": {"table": {"family": FAMILY, "name": TABLE}}}),
        chain("prerouting", "nat", "prerouting", -100),
        chain("output", "nat", "output", -100),
        chain("postrouting", "nat", "postrouting", 100),
        chain("forward", "filter", "forward", 0),
    ];
    for c in ["postrouting", "forward"] {
        v.push(json!({"flush": {"chain": {"family": FAMILY, "table": TABLE, "name": c}}}));
    }
    let iif = || json!({"meta": {"key": "iifname"}});
    let oif = || json!({"meta": {"key": "oifname"}});
    for b in bridges {
        if b.internal {
            v.push(rule(
                "forward",
                SHARED,
                vec![
                    m("==", iif(), json!(b.bridge)),
                    m("!=", oif(), json!(b.bridge)),
                    json!({"drop": null}),
                ],
            ));
            v.push(rule(
                "forward",
                SHARED,
                vec![
                    m("==", oif(), json!(b.bridge)),
                    m("!=", iif(), json!(b.bridge)),
                    json!({"drop": null}),
                ],
            ));
            continue;
        }
        v.push(rule(
            "postrouting",
            SHARED,
            vec![
                m("==", ip_field("saddr"), prefix(&b.subnet)),
                m("!=", oif(), json!(b.bridge)),
                json!({"masquerade": null}),
            ],
        ));
        let others: Vec<&str> = bridges
            .iter()
            .filter(|o| o.bridge != b.bridge)
            .map(|o| o.bridge.as_str())
            .collect();
        if !others.is_empty() {
            v.push(rule(
                "forward",
                SHARED,
                vec![
                    m("==", iif(), json!(b.bridge)),
                    m("==", oif(), json!({"set": others})),
                    json!({"drop": null}),
                ],
            ));
        }
    }
    json!({"nftables": v})
}

/// DNAT rules publishing `ports` of the container at `ip`: in prerouting for traffic from other
/// hosts and containers, in output for the host's own connections to its non-loopback addresses.
/// Loopback (127.0.0.0/8, and mappings bound to it) is left to the userland proxy (see docs/networking.md).
pub fn port_batch(id: &str, ip: Ipv4Addr, ports: &[PortMapping]) -> Value {
    let comment = owner_comment(id);
    let mut v = Vec::new();
    for p in ports
        .iter()
        .filter(|p| !p.host_ip.map(|h| h.is_loopback()).unwrap_or(false))
    {
        let mut dst = vec![];
        match p.host_ip {
            Some(h) => dst.push(m("==", ip_field("daddr"), json!(h.to_string()))),
            None => dst.push(m(
                "==",
                json!({"fib": {"result": "type", "flags": ["daddr"]}}),
                json!("local"),
            )),
        }
        dst.push(m(
            "==",
            json!({"payload": {"protocol": p.proto.as_str(), "field": "dport"}}),
            json!(p.host_port),
        ));
        let dnat = json!({"dnat": {"addr": ip.to_string(), "port": p.container_port}});
        // A counter per rule: `nft list table ip gocker` shows the traffic of each published port.
        let mut pre = dst.clone();
        pre.extend([json!({"counter": null}), dnat.clone()]);
        v.push(rule("prerouting", &comment, pre));
        let mut out = vec![m(
            "!=",
            ip_field("daddr"),
            json!({"prefix": {"addr": "127.0.0.0", "len": 8}}),
        )];
        out.extend(dst);
        out.extend([json!({"counter": null}), dnat]);
        v.push(rule("output", &comment, out));
    }
    json!({"nftables": v})
}

/// The rules of a listing: (chain, handle, comment).
pub fn rules(listing: &Value) -> Vec<(String, u64, String)> {
    listing["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| {
            let r = o.get("rule")?;
            Some((
                r["chain"].as_str()?.to_owned(),
                r["handle"].as_u64()?,
                r["comment"].as_str().unwrap_or("").to_owned(),
            ))
        })
        .collect()
}

/// Deletes the rules whose comment satisfies `pred`.
pub fn delete_batch(listing: &Value, pred: impl Fn(&str) -> bool) -> Option<Value> {
    let v: Vec<Value> = rules(listing)
        .into_iter()
        .filter(|(_, _, c)| pred(c))
        .map(|(chain, handle, _)| json!({"delete": {"rule": {"family": FAMILY, "table": TABLE, "chain": chain, "handle": handle}}}))
        .collect();
    (!v.is_empty()).then(|| json!({"nftables": v}))
}

/// Whether an nft error says the table does not exist.
pub fn is_missing(e: &NetError) -> bool {
    matches!(e, NetError::Nft(m) if m.contains("No such file or directory") || m.contains("does not exist"))
}

pub fn delete_table_batch() -> Value {
    json!({"nftables": [{"delete": {"table": {"family": FAMILY, "name": TABLE}}}]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_has_chains_and_masquerade() {
        let s: Subnet = "10.88.0.0/16".parse().unwrap();
        let b = base_batch(&[BridgeNet {
            bridge: "gocker0".into(),
            subnet: s,
            internal: false,
        }]);
        let text = b.to_string();
        for needle in [
            r#""hook":"postrouting""#,
            r#""masquerade":null"#,
            r#""addr":"10.88.0.0","len":16"#,
            r#""right":"gocker0""#,
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        // Idempotent: the masquerade rule is re-added only after its chain is flushed.
        let cmds = b["nftables"].as_array().unwrap();
        let flush = cmds
            .iter()
            .position(|c| c.get("flush").is_some())
            .expect("flush");
        let masq = cmds
            .iter()
            .position(|c| c.to_string().contains("masquerade"))
            .expect("masquerade");
        assert!(flush < masq);
        assert_eq!(
            cmds.iter()
                .filter(|c| c.to_string().contains("masquerade"))
                .count(),
            1
        );
    }

    #[test]
    fn bridges_are_isolated_from_each_other() {
        let net = |n: &str, s: &str, internal| BridgeNet {
            bridge: n.into(),
            subnet: s.parse().unwrap(),
            internal,
        };
        let b = base_batch(&[
            net("gocker0", "10.87.0.0/16", false),
            net("gkbr-a", "10.90.0.0/24", false),
            net("gkbr-i", "10.90.1.0/24", true),
        ]);
        let cmds = b["nftables"].as_array().unwrap();
        let text = b.to_string();
        // Masquerade for the two non-internal bridges only.
        assert_eq!(text.matches("masquerade").count(), 2, "{text}");
        assert!(!text.contains(r#""addr":"10.90.1.0""#), "{text}");
        // gkbr-a may not route into the other bridges; the internal one routes nowhere.
        let drops: Vec<&Value> = cmds
            .iter()
            .filter(|c| c.to_string().contains(r#""drop":null"#))
            .collect();
        assert_eq!(drops.len(), 4);
        assert!(text.contains(r#"{"set":["gocker0","gkbr-i"]}"#), "{text}");
        assert!(text.contains(r#""hook":"forward""#));
        for d in drops {
            assert_eq!(d["add"]["rule"]["comment"], SHARED);
        }
    }

    #[test]
    fn port_rules_carry_owner_and_skip_loopback() {
        let p: PortMapping = "192.0.2.2:18080:80".parse().unwrap();
        let q: PortMapping = "9000:53/udp".parse().unwrap();
        let lo: PortMapping = "127.0.0.1:18081:80".parse().unwrap();
        let b = port_batch("abc", Ipv4Addr::new(10, 88, 0, 2), &[p, q, lo]);
        let rules = b["nftables"].as_array().unwrap();
        assert_eq!(rules.len(), 4);
        for r in rules {
            assert_eq!(r["add"]["rule"]["comment"], "gocker:abc");
        }
        let s = b.to_string();
        assert!(s.contains(r#""dnat":{"addr":"10.88.0.2","port":80}"#));
        assert!(
            s.contains(r#""field":"dport","protocol":"udp""#) && s.contains(r#""right":9000"#),
            "{s}"
        );
        assert!(s.contains(r#""addr":"127.0.0.0","len":8"#));
    }

    #[test]
    fn delete_table_message_layout() {
        let m = delete_table_message(7);
        // begin (20) + deltable (20 + 4 + "gocker\0" padded to 8) + end (20)
        assert_eq!(m.len(), 20 + 32 + 20);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), NFNL_MSG_BATCH_BEGIN);
        assert_eq!(u16::from_ne_bytes([m[24], m[25]]), (10 << 8) | 2);
        assert_eq!(m[36], NFPROTO_IPV4);
        assert_eq!(&m[44..51], b"gocker\0");
        assert_eq!(u16::from_ne_bytes([m[56], m[57]]), NFNL_MSG_BATCH_END);
    }

    #[test]
    fn deletes_by_comment() {
        let listing = json!({"nftables": [
            {"metainfo": {}},
            {"table": {"family": "ip", "name": "gocker"}},
            {"rule": {"family": "ip", "table": "gocker", "chain": "prerouting", "handle": 4, "comment": "gocker:a"}},
            {"rule": {"family": "ip", "table": "gocker", "chain": "output", "handle": 5, "comment": "gocker:b"}},
            {"rule": {"family": "ip", "table": "gocker", "chain": "postrouting", "handle": 6, "comment": "gocker:bridge"}}
        ]});
        let d = delete_batch(&listing, |c| c == "gocker:a").unwrap();
        assert_eq!(d["nftables"].as_array().unwrap().len(), 1);
        assert_eq!(d["nftables"][0]["delete"]["rule"]["handle"], 4);
        assert!(delete_batch(&listing, |c| c == "gocker:zzz").is_none());
    }
}
