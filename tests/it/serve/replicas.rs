//! Scale-out through the real binary: a writer that publishes to a shared folder
//! (`publish.url = file://...`), replicas that serve its publication from empty data folders of
//! their own, and the real haproxy (`deploy/haproxy/haproxy.cfg`) in front of them. Every
//! server listens on 127.0.0.1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::support::{coincast, coincast_command, get_text, text};

const TOKEN: &str = "adm1n";

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A process killed with the test (SIGKILL), unless stopped first.
struct Process(Option<Child>);

impl Process {
    fn pid(&self) -> String {
        self.0
            .as_ref()
            .map(|c| c.id().to_string())
            .unwrap_or_default()
    }

    /// SIGTERM, then what it printed.
    fn terminate(mut self) -> String {
        let Some(child) = self.0.take() else {
            return String::new();
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        text(&child.wait_with_output().expect("wait"))
    }

    fn kill(mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The settings every server of the test shares (as a ConfigMap would).
fn shared_env(publication: &Path, writer_port: u16) -> Vec<(String, String)> {
    [
        ("COINCAST__COINS", "bitcoin,solana".to_string()),
        (
            "COINCAST__PUBLISH__URL",
            format!("file://{}", publication.display()),
        ),
        ("COINCAST__PUBLISH__POLL_SECS", "1".into()),
        ("COINCAST__SERVE__API_TOKEN", TOKEN.into()),
        (
            "COINCAST__SERVE__WRITER_URL",
            format!("http://127.0.0.1:{writer_port}"),
        ),
        ("COINCAST__SERVE__PIPELINE_SCHEDULE", String::new()),
        ("COINCAST__SERVE__RETRAIN_SCHEDULE", String::new()),
        (
            "COINCAST__COINGECKO__BASE_URL",
            "http://127.0.0.1:9/api/v3".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn serve(data: &Path, role: &str, port: u16, instance: &str, env: &[(String, String)]) -> Process {
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("COINCAST__SERVE__INSTANCE", instance));
    let bind = format!("127.0.0.1:{port}");
    let data = data.to_str().expect("utf-8");
    let child = coincast_command(
        &["--data-dir", data, "serve", "--role", role, "--bind", &bind],
        &env,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("serve");
    Process(Some(child))
}

/// Starts the writer on `port` and waits until it answers.
async fn start_writer(
    http: &reqwest::Client,
    data: &Path,
    port: u16,
    env: &[(String, String)],
) -> Process {
    let writer = serve(data, "writer", port, "writer", env);
    wait_for(
        http,
        &format!("http://127.0.0.1:{port}/health"),
        Duration::from_secs(60),
    )
    .await;
    writer
}

/// The writer's data: bitcoin and solana replayed, a selection run that registers the EWMA
/// champion (also the floor) and a drift challenger to promote by hand.
fn writer_data(dir: &Path) {
    writer_data_with(dir, &[]);
}

/// As `writer_data`, with settings of the writer's own (its lake).
fn writer_data_with(dir: &Path, lake_env: &[(String, String)]) {
    let data = dir.to_str().expect("utf-8");
    let source = real_coingecko();
    let mut env = vec![("COINCAST__COINS", "bitcoin,solana")];
    env.extend(lake_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let replay = coincast(
        &[
            "--data-dir",
            data,
            "replay",
            source.to_str().expect("utf-8"),
        ],
        &env,
    );
    assert!(replay.status.success(), "{}", text(&replay));
    let train = coincast(
        &[
            "--data-dir",
            data,
            "train",
            "--candidates",
            "persistence_ewma,drift_ewma",
            "--windows",
            "2",
            "--register-all",
        ],
        &env,
    );
    assert!(train.status.success(), "{}", text(&train));
}

/// Waits until `url` answers 200; its JSON.
async fn wait_for(http: &reqwest::Client, url: &str, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(url).send().await {
            if r.status() == StatusCode::OK {
                return r.json_value().await;
            }
        }
        assert!(
            started.elapsed() < within,
            "{url} not 200 within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One forecast: status, body and the instance that answered.
async fn predict(http: &reqwest::Client, base: &str) -> (StatusCode, Value, String) {
    let r = http
        .post(format!("{base}/predict"))
        .header("content-type", "application/json")
        .body(r#"{"coin_id":"bitcoin","hours_ahead":1}"#)
        .send()
        .await
        .expect("predict");
    let instance = r
        .headers()
        .get("x-coincast-instance")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (r.status(), r.json_value().await, instance)
}

fn haproxy(bind: &str, writer: &str, replicas: [&str; 3]) -> Process {
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy/haproxy.cfg");
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&config)
        .env("COINCAST_LB_BIND", bind)
        .env("COINCAST_WRITER", writer)
        .env("COINCAST_REPLICA_1", replicas[0])
        .env("COINCAST_REPLICA_2", replicas[1])
        .env("COINCAST_REPLICA_3", replicas[2])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy (Debian package haproxy)");
    Process(Some(child))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_serve_the_writers_publication_behind_haproxy_and_their_forecasts_come_home() {
    let dir = tempfile::tempdir().expect("dir");
    let writer_dir = dir.path().join("writer");
    writer_data(&writer_dir);
    let publication = dir.path().join("publication");
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let env = shared_env(&publication, ports[0]);
    let http = reqwest::Client::new();
    let base = |port: u16| format!("http://127.0.0.1:{port}");

    let writer = start_writer(&http, &writer_dir, ports[0], &env).await;
    let replicas: Vec<Process> = (1..=3)
        .map(|i| {
            let data = dir.path().join(format!("replica-{i}"));
            serve(&data, "replica", ports[i], &format!("replica-{i}"), &env)
        })
        .collect();
    for port in &ports[1..4] {
        let ready = wait_for(
            &http,
            &format!("{}/ready", base(*port)),
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(ready["role"], "replica", "{ready}");
    }

    // Each replica answers as the writer does, and names itself.
    let (status, from_writer, _) = predict(&http, &base(ports[0])).await;
    assert_eq!(status, StatusCode::OK, "{from_writer}");
    let champion = from_writer["model_version"]
        .as_str()
        .expect("version")
        .to_string();
    let mut answered: BTreeMap<String, u64> = BTreeMap::new();
    for (i, port) in ports[1..4].iter().enumerate() {
        let (status, body, instance) = predict(&http, &base(*port)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(instance, format!("replica-{}", i + 1));
        assert_eq!(body, from_writer, "the replica's answer is the writer's");
        *answered.entry(instance).or_default() += 1;
    }

    // Every page renders from the publication; the features page says what a replica holds.
    for page in [
        "/",
        "/market",
        "/quality",
        "/features",
        "/pipeline",
        "/models",
        "/monitoring",
    ] {
        let r = http
            .get(format!("{}{page}", base(ports[1])))
            .send()
            .await
            .expect("page");
        assert_eq!(r.status(), StatusCode::OK, "{page} on a replica");
        let html = r.text().await.expect("html");
        if page == "/features" {
            assert!(
                html.contains("data-replica"),
                "the features page names the publication"
            );
        }
    }

    // What only the writer does is refused by a replica, naming the writer.
    let writer_url = base(ports[0]);
    for (path, body) in [
        ("/api/models/rollback", "{}"),
        ("/api/sql", r#"{"sql":"SELECT 1"}"#),
    ] {
        let r = http
            .post(format!("{}{path}", base(ports[1])))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::CONFLICT, "{path}");
        let body = r.json_value().await;
        assert_error(StatusCode::CONFLICT, &body, StatusCode::CONFLICT, "replica");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(&writer_url),
            "{body}"
        );
    }
    let challenger = {
        let page = wait_for(
            &http,
            &format!("{}/api/models", base(ports[1])),
            Duration::from_secs(5),
        )
        .await;
        page["registry"]
            .as_array()
            .expect("registry")
            .iter()
            .filter_map(|m| m["model_id"].as_str())
            .find(|id| id.starts_with("drift_ewma"))
            .expect("the challenger is listed on the replica's models page")
            .to_string()
    };
    let promote_on = |port: u16| {
        http.post(format!("{}/api/models/{challenger}/promote", base(port)))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(r#"{"force":true}"#)
            .send()
    };
    assert_eq!(
        promote_on(ports[1]).await.expect("promote").status(),
        StatusCode::CONFLICT
    );

    // Through haproxy, every replica answers.
    let lb = format!("127.0.0.1:{}", ports[4]);
    let servers: Vec<String> = ports[1..4]
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let balancer = haproxy(
        &lb,
        &format!("127.0.0.1:{}", ports[0]),
        [&servers[0], &servers[1], &servers[2]],
    );
    let lb_url = format!("http://{lb}");
    wait_for(&http, &format!("{lb_url}/ready"), Duration::from_secs(20)).await;
    // haproxy's checks bring each server up within a second of its first check.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let (status, body, instance) = predict(&http, &lb_url).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        seen.insert(instance.clone());
        *answered.entry(instance).or_default() += 1;
    }
    assert_eq!(
        seen.len(),
        3,
        "every replica answers through haproxy: {seen:?}"
    );

    // A promotion on the writer is served by every replica within the poll and one load.
    let promoted_at = Instant::now();
    let r = promote_on(ports[0]).await.expect("promote");
    assert_eq!(r.status(), StatusCode::OK, "{}", r.json_value().await);
    for port in &ports[1..4] {
        loop {
            let (status, body, instance) = predict(&http, &base(*port)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            *answered.entry(instance).or_default() += 1;
            if body["model_version"] == challenger.as_str() {
                break;
            }
            // poll_secs (1 s) and one load, with room for a slow machine.
            assert!(
                promoted_at.elapsed() < Duration::from_secs(1 + 15),
                "replica on {port} still serves {}",
                body["model_version"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_ne!(champion, challenger);
    eprintln!(
        "a promotion reached every replica in {:?}",
        promoted_at.elapsed()
    );

    // A replica killed with SIGKILL under load costs no failed request.
    let mut replicas = replicas.into_iter();
    let (r1, r2, r3) = (
        replicas.next().expect("r1"),
        replicas.next().expect("r2"),
        replicas.next().expect("r3"),
    );
    // The load runs from before the kill until a second after it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (http, lb_url, stop) = (http.clone(), lb_url.clone(), stop.clone());
            tokio::spawn(async move {
                let mut out = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let (status, _, instance) = predict(&http, &lb_url).await;
                    out.push((status, instance));
                }
                out
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = r2.pid();
    r2.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut failed, mut under_load) = (0, 0);
    for task in load {
        for (status, instance) in task.await.expect("load") {
            under_load += 1;
            if status == StatusCode::OK {
                *answered.entry(instance).or_default() += 1;
            } else {
                failed += 1;
            }
        }
    }
    eprintln!("{under_load} requests under load, replica 2 killed after 0.3 s");
    assert_eq!(
        failed, 0,
        "requests failed after replica 2 (pid {killed}) was killed"
    );

    // A replica started from nothing is ready after one load, on the newest publication.
    let fresh_port = free_port();
    let started = Instant::now();
    let fresh = serve(
        &dir.path().join("replica-4"),
        "replica",
        fresh_port,
        "replica-4",
        &env,
    );
    let ready = wait_for(
        &http,
        &format!("{}/ready", base(fresh_port)),
        Duration::from_secs(20),
    )
    .await;
    let newest: Value = serde_json::from_slice(
        &std::fs::read(publication.join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    assert_eq!(
        ready["publication"]["version"], newest["version"],
        "{ready}"
    );
    eprintln!(
        "a replica from nothing was ready in {:?}",
        started.elapsed()
    );

    // Mixed versions: a manifest of a newer format is refused by name, counted, and the replica
    // keeps serving the publication it has (a rolling upgrade starts with the replicas).
    let newest_path = publication.join("manifest.json");
    let current = std::fs::read(&newest_path).expect("manifest");
    let mut future: Value = serde_json::from_slice(&current).expect("json");
    future["format_version"] = 99.into();
    future["version"] = (newest["version"].as_u64().expect("version") + 1).into();
    std::fs::write(&newest_path, serde_json::to_vec(&future).expect("json")).expect("write");
    let refused_at = Instant::now();
    let ready = loop {
        let ready = wait_for(
            &http,
            &format!("{}/ready", base(fresh_port)),
            Duration::from_secs(5),
        )
        .await;
        let problem = ready["following"]["problem"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if problem.contains("format_version 99") {
            break ready;
        }
        assert!(refused_at.elapsed() < Duration::from_secs(10), "{ready}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        ready["publication"]["version"], newest["version"],
        "{ready}"
    );
    let (status, body, _) = predict(&http, &base(fresh_port)).await;
    assert_eq!(
        (status, body["model_version"].as_str()),
        (StatusCode::OK, Some(challenger.as_str()))
    );
    let metrics = get_text(&http, &format!("{}/metrics", base(fresh_port))).await;
    assert!(
        metrics.contains("coincast_serving_publication_failures_total{stage=\"format_version\"}"),
        "the refusal is counted"
    );
    std::fs::write(&newest_path, &current).expect("restore");

    // Served forecasts come home: the replicas stopped (their logs flushed), the writer takes
    // their segments into `predictions`, one row count per request each answered.
    let _ = r1.terminate();
    let _ = r3.terminate();
    let started = Instant::now();
    while publication
        .join("predictions")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some())
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "segments still waiting"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(balancer);
    let log = writer.terminate();

    // The writer down: the replica keeps serving its publication, ready, and says what it serves.
    let (status, body, _) = predict(&http, &base(fresh_port)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ready = wait_for(
        &http,
        &format!("{}/ready", base(fresh_port)),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(ready["publication"]["writer"], "writer", "{ready}");

    // With the writer stopped, a rollback from the CLI on its data folder publishes as the
    // server's does: the replica serves the champion before the challenger.
    let cli_env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let rollback = coincast(
        &[
            "--data-dir",
            writer_dir.to_str().expect("utf-8"),
            "models",
            "rollback",
            "--force",
        ],
        &cli_env,
    );
    let said = text(&rollback);
    assert!(rollback.status.success(), "{said}");
    assert!(
        said.contains(&format!("replacing {challenger}"))
            && said.contains("published for replicas at file://"),
        "{said}"
    );
    let started = Instant::now();
    loop {
        let (status, body, _) = predict(&http, &base(fresh_port)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["model_version"].as_str() != Some(challenger.as_str()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the replica never served the rollback: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fresh.kill();

    let conn = duckdb::Connection::open(writer_dir.join("coincast.duckdb")).expect("open");
    for instance in ["replica-1", "replica-3"] {
        let counted: i64 = conn
            .query_row(
                "SELECT coalesce(sum(served_count), 0) FROM predictions WHERE instance = ?",
                [instance],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(
            counted as u64,
            answered.get(instance).copied().unwrap_or(0),
            "{instance}'s answers in the writer's predictions; writer log:\n{log}"
        );
    }
}

/// The publication through S3 (SeaweedFS on 127.0.0.1): a writer publishes to
/// `s3://lake/serving`, a replica from an empty folder serves its champion and its forecasts come
/// back through the bucket. A wrong key leaves the replica unready, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_serves_a_publication_in_an_s3_bucket() {
    use crate::support::seaweedfs::{SeaweedFs, ACCESS_KEY, BUCKET, SECRET_KEY};
    let dir = tempfile::tempdir().expect("dir");
    let s3 = SeaweedFs::start(&dir.path().join("s3"));
    let writer_dir = dir.path().join("writer");
    writer_data(&writer_dir);
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let url = format!("s3://{BUCKET}/serving");
    let endpoint = s3.endpoint();
    let mut env = shared_env(dir.path(), ports[0]);
    env.retain(|(k, _)| k != "COINCAST__PUBLISH__URL");
    env.extend(
        [
            ("COINCAST__PUBLISH__URL", url.as_str()),
            ("COINCAST__S3__ENDPOINT", endpoint.as_str()),
            ("COINCAST__S3__URL_STYLE", "path"),
            ("COINCAST__S3__ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let http = reqwest::Client::new();
    let base = |port: u16| format!("http://127.0.0.1:{port}");
    let writer = start_writer(&http, &writer_dir, ports[0], &env).await;
    let replica = serve(
        &dir.path().join("replica"),
        "replica",
        ports[1],
        "replica-s3",
        &env,
    );
    let ready = wait_for(
        &http,
        &format!("{}/ready", base(ports[1])),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(ready["publication"]["writer"], "writer", "{ready}");
    let (_, from_writer, _) = predict(&http, &base(ports[0])).await;
    let (status, body, instance) = predict(&http, &base(ports[1])).await;
    assert_eq!((status, instance.as_str()), (StatusCode::OK, "replica-s3"));
    assert_eq!(body, from_writer);

    // A replica with a wrong key is not ready, and says what it could not read.
    let mut wrong = env.clone();
    wrong.retain(|(k, _)| k != "AWS_SECRET_ACCESS_KEY");
    wrong.push(("AWS_SECRET_ACCESS_KEY".into(), "not-the-secret".into()));
    let refused = serve(
        &dir.path().join("refused"),
        "replica",
        ports[2],
        "refused",
        &wrong,
    );
    wait_for(
        &http,
        &format!("{}/health", base(ports[2])),
        Duration::from_secs(30),
    )
    .await;
    let started = Instant::now();
    loop {
        let r = http
            .get(format!("{}/ready", base(ports[2])))
            .send()
            .await
            .expect("ready");
        let status = r.status();
        let body = r.json_value().await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("not-the-secret") && !message.contains(SECRET_KEY),
            "{message}"
        );
        if message.contains(&url) && !message.contains("no serving publication loaded yet") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    refused.kill();

    // Its served forecast comes home through the bucket.
    let _ = replica.terminate();
    let metrics_url = format!("{}/metrics", base(ports[0]));
    let started = Instant::now();
    loop {
        let metrics = get_text(&http, &metrics_url).await;
        if metrics.contains("coincast_replica_segments_taken_total 1") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the segment never came home"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = writer.terminate();
}

/// POSTs `sql` to `/api/sql`: the status and the answer.
async fn sql(http: &reqwest::Client, base: &str, sql: &str) -> (StatusCode, Value) {
    let r = http
        .post(format!("{base}/api/sql"))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "sql": sql }).to_string())
        .send()
        .await
        .expect("sql");
    (r.status(), r.json_value().await)
}

/// SQL on a replica reads the lake when its catalog is in PostgreSQL (here with its data on S3):
/// every table the lake holds answers the same SQL with the same rows as the writer; the S3 secret
/// and the catalog's password reach no answer and no error; only the lake's data path is open;
/// a table the lake lacks is named with the writer's URL; psql reads it over the Postgres wire;
/// a catalog string that holds a password is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_on_a_replica_reads_the_postgres_catalog_lake() {
    use crate::support::postgres::Postgres;
    use crate::support::seaweedfs::{SeaweedFs, ACCESS_KEY, SECRET_KEY};
    const PASSWORD: &str = "catalog-hunter2";
    let dir = tempfile::tempdir().expect("dir");
    let s3 = SeaweedFs::start(&dir.path().join("s3"));
    let pg = Postgres::start(dir.path());
    let catalog = format!("postgres:{}", pg.lake_dsn());
    let lake_env: Vec<(String, String)> = [
        ("COINCAST__LAKE__CATALOG", catalog.clone()),
        ("COINCAST__LAKE__DATA_PATH", "s3://lake/data".into()),
        ("COINCAST__S3__ENDPOINT", s3.endpoint()),
        ("COINCAST__S3__URL_STYLE", "path".into()),
        ("COINCAST__S3__ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        // libpq reads it; the catalog's server trusts 127.0.0.1, so it is only a marker here.
        ("PGPASSWORD", PASSWORD.into()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec();
    let writer_dir = dir.path().join("writer");
    writer_data_with(&writer_dir, &lake_env);
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let mut env = shared_env(&dir.path().join("publication"), ports[0]);
    env.extend(lake_env.iter().cloned());
    let http = reqwest::Client::new();
    let base = |port: u16| format!("http://127.0.0.1:{port}");
    let writer = start_writer(&http, &writer_dir, ports[0], &env).await;
    let mut replica_env = env.clone();
    let pg_bind = format!("127.0.0.1:{}", ports[2]);
    replica_env.push(("COINCAST__SERVE__PG_BIND".into(), pg_bind));
    let replica = serve(
        &dir.path().join("replica"),
        "replica",
        ports[1],
        "replica-sql",
        &replica_env,
    );
    let (w, r) = (base(ports[0]), base(ports[1]));
    wait_for(&http, &format!("{r}/ready"), Duration::from_secs(60)).await;

    // The writer answers from its published copy once the worker has put it out.
    let started = Instant::now();
    while sql(&http, &w, "SELECT 1").await.0 != StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no SQL on the writer"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = Instant::now();
    loop {
        let (status, body) = sql(&http, &r, "SELECT count(*) FROM market_data").await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every table the lake holds: the writer's columns that the lake has, the same rows.
    for table in ["market_data", "features", "quality_results", "raw_batches"] {
        let columns = |base: String| {
            let http = http.clone();
            async move {
                let (status, body) = sql(&http, &base, &format!("DESCRIBE {table}")).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                body["rows"]
                    .as_array()
                    .expect("rows")
                    .iter()
                    .map(|row| row[0].as_str().expect("name").to_string())
                    .collect::<Vec<_>>()
            }
        };
        let (on_writer, on_replica) = (columns(w.clone()).await, columns(r.clone()).await);
        let missing: Vec<&String> = on_writer
            .iter()
            .filter(|c| !on_replica.contains(c))
            .collect();
        let expected_missing: &[&str] = if table == "raw_batches" {
            &["body", "body_archived"]
        } else {
            &[]
        };
        assert_eq!(missing, expected_missing, "{table}: {on_replica:?}");
        let shared: Vec<String> = on_writer
            .iter()
            .filter(|c| on_replica.contains(c))
            .map(|c| format!("\"{c}\""))
            .collect();
        let query = format!(
            "SELECT count(*) AS n, sum(hash(r)) AS digest FROM (SELECT {} FROM {table}) r",
            shared.join(", ")
        );
        let (from_writer, from_replica) =
            (sql(&http, &w, &query).await, sql(&http, &r, &query).await);
        assert_eq!(from_writer.0, StatusCode::OK, "{}", from_writer.1);
        assert_eq!(from_replica.0, StatusCode::OK, "{}", from_replica.1);
        assert!(
            from_writer.1["rows"][0][0].as_i64().unwrap_or(0) > 0,
            "{table} is empty"
        );
        assert_eq!(from_writer.1["rows"], from_replica.1["rows"], "{table}");
    }
    let (_, snapshot) = sql(&http, &r, "SELECT 1").await;
    assert!(
        snapshot["published"]
            .as_str()
            .unwrap_or_default()
            .starts_with("lake snapshot "),
        "{snapshot}"
    );

    // Neither the S3 secret nor the catalog's password reaches an answer or an error.
    for probe in [
        "SELECT * FROM duckdb_secrets()",
        "SELECT * FROM duckdb_secrets(redact := false)",
        "SELECT current_setting('s3_secret_access_key')",
        "SELECT * FROM duckdb_settings()",
        "SELECT * FROM duckdb_databases()",
        "SELECT * FROM read_parquet('s3://lake/data/no-such-file.parquet')",
        "SELECT * FROM read_parquet('s3://other-bucket/x.parquet')",
    ] {
        let (status, body) = sql(&http, &r, probe).await;
        let said = body.to_string();
        assert!(
            !said.contains(SECRET_KEY) && !said.contains(PASSWORD),
            "{probe}: {status} {said}"
        );
    }
    let (status, body) = sql(&http, &r, "SELECT * FROM duckdb_databases()").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.to_string().contains("ducklake"), "{body}");
    // Only the lake's data path is open: another bucket and the local disk are refused.
    for outside in [
        "SELECT * FROM read_parquet('s3://other-bucket/x.parquet')",
        "SELECT * FROM read_csv('/etc/passwd')",
    ] {
        let (status, body) = sql(&http, &r, outside).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{outside}: {body}");
    }
    // A table the lake does not hold: named, with where it is.
    let (status, body) = sql(&http, &r, "SELECT * FROM model_versions").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("reads the lake") && message.contains(&w),
        "{message}"
    );
    // A dataset version by number: the newest holds what the view reads.
    let (_, newest) = sql(&http, &r, "SELECT max(snapshot_id) FROM lake.snapshots()").await;
    let newest = newest["rows"][0][0].as_i64().expect("a snapshot");
    let at = format!("SELECT count(*) FROM lake.market_data AT (VERSION => {newest})");
    let (status, body) = sql(&http, &r, &at).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, now) = sql(&http, &r, "SELECT count(*) FROM market_data").await;
    assert_eq!(body["rows"], now["rows"]);
    // The page says what it reads.
    let page = get_text(&http, &format!("{r}/sql")).await;
    assert!(
        page.contains("queries read the lake") && !page.contains(PASSWORD),
        "{page}"
    );

    // psql over the replica's Postgres wire: the writer's answer.
    let (_, coins) = sql(&http, &w, "SELECT count(DISTINCT coin_id) FROM market_data").await;
    let coins = coins["rows"][0][0].as_i64().expect("coins");
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &ports[2].to_string(),
            "-U",
            "analyst",
        ])
        .args(["-d", "coincast", "-X", "-A", "-t", "-c"])
        .arg("SELECT count(DISTINCT coin_id) FROM market_data")
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .expect("psql");
    assert_eq!(text(&out).trim(), coins.to_string(), "{}", text(&out));

    // A catalog string that holds the password is refused for SQL, without saying it.
    let mut with_password = env.clone();
    with_password.retain(|(k, _)| k != "COINCAST__LAKE__CATALOG");
    with_password.push((
        "COINCAST__LAKE__CATALOG".into(),
        format!("{catalog} password={PASSWORD}"),
    ));
    let refused = serve(
        &dir.path().join("refused"),
        "replica",
        ports[3],
        "refused",
        &with_password,
    );
    let refused_base = base(ports[3]);
    wait_for(
        &http,
        &format!("{refused_base}/health"),
        Duration::from_secs(30),
    )
    .await;
    let started = Instant::now();
    loop {
        let (status, body) = sql(&http, &refused_base, "SELECT 1").await;
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(!message.contains(PASSWORD), "{message}");
        if status == StatusCode::SERVICE_UNAVAILABLE && message.contains("PGPASSWORD") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    refused.kill();
    replica.kill();
    let _ = writer.terminate();
}
