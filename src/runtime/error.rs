//! The runtime's errors: why a job failed (with its source kept) and why the runtime could not do
//! what the HTTP layer asked.

use crate::failure::{Classify, Failure};
use crate::ingest::coingecko::ClientError;
use crate::model::ModelError;
use crate::pipeline::PipelineError;
use crate::quality::QualityError;

/// Why a job of the worker failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the quality rules cannot be loaded")]
    Rules(#[source] QualityError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the run's async runtime cannot start")]
    AsyncRuntime(#[source] std::io::Error),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("interrupted by shutdown")]
    Interrupted,
}

impl Classify for JobError {
    fn failure(&self) -> Failure {
        match self {
            JobError::Rules(e) => e.failure(),
            JobError::Client(_) => Failure::Usage,
            JobError::AsyncRuntime(_) => Failure::Internal,
            JobError::Pipeline(e) => e.failure(),
            JobError::Interrupted => Failure::Interrupted,
        }
    }
}

/// Why the runtime could not serve a request of the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("this server has no database connection of its own")]
    NoDatabase,
    #[error("this server runs no pipeline worker")]
    NoWorker,
    #[error("the pipeline worker has stopped")]
    WorkerStopped,
    #[error("the read took longer than {0:?} and was interrupted")]
    ReadTimeout(std::time::Duration),
    #[error("{0} is unusable after a panic")]
    Poisoned(&'static str),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Sql(#[from] duckdb::Error),
    #[error(transparent)]
    Backup(#[from] crate::store::BackupError),
    #[error(transparent)]
    Query(#[from] crate::query::QueryError),
    #[error(transparent)]
    Publish(#[from] crate::publish::PublishError),
    #[error("the metrics registry cannot be made: {0}")]
    Metrics(#[source] prometheus::Error),
}
