//! The LSTM forecaster on libtorch (tch): one network for every coin (the coin is a one-hot
//! input), with one of two heads (`net`): the mean return per horizon (MSE), or several quantiles
//! per horizon (pinball loss, monotone so they cannot cross). Training (`train`) keeps its data on
//! the device (`data`: one upload, batches indexed there), stops early on validation, and fits a
//! per-coin shrinkage of the point forecast toward persistence on the same validation origins.
//! `model` is a trained network with its card: prediction, intervals, the artifact
//! (safetensors weights + a JSON card). `candidate` makes it a walk-forward candidate.

mod candidate;
mod data;
mod model;
mod net;
mod train;

use serde::{Deserialize, Serialize};
use tch::Device;

use super::ModelError;

pub use candidate::LstmCandidate;
pub use model::{ModelCard, TrainedLstm};
pub use net::Objective;
pub use train::{TrainMode, TrainReport};

pub const DEFAULT_SPEC: &str = include_str!("../../../models/lstm.toml");

fn default_quantiles() -> Vec<f64> {
    vec![0.05, 0.25, 0.5, 0.75, 0.95]
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LstmSpec {
    pub lookback_hours: usize,
    pub horizon: usize,
    pub hidden_size: i64,
    pub num_layers: i64,
    pub dropout: f64,
    pub learning_rate: f64,
    /// Decoupled weight decay (AdamW); 0: plain Adam.
    #[serde(default)]
    pub weight_decay: f64,
    pub batch_size: usize,
    pub epochs: usize,
    pub patience: usize,
    pub clip_norm: f64,
    pub samples_per_epoch: usize,
    pub validation_share: f64,
    pub interval_level: f64,
    /// The quantile head's levels (`lstm_quantile`): sorted, within (0, 1), with the median.
    #[serde(default = "default_quantiles")]
    pub quantiles: Vec<f64>,
    pub seed: u64,
    pub threads: i32,
    pub device: String,
    pub features: Vec<String>,
}

impl LstmSpec {
    pub fn parse(origin: &str, text: &str) -> Result<Self, ModelError> {
        let spec: LstmSpec = super::parse_definition(origin, text)?;
        spec.validate(origin)?;
        Ok(spec)
    }

    fn validate(&self, origin: &str) -> Result<(), ModelError> {
        let bad = |m: &str| ModelError::Definition {
            origin: origin.to_string(),
            message: m.to_string(),
        };
        if !(1..=24).contains(&self.horizon) {
            return Err(bad("`horizon` must be 1..=24"));
        }
        if self.lookback_hours == 0 || self.hidden_size <= 0 || self.num_layers <= 0 {
            return Err(bad(
                "`lookback_hours`, `hidden_size` and `num_layers` must be positive",
            ));
        }
        if self.batch_size == 0 || self.epochs == 0 || self.samples_per_epoch == 0 {
            return Err(bad(
                "`batch_size`, `epochs` and `samples_per_epoch` must be positive",
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) || !(0.01..=0.5).contains(&self.validation_share) {
            return Err(bad(
                "`dropout` must be in [0, 1) and `validation_share` in [0.01, 0.5]",
            ));
        }
        if !(0.0..1.0).contains(&self.weight_decay) {
            return Err(bad("`weight_decay` must be in [0, 1)"));
        }
        if !(0.5..1.0).contains(&self.interval_level) || self.threads < 1 {
            return Err(bad(
                "`interval_level` must be in [0.5, 1) and `threads` >= 1",
            ));
        }
        let sorted = self.quantiles.windows(2).all(|w| w[0] < w[1]);
        let inside = self.quantiles.iter().all(|q| *q > 0.0 && *q < 1.0);
        if !sorted || !inside || !self.quantiles.contains(&0.5) {
            return Err(bad(
                "`quantiles` must be increasing, within (0, 1), and include 0.5 (the median)",
            ));
        }
        if self.features.is_empty() {
            return Err(bad("`features` must name at least one column"));
        }
        resolve_device(&self.device)?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_spec_parses_and_bad_quantiles_are_named() {
        let spec = LstmSpec::parse("models/lstm.toml", DEFAULT_SPEC).expect("valid");
        assert!(spec.quantiles.contains(&0.5));
        let err = LstmSpec::parse(
            "q.toml",
            &format!("{DEFAULT_SPEC}\nquantiles = [0.9, 0.1]\n")
                .replace("quantiles = [0.05, 0.25, 0.5, 0.75, 0.95]\n", ""),
        )
        .expect_err("unsorted")
        .to_string();
        assert!(err.contains("q.toml") && err.contains("quantiles"), "{err}");
    }
}
