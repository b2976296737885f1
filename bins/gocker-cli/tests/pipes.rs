//! `gocker CMD | head -1` exits 0 or 141, never a panic (issue 16): every subcommand clap knows
//! (read from the CLI's own definition, so a new one is covered or this test names it) runs with
//! its stdout on a pipe whose reader is already gone, so its first write meets EPIPE.
//!
//! Runs as root and as the unprivileged users (GOCKER_TEST_MODE). One test in its own binary:
//! as a user it runs `system prune`, which must not race other tests' containers.

mod common;
use common::*;

use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A subcommand as `gocker PATH --help` shows it: its path and the usage line's required
/// values, each as (the option before it, if any; its value name).
struct Leaf {
    path: Vec<String>,
    required: Vec<(Option<String>, String)>,
}

/// The names in the "Commands:" section of a help text (clap's layout: two spaces, the name,
/// its description; continuation lines are indented further).
fn commands_in(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// The required values of a usage line: each `<...>` (value names may hold spaces and brackets)
/// outside `[...]`, with the `--option` right before it.
fn required_in(usage: &str) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    let mut square = 0;
    let mut chars = usage.chars();
    // The word being read, and the one before the last space (an option takes its value there).
    let (mut word, mut last) = (String::new(), String::new());
    while let Some(ch) = chars.next() {
        match ch {
            '<' => {
                let (mut depth, mut name) = (1, String::new());
                for c in chars.by_ref() {
                    match c {
                        '<' => depth += 1,
                        '>' => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        break;
                    }
                    name.push(c);
                }
                if square == 0 {
                    let opt = (word.is_empty() && last.starts_with('-')).then(|| last.clone());
                    out.push((opt, name));
                }
                word.clear();
                last.clear();
            }
            '[' => square += 1,
            ']' => square -= 1,
            ' ' if !word.is_empty() => last = std::mem::take(&mut word),
            ' ' => {}
            c => word.push(c),
        }
    }
    out
}

fn help_of(path: &[String]) -> String {
    let o = Command::new(bin())
        .args(path)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "gocker {path:?} --help");
    stdout(&o)
}

/// Every leaf subcommand of the binary (clap's `help` is one leaf).
fn leaves(path: Vec<String>, out: &mut Vec<Leaf>) {
    if path.last().map(String::as_str) == Some("help") {
        // clap's: `help [COMMAND]...`, nothing required (and no --help of its own).
        out.push(Leaf {
            path,
            required: Vec::new(),
        });
        return;
    }
    let help = help_of(&path);
    let subs = commands_in(&help);
    if subs.is_empty() {
        let usage = help
            .lines()
            .find(|l| l.starts_with("Usage:"))
            .unwrap_or_else(|| panic!("no usage line in {help}"));
        out.push(Leaf {
            path,
            required: required_in(usage),
        });
        return;
    }
    for s in subs {
        let mut p = path.clone();
        p.push(s);
        leaves(p, out);
    }
}

/// Output enough for EPIPE, then a clean stop on SIGTERM (stop, restart).
const PAYLOAD: &str = "trap 'exit 0' TERM; seq 1 3000; while :; do sleep 1; done";
/// Not a simple command, which sh would exec as the container's PID 1: SIGPIPE does not kill
/// a PID 1 (it has no handler), so seq would see EPIPE and exit 255, as under docker.
const BIG: &str = "seq 1 100000; exit $?";

struct Fixture {
    rootfs: String,
    scratch: std::path::PathBuf,
    /// Containers named here that the tracking of [`g`] does not know (`create`'s, `rename`'s
    /// new names): removed at the end.
    leftovers: std::cell::RefCell<Vec<String>>,
}

impl Fixture {
    /// A detached container of its own for one subcommand (`extra` flags, `payload`).
    fn container(&self, tag: &str, extra: &[&str], payload: &str) -> String {
        let n = unique(tag);
        let mut a = vec!["run", "-d", "--name", &n, "--network", "none"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["--rootfs", &self.rootfs, "/bin/sh", "-c", payload]);
        ok(&g(&a));
        n
    }

    /// The arguments after the subcommand's path: docker-like choices for the subcommands that
    /// need them, else a value per required argument by its value name.
    /// `None`: only `--help` can be run here (a value this test cannot provide, or a command
    /// that would change state shared with other users of this machine).
    fn args(&self, leaf: &Leaf) -> Option<Vec<String>> {
        let path = &leaf.path;
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let key = path.join(" ");
        match key.as_str() {
            "run" => {
                return Some(s(&[
                    "--rm",
                    "--network",
                    "none",
                    "--rootfs",
                    &self.rootfs,
                    "/bin/sh",
                    "-c",
                    BIG,
                ]))
            }
            "rootfs build" => {
                // An existing rootfs elsewhere: reported, not built.
                let d = self.scratch.join("built");
                std::fs::create_dir_all(&d).unwrap();
                std::fs::write(d.join(".gocker-rootfs.json"), "{}").unwrap();
                return Some(s(&["--dest", d.to_str().unwrap()]));
            }
            "rootfs rm" => {
                // A rootfs of this test in the caller's store, which the command removes.
                let store = if rustix::process::geteuid().is_root() {
                    std::path::PathBuf::from("/var/lib/gocker/rootfs")
                } else {
                    self.scratch.join("data/gocker/rootfs")
                };
                let n = unique("pipes-rootfs");
                std::fs::create_dir_all(store.join(&n)).unwrap();
                std::fs::write(store.join(&n).join(".gocker-rootfs.json"), "{}").unwrap();
                return Some(vec![n]);
            }
            "attach" => return Some(vec![self.container("pipes-attach", &["-t"], PAYLOAD)]),
            "wait" => return Some(vec![self.container("pipes-wait", &[], "seq 1 3000")]),
            "rm" => return Some(vec!["-f".into(), self.container("pipes-rm", &[], PAYLOAD)]),
            "create" => {
                let n = unique("pipes-create");
                self.leftovers.borrow_mut().push(n.clone());
                return Some(s(&[
                    "--name",
                    &n,
                    "--network",
                    "none",
                    "--rootfs",
                    &self.rootfs,
                    "/bin/true",
                ]));
            }
            "rename" => {
                let n = unique("pipes-renamed");
                self.leftovers.borrow_mut().push(n.clone());
                return Some(vec![self.container("pipes-rename", &[], PAYLOAD), n]);
            }
            // The freezer needs the container's cgroup (none on a hybrid host, or rootless
            // without delegation: then pause is refused, 125, and only --help is run here).
            "pause" | "unpause" => {
                let n = self.container("pipes-pause", &[], PAYLOAD);
                let rec: serde_json::Value =
                    serde_json::from_str(&ok(&g(&["inspect", &n]))).unwrap();
                if rec[0]["cgroup"].is_null() {
                    return None;
                }
                if key == "unpause" {
                    ok(&g(&["pause", &n]));
                }
                return Some(vec![n]);
            }
            // A stopped container's update is recorded on any host.
            "update" => {
                let n = unique("pipes-update");
                ok(&g(&[
                    "run",
                    "--name",
                    &n,
                    "--network",
                    "none",
                    "--rootfs",
                    &self.rootfs,
                    "/bin/true",
                ]));
                return Some(s(&["--pids-limit", "50", &n]));
            }
            // Root's container and image stores are shared with whatever else runs on this
            // machine (the unprivileged phases run them for real, on their own stores).
            "image prune" | "system prune" if rustix::process::geteuid().is_root() => return None,
            // Without -f it asks first (and stdin here is /dev/null: nothing would be removed).
            "system prune" => return Some(s(&["-f"])),
            // An image archive on stdin.
            "load" | "image load" => return None,
            // A new image in the shared image store, for an output of one line (its id).
            "commit" => return None,
            _ => {}
        }
        let mut v = Vec::new();
        for (opt, name) in &leaf.required {
            let values: Vec<String> = match name.as_str() {
                "CONTAINER" | "PID|CONTAINER" => {
                    vec![self.container(&format!("pipes-{}", path.join("-")), &[], PAYLOAD)]
                }
                "COMMAND [ARG...]" => s(&["/bin/sh", "-c", BIG]),
                "SHELL" => s(&["bash"]),
                _ => return None,
            };
            v.extend(opt.clone());
            v.extend(values);
        }
        Some(v)
    }
}

/// A pipe whose read end is closed: a write to the other end fails with EPIPE.
fn widowed_pipe() -> OwnedFd {
    let (r, w) = rustix::pipe::pipe().unwrap();
    drop(r);
    w
}

#[test]
fn every_subcommand_into_a_closed_pipe_exits_0_or_141() {
    // First (`system prune` below removes stopped containers).
    inspect_into_head_exits_0_or_141();
    let mut all = Vec::new();
    leaves(Vec::new(), &mut all);
    let names: Vec<String> = all.iter().map(|l| l.path.join(" ")).collect();
    // The list really is the binary's: the subcommands of today are in it, with their values.
    for known in ["run", "inspect", "ps", "rootfs ls", "system prune", "help"] {
        assert!(names.iter().any(|n| n == known), "{known} not in {names:?}");
    }
    let nsenter = all.iter().find(|l| l.path == ["nsenter"]).unwrap();
    assert_eq!(
        nsenter.required,
        [
            (Some("--target".to_owned()), "PID|CONTAINER".to_owned()),
            (None, "COMMAND [ARG...]".to_owned())
        ]
    );
    let scratch = std::env::temp_dir().join(unique("gocker-pipes"));
    std::fs::create_dir_all(&scratch).unwrap();
    let fx = Fixture {
        rootfs: rootfs(),
        scratch: scratch.clone(),
        leftovers: Default::default(),
    };
    let mut failures = Vec::new();
    let mut help_only = Vec::new();
    for leaf in &all {
        let mut args = leaf.path.clone();
        match fx.args(leaf) {
            Some(a) => args.extend(a),
            None => {
                help_only.push(leaf.path.join(" "));
                args.push("--help".into());
            }
        }
        let mut c = Command::new(bin());
        c.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(widowed_pipe()))
            .stderr(Stdio::piped());
        if !rustix::process::geteuid().is_root() {
            c.env("XDG_DATA_HOME", scratch.join("data"));
        }
        let mut child = c.spawn().unwrap();
        let end = Instant::now() + Duration::from_secs(40);
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break Some(st);
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        let shown = args.join(" ");
        match status.and_then(|s| s.code()) {
            Some(0 | 141) if !err.contains("panicked") => {}
            Some(code) => failures.push(format!("gocker {shown}: exit {code}: {err}")),
            None => failures.push(format!(
                "gocker {shown}: {status:?} (killed by a signal, or no exit in 40 s): {err}"
            )),
        }
    }
    for n in fx.leftovers.borrow().iter() {
        let _ = g(&["rm", "-f", n]);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if !help_only.is_empty() {
        eprintln!(
            "covered with --help only (add them to Fixture::args): {}",
            help_only.join(", ")
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} subcommands:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

/// The issue's own command, through a shell and a real `head -1`.
fn inspect_into_head_exits_0_or_141() {
    let r = rootfs();
    let n = unique("pipes-inspect");
    ok(&g(&[
        "run",
        "--name",
        &n,
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/true",
    ]));
    for _ in 0..5 {
        let o = Command::new("bash")
            .args([
                "-c",
                "set -o pipefail; \"$0\" inspect \"$1\" | head -1 >/dev/null",
            ])
            .arg(bin())
            .arg(&n)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            matches!(o.status.code(), Some(0 | 141)) && !stderr(&o).contains("panicked"),
            "{:?}: {}",
            o.status,
            stderr(&o)
        );
    }
    ok(&g(&["rm", &n]));
}
