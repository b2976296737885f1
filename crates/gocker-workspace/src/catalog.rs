//! The tool catalog: every tool with its policy metadata, as `GET /v1/sessions/{id}/tools`
//! lists it and docs/CAPABILITY_CATALOG.md documents it ([`render_markdown`]).

use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Constraints {
    pub timeout_seconds: u64,
    pub max_retries: u32,
    pub output_limit_kb: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Observability {
    pub trace_name: String,
    pub span_name: String,
}

/// One tool of the catalog.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
    pub output_schema: Value,
    /// `workspace`, `repo`, `sandbox`, `artifacts` or `connections`.
    pub scope: String,
    /// `none`, `writes_workspace`, `runs_code`.
    pub side_effects: String,
    /// `low`, `medium`, `high`.
    pub risk_level: String,
    pub requires_approval: bool,
    /// `idempotent` or `non_idempotent`.
    pub idempotency: String,
    pub constraints: Constraints,
    pub preconditions: Vec<String>,
    pub postconditions: Vec<String>,
    /// `low`, `medium`, `high`: how much time and resources a call may take.
    pub cost_hint: String,
    pub observability: Observability,
    pub examples: Vec<Value>,
}

struct T {
    name: &'static str,
    description: &'static str,
    scope: &'static str,
    side: &'static str,
    risk: &'static str,
    approval: bool,
    idempotent: bool,
    timeout: u64,
    output_kb: u64,
    cost: &'static str,
    props: Value,
    required: &'static [&'static str],
    output: Value,
    pre: &'static [&'static str],
    post: &'static [&'static str],
    example: Value,
}

fn build(t: T) -> ToolSpec {
    let mut input = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": t.props,
    });
    if !t.required.is_empty() {
        input["required"] = json!(t.required);
    }
    ToolSpec {
        name: t.name.into(),
        description: t.description.into(),
        input_schema: input,
        output_schema: json!({"type": "object", "properties": t.output}),
        scope: t.scope.into(),
        side_effects: t.side.into(),
        risk_level: t.risk.into(),
        requires_approval: t.approval,
        idempotency: if t.idempotent {
            "idempotent"
        } else {
            "non_idempotent"
        }
        .into(),
        constraints: Constraints {
            timeout_seconds: t.timeout,
            max_retries: if t.idempotent { 2 } else { 0 },
            output_limit_kb: t.output_kb,
        },
        preconditions: t.pre.iter().map(|s| s.to_string()).collect(),
        postconditions: t.post.iter().map(|s| s.to_string()).collect(),
        cost_hint: t.cost.into(),
        observability: Observability {
            trace_name: format!("workspace.tool.{}", t.name),
            span_name: format!("tool.{}", t.name.replace('.', "_")),
        },
        examples: vec![t.example],
    }
}

fn s(d: &str) -> Value {
    json!({"type": "string", "description": d})
}
fn b(d: &str) -> Value {
    json!({"type": "boolean", "description": d})
}
fn n(d: &str) -> Value {
    json!({"type": "integer", "minimum": 0, "description": d})
}
fn arr(d: &str) -> Value {
    json!({"type": "array", "items": {"type": "string"}, "description": d})
}
fn exec_out() -> Value {
    json!({"exit_code": {"type": "integer"}, "stdout": {"type": "string"}, "stderr": {"type": "string"}, "truncated": {"type": "boolean"}})
}

const IN_SANDBOX: &[&str] = &["the session's sandbox is running"];
const PATH_OK: &[&str] = &["every path is relative, without '..', within allowed_paths"];

/// The whole catalog, in a stable order.
pub fn catalog() -> Vec<ToolSpec> {
    let path = || s("path relative to the workspace root");
    let extra =
        || arr("extra arguments for the runner, checked against the tool's extra_args policy");
    vec![
        build(T { name: "fs.list", description: "List the entries of a directory of the workspace (symlinks are listed, never followed).", scope: "workspace", side: "none", risk: "low", approval: false, idempotent: true, timeout: 10, output_kb: 256, cost: "low",
            props: json!({"path": path(), "recursive": b("descend into subdirectories"), "max_entries": n("at most this many entries (default 1000)")}), required: &[],
            output: json!({"entries": {"type": "array"}, "truncated": {"type": "boolean"}}), pre: PATH_OK, post: &[], example: json!({"path": "."}) }),
        build(T { name: "fs.read_file", description: "Read a UTF-8 text file of the workspace.", scope: "workspace", side: "none", risk: "low", approval: false, idempotent: true, timeout: 10, output_kb: 1024, cost: "low",
            props: json!({"path": path(), "max_bytes": n("read at most this many bytes")}), required: &["path"],
            output: json!({"path": {"type": "string"}, "content": {"type": "string"}, "size_bytes": {"type": "integer"}, "truncated": {"type": "boolean"}}), pre: PATH_OK, post: &[], example: json!({"path": "README.md"}) }),
        build(T { name: "fs.write_file", description: "Create or replace a file of the workspace with the given UTF-8 content.", scope: "workspace", side: "writes_workspace", risk: "medium", approval: true, idempotent: true, timeout: 10, output_kb: 16, cost: "low",
            props: json!({"path": path(), "content": s("the new content"), "create_parents": b("make missing parent directories (default true)")}), required: &["path", "content"],
            output: json!({"path": {"type": "string"}, "bytes_written": {"type": "integer"}, "sha256": {"type": "string"}}), pre: PATH_OK, post: &["the file holds exactly content"], example: json!({"path": "notes.txt", "content": "hello\n"}) }),
        build(T { name: "fs.mkdir", description: "Make a directory of the workspace.", scope: "workspace", side: "writes_workspace", risk: "low", approval: false, idempotent: true, timeout: 10, output_kb: 16, cost: "low",
            props: json!({"path": path(), "parents": b("make missing parents, and accept an existing directory (default true)")}), required: &["path"],
            output: json!({"path": {"type": "string"}}), pre: PATH_OK, post: &["the directory exists"], example: json!({"path": "src/new"}) }),
        build(T { name: "fs.move", description: "Rename or move a file or directory within the workspace.", scope: "workspace", side: "writes_workspace", risk: "medium", approval: true, idempotent: false, timeout: 10, output_kb: 16, cost: "low",
            props: json!({"source": path(), "destination": path(), "overwrite": b("replace an existing destination")}), required: &["source", "destination"],
            output: json!({"source": {"type": "string"}, "destination": {"type": "string"}}), pre: PATH_OK, post: &["source is gone, destination holds it"], example: json!({"source": "a.txt", "destination": "b.txt"}) }),
        build(T { name: "fs.copy", description: "Copy a regular file within the workspace.", scope: "workspace", side: "writes_workspace", risk: "low", approval: false, idempotent: true, timeout: 10, output_kb: 16, cost: "low",
            props: json!({"source": path(), "destination": path(), "overwrite": b("replace an existing destination")}), required: &["source", "destination"],
            output: json!({"bytes_copied": {"type": "integer"}}), pre: PATH_OK, post: &["destination is a copy of source"], example: json!({"source": "a.txt", "destination": "a.bak"}) }),
        build(T { name: "fs.delete", description: "Delete a file, a symlink (not its target) or a directory (recursive only when asked).", scope: "workspace", side: "writes_workspace", risk: "high", approval: true, idempotent: false, timeout: 30, output_kb: 16, cost: "low",
            props: json!({"path": path(), "recursive": b("delete a directory and its contents")}), required: &["path"],
            output: json!({"deleted": {"type": "string"}}), pre: PATH_OK, post: &["the path no longer exists"], example: json!({"path": "tmp/old.log"}) }),
        build(T { name: "fs.stat", description: "Kind, size, mode and modification time of a path.", scope: "workspace", side: "none", risk: "low", approval: false, idempotent: true, timeout: 10, output_kb: 16, cost: "low",
            props: json!({"path": path()}), required: &["path"],
            output: json!({"kind": {"type": "string"}, "size_bytes": {"type": "integer"}, "mode": {"type": "string"}, "modified_at": {"type": "integer"}}), pre: PATH_OK, post: &[], example: json!({"path": "Cargo.toml"}) }),
        build(T { name: "fs.patch", description: "Apply a unified diff to one file of the workspace (all hunks or nothing).", scope: "workspace", side: "writes_workspace", risk: "medium", approval: true, idempotent: false, timeout: 10, output_kb: 64, cost: "low",
            props: json!({"path": path(), "patch": s("a unified diff of this one file")}), required: &["path", "patch"],
            output: json!({"path": {"type": "string"}, "hunks_applied": {"type": "integer"}, "sha256": {"type": "string"}}), pre: PATH_OK, post: &["the file is the patched content"], example: json!({"path": "a.txt", "patch": "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-old\n+new\n"}) }),
        build(T { name: "fs.search", description: "Search the text files under a path for a regular expression (bounded results; symlinks and .git skipped).", scope: "workspace", side: "none", risk: "low", approval: false, idempotent: true, timeout: 30, output_kb: 512, cost: "medium",
            props: json!({"pattern": s("a regular expression (Rust regex syntax)"), "path": path(), "max_results": n("at most this many matches (default 100, at most 1000)")}), required: &["pattern"],
            output: json!({"matches": {"type": "array"}, "truncated": {"type": "boolean"}}), pre: PATH_OK, post: &[], example: json!({"pattern": "fn main", "path": "src"}) }),
        build(T { name: "git.status", description: "git status (porcelain v1) of the workspace, run in the sandbox.", scope: "repo", side: "none", risk: "low", approval: false, idempotent: true, timeout: 30, output_kb: 256, cost: "low",
            props: json!({}), required: &[], output: exec_out(), pre: IN_SANDBOX, post: &[], example: json!({}) }),
        build(T { name: "git.diff", description: "git diff of the workspace (working tree, or the index with staged), run in the sandbox.", scope: "repo", side: "none", risk: "low", approval: false, idempotent: true, timeout: 30, output_kb: 1024, cost: "low",
            props: json!({"staged": b("diff the index against HEAD"), "paths": arr("limit to these paths")}), required: &[], output: exec_out(), pre: IN_SANDBOX, post: &[], example: json!({}) }),
        build(T { name: "git.log", description: "Recent commits (one line each), run in the sandbox.", scope: "repo", side: "none", risk: "low", approval: false, idempotent: true, timeout: 30, output_kb: 256, cost: "low",
            props: json!({"max_count": n("at most this many commits (default 20, at most 500)")}), required: &[], output: exec_out(), pre: IN_SANDBOX, post: &[], example: json!({"max_count": 5}) }),
        build(T { name: "git.apply_patch", description: "git apply a unified diff (several files) to the working tree, run in the sandbox.", scope: "repo", side: "writes_workspace", risk: "medium", approval: true, idempotent: false, timeout: 60, output_kb: 64, cost: "low",
            props: json!({"patch": s("a unified diff (at most 100 KiB)"), "check": b("only check that it applies")}), required: &["patch"], output: exec_out(), pre: IN_SANDBOX, post: &["the working tree has the patch applied"], example: json!({"patch": "diff --git a/a b/a\n..."}) }),
        build(T { name: "git.commit", description: "Commit the working tree's changes (git add -A first unless all is false), run in the sandbox.", scope: "repo", side: "writes_workspace", risk: "medium", approval: true, idempotent: false, timeout: 60, output_kb: 64, cost: "low",
            props: json!({"message": s("the commit message"), "all": b("stage every change first (default true)")}), required: &["message"], output: exec_out(), pre: IN_SANDBOX, post: &["HEAD is a new commit"], example: json!({"message": "Fix the parser"}) }),
        build(T { name: "git.branch", description: "List branches, or create one at HEAD when name is given, run in the sandbox.", scope: "repo", side: "writes_workspace", risk: "low", approval: false, idempotent: true, timeout: 30, output_kb: 64, cost: "low",
            props: json!({"name": s("a branch to create")}), required: &[], output: exec_out(), pre: IN_SANDBOX, post: &[], example: json!({"name": "fix/parser"}) }),
        build(T { name: "git.checkout", description: "Switch to a branch or commit (create a branch with create), run in the sandbox.", scope: "repo", side: "writes_workspace", risk: "medium", approval: true, idempotent: false, timeout: 60, output_kb: 64, cost: "low",
            props: json!({"ref": s("the branch or commit"), "create": b("create the branch first")}), required: &["ref"], output: exec_out(), pre: IN_SANDBOX, post: &["HEAD is ref"], example: json!({"ref": "main"}) }),
        build(T { name: "repo.detect", description: "Detect the project's language and toolchain (cargo, go, pytest, npm, or a test.sh script).", scope: "repo", side: "none", risk: "low", approval: false, idempotent: true, timeout: 10, output_kb: 16, cost: "low",
            props: json!({}), required: &[], output: json!({"toolchain": {"type": "string"}, "language": {"type": "string"}, "markers": {"type": "array"}}), pre: &[], post: &[], example: json!({}) }),
        build(T { name: "repo.build", description: "Build the project with its detected toolchain, in the sandbox.", scope: "repo", side: "runs_code", risk: "medium", approval: false, idempotent: true, timeout: 600, output_kb: 1024, cost: "high",
            props: json!({"extra_args": extra()}), required: &[], output: exec_out(), pre: IN_SANDBOX, post: &[], example: json!({"extra_args": ["--release"]}) }),
        build(T { name: "repo.test", description: "Run the project's tests with its detected toolchain, in the sandbox, and report the failures.", scope: "repo", side: "runs_code", risk: "medium", approval: false, idempotent: true, timeout: 600, output_kb: 1024, cost: "high",
            props: json!({"extra_args": extra()}), required: &[], output: json!({"toolchain": {"type": "string"}, "passed": {"type": "boolean"}, "exit_code": {"type": "integer"}, "failures": {"type": "array"}, "stdout": {"type": "string"}, "stderr": {"type": "string"}}), pre: IN_SANDBOX, post: &[], example: json!({"extra_args": ["-k", "parser"]}) }),
        build(T { name: "shell.exec", description: "Run a program (argv, no shell interpretation) in the sandbox; high risk.", scope: "sandbox", side: "runs_code", risk: "high", approval: true, idempotent: false, timeout: 600, output_kb: 1024, cost: "medium",
            props: json!({"argv": arr("program and arguments"), "cwd": path(), "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "extra environment variables"}, "timeout_seconds": n("kill everything it started after this long (default 60)")}), required: &["argv"],
            output: exec_out(), pre: IN_SANDBOX, post: &[], example: json!({"argv": ["ls", "-la"]}) }),
        build(T { name: "artifact.list", description: "The artifacts of this session's invocations (or of one).", scope: "artifacts", side: "none", risk: "low", approval: false, idempotent: true, timeout: 10, output_kb: 256, cost: "low",
            props: json!({"invocation_id": s("only this invocation's")}), required: &[], output: json!({"artifacts": {"type": "array"}}), pre: &[], post: &[], example: json!({}) }),
        build(T { name: "artifact.read", description: "Read an artifact of this session by id (text).", scope: "artifacts", side: "none", risk: "low", approval: false, idempotent: true, timeout: 10, output_kb: 1024, cost: "low",
            props: json!({"artifact_id": s("the artifact's id"), "max_bytes": n("read at most this many bytes")}), required: &["artifact_id"], output: json!({"content": {"type": "string"}, "sha256": {"type": "string"}, "truncated": {"type": "boolean"}}), pre: &[], post: &[], example: json!({"artifact_id": "…"}) }),
        build(T { name: "conn.list_profiles", description: "The connection profiles the operator configured (never their credentials).", scope: "connections", side: "none", risk: "low", approval: false, idempotent: true, timeout: 10, output_kb: 64, cost: "low",
            props: json!({}), required: &[], output: json!({"profiles": {"type": "array"}}), pre: &[], post: &[], example: json!({}) }),
        build(T { name: "conn.describe_profile", description: "One connection profile (never its credentials), with whether its host is allowed.", scope: "connections", side: "none", risk: "low", approval: false, idempotent: true, timeout: 10, output_kb: 16, cost: "low",
            props: json!({"name": s("the profile's name")}), required: &["name"], output: json!({"profile": {"type": "object"}}), pre: &[], post: &[], example: json!({"name": "default"}) }),
    ]
}

/// The catalog as Markdown (docs/CAPABILITY_CATALOG.md; a test checks that they agree).
pub fn render_markdown() -> String {
    let mut m = String::from(
        "# Capability catalog\n\nGenerated from `crates/gocker-workspace/src/catalog.rs` \
         (`cargo run -p gocker-workspaced -- catalog > docs/CAPABILITY_CATALOG.md`); a unit test \
         fails when this file and the code disagree.\n\n\
         | tool | scope | side effects | risk | approval | idempotency | timeout s | output KiB |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let cat = catalog();
    for t in &cat {
        m += &format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {} |\n",
            t.name,
            t.scope,
            t.side_effects,
            t.risk_level,
            if t.requires_approval {
                "required"
            } else {
                "no"
            },
            t.idempotency,
            t.constraints.timeout_seconds,
            t.constraints.output_limit_kb
        );
    }
    for t in &cat {
        m += &format!("\n## `{}`\n\n{}\n\nInput:\n\n", t.name, t.description);
        let props = t.input_schema["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let req: Vec<String> = t.input_schema["required"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if props.is_empty() {
            m += "- (no arguments)\n";
        }
        for (k, v) in props {
            m += &format!(
                "- `{k}` ({}{}): {}\n",
                v["type"].as_str().unwrap_or("value"),
                if req.contains(&k) { ", required" } else { "" },
                v["description"].as_str().unwrap_or("")
            );
        }
        m += &format!(
            "\nExample: `{}`\n",
            serde_json::to_string(&t.examples[0]).unwrap_or_default()
        );
    }
    m
}

/// The catalog entry named `name`.
pub fn find(name: &str) -> Option<ToolSpec> {
    catalog().into_iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_entry_is_complete() {
        let c = catalog();
        let mut names: Vec<_> = c.iter().map(|t| t.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), c.len());
        for t in &c {
            assert!(
                ["low", "medium", "high"].contains(&t.risk_level.as_str()),
                "{}",
                t.name
            );
            assert_eq!(t.input_schema["additionalProperties"], json!(false));
            assert!(!t.examples.is_empty());
        }
        assert!(find("shell.exec").unwrap().requires_approval);
        assert!(find("fs.write_file").unwrap().requires_approval);
        assert!(!find("fs.read_file").unwrap().requires_approval);
    }

    #[test]
    fn the_generated_doc_matches_the_code() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/CAPABILITY_CATALOG.md"
        );
        if std::env::var_os("GOCKER_UPDATE_CATALOG").is_some() {
            std::fs::write(path, render_markdown()).unwrap();
        }
        let doc = std::fs::read_to_string(path).expect("docs/CAPABILITY_CATALOG.md");
        assert!(
            doc == render_markdown(),
            "docs/CAPABILITY_CATALOG.md is out of date: regenerate it with \
             `cargo run -p gocker-workspaced -- catalog > docs/CAPABILITY_CATALOG.md`"
        );
    }
}
