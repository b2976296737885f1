//! The service through its traits, without root: a fake sandbox provider that records what it
//! is asked and answers as told, the memory and file stores, real workspaces in a temp dir.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gocker_workspace::model::{CreateSession, InvocationStatus, Principal};
use gocker_workspace::policy::Policy;
use gocker_workspace::provider::{
    ExecOutcome, ExecRequest, SandboxHandle, SandboxProvider, SandboxSpec,
};
use gocker_workspace::store::{FileStore, MemoryStore, Store};
use gocker_workspace::{Config, ErrorCode, Service};
use serde_json::json;

#[derive(Default)]
struct Fake {
    sandboxes: Mutex<Vec<String>>,
    execs: Mutex<Vec<(String, ExecRequest)>>,
    answer: Mutex<ExecOutcome>,
}

impl SandboxProvider for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn create(&self, spec: &SandboxSpec) -> gocker_workspace::Result<SandboxHandle> {
        assert!(spec.workspace_dir.is_dir());
        assert!(!spec.network);
        self.sandboxes.lock().unwrap().push(spec.name.clone());
        Ok(SandboxHandle {
            id: spec.name.clone(),
            start_time: Duration::from_millis(3),
        })
    }
    fn exec(&self, sandbox: &str, req: &ExecRequest) -> gocker_workspace::Result<ExecOutcome> {
        self.execs
            .lock()
            .unwrap()
            .push((sandbox.into(), req.clone()));
        Ok(self.answer.lock().unwrap().clone())
    }
    fn kill_processes(&self, _sandbox: &str) -> gocker_workspace::Result<()> {
        Ok(())
    }
    fn exists(&self, sandbox: &str) -> gocker_workspace::Result<bool> {
        Ok(self.sandboxes.lock().unwrap().iter().any(|s| s == sandbox))
    }
    fn destroy(&self, sandbox: &str) -> gocker_workspace::Result<()> {
        self.sandboxes.lock().unwrap().retain(|s| s != sandbox);
        Ok(())
    }
    fn list(&self, prefix: &str) -> gocker_workspace::Result<Vec<String>> {
        Ok(self
            .sandboxes
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.starts_with(prefix))
            .cloned()
            .collect())
    }
    fn health(&self) -> gocker_workspace::Result<()> {
        Ok(())
    }
    fn isolation(&self) -> &'static str {
        "namespaces"
    }
}

fn who(tenant: &str, roles: &[&str]) -> Principal {
    Principal {
        tenant_id: tenant.into(),
        actor_id: "agent".into(),
        roles: roles.iter().map(|s| s.to_string()).collect(),
    }
}

fn setup(store: Arc<dyn Store>, dir: &std::path::Path) -> (Arc<Fake>, Service) {
    let fake = Arc::new(Fake::default());
    let cfg = Config::new(dir.join("ws"), dir.join("artifacts"));
    let svc = Service::new(cfg, store, fake.clone(), Policy::default()).unwrap();
    (fake, svc)
}

fn repo(dir: &std::path::Path) -> String {
    let r = dir.join("repo");
    std::fs::create_dir_all(r.join("src")).unwrap();
    std::fs::write(r.join("src/lib.txt"), "one\ntwo\nthree\n").unwrap();
    std::os::unix::fs::symlink("/etc/shadow", r.join("shadow")).unwrap();
    r.display().to_string()
}

#[test]
fn the_example_flow_through_the_traits() {
    let t = tempfile::tempdir().unwrap();
    let (fake, svc) = setup(Arc::new(MemoryStore::default()), t.path());
    let dev = who("a", &["developer"]);
    let src = repo(t.path());
    let s = svc
        .create_session(
            dev.clone(),
            CreateSession {
                source_repo_path: Some(src.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(s.workspace_path, "/workspace");
    let inv = |tool: &str, approved: bool, args: serde_json::Value| {
        call(
            &svc,
            &dev,
            true,
            &s.id,
            tool,
            Some("corr-1".into()),
            approved,
            args,
        )
        .unwrap()
    };
    let i = inv(
        "fs.write_file",
        false,
        json!({"path": "notes.txt", "content": "hi\n"}),
    );
    assert_eq!(i.status, InvocationStatus::Denied);
    assert_eq!(i.error.as_ref().unwrap().code, ErrorCode::ApprovalRequired);
    assert!(!svc.workspace_dir(&s.id).join("notes.txt").exists());
    let i = inv(
        "fs.write_file",
        true,
        json!({"path": "notes.txt", "content": "hi\n"}),
    );
    assert_eq!(i.status, InvocationStatus::Succeeded, "{:?}", i.error);
    assert_eq!(
        std::fs::read_to_string(svc.workspace_dir(&s.id).join("notes.txt")).unwrap(),
        "hi\n"
    );
    assert_eq!(i.correlation_id, "corr-1");
    let i = inv("fs.read_file", false, json!({"path": "src/lib.txt"}));
    assert_eq!(i.output["content"], "one\ntwo\nthree\n");
    let i = inv(
        "fs.patch",
        true,
        json!({"path": "src/lib.txt", "patch": "--- a/src/lib.txt\n+++ b/src/lib.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n"}),
    );
    assert_eq!(i.status, InvocationStatus::Succeeded, "{:?}", i.error);
    assert_eq!(
        std::fs::read_to_string(t.path().join("repo/src/lib.txt")).unwrap(),
        "one\ntwo\nthree\n",
        "the source is never written"
    );
    assert_eq!(
        std::fs::read_to_string(svc.workspace_dir(&s.id).join("src/lib.txt")).unwrap(),
        "one\nTWO\nthree\n"
    );
    // The planted link to /etc/shadow is refused; so are escapes and NUL bytes.
    for (path, code) in [
        ("shadow", ErrorCode::PolicyDenied),
        ("../x", ErrorCode::PolicyDenied),
        ("/etc/passwd", ErrorCode::PolicyDenied),
        ("a\0b", ErrorCode::InvalidArgument),
    ] {
        let i = inv("fs.read_file", false, json!({"path": path}));
        assert_eq!(i.error.as_ref().map(|e| e.code), Some(code), "{path:?}");
        assert_eq!(i.status, InvocationStatus::Denied);
    }
    // Unknown argument fields are refused.
    let i = inv(
        "fs.read_file",
        false,
        json!({"path": "notes.txt", "bogus": 1}),
    );
    assert_eq!(i.error.unwrap().code, ErrorCode::InvalidArgument);
    // git runs in the sandbox, in the workspace, with its output recorded as artifacts.
    *fake.answer.lock().unwrap() = ExecOutcome {
        exit_code: Some(0),
        stdout: b"diff --git a/x b/x\n".to_vec(),
        ..Default::default()
    };
    let i = inv("git.diff", false, json!({}));
    assert_eq!(i.status, InvocationStatus::Succeeded);
    let (sb, req) = fake.execs.lock().unwrap().last().cloned().unwrap();
    assert_eq!(sb, s.sandbox_id);
    assert_eq!(req.workdir, "/workspace");
    assert!(req.argv.starts_with(&["git".to_string()]) && req.argv.contains(&"diff".to_string()));
    assert_eq!(i.artifacts.len(), 1);
    assert_eq!(
        i.artifacts[0].sha256,
        gocker_workspace::artifacts::sha256_hex(b"diff --git a/x b/x\n")
    );
    assert_eq!(i.logs[0].channel, "stdout");
    // A developer may not call shell.exec; nor see it in the catalog.
    let i = inv("shell.exec", true, json!({"argv": ["id"]}));
    assert_eq!(i.error.unwrap().code, ErrorCode::PolicyDenied);
    assert!(svc.tools(&dev).iter().all(|t| t.name != "shell.exec"));
    assert!(svc
        .tools(&who("a", &["admin"]))
        .iter()
        .any(|t| t.name == "shell.exec"));
    // Another tenant sees nothing.
    let other = who("b", &["admin"]);
    assert_eq!(
        call(&svc, &other, true, &s.id, "fs.list", None, false, json!({}))
            .unwrap_err()
            .code(),
        ErrorCode::NotFound
    );
    assert_eq!(
        svc.invocation(Some(&other), &i.id).unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(
        svc.delete_session(Some(&other), &s.id).unwrap_err().code(),
        ErrorCode::NotFound
    );
    // Delete removes the sandbox, the workspace, the records.
    svc.delete_session(Some(&dev), &s.id).unwrap();
    assert!(fake.sandboxes.lock().unwrap().is_empty());
    assert!(!svc.workspace_dir(&s.id).exists());
    assert!(svc.store().list_sessions().unwrap().is_empty());
    assert!(svc.invocation(None, &i.id).is_err());
}

#[test]
fn timeouts_and_failures_are_reported_with_their_codes() {
    let t = tempfile::tempdir().unwrap();
    let (fake, svc) = setup(Arc::new(MemoryStore::default()), t.path());
    let admin = who("a", &["admin"]);
    let s = svc
        .create_session(admin.clone(), CreateSession::default())
        .unwrap();
    *fake.answer.lock().unwrap() = ExecOutcome {
        exit_code: None,
        timed_out: true,
        ..Default::default()
    };
    let i = call(
        &svc,
        &admin,
        true,
        &s.id,
        "shell.exec",
        None,
        true,
        json!({"argv": ["sleep", "600"], "timeout_seconds": 2}),
    )
    .unwrap();
    assert_eq!(i.status, InvocationStatus::Failed);
    let e = i.error.unwrap();
    assert_eq!((e.code, e.retryable), (ErrorCode::Timeout, true));
    assert_eq!(
        fake.execs.lock().unwrap()[0].1.timeout,
        Duration::from_secs(2)
    );
    let i = call(
        &svc,
        &admin,
        true,
        &s.id,
        "shell.exec",
        None,
        true,
        json!({"argv": ["x"], "timeout_seconds": 100000}),
    )
    .unwrap();
    assert_eq!(i.error.unwrap().code, ErrorCode::InvalidArgument);
    *fake.answer.lock().unwrap() = ExecOutcome {
        exit_code: Some(3),
        ..Default::default()
    };
    let i = call(
        &svc,
        &admin,
        true,
        &s.id,
        "shell.exec",
        None,
        true,
        json!({"argv": ["false"], "cwd": "sub/../.."}),
    )
    .unwrap();
    assert_eq!(i.error.unwrap().code, ErrorCode::PolicyDenied);
    let i = call(
        &svc,
        &admin,
        true,
        &s.id,
        "shell.exec",
        None,
        true,
        json!({"argv": ["false"]}),
    )
    .unwrap();
    assert_eq!(
        (i.exit_code, i.error.unwrap().code),
        (Some(3), ErrorCode::ExecutionFailed)
    );
    // repo.test: nothing to detect; extra_args policy.
    let i = call(
        &svc,
        &admin,
        true,
        &s.id,
        "repo.test",
        None,
        false,
        json!({}),
    )
    .unwrap();
    assert_eq!(i.error.unwrap().code, ErrorCode::ExecutionFailed);
    std::fs::write(svc.workspace_dir(&s.id).join("pytest.ini"), "").unwrap();
    let i = call(
        &svc,
        &admin,
        true,
        &s.id,
        "repo.test",
        None,
        false,
        json!({"extra_args": ["--rootdir=/"]}),
    )
    .unwrap();
    assert_eq!(i.error.unwrap().code, ErrorCode::PolicyDenied);
    *fake.answer.lock().unwrap() = ExecOutcome {
        exit_code: Some(1),
        stdout: b"FAILED test_x.py::test_b - assert 1 == 2\n1 failed, 1 passed\n".to_vec(),
        ..Default::default()
    };
    let i = call(
        &svc,
        &admin,
        true,
        &s.id,
        "repo.test",
        None,
        false,
        json!({"extra_args": ["-k", "test_b"]}),
    )
    .unwrap();
    assert_eq!(i.output["failures"], json!(["test_x.py::test_b"]));
    assert_eq!(i.output["passed"], json!(false));
    assert_eq!(
        fake.execs.lock().unwrap().last().unwrap().1.argv,
        ["python3", "-m", "pytest", "-rA", "-k", "test_b"]
    );
}

#[test]
fn allowed_paths_scope_every_path_field() {
    let t = tempfile::tempdir().unwrap();
    let (_fake, svc) = setup(Arc::new(MemoryStore::default()), t.path());
    let dev = who("a", &["developer"]);
    let src = repo(t.path());
    let s = svc
        .create_session(
            dev.clone(),
            CreateSession {
                source_repo_path: Some(src),
                allowed_paths: vec!["src".into()],
                ..Default::default()
            },
        )
        .unwrap();
    let code = |tool: &str, args: serde_json::Value| {
        call(&svc, &dev, true, &s.id, tool, None, true, args)
            .unwrap()
            .error
            .map(|e| e.code)
    };
    assert_eq!(code("fs.read_file", json!({"path": "src/lib.txt"})), None);
    assert_eq!(
        code("fs.read_file", json!({"path": "shadow"})),
        Some(ErrorCode::PolicyDenied)
    );
    assert_eq!(
        code(
            "fs.move",
            json!({"source": "src/lib.txt", "destination": "out.txt"})
        ),
        Some(ErrorCode::PolicyDenied)
    );
    assert_eq!(
        code(
            "fs.copy",
            json!({"source": "shadow", "destination": "src/x"})
        ),
        Some(ErrorCode::PolicyDenied)
    );
    assert_eq!(
        code("git.diff", json!({"paths": ["../etc"]})),
        Some(ErrorCode::PolicyDenied)
    );
    let l = call(
        &svc,
        &dev,
        true,
        &s.id,
        "fs.list",
        None,
        false,
        json!({"path": "src", "recursive": true}),
    )
    .unwrap();
    assert_eq!(l.output["entries"].as_array().unwrap().len(), 1);
}

#[test]
fn a_restart_finds_everything_and_reports_interrupted_invocations() {
    let t = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(FileStore::open(&t.path().join("state")).unwrap());
    let (fake, svc) = setup(store.clone(), t.path());
    let dev = who("a", &["developer"]);
    let s = svc
        .create_session(dev.clone(), CreateSession::default())
        .unwrap();
    let gone = svc
        .create_session(
            dev.clone(),
            CreateSession {
                expires_in_seconds: Some(0),
                ..Default::default()
            },
        )
        .unwrap();
    let i = call(&svc, &dev, true, &s.id, "fs.list", None, false, json!({})).unwrap();
    // As if the service died mid-call: a running record, a lost sandbox, an orphan.
    let mut running = i.clone();
    running.id = gocker_workspace::ids::new_id();
    running.status = InvocationStatus::Running;
    store.put_invocation(&running).unwrap();
    fake.sandboxes.lock().unwrap().clear();
    fake.sandboxes.lock().unwrap().push("gws-orphan".into());
    drop(svc);
    let svc2 = Service::new(
        Config::new(t.path().join("ws"), t.path().join("artifacts")),
        store,
        fake.clone(),
        Policy::default(),
    )
    .unwrap();
    let r = svc2.recover().unwrap();
    assert_eq!(
        (
            r.sessions,
            r.sandboxes_recreated,
            r.interrupted_invocations,
            r.orphan_sandboxes_removed,
            r.expired_sessions_reaped
        ),
        (1, 1, 1, 1, 1),
        "{r:?}"
    );
    let ri = svc2.invocation(Some(&dev), &running.id).unwrap();
    assert_eq!(ri.status, InvocationStatus::Failed);
    let e = ri.error.unwrap();
    assert_eq!((e.code, e.retryable), (ErrorCode::Interrupted, true));
    assert_eq!(*fake.sandboxes.lock().unwrap(), vec![s.sandbox_id.clone()]);
    assert!(!svc2.workspace_dir(&gone.id).exists());
    assert_eq!(
        call(&svc2, &dev, true, &s.id, "fs.list", None, false, json!({}))
            .unwrap()
            .status,
        InvocationStatus::Succeeded
    );
}

#[allow(clippy::too_many_arguments)]
fn call(
    svc: &Service,
    p: &Principal,
    check_owner: bool,
    sid: &str,
    tool: &str,
    correlation_id: Option<String>,
    approved: bool,
    args: serde_json::Value,
) -> gocker_workspace::Result<gocker_workspace::model::Invocation> {
    let req = gocker_workspace::model::InvokeRequest {
        correlation_id,
        approved,
        args,
    };
    svc.invoke(p, check_owner, sid, tool, req)
}
