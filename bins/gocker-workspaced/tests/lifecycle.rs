//! Lifecycle: 50 sessions created and deleted leave nothing behind; `kill -9` of the service
//! and a restart on the embedded default store (redb, `WORKSPACE_ROOT/state.redb`) lose nothing
//! (sessions usable, sandboxes kept, the running invocation reported interrupted, orphans
//! removed, expired sessions reaped); the older `file` backend still works; a second service on
//! the same root is refused with an error naming the database file.

mod common;
use common::*;
use gocker_workspace::store::Store;
use gocker_workspace::store_redb::RedbStore;
use serde_json::json;

/// Whether a process runs `argv` (the sandbox's processes are visible from the host).
fn running(argv: &[&str]) -> bool {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc").is_ok_and(|d| {
        d.flatten()
            .any(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want))
    })
}

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
    // The default store is the one redb file; the file backend's directory is not made.
    assert!(root.join("state.redb").is_file());
    assert!(!root.join("state").exists());
    let left: Vec<_> = std::fs::read_dir(root.join("artifacts"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "artifacts: {left:?}");
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
    // Once the service is gone its database opens here, and holds no record of any kind.
    drop(srv);
    let c = RedbStore::open(&root.join("state.redb"))
        .unwrap()
        .record_counts()
        .unwrap();
    assert_eq!((c.sessions, c.invocations, c.index_entries), (0, 0, 0));
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
    let long_call = std::thread::spawn(move || {
        let _ = ureq::post(&format!("{url}/v1/sessions/{sid2}/tools/shell.exec/invoke"))
            .timeout(std::time::Duration::from_secs(120))
            .send_string(&json!({"approved": true, "correlation_id": "long-one", "args": {"argv": ["sleep", "300"], "timeout_seconds": 300}}).to_string());
    });
    wait_for(
        "the long call to start",
        std::time::Duration::from_secs(60),
        || running(&["sleep", "300"]).then_some(()),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    srv.kill9();
    long_call.join().unwrap();
    // What was committed before the kill is in the file, the running call as running.
    assert!(!root.join("state").exists());
    let long_id = {
        let db = RedbStore::open(&root.join("state.redb")).unwrap();
        let invs = db.session_invocations(&sid).unwrap();
        assert_eq!(invs.len(), 2, "{invs:?}");
        assert_eq!(invs[0].id, done, "oldest first");
        assert_eq!(invs[1].correlation_id, "long-one");
        assert_eq!(invs[1].status.as_str(), "running");
        assert!(db
            .get_session(short["id"].as_str().unwrap())
            .unwrap()
            .is_some());
        invs[1].id.clone()
    };
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
    let g = srv2.get(&format!("/v1/invocations/{long_id}"));
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

#[test]
fn the_file_backend_still_works_and_survives_a_restart() {
    if !ready("the_file_backend_still_works_and_survives_a_restart") {
        return;
    }
    let tmp = TempDir::new("filebackend");
    let root = tmp.path().join("root");
    let env = [
        ("SESSION_STORE_BACKEND", "file"),
        ("INVOCATION_STORE_BACKEND", "file"),
    ];
    let mut srv = Server::start(&root, &env);
    let s = srv.session(json!({"principal": principal("acme", &["developer"])}));
    let sid = s["id"].as_str().unwrap().to_string();
    let w = srv.invoke(
        &sid,
        "fs.write_file",
        json!({"approved": true, "args": {"path": "f.txt", "content": "in files\n"}}),
    );
    assert_eq!(w.status, 200, "{}", w.body);
    let inv = w.json["invocation"]["id"].as_str().unwrap().to_string();
    assert!(root
        .join("state/sessions")
        .join(format!("{sid}.json"))
        .is_file());
    assert!(root
        .join("state/invocations")
        .join(format!("{inv}.json"))
        .is_file());
    assert!(!root.join("state.redb").exists());
    srv.kill9();
    let srv2 = Server::start(&root, &env);
    let r = srv2.invoke(&sid, "fs.read_file", json!({"args": {"path": "f.txt"}}));
    assert_eq!(
        r.json["invocation"]["output"]["content"], "in files\n",
        "{}",
        r.body
    );
    assert_eq!(
        srv2.get(&format!("/v1/invocations/{inv}")).json["invocation"]["status"],
        "succeeded"
    );
    assert_eq!(srv2.delete(&sid).status, 200);
    assert!(std::fs::read_dir(root.join("state/sessions"))
        .unwrap()
        .next()
        .is_none());
    assert!(!root.join("state.redb").exists());
    drop(srv);
}

#[test]
fn a_second_service_on_the_same_root_is_refused_naming_the_file() {
    if !ready("a_second_service_on_the_same_root_is_refused_naming_the_file") {
        return;
    }
    let tmp = TempDir::new("twice");
    let root = tmp.path().join("root");
    let srv = Server::start(&root, &[]);
    assert_eq!(srv.get("/healthz").status, 200);
    let mut c = std::process::Command::new(workspaced_bin())
        .env("PORT", "0")
        .env("WORKSPACE_ROOT", &root)
        .env("WORKSPACE_GOCKER_BIN", gocker_bin())
        .env("WORKSPACE_SANDBOX_ROOTFS", rootfs().unwrap())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_for(
        "the second service to exit",
        std::time::Duration::from_secs(30),
        || c.try_wait().unwrap(),
    );
    let mut err = String::new();
    std::io::Read::read_to_string(&mut c.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    let file = root.join("state.redb");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("already open"), "{err}");
    // The first one is unharmed.
    assert_eq!(srv.get("/healthz").status, 200);
}
