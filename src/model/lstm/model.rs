//! A trained (or loaded) network with its card: the point forecast (the mean or the median,
//! shrunk toward persistence per coin and horizon), the band of a quantile head, intervals from
//! the card's conformal calibration, and the artifact (safetensors weights + `model.json`).

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::{nn, Device, Kind};

use super::data::InputScaling;
use super::net::{Net, Objective, Phase};
use super::LstmSpec;
use crate::model::baselines::Predictions;
use crate::model::card::{check_card_format, FeatureStats};
use crate::model::dataset::CoinSeries;
use crate::model::forecast::{
    anchor_of, interval_forecast, Anchor, BandMix, Calibration, CalibrationMode, Forecast, Levels,
};
use crate::model::volatility::ScaleModel;
use crate::model::ModelError;

fn constant_scale() -> ScaleModel {
    ScaleModel::Constant
}

/// What the artifact carries besides the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    #[serde(default = "legacy_format")]
    pub format_version: u32,
    pub spec: LstmSpec,
    /// The head: the mean (MSE) or quantiles (pinball). Cards before format 3: the mean.
    #[serde(default)]
    pub objective: Objective,
    /// Coins in input order (the one-hot part of the input).
    pub coins: Vec<String>,
    pub feature_mean: Vec<f64>,
    pub feature_std: Vec<f64>,
    /// Per horizon: the RMS of the training targets (outputs are in these units).
    pub target_scale: Vec<f64>,
    /// Per coin (input order), per horizon: the weight of the point forecast against
    /// persistence, fitted on validation (0: persistence). Empty (before format 3): 1.
    #[serde(default)]
    pub shrinkage: Vec<Vec<f64>>,
    /// The interval scale σ̂ of a `Scaled` calibration.
    #[serde(default = "constant_scale")]
    pub scale: ScaleModel,
    /// Conformal quantiles of the walk-forward's out-of-sample scores. None before format 3.
    #[serde(default)]
    pub calibration: Option<Calibration>,
    /// Format 1 and 2: per coin, per horizon, the conformal half-width on the log return.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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

fn legacy_format() -> u32 {
    1
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

    /// The calibration its intervals come from: the card's own, or for a card before format 3
    /// its constant half-widths (at every level: they cannot follow an ACI level).
    pub fn effective_calibration(&self) -> Calibration {
        match &self.calibration {
            Some(c) => c.clone(),
            None => Calibration::fixed_widths(
                self.spec.interval_level,
                &self.coins,
                &self.interval_widths,
            ),
        }
    }

    /// The shrinkage weight of a coin's horizon (1 when the card has none).
    fn weight(&self, slot: usize, h: usize) -> f64 {
        self.shrinkage
            .get(slot)
            .and_then(|w| w.get(h))
            .copied()
            .unwrap_or(1.0)
    }
}

/// A trained (or loaded) LSTM, ready to predict. Shared between threads as it is: the card is
/// plain data, and the network infers under its lock (libtorch's tensors are Send, not Sync).
pub struct TrainedLstm {
    pub card: ModelCard,
    weights: Mutex<Weights>,
    device: Device,
    /// The card's calibration (or its legacy widths), resolved once.
    calibration: Calibration,
}

/// The network and the variables it reads.
struct Weights {
    vs: nn::VarStore,
    net: Net,
}

impl TrainedLstm {
    pub(super) fn new(card: ModelCard, vs: nn::VarStore, net: Net, device: Device) -> Self {
        let calibration = card.effective_calibration();
        Self {
            card,
            weights: Mutex::new(Weights { vs, net }),
            device,
            calibration,
        }
    }

    /// Replaces the calibration (the walk-forward's, at registration).
    pub fn set_calibration(&mut self, calibration: Calibration) {
        self.calibration = calibration.clone();
        self.card.calibration = Some(calibration);
        self.card.interval_widths.clear();
    }

    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// The point forecasts (and, for a quantile head, the band of the nominal level) of each
    /// origin of a coin the model knows.
    pub fn predict_origins(
        &self,
        s: &CoinSeries,
        origins: &[usize],
    ) -> Result<Predictions, ModelError> {
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
        let scaling = self.scaling(vec![slot]);
        let samples: Vec<(usize, usize)> = origins.iter().map(|&i| (0, i)).collect();
        let outputs = self.run(&scaling, &samples, &[s])?;
        Ok(self.predictions(&outputs, &vec![slot; origins.len()]))
    }

    /// Point forecasts (shrunk) and bands from raw outputs `[sample][horizon * k]`.
    pub(super) fn predictions(&self, outputs: &[Vec<f64>], slots: &[usize]) -> Predictions {
        let k = self.card.objective.outputs() as usize;
        let point_at = self.card.objective.point_index();
        let band_at = self
            .card
            .objective
            .band_indices(self.card.spec.interval_level);
        let point = outputs
            .iter()
            .zip(slots)
            .map(|(o, &slot)| {
                o.chunks(k)
                    .enumerate()
                    .map(|(h, q)| self.card.weight(slot, h) * q[point_at])
                    .collect()
            })
            .collect();
        let band = band_at.map(|(lo, hi)| {
            outputs
                .iter()
                .map(|o| o.chunks(k).map(|q| (q[lo], q[hi])).collect())
                .collect()
        });
        Predictions { point, band }
    }

    fn scaling(&self, coin_slot: Vec<usize>) -> InputScaling<'_> {
        InputScaling {
            lookback: self.card.spec.lookback_hours,
            mean: &self.card.feature_mean,
            std: &self.card.feature_std,
            coins: self.card.coins.len(),
            coin_slot,
        }
    }

    /// The coin's position in the one-hot input.
    fn coin_slot(&self, coin_id: &str) -> Result<usize, ModelError> {
        self.card
            .coins
            .iter()
            .position(|c| c == coin_id)
            .ok_or_else(|| ModelError::UnknownCoin(coin_id.to_string()))
    }

    /// Runs the network on samples (series index, origin): per sample, `horizon * k` outputs
    /// in units of the log return.
    fn run(
        &self,
        scaling: &InputScaling<'_>,
        samples: &[(usize, usize)],
        series: &[&CoinSeries],
    ) -> Result<Vec<Vec<f64>>, ModelError> {
        // OpenMP's thread count is per calling thread: set it here, on whatever thread infers
        // (a server's blocking pool included), or libtorch spins up one worker per core.
        tch::set_num_threads(self.card.spec.threads);
        let k = self.card.objective.outputs() as usize;
        let width = self.card.spec.horizon * k;
        let mut out = Vec::with_capacity(samples.len());
        let weights = self
            .weights
            .lock()
            .map_err(|_| ModelError::Numeric("the model's lock is poisoned".into()))?;
        for chunk in samples.chunks(4096) {
            let x = scaling.host_inputs(chunk, series).to_device(self.device);
            if x.isnan().any().int64_value(&[]) != 0 {
                return Err(ModelError::Numeric(
                    "NaN in the inputs (a missing hour or NULL feature in the lookback window)"
                        .into(),
                ));
            }
            let y = tch::no_grad(|| weights.net.forward(&x))
                .to_device(Device::Cpu)
                .to_kind(Kind::Double);
            let flat: Vec<f64> =
                Vec::<f64>::try_from(y.view([-1])).map_err(|e| ModelError::Torch(e.to_string()))?;
            for row in flat.chunks(width) {
                out.push(
                    row.iter()
                        .enumerate()
                        .map(|(j, v)| v * self.card.target_scale[j / k])
                        .collect(),
                );
            }
        }
        Ok(out)
    }

    /// Writes `weights.safetensors`, then `model.json`, into `dir` (a temporary folder: see
    /// `artifacts::write_atomically`); `after_weights` runs in between (a crash point).
    pub fn save(&mut self, dir: &Path, after_weights: &dyn Fn()) -> Result<(), ModelError> {
        let art = |path: &Path, e: &dyn ToString| ModelError::Artifact {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| art(dir, &e))?;
        let weights = dir.join("weights.safetensors");
        // Saving only reads the variables: a panic in another thread's inference left them whole.
        let variables = &self
            .weights
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .vs;
        variables
            .save(&weights)
            .map_err(|e| ModelError::Torch(e.to_string()))?;
        after_weights();
        self.card.weights_sha256 = sha256_file(&weights)?;
        let json = serde_json::to_string_pretty(&self.card).map_err(|e| art(dir, &e))?;
        let card = dir.join("model.json");
        std::fs::write(&card, json).map_err(|e| art(&card, &e))
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
        let net = Net::new(
            &vs.root(),
            &card.spec,
            &card.objective,
            in_dim,
            Phase::Infer,
        );
        vs.load(&weights).map_err(|e| {
            art(
                &weights,
                format!("weights do not fit the configuration in model.json: {e}"),
            )
        })?;
        Ok(Self::new(card, vs, net, device))
    }

    /// Forecasts from past origins (a backtest) at the nominal level; origins whose inputs are
    /// incomplete are left out.
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
        if usable.is_empty() {
            return Ok(Vec::new());
        }
        let predictions = self.predict_origins(&own, &usable)?;
        Ok(usable
            .iter()
            .enumerate()
            .map(|(k, &i)| self.forecast_from(&own, i, &predictions, k, Levels::Nominal))
            .collect())
    }

    /// Predicts every horizon from the newest hour of `s` (its inputs must be complete), with
    /// intervals at `levels`.
    pub fn forecast_latest(
        &self,
        s: &CoinSeries,
        levels: Levels<'_>,
    ) -> Result<Forecast, ModelError> {
        let mut all = self.forecast_latest_many(&[(s, levels)])?;
        all.pop()
            .ok_or_else(|| ModelError::NoData(s.coin_id.clone()))
    }

    /// Every horizon from origin `i` of `s` (its inputs must be complete), with intervals at
    /// `levels`.
    pub fn forecast_origin(
        &self,
        s: &CoinSeries,
        i: usize,
        levels: Levels<'_>,
    ) -> Result<Forecast, ModelError> {
        let own = s.with_features(&self.card.spec.features)?;
        let l = self.card.spec.lookback_hours;
        if !own.has_inputs(i, l) {
            return Err(ModelError::Numeric(format!(
                "{}: the {l} hours before {} are not complete; no forecast",
                s.coin_id,
                crate::model::dataset::hour_label(s.hour_of(i))
            )));
        }
        let predictions = self.predict_origins(&own, &[i])?;
        Ok(self.forecast_from(&own, i, &predictions, 0, levels))
    }

    /// As [`TrainedLstm::forecast_latest`] for many coins, in one forward pass.
    pub fn forecast_latest_many(
        &self,
        requests: &[(&CoinSeries, Levels<'_>)],
    ) -> Result<Vec<Forecast>, ModelError> {
        let own: Vec<std::borrow::Cow<'_, CoinSeries>> = requests
            .iter()
            .map(|(s, _)| s.with_features(&self.card.spec.features))
            .collect::<Result<_, _>>()?;
        let series: Vec<&CoinSeries> = own.iter().map(|c| c.as_ref()).collect();
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
            slots.push(self.coin_slot(&s.coin_id)?);
            samples.push((k, i));
        }
        let outputs = self.run(&self.scaling(slots.clone()), &samples, &series)?;
        let predictions = self.predictions(&outputs, &slots);
        Ok(series
            .iter()
            .zip(&samples)
            .zip(requests)
            .enumerate()
            .map(|(k, ((s, &(_, i)), (_, levels)))| {
                self.forecast_from(s, i, &predictions, k, *levels)
            })
            .collect())
    }

    /// The forecast of origin `i` from the `k`-th of `predictions`.
    fn forecast_from(
        &self,
        s: &CoinSeries,
        i: usize,
        predictions: &Predictions,
        k: usize,
        levels: Levels<'_>,
    ) -> Forecast {
        let point = &predictions.point[k];
        let mut sigma = vec![0.0; point.len()];
        self.card.scale.scales(s, i, &mut sigma);
        let band = match (self.calibration.mode, &predictions.band) {
            (CalibrationMode::Cqr, Some(band)) => Some(&band[k]),
            _ => None,
        };
        let mix = BandMix::new(self.card.scale.band_members(), self.calibration.level);
        let anchors: Vec<Anchor> = point
            .iter()
            .zip(sigma)
            .enumerate()
            .map(|(h, (&r, scale))| anchor_of(band.map(|b| b[h]), r, scale, mix))
            .collect();
        interval_forecast(
            &s.coin_id,
            s.hour_of(i),
            s.price[i],
            &self.calibration,
            levels,
            point,
            &anchors,
        )
    }
}

fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::Artifact {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(hex::encode(Sha256::digest(bytes)))
}
