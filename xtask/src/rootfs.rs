//! `cargo xtask rootfs`: the Alpine rootfs for tests, built by `gocker rootfs build` (the builder
//! lives in the CLI so that users get it too). xtask adds what only a test machine may do: install
//! the Debian packages the offline path needs.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::util::{ensure_packages, is_root, run, workspace};

#[derive(clap::Args)]
pub struct Args {
    /// Where to build it (default: the rootfs store of `gocker rootfs`, where `gocker run` looks).
    #[arg(long)]
    pub dest: Option<PathBuf>,
    /// Skip the download and build the busybox+musl rootfs (also: GOCKER_ROOTFS_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Rebuild even when the rootfs is already there.
    #[arg(long)]
    pub force: bool,
}

pub fn main(a: Args) -> Result<()> {
    let path = ensure(a.dest, a.offline, a.force)?;
    println!("{}", path.display());
    Ok(())
}

/// Builds the rootfs unless present; returns its path.
pub fn ensure(dest: Option<PathBuf>, offline: bool, force: bool) -> Result<PathBuf> {
    if is_root() {
        // The offline path (and the fallback when the download fails) needs these.
        ensure_packages(&["busybox-static", "musl"])?;
    }
    let ws = workspace();
    run(Command::new("cargo")
        .current_dir(&ws)
        .args(["build", "-q", "-p", "gocker-cli"]))?;
    let gocker = crate::util::built("debug", "gocker")?;
    let mut cmd = Command::new(&gocker);
    cmd.args(["rootfs", "build"]);
    if let Some(d) = &dest {
        cmd.arg("--dest").arg(d);
    }
    if offline {
        cmd.arg("--offline");
    }
    if force {
        cmd.arg("--force");
    }
    // Progress goes to stderr (shown); the path comes on stdout.
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| crate::util::spawn_context(&cmd))?;
    if !out.status.success() {
        anyhow::bail!("{} rootfs build failed: {}", gocker.display(), out.status);
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}
