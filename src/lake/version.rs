//! Dataset versions: committing what a run changed as one DuckLake snapshot, listing, comparing
//! and exporting them. A version's metadata is its snapshot's commit info (`VersionInfo`, JSON).

use std::path::{Path, PathBuf};
use std::time::Duration;

use duckdb::{params, Connection, OptionalExt};
use serde::{Deserialize, Serialize};

use super::{literal, LakeError};
use crate::model::registry::{self, DatasetTables};
use crate::quality::RuleSet;

/// The format of `VersionInfo`, for readers of the commit info.
const INFO_FORMAT: u32 = 1;
/// A commit that conflicts with another writer's is tried again this often.
const COMMIT_ATTEMPTS: u32 = 5;
/// The tables a version holds, in export order.
const TABLES: [&str; 4] = ["market_data", "features", "quality_results", "raw_batches"];

/// The newest change the live file held when a version was committed: the next version takes
/// what changed after these.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermarks {
    pub merged: Option<String>,
    pub checked: Option<String>,
    pub batches: Option<String>,
}

/// A coin's hours that a version wrote again (from the earliest changed hour on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoinRange {
    pub coin_id: String,
    pub vs_currency: String,
    pub since: String,
    pub until: String,
    /// Hours of market data merged since the last version.
    pub hours: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    pub market_data: i64,
    pub features: i64,
    pub quality_results: i64,
    pub raw_batches: i64,
}

/// What a version is: its snapshot's commit info.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub format: u32,
    /// The data folder that committed it (`lake_writer`): its watermarks are that folder's.
    pub writer: String,
    /// The pipeline run that committed it (none: a command).
    pub run_id: Option<i64>,
    pub watermarks: Watermarks,
    /// The coins and hour ranges this version wrote again.
    pub changed: Vec<CoinRange>,
    /// Every table's rows in this version (all writers' rows).
    pub rows: TableRows,
    /// `registry::dataset_hash` of every coin in the version up to `until_hour`, computed on the
    /// lake inside the commit: a model trained on this version's rows registers the same hash
    /// for its coins and cut-off.
    pub content_hash: String,
    pub coins: Vec<String>,
    pub vs_currency: String,
    pub until_hour: i64,
    /// Each coin's part of the content hash (`registry::coin_digests`): the next version hashes
    /// again only the coins it changed.
    #[serde(default)]
    pub coin_digests: std::collections::BTreeMap<String, String>,
    /// SHA-256 of `sql/features/hourly.sql` and of the quality rules in force.
    pub feature_sql_hash: String,
    pub rules_hash: String,
    /// The batches whose metadata or quality results this version took in.
    pub batch_ids: Vec<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Version {
    /// The DuckLake snapshot id.
    pub version: i64,
    pub committed_at: String,
    pub info: VersionInfo,
}

/// Every dataset version, oldest first.
pub fn list(conn: &Connection) -> Result<Vec<Version>, LakeError> {
    let mut stmt = conn.prepare(include_str!("../../sql/lake/versions.sql"))?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut versions = Vec::new();
    for row in rows {
        let (version, committed_at, info) = row?;
        let info: VersionInfo = serde_json::from_str(&info).map_err(|e| LakeError::Metadata {
            version,
            message: e.to_string(),
        })?;
        versions.push(Version {
            version,
            committed_at,
            info,
        });
    }
    Ok(versions)
}

pub fn latest(conn: &Connection) -> Result<Option<Version>, LakeError> {
    Ok(list(conn)?.pop())
}

pub fn show(conn: &Connection, version: i64) -> Result<Version, LakeError> {
    list(conn)?
        .into_iter()
        .find(|v| v.version == version)
        .ok_or(LakeError::UnknownVersion(version))
}

/// Commits what changed in the live file since the last version as one snapshot; `None` when
/// nothing did. Tried again on a conflict with another writer; a failed attempt leaves no
/// version behind (one transaction).
pub fn commit(
    conn: &Connection,
    run_id: Option<i64>,
    vs_currency: &str,
    rules: &RuleSet,
) -> Result<Option<Version>, LakeError> {
    let writer = writer_id(conn)?;
    let last = list(conn)?
        .into_iter()
        .rev()
        .find(|v| v.info.writer == writer);
    let now = watermarks(conn)?;
    let feature_sql_hash = sha256(include_str!("../../sql/features/hourly.sql"));
    let features_changed = last
        .as_ref()
        .is_none_or(|l| l.info.feature_sql_hash != feature_sql_hash);
    let since = last
        .as_ref()
        .map(|l| l.info.watermarks.clone())
        .unwrap_or_default();
    if since == now && !features_changed {
        return Ok(None);
    }
    conn.execute(
        include_str!("../../sql/lake/changed_hours.sql"),
        params![since.merged],
    )?;
    conn.execute(
        include_str!("../../sql/lake/changed_batches.sql"),
        params![since.batches, since.checked],
    )?;
    let changed = changed_hours(conn)?;
    let batch_ids = changed_batches(conn)?;
    if changed.is_empty() && batch_ids.is_empty() && !features_changed {
        return Ok(None);
    }
    let draft = VersionInfo {
        format: INFO_FORMAT,
        writer,
        run_id,
        watermarks: now,
        changed,
        rows: TableRows::default(),
        content_hash: String::new(),
        coins: Vec::new(),
        coin_digests: Default::default(),
        vs_currency: vs_currency.to_string(),
        until_hour: 0,
        feature_sql_hash,
        rules_hash: rules_hash(rules),
        batch_ids,
    };
    let (version, info) = commit_with_retries(conn, draft, features_changed)?;
    conn.execute_batch(
        "DROP TABLE IF EXISTS lake_changed_hours; DROP TABLE IF EXISTS lake_changed_batches;",
    )?;
    Ok(Some(Version {
        version,
        committed_at: chrono::Utc::now().to_rfc3339(),
        info,
    }))
}

/// The version's rows written, then its content described from inside the transaction (what
/// it holds with every other writer's rows), then the commit; again on a conflict.
fn commit_with_retries(
    conn: &Connection,
    draft: VersionInfo,
    features_changed: bool,
) -> Result<(i64, VersionInfo), LakeError> {
    let message = match draft.run_id {
        Some(run) => format!("dataset version of run {run}"),
        None => "dataset version".to_string(),
    };
    let mut attempt = 0;
    let info = loop {
        attempt += 1;
        let result = crate::store::in_transaction(conn, || -> Result<VersionInfo, LakeError> {
            // Serializes versions: a concurrent one conflicts here and is tried again.
            conn.execute("DELETE FROM lake.coincast_head", [])?;
            conn.execute(
                "INSERT INTO lake.coincast_head VALUES (?, now())",
                params![draft.writer],
            )?;
            conn.execute_batch(
                &include_str!("../../sql/lake/replace_hours.sql").replace("{table}", "market_data"),
            )?;
            if features_changed {
                conn.execute_batch(include_str!("../../sql/lake/replace_features.sql"))?;
            } else {
                conn.execute_batch(
                    &include_str!("../../sql/lake/replace_hours.sql")
                        .replace("{table}", "features"),
                )?;
            }
            conn.execute_batch(
                &include_str!("../../sql/lake/replace_batches.sql")
                    .replace("{writer}", &literal(&draft.writer)),
            )?;
            let info = describe(conn, draft.clone(), features_changed)?;
            let extra_info = serde_json::to_string(&info).map_err(|e| LakeError::Metadata {
                version: -1,
                message: e.to_string(),
            })?;
            conn.execute(
                "CALL lake.set_commit_message('coincast', ?, extra_info => ?)",
                params![message, extra_info],
            )?;
            Ok(info)
        });
        match result {
            Ok(info) => break info,
            Err(LakeError::Sql(e)) if attempt < COMMIT_ATTEMPTS && is_conflict(&e) => {
                tracing::warn!(
                    "dataset version commit conflicted (attempt {attempt}): {e}; trying again"
                );
                std::thread::sleep(Duration::from_millis(100 * u64::from(attempt)));
            }
            Err(LakeError::Sql(source)) => {
                return Err(LakeError::Commit {
                    attempts: attempt,
                    source,
                })
            }
            Err(other) => return Err(other),
        }
    };
    let version: Option<i64> = conn
        .query_row("SELECT id FROM lake.last_committed_snapshot()", [], |r| {
            r.get(0)
        })
        .optional()?
        .flatten();
    let version = match version {
        Some(v) => v,
        None => conn.query_row("SELECT id FROM lake.current_snapshot()", [], |r| r.get(0))?,
    };
    Ok((version, info))
}

/// The coins, rows and content hash of the lake as this transaction sees it. Only the coins
/// this version changed are hashed again; the others keep the digest of the
/// version before (any writer's: versions are serialized, so it is this one's predecessor). A
/// coin's digest covers all its rows, whatever the cut-off, as every row is before `until_hour`.
fn describe(
    conn: &Connection,
    mut info: VersionInfo,
    features_changed: bool,
) -> Result<VersionInfo, LakeError> {
    let lake = DatasetTables {
        features: "lake.features".into(),
        market_data: "lake.market_data".into(),
    };
    let mut stmt = conn.prepare(
        "SELECT DISTINCT coin_id FROM lake.market_data WHERE vs_currency = ? ORDER BY coin_id",
    )?;
    info.coins = stmt
        .query_map([&info.vs_currency], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    info.until_hour = conn.query_row(
        "SELECT coalesce(CAST(epoch(max(ts)) AS BIGINT) // 3600 + 1, 0)
         FROM lake.market_data WHERE vs_currency = ?",
        [&info.vs_currency],
        |r| r.get(0),
    )?;
    info.rows = table_rows(conn, "")?;
    let previous = if features_changed {
        Default::default()
    } else {
        latest(conn)?
            .map(|v| v.info.coin_digests)
            .unwrap_or_default()
    };
    let changed: std::collections::BTreeSet<&str> =
        info.changed.iter().map(|c| c.coin_id.as_str()).collect();
    let stale: Vec<String> = info
        .coins
        .iter()
        .filter(|c| changed.contains(c.as_str()) || !previous.contains_key(*c))
        .cloned()
        .collect();
    let fresh: std::collections::BTreeMap<String, String> = if stale.is_empty() {
        Default::default()
    } else {
        registry::coin_digests(conn, &lake, &stale, &info.vs_currency, info.until_hour)?
            .into_iter()
            .collect()
    };
    let digests: Vec<(String, String)> = info
        .coins
        .iter()
        .map(|c| {
            let d = fresh
                .get(c)
                .or_else(|| previous.get(c))
                .cloned()
                .unwrap_or_default();
            (c.clone(), d)
        })
        .collect();
    info.content_hash = registry::combine_digests(&digests);
    info.coin_digests = digests.into_iter().collect();
    Ok(info)
}

/// This data folder's id as a lake writer, made by its first commit.
pub(super) fn writer_id(conn: &Connection) -> Result<String, LakeError> {
    let found: Option<String> = conn
        .query_row("SELECT writer_id FROM lake_writer LIMIT 1", [], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    Ok(conn.query_row(
        "INSERT INTO lake_writer VALUES (CAST(uuid() AS VARCHAR), now()) RETURNING writer_id",
        [],
        |r| r.get(0),
    )?)
}

/// Another writer committed first: DuckLake refuses the transaction and it can be run again.
fn is_conflict(e: &duckdb::Error) -> bool {
    let text = e.to_string().to_lowercase();
    text.contains("conflict") || text.contains("concurrent")
}

fn watermarks(conn: &Connection) -> Result<Watermarks, LakeError> {
    Ok(
        conn.query_row(include_str!("../../sql/lake/watermarks.sql"), [], |r| {
            Ok(Watermarks {
                merged: r.get(0)?,
                checked: r.get(1)?,
                batches: r.get(2)?,
            })
        })?,
    )
}

fn changed_hours(conn: &Connection) -> Result<Vec<CoinRange>, LakeError> {
    let mut stmt = conn.prepare(
        "SELECT coin_id, vs_currency, CAST(since AS VARCHAR), CAST(until AS VARCHAR), hours
         FROM lake_changed_hours ORDER BY coin_id, vs_currency",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(CoinRange {
            coin_id: r.get(0)?,
            vs_currency: r.get(1)?,
            since: r.get(2)?,
            until: r.get(3)?,
            hours: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn changed_batches(conn: &Connection) -> Result<Vec<i64>, LakeError> {
    let mut stmt = conn.prepare("SELECT batch_id FROM lake_changed_batches ORDER BY batch_id")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Rows of every table as the lake holds them at `version`.
pub fn rows_at(conn: &Connection, version: i64) -> Result<TableRows, LakeError> {
    table_rows(conn, &format!(" AT (VERSION => {version})"))
}

/// Rows of every lake table; `at` is an `AT (...)` clause, or empty for what the current
/// transaction sees.
fn table_rows(conn: &Connection, at: &str) -> Result<TableRows, LakeError> {
    let sql = include_str!("../../sql/lake/version_counts.sql").replace("{at}", at);
    Ok(conn.query_row(&sql, [], |r| {
        Ok(TableRows {
            market_data: r.get(0)?,
            features: r.get(1)?,
            quality_results: r.get(2)?,
            raw_batches: r.get(3)?,
        })
    })?)
}

/// The quality rules in force: names, severities, thresholds and queries.
fn rules_hash(rules: &RuleSet) -> String {
    let text: String = rules
        .rules
        .iter()
        .map(|r| format!("{}\n{}\n{}\n{}\n", r.name, r.severity, r.threshold, r.sql))
        .collect();
    sha256(&text)
}

fn sha256(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Hours of market data per coin only in the newer version (added or revised) and only in the
/// older one (removed or revised).
#[derive(Debug, Clone, Serialize)]
pub struct CoinDiff {
    pub coin_id: String,
    pub in_newer: i64,
    pub in_older: i64,
}

pub fn diff(conn: &Connection, older: i64, newer: i64) -> Result<Vec<CoinDiff>, LakeError> {
    show(conn, older)?;
    show(conn, newer)?;
    let sql = include_str!("../../sql/lake/diff.sql")
        .replace("{a}", &older.to_string())
        .replace("{b}", &newer.to_string());
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], |r| {
        Ok(CoinDiff {
            coin_id: r.get(0)?,
            in_newer: r.get(1)?,
            in_older: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A version written out as Parquet files, with its hash computed again from those files.
#[derive(Debug, Clone, Serialize)]
pub struct Export {
    pub version: i64,
    pub dir: PathBuf,
    pub rows: TableRows,
    pub content_hash: String,
    /// The files' hash equals the one recorded when the version was committed.
    pub reproduced: bool,
}

/// Writes `version`'s tables to `dir` (one zstd Parquet file each, and `version.json`), then
/// hashes the files as a training run hashes its rows.
pub fn export(conn: &Connection, version: i64, dir: &Path) -> Result<Export, LakeError> {
    let v = show(conn, version)?;
    std::fs::create_dir_all(dir).map_err(|source| LakeError::Io {
        action: "cannot create",
        path: dir.to_path_buf(),
        source,
    })?;
    let file = |table: &str| dir.join(format!("{table}.parquet")).display().to_string();
    for table in TABLES {
        conn.execute_batch(&format!(
            "COPY (FROM lake.{table} AT (VERSION => {version})) TO {} (FORMAT parquet, COMPRESSION zstd);",
            literal(&file(table))
        ))?;
    }
    let meta = dir.join("version.json");
    let json = serde_json::to_string_pretty(&v).map_err(|e| LakeError::Metadata {
        version,
        message: e.to_string(),
    })?;
    std::fs::write(&meta, json).map_err(|source| LakeError::Io {
        action: "cannot write",
        path: meta.clone(),
        source,
    })?;
    let from_files = DatasetTables {
        features: format!("read_parquet({})", literal(&file("features"))),
        market_data: format!("read_parquet({})", literal(&file("market_data"))),
    };
    let content_hash = registry::dataset_hash(
        conn,
        &from_files,
        &v.info.coins,
        &v.info.vs_currency,
        v.info.until_hour,
    )?;
    Ok(Export {
        version,
        dir: dir.to_path_buf(),
        rows: rows_at(conn, version)?,
        reproduced: content_hash == v.info.content_hash,
        content_hash,
    })
}

/// One coin of a model's lineage: the batches merged into its training version, the hours they
/// gave, the predictions the model served.
#[derive(Debug, Clone, Serialize)]
pub struct CoinLineage {
    pub coin_id: String,
    pub merged_batches: i64,
    pub hours: i64,
    pub first_hour: String,
    pub last_hour: String,
    pub predictions: i64,
}

/// The chain raw batch → merged hours → version → model → served predictions, per coin, for a
/// model trained on lake `version`.
pub fn lineage(
    conn: &Connection,
    version: i64,
    model_id: &str,
) -> Result<Vec<CoinLineage>, LakeError> {
    show(conn, version)?;
    let sql = include_str!("../../sql/lake/lineage.sql").replace("{v}", &version.to_string());
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([model_id], |r| {
        Ok(CoinLineage {
            coin_id: r.get(0)?,
            merged_batches: r.get(1)?,
            hours: r.get(2)?,
            first_hour: r.get(3)?,
            last_hour: r.get(4)?,
            predictions: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
