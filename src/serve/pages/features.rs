//! `/features?version=`: per dataset version (the training data of a registered model, or the
//! current data), a profile of every feature (count, nulls, min, max, mean, std, quartiles,
//! histogram) and the feature SQL that produced it.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use duckdb::params;
use serde::{Deserialize, Serialize};

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
    /// The profiled data: a dataset version, or `current`.
    pub selected: String,
    pub coins: String,
    pub until: String,
    pub profile: Vec<FeatureProfile>,
    pub feature_sql: &'static str,
}

fn number(s: Option<String>) -> f64 {
    s.and_then(|x| x.parse().ok()).unwrap_or(f64::NAN)
}

pub async fn load(state: &Arc<AppState>, q: FeaturesQuery) -> Result<FeaturesPage, ApiError> {
    let current_coins = state.runtime.settings.coins.join(",");
    read(state, move |conn| {
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
        let chosen = q
            .version
            .as_deref()
            .filter(|v| !v.is_empty() && *v != "current");
        let (selected, coins, until) =
            match chosen.and_then(|v| versions.iter().find(|d| d.dataset_version.starts_with(v))) {
                Some(d) => (d.dataset_version.clone(), d.coins.clone(), d.until_epoch),
                None => (
                    "current".to_string(),
                    current_coins,
                    chrono::Utc::now().timestamp(),
                ),
            };
        let mut histograms: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let mut stmt = conn.prepare(include_str!(
            "../../../sql/reports/dash_feature_histograms.sql"
        ))?;
        let rows = stmt.query_map(params![coins, until as f64], |r| {
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
        let mut stmt = conn.prepare(include_str!(
            "../../../sql/reports/dash_feature_profile.sql"
        ))?;
        let profile = stmt
            .query_map(params![coins, until as f64], |r| {
                let feature: String = r.get(0)?;
                Ok(FeatureProfile {
                    histogram: histograms.get(&feature).cloned().unwrap_or_default(),
                    feature,
                    column_type: r.get(1)?,
                    min: number(r.get(2)?),
                    max: number(r.get(3)?),
                    mean: number(r.get(5)?),
                    std: number(r.get(6)?),
                    q25: number(r.get(7)?),
                    q50: number(r.get(8)?),
                    q75: number(r.get(9)?),
                    count: r.get(10)?,
                    null_percentage: r
                        .get::<_, Option<f64>>(11)
                        .ok()
                        .flatten()
                        .unwrap_or(f64::NAN),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FeaturesPage {
            versions,
            selected,
            coins,
            until: utc(until),
            profile,
            feature_sql: include_str!("../../../sql/features/hourly.sql"),
        })
    })
    .await
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
