//! `/predict`, `/predict/batch` and `/ready`.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_answers_in_the_compatible_shape() {
    let api = spawn_api(true, 1_000_000).await;
    let (status, body) = api
        .post(
            "/predict",
            r#"{"coin_id": "solana", "hours_ahead": 24, "model_type": "lstm"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for field in [
        "coin_id",
        "timestamp",
        "predicted_price",
        "confidence_interval",
        "model_type",
        "prediction_horizon_hours",
        "model_version",
        "as_of",
        "current_price",
    ] {
        assert!(!body[field].is_null(), "{field} missing: {body}");
    }
    assert_eq!(body["prediction_horizon_hours"], 24);
    assert_eq!(body["as_of"], "2023-12-30T20:00:00Z");
    assert_eq!(body["timestamp"], "2023-12-31T20:00:00Z");
    let (lo, p, hi) = (
        body["confidence_interval"]["lower"]
            .as_f64()
            .expect("lower"),
        body["predicted_price"].as_f64().expect("price"),
        body["confidence_interval"]["upper"]
            .as_f64()
            .expect("upper"),
    );
    assert!(lo < p && p < hi, "{body}");
    assert_eq!(body["confidence_interval"]["level"], 0.9);
    // Defaults: hours_ahead 1, the champion; solana is the only served coin here.
    let (status, body) = api.post("/predict", r#"{"coin_id": "solana"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["prediction_horizon_hours"], 1);

    let (status, _) = api.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    // Request ids: generated when absent, kept when the client sends one.
    let r = api
        .http
        .get(format!("{}/health", api.base))
        .send()
        .await
        .expect("health");
    let id = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let r = api
        .http
        .get(format!("{}/health", api.base))
        .header("x-request-id", "client-42")
        .send()
        .await
        .expect("health");
    assert_eq!(
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("client-42")
    );
    // Every answer names the server that gave it, an error as much as a success.
    let instance = |r: &reqwest::Response| {
        r.headers()
            .get("x-coincast-instance")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let named = instance(&r);
    assert!(coincast::config::is_instance_name(&named), "{named:?}");
    let missing = api
        .http
        .get(format!("{}/no/such/route", api.base))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(instance(&missing), named);
    let (status, text) = api.get("/ready").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (status, text) = api.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&text).expect("openapi json");
    assert_eq!(doc["openapi"], "3.0.3");
    for path in [
        "/predict",
        "/predict/batch",
        "/health",
        "/ready",
        "/models/status",
        "/metrics",
        "/api/pipeline/runs",
        "/api/models/{model_id}/promote",
        "/api/models/rollback",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} not documented");
    }
    let (_, text) = api.get("/models/status").await;
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["champion"]["coins"][0], "solana");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_status_and_a_json_error() {
    let api = spawn_api(true, 1_000_000).await;
    let (s, b) = api.post("/predict", r#"{"coin_id": "solana", "#).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    let (s, b) = api
        .post("/predict", r#"{"coin_id": "solana", "hours_ahead": "six"}"#)
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    let (s, b) = api.post("/predict", r#"{"coin": "solana"}"#).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    for h in ["0", "25", "-3"] {
        let (s, b) = api
            .post(
                "/predict",
                &format!(r#"{{"coin_id": "solana", "hours_ahead": {h}}}"#),
            )
            .await;
        assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "out_of_range");
    }
    let (s, b) = api.post("/predict", r#"{"coin_id": "dogecoin"}"#).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "unknown_coin");
    let (s, b) = api
        .post("/predict", r#"{"coin_id": "<script>alert(1)</script>"}"#)
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "unknown_coin");
    // Any well-formed model_type is answered by the champion, which the answer names; only a
    // malformed one is refused.
    let (s, b) = api
        .post(
            "/predict",
            r#"{"coin_id": "solana", "model_type": "arima"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["model_type"], "lstm");
    assert_eq!(b["served_by"], "champion");
    let (s, b) = api
        .post(
            "/predict",
            r#"{"coin_id": "solana", "model_type": "<script>x</script>"}"#,
        )
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "out_of_range");
    let big = format!(r#"{{"coin_id": "{}"}}"#, "a".repeat(5000));
    let (s, b) = api.post("/predict", &big).await;
    assert_error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let r = api
        .http
        .post(format!("{}/predict", api.base))
        .header("content-type", "text/plain")
        .body(r#"{"coin_id": "solana"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (s, text) = api.get("/no/such/route").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(text.contains("\"not_found\""), "{text}");

    // Failures are counted as errors under the route template; only successes count as predictions.
    let (_, ok) = api.post("/predict", r#"{"coin_id": "solana"}"#).await;
    assert!(ok["predicted_price"].is_number());
    let (_, metrics) = api.get("/metrics").await;
    assert!(
        metrics
            .contains(r#"api_requests_total{endpoint="/predict",method="POST",status="error"} 11"#),
        "{metrics}"
    );
    assert!(metrics
        .contains(r#"api_requests_total{endpoint="/predict",method="POST",status="success"} 2"#));
    assert!(metrics.contains(r#"model_predictions_total{coin_id="solana",model_type="lstm"} 2"#));
    assert!(metrics.contains(r#"endpoint="unmatched""#));
    assert!(
        !metrics.contains("/no/such/route"),
        "raw paths must not become labels"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_champion_the_floor_answers_and_without_data_predict_is_503() {
    // Replayed data, no training: the floor (persistence, EWMA intervals) answers.
    let api = spawn_api(false, 1_000_000).await;
    let (s, b) = api
        .post("/predict", r#"{"coin_id": "solana", "hours_ahead": 24}"#)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["served_by"], "floor");
    assert_eq!(b["model_type"], "persistence_ewma");
    assert_eq!(b["predicted_price"], b["current_price"]);
    let (lo, hi) = (
        b["confidence_interval"]["lower"].as_f64().expect("lower"),
        b["confidence_interval"]["upper"].as_f64().expect("upper"),
    );
    assert!(lo < hi, "{b}");
    let (s, text) = api.get("/ready").await;
    assert_eq!(s, StatusCode::OK, "{text}");

    // A configured coin without any data: /predict cannot answer for it, so the server is not
    // ready, and says which coin and where to look (not `coincast status`: the server holds
    // the file).
    let mut two_coins = api._app.settings.clone();
    two_coins.coins = vec!["solana".into(), "bitcoin".into()];
    two_coins.serve.max_data_age_hours = 1_000_000;
    let base = serve_on_localhost(Arc::new(runtime_over(&api._app, &two_coins))).await;
    let (s, b) = post_json_with_status(
        &api.http,
        &format!("{base}/predict"),
        r#"{"coin_id": "bitcoin"}"#,
    )
    .await;
    assert_error(s, &b, StatusCode::SERVICE_UNAVAILABLE, "no_data");
    let r = api
        .http
        .get(format!("{base}/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = r.text().await.expect("body");
    assert!(
        text.contains("bitcoin") && text.contains("no data"),
        "{text}"
    );
    assert!(!text.contains("solana"), "{text}");
    assert!(!text.contains("coincast status"), "{text}");

    // No data at all: nothing can answer yet, and /ready says why.
    let app = TestApp::new(&[]);
    let settings = app.settings.clone();
    let base = serve_on_localhost(Arc::new(runtime_over(&app, &settings))).await;
    let empty = Api {
        base,
        http: reqwest::Client::new(),
        _app: app,
    };
    let (s, b) = empty.post("/predict", r#"{"coin_id": "solana"}"#).await;
    assert_error(s, &b, StatusCode::SERVICE_UNAVAILABLE, "no_data");
    let (s, text) = empty.get("/ready").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(text.contains("no model yet"), "{text}");
    let (_, metrics) = empty.get("/metrics").await;
    assert!(
        metrics.contains(r#"model_health_status{model_type="persistence"} 0"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_data_makes_the_server_unready() {
    let api = spawn_api(true, 3).await;
    let (s, text) = api.get("/ready").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(text.contains("stale") && text.contains("solana"), "{text}");
    // Stale data still serves (the forecast says what it is based on).
    let (s, b) = api.post("/predict", r#"{"coin_id": "solana"}"#).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_backtests_every_hour_with_actuals_and_checks_its_range() {
    let api = spawn_api(true, 1_000_000).await;
    let (s, b) = api
        .post(
            "/predict/batch",
            r#"{"coin_id": "solana", "start_date": "2023-12-20", "end_date": "2023-12-21", "hours_ahead": 24}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let preds = b["predictions"].as_array().expect("predictions");
    assert_eq!(
        preds.len() + b["skipped_hours"].as_u64().unwrap_or(0) as usize,
        48
    );
    assert_eq!(
        preds.len(),
        48,
        "the end day is included and the data is complete there"
    );
    assert_eq!(preds[0]["as_of"], "2023-12-20T00:00:00Z");
    assert_eq!(preds[0]["timestamp"], "2023-12-21T00:00:00Z");
    assert_eq!(preds[47]["as_of"], "2023-12-21T23:00:00Z");
    for p in preds {
        let (lo, mid, hi) = (
            p["lower"].as_f64().expect("lower"),
            p["predicted_price"].as_f64().expect("price"),
            p["upper"].as_f64().expect("upper"),
        );
        assert!(lo < mid && mid < hi, "{p}");
        assert!(
            p["actual_price"].is_number(),
            "actuals are known in 2023: {p}"
        );
    }
    // The newest hours have no actual yet; hours past the data have no forecast.
    let (_, b) = api
        .post(
            "/predict/batch",
            r#"{"coin_id": "solana", "start_date": "2023-12-30", "end_date": "2023-12-31"}"#,
        )
        .await;
    let preds = b["predictions"].as_array().expect("predictions");
    assert_eq!(preds.len(), 21, "2023-12-30 00:00 .. 20:00");
    assert!(preds.last().is_some_and(|p| p["actual_price"].is_null()));
    assert_eq!(b["skipped_hours"], 48 - 21);

    for (body, code) in [
        (
            r#"{"coin_id": "solana", "start_date": "2023-12-21", "end_date": "2023-12-20"}"#,
            "out_of_range",
        ),
        (
            r#"{"coin_id": "solana", "start_date": "yesterday", "end_date": "2023-12-20"}"#,
            "out_of_range",
        ),
        (
            r#"{"coin_id": "solana", "start_date": "2023-01-01", "end_date": "2023-12-20"}"#,
            "out_of_range",
        ),
        (
            r#"{"coin_id": "solana", "start_date": "2023-12-20", "end_date": "2023-12-21", "hours_ahead": 30}"#,
            "out_of_range",
        ),
    ] {
        let (s, b) = api.post("/predict/batch", body).await;
        assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, code);
    }
    let (s, b) = api
        .post(
            "/predict/batch",
            r#"{"coin_id": "dogecoin", "start_date": "2023-12-20", "end_date": "2023-12-20"}"#,
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "unknown_coin");
    let (s, b) = api.post("/predict/batch", r#"{"coin_id": "solana"}"#).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
}

/// 120 days from the CoinGecko-compatible server (a live install's first backfill): a selection
/// run fits the windows the history allows, a champion is served, fitted up to a day before the
/// newest hour; a coin fetched after training is answered by the floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_install_gets_a_champion_and_a_new_coin_is_served_by_the_floor() {
    let server = crate::support::coingecko_server::CoinGeckoServer::start_ending_now(
        &real_coingecko(),
        &["solana", "ripple", "cardano"],
    )
    .await;
    let app = TestApp::with_server(&server.base_url(), &[]);
    let now = chrono::Utc::now();
    app.fetch(&["solana", "ripple"], now, 120).await;
    // Every coin with data is answered from the first run on: by the floor.
    let base = serve_app(&app).await;
    let (s, b) = post_json(&base, "/predict", r#"{"coin_id": "ripple"}"#).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["served_by"], "floor");

    // The shipped protocol (26 weekly windows configured) fits what 120 days allow.
    let mut protocol = coincast::model::evaluate::Protocol::parse(
        "models/baselines.toml",
        coincast::model::evaluate::DEFAULT_PROTOCOL,
    )
    .expect("protocol");
    protocol.candidates = ["persistence", "persistence_ewma", "linear"]
        .map(String::from)
        .to_vec();
    let o = coincast::model::train::train_and_register(
        app.store.conn(),
        coincast::model::train::TrainRequest {
            coins: &["solana".to_string(), "ripple".to_string()],
            vs_currency: "usd",
            spec: small_spec(),
            protocol,
            gate: app.settings.model.gate.clone(),
            data_dir: app.dir.path(),
            register: coincast::model::train::RegisterPolicy::Winner,
            cancel: Default::default(),
        },
        |_| {},
    )
    .expect("120 days are enough");
    // (2880 h - 24 h of targets - 36 h gap - 720 h of training) / 168: 12 weeks.
    assert!(
        (11..=12).contains(&o.evaluation.folds),
        "{} folds",
        o.evaluation.folds
    );
    assert!(o.newest_hour - o.trained_until_hour <= 25);
    let now_hour = now.timestamp() / 3600;
    assert!(now_hour - o.newest_hour <= 2, "the newest hour is now");
    // A coin fetched after training.
    app.fetch(&["cardano"], chrono::Utc::now(), 30).await;
    let base = serve_app(&app).await;
    let (s, b) = post_json(
        &base,
        "/predict",
        r#"{"coin_id": "solana", "hours_ahead": 24}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["served_by"], "champion");
    assert_eq!(b["model_version"], o.model_id.as_str());
    assert_eq!(b["model_type"], o.family.as_str());
    let (s, b) = post_json(&base, "/predict", r#"{"coin_id": "cardano"}"#).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["served_by"], "floor");
    assert!(b["model_type"]
        .as_str()
        .is_some_and(|t| t.starts_with("persistence")));
    let text = get_text(&reqwest::Client::new(), &format!("{base}/models/status")).await;
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["champion"]["model_id"], o.model_id.as_str());
    assert!(v["floor"]["model_id"].is_string(), "{v}");
}

/// A champion that forecasts 6 hours ahead serves what it has and refuses hours beyond it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_champion_with_a_short_horizon_refuses_hours_beyond_it() {
    let app = TestApp::new(&[]);
    app.replay(&real_coingecko(), Some(&["solana"])).await;
    let mut spec = small_spec();
    spec.horizon = 6;
    spec.epochs = 1;
    spec.samples_per_epoch = 1000;
    app.lstm_champion(&["solana"], spec);
    let base = serve_app(&app).await;
    let (s, b) = post_json(
        &base,
        "/predict",
        r#"{"coin_id": "solana", "hours_ahead": 6}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for path in ["/predict", "/predict/batch"] {
        let body = if path == "/predict" {
            r#"{"coin_id": "solana", "hours_ahead": 7}"#
        } else {
            r#"{"coin_id": "solana", "start_date": "2023-12-20", "end_date": "2023-12-20", "hours_ahead": 7}"#
        };
        let (s, b) = post_json(&base, path, body).await;
        assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "out_of_range");
        assert!(
            b["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("up to 6 h ahead")),
            "{b}"
        );
    }
}

/// A forecast is computed once, when the snapshot is loaded: the served model holds it before any
/// request, a request returns that very forecast, and another call does not compute it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_coins_forecast_is_computed_once_per_snapshot() {
    let app = TestApp::new(&[]);
    app.replay(&real_coingecko(), Some(&["solana"])).await;
    let mut settings = app.settings.clone();
    settings.coins = vec!["solana".into()];
    settings.serve.max_data_age_hours = 1_000_000;
    let runtime = Arc::new(runtime_over(&app, &settings));
    let snap = runtime.snapshot();
    let (model, series, _) = snap
        .answerers("solana")
        .into_iter()
        .next()
        .expect("the floor answers");
    let at_load = model
        .cached_latest(&series)
        .expect("computed when the snapshot was loaded");
    let again = model.forecast_latest(&series).expect("forecast");
    assert!(Arc::ptr_eq(&at_load, &again), "computed twice");

    let base = serve_on_localhost(runtime.clone()).await;
    let (status, body) = post_json_with_status(
        &reqwest::Client::new(),
        &format!("{base}/predict"),
        r#"{"coin_id": "solana", "hours_ahead": 24}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let h = &at_load.horizons[23];
    assert_eq!(body["predicted_price"].as_f64(), Some(h.price));
    assert_eq!(body["confidence_interval"]["lower"].as_f64(), Some(h.lower));
    assert_eq!(body["model_version"], model.model_id.as_str());
}

/// A body the route does not read (`GET`s) or reads only in part (over the limit) is read to its
/// end by the server before it answers: closing a socket with unread bytes resets the connection,
/// and a reset can cut the response on its way (a `GET /features` with a 300 KB body was cut
/// mid-body). Every answer here must arrive whole, on a real socket.
#[tokio::test]
async fn a_large_unread_body_never_cuts_the_response() {
    let api = spawn_api(false, 1_000_000).await;
    let big = vec![b'x'; 2 << 20];
    for round in 0..10 {
        for (method, path) in [
            (reqwest::Method::GET, "/openapi.json"),
            (reqwest::Method::GET, "/health"),
            (reqwest::Method::POST, "/predict"),
            (reqwest::Method::POST, "/no/such/route"),
        ] {
            let r = api
                .http
                .request(method.clone(), format!("{}{path}", api.base))
                .header("content-type", "application/json")
                .body(big.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {path}, round {round}: {e:?}"));
            let status = r.status();
            let text = r
                .text()
                .await
                .unwrap_or_else(|e| panic!("{method} {path}, round {round}: body cut: {e:?}"));
            let body: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"));
            if path == "/no/such/route" {
                assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
            } else {
                assert_error(
                    status,
                    &body,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                );
            }
        }
    }
    // A small body on a route that reads none is read and ignored: the answer is whole.
    let r = api
        .http
        .get(format!("{}/openapi.json", api.base))
        .body(vec![b'y'; 512])
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    let spec: Value = serde_json::from_str(&r.text().await.expect("body")).expect("whole JSON");
    assert!(spec["paths"]["/predict"].is_object(), "{spec}");
}
