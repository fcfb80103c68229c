//! The forecasting model (in progress, issue 3): evaluation groundwork that the LSTM will use.
//!
//! `windows` does the split and walk-forward arithmetic over sample origins (with the gap that keeps
//! training targets out of test inputs); `metrics` scores forecasts per horizon in price space.

pub mod metrics;
pub mod windows;
