//! OCI mount options (`"nosuid"`, `"mode=755"`, `"rbind"`, ...) split into what the kernel wants.

use std::path::Path;

use crate::{MountError, Result};

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_IDMAP: u64 = 0x100000;

/// Per-mount attributes to set and clear (`struct mount_attr`'s `attr_set`/`attr_clr`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountAttrs {
    pub set: u64,
    pub clr: u64,
}

impl MountAttrs {
    pub const fn set(bits: u64) -> Self {
        MountAttrs { set: bits, clr: 0 }
    }
    pub fn readonly(&self) -> bool {
        self.set & MOUNT_ATTR_RDONLY != 0
    }
    pub fn with(mut self, bits: u64) -> Self {
        self.set |= bits;
        self.clr &= !bits;
        self
    }
}

/// Mount propagation requested by an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Private,
    Slave,
    Shared,
    Unbindable,
}

impl Propagation {
    /// The `MS_*` flag `mount_setattr(2)` takes in `struct mount_attr`'s `propagation`.
    pub fn ms_flag(self) -> u64 {
        match self {
            Propagation::Private => libc::MS_PRIVATE,
            Propagation::Slave => libc::MS_SLAVE,
            Propagation::Shared => libc::MS_SHARED,
            Propagation::Unbindable => libc::MS_UNBINDABLE,
        }
    }
}

/// The parsed options of one mount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedOptions {
    pub attrs: MountAttrs,
    /// `bind` or `rbind` given.
    pub bind: bool,
    /// `rbind` given.
    pub recursive: bool,
    pub propagation: Option<(Propagation, bool)>,
    /// Filesystem parameters for `fsconfig`: `key=value` or a bare flag.
    pub data: Vec<(String, Option<String>)>,
}

/// What a VFS-level mount option does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKind {
    /// Per-mount attributes: bits to set, bits to clear.
    Attr(u64, u64),
    /// `bind` (false) or `rbind` (true).
    Bind { recursive: bool },
    /// A propagation type, recursive or not.
    Propagate(Propagation, bool),
    /// Accepted and meaningless here (fstab words: `defaults`, `auto`, ...).
    Ignored,
    /// Known and not supported: refused with an error naming it.
    Refused,
}

/// Every mount option the parser knows, and what it does: the one table for [`parse`] and for
/// what the runtime advertises ([`supported`], `gocker-oci features`). Anything else is handed
/// to the filesystem as a parameter (`mode=755`, `size=64k`, `newinstance`, ...).
pub const OPTIONS: &[(&str, OptionKind)] = {
    use OptionKind::*;
    use Propagation::{Private, Shared, Slave, Unbindable};
    &[
        ("ro", Attr(MOUNT_ATTR_RDONLY, 0)),
        ("rw", Attr(0, MOUNT_ATTR_RDONLY)),
        ("nosuid", Attr(MOUNT_ATTR_NOSUID, 0)),
        ("suid", Attr(0, MOUNT_ATTR_NOSUID)),
        ("nodev", Attr(MOUNT_ATTR_NODEV, 0)),
        ("dev", Attr(0, MOUNT_ATTR_NODEV)),
        ("noexec", Attr(MOUNT_ATTR_NOEXEC, 0)),
        ("exec", Attr(0, MOUNT_ATTR_NOEXEC)),
        ("noatime", Attr(MOUNT_ATTR_NOATIME, MOUNT_ATTR_ATIME_MASK)),
        (
            "strictatime",
            Attr(MOUNT_ATTR_STRICTATIME, MOUNT_ATTR_ATIME_MASK),
        ),
        ("relatime", Attr(0, MOUNT_ATTR_ATIME_MASK)),
        ("nodiratime", Attr(MOUNT_ATTR_NODIRATIME, 0)),
        ("diratime", Attr(0, MOUNT_ATTR_NODIRATIME)),
        ("bind", Bind { recursive: false }),
        ("rbind", Bind { recursive: true }),
        ("private", Propagate(Private, false)),
        ("rprivate", Propagate(Private, true)),
        ("slave", Propagate(Slave, false)),
        ("rslave", Propagate(Slave, true)),
        ("shared", Propagate(Shared, false)),
        ("rshared", Propagate(Shared, true)),
        ("unbindable", Propagate(Unbindable, false)),
        ("runbindable", Propagate(Unbindable, true)),
        ("defaults", Ignored),
        ("async", Ignored),
        ("auto", Ignored),
        ("noauto", Ignored),
        ("user", Ignored),
        ("nouser", Ignored),
        // Synchronous writes, mandatory locks, remounts and idmapped binds are not implemented.
        ("sync", Refused),
        ("dirsync", Refused),
        ("mand", Refused),
        ("remount", Refused),
        ("idmap", Refused),
        ("ridmap", Refused),
        ("recursive", Refused),
    ]
};

/// The options [`parse`] accepts and applies (the table without the refused ones), in the
/// table's order: what `features` reports as `mountOptions`.
pub fn supported() -> impl Iterator<Item = &'static str> {
    OPTIONS
        .iter()
        .filter(|(_, k)| *k != OptionKind::Refused)
        .map(|(name, _)| *name)
}

/// Parses OCI mount options. Unknown `key=value` pairs and unknown bare words are passed to the
/// filesystem (as `mount(8)` does); only contradictory or unsupported VFS options are errors.
pub fn parse(dest: &Path, options: &[String]) -> Result<ParsedOptions> {
    let mut p = ParsedOptions::default();
    for o in options {
        let o = o.as_str();
        let Some((_, kind)) = OPTIONS.iter().find(|(name, _)| *name == o) else {
            match o.split_once('=') {
                Some((k, v)) => p.data.push((k.to_owned(), Some(v.to_owned()))),
                None => p.data.push((o.to_owned(), None)),
            }
            continue;
        };
        let (set, clr) = match *kind {
            OptionKind::Attr(set, clr) => (set, clr),
            OptionKind::Bind { recursive } => {
                p.bind = true;
                p.recursive |= recursive;
                continue;
            }
            OptionKind::Propagate(kind, rec) => {
                p.propagation = Some((kind, rec));
                continue;
            }
            OptionKind::Ignored => continue,
            OptionKind::Refused => {
                return Err(MountError::Option {
                    dest: dest.to_owned(),
                    option: o.to_owned(),
                })
            }
        };
        if clr & MOUNT_ATTR_ATIME_MASK != 0 {
            p.attrs.set &= !MOUNT_ATTR_ATIME_MASK;
        }
        p.attrs.set = (p.attrs.set & !clr) | set;
        p.attrs.clr = (p.attrs.clr & !set) | clr;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn vfs_flags_and_data_are_separated() {
        let p = parse(
            Path::new("/dev"),
            &opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]),
        )
        .unwrap();
        assert_eq!(p.attrs.set, MOUNT_ATTR_NOSUID | MOUNT_ATTR_STRICTATIME);
        assert_eq!(p.attrs.clr, MOUNT_ATTR_ATIME_MASK);
        assert_eq!(
            p.data,
            vec![
                ("mode".into(), Some("755".into())),
                ("size".into(), Some("65536k".into()))
            ]
        );
        assert!(!p.bind);
    }

    #[test]
    fn later_options_win() {
        let p = parse(Path::new("/x"), &opts(&["ro", "rw"])).unwrap();
        assert!(!p.attrs.readonly());
        assert_eq!(p.attrs.clr, MOUNT_ATTR_RDONLY);
        let p = parse(Path::new("/x"), &opts(&["rw", "ro"])).unwrap();
        assert!(p.attrs.readonly());
        assert_eq!(p.attrs.clr, 0);
    }

    #[test]
    fn bind_kinds_and_propagation() {
        let p = parse(
            Path::new("/data"),
            &opts(&["rbind", "rslave", "newinstance"]),
        )
        .unwrap();
        assert!(p.bind && p.recursive);
        assert_eq!(p.propagation, Some((Propagation::Slave, true)));
        assert_eq!(p.data, vec![("newinstance".into(), None)]);
    }

    #[test]
    fn the_table_is_what_parse_accepts() {
        let names: Vec<&str> = supported().collect();
        for o in &names {
            let p = parse(Path::new("/x"), &opts(&[o])).unwrap();
            assert!(p.data.is_empty(), "{o} went to the filesystem");
        }
        for o in ["sync", "remount", "dirsync", "mand", "idmap"] {
            assert!(!names.contains(&o), "{o} is advertised");
            assert!(parse(Path::new("/x"), &opts(&[o])).is_err(), "{o} accepted");
        }
        assert!(names.contains(&"rshared") && names.contains(&"nodiratime"));
        let mut seen = std::collections::HashSet::new();
        assert!(
            OPTIONS.iter().all(|(n, _)| seen.insert(*n)),
            "duplicate entry"
        );
    }

    #[test]
    fn propagation_is_kept_with_its_recursion() {
        let p = parse(Path::new("/m"), &opts(&["bind", "rshared"])).unwrap();
        assert_eq!(p.propagation, Some((Propagation::Shared, true)));
        assert!(p.bind && !p.recursive);
        let p = parse(Path::new("/m"), &opts(&["unbindable"])).unwrap();
        assert_eq!(p.propagation, Some((Propagation::Unbindable, false)));
        assert_eq!(Propagation::Slave.ms_flag(), libc::MS_SLAVE);
    }

    #[test]
    fn unsupported_option_is_named() {
        let e = parse(Path::new("/data"), &opts(&["sync"])).unwrap_err();
        assert_eq!(e.to_string(), "mount /data: unsupported option \"sync\"");
    }
}
