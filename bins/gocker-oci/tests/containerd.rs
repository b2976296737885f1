//! containerd (its runc shim, `containerd-shim-runc-v2`) with gocker-oci as the runc binary, through
//! `ctr --runc-binary` (root phase of `cargo xtask itest`, which installs containerd and podman).
//!
//! A private containerd: config, root, state and socket in a temporary directory; the test image is
//! the test rootfs imported into podman and saved as an OCI archive. `--cpu-shares 0`: `ctr run`
//! asks for cpu.shares 1024 otherwise, and the cpu controller is bound to cgroup v1 on hybrid hosts
//! (gocker-oci refuses a limit it cannot apply).

mod common;
use common::ok;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    dir: PathBuf,
    child: Child,
}

impl Daemon {
    fn ctr(&self, args: &[&str]) -> Output {
        let sock = self.dir.join("containerd.sock");
        Command::new("ctr")
            .arg("-a")
            .arg(&sock)
            .args(["-n", "gocker-test"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        for c in ["c1", "c2"] {
            let _ = self.ctr(&["task", "kill", "-s", "KILL", c]);
            let _ = self.ctr(&["task", "rm", "-f", c]);
            let _ = self.ctr(&["container", "rm", c]);
        }
        let _ = self.ctr(&["image", "rm", "localhost/gocker-test-busybox:latest"]);
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all("/run/containerd/runc/gocker-test");
    }
}

#[test]
fn containerd_runc_shim_with_gocker_oci() {
    if std::env::var("GOCKER_TEST_MODE").as_deref() != Ok("root") {
        eprintln!("containerd test: root phase only");
        return;
    }
    let dir = std::env::temp_dir().join(format!("gocker-containerd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let child = common::spawn_containerd(
        &dir,
        &format!("version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n[grpc]\n  address = \"{d}/containerd.sock\"\n"),
    );
    let daemon = Daemon {
        dir: dir.clone(),
        child,
    };
    common::wait_for_containerd(&dir);

    // The image: the test rootfs through podman (isolated storage) as an OCI archive.
    common::import_rootfs_image(&dir, None, |a| daemon.ctr(a));

    let bin = env!("CARGO_BIN_EXE_gocker-oci");
    let run = [
        "run",
        "--cpu-shares",
        "0",
        "--snapshotter",
        "native",
        "--runc-binary",
        bin,
    ];
    // run --rm: output and root.
    let mut a = vec![run[0], "--rm"];
    a.extend(&run[1..]);
    a.extend([
        "localhost/gocker-test-busybox:latest",
        "c1",
        "sh",
        "-c",
        "echo ok-from-containerd; id -u",
    ]);
    assert_eq!(ok(&daemon.ctr(&a)), "ok-from-containerd\n0\n");

    // run -d, task exec (exit status), ps, kill (SIGTERM reaches the trap), rm.
    let mut a = vec![run[0], "-d"];
    a.extend(&run[1..]);
    a.extend([
        "localhost/gocker-test-busybox:latest",
        "c2",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 0.1; done",
    ]);
    ok(&daemon.ctr(&a));
    let o = daemon.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "c2",
        "sh",
        "-c",
        "echo in-exec; exit 4",
    ]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "in-exec\n");
    let ps = ok(&daemon.ctr(&["task", "ps", "c2"]));
    assert!(ps.lines().count() >= 2, "{ps}");
    ok(&daemon.ctr(&["task", "kill", "c2"]));
    let t = Instant::now();
    loop {
        let ls = ok(&daemon.ctr(&["task", "ls"]));
        if ls
            .lines()
            .any(|l| l.starts_with("c2") && l.contains("STOPPED"))
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "c2 did not stop: {ls}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ok(&daemon.ctr(&["task", "rm", "c2"]));
    ok(&daemon.ctr(&["container", "rm", "c2"]));
    let left = common::containers_left(Path::new("/run/containerd/runc/gocker-test"));
    assert!(left.is_empty(), "left in gocker-oci's state root: {left:?}");
    drop(daemon);
}
