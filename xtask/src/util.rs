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

/// Cargo's target directory for this workspace: what `cargo metadata` says (it honours
/// `CARGO_TARGET_DIR` and `build.target-dir`), else `CARGO_TARGET_DIR`, else `target/`. Asked
/// once per xtask run.
pub fn target_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let env = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty());
        target_dir_with(&workspace(), env.as_deref())
    })
    .clone()
}

/// [`target_dir`] for the workspace `ws` with `CARGO_TARGET_DIR` = `env`.
fn target_dir_with(ws: &Path, env: Option<&std::ffi::OsStr>) -> PathBuf {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(ws)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .env_remove("CARGO_TARGET_DIR")
        .stderr(std::process::Stdio::null());
    if let Some(d) = env {
        cmd.env("CARGO_TARGET_DIR", d);
    }
    cmd.output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| v["target_directory"].as_str().map(PathBuf::from))
        // Relative to the current directory, as cargo takes it.
        .or_else(|| env.map(|d| std::path::absolute(d).unwrap_or_else(|_| ws.join(d))))
        .unwrap_or_else(|| ws.join("target"))
}

/// A binary cargo built: `<target dir>/<profile>/<name>`; an error naming the path when it is
/// not there.
pub fn built(profile: &str, name: &str) -> Result<PathBuf> {
    let p = target_dir().join(profile).join(name);
    if !p.is_file() {
        bail!(
            "{}: not found (cargo's target directory is {}; set by CARGO_TARGET_DIR or build.target-dir)",
            p.display(),
            target_dir().display()
        );
    }
    Ok(p)
}

/// Runs a command, failing with its name and status.
pub fn run(cmd: &mut Command) -> Result<()> {
    let what = format!("{cmd:?}");
    let st = cmd.status().with_context(|| spawn_context(cmd))?;
    if !st.success() {
        bail!("{what} failed: {st}");
    }
    Ok(())
}

/// What a failed spawn says: the program's path (resolved as the spawn would when it has no
/// `/`), then the whole command.
pub fn spawn_context(cmd: &Command) -> String {
    let prog = Path::new(cmd.get_program());
    let path = if prog.components().count() > 1 {
        prog.to_owned()
    } else {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
            .unwrap_or_else(|| prog.to_owned())
    };
    let dir = cmd
        .get_current_dir()
        .map(|d| format!(" in {}", d.display()))
        .unwrap_or_default();
    format!("spawn {} (command {cmd:?}{dir})", path.display())
}

/// Runs a command and returns its stdout.
pub fn output(cmd: &mut Command) -> Result<String> {
    let what = format!("{cmd:?}");
    let out = cmd.output().with_context(|| spawn_context(cmd))?;
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
    let target = target_dir().display().to_string();
    if !target.is_empty() {
        s = s.replace(&target, "target");
    }
    s.replace(&format!("{}/", ws.display()), "")
        .replace(&rootfs.display().to_string(), "$ROOTFS")
        .replace(&tmp.display().to_string(), "$TMP")
}

/// One row per command of hyperfine's JSON export: name, then median, mean, min and max in ms.
pub type Row = (String, f64, f64, f64, f64);

pub fn rows_of(results: &serde_json::Value) -> Result<Vec<Row>> {
    let ms = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN) * 1000.0;
    Ok(results["results"]
        .as_array()
        .context("hyperfine results")?
        .iter()
        .map(|r| {
            (
                r["command"].as_str().unwrap_or("?").to_owned(),
                ms(r, "median"),
                ms(r, "mean"),
                ms(r, "min"),
                ms(r, "max"),
            )
        })
        .collect())
}

/// The median of the row named `name` (NaN when absent).
pub fn median_of(rows: &[Row], name: &str) -> f64 {
    rows.iter()
        .find(|r| r.0 == name)
        .map(|r| r.1)
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_dir_follows_cargo_target_dir() {
        let ws = workspace();
        let elsewhere = std::env::temp_dir().join("gocker-xtask-target-elsewhere");
        assert_eq!(target_dir_with(&ws, Some(elsewhere.as_os_str())), elsewhere);
        // Without it: cargo's own answer (target/ unless a config moves it).
        let default = target_dir_with(&ws, None);
        assert!(
            default.is_absolute() && default != elsewhere,
            "{}",
            default.display()
        );
    }

    #[test]
    fn a_failed_spawn_names_the_path() {
        let mut c = Command::new("/no/such/dir/gocker");
        c.arg("rootfs");
        let e = format!("{:#}", run(&mut c).unwrap_err());
        assert!(
            e.contains("spawn /no/such/dir/gocker") && e.contains("No such file"),
            "{e}"
        );
        let e = format!("{:#}", built("debug", "no-such-binary").unwrap_err());
        assert!(
            e.contains(
                &target_dir()
                    .join("debug/no-such-binary")
                    .display()
                    .to_string()
            ),
            "{e}"
        );
    }
}
