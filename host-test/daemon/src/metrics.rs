//! serve's metrics, for `GET /metrics` in Prometheus' (OpenMetrics) text
//! format. Counters are bumped where things happen; the gauges that
//! describe the spool are read when scraped.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The content type `GET /metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A label set of one label.
type Label = Vec<(&'static str, String)>;

/// Longest label value kept: codes come from Slack's answers.
const MAX_LABEL: usize = 64;

/// The store's figures as a scrape reads them (fsyncs and write errors
/// are the journal's; the rest any store's).
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreGauges {
    pub pending: usize,
    pub oldest_age_seconds: f64,
    pub fsyncs: u64,
    /// This node's sends found to be duplicates (a shared store's late
    /// endings).
    pub duplicates: u64,
    pub write_errors: u64,
    pub degraded: bool,
}

pub struct Metrics {
    registry: Registry,
    accepted: Counter,
    refused: Family<Label, Counter>,
    delivered: Counter,
    failed: Family<Label, Counter>,
    retries: Counter,
    repeated: Counter,
    silenced: Counter,
    interactions: Family<Label, Counter>,
    interactions_refused: Family<Label, Counter>,
    rate_limited: Counter,
    fsyncs: Counter,
    duplicates: Counter,
    write_errors: Counter,
    degraded: Gauge,
    pending: Gauge,
    in_flight: Gauge,
    oldest_pending: Gauge<f64, AtomicU64>,
    node: Family<Label, Gauge>,
    socket_connected: Gauge,
    socket_reconnects: Counter,
    storm_requests: Family<Vec<(&'static str, String)>, Counter>,
    storm_alerts: Counter,
    plugin_alerts: Family<Vec<(&'static str, String)>, Counter>,
    storms_open: Gauge,
    slots_owned: Gauge,
    /// One scrape at a time: the fsync count is caught up by its delta.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("slack_handler");
        let metrics = Metrics {
            accepted: Counter::default(),
            refused: Family::default(),
            delivered: Counter::default(),
            failed: Family::default(),
            retries: Counter::default(),
            repeated: Counter::default(),
            silenced: Counter::default(),
            interactions: Family::default(),
            interactions_refused: Family::default(),
            rate_limited: Counter::default(),
            fsyncs: Counter::default(),
            duplicates: Counter::default(),
            write_errors: Counter::default(),
            degraded: Gauge::default(),
            pending: Gauge::default(),
            in_flight: Gauge::default(),
            oldest_pending: Gauge::default(),
            node: Family::default(),
            socket_connected: Gauge::default(),
            socket_reconnects: Counter::default(),
            storm_requests: Family::default(),
            storm_alerts: Counter::default(),
            plugin_alerts: Family::default(),
            storms_open: Gauge::default(),
            slots_owned: Gauge::default(),
            scrape: Mutex::new(()),
            registry: Registry::default(),
        };
        registry.register(
            "alerts_accepted",
            "Alerts acknowledged with 202 (each on disk)",
            metrics.accepted.clone(),
        );
        registry.register(
            "requests_refused",
            "Intake requests refused, by HTTP status",
            metrics.refused.clone(),
        );
        registry.register(
            "alerts_delivered",
            "Alerts Slack accepted",
            metrics.delivered.clone(),
        );
        registry.register(
            "alerts_failed",
            "Alerts that ended undelivered, by error code (Slack's, or the handler error's case)",
            metrics.failed.clone(),
        );
        registry.register(
            "retries",
            "Attempts that failed transiently and will be retried",
            metrics.retries.clone(),
        );
        registry.register(
            "alerts_repeated",
            "Alertmanager's repeats of an alert's last event, recorded as repeat and not sent",
            metrics.repeated.clone(),
        );
        registry.register(
            "alerts_silenced",
            "Events of a silenced alert (silenced from its message), recorded as silenced and not sent",
            metrics.silenced.clone(),
        );
        registry.register(
            "interactions",
            "Clicks and requests from Slack, by outcome (acknowledge, silence, unsilence, repeated, unknown-alert, ignored, refused)",
            metrics.interactions.clone(),
        );
        registry.register(
            "interactions_refused",
            "Requests to /slack/interactions refused, by reason: unsigned, stale, too-large and busy before the body is read (interactions/screen.rs), unverified by the component",
            metrics.interactions_refused.clone(),
        );
        registry.register(
            "rate_limited",
            "Answers that were Slack's rate limit (429 or ratelimited)",
            metrics.rate_limited.clone(),
        );
        registry.register(
            "duplicate_sends",
            "Requests this node sent whose ending came after their claim had passed to another node (its lease ran out while the request was at Slack): Slack shows the alert twice; the store kept the later claim's message and recorded the duplicate",
            metrics.duplicates.clone(),
        );
        registry.register(
            "spool_fsyncs",
            "fsyncs of the spool's journal (group commit shares them)",
            metrics.fsyncs.clone(),
        );
        registry.register(
            "spool_write_errors",
            "Appends or fsyncs of the spool that failed (a full disk): their writes were dropped and their writers answered 503",
            metrics.write_errors.clone(),
        );
        registry.register(
            "store_degraded",
            "1 while the store's writes are failing (the journal's disk, or the database away; see /healthz for why), else 0",
            metrics.degraded.clone(),
        );
        // The name it had when "spool" meant any store: kept for one
        // release beside `store_degraded`, for the dashboards that scrape it.
        registry.register(
            "spool_degraded",
            "Deprecated: the same as slack_handler_store_degraded (this name goes in the next release)",
            metrics.degraded.clone(),
        );
        registry.register(
            "alerts_pending",
            "Alerts accepted and not yet ended",
            metrics.pending.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Deliveries under way now, each with its own instance (at most --max-in-flight)",
            metrics.in_flight.clone(),
        );
        registry.register(
            "oldest_pending_age_seconds",
            "Age of the oldest pending alert (0 when none is)",
            metrics.oldest_pending.clone(),
        );
        registry.register(
            "node",
            "1, labelled with this node's name and its store (journal, postgres): the counters here are this node's, alerts_pending and oldest_pending_age_seconds the store's (every node's)",
            metrics.node.clone(),
        );
        registry.register(
            "socket_mode_connected",
            "1 while Socket Mode's WebSocket to Slack is open, else 0 (also when Socket Mode is off)",
            metrics.socket_connected.clone(),
        );
        registry.register(
            "socket_mode_reconnects",
            "Socket Mode connections that ended (Slack asked, or lost) and were opened again",
            metrics.socket_reconnects.clone(),
        );
        registry.register(
            "storm_requests",
            "Requests for storm messages, by method (post: a storm message posted; update: an edit, paced by the workspace's chat.update budget) and outcome (sent, retried, failed, deferred: held back by the update budget)",
            metrics.storm_requests.clone(),
        );
        registry.register(
            "plugin_alerts",
            "Alerts ended by a delivery attempt, by the plugin kind that took them (slack, or a topic handler file's kind) and how they ended (delivered, failed, repeat, silenced, superseded)",
            metrics.plugin_alerts.clone(),
        );
        registry.register(
            "storm_alerts",
            "Alert events shown in a storm message instead of a message of their own",
            metrics.storm_alerts.clone(),
        );
        registry.register(
            "storms_open",
            "Storm messages this node is keeping up to date now",
            metrics.storms_open.clone(),
        );
        registry.register(
            "slots_owned",
            "Channel slots (of 64) this node owns on a shared store: it sends their channels' alerts",
            metrics.slots_owned.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Names this node and its store.
    pub fn this_node(&self, node: &str, store: &str) {
        let node: String = node.chars().take(MAX_LABEL).collect();
        self.node
            .get_or_create(&vec![("node", node), ("store", store.to_string())])
            .set(1);
    }

    pub fn accepted(&self, n: u64) {
        self.accepted.inc_by(n);
    }

    /// An intake request answered with `status` (4xx, 5xx).
    pub fn refused(&self, status: u16) {
        self.refused
            .get_or_create(&vec![("status", status.to_string())])
            .inc();
    }

    pub fn delivered(&self) {
        self.delivered.inc();
    }

    pub fn failed(&self, code: &str) {
        let code: String = code.chars().take(MAX_LABEL).collect();
        self.failed.get_or_create(&vec![("code", code)]).inc();
    }

    /// A delivery started (`1`) or ended (`-1`).
    pub fn in_flight(&self, change: i64) {
        self.in_flight.inc_by(change);
    }

    /// A repeat, recorded and not sent.
    pub fn repeated(&self) {
        self.repeated.inc();
    }

    /// A request for a storm message: `method` post or update, `outcome`
    /// sent, retried, failed or deferred.
    pub fn storm_request(&self, method: &'static str, outcome: &'static str) {
        self.storm_requests
            .get_or_create(&vec![
                ("method", method.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    /// An alert ended by plugin `plugin` with `status`.
    pub fn plugin_ended(&self, plugin: &str, status: &str) {
        let plugin: String = plugin.chars().take(MAX_LABEL).collect();
        self.plugin_alerts
            .get_or_create(&vec![("plugin", plugin), ("status", status.to_string())])
            .inc();
    }

    /// Alert events shown in a storm message.
    pub fn shown_in_storm(&self, n: u64) {
        self.storm_alerts.inc_by(n);
    }

    /// Storm messages kept up to date now.
    pub fn storms_open(&self, n: i64) {
        self.storms_open.set(n);
    }

    /// The channel slots this node owns now.
    pub fn slots_owned(&self, n: i64) {
        self.slots_owned.set(n);
    }

    /// An event of a silenced alert, recorded and not sent.
    pub fn silenced(&self) {
        self.silenced.inc();
    }

    /// A click or request from Slack, by what came of it.
    pub fn interaction(&self, outcome: &str) {
        self.interactions
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc();
    }

    /// A request to the Request URL refused, by why (`unsigned`, `stale`,
    /// `too-large`, `busy`, `unverified`): also an interaction whose
    /// outcome is `refused`.
    pub fn interaction_refused(&self, reason: &str) {
        self.interaction("refused");
        self.interactions_refused
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    pub fn retry(&self, rate_limited: bool) {
        self.retries.inc();
        if rate_limited {
            self.rate_limited.inc();
        }
    }

    /// Socket Mode as the pump reports it now (whether it is connected,
    /// how many times it reconnected): call before [`Metrics::render`].
    pub fn socket_mode(&self, connected: bool, reconnects: u64) {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.socket_connected.set(i64::from(connected));
        // Counted by the pump: caught up by its delta.
        let counted = self.socket_reconnects.get();
        self.socket_reconnects
            .inc_by(reconnects.saturating_sub(counted));
    }

    /// The text for a scrape, with the spool's gauges as they are now.
    pub fn render(&self, spool: &StoreGauges) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.pending.set(spool.pending as i64);
        self.oldest_pending.set(spool.oldest_age_seconds);
        self.degraded.set(i64::from(spool.degraded));
        // Counted by the committer: caught up by their deltas.
        let counted = self.duplicates.get();
        self.duplicates
            .inc_by(spool.duplicates.saturating_sub(counted));
        let counted = self.fsyncs.get();
        self.fsyncs.inc_by(spool.fsyncs.saturating_sub(counted));
        let counted = self.write_errors.get();
        self.write_errors
            .inc_by(spool.write_errors.saturating_sub(counted));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_names_every_metric_with_its_value() {
        let m = Metrics::new();
        m.accepted(3);
        m.delivered();
        m.failed("channel_not_found");
        m.retry(true);
        m.retry(false);
        m.refused(413);
        m.interaction_refused("unsigned");
        m.interaction_refused("unsigned");
        m.interaction_refused("busy");
        let text = m.render(&StoreGauges {
            pending: 2,
            oldest_age_seconds: 1.5,
            fsyncs: 7,
            write_errors: 2,
            degraded: true,
            duplicates: 1,
        });
        for line in [
            "slack_handler_alerts_accepted_total 3",
            "slack_handler_alerts_delivered_total 1",
            "slack_handler_alerts_failed_total{code=\"channel_not_found\"} 1",
            "slack_handler_retries_total 2",
            "slack_handler_rate_limited_total 1",
            "slack_handler_requests_refused_total{status=\"413\"} 1",
            "slack_handler_interactions_total{outcome=\"refused\"} 3",
            "slack_handler_interactions_refused_total{reason=\"unsigned\"} 2",
            "slack_handler_interactions_refused_total{reason=\"busy\"} 1",
            "slack_handler_spool_fsyncs_total 7",
            "slack_handler_duplicate_sends_total 1",
            "slack_handler_spool_write_errors_total 2",
            "slack_handler_spool_degraded 1",
            "slack_handler_store_degraded 1",
            "slack_handler_alerts_pending 2",
            "slack_handler_oldest_pending_age_seconds 1.5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn socket_mode_shows_its_connection_and_reconnects() {
        let m = Metrics::new();
        let text = m.render(&StoreGauges::default());
        assert!(text
            .lines()
            .any(|l| l == "slack_handler_socket_mode_connected 0"));
        m.socket_mode(true, 2);
        m.socket_mode(true, 3);
        let text = m.render(&StoreGauges::default());
        for line in [
            "slack_handler_socket_mode_connected 1",
            "slack_handler_socket_mode_reconnects_total 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn a_long_code_is_cut() {
        let m = Metrics::new();
        m.failed(&"x".repeat(500));
        let text = m.render(&StoreGauges::default());
        assert!(text.contains(&format!("code=\"{}\"", "x".repeat(MAX_LABEL))));
    }
}
