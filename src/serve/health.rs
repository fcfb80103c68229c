//! Liveness, readiness and what is being served.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::error::ApiError;
use super::state::AppState;

/// Liveness: the process answers.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// Where a person looks when the server is not ready: `coincast status` cannot open the file
/// while the server holds it.
const WHERE_TO_LOOK: &str = "see /api/overview or the pipeline page (/pipeline)";

/// Readiness: a model serves (the champion, or the floor), every configured coin has data, and
/// every coin's data is newer than `serve.max_data_age_hours`; otherwise 503 naming each reason.
/// A replica is ready once a publication is loaded and a model serves: stale data is an alert
/// there, not unreadiness, or an outage of the writer would take every replica out at once.
pub async fn ready(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    if let Some(following) = state.runtime.following() {
        return replica_ready(&state, following);
    }
    let snap = state.runtime.snapshot();
    let settings = &state.runtime.settings();
    let mut reasons = snap.problems.clone();
    for coin in settings
        .coins
        .iter()
        .filter(|c| !snap.coins.contains_key(*c))
    {
        reasons.push(format!(
            "{coin}: configured but no data yet, so /predict cannot answer for it; the next pipeline run fetches it ({WHERE_TO_LOOK})"
        ));
    }
    let now = Utc::now();
    let max_age = chrono::Duration::hours(settings.serve.max_data_age_hours as i64);
    for (coin, last) in snap.last_hours() {
        if now - last > max_age {
            reasons.push(format!(
                "{coin}: newest data is {} old (limit {} h): the data is stale; check the pipeline ({WHERE_TO_LOOK})",
                humanize(now - last),
                settings.serve.max_data_age_hours
            ));
        }
    }
    if reasons.is_empty() {
        Ok(Json(json!({ "ready": true })))
    } else {
        Err(ApiError::unavailable("not_ready", reasons.join("; ")))
    }
}

fn replica_ready(
    state: &AppState,
    following: &crate::runtime::Following,
) -> Result<Json<Value>, ApiError> {
    let snap = state.runtime.snapshot();
    let follow = following.state();
    let Some(publication) = &snap.publication else {
        let why = follow
            .problem
            .unwrap_or_else(|| "no serving publication loaded yet".into());
        return Err(ApiError::unavailable(
            "not_ready",
            format!("{why} (following {})", following.url),
        ));
    };
    if snap.serving().is_none() {
        return Err(ApiError::unavailable("not_ready", snap.problems.join("; ")));
    }
    let now = Utc::now();
    let max_age = chrono::Duration::hours(state.runtime.settings().serve.max_data_age_hours as i64);
    let stale: Vec<String> = snap
        .last_hours()
        .into_iter()
        .filter(|(_, last)| now - *last > max_age)
        .map(|(coin, last)| format!("{coin}: newest data is {} old", humanize(now - last)))
        .collect();
    Ok(Json(json!({
        "ready": true,
        "role": "replica",
        "publication": publication,
        "following": follow,
        "stale": stale,
    })))
}

/// The champion and the floor, the data behind them, the registry, live accuracy and drift.
pub async fn models_status(State(state): State<Arc<AppState>>) -> Json<Value> {
    let snap = state.runtime.snapshot();
    let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let coins: Vec<Value> = snap
        .last_hours()
        .into_iter()
        .map(|(coin, last)| json!({ "coin_id": coin, "last_hour": iso(last) }))
        .collect();
    let describe = |m: &crate::runtime::ServingModel| {
        json!({
            "model_id": m.model_id,
            "model_type": m.family,
            "coins": m.coins,
            "forecasts_any_coin": m.forecasts_any_coin,
            "horizon_hours": m.horizon,
            "interval_level": m.interval_level,
            "calibration": m.calibration_source,
            "trained_until": DateTime::<Utc>::from_timestamp(m.trained_until_hour * 3600, 0).map(iso),
        })
    };
    Json(json!({
        "champion": snap.champion.as_deref().map(describe),
        "floor": snap.floor.as_deref().map(describe),
        "healthy": snap.serving().is_some(),
        "loaded_at": iso(snap.loaded_at),
        "coins": coins,
        "problems": snap.problems,
        "models": snap.registry.iter().map(|m| json!({
            "model_id": m.model_id,
            "model_type": m.family,
            "created_at": m.created_at,
            "alias": m.alias,
            "score": m.score,
            "gate_passed": m.gate_passed,
            "gate_reason": m.gate_reason,
            "floor": m.floor,
        })).collect::<Vec<_>>(),
        "live_accuracy": snap.live_accuracy,
        "feature_psi": snap.psi,
        "publication": snap.publication,
        "following": state.runtime.following().map(|f| f.state()),
    }))
}

fn humanize(d: chrono::Duration) -> String {
    let hours = d.num_hours();
    if hours >= 48 {
        format!("{} days", hours / 24)
    } else {
        format!("{hours} h")
    }
}
