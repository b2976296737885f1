//! Auth: trusted_headers without or with a wrong token → 401; sessions and invocations are bound
//! to tenant + actor (another principal gets 404); roles come from the headers.

mod common;
use common::*;
use serde_json::json;

const TOKEN: &str = "s3cret-token-for-the-test";

fn h<'a>(
    tenant: &'a str,
    actor: &'a str,
    roles: &'a str,
    token: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("X-Workspace-Tenant-Id", tenant),
        ("X-Workspace-Actor-Id", actor),
        ("X-Workspace-Roles", roles),
        ("X-Workspace-Auth-Token", token),
    ]
}

#[test]
fn trusted_headers_need_the_token_and_bind_sessions_to_their_principal() {
    if !ready("trusted_headers_need_the_token_and_bind_sessions_to_their_principal") {
        return;
    }
    let tmp = TempDir::new("auth");
    let srv = Server::start(
        &tmp.path().join("root"),
        &[
            ("WORKSPACE_AUTH_MODE", "trusted_headers"),
            ("WORKSPACE_AUTH_SHARED_TOKEN", TOKEN),
        ],
    );
    let body = json!({"allowed_paths": ["."]});
    // No token, a wrong one, one of another length, no principal headers: 401 with the error shape.
    for headers in [
        vec![
            ("X-Workspace-Tenant-Id", "a"),
            ("X-Workspace-Actor-Id", "x"),
        ],
        h("a", "x", "developer", "wrong-token-for-the-test!"),
        h("a", "x", "developer", "s"),
        vec![("X-Workspace-Auth-Token", TOKEN)],
    ] {
        let r = srv.call("POST", "/v1/sessions", &headers, Some(&body));
        assert_eq!(r.status, 401, "{headers:?}: {}", r.body);
        assert_eq!(r.json["error"]["code"], "unauthorized");
    }
    assert!(srv.sandboxes().is_empty(), "a refused call made a sandbox");
    // /healthz needs no token.
    assert_eq!(srv.get("/healthz").status, 200);

    let a = h("tenant-a", "alice", "developer", TOKEN);
    let r = srv.call("POST", "/v1/sessions", &a, Some(&body));
    assert_eq!(r.status, 201, "{}", r.body);
    let sid = r.json["session"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.json["session"]["principal"]["tenant_id"], "tenant-a");
    let w = srv.call(
        "POST",
        &format!("/v1/sessions/{sid}/tools/fs.write_file/invoke"),
        &a,
        Some(&json!({"approved": true, "args": {"path": "a.txt", "content": "A"}})),
    );
    assert_eq!(w.status, 200, "{}", w.body);
    let inv = w.json["invocation"]["id"].as_str().unwrap().to_string();

    // Tenant B, and another actor of tenant A, see nothing of it: 404 everywhere.
    for other in [
        h("tenant-b", "alice", "admin", TOKEN),
        h("tenant-a", "mallory", "admin", TOKEN),
    ] {
        for (m, p) in [
            ("GET", format!("/v1/sessions/{sid}/tools")),
            ("GET", format!("/v1/invocations/{inv}")),
            ("GET", format!("/v1/invocations/{inv}/logs")),
            ("GET", format!("/v1/invocations/{inv}/artifacts")),
            ("DELETE", format!("/v1/sessions/{sid}")),
        ] {
            let r = srv.call(m, &p, &other, None);
            assert_eq!(r.status, 404, "{m} {p}: {}", r.body);
            assert_eq!(r.json["error"]["code"], "not_found");
        }
        let r = srv.call(
            "POST",
            &format!("/v1/sessions/{sid}/tools/fs.read_file/invoke"),
            &other,
            Some(&json!({"args": {"path": "a.txt"}})),
        );
        assert_eq!(r.status, 404, "{}", r.body);
    }
    // A body principal that differs from the headers is refused.
    let r = srv.call(
        "POST",
        "/v1/sessions",
        &a,
        Some(&json!({"principal": principal("tenant-b", &["admin"])})),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // Roles come from the headers: a viewer of tenant A may read but not write; shell.exec needs admin.
    let viewer = h("tenant-a", "alice", "viewer", TOKEN);
    let r = srv.call(
        "POST",
        &format!("/v1/sessions/{sid}/tools/fs.read_file/invoke"),
        &viewer,
        Some(&json!({"args": {"path": "a.txt"}})),
    );
    assert_eq!(r.json["invocation"]["output"]["content"], "A", "{}", r.body);
    let r = srv.call(
        "POST",
        &format!("/v1/sessions/{sid}/tools/fs.write_file/invoke"),
        &viewer,
        Some(&json!({"approved": true, "args": {"path": "a.txt", "content": "B"}})),
    );
    assert_eq!(
        (r.status, r.json["error"]["code"].as_str()),
        (403, Some("policy_denied")),
        "{}",
        r.body
    );
    let r = srv.call(
        "POST",
        &format!("/v1/sessions/{sid}/tools/shell.exec/invoke"),
        &a,
        Some(&json!({"approved": true, "args": {"argv": ["id"]}})),
    );
    assert_eq!(
        (r.status, r.json["error"]["code"].as_str()),
        (403, Some("policy_denied")),
        "{}",
        r.body
    );
    let admin = h("tenant-a", "alice", "admin", TOKEN);
    let r = srv.call(
        "POST",
        &format!("/v1/sessions/{sid}/tools/shell.exec/invoke"),
        &admin,
        Some(&json!({"approved": true, "args": {"argv": ["cat", "a.txt"]}})),
    );
    assert_eq!(r.json["invocation"]["output"]["stdout"], "A", "{}", r.body);
    let tools = srv.call("GET", &format!("/v1/sessions/{sid}/tools"), &viewer, None);
    let vt = tools.json["tools"].as_array().unwrap();
    assert!(
        !vt.is_empty() && vt.iter().all(|t| t["side_effects"] == "none"),
        "a viewer's catalog: {vt:?}"
    );

    let r = srv.call("DELETE", &format!("/v1/sessions/{sid}"), &a, None);
    assert_eq!(r.json, json!({"closed": true}));
    assert!(srv.sandboxes().is_empty());
}

#[test]
fn payload_mode_takes_the_principal_from_the_body() {
    if !ready("payload_mode_takes_the_principal_from_the_body") {
        return;
    }
    let tmp = TempDir::new("payload");
    let srv = Server::start(&tmp.path().join("root"), &[]);
    let r = srv.call(
        "POST",
        "/v1/sessions",
        &[],
        Some(&json!({"allowed_paths": ["."]})),
    );
    assert_eq!(
        (r.status, r.json["error"]["code"].as_str()),
        (400, Some("invalid_argument")),
        "{}",
        r.body
    );
    let r = srv.call(
        "POST",
        "/v1/sessions",
        &[],
        Some(&json!({"principal": {"tenant_id": "t", "actor_id": "a", "roles": [], "extra": 1}})),
    );
    assert_eq!(
        r.status, 400,
        "unknown principal fields are refused: {}",
        r.body
    );
    assert!(srv.sandboxes().is_empty());
}
