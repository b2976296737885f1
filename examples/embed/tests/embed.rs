//! The embedding example runs a container from a multi-threaded program (exec spawn mode).

use std::process::Command;

#[test]
fn example_runs_a_container() {
    let rootfs = std::env::var_os("GOCKER_TEST_ROOTFS")
        .expect("set GOCKER_TEST_ROOTFS (run via cargo xtask itest)");
    let out = Command::new(env!("CARGO_BIN_EXE_gocker-embed-example"))
        .arg(&rootfs)
        .args(["/bin/sh", "-c", "echo inside $(hostname) pid $$; exit 3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout: {stdout} stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("inside embedded pid 1"), "{stdout}");
    assert!(stdout.contains("container exited with 3"), "{stdout}");
}
