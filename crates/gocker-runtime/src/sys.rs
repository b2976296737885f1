//! Process plumbing shared by every ring and helper process: leaving a forked child, dying with
//! the parent, waiting for a child's status. Nothing here knows about containers.

use std::os::fd::BorrowedFd;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitOptions};

use crate::{ExitStatus, Result, RuntimeError};

pub(crate) fn exit(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers and stdio flushing, which belong to the parent process
    // this child was forked from (flushing its copied buffers would duplicate output).
    unsafe { libc::_exit(code) }
}

/// Who the parent of a ring is, to check it is still alive after setting the death signal.
pub(crate) enum Parent<'a> {
    /// In the same PID namespace: compare `getppid()`.
    Pid(i32),
    /// Outside our PID namespace (`getppid()` is 0 there): poll its pidfd.
    Pidfd(BorrowedFd<'a>),
}

/// Sets `PR_SET_PDEATHSIG(SIGKILL)` (cleared by every credential change, so called again after
/// each) and exits if the parent already died before it took effect.
pub(crate) fn die_with_parent(parent: &Parent<'_>) -> Result<()> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL)).map_err(|e| {
        RuntimeError::Ring {
            stage: "set parent death signal".into(),
            message: e.to_string(),
        }
    })?;
    let alive = match parent {
        Parent::Pid(p) => rustix::process::getppid().map(|x| x.as_raw_nonzero().get()) == Some(*p),
        Parent::Pidfd(fd) => {
            let mut p = [PollFd::from_borrowed_fd(*fd, PollFlags::IN)];
            matches!(
                rustix::event::poll(
                    &mut p,
                    Some(&Timespec {
                        tv_sec: 0,
                        tv_nsec: 0
                    })
                ),
                Ok(0)
            )
        }
    };
    if !alive {
        exit(125);
    }
    Ok(())
}

/// Waits for the child `pid` (retrying on EINTR) and returns its status the docker way.
pub(crate) fn wait_status(pid: Pid) -> std::result::Result<ExitStatus, Errno> {
    loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, s))) => return Ok(ExitStatus::from_wait(s)),
            Err(Errno::INTR) | Ok(None) => continue,
            Err(e) => return Err(e),
        }
    }
}
