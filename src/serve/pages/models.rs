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
    let mut horizons: Vec<i64> = page.walk_forward.iter().map(|r| r.horizon).collect();
    horizons.dedup();
    horizons.retain(|h| [1, 3, 6, 12, 24].contains(h));
    Ok(render(&ModelsHtml {
        layout: Layout::new("/models"),
        page,
        curve,
        horizons,
        by_horizon,
    }))
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
