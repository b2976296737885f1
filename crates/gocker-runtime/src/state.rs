//! Container state on disk: `<root>/<id>/state.json`, written atomically, plus `<root>/names/<name>`
//! symlinks that reserve names. The root is `/run/gocker` for root and `$XDG_RUNTIME_DIR/gocker`
//! for other users. Entries whose monitor died (e.g. SIGKILLed) are collected by [`StateStore::collect_stale`].
//! A container with a copy-on-write root keeps its upper and work directories in `<root>/<id>`
//! ([`StateStore::root_dir`]), removed with the rest of its directory (docs/storage-roots.md).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{ExitStatus, Result, RuntimeError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Stopped,
}

/// What is recorded about one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub status: Status,
    /// Host pid of the payload (ring2), once created.
    pub pid: Option<i32>,
    /// Host pid and start time (clock ticks since boot) of the monitor (ring0).
    pub monitor_pid: i32,
    pub monitor_start: u64,
    pub rootfs: PathBuf,
    pub command: Vec<String>,
    pub created: u64,
    pub exit: Option<ExitStatus>,
    /// Remove the record when the container stops (`--rm`).
    pub auto_remove: bool,
    /// The container's cgroup, when it has one (resource limits).
    #[serde(default)]
    pub cgroup: Option<PathBuf>,
    /// The kernel's OOM killer killed a process of the container.
    #[serde(default)]
    pub oom_killed: bool,
    /// The container's address on the bridge network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::Ipv4Addr>,
}

impl ContainerState {
    /// Running with its cgroup frozen (`gocker pause`): docker's `paused`, read from the kernel
    /// (`cgroup.freeze`), never recorded, so a monitor saving its state cannot lose it.
    pub fn paused(&self) -> bool {
        self.status == Status::Running
            && self
                .cgroup
                .as_ref()
                .is_some_and(|cg| gocker_cgroups::Cgroup::open(cg).is_frozen())
    }

    /// A container made by `gocker create` and not started yet: status created and no monitor
    /// ever (`monitor_pid` 0). It is not stale, and `start` may reuse its name.
    pub fn never_started(&self) -> bool {
        self.status == Status::Created && self.monitor_pid == 0
    }
}

/// Root's default store ([`StateStore::default_root`]); on a tmpfs (crate::volatile).
pub const ROOT_STORE: &str = "/run/gocker";

/// The directory holding all containers' state.
#[derive(Debug, Clone)]
pub struct StateStore {
    root: PathBuf,
    /// Whether container events go to this store's journal ([`crate::events`]): only the
    /// calling user's default store keeps one (`gocker events` reads it). An OCI runtime's
    /// state root (`gocker-oci --root`) belongs to its caller (containerd, podman), which
    /// expects nothing there but the containers' directories.
    journal: bool,
}

/// Records an image or volume event in the journal of the calling user's state store
/// ([`StateStore::default_root`]; see [`crate::events`]).
pub fn record_event(kind: crate::events::Kind, action: &str, id: &str, attrs: &[(&str, &str)]) {
    match StateStore::open(StateStore::default_root()) {
        Ok(s) => crate::events::record(s.root(), kind, action, id, attrs),
        Err(e) => tracing::warn!("events: {e}"),
    }
}

/// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat).
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(19)?.parse().ok()
}

impl StateStore {
    /// The default store for the calling user.
    pub fn default_root() -> PathBuf {
        if rustix::process::geteuid().is_root() {
            return PathBuf::from(ROOT_STORE);
        }
        match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d).join("gocker"),
            _ => {
                std::env::temp_dir().join(format!("gocker-{}", rustix::process::geteuid().as_raw()))
            }
        }
    }

    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| RuntimeError::State {
            path: root.clone(),
            reason: e.to_string(),
        })?;
        // Root's default store is volatile, as /run is on most hosts (crate::volatile).
        if root == Path::new(ROOT_STORE) && rustix::process::geteuid().is_root() {
            crate::volatile::ensure(&root);
        }
        let names = root.join("names");
        fs::create_dir_all(&names).map_err(|e| RuntimeError::State {
            path: names,
            reason: e.to_string(),
        })?;
        // A store in a shared place (e.g. /tmp when XDG_RUNTIME_DIR is unset) must be ours, not a
        // directory another user prepared; and it stays private to its owner.
        let meta = fs::symlink_metadata(&root).map_err(|e| RuntimeError::State {
            path: root.clone(),
            reason: e.to_string(),
        })?;
        let me = rustix::process::geteuid().as_raw();
        if !meta.is_dir() || std::os::unix::fs::MetadataExt::uid(&meta) != me {
            return Err(RuntimeError::State {
                path: root,
                reason: format!(
                    "not a directory owned by uid {me}; refusing to keep container state there"
                ),
            });
        }
        let _ = fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let journal = root == Self::default_root();
        Ok(StateStore { root, journal })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Reserves `name` for `id` and creates the container's directory. Fails if the name is taken,
    /// except by this same container when it has stopped (it is being started again).
    ///
    /// The directory comes first and the name second: a concurrent [`StateStore::collect_stale`]
    /// removes names whose directory is missing, so the reverse order could lose a fresh name.
    pub fn reserve(&self, id: &str, name: &str) -> Result<()> {
        let link = self.root.join("names").join(name);
        let dir = self.dir(id);
        let fresh = match fs::create_dir(&dir) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => {
                return Err(RuntimeError::State {
                    path: dir,
                    reason: e.to_string(),
                })
            }
        };
        let undo = || {
            if fresh {
                let _ = fs::remove_dir_all(&dir);
            }
        };
        match std::os::unix::fs::symlink(format!("../{id}"), &link) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let same = fs::read_link(&link)
                    .map(|t| t == Path::new(&format!("../{id}")))
                    .unwrap_or(false);
                if !fresh
                    && same
                    && self
                        .load(id)
                        .map(|st| st.status == Status::Stopped || st.never_started())
                        .unwrap_or(false)
                {
                    return Ok(());
                }
                undo();
                Err(RuntimeError::NameInUse(name.to_owned()))
            }
            Err(e) => {
                undo();
                Err(RuntimeError::State {
                    path: link,
                    reason: e.to_string(),
                })
            }
        }
    }

    /// Atomically replaces the state file.
    pub fn save(&self, st: &ContainerState) -> Result<()> {
        let path = self.dir(&st.id).join("state.json");
        let tmp = path.with_extension("json.tmp");
        let err = |e: std::io::Error| RuntimeError::State {
            path: path.clone(),
            reason: e.to_string(),
        };
        let mut f = fs::File::create(&tmp).map_err(err)?;
        f.write_all(&serde_json::to_vec_pretty(st).expect("state serialises"))
            .map_err(err)?;
        drop(f);
        fs::rename(&tmp, &path).map_err(err)
    }

    /// The container's directory (state, spec, logs).
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.dir(id)
    }

    /// The directory of the container's copy-on-write root, with `upper` (its changes to the
    /// lower layers) and `work` (overlayfs's): [`StateStore::container_dir`] itself, so that
    /// making and removing a container costs no more directories than it must.
    pub fn root_dir(&self, id: &str) -> PathBuf {
        self.dir(id)
    }

    /// Rootless: records the container's id maps beside its root, so that whoever removes the
    /// container later can do so as the container's root ([`StateStore::remove`]).
    pub(crate) fn save_root_maps(&self, id: &str, maps: &gocker_idmap::IdMaps) -> Result<()> {
        self.write_json(id, ROOT_MAPS, maps)
    }

    /// Records the configuration the container was created from: the OCI spec as `config.json`
    /// and the whole [`ContainerConfig`](crate::ContainerConfig) as `container.json` (for `start`).
    ///
    /// `container.json` is only written when the container can be started again (`restartable`, i.e.
    /// not `--rm`): it carries the compiled seccomp program and is not worth writing on every start.
    pub fn save_config(&self, config: &crate::ContainerConfig, restartable: bool) -> Result<()> {
        self.write_json(&config.id, "config.json", &config.spec)?;
        if restartable {
            self.write_json(&config.id, "container.json", config)?;
        }
        Ok(())
    }

    /// The OCI spec recorded by [`StateStore::save_config`] (`config.json`: also for `--rm`).
    pub fn load_spec(&self, id: &str) -> Result<oci_spec::runtime::Spec> {
        self.read_json(id, "config.json")
    }

    /// Replaces the recorded OCI spec (`config.json`) of a container without a `container.json`.
    pub fn save_spec(&self, id: &str, spec: &oci_spec::runtime::Spec) -> Result<()> {
        self.write_json(id, "config.json", spec)
    }

    /// The configuration recorded by [`StateStore::save_config`].
    pub fn load_config(&self, id: &str) -> Result<crate::ContainerConfig> {
        self.read_json(id, "container.json")
    }

    fn read_json<T: serde::de::DeserializeOwned>(&self, id: &str, file: &str) -> Result<T> {
        let path = self.dir(id).join(file);
        let text = fs::read(&path).map_err(|e| RuntimeError::State {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        serde_json::from_slice(&text).map_err(|e| RuntimeError::State {
            path,
            reason: e.to_string(),
        })
    }

    fn write_json(&self, id: &str, file: &str, value: &impl Serialize) -> Result<()> {
        let path = self.dir(id).join(file);
        let body = serde_json::to_vec_pretty(value).map_err(|e| RuntimeError::State {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        fs::write(&path, body).map_err(|e| RuntimeError::State {
            path,
            reason: e.to_string(),
        })
    }

    /// The container's record; its name is the one [`StateStore::rename`] gave it last, if any
    /// (a running container's monitor keeps saving the name it started with).
    pub fn load(&self, id: &str) -> Result<ContainerState> {
        let mut st: ContainerState = self.read_json(id, "state.json")?;
        if let Some(name) = self.renamed(id) {
            st.name = name;
        }
        Ok(st)
    }

    /// The name given by the last [`StateStore::rename`] of the container, if any.
    fn renamed(&self, id: &str) -> Option<String> {
        fs::read_to_string(self.dir(id).join(NAME_FILE))
            .ok()
            .filter(|n| !n.is_empty())
    }

    /// Renames a container, running or not: `new` is reserved (fails with
    /// [`RuntimeError::NameInUse`] when taken), recorded beside the state (so that the monitor of
    /// a running container, which saves the state with the name it started with, does not undo
    /// it), and the old name is freed.
    pub fn rename(&self, id: &str, new: &str) -> Result<()> {
        let old = self.load(id)?.name;
        let link = self.root.join("names").join(new);
        match std::os::unix::fs::symlink(format!("../{id}"), &link) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::NameInUse(new.to_owned()))
            }
            Err(e) => {
                return Err(RuntimeError::State {
                    path: link,
                    reason: e.to_string(),
                })
            }
        }
        let path = self.dir(id).join(NAME_FILE);
        let tmp = path.with_extension("tmp");
        if let Err(e) = fs::write(&tmp, new).and_then(|()| fs::rename(&tmp, &path)) {
            let _ = fs::remove_file(&link);
            return Err(RuntimeError::State {
                path,
                reason: e.to_string(),
            });
        }
        self.unlink_name(id, &old);
        self.record("rename", id, &[("name", new), ("oldName", &old)]);
        Ok(())
    }

    /// Removes `names/<name>` when it is the name of `id`.
    fn unlink_name(&self, id: &str, name: &str) {
        let link = self.root.join("names").join(name);
        if fs::read_link(&link)
            .ok()
            .and_then(|t| t.file_name().map(|f| f == id))
            .unwrap_or(false)
        {
            let _ = fs::remove_file(&link);
        }
    }

    /// Finds a container by name, id, or unique id prefix.
    pub fn lookup(&self, name_or_id: &str) -> Result<ContainerState> {
        if let Ok(target) = fs::read_link(self.root.join("names").join(name_or_id)) {
            if let Some(id) = target.file_name().and_then(|s| s.to_str()) {
                return self.load(id);
            }
        }
        let matches: Vec<ContainerState> = self
            .list()?
            .into_iter()
            .filter(|s| !name_or_id.is_empty() && s.id.starts_with(name_or_id))
            .collect();
        match matches.len() {
            1 => Ok(matches.into_iter().next().expect("one")),
            _ => Err(RuntimeError::NoSuchContainer(name_or_id.to_owned())),
        }
    }

    /// All containers with a readable state file.
    pub fn list(&self) -> Result<Vec<ContainerState>> {
        let rd = fs::read_dir(&self.root).map_err(|e| RuntimeError::State {
            path: self.root.clone(),
            reason: e.to_string(),
        })?;
        let mut v: Vec<ContainerState> = rd
            .flatten()
            .filter(|e| e.file_name() != "names")
            .filter_map(|e| self.load(&e.file_name().to_string_lossy()).ok())
            .collect();
        v.sort_by_key(|s| s.created);
        Ok(v)
    }

    /// A container event in the journal, when this store keeps one.
    fn record(&self, action: &str, id: &str, attrs: &[(&str, &str)]) {
        if self.journal {
            crate::events::record(
                &self.root,
                crate::events::Kind::Container,
                action,
                id,
                attrs,
            );
        }
    }

    /// Records a container event in this store's journal ([`crate::events`]) with docker's
    /// attributes: `name` (the current one, after a rename), `image` (`None`: read from the
    /// container's recorded spec) and `extra`. For example, another module's pause:
    /// `store.record_container_event(&st, None, "pause", &[])`.
    pub fn record_container_event(
        &self,
        st: &ContainerState,
        image: Option<&str>,
        action: &str,
        extra: &[(&str, &str)],
    ) {
        if !self.journal {
            return;
        }
        let image = image.map_or_else(
            || {
                let spec: Option<serde_json::Value> =
                    fs::read(self.container_dir(&st.id).join("config.json"))
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok());
                let ann: Option<std::collections::HashMap<String, String>> =
                    spec.and_then(|s| serde_json::from_value(s["annotations"].clone()).ok());
                crate::events::container_image(ann.as_ref(), &st.rootfs)
            },
            str::to_owned,
        );
        let name = self
            .load(&st.id)
            .map_or_else(|_| st.name.clone(), |s| s.name);
        let mut attrs = vec![("name", name.as_str()), ("image", image.as_str())];
        attrs.extend_from_slice(extra);
        self.record(action, &st.id, &attrs);
    }

    /// Removes a container's directory and name.
    pub fn remove(&self, id: &str, name: &str) -> Result<()> {
        // The name first: once the record is gone from listings, its name is free too (a crash
        // in between leaves a record without a name, which collect_stale removes).
        self.unlink_name(id, name);
        // A monitor passes the name it started with: the name of a rename since goes too.
        if let Some(renamed) = self.renamed(id) {
            self.unlink_name(id, &renamed);
        }
        let dir = self.dir(id);
        let err = |path: &Path, e: rustix::io::Errno| RuntimeError::State {
            path: path.to_owned(),
            reason: std::io::Error::from(e).to_string(),
        };
        // The copy-on-write root first, while the maps recorded beside it are still there.
        let root = self.root_dir(id);
        for part in ["upper", "work"] {
            let p = root.join(part);
            match remove_path(&p) {
                Ok(()) => {}
                // Rootless: the upper directory holds files of the container's other ids (the
                // user's subordinate ids), which the user may not remove on the host: the
                // container's root removes them, in a user namespace with the container's maps.
                Err(e) if !rustix::process::geteuid().is_root() => {
                    let maps: gocker_idmap::IdMaps =
                        self.read_json(id, ROOT_MAPS)
                            .map_err(|m| RuntimeError::State {
                                path: p.clone(),
                                reason: format!("{} ({m})", std::io::Error::from(e)),
                            })?;
                    remove_as_container_root(&p, &maps)?;
                }
                Err(e) => return Err(err(&p, e)),
            }
        }
        remove_path(&dir).map_err(|e| err(&dir, e))?;
        if self.journal {
            let shown = self.renamed(id).unwrap_or_else(|| name.to_owned());
            self.record("destroy", id, &[("name", &shown)]);
        }
        Ok(())
    }

    /// True when the monitor recorded in `st` is still alive (same pid and start time).
    pub fn monitor_alive(st: &ContainerState) -> bool {
        process_start_time(st.monitor_pid) == Some(st.monitor_start)
    }

    /// Collects records left by monitors that died without cleaning up (e.g. SIGKILL): auto-remove
    /// containers are deleted, others are marked stopped. Directories without a state file that are
    /// older than a minute (a crash during creation) are removed too. Returns how many were collected.
    pub fn collect_stale(&self) -> usize {
        let Ok(rd) = fs::read_dir(&self.root) else {
            return 0;
        };
        let mut n = 0;
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if id == "names" {
                continue;
            }
            match self.load(&id) {
                Ok(mut st)
                    if st.status != Status::Stopped
                        && !st.never_started()
                        && !Self::monitor_alive(&st) =>
                {
                    n += 1;
                    if let Some(cg) = st.cgroup.take() {
                        let _ = gocker_cgroups::Cgroup::open(cg)
                            .remove(std::time::Duration::from_secs(1));
                    }
                    // The monitor may have recorded the exit just before it went: look again.
                    if self
                        .load(&id)
                        .map(|fresh| fresh.status == Status::Stopped)
                        .unwrap_or(false)
                    {
                        continue;
                    }
                    if st.auto_remove {
                        let _ = self.remove(&st.id, &st.name);
                    } else {
                        st.status = Status::Stopped;
                        st.exit.get_or_insert(ExitStatus::Signaled(9));
                        let _ = self.save(&st);
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    let old = e
                        .metadata()
                        .and_then(|m| m.modified())
                        .map(|t| t.elapsed().map(|d| d.as_secs() > 60).unwrap_or(false))
                        .unwrap_or(false);
                    if old {
                        n += 1;
                        let _ = remove_path(&e.path());
                    }
                }
            }
        }
        // Names whose container directory is gone.
        if let Ok(rd) = fs::read_dir(self.root.join("names")) {
            for e in rd.flatten() {
                if fs::metadata(e.path()).is_err() {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        // Network leftovers of containers whose monitor died (leases, nft rules, veths, helpers).
        n += collect_stale_network(&self.root);
        n
    }
}

/// The file in a rootless container's directory with its id maps ([`StateStore::save_root_maps`]).
const ROOT_MAPS: &str = "root-idmaps.json";

/// The file in a container's directory with the name of its last [`StateStore::rename`].
const NAME_FILE: &str = "name";

/// [`remove_tree`] of `path`; a path that does not exist is removed already.
fn remove_path(path: &Path) -> rustix::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::INVAL)?;
    match remove_tree(&c) {
        Err(Errno::NOENT) => Ok(()),
        r => r,
    }
}

use rustix::io::Errno;

/// Removes the tree at `path`, not following symlinks, with system calls only and a constant
/// amount of memory (no allocation, no recursion: a container may nest directories as deep as it
/// likes), so that it may run in a child forked from a multi-threaded process
/// ([`remove_as_container_root`]). A directory that cannot be read or written as it is
/// (overlayfs leaves `work/work` with mode 0) is opened up first, which its owner may do, and a
/// root with `CAP_FOWNER` over it.
fn remove_tree(path: &std::ffi::CStr) -> rustix::io::Result<()> {
    use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RawDir, SeekFrom, CWD};
    use std::mem::MaybeUninit;
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let open = |at: BorrowedFd<'_>, name: &std::ffi::CStr| -> rustix::io::Result<OwnedFd> {
        match rfs::openat(at, name, flags, Mode::empty()) {
            Err(Errno::ACCESS) => {
                rfs::chmodat(at, name, Mode::from_raw_mode(0o700), AtFlags::empty())?;
                rfs::openat(at, name, flags, Mode::empty())
            }
            r => r,
        }
    };
    // An entry of the directory `at`; made writable first when that is what it lacks.
    let unlink = |at: BorrowedFd<'_>, name: &std::ffi::CStr, dir: bool| {
        let how = if dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        match rfs::unlinkat(at, name, how) {
            Err(Errno::ACCESS) => {
                rfs::fchmod(at, Mode::from_raw_mode(0o700))?;
                rfs::unlinkat(at, name, how)
            }
            r => r,
        }
    };
    let mut fd = match open(CWD, path) {
        Err(Errno::NOTDIR) | Err(Errno::LOOP) => return rfs::unlink(path),
        r => r?,
    };
    let mut depth = 0usize;
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let mut name = [0u8; 256];
    loop {
        // One pass over the directory: files go, empty directories go, and the first directory
        // that is not empty is entered (the pass starts again from its parent once it is empty).
        let mut enter = None;
        rfs::seek(&fd, SeekFrom::Start(0))?;
        let mut dir = RawDir::new(fd.as_fd(), &mut buf);
        while let Some(entry) = dir.next() {
            let entry = entry?;
            let n = entry.file_name();
            let bytes = n.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let is_dir = match entry.file_type() {
                FileType::Directory => true,
                FileType::Unknown => {
                    let st = rfs::statat(fd.as_fd(), n, AtFlags::SYMLINK_NOFOLLOW)?;
                    FileType::from_raw_mode(st.st_mode) == FileType::Directory
                }
                _ => false,
            };
            match unlink(fd.as_fd(), n, is_dir) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(Errno::NOTEMPTY) | Err(Errno::EXIST) if is_dir && bytes.len() < name.len() => {
                    name[..bytes.len()].copy_from_slice(bytes);
                    name[bytes.len()] = 0;
                    enter = Some(bytes.len() + 1);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(len) = enter {
            let n = std::ffi::CStr::from_bytes_with_nul(&name[..len]).map_err(|_| Errno::INVAL)?;
            fd = open(fd.as_fd(), n)?;
            depth += 1;
        } else if depth == 0 {
            drop(fd);
            return match rfs::unlinkat(CWD, path, AtFlags::REMOVEDIR) {
                Err(Errno::ACCESS) => Err(Errno::ACCESS),
                r => r,
            };
        } else {
            fd = rfs::openat(fd.as_fd(), c"..", flags, Mode::empty())?;
            depth -= 1;
        }
    }
}

/// Rootless: removes `dir` (a container's copy-on-write root) as the container's root, from a
/// child in a new user namespace with the container's id maps (written by newuidmap/newgidmap
/// as for ring1), where every file the container could have made is its own.
fn remove_as_container_root(dir: &Path, maps: &gocker_idmap::IdMaps) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let fail = |reason: String| RuntimeError::State {
        path: dir.to_owned(),
        reason,
    };
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| fail("a NUL in the path".into()))?;
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| RuntimeError::sys("pipe", "removal as the container's root", e))?;
    let set = gocker_ns::NamespaceSet::EMPTY.with(gocker_ns::Namespace::User);
    // The child makes system calls only (read, the credential calls, remove_tree, which
    // allocates nothing, and _exit), so this holds in a multi-threaded caller too.
    // SAFETY: the child calls only async-signal-safe functions until its _exit.
    let forked = unsafe { gocker_ns::fork_into(set, None) }?;
    let pid = match forked {
        gocker_ns::Forked::Child => {
            drop(w);
            let mut b = [0u8; 1];
            let ok = matches!(rustix::io::read(&r, &mut b), Ok(1))
                && crate::spawn::become_ns_root_raw(!maps.deny_setgroups)
                && remove_tree(&c).is_ok();
            // SAFETY: async-signal-safe exit of the forked child, without the parent's atexit work.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        gocker_ns::Forked::Parent { pid, pidfd: _ } => pid,
    };
    drop(r);
    let applied = maps.apply(pid.as_raw_nonzero().get());
    if applied.is_ok() {
        let _ = rustix::io::write(&w, &[1]);
    }
    drop(w);
    let status = loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Err(Errno::INTR) => continue,
            r => break r,
        }
    };
    applied?;
    match status {
        Ok(Some((_, st))) if st.exit_status() == Some(0) => Ok(()),
        _ => Err(fail(
            "could not remove it as the container's root (in a user namespace with its id maps)"
                .into(),
        )),
    }
}

/// The network state directory (leases, lock, helper records): `<store>-net`, beside the state
/// store rather than inside it, so that no gocker ever mistakes it for a container's directory.
pub fn net_dir(store_root: &std::path::Path) -> std::path::PathBuf {
    let mut s = store_root.as_os_str().to_owned();
    s.push("-net");
    s.into()
}

/// Leftovers of containers whose monitor died; returns how many items were removed.
fn collect_stale_network(store_root: &std::path::Path) -> usize {
    let removed = gocker_net::collect_stale(&net_dir(store_root));
    for r in &removed {
        tracing::debug!("collected stale network state: {r}");
    }
    removed.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(
        id: &str,
        name: &str,
        monitor_pid: i32,
        monitor_start: u64,
        auto_remove: bool,
    ) -> ContainerState {
        ContainerState {
            id: id.into(),
            name: name.into(),
            status: Status::Running,
            pid: None,
            monitor_pid,
            monitor_start,
            rootfs: "/".into(),
            command: vec!["true".into()],
            created: 0,
            exit: None,
            auto_remove,
            cgroup: None,
            oom_killed: false,
            ip: None,
        }
    }

    #[test]
    fn a_container_directory_is_removed_however_deep_and_closed_and_never_through_a_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("gocker-rmtree-{}", std::process::id()));
        let outside = base.join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("keep"), "k").unwrap();
        let s = StateStore::open(base.join("store")).unwrap();
        s.reserve("eee555", "deep").unwrap();
        let root = s.root_dir("eee555");
        // Deeper than any recursion would like, a directory of mode 0 as overlayfs leaves
        // work/work, a read-only one with files, and symlinks to a directory outside.
        let mut d = root.join("upper");
        for _ in 0..600 {
            d.push("d");
        }
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("f"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, d.join("link")).unwrap();
        fs::create_dir_all(root.join("work/work")).unwrap();
        fs::set_permissions(root.join("work/work"), fs::Permissions::from_mode(0o000)).unwrap();
        let ro = root.join("upper/ro");
        fs::create_dir_all(ro.join("inner")).unwrap();
        fs::write(ro.join("file"), "y").unwrap();
        fs::set_permissions(ro.join("inner"), fs::Permissions::from_mode(0o000)).unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        std::os::unix::fs::symlink(&outside, s.container_dir("eee555").join("out")).unwrap();
        s.remove("eee555", "deep").unwrap();
        assert!(!s.container_dir("eee555").exists());
        assert!(s.root().join("names").read_dir().unwrap().next().is_none());
        assert_eq!(fs::read_to_string(outside.join("keep")).unwrap(), "k");
        // Removing what is gone already is not an error.
        s.remove("eee555", "deep").unwrap();
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_rename_moves_the_name_and_outlives_the_monitor_saving_the_old_one() {
        let root = std::env::temp_dir().join(format!("gocker-rename-test-{}", std::process::id()));
        let s = StateStore::open(&root).unwrap();
        let me = std::process::id() as i32;
        let start = process_start_time(me).unwrap();
        for (id, name) in [("aaa111", "web"), ("bbb222", "db")] {
            s.reserve(id, name).unwrap();
            s.save(&state(id, name, me, start, false)).unwrap();
        }
        assert!(matches!(
            s.rename("aaa111", "db"),
            Err(RuntimeError::NameInUse(_))
        ));
        assert_eq!(s.lookup("db").unwrap().id, "bbb222");
        s.rename("aaa111", "front").unwrap();
        // The monitor saves its state with the name it started with: the rename stays.
        s.save(&state("aaa111", "web", me, start, false)).unwrap();
        assert_eq!(s.lookup("front").unwrap().name, "front");
        assert_eq!(s.load("aaa111").unwrap().name, "front");
        assert!(s.lookup("web").is_err());
        // The old name is free; removing with the old name frees the new one too.
        s.reserve("ccc333", "web").unwrap();
        s.remove("aaa111", "web").unwrap();
        assert!(s.lookup("front").is_err());
        assert!(!root.join("names/front").exists());
        assert_eq!(
            fs::read_link(root.join("names/web")).unwrap(),
            Path::new("../ccc333")
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn names_are_unique_and_stale_entries_collected() {
        let root = std::env::temp_dir().join(format!("gocker-state-test-{}", std::process::id()));
        let s = StateStore::open(&root).unwrap();
        s.reserve("aaa111", "web").unwrap();
        assert!(matches!(
            s.reserve("bbb222", "web"),
            Err(RuntimeError::NameInUse(_))
        ));
        let me = std::process::id() as i32;
        s.save(&state(
            "aaa111",
            "web",
            me,
            process_start_time(me).unwrap(),
            true,
        ))
        .unwrap();
        assert_eq!(s.lookup("web").unwrap().id, "aaa111");
        assert_eq!(s.lookup("aaa").unwrap().id, "aaa111");
        assert_eq!(s.collect_stale(), 0, "a live monitor is not stale");

        // A dead monitor (wrong start time): the auto-remove entry goes, the other is marked stopped.
        s.save(&state("aaa111", "web", me, 1, true)).unwrap();
        s.reserve("ccc333", "db").unwrap();
        s.save(&state("ccc333", "db", me, 1, false)).unwrap();
        assert_eq!(s.collect_stale(), 2);
        assert!(s.lookup("web").is_err());
        let db = s.lookup("db").unwrap();
        assert_eq!(
            (db.status, db.exit),
            (Status::Stopped, Some(ExitStatus::Signaled(9)))
        );
        s.reserve("ddd444", "web").unwrap();
        fs::remove_dir_all(&root).unwrap();
    }
}
