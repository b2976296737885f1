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

/// The parsed options of one mount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedOptions {
    pub attrs: MountAttrs,
    /// `bind` or `rbind` given.
    pub bind: bool,
    /// `rbind` (or a recursive propagation option) given.
    pub recursive: bool,
    pub propagation: Option<(Propagation, bool)>,
    /// Filesystem parameters for `fsconfig`: `key=value` or a bare flag.
    pub data: Vec<(String, Option<String>)>,
}

/// Parses OCI mount options. Unknown `key=value` pairs and unknown bare words are passed to the
/// filesystem (as `mount(8)` does); only contradictory or unsupported VFS options are errors.
pub fn parse(dest: &Path, options: &[String]) -> Result<ParsedOptions> {
    let mut p = ParsedOptions::default();
    for o in options {
        let o = o.as_str();
        let (set, clr): (u64, u64) = match o {
            "ro" => (MOUNT_ATTR_RDONLY, 0),
            "rw" => (0, MOUNT_ATTR_RDONLY),
            "nosuid" => (MOUNT_ATTR_NOSUID, 0),
            "suid" => (0, MOUNT_ATTR_NOSUID),
            "nodev" => (MOUNT_ATTR_NODEV, 0),
            "dev" => (0, MOUNT_ATTR_NODEV),
            "noexec" => (MOUNT_ATTR_NOEXEC, 0),
            "exec" => (0, MOUNT_ATTR_NOEXEC),
            "noatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR_ATIME_MASK),
            "strictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR_ATIME_MASK),
            "relatime" => (0, MOUNT_ATTR_ATIME_MASK),
            "nodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
            "diratime" => (0, MOUNT_ATTR_NODIRATIME),
            "bind" => {
                p.bind = true;
                continue;
            }
            "rbind" => {
                p.bind = true;
                p.recursive = true;
                continue;
            }
            "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared" | "unbindable"
            | "runbindable" => {
                let rec = o.starts_with('r');
                let kind = match o.trim_start_matches('r') {
                    "private" => Propagation::Private,
                    "slave" => Propagation::Slave,
                    "shared" => Propagation::Shared,
                    _ => Propagation::Unbindable,
                };
                p.propagation = Some((kind, rec));
                continue;
            }
            "defaults" | "async" | "auto" | "noauto" | "user" | "nouser" => continue,
            "sync" | "dirsync" | "mand" | "remount" | "idmap" | "ridmap" | "recursive" => {
                return Err(MountError::Option {
                    dest: dest.to_owned(),
                    option: o.to_owned(),
                })
            }
            _ => {
                match o.split_once('=') {
                    Some((k, v)) => p.data.push((k.to_owned(), Some(v.to_owned()))),
                    None => p.data.push((o.to_owned(), None)),
                }
                continue;
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
    fn unsupported_option_is_named() {
        let e = parse(Path::new("/data"), &opts(&["sync"])).unwrap_err();
        assert_eq!(e.to_string(), "mount /data: unsupported option \"sync\"");
    }
}
