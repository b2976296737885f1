//! A container's files: `gocker commit`, `cp`, `export` and `import`, with docker's names, flags
//! and output (docs/images.md, "Container files").
//!
//! - The container's root is reached one of two ways. Running: `/proc/<pid>/root` of its payload
//!   (rootless: from a child that joined the container's user namespace and is root there).
//!   Stopped: the overlay of its lower layers and upper directory, mounted detached
//!   (`fsopen`/`fsmount`, never attached anywhere) by host root, or rootless by a child in a new
//!   user and mount namespace with the container's id maps. Either way every path of the
//!   container is resolved from that root with `openat2(RESOLVE_IN_ROOT)`, so a symlink planted
//!   in the container (`/evil -> /etc`) resolves inside it and never reaches a host file.
//! - Writes into a stopped container go through that overlay into its upper directory (no lower
//!   layer is ever written). Rootful, the overlay is mounted without the idmapped layers ring0
//!   uses, so what it copies up keeps host ids: afterwards every entry of the upper directory
//!   owned by an id outside the container's range is given the mapped id (`fix_upper_owners`).
//! - `commit` packs the upper directory as an OCI layer (`gocker_storage::pack_layer`: overlayfs
//!   whiteouts back to `.wh.` entries, the `work` directory never included), and for a
//!   `--rootfs DIR` container DIR as the base layer, stored with gocker-storage.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, IsTerminal, Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use gocker_idmap::IdMaps;
use gocker_runtime::{ContainerState, StateStore, Status};
use gocker_storage::{
    media_types as mt, Digest, ImageRecord, LayerContext, PackOptions, Packer, Reference, Store,
    UnpackOptions,
};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use serde_json::{json, Value};

use crate::image_cmds;

// ---------------------------------------------------------------------------------------------
// Command line

/// `commit`, `cp`, `export`, `import`: flattened into gocker's top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum FsCommands {
    /// Create a new image from a container's changes (its upper directory as a new layer over its
    /// image, or over its --rootfs directory as the base layer). Prints the image id.
    #[command(after_help = image_cmds::STORE_HELP)]
    Commit(CommitArgs),
    /// Copy files between a container and the host: `gocker cp CONTAINER:SRC DEST` or
    /// `gocker cp SRC CONTAINER:DEST`; `-` as SRC reads a tar from stdin, as DEST writes one to
    /// stdout. Paths in the container are resolved inside its root (symlinks cannot leave it).
    Cp(CpArgs),
    /// Write a container's filesystem (its merged root) as a tar archive.
    Export(ExportArgs),
    /// Create a single-layer image from a tar archive (plain, gzip or zstd). Prints the image id.
    #[command(after_help = image_cmds::STORE_HELP)]
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Commit message (the history entry's comment).
    #[arg(short, long, value_name = "MESSAGE")]
    pub message: Option<String>,
    /// Author (e.g. "Jane Doe <jane@example.com>").
    #[arg(short, long, value_name = "AUTHOR")]
    pub author: Option<String>,
    /// Apply a Dockerfile instruction to the image config: CMD, ENTRYPOINT, ENV, WORKDIR, USER,
    /// LABEL, EXPOSE, STOPSIGNAL (repeatable).
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub change: Vec<String>,
    /// Accepted for docker compatibility; gocker does not pause the container (a running
    /// container's upper directory is read as it is).
    #[arg(short, long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub pause: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Archive mode: keep uid/gid (numeric) of the copied files.
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow a symlink given as SRC (inside the container: confined to its root).
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    #[arg(value_name = "SRC")]
    pub src: String,
    #[arg(value_name = "DEST")]
    pub dest: String,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the image config (as for commit).
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub change: Vec<String>,
    /// Commit message for the imported image.
    #[arg(short, long, value_name = "MESSAGE")]
    pub message: Option<String>,
    /// A tar file, or `-` for stdin.
    #[arg(value_name = "FILE|-")]
    pub file: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

/// Runs one of the commands; returns the exit code (0, or 125 for every gocker error).
pub fn main(c: FsCommands, debug: bool) -> i32 {
    let (what, r) = match c {
        FsCommands::Commit(a) => ("commit", commit(&a)),
        FsCommands::Cp(a) => ("cp", cp(&a)),
        FsCommands::Export(a) => ("export", export(&a)),
        FsCommands::Import(a) => ("import", import(&a)),
    };
    match r {
        Ok(()) => 0,
        Err(e) if crate::failure::is_broken_pipe(&e) => crate::failure::BROKEN_PIPE_EXIT,
        Err(e) => {
            if debug {
                eprintln!("gocker: {what}: {e:?}");
            } else {
                eprintln!("gocker: {what}: {e:#}");
            }
            125
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The container and its root

struct Ctr {
    st: ContainerState,
    dir: PathBuf,
    /// Running (or created): its payload's pid, whose `/proc/<pid>/root` is the root.
    pid: Option<i32>,
    /// The lower layers, highest first; `None` for a container without a copy-on-write root.
    lowers: Option<Vec<PathBuf>>,
    maps: IdMaps,
    rootless: bool,
}

impl Ctr {
    fn open(name: &str) -> Result<Ctr> {
        let store = StateStore::open(StateStore::default_root())
            .context("open the container state store")?;
        store.collect_stale();
        let st = store
            .lookup(name)
            .map_err(|_| anyhow!("No such container: {name}"))?;
        let dir = store.container_dir(&st.id);
        let alive = StateStore::monitor_alive(&st);
        let pid = match (st.status, st.pid) {
            (Status::Running | Status::Created, Some(p)) if alive => Some(p),
            (Status::Creating, _) => bail!("container {name} is being created: try again"),
            _ => None,
        };
        let cfg = store.load_config(&st.id).ok();
        let lowers = match &cfg {
            Some(c) => c.cow.as_ref().map(|cow| cow.layers(&st.rootfs)),
            // `--rm` containers keep no container.json; they all have a copy-on-write root.
            None => Some(vec![st.rootfs.clone()]),
        };
        let rootless = !rustix::process::geteuid().is_root();
        let maps = match (pid, &cfg) {
            (Some(p), _) if !rootless => {
                let r = |f: &str| fs::read_to_string(format!("/proc/{p}/{f}")).unwrap_or_default();
                IdMaps::from_proc(&r("uid_map"), &r("gid_map"), &r("setgroups"))
                    .with_context(|| format!("read the id maps of container {name}"))?
            }
            _ => {
                let saved = fs::read(dir.join("root-idmaps.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<IdMaps>(&b).ok());
                match (saved, cfg) {
                    (Some(m), _) => m,
                    (None, Some(c)) => c.idmaps,
                    (None, None) => bail!("container {name}: its id maps are not recorded"),
                }
            }
        };
        Ok(Ctr {
            st,
            dir,
            pid,
            lowers,
            maps,
            rootless,
        })
    }

    fn name(&self) -> &str {
        &self.st.name
    }

    fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
}

/// How ids seen by `stat` relate to the container's ids.
#[derive(Clone)]
enum Ids {
    /// Rootless, in the container's user namespace: the kernel shows the container's ids.
    Same,
    /// Host root: host ids of the container's range are translated, others (files of a lower
    /// layer, seen through the overlay as host root sees them) are the container's as they are.
    Map(IdMaps),
}

impl Ids {
    fn to_container(&self, uid: u32, gid: u32) -> (u32, u32) {
        match self {
            Ids::Same => (uid, gid),
            Ids::Map(m) => (
                inverse(&m.uids, uid).unwrap_or(uid),
                inverse(&m.gids, gid).unwrap_or(gid),
            ),
        }
    }
    fn to_host(&self, uid: u32, gid: u32) -> (u32, u32) {
        match self {
            Ids::Same => (uid, gid),
            Ids::Map(m) => (
                m.host_uid(uid).unwrap_or(uid),
                m.host_gid(gid).unwrap_or(gid),
            ),
        }
    }
}

fn inverse(maps: &[gocker_idmap::IdMap], host: u32) -> Option<u32> {
    maps.iter()
        .find(|m| host >= m.outside && host - m.outside < m.count)
        .map(|m| m.inside + (host - m.outside))
}

/// What the closure of [`with_root`] gets.
struct Root {
    /// The container's `/` (merged view), or its upper directory ([`View::Upper`]).
    fd: OwnedFd,
    ids: Ids,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    /// The container's `/` as it sees it.
    Merged { writable: bool },
    /// Its upper directory (commit).
    Upper,
}

/// Runs `f` with the container's root. Rootless, `f` runs in a forked child (in the container's
/// user namespace, root there): its error comes back as text, its output goes to the inherited
/// stdout and descriptors.
fn with_root(c: &Ctr, view: View, f: &mut dyn FnMut(&Root) -> Result<()>) -> Result<()> {
    if view != View::Upper && c.lowers.is_none() && c.pid.is_none() {
        bail!(
            "container {} has no copy-on-write root (an OCI bundle's root is its own directory)",
            c.name()
        );
    }
    if !c.rootless {
        let ids = Ids::Map(c.maps.clone());
        let fd = open_root(c, view)?;
        let r = f(&Root {
            fd,
            ids: ids.clone(),
        });
        if let (View::Merged { writable: true }, None) = (view, c.pid) {
            let up = open_dir(&c.upper())?;
            fix_upper_owners(up.as_fd(), &c.maps).with_context(|| {
                format!(
                    "give the container's ids to new files in {}",
                    c.upper().display()
                )
            })?;
        }
        return r;
    }
    in_child(c, view, f)
}

fn open_dir(p: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {}", p.display()))
}

/// The root as this process can open it (host root, or root in the container's user namespace).
fn open_root(c: &Ctr, view: View) -> Result<OwnedFd> {
    if view == View::Upper {
        return open_dir(&c.upper());
    }
    if let Some(pid) = c.pid {
        return open_dir(Path::new(&format!("/proc/{pid}/root")))
            .with_context(|| format!("the root of running container {}", c.name()));
    }
    let lowers = c.lowers.clone().unwrap_or_default();
    let writable = matches!(view, View::Merged { writable: true });
    overlay(c, &lowers, writable)
        .with_context(|| format!("mount the root of stopped container {}", c.name()))
}

/// A detached overlay of the container's layers and upper directory (read-only unless
/// `writable`), attached nowhere: it goes when its descriptor is closed.
fn overlay(c: &Ctr, lowers: &[PathBuf], writable: bool) -> Result<OwnedFd> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, FsMountFlags,
        FsOpenFlags, MountAttrFlags,
    };
    let upper = c.upper();
    let work = c.dir.join("work");
    fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    if !upper.is_dir() {
        bail!(
            "{}: the container's upper directory is missing",
            upper.display()
        );
    }
    let esc = |p: &Path| {
        let mut s = String::new();
        for ch in p.display().to_string().chars() {
            if matches!(ch, ':' | ',' | '\\') {
                s.push('\\');
            }
            s.push(ch);
        }
        s
    };
    let lowerdir = lowers.iter().map(|p| esc(p)).collect::<Vec<_>>().join(":");
    let fsfd = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).context("fsopen overlay")?;
    let set = |k: &str, v: &str| {
        fsconfig_set_string(fsfd.as_fd(), k, v).with_context(|| format!("overlay option {k}={v}"))
    };
    set("source", "gocker-cp")?;
    // fsconfig takes strings of at most 256 bytes: a list of several store paths is longer, so
    // each layer goes alone with `lowerdir+` (Linux 6.8); the list is for older kernels.
    let each = lowers
        .iter()
        .try_for_each(|l| fsconfig_set_string(fsfd.as_fd(), "lowerdir+", l.display().to_string()));
    if each.is_err() {
        set("lowerdir", &lowerdir)?;
    }
    set("upperdir", &upper.display().to_string())?;
    set("workdir", &work.display().to_string())?;
    if c.rootless {
        fsconfig_set_flag(fsfd.as_fd(), "userxattr").context("overlay option userxattr")?;
    }
    fsconfig_create(fsfd.as_fd()).context("create the overlay")?;
    let attrs = if writable {
        MountAttrFlags::empty()
    } else {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    };
    let mnt = fsmount(fsfd.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs).context("fsmount")?;
    // fsmount gives an O_PATH descriptor: reopen its root for reading directories.
    rustix::fs::openat(
        &mnt,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("open the overlay's root")
}

/// Rootless: run `f` in a child that is root in the container's user namespace.
fn in_child(c: &Ctr, view: View, f: &mut dyn FnMut(&Root) -> Result<()>) -> Result<()> {
    use gocker_ns::{Forked, Namespace, NamespaceSet};
    let (go_r, go_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let (res_r, res_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let userns = match c.pid {
        Some(pid) => Some(
            File::open(format!("/proc/{pid}/ns/user"))
                .with_context(|| format!("open the user namespace of container {}", c.name()))?,
        ),
        None => None,
    };
    let set = if userns.is_some() {
        NamespaceSet::EMPTY
    } else {
        NamespaceSet::EMPTY
            .with(Namespace::User)
            .with(Namespace::Mount)
    };
    // setgroups(2) is refused in a namespace that denies it (a single-id map).
    let allow_groups = match c.pid {
        Some(pid) => fs::read_to_string(format!("/proc/{pid}/setgroups"))
            .map(|s| s.trim() != "deny")
            .unwrap_or(false),
        None => !c.maps.deny_setgroups,
    };
    let _ = io::stdout().flush();
    // The CLI starts no threads, so the forked child may do anything before its _exit.
    // SAFETY: single-threaded caller (see above): no lock can be held by another thread.
    let forked = unsafe { gocker_ns::fork_into(set, None) }.context("fork")?;
    match forked {
        Forked::Child => {
            drop(go_w);
            drop(res_r);
            let r = (|| -> Result<()> {
                let mut b = [0u8; 1];
                if !matches!(rustix::io::read(&go_r, &mut b), Ok(1)) {
                    bail!("the parent could not write the id maps");
                }
                if let Some(ns) = &userns {
                    rustix::thread::move_into_link_name_space(
                        ns.as_fd(),
                        Some(rustix::thread::LinkNameSpaceType::User),
                    )
                    .context("join the container's user namespace")?;
                }
                become_root(allow_groups)?;
                let fd = open_root(c, view)?;
                f(&Root { fd, ids: Ids::Same })
            })();
            let _ = io::stdout().flush();
            let code = match r {
                Ok(()) => 0,
                Err(e) => {
                    let _ = rustix::io::write(&res_w, format!("{e:#}").as_bytes());
                    1
                }
            };
            // SAFETY: ends the forked child without running the parent's exit handlers twice.
            unsafe { libc::_exit(code) }
        }
        Forked::Parent { pid, pidfd: _ } => {
            drop(go_r);
            drop(res_w);
            let applied = if userns.is_none() {
                c.maps.apply(pid.as_raw_nonzero().get()).with_context(|| {
                    format!("write the id maps of a helper for container {}", c.name())
                })
            } else {
                Ok(())
            };
            if applied.is_ok() {
                let _ = rustix::io::write(&go_w, &[1]);
            }
            drop(go_w);
            let mut msg = Vec::new();
            let _ = File::from(res_r).read_to_end(&mut msg);
            let status = loop {
                match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
                    Err(Errno::INTR) => continue,
                    r => break r,
                }
            };
            applied?;
            match status {
                Ok(Some((_, s))) if s.exit_status() == Some(0) => Ok(()),
                _ if !msg.is_empty() => Err(anyhow!("{}", String::from_utf8_lossy(&msg))),
                _ => Err(anyhow!(
                    "the helper for container {} failed (status {status:?})",
                    c.name()
                )),
            }
        }
    }
}

fn become_root(setgroups: bool) -> Result<()> {
    // SAFETY: plain credential system calls on this process's only thread.
    let ok = unsafe {
        (!setgroups || libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) == 0)
            && libc::syscall(libc::SYS_setresgid, 0, 0, 0) == 0
            && libc::syscall(libc::SYS_setresuid, 0, 0, 0) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(anyhow!(
            "become root in the container's user namespace: {}",
            io::Error::last_os_error()
        ))
    }
}

/// Rootful, after writing through an overlay mounted without idmapped layers: every entry of the
/// upper directory owned by a host id outside the container's range (copied up from a lower
/// layer, or made by host root) gets the container's mapped id, as ring0's overlay would have
/// given it. Whiteouts (0:0 devices, overlayfs's own) are left alone.
fn fix_upper_owners(dir: BorrowedFd<'_>, maps: &IdMaps) -> Result<()> {
    let ids = Ids::Map(maps.clone());
    let in_range = |m: &[gocker_idmap::IdMap], id: u32| inverse(m, id).is_some();
    let fix = |at: BorrowedFd<'_>, name: &OsStr, st: &rustix::fs::Stat| -> Result<()> {
        if in_range(&maps.uids, st.st_uid) && in_range(&maps.gids, st.st_gid) {
            return Ok(());
        }
        let (u, g) = ids.to_host(st.st_uid, st.st_gid);
        rustix::fs::chownat(
            at,
            name,
            Some(rustix::fs::Uid::from_raw(u)),
            Some(rustix::fs::Gid::from_raw(g)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .with_context(|| format!("chown {:?}", name))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft != FileType::Symlink && st.st_mode & 0o6000 != 0 {
            rustix::fs::chmodat(
                at,
                name,
                Mode::from_raw_mode(st.st_mode & 0o7777),
                AtFlags::empty(),
            )
            .with_context(|| format!("chmod {:?}", name))?;
        }
        Ok(())
    };
    let st = rustix::fs::fstat(dir)?;
    fix(dir, OsStr::new("."), &st)?;
    walk(dir, &mut |at, name, st| fix(at, name, st))
}

/// Calls `f` for every entry below `dir` (depth first, never following symlinks).
fn walk(
    dir: BorrowedFd<'_>,
    f: &mut dyn FnMut(BorrowedFd<'_>, &OsStr, &rustix::fs::Stat) -> Result<()>,
) -> Result<()> {
    let mut names = Vec::new();
    for e in rustix::fs::Dir::read_from(dir)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsString::from(OsStr::from_bytes(n)));
        }
    }
    for n in names {
        let st = rustix::fs::statat(dir, &n, AtFlags::SYMLINK_NOFOLLOW)?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::CharacterDevice && st.st_rdev == 0 {
            continue;
        }
        f(dir, &n, &st)?;
        if ft == FileType::Directory {
            let sub = rustix::fs::openat(
                dir,
                &n,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            walk(sub.as_fd(), f)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Paths inside the container

/// `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: `..` and symlinks, absolute or relative,
/// resolve as if `root` were `/`. The kernel answers `EAGAIN` for a `..` when a mount or rename
/// raced with the lookup, and (seen with a detached overlay) may keep answering it: after a few
/// tries the same rules are applied component by component ([`walk_in_root`]).
fn open_in(root: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let p: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    for _ in 0..64 {
        match rustix::fs::openat2(
            root,
            p,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
            r => return r,
        }
    }
    walk_in_root(root, p, flags)
}

/// `RESOLVE_IN_ROOT` in user space: every component opened `O_PATH | O_NOFOLLOW` from the one
/// before; `..` goes back up the walked stack and never above `root`; a symlink's target is read
/// and walked the same way (absolute from `root`), at most 40 of them; the last component is
/// then opened with `flags` from its directory, not following it (its symlink was resolved).
fn walk_in_root(root: BorrowedFd<'_>, path: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let dup = |fd: BorrowedFd<'_>| {
        rustix::fs::openat(fd, ".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
    };
    let mut stack: Vec<OwnedFd> = vec![dup(root)?];
    let mut todo: Vec<OsString> = Vec::new();
    let push_path = |todo: &mut Vec<OsString>, p: &[u8]| {
        for c in p.split(|&b| b == b'/').rev() {
            if !c.is_empty() && c != b"." {
                todo.push(OsStr::from_bytes(c).to_os_string());
            }
        }
    };
    push_path(&mut todo, path.as_os_str().as_bytes());
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let cur = stack.last().expect("root stays").as_fd();
        let st = rustix::fs::statat(cur, &c, AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            links += 1;
            if links > 40 {
                return Err(Errno::LOOP);
            }
            let t = rustix::fs::readlinkat(cur, &c, Vec::new())?;
            let t = t.as_bytes();
            if t.first() == Some(&b'/') {
                stack.truncate(1);
            }
            push_path(&mut todo, t);
            continue;
        }
        let next = rustix::fs::openat(
            cur,
            &c,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        stack.push(next);
    }
    let last = stack.pop().expect("root stays");
    if flags.contains(OFlags::PATH) {
        if flags.contains(OFlags::DIRECTORY)
            && !rustix::fs::fstat(&last)
                .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory)
        {
            return Err(Errno::NOTDIR);
        }
        return Ok(last);
    }
    rustix::fs::openat(&last, ".", flags | OFlags::CLOEXEC, Mode::empty())
}

/// A path as given: its parent (relative, unresolved), last component, and docker's suffixes.
struct Split {
    parent: PathBuf,
    /// `None`: the path names a directory itself (`/`, `..`, `x/..`).
    name: Option<OsString>,
    /// Ends with `/.`: the contents of a directory.
    contents: bool,
    /// Ends with `/`.
    slash: bool,
}

fn split(path: &str) -> Split {
    let contents = path == "." || path.ends_with("/.");
    let slash = path.ends_with('/');
    let comps: Vec<Component> = Path::new(path)
        .components()
        .filter(|c| {
            !matches!(
                c,
                Component::RootDir | Component::CurDir | Component::Prefix(_)
            )
        })
        .collect();
    match comps.split_last() {
        Some((Component::Normal(n), rest)) if !contents => Split {
            parent: rest.iter().collect(),
            name: Some(n.to_os_string()),
            contents,
            slash,
        },
        _ => Split {
            parent: comps.iter().collect(),
            name: None,
            contents,
            slash,
        },
    }
}

fn relpath(path: &str) -> PathBuf {
    Path::new(path)
        .components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect()
}

/// A source resolved: a directory to pack, or an entry of a directory.
enum Src {
    Dir { fd: OwnedFd, name: String },
    Entry { parent: OwnedFd, name: OsString },
}

impl Src {
    fn is_dir(&self) -> bool {
        match self {
            Src::Dir { .. } => true,
            Src::Entry { parent, name } => {
                rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory)
                    .unwrap_or(false)
            }
        }
    }
    fn base(&self) -> String {
        match self {
            Src::Dir { name, .. } => name.clone(),
            Src::Entry { name, .. } => name.to_string_lossy().into_owned(),
        }
    }
}

/// Resolves `path` from `root` (the container's, confined; or the host's `/`). The last
/// component is not followed unless `follow` (then up to 40 links, each resolved in `root`).
fn resolve_src(root: BorrowedFd<'_>, path: &str, follow: bool, shown: &str) -> Result<(Src, bool)> {
    let mut path = path.to_string();
    let first = split(&path);
    let contents = first.contents;
    for _ in 0..40 {
        let s = split(&path);
        let Some(name) = s.name.clone() else {
            let fd = open_in(root, &relpath(&path), OFlags::RDONLY | OFlags::DIRECTORY)
                .map_err(|e| anyhow!("{shown}: {}", io::Error::from(e)))?;
            let name = Path::new(&path)
                .components()
                .rev()
                .find_map(|c| match c {
                    Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                    _ => None,
                })
                .unwrap_or_else(|| ".".into());
            return Ok((Src::Dir { fd, name }, contents));
        };
        let parent = open_in(root, &s.parent, OFlags::PATH | OFlags::DIRECTORY)
            .map_err(|e| anyhow!("{shown}: {}", io::Error::from(e)))?;
        let st = rustix::fs::statat(&parent, &name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| anyhow!("{shown}: {}", io::Error::from(e)))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::Symlink && follow {
            let t = rustix::fs::readlinkat(&parent, &name, Vec::new())?;
            let t = t.to_string_lossy().into_owned();
            path = if t.starts_with('/') {
                t
            } else {
                format!("{}/{t}", s.parent.display())
            };
            continue;
        }
        if s.slash && ft != FileType::Directory {
            bail!("{shown}: not a directory");
        }
        if ft == FileType::Directory {
            let fd = rustix::fs::openat(
                &parent,
                &name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| anyhow!("{shown}: {}", io::Error::from(e)))?;
            return Ok((
                Src::Dir {
                    fd,
                    name: name.to_string_lossy().into_owned(),
                },
                contents,
            ));
        }
        if contents {
            bail!("{shown}: not a directory");
        }
        return Ok((Src::Entry { parent, name }, false));
    }
    bail!("{shown}: too many levels of symbolic links")
}

/// Packs `src` into `tb`: as `top` (its contents directly when `top` is empty).
fn pack_src<W: Write>(
    tb: &mut tar::Builder<W>,
    src: &Src,
    top: &str,
    map: &dyn Fn(u32, u32) -> (u32, u32),
) -> Result<()> {
    let opts = PackOptions {
        overlay_whiteouts: false,
        one_file_system: false,
        map_ids: map,
    };
    let mut p = Packer::new(tb, &opts);
    match (src, top.is_empty()) {
        (Src::Dir { fd, .. }, true) => p.pack_dir_contents(fd.as_fd(), "")?,
        (Src::Dir { fd, .. }, false) => p.pack_dir_as(fd.as_fd(), top)?,
        (Src::Entry { parent, name }, _) => p.pack_entry(parent.as_fd(), name, top)?,
    }
    for n in &p.report.notes {
        tracing::info!("cp: {n}");
    }
    Ok(())
}

/// An anonymous temporary file (`O_TMPFILE`): gone when closed, whatever happens.
fn spool() -> Result<File> {
    let d = std::env::temp_dir();
    let fd = rustix::fs::open(
        &d,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .with_context(|| format!("create a temporary file in {}", d.display()))?;
    Ok(File::from(fd))
}

/// Copies a tar from `input` into `out`, with the ids `map` gives, refusing entries whose name
/// overlayfs or a layer would take as a whiteout (`.wh.*`). Returns the entries' names.
fn respool(input: impl Read, out: &mut File, map: &dyn Fn(u64, u64) -> (u64, u64)) -> Result<()> {
    let mut a = tar::Archive::new(input);
    let mut tb = tar::Builder::new(&mut *out);
    for e in a.entries().context("read the tar stream")? {
        let mut e = e.context("read the tar stream")?;
        let path = e.path_bytes().into_owned();
        check_name(&path)?;
        let mut h = e.header().clone();
        let (u, g) = map(h.uid().unwrap_or(0), h.gid().unwrap_or(0));
        h.set_uid(u);
        h.set_gid(g);
        if let Some(exts) = e.pax_extensions().ok().flatten() {
            let recs: Vec<(String, Vec<u8>)> = exts
                .flatten()
                .filter_map(|x| Some((x.key().ok()?.to_string(), x.value_bytes().to_vec())))
                .filter(|(k, _)| k.starts_with("SCHILY.xattr."))
                .collect();
            if !recs.is_empty() {
                tb.append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
            }
        }
        let link = e.link_name_bytes().map(|l| l.into_owned());
        match link {
            Some(l) => tb.append_link(&mut h, OsStr::from_bytes(&path), OsStr::from_bytes(&l))?,
            None => tb.append_data(&mut h, OsStr::from_bytes(&path), &mut e)?,
        }
    }
    tb.finish()?;
    Ok(())
}

fn check_name(path: &[u8]) -> Result<()> {
    let base = path
        .split(|&b| b == b'/')
        .rfind(|c| !c.is_empty())
        .unwrap_or(b"");
    if base.starts_with(b".wh.") {
        bail!(
            "{}: names starting with .wh. are overlayfs whiteouts in an image layer: refused",
            String::from_utf8_lossy(path)
        );
    }
    Ok(())
}

/// Extracts the tar in `spool` into the directory `dir` with gocker-storage's unpacker:
/// everything it creates is resolved inside `dir`, absolute and `..` names are refused.
fn extract(spool: &mut File, dir: BorrowedFd<'_>, keep_owner: bool, what: &str) -> Result<()> {
    spool.rewind()?;
    let ctx = LayerContext {
        image: what.to_string(),
        blob: "cp".into(),
        media_type: mt::OCI_LAYER_TAR.into(),
        expected_diff_id: None,
    };
    let opts = UnpackOptions {
        rootless: !keep_owner,
        xattr_whiteouts: false,
    };
    let at = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let r = gocker_storage::unpack_layer(io::BufReader::new(&mut *spool), &at, &ctx, &opts)
        .map_err(|e| match e {
            gocker_storage::StorageError::Unpack { entry, reason, .. } => {
                anyhow!("{entry}: {reason}")
            }
            e => anyhow!("{e}"),
        })?;
    for n in &r.notes {
        tracing::info!("cp: {n}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// cp

enum Loc {
    Host(String),
    Ctr(String, String),
}

fn parse_loc(s: &str) -> Loc {
    if s == "-" || s.starts_with('/') || s.starts_with('.') {
        return Loc::Host(s.to_string());
    }
    match s.split_once(':') {
        Some((c, p)) if !c.is_empty() && !c.contains('/') => Loc::Ctr(c.to_string(), p.to_string()),
        _ => Loc::Host(s.to_string()),
    }
}

fn cp(a: &CpArgs) -> Result<()> {
    match (parse_loc(&a.src), parse_loc(&a.dest)) {
        (Loc::Ctr(..), Loc::Ctr(..)) => bail!("copying between containers is not supported"),
        (Loc::Host(_), Loc::Host(_)) => {
            bail!("must specify at least one container source (CONTAINER:PATH)")
        }
        (Loc::Ctr(c, p), Loc::Host(h)) => cp_out(a, &c, &p, &h),
        (Loc::Host(h), Loc::Ctr(c, p)) => cp_in(a, &h, &c, &p),
    }
}

/// `gocker cp CONTAINER:SRC DEST`.
fn cp_out(a: &CpArgs, name: &str, src: &str, dest: &str) -> Result<()> {
    let c = Ctr::open(name)?;
    let shown = format!("{name}:{src}");
    if dest == "-" && io::stdout().is_terminal() {
        bail!("cowardly refusing to write a tar archive to a terminal");
    }
    with_root(&c, View::Merged { writable: false }, &mut |root| {
        let (s, contents) = resolve_src(root.fd.as_fd(), src, a.follow_link, &shown)?;
        let ids = root.ids.clone();
        let map = move |u, g| ids.to_container(u, g);
        if dest == "-" {
            let top = if contents { String::new() } else { s.base() };
            let out = io::stdout().lock();
            let mut tb = tar::Builder::new(io::BufWriter::new(out));
            pack_src(&mut tb, &s, &top, &map)?;
            tb.into_inner()?.flush()?;
            return Ok(());
        }
        let (dir, top) = host_target(dest, s.is_dir(), contents, &s.base())?;
        let mut sp = spool()?;
        {
            let mut tb = tar::Builder::new(&mut sp);
            pack_src(&mut tb, &s, &top, &map)?;
            tb.finish()?;
        }
        let dfd = open_dir(&dir)?;
        // On the host the files belong to the caller (docker's rule), whatever -a says.
        extract(&mut sp, dfd.as_fd(), false, &format!("copy of {shown}"))
            .with_context(|| format!("copy {shown} to {dest}"))
    })
}

/// Where on the host a copy goes: (existing directory, name of the top entry, "" for contents).
fn host_target(dest: &str, src_dir: bool, contents: bool, base: &str) -> Result<(PathBuf, String)> {
    let d = Path::new(dest);
    match fs::metadata(d) {
        Ok(m) if m.is_dir() => Ok((
            d.to_path_buf(),
            if contents {
                String::new()
            } else {
                base.to_string()
            },
        )),
        Ok(_) if src_dir => bail!("{dest}: cannot copy a directory to a file"),
        Ok(_) => Ok(parent_and_name(d)?),
        Err(_) if dest.ends_with('/') && !src_dir => {
            bail!("{dest}: no such directory")
        }
        Err(_) => {
            let (p, n) = parent_and_name(d)?;
            if !p.is_dir() {
                bail!("{}: no such directory", p.display());
            }
            Ok((p, n))
        }
    }
}

fn parent_and_name(d: &Path) -> Result<(PathBuf, String)> {
    let name = d
        .file_name()
        .ok_or_else(|| anyhow!("{}: not a file name", d.display()))?;
    let parent = match d.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_string_lossy().into_owned()))
}

/// `gocker cp SRC CONTAINER:DEST`.
fn cp_in(a: &CpArgs, src: &str, name: &str, dest: &str) -> Result<()> {
    let c = Ctr::open(name)?;
    let shown = format!("{name}:{dest}");
    // The host side first, as the caller: a tar of SRC (or stdin's), named as the destination
    // wants once we know what is there.
    let host = if src == "-" {
        None
    } else {
        let root = open_dir(Path::new("/"))?;
        let abs = if Path::new(src).is_absolute() {
            PathBuf::from(src)
        } else {
            std::env::current_dir()?.join(src)
        };
        let mut s = abs.display().to_string();
        if src.ends_with("/.") || src == "." {
            s.push_str("/.");
        } else if src.ends_with('/') {
            s.push('/');
        }
        Some(resolve_src(root.as_fd(), &s, a.follow_link, src)?)
    };
    let mut stdin_spool = None;
    if host.is_none() {
        let mut sp = spool()?;
        io::copy(&mut io::stdin().lock(), &mut sp).context("read the tar from stdin")?;
        stdin_spool = Some(sp);
    }
    let archive = a.archive;
    with_root(&c, View::Merged { writable: true }, &mut |root| {
        let ids = root.ids.clone();
        let map = move |u: u32, g: u32| {
            if archive {
                ids.to_host(u, g)
            } else {
                ids.to_host(0, 0)
            }
        };
        let rel = relpath(dest);
        let full = open_in(root.fd.as_fd(), &rel, OFlags::PATH);
        let is_dir = |fd: &OwnedFd| {
            rustix::fs::fstat(fd)
                .map(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory)
                .unwrap_or(false)
        };
        let mut sp = spool()?;
        let (dir, top) = match (&host, full) {
            (None, Ok(fd)) if is_dir(&fd) => (fd, String::new()),
            (None, _) => {
                bail!("{shown}: the destination of a tar stream must be an existing directory")
            }
            (Some((s, contents)), Ok(fd)) if is_dir(&fd) => {
                (fd, if *contents { String::new() } else { s.base() })
            }
            (Some((s, _)), Ok(_)) if s.is_dir() => {
                bail!("{shown}: cannot overwrite a non-directory with a directory")
            }
            (Some(_), Err(Errno::NOENT)) if dest.ends_with('/') => {
                bail!("{shown}: no such directory")
            }
            (Some(_), Ok(_)) | (Some(_), Err(Errno::NOENT)) => {
                let sp_ = split(dest);
                let Some(n) = sp_.name else {
                    bail!("{shown}: not a file name");
                };
                let p = open_in(
                    root.fd.as_fd(),
                    &sp_.parent,
                    OFlags::PATH | OFlags::DIRECTORY,
                )
                .map_err(|e| anyhow!("{name}:{}: {}", sp_.parent.display(), io::Error::from(e)))?;
                (p, n.to_string_lossy().into_owned())
            }
            (Some(_), Err(e)) => bail!("{shown}: {}", io::Error::from(e)),
        };
        match (&host, &mut stdin_spool) {
            (Some((s, _)), _) => {
                let mut tb = tar::Builder::new(&mut sp);
                pack_src(&mut tb, s, &top, &map)?;
                tb.finish()?;
                drop(tb);
                // The host's own names may not be whiteouts either.
                sp.rewind()?;
                let mut check = File::from(rustix::fs::open(
                    format!("/proc/self/fd/{}", sp.as_raw_fd()),
                    OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?);
                let mut a = tar::Archive::new(&mut check);
                for e in a.entries()? {
                    check_name(&e?.path_bytes())?;
                }
            }
            (None, Some(input)) => {
                input.rewind()?;
                let m = move |u: u64, g: u64| {
                    let (u, g) = map(u as u32, g as u32);
                    (u as u64, g as u64)
                };
                respool(&mut *input, &mut sp, &m)?;
            }
            (None, None) => unreachable!("stdin is spooled"),
        }
        let dfd = rustix::fs::openat(
            &dir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| anyhow!("{shown}: {}", io::Error::from(e)))?;
        extract(&mut sp, dfd.as_fd(), true, &format!("container {name}"))
            .with_context(|| format!("copy {src} to {shown}"))
    })
}

// ---------------------------------------------------------------------------------------------
// export

fn export(a: &ExportArgs) -> Result<()> {
    let c = Ctr::open(&a.container)?;
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(File::create(p).with_context(|| format!("create {}", p.display()))?),
        None => {
            if io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            Box::new(io::stdout().lock())
        }
    };
    let r = with_root(&c, View::Merged { writable: false }, &mut |root| {
        let ids = root.ids.clone();
        let map = move |u, g| ids.to_container(u, g);
        let opts = PackOptions {
            overlay_whiteouts: false,
            one_file_system: true,
            map_ids: &map,
        };
        let w = io::BufWriter::new(&mut out);
        let (mut w, rep) = gocker_storage::pack_layer(root.fd.as_fd(), w, &opts)
            .with_context(|| format!("export container {}", a.container))?;
        w.flush()?;
        for n in rep.notes {
            tracing::info!("export: {n}");
        }
        Ok(())
    });
    if r.is_err() {
        if let Some(p) = &a.output {
            let _ = fs::remove_file(p);
        }
    }
    r
}

// ---------------------------------------------------------------------------------------------
// commit and import: images

fn open_store() -> Result<Store> {
    use std::os::unix::fs::PermissionsExt;
    let d = image_cmds::store_dir();
    let s = Store::open(&d).with_context(|| format!("open the image store {}", d.display()))?;
    let _ = fs::set_permissions(&d, fs::Permissions::from_mode(0o700));
    Ok(s)
}

/// The image (reference) whose config digest is `id`.
fn image_by_id(store: &Store, id: &str) -> Option<Reference> {
    store.refs().ok()?.into_iter().find_map(|(r, _)| {
        let img = store.image(&r).ok()?;
        (img.config_digest().ok()?.to_string() == id).then_some(r)
    })
}

/// The image a container runs on: recorded in its state directory, or the image whose layer
/// directories are its lowers.
fn parent_image(store: &Store, c: &Ctr) -> Result<Option<Reference>> {
    // The run path records the image id in the state directory, or in the spec's annotations.
    let annotated = fs::read(c.dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| {
            v["annotations"]["io.gocker.image.id"]
                .as_str()
                .map(String::from)
        });
    let recorded = fs::read_to_string(c.dir.join(image_cmds::CONTAINER_IMAGE_FILE)).ok();
    if let Some(id) = recorded.or(annotated) {
        let id = id.trim();
        return image_by_id(store, id).map(Some).ok_or_else(|| {
            anyhow!(
                "container {} uses image {id}, which is no longer in the store",
                c.name()
            )
        });
    }
    let lowers = c.lowers.clone().unwrap_or_default();
    let layers_root = store.root().join("layers/sha256");
    if !lowers.iter().all(|l| l.starts_with(&layers_root)) || lowers.is_empty() {
        return Ok(None);
    }
    for (r, _) in store.refs()? {
        let Ok(img) = store.image(&r) else { continue };
        let mut dirs: Vec<PathBuf> = img
            .config
            .rootfs()
            .diff_ids()
            .iter()
            .filter_map(|d| Digest::parse(d).ok())
            .map(|d| store.layer_dir(&d))
            .collect();
        dirs.reverse();
        if dirs == lowers || dirs.first() == lowers.first() {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// RFC 3339 UTC time of now.
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339(secs)
}

/// RFC 3339 UTC time of `secs` since the epoch.
pub(crate) fn rfc3339(secs: i64) -> String {
    (time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(secs))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// A Dockerfile instruction's argument list: a JSON array, or the shell form.
fn exec_form(rest: &str) -> Vec<String> {
    if let Ok(v) = serde_json::from_str::<Vec<String>>(rest) {
        return v;
    }
    vec!["/bin/sh".into(), "-c".into(), rest.to_string()]
}

/// Applies `-c` instructions to the image config's `config` object.
fn apply_changes(cfg: &mut serde_json::Map<String, Value>, changes: &[String]) -> Result<()> {
    for ch in changes {
        let ch = ch.trim();
        let (ins, rest) = ch.split_once(char::is_whitespace).unwrap_or((ch, ""));
        let rest = rest.trim();
        match ins.to_ascii_uppercase().as_str() {
            "CMD" => {
                cfg.insert("Cmd".into(), json!(exec_form(rest)));
            }
            "ENTRYPOINT" => {
                cfg.insert("Entrypoint".into(), json!(exec_form(rest)));
            }
            "ENV" => {
                let (k, v) = match rest.split_once('=') {
                    Some((k, v)) if !k.contains(char::is_whitespace) => (k, v),
                    _ => rest
                        .split_once(char::is_whitespace)
                        .ok_or_else(|| anyhow!("--change {ch:?}: ENV needs KEY=VALUE"))?,
                };
                let v = v.trim().trim_matches('"');
                let mut env: Vec<String> = cfg
                    .get("Env")
                    .and_then(|e| serde_json::from_value(e.clone()).ok())
                    .unwrap_or_default();
                let kv = format!("{}={v}", k.trim());
                match env.iter_mut().find(|e| e.split('=').next() == Some(k.trim())) {
                    Some(slot) => *slot = kv,
                    None => env.push(kv),
                }
                cfg.insert("Env".into(), json!(env));
            }
            "WORKDIR" if !rest.is_empty() => {
                cfg.insert("WorkingDir".into(), json!(rest));
            }
            "USER" if !rest.is_empty() => {
                cfg.insert("User".into(), json!(rest));
            }
            "STOPSIGNAL" if !rest.is_empty() => {
                // As docker's builder: a name or number ParseSignal takes, kept as written.
                if crate::signals::parse_signal(rest).is_none() {
                    bail!("--change {ch:?}: invalid signal {rest:?}");
                }
                cfg.insert("StopSignal".into(), json!(rest));
            }
            "LABEL" => {
                let (k, v) = rest
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--change {ch:?}: LABEL needs KEY=VALUE"))?;
                let labels = cfg.entry("Labels").or_insert_with(|| json!({}));
                if !labels.is_object() {
                    *labels = json!({});
                }
                labels[k.trim()] = json!(v.trim().trim_matches('"'));
            }
            "EXPOSE" if !rest.is_empty() => {
                let ports = cfg.entry("ExposedPorts").or_insert_with(|| json!({}));
                if !ports.is_object() {
                    *ports = json!({});
                }
                for p in rest.split_whitespace() {
                    let p = if p.contains('/') {
                        p.to_string()
                    } else {
                        format!("{p}/tcp")
                    };
                    ports[p] = json!({});
                }
            }
            _ => bail!(
                "--change {ch:?}: expected CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE or STOPSIGNAL with an argument"
            ),
        }
    }
    Ok(())
}

/// Stores config and manifest for `layers` (descriptors, lowest first) and tags the image
/// `name` (default `localhost/<kind>:<short id>`, since every image here has a name). Returns
/// the image id.
fn store_image(
    store: &Store,
    mut config: Value,
    layers: Vec<Value>,
    name: Option<&str>,
    kind: &str,
) -> Result<String> {
    let image = name.unwrap_or(kind).to_string();
    let cfg_bytes = serde_json::to_vec(&config)?;
    let cfg_digest = store.put_blob_bytes(&image, None, &cfg_bytes)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_MANIFEST,
        "config": {
            "mediaType": mt::OCI_CONFIG,
            "digest": cfg_digest.to_string(),
            "size": cfg_bytes.len(),
        },
        "layers": layers,
    });
    let m_bytes = serde_json::to_vec(&manifest)?;
    let m_digest = store.put_blob_bytes(&image, None, &m_bytes)?;
    let reference = match name {
        Some(n) => Reference::parse(n).map_err(|e| anyhow!("invalid reference format: {e}"))?,
        None => Reference::parse(&format!("localhost/{kind}:{}", &cfg_digest.hex()[..12]))?,
    };
    if reference.digest().is_some() {
        bail!("{image}: refusing to create a reference with a digest");
    }
    // The layers ready for `run`, unpacked for this user's mode.
    let opts = UnpackOptions::for_current_user();
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for (l, d) in layers.iter().zip(&diff_ids) {
        let blob = Digest::parse(l["digest"].as_str().unwrap_or_default())?;
        let mtype = l["mediaType"].as_str().unwrap_or(mt::OCI_LAYER_GZIP);
        store
            .unpack_blob(&image, &blob, mtype, &Digest::parse(d)?, &opts)
            .with_context(|| format!("unpack layer {blob} of {image}"))?;
    }
    store.set_ref(
        &reference,
        ImageRecord {
            manifest: m_digest,
            media_type: mt::OCI_MANIFEST.into(),
            index: None,
        },
    )?;
    config = Value::Null;
    let _ = config;
    Ok(cfg_digest.to_string())
}

fn layer_descriptor(l: &gocker_storage::StoredLayer) -> Value {
    json!({
        "mediaType": mt::OCI_LAYER_GZIP,
        "digest": l.blob.to_string(),
        "size": l.size,
    })
}

fn commit(a: &CommitArgs) -> Result<()> {
    let c = Ctr::open(&a.container)?;
    if c.lowers.is_none() {
        bail!(
            "container {} has no copy-on-write root: nothing to commit",
            a.container
        );
    }
    let store = open_store()?;
    let _lock = store.lock_shared()?;
    let image_name = a.repository.as_deref();
    let parent = parent_image(&store, &c)?;
    let base_dir = match &parent {
        None => Some(c.st.rootfs.clone()),
        Some(_) => None,
    };
    // Pack as the container's root: the upper directory (and the --rootfs DIR) into spools.
    let mut upper_sp = spool()?;
    let mut base_sp = match base_dir {
        Some(_) => Some(spool()?),
        None => None,
    };
    with_root(&c, View::Upper, &mut |root| {
        let ids = root.ids.clone();
        let map = move |u, g| ids.to_container(u, g);
        let opts = PackOptions {
            overlay_whiteouts: true,
            one_file_system: false,
            map_ids: &map,
        };
        gocker_storage::pack_layer(root.fd.as_fd(), &mut upper_sp, &opts)
            .map_err(|e| anyhow!("pack the changes of container {}: {e}", a.container))?;
        if let (Some(dir), Some(sp)) = (&base_dir, base_sp.as_mut()) {
            let fd = open_dir(dir)?;
            let raw = |u, g| (u, g);
            let opts = PackOptions {
                overlay_whiteouts: false,
                one_file_system: false,
                map_ids: &raw,
            };
            gocker_storage::pack_layer(fd.as_fd(), sp, &opts)
                .map_err(|e| anyhow!("pack the root directory {}: {e}", dir.display()))?;
        }
        Ok(())
    })?;
    let image = image_name.unwrap_or("commit").to_string();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let mut history = Vec::new();
    let mut config = match &parent {
        Some(r) => {
            let img = store.image(r)?;
            for l in img.manifest.layers() {
                layers.push(serde_json::to_value(l)?);
            }
            serde_json::to_value(&img.config)?
        }
        None => {
            let spec: Value = fs::read(c.dir.join("config.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            let env = spec["process"]["env"].clone();
            json!({
                "architecture": host_arch(),
                "os": "linux",
                "config": {
                    "Env": if env.is_array() { env } else { json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]) },
                    "Cmd": c.st.command,
                },
                "rootfs": {"type": "layers", "diff_ids": []},
            })
        }
    };
    if let Some(dir) = &base_dir {
        let sp = base_sp.as_mut().expect("spooled");
        sp.rewind()?;
        let l = gocker_storage::store_layer(&store, &image, &mut *sp)?;
        layers.push(layer_descriptor(&l));
        diff_ids.push(l.diff_id.to_string());
        history.push(json!({
            "created": now_rfc3339(),
            "created_by": format!("gocker commit: the root directory {}", dir.display()),
        }));
    }
    upper_sp.rewind()?;
    let l = gocker_storage::store_layer(&store, &image, &mut upper_sp)?;
    layers.push(layer_descriptor(&l));
    diff_ids.push(l.diff_id.to_string());
    let mut h = json!({
        "created": now_rfc3339(),
        "created_by": format!("gocker commit {}", c.st.command.join(" ")),
    });
    if let Some(m) = &a.message {
        h["comment"] = json!(m);
    }
    if let Some(au) = &a.author {
        h["author"] = json!(au);
    }
    history.push(h);
    let obj = config
        .as_object_mut()
        .ok_or_else(|| anyhow!("the parent image's config is not an object"))?;
    obj.insert("created".into(), json!(now_rfc3339()));
    if let Some(au) = &a.author {
        obj.insert("author".into(), json!(au));
    }
    let inner = obj.entry("config").or_insert_with(|| json!({}));
    if !inner.is_object() {
        *inner = json!({});
    }
    apply_changes(inner.as_object_mut().expect("object"), &a.change)?;
    let rootfs = obj
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    let ids = rootfs["diff_ids"]
        .as_array_mut()
        .ok_or_else(|| anyhow!("parent config without rootfs.diff_ids"))?;
    ids.extend(diff_ids.into_iter().map(Value::String));
    let hist = obj.entry("history").or_insert_with(|| json!([]));
    if let Some(hv) = hist.as_array_mut() {
        hv.extend(history);
    }
    let id = store_image(&store, config, layers, image_name, "commit")?;
    println!("{id}");
    Ok(())
}

fn import(a: &ImportArgs) -> Result<()> {
    // The changes first: a refused one stores nothing.
    let mut inner = serde_json::Map::new();
    apply_changes(&mut inner, &a.change)?;
    let store = open_store()?;
    let _lock = store.lock_shared()?;
    let image = a.repository.clone().unwrap_or_else(|| "import".into());
    let what = if a.file == "-" {
        "stdin".to_string()
    } else {
        a.file.clone()
    };
    let mut input: File = if a.file == "-" {
        let mut sp = spool()?;
        io::copy(&mut io::stdin().lock(), &mut sp).context("read the tar from stdin")?;
        sp.rewind()?;
        sp
    } else {
        File::open(&a.file).with_context(|| format!("open {}", a.file))?
    };
    let mut head = [0u8; 4];
    let n = input.read(&mut head)?;
    input.rewind()?;
    if n == 0 {
        bail!("{what}: empty archive");
    }
    let reader: Box<dyn Read> = match gocker_storage::Compression::from_magic(&head[..n]) {
        gocker_storage::Compression::Gzip => {
            Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(input)))
        }
        gocker_storage::Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(input)?),
        gocker_storage::Compression::None => Box::new(io::BufReader::new(input)),
    };
    let l = gocker_storage::store_layer(&store, &image, reader)
        .with_context(|| format!("read {what}"))?;
    // Refuse a hostile tar now (absolute or `..` names, links out of the layer), naming the
    // entry: the unpacker is the judge, and the layer is then ready for `run`.
    let opts = UnpackOptions::for_current_user();
    if let Err(e) = store.unpack_blob(&image, &l.blob, mt::OCI_LAYER_GZIP, &l.diff_id, &opts) {
        let referenced = store.list_images().map(|imgs| {
            imgs.iter().any(|s| {
                store
                    .image(&Reference::parse(&s.reference).expect("stored reference"))
                    .map(|i| i.layer_digests().unwrap_or_default().contains(&l.blob))
                    .unwrap_or(false)
            })
        });
        if referenced.ok() == Some(false) {
            let _ = fs::remove_file(store.blob_path(&l.blob));
        }
        return Err(anyhow!("{e}").context(format!("import {what}")));
    }
    let config = json!({
        "architecture": host_arch(),
        "os": "linux",
        "created": now_rfc3339(),
        "config": inner,
        "rootfs": {"type": "layers", "diff_ids": [l.diff_id.to_string()]},
        "history": [{
            "created": now_rfc3339(),
            "created_by": format!("gocker import {what}"),
            "comment": a.message.clone().unwrap_or_else(|| format!("Imported from {what}")),
        }],
    });
    let id = store_image(
        &store,
        config,
        vec![layer_descriptor(&l)],
        a.repository.as_deref(),
        "import",
    )?;
    println!("{id}");
    Ok(())
}

/// The label of the default image naming the rootfs directory it was made from.
pub(crate) const ROOTFS_PATH_LABEL: &str = "io.gocker.rootfs.path";

/// `gocker rootfs build`'s image (docs/images.md, "The default image"): the provisioned rootfs
/// `dir` as a single-layer image named `image:tag` and `image:latest`, like `import` of a tar of
/// it (gocker-storage's packer, every top-level entry but `skip`, gocker's build marker). Rootless,
/// the caller's files are written as the container's root (0:0), as a container sees them.
/// Idempotent: when `image:tag` is already the image of this build (the same `labels`, which
/// name the directory and its build time), only `latest` is pointed at it again. Returns the image
/// id and whether it was made now.
pub(crate) fn register_rootfs(
    dir: &Path,
    skip: &str,
    image: &str,
    tag: &str,
    labels: &serde_json::Map<String, Value>,
    created: &str,
) -> Result<(String, bool)> {
    let store = open_store()?;
    let _lock = store.lock_shared()?;
    let named = format!("{image}:{tag}");
    let latest = Reference::parse(&format!("{image}:latest"))?;
    let reference =
        Reference::parse(&named).map_err(|e| anyhow!("invalid reference format: {e}"))?;
    if let Ok(img) = store.image(&reference) {
        let same = serde_json::to_value(&img.config)
            .ok()
            .is_some_and(|c| c["config"]["Labels"].as_object() == Some(labels));
        if same && img.layer_digests().is_ok_and(|l| l.len() == 1) {
            let record = store.resolve(&reference)?;
            if store.resolve(&latest).ok().map(|r| r.manifest) != Some(record.manifest.clone()) {
                store.set_ref(&latest, record)?;
            }
            return Ok((img.config_digest()?.to_string(), false));
        }
    }
    let fd = open_dir(dir)?;
    let (uid, gid) = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    let rootless = uid != 0;
    let map = move |u: u32, g: u32| {
        if rootless {
            (if u == uid { 0 } else { u }, if g == gid { 0 } else { g })
        } else {
            (u, g)
        }
    };
    let opts = PackOptions {
        overlay_whiteouts: false,
        one_file_system: false,
        map_ids: &map,
    };
    let mut sp = spool()?;
    {
        let mut tb = tar::Builder::new(&mut sp);
        tb.mode(tar::HeaderMode::Complete);
        let mut p = Packer::new(&mut tb, &opts);
        let mut names: Vec<OsString> = fs::read_dir(dir)
            .with_context(|| format!("read {}", dir.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .with_context(|| format!("read {}", dir.display()))?;
        names.retain(|n| n != skip);
        names.sort();
        for n in &names {
            let Some(tar_name) = n.to_str() else {
                eprintln!(
                    "gocker: {}: a name that is not UTF-8, left out of the image",
                    dir.join(n).display()
                );
                continue;
            };
            p.pack_entry(fd.as_fd(), n, tar_name)
                .map_err(|e| anyhow!("pack the rootfs {}: {e}", dir.display()))?;
        }
        for note in &p.report.notes {
            eprintln!("gocker: {}: {note}", dir.display());
        }
        tb.finish().context("write the layer tar")?;
    }
    sp.rewind()?;
    let l = gocker_storage::store_layer(&store, &named, &mut sp)?;
    let config = json!({
        "architecture": host_arch(),
        "os": "linux",
        "created": created,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [l.diff_id.to_string()]},
        "history": [{
            "created": created,
            "created_by": format!("gocker rootfs build: {}", dir.display()),
        }],
    });
    let id = store_image(
        &store,
        config,
        vec![layer_descriptor(&l)],
        Some(&named),
        "rootfs",
    )?;
    store.set_ref(&latest, store.resolve(&reference)?)?;
    Ok((id, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_split_like_docker() {
        assert!(matches!(parse_loc("c:/x"), Loc::Ctr(c, p) if c == "c" && p == "/x"));
        assert!(matches!(parse_loc("./a:b"), Loc::Host(_)));
        assert!(matches!(parse_loc("/a:b"), Loc::Host(_)));
        assert!(matches!(parse_loc("-"), Loc::Host(_)));
        assert!(matches!(parse_loc("dir/a:b"), Loc::Host(_)));
        let s = split("/etc/");
        assert_eq!(s.name.as_deref(), Some(OsStr::new("etc")));
        assert!(s.slash && !s.contents);
        let s = split("/etc/.");
        assert!(s.contents && s.name.is_none());
        assert!(split("/").name.is_none());
    }

    #[test]
    fn changes_edit_the_config() {
        let mut c = serde_json::Map::new();
        apply_changes(
            &mut c,
            &[
                "CMD [\"/bin/sh\",\"-c\",\"id\"]".into(),
                "ENV A=1".into(),
                "ENV A=2".into(),
                "WORKDIR /srv".into(),
                "USER nobody".into(),
                "ENTRYPOINT echo hi".into(),
            ],
        )
        .unwrap();
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "id"]));
        assert_eq!(c["Env"], json!(["A=2"]));
        assert_eq!(c["WorkingDir"], json!("/srv"));
        assert_eq!(c["User"], json!("nobody"));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "echo hi"]));
        assert!(apply_changes(&mut c, &["RUN x".into()]).is_err());
    }

    #[test]
    fn rfc3339_has_the_right_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T');
    }
}
