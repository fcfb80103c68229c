//! Feature properties that pandas cannot check: no lookahead, hours-not-rows, incremental = full.

use proptest::prelude::*;

use crate::support::{real_coingecko, TestApp, H, T0};

/// Loads a series straight into market_data (the gate is tested elsewhere).
fn load(app: &TestApp, prices: &[(i64, f64, Option<f64>)]) {
    let conn = app.store.conn();
    conn.execute_batch("DELETE FROM market_data; DELETE FROM features;")
        .expect("clear");
    let mut app_ = conn.appender("market_data").expect("appender");
    for (i, (hour, price, volume)) in prices.iter().enumerate() {
        let ts = chrono::DateTime::from_timestamp_millis(T0 + hour * H).expect("ts");
        app_.append_row(duckdb::params![
            "c",
            "usd",
            ts,
            price,
            price * 1e6,
            volume,
            ts,
            i as i64,
            ts
        ])
        .expect("append");
    }
    app_.flush().expect("flush");
}

fn features_up_to(app: &TestApp, hour: i64) -> Vec<String> {
    let mut stmt = app
        .store
        .conn()
        .prepare(&format!(
            "SELECT CAST(to_json(f) AS VARCHAR) FROM features f WHERE ts <= make_timestamptz({}) ORDER BY ts",
            (T0 + hour * H) * 1000
        ))
        .expect("prepare");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Changing, adding or removing rows after hour t never changes a feature at or before t.
    #[test]
    fn no_lookahead(
        steps in prop::collection::vec(-0.05f64..0.05, 60..1100),
        cut_frac in 0.2f64..0.9,
        noise in prop::collection::vec(0.5f64..2.0, 1..50),
        drop_every in 2usize..7,
    ) {
        let app = TestApp::new(&[]);
        let mut price = 100.0;
        let series: Vec<(i64, f64, Option<f64>)> = steps.iter().enumerate().map(|(h, s)| {
            price *= 1.0 + s;
            (h as i64, price, Some(1e3 * (1.0 + s.abs())))
        }).collect();
        let cut = (series.len() as f64 * cut_frac) as i64;
        load(&app, &series);
        coincast::features::rebuild_all(app.store.conn()).expect("build");
        let before = features_up_to(&app, cut);

        // Rewrite the future: other prices, missing hours, extra hours.
        let mut future: Vec<(i64, f64, Option<f64>)> = series.iter().map(|&(h, p, v)| {
            if h > cut { (h, p * noise[h as usize % noise.len()], v.map(|x| x * 3.0)) } else { (h, p, v) }
        }).filter(|(h, _, _)| *h <= cut || !(*h as usize).is_multiple_of(drop_every)).collect();
        future.push((series.len() as i64 + 5, 1.0, None));
        load(&app, &future);
        coincast::features::rebuild_all(app.store.conn()).expect("rebuild");
        prop_assert_eq!(before, features_up_to(&app, cut));
    }
}

#[test]
fn windows_across_a_gap_are_null_and_lags_mean_hours() {
    let app = TestApp::new(&[]);
    // Hours 0..30, then 32..60: hour 31 is missing.
    let series: Vec<(i64, f64, Option<f64>)> = (0..60)
        .filter(|h| *h != 31)
        .map(|h| (h, 100.0 + h as f64, Some(10.0)))
        .collect();
    load(&app, &series);
    coincast::features::rebuild_all(app.store.conn()).expect("build");
    let q = |sql: &str, hour: i64| -> Option<f64> {
        app.store
            .conn()
            .query_row(
                &format!(
                    "SELECT {sql} FROM features WHERE ts = make_timestamptz({})",
                    (T0 + hour * H) * 1000
                ),
                [],
                |r| r.get(0),
            )
            .expect("row")
    };
    // price_lag_3h at hour 33 is the price at hour 30, not the row three rows back (hour 29).
    assert_eq!(q("price_lag_3h", 33), Some(130.0));
    assert_eq!(q("price_lag_1h", 32), None);
    // Windows touching hour 31 need all their hours.
    assert_eq!(q("price_rolling_mean_3h", 33), None);
    assert_eq!(q("price_rolling_mean_3h", 34), Some(133.0));
    assert_eq!(q("price_rolling_mean_24h", 54), None);
    assert_eq!(q("price_rolling_mean_24h", 55), Some(155.0 - 11.5));
    // The EMA decays over the missing hour (pandas ignore_na=False on the hourly grid), no NULL.
    assert!(q("ema_6h", 32).is_some());
}

/// On real data, rebuilding from any hour writes exactly what the full build wrote, bit for bit,
/// whichever coins the rebuild reads: no value may depend on where a build starts (a windowed
/// sum's order did, by one ulp, before the lag-only formulation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_build_from_any_hour_equals_the_full_build_on_real_data() {
    let app = TestApp::new(&[]);
    app.replay(&real_coingecko(), Some(&["bitcoin", "solana"]))
        .await;
    let full = app.table_hash("features", "features.*");
    let conn = app.store.conn();
    // Hours back from each coin's newest row, neither block-aligned nor equal across coins.
    for (back, coins) in [
        (1, "'bitcoin', 'solana'"),
        (37, "'solana'"),
        (700, "'bitcoin', 'solana'"),
        (1_337, "'bitcoin'"),
        (9_001, "'bitcoin', 'solana'"),
    ] {
        conn.execute(
            &format!(
                "INSERT OR REPLACE INTO feature_backlog
                 SELECT coin_id, vs_currency, max(ts) - to_hours(CAST(? AS BIGINT)) FROM market_data
                 WHERE coin_id IN ({coins}) GROUP BY coin_id, vs_currency"
            ),
            [back],
        )
        .expect("backlog");
        let stats = coincast::features::build_backlog(conn).expect("incremental build");
        assert!(stats.rows_written > 0);
        assert_eq!(
            full,
            app.table_hash("features", "features.*"),
            "rebuilt {coins} from {back} hours before their newest"
        );
    }
}
