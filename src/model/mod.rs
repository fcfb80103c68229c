//! The forecaster: the dataset from `features`, the baselines every model
//! is judged against, walk-forward evaluation with split-conformal intervals, and the LSTM
//! (`lstm`), one more [`baselines::Forecaster`] evaluated by the same code.
//!
//! `windows` does the split and fold arithmetic over sample origins (with the gap that keeps
//! training targets out of test inputs); `metrics` scores forecasts per horizon in price space.

pub mod artifacts;
pub mod baselines;
pub mod dataset;
pub mod evaluate;
pub mod lstm;
pub mod metrics;
pub mod registry;
pub mod train;
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
    #[error(transparent)]
    Windows(#[from] windows::WindowError),
    #[error(transparent)]
    Sql(#[from] duckdb::Error),
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
