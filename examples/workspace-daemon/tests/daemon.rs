//! The workspace daemon example starts a workspace whose supervisor is PID 1 and can lift.

use std::process::Command;

#[test]
fn daemon_starts_a_workspace_with_its_supervisor() {
    let rootfs = std::env::var_os("GOCKER_TEST_ROOTFS")
        .expect("set GOCKER_TEST_ROOTFS (run via cargo xtask itest)");
    let out = Command::new(env!("CARGO_BIN_EXE_gocker-workspace-daemon"))
        .arg(&rootfs)
        .args(["/bin/sh", "-c", "echo supervisor-pid=$$ host=$(hostname); /.gocker/lift grep CapEff /proc/self/status; exit 6"])
        .env_remove("GOCKER_WORKSPACE_BINDS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(6),
        "stdout: {stdout} stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("supervisor-pid=1 host=workspace"),
        "{stdout}"
    );
    assert!(
        stdout.contains("CapEff:\t000001ffffffffff")
            || stdout.contains("CapEff:\t000003ffffffffff"),
        "lift from the supervisor: {stdout}"
    );
    assert!(
        stdout.contains(": running") && stdout.contains("exited with 6"),
        "{stdout}"
    );
}
