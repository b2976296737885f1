//! Workspace mode (after Gitpod's workspacekit, in Gocker's own names): extra bind mounts, a
//! supervisor as PID 1, RLIMIT_CORE, `lift`, an "enclave" command run with ring1's privileges in
//! ring2's mount and network namespaces before the payload, and a debug sleep that keeps ring1's
//! namespaces alive after a failure. See docs/workspace-mode.md.
//!
//! Everything here is configuration on top of the OCI spec: binds become `mounts`, the supervisor
//! becomes `process.args[0]`, the core limit a `process.rlimits` entry. What the rings do at run
//! time lives in [`crate::lift`] (ring1's server) and in the small hooks below.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::{MountBuilder, PosixRlimitBuilder, PosixRlimitType};
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::initsys::{Ring1Sys, Ring2Sys};
use crate::proto::Up;
use crate::{ContainerConfig, ExitStatus, Result, RuntimeError};

/// Where lift and its socket appear inside the container (a read-only tmpfs made by ring1).
pub const LIFT_DIR: &str = "/.gocker";
/// The environment variables workspace mode reads (flags of `gocker run` override them).
pub const ENV_WORKSPACE: &str = "GOCKER_WORKSPACE";
pub const ENV_BINDS: &str = "GOCKER_WORKSPACE_BINDS";
pub const ENV_SUPERVISOR: &str = "GOCKER_WORKSPACE_SUPERVISOR";
pub const ENV_CORE_LIMIT: &str = "GOCKER_WORKSPACE_CORE_LIMIT";
pub const ENV_ENCLAVE: &str = "GOCKER_WORKSPACE_ENCLAVE";
pub const ENV_DEBUG_SLEEP: &str = "GOCKER_WORKSPACE_DEBUG_SLEEP";
pub const ENV_LIFT: &str = "GOCKER_LIFT";

pub use crate::config::{LiftPolicy, RingOptions};

/// One extra bind mount, as in `GOCKER_WORKSPACE_BINDS='[{"source":..,"target":..,"readonly":..}]'`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    pub target: PathBuf,
    #[serde(default)]
    pub readonly: bool,
}

impl Bind {
    /// `SRC:DST[:ro|rw]`.
    pub fn parse(s: &str) -> Result<Bind> {
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dst, ro) = match parts.as_slice() {
            [s, d] => (*s, *d, false),
            [s, d, "ro"] => (*s, *d, true),
            [s, d, "rw"] => (*s, *d, false),
            _ => {
                return Err(RuntimeError::Config(format!(
                    "bind {s:?}: expected SRC:DST[:ro|rw]"
                )))
            }
        };
        Ok(Bind {
            source: src.into(),
            target: dst.into(),
            readonly: ro,
        })
    }

    /// A JSON list of binds (the value of `GOCKER_WORKSPACE_BINDS`).
    pub fn parse_json(text: &str) -> Result<Vec<Bind>> {
        serde_json::from_str(text).map_err(|e| RuntimeError::Config(format!("{ENV_BINDS}: {e} (expected [{{\"source\":\"/host\",\"target\":\"/inside\",\"readonly\":false}}])")))
    }

    fn check(&self) -> Result<()> {
        if !self.source.is_absolute() || !self.target.is_absolute() {
            return Err(RuntimeError::Config(format!(
                "bind {} -> {}: source and target must be absolute paths",
                self.source.display(),
                self.target.display()
            )));
        }
        std::fs::metadata(&self.source).map_err(|e| {
            RuntimeError::Config(format!("bind source {}: {e}", self.source.display()))
        })?;
        Ok(())
    }
}

/// Workspace configuration, from flags and/or the environment; [`Workspace::apply`] puts it into a
/// container configuration.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    pub binds: Vec<Bind>,
    /// What ring2 execs as PID 1; the container's command becomes its arguments.
    pub supervisor: Option<String>,
    /// RLIMIT_CORE in bytes (soft and hard); `u64::MAX` for unlimited.
    pub core_limit: Option<u64>,
    pub rings: RingOptions,
}

/// `unlimited`, or bytes with an optional k/m/g suffix (powers of 1024).
pub fn parse_limit(what: &str, s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "unlimited" || t == "-1" {
        return Ok(u64::MAX);
    }
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t.as_str(), 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| {
            RuntimeError::Config(format!(
                "{what} {s:?}: expected bytes (e.g. 0, 512k, 1g) or unlimited"
            ))
        })
}

impl Workspace {
    /// Workspace mode as configured by the environment (`GOCKER_WORKSPACE_*`, `GOCKER_LIFT`):
    /// lift on, own /etc/hosts and resolv.conf, and whatever the variables add.
    pub fn from_env() -> Result<Workspace> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut w = Workspace {
            rings: RingOptions {
                lift: LiftPolicy::On,
                own_etc_files: true,
                ..Default::default()
            },
            ..Default::default()
        };
        if let Some(b) = var(ENV_BINDS) {
            w.binds = Bind::parse_json(&b)?;
        }
        w.supervisor = var(ENV_SUPERVISOR);
        if let Some(c) = var(ENV_CORE_LIMIT) {
            w.core_limit = Some(parse_limit(ENV_CORE_LIMIT, &c)?);
        }
        if let Some(e) = var(ENV_ENCLAVE) {
            w.rings.enclave = Some(vec!["/bin/sh".into(), "-c".into(), e]);
        }
        if let Some(s) = var(ENV_DEBUG_SLEEP) {
            let secs: u64 = s.parse().map_err(|_| {
                RuntimeError::Config(format!("{ENV_DEBUG_SLEEP} {s:?}: expected seconds"))
            })?;
            w.rings.debug_sleep = Some(Duration::from_secs(secs));
        }
        if let Some(l) = var(ENV_LIFT) {
            w.rings.lift = l.parse()?;
        }
        Ok(w)
    }

    /// Whether the environment asks for workspace mode (`GOCKER_WORKSPACE=1`).
    pub fn requested_by_env() -> bool {
        matches!(
            std::env::var(ENV_WORKSPACE).as_deref(),
            Ok("1") | Ok("true") | Ok("on")
        )
    }

    /// Adds the binds, the supervisor and the core limit to the spec, and the ring options.
    pub fn apply(&self, cfg: &mut ContainerConfig) -> Result<()> {
        let err = |e: oci_spec::OciSpecError| RuntimeError::Config(e.to_string());
        let mut mounts = cfg.spec.mounts().clone().unwrap_or_default();
        for b in &self.binds {
            b.check()?;
            let mut options = vec![
                "rbind".to_string(),
                "nosuid".to_string(),
                "nodev".to_string(),
            ];
            if b.readonly {
                options.push("ro".into());
            }
            mounts.push(crate::spec::bind_mount(&b.target, &b.source, options));
        }
        cfg.spec.set_mounts(Some(mounts));
        let process = cfg
            .spec
            .process_mut()
            .as_mut()
            .ok_or_else(|| RuntimeError::Config("spec has no process".into()))?;
        if let Some(s) = &self.supervisor {
            let mut args = vec![s.clone()];
            args.extend(process.args().clone().unwrap_or_default());
            process.set_args(Some(args));
        }
        if let Some(limit) = self.core_limit {
            let mut rl = process.rlimits().clone().unwrap_or_default();
            rl.retain(|r| r.typ() != PosixRlimitType::RlimitCore);
            rl.push(
                PosixRlimitBuilder::default()
                    .typ(PosixRlimitType::RlimitCore)
                    .soft(limit)
                    .hard(limit)
                    .build()
                    .map_err(err)?,
            );
            process.set_rlimits(Some(rl));
        }
        cfg.workspace = self.rings.clone();
        Ok(())
    }
}

/// ring0, in `Container::create` before the rings exist: the mount point for lift, and the
/// container's own /etc/hosts and /etc/resolv.conf. Files go into the container's state directory
/// `dir` (removed with the container).
pub(crate) fn prepare(cfg: &mut ContainerConfig, dir: &Path) -> Result<()> {
    let mut mounts = cfg.spec.mounts().clone().unwrap_or_default();
    // A configuration saved by an earlier run (`gocker start`) already has the lift mount point.
    let lift_listed = mounts
        .iter()
        .any(|m| m.destination() == Path::new(LIFT_DIR));
    // Over a copy-on-write root, ring2 makes the mount point in the container's upper layer, as
    // for any other mount target: the rootfs itself needs nothing. A root used in place (no
    // overlay) must have it.
    if cfg.workspace.lift != LiftPolicy::Off && cfg.cow.is_none() {
        let at = cfg.rootfs()?.join(LIFT_DIR.trim_start_matches('/'));
        if !at.is_dir() && cfg.root_mode == crate::config::RootMode::HostView {
            // Never ask for a directory in the host's own `/`.
            return Err(RuntimeError::Config(format!(
                "lift has no mount point: with no rootfs provisioned, the container sees the host's / read-only, which has no {LIFT_DIR}; provision one with `gocker rootfs build` (then lift needs nothing in it), or pass --lift=off"
            )));
        }
        if !at.is_dir() {
            return Err(RuntimeError::Config(format!(
                "lift needs the directory {} in the rootfs as its mount point (`gocker rootfs build` creates it; or `mkdir {}`), or --lift=off",
                at.display(),
                at.display()
            )));
        }
    }
    if cfg.workspace.lift != LiftPolicy::Off && !lift_listed {
        // The source is a placeholder: ring1 supplies the mount itself (a tmpfs with lift and its
        // socket) as a premade mount for this destination.
        mounts.push(crate::spec::bind_mount(
            LIFT_DIR,
            dir,
            ["bind", "ro", "nosuid", "nodev"],
        ));
    }
    if cfg.workspace.own_etc_files {
        let hostname = cfg
            .spec
            .hostname()
            .clone()
            .unwrap_or_else(|| "localhost".into());
        let hosts = format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.0.1\t{hostname}\n");
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        for (name, dest, text) in [
            ("hosts", "/etc/hosts", hosts),
            ("resolv.conf", "/etc/resolv.conf", resolv),
        ] {
            if let Some(m) = mounts.iter().find(|m| m.destination() == Path::new(dest)) {
                // Generated by the networking options (also this container's own copy): keep it,
                // and make sure the hostname also resolves to 127.0.0.1 (a bridge's hosts file
                // maps it to the container's address only).
                if let Some(src) = m
                    .source()
                    .as_ref()
                    .filter(|s| name == "hosts" && s.starts_with(dir))
                {
                    map_hostname_to_loopback(src, &hostname)?;
                }
                // Also when a configuration saved by an earlier run (`gocker start`) binds it.
                if m.source().as_deref() == Some(dir.join(name).as_path()) {
                    crate::own_files::register(&mut cfg.own_files, m.destination());
                }
                continue;
            }
            let file = dir.join(name);
            std::fs::write(&file, text)
                .map_err(|e| RuntimeError::sys("write", file.display().to_string(), e))?;
            // The template of the container's own copy (on a bounded tmpfs, crate::own_files):
            // container root may edit the copy; the host's file is never bound.
            crate::own_files::add(&mut cfg.own_files, &mut mounts, dest, &file);
        }
    }
    cfg.spec.set_mounts(Some(mounts));
    Ok(())
}

/// Appends `127.0.0.1 HOSTNAME` to a hosts file that lacks it.
fn map_hostname_to_loopback(file: &Path, hostname: &str) -> Result<()> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| RuntimeError::sys("read", file.display().to_string(), e))?;
    let mapped = text.lines().any(|l| {
        let mut f = l.split_whitespace();
        f.next() == Some("127.0.0.1") && f.any(|h| h == hostname)
    });
    if !mapped {
        let mut new = text;
        if !new.is_empty() && !new.ends_with('\n') {
            new.push('\n');
        }
        new.push_str(&format!("127.0.0.1\t{hostname}\n"));
        std::fs::write(file, new)
            .map_err(|e| RuntimeError::sys("write", file.display().to_string(), e))?;
    }
    Ok(())
}

/// ring0, once the container's cgroup exists: a private cgroup2 view at `/sys/fs/cgroup` (the
/// container's own cgroup as the root, through a cgroup namespace that ring2 enters once it has
/// been moved into that cgroup). Read-only for plain containers (as docker), writable in workspace
/// mode (to the extent the files' owners allow). Nothing when there is no cgroup (e.g. hybrid
/// hosts) or the spec shares the host's cgroup namespace or mounts /sys/fs/cgroup itself.
pub(crate) fn cgroup_view(cfg: &mut ContainerConfig, cgroup: Option<&Path>) -> Result<()> {
    let mut mounts = cfg.spec.mounts().clone().unwrap_or_default();
    if cgroup.is_none()
        || !cfg.namespaces().0.contains(gocker_ns::Namespace::Cgroup)
        || mounts
            .iter()
            .any(|m| m.destination() == Path::new("/sys/fs/cgroup"))
    {
        return Ok(());
    }
    let mut options = vec![
        "nosuid".to_string(),
        "noexec".to_string(),
        "nodev".to_string(),
    ];
    if cfg.workspace.lift == LiftPolicy::Off && !cfg.workspace.own_etc_files {
        options.push("ro".into());
    }
    mounts.push(
        MountBuilder::default()
            .destination("/sys/fs/cgroup")
            .typ("cgroup2")
            .source("cgroup")
            .options(options)
            .build()
            .map_err(|e| RuntimeError::Config(e.to_string()))?,
    );
    cfg.spec.set_mounts(Some(mounts));
    cfg.workspace.private_cgroup = true;
    cfg.workspace.cgroup_leaf = cgroup
        .and_then(|c| c.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    Ok(())
}

/// ring2, before its mounts: with a private cgroup view, waits (bounded) until ring0 has moved it
/// into the container's cgroup, then enters a new cgroup namespace rooted there, so that the
/// cgroup2 mount of the plan shows the container's own cgroup as `/`.
pub(crate) fn enter_cgroup_view(cfg: &ContainerConfig, sys: &mut dyn Ring2Sys) -> Result<()> {
    if !cfg.workspace.private_cgroup {
        return Ok(());
    }
    let leaf = cfg.workspace.cgroup_leaf.as_deref().unwrap_or(&cfg.id);
    sys.wait_in_cgroup(leaf, cfg.stage_timeout)?;
    sys.unshare(gocker_ns::NamespaceSet::EMPTY.with(gocker_ns::Namespace::Cgroup))
}

/// The wait of [`enter_cgroup_view`]: until `/proc/self/cgroup` ends in `leaf`.
pub(crate) fn wait_in_cgroup(leaf: &str, timeout: Duration) -> Result<()> {
    let suffix = format!("/{leaf}");
    let end = std::time::Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| RuntimeError::sys("read", "/proc/self/cgroup", e))?;
        if text.lines().any(|l| {
            l.strip_prefix("0::")
                .is_some_and(|p| p.trim_end().ends_with(&suffix))
        }) {
            return Ok(());
        }
        if std::time::Instant::now() >= end {
            return Err(RuntimeError::Timeout {
                stage: format!("ring0 to move ring2 into the cgroup {leaf}"),
                after: timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// ring0, once ring2 reported ready: asks ring1 to run the enclave command; fails the create with
/// its output when it fails.
pub(crate) fn run_enclave(cfg: &ContainerConfig, to_ring1: &Channel) -> Result<()> {
    let Some(cmd) = &cfg.workspace.enclave else {
        return Ok(());
    };
    to_ring1.send(&crate::proto::Down::Enclave, &[])?;
    let stage = format!("ring1 to run the enclave command {cmd:?}");
    match to_ring1.recv::<Up>(Some(cfg.stage_timeout), &stage)? {
        Some((Up::EnclaveDone(ExitStatus::Exited(0)), _)) => Ok(()),
        Some((Up::EnclaveDone(st), _)) => Err(RuntimeError::Ring {
            stage: "enclave".into(),
            message: format!("{cmd:?} failed with status {}", st.code()),
        }),
        Some((Up::Failed { stage, message }, _)) => Err(RuntimeError::Ring { stage, message }),
        Some((other, _)) => Err(RuntimeError::Protocol(format!(
            "unexpected {other:?} while waiting for {stage}"
        ))),
        None => Err(RuntimeError::Protocol(format!(
            "ring1 exited while waiting for {stage}"
        ))),
    }
}

/// ring1, before ring2 exists: lift's tmpfs, when lift is on.
pub(crate) fn prepare_lift(cfg: &ContainerConfig, sys: &mut dyn Ring1Sys) -> Result<()> {
    if cfg.workspace.lift == LiftPolicy::Off {
        return Ok(());
    }
    sys.prepare_lift()
}

/// ring1, after reporting ring2's pid: the enclave command, when one is configured.
pub(crate) fn serve_enclave(cfg: &ContainerConfig, sys: &mut dyn Ring1Sys) -> Result<()> {
    match &cfg.workspace.enclave {
        Some(cmd) => sys.serve_enclave(cmd),
        None => Ok(()),
    }
}

/// The step of [`serve_enclave`]: waits for ring0's go (ring2 is then prepared: its mount tree is
/// final), runs `cmd` and reports its status.
pub(crate) fn run_enclave_in_ring1(
    cfg: &ContainerConfig,
    up: &Channel,
    ring2_pidfd: std::os::fd::BorrowedFd<'_>,
    cmd: &[String],
) -> Result<()> {
    // ring2 prepares within one stage timeout (ring0 enforces it); allow for that wait too.
    match up.recv::<crate::proto::Down>(
        Some(cfg.stage_timeout * 2),
        "ring0's go for the enclave command",
    )? {
        Some((crate::proto::Down::Enclave, _)) => {}
        Some((other, _)) => {
            return Err(RuntimeError::Protocol(format!(
                "ring1: unexpected {other:?} before the enclave"
            )))
        }
        None => {
            return Err(RuntimeError::Protocol(
                "ring0 went away before the enclave".into(),
            ))
        }
    }
    let set = gocker_ns::NamespaceSet::EMPTY
        .with(gocker_ns::Namespace::Mount)
        .with(gocker_ns::Namespace::Net);
    let status = crate::lift::run_joined(ring2_pidfd, set, cmd, cfg.stage_timeout)?;
    up.send(&Up::EnclaveDone(status), &[])
}

/// ring2, before reporting ready: with an enclave, ring1 must be able to join ring2's namespaces
/// through its pidfd, which the kernel allows only for a dumpable target (ring2 is not: it changed
/// credentials in ring1 before, and its memory still belongs to the initial user namespace until
/// the exec). Dumpable while it waits at the barrier, which only ring1 can use (nothing else runs
/// in the container yet); reset right after.
pub(crate) fn before_barrier(cfg: &ContainerConfig, sys: &mut dyn Ring2Sys) -> Result<()> {
    if cfg.workspace.enclave.is_some() {
        sys.set_dumpable(true)?;
    }
    Ok(())
}

/// ring2, after the start barrier: not dumpable again (see [`before_barrier`]).
pub(crate) fn after_barrier(cfg: &ContainerConfig, sys: &mut dyn Ring2Sys) -> Result<()> {
    if cfg.workspace.enclave.is_some() {
        sys.set_dumpable(false)?;
    }
    Ok(())
}

/// The step of [`before_barrier`] and [`after_barrier`].
pub(crate) fn set_dumpable(dumpable: bool) -> Result<()> {
    use rustix::process::DumpableBehavior as D;
    if dumpable {
        rustix::process::set_dumpable_behavior(D::Dumpable)
            .map_err(|e| RuntimeError::sys("prctl(PR_SET_DUMPABLE)", "ring2 for the enclave", e))
    } else {
        rustix::process::set_dumpable_behavior(D::NotDumpable)
            .map_err(|e| RuntimeError::sys("prctl(PR_SET_DUMPABLE)", "ring2", e))
    }
}

/// ring1, before it reports a failure: the debug sleep (keeps ring1's namespaces for nsenter).
pub(crate) fn debug_sleep(cfg: &ContainerConfig, outcome: &Result<ExitStatus>) {
    let Some(d) = cfg.workspace.debug_sleep else {
        return;
    };
    let failed = !matches!(outcome, Ok(ExitStatus::Exited(0)));
    if failed && !d.is_zero() {
        let me = rustix::process::getpid().as_raw_nonzero().get();
        eprintln!(
            "gocker: the container failed; ring1 (pid {me}) keeps its namespaces for {}s: gocker nsenter --target {me}",
            d.as_secs()
        );
        std::thread::sleep(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse_from_flag_and_json() {
        assert_eq!(
            Bind::parse("/a:/b:ro").unwrap(),
            Bind {
                source: "/a".into(),
                target: "/b".into(),
                readonly: true
            }
        );
        assert!(!Bind::parse("/a:/b").unwrap().readonly);
        assert!(Bind::parse("/a").is_err());
        assert!(Bind::parse("/a:/b:xx").is_err());
        let v = Bind::parse_json(
            r#"[{"source":"/src","target":"/dst","readonly":true},{"source":"/x","target":"/y"}]"#,
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert!(v[0].readonly && !v[1].readonly);
        let e = Bind::parse_json("{}").unwrap_err().to_string();
        assert!(e.contains(ENV_BINDS), "{e}");
    }

    #[test]
    fn limits_and_lift_policy_parse() {
        assert_eq!(parse_limit("x", "0").unwrap(), 0);
        assert_eq!(parse_limit("x", "1m").unwrap(), 1 << 20);
        assert_eq!(parse_limit("x", "unlimited").unwrap(), u64::MAX);
        assert!(parse_limit("--core-limit", "lots")
            .unwrap_err()
            .to_string()
            .contains("--core-limit"));
        assert_eq!("root".parse::<LiftPolicy>().unwrap(), LiftPolicy::Root);
        assert!("maybe".parse::<LiftPolicy>().is_err());
    }
}
