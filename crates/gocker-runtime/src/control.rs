//! Changes to a live container through its cgroup, one implementation for gocker's `pause`,
//! `unpause` and `update` and for gocker-oci's `pause`, `resume` and `update`: the cgroup v2
//! freezer (`cgroup.freeze`, done when `cgroup.events` says `frozen 1`) and resource limits
//! written to the cgroup's interface files. A container without a cgroup (a host whose cgroup v2
//! offers no controllers, or a rootless user without delegation) is refused with the reason,
//! never paused by some other means (docs/cgroups.md).

use std::path::Path;
use std::time::Duration;

use gocker_cgroups::{limits, Cgroup, Hierarchy};
use oci_spec::runtime::LinuxResources;

use crate::state::{ContainerState, StateStore};
use crate::{Result, RuntimeError};

/// How long a freeze or thaw may take before it is reported as failed (and a freeze undone).
pub const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// The controllers gocker gives every container's cgroup (ring0's `create_cgroup`).
const USUAL_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// Why a container `id` of this host has no cgroup, as this host says now: the error that
/// placing one would give (no cgroup2, no delegation, missing controllers and why).
fn why_no_cgroup(id: &str) -> String {
    let now = Hierarchy::find()
        .and_then(|h| h.placement(None, id))
        .and_then(|p| gocker_cgroups::check_available(&p.base, &USUAL_CONTROLLERS));
    match now {
        Err(e) => e.to_string(),
        Ok(()) => "its cgroup could not be made when it started (`gocker run -D` shows why)".into(),
    }
}

/// The refusal for a container without a cgroup: `what` it cannot do and why.
fn no_cgroup(name: &str, id: &str, what: &'static str) -> RuntimeError {
    RuntimeError::NoCgroup {
        name: name.to_owned(),
        what,
        why: why_no_cgroup(id),
    }
}

/// Freezes (`frozen`) or thaws every process of the container's cgroup and waits until the
/// kernel reports it done ([`FREEZE_TIMEOUT`]).
pub fn freeze(name: &str, id: &str, cgroup: Option<&Path>, frozen: bool) -> Result<()> {
    let what = if frozen { "be paused" } else { "be unpaused" };
    let cg = cgroup.ok_or_else(|| no_cgroup(name, id, what))?;
    Ok(Cgroup::open(cg).freeze(frozen, FREEZE_TIMEOUT)?)
}

/// Writes the limits of `res` into the container's cgroup, enabling the controllers they need
/// first (a container made without, say, a pids limit may not have pids enabled yet). The whole
/// plan is checked before anything is written.
pub fn apply_limits(
    name: &str,
    id: &str,
    cgroup: Option<&Path>,
    res: &LinuxResources,
) -> Result<()> {
    let writes = limits::plan(res)?;
    let cg = Cgroup::open(cgroup.ok_or_else(|| no_cgroup(name, id, "have its limits changed"))?);
    cg.enable(&limits::required_controllers(&writes))?;
    Ok(cg.apply(&writes)?)
}

/// docker's `update` of a gocker container: `update`'s limits replace the recorded ones (the
/// others stay, [`limits::merge`]); the merged limits are checked, written into the cgroup of a
/// running container (refused, with nothing changed, when it has none), and recorded in its
/// saved configuration, so that `gocker start` applies them again. A stopped container's update
/// is only recorded, as docker's. Returns the merged limits.
pub fn update(
    store: &StateStore,
    st: &ContainerState,
    update: &LinuxResources,
) -> Result<LinuxResources> {
    // container.json (what `start` runs) when the container has one; else (--rm) only its spec.
    let mut config = store.load_config(&st.id).ok();
    let mut spec = match &config {
        Some(c) => c.spec.clone(),
        None => store.load_spec(&st.id)?,
    };
    let recorded = spec.linux().as_ref().and_then(|l| l.resources().clone());
    let merged = limits::merge(recorded.as_ref(), update);
    if let Some(m) = merged.memory() {
        if m.swap().is_some_and(|s| s > 0) && m.limit().is_none_or(|l| l <= 0) {
            return Err(RuntimeError::Config(format!(
                "container {}: a memory+swap limit needs a memory limit (--memory), and it has none",
                st.name
            )));
        }
    }
    limits::plan(&merged)?;
    if st.status == crate::Status::Running && StateStore::monitor_alive(st) {
        apply_limits(&st.name, &st.id, st.cgroup.as_deref(), &merged)?;
    }
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_resources(Some(merged.clone()));
    spec.set_linux(Some(linux));
    match &mut config {
        Some(c) => {
            c.spec = spec;
            store.save_config(c, true)?;
        }
        None => store.save_spec(&st.id, &spec)?,
    }
    Ok(merged)
}
