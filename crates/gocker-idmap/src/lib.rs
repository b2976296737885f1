//! uid/gid maps for user namespaces.
//!
//! * [`IdMap`] / [`IdMaps`]: the lines of `/proc/PID/{uid,gid}_map`, convertible to and from OCI.
//! * [`parse_subid`]: `/etc/subuid` and `/etc/subgid` ranges of a user.
//! * [`IdMaps::rootful`] and [`IdMaps::rootless`]: the maps Gocker uses, and how to write them.
//! * [`IdMaps::apply`]: writes the maps of a child process, directly (root, or a single own id)
//!   or through the setuid `newuidmap`/`newgidmap` helpers (a rootless user with a subordinate range).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use oci_spec::runtime::{LinuxIdMapping, LinuxIdMappingBuilder};

#[derive(Debug, thiserror::Error)]
pub enum IdMapError {
    #[error("write {path} ({content:?}): {source}")]
    Write {
        path: PathBuf,
        content: String,
        source: std::io::Error,
    },
    #[error("run {helper}: {source} (install the `uidmap` package)")]
    HelperSpawn {
        helper: String,
        source: std::io::Error,
    },
    #[error("{helper} {args} failed: {stderr}")]
    Helper {
        helper: String,
        args: String,
        stderr: String,
    },
    #[error("{file}:{line}: malformed subordinate id range {text:?} (expected NAME:START:COUNT)")]
    Parse {
        file: String,
        line: usize,
        text: String,
    },
    #[error("id map {0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, IdMapError>;

/// One line of an id map: `inside` .. `inside+count` in the namespace are `outside` .. in the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

impl fmt::Display for IdMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.inside, self.outside, self.count)
    }
}

impl From<&LinuxIdMapping> for IdMap {
    fn from(m: &LinuxIdMapping) -> Self {
        IdMap {
            inside: m.container_id(),
            outside: m.host_id(),
            count: m.size(),
        }
    }
}

impl IdMap {
    pub fn to_oci(self) -> LinuxIdMapping {
        LinuxIdMappingBuilder::default()
            .container_id(self.inside)
            .host_id(self.outside)
            .size(self.count)
            .build()
            .expect("all fields set")
    }
}

/// How maps get written into `/proc/PID/*_map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WriteMethod {
    /// Write the files ourselves: root, or an unprivileged caller mapping only its own ids
    /// (which requires `setgroups` to be denied in the namespace).
    Direct,
    /// Run the setuid helpers `newuidmap`/`newgidmap`, which check `/etc/subuid` and `/etc/subgid`.
    Helpers,
}

/// uid and gid maps of one user namespace plus how to write them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdMaps {
    pub uids: Vec<IdMap>,
    pub gids: Vec<IdMap>,
    pub method: WriteMethod,
    /// Deny `setgroups(2)` in the namespace (required for unprivileged direct writes).
    pub deny_setgroups: bool,
}

/// A subordinate id range from `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubidRange {
    pub start: u32,
    pub count: u32,
}

/// Default host range that container root maps to in rootful mode (like podman's and docker's userns-remap
/// conventions, outside the ids normally handed to /etc/subuid users starting at 100000).
pub const ROOTFUL_DEFAULT_BASE: u32 = 1_000_000_000;
/// Default number of ids mapped in rootful mode.
pub const ROOTFUL_DEFAULT_SIZE: u32 = 65536;

/// Parses subordinate id ranges of the user `name` (or numeric `id`) from the text of `/etc/subuid`.
pub fn parse_subid(file: &str, text: &str, name: &str, id: u32) -> Result<Vec<SubidRange>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || IdMapError::Parse {
            file: file.to_owned(),
            line: n + 1,
            text: line.to_owned(),
        };
        let mut parts = line.split(':');
        let (Some(owner), Some(start), Some(count), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let start: u32 = start.parse().map_err(|_| bad())?;
        let count: u32 = count.parse().map_err(|_| bad())?;
        if (owner == name || owner.parse::<u32>().ok() == Some(id)) && count > 0 {
            out.push(SubidRange { start, count });
        }
    }
    Ok(out)
}

fn read_subid(path: &Path, name: &str, id: u32) -> Result<Vec<SubidRange>> {
    match std::fs::read_to_string(path) {
        Ok(t) => parse_subid(&path.display().to_string(), &t, name, id),
        Err(_) => Ok(Vec::new()),
    }
}

/// Where the setuid helpers are looked up.
pub fn find_helper(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin:/usr/sbin:/sbin".into());
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl IdMaps {
    /// Root on the host: container ids 0..size map to host ids base..base+size.
    pub fn rootful(base: u32, size: u32) -> Result<Self> {
        if size == 0 || base == 0 || base.checked_add(size).is_none() {
            return Err(IdMapError::Invalid(format!(
                "host range {base}:{size} is invalid (need base > 0, size > 0, base+size < 2^32)"
            )));
        }
        let m = vec![IdMap {
            inside: 0,
            outside: base,
            count: size,
        }];
        Ok(IdMaps {
            uids: m.clone(),
            gids: m,
            method: WriteMethod::Direct,
            deny_setgroups: false,
        })
    }

    /// An unprivileged user: container root is the user itself; container ids 1.. come from the user's
    /// subordinate ranges when `/etc/subuid` and `/etc/subgid` have them and the helpers are installed,
    /// otherwise only the single id is mapped.
    pub fn rootless(uid: u32, gid: u32, user_name: &str) -> Result<Self> {
        Self::rootless_from(
            uid,
            gid,
            user_name,
            Path::new("/etc/subuid"),
            Path::new("/etc/subgid"),
            helpers_installed(),
        )
    }

    /// [`IdMaps::rootless`] with the files and helper availability given (for tests).
    pub fn rootless_from(
        uid: u32,
        gid: u32,
        user_name: &str,
        subuid: &Path,
        subgid: &Path,
        helpers: bool,
    ) -> Result<Self> {
        let uranges = read_subid(subuid, user_name, uid)?;
        let granges = read_subid(subgid, user_name, uid)?;
        let own = |id| {
            vec![IdMap {
                inside: 0,
                outside: id,
                count: 1,
            }]
        };
        if helpers && !uranges.is_empty() && !granges.is_empty() {
            let extend = |id, ranges: &[SubidRange]| {
                let mut v = own(id);
                let mut next = 1u32;
                for r in ranges {
                    v.push(IdMap {
                        inside: next,
                        outside: r.start,
                        count: r.count,
                    });
                    next = next.saturating_add(r.count);
                }
                v
            };
            return Ok(IdMaps {
                uids: extend(uid, &uranges),
                gids: extend(gid, &granges),
                method: WriteMethod::Helpers,
                deny_setgroups: false,
            });
        }
        Ok(IdMaps {
            uids: own(uid),
            gids: own(gid),
            method: WriteMethod::Direct,
            deny_setgroups: true,
        })
    }

    /// Maps given by an OCI config (written directly: the caller must be allowed to).
    pub fn from_oci(uids: &[LinuxIdMapping], gids: &[LinuxIdMapping], privileged: bool) -> Self {
        IdMaps {
            uids: uids.iter().map(IdMap::from).collect(),
            gids: gids.iter().map(IdMap::from).collect(),
            method: if privileged {
                WriteMethod::Direct
            } else {
                WriteMethod::Helpers
            },
            deny_setgroups: false,
        }
    }

    /// The maps of an existing user namespace as read from inside it (`/proc/self/uid_map`,
    /// `gid_map` and `setgroups`): written already, so `method` is moot.
    pub fn from_proc(uid_map: &str, gid_map: &str, setgroups: &str) -> Result<Self> {
        Ok(IdMaps {
            uids: parse_map("uid_map", uid_map)?,
            gids: parse_map("gid_map", gid_map)?,
            method: WriteMethod::Direct,
            deny_setgroups: setgroups.trim() == "deny",
        })
    }

    /// True when both map the same ids the same way (in any line order; `method` aside).
    pub fn same_ids(&self, other: &IdMaps) -> bool {
        let sorted = |m: &[IdMap]| {
            let mut v = m.to_vec();
            v.sort_by_key(|m| m.inside);
            v
        };
        sorted(&self.uids) == sorted(&other.uids) && sorted(&self.gids) == sorted(&other.gids)
    }

    /// The host uid that container id `inside` maps to.
    pub fn host_uid(&self, inside: u32) -> Option<u32> {
        lookup(&self.uids, inside)
    }
    /// The host gid that container id `inside` maps to.
    pub fn host_gid(&self, inside: u32) -> Option<u32> {
        lookup(&self.gids, inside)
    }

    /// Writes the maps of process `pid` (which must be in a fresh user namespace without maps).
    pub fn apply(&self, pid: i32) -> Result<()> {
        match self.method {
            WriteMethod::Direct => {
                if self.deny_setgroups {
                    write_proc(pid, "setgroups", "deny")?;
                }
                write_proc(pid, "uid_map", &render(&self.uids))?;
                write_proc(pid, "gid_map", &render(&self.gids))
            }
            WriteMethod::Helpers => {
                run_helper("newuidmap", pid, &self.uids)?;
                run_helper("newgidmap", pid, &self.gids)
            }
        }
    }
}

fn lookup(maps: &[IdMap], inside: u32) -> Option<u32> {
    maps.iter()
        .find(|m| inside >= m.inside && inside - m.inside < m.count)
        .map(|m| m.outside + (inside - m.inside))
}

/// Parses the text of a `/proc/PID/uid_map` or `gid_map` file (`file` names it in errors).
pub fn parse_map(file: &str, text: &str) -> Result<Vec<IdMap>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<u32> = l
                .split_whitespace()
                .map(str::parse)
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| IdMapError::Invalid(format!("{file}: bad line {l:?}")))?;
            match f[..] {
                [inside, outside, count] => Ok(IdMap {
                    inside,
                    outside,
                    count,
                }),
                _ => Err(IdMapError::Invalid(format!(
                    "{file}: {l:?} is not \"inside outside count\""
                ))),
            }
        })
        .collect()
}

/// The text written to `/proc/PID/uid_map`.
pub fn render(maps: &[IdMap]) -> String {
    maps.iter().map(|m| format!("{m}\n")).collect()
}

fn helpers_installed() -> bool {
    find_helper("newuidmap").is_some() && find_helper("newgidmap").is_some()
}

fn write_proc(pid: i32, file: &str, content: &str) -> Result<()> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    let err = |source| IdMapError::Write {
        path: path.clone(),
        content: content.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(err)?;
    // One write(2): the kernel accepts a map only in a single write.
    f.write_all(content.as_bytes()).map_err(err)
}

fn run_helper(name: &str, pid: i32, maps: &[IdMap]) -> Result<()> {
    let helper = find_helper(name).unwrap_or_else(|| PathBuf::from(name));
    let mut args = vec![pid.to_string()];
    for m in maps {
        args.extend([
            m.inside.to_string(),
            m.outside.to_string(),
            m.count.to_string(),
        ]);
    }
    let out = Command::new(&helper)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| IdMapError::HelperSpawn {
            helper: helper.display().to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(IdMapError::Helper {
            helper: helper.display().to_string(),
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_maps_from_proc_and_compares_them() {
        let m = IdMaps::from_proc(
            "         0 1000000000      65536\n",
            "0 1000000000 65536\n1 5 1\n",
            "deny\n",
        )
        .unwrap();
        assert_eq!(
            m.uids,
            vec![IdMap {
                inside: 0,
                outside: 1_000_000_000,
                count: 65536
            }]
        );
        assert_eq!(m.gids.len(), 2);
        assert!(m.deny_setgroups);
        let mut other = m.clone();
        other.gids.reverse();
        other.method = WriteMethod::Helpers;
        assert!(m.same_ids(&other), "line order and method do not matter");
        other.uids[0].count = 1;
        assert!(!m.same_ids(&other));
        let e = parse_map("uid_map", "0 1\n").unwrap_err().to_string();
        assert!(e.contains("uid_map") && e.contains("0 1"), "{e}");
        assert!(parse_map("gid_map", "0 x 1").is_err());
        assert!(parse_map("uid_map", "").unwrap().is_empty());
    }

    #[test]
    fn parses_subid_by_name_and_uid() {
        let text =
            "# comment\nalice:100000:65536\nbob:165536:65536\n1001:300000:10\nalice:500000:0\n";
        let r = parse_subid("/etc/subuid", text, "alice", 1000).unwrap();
        assert_eq!(
            r,
            vec![SubidRange {
                start: 100000,
                count: 65536
            }]
        );
        let r = parse_subid("/etc/subuid", text, "carol", 1001).unwrap();
        assert_eq!(
            r,
            vec![SubidRange {
                start: 300000,
                count: 10
            }]
        );
        assert!(parse_subid("/etc/subuid", text, "dave", 1002)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let e = parse_subid("/etc/subuid", "alice:1:2\nbroken\n", "alice", 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/subuid:2: malformed subordinate id range \"broken\" (expected NAME:START:COUNT)"
        );
    }

    #[test]
    fn rootless_with_ranges_uses_helpers() {
        let dir = std::env::temp_dir().join(format!("gocker-idmap-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (su, sg) = (dir.join("subuid"), dir.join("subgid"));
        std::fs::write(&su, "alice:100000:65536\n").unwrap();
        std::fs::write(&sg, "alice:200000:1000\n").unwrap();
        let m = IdMaps::rootless_from(1000, 1000, "alice", &su, &sg, true).unwrap();
        assert_eq!(m.method, WriteMethod::Helpers);
        assert_eq!(render(&m.uids), "0 1000 1\n1 100000 65536\n");
        assert_eq!(render(&m.gids), "0 1000 1\n1 200000 1000\n");
        assert_eq!(m.host_uid(0), Some(1000));
        assert_eq!(m.host_uid(5), Some(100004));
        assert_eq!(m.host_uid(65537), None);
        // Without the helpers the single id is mapped and setgroups denied.
        let m = IdMaps::rootless_from(1000, 1000, "alice", &su, &sg, false).unwrap();
        assert_eq!((m.method, m.deny_setgroups), (WriteMethod::Direct, true));
        assert_eq!(render(&m.uids), "0 1000 1\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rootful_range_checked() {
        let m = IdMaps::rootful(100000, 65536).unwrap();
        assert_eq!(m.host_gid(0), Some(100000));
        assert!(IdMaps::rootful(0, 10).is_err());
        assert!(IdMaps::rootful(u32::MAX - 5, 10).is_err());
    }

    #[test]
    fn oci_round_trip() {
        let m = IdMap {
            inside: 0,
            outside: 4242,
            count: 7,
        };
        assert_eq!(IdMap::from(&m.to_oci()), m);
    }
}
