//! coincast: one binary and one DuckDB file for crypto price forecasting.
//!
//! The modules follow the data flow (see ARCHITECTURE.md):
//! `ingest` → `quality` (gate) → `merge` → `features`, orchestrated by `pipeline`;
//! `model` trains, judges and registers the forecasters; `monitor` scores what was served;
//! `runtime` runs all of it inside `coincast serve` (the worker, its schedules, the served
//! snapshot) and `serve` is the HTTP layer over it; `store` is the only module that opens the
//! database; `query` runs analysts' read-only SQL on its published copy, over HTTP and over the
//! Postgres wire (`pg`); `lake` versions the data as DuckLake snapshots and `retention` moves,
//! expires and retires what is old; `publish` puts out the serving publication that replicas
//! serve from (and takes their served forecasts in); `failure` says what kind of failure an
//! error is.

pub mod access;
pub mod config;
pub mod crashpoint;
pub mod failure;
pub mod features;
pub mod ingest;
pub mod lake;
pub mod merge;
pub mod model;
pub mod monitor;
pub mod pg;
pub mod pipeline;
pub mod progress;
pub mod publish;
pub mod quality;
pub mod query;
pub mod retention;
pub mod runtime;
pub mod serve;
pub mod status;
pub mod store;
