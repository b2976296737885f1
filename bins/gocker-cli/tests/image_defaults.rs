//! The rest of issue 15's image config and defaults (docs/images.md, "The default image" and
//! "`gocker run IMAGE [COMMAND]`"):
//! - `gocker rootfs build` registers the provisioned rootfs as the image `gocker-alpine:TAG` and
//!   `gocker-alpine:latest`, once; `run gocker-alpine ...` and a bare `run COMMAND` use it;
//!   `run alpine sh` without a registry says how to get `alpine` and names the default;
//! - an image's StopSignal is what `gocker stop` sends (a trap in the container proves it),
//!   `run --stop-signal` overrides it, a bad one in an image is ignored with a warning naming it;
//!   ExposedPorts and Labels (with `--label` over them) are in `inspect`'s Config;
//! - podman pushes an image to a local `docker-registry`, and gocker pulls and runs it (root).
//!
//! The registration test builds its rootfs in a private `XDG_DATA_HOME` (an unprivileged user's
//! own rootfs and image store: as root, the test user gocker-sub's), so that the shared stores
//! are not touched; the other tests remove the images they made.

mod common;

use common::*;
use gocker_storage::test_support::{have_tool, require_tools, run, Registry};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs gocker as a test user (setpriv) or as this process, with extra environment.
struct Caller {
    user: Option<TestUser>,
    env: Vec<(String, String)>,
}

impl Caller {
    fn g(&self, args: &[&str]) -> Output {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match &self.user {
            Some(u) => u.gocker(args, &env).output().unwrap(),
            None => {
                let mut c = gocker(args);
                c.envs(env.iter().copied());
                c.output().unwrap()
            }
        }
    }
}

#[track_caller]
fn fails(o: &Output, code: i32, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {} stderr: {err}",
        stdout(o)
    );
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
    err
}

/// `gocker images` rows of repository `repo`: (tag, id).
fn rows(c: &Caller, repo: &str) -> Vec<(String, String)> {
    ok(&c.g(&["images", "--no-trunc"]))
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&repo)).then(|| (f[1].to_owned(), f[2].to_owned()))
        })
        .collect()
}

/// A private data directory (rootfs and image store) for `user`, removed on drop with what gocker
/// made in it.
struct DataDir(PathBuf);

impl DataDir {
    fn new(user: Option<&TestUser>) -> DataDir {
        let d = std::env::temp_dir().join(unique("gocker-data"));
        fs::create_dir(&d).unwrap();
        if let Some(u) = user {
            std::os::unix::fs::chown(&d, Some(u.uid), Some(u.gid)).unwrap();
        }
        DataDir(d)
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        // Unpacked layers keep their modes (directories without write permission included).
        let _ = Command::new("chmod")
            .args(["-R", "u+rwX"])
            .arg(&self.0)
            .output();
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn default_image_is_the_provisioned_rootfs(user: Option<TestUser>) {
    let data = DataDir::new(user.as_ref());
    let c = Caller {
        user,
        env: vec![("XDG_DATA_HOME".into(), data.0.display().to_string())],
    };
    let dir = data.0.join("gocker/rootfs/alpine");
    let o = c.g(&["rootfs", "build", "--offline"]);
    let path = ok(&o);
    assert_eq!(path.trim(), dir.display().to_string(), "stdout is the path");
    let err = stderr(&o);
    assert!(err.contains("gocker-alpine:latest"), "{err}");
    let first = rows(&c, "gocker-alpine");
    assert_eq!(first.len(), 2, "a version tag and latest: {first:?}");
    let latest = first.iter().find(|r| r.0 == "latest").expect("latest");
    let tag = first.iter().find(|r| r.0 != "latest").unwrap();
    assert!(tag.0.starts_with("offline-busybox-"), "{tag:?}");
    assert_eq!(latest.1, tag.1, "both tags name one image");

    // Idempotent: a second build registers nothing new.
    let o = c.g(&["rootfs", "build", "--offline"]);
    ok(&o);
    assert!(stderr(&o).contains("already registered"), "{}", stderr(&o));
    assert_eq!(rows(&c, "gocker-alpine"), first);
    let n_images = ok(&c.g(&["images", "-q"])).lines().count();
    assert_eq!(n_images, 1, "one image in the private store");

    // The image is the rootfs (without gocker's build marker), and the directory stays for
    // --rootfs users.
    let script = "cat /etc/os-release; test -e /.gocker-rootfs.json || echo no-marker";
    let out = ok(&c.g(&[
        "run",
        "--rm",
        "--network",
        "none",
        "gocker-alpine",
        "sh",
        "-c",
        script,
    ]));
    assert!(
        out.contains("Alpine-like") && out.contains("no-marker"),
        "{out}"
    );
    assert!(dir.join(".gocker-rootfs.json").is_file());
    let d = dir.display().to_string();
    let out = ok(&c.g(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--rootfs",
        &d,
        "cat",
        "/etc/hostname",
    ]));
    assert_eq!(out.trim(), "localhost");

    // A bare command (a path, or a program of the default root) runs on the default image.
    let name = unique("bare");
    let o = c.g(&[
        "run",
        "--name",
        &name,
        "--network",
        "none",
        "ls",
        "/etc/os-release",
    ]);
    assert_eq!(ok(&o).trim(), "/etc/os-release");
    assert!(
        stderr(&o).contains("the default image gocker-alpine:latest"),
        "{}",
        stderr(&o)
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&c.g(&["inspect", &name]))).unwrap();
    ok(&c.g(&["rm", &name]));
    assert_eq!(v[0]["Config"]["Image"], "gocker-alpine:latest", "{v}");
    assert_eq!(
        v[0]["spec"]["annotations"]["io.gocker.image.id"], latest.1,
        "{v}"
    );
    assert_eq!(
        v[0]["Config"]["Labels"]["io.gocker.rootfs.path"],
        d.as_str(),
        "{v}"
    );

    // `alpine` is neither in the store nor a command of the default root: an image to pull,
    // which fails here (no registry), saying how to get it and which image is the default.
    let t0 = Instant::now();
    let o = c.g(&[
        "run",
        "--rm",
        "--network",
        "none",
        "alpine",
        "sh",
        "-c",
        "true",
    ]);
    if o.status.success() {
        eprintln!("NOTE: docker.io is reachable from this machine: `alpine` was pulled");
        let _ = c.g(&["rmi", "-f", "alpine"]);
    } else {
        fails(
            &o,
            125,
            &[
                "Unable to find image 'alpine' locally",
                "gocker pull alpine",
                "gocker-alpine",
                "gocker rootfs build",
            ],
        );
        assert!(t0.elapsed() < Duration::from_secs(30));
    }
    // `run --help` names the default image.
    let help = ok(&c.g(&["run", "--help"]));
    assert!(help.contains("gocker-alpine:latest"), "{help}");

    // Removed, `gocker-alpine` is not pulled: its own rootfs is registered again.
    ok(&c.g(&[
        "rmi",
        "gocker-alpine:latest",
        &format!("gocker-alpine:{}", tag.0),
    ]));
    assert!(rows(&c, "gocker-alpine").is_empty());
    let o = c.g(&["run", "--rm", "--network", "none", "gocker-alpine", "true"]);
    ok(&o);
    assert!(
        stderr(&o).contains("registering the provisioned rootfs") && !stderr(&o).contains("Pull"),
        "{}",
        stderr(&o)
    );
    assert_eq!(rows(&c, "gocker-alpine").len(), 2);
    // Without a rootfs of one's own: a clear error, no pull.
    let empty = DataDir::new(c.user.as_ref());
    let c2 = Caller {
        user: c.user.as_ref().map(|u| TestUser::get(u.name)),
        env: vec![("XDG_DATA_HOME".into(), empty.0.display().to_string())],
    };
    let o = c2.g(&["run", "--rm", "--network", "none", "gocker-alpine", "true"]);
    let err = fails(
        &o,
        125,
        &["provisioned default image", "gocker rootfs build"],
    );
    assert!(!err.contains("Pulling"), "{err}");
}

#[test]
fn rootfs_build_registers_the_default_image_once_and_run_uses_it() {
    if is_root() {
        default_image_is_the_provisioned_rootfs(Some(TestUser::get("gocker-sub")));
    } else {
        default_image_is_the_provisioned_rootfs(None);
    }
}

/// Appends `root/rel` and what is below it, skipping what this user cannot read.
fn add_tree(b: &mut tar::Builder<Vec<u8>>, root: &Path, rel: &Path) {
    let p = root.join(rel);
    let Ok(md) = fs::symlink_metadata(&p) else {
        return;
    };
    let ft = md.file_type();
    if ft.is_file() && fs::File::open(&p).is_err() {
        return;
    }
    if !(ft.is_dir() || ft.is_file() || ft.is_symlink()) {
        return;
    }
    b.append_path_with_name(&p, rel)
        .unwrap_or_else(|e| panic!("tar {}: {e}", p.display()));
    if ft.is_dir() {
        let Ok(rd) = fs::read_dir(&p) else { return };
        let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for n in names {
            add_tree(b, root, &rel.join(n));
        }
    }
}

/// Removes the images named on drop, and what they left in the store.
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = g(&["rmi", "-f", n]);
        }
        let _ = g(&["image", "prune", "-f"]);
    }
}

/// Waits until the logs of `name` contain `what`.
fn logs_contain(name: &str, what: &str) {
    wait_for(
        &format!("{what:?} in the logs of {name}"),
        Duration::from_secs(20),
        || {
            text(&g(&["logs", name]).stdout)
                .contains(what)
                .then_some(())
        },
    );
}

/// A shell that traps USR1 and TERM, each printing its name and exiting with its own status.
const TRAPS: &str =
    "trap 'echo trapped USR1; exit 71' USR1; trap 'echo trapped TERM; exit 72' TERM; \
                     echo ready; while :; do sleep 0.1; done";

/// Starts `image` detached with [`TRAPS`], stops it, and returns (its logs, its exit code, the
/// seconds `stop` took, `inspect`).
fn run_and_stop(image: &str, extra: &[&str]) -> (String, i64, f64, serde_json::Value) {
    let name = unique("stopsig");
    let mut args = vec!["run", "-d", "--name", &name, "--network", "none"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[image, "sh", "-c", TRAPS]);
    let o = g(&args);
    ok(&o);
    logs_contain(&name, "ready");
    let t0 = Instant::now();
    ok(&g(&["stop", "-t", "20", &name]));
    let took = t0.elapsed().as_secs_f64();
    let logs = text(&g(&["logs", &name]).stdout);
    let v: serde_json::Value = serde_json::from_str(&ok(&g(&["inspect", &name]))).unwrap();
    ok(&g(&["rm", &name]));
    let code = v[0]["exit_code"].as_i64().unwrap_or(-1);
    (logs, code, took, v[0].clone())
}

/// `image` saved as a docker-archive, its config's StopSignal set to `signal`, loaded as `new`.
fn with_stop_signal(image: &str, signal: &str, new: &str) {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.tar");
    ok(&g(&[
        "save",
        "--format",
        "docker-archive",
        "-o",
        a.to_str().unwrap(),
        image,
    ]));
    let mut entries: Vec<(tar::Header, String, Vec<u8>)> = Vec::new();
    let mut ar = tar::Archive::new(fs::File::open(&a).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        entries.push((e.header().clone(), path, data));
    }
    let find = |p: &str| entries.iter().find(|e| e.1 == p).map(|e| e.2.clone());
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&find("manifest.json").expect("manifest.json")).unwrap();
    let old = manifest[0]["Config"].as_str().unwrap().to_owned();
    let mut config: serde_json::Value = serde_json::from_slice(&find(&old).unwrap()).unwrap();
    config["config"]["StopSignal"] = serde_json::json!(signal);
    let bytes = serde_json::to_vec(&config).unwrap();
    let hex = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(&bytes))
    };
    let cfg_name = format!("{hex}.json");
    manifest[0]["Config"] = serde_json::json!(cfg_name);
    manifest[0]["RepoTags"] = serde_json::json!([new]);
    let mut b = tar::Builder::new(Vec::new());
    for (h, p, data) in &entries {
        if *p == old || p == "manifest.json" || p == "repositories" {
            continue;
        }
        let mut h = h.clone();
        b.append_data(&mut h, p, &data[..]).unwrap();
    }
    for (p, data) in [
        (cfg_name.as_str(), bytes),
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, p, &data[..]).unwrap();
    }
    let out = dir.path().join("b.tar");
    fs::write(&out, b.into_inner().unwrap()).unwrap();
    let o = ok(&g(&["load", "-i", out.to_str().unwrap()]));
    assert!(o.contains(new), "{o}");
}

#[test]
fn stop_sends_the_images_stop_signal_unless_run_says_otherwise_and_inspect_shows_the_config() {
    let r = rootfs();
    let repo = format!("localhost/gocker-test/{}", unique("stopsig"));
    let (img, bad) = (format!("{repo}:1"), format!("{repo}:bad"));
    let _clean = Images(vec![img.clone(), bad.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let tar_path = dir.path().join("rootfs.tar");
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    for top in ["bin", "etc", "lib", "sbin", "usr"] {
        add_tree(&mut b, &rootfs_path(), Path::new(top));
    }
    fs::write(&tar_path, b.into_inner().unwrap()).unwrap();
    let t = tar_path.to_str().unwrap();
    // A STOPSIGNAL that is not a signal is refused, as docker's builder refuses it.
    let o = g(&["import", "-c", "STOPSIGNAL SIGFOO", t, &img]);
    fails(&o, 125, &["SIGFOO"]);
    ok(&g(&[
        "import",
        "-c",
        "STOPSIGNAL SIGUSR1",
        "-c",
        "EXPOSE 8080 53/udp",
        "-c",
        "LABEL team=blue",
        "-c",
        "LABEL tier=back",
        t,
        &img,
    ]));

    // The image's StopSignal: the USR1 trap runs, at once (not after the 20 s grace period).
    let (logs, code, took, v) = run_and_stop(&img, &["--label", "team=red", "-l", "flagonly"]);
    assert!(
        logs.contains("trapped USR1") && !logs.contains("TERM"),
        "{logs}"
    );
    assert_eq!(code, 71, "{v}");
    assert!(took < 10.0, "stop took {took} s");
    let cfg = &v["Config"];
    assert_eq!(cfg["StopSignal"], "SIGUSR1", "{v}");
    assert_eq!(cfg["Image"], img.as_str(), "{v}");
    assert_eq!(
        cfg["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "53/udp": {}}),
        "{v}"
    );
    assert_eq!(
        cfg["Labels"],
        serde_json::json!({"team": "red", "tier": "back", "flagonly": ""}),
        "--label over the image's Labels: {v}"
    );
    assert_eq!(v["spec"]["annotations"]["team"], "red");

    // --stop-signal overrides the image's.
    let (logs, code, _, v) = run_and_stop(&img, &["--stop-signal", "TERM"]);
    assert!(
        logs.contains("trapped TERM") && !logs.contains("USR1"),
        "{logs}"
    );
    assert_eq!(code, 72);
    assert_eq!(v["Config"]["StopSignal"], "SIGTERM");
    // ... also on a --rootfs container, which has no image (`busybox sh -c ...`).
    let (logs, code, _, v) = run_and_stop("/bin/busybox", &["--rootfs", &r, "--stop-signal", "10"]);
    assert!(logs.contains("trapped USR1"), "{logs}");
    assert_eq!(code, 71);
    assert_eq!(v["Config"]["StopSignal"], "SIGUSR1");
    assert_eq!(v["Config"]["Labels"], serde_json::json!({}));

    // Refused flags: no container is made.
    let o = g(&["run", "--rm", "--stop-signal", "SIGNOPE", &img, "true"]);
    fails(&o, 125, &["--stop-signal", "SIGNOPE"]);
    let o = g(&["run", "--rm", "--label", "=x", &img, "true"]);
    fails(&o, 125, &["--label", "empty name"]);
    let o = g(&[
        "run",
        "--rm",
        "--label",
        "io.gocker.image.id=x",
        &img,
        "true",
    ]);
    fails(&o, 125, &["io.gocker."]);

    // An image whose StopSignal is not a signal (made by hand: commit refuses it): run warns
    // naming it, and stop sends SIGTERM, as docker's stop falls back to it.
    with_stop_signal(&img, "SIGFOO", &bad);
    let name = unique("badsig");
    let o = g(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        &bad,
        "sh",
        "-c",
        TRAPS,
    ]);
    ok(&o);
    assert!(
        stderr(&o).contains("StopSignal \"SIGFOO\" is not a signal"),
        "{}",
        stderr(&o)
    );
    logs_contain(&name, "ready");
    ok(&g(&["stop", "-t", "20", &name]));
    let logs = text(&g(&["logs", &name]).stdout);
    ok(&g(&["rm", &name]));
    assert!(logs.contains("trapped TERM"), "{logs}");
}

/// podman imports a tar of the test rootfs with a file only this image has, pushes it to a local
/// docker-registry; gocker pulls it from there and runs it.
#[test]
fn an_image_podman_pushed_is_pulled_and_run_by_gocker() {
    if !is_root() {
        eprintln!("SKIP: the podman interop tests run as root only (podman's rootless storage is not set up for the test users)");
        return;
    }
    if !have_tool("podman") {
        eprintln!("SKIP: podman is not installed (Debian package podman)");
        return;
    }
    require_tools(&[("docker-registry", "docker-registry")]);
    let id = unique("podman-push");
    let local = format!("localhost/gocker-test/{id}:v1");
    let reg = Registry::start(false);
    let remote = format!("{}/gocker-test/{id}:v1", reg.host());
    struct Podman(Vec<String>);
    impl Drop for Podman {
        fn drop(&mut self) {
            for n in &self.0 {
                let _ = Command::new("podman").args(["rmi", "-f", n]).output();
            }
        }
    }
    let _podman = Podman(vec![local.clone()]);
    let _gocker = Images(vec![remote.clone()]);

    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("extra");
    fs::create_dir_all(extra.join("etc")).unwrap();
    fs::write(
        extra.join("etc/gocker-podman-marker"),
        format!("pushed by podman {id}\n"),
    )
    .unwrap();
    let tar_path = dir.path().join("rootfs.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&tar_path)
        .arg("--numeric-owner")
        .arg("-C")
        .arg(rootfs_path())
        .arg(".")
        .arg("-C")
        .arg(&extra)
        .arg("etc/gocker-podman-marker"));
    run(Command::new("podman")
        .args([
            "import",
            "--change",
            "CMD [\"/bin/sh\"]",
            "--change",
            "ENV PODMAN_PUSHED=yes",
        ])
        .arg(&tar_path)
        .arg(&local));
    let digest_file = dir.path().join("digest");
    run(Command::new("podman")
        .args(["push", "--tls-verify=false", "--digestfile"])
        .arg(&digest_file)
        .args([&local, &remote]));

    let o = ok(&g(&["pull", &remote]));
    assert!(o.trim_end().ends_with(&remote), "{o}");
    let out = ok(&g(&[
        "run",
        "--rm",
        "--network",
        "none",
        &remote,
        "sh",
        "-c",
        "cat /etc/gocker-podman-marker; echo $PODMAN_PUSHED",
    ]));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [format!("pushed by podman {id}").as_str(), "yes"],
        "the marker only this image has, and its config's Env"
    );
    // The same manifest digest on both sides: what podman pushed is what gocker pulled.
    let theirs = fs::read_to_string(&digest_file).unwrap();
    let ours: serde_json::Value =
        serde_json::from_str(&ok(&g(&["image", "inspect", &remote]))).unwrap();
    let repo_digests = ours[0]["RepoDigests"].to_string();
    assert!(
        repo_digests.contains(theirs.trim()),
        "podman {theirs} vs gocker {repo_digests}"
    );
}
