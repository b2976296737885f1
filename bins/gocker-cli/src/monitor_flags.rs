//! `run --restart` and the health flags (`--health-*`, `--no-healthcheck`, the image's
//! Healthcheck) turned into the monitor's duties ([`gocker_runtime::MonitorOptions`]), with
//! docker's validation and defaults.

use std::time::Duration;

use gocker_runtime::health::{self, Healthcheck};
use gocker_runtime::restart::RestartPolicy;
use gocker_runtime::MonitorOptions;

use crate::cli::RunArgs;
use crate::failure::{usage, Failure};

/// A Go duration flag (`30s`, `1m30s`, `500ms`); zero means docker's default. Like docker, a
/// set duration must be at least 1 ms.
fn duration(flag: &str, v: Option<&str>) -> Result<Option<Duration>, Failure> {
    let Some(v) = v else { return Ok(None) };
    let secs = crate::timeflags::go_duration(v).ok_or_else(|| {
        usage(format!(
            "{flag} {v:?}: not a duration (a number with a unit: 500ms, 30s, 1m30s)"
        ))
    })?;
    if secs != 0.0 && secs < 0.001 {
        return Err(usage(format!("{flag} {v:?}: must be at least 1ms")));
    }
    Ok(Some(Duration::from_secs_f64(secs)).filter(|d| !d.is_zero()))
}

/// A duration of the image's Healthcheck (nanoseconds, docker's JSON).
fn image_ns(h: Option<&serde_json::Value>, key: &str) -> Option<Duration> {
    h?.get(key)?
        .as_u64()
        .filter(|n| *n > 0)
        .map(Duration::from_nanos)
}

pub(crate) fn monitor_options(
    a: &RunArgs,
    image: Option<&serde_json::Value>,
) -> Result<MonitorOptions, Failure> {
    let restart: RestartPolicy = a.restart.parse().map_err(|e| usage(format!("{e}")))?;
    if !restart.is_no() {
        if a.rm {
            return Err(usage(format!(
                "conflicting options: --restart {} and --rm (a container removed when it exits cannot be restarted)",
                a.restart
            )));
        }
        if !a.detach {
            return Err(usage(format!(
                "--restart {} needs -d: the restart is carried out by the detached container's monitor",
                a.restart
            )));
        }
    }
    let flags_set = a.health_cmd.is_some()
        || a.health_interval.is_some()
        || a.health_timeout.is_some()
        || a.health_retries.is_some()
        || a.health_start_period.is_some();
    if a.no_healthcheck && flags_set {
        return Err(usage("--no-healthcheck conflicts with --health-* options"));
    }
    let interval = duration("--health-interval", a.health_interval.as_deref())?;
    let timeout = duration("--health-timeout", a.health_timeout.as_deref())?;
    let start_period = duration("--health-start-period", a.health_start_period.as_deref())?;
    let image_test: Option<Vec<String>> = image
        .and_then(|h| h.get("Test"))
        .and_then(|t| serde_json::from_value(t.clone()).ok());
    let test = match (&a.health_cmd, image_test) {
        (Some(c), _) => Some(vec!["CMD-SHELL".to_owned(), c.clone()]),
        (None, Some(t)) if !t.is_empty() && t[0] != "NONE" => Some(t),
        _ => None,
    };
    let health = match test {
        None if flags_set => {
            return Err(usage(
                "--health-interval, --health-timeout, --health-retries and --health-start-period need a check: --health-cmd, or an image with a Healthcheck",
            ))
        }
        None => None,
        Some(_) if a.no_healthcheck => None,
        Some(test) => {
            if !(a.detach || (a.interactive && a.tty)) {
                return Err(usage(
                    "--health-cmd needs -d (or -it): the health check is run by the container's monitor",
                ));
            }
            let h = Healthcheck {
                test,
                interval: interval
                    .or_else(|| image_ns(image, "Interval"))
                    .unwrap_or(health::DEFAULT_INTERVAL),
                timeout: timeout
                    .or_else(|| image_ns(image, "Timeout"))
                    .unwrap_or(health::DEFAULT_TIMEOUT),
                retries: a
                    .health_retries
                    .filter(|r| *r > 0)
                    .or_else(|| {
                        image
                            .and_then(|h| h.get("Retries")?.as_u64())
                            .filter(|r| *r > 0)
                            .map(|r| r as u32)
                    })
                    .unwrap_or(health::DEFAULT_RETRIES),
                start_period: start_period
                    .or_else(|| image_ns(image, "StartPeriod"))
                    .unwrap_or(Duration::ZERO),
            };
            h.argv().map_err(|e| usage(format!("{e}")))?;
            Some(h)
        }
    };
    Ok(MonitorOptions { restart, health })
}

/// Between two runs of `--restart`: stopped, its monitor waiting out the delay. A monitor that
/// is still deciding (the run has just ended) is given up to 5 s to say whether it restarts
/// or exits.
pub(crate) fn restarting(
    s: &gocker_runtime::StateStore,
    st: &gocker_runtime::ContainerState,
) -> bool {
    let dir = s.container_dir(&st.id);
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while st.status == gocker_runtime::Status::Stopped
        && gocker_runtime::StateStore::monitor_alive(st)
    {
        match gocker_runtime::restart::RestartRecord::load(&dir) {
            None => return false,
            Some(r) if r.restarting => return true,
            Some(_) if std::time::Instant::now() >= end => return false,
            Some(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    false
}

/// docker's "manually stopped": the container's monitor restarts it no more (`stop`, `kill`,
/// `rm -f`). Whether the container has a restart policy.
pub(crate) fn mark_stopped_by_user(
    s: &gocker_runtime::StateStore,
    st: &gocker_runtime::ContainerState,
) -> Result<bool, Failure> {
    let dir = s.container_dir(&st.id);
    gocker_runtime::restart::mark_stopped_by_user(&dir)?;
    Ok(gocker_runtime::restart::RestartRecord::load(&dir).is_some())
}

/// A monitor that was waiting out a restart delay exits at once after a stop: wait for it (at
/// most 5 s), so that a `start` right after this `stop` cannot meet it.
pub(crate) fn wait_monitor_gone(st: &gocker_runtime::ContainerState) {
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while gocker_runtime::StateStore::monitor_alive(st) && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn rfc3339_ms(ms: u64) -> String {
    gocker_runtime::logs::rfc3339(ms / 1000, ((ms % 1000) * 1_000_000) as u32)
}

/// docker's `RestartCount`, `State.Restarting`, `State.Health`, `HostConfig.RestartPolicy`,
/// `HostConfig.Init` and `Config.Healthcheck` in `inspect`'s JSON `v` of the container whose
/// directory is `dir`, from the monitor's records and the recorded configuration; `restarting`
/// as [`crate::manage::restarting`] says.
pub(crate) fn inspect_fields(
    v: &mut serde_json::Value,
    dir: &std::path::Path,
    running: bool,
    restarting: bool,
) {
    use serde_json::json;
    let cfg: Option<gocker_runtime::ContainerConfig> = std::fs::read(dir.join("container.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let record = gocker_runtime::restart::RestartRecord::load(dir);
    // `update --restart` wins over the monitor's record until the monitor takes it over.
    let policy = gocker_runtime::restart::updated_policy(dir)
        .or(record.as_ref().map(|r| r.policy))
        .or_else(|| cfg.as_ref().map(|c| c.monitor.restart))
        .unwrap_or_default();
    v["RestartCount"] = json!(record.as_ref().map(|r| r.count).unwrap_or(0));
    if !v["State"].is_object() {
        v["State"] = json!({});
    }
    v["State"]["Restarting"] = json!(restarting && !running);
    if restarting && !running {
        // docker's State.Status between two runs of a restart policy.
        v["State"]["Status"] = json!("restarting");
    }
    if let Some(h) = gocker_runtime::health::Health::load(dir) {
        v["State"]["Health"] = json!({
            "Status": h.status.as_str(),
            "FailingStreak": h.failing_streak,
            "Log": h.log.iter().map(|p| json!({
                "Start": rfc3339_ms(p.start_ms),
                "End": rfc3339_ms(p.end_ms),
                "ExitCode": p.exit_code,
                "Output": p.output,
            })).collect::<Vec<_>>(),
        });
    }
    if !v["HostConfig"].is_object() {
        v["HostConfig"] = json!({});
    }
    v["HostConfig"]["RestartPolicy"] = json!({
        "Name": policy.name(),
        "MaximumRetryCount": policy.max_retries(),
    });
    v["HostConfig"]["Init"] = json!(cfg.as_ref().map(|c| c.init).unwrap_or(false));
    if let Some(h) = cfg.as_ref().and_then(|c| c.monitor.health.as_ref()) {
        if !v["Config"].is_object() {
            v["Config"] = json!({});
        }
        v["Config"]["Healthcheck"] = json!({
            "Test": h.test,
            "Interval": h.interval.as_nanos() as u64,
            "Timeout": h.timeout.as_nanos() as u64,
            "Retries": h.retries,
            "StartPeriod": h.start_period.as_nanos() as u64,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn refused(r: Result<MonitorOptions, Failure>) -> String {
        match r {
            Err(f) => f.message,
            Ok(o) => panic!("accepted: {o:?}"),
        }
    }

    fn args(words: &[&str]) -> RunArgs {
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            run: RunArgs,
        }
        let mut v = vec!["run"];
        v.extend_from_slice(words);
        P::try_parse_from(v).unwrap().run
    }

    #[test]
    fn restart_needs_detach_and_refuses_rm() {
        let e = |w: &[&str]| refused(monitor_options(&args(w), None));
        assert!(e(&["-d", "--rm", "--restart", "always", "true"]).contains("--rm"));
        assert!(e(&["--restart", "always", "true"]).contains("needs -d"));
        assert!(e(&["-d", "--restart", "sometimes", "true"]).contains("sometimes"));
        let o = monitor_options(&args(&["-d", "--restart", "on-failure:2", "true"]), None)
            .ok()
            .expect("accepted");
        assert_eq!(o.restart, RestartPolicy::OnFailure { max: 2 });
        assert!(monitor_options(&args(&["--rm", "true"]), None).is_ok());
    }

    #[test]
    fn health_flags_and_image_healthcheck_merge_as_docker() {
        let image = serde_json::json!({"Test": ["CMD", "check"], "Interval": 2_000_000_000u64, "Retries": 5});
        let o = monitor_options(&args(&["-d", "true"]), Some(&image))
            .ok()
            .expect("accepted");
        let h = o.health.unwrap();
        assert_eq!(h.test, ["CMD", "check"]);
        assert_eq!(h.interval, Duration::from_secs(2));
        assert_eq!(h.timeout, health::DEFAULT_TIMEOUT);
        assert_eq!(h.retries, 5);
        let o = monitor_options(
            &args(&[
                "-d",
                "--health-cmd",
                "test -f /x",
                "--health-interval",
                "500ms",
                "true",
            ]),
            Some(&image),
        )
        .ok()
        .expect("accepted");
        let h = o.health.unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "test -f /x"]);
        assert_eq!(h.interval, Duration::from_millis(500));
        assert_eq!(h.retries, 5, "the image's retries stay");
        let none = serde_json::json!({"Test": ["NONE"]});
        assert!(monitor_options(&args(&["-d", "true"]), Some(&none))
            .ok()
            .expect("accepted")
            .health
            .is_none());
        assert!(
            monitor_options(&args(&["-d", "--no-healthcheck", "true"]), Some(&image))
                .ok()
                .expect("accepted")
                .health
                .is_none()
        );
        let e = |w: &[&str]| refused(monitor_options(&args(w), None));
        assert!(e(&["-d", "--no-healthcheck", "--health-cmd", "x", "true"]).contains("conflicts"));
        assert!(e(&[
            "-d",
            "--health-cmd",
            "x",
            "--health-interval",
            "soon",
            "true"
        ])
        .contains("--health-interval"));
        assert!(e(&["--health-cmd", "x", "true"]).contains("needs -d"));
        assert!(e(&["-d", "--health-retries", "2", "true"]).contains("need a check"));
    }
}
