//! Small files on a size-limited tmpfs of their own, bound one by one (a container's `/etc/hosts`
//! and `/etc/resolv.conf`): whatever is written to them is bounded by the tmpfs, and none of it
//! reaches the storage the original content came from.
//!
//! The tmpfs is made with `fsopen`/`fsmount` by the caller, so it belongs to the caller's user
//! namespace (container root inside a user namespace can make it, and owns the files). Binding one
//! file of it takes `open_tree(OPEN_TREE_CLONE)` on the detached mount, which recent kernels allow
//! and older ones (6.1, for one) refuse with `EINVAL`: there the tmpfs is attached for that moment
//! in a throwaway mount namespace of a short-lived thread, so the caller's own mount namespace,
//! working directory and root are never touched.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::mount::MountPropagationFlags;
use rustix::thread::UnshareFlags;

use crate::options::{MountAttrs, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID};
use crate::sys::{attach_path, clone_tree, fs_instance};
use crate::{MountError, Result};

/// Permissions of every copy: readable by every user of the container, writable by its owner
/// (the caller, e.g. container root), whatever the caller's umask.
const FILE_MODE: u32 = 0o644;

/// Copies each `(destination, content)` into one new tmpfs of at most `limit` bytes (all files
/// together; `nosuid,nodev,noexec`) and returns, per destination, a detached bind mount of its
/// copy, to be attached there (e.g. as a premade mount of [`crate::KernelMounter`]). A write past
/// the limit fails with `ENOSPC` for whoever writes; content larger than the limit is an error.
///
/// Needs `CAP_SYS_ADMIN` over the caller's mount namespace (root of the user namespace that owns
/// it). On kernels that cannot clone from a detached mount, spawns (and joins) one thread.
pub fn bounded_copies<R: Read>(
    limit: u64,
    files: Vec<(PathBuf, R)>,
) -> Result<Vec<(PathBuf, OwnedFd)>> {
    copies(limit, files, Staging::IfRefused)
}

/// When to clone the files in a staging mount namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Staging {
    /// Only when the kernel refuses to clone from the detached tmpfs.
    IfRefused,
    /// Always (tests the older kernels' path on any kernel).
    #[cfg_attr(not(test), allow(dead_code))]
    Always,
}

fn copies<R: Read>(
    limit: u64,
    files: Vec<(PathBuf, R)>,
    staging: Staging,
) -> Result<Vec<(PathBuf, OwnedFd)>> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let what = PathBuf::from(format!(
        "tmpfs for {}",
        files
            .iter()
            .map(|(d, _)| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let data = [
        ("size".to_owned(), Some(limit.to_string())),
        // The root and one inode per file: nothing else can be created (the root is never bound).
        ("nr_inodes".to_owned(), Some((files.len() + 1).to_string())),
        ("mode".to_owned(), Some("0755".to_owned())),
    ];
    let attrs = MountAttrs::set(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    let mnt = fs_instance("tmpfs", "tmpfs", &data, attrs, &what)?;
    let mut names = Vec::with_capacity(files.len());
    let mut dests = Vec::with_capacity(files.len());
    for (dest, content) in files {
        let name = unique_name(&dest, &names);
        copy_in(mnt.as_fd(), &name, content, &dest, limit)?;
        names.push(name);
        dests.push(dest);
    }
    let direct = match staging {
        Staging::IfRefused => match clone_each(mnt.as_fd(), &names, &what) {
            Err(e) if e.errno() == Some(libc::EINVAL) => None,
            r => Some(r?),
        },
        Staging::Always => None,
    };
    let clones = match direct {
        Some(c) => c,
        None => std::thread::scope(|s| {
            s.spawn(|| clone_in_staging_namespace(mnt.as_fd(), &names, &what))
                .join()
        })
        .map_err(|_| MountError::Invalid {
            dest: what.clone(),
            reason: "the staging thread panicked".into(),
        })??,
    };
    Ok(dests.into_iter().zip(clones).collect())
}

/// A detached bind mount of each of `names` at the root of the tmpfs `mnt`.
fn clone_each(mnt: BorrowedFd<'_>, names: &[String], what: &Path) -> Result<Vec<OwnedFd>> {
    names
        .iter()
        .map(|n| {
            clone_tree(mnt, Path::new(n), false).map_err(|e| match e {
                MountError::Sys { op, source, .. } => MountError::Sys {
                    op,
                    path: what.join(n),
                    source,
                },
                other => other,
            })
        })
        .collect()
}

/// The name of `dest`'s copy inside the tmpfs: its file name (shown as the mount's root in
/// `/proc/self/mountinfo`), with a suffix when another destination has the same one.
fn unique_name(dest: &Path, taken: &[String]) -> String {
    let base = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let mut name = base.clone();
    let mut i = 1;
    while taken.contains(&name) {
        name = format!("{base}.{i}");
        i += 1;
    }
    name
}

/// Creates `name` at the root of the tmpfs `mnt` with [`FILE_MODE`] and copies `content` into it.
fn copy_in(
    mnt: BorrowedFd<'_>,
    name: &str,
    mut content: impl Read,
    dest: &Path,
    limit: u64,
) -> Result<()> {
    let fd = rustix::fs::openat(
        mnt,
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(FILE_MODE),
    )
    .map_err(|e| MountError::sys("create the copy of", dest, e))?;
    // The mode given to openat is reduced by the umask.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(FILE_MODE))
        .map_err(|e| MountError::sys("fchmod the copy of", dest, e))?;
    let mut file = std::fs::File::from(fd);
    std::io::copy(&mut content, &mut file).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EFBIG) => MountError::Invalid {
            dest: dest.to_owned(),
            reason: format!("the content does not fit in the {limit}-byte limit"),
        },
        _ => MountError::sys("copy the content of", dest, e),
    })?;
    Ok(())
}

/// On the calling thread only: a new mount namespace (a private copy of the caller's), the tmpfs
/// attached on top of its `/` (where no path lookup ever sees it: lookups start at the root
/// dentry below it), and one clone per file, taken through the tmpfs's descriptor. The namespace
/// goes away with the thread; the clones are detached mounts of their own.
fn clone_in_staging_namespace(
    mnt: BorrowedFd<'_>,
    names: &[String],
    what: &Path,
) -> Result<Vec<OwnedFd>> {
    // CLONE_NEWNS unshares only this thread's mount namespace (and, implied by it, its filesystem
    // attributes: root, cwd, umask); the descriptor table stays shared, so the descriptors made
    // here are the caller's as usual.
    // SAFETY: called on a thread of its own that ends right after; nothing else runs on it.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS) }
        .map_err(|e| MountError::sys("unshare(CLONE_NEWNS) to stage", what, e))?;
    // Nothing done in the staging namespace may propagate to a peer (the caller's may be shared).
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| MountError::sys("make-rprivate the staging namespace for", what, e))?;
    attach_path(mnt, Path::new("/"))?;
    clone_each(mnt, names, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn names_are_file_names_made_unique() {
        let taken = vec!["hosts".to_owned(), "hosts.1".to_owned()];
        assert_eq!(
            unique_name(Path::new("/etc/resolv.conf"), &taken),
            "resolv.conf"
        );
        assert_eq!(unique_name(Path::new("/etc/hosts"), &taken), "hosts.2");
        assert_eq!(unique_name(Path::new("/"), &[]), "file");
    }

    const IN_USERNS: &str = "GOCKER_MOUNTS_TEST_IN_USERNS";

    /// Runs [`copies_bound_and_limited`] in a new user and mount namespace (`unshare -Urm`, which
    /// also makes the new mount namespace private), where the test is root and may mount tmpfs.
    #[test]
    fn bounded_copies_in_a_user_namespace() {
        let exe = std::env::current_exe().unwrap();
        let out = match std::process::Command::new("unshare")
            .args(["-Urm", "--"])
            .arg(&exe)
            .args([
                "--exact",
                "files::tests::copies_bound_and_limited",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(IN_USERNS, "1")
            .output()
        {
            Ok(o) => o,
            Err(e) => {
                eprintln!("skipped: no unshare(1) to make a user namespace ({e})");
                return;
            }
        };
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && err.starts_with("unshare: ") {
            eprintln!("skipped: this host allows no user namespace here: {err}");
            return;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}{err}");
        assert!(text.contains("1 passed"), "{text}{err}");
    }

    /// The kernel half of [`bounded_copies_in_a_user_namespace`] (ignored unless run by it): both
    /// ways of cloning, whichever this kernel would take.
    #[test]
    #[ignore]
    fn copies_bound_and_limited() {
        for staging in [Staging::IfRefused, Staging::Always] {
            copies_bound_and_limited_with(staging);
        }
    }

    fn copies_bound_and_limited_with(staging: Staging) {
        assert_eq!(
            std::env::var(IN_USERNS).as_deref(),
            Ok("1"),
            "run by bounded_copies_in_a_user_namespace"
        );
        // SAFETY: umask only sets this process's file mode creation mask.
        unsafe { libc::umask(0o077) };
        let dir = std::env::temp_dir().join(format!(
            "gocker-mounts-files-{}-{staging:?}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("hosts"), dir.join("other-hosts"));
        for p in [&a, &b] {
            std::fs::write(p, "").unwrap();
        }
        // A second name for a's inode, below the mount to come: shows what reaches the disk.
        let under = dir.join("under");
        std::fs::hard_link(&a, &under).unwrap();
        let limit = 64 * 1024;
        let made = copies(
            limit,
            vec![
                (PathBuf::from("/etc/hosts"), &b"127.0.0.1\tlocalhost\n"[..]),
                (PathBuf::from("/other/hosts"), &b"second\n"[..]),
            ],
            staging,
        )
        .unwrap();
        assert_eq!(made.len(), 2);
        assert_eq!(made[0].0, Path::new("/etc/hosts"));
        crate::root::attach(made[0].1.as_fd(), &a).unwrap();
        crate::root::attach(made[1].1.as_fd(), &b).unwrap();
        assert_eq!(
            std::fs::read_to_string(&a).unwrap(),
            "127.0.0.1\tlocalhost\n"
        );
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "second\n");
        let md = std::fs::metadata(&a).unwrap();
        assert_eq!(md.permissions().mode() & 0o7777, 0o644, "umask ignored");

        // Writing far past the limit: refused with ENOSPC, at the limit, nothing below.
        let mut f = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
        let chunk = vec![b'x'; 4096];
        let mut written = 0u64;
        let err = loop {
            match f.write(&chunk) {
                Ok(n) => written += n as u64,
                Err(e) => break e,
            }
            assert!(
                written <= limit,
                "wrote {written} bytes past the {limit}-byte limit"
            );
        };
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        assert!(written > limit / 2, "only {written} bytes fit");
        assert_eq!(
            std::fs::metadata(&under).unwrap().len(),
            0,
            "the original grew"
        );
        // The limit is shared: the other copy has no room left either.
        let e = std::fs::OpenOptions::new()
            .append(true)
            .open(&b)
            .unwrap()
            .write_all(&chunk)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");

        // Content larger than the limit is an error naming the destination.
        let big = vec![0u8; 2 * limit as usize];
        let e = copies(
            limit,
            vec![(PathBuf::from("/etc/resolv.conf"), &big[..])],
            staging,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("/etc/resolv.conf") && e.to_string().contains("limit"),
            "{e}"
        );
        drop(f);
        for p in [&a, &b] {
            rustix::mount::unmount(p.as_path(), rustix::mount::UnmountFlags::DETACH).unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
