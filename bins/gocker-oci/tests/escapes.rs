//! The escapes of issue 13 through gocker-oci, as root and as the unprivileged users: a bundle
//! whose `process.cwd` is `/proc/self/fd/N` (CVE-2024-21626: a descriptor of the runtime's
//! pointing at the host), the caller's descriptors and the host binary through `gocker-oci exec`
//! (CVE-2019-5736 class). runc runs the same bundles side by side (as root) and both outcomes
//! are printed.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The static probe of gocker's own escapes test (`probe hunt MS`).
const PROBE_C: &str = include_str!("../../gocker-cli/tests/probes/escape_probe.c");

fn rootless() -> bool {
    !rustix::process::geteuid().is_root()
}

/// A scratch directory: state root, bundle, a host directory with a secret, the probe and a
/// copy of gocker-oci that the test user owns. Removed on drop.
struct Scene {
    dir: PathBuf,
    oci: PathBuf,
}

impl Scene {
    fn new(tag: &str) -> Scene {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) has no memory-safety preconditions.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let dir = std::env::temp_dir().join(format!("gocker-oci-esc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["bundle", "host", "probe"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("host/HOST-SECRET"), "host secret\n").unwrap();
        let oci = dir.join("gocker-oci");
        std::fs::copy(env!("CARGO_BIN_EXE_gocker-oci"), &oci).unwrap();
        settle(&oci);
        Scene { dir, oci }
    }
    fn host(&self) -> PathBuf {
        self.dir.join("host")
    }
    fn host_untouched(&self) -> bool {
        let names: Vec<_> = std::fs::read_dir(self.host())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names == ["HOST-SECRET"]
    }
    fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }
    /// config.json from `gocker-oci spec` with the test rootfs (read-only), `args`, `cwd`, and
    /// the probe bound on /opt.
    fn spec(&self, args: &[&str], cwd: &str) {
        let _ = std::fs::remove_file(self.bundle().join("config.json"));
        let mut c = Command::new(&self.oci);
        c.args(["spec", "--bundle"]).arg(self.bundle());
        if rootless() {
            c.arg("--rootless");
        }
        assert!(c.status().unwrap().success());
        let path = self.bundle().join("config.json");
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        v["root"] = serde_json::json!({"path": rootfs(), "readonly": true});
        v["process"]["terminal"] = false.into();
        v["process"]["args"] = serde_json::json!(args);
        v["process"]["cwd"] = cwd.into();
        // A filter, so that "every process the container can see is filtered" means something
        // (runc's default spec has none).
        v["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]
        });
        v["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/opt", "type": "bind", "source": self.dir.join("probe"),
            "options": ["rbind", "ro"]
        }));
        std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }
    /// For runc as root: its spec has no user namespace (gocker-oci's maps one by default).
    fn without_userns(&self) {
        let path = self.bundle().join("config.json");
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if let Some(ns) = v["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "user");
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }
    /// `RUNTIME --root STATE ARGS...` run from the host directory (a working directory of the
    /// caller's that the runtime may keep a descriptor of), output to files.
    fn runtime(&self, runtime: &Path, args: &[&str]) -> Output {
        let (out, err) = (self.dir.join("cmd.out"), self.dir.join("cmd.err"));
        let st = Command::new(runtime)
            .arg("--root")
            .arg(self.dir.join(format!(
                "state-{}",
                runtime.file_name().unwrap().to_string_lossy()
            )))
            .args(args)
            .current_dir(self.host())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        Output {
            status: st,
            stdout: std::fs::read(&out).unwrap(),
            stderr: std::fs::read(&err).unwrap(),
        }
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until a binary just copied can be executed: a process that another test thread forked
/// while the copy was open for writing holds that descriptor until its own exec, and the
/// kernel refuses to execute a file open for writing (ETXTBSY) meanwhile.
fn settle(bin: &Path) {
    for _ in 0..200 {
        match Command::new(bin).arg("--version").output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => return,
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const ATTACK: &str = "ls ../../ ../../../; head -1 ../../etc/passwd ../../../etc/passwd; \
                      echo pwned > written; echo pwned > ../written";

#[test]
fn a_cwd_through_proc_self_fd_never_reaches_the_host() {
    let s = Scene::new("cwd");
    let runc = (!rootless())
        .then(|| PathBuf::from("/usr/sbin/runc"))
        .filter(|p| p.exists());
    for fd in 3..=8 {
        let cwd = format!("/proc/self/fd/{fd}");
        s.spec(&["sh", "-c", ATTACK], &cwd);
        let id = format!("esc-cwd-{fd}-{}", std::process::id());
        let o = s.runtime(
            &s.oci,
            &["run", "--bundle", s.bundle().to_str().unwrap(), &id],
        );
        let (out, err) = (text(&o.stdout), text(&o.stderr));
        println!("gocker-oci, cwd {cwd}: status {:?}: {err}", o.status.code());
        assert!(!o.status.success(), "cwd {cwd} was accepted: {out}");
        assert!(
            err.contains(&cwd) && err.contains("outside the container's root"),
            "cwd {cwd}: {err}"
        );
        assert!(
            !out.contains("HOST-SECRET"),
            "cwd {cwd}: the host directory was listed: {out}"
        );
        assert!(
            s.host_untouched(),
            "cwd {cwd}: a file was written on the host"
        );
        if let Some(runc) = &runc {
            s.without_userns();
            let o = s.runtime(
                runc,
                &["run", "--bundle", s.bundle().to_str().unwrap(), &id],
            );
            let _ = s.runtime(runc, &["delete", "-f", &id]);
            println!(
                "runc, cwd {cwd}: status {:?}: {}",
                o.status.code(),
                text(&o.stderr).trim()
            );
            assert!(
                s.host_untouched(),
                "runc, cwd {cwd}: a file was written on the host"
            );
        }
    }
    let left = containers_left(&s.dir.join("state-gocker-oci"));
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The same two attacks on `runc exec` (root only; the bundle without a user namespace): what
/// fd 7 shows, and what the hunting probe saw of runc's own processes (`runc:[2:INIT]`).
fn runc_exec_attacks(s: &Scene) -> String {
    let runc = Path::new("/usr/sbin/runc");
    s.spec(&["sleep", "120"], "/");
    s.without_userns();
    let id = format!("esc-runc-{}", std::process::id());
    let state = s.dir.join("state-runc");
    let o = s.runtime(
        runc,
        &[
            "run",
            "--detach",
            "--bundle",
            s.bundle().to_str().unwrap(),
            &id,
        ],
    );
    if !o.status.success() {
        return format!("runc run --detach failed: {}", text(&o.stderr));
    }
    let fd7 = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "exec 7<{}; runc --root {} exec {id} sh -c 'ls /proc/self/fd/7/ 2>&1; ls /proc/self/fd'",
            s.host().display(),
            state.display()
        ))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let hunter = Command::new(runc)
        .arg("--root")
        .arg(&state)
        .args(["exec", &id, "/opt/probe", "hunt", "3000", "runc"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let mut execs = 0;
    while t.elapsed() < Duration::from_secs(2) {
        let _ = Command::new(runc)
            .arg("--root")
            .arg(&state)
            .args(["exec", &id, "true"])
            .stdin(Stdio::null())
            .output();
        execs += 1;
    }
    let out = text(&hunter.wait_with_output().unwrap().stdout);
    let _ = s.runtime(runc, &["delete", "-f", &id]);
    let seen: Vec<&str> = out.lines().filter(|l| l.starts_with("pid=")).collect();
    format!(
        "exec with fd 7 listed {:?}; {execs} execs, the probe saw {} runc processes, first {:?}",
        text(&fd7.stdout).split_whitespace().collect::<Vec<_>>(),
        seen.len(),
        seen.first()
    )
}

/// Waits until `path` names a running container of `oci` (status "running").
fn wait_running(s: &Scene, id: &str) {
    let t = Instant::now();
    loop {
        let o = s.runtime(&s.oci, &["state", id]);
        if text(&o.stdout).contains("\"running\"") {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{id} never ran: {}",
            text(&o.stderr)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sha256(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    text(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn exec_passes_no_descriptor_and_no_handle_on_the_host_binary() {
    let s = Scene::new("exec");
    let o = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(s.dir.join("probe/probe"))
        .arg("-x")
        .arg("c")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(PROBE_C.as_bytes())?;
            c.wait_with_output()
        })
        .expect("gcc");
    assert!(o.status.success(), "gcc -static: {}", text(&o.stderr));
    let before = sha256(&s.oci);
    s.spec(&["sleep", "120"], "/");
    let id = format!("esc-exec-{}", std::process::id());
    let o = s.runtime(
        &s.oci,
        &[
            "run",
            "--detach",
            "--bundle",
            s.bundle().to_str().unwrap(),
            &id,
        ],
    );
    assert!(o.status.success(), "run --detach: {}", text(&o.stderr));
    wait_running(&s, &id);

    // The caller's descriptor 7 on a host directory.
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "exec 7<{}; {} --root {} exec {id} sh -c 'ls /proc/self/fd/7/; ls /proc/self/fd; \
             echo x > /proc/self/fd/7/written'",
            s.host().display(),
            s.oci.display(),
            s.dir.join("state-gocker-oci").display()
        ))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = text(&o.stdout);
    println!("gocker-oci exec with fd 7: {out}");
    assert!(
        !out.contains("HOST-SECRET") && !out.lines().any(|l| l == "7"),
        "{out}"
    );
    assert!(s.host_untouched());

    // exec helpers while a probe hunts for them.
    let state = s.dir.join("state-gocker-oci");
    let hunter = Command::new(&s.oci)
        .arg("--root")
        .arg(&state)
        .args(["exec", &id, "/opt/probe", "hunt", "6000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut execs = 0;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(4) {
        let o = Command::new(&s.oci)
            .arg("--root")
            .arg(&state)
            .args(["exec", &id, "true"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "exec: {}", text(&o.stderr));
        execs += 1;
    }
    let o = hunter.wait_with_output().unwrap();
    let _ = s.runtime(&s.oci, &["delete", "-f", &id]);
    let out = text(&o.stdout);
    let helpers: Vec<&str> = out.lines().filter(|l| l.starts_with("pid=")).collect();
    println!(
        "{execs} gocker-oci execs; the probe saw {} helpers; first {:?}",
        helpers.len(),
        helpers.first()
    );
    assert!(
        out.contains("hunt done"),
        "the probe did not finish: {out} {}",
        text(&o.stderr)
    );
    assert!(
        !helpers.is_empty(),
        "the probe saw no exec helper in {execs} execs"
    );
    for h in &helpers {
        assert!(
            h.contains("seccomp=2 "),
            "an unfiltered helper was visible: {h}"
        );
        for field in ["exe_read=0:", "exe_write=0:", "ptrace=0:"] {
            if let Some(rest) = h.split(field).nth(1) {
                let target = rest.split_whitespace().next().unwrap_or_default();
                assert!(
                    !target.contains("gocker"),
                    "the host binary was reached: {h}"
                );
            }
        }
    }
    assert_eq!(sha256(&s.oci), before, "the host binary changed");
    let left = containers_left(&state);
    if !rootless() && Path::new("/usr/sbin/runc").exists() {
        println!("runc, side by side: {}", runc_exec_attacks(&s));
    }
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// What the container's init and an `exec`'d process show of their limits, personality and
/// privileges: the lines of `/proc/PID/{limits,personality,status}` that must be equal.
fn privileges_of(pid: &str) -> String {
    format!(
        "cat /proc/{pid}/limits /proc/{pid}/personality; \
         grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/{pid}/status"
    )
}

#[test]
fn exec_gets_the_inits_limits_personality_and_privileges() {
    let s = Scene::new("parity");
    s.spec(&["sleep", "120"], "/");
    let path = s.bundle().join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["process"]["rlimits"] = serde_json::json!([
        {"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256},
        {"type": "RLIMIT_NPROC", "hard": 4000, "soft": 3000}
    ]);
    v["process"]["noNewPrivileges"] = true.into();
    v["linux"]["personality"] = serde_json::json!({"domain": "LINUX32"});
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let id = format!("esc-parity-{}", std::process::id());
    let o = s.runtime(
        &s.oci,
        &[
            "run",
            "--detach",
            "--bundle",
            s.bundle().to_str().unwrap(),
            &id,
        ],
    );
    assert!(o.status.success(), "run --detach: {}", text(&o.stderr));
    wait_running(&s, &id);
    let exec = |script: &str| {
        let o = s.runtime(&s.oci, &["exec", &id, "sh", "-c", script]);
        assert!(o.status.success(), "exec: {}", text(&o.stderr));
        text(&o.stdout)
    };
    let init = exec(&privileges_of("1"));
    let mine = exec(&privileges_of("self"));
    let _ = s.runtime(&s.oci, &["delete", "-f", &id]);
    println!("init:\n{init}\nexec:\n{mine}");
    assert!(
        init.contains("Max open files            256                  512"),
        "{init}"
    );
    assert!(
        init.contains("NoNewPrivs:\t1") && init.contains("Seccomp:\t2"),
        "{init}"
    );
    assert!(init.contains("00000008"), "LINUX32 personality: {init}");
    assert_eq!(mine, init, "exec differs from the container's init");
}

/// A bind source on a shared mount of the host (here an overlayfs, which cannot be idmapped, so
/// the clone that ring0 makes is bound as it is): the container's copy must not be a peer of the
/// host's, or a mount the container makes below it appears on the host (its root holds
/// CAP_SYS_ADMIN over its own mount namespace).
#[test]
fn a_mount_inside_a_volume_on_a_shared_host_mount_stays_inside() {
    if rootless() {
        // Making a shared overlay mount on the host needs root.
        return;
    }
    let s = Scene::new("shared");
    let layers = s.dir.join("layers");
    for d in ["lower/sub", "upper", "work", "merged"] {
        std::fs::create_dir_all(layers.join(d)).unwrap();
    }
    let merged = layers.join("merged");
    let opts = format!(
        "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work",
        layers.display()
    );
    let mount = |args: &[&str]| Command::new("mount").args(args).status().unwrap().success();
    assert!(mount(&[
        "-t",
        "overlay",
        "overlay",
        "-o",
        &opts,
        merged.to_str().unwrap()
    ]));
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount")
                .arg(self.0.join("sub"))
                .stderr(Stdio::null())
                .status();
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(merged.clone());
    assert!(mount(&["--make-shared", merged.to_str().unwrap()]));

    s.spec(
        &[
            "sh",
            "-c",
            "mount -t tmpfs planted /mnt/sub && echo mounted; grep ' /mnt ' /proc/self/mountinfo",
        ],
        "/",
    );
    let path = s.bundle().join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["mounts"].as_array_mut().unwrap().push(serde_json::json!({
        "destination": "/mnt", "type": "bind", "source": merged, "options": ["rbind"]
    }));
    let caps = serde_json::json!(["CAP_SYS_ADMIN"]);
    v["process"]["capabilities"] =
        serde_json::json!({"bounding": caps, "effective": caps, "permitted": caps});
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let id = format!("shared-{}", std::process::id());
    let o = s.runtime(
        &s.oci,
        &["run", "--bundle", s.bundle().to_str().unwrap(), &id],
    );
    let out = text(&o.stdout);
    assert!(out.starts_with("mounted\n"), "{out}{}", text(&o.stderr));
    assert!(
        !out.contains("shared:"),
        "a peer of the host's mount: {out}"
    );
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let planted = merged.join("sub");
    assert!(
        !host
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(planted.to_str().unwrap())),
        "the container's mount reached the host at {}",
        planted.display()
    );
}
