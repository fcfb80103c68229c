//! The writer's side: builds a publication from the live database and names it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use duckdb::Connection;
use serde::Serialize;

use super::manifest::{Manifest, ModelFiles, FORMAT_VERSION, NEWEST, VERSIONS_DIR};
use super::{io_error, PublishError};
use crate::config::{PublishSettings, Settings};
use crate::lake::{self, Blob, Bucket};
use crate::model::registry;

/// Blobs younger than this stay even when no kept manifest names them: a publication in
/// progress has uploaded them and not yet named them.
const BLOB_GRACE: Duration = Duration::from_secs(600);

/// What a publication put out.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub version: u64,
    /// The serving database's size, and every file's the manifest names (as they travel: the
    /// database compressed).
    pub database_bytes: u64,
    pub bytes: u64,
    pub seconds: f64,
}

/// Puts out serving publications at `publish.url`, one at a time.
pub struct ServingWriter {
    bucket: Bucket,
    settings: PublishSettings,
    instance: String,
    data_dir: PathBuf,
    /// Held for a whole publication: the worker's and the API's never interleave.
    one_at_a_time: Mutex<()>,
}

impl ServingWriter {
    /// The writer of `publish.url`, when one is configured.
    pub fn of(settings: &Settings) -> Result<Option<Self>, PublishError> {
        let Some(url) = settings.publish.url() else {
            return Ok(None);
        };
        Ok(Some(Self {
            bucket: Bucket::at_url(url, &settings.s3)?,
            settings: settings.publish.clone(),
            instance: settings.serve.instance_name(),
            data_dir: settings.data_dir.clone(),
            one_at_a_time: Mutex::new(()),
        }))
    }

    pub fn url(&self) -> &str {
        self.bucket.url()
    }

    /// Builds a publication from `conn` (the live database) with the feature columns `features`
    /// (the served models' series: `market_<name>` reads `<name>`), uploads its files, names it,
    /// then removes what only older publications named.
    pub fn publish(
        &self,
        conn: &Connection,
        features: &[String],
    ) -> Result<Published, PublishError> {
        let _one = self.one_at_a_time.lock().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        let version = match self.bucket.get_bytes(NEWEST)? {
            Some(body) => Manifest::parse(&body, self.bucket.url())?.version + 1,
            None => 1,
        };
        let tmp = self.data_dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(io_error(&tmp))?;
        let database = tmp.join(format!("serving-{version}.duckdb"));
        let built = feature_columns(conn, features)
            .and_then(|columns| {
                build_database(conn, &database, self.settings.series_days, &columns)
            })
            .and_then(|series_from_hour| self.upload(conn, &database, version, series_from_hour));
        let _ = std::fs::remove_file(&database);
        let _ = std::fs::remove_file(database.with_extension("duckdb.wal"));
        let manifest = built?;
        let body = serde_json::to_vec_pretty(&manifest).map_err(|e| PublishError::Malformed {
            url: self.bucket.url().to_string(),
            message: e.to_string(),
        })?;
        self.bucket
            .put_bytes(&Manifest::version_name(version), body.clone())?;
        self.bucket.put_bytes(NEWEST, body)?;
        if let Err(e) = self.prune(version) {
            tracing::warn!("old publications stay at {}: {e}", self.bucket.url());
        }
        Ok(Published {
            version,
            database_bytes: manifest.database_bytes,
            bytes: manifest.bytes(),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Uploads the database and the served models' files; the manifest that names them.
    fn upload(
        &self,
        conn: &Connection,
        database: &Path,
        version: u64,
        series_from_hour: i64,
    ) -> Result<Manifest, PublishError> {
        let served = served_models(database)?;
        let database_bytes = std::fs::metadata(database)
            .map_err(io_error(database))?
            .len();
        let compressed = database.with_extension("duckdb.zst");
        compress(database, &compressed)?;
        let uploaded = self.bucket.upload_file(&compressed);
        let _ = std::fs::remove_file(&compressed);
        let database = uploaded?;
        let mut models = Vec::new();
        for model_id in served {
            let dir = self.artifact_dir(conn, &model_id)?;
            let mut files = Vec::new();
            for path in lake::files_under(&dir)? {
                let inside = path
                    .strip_prefix(&dir)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                files.push((inside, self.bucket.upload_file(&path)?));
            }
            models.push(ModelFiles { model_id, files });
        }
        Ok(Manifest {
            format_version: FORMAT_VERSION,
            version,
            published_at: Utc::now(),
            writer: self.instance.clone(),
            series_from_hour,
            database,
            database_bytes,
            models,
        })
    }

    /// Takes the replicas' waiting segments of served forecasts into `predictions` on `conn`.
    pub fn take_in(&self, conn: &Connection) -> Result<super::Intake, PublishError> {
        let tmp = self.data_dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(io_error(&tmp))?;
        super::segments::take_in(&self.bucket, conn, &tmp)
    }

    /// Where the writer keeps a model's files (its registered path, relative or not).
    fn artifact_dir(&self, conn: &Connection, model_id: &str) -> Result<PathBuf, PublishError> {
        let stored: String = conn.query_row(
            "SELECT artifact_path FROM model_versions WHERE model_id = ?",
            [model_id],
            |r| r.get(0),
        )?;
        Ok(crate::model::artifacts::resolve(&self.data_dir, &stored))
    }

    /// Keeps the newest `publish.keep_versions` manifests and the blobs they name (and any blob
    /// younger than the grace: a publication in progress).
    fn prune(&self, newest: u64) -> Result<(), PublishError> {
        let keep_from = newest.saturating_sub(u64::from(self.settings.keep_versions) - 1);
        let mut kept: Vec<Blob> = Vec::new();
        for name in self.bucket.list(VERSIONS_DIR)? {
            let version = name
                .strip_suffix(".json")
                .and_then(|v| v.parse::<u64>().ok());
            let object = format!("{VERSIONS_DIR}/{name}");
            match version {
                Some(v) if v >= keep_from => {
                    if let Some(body) = self.bucket.get_bytes(&object)? {
                        kept.extend(Manifest::parse(&body, self.bucket.url())?.blobs().cloned());
                    }
                }
                Some(_) => self.bucket.delete(&object)?,
                None => {}
            }
        }
        let now = Utc::now();
        for blob in self.bucket.list_objects(lake::BLOBS_DIR)? {
            let named = kept.iter().any(|b| b.sha256 == blob.name);
            let young = (now - blob.modified).to_std().unwrap_or_default() < BLOB_GRACE;
            if !named && !young {
                self.bucket
                    .delete(&format!("{}/{}", lake::BLOBS_DIR, blob.name))?;
            }
        }
        Ok(())
    }
}

/// Writes the serving database at `path` from `conn`: the schema, then `serving.sql`'s rows in
/// one transaction (one consistent cut of the live database). The first hour of its series.
fn build_database(
    conn: &Connection,
    path: &Path,
    series_days: u32,
    columns: &str,
) -> Result<i64, PublishError> {
    let _ = std::fs::remove_file(path);
    let source: String = conn.query_row("SELECT current_database()", [], |r| r.get(0))?;
    conn.execute_batch(&format!(
        "ATTACH {} AS serving",
        crate::lake::literal(&path.display().to_string())
    ))?;
    let filled = conn
        .execute_batch(&format!(
            "COPY FROM DATABASE {} TO serving (SCHEMA)",
            quote_identifier(&source)
        ))
        .map_err(PublishError::from)
        .and_then(|()| fill(conn, series_days, columns));
    let detached = conn.execute_batch("DETACH serving");
    let series_from_hour = filled?;
    detached?;
    Ok(series_from_hour)
}

fn fill(conn: &Connection, series_days: u32, columns: &str) -> Result<i64, PublishError> {
    conn.execute_batch(&format!(
        "BEGIN;
             SET VARIABLE series_from = (SELECT max(ts) FROM market_data) - to_days({series_days});
             SET VARIABLE pages_from = now() - INTERVAL 35 DAY;
             {}
             COMMIT;",
        include_str!("../../sql/publish/serving.sql").replace("{columns}", columns)
    ))
    .inspect_err(|_| {
        let _ = conn.execute_batch("ROLLBACK");
    })?;
    let from: Option<i64> = conn.query_row(
        "SELECT CAST(epoch(getvariable('series_from')) AS BIGINT) // 3600",
        [],
        |r| r.get(0),
    )?;
    Ok(from.unwrap_or(0))
}

/// `, "a", "b"` for the `features` columns the served models read, each checked against the
/// table (a `market_` input reads the market coin's column of the same name).
fn feature_columns(conn: &Connection, features: &[String]) -> Result<String, PublishError> {
    let known = crate::model::dataset::feature_columns(conn)?;
    let mut columns: Vec<&str> = Vec::new();
    for name in features {
        let own = name
            .strip_prefix(crate::model::dataset::MARKET_PREFIX)
            .unwrap_or(name);
        let column = known
            .iter()
            .find(|k| k.as_str() == own)
            .ok_or_else(|| crate::model::ModelError::UnknownFeature(name.clone()))?;
        if !columns.contains(&column.as_str()) {
            columns.push(column);
        }
    }
    Ok(columns
        .iter()
        .map(|c| format!(", {}", quote_identifier(c)))
        .collect())
}

/// zstd level 3: a DuckDB file's partly filled blocks shrink about tenfold, in milliseconds.
fn compress(from: &Path, to: &Path) -> Result<(), PublishError> {
    let input = std::fs::File::open(from).map_err(io_error(from))?;
    let output = std::fs::File::create(to).map_err(io_error(to))?;
    zstd::stream::copy_encode(input, output, 3).map_err(io_error(to))
}

/// The champion and the floor named by the serving database at `path`, with the writer's
/// path of each one's files.
fn served_models(path: &Path) -> Result<Vec<String>, PublishError> {
    let conn = Connection::open_with_flags(
        path,
        duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly)?,
    )?;
    let mut ids: Vec<String> = Vec::new();
    for row in [registry::champion(&conn)?, registry::floor(&conn)?]
        .into_iter()
        .flatten()
    {
        if !ids.contains(&row.model_id) {
            ids.push(row.model_id);
        }
    }
    Ok(ids)
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tables of `serving.sql`: those it fills and those its header leaves empty.
    fn named_tables() -> Vec<String> {
        let sql = include_str!("../../sql/publish/serving.sql");
        let mut names: Vec<String> = sql
            .split("INSERT INTO serving.")
            .skip(1)
            .filter_map(|rest| rest.split_whitespace().next().map(str::to_string))
            .collect();
        let empty = sql
            .split("-- Left empty:")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").next())
            .unwrap_or_default();
        for part in empty.split(',') {
            let name = part.trim_start_matches(|c: char| c == '-' || c.is_whitespace());
            if let Some(name) = name.split_whitespace().next() {
                names.push(name.to_string());
            }
        }
        names.sort();
        names
    }

    #[test]
    fn the_serving_database_names_every_table_of_the_schema_and_keeps_its_shape() {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::store::Store::open(dir.path()).expect("store");
        let tables = |conn: &Connection, database: &str| -> Vec<String> {
            let mut stmt = conn
                .prepare(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY 1",
                )
                .expect("tables");
            stmt.query_map([database], |r| r.get::<_, String>(0))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows")
        };
        let database: String = store
            .conn()
            .query_row("SELECT current_database()", [], |r| r.get(0))
            .expect("name");
        let schema = tables(store.conn(), &database);
        assert_eq!(named_tables(), schema, "serving.sql must name every table");
        let path = dir.path().join("serving.duckdb");
        let from = build_database(store.conn(), &path, 45, "").expect("build");
        assert_eq!(from, 0, "no data: no first hour");
        let serving = Connection::open(&path).expect("open");
        let copied: String = serving
            .query_row("SELECT current_database()", [], |r| r.get(0))
            .expect("name");
        assert_eq!(tables(&serving, &copied), schema);
        assert!(
            tables(store.conn(), &database) == schema,
            "the writer's database is as it was (serving detached)"
        );
    }
}
