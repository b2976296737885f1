//! Sandbox providers: the gvisor provider really runs tools under gVisor (as root, with runsc
//! installed), the default falls back to gocker visibly when runsc is absent (log once, session,
//! /healthz, /metrics), a provider named in the request is never replaced (503, nothing
//! created), and WORKSPACE_MAX_CONCURRENT caps the sessions (429 with Retry-After).

mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn runsc() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("runsc"))
        .find(|p| p.is_file())
}

/// The runsc session sandboxes of a service root (its own `--root`; not its probes').
fn runsc_sandboxes(runsc: &Path, root: &Path) -> Vec<String> {
    let prefix = sandbox_prefix(root);
    runsc_containers(runsc, root)
        .into_iter()
        .filter(|c| c.starts_with(&prefix))
        .collect()
}

/// Every runsc container of a service root.
fn runsc_containers(runsc: &Path, root: &Path) -> Vec<String> {
    let o = Command::new(runsc)
        .arg("--root")
        .arg(root.join("gvisor/state"))
        .args(["list", "--quiet"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Removes whatever runsc containers a failed test left under `root`.
struct RunscCleanup(PathBuf, PathBuf);

impl Drop for RunscCleanup {
    fn drop(&mut self) {
        for c in runsc_containers(&self.0, &self.1) {
            let _ = Command::new(&self.0)
                .arg("--root")
                .arg(self.1.join("gvisor/state"))
                .args(["--network=none", "delete", "--force", &c])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// This PATH with every directory that holds a runsc replaced by one of links to everything
/// else in it (gocker may need its other programs, e.g. newuidmap rootless).
fn path_without_runsc(tmp: &Path) -> String {
    let dirs: Vec<PathBuf> =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    let mut out = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        if !d.join("runsc").exists() {
            out.push(d.clone());
            continue;
        }
        let links = tmp.join(format!("path-{i}"));
        std::fs::create_dir_all(&links).unwrap();
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.file_name() != "runsc" {
                let _ = std::os::unix::fs::symlink(e.path(), links.join(e.file_name()));
            }
        }
        out.push(links);
    }
    let p = std::env::join_paths(out).unwrap().into_string().unwrap();
    assert!(std::env::split_paths(&p).all(|d| !d.join("runsc").exists()));
    p
}

fn sh(srv: &Server, sid: &str, script: &str) -> Value {
    let r = srv.invoke(
        sid,
        "shell.exec",
        json!({"approved": true, "args": {"argv": ["/bin/sh", "-c", script]}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json["invocation"]["status"], "succeeded", "{}", r.body);
    r.json["invocation"]["output"].clone()
}

fn provider<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

#[test]
fn a_gvisor_session_runs_its_tools_under_gvisor() {
    if !ready("a_gvisor_session_runs_its_tools_under_gvisor") {
        return;
    }
    if mode() != "root" || !rustix::process::geteuid().is_root() {
        eprintln!("SKIP a_gvisor_session_runs_its_tools_under_gvisor: the gvisor provider is tested as root only");
        return;
    }
    let Some(runsc) = runsc() else {
        eprintln!("SKIP a_gvisor_session_runs_its_tools_under_gvisor: runsc is not installed here (the CI setup installs Debian's runsc)");
        return;
    };
    let tmp = TempDir::new("gvisor");
    let root = tmp.path().join("root");
    let _cleanup = RunscCleanup(runsc.clone(), root.clone());
    // The real default (gvisor), not the suite's gocker.
    // The one test of the measured capabilities: the rest of the suite turns the measurement off.
    let srv = Server::start(
        &root,
        &[
            ("WORKSPACE_DEFAULT_PROVIDER", ""),
            ("WORKSPACE_PROVIDER_PROBE_ROUNDS", "3"),
        ],
    );
    let s = srv.session(json!({"principal": principal("acme", &["admin"])}));
    let sid = s["id"].as_str().unwrap().to_string();
    assert_eq!(s["provider"], "gvisor", "{s}");
    assert_eq!(s["isolation"], "gvisor", "{s}");
    assert_eq!(s["degraded_isolation"], false, "{s}");
    let platform = s["platform"].as_str().expect("platform").to_string();
    assert!(
        ["systrap", "ptrace", "kvm"].contains(&platform.as_str()),
        "{s}"
    );
    eprintln!("gvisor platform used: {platform}");
    assert_eq!(
        runsc_sandboxes(&runsc, &root),
        vec![s["sandbox_id"].as_str().unwrap().to_string()]
    );
    assert!(
        !srv.sandboxes().iter().any(|n| n.contains(&sid)),
        "no gocker container for a gvisor session"
    );

    // gVisor's kernel: its boot lines in dmesg, and another /proc/version than the host's.
    let o = sh(&srv, &sid, "dmesg; echo ---; cat /proc/version");
    let out = o["stdout"].as_str().unwrap();
    assert!(out.contains("Starting gVisor"), "{out}");
    let inside = out.split("---\n").nth(1).unwrap().trim();
    let host = std::fs::read_to_string("/proc/version").unwrap();
    assert_ne!(inside, host.trim(), "{out}");

    // The workspace is shared both ways with the service-side file tools.
    let w = srv.invoke(
        &sid,
        "fs.write_file",
        json!({"approved": true, "args": {"path": "from-service.txt", "content": "written by the service\n"}}),
    );
    assert_eq!(w.status, 200, "{}", w.body);
    let o = sh(&srv, &sid, "cat /workspace/from-service.txt");
    assert_eq!(o["stdout"], "written by the service\n");
    sh(
        &srv,
        &sid,
        "echo written inside > /workspace/from-inside.txt",
    );
    let r = srv.invoke(
        &sid,
        "fs.read_file",
        json!({"args": {"path": "from-inside.txt"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json["invocation"]["output"]["content"],
        "written inside\n"
    );
    // The root is gVisor's overlay: writes there do not reach the shared rootfs.
    sh(&srv, &sid, "echo x > /etc/gws-probe-root");
    assert!(!rootfs().unwrap().join("etc/gws-probe-root").exists());

    // Capabilities: measured in the background, then listed with the platform used.
    let p = wait_for("the providers' probes", Duration::from_secs(120), || {
        let l = srv.get("/v1/providers").json;
        let done = l["providers"]
            .as_array()?
            .iter()
            .filter(|p| p["available"] == true)
            .all(|p| p["probe"] != "running");
        done.then_some(l)
    });
    assert_eq!(p["default"], "gvisor", "{p}");
    assert_eq!(p["degraded_isolation"], false, "{p}");
    let g = provider(&p, "gvisor");
    assert_eq!(g["available"], true, "{p}");
    assert_eq!(g["probe"], "done", "{p}");
    let c = &g["capabilities"];
    assert_eq!(c["isolation"], "gvisor", "{p}");
    assert_eq!(c["platform"], platform.as_str(), "{p}");
    assert_eq!(c["supports_persistence"], true, "{p}");
    assert_eq!(c["requires_kvm"], platform == "kvm", "{p}");
    assert!(c["startup_ms"].as_u64().unwrap() > 0, "{p}");
    assert_eq!(
        provider(&p, "gocker")["capabilities"]["isolation"],
        "namespaces"
    );

    // kill -9 and a restart: the session keeps its gVisor sandbox (runsc's, not the service's).
    let mut srv = srv;
    srv.kill9();
    let srv = Server::start(&root, &[("WORKSPACE_DEFAULT_PROVIDER", "")]);
    let o = sh(
        &srv,
        &sid,
        "cat /workspace/from-inside.txt; dmesg | head -1",
    );
    let out = o["stdout"].as_str().unwrap();
    assert!(out.starts_with("written inside\n"), "{out}");
    assert!(out.contains("Starting gVisor"), "{out}");

    // Deleting the session removes its runsc sandbox and bundle.
    assert_eq!(srv.delete(&sid).status, 200);
    assert!(runsc_sandboxes(&runsc, &root).is_empty());
    let bundles: Vec<_> = std::fs::read_dir(root.join("gvisor/bundles"))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&sandbox_prefix(&root))
        })
        .collect();
    assert!(bundles.is_empty(), "{bundles:?}");
}

#[test]
fn without_runsc_the_default_falls_back_visibly_and_a_named_gvisor_is_refused() {
    if !ready("without_runsc_the_default_falls_back_visibly_and_a_named_gvisor_is_refused") {
        return;
    }
    let tmp = TempDir::new("fallback");
    let root = tmp.path().join("root");
    let path = path_without_runsc(tmp.path());
    let srv = Server::start(
        &root,
        &[
            ("WORKSPACE_DEFAULT_PROVIDER", ""),
            ("WORKSPACE_RUNSC_PATH", "/nonexistent/runsc"),
            ("PATH", &path),
        ],
    );
    let s = srv.session(json!({"principal": principal("acme", &["developer"])}));
    assert_eq!(s["provider"], "gocker", "{s}");
    assert_eq!(s["degraded_isolation"], true, "{s}");
    assert_eq!(s["isolation"], "namespaces", "{s}");
    let got = srv.get(&format!("/v1/sessions/{}", s["id"].as_str().unwrap()));
    assert_eq!(got.json["session"]["degraded_isolation"], true);

    let warning = "gVisor runtime (runsc) not found, falling back to gocker — reduced isolation";
    let logs = srv.logs();
    assert_eq!(logs.matches(warning).count(), 1, "{logs}");
    let line = logs.lines().find(|l| l.contains(warning)).unwrap();
    assert!(line.contains("\"WARN\""), "{line}");

    let h = srv.get("/healthz");
    assert_eq!(h.status, 200, "{}", h.body);
    assert_eq!(h.json["degraded_isolation"], true, "{}", h.body);
    assert!(
        h.json["degraded_reason"]
            .as_str()
            .unwrap()
            .contains("runsc"),
        "{}",
        h.body
    );
    let m = srv.get("/metrics").body;
    assert!(
        m.lines().any(|l| l == "workspace_degraded_isolation 1"),
        "{m}"
    );

    let p = srv.get("/v1/providers").json;
    assert_eq!(p["default"], "gocker", "{p}");
    assert_eq!(p["configured_default"], "gvisor", "{p}");
    let g = provider(&p, "gvisor");
    assert_eq!(g["available"], false, "{p}");
    assert!(g["reason"].as_str().unwrap().contains("not found"), "{p}");

    // Named in the request: never replaced, nothing created.
    let before = (srv.sandboxes(), srv.session_dirs());
    let r = srv.call(
        "POST",
        "/v1/sessions",
        &[],
        Some(&json!({"principal": principal("acme", &["developer"]), "provider": "gvisor"})),
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(
        r.json["error"]["code"], "provider_unavailable",
        "{}",
        r.body
    );
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{}",
        r.body
    );
    assert_eq!((srv.sandboxes(), srv.session_dirs()), before);
    // An unknown provider is a bad request; gocker by name is not degraded.
    let r = srv.call(
        "POST",
        "/v1/sessions",
        &[],
        Some(&json!({"principal": principal("acme", &["developer"]), "provider": "../gocker"})),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let named =
        srv.session(json!({"principal": principal("acme", &["developer"]), "provider": "gocker"}));
    assert_eq!(named["degraded_isolation"], false, "{named}");
    assert_eq!(srv.sandboxes().len(), 2);
    for id in [&s["id"], &named["id"]] {
        assert_eq!(srv.delete(id.as_str().unwrap()).status, 200);
    }
    assert!(srv.sandboxes().is_empty());
}

#[test]
fn beyond_workspace_max_concurrent_a_session_is_429_until_one_is_deleted() {
    if !ready("beyond_workspace_max_concurrent_a_session_is_429_until_one_is_deleted") {
        return;
    }
    let tmp = TempDir::new("maxconc");
    let srv = Server::start(
        &tmp.path().join("root"),
        &[("WORKSPACE_MAX_CONCURRENT", "2")],
    );
    let body = json!({"principal": principal("acme", &["developer"])});
    let a = srv.session(body.clone());
    let _b = srv.session(body.clone());
    let r = srv.call("POST", "/v1/sessions", &[], Some(&body));
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json["error"]["code"], "rate_limited");
    let after: u64 = r
        .retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&after), "Retry-After: {after}");
    assert!(r.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("WORKSPACE_MAX_CONCURRENT"));
    assert_eq!(
        srv.sandboxes().len(),
        2,
        "nothing created for the refused one"
    );
    assert_eq!(srv.session_dirs().len(), 2);
    assert_eq!(srv.delete(a["id"].as_str().unwrap()).status, 200);
    let c = srv.session(body);
    assert_eq!(c["provider"], "gocker");
    assert_eq!(srv.sandboxes().len(), 2);
}
