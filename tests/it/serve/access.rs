//! Access for many users, through the real binary: named tokens made by `coincast tokens`, their
//! scopes over HTTPS (curl, trusting the test's own certificate), psql over the Postgres wire
//! with `sslmode=verify-full`, a revocation and a broken file taken (or not) without a restart,
//! the audit trail, the per-token rate, bad headers, and the wire's connection limits. Every
//! connection goes to 127.0.0.1.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{certificate, coincast, coincast_command, free_port, real_coingecko, text};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTPS request with curl: (status, body). `headers` as `Name: value`.
fn https(
    cert: &str,
    method: &str,
    url: &str,
    headers: &[&str],
    body: Option<&str>,
) -> (u16, String) {
    let mut c = Command::new("curl");
    // HTTP/1.1: HTTP/2 clients refuse to send the odd headers this test sends.
    c.args([
        "-sS",
        "--http1.1",
        "--max-time",
        "10",
        "--cacert",
        cert,
        "-X",
        method,
    ])
    .args(["-w", "\n%{http_code}"]);
    for h in headers {
        c.args(["-H", h]);
    }
    if let Some(b) = body {
        c.args(["-H", "content-type: application/json", "--data-binary", b]);
    }
    let out = c.arg(url).output().expect("curl");
    let all = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = all.rsplit_once('\n').unwrap_or(("", "0"));
    let body = format!("{body}{}", String::from_utf8_lossy(&out.stderr));
    (code.trim().parse().unwrap_or(0), body)
}

/// A token made by `coincast tokens add` (its one printing).
fn add_token(data: &str, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut all = vec!["--data-dir", data, "tokens", "add"];
    all.extend_from_slice(args);
    let out = coincast(&all, env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn psql(port: u16, password: &str, sslmode: &str, cert: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .arg(format!(
            "host=localhost hostaddr=127.0.0.1 port={port} user=analyst dbname=coincast sslmode={sslmode} sslrootcert={cert}"
        ))
        .args(["-X", "-A", "-t", "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .expect("psql")
}

#[test]
fn named_tokens_scope_rotate_and_are_audited_over_https_and_the_postgres_wire() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let d = data.to_str().expect("utf-8");
    let (cert, key) = certificate(dir.path());
    let tokens_file = dir.path().join("tokens.toml");
    let tokens_path = tokens_file.to_str().expect("utf-8");
    let (port, pg_port) = (free_port(), free_port());
    let bind = format!("127.0.0.1:{port}");
    let pg_bind = format!("127.0.0.1:{pg_port}");
    let env = [
        ("COINCAST__COINS", "solana"),
        ("COINCAST__COINGECKO__BASE_URL", "http://127.0.0.1:9/api/v3"),
        ("COINCAST__SERVE__PIPELINE_SCHEDULE", ""),
        ("COINCAST__SERVE__RETRAIN_SCHEDULE", ""),
        ("COINCAST__SERVE__TOKENS_FILE", tokens_path),
        ("COINCAST__SERVE__TLS_CERT", cert.as_str()),
        ("COINCAST__SERVE__TLS_KEY", key.as_str()),
        ("COINCAST__SERVE__PG_BIND", pg_bind.as_str()),
        ("COINCAST__SERVE__PG_REQUIRE_TLS", "true"),
        ("COINCAST__SERVE__PG_MAX_CONNECTIONS", "4"),
        ("COINCAST__SERVE__PG_STARTUP_TIMEOUT_SECS", "2"),
        ("COINCAST__SERVE__PG_IDLE_TIMEOUT_SECS", "3"),
    ];
    let source = real_coingecko();
    let replay = coincast(
        &[
            "--data-dir",
            d,
            "replay",
            source.to_str().expect("utf-8"),
            "--coins",
            "solana",
        ],
        &env,
    );
    assert!(replay.status.success(), "{}", text(&replay));
    let train = coincast(
        &[
            "--data-dir",
            d,
            "train",
            "--candidates",
            "persistence,persistence_ewma,drift_ewma",
            "--windows",
            "2",
            "--register-all",
        ],
        &env,
    );
    assert!(train.status.success(), "{}", text(&train));
    let reader = add_token(d, &env, &["dashboards", "--scope", "read"]);
    let analyst = add_token(d, &env, &["analyst", "--scope", "sql"]);
    let ops = add_token(d, &env, &["ops", "--scope", "admin"]);
    let slow = add_token(
        d,
        &env,
        &["slow-bot", "--scope", "read", "--requests-per-minute", "2"],
    );
    assert!(!std::fs::read_to_string(&tokens_file)
        .expect("file")
        .contains(&analyst));
    let listed = coincast(&["--data-dir", d, "tokens", "list"], &env);
    assert!(
        text(&listed).contains("analyst") && text(&listed).contains("sql"),
        "{}",
        text(&listed)
    );

    let server = Server(
        coincast_command(&["--data-dir", d, "serve", "--bind", &bind], &env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve"),
    );
    let base = format!("https://localhost:{port}");
    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    let started = Instant::now();
    while https(&cert, "GET", &format!("{base}/health"), &[], None).0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server never answered"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Scopes: reading needs a token; a read token reads and cannot promote or query.
    let overview = format!("{base}/api/overview");
    assert_eq!(https(&cert, "GET", &overview, &[], None).0, 401);
    assert_eq!(
        https(&cert, "GET", &overview, &[&bearer(&reader)], None).0,
        200
    );
    let models = https(
        &cert,
        "GET",
        &format!("{base}/api/models"),
        &[&bearer(&ops)],
        None,
    );
    assert_eq!(models.0, 200, "{}", models.1);
    let challenger = serde_json::from_str::<serde_json::Value>(&models.1).expect("models")
        ["registry"]
        .as_array()
        .expect("registry")
        .iter()
        .filter_map(|m| m["model_id"].as_str())
        .find(|id| id.starts_with("drift_ewma"))
        .expect("a challenger")
        .to_string();
    // The models page: the champion's interval score by horizon against persistence.
    let page: serde_json::Value = serde_json::from_str(&models.1).expect("models");
    let by_horizon = page["interval_score_by_horizon"]
        .as_array()
        .expect("scores");
    let persistence: Vec<i64> = by_horizon
        .iter()
        .filter(|r| r["coin_id"] == "solana" && r["model"] == "persistence")
        .filter_map(|r| r["horizon"].as_i64())
        .collect();
    assert_eq!(persistence, (1..=24).collect::<Vec<_>>(), "{}", models.1);
    // Its reliability diagram and PIT histogram from the walk-forward: coverage grows with the
    // level, and the PIT's bins hold every outcome once.
    let solana = page["reliability"]
        .as_array()
        .and_then(|r| r.iter().find(|c| c["coin_id"] == "solana"))
        .expect("reliability for solana");
    let points = solana["walk_forward"].as_array().expect("points");
    assert_eq!(points.len(), 12, "{solana}");
    let coverage: Vec<f64> = points
        .iter()
        .filter_map(|p| p["coverage"].as_f64())
        .collect();
    assert!(
        coverage.windows(2).all(|w| w[0] <= w[1] + 1e-12),
        "{coverage:?}"
    );
    let n = points[0]["n"].as_i64().expect("n");
    let pit = page["pit"]
        .as_array()
        .and_then(|p| p.iter().find(|c| c["coin_id"] == "solana"))
        .expect("pit for solana");
    let counted: i64 = pit["bins"]
        .as_array()
        .expect("bins")
        .iter()
        .filter_map(|b| b["count"].as_i64())
        .sum();
    assert!(n > 0 && counted == n, "{pit}");
    let html = https(
        &cert,
        "GET",
        &format!("{base}/models"),
        &[&bearer(&ops)],
        None,
    );
    assert!(html.1.contains("id=\"calibration\"") && html.1.contains("PIT histogram"));
    assert!(
        html.1.contains("interval-score-by-horizon")
            && html.1.contains("persistence, constant width")
    );
    let promote = format!("{base}/api/models/{challenger}/promote");
    let (status, body) = https(
        &cert,
        "POST",
        &promote,
        &[&bearer(&reader)],
        Some(r#"{"force":true}"#),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("dashboards") && body.contains("read scope"),
        "{body}"
    );
    let sql_url = format!("{base}/api/sql");
    let query = r#"{"sql":"SELECT count(*) AS n FROM market_data"}"#;
    assert_eq!(
        https(&cert, "POST", &sql_url, &[&bearer(&reader)], Some(query)).0,
        403
    );
    let (status, body) = https(
        &cert,
        "POST",
        &promote,
        &[&bearer(&ops)],
        Some(r#"{"force":true}"#),
    );
    assert_eq!(status, 200, "{body}");

    // The SQL token: over HTTPS, and with psql over TLS, the certificate checked.
    let mut answered = (0, String::new());
    for _ in 0..100 {
        answered = https(&cert, "POST", &sql_url, &[&bearer(&analyst)], Some(query));
        if answered.0 == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(answered.0, 200, "{}", answered.1);
    let out = psql(
        pg_port,
        &analyst,
        "verify-full",
        &cert,
        "SELECT count(DISTINCT coin_id) FROM market_data",
    );
    assert_eq!(text(&out).trim(), "1", "{}", text(&out));
    let plain = psql(pg_port, &analyst, "disable", &cert, "SELECT 1");
    assert!(!plain.status.success());
    assert!(text(&plain).contains("requires TLS"), "{}", text(&plain));
    let wrong = psql(pg_port, &reader, "require", &cert, "SELECT 1");
    assert!(
        !wrong.status.success(),
        "a read token opens no SQL: {}",
        text(&wrong)
    );

    // Revoked in the file: refused from the next request on, over HTTP and the wire.
    let revoke = coincast(&["--data-dir", d, "tokens", "revoke", "analyst"], &env);
    assert_eq!(revoke.status.code(), Some(0), "{}", text(&revoke));
    let (status, body) = https(&cert, "POST", &sql_url, &[&bearer(&analyst)], Some(query));
    assert_eq!(status, 401, "{body}");
    assert!(!psql(pg_port, &analyst, "verify-full", &cert, "SELECT 1")
        .status
        .success());

    // A token in the URL, and odd Authorization headers.
    let in_url = format!("{overview}?token={reader}");
    assert_eq!(https(&cert, "GET", &in_url, &[], None).0, 400);
    for header in [
        "Authorization: Basic !!!not-base64!!!",
        "Authorization: Basic w6k=",
        "Authorization: Basic Y29pbmNhc3Q=",
        "Authorization: Digest abc",
        "Authorization: Bearer \u{e9}t\u{e9}",
    ] {
        let (status, body) = https(&cert, "GET", &overview, &[header], None);
        assert_eq!(status, 401, "{header}: {body}");
    }
    // Control characters never reach a handler: the HTTP parser answers 400, never 500.
    for header in [
        "Authorization: Bearer ",
        "Authorization: Bearer \u{7f}\u{1}",
    ] {
        let (status, body) = https(&cert, "GET", &overview, &[header], None);
        assert!(status == 400 || status == 401, "{header}: {status} {body}");
    }

    // The per-token rate: the third request in a minute is 429 with Retry-After.
    let slow_header = bearer(&slow);
    assert_eq!(https(&cert, "GET", &overview, &[&slow_header], None).0, 200);
    assert_eq!(https(&cert, "GET", &overview, &[&slow_header], None).0, 200);
    let limited = Command::new("curl")
        .args([
            "-sS",
            "-i",
            "--cacert",
            &cert,
            "-H",
            &slow_header,
            &overview,
        ])
        .output()
        .expect("curl");
    let limited = String::from_utf8_lossy(&limited.stdout).to_lowercase();
    assert!(
        limited.lines().next().is_some_and(|l| l.contains(" 429"))
            && limited.contains("retry-after:"),
        "{limited}"
    );

    // A broken file: the last good tokens stay, the metric says so.
    let good = std::fs::read_to_string(&tokens_file).expect("file");
    std::fs::write(
        &tokens_file,
        format!("{good}\n[[token]]\nname = \"x\"\nscope = \"root\"\n"),
    )
    .expect("break");
    assert_eq!(
        https(&cert, "GET", &overview, &[&bearer(&reader)], None).0,
        200
    );
    let metrics = https(&cert, "GET", &format!("{base}/metrics"), &[], None).1;
    assert!(metrics.contains("coincast_tokens_file_ok 0"), "{metrics}");
    assert!(
        metrics.contains("coincast_token_requests_limited_total{token=\"slow-bot\"} 1"),
        "{metrics}"
    );
    std::fs::write(&tokens_file, good).expect("mend");

    // The Postgres wire's limits: connections that never start up are closed after the
    // start-up limit, one over the cap is refused, an idle session is closed.
    let silent: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", pg_port)).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let over = std::process::Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={pg_port} user=a dbname=c sslmode=disable"
        ))
        .args(["-X", "-c", "SELECT 1"])
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .expect("psql");
    assert!(
        text(&over).contains("too many connections"),
        "{}",
        text(&over)
    );
    for mut s in silent {
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut buf = [0u8; 16];
        assert_eq!(
            s.read(&mut buf).unwrap_or(0),
            0,
            "closed after the start-up limit"
        );
    }
    let metrics = https(&cert, "GET", &format!("{base}/metrics"), &[], None).1;
    assert!(
        metrics.contains("coincast_pg_connections_closed_total{reason=\"startup_timeout\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("coincast_pg_connections_closed_total{reason=\"limit\"} 1"),
        "{metrics}"
    );
    let script = format!(
        "import psycopg, time\n\
         c = psycopg.connect('host=localhost hostaddr=127.0.0.1 port={pg_port} user=ops dbname=coincast sslmode=verify-full sslrootcert={cert} password={ops}', autocommit=True)\n\
         print(c.execute('SELECT 1').fetchone()[0])\n\
         time.sleep(5)\n\
         try:\n\
         \x20   c.execute('SELECT 1')\n\
         \x20   print('still open')\n\
         except Exception as e:\n\
         \x20   print('closed')\n"
    );
    let idle = crate::support::run_python(&script, &[]);
    assert_eq!(
        idle.split_whitespace().collect::<Vec<_>>(),
        ["1", "closed"],
        "{idle}"
    );

    // The audit trail names who did what, and never a token.
    let (status, audit) = https(
        &cert,
        "GET",
        &format!("{base}/api/audit"),
        &[&bearer(&ops)],
        None,
    );
    assert_eq!(status, 200, "{audit}");
    let mut found = None;
    for _ in 0..50 {
        let (_, a) = https(
            &cert,
            "GET",
            &format!("{base}/api/audit"),
            &[&bearer(&ops)],
            None,
        );
        let v: serde_json::Value = serde_json::from_str(&a).expect("audit");
        let events = v["events"].as_array().cloned().unwrap_or_default();
        let did = |token: &str, channel: &str, action: &str, outcome: &str| {
            events.iter().any(|e| {
                e["token"] == token
                    && e["channel"] == channel
                    && e["action"].as_str().is_some_and(|x| x.contains(action))
                    && e["outcome"] == outcome
            })
        };
        if did("ops", "http", "/promote", "200")
            && did("dashboards", "http", "/promote", "403")
            && did("analyst", "http", "sql", "ok")
            && did("analyst", "postgres", "sql", "ok")
        {
            found = Some(a);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let audit = found.expect("the audit trail names ops, dashboards and analyst");
    for secret in [&reader, &analyst, &ops, &slow] {
        assert!(
            !audit.contains(secret.as_str()),
            "a token in the audit trail"
        );
    }
    let page = https(
        &cert,
        "GET",
        &format!("{base}/audit"),
        &[&bearer(&ops)],
        None,
    );
    assert!(page.0 == 200 && page.1.contains("analyst"), "{}", page.1);
    assert_eq!(
        https(
            &cert,
            "GET",
            &format!("{base}/audit"),
            &[&bearer(&reader)],
            None
        )
        .0,
        403
    );
    drop(server);

    // At start-up, a broken file stops the server, naming the line.
    std::fs::write(&tokens_file, "[[token]]\nname = \"a\"\nscope = \"sql\"\nsha256 = \"zz\"\ncreated = 2026-01-01T00:00:00Z\n").expect("break");
    let out = coincast(&["--data-dir", d, "serve", "--bind", "127.0.0.1:0"], &env);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("line 2") && text(&out).contains("sha256"),
        "{}",
        text(&out)
    );
}
