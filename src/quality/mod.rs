//! The quality gate: SQL rules over a staged batch decide whether it may reach `market_data`.
//!
//! Invariant: a batch is merged only when no error-severity rule found a violation; otherwise it
//! is quarantined with its staged rows and body kept, and can be checked again later
//! (`coincast quality --batch ID`) after the rules or the parser change.

pub mod rules;

use duckdb::{params, Connection};

use crate::ingest::batch::{self, BatchState};
use crate::merge;
pub use rules::{Rule, RuleSet, Severity};

#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    #[error("rule file {origin}, line {line}: {message}")]
    RuleFile {
        origin: String,
        line: usize,
        message: String,
    },
    #[error("invalid setting `{key}`: no rule of that name exists")]
    UnknownRule { key: String },
    #[error("invalid setting `{key}`: {message}")]
    Config { key: String, message: String },
    #[error("rule `{rule}` ({origin}) failed to run: {source}")]
    RuleSql {
        rule: String,
        origin: String,
        source: duckdb::Error,
    },
    #[error(transparent)]
    Batch(#[from] batch::BatchError),
    #[error(transparent)]
    Merge(#[from] merge::MergeError),
    #[error(transparent)]
    Sql(#[from] duckdb::Error),
}

impl crate::failure::Classify for QualityError {
    fn failure(&self) -> crate::failure::Failure {
        match self {
            QualityError::RuleFile { .. }
            | QualityError::UnknownRule { .. }
            | QualityError::Config { .. } => crate::failure::Failure::Usage,
            _ => crate::failure::Failure::Internal,
        }
    }
}

/// The verdict of one rule on one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleResult {
    pub rule: String,
    pub severity: Severity,
    pub passed: bool,
    pub violations: u64,
    pub threshold: f64,
    /// The description, and for a failure the first violating row.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GateReport {
    pub batch_id: i64,
    pub results: Vec<RuleResult>,
}

impl GateReport {
    pub fn failed_errors(&self) -> impl Iterator<Item = &RuleResult> {
        self.results
            .iter()
            .filter(|r| !r.passed && r.severity == Severity::Error)
    }

    pub fn failed_warnings(&self) -> impl Iterator<Item = &RuleResult> {
        self.results
            .iter()
            .filter(|r| !r.passed && r.severity == Severity::Warn)
    }

    pub fn passed(&self) -> bool {
        self.failed_errors().next().is_none()
    }

    /// One line per failed rule, e.g. `price_positive (error): 2 violations: ...`.
    pub fn summary<'a>(failed: impl Iterator<Item = &'a RuleResult>) -> String {
        failed
            .map(|r| {
                format!(
                    "{} ({}): {} violation{}: {}",
                    r.rule,
                    r.severity,
                    r.violations,
                    if r.violations == 1 { "" } else { "s" },
                    r.detail
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Runs every rule on a staged batch and records the results (replacing earlier ones).
pub fn check_batch(
    conn: &Connection,
    rules: &RuleSet,
    batch_id: i64,
    max_failing_rows: u32,
) -> Result<GateReport, QualityError> {
    batch::set_batch_variable(conn, batch_id)?;
    conn.execute(
        "DELETE FROM quality_results WHERE batch_id = ?",
        params![batch_id],
    )?;
    conn.execute(
        "DELETE FROM quality_violations WHERE batch_id = ?",
        params![batch_id],
    )?;
    let mut results = Vec::with_capacity(rules.rules.len());
    for rule in &rules.rules {
        let result = run_rule(conn, rule, batch_id, max_failing_rows)?;
        conn.execute(
            "INSERT INTO quality_results (batch_id, rule, severity, passed, violations, threshold, detail, checked_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, now())",
            params![
                batch_id,
                result.rule,
                result.severity.name(),
                result.passed,
                result.violations as i64,
                result.threshold,
                result.detail
            ],
        )?;
        results.push(result);
    }
    conn.execute_batch("DROP TABLE IF EXISTS temp.rule_out;")?;
    Ok(GateReport { batch_id, results })
}

fn run_rule(
    conn: &Connection,
    rule: &Rule,
    batch_id: i64,
    max_failing_rows: u32,
) -> Result<RuleResult, QualityError> {
    let sql_err = |source| QualityError::RuleSql {
        rule: rule.name.clone(),
        origin: rule.origin.clone(),
        source,
    };
    // `{:?}` prints an f64 so that it reads back exactly, and always with a decimal point.
    conn.execute_batch(&format!(
        "SET VARIABLE threshold = CAST({:?} AS DOUBLE);\nCREATE OR REPLACE TEMP TABLE rule_out AS\n{};",
        rule.threshold, rule.sql
    ))
    .map_err(sql_err)?;
    let violations: i64 = conn.query_row("SELECT count(*) FROM temp.rule_out", [], |r| r.get(0))?;
    let mut detail = rule.description.clone();
    if violations > 0 {
        conn.execute(
            "INSERT INTO quality_violations (batch_id, rule, row_no, row_json)
             SELECT ?, ?, row_number() OVER (), to_json(t) FROM (SELECT * FROM temp.rule_out LIMIT ?) t",
            params![batch_id, rule.name, max_failing_rows],
        )?;
        let first: String = conn.query_row(
            "SELECT to_json(t)::VARCHAR FROM temp.rule_out t LIMIT 1",
            [],
            |r| r.get(0),
        )?;
        detail = format!("{detail}; e.g. {first}");
    }
    Ok(RuleResult {
        rule: rule.name.clone(),
        severity: rule.severity,
        passed: violations == 0,
        violations: violations as u64,
        threshold: rule.threshold,
        detail,
    })
}

/// What the gate did with a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum GateOutcome {
    Merged {
        report: GateReport,
        merge: merge::MergeStats,
    },
    Quarantined {
        report: GateReport,
        reason: String,
    },
}

/// Checks a staged batch and merges it if it passes, quarantines it if not: one transaction, so
/// a crash leaves the batch `staged` for the next run.
pub fn gate_batch(
    conn: &Connection,
    rules: &RuleSet,
    batch_id: i64,
    max_failing_rows: u32,
) -> Result<GateOutcome, QualityError> {
    let outcome = crate::store::in_transaction(conn, || {
        gate_in_transaction(conn, rules, batch_id, max_failing_rows)
    })?;
    if matches!(outcome, GateOutcome::Merged { .. }) {
        crate::crashpoint::hit(crate::crashpoint::CrashPoint::AfterMergeCommit);
    }
    Ok(outcome)
}

fn gate_in_transaction(
    conn: &Connection,
    rules: &RuleSet,
    batch_id: i64,
    max_failing_rows: u32,
) -> Result<GateOutcome, QualityError> {
    let report = check_batch(conn, rules, batch_id, max_failing_rows)?;
    if !report.passed() {
        let reason = GateReport::summary(report.failed_errors());
        batch::set_state(conn, batch_id, BatchState::Quarantined, Some(&reason))?;
        return Ok(GateOutcome::Quarantined { report, reason });
    }
    let stats = merge::merge_batch(conn, batch_id)?;
    batch::clear_staging(conn, batch_id)?;
    let warnings = GateReport::summary(report.failed_warnings());
    batch::set_state(
        conn,
        batch_id,
        BatchState::Merged,
        (!warnings.is_empty()).then_some(warnings.as_str()),
    )?;
    Ok(GateOutcome::Merged {
        report,
        merge: stats,
    })
}
