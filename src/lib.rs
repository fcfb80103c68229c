//! coincast: one binary and one DuckDB file for crypto price forecasting.
//!
//! The modules follow the data flow (see ARCHITECTURE.md):
//! `ingest` → `quality` (gate) → `merge` → `features`, orchestrated by `pipeline`;
//! `model` holds the evaluation groundwork of the forecaster; `store` is the only module that
//! opens the database.

pub mod config;
pub mod crashpoint;
pub mod features;
pub mod ingest;
pub mod merge;
pub mod model;
pub mod monitor;
pub mod pipeline;
pub mod progress;
pub mod quality;
pub mod serve;
pub mod status;
pub mod store;
