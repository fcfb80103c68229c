//! Monitoring end to end: served predictions are logged, scored by the next pipeline run once
//! their hour arrives, and become live accuracy; the champion's feature PSI is stored and served
//! as a metric.

use std::sync::Arc;

use chrono::DateTime;
use coincast::monitor::live_accuracy;
use coincast::runtime::{Metrics, PredictionLog, Publication, Runtime, Snapshot};
use reqwest::StatusCode;

use crate::support::{
    get_text, post_json, real_coingecko, serve_on_localhost, small_spec, truncated_coin_file,
    TestApp,
};

/// 2023-12-28T00:00:00Z: the data is cut there, and the rest arrives later.
const CUT_MS: f64 = 1_703_721_600_000.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_are_logged_then_scored_when_their_hour_arrives() {
    let app = TestApp::new(&[]);
    let early = tempfile::tempdir().expect("dir");
    truncated_coin_file(early.path(), "solana", CUT_MS);
    app.replay(early.path(), Some(&["solana"])).await;
    let mut spec = small_spec();
    spec.epochs = 1;
    spec.samples_per_epoch = 1000;
    let champion = app.lstm_champion(&["solana"], spec);

    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let log = PredictionLog::start(
        app.store.conn().try_clone().expect("conn"),
        metrics.clone(),
        "test",
    )
    .expect("log");
    let snapshot = Snapshot::load(app.store.conn(), &app.settings);
    let state = Arc::new(
        Runtime::new(snapshot, app.settings.clone(), metrics.clone()).with_prediction_log(log),
    );
    let base = serve_on_localhost(state.clone()).await;
    let http = reqwest::Client::new();
    // The same forecast asked twice counts once in live accuracy; a refused request is not logged.
    for (body, expected) in [
        (r#"{"coin_id": "solana", "hours_ahead": 1}"#, StatusCode::OK),
        (r#"{"coin_id": "solana", "hours_ahead": 1}"#, StatusCode::OK),
        (
            r#"{"coin_id": "solana", "hours_ahead": 24}"#,
            StatusCode::OK,
        ),
        (
            r#"{"coin_id": "solana", "hours_ahead": 25}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let r = http
            .post(format!("{base}/predict"))
            .header("content-type", "application/json")
            .header("x-request-id", "monitor-test")
            .body(body)
            .send()
            .await
            .expect("predict");
        assert_eq!(r.status(), expected, "{body}");
    }
    let flushed = state.clone();
    tokio::task::spawn_blocking(move || flushed.prediction_log().expect("log").flush())
        .await
        .expect("flush");
    // The two identical forecasts of one flush are one row that counts both requests.
    assert_eq!(app.count("SELECT count(*) FROM predictions"), 2);
    assert_eq!(
        app.count("SELECT sum(served_count) FROM predictions WHERE instance = 'test'"),
        3
    );
    assert_eq!(
        app.count("SELECT count(*) FROM prediction_segments WHERE requests = 3"),
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM predictions
             WHERE request_id = 'monitor-test' AND model_id = '{champion}'
               AND as_of = TIMESTAMPTZ '2023-12-27 23:00:00+00'
               AND target_ts = as_of + to_hours(horizon)
               AND requested_at BETWEEN now() - INTERVAL 10 MINUTE AND now()
               AND lower < predicted_price AND predicted_price < upper
               AND actual_price IS NULL"
        )),
        2
    );

    // The rest of the data arrives: the next run scores both.
    let report = app.replay(&real_coingecko(), Some(&["solana"])).await;
    let monitor = report.summary.monitor.expect("monitor task ran");
    assert_eq!(monitor.scored_predictions, 2);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM predictions p JOIN market_data m
               ON m.coin_id = p.coin_id AND m.ts = p.target_ts
             WHERE p.actual_price = m.price
               AND abs(p.error - (p.predicted_price - m.price)) < 1e-9
               AND p.covered = (m.price BETWEEN p.lower AND p.upper)
               AND p.direction_correct = (sign(p.predicted_price - p.current_price) = sign(m.price - p.current_price))
               AND p.scored_at IS NOT NULL"
        ),
        2
    );
    // Online coverage control: the champion's forecast from every origin after its training
    // whose target has arrived moved its ACI level, per horizon, whether or not a client asked.
    let trained_until = coincast::model::registry::champion(app.store.conn())
        .expect("q")
        .expect("champion")
        .trained_until_hour
        .expect("trained until");
    let newest = app.count(
        "SELECT CAST(epoch(max(ts)) AS BIGINT) // 3600 FROM market_data WHERE coin_id = 'solana'",
    );
    let coverage = monitor
        .coverage
        .iter()
        .find(|c| c.model_id == champion)
        .expect("the champion's coverage update");
    // Origins trained_until + 1 ..= newest - h for each horizon h.
    let expected: i64 = (1..=24).map(|h| newest - h - trained_until).sum();
    assert_eq!(coverage.scored as i64, expected);
    let aci = coincast::monitor::coverage::load_state(app.store.conn(), &champion).expect("state");
    assert_eq!(aci.len(), 24, "{aci:?}");
    for row in &aci {
        assert_eq!(row.updates, newest - row.horizon as i64 - trained_until);
        assert_eq!(row.last_target_hour, Some(newest));
        // alpha moved by gamma / h * (0.1 - miss) per outcome (never near its bounds here).
        let gamma = 0.005 / row.horizon as f64;
        let expected_alpha = 0.1 + gamma * (0.1 * row.updates as f64 - row.misses as f64);
        assert!((row.alpha - expected_alpha).abs() < 1e-9, "{row:?}");
    }
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM aci_log WHERE run_id = {} AND model_id = '{champion}'",
            report.run_id
        )),
        24
    );
    // Scored once: the next run finds nothing new, and ACI does not move.
    let again = app.replay(&real_coingecko(), Some(&["solana"])).await;
    let again_monitor = again.summary.monitor.expect("monitor");
    assert_eq!(again_monitor.scored_predictions, 0);
    assert!(again_monitor.coverage.iter().all(|c| c.scored == 0));
    assert_eq!(
        coincast::monitor::coverage::load_state(app.store.conn(), &champion).expect("state"),
        aci
    );
    // The live reliability diagram of the champion's recipe: every outcome checked, at each
    // tested level, covered more often at higher levels.
    let live: Vec<(f64, i64, i64)> = {
        let conn = app.store.conn();
        let mut stmt = conn
            .prepare(include_str!("../../sql/reports/dash_live_reliability.sql"))
            .expect("query");
        stmt.query_map([&champion], |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    assert_eq!(live.len(), 12, "{live:?}");
    assert!(live.iter().all(|&(_, _, n)| n == expected), "{live:?}");
    assert!(live.windows(2).all(|w| w[0].1 <= w[1].1), "{live:?}");
    let at_90 = live
        .iter()
        .find(|(l, ..)| (l - 0.9).abs() < 1e-9)
        .expect("90%");
    assert!(at_90.1 > 0 && at_90.1 < expected, "{at_90:?}");

    // A refit of the same recipe (the daily retrain) goes on at the level the recipe reached,
    // and sees its reliability counts; a new recipe starts at nominal.
    let mut same = small_spec();
    same.epochs = 1;
    same.samples_per_epoch = 1000;
    let refit = app.lstm_champion(&["solana"], same.clone());
    assert_ne!(refit, champion);
    assert_eq!(
        coincast::monitor::coverage::load_state(app.store.conn(), &refit).expect("state"),
        aci
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM live_reliability r JOIN model_recipe_keys k USING (recipe_key)
             WHERE k.model_id = '{refit}' AND r.outcomes = {expected}"
        )),
        12
    );
    let other = app.lstm_champion(
        &["solana"],
        coincast::model::lstm::LstmSpec {
            hidden_size: same.hidden_size + 1,
            ..same
        },
    );
    assert!(
        coincast::monitor::coverage::load_state(app.store.conn(), &other)
            .expect("state")
            .is_empty()
    );
    coincast::model::registry::promote(
        app.store.conn(),
        &champion,
        coincast::model::registry::GateCheck::Force,
    )
    .expect("the first champion back");

    // Live accuracy 24 h after as_of: both distinct forecasts (h1 and h24) are in both windows.
    let as_of = DateTime::parse_from_rfc3339("2023-12-27T23:00:00Z")
        .expect("time")
        .to_utc();
    let live = live_accuracy(app.store.conn(), as_of + chrono::Duration::hours(24))
        .expect("live accuracy");
    assert_eq!(live.len(), 2, "{live:?}");
    let (actual_1h, predicted_1h): (f64, f64) = app
        .store
        .conn()
        .query_row(
            "SELECT any_value(actual_price), any_value(predicted_price) FROM predictions WHERE horizon = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("h1");
    let (actual_24h, predicted_24h): (f64, f64) = app
        .store
        .conn()
        .query_row(
            "SELECT actual_price, predicted_price FROM predictions WHERE horizon = 24",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("h24");
    let expected_mae =
        ((predicted_1h - actual_1h).abs() + (predicted_24h - actual_24h).abs()) / 2.0;
    for a in &live {
        assert_eq!(a.coin_id, "solana");
        assert_eq!(a.forecasts, 2, "{a:?}");
        assert!(
            (a.mae - expected_mae).abs() < 1e-9,
            "{a:?} vs {expected_mae}"
        );
        assert!((0.0..=1.0).contains(&a.coverage));
    }
    // An hour later the 1-hour forecast has left the 24 h window.
    let later = live_accuracy(app.store.conn(), as_of + chrono::Duration::hours(25)).expect("live");
    let day = later
        .iter()
        .find(|a| a.window == "24h")
        .expect("24h window");
    assert_eq!(day.forecasts, 1);

    // PSI: one row per input of the champion, from the newest 24 hours.
    let psi = monitor.psi.expect("PSI computed");
    assert_eq!(psi.features.len(), 4, "{psi:?}");
    assert!(psi
        .features
        .iter()
        .all(|f| f.observations == 24 && f.psi >= 0.0));
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM feature_psi WHERE model_id = '{champion}' AND run_id = {}",
            report.run_id
        )),
        4
    );

    // Served as metrics once the snapshot is reloaded (live windows as of a chosen time here,
    // since the real data is historical).
    let mut snapshot = Snapshot::load(app.store.conn(), &app.settings);
    snapshot.live_accuracy = live;
    let publication = state
        .publisher()
        .publish(state.publisher().begin(), snapshot);
    assert!(
        matches!(publication, Publication::Published { .. }),
        "{publication:?}"
    );
    // /predict draws the champion's interval at its ACI level.
    let answer = post_json(
        &http,
        &format!("{base}/predict"),
        r#"{"coin_id": "solana", "hours_ahead": 1}"#,
    )
    .await;
    let h1 = aci.iter().find(|r| r.horizon == 1).expect("h1");
    assert_eq!(answer["confidence_interval"]["level"].as_f64(), Some(0.9));
    assert_eq!(
        answer["confidence_interval"]["drawn_at_level"].as_f64(),
        Some(h1.level())
    );
    let text = get_text(&http, &format!("{base}/metrics")).await;
    for series in [
        r#"coincast_feature_psi{feature="price_change_1h"}"#,
        r#"coincast_live_mae{coin_id="solana",window="24h"}"#,
        r#"coincast_live_interval_coverage{coin_id="solana",window="7d"}"#,
        r#"coincast_live_direction_accuracy{coin_id="solana",window="7d"}"#,
        r#"coincast_live_scored_forecasts{coin_id="solana",window="24h"} 2"#,
        "coincast_predictions_logged_total 3",
        r#"coincast_aci_alpha{coin_id="solana",horizon="1",role="champion"}"#,
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_champion_the_floor_is_registered_and_its_monitored_features_get_psi() {
    let app = TestApp::new(&[]);
    let report = app.replay(&real_coingecko(), Some(&["solana"])).await;
    let monitor = report.summary.monitor.expect("monitor task ran");
    assert_eq!(monitor.scored_predictions, 0);
    // The floor reads no feature, yet the configured ones are watched.
    let psi = monitor.psi.expect("PSI of the configured features");
    let spec = coincast::model::lstm::LstmSpec::parse(
        "models/lstm.toml",
        coincast::model::lstm::DEFAULT_SPEC,
    )
    .expect("spec");
    // Calendar encodings are not watched (a day of them always differs from years of them).
    let watched = spec
        .features
        .iter()
        .filter(|f| !coincast::monitor::psi::is_calendar_feature(f))
        .count();
    assert_eq!(psi.features.len(), watched);
    assert!(watched >= 10 && watched < spec.features.len());
    let floor = coincast::model::registry::floor(app.store.conn())
        .expect("q")
        .expect("a floor");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM feature_psi WHERE model_id = '{}'",
            floor.model_id
        )),
        watched as i64
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM task_runs WHERE run_id = {} AND task = 'monitor' AND state = 'success'",
            report.run_id
        )),
        1
    );
    // Its Gaussian intervals are not what a trained floor of the same recipe serves: its ACI
    // state is its own.
    assert_eq!(
        app.string(&format!(
            "SELECT recipe_key FROM model_recipe_keys WHERE model_id = '{}'",
            floor.model_id
        )),
        format!("model:{}", floor.model_id)
    );
}
