//! The LSTM as a walk-forward candidate: `fit` trains a network (early stopping, or the fixed
//! epoch count and shrinkage of a refit after selection), like any other forecaster.

use std::ops::Range;

use super::net::Objective;
use super::train::{TrainMode, TrainReport};
use super::{LstmSpec, TrainedLstm};
use crate::model::baselines::{FitReport, Forecaster, Predictions, RefitHints};
use crate::model::dataset::CoinSeries;
use crate::model::ModelError;

pub struct LstmCandidate {
    spec: LstmSpec,
    objective: Objective,
    hints: Option<RefitHints>,
    pub model: Option<TrainedLstm>,
    pub reports: Vec<TrainReport>,
}

impl LstmCandidate {
    pub fn new(spec: LstmSpec, objective: Objective, hints: Option<RefitHints>) -> Self {
        Self {
            spec,
            objective,
            hints,
            model: None,
            reports: Vec::new(),
        }
    }

    fn fitted(&self) -> Result<&TrainedLstm, ModelError> {
        self.model.as_ref().ok_or_else(|| {
            ModelError::Numeric("the LSTM was asked to predict before fitting".into())
        })
    }
}

impl Forecaster for LstmCandidate {
    fn fit(
        &mut self,
        series: &[CoinSeries],
        train: &Range<i64>,
        _lookback: usize,
        _horizon: usize,
    ) -> Result<FitReport, ModelError> {
        let mode = match &self.hints {
            Some(h) => TrainMode::FixedEpochs {
                epochs: h.epochs.unwrap_or(self.spec.epochs),
                shrinkage: h.shrinkage.clone(),
            },
            None => TrainMode::EarlyStopping,
        };
        let (model, report) = TrainedLstm::train(
            series,
            &self.spec,
            &self.objective,
            train.end,
            mode,
            |e, t, v| tracing::debug!(epoch = e, train_loss = t, val_loss = v, "epoch"),
        )?;
        let fit = FitReport {
            epochs: Some(report.best_epoch),
            samples: report.train_samples,
            device: Some(report.device.clone()),
            samples_per_second: Some(report.samples_per_second),
            shrinkage: Some(report.shrinkage.clone()),
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
        Ok(self.fitted()?.predict_origins(s, origins)?.point)
    }

    fn predict_full(
        &self,
        s: &CoinSeries,
        origins: &[usize],
        _horizon: usize,
    ) -> Result<Predictions, ModelError> {
        self.fitted()?.predict_origins(s, origins)
    }

    fn into_lstm(self: Box<Self>) -> Option<TrainedLstm> {
        self.model
    }
}
