//! Restart policies of detached containers (`gocker run -d --restart`), carried out by the
//! container's monitor ([`crate::detach`]) as docker's daemon does: the policy, docker's backoff
//! (100 ms, doubling per restart, at most one minute, back to 100 ms after a run of 10 s or more),
//! the record `inspect` and `ps` read (`restart.json` in the container's directory), and the
//! marker with which `stop`, `kill` and `rm -f` tell the monitor not to restart any more.
//!
//! Pure decisions ([`RestartPolicy::should_restart`], [`Backoff`]) are unit-tested; the monitor
//! only sleeps and recreates.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Result, RuntimeError};

/// The record the monitor keeps beside `state.json`.
pub const RECORD: &str = "restart.json";
/// Created by `stop`, `kill` and `rm -f` (docker's "has been manually stopped").
pub const STOP_MARKER: &str = "stopped-by-user";
/// Written by `gocker update --restart` ([`update_policy`]).
pub const POLICY: &str = "restart-policy.json";

/// docker's first delay, its factor and its ceiling; a run this long resets the delay.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
pub const MAX_DELAY: Duration = Duration::from_secs(60);
pub const RESET_AFTER: Duration = Duration::from_secs(10);

/// `--restart no|on-failure[:N]|always|unless-stopped`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "name")]
pub enum RestartPolicy {
    #[default]
    No,
    /// Restart after a non-zero exit; `max` restarts at most (0: no limit).
    OnFailure {
        #[serde(default)]
        max: u32,
    },
    Always,
    UnlessStopped,
}

impl std::str::FromStr for RestartPolicy {
    type Err = RuntimeError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            RuntimeError::Config(format!(
                "--restart {s:?}: {why} (expected no, on-failure[:MAX-RETRIES], always or unless-stopped)"
            ))
        };
        let (name, max) = match s.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (s, None),
        };
        let policy = match name {
            "no" | "" => RestartPolicy::No,
            "on-failure" => RestartPolicy::OnFailure {
                max: match max {
                    None => 0,
                    Some(m) => m
                        .parse::<u32>()
                        .map_err(|_| bad("the maximum retry count must be a number >= 0"))?,
                },
            },
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            _ => return Err(bad("unknown policy")),
        };
        if max.is_some() && !matches!(policy, RestartPolicy::OnFailure { .. }) {
            return Err(bad("a maximum retry count is only valid with on-failure"));
        }
        Ok(policy)
    }
}

impl RestartPolicy {
    /// docker's `HostConfig.RestartPolicy.Name`.
    pub fn name(&self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure { .. } => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }

    /// docker's `HostConfig.RestartPolicy.MaximumRetryCount`.
    pub fn max_retries(&self) -> u32 {
        match self {
            RestartPolicy::OnFailure { max } => *max,
            _ => 0,
        }
    }

    pub fn is_no(&self) -> bool {
        *self == RestartPolicy::No
    }

    /// Whether the monitor starts the container again after it exited with `code`, having been
    /// restarted `restarts` times so far. Never after a stop by the user (`stop`, `kill`, `rm -f`).
    pub fn should_restart(&self, code: i32, restarts: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure { max } => code != 0 && (*max == 0 || restarts < *max),
        }
    }
}

/// docker's restart delay.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    delay: Option<Duration>,
}

impl Backoff {
    /// The delay before the next start, after a run that lasted `ran`.
    pub fn next(&mut self, ran: Duration) -> Duration {
        if ran >= RESET_AFTER {
            self.delay = None;
        }
        let d = match self.delay {
            None => FIRST_DELAY,
            Some(d) => (d * 2).min(MAX_DELAY),
        };
        self.delay = Some(d);
        d
    }
}

/// What `inspect` (`RestartCount`, `State.Restarting`) and `ps` (`Restarting (CODE) X ago`) show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartRecord {
    pub policy: RestartPolicy,
    /// Restarts so far (docker's RestartCount).
    pub count: u32,
    /// Waiting out the delay before the next start.
    pub restarting: bool,
    /// The exit code of the last run.
    #[serde(default)]
    pub last_exit: Option<i32>,
    /// When the last run ended (milliseconds since the epoch).
    #[serde(default)]
    pub finished_ms: Option<u64>,
}

fn path_of(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

impl RestartRecord {
    /// The record of the container whose directory is `dir`, if its monitor keeps one.
    pub fn load(dir: &Path) -> Option<RestartRecord> {
        let b = std::fs::read(path_of(dir, RECORD)).ok()?;
        serde_json::from_slice(&b).ok()
    }

    /// Atomically replaces the record (a missing directory — the container was removed — is
    /// not an error: there is nothing left to record for).
    pub fn save(&self, dir: &Path) -> Result<()> {
        if !dir.is_dir() {
            return Ok(());
        }
        let path = path_of(dir, RECORD);
        let tmp = path.with_extension("json.tmp");
        let err = |e: std::io::Error| RuntimeError::State {
            path: path.clone(),
            reason: e.to_string(),
        };
        std::fs::write(&tmp, serde_json::to_vec(self).expect("record serialises")).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)
    }
}

/// The policy `gocker update --restart` gave the container whose directory is `dir`, if any:
/// its monitor reads it at every exit of the payload (and at its start), so that it replaces
/// the policy the container was created with.
pub fn updated_policy(dir: &Path) -> Option<RestartPolicy> {
    serde_json::from_slice(&std::fs::read(path_of(dir, POLICY)).ok()?).ok()
}

/// `gocker update --restart`: records `policy` for the monitor's next decision (atomically: a
/// monitor reading it at that moment sees the old policy or the new one).
pub fn update_policy(dir: &Path, policy: RestartPolicy) -> Result<()> {
    let path = path_of(dir, POLICY);
    let tmp = path.with_extension("json.tmp");
    let err = |e: std::io::Error| RuntimeError::State {
        path: path.clone(),
        reason: e.to_string(),
    };
    std::fs::write(
        &tmp,
        serde_json::to_vec(&policy).expect("policy serialises"),
    )
    .map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)
}

/// `stop`, `kill`, `rm -f`: the monitor of the container in `dir` restarts it no more.
pub fn mark_stopped_by_user(dir: &Path) -> Result<()> {
    let p = path_of(dir, STOP_MARKER);
    match std::fs::write(&p, b"") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::State {
            path: p,
            reason: e.to_string(),
        }),
    }
}

/// Whether the user stopped the container (or it was removed, which ends it as well).
pub fn stopped_by_user(dir: &Path) -> bool {
    !dir.is_dir() || path_of(dir, STOP_MARKER).exists()
}

/// A new start (`gocker start`, the monitor's first run) forgets an earlier stop.
pub fn clear_stop(dir: &Path) {
    let _ = std::fs::remove_file(path_of(dir, STOP_MARKER));
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_updated_policy_is_read_back() {
        let dir = std::env::temp_dir().join(format!("gocker-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(updated_policy(&dir), None);
        update_policy(&dir, RestartPolicy::OnFailure { max: 2 }).unwrap();
        assert_eq!(
            updated_policy(&dir),
            Some(RestartPolicy::OnFailure { max: 2 })
        );
        update_policy(&dir, RestartPolicy::No).unwrap();
        assert_eq!(updated_policy(&dir), Some(RestartPolicy::No));
        std::fs::write(dir.join(POLICY), b"garbage").unwrap();
        assert_eq!(
            updated_policy(&dir),
            None,
            "an unreadable record is no update"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parses_docker_policies() {
        assert_eq!("no".parse::<RestartPolicy>().unwrap(), RestartPolicy::No);
        assert_eq!(
            "on-failure".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::OnFailure { max: 0 }
        );
        assert_eq!(
            "on-failure:3".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::OnFailure { max: 3 }
        );
        assert_eq!(
            "always".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::Always
        );
        assert_eq!(
            "unless-stopped".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::UnlessStopped
        );
        for bad in ["sometimes", "on-failure:x", "on-failure:-1", "always:3"] {
            let e = bad.parse::<RestartPolicy>().unwrap_err().to_string();
            assert!(e.contains("--restart") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn decides_as_docker() {
        let of = RestartPolicy::OnFailure { max: 2 };
        assert!(of.should_restart(1, 0, false));
        assert!(of.should_restart(1, 1, false));
        assert!(!of.should_restart(1, 2, false), "max retries reached");
        assert!(!of.should_restart(0, 0, false), "a clean exit");
        assert!(RestartPolicy::OnFailure { max: 0 }.should_restart(3, 1000, false));
        assert!(RestartPolicy::Always.should_restart(0, 5, false));
        assert!(RestartPolicy::UnlessStopped.should_restart(0, 5, false));
        assert!(!RestartPolicy::No.should_restart(1, 0, false));
        for p in [RestartPolicy::Always, RestartPolicy::UnlessStopped, of] {
            assert!(!p.should_restart(1, 0, true), "{p:?} after a stop");
        }
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(5);
        let got: Vec<u128> = (0..4).map(|_| b.next(quick).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800]);
        for _ in 0..20 {
            b.next(quick);
        }
        assert_eq!(b.next(quick), MAX_DELAY);
        assert_eq!(
            b.next(Duration::from_secs(10)),
            FIRST_DELAY,
            "reset after 10 s up"
        );
        assert_eq!(b.next(quick).as_millis(), 200);
    }

    #[test]
    fn record_round_trips_and_marker() {
        let dir = std::env::temp_dir().join(format!("gocker-restart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = RestartRecord {
            policy: RestartPolicy::OnFailure { max: 4 },
            count: 2,
            restarting: true,
            last_exit: Some(3),
            finished_ms: Some(7),
        };
        r.save(&dir).unwrap();
        assert_eq!(RestartRecord::load(&dir), Some(r));
        assert!(!stopped_by_user(&dir));
        mark_stopped_by_user(&dir).unwrap();
        assert!(stopped_by_user(&dir));
        clear_stop(&dir);
        assert!(!stopped_by_user(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            stopped_by_user(&dir),
            "a removed container is not restarted"
        );
        mark_stopped_by_user(&dir).unwrap();
    }
}
