//! Operations on the container's root mount as a whole.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, CWD};
use rustix::mount::{MountPropagationFlags, UnmountFlags};

use crate::options::{MountAttrs, MOUNT_ATTR_RDONLY};
use crate::resolve::{open_in_root, Create};
use crate::sys::{attach_path, clone_tree, fs_instance, set_attrs};
use crate::{MountError, Result, Step};

/// Makes every mount in the caller's (new) mount namespace private, so nothing the container
/// mounts propagates back to the host and host mount events do not reach the container.
pub fn make_rprivate() -> Result<()> {
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| MountError::sys("make-rprivate", "/", e))
}

/// A detached copy of the tree at `path` (recursive: with its submounts).
pub fn clone(path: &Path, recursive: bool) -> Result<OwnedFd> {
    clone_tree(CWD, path, recursive)
}

/// Takes the detached mount `mnt` (with its submounts when recursive) out of any peer group. A
/// clone of a shared mount is a peer of the original: a mount made below one appears below the
/// other, so a clone made in the host's mount namespace and attached in a container's would let
/// the container mount onto the host. A container's mounts are private ([`make_rprivate`]); a
/// clone made for it elsewhere must be too.
pub fn make_private(mnt: BorrowedFd<'_>, what: &Path, recursive: bool) -> Result<()> {
    crate::sys::set_propagation(mnt, what, crate::options::Propagation::Private, recursive)
}

/// Makes the detached mount `mnt` idmapped through the user namespace `userns`: an on-disk id `k`
/// appears as whatever `k` maps to in `userns` (so files owned by host root look owned by
/// container root). Needs `CAP_SYS_ADMIN` over the filesystem and a filesystem that supports it.
pub fn idmap(
    mnt: BorrowedFd<'_>,
    what: &Path,
    userns: BorrowedFd<'_>,
    recursive: bool,
) -> Result<()> {
    set_attrs(mnt, what, MountAttrs::default(), recursive, Some(userns))
}

/// Sets or clears read-only on the mount `mnt` refers to (and its submounts when recursive).
pub fn set_readonly(
    mnt: BorrowedFd<'_>,
    what: &Path,
    readonly: bool,
    recursive: bool,
) -> Result<()> {
    let attrs = if readonly {
        MountAttrs::set(MOUNT_ATTR_RDONLY)
    } else {
        MountAttrs {
            set: 0,
            clr: MOUNT_ATTR_RDONLY,
        }
    };
    set_attrs(mnt, what, attrs, recursive, None)
}

/// Attaches a detached mount on top of `target` in the caller's mount namespace.
pub fn attach(mnt: BorrowedFd<'_>, target: &Path) -> Result<()> {
    attach_path(mnt, target)
}

/// Opens a directory as an `O_PATH` handle (the container root for [`crate::Mounter`]).
pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| MountError::sys("open", path, e))
}

/// Makes `root` the root of the caller's mount namespace with `pivot_root(".", ".")` and detaches
/// the old root, so no path to the host's tree remains. Ends with the cwd at the new `/`.
pub fn pivot_root(root: BorrowedFd<'_>) -> Result<()> {
    // The current root, which becomes the old root: held so that it alone, with the mounts below
    // it, is made private after the pivot (a path such as "." would name the new root, and
    // recursively reset the propagation the container's mounts asked for).
    let old = open_dir(Path::new("/"))?;
    rustix::process::fchdir(root).map_err(|e| MountError::sys("fchdir", "rootfs", e))?;
    rustix::process::pivot_root(".", ".")
        .map_err(|e| MountError::sys("pivot_root", "rootfs", e))?;
    // The old root is now mounted on top of the new one at "."; make it private before detaching
    // so the unmount does not propagate anywhere, then lazily detach it.
    crate::sys::set_propagation(
        std::os::fd::AsFd::as_fd(&old),
        Path::new("old root"),
        crate::options::Propagation::Private,
        true,
    )?;
    drop(old);
    rustix::mount::unmount(".", UnmountFlags::DETACH)
        .map_err(|e| MountError::sys("umount", "old root", e))?;
    rustix::process::chdir("/").map_err(|e| MountError::sys("chdir", "/", e))
}

/// Sets the propagation of the root mount (`/`), recursively when asked: after `pivot_root`
/// (see [`crate::plan::after_pivot`]).
pub fn set_root_propagation(
    propagation: crate::options::Propagation,
    recursive: bool,
) -> Result<()> {
    let root = open_dir(Path::new("/"))?;
    crate::sys::set_propagation(
        std::os::fd::AsFd::as_fd(&root),
        Path::new("/"),
        propagation,
        recursive,
    )
}

/// Makes the rootfs mount itself read-only (not the mounts below it).
pub fn root_readonly(root: BorrowedFd<'_>) -> Result<()> {
    set_readonly(root, Path::new("/"), true, false)
}

/// A fresh tmpfs, detached, that exists only as long as a mount or descriptor holds it, with an
/// `upper` directory (`mode`, and `owner` when given) and a `work` directory (0700) for an
/// overlay ([`overlay`], by `/proc/self/fd/N/upper` and `/proc/self/fd/N/work`): the upper
/// layer of a container whose changes go with it (`--rm`). Its pages are charged to the memory
/// cgroup of the processes writing them; nothing of it ever reaches a disk or a host path.
pub fn ephemeral_upper(mode: u32, owner: Option<(u32, u32)>, what: &Path) -> Result<OwnedFd> {
    let fs = fs_instance(
        "tmpfs",
        "gocker-rw",
        &[("mode".into(), Some("0700".into()))],
        MountAttrs::default(),
        what,
    )?;
    let inside = |d: &str| Path::new("(upper tmpfs)").join(d);
    for (d, m) in [("upper", mode), ("work", 0o700)] {
        rustix::fs::mkdirat(&fs, d, Mode::from_raw_mode(m))
            .map_err(|e| MountError::sys("mkdir", inside(d), e))?;
        // The umask may have taken bits off.
        rustix::fs::chmodat(&fs, d, Mode::from_raw_mode(m), rustix::fs::AtFlags::empty())
            .map_err(|e| MountError::sys("chmod", inside(d), e))?;
    }
    if let Some((u, g)) = owner {
        rustix::fs::chownat(
            &fs,
            "upper",
            Some(rustix::fs::Uid::from_raw(u)),
            Some(rustix::fs::Gid::from_raw(g)),
            rustix::fs::AtFlags::empty(),
        )
        .map_err(|e| MountError::sys("chown", inside("upper"), e))?;
    }
    Ok(fs)
}

/// `/proc/self/fd/N/upper` and `/proc/self/fd/N/work` of an [`ephemeral_upper`].
pub fn ephemeral_paths(fs: BorrowedFd<'_>) -> (PathBuf, PathBuf) {
    use std::os::fd::AsRawFd;
    let via = |d: &str| PathBuf::from(format!("/proc/self/fd/{}/{d}", fs.as_raw_fd()));
    (via("upper"), via("work"))
}

/// Puts a copy-on-write layer over the root mounted at `lower`, with its upper directory on a
/// fresh tmpfs that exists only in the caller's mount namespace ([`ephemeral_upper`]): the
/// container's writes never reach the directory under `lower`, nor any path on the host. Made in
/// the container's user namespace, so files are stored with the container's own credentials
/// (the mapped host ids), which is how a rootful container's root, seeing host root's files as
/// its own through an idmapped mount, is kept from leaving setuid-root files where host users
/// can run them (docs/security.md). For roots without [`overlay`]'s lower layers (`ring0
/// BUNDLE`). Returns the overlay, detached: the caller attaches it (see [`attach`]).
pub fn ephemeral_overlay(lower: &Path) -> Result<OwnedFd> {
    let upper_fs = ephemeral_upper(0o755, None, lower)?;
    let (upper, work) = ephemeral_paths(std::os::fd::AsFd::as_fd(&upper_fs));
    overlay(
        &[lower.to_owned()],
        Some((&upper, &work)),
        OverlayFlags { userxattr: true },
        lower,
    )
}

/// The `lowerdir` value of overlayfs for `lowers`, highest first and lowest last (overlayfs's
/// order), each path escaped (`\` before `:`, `,` and `\`), since the value is a list. Pure.
pub fn lowerdir_value(lowers: &[PathBuf]) -> String {
    lowers
        .iter()
        .map(|p| {
            let mut out = String::new();
            for c in p.display().to_string().chars() {
                if matches!(c, ':' | ',' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// How a copy-on-write root's overlay is mounted ([`overlay`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OverlayFlags {
    /// overlayfs's metadata in `user.overlay.*` xattrs (`userxattr`), which an unprivileged
    /// mounter in a user namespace must use; otherwise `trusted.overlay.*`.
    pub userxattr: bool,
}

/// The overlayfs options for a copy-on-write root ([`overlay`]): the lower layers, then
/// `upperdir` and `workdir` when there is an upper layer, then the [`OverlayFlags`]. One layer is
/// `lowerdir=PATH` (escaped); several are one `lowerdir+=PATH` each, highest first (Linux 6.8),
/// since `fsconfig` takes at most 256 bytes a value and an image has many layers. Pure.
pub fn overlay_options(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    flags: OverlayFlags,
) -> Vec<(String, Option<String>)> {
    let mut data: Vec<(String, Option<String>)> = match lowers {
        [one] => vec![(
            "lowerdir".into(),
            Some(lowerdir_value(std::slice::from_ref(one))),
        )],
        many => many
            .iter()
            .map(|l| ("lowerdir+".into(), Some(l.display().to_string())))
            .collect(),
    };
    if let Some((u, w)) = upper {
        data.push(("upperdir".into(), Some(u.display().to_string())));
        data.push(("workdir".into(), Some(w.display().to_string())));
    }
    if flags.userxattr {
        data.push(("userxattr".into(), None));
    }
    data
}

/// The longest path given to `fsconfig` as it is (its limit is 256 bytes a value, escapes
/// included); a longer one is given as `/proc/self/fd/N` of an `O_PATH` descriptor.
const FSCONFIG_PATH_MAX: usize = 200;

/// `path`, or `/proc/self/fd/N` of a descriptor opened on it (kept in `held`) when it is too
/// long for `fsconfig`.
fn short_path(path: &Path, held: &mut Vec<OwnedFd>) -> Result<PathBuf> {
    use std::os::fd::AsRawFd;
    if path.as_os_str().len() <= FSCONFIG_PATH_MAX {
        return Ok(path.to_owned());
    }
    let fd = open_dir(path)?;
    let short = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    held.push(fd);
    Ok(short)
}

/// A detached overlayfs over `lowers` (read-only directories, highest first and lowest last as
/// overlayfs lists them: an image's layers, or one `--rootfs` directory), with `upper` (upper
/// directory, work directory) when it is writable. A layer may be named `/proc/self/fd/N` for a
/// descriptor of the caller's: an idmapped detached clone (Linux 6.15 takes detached mounts as
/// layers), or a directory the caller could not reach by path; paths too long for `fsconfig` are
/// given that way. Nothing is written to any lower layer, ever: new and changed files go to the
/// upper directory, with the credentials of the writing process (docs/storage-roots.md). Errors
/// name `what` (the container's root) and the option the kernel refused. The caller attaches the
/// overlay (see [`attach`]).
pub fn overlay(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    flags: OverlayFlags,
    what: &Path,
) -> Result<OwnedFd> {
    if lowers.is_empty() {
        return Err(MountError::Invalid {
            dest: what.to_owned(),
            reason: "overlayfs root without a lower layer".into(),
        });
    }
    let mut held = Vec::new();
    let lowers = lowers
        .iter()
        .map(|l| short_path(l, &mut held))
        .collect::<Result<Vec<_>>>()?;
    let upper = match upper {
        Some((u, w)) => Some((short_path(u, &mut held)?, short_path(w, &mut held)?)),
        None => None,
    };
    let upper = upper.as_ref().map(|(u, w)| (u.as_path(), w.as_path()));
    let data = overlay_options(&lowers, upper, flags);
    fs_instance("overlay", "gocker-root", &data, MountAttrs::default(), what)
}

/// `fuse-overlayfs` (its path, when installed): for an unprivileged caller whose kernel refuses
/// overlayfs in a user namespace (before Linux 5.11, or an upper filesystem without user xattrs).
pub fn fuse_overlayfs_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/local/bin".into(), "/bin".into()])
        .map(|d| d.join("fuse-overlayfs"))
        .find(|p| p.is_file())
}

/// Mounts `fuse-overlayfs` (the binary `bin`) over `lowers` with `upper` at `target`, in the
/// caller's mount namespace (a process of its own serves it for as long as the mount lives).
pub fn fuse_overlay(
    bin: &Path,
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<()> {
    let esc = |p: &Path| lowerdir_value(&[p.to_owned()]);
    let mut opts = format!("lowerdir={}", lowerdir_value(lowers));
    if let Some((u, w)) = upper {
        opts.push_str(&format!(",upperdir={},workdir={}", esc(u), esc(w)));
    }
    let out = std::process::Command::new(bin)
        .arg("-o")
        .arg(&opts)
        .arg(target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .output()
        .map_err(|e| MountError::sys("spawn", bin, e))?;
    if !out.status.success() {
        return Err(MountError::Invalid {
            dest: target.to_owned(),
            reason: format!(
                "{} failed ({}): {}",
                bin.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// A detached new instance of `fstype` made by the calling process (so it belongs to the caller's
/// namespaces, e.g. an mqueue of the IPC namespace it has joined), for a premade mount at `dest`.
/// Mount attributes are left to whoever attaches it.
pub fn instance(fstype: &str, source: &str, dest: &Path) -> Result<OwnedFd> {
    fs_instance(fstype, source, &[], MountAttrs::default(), dest)
}

/// The mount targets of `steps` that lie in the rootfs itself, with what each must be: the
/// destinations of filesystems (directories) and binds (a directory or a file, as the source is),
/// leaving out those inside a filesystem that an earlier step mounts (a target under a `/dev`
/// tmpfs exists only once that tmpfs does, and is made there). Pure; see [`make_targets`].
/// `is_dir` tells whether a bind source is a directory.
pub fn rootfs_targets(steps: &[Step], is_dir: impl Fn(&Path) -> bool) -> Vec<(PathBuf, Create)> {
    let mut mounted: Vec<&Path> = Vec::new();
    let mut out = Vec::new();
    for s in steps {
        let (dest, kind) = match s {
            Step::Fs { dest, .. } => (dest, Create::Dir),
            Step::Bind { dest, source, .. } => (
                dest,
                if is_dir(source) {
                    Create::Dir
                } else {
                    Create::File
                },
            ),
            _ => continue,
        };
        let dest_rel = crate::resolve::relative(dest);
        if !mounted
            .iter()
            .any(|m| dest_rel != *m && dest_rel.starts_with(m))
            && !out.iter().any(|(d, _)| *d == dest_rel)
        {
            out.push((dest_rel.clone(), kind));
        }
        mounted.push(dest.strip_prefix("/").unwrap_or(dest));
    }
    out
}

/// Creates the mount targets of `steps` that lie in the rootfs ([`rootfs_targets`]) with the
/// caller's credentials, resolved inside `root` as every target is (`openat2(RESOLVE_IN_ROOT)`:
/// a symlink in the rootfs cannot lead outside it). For a privileged caller preparing a rootfs
/// that the container's own root cannot write (a rootful container's remapped root on a rootfs
/// that could not be idmapped). Returns the failures: whoever carries the steps out tries again
/// and reports them.
pub fn make_targets(root: BorrowedFd<'_>, steps: &[Step]) -> Vec<MountError> {
    let is_dir = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_dir());
    rootfs_targets(steps, is_dir)
        .into_iter()
        .filter_map(|(dest, kind)| open_in_root(root, &Path::new("/").join(dest), kind).err())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn fs(dest: &str) -> Step {
        Step::Fs {
            dest: dest.into(),
            fstype: "tmpfs".into(),
            source: "tmpfs".into(),
            attrs: MountAttrs::default(),
            data: Vec::new(),
            propagation: None,
            host_instance: None,
        }
    }
    fn bind(source: &str, dest: &str) -> Step {
        Step::Bind {
            source: source.into(),
            dest: dest.into(),
            recursive: false,
            attrs: MountAttrs::default(),
            propagation: None,
        }
    }

    #[test]
    fn overlay_layers_are_listed_highest_first_and_escaped() {
        let lowers = [PathBuf::from("/l/top"), PathBuf::from("/l/a:b,c\\d")];
        assert_eq!(lowerdir_value(&lowers), "/l/top:/l/a\\:b\\,c\\\\d");
        let opts = overlay_options(
            &lowers[..1],
            Some((Path::new("/s/root/upper"), Path::new("/s/root/work"))),
            OverlayFlags { userxattr: true },
        );
        let keys: Vec<_> = opts
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        assert_eq!(
            keys,
            [
                ("lowerdir", Some("/l/top")),
                ("upperdir", Some("/s/root/upper")),
                ("workdir", Some("/s/root/work")),
                ("userxattr", None),
            ]
        );
        // Read-only: the lowers alone; a privileged mounter keeps trusted.* xattrs.
        assert_eq!(
            overlay_options(&lowers[..1], None, OverlayFlags::default()).len(),
            1
        );
        // Several layers: one option each, highest first, unescaped.
        let opts = overlay_options(&lowers, None, OverlayFlags::default());
        assert_eq!(
            opts,
            [
                ("lowerdir+".to_string(), Some("/l/top".to_string())),
                ("lowerdir+".to_string(), Some("/l/a:b,c\\d".to_string())),
            ]
        );
    }

    #[test]
    fn an_overlay_of_many_layers_with_long_paths_shows_the_highest_and_writes_only_the_upper() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: mounting an overlay outside a user namespace needs root");
            return;
        }
        let base = std::env::temp_dir().join(format!("gocker-ovl-{}", std::process::id()));
        // A path longer than fsconfig takes as a value.
        let deep = base.join("d".repeat(120)).join("e".repeat(120));
        let layers: Vec<PathBuf> = ["top", "mid", "low"].iter().map(|l| deep.join(l)).collect();
        for (i, l) in layers.iter().enumerate() {
            std::fs::create_dir_all(l).unwrap();
            std::fs::write(l.join("f"), format!("{i}")).unwrap();
            std::fs::write(l.join(format!("only{i}")), "x").unwrap();
        }
        let (upper, work) = (base.join("upper"), base.join("work"));
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let ovl = overlay(
            &layers,
            Some((&upper, &work)),
            OverlayFlags::default(),
            Path::new("/test"),
        )
        .unwrap();
        let read = |name: &str| {
            let f = rustix::fs::openat(&ovl, name, OFlags::RDONLY, Mode::empty()).unwrap();
            let mut b = [0u8; 8];
            let n = rustix::io::read(&f, &mut b).unwrap();
            String::from_utf8_lossy(&b[..n]).into_owned()
        };
        assert_eq!(read("f"), "0");
        assert_eq!(read("only2"), "x");
        let w = rustix::fs::openat(
            &ovl,
            "new",
            OFlags::WRONLY | OFlags::CREATE,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        drop(w);
        assert!(upper.join("new").exists());
        assert!(layers.iter().all(|l| !l.join("new").exists()));
        drop(ovl);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn only_targets_outside_earlier_mounts_are_made_beforehand() {
        let steps = [
            fs("/proc"),
            fs("/dev"),
            fs("/dev/pts"),
            bind("/host/shm", "/dev/shm"),
            bind("/host/hosts", "/etc/hosts"),
            bind("/host/dir", "/data"),
            bind("/host/file", "/data/inner"),
            fs("/sys"),
            fs("/sys/fs/cgroup"),
            bind("/host/env", "/run/.containerenv"),
            bind("/host/dir", "/data"),
            fs("/devices"),
            Step::Symlink {
                target: "pts/ptmx".into(),
                link: "/dev/ptmx".into(),
            },
        ];
        let t = rootfs_targets(&steps, |p| p.ends_with("dir") || p.ends_with("shm"));
        let want: Vec<(PathBuf, Create)> = [
            ("proc", Create::Dir),
            ("dev", Create::Dir),
            ("etc/hosts", Create::File),
            ("data", Create::Dir),
            ("sys", Create::Dir),
            ("run/.containerenv", Create::File),
            ("devices", Create::Dir),
        ]
        .into_iter()
        .map(|(d, k)| (PathBuf::from(d), k))
        .collect();
        assert_eq!(t, want);
    }

    #[test]
    fn targets_are_made_inside_the_root() {
        let base = std::env::temp_dir().join(format!("gocker-targets-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(base.join("src")).unwrap();
        std::fs::write(base.join("file"), "x").unwrap();
        // A symlink in the rootfs that points at the host's directory stays inside the root.
        std::os::unix::fs::symlink(&base, root.join("escape")).unwrap();
        let inside = root.join(base.strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        let src = base.join("src").display().to_string();
        let file = base.join("file").display().to_string();
        let steps = [
            bind(&src, "/data/vol"),
            bind(&file, "/etc/hostname"),
            bind(&file, "/escape/planted"),
        ];
        let rfd = open_dir(&root).unwrap();
        let errors = make_targets(rfd.as_fd(), &steps);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(root.join("data/vol").is_dir());
        assert!(root.join("etc/hostname").is_file());
        assert!(!base.join("planted").exists());
        assert!(inside.join("planted").is_file());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
