//! Helpers shared by gocker-oci's integration tests (each test file is its own crate and uses a
//! subset: hence the `dead_code` allowance).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The test rootfs (`GOCKER_TEST_ROOTFS`, set by `cargo xtask itest`).
pub fn rootfs() -> String {
    std::env::var("GOCKER_TEST_ROOTFS").expect("set GOCKER_TEST_ROOTFS (run via cargo xtask itest)")
}

/// Asserts success (showing the status and both streams otherwise) and returns stdout.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A private containerd: `config` goes to `dir/config.toml`, its output to `dir/containerd.log`.
/// The caller owns the child (and kills it) before [`wait_for_containerd`].
pub fn spawn_containerd(dir: &Path, config: &str) -> Child {
    std::fs::write(dir.join("config.toml"), config).unwrap();
    let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
    Command::new("containerd")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Waits (at most 20 s) until the containerd of `dir` listens on `dir/containerd.sock`.
pub fn wait_for_containerd(dir: &Path) {
    let t = Instant::now();
    while !dir.join("containerd.sock").exists() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "containerd did not start: {}",
            std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The test rootfs as the image `localhost/gocker-test-busybox:latest` of a containerd: imported
/// into a podman with storage in `dir` (with `cmd` as its default command, when given), saved as
/// an OCI archive, and imported by `ctr` (`ctr` runs the containerd's `ctr` with these arguments).
pub fn import_rootfs_image(dir: &Path, cmd: Option<&str>, ctr: impl Fn(&[&str]) -> Output) {
    let d = dir.display();
    let pm = [
        format!("--root={d}/podman"),
        format!("--runroot={d}/podman-run"),
        "--storage-driver=vfs".into(),
        "--events-backend=none".into(),
    ];
    let mut tar = Command::new("tar")
        .args(["-C", &rootfs(), "-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let change = cmd.map(|c| format!("CMD {c}"));
    let mut import = Command::new("podman");
    import.args(&pm).arg("import");
    if let Some(c) = &change {
        import.args(["--change", c]);
    }
    ok(&import
        .args(["-", "gocker-test-busybox"])
        .stdin(tar.stdout.take().unwrap())
        .output()
        .unwrap());
    assert!(tar.wait().unwrap().success());
    let archive: PathBuf = dir.join("image.tar");
    ok(&Command::new("podman")
        .args(&pm)
        .args(["save", "--format", "oci-archive", "-o"])
        .arg(&archive)
        .arg("gocker-test-busybox")
        .output()
        .unwrap());
    let _ = Command::new("podman")
        .args(&pm)
        .args(["rmi", "-af"])
        .output();
    ok(&ctr(&[
        "image",
        "import",
        "--all-platforms",
        "--snapshotter",
        "native",
        archive.to_str().unwrap(),
    ]));
    let _ = std::fs::remove_file(&archive);
}

/// The containers left in a gocker-oci state root (everything but its `names` directory; none
/// when the root does not exist).
pub fn containers_left(root: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(root)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name())
                .filter(|n| n != "names")
                .collect()
        })
        .unwrap_or_default()
}
