//! The tools' implementations: file tools act on the workspace through confined resolution
//! from the service; everything that runs a program runs in the session's sandbox.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::artifacts::sha256_hex;
use crate::artifacts::ArtifactStore;
use crate::catalog::ToolSpec;
use crate::config::{Config, ConnProfile};
use crate::confined::{Kind, WorkspaceDir};
use crate::error::{Result, WorkspaceError};
use crate::model::{Principal, Session};
use crate::paths::{AllowedPaths, RelPath};
use crate::policy::ExtraArgsPolicy;
use crate::provider::SandboxProvider;
use crate::provider::{ExecOutcome, ExecRequest};
use crate::store::Store;

/// What a tool produced; the service turns it into the invocation record.
#[derive(Debug, Default)]
pub struct ToolResult {
    pub output: Value,
    pub exit_code: Option<i32>,
    /// (channel, message)
    pub logs: Vec<(String, String)>,
    /// (name, content type, data)
    pub artifacts: Vec<(String, String, Vec<u8>)>,
    pub error: Option<WorkspaceError>,
}

impl ToolResult {
    pub fn failed(e: WorkspaceError) -> Self {
        ToolResult {
            error: Some(e),
            ..Default::default()
        }
    }
    fn ok(output: Value) -> Self {
        ToolResult {
            output,
            ..Default::default()
        }
    }
}

/// What the tools may use of the service.
pub(crate) struct Env<'a> {
    pub cfg: &'a Config,
    pub provider: &'a dyn SandboxProvider,
    pub store: &'a dyn Store,
    pub artifacts: &'a ArtifactStore,
    /// The session's workspace on the host.
    pub workspace_dir: std::path::PathBuf,
}

struct Ctx<'a> {
    svc: &'a Env<'a>,
    session: &'a Session,
    spec: &'a ToolSpec,
    principal: &'a Principal,
    allowed: AllowedPaths,
    /// Bytes of output kept (per stream for programs).
    limit: usize,
}

fn args<T: DeserializeOwned>(tool: &str, v: Value) -> Result<T> {
    let v = if v.is_null() { json!({}) } else { v };
    serde_json::from_value(v)
        .map_err(|e| WorkspaceError::InvalidArgument(format!("{tool}: args: {e}")))
}

fn dot() -> String {
    ".".into()
}
fn yes() -> bool {
    true
}

pub(crate) fn run(
    svc: &Env,
    session: &Session,
    spec: &ToolSpec,
    principal: &Principal,
    a: Value,
) -> Result<ToolResult> {
    let limit = svc
        .cfg
        .limits
        .max_output_bytes
        .min(spec.constraints.output_limit_kb as usize * 1024);
    let cx = Ctx {
        svc,
        session,
        spec,
        principal,
        allowed: AllowedPaths::parse(&session.allowed_paths)?,
        limit,
    };
    let t = spec.name.as_str();
    match t {
        "fs.list" => fs_list(&cx, args(t, a)?),
        "fs.read_file" => fs_read(&cx, args(t, a)?),
        "fs.write_file" => fs_write(&cx, args(t, a)?),
        "fs.mkdir" => fs_mkdir(&cx, args(t, a)?),
        "fs.move" => fs_move(&cx, args(t, a)?, false),
        "fs.copy" => fs_move(&cx, args(t, a)?, true),
        "fs.delete" => fs_delete(&cx, args(t, a)?),
        "fs.stat" => fs_stat(&cx, args(t, a)?),
        "fs.patch" => fs_patch(&cx, args(t, a)?),
        "fs.search" => fs_search(&cx, args(t, a)?),
        "git.status" => {
            let _: Empty = args(t, a)?;
            cx.git(&["status", "--porcelain=v1", "--branch"], None)
        }
        "git.diff" => git_diff(&cx, args(t, a)?),
        "git.log" => {
            let a: GitLog = args(t, a)?;
            let n = format!("--max-count={}", a.max_count.unwrap_or(20).min(500));
            cx.git(&["log", "--oneline", "--no-decorate", &n], None)
        }
        "git.apply_patch" => git_apply(&cx, args(t, a)?),
        "git.commit" => git_commit(&cx, args(t, a)?),
        "git.branch" => git_branch(&cx, args(t, a)?),
        "git.checkout" => git_checkout(&cx, args(t, a)?),
        "repo.detect" => {
            let _: Empty = args(t, a)?;
            let d = detect(&cx.ws()?);
            Ok(ToolResult::ok(json!({
                "toolchain": d.map(|d| d.toolchain).unwrap_or("unknown"),
                "language": d.map(|d| d.language).unwrap_or("unknown"),
                "markers": d.map(|d| vec![d.marker]).unwrap_or_default(),
            })))
        }
        "repo.build" => repo_run(&cx, args(t, a)?, false),
        "repo.test" => repo_run(&cx, args(t, a)?, true),
        "shell.exec" => shell_exec(&cx, args(t, a)?),
        "artifact.list" => artifact_list(&cx, args(t, a)?),
        "artifact.read" => artifact_read(&cx, args(t, a)?),
        "conn.list_profiles" => {
            let _: Empty = args(t, a)?;
            let p: Vec<Value> = cx
                .svc
                .cfg
                .conn_profiles
                .iter()
                .map(|p| cx.profile(p))
                .collect();
            Ok(ToolResult::ok(json!({ "profiles": p })))
        }
        "conn.describe_profile" => {
            let a: Named = args(t, a)?;
            let p = cx
                .svc
                .cfg
                .conn_profiles
                .iter()
                .find(|p| p.name == a.name)
                .ok_or_else(|| {
                    WorkspaceError::NotFound(format!("connection profile {:?} not found", a.name))
                })?;
            Ok(ToolResult::ok(json!({ "profile": cx.profile(p) })))
        }
        other => Err(WorkspaceError::NotFound(format!(
            "tool {other:?} not found"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathArg {
    path: String,
}

impl Ctx<'_> {
    fn ws(&self) -> Result<WorkspaceDir> {
        WorkspaceDir::open(&self.svc.workspace_dir)
    }

    fn path(&self, field: &str, p: &str) -> Result<RelPath> {
        self.allowed.check(field, p)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.spec.constraints.timeout_seconds)
    }

    fn inside(&self, rel: &RelPath) -> String {
        if rel.is_root() {
            self.session.workspace_path.clone()
        } else {
            format!("{}/{}", self.session.workspace_path, rel)
        }
    }

    fn exec(
        &self,
        argv: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: &RelPath,
        timeout: Duration,
    ) -> Result<ExecOutcome> {
        let req = ExecRequest {
            argv,
            env,
            workdir: self.inside(cwd),
            timeout,
            output_limit: self.limit,
        };
        self.svc.provider.exec(&self.session.sandbox_id, &req)
    }

    /// A program's outcome as a tool result: output, logs, stdout/stderr artifacts, and an
    /// error for a timeout or a non-zero status.
    fn program(&self, o: ExecOutcome, extra: Value) -> ToolResult {
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        let mut logs = Vec::new();
        for (ch, s) in [("stdout", &stdout), ("stderr", &stderr)] {
            for l in s.lines().take(1000) {
                logs.push((ch.to_string(), l.to_string()));
            }
        }
        if o.truncated {
            logs.push((
                "service".into(),
                format!("output truncated to {} bytes per stream", self.limit),
            ));
        }
        let mut artifacts = Vec::new();
        for (name, d) in [("stdout.txt", &o.stdout), ("stderr.txt", &o.stderr)] {
            if !d.is_empty() {
                artifacts.push((name.to_string(), "text/plain".to_string(), d.clone()));
            }
        }
        let mut output = json!({
            "exit_code": o.exit_code,
            "stdout": stdout,
            "stderr": stderr,
            "truncated": o.truncated,
            "duration_ms": o.duration.as_millis() as u64,
        });
        if let (Some(m), Some(e)) = (output.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                m.insert(k.clone(), v.clone());
            }
        }
        let error = if o.timed_out {
            Some(WorkspaceError::Timeout(format!(
                "{} timed out; every process it started in the sandbox was killed",
                self.spec.name
            )))
        } else {
            match o.exit_code {
                Some(0) => None,
                Some(c) => Some(WorkspaceError::ExecutionFailed(format!(
                    "{} exited with status {c}",
                    self.spec.name
                ))),
                None => Some(WorkspaceError::ExecutionFailed("no exit status".into())),
            }
        };
        ToolResult {
            output,
            exit_code: o.exit_code,
            logs,
            artifacts,
            error,
        }
    }

    fn git(&self, args: &[&str], env: Option<BTreeMap<String, String>>) -> Result<ToolResult> {
        let ident = |s: &str| -> String {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric() || "-_.@".contains(*c))
                .collect()
        };
        let mut argv: Vec<String> = [
            "git",
            "-c",
            "core.pager=cat",
            "-c",
            "color.ui=never",
            "-c",
            "safe.directory=*",
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.hooksPath=/dev/null",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        argv.push("-c".into());
        argv.push(format!("user.name={}", ident(&self.principal.actor_id)));
        argv.push("-c".into());
        argv.push(format!(
            "user.email={}@{}",
            ident(&self.principal.actor_id),
            ident(&self.principal.tenant_id)
        ));
        argv.extend(args.iter().map(|s| s.to_string()));
        let mut e = env.unwrap_or_default();
        e.insert("HOME".into(), "/tmp".into());
        e.insert("GIT_TERMINAL_PROMPT".into(), "0".into());
        e.insert("GIT_CONFIG_NOSYSTEM".into(), "1".into());
        let o = self.exec(argv, e, &RelPath::root(), self.timeout())?;
        if o.exit_code == Some(127) {
            return Ok(ToolResult::failed(WorkspaceError::ExecutionFailed(
                "git is not installed in the sandbox's root filesystem".into(),
            )));
        }
        Ok(self.program(o, json!({})))
    }

    fn profile(&self, p: &ConnProfile) -> Value {
        let secret = |k: &str| {
            let k = k.to_ascii_lowercase();
            ["secret", "token", "password", "credential", "key", "auth"]
                .iter()
                .any(|s| k.contains(s))
        };
        let mut m = serde_json::Map::new();
        m.insert("name".into(), json!(p.name));
        for (k, v) in &p.fields {
            if !secret(k) {
                m.insert(k.clone(), v.clone());
            }
        }
        let host = p
            .fields
            .get("host")
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| {
                ["url", "endpoint"].iter().find_map(|k| {
                    let u = p.fields.get(*k)?.as_str()?;
                    let rest = u.split_once("://").map(|x| x.1).unwrap_or(u);
                    let hostport = rest.split(['/', '?', '#']).next()?;
                    let hostport = hostport.rsplit_once('@').map(|x| x.1).unwrap_or(hostport);
                    Some(
                        hostport
                            .rsplit_once(':')
                            .map(|x| x.0)
                            .unwrap_or(hostport)
                            .to_string(),
                    )
                })
            });
        let allowed = host.as_deref().is_some_and(|h| {
            self.svc
                .cfg
                .conn_host_allowlist
                .iter()
                .any(|a| match a.strip_prefix("*.") {
                    Some(suffix) => h.ends_with(&format!(".{suffix}")),
                    None => a == h,
                })
        });
        m.insert("host".into(), json!(host));
        m.insert("host_allowed".into(), json!(allowed));
        Value::Object(m)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FsList {
    #[serde(default = "dot")]
    path: String,
    #[serde(default)]
    recursive: bool,
    #[serde(default)]
    max_entries: Option<usize>,
}

fn fs_list(cx: &Ctx, a: FsList) -> Result<ToolResult> {
    let p = cx.path("path", &a.path)?;
    let max = a.max_entries.unwrap_or(1000).min(10_000);
    let (entries, truncated) = cx.ws()?.list(&p, if a.recursive { 32 } else { 0 }, max)?;
    // Entries outside the allowed paths are not shown.
    let entries: Vec<_> = entries
        .into_iter()
        .filter(|e| cx.allowed.check("path", &e.path).is_ok())
        .collect();
    Ok(ToolResult::ok(
        json!({"path": p.as_str(), "entries": entries, "truncated": truncated}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FsRead {
    path: String,
    #[serde(default)]
    max_bytes: Option<u64>,
}

fn fs_read(cx: &Ctx, a: FsRead) -> Result<ToolResult> {
    let p = cx.path("path", &a.path)?;
    let max = a.max_bytes.unwrap_or(u64::MAX).min(cx.limit as u64);
    let ws = cx.ws()?;
    let (data, truncated) = ws.read(&p, max)?;
    let size = ws.stat(&p)?.size_bytes;
    let content = String::from_utf8(data)
        .map_err(|_| WorkspaceError::InvalidArgument(format!("{p}: not UTF-8 text")))?;
    Ok(ToolResult::ok(json!({
        "path": p.as_str(), "content": content, "size_bytes": size, "truncated": truncated,
        "sha256": if truncated { Value::Null } else { json!(sha256_hex(content.as_bytes())) },
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FsWrite {
    path: String,
    content: String,
    #[serde(default = "yes")]
    create_parents: bool,
}

fn fs_write(cx: &Ctx, a: FsWrite) -> Result<ToolResult> {
    let p = cx.path("path", &a.path)?;
    if p.is_root() {
        return Err(WorkspaceError::InvalidArgument(
            "path: the workspace root is a directory".into(),
        ));
    }
    let n = cx.ws()?.write(&p, a.content.as_bytes(), a.create_parents)?;
    Ok(ToolResult::ok(
        json!({"path": p.as_str(), "bytes_written": n, "sha256": sha256_hex(a.content.as_bytes())}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FsMkdir {
    path: String,
    #[serde(default = "yes")]
    parents: bool,
}

fn fs_mkdir(cx: &Ctx, a: FsMkdir) -> Result<ToolResult> {
    let p = cx.path("path", &a.path)?;
    cx.ws()?.mkdir(&p, a.parents)?;
    Ok(ToolResult::ok(json!({"path": p.as_str()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FsMove {
    source: String,
    destination: String,
    #[serde(default)]
    overwrite: bool,
}

fn fs_move(cx: &Ctx, a: FsMove, copy: bool) -> Result<ToolResult> {
    let s = cx.path("source", &a.source)?;
    let d = cx.path("destination", &a.destination)?;
    let ws = cx.ws()?;
    if copy {
        let n = ws.copy_file(
            &s,
            &d,
            a.overwrite,
            cx.svc.cfg.limits.max_artifact_bytes.max(64 << 20),
        )?;
        Ok(ToolResult::ok(
            json!({"source": s.as_str(), "destination": d.as_str(), "bytes_copied": n}),
        ))
    } else {
        ws.rename(&s, &d, a.overwrite)?;
        Ok(ToolResult::ok(
            json!({"source": s.as_str(), "destination": d.as_str()}),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FsDelete {
    path: String,
    #[serde(default)]
    recursive: bool,
}

fn fs_delete(cx: &Ctx, a: FsDelete) -> Result<ToolResult> {
    let p = cx.path("path", &a.path)?;
    cx.ws()?.delete(&p, a.recursive)?;
    Ok(ToolResult::ok(json!({"deleted": p.as_str()})))
}

fn fs_stat(cx: &Ctx, a: PathArg) -> Result<ToolResult> {
    let p = cx.path("path", &a.path)?;
    let st = cx.ws()?.stat(&p)?;
    Ok(ToolResult::ok(serde_json::to_value(st).unwrap_or_default()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FsPatch {
    path: String,
    patch: String,
}

fn fs_patch(cx: &Ctx, a: FsPatch) -> Result<ToolResult> {
    let p = cx.path("path", &a.path)?;
    let ws = cx.ws()?;
    let (data, truncated) = ws.read(&p, 16 << 20)?;
    if truncated {
        return Err(WorkspaceError::InvalidArgument(format!(
            "{p}: larger than 16 MiB"
        )));
    }
    let old = String::from_utf8(data)
        .map_err(|_| WorkspaceError::InvalidArgument(format!("{p}: not UTF-8 text")))?;
    let patch = diffy::Patch::from_str(&a.patch)
        .map_err(|e| WorkspaceError::InvalidArgument(format!("patch: not a unified diff: {e}")))?;
    let hunks = patch.hunks().len();
    let new = diffy::apply(&old, &patch).map_err(|e| {
        WorkspaceError::ExecutionFailed(format!("patch does not apply to {p}: {e}"))
    })?;
    ws.write(&p, new.as_bytes(), false)?;
    Ok(ToolResult::ok(
        json!({"path": p.as_str(), "hunks_applied": hunks, "sha256": sha256_hex(new.as_bytes())}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FsSearch {
    pattern: String,
    #[serde(default = "dot")]
    path: String,
    #[serde(default)]
    max_results: Option<usize>,
}

fn fs_search(cx: &Ctx, a: FsSearch) -> Result<ToolResult> {
    let p = cx.path("path", &a.path)?;
    let re = regex::RegexBuilder::new(&a.pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| WorkspaceError::InvalidArgument(format!("pattern: {e}")))?;
    let max = a.max_results.unwrap_or(100).min(1000);
    let (m, truncated) = cx.ws()?.search(&p, &re, max, 1 << 20)?;
    let m: Vec<_> = m
        .into_iter()
        .filter(|m| cx.allowed.check("path", &m.path).is_ok())
        .collect();
    Ok(ToolResult::ok(
        json!({"matches": m, "truncated": truncated}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GitDiff {
    #[serde(default)]
    staged: bool,
    #[serde(default)]
    paths: Vec<String>,
}

fn git_diff(cx: &Ctx, a: GitDiff) -> Result<ToolResult> {
    let mut args = vec![
        "diff".to_string(),
        "--no-ext-diff".into(),
        "--no-textconv".into(),
    ];
    if a.staged {
        args.push("--cached".into());
    }
    args.push("--".into());
    for (i, p) in a.paths.iter().enumerate() {
        args.push(cx.path(&format!("paths[{i}]"), p)?.to_string());
    }
    let r: Vec<&str> = args.iter().map(String::as_str).collect();
    cx.git(&r, None)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GitLog {
    #[serde(default)]
    max_count: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GitApply {
    patch: String,
    #[serde(default)]
    check: bool,
}

fn git_apply(cx: &Ctx, a: GitApply) -> Result<ToolResult> {
    if a.patch.len() > 100 * 1024 {
        return Err(WorkspaceError::InvalidArgument(
            "patch: larger than 100 KiB".into(),
        ));
    }
    if a.patch.contains('\0') {
        return Err(WorkspaceError::InvalidArgument(
            "patch: contains a NUL byte".into(),
        ));
    }
    // The patch reaches git through the environment (the sandbox's stdin is not the caller's);
    // git apply itself refuses paths with '..' or outside the working tree.
    let mut env = BTreeMap::new();
    env.insert("GWS_PATCH".to_string(), a.patch);
    let check = if a.check { " --check" } else { "" };
    let o = cx.exec(
        vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("printf '%s' \"$GWS_PATCH\" | HOME=/tmp git -c safe.directory='*' -c core.hooksPath=/dev/null apply{check} --verbose -"),
        ],
        env,
        &RelPath::root(),
        cx.timeout(),
    )?;
    Ok(cx.program(o, json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GitCommit {
    message: String,
    #[serde(default = "yes")]
    all: bool,
}

fn git_commit(cx: &Ctx, a: GitCommit) -> Result<ToolResult> {
    if a.message.trim().is_empty() || a.message.contains('\0') {
        return Err(WorkspaceError::InvalidArgument(
            "message: empty or with a NUL byte".into(),
        ));
    }
    if a.all {
        let r = cx.git(&["add", "-A"], None)?;
        if r.error.is_some() {
            return Ok(r);
        }
    }
    cx.git(&["commit", "--no-verify", "-m", &a.message], None)
}

fn ref_ok(field: &str, r: &str) -> Result<()> {
    if r.is_empty()
        || r.starts_with('-')
        || r.contains("..")
        || r.chars().any(|c| c.is_control() || " ~^:?*[\\".contains(c))
    {
        return Err(WorkspaceError::InvalidArgument(format!(
            "{field}: {r:?} is not a valid git ref"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GitBranch {
    #[serde(default)]
    name: Option<String>,
}

fn git_branch(cx: &Ctx, a: GitBranch) -> Result<ToolResult> {
    match a.name {
        None => cx.git(&["branch", "--list", "--no-color"], None),
        Some(n) => {
            ref_ok("name", &n)?;
            cx.git(&["branch", "--", &n], None)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GitCheckout {
    #[serde(rename = "ref")]
    reference: String,
    #[serde(default)]
    create: bool,
}

fn git_checkout(cx: &Ctx, a: GitCheckout) -> Result<ToolResult> {
    ref_ok("ref", &a.reference)?;
    if a.create {
        cx.git(&["switch", "-c", &a.reference], None)
    } else {
        cx.git(&["switch", "--detach", &a.reference], None)
            .and_then(|r| {
                if r.error.is_none() {
                    Ok(r)
                } else {
                    cx.git(&["switch", &a.reference], None)
                }
            })
    }
}

#[derive(Clone, Copy)]
struct Detected {
    toolchain: &'static str,
    language: &'static str,
    marker: &'static str,
}

fn detect(ws: &WorkspaceDir) -> Option<Detected> {
    const MARKERS: &[(&str, &str, &str)] = &[
        ("Cargo.toml", "cargo", "rust"),
        ("go.mod", "go", "go"),
        ("pyproject.toml", "pytest", "python"),
        ("pytest.ini", "pytest", "python"),
        ("setup.py", "pytest", "python"),
        ("conftest.py", "pytest", "python"),
        ("package.json", "npm", "javascript"),
        ("test.sh", "script", "shell"),
    ];
    MARKERS.iter().find_map(|(m, t, l)| {
        let p = RelPath::parse("marker", m).ok()?;
        (ws.stat(&p).ok()?.kind == Kind::File).then_some(Detected {
            toolchain: t,
            language: l,
            marker: m,
        })
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepoRun {
    #[serde(default)]
    extra_args: Vec<String>,
}

fn extra_policy(toolchain: &str) -> ExtraArgsPolicy {
    let (allowed, denied): (&'static [&'static str], &'static [&'static str]) = match toolchain {
        "cargo" => (
            &[
                "--lib",
                "--bins",
                "--tests",
                "--test",
                "--package",
                "-p",
                "--features",
                "--all-features",
                "--no-default-features",
                "--release",
                "--workspace",
                "-q",
                "--quiet",
                "--no-fail-fast",
                "--",
                "--exact",
                "--nocapture",
                "--ignored",
                "--include-ignored",
                "--test-threads",
            ],
            &[
                "--config",
                "-Z",
                "--manifest-path",
                "--target-dir",
                "--out-dir",
            ],
        ),
        "go" => (
            &[
                "-run",
                "-v",
                "-count",
                "-short",
                "-race",
                "-timeout",
                "-failfast",
            ],
            &["-exec", "-toolexec", "-modfile", "-o"],
        ),
        "pytest" => (
            &[
                "-k",
                "-x",
                "-q",
                "-v",
                "-m",
                "--maxfail",
                "--lf",
                "-rA",
                "--tb",
            ],
            &[
                "-p",
                "--rootdir",
                "--confcutdir",
                "-c",
                "--basetemp",
                "-o",
                "--override-ini",
            ],
        ),
        "npm" => (
            &["--", "--silent", "--watch=false", "--ci"],
            &[
                "--prefix",
                "--userconfig",
                "--globalconfig",
                "--script-shell",
            ],
        ),
        _ => (&["-v", "-q", "--"], &[]),
    };
    ExtraArgsPolicy {
        max_items: 16,
        max_len: 256,
        allowed_prefixes: allowed,
        denied_prefixes: denied,
    }
}

fn repo_run(cx: &Ctx, a: RepoRun, test: bool) -> Result<ToolResult> {
    let d = detect(&cx.ws()?).ok_or_else(|| {
        WorkspaceError::ExecutionFailed(
            "no known project in the workspace (Cargo.toml, go.mod, pyproject.toml/pytest.ini/setup.py/conftest.py, package.json, test.sh)".into(),
        )
    })?;
    extra_policy(d.toolchain).check(&a.extra_args)?;
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let mut argv = match (d.toolchain, test) {
        ("cargo", true) => s(&["cargo", "test"]),
        ("cargo", false) => s(&["cargo", "build"]),
        ("go", true) => s(&["go", "test", "./..."]),
        ("go", false) => s(&["go", "build", "./..."]),
        ("pytest", true) => s(&["python3", "-m", "pytest", "-rA"]),
        ("pytest", false) => s(&["python3", "-m", "compileall", "-q", "."]),
        ("npm", true) => s(&["npm", "test"]),
        ("npm", false) => s(&["npm", "run", "build"]),
        (_, true) => s(&["/bin/sh", "test.sh"]),
        (_, false) => s(&["/bin/sh", "build.sh"]),
    };
    argv.extend(a.extra_args);
    let mut env = BTreeMap::new();
    env.insert("HOME".to_string(), "/tmp".to_string());
    env.insert("CI".to_string(), "true".to_string());
    let o = cx.exec(argv, env, &RelPath::root(), cx.timeout())?;
    if o.exit_code == Some(127) {
        return Ok(ToolResult::failed(WorkspaceError::ExecutionFailed(
            format!(
                "the {} toolchain is not installed in the sandbox's root filesystem",
                d.toolchain
            ),
        )));
    }
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    let re = match d.toolchain {
        "cargo" => r"^test (\S+) \.\.\. FAILED$",
        "go" => r"^\s*--- FAIL: (\S+)",
        "pytest" => r"^FAILED (\S+)",
        "npm" => r"^\s*(?:✕|×|not ok \d+) (.+)$",
        _ => r"^FAIL:? (.+)$",
    };
    let re = regex::Regex::new(re).map_err(|e| WorkspaceError::Internal(e.to_string()))?;
    let failures: Vec<String> = text
        .lines()
        .filter_map(|l| re.captures(l).map(|c| c[1].trim().to_string()))
        .collect();
    let passed = o.exit_code == Some(0);
    let mut r = cx.program(
        o,
        json!({"toolchain": d.toolchain, "passed": passed, "failures": if test { json!(failures) } else { json!([]) }}),
    );
    if test && r.error.is_some() && !failures.is_empty() {
        r.error = Some(WorkspaceError::ExecutionFailed(format!(
            "{} test(s) failed: {}",
            failures.len(),
            failures.join(", ")
        )));
    }
    Ok(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShellExec {
    argv: Vec<String>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    timeout_seconds: Option<u64>,
}

fn shell_exec(cx: &Ctx, a: ShellExec) -> Result<ToolResult> {
    if a.argv.is_empty() || a.argv[0].is_empty() {
        return Err(WorkspaceError::InvalidArgument(
            "argv: needs a program".into(),
        ));
    }
    if a.argv.iter().any(|x| x.contains('\0')) {
        return Err(WorkspaceError::InvalidArgument(
            "argv: an argument contains a NUL byte".into(),
        ));
    }
    for (k, v) in &a.env {
        let ok = !k.is_empty()
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !k.starts_with(|c: char| c.is_ascii_digit());
        if !ok || v.contains('\0') {
            return Err(WorkspaceError::InvalidArgument(format!(
                "env: {k:?} is not a valid variable"
            )));
        }
    }
    let cwd = cx.path("cwd", a.cwd.as_deref().unwrap_or("."))?;
    let max = cx.spec.constraints.timeout_seconds;
    let t = a.timeout_seconds.unwrap_or(60);
    if t == 0 || t > max {
        return Err(WorkspaceError::InvalidArgument(format!(
            "timeout_seconds: {t} is outside 1..={max}"
        )));
    }
    let o = cx.exec(a.argv, a.env, &cwd, Duration::from_secs(t))?;
    Ok(cx.program(o, json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArtifactList {
    #[serde(default)]
    invocation_id: Option<String>,
}

fn artifact_list(cx: &Ctx, a: ArtifactList) -> Result<ToolResult> {
    let mut out = Vec::new();
    for i in cx.svc.store.session_invocations(&cx.session.id)? {
        if a.invocation_id.as_ref().is_some_and(|w| *w != i.id) {
            continue;
        }
        for art in i.artifacts {
            let mut v = serde_json::to_value(&art).unwrap_or_default();
            v["invocation_id"] = json!(i.id);
            out.push(v);
        }
    }
    Ok(ToolResult::ok(json!({"artifacts": out})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArtifactRead {
    artifact_id: String,
    #[serde(default)]
    max_bytes: Option<usize>,
}

fn artifact_read(cx: &Ctx, a: ArtifactRead) -> Result<ToolResult> {
    for i in cx.svc.store.session_invocations(&cx.session.id)? {
        if let Some(art) = i.artifacts.iter().find(|x| x.id == a.artifact_id) {
            let data = cx.svc.artifacts.read(art)?;
            let max = a.max_bytes.unwrap_or(usize::MAX).min(cx.limit);
            let truncated = data.len() > max;
            let content = String::from_utf8_lossy(&data[..data.len().min(max)]).into_owned();
            return Ok(ToolResult::ok(json!({
                "artifact": art, "content": content, "sha256": art.sha256, "truncated": truncated,
            })));
        }
    }
    Err(WorkspaceError::NotFound(format!(
        "artifact {:?} not found in this session",
        a.artifact_id
    )))
}
