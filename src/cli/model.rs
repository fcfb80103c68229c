//! The model commands: `evaluate` (the walk-forward table), `train` (a selection run),
//! `predict` and the registry (`models`), with their printouts.

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::{check_coins, open_existing, open_or_create, usage, Exit};
use coincast::config::Settings;
use coincast::model::forecast::{HorizonForecast, Levels};
use coincast::model::lstm;
use coincast::model::recipe::Recipe;
use coincast::model::registry::GateCheck;
use coincast::model::served::ServedModel;
use coincast::model::{evaluate, registry, train};
use coincast::progress;
use coincast::runtime::{answer, ChampionChange, Runtime, ServedBy, Snapshot};
use coincast::store::Store;

#[derive(Args, Debug)]
pub(super) struct EvaluateArgs {
    /// Coins to evaluate (comma-separated); default: every configured coin with features.
    #[arg(long, value_delimiter = ',')]
    pub(super) coins: Option<Vec<String>>,
    /// Horizons to print (comma-separated hours); default 1,6,24.
    #[arg(long, value_delimiter = ',', default_value = "1,6,24")]
    pub(super) horizons: Vec<u32>,
    /// Number of weekly test windows (overrides the protocol file).
    #[arg(long)]
    pub(super) windows: Option<u32>,
    /// Protocol and baseline settings; default: the built-in models/baselines.toml.
    #[arg(long)]
    pub(super) protocol: Option<PathBuf>,
    /// Forecasters to evaluate (comma-separated names like persistence_ewma, linear, lstm);
    /// default: the protocol's candidates without the LSTM.
    #[arg(long, value_delimiter = ',')]
    pub(super) candidates: Option<Vec<String>>,
    /// Also evaluate a registered model, or `champion`, by re-running its recipe on the same
    /// folds (never with weights that saw the test windows).
    #[arg(long)]
    pub(super) model: Option<String>,
    /// The LSTM candidates' spec; default: model.spec (the built-in models/lstm.toml).
    #[arg(long)]
    pub(super) spec: Option<PathBuf>,
    /// auto | cpu | cuda for the LSTM candidates (overrides the spec).
    #[arg(long)]
    pub(super) device: Option<String>,
    /// Maximum epochs of the LSTM candidates (overrides the spec).
    #[arg(long)]
    pub(super) epochs: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Args, Debug)]
pub(super) struct TrainArgs {
    /// Coins to train on (comma-separated); default: every configured coin with features.
    #[arg(long, value_delimiter = ',')]
    pub(super) coins: Option<Vec<String>>,
    /// Maximum epochs (overrides the spec).
    #[arg(long)]
    pub(super) epochs: Option<usize>,
    /// auto | cpu | cuda (overrides the spec).
    #[arg(long)]
    pub(super) device: Option<String>,
    /// Number of weekly walk-forward windows (overrides models/baselines.toml).
    #[arg(long)]
    pub(super) windows: Option<u32>,
    /// The LSTM candidate's spec; default: model.spec (the built-in models/lstm.toml).
    #[arg(long)]
    pub(super) spec: Option<PathBuf>,
    /// Walk-forward protocol and candidates; default: model.protocol (models/baselines.toml).
    #[arg(long)]
    pub(super) protocol: Option<PathBuf>,
    /// Candidates (comma-separated), overriding the protocol's.
    #[arg(long, value_delimiter = ',')]
    pub(super) candidates: Option<Vec<String>>,
    /// Also register every other candidate, refit on all data, as challenger (to inspect it
    /// or promote it by hand); by default only the champion and the floor are registered.
    #[arg(long)]
    pub(super) register_all: bool,
}

#[derive(Args, Debug)]
pub(super) struct PredictArgs {
    /// The coin.
    #[arg(long, default_value = "bitcoin")]
    pub(super) coin: String,
    /// A registered model id; default: the champion.
    #[arg(long)]
    pub(super) model: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Subcommand, Debug)]
pub(super) enum ModelsAction {
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
    /// Give the champion role back to the champion before the current one (again: further back
    /// along the champion history).
    Rollback {
        /// Roll back also to a model that failed the promotion gate.
        #[arg(long)]
        force: bool,
    },
}

pub(super) fn evaluate(settings: &Settings, args: EvaluateArgs) -> anyhow::Result<Exit> {
    let EvaluateArgs {
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
    } = args;
    check_coins(coins.as_deref())?;
    let mut p = load_protocol(protocol.as_deref())?;
    if let Some(w) = windows {
        p.windows = w;
    }
    let spec = load_spec(spec.as_deref(), settings, epochs, device)?;
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
    let store = open_existing(settings)?;
    if let Some(id) = &model {
        // A registered model is judged by re-running its recipe on these folds.
        let row = if id == "champion" {
            registry::champion(store.conn())?
                .ok_or_else(|| anyhow::anyhow!("there is no champion yet: run `coincast train`"))?
        } else {
            registry::get_servable(store.conn(), id)?
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
    let lists: Vec<&[String]> = list
        .iter()
        .map(|c| c.recipe.features())
        .chain(std::iter::once(p.features.as_slice()))
        .collect();
    let features = train::union_features(&lists);
    let (series, skipped) =
        train::load_series(store.conn(), &wanted, &settings.vs_currency, &features)?;
    for c in skipped {
        errln!("skipping {c}: no features stored");
    }
    let bar = progress::bar("walk-forward");
    bar.set_length(list.len() as u64);
    let result = evaluate::walk_forward(&series, &list, &p, |label, index, _| {
        bar.set_position(index as u64);
        bar.set_message(label.to_string());
        Ok(())
    });
    bar.finish_and_clear();
    let mut eval = result?;
    eval.rows.retain(|r| horizons.contains(&r.metrics.horizon));
    eval.aci_rows
        .retain(|r| horizons.contains(&r.metrics.horizon));
    if json {
        outln!("{}", serde_json::to_string_pretty(&eval)?);
    } else {
        print_evaluation(&eval, &p);
    }
    Ok(Exit::Ok)
}

pub(super) fn train(settings: &Settings, args: TrainArgs) -> anyhow::Result<Exit> {
    let TrainArgs {
        coins,
        epochs,
        device,
        windows,
        spec,
        protocol,
        candidates,
        register_all,
    } = args;
    check_coins(coins.as_deref())?;
    let s = load_spec(spec.as_deref(), settings, epochs, device)?;
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
    let store = open_existing(settings)?;
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
            cancel: Default::default(),
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
    if let Some(v) = coincast::lake::record_training(store.conn(), settings, o.run_id) {
        outln!("trained on dataset version {v}");
    }
    store.checkpoint()?;
    coincast::lake::ship_models(store.conn(), settings);
    for c in &o.skipped_coins {
        errln!("skipped {c}: no features stored");
    }
    print_selection(&o);
    Ok(Exit::Ok)
}

pub(super) fn predict(settings: &Settings, args: PredictArgs) -> anyhow::Result<Exit> {
    let PredictArgs { coin, model, json } = args;
    check_coins(Some(std::slice::from_ref(&coin)))?;
    // With the lake on S3, a data folder may start from the bucket alone: the model and the
    // coin's rows are brought from there when the file lacks them.
    let bucket = coincast::lake::Bucket::of(settings)?;
    let store = match &bucket {
        Some(_) => open_or_create(settings)?,
        None => open_existing(settings)?,
    };
    if let Some(bucket) = &bucket {
        from_bucket(settings, &store, bucket, &coin, model.as_deref())?;
    }
    if !settings.coins.contains(&coin) && !has_market_data(&store, &coin)? {
        return Err(usage(format!(
            "coin `{coin}` is neither configured (coins: {}) nor stored: add it to `coins` and \
             run `coincast run`",
            settings.coins.join(", ")
        )));
    }
    // A requested model answers as asked; otherwise whoever `POST /predict` would pick: the
    // champion for a coin it covers and can forecast now, else the floor.
    let (f, model_id, family, answered) = match &model {
        Some(id) => {
            let row = registry::get_servable(store.conn(), id)?;
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
            let f =
                m.forecast_latest(&series, Levels::per_horizon_or_nominal(levels.get(&coin)))?;
            (
                std::sync::Arc::new(f),
                row.model_id,
                m.name(),
                Answered::Requested,
            )
        }
        None => {
            let snapshot = Snapshot::load_for(store.conn(), settings, Some(&coin));
            let answerers = snapshot.answerers_for(&coin, &settings.coins)?;
            let (f, a) = answer::latest_forecast(answerers, 1)?;
            let answered = match a.by {
                ServedBy::Champion => Answered::Champion,
                ServedBy::Floor => Answered::Floor,
            };
            (
                f,
                a.model.model_id.clone(),
                a.model.family.clone(),
                answered,
            )
        }
    };
    if json {
        let out = PredictOutput {
            coin_id: &f.coin_id,
            model_id: &model_id,
            model_type: &family,
            served_by: answered,
            as_of: rfc3339_hour(f.as_of_hour),
            current_price: f.current_price,
            interval_level: f.interval_level,
            horizons: &f.horizons,
        };
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        outln!(
            "{} with {} ({}, {}): price {} at {} UTC; {:.0}% intervals",
            f.coin_id,
            model_id,
            family,
            answered.name(),
            f.current_price,
            hour_utc(f.as_of_hour),
            f.interval_level * 100.0
        );
        for h in &f.horizons {
            outln!(
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

pub(super) fn models(settings: &Settings, action: ModelsAction) -> anyhow::Result<Exit> {
    let store = open_existing(settings)?;
    match action {
        ModelsAction::List => {
            let rows = registry::list(store.conn())?;
            if rows.is_empty() {
                outln!("no models yet: run `coincast train`");
            }
            outln!(
                "{:<40} {:<18} {:<16} {:<19} {:>9}  verdict",
                "model",
                "kind",
                "alias",
                "created (UTC)",
                "IS%"
            );
            for m in rows {
                let alias = match (m.alias.as_deref(), m.floor) {
                    _ if m.retired => "retired".into(),
                    (Some(a), true) => format!("{a}, floor"),
                    (Some(a), false) => a.to_string(),
                    (None, true) => "floor".into(),
                    (None, false) => "-".into(),
                };
                outln!(
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
            outln!("{}", serde_json::to_string_pretty(&m)?);
            let card =
                std::fs::read_to_string(m.artifact_dir(&settings.data_dir).join("model.json"))
                    .with_context(|| format!("reading the artifact of {model_id}"))?;
            outln!("{card}");
        }
        ModelsAction::Promote { model_id, force } => {
            let runtime = Runtime::for_command(&store, settings.clone())?;
            let changed = runtime.promote(&model_id, GateCheck::forced_if(force))?;
            outln!("{} is champion{}", changed.champion, replaced(&changed));
            say_published(&runtime, &changed);
        }
        ModelsAction::Rollback { force } => {
            let runtime = Runtime::for_command(&store, settings.clone())?;
            let changed = runtime.rollback(GateCheck::forced_if(force))?;
            outln!(
                "{} is champion again{}",
                changed.champion,
                replaced(&changed)
            );
            say_published(&runtime, &changed);
        }
    }
    Ok(Exit::Ok)
}

/// ", replacing <previous>" when there was a champion before.
fn replaced(changed: &ChampionChange) -> String {
    changed
        .previous
        .as_ref()
        .map_or_else(String::new, |p| format!(", replacing {p}"))
}

/// Where replicas will find the change, when `publish.url` is set.
fn say_published(runtime: &Runtime, changed: &ChampionChange) {
    let url = runtime.settings().publish.url.trim();
    match changed.published {
        Some(version) => outln!("published for replicas at {url} (version {version})"),
        None if !url.is_empty() => {
            outln!("not published for replicas at {url}: the log above says why; the next run or promotion publishes it")
        }
        None => {}
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

/// Who answered `coincast predict`: the roles `POST /predict` names, or the model asked for.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
enum Answered {
    Champion,
    Floor,
    Requested,
}

impl Answered {
    fn name(self) -> &'static str {
        match self {
            Answered::Champion => "champion",
            Answered::Floor => "floor",
            Answered::Requested => "requested",
        }
    }
}

/// `predict --json`: the forecast with the model that answered, named as `POST /predict` names it.
#[derive(Serialize)]
struct PredictOutput<'a> {
    coin_id: &'a str,
    model_id: &'a str,
    model_type: &'a str,
    served_by: Answered,
    /// The newest hour the inputs end at, RFC 3339 UTC.
    as_of: String,
    current_price: f64,
    interval_level: f64,
    horizons: &'a [HorizonForecast],
}

fn rfc3339_hour(h: i64) -> String {
    DateTime::<Utc>::from_timestamp(h * 3600, 0)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn hour_utc(h: i64) -> String {
    DateTime::<Utc>::from_timestamp(h * 3600, 0)
        .map(|t| t.format("%Y-%m-%d %H:00").to_string())
        .unwrap_or_default()
}

fn print_evaluation(eval: &evaluate::Evaluation, p: &evaluate::Protocol) {
    outln!(
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
    outln!(
        "{:<10} {:<18} {:>3} {:>6} {:>8} {:>8} {:>6} {:>7} {:>12} {:>7} {:>6}",
        "coin",
        "model",
        "h",
        "n",
        "IS%",
        "pinball",
        "cover",
        "width",
        "MAE",
        "skill",
        "dir"
    );
    for r in &eval.rows {
        let m = &r.metrics;
        outln!(
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
    outln!(
        "the same forecasts as served, with online coverage control (ACI, gamma {}) by the live rule: one level per recipe through every refit, moved by each outcome once it is known; pinned = share of forecasts with the level at a bound",
        eval.aci_gamma
    );
    for r in &eval.aci_rows {
        let m = &r.metrics;
        outln!(
            "{:<10} {:<18} {:>3} {:>6} {:>8.4} {:>8.4} {:>6.3} {:>7.4} pinned {:>5.3}",
            r.coin_id,
            r.model,
            m.horizon,
            m.n,
            m.interval_score,
            m.pinball,
            m.coverage,
            m.width,
            r.pinned_share.unwrap_or(0.0)
        );
    }
    for c in &eval.candidates {
        if let Some(e) = &c.error {
            outln!("{}: not evaluated: {e}", c.label);
        }
        if !c.samples_per_second.is_empty() {
            let sps = median_f64(&c.samples_per_second);
            outln!(
                "{}: {} refits, fit {:.1} s, training {:.0} samples/s (median), epochs chosen {:?}",
                c.label,
                c.refits,
                c.fit_seconds,
                sps,
                c.chosen_epochs
            );
        }
    }
    outln!("IS%: interval (Winkler) score in percent of the price, pinball: mean pinball loss of the interval ends and the point; lower is better. skill = 1 - MSE/MSE(persistence) (> 0 beats persistence); width relative to price; dir: a no-move forecast counts half");
}

/// The candidates' scorecards, the gate's verdicts and what was registered.
fn print_selection(o: &train::TrainOutcome) {
    let e = &o.evaluation;
    outln!(
        "walk-forward: {} weekly folds (of {} configured), test origins {} .. {} UTC, refit every {} folds",
        e.folds,
        e.windows_configured,
        hour_utc(e.test_from_hour),
        hour_utc(e.test_to_hour),
        e.refit_every_folds
    );
    outln!(
        "{:<20} {:>9} {:>13} {:>7} {:>9} {:>13} {:>9} {:>7} {:>8}  verdict",
        "candidate",
        "IS%",
        "coverage",
        "pinned",
        "plain IS%",
        "plain cover",
        "MSE/pers",
        "refits",
        "fit s"
    );
    for c in &o.selection.scorecards {
        let run = e.candidates.iter().find(|r| r.label == c.label);
        let (lo, hi) = c.served.coverage_range();
        let (plain_lo, plain_hi) = c.plain.coverage_range();
        outln!(
            "{:<20} {:>9.4} {:>5.1}-{:>5.1}% {:>6.1}% {:>9.4} {:>5.1}-{:>5.1}% {:>9.4} {:>7} {:>8.1}  {}",
            c.label,
            c.interval_score(),
            100.0 * lo,
            100.0 * hi,
            100.0 * c.most_pinned(),
            c.plain.interval_score,
            100.0 * plain_lo,
            100.0 * plain_hi,
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
        outln!(
            "{:<20} not evaluated: {}",
            c.label,
            c.error.as_deref().unwrap_or_default()
        );
    }
    outln!("IS% and coverage: the intervals as served (ACI levels by the live rule), which the gate judges; pinned: the largest share of a coin's hours with the ACI level at a bound; plain: conformal at the nominal level, without ACI");
    outln!("\n{}", o.selection.summary);
    outln!(
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
        outln!("registered {id} ({label}) as challenger");
    }
    outln!(
        "time: walk-forward {:.1} s, refit {:.1} s, total {:.1} s",
        o.timings.walk_forward_seconds,
        o.timings.refit_seconds,
        o.timings.total_seconds
    );
}

/// Brings what `predict` needs and the file lacks from the lake's bucket: the requested model
/// (artifact and registry row) and the coin's market data and features (the lake's newest
/// version).
fn from_bucket(
    settings: &Settings,
    store: &Store,
    bucket: &coincast::lake::Bucket,
    coin: &str,
    model: Option<&str>,
) -> anyhow::Result<()> {
    let conn = store.conn();
    if let Some(id) = model {
        let unknown = matches!(
            registry::get(conn, id),
            Err(coincast::model::ModelError::UnknownModel(_))
        );
        if unknown && coincast::lake::fetch_model(conn, bucket, &settings.data_dir, id)? {
            errln!("fetched model {id} from {}", bucket.url());
        }
    }
    if !has_market_data(store, coin)? {
        coincast::lake::attach(conn, settings)?;
        let rows = coincast::lake::hydrate_coin(conn, coin, &settings.vs_currency)?;
        if rows > 0 {
            errln!("read {rows} hours of {coin} from the lake's newest version");
        }
    }
    store.checkpoint()?;
    Ok(())
}

fn has_market_data(store: &Store, coin: &str) -> anyhow::Result<bool> {
    Ok(store.conn().query_row(
        "SELECT count(*) > 0 FROM market_data WHERE coin_id = ?",
        [coin],
        |r| r.get(0),
    )?)
}

fn median_f64(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
