//! Replay of the real recorded data, idempotence, late data, and re-checking quarantined batches.

use crate::support::{nan_fixture, real_coingecko, write_chart, TestApp, H, T0};
use coincast::pipeline::RunState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_the_real_data_merges_every_coin() {
    let app = TestApp::new(&[]);
    let report = app.replay(&real_coingecko(), None).await;
    assert_eq!(report.state, RunState::Success, "{:?}", report.summary);
    assert_eq!(report.summary.merged, 5);
    assert_eq!(report.summary.quarantined, 0);
    // Every coin: all its hours, one feature row per hour.
    for (coin, hours) in [
        ("bitcoin", 55_816),
        ("ethereum", 55_817),
        ("cardano", 29_882),
        ("solana", 23_987),
        ("ripple", 23_987),
    ] {
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) FROM market_data WHERE coin_id = '{coin}'"
            )),
            hours,
            "{coin}"
        );
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) FROM features WHERE coin_id = '{coin}'"
            )),
            hours,
            "{coin}"
        );
    }
    // The run and its four tasks are recorded.
    assert_eq!(
        app.count("SELECT count(*) FROM task_runs WHERE state = 'success'"),
        4
    );
    assert_eq!(
        app.string("SELECT state FROM pipeline_runs"),
        "success".to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_with_nan_volumes_is_quarantined_and_kept_byte_for_byte() {
    let app = TestApp::new(&[]);
    let report = app.replay(&nan_fixture(), None).await;
    assert_eq!(report.state, RunState::Partial);
    assert_eq!(report.summary.merged, 0);
    assert_eq!(report.summary.quarantined, 1);
    let bad = &report.summary.gated[0];
    assert_eq!(bad.coin_id, "nancoin");
    assert!(!bad.merged);
    assert!(
        bad.problems
            .iter()
            .any(|p| p.starts_with("numeric_types (error)") && p.contains("NaN")),
        "{:?}",
        bad.problems
    );
    assert!(bad
        .problems
        .iter()
        .any(|p| p.starts_with("null_share (error)")));
    assert_eq!(app.count("SELECT count(*) FROM market_data"), 0);
    let size = std::fs::metadata(nan_fixture().join("nancoin.json"))
        .expect("file")
        .len() as i64;
    assert_eq!(
        app.count("SELECT body_bytes FROM raw_batches WHERE state = 'quarantined'"),
        size
    );
    assert_eq!(
        app.count("SELECT octet_length(body) FROM raw_batches WHERE coin_id = 'nancoin'"),
        size
    );
    // 120 NaN points; quality.max_failing_rows keeps the first 100.
    assert_eq!(
        app.count("SELECT count(*) FROM quality_violations WHERE rule = 'numeric_types'"),
        100
    );
    assert_eq!(
        app.string("SELECT state FROM pipeline_runs"),
        "partial".to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_same_data_twice_changes_nothing() {
    let app = TestApp::new(&[]);
    let coins = Some(&["solana"][..]);
    app.replay(&real_coingecko(), coins).await;
    let before = app.table_hash(
        "market_data",
        "coin_id, ts, price, market_cap, total_volume, source_ts, batch_id",
    );
    let features_before = app.table_hash("features", "features.*");
    let report = app.replay(&real_coingecko(), coins).await;
    assert_eq!(report.summary.merged, 1);
    assert_eq!(report.summary.gated[0].changed_hours, 0);
    assert_eq!(report.summary.feature_rows, 0, "nothing to rebuild");
    assert_eq!(
        before,
        app.table_hash(
            "market_data",
            "coin_id, ts, price, market_cap, total_volume, source_ts, batch_id"
        )
    );
    assert_eq!(features_before, app.table_hash("features", "features.*"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_and_out_of_order_hours_are_merged_and_rebuild_features_from_there() {
    let app = TestApp::new(&[]);
    let dir = tempfile::tempdir().expect("dir");
    // Hours 0..40 without 20..25, delivered newest first.
    let mut first: Vec<(i64, f64)> = (0..40)
        .filter(|h| !(20..25).contains(h))
        .map(|h| (T0 + h * H, 100.0 + h as f64))
        .collect();
    first.reverse();
    write_chart(dir.path(), "testcoin", &first);
    let r = app.replay(dir.path(), None).await;
    assert_eq!(r.summary.merged, 1, "{:?}", r.summary);
    assert!(r.summary.gated[0]
        .problems
        .iter()
        .any(|p| p.starts_with("hourly_gaps (warn)")));
    assert_eq!(app.count("SELECT count(*) FROM market_data"), 35);
    // Across the gap, lags mean hours: the hour after the gap has no 1h lag.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM features WHERE ts = make_timestamptz({}) AND price_lag_1h IS NULL",
            (T0 + 25 * H) * 1000
        )),
        1
    );
    // The missing hours arrive late.
    let late: Vec<(i64, f64)> = (15..30).map(|h| (T0 + h * H, 100.0 + h as f64)).collect();
    write_chart(dir.path(), "testcoin", &late);
    let r = app.replay(dir.path(), None).await;
    assert_eq!(r.summary.gated[0].changed_hours, 5);
    assert_eq!(app.count("SELECT count(*) FROM market_data"), 40);
    assert_eq!(app.count("SELECT count(*) FROM features"), 40);
    assert_eq!(
        app.count("SELECT count(*) FROM features WHERE price_lag_1h IS NULL"),
        1,
        "only the very first hour lacks a lag now"
    );
    // The incremental rebuild equals a full one.
    let incremental = app.table_hash("features", "features.*");
    coincast::features::rebuild_all(app.store.conn()).expect("rebuild");
    assert_eq!(incremental, app.table_hash("features", "features.*"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantined_batch_merges_after_the_rule_changes() {
    let dir = tempfile::tempdir().expect("dir");
    // A 2x jump: |ln 2| = 0.69 > 0.5.
    let points: Vec<(i64, f64)> = (0..30)
        .map(|h| (T0 + h * H, if h < 15 { 100.0 } else { 200.0 }))
        .collect();
    write_chart(dir.path(), "jumpy", &points);
    let strict = TestApp::new(&[]);
    let r = strict.replay(dir.path(), None).await;
    assert_eq!(r.summary.quarantined, 1);
    let reason = strict.string("SELECT reason FROM raw_batches");
    assert!(
        reason.contains("absurd_jump") && reason.contains("0.6931"),
        "{reason}"
    );
    assert_eq!(strict.count("SELECT count(*) FROM market_data"), 0);
    assert_eq!(
        strict.count("SELECT count(*) FROM staged_rows"),
        30,
        "quarantined rows stay staged for inspection"
    );

    // Same database, the threshold raised in config: re-check the batch.
    let mut settings = strict.settings.clone();
    settings.quality.rules.insert(
        "absurd_jump".into(),
        coincast::config::RuleOverride {
            threshold: Some(1.0),
            ..Default::default()
        },
    );
    let rules = coincast::quality::RuleSet::load(&settings.quality).expect("rules");
    let r = coincast::pipeline::run(
        &strict.store,
        &settings,
        &rules,
        "quality",
        coincast::pipeline::Extract::Recheck { batch_ids: vec![1] },
    )
    .await
    .expect("recheck");
    assert_eq!(r.state, RunState::Success, "{:?}", r.summary);
    assert_eq!(strict.count("SELECT count(*) FROM market_data"), 30);
    assert_eq!(strict.count("SELECT count(*) FROM features"), 30);
    assert_eq!(strict.string("SELECT state FROM raw_batches"), "merged");
    assert_eq!(strict.count("SELECT count(*) FROM staged_rows"), 0);
}
