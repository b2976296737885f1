//! `/metrics`: the service's counters in the Prometheus text format (prometheus-client).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolStatus {
    pub tool: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolReason {
    pub tool: String,
    pub reason: String,
}

pub struct Metrics {
    registry: Registry,
    pub invocations: Family<ToolStatus, Counter>,
    pub denied: Family<ToolReason, Counter>,
    pub duration: Histogram,
    pub active_sessions: Gauge,
    pub sandbox_start: Histogram,
    pub degraded_isolation: Gauge,
}

/// 10 ms … 60 s.
const BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("workspace");
        let invocations = Family::<ToolStatus, Counter>::default();
        let denied = Family::<ToolReason, Counter>::default();
        let duration = Histogram::new(BUCKETS);
        let active_sessions = Gauge::default();
        let sandbox_start = Histogram::new(BUCKETS);
        let degraded_isolation = Gauge::default();
        registry.register(
            "degraded_isolation",
            "1 when the configured default provider is unavailable and sessions get a fallback",
            degraded_isolation.clone(),
        );
        registry.register(
            "invocations",
            "Tool invocations by tool and final status",
            invocations.clone(),
        );
        registry.register(
            "denied",
            "Invocations refused, by tool and error code",
            denied.clone(),
        );
        registry.register(
            "invocation_duration_seconds",
            "Wall time of tool invocations",
            duration.clone(),
        );
        registry.register(
            "active_sessions",
            "Sessions that exist now",
            active_sessions.clone(),
        );
        registry.register(
            "sandbox_start_seconds",
            "Time to start a session's sandbox",
            sandbox_start.clone(),
        );
        Metrics {
            registry,
            invocations,
            denied,
            duration,
            active_sessions,
            sandbox_start,
            degraded_isolation,
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}
