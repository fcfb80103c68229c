//! SQL while the appliance runs: the published read-only copy (read by DuckDB's own CLI and
//! Python client from PyPI while the next copy is published), `POST /api/sql` and the query box
//! in their sandbox, and every way out of it refused or bounded.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{coincast, real_coingecko, runtime_over, serve_on_localhost, text, TestApp};

/// The venv with duckdb and duckdb-cli 1.5 (`make test` makes it; COINCAST_VENV names it).
fn venv() -> PathBuf {
    std::env::var_os("COINCAST_VENV").map_or_else(
        || Path::new(&std::env::var("HOME").expect("HOME")).join(".cache/coincast/venv"),
        PathBuf::from,
    )
}

fn python_count(db: &Path, sql: &str) -> Result<i64, String> {
    count_printed_by(
        Command::new(venv().join("bin/python"))
            .arg("-c")
            .arg(
                "import duckdb, sys\n\
                 c = duckdb.connect(sys.argv[1], read_only=True)\n\
                 c.execute('SET enable_progress_bar = false')\n\
                 print(c.sql(sys.argv[2]).fetchone()[0])",
            )
            .arg(db)
            .arg(sql),
    )
}

fn cli_count(db: &Path, sql: &str) -> Result<i64, String> {
    count_printed_by(
        Command::new(venv().join("bin/duckdb"))
            .args(["-readonly", "-noheader", "-csv"])
            .arg(db)
            .arg("-c")
            .arg(sql),
    )
}

/// The one number a client printed, or what it said instead.
fn count_printed_by(command: &mut Command) -> Result<i64, String> {
    let out = command.output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .trim()
        .parse()
        .map_err(|_| format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_copy_is_read_by_duckdb_clients_while_the_next_is_published() {
    let app = TestApp::new(&[]);
    app.replay(&real_coingecko(), Some(&["solana", "cardano"]))
        .await;
    let live = app.count("SELECT count(*) FROM market_data");
    let first = coincast::store::publish(app.store.conn(), app.dir.path()).expect("publish");
    assert!(first
        .tables
        .iter()
        .any(|t| t.name == "market_data" && t.rows == live));
    let db = first.database.clone();
    assert_eq!(
        python_count(&db, "SELECT count(*) FROM market_data"),
        Ok(live)
    );
    assert_eq!(cli_count(&db, "SELECT count(*) FROM market_data"), Ok(live));
    let parquet = first.parquet.join("market_data.parquet");
    assert_eq!(
        python_count(
            &db,
            &format!("SELECT count(*) FROM read_parquet('{}')", parquet.display())
        ),
        Ok(live)
    );
    // Readers in a loop, both clients, while the appliance publishes five more copies.
    let readers: Vec<_> = (0..2)
        .map(|k| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut counts = Vec::new();
                for _ in 0..8 {
                    let sql = "SELECT count(*) FROM market_data";
                    counts.push(if k == 0 {
                        python_count(&db, sql)
                    } else {
                        cli_count(&db, sql)
                    });
                }
                counts
            })
        })
        .collect();
    let mut versions = vec![first.version.clone()];
    for _ in 0..5 {
        let p = coincast::store::publish(app.store.conn(), app.dir.path()).expect("publish");
        versions.push(p.version);
    }
    for reader in readers {
        for count in reader.join().expect("reader") {
            assert_eq!(count, Ok(live), "a reader saw a broken copy");
        }
    }
    versions.dedup();
    assert_eq!(versions.len(), 6, "{versions:?}");
    // Two Parquet versions are kept (a reader of the previous one is not cut off).
    let kept = std::fs::read_dir(app.dir.path().join("published"))
        .expect("published")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("parquet-"))
        .count();
    assert_eq!(kept, 2);
}

struct Sql {
    base: String,
    http: reqwest::Client,
    app: TestApp,
}

impl Sql {
    async fn post(&self, sql: &str) -> (StatusCode, Value) {
        let body = serde_json::json!({ "sql": sql, "limit": 50 }).to_string();
        let url = format!("{}/api/sql", self.base);
        crate::support::post_json_with_status(&self.http, &url, &body).await
    }
}

async fn sql_server(overrides: &[(&str, &str)]) -> Sql {
    let app = TestApp::new(overrides);
    app.replay(&real_coingecko(), Some(&["solana"])).await;
    let runtime =
        runtime_over(&app, &app.settings).with_db(app.store.conn().try_clone().expect("conn"));
    runtime.publish_copy(app.store.conn()).expect("publish");
    let base = serve_on_localhost(Arc::new(runtime)).await;
    Sql {
        base,
        http: reqwest::Client::new(),
        app,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_answers_with_typed_columns_and_bounded_rows() {
    let sql = sql_server(&[]).await;
    let (s, b) = sql
        .post("SELECT coin_id, count(*) AS hours, max(price) AS top FROM market_data GROUP BY coin_id")
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["columns"][0]["name"], "coin_id");
    assert!(b["columns"][1]["type"].is_string(), "{b}");
    assert_eq!(b["rows"][0][0], "solana");
    assert!(b["rows"][0][1].as_i64().is_some_and(|n| n > 1000), "{b}");
    assert_eq!(b["truncated"], false);
    assert!(b["elapsed_ms"].as_f64().is_some());
    // Ten million rows: the first `limit`, and `truncated`.
    let (s, b) = sql.post("SELECT * FROM range(10000000)").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["rows"].as_array().map(Vec::len), Some(50));
    assert_eq!(b["truncated"], true);
    // DESCRIBE, SHOW, SUMMARIZE and EXPLAIN are reads.
    for read in [
        "DESCRIBE market_data",
        "SHOW TABLES",
        "SUMMARIZE market_data",
        "EXPLAIN SELECT * FROM market_data",
        "WITH x AS (SELECT 1 AS one) SELECT * FROM x",
    ] {
        let (s, b) = sql.post(read).await;
        assert_eq!(s, StatusCode::OK, "{read}: {b}");
    }
    // CSV, with a header.
    let csv = sql
        .http
        .post(format!("{}/api/sql?format=csv", sql.base))
        .header("content-type", "application/json")
        .body(r#"{"sql": "SELECT 'a,b' AS x, 2 AS y"}"#)
        .send()
        .await
        .expect("csv");
    assert_eq!(csv.status(), StatusCode::OK);
    assert_eq!(csv.headers()["x-coincast-truncated"], "false");
    assert_eq!(csv.headers()["x-coincast-row-count"], "1");
    assert_eq!(csv.text().await.expect("body"), "x,y\n\"a,b\",2\n");
    // Without a limit a program gets up to serve.sql_max_rows, and an incomplete answer says
    // so: in headers, in JSON, and on the CSV's last line.
    let max = sql.app.settings.serve.sql_max_rows;
    let post_all = |format: &'static str| {
        sql.http
            .post(format!("{}/api/sql?format={format}", sql.base))
            .header("content-type", "application/json")
            .body(r#"{"sql": "SELECT * FROM range(20000)"}"#)
            .send()
    };
    let r = post_all("json").await.expect("json");
    assert_eq!(r.headers()["x-coincast-truncated"], "true");
    assert_eq!(
        r.headers()["x-coincast-row-count"],
        max.to_string().as_str()
    );
    let b: Value = serde_json::from_str(&r.text().await.expect("body")).expect("json body");
    assert_eq!(b["rows"].as_array().map(Vec::len), Some(max));
    assert_eq!(b["truncated"], true);
    assert_eq!(b["limit"], max);
    let r = post_all("csv").await.expect("csv");
    assert_eq!(r.headers()["x-coincast-truncated"], "true");
    let text = r.text().await.expect("csv body");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + max + 1, "header, rows, marker");
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("# truncated: the first")),
        "{:?}",
        lines.last()
    );
    // The page's download keeps the limit the page used.
    let page = crate::support::get_text(
        &sql.http,
        &format!(
            "{}/sql?q=SELECT%20*%20FROM%20range(20000)&limit=5000",
            sql.base
        ),
    )
    .await;
    assert!(
        page.contains("5000 row(s)") && page.contains("truncated at 5000"),
        "{page}"
    );
    assert!(page.contains("limit=5000\">download CSV"), "{page}");
    let r = sql
        .http
        .get(format!(
            "{}/sql/download?q=SELECT%20*%20FROM%20range(20000)&limit=5000",
            sql.base
        ))
        .send()
        .await
        .expect("download");
    assert_eq!(r.headers()["x-coincast-row-count"], "5000");
    assert_eq!(r.text().await.expect("csv").lines().count(), 1 + 5000 + 1);
    // PRAGMAs that DuckDB answers as a query are reads (README: "SQL while the appliance runs").
    for read in [
        "PRAGMA version",
        "PRAGMA table_info('market_data')",
        "PRAGMA database_list",
    ] {
        let (s, b) = sql.post(read).await;
        assert_eq!(s, StatusCode::OK, "{read}: {b}");
        assert!(
            b["rows"].as_array().is_some_and(|r| !r.is_empty()),
            "{read}: {b}"
        );
    }
    // The query box: the page runs it and links the download.
    let page = sql
        .http
        .get(format!("{}/sql?q=SELECT%2042%20AS%20answer", sql.base))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("id=\"sql-result\"") && page.contains(">42<"),
        "{page}"
    );
    assert!(page.contains("/sql/download?q="), "{page}");
}

/// Every way out of the sandbox is refused or bounded with its status, and the live database is
/// never written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_escape_is_refused_or_bounded() {
    let sql = sql_server(&[("COINCAST__SERVE__SQL_TIMEOUT_SECS", "2")]).await;
    let tables_before = sql
        .app
        .count("SELECT count(*) FROM duckdb_tables() WHERE NOT temporary");
    let rows_before = sql.app.count("SELECT count(*) FROM market_data");
    let forbidden = [
        "COPY market_data TO '/tmp/coincast-escape.csv'",
        "EXPORT DATABASE '/tmp/coincast-escape'",
        "ATTACH '/tmp/coincast-escape.duckdb' AS x",
        "DETACH x",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_blob('/etc/passwd')",
        "SELECT * FROM glob('/*')",
        "CREATE TABLE x (a INTEGER)",
        "INSERT INTO market_data SELECT * FROM market_data",
        "UPDATE market_data SET price = 0",
        "DELETE FROM market_data",
        "DROP TABLE market_data",
        "PRAGMA threads = 8",
        "PRAGMA enable_profiling",
        "PRAGMA memory_limit = '100GB'",
        "SET threads = 8",
        "RESET threads",
        "CALL pragma_version()",
        "SELECT 1; DROP TABLE x",
    ];
    for q in forbidden {
        let (s, b) = sql.post(q).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{q}: {b}");
        assert_eq!(b["error"]["code"], "forbidden", "{q}: {b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{q}: {b}"
        );
    }
    let (s, b) = sql.post("SELEC oops").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["error"]["code"], "bad_sql");
    let (s, b) = sql.post("SELECT count(*) FROM range(1000000000000)").await;
    assert_eq!(s, StatusCode::REQUEST_TIMEOUT, "{b}");
    assert_eq!(b["error"]["code"], "timeout");
    let (s, b) = sql.post("SELECT count(*) FROM range(1e12)").await;
    assert!(
        s == StatusCode::REQUEST_TIMEOUT || s == StatusCode::BAD_REQUEST,
        "{s}: {b}"
    );
    // A megabyte of query text is over the body limit: answered 413 before it is all read (so
    // through a raw socket that reads while it writes).
    let huge = format!("{{\"sql\": \"SELECT 1 -- {}\"}}", "x".repeat(1 << 20));
    let answer = raw_post(&sql.base, "/api/sql", &huge);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    // After all of it, the sandbox still answers and nothing was written.
    let (s, _) = sql.post("SELECT 1").await;
    assert_eq!(s, StatusCode::OK);
    assert!(!Path::new("/tmp/coincast-escape.csv").exists());
    assert_eq!(
        sql.app
            .count("SELECT count(*) FROM duckdb_tables() WHERE NOT temporary"),
        tables_before
    );
    assert_eq!(
        sql.app.count("SELECT count(*) FROM market_data"),
        rows_before
    );
}

/// A POST written whole whatever the server does meanwhile; the answer as text.
fn raw_post(base: &str, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    // Read while writing: the answer must be taken before the reset that closes the connection.
    let mut reader = stream.try_clone().expect("clone");
    let answer = std::thread::spawn(move || {
        let mut answer = Vec::new();
        let _ = reader.read_to_end(&mut answer);
        answer
    });
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let answer = answer.join().expect("reader");
    String::from_utf8_lossy(&answer).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_needs_its_token_and_is_off_beyond_loopback_without_one() {
    let sql = sql_server(&[("COINCAST__SERVE__SQL_TOKEN", "q")]).await;
    let (s, b) = sql.post("SELECT 1").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    let r = sql
        .http
        .post(format!("{}/api/sql", sql.base))
        .bearer_auth("q")
        .header("content-type", "application/json")
        .body(r#"{"sql": "SELECT 1"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    // No token at all and a bind beyond loopback: refused.
    let open = sql_server(&[("COINCAST__SERVE__BIND", "0.0.0.0:8000")]).await;
    let (s, b) = open.post("SELECT 1").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
}

/// The real solana file replayed into `data_dir` by the binary (exit 0, or 3 for a quarantined
/// batch).
fn replay_solana(data_dir: &Path, env: &[(&str, &str)]) {
    let files = data_dir.join("seed");
    std::fs::create_dir(&files).expect("mkdir");
    std::fs::copy(
        real_coingecko().join("solana.json"),
        files.join("solana.json"),
    )
    .expect("copy");
    let d = data_dir.to_str().expect("utf-8");
    let out = coincast(
        &["--data-dir", d, "replay", files.to_str().expect("utf-8")],
        env,
    );
    assert!(
        out.status.code().is_some_and(|c| c == 0 || c == 3),
        "{}",
        text(&out)
    );
}

#[test]
fn coincast_export_publishes_and_names_what_it_wrote() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().to_str().expect("utf-8");
    let env = [("COINCAST__COINGECKO__BASE_URL", "http://127.0.0.1:9")];
    replay_solana(dir.path(), &env);
    let out = coincast(&["--data-dir", d, "export"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("market_data"), "{}", text(&out));
    let db = dir.path().join("published/coincast.duckdb");
    assert!(python_count(&db, "SELECT count(*) FROM market_data").is_ok_and(|n| n > 1000));
    assert!(dir
        .path()
        .join("published/parquet/market_data.parquet")
        .exists());
}

/// The Postgres wire through the real binary: psql's `\dt` and `\d market_data` verbatim,
/// psycopg with parameters (the extended protocol) and its transactions, a refused write, a
/// wrong password.
#[test]
fn the_postgres_wire_serves_psql_and_psycopg() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().to_str().expect("utf-8");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let pg_bind = format!("127.0.0.1:{port}");
    let env = [
        ("COINCAST__COINGECKO__BASE_URL", "http://127.0.0.1:9/api/v3"),
        ("COINCAST__SERVE__PIPELINE_SCHEDULE", ""),
        ("COINCAST__SERVE__RETRAIN_SCHEDULE", ""),
        ("COINCAST__SERVE__SQL_TOKEN", "s3cret"),
        ("COINCAST__SERVE__PG_BIND", pg_bind.as_str()),
    ];
    replay_solana(dir.path(), &env);
    let server = crate::support::coincast_command(
        &["--data-dir", d, "serve", "--bind", "127.0.0.1:0"],
        &env,
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("serve");
    let psql = |password: &str, command: &str| {
        Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "analyst"])
            .args(["-d", "coincast", "-X", "-c", command])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .expect("psql")
    };
    // Up once the first copy is published (the worker does it right after start).
    let mut ready = false;
    for _ in 0..100 {
        if psql("s3cret", "SELECT count(*) FROM market_data")
            .status
            .success()
        {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(ready, "psql never got an answer");
    let tables = psql("s3cret", "\\dt");
    let listing = text(&tables);
    assert!(tables.status.success(), "{listing}");
    assert!(
        listing.contains("market_data")
            && listing.contains("table")
            && listing.contains("features"),
        "{listing}"
    );
    let described = psql("s3cret", "\\d market_data");
    let columns = text(&described);
    assert!(described.status.success(), "{columns}");
    assert!(columns.contains("Table \"main.market_data\""), "{columns}");
    assert!(
        columns.contains("price") && columns.contains("float8") && columns.contains("not null"),
        "{columns}"
    );
    let refused = psql("s3cret", "DROP TABLE market_data");
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("only a read is allowed"),
        "{}",
        text(&refused)
    );
    let wrong = psql("nope", "SELECT 1");
    assert!(!wrong.status.success());
    assert!(
        text(&wrong)
            .to_lowercase()
            .contains("password authentication failed"),
        "{}",
        text(&wrong)
    );
    // psycopg: the extended protocol with parameters, inside its implicit transaction.
    let script = format!(
        "import psycopg\n\
         with psycopg.connect('host=127.0.0.1 port={port} user=analyst password=s3cret dbname=coincast') as c:\n\
         \x20   cur = c.cursor()\n\
         \x20   cur.execute('SELECT count(*) FROM market_data WHERE coin_id = %s AND price > %s', ('solana', 1))\n\
         \x20   print(cur.fetchone()[0])\n\
         \x20   try:\n\
         \x20       cur.execute('DELETE FROM market_data')\n\
         \x20   except psycopg.errors.InsufficientPrivilege as e:\n\
         \x20       print('refused', e.sqlstate)\n"
    );
    let out = Command::new(venv().join("bin/python"))
        .arg("-c")
        .arg(script)
        .output()
        .expect("python");
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    let mut lines = said.lines();
    assert!(
        lines
            .next()
            .and_then(|l| l.trim().parse::<i64>().ok())
            .is_some_and(|n| n > 1000),
        "{said}"
    );
    assert!(said.contains("refused 42501"), "{said}");
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = server.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
