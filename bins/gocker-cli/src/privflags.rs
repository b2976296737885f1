//! `run --device HOST[:CONTAINER[:PERMS]]` and `run --privileged`, as docker's (docs/cli.md).
//!
//! A device is the host's node, checked here (a path that is missing or not a character or block
//! device is refused, naming it). As root it becomes an OCI `linux.devices` entry, which the
//! runtime makes with `mknod` (owned by the container's ids, the host's permission bits); a user
//! namespace cannot create device nodes, so rootless it is a bind mount of the host's node, as
//! runc and crun do for rootless containers (then the host's owner and mode apply, i.e. your own
//! access to the device).
//!
//! `--privileged`: every capability (in the container's user namespace: rootless, the
//! privileges of that namespace only, never the host's), no seccomp filter, the host's devices
//! (as `--device` each), and `/sys` and `/proc` writable (no read-only mount, masked or read-only
//! paths).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceBuilder, LinuxDeviceType, Spec};

use crate::failure::{usage, Failure};

/// One host device node: its type, number, permission bits and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostDevice {
    pub host: PathBuf,
    pub dest: PathBuf,
    pub kind: LinuxDeviceType,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// `HOST[:CONTAINER[:PERMS]]` as docker splits it: a second part that is a permission string
/// (`r`, `w`, `m` in any order) is the permissions, else the container path.
pub(crate) fn parse_device(v: &str) -> Result<(PathBuf, PathBuf, String), Failure> {
    let bad = |why: &str| usage(format!("--device {v:?}: {why}"));
    let perms_like =
        |p: &str| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    let parts: Vec<&str> = v.split(':').collect();
    let (host, dest, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if perms_like(p) => (*h, *h, *p),
        [h, d] => (*h, *d, "rwm"),
        [h, d, p] => (*h, *d, *p),
        _ => return Err(bad("expected HOST[:CONTAINER[:PERMISSIONS]]")),
    };
    if host.is_empty() || !host.starts_with('/') {
        return Err(bad("the host path must be absolute"));
    }
    if !dest.starts_with('/') {
        return Err(bad("the container path must be absolute"));
    }
    if Path::new(dest)
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(bad("the container path may not contain \"..\""));
    }
    if !perms_like(perms) {
        return Err(bad("permissions are a combination of r, w and m"));
    }
    // No silent no-op: cgroup v2 restricts device access only through an eBPF program, which
    // gocker does not load, so read-only or write-only access cannot be enforced. `m` (mknod)
    // is never possible in the container's user namespace, so leaving it out changes nothing.
    if !(perms.contains('r') && perms.contains('w')) {
        return Err(bad(
            "gocker cannot limit a device to reading or writing (cgroup v2 controls device access only through an eBPF program, which gocker does not load): give rw or rwm",
        ));
    }
    Ok((host.into(), dest.into(), perms.into()))
}

/// The host's device node at `host` (symlinks followed, as docker's), for `dest`. A directory
/// gives every device below it, at the same place below `dest`.
pub(crate) fn host_devices(host: &Path, dest: &Path) -> Result<Vec<HostDevice>, Failure> {
    let st = rustix::fs::stat(host).map_err(|e| {
        usage(format!(
            "--device {}: no such device on the host ({e})",
            host.display()
        ))
    })?;
    let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
    if ft == rustix::fs::FileType::Directory {
        let mut out = Vec::new();
        walk(host, &mut |p| {
            let rel = p.strip_prefix(host).unwrap_or(p);
            if let Some(d) = node(p, &dest.join(rel)) {
                out.push(d);
            }
        });
        if out.is_empty() {
            return Err(usage(format!(
                "--device {}: the directory holds no character or block device",
                host.display()
            )));
        }
        return Ok(out);
    }
    node(host, dest).map(|d| vec![d]).ok_or_else(|| {
        usage(format!(
            "--device {}: not a character or block device",
            host.display()
        ))
    })
}

/// The device node at `path` (not following a last symlink when walking), if it is one.
fn node(path: &Path, dest: &Path) -> Option<HostDevice> {
    let st = rustix::fs::stat(path).ok()?;
    let kind = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
        rustix::fs::FileType::CharacterDevice => LinuxDeviceType::C,
        rustix::fs::FileType::BlockDevice => LinuxDeviceType::B,
        _ => return None,
    };
    let rdev = st.st_rdev;
    Some(HostDevice {
        host: path.to_owned(),
        dest: dest.to_owned(),
        kind,
        major: u64::from(rustix::fs::major(rdev)),
        minor: u64::from(rustix::fs::minor(rdev)),
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
    })
}

/// Calls `f` for every non-directory entry below `dir` (symlinks are not followed).
fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(t) = e.file_type() else { continue };
        let p = e.path();
        if t.is_dir() {
            walk(&p, f);
        } else if !t.is_symlink() {
            f(&p);
        }
    }
}

/// What `--privileged` takes of the host's /dev: its device nodes, but not those every container
/// has of its own (the defaults, its terminal and ptmx) or the instances of filesystems mounted
/// there (pts, shm, mqueue, hugepages), as docker's (runc's `HostDevices`).
pub(crate) fn privileged_devices() -> Vec<HostDevice> {
    const OWN: [&str; 8] = [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/console",
        "/dev/ptmx",
    ];
    const SKIP_DIRS: [&str; 5] = ["pts", "shm", "mqueue", "hugepages", "fd"];
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/dev") else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Ok(t) = e.file_type() else { continue };
        let p = e.path();
        if t.is_dir() {
            if SKIP_DIRS.iter().any(|s| name == *s) {
                continue;
            }
            walk(&p, &mut |q| out.extend(node(q, q)));
        } else if !t.is_symlink() && !OWN.iter().any(|o| p == Path::new(o)) {
            out.extend(node(&p, &p));
        }
    }
    out.sort_by(|a, b| a.dest.cmp(&b.dest));
    out
}

/// Adds `devices` to the spec: `linux.devices` as root (made by the runtime), bind mounts of the
/// host's nodes rootless.
fn add_devices(spec: &mut Spec, devices: &[HostDevice], rootless: bool) -> Result<(), Failure> {
    if devices.is_empty() {
        return Ok(());
    }
    if rootless {
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for d in devices {
            mounts.push(
                oci_spec::runtime::MountBuilder::default()
                    .destination(&d.dest)
                    .typ("bind")
                    .source(&d.host)
                    .options(vec!["bind".into(), "nosuid".into(), "noexec".into()])
                    .build()
                    .map_err(|e| usage(e.to_string()))?,
            );
        }
        spec.set_mounts(Some(mounts));
        return Ok(());
    }
    let linux = spec.linux_mut().as_mut().expect("default spec has linux");
    let mut list = linux.devices().clone().unwrap_or_default();
    for d in devices {
        list.retain(|x| x.path() != &d.dest);
        // The host's owner, as docker's; ids beyond the container's default range are root's.
        let id = |n: u32| {
            if n < gocker_idmap::ROOTFUL_DEFAULT_SIZE {
                n
            } else {
                0
            }
        };
        list.push(
            LinuxDeviceBuilder::default()
                .path(&d.dest)
                .typ(d.kind)
                .major(d.major as i64)
                .minor(d.minor as i64)
                .file_mode(d.mode)
                .uid(id(d.uid))
                .gid(id(d.gid))
                .build()
                .map_err(|e| usage(e.to_string()))?,
        );
    }
    linux.set_devices(Some(list));
    Ok(())
}

/// Applies `--device` and `--privileged` to `spec` (after the capability and seccomp flags:
/// `--privileged` overrides them, as docker's).
pub(crate) fn apply(spec: &mut Spec, devices: &[String], privileged: bool) -> Result<(), Failure> {
    let rootless = !rustix::process::geteuid().is_root();
    let mut wanted = Vec::new();
    for v in devices {
        let (host, dest, _perms) = parse_device(v)?;
        wanted.extend(host_devices(&host, &dest)?);
    }
    if privileged {
        for d in privileged_devices() {
            if !wanted.iter().any(|w| w.dest == d.dest) {
                wanted.push(d);
            }
        }
        make_privileged(spec);
    }
    add_devices(spec, &wanted, rootless)
}

/// Every capability, no seccomp filter, writable /sys and /proc.
fn make_privileged(spec: &mut Spec) {
    let all: oci_spec::runtime::Capabilities = crate::netflags::all_caps().into_iter().collect();
    if let Some(p) = spec.process_mut().as_mut() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        caps.set_bounding(Some(all.clone()));
        caps.set_effective(Some(all.clone()));
        caps.set_permitted(Some(all));
        p.set_capabilities(Some(caps));
    }
    if let Some(mounts) = spec.mounts_mut().as_mut() {
        for m in mounts.iter_mut() {
            if m.typ().as_deref() == Some("sysfs") {
                let opts: Vec<String> = m
                    .options()
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|o| o != "ro")
                    .chain(std::iter::once("rw".to_owned()))
                    .collect();
                m.set_options(Some(opts));
            }
        }
    }
    if let Some(linux) = spec.linux_mut().as_mut() {
        linux.set_seccomp(None);
        linux.set_masked_paths(Some(Vec::new()));
        linux.set_readonly_paths(Some(Vec::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_values_split_as_docker() {
        let p = |v: &str| parse_device(v).map_err(|f| f.message);
        assert_eq!(
            p("/dev/null").unwrap(),
            ("/dev/null".into(), "/dev/null".into(), "rwm".into())
        );
        assert_eq!(
            p("/dev/null:/dev/mynull").unwrap(),
            ("/dev/null".into(), "/dev/mynull".into(), "rwm".into())
        );
        assert_eq!(
            p("/dev/null:rw").unwrap(),
            ("/dev/null".into(), "/dev/null".into(), "rw".into())
        );
        assert_eq!(
            p("/dev/null:/dev/x:rwm").unwrap(),
            ("/dev/null".into(), "/dev/x".into(), "rwm".into())
        );
        for (bad, why) in [
            ("dev/null", "absolute"),
            ("/dev/null:x", "absolute"),
            ("/dev/null:/dev/../etc/x", "\"..\""),
            ("/dev/null:/dev/x:rwx", "combination"),
            ("/dev/null:/dev/x:r", "cannot limit"),
            ("/a:/b:rw:x", "expected"),
        ] {
            let e = p(bad).unwrap_err();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn host_devices_are_checked() {
        let null = host_devices(Path::new("/dev/null"), Path::new("/dev/mynull"))
            .map_err(|f| f.message)
            .unwrap();
        assert_eq!(null.len(), 1);
        assert_eq!((null[0].major, null[0].minor), (1, 3));
        assert_eq!(null[0].kind, LinuxDeviceType::C);
        assert_eq!(null[0].dest, Path::new("/dev/mynull"));
        let e = host_devices(Path::new("/dev/nope-gocker"), Path::new("/dev/x"))
            .unwrap_err()
            .message;
        assert!(
            e.contains("/dev/nope-gocker") && e.contains("no such device"),
            "{e}"
        );
        let e = host_devices(Path::new("/etc/hostname"), Path::new("/dev/x"))
            .unwrap_err()
            .message;
        assert!(e.contains("not a character or block device"), "{e}");
    }

    #[test]
    fn privileged_takes_host_devices_but_not_the_containers_own() {
        let all = privileged_devices();
        assert!(all.iter().all(|d| !d.dest.starts_with("/dev/pts")));
        assert!(all.iter().all(|d| d.dest != Path::new("/dev/null")));
        assert!(all.iter().all(|d| d.dest != Path::new("/dev/ptmx")));
    }
}
