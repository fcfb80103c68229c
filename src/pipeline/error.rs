//! Why a run or one of its tasks failed: `PipelineError` for the run, `TaskError` for a task,
//! with the failing module's error kept as its source and the kind of failure it is.

use crate::failure::{Classify, Failure};
use crate::features::FeatureError;
use crate::ingest::batch::BatchError;
use crate::ingest::coingecko::FetchError;
use crate::ingest::IngestError;
use crate::model::ModelError;
use crate::monitor::MonitorError;
use crate::quality::QualityError;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("task {task} failed after {attempts} attempt(s)")]
    Task {
        task: &'static str,
        attempts: u32,
        #[source]
        source: Box<TaskError>,
    },
    #[error("recording the run failed")]
    Record(#[from] duckdb::Error),
}

impl Classify for PipelineError {
    fn failure(&self) -> Failure {
        match self {
            PipelineError::Task { source, .. } => source.failure(),
            PipelineError::Record(_) => Failure::Internal,
        }
    }
}

/// Why one attempt of a task failed, with the failing module's error as its source.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("no coin could be fetched from {url}")]
    SourceUnavailable {
        url: String,
        #[source]
        first: FetchError,
    },
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Quality(#[from] QualityError),
    #[error(transparent)]
    Features(#[from] FeatureError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    /// Boxed: the lake's error is large and tasks return this on every attempt.
    #[error(transparent)]
    Lake(Box<crate::lake::LakeError>),
    /// Boxed like the lake's.
    #[error(transparent)]
    Retention(Box<crate::retention::RetentionError>),
    #[error("reading the database")]
    Sql(#[from] duckdb::Error),
}

impl From<crate::retention::RetentionError> for TaskError {
    fn from(e: crate::retention::RetentionError) -> Self {
        TaskError::Retention(Box::new(e))
    }
}

impl From<crate::lake::LakeError> for TaskError {
    fn from(e: crate::lake::LakeError) -> Self {
        TaskError::Lake(Box::new(e))
    }
}

impl Classify for TaskError {
    fn failure(&self) -> Failure {
        match self {
            TaskError::SourceUnavailable { .. } => Failure::SourceUnavailable,
            TaskError::Ingest(e) => e.failure(),
            TaskError::Quality(e) => e.failure(),
            TaskError::Model(e) => e.failure(),
            TaskError::Monitor(MonitorError::Model(e)) => e.failure(),
            TaskError::Lake(e) => e.failure(),
            TaskError::Retention(e) => e.failure(),
            TaskError::Batch(_)
            | TaskError::Features(_)
            | TaskError::Monitor(_)
            | TaskError::Sql(_) => Failure::Internal,
        }
    }
}
