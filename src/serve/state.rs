//! What the server holds in memory: the champion model and each served coin's series, as one
//! snapshot behind an `ArcSwap`, so that a reload (after a pipeline run or a promotion) replaces
//! it atomically and the `/predict` hot path reads no SQL.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use duckdb::Connection;

use super::metrics::Metrics;
use super::prediction_log::PredictionLog;
use crate::config::Settings;
use crate::model::dataset::CoinSeries;
use crate::model::lstm::{resolve_device, ModelCard, TrainedLstm};
use crate::model::registry;
use crate::monitor::{self, FeaturePsi, LiveAccuracy};
use crate::store::{self, Incident, IncidentKind};

pub struct ServingModel {
    pub model_id: String,
    pub family: String,
    /// A copy of the card, for lock-free reads (coins, features, intervals, drift bounds).
    pub card: ModelCard,
    /// tch tensors are Send but not Sync; inference takes the lock (one libtorch thread anyway).
    pub lstm: Mutex<TrainedLstm>,
}

pub struct Snapshot {
    pub model: Option<Arc<ServingModel>>,
    pub series: BTreeMap<String, Arc<CoinSeries>>,
    pub loaded_at: DateTime<Utc>,
    /// Why there is no model, or no data, in words for /ready and /predict.
    pub problems: Vec<String>,
    /// Live accuracy of the served forecasts (last 24 h and 7 d) when the snapshot was loaded.
    pub live_accuracy: Vec<LiveAccuracy>,
    /// The champion's PSI per input from the newest pipeline run that computed it.
    pub psi: Vec<FeaturePsi>,
    /// Every registered model, newest first.
    pub registry: Vec<registry::ModelRow>,
    /// Store incidents not yet resolved (an unreplayable WAL set aside at start-up).
    pub incidents: Vec<Incident>,
}

impl Snapshot {
    /// Reads the champion and its coins' series from the database.
    pub fn load(conn: &Connection, settings: &Settings) -> Self {
        let mut problems = Vec::new();
        let model = match registry::champion(conn) {
            Ok(Some(row)) => match resolve_device("auto")
                .and_then(|d| TrainedLstm::load(&row.artifact_dir(&settings.data_dir), d))
            {
                Ok(lstm) => Some(Arc::new(ServingModel {
                    model_id: row.model_id,
                    family: row.family,
                    card: lstm.card.clone(),
                    lstm: Mutex::new(lstm),
                })),
                Err(e) => {
                    problems.push(format!(
                        "the champion {} cannot be loaded: {e}",
                        row.model_id
                    ));
                    None
                }
            },
            Ok(None) => {
                problems
                    .push("no model yet: run `coincast train` to train and register one".into());
                None
            }
            Err(e) => {
                problems.push(format!("the model registry cannot be read: {e}"));
                None
            }
        };
        let mut series = BTreeMap::new();
        if let Some(m) = &model {
            for coin in &m.card.coins {
                match CoinSeries::load(conn, coin, &settings.vs_currency, &m.card.spec.features) {
                    Ok(s) => {
                        series.insert(coin.clone(), Arc::new(s));
                    }
                    Err(e) => problems.push(format!("{coin}: {e}")),
                }
            }
        }
        let now = Utc::now();
        let live_accuracy = monitor::live_accuracy(conn, now).unwrap_or_else(|e| {
            problems.push(format!("live accuracy cannot be read: {e}"));
            Vec::new()
        });
        let psi = match &model {
            Some(m) => monitor::latest_psi(conn, &m.model_id).unwrap_or_else(|e| {
                problems.push(format!("feature PSI cannot be read: {e}"));
                Vec::new()
            }),
            None => Vec::new(),
        };
        let registry = registry::list(conn).unwrap_or_else(|e| {
            problems.push(format!("the model registry cannot be read: {e}"));
            Vec::new()
        });
        let incidents = store::open_incidents(conn).unwrap_or_else(|e| {
            problems.push(format!("the incidents cannot be read: {e}"));
            Vec::new()
        });
        Self {
            model,
            series,
            loaded_at: now,
            problems,
            live_accuracy,
            psi,
            registry,
            incidents,
        }
    }

    /// The newest stored hour of each served coin.
    pub fn last_hours(&self) -> BTreeMap<String, DateTime<Utc>> {
        self.series
            .iter()
            .filter_map(|(coin, s)| {
                let last = s.first_hour + s.len() as i64 - 1;
                DateTime::from_timestamp(last * 3600, 0).map(|t| (coin.clone(), t))
            })
            .collect()
    }
}

pub struct AppState {
    pub snapshot: ArcSwap<Snapshot>,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    /// Where manual runs are queued (None: no worker, e.g. in tests of the API alone).
    pub pipeline: Option<Mutex<std::sync::mpsc::Sender<super::worker::Command>>>,
    /// Where served predictions go (None: not logged).
    pub prediction_log: Option<PredictionLog>,
    /// The last hour of request counters, for the monitoring page.
    pub history: super::pages::monitoring::History,
    /// A connection of the API's own, for promotions and reads that must not wait for a
    /// pipeline run (DuckDB serves several connections of one process).
    pub db: Option<Mutex<Connection>>,
}

impl AppState {
    pub fn new(snapshot: Snapshot, settings: Settings, metrics: Arc<Metrics>) -> Self {
        let state = Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            metrics,
            settings,
            pipeline: None,
            prediction_log: None,
            history: Default::default(),
            db: None,
        };
        state.publish_gauges();
        state
    }

    /// Connects manual triggers to a pipeline worker.
    pub fn with_pipeline(
        mut self,
        sender: std::sync::mpsc::Sender<super::worker::Command>,
    ) -> Self {
        self.pipeline = Some(Mutex::new(sender));
        self
    }

    /// Logs served predictions through `log`.
    pub fn with_prediction_log(mut self, log: PredictionLog) -> Self {
        self.prediction_log = Some(log);
        self
    }

    /// Gives the API its own connection (for promotions and reads).
    pub fn with_db(mut self, conn: Connection) -> Self {
        self.db = Some(Mutex::new(conn));
        self
    }

    /// Swaps in a new snapshot (no restart, no torn reads).
    pub fn replace(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
        self.publish_gauges();
    }

    /// Sets the health and age gauges from the current snapshot. Ages are derived at each scrape
    /// (see `render_metrics`), so they keep growing when no pipeline run comes.
    pub fn publish_gauges(&self) {
        let snap = self.snapshot.load();
        let now = Utc::now();
        match &snap.model {
            Some(m) => {
                self.metrics
                    .model_health_status
                    .with_label_values(&[&m.family])
                    .set(1.0);
                let trained = m.card.trained_until_hour * 3600;
                self.metrics
                    .coincast_model_age_seconds
                    .with_label_values(&[&m.family])
                    .set((now.timestamp() - trained) as f64);
            }
            None => self
                .metrics
                .model_health_status
                .with_label_values(&["lstm"])
                .set(0.0),
        }
        for (coin, last) in snap.last_hours() {
            self.metrics
                .coincast_data_age_seconds
                .with_label_values(&[&coin])
                .set((now - last).num_seconds() as f64);
        }
        let m = &self.metrics;
        m.coincast_store_incidents_open.reset();
        m.coincast_store_incidents_open
            .with_label_values(&[IncidentKind::UnreplayableWal.name()])
            .set(0.0);
        for i in &snap.incidents {
            m.coincast_store_incidents_open
                .with_label_values(&[&i.kind])
                .inc();
        }
        // Series of coins or features that left (a new champion) must not linger.
        m.coincast_feature_psi.reset();
        for f in &snap.psi {
            m.coincast_feature_psi
                .with_label_values(&[&f.feature])
                .set(f.psi);
        }
        let live = [
            &m.coincast_live_mae,
            &m.coincast_live_mape,
            &m.coincast_live_interval_coverage,
            &m.coincast_live_direction_accuracy,
            &m.coincast_live_scored_forecasts,
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
