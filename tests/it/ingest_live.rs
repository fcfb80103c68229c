//! The live CoinGecko client end to end against the test server: backfill in chunks, API keys,
//! 429s, 5xx, slow and truncated responses, unknown coins, incremental fetches.

use crate::support::coingecko_server::{CoinGeckoServer, Fault, OFFSET_MS};
use crate::support::{real_coingecko, t, TestApp};
use coincast::pipeline::RunState;

const UNTIL: &str = "2023-12-20T00:00:00Z";

async fn server() -> CoinGeckoServer {
    CoinGeckoServer::start(&real_coingecko(), &["bitcoin", "solana"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_walks_chunks_of_at_most_90_days_with_the_demo_key() {
    let server = server().await;
    let app = TestApp::with_server(
        &server.base_url(),
        &[
            ("COINCAST__COINGECKO__PLAN", "demo"),
            ("COINCAST__COINGECKO__API_KEY", "demo-key-123"),
        ],
    );
    let report = app.fetch(&["bitcoin"], t(UNTIL), 120).await;
    assert_eq!(report.state, RunState::Success, "{report:?}");

    let requests = server.requests();
    assert_eq!(requests.len(), 2, "120 days need two chunks");
    for r in &requests {
        assert_eq!(r.demo_key.as_deref(), Some("demo-key-123"));
        assert!(r.pro_key.is_none());
        let from: i64 = r.query["from"].parse().expect("from");
        let to: i64 = r.query["to"].parse().expect("to");
        let days = (to - from) as f64 / 86_400.0;
        assert!((2.0..=90.0).contains(&days), "chunk of {days} days");
        assert_eq!(r.query["vs_currency"], "usd");
    }
    // The key never reaches the database.
    assert_eq!(
        app.count("SELECT count(*) FROM raw_batches WHERE request LIKE '%demo-key%' OR decode(body) LIKE '%demo-key%'"),
        0
    );
    // Points were not on the hour: ts is truncated, source_ts keeps the provider's time.
    assert_eq!(
        app.count("SELECT count(*) FROM market_data WHERE ts <> date_trunc('hour', ts)"),
        0
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM market_data WHERE epoch_ms(source_ts) - epoch_ms(ts) <> {OFFSET_MS}"
        )),
        0
    );
    let hours = app.count("SELECT count(*) FROM market_data WHERE coin_id = 'bitcoin'");
    assert!(
        (120 * 24 - 30..=120 * 24 + 1).contains(&hours),
        "{hours} hours"
    );
    assert_eq!(app.count("SELECT count(*) FROM features"), hours);
    assert_eq!(
        app.count("SELECT count(*) FROM raw_batches WHERE state = 'merged'"),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pro_plan_sends_the_pro_header() {
    let server = server().await;
    let app = TestApp::with_server(
        &server.base_url(),
        &[
            ("COINCAST__COINGECKO__PLAN", "pro"),
            ("COINCAST__COINGECKO__API_KEY", "pro-key"),
        ],
    );
    app.fetch(&["solana"], t(UNTIL), 3).await;
    let r = &server.requests()[0];
    assert_eq!(r.pro_key.as_deref(), Some("pro-key"));
    assert!(r.demo_key.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried_and_every_response_is_kept() {
    let server = server().await;
    let reset = (chrono::Utc::now() + chrono::Duration::seconds(1))
        .format("%Y-%m-%d %H:%M:%S +0000")
        .to_string();
    server.push_fault(Fault::TooManyRequests {
        retry_after: Some("1".into()),
        ratelimit_reset: None,
    });
    server.push_fault(Fault::TooManyRequests {
        retry_after: None,
        ratelimit_reset: Some(reset),
    });
    server.push_fault(Fault::TooManyRequests {
        retry_after: None,
        ratelimit_reset: None,
    });
    let app = TestApp::with_server(
        &server.base_url(),
        &[("COINCAST__COINGECKO__MAX_RETRIES", "5")],
    );
    let started = std::time::Instant::now();
    let report = app.fetch(&["bitcoin"], t(UNTIL), 10).await;
    assert_eq!(
        report.state,
        RunState::Success,
        "retried attempts do not fail the run"
    );
    assert_eq!(report.summary.failed_attempts, 3);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1000),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(server.requests().len(), 4);
    assert_eq!(
        app.count("SELECT count(*) FROM raw_batches WHERE http_status = 429 AND state = 'failed' AND body_bytes > 0"),
        3
    );
    assert_eq!(
        app.count("SELECT count(*) FROM raw_batches WHERE state = 'merged'"),
        1
    );
    let reason = app.string("SELECT reason FROM raw_batches WHERE http_status = 429 LIMIT 1");
    assert!(reason.contains("Rate Limit"), "{reason}");
    assert!(app.count("SELECT count(*) FROM market_data") > 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_slow_and_truncated_responses_are_retried() {
    let server = server().await;
    server.push_fault(Fault::Status {
        status: 503,
        body: "<html><body><h1>503 Service Unavailable</h1></body></html>".into(),
    });
    server.push_fault(Fault::Slow(std::time::Duration::from_secs(4)));
    server.push_fault(Fault::TruncatedJson);
    let app = TestApp::with_server(&server.base_url(), &[]);
    let report = app.fetch(&["bitcoin"], t(UNTIL), 5).await;
    assert_eq!(server.requests().len(), 4);
    assert_eq!(report.summary.merged, 1);
    let reasons: Vec<String> = {
        let mut stmt = app
            .store
            .conn()
            .prepare("SELECT reason FROM raw_batches WHERE state = 'failed' ORDER BY batch_id")
            .expect("prepare");
        stmt.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].contains("503") && reasons[0].contains("Service Unavailable"),
        "{}",
        reasons[0]
    );
    assert!(reasons[1].contains("timed out"), "{}", reasons[1]);
    assert!(reasons[2].contains("truncated"), "{}", reasons[2]);
    // The truncated body itself is kept.
    assert!(app.count("SELECT max(body_bytes) FROM raw_batches WHERE state = 'failed'") > 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_coin_is_a_clear_error_and_other_coins_still_load() {
    let server = server().await;
    let app = TestApp::with_server(&server.base_url(), &[]);
    let report = app.fetch(&["no-such-coin", "solana"], t(UNTIL), 3).await;
    assert_eq!(report.state, RunState::Partial);
    assert!(!report.summary.source_unavailable);
    let err = &report.summary.fetch_errors[0];
    assert!(
        err.contains("no-such-coin") && err.contains("coin not found"),
        "{err}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM raw_batches WHERE coin_id = 'no-such-coin' AND http_status = 404 AND state = 'failed'"),
        1
    );
    assert!(app.count("SELECT count(*) FROM market_data WHERE coin_id = 'solana'") > 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_failure_gives_up_after_the_configured_retries() {
    let server = server().await;
    for _ in 0..10 {
        server.push_fault(Fault::Status {
            status: 500,
            body: r#"{"error":"internal"}"#.into(),
        });
    }
    let app = TestApp::with_server(
        &server.base_url(),
        &[("COINCAST__COINGECKO__MAX_RETRIES", "2")],
    );
    let report = app.fetch(&["bitcoin"], t(UNTIL), 3).await;
    assert_eq!(server.requests().len(), 3, "1 attempt + 2 retries");
    assert_eq!(report.state, RunState::Failed, "the extract task fails");
    assert!(report.summary.merged == 0);
    assert_eq!(app.count("SELECT count(*) FROM market_data"), 0);
    assert_eq!(
        app.count("SELECT count(*) FROM task_runs WHERE task = 'extract' AND state = 'failed'"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_source_stops_early_and_says_so() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let app = TestApp::with_server(
        &format!("http://{addr}/api/v3"),
        &[("COINCAST__COINGECKO__MAX_RETRIES", "1")],
    );
    let report = app
        .fetch(&["bitcoin", "solana", "cardano"], t(UNTIL), 3)
        .await;
    assert_eq!(report.state, RunState::Failed);
    assert!(report.summary.source_unavailable);
    let error = report.error.expect("an error");
    assert_eq!(
        coincast::failure::Classify::failure(&error),
        coincast::failure::Failure::SourceUnavailable
    );
    let error = coincast::failure::report(&error);
    assert!(error.contains("no coin could be fetched"), "{error}");
    // Only the first coin was tried (twice); the rest were skipped.
    assert_eq!(
        app.count("SELECT count(*) FROM raw_batches WHERE state = 'failed'"),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_long_a_retry_after_gives_up_with_a_message() {
    let server = server().await;
    server.push_fault(Fault::TooManyRequests {
        retry_after: Some("3600".into()),
        ratelimit_reset: None,
    });
    let app = TestApp::with_server(&server.base_url(), &[]);
    let report = app.fetch(&["bitcoin"], t(UNTIL), 3).await;
    let err = report
        .error
        .map(|e| coincast::failure::report(&e))
        .unwrap_or_default();
    assert!(
        err.contains("3600") && err.contains("max_retry_after_secs"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_run_fetches_from_the_last_stored_hour_and_matches_a_full_build() {
    let server = server().await;
    let app = TestApp::with_server(&server.base_url(), &[]);
    app.fetch(&["bitcoin"], t("2023-12-01T00:00:00Z"), 40).await;
    let last = app.string("SELECT CAST(max(ts) AS VARCHAR) FROM market_data");

    let report = app.fetch(&["bitcoin"], t("2023-12-05T00:00:00Z"), 40).await;
    assert_eq!(report.state, RunState::Success, "{report:?}");
    let r = server.requests().last().cloned().expect("request");
    let from: i64 = r.query["from"].parse().expect("from");
    let to: i64 = r.query["to"].parse().expect("to");
    assert_eq!(to, t("2023-12-05T00:00:00Z").timestamp());
    // Four days since the last hour: the request starts there (no widening needed).
    assert_eq!(
        from,
        chrono::DateTime::parse_from_str(&last, "%Y-%m-%d %H:%M:%S%#z")
            .expect("last hour")
            .timestamp()
    );
    // Only the new hours were rebuilt, and they equal a full rebuild.
    let incremental = app.table_hash("features", "features.*");
    coincast::features::rebuild_all(app.store.conn()).expect("full rebuild");
    assert_eq!(incremental, app.table_hash("features", "features.*"));
    assert_eq!(
        app.count("SELECT count(*) FROM features"),
        app.count("SELECT count(*) FROM market_data")
    );
}
