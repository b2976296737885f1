//! The embedded resolver of user-defined networks, as docker's: each container on such a network
//! gets `nameserver 127.0.0.11` and a UDP responder on 127.0.0.11:53 *inside its own network
//! namespace*, served by a thread of its monitor (ring0) on the host. It answers the names of the
//! containers on the same network (container name, `--network-alias`, short and full id) from the
//! network's live endpoints, read at each query, so a container started later is found at once
//! and one that stopped is gone. Other names with a dot are relayed to the upstream servers
//! (`--dns`, else the host's, loopback ones included: the relay runs in the host's namespace);
//! other single-label names are NXDOMAIN.
//!
//! Messages are parsed and built with `simple-dns`; [`answer`] is pure and unit-tested.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use simple_dns::rdata::{RData, A};
use simple_dns::{Packet, PacketFlag, ResourceRecord, CLASS, QTYPE, RCODE, TYPE};

use crate::{NetError, Result};

/// Where the resolver listens inside the container (docker's address).
pub const ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// TTL of the answers: short, as the members of a network change.
const TTL: u32 = 5;
/// How long a relayed query waits for each upstream.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// At most this many relayed queries of one container at once (a thread each); more are
/// dropped, as a busy server drops them, so a flood from inside cannot grow the monitor.
const MAX_RELAYS: usize = 32;

/// What to do with one query.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Send these bytes back.
    Local(Vec<u8>),
    /// Relay the query to the upstream servers.
    Forward,
    /// Not a query we can read: no reply.
    Drop,
}

/// The reply to `query`: `lookup` gives the address of a network member (the name lowercase,
/// without the trailing dot).
pub fn answer(query: &[u8], lookup: &dyn Fn(&str) -> Option<Ipv4Addr>) -> Reply {
    let Ok(q) = Packet::parse(query) else {
        return Reply::Drop;
    };
    if q.has_flags(PacketFlag::RESPONSE) {
        return Reply::Drop;
    }
    let mut r = Packet::new_reply(q.id());
    r.set_flags(PacketFlag::RECURSION_AVAILABLE);
    if q.has_flags(PacketFlag::RECURSION_DESIRED) {
        r.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    let Some(question) = q.questions.first() else {
        *r.rcode_mut() = RCODE::FormatError;
        return Reply::Local(r.build_bytes_vec().unwrap_or_default());
    };
    let name = question
        .qname
        .to_string()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let found = lookup(&name);
    if found.is_none() && name.contains('.') {
        return Reply::Forward;
    }
    r.questions.push(question.clone());
    match found {
        // A member: its address for A (and ANY); no other records, but the name exists
        // (NOERROR), so that a resolver asking A and AAAA together keeps the A answer.
        Some(ip) => {
            r.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
            if matches!(question.qtype, QTYPE::TYPE(TYPE::A) | QTYPE::ANY) {
                r.answers.push(ResourceRecord::new(
                    question.qname.clone(),
                    CLASS::IN,
                    TTL,
                    RData::A(A::from(ip)),
                ));
            }
        }
        None => *r.rcode_mut() = RCODE::NameError,
    }
    match r.build_bytes_vec() {
        Ok(b) => Reply::Local(b),
        Err(_) => Reply::Drop,
    }
}

/// A SERVFAIL for `query` (an upstream that did not answer).
fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let q = Packet::parse(query).ok()?;
    let mut r = Packet::new_reply(q.id());
    r.set_flags(PacketFlag::RECURSION_AVAILABLE);
    r.questions.extend(q.questions.iter().cloned());
    *r.rcode_mut() = RCODE::ServerFailure;
    r.build_bytes_vec().ok()
}

/// Relays `query` to each upstream in turn; SERVFAIL when none answers.
fn relay(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let bind: SocketAddr = match up {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let Ok(s) = UdpSocket::bind(bind) else {
            continue;
        };
        if s.set_read_timeout(Some(UPSTREAM_TIMEOUT)).is_err() || s.connect(up).is_err() {
            continue;
        }
        if s.send(query).is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(n) = s.recv(&mut buf) {
            if n >= 2 && buf[..2] == query[..2] {
                buf.truncate(n);
                return Some(buf);
            }
        }
    }
    servfail(query)
}

/// The addresses of a network's members, by name (lowercase, no trailing dot).
pub type Lookup = Box<dyn Fn(&str) -> Option<Ipv4Addr> + Send>;

/// The running responder of one container; dropping it stops the thread.
pub struct Resolver {
    sock: Arc<UdpSocket>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A UDP socket bound to 127.0.0.11:53 in the network namespace `netns` (made by this thread
/// entering it for the moment of `socket`+`bind`; the socket stays in that namespace).
fn socket_in(netns: BorrowedFd<'_>) -> Result<OwnedFd> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
    let setns_err = |target: &str| {
        let target = target.to_owned();
        move |e: rustix::io::Errno| NetError::Netlink {
            op: "setns",
            target,
            source: e.into(),
        }
    };
    let own = rustix::fs::open(
        "/proc/thread-self/ns/net",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| NetError::Io {
        op: "open",
        path: "/proc/thread-self/ns/net".into(),
        source: e.into(),
    })?;
    move_into_link_name_space(netns, Some(LinkNameSpaceType::Network))
        .map_err(setns_err("container network namespace"))?;
    let made = (|| {
        let fd = rustix::net::socket_with(
            AddressFamily::INET,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        // lo may not be up yet: bind the address all the same.
        rustix::net::sockopt::set_ip_freebind(&fd, true)?;
        rustix::net::bind(&fd, &SocketAddrV4::new(ADDR, 53))?;
        Ok::<_, rustix::io::Errno>(fd)
    })();
    move_into_link_name_space(own.as_fd(), Some(LinkNameSpaceType::Network))
        .map_err(setns_err("back to the host network namespace"))?;
    made.map_err(|e| NetError::Io {
        op: "bind the embedded DNS resolver",
        path: format!("{ADDR}:53 in the container's network namespace").into(),
        source: e.into(),
    })
}

impl Resolver {
    /// Starts answering in the network namespace `netns` (needs CAP_SYS_ADMIN over it: root).
    pub fn start(
        netns: BorrowedFd<'_>,
        lookup: Lookup,
        upstreams: Vec<SocketAddr>,
    ) -> Result<Resolver> {
        let sock = Arc::new(UdpSocket::from(socket_in(netns)?));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (sock.clone(), stop.clone());
        let upstreams = Arc::new(upstreams);
        let relays = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::Builder::new()
            .name("gocker-dns".into())
            .spawn(move || {
                let mut buf = [0u8; 1500];
                loop {
                    let r = s.recv_from(&mut buf);
                    if st.load(Ordering::Acquire) {
                        return;
                    }
                    let Ok((n, peer)) = r else { continue };
                    let query = buf[..n].to_vec();
                    match answer(&query, &*lookup) {
                        Reply::Local(b) => {
                            let _ = s.send_to(&b, peer);
                        }
                        Reply::Forward => {
                            if relays.fetch_add(1, Ordering::AcqRel) >= MAX_RELAYS {
                                relays.fetch_sub(1, Ordering::AcqRel);
                                continue;
                            }
                            let (s, ups, n) = (s.clone(), upstreams.clone(), relays.clone());
                            // One thread per relayed query: a slow upstream does not hold up
                            // the answers for the network's own names.
                            let spawned = std::thread::Builder::new()
                                .name("gocker-dns-relay".into())
                                .spawn(move || {
                                    if let Some(b) = relay(&query, &ups) {
                                        let _ = s.send_to(&b, peer);
                                    }
                                    n.fetch_sub(1, Ordering::AcqRel);
                                });
                            if spawned.is_err() {
                                relays.fetch_sub(1, Ordering::AcqRel);
                            }
                        }
                        Reply::Drop => {}
                    }
                }
            })
            .map_err(|e| NetError::Io {
                op: "spawn",
                path: "the embedded DNS resolver thread".into(),
                source: e,
            })?;
        Ok(Resolver {
            sock,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // shutdown(2) wakes the thread blocked in recvfrom (for an unconnected UDP socket the
        // call reports ENOTCONN, but still marks the socket shut and wakes its readers).
        let _ = rustix::net::shutdown(self.sock.as_fd(), rustix::net::Shutdown::Read);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The upstream servers: `dns` when given, else the nameservers of the host's resolv.conf.
pub fn upstreams(host_resolv: &str, dns: &[std::net::IpAddr]) -> Vec<SocketAddr> {
    let servers: Vec<std::net::IpAddr> = if dns.is_empty() {
        host_resolv
            .lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .filter_map(|s| s.trim().parse().ok())
            .collect()
    } else {
        dns.to_vec()
    };
    servers.into_iter().map(|ip| (ip, 53).into()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::{Name, Question, QCLASS};

    fn query(name: &str, t: TYPE) -> Vec<u8> {
        let mut p = Packet::new_query(4242);
        p.set_flags(PacketFlag::RECURSION_DESIRED);
        p.questions.push(Question::new(
            Name::new_unchecked(name),
            QTYPE::TYPE(t),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        p.build_bytes_vec().unwrap()
    }

    fn lookup(n: &str) -> Option<Ipv4Addr> {
        (n == "web" || n == "web.alias").then_some(Ipv4Addr::new(10, 90, 0, 3))
    }

    fn local(r: Reply) -> Vec<u8> {
        match r {
            Reply::Local(b) => b,
            other => panic!("not a local reply: {other:?}"),
        }
    }

    #[test]
    fn members_get_their_address() {
        let b = local(answer(&query("WEB", TYPE::A), &lookup));
        let p = Packet::parse(&b).unwrap();
        assert_eq!(p.id(), 4242);
        assert!(p.has_flags(PacketFlag::RESPONSE));
        assert_eq!(p.rcode(), RCODE::NoError);
        assert_eq!(p.answers.len(), 1);
        match &p.answers[0].rdata {
            RData::A(a) => assert_eq!(Ipv4Addr::from(a.address), Ipv4Addr::new(10, 90, 0, 3)),
            other => panic!("{other:?}"),
        }
        // A dotted member name is answered too, not relayed.
        assert!(matches!(
            answer(&query("web.alias", TYPE::A), &lookup),
            Reply::Local(_)
        ));
    }

    #[test]
    fn aaaa_of_a_member_is_empty_noerror() {
        let p_bytes = local(answer(&query("web", TYPE::AAAA), &lookup));
        let p = Packet::parse(&p_bytes).unwrap();
        assert_eq!(p.rcode(), RCODE::NoError);
        assert!(p.answers.is_empty());
    }

    #[test]
    fn unknown_single_labels_are_nxdomain_and_dotted_names_are_relayed() {
        let p_bytes = local(answer(&query("db", TYPE::A), &lookup));
        assert_eq!(Packet::parse(&p_bytes).unwrap().rcode(), RCODE::NameError);
        assert_eq!(
            answer(&query("example.org", TYPE::A), &lookup),
            Reply::Forward
        );
        assert_eq!(answer(b"\x01\x02garbage", &lookup), Reply::Drop);
        // A response sent to the resolver is not answered (no reflection loops).
        let resp = local(answer(&query("web", TYPE::A), &lookup));
        assert_eq!(answer(&resp, &lookup), Reply::Drop);
    }

    #[test]
    fn unanswered_relay_is_servfail() {
        let q = query("example.org", TYPE::A);
        let b = relay(&q, &[]).unwrap();
        let p = Packet::parse(&b).unwrap();
        assert_eq!(p.rcode(), RCODE::ServerFailure);
        assert_eq!(p.id(), 4242);
    }

    #[test]
    fn upstreams_from_flags_or_host() {
        let host = "search x\nnameserver 127.0.0.53\nnameserver 192.0.2.1\n";
        assert_eq!(
            upstreams(host, &[]),
            vec![
                "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "192.0.2.1:53".parse().unwrap()
            ]
        );
        assert_eq!(
            upstreams(host, &["192.0.2.9".parse().unwrap()]),
            vec!["192.0.2.9:53".parse::<SocketAddr>().unwrap()]
        );
    }
}
