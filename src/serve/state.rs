//! What every handler holds: the appliance's runtime (snapshot, metrics, settings, the worker's
//! queue, the API's connection) and the request history the monitoring page draws.

use std::sync::Arc;

use super::pages::monitoring::History;
use crate::runtime::Runtime;

pub struct AppState {
    pub runtime: Arc<Runtime>,
    /// The last hour of request counters, for the monitoring page.
    pub history: History,
}

impl AppState {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self {
            runtime,
            history: History::default(),
        }
    }
}
