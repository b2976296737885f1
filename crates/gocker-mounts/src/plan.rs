//! From an OCI spec to an ordered list of mount steps (pure, testable without privileges).

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::options::{
    self, MountAttrs, Propagation, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID,
};
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
        /// Propagation to set once attached (`shared`, `rslave`, ...), recursive or not.
        propagation: Option<(Propagation, bool)>,
        /// The runtime's own instance to bind when a new one is refused: `proc` and `mqueue`
        /// when the spec gives the container no PID or IPC namespace of its own (it shares the
        /// runtime's, which its user namespace does not own, so it may not mount them).
        host_instance: Option<PathBuf>,
    },
    /// A bind mount of a host path.
    Bind {
        source: PathBuf,
        dest: PathBuf,
        recursive: bool,
        attrs: MountAttrs,
        propagation: Option<(Propagation, bool)>,
    },
    /// A device node of `linux.devices`: the host's node of that type and number bound in (a
    /// user namespace cannot create device nodes), or a FIFO made in place.
    Device {
        dest: PathBuf,
        kind: DeviceKind,
        major: u64,
        minor: u64,
        /// Permission bits (`fileMode`), owner and group inside the container.
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    },
    /// A symlink created inside the rootfs.
    Symlink { target: String, link: PathBuf },
    /// Hide a path: `/dev/null` over a file, an empty read-only tmpfs over a directory.
    Mask { path: PathBuf },
    /// Make a path read-only (a read-only bind of itself).
    ReadOnly { path: PathBuf },
    /// `linux.rootfsPropagation` applied to the root mount, the last step (an unbindable root
    /// can no longer be a bind source). Only what can be set before `pivot_root` is planned:
    /// `private` and `unbindable` (a shared root would make `pivot_root` fail).
    RootPropagation {
        propagation: Propagation,
        recursive: bool,
    },
}

/// The type of a [`Step::Device`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Char,
    Block,
    Fifo,
}

impl DeviceKind {
    /// `c`, `b` or `p`, as in `linux.devices[].type`.
    pub fn letter(self) -> char {
        match self {
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
            DeviceKind::Fifo => 'p',
        }
    }
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
    let has_ns = |typ: oci_spec::runtime::LinuxNamespaceType| {
        spec.linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|ns| ns.iter().any(|n| n.typ() == typ))
    };
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
                propagation: opts.propagation,
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
            propagation: opts.propagation,
            host_instance: match typ {
                "proc" if !has_ns(oci_spec::runtime::LinuxNamespaceType::Pid) => {
                    Some("/proc".into())
                }
                "mqueue" if !has_ns(oci_spec::runtime::LinuxNamespaceType::Ipc) => {
                    Some("/dev/mqueue".into())
                }
                _ => None,
            },
        });
    }

    let linux = spec.linux().as_ref();
    let listed: Vec<&oci_spec::runtime::LinuxDevice> = linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
        .collect();
    let dev_attrs = MountAttrs::set(DEVICE_ATTRS);
    for d in DEFAULT_DEVICES {
        if listed.iter().any(|l| l.path() == Path::new(d)) {
            continue;
        }
        steps.push(Step::Bind {
            source: d.into(),
            dest: d.into(),
            recursive: false,
            attrs: dev_attrs,
            propagation: None,
        });
    }
    for (i, d) in listed.iter().enumerate() {
        use oci_spec::runtime::LinuxDeviceType as T;
        let dest = d.path().clone();
        let invalid = |reason: String| MountError::Invalid {
            dest: dest.clone(),
            reason: format!("linux.devices[{i}]: {reason}"),
        };
        if !dest.is_absolute() {
            return Err(invalid("the path must be absolute".into()));
        }
        let kind = match d.typ() {
            T::C | T::U => DeviceKind::Char,
            T::B => DeviceKind::Block,
            T::P => DeviceKind::Fifo,
            T::A => {
                return Err(invalid(
                    "type \"a\" is a cgroup rule, not a device node".into(),
                ))
            }
        };
        let number = |n: i64, what: &str| {
            u64::try_from(n).map_err(|_| invalid(format!("{what} {n} is negative")))
        };
        steps.push(Step::Device {
            major: number(d.major(), "major")?,
            minor: number(d.minor(), "minor")?,
            kind,
            mode: d.file_mode().map(|m| m & 0o7777),
            uid: d.uid(),
            gid: d.gid(),
            dest,
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
    match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        None | Some("") => {}
        Some(p) => {
            let recursive = p.starts_with('r');
            let propagation = match p.trim_start_matches('r') {
                "private" => Propagation::Private,
                "unbindable" => Propagation::Unbindable,
                // After pivot_root (a shared root makes it fail): see [`after_pivot`].
                "shared" | "slave" => return Ok(steps),
                _ => {
                    return Err(MountError::Invalid {
                        dest: "/".into(),
                        reason: format!("linux.rootfsPropagation {p:?}: not a propagation type"),
                    })
                }
            };
            steps.push(Step::RootPropagation {
                propagation,
                recursive,
            });
        }
    }
    Ok(steps)
}

/// The `linux.rootfsPropagation` that is set on `/` once `pivot_root` is done: `shared` and
/// `slave` (with `r`, recursively). The root is a clone in the container's own mount namespace,
/// in no peer group of the host's, so a shared root shares mount events with the container's own
/// later clones only, and a slave root is one of nothing (in effect private), as with runc.
pub fn after_pivot(spec: &Spec) -> Option<(Propagation, bool)> {
    let p = spec.linux().as_ref()?.rootfs_propagation().as_deref()?;
    let recursive = p.starts_with('r');
    match p.trim_start_matches('r') {
        "shared" => Some((Propagation::Shared, recursive)),
        "slave" => Some((Propagation::Slave, recursive)),
        _ => None,
    }
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
            .rposition(|s| matches!(s, Step::Fs { .. } | Step::Bind { .. } | Step::Device { .. }))
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
    fn listed_devices_become_device_steps_and_replace_a_default() {
        let dev = |path: &str, typ, major, minor| {
            oci_spec::runtime::LinuxDeviceBuilder::default()
                .path(path)
                .typ(typ)
                .major(major)
                .minor(minor)
                .file_mode(0o100660u32)
                .uid(0u32)
                .gid(5u32)
                .build()
                .unwrap()
        };
        use oci_spec::runtime::LinuxDeviceType as T;
        let mut spec = spec_with(vec![]);
        spec.linux_mut().as_mut().unwrap().set_devices(Some(vec![
            dev("/dev/test1", T::C, 10, 666),
            dev("/dev/null", T::C, 1, 3),
            dev("/dev/fifo", T::P, 0, 0),
            dev("/dev/sda9", T::B, 8, 9),
        ]));
        let steps = plan(&spec).unwrap();
        let binds: Vec<&Path> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Bind { dest, .. } => Some(dest.as_path()),
                _ => None,
            })
            .collect();
        assert!(!binds.contains(&Path::new("/dev/null")), "{binds:?}");
        assert!(binds.contains(&Path::new("/dev/zero")));
        let devices: Vec<(String, char, u64, u64, Option<u32>)> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Device {
                    dest,
                    kind,
                    major,
                    minor,
                    mode,
                    ..
                } => Some((
                    dest.display().to_string(),
                    kind.letter(),
                    *major,
                    *minor,
                    *mode,
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            devices,
            [
                ("/dev/test1".into(), 'c', 10, 666, Some(0o660)),
                ("/dev/null".into(), 'c', 1, 3, Some(0o660)),
                ("/dev/fifo".into(), 'p', 0, 0, Some(0o660)),
                ("/dev/sda9".into(), 'b', 8, 9, Some(0o660)),
            ]
        );
        spec.linux_mut()
            .as_mut()
            .unwrap()
            .set_devices(Some(vec![dev("/dev/x", T::C, -1, 0)]));
        let e = plan(&spec).unwrap_err().to_string();
        assert!(e.contains("linux.devices[0]: major -1"), "{e}");
    }

    #[test]
    fn shared_namespaces_allow_the_hosts_proc_and_mqueue() {
        use oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType as T};
        let mounts = oci_spec::runtime::get_default_mounts();
        let mut spec = spec_with(mounts);
        let ns = |typ| LinuxNamespaceBuilder::default().typ(typ).build().unwrap();
        let host_instance = |steps: &[Step], fs: &str| {
            steps.iter().find_map(|s| match s {
                Step::Fs {
                    fstype,
                    host_instance,
                    ..
                } if fstype == fs => Some(host_instance.clone()),
                _ => None,
            })
        };
        spec.linux_mut()
            .as_mut()
            .unwrap()
            .set_namespaces(Some(vec![ns(T::User), ns(T::Mount)]));
        let steps = plan(&spec).unwrap();
        assert_eq!(host_instance(&steps, "proc"), Some(Some("/proc".into())));
        assert_eq!(
            host_instance(&steps, "mqueue"),
            Some(Some("/dev/mqueue".into()))
        );
        spec.linux_mut().as_mut().unwrap().set_namespaces(Some(vec![
            ns(T::User),
            ns(T::Mount),
            ns(T::Pid),
            ns(T::Ipc),
        ]));
        let steps = plan(&spec).unwrap();
        assert_eq!(host_instance(&steps, "proc"), Some(None));
        assert_eq!(host_instance(&steps, "mqueue"), Some(None));
    }

    #[test]
    fn rootfs_propagation_is_the_last_step_or_refused() {
        let mut spec = spec_with(oci_spec::runtime::get_default_mounts());
        for (p, want) in [
            ("rprivate", Some((Propagation::Private, true))),
            ("unbindable", Some((Propagation::Unbindable, false))),
        ] {
            spec.linux_mut()
                .as_mut()
                .unwrap()
                .set_rootfs_propagation(Some(p.into()));
            let steps = plan(&spec).unwrap();
            let last = match steps.last() {
                Some(Step::RootPropagation {
                    propagation,
                    recursive,
                }) => Some((*propagation, *recursive)),
                _ => None,
            };
            assert_eq!(last, want, "{p}");
        }
        for (p, want) in [
            ("shared", Some((Propagation::Shared, false))),
            ("rslave", Some((Propagation::Slave, true))),
            ("rprivate", None),
        ] {
            spec.linux_mut()
                .as_mut()
                .unwrap()
                .set_rootfs_propagation(Some(p.into()));
            assert_eq!(after_pivot(&spec), want, "{p}");
            if want.is_some() {
                assert!(
                    !plan(&spec)
                        .unwrap()
                        .iter()
                        .any(|s| matches!(s, Step::RootPropagation { .. })),
                    "{p} is set after pivot_root, not planned before it"
                );
            }
        }
        spec.linux_mut()
            .as_mut()
            .unwrap()
            .set_rootfs_propagation(Some("sideways".into()));
        let e = plan(&spec).unwrap_err().to_string();
        assert!(
            e.contains("linux.rootfsPropagation") && e.contains("not a propagation type"),
            "{e}"
        );
    }

    #[test]
    fn propagation_options_reach_the_steps() {
        let m = MountBuilder::default()
            .destination("/mnt/shared")
            .source("/srv")
            .options(vec!["rbind".to_string(), "rshared".to_string()])
            .build()
            .unwrap();
        let t = MountBuilder::default()
            .destination("/tmp/s")
            .typ("tmpfs")
            .source("tmpfs")
            .options(vec!["slave".to_string()])
            .build()
            .unwrap();
        let steps = plan(&spec_with(vec![m, t])).unwrap();
        assert!(matches!(
            &steps[0],
            Step::Bind {
                propagation: Some((Propagation::Shared, true)),
                ..
            }
        ));
        assert!(matches!(
            &steps[1],
            Step::Fs {
                propagation: Some((Propagation::Slave, false)),
                ..
            }
        ));
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
