//! gocker-workspaced: the workspace execution service. Agents act in sandboxed workspaces only
//! through policy-governed tools over HTTP/JSON; each session is a Gocker sandbox.
//!
//! Configuration comes from the environment (docs/workspace-service.md lists every variable).

mod api;
mod config;
mod limits;
mod mcp;
mod metrics;
mod stores;

use std::sync::Arc;

use clap::{Parser, Subcommand};
use gocker_workspace::gocker_provider::GockerProvider;
use gocker_workspace::gvisor_provider::{find_runsc, GvisorProvider};
use gocker_workspace::policy::Policy;
use gocker_workspace::provider::{probe, SandboxProvider};
use gocker_workspace::providers::Providers;
use gocker_workspace::{Config, Service};

use crate::config::{Backend, ServerConfig};

#[derive(Parser)]
#[command(
    name = "gocker-workspaced",
    version,
    about = "The workspace execution service: policy-governed tools for AI agents, each session a Gocker sandbox",
    long_about = "The workspace execution service: policy-governed tools for AI agents, each session a Gocker sandbox.\n\n\
Without a command it serves the HTTP API (GET /healthz, GET /metrics, /v1/sessions ...) on \
WORKSPACE_BIND_ADDRESS:PORT (default 127.0.0.1:50053). Everything is configured through environment \
variables: PORT, WORKSPACE_ROOT, ARTIFACT_ROOT, LOG_LEVEL, WORKSPACE_AUTH_MODE (payload|trusted_headers), \
WORKSPACE_AUTH_SHARED_TOKEN, WORKSPACE_RATE_LIMIT_PER_MINUTE, WORKSPACE_RATE_LIMIT_PER_PRINCIPAL, \
WORKSPACE_MAX_CONCURRENCY_PER_SESSION, WORKSPACE_MAX_OUTPUT_BYTES_PER_INVOCATION, \
WORKSPACE_MAX_ARTIFACTS_PER_INVOCATION, WORKSPACE_MAX_ARTIFACT_BYTES_PER_INVOCATION, \
SESSION_STORE_BACKEND / INVOCATION_STORE_BACKEND (redb, the default, also `embedded`|file|memory|valkey, with VALKEY_URL or VALKEY_HOST/PORT/PASSWORD/DB), WORKSPACE_POLICY_FILE, \
WORKSPACE_SANDBOX_ROOTFS, WORKSPACE_GOCKER_BIN, WORKSPACE_DEFAULT_PROVIDER (gvisor|gocker), \
WORKSPACE_RUNSC_PATH, WORKSPACE_GVISOR_PLATFORM, WORKSPACE_MAX_CONCURRENT; see docs/workspace-service.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the API (the default).
    Serve,
    /// Print the tool catalog as Markdown (docs/CAPABILITY_CATALOG.md).
    Catalog,
}

fn main() {
    let cli = Cli::parse();
    if let Some(Cmd::Catalog) = cli.command {
        print!("{}", gocker_workspace::catalog::render_markdown());
        return;
    }
    let cfg = match ServerConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gocker-workspaced: {e}");
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cfg.log_level)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(cfg) {
        tracing::error!(error = %e, "gocker-workspaced failed");
        eprintln!("gocker-workspaced: {e}");
        std::process::exit(1);
    }
}

fn run(cfg: ServerConfig) -> Result<(), String> {
    if cfg.otel_enabled {
        tracing::warn!("WORKSPACE_OTEL_ENABLED=true: OpenTelemetry export is not built yet; traces go to the JSON log only");
    }
    let policy = match &cfg.policy_file {
        Some(p) => Policy::from_file(p).map_err(|e| format!("WORKSPACE_POLICY_FILE: {e}"))?,
        None => Policy::default(),
    };
    std::fs::create_dir_all(&cfg.workspace_root)
        .map_err(|e| format!("WORKSPACE_ROOT {}: {e}", cfg.workspace_root.display()))?;
    let store = stores::open(
        cfg.session_store,
        cfg.invocation_store,
        &cfg.workspace_root.join("state"),
        &cfg.valkey,
    )
    .map_err(|e| format!("SESSION_STORE_BACKEND / INVOCATION_STORE_BACKEND: {e}"))?;
    if !cfg.sandbox_rootfs.join("bin/sh").exists() {
        return Err(format!(
            "WORKSPACE_SANDBOX_ROOTFS {}: no bin/sh there; provision a root with `gocker rootfs build` or point the variable at one",
            cfg.sandbox_rootfs.display()
        ));
    }
    let gocker: Arc<dyn SandboxProvider> = Arc::new(GockerProvider {
        gocker: cfg.gocker_bin.clone(),
        rootfs: cfg.sandbox_rootfs.clone(),
    });
    let gvisor = find_runsc(cfg.runsc_path.as_deref()).and_then(|runsc| {
        GvisorProvider::detect(
            runsc,
            cfg.sandbox_rootfs.clone(),
            &cfg.workspace_root.join("gvisor"),
            cfg.gvisor_platform.as_deref(),
            !rustix::process::geteuid().is_root(),
        )
        .map(|p| Arc::new(p) as Arc<dyn SandboxProvider>)
    });
    let prefix = stores::sandbox_prefix(&cfg.workspace_root);
    let probe_dir = cfg.workspace_root.join("probe");
    // Probe sandboxes are not session sandboxes: another prefix (the recovery leaves them be;
    // each probe removes its leftovers of the same names first).
    let probe_prefix = format!("{}probe-", prefix.trim_end_matches('-'));
    // Availability: gVisor must really boot a sandbox that writes the workspace (one round);
    // the native provider must answer. The 3-round measurement follows in the background.
    let providers = Providers::probe_all(
        &cfg.default_provider,
        vec![("gvisor", gvisor), ("gocker", Ok(gocker))],
        |p| match p.name() {
            "gocker" => p.health(),
            _ => probe(
                p,
                &probe_dir.join(format!("check-{}", p.name())),
                "/workspace",
                &format!("{probe_prefix}check-{}-", p.name()),
                1,
            )
            .map(|_| ()),
        },
    )
    .map_err(|e| format!("sandbox providers: {e}"))?;
    for s in providers.statuses() {
        match &s.reason {
            None => tracing::info!(provider = %s.name, "provider available"),
            Some(r) => tracing::info!(provider = %s.name, reason = %r, "provider unavailable"),
        }
    }
    if let Some(reason) = providers.degraded() {
        let fallback = providers.default_name();
        if providers.configured_default() == "gvisor" && reason.contains("not found") {
            tracing::warn!(
                reason,
                "gVisor runtime (runsc) not found, falling back to {fallback} — reduced isolation"
            );
        } else {
            tracing::warn!(
                reason,
                "{} provider unavailable, falling back to {fallback} — reduced isolation",
                providers.configured_default()
            );
        }
    }
    let mut scfg = Config::new(cfg.workspace_root.clone(), cfg.artifact_root.clone());
    scfg.limits = cfg.limits.clone();
    scfg.network = cfg.sandbox_network;
    scfg.conn_profiles = cfg.conn_profiles.clone();
    scfg.conn_host_allowlist = cfg.conn_host_allowlist.clone();
    scfg.sandbox_prefix = prefix;
    let service = Arc::new(
        Service::with_providers(scfg, store, providers, policy).map_err(|e| e.to_string())?,
    );
    let r = service
        .recover()
        .map_err(|e| format!("recovering the stored sessions: {e}"))?;
    tracing::info!(?r, "recovered");
    // The capabilities: measured in the background (the native sandbox's removal alone
    // takes seconds: the start is not held up by it).
    for p in service.providers().available() {
        let (svc, p) = (service.clone(), p.clone());
        let rounds = cfg.probe_rounds;
        if rounds == 0 {
            svc.providers().set_measured(
                p.name(),
                Err("not measured (WORKSPACE_PROVIDER_PROBE_ROUNDS=0)".into()),
            );
            continue;
        }
        let dir = probe_dir.join(p.name());
        let names = format!("{probe_prefix}{}-", p.name());
        std::thread::spawn(move || {
            let r = probe(&*p, &dir, "/workspace", &names, rounds).map_err(|e| e.to_string());
            match &r {
                Ok(c) => {
                    tracing::info!(provider = p.name(), capabilities = ?c, "provider measured")
                }
                Err(e) => {
                    tracing::warn!(provider = p.name(), error = %e, "measuring the provider failed")
                }
            }
            svc.providers().set_measured(p.name(), r);
        });
    }
    let app = Arc::new(api::App {
        service: service.clone(),
        auth: cfg.auth.clone(),
        limiter: limits::RateLimiter::new(cfg.rate_limit_per_minute, cfg.rate_limit_per_principal),
        metrics: metrics::Metrics::new(),
        mcp_hosts: mcp_hosts(&cfg.bind),
        shutdown: tokio_util::sync::CancellationToken::new(),
    });
    let stop = app.shutdown.clone();
    app.metrics.active_sessions.set(r.sessions as i64);
    app.metrics
        .degraded_isolation
        .set(i64::from(service.providers().degraded().is_some()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))?;
    let memory = cfg.session_store == Backend::Memory;
    let svc_for_serve = service.clone();
    rt.block_on(async move {
        let service = svc_for_serve;
        let addr = format!("{}:{}", cfg.bind, cfg.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("PORT: listening on {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(address = %local, store = service.store().name(), "listening");
        // One line on stdout for whoever started us (tests, scripts): the address.
        println!("gocker-workspaced listening on http://{local}");
        let reaper = {
            let svc = service.clone();
            let every = std::time::Duration::from_secs(cfg.reap_interval_secs.max(1));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let s = svc.clone();
                    match tokio::task::spawn_blocking(move || s.reap_expired()).await {
                        Ok(Ok(0)) => {}
                        Ok(Ok(n)) => tracing::info!(sessions = n, "reaped expired sessions"),
                        Ok(Err(e)) => tracing::warn!(error = %e, "reaping expired sessions"),
                        Err(e) => tracing::warn!(error = %e, "reaper"),
                    }
                }
            })
        };
        axum::serve(listener, api::router(app.clone(), mcp::routes(&app)))
            .with_graceful_shutdown(async move {
                shutdown().await;
                stop.cancel();
            })
            .await
            .map_err(|e| format!("serving: {e}"))?;
        reaper.abort();
        Ok::<(), String>(())
    })?;
    if memory {
        // A memory store forgets the sessions: their sandboxes go with it.
        for s in service.store().list_sessions().unwrap_or_default() {
            if let Err(e) = service.delete_session(None, &s.id) {
                tracing::warn!(session = %s.id, error = %e, "removing a session at shutdown");
            }
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// The `Host` values the MCP endpoint accepts: loopback names, and the bind address when it
/// is a specific one (with `0.0.0.0` or `::` every host is accepted: the operator exposed it).
fn mcp_hosts(bind: &str) -> Vec<String> {
    if bind == "0.0.0.0" || bind == "::" {
        return vec![];
    }
    let mut h: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).into();
    if !h.iter().any(|x| x == bind) {
        h.push(bind.to_string());
    }
    h
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down");
}
