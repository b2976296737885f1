//! `gocker-init -- COMMAND [ARG...]`: the container's PID 1 for `gocker run --init` (what
//! docker's `--init` does with tini). The same static binary as lift, chosen by `argv[0]`;
//! gocker-runtime executes it from a sealed memfd, so nothing is added to the container's
//! filesystem and the container cannot rewrite it.
//!
//! It runs COMMAND as its only direct child, forwards every catchable signal it receives to
//! it (PID 1 of a PID namespace gets only signals it handles, so the command itself would
//! ignore a SIGTERM it has no handler for), reaps every process that is reparented to it
//! (orphans become zombies of PID 1), and exits with the command's status (128+N when a
//! signal N killed it), after which the kernel kills whatever is left in the namespace.

use std::ffi::{CString, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStringExt;

fn fail(code: i32, msg: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "gocker-init: {msg}");
    std::process::exit(code)
}

/// Every signal except the ones that cannot be caught and the synchronous faults.
fn forwardable() -> libc::sigset_t {
    // SAFETY: sigset_t is initialised by sigfillset before use; the pointers are valid.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for s in [
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGFPE,
            libc::SIGILL,
            libc::SIGTRAP,
            libc::SIGABRT,
            libc::SIGSYS,
        ] {
            libc::sigdelset(&mut set, s);
        }
        set
    }
}

pub fn main(args: Vec<OsString>) -> ! {
    let args: Vec<OsString> = match args.first() {
        Some(a) if a == "--" => args[1..].to_vec(),
        _ => args,
    };
    if args.is_empty() {
        fail(125, "usage: gocker-init -- COMMAND [ARG...]");
    }
    let argv: Vec<CString> = args
        .into_iter()
        .map(|a| CString::new(a.into_vec()).unwrap_or_else(|_| fail(125, "NUL in an argument")))
        .collect();
    let set = forwardable();
    // SAFETY: zeroed is a valid sigset_t to be filled in by sigprocmask.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to initialised sigsets.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) };
    // SAFETY: fork in a single-threaded process; the child only execs or exits.
    let child = unsafe { libc::fork() };
    if child < 0 {
        fail(125, &format!("fork: {}", std::io::Error::last_os_error()));
    }
    if child == 0 {
        // The command: the signal mask and dispositions of a fresh process.
        // SAFETY: restoring the mask saved above; execvp with NULL-terminated arrays of live CStrings.
        unsafe {
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
            ptrs.push(std::ptr::null());
            libc::execvp(ptrs[0], ptrs.as_ptr());
        }
        let e = std::io::Error::last_os_error();
        let code = match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => 127,
            _ => 126,
        };
        fail(
            code,
            &format!("exec {}: {e}", String::from_utf8_lossy(argv[0].as_bytes())),
        );
    }
    loop {
        // SAFETY: siginfo_t is plain data filled in by the kernel.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers; the set was initialised above.
        let sig = unsafe { libc::sigwaitinfo(&set, &mut info) };
        if sig < 0 {
            continue; // EINTR
        }
        if sig != libc::SIGCHLD {
            // SAFETY: plain kill(2) of our own child.
            unsafe { libc::kill(child, sig) };
            continue;
        }
        // Reap everything that has exited: the command and any orphan reparented to us.
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a valid status pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else if libc::WIFSIGNALED(status) {
                    128 + libc::WTERMSIG(status)
                } else {
                    continue;
                };
                std::process::exit(code);
            }
        }
    }
}
