//! Running an OCI bundle (a directory with `config.json` and a rootfs) through the whole lifecycle.

use std::path::Path;

use gocker_idmap::IdMaps;
use oci_spec::runtime::Spec;

use crate::state::StateStore;
use crate::{Container, ContainerConfig, ExitStatus, Result, RuntimeError, SpawnMode};

/// Loads `bundle/config.json`, making `root.path` absolute.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let mut spec =
        Spec::load(&path).map_err(|e| RuntimeError::Config(format!("{}: {e}", path.display())))?;
    if let Some(root) = spec.root_mut().as_mut() {
        if root.path().is_relative() {
            let abs = std::path::absolute(bundle.join(root.path()))
                .map_err(|e| RuntimeError::Config(format!("{}: {e}", bundle.display())))?;
            root.set_path(abs);
        }
    }
    Ok(spec)
}

/// The id maps for `spec`: its own `uidMappings`/`gidMappings` when present, otherwise Gocker's
/// defaults for the caller (rootful range, or the rootless user's own id and subordinate range).
pub fn idmaps_for(spec: &Spec) -> Result<IdMaps> {
    let root = rustix::process::geteuid().is_root();
    if let Some(l) = spec.linux() {
        if let (Some(u), Some(g)) = (l.uid_mappings(), l.gid_mappings()) {
            if !u.is_empty() && !g.is_empty() {
                return Ok(IdMaps::from_oci(u, g, root));
            }
        }
    }
    if root {
        return Ok(IdMaps::rootful(
            gocker_idmap::ROOTFUL_DEFAULT_BASE,
            gocker_idmap::ROOTFUL_DEFAULT_SIZE,
        )?);
    }
    let uid = rustix::process::geteuid().as_raw();
    let name = std::env::var("USER").unwrap_or_default();
    Ok(IdMaps::rootless(
        uid,
        rustix::process::getegid().as_raw(),
        &name,
    )?)
}

/// create → start → wait → delete for the bundle; returns the payload's exit status.
pub fn run(bundle: &Path, id: &str, spawn: SpawnMode) -> Result<ExitStatus> {
    let spec = load(bundle)?;
    let mut cfg = ContainerConfig::new(id, spec.clone(), idmaps_for(&spec)?);
    cfg.spawn = spawn;
    cfg.forward_signals = true;
    let store = StateStore::open(StateStore::default_root())?;
    let mut c = Container::create(cfg, store, id, true)?;
    c.start()?;
    let status = c.wait()?;
    c.delete()?;
    Ok(status)
}
