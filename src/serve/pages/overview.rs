//! `/`: per coin the last price and its age, the champion's next-hour and next-day forecast with
//! its interval, live accuracy; the last run of each job; active alerts (the alert rules'
//! conditions evaluated now, without their `for` durations).

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use chrono::Utc;
use duckdb::{Connection, OptionalExt};
use serde::Serialize;

use super::svg::{self, Chart, Series};
use super::{age, pct, read, render, utc, Layout};
use crate::failure::Failure;
use crate::monitor::LiveAccuracy;
use crate::runtime::answer::Answerer;
use crate::serve::error::ApiError;
use crate::serve::predict::infer;
use crate::serve::state::AppState;

#[derive(Debug, Serialize)]
pub struct ForecastCell {
    pub hours_ahead: usize,
    pub target: String,
    pub price: f64,
    pub lower: f64,
    pub upper: f64,
}

#[derive(Debug, Serialize)]
pub struct CoinCard {
    pub coin_id: String,
    /// Which forecaster answered for it, and in which role (champion or floor).
    pub model_type: Option<String>,
    pub served_by: Option<String>,
    pub last_price: f64,
    pub last_hour: String,
    pub age_seconds: f64,
    pub stale: bool,
    pub forecasts: Vec<ForecastCell>,
    pub live: Vec<LiveAccuracy>,
    #[serde(skip)]
    pub sparkline: String,
}

#[derive(Debug, Serialize)]
pub struct RunRow {
    pub run_id: i64,
    pub job: String,
    pub trigger: String,
    pub state: String,
    pub started: String,
    pub seconds: f64,
    pub error: Option<String>,
    /// The kind of failure that ended it (`crate::failure::Failure`'s name), and what it means.
    pub failure: Option<String>,
    pub failure_words: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct Alert {
    pub alert: &'static str,
    pub severity: &'static str,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct OverviewPage {
    pub champion: Option<String>,
    /// The champion's kind (`persistence_ewma`, `lstm` ...) and why it is champion.
    pub champion_type: Option<String>,
    pub champion_why: Option<String>,
    /// The floor: serves coins the champion does not cover, and everything without a champion.
    pub floor: Option<String>,
    /// The month's CoinGecko calls against the plan's budget.
    pub api_usage: Option<crate::ingest::budget::Usage>,
    pub model_age_seconds: Option<f64>,
    pub coins: Vec<CoinCard>,
    pub last_runs: Vec<RunRow>,
    pub alerts: Vec<Alert>,
    pub problems: Vec<String>,
}

pub fn runs(conn: &Connection, limit: i64) -> Result<Vec<RunRow>, duckdb::Error> {
    let mut stmt = conn.prepare(include_str!("../../../sql/reports/dash_runs.sql"))?;
    let rows = stmt.query_map([limit], |r| {
        Ok(RunRow {
            run_id: r.get(0)?,
            job: r
                .get::<_, Option<String>>(1)?
                .unwrap_or_else(|| "ingest".into()),
            trigger: r.get(2)?,
            state: r.get(3)?,
            started: utc(r.get(4)?),
            seconds: r.get(5)?,
            error: r.get(6)?,
            failure_words: r
                .get::<_, Option<String>>(7)?
                .as_deref()
                .and_then(Failure::from_name)
                .map(Failure::words),
            failure: r.get(7)?,
        })
    })?;
    rows.collect()
}

pub async fn load(state: &Arc<AppState>) -> Result<OverviewPage, ApiError> {
    let snap = state.runtime.snapshot();
    let now = Utc::now();
    let mut coins = Vec::new();
    for (coin, entry) in &snap.coins {
        let Some(series) = entry.series() else {
            continue;
        };
        let last = series.len().saturating_sub(1);
        let last_hour = series.first_hour + last as i64;
        let age_seconds = (now.timestamp() - last_hour * 3600) as f64;
        let mut forecasts = Vec::new();
        let (mut model_type, mut served_by) = (None, None);
        let answerers: Vec<Answerer> = snap
            .answerers(coin)
            .into_iter()
            .map(|(model, series, by)| Answerer { model, series, by })
            .collect();
        if !answerers.is_empty() {
            if let Ok((f, who)) = infer(answerers, |m, s| m.forecast_latest(s)).await {
                model_type = Some(who.model.family.clone());
                served_by = Some(who.by.name().to_string());
                for h in [1usize, 24] {
                    if let Some(x) = f.horizons.get(h - 1) {
                        forecasts.push(ForecastCell {
                            hours_ahead: h,
                            target: utc((f.as_of_hour + h as i64) * 3600),
                            price: x.price,
                            lower: x.lower,
                            upper: x.upper,
                        });
                    }
                }
            }
        }
        // The last 7 days, gaps as gaps.
        let from = last.saturating_sub(7 * 24);
        let mut chart = Chart::new(260.0, 90.0, svg::hour_label);
        chart.series.push(Series {
            name: coin.clone(),
            color: svg::PALETTE[0],
            points: (from..=last)
                .map(|i| {
                    (
                        ((series.first_hour + i as i64) * 3600) as f64,
                        series.price[i],
                    )
                })
                .collect(),
            markers: false,
        });
        coins.push(CoinCard {
            coin_id: coin.clone(),
            model_type,
            served_by,
            last_price: series.price.get(last).copied().unwrap_or(f64::NAN),
            last_hour: utc(last_hour * 3600),
            age_seconds,
            stale: age_seconds > state.runtime.settings().serve.max_data_age_hours as f64 * 3600.0,
            forecasts,
            live: snap
                .live_accuracy
                .iter()
                .filter(|a| &a.coin_id == coin)
                .cloned()
                .collect(),
            sparkline: chart.render("no prices yet"),
        });
    }
    let champion_id = snap.champion.as_ref().map(|c| c.model_id.clone());
    let (last_runs, failed_3h, promoted_why) = read(state, move |conn| {
        let mut last: Vec<RunRow> = Vec::new();
        for r in runs(conn, 50)? {
            if !last.iter().any(|x| x.job == r.job) {
                last.push(r);
            }
        }
        let failed: i64 = conn.query_row(
            include_str!("../../../sql/reports/dash_failed_runs.sql"),
            [],
            |r| r.get(0),
        )?;
        // Why the champion is champion: the reason of its latest promotion (the gate's
        // summary, or a manual promotion) or restoration (a rollback).
        let why: Option<String> = match &champion_id {
            Some(id) => conn
                .query_row(
                    "SELECT reason FROM model_events
                     WHERE model_id = ? AND event IN ('promoted', 'restored')
                     ORDER BY event_at DESC LIMIT 1",
                    [id],
                    |r| r.get(0),
                )
                .optional()?,
            None => None,
        };
        Ok((last, failed, why))
    })
    .await?;

    let mut alerts = Vec::new();
    let model_age_seconds = snap
        .serving()
        .map(|m| (now.timestamp() - m.trained_until_hour * 3600) as f64);
    match snap.serving() {
        None => alerts.push(Alert {
            alert: "ModelUnhealthy",
            severity: "critical",
            message: "no model is serving: /predict answers 503 until a coin has a day of data (the floor) or `coincast train` selects a champion"
                .into(),
        }),
        Some(m) => {
            let drift = state
                .runtime
                .metrics()
                .data_drift_ratio
                .with_label_values(&[&m.family])
                .get();
            if drift > 0.3 {
                alerts.push(Alert {
                    alert: "DataDriftDetected",
                    severity: "warning",
                    message: format!(
                        "{} of the {} inputs are outside their training range",
                        pct(drift),
                        m.family
                    ),
                });
            }
        }
    }
    let serve = &state.runtime.settings().serve;
    let reading_guarded = state
        .runtime
        .access()
        .tokens()
        .guards(crate::access::Scope::Read);
    if !reading_guarded && !serve.binds_loopback_only() {
        alerts.push(Alert {
            alert: "OpenToReaders",
            severity: "warning",
            message: format!(
                "serving on {} without serve.read_token or serve.tokens_file: anyone who can reach this port can read the forecasts, pages and data",
                serve.bind
            ),
        });
    }
    // The floor is refit on every run; only a champion can be too old.
    let champion_age_seconds = snap
        .champion
        .as_deref()
        .map(|m| (now.timestamp() - m.trained_until_hour * 3600) as f64);
    if champion_age_seconds.is_some_and(|a| a > 30.0 * 86400.0) {
        alerts.push(Alert {
            alert: "ModelExpired",
            severity: "info",
            message: "the champion was trained on data older than 30 days: retrain".into(),
        });
    }
    for c in coins.iter().filter(|c| c.age_seconds > 3.0 * 3600.0) {
        alerts.push(Alert {
            alert: "DataStale",
            severity: "warning",
            message: format!(
                "{}: newest stored hour is {} old",
                c.coin_id,
                age(c.age_seconds)
            ),
        });
    }
    if let Some(w) = snap.api_usage.as_ref().and_then(|u| u.warning()) {
        alerts.push(Alert {
            alert: "ApiBudget",
            severity: "warning",
            message: format!("{w}; raise coingecko.fetch_every_hours or follow fewer coins"),
        });
    }
    for i in &snap.incidents {
        alerts.push(Alert {
            alert: "StoreIncident",
            severity: "critical",
            message: format!(
                "{}. The next successful ingest fetches every coin again from its newest kept hour (replayed data: run `coincast replay` again); README, \"Incidents\", says what to do with the kept file",
                i.summary()
            ),
        });
    }
    if failed_3h >= 2 {
        alerts.push(Alert {
            alert: "PipelineFailing",
            severity: "warning",
            message: format!("{failed_3h} failed runs in the last 3 hours: see the Pipeline page"),
        });
    }
    for f in snap.psi.iter().filter(|f| f.psi > 0.25) {
        alerts.push(Alert {
            alert: "FeatureDrift",
            severity: "info",
            message: format!(
                "input {} has shifted (PSI {:.2} over the last 24 h vs training)",
                f.feature, f.psi
            ),
        });
    }
    for a in snap
        .live_accuracy
        .iter()
        .filter(|a| a.window == "7d" && a.forecasts >= 50 && a.coverage < 0.75)
    {
        alerts.push(Alert {
            alert: "IntervalCoverageLow",
            severity: "warning",
            message: format!(
                "{}: only {} of actuals inside the intervals over 7 days",
                a.coin_id,
                pct(a.coverage)
            ),
        });
    }
    let history = super::monitoring::rates(state, 300.0);
    if let Some(r) = history {
        if r.error_rate > 0.1 {
            alerts.push(Alert {
                alert: "HighErrorRate",
                severity: "warning",
                message: format!("{:.2} failed requests/s over 5 minutes", r.error_rate),
            });
        }
        if r.p95 > 0.5 {
            alerts.push(Alert {
                alert: "HighPredictionLatency",
                severity: "warning",
                message: format!("request P95 latency {:.3} s over 5 minutes", r.p95),
            });
        }
    }
    Ok(OverviewPage {
        champion: snap.champion.as_ref().map(|m| m.model_id.clone()),
        champion_type: snap.champion.as_ref().map(|m| m.family.clone()),
        champion_why: promoted_why,
        floor: snap
            .floor
            .as_ref()
            .map(|m| format!("{} ({})", m.model_id, m.family)),
        api_usage: snap.api_usage.clone(),
        model_age_seconds,
        coins,
        last_runs,
        alerts,
        problems: snap.problems.clone(),
    })
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewHtml {
    layout: Layout,
    page: OverviewPage,
}

impl OverviewHtml {
    fn num(&self, x: &f64) -> String {
        svg::num(*x)
    }
    fn pct(&self, x: &f64) -> String {
        pct(*x)
    }
    fn age(&self, x: &f64) -> String {
        age(*x)
    }
}

pub async fn html(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let page = load(&state).await?;
    Ok(render(&OverviewHtml {
        layout: Layout::new("/"),
        page,
    }))
}

pub async fn json(State(state): State<Arc<AppState>>) -> Result<Json<OverviewPage>, ApiError> {
    Ok(Json(load(&state).await?))
}
