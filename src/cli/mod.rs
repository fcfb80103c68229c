//! Command line: parsing (clap), logging, and the mapping of outcomes to exit codes; the
//! commands themselves live by concern (`pipeline`: data in; `model`: evaluate, train, predict,
//! registry; `admin`: serve, backup, restore). This is the binary's edge: errors are `anyhow`
//! here and typed everywhere below.

/// Output that a closed pipe (`coincast status | head -1`) ends quietly, as Unix tools do:
/// the rest is dropped and the command finishes its work (a pipeline run is never cut short
/// by its reader going away). Any other write error is logged.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::emit(&mut std::io::stdout().lock(), format_args!($($arg)*)) };
}
macro_rules! outln {
    () => { out!("\n") };
    ($($arg:tt)*) => { out!("{}\n", format_args!($($arg)*)) };
}
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::emit(&mut std::io::stderr().lock(), format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod admin;
mod datasets;
mod model;
mod pipeline;
mod tokens;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use coincast::config::{is_valid_coin_id, Settings};
use coincast::store::{Store, StoreError};

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
    /// Log as JSON lines (for log collectors). The environment variable takes
    /// 1/0, true/false, yes/no, on/off.
    #[arg(
        long,
        global = true,
        env = "COINCAST_LOG_JSON",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}
#[derive(Subcommand, Debug)]
enum Command {
    /// One pipeline run: fetch every configured coin from CoinGecko, gate, merge, build features.
    Run(pipeline::FetchArgs),
    /// Like `run`, for chosen coins and backfill depth.
    Ingest(pipeline::FetchArgs),
    /// Load recorded CoinGecko market_chart files (<coin_id>.json) through the same gate and merge.
    Replay(pipeline::ReplayArgs),
    /// Show the rules and recent failures, or check batches again after the rules changed.
    Quality(pipeline::QualityArgs),
    /// Build the features of every hour that changed since the last build.
    Features(pipeline::FeaturesArgs),
    /// Walk-forward evaluation of the candidate forecasters (persistence with constant, EWMA,
    /// GARCH or HAR intervals, trend followers, ridge, the LSTMs) on the stored features, scored
    /// with conformal and online-controlled (ACI) intervals: the table the gate decides on.
    Evaluate(model::EvaluateArgs),
    /// A selection run: every candidate (persistence variants, HAR, ridge, the LSTM ...) through the
    /// same walk-forward; the gate's winner is refit on all data and registered as champion.
    Train(model::TrainArgs),
    /// Forecast every horizon from a coin's latest hour with the champion (the floor for a coin it
    /// does not cover), or a given model.
    Predict(model::PredictArgs),
    /// The appliance's HTTP API: /predict, /health, /ready, /models/status, /metrics.
    Serve(admin::ServeArgs),
    /// The dataset versions in the lake (a DuckLake snapshot per pipeline run that changed data).
    Datasets {
        #[command(subcommand)]
        action: datasets::DatasetsAction,
    },
    /// Retention: move old raw bodies to the lake, retire models nobody keeps, expire old lake
    /// snapshots (not those kept models or pins name), compact, checkpoint; what it freed.
    Cleanup(datasets::CleanupArgs),
    /// Named tokens (serve.tokens_file): add one (printed once), list them, revoke one.
    Tokens {
        #[command(subcommand)]
        action: tokens::TokensAction,
    },
    /// The model registry.
    Models {
        #[command(subcommand)]
        action: model::ModelsAction,
    },
    /// An online backup: a consistent copy of the database and every registered model, as one tar
    /// archive. While `coincast serve` holds the file, the server makes the copy
    /// (POST /api/admin/backup, with serve.api_token).
    Backup(admin::BackupArgs),
    /// Restore a backup archive into the data folder (which must hold no database, unless
    /// --force: then the current file is kept beside it as coincast.duckdb.before-restore-<time>).
    Restore(admin::RestoreArgs),
    /// What the database holds: coins, hours, gaps, batches, the last run.
    Status(pipeline::StatusArgs),
    /// Publish the read-only copy for SQL users now (<data_dir>/published/: coincast.duckdb and
    /// one Parquet file per table); through the running server when it holds the file.
    Export(admin::ExportArgs),
    /// Ask the running server for /health: exit 0 when it answers, 1 otherwise (the container's
    /// HEALTHCHECK).
    Healthcheck(admin::HealthcheckArgs),
    /// The server's retrain child: runs the job file the worker wrote (not for people).
    #[command(name = "retrain-job", hide = true)]
    RetrainJob {
        /// The job, as JSON.
        job: PathBuf,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.log_json);
    let exit = match execute(cli) {
        Ok(code) => code,
        Err(err) => {
            let code = classify(&err);
            errln!("error: {}", coincast::failure::report(err.as_ref()));
            code
        }
    };
    ExitCode::from(exit as u8)
}

/// Writes `args`; a closed pipe is the end of output, not an error.
fn emit(stream: &mut impl std::io::Write, args: std::fmt::Arguments<'_>) {
    match stream.write_fmt(args) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            tracing::warn!("writing the output failed: {e}");
        }
        _ => {}
    }
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

/// Which exit code an error deserves: the outermost typed error in the chain decides
/// (`coincast::failure::Classify`).
fn classify(err: &anyhow::Error) -> Exit {
    use coincast::failure::{Classify, Failure};
    if err.chain().any(|cause| cause.is::<UsageError>()) {
        return Exit::Usage;
    }
    let failure = err.chain().find_map(|cause| {
        let typed: [Option<&dyn Classify>; 15] = [
            cause
                .downcast_ref::<coincast::retention::RetentionError>()
                .map(|e| e as _),
            cause
                .downcast_ref::<coincast::lake::LakeError>()
                .map(|e| e as _),
            cause
                .downcast_ref::<coincast::store::BackupError>()
                .map(|e| e as _),
            cause
                .downcast_ref::<coincast::pipeline::PipelineError>()
                .map(|e| e as _),
            cause
                .downcast_ref::<coincast::pipeline::TaskError>()
                .map(|e| e as _),
            cause
                .downcast_ref::<coincast::model::ModelError>()
                .map(|e| e as _),
            cause.downcast_ref::<StoreError>().map(|e| e as _),
            cause
                .downcast_ref::<coincast::config::ConfigError>()
                .map(|e| e as _),
            cause
                .downcast_ref::<coincast::quality::QualityError>()
                .map(|e| e as _),
            cause
                .downcast_ref::<coincast::ingest::IngestError>()
                .map(|e| e as _),
            cause
                .downcast_ref::<coincast::runtime::JobError>()
                .map(|e| e as _),
            cause
                .downcast_ref::<coincast::serve::tls::TlsError>()
                .map(|e| e as _),
            cause
                .downcast_ref::<coincast::pipeline::ShardError>()
                .map(|e| e as _),
            cause
                .downcast_ref::<coincast::publish::PublishError>()
                .map(|e| e as _),
            cause
                .downcast_ref::<coincast::access::AccessError>()
                .map(|e| e as _),
        ];
        typed.into_iter().flatten().next().map(Classify::failure)
    });
    Exit::from(failure.unwrap_or(Failure::Internal))
}

/// The user asked for something that is not there or not allowed (an unknown coin or batch, a
/// missing token): exit 2, never "unexpected failure".
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

impl From<coincast::failure::Failure> for Exit {
    fn from(f: coincast::failure::Failure) -> Self {
        use coincast::failure::Failure;
        match f {
            Failure::Usage => Exit::Usage,
            Failure::DataRejected => Exit::DataRejected,
            Failure::DatabaseBusy => Exit::DatabaseBusy,
            Failure::SourceUnavailable => Exit::SourceUnavailable,
            Failure::Interrupted | Failure::Internal => Exit::Internal,
        }
    }
}

fn execute(cli: Cli) -> anyhow::Result<Exit> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        settings.data_dir = dir;
    }
    match cli.command {
        Command::Run(args) => pipeline::fetch(settings, args, "run"),
        Command::Ingest(args) => pipeline::fetch(settings, args, "ingest"),
        Command::Replay(args) => pipeline::replay(&settings, args),
        Command::Quality(args) => pipeline::quality(&settings, args),
        Command::Features(args) => pipeline::features(&settings, args),
        Command::Status(args) => pipeline::status(&settings, args),
        Command::Evaluate(args) => model::evaluate(&settings, args),
        Command::Train(args) => model::train(&settings, args),
        Command::Predict(args) => model::predict(&settings, args),
        Command::Models { action } => model::models(&settings, action),
        Command::Tokens { action } => tokens::tokens(&settings, action),
        Command::Datasets { action } => datasets::datasets(&settings, action),
        Command::Cleanup(args) => datasets::cleanup(&settings, args),
        Command::Serve(args) => admin::serve(settings, args),
        Command::Backup(args) => admin::backup(&settings, args),
        Command::Restore(args) => admin::restore(&settings, args),
        Command::Healthcheck(args) => admin::healthcheck(&settings, args),
        Command::Export(args) => admin::export(&settings, args),
        Command::RetrainJob { job } => {
            coincast::pipeline::run_retrain_job(&job)?;
            Ok(Exit::Ok)
        }
    }
}

/// Opens the data folder's database, creating it (and the folder) when there is none: for the
/// commands that bring data in.
fn open_or_create(settings: &Settings) -> anyhow::Result<Store> {
    tuned(settings, Store::open(&settings.data_dir))
}

/// Opens the data folder's database; none there is a usage error (exit 2), and nothing is
/// created: for the commands that read or change what is stored.
fn open_existing(settings: &Settings) -> anyhow::Result<Store> {
    tuned(settings, Store::open_existing(&settings.data_dir))
}

fn tuned(settings: &Settings, opened: Result<Store, StoreError>) -> anyhow::Result<Store> {
    // What opening repaired is logged by the store (warn and error: shown by default).
    let store = opened.with_context(|| {
        format!(
            "opening {}",
            coincast::store::database_file(&settings.data_dir).display()
        )
    })?;
    store.tune(&settings.store)?;
    Ok(store)
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
