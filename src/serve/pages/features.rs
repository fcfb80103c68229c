//! `/features?version=`: per dataset version (the training data of a registered model, or the
//! current data), a profile of every feature (count, nulls, min, max, mean, std, quartiles,
//! histogram) and the feature SQL that produced it. Profiles are cached (`ProfileCache`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use duckdb::{params, Connection};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::svg;
use super::{read, render, utc, Layout};
use crate::serve::error::{ApiError, ApiQuery};
use crate::serve::state::AppState;

#[derive(Debug, Deserialize)]
pub struct FeaturesQuery {
    /// A dataset version (sha256 prefix is enough); default: the current data.
    pub version: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatasetVersion {
    pub dataset_version: String,
    pub model_id: String,
    pub coins: String,
    pub trained_until: String,
    pub created: String,
    #[serde(skip)]
    until_epoch: i64,
}

#[derive(Debug, Serialize)]
pub struct FeatureProfile {
    pub feature: String,
    pub column_type: String,
    pub count: i64,
    pub null_percentage: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub std: f64,
    pub q25: f64,
    pub q50: f64,
    pub q75: f64,
    /// 20 equal-width bins over [min, max].
    pub histogram: Vec<i64>,
}

#[derive(Debug, Serialize)]
pub struct FeaturesPage {
    pub versions: Vec<DatasetVersion>,
    #[serde(flatten)]
    pub profiled: Arc<Profiled>,
    pub feature_sql: &'static str,
    /// On a replica: what its data holds, unlike the writer's.
    pub replica_note: Option<String>,
}

/// A profile of every feature over some coins' rows up to an hour.
#[derive(Debug, Serialize)]
pub struct Profiled {
    /// The profiled data: a dataset version, or `current`.
    pub selected: String,
    pub coins: String,
    pub until: String,
    /// When it was computed, and the served snapshot it was computed for (`current`).
    pub profiled_at: String,
    pub snapshot: u64,
    pub profile: Vec<FeatureProfile>,
    /// What the data looked like (`dash_features_fingerprint.sql`); empty for a dataset version.
    #[serde(skip)]
    fingerprint: String,
}

/// Profiles take seconds (two passes of aggregates over every feature and row), so each is
/// computed once: per dataset version (a model's training data never changes), and per change of
/// the current data, ahead of requests (`spawn_warmer`, after every publication whose data changed:
/// a publication after a promotion or a run that fetched nothing reuses it). Concurrent requests
/// for the same key share one computation, and a request for the current data gets the newest
/// profile there is while a newer one is computed.
#[derive(Default)]
pub struct ProfileCache {
    current: ArcSwapOption<Profiled>,
    /// One computation per key (`current@<fingerprint>` or a dataset version), newest first.
    flights: Mutex<VecDeque<(String, Flight)>>,
}

/// One profile's computation, shared by whoever asks for its key.
type Flight = Arc<OnceCell<Arc<Profiled>>>;

/// Keys remembered: a few dataset versions someone looked at, and the current data.
const CACHED_PROFILES: usize = 8;

impl ProfileCache {
    async fn current(&self, state: &Arc<AppState>) -> Result<Arc<Profiled>, ApiError> {
        match self.current.load_full() {
            Some(p) => Ok(p),
            None => self.refresh_current(state).await,
        }
    }

    /// Profiles the current data, unless the newest profile is of the same data.
    async fn refresh_current(&self, state: &Arc<AppState>) -> Result<Arc<Profiled>, ApiError> {
        let snapshot = state.runtime.snapshot().version;
        let fingerprint = read(state, |conn| {
            conn.query_row(
                include_str!("../../../sql/reports/dash_features_fingerprint.sql"),
                [],
                |r| r.get::<_, String>(0),
            )
        })
        .await?;
        if let Some(same) = self
            .current
            .load_full()
            .filter(|p| p.fingerprint == fingerprint)
        {
            return Ok(same);
        }
        let target = Target {
            selected: "current".into(),
            coins: state.runtime.settings().coins.join(","),
            until: chrono::Utc::now().timestamp(),
            snapshot,
            fingerprint: fingerprint.clone(),
        };
        let fresh = self
            .flight(format!("current@{fingerprint}"), state, target)
            .await?;
        // Never over a profile of a newer snapshot.
        self.current.rcu(|old| match old {
            Some(o) if o.snapshot > fresh.snapshot => Some(o.clone()),
            _ => Some(fresh.clone()),
        });
        Ok(fresh)
    }

    async fn flight(
        &self,
        key: String,
        state: &Arc<AppState>,
        target: Target,
    ) -> Result<Arc<Profiled>, ApiError> {
        let cell = {
            let mut flights = self
                .flights
                .lock()
                .map_err(|_| ApiError::internal("the profile cache is poisoned"))?;
            match flights.iter().position(|(k, _)| *k == key) {
                Some(i) => flights[i].1.clone(),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    flights.push_front((key, cell.clone()));
                    flights.truncate(CACHED_PROFILES);
                    cell
                }
            }
        };
        let state = state.clone();
        cell.get_or_try_init(|| async move { profile(&state, target).await.map(Arc::new) })
            .await
            .cloned()
    }
}

/// What a profile covers.
struct Target {
    selected: String,
    coins: String,
    until: i64,
    snapshot: u64,
    fingerprint: String,
}

/// Profiles the current data after each publication (and at start-up), so no reader waits.
pub fn spawn_warmer(state: Arc<AppState>) {
    let mut served = state.runtime.publisher().subscribe();
    // A weak reference between profiles: the warmer never keeps the state (and its database
    // connections) alive after the server.
    let state = Arc::downgrade(&state);
    tokio::spawn(async move {
        loop {
            {
                let Some(state) = state.upgrade() else {
                    return;
                };
                match state.profiles.refresh_current(&state).await {
                    // A server without a database of its own (tests of the API alone) has no
                    // pages.
                    Err(e) if e.code == "no_database" => return,
                    Err(e) => tracing::warn!("profiling the features: {}", e.message),
                    Ok(_) => {}
                }
            }
            if served.changed().await.is_err() {
                return;
            }
        }
    });
}

pub async fn load(state: &Arc<AppState>, q: FeaturesQuery) -> Result<FeaturesPage, ApiError> {
    let versions = read(state, dataset_versions).await?;
    let chosen = q
        .version
        .as_deref()
        .filter(|v| !v.is_empty() && *v != "current")
        .and_then(|v| versions.iter().find(|d| d.dataset_version.starts_with(v)));
    let profiled = match chosen {
        Some(d) => {
            let target = Target {
                selected: d.dataset_version.clone(),
                coins: d.coins.clone(),
                until: d.until_epoch,
                snapshot: state.runtime.snapshot().version,
                fingerprint: String::new(),
            };
            state
                .profiles
                .flight(d.dataset_version.clone(), state, target)
                .await?
        }
        None => state.profiles.current(state).await?,
    };
    let replica_note = state.runtime.snapshot().publication.as_ref().map(|p| {
        format!(
            "This replica serves the writer's publication {} ({}): its series from {} UTC, and only the feature columns the served models read (the others are empty here). The writer's page profiles every feature over all data.",
            p.version,
            p.writer,
            super::utc(p.series_from_hour * 3600)
        )
    });
    Ok(FeaturesPage {
        versions,
        profiled,
        feature_sql: include_str!("../../../sql/features/hourly.sql"),
        replica_note,
    })
}

fn dataset_versions(conn: &Connection) -> Result<Vec<DatasetVersion>, duckdb::Error> {
    let mut stmt = conn.prepare(include_str!(
        "../../../sql/reports/dash_dataset_versions.sql"
    ))?;
    let versions = stmt
        .query_map([], |r| {
            let until: i64 = r.get(3)?;
            Ok(DatasetVersion {
                dataset_version: r.get(0)?,
                model_id: r.get(1)?,
                coins: r.get(2)?,
                trained_until: utc(until),
                created: r.get(4)?,
                until_epoch: until,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(versions)
}

/// The profile's two reads, each bounded by the page timeout: the statistics, then the
/// histograms between the finite ranges.
async fn profile(state: &Arc<AppState>, target: Target) -> Result<Profiled, ApiError> {
    let (coins, until) = (target.coins.clone(), target.until);
    let profile = read(state, move |conn| statistics(conn, &coins, until)).await?;
    let (coins, until) = (target.coins.clone(), target.until);
    let histograms = read(state, move |conn| histograms(conn, &coins, until)).await?;
    let profile = profile
        .into_iter()
        .map(|mut f| {
            f.histogram = histograms.get(&f.feature).cloned().unwrap_or_default();
            f
        })
        .collect();
    Ok(Profiled {
        selected: target.selected,
        coins: target.coins,
        until: utc(target.until),
        profiled_at: chrono::Utc::now()
            .format("%Y-%m-%d %H:%M:%S%.3f UTC")
            .to_string(),
        snapshot: target.snapshot,
        profile,
        fingerprint: target.fingerprint,
    })
}

fn statistics(
    conn: &Connection,
    coins: &str,
    until: i64,
) -> Result<Vec<FeatureProfile>, duckdb::Error> {
    let number = |x: Option<f64>| x.unwrap_or(f64::NAN);
    let mut stmt = conn.prepare(include_str!(
        "../../../sql/reports/dash_feature_profile.sql"
    ))?;
    let profile = stmt
        .query_map(params![coins, until as f64], |r| {
            Ok(FeatureProfile {
                feature: r.get(0)?,
                column_type: r.get(1)?,
                min: number(r.get(2)?),
                max: number(r.get(3)?),
                mean: number(r.get(4)?),
                std: number(r.get(5)?),
                q25: number(r.get(6)?),
                q50: number(r.get(7)?),
                q75: number(r.get(8)?),
                count: r.get(9)?,
                null_percentage: number(r.get(10)?),
                histogram: Vec::new(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(profile)
}

fn histograms(
    conn: &Connection,
    coins: &str,
    until: i64,
) -> Result<BTreeMap<String, Vec<i64>>, duckdb::Error> {
    let mut histograms: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut stmt = conn.prepare(include_str!(
        "../../../sql/reports/dash_feature_histograms.sql"
    ))?;
    let until = until as f64;
    let rows = stmt.query_map(params![coins, until, coins, until], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i32>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (feature, bin, n) = row?;
        let bins = histograms.entry(feature).or_insert_with(|| vec![0; 20]);
        if let Some(b) = bins.get_mut(bin.clamp(0, 19) as usize) {
            *b += n;
        }
    }
    Ok(histograms)
}

#[derive(Template)]
#[template(path = "features.html")]
struct FeaturesHtml {
    layout: Layout,
    page: FeaturesPage,
}

impl FeaturesHtml {
    fn num(&self, x: &f64) -> String {
        svg::num(*x)
    }
    fn hist(&self, counts: &[i64]) -> String {
        svg::histogram(counts, 120.0, 24.0)
    }
}

pub async fn html(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<FeaturesQuery>,
) -> Result<Response, ApiError> {
    let page = load(&state, q).await?;
    Ok(render(&FeaturesHtml {
        layout: Layout::new("/features"),
        page,
    }))
}

pub async fn json(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<FeaturesQuery>,
) -> Result<Json<FeaturesPage>, ApiError> {
    Ok(Json(load(&state, q).await?))
}
