//! `cargo xtask bench --only images`: pull + unpack of one image from one local registry by
//! gocker and by podman, side by side in one hyperfine run, and `run --rm IMAGE /bin/true`
//! against `run --rm --rootfs DIR /bin/true` on the same tree (what the image's copy-on-write
//! root costs). The registry is Debian's `docker-registry` on 127.0.0.1, started and stopped
//! here; the image is the test rootfs imported by podman (one gzip layer).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::util::{cpu, ensure_packages, replace_section, run, shown, step, today, version};

/// The registry of the benchmark: killed and its storage removed on drop.
struct Registry {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Registry {
    fn start(dir: &Path) -> Result<Registry> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        std::fs::create_dir_all(dir.join("data"))?;
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
                 delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            ),
        )?;
        let child = Command::new("docker-registry")
            .args(["serve"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn docker-registry (Debian package docker-registry)")?;
        let reg = Registry {
            child,
            dir: dir.to_owned(),
            port,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(reg);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        bail!("docker-registry did not listen on 127.0.0.1:{port} within 5 s")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn main(ws: &Path, gocker: &Path, rootfs: &Path, runs: u32) -> Result<()> {
    ensure_packages(&["docker-registry", "podman", "hyperfine"])?;
    let tmp = std::env::temp_dir().join(format!("gocker-imagebench-{}", std::process::id()));
    let result = measure(ws, gocker, rootfs, runs, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn measure(ws: &Path, gocker: &Path, rootfs: &Path, runs: u32, tmp: &Path) -> Result<()> {
    let reg = Registry::start(&tmp.join("registry"))?;
    let image = format!("127.0.0.1:{}/bench/rootfs:1", reg.port);
    let local = "localhost/gocker-bench-rootfs:1";
    step(&format!(
        "image: podman import {} as {image}",
        rootfs.display()
    ));
    let tar = tmp.join("rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg("."))?;
    run(Command::new("podman")
        .args(["import", "-q"])
        .arg(&tar)
        .arg(local))?;
    run(Command::new("podman").args([
        "push",
        "-q",
        "--tls-verify=false",
        local,
        &format!("docker://{image}"),
    ]))?;
    let _ = Command::new("podman").args(["rmi", "-f", local]).output();
    let g = gocker.display();
    let quiet = ">/dev/null 2>&1 || true";
    let pulls = [
        (
            "gocker pull",
            format!("{g} pull -q {image}"),
            format!("{g} rmi -f {image} {quiet}"),
        ),
        (
            "podman pull",
            format!("podman pull -q --tls-verify=false {image}"),
            format!("podman rmi -f {image} {quiet}"),
        ),
    ];
    let pull_runs = runs.clamp(5, 20);
    let pull_rows = hyperfine_prepared(&pulls, pull_runs, 2, tmp)?;
    // The image stays pulled for the run comparison.
    run(Command::new(gocker).args(["pull", "-q", &image]))?;
    let r = rootfs.display();
    let starts = [
        (
            "run --rm IMAGE",
            format!("{g} run --rm --network none {image} /bin/true"),
            String::new(),
        ),
        (
            "run --rm --rootfs DIR",
            format!("{g} run --rm --network none --rootfs {r} /bin/true"),
            String::new(),
        ),
    ];
    let start_rows = hyperfine_prepared(&starts, runs, 10, tmp)?;
    let _ = Command::new(gocker).args(["rmi", "-f", &image]).output();
    let _ = Command::new("podman").args(["rmi", "-f", &image]).output();
    drop(reg);

    let median = |rows: &[crate::util::Row], n: &str| crate::util::median_of(rows, n);
    let mut body = format!(
        "Measured {} with `cargo xtask bench --only images` (one hyperfine run per table, as root).\n\n\
         Host: kernel {}, {}; {}, {}.\n\n",
        today(),
        version(&["uname", "-r"]),
        cpu(),
        version(&["podman", "--version"]),
        version(&["hyperfine", "--version"])
    );
    let show = |c: &str| shown(c, ws, rootfs, tmp, None).replace(&image, "$IMAGE");
    body += &format!(
        "Pull + unpack of `$IMAGE`, the test rootfs imported by podman (one gzip layer), from \
         Debian's docker-registry on 127.0.0.1; each run starts from an empty store (the \
         image removed before it), {pull_runs} runs after 2 warm-ups:\n\n"
    );
    for (name, cmd, prep) in &pulls {
        body += &format!(
            "- {name}: `{}` (before each: `{}`)\n",
            show(cmd),
            show(prep)
        );
    }
    body += &table(&pull_rows);
    let (gp, pp) = (
        median(&pull_rows, "gocker pull"),
        median(&pull_rows, "podman pull"),
    );
    body += &format!(
        "\nTarget (issue 15): gocker's median ≤ 1.0× podman's: {:.2}× — {}.\n\n",
        gp / pp,
        pass(gp / pp <= 1.0)
    );
    body += &format!(
        "Start latency on the image against the same tree as `--rootfs`, {runs} runs after 10 \
         warm-ups:\n\n"
    );
    for (name, cmd, _) in &starts {
        body += &format!("- {name}: `{}`\n", show(cmd));
    }
    body += &table(&start_rows);
    let (ri, rd) = (
        median(&start_rows, "run --rm IMAGE"),
        median(&start_rows, "run --rm --rootfs DIR"),
    );
    body += &format!(
        "\nTarget (issue 15): the image's root adds at most 20 %: {:+.0} % — {}.\n",
        (ri / rd - 1.0) * 100.0,
        pass(ri / rd <= 1.2)
    );
    replace_section(
        &ws.join("docs/benchmarks.md"),
        "images",
        "Images: pull + unpack, and runs on an image",
        &body,
    )?;
    print!("{body}");
    Ok(())
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn table(rows: &[crate::util::Row]) -> String {
    let mut t = String::from(
        "\n| command | median ms | mean ms | min ms | max ms |\n|---|---|---|---|---|\n",
    );
    for (name, med, mean, min, max) in rows {
        t += &format!("| {name} | {med:.1} | {mean:.1} | {min:.1} | {max:.1} |\n");
    }
    t
}

/// One hyperfine run of (name, command, prepare) triples (an empty prepare: none).
fn hyperfine_prepared(
    commands: &[(&str, String, String)],
    runs: u32,
    warmup: u32,
    scratch: &Path,
) -> Result<Vec<crate::util::Row>> {
    let json = scratch.join("hyperfine-images.json");
    step(&format!("hyperfine: {runs} runs each"));
    let mut hf = Command::new("hyperfine");
    hf.args([
        "--warmup",
        &warmup.to_string(),
        "--runs",
        &runs.to_string(),
        "--export-json",
    ])
    .arg(&json);
    if commands.iter().any(|c| !c.2.is_empty()) {
        for (_, _, prep) in commands {
            hf.args(["--prepare", if prep.is_empty() { "true" } else { prep }]);
        }
    }
    for (name, cmd, _) in commands {
        hf.args(["--command-name", name, cmd]);
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
    crate::util::rows_of(&results)
}
