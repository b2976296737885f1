//! ring0 runs an OCI bundle through the separately executed ring1 and ring2 binaries (exec mode).
//! Needs GOCKER_TEST_ROOTFS (set by `cargo xtask itest`) and the ring1/ring2 binaries built beside ring0.

use std::path::{Path, PathBuf};
use std::process::Command;

fn rootfs() -> PathBuf {
    PathBuf::from(
        std::env::var_os("GOCKER_TEST_ROOTFS")
            .expect("set GOCKER_TEST_ROOTFS (run via cargo xtask itest)"),
    )
}

fn ring0() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_ring0"));
    for sibling in ["ring1", "ring2"] {
        assert!(
            p.with_file_name(sibling).exists(),
            "{sibling} is not built beside {} (cargo build --workspace)",
            p.display()
        );
    }
    p
}

fn bundle(dir: &Path, args: &[&str]) {
    let spec =
        gocker_runtime::spec::default_spec(rootfs(), args.iter().map(|s| s.to_string()).collect())
            .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    spec.save(dir.join("config.json")).unwrap();
}

#[test]
fn bundle_runs_through_exec_mode_rings() {
    let dir = std::env::temp_dir().join(format!("gocker-ring0-test-{}", std::process::id()));
    // The payload reports its pid, its uid map and the name of its parent's executable is not
    // visible (ring1 lives outside the PID namespace).
    bundle(
        &dir,
        &[
            "/bin/sh",
            "-c",
            "echo pid=$$; head -n1 /proc/self/uid_map; exit 9",
        ],
    );
    let out = Command::new(ring0()).arg(&dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(9),
        "stdout: {stdout} stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("pid=1\n"), "{stdout}");
    let map: Vec<u64> = stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(map[0], 0);
    assert_ne!(map[1], 0, "container root must not be host root: {stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn malformed_bundle_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("gocker-ring0-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    let out = Command::new(ring0()).arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ring1_run_by_hand_explains_itself() {
    let out = Command::new(ring0().with_file_name("ring1"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("executed by ring0"));
}
