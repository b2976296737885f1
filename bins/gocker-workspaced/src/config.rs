//! The service's configuration, from the environment (the model's variable names).

use std::path::PathBuf;

use gocker_workspace::service::ConnProfile;
use gocker_workspace::Limits;

#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// The principal comes in the body of `POST /v1/sessions` (the model's default).
    Payload,
    /// A trusted gateway in front sets the principal headers and the shared token.
    TrustedHeaders,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    /// The embedded durable default: one redb database, `WORKSPACE_ROOT/state.redb`.
    Redb,
    /// The older per-record JSON backend under `WORKSPACE_ROOT/state/`.
    File,
    /// A valkey (or redis) server (`VALKEY_*`).
    Valkey,
}

#[derive(Debug, Clone)]
pub struct ValkeyConfig {
    pub url: String,
    pub prefix: String,
    pub invocation_ttl_secs: u64,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub mode: AuthMode,
    pub shared_token: Option<String>,
    pub tenant_header: String,
    pub actor_header: String,
    pub roles_header: String,
    pub token_header: String,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub port: u16,
    pub bind: String,
    pub workspace_root: PathBuf,
    pub artifact_root: PathBuf,
    pub log_level: String,
    pub auth: AuthConfig,
    pub rate_limit_per_minute: u32,
    /// Rounds of the background measurement of each provider (`WORKSPACE_PROVIDER_PROBE_ROUNDS`,
    /// 3; 0: not measured, `/v1/providers` says so).
    pub probe_rounds: usize,
    pub rate_limit_per_principal: u32,
    pub limits: Limits,
    pub session_store: Backend,
    pub invocation_store: Backend,
    pub conn_profiles: Vec<ConnProfile>,
    pub conn_host_allowlist: Vec<String>,
    pub policy_file: Option<PathBuf>,
    pub gocker_bin: PathBuf,
    pub sandbox_rootfs: PathBuf,
    pub sandbox_network: bool,
    pub reap_interval_secs: u64,
    pub otel_enabled: bool,
    pub valkey: ValkeyConfig,
    /// `WORKSPACE_DEFAULT_PROVIDER`: `gvisor` (default) or `gocker`.
    pub default_provider: String,
    /// `WORKSPACE_RUNSC_PATH` (else `runsc` on PATH).
    pub runsc_path: Option<PathBuf>,
    /// `WORKSPACE_GVISOR_PLATFORM` (default `systrap`, `ptrace` where runsc has no systrap).
    pub gvisor_platform: Option<String>,
}

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn num<T: std::str::FromStr>(env: Env, var: &'static str, default: T) -> Result<T, ConfigError> {
    match env(var) {
        None => Ok(default),
        Some(v) if v.trim().is_empty() => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| ConfigError {
            var,
            message: format!("{v:?} is not a valid number"),
        }),
    }
}

fn flag(env: Env, var: &'static str) -> Result<bool, ConfigError> {
    match env(var).as_deref().map(str::trim) {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(v) => Err(ConfigError {
            var,
            message: format!("{v:?}: expected true or false"),
        }),
    }
}

fn backend(env: Env, var: &'static str) -> Result<Backend, ConfigError> {
    match env(var).as_deref().map(str::trim) {
        None | Some("") | Some("embedded") | Some("redb") => Ok(Backend::Redb),
        Some("file") => Ok(Backend::File),
        Some("memory") => Ok(Backend::Memory),
        Some("valkey") | Some("redis") => Ok(Backend::Valkey),
        Some(v) => Err(ConfigError {
            var,
            message: format!(
                "{v:?}: expected one of redb (the default; also embedded), file, memory, valkey (or redis)"
            ),
        }),
    }
}

fn default_root(env: Env) -> PathBuf {
    if rustix::process::geteuid().is_root() {
        PathBuf::from("/var/lib/gocker/workspaces")
    } else if let Some(d) = env("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        PathBuf::from(d).join("gocker/workspaces")
    } else {
        PathBuf::from(env("HOME").unwrap_or_else(|| "/tmp".into()))
            .join(".local/share/gocker/workspaces")
    }
}

fn default_gocker() -> PathBuf {
    // The gocker binary next to ours (cargo builds both into one directory), else $PATH's.
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("gocker")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("gocker"))
}

impl ServerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    pub fn from_lookup(env: Env) -> Result<Self, ConfigError> {
        let mode = match env("WORKSPACE_AUTH_MODE").as_deref().map(str::trim) {
            None | Some("") | Some("payload") => AuthMode::Payload,
            Some("trusted_headers") => AuthMode::TrustedHeaders,
            Some(v) => {
                return Err(ConfigError {
                    var: "WORKSPACE_AUTH_MODE",
                    message: format!("{v:?}: expected payload or trusted_headers"),
                })
            }
        };
        let shared_token = env("WORKSPACE_AUTH_SHARED_TOKEN").filter(|t| !t.is_empty());
        if mode == AuthMode::TrustedHeaders && shared_token.is_none() {
            return Err(ConfigError {
                var: "WORKSPACE_AUTH_SHARED_TOKEN",
                message: "required with WORKSPACE_AUTH_MODE=trusted_headers".into(),
            });
        }
        let header = |var: &str, d: &str| {
            env(var)
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| d.to_string())
                .to_ascii_lowercase()
        };
        let workspace_root = env("WORKSPACE_ROOT")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| default_root(env));
        if !workspace_root.is_absolute() {
            return Err(ConfigError {
                var: "WORKSPACE_ROOT",
                message: format!("{}: must be an absolute path", workspace_root.display()),
            });
        }
        let artifact_root = env("ARTIFACT_ROOT")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root.join("artifacts"));
        if !artifact_root.is_absolute() {
            return Err(ConfigError {
                var: "ARTIFACT_ROOT",
                message: format!("{}: must be an absolute path", artifact_root.display()),
            });
        }
        let d = Limits::default();
        let limits = Limits {
            max_output_bytes: num(
                env,
                "WORKSPACE_MAX_OUTPUT_BYTES_PER_INVOCATION",
                d.max_output_bytes,
            )?,
            max_artifacts: num(
                env,
                "WORKSPACE_MAX_ARTIFACTS_PER_INVOCATION",
                d.max_artifacts,
            )?,
            max_artifact_bytes: num(
                env,
                "WORKSPACE_MAX_ARTIFACT_BYTES_PER_INVOCATION",
                d.max_artifact_bytes,
            )?,
            max_concurrency_per_session: num(
                env,
                "WORKSPACE_MAX_CONCURRENCY_PER_SESSION",
                d.max_concurrency_per_session,
            )?,
            max_concurrent_sessions: num(
                env,
                "WORKSPACE_MAX_CONCURRENT",
                d.max_concurrent_sessions,
            )?,
        };
        if limits.max_concurrent_sessions == 0 {
            return Err(ConfigError {
                var: "WORKSPACE_MAX_CONCURRENT",
                message: "must be at least 1".into(),
            });
        }
        let default_provider = env("WORKSPACE_DEFAULT_PROVIDER")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "gvisor".into());
        if !gocker_workspace::providers::KNOWN.contains(&default_provider.as_str()) {
            return Err(ConfigError {
                var: "WORKSPACE_DEFAULT_PROVIDER",
                message: format!(
                    "{default_provider:?}: expected one of {}",
                    gocker_workspace::providers::KNOWN.join(", ")
                ),
            });
        }
        let gvisor_platform = env("WORKSPACE_GVISOR_PLATFORM")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        if let Some(p) = gvisor_platform.as_deref() {
            if !["systrap", "ptrace", "kvm"].contains(&p) {
                return Err(ConfigError {
                    var: "WORKSPACE_GVISOR_PLATFORM",
                    message: format!("{p:?}: expected systrap, ptrace or kvm"),
                });
            }
        }
        if limits.max_concurrency_per_session == 0 {
            return Err(ConfigError {
                var: "WORKSPACE_MAX_CONCURRENCY_PER_SESSION",
                message: "must be at least 1".into(),
            });
        }
        let conn_profiles =
            match env("WORKSPACE_CONN_PROFILE_ENDPOINTS_JSON").filter(|v| !v.trim().is_empty()) {
                None => vec![],
                Some(j) => parse_profiles(&j).map_err(|message| ConfigError {
                    var: "WORKSPACE_CONN_PROFILE_ENDPOINTS_JSON",
                    message,
                })?,
            };
        let conn_host_allowlist = match env("WORKSPACE_CONN_PROFILE_HOST_ALLOWLIST_JSON")
            .filter(|v| !v.trim().is_empty())
        {
            None => vec![],
            Some(j) => serde_json::from_str::<Vec<String>>(&j).map_err(|e| ConfigError {
                var: "WORKSPACE_CONN_PROFILE_HOST_ALLOWLIST_JSON",
                message: format!("expected a JSON array of host names: {e}"),
            })?,
        };
        Ok(ServerConfig {
            port: num(env, "PORT", 50053)?,
            bind: env("WORKSPACE_BIND_ADDRESS")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "127.0.0.1".into()),
            workspace_root,
            artifact_root,
            log_level: env("LOG_LEVEL")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "info".into()),
            auth: AuthConfig {
                mode,
                shared_token,
                tenant_header: header("WORKSPACE_AUTH_TENANT_HEADER", "X-Workspace-Tenant-Id"),
                actor_header: header("WORKSPACE_AUTH_ACTOR_HEADER", "X-Workspace-Actor-Id"),
                roles_header: header("WORKSPACE_AUTH_ROLES_HEADER", "X-Workspace-Roles"),
                token_header: header("WORKSPACE_AUTH_TOKEN_HEADER", "X-Workspace-Auth-Token"),
            },
            rate_limit_per_minute: num(env, "WORKSPACE_RATE_LIMIT_PER_MINUTE", 600)?,
            probe_rounds: num(env, "WORKSPACE_PROVIDER_PROBE_ROUNDS", 3)?,
            rate_limit_per_principal: num(env, "WORKSPACE_RATE_LIMIT_PER_PRINCIPAL", 0)?,
            limits,
            session_store: backend(env, "SESSION_STORE_BACKEND")?,
            invocation_store: backend(env, "INVOCATION_STORE_BACKEND")?,
            conn_profiles,
            conn_host_allowlist,
            policy_file: env("WORKSPACE_POLICY_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            gocker_bin: env("WORKSPACE_GOCKER_BIN")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(default_gocker),
            sandbox_rootfs: env("WORKSPACE_SANDBOX_ROOTFS")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/lib/gocker/rootfs/alpine")),
            sandbox_network: flag(env, "WORKSPACE_SANDBOX_NETWORK")?,
            reap_interval_secs: num(env, "WORKSPACE_REAP_INTERVAL_SECONDS", 30)?,
            otel_enabled: flag(env, "WORKSPACE_OTEL_ENABLED")?,
            default_provider,
            runsc_path: env("WORKSPACE_RUNSC_PATH")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            gvisor_platform,
            valkey: valkey(env)?,
        })
    }
}

/// `VALKEY_URL`, else `redis://[:VALKEY_PASSWORD@]VALKEY_HOST:VALKEY_PORT/VALKEY_DB`.
fn valkey(env: Env) -> Result<ValkeyConfig, ConfigError> {
    let url = match env("VALKEY_URL").filter(|v| !v.is_empty()) {
        Some(u) => u,
        None => {
            let host = env("VALKEY_HOST")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "127.0.0.1".into());
            let port: u16 = num(env, "VALKEY_PORT", 6379)?;
            let db: u32 = num(env, "VALKEY_DB", 0)?;
            match env("VALKEY_PASSWORD").filter(|v| !v.is_empty()) {
                Some(p) => format!("redis://:{p}@{host}:{port}/{db}"),
                None => format!("redis://{host}:{port}/{db}"),
            }
        }
    };
    Ok(ValkeyConfig {
        url,
        prefix: env("VALKEY_KEY_PREFIX")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "workspace:".into()),
        invocation_ttl_secs: num(env, "VALKEY_INVOCATION_TTL_SECONDS", 7 * 24 * 3600)?,
    })
}

/// `{"name": {"url": ..., ...}, ...}` or `[{"name": ..., ...}, ...]`.
fn parse_profiles(j: &str) -> Result<Vec<ConnProfile>, String> {
    let v: serde_json::Value = serde_json::from_str(j).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    match v {
        serde_json::Value::Object(m) => {
            for (name, f) in m {
                let fields = match f {
                    serde_json::Value::Object(f) => f,
                    serde_json::Value::String(u) => {
                        let mut f = serde_json::Map::new();
                        f.insert("url".into(), serde_json::Value::String(u));
                        f
                    }
                    _ => {
                        return Err(format!(
                            "profile {name:?}: expected an object or a URL string"
                        ))
                    }
                };
                out.push(ConnProfile { name, fields });
            }
        }
        serde_json::Value::Array(a) => {
            for (i, f) in a.into_iter().enumerate() {
                let serde_json::Value::Object(fields) = f else {
                    return Err(format!("[{i}]: expected an object"));
                };
                let name = fields
                    .get("name")
                    .and_then(|n| n.as_str())
                    .ok_or(format!("[{i}]: no name"))?
                    .to_string();
                out.push(ConnProfile { name, fields });
            }
        }
        _ => return Err("expected a JSON object or array".into()),
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<ServerConfig, ConfigError> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ServerConfig::from_lookup(&|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_and_errors_naming_the_variable() {
        let c = cfg(&[("WORKSPACE_ROOT", "/w")]).unwrap();
        assert_eq!(c.port, 50053);
        assert_eq!(c.auth.mode, AuthMode::Payload);
        assert_eq!(c.artifact_root, PathBuf::from("/w/artifacts"));
        assert_eq!(c.session_store, Backend::Redb);
        assert_eq!(c.invocation_store, Backend::Redb);
        for (vars, var) in [
            (vec![("PORT", "x")], "PORT"),
            (
                vec![("WORKSPACE_AUTH_MODE", "trusted_headers")],
                "WORKSPACE_AUTH_SHARED_TOKEN",
            ),
            (
                vec![("WORKSPACE_AUTH_MODE", "magic")],
                "WORKSPACE_AUTH_MODE",
            ),
            (
                vec![("SESSION_STORE_BACKEND", "etcd")],
                "SESSION_STORE_BACKEND",
            ),
            (vec![("WORKSPACE_ROOT", "rel")], "WORKSPACE_ROOT"),
            (
                vec![("WORKSPACE_CONN_PROFILE_ENDPOINTS_JSON", "[1]")],
                "WORKSPACE_CONN_PROFILE_ENDPOINTS_JSON",
            ),
        ] {
            let e = cfg(&vars).unwrap_err();
            assert_eq!(e.var, var, "{e}");
        }
        let c = cfg(&[(
            "WORKSPACE_CONN_PROFILE_ENDPOINTS_JSON",
            r#"{"db": {"url": "postgres://u:p@db.internal:5432/x", "password": "p"}}"#,
        )])
        .unwrap();
        assert_eq!(c.conn_profiles[0].name, "db");
    }

    #[test]
    fn store_backends_and_a_bad_one_named() {
        for (v, b) in [
            ("redb", Backend::Redb),
            ("embedded", Backend::Redb),
            ("", Backend::Redb),
            (" file ", Backend::File),
            ("memory", Backend::Memory),
            ("valkey", Backend::Valkey),
            ("redis", Backend::Valkey),
        ] {
            let c = cfg(&[
                ("SESSION_STORE_BACKEND", v),
                ("INVOCATION_STORE_BACKEND", v),
            ])
            .unwrap();
            assert_eq!((c.session_store, c.invocation_store), (b, b), "{v:?}");
        }
        let c = cfg(&[("INVOCATION_STORE_BACKEND", "memory")]).unwrap();
        assert_eq!(c.session_store, Backend::Redb);
        assert_eq!(c.invocation_store, Backend::Memory);
        for var in ["SESSION_STORE_BACKEND", "INVOCATION_STORE_BACKEND"] {
            let e = cfg(&[(var, "sqlite")]).unwrap_err();
            assert_eq!(e.var, var);
            let msg = e.to_string();
            for accepted in ["redb", "file", "memory", "valkey"] {
                assert!(msg.contains(accepted), "{msg}");
            }
            assert!(msg.contains("sqlite"), "{msg}");
        }
    }
}
