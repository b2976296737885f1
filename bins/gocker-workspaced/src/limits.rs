//! Rate limits of invocations: per minute across the service and per principal, as sliding
//! one-minute windows. A refusal says when the next call may succeed (`Retry-After`).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The service's window and each principal's.
type Windows = (VecDeque<Instant>, HashMap<String, VecDeque<Instant>>);

pub struct RateLimiter {
    global: u32,
    per_principal: u32,
    windows: Mutex<Windows>,
}

const WINDOW: Duration = Duration::from_secs(60);

fn admit(q: &mut VecDeque<Instant>, limit: u32, now: Instant) -> Result<(), u64> {
    while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
        q.pop_front();
    }
    if limit == 0 || (q.len() as u32) < limit {
        return Ok(());
    }
    let oldest = *q.front().expect("non-empty at the limit");
    let wait = WINDOW.saturating_sub(now.duration_since(oldest));
    Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
}

impl RateLimiter {
    pub fn new(global: u32, per_principal: u32) -> Self {
        RateLimiter {
            global,
            per_principal,
            windows: Mutex::new((VecDeque::new(), HashMap::new())),
        }
    }

    /// Admits one call of `principal`, or says after how many seconds to retry (and which
    /// limit refused it).
    pub fn check(&self, principal: &str) -> Result<(), (u64, &'static str)> {
        let now = Instant::now();
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let (global, per) = &mut *w;
        admit(global, self.global, now).map_err(|s| (s, "WORKSPACE_RATE_LIMIT_PER_MINUTE"))?;
        let q = per.entry(principal.to_string()).or_default();
        admit(q, self.per_principal, now).map_err(|s| (s, "WORKSPACE_RATE_LIMIT_PER_PRINCIPAL"))?;
        if self.global > 0 {
            global.push_back(now);
        }
        if self.per_principal > 0 {
            q.push_back(now);
        }
        if per.len() > 10_000 {
            per.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn the_third_call_waits() {
        let r = RateLimiter::new(2, 0);
        assert!(r.check("a").is_ok());
        assert!(r.check("b").is_ok());
        let (after, which) = r.check("a").unwrap_err();
        assert!((1..=60).contains(&after));
        assert_eq!(which, "WORKSPACE_RATE_LIMIT_PER_MINUTE");
        let p = RateLimiter::new(0, 1);
        assert!(p.check("a").is_ok());
        assert!(p.check("b").is_ok());
        assert_eq!(
            p.check("a").unwrap_err().1,
            "WORKSPACE_RATE_LIMIT_PER_PRINCIPAL"
        );
    }
}
