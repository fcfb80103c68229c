//! Command line: parsing (clap), logging, and the mapping of outcomes to exit codes.
//! This is the binary's edge: errors are `anyhow` here and typed everywhere below.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

use coincast::config::{is_valid_coin_id, Settings};
use coincast::ingest::batch::{self, BatchState};
use coincast::ingest::coingecko::CoinGeckoClient;
use coincast::model::forecast::Levels;
use coincast::model::lstm;
use coincast::model::recipe::Recipe;
use coincast::model::served::ServedModel;
use coincast::model::{evaluate, registry, train};
use coincast::pipeline::{self, Extract, RunReport, RunState};
use coincast::quality::RuleSet;
use coincast::store::{Store, StoreError};
use coincast::{features, progress, status};

/// Exit codes, documented in README.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Exit {
    Ok = 0,
    /// An unexpected failure (a bug, a disk error).
    Internal = 1,
    /// Bad command line or configuration.
    Usage = 2,
    /// The run finished, but a batch was quarantined or failed, or a coin could not be fetched.
    DataRejected = 3,
    /// The database is locked by another process or was written by a newer coincast.
    DatabaseBusy = 4,
    /// The source (CoinGecko) could not be reached for any coin.
    SourceUnavailable = 5,
}

#[derive(Parser, Debug)]
#[command(
    name = "coincast",
    version,
    about = "Crypto price forecasting appliance: ingest, quality gate, features, model and serving in one binary and one DuckDB file"
)]
struct Cli {
    /// Folder of the DuckDB file (overrides `data_dir` from the config).
    #[arg(long, global = true, env = "COINCAST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A TOML file whose keys override config/default.toml.
    #[arg(long, global = true, env = "COINCAST_CONFIG")]
    config: Option<PathBuf>,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log as JSON lines (for log collectors).
    #[arg(long, global = true, env = "COINCAST_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One pipeline run: fetch every configured coin from CoinGecko, gate, merge, build features.
    Run(FetchArgs),
    /// Like `run`, for chosen coins and backfill depth.
    Ingest(FetchArgs),
    /// Load recorded CoinGecko market_chart files (<coin_id>.json) through the same gate and merge.
    Replay {
        /// Folder of <coin_id>.json files.
        dir: PathBuf,
        /// Only these coins (comma-separated).
        #[arg(long, value_delimiter = ',')]
        coins: Option<Vec<String>>,
        /// Fetch time to judge freshness against (RFC 3339); default: each file's modification time.
        #[arg(long)]
        fetched_at: Option<DateTime<Utc>>,
    },
    /// Show the rules and recent failures, or check batches again after the rules changed.
    Quality {
        /// Check this batch again (parsed anew from its stored body); repeatable.
        #[arg(long = "batch")]
        batches: Vec<i64>,
        /// Check every quarantined batch again.
        #[arg(long)]
        quarantined: bool,
    },
    /// Build the features of every hour that changed since the last build.
    Features {
        /// Rebuild every hour of every coin.
        #[arg(long)]
        full: bool,
    },
    /// Walk-forward evaluation of the baselines (persistence, drift, SMA/EMA trend, linear) on
    /// the stored features, with split-conformal intervals: the bar every model must clear.
    Evaluate {
        /// Coins to evaluate (comma-separated); default: every configured coin with features.
        #[arg(long, value_delimiter = ',')]
        coins: Option<Vec<String>>,
        /// Horizons to print (comma-separated hours); default 1,6,24.
        #[arg(long, value_delimiter = ',', default_value = "1,6,24")]
        horizons: Vec<u32>,
        /// Number of weekly test windows (overrides the protocol file).
        #[arg(long)]
        windows: Option<u32>,
        /// Protocol and baseline settings; default: the built-in models/baselines.toml.
        #[arg(long)]
        protocol: Option<PathBuf>,
        /// Forecasters to evaluate (comma-separated names like persistence_ewma, linear, lstm);
        /// default: the protocol's candidates without the LSTM.
        #[arg(long, value_delimiter = ',')]
        candidates: Option<Vec<String>>,
        /// Also evaluate a registered model, or `champion`, by re-running its recipe on the same
        /// folds (never with weights that saw the test windows).
        #[arg(long)]
        model: Option<String>,
        /// The LSTM candidates' spec; default: model.spec (the built-in models/lstm.toml).
        #[arg(long)]
        spec: Option<PathBuf>,
        /// auto | cpu | cuda for the LSTM candidates (overrides the spec).
        #[arg(long)]
        device: Option<String>,
        /// Maximum epochs of the LSTM candidates (overrides the spec).
        #[arg(long)]
        epochs: Option<usize>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A selection run: every candidate (persistence variants, HAR, ridge, the LSTM ...) through the
    /// same walk-forward; the gate's winner is refit on all data and registered as champion.
    Train {
        /// Coins to train on (comma-separated); default: every configured coin with features.
        #[arg(long, value_delimiter = ',')]
        coins: Option<Vec<String>>,
        /// Maximum epochs (overrides the spec).
        #[arg(long)]
        epochs: Option<usize>,
        /// auto | cpu | cuda (overrides the spec).
        #[arg(long)]
        device: Option<String>,
        /// Number of weekly walk-forward windows (overrides models/baselines.toml).
        #[arg(long)]
        windows: Option<u32>,
        /// The LSTM candidate's spec; default: model.spec (the built-in models/lstm.toml).
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Walk-forward protocol and candidates; default: model.protocol (models/baselines.toml).
        #[arg(long)]
        protocol: Option<PathBuf>,
        /// Candidates (comma-separated), overriding the protocol's.
        #[arg(long, value_delimiter = ',')]
        candidates: Option<Vec<String>>,
        /// Also register every other candidate, refit on all data, as challenger (to inspect it
        /// or promote it by hand); by default only the champion and the floor are registered.
        #[arg(long)]
        register_all: bool,
    },
    /// Forecast every horizon from a coin's latest hour with the champion (the floor for a coin it
    /// does not cover), or a given model.
    Predict {
        /// The coin.
        #[arg(long, default_value = "bitcoin")]
        coin: String,
        /// A registered model id; default: the champion.
        #[arg(long)]
        model: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The appliance's HTTP API: /predict, /health, /ready, /models/status, /metrics.
    Serve {
        /// Address to listen on (overrides serve.bind), e.g. 0.0.0.0:8000.
        #[arg(long)]
        bind: Option<String>,
    },
    /// The model registry.
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// An online backup: a consistent copy of the database and every registered model, as one tar
    /// archive. While `coincast serve` holds the file, the server makes the copy
    /// (POST /api/admin/backup, with serve.api_token).
    Backup {
        /// The archive to write (through `<dest>.partial`, renamed when complete).
        dest: PathBuf,
        /// The server to ask when the database is in use; default http://<serve.bind>.
        #[arg(long)]
        server: Option<String>,
    },
    /// Restore a backup archive into the data folder (which must hold no database, unless
    /// --force: then the current file is kept beside it as coincast.duckdb.before-restore-<time>).
    Restore {
        archive: PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// What the database holds: coins, hours, gaps, batches, the last run.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ModelsAction {
    /// Every registered model, newest first.
    List,
    /// One model: its registry entry and artifact card.
    Show { model_id: String },
    /// Make a model champion (one that failed the gate needs --force).
    Promote {
        model_id: String,
        #[arg(long)]
        force: bool,
    },
    /// Give the champion role back to the previous champion.
    Rollback,
}

#[derive(Args, Debug)]
struct FetchArgs {
    /// Coins to fetch (comma-separated CoinGecko ids); default: `coins` from the config.
    #[arg(long, value_delimiter = ',')]
    coins: Option<Vec<String>>,
    /// Days of history for coins with no data yet; default: coingecko.backfill_days (0: the
    /// plan's hourly range).
    #[arg(long)]
    backfill_days: Option<u32>,
    /// Fetch up to this time (RFC 3339) instead of now, e.g. to backfill a past stretch.
    #[arg(long)]
    until: Option<DateTime<Utc>>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.log_json);
    let exit = match execute(cli) {
        Ok(code) => code,
        Err(err) => {
            let code = classify(&err);
            eprintln!("error: {err:#}");
            code
        }
    };
    ExitCode::from(exit as u8)
}

fn init_logging(verbose: u8, json: bool) {
    let default = match verbose {
        0 => "warn,coincast::serve=info",
        1 => "info,coincast=info",
        _ => "debug,hyper=info,reqwest=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if json {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// Which exit code an error deserves.
fn classify(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(m) = cause.downcast_ref::<coincast::model::ModelError>() {
            use coincast::model::ModelError as M;
            if matches!(
                m,
                M::Definition { .. } | M::Device(_) | M::UnknownFeature(_) | M::UnknownModel(_)
            ) {
                return Exit::Usage;
            }
        }
        if let Some(store) = cause.downcast_ref::<StoreError>() {
            if matches!(
                store,
                StoreError::Locked { .. } | StoreError::NewerSchema { .. }
            ) {
                return Exit::DatabaseBusy;
            }
        }
        if cause
            .downcast_ref::<coincast::config::ConfigError>()
            .is_some()
            || cause
                .downcast_ref::<coincast::quality::QualityError>()
                .is_some_and(|q| {
                    matches!(
                        q,
                        coincast::quality::QualityError::UnknownRule { .. }
                            | coincast::quality::QualityError::Config { .. }
                            | coincast::quality::QualityError::RuleFile { .. }
                    )
                })
        {
            return Exit::Usage;
        }
    }
    Exit::Internal
}

fn execute(cli: Cli) -> anyhow::Result<Exit> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        settings.data_dir = dir;
    }
    match cli.command {
        Command::Status { json } => {
            let store = open(&settings)?;
            let report = status::report(store.conn(), &store.path().display().to_string())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
            Ok(Exit::Ok)
        }
        Command::Features { full } => {
            let store = open(&settings)?;
            let bar = progress::spinner("features");
            let stats = if full {
                features::rebuild_all(store.conn())
            } else {
                features::build_backlog(store.conn())
            };
            bar.finish_and_clear();
            let stats = stats?;
            store.checkpoint()?;
            println!(
                "features: {} rows written for {} coin(s)",
                stats.rows_written, stats.coins
            );
            Ok(Exit::Ok)
        }
        Command::Quality {
            batches,
            quarantined,
        } => {
            let rules = RuleSet::load(&settings.quality)?;
            let store = open(&settings)?;
            let mut ids = batches;
            if quarantined {
                ids.extend(batch::batches_in_state(
                    store.conn(),
                    BatchState::Quarantined,
                )?);
            }
            if ids.is_empty() {
                print_rules(&rules);
                return Ok(Exit::Ok);
            }
            for &id in &ids {
                if !batch_exists(&store, id)? {
                    anyhow::bail!("batch {id} does not exist (see `coincast status`)");
                }
            }
            let report = runtime()?.block_on(pipeline::run(
                &store,
                &settings,
                &rules,
                "quality",
                Extract::Recheck { batch_ids: ids },
            ))?;
            Ok(print_run(&report))
        }
        Command::Replay {
            dir,
            coins,
            fetched_at,
        } => {
            check_coins(coins.as_deref())?;
            let rules = RuleSet::load(&settings.quality)?;
            let store = open(&settings)?;
            let report = runtime()?.block_on(pipeline::run(
                &store,
                &settings,
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
        Command::Evaluate {
            coins,
            horizons,
            windows,
            protocol,
            candidates,
            model,
            spec,
            device,
            epochs,
            json,
        } => {
            check_coins(coins.as_deref())?;
            let mut p = load_protocol(protocol.as_deref())?;
            if let Some(w) = windows {
                p.windows = w;
            }
            let spec = load_spec(spec.as_deref(), &settings, epochs, device)?;
            p.features = spec.features.clone();
            p.lookback_hours = spec.lookback_hours;
            // Without --candidates: the protocol's, less the LSTM (training it takes minutes).
            let names = candidates.unwrap_or_else(|| {
                p.candidates
                    .iter()
                    .filter(|n| !n.starts_with("lstm"))
                    .cloned()
                    .collect()
            });
            let mut list = names
                .iter()
                .map(|n| Recipe::from_name(n, &p, &spec).map(evaluate::Candidate::new))
                .collect::<Result<Vec<_>, _>>()?;
            let store = open(&settings)?;
            if let Some(id) = &model {
                // A registered model is judged by re-running its recipe on these folds.
                let row = if id == "champion" {
                    registry::champion(store.conn())?.ok_or_else(|| {
                        anyhow::anyhow!("there is no champion yet: run `coincast train`")
                    })?
                } else {
                    registry::get(store.conn(), id)?
                };
                let m = ServedModel::load(
                    &row.artifact_dir(&settings.data_dir),
                    lstm::resolve_device("auto")?,
                )?;
                list.push(evaluate::Candidate {
                    label: row.model_id.clone(),
                    recipe: m.recipe(),
                });
            }
            let wanted = coins.unwrap_or_else(|| settings.coins.clone());
            let features: Vec<String> = list
                .iter()
                .flat_map(|c| c.recipe.features().to_vec())
                .chain(p.features.clone())
                .fold(Vec::new(), |mut acc, f| {
                    if !acc.contains(&f) {
                        acc.push(f);
                    }
                    acc
                });
            let (series, skipped) =
                train::load_series(store.conn(), &wanted, &settings.vs_currency, &features)?;
            for c in skipped {
                eprintln!("skipping {c}: no features stored");
            }
            let bar = progress::bar("walk-forward");
            bar.set_length(list.len() as u64);
            let result = evaluate::walk_forward(&series, &list, &p, |label, index, _| {
                bar.set_position(index as u64);
                bar.set_message(label.to_string());
            });
            bar.finish_and_clear();
            let mut eval = result?;
            eval.rows.retain(|r| horizons.contains(&r.metrics.horizon));
            eval.aci_rows
                .retain(|r| horizons.contains(&r.metrics.horizon));
            if json {
                println!("{}", serde_json::to_string_pretty(&eval)?);
            } else {
                print_evaluation(&eval, &p);
            }
            Ok(Exit::Ok)
        }
        Command::Train {
            coins,
            epochs,
            device,
            windows,
            spec,
            protocol,
            candidates,
            register_all,
        } => {
            check_coins(coins.as_deref())?;
            let s = load_spec(spec.as_deref(), &settings, epochs, device)?;
            let mut p = match &protocol {
                Some(path) => load_protocol(Some(path))?,
                None => train::protocol_from(&settings.model.protocol)?,
            };
            if let Some(w) = windows {
                p.windows = w;
            }
            if let Some(c) = candidates {
                p.candidates = c;
            }
            let store = open(&settings)?;
            let wanted = coins.unwrap_or_else(|| settings.coins.clone());
            let bar = progress::bar("train");
            let outcome = train::train_and_register(
                store.conn(),
                train::TrainRequest {
                    coins: &wanted,
                    vs_currency: &settings.vs_currency,
                    spec: s,
                    protocol: p.clone(),
                    gate: settings.model.gate.clone(),
                    data_dir: &settings.data_dir,
                    register: if register_all {
                        train::RegisterPolicy::AllCandidates
                    } else {
                        train::RegisterPolicy::Winner
                    },
                },
                |progress| match progress {
                    train::Progress::Candidate { label, index, of } => {
                        bar.set_length(of as u64 + 1);
                        bar.set_position(index as u64);
                        bar.set_message(format!("walk-forward: {label}"));
                    }
                    train::Progress::Refit { label } => {
                        bar.set_message(format!("refit on all data: {label}"));
                    }
                },
            );
            bar.finish_and_clear();
            let o = outcome?;
            store.checkpoint()?;
            for c in &o.skipped_coins {
                eprintln!("skipped {c}: no features stored");
            }
            print_selection(&o);
            Ok(Exit::Ok)
        }
        Command::Predict { coin, model, json } => {
            check_coins(Some(std::slice::from_ref(&coin)))?;
            let store = open(&settings)?;
            let row = match &model {
                Some(id) => registry::get(store.conn(), id)?,
                None => serving_row(&store, &coin, &settings)?,
            };
            let m = ServedModel::load(
                &row.artifact_dir(&settings.data_dir),
                lstm::resolve_device("auto")?,
            )?;
            let series = coincast::model::dataset::CoinSeries::load(
                store.conn(),
                &coin,
                &settings.vs_currency,
                &m.series_features(),
            )?;
            // Intervals at the coin's online coverage levels, as /predict draws them.
            let aci = coincast::monitor::coverage::load_state(store.conn(), &row.model_id)?;
            let levels = coincast::monitor::coverage::levels(&aci, m.horizon(), m.interval_level());
            let f = m.forecast_latest(
                &series,
                match levels.get(&coin) {
                    Some(l) => Levels::PerHorizon(l),
                    None => Levels::Nominal,
                },
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&f)?);
            } else {
                let when =
                    DateTime::<Utc>::from_timestamp(f.as_of_hour * 3600, 0).unwrap_or_default();
                println!(
                    "{} with {} ({}): price {} at {} UTC; {:.0}% intervals",
                    f.coin_id,
                    row.model_id,
                    m.name(),
                    f.current_price,
                    when.format("%Y-%m-%d %H:00"),
                    f.interval_level * 100.0
                );
                for h in &f.horizons {
                    println!(
                        "  +{:>2}h  {:>14.6}  [{:.6}, {:.6}]  drawn at {:.1}%",
                        h.hours_ahead,
                        h.price,
                        h.lower,
                        h.upper,
                        h.drawn_at_level * 100.0
                    );
                }
            }
            Ok(Exit::Ok)
        }
        Command::Serve { bind } => {
            let bind = bind.unwrap_or_else(|| settings.serve.bind.clone());
            let addr: std::net::SocketAddr =
                bind.parse()
                    .map_err(|_| coincast::config::ConfigError::Invalid {
                        key: "--bind".into(),
                        message: format!("`{bind}` is not an address like 127.0.0.1:8000"),
                    })?;
            tch::set_num_threads(1);
            let metrics = std::sync::Arc::new(coincast::serve::metrics::Metrics::new()?);
            // The worker thread owns the database file for as long as the server runs.
            let (worker, state) = coincast::serve::worker::Worker::start(settings.clone(), metrics)
                .with_context(|| format!("opening {}", settings.database_path().display()))?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let served = rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening on {addr}"))?;
                eprintln!(
                    "coincast serving on http://{addr}; pipeline schedule `{}` (Ctrl-C or SIGTERM to stop)",
                    settings.serve.pipeline_schedule
                );
                coincast::serve::serve(listener, state, shutdown_signal()).await?;
                anyhow::Ok(())
            });
            worker.stop();
            served?;
            eprintln!("stopped; database checkpointed");
            Ok(Exit::Ok)
        }
        Command::Models { action } => {
            let store = open(&settings)?;
            match action {
                ModelsAction::List => {
                    let rows = registry::list(store.conn())?;
                    if rows.is_empty() {
                        println!("no models yet: run `coincast train`");
                    }
                    println!(
                        "{:<40} {:<18} {:<16} {:<19} {:>9}  verdict",
                        "model", "kind", "alias", "created (UTC)", "IS%"
                    );
                    for m in rows {
                        let alias = match (m.alias.as_deref(), m.floor) {
                            (Some(a), true) => format!("{a}, floor"),
                            (Some(a), false) => a.to_string(),
                            (None, true) => "floor".into(),
                            (None, false) => "-".into(),
                        };
                        println!(
                            "{:<40} {:<18} {:<16} {:<19} {:>9}  {}",
                            m.model_id,
                            m.family,
                            alias,
                            m.created_at,
                            m.score.map_or("-".into(), |s| format!("{s:.4}")),
                            m.gate_reason
                        );
                    }
                }
                ModelsAction::Show { model_id } => {
                    let m = registry::get(store.conn(), &model_id)?;
                    println!("{}", serde_json::to_string_pretty(&m)?);
                    let card = std::fs::read_to_string(
                        m.artifact_dir(&settings.data_dir).join("model.json"),
                    )
                    .with_context(|| format!("reading the artifact of {model_id}"))?;
                    println!("{card}");
                }
                ModelsAction::Promote { model_id, force } => {
                    registry::promote(store.conn(), &model_id, force)?;
                    println!("{model_id} is champion");
                }
                ModelsAction::Rollback => {
                    let id = registry::rollback(store.conn())?;
                    println!("{id} is champion again");
                }
            }
            Ok(Exit::Ok)
        }
        Command::Backup { dest, server } => backup(&settings, &dest, server.as_deref()),
        Command::Restore { archive, force } => {
            let existing = if force {
                coincast::store::Existing::SetAside
            } else {
                coincast::store::Existing::Refuse
            };
            let m = coincast::store::restore(&archive, &settings.data_dir, existing)
                .with_context(|| format!("restoring {}", archive.display()))?;
            println!(
                "restored {} into {}: schema {} from {}, {} model(s), champion {}",
                archive.display(),
                settings.database_path().display(),
                m.schema_version,
                m.created_at,
                m.models.len(),
                m.champion.as_deref().unwrap_or("none")
            );
            Ok(Exit::Ok)
        }
        Command::Run(args) => fetch(settings, args, "run"),
        Command::Ingest(args) => fetch(settings, args, "ingest"),
    }
}

fn fetch(settings: Settings, args: FetchArgs, trigger: &str) -> anyhow::Result<Exit> {
    check_coins(args.coins.as_deref())?;
    let rules = RuleSet::load(&settings.quality)?;
    let store = open(&settings)?;
    let client = CoinGeckoClient::new(&settings.coingecko)?;
    let coins = args.coins.unwrap_or_else(|| settings.coins.clone());
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

fn open(settings: &Settings) -> anyhow::Result<Store> {
    let path = settings.database_path();
    // What opening repaired is logged by the store (warn and error: shown by default).
    Store::open(&settings.data_dir).with_context(|| format!("opening {}", path.display()))
}

/// A backup made here when the file is free, else by the server that holds it.
fn backup(settings: &Settings, dest: &Path, server: Option<&str>) -> anyhow::Result<Exit> {
    let manifest = match Store::open(&settings.data_dir) {
        Ok(store) => coincast::store::write_backup(store.conn(), store.data_dir(), dest)?,
        Err(StoreError::Locked { .. }) => backup_from_server(settings, dest, server)?,
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("opening {}", settings.database_path().display())))
        }
    };
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    println!(
        "backup {} ({bytes} bytes): database {} bytes (schema {}), {} model(s), champion {}",
        dest.display(),
        manifest.database_bytes,
        manifest.schema_version,
        manifest.models.len(),
        manifest.champion.as_deref().unwrap_or("none")
    );
    Ok(Exit::Ok)
}

fn backup_from_server(
    settings: &Settings,
    dest: &Path,
    server: Option<&str>,
) -> anyhow::Result<coincast::store::BackupManifest> {
    let token = settings.serve.api_token().ok_or_else(|| {
        anyhow::anyhow!(
            "the database is in use by a running server, which makes online backups only with its \
             token: set serve.api_token (COINCAST__SERVE__API_TOKEN) as the server has it"
        )
    })?;
    let base = match server {
        Some(s) => s.trim_end_matches('/').to_string(),
        None => format!("http://{}", loopback_for(&settings.serve.bind)),
    };
    let url = format!("{base}/api/admin/backup");
    let rt = runtime()?;
    let manifest = rt.block_on(async {
        let client = reqwest::Client::new();
        let mut response = client
            .post(&url)
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("asking the server for a backup ({url})"))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!("the server answered {status} to {url}: {body}");
        }
        let manifest: coincast::store::BackupManifest = response
            .headers()
            .get(coincast::serve::admin_api::MANIFEST_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| serde_json::from_str(v).ok())
            .ok_or_else(|| anyhow::anyhow!("{url} sent no backup manifest"))?;
        let mut out = coincast::store::PartialFile::create(dest)?;
        while let Some(chunk) = response.chunk().await? {
            std::io::Write::write_all(&mut out, &chunk)
                .with_context(|| format!("writing {}", dest.display()))?;
        }
        out.commit()?;
        anyhow::Ok(manifest)
    })?;
    Ok(manifest)
}

/// The address to call a server bound to `bind`: a wildcard bind is reached on loopback.
fn loopback_for(bind: &str) -> String {
    match bind.parse::<std::net::SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() && a.is_ipv4() => format!("127.0.0.1:{}", a.port()),
        Ok(a) if a.ip().is_unspecified() => format!("[::1]:{}", a.port()),
        _ => bind.to_string(),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn check_coins(coins: Option<&[String]>) -> anyhow::Result<()> {
    for coin in coins.unwrap_or_default() {
        if !is_valid_coin_id(coin) {
            return Err(coincast::config::ConfigError::Invalid {
                key: "--coins".into(),
                message: format!("`{coin}` is not a CoinGecko coin id"),
            }
            .into());
        }
    }
    Ok(())
}

fn batch_exists(store: &Store, id: i64) -> anyhow::Result<bool> {
    Ok(store.conn().query_row(
        "SELECT count(*) > 0 FROM raw_batches WHERE batch_id = ?",
        [id],
        |r| r.get(0),
    )?)
}

fn print_rules(rules: &RuleSet) {
    println!(
        "{:<16} {:<8} {:>9}  description",
        "rule", "severity", "threshold"
    );
    for r in &rules.rules {
        println!(
            "{:<16} {:<8} {:>9}  {}",
            r.name, r.severity, r.threshold, r.description
        );
    }
    println!("\nrecheck: coincast quality --batch ID | --quarantined");
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn load_protocol(path: Option<&std::path::Path>) -> anyhow::Result<evaluate::Protocol> {
    Ok(match path {
        Some(path) => evaluate::Protocol::parse(
            &path.display().to_string(),
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )?,
        None => evaluate::Protocol::parse("models/baselines.toml", evaluate::DEFAULT_PROTOCOL)?,
    })
}

fn hour_utc(h: i64) -> String {
    DateTime::<Utc>::from_timestamp(h * 3600, 0)
        .map(|t| t.format("%Y-%m-%d %H:00").to_string())
        .unwrap_or_default()
}

/// The LSTM spec at `path` (default: model.spec), with the epoch and device overrides.
fn load_spec(
    path: Option<&std::path::Path>,
    settings: &Settings,
    epochs: Option<usize>,
    device: Option<String>,
) -> anyhow::Result<lstm::LstmSpec> {
    let mut spec = match path {
        Some(path) => lstm::LstmSpec::parse(
            &path.display().to_string(),
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )?,
        None => train::spec_from(&settings.model.spec)?,
    };
    if let Some(e) = epochs {
        spec.epochs = e.max(1);
    }
    if let Some(d) = device {
        lstm::resolve_device(&d)?;
        spec.device = d;
    }
    Ok(spec)
}

fn print_evaluation(eval: &evaluate::Evaluation, p: &evaluate::Protocol) {
    println!(
        "walk-forward: {} weekly folds (of {} configured) of {} h, test origins {} .. {} UTC, gap {} h, refit every {} folds, {:.0}% intervals",
        eval.folds,
        eval.windows_configured,
        p.step_hours,
        hour_utc(eval.test_from_hour),
        hour_utc(eval.test_to_hour),
        p.gap(),
        eval.refit_every_folds,
        p.interval_level * 100.0
    );
    println!(
        "{:<10} {:<18} {:>3} {:>6} {:>8} {:>8} {:>6} {:>7} {:>12} {:>7} {:>6}",
        "coin", "model", "h", "n", "IS%", "pinball", "cover", "width", "MAE", "skill", "dir"
    );
    for r in &eval.rows {
        let m = &r.metrics;
        println!(
            "{:<10} {:<18} {:>3} {:>6} {:>8.4} {:>8.4} {:>6.3} {:>7.4} {:>12.4} {:>7.4} {:>6.3}",
            r.coin_id,
            r.model,
            m.horizon,
            m.n,
            m.interval_score,
            m.pinball,
            m.coverage,
            m.width,
            m.mae,
            m.skill,
            m.directional_accuracy
        );
    }
    println!(
        "the same forecasts with online coverage control (ACI, gamma {}): the level moves with each outcome once it is known",
        eval.aci_gamma
    );
    for r in &eval.aci_rows {
        let m = &r.metrics;
        println!(
            "{:<10} {:<18} {:>3} {:>6} {:>8.4} {:>8.4} {:>6.3} {:>7.4}",
            r.coin_id, r.model, m.horizon, m.n, m.interval_score, m.pinball, m.coverage, m.width
        );
    }
    for c in &eval.candidates {
        if let Some(e) = &c.error {
            println!("{}: not evaluated: {e}", c.label);
        }
        if !c.samples_per_second.is_empty() {
            let sps = median_f64(&c.samples_per_second);
            println!(
                "{}: {} refits, fit {:.1} s, training {:.0} samples/s (median), epochs chosen {:?}",
                c.label, c.refits, c.fit_seconds, sps, c.chosen_epochs
            );
        }
    }
    println!("IS%: interval (Winkler) score in percent of the price, pinball: mean pinball loss of the interval ends and the point; lower is better. skill = 1 - MSE/MSE(persistence) (> 0 beats persistence); width relative to price; dir: a no-move forecast counts half");
}

/// The candidates' scorecards, the gate's verdicts and what was registered.
fn print_selection(o: &train::TrainOutcome) {
    let e = &o.evaluation;
    println!(
        "walk-forward: {} weekly folds (of {} configured), test origins {} .. {} UTC, refit every {} folds",
        e.folds,
        e.windows_configured,
        hour_utc(e.test_from_hour),
        hour_utc(e.test_to_hour),
        e.refit_every_folds
    );
    println!(
        "{:<20} {:>9} {:>13} {:>9} {:>7} {:>8}  verdict",
        "candidate", "IS%", "coverage", "MSE/pers", "refits", "fit s"
    );
    for c in &o.selection.scorecards {
        let run = e.candidates.iter().find(|r| r.label == c.label);
        let (lo, hi) = c.coverage_range();
        println!(
            "{:<20} {:>9.4} {:>5.1}-{:>5.1}% {:>9.4} {:>7} {:>8.1}  {}",
            c.label,
            c.interval_score,
            100.0 * lo,
            100.0 * hi,
            c.mse_ratio,
            run.map_or(0, |r| r.refits),
            run.map_or(0.0, |r| r.fit_seconds),
            o.selection
                .verdict(&c.label)
                .map(|v| v.reason())
                .unwrap_or_default()
        );
    }
    for c in e.candidates.iter().filter(|c| c.error.is_some()) {
        println!(
            "{:<20} not evaluated: {}",
            c.label,
            c.error.as_deref().unwrap_or_default()
        );
    }
    println!("\n{}", o.selection.summary);
    println!(
        "registered {} ({}) as champion, refit on every origin up to {} UTC ({} h before the newest hour, {} UTC){}",
        o.model_id,
        o.family,
        hour_utc(o.trained_until_hour),
        o.newest_hour - o.trained_until_hour,
        hour_utc(o.newest_hour),
        o.floor_id
            .as_ref()
            .map(|f| format!("; the floor is {f}"))
            .unwrap_or_else(|| "; it is also the floor".into())
    );
    for (label, id) in &o.challengers {
        println!("registered {id} ({label}) as challenger");
    }
    println!(
        "time: walk-forward {:.1} s, refit {:.1} s, total {:.1} s",
        o.timings.walk_forward_seconds, o.timings.refit_seconds, o.timings.total_seconds
    );
}

/// The model that answers for a coin: the champion when it covers the coin, else the floor.
fn serving_row(
    store: &Store,
    coin: &str,
    settings: &Settings,
) -> anyhow::Result<registry::ModelRow> {
    if let Some(row) = registry::champion(store.conn())? {
        let m = ServedModel::load(&row.artifact_dir(&settings.data_dir), tch::Device::Cpu)?;
        if m.coins().iter().any(|c| c == coin) {
            return Ok(row);
        }
    }
    registry::floor(store.conn())?.ok_or_else(|| {
        anyhow::anyhow!(
            "no model serves {coin} yet: the floor is registered by the first pipeline run with a day of data (`coincast run` or `replay`), `coincast train` selects a champion"
        )
    })
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
        println!("batch {:>5} {:<12} {verdict}", g.batch_id, g.coin_id);
        for p in &g.problems {
            println!("    {p}");
        }
    }
    for f in &s.failed_batches {
        println!("failed: {f}");
    }
    for e in &s.fetch_errors {
        println!("fetch error: {e}");
    }
    println!(
        "run #{} {}: {} request(s) ({} retried), {} staged, {} merged, {} quarantined, {} failed, {} feature rows",
        report.run_id,
        report.state.name(),
        s.requests,
        s.failed_attempts,
        s.staged,
        s.merged,
        s.quarantined,
        s.failed_batches.len(),
        s.feature_rows
    );
    if let Some(err) = &report.error {
        eprintln!("error: {err}");
    }
    match report.state {
        RunState::Success => Exit::Ok,
        _ if s.source_unavailable => Exit::SourceUnavailable,
        RunState::Partial => Exit::DataRejected,
        RunState::Failed | RunState::Interrupted => Exit::Internal,
    }
}

fn median_f64(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
