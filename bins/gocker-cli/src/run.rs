use std::path::PathBuf;

use gocker_runtime::attach::{DetachKeys, Outcome};
use gocker_runtime::state::StateStore;
use gocker_runtime::{spec, Container, ContainerConfig, RootMode, SpawnMode, Status};

use crate::cli::{RmArgs, RunArgs};

pub(crate) use crate::failure::{report, usage, Failure};

/// Where `gocker rootfs build` (and `cargo xtask rootfs`) provisions the Alpine rootfs, in
/// lookup order.
fn provisioned_rootfs() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        v.push(PathBuf::from(d).join("gocker/rootfs/alpine"));
    } else if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        v.push(PathBuf::from(h).join(".local/share/gocker/rootfs/alpine"));
    }
    v.push(PathBuf::from("/var/lib/gocker/rootfs/alpine"));
    v
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    let mut filled = 0;
    while filled < b.len() {
        match rustix::rand::getrandom(&mut b[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(_) => continue,
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) use crate::names::valid_name;

/// Reads `rel` (e.g. `etc/passwd`) inside `root` without leaving it: symlinks resolve as if
/// `root` were `/` (openat2 RESOLVE_IN_ROOT), so a rootfs cannot make gocker read a host file.
/// At most 4 MiB; `None` when it does not exist or cannot be read.
fn read_in_root(root: &std::path::Path, rel: &str) -> Option<String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use std::io::Read;
    let dir = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let fd = rustix::fs::openat2(
        &dir,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let mut f = std::fs::File::from(fd);
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    f.by_ref().take(4 << 20).read_to_string(&mut text).ok()?;
    Some(text)
}

/// `name:x:ID:...` lines of a passwd or group file: the entry whose first field is `name`, as
/// its id (the third field) and the fourth field as a number (a user's primary gid).
fn lookup_id(text: &str, name: &str) -> Option<(u32, Option<u32>)> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 3 || f[0] != name {
            return None;
        }
        let id = f[2].parse().ok()?;
        Some((id, f.get(3).and_then(|g| g.parse().ok())))
    })
}

/// Why a `--user USER[:GROUP]` could not be resolved.
pub(crate) enum UserLookup {
    /// Empty user or group.
    Syntax,
    /// A user name without an entry in /etc/passwd.
    NoUser(String),
    /// A group name without an entry in /etc/group.
    NoGroup(String),
}

/// `--user USER[:GROUP]` as docker resolves it: numbers are taken as they are; names come from
/// the container's /etc/passwd and /etc/group (read confined to `root`), a name's group
/// defaulting to its primary group from /etc/passwd. A numeric uid without a group keeps
/// gocker's default gid (the same number). Shared by `run -u` (the rootfs or the image's
/// layers) and `exec -u` (the running container's root, /proc/PID/root).
pub(crate) fn lookup_user(s: &str, root: &std::path::Path) -> Result<(u32, u32), UserLookup> {
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    if u.is_empty() || g == Some("") {
        return Err(UserLookup::Syntax);
    }
    let (uid, primary) = match u.parse::<u32>() {
        Ok(uid) => (uid, None),
        Err(_) => {
            let passwd = read_in_root(root, "etc/passwd").unwrap_or_default();
            lookup_id(&passwd, u).ok_or_else(|| UserLookup::NoUser(u.to_owned()))?
        }
    };
    let gid = match g {
        None => primary.unwrap_or(uid),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let group = read_in_root(root, "etc/group").unwrap_or_default();
                lookup_id(&group, g)
                    .map(|(gid, _)| gid)
                    .ok_or_else(|| UserLookup::NoGroup(g.to_owned()))?
            }
        },
    };
    Ok((uid, gid))
}

/// [`lookup_user`] for `run -u`: a failure names the flag and the file it read.
pub(crate) fn resolve_user(s: &str, root: &std::path::Path) -> Result<(u32, u32), Failure> {
    let root_shown = root.display().to_string();
    let root_shown = root_shown.trim_end_matches('/');
    lookup_user(s, root).map_err(|e| match e {
        UserLookup::Syntax => usage(format!("--user {s:?}: expected USER[:GROUP]")),
        UserLookup::NoUser(u) => usage(format!(
            "--user {s:?}: no user {u:?} in the container's /etc/passwd ({root_shown}/etc/passwd; numeric ids need no entry)"
        )),
        UserLookup::NoGroup(g) => usage(format!(
            "--user {s:?}: no group {g:?} in the container's /etc/group ({root_shown}/etc/group)"
        )),
    })
}

/// Rootful maps cover container ids 0..SIZE; a `--user` id beyond them (docker accepts any)
/// gets a mapping of its own, to the same offset (base + id), so that it is a real, distinct id.
fn map_user_ids(maps: &mut gocker_idmap::IdMaps, uid: u32, gid: u32, base: u32) {
    for (list, id) in [(&mut maps.uids, uid), (&mut maps.gids, gid)] {
        let mapped = list
            .iter()
            .any(|m| id >= m.inside && id - m.inside < m.count);
        if let (false, Some(outside)) = (mapped, base.checked_add(id)) {
            list.push(gocker_idmap::IdMap {
                inside: id,
                outside,
                count: 1,
            });
        }
    }
}

fn parse_remap(s: &str) -> Result<(u32, u32), Failure> {
    let bad = || {
        usage(format!(
            "--userns-remap {s:?}: expected START[:SIZE] (e.g. 100000:65536)"
        ))
    };
    match s.split_once(':') {
        Some((a, b)) => Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?)),
        None => Ok((
            s.parse().map_err(|_| bad())?,
            gocker_idmap::ROOTFUL_DEFAULT_SIZE,
        )),
    }
}

fn resources(a: &RunArgs) -> Result<Option<oci_spec::runtime::LinuxResources>, Failure> {
    crate::control::limits(
        &crate::control::Limits {
            memory: a.memory.as_deref(),
            memory_swap: a.memory_swap.as_deref(),
            cpus: a.cpus,
            cpu_shares: a.cpu_shares,
            cpuset_cpus: a.cpuset_cpus.as_deref(),
            pids_limit: a.pids_limit,
        },
        false,
    )
}

/// `-v SRC:DST[:ro|rw]` as an OCI bind mount.
fn volume(v: &str) -> Result<oci_spec::runtime::Mount, Failure> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [s, d] => (*s, *d, "rw"),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(usage(format!("--volume {v:?}: expected SRC:DST[:ro]"))),
    };
    if crate::volume_cmds::is_volume_source(src) {
        return crate::volume_cmds::named_mount(v, src, dst, mode);
    }
    if !src.starts_with('/') {
        return Err(usage(format!(
            "--volume {v:?}: the source {src:?} must be an absolute host path or a volume name"
        )));
    }
    if !dst.starts_with('/') {
        return Err(usage(format!(
            "--volume {v:?}: the destination {dst:?} must be an absolute path"
        )));
    }
    if let Err(e) = std::fs::metadata(src) {
        return Err(usage(format!("--volume {v:?}: source {src}: {e}")));
    }
    let mut options = vec![
        "rbind".to_string(),
        "nosuid".to_string(),
        "nodev".to_string(),
    ];
    match mode {
        "ro" => options.push("ro".into()),
        "rw" => {}
        other => {
            return Err(usage(format!(
                "--volume {v:?}: unknown mode {other:?} (ro or rw)"
            )))
        }
    }
    oci_spec::runtime::MountBuilder::default()
        .destination(dst)
        .typ("bind")
        .source(src)
        .options(options)
        .build()
        .map_err(|e| usage(format!("--volume {v:?}: {e}")))
}

/// `--tmpfs DST[:OPTIONS]` as an OCI tmpfs mount.
fn tmpfs(t: &str) -> Result<oci_spec::runtime::Mount, Failure> {
    let (dst, opts) = t.split_once(':').unwrap_or((t, ""));
    if !dst.starts_with('/') {
        return Err(usage(format!(
            "--tmpfs {t:?}: the destination must be an absolute path"
        )));
    }
    let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
    options.extend(opts.split(',').filter(|o| !o.is_empty()).map(str::to_owned));
    oci_spec::runtime::MountBuilder::default()
        .destination(dst)
        .typ("tmpfs")
        .source("tmpfs")
        .options(options)
        .build()
        .map_err(|e| usage(format!("--tmpfs {t:?}: {e}")))
}

/// `--security-opt seccomp=...`: the profile (resolved for the spec's bounding set), with its
/// name for `--debug`; `None` for `unconfined`.
fn seccomp_profile(
    opts: &[String],
    spec: &oci_spec::runtime::Spec,
) -> Result<Option<(String, gocker_seccomp::Profile)>, Failure> {
    let mut choice = "default".to_owned();
    for o in opts {
        match o.split_once(['=', ':']) {
            Some(("seccomp", v)) if !v.is_empty() => choice = v.to_owned(),
            // Always applied (ring2 sets no_new_privs before exec): accepted, as docker does.
            None if o == "no-new-privileges" => {}
            Some(("no-new-privileges", "true")) => {}
            Some(("no-new-privileges", "false")) => {
                return Err(usage(format!(
                    "--security-opt {o:?}: gocker always sets no_new_privs (setuid binaries cannot gain privileges); it cannot be turned off"
                )))
            }
            _ => {
                return Err(usage(format!(
                "--security-opt {o:?}: supported: seccomp=default|strict|unconfined|PROFILE.json, no-new-privileges[=true]"
            )))
            }
        }
    }
    if choice == "unconfined" {
        return Ok(None);
    }
    let profile = match gocker_seccomp::builtin::by_name(&choice) {
        Some(p) => p,
        None => gocker_seccomp::Profile::load_file(std::path::Path::new(&choice))
            .map_err(|e| usage(format!("--security-opt seccomp={choice}: {e} (built-in profiles: default, strict, unconfined)")))?,
    };
    let caps: Vec<String> = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| serde_json::to_value(c).ok()?.as_str().map(str::to_owned))
        .collect();
    Ok(Some((choice, profile.resolve(&caps))))
}

/// One line of an `--env-file`, by docker's rules (its opts.ParseEnvFile): leading whitespace
/// and a UTF-8 BOM on the first line are dropped; blank lines and `#` comments are skipped;
/// `KEY=VALUE` passes VALUE through untouched (no quotes removed, no `export` understood); a
/// bare `KEY` is copied from gocker's environment; a name with a space or tab in it (`export
/// A=1`, `A =1`) is refused, as docker refuses it, rather than becoming a variable `export A`.
fn env_file_line(at: &str, line: &str, first: bool) -> Result<Option<String>, Failure> {
    let line = if first {
        line.strip_prefix('\u{feff}').unwrap_or(line)
    } else {
        line
    };
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let name = line.split_once('=').map(|(k, _)| k).unwrap_or(line);
    if name.is_empty() {
        return Err(usage(format!("{at}: no variable name in {line:?}")));
    }
    if name.contains([' ', '\t']) {
        let hint = match name.strip_prefix("export") {
            Some(rest) if rest.starts_with([' ', '\t']) => format!(
                " (env files are not shell scripts: write `{}` without `export`)",
                line["export".len()..].trim_start()
            ),
            _ => String::new(),
        };
        return Err(usage(format!(
            "{at}: poorly formatted environment: variable {name:?} contains whitespace{hint}"
        )));
    }
    Ok(Some(line.to_owned()))
}

/// The variables of `--env-file` files then `-e` flags (`run` and `exec`), resolved by docker's
/// rules: `KEY=VALUE` as it is, a bare `KEY` copied from gocker's environment (left out when
/// gocker has no such variable); in order, so that a later one wins ([`set_vars`]).
pub(crate) fn env_vars(files: &[PathBuf], flags: &[String]) -> Result<Vec<String>, Failure> {
    let mut vars: Vec<(String, Option<String>)> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| usage(format!("--env-file {}: {e}", file.display())))?;
        for (n, line) in text.lines().enumerate() {
            let at = format!("--env-file {} line {}", file.display(), n + 1);
            vars.push((at.clone(), env_file_line(&at, line, n == 0)?));
        }
    }
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter_map(|(at, v)| Some((at, v?)))
        .collect();
    vars.extend(flags.iter().map(|e| ("--env".to_owned(), e.clone())));
    let mut out = Vec::new();
    for (flag, e) in &vars {
        match e.split_once('=') {
            Some(("", _)) => return Err(usage(format!("{flag} {e:?}: empty variable name"))),
            Some(_) => out.push(e.clone()),
            None => {
                if let Ok(v) = std::env::var(e) {
                    out.push(format!("{e}={v}"));
                }
            }
        }
    }
    Ok(out)
}

/// Sets each `KEY=VALUE` of `vars` in `env`, replacing an earlier value of KEY.
pub(crate) fn set_vars(env: &mut Vec<String>, vars: Vec<String>) {
    for kv in vars {
        let key = kv.split('=').next().unwrap_or_default().to_owned();
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(kv);
    }
}

/// `--hostname`: RFC 1123 labels (letters, digits, inner '-') separated by dots, at most 63
/// characters (docker's rule; the kernel allows 64).
fn check_hostname(h: &str) -> Result<(), Failure> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if h.is_empty() || h.len() > 63 || !h.split('.').all(label_ok) {
        return Err(usage(format!(
            "--hostname {h:?}: invalid hostname (letters, digits and inner '-' in dot-separated labels, at most 63 characters)"
        )));
    }
    Ok(())
}

pub(crate) fn build_config(a: &RunArgs, debug: bool) -> Result<(ContainerConfig, String), Failure> {
    // `run IMAGE [COMMAND]` when the first positional is an image (run_image::classify); a bare
    // command runs on the default root: the default image, else the provisioned rootfs
    // directory, else the host view (docs/images.md, "The default image").
    use crate::run_image::{DefaultRoot, First};
    let mut default_root = None;
    let first = match (&a.rootfs, a.command.first()) {
        (None, Some(first)) => crate::run_image::classify(
            first,
            a.entrypoint.is_some(),
            |n| crate::image_cmds::image_id(n).is_ok(),
            |w| {
                default_root
                    .get_or_insert_with(|| DefaultRoot::find(&provisioned_rootfs()))
                    .is_command(w)
            },
        ),
        _ => First::Command,
    };
    // The image, the index of the command's first word in `a.command`, and the provisioned
    // rootfs directory when a bare command runs on it.
    let (image, cmd_at, default_dir) = match first {
        First::Image(n) => {
            let (layers, config) = crate::run_image::image_for_run(&n)?;
            (Some((n, layers, config)), 1, None)
        }
        First::Command if a.rootfs.is_none() => {
            match default_root.unwrap_or_else(|| DefaultRoot::find(&provisioned_rootfs())) {
                DefaultRoot::Image(layers, config) => {
                    eprintln!(
                        "gocker: using the provisioned rootfs: the default image {}",
                        crate::run_image::DEFAULT_REF
                    );
                    let n = crate::run_image::DEFAULT_REF.to_owned();
                    (Some((n, layers, *config)), 0, None)
                }
                DefaultRoot::Dir(p) => (None, 0, Some(p)),
                DefaultRoot::HostView => (None, 0, None),
            }
        }
        First::Command => (None, 0, None),
    };
    let image = image.map(|(n, mut layers, config)| {
        layers.reverse(); // highest first, as overlayfs stacks lowerdir
        let defaults = crate::run_image::ImageDefaults::from_config(&config);
        (layers, defaults, config, n)
    });
    // docker's image Healthcheck, for the monitor (-d, -it) to run unless --no-healthcheck.
    let monitored = a.detach || (a.interactive && a.tty);
    let image_health = match &image {
        Some((_, _, _, n)) if monitored && !a.no_healthcheck => {
            crate::image_cmds::image_healthcheck(n)
        }
        _ => None,
    };
    let (rootfs, mode) = match (&a.rootfs, &image) {
        (_, Some((layers, _, _, image_name))) => {
            if layers.is_empty() {
                return Err(usage(format!("image {image_name}: it has no layers")));
            }
            let store = crate::image_cmds::store_dir();
            let at = crate::run_image::attach_point(&store)
                .map_err(|e| usage(format!("{}: {e}", store.display())))?;
            (at, RootMode::Rootfs)
        }
        (rootfs, None) => match rootfs {
            Some(p) => {
                let abs = std::path::absolute(p)
                    .map_err(|e| usage(format!("--rootfs {}: {e}", p.display())))?;
                match std::fs::metadata(&abs) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        return Err(usage(format!(
                            "--rootfs {}: not a directory",
                            abs.display()
                        )))
                    }
                    Err(e) => return Err(usage(format!("--rootfs {}: {e}", abs.display()))),
                }
                (abs, RootMode::Rootfs)
            }
            None => match default_dir {
                Some(p) => {
                    eprintln!("gocker: using the provisioned rootfs {}", p.display());
                    (p, RootMode::Rootfs)
                }
                None => {
                    eprintln!(
                    "gocker: no rootfs provisioned (`gocker rootfs build` makes one); using a read-only view of the host's / with a private /tmp"
                );
                    (PathBuf::from("/"), RootMode::HostView)
                }
            },
        },
    };

    let id = random_id();
    let short = id[..12].to_owned();
    let name = a.name.clone().unwrap_or_else(|| short.clone());
    if !valid_name(&name) {
        return Err(usage(format!(
            "--name {name:?}: use letters, digits, '_', '.', '-' (starting with a letter or digit)"
        )));
    }

    let argv = match &image {
        Some((_, defaults, _, image_name)) => {
            let argv = defaults.argv(a.entrypoint.as_deref(), &a.command[cmd_at..]);
            if argv.first().map(|c| c.is_empty()).unwrap_or(true) {
                return Err(usage(format!(
                    "image {image_name}: no command given and the image has no Entrypoint or Cmd"
                )));
            }
            argv
        }
        None => {
            let mut argv = a.entrypoint.iter().cloned().collect::<Vec<_>>();
            argv.extend(a.command.iter().cloned());
            if argv.first().map(|c| c.is_empty()).unwrap_or(true) {
                return Err(usage("no command given (COMMAND or --entrypoint)"));
            }
            argv
        }
    };
    let rootfs_dir = rootfs.clone();
    let mut spec = spec::default_spec(rootfs, argv)?;
    if let Some(h) = &a.hostname {
        check_hostname(h)?;
    }
    // --pid, --ipc, --uts, --network container:NAME, --userns (nsflags.rs).
    let shares = crate::nsflags::Shares::from_args(a)?;
    let hostname = a
        .hostname
        .clone()
        .or_else(|| shares.hostname())
        .unwrap_or_else(|| short.clone());
    // Set only in a UTS namespace of its own (with a shared one, it is the host's or NAME's).
    spec.set_hostname(shares.own_uts().then(|| hostname.clone()));
    // The image's Labels and `--label` as annotations of the container, the image's id, and
    // docker's `Config` (Labels, ExposedPorts, StopSignal) for `inspect` and `stop`.
    let mut ann = spec.annotations().clone().unwrap_or_default();
    let recorded = image.as_ref().map(|(_, defaults, _, n)| {
        let id = crate::image_cmds::image_id(n).ok();
        (n.as_str(), defaults, id)
    });
    let exposed = crate::run_image::record(
        &mut ann,
        recorded,
        &a.label,
        a.stop_signal.as_deref(),
        &a.expose,
    )
    .map_err(usage)?;
    spec.set_annotations(Some(ann));
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    if mode == RootMode::HostView {
        mounts.extend(spec::host_view_mounts());
    }
    for v in &a.volumes {
        mounts.push(volume(v)?);
    }
    for t in &a.tmpfs {
        mounts.push(tmpfs(t)?);
    }
    spec.set_mounts(Some(mounts));
    let root = spec.root_mut().as_mut().expect("default spec has a root");
    root.set_readonly(Some(a.read_only || mode == RootMode::HostView));

    let process = spec
        .process_mut()
        .as_mut()
        .expect("default spec has a process");
    let mut env = process.env().clone().unwrap_or_default();
    if let Some((_, defaults, _, _)) = &image {
        env = crate::run_image::merge_env(&env, &defaults.env);
    }
    env.push(format!("HOSTNAME={hostname}"));
    if a.tty {
        // As docker: a terminal comes with TERM (-e TERM=... or --env-file still win).
        env.push("TERM=xterm".into());
    }
    set_vars(&mut env, env_vars(&a.env_file, &a.env)?);
    process.set_env(Some(env));
    let image_workdir = image.as_ref().and_then(|i| i.1.working_dir.clone());
    if let Some(w) = a.workdir.as_ref().or(image_workdir.as_ref()) {
        if !w.starts_with('/') {
            return Err(usage(format!("--workdir {w:?}: must be an absolute path")));
        }
        process.set_cwd(w.into());
    }
    // The image's User, by name through the image's own /etc/passwd (in whichever layer the
    // container sees it), unless -u says otherwise.
    let image_user = image.as_ref().and_then(|i| i.1.user.clone());
    let user_root = match &image {
        Some((layers, _, _, _)) => {
            crate::run_image::layer_with(layers, "etc/passwd").unwrap_or_else(|| rootfs_dir.clone())
        }
        None => rootfs_dir.clone(),
    };
    let user_ids = match a.user.as_ref().or(image_user.as_ref()) {
        Some(u) => Some(resolve_user(u, &user_root)?),
        None => None,
    };
    if let Some((uid, gid)) = user_ids {
        let user = process.user_mut();
        user.set_uid(uid);
        user.set_gid(gid);
    }
    // --ulimit, --sysctl, --shm-size, --group-add (group names as -u's, from the same root).
    let group = |name: &str| {
        let text = read_in_root(&user_root, "etc/group").unwrap_or_default();
        lookup_id(&text, name).map(|(gid, _)| gid)
    };
    crate::runflags::apply(a, &mut spec, &group)?;

    let seccomp = seccomp_profile(&a.security_opt, &spec)?;
    let linux = spec.linux_mut().as_mut().expect("default spec has linux");
    match &seccomp {
        Some((name, p)) => {
            let oci = p
                .to_oci()
                .map_err(|e| usage(format!("--security-opt seccomp={name}: {e}")))?;
            if debug {
                // The hash the runtime keys its BPF cache with (of the profile as the spec carries it).
                let h = gocker_seccomp::Profile::from_oci(&oci)
                    .map(|q| q.hash())
                    .unwrap_or_default();
                tracing::debug!(
                    "seccomp profile {name}: hash {}, {} rules, default action {:?}",
                    &h[..16.min(h.len())],
                    p.rule_count(),
                    p.default_action
                );
            }
            linux.set_seccomp(Some(oci));
        }
        None => {
            if debug {
                tracing::debug!("seccomp profile unconfined: no filter");
            }
        }
    }
    if let Some(r) = resources(a)? {
        linux.set_resources(Some(r));
    }
    // -P: every exposed port on a kernel-chosen host port (sctp cannot be forwarded: said so).
    let publish_all: Vec<String> = if a.publish_all {
        exposed
            .iter()
            .filter(|p| {
                let sctp = p.ends_with("/sctp");
                if sctp {
                    eprintln!("gocker: -P: {p} is not published (gocker forwards tcp and udp)");
                }
                !sctp
            })
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let network = crate::netflags::network(a, &publish_all, &name)?;
    if network.mode == gocker_net::Mode::Host {
        let ns = linux.namespaces().clone().unwrap_or_default();
        linux.set_namespaces(Some(
            ns.into_iter()
                .filter(|n| n.typ() != oci_spec::runtime::LinuxNamespaceType::Network)
                .collect(),
        ));
    }
    shares.apply(&mut spec)?;
    crate::netflags::capabilities(&mut spec, a)?;
    crate::privflags::apply(&mut spec, &a.device, a.privileged)?;
    crate::port::record(&mut spec, &network.ports);
    crate::netflags::record(&mut spec, &network);

    let euid = rustix::process::geteuid().as_raw();
    let userns_maps = shares.idmaps(euid == 0)?;
    if shares.userns == crate::nsflags::Userns::KeepId && user_ids.is_none() {
        // keep-id: the command runs as you, with your ids (podman's keep-id).
        if let Some(p) = spec.process_mut().as_mut() {
            p.user_mut().set_uid(euid);
            p.user_mut().set_gid(rustix::process::getegid().as_raw());
        }
    }
    let idmaps = if let Some(maps) = userns_maps {
        maps
    } else if euid == 0 {
        let (base, size) = match &a.userns_remap {
            Some(s) => parse_remap(s)?,
            None => (
                gocker_idmap::ROOTFUL_DEFAULT_BASE,
                gocker_idmap::ROOTFUL_DEFAULT_SIZE,
            ),
        };
        let mut maps = gocker_idmap::IdMaps::rootful(base, size)
            .map_err(|e| usage(format!("--userns-remap: {e}")))?;
        if let Some((uid, gid)) = user_ids {
            if a.userns_remap.is_some() && (uid >= size || gid >= size) {
                return Err(usage(format!(
                    "--user {}: uid {uid}:gid {gid} is outside --userns-remap {base}:{size} (container ids 0..{size})",
                    a.user.as_deref().unwrap_or_default()
                )));
            }
            map_user_ids(&mut maps, uid, gid, base);
        }
        maps
    } else {
        if a.userns_remap.is_some() {
            return Err(usage("--userns-remap needs root; rootless containers map your own uid and /etc/subuid range"));
        }
        let gid = rustix::process::getegid().as_raw();
        gocker_idmap::IdMaps::rootless(euid, gid, &crate::host::user_name(euid))
            .map_err(|e| usage(e.to_string()))?
    };

    let mut cfg = ContainerConfig::new(id, spec, idmaps);
    shares.network_files(&mut cfg);
    if mode == RootMode::Rootfs {
        // A copy-on-write root over --rootfs: no run writes into it (docs/storage-roots.md).
        cfg.cow = Some(gocker_runtime::CowRoot {
            lowers: image.as_ref().map(|i| i.0.clone()).unwrap_or_default(),
            ..Default::default()
        });
    }
    cfg.root_mode = mode;
    cfg.stdin = a.interactive;
    cfg.tty = a.tty;
    if a.tty {
        set_console_size(&mut cfg.spec);
    }
    cfg.idmap_rootfs = !a.no_idmap;
    cfg.forward_signals = true;
    cfg.network = network;
    cfg.stop_timeout = Some(std::time::Duration::from_secs(a.stop_timeout));
    cfg.init = a.init;
    cfg.monitor = crate::monitor_flags::monitor_options(a, image_health.as_ref())?;
    workspace(a, &mut cfg)?;
    match std::env::var("GOCKER_SPAWN").as_deref() {
        Ok("exec") => {
            let me = PathBuf::from("/proc/self/exe");
            cfg.spawn = SpawnMode::Exec {
                ring1: me.clone(),
                ring2: me,
            };
        }
        Ok("fork") | Err(_) => {}
        Ok(other) => {
            return Err(usage(format!(
                "GOCKER_SPAWN={other:?}: expected fork or exec"
            )))
        }
    }
    // Named volumes: created when missing, filled from the root when empty (volume_cmds.rs).
    let lowers = image.as_ref().map(|i| i.0.clone());
    crate::volume_cmds::prepare_for_run(
        &a.volumes,
        &mut cfg.spec,
        &lowers.unwrap_or_else(|| vec![rootfs_dir.clone()]),
    )?;
    if debug {
        tracing::debug!(maps = ?cfg.idmaps, "user namespace");
        if let Ok(j) = serde_json::to_string(&cfg.spec) {
            tracing::debug!(spec = %j, "OCI spec");
        }
    }
    Ok((cfg, name))
}

/// Workspace mode and its flags (docs/workspace-mode.md). The flags work in any mode; workspace
/// mode changes the defaults (lift on, own /etc files) and reads the GOCKER_WORKSPACE_* variables.
fn workspace(a: &RunArgs, cfg: &mut ContainerConfig) -> Result<(), Failure> {
    use gocker_runtime::workspace::{parse_limit, Bind, Workspace};
    let mut ws = if a.workspace || Workspace::requested_by_env() {
        Workspace::from_env()?
    } else {
        Workspace::default()
    };
    for b in &a.binds {
        ws.binds
            .push(Bind::parse(b).map_err(|e| usage(format!("--bind: {e}")))?);
    }
    if let Some(s) = &a.supervisor {
        ws.supervisor = Some(s.clone());
    }
    if let Some(c) = &a.core_limit {
        ws.core_limit = Some(parse_limit("--core-limit", c)?);
    }
    if let Some(e) = &a.enclave {
        ws.rings.enclave = Some(vec!["/bin/sh".into(), "-c".into(), e.clone()]);
    }
    if let Some(s) = a.debug_sleep {
        ws.rings.debug_sleep = Some(std::time::Duration::from_secs(s));
    }
    if let Some(l) = &a.lift {
        ws.rings.lift = l.parse().map_err(|e| usage(format!("--lift: {e}")))?;
    }
    ws.apply(cfg)?;
    Ok(())
}

/// `process.consoleSize` from our terminal (stdin, else stdout), so that the container's terminal
/// has the right size before its first output, also when a monitor creates it.
fn set_console_size(spec: &mut oci_spec::runtime::Spec) {
    let size = rustix::termios::tcgetwinsize(rustix::stdio::stdin())
        .or_else(|_| rustix::termios::tcgetwinsize(rustix::stdio::stdout()));
    let (Ok(ws), Some(p)) = (size, spec.process_mut().as_mut()) else {
        return;
    };
    if ws.ws_row == 0 || ws.ws_col == 0 {
        return;
    }
    if let Ok(b) = oci_spec::runtime::BoxBuilder::default()
        .height(u64::from(ws.ws_row))
        .width(u64::from(ws.ws_col))
        .build()
    {
        p.set_console_size(Some(b));
    }
}

/// `--detach-keys`, or docker's default.
pub(crate) fn detach_keys(flag: Option<&str>) -> Result<DetachKeys, Failure> {
    match flag {
        None => Ok(DetachKeys::default()),
        Some(k) => k.parse().map_err(|e| usage(format!("--detach-keys: {e}"))),
    }
}

/// `--detach-keys` of `run` and `exec`, which needs -i and -t; or docker's default.
pub(crate) fn terminal_detach_keys(
    flag: Option<&str>,
    interactive_tty: bool,
) -> Result<DetachKeys, Failure> {
    if flag.is_some() && !interactive_tty {
        return Err(usage(
            "--detach-keys needs -i and -t (an interactive terminal)",
        ));
    }
    detach_keys(flag)
}

/// The end of an attached session (`run -it`, `attach`): the exit code for gocker.
pub(crate) fn finish_attached(name: &str, outcome: Outcome) -> Result<i32, Failure> {
    match outcome {
        Outcome::Exited { code, oom_kills } => {
            if oom_kills > 0 {
                eprintln!("gocker: container {name} was killed by the OOM killer (memory limit reached; memory.events oom_kill {oom_kills})");
            }
            Ok(code)
        }
        Outcome::Detached => {
            eprintln!("\r\ngocker: detached from {name}, which keeps running (`gocker attach {name}` to come back, `gocker stop {name}` to stop it)");
            Ok(0)
        }
        Outcome::Interrupted(sig) => {
            eprintln!("\r\ngocker: signal {sig}: detached from {name}, which keeps running");
            Ok(128 + sig)
        }
        Outcome::Lost => Err(usage(format!(
            "lost the monitor of container {name} (see `gocker ps -a` and `gocker logs {name}`)"
        ))),
    }
}

/// docker's CheckTty for `run -it` and `exec -it` (not with -d): an interactive terminal needs
/// stdin to be a terminal, else `the input device is not a TTY` and exit 1, before anything is
/// created. `-t` alone is fine (the container still gets its own terminal).
pub(crate) fn check_tty(interactive: bool, tty: bool) -> Result<(), Failure> {
    if interactive && tty && !rustix::termios::isatty(rustix::stdio::stdin()) {
        return Err(Failure {
            code: 1,
            message: "the input device is not a TTY".into(),
        });
    }
    Ok(())
}

/// `gocker run /bin/sh` typed at a terminal: as docker, stdin is not attached without -i, so
/// the shell reads nothing and exits at once. Said in one line, for a bare shell only (other
/// commands run without input as docker runs them, silently).
fn stdin_notice(a: &RunArgs) -> Option<String> {
    const SHELLS: [&str; 8] = ["sh", "ash", "bash", "dash", "zsh", "ksh", "mksh", "fish"];
    let argv: Vec<&String> = a.entrypoint.iter().chain(&a.command).collect();
    let [cmd] = argv.as_slice() else {
        return None;
    };
    let base = cmd.rsplit('/').next().unwrap_or(cmd);
    let at_terminal = rustix::termios::isatty(rustix::stdio::stdin());
    (!a.interactive && !a.detach && at_terminal && SHELLS.contains(&base)).then(|| {
        format!(
            "gocker: stdin is not attached (no -i): {cmd} reads nothing and exits; `gocker run -it ... {cmd}` gives an interactive shell"
        )
    })
}

fn run_inner(mut a: RunArgs, debug: bool) -> Result<i32, Failure> {
    // --mount is -v or --tmpfs spelled long: one parser, one copy-up for named volumes.
    crate::runflags::expand_mounts(&mut a)?;
    let keys = terminal_detach_keys(a.detach_keys.as_deref(), a.interactive && a.tty)?;
    if !a.detach {
        check_tty(a.interactive, a.tty)?;
    }
    if let Some(n) = stdin_notice(&a) {
        eprintln!("{n}");
    }
    let (cfg, name) = build_config(&a, debug)?;
    let store = StateStore::open(StateStore::default_root())?;
    // --cidfile: written before the container exists, kept once it does.
    let cid = a
        .cidfile
        .as_deref()
        .map(|p| crate::runflags::CidFile::create(p, &cfg.id))
        .transpose()?;
    let keep = |cid: Option<crate::runflags::CidFile>| cid.map(crate::runflags::CidFile::keep);
    if a.detach {
        if a.interactive && !a.tty {
            return Err(usage(
                "-d and -i cannot be combined without -t (a detached container's stdin is its terminal: use -dit, then `gocker attach`)",
            ));
        }
        let id = gocker_runtime::detach::run_detached(cfg, store, &name, a.rm)?;
        keep(cid);
        println!("{id}");
        return Ok(0);
    }
    if a.interactive && a.tty {
        // An interactive terminal runs under a monitor, like -d, and we attach to it: the detach
        // keys can then leave it running.
        let (_id, session) = gocker_runtime::detach::run_attached(cfg, store, &name, a.rm)?;
        keep(cid);
        return finish_attached(&name, session.relay(true, keys)?);
    }
    // A foreground container's output is kept in its log too (`gocker logs NAME` afterwards, as
    // with docker); a --rm one leaves nothing to read it from, and its output goes straight out.
    let log_dir = store.container_dir(&cfg.id);
    let mut tee = (!a.rm && !a.tty)
        .then(gocker_runtime::logs::Tee::divert)
        .transpose()?;
    let mut c = Container::create(cfg, store, &name, a.rm)?;
    keep(cid);
    for n in &c.notes {
        tracing::debug!("{n}");
    }
    if let Some(t) = &mut tee {
        t.start(&log_dir)?;
    }
    c.start()?;
    let status = c.wait()?;
    if let Some(t) = tee {
        t.finish();
    }
    if c.oom_killed() {
        eprintln!(
            "gocker: container {name} was killed by the OOM killer (memory limit reached; memory.events oom_kill {})",
            c.oom_kills()
        );
    }
    if a.rm {
        c.delete()?;
    }
    Ok(status.code())
}

pub fn run(a: RunArgs, debug: bool) -> i32 {
    match run_inner(a, debug) {
        Ok(code) => code,
        Err(f) => report(f),
    }
}

pub fn rm(a: RmArgs) -> i32 {
    let store = match StateStore::open(StateStore::default_root()) {
        Ok(s) => s,
        Err(e) => return report(e.into()),
    };
    store.collect_stale();
    let mut code = 0;
    for c in &a.containers {
        let r = store.lookup(c).map_err(Failure::from).and_then(|s| {
            let live = s.status != Status::Stopped && StateStore::monitor_alive(&s);
            if live || crate::monitor_flags::restarting(&store, &s) {
                if !a.force && s.paused() {
                    return Err(usage(format!(
                        "You cannot remove a paused container {c}. Unpause and then stop the container before attempting removal or force remove"
                    )));
                }
                if !a.force {
                    return Err(usage(format!(
                        "container {c} is running: stop it first or use `gocker rm -f`"
                    )));
                }
                // Its monitor restarts it no more (`--restart`).
                crate::monitor_flags::mark_stopped_by_user(&store, &s)?;
                // A record's pid that is not a process id is not acted on, nor that of a run
                // that has ended (restarting: the pid may be another process's by now).
                if let Some(pid) = s
                    .pid
                    .filter(|_| live)
                    .and_then(rustix::process::Pid::from_raw)
                {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
                // Let the monitor record the exit and release what it holds before the state goes
                // (as `stop`, up to 30 s: a loaded host delays it by seconds).
                let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
                while StateStore::monitor_alive(&s) && std::time::Instant::now() < end {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
            store.remove(&s.id, &s.name).map_err(Failure::from)?;
            println!("{c}");
            Ok(())
        });
        if let Err(f) = r {
            code = report(f);
        }
    }
    code
}
