//! `coincast datasets`: the dataset versions in the lake (`coincast::lake`), listed, shown,
//! compared, exported and pinned; `coincast cleanup` (`coincast::retention`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{open_existing, open_or_create, Exit};
use coincast::config::Settings;
use coincast::{lake, retention};

#[derive(Subcommand, Debug)]
pub(super) enum DatasetsAction {
    /// Make the lake's tables, once, before several writers or coin shards commit into it at
    /// once (two first commits at once would both try to make them); the data folder's
    /// database is made too when missing.
    Init,
    /// Every dataset version, oldest first: the run that committed it, rows, coins changed.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One version: what it took in (coins and hour ranges, batches), its rows and hashes.
    Show {
        version: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Per coin, the hours of market data only in the newer version (added or revised) and only
    /// in the older one.
    Diff { older: i64, newer: i64 },
    /// A model's lineage: the dataset version it was trained on, and per coin the batches merged
    /// into it, their hours and the predictions the model served.
    Lineage { model_id: String },
    /// Write a version's tables as Parquet files (and version.json) into a folder, and hash them
    /// again: the hash a model trained on that version registered.
    Export {
        version: i64,
        /// The folder to write.
        #[arg(long)]
        to: PathBuf,
    },
    /// Keep a version from snapshot expiry (`coincast cleanup`), with a note; without VERSION,
    /// list the pins.
    Pin {
        version: Option<i64>,
        #[arg(long, default_value = "pinned by hand")]
        note: String,
    },
    /// Let cleanup expire a pinned version again.
    Unpin { version: i64 },
}

#[derive(Args, Debug)]
pub(super) struct CleanupArgs {
    /// Say what would move, expire and retire, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(super) fn datasets(settings: &Settings, action: DatasetsAction) -> anyhow::Result<Exit> {
    let store = match action {
        DatasetsAction::Init => open_or_create(settings)?,
        _ => open_existing(settings)?,
    };
    let conn = store.conn();
    let location = lake::attach(conn, settings)?;
    match action {
        DatasetsAction::Init => {
            outln!(
                "the lake's tables are in place: catalog {}, data {}",
                location.catalog_name(),
                location.data_path
            );
        }
        DatasetsAction::List { json } => {
            let versions = lake::list(conn)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&versions)?);
                return Ok(Exit::Ok);
            }
            if versions.is_empty() {
                outln!(
                    "no dataset version yet in {}: every pipeline run commits one",
                    location.data_path
                );
                return Ok(Exit::Ok);
            }
            outln!(
                "{:>7} {:<32} {:>5} {:>10} {:>10} {:>6}  content hash",
                "version",
                "committed (UTC)",
                "run",
                "market",
                "features",
                "coins"
            );
            for v in &versions {
                outln!(
                    "{:>7} {:<32} {:>5} {:>10} {:>10} {:>6}  {}",
                    v.version,
                    v.committed_at,
                    v.info.run_id.map_or("-".into(), |r| r.to_string()),
                    v.info.rows.market_data,
                    v.info.rows.features,
                    v.info.changed.len(),
                    &v.info.content_hash[..16.min(v.info.content_hash.len())]
                );
            }
        }
        DatasetsAction::Show { version, json } => {
            let v = lake::show(conn, version)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(Exit::Ok);
            }
            outln!(
                "dataset version {} committed {} by run {}",
                v.version,
                v.committed_at,
                v.info.run_id.map_or("-".into(), |r| r.to_string())
            );
            outln!(
                "rows: {} market, {} features, {} quality results, {} batches",
                v.info.rows.market_data,
                v.info.rows.features,
                v.info.rows.quality_results,
                v.info.rows.raw_batches
            );
            outln!(
                "content hash {} ({} coins before hour {})",
                v.info.content_hash,
                v.info.coins.len(),
                v.info.until_hour
            );
            outln!(
                "feature SQL {}  rules {}",
                v.info.feature_sql_hash,
                v.info.rules_hash
            );
            for c in &v.info.changed {
                outln!(
                    "  {} ({}): {} hour(s) merged, written again from {} to {}",
                    c.coin_id,
                    c.vs_currency,
                    c.hours,
                    c.since,
                    c.until
                );
            }
            outln!("batches taken in: {:?}", v.info.batch_ids);
        }
        DatasetsAction::Diff { older, newer } => {
            outln!("{:<16} {:>12} {:>12}", "coin", "only newer", "only older");
            for d in lake::diff(conn, older, newer)? {
                outln!("{:<16} {:>12} {:>12}", d.coin_id, d.in_newer, d.in_older);
            }
        }
        DatasetsAction::Lineage { model_id } => {
            let model = coincast::model::registry::get(conn, &model_id)?;
            let Some(version) = model.lake_version else {
                return Err(super::usage(format!(
                    "{model_id} names no dataset version (trained with the lake off, or before it)"
                )));
            };
            outln!(
                "{model_id} ({}) was trained on dataset version {version} (training rows hash {})",
                model.family,
                model.dataset_version
            );
            outln!(
                "{:<16} {:>8} {:>8}  {:<25} {:<25} {:>11}",
                "coin",
                "batches",
                "hours",
                "first hour",
                "last hour",
                "predictions"
            );
            for c in lake::lineage(conn, version, &model_id)? {
                outln!(
                    "{:<16} {:>8} {:>8}  {:<25} {:<25} {:>11}",
                    c.coin_id,
                    c.merged_batches,
                    c.hours,
                    c.first_hour,
                    c.last_hour,
                    c.predictions
                );
            }
        }
        DatasetsAction::Export { version, to } => {
            let e = lake::export(conn, version, &to)?;
            outln!(
                "exported version {} to {}: {} market, {} features, {} quality results, {} batches",
                e.version,
                e.dir.display(),
                e.rows.market_data,
                e.rows.features,
                e.rows.quality_results,
                e.rows.raw_batches
            );
            outln!("content hash {}", e.content_hash);
            if !e.reproduced {
                anyhow::bail!(
                    "the exported files hash to {}, not to the hash version {version} recorded",
                    e.content_hash
                );
            }
            outln!("reproduced: the hash version {version} recorded");
        }
        DatasetsAction::Pin {
            version: Some(version),
            note,
        } => {
            retention::pin(conn, version, &note)?;
            outln!("pinned dataset version {version}: {note}");
        }
        DatasetsAction::Pin { version: None, .. } => {
            let pins = retention::pins(conn)?;
            if pins.is_empty() {
                outln!("no pinned dataset version");
            }
            for p in pins {
                outln!("{:>7}  {}  {}", p.version, p.pinned_at, p.note);
            }
        }
        DatasetsAction::Unpin { version } => {
            if retention::unpin(conn, version)? {
                outln!("dataset version {version} is no longer pinned");
            } else {
                return Err(super::usage(format!(
                    "dataset version {version} is not pinned (`coincast datasets pin` lists the pins)"
                )));
            }
        }
    }
    Ok(Exit::Ok)
}

pub(super) fn cleanup(settings: &Settings, args: CleanupArgs) -> anyhow::Result<Exit> {
    let store = open_existing(settings)?;
    let mode = if args.dry_run {
        retention::Mode::DryRun
    } else {
        retention::Mode::Apply
    };
    let report = retention::cleanup(&store, settings, mode)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", retention::describe(&report));
    }
    Ok(Exit::Ok)
}
