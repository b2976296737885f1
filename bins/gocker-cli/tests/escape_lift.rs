//! Issue 13, finding 7: a process that may not lift must not make ring1 fork host processes.
//!
//! A static probe (C, built with `gcc -static` at test time, bound read-only on `/opt`) opens 300
//! connections to lift's socket from inside a `--lift=root` container and holds them open without
//! sending a request, while the test counts the host processes under `gocker run` (ring0) and
//! ring1's lift handlers among them; then the probe reads the answer on every connection.
//!
//! * As uid 1000 (which `--lift=root` refuses): ring1 checks the peer's credentials itself, so no
//!   handler is forked, and every connection is answered with the policy refusal at once.
//! * As root (allowed): at most [`LIMIT`] handlers exist at a time; the other connections get the
//!   refusal naming the limit; the handlers of the silent connections give up after the request
//!   timeout (so they hold no slot for ever), are non-dumpable, and a lift afterwards works.
//!
//! Runs as root and as the unprivileged users (GOCKER_TEST_MODE); in rootless-single mode only uid
//! 0 exists in the container, so there is no uid that `--lift=root` refuses and that half is skipped.

mod common;
use common::*;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// ring1's bound on concurrent lift handlers (`MAX_HANDLERS` in gocker-runtime's lift.rs).
const LIMIT: usize = 16;
/// Connections the probe opens and holds.
const FLOOD: usize = 300;

const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* flood N SECONDS: opens N SOCK_SEQPACKET connections to /.gocker/lift.sock and sends nothing,
   prints "held connected=C failed=F errno=E", waits for a line on stdin, then waits at most
   SECONDS for the first message (or EOF) on every connection and prints
   "reply COUNT TEXT" per distinct message, "eof COUNT", "silent COUNT". */
static long now_ms(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int n = atoi(argv[1]), secs = atoi(argv[2]);
    struct pollfd *p = calloc(n, sizeof *p);
    int connected = 0, failed = 0, err = 0;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strcpy(a.sun_path, "/.gocker/lift.sock");
    for (int i = 0; i < n; i++) {
        int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
            failed++; err = errno; if (s >= 0) close(s); p[i].fd = -1; continue;
        }
        connected++; p[i].fd = s; p[i].events = POLLIN;
    }
    printf("held connected=%d failed=%d errno=%d\n", connected, failed, err);
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin)) return 3;

    enum { MAXT = 32 };
    char texts[MAXT][512]; int counts[MAXT]; int distinct = 0, eof = 0, left = connected;
    static char buf[65536];
    long end = now_ms() + secs * 1000L;
    while (left > 0) {
        long wait = end - now_ms();
        if (wait <= 0) break;
        int r = poll(p, n, (int)wait);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        for (int i = 0; i < n; i++) {
            if (p[i].fd < 0 || !p[i].revents) continue;
            ssize_t m = recv(p[i].fd, buf, sizeof buf - 1, MSG_DONTWAIT);
            if (m < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (m <= 0) eof++;
            else {
                buf[m] = 0;
                for (char *c = buf; c < buf + m; c++) if (*c == '\n') *c = ' ';
                int k = 0;
                while (k < distinct && strcmp(texts[k], buf)) k++;
                if (k == distinct && distinct < MAXT) {
                    snprintf(texts[k], sizeof texts[k], "%s", buf); counts[k] = 0; distinct++;
                }
                if (k < distinct) counts[k]++;
            }
            close(p[i].fd); p[i].fd = -1; left--;
        }
    }
    for (int k = 0; k < distinct; k++) printf("reply %d %s\n", counts[k], texts[k]);
    printf("eof %d\nsilent %d\n", eof, left);
    return 0;
}
"#;

/// The directory holding the static probe `flood`.
fn probe_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| static_program("flood", PROBE_C, &[]))
}

/// The rootfs, which must have the `/.gocker` mount point of workspace mode.
fn workspace_rootfs() -> String {
    let p = rootfs_path();
    assert!(
        p.join(".gocker").is_dir(),
        "GOCKER_TEST_ROOTFS={} has no /.gocker (rebuild it: gocker rootfs build)",
        p.display()
    );
    p.display().to_string()
}

/// Every process on the host: pid → (parent pid, command line).
fn process_table() -> HashMap<i32, (i32, String)> {
    let mut t = HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may contain spaces and parentheses.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
        else {
            continue;
        };
        t.insert(pid, (ppid, cmdline(pid)));
    }
    t
}

/// `root` and every process descended from it.
fn descendants(t: &HashMap<i32, (i32, String)>, root: i32) -> HashSet<i32> {
    let mut set = HashSet::from([root]);
    loop {
        let before = set.len();
        for (pid, (ppid, _)) in t {
            if set.contains(ppid) {
                set.insert(*pid);
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

/// What the test saw of one flood.
struct Flood {
    /// Host processes under ring0 (ring0 included) before the flood.
    baseline: usize,
    /// The same while the probe held its connections.
    during: usize,
    /// Of those, ring1's lift handlers: new processes still running gocker's own command line
    /// (fork mode: ring1 and its children are copies of ring0).
    handlers: Vec<i32>,
    /// Owners (host uid) of the handlers' /proc/PID/status: uid 0 when not dumpable.
    handler_owners: Vec<u32>,
    /// The probe's report and whatever the script printed after it.
    out: String,
    stderr: String,
}

fn read_until(r: &mut BufReader<ChildStdout>, prefix: &str, out: &mut String) -> String {
    loop {
        let mut l = String::new();
        let n = r.read_line(&mut l).unwrap();
        assert!(
            n > 0,
            "the container ended before printing {prefix:?}: {out}"
        );
        out.push_str(&l);
        if l.starts_with(prefix) {
            return l;
        }
    }
}

fn go(stdin: &mut ChildStdin) {
    stdin.write_all(b"go\n").unwrap();
    stdin.flush().unwrap();
}

/// Runs the probe in a `--workspace --lift=root` container with `extra` arguments, then `after`.
fn flood(extra: &[&str], after: &str) -> Flood {
    let r = workspace_rootfs();
    let vol = format!("{}:/opt:ro", probe_dir().display());
    let script = format!("echo ready; read x; /opt/flood {FLOOD} 30; echo flood-rc=$?; {after}");
    let mut args = vec![
        "run",
        "--rm",
        "-i",
        "--rootfs",
        &r,
        "-v",
        &vol,
        "--workspace",
        "--lift=root",
    ];
    args.extend_from_slice(extra);
    args.extend(["/bin/sh", "-c", &script]);
    let mut child = Command::new(bin())
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ring0 = child.id() as i32;
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut out = String::new();

    read_until(&mut stdout, "ready", &mut out);
    let before = process_table();
    let base = descendants(&before, ring0);
    let gocker_cmd = before[&ring0].1.clone();
    go(&mut stdin);

    let held = read_until(&mut stdout, "held ", &mut out);
    assert!(
        held.contains(&format!("connected={FLOOD} ")),
        "the probe could not open its connections: {held}"
    );
    // ring1 forks (or refuses) while it accepts: give it a moment to catch up, then count.
    std::thread::sleep(Duration::from_millis(300));
    let t = process_table();
    let now = descendants(&t, ring0);
    let handlers: Vec<i32> = now
        .difference(&base)
        .filter(|p| t[p].1 == gocker_cmd)
        .copied()
        .collect();
    let handler_owners = handlers
        .iter()
        .filter_map(|p| std::fs::metadata(format!("/proc/{p}/status")).ok())
        .map(|m| m.uid())
        .collect();
    go(&mut stdin);

    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    out.push_str(&rest);
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    Flood {
        baseline: base.len(),
        during: now.len(),
        handlers,
        handler_owners,
        out,
        stderr: text(&o.stderr),
    }
}

/// The probe's "reply COUNT TEXT" lines: TEXT → COUNT.
fn replies(out: &str) -> HashMap<String, usize> {
    out.lines()
        .filter_map(|l| l.strip_prefix("reply "))
        .filter_map(|l| {
            let (n, t) = l.split_once(' ')?;
            Some((t.to_owned(), n.parse().ok()?))
        })
        .collect()
}

fn count_of(out: &str, key: &str) -> usize {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key:?} line in {out}"))
}

#[test]
fn a_lift_flood_by_a_refused_uid_forks_nothing_and_the_handlers_are_bounded() {
    let t0 = Instant::now();
    if std::env::var("GOCKER_TEST_MODE").as_deref() == Ok("rootless-single") {
        eprintln!(
            "skipped the uid-1000 flood: rootless-single maps only uid 0 into the container, so \
             no uid exists that --lift=root refuses"
        );
    } else {
        let f = flood(&["-u", "1000:1000"], "/.gocker/lift id -u; echo lift-rc=$?");
        eprintln!(
            "uid-1000 flood of {FLOOD}: host processes under gocker {} before, {} during; lift handlers {}",
            f.baseline,
            f.during,
            f.handlers.len()
        );
        assert!(
            f.handlers.is_empty(),
            "ring1 forked {} handlers for a uid that may not lift: {}",
            f.handlers.len(),
            f.out
        );
        // The probe itself is the one new process.
        assert!(
            f.during <= f.baseline + 1,
            "host processes {} → {}: {}",
            f.baseline,
            f.during,
            f.out
        );
        let policy = "err=125:refused: this container allows lift for root only (--lift=root), and the caller is uid 1000";
        assert_eq!(
            replies(&f.out),
            HashMap::from([(policy.to_owned(), FLOOD)]),
            "every connection is refused by ring1 at once: {}",
            f.out
        );
        assert_eq!(count_of(&f.out, "silent "), 0, "{}", f.out);
        // The ordinary client still says why.
        assert!(f.out.contains("lift-rc=125"), "{}", f.out);
        assert!(
            f.stderr
                .contains("lift: refused: this container allows lift for root only")
                && f.stderr.contains("uid 1000"),
            "{}",
            f.stderr
        );
    }

    // Root may lift: the handlers are bounded, the rest refused naming the limit; the silent
    // connections' handlers time out, and lift works again afterwards.
    let after = "i=0; while [ $i -lt 50 ]; do i=$((i+1)); \
                 o=$(/.gocker/lift id -u 2>&1) && break; sleep 0.1; done; echo lifted=$o tries=$i";
    let f = flood(&[], after);
    eprintln!(
        "root flood of {FLOOD}: host processes under gocker {} before, {} during; lift handlers {} \
         (owners of /proc/PID/status: {:?})",
        f.baseline,
        f.during,
        f.handlers.len(),
        f.handler_owners.iter().collect::<HashSet<_>>()
    );
    assert!(
        !f.handlers.is_empty() && f.handlers.len() <= LIMIT,
        "{} handlers (limit {LIMIT}): {}",
        f.handlers.len(),
        f.out
    );
    assert!(
        f.during <= f.baseline + 1 + LIMIT,
        "host processes {} → {} (limit {LIMIT}): {}",
        f.baseline,
        f.during,
        f.out
    );
    // Non-dumpable (so nothing in the container can ptrace them or open /proc/PID/exe): the kernel
    // makes such a process's /proc files owned by root.
    assert!(
        f.handler_owners.iter().all(|u| *u == 0),
        "dumpable lift handlers (owners {:?})",
        f.handler_owners
    );
    let got = replies(&f.out);
    let limit = format!(
        "err=125:refused: too many lift requests at once (the limit is {LIMIT} per container)"
    );
    let timed_out: usize = got
        .iter()
        .filter(|(t, _)| t.starts_with("err=125:timed out: no request within "))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        got.get(&limit).copied().unwrap_or(0) + timed_out,
        FLOOD,
        "each connection is refused for the limit or its handler times out: {}",
        f.out
    );
    assert_eq!(
        timed_out,
        f.handlers.len(),
        "one time-out per handler: {}",
        f.out
    );
    assert_eq!(count_of(&f.out, "silent "), 0, "{}", f.out);
    assert!(f.out.contains("lifted=0 "), "{} {}", f.out, f.stderr);
    eprintln!("took {:?}", t0.elapsed());
}
