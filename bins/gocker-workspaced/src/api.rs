//! The HTTP API: routes, the auth middleware, the JSON envelopes and the one error shape.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use gocker_workspace::model::{CreateSession, Invocation, InvokeRequest, Principal};
use gocker_workspace::{ErrorCode, Service, WorkspaceError};
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::config::{AuthConfig, AuthMode};
use crate::limits::RateLimiter;
use crate::metrics::{Metrics, ToolReason, ToolStatus};

/// Request bodies over this are refused.
pub const MAX_BODY: usize = 2 * 1024 * 1024;

pub struct App {
    pub service: Arc<Service>,
    pub auth: AuthConfig,
    pub limiter: RateLimiter,
    pub metrics: Metrics,
    /// The `Host` values the MCP endpoint accepts (loopback and the bind address).
    pub mcp_hosts: Vec<String>,
    /// Cancelled at shutdown: ends the MCP endpoint's open streams.
    pub shutdown: CancellationToken,
}

/// One JSON error shape everywhere: `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl From<WorkspaceError> for ApiError {
    fn from(e: WorkspaceError) -> Self {
        let retry_after = match &e {
            WorkspaceError::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        ApiError {
            code: e.code(),
            message: e.to_string(),
            retry_after,
        }
    }
}

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

fn status(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn with_retry(mut r: Response, retry_after: Option<u64>) -> Response {
    if let Some(s) = retry_after {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            r.headers_mut().insert("retry-after", v);
        }
    }
    r
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        with_retry((status(self.code), body).into_response(), self.retry_after)
    }
}

type ApiResult = Result<Response, ApiError>;

/// Who calls: the principal from the trusted headers (or, in payload mode, from the headers
/// when a client sends them).
#[derive(Clone, Debug)]
pub struct Caller(pub Option<Principal>);

pub(crate) fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
}

async fn auth(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let a = &app.auth;
    let h = req.headers();
    if let Some(token) = &a.shared_token {
        let given = header(h, &a.token_header).unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            return ApiError::new(
                ErrorCode::Unauthorized,
                format!("missing or wrong {} header", a.token_header),
            )
            .into_response();
        }
    }
    let principal = match (header(h, &a.tenant_header), header(h, &a.actor_header)) {
        (Some(tenant_id), Some(actor_id)) => Some(Principal {
            tenant_id,
            actor_id,
            roles: header(h, &a.roles_header)
                .map(|r| {
                    r.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        }),
        _ if a.mode == AuthMode::TrustedHeaders => {
            return ApiError::new(
                ErrorCode::Unauthorized,
                format!(
                    "trusted_headers: the {} and {} headers are required",
                    a.tenant_header, a.actor_header
                ),
            )
            .into_response()
        }
        _ => None,
    };
    req.extensions_mut().insert(Caller(principal));
    next.run(req).await
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WorkspaceError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("worker: {e}")))?
        .map_err(ApiError::from)
}

fn parse<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::InvalidArgument,
                format!("request body over {MAX_BODY} bytes"),
            )
        } else {
            ApiError::new(ErrorCode::InvalidArgument, e.body_text())
        }
    })?;
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidArgument, format!("body: {e}")))
}

/// The service's router. `mcp_routes` (the MCP endpoint, `crate::mcp::routes`) sit beside the
/// `/v1` routes, behind the same auth middleware.
pub fn router(app: Arc<App>, mcp_routes: Router<Arc<App>>) -> Router {
    let v1 = Router::new()
        .route("/v1/sessions", post(create_session))
        .route("/v1/providers", get(list_providers))
        .route("/v1/sessions/{id}", get(get_session).delete(delete_session))
        .route("/v1/sessions/{id}/tools", get(list_tools))
        .route("/v1/sessions/{id}/tools/{tool}/invoke", post(invoke))
        .route("/v1/invocations/{id}", get(get_invocation))
        .route("/v1/invocations/{id}/logs", get(get_logs))
        .route("/v1/invocations/{id}/artifacts", get(get_artifacts))
        .route(
            "/v1/invocations/{id}/artifacts/{artifact}/content",
            get(get_artifact_content),
        )
        .merge(mcp_routes)
        .layer(middleware::from_fn_with_state(app.clone(), auth));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(v1)
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(trace))
        .with_state(app)
}

async fn trace(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let corr = header(req.headers(), "x-correlation-id").unwrap_or_default();
    let t = std::time::Instant::now();
    let r = next.run(req).await;
    tracing::info!(%method, %path, correlation_id = %corr, status = r.status().as_u16(), duration_ms = t.elapsed().as_millis() as u64, "request");
    r
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let svc = app.service.clone();
    match tokio::task::spawn_blocking(move || svc.health()).await {
        Ok(Ok(())) => {
            let p = app.service.providers();
            match p.degraded() {
                None => Json(json!({"status": "ok"})).into_response(),
                Some(reason) => Json(json!({
                    "status": "ok",
                    "degraded_isolation": true,
                    "degraded_reason": format!("{} unavailable ({reason}); sessions get {}", p.configured_default(), p.default_name()),
                    "default_provider": p.default_name(),
                }))
                .into_response(),
            }
        }
        Ok(Err((part, message))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "failing": part, "error": {"code": "internal", "message": message}})),
        )
            .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "error": {"code": "internal", "message": e.to_string()}}))).into_response(),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    if let Ok(n) = app.service.store().list_sessions() {
        app.metrics.active_sessions.set(n.len() as i64);
    }
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

async fn list_providers(State(app): State<Arc<App>>) -> Response {
    let p = app.service.providers();
    Json(json!({
        "default": p.default_name(),
        "configured_default": p.configured_default(),
        "degraded_isolation": p.degraded().is_some(),
        "providers": p.statuses(),
    }))
    .into_response()
}

async fn create_session(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let mut req: CreateSession = parse(body)?;
    let principal = match (caller.0, req.principal.take()) {
        (Some(h), Some(b)) if !h.owns(&b) => {
            return Err(ApiError::new(
                ErrorCode::PolicyDenied,
                "principal: the body names another tenant or actor than the headers",
            ))
        }
        (Some(h), _) => h,
        (None, Some(b)) => b,
        (None, None) => {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                "principal: required",
            ))
        }
    };
    let svc = app.service.clone();
    let s = blocking(move || svc.create_session(principal, req)).await?;
    app.metrics
        .sandbox_start
        .observe(s.sandbox_start_ms as f64 / 1000.0);
    app.metrics.active_sessions.inc();
    tracing::info!(session = %s.id, provider = %s.provider, degraded_isolation = s.degraded_isolation, tenant = %s.principal.tenant_id, actor = %s.principal.actor_id, sandbox_ms = s.sandbox_start_ms, "session created");
    Ok((StatusCode::CREATED, Json(json!({"session": s}))).into_response())
}

async fn get_session(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let svc = app.service.clone();
    let s = blocking(move || svc.session(caller.0.as_ref(), &id)).await?;
    Ok(Json(json!({"session": s})).into_response())
}

async fn delete_session(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let svc = app.service.clone();
    blocking(move || svc.delete_session(caller.0.as_ref(), &id)).await?;
    app.metrics.active_sessions.dec();
    Ok(Json(json!({"closed": true})).into_response())
}

async fn list_tools(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let svc = app.service.clone();
    let c = caller.0.clone();
    let s = blocking(move || svc.session(c.as_ref(), &id)).await?;
    let who = caller.0.unwrap_or(s.principal);
    Ok(Json(json!({"tools": app.service.tools(&who)})).into_response())
}

async fn invoke(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((id, tool)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let req: InvokeRequest = parse(body)?;
    let inv = run_invocation(&app, caller, id, tool, req, &headers).await?;
    match inv.error.clone() {
        None => Ok(Json(json!({"invocation": inv})).into_response()),
        Some(e) => {
            let body =
                Json(json!({"invocation": inv, "error": {"code": e.code, "message": e.message}}));
            let retry = (e.code == ErrorCode::RateLimited).then_some(1);
            Ok(with_retry((status(e.code), body).into_response(), retry))
        }
    }
}

/// One tool call, as the REST invoke route and the MCP endpoint make it: the session check,
/// the rate limits, the domain's [`Service::invoke`] (policy, approval, paths, limits, the
/// invocation record), the metrics and the log line. Session-level problems (unknown or foreign
/// session, unknown tool, rate limits) are errors; the rest is in the returned record.
pub async fn run_invocation(
    app: &Arc<App>,
    caller: Caller,
    id: String,
    tool: String,
    req: InvokeRequest,
    headers: &HeaderMap,
) -> Result<Invocation, ApiError> {
    let svc = app.service.clone();
    let c = caller.0.clone();
    let sid = id.clone();
    let session = blocking(move || svc.session(c.as_ref(), &sid)).await?;
    let check_owner = caller.0.is_some();
    let principal = caller.0.unwrap_or(session.principal);
    if let Err((after, which)) = app.limiter.check(&principal.key()) {
        app.metrics
            .denied
            .get_or_create(&ToolReason {
                tool: tool.clone(),
                reason: "rate_limited".into(),
            })
            .inc();
        return Err(ApiError {
            code: ErrorCode::RateLimited,
            message: format!("rate limit reached ({which}); retry after {after}s"),
            retry_after: Some(after),
        });
    }
    let corr = req
        .correlation_id
        .filter(|c| !c.is_empty())
        .or_else(|| header(headers, "x-correlation-id"));
    let svc = app.service.clone();
    let t = tool.clone();
    let inv = blocking(move || {
        svc.invoke(
            &principal,
            check_owner,
            &id,
            &t,
            InvokeRequest {
                correlation_id: corr,
                ..req
            },
        )
    })
    .await?;
    app.metrics
        .invocations
        .get_or_create(&ToolStatus {
            tool: tool.clone(),
            status: inv.status.as_str().into(),
        })
        .inc();
    app.metrics
        .duration
        .observe(inv.duration_ms as f64 / 1000.0);
    tracing::info!(invocation = %inv.id, session = %inv.session_id, tool = %tool, correlation_id = %inv.correlation_id, status = inv.status.as_str(), duration_ms = inv.duration_ms, "invocation");
    if let Some(e) = &inv.error {
        if e.code != ErrorCode::ExecutionFailed && e.code != ErrorCode::Timeout {
            app.metrics
                .denied
                .get_or_create(&ToolReason {
                    tool,
                    reason: e.code.as_str().into(),
                })
                .inc();
        }
    }
    Ok(inv)
}

async fn load_invocation(
    app: &Arc<App>,
    caller: Caller,
    id: String,
) -> Result<Invocation, ApiError> {
    let svc = app.service.clone();
    blocking(move || svc.invocation(caller.0.as_ref(), &id)).await
}

async fn get_invocation(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let inv = load_invocation(&app, caller, id).await?;
    Ok(Json(json!({"invocation": inv})).into_response())
}

async fn get_logs(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let inv = load_invocation(&app, caller, id).await?;
    Ok(Json(json!({"logs": inv.logs})).into_response())
}

async fn get_artifacts(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let inv = load_invocation(&app, caller, id).await?;
    Ok(Json(json!({"artifacts": inv.artifacts})).into_response())
}

async fn get_artifact_content(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((id, artifact)): Path<(String, String)>,
) -> ApiResult {
    let inv = load_invocation(&app, caller, id).await?;
    let a = inv
        .artifacts
        .into_iter()
        .find(|a| a.id == artifact)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("artifact {artifact:?} not found"),
            )
        })?;
    let svc = app.service.clone();
    let ct = a.content_type.clone();
    let data = blocking(move || svc.read_artifact(&a)).await?;
    Ok(([("content-type", ct)], data).into_response())
}
