//! Writing trees as tar streams: the reverse of [`crate::unpack_layer`].
//!
//! [`pack_dir`] and [`pack_entry`] walk a tree with descriptors only (`openat(O_NOFOLLOW)`,
//! `statat(AT_SYMLINK_NOFOLLOW)`): a symlink in the tree is stored as a symlink and never
//! followed, and a directory replaced by a symlink while it is being read (a running container)
//! cannot lead the walk out of the tree. With [`PackOptions::overlay_whiteouts`] an overlayfs
//! upper directory becomes an OCI layer: whiteouts (0:0 character devices, or files marked
//! `trusted.overlay.whiteout` / `user.overlay.whiteout`) become `.wh.NAME` entries, opaque
//! directories (`trusted.overlay.opaque` / `user.overlay.opaque` = `y`) get a `.wh..wh..opq`
//! entry. overlayfs's own xattrs are never written to a tar; other xattrs are kept as
//! `SCHILY.xattr.*` PAX records. Hard links inside the tree are stored as links.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;

/// How to pack a tree.
pub struct PackOptions<'a> {
    /// Convert overlayfs whiteouts and opaque directories into OCI whiteout entries.
    pub overlay_whiteouts: bool,
    /// Do not descend into directories on another mount than the tree's root (`docker export`:
    /// /proc, /sys, /dev and volumes appear as empty directories).
    pub one_file_system: bool,
    /// The (uid, gid) to write for a file owned by (uid, gid) as `stat` shows it.
    pub map_ids: &'a dyn Fn(u32, u32) -> (u32, u32),
}

/// What a pack did.
#[derive(Clone, Debug, Default)]
pub struct PackReport {
    pub entries: u64,
    pub whiteouts: u64,
    pub opaque_dirs: u64,
    /// Things left out (sockets, unreadable xattrs, …).
    pub notes: Vec<String>,
}

/// An error while packing: the entry (as named in the tar) and what failed.
#[derive(Debug)]
pub struct PackError {
    pub entry: String,
    pub reason: String,
    /// The I/O error behind it, when there is one (a writer whose reader went away: broken pipe).
    pub io_kind: Option<std::io::ErrorKind>,
}

impl std::fmt::Display for PackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.entry, self.reason)
    }
}

impl std::error::Error for PackError {}

type R<T> = std::result::Result<T, PackError>;

fn perr<E: std::fmt::Display + 'static>(entry: &str, what: &str, e: E) -> PackError {
    let io_kind = (&e as &dyn std::any::Any)
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind);
    PackError {
        entry: entry.to_string(),
        reason: format!("{what}: {e}"),
        io_kind,
    }
}

/// A packer writing into `tb`; keeps the hard-link table across calls.
pub struct Packer<'a, W: Write> {
    tb: &'a mut tar::Builder<W>,
    opts: &'a PackOptions<'a>,
    links: HashMap<(u64, u64), String>,
    root_mnt: Option<u64>,
    pub report: PackReport,
}

impl<'a, W: Write> Packer<'a, W> {
    pub fn new(tb: &'a mut tar::Builder<W>, opts: &'a PackOptions<'a>) -> Self {
        Packer {
            tb,
            opts,
            links: HashMap::new(),
            root_mnt: None,
            report: PackReport::default(),
        }
    }

    /// Append the contents of the directory `dir` (not the directory itself), entries named
    /// `prefix/NAME` (`prefix` empty: `NAME`).
    pub fn pack_dir_contents(&mut self, dir: BorrowedFd<'_>, prefix: &str) -> R<()> {
        if self.root_mnt.is_none() {
            self.root_mnt = mnt_id(dir);
        }
        let mut names = Vec::new();
        let rd = rustix::fs::Dir::read_from(dir).map_err(|e| perr(prefix, "read directory", e))?;
        for e in rd {
            let e = e.map_err(|e| perr(prefix, "read directory", e))?;
            let n = e.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            names.push(n.to_vec());
        }
        names.sort();
        for n in names {
            let tar_name = if prefix.is_empty() {
                String::from_utf8_lossy(&n).into_owned()
            } else {
                format!("{prefix}/{}", String::from_utf8_lossy(&n))
            };
            if String::from_utf8(n.clone()).is_err() {
                self.report
                    .notes
                    .push(format!("{tar_name}: a name that is not UTF-8, left out"));
                continue;
            }
            self.pack_entry(dir, OsStr::from_bytes(&n), &tar_name)?;
        }
        Ok(())
    }

    /// Append the directory `dir` itself as `tar_name`, then its contents.
    pub fn pack_dir_as(&mut self, dir: BorrowedFd<'_>, tar_name: &str) -> R<()> {
        if self.root_mnt.is_none() {
            self.root_mnt = mnt_id(dir);
        }
        let st = rustix::fs::fstat(dir).map_err(|e| perr(tar_name, "stat", e))?;
        let fd = rustix::fs::openat(
            dir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| perr(tar_name, "open directory", e))?;
        self.dir_entry(fd, &st, tar_name)
    }

    /// Append the entry `name` of directory `parent` as `tar_name` (recursively for a directory).
    pub fn pack_entry(&mut self, parent: BorrowedFd<'_>, name: &OsStr, tar_name: &str) -> R<()> {
        if self.root_mnt.is_none() {
            self.root_mnt = mnt_id(parent);
        }
        let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| perr(tar_name, "stat", e))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        let (dir_part, base) = match tar_name.rsplit_once('/') {
            Some((d, b)) => (format!("{d}/"), b.to_string()),
            None => (String::new(), tar_name.to_string()),
        };
        if self.opts.overlay_whiteouts {
            let is_wh = match ft {
                FileType::CharacterDevice => st.st_rdev == 0,
                FileType::RegularFile if st.st_size == 0 => {
                    let fd = open_nofollow(parent, name, OFlags::RDONLY)
                        .map_err(|e| perr(tar_name, "open", e))?;
                    has_xattr(fd.as_fd(), "trusted.overlay.whiteout")
                        || has_xattr(fd.as_fd(), "user.overlay.whiteout")
                }
                _ => false,
            };
            if is_wh {
                let mut h = self.header(&st, tar::EntryType::Regular, 0);
                h.set_mode(0o644);
                let wh = format!("{dir_part}.wh.{base}");
                self.tb
                    .append_data(&mut h, &wh, io::empty())
                    .map_err(|e| perr(&wh, "write tar", e))?;
                self.report.entries += 1;
                self.report.whiteouts += 1;
                return Ok(());
            }
        }
        match ft {
            FileType::Directory => {
                let fd = open_nofollow(parent, name, OFlags::RDONLY | OFlags::DIRECTORY)
                    .map_err(|e| perr(tar_name, "open directory", e))?;
                self.dir_entry(fd, &st, tar_name)
            }
            FileType::RegularFile => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key).cloned() {
                        let mut h = self.header(&st, tar::EntryType::Link, 0);
                        self.tb
                            .append_link(&mut h, tar_name, &first)
                            .map_err(|e| perr(tar_name, "write tar", e))?;
                        self.report.entries += 1;
                        return Ok(());
                    }
                    self.links.insert(key, tar_name.to_string());
                }
                let fd = open_nofollow(parent, name, OFlags::RDONLY)
                    .map_err(|e| perr(tar_name, "open", e))?;
                self.pax_xattrs(fd.as_fd(), tar_name)?;
                let size = st.st_size as u64;
                let mut h = self.header(&st, tar::EntryType::Regular, size);
                let data = Exact {
                    inner: File::from(fd).take(size),
                    left: size,
                };
                self.tb
                    .append_data(&mut h, tar_name, data)
                    .map_err(|e| perr(tar_name, "write tar", e))?;
                self.report.entries += 1;
                Ok(())
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(parent, name, Vec::new())
                    .map_err(|e| perr(tar_name, "readlink", e))?;
                let mut h = self.header(&st, tar::EntryType::Symlink, 0);
                self.tb
                    .append_link(
                        &mut h,
                        tar_name,
                        std::path::Path::new(OsStr::from_bytes(target.as_bytes())),
                    )
                    .map_err(|e| perr(tar_name, "write tar", e))?;
                self.report.entries += 1;
                Ok(())
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                let kind = match ft {
                    FileType::CharacterDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut h = self.header(&st, kind, 0);
                if kind != tar::EntryType::Fifo {
                    let _ = h.set_device_major(rustix::fs::major(st.st_rdev));
                    let _ = h.set_device_minor(rustix::fs::minor(st.st_rdev));
                }
                self.tb
                    .append_data(&mut h, tar_name, io::empty())
                    .map_err(|e| perr(tar_name, "write tar", e))?;
                self.report.entries += 1;
                Ok(())
            }
            _ => {
                self.report
                    .notes
                    .push(format!("{tar_name}: a socket, left out"));
                Ok(())
            }
        }
    }

    fn dir_entry(&mut self, fd: OwnedFd, st: &rustix::fs::Stat, tar_name: &str) -> R<()> {
        if !tar_name.is_empty() {
            self.pax_xattrs(fd.as_fd(), tar_name)?;
            let mut h = self.header(st, tar::EntryType::Directory, 0);
            self.tb
                .append_data(&mut h, format!("{tar_name}/"), io::empty())
                .map_err(|e| perr(tar_name, "write tar", e))?;
            self.report.entries += 1;
        }
        if self.opts.overlay_whiteouts
            && (xattr_is_y(fd.as_fd(), "trusted.overlay.opaque")
                || xattr_is_y(fd.as_fd(), "user.overlay.opaque"))
        {
            let mut h = self.header(st, tar::EntryType::Regular, 0);
            h.set_mode(0o644);
            let opq = if tar_name.is_empty() {
                ".wh..wh..opq".to_string()
            } else {
                format!("{tar_name}/.wh..wh..opq")
            };
            self.tb
                .append_data(&mut h, &opq, io::empty())
                .map_err(|e| perr(&opq, "write tar", e))?;
            self.report.entries += 1;
            self.report.opaque_dirs += 1;
        }
        if self.opts.one_file_system
            && self.root_mnt.is_some()
            && mnt_id(fd.as_fd()) != self.root_mnt
        {
            return Ok(());
        }
        self.pack_dir_contents(fd.as_fd(), tar_name)
    }

    fn header(&self, st: &rustix::fs::Stat, kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(st.st_mode & 0o7777);
        let (u, g) = (self.opts.map_ids)(st.st_uid, st.st_gid);
        h.set_uid(u as u64);
        h.set_gid(g as u64);
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(size);
        h
    }

    fn pax_xattrs(&mut self, fd: BorrowedFd<'_>, tar_name: &str) -> R<()> {
        let mut buf = vec![0u8; 4096];
        let n = match rustix::fs::flistxattr(fd, &mut buf) {
            Ok(n) => n,
            Err(_) => return Ok(()),
        };
        let mut recs: Vec<(String, Vec<u8>)> = Vec::new();
        for k in buf[..n].split(|&b| b == 0).filter(|k| !k.is_empty()) {
            let Ok(k) = std::str::from_utf8(k) else {
                continue;
            };
            if k.starts_with("trusted.overlay.") || k.starts_with("user.overlay.") {
                continue;
            }
            let mut v = vec![0u8; 65536];
            match rustix::fs::fgetxattr(fd, k, &mut v) {
                Ok(len) => {
                    v.truncate(len);
                    recs.push((format!("SCHILY.xattr.{k}"), v));
                }
                Err(e) => self
                    .report
                    .notes
                    .push(format!("{tar_name}: xattr {k} not kept: {e}")),
            }
        }
        if recs.is_empty() {
            return Ok(());
        }
        self.tb
            .append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(|e| perr(tar_name, "write tar", e))
    }
}

/// Reads exactly `left` bytes: a file that shrank while it was read is padded with zeros (the
/// tar header already announced its size), one that grew is cut.
struct Exact<Rd> {
    inner: Rd,
    left: u64,
}

impl<Rd: Read> Read for Exact<Rd> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let n = match self.inner.read(&mut buf[..want])? {
            0 => {
                buf[..want].fill(0);
                want
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

fn open_nofollow(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        parent,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )
}

fn has_xattr(fd: BorrowedFd<'_>, k: &str) -> bool {
    rustix::fs::fgetxattr(fd, k, &mut [0u8; 0]).is_ok()
}

fn xattr_is_y(fd: BorrowedFd<'_>, k: &str) -> bool {
    let mut v = [0u8; 4];
    matches!(rustix::fs::fgetxattr(fd, k, &mut v), Ok(1) if v[0] == b'y')
}

fn mnt_id(fd: BorrowedFd<'_>) -> Option<u64> {
    rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
        .ok()
        .map(|s| s.stx_mnt_id)
}

/// Pack the contents of `dir` (an overlayfs upper directory when `opts.overlay_whiteouts`) as a
/// layer tar into `out`: entries relative (`bin/sh`), no entry for the directory itself.
pub fn pack_layer<W: Write>(
    dir: BorrowedFd<'_>,
    out: W,
    opts: &PackOptions<'_>,
) -> std::result::Result<(W, PackReport), PackError> {
    let mut tb = tar::Builder::new(out);
    tb.mode(tar::HeaderMode::Complete);
    let mut p = Packer::new(&mut tb, opts);
    p.pack_dir_contents(dir, "")?;
    let report = std::mem::take(&mut p.report);
    let w = tb.into_inner().map_err(|e| perr("<end>", "write tar", e))?;
    Ok((w, report))
}

/// A layer stored by [`store_layer`].
#[derive(Clone, Debug)]
pub struct StoredLayer {
    /// Digest of the gzip blob (the manifest's layer digest).
    pub blob: crate::Digest,
    /// Size of the gzip blob.
    pub size: u64,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: crate::Digest,
}

/// Store an uncompressed layer tar read from `tar` as a gzip blob (verified and renamed into
/// place like every blob), returning its digest, size and diff_id. `image` names it in errors.
pub fn store_layer(
    store: &crate::Store,
    image: &str,
    mut tar: impl Read,
) -> crate::Result<StoredLayer> {
    use sha2::Digest as _;
    let w = store.blob_writer(image, None, None)?;
    let mut gz = flate2::write::GzEncoder::new(w, flate2::Compression::fast());
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 128 * 1024];
    let io_err = |e: io::Error| crate::StorageError::Io {
        op: "write layer blob of",
        path: std::path::PathBuf::from(image),
        source: e,
    };
    loop {
        let n = match tar.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        hasher.update(&buf[..n]);
        gz.write_all(&buf[..n]).map_err(io_err)?;
    }
    let w = gz.finish().map_err(io_err)?;
    let (blob, size) = w.commit()?;
    Ok(StoredLayer {
        blob,
        size,
        diff_id: crate::Digest::from_hasher(hasher),
    })
}
