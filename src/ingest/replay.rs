//! The replay source: a folder of recorded CoinGecko `market_chart` bodies named `<coin_id>.json`,
//! loaded through the same parsing, gate and merge as live responses.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::IngestError;
use crate::config::is_valid_coin_id;

/// One file to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayFile {
    pub coin_id: String,
    pub path: PathBuf,
}

/// What a folder holds to replay: the files to load, and the `.json` files left out, each with
/// its error (one bad file never stops the others).
#[derive(Debug, Default)]
pub struct Listing {
    pub files: Vec<ReplayFile>,
    pub skipped: Vec<IngestError>,
}

/// The `<coin_id>.json` files of `dir`, sorted, optionally limited to `coins`; files whose name
/// is no coin id are skipped with an error naming them. Fails when no file is left to replay.
pub fn list(dir: &Path, coins: Option<&[String]>) -> Result<Listing, IngestError> {
    let entries = std::fs::read_dir(dir).map_err(|source| IngestError::Replay {
        path: dir.to_path_buf(),
        message: source.to_string(),
    })?;
    let (mut files, mut skipped) = (Vec::new(), Vec::new());
    for entry in entries {
        let entry = entry.map_err(|source| IngestError::Replay {
            path: dir.to_path_buf(),
            message: source.to_string(),
        })?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Some(coin_id) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if !is_valid_coin_id(coin_id) {
            skipped.push(IngestError::Replay {
                path,
                message: "the file name is not a CoinGecko coin id (expected <coin_id>.json)"
                    .into(),
            });
            continue;
        }
        if coins.is_some_and(|c| !c.iter().any(|x| x == coin_id)) {
            continue;
        }
        files.push(ReplayFile {
            coin_id: coin_id.to_string(),
            path,
        });
    }
    files.sort_by(|a, b| a.coin_id.cmp(&b.coin_id));
    if files.is_empty() {
        let why = skipped.iter().map(|e| format!("; {e}")).collect::<String>();
        return Err(IngestError::Replay {
            path: dir.to_path_buf(),
            message: format!("no <coin_id>.json files to replay here{why}"),
        });
    }
    Ok(Listing { files, skipped })
}

/// Reads a file to replay; its modification time stands for the fetch time unless one is given.
pub fn read(
    file: &ReplayFile,
    fetched_at: Option<DateTime<Utc>>,
) -> Result<(Vec<u8>, DateTime<Utc>), IngestError> {
    let err = |message: String| IngestError::Replay {
        path: file.path.clone(),
        message,
    };
    let body = std::fs::read(&file.path).map_err(|e| err(e.to_string()))?;
    let when = match fetched_at {
        Some(t) => t,
        None => std::fs::metadata(&file.path)
            .and_then(|m| m.modified())
            .map(DateTime::<Utc>::from)
            .map_err(|e| err(e.to_string()))?,
    };
    Ok((body, when))
}
