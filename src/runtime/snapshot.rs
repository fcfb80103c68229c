//! What the appliance serves from memory: the champion, the floor and each coin's series, read
//! from the database in one load. The publisher swaps whole snapshots, so the `/predict` hot path
//! reads no SQL and never sees half of a reload.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use duckdb::Connection;

use crate::config::Settings;
use crate::ingest::budget::{self, Usage};
use crate::model::card::FeatureStats;
use crate::model::dataset::CoinSeries;
use crate::model::forecast::{Forecast, Levels};
use crate::model::lstm::resolve_device;
use crate::model::served::ServedModel;
use crate::model::{registry, ModelError};
use crate::monitor::{self, coverage, AciRow, FeaturePsi, LiveAccuracy};
use crate::store::{self, Incident};

/// A registered model loaded to serve, with what the pages and metrics read lock-free.
pub struct ServingModel {
    pub model_id: String,
    /// The forecaster's name: the `model_type` of the answers it gives.
    pub family: String,
    /// The coins it was trained or calibrated on.
    pub coins: Vec<String>,
    pub horizon: usize,
    pub interval_level: f64,
    pub trained_until_hour: i64,
    /// The columns a coin's series carries for it, and their training statistics (drift, PSI).
    pub series_features: Vec<String>,
    pub feature_stats: Vec<FeatureStats>,
    /// Where its interval calibration came from, in words.
    pub calibration_source: String,
    /// Online coverage control: the miss rate aimed at per coin and horizon (empty until the
    /// monitor task has checked an outcome).
    pub aci: Vec<AciRow>,
    /// Per coin, the level each horizon's interval is drawn at (from `aci`).
    aci_levels: BTreeMap<String, Vec<f64>>,
    /// Whether it forecasts coins it was not trained on (classical models, with pooled
    /// parameters) or only its own (the LSTM: the coin is one of its inputs).
    pub forecasts_any_coin: bool,
    /// Shared by every request: a classical card is plain data, an LSTM infers under its own lock.
    model: ServedModel,
    /// Each coin's forecast from its newest hour, computed once: a forecast is a pure function
    /// of the model, the coin's series and the ACI levels, all fixed for the life of this
    /// snapshot's model (a publication loads a new one), so `/predict` is a lookup.
    latest: RwLock<HashMap<SeriesKey, Arc<Forecast>>>,
}

/// A coin's series as a forecast from its newest hour depends on it: its coin, first hour and
/// length (a snapshot holds one series per coin and model).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    coin_id: String,
    first_hour: i64,
    hours: usize,
}

impl SeriesKey {
    fn of(s: &CoinSeries) -> Self {
        Self {
            coin_id: s.coin_id.clone(),
            first_hour: s.first_hour,
            hours: s.len(),
        }
    }
}

impl ServingModel {
    pub fn load(
        conn: &Connection,
        row: &registry::ModelRow,
        data_dir: &std::path::Path,
    ) -> Result<Self, ModelError> {
        let device = resolve_device("auto")?;
        let served = ServedModel::load(&row.artifact_dir(data_dir), device)?;
        let family = served.name();
        let coins = served.coins().to_vec();
        let horizon = served.horizon();
        let interval_level = served.interval_level();
        let trained_until_hour = served.trained_until_hour();
        let series_features = served.series_features();
        let feature_stats = served.feature_stats().to_vec();
        let calibration_source = served.calibration_source();
        let forecasts_any_coin = served.forecasts_any_coin();
        // Coverage control only moves levels: if its state cannot be read, serve at nominal.
        let aci = coverage::load_state(conn, &row.model_id).unwrap_or_else(|e| {
            tracing::warn!(model_id = %row.model_id, "ACI state unreadable, nominal levels: {e}");
            Vec::new()
        });
        let aci_levels = coverage::levels(&aci, horizon, interval_level);
        Ok(Self {
            model_id: row.model_id.clone(),
            family,
            coins,
            horizon,
            interval_level,
            trained_until_hour,
            series_features,
            feature_stats,
            calibration_source,
            aci,
            aci_levels,
            forecasts_any_coin,
            model: served,
            latest: RwLock::new(HashMap::new()),
        })
    }

    /// Whether it was trained on `coin`: a champion answers only for those (a coin added later
    /// is the floor's until the next training includes it).
    pub fn covers(&self, coin: &str) -> bool {
        self.coins.iter().any(|c| c == coin)
    }

    /// Every horizon from the coin's newest hour, with intervals at the coin's ACI levels.
    pub fn forecast_latest(&self, s: &CoinSeries) -> Result<Arc<Forecast>, ModelError> {
        let key = SeriesKey::of(s);
        if let Some(f) = self.cached_forecast(&key) {
            return Ok(f);
        }
        let levels = Levels::per_horizon_or_nominal(self.aci_levels.get(&s.coin_id));
        let forecast = Arc::new(self.model.forecast_latest(s, levels)?);
        // A poisoned cache only costs the memo: the forecast is served anyway.
        if let Ok(mut cache) = self.latest.write() {
            cache.insert(key, forecast.clone());
        }
        Ok(forecast)
    }

    /// Every horizon from the coin's newest hour, drawn at `level` of the calibration at every
    /// horizon, without the coin's ACI shift (a fan's inner bands; not memoized).
    pub fn forecast_latest_at(&self, s: &CoinSeries, level: f64) -> Result<Forecast, ModelError> {
        let levels = vec![level; self.horizon];
        self.model.forecast_latest(s, Levels::PerHorizon(&levels))
    }

    /// The forecast from `s`'s newest hour if it was computed already (no inference, no lock
    /// held while inferring).
    pub fn cached_latest(&self, s: &CoinSeries) -> Option<Arc<Forecast>> {
        self.cached_forecast(&SeriesKey::of(s))
    }

    fn cached_forecast(&self, key: &SeriesKey) -> Option<Arc<Forecast>> {
        self.latest.read().ok()?.get(key).cloned()
    }

    /// Forecasts from past origins (origins it cannot forecast are left out).
    pub fn forecast_at(
        &self,
        s: &CoinSeries,
        origins: &[usize],
    ) -> Result<Vec<Forecast>, ModelError> {
        self.model.forecast_at(s, origins)
    }
}

/// Which role answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServedBy {
    Champion,
    Floor,
}

impl ServedBy {
    pub fn name(self) -> &'static str {
        match self {
            ServedBy::Champion => "champion",
            ServedBy::Floor => "floor",
        }
    }
}

/// A coin with data: its series as the champion reads it (when the champion covers the coin),
/// and as the floor reads it.
#[derive(Default)]
pub struct ServedCoin {
    pub champion: Option<Arc<CoinSeries>>,
    pub floor: Option<Arc<CoinSeries>>,
}

impl ServedCoin {
    /// Any of its series (for prices and hours).
    pub fn series(&self) -> Option<&Arc<CoinSeries>> {
        self.champion.as_ref().or(self.floor.as_ref())
    }
}

pub struct Snapshot {
    /// The publisher's version of this load (0 until published): loads are numbered as they
    /// begin, and a load is never published over a newer one.
    pub version: u64,
    pub champion: Option<Arc<ServingModel>>,
    /// Serves the coins the champion does not cover (or cannot forecast now), and everything
    /// while there is no champion.
    pub floor: Option<Arc<ServingModel>>,
    /// Every coin with data in the quote currency.
    pub coins: BTreeMap<String, ServedCoin>,
    pub loaded_at: DateTime<Utc>,
    /// Why something cannot be served, in words for /ready and /predict.
    pub problems: Vec<String>,
    /// Live accuracy of the served forecasts (last 24 h and 7 d) when the snapshot was loaded.
    pub live_accuracy: Vec<LiveAccuracy>,
    /// The serving model's PSI per monitored feature from the newest pipeline run.
    pub psi: Vec<FeaturePsi>,
    /// Every registered model, newest first.
    pub registry: Vec<registry::ModelRow>,
    /// Store incidents not yet resolved (an unreplayable WAL set aside at start-up).
    pub incidents: Vec<Incident>,
    /// The month's CoinGecko calls against the plan's budget, and the fetch cadence.
    pub api_usage: Option<Usage>,
    /// On a replica: the serving publication this snapshot was loaded from.
    pub publication: Option<PublicationInfo>,
}

/// The serving publication a replica's snapshot came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PublicationInfo {
    pub version: u64,
    pub published_at: DateTime<Utc>,
    /// The writer's instance name.
    pub writer: String,
    /// The first hour of each coin's series in the publication.
    pub series_from_hour: i64,
}

impl PublicationInfo {
    /// The first origin a forecast from this publication's series equals the writer's: one
    /// with its whole history inside the series.
    pub fn first_origin_hour(&self) -> i64 {
        self.series_from_hour + crate::publish::HISTORY_HOURS
    }
}

impl Snapshot {
    /// Reads the champion, the floor and every coin's series from the database.
    pub fn load(conn: &Connection, settings: &Settings) -> Self {
        Self::load_for(conn, settings, None)
    }

    /// As `load`, with only `only`'s series when given (a command that answers for one coin).
    pub fn load_for(conn: &Connection, settings: &Settings, only: Option<&str>) -> Self {
        let mut problems = Vec::new();
        let mut load_role =
            |row: Result<Option<registry::ModelRow>, ModelError>, role: &str| match row {
                Ok(Some(row)) => match ServingModel::load(conn, &row, &settings.data_dir) {
                    Ok(m) => Some(Arc::new(m)),
                    Err(e) => {
                        problems.push(format!("the {role} {} cannot be loaded: {e}", row.model_id));
                        None
                    }
                },
                Ok(None) => None,
                Err(e) => {
                    problems.push(format!("the model registry cannot be read: {e}"));
                    None
                }
            };
        let champion = load_role(registry::champion(conn), "champion");
        let floor = load_role(registry::floor(conn), "floor");
        if champion.is_none() && floor.is_none() {
            problems.push(
                "no model yet: the floor (persistence) is registered by the first pipeline run once a coin has a day of data; `coincast train` selects a champion".into(),
            );
        }
        let mut coins = BTreeMap::new();
        match monitor::stored_coins(conn, &settings.vs_currency) {
            Ok(ids) => {
                for coin in ids.into_iter().filter(|c| only.is_none_or(|o| o == c)) {
                    let entry = load_coin(conn, &coin, settings, &champion, &floor, &mut problems);
                    coins.insert(coin, entry);
                }
            }
            Err(e) => problems.push(format!("the stored coins cannot be read: {e}")),
        }
        // Every coin's forecasts, computed once per publication (a coin its champion cannot
        // forecast now is left to the request, which then falls back to the floor).
        for (model, series) in coins.values().flat_map(|entry| {
            [(&champion, &entry.champion), (&floor, &entry.floor)]
                .into_iter()
                .filter_map(|(m, s)| Some((m.as_ref()?, s.as_ref()?)))
        }) {
            let _ = model.forecast_latest(series);
        }
        let now = Utc::now();
        let live_accuracy = monitor::live_accuracy(conn, now).unwrap_or_else(|e| {
            problems.push(format!("live accuracy cannot be read: {e}"));
            Vec::new()
        });
        let psi = match champion.as_ref().or(floor.as_ref()) {
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
        let api_usage = budget::usage(conn, &settings.coingecko, settings.coins.len(), now)
            .map_err(|e| problems.push(format!("the API usage cannot be read: {e}")))
            .ok();
        Self {
            version: 0,
            champion,
            floor,
            coins,
            loaded_at: now,
            problems,
            live_accuracy,
            psi,
            registry,
            incidents,
            api_usage,
            publication: None,
        }
    }

    /// Nothing to serve, for `why` (a replica before its first publication; tests).
    pub fn empty(why: impl Into<String>) -> Self {
        Self {
            version: 0,
            champion: None,
            floor: None,
            coins: BTreeMap::new(),
            loaded_at: Utc::now(),
            problems: vec![why.into()],
            live_accuracy: Vec::new(),
            psi: Vec::new(),
            registry: Vec::new(),
            incidents: Vec::new(),
            api_usage: None,
            publication: None,
        }
    }

    /// The model that serves most: the champion, else the floor.
    pub fn serving(&self) -> Option<&Arc<ServingModel>> {
        self.champion.as_ref().or(self.floor.as_ref())
    }

    /// Who may answer for a coin, in order: the champion when it covers the coin, then the
    /// floor. Empty when the coin is unknown or nothing can serve it.
    pub fn answerers(&self, coin: &str) -> Vec<(Arc<ServingModel>, Arc<CoinSeries>, ServedBy)> {
        let Some(entry) = self.coins.get(coin) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let (Some(m), Some(s)) = (&self.champion, &entry.champion) {
            out.push((m.clone(), s.clone(), ServedBy::Champion));
        }
        if let (Some(m), Some(s)) = (&self.floor, &entry.floor) {
            out.push((m.clone(), s.clone(), ServedBy::Floor));
        }
        out
    }

    /// The newest stored hour of each coin.
    pub fn last_hours(&self) -> BTreeMap<String, DateTime<Utc>> {
        self.coins
            .iter()
            .filter_map(|(coin, entry)| {
                let s = entry.series()?;
                let last = s.first_hour + s.len() as i64 - 1;
                DateTime::from_timestamp(last * 3600, 0).map(|t| (coin.clone(), t))
            })
            .collect()
    }
}

/// A coin's series for the champion (if it covers the coin) and the floor; one load when both
/// read the same columns.
fn load_coin(
    conn: &Connection,
    coin: &str,
    settings: &Settings,
    champion: &Option<Arc<ServingModel>>,
    floor: &Option<Arc<ServingModel>>,
    problems: &mut Vec<String>,
) -> ServedCoin {
    let mut load =
        |features: &[String]| match CoinSeries::load(conn, coin, &settings.vs_currency, features) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                problems.push(format!("{coin}: {e}"));
                None
            }
        };
    let champion_series = champion
        .as_ref()
        .filter(|m| m.covers(coin))
        .and_then(|m| load(&m.series_features));
    let floor_series = match (floor, &champion_series, champion) {
        (Some(f), Some(s), Some(c)) if f.series_features == c.series_features => Some(s.clone()),
        (Some(f), _, _) => load(&f.series_features),
        (None, _, _) => None,
    };
    ServedCoin {
        champion: champion_series,
        floor: floor_series,
    }
}
