//! Scale models: how wide a forecast's interval should be at an origin, per horizon. An interval
//! is r̂_h ± q_h·σ̂_h, where q_h comes from conformal calibration on normalized residuals
//! |r − r̂| / σ̂ (see `evaluate`); a scale only has to rank origins by risk, its unit never matters.
//!
//! - `Constant`: σ̂ = 1, split-conformal with a constant width.
//! - `Ewma`: RiskMetrics, σ̂²_{t+1} = λ·σ̂²_t + (1−λ)·r_t², and σ̂_h = σ̂_1·√h.
//! - `EwmaPerCoin`: the same with λ chosen per coin from [`LAMBDA_GRID`] on the training hours,
//!   by the Gaussian quasi-likelihood (QLIKE) of the next hour's return.
//! - `Mix`: the equal-weight mean of the EWMA, GARCH and HAR scales (all three are σ̂ in units of
//!   the log return, so they average as they are). With a quantile band (CQR) it is a quantile
//!   average instead: the band's ends averaged with the members' Gaussian bands
//!   (`forecast::BandMix`).
//! - `Garch`: GARCH(1,1) per coin by Gaussian quasi-maximum likelihood with variance targeting;
//!   σ̂²_h = Σ_{k=1..h} σ̂²_{t+k|t}.
//! - `Har`: Corsi's (2009) HAR of realized variance, direct per horizon: the next h hours' summed
//!   squared returns regressed on the mean squared hourly return of the last 1, 24 and 168 hours,
//!   per coin.
//!
//! Coins a model was not fitted on (added later) use the pooled parameters; every scale needs
//! [`MIN_RETURNS`] hourly returns in its window.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::dataset::CoinSeries;
use super::ModelError;

/// Hourly returns a scale needs before it says anything (one day).
pub const MIN_RETURNS: usize = 24;
/// Hours of history the EWMA and GARCH filters run over at an origin (λ^720 ≈ 3e-10 for 0.97).
const WINDOW: usize = 720;
/// Most recent hourly returns (GARCH) or origins (HAR) a fit uses per coin.
const FIT_LIMIT: usize = 20_000;
/// HAR components: mean squared return over the last 1, 24 and 168 hours.
const HAR_LAGS: [usize; 3] = [1, 24, 168];
/// The λs a per-coin EWMA chooses from (half-lives of 6.6 hours to 5.8 days).
pub const LAMBDA_GRID: [f64; 9] = [0.90, 0.93, 0.95, 0.96, 0.97, 0.98, 0.985, 0.99, 0.995];

/// The scale part of a recipe (what to fit).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScaleRecipe {
    Constant,
    Ewma {
        lambda: f64,
    },
    /// λ per coin from [`LAMBDA_GRID`]; `lambda` for a coin it was not fitted on.
    EwmaPerCoin {
        lambda: f64,
    },
    Garch,
    Har,
    /// EWMA (at `lambda`), GARCH and HAR, equal weights.
    Mix {
        lambda: f64,
    },
}

impl ScaleRecipe {
    /// The suffix in a forecaster's name (`persistence_ewma`); empty for a constant width.
    pub fn suffix(self) -> &'static str {
        match self {
            ScaleRecipe::Constant => "",
            ScaleRecipe::Ewma { .. } => "ewma",
            ScaleRecipe::EwmaPerCoin { .. } => "ewma_coin",
            ScaleRecipe::Garch => "garch",
            ScaleRecipe::Har => "har",
            ScaleRecipe::Mix { .. } => "mix",
        }
    }
}

/// GARCH(1,1): σ²_{t+1} = ω + α·r_t² + β·σ²_t.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Garch11 {
    pub alpha: f64,
    pub beta: f64,
    /// The long-run hourly variance ω / (1 − α − β) of the coin.
    pub long_run: f64,
}

/// HAR coefficients per horizon: [intercept, β1, β24, β168], and a floor on the variance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HarFit {
    pub coef: Vec<[f64; 4]>,
    pub floor: Vec<f64>,
}

/// A fitted scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScaleModel {
    Constant,
    Ewma {
        lambda: f64,
    },
    EwmaPerCoin {
        coins: BTreeMap<String, f64>,
        /// For a coin it was not fitted on.
        lambda: f64,
    },
    Garch {
        coins: BTreeMap<String, Garch11>,
        pooled: Option<Garch11>,
    },
    Har {
        coins: BTreeMap<String, HarFit>,
        pooled: Option<HarFit>,
    },
    Mix {
        /// EWMA, GARCH and HAR, fitted.
        members: Vec<ScaleModel>,
    },
}

impl ScaleModel {
    /// The recipe it was fitted from.
    pub fn recipe(&self) -> ScaleRecipe {
        match self {
            ScaleModel::Constant => ScaleRecipe::Constant,
            ScaleModel::Ewma { lambda } => ScaleRecipe::Ewma { lambda: *lambda },
            ScaleModel::EwmaPerCoin { lambda, .. } => ScaleRecipe::EwmaPerCoin { lambda: *lambda },
            ScaleModel::Garch { .. } => ScaleRecipe::Garch,
            ScaleModel::Har { .. } => ScaleRecipe::Har,
            ScaleModel::Mix { members } => ScaleRecipe::Mix {
                lambda: members
                    .iter()
                    .find_map(|m| match m {
                        ScaleModel::Ewma { lambda } => Some(*lambda),
                        _ => None,
                    })
                    .unwrap_or(f64::NAN),
            },
        }
    }

    /// An unfitted scale of the recipe (constant and EWMA need no fit).
    pub fn new(recipe: ScaleRecipe) -> Self {
        match recipe {
            ScaleRecipe::Constant => ScaleModel::Constant,
            ScaleRecipe::Ewma { lambda } => ScaleModel::Ewma { lambda },
            ScaleRecipe::EwmaPerCoin { lambda } => ScaleModel::EwmaPerCoin {
                coins: BTreeMap::new(),
                lambda,
            },
            ScaleRecipe::Garch => ScaleModel::Garch {
                coins: BTreeMap::new(),
                pooled: None,
            },
            ScaleRecipe::Har => ScaleModel::Har {
                coins: BTreeMap::new(),
                pooled: None,
            },
            ScaleRecipe::Mix { lambda } => ScaleModel::Mix {
                members: [
                    ScaleRecipe::Ewma { lambda },
                    ScaleRecipe::Garch,
                    ScaleRecipe::Har,
                ]
                .into_iter()
                .map(ScaleModel::new)
                .collect(),
            },
        }
    }

    /// How many classical scales a quantile band is averaged with (`Mix`); 0 for the others.
    pub fn band_members(&self) -> usize {
        match self {
            ScaleModel::Mix { members } => members.len(),
            _ => 0,
        }
    }

    /// Fits on the hours of `train` (origins and returns before `train.end`).
    pub fn fit(
        &mut self,
        series: &[CoinSeries],
        train: &Range<i64>,
        horizon: usize,
    ) -> Result<(), ModelError> {
        match self {
            ScaleModel::Constant | ScaleModel::Ewma { .. } => Ok(()),
            ScaleModel::EwmaPerCoin { coins, .. } => {
                coins.clear();
                for s in series {
                    if let Some(lambda) = fit_ewma_lambda(s, train) {
                        coins.insert(s.coin_id.clone(), lambda);
                    }
                }
                Ok(())
            }
            ScaleModel::Garch { coins, pooled } => {
                coins.clear();
                for s in series {
                    if let Some(g) = fit_garch(s, train) {
                        coins.insert(s.coin_id.clone(), g);
                    }
                }
                *pooled = pool_garch(coins.values());
                Ok(())
            }
            ScaleModel::Har { coins, pooled } => {
                coins.clear();
                for s in series {
                    if let Some(f) = fit_har(s, train, horizon) {
                        coins.insert(s.coin_id.clone(), f);
                    }
                }
                *pooled = pool_har(coins.values());
                if pooled.is_none() {
                    return Err(ModelError::TooFewSamples {
                        needed: 1000,
                        have: 0,
                    });
                }
                Ok(())
            }
            ScaleModel::Mix { members } => members
                .iter_mut()
                .try_for_each(|m| m.fit(series, train, horizon)),
        }
    }

    /// σ̂ for horizons 1..=out.len() at origin i, from returns up to hour i; NaN when the coin
    /// has fewer than [`MIN_RETURNS`] returns in the window.
    pub fn scales(&self, s: &CoinSeries, i: usize, out: &mut [f64]) {
        match self {
            ScaleModel::Constant => out.fill(1.0),
            ScaleModel::Ewma { lambda } => ewma_scales(s, i, *lambda, out),
            ScaleModel::EwmaPerCoin { coins, lambda } => {
                ewma_scales(s, i, coins.get(&s.coin_id).copied().unwrap_or(*lambda), out)
            }
            ScaleModel::Garch { coins, pooled } => {
                let params = coins.get(&s.coin_id).copied().or_else(|| {
                    // A coin the model has not seen: the pooled dynamics around its own level.
                    pooled.map(|p| Garch11 {
                        long_run: s.realized_variance(i, WINDOW).0,
                        ..p
                    })
                });
                match params {
                    Some(g) => garch_scales(s, i, g, out),
                    None => out.fill(f64::NAN),
                }
            }
            ScaleModel::Har { coins, pooled } => match coins.get(&s.coin_id).or(pooled.as_ref()) {
                Some(f) => har_scales(s, i, f, out),
                None => out.fill(f64::NAN),
            },
            ScaleModel::Mix { members } => {
                let mut each = vec![0.0; out.len()];
                out.fill(0.0);
                for m in members {
                    m.scales(s, i, &mut each);
                    for (o, v) in out.iter_mut().zip(&each) {
                        // A member without a scale here makes the mean NaN: no interval.
                        *o += v / members.len() as f64;
                    }
                }
            }
        }
    }
}

fn ewma_scales(s: &CoinSeries, i: usize, lambda: f64, out: &mut [f64]) {
    let v = ewma_variance(s, i, lambda);
    for (k, o) in out.iter_mut().enumerate() {
        *o = (v * (k + 1) as f64).sqrt();
    }
}

/// The λ of [`LAMBDA_GRID`] whose one-hour-ahead variance best explains the coin's returns
/// before `train.end` (the newest [`FIT_LIMIT`]), by QLIKE: Σ ln σ̂² + r²/σ̂².
fn fit_ewma_lambda(s: &CoinSeries, train: &Range<i64>) -> Option<f64> {
    let end = usize::try_from(train.end - s.first_hour).ok()?.min(s.len());
    let returns: Vec<f64> = (1..end)
        .map(|j| s.hourly_return(j))
        .filter(|r| r.is_finite())
        .collect();
    // The first week starts the filter; the rest is scored.
    let warm_up = 168;
    if returns.len() < warm_up + 10 * MIN_RETURNS {
        return None;
    }
    let returns = &returns[returns.len().saturating_sub(FIT_LIMIT + warm_up)..];
    let start = returns[..warm_up].iter().map(|r| r * r).sum::<f64>() / warm_up as f64;
    let qlike = |lambda: f64| {
        let mut v = start;
        let mut loss = 0.0;
        for (k, &r) in returns.iter().enumerate() {
            if k >= warm_up && v > 0.0 {
                loss += v.ln() + r * r / v;
            }
            v = lambda * v + (1.0 - lambda) * r * r;
        }
        loss
    };
    LAMBDA_GRID
        .iter()
        .map(|&l| (qlike(l), l))
        .filter(|(loss, _)| loss.is_finite())
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, l)| l)
}

/// The EWMA of squared returns after hour i, started from the window's mean square.
fn ewma_variance(s: &CoinSeries, i: usize, lambda: f64) -> f64 {
    let (start_var, n) = s.realized_variance(i, WINDOW);
    if n < MIN_RETURNS {
        return f64::NAN;
    }
    let mut v = start_var;
    for j in (i + 1).saturating_sub(WINDOW).max(1)..=i {
        let r = s.hourly_return(j);
        if r.is_finite() {
            v = lambda * v + (1.0 - lambda) * r * r;
        }
    }
    v
}

fn garch_scales(s: &CoinSeries, i: usize, g: Garch11, out: &mut [f64]) {
    let (start_var, n) = s.realized_variance(i, WINDOW);
    if n < MIN_RETURNS || !g.long_run.is_finite() {
        out.fill(f64::NAN);
        return;
    }
    let omega = g.long_run * (1.0 - g.alpha - g.beta);
    let mut v = start_var;
    for j in (i + 1).saturating_sub(WINDOW).max(1)..=i {
        let r = s.hourly_return(j);
        if r.is_finite() {
            v = omega + g.alpha * r * r + g.beta * v;
        }
    }
    // v is σ²_{i+1|i}; later hours revert to the long run at rate α + β.
    let persistence = g.alpha + g.beta;
    let (mut sum, mut decay) = (0.0, 1.0);
    for o in out.iter_mut() {
        sum += g.long_run + decay * (v - g.long_run);
        decay *= persistence;
        *o = sum.max(0.0).sqrt();
    }
}

/// Gaussian quasi-log-likelihood (negated, up to constants) of returns under GARCH(1,1).
fn garch_nll(returns: &[f64], alpha: f64, beta: f64, long_run: f64) -> f64 {
    let omega = long_run * (1.0 - alpha - beta);
    let mut v = long_run;
    let mut nll = 0.0;
    for &r in returns {
        nll += v.ln() + r * r / v;
        v = omega + alpha * r * r + beta * v;
    }
    nll
}

/// Fits α and β by a grid over (α, α+β), refined once; variance targeting sets ω.
fn fit_garch(s: &CoinSeries, train: &Range<i64>) -> Option<Garch11> {
    let end = usize::try_from(train.end - s.first_hour).ok()?.min(s.len());
    let returns: Vec<f64> = (1..end)
        .map(|j| s.hourly_return(j))
        .filter(|r| r.is_finite())
        .collect();
    if returns.len() < 10 * MIN_RETURNS {
        return None;
    }
    let returns = &returns[returns.len().saturating_sub(FIT_LIMIT)..];
    let long_run = returns.iter().map(|r| r * r).sum::<f64>() / returns.len() as f64;
    if long_run <= 0.0 {
        return None;
    }
    let mut best = (f64::INFINITY, 0.05, 0.9);
    let try_point = |alpha: f64, persistence: f64, best: &mut (f64, f64, f64)| {
        let beta = persistence - alpha;
        if alpha <= 0.0 || beta <= 0.0 || persistence >= 0.9995 {
            return;
        }
        let nll = garch_nll(returns, alpha, beta, long_run);
        if nll < best.0 {
            *best = (nll, alpha, beta);
        }
    };
    for a in 1..=15 {
        for p in [0.80, 0.90, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998] {
            try_point(0.02 * f64::from(a), p, &mut best);
        }
    }
    let (_, a0, b0) = best;
    for da in -4..=4 {
        for dp in -4..=4 {
            try_point(
                a0 + 0.005 * f64::from(da),
                a0 + b0 + 0.002 * f64::from(dp),
                &mut best,
            );
        }
    }
    let (_, alpha, beta) = best;
    Some(Garch11 {
        alpha,
        beta,
        long_run,
    })
}

fn pool_garch<'a>(fits: impl Iterator<Item = &'a Garch11>) -> Option<Garch11> {
    let fits: Vec<&Garch11> = fits.collect();
    if fits.is_empty() {
        return None;
    }
    let n = fits.len() as f64;
    Some(Garch11 {
        alpha: fits.iter().map(|g| g.alpha).sum::<f64>() / n,
        beta: fits.iter().map(|g| g.beta).sum::<f64>() / n,
        long_run: fits.iter().map(|g| g.long_run).sum::<f64>() / n,
    })
}

/// The HAR regressors at origin i: [1, RV1, RV24, RV168], or None when a component is missing.
fn har_inputs(s: &CoinSeries, i: usize) -> Option<[f64; 4]> {
    let mut x = [1.0, 0.0, 0.0, 0.0];
    for (k, &lag) in HAR_LAGS.iter().enumerate() {
        let (v, n) = s.realized_variance(i, lag);
        let enough = if lag == 1 { n == 1 } else { 2 * n >= lag };
        if !enough {
            return None;
        }
        x[k + 1] = v;
    }
    Some(x)
}

fn fit_har(s: &CoinSeries, train: &Range<i64>, horizon: usize) -> Option<HarFit> {
    let hi = usize::try_from(train.end - s.first_hour).ok()?.min(s.len());
    let lo = usize::try_from((train.start - s.first_hour).max(0)).ok()?;
    // Origins whose targets (the next `horizon` returns) end before the training range does.
    let origins: Vec<usize> = (lo.max(HAR_LAGS[2])..hi.saturating_sub(horizon))
        .filter(|&i| s.realized_variance(i + horizon, horizon).1 == horizon)
        .collect();
    let origins = &origins[origins.len().saturating_sub(FIT_LIMIT)..];
    if origins.len() < 1000 {
        return None;
    }
    let mut coef = Vec::with_capacity(horizon);
    let mut floor = Vec::with_capacity(horizon);
    for h in 1..=horizon {
        let mut xtx = [[0.0; 4]; 4];
        let mut xty = [0.0; 4];
        let (mut ysum, mut n) = (0.0, 0usize);
        for &i in origins {
            let Some(x) = har_inputs(s, i) else {
                continue;
            };
            let (v, count) = s.realized_variance(i + h, h);
            if count != h {
                continue;
            }
            let y = v * h as f64;
            for a in 0..4 {
                xty[a] += x[a] * y;
                for b in 0..4 {
                    xtx[a][b] += x[a] * x[b];
                }
            }
            ysum += y;
            n += 1;
        }
        if n < 100 {
            return None;
        }
        // A whisper of ridge on the slopes keeps the system solvable when components coincide.
        for (a, row) in xtx.iter_mut().enumerate().skip(1) {
            row[a] += 1e-12 * n as f64;
        }
        coef.push(solve4(xtx, xty)?);
        floor.push(0.05 * ysum / n as f64);
    }
    Some(HarFit { coef, floor })
}

fn pool_har<'a>(fits: impl Iterator<Item = &'a HarFit>) -> Option<HarFit> {
    let fits: Vec<&HarFit> = fits.collect();
    let first = fits.first()?;
    let n = fits.len() as f64;
    let horizon = first.coef.len();
    let coef = (0..horizon)
        .map(|h| {
            let mut c = [0.0; 4];
            for f in &fits {
                for (k, v) in c.iter_mut().enumerate() {
                    *v += f.coef.get(h).map_or(0.0, |x| x[k]) / n;
                }
            }
            c
        })
        .collect();
    let floor = (0..horizon)
        .map(|h| {
            fits.iter()
                .map(|f| f.floor.get(h).copied().unwrap_or(0.0))
                .sum::<f64>()
                / n
        })
        .collect();
    Some(HarFit { coef, floor })
}

fn har_scales(s: &CoinSeries, i: usize, f: &HarFit, out: &mut [f64]) {
    if s.realized_variance(i, WINDOW).1 < MIN_RETURNS {
        out.fill(f64::NAN);
        return;
    }
    let x = har_inputs(s, i);
    for (h, o) in out.iter_mut().enumerate() {
        *o = match (x, f.coef.get(h), f.floor.get(h)) {
            (Some(x), Some(c), Some(&floor)) => {
                let v: f64 = x.iter().zip(c).map(|(a, b)| a * b).sum();
                v.max(floor).sqrt()
            }
            _ => f64::NAN,
        };
    }
}

/// Solves a 4×4 linear system by Gaussian elimination with partial pivoting.
fn solve4(mut a: [[f64; 4]; 4], mut b: [f64; 4]) -> Option<[f64; 4]> {
    for col in 0..4 {
        let pivot = (col..4).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let pivot_row = a[col];
        for row in col + 1..4 {
            let f = a[row][col] / pivot_row[col];
            for (x, p) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; 4];
    for row in (0..4).rev() {
        let rest: f64 = (row + 1..4).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - rest) / a[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A GARCH(1,1) path (α 0.12, β 0.87, long-run σ 1 % per hour) from deterministic noise.
    pub(crate) fn garch_path(n: usize, seed: u64) -> Vec<f64> {
        let mut gauss = crate::model::noise::gaussian(seed);
        let (alpha, beta, long_run) = (0.12, 0.87, 1e-4);
        let omega = long_run * (1.0 - alpha - beta);
        let mut v: f64 = long_run;
        let mut price = vec![100.0];
        for _ in 1..n {
            let r = v.sqrt() * gauss();
            v = omega + alpha * r * r + beta * v;
            let last = *price.last().unwrap_or(&100.0);
            price.push(last * r.exp());
        }
        price
    }

    fn series(price: Vec<f64>) -> CoinSeries {
        let n = price.len();
        CoinSeries::from_arrays("c", 0, price, vec![0.0; n], vec!["f".into()])
    }

    #[test]
    fn garch_recovers_its_parameters_and_reverts_to_the_long_run() {
        let s = series(garch_path(20_000, 7));
        let g = fit_garch(&s, &(0..20_000)).expect("fits");
        assert!((g.alpha - 0.12).abs() < 0.03, "{g:?}");
        assert!((g.alpha + g.beta - 0.99).abs() < 0.01, "{g:?}");
        let mut out = vec![0.0; 24];
        garch_scales(&s, 19_999, g, &mut out);
        // The 24-hour variance is near 24 long-run hours, whatever the current state.
        let per_hour = out[23] * out[23] / 24.0;
        assert!(
            per_hour > 0.5 * g.long_run && per_hour < 2.0 * g.long_run,
            "{out:?}"
        );
        assert!(out.windows(2).all(|w| w[1] > w[0]));
    }

    /// Constant volatility: the smoothest λ explains it best. Volatility that switches tenfold
    /// every 10 days: a faster λ.
    #[test]
    fn the_per_coin_lambda_follows_how_fast_volatility_moves() {
        let path = |sigma: &dyn Fn(usize) -> f64, seed| {
            let mut gauss = crate::model::noise::gaussian(seed);
            let mut price = vec![100.0];
            for i in 1..6000 {
                let last = price[i - 1];
                price.push(last * (sigma(i) * gauss()).exp());
            }
            series(price)
        };
        let calm = path(&|_| 0.01, 3);
        assert_eq!(fit_ewma_lambda(&calm, &(0..6000)), Some(0.995));
        let switching = path(&|i| if (i / 240) % 2 == 0 { 0.003 } else { 0.03 }, 4);
        let fast = fit_ewma_lambda(&switching, &(0..6000)).expect("fits");
        assert!(fast <= 0.97, "{fast}");
        // Too few returns before the training range ends: no fit (the fallback λ serves).
        assert_eq!(fit_ewma_lambda(&calm, &(0..200)), None);
    }

    #[test]
    fn every_scale_ranks_a_calm_hour_below_a_turbulent_one() {
        // 2000 calm hours (σ 0.2 %), then 200 turbulent ones (σ 3 %).
        let mut price = vec![100.0];
        for i in 1..2200 {
            let sigma: f64 = if i < 2000 { 0.002 } else { 0.03 };
            let sign = if (i * 7919) % 2 == 0 { 1.0 } else { -1.0 };
            let last = price[i - 1];
            price.push(last * (sign * sigma).exp());
        }
        let s = series(price);
        for recipe in [
            ScaleRecipe::Ewma { lambda: 0.97 },
            ScaleRecipe::EwmaPerCoin { lambda: 0.97 },
            ScaleRecipe::Garch,
            ScaleRecipe::Har,
            ScaleRecipe::Mix { lambda: 0.97 },
        ] {
            let mut m = ScaleModel::new(recipe);
            m.fit(std::slice::from_ref(&s), &(0..2200), 24)
                .expect("fits");
            let (mut calm, mut wild) = (vec![0.0; 24], vec![0.0; 24]);
            m.scales(&s, 1900, &mut calm);
            m.scales(&s, 2150, &mut wild);
            assert!(
                wild[0] > 3.0 * calm[0] && wild[23] > calm[23],
                "{recipe:?}: {calm:?} vs {wild:?}"
            );
        }
        let mut constant = vec![0.0; 3];
        ScaleModel::Constant.scales(&s, 5, &mut constant);
        assert_eq!(constant, vec![1.0; 3]);
    }

    #[test]
    fn too_few_returns_give_no_scale() {
        let s = series((0..20).map(|i| 100.0 + f64::from(i)).collect());
        let mut out = vec![0.0; 4];
        ScaleModel::Ewma { lambda: 0.97 }.scales(&s, 19, &mut out);
        assert!(out.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn solve4_solves() {
        let a = [
            [4.0, 1.0, 0.0, 0.0],
            [1.0, 3.0, 1.0, 0.0],
            [0.0, 1.0, 2.0, 1.0],
            [0.0, 0.0, 1.0, 5.0],
        ];
        let x = [1.0, -2.0, 3.0, 0.5];
        let b: Vec<f64> = a
            .iter()
            .map(|row| row.iter().zip(&x).map(|(p, q)| p * q).sum())
            .collect();
        let got = solve4(a, [b[0], b[1], b[2], b[3]]).expect("solvable");
        for (g, e) in got.iter().zip(x) {
            assert!((g - e).abs() < 1e-12);
        }
    }
}
