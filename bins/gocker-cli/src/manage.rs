//! Commands on existing containers: logs, stop, kill, wait, inspect, exec, start, restart, top.

use std::time::{Duration, Instant};

use gocker_runtime::nsexec::ExecEnd;
use gocker_runtime::state::StateStore;
use gocker_runtime::{ContainerState, Status};

use crate::cli::{
    AttachArgs, ExecArgs, InspectArgs, KillArgs, LogsArgs, NamesArgs, StopArgs, TopArgs,
};
use crate::run::{detach_keys, finish_attached, report, terminal_detach_keys, usage, Failure};

fn store() -> Result<StateStore, Failure> {
    let s = StateStore::open(StateStore::default_root())?;
    s.collect_stale();
    Ok(s)
}

fn each(
    names: &[String],
    mut f: impl FnMut(&StateStore, ContainerState) -> Result<(), Failure>,
) -> i32 {
    let s = match store() {
        Ok(s) => s,
        Err(e) => return report(e),
    };
    let mut code = 0;
    for n in names {
        if let Err(e) = s.lookup(n).map_err(Failure::from).and_then(|st| f(&s, st)) {
            code = report(e);
        }
    }
    code
}

pub(crate) fn running(st: &ContainerState) -> bool {
    st.status != Status::Stopped && StateStore::monitor_alive(st)
}

/// Signal by name (with or without SIG, any case, RTMIN+N) or number (1-64).
fn parse_signal(s: &str) -> Result<i32, Failure> {
    crate::signals::parse_signal(s)
        .map(|(n, _)| n)
        .ok_or_else(|| usage(format!("--signal {s:?}: unknown signal")))
}

fn signal(st: &ContainerState, sig: i32) -> Result<(), Failure> {
    let pid = st
        .pid
        .ok_or_else(|| usage(format!("container {} has no process", st.name)))?;
    let pid = rustix::process::Pid::from_raw(pid).ok_or_else(|| usage("bad pid in state"))?;
    // A pidfd pins the process: no signal to a recycled pid after the check below.
    let fd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(_) => return Ok(()),
    };
    if !running(st) {
        return Ok(());
    }
    // SAFETY: the kernel validates the signal number.
    let s = unsafe { rustix::process::Signal::from_raw_unchecked(sig) };
    rustix::process::pidfd_send_signal(&fd, s)
        .map_err(|e| usage(format!("signal {sig} to {}: {e}", st.name)))
}

fn wait_stopped(
    s: &StateStore,
    st: &ContainerState,
    timeout: Option<Duration>,
) -> Option<ContainerState> {
    let end = timeout.map(|t| Instant::now() + t);
    loop {
        match s.load(&st.id) {
            Ok(now) if !running(&now) => return Some(now),
            Err(_) => return Some(st.clone()), // removed (--rm): it has stopped
            _ => {}
        }
        if end.map(|e| Instant::now() >= e).unwrap_or(false) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The grace period of `stop`/`restart`: `-t`, else the container's `run --stop-timeout`
/// (docker's StopTimeout), else 10 s.
fn grace_of(s: &StateStore, st: &ContainerState, flag: Option<u64>) -> u64 {
    flag.unwrap_or_else(|| {
        s.load_config(&st.id)
            .ok()
            .and_then(|c| c.stop_timeout)
            .map(|d| d.as_secs())
            .unwrap_or(10)
    })
}

/// The signal `stop`/`restart` send first: the container's `run --stop-signal`, else its image's
/// StopSignal (both recorded in its spec by `run`), else SIGTERM, as docker.
fn stop_signal(s: &StateStore, st: &ContainerState) -> i32 {
    let cfg = s.load_config(&st.id).ok();
    crate::run_image::stop_signal_of(cfg.as_ref().and_then(|c| c.spec.annotations().as_ref()))
}

fn stop_one(s: &StateStore, st: &ContainerState, flag: Option<u64>) -> Result<(), Failure> {
    let grace = grace_of(s, st, flag);
    // First, so that its monitor restarts it no more (`--restart`); then the current record: a
    // restart may have replaced the process meanwhile.
    let restarts = crate::monitor_flags::mark_stopped_by_user(s, st)?;
    let st = &with_process(s, st);
    if running(st) && st.pid.is_some() {
        let first = stop_signal(s, st);
        signal(st, first)?;
        s.record_container_event(st, None, "kill", &[("signal", &first.to_string())]);
        // A paused container is thawed after the signal, as docker's stop does.
        crate::control::thaw_after_signal(st);
        if wait_stopped(s, st, Some(Duration::from_secs(grace))).is_none() {
            // The current process: a restart that began before the mark has another one.
            let now = with_process(s, st);
            signal(&now, libc::SIGKILL)?;
            s.record_container_event(&now, None, "kill", &[("signal", "9")]);
            // SIGKILL cannot be caught: what is left is the monitor reaping the container and
            // saving its record, which a loaded host can delay by seconds.
            wait_stopped(s, &now, Some(Duration::from_secs(30))).ok_or_else(|| {
                usage(format!("container {} did not stop after SIGKILL", st.name))
            })?;
        }
    }
    if restarts {
        crate::monitor_flags::wait_monitor_gone(st);
        // A restart that was already past the mark when it was made: stop that one too.
        let now = s.load(&st.id).unwrap_or_else(|_| st.clone());
        if running(&now) {
            return stop_one(s, &now, Some(grace));
        }
    }
    s.record_container_event(st, None, "stop", &[]);
    Ok(())
}

/// The current record of `st`; while it is being created (a `--restart` run: no process yet),
/// at most 15 s until its process exists or it has stopped (its monitor drops a run that is
/// being created when the user stopped it).
fn with_process(s: &StateStore, st: &ContainerState) -> ContainerState {
    let mut st = s.load(&st.id).unwrap_or_else(|_| st.clone());
    let end = Instant::now() + Duration::from_secs(15);
    while running(&st) && st.pid.is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
        st = s.load(&st.id).unwrap_or(st);
    }
    st
}

pub fn stop(a: StopArgs) -> i32 {
    each(&a.containers, |s, st| {
        stop_one(s, &st, a.time)?;
        println!("{}", st.name);
        Ok(())
    })
}

pub fn kill(a: KillArgs) -> i32 {
    let sig = match parse_signal(&a.signal) {
        Ok(s) => s,
        Err(e) => return report(e),
    };
    each(&a.containers, |s, st| {
        if !running(&st) {
            return Err(usage(format!("container {} is not running", st.name)));
        }
        let st = with_process(s, &st);
        if !running(&st) {
            return Err(usage(format!("container {} is not running", st.name)));
        }
        crate::monitor_flags::mark_stopped_by_user(s, &st)?;
        signal(&st, sig)?;
        // docker: SIGKILL or the container's stop signal to a paused container thaws it, so that
        // it ends; another signal waits, pending, for `unpause`.
        if sig == libc::SIGKILL || sig == stop_signal(s, &st) {
            crate::control::thaw_after_signal(&st);
        }
        s.record_container_event(&st, None, "kill", &[("signal", &sig.to_string())]);
        println!("{}", st.name);
        Ok(())
    })
}

pub fn wait(a: NamesArgs) -> i32 {
    each(&a.containers, |s, st| {
        // A created container (`gocker create`): as docker's, wait for it to be started first.
        let mut st = st;
        while st.never_started() {
            std::thread::sleep(Duration::from_millis(50));
            match s.load(&st.id) {
                Ok(now) => st = now,
                Err(_) => break, // removed before it ran
            }
        }
        let done = wait_stopped(s, &st, None).expect("no timeout");
        println!("{}", done.exit.map(|e| e.code()).unwrap_or(0));
        Ok(())
    })
}

pub fn inspect(a: InspectArgs) -> i32 {
    let format = match crate::format::Format::parse(a.format.as_deref()) {
        Ok(f) => f,
        Err(e) => return report(e.into()),
    };
    let mut all = Vec::new();
    let code = each(&a.containers, |s, st| {
        let spec: serde_json::Value = std::fs::read(s.container_dir(&st.id).join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        let mut v = serde_json::to_value(&st).map_err(|e| usage(e.to_string()))?;
        v["running"] = serde_json::Value::Bool(running(&st));
        // docker's State.Paused, and State.Status `paused` (from the kernel's cgroup.freeze).
        let paused = running(&st) && st.paused();
        v["paused"] = serde_json::Value::Bool(paused);
        if paused {
            v["status"] = serde_json::json!("paused");
        }
        v["exit_code"] = st
            .exit
            .map(|e| serde_json::json!(e.code()))
            .unwrap_or(serde_json::Value::Null);
        // docker's inspect shows times in RFC 3339 (UTC), not Unix seconds.
        v["created"] = serde_json::json!(gocker_runtime::logs::rfc3339(st.created, 0));
        // docker's `Config` subset that `run` recorded: Image, Labels, ExposedPorts, StopSignal.
        let ann: Option<std::collections::HashMap<String, String>> =
            serde_json::from_value(spec["annotations"].clone()).ok();
        v["Config"] = crate::run_image::recorded_config(ann.as_ref())
            .unwrap_or_else(|| serde_json::json!({"Labels": {}}));
        // docker's NetworkSettings.Ports: what `run -p`/`-P` published.
        v["NetworkSettings"] = serde_json::json!({
            "Ports": crate::port::inspect_json(&crate::port::recorded(s, &st.id)),
        });
        // docker's HostConfig namespace modes (--pid, --ipc, --uts, --network, --userns).
        if let Ok(parsed) = serde_json::from_value::<oci_spec::runtime::Spec>(spec.clone()) {
            let network = s
                .load_config(&st.id)
                .map(|c| c.network.mode.to_string())
                .unwrap_or_default();
            for (k, mode) in crate::nsflags::host_config(&parsed, &network) {
                v["HostConfig"][k] = serde_json::Value::String(mode);
            }
        }
        // docker's NetworkSettings.Networks, for a container on a user-defined network.
        if let Some(n) = spec["annotations"][crate::network_cmds::NETWORK_ANNOTATION].as_str() {
            v["NetworkSettings"]["Networks"] = crate::network_cmds::container_json(n, &st.id);
        }
        // ... and the networks `network connect` added.
        let net_dir = gocker_runtime::net::net_dir(s.root());
        for n in gocker_net::connect::networks_of(&net_dir, &st.id) {
            if let serde_json::Value::Object(m) = crate::network_cmds::container_json(&n, &st.id) {
                if !v["NetworkSettings"]["Networks"].is_object() {
                    v["NetworkSettings"]["Networks"] = serde_json::json!({});
                }
                for (k, e) in m {
                    v["NetworkSettings"]["Networks"][k] = e;
                }
            }
        }
        // docker's own names of the container's identity and state (`{{.State.Pid}}`).
        v["Id"] = serde_json::json!(st.id);
        v["Name"] = serde_json::json!(format!("/{}", st.name));
        v["Created"] = v["created"].clone();
        v["Path"] = serde_json::json!(st.command.first().cloned().unwrap_or_default());
        v["Args"] = serde_json::json!(st.command.get(1..).unwrap_or_default());
        v["State"] = crate::ps_row::inspect_state(s, &st, running(&st));
        crate::monitor_flags::inspect_fields(
            &mut v,
            &s.container_dir(&st.id),
            running(&st),
            crate::monitor_flags::restarting(s, &st),
        );
        v["spec"] = spec;
        all.push(v);
        Ok(())
    });
    if all.is_empty() {
        return code;
    }
    if format.is_default() {
        println!("{}", serde_json::to_string_pretty(&all).expect("json"));
        return code;
    }
    match format.render(&all, &[]) {
        Ok(text) => {
            crate::failure::wrote(std::io::Write::write_all(
                &mut std::io::stdout(),
                text.unwrap_or_default().as_bytes(),
            ));
            code
        }
        Err(e) => report(e.into()),
    }
}

/// A `logs --since/--until` value in nanoseconds since the epoch ([`crate::timeflags`]).
fn log_time(flag: &str, v: Option<&str>, now: i128) -> Result<Option<i128>, Failure> {
    v.map(|v| {
        crate::timeflags::parse_instant(v, now).ok_or_else(|| {
            usage(format!(
                "{flag} {v:?}: not a timestamp (RFC 3339 such as 2026-12-01T10:00:00Z, or Unix seconds) nor a duration (10m, 1h30m)"
            ))
        })
    })
    .transpose()
}

/// When a log line was written, in nanoseconds since the epoch (`None`: unreadable).
fn line_time(l: &gocker_runtime::logs::LogLine) -> Option<i128> {
    time::OffsetDateTime::parse(&l.time, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

pub fn logs(a: LogsArgs) -> i32 {
    let now = crate::timeflags::now_ns();
    let (since, until) = match log_time("--since", a.since.as_deref(), now)
        .and_then(|s| Ok((s, log_time("--until", a.until.as_deref(), now)?)))
    {
        Ok(t) => t,
        Err(e) => return report(e),
    };
    // docker's bounds: a line before --since or after --until is not shown (both inclusive).
    let within = |l: &gocker_runtime::logs::LogLine| {
        if since.is_none() && until.is_none() {
            return true;
        }
        let Some(t) = line_time(l) else {
            return false;
        };
        since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
    };
    let s = match store() {
        Ok(s) => s,
        Err(e) => return report(e),
    };
    let st = match s.lookup(&a.container) {
        Ok(st) => st,
        Err(e) => return report(e.into()),
    };
    let dir = s.container_dir(&st.id);
    let print = |l: &gocker_runtime::logs::LogLine| {
        use std::io::Write;
        let prefix = if a.timestamps {
            format!("{} ", l.time)
        } else {
            String::new()
        };
        if l.stream == "stderr" {
            crate::failure::wrote(write!(std::io::stderr(), "{prefix}{}", l.log));
        } else {
            crate::failure::wrote(write!(std::io::stdout(), "{prefix}{}", l.log));
        }
    };
    let lines = gocker_runtime::logs::read_all(&dir);
    // --tail counts the lines within --since/--until, as docker's.
    let shown: Vec<_> = lines.iter().filter(|l| within(l)).collect();
    let skip = a.tail.map(|n| shown.len().saturating_sub(n)).unwrap_or(0);
    shown[skip..].iter().for_each(|l| print(l));
    if !a.follow {
        return 0;
    }
    let mut seen = lines.len();
    loop {
        let still = s.load(&st.id).map(|now| running(&now)).unwrap_or(false);
        let lines = gocker_runtime::logs::read_all(&dir);
        // A rotation shrinks the list: start again from its beginning.
        if lines.len() < seen {
            seen = 0;
        }
        lines[seen..].iter().filter(|l| within(l)).for_each(print);
        seen = lines.len();
        // With --until, following ends at that time (docker's).
        let past = until.is_some_and(|u| crate::timeflags::now_ns() > u);
        if !still || past {
            return 0;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `exec -u USER[:GROUP]`: names resolved as `run -u` resolves them ([`crate::run::lookup_user`]),
/// in the running container's own root (`/proc/PID/root` of its payload, read confined to it).
/// An unknown name fails as docker's exec does: 126, `unable to find user NAME: no matching
/// entries in passwd file`.
fn exec_user(st: &ContainerState, spec: &str) -> Result<(u32, u32), Failure> {
    use crate::run::UserLookup;
    let pid = st
        .pid
        .ok_or_else(|| usage(format!("container {} has no process", st.name)))?;
    let root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    let not_found = |message: String| Failure { code: 126, message };
    crate::run::lookup_user(spec, &root).map_err(|e| match e {
        UserLookup::Syntax => usage(format!("--user {spec:?}: expected USER[:GROUP]")),
        UserLookup::NoUser(u) => not_found(format!(
            "unable to find user {u}: no matching entries in passwd file"
        )),
        UserLookup::NoGroup(g) => not_found(format!(
            "unable to find group {g}: no matching entries in group file"
        )),
    })
}

pub fn exec(a: ExecArgs) -> i32 {
    let r = (|| -> Result<i32, Failure> {
        let s = store()?;
        let st = s.lookup(&a.container)?;
        if running(&st) && st.paused() {
            // As docker's; the new process would join the frozen cgroup and hang there.
            return Err(usage(format!(
                "container {} is paused, unpause the container before exec",
                st.name
            )));
        }
        crate::run::check_tty(a.interactive, a.tty)?;
        for e in &a.env {
            if !e.contains('=') || e.starts_with('=') {
                return Err(usage(format!("--env {e:?}: expected KEY=VALUE")));
            }
        }
        if let Some(w) = &a.workdir {
            if !w.starts_with('/') {
                return Err(usage(format!("--workdir {w:?}: must be an absolute path")));
            }
        }
        let mut env = Vec::new();
        crate::run::set_vars(&mut env, crate::run::env_vars(&a.env_file, &a.env)?);
        let user = a.user.as_deref().map(|u| exec_user(&st, u)).transpose()?;
        // docker's exec events carry the command: `exec_create: sh -c true`.
        let cmd = a.command.join(" ");
        s.record_container_event(&st, None, &format!("exec_create: {cmd}"), &[]);
        s.record_container_event(&st, None, &format!("exec_start: {cmd}"), &[]);
        if a.detach {
            if a.interactive || a.tty {
                return Err(usage(
                    "exec -d cannot be combined with -i or -t here (a detached command has no terminal nor stdin: drop -i/-t, or run it with -it and detach with the detach keys)",
                ));
            }
            return exec_detached(
                &s,
                &st,
                gocker_runtime::nsexec::ExecRequest {
                    args: a.command.clone(),
                    env,
                    cwd: a.workdir.clone(),
                    user,
                    ..Default::default()
                },
            );
        }
        if !a.interactive {
            let null = rustix::fs::open(
                "/dev/null",
                rustix::fs::OFlags::RDONLY,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| usage(format!("/dev/null: {e}")))?;
            rustix::stdio::dup2_stdin(&null).map_err(|e| usage(format!("stdin: {e}")))?;
        }
        let keys = terminal_detach_keys(a.detach_keys.as_deref(), a.interactive && a.tty)?;
        let req = gocker_runtime::nsexec::ExecRequest {
            args: a.command.clone(),
            env,
            cwd: a.workdir.clone(),
            user,
            tty: a.tty,
            stdin: a.interactive,
            detach_keys: Some(keys),
            ..Default::default()
        };
        match gocker_runtime::nsexec::exec(&s, &st, &req)? {
            ExecEnd::Exited(status) => {
                let code = status.code().to_string();
                s.record_container_event(
                    &st,
                    None,
                    &format!("exec_die: {cmd}"),
                    &[("exitCode", &code)],
                );
                Ok(status.code())
            }
            ExecEnd::Detached => {
                eprintln!(
                    "\r\ngocker: detached from `{}` in {}, which keeps running",
                    a.command.join(" "),
                    st.name
                );
                Ok(0)
            }
        }
    })();
    match r {
        Ok(c) => c,
        Err(f) => report(f),
    }
}

/// `exec -d`: the command starts with /dev/null as its stdin, stdout and stderr (docker's
/// detached exec keeps no output) and keeps running in the container; we return once it has
/// exec'd: 0, or the exec's failure (126, 127) as a foreground exec reports it.
fn exec_detached(
    s: &StateStore,
    st: &ContainerState,
    req: gocker_runtime::nsexec::ExecRequest,
) -> Result<i32, Failure> {
    use rustix::stdio;
    let null = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| usage(format!("/dev/null: {e}")))?;
    let dup = |fd| rustix::io::fcntl_dupfd_cloexec(fd, 3).map_err(|e| usage(format!("dup: {e}")));
    let (out, err) = (dup(stdio::stdout())?, dup(stdio::stderr())?);
    let redirect = || -> rustix::io::Result<()> {
        stdio::dup2_stdin(&null)?;
        stdio::dup2_stdout(&null)?;
        stdio::dup2_stderr(&null)
    };
    let r = redirect()
        .map_err(|e| usage(format!("stdio to /dev/null: {e}")))
        .and_then(|()| gocker_runtime::nsexec::exec_detached(s, st, &req).map_err(Failure::from));
    // Ours again, for the messages (the command keeps /dev/null).
    let _ = stdio::dup2_stdout(&out);
    let _ = stdio::dup2_stderr(&err);
    r.map(|pid| {
        tracing::debug!("exec -d: pid {pid}");
        0
    })
}

pub fn attach(a: AttachArgs) -> i32 {
    let r = (|| -> Result<i32, Failure> {
        let keys = detach_keys(a.detach_keys.as_deref())?;
        let s = store()?;
        let st = s.lookup(&a.container)?;
        if !running(&st) {
            return Err(usage(format!(
                "container {} is not running (`gocker start {}` starts it again)",
                st.name, st.name
            )));
        }
        let dir = s.container_dir(&st.id);
        if !dir.join(gocker_runtime::attach::SOCKET).exists() {
            return Err(usage(format!(
                "container {} has no terminal to attach to (it was started without -t); `gocker logs -f {}` follows its output",
                st.name, st.name
            )));
        }
        let session = gocker_runtime::attach::Session::connect(&dir)?;
        crate::failure::exit_when_stdout_closes();
        finish_attached(&st.name, session.relay(!a.no_stdin, keys)?)
    })();
    r.unwrap_or_else(report)
}

/// Starts a stopped container again under a new monitor (detached), with its recorded configuration.
fn start_one(s: &StateStore, st: &ContainerState) -> Result<(), Failure> {
    if running(st) || crate::monitor_flags::restarting(s, st) {
        return Ok(());
    }
    let mut cfg = s.load_config(&st.id)?;
    let kept = st.never_started().then(|| cfg.clone());
    // The namespaces of other containers are looked up again: those containers must run now.
    crate::nsflags::rejoin(s, &mut cfg)?;
    let r = gocker_runtime::detach::run_detached(cfg, s.clone(), &st.name, st.auto_remove);
    if let (Err(_), Some(cfg)) = (&r, kept) {
        // A failed start removes a record without a previous state to go back to: a created
        // container stays created, as docker's (`gocker create`).
        let again = s
            .reserve(&st.id, &st.name)
            .and_then(|()| s.save_config(&cfg, true))
            .and_then(|()| s.save(st));
        if let Err(e) = again {
            eprintln!(
                "gocker: container {}: keeping its created record: {e}",
                st.name
            );
        }
    }
    r?;
    Ok(())
}

pub fn start(a: NamesArgs) -> i32 {
    each(&a.containers, |s, st| {
        start_one(s, &st)?;
        println!("{}", st.name);
        Ok(())
    })
}

pub fn restart(a: StopArgs) -> i32 {
    each(&a.containers, |s, st| {
        stop_one(s, &st, a.time)?;
        let st = s.load(&st.id)?;
        start_one(s, &st)?;
        println!("{}", st.name);
        Ok(())
    })
}

/// The host pids of the processes in the payload's PID namespace (found by comparing
/// `/proc/PID/ns/pid`), in increasing order: `top` and `stats` without a cgroup.
pub(crate) fn container_pids(st: &ContainerState) -> Result<Vec<i32>, Failure> {
    let pid = st
        .pid
        .ok_or_else(|| usage(format!("container {} has no process", st.name)))?;
    let target = std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .map_err(|e| usage(format!("/proc/{pid}/ns/pid: {e}")))?;
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .map_err(|e| usage(format!("/proc: {e}")))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/ns/pid"))
                .ok()
                .as_ref()
                == Some(&target)
        })
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// The processes in the payload's PID namespace ([`container_pids`]).
pub fn top(a: TopArgs) -> i32 {
    let r = (|| -> Result<(), Failure> {
        let s = store()?;
        let st = s.lookup(&a.container)?;
        if !running(&st) {
            return Err(usage(format!("container {} is not running", st.name)));
        }
        let tick = rustix::param::clock_ticks_per_second().max(1) as u64;
        let mut t = crate::table::Table::new(&["UID", "PID", "PPID", "TIME", "CMD"]);
        for p in container_pids(&st)? {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            let Some(close) = stat.rfind(')') else {
                continue;
            };
            let f: Vec<&str> = stat[close + 2..].split(' ').collect();
            let ppid = f.get(1).copied().unwrap_or("?");
            let cpu: u64 = f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
            let secs = cpu / tick;
            let uid = std::fs::read_to_string(format!("/proc/{p}/status"))
                .ok()
                .and_then(|t| {
                    t.lines().find_map(|l| {
                        l.strip_prefix("Uid:")
                            .map(|u| u.split_whitespace().next().unwrap_or("?").to_owned())
                    })
                })
                .unwrap_or_default();
            let cmd = std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .split('\0')
                        .filter(|x| !x.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            t.row(vec![
                uid,
                p.to_string(),
                ppid.to_owned(),
                format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
                cmd,
            ]);
        }
        t.print();
        Ok(())
    })();
    match r {
        Ok(()) => 0,
        Err(f) => report(f),
    }
}
