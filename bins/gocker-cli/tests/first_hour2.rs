//! The first hour of a docker user (issue 16), continued: `-it` without a terminal, `stats`,
//! `system prune`'s question and filters, `exec -u NAME`, and tables whose columns fit their
//! content. Each checked against what really happened (the state store's records, the
//! container's processes in /proc, the ids the command ran with).
//!
//! Runs as root and as the unprivileged users (GOCKER_TEST_MODE).

mod common;
use common::*;

use std::io::Write;
use std::process::{Output, Stdio};
use std::time::Duration;

fn single_id() -> bool {
    std::env::var("GOCKER_TEST_MODE").as_deref() == Ok("rootless-single")
}

fn record_exists(name: &str) -> bool {
    state_dir()
        .join("names")
        .join(name)
        .symlink_metadata()
        .is_ok()
}

/// A detached container `name` running `script`, without network (fast, and no shared state).
fn detached(name: &str, extra: &[&str], script: &str) -> String {
    let r = rootfs();
    let mut a = vec!["run", "-d", "--name", name, "--network", "none"];
    a.extend_from_slice(extra);
    a.extend_from_slice(&["--rootfs", &r, "/bin/sh", "-c", script]);
    ok(&g(&a)).trim().to_owned()
}

/// `gocker ARGS` with `input` on stdin.
fn with_stdin(args: &[&str], input: &str) -> Output {
    let mut c = gocker(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    c.wait_with_output().unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. -it without a terminal

#[test]
fn it_without_a_terminal_fails_as_docker_and_leaves_nothing() {
    let r = rootfs();
    let n = unique("notty");
    let o = g(&[
        "run",
        "-it",
        "--name",
        &n,
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/true",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim(), "gocker: the input device is not a TTY");
    assert_eq!(stdout(&o), "");
    assert!(!record_exists(&n), "no record left");
    // A pipe is not a terminal either.
    let o = with_stdin(&["run", "-i", "-t", "--rm", "--rootfs", &r, "cat"], "x\n");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // -t alone is allowed (the container still gets a terminal), as -i alone.
    let o = g(&[
        "run",
        "--rm",
        "-t",
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "tty",
    ]);
    assert!(ok(&o).starts_with("/dev/pts/"), "{o:?}");
    let o = with_stdin(
        &[
            "run",
            "--rm",
            "-i",
            "--network",
            "none",
            "--rootfs",
            &r,
            "cat",
        ],
        "piped\n",
    );
    assert_eq!(ok(&o), "piped\n");
    // exec: the same check, after the container is found.
    let c = unique("notty-exec");
    detached(&c, &[], "exec sleep 1000");
    let o = g(&["exec", "-it", &c, "/bin/true"]);
    assert_eq!(
        (o.status.code(), stderr(&o).trim()),
        (Some(1), "gocker: the input device is not a TTY")
    );
    let o = g(&["exec", "-t", &c, "/bin/sh", "-c", "tty"]);
    assert!(ok(&o).starts_with("/dev/pts/"), "{o:?}");
    let o = g(&["exec", "-it", "no-such-container-fh2", "/bin/true"]);
    assert_eq!(o.status.code(), Some(125), "the lookup first: {o:?}");
    ok(&g(&["rm", "-f", &c]));
}

// ---------------------------------------------------------------------------------------------
// 2. stats

const STATS_HEADER: [&str; 8] = [
    "CONTAINER ID",
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "NET I/O",
    "BLOCK I/O",
    "PIDS",
];

/// The cells of a table line: separated by at least 3 blanks (the cells here have no such runs).
fn cells(line: &str) -> Vec<String> {
    line.split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A size as docker prints it (`1.5MiB`, `4.1kB`, `0B`) in bytes.
fn size(s: &str) -> f64 {
    let i = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or_else(|| panic!("no unit in {s:?}"));
    let unit = match &s[i..] {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024f64.powi(4),
        u => panic!("unit {u:?} in {s:?}"),
    };
    s[..i].parse::<f64>().unwrap() * unit
}

/// Threads of the processes in the PID namespace of host pid `pid`, counted here from /proc.
fn threads_in_pidns_of(pid: i64) -> u64 {
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/ns/pid"))
                .ok()
                .as_ref()
                == Some(&ns)
        })
        .filter_map(|p| {
            let s = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .map(|t| t.trim().parse::<u64>().unwrap())
        })
        .sum()
}

fn pid_of(name: &str) -> i64 {
    let o = ok(&g(&["inspect", name]));
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    v[0]["pid"].as_i64().expect("pid")
}

#[test]
fn stats_shows_dockers_columns_with_measured_values() {
    let n = unique("stats-busy");
    let id = detached(&n, &[], "sleep 1000 & while :; do :; done");
    let pid = pid_of(&n);
    wait_for("two processes", Duration::from_secs(10), || {
        (threads_in_pidns_of(pid) == 2).then_some(())
    });
    let out = ok(&g(&["stats", "--no-stream", &n]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(cells(lines[0]), STATS_HEADER, "{out}");
    let row = cells(lines[1]);
    assert_eq!(row.len(), 8, "{out}");
    assert_eq!(row[0], id[..12], "{out}");
    assert_eq!(row[1], n);
    // A busy loop uses CPU during the sample.
    let cpu: f64 = row[2].strip_suffix('%').unwrap().parse().unwrap();
    assert!(cpu > 1.0, "{out}");
    let (mem, limit) = row[3].split_once(" / ").unwrap();
    assert!(size(mem) > 0.0 && size(limit) > size(mem), "{out}");
    let pct: f64 = row[4].strip_suffix('%').unwrap().parse().unwrap();
    let want = size(mem) / size(limit) * 100.0;
    assert!(
        (pct - want).abs() < 0.05 + want * 0.05,
        "{pct} vs {want}: {out}"
    );
    // --network none: only loopback, which is not counted.
    assert_eq!(row[5], "0B / 0B", "{out}");
    let (r, w) = row[6].split_once(" / ").expect("measured block I/O");
    assert!(size(r) >= 0.0 && size(w) >= 0.0);
    // Both processes (single-threaded): what /proc says.
    assert_eq!(row[7], "2", "{out}");
    assert_eq!(threads_in_pidns_of(pid), 2);

    // Without names: every running container, this one among them, one line each.
    let all = ok(&g(&["stats", "--no-stream"]));
    assert_eq!(cells(all.lines().next().unwrap()), STATS_HEADER);
    assert_eq!(
        all.lines().filter(|l| cells(l).get(1) == Some(&n)).count(),
        1,
        "{all}"
    );
    // Several names; a stopped one has a row without values; an unknown one is an error.
    let m = unique("stats-idle");
    detached(&m, &[], "exec sleep 1000");
    let out = ok(&g(&["stats", "--no-stream", &n, &m]));
    let names: Vec<String> = out.lines().skip(1).map(|l| cells(l)[1].clone()).collect();
    assert_eq!(names, [n.clone(), m.clone()], "{out}");
    ok(&g(&["kill", &m]));
    wait_for("stopped", Duration::from_secs(10), || {
        let o = ok(&g(&["ps", "--format", "json"]));
        (!o.contains(&m)).then_some(())
    });
    let out = ok(&g(&["stats", "--no-stream", &m]));
    let row = cells(out.lines().nth(1).unwrap());
    assert_eq!(row[2..], ["--", "-- / --", "--", "--", "--", "--"], "{out}");
    let o = g(&["stats", "--no-stream", &n, "no-such-container-fh2"]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    assert!(stderr(&o).contains("no-such-container-fh2"));
    // --help says where the values come from.
    let help = ok(&g(&["stats", "--help"]));
    for w in ["/proc/PID/status", "memory.current", "cpu.stat", "--"] {
        assert!(help.contains(w), "{w} not in {help}");
    }
    ok(&g(&["rm", "-f", &n, &m]));
}

// ---------------------------------------------------------------------------------------------
// 3. system prune

/// A stopped container with label `key=value`; its id.
fn stopped_with_label(label: &str) -> (String, String) {
    let r = rootfs();
    let n = unique("prune");
    ok(&g(&[
        "run",
        "--name",
        &n,
        "-l",
        label,
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/sh",
        "-c",
        "head -c 50000 /dev/zero > /written",
    ]));
    let v: serde_json::Value = serde_json::from_str(&ok(&g(&["inspect", &n]))).unwrap();
    (n, v[0]["id"].as_str().unwrap().to_owned())
}

#[test]
fn system_prune_asks_first_and_filters() {
    // Only this test's containers are selected: others' stopped containers stay.
    let key = unique("fh2prune").replace('-', "_");
    let (a, a_id) = stopped_with_label(&format!("{key}=a"));
    let (b, b_id) = stopped_with_label(&format!("{key}=b"));
    let filter = format!("label={key}");

    // No answer, or anything but y: nothing removed, exit 0, after docker's warning.
    for answer in ["", "n\n", "yes please\n", "N\n"] {
        let o = with_stdin(&["system", "prune", "--filter", &filter], answer);
        let out = ok(&o);
        assert!(
            out.starts_with("WARNING! This will remove:\n  - all stopped containers\n"),
            "{out}"
        );
        assert!(
            out.contains(&format!("filtered with:\n  - {filter}\n")),
            "{out}"
        );
        assert!(
            out.ends_with("Are you sure you want to continue? [y/N] "),
            "{out}"
        );
        assert!(record_exists(&a) && record_exists(&b), "{answer:?}: {out}");
    }
    // y: removed, with docker's report.
    let o = with_stdin(
        &["system", "prune", "--filter", &format!("label={key}=a")],
        "y\n",
    );
    let out = ok(&o);
    assert!(!record_exists(&a), "{out}");
    assert!(record_exists(&b), "label value filtered: {out}");
    assert!(!state_dir().join(&a_id).exists(), "its directory is gone");
    let report = out.split("[y/N] ").nth(1).unwrap();
    assert!(
        report.starts_with(&format!("Deleted Containers:\n{a_id}\n\n")),
        "{out}"
    );
    let total = report
        .lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .unwrap();
    // It wrote 50 kB into its root: at least that was reclaimed.
    assert!(size(total) >= 50_000.0, "{out}");

    // -f: no question. until: only containers created before then.
    let o = g(&[
        "system", "prune", "-f", "--filter", &filter, "--filter", "until=1h",
    ]);
    let out = ok(&o);
    assert!(!out.contains("WARNING") && !out.contains("[y/N]"), "{out}");
    assert!(out.ends_with("Total reclaimed space: 0B\n"), "{out}");
    assert!(record_exists(&b), "created less than an hour ago: {out}");
    let o = g(&[
        "system",
        "prune",
        "-f",
        "--filter",
        &filter,
        "--filter",
        "until=2020-01-01T00:00:00Z",
    ]);
    ok(&o);
    assert!(record_exists(&b));
    // label!=: not the containers carrying it.
    ok(&g(&[
        "system",
        "prune",
        "-f",
        "--filter",
        &filter,
        "--filter",
        &format!("label!={key}=b"),
    ]));
    assert!(record_exists(&b));
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let o = g(&[
        "system",
        "prune",
        "-f",
        "--filter",
        &filter,
        "--filter",
        &format!("until={soon}"),
    ]);
    let out = ok(&o);
    assert!(!record_exists(&b), "{out}");
    assert!(out.contains(&b_id), "{out}");

    // Filters it does not know are refused, naming them.
    for bad in ["name=x", "until=soon", "label="] {
        let o = g(&["system", "prune", "-f", "--filter", bad]);
        assert_eq!(o.status.code(), Some(125), "{bad}: {o:?}");
        assert!(stderr(&o).contains(bad), "{bad}: {}", stderr(&o));
    }
}

// ---------------------------------------------------------------------------------------------
// 4. exec -u NAME

/// The id of `name` in the test rootfs's /etc/passwd or /etc/group.
fn id_in(file: &str, name: &str) -> u32 {
    let text = std::fs::read_to_string(rootfs_path().join("etc").join(file)).unwrap();
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == name).then(|| f[2].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {name} in the test rootfs's /etc/{file}"))
}

#[test]
fn exec_resolves_user_names_in_the_container() {
    // The container's view of /etc/passwd and /etc/group (here: files bound over the rootfs's),
    // not the rootfs directory's.
    let etc = std::env::temp_dir().join(unique("fh2-etc"));
    std::fs::create_dir_all(&etc).unwrap();
    let rootfs_etc = |f: &str| std::fs::read_to_string(rootfs_path().join("etc").join(f)).unwrap();
    std::fs::write(
        etc.join("passwd"),
        rootfs_etc("passwd") + "fh2user:x:4321:4322::/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("group"),
        rootfs_etc("group") + "fh2group:x:4323:\n",
    )
    .unwrap();
    let n = unique("exec-user");
    let bind = |f: &str| format!("{}:/etc/{f}:ro", etc.join(f).display());
    detached(
        &n,
        &["-v", &bind("passwd"), "-v", &bind("group")],
        "exec sleep 1000",
    );
    // A user the host has and the container does not: looked up in the container only.
    let rootfs_users = std::fs::read_to_string(rootfs_path().join("etc/passwd")).unwrap();
    let host_only = std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(':').next().map(str::to_owned))
        .find(|u| {
            !rootfs_users
                .lines()
                .any(|l| l.starts_with(&format!("{u}:")))
        })
        .expect("a host user that the test rootfs lacks");
    let o = g(&["exec", "-u", &host_only, &n, "id"]);
    assert_eq!(o.status.code(), Some(126), "{o:?}");
    assert_eq!(
        stderr(&o).trim(),
        format!("gocker: unable to find user {host_only}: no matching entries in passwd file")
    );
    let o = g(&["exec", "-u", "0:no-such-group-fh2", &n, "id"]);
    assert_eq!(o.status.code(), Some(126), "{o:?}");
    assert!(stderr(&o)
        .contains("unable to find group no-such-group-fh2: no matching entries in group file"));
    let o = g(&["exec", "-u", "root", &n, "id", "-u"]);
    assert_eq!(ok(&o), "0\n");
    if single_id() {
        // One mapped id: other ids cannot be entered.
        ok(&g(&["rm", "-f", &n]));
        let _ = std::fs::remove_dir_all(&etc);
        return;
    }
    let nobody = id_in("passwd", "nobody");
    let nogroup = id_in("group", "nogroup");
    let o = g(&["exec", "-u", "nobody", &n, "/bin/sh", "-c", "id -u; id -g"]);
    assert_eq!(ok(&o), format!("{nobody}\n{nobody}\n"));
    let o = g(&[
        "exec",
        "-u",
        "nobody:nogroup",
        &n,
        "/bin/sh",
        "-c",
        "id -u; id -g",
    ]);
    assert_eq!(ok(&o), format!("{nobody}\n{nogroup}\n"));
    // Numeric ids need no entry, as before.
    let o = g(&[
        "exec",
        "-u",
        "1234:2345",
        &n,
        "/bin/sh",
        "-c",
        "id -u; id -g",
    ]);
    assert_eq!(ok(&o), "1234\n2345\n");
    // Names only the container's view has.
    assert!(!rootfs_etc("passwd").contains("fh2user"));
    let o = g(&["exec", "-u", "fh2user", &n, "/bin/sh", "-c", "id -u; id -g"]);
    assert_eq!(ok(&o), "4321\n4322\n");
    let o = g(&[
        "exec",
        "-u",
        "fh2user:fh2group",
        &n,
        "/bin/sh",
        "-c",
        "id -u; id -g",
    ]);
    assert_eq!(ok(&o), "4321\n4323\n");
    ok(&g(&["rm", "-f", &n]));
    let _ = std::fs::remove_dir_all(&etc);
}

// ---------------------------------------------------------------------------------------------
// 5. columns sized from their content

/// Where each column of a table starts: its header's words, each column starting after a run of
/// at least 3 blanks.
fn column_starts(line: &str) -> Vec<usize> {
    let b = line.as_bytes();
    let mut v = vec![0];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b' ' {
            let j = (i..b.len()).find(|&j| b[j] != b' ').unwrap_or(b.len());
            if j - i >= 3 && j < b.len() {
                v.push(j);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    v
}

/// Every line of `table` has its cells where the header has its columns, separated by at
/// least 3 blanks (docker's tabwriter), and the line with `needle` is among them.
#[track_caller]
fn assert_aligned(table: &str, needle: &str) {
    let mut lines = table.lines();
    let header = column_starts(lines.next().expect("a header"));
    let line = table
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in {table}"));
    let starts = column_starts(line);
    // The last column may be empty on a row (ps's PORTS of a container that publishes none).
    let n = starts.len().min(header.len());
    assert!(n + 1 >= header.len(), "{line:?} is short: {table}");
    assert_eq!(
        starts[..n],
        header[..n],
        "columns of {line:?} vs the header: {table}"
    );
}

#[test]
fn ps_and_top_size_their_columns_from_the_content() {
    let long = format!("{}-a-name-longer-than-twenty-characters", unique("cols"));
    let id = detached(&long, &[], "exec sleep 1001");
    let ps = ok(&g(&["ps"]));
    assert_aligned(&ps, &long);
    let line = ps.lines().find(|l| l.contains(&long)).unwrap();
    let c = cells(line);
    // docker's status of a running container: `Up 1 second`, `Up 2 seconds`, ...
    assert!(c.len() == 4 && c[2].starts_with("Up "), "{ps}");
    assert_eq!(
        [c[0].as_str(), c[1].as_str(), c[3].as_str()],
        [&id[..12], long.as_str(), "/bin/sh -c exec sleep 1001"],
        "{ps}"
    );
    // --no-trunc: the full id.
    let ps = ok(&g(&["ps", "--no-trunc"]));
    assert_aligned(&ps, &long);
    let line = ps.lines().find(|l| l.contains(&long)).unwrap();
    assert_eq!(cells(line)[0], id, "{ps}");
    // top: the UID column holds a host id (as root, of a remapped range: 10 digits).
    let top = ok(&g(&["top", &long]));
    assert_aligned(&top, "sleep 1001");
    let cols = cells(top.lines().nth(1).unwrap());
    assert_eq!(cols.len(), 5, "{top}");
    assert_eq!(cols[1], pid_of(&long).to_string(), "{top}");
    assert_eq!(cols[4], "sleep 1001");
    // stats too.
    let st = ok(&g(&["stats", "--no-stream", &long]));
    assert_aligned(&st, &long);
    ok(&g(&["rm", "-f", &long]));
}

#[test]
fn rootfs_ls_sizes_its_columns_from_the_content() {
    let root = rustix::process::geteuid().is_root();
    let data = std::env::temp_dir().join(unique("fh2-data"));
    let store = if root {
        std::path::PathBuf::from("/var/lib/gocker/rootfs")
    } else {
        data.join("gocker/rootfs")
    };
    let name = unique("fh2-a-rootfs-with-a-long-name");
    let dir = store.join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let version = "A version string longer than the forty characters of the old layout";
    std::fs::write(
        dir.join(".gocker-rootfs.json"),
        serde_json::json!({"source": "a-source-of-more-than-24-chars", "version": version})
            .to_string(),
    )
    .unwrap();
    let o = gocker(&["rootfs", "ls"])
        .env("XDG_DATA_HOME", &data)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&data);
    let out = ok(&o);
    assert_aligned(&out, &name);
    let line = out.lines().find(|l| l.contains(&name)).unwrap();
    assert_eq!(
        cells(line),
        [
            name.as_str(),
            "a-source-of-more-than-24-chars",
            version,
            dir.to_str().unwrap()
        ],
        "{out}"
    );
}
