//! Experiment tracking (`experiments`, `run_metrics`) and the model registry (`model_versions`,
//! `model_events`): a model becomes `champion` only through the promotion gate, or by an explicit
//! `coincast models promote`; otherwise it stays `challenger` with the reason recorded.

use chrono::{DateTime, Utc};
use duckdb::{params, Connection, OptionalExt};
use serde::{Deserialize, Serialize};

use super::ModelError;
use crate::crashpoint::{self, CrashPoint};

/// The git revision the binary was built from (set by build.rs; "unknown" outside a checkout).
pub const GIT_REVISION: &str = env!("COINCAST_GIT_REVISION");

pub struct NewExperiment<'a> {
    pub family: &'a str,
    pub params_json: &'a str,
    pub coins: &'a [String],
    pub dataset_version: &'a str,
    pub trained_until_hour: i64,
    pub device: &'a str,
}

pub fn start_experiment(conn: &Connection, e: &NewExperiment<'_>) -> Result<i64, ModelError> {
    insert_experiment(conn, None, Utc::now(), e)
}

/// Reserves the id of an experiment that another process computes (a retrain child names its
/// models after it); the worker records it with [`record_started_experiment`] when it returns.
pub fn reserve_experiment_id(conn: &Connection) -> Result<i64, ModelError> {
    Ok(conn.query_row("SELECT nextval('experiment_id_seq')", [], |r| r.get(0))?)
}

/// Records a running experiment under an id from [`reserve_experiment_id`].
pub fn record_started_experiment(
    conn: &Connection,
    run_id: i64,
    started_at: DateTime<Utc>,
    e: &NewExperiment<'_>,
) -> Result<(), ModelError> {
    insert_experiment(conn, Some(run_id), started_at, e).map(|_| ())
}

fn insert_experiment(
    conn: &Connection,
    run_id: Option<i64>,
    started_at: DateTime<Utc>,
    e: &NewExperiment<'_>,
) -> Result<i64, ModelError> {
    let coins = format!(
        "[{}]",
        e.coins
            .iter()
            .map(|c| format!("'{}'", c.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(conn.query_row(
        &format!(
            "INSERT INTO experiments (run_id, family, state, started_at, params, coins, dataset_version,
                                      trained_until, device, git_revision)
             VALUES (coalesce(?, nextval('experiment_id_seq')), ?, 'running', ?, ?,
                     CAST({coins} AS VARCHAR[]), ?, to_timestamp(? * 3600), ?, ?)
             RETURNING run_id"
        ),
        params![
            run_id,
            e.family,
            started_at,
            e.params_json,
            e.dataset_version,
            e.trained_until_hour,
            e.device,
            GIT_REVISION
        ],
        |r| r.get(0),
    )?)
}

pub fn log_metric(
    conn: &Connection,
    run_id: i64,
    step: i64,
    name: &str,
    value: f64,
) -> Result<(), ModelError> {
    conn.execute(
        "INSERT OR REPLACE INTO run_metrics (run_id, step, name, value) VALUES (?, ?, ?, ?)",
        params![run_id, step, name, value.is_finite().then_some(value)],
    )?;
    Ok(())
}

pub fn finish_experiment(
    conn: &Connection,
    run_id: i64,
    error: Option<&str>,
    summary_json: &str,
) -> Result<(), ModelError> {
    conn.execute(
        "UPDATE experiments SET state = ?, finished_at = now(), error = ?, summary = ? WHERE run_id = ?",
        params![
            if error.is_some() { "failed" } else { "success" },
            error,
            summary_json,
            run_id
        ],
    )?;
    Ok(())
}

/// The verdict a registration records: passed the gate or not, in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateVerdict {
    pub passed: bool,
    pub reason: String,
}

/// The registry role a new version takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// The champion (the previous one is demoted in the same transaction).
    Champion,
    /// Registered and kept for comparison or manual promotion.
    Challenger,
}

impl Role {
    pub fn alias(self) -> &'static str {
        match self {
            Role::Champion => "champion",
            Role::Challenger => "challenger",
        }
    }
}

/// Whether a new version is the floor (the previous floor is retired in the same transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Floor {
    Yes,
    No,
}

pub struct NewModel<'a> {
    pub model_id: &'a str,
    pub run_id: i64,
    pub family: &'a str,
    pub dataset_version: &'a str,
    pub artifact_path: &'a str,
    /// The promotion metric: mean interval score on the walk-forward windows (lower is better).
    pub score: f64,
    pub metrics_json: &'a str,
    pub training_stats_json: &'a str,
    pub verdict: &'a GateVerdict,
    /// The gate's conditions with their numbers (JSON).
    pub verdict_json: &'a str,
    pub recipe_json: &'a str,
    pub trained_until_hour: i64,
    pub role: Role,
    pub floor: Floor,
    /// Why the previous champion steps down, when `role` is champion.
    pub demotion_reason: &'a str,
}

/// Registers a model in its role; a new champion demotes the old one, a new floor retires the
/// old floor, all in one transaction.
pub fn register(conn: &Connection, m: &NewModel<'_>) -> Result<(), ModelError> {
    crate::store::in_transaction(conn, || -> Result<(), ModelError> {
        if m.role == Role::Champion {
            demote_champion(conn, m.demotion_reason)?;
        }
        if m.floor == Floor::Yes {
            conn.execute("UPDATE model_versions SET floor = false WHERE floor", [])?;
        }
        conn.execute(
            include_str!("../../sql/model/register_model.sql"),
            params![
                m.model_id,
                m.run_id,
                m.family,
                m.dataset_version,
                m.artifact_path,
                m.score.is_finite().then_some(m.score),
                m.metrics_json,
                m.training_stats_json,
                m.role.alias(),
                m.verdict.passed,
                m.verdict.reason,
                m.floor == Floor::Yes,
                m.verdict_json,
                m.trained_until_hour,
                m.recipe_json,
            ],
        )?;
        event(conn, m.model_id, "registered", &m.verdict.reason)?;
        if m.role == Role::Champion {
            event(conn, m.model_id, "promoted", &m.verdict.reason)?;
        }
        if m.floor == Floor::Yes {
            event(
                conn,
                m.model_id,
                "floor",
                "serves coins the champion does not cover",
            )?;
        }
        Ok(())
    })?;
    crashpoint::hit(CrashPoint::AfterRegistryCommit);
    checkpoint_after_change(conn);
    Ok(())
}

/// A registry change is checkpointed at once, so the WAL a crash could leave is as short as
/// possible. A failed checkpoint loses nothing (the change is committed to the WAL).
fn checkpoint_after_change(conn: &Connection) {
    if let Err(e) = crate::store::checkpoint(conn) {
        tracing::warn!("checkpoint after a registry change failed: {e}");
    }
}

fn demote_champion(conn: &Connection, reason: &str) -> Result<(), ModelError> {
    if let Some(old) = champion(conn)? {
        conn.execute(
            "UPDATE model_versions SET alias = 'challenger' WHERE model_id = ?",
            params![old.model_id],
        )?;
        event(conn, &old.model_id, "demoted", reason)?;
    }
    Ok(())
}

fn event(conn: &Connection, model_id: &str, event: &str, reason: &str) -> Result<(), ModelError> {
    conn.execute(
        "INSERT INTO model_events (model_id, event_at, event, reason) VALUES (?, now(), ?, ?)",
        params![model_id, event, reason],
    )?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelRow {
    pub model_id: String,
    pub family: String,
    pub created_at: String,
    pub alias: Option<String>,
    pub score: Option<f64>,
    pub gate_passed: bool,
    pub gate_reason: String,
    pub artifact_path: String,
    pub dataset_version: String,
    /// Whether it is the floor.
    pub floor: bool,
    /// Hours since the epoch of the newest origin it was fitted on (None: older registrations).
    pub trained_until_hour: Option<i64>,
    /// The dataset version (lake snapshot) it was trained on (None: no lake, or older).
    pub lake_version: Option<i64>,
    /// Retired by cleanup: its artifact is deleted, its row and lineage stay.
    pub retired: bool,
}

impl ModelRow {
    /// The artifact folder (`artifact_path` is relative to the data folder).
    pub fn artifact_dir(&self, data_dir: &std::path::Path) -> std::path::PathBuf {
        super::artifacts::resolve(data_dir, &self.artifact_path)
    }
}

const MODEL_COLUMNS: &str =
    "model_id, family, strftime(created_at AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S'),
    alias, score, gate_passed, gate_reason, artifact_path, dataset_version, coalesce(floor, false),
    CAST(epoch(trained_until) AS BIGINT) // 3600, lake_version, retired_at IS NOT NULL";

fn model_row(r: &duckdb::Row<'_>) -> Result<ModelRow, duckdb::Error> {
    Ok(ModelRow {
        model_id: r.get(0)?,
        family: r.get(1)?,
        created_at: r.get(2)?,
        alias: r.get(3)?,
        score: r.get(4)?,
        gate_passed: r.get(5)?,
        gate_reason: r.get(6)?,
        artifact_path: r.get(7)?,
        dataset_version: r.get(8)?,
        floor: r.get(9)?,
        trained_until_hour: r.get(10)?,
        lake_version: r.get(11)?,
        retired: r.get(12)?,
    })
}

pub fn list(conn: &Connection) -> Result<Vec<ModelRow>, ModelError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {MODEL_COLUMNS} FROM model_versions ORDER BY created_at DESC, model_id DESC"
    ))?;
    let rows = stmt
        .query_map([], model_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn get(conn: &Connection, model_id: &str) -> Result<ModelRow, ModelError> {
    conn.query_row(
        &format!("SELECT {MODEL_COLUMNS} FROM model_versions WHERE model_id = ?"),
        params![model_id],
        model_row,
    )
    .optional()?
    .ok_or_else(|| ModelError::UnknownModel(model_id.to_string()))
}

/// A registered model that can still be loaded: not retired by cleanup.
pub fn get_servable(conn: &Connection, model_id: &str) -> Result<ModelRow, ModelError> {
    let row = get(conn, model_id)?;
    if row.retired {
        return Err(ModelError::Retired(row.model_id));
    }
    Ok(row)
}

/// The floor: serves coins the champion does not cover, and everything before a champion exists.
pub fn floor(conn: &Connection) -> Result<Option<ModelRow>, ModelError> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {MODEL_COLUMNS} FROM model_versions WHERE floor ORDER BY created_at DESC LIMIT 1"
            ),
            [],
            model_row,
        )
        .optional()?)
}

pub fn champion(conn: &Connection) -> Result<Option<ModelRow>, ModelError> {
    Ok(conn
        .query_row(
            &format!("SELECT {MODEL_COLUMNS} FROM model_versions WHERE alias = 'champion'"),
            [],
            model_row,
        )
        .optional()?)
}

/// Makes a model champion by hand. A model that failed the gate needs `force`.
/// Whether a change of champion honours the gate's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateCheck {
    /// A model that failed the gate is refused.
    Enforce,
    /// A person overrides the verdict (`--force`, `"force": true`); the event says so.
    Force,
}

impl GateCheck {
    /// `--force` or `"force": true` as given.
    pub fn forced_if(force: bool) -> Self {
        if force {
            GateCheck::Force
        } else {
            GateCheck::Enforce
        }
    }

    fn refuses(self, m: &ModelRow) -> bool {
        self == GateCheck::Enforce && !m.gate_passed
    }
}

pub fn promote(conn: &Connection, model_id: &str, gate: GateCheck) -> Result<(), ModelError> {
    let m = get_servable(conn, model_id)?;
    if m.alias.as_deref() == Some("champion") {
        return Ok(());
    }
    if gate.refuses(&m) {
        return Err(ModelError::Gate(format!(
            "{model_id} failed the promotion gate ({}); force the promotion (`--force`, or \"force\": true in the API) to promote it anyway",
            m.gate_reason
        )));
    }
    crate::store::in_transaction(conn, || -> Result<(), ModelError> {
        demote_champion(conn, &format!("replaced by {model_id} (manual promotion)"))?;
        conn.execute(
            "UPDATE model_versions SET alias = 'champion' WHERE model_id = ?",
            params![model_id],
        )?;
        event(
            conn,
            model_id,
            "promoted",
            match gate {
                GateCheck::Force => "manual promotion (forced)",
                GateCheck::Enforce => "manual promotion",
            },
        )
    })?;
    checkpoint_after_change(conn);
    Ok(())
}

/// Gives the champion role back to the champion before the current one, along the champion
/// history: rolling back again goes further back, never forth, and ends with "nothing to roll
/// back to". A model that failed the gate comes back only with `GateCheck::Force`.
pub fn rollback(conn: &Connection, gate: GateCheck) -> Result<String, ModelError> {
    let current = champion(conn)?
        .ok_or_else(|| ModelError::Gate("there is no champion to roll back".into()))?;
    let previous = rollback_target_of(conn, &current.model_id)?.ok_or_else(|| {
        ModelError::Gate(format!(
            "{} is the first champion in the history: nothing to roll back to",
            current.model_id
        ))
    })?;
    if gate.refuses(&previous) {
        return Err(ModelError::Gate(format!(
            "the champion before {} is {}, which failed the promotion gate ({}); roll back with \
             `--force` (or \"force\": true in the API) to bring it back anyway",
            current.model_id, previous.model_id, previous.gate_reason
        )));
    }
    let previous = previous.model_id;
    crate::store::in_transaction(conn, || -> Result<(), ModelError> {
        conn.execute(
            "UPDATE model_versions SET alias = 'challenger' WHERE model_id = ?",
            params![current.model_id],
        )?;
        event(
            conn,
            &current.model_id,
            "demoted",
            &format!("rolled back to {previous}"),
        )?;
        conn.execute(
            "UPDATE model_versions SET alias = 'champion' WHERE model_id = ?",
            params![previous],
        )?;
        event(
            conn,
            &previous,
            "restored",
            &match gate {
                GateCheck::Force => format!("rollback from {} (forced)", current.model_id),
                GateCheck::Enforce => format!("rollback from {}", current.model_id),
            },
        )
    })?;
    checkpoint_after_change(conn);
    Ok(previous)
}

/// The model a rollback would make champion again: the newest champion before the current one
/// in the history that is still registered and not retired.
pub fn rollback_target(conn: &Connection) -> Result<Option<ModelRow>, ModelError> {
    match champion(conn)? {
        Some(current) => rollback_target_of(conn, &current.model_id),
        None => Ok(None),
    }
}

fn rollback_target_of(conn: &Connection, current: &str) -> Result<Option<ModelRow>, ModelError> {
    let mut history = champion_history(conn)?;
    while history.last().map(String::as_str) == Some(current) {
        history.pop();
    }
    while let Some(id) = history.pop() {
        match get(conn, &id) {
            Ok(row) if !row.retired => return Ok(Some(row)),
            // Deleted from the registry or retired since: the one before it is next.
            Ok(_) | Err(ModelError::UnknownModel(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// The champion history as a stack, newest on top: a promotion pushes its model, a rollback
/// pops the champion it undid (leaving the restored one on top).
fn champion_history(conn: &Connection) -> Result<Vec<String>, ModelError> {
    let mut stmt = conn.prepare(include_str!("../../sql/model/champion_history.sql"))?;
    let events = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut stack: Vec<String> = Vec::new();
    for e in events {
        let (model_id, event, reason) = e?;
        // Releases before this one recorded a rollback's restoration as a promotion.
        let restored = event == "restored" || reason.starts_with("rollback from ");
        if restored {
            stack.pop();
            if stack.last() == Some(&model_id) {
                continue;
            }
        }
        stack.push(model_id);
    }
    Ok(stack)
}

/// Marks a model retired (cleanup deleted its artifact); its row, events and lineage stay.
pub fn retire(conn: &Connection, model_id: &str, reason: &str) -> Result<(), ModelError> {
    crate::store::in_transaction(conn, || -> Result<(), ModelError> {
        conn.execute(
            "UPDATE model_versions SET retired_at = now() WHERE model_id = ? AND retired_at IS NULL",
            params![model_id],
        )?;
        event(conn, model_id, "retired", reason)
    })
}

/// Records the dataset version a training run read, on its experiment and every model it
/// registered.
pub fn set_lake_version(conn: &Connection, run_id: i64, version: i64) -> Result<(), ModelError> {
    conn.execute(
        "UPDATE experiments SET lake_version = ? WHERE run_id = ?",
        params![version, run_id],
    )?;
    conn.execute(
        "UPDATE model_versions SET lake_version = ? WHERE run_id = ?",
        params![version, run_id],
    )?;
    Ok(())
}

/// Where a dataset's rows are read from: two table expressions for `sql/model/dataset_hash.sql`.
#[derive(Debug, Clone)]
pub struct DatasetTables {
    pub features: String,
    pub market_data: String,
}

impl DatasetTables {
    /// The live file's tables.
    pub fn live() -> Self {
        Self {
            features: "features".into(),
            market_data: "market_data".into(),
        }
    }
}

/// A content hash of the training data: the rows of `market_data` and `features` of `coins` up to
/// `until_hour`, and the feature SQL that produced them.
pub fn dataset_version(
    conn: &Connection,
    coins: &[String],
    vs_currency: &str,
    until_hour: i64,
) -> Result<String, ModelError> {
    Ok(dataset_hash(
        conn,
        &DatasetTables::live(),
        coins,
        vs_currency,
        until_hour,
    )?)
}

/// `dataset_version` over other tables (a lake version, exported files): the same rows give the
/// same hash wherever they are read from.
pub fn dataset_hash(
    conn: &Connection,
    tables: &DatasetTables,
    coins: &[String],
    vs_currency: &str,
    until_hour: i64,
) -> Result<String, duckdb::Error> {
    let digests = coin_digests(conn, tables, coins, vs_currency, until_hour)?;
    Ok(combine_digests(&digests))
}

/// Each coin's part of `dataset_hash` (an order-independent sum over its rows before the
/// cut-off; empty for a coin without rows), in the order of `coins`, from one grouped query.
pub fn coin_digests(
    conn: &Connection,
    tables: &DatasetTables,
    coins: &[String],
    vs_currency: &str,
    until_hour: i64,
) -> Result<Vec<(String, String)>, duckdb::Error> {
    let sql = include_str!("../../sql/model/dataset_hash.sql")
        .replace("{features}", &tables.features)
        .replace("{market_data}", &tables.market_data);
    let mut stmt = conn.prepare(&sql)?;
    let found: std::collections::HashMap<String, String> = stmt
        .query_map(params![coins.join(","), vs_currency, until_hour], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(coins
        .iter()
        .map(|c| (c.clone(), found.get(c).cloned().unwrap_or_default()))
        .collect())
}

/// `dataset_hash` from the coins' digests, in the order given: the feature SQL, then each coin
/// and its digest.
pub fn combine_digests(digests: &[(String, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(include_str!("../../sql/features/hourly.sql").as_bytes());
    for (coin, digest) in digests {
        hasher.update(coin.as_bytes());
        hasher.update(digest.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register_as(conn: &Connection, model_id: &str, role: Role, passed: bool) {
        let verdict = GateVerdict {
            passed,
            reason: if passed { "passed" } else { "failed" }.into(),
        };
        register(
            conn,
            &NewModel {
                model_id,
                run_id: 1,
                family: "persistence_ewma",
                dataset_version: "v",
                artifact_path: "models/x",
                score: 1.0,
                metrics_json: "{}",
                training_stats_json: "{}",
                verdict: &verdict,
                verdict_json: "{}",
                recipe_json: "{}",
                trained_until_hour: 0,
                role,
                floor: Floor::No,
                demotion_reason: "replaced",
            },
        )
        .expect("register");
    }

    fn champion_id(conn: &Connection) -> String {
        champion(conn).expect("q").expect("a champion").model_id
    }

    /// Force-promote a model that failed the gate, then roll back three times: back along the
    /// history (never flipping between two), and a gate-failed model only with force.
    #[test]
    fn rollback_walks_the_champion_history_back_and_respects_the_gate() {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::store::Store::open(dir.path()).expect("store");
        let conn = store.conn();
        register_as(conn, "a", Role::Champion, true);
        register_as(conn, "failed", Role::Challenger, false);
        register_as(conn, "b", Role::Champion, true);
        promote(conn, "failed", GateCheck::Enforce).expect_err("failed the gate");
        promote(conn, "failed", GateCheck::Force).expect("forced");
        assert_eq!(champion_id(conn), "failed");
        assert_eq!(rollback(conn, GateCheck::Enforce).expect("to b"), "b");
        assert_eq!(rollback(conn, GateCheck::Enforce).expect("to a"), "a");
        let err = rollback(conn, GateCheck::Enforce).expect_err("nothing before a");
        assert!(err.to_string().contains("nothing to roll back to"), "{err}");
        assert_eq!(champion_id(conn), "a");

        // The gate-failed model comes back by a rollback only with force.
        promote(conn, "failed", GateCheck::Force).expect("forced");
        promote(conn, "b", GateCheck::Enforce).expect("b");
        let err = rollback(conn, GateCheck::Enforce).expect_err("failed the gate");
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(champion_id(conn), "b");
        assert_eq!(rollback(conn, GateCheck::Force).expect("forced"), "failed");
        assert_eq!(rollback(conn, GateCheck::Enforce).expect("to a"), "a");
    }
}
