//! What every handler holds: the appliance's runtime (snapshot, metrics, settings, the worker's
//! queue, the API's connection), the request history the monitoring page draws and the features
//! page's profiles.

use std::sync::Arc;

use super::history::History;
use super::pages::features::ProfileCache;
use crate::runtime::Runtime;

pub struct AppState {
    pub runtime: Arc<Runtime>,
    /// The last hour of request counters, for the monitoring page.
    pub history: History,
    /// The features page's profiles, computed once per dataset version or snapshot.
    pub profiles: ProfileCache,
    /// Turns on the pages' connections (`serve.page_connections`).
    pub page_readers: tokio::sync::Semaphore,
}

impl AppState {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        let readers = runtime.settings().serve.page_connections;
        Self {
            runtime,
            page_readers: tokio::sync::Semaphore::new(readers),
            history: History::default(),
            profiles: ProfileCache::default(),
        }
    }
}
