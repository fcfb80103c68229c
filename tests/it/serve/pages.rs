//! The dashboards' data as a server with its own database serves it: the features profile
//! (seconds of work) is computed once per dataset version and once per change of the current
//! data, ahead of the requests, and shared by them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{real_coingecko, serve_on_localhost, TestApp};
use coincast::runtime::{Metrics, Runtime, Snapshot};

async fn features(http: &reqwest::Client, url: &str) -> Value {
    let r = http.get(url).send().await.expect("request");
    assert!(r.status().is_success(), "{url}: {}", r.status());
    serde_json::from_str(&r.text().await.expect("body")).expect("json")
}

fn rows_profiled(page: &Value) -> i64 {
    page["profile"][0]["count"]
        .as_i64()
        .expect("a profiled feature")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_features_profile_is_computed_once_per_data_and_shared() {
    let app = TestApp::new(&[("COINCAST__COINS", "solana")]);
    app.replay(&real_coingecko(), Some(&["solana"])).await;
    let runtime = Arc::new(
        Runtime::new(
            Snapshot::load(app.store.conn(), &app.settings),
            app.settings.clone(),
            Arc::new(Metrics::new().expect("metrics")),
        )
        .with_db(app.store.conn().try_clone().expect("conn")),
    );
    let base = serve_on_localhost(runtime.clone()).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/api/features");

    // Four readers at once share one profile (the warmer's, or the first request's).
    let pages = futures_util::future::join_all((0..4).map(|_| features(&http, &url))).await;
    let first = &pages[0];
    assert_eq!(first["selected"], "current");
    assert!(rows_profiled(first) > 1000, "{}", first["profile"][0]);
    for p in &pages {
        assert_eq!(
            p["profiled_at"], first["profiled_at"],
            "computed more than once"
        );
    }

    // A publication with the same data reuses the profile.
    runtime.publisher().reload(app.store.conn(), &app.settings);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        features(&http, &url).await["profiled_at"],
        first["profiled_at"]
    );

    // The data changes and is published: the warmer profiles it again, and readers get it.
    app.store
        .conn()
        .execute_batch(
            "DELETE FROM features WHERE ts > (SELECT max(ts) - INTERVAL 100 HOURS FROM features)",
        )
        .expect("delete");
    runtime.publisher().reload(app.store.conn(), &app.settings);
    let deadline = Instant::now() + Duration::from_secs(60);
    let newer = loop {
        let page = features(&http, &url).await;
        if rows_profiled(&page) != rows_profiled(first) {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "the changed data was never profiled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rows_profiled(&newer), rows_profiled(first) - 100);
    assert_ne!(newer["profiled_at"], first["profiled_at"]);
    assert!(newer["snapshot"].as_u64() > first["snapshot"].as_u64());

    // A model's dataset version: profiled on first request, then served from the cache.
    let version = first["versions"][0]["dataset_version"]
        .as_str()
        .expect("the floor's dataset version")
        .to_string();
    let url = format!("{base}/api/features?version={}", &version[..12]);
    let once = features(&http, &url).await;
    assert_eq!(once["selected"], version.as_str());
    assert_eq!(
        features(&http, &url).await["profiled_at"],
        once["profiled_at"]
    );
}
