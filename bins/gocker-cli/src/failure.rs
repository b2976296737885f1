//! How the CLI fails: a message and docker's exit code (125 for its own errors).

use gocker_runtime::RuntimeError;

/// An error of the CLI itself: what to print and which exit code to use.
pub(crate) struct Failure {
    pub(crate) code: i32,
    pub(crate) message: String,
}

impl From<RuntimeError> for Failure {
    fn from(e: RuntimeError) -> Self {
        Failure {
            code: e.exit_code(),
            message: e.to_string(),
        }
    }
}

pub(crate) fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 125,
        message: message.into(),
    }
}

pub(crate) fn report(f: Failure) -> i32 {
    eprintln!("gocker: {}", f.message);
    f.code
}

/// The exit status when our output's reader went away: what a shell shows for a program killed
/// by SIGPIPE (128 + 13), which gocker is not (the runtime keeps SIGPIPE ignored, and its monitors
/// and rings inherit that), so it leaves with that status itself.
pub(crate) const BROKEN_PIPE_EXIT: i32 = 141;

/// `gocker CMD | head -1`: once the reader is gone, exit quietly with [`BROKEN_PIPE_EXIT`]
/// instead of panicking in `println!` (`failed printing to stdout: Broken pipe`). A panic hook,
/// so that every subcommand, also a new one, is covered; other panics keep the default hook.
pub(crate) fn exit_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info
            .payload_as_str()
            .is_some_and(|m| m.contains("Broken pipe"))
        {
            std::process::exit(BROKEN_PIPE_EXIT);
        }
        default(info)
    }));
}

/// True when `e`, or an error it was caused by, is a write to a pipe whose reader went away
/// (`gocker export c | head -c1`): such a command ends with [`BROKEN_PIPE_EXIT`], quietly.
pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    let pipe = Some(std::io::ErrorKind::BrokenPipe);
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().map(std::io::Error::kind) == pipe
            || c.downcast_ref::<gocker_storage::PackError>()
                .is_some_and(|p| p.io_kind == pipe)
            // Reported as text by a helper process (rootless `export` writes from a child in
            // the container's user namespace): the OS's own words for EPIPE.
            || c.to_string().ends_with("Broken pipe (os error 32)")
    })
}

/// A write to stdout or stderr: a broken pipe ends gocker as [`exit_on_broken_pipe`] does; other
/// errors are ignored (as `print!` would not be: use this where output is best effort).
pub(crate) fn wrote(r: std::io::Result<()>) {
    if let Err(e) = r {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(BROKEN_PIPE_EXIT);
        }
    }
}

/// For relays that keep going after a failed write (`attach`: the runtime's relay ignores write
/// errors): a thread that waits for stdout's reader to go away (POLLERR on a pipe, POLLHUP on a
/// socket), puts the terminal of stdin back as it was now (the relay may have made it raw) and
/// exits with [`BROKEN_PIPE_EXIT`]. The container is not affected (its monitor keeps it).
pub(crate) fn exit_when_stdout_closes() {
    use rustix::event::{poll, PollFd, PollFlags};
    let saved = rustix::termios::tcgetattr(rustix::stdio::stdin()).ok();
    std::thread::spawn(move || loop {
        let out = rustix::stdio::stdout();
        // No events asked: only ERR, HUP and NVAL are reported (a file or /dev/null never wakes).
        let mut fds = [PollFd::from_borrowed_fd(out, PollFlags::empty())];
        match poll(&mut fds, None) {
            Ok(_) => {
                let r = fds[0].revents();
                if r.intersects(PollFlags::ERR | PollFlags::HUP) {
                    if let Some(t) = &saved {
                        let _ = rustix::termios::tcsetattr(
                            rustix::stdio::stdin(),
                            rustix::termios::OptionalActions::Now,
                            t,
                        );
                    }
                    std::process::exit(BROKEN_PIPE_EXIT);
                }
                if r.contains(PollFlags::NVAL) {
                    return;
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
    });
}

/// docker's `[y/N]` question of the prune commands on stdout, answered by a line of stdin: `y` or
/// `yes` (any case) goes on; anything else, EOF included (stdin not a terminal), does not.
pub(crate) fn confirmed(warning: &str) -> bool {
    use std::io::{BufRead, Write};
    let mut out = std::io::stdout().lock();
    wrote(write!(
        out,
        "{warning}\nAre you sure you want to continue? [y/N] "
    ));
    wrote(out.flush());
    drop(out);
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}
