//! Registry credentials from podman's and docker's auth files.

use crate::error::{IoContext, Result, StorageError};
use base64::Engine as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A username and password (or identity token as password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where credentials come from: auth files, searched in order, first match wins.
#[derive(Clone, Debug, Default)]
pub struct AuthConfig {
    pub files: Vec<PathBuf>,
}

impl AuthConfig {
    /// podman's and docker's default order: `$REGISTRY_AUTH_FILE`,
    /// `$XDG_RUNTIME_DIR/containers/auth.json`, `$XDG_CONFIG_HOME/containers/auth.json`
    /// (default `~/.config`), `~/.docker/config.json`.
    pub fn default_locations() -> Self {
        Self::locations_from(|k| std::env::var_os(k).map(PathBuf::from))
    }

    /// The same, with the environment given as a function (for tests and embedders).
    pub fn locations_from(env: impl Fn(&str) -> Option<PathBuf>) -> Self {
        let mut files = Vec::new();
        if let Some(p) = env("REGISTRY_AUTH_FILE") {
            files.push(p);
        }
        if let Some(d) = env("XDG_RUNTIME_DIR") {
            files.push(d.join("containers/auth.json"));
        }
        let home = env("HOME");
        match (env("XDG_CONFIG_HOME"), &home) {
            (Some(c), _) => files.push(c.join("containers/auth.json")),
            (None, Some(h)) => files.push(h.join(".config/containers/auth.json")),
            _ => {}
        }
        if let Some(h) = home {
            files.push(h.join(".docker/config.json"));
        }
        AuthConfig { files }
    }

    /// Credentials for `registry` (and repository, for per-namespace entries), if any file has them.
    pub fn lookup(&self, registry: &str, repository: &str) -> Result<Option<Credentials>> {
        for f in &self.files {
            if let Some(c) = lookup_file(f, registry, repository)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

#[derive(serde::Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
}

#[derive(serde::Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

fn normalize_key(k: &str) -> String {
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let k = k.trim_end_matches('/');
    let k = k
        .strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k);
    match k.split_once('/') {
        Some((host, rest)) => format!("{}/{rest}", normalize_host(host)),
        None => normalize_host(k).to_string(),
    }
}

fn normalize_host(h: &str) -> &str {
    match h {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
        h => h,
    }
}

fn lookup_file(path: &Path, registry: &str, repository: &str) -> Result<Option<Credentials>> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).ctx("read auth file", path),
    };
    let file: AuthFile = serde_json::from_slice(&data).map_err(|e| StorageError::Json {
        what: "auth file",
        location: path.display().to_string(),
        detail: e.to_string(),
    })?;
    let entries: HashMap<String, &AuthEntry> = file
        .auths
        .iter()
        .map(|(k, v)| (normalize_key(k), v))
        .collect();
    // Most specific first: registry/a/b, registry/a, registry.
    let registry = normalize_host(registry);
    let mut candidates = Vec::new();
    let comps: Vec<&str> = repository.split('/').collect();
    for n in (1..=comps.len()).rev() {
        candidates.push(format!("{registry}/{}", comps[..n].join("/")));
    }
    candidates.push(registry.to_string());
    for c in candidates {
        let Some(e) = entries.get(&c) else { continue };
        let bad = |d: &str| StorageError::Json {
            what: "auth file",
            location: format!("{} entry {c:?}", path.display()),
            detail: d.to_string(),
        };
        if let Some(a) = &e.auth {
            if a.is_empty() {
                continue;
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .map_err(|e| bad(&format!("auth is not base64: {e}")))?;
            let s = String::from_utf8(raw).map_err(|_| bad("auth is not UTF-8"))?;
            let (u, p) = s
                .split_once(':')
                .ok_or_else(|| bad("auth is not USER:PASSWORD"))?;
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
        if let (Some(u), Some(p)) = (&e.username, &e.password) {
            return Ok(Some(Credentials {
                username: u.clone(),
                password: p.clone(),
            }));
        }
        if let Some(t) = &e.identity_token {
            return Ok(Some(Credentials {
                username: "<token>".into(),
                password: t.clone(),
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_locations_follow_podman_then_docker() {
        let env = |k: &str| match k {
            "XDG_RUNTIME_DIR" => Some(PathBuf::from("/run/user/1000")),
            "HOME" => Some(PathBuf::from("/home/u")),
            _ => None,
        };
        let c = AuthConfig::locations_from(env);
        assert_eq!(
            c.files,
            vec![
                PathBuf::from("/run/user/1000/containers/auth.json"),
                PathBuf::from("/home/u/.config/containers/auth.json"),
                PathBuf::from("/home/u/.docker/config.json"),
            ]
        );
    }

    #[test]
    fn lookup_matches_hosts_namespaces_and_docker_hub_aliases() {
        let d = tempfile::tempdir().unwrap();
        let podman = d.path().join("auth.json");
        let docker = d.path().join("config.json");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        std::fs::write(
            &podman,
            format!(
                r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{}"}},"quay.io/org":{{"auth":"{}"}}}}}}"#,
                b64("alice:s3cret:with:colons"),
                b64("org:pw")
            ),
        )
        .unwrap();
        std::fs::write(
            &docker,
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"quay.io":{{"username":"q","password":"p"}}}}}}"#,
                b64("hub:pw")
            ),
        )
        .unwrap();
        let c = AuthConfig {
            files: vec![d.path().join("missing.json"), podman, docker],
        };
        let got = c.lookup("127.0.0.1:5000", "test/img").unwrap().unwrap();
        assert_eq!(
            (got.username.as_str(), got.password.as_str()),
            ("alice", "s3cret:with:colons")
        );
        assert_eq!(
            c.lookup("docker.io", "library/alpine")
                .unwrap()
                .unwrap()
                .username,
            "hub"
        );
        assert_eq!(
            c.lookup("quay.io", "org/app").unwrap().unwrap().username,
            "org"
        );
        assert_eq!(
            c.lookup("quay.io", "other/app").unwrap().unwrap().username,
            "q"
        );
        assert!(c.lookup("127.0.0.1:5001", "x").unwrap().is_none());
        assert!(!format!("{got:?}").contains("s3cret"));
    }

    #[test]
    fn malformed_auth_file_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("auth.json");
        std::fs::write(&p, r#"{"auths":{"r.io":{"auth":"!!!"}}}"#).unwrap();
        let e = AuthConfig {
            files: vec![p.clone()],
        }
        .lookup("r.io", "x")
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(&p.display().to_string()) && e.contains("base64"),
            "{e}"
        );
    }
}
