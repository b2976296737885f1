//! The MCP endpoint (Model Context Protocol, "streamable HTTP" transport, through the official
//! Rust SDK `rmcp`): a session's tool catalog as MCP tools, so that coding agents can use a
//! session directly.
//!
//! * `/v1/sessions/{id}/mcp`, or `/mcp` with the `X-Workspace-Session-Id` header. The auth
//!   middleware of the REST API runs first (token and principal headers, as for every `/v1` call);
//!   then [`gate`] resolves the session for that caller: unknown, expired or another tenant's
//!   or actor's session → 404 `not_found` in the one JSON error shape, before any MCP message is
//!   read.
//! * `tools/list` is `GET /v1/sessions/{id}/tools` (the catalog entries the principal's roles may
//!   call); `tools/call` goes through [`crate::api::run_invocation`], the very function of
//!   `POST /v1/sessions/{id}/tools/{tool}/invoke`: same policy, approval, paths, limits, rate
//!   limits, metrics and invocation record (visible at `GET /v1/invocations/{id}`).
//! * Approval: the tool's arguments may carry `"approved": true` beside its own arguments (it is
//!   taken out before the tool sees them); the input schema of a tool that requires approval
//!   lists it, so that a client which validates arguments against the schema lets it through.
//!
//! The caller and the session are read per HTTP request from the request's parts (rmcp passes
//! them to every handler call), never from the MCP session: an `Mcp-Session-Id` made on one
//! workspace session and replayed on another URL acts on the session the URL names, for the
//! principal the request's own headers name.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use gocker_workspace::catalog::{self, ToolSpec};
use gocker_workspace::model::{Invocation, InvokeRequest};
use gocker_workspace::ErrorCode;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, MetaObject, PaginatedRequestParams, ServerCapabilities,
    ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::api::{blocking, header, ApiError, App, Caller, MAX_BODY};

/// The header that names the session on `/mcp`.
pub const SESSION_HEADER: &str = "x-workspace-session-id";

/// The argument beside a tool's own that approves a call of a tool with `requires_approval`.
pub const APPROVED_ARG: &str = "approved";

/// The `_meta` key under which each MCP tool carries its full catalog entry.
pub const CATALOG_META: &str = "io.gocker/catalog";

/// The workspace session an MCP request acts on, set by [`gate`].
#[derive(Clone, Debug)]
pub struct McpTarget {
    pub session_id: String,
}

/// The tower service of the endpoint: one per server, shared by both routes. `hosts` are the
/// `Host` values it accepts (DNS-rebinding protection of rmcp): loopback plus the bind address.
pub fn service(
    app: Arc<App>,
    hosts: Vec<String>,
    shutdown: CancellationToken,
) -> StreamableHttpService<WorkspaceMcp, LocalSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_max_request_body_bytes(MAX_BODY)
        .with_cancellation_token(shutdown);
    StreamableHttpService::new(
        move || Ok(WorkspaceMcp { app: app.clone() }),
        Default::default(),
        config,
    )
}

/// The endpoint's routes, `/v1/sessions/{id}/mcp` and `/mcp`, each behind [`gate`]; the caller
/// merges them under its auth middleware.
pub fn routes(app: &Arc<App>) -> Router<Arc<App>> {
    let svc = service(app.clone(), app.mcp_hosts.clone(), app.shutdown.clone());
    Router::new()
        .route_service("/v1/sessions/{id}/mcp", svc.clone())
        .route_service("/mcp", svc)
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), gate))
}

/// Which session the request names (the path's `{id}`, else the header), and whether the
/// caller may see it. Runs after the auth middleware.
pub async fn gate(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    let from_path = path
        .strip_prefix("/v1/sessions/")
        .and_then(|r| r.strip_suffix("/mcp"))
        .map(String::from);
    let Some(id) = from_path.or_else(|| header(req.headers(), SESSION_HEADER)) else {
        return ApiError {
            code: ErrorCode::InvalidArgument,
            message: format!(
                "/mcp needs the {SESSION_HEADER} header (or use /v1/sessions/{{id}}/mcp)"
            ),
            retry_after: None,
        }
        .into_response();
    };
    let svc = app.service.clone();
    let sid = id.clone();
    if let Err(e) = blocking(move || svc.session(caller.0.as_ref(), &sid)).await {
        return e.into_response();
    }
    req.extensions_mut().insert(McpTarget { session_id: id });
    if req.method() == Method::POST {
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(b) => b,
            Err(_) => {
                return rpc_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Value::Null,
                    INVALID_REQUEST,
                    &format!("request body over {MAX_BODY} bytes"),
                )
            }
        };
        if let Err((id, code, message)) = check_message(&bytes) {
            return rpc_error(StatusCode::BAD_REQUEST, id, code, &message);
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    next.run(req).await
}

/// JSON-RPC 2.0: the body is not JSON.
pub const PARSE_ERROR: i32 = -32700;
/// JSON-RPC 2.0: the body is JSON but not a JSON-RPC message.
pub const INVALID_REQUEST: i32 = -32600;

fn rpc_error(status: StatusCode, id: Value, code: i32, message: &str) -> Response {
    (
        status,
        Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// Whether a POST body is a JSON-RPC 2.0 message (or a non-empty batch of them), so that a
/// client gets a JSON-RPC error for a malformed one (rmcp answers those in plain text):
/// `Err((id, code, message))`, `id` the message's when it has one.
pub fn check_message(body: &[u8]) -> Result<(), (Value, i32, String)> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| (Value::Null, PARSE_ERROR, format!("parse error: {e}")))?;
    let one = |m: &Value| -> Result<(), (Value, i32, String)> {
        let Value::Object(o) = m else {
            return Err((
                Value::Null,
                INVALID_REQUEST,
                "invalid request: a JSON-RPC message is an object".into(),
            ));
        };
        let id = match o.get("id") {
            Some(i @ (Value::String(_) | Value::Number(_))) => i.clone(),
            _ => Value::Null,
        };
        let bad = |why: &str| {
            Err((
                id.clone(),
                INVALID_REQUEST,
                format!("invalid request: {why}"),
            ))
        };
        if o.get("jsonrpc") != Some(&json!("2.0")) {
            return bad("\"jsonrpc\" must be \"2.0\"");
        }
        match o.get("id") {
            None | Some(Value::String(_) | Value::Number(_)) => {}
            Some(_) => return bad("\"id\" must be a string or a number"),
        }
        match o.get("method") {
            Some(Value::String(_)) => Ok(()),
            Some(_) => bad("\"method\" must be a string"),
            None if o.contains_key("id")
                && (o.contains_key("result") || o.contains_key("error")) =>
            {
                Ok(())
            }
            None => bad("no \"method\" (nor a response's \"result\" or \"error\")"),
        }
    };
    match &v {
        Value::Array(a) if a.is_empty() => Err((
            Value::Null,
            INVALID_REQUEST,
            "invalid request: an empty batch".into(),
        )),
        Value::Array(a) => a.iter().try_for_each(one),
        m => one(m),
    }
}

/// The MCP server of one MCP session (rmcp makes one per `initialize`).
#[derive(Clone)]
pub struct WorkspaceMcp {
    app: Arc<App>,
}

/// The HTTP request behind an MCP request: its caller, target session and headers.
struct Origin {
    caller: Caller,
    target: McpTarget,
    parts: Parts,
}

fn origin(ctx: &RequestContext<RoleServer>) -> Result<Origin, ErrorData> {
    let missing = || ErrorData::internal_error("the MCP request has no HTTP request parts", None);
    let parts = ctx.extensions.get::<Parts>().ok_or_else(missing)?;
    let caller = parts
        .extensions
        .get::<Caller>()
        .cloned()
        .ok_or_else(missing)?;
    let target = parts
        .extensions
        .get::<McpTarget>()
        .cloned()
        .ok_or_else(missing)?;
    Ok(Origin {
        caller,
        target,
        parts: parts.clone(),
    })
}

/// An API error as an MCP protocol error, with the service's code in `data`.
fn protocol_error(e: ApiError) -> ErrorData {
    let data = Some(json!({"code": e.code, "message": e.message}));
    match e.code {
        ErrorCode::InvalidArgument | ErrorCode::NotFound => {
            ErrorData::invalid_params(e.message, data)
        }
        _ => ErrorData::internal_error(e.message, data),
    }
}

/// A catalog entry as an MCP tool: the input schema (with `approved` when the tool requires
/// approval), hints from its metadata, the whole entry under `_meta`. No `outputSchema`: the
/// structured content of a result is the invocation record, not the tool's output alone.
pub fn mcp_tool(spec: &ToolSpec) -> Tool {
    let mut schema: JsonObject = match &spec.input_schema {
        Value::Object(o) => o.clone(),
        _ => JsonObject::new(),
    };
    if spec.requires_approval {
        if let Some(Value::Object(props)) = schema.get_mut("properties") {
            props.insert(
                APPROVED_ARG.into(),
                json!({"type": "boolean", "description": "approve this call: the tool requires approval (taken out before the tool sees its arguments)"}),
            );
        }
    }
    let read_only = spec.side_effects == "none";
    let annotations = ToolAnnotations::from_raw(
        Some(spec.name.clone()),
        Some(read_only),
        Some(!read_only && spec.requires_approval),
        Some(spec.idempotency == "idempotent"),
        Some(spec.scope == "connections"),
    );
    let mut meta = JsonObject::new();
    if let Ok(v) = serde_json::to_value(spec) {
        meta.insert(CATALOG_META.into(), v);
    }
    let mut t = Tool::new(
        spec.name.clone(),
        spec.description.clone(),
        Arc::new(schema),
    )
    .with_annotations(annotations);
    t.meta = Some(MetaObject(meta));
    t
}

/// An invocation record as an MCP result: text content = the output (JSON); a failed or denied
/// call is `isError` with its code and message first; `structuredContent` = the record.
pub fn call_result(inv: &Invocation) -> CallToolResult {
    let output = serde_json::to_string(&inv.output).unwrap_or_else(|_| "null".into());
    let mut r = match &inv.error {
        None => CallToolResult::success(vec![ContentBlock::text(output)]),
        Some(e) => {
            let mut content = vec![ContentBlock::text(
                json!({"error": {"code": e.code, "message": e.message, "retryable": e.retryable}, "invocation_id": inv.id})
                    .to_string(),
            )];
            if !inv.output.is_null() {
                content.push(ContentBlock::text(output));
            }
            CallToolResult::error(content)
        }
    };
    r.structured_content = serde_json::to_value(inv).ok();
    r
}

/// A call refused before it became an invocation (rate limits, a session gone meanwhile): an
/// MCP tool error with the code and message, as a denied invocation's.
fn refused(e: &ApiError) -> CallToolResult {
    let mut body =
        json!({"error": {"code": e.code, "message": e.message, "retryable": e.code.retryable()}});
    if let Some(s) = e.retry_after {
        body["retry_after_seconds"] = json!(s);
    }
    let mut r = CallToolResult::error(vec![ContentBlock::text(body.to_string())]);
    r.structured_content = Some(body);
    r
}

impl ServerHandler for WorkspaceMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "gocker-workspaced",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "The tools of one Gocker workspace session; every call is policy-governed and recorded. \
                 Paths are relative to the workspace. Tools that require approval take \"approved\": true \
                 beside their arguments.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let o = origin(&ctx)?;
        let svc = self.app.service.clone();
        let c = o.caller.0.clone();
        let id = o.target.session_id.clone();
        let s = blocking(move || svc.session(c.as_ref(), &id))
            .await
            .map_err(protocol_error)?;
        let who = o.caller.0.unwrap_or(s.principal);
        let tools = self.app.service.tools(&who).iter().map(mcp_tool).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let o = origin(&ctx)?;
        let name = request.name.to_string();
        if catalog::find(&name).is_none() {
            return Err(ErrorData::invalid_params(
                format!("unknown tool {name:?}"),
                Some(json!({"code": "not_found"})),
            ));
        }
        let mut args = request.arguments.unwrap_or_default();
        let approved = match args.remove(APPROVED_ARG) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(other) => {
                return Err(ErrorData::invalid_params(
                    format!("{APPROVED_ARG}: a boolean, not {other}"),
                    Some(json!({"code": "invalid_argument"})),
                ))
            }
        };
        let req = InvokeRequest {
            correlation_id: None,
            approved,
            args: Value::Object(args),
        };
        let r = crate::api::run_invocation(
            &self.app,
            o.caller,
            o.target.session_id,
            name,
            req,
            &o.parts.headers,
        )
        .await;
        match r {
            Ok(inv) => Ok(call_result(&inv).into()),
            Err(e) if e.code == ErrorCode::Internal => Err(protocol_error(e)),
            Err(e) => Ok(refused(&e).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_messages_are_json_rpc_errors() {
        let code = |b: &str| check_message(b.as_bytes()).err().map(|e| (e.0, e.1));
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#), None);
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            None
        );
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#), None);
        assert_eq!(code(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#), None);
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":5,"#),
            Some((Value::Null, PARSE_ERROR))
        );
        assert_eq!(code(""), Some((Value::Null, PARSE_ERROR)));
        assert_eq!(code("\u{0}"), Some((Value::Null, PARSE_ERROR)));
        assert_eq!(code(r#"{"foo":1}"#), Some((Value::Null, INVALID_REQUEST)));
        assert_eq!(
            code(r#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#),
            Some((json!(7), INVALID_REQUEST))
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#),
            Some((Value::Null, INVALID_REQUEST))
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":"x","method":3}"#),
            Some((json!("x"), INVALID_REQUEST))
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","result":{}}"#),
            Some((Value::Null, INVALID_REQUEST))
        );
        assert_eq!(code("[]"), Some((Value::Null, INVALID_REQUEST)));
        assert_eq!(code("[1]"), Some((Value::Null, INVALID_REQUEST)));
        assert_eq!(code("42"), Some((Value::Null, INVALID_REQUEST)));
    }

    #[test]
    fn approval_argument_in_the_schema_of_approval_tools_only() {
        for spec in catalog::catalog() {
            let t = mcp_tool(&spec);
            assert_eq!(t.name, spec.name);
            let props = t.input_schema.get("properties").and_then(Value::as_object);
            let has = props.is_some_and(|p| p.contains_key(APPROVED_ARG));
            assert_eq!(has, spec.requires_approval, "{}", spec.name);
            assert!(
                !spec.input_schema["properties"]
                    .as_object()
                    .is_some_and(|p| p.contains_key(APPROVED_ARG)),
                "{}: a tool's own argument named {APPROVED_ARG} would be taken for the approval",
                spec.name
            );
            assert!(t.output_schema.is_none());
            let meta = t.meta.as_ref().map(|m| &m.0[CATALOG_META]);
            assert_eq!(meta.and_then(|m| m["name"].as_str()), Some(&*spec.name));
        }
    }
}
