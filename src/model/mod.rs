//! The forecasters and their judge. `dataset` reads a coin as dense hourly arrays; a `recipe` is
//! a point model (`baselines`: persistence, drift, trends, ridge; `lstm`: a mean or a quantile
//! network) with an interval scale (`volatility`: constant, EWMA, GARCH, HAR); `evaluate` runs
//! every candidate through the same walk-forward folds (`windows`) with the same refit rule and
//! conformal intervals (scaled, or CQR on a quantile band; plain and under simulated ACI), scored
//! by `metrics`; `gate` decides; `train` refits the winner on all data, calibrates it
//! (`forecast`) and registers it (`registry`, `artifacts`) as a `classical` card or an LSTM (both
//! share `card`); `served` loads either kind; `floor` registers persistence before any training.

pub mod artifacts;
pub mod baselines;
pub mod card;
pub mod classical;
pub mod dataset;
pub mod evaluate;
pub mod floor;
pub mod forecast;
pub mod gate;
pub mod lstm;
pub mod metrics;
#[cfg(test)]
mod noise;
pub mod protocol;
pub mod recipe;
pub mod registry;
pub mod served;
pub mod train;
pub mod volatility;
pub mod windows;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("feature `{0}` is not a column of the features table")]
    UnknownFeature(String),
    #[error("coin `{0}` has no features yet: run `coincast replay` or `coincast run` first")]
    NoData(String),
    #[error("no coin to evaluate")]
    NoCoins,
    #[error("too few training samples: {have}, at least {needed} needed")]
    TooFewSamples { needed: usize, have: usize },
    #[error("model definition {origin}: {message}")]
    Definition { origin: String, message: String },
    #[error("coin `{0}` is not one this model was trained on")]
    UnknownCoin(String),
    #[error("no model `{0}` in the registry (see `coincast models list`)")]
    UnknownModel(String),
    #[error(
        "model `{0}` was retired by cleanup (its artifact is deleted; its row and lineage stay): \
         `coincast models list` shows the kept ones"
    )]
    Retired(String),
    #[error("{0}")]
    Gate(String),
    #[error("device: {0}")]
    Device(String),
    #[error("libtorch: {0}")]
    Torch(String),
    #[error("model artifact {path}: {message}")]
    Artifact { path: String, message: String },
    #[error("numerical problem: {0}")]
    Numeric(String),
    #[error("coin `{coin}`: its newest hours are a gap (its data end at {last} UTC, {behind} h before the newest hour of the other coins); ingest it (`coincast run`) or leave it out with --coins")]
    StaleCoin {
        coin: String,
        last: String,
        behind: i64,
    },
    #[error("coin `{coin}`: feature `{feature}` is infinite at {at} UTC; fix the data or leave the feature out of the spec")]
    NonFinite {
        coin: String,
        feature: String,
        at: String,
    },
    #[error("cancelled: the server is stopping")]
    Cancelled,
    /// A retrain child process failed (it reports its own error, or how it ended).
    #[error("the retrain process: {0}")]
    Child(String),
    #[error(transparent)]
    Windows(#[from] windows::WindowError),
    #[error(transparent)]
    Sql(#[from] duckdb::Error),
}

impl crate::failure::Classify for ModelError {
    fn failure(&self) -> crate::failure::Failure {
        use crate::failure::Failure;
        match self {
            ModelError::Definition { .. }
            | ModelError::Device(_)
            | ModelError::UnknownFeature(_)
            | ModelError::UnknownModel(_)
            | ModelError::Retired(_)
            | ModelError::UnknownCoin(_)
            | ModelError::NoData(_)
            | ModelError::Gate(_) => Failure::Usage,
            ModelError::Cancelled => Failure::Interrupted,
            _ => Failure::Internal,
        }
    }
}

/// Asks a long computation (a selection run) to stop at its next checkpoint; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Cancel(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `Err(Cancelled)` once cancelled: `cancel.check()?` at each checkpoint.
    pub fn check(&self) -> Result<(), ModelError> {
        if self.is_cancelled() {
            Err(ModelError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// Parses a model definition (TOML in `models/`); errors name the file and the key.
pub(crate) fn parse_definition<T: serde::de::DeserializeOwned>(
    origin: &str,
    text: &str,
) -> Result<T, ModelError> {
    let cfg = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .map_err(|e| ModelError::Definition {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
    serde_path_to_error::deserialize(cfg).map_err(|e| ModelError::Definition {
        origin: origin.to_string(),
        message: format!("`{}`: {}", e.path(), e.inner()),
    })
}
