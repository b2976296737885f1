//! The valkey backends against a real server started by the test (`valkey-server`, else
//! Debian's `redis-server`, which speaks the same protocol), including a service restart.

mod common;
use common::*;
use serde_json::json;
use std::process::{Command, Stdio};

fn server_binary() -> Option<String> {
    ["valkey-server", "redis-server"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(String::from)
}

struct Valkey(std::process::Child);

impl Drop for Valkey {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn sessions_and_invocations_live_in_valkey_across_a_restart() {
    if !ready("sessions_and_invocations_live_in_valkey_across_a_restart") {
        return;
    }
    let Some(bin) = server_binary() else {
        eprintln!("SKIP sessions_and_invocations_live_in_valkey_across_a_restart: neither valkey-server nor redis-server is installed (Debian: apt-get install redis-server)");
        return;
    };
    let tmp = TempDir::new("valkey");
    let port = free_port();
    let vk = Valkey(
        Command::new(&bin)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("redis://127.0.0.1:{port}/0");
    wait_for(
        "the valkey server",
        std::time::Duration::from_secs(20),
        || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| ())
        },
    );
    let root = tmp.path().join("root");
    let env = [
        ("SESSION_STORE_BACKEND", "valkey"),
        ("INVOCATION_STORE_BACKEND", "valkey"),
        ("VALKEY_URL", url.as_str()),
        ("VALKEY_KEY_PREFIX", "gwstest:"),
    ];
    let mut srv = Server::start(&root, &env);
    assert_eq!(srv.get("/healthz").json["status"], "ok");
    let sid = srv.session(json!({"principal": principal("acme", &["developer"])}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let w = srv.invoke(
        &sid,
        "fs.write_file",
        json!({"approved": true, "args": {"path": "v.txt", "content": "in valkey\n"}}),
    );
    assert_eq!(w.status, 200, "{}", w.body);
    let inv = w.json["invocation"]["id"].as_str().unwrap().to_string();
    // Nothing of it is in the embedded store; the records are in the server, under the prefix.
    assert!(!root
        .join("state/sessions")
        .join(format!("{sid}.json"))
        .exists());
    assert!(!root.join("state.redb").exists());
    let keys = Command::new(bin.replace("-server", "-cli"))
        .args(["-p", &port.to_string(), "--scan", "--pattern", "gwstest:*"])
        .output();
    if let Ok(k) = keys {
        let k = String::from_utf8_lossy(&k.stdout);
        assert!(
            k.contains(&format!("gwstest:session:{sid}"))
                && k.contains(&format!("gwstest:invocation:{inv}")),
            "{k}"
        );
    }
    // A restart (kill -9) finds them in the server.
    srv.kill9();
    let srv2 = Server::start(&root, &env);
    let r = srv2.invoke(&sid, "fs.read_file", json!({"args": {"path": "v.txt"}}));
    assert_eq!(
        r.json["invocation"]["output"]["content"], "in valkey\n",
        "{}",
        r.body
    );
    assert_eq!(
        srv2.get(&format!("/v1/invocations/{inv}")).json["invocation"]["status"],
        "succeeded"
    );
    // The store going away shows in /healthz.
    drop(vk);
    let h = srv2.get("/healthz");
    assert_eq!(
        (h.status, h.json["failing"].as_str()),
        (503, Some("store")),
        "{}",
        h.body
    );
    drop(srv);
}
