//! The lake: dataset versions as DuckLake snapshots on local disk, read back by the binary
//! (`datasets`), by time travel, and by DuckDB's Python client with the ducklake extension.

use std::path::{Path, PathBuf};

use coincast::model::registry::{self, DatasetTables};

use crate::support::{coincast, real_coingecko, revised_solana, run_python, text, TestApp};

/// The lake's tables at one version, for `registry::dataset_hash`.
fn at_version(version: i64) -> DatasetTables {
    DatasetTables {
        features: format!("(FROM lake.features AT (VERSION => {version}))"),
        market_data: format!("(FROM lake.market_data AT (VERSION => {version}))"),
    }
}

/// `coincast replay` of one real coin into `dir`, which must succeed.
fn replay_real_coin(dir: &str, coin: &str) {
    let data = real_coingecko();
    let out = coincast(
        &[
            "--data-dir",
            dir,
            "replay",
            data.to_str().expect("utf-8"),
            "--coins",
            coin,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

fn versions_json(dir: &str) -> serde_json::Value {
    let out = coincast(&["--data-dir", dir, "datasets", "list", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("versions json")
}

fn extension(name: &str) -> PathBuf {
    PathBuf::from(env!("COINCAST_BUILD_EXTENSION_DIR")).join(format!("{name}.duckdb_extension"))
}

/// A replay commits a version; training names it; a later revision makes a new version while
/// the old one still rebuilds the model's rows to its registered hash; an export reproduces a
/// version's hash; nothing changed commits nothing; DuckDB's Python client reads the same rows.
#[test]
fn versions_are_committed_rebuilt_exported_and_read_by_other_engines() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().to_str().expect("utf-8");
    replay_real_coin(d, "solana");
    let versions = versions_json(d);
    assert_eq!(versions.as_array().map(Vec::len), Some(1), "{versions}");
    let first = versions[0]["version"].as_i64().expect("version id");
    assert_eq!(versions[0]["info"]["changed"][0]["coin_id"], "solana");

    // Training records the version it read.
    let out = coincast(
        &[
            "--data-dir",
            d,
            "train",
            "--coins",
            "solana",
            "--candidates",
            "persistence,persistence_ewma",
            "--windows",
            "1",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("trained on dataset version {first}")),
        "{}",
        text(&out)
    );

    // The lineage: the model, its version, the batch merged into it and its hours.
    let champion = {
        let store = coincast::store::Store::open(dir.path()).expect("open");
        registry::champion(store.conn())
            .expect("q")
            .expect("a champion")
            .model_id
    };
    let out = coincast(&["--data-dir", d, "datasets", "lineage", &champion], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let lineage = text(&out);
    assert!(
        lineage.contains(&format!("trained on dataset version {first}")),
        "{lineage}"
    );
    let solana: Vec<&str> = lineage
        .lines()
        .find(|l| l.starts_with("solana"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(solana.get(1), Some(&"1"), "one merged batch: {lineage}");
    assert_eq!(solana.get(2), Some(&"23987"), "its hours: {lineage}");

    // The same data again changes no hour: a version only for the new batch's metadata, with
    // the same content hash.
    replay_real_coin(d, "solana");
    let versions = versions_json(d);
    assert_eq!(versions.as_array().map(Vec::len), Some(2), "{versions}");
    assert_eq!(
        versions[1]["info"]["changed"].as_array().map(Vec::len),
        Some(0)
    );
    assert_eq!(
        versions[1]["info"]["content_hash"],
        versions[0]["info"]["content_hash"]
    );

    // A provider revises past hours: a new version with another hash.
    let revised = tempfile::tempdir().expect("revised");
    revised_solana(revised.path());
    let out = coincast(
        &[
            "--data-dir",
            d,
            "replay",
            revised.path().to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}", text(&out));
    let versions = versions_json(d);
    let newest = &versions[versions.as_array().map_or(0, Vec::len) - 1];
    let last = newest["version"].as_i64().expect("id");
    assert_ne!(
        newest["info"]["content_hash"],
        versions[0]["info"]["content_hash"]
    );

    // The export of the first version reproduces its hash.
    let export = dir.path().join("export-first");
    let out = coincast(
        &[
            "--data-dir",
            d,
            "datasets",
            "export",
            &first.to_string(),
            "--to",
            export.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("reproduced"), "{}", text(&out));
    assert!(export.join("features.parquet").exists());
    let out = coincast(
        &[
            "--data-dir",
            d,
            "datasets",
            "diff",
            &first.to_string(),
            &last.to_string(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("solana"), "{}", text(&out));
    let out = coincast(&["--data-dir", d, "datasets", "show", "999999"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // In the binary's own process: the model's rows rebuilt from the lake at its version give
    // its registered hash, though later batches revised some of them; every version holds each
    // (coin, hour) once; nothing changed commits nothing.
    let mut settings =
        coincast::config::Settings::load_with_env(None, Vec::new()).expect("settings");
    settings.data_dir = dir.path().to_path_buf();
    {
        let store = coincast::store::Store::open(dir.path()).expect("open");
        let conn = store.conn();
        coincast::lake::attach(conn, &settings).expect("attach");
        let champion = registry::champion(conn).expect("q").expect("a champion");
        assert_eq!(champion.lake_version, Some(first));
        let coins = vec!["solana".to_string()];
        let until = champion.trained_until_hour.expect("trained until") + 1;
        let rebuilt = registry::dataset_hash(conn, &at_version(first), &coins, "usd", until)
            .expect("hash at the model's version");
        assert_eq!(rebuilt, champion.dataset_version);
        let now = registry::dataset_hash(conn, &at_version(last), &coins, "usd", until)
            .expect("hash now");
        assert_ne!(now, champion.dataset_version, "the revision must show");
        for v in [first, last] {
            let (rows, distinct): (i64, i64) = conn
                .query_row(
                    &format!(
                        "SELECT count(*), count(DISTINCT (coin_id, vs_currency, ts))
                         FROM lake.market_data AT (VERSION => {v})"
                    ),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .expect("counts");
            assert_eq!(rows, distinct, "version {v}");
            assert!(rows > 20_000, "version {v}: {rows}");
        }
        let rules = coincast::quality::RuleSet::load(&settings.quality).expect("rules");
        let again = coincast::lake::commit(conn, None, "usd", &rules).expect("commit");
        assert!(again.is_none(), "nothing changed, yet a version: {again:?}");
    }

    // Another engine: DuckDB's Python client with the ducklake extension counts the live rows.
    let script = format!(
        "import duckdb\n\
         c = duckdb.connect()\n\
         c.execute('SET enable_progress_bar = false')\n\
         c.execute(\"LOAD '{ext}'\")\n\
         c.execute(\"ATTACH 'ducklake:{cat}' AS lake (READ_ONLY)\")\n\
         lake = c.execute('SELECT count(*) FROM lake.market_data').fetchone()[0]\n\
         c.execute(\"ATTACH '{db}' AS live (READ_ONLY)\")\n\
         live = c.execute('SELECT count(*) FROM live.market_data').fetchone()[0]\n\
         print(lake, live)\n",
        ext = extension("ducklake").display(),
        cat = dir.path().join("lake/catalog.ducklake").display(),
        db = dir.path().join("coincast.duckdb").display(),
    );
    let printed = run_python(&script, &[]);
    let counts: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(counts.len(), 2, "{printed}");
    assert_eq!(counts[0], counts[1], "lake and live rows: {printed}");
}

/// With the lake off nothing is attached or written, and `datasets` says why.
#[test]
fn the_lake_can_be_turned_off() {
    let app = TestApp::new(&[("COINCAST__LAKE__ENABLED", "false")]);
    let d = app.dir.path().to_str().expect("utf-8").to_string();
    drop(app.store);
    let out = coincast(
        &["--data-dir", &d, "datasets", "list"],
        &[("COINCAST__LAKE__ENABLED", "false")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("lake.enabled"), "{}", text(&out));
    assert!(!app.dir.path().join("lake").exists());
}

/// The lake on S3 (SeaweedFS on 127.0.0.1): a replay puts Parquet files in the bucket, and
/// DuckDB's Python client counts the live rows through the catalog. A wrong key, a stopped
/// server and a missing bucket fail the run visibly (exit 1, the `version` task), keep the local
/// data, leave no half version, and the next run commits what was missed.
#[test]
fn the_lake_on_s3_fails_visibly_and_catches_up() {
    use crate::support::seaweedfs::{SeaweedFs, ACCESS_KEY, BUCKET, SECRET_KEY};
    let scratch = tempfile::tempdir().expect("scratch");
    let mut s3 = SeaweedFs::start(&scratch.path().join("s3"));
    let dir = tempfile::tempdir().expect("data");
    let d = dir.path().to_str().expect("utf-8");
    let catalog = scratch.path().join("catalog/lake.ducklake");
    let endpoint = s3.endpoint();
    let data_path = format!("s3://{BUCKET}/prefix");
    let env = |secret: &'static str, data_path: &str| -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("COINCAST__LAKE__DATA_PATH", data_path),
            ("COINCAST__S3__ENDPOINT", endpoint.as_str()),
            ("COINCAST__S3__URL_STYLE", "path"),
            ("COINCAST__S3__ALLOW_HTTP", "true"),
            ("COINCAST__LAKE__CATALOG", catalog.to_str().expect("utf-8")),
            ("COINCAST__PIPELINE__TASK_ATTEMPTS", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let run = |args: &[&str], env: &[(String, String)]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut all = vec!["--data-dir", d];
        all.extend_from_slice(args);
        coincast(&all, &env)
    };
    let data = real_coingecko();
    let data = data.to_str().expect("utf-8");
    let versions = |env: &[(String, String)]| -> Vec<serde_json::Value> {
        let out = run(&["datasets", "list", "--json"], env);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).expect("json")
    };
    let good = env(SECRET_KEY, &data_path);

    // A wrong key: the run fails at `version`, the data is merged locally, no version.
    let out = run(
        &["replay", data, "--coins", "solana"],
        &env("wrong-secret", &data_path),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("version"), "{}", text(&out));
    assert!(versions(&good).is_empty());
    // The right key: the next run commits what the failed one could not, and its own.
    let out = run(&["replay", data, "--coins", "ripple"], &good);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v = versions(&good);
    assert_eq!(v.len(), 1);
    let changed: Vec<&str> = v[0]["info"]["changed"]
        .as_array()
        .expect("changed")
        .iter()
        .filter_map(|c| c["coin_id"].as_str())
        .collect();
    assert_eq!(changed, ["ripple", "solana"]);

    // S3 stopped in the middle of the work: the run fails visibly, nothing half committed.
    s3.stop();
    let out = run(&["replay", data, "--coins", "cardano"], &good);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(versions(&good).len(), 1);
    s3.restart();
    let out = run(&["replay", data, "--coins", "cardano"], &good);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v = versions(&good);
    assert_eq!(v.len(), 2);
    assert_eq!(v[1]["info"]["changed"][0]["coin_id"], "cardano");

    // A missing bucket fails the same way and names the data path.
    let out = run(
        &["replay", data, "--coins", "solana"],
        &env(SECRET_KEY, "s3://no-such-bucket/x"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // Another engine reads the lake from S3: the live file's rows, and Parquet in the bucket.
    let script = format!(
        "import duckdb\n\
         c = duckdb.connect()\n\
         c.execute('SET enable_progress_bar = false')\n\
         c.execute(\"LOAD '{ducklake}'\")\n\
         c.execute(\"LOAD '{httpfs}'\")\n\
         c.execute(\"CREATE SECRET (TYPE s3, KEY_ID '{ACCESS_KEY}', SECRET '{SECRET_KEY}', ENDPOINT '127.0.0.1:{port}', URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')\")\n\
         c.execute(\"ATTACH 'ducklake:{catalog}' AS lake (READ_ONLY)\")\n\
         lake = c.execute('SELECT count(*) FROM lake.market_data').fetchone()[0]\n\
         files = c.execute(\"SELECT count(*) FROM glob('s3://{BUCKET}/prefix/**/*.parquet')\").fetchone()[0]\n\
         c.execute(\"ATTACH '{db}' AS live (READ_ONLY)\")\n\
         live = c.execute('SELECT count(*) FROM live.market_data').fetchone()[0]\n\
         print(lake, live, files)\n",
        ducklake = extension("ducklake").display(),
        httpfs = extension("httpfs").display(),
        port = s3.s3_port,
        catalog = catalog.display(),
        db = dir.path().join("coincast.duckdb").display(),
    );
    let printed = run_python(&script, &[]);
    let n: Vec<i64> = printed
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    assert_eq!(n.len(), 3, "{printed}");
    assert_eq!(n[0], n[1], "lake and live rows: {printed}");
    assert!(n[0] > 60_000 && n[2] >= 2, "{printed}");
}

/// Many machines: two coincast processes (two data folders) commit to one lake with a
/// PostgreSQL catalog and its Parquet on S3, at the same time; DuckDB's Python client attaches
/// the same catalog, counts both writers' rows and computes a version's content hash again.
#[test]
fn two_writers_share_a_postgres_catalog_lake_on_s3() {
    use crate::support::postgres::Postgres;
    use crate::support::seaweedfs::{SeaweedFs, ACCESS_KEY, BUCKET, SECRET_KEY};
    let scratch = tempfile::tempdir().expect("scratch");
    let s3 = SeaweedFs::start(&scratch.path().join("s3"));
    let pg = Postgres::start(scratch.path());
    let catalog = format!("postgres:{}", pg.lake_dsn());
    let endpoint = s3.endpoint();
    let env: Vec<(&str, &str)> = vec![
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("COINCAST__LAKE__DATA_PATH", "s3://lake/shared"),
        ("COINCAST__S3__ENDPOINT", endpoint.as_str()),
        ("COINCAST__S3__URL_STYLE", "path"),
        ("COINCAST__S3__ALLOW_HTTP", "true"),
        ("COINCAST__LAKE__CATALOG", catalog.as_str()),
    ];
    let a = tempfile::tempdir().expect("a");
    let b = tempfile::tempdir().expect("b");
    let data = real_coingecko();
    let data = data.to_str().expect("utf-8");
    let replay = |dir: &Path, coin: &str| {
        crate::support::coincast_command(
            &[
                "--data-dir",
                dir.to_str().expect("utf-8"),
                "replay",
                data,
                "--coins",
                coin,
            ],
            &env,
        )
    };
    // The lake's tables are made by the first writer, before any concurrent one.
    let out = replay(a.path(), "solana").output().expect("replay");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Two writers at once.
    let spawn = |mut command: std::process::Command| {
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    // An analyst reads the lake all the while: DuckDB's Python client on the same catalog,
    // counting rows again and again until the writers are done.
    let done = scratch.path().join("writers-done");
    let reader_script = format!(
        "import duckdb, os\n\
         c = duckdb.connect()\n\
         c.execute('SET enable_progress_bar = false')\n\
         for e in ['ducklake', 'httpfs', 'postgres_scanner']:\n\
         \x20   c.execute(f\"LOAD '{dir}/{{e}}.duckdb_extension'\")\n\
         c.execute(\"CREATE SECRET (TYPE s3, KEY_ID '{ACCESS_KEY}', SECRET '{SECRET_KEY}', ENDPOINT '127.0.0.1:{port}', URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')\")\n\
         c.execute(\"ATTACH 'ducklake:{catalog}' AS lake (READ_ONLY)\")\n\
         counts = []\n\
         while True:\n\
         \x20   finished = os.path.exists('{done}')\n\
         \x20   counts.append(c.execute('SELECT count(*) FROM lake.market_data').fetchone()[0])\n\
         \x20   if finished:\n\
         \x20       break\n\
         print(len(counts), min(counts), max(counts), int(counts == sorted(counts)))\n",
        dir = extension("ducklake").parent().expect("dir").display(),
        port = s3.s3_port,
        done = done.display(),
    );
    let reader = std::process::Command::new(crate::support::python())
        .arg("-c")
        .arg(&reader_script)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python reader");
    let first = spawn(replay(a.path(), "ripple"));
    let second = spawn(replay(b.path(), "cardano"));
    for child in [first, second] {
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    std::fs::write(&done, "").expect("done");
    let read = reader.wait_with_output().expect("reader");
    assert!(read.status.success(), "the reader failed: {}", text(&read));
    let seen: Vec<i64> = String::from_utf8_lossy(&read.stdout)
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // Several reads, never a count going back (no half version seen), the last one whole.
    assert_eq!(seen.len(), 4, "{}", text(&read));
    assert!(seen[0] >= 2, "{} reads", seen[0]);
    assert_eq!(seen[3], 1, "counts went back: {}", text(&read));
    let out = coincast(
        &[
            "--data-dir",
            b.path().to_str().expect("utf-8"),
            "datasets",
            "list",
            "--json",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let versions: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(versions.len(), 3, "{versions:?}");
    let writers: std::collections::BTreeSet<&str> = versions
        .iter()
        .filter_map(|v| v["info"]["writer"].as_str())
        .collect();
    assert_eq!(writers.len(), 2, "{versions:?}");
    let newest = &versions[2];
    let newest_id = newest["version"].as_i64().expect("id");

    // DuckDB's Python client: both writers' rows, and the newest version's hash computed again
    // with the same SQL (sql/model/dataset_hash.sql) and the same feature SQL.
    let hash_sql = include_str!("../../sql/model/dataset_hash.sql")
        .replace(
            "{features}",
            &format!("(FROM lake.features AT (VERSION => {newest_id}))"),
        )
        .replace(
            "{market_data}",
            &format!("(FROM lake.market_data AT (VERSION => {newest_id}))"),
        );
    let script = format!(
        "import duckdb, hashlib, json, sys\n\
         c = duckdb.connect()\n\
         c.execute('SET enable_progress_bar = false')\n\
         for e in ['ducklake', 'httpfs', 'postgres_scanner']:\n\
         \x20   c.execute(f\"LOAD '{dir}/{{e}}.duckdb_extension'\")\n\
         c.execute(\"CREATE SECRET (TYPE s3, KEY_ID '{ACCESS_KEY}', SECRET '{SECRET_KEY}', ENDPOINT '127.0.0.1:{port}', URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')\")\n\
         c.execute(\"ATTACH 'ducklake:{catalog}' AS lake (READ_ONLY)\")\n\
         rows = c.execute('SELECT count(*) FROM lake.market_data').fetchone()[0]\n\
         features = c.execute('SELECT count(*) FROM lake.features').fetchone()[0]\n\
         coins = [r[0] for r in c.execute('SELECT DISTINCT coin_id FROM lake.market_data ORDER BY 1').fetchall()]\n\
         until = {until}\n\
         h = hashlib.sha256(open('{features_sql}', 'rb').read())\n\
         sql = json.loads(sys.argv[1])\n\
         digests = dict(c.execute(sql, [','.join(coins), 'usd', until]).fetchall())\n\
         for coin in coins:\n\
         \x20   h.update(coin.encode()); h.update(digests.get(coin, '').encode())\n\
         print(rows, features, ','.join(coins), h.hexdigest())\n",
        dir = extension("ducklake").parent().expect("dir").display(),
        port = s3.s3_port,
        until = newest["info"]["until_hour"].as_i64().expect("until"),
        features_sql = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("sql/features/hourly.sql")
            .display(),
    );
    let printed = run_python(&script, &[&serde_json::to_string(&hash_sql).expect("json")]);
    let fields: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(fields.len(), 4, "{printed}");
    let live_rows = |dir: &Path, table: &str| {
        let store = coincast::store::Store::open(dir).expect("open");
        store
            .conn()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .expect("count")
    };
    // Each writer's rows, and neither replaced the other's.
    for (field, table) in [(0, "market_data"), (1, "features")] {
        assert_eq!(
            fields[field].parse::<i64>().expect("rows"),
            live_rows(a.path(), table) + live_rows(b.path(), table),
            "{table}"
        );
    }
    assert_eq!(fields[2], "cardano,ripple,solana");
    assert_eq!(
        fields[3],
        newest["info"]["content_hash"].as_str().expect("hash")
    );
    // Batch ids are each folder's own (both have a batch 1): each writer's batches and quality
    // results stay beside the other's.
    for table in ["raw_batches", "quality_results"] {
        assert_eq!(
            newest["info"]["rows"][table].as_i64(),
            Some(live_rows(a.path(), table) + live_rows(b.path(), table)),
            "{table}: {newest}"
        );
    }
    let _ = BUCKET;
}

/// An hourly version writes a handful of rows; they go to Parquet like the rest (DuckLake would
/// otherwise inline them in the catalog, where a DOUBLE loses its last digits), so the version
/// exports to the hash it recorded.
#[test]
fn a_version_of_one_new_hour_exports_to_its_hash() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().join("data");
    let d = d.to_str().expect("utf-8");
    let body = std::fs::read_to_string(real_coingecko().join("solana.json")).expect("solana");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let last_ms = v["prices"]
        .as_array()
        .and_then(|p| p.last())
        .and_then(|p| p[0].as_f64())
        .expect("a last point");
    let older = dir.path().join("older");
    std::fs::create_dir_all(&older).expect("dir");
    crate::support::truncated_coin_file(&older, "solana", last_ms);
    let out = coincast(
        &["--data-dir", d, "replay", older.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    replay_real_coin(d, "solana");
    let versions = versions_json(d);
    assert_eq!(versions.as_array().map(Vec::len), Some(2), "{versions}");
    assert_eq!(versions[1]["info"]["changed"][0]["hours"], 1, "{versions}");
    let newest = versions[1]["version"].as_i64().expect("id").to_string();
    let export = dir.path().join("export");
    let out = coincast(
        &[
            "--data-dir",
            d,
            "datasets",
            "export",
            &newest,
            "--to",
            export.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("reproduced"), "{}", text(&out));
}

/// With the lake on S3, models and backups go to its bucket: an empty data folder that has only
/// the bucket (and the catalog) answers `predict --model` as the writer does; a folder restored
/// from `s3://` serves the same champion; uploads are content-addressed and never repeated.
#[test]
fn models_and_backups_travel_through_the_bucket() {
    use crate::support::forecast::{ForecastFigures, ACROSS_MACHINES};
    use crate::support::seaweedfs::{SeaweedFs, ACCESS_KEY, BUCKET, SECRET_KEY};
    let scratch = tempfile::tempdir().expect("scratch");
    let s3 = SeaweedFs::start(&scratch.path().join("s3"));
    let endpoint = s3.endpoint();
    let catalog = scratch.path().join("catalog/lake.ducklake");
    let data_path = format!("s3://{BUCKET}/shared");
    let env: Vec<(&str, &str)> = vec![
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("COINCAST__LAKE__DATA_PATH", data_path.as_str()),
        ("COINCAST__S3__ENDPOINT", endpoint.as_str()),
        ("COINCAST__S3__URL_STYLE", "path"),
        ("COINCAST__S3__ALLOW_HTTP", "true"),
        ("COINCAST__LAKE__CATALOG", catalog.to_str().expect("utf-8")),
    ];
    let run = |dir: &Path, args: &[&str]| {
        let mut all = vec!["--data-dir", dir.to_str().expect("utf-8")];
        all.extend_from_slice(args);
        let out = coincast(&all, &env);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        out
    };
    let objects = |folder: &str| -> i64 {
        let script = format!(
            "import duckdb\n\
             c = duckdb.connect()\n\
             c.execute('SET enable_progress_bar = false')\n\
             c.execute(\"LOAD '{httpfs}'\")\n\
             c.execute(\"CREATE SECRET (TYPE s3, KEY_ID '{ACCESS_KEY}', SECRET '{SECRET_KEY}', ENDPOINT '127.0.0.1:{port}', URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')\")\n\
             print(c.execute(\"SELECT count(*) FROM glob('s3://{BUCKET}/shared/{folder}/**')\").fetchone()[0])\n",
            httpfs = extension("httpfs").display(),
            port = s3.s3_port,
        );
        run_python(&script, &[]).trim().parse().expect("a count")
    };
    let writer = scratch.path().join("writer");
    let data = real_coingecko();
    run(
        &writer,
        &["replay", data.to_str().expect("utf-8"), "--coins", "solana"],
    );
    run(
        &writer,
        &[
            "train",
            "--coins",
            "solana",
            "--candidates",
            "persistence,persistence_ewma",
            "--windows",
            "1",
        ],
    );
    let champion = {
        let store = coincast::store::Store::open(&writer).expect("open");
        registry::champion(store.conn())
            .expect("q")
            .expect("a champion")
            .model_id
    };
    let predict = |dir: &Path, model: Option<&str>| {
        let mut args = vec!["predict", "--coin", "solana", "--json"];
        if let Some(m) = model {
            args.extend(["--model", m]);
        }
        let out = run(dir, &args);
        ForecastFigures::parse(&out.stdout).expect("figures")
    };
    let at_writer = predict(&writer, Some(&champion));

    // Uploads are content-addressed: a run that changes nothing uploads nothing again.
    let blobs = objects("blobs");
    let models = objects("models");
    assert!(blobs >= 3 && models >= 2, "{blobs} blobs, {models} models");
    run(
        &writer,
        &["replay", data.to_str().expect("utf-8"), "--coins", "solana"],
    );
    assert_eq!((objects("blobs"), objects("models")), (blobs, models));

    // An empty data folder with only the bucket answers as the writer did.
    let reader = scratch.path().join("reader");
    let out = coincast(
        &[
            "--data-dir",
            reader.to_str().expect("utf-8"),
            "predict",
            "--coin",
            "solana",
            "--model",
            &champion,
            "--json",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("fetched model"), "{}", text(&out));
    let at_reader = ForecastFigures::parse(&out.stdout).expect("figures");
    at_writer
        .matches(&at_reader, ACROSS_MACHINES)
        .expect("the reader's forecast");
    let again = predict(&reader, Some(&champion));
    at_writer.matches(&again, ACROSS_MACHINES).expect("again");

    // A backup goes to the bucket; `restore s3://…` rebuilds a data folder that serves the same
    // champion.
    let archive = scratch.path().join("writer.tar");
    let out = run(&writer, &["backup", archive.to_str().expect("utf-8")]);
    assert!(text(&out).contains("uploaded: s3://"), "{}", text(&out));
    let restored = scratch.path().join("restored");
    run(&restored, &["restore", &data_path]);
    let served = predict(&restored, None);
    let by_champion = predict(&writer, None);
    by_champion
        .matches(&served, ACROSS_MACHINES)
        .expect("the restored champion");

    // Cleanup retires the untrained floor: its manifest leaves the bucket and so do the blobs
    // only it named; the champion still answers from a new empty folder, and the backup stays.
    let (models, blobs) = (objects("models"), objects("blobs"));
    let mut retaining = env.clone();
    retaining.extend([
        ("COINCAST__RETENTION__KEEP_MODELS", "0"),
        ("COINCAST__RETENTION__BUCKET_GRACE_HOURS", "0"),
    ]);
    let out = coincast(
        &[
            "--data-dir",
            writer.to_str().expect("utf-8"),
            "cleanup",
            "--json",
        ],
        &retaining,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["bucket"]["manifests"], 1, "{report}");
    assert_eq!(objects("models"), models - 1);
    let removed = report["bucket"]["blobs"].as_i64().expect("blobs");
    assert!(removed >= 1, "{report}");
    assert_eq!(objects("blobs"), blobs - removed);
    let late_reader = scratch.path().join("late-reader");
    let again = predict(&late_reader, Some(&champion));
    at_writer
        .matches(&again, ACROSS_MACHINES)
        .expect("after cleanup");
    let restored_again = scratch.path().join("restored-again");
    run(&restored_again, &["restore", &data_path]);

    // A bucket without backups says so.
    let out = coincast(
        &[
            "--data-dir",
            scratch.path().join("nothing").to_str().expect("utf-8"),
            "restore",
            &format!("s3://{BUCKET}/elsewhere"),
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no backup"), "{}", text(&out));
}

/// A data folder moved elsewhere (a restore, a container mounted at another path) keeps its lake:
/// the catalog's recorded data path gives way to the folder's own, and a version still exports
/// from the moved Parquet files.
#[test]
fn the_lake_moves_with_its_data_folder() {
    let first = tempfile::tempdir().expect("dir");
    let from = first.path().join("data");
    replay_real_coin(from.to_str().expect("utf-8"), "solana");
    let second = tempfile::tempdir().expect("dir");
    let to = second.path().join("moved");
    std::fs::rename(&from, &to).expect("move the folder");
    let d = to.to_str().expect("utf-8");
    let versions = versions_json(d);
    let version = versions[0]["version"].as_i64().expect("a version");
    let export = second.path().join("export");
    let out = coincast(
        &[
            "--data-dir",
            d,
            "datasets",
            "export",
            &version.to_string(),
            "--to",
            export.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(export.join("version.json").exists(), "{}", text(&out));
}

/// `run --shard I/N`: two shard processes, each with a data folder of its own, fetch their coins
/// from the CoinGecko-compatible server at once and commit into one lake with a PostgreSQL
/// catalog (its tables made once, first); the lake then holds the same rows as one process that
/// ran every coin into a lake of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_fill_one_postgres_catalog_lake_with_the_rows_of_one_process() {
    use crate::support::coingecko_server::CoinGeckoServer;
    use crate::support::postgres::Postgres;
    const COINS: [&str; 4] = ["bitcoin", "solana", "cardano", "ripple"];
    let scratch = tempfile::tempdir().expect("scratch");
    let pg = Postgres::start(scratch.path());
    let source = CoinGeckoServer::start(&real_coingecko(), &COINS).await;
    let base_url = source.base_url();
    let catalog = format!("postgres:{}", pg.lake_dsn());
    let lake_data = scratch.path().join("lake-data");
    let lake_data = lake_data.to_str().expect("utf-8");
    let coins = COINS.join(",");
    let common: Vec<(&str, &str)> = vec![
        ("COINCAST__COINS", coins.as_str()),
        ("COINCAST__COINGECKO__BASE_URL", base_url.as_str()),
        ("COINCAST__COINGECKO__CALLS_PER_MINUTE", "6000"),
        ("COINCAST__COINGECKO__BACKFILL_DAYS", "10"),
    ];
    let mut shared = common.clone();
    shared.extend([
        ("COINCAST__LAKE__CATALOG", catalog.as_str()),
        ("COINCAST__LAKE__DATA_PATH", lake_data),
    ]);
    let dir = |name: &str| {
        scratch
            .path()
            .join(name)
            .to_str()
            .expect("utf-8")
            .to_string()
    };
    let until = "2023-12-30T00:00:00Z";
    // The lake's tables, made once by an init step before the shards commit at once.
    let init = coincast(&["--data-dir", &dir("init"), "datasets", "init"], &shared);
    assert_eq!(init.status.code(), Some(0), "{}", text(&init));
    let shard = |name: &str, shard: &str, index: Option<&str>| {
        let mut env = shared.clone();
        if let Some(i) = index {
            env.push(("JOB_COMPLETION_INDEX", i));
        }
        crate::support::coincast_command(
            &[
                "--data-dir",
                &dir(name),
                "run",
                "--shard",
                shard,
                "--until",
                until,
            ],
            &env,
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("shard")
    };
    let shards = [
        shard("shard-0", "0/2", None),
        shard("shard-1", "2", Some("1")),
    ];
    let mut said = String::new();
    for child in shards {
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        said.push_str(&text(&out));
    }
    assert!(
        said.contains("shard 0/2: 2 of the coins") && said.contains("shard 1/2"),
        "{said}"
    );
    let one = coincast(
        &["--data-dir", &dir("one"), "run", "--until", until],
        &common,
    );
    assert_eq!(one.status.code(), Some(0), "{}", text(&one));

    // Each lake's newest rows, as an analyst reads them: the same rows, hashed alike.
    let script = format!(
        "import duckdb, sys\n\
         c = duckdb.connect()\n\
         for e in ['ducklake', 'postgres_scanner']:\n\
         \x20   c.execute(f\"LOAD '{dir}/{{e}}.duckdb_extension'\")\n\
         c.execute(f\"ATTACH 'ducklake:{{sys.argv[1]}}' AS lake (READ_ONLY)\")\n\
         for t, cols in [('market_data', '* EXCLUDE (batch_id, merged_at)'), ('features', '*')]:\n\
         \x20   print(t, *c.execute(f'SELECT count(DISTINCT r.coin_id), count(*), sum(hash(r)) FROM (SELECT {{cols}} FROM lake.{{t}}) r').fetchone())\n",
        dir = extension("ducklake").parent().expect("dir").display(),
    );
    let shards_lake = run_python(&script, &[&catalog]);
    let one_lake = run_python(&script, &[&format!("{}/lake/catalog.ducklake", dir("one"))]);
    assert!(shards_lake.contains("market_data 4 "), "{shards_lake}");
    assert_eq!(
        shards_lake, one_lake,
        "the shards' lake holds one process's rows"
    );
}
