//! The monitor's health checker: a single-threaded child of the detached monitor that runs the
//! container's health check every interval through the path of `gocker exec`
//! ([`crate::nsexec::exec`]: every namespace joined by pidfd, the container's cgroup, the same
//! privilege drop as the payload) and records `State.Health` ([`crate::health`]).
//!
//! It is a process of its own because every check forks, which the monitor cannot do safely once
//! its log threads run. It dies with the monitor (`PR_SET_PDEATHSIG`). Each start of the
//! container (a restart, a new pid) begins again at `starting` with an empty log, as docker's.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use gocker_ns::{Forked, NamespaceSet};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, Signal};

use crate::health::{self, Health, Healthcheck, Probe};
use crate::nsexec::{ExecEnd, ExecRequest};
use crate::restart::now_ms;
use crate::state::{StateStore, Status};
use crate::sys::{exit, Parent};

/// Forks the checker; `None` when the fork failed (the container runs without health then, and
/// the monitor says so in its debug log). The caller must be single-threaded.
pub(crate) fn spawn(check: Healthcheck, store: StateStore, id: String) -> Option<Pid> {
    let monitor = rustix::process::getpid().as_raw_nonzero().get();
    // SAFETY: documented requirement: the caller (the monitor, before its log threads) is
    // single-threaded.
    match unsafe { gocker_ns::fork_into(NamespaceSet::EMPTY, None) } {
        Ok(Forked::Child) => {
            if crate::sys::die_with_parent(&Parent::Pid(monitor)).is_err() {
                exit(125)
            }
            crate::process::stdio_to_null(true, true, true);
            // Nothing the monitor holds (the CLI's report pipe, an attach channel, the log
            // pipes) stays open here: the checker opens what it reads itself.
            // SAFETY: close_range on descriptors this process does not use (none above 2 is
            // owned by a live object of the checker).
            unsafe { libc::close_range(3, u32::MAX, 0) };
            checker(&check, &store, &id)
        }
        Ok(Forked::Parent { pid, .. }) => Some(pid),
        Err(e) => {
            tracing::debug!("health checker not started: {e}");
            None
        }
    }
}

/// Ends the checker `pid` (a child of the caller) and reaps it.
pub(crate) fn stop(pid: Pid) {
    let _ = rustix::process::kill_process(pid, Signal::KILL);
    let _ = crate::sys::wait_status(pid);
}

fn checker(check: &Healthcheck, store: &StateStore, id: &str) -> ! {
    let dir = store.container_dir(id);
    let argv = match check.argv() {
        Ok(a) => a,
        Err(_) => exit(125),
    };
    let mut current: Option<(i32, Instant)> = None;
    let mut h = Health::default();
    let mut next = Instant::now();
    // Forked before the monitor creates the container: its record may not exist yet. Once it
    // has existed, its removal ends the checker.
    let mut seen = false;
    loop {
        let st = match store.load(id) {
            Ok(st) => st,
            Err(_) if seen => exit(0),
            Err(_) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        seen = true;
        let pid = st.pid.filter(|_| st.status == Status::Running);
        match (pid, current) {
            (Some(p), Some((q, _))) if p == q => {}
            (Some(p), _) => {
                // A new start: `starting` again, first check after one interval.
                current = Some((p, Instant::now()));
                h = Health::default();
                let _ = h.save(&dir);
                next = Instant::now() + check.interval;
            }
            (None, _) => {
                current = None;
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        }
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(100)));
            continue;
        }
        let started = current.map(|(_, t)| t).unwrap_or(now);
        let probe = probe(store, &st, &argv, check.timeout);
        // The container may have stopped meanwhile: a failure of a check of a dead container is
        // not recorded against the next start.
        match store.load(id) {
            Ok(again) if again.pid == st.pid && again.status == Status::Running => {}
            _ => continue,
        }
        let before = h.status;
        h.record(probe, check.retries, started.elapsed() < check.start_period);
        let _ = h.save(&dir);
        if h.status != before {
            // (The events journal's "health_status" belongs here.)
            tracing::debug!(status = h.status.as_str(), "health status changed");
        }
        next = Instant::now() + check.interval;
    }
}

/// One check: forks a child that runs `argv` in the container as `gocker exec` does, with its
/// stdout and stderr into a pipe; kills it after `timeout`.
fn probe(
    store: &StateStore,
    st: &crate::ContainerState,
    argv: &[String],
    timeout: Duration,
) -> Probe {
    let start_ms = now_ms();
    let failed = |output: String| Probe {
        start_ms,
        end_ms: now_ms(),
        exit_code: -1,
        output,
    };
    let (r, w) = match rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) {
        Ok(p) => p,
        Err(e) => return failed(format!("pipe: {e}")),
    };
    // SAFETY: the checker is single-threaded.
    let child = match unsafe { gocker_ns::fork_into(NamespaceSet::EMPTY, None) } {
        Ok(Forked::Child) => {
            drop(r);
            let _ = rustix::stdio::dup2_stdout(&w);
            let _ = rustix::stdio::dup2_stderr(&w);
            drop(w);
            let req = ExecRequest {
                args: argv.to_vec(),
                ..Default::default()
            };
            let code = match crate::nsexec::exec(store, st, &req) {
                Ok(ExecEnd::Exited(s)) => s.code(),
                Ok(ExecEnd::Detached) => 125,
                Err(e) => {
                    let _ = std::io::Write::write_all(
                        &mut std::io::stderr(),
                        format!("{e}\n").as_bytes(),
                    );
                    e.exit_code()
                }
            };
            exit(code)
        }
        Ok(Forked::Parent { pid, pidfd }) => (pid, pidfd),
        Err(e) => return failed(format!("fork: {e}")),
    };
    drop(w);
    let (pid, pidfd) = child;
    let (output, timed_out) = read_until(r, &pidfd, timeout);
    if timed_out {
        let _ = rustix::process::pidfd_send_signal(&pidfd, Signal::KILL);
    }
    let status = crate::sys::wait_status(pid);
    if timed_out {
        return failed(format!(
            "Health check exceeded timeout ({}s)",
            timeout.as_secs_f64()
        ));
    }
    Probe {
        start_ms,
        end_ms: now_ms(),
        exit_code: status.map(|s| s.code()).unwrap_or(-1),
        output: health::truncate_output(output),
    }
}

/// Reads the check's output until EOF or the deadline; whether the deadline passed first.
fn read_until(r: OwnedFd, pidfd: &OwnedFd, timeout: Duration) -> (String, bool) {
    let end = Instant::now() + timeout;
    let mut file = std::fs::File::from(r);
    let mut out = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (String::from_utf8_lossy(&out).into_owned(), true);
        }
        let ts = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: left.subsec_nanos() as i64,
        };
        let mut fds = [
            PollFd::from_borrowed_fd(file.as_fd(), PollFlags::IN),
            PollFd::from_borrowed_fd(pidfd.as_fd(), PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
            Ok(_) => {}
        }
        let (readable, exited) = (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
        if readable {
            let mut buf = [0u8; 4096];
            match file.read(&mut buf) {
                Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), false),
                Ok(n) => {
                    if out.len() < health::MAX_OUTPUT {
                        out.extend_from_slice(&buf[..n]);
                    }
                }
                Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
            }
        } else if exited {
            // Exited, but something in the container may still hold the pipe: do not wait for it.
            return (String::from_utf8_lossy(&out).into_owned(), false);
        }
    }
}
