//! The network: an LSTM over the lookback window, then a linear head from the last hidden state
//! to `horizon × k` outputs, in units of each horizon's target scale. `k` = 1 for the mean
//! (MSE); for quantiles, the first output is the lowest quantile and the others are softplus
//! increments, summed: the quantiles are increasing by construction, so they never cross.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, RNN};
use tch::{Kind, Tensor};

use super::LstmSpec;

/// What the head forecasts, and so the loss it trains with.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Objective {
    /// The mean return per horizon, trained with MSE.
    #[default]
    Mean,
    /// These quantiles of the return per horizon (increasing, with the median), trained with
    /// the pinball loss.
    Quantiles { levels: Vec<f64> },
}

impl Objective {
    /// Outputs per horizon.
    pub fn outputs(&self) -> i64 {
        match self {
            Objective::Mean => 1,
            Objective::Quantiles { levels } => levels.len() as i64,
        }
    }

    /// The output that is the point forecast: the mean, or the median.
    pub fn point_index(&self) -> usize {
        match self {
            Objective::Mean => 0,
            Objective::Quantiles { levels } => levels
                .iter()
                .position(|q| (*q - 0.5).abs() < 1e-9)
                .unwrap_or(levels.len() / 2),
        }
    }

    /// The outputs that bound the central `level` interval (the quantiles nearest to
    /// (1 ∓ level) / 2); None for the mean.
    pub fn band_indices(&self, level: f64) -> Option<(usize, usize)> {
        let Objective::Quantiles { levels } = self else {
            return None;
        };
        let nearest = |target: f64| {
            (0..levels.len()).min_by(|&a, &b| {
                (levels[a] - target)
                    .abs()
                    .total_cmp(&(levels[b] - target).abs())
            })
        };
        Some((nearest((1.0 - level) / 2.0)?, nearest((1.0 + level) / 2.0)?))
    }

    /// The training loss of `out` [batch, horizon, k] against targets `y` [batch, horizon].
    pub fn loss(&self, out: &Tensor, y: &Tensor) -> Tensor {
        match self {
            Objective::Mean => out.squeeze_dim(-1).mse_loss(y, tch::Reduction::Mean),
            Objective::Quantiles { levels } => {
                let taus =
                    Tensor::from_slice(&levels.iter().map(|q| *q as f32).collect::<Vec<_>>())
                        .to_device(out.device())
                        .view([1, 1, -1]);
                let e = y.unsqueeze(-1) - out;
                let under = &e * &taus;
                let over = &e * (&taus - 1.0);
                under.maximum(&over).mean(Kind::Float)
            }
        }
    }
}

pub(super) struct Net {
    lstm: nn::LSTM,
    head: nn::Linear,
    horizon: i64,
    outputs: i64,
}

/// Whether the LSTM applies dropout between layers (training) or not (inference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Train,
    Infer,
}

impl Net {
    pub(super) fn new(
        vs: &nn::Path,
        spec: &LstmSpec,
        objective: &Objective,
        in_dim: i64,
        phase: Phase,
    ) -> Self {
        let cfg = nn::RNNConfig {
            num_layers: spec.num_layers,
            dropout: if spec.num_layers > 1 {
                spec.dropout
            } else {
                0.0
            },
            train: phase == Phase::Train,
            batch_first: true,
            ..Default::default()
        };
        let horizon = spec.horizon as i64;
        let outputs = objective.outputs();
        Self {
            lstm: nn::lstm(vs / "lstm", in_dim, spec.hidden_size, cfg),
            head: nn::linear(
                vs / "head",
                spec.hidden_size,
                horizon * outputs,
                Default::default(),
            ),
            horizon,
            outputs,
        }
    }

    /// [batch, lookback, in_dim] -> [batch, horizon, k] (in target-scale units).
    pub(super) fn forward(&self, x: &Tensor) -> Tensor {
        let (out, _) = self.lstm.seq(x);
        let raw = self
            .head
            .forward(&out.select(1, -1))
            .view([-1, self.horizon, self.outputs]);
        if self.outputs == 1 {
            return raw;
        }
        let lowest = raw.narrow(2, 0, 1);
        let steps = raw.narrow(2, 1, self.outputs - 1).softplus();
        Tensor::cat(&[lowest, steps], 2).cumsum(2, Kind::Float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LstmSpec {
        LstmSpec::parse("models/lstm.toml", super::super::DEFAULT_SPEC).expect("spec")
    }

    /// Random weights, random inputs far outside anything seen in training: the quantiles
    /// still come out increasing, at every horizon.
    #[test]
    fn quantiles_never_cross() {
        tch::manual_seed(3);
        let spec = spec();
        let objective = Objective::Quantiles {
            levels: spec.quantiles.clone(),
        };
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = Net::new(&vs.root(), &spec, &objective, 7, Phase::Infer);
        let x = Tensor::randn([64, 12, 7], (Kind::Float, tch::Device::Cpu)) * 50.0;
        let q = tch::no_grad(|| net.forward(&x));
        assert_eq!(q.size(), vec![64, spec.horizon as i64, 5]);
        let steps = q.narrow(2, 1, 4) - q.narrow(2, 0, 4);
        let smallest = steps.min().double_value(&[]);
        assert!(smallest >= 0.0, "a quantile crossed: {smallest}");
        assert_eq!(objective.point_index(), 2);
        assert_eq!(objective.band_indices(0.9), Some((0, 4)));
        assert_eq!(objective.band_indices(0.5), Some((1, 3)));
    }

    #[test]
    fn the_pinball_loss_weighs_misses_by_their_quantile() {
        let objective = Objective::Quantiles {
            levels: vec![0.1, 0.5, 0.9],
        };
        // One sample, one horizon, predicted quantiles [0, 0, 0]; the outcome is 1: every
        // quantile is under it, each costs tau * 1.
        let out = Tensor::zeros([1, 1, 3], (Kind::Float, tch::Device::Cpu));
        let y = Tensor::ones([1, 1], (Kind::Float, tch::Device::Cpu));
        let loss = objective.loss(&out, &y).double_value(&[]);
        assert!((loss - (0.1 + 0.5 + 0.9) / 3.0).abs() < 1e-6, "{loss}");
        // Outcome -1: each costs (1 - tau) * 1.
        let loss = objective.loss(&out, &(-y)).double_value(&[]);
        assert!((loss - (0.9 + 0.5 + 0.1) / 3.0).abs() < 1e-6, "{loss}");
    }
}
