//! Online coverage control: adaptive conformal inference (Gibbs & Candès 2021) on the served
//! models' live intervals. Each pipeline run, for the champion and the floor, every coin and
//! every horizon: the model's forecast from each new origin whose target hour has arrived (the
//! forecast `/predict` gave, or would have given, that hour) is checked against the actual
//! price, and the miss rate aimed at moves by γ·(α − miss) (`forecast::Aci`, bounded). Intervals
//! are then drawn at the conformal level 1 − α_t, so coverage returns to nominal when the world
//! shifts. It does not depend on which requests clients happened to make.
//!
//! The rule, which the walk-forward replays exactly (`model/evaluate/served.rs`, `aci_scored`):
//! - the state belongs to the recipe (`model_recipe_keys`), not the version: a refit of the same
//!   recipe goes on from the level the recipe reached, and a new recipe starts at nominal;
//! - a version judges only origins after its training (`trained_until_hour`), so the outcomes of
//!   origins still in flight when a refit takes over move nothing;
//! - each outcome is judged at the level in force when it is known (the state does not keep the
//!   level of every past hour); with γ/h per outcome the two differ by at most γ.

use std::collections::BTreeMap;
use std::path::Path;

use duckdb::{params, Connection};
use serde::Serialize;

use super::MonitorError;
use crate::model::dataset::CoinSeries;
use crate::model::evaluate::RELIABILITY_LEVELS;
use crate::model::forecast::{Aci, Calibration, Levels};
use crate::model::registry::ModelRow;
use crate::model::served::ServedModel;

/// Hours back an update looks at most (a model registered long ago, or the first run after an
/// upgrade, does not replay its whole history).
pub const MAX_CATCH_UP_HOURS: i64 = 720;

/// The stored state of one coin and horizon.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AciRow {
    pub coin_id: String,
    pub horizon: usize,
    pub alpha: f64,
    pub updates: i64,
    pub misses: i64,
    /// The newest target hour taken into account.
    pub last_target_hour: Option<i64>,
    pub updated: String,
}

impl AciRow {
    /// The level intervals are drawn at.
    pub fn level(&self) -> f64 {
        1.0 - self.alpha
    }
}

/// The ACI state a model's intervals are drawn with (its recipe's), per coin and horizon.
pub fn load_state(conn: &Connection, model_id: &str) -> Result<Vec<AciRow>, duckdb::Error> {
    let mut stmt = conn.prepare(include_str!("../../sql/monitor/aci_state.sql"))?;
    let rows = stmt.query_map([model_id], |r| {
        Ok(AciRow {
            coin_id: r.get(0)?,
            horizon: r.get::<_, i32>(1)?.max(1) as usize,
            alpha: r.get(2)?,
            updates: r.get(3)?,
            misses: r.get(4)?,
            last_target_hour: r.get(5)?,
            updated: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
        })
    })?;
    rows.collect()
}

/// Per coin: the level of each horizon (1-based horizons at index h − 1; nominal where a
/// horizon has no state yet).
pub fn levels(rows: &[AciRow], horizon: usize, nominal: f64) -> BTreeMap<String, Vec<f64>> {
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in rows {
        let levels = out
            .entry(r.coin_id.clone())
            .or_insert_with(|| vec![nominal; horizon]);
        if let Some(l) = levels.get_mut(r.horizon - 1) {
            *l = r.level();
        }
    }
    out
}

/// What one update did for one model.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CoverageUpdate {
    pub model_id: String,
    /// Outcomes checked, and of them outside their interval.
    pub scored: usize,
    pub missed: usize,
    /// The largest distance of any coin's horizon from the nominal miss rate, after the update.
    pub max_alpha_shift: f64,
}

/// A coin's new outcomes at each of [`RELIABILITY_LEVELS`], over every horizon: inside the
/// interval the version's calibration draws at that level (the live reliability diagram).
struct LevelCounts {
    covered: [i64; RELIABILITY_LEVELS.len()],
    outcomes: i64,
}

impl LevelCounts {
    fn new() -> Self {
        Self {
            covered: [0; RELIABILITY_LEVELS.len()],
            outcomes: 0,
        }
    }

    /// One outcome with conformity score `score` at horizon `h` (0-based).
    fn add(&mut self, calibration: &Calibration, coin: &str, h: usize, score: f64) {
        if !score.is_finite() {
            return;
        }
        self.outcomes += 1;
        for (covered, &level) in self.covered.iter_mut().zip(&RELIABILITY_LEVELS) {
            *covered += i64::from(score <= calibration.quantile(coin, h, level));
        }
    }
}

/// Per (coin, horizon) while an update runs.
struct Tracker {
    aci: Aci,
    alpha_from: f64,
    updates: i64,
    misses: i64,
    last_target_hour: Option<i64>,
    scored: i32,
    missed: i32,
}

/// Moves the model's ACI state with every outcome that arrived since the last update, and logs
/// each move under `run_id`.
pub fn update(
    conn: &Connection,
    data_dir: &Path,
    row: &ModelRow,
    coins: &[String],
    vs_currency: &str,
    run_id: i64,
) -> Result<CoverageUpdate, MonitorError> {
    let model = ServedModel::load(&row.artifact_dir(data_dir), tch::Device::Cpu)?;
    let calibration = model.calibration();
    let (nominal, gamma, horizon) = (calibration.level, calibration.aci_gamma, model.horizon());
    let state: BTreeMap<(String, usize), AciRow> = load_state(conn, &row.model_id)?
        .into_iter()
        .map(|r| ((r.coin_id.clone(), r.horizon), r))
        .collect();
    let mut report = CoverageUpdate {
        model_id: row.model_id.clone(),
        ..Default::default()
    };
    let features = model.input_features();
    for coin in coins {
        if !model.forecasts_any_coin() && !model.coins().contains(coin) {
            continue;
        }
        let series = match CoinSeries::load(conn, coin, vs_currency, &features) {
            Ok(s) => s,
            Err(crate::model::ModelError::NoData(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut trackers: Vec<Tracker> = (1..=horizon)
            .map(|h| {
                let stored = state.get(&(coin.clone(), h));
                let mut aci = Aci::for_horizon(nominal, gamma, h);
                if let Some(s) = stored {
                    aci.alpha = s.alpha;
                }
                Tracker {
                    alpha_from: aci.alpha,
                    aci,
                    updates: stored.map_or(0, |s| s.updates),
                    misses: stored.map_or(0, |s| s.misses),
                    last_target_hour: stored.and_then(|s| s.last_target_hour),
                    scored: 0,
                    missed: 0,
                }
            })
            .collect();
        let mut levels = LevelCounts::new();
        check_new_outcomes(&model, &series, &mut trackers, &mut levels);
        for (h, t) in trackers.iter().enumerate() {
            if t.scored == 0 {
                continue;
            }
            report.scored += t.scored as usize;
            report.missed += t.missed as usize;
            let last = t.last_target_hour.unwrap_or(0) * 3600;
            conn.execute(
                include_str!("../../sql/monitor/aci_upsert.sql"),
                params![
                    t.aci.alpha,
                    t.updates,
                    t.misses,
                    coin,
                    (h + 1) as i32,
                    last as f64,
                    row.model_id
                ],
            )?;
            conn.execute(
                include_str!("../../sql/monitor/aci_log.sql"),
                params![
                    run_id,
                    row.model_id,
                    coin,
                    (h + 1) as i32,
                    t.alpha_from,
                    t.aci.alpha,
                    t.scored,
                    t.missed
                ],
            )?;
        }
        for t in &trackers {
            report.max_alpha_shift = report
                .max_alpha_shift
                .max((t.aci.alpha - t.aci.target).abs());
        }
        if levels.outcomes > 0 {
            for (covered, level) in levels.covered.iter().zip(RELIABILITY_LEVELS) {
                conn.execute(
                    include_str!("../../sql/monitor/live_reliability_add.sql"),
                    params![covered, levels.outcomes, coin, level, row.model_id],
                )?;
            }
        }
    }
    Ok(report)
}

/// Forecasts from every origin after the model's training (at most [`MAX_CATCH_UP_HOURS`] back)
/// whose target has arrived and was not yet taken into account, at the levels in force, and
/// feeds each outcome to its horizon's tracker and to the coin's reliability counts.
fn check_new_outcomes(
    model: &ServedModel,
    s: &CoinSeries,
    trackers: &mut [Tracker],
    reliability: &mut LevelCounts,
) {
    let trained_until_hour = model.trained_until_hour();
    let calibration = model.calibration();
    let newest = s.first_hour + s.last_index() as i64;
    let first_origin = trackers
        .iter()
        .enumerate()
        .map(|(h, t)| t.last_target_hour.map_or(i64::MIN, |last| last - h as i64))
        .min()
        .unwrap_or(i64::MIN)
        .max(trained_until_hour + 1)
        .max(newest - MAX_CATCH_UP_HOURS)
        .max(s.first_hour);
    for origin in first_origin..newest {
        let i = (origin - s.first_hour) as usize;
        let levels: Vec<f64> = trackers.iter().map(|t| t.aci.level()).collect();
        let Ok(forecast) = model.forecast_origin(s, i, Levels::PerHorizon(&levels)) else {
            continue;
        };
        for (h, t) in trackers.iter_mut().enumerate() {
            let target = origin + h as i64 + 1;
            let due = target <= newest && t.last_target_hour.is_none_or(|last| target > last);
            let actual = s.price.get(i + h + 1).copied().unwrap_or(f64::NAN);
            let Some(f) = forecast.horizons.get(h) else {
                continue;
            };
            if !due || !actual.is_finite() || !f.lower.is_finite() || !f.upper.is_finite() {
                continue;
            }
            let missed = !(f.lower..=f.upper).contains(&actual);
            reliability.add(
                calibration,
                &s.coin_id,
                h,
                f.anchor.score(s.target(i, h + 1)),
            );
            t.aci.update(missed);
            t.updates += 1;
            t.misses += i64::from(missed);
            t.scored += 1;
            t.missed += i32::from(missed);
            t.last_target_hour = Some(target);
        }
    }
}
