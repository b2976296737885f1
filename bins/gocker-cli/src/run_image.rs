//! `gocker run IMAGE [COMMAND]`: which positional names an image, and what the image's config
//! gives the container (docker's rules for Entrypoint, Cmd, Env, WorkingDir, User, StopSignal).
//!
//! The image's layers become the lower directories of the container's copy-on-write root
//! (`gocker_runtime::CowRoot::lowers`): the image is never written.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use serde_json::{json, Value};

/// What the first positional argument of `run` is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum First {
    /// An image: the rest of the positionals are the command (replacing the image's Cmd).
    Image(String),
    /// A command, run on the default root (the provisioned rootfs).
    Command,
}

pub(crate) use crate::names::{DEFAULT_IMAGE, DEFAULT_REF};

/// `gocker-alpine` or `gocker-alpine:TAG` (also spelled `docker.io/library/...`): never pulled,
/// it is made by `gocker rootfs build`.
pub(crate) fn is_default_image(name: &str) -> bool {
    let n = name
        .strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("library/"))
        .unwrap_or(name);
    n == DEFAULT_IMAGE
        || n.strip_prefix(DEFAULT_IMAGE)
            .and_then(|t| t.strip_prefix(':'))
            .is_some_and(|t| !t.is_empty() && !t.contains('/'))
}

/// The directories a bare command is looked up in (the default `PATH`).
const PATH_DIRS: [&str; 6] = [
    "usr/local/sbin",
    "usr/local/bin",
    "usr/sbin",
    "usr/bin",
    "sbin",
    "bin",
];

/// Whether `word` is a program in `PATH` of a root whose layers are `lowers` (highest first; a
/// directory tree is one layer).
pub(crate) fn is_command_in(word: &str, lowers: &[PathBuf]) -> bool {
    !word.contains('/')
        && PATH_DIRS
            .iter()
            .any(|d| layer_with(lowers, &format!("{d}/{word}")).is_some())
}

/// A name docker could pull as a Docker Hub short name: lowercase letters, digits and
/// separators (`.`, `_`, `-`), starting with a letter or digit.
fn short_image_name(word: &str) -> bool {
    let mut c = word.chars();
    matches!(c.next(), Some(f) if f.is_ascii_lowercase() || f.is_ascii_digit())
        && word
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
        && word.len() <= 128
}

/// docker reads the first positional as an image, always; gocker also runs a command on its
/// default root (`gocker run /bin/sh`, `gocker run sh`), so the first word is:
/// - a command when it is a path (`/bin/sh`, `./x`) or an assignment (`A=1`);
/// - an image when the store has it (`in_store`), when it can only be an image reference (a
///   registry, a tag or a digest: `localhost:5000/x`, `alpine:3.20`, `x@sha256:...`), or when
///   it is the provisioned default's name (`gocker-alpine`, which is never pulled);
/// - otherwise a command when the default root has it in its `PATH` (`is_command`: `sh`,
///   `true`, `ls`), or when `--entrypoint` is given (the words are its arguments);
/// - otherwise, when it is a valid short name (`alpine`, `nginx`), an image to pull, as docker
///   does; anything else (`Foo`, `-x`) a command (which then fails as docker's would: 127).
pub(crate) fn classify(
    first: &str,
    entrypoint: bool,
    in_store: impl Fn(&str) -> bool,
    is_command: impl FnOnce(&str) -> bool,
) -> First {
    if first.is_empty() || first.starts_with('/') || first.starts_with('.') || first.contains('=') {
        return First::Command;
    }
    if in_store(first)
        || first.contains(':')
        || first.contains('@')
        || first.contains('/')
        || is_default_image(first)
    {
        return First::Image(first.to_owned());
    }
    if entrypoint || is_command(first) || !short_image_name(first) {
        return First::Command;
    }
    First::Image(first.to_owned())
}

/// The root a bare `gocker run COMMAND` runs on (docs/images.md, "The default image").
pub(crate) enum DefaultRoot {
    /// The default image ([`DEFAULT_REF`]) of the caller's store: its layer directories
    /// (lowest first) and config.
    Image(Vec<PathBuf>, Box<ImageConfiguration>),
    /// A provisioned rootfs directory that is not registered as an image.
    Dir(PathBuf),
    /// Nothing provisioned: a read-only view of the host's /.
    HostView,
}

impl DefaultRoot {
    /// The default image when the store has it, else the first of `provisioned` (directories,
    /// in lookup order) with a `/bin/sh`, else the host view.
    pub(crate) fn find(provisioned: &[PathBuf]) -> DefaultRoot {
        match crate::image_cmds::resolve_for_run(DEFAULT_REF) {
            Ok((layers, config)) if !layers.is_empty() => {
                return DefaultRoot::Image(layers, Box::new(config))
            }
            Ok(_) => {}
            Err(e) if e.is::<crate::image_cmds::NoSuchImage>() => {}
            Err(e) => eprintln!(
                "gocker: the default image {DEFAULT_REF} cannot be used ({e:#}); trying the provisioned rootfs directory"
            ),
        }
        match provisioned.iter().find(|p| p.join("bin/sh").exists()) {
            Some(p) => DefaultRoot::Dir(p.clone()),
            None => DefaultRoot::HostView,
        }
    }

    /// Whether `word` is a program in this root's `PATH`.
    pub(crate) fn is_command(&self, word: &str) -> bool {
        match self {
            DefaultRoot::Image(layers, _) => {
                let top_first: Vec<PathBuf> = layers.iter().rev().cloned().collect();
                is_command_in(word, &top_first)
            }
            DefaultRoot::Dir(d) => is_command_in(word, std::slice::from_ref(d)),
            DefaultRoot::HostView => is_command_in(word, &[PathBuf::from("/")]),
        }
    }
}

/// `gocker run IMAGE`: the image's layer directories (lowest first) and config. An image the
/// store lacks is pulled first, as docker's "Unable to find image ... locally"; the default
/// image is never pulled: it is the caller's provisioned rootfs, registered now when it was
/// built before images existed. A failed pull says how to get the image, and which image is the
/// provisioned default.
pub(crate) fn image_for_run(
    name: &str,
) -> Result<(Vec<PathBuf>, ImageConfiguration), crate::failure::Failure> {
    use crate::failure::usage;
    use crate::image_cmds::{pull_image, resolve_for_run, NoSuchImage, Out};
    let fail = |e: anyhow::Error| usage(format!("image {name}: {e:#}"));
    match resolve_for_run(name) {
        Ok(v) => Ok(v),
        Err(e) if e.is::<NoSuchImage>() && is_default_image(name) => {
            match crate::images::register_own_default().map_err(fail)? {
                Some(_) => resolve_for_run(name).map_err(fail),
                None => Err(usage(format!(
                    "image {name}: not in the image store {}: it is gocker's provisioned default image, made by `gocker rootfs build` (never pulled from a registry)",
                    crate::image_cmds::store_dir().display()
                ))),
            }
        }
        Err(e) if e.is::<NoSuchImage>() => {
            eprintln!("Unable to find image '{name}' locally");
            match pull_image(name, true, None, Out::Stderr, false) {
                Ok(_) => resolve_for_run(name).map_err(fail),
                Err(e) => {
                    let plain = !name.contains([':', '/', '@']);
                    Err(usage(format!(
                        "image {name}: not in the image store, and pulling it failed: {e:#}\n\
                         gocker: {}`gocker pull {name}` fetches it where its registry can be reached, \
                         `gocker load -i FILE` loads it from a `gocker save`/`docker save` archive; \
                         the provisioned default image is {DEFAULT_IMAGE} (`gocker run {DEFAULT_IMAGE} COMMAND`, \
                         or just `gocker run COMMAND`; made by `gocker rootfs build`)",
                        if plain {
                            format!("{name:?} is not a command of the default root either; ")
                        } else {
                            String::new()
                        }
                    )))
                }
            }
        }
        Err(e) => Err(fail(e)),
    }
}

pub(crate) use crate::names::IMAGE_ANNOTATION;

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
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
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
            exposed_ports: cfg.exposed_ports().clone().unwrap_or_default(),
            labels: cfg
                .labels()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
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

pub(crate) use crate::signals::parse_signal;

/// The annotation holding what docker's `inspect` shows under `Config` for a container
/// (`Image`, `Labels`, `ExposedPorts`, `StopSignal`): JSON, read back by `gocker stop` and
/// `gocker inspect`.
pub(crate) const CONFIG_ANNOTATION: &str = "io.gocker.config";

/// `--label KEY[=VALUE]` as docker (>= 23) takes it: no `=` is an empty value; an empty key is
/// refused, and so is gocker's own annotation namespace `io.gocker.`.
pub(crate) fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    let k = k.trim();
    if k.is_empty() {
        return Err(format!("--label {s:?}: invalid label: empty name"));
    }
    if k.starts_with("io.gocker.") {
        return Err(format!(
            "--label {s:?}: the io.gocker. namespace is gocker's own (its annotations)"
        ));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// An `ExposedPorts` key as docker writes it: `PORT[-END]/PROTO` (tcp by default; tcp, udp or
/// sctp), ports 1-65535; `None` for anything else.
pub(crate) fn normalize_port(p: &str) -> Option<String> {
    let (ports, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return None;
    }
    let port = |x: &str| x.parse::<u16>().ok().filter(|n| *n > 0);
    match ports.split_once('-') {
        Some((a, b)) if port(a)? <= port(b)? => Some(format!("{a}-{b}/{proto}")),
        Some(_) => None,
        None => Some(format!("{}/{proto}", port(ports)?)),
    }
}

/// What a container's spec records of its image and of `--label`/`--stop-signal`: the labels
/// (the image's, then `--label` over them) as annotations, the image id as
/// [`IMAGE_ANNOTATION`], and docker's `Config` subset as [`CONFIG_ANNOTATION`]. An image's
/// StopSignal that is not a signal, or an ExposedPorts key that is not a port, is ignored with
/// a warning naming it (docker ignores the first silently at `stop`); a bad `--stop-signal`
/// or `--label` is an error.
pub(crate) fn record(
    ann: &mut HashMap<String, String>,
    image: Option<(&str, &ImageDefaults, Option<String>)>,
    label_flags: &[String],
    stop_signal_flag: Option<&str>,
    expose_flags: &[String],
) -> Result<Vec<String>, String> {
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    let mut ports: Vec<String> = Vec::new();
    let mut stop = None;
    if let Some((name, d, _)) = &image {
        labels.extend(d.labels.clone());
        for p in &d.exposed_ports {
            match normalize_port(p) {
                Some(n) if !ports.contains(&n) => ports.push(n),
                Some(_) => {}
                None => eprintln!(
                    "gocker: image {name}: ExposedPorts {p:?} is not PORT[/tcp|udp|sctp]: ignored"
                ),
            }
        }
        if let Some(s) = &d.stop_signal {
            match parse_signal(s) {
                Some((_, canonical)) => stop = Some(canonical),
                None => eprintln!(
                    "gocker: image {name}: StopSignal {s:?} is not a signal: ignored (`gocker stop` sends SIGTERM)"
                ),
            }
        }
    }
    for e in expose_flags {
        let n = normalize_port(e).ok_or_else(|| {
            format!("--expose {e:?}: expected PORT[-END][/tcp|udp|sctp] with ports in 1..65535")
        })?;
        if !ports.contains(&n) {
            ports.push(n);
        }
    }
    for l in label_flags {
        let (k, v) = parse_label(l)?;
        labels.insert(k, v);
    }
    if let Some(s) = stop_signal_flag {
        let (_, canonical) = parse_signal(s).ok_or_else(|| {
            format!("--stop-signal {s:?}: invalid signal (a name such as SIGTERM, TERM or RTMIN+3, or a number 1-64)")
        })?;
        stop = Some(canonical);
    }
    ann.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut config = json!({ "Labels": labels });
    if let Some((name, _, id)) = &image {
        config["Image"] = json!(name);
        if let Some(id) = id {
            ann.insert(IMAGE_ANNOTATION.to_owned(), id.clone());
        }
    }
    if !ports.is_empty() {
        let map: serde_json::Map<String, Value> =
            ports.iter().map(|p| (p.clone(), json!({}))).collect();
        config["ExposedPorts"] = Value::Object(map);
    }
    if let Some(s) = stop {
        config["StopSignal"] = json!(s);
    }
    ann.insert(CONFIG_ANNOTATION.to_owned(), config.to_string());
    Ok(ports)
}

/// The recorded `Config` of a container ([`CONFIG_ANNOTATION`] in its spec's annotations).
pub(crate) fn recorded_config(annotations: Option<&HashMap<String, String>>) -> Option<Value> {
    serde_json::from_str(annotations?.get(CONFIG_ANNOTATION)?).ok()
}

/// The signal `gocker stop` sends first: the recorded StopSignal, else SIGTERM.
pub(crate) fn stop_signal_of(annotations: Option<&HashMap<String, String>>) -> i32 {
    recorded_config(annotations)
        .and_then(|c| c["StopSignal"].as_str().and_then(parse_signal))
        .map_or(libc::SIGTERM, |(n, _)| n)
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
    fn paths_and_commands_are_commands_references_and_other_names_are_images() {
        let none = |_: &str| false;
        let sh_only = |w: &str| w == "sh";
        let c = |w: &str| classify(w, false, none, sh_only);
        assert_eq!(c("/bin/sh"), First::Command);
        assert_eq!(c("./x"), First::Command);
        assert_eq!(c("sh"), First::Command, "a command of the default root");
        assert_eq!(c("A=1"), First::Command);
        assert_eq!(c("Foo"), First::Command, "not an image name");
        assert_eq!(c("-x"), First::Command);
        for r in [
            "alpine:3.20",
            "localhost:5000/test/img",
            "x@sha256:0123",
            "library/alpine",
            "gocker-alpine",
            "gocker-alpine:offline",
        ] {
            assert_eq!(c(r), First::Image(r.into()), "{r}");
        }
        // A short name the default root has no command for: an image to pull, as docker.
        assert_eq!(c("alpine"), First::Image("alpine".into()));
        // With --entrypoint the words are its arguments.
        assert_eq!(classify("hello", true, none, sh_only), First::Command);
        // A plain word that the store knows is an image, even when it is also a command.
        assert_eq!(
            classify("sh", false, |n| n == "sh", sh_only),
            First::Image("sh".into())
        );
        assert!(is_default_image("docker.io/library/gocker-alpine:3.20.3"));
        assert!(!is_default_image("gocker-alpine2"));
        assert!(!is_default_image("gocker-alpine:"));
    }

    #[test]
    fn signals_parse_like_dockers() {
        assert_eq!(parse_signal("SIGUSR1"), Some((10, "SIGUSR1".into())));
        assert_eq!(parse_signal("usr1"), Some((10, "SIGUSR1".into())));
        assert_eq!(parse_signal("15"), Some((15, "SIGTERM".into())));
        assert_eq!(parse_signal("SIGCLD"), Some((17, "SIGCHLD".into())));
        assert_eq!(parse_signal("RTMIN+3"), Some((37, "SIGRTMIN+3".into())));
        assert_eq!(parse_signal("SIGRTMAX-1"), Some((63, "SIGRTMAX-1".into())));
        assert_eq!(parse_signal("64"), Some((64, "SIGRTMAX".into())));
        for bad in [
            "", "0", "65", "-1", "SIGFOO", "RTMIN+31", "RTMAX-0", "TERM;rm",
        ] {
            assert_eq!(parse_signal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn labels_ports_and_the_stop_signal_are_recorded() {
        let d = ImageDefaults {
            labels: [("a", "image"), ("b", "image")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            exposed_ports: s(&["80/tcp", "53/udp", "8080", "http", "0/tcp", "80/tcp"]),
            stop_signal: Some("SIGFOO".into()),
            ..Default::default()
        };
        let mut ann = HashMap::new();
        let exposed = record(
            &mut ann,
            Some(("img", &d, Some("sha256:1".into()))),
            &s(&["b=ours", "flag"]),
            None,
            &s(&["9000-9001/udp", "80"]),
        )
        .unwrap();
        assert_eq!(
            exposed,
            s(&["80/tcp", "53/udp", "8080/tcp", "9000-9001/udp"])
        );
        assert_eq!(ann["a"], "image");
        assert_eq!(ann["b"], "ours");
        assert_eq!(ann["flag"], "");
        assert_eq!(ann[IMAGE_ANNOTATION], "sha256:1");
        let c = recorded_config(Some(&ann)).unwrap();
        assert_eq!(c["Labels"], json!({"a": "image", "b": "ours", "flag": ""}));
        assert_eq!(
            c["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}, "8080/tcp": {}, "9000-9001/udp": {}})
        );
        assert_eq!(
            c["StopSignal"],
            Value::Null,
            "a bad image StopSignal is ignored"
        );
        assert_eq!(stop_signal_of(Some(&ann)), libc::SIGTERM);
        record(&mut ann, Some(("img", &d, None)), &[], Some("usr2"), &[]).unwrap();
        assert_eq!(stop_signal_of(Some(&ann)), libc::SIGUSR2);
        assert!(record(&mut ann, None, &[], Some("SIGNOPE"), &[]).is_err());
        assert!(
            record(&mut ann, None, &[], None, &s(&["http"])).is_err(),
            "--expose http"
        );
        assert!(record(&mut ann, None, &s(&["=x"]), None, &[]).is_err());
        assert!(record(&mut ann, None, &s(&["io.gocker.image.id=x"]), None, &[]).is_err());
        // An image's labels cannot replace gocker's own annotations.
        let hostile = ImageDefaults {
            labels: [
                (IMAGE_ANNOTATION, "sha256:forged"),
                (CONFIG_ANNOTATION, "{}"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            ..Default::default()
        };
        let mut ann = HashMap::new();
        record(
            &mut ann,
            Some(("img", &hostile, Some("sha256:real".into()))),
            &[],
            Some("HUP"),
            &[],
        )
        .unwrap();
        assert_eq!(ann[IMAGE_ANNOTATION], "sha256:real");
        assert_eq!(stop_signal_of(Some(&ann)), libc::SIGHUP);
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
