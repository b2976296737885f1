//! `gocker pause`, `unpause` and `update` (docker's), on `gocker_runtime::control`, which
//! gocker-oci's `pause`, `resume` and `update` use too: the cgroup v2 freezer and limits. Also the
//! limit flags `run` and `update` share (`--memory`, `--memory-swap`, `--cpus`, `--cpu-shares`,
//! `--cpuset-cpus`, `--pids-limit`), parsed once here.

use gocker_runtime::restart::RestartPolicy;
use gocker_runtime::state::StateStore;
use gocker_runtime::{ContainerState, Status};
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};

use crate::cli::{NamesArgs, UpdateArgs};
use crate::failure::{report, usage, Failure};
use crate::runflags::parse_bytes;

/// The limit flags of `run` and `update`.
pub(crate) struct Limits<'a> {
    pub memory: Option<&'a str>,
    pub memory_swap: Option<&'a str>,
    pub cpus: Option<f64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<&'a str>,
    pub pids_limit: Option<i64>,
}

/// The OCI resources the flags ask for (`None`: none given). `run` needs `--memory` with
/// `--memory-swap` (memory plus swap); `update` may rely on the recorded memory limit.
pub(crate) fn limits(l: &Limits, updating: bool) -> Result<Option<LinuxResources>, Failure> {
    let err = |e: oci_spec::OciSpecError| usage(e.to_string());
    let mut r = LinuxResourcesBuilder::default();
    let mut any = false;
    if l.memory.is_some() || l.memory_swap.is_some() {
        let mut m = LinuxMemoryBuilder::default();
        if let Some(v) = l.memory {
            m = m.limit(parse_bytes("--memory", v)?);
        }
        if let Some(v) = l.memory_swap {
            if l.memory.is_none() && !updating {
                return Err(usage(
                    "--memory-swap needs --memory (it is memory plus swap)",
                ));
            }
            m = m.swap(parse_bytes("--memory-swap", v)?);
        }
        r = r.memory(m.build().map_err(err)?);
        any = true;
    }
    if l.cpus.is_some() || l.cpu_shares.is_some() || l.cpuset_cpus.is_some() {
        let mut c = LinuxCpuBuilder::default();
        if let Some(n) = l.cpus {
            let max = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1) as f64;
            if !(n > 0.0 && n <= max) {
                return Err(usage(format!(
                    "--cpus {n}: must be more than 0 and at most {max} (the CPUs available)"
                )));
            }
            c = c.quota((n * 100_000.0).round() as i64).period(100_000u64);
        }
        if let Some(s) = l.cpu_shares {
            if !(2..=262_144).contains(&s) {
                return Err(usage(format!("--cpu-shares {s}: must be 2..262144")));
            }
            c = c.shares(s);
        }
        if let Some(set) = l.cpuset_cpus {
            if set.is_empty()
                || !set
                    .chars()
                    .all(|ch| ch.is_ascii_digit() || ch == ',' || ch == '-')
            {
                return Err(usage(format!(
                    "--cpuset-cpus {set:?}: expected a list such as 0-1,3"
                )));
            }
            c = c.cpus(set.to_owned());
        }
        r = r.cpu(c.build().map_err(err)?);
        any = true;
    }
    if let Some(p) = l.pids_limit {
        if p == 0 || p < -1 {
            return Err(usage(format!(
                "--pids-limit {p}: must be positive, or -1 for unlimited"
            )));
        }
        r = r.pids(LinuxPidsBuilder::default().limit(p).build().map_err(err)?);
        any = true;
    }
    Ok(if any {
        Some(r.build().map_err(err)?)
    } else {
        None
    })
}

pub(crate) fn pause(a: NamesArgs) -> i32 {
    each(&a.containers, pause_one)
}

pub(crate) fn unpause(a: NamesArgs) -> i32 {
    each(&a.containers, unpause_one)
}

/// Running: not stopped, and its monitor is alive.
fn running(st: &ContainerState) -> bool {
    st.status != Status::Stopped && StateStore::monitor_alive(st)
}

/// Runs `f` on each named container, printing the name as given on success (docker's output);
/// the exit code is the last failure's.
fn each(
    names: &[String],
    mut f: impl FnMut(&StateStore, &ContainerState) -> Result<(), Failure>,
) -> i32 {
    let store = match StateStore::open(StateStore::default_root()) {
        Ok(s) => s,
        Err(e) => return report(e.into()),
    };
    store.collect_stale();
    let mut code = 0;
    for n in names {
        let r = store
            .lookup(n)
            .map_err(Failure::from)
            .and_then(|st| f(&store, &st));
        match r {
            Ok(()) => println!("{n}"),
            Err(e) => code = report(e),
        }
    }
    code
}

fn pause_one(_: &StateStore, st: &ContainerState) -> Result<(), Failure> {
    if !running(st) {
        return Err(usage(format!("container {} is not running", st.name)));
    }
    if st.paused() {
        return Err(usage(format!("container {} is already paused", st.name)));
    }
    gocker_runtime::control::freeze(&st.name, &st.id, st.cgroup.as_deref(), true)?;
    Ok(())
}

fn unpause_one(_: &StateStore, st: &ContainerState) -> Result<(), Failure> {
    if !running(st) || !st.paused() {
        return Err(usage(format!("container {} is not paused", st.name)));
    }
    gocker_runtime::control::freeze(&st.name, &st.id, st.cgroup.as_deref(), false)?;
    Ok(())
}

/// `stop` and `kill` of a paused container, as docker's: the signal is sent first, then the
/// container is thawed so that it is delivered (a frozen process handles no signal but
/// SIGKILL). A thaw that fails because the container is gone already is not an error.
pub(crate) fn thaw_after_signal(st: &ContainerState) {
    if st.paused() {
        if let Err(e) =
            gocker_runtime::control::freeze(&st.name, &st.id, st.cgroup.as_deref(), false)
        {
            if st.paused() {
                eprintln!("gocker: unpause {} after the signal: {e}", st.name);
            }
        }
    }
}

pub(crate) fn update(a: UpdateArgs) -> i32 {
    let res = limits(
        &Limits {
            memory: a.memory.as_deref(),
            memory_swap: a.memory_swap.as_deref(),
            cpus: a.cpus,
            cpu_shares: a.cpu_shares,
            cpuset_cpus: a.cpuset_cpus.as_deref(),
            pids_limit: a.pids_limit,
        },
        true,
    );
    let res = match res {
        Ok(r) => r,
        Err(e) => return report(e),
    };
    let restart = match a.restart.as_deref().map(str::parse::<RestartPolicy>) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => return report(usage(e.to_string())),
    };
    if res.is_none() && restart.is_none() {
        return report(usage(
            "you must provide one or more flags when using this command (--memory, --memory-swap, --cpus, --cpu-shares, --cpuset-cpus, --pids-limit, --restart)",
        ));
    }
    each(&a.containers, |store, st| {
        if let Some(policy) = restart {
            update_restart(store, st, policy)?;
        }
        if let Some(res) = &res {
            gocker_runtime::control::update(store, st, res)?;
        }
        Ok(())
    })
}

/// `update --restart`: recorded in the container's directory, where its monitor reads it at the
/// payload's next exit (and a later `start`'s monitor at its start). As docker, refused for a
/// container removed when it exits (`--rm`), unless the new policy is `no`.
fn update_restart(
    store: &StateStore,
    st: &ContainerState,
    policy: RestartPolicy,
) -> Result<(), Failure> {
    if st.auto_remove && !policy.is_no() {
        return Err(usage(format!(
            "cannot update container {}: --restart {} conflicts with --rm (a container removed when it exits cannot be restarted)",
            st.name,
            policy.name()
        )));
    }
    gocker_runtime::restart::update_policy(&store.container_dir(&st.id), policy)?;
    Ok(())
}
