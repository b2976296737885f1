//! `cargo xtask bench`: start latency of `gocker run` against `runc run` and `bwrap` on the same
//! rootfs, side by side in one hyperfine run; the table goes into docs/benchmarks.md.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::util::{
    cpu, ensure_packages, is_root, median_of, replace_section, rows_of, run, shown, step, today,
    version, workspace, Row,
};

#[derive(clap::Args)]
pub struct Args {
    /// Runs per command.
    #[arg(long, default_value_t = 200)]
    pub runs: u32,
    /// Only one part: `start` (start latency vs runc and bwrap) or `net` (network throughput and
    /// per-mode start latency).
    /// `oci`: youki's benchmark, create + start + delete -f with gocker-oci and runc.
    /// `images`: pull + unpack against podman's from one local registry, and runs on an image
    /// against runs on the same tree as --rootfs.
    /// `workspace`: gocker-workspaced's sessions and tool calls against bare gocker run/exec.
    #[arg(long, value_parser = ["start", "net", "oci", "exec", "images", "workspace"])]
    pub only: Option<String>,
    /// A gocker binary of another build (e.g. the previous main's, release), measured beside this
    /// one as `gocker-baseline` in the start and exec latency runs: what a change costs.
    #[arg(long, value_name = "BIN")]
    pub baseline: Option<PathBuf>,
}

pub fn main(a: Args) -> Result<()> {
    if !is_root() {
        bail!("cargo xtask bench runs as root (runc needs it for a like-for-like comparison)");
    }
    ensure_packages(&["hyperfine", "runc", "bubblewrap", "busybox-static", "musl"])?;
    let ws = workspace();
    // The binaries as shipped (cargo xtask dist): static PIEs.
    let built = crate::dist::build(&ws)?;
    let (gocker, oci) = (built[0].clone(), built[1].clone());
    let rootfs = crate::rootfs::ensure(None, false, false)?;
    if a.only.as_deref() == Some("oci") {
        return oci_lifecycle(&ws, &oci, &rootfs, a.runs);
    }
    if a.only.as_deref() == Some("exec") {
        return exec_latency(&ws, &gocker, a.baseline.as_deref(), &rootfs, a.runs);
    }
    if a.only.as_deref() == Some("images") {
        return crate::imagebench::main(&ws, &gocker, &rootfs, a.runs.min(100));
    }
    if a.only.as_deref() == Some("workspace") {
        return crate::wsbench::main(&ws, &gocker, &rootfs, a.runs.min(200));
    }
    if a.only.as_deref() == Some("net") {
        return crate::netbench::main(&ws, &gocker, &rootfs, a.runs.min(100));
    }

    let tmp = std::env::temp_dir().join(format!("gocker-bench-{}", std::process::id()));
    let bundle = tmp.join("bundle");
    runc_bundle(&bundle, &rootfs)?;
    let runc_root = tmp.join("runc-state");

    let r = rootfs.display();
    let mut commands = vec![
        ("gocker", format!("{} run --rm --network none --rootfs {r} /bin/true", gocker.display())),
        ("gocker-exec-mode", format!("env GOCKER_SPAWN=exec {} run --rm --network none --rootfs {r} /bin/true", gocker.display())),
        ("runc", format!("runc --root {} run --bundle {} bench-$$", runc_root.display(), bundle.display())),
        ("bwrap", format!("bwrap --unshare-all --die-with-parent --bind {r} / --proc /proc --dev /dev /bin/true")),
    ];
    if let Some(b) = &a.baseline {
        commands.insert(
            1,
            (
                "gocker-baseline",
                format!(
                    "{} run --rm --network none --rootfs {r} /bin/true",
                    b.display()
                ),
            ),
        );
    }
    let rows = hyperfine(&commands, a.runs, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    let rows = rows?;
    let median = |n: &str| median_of(&rows, n);
    let (g, rc, bw) = (median("gocker"), median("runc"), median("bwrap"));
    let mut body = String::new();
    body += &format!("Measured {} with `cargo xtask bench` ({} runs each after 10 warm-ups, one hyperfine run).\n\n", today(), a.runs);
    body += &format!(
        "Host: kernel {}, {}; {}, {}, {}.\n\n",
        version(&["uname", "-r"]),
        cpu(),
        version(&["runc", "--version"]),
        version(&["bwrap", "--version"]),
        version(&["hyperfine", "--version"])
    );
    body += "Commands (same rootfs, as root, no network):\n\n";
    for (name, cmd) in &commands {
        body += &format!(
            "- {name}: `{}`\n",
            shown(cmd, &ws, &rootfs, &tmp, a.baseline.as_deref())
        );
    }
    if a.baseline.is_some() {
        body += "\n`gocker-baseline` is the binary given with `--baseline BIN` (`$BASELINE`, another build), measured in the same run.\n";
    }
    body += "\n`gocker-exec-mode` is the same run with the rings re-executed as binaries (the spawn mode for \
             multi-threaded embedders, see docs/architecture.md); it is not part of the targets.\n";
    body += "\n| tool | median ms | mean ms | min ms | max ms | gocker median ÷ this |\n|---|---|---|---|---|---|\n";
    for (name, med, mean, min, max) in &rows {
        body += &format!(
            "| {name} | {med:.2} | {mean:.2} | {min:.2} | {max:.2} | {:.2} |\n",
            g / med
        );
    }
    let pass = |ok: bool| if ok { "PASS" } else { "FAIL" };
    body += &format!(
        "\nTargets (issue 14): gocker median ≤ 0.25× runc's: {:.2}× — {}; ≤ 1.5× bubblewrap's: {:.2}× — {}.\n",
        g / rc,
        pass(g / rc <= 0.25),
        g / bw,
        pass(g / bw <= 1.5)
    );
    replace_section(
        &ws.join("docs/benchmarks.md"),
        "start-latency",
        "Start latency: `run --rm /bin/true`",
        &body,
    )?;
    print!("{body}");
    if a.only.is_none() {
        crate::netbench::main(&ws, &gocker, &rootfs, a.runs.min(100))?;
        oci_lifecycle(&ws, &oci, &rootfs, a.runs)?;
        exec_latency(&ws, &gocker, a.baseline.as_deref(), &rootfs, a.runs)?;
    }
    Ok(())
}

/// youki's benchmark: `create` + `start` + `delete -f` of a busybox bundle, gocker-oci against
/// runc, in one hyperfine run (same bundle: runc's default config.json running /bin/true).
fn oci_lifecycle(ws: &Path, oci: &Path, rootfs: &Path, runs: u32) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("gocker-ocibench-{}", std::process::id()));
    let bundle = tmp.join("bundle");
    runc_bundle(&bundle, rootfs)?;
    let life = |bin: &str, root: &Path| {
        let r = format!("{bin} --root {}", root.display());
        format!(
            "{r} create --bundle {b} bench-$$ && {r} start bench-$$ && {r} delete -f bench-$$",
            b = bundle.display()
        )
    };
    let commands = [
        (
            "gocker-oci",
            life(&oci.display().to_string(), &tmp.join("gocker-oci-state")),
        ),
        ("runc", life("runc", &tmp.join("runc-state"))),
    ];
    let rows = hyperfine(&commands, runs, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    let rows = rows?;
    let median = |n: &str| median_of(&rows, n);
    let (g, rc) = (median("gocker-oci"), median("runc"));
    let mut body = String::new();
    body += &format!("Measured {} with `cargo xtask bench --only oci` ({runs} runs each after 10 warm-ups, one hyperfine run).\n\n", today());
    body += &format!(
        "Host: kernel {}, {}; {}, {}.\n\n",
        version(&["uname", "-r"]),
        cpu(),
        version(&["runc", "--version"]),
        version(&["hyperfine", "--version"])
    );
    body += "youki's benchmark: create + start + delete -f of the same bundle (runc's default config.json, `/bin/true`, as root):\n\n";
    for (name, cmd) in &commands {
        body += &format!("- {name}: `{}`\n", shown(cmd, ws, rootfs, &tmp, None));
    }
    body += "\n| runtime | median ms | mean ms | min ms | max ms |\n|---|---|---|---|---|\n";
    for (name, med, mean, min, max) in &rows {
        body += &format!("| {name} | {med:.2} | {mean:.2} | {min:.2} | {max:.2} |\n");
    }
    body += &format!(
        "\nTarget: gocker-oci median ≤ 0.3× runc's: {:.2}× — {}.\n",
        g / rc,
        if g / rc <= 0.3 { "PASS" } else { "FAIL" }
    );
    replace_section(
        &ws.join("docs/benchmarks.md"),
        "oci-lifecycle",
        "OCI lifecycle: create + start + delete -f",
        &body,
    )?;
    print!("{body}");
    Ok(())
}

/// Runs `commands` (name, shell command) side by side in one hyperfine run of `runs` runs each
/// after 10 warm-ups, its JSON export in `scratch`; returns one row per command.
fn hyperfine<N: AsRef<str>>(
    commands: &[(N, String)],
    runs: u32,
    scratch: &Path,
) -> Result<Vec<Row>> {
    let json = scratch.join("hyperfine.json");
    step(&format!("hyperfine: {runs} runs each"));
    let mut hf = Command::new("hyperfine");
    hf.args([
        "--warmup",
        "10",
        "--runs",
        &runs.to_string(),
        "--export-json",
    ])
    .arg(&json);
    for (name, cmd) in commands {
        hf.args(["--command-name", name.as_ref(), cmd]);
    }
    if !hf
        .status()
        .with_context(|| crate::util::spawn_context(&hf))?
        .success()
    {
        bail!("hyperfine failed");
    }
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).context("hyperfine's JSON export")?)?;
    rows_of(&results)
}

/// `exec` of `/bin/true` into a running container: gocker (and a baseline build) against runc,
/// in one hyperfine run. Each runtime's container runs `sleep` on the same rootfs, as root.
fn exec_latency(
    ws: &Path,
    gocker: &Path,
    baseline: Option<&Path>,
    rootfs: &Path,
    runs: u32,
) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("gocker-execbench-{}", std::process::id()));
    let bundle = tmp.join("bundle");
    runc_bundle(&bundle, rootfs)?;
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path)?)?;
    cfg["process"]["args"] = serde_json::json!(["sleep", "100000"]);
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg)?)?;
    let name = format!("bench-exec-{}", std::process::id());
    let runc_root = tmp.join("runc-state");
    let quiet = |c: &mut Command| -> Result<()> {
        let st = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("{c:?}: {st}");
        }
        Ok(())
    };
    let started = quiet(
        Command::new(gocker)
            .args([
                "run",
                "-d",
                "--name",
                &name,
                "--network",
                "none",
                "--rootfs",
            ])
            .arg(rootfs)
            .args(["sleep", "100000"]),
    )
    .and_then(|()| {
        quiet(
            Command::new("runc")
                .arg("--root")
                .arg(&runc_root)
                .args(["run", "-d", "--bundle"])
                .arg(&bundle)
                .arg(&name),
        )
    });
    let mut commands = vec![(
        "gocker",
        format!("{} exec {name} /bin/true", gocker.display()),
    )];
    if let Some(b) = baseline {
        commands.push((
            "gocker-baseline",
            format!("{} exec {name} /bin/true", b.display()),
        ));
    }
    commands.push((
        "runc",
        format!("runc --root {} exec {name} /bin/true", runc_root.display()),
    ));
    let rows = started.and_then(|()| hyperfine(&commands, runs, &tmp));
    let _ = Command::new(gocker).args(["rm", "-f", &name]).output();
    let _ = Command::new("runc")
        .arg("--root")
        .arg(&runc_root)
        .args(["delete", "-f", &name])
        .output();
    let _ = std::fs::remove_dir_all(&tmp);
    let rows = rows?;
    let g = median_of(&rows, "gocker");
    let mut body = String::new();
    body += &format!("Measured {} with `cargo xtask bench --only exec` ({runs} runs each after 10 warm-ups, one hyperfine run).\n\n", today());
    body += &format!(
        "Host: kernel {}, {}; {}, {}.\n\n",
        version(&["uname", "-r"]),
        cpu(),
        version(&["runc", "--version"]),
        version(&["hyperfine", "--version"])
    );
    body += "`exec /bin/true` into a running container (`sleep`, same rootfs, as root, no network):\n\n";
    for (n, cmd) in &commands {
        body += &format!(
            "- {n}: `{}`\n",
            shown(cmd, ws, rootfs, &tmp, baseline).replace(&name, "$NAME")
        );
    }
    body += "\n| runtime | median ms | mean ms | min ms | max ms | gocker median ÷ this |\n|---|---|---|---|---|---|\n";
    for (n, med, mean, min, max) in &rows {
        body += &format!(
            "| {n} | {med:.2} | {mean:.2} | {min:.2} | {max:.2} | {:.2} |\n",
            g / med
        );
    }
    if baseline.is_some() {
        body += "\n`gocker-baseline` is the binary given with `--baseline BIN` (`$BASELINE`, another build), measured in the same run.\n";
        let b = median_of(&rows, "gocker-baseline");
        body += &format!(
            "\nCost against the baseline build: {:+.1} % (median).\n",
            (g / b - 1.0) * 100.0
        );
    }
    replace_section(
        &ws.join("docs/benchmarks.md"),
        "exec-latency",
        "Exec latency: `exec NAME /bin/true`",
        &body,
    )?;
    print!("{body}");
    Ok(())
}

/// A bundle from `runc spec` that runs `/bin/true` on `rootfs` (read-only, no terminal).
fn runc_bundle(bundle: &Path, rootfs: &Path) -> Result<()> {
    std::fs::create_dir_all(bundle)?;
    run(Command::new("runc").arg("spec").current_dir(bundle))?;
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path)?)?;
    cfg["process"]["args"] = serde_json::json!(["/bin/true"]);
    cfg["process"]["terminal"] = serde_json::json!(false);
    cfg["root"] = serde_json::json!({"path": rootfs, "readonly": true});
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg)?)?;
    Ok(())
}
