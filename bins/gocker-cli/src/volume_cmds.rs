//! Named volumes: `gocker volume create|ls|inspect|rm|prune` and `run -v NAME:/dst`, with
//! docker's names, flags and output (docs/volumes.md). The store is gocker-storage's
//! [`VolumeStore`]: per user, beside the image store (root: /var/lib/gocker/volumes; others:
//! $XDG_DATA_HOME/gocker/volumes, default ~/.local/share/gocker/volumes).
//!
//! A container records the named volumes it mounts in its spec's annotation
//! [`VOLUMES_ANNOTATION`] (the state store's `config.json`), so that `volume rm` and `volume
//! prune` know which volumes a container — running, or stopped and not removed — uses.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use gocker_runtime::StateStore;
use gocker_storage::volume::{validate_name, Volume, VolumeError, VolumeStore};

use crate::failure::{usage, Failure};

/// The spec annotation listing the named volumes a container mounts (comma-separated).
pub const VOLUMES_ANNOTATION: &str = "io.gocker.volumes";

const STORE_HELP: &str = "Volumes are kept per user: root's in /var/lib/gocker/volumes, another \
user's in $XDG_DATA_HOME/gocker/volumes (default ~/.local/share/gocker/volumes), each as \
NAME/_data (what containers mount) and NAME/meta.json. See docs/volumes.md.";

/// `volume ...`: flattened into gocker's top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum VolumeCommands {
    /// Manage named volumes (create, ls, inspect, rm, prune). `run -v NAME:/dst` mounts one,
    /// creating it when missing and, when it is empty, copying in what the image has at /dst.
    #[command(subcommand, after_help = STORE_HELP)]
    Volume(VolumeCommand),
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (a random 64-hex name without NAME) and print its name. Creating a volume
    /// that exists succeeds and leaves it as it is.
    #[command(after_help = STORE_HELP)]
    Create(CreateArgs),
    /// List volumes (DRIVER, VOLUME NAME).
    #[command(alias = "list", after_help = STORE_HELP)]
    Ls(LsArgs),
    /// Show volumes as a JSON array (Name, Driver, Mountpoint, Labels, Scope, CreatedAt, Options).
    #[command(after_help = STORE_HELP)]
    Inspect(InspectArgs),
    /// Remove volumes. A volume that a container uses (running, or stopped and not removed) is
    /// refused, naming the container: remove the container first (`gocker rm`).
    #[command(alias = "remove", after_help = STORE_HELP)]
    Rm(RmArgs),
    /// Remove every volume that no container uses (running, or stopped and not removed).
    #[command(after_help = STORE_HELP)]
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Volume name: [a-zA-Z0-9][a-zA-Z0-9_.-]* (default: a random 64-hex name).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// Set a label (KEY=VALUE, or KEY for an empty value; repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Volume driver: only `local` (a directory on the host).
    #[arg(short, long, default_value = "local", value_name = "DRIVER")]
    pub driver: String,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only print volume names.
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter: name=SUBSTRING, dangling=true|false (used by no container), driver=local,
    /// label=KEY or label=KEY=VALUE (repeatable; all must match, several name= match any).
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// A Go template as docker's, for each volume: fields Name, Driver, Scope, Mountpoint,
    /// Labels, Label "KEY" (`{{.Name}}`); `table ` first: with a header row; `json`: each
    /// volume as a JSON line.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A Go template as docker's, evaluated over each volume's JSON (`{{.Mountpoint}}`,
    /// `{{json .Labels}}`); `json`: each volume's JSON on one line.
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not fail on volumes that do not exist. A volume in use is refused all the same
    /// (docker's rule): remove its containers first.
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(short, long)]
    pub force: bool,
    /// Accepted for docker compatibility: gocker has no anonymous volumes, and prune removes
    /// every unused volume either way.
    #[arg(short, long)]
    pub all: bool,
    /// Only volumes matching: label=KEY[=VALUE], label!=KEY[=VALUE] (repeatable).
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// The store and who uses what

/// The volume store directory of the calling user, beside the rootfs and image stores.
pub fn store_dir() -> PathBuf {
    crate::host::data_dir().join("volumes")
}

fn open() -> Result<VolumeStore, Failure> {
    VolumeStore::open(store_dir()).map_err(fail)
}

fn fail(e: VolumeError) -> Failure {
    let code = match e {
        VolumeError::InvalidName { .. } | VolumeError::UnsupportedDriver { .. } => 125,
        _ => 1,
    };
    Failure {
        code,
        message: e.to_string(),
    }
}

/// A container that uses a volume, for messages.
#[derive(Debug, Clone)]
struct User {
    name: String,
    id: String,
    running: bool,
}

/// Volume name → the containers of the state store that use it: recorded in their spec's
/// [`VOLUMES_ANNOTATION`], or mounting a directory of the volume store.
/// Unreadable container records fail: no volume is removed without knowing who uses it.
fn users(store: &VolumeStore) -> Result<BTreeMap<String, Vec<User>>, Failure> {
    let mut map: BTreeMap<String, Vec<User>> = BTreeMap::new();
    let unknown = |e: gocker_runtime::RuntimeError| {
        usage(format!(
            "cannot tell which containers use volumes: the container state store: {e}"
        ))
    };
    let st = StateStore::open(StateStore::default_root()).map_err(unknown)?;
    st.collect_stale();
    let list = st.list().map_err(unknown)?;
    for c in list {
        let spec: serde_json::Value = std::fs::read(st.container_dir(&c.id).join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let mut names = BTreeSet::new();
        if let Some(s) = spec["annotations"][VOLUMES_ANNOTATION].as_str() {
            names.extend(s.split(',').filter(|n| !n.is_empty()).map(str::to_owned));
        }
        for m in spec["mounts"].as_array().into_iter().flatten() {
            if let Some(src) = m["source"].as_str() {
                if let Ok(rest) = Path::new(src).strip_prefix(store.root()) {
                    if let Some(n) = rest.components().next() {
                        names.insert(n.as_os_str().to_string_lossy().into_owned());
                    }
                }
            }
        }
        let running = c.status != gocker_runtime::Status::Stopped && StateStore::monitor_alive(&c);
        for n in names {
            map.entry(n).or_default().push(User {
                name: c.name.clone(),
                id: c.id.clone(),
                running,
            });
        }
    }
    Ok(map)
}

fn describe(users: &[User]) -> String {
    users
        .iter()
        .map(|u| {
            format!(
                "{} ({}, {})",
                u.name,
                &u.id[..12.min(u.id.len())],
                if u.running { "running" } else { "stopped" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// run -v NAME:/dst

/// True when a `-v` source names a volume rather than a host path: not absolute and not
/// starting with `.` (docker's rule; `./dir` is a relative host path, which gocker refuses).
pub fn is_volume_source(src: &str) -> bool {
    !src.starts_with('/') && !src.starts_with('.')
}

/// `-v NAME:DST[:OPTS]` as an OCI bind mount of the volume's `_data` (OPTS: ro, rw, nocopy,
/// comma-separated). The volume is created and filled by [`prepare_for_run`].
pub fn named_mount(
    v: &str,
    src: &str,
    dst: &str,
    mode: &str,
) -> Result<oci_spec::runtime::Mount, Failure> {
    validate_name(src).map_err(|e| usage(format!("--volume {v:?}: {e}")))?;
    if !dst.starts_with('/') {
        return Err(usage(format!(
            "--volume {v:?}: the destination {dst:?} must be an absolute path"
        )));
    }
    let mut options = vec!["rbind".to_string(), "nosuid".into(), "nodev".into()];
    for o in mode.split(',') {
        match o {
            "ro" => options.push("ro".into()),
            "rw" | "nocopy" => {}
            other => {
                return Err(usage(format!(
                    "--volume {v:?}: unknown option {other:?} (ro, rw, nocopy)"
                )))
            }
        }
    }
    let data = store_dir().join(src).join(gocker_storage::volume::DATA_DIR);
    oci_spec::runtime::MountBuilder::default()
        .destination(dst)
        .typ("bind")
        .source(data)
        .options(options)
        .build()
        .map_err(|e| usage(format!("--volume {v:?}: {e}")))
}

/// For `run`: creates the named volumes of `-v` that do not exist (as docker does), copies into
/// each empty one what the root (`lowers`: the image's layers, highest first, or the rootfs)
/// has at its destination (unless `nocopy`), and records them in the spec's
/// [`VOLUMES_ANNOTATION`]. A volume this call created is removed again when a later step fails.
pub fn prepare_for_run(
    volumes: &[String],
    spec: &mut oci_spec::runtime::Spec,
    lowers: &[PathBuf],
) -> Result<(), Failure> {
    let named: Vec<(&str, &str, bool)> = volumes
        .iter()
        .filter_map(|v| {
            let parts: Vec<&str> = v.split(':').collect();
            let (src, dst, mode) = match parts.as_slice() {
                [s, d] => (*s, *d, ""),
                [s, d, m] => (*s, *d, *m),
                _ => return None,
            };
            is_volume_source(src).then_some((src, dst, mode.split(',').any(|o| o == "nocopy")))
        })
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    let store = open()?;
    let lock = store.lock().map_err(fail)?;
    let mut created = Vec::new();
    let r = (|| -> Result<(), Failure> {
        for (name, dst, nocopy) in &named {
            let (_, new) = store
                .create(
                    &lock,
                    Some(name),
                    gocker_storage::volume::DRIVER,
                    BTreeMap::new(),
                )
                .map_err(fail)?;
            if new {
                created.push(name.to_string());
                gocker_runtime::state::record_event(
                    gocker_runtime::events::Kind::Volume,
                    "create",
                    name,
                    &[("driver", gocker_storage::volume::DRIVER)],
                );
            }
            if *nocopy {
                continue;
            }
            let mut copy = || -> Result<(), String> {
                let report = store
                    .copy_up(&lock, name, lowers, dst)
                    .map_err(|e| e.to_string())?;
                for s in &report.skipped {
                    eprintln!("gocker: volume {name}: copy-up of {dst} left out {s}");
                }
                tracing::debug!(
                    "volume {name}: copy-up of {dst}: {} files, {} dirs, {} symlinks, {} bytes",
                    report.files,
                    report.dirs,
                    report.symlinks,
                    report.bytes
                );
                Ok(())
            };
            // Rootless: as root of a user namespace with the container's maps, so that the
            // copies keep the owners the container sees (the user's subordinate ids).
            let r = if rustix::process::geteuid().is_root() {
                copy()
            } else {
                in_userns(&mut copy).map_err(|e| format!("{e:#}"))
            };
            r.map_err(usage)?;
        }
        Ok(())
    })();
    if r.is_err() {
        for n in &created {
            let _ = store.remove(&lock, n);
        }
    }
    r?;
    let mut ann = spec.annotations().clone().unwrap_or_default();
    let list: BTreeSet<&str> = named.iter().map(|n| n.0).collect();
    ann.insert(
        VOLUMES_ANNOTATION.to_owned(),
        list.into_iter().collect::<Vec<_>>().join(","),
    );
    spec.set_annotations(Some(ann));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Commands

pub fn main(c: VolumeCommands) -> i32 {
    let VolumeCommands::Volume(c) = c;
    let (what, r) = match c {
        VolumeCommand::Create(a) => ("volume create", create(&a)),
        VolumeCommand::Ls(a) => ("volume ls", ls(&a)),
        VolumeCommand::Inspect(a) => ("volume inspect", inspect(&a)),
        VolumeCommand::Rm(a) => ("volume rm", rm(&a)),
        VolumeCommand::Prune(a) => ("volume prune", prune(&a)),
    };
    match r {
        Ok(code) => code,
        Err(f) => {
            eprintln!("gocker: {what}: {}", f.message);
            f.code
        }
    }
}

fn parse_labels(labels: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    let mut m = BTreeMap::new();
    for l in labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            return Err(usage(format!(
                "--label {l:?}: empty key (expected KEY=VALUE)"
            )));
        }
        m.insert(k.to_owned(), v.to_owned());
    }
    Ok(m)
}

fn create(a: &CreateArgs) -> Result<i32, Failure> {
    let labels = parse_labels(&a.labels)?;
    if let Some(n) = &a.name {
        validate_name(n).map_err(fail)?;
    }
    if a.driver != gocker_storage::volume::DRIVER {
        return Err(fail(VolumeError::UnsupportedDriver {
            driver: a.driver.clone(),
        }));
    }
    let store = open()?;
    let lock = store.lock().map_err(fail)?;
    let (v, new) = store
        .create(&lock, a.name.as_deref(), &a.driver, labels)
        .map_err(fail)?;
    if new {
        gocker_runtime::state::record_event(
            gocker_runtime::events::Kind::Volume,
            "create",
            &v.name,
            &[("driver", &v.driver)],
        );
    }
    println!("{}", v.name);
    Ok(0)
}

fn label_matches(v: &Volume, spec: &str) -> bool {
    match spec.split_once('=') {
        Some((k, val)) => v.labels.get(k).is_some_and(|x| x == val),
        None => v.labels.contains_key(spec),
    }
}

fn parse_bool(flag: &str, f: &str, s: &str) -> Result<bool, Failure> {
    match s {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(usage(format!("{flag} {f:?}: expected true or false"))),
    }
}

fn ls(a: &LsArgs) -> Result<i32, Failure> {
    let mut names = Vec::new();
    let mut dangling = None;
    let mut drivers = Vec::new();
    let mut labels = Vec::new();
    for f in &a.filters {
        match f.split_once('=') {
            Some(("name", v)) => names.push(v.to_owned()),
            Some(("dangling", v)) => dangling = Some(parse_bool("--filter", f, v)?),
            Some(("driver", v)) => drivers.push(v.to_owned()),
            Some(("label", v)) => labels.push(v.to_owned()),
            _ => {
                return Err(usage(format!(
                    "--filter {f:?}: supported: name=..., dangling=true|false, driver=..., label=KEY[=VALUE]"
                )))
            }
        }
    }
    let format = crate::format::Format::parse(a.format.as_deref())?;
    let store = open()?;
    let used = if dangling.is_some() {
        users(&store)?
    } else {
        BTreeMap::new()
    };
    let list: Vec<Volume> = store
        .list()
        .map_err(fail)?
        .into_iter()
        .filter(|v| names.is_empty() || names.iter().any(|n| v.name.contains(n.as_str())))
        .filter(|v| drivers.is_empty() || drivers.contains(&v.driver))
        .filter(|v| labels.iter().all(|l| label_matches(v, l)))
        .filter(|v| dangling.is_none_or(|d| d != used.contains_key(&v.name)))
        .collect();
    if a.quiet {
        let mut out = std::io::stdout().lock();
        for v in list {
            crate::failure::wrote(writeln!(out, "{}", v.name));
        }
        return Ok(0);
    }
    if !format.is_default() {
        let rows: Vec<serde_json::Value> = list
            .iter()
            .map(|v| {
                serde_json::json!({
                    "Name": v.name,
                    "Driver": v.driver,
                    "Scope": v.scope,
                    "Mountpoint": v.mountpoint,
                    "Labels": v.labels.iter().map(|(k, x)| format!("{k}={x}")).collect::<Vec<_>>().join(","),
                    "LabelMap": v.labels,
                })
            })
            .collect();
        let header = [
            ("Name", "VOLUME NAME"),
            ("Driver", "DRIVER"),
            ("Scope", "SCOPE"),
            ("Mountpoint", "MOUNTPOINT"),
            ("Labels", "LABELS"),
        ];
        let text = format.render(&rows, &header)?.unwrap_or_default();
        crate::failure::wrote(std::io::stdout().lock().write_all(text.as_bytes()));
        return Ok(0);
    }
    let mut t = crate::table::Table::new(&["DRIVER", "VOLUME NAME"]);
    for v in list {
        t.row(vec![v.driver, v.name]);
    }
    t.print();
    Ok(0)
}

fn inspect(a: &InspectArgs) -> Result<i32, Failure> {
    let format = crate::format::Format::parse(a.format.as_deref())?;
    let store = open()?;
    let mut found = Vec::new();
    let mut code = 0;
    for n in &a.names {
        match store.get(n) {
            Ok(v) => found.push(v),
            Err(e) => {
                eprintln!("gocker: volume inspect: {e}");
                code = fail(e).code;
            }
        }
    }
    let values: Vec<serde_json::Value> = found
        .iter()
        .map(|v| serde_json::to_value(v).unwrap_or_default())
        .collect();
    match format.render(&values, &[])? {
        Some(text) => crate::failure::wrote(std::io::stdout().lock().write_all(text.as_bytes())),
        None => println!(
            "{}",
            serde_json::to_string_pretty(&found).expect("volumes serialise")
        ),
    }
    Ok(code)
}

fn rm(a: &RmArgs) -> Result<i32, Failure> {
    let store = open()?;
    let lock = store.lock().map_err(fail)?;
    let used = users(&store)?;
    let mut code = 0;
    for n in &a.names {
        let r = (|| -> Result<(), Failure> {
            match store.get(n) {
                Err(VolumeError::NotFound { .. }) if a.force => return Ok(()),
                Err(e) => return Err(fail(e)),
                Ok(_) => {}
            }
            if let Some(u) = used.get(n) {
                return Err(Failure {
                    code: 1,
                    message: format!(
                        "volume {n} is in use by container {}: remove the container first (`gocker rm {}`)",
                        describe(u),
                        u[0].name
                    ),
                });
            }
            remove(&store, &lock, n)?;
            println!("{n}");
            Ok(())
        })();
        if let Err(f) = r {
            eprintln!("gocker: volume rm: {}", f.message);
            code = f.code;
        }
    }
    Ok(code)
}

/// Removes a volume; rootless, what the user cannot remove on the host (files a container gave
/// to one of the user's subordinate ids) is removed as root of a user namespace with the maps
/// of the user's containers.
fn remove(
    store: &VolumeStore,
    lock: &gocker_storage::volume::VolumeLock,
    n: &str,
) -> Result<(), Failure> {
    remove_volume(store, lock, n)?;
    gocker_runtime::state::record_event(
        gocker_runtime::events::Kind::Volume,
        "destroy",
        n,
        &[("driver", gocker_storage::volume::DRIVER)],
    );
    Ok(())
}

fn remove_volume(
    store: &VolumeStore,
    lock: &gocker_storage::volume::VolumeLock,
    n: &str,
) -> Result<(), Failure> {
    match store.remove(lock, n) {
        Ok(()) => Ok(()),
        Err(VolumeError::Io { source, .. })
            if !rustix::process::geteuid().is_root()
                && source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            remove_in_userns(&store.dir(n)).map_err(|e| {
                usage(format!(
                    "volume {n}: remove {}: {e:#}",
                    store.dir(n).display()
                ))
            })?;
            store.remove(lock, n).map_err(fail)
        }
        Err(e) => Err(fail(e)),
    }
}

/// Empties `dir`'s `_data` as root of a user namespace with the user's maps ([`in_userns`]).
fn remove_in_userns(dir: &Path) -> anyhow::Result<()> {
    let data = dir.join(gocker_storage::volume::DATA_DIR);
    in_userns(&mut || {
        let rd = std::fs::read_dir(&data).map_err(|e| format!("{}: {e}", data.display()))?;
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
                _ => std::fs::remove_file(&p),
            }
            .map_err(|e| format!("remove {}: {e}", p.display()))?;
        }
        Ok(())
    })
}

/// Runs `f` in a child that is root of a new user namespace with the calling user's rootless
/// maps (its own uid as root, its /etc/subuid range after it: what its containers get), and
/// returns its error.
fn in_userns(f: &mut dyn FnMut() -> Result<(), String>) -> anyhow::Result<()> {
    use anyhow::{bail, Context};
    use gocker_ns::{Forked, Namespace, NamespaceSet};
    use std::io::Read;
    let euid = rustix::process::geteuid().as_raw();
    let egid = rustix::process::getegid().as_raw();
    let maps = gocker_idmap::IdMaps::rootless(euid, egid, &crate::host::user_name(euid))
        .context("the user's id maps")?;
    let (go_r, go_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let (res_r, res_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let _ = std::io::stdout().flush();
    // SAFETY: the CLI starts no threads, so the forked child may allocate before its _exit.
    let forked = unsafe { gocker_ns::fork_into(NamespaceSet::EMPTY.with(Namespace::User), None) }
        .context("fork into a user namespace")?;
    match forked {
        Forked::Child => {
            drop(go_w);
            drop(res_r);
            let mut b = [0u8; 1];
            let r = if matches!(rustix::io::read(&go_r, &mut b), Ok(1)) {
                f()
            } else {
                Err("the parent could not write the id maps".to_owned())
            };
            if let Err(m) = &r {
                let _ = rustix::io::write(&res_w, m.as_bytes());
            }
            let _ = std::io::stderr().flush();
            // SAFETY: ends the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(i32::from(r.is_err())) }
        }
        Forked::Parent { pid, pidfd: _ } => {
            drop(go_r);
            drop(res_w);
            let applied = maps.apply(pid.as_raw_nonzero().get());
            if applied.is_ok() {
                let _ = rustix::io::write(&go_w, &[1]);
            }
            drop(go_w);
            let mut msg = Vec::new();
            let _ = std::fs::File::from(res_r).read_to_end(&mut msg);
            let status = loop {
                match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
                    Err(rustix::io::Errno::INTR) => continue,
                    r => break r,
                }
            };
            applied.context("write the id maps of a helper in a user namespace")?;
            match status {
                Ok(Some((_, s))) if s.exit_status() == Some(0) => Ok(()),
                _ if !msg.is_empty() => bail!("{}", String::from_utf8_lossy(&msg)),
                _ => bail!("the helper in a user namespace failed"),
            }
        }
    }
}

fn prune(a: &PruneArgs) -> Result<i32, Failure> {
    let mut want = Vec::new();
    for f in &a.filters {
        match f
            .split_once("!=")
            .map(|(k, v)| (k, v, false))
            .or_else(|| f.split_once('=').map(|(k, v)| (k, v, true)))
        {
            Some(("label", v, positive)) if !v.is_empty() => want.push((v.to_owned(), positive)),
            _ => {
                return Err(usage(format!(
                    "--filter {f:?}: supported: label=KEY[=VALUE], label!=KEY[=VALUE]"
                )))
            }
        }
    }
    if !a.force
        && !crate::failure::confirmed(
            "WARNING! This will remove all local volumes not used by at least one container.",
        )
    {
        eprintln!("volume prune cancelled: nothing removed");
        return Ok(0);
    }
    let store = open()?;
    let lock = store.lock().map_err(fail)?;
    let used = users(&store)?;
    let mut deleted = Vec::new();
    let mut freed = 0u64;
    let mut code = 0;
    for v in store.list().map_err(fail)? {
        if used.contains_key(&v.name) || !want.iter().all(|(l, pos)| label_matches(&v, l) == *pos) {
            continue;
        }
        let size = store.size(&v.name);
        match remove(&store, &lock, &v.name) {
            Ok(()) => {
                freed += size;
                deleted.push(v.name);
            }
            Err(f) => {
                eprintln!("gocker: volume prune: {}", f.message);
                code = f.code;
            }
        }
    }
    if !deleted.is_empty() {
        println!("Deleted Volumes:");
        for n in &deleted {
            println!("{n}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        crate::image_cmds::human_size(freed)
    );
    Ok(code)
}
