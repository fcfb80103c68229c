//! A coin's history as dense hourly arrays: price and the model's features, NaN where an hour is
//! missing or a feature is NULL. Index i is hour `first_hour + i`, so hour arithmetic is index
//! arithmetic. A sample at origin i has inputs from rows (i - lookback, i] and targets
//! r_h = ln(price[i+h] / price[i]) for h = 1..=horizon.

use std::borrow::Cow;

use duckdb::{params, Connection};

use super::ModelError;

#[derive(Debug, Clone)]
pub struct CoinSeries {
    pub coin_id: String,
    /// Hours since the epoch of index 0.
    pub first_hour: i64,
    pub price: Vec<f64>,
    /// Row-major `[hour][feature]`.
    pub features: Vec<f64>,
    pub feature_names: Vec<String>,
    /// pandas `ewm(span=24, adjust=True)` of the price on the hourly grid, for the EMA baseline.
    pub ema24: Vec<f64>,
    /// complete[i] = rows before i with a price and every feature (prefix count).
    complete: Vec<u32>,
    /// priced[i] = rows before i with a price (prefix count).
    priced: Vec<u32>,
    /// returned[i] = hourly log returns before i that exist (both hours priced; prefix count).
    returned: Vec<u32>,
    /// squared[i] = sum of the squared hourly log returns before i (prefix sum).
    squared: Vec<f64>,
}

impl CoinSeries {
    /// Loads a coin with the given feature columns (each must exist in `features`).
    pub fn load(
        conn: &Connection,
        coin_id: &str,
        vs_currency: &str,
        feature_names: &[String],
    ) -> Result<Self, ModelError> {
        let columns = feature_select_list(conn, feature_names)?;
        let sql = include_str!("../../sql/model/series.sql").replace("{columns}", &columns);
        let mut stmt = conn.prepare(&sql)?;
        let width = feature_names.len();
        let rows = stmt
            .query_map(params![MARKET_COIN, coin_id, vs_currency], |r| {
                let h: i64 = r.get(0)?;
                let price: f64 = r.get(1)?;
                let mut values = Vec::with_capacity(width);
                for j in 0..width {
                    values.push(r.get::<_, Option<f64>>(2 + j)?.unwrap_or(f64::NAN));
                }
                Ok((h, price, values))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Err(ModelError::NoData(coin_id.to_string()));
        };
        // NULL is a gap (NaN here, skipped by every model); an infinite value is a defect that
        // would poison standardization and training, so it stops here, named.
        for (h, _, values) in &rows {
            if let Some(k) = values.iter().position(|v| v.is_infinite()) {
                return Err(ModelError::NonFinite {
                    coin: coin_id.to_string(),
                    feature: feature_names[k].clone(),
                    at: hour_label(*h),
                });
            }
        }
        let (first_hour, len) = (first.0, (last.0 - first.0 + 1) as usize);
        let mut price = vec![f64::NAN; len];
        let mut features = vec![f64::NAN; len * width];
        for (h, p, values) in rows {
            let i = (h - first_hour) as usize;
            price[i] = p;
            features[i * width..(i + 1) * width].copy_from_slice(&values);
        }
        Ok(Self::from_arrays(
            coin_id,
            first_hour,
            price,
            features,
            feature_names.to_vec(),
        ))
    }

    /// Builds a series from dense arrays (NaN where missing).
    pub fn from_arrays(
        coin_id: &str,
        first_hour: i64,
        price: Vec<f64>,
        features: Vec<f64>,
        feature_names: Vec<String>,
    ) -> Self {
        let width = feature_names.len();
        let mut complete = vec![0u32; price.len() + 1];
        let mut priced = vec![0u32; price.len() + 1];
        let mut returned = vec![0u32; price.len() + 1];
        let mut squared = vec![0.0; price.len() + 1];
        for i in 0..price.len() {
            let has_price = price[i].is_finite();
            let row_ok = features[i * width..(i + 1) * width]
                .iter()
                .all(|v| v.is_finite());
            priced[i + 1] = priced[i] + u32::from(has_price);
            complete[i + 1] = complete[i] + u32::from(has_price && row_ok);
            let r = if i > 0 {
                (price[i] / price[i - 1]).ln()
            } else {
                f64::NAN
            };
            returned[i + 1] = returned[i] + u32::from(r.is_finite());
            squared[i + 1] = squared[i] + if r.is_finite() { r * r } else { 0.0 };
        }
        Self {
            coin_id: coin_id.to_string(),
            first_hour,
            ema24: ewm_on_grid(&price, 24),
            price,
            features,
            feature_names,
            complete,
            priced,
            returned,
            squared,
        }
    }

    /// The hourly log return into hour i, ln(price[i] / price[i-1]); NaN across a gap.
    pub fn hourly_return(&self, i: usize) -> f64 {
        if i == 0 || i >= self.len() {
            return f64::NAN;
        }
        (self.price[i] / self.price[i - 1]).ln()
    }

    /// Mean squared hourly return over the `hours` returns ending at hour i (inclusive), and how
    /// many of them exist; `(NaN, 0)` when none do.
    pub fn realized_variance(&self, i: usize, hours: usize) -> (f64, usize) {
        if i >= self.len() || hours == 0 {
            return (f64::NAN, 0);
        }
        let lo = (i + 1).saturating_sub(hours);
        let n = (self.returned[i + 1] - self.returned[lo]) as usize;
        if n == 0 {
            return (f64::NAN, 0);
        }
        ((self.squared[i + 1] - self.squared[lo]) / n as f64, n)
    }

    /// Hourly returns that exist among hours 1..=i.
    pub fn returns_up_to(&self, i: usize) -> usize {
        self.returned[(i + 1).min(self.len())] as usize
    }

    /// The same hours with only the named feature columns, in that order (borrowed when they are
    /// already exactly these).
    pub fn with_features(&self, names: &[String]) -> Result<Cow<'_, CoinSeries>, ModelError> {
        if names == self.feature_names.as_slice() {
            return Ok(Cow::Borrowed(self));
        }
        let columns = names
            .iter()
            .map(|n| {
                self.feature_names
                    .iter()
                    .position(|f| f == n)
                    .ok_or_else(|| ModelError::UnknownFeature(n.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut features = Vec::with_capacity(self.len() * columns.len());
        for i in 0..self.len() {
            let row = self.row(i);
            features.extend(columns.iter().map(|&k| row[k]));
        }
        Ok(Cow::Owned(CoinSeries::from_arrays(
            &self.coin_id,
            self.first_hour,
            self.price.clone(),
            features,
            names.to_vec(),
        )))
    }

    /// The index of the newest hour (the series is never empty once loaded).
    pub fn last_index(&self) -> usize {
        self.len().saturating_sub(1)
    }

    /// The hour (since the epoch) of index i.
    pub fn hour_of(&self, i: usize) -> i64 {
        self.first_hour + i as i64
    }

    pub fn len(&self) -> usize {
        self.price.len()
    }

    pub fn is_empty(&self) -> bool {
        self.price.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f64] {
        let w = self.feature_names.len();
        &self.features[i * w..(i + 1) * w]
    }

    /// ln(price[i+h] / price[i]).
    pub fn target(&self, i: usize, h: usize) -> f64 {
        (self.price[i + h] / self.price[i]).ln()
    }

    /// Whether origin i has a price, complete features over (i - lookback, i] and every target.
    pub fn is_valid_origin(&self, i: usize, lookback: usize, horizon: usize) -> bool {
        if lookback == 0 || i + 1 < lookback || i + horizon >= self.len() {
            return false;
        }
        let inputs = self.complete[i + 1] - self.complete[i + 1 - lookback];
        let targets = self.priced[i + horizon + 1] - self.priced[i + 1];
        inputs as usize == lookback && targets as usize == horizon
    }

    /// Whether rows (i - lookback, i] all have a price and every feature (targets not needed).
    pub fn has_inputs(&self, i: usize, lookback: usize) -> bool {
        lookback > 0
            && i + 1 >= lookback
            && i < self.len()
            && (self.complete[i + 1] - self.complete[i + 1 - lookback]) as usize == lookback
    }

    /// Indices of valid origins whose hour lies in `[hours.start, hours.end)`.
    pub fn origins_in(
        &self,
        hours: &std::ops::Range<i64>,
        lookback: usize,
        horizon: usize,
    ) -> Vec<usize> {
        let lo = (hours.start - self.first_hour).max(0);
        let hi = (hours.end - self.first_hour).min(self.len() as i64);
        (lo..hi.max(lo))
            .map(|i| i as usize)
            .filter(|&i| self.is_valid_origin(i, lookback, horizon))
            .collect()
    }
}

/// The coin whose features are every coin's market inputs (`market_<feature>`).
pub const MARKET_COIN: &str = "bitcoin";
/// The prefix of a market input: `market_log_return_1h` is bitcoin's `log_return_1h`.
pub const MARKET_PREFIX: &str = "market_";

/// `CAST(f."name" AS DOUBLE), ...` for a SELECT over `features f` (and `features mk`, the market
/// coin's, for `market_<name>`), once every name is checked to be a column of `features` (so the
/// names are safe to splice into SQL). A market input falls back to the coin's own value at an
/// hour the market coin has no row for (it is not tracked, or a gap), so that every coin can
/// train and serve without bitcoin.
pub fn feature_select_list(
    conn: &Connection,
    feature_names: &[String],
) -> Result<String, ModelError> {
    let known = feature_columns(conn)?;
    let column = |name: &str| -> Result<String, ModelError> {
        match name.strip_prefix(MARKET_PREFIX) {
            Some(own) if known.iter().any(|k| k == own) => Ok(format!(
                "CAST(COALESCE(mk.\"{own}\", f.\"{own}\") AS DOUBLE)"
            )),
            _ if known.iter().any(|k| k == name) => Ok(format!("CAST(f.\"{name}\" AS DOUBLE)")),
            _ => Err(ModelError::UnknownFeature(name.to_string())),
        }
    };
    Ok(if feature_names.is_empty() {
        "NULL AS no_features".to_string()
    } else {
        feature_names
            .iter()
            .map(|n| column(n))
            .collect::<Result<Vec<_>, _>>()?
            .join(", ")
    })
}

/// The columns of the `features` table.
pub fn feature_columns(conn: &Connection) -> Result<Vec<String>, ModelError> {
    let mut stmt = conn.prepare(
        "SELECT column_name FROM information_schema.columns
         WHERE table_catalog = current_database() AND table_name = 'features'
           AND table_schema = 'main' ORDER BY ordinal_position",
    )?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names)
}

/// An hour since the epoch as `YYYY-MM-DD HH:00`.
pub fn hour_label(hour: i64) -> String {
    chrono::DateTime::from_timestamp(hour * 3600, 0)
        .map(|t| t.format("%Y-%m-%d %H:00").to_string())
        .unwrap_or_else(|| format!("hour {hour}"))
}

/// pandas `ewm(span, adjust=True, ignore_na=False).mean()` over a grid with NaN holes.
fn ewm_on_grid(x: &[f64], span: u32) -> Vec<f64> {
    let decay = 1.0 - 2.0 / (f64::from(span) + 1.0);
    let (mut num, mut den) = (0.0, 0.0);
    x.iter()
        .map(|&v| {
            num *= decay;
            den *= decay;
            if v.is_finite() {
                num += v;
                den += 1.0;
            }
            if den > 0.0 {
                num / den
            } else {
                f64::NAN
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(price: Vec<f64>) -> CoinSeries {
        let n = price.len();
        CoinSeries::from_arrays("c", 1000, price, vec![0.5; n], vec!["f".into()])
    }

    #[test]
    fn origins_need_full_inputs_and_targets() {
        let mut price: Vec<f64> = (0..20).map(|i| 100.0 + i as f64).collect();
        price[10] = f64::NAN;
        let s = series(price);
        // lookback 3, horizon 2: origin i needs rows i-2..=i and prices i+1, i+2.
        let valid: Vec<usize> = (0..20).filter(|&i| s.is_valid_origin(i, 3, 2)).collect();
        // Hour 10 is missing: origins 8 and 9 lack a target, 10..=12 an input row.
        assert_eq!(valid, vec![2, 3, 4, 5, 6, 7, 13, 14, 15, 16, 17]);
        assert_eq!(s.origins_in(&(1005..1014), 3, 2), vec![5, 6, 7, 13]);
        assert!((s.target(2, 2) - (104.0f64 / 102.0).ln()).abs() < 1e-15);
    }

    #[test]
    fn realized_variance_skips_returns_across_a_gap() {
        let s = series(vec![100.0, 110.0, f64::NAN, 121.0, 133.1]);
        let r = (1.1f64).ln();
        assert!((s.hourly_return(1) - r).abs() < 1e-15);
        assert!(s.hourly_return(2).is_nan() && s.hourly_return(3).is_nan());
        // Returns into hours 1 and 4 exist; 2 and 3 touch the gap.
        let (v, n) = s.realized_variance(4, 4);
        assert_eq!(n, 2);
        assert!((v - r * r).abs() < 1e-15);
        let (none, count) = s.realized_variance(3, 2);
        assert!(none.is_nan() && count == 0);
        assert_eq!(s.returns_up_to(4), 2);
    }

    #[test]
    fn ewm_matches_the_adjusted_definition_across_a_hole() {
        let e = ewm_on_grid(&[1.0, f64::NAN, 3.0], 3); // decay 0.5
        assert_eq!(e[0], 1.0);
        assert_eq!(e[1], 1.0);
        assert!((e[2] - (3.0 + 0.25 * 1.0) / (1.0 + 0.25)).abs() < 1e-15);
    }
}
