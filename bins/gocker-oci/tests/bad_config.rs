//! Bad input to `gocker-oci` (issue 13, finding 9): a malformed config.json, `exec --process` or
//! `update -r` file is refused with a message that names the file, the JSON path of the bad field
//! and its value (as runc names `process.user.uid`), never hangs on a FIFO or a device, and leaves
//! nothing behind: no state directory, no process, no cgroup, no mount. Run by `cargo xtask itest`
//! as root and as the unprivileged test users.
//!
//! The test process is a child subreaper: a process that `create` or `run` left running would be
//! reparented to it, and is looked for among its children after each command.

mod common;
use common::{containers_left, rootfs};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The tests of this file run one command at a time: each checks that the test process has no
/// child left afterwards, which another test's running command would be.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gocker-oci"))
}

fn rootless() -> bool {
    !rustix::process::geteuid().is_root()
}

/// A scratch directory with a state root and a bundle; removed on drop.
struct Env {
    dir: PathBuf,
}

impl Env {
    fn new(tag: &str) -> Env {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) has no memory-safety preconditions.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let dir =
            std::env::temp_dir().join(format!("gocker-oci-badcfg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bundle")).unwrap();
        Env { dir }
    }
    fn root(&self) -> PathBuf {
        self.dir.join("state")
    }
    fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }
    fn config(&self) -> PathBuf {
        self.bundle().join("config.json")
    }

    /// A valid config.json as a value: `gocker-oci spec` with the test rootfs, running `true`.
    fn good_spec(&self) -> Value {
        let dir = self.dir.join("spec");
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join("config.json"));
        let mut c = Command::new(bin());
        c.args(["spec", "--bundle"]).arg(&dir);
        if rootless() {
            c.arg("--rootless");
        }
        assert!(c.status().unwrap().success());
        let mut v: Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        v["root"] = json!({"path": rootfs(), "readonly": true});
        v["process"]["terminal"] = false.into();
        v["process"]["args"] = json!(["true"]);
        v
    }

    /// Replaces whatever `config.json` is (a file, a directory, a FIFO, a link) with `bad`.
    fn write_config(&self, bad: &Bad) {
        let path = self.config();
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir_all(&path);
        match bad {
            Bad::Edit(edit) => {
                let mut v = self.good_spec();
                edit(&mut v);
                std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
            }
            Bad::Text(f) => std::fs::write(&path, f(&self.good_spec())).unwrap(),
            Bad::Missing => {}
            Bad::Directory => std::fs::create_dir(&path).unwrap(),
            Bad::Fifo => {
                rustix::fs::mkfifoat(
                    rustix::fs::CWD,
                    &path,
                    rustix::fs::Mode::from_raw_mode(0o600),
                )
                .unwrap();
            }
            Bad::DevZero => std::os::unix::fs::symlink("/dev/zero", &path).unwrap(),
            Bad::Oversized => {
                // A valid spec followed by 17 MiB of spaces (sparse would be NULs; real bytes are
                // what a caller would send).
                let mut text = serde_json::to_vec(&self.good_spec()).unwrap();
                text.resize(text.len() + (17 << 20), b' ');
                std::fs::write(&path, text).unwrap();
            }
        }
    }

    /// Runs gocker-oci with `args` (output to files, stdin closed), killing it after 20 s;
    /// returns (exit code, stderr), or an error when it hung.
    fn oci(&self, args: &[&str]) -> Result<(Option<i32>, String), String> {
        let err = self.dir.join("cmd.err");
        let mut child = Command::new(bin())
            .arg("--root")
            .arg(self.root())
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.dir.join("cmd.out")).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("gocker-oci {args:?} hung (killed after 20 s)"));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Ok((
            status.code(),
            String::from_utf8_lossy(&std::fs::read(&err).unwrap()).into_owned(),
        ))
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What `config.json` is made into.
enum Bad {
    /// The valid spec, edited.
    Edit(fn(&mut Value)),
    /// Text made from the valid spec.
    Text(fn(&Value) -> Vec<u8>),
    Missing,
    Directory,
    Fifo,
    DevZero,
    Oversized,
}

/// The processes the test process has as children (those it started and waits for, and any
/// orphan of theirs, reparented to it as the subreaper).
fn children() -> Vec<String> {
    let mut v = Vec::new();
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            for pid in s.split_whitespace() {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                v.push(format!(
                    "{pid} {}",
                    String::from_utf8_lossy(&cmd).replace('\0', " ")
                ));
            }
        }
    }
    v
}

/// Directories named `<prefix>…` in the cgroup2 hierarchy (4 levels down: gocker's default
/// placement is `<parent of the caller's cgroup>/gocker/<id>`).
fn cgroups_named(prefix: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, depth: u32, prefix: &str, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_string_lossy().starts_with(prefix) {
                out.push(e.path());
            }
            if depth > 0 {
                walk(&e.path(), depth - 1, prefix, out);
            }
        }
    }
    let mut out = Vec::new();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for l in mounts.lines() {
        let Some((pre, post)) = l.split_once(" - ") else {
            continue;
        };
        if post.starts_with("cgroup2 ") {
            if let Some(m) = pre.split(' ').nth(4) {
                walk(Path::new(m), 4, prefix, &mut out);
            }
        }
    }
    out
}

fn edit_args(v: &mut Value) {
    v["process"]["args"] = "sh -c true".into();
}

/// The cases: a name, what config.json becomes, and what stderr must name besides the file.
fn cases() -> Vec<(&'static str, Bad, &'static [&'static str])> {
    vec![
        (
            "negative uid",
            Bad::Edit(|v| v["process"]["user"]["uid"] = (-1).into()),
            &[
                "process.user.uid: ",
                "integer `-1`",
                "expected u32",
                "(line ",
            ],
        ),
        (
            "gid as a string",
            Bad::Edit(|v| v["process"]["user"]["gid"] = "zero".into()),
            &["process.user.gid: ", "string \"zero\"", "expected u32"],
        ),
        (
            "additional gid out of range",
            Bad::Edit(|v| v["process"]["user"]["additionalGids"] = json!([0, 4294967296u64])),
            &["process.user.additionalGids[1]: ", "integer `4294967296`"],
        ),
        (
            "cwd as a number",
            Bad::Edit(|v| v["process"]["cwd"] = 7.into()),
            &["process.cwd: ", "integer `7`"],
        ),
        (
            "args as a string",
            Bad::Edit(edit_args),
            &[
                "process.args: ",
                "string \"sh -c true\"",
                "expected a sequence",
            ],
        ),
        (
            "env as a map",
            Bad::Edit(|v| v["process"]["env"] = json!({"PATH": "/bin"})),
            &["process.env: ", "invalid type: map", "expected a sequence"],
        ),
        (
            "terminal as a string",
            Bad::Edit(|v| v["process"]["terminal"] = "yes".into()),
            &["process.terminal: ", "string \"yes\"", "boolean"],
        ),
        (
            "unknown rlimit",
            Bad::Edit(|v| {
                v["process"]["rlimits"] = json!([{"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}])
            }),
            &["process.rlimits[0].type: ", "RLIMIT_BOGUS"],
        ),
        (
            "rlimit as a string",
            Bad::Edit(|v| {
                v["process"]["rlimits"] =
                    json!([{"type": "RLIMIT_NOFILE", "hard": "many", "soft": 1}])
            }),
            &["process.rlimits[0].hard: ", "string \"many\"", "u64"],
        ),
        (
            "unknown capability",
            Bad::Edit(|v| v["process"]["capabilities"]["bounding"] = json!(["CAP_BOGUS"])),
            &["process.capabilities.bounding", "CAP_BOGUS"],
        ),
        (
            "unknown namespace type",
            Bad::Edit(|v| v["linux"]["namespaces"][0]["type"] = "bogus".into()),
            &["linux.namespaces[0].type: ", "bogus"],
        ),
        (
            "negative id map size",
            Bad::Edit(|v| {
                v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": -5}])
            }),
            &["linux.uidMappings[0].size: ", "integer `-5`"],
        ),
        (
            "mounts as an object",
            Bad::Edit(|v| v["mounts"] = json!({"destination": "/proc", "type": "proc"})),
            &["mounts: ", "invalid type: map", "expected a sequence"],
        ),
        (
            "mount options as a string",
            Bad::Edit(|v| v["mounts"][1]["options"] = "ro,nosuid".into()),
            &["mounts[1].options: ", "string \"ro,nosuid\""],
        ),
        (
            "memory limit as a string",
            Bad::Edit(|v| v["linux"]["resources"] = json!({"memory": {"limit": "1G"}})),
            &["linux.resources.memory.limit: ", "string \"1G\"", "i64"],
        ),
        (
            "device rule allow as a string",
            Bad::Edit(|v| v["linux"]["resources"] = json!({"devices": [{"allow": "yes"}]})),
            &["linux.resources.devices[0].allow: ", "string \"yes\""],
        ),
        (
            "hooks as a string",
            Bad::Edit(|v| v["hooks"] = json!({"prestart": "/bin/true"})),
            &[
                "hooks.prestart: ",
                "string \"/bin/true\"",
                "expected a sequence",
            ],
        ),
        (
            "hook path as a number",
            Bad::Edit(|v| v["hooks"] = json!({"createRuntime": [{"path": 1}]})),
            &["hooks.createRuntime[0].path: ", "integer `1`"],
        ),
        (
            "unknown seccomp action",
            Bad::Edit(|v| v["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_BOGUS"})),
            &["linux.seccomp.defaultAction: ", "SCMP_ACT_BOGUS"],
        ),
        (
            "ociVersion as a number",
            Bad::Edit(|v| v["ociVersion"] = 1.into()),
            &["ociVersion: ", "integer `1`", "expected a string"],
        ),
        (
            // Defaults to "" in oci-spec, which would make the bundle directory the root.
            "root without path",
            Bad::Edit(|v| v["root"] = json!({"readonly": true})),
            &["root.path: required, and missing or empty"],
        ),
        (
            "no root",
            Bad::Edit(|v| {
                v.as_object_mut().unwrap().remove("root");
            }),
            &["root: required, and missing or empty"],
        ),
        (
            "truncated",
            Bad::Text(|v| {
                let mut t = serde_json::to_vec_pretty(v).unwrap();
                // Inside process.user, after `"uid": `.
                t.truncate(t.windows(5).position(|w| w == b"\"uid\"").unwrap() + 7);
                t
            }),
            &["process.user.uid: ", "EOF while parsing a value"],
        ),
        (
            "not UTF-8",
            Bad::Text(|v| {
                // A lone 0xff inside the string "true" of process.args.
                let mut t = serde_json::to_vec_pretty(v).unwrap();
                let at = t.windows(6).position(|w| w == b"\"true\"").unwrap();
                t.insert(at + 3, 0xff);
                t
            }),
            &["process.args[0]: ", "invalid unicode"],
        ),
        (
            "text after the object",
            Bad::Text(|v| {
                let mut t = serde_json::to_vec(v).unwrap();
                t.extend_from_slice(b" {}");
                t
            }),
            &["trailing characters (line 1, column "],
        ),
        (
            "an array",
            Bad::Text(|_| b"[1, 2]".to_vec()),
            &["expected a JSON object, found an array"],
        ),
        (
            "empty",
            Bad::Text(|_| Vec::new()),
            &["empty, expected a JSON object"],
        ),
        ("missing", Bad::Missing, &["No such file or directory"]),
        (
            "a directory",
            Bad::Directory,
            &["not a regular file but a directory"],
        ),
        ("a FIFO", Bad::Fifo, &["not a regular file but a FIFO"]),
        (
            "a link to /dev/zero",
            Bad::DevZero,
            &["not a regular file but a character device"],
        ),
        (
            "larger than 16 MiB",
            Bad::Oversized,
            &["too large: ", "the limit is 16777216 bytes (16 MiB)"],
        ),
    ]
}

#[test]
fn bad_config_json_names_the_field_and_leaves_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new("config");
    let config = env.config();
    let prefix = format!("badcfg-{}-", std::process::id());
    let mut failures = Vec::new();
    let mut n = 0;
    for (name, bad, want) in cases() {
        env.write_config(&bad);
        for cmd in ["create", "run"] {
            n += 1;
            let id = format!("{prefix}{n}");
            let t = Instant::now();
            let (code, stderr) =
                match env.oci(&[cmd, "--bundle", env.bundle().to_str().unwrap(), &id]) {
                    Ok(x) => x,
                    Err(hung) => {
                        failures.push(format!("{name} ({cmd}): {hung}"));
                        continue;
                    }
                };
            println!("{name} ({cmd}, {:?}): {}", t.elapsed(), stderr.trim());
            let mut fail = |what: String| failures.push(format!("{name} ({cmd}): {what}"));
            if code != Some(1) {
                fail(format!("exit status {code:?}, not 1"));
            }
            let file = format!("gocker-oci: {}: ", config.display());
            if !stderr.starts_with(&file) {
                fail(format!("stderr does not start with {file:?}: {stderr}"));
            }
            for w in want {
                if !stderr.contains(w) {
                    fail(format!("{w:?} is not in stderr: {stderr}"));
                }
            }
            if stderr.contains("serde failed") || stderr.contains("panicked") {
                fail(format!("stderr: {stderr}"));
            }
            let left = containers_left(&env.root());
            if !left.is_empty() || env.root().join(&id).exists() {
                fail(format!("left in the state root: {left:?}"));
            }
            let kids = children();
            if !kids.is_empty() {
                fail(format!("processes left: {kids:?}"));
            }
        }
    }
    let cgroups = cgroups_named(&prefix);
    let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(env.dir.to_str().unwrap()))
        .map(str::to_owned)
        .collect();
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    assert!(
        failures.is_empty(),
        "{} of {n} commands:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(n >= 60, "{n} commands");
}

#[test]
fn bad_process_and_resources_files_name_the_field() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new("inputs");
    let process = env.dir.join("process.json");
    let resources = env.dir.join("resources.json");
    let cases: [(&Path, &str, &[&str], &[&str]); 6] = [
        (
            &process,
            r#"{"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": "ls -l"}"#,
            &[
                "exec",
                "--process",
                process.to_str().unwrap(),
                "no-such-ctr",
            ],
            &[
                "args: ",
                "string \"ls -l\"",
                "expected a sequence",
                "(line 1, column ",
            ],
        ),
        (
            &process,
            r#"{"cwd": "/", "user": {"uid": -3, "gid": 0}, "args": ["ls"]}"#,
            &[
                "exec",
                "--process",
                process.to_str().unwrap(),
                "no-such-ctr",
            ],
            &["user.uid: ", "integer `-3`", "expected u32"],
        ),
        (
            &process,
            r#"{"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["ls"], "#,
            &[
                "exec",
                "--process",
                process.to_str().unwrap(),
                "no-such-ctr",
            ],
            &["EOF while parsing"],
        ),
        (
            &resources,
            r#"{"memory": {"limit": "1G"}}"#,
            &["update", "-r", resources.to_str().unwrap(), "no-such-ctr"],
            &["memory.limit: ", "string \"1G\"", "i64"],
        ),
        (
            &resources,
            r#"{"pids": {"limit": 1.5}}"#,
            &["update", "-r", resources.to_str().unwrap(), "no-such-ctr"],
            &["pids.limit: ", "floating point `1.5`"],
        ),
        (
            // An array used to make the --memory merge panic (indexing a non-object).
            &resources,
            "[]",
            &[
                "update",
                "-r",
                resources.to_str().unwrap(),
                "--memory",
                "1M",
                "no-such-ctr",
            ],
            &["expected a JSON object, found an array"],
        ),
    ];
    let mut failures = Vec::new();
    for (file, text, args, want) in cases {
        std::fs::write(file, text).unwrap();
        let (code, stderr) = env.oci(args).unwrap();
        println!("{args:?}: {}", stderr.trim());
        let mut fail = |what: String| failures.push(format!("{text}: {what}"));
        if code != Some(1) {
            fail(format!("exit status {code:?}, not 1"));
        }
        let named = format!("gocker-oci: {}: ", file.display());
        if !stderr.starts_with(&named) {
            fail(format!("stderr does not start with {named:?}: {stderr}"));
        }
        for w in want {
            if !stderr.contains(w) {
                fail(format!("{w:?} is not in stderr: {stderr}"));
            }
        }
        if stderr.contains("no-such-ctr") {
            fail(format!(
                "the container was looked up before the file was checked: {stderr}"
            ));
        }
    }
    // A FIFO as --process is refused at once, not waited on.
    let fifo = env.dir.join("fifo.json");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    match env.oci(&["exec", "--process", fifo.to_str().unwrap(), "no-such-ctr"]) {
        Ok((code, stderr)) => {
            if code != Some(1) || !stderr.contains("fifo.json: not a regular file but a FIFO") {
                failures.push(format!("FIFO: {code:?} {stderr}"));
            }
        }
        Err(hung) => failures.push(hung),
    }
    // -r - with a bad value on standard input is named as coming from there.
    let mut child = Command::new(bin())
        .arg("--root")
        .arg(env.root())
        .args(["update", "-r", "-", "no-such-ctr"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(br#"{"cpu": {"shares": -1}}"#).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    if o.status.code() != Some(1)
        || !stderr.contains("standard input: cpu.shares: invalid value: integer `-1`")
    {
        failures.push(format!("update -r -: {:?} {stderr}", o.status));
    }
    let kids = children();
    assert!(kids.is_empty(), "processes left: {kids:?}");
    // The state root, if these made one, holds no container.
    assert!(containers_left(&env.root()).is_empty());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
