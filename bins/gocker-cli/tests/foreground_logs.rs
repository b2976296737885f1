//! Issue 16: a foreground container keeps its output in its log, as with docker:
//! `gocker run --name x echo hi; gocker logs x` prints `hi`. Run by `cargo xtask itest` as root
//! and as the unprivileged users.

mod common;
use common::*;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn a_foreground_containers_output_reaches_the_caller_and_its_log() {
    let r = rootfs();
    let n = unique("fglog");
    let o = g(&[
        "run",
        "--name",
        &n,
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "echo out-line; echo err-line >&2; printf partial; exit 3",
    ]);
    // The caller still gets both streams, each on its own, and the exit code.
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "out-line\npartial");
    assert_eq!(stderr(&o), "err-line\n");
    // The log has them too, on the same streams (docker prints a log's stderr on stderr).
    let logs = g(&["logs", &n]);
    assert_eq!(stdout(&logs), "out-line\npartial", "{}", stderr(&logs));
    assert_eq!(stderr(&logs), "err-line\n");
    ok(&g(&["rm", &n]));
}

#[test]
fn a_consumer_that_goes_away_ends_a_foreground_container() {
    // `gocker run --name x yes | head -1`: once head exits, the payload's next write fails (EPIPE,
    // as yes is PID 1 of its namespace) and the run ends, instead of logging forever.
    let r = rootfs();
    let n = unique("fgpipe");
    let mut child = gocker(&[
        "run",
        "--name",
        &n,
        "--network",
        "none",
        "--rootfs",
        &r,
        "yes",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 2];
    out.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"y\n");
    drop(out);
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = g(&["rm", "-f", &n]);
            panic!("the run did not end after its consumer went away");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "{status:?}");
    let logs = stdout(&g(&["logs", &n]));
    assert!(
        logs.starts_with("y\ny\n"),
        "{:?}",
        &logs[..logs.len().min(40)]
    );
    ok(&g(&["rm", &n]));
}

#[test]
fn a_foreground_container_writes_to_a_pipe_not_to_the_callers_file() {
    // The payload's stdout is gocker's pipe; the caller's file gets the output all the same, and
    // a --rm run (nothing to read a log from afterwards) leaves no record.
    let r = rootfs();
    let dir = std::env::temp_dir().join(format!("gocker-fglog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("out.txt");
    let n = unique("fgfile");
    let o = gocker(&[
        "run",
        "--name",
        &n,
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "readlink /proc/self/fd/1",
    ])
    .stdout(std::fs::File::create(&file).unwrap())
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let got = std::fs::read_to_string(&file).unwrap();
    assert!(got.starts_with("pipe:["), "{got}");
    assert_eq!(stdout(&g(&["logs", &n])), got);
    ok(&g(&["rm", &n]));
    let n = unique("fgrm");
    let o = g(&[
        "run",
        "--rm",
        "--name",
        &n,
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "echo gone",
    ]);
    assert_eq!(stdout(&o), "gone\n");
    assert_ne!(
        g(&["logs", &n]).status.code(),
        Some(0),
        "no record of a --rm run"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
