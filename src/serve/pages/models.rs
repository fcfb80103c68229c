//! `/models?model=`: the registry with aliases, the floor and the promotion history, experiments
//! with their params, and for one model the gate's verdict condition by condition (for every
//! candidate of its training run), its learning curve and the walk-forward table per horizon.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use duckdb::params;
use serde::{Deserialize, Serialize};

use super::svg::{self, Chart, Series};
use super::{age, pct, read, render, Layout};
use crate::model::registry::ModelRow;
use crate::serve::error::{ApiError, ApiQuery};
use crate::serve::state::AppState;

#[derive(Debug, Deserialize)]
pub struct ModelsQuery {
    pub model: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Experiment {
    pub run_id: i64,
    pub state: String,
    pub started: String,
    pub seconds: f64,
    pub params: String,
    pub device: String,
    pub dataset_version: String,
    pub model_id: String,
    pub error: String,
    /// `selection` (a training run) or `floor` (the floor before any training).
    pub family: String,
}

/// A gate condition with its numbers.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConditionRow {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// A candidate's verdict in the selected model's training run.
#[derive(Debug, Serialize, Deserialize)]
pub struct CandidateVerdict {
    pub candidate: String,
    pub passed: bool,
    pub conditions: Vec<ConditionRow>,
}

/// What the registry says about the selected model.
#[derive(Debug, Default, Serialize)]
pub struct Registration {
    pub model_type: String,
    pub floor: bool,
    pub trained_until: Option<String>,
    /// The run's decision in one sentence.
    pub summary: Option<String>,
    pub conditions: Vec<ConditionRow>,
    pub candidates: Vec<CandidateVerdict>,
}

#[derive(Debug, Serialize)]
pub struct ModelEvent {
    pub model_id: String,
    pub at: String,
    pub event: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct WalkForwardRow {
    pub model: String,
    pub horizon: i64,
    pub mae: f64,
    pub mape: f64,
    pub direction: f64,
    pub skill: f64,
    pub coverage: f64,
    pub width: f64,
    pub interval_score: f64,
    pub pinball: f64,
}

/// One coin's interval score at one horizon, for a forecaster of the walk-forward.
#[derive(Debug, Serialize)]
pub struct HorizonScore {
    pub coin_id: String,
    /// The selected model's forecaster, or `persistence` (constant width).
    pub model: String,
    pub horizon: i64,
    pub interval_score: f64,
}

/// A point of a reliability diagram: the nominal level against the share of outcomes covered.
#[derive(Debug, Serialize)]
pub struct ReliabilityPoint {
    pub level: f64,
    pub coverage: f64,
    pub n: i64,
}

#[derive(Debug, Serialize)]
pub struct CoinReliability {
    pub coin_id: String,
    /// The walk-forward's test outcomes, over every horizon.
    pub walk_forward: Vec<ReliabilityPoint>,
    /// The monitor's outcomes of the model's recipe as served, every hour, over every horizon
    /// (empty until its first outcomes arrive).
    pub live: Vec<ReliabilityPoint>,
}

/// A bin of the PIT histogram: outcomes whose conformal level (the smallest level whose
/// interval covers them) falls in [from, to). Calibrated intervals give a density near 1.
#[derive(Debug, Serialize)]
pub struct PitBin {
    pub from: f64,
    pub to: f64,
    pub count: i64,
    /// count / outcomes / (to - from).
    pub density: f64,
}

#[derive(Debug, Serialize)]
pub struct CoinPit {
    pub coin_id: String,
    pub bins: Vec<PitBin>,
}

#[derive(Debug, Serialize)]
pub struct ModelsPage {
    pub registry: Vec<ModelRow>,
    pub events: Vec<ModelEvent>,
    pub experiments: Vec<Experiment>,
    /// The model shown in detail: the one asked for, else the champion, else the newest.
    pub selected: Option<String>,
    /// (epoch, train loss, validation loss).
    pub learning_curve: Vec<(i64, f64, f64)>,
    pub walk_forward: Vec<WalkForwardRow>,
    /// Per coin and horizon: the selected model's interval score and persistence's with
    /// constant width, on the same walk-forward.
    pub interval_score_by_horizon: Vec<HorizonScore>,
    /// Per coin: nominal level against realized coverage in the walk-forward and live.
    pub reliability: Vec<CoinReliability>,
    /// Per coin: the PIT histogram's bins, from the calibrated grid of levels: [0, 0.50), then
    /// between consecutive tested levels, then [0.995, 1].
    pub pit: Vec<CoinPit>,
    pub registration: Registration,
}

fn f(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

pub async fn load(state: &Arc<AppState>, q: ModelsQuery) -> Result<ModelsPage, ApiError> {
    // The registry as of the last reload (after every run and promotion).
    let registry = state.runtime.snapshot().registry.clone();
    read(state, move |conn| {
        let mut stmt = conn.prepare(include_str!("../../../sql/reports/dash_model_events.sql"))?;
        let events = stmt
            .query_map([], |r| {
                Ok(ModelEvent {
                    model_id: r.get(0)?,
                    at: r.get(1)?,
                    event: r.get(2)?,
                    reason: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = conn.prepare(include_str!("../../../sql/reports/dash_experiments.sql"))?;
        let experiments = stmt
            .query_map([], |r| {
                Ok(Experiment {
                    run_id: r.get(0)?,
                    state: r.get(1)?,
                    started: r.get(2)?,
                    seconds: r.get(3)?,
                    params: r.get(4)?,
                    device: r.get(5)?,
                    dataset_version: r.get(6)?,
                    model_id: r.get(7)?,
                    error: r.get(8)?,
                    family: r.get(9)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let selected = q
            .model
            .filter(|m| registry.iter().any(|r| &r.model_id == m))
            .or_else(|| {
                registry
                    .iter()
                    .find(|r| r.alias.as_deref() == Some("champion"))
                    .map(|r| r.model_id.clone())
            })
            .or_else(|| registry.first().map(|r| r.model_id.clone()));
        let mut learning_curve: Vec<(i64, f64, f64)> = Vec::new();
        let mut walk_forward = Vec::new();
        let mut interval_score_by_horizon = Vec::new();
        let mut reliability_rows: Vec<LevelRow> = Vec::new();
        let mut live_rows: Vec<LevelRow> = Vec::new();
        let mut registration = Registration::default();
        if let Some(model_id) = &selected {
            let run_id = experiments
                .iter()
                .find(|e| e.model_id.split(", ").any(|m| m == model_id))
                .map(|e| e.run_id);
            if let Some(run_id) = run_id {
                let mut stmt =
                    conn.prepare(include_str!("../../../sql/reports/dash_learning_curve.sql"))?;
                let rows = stmt.query_map([run_id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, f64>(2)?,
                    ))
                })?;
                for row in rows {
                    let (step, name, value) = row?;
                    let i = match learning_curve.iter().position(|p| p.0 == step) {
                        Some(i) => i,
                        None => {
                            learning_curve.push((step, f64::NAN, f64::NAN));
                            learning_curve.len() - 1
                        }
                    };
                    if name == "train_loss" {
                        learning_curve[i].1 = value;
                    } else {
                        learning_curve[i].2 = value;
                    }
                }
            }
            let mut stmt =
                conn.prepare(include_str!("../../../sql/reports/dash_walk_forward.sql"))?;
            walk_forward = stmt
                .query_map([model_id], |r| {
                    Ok(WalkForwardRow {
                        model: r.get(0)?,
                        horizon: r.get(1)?,
                        mae: f(r.get(2)?),
                        mape: f(r.get(3)?),
                        direction: f(r.get(4)?),
                        skill: f(r.get(5)?),
                        coverage: f(r.get(6)?),
                        width: f(r.get(7)?),
                        interval_score: f(r.get(8)?),
                        pinball: f(r.get(9)?),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(family) = registry
                .iter()
                .find(|r| &r.model_id == model_id)
                .map(|r| r.family.clone())
            {
                let mut stmt = conn.prepare(include_str!(
                    "../../../sql/reports/dash_interval_score_by_horizon.sql"
                ))?;
                let mut reliability_stmt =
                    conn.prepare(include_str!("../../../sql/reports/dash_reliability.sql"))?;
                reliability_rows = reliability_stmt
                    .query_map(params![model_id, family], level_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                interval_score_by_horizon = stmt
                    .query_map(params![model_id, family], |r| {
                        Ok(HorizonScore {
                            coin_id: r.get(0)?,
                            model: r.get(1)?,
                            horizon: r.get(2)?,
                            interval_score: f(r.get(3)?),
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
            }
            live_rows = conn
                .prepare(include_str!(
                    "../../../sql/reports/dash_live_reliability.sql"
                ))?
                .query_map([model_id], level_row)?
                .collect::<Result<Vec<_>, _>>()?;
            registration = conn
                .query_row(
                    include_str!("../../../sql/reports/dash_model_verdict.sql"),
                    [model_id],
                    |r| {
                        Ok(registration_of(
                            r.get::<_, Option<String>>(0)?,
                            r.get::<_, Option<String>>(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                        ))
                    },
                )
                .unwrap_or_default();
        }
        Ok(ModelsPage {
            registry,
            events,
            experiments,
            selected,
            learning_curve,
            walk_forward,
            interval_score_by_horizon,
            reliability: reliability_of(&reliability_rows, &live_rows),
            pit: pit_of(&reliability_rows),
            registration,
        })
    })
    .await
}

/// Reads the verdict JSON of a registration and the run's candidate verdicts.
fn registration_of(
    verdict: Option<String>,
    candidates: Option<String>,
    model_type: String,
    floor: bool,
    trained_until: Option<String>,
) -> Registration {
    let verdict: serde_json::Value = verdict
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default();
    Registration {
        model_type,
        floor,
        trained_until,
        summary: verdict
            .get("summary")
            .and_then(|s| s.as_str())
            .map(str::to_string),
        conditions: verdict
            .get("conditions")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default(),
        candidates: candidates
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "models.html")]
struct ModelsHtml {
    layout: Layout,
    page: ModelsPage,
    curve: String,
    /// Horizons shown in the walk-forward table.
    horizons: Vec<i64>,
    /// Per coin: the interval score by horizon against persistence (SVG).
    by_horizon: Vec<(String, String)>,
    /// Per coin: the reliability diagram and the PIT histogram (SVG).
    calibration: Vec<(String, String, String)>,
}

impl ModelsHtml {
    fn num(&self, x: &f64) -> String {
        svg::num(*x)
    }
    fn opt(&self, x: &Option<f64>) -> String {
        x.map_or("–".into(), svg::num)
    }
    fn pct(&self, x: &f64) -> String {
        pct(*x)
    }
    fn age(&self, x: &f64) -> String {
        age(*x)
    }
    fn short<'a>(&self, s: &'a str) -> &'a str {
        s.get(..12).unwrap_or(s)
    }
    fn rows(&self, h: &i64) -> Vec<&WalkForwardRow> {
        self.page
            .walk_forward
            .iter()
            .filter(|r| r.horizon == *h)
            .collect()
    }
}

pub async fn html(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<ModelsQuery>,
) -> Result<Response, ApiError> {
    let page = load(&state, q).await?;
    let mut chart = Chart::new(560.0, 220.0, svg::plain_label);
    for (name, color, pick) in [
        ("train loss", svg::PALETTE[0], 1usize),
        ("validation loss", svg::PALETTE[1], 2usize),
    ] {
        chart.series.push(Series {
            name: name.into(),
            color,
            points: page
                .learning_curve
                .iter()
                .map(|p| (p.0 as f64, if pick == 1 { p.1 } else { p.2 }))
                .collect(),
            markers: false,
        });
    }
    let curve = chart.render(
        "no learning curve: only a network has one (a champion LSTM's training loss per epoch of its refit on all data)",
    );
    let by_horizon = horizon_charts(&page.interval_score_by_horizon);
    let calibration = calibration_charts(&page);
    let mut horizons: Vec<i64> = page.walk_forward.iter().map(|r| r.horizon).collect();
    horizons.dedup();
    horizons.retain(|h| [1, 3, 6, 12, 24].contains(h));
    Ok(render(&ModelsHtml {
        layout: Layout::new("/models"),
        page,
        curve,
        horizons,
        by_horizon,
        calibration,
    }))
}

/// A coin's walk-forward outcomes covered at one tested level.
struct LevelRow {
    coin_id: String,
    level: f64,
    covered: i64,
    n: i64,
}

/// Rows by coin, in level order (as the query sorts them).
fn by_coin(rows: &[LevelRow]) -> Vec<(&str, Vec<&LevelRow>)> {
    let mut out: Vec<(&str, Vec<&LevelRow>)> = Vec::new();
    for row in rows {
        match out.last_mut() {
            Some((coin, points)) if *coin == row.coin_id.as_str() => points.push(row),
            _ => out.push((row.coin_id.as_str(), vec![row])),
        }
    }
    out
}

fn level_row(r: &duckdb::Row<'_>) -> duckdb::Result<LevelRow> {
    Ok(LevelRow {
        coin_id: r.get(0)?,
        level: r.get(1)?,
        covered: r.get(2)?,
        n: r.get(3)?,
    })
}

/// Per coin of either source, its walk-forward and live diagrams.
fn reliability_of(walk_forward: &[LevelRow], live: &[LevelRow]) -> Vec<CoinReliability> {
    let points = |rows: &[&LevelRow]| -> Vec<ReliabilityPoint> {
        rows.iter()
            .map(|p| ReliabilityPoint {
                level: p.level,
                coverage: if p.n > 0 {
                    p.covered as f64 / p.n as f64
                } else {
                    f64::NAN
                },
                n: p.n,
            })
            .collect()
    };
    let (walk_forward, live) = (by_coin(walk_forward), by_coin(live));
    let mut coins: Vec<&str> = walk_forward.iter().chain(&live).map(|(c, _)| *c).collect();
    coins.sort_unstable();
    coins.dedup();
    let of = |source: &[(&str, Vec<&LevelRow>)], coin: &str| {
        source
            .iter()
            .find(|(c, _)| *c == coin)
            .map_or_else(Vec::new, |(_, rows)| points(rows))
    };
    coins
        .into_iter()
        .map(|coin| CoinReliability {
            coin_id: coin.to_string(),
            walk_forward: of(&walk_forward, coin),
            live: of(&live, coin),
        })
        .collect()
}

/// The PIT bins from coverage at consecutive levels: an outcome covered at level b but not at
/// a lies in [a, b).
fn pit_of(rows: &[LevelRow]) -> Vec<CoinPit> {
    by_coin(rows)
        .into_iter()
        .map(|(coin, points)| {
            let n = points.first().map_or(0, |p| p.n);
            let mut edges: Vec<(f64, i64)> = vec![(0.0, 0)];
            edges.extend(points.iter().map(|p| (p.level, p.covered)));
            edges.push((1.0, n));
            let bins = edges
                .windows(2)
                .map(|w| {
                    let (from, below) = w[0];
                    let (to, upto) = w[1];
                    let count = (upto - below).max(0);
                    let density = if n > 0 && to > from {
                        count as f64 / n as f64 / (to - from)
                    } else {
                        f64::NAN
                    };
                    PitBin {
                        from,
                        to,
                        count,
                        density,
                    }
                })
                .collect();
            CoinPit {
                coin_id: coin.to_string(),
                bins,
            }
        })
        .collect()
}

/// Per coin: the reliability diagram (nominal level against realized coverage, with the
/// diagonal) and the PIT histogram (density per bin, 1 when calibrated), as SVG.
fn calibration_charts(page: &ModelsPage) -> Vec<(String, String, String)> {
    page.reliability
        .iter()
        .map(|r| {
            let mut chart = Chart::new(380.0, 220.0, svg::percent_label);
            chart.series.push(Series {
                name: "walk-forward".into(),
                color: svg::PALETTE[0],
                points: r
                    .walk_forward
                    .iter()
                    .map(|p| (p.level, p.coverage))
                    .collect(),
                markers: true,
            });
            if !r.live.is_empty() {
                let outcomes = r.live.first().map_or(0, |p| p.n);
                chart.series.push(Series {
                    name: format!("live ({outcomes} outcomes)"),
                    color: svg::PALETTE[1],
                    points: r.live.iter().map(|p| (p.level, p.coverage)).collect(),
                    markers: true,
                });
            }
            let levels = if r.walk_forward.is_empty() {
                &r.live
            } else {
                &r.walk_forward
            };
            chart.series.push(Series {
                name: "calibrated".into(),
                color: svg::PALETTE[7],
                points: levels.iter().map(|p| (p.level, p.level)).collect(),
                markers: false,
            });
            let diagram = chart.render("no reliability rows");
            let bins: Vec<(String, f64)> = page
                .pit
                .iter()
                .find(|p| p.coin_id == r.coin_id)
                .map(|p| {
                    p.bins
                        .iter()
                        .map(|b| {
                            (
                                format!("{:.1}-{:.1}%", b.from * 100.0, b.to * 100.0),
                                b.density,
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let pit = svg::bars(&bins, 380.0, Some(1.0), "no PIT bins");
            (r.coin_id.clone(), diagram, pit)
        })
        .collect()
}

/// Per coin, the interval score at each horizon: the model's forecaster against persistence
/// with constant width (SVG).
fn horizon_charts(scores: &[HorizonScore]) -> Vec<(String, String)> {
    let mut coins: Vec<&str> = scores.iter().map(|s| s.coin_id.as_str()).collect();
    coins.dedup();
    coins
        .into_iter()
        .map(|coin| {
            let mut chart = Chart::new(360.0, 180.0, svg::plain_label);
            let mut models: Vec<&str> = scores
                .iter()
                .filter(|s| s.coin_id == coin)
                .map(|s| s.model.as_str())
                .collect();
            models.sort_unstable();
            models.dedup();
            for (i, model) in models.iter().enumerate() {
                chart.series.push(Series {
                    name: if *model == "persistence" {
                        "persistence, constant width".into()
                    } else {
                        (*model).to_string()
                    },
                    color: svg::PALETTE[if *model == "persistence" { 7 } else { i % 4 }],
                    points: scores
                        .iter()
                        .filter(|s| s.coin_id == coin && s.model == *model)
                        .map(|s| (s.horizon as f64, s.interval_score))
                        .collect(),
                    markers: true,
                });
            }
            (
                coin.to_string(),
                chart.render("no walk-forward rows for this coin"),
            )
        })
        .collect()
}

pub async fn json(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<ModelsQuery>,
) -> Result<Json<ModelsPage>, ApiError> {
    Ok(Json(load(&state, q).await?))
}
