//! Detached containers: a monitor process (ring0) that outlives the CLI, owns the logs and records
//! the exit status, like conmon.

use std::os::fd::OwnedFd;

use gocker_ns::{Forked, NamespaceSet};

use crate::attach::{self, Session};
use crate::channel::Channel;
use crate::logs::{self, LogWriter};
use crate::proto::Report;
use crate::restart::{self, Backoff, RestartRecord};
use crate::state::StateStore;
use crate::{Container, ContainerConfig, Result, RuntimeError};
use std::time::{Duration, Instant};

/// Starts `config` under a new monitor process and returns once the payload runs (or failed to).
/// The caller must be single-threaded (the monitor forks the rings).
pub fn run_detached(
    config: ContainerConfig,
    store: StateStore,
    name: &str,
    auto_remove: bool,
) -> Result<String> {
    spawn_monitor(config, store, name, auto_remove, None)
}

/// Starts `config` (which must have a terminal) under a new monitor, attached from the first byte
/// of output: `gocker run -it`. Returns the container's id and the session to relay; after a
/// detach the container keeps running under its monitor. The caller must be single-threaded.
pub fn run_attached(
    config: ContainerConfig,
    store: StateStore,
    name: &str,
    auto_remove: bool,
) -> Result<(String, Session)> {
    if !config.tty {
        return Err(RuntimeError::Protocol(
            "attaching needs a container with a terminal".into(),
        ));
    }
    let (ours, theirs) = crate::channel::pair()?;
    let id = spawn_monitor(config, store, name, auto_remove, Some(theirs))?;
    Ok((id, Session::greeted(ours)?))
}

fn spawn_monitor(
    config: ContainerConfig,
    store: StateStore,
    name: &str,
    auto_remove: bool,
    first_client: Option<Channel>,
) -> Result<String> {
    if auto_remove && !config.monitor.restart.is_no() {
        return Err(RuntimeError::Config(format!(
            "conflicting options: --restart {} and --rm (a container removed when it exits cannot be restarted)",
            config.monitor.restart.name()
        )));
    }
    let (mut ready_r, ready_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map(|(r, w)| (std::fs::File::from(r), w))
        .map_err(|e| RuntimeError::sys("pipe", "monitor", e))?;
    // SAFETY: documented requirement: the caller is single-threaded.
    match unsafe { gocker_ns::fork_into(NamespaceSet::EMPTY, None) }? {
        Forked::Child => {
            drop(ready_r);
            monitor(
                config,
                store,
                name,
                auto_remove,
                std::fs::File::from(ready_w),
                first_client,
            )
        }
        Forked::Parent { .. } => {
            drop(ready_w);
            drop(first_client);
            // One line: the rings inherit the pipe too, so EOF would only come when they exit.
            let mut msg = String::new();
            let _ =
                std::io::BufRead::read_line(&mut std::io::BufReader::new(&mut ready_r), &mut msg);
            match Report::parse_all(&msg).into_iter().next() {
                Some(Report::Started { id }) => Ok(id),
                // The monitor's exit code (127 for a missing command, as docker) travels on.
                Some(Report::Refused { code, message }) => {
                    Err(RuntimeError::Reported { code, message })
                }
                Some(other) => Err(RuntimeError::Protocol(format!(
                    "the monitor reported {other:?}"
                ))),
                None => Err(RuntimeError::Protocol(
                    "the monitor exited before reporting".into(),
                )),
            }
        }
    }
}

fn monitor(
    config: ContainerConfig,
    store: StateStore,
    name: &str,
    auto_remove: bool,
    ready: std::fs::File,
    first_client: Option<Channel>,
) -> ! {
    let _ = rustix::process::setsid();
    let dir = store.root().join(&config.id);
    // `gocker update --restart` replaces the policy the container was created with; it is read
    // again at every exit of the payload.
    let mut policy = restart::updated_policy(&dir).unwrap_or(config.monitor.restart);
    // A start (the first run under this monitor) forgets an earlier `stop`.
    restart::clear_stop(&dir);
    // The health checker is a process of its own, forked while we are single-threaded: it forks
    // again for every check (`gocker exec`'s path), which a multi-threaded monitor could not.
    let checker = config
        .monitor
        .health
        .clone()
        .and_then(|h| crate::healthcheck::spawn(h, store.clone(), config.id.clone()));
    // Every end of the monitor ends the checker first (and waits for it), so that nothing
    // writes into the container's directory once the monitor is gone (`rm` removes it then).
    let end = |code: i32| -> ! {
        if let Some(pid) = checker {
            crate::healthcheck::stop(pid);
        }
        crate::sys::exit(code)
    };
    let mut ready = Some(ready);
    let mut first_client = first_client;
    let mut record = RestartRecord {
        policy,
        ..Default::default()
    };
    if !policy.is_no() {
        let _ = record.save(&dir);
    }
    let mut backoff = Backoff::default();
    loop {
        let began = Instant::now();
        // Decided the moment the payload's exit is known, before the run's teardown: `inspect`
        // and `ps` show `Restarting` from then on.
        let mut decision: Option<(bool, Instant, Duration)> = None;
        let mut on = |event: RunEvent| match event {
            // A restart is `restarting` until its payload runs.
            RunEvent::Started => {
                if record.restarting {
                    record.restarting = false;
                    let _ = record.save(&dir);
                }
            }
            RunEvent::Exited(code) => {
                // (The events journal's "die" belongs here: the run ended with `code`.)
                let ended = Instant::now();
                record.last_exit = Some(code);
                record.finished_ms = Some(restart::now_ms());
                policy = restart::updated_policy(&dir).unwrap_or(policy);
                record.policy = policy;
                let again =
                    policy.should_restart(code, record.count, restart::stopped_by_user(&dir));
                let delay = if again {
                    backoff.next(ended - began)
                } else {
                    Duration::ZERO
                };
                record.restarting = again;
                if !policy.is_no() {
                    let _ = record.save(&dir);
                }
                decision = Some((again, ended, delay));
            }
        };
        let code = run_once(
            config.clone(),
            store.clone(),
            name,
            auto_remove,
            ready.take(),
            first_client.take(),
            &mut on,
        );
        let Some(code) = code else {
            // Stopped by the user while this restart was being created: it never ran.
            record.restarting = false;
            let _ = record.save(&dir);
            end(record.last_exit.unwrap_or(0))
        };
        let (again, ended, delay) = match decision {
            Some(d) => d,
            // A restart that failed before its payload ran: an exit with the error's code.
            None => {
                policy = restart::updated_policy(&dir).unwrap_or(policy);
                record.policy = policy;
                let again =
                    policy.should_restart(code, record.count, restart::stopped_by_user(&dir));
                record.last_exit = Some(code);
                record.finished_ms = Some(restart::now_ms());
                record.restarting = again;
                let delay = if again {
                    backoff.next(began.elapsed())
                } else {
                    Duration::ZERO
                };
                (again, Instant::now(), delay)
            }
        };
        if !again {
            record.restarting = false;
            if !policy.is_no() {
                let _ = record.save(&dir);
            }
            end(code)
        }
        let _ = record.save(&dir);
        tracing::debug!(?delay, count = record.count, "restarting");
        let until = ended + delay;
        loop {
            if restart::stopped_by_user(&dir) {
                record.restarting = false;
                let _ = record.save(&dir);
                end(code)
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
        record.count += 1;
        let _ = record.save(&dir);
        // (The events journal's "restart" belongs here.)
    }
}

/// What [`run_once`] tells the monitor's loop as it happens.
enum RunEvent {
    /// The payload runs.
    Started,
    /// The payload exited with this code (the run's teardown follows).
    Exited(i32),
}

/// One run of the container under this monitor: create, start, wait. The first run reports to
/// `ready` (the CLI waiting in [`run_detached`]); a failure before that report ends the monitor
/// with the error's code. A later run (a restart) that fails to start returns its error's code
/// like an exit, for the restart policy to decide on. Returns once the payload has exited and
/// the log pumps and the terminal hub are done: the monitor is single-threaded again, so it may
/// fork the rings of the next run.
fn run_once(
    config: ContainerConfig,
    store: StateStore,
    name: &str,
    auto_remove: bool,
    mut ready: Option<std::fs::File>,
    first_client: Option<Channel>,
    on: &mut dyn FnMut(RunEvent),
) -> Option<i32> {
    // The first run's failure goes to the waiting CLI and ends the monitor; a restart's is an exit.
    let fail = |ready: &mut Option<std::fs::File>, e: &RuntimeError, code: i32| -> i32 {
        match ready.as_mut() {
            Some(r) => {
                Report::Refused {
                    code: e.exit_code(),
                    message: e.to_string().replace('\n', " "),
                }
                .send(&*r);
                crate::sys::exit(code)
            }
            None => {
                tracing::warn!("restart of {name} failed: {e}");
                code
            }
        }
    };
    // The payload's stdout and stderr become pipes the monitor copies into the log.
    let pipes = (|| -> std::io::Result<((OwnedFd, OwnedFd), (OwnedFd, OwnedFd))> {
        let o = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let e = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        Ok((o, e))
    })();
    let ((out_r, out_w), (err_r, err_w)) = match pipes {
        Ok(p) => p,
        Err(e) => {
            return Some(fail(
                &mut ready,
                &RuntimeError::sys("pipe", "container logs", e),
                125,
            ))
        }
    };
    crate::process::stdio_to_null(true, false, false);
    let _ = rustix::stdio::dup2_stdout(&out_w);
    let _ = rustix::stdio::dup2_stderr(&err_w);
    drop((out_w, err_w));

    let mut cfg = config;
    cfg.stdin = false;
    cfg.forward_signals = false;
    let dir = store.root().join(&cfg.id);
    let mut c = match Container::create(cfg, store, name, auto_remove) {
        Ok(c) => c,
        Err(e) => {
            crate::process::stdio_to_null(false, true, true);
            let code = e.exit_code();
            return Some(fail(&mut ready, &e, code));
        }
    };
    // The rings exist now: threads are safe until the run ends (nothing forks meanwhile).
    // From here a failure tears the created container down (its Drop) before the report: a
    // CLI that has read the error finds no record left.
    let abandon = |c: Container, ready: &mut Option<std::fs::File>, e: &RuntimeError, code: i32| {
        drop(c);
        crate::process::stdio_to_null(false, true, true);
        fail(ready, e, code)
    };
    let writer = match LogWriter::create(&dir, logs::MAX_LOG_BYTES) {
        Ok(w) => w,
        Err(e) => {
            let e = RuntimeError::sys("open", format!("{}", logs::log_path(&dir).display()), e);
            return Some(abandon(c, &mut ready, &e, 125));
        }
    };
    let (w1, w2, w3) = (writer.clone(), writer.clone(), writer);
    let t1 = std::thread::spawn(move || logs::pump(std::fs::File::from(out_r), "stdout", w1));
    let t2 = std::thread::spawn(move || logs::pump(std::fs::File::from(err_r), "stderr", w2));
    // -t: the terminal carries both streams; its output is logged as stdout, like docker, and goes
    // to the attached clients.
    let mut hub = None;
    if let Some(master) = c.take_pty() {
        let listener = match attach::listen(&dir) {
            Ok(l) => l,
            Err(e) => {
                let code = abandon(c, &mut ready, &e, 125);
                let _ = t1.join();
                let _ = t2.join();
                return Some(code);
            }
        };
        let mut h = attach::Hub::new(master, listener, w3);
        if let Some(first) = first_client {
            h.add(first);
        }
        hub = Some(std::thread::spawn(move || h.serve()));
    }
    // A stop that came while this restart was being created: it does not start.
    if ready.is_none() && restart::stopped_by_user(&dir) {
        drop(c);
        crate::process::stdio_to_null(false, true, true);
        let _ = t1.join();
        let _ = t2.join();
        if let Some(t) = hub {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(dir.join(attach::SOCKET));
        return None;
    }
    if let Err(e) = c.start() {
        let code = e.exit_code();
        let code = abandon(c, &mut ready, &e, code);
        let _ = t1.join();
        let _ = t2.join();
        if let Some(t) = hub {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(dir.join(attach::SOCKET));
        return Some(code);
    }
    if let Some(r) = ready.take() {
        Report::Started {
            id: c.id().to_owned(),
        }
        .send(&r);
    }
    on(RunEvent::Started);
    // (The events journal's "start" belongs here.)
    // Our own copies of the pipes' write ends are fds 1 and 2: close them so the pumps see EOF
    // once the payload (and ring1) are gone.
    let status = c.wait();
    on(RunEvent::Exited(match &status {
        Ok(s) => s.code(),
        Err(e) => e.exit_code(),
    }));
    crate::process::stdio_to_null(false, true, true);
    let _ = t1.join();
    let _ = t2.join();
    let code = match status {
        Ok(s) => s.code(),
        Err(e) => e.exit_code(),
    };
    if let Some(t) = hub {
        let clients = t.join().unwrap_or_default();
        let _ = std::fs::remove_file(dir.join(attach::SOCKET));
        attach::report_exit(&clients, code, c.oom_kills());
    }
    if auto_remove {
        let _ = c.delete();
    } else {
        drop(c);
    }
    Some(code)
}
