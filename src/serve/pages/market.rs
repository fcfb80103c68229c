//! `/market?coin=&days=`: a coin's price over a range, with the logged forecasts and their
//! intervals overlaid and the actuals once they arrived; missing hours stay gaps. After the
//! newest hour, the forecast served now as a fan (`forecast_bands`): the 50% and 80% bands and
//! the served interval at every horizon, the point, who answers, and the level ACI holds.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use duckdb::params;
use serde::{Deserialize, Serialize};

use super::svg::{self, Band, Chart, Series};
use super::{read, render, utc, Layout};
use crate::config::is_valid_coin_id;
use crate::runtime::answer::{self, ForecastFan};
use crate::serve::error::{ApiError, ApiQuery};
use crate::serve::state::AppState;

#[derive(Debug, Deserialize)]
pub struct MarketQuery {
    pub coin: Option<String>,
    pub days: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct LoggedForecast {
    pub target: i64,
    pub horizon: i64,
    pub predicted: f64,
    pub lower: f64,
    pub upper: f64,
    pub actual: Option<f64>,
    pub requests: i64,
}

#[derive(Debug, Serialize)]
pub struct MarketPage {
    pub coin_id: String,
    pub coins: Vec<String>,
    pub days: i64,
    pub from: String,
    pub to: String,
    /// (epoch seconds, price) per stored hour.
    pub prices: Vec<(i64, f64)>,
    pub missing_hours: i64,
    pub forecasts: Vec<LoggedForecast>,
    /// The forecast served now, as a fan: per horizon the point and the bands at 50%, 80% and
    /// the served interval's level (None when nothing answers for the coin: `forecast_problem`).
    pub forecast_bands: Option<ForecastFan>,
    pub forecast_problem: Option<String>,
}

const RANGES: [i64; 5] = [1, 7, 30, 90, 365];

pub async fn load(state: &Arc<AppState>, q: MarketQuery) -> Result<MarketPage, ApiError> {
    let snap = state.runtime.snapshot();
    let mut coins: Vec<String> = state.runtime.settings().coins.clone();
    for c in snap.coins.keys() {
        if !coins.contains(c) {
            coins.push(c.clone());
        }
    }
    let coin = q
        .coin
        .or_else(|| snap.coins.keys().next().cloned())
        .or_else(|| coins.first().cloned())
        .unwrap_or_else(|| "bitcoin".into());
    if !is_valid_coin_id(&coin) {
        return Err(ApiError::unprocessable(format!(
            "`{coin}` is not a CoinGecko coin id"
        )));
    }
    if !coins.contains(&coin) {
        return Err(ApiError::not_found(
            "unknown_coin",
            format!(
                "coin `{coin}` is neither configured nor stored; available: {}",
                coins.join(", ")
            ),
        ));
    }
    let days = q.days.unwrap_or(7);
    let longest = RANGES[RANGES.len() - 1];
    if !(1..=longest).contains(&days) {
        return Err(ApiError::unprocessable(format!(
            "days must be between 1 and {longest}, got {days}"
        )));
    }
    let currency = state.runtime.settings().vs_currency.clone();
    let coin_q = coin.clone();
    let (prices, forecasts, to) = read(state, move |conn| {
        // The range ends at the coin's newest hour (or now), so old data still shows.
        let to: i64 = conn.query_row(
            "SELECT coalesce(CAST(epoch(max(ts)) AS BIGINT), CAST(epoch(now()) AS BIGINT))
             FROM market_data WHERE coin_id = ? AND vs_currency = ?",
            params![coin_q, currency],
            |r| r.get(0),
        )?;
        // Room on the right for forecasts of hours still to come.
        let from = to - days * 86400;
        let mut stmt = conn.prepare(include_str!("../../../sql/reports/dash_market.sql"))?;
        let prices = stmt
            .query_map(params![coin_q, currency, from as f64, to as f64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<Vec<(i64, f64)>, _>>()?;
        let mut stmt = conn.prepare(include_str!("../../../sql/reports/dash_predictions.sql"))?;
        let forecasts = stmt
            .query_map(
                params![coin_q, currency, from as f64, (to + 86400) as f64],
                |r| {
                    Ok(LoggedForecast {
                        target: r.get(0)?,
                        horizon: r.get(1)?,
                        predicted: r.get(2)?,
                        lower: r.get(3)?,
                        upper: r.get(4)?,
                        actual: r.get(5)?,
                        requests: r.get(6)?,
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((prices, forecasts, to))
    })
    .await?;
    let (forecast_bands, forecast_problem) = match fan(state, &coin).await {
        Ok(fan) => (Some(fan), None),
        Err(why) => (None, Some(why)),
    };
    let from = to - days * 86400;
    let missing_hours = match (prices.first(), prices.last()) {
        (Some(a), Some(b)) => (b.0 - a.0) / 3600 + 1 - prices.len() as i64,
        _ => 0,
    };
    Ok(MarketPage {
        coin_id: coin,
        coins,
        days,
        from: utc(from),
        to: utc(to),
        prices,
        missing_hours,
        forecasts,
        forecast_bands,
        forecast_problem,
    })
}

/// The fan of the forecast that `/predict` serves for `coin` now (off the executor: an LSTM
/// infers), or why there is none.
async fn fan(state: &Arc<AppState>, coin: &str) -> Result<ForecastFan, String> {
    let snap = state.runtime.snapshot();
    let answerers = snap
        .answerers_for(coin, &state.runtime.settings().coins)
        .map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(move || answer::forecast_fan(answerers))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Prices on the hourly grid, NaN where an hour is missing, so the line breaks there.
fn with_gaps(prices: &[(i64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(prices.len());
    for (i, &(t, p)) in prices.iter().enumerate() {
        if i > 0 && t - prices[i - 1].0 > 3600 {
            out.push(((prices[i - 1].0 + 3600) as f64, f64::NAN));
        }
        out.push((t as f64, p));
    }
    out
}

#[derive(Template)]
#[template(path = "market.html")]
struct MarketHtml {
    layout: Layout,
    page: MarketPage,
    chart: String,
    ranges: Vec<i64>,
}

impl MarketHtml {
    fn num(&self, x: &f64) -> String {
        svg::num(*x)
    }
    fn time(&self, t: &i64) -> String {
        utc(*t)
    }
}

pub async fn html(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<MarketQuery>,
) -> Result<Response, ApiError> {
    let page = load(&state, q).await?;
    let mut chart = Chart::new(1100.0, 360.0, svg::hour_label);
    chart.series.push(Series {
        name: format!("{} price", page.coin_id),
        color: svg::PALETTE[0],
        points: with_gaps(&page.prices),
        markers: false,
    });
    if !page.forecasts.is_empty() {
        // One interval per target hour (the shortest horizon asked for it), as a band.
        let mut nearest: std::collections::BTreeMap<i64, &LoggedForecast> = Default::default();
        for f in &page.forecasts {
            let e = nearest.entry(f.target).or_insert(f);
            if f.horizon < e.horizon {
                *e = f;
            }
        }
        chart.bands.push(Band {
            color: svg::PALETTE[3],
            points: nearest
                .values()
                .map(|f| (f.target as f64, f.lower, f.upper))
                .collect(),
        });
        chart.series.push(Series {
            name: "forecast".into(),
            color: svg::PALETTE[3],
            points: page
                .forecasts
                .iter()
                .map(|f| (f.target as f64, f.predicted))
                .collect(),
            markers: true,
        });
        chart.series.push(Series {
            name: "actual (scored)".into(),
            color: svg::PALETTE[2],
            points: page
                .forecasts
                .iter()
                .filter_map(|f| f.actual.map(|a| (f.target as f64, a)))
                .collect(),
            markers: true,
        });
    }
    if let Some(fan) = &page.forecast_bands {
        // The served interval outermost; each inner band over it, so the fan darkens inward.
        let levels = fan.horizons.first().map_or(0, |h| h.bands.len());
        for band in (0..levels).rev() {
            chart.bands.push(Band {
                color: svg::PALETTE[1],
                points: fan
                    .horizons
                    .iter()
                    .filter_map(|h| {
                        h.bands
                            .get(band)
                            .map(|b| (h.target as f64, b.lower, b.upper))
                    })
                    .collect(),
            });
        }
        chart.series.push(Series {
            name: format!("forecast now ({}, {})", fan.family, fan.served_by.name()),
            color: svg::PALETTE[1],
            points: std::iter::once((fan.as_of as f64, fan.current_price))
                .chain(fan.horizons.iter().map(|h| (h.target as f64, h.point)))
                .collect(),
            markers: false,
        });
    }
    let chart = chart.render("no prices in this range: run `coincast run` or pick a longer range");
    Ok(render(&MarketHtml {
        layout: Layout::new("/market"),
        page,
        chart,
        ranges: RANGES.to_vec(),
    }))
}

pub async fn json(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<MarketQuery>,
) -> Result<Json<MarketPage>, ApiError> {
    Ok(Json(load(&state, q).await?))
}
