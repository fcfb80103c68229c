//! `/monitoring`: request rate, errors, latency quantiles and prediction rate over the last hour
//! (sampled in-process from the Prometheus registry every 15 s, so the page needs no Prometheus),
//! drift ratio, model health, PSI per feature and its history, and live error and interval
//! coverage per day.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::Serialize;

use super::svg::{self, Chart, Series};
use super::{pct, read, render, Layout};
use crate::monitor::FeaturePsi;
use crate::serve::error::ApiError;
use crate::serve::history::{Rates, SAMPLE_EVERY};
use crate::serve::state::AppState;

/// Rates over the last `window` seconds, when the history reaches that far back (or nearly).
pub fn rates(state: &AppState, window: f64) -> Option<Rates> {
    state.history.rates(window)
}

/// Starts sampling the registry for the monitoring page (a task on the server's runtime).
pub fn spawn_sampler(state: Arc<AppState>) {
    // A weak reference: the sampler ends with the server, and never keeps the state (and its
    // database connections) alive after it.
    let state = Arc::downgrade(&state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tick.tick().await;
            let Some(state) = state.upgrade() else {
                return;
            };
            state.history.sample(state.runtime.metrics());
        }
    });
}

#[derive(Debug, Serialize)]
pub struct LiveDay {
    pub coin_id: String,
    pub day: i64,
    pub forecasts: i64,
    pub mape: f64,
    pub coverage: f64,
    pub direction: f64,
}

#[derive(Debug, Serialize)]
pub struct MonitoringPage {
    pub model_type: Option<String>,
    pub model_healthy: bool,
    pub drift_ratio: Option<f64>,
    /// Per 15-second interval over the last hour.
    pub rates: Vec<Rates>,
    pub psi: Vec<FeaturePsi>,
    /// (feature, epoch seconds, psi) per pipeline run.
    pub psi_history: Vec<(String, i64, f64)>,
    pub live_daily: Vec<LiveDay>,
    /// Online coverage control of the champion and the floor: one row per coin and horizon.
    pub coverage: Vec<CoverageRow>,
    /// (coin, epoch seconds, level of the 1-hour interval) after each update of the serving
    /// model.
    pub coverage_history: Vec<(String, i64, f64)>,
}

/// Where ACI stands for one served model's coin and horizon.
#[derive(Debug, Serialize)]
pub struct CoverageRow {
    pub role: &'static str,
    pub model_id: String,
    pub coin_id: String,
    pub horizon: usize,
    /// The level intervals are drawn at now, and the nominal one.
    pub level: f64,
    pub nominal: f64,
    /// Outcomes checked, and the share outside their interval.
    pub updates: i64,
    pub miss_rate: f64,
    pub updated: String,
}

/// The horizons the page shows (the JSON has all).
const COVERAGE_HORIZONS: [usize; 4] = [1, 6, 12, 24];

pub async fn load(state: &Arc<AppState>) -> Result<MonitoringPage, ApiError> {
    let snap = state.runtime.snapshot();
    let rates = state.history.series();
    let model_id = snap.serving().map(|m| m.model_id.clone());
    let (psi_history, coverage_history, live_daily) = read(state, move |conn| {
        let (mut psi_history, mut coverage_history) = (Vec::new(), Vec::new());
        if let Some(id) = model_id {
            let mut stmt =
                conn.prepare(include_str!("../../../sql/reports/dash_psi_history.sql"))?;
            psi_history = stmt
                .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut stmt =
                conn.prepare(include_str!("../../../sql/reports/dash_aci_history.sql"))?;
            coverage_history = stmt
                .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
        }
        let mut stmt = conn.prepare(include_str!("../../../sql/reports/dash_live_daily.sql"))?;
        let live = stmt
            .query_map([], |r| {
                Ok(LiveDay {
                    coin_id: r.get(0)?,
                    day: r.get(1)?,
                    forecasts: r.get(2)?,
                    mape: r.get::<_, Option<f64>>(3)?.unwrap_or(f64::NAN),
                    coverage: r.get::<_, Option<f64>>(4)?.unwrap_or(f64::NAN),
                    direction: r.get::<_, Option<f64>>(5)?.unwrap_or(f64::NAN),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((psi_history, coverage_history, live))
    })
    .await?;
    let mut coverage = Vec::new();
    for (role, model) in [("champion", &snap.champion), ("floor", &snap.floor)] {
        let Some(m) = model else { continue };
        if role == "floor"
            && snap
                .champion
                .as_ref()
                .is_some_and(|c| c.model_id == m.model_id)
        {
            continue;
        }
        coverage.extend(m.aci.iter().map(|a| CoverageRow {
            role,
            model_id: m.model_id.clone(),
            coin_id: a.coin_id.clone(),
            horizon: a.horizon,
            level: a.level(),
            nominal: m.interval_level,
            updates: a.updates,
            miss_rate: a.misses as f64 / a.updates.max(1) as f64,
            updated: a.updated.clone(),
        }));
    }
    let model_type = snap.serving().map(|m| m.family.clone());
    Ok(MonitoringPage {
        drift_ratio: model_type.as_ref().map(|f| {
            state
                .runtime
                .metrics()
                .data_drift_ratio
                .with_label_values(&[f.as_str()])
                .get()
        }),
        model_healthy: snap.serving().is_some(),
        model_type,
        rates,
        psi: snap.psi.clone(),
        psi_history,
        live_daily,
        coverage,
        coverage_history,
    })
}

#[derive(Template)]
#[template(path = "monitoring.html")]
struct MonitoringHtml {
    layout: Layout,
    page: MonitoringPage,
    traffic: String,
    latency: String,
    psi_bars: String,
    psi_history: String,
    live: String,
    coverage_history: String,
}

impl MonitoringHtml {
    fn pct(&self, x: &f64) -> String {
        pct(*x)
    }

    /// The rows the table shows.
    fn coverage_rows(&self) -> Vec<&CoverageRow> {
        self.page
            .coverage
            .iter()
            .filter(|r| COVERAGE_HORIZONS.contains(&r.horizon))
            .collect()
    }
}

pub async fn html(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let page = load(&state).await?;
    let line = |name: &str, color, pick: fn(&Rates) -> f64| Series {
        name: name.into(),
        color,
        points: page.rates.iter().map(|r| (r.t, pick(r))).collect(),
        markers: false,
    };
    let mut traffic = Chart::new(540.0, 220.0, svg::minute_label);
    traffic.y_min_zero = true;
    traffic.series = vec![
        line("requests/s", svg::PALETTE[0], |r| r.request_rate),
        line("errors/s", svg::PALETTE[1], |r| r.error_rate),
        line("predictions/s", svg::PALETTE[2], |r| r.prediction_rate),
    ];
    let mut latency = Chart::new(540.0, 220.0, svg::minute_label);
    latency.y_min_zero = true;
    latency.series = vec![
        line("p50 s", svg::PALETTE[0], |r| r.p50),
        line("p95 s", svg::PALETTE[3], |r| r.p95),
        line("p99 s", svg::PALETTE[1], |r| r.p99),
    ];
    let empty_traffic = "collecting: the first samples come 15 s after the start";
    let mut psi: Vec<(String, f64)> = page
        .psi
        .iter()
        .map(|f| (f.feature.clone(), f.psi))
        .collect();
    psi.sort_by(|a, b| b.1.total_cmp(&a.1));
    let psi_bars = svg::bars(
        &psi,
        700.0,
        Some(0.25),
        "no PSI yet: it is computed by each ingest run once a champion exists",
    );
    let mut history = Chart::new(1100.0, 240.0, svg::hour_label);
    let mut features: Vec<&str> = page.psi_history.iter().map(|p| p.0.as_str()).collect();
    features.dedup();
    for (i, f) in features.iter().enumerate() {
        history.series.push(Series {
            name: f.to_string(),
            color: svg::PALETTE[i % svg::PALETTE.len()],
            points: page
                .psi_history
                .iter()
                .filter(|p| p.0 == *f)
                .map(|p| (p.1 as f64, p.2))
                .collect(),
            markers: page.psi_history.iter().filter(|p| p.0 == *f).count() < 3,
        });
    }
    let mut live = Chart::new(1100.0, 240.0, svg::day_label);
    let mut coins: Vec<&str> = page.live_daily.iter().map(|d| d.coin_id.as_str()).collect();
    coins.dedup();
    for (i, c) in coins.iter().enumerate() {
        let days = page.live_daily.iter().filter(|d| d.coin_id == *c);
        live.series.push(Series {
            name: format!("{c} MAPE"),
            color: svg::PALETTE[(2 * i) % svg::PALETTE.len()],
            points: days.clone().map(|d| (d.day as f64, d.mape)).collect(),
            markers: true,
        });
        live.series.push(Series {
            name: format!("{c} coverage"),
            color: svg::PALETTE[(2 * i + 1) % svg::PALETTE.len()],
            points: days.map(|d| (d.day as f64, d.coverage)).collect(),
            markers: true,
        });
    }
    let mut levels = Chart::new(1100.0, 220.0, svg::hour_label);
    let mut coins: Vec<&str> = page.coverage_history.iter().map(|p| p.0.as_str()).collect();
    coins.dedup();
    for (i, c) in coins.iter().enumerate() {
        let points: Vec<(f64, f64)> = page
            .coverage_history
            .iter()
            .filter(|p| p.0 == *c)
            .map(|p| (p.1 as f64, p.2))
            .collect();
        levels.series.push(Series {
            name: c.to_string(),
            color: svg::PALETTE[i % svg::PALETTE.len()],
            markers: points.len() < 3,
            points,
        });
    }
    Ok(render(&MonitoringHtml {
        coverage_history: levels.render(
            "no update yet: the monitor task checks each new hour's outcome once its target hour has arrived",
        ),
        layout: Layout::new("/monitoring"),
        traffic: traffic.render(empty_traffic),
        latency: latency.render(empty_traffic),
        psi_bars,
        psi_history: history.render("no PSI history yet"),
        live: live.render(
            "no scored forecasts yet: logged predictions are scored when their hour arrives",
        ),
        page,
    }))
}

pub async fn json(State(state): State<Arc<AppState>>) -> Result<Json<MonitoringPage>, ApiError> {
    Ok(Json(load(&state).await?))
}
