//! From an OCI spec to an ordered list of mount steps (pure, testable without privileges).

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::options::{self, MountAttrs, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID};
use crate::{MountError, Result};

/// One operation on the container's rootfs. Paths in `dest`, `link` and `path` are inside the rootfs;
/// `source` of a bind is a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A new filesystem instance (proc, sysfs, tmpfs, devpts, mqueue, ...).
    Fs {
        dest: PathBuf,
        fstype: String,
        source: String,
        attrs: MountAttrs,
        data: Vec<(String, Option<String>)>,
    },
    /// A bind mount of a host path.
    Bind {
        source: PathBuf,
        dest: PathBuf,
        recursive: bool,
        attrs: MountAttrs,
    },
    /// A symlink created inside the rootfs.
    Symlink { target: String, link: PathBuf },
    /// Hide a path: `/dev/null` over a file, an empty read-only tmpfs over a directory.
    Mask { path: PathBuf },
    /// Make a path read-only (a read-only bind of itself).
    ReadOnly { path: PathBuf },
}

/// Devices every container gets (the OCI runtime spec's default devices).
pub const DEFAULT_DEVICES: [&str; 6] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// Plans the mounts of `spec`: its mounts in order, then devices (bound from the host, since device
/// nodes cannot be created inside a user namespace), the `/dev` symlinks, masked paths and read-only
/// paths. The root itself (bind, idmap, read-only, pivot) is not part of the plan.
pub fn plan(spec: &Spec) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let mut dev_is_tmpfs = false;
    for m in spec.mounts().iter().flatten() {
        let dest = m.destination().clone();
        if !dest.is_absolute() {
            return Err(MountError::Invalid {
                dest,
                reason: "destination must be an absolute path".into(),
            });
        }
        let opts = options::parse(&dest, m.options().as_deref().unwrap_or(&[]))?;
        let typ = m
            .typ()
            .as_deref()
            .unwrap_or(if opts.bind { "bind" } else { "" });
        if opts.bind || typ == "bind" {
            let source = m.source().clone().ok_or_else(|| MountError::Invalid {
                dest: dest.clone(),
                reason: "bind mount without a source".into(),
            })?;
            if !source.is_absolute() {
                return Err(MountError::Invalid {
                    dest,
                    reason: format!(
                        "bind source {} must be an absolute host path",
                        source.display()
                    ),
                });
            }
            if crate::resolve::is_proc_magic(&source) {
                return Err(MountError::OutsideRoot {
                    what: "bind source",
                    path: source,
                    reason: format!(
                        "mount {}: a /proc magic link names one of the runtime's own descriptors or directories",
                        dest.display()
                    ),
                });
            }
            steps.push(Step::Bind {
                source,
                dest,
                recursive: opts.recursive,
                attrs: opts.attrs,
            });
            continue;
        }
        if typ.is_empty() {
            return Err(MountError::Invalid {
                dest,
                reason: "mount without a type".into(),
            });
        }
        if dest == Path::new("/dev") && typ == "tmpfs" {
            dev_is_tmpfs = true;
        }
        let source = m
            .source()
            .as_ref()
            .map(|s| s.display().to_string())
            .unwrap_or_else(|| typ.to_owned());
        steps.push(Step::Fs {
            dest,
            fstype: typ.to_owned(),
            source,
            attrs: opts.attrs,
            data: opts.data,
        });
    }

    let linux = spec.linux().as_ref();
    let mut devices: Vec<PathBuf> = DEFAULT_DEVICES.iter().map(PathBuf::from).collect();
    for d in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        if !devices.contains(d.path()) {
            devices.push(d.path().clone());
        }
    }
    let dev_attrs = MountAttrs::set(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
    for d in devices {
        steps.push(Step::Bind {
            source: d.clone(),
            dest: d,
            recursive: false,
            attrs: dev_attrs,
        });
    }
    if dev_is_tmpfs {
        for (target, link) in [
            ("/proc/self/fd", "/dev/fd"),
            ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"),
            ("/proc/self/fd/2", "/dev/stderr"),
            ("pts/ptmx", "/dev/ptmx"),
            ("/proc/kcore", "/dev/core"),
        ] {
            steps.push(Step::Symlink {
                target: target.into(),
                link: link.into(),
            });
        }
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        steps.push(Step::Mask { path: p.into() });
    }
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        steps.push(Step::ReadOnly { path: p.into() });
    }
    Ok(steps)
}

/// Attributes of device binds: never setuid, never executable; `nodev` must stay off.
pub const DEVICE_ATTRS: u64 = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;
const _: () = assert!(DEVICE_ATTRS & MOUNT_ATTR_NODEV == 0);

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, MountBuilder, SpecBuilder};

    fn spec_with(mounts: Vec<oci_spec::runtime::Mount>) -> Spec {
        SpecBuilder::default()
            .mounts(mounts)
            .linux(
                LinuxBuilder::default()
                    .masked_paths(vec!["/proc/kcore".to_string()])
                    .readonly_paths(vec!["/proc/sys".to_string()])
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn default_mounts_become_fs_steps_then_devices_then_masks() {
        let spec = spec_with(oci_spec::runtime::get_default_mounts());
        let steps = plan(&spec).unwrap();
        let Step::Fs { dest, fstype, .. } = &steps[0] else {
            panic!("{:?}", steps[0])
        };
        assert_eq!(
            (dest.as_path(), fstype.as_str()),
            (Path::new("/proc"), "proc")
        );
        assert!(steps
            .iter()
            .any(|s| matches!(s, Step::Bind { dest, .. } if dest == Path::new("/dev/null"))));
        assert!(steps.iter().any(|s| matches!(s, Step::Symlink { link, target } if link == Path::new("/dev/ptmx") && target == "pts/ptmx")));
        // Masks and read-only paths come after every mount, so that they cover what the mounts created.
        let last_fs = steps
            .iter()
            .rposition(|s| matches!(s, Step::Fs { .. } | Step::Bind { .. }))
            .unwrap();
        let first_mask = steps
            .iter()
            .position(|s| matches!(s, Step::Mask { .. }))
            .unwrap();
        assert!(last_fs < first_mask);
        assert_eq!(
            steps.last(),
            Some(&Step::ReadOnly {
                path: "/proc/sys".into()
            })
        );
    }

    #[test]
    fn bind_needs_absolute_source() {
        let m = MountBuilder::default()
            .destination("/data")
            .typ("bind")
            .source("relative/dir")
            .options(vec!["rbind".to_string(), "ro".to_string()])
            .build()
            .unwrap();
        let e = plan(&spec_with(vec![m])).unwrap_err();
        assert!(
            e.to_string()
                .contains("relative/dir must be an absolute host path"),
            "{e}"
        );
    }

    #[test]
    fn bind_from_a_proc_magic_link_is_refused() {
        for src in ["/proc/self/fd/4", "/proc/1/root", "/proc/thread-self/cwd"] {
            let m = MountBuilder::default()
                .destination("/data")
                .typ("bind")
                .source(src)
                .options(vec!["rbind".to_string()])
                .build()
                .unwrap();
            let e = plan(&spec_with(vec![m])).unwrap_err().to_string();
            assert!(
                e.contains(src) && e.contains("outside the container's root"),
                "{e}"
            );
        }
    }

    #[test]
    fn bind_options_carry_over() {
        let m = MountBuilder::default()
            .destination("/data")
            .source("/srv/data")
            .options(vec![
                "rbind".to_string(),
                "ro".to_string(),
                "nosuid".to_string(),
            ])
            .build()
            .unwrap();
        let steps = plan(&spec_with(vec![m])).unwrap();
        let Step::Bind {
            source,
            recursive,
            attrs,
            ..
        } = &steps[0]
        else {
            panic!()
        };
        assert_eq!(source, Path::new("/srv/data"));
        assert!(*recursive && attrs.readonly() && attrs.set & MOUNT_ATTR_NOSUID != 0);
    }
}
