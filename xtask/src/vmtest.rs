//! `cargo xtask vmtest`: boots Debian's kernel under QEMU on a pure cgroup v2 hierarchy with a
//! static gocker and the cgroup tests in an initramfs, and runs the limit scenarios there
//! (xtask/vm/vmtests.sh): OOM kill, pids and CPU limits, stats, cgroup removal, `gocker pause`
//! (a busy loop's CPU time stands still while paused and advances after unpause), `gocker
//! update` (memory.max, pids.max, cpu.max really change), and gocker-oci's cgroup verbs. KVM when
//! it works, else software emulation (TCG).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::dist::TARGET;
use crate::util::{ensure_packages, is_root, output, run, step, workspace};

#[derive(clap::Args)]
pub struct Args {
    /// Skip the KVM attempt and use software emulation.
    #[arg(long)]
    pub tcg: bool,
}

pub struct Outcome {
    pub passed: u64,
    pub failed: u64,
}

pub fn main(a: Args) -> Result<()> {
    let o = run_vm(a.tcg)?;
    println!("{} passed, {} failed", o.passed, o.failed);
    if o.failed > 0 {
        bail!("{} vmtest checks failed", o.failed);
    }
    Ok(())
}

pub fn run_vm(force_tcg: bool) -> Result<Outcome> {
    if !is_root() {
        bail!(
            "cargo xtask vmtest runs as root (it installs QEMU and downloads the kernel package)"
        );
    }
    ensure_packages(&["qemu-system-x86", "cpio", "busybox-static", "musl"])?;
    let ws = workspace();
    let vm = crate::util::target_dir().join("vm");
    std::fs::create_dir_all(&vm)?;
    let kernel = kernel(&vm).context("phase vmtest: kernel")?;

    // gocker and gocker-oci as shipped (cargo xtask dist): static, so the initramfs needs no
    // libraries. The cgroup tests do not use seccomp and are static too.
    step("vmtest: build of static gocker, gocker-oci and the cgroup tests");
    let static_env = [("RUSTFLAGS", "-C target-feature=+crt-static")];
    let shipped = crate::dist::build(&ws)?;
    let tests = output(
        Command::new("cargo")
            .current_dir(&ws)
            .envs(static_env)
            .args([
                "test",
                "--release",
                "-p",
                "gocker-cgroups",
                "--test",
                "real",
                "--no-run",
                "--target",
                TARGET,
                "--message-format=json",
            ]),
    )?;
    let cgtest = tests
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cgroup test binary not found")?;
    let (gocker, gocker_oci) = (&shipped[0], &shipped[1]);

    step("vmtest: initramfs");
    let root = vm.join("initramfs");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("bin"))?;
    let busybox =
        output(Command::new("sh").args(["-c", "dpkg -L busybox-static | grep '/bin/busybox$'"]))?;
    std::fs::copy(busybox.trim(), root.join("bin/busybox"))?;
    std::fs::copy(gocker, root.join("gocker"))?;
    std::fs::copy(gocker_oci, root.join("gocker-oci"))?;
    std::fs::copy(&cgtest, root.join("cgtest"))?;
    // Debian's kernel builds overlayfs as a module, and every `gocker run` has an overlayfs root
    // (docs/storage-roots.md): the guest's init loads it.
    std::fs::copy(overlay_module(&kernel)?, root.join("overlay.ko"))
        .context("copy overlay.ko into the initramfs")?;
    std::fs::copy(ws.join("xtask/vm/init"), root.join("init"))?;
    std::fs::set_permissions(
        root.join("init"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    std::fs::copy(ws.join("xtask/vm/vmtests.sh"), root.join("vmtests.sh"))?;
    crate::rootfs::ensure(Some(root.join("rootfs")), true, true)?;
    let initrd = vm.join("initramfs.cpio.gz");
    run(Command::new("sh").current_dir(&root).arg("-c").arg(format!(
        "find . | cpio -o -H newc --quiet | gzip -1 > {}",
        initrd.display()
    )))?;

    let kvm = !force_tcg && Path::new("/dev/kvm").exists();
    if kvm {
        match boot(&kernel, &initrd, "kvm", Duration::from_secs(20))? {
            Some(o) => return Ok(o),
            None => eprintln!(
                "vmtest: the KVM guest did not boot within 20 s (nested KVM hangs here); using TCG"
            ),
        }
    }
    boot(
        &kernel,
        &initrd,
        "tcg,thread=multi",
        Duration::from_secs(120),
    )?
    .context("the TCG guest did not boot within 120 s")
}

/// Downloads Debian's current `linux-image-*-amd64` package (not installed on the host) and extracts vmlinuz.
fn kernel(vm: &Path) -> Result<PathBuf> {
    let deps = output(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    let pkg = deps
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Depends: ")
                .filter(|p| p.starts_with("linux-image-"))
                .map(str::to_owned)
        })
        .context(
            "apt-cache: linux-image-amd64 has no linux-image dependency (run apt-get update)",
        )?;
    let dir = vm.join(&pkg);
    let found = |dir: &Path| -> Option<PathBuf> {
        // An extraction of an older vmtest has the kernel without its overlay module: again.
        overlay_in(dir)?;
        std::fs::read_dir(dir.join("boot"))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .map(|n| n.to_string_lossy().starts_with("vmlinuz-"))
                    .unwrap_or(false)
            })
    };
    if let Some(k) = found(&dir) {
        return Ok(k);
    }
    step(&format!("vmtest: downloading {pkg}"));
    std::fs::create_dir_all(&dir)?;
    run(Command::new("apt-get")
        .current_dir(&dir)
        .args(["download", "-qq", &pkg]))?;
    run(Command::new("sh").current_dir(&dir).args([
        "-c",
        "dpkg-deb --fsys-tarfile ./*.deb | tar -x --wildcards ./boot './lib/modules/*/kernel/fs/overlayfs/*' && rm -f ./*.deb",
    ]))?;
    found(&dir).context("no vmlinuz, or no overlayfs module, in the kernel package")
}

/// `lib/modules/VERSION/kernel/fs/overlayfs/overlay.ko` of an extracted kernel package.
fn overlay_in(pkg_dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(pkg_dir.join("lib/modules"))
        .ok()?
        .flatten()
        .map(|e| e.path().join("kernel/fs/overlayfs/overlay.ko"))
        .find(|p| p.is_file())
}

/// The overlayfs module beside `kernel` (`<pkg>/boot/vmlinuz-*`).
fn overlay_module(kernel: &Path) -> Result<PathBuf> {
    let pkg = kernel
        .parent()
        .and_then(Path::parent)
        .context("the kernel is not in an extracted package")?;
    overlay_in(pkg).with_context(|| format!("no overlay.ko under {}", pkg.display()))
}

/// Boots the guest; `None` if it did not print its boot marker within `boot_timeout`.
fn boot(
    kernel: &Path,
    initrd: &Path,
    accel: &str,
    boot_timeout: Duration,
) -> Result<Option<Outcome>> {
    step(&format!(
        "vmtest: booting {} with -accel {accel}",
        kernel.display()
    ));
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            "q35",
            "-accel",
            accel,
            "-m",
            "1024",
            "-smp",
            "2",
            "-nographic",
            "-no-reboot",
            "-kernel",
        ])
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet rdinit=/init"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start qemu-system-x86_64")?;
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut booted = false;
    let mut done = None;
    let mut early: Vec<String> = Vec::new();
    let overall = Duration::from_secs(600);
    loop {
        let limit = if booted { overall } else { boot_timeout };
        let left = limit.saturating_sub(start.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let line = line.trim_end_matches('\r').to_owned();
                if line.contains("GOCKER-VM-BOOTED") {
                    booted = true;
                    eprintln!(
                        "vmtest: guest booted after {:.1} s",
                        start.elapsed().as_secs_f64()
                    );
                }
                if booted {
                    println!("{line}");
                } else {
                    early.push(line.clone());
                    if line.contains("Kernel panic") {
                        eprintln!("{}", early[early.len().saturating_sub(15)..].join("\n"));
                        bail!("the guest kernel panicked during boot");
                    }
                }
                if let Some(rest) = line.strip_prefix("VMTEST DONE ") {
                    let num = |k: &str| {
                        rest.split_whitespace()
                            .find_map(|f| f.strip_prefix(k)?.parse::<u64>().ok())
                            .unwrap_or(0)
                    };
                    done = Some(Outcome {
                        passed: num("pass="),
                        failed: num("fail="),
                    });
                }
                if line.contains("VMTEST END") {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    if !booted {
        eprintln!(
            "vmtest: last guest output:\n{}",
            early[early.len().saturating_sub(15)..].join("\n")
        );
        return Ok(None);
    }
    done.map(Some)
        .context("the guest stopped before reporting its results (VMTEST DONE)")
}
