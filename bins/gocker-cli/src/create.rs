//! `gocker create`: a container made from `run`'s flags and recorded with status `created`, with
//! no process and no monitor. `gocker start` runs it detached as it runs a stopped container
//! (its recorded configuration); `gocker rm` removes it; `ps -a` lists it as `created`.

use gocker_runtime::state::StateStore;
use gocker_runtime::{ContainerState, Status};

use crate::cli::RunArgs;
use crate::failure::{report, usage, Failure};

fn create_inner(mut a: RunArgs, debug: bool) -> Result<String, Failure> {
    crate::runflags::expand_mounts(&mut a)?;
    if a.detach {
        return Err(usage(
            "unknown shorthand flag: 'd' in -d (a created container starts detached: `gocker start`)",
        ));
    }
    // `start` runs it under a monitor, as -d does: --restart and --health-* apply to it.
    a.detach = true;
    let a = &a;
    if a.interactive && !a.tty {
        return Err(usage(
            "-i cannot be used without -t here: `gocker start` runs the container detached, and a detached container's stdin is its terminal (use -it, then `gocker attach`)",
        ));
    }
    let (cfg, name) = crate::run::build_config(a, debug)?;
    let store = StateStore::open(StateStore::default_root())?;
    let cid = a
        .cidfile
        .as_deref()
        .map(|p| crate::runflags::CidFile::create(p, &cfg.id))
        .transpose()?;
    store.collect_stale();
    let state = ContainerState {
        id: cfg.id.clone(),
        name: name.clone(),
        status: Status::Created,
        pid: None,
        // No monitor: `ContainerState::never_started`.
        monitor_pid: 0,
        monitor_start: 0,
        rootfs: cfg.rootfs()?,
        command: cfg
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        exit: None,
        auto_remove: a.rm,
        cgroup: None,
        oom_killed: false,
        ip: None,
    };
    store.reserve(&cfg.id, &name)?;
    let saved = store
        .save_config(&cfg, true)
        .and_then(|()| store.save(&state));
    if let Err(e) = saved {
        let _ = store.remove(&cfg.id, &name);
        return Err(e.into());
    }
    if let Some(c) = cid {
        c.keep();
    }
    Ok(cfg.id)
}

pub(crate) fn create(a: RunArgs, debug: bool) -> i32 {
    match create_inner(a, debug) {
        Ok(id) => {
            println!("{id}");
            0
        }
        Err(f) => report(f),
    }
}
