//! What a forecast is, whoever made it: a point log return per horizon and an interval around
//! it, calibrated by split-conformal prediction in one of two ways:
//!
//! - `Scaled`: scores |r − r̂| / σ̂, where σ̂ is the model's scale at the origin; the interval is
//!   r̂ ± q·σ̂.
//! - `Cqr` (conformalized quantile regression, Romano et al. 2019): scores max(lo − r, r − hi) on
//!   the model's own quantile band [lo, hi]; the interval is [lo − q, hi + q].
//!
//! q is kept at a grid of levels, per coin and horizon (pooled over coins for a coin with too few
//! scores), so that an online correction (adaptive conformal inference) can move the level.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A forecast of every horizon from a coin's latest hour.
#[derive(Debug, Clone, Serialize)]
pub struct Forecast {
    pub coin_id: String,
    /// The hour the inputs end at (hours since the epoch).
    pub as_of_hour: i64,
    pub current_price: f64,
    /// The nominal level: what the intervals aim to cover.
    pub interval_level: f64,
    pub horizons: Vec<HorizonForecast>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HorizonForecast {
    pub hours_ahead: usize,
    pub log_return: f64,
    pub price: f64,
    pub lower: f64,
    pub upper: f64,
    /// The conformal level the interval is drawn at: the nominal one, or where online coverage
    /// control (ACI) has moved it for this coin and horizon.
    pub drawn_at_level: f64,
    /// What the interval is drawn around: with the calibration, it tells at which levels an
    /// outcome would have been covered (the live reliability diagram).
    #[serde(skip)]
    pub anchor: Anchor,
}

/// The levels intervals are drawn at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Levels<'a> {
    /// The calibration's nominal level at every horizon.
    Nominal,
    /// One level per horizon (ACI); a horizon without one is drawn at the nominal level.
    PerHorizon(&'a [f64]),
}

impl<'a> Levels<'a> {
    /// A coin's per-horizon levels when it has some, else the nominal level.
    pub fn per_horizon_or_nominal(levels: Option<&'a Vec<f64>>) -> Self {
        match levels {
            Some(l) => Levels::PerHorizon(l),
            None => Levels::Nominal,
        }
    }

    pub fn at(&self, h: usize, nominal: f64) -> f64 {
        match self {
            Levels::Nominal => nominal,
            Levels::PerHorizon(levels) => levels.get(h).copied().unwrap_or(nominal),
        }
    }
}

/// Builds the forecast from point returns and interval bounds on the log return (one per
/// horizon), drawn at `levels` of `calibration`.
pub fn interval_forecast(
    coin_id: &str,
    as_of_hour: i64,
    price: f64,
    calibration: &Calibration,
    levels: Levels<'_>,
    returns: &[f64],
    anchors: &[Anchor],
) -> Forecast {
    let bounds = calibration.bounds(coin_id, anchors, levels);
    let horizons = returns
        .iter()
        .zip(anchors)
        .enumerate()
        .map(|(h, (&r, &anchor))| {
            let (lo, hi) = bounds.get(h).copied().unwrap_or((f64::NAN, f64::NAN));
            HorizonForecast {
                hours_ahead: h + 1,
                log_return: r,
                price: price * r.exp(),
                lower: price * lo.exp(),
                upper: price * hi.exp(),
                drawn_at_level: levels.at(h, calibration.level),
                anchor,
            }
        })
        .collect();
    Forecast {
        coin_id: coin_id.to_string(),
        as_of_hour,
        current_price: price,
        interval_level: calibration.level,
        horizons,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationMode {
    /// Around a point forecast: scores |r − r̂| / σ̂; the interval is r̂ ± q·σ̂.
    #[default]
    Scaled,
    /// Around the model's quantile band (CQR): scores max(lo − r, r − hi) / σ̂; the interval is
    /// [lo − q·σ̂, hi + q·σ̂] (σ̂ = 1 without a scale: plain CQR).
    Cqr,
}

/// What an interval is drawn around: a band [lo, hi] (a point forecast r̂ is the band [r̂, r̂])
/// and a scale σ̂ (1 for a constant width). Both calibration modes are this one formula.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    pub lo: f64,
    pub hi: f64,
    pub scale: f64,
}

impl Anchor {
    pub fn point(r: f64, scale: f64) -> Self {
        Self {
            lo: r,
            hi: r,
            scale,
        }
    }

    pub fn band(lo: f64, hi: f64, scale: f64) -> Self {
        Self { lo, hi, scale }
    }

    /// The conformity score of an outcome `r`: how far outside the band it fell, in units of σ̂
    /// (negative inside a band).
    pub fn score(&self, r: f64) -> f64 {
        (self.lo - r).max(r - self.hi) / self.scale
    }

    /// The interval for a calibrated quantile `q` of the scores.
    pub fn bounds(&self, q: f64) -> (f64, f64) {
        (self.lo - q * self.scale, self.hi + q * self.scale)
    }
}

/// A quantile band averaged with `members` Gaussian bands r̂ ± z·σ̄ of classical scales (σ̄ their
/// mean scale): an equal-weight quantile average, calibrated by CQR like the band itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandMix {
    pub members: usize,
    /// The Gaussian quantile of the band's level (1.645 for 90%).
    pub z: f64,
}

impl BandMix {
    /// For a band of central level `level` averaged with `members` scales; None without members.
    pub fn new(members: usize, level: f64) -> Option<Self> {
        (members > 0).then(|| Self {
            members,
            z: normal_quantile((1.0 + level) / 2.0),
        })
    }
}

/// One horizon's anchor: around the point r̂ with scale σ̂ (scaled calibration), or around the
/// quantile band (CQR) normalized by σ̂, or, with a [`BandMix`], around the averaged band, not
/// normalized (σ̂ is already in it).
pub fn anchor_of(band: Option<(f64, f64)>, point: f64, sigma: f64, mix: Option<BandMix>) -> Anchor {
    match (band, mix) {
        (None, _) => Anchor::point(point, sigma),
        (Some((lo, hi)), None) => Anchor::band(lo, hi, sigma),
        (Some((lo, hi)), Some(m)) => {
            let k = m.members as f64;
            let average = |end: f64, classical: f64| (end + k * classical) / (k + 1.0);
            Anchor::band(
                average(lo, point - m.z * sigma),
                average(hi, point + m.z * sigma),
                1.0,
            )
        }
    }
}

/// A coin needs this many scores per horizon for quantiles of its own (else: pooled).
pub const MIN_CALIBRATION_RESIDUALS: usize = 50;

/// The levels at which quantiles are kept: 0.50, 0.51, …, 0.99, 0.995.
pub fn grid_levels() -> Vec<f64> {
    (50..100)
        .map(|k| f64::from(k) / 100.0)
        .chain(std::iter::once(0.995))
        .collect()
}

/// Conformal quantiles of the scores, per coin and horizon, at the grid's levels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The nominal level (what the interval aims to cover).
    pub level: f64,
    pub mode: CalibrationMode,
    /// Where the scores come from, in words (shown on the models page).
    pub source: String,
    pub levels: Vec<f64>,
    /// Per coin: `[horizon][level]`.
    #[serde(deserialize_with = "crate::model::card::nan_tables")]
    pub per_coin: BTreeMap<String, Vec<Vec<f64>>>,
    /// Over every coin: `[horizon][level]` (NaN for a horizon without scores).
    #[serde(deserialize_with = "crate::model::card::nan_table")]
    pub pooled: Vec<Vec<f64>>,
    /// Per coin: the fewest scores behind any of its horizons.
    pub residuals: BTreeMap<String, usize>,
    /// The step of online coverage control (ACI) for this model's live intervals.
    #[serde(default = "default_aci_gamma")]
    pub aci_gamma: f64,
}

/// ACI's step when a card or protocol does not say: Gibbs & Candès' choice.
pub fn default_aci_gamma() -> f64 {
    0.005
}

impl Calibration {
    /// The score quantile for a coin's horizon `h` (0-based) at `level` (interpolated on the
    /// grid, clamped to its ends).
    pub fn quantile(&self, coin: &str, h: usize, level: f64) -> f64 {
        let table = self.per_coin.get(coin).unwrap_or(&self.pooled);
        let Some(row) = table.get(h) else {
            return f64::NAN;
        };
        interpolate(&self.levels, row, level)
    }

    /// Before any score exists: a Gaussian interval, q = z_{(1+level)/2}, at every grid level.
    pub fn gaussian(level: f64, horizon: usize) -> Self {
        let levels = grid_levels();
        let row: Vec<f64> = levels
            .iter()
            .map(|l| normal_quantile(0.5 + l / 2.0))
            .collect();
        Self {
            level,
            mode: CalibrationMode::Scaled,
            source: format!(
                "uncalibrated: Gaussian z = {:.3} for {:.0}% (no walk-forward residuals yet)",
                normal_quantile(0.5 + level / 2.0),
                level * 100.0
            ),
            levels,
            per_coin: BTreeMap::new(),
            pooled: vec![row; horizon],
            residuals: BTreeMap::new(),
            aci_gamma: default_aci_gamma(),
        }
    }

    /// Constant half-widths per coin and horizon at every level (cards before format 3: their
    /// intervals cannot follow an ACI level).
    pub fn fixed_widths(level: f64, coins: &[String], widths: &[Vec<f64>]) -> Self {
        let levels = grid_levels();
        let table =
            |w: &Vec<f64>| -> Vec<Vec<f64>> { w.iter().map(|x| vec![*x; levels.len()]).collect() };
        let per_coin: BTreeMap<String, Vec<Vec<f64>>> = coins
            .iter()
            .cloned()
            .zip(widths.iter().map(table))
            .collect();
        let horizon = widths.first().map_or(0, Vec::len);
        Self {
            level,
            mode: CalibrationMode::Scaled,
            source: "validation residuals of its own training (model format 1 or 2)".into(),
            pooled: vec![vec![f64::NAN; levels.len()]; horizon],
            levels,
            per_coin,
            residuals: BTreeMap::new(),
            aci_gamma: default_aci_gamma(),
        }
    }

    /// Interval bounds per horizon around `anchors`, at `levels`.
    pub fn bounds(&self, coin: &str, anchors: &[Anchor], levels: Levels<'_>) -> Vec<(f64, f64)> {
        anchors
            .iter()
            .enumerate()
            .map(|(h, a)| a.bounds(self.quantile(coin, h, levels.at(h, self.level))))
            .collect()
    }

    /// From scores `[coin][horizon]`.
    pub fn from_scores(
        level: f64,
        mode: CalibrationMode,
        scores: &[(String, Vec<Vec<f64>>)],
        source: String,
    ) -> Self {
        let levels = grid_levels();
        let horizon = scores.iter().map(|(_, r)| r.len()).max().unwrap_or(0);
        let mut per_coin = BTreeMap::new();
        let mut counts = BTreeMap::new();
        let mut pooled: Vec<Vec<f64>> = vec![Vec::new(); horizon];
        for (coin, by_h) in scores {
            let fewest = by_h.iter().map(Vec::len).min().unwrap_or(0);
            counts.insert(coin.clone(), fewest);
            for (h, r) in by_h.iter().enumerate() {
                pooled[h].extend(r.iter().copied().filter(|x| x.is_finite()));
            }
            if fewest >= MIN_CALIBRATION_RESIDUALS {
                let table = by_h
                    .iter()
                    .map(|r| quantiles_at(&mut r.clone(), &levels))
                    .collect();
                per_coin.insert(coin.clone(), table);
            }
        }
        let pooled = pooled
            .iter_mut()
            .map(|r| quantiles_at(r, &levels))
            .collect();
        Self {
            level,
            mode,
            source,
            levels,
            per_coin,
            pooled,
            residuals: counts,
            aci_gamma: default_aci_gamma(),
        }
    }
}

/// Split-conformal quantiles of `values` at each level (NaN without values).
fn quantiles_at(values: &mut [f64], levels: &[f64]) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    levels.iter().map(|&l| conformal_rank(values, l)).collect()
}

/// The ceil((n+1) * level)-th smallest of sorted `values`: split-conformal's finite-sample
/// quantile (the largest when n is too small for the level; NaN without values).
fn conformal_rank(sorted: &[f64], level: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() + 1) as f64 * level).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn interpolate(levels: &[f64], values: &[f64], level: f64) -> f64 {
    let (Some(&first), Some(&last)) = (levels.first(), levels.last()) else {
        return f64::NAN;
    };
    let level = level.clamp(first, last);
    let k = levels
        .partition_point(|l| *l <= level)
        .clamp(1, levels.len())
        - 1;
    if k + 1 >= levels.len() || k + 1 >= values.len() {
        return values.get(k).copied().unwrap_or(f64::NAN);
    }
    let t = (level - levels[k]) / (levels[k + 1] - levels[k]);
    values[k] + t * (values[k + 1] - values[k])
}

/// The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    if !(0.0..1.0).contains(&p) || p == 0.0 {
        return f64::NAN;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Adaptive conformal inference (Gibbs & Candès 2021): after each outcome the miss rate aimed at
/// moves by γ·(α − err), so realized coverage returns to nominal when the world shifts. Bounded,
/// so that one bad spell cannot ask for an infinite (or empty) interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aci {
    /// The nominal miss rate, 1 − level.
    pub target: f64,
    pub gamma: f64,
    /// The miss rate aimed at now.
    pub alpha: f64,
}

/// The bounds of an ACI miss rate: levels between 50% and 99.5%.
pub const ACI_ALPHA_RANGE: (f64, f64) = (0.005, 0.5);

impl Aci {
    pub fn new(level: f64, gamma: f64) -> Self {
        Self {
            target: 1.0 - level,
            gamma,
            alpha: 1.0 - level,
        }
    }

    /// For a forecast `hours_ahead` hours ahead the step is γ / hours_ahead: the outcomes of
    /// consecutive origins overlap in all but one hour, so about one in `hours_ahead` is news, and
    /// a full step on each (fed back `hours_ahead` hours late) makes the level oscillate; an
    /// oscillating level widens the intervals on average for the same coverage.
    pub fn for_horizon(level: f64, gamma: f64, hours_ahead: usize) -> Self {
        Self::new(level, gamma / hours_ahead.max(1) as f64)
    }

    /// One outcome: `missed` when it fell outside its interval.
    pub fn update(&mut self, missed: bool) {
        let err = if missed { 1.0 } else { 0.0 };
        self.alpha = (self.alpha + self.gamma * (self.target - err))
            .clamp(ACI_ALPHA_RANGE.0, ACI_ALPHA_RANGE.1);
    }

    /// The level the next interval is drawn at.
    pub fn level(&self) -> f64 {
        1.0 - self.alpha
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles() {
        assert!((normal_quantile(0.95) - 1.644_853_626_951).abs() < 1e-8);
        assert!((normal_quantile(0.5)).abs() < 1e-12);
        assert!((normal_quantile(0.005) + 2.575_829_303_549).abs() < 1e-8);
    }

    #[test]
    fn a_coin_with_too_few_scores_uses_the_pooled_quantiles() {
        let many: Vec<f64> = (1..=100).map(f64::from).collect();
        let few = vec![1000.0; 10];
        let c = Calibration::from_scores(
            0.9,
            CalibrationMode::Scaled,
            &[("a".into(), vec![many]), ("b".into(), vec![few])],
            "test".into(),
        );
        // ceil(101 * 0.9) = the 91st smallest.
        assert_eq!(c.quantile("a", 0, 0.9), 91.0);
        // Between grid levels, interpolated: 0.905 lies halfway between 0.90 and 0.91.
        assert_eq!(c.quantile("a", 0, 0.905), 91.5);
        assert_eq!(c.quantile("b", 0, 0.9), c.quantile("unknown", 0, 0.9));
        assert_eq!(c.residuals["b"], 10);
    }

    #[test]
    fn a_band_mix_averages_the_band_with_the_gaussian_bands_of_its_members() {
        let mix = BandMix::new(3, 0.9).expect("members");
        assert!((mix.z - 1.644_853_626_951).abs() < 1e-8);
        assert_eq!(BandMix::new(0, 0.9), None);
        // Band [-1, 1], point 0, mean scale 0.5: each member's band is ±0.822.
        let a = anchor_of(Some((-1.0, 1.0)), 0.0, 0.5, Some(mix));
        let member = mix.z * 0.5;
        assert!((a.lo - (-1.0 - 3.0 * member) / 4.0).abs() < 1e-12, "{a:?}");
        assert!((a.hi - (1.0 + 3.0 * member) / 4.0).abs() < 1e-12, "{a:?}");
        assert_eq!(a.scale, 1.0);
        // Without a mix: the band normalized by the scale; without a band: the point.
        assert_eq!(
            anchor_of(Some((-1.0, 1.0)), 0.0, 0.5, None),
            Anchor::band(-1.0, 1.0, 0.5)
        );
        assert_eq!(
            anchor_of(None, 0.1, 0.5, Some(mix)),
            Anchor::point(0.1, 0.5)
        );
    }

    #[test]
    fn cqr_widens_a_band_by_its_score_quantile() {
        // A band [-1, 1]: outcomes inside score below 0, outside above.
        let band = Anchor::band(-1.0, 1.0, 1.0);
        assert_eq!(band.score(0.5), -0.5);
        assert_eq!(band.score(1.5), 0.5);
        assert_eq!(band.bounds(0.25), (-1.25, 1.25));
        // Normalized by a scale: the same distance counts half when σ̂ doubles.
        assert_eq!(Anchor::band(-1.0, 1.0, 2.0).score(2.0), 0.5);
        assert_eq!(Anchor::band(-1.0, 1.0, 2.0).bounds(0.5), (-2.0, 2.0));
        // A point forecast is a band of width 0: |r - r̂| / σ̂.
        let point = Anchor::point(0.1, 2.0);
        assert_eq!(point.score(-0.9), 0.5);
        assert_eq!(point.bounds(1.5), (0.1 - 3.0, 0.1 + 3.0));
    }

    /// Scores calibrated on a calm stretch; then the spread grows by half. Fixed conformal
    /// intervals under-cover for good; ACI moves its level until coverage is back at nominal.
    #[test]
    fn aci_pulls_coverage_back_to_nominal_after_a_shift() {
        let mut gauss = crate::model::noise::gaussian(9);
        let calm: Vec<f64> = (0..5000).map(|_| gauss().abs()).collect();
        let cal = Calibration::from_scores(
            0.9,
            CalibrationMode::Scaled,
            &[("c".into(), vec![calm])],
            "calm".into(),
        );
        let shifted: Vec<f64> = (0..20000).map(|_| 1.5 * gauss()).collect();
        let mut aci = Aci::new(0.9, 0.005);
        let (mut fixed_hits, mut aci_hits, mut counted) = (0usize, 0usize, 0usize);
        for (i, y) in shifted.iter().enumerate() {
            let fixed = cal.quantile("c", 0, 0.9);
            let adaptive = cal.quantile("c", 0, aci.level());
            let covered = y.abs() <= adaptive;
            // Judge both once ACI has had time to adapt.
            if i >= 5000 {
                counted += 1;
                fixed_hits += usize::from(y.abs() <= fixed);
                aci_hits += usize::from(covered);
            }
            aci.update(!covered);
        }
        let fixed = fixed_hits as f64 / counted as f64;
        let adaptive = aci_hits as f64 / counted as f64;
        assert!(
            fixed < 0.80,
            "fixed conformal under-covers after the shift: {fixed}"
        );
        assert!((adaptive - 0.9).abs() < 0.02, "ACI: {adaptive}");
        assert!(aci.alpha < 0.1 && aci.alpha >= ACI_ALPHA_RANGE.0);
    }
}
