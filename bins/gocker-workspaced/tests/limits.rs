//! Limits: the rate limit (429 with Retry-After), output limits (10 MB printed → truncated at
//! the configured bytes), and timeouts that kill every process the tool started in the sandbox.

mod common;
use common::*;
use serde_json::json;

#[test]
fn the_third_invocation_under_a_limit_of_two_is_429_with_retry_after() {
    if !ready("the_third_invocation_under_a_limit_of_two_is_429_with_retry_after") {
        return;
    }
    let tmp = TempDir::new("rate");
    let srv = Server::start(
        &tmp.path().join("root"),
        &[("WORKSPACE_RATE_LIMIT_PER_MINUTE", "2")],
    );
    let sid = srv.session(json!({"principal": principal("acme", &["developer"])}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..2 {
        let r = srv.invoke(&sid, "fs.list", json!({}));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = srv.invoke(&sid, "fs.list", json!({}));
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
        .contains("WORKSPACE_RATE_LIMIT_PER_MINUTE"));
    assert!(srv
        .get("/metrics")
        .body
        .contains("workspace_denied_total{tool=\"fs.list\",reason=\"rate_limited\"} 1"));
    assert_eq!(srv.delete(&sid).status, 200);
}

#[test]
fn ten_megabytes_of_output_are_truncated_at_the_limit() {
    if !ready("ten_megabytes_of_output_are_truncated_at_the_limit") {
        return;
    }
    let tmp = TempDir::new("out");
    let srv = Server::start(
        &tmp.path().join("root"),
        &[("WORKSPACE_MAX_OUTPUT_BYTES_PER_INVOCATION", "65536")],
    );
    let sid = srv.session(json!({"principal": principal("acme", &["admin"])}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    // 10 MB on stdout (and a little on stderr), then a marker line that must not arrive.
    let r = srv.invoke(&sid, "shell.exec", json!({"approved": true, "args": {"argv": ["/bin/sh", "-c", "head -c 10000000 /dev/zero | tr '\\0' x; echo; echo END; echo err >&2"], "timeout_seconds": 120}}));
    assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(500)]);
    let o = &r.json["invocation"]["output"];
    assert_eq!(o["truncated"], true);
    assert_eq!(
        o["exit_code"], 0,
        "the program ran to its end: the rest was read and dropped"
    );
    let out = o["stdout"].as_str().unwrap();
    assert_eq!(out.len(), 65536);
    assert!(!out.contains("END"));
    assert_eq!(o["stderr"], "err\n");
    let arts = &r.json["invocation"]["artifacts"];
    let so = arts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "stdout.txt")
        .unwrap();
    assert_eq!(so["size_bytes"], 65536);
    let logs = r.json["invocation"]["logs"].as_array().unwrap();
    assert!(
        logs.iter()
            .any(|l| l["channel"] == "service"
                && l["message"].as_str().unwrap().contains("truncated"))
    );
    // A file read is bounded by the same limit.
    let w = srv.invoke(&sid, "shell.exec", json!({"approved": true, "args": {"argv": ["/bin/sh", "-c", "head -c 200000 /dev/zero | tr '\\0' y > big.txt"]}}));
    assert_eq!(w.status, 200);
    let r = srv.invoke(&sid, "fs.read_file", json!({"args": {"path": "big.txt"}}));
    assert_eq!(r.json["invocation"]["output"]["truncated"], true);
    assert_eq!(
        r.json["invocation"]["output"]["content"]
            .as_str()
            .unwrap()
            .len(),
        65536
    );
    assert_eq!(r.json["invocation"]["output"]["size_bytes"], 200000);
    assert_eq!(srv.delete(&sid).status, 200);
}

#[test]
fn a_timeout_kills_every_process_the_tool_started() {
    if !ready("a_timeout_kills_every_process_the_tool_started") {
        return;
    }
    let tmp = TempDir::new("timeout");
    let srv = Server::start(&tmp.path().join("root"), &[]);
    let sid = srv.session(json!({"principal": principal("acme", &["admin"])}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    // sleep 600, with a child in the background and a grandchild that left its process group.
    let t = std::time::Instant::now();
    let r = srv.invoke(&sid, "shell.exec", json!({"approved": true, "args": {"argv": ["/bin/sh", "-c", "sleep 601 & setsid sleep 602 & sleep 600"], "timeout_seconds": 2}}));
    let took = t.elapsed();
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(r.json["error"]["code"], "timeout");
    assert_eq!(r.json["invocation"]["status"], "failed");
    assert_eq!(r.json["invocation"]["error"]["retryable"], true);
    assert!(took.as_secs() < 30, "the timeout took {took:?}");
    // Nothing of it is left in the sandbox: only PID 1 and the ps that looks.
    let ps = srv.invoke(
        &sid,
        "shell.exec",
        json!({"approved": true, "args": {"argv": ["ps", "-o", "pid,args"]}}),
    );
    let out = ps.json["invocation"]["output"]["stdout"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !out.contains("sleep 60"),
        "processes left after the timeout:\n{out}"
    );
    // Nor on the host.
    let host: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.starts_with("sleep 60"))
        .collect();
    assert!(host.is_empty(), "{host:?}");
    // The session still works.
    let r = srv.invoke(&sid, "fs.list", json!({}));
    assert_eq!(r.status, 200);
    assert_eq!(srv.delete(&sid).status, 200);
}
