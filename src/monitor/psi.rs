//! Population stability index of the model's inputs: the newest hours of the served coins
//! against the training origins, binned at the training deciles stored with the model.
//!
//! PSI = sum over bins of (a - e) * ln(a / e), with a and e the recent and training shares,
//! each floored at 1e-4 so that an empty bin counts as large but finite. Usual reading:
//! < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 significant shift.

use duckdb::{params, Connection};
use serde::Serialize;

use crate::model::card::{psi_bin, FeatureStats};
use crate::model::dataset::{feature_select_list, MARKET_COIN};

use super::MonitorError;

const FLOOR: f64 = 1e-4;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeaturePsi {
    pub feature: String,
    pub psi: f64,
    /// Recent values that went into it.
    pub observations: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PsiReport {
    pub features: Vec<FeaturePsi>,
    /// The recent window, epoch seconds.
    pub window_from: i64,
    pub window_to: i64,
}

/// PSI of `values` against training bins; None without bins or without a finite value.
pub fn psi(edges: &[f64], expected: &[f64], values: &[f64]) -> Option<f64> {
    if expected.len() != edges.len() + 1 || expected.is_empty() {
        return None;
    }
    let mut counts = vec![0usize; expected.len()];
    let mut n = 0usize;
    for &x in values.iter().filter(|x| x.is_finite()) {
        counts[psi_bin(edges, x)] += 1;
        n += 1;
    }
    if n == 0 {
        return None;
    }
    Some(
        counts
            .iter()
            .zip(expected)
            .map(|(&c, &e)| {
                let a = (c as f64 / n as f64).max(FLOOR);
                let e = e.max(FLOOR);
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}

/// Calendar encodings (`hour_sin`, `day_cos`, `month`...) are not watched: a day's worth of
/// them always differs from years of them, which says nothing about the market.
pub fn is_calendar_feature(name: &str) -> bool {
    let base = name
        .strip_suffix("_sin")
        .or_else(|| name.strip_suffix("_cos"))
        .unwrap_or(name);
    matches!(base, "hour" | "day" | "day_of_week" | "month")
}

/// The PSI of every monitored feature of a model (its training statistics `stats`) over the
/// newest `hours` of each of `coins`, calendar encodings left out.
pub fn compute(
    conn: &Connection,
    stats: &[FeatureStats],
    coins: &[String],
    vs_currency: &str,
    hours: i64,
) -> Result<Option<PsiReport>, MonitorError> {
    let stats: Vec<&FeatureStats> = stats
        .iter()
        .filter(|s| !is_calendar_feature(&s.name))
        .collect();
    if stats.is_empty() {
        return Ok(None);
    }
    let names: Vec<String> = stats.iter().map(|s| s.name.clone()).collect();
    let names = &names;
    if stats.iter().all(|s| s.psi_edges.is_empty()) {
        return Ok(None);
    }
    let columns = feature_select_list(conn, names)?;
    let sql = include_str!("../../sql/monitor/recent_features.sql").replace("{columns}", &columns);
    let mut stmt = conn.prepare(&sql)?;
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let (mut from, mut to) = (i64::MAX, i64::MIN);
    for coin in coins {
        let mut rows = stmt.query(params![
            MARKET_COIN,
            coin,
            vs_currency,
            coin,
            vs_currency,
            hours
        ])?;
        while let Some(row) = rows.next()? {
            let t: i64 = row.get(0)?;
            from = from.min(t);
            to = to.max(t);
            for (k, column) in values.iter_mut().enumerate() {
                column.push(row.get::<_, Option<f64>>(k + 1)?.unwrap_or(f64::NAN));
            }
        }
    }
    if from > to {
        return Ok(None);
    }
    let features = stats
        .iter()
        .zip(&values)
        .filter_map(|(stats, recent)| {
            psi(&stats.psi_edges, &stats.psi_expected, recent).map(|psi| FeaturePsi {
                feature: stats.name.clone(),
                psi,
                observations: recent.iter().filter(|x| x.is_finite()).count(),
            })
        })
        .collect();
    Ok(Some(PsiReport {
        features,
        window_from: from,
        window_to: to,
    }))
}

/// Stores a report under the pipeline run that computed it.
pub fn record(
    conn: &Connection,
    run_id: i64,
    model_id: &str,
    report: &PsiReport,
) -> Result<(), duckdb::Error> {
    let mut stmt = conn.prepare(
        "INSERT OR REPLACE INTO feature_psi
         (run_id, model_id, feature, psi, window_from, window_to, observations, computed_at)
         VALUES (?, ?, ?, ?, to_timestamp(?), to_timestamp(?), ?, now())",
    )?;
    for f in &report.features {
        stmt.execute(params![
            run_id,
            model_id,
            f.feature,
            f.psi,
            report.window_from as f64,
            report.window_to as f64,
            f.observations as i64
        ])?;
    }
    Ok(())
}

/// The PSI per feature of `model_id` from the newest run that computed it.
pub fn latest_psi(conn: &Connection, model_id: &str) -> Result<Vec<FeaturePsi>, duckdb::Error> {
    let mut stmt = conn.prepare(include_str!("../../sql/monitor/latest_psi.sql"))?;
    let rows = stmt.query_map(params![model_id, model_id], |r| {
        Ok(FeaturePsi {
            feature: r.get(0)?,
            psi: r.get(1)?,
            observations: r.get::<_, i64>(2)? as usize,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deciles(v: &mut [f64]) -> (Vec<f64>, Vec<f64>) {
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
        let mut edges: Vec<f64> = (1..10).map(|d| q(d as f64 / 10.0)).collect();
        edges.dedup();
        let mut counts = vec![0usize; edges.len() + 1];
        for x in v.iter() {
            counts[psi_bin(&edges, *x)] += 1;
        }
        let n = v.len() as f64;
        (edges, counts.iter().map(|c| *c as f64 / n).collect())
    }

    #[test]
    fn the_same_distribution_is_stable_and_a_shift_is_not() {
        let mut train: Vec<f64> = (0..10_000).map(|i| (i as f64 * 0.618).sin()).collect();
        let (edges, expected) = deciles(&mut train);
        let same: Vec<f64> = (0..2_000).map(|i| (i as f64 * 0.618 + 0.3).sin()).collect();
        let shifted: Vec<f64> = same.iter().map(|x| x + 0.5).collect();
        let stable = psi(&edges, &expected, &same).expect("psi");
        let moved = psi(&edges, &expected, &shifted).expect("psi");
        assert!(stable < 0.02, "{stable}");
        assert!(moved > 0.25, "{moved}");
    }

    #[test]
    fn a_constant_feature_with_ties_has_one_bin_and_no_drift() {
        let mut train = vec![1.0; 500];
        let (edges, expected) = deciles(&mut train);
        assert_eq!(edges, vec![1.0]);
        assert_eq!(expected, vec![0.0, 1.0]);
        assert!(psi(&edges, &expected, &[1.0, 1.0]).expect("psi").abs() < 1e-12);
        assert!(psi(&edges, &expected, &[0.0]).expect("psi") > 1.0);
    }

    #[test]
    fn no_bins_or_no_values_give_none() {
        assert_eq!(psi(&[], &[], &[1.0]), None);
        assert_eq!(psi(&[0.0], &[0.5, 0.5], &[f64::NAN]), None);
    }
}
