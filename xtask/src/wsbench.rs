//! `cargo xtask bench --only workspace`: the workspace execution service (gocker-workspaced)
//! over HTTP against a bare `gocker run` / `gocker exec` of the same work, in one run: session
//! create, `fs.read_file`, `shell.exec` of `/bin/true`, 50 concurrent sessions × 20 invocations,
//! and the memory an idle session costs. The service's own overhead is the ratio of the two.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::util::{cpu, replace_section, run, today, version};

/// A gocker-workspaced started for the benchmark; killed (and its sessions deleted) on drop.
struct Service {
    child: Child,
    url: String,
    sessions: Vec<String>,
}

impl Service {
    fn start(bin: &Path, gocker: &Path, rootfs: &Path, root: &Path) -> Result<Service> {
        let mut child = Command::new(bin)
            .env("PORT", "0")
            .env("WORKSPACE_ROOT", root)
            .env("WORKSPACE_GOCKER_BIN", gocker)
            .env("WORKSPACE_SANDBOX_ROOTFS", rootfs)
            // The benchmark measures the path, not the limits.
            .env("WORKSPACE_RATE_LIMIT_PER_MINUTE", "100000000")
            .env("WORKSPACE_MAX_CONCURRENCY_PER_SESSION", "64")
            .env("LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;
        let mut line = String::new();
        let out = child.stdout.take().context("stdout")?;
        let mut r = std::io::BufReader::new(out);
        r.read_line(&mut line)?;
        std::thread::spawn(move || std::io::copy(&mut r, &mut std::io::sink()));
        let Some(url) = line.trim().strip_prefix("gocker-workspaced listening on ") else {
            let _ = child.kill();
            bail!("gocker-workspaced did not start: {line:?}");
        };
        Ok(Service {
            url: url.to_owned(),
            child,
            sessions: Vec::new(),
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let r =
            ureq::request(method, &format!("{}{path}", self.url)).timeout(Duration::from_secs(300));
        let res = match body {
            Some(b) => r
                .set("content-type", "application/json")
                .send_string(&b.to_string()),
            None => r.call(),
        };
        match res {
            Ok(resp) => Ok(resp.into_json()?),
            Err(ureq::Error::Status(code, resp)) => {
                bail!("{method} {path}: {code}: {}", resp.into_string()?)
            }
            Err(e) => bail!("{method} {path}: {e}"),
        }
    }

    fn create(&mut self) -> Result<String> {
        let body =
            json!({"principal": {"tenant_id": "bench", "actor_id": "agent", "roles": ["admin"]}});
        let v = self.call("POST", "/v1/sessions", Some(&body))?;
        let id = v["session"]["id"]
            .as_str()
            .context("session id")?
            .to_owned();
        self.sessions.push(id.clone());
        Ok(id)
    }

    fn delete(&mut self, id: &str) -> Result<()> {
        self.sessions.retain(|s| s != id);
        self.call("DELETE", &format!("/v1/sessions/{id}"), None)
            .map(drop)
    }

    fn invoke(&self, id: &str, tool: &str, args: Value) -> Result<Value> {
        let v = self.call(
            "POST",
            &format!("/v1/sessions/{id}/tools/{tool}/invoke"),
            Some(&json!({"approved": true, "args": args})),
        )?;
        if v["invocation"]["status"] != "succeeded" {
            bail!("{tool}: {v}");
        }
        Ok(v)
    }

    /// Resident memory of the service process, kB.
    fn rss_kb(&self) -> u64 {
        status_kb(self.child.id(), "VmRSS:")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.sessions) {
            let _ = self.call("DELETE", &format!("/v1/sessions/{id}"), None);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Memory in use on the host (MemTotal − MemAvailable), kB.
fn host_used_kb() -> u64 {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let get = |k: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    get("MemTotal:").saturating_sub(get("MemAvailable:"))
}

/// p50 and p99 (nearest rank) of durations, in ms.
fn pcts(mut d: Vec<Duration>) -> (f64, f64) {
    d.sort();
    let at = |p: f64| {
        let i = ((p * d.len() as f64).ceil() as usize).clamp(1, d.len()) - 1;
        d[i].as_secs_f64() * 1000.0
    };
    (at(0.50), at(0.99))
}

fn timed<T>(n: usize, mut f: impl FnMut() -> Result<T>) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        out.push(t.elapsed());
    }
    Ok(out)
}

fn ok(cmd: &mut Command) -> Result<()> {
    let o = cmd.stdin(Stdio::null()).output()?;
    if !o.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(())
}

pub fn main(ws: &Path, gocker: &Path, rootfs: &Path, runs: u32) -> Result<()> {
    crate::util::step("build: cargo build --release -p gocker-workspaced");
    run(Command::new("cargo").current_dir(ws).args([
        "build",
        "--release",
        "-p",
        "gocker-workspaced",
    ]))?;
    let bin = crate::util::built("release", "gocker-workspaced")?;
    let tmp = std::env::temp_dir().join(format!("gocker-wsbench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let r = measure(&bin, gocker, rootfs, runs as usize, &tmp, ws);
    let _ = std::fs::remove_dir_all(&tmp);
    r
}

fn measure(
    bin: &Path,
    gocker: &Path,
    rootfs: &Path,
    runs: usize,
    tmp: &Path,
    ws: &Path,
) -> Result<()> {
    let (sessions_n, concurrent, per) = (runs.clamp(10, 50), 50usize, 20usize);
    let mut svc = Service::start(bin, gocker, rootfs, &tmp.join("root"))?;
    crate::util::step("workspace bench: sessions, fs.read_file, shell.exec");
    // Warm-up: one session and a few calls.
    let warm = svc.create()?;
    for _ in 0..5 {
        svc.invoke(&warm, "shell.exec", json!({"argv": ["/bin/true"]}))?;
    }
    svc.delete(&warm)?;

    let mut create = Vec::new();
    let mut delete = Vec::new();
    for _ in 0..sessions_n {
        let t = Instant::now();
        let id = svc.create()?;
        create.push(t.elapsed());
        let t = Instant::now();
        svc.delete(&id)?;
        delete.push(t.elapsed());
    }
    let sid = svc.create()?;
    svc.invoke(
        &sid,
        "fs.write_file",
        json!({"path": "bench.txt", "content": "hello\n"}),
    )?;
    let read = timed(runs, || {
        svc.invoke(&sid, "fs.read_file", json!({"path": "bench.txt"}))
    })?;
    let exec = timed(runs, || {
        svc.invoke(&sid, "shell.exec", json!({"argv": ["/bin/true"]}))
    })?;
    svc.delete(&sid)?;

    // The same work with the gocker CLI: a sandbox's start and removal, and exec in a running one.
    crate::util::step("workspace bench: the same work with gocker run / exec");
    let r = rootfs.display().to_string();
    let g = |args: &[&str]| {
        let mut c = Command::new(gocker);
        c.args(args);
        c
    };
    let name = format!("wsbench-{}", std::process::id());
    let bare_run = timed(sessions_n, || {
        ok(&mut g(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--rootfs",
            &r,
            "/bin/true",
        ]))
    })?;
    ok(&mut g(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "--rootfs",
        &r,
        "/bin/sleep",
        "100000",
    ]))?;
    let bare = (|| -> Result<_> {
        let cat = timed(runs, || {
            ok(&mut g(&["exec", &name, "cat", "/etc/hostname"]))
        })?;
        let tru = timed(runs, || ok(&mut g(&["exec", &name, "/bin/true"])))?;
        Ok((cat, tru))
    })();
    let _ = g(&["rm", "-f", &name]).output();
    let (bare_cat, bare_true) = bare?;

    // 50 sessions, then 20 shell.exec calls in each, all sessions at once.
    crate::util::step(&format!(
        "workspace bench: {concurrent} concurrent sessions x {per} invocations"
    ));
    let used0 = host_used_kb();
    let rss0 = svc.rss_kb();
    let ids: Vec<String> = (0..concurrent)
        .map(|_| svc.create())
        .collect::<Result<_>>()?;
    std::thread::sleep(Duration::from_secs(2));
    let idle_kb = host_used_kb().saturating_sub(used0) / concurrent as u64;
    let rss1 = svc.rss_kb();
    let t = Instant::now();
    let lat: Vec<Duration> = std::thread::scope(|s| -> Result<Vec<Duration>> {
        let hs: Vec<_> = ids
            .iter()
            .map(|id| {
                let svc = &svc;
                s.spawn(move || {
                    timed(per, || {
                        svc.invoke(id, "shell.exec", json!({"argv": ["/bin/true"]}))
                    })
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in hs {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("a client panicked"))??,
            );
        }
        Ok(all)
    })?;
    let wall = t.elapsed();
    for id in ids {
        svc.delete(&id)?;
    }
    drop(svc);

    let throughput = (concurrent * per) as f64 / wall.as_secs_f64();
    let (c50, c99) = pcts(create);
    let (d50, d99) = pcts(delete);
    let (r50, r99) = pcts(read);
    let (e50, e99) = pcts(exec);
    let (b50, b99) = pcts(bare_run);
    let (x50, x99) = pcts(bare_cat);
    let (t50, t99) = pcts(bare_true);
    let (l50, l99) = pcts(lat);
    let mut body = String::new();
    body += &format!(
        "Measured {} with `cargo xtask bench --only workspace --runs {runs}` (release gocker-workspaced, the static \
         gocker of `cargo xtask dist`, as root; one run, the service and the CLI measured side by side).\n\n",
        today()
    );
    body += &format!("Host: kernel {}, {}.\n\n", version(&["uname", "-r"]), cpu());
    body += "Each request is an HTTP/1.1 call from one client thread; latencies are per request (p50 / p99, nearest rank). \
             The CLI rows do the same work without the service: a session's sandbox is a `gocker run -d` of the \
             same rootfs, a tool call is a `gocker exec` in it.\n\n";
    body += "| work | through the service p50 / p99 ms | bare gocker p50 / p99 ms | service ÷ bare (p50) |\n|---|---|---|---|\n";
    body += &format!(
        "| session create ({sessions_n}×) vs `gocker run --rm /bin/true` | {c50:.1} / {c99:.1} | {b50:.1} / {b99:.1} | {:.2} |\n",
        c50 / b50
    );
    body += &format!("| session delete ({sessions_n}×) | {d50:.1} / {d99:.1} | | |\n");
    body += &format!(
        "| `fs.read_file` ({runs}×) vs `gocker exec C cat FILE` | {r50:.2} / {r99:.2} | {x50:.1} / {x99:.1} | {:.2} |\n",
        r50 / x50
    );
    body += &format!(
        "| `shell.exec` `/bin/true` ({runs}×) vs `gocker exec C /bin/true` | {e50:.1} / {e99:.1} | {t50:.1} / {t99:.1} | {:.2} |\n",
        e50 / t50
    );
    body += &format!(
        "\n{concurrent} sessions at once, {per} `shell.exec` `/bin/true` each ({} calls): {throughput:.1} calls/s over \
         {:.1} s, per-call p50 {l50:.1} ms, p99 {l99:.1} ms.\n\n",
        concurrent * per,
        wall.as_secs_f64()
    );
    body += &format!(
        "Memory per idle session ({concurrent} sessions, 2 s after the last was created): {:.1} MiB of host memory \
         (MemTotal − MemAvailable: the sandbox's processes, its state and workspace on tmpfs, page tables); the service \
         process's own resident memory went from {:.1} to {:.1} MiB.\n\n",
        idle_kb as f64 / 1024.0,
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0
    );
    body += "`fs.read_file` is served from the service side through confined resolution (openat2 `RESOLVE_IN_ROOT`), \
             so it costs no process in the sandbox: it is faster than the bare `gocker exec` of `cat`. `shell.exec` \
             runs in the sandbox (`gocker exec`), so its ratio is the service's overhead on a process start.\n";
    replace_section(
        &ws.join("docs/benchmarks.md"),
        "workspace",
        "Workspace service: sessions and tool calls over HTTP",
        &body,
    )?;
    print!("{body}");
    Ok(())
}
