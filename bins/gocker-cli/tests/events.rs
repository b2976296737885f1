//! `gocker events`: docker's events recorded where things happen (issue 16): a real container's
//! create/start/exec/kill/die/stop/rename/destroy, volumes, the --since/--until window, the
//! filters, the Go-template format, a damaged journal, concurrent writers and `| head -1`. Runs
//! in every mode of `cargo xtask itest` (nothing here needs more than `--network none`).

mod common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn journal() -> std::path::PathBuf {
    state_dir().join("events.jsonl")
}

/// The recorded events of the last minute about `name` (a container name or volume), as
/// `TYPE ACTION` words.
fn recorded(filter: &str) -> Vec<String> {
    let out = ok(&g(&[
        "events",
        "--since",
        "2m",
        "--until",
        "0s",
        "--filter",
        filter,
        "--format",
        "{{.Type}} {{.Action}}",
    ]));
    out.lines().map(str::to_owned).collect()
}

#[test]
fn a_containers_life_is_recorded_in_order() {
    let n = unique("ev-life");
    let id = ok(&g(&[
        "run",
        "-d",
        "--name",
        &n,
        "--network",
        "none",
        "--rootfs",
        &rootfs(),
        "/bin/sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 0.1; done",
    ]))
    .trim()
    .to_owned();
    ok(&g(&["exec", &n, "true"]));
    let n2 = unique("ev-life-renamed");
    ok(&g(&["rename", &n, &n2]));
    ok(&g(&["stop", &n2]));
    ok(&g(&["rm", &n2]));
    let got = recorded(&format!("container={id}"));
    assert_eq!(
        got,
        [
            "container create",
            "container start",
            "container exec_create: true",
            "container exec_start: true",
            "container exec_die: true",
            "container rename",
            "container kill",
            "container die",
            "container stop",
            "container destroy",
        ],
        "{got:?}"
    );
    // docker's JSON message: Type, Action, Actor.ID, Actor.Attributes, time, timeNano.
    let out = ok(&g(&[
        "events",
        "--since",
        "2m",
        "--until",
        "0s",
        "--filter",
        &format!("container={n2}"),
        "--filter",
        "event=die",
        "--format",
        "{{json .}}",
    ]));
    let e: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
    assert_eq!(e["Type"], "container");
    assert_eq!(e["Action"], "die");
    assert_eq!(e["status"], "die");
    assert_eq!(e["Actor"]["ID"], id.as_str());
    assert_eq!(e["id"], id.as_str());
    assert_eq!(e["Actor"]["Attributes"]["name"], n2.as_str());
    assert_eq!(e["Actor"]["Attributes"]["exitCode"], "0");
    assert_eq!(e["scope"], "local");
    let t = e["timeNano"].as_i64().unwrap();
    assert_eq!(e["time"].as_i64().unwrap(), t / 1_000_000_000);
    // The default line: TIME TYPE ACTION ID (ATTRIBUTES).
    let out = ok(&g(&[
        "events",
        "--since",
        "2m",
        "--until",
        "0s",
        "--filter",
        &format!("container={id}"),
        "--filter",
        "event=rename",
    ]));
    assert!(
        out.trim_end()
            .ends_with(&format!("container rename {id} (name={n2}, oldName={n})")),
        "{out}"
    );
}

#[test]
fn die_is_recorded_by_the_monitor_when_the_payload_is_killed_from_outside() {
    let n = unique("ev-die");
    ok(&g(&[
        "run",
        "-d",
        "--name",
        &n,
        "--network",
        "none",
        "--rootfs",
        &rootfs(),
        "/bin/sh",
        "-c",
        "exec sleep 300",
    ]));
    let pid: i32 = ok(&g(&["inspect", "-f", "{{.State.Pid}}", &n]))
        .trim()
        .parse()
        .unwrap();
    // Not through gocker: the kernel's SIGKILL of the payload; only the monitor sees it die.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let out = wait_for("the die event", Duration::from_secs(20), || {
        let out = ok(&g(&[
            "events",
            "--since",
            "2m",
            "--until",
            "0s",
            "--filter",
            &format!("container={n}"),
            "--filter",
            "event=die",
            "--format",
            "{{.Actor.Attributes.exitCode}}",
        ]));
        (!out.is_empty()).then_some(out)
    });
    assert_eq!(out, "137\n");
    ok(&g(&["rm", &n]));
}

#[test]
fn events_follow_live_filter_and_stop_at_until() {
    let v = unique("ev-vol");
    let other = unique("ev-other");
    // Following (no --since): only what happens from now on, until --until.
    // --until in the future: a timestamp (a duration is a time before now, as docker's).
    let until = (std::time::SystemTime::now() + Duration::from_secs(15))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mut c = gocker(&[
        "events",
        "--until",
        &until,
        "--filter",
        "type=volume",
        "--filter",
        &format!("volume={v}"),
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    ok(&g(&["volume", "create", &v]));
    ok(&g(&["volume", "create", &other]));
    ok(&g(&["volume", "rm", &v, &other]));
    let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), format!("create {v}"));
    assert_eq!(lines.next().unwrap().unwrap(), format!("destroy {v}"));
    let started = Instant::now();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(
        rest.is_empty(),
        "the other volume is filtered out: {rest:?}"
    );
    let st = c.wait().unwrap();
    assert!(st.success(), "{st:?}");
    assert!(
        started.elapsed() < Duration::from_secs(16),
        "stopped at --until"
    );
    // Bad flags: 125 naming them.
    for (a, word) in [
        (vec!["events", "--filter", "type=bogus"], "type=bogus"),
        (vec!["events", "--filter", "nope=1"], "nope"),
        (vec!["events", "--since", "yesterday-ish"], "--since"),
    ] {
        let o = g(&a);
        assert_eq!(o.status.code(), Some(125), "{a:?}: {o:?}");
        assert!(stderr(&o).contains(word), "{a:?}: {}", stderr(&o));
    }
}

#[test]
fn a_damaged_journal_and_concurrent_writers() {
    // A garbage line, a huge line and a torn line in the journal: skipped, never a failure.
    ok(&g(&["volume", "create", &unique("ev-pre")]));
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(journal())
            .unwrap();
        f.write_all(b"garbage that is not json\n").unwrap();
        f.write_all(&vec![b'x'; 200_000]).unwrap();
        f.write_all(b"\n{\"Type\":\"container\",\"Action\":\"st")
            .unwrap();
        f.write_all(b"\n").unwrap();
    }
    let tag = unique("ev-conc");
    // Concurrent writers: eight `volume create` at once, each recording one event.
    let kids: Vec<_> = (0..8)
        .map(|i| {
            gocker(&["volume", "create", &format!("{tag}-{i}")])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
    let out = ok(&g(&[
        "events",
        "--since",
        "2m",
        "--until",
        "0s",
        "--filter",
        "type=volume",
        "--filter",
        "event=create",
        "--format",
        "{{.Actor.ID}}",
    ]));
    let mut mine: Vec<&str> = out.lines().filter(|l| l.starts_with(&tag)).collect();
    mine.sort();
    let want: Vec<String> = (0..8).map(|i| format!("{tag}-{i}")).collect();
    assert_eq!(mine, want, "each writer's line whole: {out}");
    // Every line the writers appended is a whole JSON line.
    let text = std::fs::read_to_string(journal()).unwrap();
    for l in text.lines().filter(|l| l.contains(&tag)) {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
    for i in 0..8 {
        ok(&g(&["volume", "rm", &format!("{tag}-{i}")]));
    }
}

#[test]
fn events_into_head_exits_0_or_141() {
    let v = unique("ev-head");
    ok(&g(&["volume", "create", &v]));
    ok(&g(&["volume", "rm", &v]));
    // The past into a reader that is gone; then a follower whose reader is gone while it idles.
    for args in [
        vec!["events", "--since", "2m", "--until", "0s"],
        vec!["events"],
    ] {
        let mut c = gocker(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(c.stdout.take());
        let end = Instant::now() + Duration::from_secs(10);
        let st = loop {
            if let Some(st) = c.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < end, "{args:?} kept running with no reader");
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut c.stderr.take().unwrap(), &mut err).unwrap();
        assert!(matches!(st.code(), Some(0 | 141)), "{args:?}: {st:?} {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
