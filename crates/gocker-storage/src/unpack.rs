//! Safe layer unpacking.
//!
//! Rules (see docs/storage.md):
//! - entry paths must be relative and free of `..`; anything else is refused;
//! - every parent directory is resolved with `openat2(RESOLVE_IN_ROOT)` from the layer directory,
//!   so a symlink (absolute or relative) can never lead a later entry outside it;
//! - the last component is created with `*at` calls that never follow it (`O_NOFOLLOW|O_EXCL`,
//!   an existing entry is unlinked first);
//! - hard link targets are resolved inside the layer directory too; a missing target is refused;
//! - whiteouts become overlayfs whiteouts (character device 0:0, or a `user.overlay.whiteout`
//!   file where mknod is refused), opaque markers become `trusted.overlay.opaque=y` (as root) and
//!   `user.overlay.opaque=y` (always, for unprivileged `userxattr` mounts);
//! - rootless: no chown, device nodes skipped with a note, directories keep `u+rwx`, only `user.*`
//!   xattrs; overlay xattrs carried in the tar itself are always dropped.

use crate::digest::Digest;
use crate::error::{Result, StorageError};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::Path;

/// How to unpack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnpackOptions {
    /// Unpack as an unprivileged user would: no chown, no device nodes, `user.*` xattrs only.
    pub rootless: bool,
    /// Represent whiteouts as `user.overlay.whiteout` files instead of 0:0 character devices
    /// (used automatically when rootless and mknod is refused).
    pub xattr_whiteouts: bool,
}

impl UnpackOptions {
    /// Options for the calling user: rootless unless the effective uid is 0.
    pub fn for_current_user() -> Self {
        UnpackOptions {
            rootless: !rustix::process::geteuid().is_root(),
            xattr_whiteouts: false,
        }
    }
}

/// What is being unpacked, for error messages and checks.
#[derive(Clone, Debug)]
pub struct LayerContext {
    pub image: String,
    pub blob: String,
    /// The descriptor's media type (compression is also detected by magic bytes).
    pub media_type: String,
    /// When set, the uncompressed stream must hash to this (the config's `rootfs.diff_ids`).
    pub expected_diff_id: Option<Digest>,
}

/// What `unpack_layer` did.
#[derive(Clone, Debug)]
pub struct UnpackReport {
    /// Digest of the uncompressed tar stream.
    pub diff_id: Digest,
    pub entries: u64,
    pub whiteouts: u64,
    pub opaque_dirs: u64,
    /// Things skipped or changed (device nodes when rootless, dropped xattrs, …).
    pub notes: Vec<String>,
}

/// Compression of a layer stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Detect the compression from the first bytes of a stream.
    pub fn from_magic(b: &[u8]) -> Self {
        if b.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
    fn from_media_type(mt: &str) -> Option<Self> {
        if mt.ends_with("gzip") {
            Some(Compression::Gzip)
        } else if mt.ends_with("zstd") {
            Some(Compression::Zstd)
        } else if mt.ends_with(".tar") || mt.ends_with("tar") {
            Some(Compression::None)
        } else {
            None
        }
    }
}

const MAX_NOTES: usize = 50;

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Unpack a (possibly compressed) layer tar from `src` into the existing, empty directory `dest`.
/// On error `dest` may hold a partial tree: callers unpack into a temporary directory and
/// rename it when this returns Ok (as `Store::unpack_blob` does).
pub fn unpack_layer(
    mut src: impl BufRead,
    dest: &Path,
    ctx: &LayerContext,
    opts: &UnpackOptions,
) -> Result<UnpackReport> {
    let stream_err = |reason: String| StorageError::Unpack {
        image: ctx.image.clone(),
        blob: ctx.blob.clone(),
        entry: "<stream>".into(),
        reason,
    };
    let head = src
        .fill_buf()
        .map_err(|e| stream_err(format!("read: {e}")))?;
    if head.is_empty() {
        return Err(stream_err("empty layer blob".into()));
    }
    let magic = Compression::from_magic(head);
    if let Some(declared) = Compression::from_media_type(&ctx.media_type) {
        if declared != magic && declared != Compression::None {
            return Err(stream_err(format!(
                "media type {} says {declared:?} but the content is {magic:?}",
                ctx.media_type
            )));
        }
    }
    let decoded: Box<dyn Read + '_> = match magic {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(src)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(src)
                .map_err(|e| stream_err(format!("zstd: {e}")))?,
        ),
        Compression::None => Box::new(src),
    };
    let hashing = HashingReader {
        inner: decoded,
        hasher: Sha256::new(),
    };
    let root: OwnedFd = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| StorageError::io("open layer directory", dest, e.into()))?;
    let mut u = Unpacker {
        root,
        opts,
        report: UnpackReport {
            diff_id: Digest::of(b""),
            entries: 0,
            whiteouts: 0,
            opaque_dirs: 0,
            notes: Vec::new(),
        },
        dir_times: Vec::new(),
        suppressed_notes: 0,
    };
    let mut archive = tar::Archive::new(hashing);
    let entries = archive
        .entries()
        .map_err(|e| stream_err(format!("read tar: {}", describe_io(&e))))?;
    let mut last = String::from("<start>");
    for entry in entries {
        let mut entry = entry.map_err(|e| StorageError::Unpack {
            image: ctx.image.clone(),
            blob: ctx.blob.clone(),
            entry: format!("after {last}"),
            reason: format!("reading the next tar header: {}", describe_io(&e)),
        })?;
        last = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        u.report.entries += 1;
        u.entry(&mut entry).map_err(|reason| StorageError::Unpack {
            image: ctx.image.clone(),
            blob: ctx.blob.clone(),
            entry: last.clone(),
            reason,
        })?;
    }
    // Directory mtimes last: creating children changed them.
    for (comps, ts) in std::mem::take(&mut u.dir_times) {
        if let Ok(fd) = open_dir_in_root(u.root.as_fd(), &comps, OFlags::RDONLY) {
            let _ = rustix::fs::futimens(&fd, &ts);
        }
    }
    // The end-of-archive blocks and any padding are part of the diff_id.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink())
        .map_err(|e| stream_err(format!("reading the end of the layer: {}", describe_io(&e))))?;
    let diff_id = Digest::from_hasher(rest.hasher);
    if let Some(exp) = &ctx.expected_diff_id {
        if exp != &diff_id {
            return Err(stream_err(format!(
                "diff_id mismatch: the config says {exp}, the uncompressed layer is {diff_id}"
            )));
        }
    }
    if u.suppressed_notes > 0 {
        let n = u.suppressed_notes;
        u.report.notes.push(format!("… and {n} more notes"));
    }
    u.report.diff_id = diff_id;
    Ok(u.report)
}

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => format!("truncated layer (unexpected end of data): {e}"),
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => {
            format!("corrupt layer data: {e}")
        }
        _ => e.to_string(),
    }
}

type Comps = Vec<Vec<u8>>;

/// Split a tar path into components, refusing absolute paths and `..`.
fn components(p: &[u8], what: &str) -> std::result::Result<Comps, String> {
    if p.first() == Some(&b'/') {
        return Err(format!("{what} is an absolute path: refused"));
    }
    let mut out = Vec::new();
    for c in p.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(format!("{what} contains a '..' component: refused")),
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    comps.join(&b'/')
}

fn os(b: &[u8]) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(b)
}

/// Open a directory below `root`, resolving every component (symlinks included) inside `root`.
fn open_dir_in_root(
    root: BorrowedFd<'_>,
    comps: &[Vec<u8>],
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    let path = if comps.is_empty() {
        b".".to_vec()
    } else {
        join(comps)
    };
    // EAGAIN: a rename or mount anywhere on the system raced with a `..` of the lookup (the
    // kernel cannot then vouch that it stayed inside the root): try again, a bounded number
    // of times, as openat2(2) advises.
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(
            root,
            os(&path),
            flags | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
        ) {
            Err(Errno::AGAIN) | Err(Errno::INTR) if tries < 10_000 => {
                tries += 1;
                std::thread::yield_now();
            }
            r => return r,
        }
    }
}

struct Unpacker<'a> {
    root: OwnedFd,
    opts: &'a UnpackOptions,
    report: UnpackReport,
    dir_times: Vec<(Comps, Timestamps)>,
    suppressed_notes: usize,
}

type R<T> = std::result::Result<T, String>;

fn errno(op: &str, name: &[u8], e: Errno) -> String {
    format!(
        "{op} {:?}: {}",
        String::from_utf8_lossy(name),
        io::Error::from(e)
    )
}

impl Unpacker<'_> {
    fn note(&mut self, n: String) {
        if self.report.notes.len() < MAX_NOTES {
            self.report.notes.push(n);
        } else {
            self.suppressed_notes += 1;
        }
    }

    /// Open (creating missing directories) the parent directory `comps` inside the layer.
    fn parent(&self, comps: &[Vec<u8>]) -> R<OwnedFd> {
        match open_dir_in_root(self.root.as_fd(), comps, OFlags::RDONLY) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(Errno::NOTDIR) => {
                return Err(format!(
                    "parent {:?} is not a directory",
                    String::from_utf8_lossy(&join(comps))
                ))
            }
            Err(e) => return Err(errno("resolve parent", &join(comps), e)),
        }
        for i in 0..comps.len() {
            match open_dir_in_root(self.root.as_fd(), &comps[..=i], OFlags::PATH) {
                Ok(_) => continue,
                Err(Errno::NOENT) => {}
                Err(e) => return Err(errno("resolve parent", &join(&comps[..=i]), e)),
            }
            let up = open_dir_in_root(self.root.as_fd(), &comps[..i], OFlags::PATH)
                .map_err(|e| errno("resolve parent", &join(&comps[..i]), e))?;
            match rustix::fs::mkdirat(&up, os(&comps[i]), Mode::from_raw_mode(0o755)) {
                Ok(()) => {}
                Err(Errno::EXIST) => {
                    return Err(format!(
                        "parent {:?} is a dangling symlink or not a directory",
                        String::from_utf8_lossy(&join(&comps[..=i]))
                    ))
                }
                Err(e) => return Err(errno("mkdir", &join(&comps[..=i]), e)),
            }
        }
        open_dir_in_root(self.root.as_fd(), comps, OFlags::RDONLY)
            .map_err(|e| errno("resolve parent", &join(comps), e))
    }

    /// Remove whatever is at `name` in `dir` (recursively for a directory, never following links).
    fn remove_existing(&self, dir: &OwnedFd, name: &[u8], keep_dir: bool) -> R<bool> {
        match rustix::fs::statat(dir, os(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if is_dir && keep_dir {
                    return Ok(true);
                }
                if is_dir {
                    remove_tree(dir.as_fd(), name).map_err(|e| errno("remove", name, e))?;
                } else {
                    rustix::fs::unlinkat(dir, os(name), AtFlags::empty())
                        .map_err(|e| errno("unlink", name, e))?;
                }
                Ok(false)
            }
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(errno("stat", name, e)),
        }
    }

    fn entry<Rd: Read>(&mut self, entry: &mut tar::Entry<'_, Rd>) -> R<()> {
        let path = entry.path_bytes().into_owned();
        let comps = components(&path, "entry path")?;
        let hdr = entry.header().clone();
        let etype = hdr.entry_type();
        let Some((name, parent_comps)) = comps.split_last() else {
            // The layer root itself ("./"): nothing to create.
            return Ok(());
        };
        let name = name.clone();
        if name.starts_with(b".wh.") {
            return self.whiteout(parent_comps, &name);
        }
        let mode = hdr.mode().map_err(|e| format!("bad mode: {e}"))? & 0o7777;
        let uid = hdr.uid().map_err(|e| format!("bad uid: {e}"))?;
        let gid = hdr.gid().map_err(|e| format!("bad gid: {e}"))?;
        let mtime = hdr.mtime().map_err(|e| format!("bad mtime: {e}"))?;
        let ts = Timestamps {
            last_access: Timespec {
                tv_sec: mtime as i64,
                tv_nsec: 0,
            },
            last_modification: Timespec {
                tv_sec: mtime as i64,
                tv_nsec: 0,
            },
        };
        let xattrs = self.xattrs(entry, &path)?;
        let dir = self.parent(parent_comps)?;
        let chown = !self.opts.rootless;
        use tar::EntryType as T;
        match etype {
            T::Regular | T::Continuous | T::GNUSparse => {
                self.remove_existing(&dir, &name, false)?;
                let fd = rustix::fs::openat(
                    &dir,
                    os(&name),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| errno("create", &name, e))?;
                let mut f = File::from(fd);
                io::copy(entry, &mut f)
                    .map_err(|e| format!("writing file data: {}", describe_io(&e)))?;
                self.set_meta(f.as_fd(), &path, chown, uid, gid, mode, &xattrs)?;
                rustix::fs::futimens(&f, &ts).map_err(|e| errno("set times of", &name, e))?;
            }
            T::Directory => {
                if !self.remove_existing(&dir, &name, true)? {
                    rustix::fs::mkdirat(&dir, os(&name), Mode::from_raw_mode(0o700))
                        .map_err(|e| errno("mkdir", &name, e))?;
                }
                let fd = rustix::fs::openat(
                    &dir,
                    os(&name),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| errno("open directory", &name, e))?;
                let mode = if self.opts.rootless {
                    mode | 0o700
                } else {
                    mode
                };
                self.set_meta(fd.as_fd(), &path, chown, uid, gid, mode, &xattrs)?;
                self.dir_times.push((comps.clone(), ts));
            }
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or("symlink without a target")?
                    .into_owned();
                if target.is_empty() {
                    return Err("symlink with an empty target".into());
                }
                self.remove_existing(&dir, &name, false)?;
                rustix::fs::symlinkat(os(&target), &dir, os(&name))
                    .map_err(|e| errno("symlink", &name, e))?;
                if chown {
                    rustix::fs::chownat(
                        &dir,
                        os(&name),
                        Some(uid_of(uid)),
                        Some(gid_of(gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| errno("chown", &name, e))?;
                }
                let _ = rustix::fs::utimensat(&dir, os(&name), &ts, AtFlags::SYMLINK_NOFOLLOW);
                if !xattrs.is_empty() {
                    self.note(format!(
                        "{}: xattrs on a symlink dropped",
                        String::from_utf8_lossy(&path)
                    ));
                }
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or("hard link without a target")?
                    .into_owned();
                let tcomps = components(&target, "hard link target")
                    .map_err(|e| format!("{e} (hard links must stay inside the layer)"))?;
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err("hard link to the layer root: refused".into());
                };
                let tdir =
                    open_dir_in_root(self.root.as_fd(), tparent, OFlags::PATH).map_err(|e| {
                        format!(
                            "hard link target {:?} is not in the layer: {}",
                            String::from_utf8_lossy(&target),
                            io::Error::from(e)
                        )
                    })?;
                let st = rustix::fs::statat(&tdir, os(tname), AtFlags::SYMLINK_NOFOLLOW).map_err(
                    |e| {
                        format!(
                            "hard link target {:?} is not in the layer: {}",
                            String::from_utf8_lossy(&target),
                            io::Error::from(e)
                        )
                    },
                )?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    return Err("hard link to a directory: refused".into());
                }
                if tcomps == comps {
                    return Ok(());
                }
                self.remove_existing(&dir, &name, false)?;
                rustix::fs::linkat(&tdir, os(tname), &dir, os(&name), AtFlags::empty())
                    .map_err(|e| errno("link", &name, e))?;
            }
            T::Char | T::Block | T::Fifo => {
                let ft = match etype {
                    T::Char => FileType::CharacterDevice,
                    T::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                if self.opts.rootless && ft != FileType::Fifo {
                    self.note(format!(
                        "{}: device node skipped (rootless)",
                        String::from_utf8_lossy(&path)
                    ));
                    return Ok(());
                }
                let major = hdr.device_major().ok().flatten().unwrap_or(0);
                let minor = hdr.device_minor().ok().flatten().unwrap_or(0);
                self.remove_existing(&dir, &name, false)?;
                rustix::fs::mknodat(
                    &dir,
                    os(&name),
                    ft,
                    Mode::from_raw_mode(mode),
                    rustix::fs::makedev(major, minor),
                )
                .map_err(|e| errno("mknod", &name, e))?;
                if chown {
                    rustix::fs::chownat(
                        &dir,
                        os(&name),
                        Some(uid_of(uid)),
                        Some(gid_of(gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| errno("chown", &name, e))?;
                }
                rustix::fs::chmodat(&dir, os(&name), Mode::from_raw_mode(mode), AtFlags::empty())
                    .map_err(|e| errno("chmod", &name, e))?;
                let _ = rustix::fs::utimensat(&dir, os(&name), &ts, AtFlags::SYMLINK_NOFOLLOW);
            }
            other => {
                self.note(format!(
                    "{}: tar entry type {other:?} skipped",
                    String::from_utf8_lossy(&path)
                ));
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn set_meta(
        &mut self,
        fd: BorrowedFd<'_>,
        path: &[u8],
        chown: bool,
        uid: u64,
        gid: u64,
        mode: u32,
        xattrs: &[(String, Vec<u8>)],
    ) -> R<()> {
        if chown {
            rustix::fs::fchown(fd, Some(uid_of(uid)), Some(gid_of(gid)))
                .map_err(|e| errno("chown", path, e))?;
        }
        // After chown, which clears set-id bits.
        rustix::fs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(|e| errno("chmod", path, e))?;
        for (k, v) in xattrs {
            if let Err(e) = rustix::fs::fsetxattr(fd, k.as_str(), v, XattrFlags::empty()) {
                self.note(format!(
                    "{}: xattr {k} not kept: {}",
                    String::from_utf8_lossy(path),
                    io::Error::from(e)
                ));
            }
        }
        Ok(())
    }

    fn xattrs<Rd: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, Rd>,
        path: &[u8],
    ) -> R<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut dropped = Vec::new();
        if let Some(exts) = entry
            .pax_extensions()
            .map_err(|e| format!("bad PAX header: {e}"))?
        {
            for ext in exts {
                let ext = ext.map_err(|e| format!("bad PAX header: {e}"))?;
                let Ok(key) = ext.key() else { continue };
                let Some(name) = key.strip_prefix("SCHILY.xattr.") else {
                    continue;
                };
                if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
                    // Would let a layer forge overlayfs metadata (redirects, metacopy, opaque).
                    dropped.push(format!(
                        "{name} (overlay metadata is never taken from a tar)"
                    ));
                } else if self.opts.rootless && !name.starts_with("user.") {
                    dropped.push(format!("{name} (rootless)"));
                } else {
                    out.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        for d in dropped {
            self.note(format!(
                "{}: xattr {d} dropped",
                String::from_utf8_lossy(path)
            ));
        }
        Ok(out)
    }

    fn whiteout(&mut self, parent_comps: &[Vec<u8>], name: &[u8]) -> R<()> {
        let dir = self.parent(parent_comps)?;
        if name == b".wh..wh..opq" {
            if !self.opts.rootless {
                rustix::fs::fsetxattr(&dir, "trusted.overlay.opaque", b"y", XattrFlags::empty())
                    .map_err(|e| errno("set trusted.overlay.opaque on", &join(parent_comps), e))?;
            }
            rustix::fs::fsetxattr(&dir, "user.overlay.opaque", b"y", XattrFlags::empty())
                .map_err(|e| errno("set user.overlay.opaque on", &join(parent_comps), e))?;
            self.report.opaque_dirs += 1;
            return Ok(());
        }
        if name.starts_with(b".wh..wh.") {
            // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): meaningless for overlayfs.
            self.note(format!(
                "{}: aufs metadata skipped",
                String::from_utf8_lossy(name)
            ));
            return Ok(());
        }
        let target = &name[4..];
        if target.is_empty() || target == b"." || target == b".." {
            return Err("whiteout without a name".into());
        }
        self.remove_existing(&dir, target, false)?;
        self.report.whiteouts += 1;
        if !self.opts.xattr_whiteouts {
            match rustix::fs::mknodat(
                &dir,
                os(target),
                FileType::CharacterDevice,
                Mode::empty(),
                rustix::fs::makedev(0, 0),
            ) {
                Ok(()) => return Ok(()),
                Err(Errno::PERM) | Err(Errno::ACCESS) if self.opts.rootless => {}
                Err(e) => return Err(errno("mknod whiteout", target, e)),
            }
        }
        // Kernel ≥ 6.7 overlayfs: a file carrying overlay.whiteout in a dir carrying overlay.whiteouts.
        let fd = rustix::fs::openat(
            &dir,
            os(target),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| errno("create whiteout", target, e))?;
        rustix::fs::fsetxattr(&fd, "user.overlay.whiteout", b"", XattrFlags::empty())
            .map_err(|e| errno("set user.overlay.whiteout on", target, e))?;
        rustix::fs::fsetxattr(&dir, "user.overlay.whiteouts", b"", XattrFlags::empty())
            .map_err(|e| errno("set user.overlay.whiteouts on", &join(parent_comps), e))?;
        Ok(())
    }
}

fn uid_of(u: u64) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(u as u32)
}
fn gid_of(g: u64) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(g as u32)
}

/// Remove a directory tree below `dir` without following symlinks.
fn remove_tree(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        os(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut children = Vec::new();
    for e in rustix::fs::Dir::read_from(&fd)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        children.push((n.to_vec(), e.file_type() == FileType::Directory));
    }
    for (n, is_dir) in children {
        if is_dir {
            remove_tree(fd.as_fd(), &n)?;
        } else {
            rustix::fs::unlinkat(&fd, os(&n), AtFlags::empty())?;
        }
    }
    rustix::fs::unlinkat(dir, os(name), AtFlags::REMOVEDIR)
}
