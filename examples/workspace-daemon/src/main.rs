//! A toy workspace daemon embedding the rings: it starts one workspace the way Gitpod's
//! workspacekit would, but through gocker-runtime's public API — a supervisor as PID 1, lift on,
//! the container's own /etc/hosts and resolv.conf, signals forwarded with a grace period — and
//! reports its lifecycle on stdout. The GOCKER_WORKSPACE_* variables add binds, a core limit, an
//! enclave command or a debug sleep (docs/workspace-mode.md).
//!
//! Usage: `gocker-workspace-daemon ROOTFS SUPERVISOR [ARG...]`
//!
//! The daemon is single-threaded, so it uses the default fork spawn mode (no ring binaries to
//! find); a multi-threaded daemon would use `SpawnMode::Exec` and call `ring_entry()` first in
//! `main` (see examples/embed).

use std::path::PathBuf;
use std::time::Duration;

use gocker_runtime::bundle::idmaps_for;
use gocker_runtime::state::StateStore;
use gocker_runtime::workspace::Workspace;
use gocker_runtime::{spec, Container, ContainerConfig};

fn run(rootfs: PathBuf, supervisor: String, args: Vec<String>) -> gocker_runtime::Result<i32> {
    let rootfs = std::path::absolute(&rootfs)
        .map_err(|e| gocker_runtime::RuntimeError::Config(format!("{}: {e}", rootfs.display())))?;
    let id = format!("ws-{}", std::process::id());
    let mut s = spec::default_spec(rootfs, args)?;
    s.set_hostname(Some("workspace".into()));
    let mut cfg = ContainerConfig::new(id.clone(), s.clone(), idmaps_for(&s)?);
    cfg.forward_signals = true;
    cfg.stop_timeout = Some(Duration::from_secs(5));
    // Workspace mode from the environment (lift on, own /etc files), with our supervisor.
    let mut ws = Workspace::from_env()?;
    ws.supervisor = Some(supervisor);
    ws.apply(&mut cfg)?;
    let store = StateStore::open(StateStore::default_root())?;
    let mut c = Container::create(cfg, store, &id, true)?;
    println!(
        "workspace {id}: created (payload pid {:?}, ring1 pid {:?})",
        c.pid(),
        c.ring1_pid()
    );
    c.start()?;
    println!("workspace {id}: running");
    let status = c.wait()?;
    println!("workspace {id}: exited with {}", status.code());
    c.delete()?;
    Ok(status.code())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(rootfs), Some(supervisor)) = (args.next(), args.next()) else {
        eprintln!("usage: gocker-workspace-daemon ROOTFS SUPERVISOR [ARG...]");
        std::process::exit(2);
    };
    match run(rootfs.into(), supervisor, args.collect()) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("gocker-workspace-daemon: {e}");
            std::process::exit(e.exit_code())
        }
    }
}
