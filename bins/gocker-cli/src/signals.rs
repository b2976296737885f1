//! Signal names as docker spells them (`SIGUSR1`, `usr1`, `10`, `RTMIN+3`): `run --stop-signal`,
//! an image's `StopSignal`, `commit --change STOPSIGNAL`, `kill -s`. A leaf.

/// Linux's signals by name (without `SIG`), aliases after the name they alias, as docker's
/// `signal.SignalMap`; real-time signals are `RTMIN`, `RTMIN+N`, `RTMAX-N`, `RTMAX`.
const SIGNALS: [(&str, i32); 34] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];
/// glibc's SIGRTMIN and SIGRTMAX (the kernel's 32 and 33 are the C library's own).
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// A signal as docker's `signal.ParseSignal` takes it: a number (1-64) or a name, with or
/// without `SIG`, in any case (`SIGUSR1`, `usr1`, `RTMIN+3`). Returns its number and its
/// canonical name (`SIGUSR1`; a number without a name stays a number).
pub(crate) fn parse_signal(s: &str) -> Option<(i32, String)> {
    let name_of = |n: i32| -> String {
        if let Some((name, _)) = SIGNALS.iter().find(|(_, v)| *v == n) {
            return format!("SIG{name}");
        }
        match n {
            RTMIN => "SIGRTMIN".into(),
            RTMAX => "SIGRTMAX".into(),
            n if n > RTMIN && n <= RTMIN + 15 => format!("SIGRTMIN+{}", n - RTMIN),
            n if n > RTMIN + 15 && n < RTMAX => format!("SIGRTMAX-{}", RTMAX - n),
            n => n.to_string(),
        }
    };
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return (1..=RTMAX).contains(&n).then(|| (n, name_of(n)));
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some((_, n)) = SIGNALS.iter().find(|(k, _)| *k == name) {
        return Some((*n, name_of(*n)));
    }
    let offset = |rest: &str| {
        rest.parse::<i32>()
            .ok()
            .filter(|k| (1..=RTMAX - RTMIN).contains(k))
    };
    let n = match name {
        "RTMIN" => RTMIN,
        "RTMAX" => RTMAX,
        _ => {
            if let Some(k) = name.strip_prefix("RTMIN+").and_then(offset) {
                RTMIN + k
            } else if let Some(k) = name.strip_prefix("RTMAX-").and_then(offset) {
                RTMAX - k
            } else {
                return None;
            }
        }
    };
    Some((n, name_of(n)))
}
