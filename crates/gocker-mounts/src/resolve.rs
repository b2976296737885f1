//! Path resolution confined to a root directory.
//!
//! Every lookup uses `openat2(2)` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`: `..` and absolute
//! symlinks are resolved as if the rootfs were `/`, so a hostile rootfs cannot point a mount or a
//! created file at the host (the class of bug behind runc's CVE-2021-30465).

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::{MountError, Result};

/// What to create when the path does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    Nothing,
    Dir,
    File,
}

/// The path of `p` relative to the root, with `.` components dropped.
pub fn relative(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect()
}

fn openat2_in_root(root: BorrowedFd<'_>, rel: &Path) -> std::result::Result<OwnedFd, Errno> {
    let path: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    // EAGAIN: a rename or a mount somewhere on the system raced with a `..` of the lookup, and
    // the kernel cannot vouch that it stayed inside the root. Try again, a bounded number of
    // times (a host busy mounting can make it last; never spin forever): the error is EAGAIN.
    let mut tries = 0u32;
    loop {
        match rustix::fs::openat2(
            root,
            path,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(Errno::AGAIN) | Err(Errno::INTR) if tries < 10_000 => {
                tries += 1;
                std::thread::yield_now();
            }
            r => return r,
        }
    }
}

/// Opens `path` (interpreted inside `root`) as an `O_PATH` descriptor, creating it (and its
/// parents, as directories) when asked. Errors name `path` itself, not the component that failed.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, create: Create) -> Result<OwnedFd> {
    open_in_root_inner(root, path, create).map_err(|e| match e {
        MountError::Sys { op, source, .. } => MountError::Sys {
            op,
            path: path.to_owned(),
            source,
        },
        other => other,
    })
}

fn open_in_root_inner(root: BorrowedFd<'_>, path: &Path, create: Create) -> Result<OwnedFd> {
    let rel = relative(path);
    match openat2_in_root(root, &rel) {
        Ok(fd) => Ok(fd),
        Err(Errno::NOENT) if create != Create::Nothing => {
            let (parent, name) = match (rel.parent(), rel.file_name()) {
                (Some(p), Some(n)) => (p.to_owned(), n.to_owned()),
                _ => return Err(MountError::sys("resolve", path, Errno::NOENT)),
            };
            let pfd = open_in_root_inner(root, &parent, Create::Dir)?;
            create_child(pfd.as_fd(), &name, create, path)?;
            openat2_in_root(root, &rel).map_err(|e| MountError::sys("openat2", path, e))
        }
        Err(e) => Err(MountError::sys("openat2", path, e)),
    }
}

fn create_child(parent: BorrowedFd<'_>, name: &OsStr, kind: Create, full: &Path) -> Result<()> {
    let r = match kind {
        Create::Dir => rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755)),
        Create::File => rustix::fs::openat(
            parent,
            name,
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o644),
        )
        .map(drop),
        Create::Nothing => Ok(()),
    };
    match r {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(MountError::sys(
            if kind == Create::Dir {
                "mkdir"
            } else {
                "create"
            },
            full,
            e,
        )),
    }
}

/// True for paths through `/proc` that the kernel follows as *magic links* (`/proc/self/fd/N`,
/// `/proc/PID/cwd`, `root`, `exe`, `map_files/...`): they name whatever a process holds, not a
/// place in a tree, so they can lead out of any root. Used to refuse them where a path of the
/// container's (a working directory) or a mount source is expected.
pub fn is_proc_magic(path: &Path) -> bool {
    let parts: Vec<&OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    if parts.first().map(|p| *p != "proc").unwrap_or(true) || parts.len() < 3 {
        return false;
    }
    let task = parts[1].to_str().unwrap_or_default();
    let is_task = task == "self"
        || task == "thread-self"
        || (!task.is_empty() && task.bytes().all(|b| b.is_ascii_digit()));
    if !is_task {
        return false;
    }
    // /proc/PID/task/TID/... has the same entries one level down.
    let rest = if parts.len() >= 5 && parts[2] == "task" {
        &parts[4..]
    } else {
        &parts[2..]
    };
    matches!(
        rest.first().and_then(|p| p.to_str()),
        Some("fd" | "cwd" | "root" | "exe" | "map_files" | "fdinfo")
    )
}

/// Changes the working directory to `path` resolved inside the current root (`/`), as the
/// payload's `process.cwd`: `..` and symlinks stay inside, magic links are refused, and the
/// directory reached is checked to be reachable from the root (`getcwd` does not answer
/// "(unreachable)"), the check runc added for CVE-2024-21626. Errors name `path`.
pub fn enter_dir(path: &Path) -> Result<()> {
    if is_proc_magic(path) {
        return Err(MountError::OutsideRoot {
            what: "working directory",
            path: path.to_owned(),
            reason: "a /proc magic link names a descriptor or a process's directory".into(),
        });
    }
    let root = rustix::fs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| MountError::sys("open", "/", e))?;
    let fd = match openat2_in_root(root.as_fd(), &relative(path)) {
        Ok(fd) => fd,
        Err(Errno::LOOP) => {
            return Err(MountError::OutsideRoot {
                what: "working directory",
                path: path.to_owned(),
                reason: "a symlink loop, or a magic link on the way".into(),
            })
        }
        Err(e) => return Err(MountError::sys("openat2", path, e)),
    };
    rustix::process::fchdir(&fd).map_err(|e| MountError::sys("fchdir", path, e))?;
    let here =
        rustix::process::getcwd(Vec::new()).map_err(|e| MountError::sys("getcwd", path, e))?;
    if here.to_bytes().first() != Some(&b'/') {
        return Err(MountError::OutsideRoot {
            what: "working directory",
            path: path.to_owned(),
            reason: format!("getcwd says {:?}", here.to_string_lossy()),
        });
    }
    Ok(())
}

/// True when the `O_PATH` descriptor refers to a directory.
pub fn is_dir(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstat(fd)
        .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_magic_links_are_recognised() {
        for p in [
            "/proc/self/fd/4",
            "/proc/thread-self/fd/7/..",
            "/proc/1/cwd",
            "/proc/12/root/etc",
            "/proc/self/exe",
            "/proc/1/task/1/fd/3",
            "/proc/self/map_files/x",
            "//proc/./self/fd/4",
        ] {
            assert!(is_proc_magic(Path::new(p)), "{p}");
        }
        for p in [
            "/proc",
            "/proc/self",
            "/proc/self/status",
            "/proc/sys/fd",
            "/work/proc/self/fd/4",
            "/tmp",
            "/",
        ] {
            assert!(!is_proc_magic(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn relative_strips_root_and_dots() {
        assert_eq!(relative(Path::new("/a/./b/")), PathBuf::from("a/b"));
        assert_eq!(relative(Path::new("/")), PathBuf::new());
    }

    #[test]
    fn symlinks_cannot_escape_the_root() {
        let base = std::env::temp_dir().join(format!("gocker-resolve-{}", std::process::id()));
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        let rfd = rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();

        // An absolute symlink is resolved inside the root, where its target does not exist: the
        // lookup fails instead of creating anything in `outside`.
        let inside = root.join(outside.strip_prefix("/").unwrap());
        assert!(open_in_root(rfd.as_fd(), Path::new("/evil/x/file"), Create::File).is_err());
        assert!(!outside.join("x").exists());
        // Once the target exists inside the root, the same path resolves there.
        std::fs::create_dir_all(&inside).unwrap();
        open_in_root(rfd.as_fd(), Path::new("/evil/x/file"), Create::File).unwrap();
        assert!(inside.join("x/file").exists() && !outside.join("x").exists());

        // `..` cannot climb above the root.
        open_in_root(rfd.as_fd(), Path::new("/up/y"), Create::Dir).unwrap();
        assert!(root.join("y").is_dir());
        assert!(!base.parent().unwrap().join("y").exists());

        let e = open_in_root(rfd.as_fd(), Path::new("/missing"), Create::Nothing).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
