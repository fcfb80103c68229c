//! What every model card shares, classical or LSTM: the format version (a newer card is refused
//! by name) and the training statistics of the monitored features (drift ratio, PSI bins).

use std::path::Path;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::dataset::CoinSeries;
use super::ModelError;

/// The model card format this binary writes.
/// 1: LSTM cards before schema 5 (read as they are). 2: classical cards; LSTM cards with
/// walk-forward widths. 3: LSTM cards with an objective, shrinkage, a scale and a conformal
/// calibration (ACI levels).
pub const CARD_FORMAT: u32 = 3;

/// Refuses a card written by a newer coincast, naming its format.
pub fn check_card_format(path: &Path, text: &str) -> Result<(), ModelError> {
    let found = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("format_version").and_then(serde_json::Value::as_u64))
        .unwrap_or(1);
    if found > u64::from(CARD_FORMAT) {
        return Err(ModelError::Artifact {
            path: path.display().to_string(),
            message: format!(
                "model format {found} is newer than this coincast reads (up to {CARD_FORMAT}); upgrade coincast to serve it"
            ),
        });
    }
    Ok(())
}

/// serde_json writes a NaN as `null`; these read it back as NaN (a statistic over no values, a
/// horizon without scores), so that such a card still loads.
pub(crate) fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn nan_rows(rows: Vec<Vec<Option<f64>>>) -> Vec<Vec<f64>> {
    rows.into_iter()
        .map(|r| r.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
        .collect()
}

pub(crate) fn nan_table<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f64>>, D::Error> {
    Ok(nan_rows(Vec::deserialize(d)?))
}

pub(crate) fn nan_tables<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Vec<Vec<f64>>>, D::Error> {
    let tables: BTreeMap<String, Vec<Vec<Option<f64>>>> = BTreeMap::deserialize(d)?;
    Ok(tables.into_iter().map(|(k, v)| (k, nan_rows(v))).collect())
}

/// The training distribution of one feature, for drift checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureStats {
    pub name: String,
    #[serde(deserialize_with = "nan_if_null")]
    pub mean: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub std: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub min: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub p01: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub p99: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub max: f64,
    /// Bin edges for the population stability index: the training deciles, without repeats
    /// (a value equal to an edge falls in the bin above it). Empty in models trained before PSI.
    #[serde(default)]
    pub psi_edges: Vec<f64>,
    /// Share of the training origins in each of the `psi_edges.len() + 1` bins.
    #[serde(default)]
    pub psi_expected: Vec<f64>,
}

impl FeatureStats {
    /// No training values (e.g. a column that was NULL at every training origin): no range
    /// and no PSI bins, so neither drift check fires on it.
    fn unknown(name: &str) -> Self {
        Self {
            name: name.to_string(),
            mean: f64::NAN,
            std: f64::NAN,
            min: f64::NAN,
            p01: f64::NAN,
            p99: f64::NAN,
            max: f64::NAN,
            psi_edges: Vec::new(),
            psi_expected: Vec::new(),
        }
    }
}

/// The bin of `x` among `edges` (sorted): how many edges are <= x.
pub fn psi_bin(edges: &[f64], x: f64) -> usize {
    edges.partition_point(|e| *e <= x)
}

/// Statistics of the features `names` (the series' columns, in order) over the samples
/// (series index, origin).
pub fn feature_stats(
    names: &[String],
    samples: &[(usize, usize)],
    series: &[CoinSeries],
) -> Vec<FeatureStats> {
    names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mut v: Vec<f64> = samples.iter().map(|&(c, i)| series[c].row(i)[k]).collect();
            if v.is_empty() {
                return FeatureStats::unknown(name);
            }
            v.sort_by(f64::total_cmp);
            let n = v.len().max(1) as f64;
            let mean = v.iter().sum::<f64>() / n;
            let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            let q = |p: f64| {
                v.get(((v.len() as f64 - 1.0) * p) as usize)
                    .copied()
                    .unwrap_or(f64::NAN)
            };
            let mut psi_edges: Vec<f64> = (1..10).map(|d| q(f64::from(d) / 10.0)).collect();
            psi_edges.dedup();
            let mut counts = vec![0usize; psi_edges.len() + 1];
            for x in &v {
                counts[psi_bin(&psi_edges, *x)] += 1;
            }
            FeatureStats {
                name: name.clone(),
                psi_expected: counts.iter().map(|c| *c as f64 / n).collect(),
                psi_edges,
                mean,
                std,
                min: q(0.0),
                p01: q(0.01),
                p99: q(0.99),
                max: q(1.0),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Statistics over no values are NaN, written as null: the card still reads back.
    #[test]
    fn stats_over_no_values_round_trip() {
        let stats = feature_stats(&["f".to_string()], &[], &[]);
        let json = serde_json::to_string(&stats).expect("json");
        assert!(
            json.contains("\"mean\":null") && json.contains("\"psi_edges\":[]"),
            "{json}"
        );
        let back: Vec<FeatureStats> = serde_json::from_str(&json).expect("reads back");
        assert!(back[0].mean.is_nan() && back[0].p99.is_nan());
    }
}
