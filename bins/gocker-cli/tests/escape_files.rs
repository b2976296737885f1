//! Issue 13, finding 8: the files the container owns (`/etc/hosts`, `/etc/resolv.conf`) must live
//! on storage with a size limit. They used to be the state directory's copies, bound into the
//! container: 50 MiB written inside became a 50 MiB file under `/run/gocker/<id>/` (the host's
//! `/run`, usually a small tmpfs shared with the whole system). Now each container gets copies on
//! a 1 MiB tmpfs of its own (docs/networking.md): a write past the limit fails inside with ENOSPC
//! and nothing on the host grows.
//!
//! Runs as root and as the unprivileged users (GOCKER_TEST_MODE): the state directory is
//! `/run/gocker` or `$XDG_RUNTIME_DIR/gocker` ([`state_dir`]).

mod common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The limit of the container's own files (all of them together).
const LIMIT: u64 = 1 << 20;
/// What the payload tries to append to each file.
const ATTEMPT: u64 = 50 << 20;
/// In writes of this size (`dd`, which names the error: busybox's `head` only says "I/O error").
const CHUNK: u64 = 1 << 20;
const FILES: [&str; 2] = ["/etc/hosts", "/etc/resolv.conf"];

/// Every regular file under `dir` with its size (recursively; entries that vanish meanwhile are
/// skipped).
fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(md) = e.path().symlink_metadata() else {
            continue;
        };
        if md.is_dir() {
            out.extend(files_under(&e.path()));
        } else if md.is_file() {
            out.push((e.path(), md.len()));
        }
    }
    out
}

/// The state directory of the container named `name` (`names/NAME` links to it).
fn container_dir(name: &str) -> PathBuf {
    let link = state_dir().join("names").join(name);
    let target = wait_for(
        &format!("the state record of {name}"),
        Duration::from_secs(10),
        || std::fs::read_link(&link).ok(),
    );
    state_dir().join("names").join(target)
}

/// Runs a container (with `extra` flags) that appends [`ATTEMPT`] bytes to each of [`FILES`] and
/// reports, per file, the exit status and error of the write, the size and mode it sees and the
/// first line that is left; then waits on its stdin while the test measures the host side.
fn write_flood(extra: &[&str], env: &[(&str, &str)]) {
    let name = unique("escfiles");
    let r = rootfs();
    let rootfs_before: Vec<_> = FILES
        .iter()
        .map(|f| Path::new(&r).join(f.trim_start_matches('/')))
        .map(|p| (p.clone(), p.symlink_metadata().map(|m| m.len()).ok()))
        .collect();
    let script = format!(
        "for f in {files}; do \
           err=$(dd if=/dev/zero bs={CHUNK} count={chunks} 2>&1 >> $f); rc=$?; err=$(echo \"$err\" | head -n 1); \
           echo \"$f rc=$rc size=$(wc -c < $f) mode=$(stat -c %a $f) err=$err first=$(head -n 1 $f | tr -d '\\0' | head -c 40)\"; \
         done; echo ready; read go; echo bye",
        files = FILES.join(" "),
        chunks = ATTEMPT / CHUNK,
    );
    let mut args = vec!["run", "-i", "--rm", "--name", &name, "--rootfs", &r];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["/bin/sh", "-c", &script]);
    // A restrictive umask in the caller must not make the files unreadable inside.
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("umask 077 && exec \"$0\" \"$@\"")
        .arg(bin())
        .args(&args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn gocker");
    // Whatever happens below, the container does not outlive the test.
    struct Reap(std::process::Child, String);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            let _ = gocker(&["rm", "-f", &self.1])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    let stdout = child.stdout.take().expect("piped");
    let mut stdin = child.stdin.take().expect("piped");
    let mut reap = Reap(child, name.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l == "ready") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => {
                let _ = reap.0.kill();
                let mut err = String::new();
                if let Some(mut e) = reap.0.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("the container never got ready: {lines:?} {err}");
            }
        }
    }

    // While the container runs, after its writes: nothing the container could grow on the host
    // is larger than the limit, in the container's state directory or the rootfs.
    let dir = container_dir(&name);
    let state = files_under(&dir);
    let total: u64 = state.iter().map(|(_, n)| n).sum();
    let largest = state.iter().max_by_key(|(_, n)| *n).cloned();
    eprintln!(
        "{extra:?} {env:?}: state directory {} holds {total} bytes in {} files, largest {largest:?}",
        dir.display(),
        state.len()
    );
    for (p, n) in &state {
        assert!(
            *n <= LIMIT,
            "{} grew to {n} bytes on the host (limit {LIMIT}); container said {lines:#?}",
            p.display()
        );
    }
    assert!(total < LIMIT, "state directory holds {total} bytes");
    for (p, before) in &rootfs_before {
        let now = p.symlink_metadata().map(|m| m.len()).ok();
        assert_eq!(now, *before, "{} changed size on the host", p.display());
    }

    // Inside: each write was refused at the limit, with ENOSPC (or EFBIG) reported, and the
    // generated content is still there, readable by everyone.
    for f in FILES {
        let l = lines
            .iter()
            .find(|l| l.starts_with(&format!("{f} ")))
            .unwrap_or_else(|| panic!("no report for {f}: {lines:#?}"));
        let field = |k: &str| {
            l.split(' ')
                .find_map(|w| w.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("no {k} in {l:?}"))
                .to_owned()
        };
        assert_ne!(field("rc"), "0", "the write succeeded: {l}");
        assert!(
            l.contains("No space left on device") || l.contains("File too large"),
            "no ENOSPC/EFBIG reported inside: {l}"
        );
        let size: u64 = field("size").parse().expect("size");
        assert!(size <= LIMIT, "{f} is {size} bytes inside: {l}");
        assert_eq!(field("mode"), "644", "{l}");
        let first = l.split_once("first=").map(|x| x.1).unwrap_or_default();
        let kept = if f == "/etc/hosts" {
            first.starts_with("127.0.0.1\tlocalhost")
        } else {
            ["nameserver ", "search ", "options ", "domain "]
                .iter()
                .any(|k| first.starts_with(k))
        };
        assert!(kept, "{f} lost its generated content: {l}");
    }

    writeln!(stdin, "go").expect("write to the container's stdin");
    drop(stdin);
    let st = reap.0.wait().expect("wait gocker");
    let rest: Vec<String> = rx.iter().collect();
    assert!(st.success(), "gocker exited {st}: {lines:?} {rest:?}");
    assert_eq!(rest, ["bye"]);
}

#[test]
fn own_files_are_bounded_with_no_network() {
    write_flood(&["--network", "none"], &[]);
}

#[test]
fn own_files_are_bounded_with_the_host_network() {
    write_flood(&["--network", "host"], &[]);
}

#[test]
fn own_files_are_bounded_in_workspace_mode() {
    write_flood(&["--network", "none", "--workspace"], &[]);
}

#[test]
fn own_files_are_bounded_in_exec_spawn_mode() {
    write_flood(&["--network", "none"], &[("GOCKER_SPAWN", "exec")]);
}

/// `gocker start` runs a stopped container again from its saved configuration: its own files are
/// bounded copies again, made from templates that the first run's writes never reached.
#[test]
fn own_files_stay_bounded_across_start() {
    let n = unique("escfiles-start");
    let r = rootfs();
    let script = format!(
        "err=$(dd if=/dev/zero bs={CHUNK} count={} 2>&1 >> /etc/hosts); rc=$?; \
         echo \"rc=$rc size=$(wc -c < /etc/hosts) first=$(head -n 1 /etc/hosts | head -c 20) err=$(echo \"$err\" | head -n 1)\"",
        ATTEMPT / CHUNK
    );
    let args = [
        "run",
        "-d",
        "--name",
        &n,
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        &script,
    ];
    ok(&g(&args));
    assert_eq!(ok(&g(&["wait", &n])).trim(), "0");
    let dir = container_dir(&n);
    let template = std::fs::read_to_string(dir.join("hosts")).expect("the hosts template");
    assert!(
        template.starts_with("127.0.0.1\tlocalhost\n"),
        "{template:?}"
    );
    ok(&g(&["start", &n]));
    assert_eq!(ok(&g(&["wait", &n])).trim(), "0");
    let logs = ok(&g(&["logs", &n]));
    let runs: Vec<&str> = logs.lines().filter(|l| l.starts_with("rc=")).collect();
    assert_eq!(runs.len(), 2, "{logs}");
    for l in runs {
        assert!(!l.starts_with("rc=0 "), "the write succeeded: {l}");
        assert!(l.contains("No space left on device"), "{l}");
        assert!(l.contains("first=127.0.0.1\tlocalhost"), "{l}");
        let size: u64 = l
            .split(' ')
            .find_map(|w| w.strip_prefix("size="))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no size in {l}"));
        assert!(size <= LIMIT, "{l}");
    }
    for (p, len) in files_under(&dir) {
        assert!(len <= LIMIT, "{} grew to {len} bytes", p.display());
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("hosts")).unwrap(),
        template,
        "the template is what ring0 wrote, untouched by the runs"
    );
    ok(&g(&["rm", &n]));
}
