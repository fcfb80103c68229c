//! Retention (`coincast cleanup`): what moves, expires and retires, and what never does (what a
//! kept model, a quarantined batch or a pinned version references).

use std::path::Path;

use coincast::model::registry::{self, DatasetTables};

use crate::support::{coincast, real_coingecko, revised_solana, text};

/// Everything old enough to go, and only the newest model kept for being new.
const RETAIN_LITTLE: [(&str, &str); 3] = [
    ("COINCAST__RETENTION__RAW_BODY_DAYS", "0"),
    ("COINCAST__RETENTION__SNAPSHOT_DAYS", "0"),
    ("COINCAST__RETENTION__KEEP_MODELS", "1"),
];

struct Folder<'a> {
    dir: &'a Path,
}

impl Folder<'_> {
    fn run(&self, args: &[&str]) -> String {
        let out = self.run_any(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        text(&out)
    }

    fn run_any(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["--data-dir", self.dir.to_str().expect("utf-8")];
        all.extend_from_slice(args);
        coincast(&all, &RETAIN_LITTLE)
    }

    fn replay(&self, folder: &Path, coin: &str) {
        let out = self.run_any(&["replay", folder.to_str().expect("utf-8"), "--coins", coin]);
        // 3: a quarantined batch (the run is partial).
        assert!(matches!(out.status.code(), Some(0 | 3)), "{}", text(&out));
    }

    fn train(&self) -> String {
        self.run(&[
            "train",
            "--candidates",
            "persistence,persistence_ewma",
            "--windows",
            "1",
        ]);
        let store = coincast::store::Store::open(self.dir).expect("open");
        registry::champion(store.conn())
            .expect("q")
            .expect("a champion")
            .model_id
    }

    fn versions(&self) -> Vec<i64> {
        let out = self.run(&["datasets", "list", "--json"]);
        let v: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
        v.iter().filter_map(|v| v["version"].as_i64()).collect()
    }

    /// (batch id, coin, state, body in the file, where it went).
    fn bodies(&self) -> Vec<(i64, String, String, bool, Option<String>)> {
        let store = coincast::store::Store::open(self.dir).expect("open");
        let mut stmt = store
            .conn()
            .prepare(
                "SELECT batch_id, coin_id, state, body IS NOT NULL, body_archived
                 FROM raw_batches ORDER BY batch_id",
            )
            .expect("prepare");
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    }
}

/// cardano.json without its market caps: the gate quarantines it.
fn quarantined_cardano(dir: &Path) {
    let body = std::fs::read_to_string(real_coingecko().join("cardano.json")).expect("cardano");
    let mut v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v.as_object_mut().expect("object").remove("market_caps");
    std::fs::write(dir.join("cardano.json"), v.to_string()).expect("write");
}

/// Four versions and three trainings, then cleanup with every threshold at zero: the first
/// model (and the untrained floor) retire; the pinned version, the kept models' versions and
/// the newest survive expiry and still export to their hashes; merged bodies move to the lake
/// and come back intact to be checked again; the quarantined body never leaves the file. A dry
/// run before changes nothing.
#[test]
fn cleanup_moves_expires_and_retires_only_what_nothing_keeps() {
    let scratch = tempfile::tempdir().expect("scratch");
    let dir = scratch.path().join("data");
    let f = Folder { dir: &dir };
    let real = real_coingecko();

    f.replay(&real, "solana");
    let m1 = f.train();
    f.replay(&real, "ripple");
    let pinned = *f.versions().last().expect("a version");
    let revised = scratch.path().join("revised");
    std::fs::create_dir_all(&revised).expect("mkdir");
    revised_solana(&revised);
    f.replay(&revised, "solana");
    let m2 = f.train();
    let bad = scratch.path().join("bad");
    std::fs::create_dir_all(&bad).expect("mkdir");
    quarantined_cardano(&bad);
    f.replay(&bad, "cardano");
    f.replay(&real, "cardano");
    let m3 = f.train();
    assert!(m1 != m2 && m2 != m3, "{m1} {m2} {m3}");
    f.run(&["datasets", "pin", &pinned.to_string(), "--note", "audit"]);

    let before_versions = f.versions();
    let before_bodies = f.bodies();
    assert!(before_versions.len() >= 4, "{before_versions:?}");
    let first_version = before_versions[0];

    // The audit trail: an event past retention.audit_days (365 by default) and a recent one.
    {
        let store = coincast::store::Store::open(&dir).expect("open");
        store
            .conn()
            .execute_batch(
                "INSERT INTO audit_log VALUES
                   (now() - INTERVAL 400 DAY, 'w', 'ops', 'http', 'POST /api/models/rollback', NULL, '200', 1.0, NULL),
                   (now() - INTERVAL 1 DAY, 'w', 'ops', 'http', 'POST /api/models/rollback', NULL, '200', 1.0, NULL);",
            )
            .expect("audit rows");
    }
    let audit_rows = || -> i64 {
        let store = coincast::store::Store::open(&dir).expect("open");
        store
            .conn()
            .query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))
            .expect("count")
    };

    // A dry run says what it would do and does none of it.
    let plan = f.run(&["cleanup", "--dry-run", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&plan).expect("json");
    let would_retire: Vec<&str> = plan["models_retired"]
        .as_array()
        .expect("retired")
        .iter()
        .filter_map(|m| m["model_id"].as_str())
        .collect();
    assert!(would_retire.contains(&m1.as_str()), "{plan}");
    assert!(plan["bodies"]["batches"].as_i64() >= Some(3), "{plan}");
    assert_eq!(f.versions(), before_versions);
    assert_eq!(f.bodies(), before_bodies);
    assert_eq!(plan["audit_events_expired"], 1, "{plan}");
    assert_eq!(audit_rows(), 2);
    assert!(dir.join("models").join(&m1).is_dir());

    let done = f.run(&["cleanup", "--json"]);
    let done: serde_json::Value = serde_json::from_str(&done).expect("json");
    assert_eq!(done["audit_events_expired"], 1, "{done}");
    assert_eq!(audit_rows(), 1, "the recent event stays");

    // Models: the first retired (artifact gone, row kept), the champion and the rollback target
    // kept with their artifacts.
    let retired: Vec<&str> = done["models_retired"]
        .as_array()
        .expect("retired")
        .iter()
        .filter_map(|m| m["model_id"].as_str())
        .collect();
    assert!(retired.contains(&m1.as_str()), "{done}");
    assert!(!retired.contains(&m2.as_str()) && !retired.contains(&m3.as_str()));
    assert!(!dir.join("models").join(&m1).exists());
    assert!(dir.join("models").join(&m2).is_dir());
    assert!(dir.join("models").join(&m3).is_dir());
    let out = f.run_any(&["predict", "--coin", "solana", "--model", &m1]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("retired"), "{}", text(&out));
    f.run(&["predict", "--coin", "solana", "--model", &m2]);
    let listed = f.run(&["models", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&m1) && l.contains("retired")),
        "{listed}"
    );

    // Versions: the first expired (only the retired model named it); the pinned one, the kept
    // models' and the newest stay, and each still exports to its recorded hash.
    let after = f.versions();
    assert!(!after.contains(&first_version), "{after:?}");
    assert!(after.contains(&pinned), "{after:?}");
    let (m2_version, m2_hash, m2_until) = {
        let store = coincast::store::Store::open(&dir).expect("open");
        let m = registry::get(store.conn(), &m2).expect("m2");
        (
            m.lake_version.expect("m2's version"),
            m.dataset_version,
            m.trained_until_hour.expect("until"),
        )
    };
    assert!(after.contains(&m2_version), "{after:?}");
    for v in &after {
        let to = scratch.path().join(format!("export-{v}"));
        let out = f.run(&[
            "datasets",
            "export",
            &v.to_string(),
            "--to",
            to.to_str().expect("utf-8"),
        ]);
        assert!(out.contains("reproduced"), "{out}");
    }
    // The second model's training rows, rebuilt from the compacted lake, give its hash.
    {
        let mut settings =
            coincast::config::Settings::load_with_env(None, Vec::new()).expect("settings");
        settings.data_dir = dir.clone();
        let store = coincast::store::Store::open(&dir).expect("open");
        coincast::lake::attach(store.conn(), &settings).expect("attach");
        let at = DatasetTables {
            features: format!("(FROM lake.features AT (VERSION => {m2_version}))"),
            market_data: format!("(FROM lake.market_data AT (VERSION => {m2_version}))"),
        };
        // In the order of the configured coins, as training hashed them.
        let coins = vec!["solana".to_string(), "ripple".to_string()];
        let rebuilt =
            registry::dataset_hash(store.conn(), &at, &coins, "usd", m2_until + 1).expect("hash");
        assert_eq!(rebuilt, m2_hash);
    }

    // Bodies: every merged one moved to the lake, the quarantined one stayed in the file.
    let bodies = f.bodies();
    for (id, coin, state, in_file, went) in &bodies {
        match state.as_str() {
            "merged" => assert!(
                !in_file && went.as_deref() == Some("lake"),
                "merged batch {id} ({coin}) still in the file"
            ),
            "quarantined" => assert!(
                *in_file && went.is_none(),
                "quarantined batch {id} ({coin}) left the file"
            ),
            _ => {}
        }
    }
    assert!(bodies.iter().any(|b| b.2 == "quarantined"), "{bodies:?}");
    // A moved body comes back, intact, to be checked again.
    let merged = bodies
        .iter()
        .find(|b| b.2 == "merged")
        .map(|b| b.0)
        .expect("a merged batch");
    f.run(&["quality", "--batch", &merged.to_string()]);
    let back = f.bodies();
    let b = back.iter().find(|b| b.0 == merged).expect("the batch");
    assert!(b.3 && b.4.is_none(), "{b:?}");
    let store = coincast::store::Store::open(&dir).expect("open");
    let intact: bool = store
        .conn()
        .query_row(
            "SELECT sha256(body) = body_sha256 FROM raw_batches WHERE batch_id = ?",
            [merged],
            |r| r.get(0),
        )
        .expect("sha");
    assert!(intact);
}
