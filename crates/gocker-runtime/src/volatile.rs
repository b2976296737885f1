//! Root's state store is volatile by contract: it lives in `/run`, which distributions mount as a
//! tmpfs, so records and the changes of stopped containers go with a reboot and never cost disk
//! writeback. On a host whose `/run` is a disk filesystem (some VM images), the store would keep
//! stale records across reboots, and every run would wait on the disk: removing a `--rm`
//! container's record truncates a file whose replacement ext4 has just started writing back
//! (`auto_da_alloc`), and that wait was milliseconds per run on such a host (docs/benchmarks.md).
//! There, the first gocker to open the empty store mounts a tmpfs of its own on it, as systemd
//! mounts `/run`: `nosuid,nodev`, mode 0700, at most 20 % of memory. A store that already holds
//! records is left where it is (mounting over it would hide running containers).

use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::mount::MountFlags;

/// `f_type` of tmpfs and ramfs (linux/magic.h).
const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// How the store at `root` ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It was on a tmpfs (or ramfs) already.
    Volatile,
    /// This call mounted a tmpfs on it.
    Mounted,
    /// It stays on a disk filesystem: it holds records, or the mount was refused.
    OnDisk,
}

fn on_tmpfs(path: &Path) -> bool {
    rustix::fs::statfs(path)
        .map(|s| matches!(s.f_type, TMPFS_MAGIC | RAMFS_MAGIC))
        .unwrap_or(false)
}

/// Nothing but an empty `names` directory (what `StateStore::open` makes first).
fn is_empty(root: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(root) else {
        return false;
    };
    entries.flatten().all(|e| {
        e.file_name() == "names"
            && std::fs::read_dir(e.path())
                .map(|mut d| d.next().is_none())
                .unwrap_or(false)
    })
}

/// Makes the existing directory `root` a tmpfs when it is on disk and empty (see the module
/// documentation). Concurrent callers serialize on a lock of the directory itself and look again
/// once they hold it, so at most one tmpfs is ever mounted there.
pub(crate) fn ensure(root: &Path) -> Outcome {
    if on_tmpfs(root) {
        return Outcome::Volatile;
    }
    let Ok(dir) = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return Outcome::OnDisk;
    };
    if rustix::fs::flock(dir.as_fd(), FlockOperation::LockExclusive).is_err() {
        return Outcome::OnDisk;
    }
    // Another gocker may have mounted it while this one waited: the path now leads there.
    if on_tmpfs(root) {
        return Outcome::Volatile;
    }
    if !is_empty(root) {
        tracing::debug!(
            "state store {} is on a disk filesystem and holds records: left there",
            root.display()
        );
        return Outcome::OnDisk;
    }
    match rustix::mount::mount(
        "tmpfs",
        root,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        c"mode=0700,size=20%",
    ) {
        Ok(()) => Outcome::Mounted,
        Err(e) => {
            tracing::debug!("state store {}: mount tmpfs: {e}", root.display());
            Outcome::OnDisk
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_with_records_is_not_empty_and_a_fresh_one_is() {
        let root = std::env::temp_dir().join(format!("gocker-volatile-{}", std::process::id()));
        std::fs::create_dir_all(root.join("names")).unwrap();
        assert!(is_empty(&root));
        std::fs::write(root.join("names/web"), "x").unwrap();
        assert!(!is_empty(&root));
        std::fs::remove_file(root.join("names/web")).unwrap();
        std::fs::create_dir(root.join("abc123")).unwrap();
        assert!(!is_empty(&root));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn dev_shm_counts_as_volatile() {
        if Path::new("/dev/shm").is_dir() {
            assert!(on_tmpfs(Path::new("/dev/shm")));
        }
        assert!(!on_tmpfs(Path::new("/proc")));
    }
}
