//! Named volumes, as docker's `local` driver keeps them: `ROOT/NAME/_data` (what containers
//! mount) and `ROOT/NAME/meta.json` (name, driver, labels, options, creation time).
//!
//! - Names follow docker's rule `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (at most [`MAX_NAME_LEN`] bytes), so
//!   a name is always one plain path component: no `/`, no `.` or `..`.
//! - Creation is atomic: the volume is built in `ROOT/.create-*` and renamed into place, under
//!   an exclusive `flock` of `ROOT/.lock` ([`VolumeStore::lock`]), so that two concurrent
//!   `volume create X` make one volume and the second finds it (docker answers with the
//!   existing volume: so does [`VolumeStore::create`]).
//! - [`VolumeStore::copy_up`] is docker's copy-up: on the first use of an empty volume, what the
//!   container's root has at the mount destination is copied into it (files, directories,
//!   symlinks, hard links, fifos and, as root, device nodes; modes, times and owners where the
//!   caller may give them: host root always, root of a user namespace the ids mapped there,
//!   anyone else only its own). The root may be a stack of overlayfs layers (whiteouts and opaque directories
//!   are honoured). Every step is an `openat` with `O_NOFOLLOW` below a directory descriptor, and
//!   symlinks on the way to the destination are resolved by this code as if the root were `/`
//!   (`..` stops at the root), so a hostile root cannot make it read or write outside the root
//!   and the volume. The copy is made in a temporary directory beside `_data` and moved in only
//!   when complete: a failed copy-up leaves the volume as it was.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::fs::{self, File, OpenOptions};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

/// The only driver: directories on the host, as docker's `local` driver without options.
pub const DRIVER: &str = "local";
/// The longest volume name accepted (a file name's limit, NAME_MAX).
pub const MAX_NAME_LEN: usize = 255;
/// The metadata file of a volume, beside its `_data` directory.
pub const META_FILE: &str = "meta.json";
/// The directory containers mount.
pub const DATA_DIR: &str = "_data";
/// Deepest directory nesting that copy-up follows (each level holds descriptors open).
const MAX_DEPTH: usize = 256;
/// Symlinks followed while resolving the copy-up destination (Linux's limit).
const MAX_SYMLINKS: usize = 40;

/// Errors of the volume store; each names the volume (or the bad value) concerned.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("invalid volume name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("no such volume: {name}")]
    NotFound { name: String },
    #[error("volume driver {driver:?} is not supported (only \"local\")")]
    UnsupportedDriver { driver: String },
    #[error("volume {name}: {op} {path}: {source}")]
    Io {
        name: String,
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("volume {name}: {path}: {detail}")]
    Meta {
        name: String,
        path: PathBuf,
        detail: String,
    },
    #[error("copy-up of {src} into volume {name}: {entry}: {reason}")]
    CopyUp {
        name: String,
        src: String,
        entry: String,
        reason: String,
    },
}

pub type Result<T, E = VolumeError> = std::result::Result<T, E>;

/// Checks a volume name by docker's rule (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`), at most
/// [`MAX_NAME_LEN`] bytes.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(VolumeError::InvalidName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad(&format!(
            "{} bytes long, at most {MAX_NAME_LEN} are allowed",
            name.len()
        ));
    }
    let first = name.as_bytes()[0];
    if !first.is_ascii_alphanumeric() {
        return bad("it must start with a letter or digit (only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed; a host directory needs an absolute path)");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return bad("it includes invalid characters (only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed; a host directory needs an absolute path)");
    }
    Ok(())
}

/// A volume as `volume inspect` shows it (docker's field names).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub created_at: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub mountpoint: PathBuf,
    pub name: String,
    pub options: BTreeMap<String, String>,
    pub scope: String,
}

/// Held while the store's lock is taken; released on drop.
#[derive(Debug)]
pub struct VolumeLock {
    _file: File,
}

/// What [`VolumeStore::copy_up`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CopyUpReport {
    /// False when nothing was copied: the volume was not empty, or the destination does not
    /// exist in the root or is not a directory there.
    pub copied: bool,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Entries left out, with why (device nodes and unreadable files when not root, sockets).
    pub skipped: Vec<String>,
}

/// The volumes of one user.
#[derive(Debug, Clone)]
pub struct VolumeStore {
    root: PathBuf,
}

fn io_err(name: &str, op: &'static str, path: &Path, e: impl Into<std::io::Error>) -> VolumeError {
    VolumeError::Io {
        name: name.to_owned(),
        op,
        path: path.to_owned(),
        source: e.into(),
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    let mut filled = 0;
    while filled < b.len() {
        match rustix::rand::getrandom(&mut b[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(Errno::INTR) => continue,
            Err(_) => {
                // No getrandom: time and pid still make a name nobody else uses at once.
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos();
                for (i, x) in b.iter_mut().enumerate().skip(filled) {
                    *x = (t >> ((i % 16) * 8)) as u8 ^ (std::process::id() >> (i % 4)) as u8;
                }
                break;
            }
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// RFC 3339 UTC time (seconds) of `secs` since the epoch.
pub fn rfc3339(secs: u64) -> String {
    let at = time::OffsetDateTime::UNIX_EPOCH
        + time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX));
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl VolumeStore {
    /// Opens (creating, private to its owner) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| io_err("-", "create directory", &root, e))?;
        if let Ok(md) = fs::metadata(&root) {
            if md.mode() & 0o077 != 0 && md.uid() == rustix::process::geteuid().as_raw() {
                fs::set_permissions(&root, fs::Permissions::from_mode(0o700))
                    .map_err(|e| io_err("-", "chmod 0700", &root, e))?;
            }
        }
        Ok(VolumeStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The exclusive lock of the store: held while volumes are created, removed or filled.
    pub fn lock(&self) -> Result<VolumeLock> {
        let p = self.root.join(".lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&p)
            .map_err(|e| io_err("-", "open lock file", &p, e))?;
        loop {
            match rfs::flock(&f, rfs::FlockOperation::LockExclusive) {
                Err(Errno::INTR) => continue,
                r => break r.map_err(|e| io_err("-", "flock", &p, e))?,
            }
        }
        Ok(VolumeLock { _file: f })
    }

    /// The volume's directory (whether or not it exists); `name` must be valid.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The directory containers mount.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.root.join(name).join(DATA_DIR)
    }

    /// Creates volume `name` (a random 64-hex name when `None`), or returns it when it exists.
    /// The bool is true when this call created it.
    pub fn create(
        &self,
        _lock: &VolumeLock,
        name: Option<&str>,
        driver: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<(Volume, bool)> {
        if driver != DRIVER {
            return Err(VolumeError::UnsupportedDriver {
                driver: driver.to_owned(),
            });
        }
        let name = match name {
            Some(n) => n.to_owned(),
            None => random_hex(32),
        };
        validate_name(&name)?;
        if self.dir(&name).join(META_FILE).exists() {
            return Ok((self.get(&name)?, false));
        }
        // Under the lock, any temporary directory is one that a killed process left.
        self.clean_temporaries();
        let tmp = self.root.join(format!(".create-{}", random_hex(8)));
        let r = (|| {
            fs::create_dir(&tmp).map_err(|e| io_err(&name, "create directory", &tmp, e))?;
            let data = tmp.join(DATA_DIR);
            fs::create_dir(&data).map_err(|e| io_err(&name, "create directory", &data, e))?;
            fs::set_permissions(&data, fs::Permissions::from_mode(0o755))
                .map_err(|e| io_err(&name, "chmod", &data, e))?;
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let v = Volume {
                created_at: rfc3339(secs),
                driver: DRIVER.to_owned(),
                labels,
                mountpoint: self.data_dir(&name),
                name: name.clone(),
                options: BTreeMap::new(),
                scope: "local".to_owned(),
            };
            let meta = tmp.join(META_FILE);
            let body = serde_json::to_vec_pretty(&v).expect("a volume serialises");
            let mut f = File::create(&meta).map_err(|e| io_err(&name, "create", &meta, e))?;
            std::io::Write::write_all(&mut f, &body)
                .and_then(|()| f.sync_all())
                .map_err(|e| io_err(&name, "write", &meta, e))?;
            let dest = self.dir(&name);
            // A leftover directory without metadata (not a volume) is not replaced silently.
            rfs::renameat_with(rfs::CWD, &tmp, rfs::CWD, &dest, rfs::RenameFlags::NOREPLACE)
                .map_err(|e| io_err(&name, "rename into place", &dest, e))?;
            Ok(v)
        })();
        if r.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        r.map(|v| (v, true))
    }

    /// Removes the `.create-*` directories of killed processes (call with the lock held).
    fn clean_temporaries(&self) {
        if let Ok(rd) = fs::read_dir(&self.root) {
            for e in rd.flatten() {
                if e.file_name().as_bytes().starts_with(b".create-") {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
    }

    /// The volume `name`.
    pub fn get(&self, name: &str) -> Result<Volume> {
        validate_name(name)?;
        let meta = self.dir(name).join(META_FILE);
        let body = match fs::read(&meta) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VolumeError::NotFound {
                    name: name.to_owned(),
                })
            }
            Err(e) => return Err(io_err(name, "read", &meta, e)),
        };
        let mut v: Volume = serde_json::from_slice(&body).map_err(|e| VolumeError::Meta {
            name: name.to_owned(),
            path: meta.clone(),
            detail: e.to_string(),
        })?;
        if v.name != name {
            return Err(VolumeError::Meta {
                name: name.to_owned(),
                path: meta,
                detail: format!("records the name {:?}", v.name),
            });
        }
        v.mountpoint = self.data_dir(name);
        Ok(v)
    }

    /// All volumes, by name.
    pub fn list(&self) -> Result<Vec<Volume>> {
        let rd = fs::read_dir(&self.root).map_err(|e| io_err("-", "read", &self.root, e))?;
        let mut v: Vec<Volume> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| validate_name(n).is_ok())
            .filter_map(|n| self.get(&n).ok())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// Whether the volume's `_data` has no entries.
    pub fn is_empty(&self, name: &str) -> Result<bool> {
        let d = self.data_dir(name);
        let mut rd = fs::read_dir(&d).map_err(|e| io_err(name, "read", &d, e))?;
        Ok(rd.next().is_none())
    }

    /// Bytes of the regular files in the volume (not following symlinks).
    pub fn size(&self, name: &str) -> u64 {
        fn walk(p: &Path, depth: usize) -> u64 {
            let Ok(md) = fs::symlink_metadata(p) else {
                return 0;
            };
            if md.is_file() {
                return md.len();
            }
            if !md.is_dir() || depth > MAX_DEPTH {
                return 0;
            }
            fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| walk(&e.path(), depth + 1)).sum())
                .unwrap_or(0)
        }
        walk(&self.data_dir(name), 0)
    }

    /// Removes the volume and its data (the caller checks that no container uses it). The
    /// metadata goes first, so that a failure half way leaves no half volume listed.
    pub fn remove(&self, _lock: &VolumeLock, name: &str) -> Result<()> {
        self.get(name)?;
        let dir = self.dir(name);
        // Out of the listing at once: renamed to a temporary name, then removed.
        let tmp = self.root.join(format!(".create-rm-{}", random_hex(8)));
        fs::rename(&dir, &tmp).map_err(|e| io_err(name, "rename", &dir, e))?;
        if let Err(e) = fs::remove_dir_all(&tmp) {
            // Put it back: the volume stays whole and listed, and the error says what failed.
            let _ = fs::rename(&tmp, &dir);
            return Err(io_err(name, "remove", &dir, e));
        }
        Ok(())
    }

    /// Docker's copy-up: when the volume `name` is empty, copies what the root (`layers`, the
    /// highest first; one directory for a plain rootfs) has at `dst` into it. Call with the lock
    /// held, before the volume is mounted.
    pub fn copy_up(
        &self,
        _lock: &VolumeLock,
        name: &str,
        layers: &[PathBuf],
        dst: &str,
    ) -> Result<CopyUpReport> {
        self.get(name)?;
        if !self.is_empty(name)? {
            return Ok(CopyUpReport::default());
        }
        let fail = |entry: &str, reason: String| VolumeError::CopyUp {
            name: name.to_owned(),
            src: dst.to_owned(),
            entry: entry.to_owned(),
            reason,
        };
        let mut roots = Vec::new();
        for l in layers {
            let fd = rfs::open(
                l,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| fail(&l.display().to_string(), errno_text(e)))?;
            roots.push(fd);
        }
        let Some(comps) = resolve_in_layers(&roots, dst).map_err(|(p, e)| fail(&p, e))? else {
            return Ok(CopyUpReport::default());
        };
        let level = level_of(&roots, &comps).map_err(|(p, e)| fail(&p, e))?;
        if level.is_empty() {
            return Ok(CopyUpReport::default());
        }
        let vdir = self.dir(name);
        let tmp = vdir.join(format!(".copyup-{}", random_hex(8)));
        // Leftovers of a killed copy-up (we hold the lock).
        if let Ok(rd) = fs::read_dir(&vdir) {
            for e in rd.flatten() {
                if e.file_name().as_bytes().starts_with(b".copyup-") {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        fs::create_dir(&tmp).map_err(|e| io_err(name, "create directory", &tmp, e))?;
        let mut report = CopyUpReport {
            copied: true,
            ..Default::default()
        };
        let r = (|| -> Result<()> {
            let tfd = open_dir_at(rfs::CWD, tmp.as_os_str())
                .map_err(|e| io_err(name, "open", &tmp, e))?;
            let mut cp = Copier {
                report: &mut report,
                links: HashMap::new(),
                dest_root: tfd.try_clone().map_err(|e| io_err(name, "dup", &tmp, e))?,
            };
            cp.copy_level(&level, &tfd, &mut Vec::new(), 0)
                .map_err(|(p, e)| fail(&p, e))?;
            // Move the complete copy in, entry by entry (`_data` stays the same directory).
            let data = self.data_dir(name);
            let dfd = open_dir_at(rfs::CWD, data.as_os_str())
                .map_err(|e| io_err(name, "open", &data, e))?;
            let names: Vec<CString> =
                read_names(&tfd).map_err(|e| io_err(name, "read", &tmp, e))?;
            for n in &names {
                rfs::renameat_with(
                    &tfd,
                    n.as_c_str(),
                    &dfd,
                    n.as_c_str(),
                    rfs::RenameFlags::NOREPLACE,
                )
                .map_err(|e| io_err(name, "move into", &data, e))?;
            }
            // The volume's root takes the destination directory's mode, times and (as root)
            // owner, as docker's copy-up does.
            let st = rfs::fstat(&level[0]).map_err(|e| fail("/", errno_text(e)))?;
            apply_attrs(&dfd, &st).map_err(|e| io_err(name, "set attributes of", &data, e))?;
            Ok(())
        })();
        let _ = fs::remove_dir_all(&tmp);
        r.map(|()| report)
    }
}

fn errno_text(e: Errno) -> String {
    std::io::Error::from(e).to_string()
}

fn open_dir_at<P: rustix::path::Arg>(at: impl AsFd, p: P) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        at,
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn read_names(d: &OwnedFd) -> rustix::io::Result<Vec<CString>> {
    let mut v = Vec::new();
    for e in rfs::Dir::read_from(d)? {
        let e = e?;
        let n = e.file_name();
        if n.to_bytes() != b"." && n.to_bytes() != b".." {
            v.push(n.to_owned());
        }
    }
    Ok(v)
}

fn xattr_is_y(fd: BorrowedFd<'_>, name: &str) -> bool {
    let mut buf = [0u8; 4];
    matches!(rfs::fgetxattr(fd, name, &mut buf[..]), Ok(1) if buf[0] == b'y')
}

fn is_opaque(fd: &OwnedFd) -> bool {
    xattr_is_y(fd.as_fd(), "trusted.overlay.opaque")
        || xattr_is_y(fd.as_fd(), "user.overlay.opaque")
}

/// An overlayfs whiteout as gocker's unpacker writes them: a 0:0 character device, or an empty
/// file with `user.overlay.whiteout` (where mknod is refused).
fn is_whiteout(dir: &OwnedFd, name: &CStr, st: &rfs::Stat) -> bool {
    let ft = FileType::from_raw_mode(st.st_mode as _);
    if ft == FileType::CharacterDevice && st.st_rdev == 0 {
        return true;
    }
    if ft == FileType::RegularFile && st.st_size == 0 {
        if let Ok(fd) = rfs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            let mut buf = [0u8; 8];
            return rfs::fgetxattr(&fd, "user.overlay.whiteout", &mut buf[..]).is_ok();
        }
    }
    false
}

type PathErr = (String, String);

fn rel(comps: &[CString]) -> String {
    let mut s = String::new();
    for c in comps {
        s.push('/');
        s.push_str(&c.to_string_lossy());
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

/// The directories (highest first) that make the merged directory `comps` of the layer stack
/// `roots`: each layer's directory at that path, down to the first opaque one, and not below a
/// layer where the path is a whiteout or not a directory.
fn level_of(roots: &[OwnedFd], comps: &[CString]) -> Result<Vec<OwnedFd>, PathErr> {
    let mut cur: Vec<OwnedFd> = roots
        .iter()
        .map(|r| r.try_clone())
        .collect::<std::io::Result<_>>()
        .map_err(|e| ("/".to_owned(), e.to_string()))?;
    for (i, c) in comps.iter().enumerate() {
        let mut next = Vec::new();
        for d in &cur {
            match rfs::statat(d, c.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Err(Errno::NOENT) => continue,
                Err(e) => return Err((rel(&comps[..=i]), errno_text(e))),
                Ok(st) => {
                    if FileType::from_raw_mode(st.st_mode as _) != FileType::Directory {
                        break;
                    }
                    let fd = open_dir_at(d, c.as_c_str())
                        .map_err(|e| (rel(&comps[..=i]), errno_text(e)))?;
                    let opaque = is_opaque(&fd);
                    next.push(fd);
                    if opaque {
                        break;
                    }
                }
            }
        }
        cur = next;
        if cur.is_empty() {
            break;
        }
    }
    Ok(cur)
}

enum Lookup {
    Missing,
    Dir,
    Symlink(Vec<u8>),
    Other,
}

fn lookup(level: &[OwnedFd], name: &CStr, at: &str) -> Result<Lookup, PathErr> {
    for d in level {
        match rfs::statat(d, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => continue,
            Err(e) => return Err((at.to_owned(), errno_text(e))),
            Ok(st) => {
                if is_whiteout(d, name, &st) {
                    return Ok(Lookup::Missing);
                }
                return Ok(match FileType::from_raw_mode(st.st_mode as _) {
                    FileType::Directory => Lookup::Dir,
                    FileType::Symlink => Lookup::Symlink(
                        rfs::readlinkat(d, name, Vec::new())
                            .map_err(|e| (at.to_owned(), errno_text(e)))?
                            .into_bytes(),
                    ),
                    _ => Lookup::Other,
                });
            }
        }
    }
    Ok(Lookup::Missing)
}

/// Resolves `dst` in the merged root as the kernel would with `/` at the root (symlinks
/// followed, `..` stopping at the root): the components of the directory it names, or `None`
/// when it does not exist or is not a directory.
fn resolve_in_layers(roots: &[OwnedFd], dst: &str) -> Result<Option<Vec<CString>>, PathErr> {
    let split = |p: &[u8]| -> Vec<Vec<u8>> {
        p.split(|b| *b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .map(<[u8]>::to_vec)
            .collect()
    };
    let mut todo: std::collections::VecDeque<Vec<u8>> = split(dst.as_bytes()).into();
    let mut cur: Vec<CString> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        if c == b".." {
            cur.pop();
            continue;
        }
        let c = CString::new(c).map_err(|_| (dst.to_owned(), "a NUL in the path".to_owned()))?;
        let level = level_of(roots, &cur)?;
        let mut at = cur.clone();
        at.push(c.clone());
        match lookup(&level, &c, &rel(&at))? {
            Lookup::Missing | Lookup::Other => return Ok(None),
            Lookup::Dir => cur.push(c),
            Lookup::Symlink(target) => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err((rel(&at), "too many levels of symbolic links".to_owned()));
                }
                if target.starts_with(b"/") {
                    cur.clear();
                }
                for t in split(&target).into_iter().rev() {
                    todo.push_front(t);
                }
            }
        }
    }
    Ok(Some(cur))
}

fn timestamps(st: &rfs::Stat) -> rfs::Timestamps {
    rfs::Timestamps {
        last_access: rfs::Timespec {
            tv_sec: st.st_atime as _,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rfs::Timespec {
            tv_sec: st.st_mtime as _,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

/// A chown refused because the caller may not give that id (not root; root of a user namespace
/// where the id is not mapped): the copy stays the caller's, as a file the caller creates.
fn unless_unmapped(r: rustix::io::Result<()>) -> rustix::io::Result<()> {
    match r {
        Err(Errno::PERM | Errno::INVAL) => Ok(()),
        r => r,
    }
}

fn owner(st: &rfs::Stat) -> (Option<rfs::Uid>, Option<rfs::Gid>) {
    (
        Some(rfs::Uid::from_raw(st.st_uid)),
        Some(rfs::Gid::from_raw(st.st_gid)),
    )
}

/// Owner (where the caller may give it: see [`unless_unmapped`]), then mode (chown clears
/// set-id bits), then times of an open file.
fn apply_attrs(fd: &OwnedFd, st: &rfs::Stat) -> rustix::io::Result<()> {
    let (u, g) = owner(st);
    unless_unmapped(rfs::fchown(fd, u, g))?;
    rfs::fchmod(fd, Mode::from_raw_mode((st.st_mode & 0o7777) as _))?;
    rfs::futimens(fd, &timestamps(st))
}

struct Copier<'a> {
    report: &'a mut CopyUpReport,
    /// Hard links: (dev, ino) of a source file → its path in the copy, from `dest_root`.
    links: HashMap<(u64, u64), CString>,
    dest_root: OwnedFd,
}

impl Copier<'_> {
    /// Copies the merged directory `level` (highest layer first) into `dest`.
    fn copy_level(
        &mut self,
        level: &[OwnedFd],
        dest: &OwnedFd,
        path: &mut Vec<CString>,
        depth: usize,
    ) -> Result<(), PathErr> {
        if depth > MAX_DEPTH {
            return Err((
                rel(path),
                format!("nested deeper than {MAX_DEPTH} directories"),
            ));
        }
        let mut seen: HashSet<CString> = HashSet::new();
        for (i, d) in level.iter().enumerate() {
            let names = read_names(d).map_err(|e| (rel(path), errno_text(e)))?;
            for n in names {
                if !seen.insert(n.clone()) {
                    continue;
                }
                path.push(n.clone());
                let r = self.copy_entry(level, i, &n, dest, path, depth);
                path.pop();
                r?;
            }
        }
        Ok(())
    }

    fn copy_entry(
        &mut self,
        level: &[OwnedFd],
        i: usize,
        n: &CStr,
        dest: &OwnedFd,
        path: &mut Vec<CString>,
        depth: usize,
    ) -> Result<(), PathErr> {
        let d = &level[i];
        let here = rel(path);
        let e = |e: Errno| (here.clone(), errno_text(e));
        let st = rfs::statat(d, n, AtFlags::SYMLINK_NOFOLLOW).map_err(e)?;
        if is_whiteout(d, n, &st) {
            return Ok(());
        }
        let ft = FileType::from_raw_mode(st.st_mode as _);
        match ft {
            FileType::Directory => {
                let src = match open_dir_at(d, n) {
                    Err(Errno::ACCESS) => {
                        self.report
                            .skipped
                            .push(format!("{here}: permission denied"));
                        return Ok(());
                    }
                    r => r.map_err(e)?,
                };
                let mut sub = vec![src];
                if !is_opaque(&sub[0]) {
                    for lower in &level[i + 1..] {
                        match rfs::statat(lower, n, AtFlags::SYMLINK_NOFOLLOW) {
                            Err(Errno::NOENT) => continue,
                            Err(x) => return Err(e(x)),
                            Ok(lst) => {
                                if FileType::from_raw_mode(lst.st_mode as _) != FileType::Directory
                                {
                                    break;
                                }
                                let fd = open_dir_at(lower, n).map_err(e)?;
                                let opaque = is_opaque(&fd);
                                sub.push(fd);
                                if opaque {
                                    break;
                                }
                            }
                        }
                    }
                }
                rfs::mkdirat(dest, n, Mode::from_raw_mode(0o700)).map_err(e)?;
                let out = open_dir_at(dest, n).map_err(e)?;
                self.copy_level(&sub, &out, path, depth + 1)?;
                apply_attrs(&out, &st).map_err(e)?;
                self.report.dirs += 1;
            }
            FileType::RegularFile => {
                if st.st_nlink > 1 {
                    if let Some(first) = self.links.get(&(st.st_dev as u64, st.st_ino as u64)) {
                        rfs::linkat(&self.dest_root, first.as_c_str(), dest, n, AtFlags::empty())
                            .map_err(e)?;
                        self.report.files += 1;
                        return Ok(());
                    }
                }
                let src = match rfs::openat(
                    d,
                    n,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Err(Errno::ACCESS) => {
                        self.report
                            .skipped
                            .push(format!("{here}: permission denied"));
                        return Ok(());
                    }
                    r => r.map_err(e)?,
                };
                let out = rfs::openat(
                    dest,
                    n,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(e)?;
                let mut from = File::from(src);
                let mut to = File::from(out);
                let bytes =
                    std::io::copy(&mut from, &mut to).map_err(|x| (here.clone(), x.to_string()))?;
                let out = OwnedFd::from(to);
                apply_attrs(&out, &st).map_err(e)?;
                self.report.files += 1;
                self.report.bytes += bytes;
                if st.st_nlink > 1 {
                    let mut p = Vec::new();
                    for (k, c) in path.iter().enumerate() {
                        if k > 0 {
                            p.push(b'/');
                        }
                        p.extend_from_slice(c.to_bytes());
                    }
                    if let Ok(c) = CString::new(p) {
                        self.links.insert((st.st_dev as u64, st.st_ino as u64), c);
                    }
                }
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(d, n, Vec::new()).map_err(e)?;
                rfs::symlinkat(target.as_c_str(), dest, n).map_err(e)?;
                let (u, g) = owner(&st);
                unless_unmapped(rfs::chownat(dest, n, u, g, AtFlags::SYMLINK_NOFOLLOW))
                    .map_err(e)?;
                let _ = rfs::utimensat(dest, n, &timestamps(&st), AtFlags::SYMLINK_NOFOLLOW);
                self.report.symlinks += 1;
            }
            FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice => {
                match rfs::mknodat(dest, n, ft, Mode::from_raw_mode(0o600), st.st_rdev as _) {
                    Err(Errno::PERM) if ft != FileType::Fifo => {
                        self.report
                            .skipped
                            .push(format!("{here}: device node (creating it needs host root)"));
                        return Ok(());
                    }
                    r => r.map_err(e)?,
                }
                let (u, g) = owner(&st);
                unless_unmapped(rfs::chownat(dest, n, u, g, AtFlags::SYMLINK_NOFOLLOW))
                    .map_err(e)?;
                // The node was made here, in the copy's private directory: no symlink to follow.
                rfs::chmodat(
                    dest,
                    n,
                    Mode::from_raw_mode((st.st_mode & 0o7777) as _),
                    AtFlags::empty(),
                )
                .map_err(e)?;
                self.report.files += 1;
            }
            _ => self.report.skipped.push(format!("{here}: socket")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_names_are_accepted() {
        for n in ["a", "data", "my_vol-1.2", "0abc", &"x".repeat(MAX_NAME_LEN)] {
            validate_name(n).unwrap_or_else(|e| panic!("{n}: {e}"));
        }
    }

    #[test]
    fn bad_names_are_refused_naming_the_value() {
        for n in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "/abs",
            "-x",
            "_x",
            ".hidden",
            "sp ace",
            "é",
            "a\0b",
            "semi;colon",
            &"x".repeat(MAX_NAME_LEN + 1),
        ] {
            let e = validate_name(n).expect_err(n).to_string();
            assert!(e.contains(&format!("{n:?}")), "{e}");
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    fn store() -> (tempfile::TempDir, VolumeStore) {
        let t = tempfile::tempdir().unwrap();
        let s = VolumeStore::open(t.path().join("volumes")).unwrap();
        (t, s)
    }

    #[test]
    fn create_is_idempotent_and_generates_names() {
        let (_t, s) = store();
        let l = s.lock().unwrap();
        let (v, new) = s
            .create(&l, Some("data"), "local", BTreeMap::new())
            .unwrap();
        assert!(new && v.name == "data" && s.data_dir("data").is_dir());
        let (again, new) = s
            .create(&l, Some("data"), "local", BTreeMap::new())
            .unwrap();
        assert!(!new);
        assert_eq!(again.created_at, v.created_at);
        let (anon, _) = s.create(&l, None, "local", BTreeMap::new()).unwrap();
        assert_eq!(anon.name.len(), 64);
        assert!(anon.name.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(matches!(
            s.create(&l, Some("x"), "nfs", BTreeMap::new()),
            Err(VolumeError::UnsupportedDriver { .. })
        ));
        let names: Vec<String> = s.list().unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(names.len(), 2);
        // No temporary directory is left beside them.
        let all: Vec<_> = fs::read_dir(s.root())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            all.iter()
                .all(|n| !n.to_string_lossy().starts_with(".create")),
            "{all:?}"
        );
        s.remove(&l, "data").unwrap();
        assert!(matches!(s.get("data"), Err(VolumeError::NotFound { .. })));
        assert!(!s.dir("data").exists());
    }

    #[test]
    fn copy_up_merges_layers_and_stays_inside() {
        use std::os::unix::fs::symlink;
        let (t, s) = store();
        let up = t.path().join("up");
        let low = t.path().join("low");
        for d in [&up, &low] {
            fs::create_dir_all(d.join("app/sub")).unwrap();
        }
        fs::write(low.join("app/a"), "low-a").unwrap();
        fs::write(low.join("app/gone"), "x").unwrap();
        fs::write(low.join("app/sub/deep"), "deep").unwrap();
        fs::write(up.join("app/a"), "up-a").unwrap();
        // A whiteout as the unprivileged unpacker writes it.
        fs::write(up.join("app/gone"), "").unwrap();
        rfs::setxattr(
            up.join("app/gone"),
            "user.overlay.whiteout",
            b"y",
            rfs::XattrFlags::empty(),
        )
        .unwrap();
        fs::set_permissions(low.join("app/sub/deep"), fs::Permissions::from_mode(0o640)).unwrap();
        symlink("../../../../etc", up.join("app/esc")).unwrap();
        // The destination reached through a symlink that climbs out of the root: resolved inside.
        symlink("../../../../../app", up.join("link")).unwrap();
        let l = s.lock().unwrap();
        s.create(&l, Some("v"), "local", BTreeMap::new()).unwrap();
        let r = s
            .copy_up(&l, "v", &[up.clone(), low.clone()], "/link")
            .unwrap();
        assert!(r.copied, "{r:?}");
        let d = s.data_dir("v");
        assert_eq!(fs::read_to_string(d.join("a")).unwrap(), "up-a");
        assert!(!d.join("gone").exists());
        assert_eq!(fs::read_to_string(d.join("sub/deep")).unwrap(), "deep");
        assert_eq!(
            fs::metadata(d.join("sub/deep")).unwrap().mode() & 0o7777,
            0o640
        );
        assert_eq!(
            fs::read_link(d.join("esc")).unwrap(),
            PathBuf::from("../../../../etc")
        );
        // Not empty any more: a second copy-up copies nothing.
        fs::write(low.join("app/new"), "n").unwrap();
        assert!(
            !s.copy_up(&l, "v", &[up.clone(), low.clone()], "/app")
                .unwrap()
                .copied
        );
        assert!(!d.join("new").exists());
        // A destination that is a symlink to / copies the root itself, never the host's /.
        s.create(&l, Some("w"), "local", BTreeMap::new()).unwrap();
        symlink("/", low.join("root")).unwrap();
        s.copy_up(&l, "w", std::slice::from_ref(&low), "/root/../root/")
            .unwrap();
        let w = s.data_dir("w");
        assert!(w.join("app/a").exists());
        assert!(!w.join("etc").exists() && !w.join("proc").exists());
        // A missing destination copies nothing.
        s.create(&l, Some("x"), "local", BTreeMap::new()).unwrap();
        assert!(!s.copy_up(&l, "x", &[low], "/nope").unwrap().copied);
        assert!(s.is_empty("x").unwrap());
    }
}
