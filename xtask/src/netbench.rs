//! `cargo xtask bench` (network part): TCP throughput between the host and a container with
//! iperf3 for bridge, slirp4netns and pasta, and the start latency each network mode adds.
//! The container side runs the host's iperf3 inside the container's network namespace (nsenter),
//! so the busybox rootfs needs no iperf3; nothing leaves the machine (loopback, the bridge and the
//! container's own address only).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::util::replace_section;
use crate::util::{ensure_packages, output, run, step};

/// The unprivileged user for the rootless modes (created by `cargo xtask itest` too).
const USER: &str = "gocker-sub";
const SECONDS: u32 = 5;

struct Who {
    uid: u32,
    gid: u32,
}

impl Who {
    /// A command run as the user (none for root), with the environment gocker expects.
    fn cmd(&self, prog: &str) -> Command {
        if self.uid == 0 {
            return Command::new(prog);
        }
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            &self.uid.to_string(),
            "--regid",
            &self.gid.to_string(),
            "--init-groups",
            "--reset-env",
            "env",
        ])
        .arg(format!("HOME=/home/{USER}"))
        .arg(format!("XDG_RUNTIME_DIR=/run/user/{}", self.uid))
        .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .arg(prog)
        .current_dir("/tmp");
        c
    }

    fn prefix(&self) -> String {
        if self.uid == 0 {
            String::new()
        } else {
            format!(
                "setpriv --reuid {} --regid {} --init-groups --reset-env env XDG_RUNTIME_DIR=/run/user/{} HOME=/home/{USER} PATH=/usr/bin:/bin:/usr/sbin:/sbin ",
                self.uid, self.gid, self.uid
            )
        }
    }
}

fn user() -> Result<Who> {
    let (uid, gid) = crate::itest::ensure_user(USER, Some(600_000))?;
    let dir = format!("/run/user/{uid}");
    if !Path::new(&dir).exists() {
        std::fs::create_dir_all(&dir)?;
        run(Command::new("chown").arg(format!("{uid}:{gid}")).arg(&dir))?;
    }
    Ok(Who { uid, gid })
}

/// bits/s received, from iperf3's JSON.
fn iperf_client(target: &str, port: u16, reverse: bool) -> Result<f64> {
    let mut c = Command::new("iperf3");
    c.args([
        "-c",
        target,
        "-p",
        &port.to_string(),
        "-t",
        &SECONDS.to_string(),
        "-J",
    ]);
    if reverse {
        c.arg("-R");
    }
    let out = output(&mut c)?;
    let v: serde_json::Value = serde_json::from_str(&out).context("iperf3 -J output")?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3: no end.sum_received.bits_per_second")
}

struct Bench {
    name: String,
    mode: &'static str,
    who: Who,
    gocker: String,
}

impl Bench {
    fn start(&self, rootfs: &Path, publish: &str) -> Result<i64> {
        let mut c = self.who.cmd(&self.gocker);
        c.args([
            "run",
            "-d",
            "--name",
            &self.name,
            "--network",
            self.mode,
            "-p",
            publish,
            "--rootfs",
        ])
        .arg(rootfs)
        .args(["sleep", "600"]);
        output(&mut c)?;
        let mut c = self.who.cmd(&self.gocker);
        let v: serde_json::Value = serde_json::from_str(&output(c.args(["inspect", &self.name]))?)?;
        v[0]["pid"].as_i64().context("inspect: no pid")
    }

    /// iperf3 -s inside the container's network namespace.
    fn server(&self, pid: i64) -> Result<Child> {
        let mut c = self.who.cmd("nsenter");
        c.args(["-t", &pid.to_string(), "-n"]);
        if self.who.uid != 0 {
            c.args(["-U", "--preserve-credentials"]);
        }
        c.args(["iperf3", "-s", "-p", "5201"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = c.spawn().context("spawn iperf3 -s in the container")?;
        std::thread::sleep(Duration::from_millis(500));
        Ok(child)
    }

    fn stop(&self) {
        let mut c = self.who.cmd(&self.gocker);
        let _ = c
            .args(["rm", "-f", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

pub fn main(ws: &Path, gocker: &Path, rootfs: &Path, runs: u32) -> Result<()> {
    ensure_packages(&[
        "iperf3",
        "slirp4netns",
        "passt",
        "nftables",
        "hyperfine",
        "util-linux",
    ])?;
    let root = Who { uid: 0, gid: 0 };
    let user = user()?;
    let g = gocker.display().to_string();

    // Throughput.
    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    for (mode, who, port) in [
        ("bridge", &root, 18950u16),
        ("slirp4netns", &user, 18951),
        ("pasta", &user, 18952),
    ] {
        step(&format!("iperf3: {mode}, {SECONDS} s each direction"));
        let b = Bench {
            name: format!("bench-net-{mode}-{}", std::process::id()),
            mode,
            who: Who {
                uid: who.uid,
                gid: who.gid,
            },
            gocker: g.clone(),
        };
        let publish = format!("127.0.0.1:{port}:5201");
        let res = (|| -> Result<Vec<(String, f64, f64)>> {
            let pid = b.start(rootfs, &publish)?;
            let mut server = b.server(pid)?;
            let mut out = Vec::new();
            let r = (|| -> Result<()> {
                if mode == "bridge" {
                    let mut c = root.cmd(&g);
                    let v: serde_json::Value =
                        serde_json::from_str(&output(c.args(["inspect", &b.name]))?)?;
                    let ip = v[0]["ip"].as_str().context("inspect: no ip")?.to_owned();
                    out.push((
                        format!("bridge: host ↔ container address ({ip})"),
                        iperf_client(&ip, 5201, false)?,
                        iperf_client(&ip, 5201, true)?,
                    ));
                    out.push((
                        "bridge: published port on 127.0.0.1 (userland proxy)".into(),
                        iperf_client("127.0.0.1", port, false)?,
                        iperf_client("127.0.0.1", port, true)?,
                    ));
                } else {
                    out.push((
                        format!("{mode}: published port on 127.0.0.1 (MTU 65520)"),
                        iperf_client("127.0.0.1", port, false)?,
                        iperf_client("127.0.0.1", port, true)?,
                    ));
                }
                Ok(())
            })();
            let _ = server.kill();
            let _ = server.wait();
            r.map(|_| out)
        })();
        b.stop();
        rows.extend(res.with_context(|| format!("throughput for --network {mode}"))?);
    }

    // Start latency per mode.
    let r = rootfs.display();
    let cmds: Vec<(String, String)> = [
        ("root", &root, "none"),
        ("root", &root, "host"),
        ("root", &root, "bridge"),
        ("user", &user, "none"),
        ("user", &user, "slirp4netns"),
        ("user", &user, "pasta"),
    ]
    .into_iter()
    .map(|(who, w, mode)| {
        (
            format!("{who} {mode}"),
            format!(
                "{}{g} run --rm --network {mode} --rootfs {r} /bin/true",
                w.prefix()
            ),
        )
    })
    .collect();
    let tmp = std::env::temp_dir().join(format!("gocker-netbench-{}.json", std::process::id()));
    step(&format!("hyperfine: {runs} runs per network mode"));
    let mut hf = Command::new("hyperfine");
    hf.args([
        "--warmup",
        "5",
        "--runs",
        &runs.to_string(),
        "--export-json",
    ])
    .arg(&tmp);
    for (n, c) in &cmds {
        hf.args(["--command-name", n, c]);
    }
    run(&mut hf)?;
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(&tmp)?)?;
    let _ = std::fs::remove_file(&tmp);
    let lat: Vec<(String, f64, f64)> = results["results"]
        .as_array()
        .context("hyperfine results")?
        .iter()
        .map(|x| {
            (
                x["command"].as_str().unwrap_or("?").to_owned(),
                x["median"].as_f64().unwrap_or(f64::NAN) * 1e3,
                x["mean"].as_f64().unwrap_or(f64::NAN) * 1e3,
            )
        })
        .collect();
    let base = |who: &str| {
        lat.iter()
            .find(|l| l.0 == format!("{who} none"))
            .map(|l| l.1)
            .unwrap_or(f64::NAN)
    };

    let mut body = String::new();
    body += &format!(
        "Measured {} with `cargo xtask bench` on kernel {}, {}, {}.\n\n",
        crate::util::today(),
        crate::util::version(&["uname", "-r"]),
        crate::util::cpu(),
        crate::util::version(&["iperf3", "--version"])
    );
    body += &format!(
        "### TCP throughput, host ↔ container\n\n`iperf3 -c TARGET -t {SECONDS}` on the host against `iperf3 -s` run in the container's network namespace \
         (`nsenter -t PID -n`, with `-U` for the rootless modes); \"host → container\" is the normal run, \"container → host\" is `-R`. \
         bridge runs as root; slirp4netns and pasta as the unprivileged user `{USER}`, both with MTU 65520.\n\n\
         | path | host → container Gbit/s | container → host Gbit/s |\n|---|---|---|\n"
    );
    for (n, up, down) in &rows {
        body += &format!("| {n} | {:.2} | {:.2} |\n", up / 1e9, down / 1e9);
    }
    body += &format!("\n### Start latency per network mode\n\n`hyperfine --warmup 5 --runs {runs}`, `run --rm --network MODE --rootfs R /bin/true`; the user rows go through `setpriv` (included in their `none` baseline).\n\n| who, mode | median ms | mean ms | added vs. none (median) ms |\n|---|---|---|---|\n");
    for (n, med, mean) in &lat {
        let who = n.split(' ').next().unwrap_or("root");
        body += &format!("| {n} | {med:.2} | {mean:.2} | {:+.2} |\n", med - base(who));
    }
    body += "\nCommands:\n\n";
    for (n, c) in &cmds {
        let c = crate::util::shown(c, ws, rootfs, &std::env::temp_dir(), None);
        body += &format!("- {n}: `{c}`\n");
    }
    if rows.is_empty() {
        bail!("no throughput measured");
    }
    replace_section(
        &ws.join("docs/benchmarks.md"),
        "network",
        "Network: throughput and start latency per mode",
        &body,
    )?;
    print!("{body}");
    Ok(())
}
