//! The MCP endpoint against the real binary over HTTP: the streamable-HTTP transport by hand
//! (initialize, tools/list, tools/call, malformed messages), the same policy as the REST path,
//! and a client that no one here wrote: the official `mcp` Python SDK from PyPI.

mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// The `mcp` release of the Python SDK the test installs (PyPI).
const PY_MCP_VERSION: &str = "1.30.0";

/// A minimal MCP client over streamable HTTP: JSON-RPC POSTs, SSE or JSON answers, the
/// `Mcp-Session-Id` of the initialize answer on every later request.
struct Mcp<'a> {
    url: String,
    headers: Vec<(&'a str, &'a str)>,
    session: Option<String>,
    next_id: u64,
}

struct Answer {
    status: u16,
    content_type: String,
    session: Option<String>,
    body: String,
    /// The JSON-RPC message of the answer (the last `data:` event of an SSE stream).
    msg: Value,
}

fn post(url: &str, headers: &[(&str, &str)], session: Option<&str>, body: &[u8]) -> Answer {
    let mut r = ureq::post(url)
        .timeout(Duration::from_secs(120))
        .set("content-type", "application/json")
        .set("accept", "application/json, text/event-stream")
        .set("mcp-protocol-version", "2025-06-18");
    for (k, v) in headers {
        r = r.set(k, v);
    }
    if let Some(s) = session {
        r = r.set("mcp-session-id", s);
    }
    let resp = match r.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("HTTP: {e}"),
    };
    let status = resp.status();
    let content_type = resp.content_type().to_string();
    let session = resp.header("mcp-session-id").map(String::from);
    let body = resp.into_string().unwrap_or_default();
    let msg = if content_type == "text/event-stream" {
        body.split("\n\n")
            .filter_map(|ev| {
                let data: Vec<&str> = ev
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                serde_json::from_str::<Value>(&data.join("\n")).ok()
            })
            .last()
            .unwrap_or(Value::Null)
    } else {
        serde_json::from_str(&body).unwrap_or(Value::Null)
    };
    Answer {
        status,
        content_type,
        session,
        body,
        msg,
    }
}

impl<'a> Mcp<'a> {
    fn new(url: String, headers: Vec<(&'a str, &'a str)>) -> Self {
        Mcp {
            url,
            headers,
            session: None,
            next_id: 1,
        }
    }

    fn send(&self, msg: &Value) -> Answer {
        post(
            &self.url,
            &self.headers,
            self.session.as_deref(),
            msg.to_string().as_bytes(),
        )
    }

    /// A request; panics unless the answer is its JSON-RPC response.
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let a = self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        assert_eq!(a.status, 200, "{method}: {}", a.body);
        assert_eq!(a.msg["id"], json!(id), "{method}: {}", a.body);
        assert_eq!(a.msg["jsonrpc"], "2.0");
        a.msg
    }

    fn initialize(&mut self) -> Value {
        let a = self.send(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "gocker-test", "version": "1"},
            }}),
        );
        assert_eq!(a.status, 200, "initialize: {}", a.body);
        self.session = Some(a.session.clone().expect("an Mcp-Session-Id header"));
        let n = self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        assert_eq!(n.status, 202, "notifications/initialized: {}", n.body);
        a.msg["result"].clone()
    }

    fn call(&mut self, tool: &str, args: Value) -> Value {
        self.request("tools/call", json!({"name": tool, "arguments": args}))
    }
}

fn error_code(result: &Value) -> Value {
    let text = result["content"][0]["text"].as_str().unwrap_or("null");
    serde_json::from_str::<Value>(text).unwrap_or(Value::Null)["error"]["code"].clone()
}

fn dev_headers(tenant: &str) -> Vec<(&str, &str)> {
    vec![
        ("X-Workspace-Tenant-Id", tenant),
        ("X-Workspace-Actor-Id", "agent"),
        ("X-Workspace-Roles", "developer"),
    ]
}

#[test]
fn mcp_over_streamable_http_with_the_rest_policy() {
    if !ready("mcp_over_streamable_http_with_the_rest_policy") {
        return;
    }
    let tmp = TempDir::new("mcp");
    let root = tmp.path().join("root");
    let srv = Server::start(&root, &[]);
    let s = srv.session(json!({
        "principal": principal("acme", &["developer"]),
        "allowed_paths": ["work"],
    }));
    let sid = s["id"].as_str().unwrap().to_string();
    let url = format!("{}/v1/sessions/{sid}/mcp", srv.url);
    let mut mcp = Mcp::new(url.clone(), dev_headers("acme"));

    let init = mcp.initialize();
    assert_eq!(init["serverInfo"]["name"], "gocker-workspaced");
    assert!(init["capabilities"]["tools"].is_object(), "{init}");
    assert_eq!(mcp.request("ping", json!({}))["result"], json!({}));

    // tools/list: the REST catalog of this principal, names and input schemas.
    let rest = srv.call(
        "GET",
        &format!("/v1/sessions/{sid}/tools"),
        &dev_headers("acme"),
        None,
    );
    assert_eq!(rest.status, 200, "{}", rest.body);
    let rest_tools = rest.json["tools"].as_array().unwrap().clone();
    let listed = mcp.request("tools/list", json!({}));
    let tools = listed["result"]["tools"].as_array().unwrap().clone();
    let names = |v: &[Value], k: &str| -> Vec<String> {
        v.iter()
            .map(|t| t[k].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&tools, "name"), names(&rest_tools, "name"));
    assert!(tools.iter().all(|t| t["name"] != "shell.exec"));
    for (m, r) in tools.iter().zip(&rest_tools) {
        let mut schema = m["inputSchema"].clone();
        if r["requires_approval"] == json!(true) {
            assert_eq!(schema["properties"]["approved"]["type"], "boolean");
            schema["properties"]
                .as_object_mut()
                .unwrap()
                .remove("approved");
        }
        assert_eq!(schema, r["input_schema"], "{}", r["name"]);
        assert_eq!(m["_meta"]["io.gocker/catalog"], *r);
    }

    // shell.exec for a developer: denied by the RBAC, recorded.
    let r = mcp.call("shell.exec", json!({"argv": ["id"], "approved": true}));
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert_eq!(error_code(&r["result"]), "policy_denied");
    assert_eq!(r["result"]["structuredContent"]["status"], "denied");

    // fs.write_file without approval: approval_required, nothing written.
    let r = mcp.call(
        "fs.write_file",
        json!({"path": "work/notes.txt", "content": "over mcp\n"}),
    );
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert_eq!(error_code(&r["result"]), "approval_required");
    let ws = root.join("sessions").join(&sid).join("workspace");
    assert!(!ws.join("work/notes.txt").exists());

    // With approval: written in the session's workspace, the same record as the REST path's.
    let r = mcp.call(
        "fs.write_file",
        json!({"path": "work/notes.txt", "content": "over mcp\n", "approved": true}),
    );
    assert_eq!(r["result"]["isError"], false, "{r}");
    let inv = &r["result"]["structuredContent"];
    assert_eq!(inv["status"], "succeeded");
    assert_eq!(inv["tool_name"], "fs.write_file");
    assert_eq!(inv["session_id"], json!(sid));
    let text: Value =
        serde_json::from_str(r["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text, inv["output"]);
    assert_eq!(
        std::fs::read_to_string(ws.join("work/notes.txt")).unwrap(),
        "over mcp\n"
    );
    let id = inv["id"].as_str().unwrap();
    let rec = srv.get(&format!("/v1/invocations/{id}"));
    assert_eq!(rec.status, 200, "{}", rec.body);
    assert_eq!(rec.json["invocation"]["status"], "succeeded");
    assert_eq!(rec.json["invocation"]["tool_name"], "fs.write_file");
    assert_eq!(rec.json["invocation"]["output"], inv["output"]);

    // fs.read_file reads it back.
    let r = mcp.call("fs.read_file", json!({"path": "work/notes.txt"}));
    assert_eq!(r["result"]["isError"], false, "{r}");
    assert_eq!(
        r["result"]["structuredContent"]["output"]["content"],
        "over mcp\n"
    );
    // The same file seen from inside the sandbox: an admin of the same tenant and actor (roles
    // come from the headers) runs cat there.
    let mut admin = Mcp::new(
        url.clone(),
        vec![
            ("X-Workspace-Tenant-Id", "acme"),
            ("X-Workspace-Actor-Id", "agent"),
            ("X-Workspace-Roles", "admin"),
        ],
    );
    admin.initialize();
    let r = admin.call(
        "shell.exec",
        json!({"argv": ["cat", "notes.txt"], "cwd": "work", "approved": true}),
    );
    assert_eq!(r["result"]["isError"], false, "{r}");
    assert_eq!(
        r["result"]["structuredContent"]["output"]["stdout"], "over mcp\n",
        "{r}"
    );

    // Paths outside allowed_paths, also through `..`: policy_denied.
    for path in ["secret.txt", "work/../secret.txt", "/etc/passwd"] {
        let r = mcp.call(
            "fs.write_file",
            json!({"path": path, "content": "x", "approved": true}),
        );
        assert_eq!(r["result"]["isError"], true, "{path}: {r}");
        assert_eq!(error_code(&r["result"]), "policy_denied", "{path}: {r}");
    }
    assert!(!ws.join("secret.txt").exists());
    // A bad argument: the tool's own validation, as REST.
    let r = mcp.call(
        "fs.read_file",
        json!({"path": "work/notes.txt", "bogus": 1}),
    );
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert_eq!(error_code(&r["result"]), "invalid_argument");

    // An unknown tool and a non-boolean approval: JSON-RPC errors (invalid params).
    let r = mcp.call("fs.nope", json!({}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = mcp.call(
        "fs.read_file",
        json!({"path": "work/notes.txt", "approved": "yes"}),
    );
    assert_eq!(r["error"]["code"], -32602, "{r}");

    // Malformed bodies: JSON-RPC errors, in JSON.
    for (body, code) in [
        (&b"{\"jsonrpc\":\"2.0\",\"id\":5,"[..], -32700),
        (b"not json at all", -32700),
        (b"{\"foo\":1}", -32600),
        (
            b"{\"jsonrpc\":\"1.0\",\"id\":9,\"method\":\"ping\"}",
            -32600,
        ),
        (b"[]", -32600),
    ] {
        let a = post(&url, &dev_headers("acme"), mcp.session.as_deref(), body);
        assert_eq!(a.status, 400, "{}", a.body);
        assert_eq!(a.content_type, "application/json");
        assert_eq!(a.msg["jsonrpc"], "2.0");
        assert_eq!(a.msg["error"]["code"], code, "{}", a.body);
    }

    // Another tenant: 404 before any MCP message is read, on both routes; a session that does
    // not exist too.
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "intruder", "version": "1"}}});
    let init = init.to_string();
    let a = post(&url, &dev_headers("other"), None, init.as_bytes());
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(a.msg["error"]["code"], "not_found");
    let mut h = dev_headers("other");
    h.push(("X-Workspace-Session-Id", &sid));
    let a = post(&format!("{}/mcp", srv.url), &h, None, init.as_bytes());
    assert_eq!(a.status, 404, "{}", a.body);
    // The other tenant replaying this client's MCP session id on a call: still 404.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "fs.read_file", "arguments": {"path": "work/notes.txt"}}});
    let a = post(
        &url,
        &dev_headers("other"),
        mcp.session.as_deref(),
        call.to_string().as_bytes(),
    );
    assert_eq!(a.status, 404, "{}", a.body);
    let a = post(
        &format!(
            "{}/v1/sessions/00000000-0000-0000-0000-000000000000/mcp",
            srv.url
        ),
        &dev_headers("acme"),
        None,
        init.as_bytes(),
    );
    assert_eq!(a.status, 404, "{}", a.body);
    // /mcp without the session header: invalid_argument.
    let a = post(
        &format!("{}/mcp", srv.url),
        &dev_headers("acme"),
        None,
        init.as_bytes(),
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.msg["error"]["code"], "invalid_argument");

    // /mcp with the header: the same session.
    let mut h = dev_headers("acme");
    h.push(("X-Workspace-Session-Id", &sid));
    let mut alt = Mcp::new(format!("{}/mcp", srv.url), h);
    alt.initialize();
    let r = alt.call("fs.read_file", json!({"path": "work/notes.txt"}));
    assert_eq!(
        r["result"]["structuredContent"]["output"]["content"], "over mcp\n",
        "{r}"
    );

    // The metrics of the REST path count the MCP calls.
    let m = srv.get("/metrics").body;
    assert!(
        m.contains(r#"workspace_invocations_total{tool="fs.write_file",status="succeeded"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"workspace_denied_total{tool="shell.exec",reason="policy_denied"} 1"#),
        "{m}"
    );
    assert_eq!(srv.delete(&sid).status, 200);
}

#[test]
fn mcp_rate_limits_are_the_rest_ones() {
    if !ready("mcp_rate_limits_are_the_rest_ones") {
        return;
    }
    let tmp = TempDir::new("mcp-rate");
    let srv = Server::start(
        &tmp.path().join("root"),
        &[("WORKSPACE_RATE_LIMIT_PER_MINUTE", "2")],
    );
    let s = srv.session(json!({"principal": principal("acme", &["developer"])}));
    let sid = s["id"].as_str().unwrap().to_string();
    // One REST call and one MCP call use up the minute; the third (MCP) is refused.
    assert_eq!(
        srv.invoke(&sid, "fs.list", json!({"args": {"path": "."}}))
            .status,
        200
    );
    let mut mcp = Mcp::new(
        format!("{}/v1/sessions/{sid}/mcp", srv.url),
        dev_headers("acme"),
    );
    mcp.initialize();
    let r = mcp.call("fs.list", json!({"path": "."}));
    assert_eq!(r["result"]["isError"], false, "{r}");
    let r = mcp.call("fs.list", json!({"path": "."}));
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert_eq!(error_code(&r["result"]), "rate_limited");
    assert!(
        r["result"]["structuredContent"]["retry_after_seconds"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_eq!(srv.delete(&sid).status, 200);
}

/// A venv with the pinned `mcp` SDK, made once and kept (under the target dir, or under /tmp for
/// a user who cannot write there). `Err` with the reason when python3's venv or pip is missing.
fn python_sdk() -> Result<PathBuf, String> {
    let uid = rustix::process::getuid().as_raw();
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let writable = std::fs::create_dir_all(&base).is_ok() && tempfile_probe(&base);
    let dir = if writable { base } else { std::env::temp_dir() }
        .join(format!("mcp-py-{PY_MCP_VERSION}-{uid}"));
    let py = dir.join("bin/python");
    let ready = dir.join(".installed");
    if ready.is_file() && py.is_file() {
        return Ok(py);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let o = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("python3: {e} (install python3-venv)"))?;
    if !o.status.success() {
        return Err(format!(
            "python3 -m venv: {} (install python3-venv python3-pip)",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    let o = Command::new(dir.join("bin/python"))
        .args(["-m", "pip", "--version"])
        .output()
        .map_err(|e| format!("pip: {e}"))?;
    if !o.status.success() {
        return Err("the venv has no pip (install python3-pip)".into());
    }
    let o = Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("mcp=={PY_MCP_VERSION}"),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("pip install");
    assert!(
        o.status.success(),
        "pip install mcp=={PY_MCP_VERSION}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::write(&ready, PY_MCP_VERSION).unwrap();
    Ok(py)
}

fn tempfile_probe(dir: &Path) -> bool {
    let p = dir.join(format!(".probe-{}", std::process::id()));
    let ok = std::fs::write(&p, b"").is_ok();
    let _ = std::fs::remove_file(&p);
    ok
}

const PY_CLIENT: &str = r#"
import asyncio, json, sys
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

async def main(url, headers):
    async with streamablehttp_client(url, headers=headers) as (read, write, _):
        async with ClientSession(read, write) as s:
            init = await s.initialize()
            tools = await s.list_tools()
            wrote = await s.call_tool("fs.write_file", {"path": "work/py.txt", "content": "from python\n", "approved": True})
            read_back = await s.call_tool("fs.read_file", {"path": "work/py.txt"})
            unapproved = await s.call_tool("fs.write_file", {"path": "work/py2.txt", "content": "x"})
            outside = await s.call_tool("fs.read_file", {"path": "../etc/passwd"})
            denied = await s.call_tool("shell.exec", {"argv": ["id"], "approved": True})
            def res(r):
                return {"isError": r.isError, "text": [c.text for c in r.content], "structured": r.structuredContent}
            print(json.dumps({
                "server": init.serverInfo.name,
                "tools": [t.name for t in tools.tools],
                "wrote": res(wrote), "read": res(read_back), "unapproved": res(unapproved),
                "outside": res(outside), "denied": res(denied),
            }))

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
"#;

#[test]
fn the_official_python_sdk_lists_and_calls_tools() {
    if !ready("the_official_python_sdk_lists_and_calls_tools") {
        return;
    }
    let py = match python_sdk() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("SKIP the_official_python_sdk_lists_and_calls_tools: {why}");
            return;
        }
    };
    let tmp = TempDir::new("mcp-py");
    let root = tmp.path().join("root");
    let srv = Server::start(&root, &[]);
    let s = srv.session(json!({
        "principal": principal("acme", &["developer"]),
        "allowed_paths": ["work"],
    }));
    let sid = s["id"].as_str().unwrap().to_string();
    let headers = json!({
        "X-Workspace-Tenant-Id": "acme",
        "X-Workspace-Actor-Id": "agent",
        "X-Workspace-Roles": "developer",
    });
    let o = Command::new(&py)
        .args(["-c", PY_CLIENT])
        .arg(format!("{}/v1/sessions/{sid}/mcp", srv.url))
        .arg(headers.to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the Python client: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        srv.logs()
    );
    let out: Value = serde_json::from_slice(o.stdout.trim_ascii())
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
    assert_eq!(out["server"], "gocker-workspaced");
    let rest = srv.get(&format!("/v1/sessions/{sid}/tools"));
    let want: Vec<Value> = rest.json["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(out["tools"], json!(want));
    assert_eq!(out["wrote"]["isError"], false, "{out}");
    assert_eq!(
        std::fs::read_to_string(
            root.join("sessions")
                .join(&sid)
                .join("workspace/work/py.txt")
        )
        .unwrap(),
        "from python\n"
    );
    let id = out["wrote"]["structured"]["id"].as_str().unwrap();
    let rec = srv.get(&format!("/v1/invocations/{id}"));
    assert_eq!(rec.json["invocation"]["status"], "succeeded");
    assert_eq!(
        out["read"]["structured"]["output"]["content"],
        "from python\n"
    );
    for (k, code) in [
        ("unapproved", "approval_required"),
        ("outside", "policy_denied"),
        ("denied", "policy_denied"),
    ] {
        assert_eq!(out[k]["isError"], true, "{k}: {out}");
        let t: Value = serde_json::from_str(out[k]["text"][0].as_str().unwrap()).unwrap();
        assert_eq!(t["error"]["code"], code, "{k}: {out}");
    }
    assert_eq!(srv.delete(&sid).status, 200);
}

#[test]
fn mcp_in_trusted_headers_mode_needs_the_token_and_the_principal() {
    if !ready("mcp_in_trusted_headers_mode_needs_the_token_and_the_principal") {
        return;
    }
    const TOKEN: &str = "mcp-shared-token-of-the-test";
    let tmp = TempDir::new("mcp-auth");
    let srv = Server::start(
        &tmp.path().join("root"),
        &[
            ("WORKSPACE_AUTH_MODE", "trusted_headers"),
            ("WORKSPACE_AUTH_SHARED_TOKEN", TOKEN),
        ],
    );
    let who = |tenant: &'static str, token: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![
            ("X-Workspace-Tenant-Id", tenant),
            ("X-Workspace-Actor-Id", "alice"),
            ("X-Workspace-Roles", "viewer"),
            ("X-Workspace-Auth-Token", token),
        ]
    };
    let r = srv.call(
        "POST",
        "/v1/sessions",
        &who("tenant-a", TOKEN),
        Some(&json!({})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let sid = r.json["session"]["id"].as_str().unwrap().to_string();
    let url = format!("{}/v1/sessions/{sid}/mcp", srv.url);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}})
    .to_string();
    // No token, a wrong one, no principal headers: 401 before MCP.
    for h in [
        vec![
            ("X-Workspace-Tenant-Id", "tenant-a"),
            ("X-Workspace-Actor-Id", "alice"),
        ],
        who("tenant-a", "wrong-token-of-the-test-1234"),
        vec![("X-Workspace-Auth-Token", TOKEN)],
    ] {
        let a = post(&url, &h, None, init.as_bytes());
        assert_eq!(a.status, 401, "{h:?}: {}", a.body);
        assert_eq!(a.msg["error"]["code"], "unauthorized");
    }
    // Another tenant with a good token: 404.
    let a = post(&url, &who("tenant-b", TOKEN), None, init.as_bytes());
    assert_eq!(a.status, 404, "{}", a.body);
    // The owner: the viewer's catalog, and a viewer cannot write.
    let mut mcp = Mcp::new(url, who("tenant-a", TOKEN));
    mcp.initialize();
    let tools = mcp.request("tools/list", json!({}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"fs.read_file"), "{names:?}");
    assert!(!names.contains(&"fs.write_file"), "{names:?}");
    let r = mcp.call(
        "fs.write_file",
        json!({"path": "x.txt", "content": "x", "approved": true}),
    );
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert_eq!(error_code(&r["result"]), "policy_denied");
    // A later request of the same MCP session without the token: 401 too.
    let a = post(
        &mcp.url,
        &who("tenant-a", "x"),
        mcp.session.as_deref(),
        br#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#,
    );
    assert_eq!(a.status, 401, "{}", a.body);
    let r = srv.call(
        "DELETE",
        &format!("/v1/sessions/{sid}"),
        &who("tenant-a", TOKEN),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
}
