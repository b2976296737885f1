//! Health checks (`gocker run --health-*`, an image's `Healthcheck`), as docker's: the check, its
//! timing, and the state `inspect` shows as `State.Health` (`health.json` in the container's
//! directory, written by the monitor's checker, [`crate::healthcheck`]). The transitions are
//! pure ([`Health::record`]) and unit-tested.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Result, RuntimeError};

pub const RECORD: &str = "health.json";
/// docker keeps the last five results and at most 4096 bytes of output of each.
pub const MAX_LOG: usize = 5;
pub const MAX_OUTPUT: usize = 4096;

/// docker's defaults for a field left at zero.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_RETRIES: u32 = 3;

/// The check, as docker's `HealthConfig`: `test` is `["CMD", prog, args...]` or
/// `["CMD-SHELL", command]` (`["NONE"]` is turned off before it gets here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

impl Healthcheck {
    /// The command to run in the container.
    pub fn argv(&self) -> Result<Vec<String>> {
        match self.test.split_first() {
            Some((k, rest)) if k == "CMD" && !rest.is_empty() => Ok(rest.to_vec()),
            Some((k, [cmd])) if k == "CMD-SHELL" => {
                Ok(vec!["/bin/sh".into(), "-c".into(), cmd.clone()])
            }
            _ => Err(RuntimeError::Config(format!(
                "healthcheck test {:?}: expected [\"CMD\", PROGRAM, ARG...] or [\"CMD-SHELL\", COMMAND]",
                self.test
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// One result, as docker's `State.Health.Log[]` (times in RFC 3339 when shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// Milliseconds since the epoch.
    pub start_ms: u64,
    pub end_ms: u64,
    /// The check's exit code; -1 when it timed out or could not run.
    pub exit_code: i32,
    pub output: String,
}

/// docker's `State.Health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: HealthStatus,
    pub failing_streak: u32,
    pub log: Vec<Probe>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            status: HealthStatus::Starting,
            failing_streak: 0,
            log: Vec::new(),
        }
    }
}

impl Health {
    /// Records one result; `in_start_period`: the container started less than `start_period`
    /// ago, when failures do not count (a success still makes it healthy), as docker's.
    pub fn record(&mut self, probe: Probe, retries: u32, in_start_period: bool) {
        if probe.exit_code == 0 {
            self.failing_streak = 0;
            self.status = HealthStatus::Healthy;
        } else if !(in_start_period && self.status != HealthStatus::Healthy) {
            self.failing_streak += 1;
            if self.failing_streak >= retries.max(1) {
                self.status = HealthStatus::Unhealthy;
            }
        }
        self.log.push(probe);
        let extra = self.log.len().saturating_sub(MAX_LOG);
        self.log.drain(..extra);
    }

    pub fn load(dir: &Path) -> Option<Health> {
        serde_json::from_slice(&std::fs::read(dir.join(RECORD)).ok()?).ok()
    }

    /// Atomically replaces the record (nothing when the container's directory is gone).
    pub fn save(&self, dir: &Path) -> Result<()> {
        if !dir.is_dir() {
            return Ok(());
        }
        let path = dir.join(RECORD);
        let tmp = path.with_extension("json.tmp");
        let err = |e: std::io::Error| RuntimeError::State {
            path: path.clone(),
            reason: e.to_string(),
        };
        std::fs::write(&tmp, serde_json::to_vec(self).expect("health serialises")).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)
    }
}

/// Cuts `out` to docker's 4096 bytes (at a character boundary).
pub fn truncate_output(mut out: String) -> String {
    if out.len() > MAX_OUTPUT {
        let mut end = MAX_OUTPUT;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(code: i32) -> Probe {
        Probe {
            start_ms: 1,
            end_ms: 2,
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn transitions_as_docker() {
        let mut h = Health::default();
        h.record(probe(1), 2, true);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Starting, 0));
        h.record(probe(0), 2, true);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Healthy, 0));
        h.record(probe(1), 2, false);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Healthy, 1));
        h.record(probe(1), 2, false);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Unhealthy, 2));
        h.record(probe(0), 2, false);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Healthy, 0));
        // Healthy once: failures in the start period count from then on.
        h.record(probe(1), 1, true);
        assert_eq!(h.status, HealthStatus::Unhealthy);
        for _ in 0..10 {
            h.record(probe(1), 3, false);
        }
        assert_eq!(h.log.len(), MAX_LOG);
    }

    #[test]
    fn argv_of_both_forms() {
        let mut c = Healthcheck {
            test: vec!["CMD-SHELL".into(), "test -f /x".into()],
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            retries: 3,
            start_period: Duration::ZERO,
        };
        assert_eq!(c.argv().unwrap(), ["/bin/sh", "-c", "test -f /x"]);
        c.test = vec!["CMD".into(), "true".into()];
        assert_eq!(c.argv().unwrap(), ["true"]);
        c.test = vec!["CMD".into()];
        assert!(c.argv().is_err());
    }

    #[test]
    fn output_is_cut_at_a_char_boundary() {
        let s = "é".repeat(3000);
        let t = truncate_output(s);
        assert!(t.len() <= MAX_OUTPUT && t.chars().all(|c| c == 'é'));
    }
}
