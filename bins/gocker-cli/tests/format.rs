//! `--format`: docker's Go templates over real containers, images and volumes (issue 16). Runs
//! in every mode of `cargo xtask itest` (root, rootless-subuid, rootless-single): nothing here
//! needs more than `--network none`.

mod common;
use common::*;

use std::process::Stdio;
use std::time::Duration;

fn detached(name: &str, extra: &[&str], script: &str) -> String {
    let r = rootfs();
    let mut a = vec!["run", "-d", "--name", name, "--network", "none"];
    a.extend_from_slice(extra);
    a.extend_from_slice(&["--rootfs", &r, "/bin/sh", "-c", script]);
    ok(&g(&a)).trim().to_owned()
}

/// The line of `ps -a --format T` that starts with `name`.
fn ps_line(template: &str, name: &str) -> String {
    let out = ok(&g(&["ps", "-a", "--format", template]));
    out.lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} not in {out}"))
        .to_owned()
}

#[test]
fn ps_names_and_status_are_dockers() {
    let up = unique("fmt-up");
    let done = unique("fmt-done");
    let id = detached(&up, &["-l", "tier=front"], "exec sleep 300");
    let o = g(&[
        "run",
        "--name",
        &done,
        "--network",
        "none",
        "--rootfs",
        &rootfs(),
        "/bin/sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    // docker's exact words: `Up N seconds` (or `Less than a second`), `Exited (3) ... ago`.
    let l = ps_line(r"{{.Names}}\t{{.Status}}", &up);
    let (name, status) = l.split_once('\t').expect("a tab between the fields");
    assert_eq!(name, up);
    let re = regex_lite(status);
    assert!(re, "status of a running container: {status:?}");
    let l = ps_line(r"{{.Names}}\t{{.Status}}", &done);
    let status = l.split_once('\t').unwrap().1;
    assert!(
        status.starts_with("Exited (3) ") && status.ends_with(" ago"),
        "{status:?}"
    );
    // More fields, checked against the state store and the command line.
    let l = ps_line(
        r#"{{.Names}}|{{.ID}}|{{.State}}|{{.Command}}|{{.Label "tier"}}|{{.Label "none"}}|{{.Networks}}|{{.Size}}"#,
        &up,
    );
    assert_eq!(
        l,
        format!(
            "{up}|{}|running|\"/bin/sh -c exec sle…\"|front||none|0B",
            &id[..12]
        )
    );
    let l = ps_line(r"{{.Names}} {{.ID}} {{.Command}}", &up);
    assert!(l.ends_with("…\""), "{l}");
    let out = ok(&g(&[
        "ps",
        "--no-trunc",
        "--format",
        "{{.Names}} {{.ID}} {{.Command}}",
    ]));
    assert!(
        out.lines()
            .any(|l| l == format!("{up} {id} \"/bin/sh -c exec sleep 300\"")),
        "{out}"
    );
    // `{{json .}}`: the row, one JSON object a line.
    let out = ok(&g(&["ps", "--format", "{{json .}}"]));
    let row: serde_json::Value = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .find(|v| v["Names"] == up.as_str())
        .expect("listed");
    assert_eq!(row["ID"], &id[..12]);
    assert_eq!(row["Labels"], "tier=front");
    assert_eq!(row["State"], "running");
    // `table`: docker's header row and aligned columns.
    let out = ok(&g(&[
        "ps",
        "-a",
        "--format",
        r"table {{.Names}}\t{{.State}}",
    ]));
    let mut lines = out.lines();
    let head = lines.next().unwrap();
    assert!(
        head.starts_with("NAMES") && head.trim_end().ends_with("STATE"),
        "{out}"
    );
    let col = head.find("STATE").unwrap();
    let row = lines.find(|l| l.starts_with(&up)).expect("row");
    assert_eq!(&row[col..], "running", "aligned under the header: {out}");
    ok(&g(&["rm", "-f", &up, &done]));
}

/// `Up 1 second`, `Up 12 seconds`, `Up Less than a second`, `Up About a minute`, ...
fn regex_lite(status: &str) -> bool {
    let Some(d) = status.strip_prefix("Up ") else {
        return false;
    };
    d == "Less than a second"
        || d == "1 second"
        || d == "About a minute"
        || d.strip_suffix(" seconds")
            .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| (2..60).contains(&n)))
}

#[test]
fn inspect_state_pid_is_the_payloads_pid() {
    let n = unique("fmt-pid");
    detached(&n, &[], "exec sleep 300");
    let pid: i32 = ok(&g(&["inspect", "--format", "{{.State.Pid}}", &n]))
        .trim()
        .parse()
        .expect("a number");
    // The kernel's view: that process is the container's sleep.
    let cmd = cmdline(pid);
    assert!(cmd.contains("sleep") && cmd.contains("300"), "{pid}: {cmd}");
    assert_eq!(
        ok(&g(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Running}} {{.Name}}",
            &n
        ])),
        format!("running true /{n}\n")
    );
    let st: serde_json::Value =
        serde_json::from_str(&ok(&g(&["inspect", "-f", "{{json .State}}", &n]))).unwrap();
    assert_eq!(st["Pid"], pid);
    assert_eq!(st["FinishedAt"], "0001-01-01T00:00:00Z");
    ok(&g(&["kill", &n]));
    wait_for("the container to exit", Duration::from_secs(20), || {
        let o = ok(&g(&[
            "inspect",
            "-f",
            "{{.State.Pid}} {{.State.ExitCode}}",
            &n,
        ]));
        (o == "0 137\n").then_some(())
    });
    // Two containers: one line each.
    let m = unique("fmt-pid2");
    detached(&m, &[], "exec sleep 300");
    let out = ok(&g(&["inspect", "-f", "{{.Name}}", &n, &m]));
    assert_eq!(out, format!("/{n}\n/{m}\n"));
    ok(&g(&["rm", "-f", &n, &m]));
}

#[test]
fn bad_templates_exit_125_naming_the_template() {
    let n = unique("fmt-bad");
    detached(&n, &[], "exec sleep 300");
    for (args, template) in [
        (vec!["ps", "--format"], "{{.Names"),
        (vec!["ps", "--format"], "{{.NoSuchField}}"),
        (vec!["ps", "--format"], "{{nosuchfunc .Names}}"),
        (vec!["inspect", "-f"], "{{.State.Pid"),
        (vec!["inspect", "-f"], "{{.Nope.Pid}}"),
        (vec!["images", "--format"], "{{end}}"),
        (vec!["volume", "ls", "--format"], "{{.Name"),
        (vec!["version", "--format"], "{{.Client.Nope}}"),
        (vec!["info", "--format"], "{{if}}"),
        (vec!["events", "--format"], "{{.Type"),
    ] {
        let mut a = args.clone();
        a.push(template);
        if a[0] == "inspect" {
            a.push(&n);
        }
        let o = g(&a);
        assert_eq!(o.status.code(), Some(125), "{a:?}: {o:?}");
        let e = stderr(&o);
        assert!(e.contains(&format!("--format {template:?}")), "{a:?}: {e}");
        assert!(stdout(&o).is_empty(), "{a:?}: nothing printed: {o:?}");
        assert!(!e.contains("panicked"), "{e}");
    }
    // A huge template (100 kB): printed, never a panic.
    let huge = "{{.Names}}".repeat(10000);
    let o = g(&["ps", "--format", &huge]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    ok(&g(&["rm", "-f", &n]));
}

#[test]
fn images_volumes_version_and_info_templates() {
    let v = unique("fmt-vol");
    ok(&g(&["volume", "create", "--label", "k=v1", &v]));
    let out = ok(&g(&[
        "volume",
        "ls",
        "--format",
        "{{.Name}} {{.Driver}} {{.Labels}}",
    ]));
    assert!(out.lines().any(|l| l == format!("{v} local k=v1")), "{out}");
    let out = ok(&g(&[
        "volume",
        "ls",
        "--format",
        r"table {{.Name}}\t{{.Driver}}",
    ]));
    assert!(out.starts_with("VOLUME NAME"), "{out}");
    let mp = ok(&g(&["volume", "inspect", "-f", "{{.Mountpoint}}", &v]));
    assert!(std::path::Path::new(mp.trim()).is_dir(), "{mp}");
    assert_eq!(
        ok(&g(&[
            "volume",
            "inspect",
            "-f",
            "{{index .Labels \"k\"}}",
            &v
        ])),
        "v1\n"
    );
    ok(&g(&["volume", "rm", &v]));
    // images: the rows `images` prints, field by field.
    let table = ok(&g(&["images"]));
    let out = ok(&g(&[
        "images",
        "--format",
        "{{.Repository}} {{.Tag}} {{.ID}} {{.Size}}",
    ]));
    assert_eq!(
        out.lines().count(),
        table.lines().count() - 1,
        "{out}\n{table}"
    );
    for (l, t) in out.lines().zip(table.lines().skip(1)) {
        let cells: Vec<&str> = l.split(' ').collect();
        let words: Vec<&str> = t.split_whitespace().collect();
        assert_eq!(cells[..3], words[..3], "{l} vs {t}");
    }
    let uname = rustix::system::uname();
    assert_eq!(
        ok(&g(&["version", "--format", "{{.Server.KernelVersion}}"])).trim(),
        uname.release().to_string_lossy()
    );
    let rootless = !rustix::process::geteuid().is_root();
    assert_eq!(
        ok(&g(&["info", "--format", "{{.Rootless}} {{.OSType}}"])),
        format!("{rootless} linux\n")
    );
    let j: serde_json::Value =
        serde_json::from_str(&ok(&g(&["info", "--format", "{{json .}}"]))).unwrap();
    assert!(j["Checks"].as_array().is_some_and(|c| !c.is_empty()), "{j}");
}

#[test]
fn stats_no_stream_template() {
    let n = unique("fmt-stats");
    let id = detached(&n, &[], "exec sleep 300");
    let out = ok(&g(&[
        "stats",
        "--no-stream",
        "--format",
        r"{{.Name}}\t{{.ID}}",
        &n,
    ]));
    assert_eq!(out, format!("{n}\t{}\n", &id[..12]));
    let out = ok(&g(&[
        "stats",
        "--no-stream",
        "--format",
        r"table {{.Name}}\t{{.CPUPerc}}",
        &n,
    ]));
    assert!(
        out.starts_with("NAME") && out.lines().nth(1).is_some_and(|l| l.starts_with(&n)),
        "{out}"
    );
    ok(&g(&["rm", "-f", &n]));
}

#[test]
fn format_output_into_head_exits_0_or_141() {
    let n = unique("fmt-head");
    detached(&n, &[], "exec sleep 300");
    let m = unique("fmt-head2");
    detached(&m, &[], "exec sleep 300");
    for args in [
        vec!["ps", "--format", "{{.Names}}"],
        vec!["inspect", "-f", "{{.Name}}", n.as_str(), m.as_str()],
        vec!["images", "--format", "{{.ID}}"],
    ] {
        let mut c = gocker(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(c.stdout.take());
        let o = c.wait_with_output().unwrap();
        assert!(matches!(o.status.code(), Some(0 | 141)), "{args:?}: {o:?}");
        assert!(!text(&o.stderr).contains("panicked"), "{args:?}: {o:?}");
    }
    ok(&g(&["rm", "-f", &n, &m]));
}
