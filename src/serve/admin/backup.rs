//! `POST /api/admin/backup`: an online backup through the process that owns the file (no other
//! process can open it while the server runs). The answer is the tar archive
//! (`application/x-tar`) that `coincast backup` writes and `coincast restore` reads, streamed
//! without the request deadline.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::failure::report;
use crate::serve::error::ApiError;
use crate::serve::state::AppState;
use crate::store;

/// Header carrying the backup's manifest (JSON), so a client can check it without unpacking.
pub const MANIFEST_HEADER: &str = "x-coincast-backup-manifest";

pub(super) async fn backup(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let (file, manifest) = tokio::task::spawn_blocking(move || {
        // A connection of its own, so pages and promotions do not wait for the copy.
        let conn = state.runtime.connect()?;
        let data_dir = &state.runtime.settings().data_dir;
        let out = data_dir.join(format!(".backup-out-{}.tar", uuid_like()));
        let manifest = store::write_backup(&conn, data_dir, &out)
            .map_err(|e| ApiError::internal(format!("the backup failed: {}", report(&e))))?;
        // Opened, then unlinked: the answer streams from the open file, and nothing is left
        // behind if the client goes away.
        let file = std::fs::File::open(&out)
            .map_err(|e| ApiError::internal(format!("reading the backup: {e}")));
        let _ = std::fs::remove_file(&out);
        Ok::<_, ApiError>((file?, manifest))
    })
    .await??;
    tracing::info!(
        bytes = manifest.database_bytes,
        models = manifest.models.len(),
        "backup served"
    );
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    let name = format!(
        "attachment; filename=\"coincast-backup-{}.tar\"",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&serde_json::to_string(&manifest).unwrap_or_default()) {
        h.insert(MANIFEST_HEADER, v);
    }
    Ok(response)
}

/// A name unique enough for a temporary file: time and a random number.
fn uuid_like() -> String {
    format!(
        "{}-{:016x}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        rand::random::<u64>()
    )
}
