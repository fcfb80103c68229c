//! Crash safety. A real coincast process aborts at each named crash point (`COINCAST_CRASH_AT`,
//! which leaves the files as kill -9 would); the next start must find a file that opens, no
//! (coin, hour) twice, no good batch quarantined and a consistent registry, and a re-run must
//! reach a clean run's counts. Also: a WAL DuckDB cannot replay, a server killed while creating
//! its database, a file from the previous release, and backup / restore.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use coincast::crashpoint::{CrashPoint, ENV};
use coincast::model::artifacts;
use coincast::model::served::ServedModel;
use coincast::store::{Store, DATABASE_FILE, SCHEMA_VERSION};

use crate::support::forecast::{ForecastFigures, ACROSS_MACHINES};
use crate::support::{coincast, coincast_command, text, truncated_coin_file};

/// 2021-10-01 00:00 UTC: solana and ripple up to here are about 4,300 hours each.
const UNTIL_MS: f64 = 1_633_046_400_000.0;
const COINS: &str = "solana,ripple";

/// Two real coins, cut short, in a folder of their own.
pub fn small_seed() -> tempfile::TempDir {
    let seed = tempfile::tempdir().expect("seed dir");
    for coin in ["solana", "ripple"] {
        truncated_coin_file(seed.path(), coin, UNTIL_MS);
    }
    seed
}

/// The small LSTM spec the previous-release fixture was trained with.
pub fn small_spec_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/release-v4/spec.toml")
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Hours and feature rows per coin.
pub fn counts(store: &Store) -> Vec<(String, i64, i64)> {
    let mut stmt = store
        .conn()
        .prepare(
            "SELECT m.coin_id, count(*), (SELECT count(*) FROM features f WHERE f.coin_id = m.coin_id)
             FROM market_data m GROUP BY m.coin_id ORDER BY m.coin_id",
        )
        .expect("counts");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("counts")
        .collect::<Result<Vec<_>, _>>()
        .expect("counts")
}

/// What a start after a crash finds; every field is a check that can fail.
#[derive(Debug)]
pub struct Inspection {
    pub opened: Result<(), String>,
    pub duplicated_hours: i64,
    pub quarantined_batches: i64,
    pub left_running: i64,
    pub registry: Result<(), String>,
    pub counts: Vec<(String, i64, i64)>,
}

impl Inspection {
    pub fn all_ok(&self) -> bool {
        self.opened.is_ok()
            && self.duplicated_hours == 0
            && self.quarantined_batches == 0
            && self.left_running == 0
            && self.registry.is_ok()
    }
}

/// Opens the data folder as the next start would, and checks it.
pub fn inspect(dir: &Path) -> Inspection {
    let store = match Store::open(dir) {
        Ok(s) => s,
        Err(e) => {
            return Inspection {
                opened: Err(e.to_string()),
                duplicated_hours: -1,
                quarantined_batches: -1,
                left_running: -1,
                registry: Err("not opened".into()),
                counts: Vec::new(),
            }
        }
    };
    let one = |sql: &str| -> i64 {
        store
            .conn()
            .query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    Inspection {
        opened: Ok(()),
        duplicated_hours: one(
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM market_data GROUP BY coin_id, vs_currency, ts HAVING count(*) > 1))
                  + (SELECT count(*) FROM (SELECT 1 FROM features GROUP BY coin_id, vs_currency, ts HAVING count(*) > 1))",
        ),
        quarantined_batches: one("SELECT count(*) FROM raw_batches WHERE state = 'quarantined'"),
        left_running: one(
            "SELECT (SELECT count(*) FROM pipeline_runs WHERE state = 'running')
                  + (SELECT count(*) FROM task_runs WHERE state = 'running')
                  + (SELECT count(*) FROM experiments WHERE state = 'running')",
        ),
        registry: registry_consistent(&store),
        counts: counts(&store),
    }
}

/// At most one champion; every registered model's artifact loads (checksum, shapes) from its
/// path relative to the data folder; every model has its experiment.
pub fn registry_consistent(store: &Store) -> Result<(), String> {
    let conn = store.conn();
    let champions: i64 = conn
        .query_row(
            "SELECT count(*) FROM model_versions WHERE alias = 'champion'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    if champions > 1 {
        return Err(format!("{champions} champions"));
    }
    for m in coincast::model::registry::list(conn).map_err(|e| e.to_string())? {
        if m.artifact_path != artifacts::registered_path(&m.model_id) {
            return Err(format!("{}: artifact_path {}", m.model_id, m.artifact_path));
        }
        ServedModel::load(&m.artifact_dir(store.data_dir()), tch::Device::Cpu)
            .map_err(|e| format!("{}: {e}", m.model_id))?;
    }
    let orphan_models: i64 = conn
        .query_row(
            "SELECT count(*) FROM model_versions WHERE run_id NOT IN (SELECT run_id FROM experiments)",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    if orphan_models > 0 {
        return Err(format!("{orphan_models} model(s) without an experiment"));
    }
    Ok(())
}

fn replay_args(dir: &Path, seed: &Path) -> Vec<String> {
    ["--data-dir", arg(dir), "replay", arg(seed)]
        .map(String::from)
        .to_vec()
}

fn train_args(dir: &Path) -> Vec<String> {
    let spec = small_spec_file();
    [
        "--data-dir",
        arg(dir),
        "train",
        "--spec",
        arg(&spec),
        "--windows",
        "1",
        "--coins",
        COINS,
        "--candidates",
        "persistence,persistence_ewma,linear,lstm",
    ]
    .map(String::from)
    .to_vec()
}

fn run_ok(args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = coincast(&args, &[]);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    text(&out)
}

/// Runs `args` with `point` armed and checks that the process died there.
fn crash_at(point: CrashPoint, args: &[String]) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = coincast(&args, &[(ENV, point.name())]);
    assert_eq!(
        out.status.signal(),
        Some(6),
        "{} did not abort: {}",
        point.name(),
        text(&out)
    );
    assert!(
        text(&out).contains(&format!("aborting at {}", point.name())),
        "{}",
        text(&out)
    );
}

fn one(dir: &Path, sql: &str) -> i64 {
    let store = Store::open(dir).expect("open");
    store
        .conn()
        .query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn assert_recovers(point: CrashPoint, dir: &Path) -> Inspection {
    let found = inspect(dir);
    assert!(found.all_ok(), "after {}: {found:?}", point.name());
    found
}

#[test]
fn every_crash_point_leaves_a_file_that_opens_and_a_rerun_reaches_the_clean_counts() {
    let seed = small_seed();
    let clean_dir = tempfile::tempdir().expect("dir");
    run_ok(&replay_args(clean_dir.path(), seed.path()));
    let clean = counts(&Store::open(clean_dir.path()).expect("open"));
    assert_eq!(clean.len(), 2, "{clean:?}");

    for point in CrashPoint::ALL {
        let dir = tempfile::tempdir().expect("dir");
        let dir = dir.path();
        match point {
            CrashPoint::AfterMigrationCommit => {
                // Covered here on a fresh folder (a replay creates the database; read-only
                // commands never do) and below on the previous release's file.
                crash_at(point, &replay_args(dir, seed.path()));
                assert!(
                    !dir.join(DATABASE_FILE).exists(),
                    "a half-created database was put in place"
                );
                assert_recovers(point, dir);
                assert_eq!(
                    one(dir, "SELECT max(version) FROM schema_migrations"),
                    SCHEMA_VERSION
                );
            }
            CrashPoint::AfterBatchInsert | CrashPoint::MidStaging => {
                crash_at(point, &replay_args(dir, seed.path()));
                assert_recovers(point, dir);
                // Batch row and staged rows commit together: the crash left neither.
                assert_eq!(
                    one(dir, "SELECT count(*) FROM raw_batches"),
                    0,
                    "{}",
                    point.name()
                );
                assert_eq!(
                    one(
                        dir,
                        "SELECT count(*) FROM pipeline_runs WHERE state = 'interrupted'"
                    ),
                    1
                );
                run_ok(&replay_args(dir, seed.path()));
                assert_eq!(inspect(dir).counts, clean, "{}", point.name());
            }
            CrashPoint::AfterMergeCommit => {
                crash_at(point, &replay_args(dir, seed.path()));
                assert_recovers(point, dir);
                assert_eq!(
                    one(
                        dir,
                        "SELECT count(*) FROM raw_batches WHERE state = 'merged'"
                    ),
                    1
                );
                run_ok(&replay_args(dir, seed.path()));
                assert_eq!(inspect(dir).counts, clean, "{}", point.name());
            }
            CrashPoint::MidArtifactWrite => {
                run_ok(&replay_args(dir, seed.path()));
                // The replay registered the floor.
                assert_eq!(one(dir, "SELECT count(*) FROM model_versions"), 1);
                crash_at(point, &train_args(dir));
                assert_recovers(point, dir);
                assert_eq!(one(dir, "SELECT count(*) FROM model_versions"), 1);
                assert_eq!(
                    one(
                        dir,
                        "SELECT count(*) FROM experiments WHERE state = 'interrupted'"
                    ),
                    1
                );
                let store = Store::open(dir).expect("open");
                let orphans = artifacts::orphans(store.conn(), dir, 24.0).expect("orphans");
                assert_eq!(orphans.len(), 1, "{orphans:?}");
                assert!(orphans[0].name.ends_with(".partial"), "{orphans:?}");
                // Past the grace period, a sweep removes it.
                assert_eq!(
                    artifacts::sweep(store.conn(), dir, 0.0)
                        .expect("sweep")
                        .len(),
                    1
                );
                drop(store);
                run_ok(&train_args(dir));
                assert_recovers(point, dir);
                assert!(one(dir, "SELECT count(*) FROM model_versions") >= 2);
                assert_eq!(
                    one(
                        dir,
                        "SELECT count(*) FROM model_versions WHERE alias = 'champion'"
                    ),
                    1
                );
            }
            CrashPoint::AfterRegistryCommit => {
                run_ok(&replay_args(dir, seed.path()));
                // The replay registered the floor.
                let before = one(dir, "SELECT count(*) FROM model_versions");
                assert_eq!(before, 1);
                crash_at(point, &train_args(dir));
                // The registration was committed (in the WAL, not yet checkpointed): it survives.
                assert_recovers(point, dir);
                assert_eq!(one(dir, "SELECT count(*) FROM model_versions"), before + 1);
                assert_eq!(
                    one(
                        dir,
                        "SELECT count(*) FROM model_versions WHERE alias = 'champion'"
                    ),
                    1
                );
                run_ok(&train_args(dir));
                assert_recovers(point, dir);
                assert!(one(dir, "SELECT count(*) FROM model_versions") > before + 1);
            }
        }
        eprintln!("crash point {}: recovered", point.name());
    }
}

#[test]
fn a_crash_while_migrating_the_previous_release_keeps_its_file_and_the_next_start_migrates_it() {
    let dir = previous_release_data();
    let d = arg(dir.path());
    crash_at(
        CrashPoint::AfterMigrationCommit,
        &["--data-dir", d, "status"].map(String::from),
    );
    // The live file is still the old one; the migrated copy was debris.
    assert!(dir.path().join(DATABASE_FILE).exists());
    let out = coincast(
        &["--data-dir", d, "predict", "--coin", "synthcoin", "--json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_fixture_forecast(&out.stdout);
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(DATABASE_FILE) && n != DATABASE_FILE)
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The previous release's data folder (schema 4), unpacked into a new folder.
fn previous_release_data() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let archive =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/release-v4/data.tar.gz");
    let status = std::process::Command::new("tar")
        .args(["xzf", arg(&archive), "-C", arg(dir.path())])
        .status()
        .expect("tar");
    assert!(status.success());
    dir
}

/// The champion of the previous release's folder (its only model, promoted with `--force`).
const FIXTURE_CHAMPION: &str = "lstm-1-20261130T015938";

/// The previous release's `predict --coin synthcoin --json`, recorded on another machine, with
/// who answered (release v4 did not print it).
fn fixture_forecast() -> ForecastFigures {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/release-v4/predict-synthcoin.json");
    let recorded = ForecastFigures::parse(&std::fs::read(path).expect("fixture forecast"));
    ForecastFigures {
        model_id: Some(FIXTURE_CHAMPION.into()),
        served_by: Some("champion".into()),
        ..recorded.expect("fixture parses")
    }
}

/// Panics, naming every difference, unless `json` is the fixture's forecast as another machine
/// computes it.
fn assert_fixture_forecast(json: &[u8]) {
    let here = ForecastFigures::parse(json).expect("predict --json parses");
    if let Err(diffs) = fixture_forecast().matches(&here, ACROSS_MACHINES) {
        panic!("the forecast differs from the recorded one:\n{diffs}");
    }
}

#[test]
fn the_cross_machine_comparison_passes_float32_noise_and_catches_a_moved_bound() {
    let recorded = fixture_forecast();
    assert_eq!(recorded.horizons.len(), 24);
    assert_eq!(recorded.matches(&recorded, ACROSS_MACHINES), Ok(()));
    // Kernel noise: a price 3e-10 relative away (what another CPU's libtorch gave).
    let mut noisy = recorded.clone();
    noisy.horizons[0].ln_price += 3e-10;
    noisy.horizons[5].ln_upper -= 3e-10;
    assert_eq!(recorded.matches(&noisy, ACROSS_MACHINES), Ok(()));
    // One bound moved by 1e-5 relative: ln(lower' / current) = ln(lower / current) + ln(1 + 1e-5).
    let mut moved = recorded.clone();
    moved.horizons[11].ln_lower += (1.0 + 1e-5f64).ln();
    let err = recorded
        .matches(&moved, ACROSS_MACHINES)
        .expect_err("a bound 1e-5 away must fail");
    assert!(err.contains("h12 ln(lower/current)"), "{err}");
    // Who answered and the level are compared exactly.
    let mut floor = recorded.clone();
    floor.served_by = Some("floor".into());
    floor.horizons[0].drawn_at_level = 0.9000001;
    let err = recorded
        .matches(&floor, ACROSS_MACHINES)
        .expect_err("served_by");
    assert!(
        err.contains("served_by") && err.contains("h1 drawn_at_level"),
        "{err}"
    );
}

#[test]
fn a_file_of_the_previous_release_opens_migrated_and_serves_its_champion_from_another_folder() {
    let dir = previous_release_data();
    // Opened from another working directory than the one it was written in: the stored path
    // `data/models/...` would point nowhere.
    let elsewhere = tempfile::tempdir().expect("cwd");
    let out = coincast_command(
        &[
            "--data-dir",
            arg(dir.path()),
            "predict",
            "--coin",
            "synthcoin",
            "--json",
        ],
        &[],
    )
    .current_dir(elsewhere.path())
    .output()
    .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_fixture_forecast(&out.stdout);
    let store = Store::open(dir.path()).expect("open");
    let (version, path): (i64, String) = store
        .conn()
        .query_row(
            "SELECT (SELECT max(version) FROM schema_migrations), artifact_path FROM model_versions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("row");
    assert_eq!(version, SCHEMA_VERSION);
    assert!(path.starts_with("models/lstm-1-"), "{path}");
    // Every row came across, and states may now take values the old CHECKs refused.
    assert_eq!(
        store
            .conn()
            .query_row("SELECT count(*) FROM market_data", [], |r| r
                .get::<_, i64>(0))
            .expect("count"),
        1500
    );
    store
        .conn()
        .execute_batch("UPDATE pipeline_runs SET state = 'interrupted' WHERE run_id = 1")
        .expect("no CHECK on states");
    assert!(!dir.path().join("coincast.duckdb.pre-migration").exists());
}

#[test]
fn a_new_database_is_complete_and_checkpointed_before_first_use() {
    let dir = tempfile::tempdir().expect("dir");
    drop(Store::open(dir.path()).expect("open"));
    let wal = dir.path().join(format!("{DATABASE_FILE}.wal"));
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "a new database left a WAL to replay"
    );
}

/// Finding 1 of the crash-safety issue: `coincast serve` on an empty folder, killed after 4 s,
/// left a file that never opened again (the whole schema history sat in an unreplayable WAL).
#[test]
fn a_server_killed_while_starting_on_an_empty_folder_leaves_a_file_that_opens() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = format!("http://{}/api/v3", listener.local_addr().expect("addr"));
    drop(listener);
    for trial in 0..3 {
        let dir = tempfile::tempdir().expect("dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let bind = format!("127.0.0.1:{port}");
        let mut child = coincast_command(
            &["--data-dir", arg(dir.path()), "serve", "--bind", &bind],
            &[
                ("COINCAST__COINGECKO__BASE_URL", closed.as_str()),
                ("COINCAST__COINGECKO__MAX_RETRIES", "0"),
            ],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
        std::thread::sleep(Duration::from_millis(1000 + 1500 * trial));
        child.kill().expect("kill -9");
        child.wait().expect("wait");
        let found = inspect(dir.path());
        assert!(found.all_ok(), "trial {trial}: {found:?}");
    }
}

/// Makes the WAL of the (closed) database in `dir` unreplayable the way DuckDB 1.5 does:
/// an ALTER ... ADD COLUMN with a DEFAULT on a table whose key defaults to nextval, never
/// checkpointed (duckdb/duckdb#18259). `extra_hours` more hours of the first coin go in first.
fn write_unreplayable_wal(dir: &Path, extra_hours: i64) {
    let conn = duckdb::Connection::open(dir.join(DATABASE_FILE)).expect("raw open");
    conn.execute_batch(&format!(
        "PRAGMA disable_checkpoint_on_shutdown;
         SET wal_autocheckpoint = '1GB';
         INSERT INTO market_data
           SELECT coin_id, vs_currency, ts + to_hours(h), price, market_cap, total_volume,
                  source_ts, batch_id, merged_at
           FROM (SELECT * FROM market_data WHERE coin_id = (SELECT min(coin_id) FROM market_data)
                 ORDER BY ts DESC LIMIT 1), range(1, {extra_hours} + 1) t(h);
         CREATE SEQUENCE probe_seq;
         CREATE TABLE probe (id BIGINT DEFAULT nextval('probe_seq'));
         ALTER TABLE probe ADD COLUMN note VARCHAR DEFAULT 'x';"
    ))
    .expect("write the WAL");
    drop(conn);
    // Proof that DuckDB itself cannot open it now.
    let err = duckdb::Connection::open(dir.join(DATABASE_FILE))
        .expect_err("DuckDB replays it")
        .to_string();
    assert!(err.contains("replaying WAL"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreplayable_wal_is_set_aside_recorded_and_resolved_by_the_next_replay() {
    let seed = small_seed();
    let dir = tempfile::tempdir().expect("dir");
    let d = arg(dir.path());
    run_ok(&replay_args(dir.path(), seed.path()));
    let before = counts(&Store::open(dir.path()).expect("open"));
    write_unreplayable_wal(dir.path(), 5);

    let out = coincast(&["--data-dir", d, "status", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let incident = &status["open_incidents"][0];
    assert_eq!(incident["kind"], "unreplayable_wal", "{status}");
    assert!(incident["detail"]
        .as_str()
        .is_some_and(|d| d.contains("replaying WAL")));
    // Kept, byte for byte, under the recorded name; never deleted.
    let kept = dir
        .path()
        .join(incident["kept_file"].as_str().expect("kept"));
    assert_eq!(
        std::fs::metadata(&kept).expect("kept WAL").len() as i64,
        incident["kept_bytes"].as_i64().expect("bytes")
    );
    assert!(incident["missing"][0]["newest_kept_hour"].is_string());
    // The checkpointed data opened; what was only in the WAL is gone.
    assert_eq!(counts(&Store::open(dir.path()).expect("open")), before);
    assert!(text(&out).contains("INCIDENT"), "{}", text(&out));

    // The server shows it (metric and overview) until a successful run.
    let mut settings = coincast::config::Settings::load_with_env(None, Vec::new()).expect("cfg");
    settings.data_dir = dir.path().to_path_buf();
    settings.serve.pipeline_schedule = String::new();
    settings.serve.retrain_schedule = String::new();
    {
        let metrics = std::sync::Arc::new(coincast::runtime::Metrics::new().expect("metrics"));
        let (worker, state) = coincast::runtime::Worker::start(
            settings.clone(),
            metrics,
            crate::support::retrain_in_child(),
        )
        .expect("worker");
        let server = crate::support::LocalServer::start(state).await;
        let base = server.base.clone();
        let http = reqwest::Client::new();
        let metrics = crate::support::get_text(&http, &format!("{base}/metrics")).await;
        assert!(
            metrics.contains(r#"coincast_store_incidents_open{kind="unreplayable_wal"} 1"#),
            "{metrics}"
        );
        let overview = crate::support::get_text(&http, &format!("{base}/api/overview")).await;
        assert!(overview.contains("StoreIncident"), "{overview}");
        server.stop().await;
        tokio::task::spawn_blocking(move || worker.stop())
            .await
            .expect("stop");
    }

    run_ok(&replay_args(dir.path(), seed.path()));
    let out = coincast(&["--data-dir", d, "status", "--json"], &[]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(status["open_incidents"], serde_json::json!([]), "{status}");
    assert!(kept.exists(), "the kept WAL is never deleted");
    assert_eq!(
        one(
            dir.path(),
            "SELECT count(*) FROM incidents WHERE resolution LIKE 'run #% (replay) succeeded%'"
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_restored_into_a_wiped_folder_serves_the_same_champion() {
    let seed = small_seed();
    let dir = tempfile::tempdir().expect("dir");
    let d = arg(dir.path());
    run_ok(&replay_args(dir.path(), seed.path()));
    run_ok(&train_args(dir.path()));
    let store = Store::open(dir.path()).expect("open");
    let model_id: String = store
        .conn()
        .query_row(
            "SELECT model_id FROM model_versions WHERE alias = 'champion'",
            [],
            |r| r.get(0),
        )
        .expect("a champion");
    drop(store);

    let mut settings = coincast::config::Settings::load_with_env(None, Vec::new()).expect("cfg");
    settings.data_dir = dir.path().to_path_buf();
    settings.coins = vec!["solana".into(), "ripple".into()];
    settings.serve.pipeline_schedule = String::new();
    settings.serve.retrain_schedule = String::new();
    settings.serve.api_token = "backup-token".to_string().into();
    let http = reqwest::Client::new();
    let predict = |base: String| {
        let http = http.clone();
        async move {
            let r = crate::support::post_json(
                &http,
                &format!("{base}/predict"),
                r#"{"coin_id": "solana", "hours_ahead": 6}"#,
            )
            .await;
            (r["model_version"].clone(), r["predicted_price"].clone())
        }
    };

    // While the server holds the file, `coincast backup` goes through it.
    let archive = tempfile::tempdir().expect("backups");
    let backup = archive.path().join("coincast.tar");
    let served_before = {
        let metrics = std::sync::Arc::new(coincast::runtime::Metrics::new().expect("metrics"));
        let (worker, state) = coincast::runtime::Worker::start(
            settings.clone(),
            metrics,
            crate::support::retrain_in_child(),
        )
        .expect("worker");
        let server = crate::support::LocalServer::start(state).await;
        let base = server.base.clone();
        let served = predict(base.clone()).await;
        let bind = base.trim_start_matches("http://").to_string();
        let backup_arg = backup.clone();
        let d2 = d.to_string();
        let out = tokio::task::spawn_blocking(move || {
            coincast(
                &["--data-dir", &d2, "backup", arg(&backup_arg)],
                &[
                    ("COINCAST__SERVE__BIND", bind.as_str()),
                    ("COINCAST__SERVE__API_TOKEN", "backup-token"),
                ],
            )
        })
        .await
        .expect("backup");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(
            text(&out).contains(&format!("champion {model_id}")),
            "{}",
            text(&out)
        );
        // Without the token the server refuses, and the message says why.
        let d2 = d.to_string();
        let bind = base.trim_start_matches("http://").to_string();
        let other = archive.path().join("refused.tar");
        let out = tokio::task::spawn_blocking(move || {
            coincast(
                &["--data-dir", &d2, "backup", arg(&other)],
                &[("COINCAST__SERVE__BIND", bind.as_str())],
            )
        })
        .await
        .expect("backup");
        assert_ne!(out.status.code(), Some(0));
        assert!(text(&out).contains("serve.api_token"), "{}", text(&out));
        server.stop().await;
        tokio::task::spawn_blocking(move || worker.stop())
            .await
            .expect("stop");
        served
    };
    assert!(served_before.0.is_string(), "{served_before:?}");

    // Wipe, restore, serve.
    std::fs::remove_dir_all(dir.path()).expect("wipe");
    let out = coincast(&["--data-dir", d, "restore", arg(&backup)], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let metrics = std::sync::Arc::new(coincast::runtime::Metrics::new().expect("metrics"));
    let (worker, state) = coincast::runtime::Worker::start(
        settings.clone(),
        metrics,
        crate::support::retrain_in_child(),
    )
    .expect("worker");
    let server = crate::support::LocalServer::start(state).await;
    assert_eq!(predict(server.base.clone()).await, served_before);
    server.stop().await;
    tokio::task::spawn_blocking(move || worker.stop())
        .await
        .expect("stop");

    // A restore never overwrites a database silently; --force keeps the old one beside it.
    let out = coincast(&["--data-dir", d, "restore", arg(&backup)], &[]);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out).contains("--force"), "{}", text(&out));
    let out = coincast(&["--data-dir", d, "restore", "--force", arg(&backup)], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let kept = std::fs::read_dir(dir.path())
        .expect("ls")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("before-restore"))
        .count();
    assert_eq!(kept, 1);
    // A damaged archive is refused and changes nothing.
    let damaged = archive.path().join("damaged.tar");
    let mut bytes = std::fs::read(&backup).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&damaged, bytes).expect("write");
    let other = tempfile::tempdir().expect("dir");
    let out = coincast(
        &["--data-dir", arg(other.path()), "restore", arg(&damaged)],
        &[],
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!other.path().join(DATABASE_FILE).exists());
}
