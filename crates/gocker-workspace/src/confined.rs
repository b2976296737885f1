//! File access from the service side, confined to a session's workspace directory.
//!
//! Every path is resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` from a
//! descriptor of the workspace root: a symlink (absolute, or relative with enough `..`) that
//! would leave the workspace makes the kernel fail the lookup with `EXDEV`, which is refused
//! as `policy_denied`, so a symlink planted by a program in the sandbox cannot make the service
//! read or write a host file. Removals and renames act on the last component through its parent
//! directory's descriptor and never follow it. Tree walks (list, search, delete) never follow
//! symlinks at all.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use serde::Serialize;

use crate::error::{Result, WorkspaceError};
use crate::paths::RelPath;

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

/// A workspace directory, held open.
#[derive(Debug)]
pub struct WorkspaceDir {
    root: OwnedFd,
}

/// What a file is, as the tools report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

impl Kind {
    fn of(t: FileType) -> Kind {
        match t {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

/// `fs.stat`'s answer.
#[derive(Debug, Clone, Serialize)]
pub struct Stat {
    pub path: String,
    pub kind: Kind,
    pub size_bytes: u64,
    pub mode: String,
    pub modified_at: i64,
}

/// One entry of `fs.list`.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub size_bytes: u64,
}

/// One match of `fs.search`.
#[derive(Debug, Clone, Serialize)]
pub struct Match {
    pub path: String,
    pub line: usize,
    pub text: String,
}

fn err(path: &RelPath, e: Errno) -> WorkspaceError {
    match e {
        Errno::XDEV | Errno::LOOP => WorkspaceError::PolicyDenied(format!(
            "{path}: resolves outside the workspace (through a symlink)"
        )),
        Errno::NOENT => WorkspaceError::NotFound(format!("{path}: no such file or directory")),
        Errno::NOTDIR => WorkspaceError::InvalidArgument(format!("{path}: not a directory")),
        Errno::ISDIR => WorkspaceError::InvalidArgument(format!("{path}: is a directory")),
        Errno::EXIST => WorkspaceError::InvalidArgument(format!("{path}: already exists")),
        Errno::NOTEMPTY => WorkspaceError::InvalidArgument(format!("{path}: directory not empty")),
        Errno::ACCESS | Errno::PERM => {
            WorkspaceError::PolicyDenied(format!("{path}: permission denied"))
        }
        e => WorkspaceError::Internal(format!("{path}: {e}")),
    }
}

fn name_of(n: &str) -> &OsStr {
    OsStr::from_bytes(n.as_bytes())
}

impl WorkspaceDir {
    /// Opens the workspace directory `dir` (a host path chosen by the service).
    pub fn open(dir: &Path) -> Result<Self> {
        let root = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| WorkspaceError::io(dir.display(), e))?;
        Ok(WorkspaceDir { root })
    }

    fn open_at(&self, rel: &RelPath, flags: OFlags, mode: Mode) -> Result<OwnedFd> {
        loop {
            match rustix::fs::openat2(
                &self.root,
                rel.as_str(),
                flags | OFlags::CLOEXEC,
                mode,
                RESOLVE,
            ) {
                Err(Errno::AGAIN | Errno::INTR) => continue,
                r => return r.map_err(|e| err(rel, e)),
            }
        }
    }

    fn open_dir(&self, rel: &RelPath) -> Result<OwnedFd> {
        self.open_at(rel, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
    }

    /// The parent's descriptor and the last name; the root itself cannot be acted on by name.
    fn parent(&self, rel: &RelPath) -> Result<(OwnedFd, String)> {
        let (dir, name) = rel.split_last().ok_or_else(|| {
            WorkspaceError::InvalidArgument("the workspace root itself cannot be changed".into())
        })?;
        Ok((self.open_dir(&dir)?, name.to_string()))
    }

    /// Reads at most `max` bytes of a regular file; `true` when it was longer.
    pub fn read(&self, rel: &RelPath, max: u64) -> Result<(Vec<u8>, bool)> {
        let fd = self.open_at(rel, OFlags::RDONLY | OFlags::NOCTTY, Mode::empty())?;
        let st = rustix::fs::fstat(&fd).map_err(|e| err(rel, e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(WorkspaceError::InvalidArgument(format!(
                "{rel}: not a regular file"
            )));
        }
        let mut f = std::fs::File::from(fd);
        let mut buf = Vec::new();
        (&mut f)
            .take(max + 1)
            .read_to_end(&mut buf)
            .map_err(|e| WorkspaceError::io(rel, e))?;
        let truncated = buf.len() as u64 > max;
        buf.truncate(max as usize);
        Ok((buf, truncated))
    }

    /// Writes `data` to a file (created 0644 or truncated); with `create_dirs` the missing
    /// parent directories are made first.
    pub fn write(&self, rel: &RelPath, data: &[u8], create_dirs: bool) -> Result<u64> {
        if let (true, Some((dir, _))) = (create_dirs, rel.split_last()) {
            self.mkdir(&dir, true)?;
        }
        let fd = self.open_at(
            rel,
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOCTTY,
            Mode::from_raw_mode(0o644),
        )?;
        let st = rustix::fs::fstat(&fd).map_err(|e| err(rel, e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(WorkspaceError::InvalidArgument(format!(
                "{rel}: not a regular file"
            )));
        }
        let mut f = std::fs::File::from(fd);
        f.write_all(data).map_err(|e| WorkspaceError::io(rel, e))?;
        Ok(data.len() as u64)
    }

    /// Makes a directory (0755); with `parents`, also the missing ones above it, and an
    /// existing directory is fine.
    pub fn mkdir(&self, rel: &RelPath, parents: bool) -> Result<()> {
        if rel.is_root() {
            return if parents {
                Ok(())
            } else {
                Err(err(rel, Errno::EXIST))
            };
        }
        if !parents {
            let (dir, name) = self.parent(rel)?;
            return rustix::fs::mkdirat(&dir, name_of(&name), Mode::from_raw_mode(0o755))
                .map_err(|e| err(rel, e));
        }
        let mut cur = RelPath::root();
        for c in rel.as_str().split('/') {
            let next = cur.join(c);
            let dir = self.open_dir(&cur)?;
            match rustix::fs::mkdirat(&dir, name_of(c), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(err(&next, e)),
            }
            // The component must now resolve, beneath the root, to a directory.
            drop(self.open_dir(&next)?);
            cur = next;
        }
        Ok(())
    }

    /// The file's attributes; a symlink is followed only where it stays inside.
    pub fn stat(&self, rel: &RelPath) -> Result<Stat> {
        let fd = self.open_at(rel, OFlags::PATH, Mode::empty())?;
        let st = rustix::fs::fstat(&fd).map_err(|e| err(rel, e))?;
        Ok(Stat {
            path: rel.to_string(),
            kind: Kind::of(FileType::from_raw_mode(st.st_mode)),
            size_bytes: st.st_size as u64,
            mode: format!("{:04o}", st.st_mode & 0o7777),
            modified_at: st.st_mtime,
        })
    }

    /// Entries under a directory (recursive to `depth` levels), at most `max`; `true` when
    /// more were left out. Symlinks are listed as symlinks, never followed.
    pub fn list(&self, rel: &RelPath, depth: u32, max: usize) -> Result<(Vec<Entry>, bool)> {
        let fd = self.open_dir(rel)?;
        let mut out = Vec::new();
        let mut truncated = false;
        self.walk(fd, rel, depth, &mut |p, kind, fd, name| {
            if out.len() >= max {
                truncated = true;
                return false;
            }
            let size = if kind == Kind::File {
                rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map(|s| s.st_size as u64)
                    .unwrap_or(0)
            } else {
                0
            };
            out.push(Entry {
                path: p.to_string(),
                kind,
                size_bytes: size,
            });
            true
        })?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((out, truncated))
    }

    /// Calls `f(path, kind, dirfd, name)` for each entry below `fd`, depth first, descending
    /// `depth` more levels through real directories only. `f` returns false to stop.
    fn walk(
        &self,
        fd: OwnedFd,
        rel: &RelPath,
        depth: u32,
        f: &mut dyn FnMut(&RelPath, Kind, &OwnedFd, &OsStr) -> bool,
    ) -> Result<bool> {
        let mut dir = Dir::read_from(&fd).map_err(|e| err(rel, e))?;
        let mut names = Vec::new();
        while let Some(e) = dir.read() {
            let e = e.map_err(|e| err(rel, e))?;
            let n = e.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            let Ok(s) = std::str::from_utf8(n) else {
                continue;
            };
            let mut t = e.file_type();
            if t == FileType::Unknown {
                t = rustix::fs::statat(&fd, n, AtFlags::SYMLINK_NOFOLLOW)
                    .map(|s| FileType::from_raw_mode(s.st_mode))
                    .unwrap_or(FileType::Unknown);
            }
            names.push((s.to_string(), t));
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (n, t) in names {
            let p = rel.join(&n);
            if !f(&p, Kind::of(t), &fd, name_of(&n)) {
                return Ok(false);
            }
            if t == FileType::Directory && depth > 0 {
                let sub = rustix::fs::openat(
                    &fd,
                    name_of(&n),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| err(&p, e))?;
                if !self.walk(sub, &p, depth - 1, f)? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Removes a file, a symlink (not its target) or an empty directory; with `recursive`, a
    /// directory and everything in it.
    pub fn delete(&self, rel: &RelPath, recursive: bool) -> Result<()> {
        let (dir, name) = self.parent(rel)?;
        let st = rustix::fs::statat(&dir, name_of(&name), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| err(rel, e))?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            if recursive {
                let sub = rustix::fs::openat(
                    &dir,
                    name_of(&name),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| err(rel, e))?;
                empty_dir(&sub, rel)?;
            }
            rustix::fs::unlinkat(&dir, name_of(&name), AtFlags::REMOVEDIR).map_err(|e| err(rel, e))
        } else {
            rustix::fs::unlinkat(&dir, name_of(&name), AtFlags::empty()).map_err(|e| err(rel, e))
        }
    }

    /// Renames `from` to `to` (refusing to replace an existing `to` unless `overwrite`).
    pub fn rename(&self, from: &RelPath, to: &RelPath, overwrite: bool) -> Result<()> {
        let (fd, fname) = self.parent(from)?;
        let (td, tname) = self.parent(to)?;
        let flags = if overwrite {
            rustix::fs::RenameFlags::empty()
        } else {
            rustix::fs::RenameFlags::NOREPLACE
        };
        rustix::fs::renameat_with(&fd, name_of(&fname), &td, name_of(&tname), flags).map_err(|e| {
            match e {
                Errno::EXIST => err(to, e),
                e => err(from, e),
            }
        })
    }

    /// Copies a regular file (at most `max` bytes).
    pub fn copy_file(
        &self,
        from: &RelPath,
        to: &RelPath,
        overwrite: bool,
        max: u64,
    ) -> Result<u64> {
        let (data, truncated) = self.read(from, max)?;
        if truncated {
            return Err(WorkspaceError::InvalidArgument(format!(
                "{from}: larger than the copy limit of {max} bytes"
            )));
        }
        if !overwrite && self.stat(to).is_ok() {
            return Err(err(to, Errno::EXIST));
        }
        self.write(to, &data, false)
    }

    /// Lines matching `re` in the regular files under `rel` (symlinks skipped; files over
    /// `max_file_bytes` or not UTF-8 skipped), at most `max` matches.
    pub fn search(
        &self,
        rel: &RelPath,
        re: &regex::Regex,
        max: usize,
        max_file_bytes: u64,
    ) -> Result<(Vec<Match>, bool)> {
        let mut out = Vec::new();
        let mut truncated = false;
        let st = self.stat(rel)?;
        if st.kind == Kind::File {
            let (data, _) = self.read(rel, max_file_bytes)?;
            scan(rel, &data, re, max, &mut out, &mut truncated);
            return Ok((out, truncated));
        }
        let fd = self.open_dir(rel)?;
        self.walk(fd, rel, 64, &mut |p, kind, dfd, name| {
            if kind != Kind::File || name == ".git" {
                return true;
            }
            let Ok(f) = rustix::fs::openat(
                dfd,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC,
                Mode::empty(),
            ) else {
                return true;
            };
            let mut data = Vec::new();
            let _ = std::fs::File::from(f)
                .take(max_file_bytes + 1)
                .read_to_end(&mut data);
            if data.len() as u64 <= max_file_bytes {
                scan(p, &data, re, max, &mut out, &mut truncated);
            }
            !truncated
        })?;
        Ok((out, truncated))
    }

    /// Fills the (empty) workspace with a copy of the host directory `src`: regular files with
    /// their modes, directories, symlinks as symlinks (never followed); other kinds skipped.
    pub fn import_tree(&self, src: &Path) -> Result<u64> {
        let fd = rustix::fs::open(
            src,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            WorkspaceError::InvalidArgument(format!("source_repo_path {}: {e}", src.display()))
        })?;
        let root = rustix::io::dup(&self.root).map_err(|e| WorkspaceError::io("dup", e))?;
        copy_dir(&fd, &root, src)
    }
}

fn scan(
    p: &RelPath,
    data: &[u8],
    re: &regex::Regex,
    max: usize,
    out: &mut Vec<Match>,
    truncated: &mut bool,
) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for (i, line) in s.lines().enumerate() {
        if re.is_match(line) {
            if out.len() >= max {
                *truncated = true;
                return;
            }
            out.push(Match {
                path: p.to_string(),
                line: i + 1,
                text: line.chars().take(400).collect(),
            });
        }
    }
}

fn empty_dir(fd: &OwnedFd, rel: &RelPath) -> Result<()> {
    let mut dir = Dir::read_from(fd).map_err(|e| err(rel, e))?;
    let mut names = Vec::new();
    while let Some(e) = dir.read() {
        let e = e.map_err(|e| err(rel, e))?;
        let n = e.file_name().to_bytes().to_vec();
        if n != b"." && n != b".." {
            names.push(n);
        }
    }
    for n in names {
        let n = OsStr::from_bytes(&n);
        let st = rustix::fs::statat(fd, n, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| err(rel, e))?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let sub = rustix::fs::openat(
                fd,
                n,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| err(rel, e))?;
            empty_dir(&sub, rel)?;
            rustix::fs::unlinkat(fd, n, AtFlags::REMOVEDIR).map_err(|e| err(rel, e))?;
        } else {
            rustix::fs::unlinkat(fd, n, AtFlags::empty()).map_err(|e| err(rel, e))?;
        }
    }
    Ok(())
}

fn copy_dir(src: &OwnedFd, dst: &OwnedFd, at: &Path) -> Result<u64> {
    let io = |e: Errno| WorkspaceError::io(at.display(), e);
    let mut dir = Dir::read_from(src).map_err(io)?;
    let mut n = 0;
    while let Some(e) = dir.read() {
        let e = e.map_err(io)?;
        let name = e.file_name().to_bytes().to_vec();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsStr::from_bytes(&name);
        let st = rustix::fs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW).map_err(io)?;
        let mode = Mode::from_raw_mode(st.st_mode & 0o777);
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                rustix::fs::mkdirat(dst, name, mode | Mode::RWXU).map_err(io)?;
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let s = rustix::fs::openat(src, name, flags, Mode::empty()).map_err(io)?;
                let d = rustix::fs::openat(dst, name, flags, Mode::empty()).map_err(io)?;
                n += copy_dir(&s, &d, &at.join(name))?;
            }
            FileType::RegularFile => {
                let s = rustix::fs::openat(
                    src,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io)?;
                let d = rustix::fs::openat(
                    dst,
                    name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                    mode,
                )
                .map_err(io)?;
                let mut s = std::fs::File::from(s);
                let mut d = std::fs::File::from(d);
                n += std::io::copy(&mut s, &mut d)
                    .map_err(|e| WorkspaceError::io(at.join(name).display(), e))?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(src, name, Vec::new()).map_err(io)?;
                rustix::fs::symlinkat(target.as_c_str(), dst, name).map_err(io)?;
            }
            _ => {}
        }
    }
    let _ = dst.as_fd();
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn ws() -> (tempfile::TempDir, WorkspaceDir) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("ws")).unwrap();
        let w = WorkspaceDir::open(&t.path().join("ws")).unwrap();
        (t, w)
    }

    fn p(s: &str) -> RelPath {
        RelPath::parse("path", s).unwrap()
    }

    #[test]
    fn write_read_stat_list_delete() {
        let (_t, w) = ws();
        w.write(&p("a/b/c.txt"), b"hello\n", true).unwrap();
        let (d, tr) = w.read(&p("a/b/c.txt"), 3).unwrap();
        assert_eq!((d.as_slice(), tr), (&b"hel"[..], true));
        assert_eq!(w.stat(&p("a/b/c.txt")).unwrap().size_bytes, 6);
        let (l, _) = w.list(&p("."), 5, 100).unwrap();
        let names: Vec<_> = l.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(names, ["a", "a/b", "a/b/c.txt"]);
        w.rename(&p("a/b/c.txt"), &p("a/d.txt"), false).unwrap();
        w.copy_file(&p("a/d.txt"), &p("e.txt"), false, 100).unwrap();
        assert_eq!(
            w.copy_file(&p("a/d.txt"), &p("e.txt"), false, 100)
                .unwrap_err()
                .code(),
            ErrorCode::InvalidArgument
        );
        let re = regex::Regex::new("hel+o").unwrap();
        let (m, _) = w.search(&p("."), &re, 10, 1000).unwrap();
        assert_eq!(m.len(), 2);
        w.delete(&p("a"), true).unwrap();
        assert_eq!(w.stat(&p("a")).unwrap_err().code(), ErrorCode::NotFound);
    }

    #[test]
    fn symlinks_out_of_the_workspace_are_refused_by_every_operation() {
        let (t, w) = ws();
        std::fs::write(t.path().join("secret"), "s3cret").unwrap();
        let wsd = t.path().join("ws");
        std::os::unix::fs::symlink(t.path().join("secret"), wsd.join("abs")).unwrap();
        std::os::unix::fs::symlink("../secret", wsd.join("rel")).unwrap();
        std::os::unix::fs::symlink("/", wsd.join("rootdir")).unwrap();
        std::os::unix::fs::symlink("/proc/self/root", wsd.join("magic")).unwrap();
        let re = regex::Regex::new("s").unwrap();
        for l in ["abs", "rel", "rootdir/etc/passwd", "magic/etc/passwd"] {
            let denied = |r: Result<()>| {
                assert_eq!(r.unwrap_err().code(), ErrorCode::PolicyDenied, "{l}");
            };
            denied(w.read(&p(l), 10).map(|_| ()));
            denied(w.write(&p(l), b"x", false).map(|_| ()));
            denied(w.stat(&p(l)).map(|_| ()));
            denied(w.search(&p(l), &re, 1, 100).map(|_| ()));
            denied(w.copy_file(&p(l), &p("copy"), false, 100).map(|_| ()));
        }
        denied_dir(&w, "rootdir/tmp");
        assert_eq!(
            std::fs::read_to_string(t.path().join("secret")).unwrap(),
            "s3cret"
        );
        // A link inside is followed; removing a link removes the link only.
        std::os::unix::fs::symlink("inside.txt", wsd.join("ok")).unwrap();
        w.write(&p("inside.txt"), b"in", false).unwrap();
        assert_eq!(w.read(&p("ok"), 10).unwrap().0, b"in");
        w.delete(&p("abs"), false).unwrap();
        assert!(t.path().join("secret").exists());
        // A recursive listing shows the links and does not follow them.
        let (l, _) = w.list(&p("."), 10, 100).unwrap();
        assert!(l.iter().all(|e| !e.path.starts_with("rootdir/")), "{l:?}");
    }

    fn denied_dir(w: &WorkspaceDir, l: &str) {
        assert_eq!(
            w.mkdir(&p(l), true).unwrap_err().code(),
            ErrorCode::PolicyDenied
        );
        assert_eq!(
            w.list(&p(l), 1, 10).unwrap_err().code(),
            ErrorCode::PolicyDenied
        );
        assert_eq!(
            w.write(&p(&format!("{l}/x")), b"x", true)
                .unwrap_err()
                .code(),
            ErrorCode::PolicyDenied
        );
    }

    #[test]
    fn import_copies_links_as_links() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        std::fs::create_dir_all(src.join("d")).unwrap();
        std::fs::write(src.join("d/f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("l")).unwrap();
        std::fs::create_dir(t.path().join("ws")).unwrap();
        let w = WorkspaceDir::open(&t.path().join("ws")).unwrap();
        assert_eq!(w.import_tree(&src).unwrap(), 1);
        assert_eq!(
            std::fs::read_link(t.path().join("ws/l")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            w.read(&p("l"), 10).unwrap_err().code(),
            ErrorCode::PolicyDenied
        );
    }
}
