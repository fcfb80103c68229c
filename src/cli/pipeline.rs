//! The data commands: `run` and `ingest` (CoinGecko), `replay` (recorded files), `quality`
//! (rules, re-gating), `features` and `status`; each a pipeline run or a read, and the run's
//! printout with its exit code.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::Args;

use super::{check_coins, open_existing, open_or_create, runtime, usage, Exit};
use coincast::config::Settings;
use coincast::ingest::batch::{self, BatchState};
use coincast::ingest::coingecko::CoinGeckoClient;
use coincast::pipeline::{self, Extract, RunReport, RunState};
use coincast::quality::RuleSet;
use coincast::store::Store;
use coincast::{features, progress, status};

#[derive(Args, Debug)]
pub(super) struct FetchArgs {
    /// Coins to fetch (comma-separated CoinGecko ids); default: `coins` from the config.
    #[arg(long, value_delimiter = ',')]
    pub(super) coins: Option<Vec<String>>,
    /// Days of history for coins with no data yet; default: coingecko.backfill_days (0: the
    /// plan's hourly range).
    #[arg(long)]
    pub(super) backfill_days: Option<u32>,
    /// Fetch up to this time (RFC 3339) instead of now, e.g. to backfill a past stretch.
    #[arg(long)]
    pub(super) until: Option<DateTime<Utc>>,
    /// Only this shard's coins: `I/N` (every N-th configured coin from the I-th, numbered from
    /// 0), or `N` with I from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job). The rate limit
    /// (coingecko.calls_per_minute) is split between the N shards.
    #[arg(long)]
    pub(super) shard: Option<String>,
}

#[derive(Args, Debug)]
pub(super) struct ReplayArgs {
    /// Folder of <coin_id>.json files.
    pub(super) dir: PathBuf,
    /// Only these coins (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub(super) coins: Option<Vec<String>>,
    /// Fetch time to judge freshness against (RFC 3339); default: each file's modification time.
    #[arg(long)]
    pub(super) fetched_at: Option<DateTime<Utc>>,
}

#[derive(Args, Debug)]
pub(super) struct QualityArgs {
    /// Check this batch again (parsed anew from its stored body); repeatable.
    #[arg(long = "batch")]
    pub(super) batches: Vec<i64>,
    /// Check every quarantined batch again.
    #[arg(long)]
    pub(super) quarantined: bool,
}

#[derive(Args, Debug)]
pub(super) struct FeaturesArgs {
    /// Rebuild every hour of every coin.
    #[arg(long)]
    pub(super) full: bool,
}

#[derive(Args, Debug)]
pub(super) struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(super) json: bool,
}

pub(super) fn fetch(
    mut settings: Settings,
    args: FetchArgs,
    trigger: &str,
) -> anyhow::Result<Exit> {
    check_coins(args.coins.as_deref())?;
    let mut coins = args.coins.unwrap_or_else(|| settings.coins.clone());
    if let Some(given) = &args.shard {
        let index = std::env::var(pipeline::SHARD_INDEX_VARIABLE).ok();
        let shard = pipeline::Shard::parse(given, index.as_deref())?;
        coins = shard.coins(&coins);
        let cg = &mut settings.coingecko;
        cg.calls_per_minute = shard.calls_per_minute(cg.calls_per_minute);
        errln!(
            "shard {shard}: {} of the coins, {} calls a minute",
            coins.len(),
            cg.calls_per_minute
        );
    }
    let rules = RuleSet::load(&settings.quality)?;
    let store = open_or_create(&settings)?;
    let client = CoinGeckoClient::new(&settings.coingecko)?;
    let backfill_days = args
        .backfill_days
        .unwrap_or_else(|| coincast::ingest::budget::backfill_days(&settings.coingecko))
        .max(1);
    let until = args.until.unwrap_or_else(Utc::now);
    let report = runtime()?.block_on(pipeline::run(
        &store,
        &settings,
        &rules,
        trigger,
        Extract::Live {
            client: &client,
            coins,
            until,
            backfill_days,
            cadence: pipeline::Cadence::EveryCoin,
        },
    ))?;
    Ok(print_run(&report))
}

pub(super) fn replay(settings: &Settings, args: ReplayArgs) -> anyhow::Result<Exit> {
    let ReplayArgs {
        dir,
        coins,
        fetched_at,
    } = args;
    check_coins(coins.as_deref())?;
    let rules = RuleSet::load(&settings.quality)?;
    let store = open_or_create(settings)?;
    let report = runtime()?.block_on(pipeline::run(
        &store,
        settings,
        &rules,
        "replay",
        Extract::Replay {
            dir,
            coins,
            fetched_at,
        },
    ))?;
    Ok(print_run(&report))
}

pub(super) fn quality(settings: &Settings, args: QualityArgs) -> anyhow::Result<Exit> {
    let QualityArgs {
        batches,
        quarantined,
    } = args;
    let rules = RuleSet::load(&settings.quality)?;
    if batches.is_empty() && !quarantined {
        print_rules(&rules);
        return Ok(Exit::Ok);
    }
    let store = open_existing(settings)?;
    let mut ids = batches;
    if quarantined {
        ids.extend(batch::batches_in_state(
            store.conn(),
            BatchState::Quarantined,
        )?);
    }
    if ids.is_empty() {
        outln!("no quarantined batch to check again");
        return Ok(Exit::Ok);
    }
    for &id in &ids {
        check_recheckable(&store, id)?;
    }
    let report = runtime()?.block_on(pipeline::run(
        &store,
        settings,
        &rules,
        "quality",
        Extract::Recheck { batch_ids: ids },
    ))?;
    Ok(print_run(&report))
}

pub(super) fn features(settings: &Settings, args: FeaturesArgs) -> anyhow::Result<Exit> {
    let FeaturesArgs { full } = args;
    let store = open_existing(settings)?;
    let bar = progress::spinner("features");
    let stats = if full {
        features::rebuild_all(store.conn())
    } else {
        features::build_backlog(store.conn())
    };
    bar.finish_and_clear();
    let stats = stats?;
    store.checkpoint()?;
    outln!(
        "features: {} rows written for {} coin(s)",
        stats.rows_written,
        stats.coins
    );
    Ok(Exit::Ok)
}

pub(super) fn status(settings: &Settings, args: StatusArgs) -> anyhow::Result<Exit> {
    let StatusArgs { json } = args;
    let store = open_existing(settings)?;
    let report = status::report(store.conn(), &store.path().display().to_string())?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{report}");
    }
    Ok(Exit::Ok)
}

/// A batch can be checked again when it exists and its body was stored (a failed fetch has
/// none): a usage error otherwise, before any run starts.
fn check_recheckable(store: &Store, id: i64) -> anyhow::Result<()> {
    use duckdb::OptionalExt;
    let found: Option<(String, bool)> = store
        .conn()
        .query_row(
            "SELECT state, body IS NOT NULL OR body_archived IS NOT NULL FROM raw_batches WHERE batch_id = ?",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match found {
        None => Err(usage(format!(
            "batch {id} does not exist (`coincast status` lists the latest batches)"
        ))),
        Some((state, false)) => Err(usage(format!(
            "batch {id} ({state}) has no stored body: it is a fetch that failed, so there is \
             nothing to check again; the next `coincast run` fetches its hours anew"
        ))),
        Some(_) => Ok(()),
    }
}

fn print_rules(rules: &RuleSet) {
    outln!(
        "{:<16} {:<8} {:>9}  description",
        "rule",
        "severity",
        "threshold"
    );
    for r in &rules.rules {
        outln!(
            "{:<16} {:<8} {:>9}  {}",
            r.name,
            r.severity,
            r.threshold,
            r.description
        );
    }
    outln!("\nrecheck: coincast quality --batch ID | --quarantined");
}

/// Prints what a run did and picks the exit code.
fn print_run(report: &RunReport) -> Exit {
    let s = &report.summary;
    for g in &s.gated {
        let verdict = if g.merged {
            format!("merged ({} hours new or changed)", g.changed_hours)
        } else {
            "QUARANTINED, nothing merged".to_string()
        };
        outln!("batch {:>5} {:<12} {verdict}", g.batch_id, g.coin_id);
        for p in &g.problems {
            outln!("    {p}");
        }
    }
    for f in &s.failed_batches {
        outln!("failed: {f}");
    }
    for e in &s.fetch_errors {
        outln!("fetch error: {e}");
    }
    for e in &s.skipped_files {
        outln!("skipped file: {e}");
    }
    outln!(
        "run #{} {}: {} request(s), {} staged, {} merged, {} quarantined, {} failed batch(es), {} feature rows",
        report.run_id,
        report.state.name(),
        s.requests,
        s.staged,
        s.merged,
        s.quarantined,
        s.failed_attempts,
        s.feature_rows
    );
    if let Some(err) = &report.error {
        errln!("error: {}", coincast::failure::report(err));
    }
    match (report.state, &report.error) {
        (RunState::Success, _) => Exit::Ok,
        (_, Some(err)) => Exit::from(coincast::failure::Classify::failure(err)),
        (RunState::Partial, None) => Exit::DataRejected,
        (RunState::Failed | RunState::Interrupted, None) => Exit::Internal,
    }
}
