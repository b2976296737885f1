//! A small synchronous rtnetlink client over `netlink-sys` + `netlink-packet-route`: no async
//! runtime and no threads, so it is safe to use in the rings around fork.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE,
    NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};

use crate::{NetError, Result};

/// A route-netlink socket bound to the network namespace it was created in.
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

/// A link as seen by [`Netlink::links`].
#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub kind: Option<String>,
    pub master: Option<u32>,
}

/// An IPv4 route as seen by [`Netlink::routes_v4`].
#[derive(Debug, Clone)]
pub struct Route4 {
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub oif: Option<u32>,
}

fn nl_err(op: &'static str, target: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetError {
    let target = target.into();
    move |source| NetError::Netlink { op, target, source }
}

impl Netlink {
    /// A socket in the caller's network namespace.
    pub fn new() -> Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(nl_err("socket", "NETLINK_ROUTE"))?;
        sock.bind_auto().map_err(nl_err("bind", "NETLINK_ROUTE"))?;
        let _ = sock.set_ext_ack(true);
        Ok(Netlink { sock, seq: 0 })
    }

    /// A socket in the network namespace `netns` (an fd of `/proc/PID/ns/net`): the calling thread
    /// enters it, creates the socket and returns to its own namespace. A netlink socket keeps
    /// working in the namespace it was created in. Needs CAP_SYS_ADMIN over that namespace.
    pub fn in_netns(netns: BorrowedFd<'_>) -> Result<Netlink> {
        let own: OwnedFd = rustix::fs::open(
            "/proc/thread-self/ns/net",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| crate::NetError::Io {
            op: "open",
            path: "/proc/thread-self/ns/net".into(),
            source: e.into(),
        })?;
        rustix::thread::move_into_link_name_space(
            netns,
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(|e| NetError::Netlink {
            op: "setns",
            target: "container network namespace".into(),
            source: e.into(),
        })?;
        let made = Netlink::new();
        rustix::thread::move_into_link_name_space(
            own.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(|e| NetError::Netlink {
            op: "setns",
            target: "back to the host network namespace".into(),
            source: e.into(),
        })?;
        made
    }

    fn request(
        &mut self,
        op: &'static str,
        target: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0).map_err(nl_err(op, target))?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full().map_err(nl_err(op, target))?;
            let mut off = 0;
            while off < data.len() {
                let len = NetlinkBuffer::new_checked(&data[off..])
                    .map_err(|e| NetError::Netlink {
                        op,
                        target: target.into(),
                        source: std::io::Error::other(e.to_string()),
                    })?
                    .length() as usize;
                if len == 0 {
                    break;
                }
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..off + len])
                    .map_err(|e| NetError::Netlink {
                    op,
                    target: target.into(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                off += (len + 3) & !3;
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(_) => Err(NetError::Netlink {
                                op,
                                target: target.into(),
                                source: e.to_io(),
                            }),
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(i) => {
                        out.push(i);
                        if !dump && flags & NLM_F_ACK == 0 {
                            return Ok(out);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn ack(
        &mut self,
        op: &'static str,
        target: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<()> {
        self.request(op, target, msg, flags | NLM_F_ACK).map(|_| ())
    }

    /// All links of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let msgs = self.request(
            "dump",
            "links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .map(|l| {
                let mut link = Link {
                    index: l.header.index,
                    name: String::new(),
                    kind: None,
                    master: None,
                };
                for a in l.attributes {
                    match a {
                        LinkAttribute::IfName(n) => link.name = n,
                        LinkAttribute::Controller(m) => link.master = Some(m),
                        LinkAttribute::LinkInfo(infos) => {
                            for i in infos {
                                if let LinkInfo::Kind(k) = i {
                                    link.kind = Some(k.to_string());
                                }
                            }
                        }
                        _ => {}
                    }
                }
                link
            })
            .collect())
    }

    /// The index of link `name`, if it exists.
    pub fn index(&mut self, name: &str) -> Result<Option<u32>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        match self.request("get link", name, RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(v) => Ok(v.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })),
            Err(NetError::Netlink { source, .. })
                if source.raw_os_error() == Some(libc::ENODEV) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn must_index(&mut self, name: &str) -> Result<u32> {
        self.index(name)?.ok_or_else(|| NetError::Netlink {
            op: "find link",
            target: name.into(),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        })
    }

    /// Sets `name` up (and its MTU when given). One request: the kernel finds the link by its
    /// `IFLA_IFNAME` when the index is 0 (a missing link is `ENODEV`, named in the error).
    pub fn set_up(&mut self, name: &str, mtu: Option<u32>) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        if let Some(m) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(m));
        }
        self.ack("set link up", name, RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Creates a bridge.
    pub fn add_bridge(&mut self, name: &str, mtu: u32) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.ack(
            "add bridge",
            name,
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Creates a veth pair: `host` here, `peer` directly in the namespace `peer_netns` (so its
    /// name cannot collide with a host link).
    pub fn add_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_netns: BorrowedFd<'_>,
        mtu: u32,
    ) -> Result<()> {
        let mut p = LinkMessage::default();
        p.attributes.push(LinkAttribute::IfName(peer.to_owned()));
        p.attributes.push(LinkAttribute::Mtu(mtu));
        p.attributes
            .push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.to_owned()));
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
        ]));
        self.ack(
            "add veth",
            &format!("{host} (peer {peer})"),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Enslaves `port` to `bridge`; `isolated` sets the bridge port flag that stops it from talking
    /// to other isolated ports (the host side of the bridge stays reachable).
    pub fn set_master(&mut self, port: &str, bridge: &str, isolated: bool) -> Result<()> {
        let master = self.must_index(bridge)?;
        let index = self.must_index(port)?;
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::Controller(master));
        self.ack(
            "set master",
            &format!("{port} -> {bridge}"),
            RouteNetlinkMessage::SetLink(msg),
            0,
        )?;
        if isolated {
            let mut msg = LinkMessage::default();
            msg.header.index = index;
            msg.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::PortKind(InfoPortKind::Bridge),
                LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::Isolated(
                    true,
                )])),
            ]));
            self.ack(
                "set bridge port isolated",
                port,
                RouteNetlinkMessage::NewLink(msg),
                0,
            )?;
        }
        Ok(())
    }

    /// Deletes link `name`; Ok(false) when it did not exist.
    pub fn del_link(&mut self, name: &str) -> Result<bool> {
        let Some(index) = self.index(name)? else {
            return Ok(false);
        };
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.ack("delete link", name, RouteNetlinkMessage::DelLink(msg), 0) {
            Ok(()) => Ok(true),
            Err(NetError::Netlink { source, .. })
                if source.raw_os_error() == Some(libc::ENODEV) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Adds `addr/prefix` to link `name` (EEXIST is fine).
    pub fn add_addr(&mut self, name: &str, addr: Ipv4Addr, prefix: u8) -> Result<()> {
        let index = self.must_index(name)?;
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(addr.into()));
        msg.attributes.push(AddressAttribute::Address(addr.into()));
        if prefix < 31 {
            let bcast = u32::from(addr) | (u32::MAX >> prefix);
            msg.attributes
                .push(AddressAttribute::Broadcast(bcast.into()));
        }
        match self.ack(
            "add address",
            &format!("{addr}/{prefix} on {name}"),
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(NetError::Netlink { source, .. })
                if source.raw_os_error() == Some(libc::EEXIST) =>
            {
                Ok(())
            }
            r => r,
        }
    }

    /// The IPv4 addresses of link `name`.
    pub fn addrs_v4(&mut self, name: &str) -> Result<Vec<(Ipv4Addr, u8)>> {
        let index = self.must_index(name)?;
        let mut q = AddressMessage::default();
        q.header.family = AddressFamily::Inet;
        let msgs = self.request(
            "dump",
            "addresses",
            RouteNetlinkMessage::GetAddress(q),
            NLM_F_DUMP,
        )?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => Some(a),
                _ => None,
            })
            .filter_map(|a| {
                a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Local(std::net::IpAddr::V4(v)) => {
                        Some((*v, a.header.prefix_len))
                    }
                    _ => None,
                })
            })
            .collect())
    }

    /// Adds the default route via `gw`.
    pub fn add_default_route(&mut self, gw: Ipv4Addr) -> Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = netlink_packet_route::route::RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gw)));
        self.ack(
            "add route",
            &format!("default via {gw}"),
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// The IPv4 routes of the main table.
    pub fn routes_v4(&mut self) -> Result<Vec<Route4>> {
        let mut q = RouteMessage::default();
        q.header.address_family = AddressFamily::Inet;
        let msgs = self.request(
            "dump",
            "routes",
            RouteNetlinkMessage::GetRoute(q),
            NLM_F_DUMP,
        )?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r)
                    if r.header.table
                        == netlink_packet_route::route::RouteHeader::RT_TABLE_MAIN =>
                {
                    Some(r)
                }
                _ => None,
            })
            .map(|r| {
                let mut out = Route4 {
                    dst: Ipv4Addr::UNSPECIFIED,
                    prefix: r.header.destination_prefix_length,
                    oif: None,
                };
                for a in r.attributes {
                    match a {
                        RouteAttribute::Destination(RouteAddress::Inet(d)) => out.dst = d,
                        RouteAttribute::Oif(i) => out.oif = Some(i),
                        _ => {}
                    }
                }
                out
            })
            .collect())
    }
}

/// Brings up `lo` in the caller's network namespace.
pub fn loopback_up() -> Result<()> {
    Netlink::new()?.set_up("lo", None)
}
