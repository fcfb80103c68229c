//! Training: Adam (AdamW with weight decay), gradient-norm clipping, early stopping on a held-out
//! validation slice after a gap, and the shrinkage of the point forecast fitted on that slice.
//! The data go to the device once (`data::DeviceRows`); every batch is indexed there.

use std::ops::Range;
use std::time::Instant;

use serde::Serialize;
use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Tensor};

use super::data::{DeviceRows, DeviceSamples, InputScaling};
use super::model::{ModelCard, TrainedLstm};
use super::net::{Net, Objective, Phase};
use super::{device_name, resolve_device, LstmSpec};
use crate::model::card::{feature_stats, CARD_FORMAT};
use crate::model::dataset::CoinSeries;
use crate::model::ModelError;

/// How long to train, and what a refit reuses.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainMode {
    /// Up to `spec.epochs`, keeping the epoch with the best loss on held-out validation origins;
    /// the shrinkage is fitted on the same origins.
    EarlyStopping,
    /// Exactly `epochs` on every origin (a refit after selection), with the shrinkage weights
    /// validation chose in the walk-forward (`[coin][horizon]` in series order; empty: 1).
    FixedEpochs {
        epochs: usize,
        shrinkage: Vec<Vec<f64>>,
    },
}

/// Training report for tracking.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub device: String,
    pub train_samples: usize,
    pub val_samples: usize,
    pub epochs_run: usize,
    /// The epoch whose weights were kept (early stopping's choice).
    pub best_epoch: usize,
    /// Seconds in the training loop (validation passes included), and samples trained per second.
    pub seconds: f64,
    pub samples_per_second: f64,
    /// Per coin (series order), per horizon: the point forecast's weight against persistence.
    pub shrinkage: Vec<Vec<f64>>,
}

/// A coin needs this many validation origins for shrinkage weights of its own (else: pooled).
const MIN_SHRINKAGE_SAMPLES: usize = 50;

/// Samples per forward pass when evaluating (validation, shrinkage).
const EVAL_CHUNK: i64 = 4096;

impl TrainedLstm {
    /// Trains on the valid origins of `series` before `until_hour` (its own feature columns
    /// are picked from whatever the series carry).
    pub fn train(
        series: &[CoinSeries],
        spec: &LstmSpec,
        objective: &Objective,
        until_hour: i64,
        mode: TrainMode,
        on_epoch: impl FnMut(usize, f64, f64),
    ) -> Result<(Self, TrainReport), ModelError> {
        let own: Vec<CoinSeries> = series
            .iter()
            .map(|s| s.with_features(&spec.features).map(|c| c.into_owned()))
            .collect::<Result<_, _>>()?;
        Trainer::new(&own, spec, objective, until_hour, mode)?.run(on_epoch)
    }
}

/// Standardization of the inputs and scales of the targets, from the training origins only.
struct Standardization {
    mean: Vec<f64>,
    std: Vec<f64>,
    target_scale: Vec<f64>,
}

impl Standardization {
    fn fit(series: &[CoinSeries], train: &[(usize, usize)], horizon: usize) -> Self {
        let f = series.first().map_or(0, |s| s.row(0).len());
        let (mut mean, mut sq) = (vec![0.0; f], vec![0.0; f]);
        let mut tsq = vec![0.0; horizon];
        for &(c, i) in train {
            for (k, v) in series[c].row(i).iter().enumerate() {
                mean[k] += v;
                sq[k] += v * v;
            }
            for (h, t) in tsq.iter_mut().enumerate() {
                *t += series[c].target(i, h + 1).powi(2);
            }
        }
        let n = train.len().max(1) as f64;
        let std = (0..f)
            .map(|k| {
                mean[k] /= n;
                let var = sq[k] / n - mean[k] * mean[k];
                if var > 1e-24 {
                    var.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        let target_scale = tsq.iter().map(|t| (t / n).sqrt().max(1e-9)).collect();
        Self {
            mean,
            std,
            target_scale,
        }
    }

    /// Targets of the samples, `[n * horizon]`, in target-scale units.
    fn targets(&self, series: &[CoinSeries], samples: &[(usize, usize)]) -> Vec<f32> {
        let mut y = Vec::with_capacity(samples.len() * self.target_scale.len());
        for &(c, i) in samples {
            for (h, scale) in self.target_scale.iter().enumerate() {
                y.push((series[c].target(i, h + 1) / scale) as f32);
            }
        }
        y
    }
}

struct Trainer<'a> {
    series: &'a [CoinSeries],
    spec: &'a LstmSpec,
    objective: &'a Objective,
    until_hour: i64,
    mode: TrainMode,
    train: Vec<(usize, usize)>,
    val: Vec<(usize, usize)>,
    scaling: Standardization,
    device: tch::Device,
}

impl<'a> Trainer<'a> {
    fn new(
        series: &'a [CoinSeries],
        spec: &'a LstmSpec,
        objective: &'a Objective,
        until_hour: i64,
        mode: TrainMode,
    ) -> Result<Self, ModelError> {
        let device = resolve_device(&spec.device)?;
        let (l, hz) = (spec.lookback_hours, spec.horizon);
        let start = series
            .iter()
            .map(|s| s.first_hour)
            .min()
            .ok_or(ModelError::NoCoins)?;
        // A fixed epoch count needs no validation: every origin trains.
        let val_len = match mode {
            TrainMode::EarlyStopping => {
                ((until_hour - start) as f64 * spec.validation_share) as i64
            }
            TrainMode::FixedEpochs { .. } => 0,
        };
        let train_range = if val_len > 0 {
            start..until_hour - val_len - spec.gap()
        } else {
            start..until_hour
        };
        let collect = |range: &Range<i64>| -> Vec<(usize, usize)> {
            series
                .iter()
                .enumerate()
                .flat_map(|(c, s)| s.origins_in(range, l, hz).into_iter().map(move |i| (c, i)))
                .collect()
        };
        let train = collect(&train_range);
        let val = collect(&(until_hour - val_len..until_hour));
        let needed = spec.batch_size.max(100);
        if train.len() < needed {
            return Err(ModelError::TooFewSamples {
                needed,
                have: train.len(),
            });
        }
        if mode == TrainMode::EarlyStopping && val.len() < 10 {
            return Err(ModelError::TooFewSamples {
                needed: 10,
                have: val.len(),
            });
        }
        let scaling = Standardization::fit(series, &train, hz);
        Ok(Self {
            series,
            spec,
            objective,
            until_hour,
            mode,
            train,
            val,
            scaling,
            device,
        })
    }

    fn input_scaling(&self) -> InputScaling<'_> {
        InputScaling {
            lookback: self.spec.lookback_hours,
            mean: &self.scaling.mean,
            std: &self.scaling.std,
            coins: self.series.len(),
            coin_slot: (0..self.series.len()).collect(),
        }
    }

    fn run(
        self,
        mut on_epoch: impl FnMut(usize, f64, f64),
    ) -> Result<(TrainedLstm, TrainReport), ModelError> {
        let (spec, device) = (self.spec, self.device);
        tch::set_num_threads(spec.threads);
        tch::manual_seed(spec.seed as i64);
        let torch = |e: tch::TchError| ModelError::Torch(e.to_string());
        let (epochs, patience) = match &self.mode {
            TrainMode::EarlyStopping => (spec.epochs, spec.patience),
            TrainMode::FixedEpochs { epochs, .. } => ((*epochs).max(1), usize::MAX),
        };
        let rows = DeviceRows::upload(self.series, &self.input_scaling(), device);
        let hz = spec.horizon;
        let train_set = rows.samples(
            &self.train,
            &self.scaling.targets(self.series, &self.train),
            hz,
        );
        let val_set = rows.samples(&self.val, &self.scaling.targets(self.series, &self.val), hz);

        let in_dim = (spec.features.len() + self.series.len()) as i64;
        let vs = nn::VarStore::new(device);
        let net = Net::new(&vs.root(), spec, self.objective, in_dim, Phase::Train);
        let mut eval_vs = nn::VarStore::new(device);
        let eval_net = Net::new(&eval_vs.root(), spec, self.objective, in_dim, Phase::Infer);
        // Same variable names in every store, so that `copy` can move weights between them.
        let mut best_vs = nn::VarStore::new(device);
        let _best_net = Net::new(&best_vs.root(), spec, self.objective, in_dim, Phase::Infer);
        let mut opt = if spec.weight_decay > 0.0 {
            nn::AdamW {
                wd: spec.weight_decay,
                ..Default::default()
            }
            .build(&vs, spec.learning_rate)
        } else {
            nn::Adam::default().build(&vs, spec.learning_rate)
        }
        .map_err(torch)?;
        let (mut train_losses, mut val_losses) = (Vec::new(), Vec::new());
        let (mut best, mut best_epoch, mut since_best) = (f64::INFINITY, 0, 0);
        let started = Instant::now();
        let mut seen = 0usize;
        let batch = spec.batch_size as i64;
        for epoch in 1..=epochs {
            let order = Tensor::randperm(train_set.len, (Kind::Int64, device));
            let take = (spec.samples_per_epoch as i64).min(train_set.len);
            // Summed on the device: reading a loss back every step would stall a GPU.
            let mut sum = Tensor::zeros([], (Kind::Float, device));
            let mut batches = 0usize;
            for start in (0..take).step_by(spec.batch_size) {
                let index = order.narrow(0, start, batch.min(take - start));
                let (x, y) = rows.batch(&train_set, &index);
                let loss = self.objective.loss(&net.forward(&x), &y);
                opt.backward_step_clip_norm(&loss, spec.clip_norm);
                sum += loss.detach();
                batches += 1;
            }
            seen += take as usize;
            let train_loss = sum.double_value(&[]) / batches.max(1) as f64;
            eval_vs.copy(&vs).map_err(torch)?;
            let val_loss = if self.val.is_empty() {
                // No validation (a fixed epoch count): the newest epoch is the one kept.
                -(epoch as f64)
            } else {
                self.validation_loss(&rows, &val_set, &eval_net)
            };
            if !train_loss.is_finite() || !val_loss.is_finite() {
                return Err(ModelError::Numeric(format!(
                    "training diverged at epoch {epoch} (loss {train_loss}, validation {val_loss})"
                )));
            }
            train_losses.push(train_loss);
            val_losses.push(val_loss);
            on_epoch(epoch, train_loss, val_loss);
            if val_loss < best {
                best = val_loss;
                best_epoch = epoch;
                since_best = 0;
                best_vs.copy(&vs).map_err(torch)?;
            } else {
                since_best += 1;
                if since_best >= patience {
                    break;
                }
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let epochs_run = train_losses.len();
        // The best weights become the model.
        let mut final_vs = nn::VarStore::new(device);
        let final_net = Net::new(&final_vs.root(), spec, self.objective, in_dim, Phase::Infer);
        final_vs.copy(&best_vs).map_err(torch)?;
        let card = ModelCard {
            format_version: CARD_FORMAT,
            spec: spec.clone(),
            objective: self.objective.clone(),
            coins: self.series.iter().map(|s| s.coin_id.clone()).collect(),
            feature_mean: self.scaling.mean.clone(),
            feature_std: self.scaling.std.clone(),
            target_scale: self.scaling.target_scale.clone(),
            shrinkage: Vec::new(),
            scale: crate::model::volatility::ScaleModel::Constant,
            calibration: None,
            interval_widths: Vec::new(),
            feature_stats: feature_stats(&spec.features, &self.train, self.series),
            trained_until_hour: self.until_hour,
            device: device_name(device),
            train_losses,
            val_losses,
            best_epoch,
            weights_sha256: String::new(),
        };
        let mut model = TrainedLstm::new(card, final_vs, final_net, device);
        model.card.shrinkage = match &self.mode {
            TrainMode::FixedEpochs { shrinkage, .. } => shrinkage.clone(),
            TrainMode::EarlyStopping => self.fit_shrinkage(&model)?,
        };
        let report = TrainReport {
            device: device_name(device),
            train_samples: self.train.len(),
            val_samples: self.val.len(),
            epochs_run,
            best_epoch,
            seconds,
            samples_per_second: seen as f64 / seconds.max(1e-9),
            shrinkage: model.card.shrinkage.clone(),
        };
        Ok((model, report))
    }

    /// The mean loss over the validation set, in chunks.
    fn validation_loss(&self, rows: &DeviceRows, set: &DeviceSamples, net: &Net) -> f64 {
        tch::no_grad(|| {
            let mut sum = 0.0;
            for index in rows.chunks(set, EVAL_CHUNK) {
                let n = index.size()[0] as f64;
                let (x, y) = rows.batch(set, &index);
                sum += self.objective.loss(&net.forward(&x), &y).double_value(&[]) * n;
            }
            sum / set.len.max(1) as f64
        })
    }

    /// Per coin and horizon, the weight w in [0, 1] on the point forecast m, from the validation
    /// origins: the least-squares weight Σ m·y / Σ m², lowered by 1.645 standard errors (its
    /// one-sided 95% lower bound; the error is inflated by √h because the h-hour targets of
    /// consecutive origins overlap), clamped. So the forecast moves away from persistence only as
    /// far as validation says it earns with confidence. A coin with too few origins gets the
    /// pooled weight.
    fn fit_shrinkage(&self, model: &TrainedLstm) -> Result<Vec<Vec<f64>>, ModelError> {
        let hz = self.spec.horizon;
        let mut sums = vec![vec![ShrinkageSums::default(); hz]; self.series.len()];
        let mut counts = vec![0usize; self.series.len()];
        for (c, s) in self.series.iter().enumerate() {
            let origins: Vec<usize> = self
                .val
                .iter()
                .filter(|&&(k, _)| k == c)
                .map(|&(_, i)| i)
                .collect();
            if origins.is_empty() {
                continue;
            }
            counts[c] = origins.len();
            // The card has no shrinkage yet: these are the unshrunk forecasts.
            let raw = model.predict_origins(s, &origins)?.point;
            for (m, &i) in raw.iter().zip(&origins) {
                for (h, acc) in sums[c].iter_mut().enumerate() {
                    acc.add(m[h], s.target(i, h + 1));
                }
            }
        }
        let pooled: Vec<f64> = (0..hz)
            .map(|h| {
                let total = sums
                    .iter()
                    .fold(ShrinkageSums::default(), |a, s| a.plus(&s[h]));
                total.weight(h + 1)
            })
            .collect();
        Ok(sums
            .iter()
            .zip(&counts)
            .map(|(by_h, &n)| {
                if n < MIN_SHRINKAGE_SAMPLES {
                    pooled.clone()
                } else {
                    by_h.iter()
                        .enumerate()
                        .map(|(h, acc)| acc.weight(h + 1))
                        .collect()
                }
            })
            .collect())
    }
}

/// Sums for the shrinkage weight of one coin's horizon.
#[derive(Debug, Clone, Copy, Default)]
struct ShrinkageSums {
    my: f64,
    mm: f64,
    yy: f64,
    n: f64,
}

impl ShrinkageSums {
    fn add(&mut self, m: f64, y: f64) {
        if m.is_finite() && y.is_finite() {
            self.my += m * y;
            self.mm += m * m;
            self.yy += y * y;
            self.n += 1.0;
        }
    }

    fn plus(&self, o: &Self) -> Self {
        Self {
            my: self.my + o.my,
            mm: self.mm + o.mm,
            yy: self.yy + o.yy,
            n: self.n + o.n,
        }
    }

    /// The lower confidence bound of the least-squares weight, in [0, 1].
    fn weight(&self, hours_ahead: usize) -> f64 {
        if self.mm <= 0.0 || self.n < 2.0 {
            return 0.0;
        }
        let w = self.my / self.mm;
        let residual = (self.yy - 2.0 * w * self.my + w * w * self.mm).max(0.0) / (self.n - 1.0);
        let se = (residual * hours_ahead as f64 / self.mm).sqrt();
        (w - 1.645 * se).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A forecast that explains the outcome gets a weight near 1; noise that merely correlates
    /// by chance on the validation origins gets 0.
    #[test]
    fn shrinkage_keeps_only_what_validation_supports() {
        let mut noise = crate::model::noise::gaussian(5);
        let (mut real, mut chance) = (ShrinkageSums::default(), ShrinkageSums::default());
        for _ in 0..2000 {
            let signal = noise();
            real.add(signal, signal + 0.1 * noise());
            chance.add(0.01 * noise(), noise());
        }
        assert!(real.weight(1) > 0.95, "{}", real.weight(1));
        assert_eq!(chance.weight(1), 0.0);
        assert_eq!(ShrinkageSums::default().weight(1), 0.0);
    }
}
