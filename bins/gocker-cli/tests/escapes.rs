//! The escapes of issue 13, attacked from inside a container as root and as the unprivileged
//! users (`cargo xtask itest`): the caller's descriptors and a `/proc/self/fd` working directory
//! (CVE-2024-21626 class), the host binary through `/proc/PID/exe` and ptrace of the exec helper
//! (CVE-2019-5736 class, and its window before seccomp), TIOCSTI into the caller's terminal.
//! Where runc has the feature, the same attack runs against it too and both outcomes are printed.
//!
//! The attacks are made by a static probe (C, built with `gcc -static` at test time) bound into
//! the container read-only on `/opt`.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The probe (`probe tiocsti TEXT`, `probe hunt MS`); gocker-oci's escapes test uses it too.
const PROBE_C: &str = include_str!("probes/escape_probe.c");

/// The directory holding the static probe `probe`.
fn probe_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| static_program("probe", PROBE_C, &[]))
}

fn probe_volume() -> String {
    format!("{}:/opt:ro", probe_dir().display())
}

/// A host directory with a secret file in it, private to this test.
struct HostDir(PathBuf);

impl HostDir {
    fn new(tag: &str) -> HostDir {
        let d = std::env::temp_dir().join(format!("gocker-escape-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("HOST-SECRET"), "host secret\n").unwrap();
        HostDir(d)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    /// The directory holds nothing but the secret: nothing was written into it.
    fn untouched(&self) -> bool {
        let names: Vec<_> = std::fs::read_dir(&self.0)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names == ["HOST-SECRET"]
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `bash -c SCRIPT` with fd 7 open on `dir` (not close-on-exec, as a shell's `exec 7<` leaves it).
fn with_fd7(dir: &Path, script: &str) -> std::process::Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!("exec 7<{}; {script}", dir.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn exec_gets_none_of_the_callers_descriptors() {
    let host = HostDir::new("exec-fd");
    let name = unique("escfd");
    ok(&g(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "--rootfs",
        &rootfs(),
        "sleep",
        "60",
    ]));
    let g = bin().display().to_string();
    let o = with_fd7(
        host.path(),
        &format!(
            "{g} exec {name} sh -c 'ls /proc/self/fd/7/; cd /proc/self/fd/7 && ls ../../../; \
             echo x > /proc/self/fd/7/written; ls /proc/self/fd'"
        ),
    );
    let out = stdout(&o);
    println!(
        "gocker exec with fd 7 on a host directory: {out} {}",
        stderr(&o)
    );
    assert!(
        !out.contains("HOST-SECRET"),
        "the host directory was listed: {out}"
    );
    assert!(
        host.untouched(),
        "a file was written into the host directory"
    );
    let fds: Vec<&str> = out.lines().collect();
    assert!(
        !fds.contains(&"7"),
        "fd 7 reached the exec'd process: {out}"
    );
    // The working directory of exec: a magic link is refused, naming it.
    let o = with_fd7(
        host.path(),
        &format!("{g} exec -w /proc/self/fd/7 {name} sh -c 'ls; echo x > written'"),
    );
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/proc/self/fd/7")
            && stderr(&o).contains("outside the container's root"),
        "{}",
        stderr(&o)
    );
    assert!(!stdout(&o).contains("HOST-SECRET") && host.untouched());
    ok(&common::g(&["rm", "-f", &name]));
}

#[test]
fn run_refuses_a_working_directory_through_a_proc_magic_link() {
    let host = HostDir::new("run-w");
    let g = bin().display().to_string();
    for w in [
        "/proc/self/fd/7",
        "/proc/self/cwd",
        "/proc/1/root/tmp",
        "/proc/thread-self/fd/3",
    ] {
        let o = with_fd7(
            host.path(),
            &format!(
                "{g} run --rm --network none --rootfs {} -w {w} sh -c 'ls; ls ../../; echo x > written'",
                rootfs()
            ),
        );
        assert_eq!(o.status.code(), Some(125), "-w {w}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(w) && stderr(&o).contains("outside the container's root"),
            "-w {w}: {}",
            stderr(&o)
        );
        assert!(
            !stdout(&o).contains("HOST-SECRET"),
            "-w {w}: {}",
            stdout(&o)
        );
    }
    assert!(
        host.untouched(),
        "a file was written into the host directory"
    );
    // An ordinary working directory still works, and `..` stays inside the root.
    let o = sh(&["--network", "none", "-w", "/tmp/../../.."], "pwd");
    assert_eq!(ok(&o).trim(), "/");
}

/// A copy of the gocker binary that the test user owns (rootless: what the attacker would
/// overwrite), and its sha256.
fn own_copy_of_gocker(dir: &Path) -> (PathBuf, String) {
    let copy = dir.join("gocker");
    std::fs::copy(bin(), &copy).unwrap();
    // A process another test thread forked while the copy was open for writing holds that
    // descriptor until its exec; meanwhile the kernel refuses to execute the copy (ETXTBSY).
    for _ in 0..200 {
        match Command::new(&copy).arg("--version").output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => break,
        }
    }
    (copy.clone(), sha256(&copy))
}

fn sha256(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    assert!(o.status.success());
    text(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn exec_helpers_are_filtered_undumpable_and_not_traceable() {
    let dir = HostDir::new("exe");
    let (gocker, before) = own_copy_of_gocker(dir.path());
    let name = unique("esc-exe");
    let vol = probe_volume();
    let run = Command::new(&gocker)
        .args([
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "none",
            "--cap-add",
            "SYS_PTRACE",
            "--rootfs",
            &rootfs(),
            "-v",
            &vol,
            "sleep",
            "120",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    ok(&run);
    // The probe hunts in the background while exec helpers come and go.
    let mut hunter = Command::new(&gocker)
        .args(["exec", &name, "/opt/probe", "hunt", "20000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = hunter.stdout.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let l2 = lines.clone();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            l2.lock().unwrap().push(l);
        }
    });
    wait_for("the probe to start", Duration::from_secs(10), || {
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l == "hunting")
            .then_some(())
    });
    let start = Instant::now();
    let mut execs = 0;
    // Until the probe has seen enough helpers (or 15 s): each exec is one window.
    while start.elapsed() < Duration::from_secs(15) {
        let o = Command::new(&gocker)
            .args(["exec", &name, "true"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        ok(&o);
        execs += 1;
        let seen = lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("pid="))
            .count();
        if seen >= 20 && execs >= 20 {
            break;
        }
    }
    let _ = common::g(&["rm", "-f", &name]);
    let _ = Command::new(&gocker).args(["rm", "-f", &name]).output();
    let _ = hunter.kill();
    let _ = hunter.wait();
    reader.join().unwrap();
    let lines = lines.lock().unwrap().clone();
    let helpers: Vec<&String> = lines.iter().filter(|l| l.starts_with("pid=")).collect();
    println!(
        "{execs} execs; the probe saw {} exec helpers; first: {:?}",
        helpers.len(),
        helpers.first()
    );
    assert!(
        !helpers.is_empty(),
        "the probe never saw an exec helper in {execs} execs: the test proves nothing"
    );
    for h in &helpers {
        assert!(
            h.contains("seccomp=2 "),
            "an unfiltered helper was visible: {h}"
        );
        // A success is a breach when it reached the runtime's binary (named gocker*), not the
        // program that an execve in progress was replacing it with.
        for (field, what) in [
            ("exe_read=0:", "the host binary was opened"),
            ("exe_write=0:", "the host binary was opened for writing"),
            ("ptrace=0:", "a helper running the host binary was ptraced"),
        ] {
            if let Some(rest) = h.split(field).nth(1) {
                let target = rest.split_whitespace().next().unwrap_or_default();
                assert!(!target.contains("gocker"), "{what}: {h}");
            }
        }
    }
    assert_eq!(sha256(&gocker), before, "the host binary changed");
}

/// Runs `script` (bash) under a real terminal (`script(1)`); returns what the terminal showed.
fn under_terminal(script: &str) -> String {
    let o = Command::new("script")
        .args([
            "-qec",
            &format!("bash -c {}", shell_quote(script)),
            "/dev/null",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux");
    text(&o.stdout)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[test]
fn nothing_is_pushed_into_the_callers_terminal() {
    let g = bin().display().to_string();
    let r = rootfs();
    let vol = probe_volume();
    let name = unique("esc-tty");
    ok(&common::g(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "--rootfs",
        &r,
        "-v",
        &vol,
        "sleep",
        "60",
    ]));
    let cases = [
        (
            "run",
            format!("{g} run --rm --network none --rootfs {r} -v {vol}"),
        ),
        (
            "run -i",
            format!("{g} run --rm -i --network none --rootfs {r} -v {vol}"),
        ),
        ("exec", format!("{g} exec {name}")),
        ("exec -i", format!("{g} exec -i {name}")),
    ];
    for (what, cmd) in &cases {
        let marker = format!("INJECTED-{}", what.replace(' ', ""));
        let shown = under_terminal(&format!(
            "{cmd} /opt/probe tiocsti 'echo {marker}' </dev/tty; \
             if read -t 1 line; then echo \"GOT[$line]\"; fi; echo done"
        ));
        println!("gocker {what}: {shown}");
        assert!(
            shown.contains("tiocsti fd=0"),
            "{what}: the probe did not run: {shown}"
        );
        assert!(shown.contains("done"), "{what}: {shown}");
        assert!(
            !shown.contains(&format!("GOT[echo {marker}]")),
            "{what}: input was pushed into the caller's terminal: {shown}"
        );
        for fd in 0..3 {
            assert!(
                !shown.contains(&format!("tiocsti fd={fd} errno=0")),
                "{what}: TIOCSTI succeeded on fd {fd}: {shown}"
            );
        }
    }
    ok(&common::g(&["rm", "-f", &name]));
    // runc, side by side (root only: its rootless spec needs a bundle of its own).
    if rustix::process::geteuid().is_root() && which("runc") {
        let shown = runc_tiocsti(&r);
        println!("runc run: {shown}");
    }
}

fn which(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The TIOCSTI probe under `runc run` with `terminal: false`, for comparison.
fn runc_tiocsti(rootfs: &str) -> String {
    let d = std::env::temp_dir().join(format!("gocker-escape-runc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let o = Command::new("runc")
        .args(["spec"])
        .current_dir(&d)
        .output()
        .unwrap();
    if !o.status.success() {
        return format!("runc spec failed: {}", text(&o.stderr));
    }
    let path = d.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["root"] = serde_json::json!({"path": rootfs, "readonly": true});
    v["process"]["terminal"] = false.into();
    v["process"]["args"] = serde_json::json!(["/opt/probe", "tiocsti", "echo INJECTED-runc"]);
    v["mounts"].as_array_mut().unwrap().push(serde_json::json!({
        "destination": "/opt", "type": "bind", "source": probe_dir(), "options": ["rbind", "ro"]
    }));
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let id = unique("esc-runc");
    let shown = under_terminal(&format!(
        "cd {} && runc run {id} </dev/tty; if read -t 1 line; then echo \"GOT[$line]\"; fi; echo done",
        d.display()
    ));
    let _ = Command::new("runc").args(["delete", "-f", &id]).output();
    let _ = std::fs::remove_dir_all(&d);
    shown
}

#[test]
fn container_root_leaves_no_setuid_root_file_on_the_host() {
    let tag = unique("rootsh");
    let r = rootfs_path();
    let script = format!(
        "for d in /tmp /; do cp /bin/busybox $d/{tag} 2>/dev/null && chmod 4755 $d/{tag} && \
         ls -ln $d/{tag}; done; true"
    );
    let out = ok(&sh(&["--network", "none"], &script));
    println!("inside: {out}");
    // Root: the copy really was made setuid root inside the container (through the idmapped
    // root, container root is host root there).
    if rustix::process::geteuid().is_root() {
        assert!(out.contains("-rwsr-xr-x") && out.contains(" 0 "), "{out}");
    }
    use std::os::unix::fs::MetadataExt;
    let mut found = Vec::new();
    for d in [r.join("tmp"), r.clone()] {
        let p = d.join(&tag);
        if let Ok(m) = std::fs::symlink_metadata(&p) {
            found.push(format!(
                "{} uid {} mode {:o}",
                p.display(),
                m.uid(),
                m.mode()
            ));
            // Rootless: the file belongs to the user (the container's root); never to host root.
            assert!(
                !(m.uid() == 0 && m.mode() & 0o6000 != 0),
                "a setuid-root file on the host: {}",
                p.display()
            );
            let _ = std::fs::remove_file(&p);
        }
    }
    println!("on the host: {found:?}");
    if rustix::process::geteuid().is_root() {
        assert!(
            found.is_empty(),
            "container writes reached the rootfs directory: {found:?}"
        );
    }
}
