//! Lifecycle: 50 sessions created and deleted leave nothing behind; `kill -9` of the service
//! and a restart on the embedded store lose nothing (sessions usable, sandboxes kept, the
//! running invocation reported interrupted, orphans removed, expired sessions reaped).

mod common;
use common::*;
use serde_json::json;

fn mounts_under(p: &std::path::Path) -> Vec<String> {
    let p = p.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&p))
        .map(String::from)
        .collect()
}

#[test]
fn fifty_sessions_created_and_deleted_leave_nothing_behind() {
    if !ready("fifty_sessions_created_and_deleted_leave_nothing_behind") {
        return;
    }
    let tmp = TempDir::new("fifty");
    let repo = git_repo(tmp.path());
    let root = tmp.path().join("root");
    let srv = std::sync::Arc::new(Server::start(&root, &[]));
    let threads: Vec<_> = (0..10)
        .map(|t| {
            let srv = srv.clone();
            let repo = repo.clone();
            std::thread::spawn(move || {
                for i in 0..5 {
                    let s = srv.session(json!({"principal": principal(&format!("t{t}"), &["developer"]), "source_repo_path": repo}));
                    let sid = s["id"].as_str().unwrap().to_string();
                    let w = srv.invoke(&sid, "fs.write_file", json!({"approved": true, "args": {"path": format!("f{i}.txt"), "content": "x"}}));
                    assert_eq!(w.status, 200, "{}", w.body);
                    let d = srv.delete(&sid);
                    assert_eq!(d.status, 200, "{}", d.body);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        srv.sandboxes().is_empty(),
        "sandboxes left: {:?}",
        srv.sandboxes()
    );
    assert!(
        srv.session_dirs().is_empty(),
        "workspaces left: {:?}",
        srv.session_dirs()
    );
    for d in ["state/sessions", "state/invocations", "artifacts"] {
        let left: Vec<_> = std::fs::read_dir(root.join(d))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{d}: {left:?}");
    }
    assert!(mounts_under(&root).is_empty(), "{:?}", mounts_under(&root));
    // gocker's own state: no container of this instance, by any name.
    let o = std::process::Command::new(gocker_bin())
        .args(["ps", "-a", "--format", "json"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&o.stdout).contains(&sandbox_prefix(&root)));
    assert!(srv
        .get("/metrics")
        .body
        .contains("workspace_active_sessions 0"));
    // The source repository is as the test made it.
    assert!(!repo.join("f0.txt").exists());
}

#[test]
fn kill_9_and_a_restart_lose_nothing() {
    if !ready("kill_9_and_a_restart_lose_nothing") {
        return;
    }
    let tmp = TempDir::new("restart");
    let root = tmp.path().join("root");
    let mut srv = Server::start(&root, &[("WORKSPACE_REAP_INTERVAL_SECONDS", "1")]);
    let admin = principal("acme", &["admin"]);
    let s = srv.session(json!({"principal": admin}));
    let sid = s["id"].as_str().unwrap().to_string();
    let sandbox = s["sandbox_id"].as_str().unwrap().to_string();
    let short = srv.session(json!({"principal": admin, "expires_in_seconds": 3}));
    let short_sandbox = short["sandbox_id"].as_str().unwrap().to_string();
    let w = srv.invoke(
        &sid,
        "fs.write_file",
        json!({"approved": true, "args": {"path": "kept.txt", "content": "still here\n"}}),
    );
    assert_eq!(w.status, 200);
    let done = w.json["invocation"]["id"].as_str().unwrap().to_string();
    // A call that runs when the service is killed.
    let url = srv.url.clone();
    let sid2 = sid.clone();
    let running = std::thread::spawn(move || {
        let _ = ureq::post(&format!("{url}/v1/sessions/{sid2}/tools/shell.exec/invoke"))
            .timeout(std::time::Duration::from_secs(120))
            .send_string(&json!({"approved": true, "correlation_id": "long-one", "args": {"argv": ["sleep", "300"], "timeout_seconds": 300}}).to_string());
    });
    wait_for(
        "the long call to start",
        std::time::Duration::from_secs(60),
        || {
            let inv = std::fs::read_dir(root.join("state/invocations")).ok()?;
            inv.flatten()
                .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|d| d.contains("long-one")))
                .then_some(())
        },
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    srv.kill9();
    running.join().unwrap();
    // An orphan of this instance (a sandbox no session knows), as a crash between the sandbox
    // and its record would leave.
    let orphan = format!(
        "{}00000000-0000-4000-8000-000000000000",
        sandbox_prefix(&root)
    );
    let o = std::process::Command::new(gocker_bin())
        .args([
            "run",
            "-d",
            "--name",
            &orphan,
            "--network",
            "none",
            "--rootfs",
        ])
        .arg(rootfs().unwrap())
        .args(["/bin/sleep", "600"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::thread::sleep(std::time::Duration::from_secs(3));

    let srv2 = Server::start_owned(&root, srv.env.clone());
    // The session is there and usable; its sandbox was kept (the same container).
    let r = srv2.invoke(&sid, "fs.read_file", json!({"args": {"path": "kept.txt"}}));
    assert_eq!(
        r.json["invocation"]["output"]["content"], "still here\n",
        "{}",
        r.body
    );
    let names = srv2.sandboxes();
    assert!(names.contains(&sandbox), "{names:?}");
    // The running call is failed with a retryable `interrupted`, and its sleep is gone.
    let invs = std::fs::read_dir(root.join("state/invocations")).unwrap();
    let long: serde_json::Value = invs
        .flatten()
        .filter_map(|e| {
            serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(e.path()).ok()?).ok()
        })
        .find(|v| v["correlation_id"] == "long-one")
        .unwrap();
    let g = srv2.get(&format!("/v1/invocations/{}", long["id"].as_str().unwrap()));
    assert_eq!(g.json["invocation"]["status"], "failed", "{}", g.body);
    assert_eq!(g.json["invocation"]["error"]["code"], "interrupted");
    assert_eq!(g.json["invocation"]["error"]["retryable"], true);
    let ps = srv2.invoke(
        &sid,
        "shell.exec",
        json!({"approved": true, "args": {"argv": ["ps", "-o", "args"]}}),
    );
    assert!(
        !ps.json["invocation"]["output"]["stdout"]
            .as_str()
            .unwrap()
            .contains("sleep 300"),
        "{}",
        ps.body
    );
    // Finished records are as they were.
    assert_eq!(
        srv2.get(&format!("/v1/invocations/{done}")).json["invocation"]["status"],
        "succeeded"
    );
    // The orphan was removed; the expired session was reaped with its sandbox.
    assert!(!names.contains(&orphan), "orphan kept: {names:?}");
    wait_for(
        "the expired session to be reaped",
        std::time::Duration::from_secs(30),
        || {
            (srv2
                .get(&format!("/v1/sessions/{}", short["id"].as_str().unwrap()))
                .status
                == 404
                && !srv2.sandboxes().contains(&short_sandbox))
            .then_some(())
        },
    );
    assert_eq!(srv2.delete(&sid).status, 200);
    assert!(srv2.sandboxes().is_empty(), "{:?}", srv2.sandboxes());
    assert!(srv2.session_dirs().is_empty());
    drop(srv);
}
