//! `/quality`: rule outcomes per batch (passed, warned, failed), quarantined batches with their
//! reasons and failing rows, and each rule's history per day.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::Serialize;

use super::svg::{self, Chart, Series};
use super::{read, render, Layout};
use crate::serve::error::ApiError;
use crate::serve::state::AppState;

#[derive(Debug, Serialize)]
pub struct BatchRow {
    pub batch_id: i64,
    pub coin_id: String,
    pub source: String,
    pub state: String,
    pub fetched: String,
    pub hours: i64,
    pub reason: String,
    pub passed: i64,
    pub warned: i64,
    pub failed: i64,
    pub failed_rules: String,
}

#[derive(Debug, Serialize)]
pub struct Violation {
    pub batch_id: i64,
    pub coin_id: String,
    pub rule: String,
    pub row_no: i64,
    pub row: String,
}

#[derive(Debug, Serialize)]
pub struct RuleDay {
    pub day: String,
    pub checks: i64,
    pub failures: i64,
}

#[derive(Debug, Serialize)]
pub struct RuleHistory {
    pub rule: String,
    pub checks: i64,
    pub failures: i64,
    pub days: Vec<RuleDay>,
}

#[derive(Debug, Serialize)]
pub struct QualityPage {
    pub batches: Vec<BatchRow>,
    pub quarantined: Vec<BatchRow>,
    pub violations: Vec<Violation>,
    pub rules: Vec<RuleHistory>,
}

pub async fn load(state: &Arc<AppState>) -> Result<QualityPage, ApiError> {
    read(state, |conn| {
        let mut stmt = conn.prepare(include_str!("../../../sql/reports/dash_batches.sql"))?;
        let all = stmt
            .query_map([500i64], |r| {
                Ok(BatchRow {
                    batch_id: r.get(0)?,
                    coin_id: r.get(1)?,
                    source: r.get(2)?,
                    state: r.get(3)?,
                    fetched: r.get(4)?,
                    hours: r.get(5)?,
                    reason: r.get(6)?,
                    passed: r.get(7)?,
                    warned: r.get(8)?,
                    failed: r.get(9)?,
                    failed_rules: r.get(10)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let (quarantined, batches): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|b| b.state == "quarantined");
        let mut stmt = conn.prepare(include_str!("../../../sql/reports/dash_violations.sql"))?;
        let violations = stmt
            .query_map([5i64], |r| {
                Ok(Violation {
                    batch_id: r.get(0)?,
                    coin_id: r.get(1)?,
                    rule: r.get(2)?,
                    row_no: r.get(3)?,
                    row: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = conn.prepare(include_str!("../../../sql/reports/dash_rule_history.sql"))?;
        let mut rules: Vec<RuleHistory> = Vec::new();
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                RuleDay {
                    day: r.get(1)?,
                    checks: r.get(2)?,
                    failures: r.get(3)?,
                },
            ))
        })?;
        for row in rows {
            let (rule, day) = row?;
            match rules.last_mut() {
                Some(h) if h.rule == rule => {
                    h.checks += day.checks;
                    h.failures += day.failures;
                    h.days.push(day);
                }
                _ => rules.push(RuleHistory {
                    rule,
                    checks: day.checks,
                    failures: day.failures,
                    days: vec![day],
                }),
            }
        }
        Ok(QualityPage {
            batches: batches.into_iter().take(100).collect(),
            quarantined,
            violations,
            rules,
        })
    })
    .await
}

#[derive(Template)]
#[template(path = "quality.html")]
struct QualityHtml {
    layout: Layout,
    page: QualityPage,
    history: String,
}

pub async fn html(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let page = load(&state).await?;
    // Failures per day of every rule that ever failed.
    let mut chart = Chart::new(1100.0, 240.0, svg::day_label);
    chart.y_min_zero = true;
    for (i, h) in page.rules.iter().filter(|h| h.failures > 0).enumerate() {
        chart.series.push(Series {
            name: h.rule.clone(),
            color: svg::PALETTE[i % svg::PALETTE.len()],
            points: h
                .days
                .iter()
                .filter_map(|d| {
                    chrono::NaiveDate::parse_from_str(&d.day, "%Y-%m-%d")
                        .ok()
                        .and_then(|x| x.and_hms_opt(0, 0, 0))
                        .map(|x| (x.and_utc().timestamp() as f64, d.failures as f64))
                })
                .collect(),
            markers: true,
        });
    }
    let history = chart.render("no rule has failed yet");
    Ok(render(&QualityHtml {
        layout: Layout::new("/quality"),
        page,
        history,
    }))
}

pub async fn json(State(state): State<Arc<AppState>>) -> Result<Json<QualityPage>, ApiError> {
    Ok(Json(load(&state).await?))
}
