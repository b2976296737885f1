//! cgroup v2 for Gocker and for embedders.
//!
//! * [`Hierarchy::find`] locates the cgroup2 mount and [`Hierarchy::parent_for_containers`] the
//!   subtree the caller may use (root: `<mount>/gocker`; rootless: the delegated subtree found from
//!   `/proc/self/cgroup`, checked for write access).
//! * [`limits::plan`] turns OCI `LinuxResources` into interface-file writes (pure).
//! * [`Cgroup`] creates a container's cgroup, enables controllers, applies limits, hands out the
//!   directory fd for `CLONE_INTO_CGROUP`, reads stats and OOM events, freezes, kills and removes.
//!
//! Paths are injected (`Hierarchy::at`), so all of the logic runs against a plain directory in tests.

pub mod limits;

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup2 filesystem is mounted (Gocker supports cgroup v2 only)")]
    NoCgroup2,
    #[error("cgroup v2 controllers not available in {parent}: {missing} ({why})")]
    MissingControllers {
        parent: PathBuf,
        missing: String,
        why: String,
    },
    #[error(
        "no delegated cgroup subtree for uid {uid} (own cgroup {own}): rootless limits need a systemd user \
         session with delegation (Delegate=yes in user@.service)"
    )]
    NotDelegated { uid: u32, own: PathBuf },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("invalid resource limit: {0}")]
    Invalid(String),
    #[error("cgroup {0} still has processes after kill")]
    Busy(PathBuf),
    #[error("cgroup {0} has no cgroup.freeze (the cgroup v2 freezer needs Linux 5.2)")]
    NoFreezer(PathBuf),
    #[error(
        "{path} did not report frozen {} within {waited:?}{}",
        u8::from(*frozen),
        if *frozen { " (thawed again)" } else { "" }
    )]
    FreezeTimeout {
        path: PathBuf,
        frozen: bool,
        waited: Duration,
    },
}

pub type Result<T> = std::result::Result<T, CgroupError>;

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(io("read", path))
}

fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_owned(),
        value: value.to_owned(),
        source,
    })
}

/// The cgroup2 hierarchy.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    mount: PathBuf,
}

/// The cgroup2 mount point from a `/proc/self/mountinfo` text.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        if post.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        pre.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// `statfs(2)` `f_type` of a cgroup2 and of a cgroup v1 filesystem.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;

/// Where a cgroup2 hierarchy is mounted on unified and on hybrid hosts (systemd's layout).
const USUAL_CGROUP2: [&str; 2] = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];

/// The filesystem type of the mount holding `path`, if it can be asked (`f_type` is a C long
/// here, a narrower integer on some architectures).
#[allow(clippy::useless_conversion)]
fn fs_magic(path: &Path) -> Option<i64> {
    rustix::fs::statfs(path).ok().map(|s| i64::from(s.f_type))
}

/// Which of `controllers` a cgroup v1 hierarchy holds on this host: a v1 mount at systemd's
/// `/sys/fs/cgroup/<controller>` answers with one `statfs`; `/proc/self/mountinfo` is read only
/// for the controllers not found there.
fn host_v1_bound<'a>(controllers: &[&'a str]) -> Vec<&'a str> {
    let v1_name = |c: &str| if c == "io" { "blkio" } else { c }.to_owned();
    let (mut found, rest): (Vec<&str>, Vec<&str>) = controllers.iter().partition(|c| {
        fs_magic(&Path::new("/sys/fs/cgroup").join(v1_name(c))) == Some(CGROUP_SUPER_MAGIC)
    });
    if !rest.is_empty() {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let more = bound_to_v1(&mountinfo, &rest);
        found.extend(more);
        found.sort_by_key(|c| controllers.iter().position(|x| x == c));
    }
    found
}

/// Which of `controllers` a cgroup v1 hierarchy holds, from a `/proc/self/mountinfo` text.
pub fn bound_to_v1<'a>(mountinfo: &str, controllers: &[&'a str]) -> Vec<&'a str> {
    let v1_opts: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| {
            let (_, post) = l.split_once(" - ")?;
            let mut f = post.split_whitespace();
            (f.next()? == "cgroup").then(|| f.nth(1))?
        })
        .collect();
    controllers
        .iter()
        .copied()
        .filter(|c| {
            let name = if *c == "io" { "blkio" } else { c };
            v1_opts.iter().any(|o| o.split(',').any(|x| x == name))
        })
        .collect()
}

/// The caller's cgroup v2 path from a `/proc/self/cgroup` text (the `0::` line).
pub fn own_cgroup(proc_cgroup: &str) -> Option<PathBuf> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(PathBuf::from))
}

impl Hierarchy {
    /// Finds the cgroup2 mount of this process.
    ///
    /// The usual places are asked first with one `statfs` each (`/sys/fs/cgroup` on a unified
    /// host, `/sys/fs/cgroup/unified` on a hybrid one); `/proc/self/mountinfo`, which the kernel
    /// formats line by line for every mount, is read only when neither is a cgroup2 mount.
    pub fn find() -> Result<Hierarchy> {
        if let Some(mount) = USUAL_CGROUP2
            .iter()
            .find(|p| fs_magic(Path::new(p)) == Some(CGROUP2_SUPER_MAGIC))
        {
            return Ok(Hierarchy {
                mount: PathBuf::from(mount),
            });
        }
        let mi = read(Path::new("/proc/self/mountinfo"))?;
        cgroup2_mount(&mi)
            .map(|mount| Hierarchy { mount })
            .ok_or(CgroupError::NoCgroup2)
    }

    /// A hierarchy rooted at `mount` (tests use a plain directory).
    pub fn at(mount: impl Into<PathBuf>) -> Hierarchy {
        Hierarchy {
            mount: mount.into(),
        }
    }

    pub fn mount(&self) -> &Path {
        &self.mount
    }

    /// Controllers available in the cgroup at `dir`.
    pub fn controllers(dir: &Path) -> Result<Vec<String>> {
        Ok(read(&dir.join("cgroup.controllers"))?
            .split_whitespace()
            .map(str::to_owned)
            .collect())
    }

    /// The directory under which containers' cgroups go: `<mount>/gocker` for root; for other users
    /// `<delegated>/gocker`, where `<delegated>` is the highest ancestor of the caller's cgroup that the
    /// caller may manage (owns `cgroup.procs` and `cgroup.subtree_control`).
    pub fn parent_for_containers(&self) -> Result<PathBuf> {
        if rustix::process::geteuid().is_root() {
            return Ok(self.mount.join("gocker"));
        }
        let uid = rustix::process::geteuid().as_raw();
        let own = own_cgroup(&read(Path::new("/proc/self/cgroup"))?).unwrap_or_default();
        let mut best = None;
        let mut rel = own.clone();
        loop {
            let dir = self.mount.join(rel.strip_prefix("/").unwrap_or(&rel));
            let ours = ["cgroup.procs", "cgroup.subtree_control"].iter().all(|f| {
                fs::metadata(dir.join(f))
                    .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == uid)
                    .unwrap_or(false)
            });
            if !ours {
                break;
            }
            best = Some(dir);
            if !rel.pop() || rel.as_os_str().is_empty() || rel == Path::new("/") {
                break;
            }
        }
        best.map(|d| d.join("gocker"))
            .ok_or(CgroupError::NotDelegated { uid, own })
    }
}

/// Where a container's cgroup goes: `base`, an existing cgroup whose controllers the caller may
/// enable, and the path below it to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub base: PathBuf,
    pub rel: PathBuf,
}

impl Hierarchy {
    /// The placement for a container: OCI `linux.cgroupsPath` when given, else
    /// `<parent_for_containers>/<id>`. An absolute cgroupsPath is below the cgroup2 mount (as
    /// runc's cgroupfs driver); a relative one below [`Hierarchy::parent_for_containers`]. `..`
    /// and systemd's `slice:prefix:name` notation are refused.
    pub fn placement(&self, cgroups_path: Option<&str>, id: &str) -> Result<Placement> {
        let default_parent = || self.parent_for_containers();
        let bad =
            |why: &str| CgroupError::Invalid(format!("linux.cgroupsPath {cgroups_path:?}: {why}"));
        let Some(p) = cgroups_path.filter(|p| !p.is_empty()) else {
            let parent = default_parent()?;
            let base = parent.parent().unwrap_or(&parent).to_owned();
            return Ok(Placement {
                rel: Path::new("gocker").join(id),
                base,
            });
        };
        if p.contains(':') {
            return Err(bad("systemd notation (slice:prefix:name) needs --systemd-cgroup, which gocker does not support; give a path"));
        }
        let path = Path::new(p);
        if path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(bad("\"..\" is not allowed"));
        }
        let inner: PathBuf = path
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .collect();
        if inner.as_os_str().is_empty() {
            return Err(bad("names no cgroup below the root"));
        }
        if path.is_relative() {
            let parent = default_parent()?;
            let base = parent.parent().unwrap_or(&parent).to_owned();
            return Ok(Placement {
                rel: Path::new("gocker").join(inner),
                base,
            });
        }
        // Absolute: root enables controllers from the top; others from the deepest cgroup that
        // exists already (their delegated subtree, if the path lies in it).
        let target = self.mount.join(&inner);
        let base = if rustix::process::geteuid().is_root() {
            self.mount.clone()
        } else {
            target
                .ancestors()
                .skip(1)
                .find(|a| a.join("cgroup.controllers").exists())
                .unwrap_or(&self.mount)
                .to_owned()
        };
        let rel = target.strip_prefix(&base).unwrap_or(&inner).to_owned();
        Ok(Placement { base, rel })
    }
}

/// Checks that the existing cgroup `base` offers `controllers` (its `cgroup.controllers`): else
/// the error names the missing ones and, when a cgroup v1 hierarchy holds them (a hybrid host),
/// says so and how to switch.
pub fn check_available(base: &Path, controllers: &[&str]) -> Result<()> {
    let available = Hierarchy::controllers(base)?;
    let missing: Vec<&str> = controllers
        .iter()
        .copied()
        .filter(|c| !available.iter().any(|a| a == c))
        .collect();
    if !missing.is_empty() {
        let v1 = host_v1_bound(&missing);
        let why = if v1.is_empty() {
            "enable them in the parent's cgroup.subtree_control, or ask for delegation of these controllers".to_owned()
        } else {
            format!(
                "this host binds {} to cgroup v1 (a hybrid hierarchy); boot with \
                     systemd.unified_cgroup_hierarchy=1 or cgroup_no_v1=all to use limits",
                v1.join(", ")
            )
        };
        return Err(CgroupError::MissingControllers {
            parent: base.to_owned(),
            missing: missing.join(", "),
            why,
        });
    }
    Ok(())
}

/// One container's cgroup.
#[derive(Debug)]
pub struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    /// Creates `parent/name` after checking that `controllers` are available in `parent`'s parent and
    /// enabling them on the way down. Nothing is created when a controller is missing.
    pub fn create(parent: &Path, name: &str, controllers: &[&str]) -> Result<Cgroup> {
        let grand = parent.parent().unwrap_or(parent);
        let rel = Path::new(parent.file_name().unwrap_or_default()).join(name);
        Cgroup::create_under(grand, &rel, controllers)
    }

    /// Creates `base/rel`: checks that `controllers` are available in the existing cgroup `base`,
    /// then enables them in each `cgroup.subtree_control` on the way down, creating the
    /// intermediate cgroups that do not exist yet. The last one must be new. Nothing is created
    /// when a controller is missing.
    pub fn create_under(base: &Path, rel: &Path, controllers: &[&str]) -> Result<Cgroup> {
        check_available(base, controllers)?;
        let enable: String = controllers.iter().map(|c| format!("+{c} ")).collect();
        let mut dir = base.to_owned();
        let parts: Vec<_> = rel.components().collect();
        for (i, part) in parts.iter().enumerate() {
            if !controllers.is_empty() {
                write(&dir.join("cgroup.subtree_control"), enable.trim_end())?;
            }
            dir.push(part);
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && i + 1 < parts.len() => {}
                Err(e) => {
                    return Err(CgroupError::Io {
                        op: "mkdir",
                        path: dir,
                        source: e,
                    })
                }
            }
        }
        Ok(Cgroup { path: dir })
    }

    /// An existing cgroup directory.
    pub fn open(path: impl Into<PathBuf>) -> Cgroup {
        Cgroup { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies the planned writes; the first failure names the file and value.
    pub fn apply(&self, writes: &[limits::Write]) -> Result<()> {
        writes
            .iter()
            .try_for_each(|w| write(&self.path.join(&w.file), &w.value))
    }

    /// A directory fd for `clone3(CLONE_INTO_CGROUP)`.
    pub fn dir_fd(&self) -> Result<OwnedFd> {
        rustix::fs::open(
            &self.path,
            rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| CgroupError::Io {
            op: "open",
            path: self.path.clone(),
            source: e.into(),
        })
    }

    /// Moves a process in (when it could not be created inside).
    pub fn attach(&self, pid: i32) -> Result<()> {
        write(&self.path.join("cgroup.procs"), &pid.to_string())
    }

    /// A `key value` file (memory.events, cpu.stat, ...) as pairs.
    pub fn keyed(&self, file: &str) -> Result<Vec<(String, u64)>> {
        Ok(read(&self.path.join(file))?
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_owned(), v.trim().parse().ok()?))
            })
            .collect())
    }

    /// A single-value file (memory.current, pids.current).
    pub fn value(&self, file: &str) -> Result<u64> {
        let p = self.path.join(file);
        read(&p)?.trim().parse().map_err(|_| CgroupError::Io {
            op: "parse",
            path: p,
            source: std::io::Error::from(std::io::ErrorKind::InvalidData),
        })
    }

    /// How many times the OOM killer killed a process of this cgroup (`memory.events` oom_kill).
    pub fn oom_kills(&self) -> u64 {
        self.keyed("memory.events")
            .ok()
            .and_then(|v| v.into_iter().find(|(k, _)| k == "oom_kill").map(|(_, n)| n))
            .unwrap_or(0)
    }

    /// Freezes or thaws every process of the cgroup (the cgroup v2 freezer, `cgroup.freeze`, a
    /// core file that needs no controller) and waits up to `timeout` until the kernel reports the
    /// new state in `cgroup.events` (`frozen 1` / `frozen 0`): a freeze is only done when every
    /// task has stopped. A freeze that does not complete in time is thawed again and reported.
    pub fn freeze(&self, frozen: bool, timeout: Duration) -> Result<()> {
        let file = self.path.join("cgroup.freeze");
        if !file.exists() {
            return Err(CgroupError::NoFreezer(self.path.clone()));
        }
        write(&file, if frozen { "1" } else { "0" })?;
        let want = if frozen { 1 } else { 0 };
        let end = Instant::now() + timeout;
        loop {
            if self.events_frozen()? == Some(want) {
                return Ok(());
            }
            if Instant::now() >= end {
                if frozen {
                    let _ = write(&file, "0");
                }
                return Err(CgroupError::FreezeTimeout {
                    path: self.path.join("cgroup.events"),
                    frozen,
                    waited: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The `frozen` value of `cgroup.events` (`None` on a kernel that reports none).
    fn events_frozen(&self) -> Result<Option<u64>> {
        Ok(self
            .keyed("cgroup.events")?
            .into_iter()
            .find(|(k, _)| k == "frozen")
            .map(|(_, v)| v))
    }

    /// Whether the cgroup was asked to be frozen (`cgroup.freeze` reads 1): a paused container.
    /// `false` when the file cannot be read (no cgroup any more, no freezer).
    pub fn is_frozen(&self) -> bool {
        fs::read_to_string(self.path.join("cgroup.freeze")).is_ok_and(|v| v.trim() == "1")
    }

    /// Makes `controllers` available in this cgroup by enabling them in its parent's
    /// `cgroup.subtree_control` (for limits asked for after creation, as `update` does). The
    /// parent must offer them (`cgroup.controllers`): else the error names the missing ones.
    pub fn enable(&self, controllers: &[&str]) -> Result<()> {
        let have = Hierarchy::controllers(&self.path).unwrap_or_default();
        let todo: Vec<&str> = controllers
            .iter()
            .copied()
            .filter(|c| !have.iter().any(|h| h == c))
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let parent = self.path.parent().unwrap_or(&self.path);
        check_available(parent, &todo)?;
        let enable: Vec<String> = todo.iter().map(|c| format!("+{c}")).collect();
        write(&parent.join("cgroup.subtree_control"), &enable.join(" "))
    }

    /// SIGKILLs every process of the cgroup (`cgroup.kill`, Linux 5.14).
    pub fn kill(&self) -> Result<()> {
        write(&self.path.join("cgroup.kill"), "1")
    }

    /// Kills what is left and removes the cgroup, waiting up to `timeout` for it to empty.
    pub fn remove(self, timeout: Duration) -> Result<()> {
        let end = Instant::now() + timeout;
        loop {
            match fs::remove_dir(&self.path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) if e.raw_os_error() == Some(16) /* EBUSY */ => {
                    let _ = self.kill();
                    if Instant::now() >= end {
                        return Err(CgroupError::Busy(self.path));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(CgroupError::Io { op: "rmdir", path: self.path.clone(), source: e }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statfs shortcuts give the answers the mount table gives, on whatever host this runs.
    #[test]
    fn the_statfs_shortcuts_agree_with_the_mount_table() {
        let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
        match (Hierarchy::find(), cgroup2_mount(&mi)) {
            (Ok(h), Some(m)) => assert_eq!(h.mount(), m),
            (Err(CgroupError::NoCgroup2), None) => {}
            (found, listed) => panic!("find() gave {found:?}, mountinfo lists {listed:?}"),
        }
        let all = [
            "cpu", "cpuset", "io", "memory", "pids", "hugetlb", "rdma", "misc",
        ];
        assert_eq!(host_v1_bound(&all), bound_to_v1(&mi, &all));
    }

    #[test]
    fn finds_cgroup2_mount_and_own_cgroup() {
        let mi = "25 1 0:22 / / rw - ext4 /dev/vda rw\n\
                  40 30 0:35 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup2_mount(mi),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(cgroup2_mount("25 1 0:22 / / rw - ext4 /dev/vda rw\n"), None);
        assert_eq!(
            own_cgroup("1:cpu:/\n0::/user.slice/user-1000.slice\n"),
            Some(PathBuf::from("/user.slice/user-1000.slice"))
        );
    }

    #[test]
    fn v1_bound_controllers_are_detected() {
        let mi = "33 25 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                  34 25 0:30 / /sys/fs/cgroup/blkio rw - cgroup cgroup rw,blkio\n\
                  35 25 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        assert_eq!(bound_to_v1(mi, &["memory", "pids", "io"]), ["memory", "io"]);
    }

    fn fake_hierarchy(controllers: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "gocker-cg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("cgroup.controllers"), controllers).unwrap();
        fs::write(root.join("cgroup.subtree_control"), "").unwrap();
        root
    }

    #[test]
    fn missing_controllers_are_named_and_nothing_is_created() {
        let root = fake_hierarchy("hugetlb\n");
        let e = Cgroup::create(&root.join("gocker"), "c1", &["memory", "pids"]).unwrap_err();
        assert!(e.to_string().contains("memory, pids"), "{e}");
        assert!(e.to_string().contains("memory, pids"), "{e}");
        assert!(!root.join("gocker").exists());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn cgroups_path_places_the_cgroup() {
        let root = fake_hierarchy("memory pids\n");
        let h = Hierarchy::at(&root);
        let me = rustix::process::geteuid().is_root();
        if me {
            let p = h.placement(Some("/a/b/c1"), "id").unwrap();
            assert_eq!(
                p,
                Placement {
                    base: root.clone(),
                    rel: "a/b/c1".into()
                }
            );
            let p = h.placement(Some("pod/c1"), "id").unwrap();
            assert_eq!(
                p,
                Placement {
                    base: root.clone(),
                    rel: "gocker/pod/c1".into()
                }
            );
            let p = h.placement(None, "id").unwrap();
            assert_eq!(
                p,
                Placement {
                    base: root.clone(),
                    rel: "gocker/id".into()
                }
            );
            // Intermediate cgroups are created and get the controllers; the leaf must be new.
            let cg = Cgroup::create_under(&p.base, Path::new("a/b/c1"), &["pids"]).unwrap();
            assert_eq!(cg.path(), root.join("a/b/c1"));
            assert_eq!(
                fs::read_to_string(root.join("a/cgroup.subtree_control")).unwrap(),
                "+pids"
            );
            let e = Cgroup::create_under(&p.base, Path::new("a/b/c1"), &["pids"]).unwrap_err();
            assert!(e.to_string().contains("mkdir"), "{e}");
        }
        for bad in ["/a/../b", "/", "system.slice:gocker:c1"] {
            let e = h.placement(Some(bad), "id").unwrap_err().to_string();
            assert!(e.contains("linux.cgroupsPath"), "{bad}: {e}");
        }
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn create_enables_controllers_and_applies_limits() {
        let root = fake_hierarchy("cpuset cpu io memory pids\n");
        let cg = Cgroup::create(&root.join("gocker"), "c1", &["memory", "pids"]).unwrap();
        assert_eq!(
            fs::read_to_string(root.join("cgroup.subtree_control")).unwrap(),
            "+memory +pids"
        );
        assert_eq!(
            fs::read_to_string(root.join("gocker/cgroup.subtree_control")).unwrap(),
            "+memory +pids"
        );
        let writes = vec![limits::Write {
            controller: "pids",
            file: "pids.max".into(),
            value: "20".into(),
        }];
        cg.apply(&writes).unwrap();
        assert_eq!(
            fs::read_to_string(cg.path().join("pids.max")).unwrap(),
            "20"
        );
        fs::write(
            cg.path().join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(cg.oom_kills(), 1);
        fs::remove_dir_all(root).unwrap();
    }
}
