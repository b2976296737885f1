//! `cargo xtask itest`: build, provision the rootfs, and run the unit and integration tests as root,
//! then (still as root) the OCI runtime-tools validation suite against runc and gocker-oci
//! (`cargo xtask conformance`),
//! then the integration tests again as two unprivileged users: `gocker-sub` (with an /etc/subuid and
//! /etc/subgid range, so newuidmap/newgidmap are used) and `gocker-nosub` (no range: single-id map),
//! and finally the cgroup v2 scenarios in a QEMU guest (`cargo xtask vmtest`).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::util::{ensure_packages, is_root, output, run, step, target_dir, workspace};

/// The Debian packages itest installs (apt-get, when missing).
const PACKAGES: &[&str] = &[
    "busybox-static",
    "musl",
    "uidmap",
    "libseccomp2",
    "gcc",
    "libc6-dev",
    "iproute2",
    "nftables",
    "slirp4netns",
    "passt",
    // redis-server: the valkey store backend tests of gocker-workspaced (the same protocol).
    "redis-server",
    // runsc: the gvisor provider tests of gocker-workspaced (Debian's runsc: ptrace/kvm only).
    "runsc",
    // python3-venv, python3-pip: the MCP test of gocker-workspaced installs the official `mcp`
    // Python SDK (PyPI) into a venv of its own.
    "python3-venv",
    "python3-pip",
    "podman",
    "containernetworking-plugins",
    "containerd",
    "protobuf-compiler",
    // gocker-storage: its registry tests (and the CLI's image tests) run Debian's
    // docker-registry on 127.0.0.1, push with skopeo, and make an htpasswd file and a
    // self-signed CA.
    "docker-registry",
    "skopeo",
    "apache2-utils",
    "openssl",
];

/// `cargo xtask itest --help`: what the suite changes on this machine, from the lists it uses.
pub fn long_about() -> String {
    let users: Vec<String> = USERS
        .iter()
        .map(|(u, _, range)| match range {
            Some(start) => {
                format!("{u} (its /etc/subuid and /etc/subgid range set to {start}:65536)")
            }
            None => format!("{u} (its /etc/subuid and /etc/subgid lines removed: single-id map)"),
        })
        .collect();
    format!(
        "Build everything and run the unit and integration tests, as root and as unprivileged users.\n\n\
         Runs as root, and changes this machine:\n\
         - installs the missing Debian packages among: {}\n\
         - builds the Alpine rootfs (`gocker rootfs build`, in /var/lib/gocker/rootfs/alpine; GOCKER_ITEST_ROOTFS=DIR for a private one)\n\
         - creates the test users (useradd -m) {}, and /run/user/UID for each\n\
         - rewrites /etc/subuid and /etc/subgid for those users (other users' lines are kept)\n\
         - grants o+x on the directories above cargo's target directory, so the test users reach the binaries\n\
         - sets /dev/net/tun to 0666 while the tests run (its mode is put back at the end)\n\n\
         Phases: root (cargo test --workspace), the OCI validation suite (when present beside the checkout), \
         each test binary as every test user (setpriv), then the cgroup v2 scenarios in a QEMU guest \
         (cargo xtask vmtest). Binaries are found in cargo's target directory (CARGO_TARGET_DIR, build.target-dir).",
        PACKAGES.join(" "),
        users.join(" and ")
    )
}

#[derive(clap::Args)]
pub struct Args {
    /// Skip the unprivileged-user phases.
    #[arg(long)]
    pub no_rootless: bool,
    /// Skip the cgroup v2 phase in a QEMU guest (cargo xtask vmtest).
    #[arg(long)]
    pub no_vm: bool,
    /// Skip the OCI validation suite phase (cargo xtask conformance).
    #[arg(long)]
    pub no_conformance: bool,
}

const USERS: [(&str, &str, Option<u32>); 2] = [
    ("gocker-sub", "rootless-subuid", Some(600_000)),
    ("gocker-nosub", "rootless-single", None),
];

#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    failures: Vec<String>,
}

impl Tally {
    fn absorb(&mut self, phase: &str, line: &str) {
        // libtest: "test result: ok. 12 passed; 0 failed; 0 ignored; ..."
        if let Some(rest) = line.trim().strip_prefix("test result: ") {
            let num = |word: &str| {
                rest.split(';')
                    .find_map(|p| {
                        p.trim()
                            .strip_suffix(word)
                            .and_then(|n| n.trim().rsplit(' ').next()?.parse::<u64>().ok())
                    })
                    .unwrap_or(0)
            };
            self.passed += num(" passed");
            let f = num(" failed");
            self.failed += f;
            if f > 0 {
                self.failures.push(phase.to_owned());
            }
        }
    }
}

/// Runs `cmd`, echoing its output, and adds its libtest summaries to the tally.
fn run_tests(phase: &str, cmd: &mut Command, tally: &mut Tally) -> Result<bool> {
    step(phase);
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("{phase}: spawn {cmd:?}"))?;
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        tally.absorb(phase, &line);
    }
    let st = child.wait()?;
    if !st.success() {
        eprintln!("==> {phase}: FAILED ({st})");
        if !tally.failures.iter().any(|f| f == phase) {
            tally.failures.push(phase.to_owned());
        }
    }
    Ok(st.success())
}

pub fn main(a: Args) -> Result<()> {
    if !is_root() {
        bail!("cargo xtask itest runs as root: it tests rootful mode and creates the unprivileged test users");
    }
    let ws = workspace();
    // libseccomp2: the runtime library gocker links (never libseccomp-dev: see docs/seccomp.md);
    // gcc + libc6-dev: the static syscall helper of the seccomp tests.
    // podman, containerd: the gocker-oci tests drive them (--runtime; ctr --runc-binary); ~15 s and ~6 s to install.
    // containernetworking-plugins: podman's bridge on Debian 12 (CNI), named so that apt does not pick netavark.
    // protobuf-compiler: protoc, which k8s-cri (the CRI client of gocker-oci's cri test) runs at build time.
    ensure_packages(PACKAGES)?;

    step("build: cargo build --workspace --all-targets");
    run(Command::new("cargo")
        .current_dir(&ws)
        .args(["build", "--workspace", "--all-targets"]))?;
    // GOCKER_ITEST_ROOTFS=DIR: a private test rootfs (built there if missing), so that concurrent
    // runs on a shared host (which rebuild or write into /var/lib/gocker/rootfs/alpine) cannot
    // interfere. It must be reachable by the unprivileged test users (e.g. under /var/tmp).
    let rootfs = crate::rootfs::ensure(
        std::env::var_os("GOCKER_ITEST_ROOTFS").map(PathBuf::from),
        false,
        false,
    )
    .context("phase rootfs")?;
    let gocker = crate::util::built("debug", "gocker")?;
    // The users exist before the root phase: some root tests run gocker as gocker-sub (setpriv),
    // e.g. with /dev/net/tun at a mode only root can set.
    let mut users = Vec::new();
    for (user, mode, range) in USERS {
        let (uid, gid) = ensure_user(user, range)?;
        let runtime_dir = PathBuf::from(format!("/run/user/{uid}"));
        if !runtime_dir.exists() {
            std::fs::create_dir_all(&runtime_dir)?;
            run(Command::new("chown")
                .arg(format!("{uid}:{gid}"))
                .arg(&runtime_dir))?;
            std::fs::set_permissions(&runtime_dir, std::fs::Permissions::from_mode(0o700))?;
        }
        users.push((user, mode, uid, gid, runtime_dir));
    }
    open_traversal(&target_dir())?;
    // Distributions ship /dev/net/tun 0666 (rootless slirp4netns/pasta and a container's own
    // NET_ADMIN open it); some VM images have 0600. The suite runs against the distribution's
    // mode, and puts the host's back when it ends.
    let _tun = TunMode::distribution_default()?;

    let mut tally = Tally::default();
    run_tests(
        "phase root: cargo test --workspace",
        Command::new("cargo")
            .current_dir(&ws)
            // --no-fail-fast: one failing test binary must not hide the others' results.
            .args([
                "test",
                "--workspace",
                "--no-fail-fast",
                "--",
                "--test-threads",
                "4",
            ])
            .env("GOCKER_TEST_ROOTFS", &rootfs)
            .env("GOCKER_BIN", &gocker)
            .env("GOCKER_TEST_MODE", "root"),
        &mut tally,
    )?;

    let suite = crate::conformance::suite_path();
    if !a.no_conformance && !suite.is_file() {
        // The suite is third-party source kept beside the repository, not in it: a machine
        // without it cannot run the phase, and says so.
        eprintln!(
            "==> phase conformance: SKIPPED: {} is not on this machine (set GOCKER_TEST_SUITES)",
            suite.display()
        );
    } else if !a.no_conformance {
        // Root only (itest runs as root): the suite creates containers with runc and gocker-oci.
        // It fails when gocker-oci falls short of runc outside the allowed files.
        match crate::conformance::run_suite(
            &crate::conformance::Args::default(),
            &crate::util::built("debug", "gocker-oci")?,
        ) {
            Ok(c) if c.ok() => {}
            Ok(c) => {
                eprintln!("==> phase conformance: FAILED: {}", c.shortfall());
                tally.failures.push("conformance".into());
            }
            Err(e) => {
                eprintln!("==> phase conformance: FAILED: {e:#}");
                tally.failures.push("conformance".into());
            }
        }
    }

    if !a.no_rootless {
        let bins = integration_test_binaries(&ws)?;
        for (user, mode, uid, gid, runtime_dir) in &users {
            for bin in &bins {
                let name = bin
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                run_tests(
                    &format!("phase {mode} (user {user}, uid {uid}): {name}"),
                    Command::new("setpriv")
                        .args([
                            "--reuid",
                            &uid.to_string(),
                            "--regid",
                            &gid.to_string(),
                            "--init-groups",
                            "--reset-env",
                        ])
                        .arg("env")
                        .arg(format!("HOME=/home/{user}"))
                        .arg(format!("XDG_RUNTIME_DIR={}", runtime_dir.display()))
                        .arg(format!("GOCKER_TEST_ROOTFS={}", rootfs.display()))
                        .arg(format!("GOCKER_BIN={}", gocker.display()))
                        .arg(format!("GOCKER_TEST_MODE={mode}"))
                        .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
                        .arg(bin)
                        .args(["--test-threads", "4"])
                        .current_dir("/tmp"),
                    &mut tally,
                )?;
            }
        }
    }

    if !a.no_vm {
        step("phase vmtest: cgroup v2 limits in a QEMU guest");
        match crate::vmtest::run_vm(false) {
            Ok(o) => {
                tally.passed += o.passed;
                tally.failed += o.failed;
                if o.failed > 0 {
                    tally.failures.push("vmtest".into());
                }
            }
            Err(e) => {
                eprintln!("==> phase vmtest: FAILED: {e:#}");
                tally.failures.push("vmtest".into());
            }
        }
    }

    println!("{} passed, {} failed", tally.passed, tally.failed);
    if !tally.failures.is_empty() {
        bail!("failed phases: {}", tally.failures.join("; "));
    }
    Ok(())
}

/// `/dev/net/tun` at 0666 for the duration of the suite; the previous mode is restored on drop.
struct TunMode(Option<u32>);

impl TunMode {
    const PATH: &'static str = "/dev/net/tun";

    fn distribution_default() -> Result<TunMode> {
        let Ok(meta) = std::fs::metadata(Self::PATH) else {
            eprintln!("  no {}: the rootless network tests will fail", Self::PATH);
            return Ok(TunMode(None));
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o666 == 0o666 {
            return Ok(TunMode(None));
        }
        eprintln!(
            "  {} is {mode:o} here; 0666 (as distributions ship it) while the tests run",
            Self::PATH
        );
        std::fs::set_permissions(Self::PATH, std::fs::Permissions::from_mode(0o666))
            .with_context(|| format!("chmod 0666 {}", Self::PATH))?;
        Ok(TunMode(Some(mode)))
    }
}

impl Drop for TunMode {
    fn drop(&mut self) {
        if let Some(mode) = self.0 {
            let _ = std::fs::set_permissions(Self::PATH, std::fs::Permissions::from_mode(mode));
            eprintln!("  {} back to {mode:o}", Self::PATH);
        }
    }
}

/// The integration test executables of the workspace (kind "test"), already built.
fn integration_test_binaries(ws: &Path) -> Result<Vec<PathBuf>> {
    let out = output(Command::new("cargo").current_dir(ws).args([
        "test",
        "--workspace",
        "--no-run",
        "--message-format=json",
    ]))?;
    let mut v = Vec::new();
    for line in out.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_test = msg["target"]["kind"]
            .as_array()
            .map(|k| k.iter().any(|x| x == "test"))
            .unwrap_or(false);
        // gocker-storage's own tests drive the library as root (ownership, device nodes,
        // trusted.* xattrs) and its unprivileged path inside the root phase (UnpackOptions
        // { rootless }, and a re-exec of the unpacker as uid 65534: tests/unpack.rs); the CLI's
        // image tests run the store and the registry client in the user phases for real.
        let storage = msg["package_id"]
            .as_str()
            .is_some_and(|p| p.contains("gocker-storage"));
        if let (true, false, Some(exe)) = (is_test, storage, msg["executable"].as_str()) {
            v.push(PathBuf::from(exe));
        }
    }
    if v.is_empty() {
        bail!("no integration test binaries found");
    }
    Ok(v)
}

/// Creates the test user if needed and makes its subordinate ranges match `range`
/// (`None`: no range at all, which `useradd` would otherwise add).
pub(crate) fn ensure_user(user: &str, range: Option<u32>) -> Result<(u32, u32)> {
    if Command::new("id")
        .arg(user)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?
        .success()
    {
    } else {
        step(&format!("creating test user {user}"));
        run(Command::new("useradd").args(["-m", "-s", "/bin/sh", user]))?;
    }
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with(&format!("{user}:")))
            .map(str::to_owned)
            .collect();
        if let Some(start) = range {
            lines.push(format!("{user}:{start}:65536"));
        }
        let new = lines.join("\n") + "\n";
        if new != text {
            std::fs::write(file, new).with_context(|| format!("write {file}"))?;
        }
    }
    let uid: u32 = output(Command::new("id").args(["-u", user]))?
        .trim()
        .parse()?;
    let gid: u32 = output(Command::new("id").args(["-g", user]))?
        .trim()
        .parse()?;
    Ok((uid, gid))
}

/// The unprivileged users must reach target/: add o+x to every ancestor that lacks it.
fn open_traversal(target: &Path) -> Result<()> {
    for dir in target.ancestors() {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        let mode = meta.permissions().mode();
        if mode & 0o001 == 0 {
            eprintln!(
                "  granting o+x on {} so the test users can reach the binaries",
                dir.display()
            );
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o001))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod help_tests {
    use super::*;

    #[test]
    fn help_says_what_itest_changes_on_this_machine() {
        let h = long_about();
        for p in PACKAGES {
            assert!(h.contains(p), "{p} not in {h}");
        }
        for (u, _, _) in USERS {
            assert!(h.contains(u), "{u} not in {h}");
        }
        assert!(h.contains("rewrites /etc/subuid and /etc/subgid"), "{h}");
        assert!(h.contains("useradd"), "{h}");
    }
}
