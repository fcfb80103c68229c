//! Integration tests: one binary (one link), one module per concern.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod browser;
mod chaos;
mod cli;
mod crash;
mod features;
mod fuzz;
mod ingest_live;
mod lake;
mod model;
mod monitor;
mod replay;
mod retention;
mod serve;
mod sql;
