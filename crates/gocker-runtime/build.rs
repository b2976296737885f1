//! Builds the `lift` client (bins/lift) as a fully static binary and leaves it in OUT_DIR for
//! `include_bytes!`: containers may have no glibc (the test rootfs is busybox + musl), and
//! `cargo run -p gocker-cli` must work without any other package built first.
//!
//! A nested `cargo build -p lift --release` with `-C target-feature=+crt-static`, for the same
//! target as this build, into its own target directory under OUT_DIR (so it never waits for the
//! outer build's lock). Variables of the outer build that would leak into it are removed.
//! `GOCKER_LIFT_BINARY=PATH` skips the nested build and embeds a prebuilt static binary instead.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let ws = manifest
        .parent()
        .and_then(Path::parent)
        .expect("crates/gocker-runtime is two levels below the workspace");
    let lift_dir = ws.join("bins/lift");
    println!("cargo:rerun-if-changed={}", lift_dir.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        lift_dir.join("Cargo.toml").display()
    );
    println!("cargo:rerun-if-env-changed=GOCKER_LIFT_BINARY");
    let dest = out.join("lift");

    if let Some(p) = std::env::var_os("GOCKER_LIFT_BINARY") {
        std::fs::copy(&p, &dest)
            .unwrap_or_else(|e| panic!("GOCKER_LIFT_BINARY={}: {e}", PathBuf::from(&p).display()));
        return;
    }

    let target = std::env::var("TARGET").expect("TARGET");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = out.join("lift-target");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(ws)
        .args([
            "build",
            "--offline",
            "--release",
            "-p",
            "lift",
            "--target",
            &target,
            "--target-dir",
        ])
        .arg(&target_dir)
        .arg("--manifest-path")
        .arg(ws.join("Cargo.toml"));
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "CARGO_PROFILE_RELEASE_LTO",
    ] {
        cmd.env_remove(var);
    }
    cmd.env(
        "RUSTFLAGS",
        "-C target-feature=+crt-static -C strip=symbols",
    );
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("spawn the nested cargo build of bins/lift: {e}"));
    if !status.success() {
        panic!(
            "nested `cargo build -p lift --release --target {target}` (static) failed: {status}"
        );
    }
    let built = target_dir.join(&target).join("release/lift");
    std::fs::copy(&built, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", built.display()));
}
