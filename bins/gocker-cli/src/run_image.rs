//! `gocker run IMAGE [COMMAND]`: which positional names an image, and what the image's config
//! gives the container (docker's rules for Entrypoint, Cmd, Env, WorkingDir, User, StopSignal).
//!
//! The image's layers become the lower directories of the container's copy-on-write root
//! (`gocker_runtime::CowRoot::lowers`): the image is never written.

use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;

/// What the first positional argument of `run` is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum First {
    /// An image: the rest of the positionals are the command (replacing the image's Cmd).
    Image(String),
    /// A command, run on the default root (the provisioned rootfs).
    Command,
}

/// docker reads the first positional as an image, always; gocker also runs a command on its
/// provisioned rootfs (`gocker run /bin/sh`, `gocker run sh`), so: an image when it is in the
/// store (`in_store`), or when it can only be an image reference (a registry, a tag or a digest:
/// `localhost:5000/x`, `alpine:3.20`, `x@sha256:...`), never when it is a path (`/bin/sh`,
/// `./x`). Anything else is a command.
pub(crate) fn classify(first: &str, in_store: impl Fn(&str) -> bool) -> First {
    if first.is_empty() || first.starts_with('/') || first.starts_with('.') || first.contains('=') {
        return First::Command;
    }
    if in_store(first) || first.contains(':') || first.contains('@') || first.contains('/') {
        return First::Image(first.to_owned());
    }
    First::Command
}

/// The annotation of a container run on an image: the image id (`sha256:<config>`), which
/// `rmi` and `image prune -a` read back from the saved spec.
pub(crate) const IMAGE_ANNOTATION: &str = "io.gocker.image.id";

/// Where a container's root is attached before `pivot_root` when it runs on an image: an empty
/// directory beside the image store (`<store>/../mnt`, 0755). The store itself is 0700 (its
/// layers keep set-uid files), which a rootful container's root, an unprivileged host uid,
/// cannot traverse; each container attaches its root here in a mount namespace of its own, so
/// one directory serves all of them, and nothing is ever written into it.
pub(crate) fn attach_point(store: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = store.parent().unwrap_or(store).join("mnt");
    match std::fs::create_dir(&dir) {
        Ok(()) => std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    Ok(dir)
}

/// The image config's `config` fields gocker applies (all optional in the OCI image spec).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ImageDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
}

impl ImageDefaults {
    pub(crate) fn from_config(c: &ImageConfiguration) -> ImageDefaults {
        let Some(cfg) = c.config() else {
            return ImageDefaults::default();
        };
        let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        ImageDefaults {
            entrypoint: cfg.entrypoint().clone().unwrap_or_default(),
            cmd: cfg.cmd().clone().unwrap_or_default(),
            env: cfg.env().clone().unwrap_or_default(),
            working_dir: nonempty(cfg.working_dir()),
            user: nonempty(cfg.user()),
            stop_signal: nonempty(cfg.stop_signal()),
        }
    }

    /// docker's argv: `--entrypoint` replaces the image's Entrypoint (and drops its Cmd, as
    /// docker does); a command given on the command line replaces the Cmd.
    pub(crate) fn argv(&self, entrypoint_flag: Option<&str>, command: &[String]) -> Vec<String> {
        let (entry, default_cmd) = match entrypoint_flag {
            Some("") => (Vec::new(), Vec::new()),
            Some(e) => (vec![e.to_owned()], Vec::new()),
            None => (self.entrypoint.clone(), self.cmd.clone()),
        };
        let mut argv = entry;
        if command.is_empty() {
            argv.extend(default_cmd);
        } else {
            argv.extend(command.iter().cloned());
        }
        argv
    }
}

/// The image's environment, then the command line's (`-e`, `--env-file`), a later `KEY=` of the
/// same key replacing an earlier one in place, as docker merges them.
pub(crate) fn merge_env(image: &[String], ours: &[String]) -> Vec<String> {
    let key = |kv: &str| kv.split_once('=').map_or(kv, |(k, _)| k).to_owned();
    let mut out: Vec<String> = Vec::new();
    for kv in image.iter().chain(ours) {
        match out.iter_mut().find(|e| key(e) == key(kv)) {
            Some(slot) => *slot = kv.clone(),
            None => out.push(kv.clone()),
        }
    }
    out
}

/// The directory, among an image's layers (highest first), whose `rel` (e.g. `etc/passwd`) the
/// container sees: the highest layer that has it, unless a higher one removed it (an overlayfs
/// whiteout: a 0:0 character device, or a file marked `user.overlay.whiteout`). Used to resolve
/// the image's `User` by name through its own /etc/passwd, read confined to that layer.
pub(crate) fn layer_with(lowers_highest_first: &[PathBuf], rel: &str) -> Option<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    for dir in lowers_highest_first {
        let p = dir.join(rel);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_char_device() => return None,
            Ok(_) if is_xattr_whiteout(&p) => return None,
            Ok(_) => return Some(dir.clone()),
            Err(_) => {}
        }
    }
    None
}

fn is_xattr_whiteout(p: &Path) -> bool {
    rustix::fs::lgetxattr(p, "user.overlay.whiteout", &mut [0u8; 0]).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn paths_and_plain_words_are_commands_references_are_images() {
        let none = |_: &str| false;
        assert_eq!(classify("/bin/sh", none), First::Command);
        assert_eq!(classify("./x", none), First::Command);
        assert_eq!(classify("sh", none), First::Command);
        assert_eq!(classify("A=1", none), First::Command);
        for r in [
            "alpine:3.20",
            "localhost:5000/test/img",
            "x@sha256:0123",
            "library/alpine",
        ] {
            assert_eq!(classify(r, none), First::Image(r.into()), "{r}");
        }
        // A plain word that the store knows is an image.
        assert_eq!(
            classify("alpine", |n| n == "alpine"),
            First::Image("alpine".into())
        );
    }

    #[test]
    fn entrypoint_and_cmd_follow_dockers_rules() {
        let d = ImageDefaults {
            entrypoint: s(&["/entry", "-x"]),
            cmd: s(&["serve"]),
            ..Default::default()
        };
        assert_eq!(d.argv(None, &[]), s(&["/entry", "-x", "serve"]));
        assert_eq!(d.argv(None, &s(&["ls"])), s(&["/entry", "-x", "ls"]));
        assert_eq!(d.argv(Some("/bin/sh"), &[]), s(&["/bin/sh"]));
        assert_eq!(
            d.argv(Some("/bin/sh"), &s(&["-c", "id"])),
            s(&["/bin/sh", "-c", "id"])
        );
        assert_eq!(d.argv(Some(""), &s(&["id"])), s(&["id"]));
        let cmd_only = ImageDefaults {
            cmd: s(&["/bin/sh"]),
            ..Default::default()
        };
        assert_eq!(cmd_only.argv(None, &[]), s(&["/bin/sh"]));
        assert_eq!(cmd_only.argv(None, &s(&["true"])), s(&["true"]));
    }

    #[test]
    fn the_command_lines_environment_overrides_the_images_in_place() {
        let merged = merge_env(
            &s(&["PATH=/usr/bin", "LANG=C", "EMPTY"]),
            &s(&["LANG=fr", "NEW=1"]),
        );
        assert_eq!(merged, s(&["PATH=/usr/bin", "LANG=fr", "EMPTY", "NEW=1"]));
    }

    #[test]
    fn the_highest_layer_with_the_file_wins_and_a_whiteout_hides_it() {
        let base = std::env::temp_dir().join(format!("gocker-layers-{}", std::process::id()));
        let (low, mid, high) = (base.join("low"), base.join("mid"), base.join("high"));
        for d in [&low, &mid, &high] {
            std::fs::create_dir_all(d.join("etc")).unwrap();
        }
        std::fs::write(low.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::write(mid.join("etc/group"), "root:x:0:\n").unwrap();
        let order = [high.clone(), mid.clone(), low.clone()];
        assert_eq!(layer_with(&order, "etc/passwd"), Some(low.clone()));
        assert_eq!(layer_with(&order, "etc/group"), Some(mid.clone()));
        assert_eq!(layer_with(&order, "etc/shadow"), None);
        // A whiteout in a higher layer (the rootless form: a marked empty file).
        let wh = high.join("etc/passwd");
        std::fs::write(&wh, "").unwrap();
        let marked = rustix::fs::lsetxattr(
            &wh,
            "user.overlay.whiteout",
            b"",
            rustix::fs::XattrFlags::empty(),
        );
        if marked.is_ok() {
            assert_eq!(layer_with(&order, "etc/passwd"), None);
        }
        std::fs::remove_dir_all(&base).unwrap();
    }
}
