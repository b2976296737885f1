//! Address leases for the bridge network: one file per address under `<dir>/leases`, created
//! with O_EXCL while holding an flock on `<dir>/lock`, naming the owner (container id, and the pid
//! and start time of the process that holds it, so stale leases are recognised after a SIGKILL).

use std::collections::HashSet;
use std::fs;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::io_err;
use crate::{NetError, Result};

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub id: String,
    pub pid: i32,
    /// Start time of `pid` (clock ticks since boot, /proc/PID/stat field 22).
    pub start: u64,
}

/// Start time of a process in clock ticks since boot.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(19)?.parse().ok()
}

impl Owner {
    /// The calling process as owner of `id`.
    pub fn me(id: &str) -> Owner {
        let pid = rustix::process::getpid().as_raw_nonzero().get();
        Owner {
            id: id.to_owned(),
            pid,
            start: process_start_time(pid).unwrap_or(0),
        }
    }
    /// Whether the owning process still runs (same pid and start time, and not a zombie).
    pub fn alive(&self) -> bool {
        let zombie = fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|s| {
                s.rfind(')').and_then(|i| {
                    s[i + 1..]
                        .split_whitespace()
                        .next()
                        .map(|st| st == "Z" || st == "X")
                })
            })
            .unwrap_or(false);
        !zombie && process_start_time(self.pid) == Some(self.start)
    }
}

/// An IPv4 subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Subnet> {
        if !(8..=30).contains(&prefix) {
            return Err(NetError::Invalid {
                flag: "subnet",
                value: format!("{addr}/{prefix}"),
                reason: "prefix must be 8..30".into(),
            });
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Subnet {
            addr: (u32::from(addr) & mask).into(),
            prefix,
        })
    }
    pub fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask() == u32::from(self.addr)
    }
    /// Whether two subnets overlap.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let m = self.mask() & other.mask();
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }
    /// The first host address: the bridge's (gateway).
    pub fn gateway(&self) -> Ipv4Addr {
        (u32::from(self.addr) + 1).into()
    }
    pub fn broadcast(&self) -> Ipv4Addr {
        (u32::from(self.addr) | !self.mask()).into()
    }
}

impl std::str::FromStr for Subnet {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Subnet> {
        let bad = || NetError::Invalid {
            flag: "subnet",
            value: s.into(),
            reason: "expected A.B.C.D/PREFIX".into(),
        };
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        Subnet::new(a.parse().map_err(|_| bad())?, p.parse().map_err(|_| bad())?)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The lowest free host address of `subnet` (skipping network, gateway and broadcast).
pub fn pick(subnet: &Subnet, used: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let first = u32::from(subnet.gateway()) + 1;
    let last = u32::from(subnet.broadcast()) - 1;
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|a| !used.contains(a))
}

/// The lease directory of one network.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
}

/// An exclusive hold on the network's lock file (released on drop).
pub struct NetLock(#[allow(dead_code)] OwnedFd);

impl Ipam {
    pub fn new(dir: impl Into<PathBuf>) -> Ipam {
        Ipam { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn leases_dir(&self) -> PathBuf {
        self.dir.join("leases")
    }

    /// Takes the network lock (bridge, firewall and lease changes happen under it).
    pub fn lock(&self) -> Result<NetLock> {
        let leases = self.leases_dir();
        fs::create_dir_all(&leases).map_err(io_err("create", &leases))?;
        lock_file(self.dir.join("lock"))
    }

    /// Takes the lock of a network whose directory exists, without creating it (an error when
    /// it is gone: a removed network is never brought back by a late reader).
    pub fn lock_existing(&self) -> Result<NetLock> {
        lock_file(self.dir.join("lock"))
    }
}

/// Takes an exclusive flock on `path` (created 0600 when missing), waiting for it.
pub(crate) fn lock_file(path: PathBuf) -> Result<NetLock> {
    let fd = rustix::fs::open(
        &path,
        rustix::fs::OFlags::CREATE | rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .map_err(|e| NetError::Io {
        op: "open",
        path: path.clone(),
        source: e.into(),
    })?;
    loop {
        match rustix::fs::flock(&fd, rustix::fs::FlockOperation::LockExclusive) {
            Ok(()) => return Ok(NetLock(fd)),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(NetError::Io {
                    op: "flock",
                    path,
                    source: e.into(),
                })
            }
        }
    }
}

impl Ipam {
    /// All leases (address, owner). Unreadable files are reported with no owner.
    pub fn leases(&self) -> Vec<(Ipv4Addr, Option<Owner>)> {
        let Ok(rd) = fs::read_dir(self.leases_dir()) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let ip: Ipv4Addr = e.file_name().to_str()?.parse().ok()?;
                let owner = fs::read(e.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                Some((ip, owner))
            })
            .collect()
    }

    /// Leases an address of `subnet` to `owner`. The caller holds the lock.
    pub fn allocate(&self, lock: &NetLock, subnet: &Subnet, owner: &Owner) -> Result<Ipv4Addr> {
        self.allocate_reserving(lock, subnet, None, owner)
    }

    /// Like [`Ipam::allocate`], never handing out `reserved` (a user network's `--gateway`).
    pub fn allocate_reserving(
        &self,
        _lock: &NetLock,
        subnet: &Subnet,
        reserved: Option<Ipv4Addr>,
        owner: &Owner,
    ) -> Result<Ipv4Addr> {
        let mut used: HashSet<Ipv4Addr> = self.leases().into_iter().map(|l| l.0).collect();
        used.extend(reserved);
        let ip = pick(subnet, &used).ok_or(NetError::SubnetFull {
            subnet: subnet.addr,
            prefix: subnet.prefix,
        })?;
        let path = self.leases_dir().join(ip.to_string());
        let body = serde_json::to_vec(owner).expect("owner serialises");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("create lease", &path))?;
        std::io::Write::write_all(&mut f, &body).map_err(io_err("write lease", &path))?;
        Ok(ip)
    }

    /// Releases `ip` (a missing lease is fine).
    pub fn release(&self, ip: Ipv4Addr) -> Result<()> {
        let path = self.leases_dir().join(ip.to_string());
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NetError::Io {
                op: "remove lease",
                path,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Removes leases whose owner process is gone; returns the ids of their containers.
    pub fn release_stale(&self, _lock: &NetLock) -> Vec<(Ipv4Addr, String)> {
        let mut out = Vec::new();
        for (ip, owner) in self.leases() {
            let stale = match &owner {
                Some(o) => !o.alive(),
                None => true,
            };
            if stale && self.release(ip).is_ok() {
                out.push((ip, owner.map(|o| o.id).unwrap_or_default()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gocker-ipam-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn subnet_math() {
        let s: Subnet = "10.88.7.9/16".parse().unwrap();
        assert_eq!(s.addr, Ipv4Addr::new(10, 88, 0, 0));
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 88, 255, 255));
        assert!(s.overlaps(&"10.0.0.0/8".parse().unwrap()));
        assert!(!s.overlaps(&"192.0.2.0/24".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Subnet>().is_err());
    }

    #[test]
    fn pick_skips_used_and_reserved() {
        let s: Subnet = "10.1.2.0/30".parse().unwrap();
        let mut used = HashSet::new();
        assert_eq!(pick(&s, &used), Some(Ipv4Addr::new(10, 1, 2, 2)));
        used.insert(Ipv4Addr::new(10, 1, 2, 2));
        assert_eq!(
            pick(&s, &used),
            None,
            "network, gateway and broadcast are never leased"
        );
    }

    #[test]
    fn concurrent_allocations_never_collide() {
        let dir = tmp("concurrent");
        let s: Subnet = "10.99.0.0/24".parse().unwrap();
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let ipam = Ipam::new(&dir);
                std::thread::spawn(move || {
                    (0..10)
                        .map(|j| {
                            let lock = ipam.lock().unwrap();
                            ipam.allocate(&lock, &s, &Owner::me(&format!("c{i}-{j}")))
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let all: Vec<Ipv4Addr> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let set: HashSet<_> = all.iter().collect();
        assert_eq!(set.len(), 80);
        let ipam = Ipam::new(&dir);
        for ip in all {
            ipam.release(ip).unwrap();
        }
        assert!(ipam.leases().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_leases_are_collected() {
        let dir = tmp("stale");
        let ipam = Ipam::new(&dir);
        let s: Subnet = "10.98.0.0/24".parse().unwrap();
        let lock = ipam.lock().unwrap();
        let live = ipam.allocate(&lock, &s, &Owner::me("live")).unwrap();
        let dead = ipam
            .allocate(
                &lock,
                &s,
                &Owner {
                    id: "dead".into(),
                    pid: i32::MAX,
                    start: 1,
                },
            )
            .unwrap();
        let gone = ipam.release_stale(&lock);
        assert_eq!(gone, vec![(dead, "dead".to_string())]);
        assert_eq!(ipam.leases().len(), 1);
        ipam.release(live).unwrap();
        drop(lock);
        fs::remove_dir_all(&dir).unwrap();
    }
}
