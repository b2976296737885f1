use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub fn step(msg: &str) {
    eprintln!("==> {msg}");
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// The workspace root (the parent of xtask/).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_owned()
}

/// Runs a command, failing with its name and status.
pub fn run(cmd: &mut Command) -> Result<()> {
    let what = format!("{cmd:?}");
    let st = cmd.status().with_context(|| format!("spawn {what}"))?;
    if !st.success() {
        bail!("{what} failed: {st}");
    }
    Ok(())
}

/// Runs a command and returns its stdout.
pub fn output(cmd: &mut Command) -> Result<String> {
    let what = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("spawn {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Installs the Debian packages that are not installed yet (root only; otherwise names them).
pub fn ensure_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages: {} (install them as root)",
            missing.join(" ")
        );
    }
    step(&format!("installing {}", missing.join(" ")));
    let install = || {
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))
    };
    install().or_else(|_| {
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        install()
    })
}

pub(crate) fn version(cmd: &[&str]) -> String {
    output(Command::new(cmd[0]).args(&cmd[1..]))
        .map(|s| s.lines().next().unwrap_or("").trim().to_owned())
        .unwrap_or_default()
}

pub(crate) fn cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .map(|m| {
            format!(
                "{m} × {}",
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            )
        })
        .unwrap_or_default()
}

pub(crate) fn today() -> String {
    output(Command::new("date").args(["-u", "+%Y-%m-%d"]))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Replaces (or appends) the section `name` of a markdown file, delimited by HTML comments, so each
/// benchmark owns its part of docs/benchmarks.md.
pub fn replace_section(file: &Path, name: &str, title: &str, body: &str) -> Result<()> {
    let begin = format!("<!-- bench:{name}:begin -->");
    let end = format!("<!-- bench:{name}:end -->");
    let section = format!("{begin}\n## {title}\n\n{body}{end}");
    let text = std::fs::read_to_string(file).unwrap_or_else(|_| {
        "# Benchmarks\n\nEvery figure here is produced by `cargo xtask bench` on the machine named in its section; \
         peers are measured in the same run.\n"
            .to_owned()
    });
    let new = match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if e > b => format!("{}{section}{}", &text[..b], &text[e + end.len()..]),
        _ => format!("{}\n{section}\n", text.trim_end()),
    };
    std::fs::write(file, new).with_context(|| format!("write {}", file.display()))
}

/// A command as docs/benchmarks.md shows it: the checkout, the rootfs and the scratch directory
/// as variables, not this machine's paths.
pub(crate) fn shown(
    cmd: &str,
    ws: &Path,
    rootfs: &Path,
    tmp: &Path,
    baseline: Option<&Path>,
) -> String {
    let mut s = cmd.to_owned();
    if let Some(b) = baseline {
        s = s.replace(&b.display().to_string(), "$BASELINE");
    }
    s.replace(&format!("{}/", ws.display()), "")
        .replace(&rootfs.display().to_string(), "$ROOTFS")
        .replace(&tmp.display().to_string(), "$TMP")
}
