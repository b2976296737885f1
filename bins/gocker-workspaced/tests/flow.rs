//! The model's example flow against the real binary over HTTP: a session on a git repository
//! made by the test, the catalog, approval, file tools, git in the sandbox, repo.test with its
//! failures, and the invocation, logs and artifacts endpoints with their sha256.

mod common;
use common::*;
use serde_json::json;

#[test]
fn the_example_flow() {
    if !ready("the_example_flow") {
        return;
    }
    let tmp = TempDir::new("flow");
    let repo = git_repo(tmp.path());
    let root = toolchain_rootfs(tmp.path());
    let mut env = vec![];
    match &root {
        Some(r) => env.push(("WORKSPACE_SANDBOX_ROOTFS", r.to_str().unwrap())),
        None => eprintln!("note: no git on the host; git.diff is checked for its clear error only"),
    }
    let srv = Server::start(&tmp.path().join("root"), &env);
    assert_eq!(srv.get("/healthz").json, json!({"status": "ok"}));

    let s = srv.session(json!({
        "principal": principal("acme", &["developer"]),
        "source_repo_path": repo,
        "allowed_paths": ["."],
        "expires_in_seconds": 3600,
        "metadata": {"ticket": "T-1"},
    }));
    let sid = s["id"].as_str().unwrap().to_string();
    assert_eq!(s["workspace_path"], "/workspace");
    assert_eq!(s["metadata"]["ticket"], "T-1");
    assert_eq!(s["principal"]["tenant_id"], "acme");
    assert!(s["expires_at"].is_string());

    // The catalog: a developer's, without shell.exec, each entry complete.
    let tools = srv.get(&format!("/v1/sessions/{sid}/tools"));
    assert_eq!(tools.status, 200);
    let list = tools.json["tools"].as_array().unwrap();
    assert!(list.iter().any(|t| t["name"] == "fs.write_file"));
    assert!(
        list.iter().all(|t| t["name"] != "shell.exec"),
        "a developer does not get shell.exec"
    );
    for k in [
        "name",
        "description",
        "input_schema",
        "output_schema",
        "scope",
        "side_effects",
        "risk_level",
        "requires_approval",
        "idempotency",
        "constraints",
        "preconditions",
        "postconditions",
        "cost_hint",
        "observability",
        "examples",
    ] {
        assert!(list[0].get(k).is_some(), "catalog entry without {k}");
    }

    // fs.write_file without approval: 428, and nothing written.
    let w = srv.invoke(
        &sid,
        "fs.write_file",
        json!({"args": {"path": "notes/todo.txt", "content": "ship it\n"}}),
    );
    assert_eq!(w.status, 428, "{}", w.body);
    assert_eq!(w.json["error"]["code"], "approval_required");
    assert_eq!(w.json["invocation"]["status"], "denied");
    let w = srv.invoke(
        &sid,
        "fs.read_file",
        json!({"args": {"path": "notes/todo.txt"}}),
    );
    assert_eq!(w.status, 404, "{}", w.body);
    // With approval: written (X-Correlation-Id fills correlation_id).
    let w = srv.call(
        "POST",
        &format!("/v1/sessions/{sid}/tools/fs.write_file/invoke"),
        &[("X-Correlation-Id", "corr-42")],
        Some(
            &json!({"approved": true, "args": {"path": "notes/todo.txt", "content": "ship it\n"}}),
        ),
    );
    assert_eq!(w.status, 200, "{}", w.body);
    assert_eq!(w.json["invocation"]["status"], "succeeded");
    assert_eq!(w.json["invocation"]["correlation_id"], "corr-42");
    let r = srv.invoke(
        &sid,
        "fs.read_file",
        json!({"args": {"path": "notes/todo.txt"}}),
    );
    assert_eq!(r.json["invocation"]["output"]["content"], "ship it\n");
    // The source repository was never written.
    assert!(!repo.join("notes").exists());

    // fs.patch, then git.diff in the sandbox shows the change.
    let patch =
        "--- a/greeting.txt\n+++ b/greeting.txt\n@@ -1,2 +1,2 @@\n hello\n-world\n+goodbye\n";
    let p = srv.invoke(
        &sid,
        "fs.patch",
        json!({"approved": true, "args": {"path": "greeting.txt", "patch": patch}}),
    );
    assert_eq!(p.status, 200, "{}", p.body);
    let r = srv.invoke(
        &sid,
        "fs.read_file",
        json!({"args": {"path": "greeting.txt"}}),
    );
    assert_eq!(
        r.json["invocation"]["output"]["content"],
        "hello\ngoodbye\n"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("greeting.txt")).unwrap(),
        "hello\nworld\n"
    );
    let d = srv.invoke(&sid, "git.diff", json!({}));
    if root.is_some() {
        assert_eq!(d.status, 200, "{}", d.body);
        let out = d.json["invocation"]["output"]["stdout"].as_str().unwrap();
        assert!(out.contains("-world") && out.contains("+goodbye"), "{out}");
        let st = srv.invoke(&sid, "git.status", json!({}));
        assert!(
            st.json["invocation"]["output"]["stdout"]
                .as_str()
                .unwrap()
                .contains("?? notes/"),
            "{}",
            st.body
        );
    } else {
        assert_eq!(d.json["error"]["code"], "execution_failed", "{}", d.body);
        assert!(d.body.contains("git is not installed"), "{}", d.body);
    }

    // repo.test: the sh-based runner (the rootfs has no python3 or cargo) and its failures.
    let det = srv.invoke(&sid, "repo.detect", json!({}));
    assert_eq!(
        det.json["invocation"]["output"]["toolchain"], "script",
        "{}",
        det.body
    );
    // The patch made test_says_goodbye pass; break test_greeting_exists instead.
    let mv = srv.invoke(&sid, "fs.move", json!({"approved": true, "args": {"source": "greeting.txt", "destination": "notes/greeting.txt"}}));
    assert_eq!(mv.status, 200, "{}", mv.body);
    let t = srv.invoke(&sid, "repo.test", json!({"correlation_id": "run-tests"}));
    assert_eq!(t.status, 422, "{}", t.body);
    let inv = &t.json["invocation"];
    assert_eq!(inv["status"], "failed");
    assert_eq!(inv["exit_code"], 1);
    assert_eq!(inv["output"]["passed"], false);
    assert_eq!(
        inv["output"]["failures"],
        json!(["test_greeting_exists", "test_says_goodbye"])
    );
    assert_eq!(t.json["error"]["code"], "execution_failed");
    let mv = srv.invoke(&sid, "fs.move", json!({"approved": true, "args": {"source": "notes/greeting.txt", "destination": "greeting.txt"}}));
    assert_eq!(mv.status, 200);
    let t2 = srv.invoke(&sid, "repo.test", json!({}));
    assert_eq!(t2.status, 200, "{}", t2.body);
    assert_eq!(t2.json["invocation"]["output"]["passed"], true);
    // extra_args policy: metacharacters are refused before anything runs.
    let bad = srv.invoke(
        &sid,
        "repo.test",
        json!({"args": {"extra_args": ["; rm -rf /"]}}),
    );
    assert_eq!(bad.status, 403, "{}", bad.body);

    // The invocation, logs and artifacts endpoints return what was recorded.
    let id = inv["id"].as_str().unwrap();
    let g = srv.get(&format!("/v1/invocations/{id}"));
    assert_eq!(g.status, 200);
    assert_eq!(g.json["invocation"]["id"], id);
    assert_eq!(g.json["invocation"]["session_id"], sid.as_str());
    assert_eq!(g.json["invocation"]["tool_name"], "repo.test");
    assert_eq!(g.json["invocation"]["correlation_id"], "run-tests");
    assert_eq!(g.json["invocation"]["status"], "failed");
    for k in [
        "started_at",
        "completed_at",
        "duration_ms",
        "exit_code",
        "output",
        "logs",
        "artifacts",
        "error",
    ] {
        assert!(
            g.json["invocation"].get(k).is_some(),
            "invocation without {k}"
        );
    }
    let logs = srv.get(&format!("/v1/invocations/{id}/logs"));
    let lines: Vec<&str> = logs.json["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert!(lines.contains(&"FAIL: test_greeting_exists"), "{lines:?}");
    assert!(logs.json["logs"][0]["channel"] == "stdout" && logs.json["logs"][0]["at"].is_string());
    let arts = srv.get(&format!("/v1/invocations/{id}/artifacts"));
    let a = arts.json["artifacts"].as_array().unwrap();
    let stdout = a
        .iter()
        .find(|a| a["name"] == "stdout.txt")
        .expect("stdout artifact");
    let content = ureq::get(&format!(
        "{}/v1/invocations/{id}/artifacts/{}/content",
        srv.url,
        stdout["id"].as_str().unwrap()
    ))
    .call()
    .unwrap();
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut content.into_reader(), &mut data).unwrap();
    assert_eq!(stdout["sha256"].as_str().unwrap(), sha256_hex(&data));
    assert_eq!(stdout["size_bytes"].as_u64().unwrap(), data.len() as u64);
    assert_eq!(
        String::from_utf8_lossy(&data),
        inv["output"]["stdout"].as_str().unwrap()
    );
    // artifact.read through the tools gives the same bytes and digest.
    let ar = srv.invoke(
        &sid,
        "artifact.read",
        json!({"args": {"artifact_id": stdout["id"]}}),
    );
    assert_eq!(ar.json["invocation"]["output"]["sha256"], stdout["sha256"]);

    // Unknown fields and bodies over 2 MiB are refused; errors have one shape.
    let u = srv.call(
        "POST",
        &format!("/v1/sessions/{sid}/tools/fs.list/invoke"),
        &[],
        Some(&json!({"args": {}, "bogus": 1})),
    );
    assert_eq!(
        (u.status, u.json["error"]["code"].as_str()),
        (400, Some("invalid_argument")),
        "{}",
        u.body
    );
    // Over 2 MiB: refused with the error shape; the service may also close the connection
    // before the client has sent everything (the client then sees a reset, not an answer).
    let big = vec![b' '; 3 * 1024 * 1024];
    match ureq::post(&format!("{}/v1/sessions", srv.url))
        .set("content-type", "application/json")
        .send_bytes(&big)
    {
        Err(ureq::Error::Status(code, r)) => {
            assert!(code == 400 || code == 413, "{code}");
            let v: serde_json::Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
            assert_eq!(v["error"]["code"], "invalid_argument", "{v}");
        }
        Err(ureq::Error::Transport(t)) => eprintln!("the oversized body was cut off: {t}"),
        Ok(r) => panic!("an oversized body was accepted: {}", r.status()),
    }
    assert!(
        srv.sandboxes().len() == 1,
        "the oversized request made a sandbox"
    );
    let nf = srv.get("/v1/invocations/00000000-0000-4000-8000-000000000000");
    assert_eq!(
        (nf.status, nf.json["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    // Metrics saw it all.
    let m = srv.get("/metrics").body;
    assert!(
        m.contains("workspace_invocations_total{tool=\"repo.test\",status=\"failed\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("workspace_denied_total{tool=\"fs.write_file\",reason=\"approval_required\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("workspace_invocation_duration_seconds_bucket"),
        "{m}"
    );

    // Delete: the sandbox, the workspace and the records go.
    let del = srv.delete(&sid);
    assert_eq!(del.json, json!({"closed": true}));
    assert!(srv.sandboxes().is_empty(), "{:?}", srv.sandboxes());
    assert!(srv.session_dirs().is_empty(), "{:?}", srv.session_dirs());
    assert_eq!(srv.get(&format!("/v1/invocations/{id}")).status, 404);
    assert_eq!(srv.get(&format!("/v1/sessions/{sid}/tools")).status, 404);
}
