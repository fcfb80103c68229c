//! Prometheus metrics. The first eight families are a contract with the old dashboards and alert
//! rules: names, types, labels and buckets exactly as design.md says. `endpoint` is the matched
//! route template (bounded series), `status` is `success` (HTTP < 400) or `error`.

use chrono::Utc;
use prometheus::{
    register_gauge_vec_with_registry, register_gauge_with_registry,
    register_histogram_vec_with_registry, register_int_counter_vec_with_registry,
    register_int_counter_with_registry, Encoder, Gauge, GaugeVec, HistogramVec, IntCounter,
    IntCounterVec, Registry, TextEncoder,
};

use super::snapshot::{ServingModel, Snapshot};
use crate::store::IncidentKind;

const REQUEST_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const PREDICTION_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
const TASK_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0];

pub struct Metrics {
    pub registry: Registry,
    pub api_requests_total: IntCounterVec,
    pub api_request_latency_seconds: HistogramVec,
    pub api_active_requests: Gauge,
    pub model_predictions_total: IntCounterVec,
    pub model_prediction_latency_seconds: HistogramVec,
    pub model_health_status: GaugeVec,
    pub data_drift_ratio: GaugeVec,
    pub data_drift_detections_total: IntCounterVec,
    pub coincast_build_info: GaugeVec,
    pub coincast_model_age_seconds: GaugeVec,
    pub coincast_data_age_seconds: GaugeVec,
    pub coincast_pipeline_runs_total: IntCounterVec,
    pub coincast_pipeline_last_run_timestamp_seconds: GaugeVec,
    pub coincast_task_duration_seconds: HistogramVec,
    pub coincast_rows_ingested_total: IntCounterVec,
    pub coincast_quality_failures_total: IntCounterVec,
    pub coincast_feature_psi: GaugeVec,
    pub coincast_live_mae: GaugeVec,
    pub coincast_live_mape: GaugeVec,
    pub coincast_live_interval_coverage: GaugeVec,
    pub coincast_live_direction_accuracy: GaugeVec,
    pub coincast_live_scored_forecasts: GaugeVec,
    pub coincast_predictions_logged_total: IntCounter,
    pub coincast_predictions_dropped_total: IntCounterVec,
    pub coincast_store_incidents_open: GaugeVec,
    pub coincast_champion_info: GaugeVec,
    pub coincast_api_calls_month: Gauge,
    pub coincast_api_call_budget: Gauge,
    pub coincast_champion_changes_total: IntCounterVec,
    pub coincast_aci_alpha: GaugeVec,
    pub coincast_publish_seconds: prometheus::Histogram,
    pub coincast_published_bytes: Gauge,
    pub coincast_serving_publication_version: Gauge,
    pub coincast_serving_publication_newest_version: Gauge,
    pub coincast_serving_publication_lag_versions: Gauge,
    pub coincast_serving_publication_bytes: Gauge,
    pub coincast_serving_publication_timestamp_seconds: Gauge,
    pub coincast_serving_publication_seconds: prometheus::Histogram,
    pub coincast_serving_publication_failures_total: IntCounterVec,
    pub coincast_serving_publication_last_success_timestamp_seconds: Gauge,
    pub coincast_replica_segments_taken_total: IntCounter,
    pub coincast_token_requests_limited_total: IntCounterVec,
    pub coincast_tokens_file_ok: Gauge,
    pub coincast_tokens_file_rejections_total: IntCounter,
    pub coincast_audit_events_dropped_total: IntCounter,
    pub coincast_pg_connections: Gauge,
    pub coincast_pg_connections_closed_total: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new();
        let m = Self {
            api_requests_total: register_int_counter_vec_with_registry!(
                "api_requests_total",
                "API requests by method, route template and outcome (success: HTTP < 400)",
                &["method", "endpoint", "status"],
                r
            )?,
            api_request_latency_seconds: register_histogram_vec_with_registry!(
                "api_request_latency_seconds",
                "API request latency in seconds",
                &["method", "endpoint"],
                REQUEST_BUCKETS.to_vec(),
                r
            )?,
            api_active_requests: register_gauge_with_registry!(
                "api_active_requests",
                "API requests in flight",
                r
            )?,
            model_predictions_total: register_int_counter_vec_with_registry!(
                "model_predictions_total",
                "Successful predictions by model type and coin",
                &["model_type", "coin_id"],
                r
            )?,
            model_prediction_latency_seconds: register_histogram_vec_with_registry!(
                "model_prediction_latency_seconds",
                "Model inference latency in seconds",
                &["model_type"],
                PREDICTION_BUCKETS.to_vec(),
                r
            )?,
            model_health_status: register_gauge_vec_with_registry!(
                "model_health_status",
                "1 when a model of this type is loaded and serving, else 0",
                &["model_type"],
                r
            )?,
            data_drift_ratio: register_gauge_vec_with_registry!(
                "data_drift_ratio",
                "Share of the model's input features outside their training range [p01, p99] at the last prediction",
                &["model_type"],
                r
            )?,
            data_drift_detections_total: register_int_counter_vec_with_registry!(
                "data_drift_detections_total",
                "Predictions whose input feature was outside its training range [p01, p99]",
                &["model_type", "feature"],
                r
            )?,
            coincast_build_info: register_gauge_vec_with_registry!(
                "coincast_build_info",
                "Build of the running coincast (always 1)",
                &["version", "revision"],
                r
            )?,
            coincast_model_age_seconds: register_gauge_vec_with_registry!(
                "coincast_model_age_seconds",
                "Seconds since the serving model's training data ended",
                &["model_type"],
                r
            )?,
            coincast_data_age_seconds: register_gauge_vec_with_registry!(
                "coincast_data_age_seconds",
                "Seconds since the newest stored hour of each served coin",
                &["coin_id"],
                r
            )?,
            coincast_pipeline_runs_total: register_int_counter_vec_with_registry!(
                "coincast_pipeline_runs_total",
                "Pipeline runs of the serve worker by job (ingest, retrain), trigger and final state (success, partial, failed)",
                &["job", "trigger", "state"],
                r
            )?,
            coincast_pipeline_last_run_timestamp_seconds: register_gauge_vec_with_registry!(
                "coincast_pipeline_last_run_timestamp_seconds",
                "Unix time at which the last pipeline run of each job and final state ended",
                &["job", "state"],
                r
            )?,
            coincast_task_duration_seconds: register_histogram_vec_with_registry!(
                "coincast_task_duration_seconds",
                "Duration of each pipeline task attempt in seconds",
                &["task"],
                TASK_BUCKETS.to_vec(),
                r
            )?,
            coincast_rows_ingested_total: register_int_counter_vec_with_registry!(
                "coincast_rows_ingested_total",
                "Hours merged into market_data (new or changed) by coin",
                &["coin_id"],
                r
            )?,
            coincast_quality_failures_total: register_int_counter_vec_with_registry!(
                "coincast_quality_failures_total",
                "Failed quality rule checks by rule and severity (error quarantines the batch)",
                &["rule", "severity"],
                r
            )?,
            coincast_feature_psi: register_gauge_vec_with_registry!(
                "coincast_feature_psi",
                "Population stability index of each champion input, last 24 h vs the training origins",
                &["feature"],
                r
            )?,
            coincast_live_mae: register_gauge_vec_with_registry!(
                "coincast_live_mae",
                "Mean absolute error of served forecasts scored in the window, in the quote currency",
                &["coin_id", "window"],
                r
            )?,
            coincast_live_mape: register_gauge_vec_with_registry!(
                "coincast_live_mape",
                "Mean absolute percentage error (fraction) of served forecasts scored in the window",
                &["coin_id", "window"],
                r
            )?,
            coincast_live_interval_coverage: register_gauge_vec_with_registry!(
                "coincast_live_interval_coverage",
                "Share of scored forecasts whose actual fell inside the interval",
                &["coin_id", "window"],
                r
            )?,
            coincast_live_direction_accuracy: register_gauge_vec_with_registry!(
                "coincast_live_direction_accuracy",
                "Share of scored forecasts with the right direction of the move",
                &["coin_id", "window"],
                r
            )?,
            coincast_live_scored_forecasts: register_gauge_vec_with_registry!(
                "coincast_live_scored_forecasts",
                "Distinct forecasts scored in the window",
                &["coin_id", "window"],
                r
            )?,
            coincast_predictions_logged_total: register_int_counter_with_registry!(
                "coincast_predictions_logged_total",
                "Predictions written to the predictions table",
                r
            )?,
            coincast_predictions_dropped_total: register_int_counter_vec_with_registry!(
                "coincast_predictions_dropped_total",
                "Predictions not logged, by reason (queue_full, write_failed)",
                &["reason"],
                r
            )?,
            coincast_store_incidents_open: register_gauge_vec_with_registry!(
                "coincast_store_incidents_open",
                "Store incidents not yet resolved, by kind (unreplayable_wal: a WAL DuckDB could not replay was set aside; data after the last checkpoint may be missing until the next successful ingest)",
                &["kind"],
                r
            )?,
            coincast_champion_info: register_gauge_vec_with_registry!(
                "coincast_champion_info",
                "The champion (always 1): its model type, version, and whether it is the floor (persistence, because nothing else passed the gate)",
                &["model_type", "model_id", "is_floor"],
                r
            )?,
            coincast_aci_alpha: register_gauge_vec_with_registry!(
                "coincast_aci_alpha",
                "Online coverage control: the miss rate the served intervals aim at now, per role (champion, floor), coin and horizon (nominal: 1 - interval level; bounded to 0.005..0.5)",
                &["role", "coin_id", "horizon"],
                r
            )?,
            coincast_publish_seconds: prometheus::register_histogram_with_registry!(
                "coincast_publish_seconds",
                "Time to publish the read-only copy (database and Parquet) for SQL users",
                TASK_BUCKETS.to_vec(),
                r
            )?,
            coincast_published_bytes: register_gauge_with_registry!(
                "coincast_published_bytes",
                "Size of the published read-only database copy",
                r
            )?,
            coincast_serving_publication_version: register_gauge_with_registry!(
                "coincast_serving_publication_version",
                "The serving publication this server last put out (writer) or serves (replica)",
                r
            )?,
            coincast_serving_publication_newest_version: register_gauge_with_registry!(
                "coincast_serving_publication_newest_version",
                "The newest serving publication a replica has seen named at publish.url",
                r
            )?,
            coincast_serving_publication_lag_versions: register_gauge_with_registry!(
                "coincast_serving_publication_lag_versions",
                "Publications a replica is behind the newest one (versions, not age: quiet hours do not count)",
                r
            )?,
            coincast_serving_publication_bytes: register_gauge_with_registry!(
                "coincast_serving_publication_bytes",
                "Size of the serving publication's files (database and served artifacts)",
                r
            )?,
            coincast_serving_publication_timestamp_seconds: register_gauge_with_registry!(
                "coincast_serving_publication_timestamp_seconds",
                "When the serving publication this server put out (writer) or serves (replica) was put out",
                r
            )?,
            coincast_serving_publication_seconds: prometheus::register_histogram_with_registry!(
                "coincast_serving_publication_seconds",
                "Time to put out a serving publication (writer) or to fetch and load one (replica)",
                TASK_BUCKETS.to_vec(),
                r
            )?,
            coincast_serving_publication_failures_total: register_int_counter_vec_with_registry!(
                "coincast_serving_publication_failures_total",
                "Serving publications not put out (writer) or not loaded (replica), by stage",
                &["stage"],
                r
            )?,
            coincast_serving_publication_last_success_timestamp_seconds: register_gauge_with_registry!(
                "coincast_serving_publication_last_success_timestamp_seconds",
                "When the writer last published, or a replica last read the manifest",
                r
            )?,
            coincast_replica_segments_taken_total: register_int_counter_with_registry!(
                "coincast_replica_segments_taken_total",
                "Replicas' segments of served forecasts the writer took into predictions",
                r
            )?,
            coincast_token_requests_limited_total: register_int_counter_vec_with_registry!(
                "coincast_token_requests_limited_total",
                "Requests answered 429 because their token was over its rate, by token name",
                &["token"],
                r
            )?,
            coincast_tokens_file_ok: register_gauge_with_registry!(
                "coincast_tokens_file_ok",
                "1 when the tokens file on disk is the one in force, 0 when it failed to parse (the last good one serves)",
                r
            )?,
            coincast_tokens_file_rejections_total: register_int_counter_with_registry!(
                "coincast_tokens_file_rejections_total",
                "Changes of the tokens file that did not parse and were not taken",
                r
            )?,
            coincast_audit_events_dropped_total: register_int_counter_with_registry!(
                "coincast_audit_events_dropped_total",
                "Audit events dropped because the audit log's queue was full",
                r
            )?,
            coincast_pg_connections: register_gauge_with_registry!(
                "coincast_pg_connections",
                "Connections the Postgres wire holds now",
                r
            )?,
            coincast_pg_connections_closed_total: register_int_counter_vec_with_registry!(
                "coincast_pg_connections_closed_total",
                "Postgres-wire connections refused or closed by a limit: limit, startup_timeout, idle_timeout, tls_required",
                &["reason"],
                r
            )?,
            coincast_api_calls_month: register_gauge_with_registry!(
                "coincast_api_calls_month",
                "CoinGecko calls this UTC month (every call and retry, as recorded in raw_batches)",
                r
            )?,
            coincast_api_call_budget: register_gauge_with_registry!(
                "coincast_api_call_budget",
                "Calls a month the CoinGecko plan allows (NaN: no monthly quota, keyless public use)",
                r
            )?,
            coincast_champion_changes_total: register_int_counter_vec_with_registry!(
                "coincast_champion_changes_total",
                "Champion changes seen by this server, by the new champion's model type and whether it is the floor",
                &["model_type", "to_floor"],
                r
            )?,
            registry: r,
        };
        m.coincast_build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                crate::model::registry::GIT_REVISION,
            ])
            .set(1.0);
        // The API's families from the first scrape (the scrape itself is counted only after
        // its response): the one route every dashboard plots, at 0.
        for status in ["success", "error"] {
            m.api_requests_total
                .with_label_values(&["POST", "/predict", status])
                .inc_by(0);
        }
        m.api_request_latency_seconds
            .with_label_values(&["POST", "/predict"]);
        Ok(m)
    }

    /// The label value of the seed's model families while no model serves.
    const NO_MODEL: &'static str = "none";

    /// Every seed family is exposed from the first scrape, before its first event (a vector
    /// without children is not exposed at all, so `rate()` panels and absence alerts would see
    /// nothing): the served models' label values start at 0, or `model_type="none"` while no
    /// model serves, removed once one does.
    fn expose_seed_families(&self, snap: &Snapshot) {
        let models: Vec<&ServingModel> = [&snap.champion, &snap.floor]
            .into_iter()
            .flatten()
            .map(|m| m.as_ref())
            .collect();
        let none = Self::NO_MODEL;
        if models.is_empty() {
            self.model_predictions_total
                .with_label_values(&[none, none])
                .inc_by(0);
            self.model_prediction_latency_seconds
                .with_label_values(&[none]);
            self.data_drift_ratio.with_label_values(&[none]);
            self.data_drift_detections_total
                .with_label_values(&[none, none])
                .inc_by(0);
            return;
        }
        // Absent already is fine: the first publication with a model.
        let _ = self
            .model_predictions_total
            .remove_label_values(&[none, none]);
        let _ = self
            .model_prediction_latency_seconds
            .remove_label_values(&[none]);
        let _ = self.data_drift_ratio.remove_label_values(&[none]);
        let _ = self
            .data_drift_detections_total
            .remove_label_values(&[none, none]);
        for model in models {
            let family = model.family.as_str();
            self.model_prediction_latency_seconds
                .with_label_values(&[family]);
            self.data_drift_ratio.with_label_values(&[family]);
            for feature in &model.feature_stats {
                self.data_drift_detections_total
                    .with_label_values(&[family, &feature.name])
                    .inc_by(0);
            }
            for coin in snap.coins.keys() {
                self.model_predictions_total
                    .with_label_values(&[family, coin])
                    .inc_by(0);
            }
        }
    }

    /// The text exposition format Prometheus 2 and 3 both accept.
    pub fn encode(&self) -> Result<Vec<u8>, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        Ok(buf)
    }

    /// The content type of `encode`'s text.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// Sets the health, age, champion, incident, ACI, PSI and live-accuracy gauges from `snap`.
    /// Ages are derived at each call (every scrape makes one), so they keep growing when no
    /// pipeline run comes.
    pub fn publish(&self, snap: &Snapshot) {
        let now = Utc::now();
        self.model_health_status.reset();
        self.coincast_model_age_seconds.reset();
        self.coincast_champion_info.reset();
        for model in [&snap.champion, &snap.floor].into_iter().flatten() {
            self.model_health_status
                .with_label_values(&[&model.family])
                .set(1.0);
        }
        self.expose_seed_families(snap);
        match snap.serving() {
            Some(model) => self
                .coincast_model_age_seconds
                .with_label_values(&[&model.family])
                .set((now.timestamp() - model.trained_until_hour * 3600) as f64),
            // Nothing serves: /predict answers 503 (ModelUnhealthy).
            None => self
                .model_health_status
                .with_label_values(&["persistence"])
                .set(0.0),
        }
        if let Some(c) = &snap.champion {
            let is_floor = snap
                .floor
                .as_ref()
                .is_some_and(|f| f.model_id == c.model_id);
            self.coincast_champion_info
                .with_label_values(&[
                    c.family.as_str(),
                    c.model_id.as_str(),
                    if is_floor { "true" } else { "false" },
                ])
                .set(1.0);
        }
        for (coin, last) in snap.last_hours() {
            self.coincast_data_age_seconds
                .with_label_values(&[&coin])
                .set((now - last).num_seconds() as f64);
        }
        if let Some(u) = &snap.api_usage {
            self.coincast_api_calls_month.set(u.calls_this_month as f64);
            self.coincast_api_call_budget
                .set(u.budget.map_or(f64::NAN, f64::from));
        }
        self.coincast_store_incidents_open.reset();
        self.coincast_store_incidents_open
            .with_label_values(&[IncidentKind::UnreplayableWal.name()])
            .set(0.0);
        for i in &snap.incidents {
            self.coincast_store_incidents_open
                .with_label_values(&[&i.kind])
                .inc();
        }
        self.coincast_aci_alpha.reset();
        for (role, model) in [("champion", &snap.champion), ("floor", &snap.floor)] {
            for row in model.iter().flat_map(|served| &served.aci) {
                self.coincast_aci_alpha
                    .with_label_values(&[role, row.coin_id.as_str(), &row.horizon.to_string()])
                    .set(row.alpha);
            }
        }
        // Series of coins or features that left (a new champion) must not linger.
        self.coincast_feature_psi.reset();
        for f in &snap.psi {
            self.coincast_feature_psi
                .with_label_values(&[&f.feature])
                .set(f.psi);
        }
        let live = [
            &self.coincast_live_mae,
            &self.coincast_live_mape,
            &self.coincast_live_interval_coverage,
            &self.coincast_live_direction_accuracy,
            &self.coincast_live_scored_forecasts,
        ];
        for gauge in live {
            gauge.reset();
        }
        for a in &snap.live_accuracy {
            let labels = [a.coin_id.as_str(), a.window.as_str()];
            let values = [
                a.mae,
                a.mape,
                a.coverage,
                a.direction_accuracy,
                a.forecasts as f64,
            ];
            for (gauge, value) in live.iter().zip(values) {
                gauge.with_label_values(&labels).set(value);
            }
        }
    }
}
