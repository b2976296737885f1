//! Proof of isolation over the API: a tool's program is in the sandbox (own PID namespace,
//! seccomp filter mode 2, uid 0 mapped to an unprivileged host uid, no network); a symlink it
//! plants to /etc/shadow is refused by every file tool; `..`, absolute paths and NUL bytes are
//! refused.

mod common;
use common::*;
use serde_json::{json, Value};

fn sh(srv: &Server, sid: &str, script: &str) -> Value {
    let r = srv.invoke(
        sid,
        "shell.exec",
        json!({"approved": true, "args": {"argv": ["/bin/sh", "-c", script]}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json["invocation"]["output"].clone()
}

#[test]
fn programs_run_inside_the_sandbox_and_planted_links_are_refused() {
    if !ready("programs_run_inside_the_sandbox_and_planted_links_are_refused") {
        return;
    }
    let shadow_before = std::fs::symlink_metadata("/etc/shadow")
        .map(|m| m.len())
        .ok();
    let tmp = TempDir::new("iso");
    let srv = Server::start(&tmp.path().join("root"), &[]);
    let sid = srv.session(json!({"principal": principal("acme", &["admin"])}))["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The PID namespace: PID 1 is the sandbox's idle init, and the program's NSpid has two levels.
    let o = sh(&srv, &sid, "cat /proc/1/cmdline | tr '\\0' ' '; echo; grep -E '^(NSpid|Seccomp):' /proc/self/status; cat /proc/self/uid_map; ls /sys/class/net");
    let out = o["stdout"].as_str().unwrap();
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("/bin/sleep"), "{out}");
    let nspid = out.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert_eq!(
        nspid.split_whitespace().count(),
        2,
        "a single PID namespace level seen from inside: {nspid}"
    );
    assert!(
        out.lines().any(|l| l == "Seccomp:\t2"),
        "seccomp filter mode: {out}"
    );
    // uid 0 inside maps to a host uid that is not root (rootful: the remapped range; rootless: the caller).
    let map = out
        .lines()
        .find(|l| l.trim_start().starts_with('0'))
        .expect("uid_map line for uid 0");
    let host: u32 = map.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_ne!(host, 0, "uid 0 inside is host root: {map}");
    if mode() == "root" {
        assert!(
            host >= 65536,
            "rootful sandboxes map root to a high range: {map}"
        );
    } else {
        assert_eq!(host, rustix::process::getuid().as_raw(), "{map}");
    }
    // No network: loopback only.
    assert_eq!(out.lines().last().unwrap().trim(), "lo", "{out}");
    // The program's host pid is not visible to the service's pid namespace tree as the sandbox's init.
    let o = sh(&srv, &sid, "echo $$");
    assert_ne!(o["stdout"].as_str().unwrap().trim(), "1");

    // A link to /etc/shadow (and to /, and a relative climb) planted from inside.
    let o = sh(&srv, &sid, "ln -s /etc/shadow shadow && ln -s / root && ln -s ../../../../../../etc/shadow rel && mkdir d && ln -s /etc d/etc && echo ok");
    assert_eq!(o["stdout"], "ok\n");
    let denied = |tool: &str, args: Value| {
        let r = srv.invoke(&sid, tool, json!({"approved": true, "args": args}));
        assert_eq!(r.status, 403, "{tool} {args}: {}", r.body);
        assert_eq!(
            r.json["error"]["code"], "policy_denied",
            "{tool}: {}",
            r.body
        );
        assert_eq!(r.json["invocation"]["status"], "denied");
    };
    for link in ["shadow", "rel", "root/etc/shadow", "d/etc/shadow"] {
        denied("fs.read_file", json!({"path": link}));
        denied("fs.write_file", json!({"path": link, "content": "x"}));
        denied("fs.stat", json!({"path": link}));
        denied(
            "fs.patch",
            json!({"path": link, "patch": "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"}),
        );
        denied("fs.search", json!({"pattern": "root", "path": link}));
        denied("fs.copy", json!({"source": link, "destination": "copy"}));
    }
    denied("fs.list", json!({"path": "root/etc"}));
    denied("fs.mkdir", json!({"path": "root/tmp/x"}));
    denied(
        "fs.write_file",
        json!({"path": "root/tmp/planted", "content": "x"}),
    );
    denied(
        "fs.move",
        json!({"source": "root/etc/hostname", "destination": "h"}),
    );
    denied("fs.delete", json!({"path": "root/etc/hostname"}));
    assert!(!std::path::Path::new("/tmp/planted").exists());
    // Deleting or moving the link itself is fine and leaves its target alone.
    let r = srv.invoke(
        &sid,
        "fs.delete",
        json!({"approved": true, "args": {"path": "shadow"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        std::fs::symlink_metadata("/etc/shadow")
            .map(|m| m.len())
            .ok(),
        shadow_before
    );
    // A recursive search and listing skip the links.
    let r = srv.invoke(
        &sid,
        "fs.search",
        json!({"args": {"pattern": "root:", "path": "."}}),
    );
    assert_eq!(
        r.json["invocation"]["output"]["matches"],
        json!([]),
        "{}",
        r.body
    );

    // Path arguments: '..', absolute, NUL.
    for (path, code, status) in [
        ("../etc/passwd", "policy_denied", 403),
        ("a/../../x", "policy_denied", 403),
        ("/etc/passwd", "policy_denied", 403),
        ("a\u{0}b", "invalid_argument", 400),
    ] {
        for (tool, args) in [
            ("fs.read_file", json!({"path": path})),
            ("fs.write_file", json!({"path": path, "content": "x"})),
            ("fs.list", json!({"path": path})),
            ("fs.move", json!({"source": "d", "destination": path})),
            ("shell.exec", json!({"argv": ["true"], "cwd": path})),
            ("git.diff", json!({"paths": [path]})),
        ] {
            let r = srv.invoke(&sid, tool, json!({"approved": true, "args": args}));
            assert_eq!(
                (r.status, r.json["error"]["code"].as_str()),
                (status, Some(code)),
                "{tool} {path:?}: {}",
                r.body
            );
        }
    }
    // A source_repo_path with '..', relative or with NUL is refused at creation.
    for bad in ["/tmp/../etc", "relative/dir", "/tmp/a\u{0}b"] {
        let r = srv.call(
            "POST",
            "/v1/sessions",
            &[],
            Some(&json!({"principal": principal("acme", &["admin"]), "source_repo_path": bad})),
        );
        assert_eq!(
            (r.status, r.json["error"]["code"].as_str()),
            (400, Some("invalid_argument")),
            "{bad:?}: {}",
            r.body
        );
    }
    // allowed_paths scope every path field.
    let scoped = srv
        .session(json!({"principal": principal("acme", &["admin"]), "allowed_paths": ["src"]}))
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = srv.invoke(
        &scoped,
        "fs.write_file",
        json!({"approved": true, "args": {"path": "src/ok.txt", "content": "ok"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = srv.invoke(
        &scoped,
        "fs.write_file",
        json!({"approved": true, "args": {"path": "other.txt", "content": "no"}}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = srv.invoke(
        &scoped,
        "shell.exec",
        json!({"approved": true, "args": {"argv": ["ls"]}}),
    );
    assert_eq!(
        r.status, 403,
        "cwd defaults to the root, outside allowed_paths: {}",
        r.body
    );
    for s in [&sid, &scoped] {
        assert_eq!(srv.delete(s).status, 200);
    }
    assert!(srv.sandboxes().is_empty());
}
