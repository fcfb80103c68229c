//! The binary as scripts use it: exit codes and messages (lock, config errors, quarantine).

use crate::support::{coincast, nan_fixture, real_coingecko, text, TestApp};

#[test]
fn a_second_process_is_told_the_database_is_in_use() {
    let app = TestApp::new(&[]);
    let dir = app.dir.path().to_str().expect("utf-8 path");
    let out = coincast(&["--data-dir", dir, "status"], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("in use by another process"), "{msg}");
    assert!(
        !msg.contains("Conflicting lock"),
        "raw DuckDB error leaked: {msg}"
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let store = coincast::store::Store::open(dir.path()).expect("open");
        store
            .conn()
            .execute_batch("INSERT INTO schema_migrations (version, name, checksum) VALUES (999, 'future', 'x')")
            .expect("insert");
    }
    let err = coincast::store::Store::open(dir.path())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("newer coincast") && err.contains("999"),
        "{err}"
    );
    let out = coincast(
        &["--data-dir", dir.path().to_str().expect("utf-8"), "status"],
        &[],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
}

#[test]
fn config_errors_name_the_key_and_exit_2() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().to_str().expect("utf-8");
    let out = coincast(
        &["--data-dir", d, "status"],
        &[("COINCAST__COINGECKO__RATE", "5")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("rate"), "{}", text(&out));

    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[quality.rules.absurd_jump]\nthreshold = \"high\"\n").expect("write");
    let out = coincast(
        &[
            "--data-dir",
            d,
            "--config",
            cfg.to_str().expect("utf-8"),
            "status",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("quality.rules.absurd_jump.threshold"),
        "{}",
        text(&out)
    );

    let out = coincast(&["--data-dir", d, "ingest", "--coins", "Bitcoin"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--coins"), "{}", text(&out));
}

#[test]
fn replay_status_and_recheck_from_the_command_line() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().to_str().expect("utf-8");
    let data = real_coingecko();
    let data = data.to_str().expect("utf-8");
    let out = coincast(&["--data-dir", d, "replay", data, "--coins", "solana"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A corrupt batch: quarantined, exit 3, the failing rule printed.
    let nan = nan_fixture();
    let out = coincast(
        &["--data-dir", d, "replay", nan.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("QUARANTINED") && t.contains("numeric_types"),
        "{t}"
    );

    let out = coincast(&["--data-dir", d, "status", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(status["coins"][0]["coin_id"], "solana");
    assert_eq!(status["coins"][0]["hours"], 23_987);
    assert_eq!(status["coins"][0]["gaps"], 5);
    assert_eq!(status["problem_batches"][0]["state"], "quarantined");

    // Re-checking under the same rules quarantines it again (exit 3), and an unknown batch is an error.
    let out = coincast(&["--data-dir", d, "quality", "--quarantined"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = coincast(&["--data-dir", d, "quality", "--batch", "777"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("batch 777 does not exist"),
        "{}",
        text(&out)
    );

    let out = coincast(&["--data-dir", d, "replay", "/nonexistent/dir"], &[]);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out).contains("/nonexistent/dir"), "{}", text(&out));
}

#[test]
fn an_unreachable_source_exits_5_and_keeps_what_is_stored() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().to_str().expect("utf-8");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}/api/v3", listener.local_addr().expect("addr"));
    drop(listener);
    let env = [
        ("COINCAST__COINGECKO__BASE_URL", base.as_str()),
        ("COINCAST__COINGECKO__MAX_RETRIES", "0"),
        ("COINCAST__COINGECKO__CALLS_PER_MINUTE", "6000"),
        ("COINCAST__PIPELINE__TASK_ATTEMPTS", "1"),
    ];
    let out = coincast(&["--data-dir", d, "run"], &env);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let printed = text(&out);
    assert!(printed.contains("no coin could be fetched"), "{printed}");
    let out = coincast(&["--data-dir", d, "status"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("failed"), "{}", text(&out));
    // The run's summary agrees with what it recorded.
    let (requests, failed, failed_id, runs) = {
        let store = coincast::store::Store::open(dir.path()).expect("open");
        store
            .conn()
            .query_row(
                "SELECT count(*) FILTER (WHERE source = 'coingecko'),
                        count(*) FILTER (WHERE state = 'failed'),
                        min(batch_id) FILTER (WHERE state = 'failed'),
                        (SELECT count(*) FROM pipeline_runs)
                 FROM raw_batches",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .expect("counts")
    };
    assert!(failed > 0, "{printed}");
    assert!(
        printed.contains(&format!("{requests} request(s)"))
            && printed.contains(&format!("{failed} failed batch(es)")),
        "printed {printed}, recorded {requests} requests and {failed} failed batches"
    );
    // A failed fetch has no body to check again: refused at once (exit 2), no run recorded.
    let started = std::time::Instant::now();
    let id = failed_id.to_string();
    let out = coincast(&["--data-dir", d, "quality", "--batch", &id], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no stored body"), "{}", text(&out));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "no retries"
    );
    let store = coincast::store::Store::open(dir.path()).expect("open");
    let runs_after: i64 = store
        .conn()
        .query_row("SELECT count(*) FROM pipeline_runs", [], |r| r.get(0))
        .expect("runs");
    assert_eq!(runs_after, runs);
}

/// What a new user trips over on the command line (issue 19): a closed pipe, a mistyped data
/// folder, the exit code of their own mistakes, the environment's boolean words.
#[test]
fn read_only_commands_never_create_a_data_folder() {
    let dir = tempfile::tempdir().expect("dir");
    let typo = dir.path().join("d1typo");
    let d = typo.to_str().expect("utf-8");
    for args in [
        vec!["status"],
        vec!["models", "list"],
        vec!["models", "show", "lstm-1"],
        vec!["models", "rollback"],
        vec!["predict", "--coin", "bitcoin"],
        vec!["quality", "--batch", "1"],
        vec!["features"],
        vec!["backup", "/nonexistent/backup.tar"],
        vec!["export"],
    ] {
        let mut all = vec!["--data-dir", d];
        all.extend(&args);
        let out = coincast(&all, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("no coincast database in"),
            "{args:?}: {}",
            text(&out)
        );
        assert!(!typo.exists(), "{args:?} created {d}");
    }
}

#[test]
fn the_users_own_mistakes_exit_2() {
    let app = TestApp::new(&[]);
    let d = app.dir.path().to_str().expect("utf-8");
    // The server (here: the test) holds the file: backup and export need its token.
    for args in [vec!["backup", "/tmp/coincast-never.tar"], vec!["export"]] {
        let mut all = vec!["--data-dir", d];
        all.extend(&args);
        let out = coincast(&all, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("serve.api_token"), "{}", text(&out));
    }
    drop(app.store);
    // A coin that is neither configured nor stored.
    let out = coincast(&["--data-dir", d, "predict", "--coin", "dogecoin"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("neither configured"), "{}", text(&out));
    assert!(!text(&out).contains("coincast replay"), "{}", text(&out));
    // An unknown model.
    let out = coincast(
        &[
            "--data-dir",
            d,
            "predict",
            "--coin",
            "bitcoin",
            "--model",
            "nope",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = coincast(&["--data-dir", d, "models", "show", "nope"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // A restore into a folder that holds a database.
    let backup = app.dir.path().join("b.tar");
    let out = coincast(
        &["--data-dir", d, "backup", backup.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = coincast(
        &["--data-dir", d, "restore", backup.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("already holds a database"),
        "{}",
        text(&out)
    );
}

#[test]
fn log_json_takes_the_usual_boolean_words() {
    for word in ["1", "0", "true", "false", "yes", "no", "on", "off"] {
        let out = coincast(&["quality"], &[("COINCAST_LOG_JSON", word)]);
        assert_eq!(out.status.code(), Some(0), "{word}: {}", text(&out));
    }
    let out = coincast(&["quality"], &[("COINCAST_LOG_JSON", "maybe")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn a_closed_pipe_ends_the_output_and_never_the_command() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().to_str().expect("utf-8");
    let data = real_coingecko();
    // Both streams closed before the command writes: a replay still runs to its end.
    let mut child = crate::support::coincast_command(
        &[
            "--data-dir",
            d,
            "replay",
            data.to_str().expect("utf-8"),
            "--coins",
            "solana",
        ],
        &[],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn");
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{status:?}");
    {
        let store = coincast::store::Store::open(dir.path()).expect("open");
        let state: String = store
            .conn()
            .query_row(
                "SELECT state FROM pipeline_runs ORDER BY run_id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .expect("run");
        assert_eq!(state, "success");
    }
    // `status | head -1`, `models list | head`: no panic, exit 0.
    for args in [
        vec!["status"],
        vec!["status", "--json"],
        vec!["models", "list"],
    ] {
        let mut all = vec!["--data-dir", d];
        all.extend(&args);
        let mut child = crate::support::coincast_command(&all, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn evaluate_prints_the_walk_forward_table_of_every_baseline() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().to_str().expect("utf-8");
    let data = real_coingecko();
    let out = coincast(
        &[
            "--data-dir",
            d,
            "replay",
            data.to_str().expect("utf-8"),
            "--coins",
            "solana",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = coincast(
        &[
            "--data-dir",
            d,
            "evaluate",
            "--coins",
            "solana,cardano",
            "--windows",
            "4",
            "--horizons",
            "1,24",
            "--json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("skipping cardano"), "{}", text(&out));
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(eval["folds"], 4);
    let rows = eval["rows"].as_array().expect("rows");
    assert_eq!(
        rows.len(),
        9 * 2,
        "the nine classical candidates x two horizons"
    );
    for model in [
        "persistence",
        "persistence_ewma",
        "persistence_garch",
        "persistence_har",
        "persistence_mix",
        "drift",
        "sma_trend",
        "ema_trend",
        "linear",
    ] {
        for h in [1, 24] {
            let row = rows
                .iter()
                .find(|r| r["model"] == model && r["horizon"] == h)
                .unwrap_or_else(|| panic!("{model} h{h} missing"));
            assert_eq!(row["n"], 4 * 168);
            let coverage = row["coverage"].as_f64().expect("coverage");
            assert!(
                (0.6..=1.0).contains(&coverage),
                "{model} h{h}: coverage {coverage}"
            );
        }
    }
    let persistence = rows
        .iter()
        .find(|r| r["model"] == "persistence" && r["horizon"] == 1)
        .expect("row");
    assert_eq!(persistence["skill"].as_f64(), Some(0.0));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "horizon = 30\n").expect("write");
    let out = coincast(
        &[
            "--data-dir",
            d,
            "evaluate",
            "--protocol",
            bad.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out).contains("bad.toml"), "{}", text(&out));
}

#[test]
fn a_file_with_a_bad_name_is_skipped_and_the_others_load() {
    let dir = tempfile::tempdir().expect("dir");
    let files = dir.path().join("files");
    std::fs::create_dir(&files).expect("mkdir");
    std::fs::copy(
        real_coingecko().join("solana.json"),
        files.join("solana.json"),
    )
    .expect("copy");
    std::fs::copy(
        real_coingecko().join("cardano.json"),
        files.join("bit coin.json"),
    )
    .expect("copy");
    let d = dir.path().join("data");
    let d = d.to_str().expect("utf-8");
    let out = coincast(
        &["--data-dir", d, "replay", files.to_str().expect("utf-8")],
        &[("COINCAST__COINGECKO__BASE_URL", "http://127.0.0.1:9")],
    );
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(3), "{msg}");
    assert!(
        msg.contains("bit coin.json") && msg.contains("not a CoinGecko coin id"),
        "{msg}"
    );
    assert_eq!(msg.matches("skipped").count(), 1, "said once: {msg}");
    assert!(msg.contains("solana") && msg.contains("merged"), "{msg}");
}

#[test]
fn an_out_of_range_number_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().to_str().expect("utf-8");
    let out = coincast(
        &["--data-dir", d, "status"],
        &[("COINCAST__SERVE__MAX_BODY_BYTES", "99999999999999999999999")],
    );
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(msg.contains("serve.max_body_bytes"), "{msg}");
}
