//! The calling user's places and name on this host, used by every layer of the CLI: gocker's
//! data directory (rootfs, image store, volumes beside each other) and the login name (for the
//! /etc/subuid ranges). A leaf: it uses no other module of the CLI.

use std::path::PathBuf;

/// `/var/lib/gocker` for root, `$XDG_DATA_HOME/gocker` (default `~/.local/share/gocker`) for
/// other users.
pub(crate) fn data_dir() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/gocker");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share")
        });
    data.join("gocker")
}

/// The login name of `uid` from /etc/passwd (else $USER).
pub(crate) fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_owned())
            })
        })
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default()
}
