//! The known sandbox providers of a service: which are available (probed at startup, with the
//! reason when not), their measured capabilities, the default one and the fallback taken
//! when the configured default is unavailable.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::error::{Result, WorkspaceError};
use crate::provider::{Capabilities, SandboxProvider};

/// The providers the service knows, in the order of preference for a fallback.
pub const KNOWN: [&str; 2] = ["gvisor", "gocker"];

/// A provider that could be set up, or why not.
pub type Candidate = std::result::Result<Arc<dyn SandboxProvider>, String>;

/// One provider as `GET /v1/providers` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderStatus {
    pub name: String,
    pub available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Measured in the background after the start (`null` while `probe` is `running`).
    pub capabilities: Option<Capabilities>,
    /// `running`, `done`, or `failed: <why>` (only for available providers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
}

/// The available providers and the default.
pub struct Providers {
    available: BTreeMap<String, Arc<dyn SandboxProvider>>,
    statuses: Vec<ProviderStatus>,
    /// The provider sessions get when they name none.
    default: String,
    /// The configured default (`WORKSPACE_DEFAULT_PROVIDER`).
    configured: String,
    /// Why the configured default is not used, when it is not.
    degraded: Option<String>,
    /// The measured capabilities of available providers, as the probes finish.
    measured: Mutex<BTreeMap<String, std::result::Result<Capabilities, String>>>,
}

impl Providers {
    /// One provider, the default (its capabilities not probed).
    pub fn single(p: Arc<dyn SandboxProvider>) -> Self {
        let name = p.name().to_string();
        Providers {
            statuses: vec![ProviderStatus {
                name: name.clone(),
                available: true,
                reason: None,
                capabilities: None,
                probe: None,
            }],
            available: BTreeMap::from([(name.clone(), p)]),
            default: name.clone(),
            configured: name,
            degraded: None,
            measured: Mutex::new(BTreeMap::new()),
        }
    }

    /// Checks every candidate (`Err` is the reason it cannot even be set up) with `check`;
    /// one that fails it is unavailable with that reason. When `configured` is not
    /// available the best available one of [`KNOWN`] is the default and the service is
    /// degraded; with none available at all this fails.
    pub fn probe_all(
        configured: &str,
        candidates: Vec<(&'static str, Candidate)>,
        check: impl Fn(&dyn SandboxProvider) -> Result<()>,
    ) -> Result<Self> {
        if !KNOWN.contains(&configured) {
            return Err(WorkspaceError::InvalidArgument(format!(
                "WORKSPACE_DEFAULT_PROVIDER={configured:?}: expected one of {}",
                KNOWN.join(", ")
            )));
        }
        let mut available = BTreeMap::new();
        let mut statuses = Vec::new();
        for (name, c) in candidates {
            let checked = c.and_then(|p| match check(&*p) {
                Ok(()) => Ok(p),
                Err(e) => Err(format!("startup check failed: {e}")),
            });
            match checked {
                Ok(p) => {
                    available.insert(name.to_string(), p);
                    statuses.push(ProviderStatus {
                        name: name.into(),
                        available: true,
                        reason: None,
                        capabilities: None,
                        probe: Some("running".into()),
                    });
                }
                Err(reason) => statuses.push(ProviderStatus {
                    name: name.into(),
                    available: false,
                    reason: Some(reason),
                    capabilities: None,
                    probe: None,
                }),
            }
        }
        for k in KNOWN {
            if !statuses.iter().any(|s| s.name == k) {
                statuses.push(ProviderStatus {
                    name: k.into(),
                    available: false,
                    reason: Some("not configured".into()),
                    capabilities: None,
                    probe: None,
                });
            }
        }
        let (default, degraded) = if available.contains_key(configured) {
            (configured.to_string(), None)
        } else {
            let reason = statuses
                .iter()
                .find(|s| s.name == configured)
                .and_then(|s| s.reason.clone())
                .unwrap_or_default();
            let Some(fallback) = KNOWN.iter().find(|k| available.contains_key(**k)) else {
                return Err(WorkspaceError::ProviderUnavailable(format!(
                    "no sandbox provider is available: {}",
                    statuses
                        .iter()
                        .map(|s| format!("{}: {}", s.name, s.reason.as_deref().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join("; ")
                )));
            };
            (fallback.to_string(), Some(reason))
        };
        Ok(Providers {
            available,
            statuses,
            default,
            configured: configured.to_string(),
            degraded,
            measured: Mutex::new(BTreeMap::new()),
        })
    }

    /// The provider `name` (`None`: the default). One named but unavailable is an error
    /// (`provider_unavailable` with the reason), never replaced by another.
    pub fn get(&self, name: Option<&str>) -> Result<&Arc<dyn SandboxProvider>> {
        let name = name.unwrap_or(&self.default);
        if let Some(p) = self.available.get(name) {
            return Ok(p);
        }
        match self.statuses.iter().find(|s| s.name == name) {
            Some(s) => Err(WorkspaceError::ProviderUnavailable(format!(
                "provider {name:?} is unavailable: {}",
                s.reason.as_deref().unwrap_or("unknown reason")
            ))),
            None => Err(WorkspaceError::InvalidArgument(format!(
                "provider {name:?}: unknown (known: {})",
                KNOWN.join(", ")
            ))),
        }
    }

    pub fn default_name(&self) -> &str {
        &self.default
    }

    pub fn configured_default(&self) -> &str {
        &self.configured
    }

    /// Why the configured default is not used (the service runs degraded), if so.
    pub fn degraded(&self) -> Option<&str> {
        self.degraded.as_deref()
    }

    /// Every known provider with what has been measured so far.
    pub fn statuses(&self) -> Vec<ProviderStatus> {
        let measured = self.measured.lock().map(|m| m.clone()).unwrap_or_default();
        self.statuses
            .iter()
            .cloned()
            .map(|mut s| {
                match measured.get(&s.name) {
                    Some(Ok(c)) => {
                        s.capabilities = Some(c.clone());
                        s.probe = Some("done".into());
                    }
                    Some(Err(e)) => s.probe = Some(format!("failed: {e}")),
                    None => {}
                }
                s
            })
            .collect()
    }

    /// Records the measured capabilities of `name` (or why measuring failed).
    pub fn set_measured(&self, name: &str, r: std::result::Result<Capabilities, String>) {
        if let Ok(mut m) = self.measured.lock() {
            m.insert(name.to_string(), r);
        }
    }

    pub fn available(&self) -> impl Iterator<Item = &Arc<dyn SandboxProvider>> {
        self.available.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::provider::{ExecOutcome, ExecRequest, SandboxHandle, SandboxSpec};

    struct Fake(&'static str);

    impl SandboxProvider for Fake {
        fn name(&self) -> &'static str {
            self.0
        }
        fn create(&self, s: &SandboxSpec) -> Result<SandboxHandle> {
            Ok(SandboxHandle {
                id: s.name.clone(),
                start_time: Default::default(),
            })
        }
        fn exec(&self, _: &str, _: &ExecRequest) -> Result<ExecOutcome> {
            Ok(ExecOutcome::default())
        }
        fn kill_processes(&self, _: &str) -> Result<()> {
            Ok(())
        }
        fn exists(&self, _: &str) -> Result<bool> {
            Ok(true)
        }
        fn destroy(&self, _: &str) -> Result<()> {
            Ok(())
        }
        fn list(&self, _: &str) -> Result<Vec<String>> {
            Ok(vec![])
        }
        fn health(&self) -> Result<()> {
            Ok(())
        }
        fn isolation(&self) -> &'static str {
            "namespaces"
        }
    }

    fn gocker() -> Candidate {
        Ok(Arc::new(Fake("gocker")))
    }

    #[test]
    fn an_unavailable_default_falls_back_and_says_why() {
        let p = Providers::probe_all(
            "gvisor",
            vec![
                ("gvisor", Err("runsc not found".into())),
                ("gocker", gocker()),
            ],
            |_| Ok(()),
        )
        .unwrap();
        assert_eq!(p.default_name(), "gocker");
        assert_eq!(p.degraded(), Some("runsc not found"));
        assert_eq!(p.get(None).unwrap().name(), "gocker");
        let e = p.get(Some("gvisor")).err().unwrap();
        assert_eq!(e.code(), ErrorCode::ProviderUnavailable);
        assert!(e.to_string().contains("runsc not found"), "{e}");
        let e = p.get(Some("../gocker")).err().unwrap();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        let s = p.statuses();
        assert_eq!(s.len(), 2);
        assert!(!s[0].available && s[1].available);
        assert_eq!(s[1].probe.as_deref(), Some("running"));
    }

    #[test]
    fn a_failing_check_makes_a_provider_unavailable_and_none_at_all_is_an_error() {
        let p = Providers::probe_all("gocker", vec![("gocker", gocker())], |_| Ok(())).unwrap();
        assert_eq!(p.degraded(), None);
        assert!(p
            .statuses()
            .iter()
            .any(|s| s.name == "gvisor" && !s.available));
        let e = Providers::probe_all("gocker", vec![("gocker", gocker())], |_| {
            Err(WorkspaceError::Internal("gocker ps failed".into()))
        })
        .err()
        .unwrap();
        assert_eq!(e.code(), ErrorCode::ProviderUnavailable);
        assert!(e.to_string().contains("gocker ps failed"), "{e}");
        assert!(Providers::probe_all("docker", vec![], |_| Ok(())).is_err());
    }
}
