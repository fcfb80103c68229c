//! The LSTM forecaster on libtorch (tch): spec (`models/lstm.toml`), network, training with Adam,
//! gradient clipping and early stopping, split-conformal widths from validation residuals, and the
//! artifact (safetensors weights + a JSON card) that inference loads.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::nn::{self, Module, OptimizerConfig, RNN};
use tch::{Device, Kind, Tensor};

use super::baselines::{FitReport, Forecaster};
use super::dataset::CoinSeries;
use super::evaluate::conformal_quantile;
use super::forecast::{Forecast, HorizonForecast};
use super::ModelError;

pub const DEFAULT_SPEC: &str = include_str!("../../models/lstm.toml");

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LstmSpec {
    pub lookback_hours: usize,
    pub horizon: usize,
    pub hidden_size: i64,
    pub num_layers: i64,
    pub dropout: f64,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub epochs: usize,
    pub patience: usize,
    pub clip_norm: f64,
    pub samples_per_epoch: usize,
    pub validation_share: f64,
    pub interval_level: f64,
    pub seed: u64,
    pub threads: i32,
    pub device: String,
    pub features: Vec<String>,
}

impl LstmSpec {
    pub fn parse(origin: &str, text: &str) -> Result<Self, ModelError> {
        let spec: LstmSpec = super::parse_definition(origin, text)?;
        let bad = |m: &str| ModelError::Definition {
            origin: origin.to_string(),
            message: m.to_string(),
        };
        if !(1..=24).contains(&spec.horizon) {
            return Err(bad("`horizon` must be 1..=24"));
        }
        if spec.lookback_hours == 0 || spec.hidden_size <= 0 || spec.num_layers <= 0 {
            return Err(bad(
                "`lookback_hours`, `hidden_size` and `num_layers` must be positive",
            ));
        }
        if spec.batch_size == 0 || spec.epochs == 0 || spec.samples_per_epoch == 0 {
            return Err(bad(
                "`batch_size`, `epochs` and `samples_per_epoch` must be positive",
            ));
        }
        if !(0.0..1.0).contains(&spec.dropout) || !(0.01..=0.5).contains(&spec.validation_share) {
            return Err(bad(
                "`dropout` must be in [0, 1) and `validation_share` in [0.01, 0.5]",
            ));
        }
        if !(0.5..1.0).contains(&spec.interval_level) || spec.threads < 1 {
            return Err(bad(
                "`interval_level` must be in [0.5, 1) and `threads` >= 1",
            ));
        }
        if spec.features.is_empty() {
            return Err(bad("`features` must name at least one column"));
        }
        resolve_device(&spec.device)?;
        Ok(spec)
    }

    pub fn gap(&self) -> i64 {
        (self.lookback_hours + self.horizon) as i64
    }
}

/// `auto` (CUDA when available), `cpu` or `cuda`; asking for CUDA without one is an error.
pub fn resolve_device(name: &str) -> Result<Device, ModelError> {
    match name {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        "cuda" => Err(ModelError::Device(
            "CUDA was requested but no CUDA device is available (build with `make build TORCH=cuda` on a GPU host, or use device = \"auto\")".into(),
        )),
        other => Err(ModelError::Device(format!(
            "unknown device `{other}`: use auto, cpu or cuda"
        ))),
    }
}

pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The bin of `x` among `edges` (sorted): how many edges are <= x.
pub fn psi_bin(edges: &[f64], x: f64) -> usize {
    edges.partition_point(|e| *e <= x)
}

/// The model card format this binary writes. 1: cards before schema 5 (read as they are).
pub const CARD_FORMAT: u32 = 2;

fn legacy_format() -> u32 {
    1
}

/// What the artifact carries besides the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    #[serde(default = "legacy_format")]
    pub format_version: u32,
    pub spec: LstmSpec,
    /// Coins in input order (the one-hot part of the input).
    pub coins: Vec<String>,
    pub feature_mean: Vec<f64>,
    pub feature_std: Vec<f64>,
    /// Per horizon: the std of the training targets (outputs are scaled by it).
    pub target_scale: Vec<f64>,
    /// Per coin, per horizon: conformal half-widths on the log return (from the walk-forward's
    /// out-of-sample residuals; format 1: from validation residuals).
    pub interval_widths: Vec<Vec<f64>>,
    /// Per feature: training distribution for drift checks.
    pub feature_stats: Vec<FeatureStats>,
    /// The last origin hour used for training (validation included).
    pub trained_until_hour: i64,
    pub device: String,
    pub train_losses: Vec<f64>,
    pub val_losses: Vec<f64>,
    pub best_epoch: usize,
    pub weights_sha256: String,
}

impl ModelCard {
    /// Reads `model.json` of an artifact folder (without the weights).
    pub fn read(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("model.json");
        let art = |message: String| ModelError::Artifact {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| art(e.to_string()))?;
        check_card_format(&path, &text)?;
        serde_json::from_str(&text).map_err(|e| art(e.to_string()))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureStats {
    pub name: String,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub p01: f64,
    pub p99: f64,
    pub max: f64,
    /// Bin edges for the population stability index: the training deciles, without repeats
    /// (a value equal to an edge falls in the bin above it). Empty in models trained before PSI.
    #[serde(default)]
    pub psi_edges: Vec<f64>,
    /// Share of the training origins in each of the `psi_edges.len() + 1` bins.
    #[serde(default)]
    pub psi_expected: Vec<f64>,
}

struct Net {
    lstm: nn::LSTM,
    head: nn::Linear,
}

impl Net {
    fn new(vs: &nn::Path, spec: &LstmSpec, in_dim: i64, train: bool) -> Self {
        let cfg = nn::RNNConfig {
            num_layers: spec.num_layers,
            dropout: if spec.num_layers > 1 {
                spec.dropout
            } else {
                0.0
            },
            train,
            batch_first: true,
            ..Default::default()
        };
        Self {
            lstm: nn::lstm(vs / "lstm", in_dim, spec.hidden_size, cfg),
            head: nn::linear(
                vs / "head",
                spec.hidden_size,
                spec.horizon as i64,
                Default::default(),
            ),
        }
    }

    /// [batch, lookback, in_dim] -> [batch, horizon] (scaled returns).
    fn forward(&self, x: &Tensor) -> Tensor {
        let (out, _) = self.lstm.seq(x);
        let last = out.select(1, -1);
        self.head.forward(&last)
    }
}

/// A trained (or loaded) LSTM, ready to predict.
pub struct TrainedLstm {
    pub card: ModelCard,
    vs: nn::VarStore,
    net: Net,
    device: Device,
}

/// Inputs of samples (coin index, origin) as a [n, lookback, features + coins] f32 tensor.
fn batch_inputs(
    card_like: &InputScaling<'_>,
    samples: &[(usize, usize)],
    series: &[&CoinSeries],
) -> Tensor {
    let (l, f, c) = (card_like.lookback, card_like.mean.len(), card_like.coins);
    let d = f + c;
    let mut data = vec![0f32; samples.len() * l * d];
    for (b, &(coin, i)) in samples.iter().enumerate() {
        let s = series[coin];
        for (t, j) in (i + 1 - l..=i).enumerate() {
            let base = (b * l + t) * d;
            for (k, v) in s.row(j).iter().enumerate() {
                data[base + k] = ((v - card_like.mean[k]) / card_like.std[k]) as f32;
            }
            data[base + f + card_like.coin_slot[coin]] = 1.0;
        }
    }
    Tensor::from_slice(&data).view([samples.len() as i64, l as i64, d as i64])
}

struct InputScaling<'a> {
    lookback: usize,
    mean: &'a [f64],
    std: &'a [f64],
    coins: usize,
    /// series index -> one-hot slot
    coin_slot: Vec<usize>,
}

/// How long to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainMode {
    /// Up to `spec.epochs`, keeping the epoch with the best loss on held-out validation origins.
    EarlyStopping,
    /// Exactly this many epochs on every origin (a refit after selection).
    FixedEpochs(usize),
}

/// Training report for tracking.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub train_samples: usize,
    pub val_samples: usize,
    pub epochs_run: usize,
    /// The epoch whose weights were kept (early stopping's choice).
    pub best_epoch: usize,
    pub seconds: f64,
    pub samples_per_second: f64,
}

impl TrainedLstm {
    /// Trains on the valid origins of `series` before `until_hour` (its own feature columns
    /// are picked from whatever the series carry).
    pub fn train(
        series: &[CoinSeries],
        spec: &LstmSpec,
        until_hour: i64,
        mode: TrainMode,
        on_epoch: impl FnMut(usize, f64, f64),
    ) -> Result<(Self, TrainReport), ModelError> {
        let own: Vec<CoinSeries> = series
            .iter()
            .map(|s| s.with_features(&spec.features).map(|c| c.into_owned()))
            .collect::<Result<_, _>>()?;
        Self::train_own(&own, spec, until_hour, mode, on_epoch)
    }

    fn train_own(
        series: &[CoinSeries],
        spec: &LstmSpec,
        until_hour: i64,
        mode: TrainMode,
        mut on_epoch: impl FnMut(usize, f64, f64),
    ) -> Result<(Self, TrainReport), ModelError> {
        let device = resolve_device(&spec.device)?;
        tch::set_num_threads(spec.threads);
        tch::manual_seed(spec.seed as i64);
        let (l, hz) = (spec.lookback_hours, spec.horizon);
        let start = series
            .iter()
            .map(|s| s.first_hour)
            .min()
            .ok_or(ModelError::NoCoins)?;
        let span = until_hour - start;
        // A fixed epoch count needs no validation: every origin trains.
        let (val_len, epochs, patience) = match mode {
            TrainMode::EarlyStopping => (
                (span as f64 * spec.validation_share) as i64,
                spec.epochs,
                spec.patience,
            ),
            TrainMode::FixedEpochs(n) => (0, n.max(1), usize::MAX),
        };
        let train_range = if val_len > 0 {
            start..until_hour - val_len - spec.gap()
        } else {
            start..until_hour
        };
        let val_range = until_hour - val_len..until_hour;
        let collect = |range: &std::ops::Range<i64>| -> Vec<(usize, usize)> {
            series
                .iter()
                .enumerate()
                .flat_map(|(c, s)| s.origins_in(range, l, hz).into_iter().map(move |i| (c, i)))
                .collect()
        };
        let train = collect(&train_range);
        let val = collect(&val_range);
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
        // Standardization and target scales from the training origins only.
        let f = spec.features.len();
        let (mut mean, mut sq) = (vec![0.0; f], vec![0.0; f]);
        let mut tsq = vec![0.0; hz];
        for &(c, i) in &train {
            for (k, v) in series[c].row(i).iter().enumerate() {
                mean[k] += v;
                sq[k] += v * v;
            }
            for (h, t) in tsq.iter_mut().enumerate() {
                *t += series[c].target(i, h + 1).powi(2);
            }
        }
        let n = train.len() as f64;
        let std: Vec<f64> = (0..f)
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
        let target_scale: Vec<f64> = tsq.iter().map(|t| (t / n).sqrt().max(1e-9)).collect();
        let scaling = InputScaling {
            lookback: l,
            mean: &mean,
            std: &std,
            coins: series.len(),
            coin_slot: (0..series.len()).collect(),
        };
        let refs: Vec<&CoinSeries> = series.iter().collect();
        let targets = |samples: &[(usize, usize)]| -> Tensor {
            let mut y = Vec::with_capacity(samples.len() * hz);
            for &(c, i) in samples {
                for (h, scale) in target_scale.iter().enumerate() {
                    y.push((series[c].target(i, h + 1) / scale) as f32);
                }
            }
            Tensor::from_slice(&y).view([samples.len() as i64, hz as i64])
        };

        let in_dim = (f + series.len()) as i64;
        let vs = nn::VarStore::new(device);
        let net = Net::new(&vs.root(), spec, in_dim, true);
        let mut eval_vs = nn::VarStore::new(device);
        let eval_net = Net::new(&eval_vs.root(), spec, in_dim, false);
        // Same variable names in every store, so that `copy` can move weights between them.
        let mut best_vs = nn::VarStore::new(device);
        let _best_net = Net::new(&best_vs.root(), spec, in_dim, false);
        let mut opt = nn::Adam::default()
            .build(&vs, spec.learning_rate)
            .map_err(|e| ModelError::Torch(e.to_string()))?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(spec.seed);
        let val_x = batch_inputs(&scaling, &val, &refs).to_device(device);
        let val_y = targets(&val).to_device(device);
        let (mut train_losses, mut val_losses) = (Vec::new(), Vec::new());
        let (mut best, mut best_epoch, mut since_best) = (f64::INFINITY, 0, 0);
        let started = std::time::Instant::now();
        let mut seen = 0usize;
        let mut order = train.clone();
        for epoch in 1..=epochs {
            order.shuffle(&mut rng);
            let take = spec.samples_per_epoch.min(order.len());
            let (mut sum, mut batches) = (0.0, 0usize);
            for chunk in order[..take].chunks(spec.batch_size) {
                let x = batch_inputs(&scaling, chunk, &refs).to_device(device);
                let y = targets(chunk).to_device(device);
                let loss = net.forward(&x).mse_loss(&y, tch::Reduction::Mean);
                opt.backward_step_clip_norm(&loss, spec.clip_norm);
                sum += loss.double_value(&[]);
                batches += 1;
                seen += chunk.len();
            }
            let train_loss = sum / batches.max(1) as f64;
            eval_vs
                .copy(&vs)
                .map_err(|e| ModelError::Torch(e.to_string()))?;
            let val_loss = if val.is_empty() {
                // No validation (a fixed epoch count): the newest epoch is the one kept.
                -(epoch as f64)
            } else {
                tch::no_grad(|| {
                    eval_net
                        .forward(&val_x)
                        .mse_loss(&val_y, tch::Reduction::Mean)
                        .double_value(&[])
                })
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
                best_vs
                    .copy(&vs)
                    .map_err(|e| ModelError::Torch(e.to_string()))?;
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
        let final_net = Net::new(&final_vs.root(), spec, in_dim, false);
        final_vs
            .copy(&best_vs)
            .map_err(|e| ModelError::Torch(e.to_string()))?;
        let feature_stats = feature_stats(&spec.features, &train, series);
        let mut model = TrainedLstm {
            card: ModelCard {
                format_version: CARD_FORMAT,
                spec: spec.clone(),
                coins: series.iter().map(|s| s.coin_id.clone()).collect(),
                feature_mean: mean,
                feature_std: std,
                target_scale,
                interval_widths: Vec::new(),
                feature_stats,
                trained_until_hour: until_hour,
                device: device_name(device),
                train_losses,
                val_losses,
                best_epoch,
                weights_sha256: String::new(),
            },
            vs: final_vs,
            net: final_net,
            device,
        };
        // Split-conformal widths per coin and horizon from the validation residuals (replaced by
        // the walk-forward's out-of-sample ones when a selection run registers the model).
        let widths = series
            .iter()
            .map(|s| {
                let origins = s.origins_in(&val_range, l, hz);
                let preds = model.predict_origins(s, &origins)?;
                let mut residuals = vec![Vec::new(); hz];
                for (p, &i) in preds.iter().zip(&origins) {
                    for (h, r) in residuals.iter_mut().enumerate() {
                        r.push((s.target(i, h + 1) - p[h]).abs());
                    }
                }
                Ok(residuals
                    .iter_mut()
                    .map(|r| conformal_quantile(r, spec.interval_level))
                    .collect())
            })
            .collect::<Result<Vec<Vec<f64>>, ModelError>>()?;
        model.card.interval_widths = widths;
        let report = TrainReport {
            train_samples: train.len(),
            val_samples: val.len(),
            epochs_run,
            best_epoch,
            seconds,
            samples_per_second: seen as f64 / seconds.max(1e-9),
        };
        Ok((model, report))
    }

    /// Predicted log returns for each origin of a coin the model knows.
    pub fn predict_origins(
        &self,
        s: &CoinSeries,
        origins: &[usize],
    ) -> Result<Vec<Vec<f64>>, ModelError> {
        let own = s.with_features(&self.card.spec.features)?;
        let s: &CoinSeries = &own;
        let slot = self.coin_slot(&s.coin_id)?;
        let l = self.card.spec.lookback_hours;
        if let Some(&bad) = origins.iter().find(|&&i| i + 1 < l || i >= s.len()) {
            return Err(ModelError::TooFewSamples {
                needed: l,
                have: bad + 1,
            });
        }
        let scaling = InputScaling {
            lookback: l,
            mean: &self.card.feature_mean,
            std: &self.card.feature_std,
            coins: self.card.coins.len(),
            coin_slot: vec![slot],
        };
        let samples: Vec<(usize, usize)> = origins.iter().map(|&i| (0, i)).collect();
        self.run(&scaling, &samples, &[s])
    }

    /// The coin's position in the one-hot input.
    fn coin_slot(&self, coin_id: &str) -> Result<usize, ModelError> {
        self.card
            .coins
            .iter()
            .position(|c| c == coin_id)
            .ok_or_else(|| ModelError::UnknownCoin(coin_id.to_string()))
    }

    /// Runs the network on samples (series index, origin), unscaling the outputs.
    fn run(
        &self,
        scaling: &InputScaling<'_>,
        samples: &[(usize, usize)],
        series: &[&CoinSeries],
    ) -> Result<Vec<Vec<f64>>, ModelError> {
        // OpenMP's thread count is per calling thread: set it here, on whatever thread infers
        // (a server's blocking pool included), or libtorch spins up one worker per core.
        tch::set_num_threads(self.card.spec.threads);
        let mut out = Vec::with_capacity(samples.len());
        for chunk in samples.chunks(4096) {
            let x = batch_inputs(scaling, chunk, series).to_device(self.device);
            if x.isnan().any().int64_value(&[]) != 0 {
                return Err(ModelError::Numeric(
                    "NaN in the inputs (a missing hour or NULL feature in the lookback window)"
                        .into(),
                ));
            }
            let y = tch::no_grad(|| self.net.forward(&x))
                .to_device(Device::Cpu)
                .to_kind(Kind::Double);
            let flat: Vec<f64> =
                Vec::<f64>::try_from(y.view([-1])).map_err(|e| ModelError::Torch(e.to_string()))?;
            for row in flat.chunks(self.card.spec.horizon) {
                out.push(
                    row.iter()
                        .zip(&self.card.target_scale)
                        .map(|(v, s)| v * s)
                        .collect(),
                );
            }
        }
        Ok(out)
    }

    /// Writes `weights.safetensors`, then `model.json`, into `dir` (a temporary folder: see
    /// `artifacts::write_atomically`); `after_weights` runs in between (a crash point).
    pub fn save(&mut self, dir: &Path, after_weights: &dyn Fn()) -> Result<(), ModelError> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::Artifact {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        let weights = dir.join("weights.safetensors");
        self.vs
            .save(&weights)
            .map_err(|e| ModelError::Torch(e.to_string()))?;
        after_weights();
        self.card.weights_sha256 = sha256_file(&weights)?;
        let json = serde_json::to_string_pretty(&self.card).map_err(|e| ModelError::Artifact {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        std::fs::write(dir.join("model.json"), json).map_err(|e| ModelError::Artifact {
            path: dir.join("model.json").display().to_string(),
            message: e.to_string(),
        })
    }

    /// Loads an artifact, checking the weights' checksum and their shapes against the card, and
    /// sets libtorch's thread count to the spec's.
    pub fn load(dir: &Path, device: Device) -> Result<Self, ModelError> {
        let art = |path: &Path, message: String| ModelError::Artifact {
            path: path.display().to_string(),
            message,
        };
        let card = ModelCard::read(dir)?;
        let weights = dir.join("weights.safetensors");
        let sha = sha256_file(&weights)?;
        if sha != card.weights_sha256 {
            return Err(art(
                &weights,
                "checksum differs from model.json: the file is corrupted or was replaced".into(),
            ));
        }
        // Same thread count as in training: results are then bit-identical across processes
        // (the order of float sums depends on the intra-op thread count).
        tch::set_num_threads(card.spec.threads);
        let in_dim = (card.spec.features.len() + card.coins.len()) as i64;
        let mut vs = nn::VarStore::new(device);
        let net = Net::new(&vs.root(), &card.spec, in_dim, false);
        vs.load(&weights).map_err(|e| {
            art(
                &weights,
                format!("weights do not fit the configuration in model.json: {e}"),
            )
        })?;
        Ok(Self {
            card,
            vs,
            net,
            device,
        })
    }
}

impl TrainedLstm {
    /// Forecasts from past origins (a backtest); origins whose inputs are incomplete are left out.
    pub fn forecast_at(
        &self,
        s: &CoinSeries,
        origins: &[usize],
    ) -> Result<Vec<Forecast>, ModelError> {
        let lookback = self.card.spec.lookback_hours;
        let own = s.with_features(&self.card.spec.features)?;
        let usable: Vec<usize> = origins
            .iter()
            .copied()
            .filter(|&i| own.has_inputs(i, lookback))
            .collect();
        self.forecast_origins(&own, &usable)
    }

    /// Forecasts from the given origins of a coin it knows (their inputs must be complete).
    pub fn forecast_origins(
        &self,
        s: &CoinSeries,
        origins: &[usize],
    ) -> Result<Vec<Forecast>, ModelError> {
        let slot = self.coin_slot(&s.coin_id)?;
        let returns = self.predict_origins(s, origins)?;
        let widths = self
            .card
            .interval_widths
            .get(slot)
            .cloned()
            .unwrap_or_default();
        let ones = vec![1.0; self.card.spec.horizon];
        Ok(origins
            .iter()
            .zip(returns)
            .map(|(&i, r)| {
                super::forecast::interval_forecast(
                    &s.coin_id,
                    s.hour_of(i),
                    s.price[i],
                    self.card.spec.interval_level,
                    &r,
                    &ones,
                    &widths,
                )
            })
            .collect())
    }

    /// Predicts every horizon from the newest hour of `s` (its inputs must be complete).
    pub fn forecast_latest(&self, s: &CoinSeries) -> Result<Forecast, ModelError> {
        let mut all = self.forecast_latest_many(&[s])?;
        all.pop()
            .ok_or_else(|| ModelError::NoData(s.coin_id.clone()))
    }

    /// As [`TrainedLstm::forecast_latest`] for many coins, in one forward pass.
    pub fn forecast_latest_many(
        &self,
        series: &[&CoinSeries],
    ) -> Result<Vec<Forecast>, ModelError> {
        let own: Vec<std::borrow::Cow<'_, CoinSeries>> = series
            .iter()
            .map(|s| s.with_features(&self.card.spec.features))
            .collect::<Result<_, _>>()?;
        let series: Vec<&CoinSeries> = own.iter().map(|c| c.as_ref()).collect();
        let series = series.as_slice();
        let l = self.card.spec.lookback_hours;
        let mut slots = Vec::with_capacity(series.len());
        let mut samples = Vec::with_capacity(series.len());
        for (k, s) in series.iter().enumerate() {
            let i = s
                .len()
                .checked_sub(1)
                .ok_or_else(|| ModelError::NoData(s.coin_id.clone()))?;
            if !s.has_inputs(i, l) {
                return Err(ModelError::Numeric(format!(
                    "{}: the last {l} hours are not complete (a missing hour or NULL feature); no forecast",
                    s.coin_id
                )));
            }
            let slot = self.coin_slot(&s.coin_id)?;
            slots.push(slot);
            samples.push((k, i));
        }
        let scaling = InputScaling {
            lookback: l,
            mean: &self.card.feature_mean,
            std: &self.card.feature_std,
            coins: self.card.coins.len(),
            coin_slot: slots.clone(),
        };
        let returns = self.run(&scaling, &samples, series)?;
        Ok(series
            .iter()
            .zip(&samples)
            .zip(returns)
            .zip(&slots)
            .map(|(((s, &(_, i)), r), &slot)| {
                let price = s.price[i];
                let horizons = r
                    .iter()
                    .enumerate()
                    .map(|(h, &lr)| {
                        let w = self.card.interval_widths[slot]
                            .get(h)
                            .copied()
                            .unwrap_or(f64::NAN);
                        HorizonForecast {
                            hours_ahead: h + 1,
                            log_return: lr,
                            price: price * lr.exp(),
                            lower: price * (lr - w).exp(),
                            upper: price * (lr + w).exp(),
                        }
                    })
                    .collect();
                Forecast {
                    coin_id: s.coin_id.clone(),
                    as_of_hour: s.first_hour + i as i64,
                    current_price: price,
                    interval_level: self.card.spec.interval_level,
                    horizons,
                }
            })
            .collect())
    }
}

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

fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::Artifact {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(hex::encode(Sha256::digest(bytes)))
}

pub(crate) fn feature_stats(
    names: &[String],
    train: &[(usize, usize)],
    series: &[CoinSeries],
) -> Vec<FeatureStats> {
    names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mut v: Vec<f64> = train.iter().map(|&(c, i)| series[c].row(i)[k]).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len().max(1) as f64;
            let mean = v.iter().sum::<f64>() / n;
            let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            let q = |p: f64| {
                v.get(((v.len() as f64 - 1.0) * p) as usize)
                    .copied()
                    .unwrap_or(f64::NAN)
            };
            let mut psi_edges: Vec<f64> = (1..10).map(|d| q(d as f64 / 10.0)).collect();
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

/// The LSTM as a candidate: `fit` trains a network (early stopping, or a fixed epoch count for a
/// refit after selection), like any other forecaster of the walk-forward.
pub struct LstmCandidate {
    spec: LstmSpec,
    fixed_epochs: Option<usize>,
    pub model: Option<TrainedLstm>,
    pub reports: Vec<TrainReport>,
}

impl LstmCandidate {
    pub fn new(spec: LstmSpec, fixed_epochs: Option<usize>) -> Self {
        Self {
            spec,
            fixed_epochs,
            model: None,
            reports: Vec::new(),
        }
    }
}

impl Forecaster for LstmCandidate {
    fn fit(
        &mut self,
        series: &[CoinSeries],
        train: &std::ops::Range<i64>,
        _lookback: usize,
        _horizon: usize,
    ) -> Result<FitReport, ModelError> {
        let mode = match self.fixed_epochs {
            Some(n) => TrainMode::FixedEpochs(n),
            None => TrainMode::EarlyStopping,
        };
        let (model, report) =
            TrainedLstm::train(series, &self.spec, train.end, mode, |e, t, v| {
                tracing::debug!(epoch = e, train_loss = t, val_loss = v, "epoch")
            })?;
        let fit = FitReport {
            epochs: Some(report.best_epoch),
            samples: report.train_samples,
        };
        self.reports.push(report);
        self.model = Some(model);
        Ok(fit)
    }

    fn predict(&self, s: &CoinSeries, i: usize, out: &mut [f64]) {
        match self.predict_many(s, &[i], out.len()) {
            Ok(p) => out.copy_from_slice(&p[0][..out.len()]),
            Err(_) => out.fill(f64::NAN),
        }
    }

    fn predict_many(
        &self,
        s: &CoinSeries,
        origins: &[usize],
        _horizon: usize,
    ) -> Result<Vec<Vec<f64>>, ModelError> {
        self.model
            .as_ref()
            .ok_or_else(|| {
                ModelError::Numeric("the LSTM was asked to predict before fitting".into())
            })?
            .predict_origins(s, origins)
    }

    fn into_lstm(self: Box<Self>) -> Option<TrainedLstm> {
        self.model
    }
}
