//! The process's metrics recorder, rendered at `/metrics` in the Prometheus text format.
//!
//! Counters and histograms are recorded where things happen (the engine counts syncs, provider
//! requests, throttles and token refreshes; the worker counts lease takeovers and the backlog;
//! webhooks count deliveries), through the `metrics` facade. One recorder serves the process,
//! however many services it runs (tests run several).

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Seconds: a no-change sync takes tens of milliseconds, a first import of a big calendar
/// minutes.
const DURATION_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Installs the recorder once per process (later calls do nothing).
pub fn install() {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("calsync_sync_duration_seconds".into()), DURATION_BUCKETS)
            .expect("buckets are not empty");
        match builder.install_recorder() {
            Ok(handle) => {
                describe();
                Some(handle)
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
                None
            }
        }
    });
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("calsync_syncs_total", "Syncs finished, by provider and outcome (success, partial, failed).");
    describe_histogram!(
        "calsync_sync_duration_seconds",
        metrics::Unit::Seconds,
        "How long each sync took, by provider."
    );
    describe_gauge!("calsync_sync_backlog", "Connections due and not being synced.");
    describe_counter!("calsync_lease_takeovers_total", "Leases taken over from workers that stopped renewing them.");
    describe_counter!("calsync_provider_requests_total", "HTTP requests to the providers, retries included.");
    describe_counter!(
        "calsync_provider_throttles_total",
        "Provider answers asking calsync to slow down (Retry-After)."
    );
    describe_counter!(
        "calsync_webhook_deliveries_total",
        "Webhook notifications received, by provider and outcome (accepted, lifecycle, handshake, validation, forged, unknown, invalid)."
    );
    describe_counter!("calsync_token_refreshes_total", "Access token refreshes, by provider and outcome.");
}

/// The current values, in the Prometheus text format.
pub fn render() -> String {
    install();
    HANDLE.get().and_then(Option::as_ref).map(PrometheusHandle::render).unwrap_or_default()
}
