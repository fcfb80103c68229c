//! `make chaos`: random kill -9 of real coincast processes during replay, ingest (from the
//! CoinGecko-compatible test server), training and serving under load; after each kill the
//! checks of the crash tests (`crash::inspect`) and a re-run. Prints a table per phase.
//! Ignored by `cargo test`; `make chaos` runs it (COINCAST_CHAOS_TRIALS, COINCAST_CHAOS_SEED).

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::crash::{counts, inspect, small_seed, small_spec_file, Inspection};
use crate::support::coingecko_server::CoinGeckoServer;
use crate::support::{coincast, coincast_command, real_coingecko, text};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Replay,
    Ingest,
    Train,
    Serve,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Replay => "replay (5 real coins)",
            Phase::Ingest => "ingest (test CoinGecko)",
            Phase::Train => "train",
            Phase::Serve => "serve under load",
        }
    }
}

#[derive(Default)]
struct Tally {
    trials: u32,
    killed_mid_run: u32,
    opened: u32,
    no_duplicates: u32,
    no_good_quarantined: u32,
    nothing_running: u32,
    registry_ok: u32,
    rerun_clean: u32,
    incidents: u32,
    failures: Vec<String>,
}

impl Tally {
    fn add(&mut self, trial: u32, found: &Inspection, rerun: Result<(), String>, incident: bool) {
        self.opened += u32::from(found.opened.is_ok());
        self.no_duplicates += u32::from(found.duplicated_hours == 0);
        self.no_good_quarantined += u32::from(found.quarantined_batches == 0);
        self.nothing_running += u32::from(found.left_running == 0);
        self.registry_ok += u32::from(found.registry.is_ok());
        self.incidents += u32::from(incident);
        if !found.all_ok() {
            self.failures.push(format!("trial {trial}: {found:?}"));
        }
        match rerun {
            Ok(()) => self.rerun_clean += 1,
            Err(e) => self.failures.push(format!("trial {trial}: re-run: {e}")),
        }
    }
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

/// Kills the child with SIGKILL after `after`; true if it was still running then.
fn kill_after(mut child: Child, after: Duration) -> bool {
    let deadline = Instant::now() + after;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let running = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    running
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    coincast_command(args, env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn coincast")
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .args(["-a", &format!("{}/.", arg(from)), arg(to)])
        .status()
        .expect("cp");
    assert!(status.success());
}

fn has_incident(dir: &Path) -> bool {
    coincast::store::Store::open(dir)
        .ok()
        .and_then(|s| {
            s.conn()
                .query_row("SELECT count(*) FROM incidents", [], |r| r.get::<_, i64>(0))
                .ok()
        })
        .is_some_and(|n| n > 0)
}

fn timed_ok(args: &[&str], env: &[(&str, &str)]) -> f64 {
    let started = Instant::now();
    let out = coincast(args, env);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    started.elapsed().as_secs_f64()
}

fn rerun(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let out = coincast(args, env);
    match out.status.code() {
        Some(0) => Ok(()),
        code => Err(format!("exit {code:?}: {}", text(&out))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "make chaos: minutes of random kill -9"]
async fn chaos_random_kill_9() {
    let trials: u32 = std::env::var("COINCAST_CHAOS_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("COINCAST_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp() as u64);
    eprintln!("chaos: {trials} trials, seed {seed} (COINCAST_CHAOS_SEED to repeat)");
    let mut rng = StdRng::seed_from_u64(seed);
    let real = real_coingecko();
    let small = small_seed();
    let server = CoinGeckoServer::start_ending_now(&real, &["solana", "ripple", "cardano"]).await;
    let base_url = server.base_url();
    let live_env: Vec<(&str, &str)> = vec![
        ("COINCAST__COINGECKO__BASE_URL", base_url.as_str()),
        ("COINCAST__COINGECKO__CALLS_PER_MINUTE", "60000"),
        ("COINCAST__COINGECKO__BACKOFF_BASE_MS", "20"),
        ("COINCAST__COINGECKO__BACKOFF_MAX_MS", "200"),
        ("COINCAST__COINGECKO__MAX_CHUNK_DAYS", "30"),
        ("COINCAST__COINS", "solana,ripple,cardano"),
    ];
    let until = chrono::Utc::now().to_rfc3339();
    let ingest_args = |d: &Path| -> Vec<String> {
        [
            "--data-dir",
            arg(d),
            "ingest",
            "--backfill-days",
            "120",
            "--until",
            &until,
        ]
        .map(String::from)
        .to_vec()
    };
    let spec = small_spec_file();
    let train_args = |d: &Path| -> Vec<String> {
        [
            "--data-dir",
            arg(d),
            "train",
            "--spec",
            arg(&spec),
            "--windows",
            "1",
            "--coins",
            "solana,ripple",
            "--candidates",
            "persistence,persistence_ewma,linear,lstm",
        ]
        .map(String::from)
        .to_vec()
    };
    let strs = |v: &[String]| -> Vec<String> { v.to_vec() };

    // Clean references: counts and durations of an uninterrupted run of each phase.
    let clean_replay = tempfile::tempdir().expect("dir");
    let replay_secs = timed_ok(
        &["--data-dir", arg(clean_replay.path()), "replay", arg(&real)],
        &[],
    );
    let replay_counts = counts(&coincast::store::Store::open(clean_replay.path()).expect("open"));
    let clean_ingest = tempfile::tempdir().expect("dir");
    let a = strs(&ingest_args(clean_ingest.path()));
    let ingest_secs = timed_ok(&a.iter().map(String::as_str).collect::<Vec<_>>(), &live_env);
    let ingest_counts = counts(&coincast::store::Store::open(clean_ingest.path()).expect("open"));
    // Training starts from the small replayed seed; serving from the ingested data (the test
    // server's time line, so the server's own catch-up ingest continues it) with a champion.
    let loaded = tempfile::tempdir().expect("dir");
    timed_ok(
        &[
            "--data-dir",
            arg(loaded.path()),
            "replay",
            arg(small.path()),
        ],
        &[],
    );
    let trained = tempfile::tempdir().expect("dir");
    copy_dir(clean_ingest.path(), trained.path());
    let a = train_args(loaded.path());
    let _ = timed_ok(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let a = train_args(trained.path());
    let train_secs = timed_ok(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let model_id: String = coincast::store::Store::open(trained.path())
        .expect("open")
        .conn()
        .query_row(
            "SELECT model_id FROM model_versions WHERE alias = 'champion'",
            [],
            |r| r.get(0),
        )
        .expect("a champion");
    eprintln!(
        "clean runs: replay {replay_secs:.1} s, ingest {ingest_secs:.1} s, train {train_secs:.1} s"
    );

    let phases = [Phase::Replay, Phase::Ingest, Phase::Train, Phase::Serve];
    let mut tallies: Vec<Tally> = phases.iter().map(|_| Tally::default()).collect();
    let http = reqwest::Client::new();
    for trial in 0..trials {
        // 30% replay, 30% ingest, 20% train, 20% serve, in a fixed rotation.
        let phase = match trial % 10 {
            0..=2 => Phase::Replay,
            3..=5 => Phase::Ingest,
            6 | 7 => Phase::Train,
            _ => Phase::Serve,
        };
        let slot = phases.iter().position(|p| *p == phase).unwrap_or(0);
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        let (killed, rerun_result) = match phase {
            Phase::Replay => {
                let after = Duration::from_secs_f64(rng.random_range(0.0..replay_secs * 1.1));
                let killed = kill_after(
                    spawn(&["--data-dir", arg(d), "replay", arg(&real)], &[]),
                    after,
                );
                let args = ["--data-dir", arg(d), "replay", arg(&real)];
                let r = rerun(&args, &[]).and_then(|()| {
                    let now = counts(&coincast::store::Store::open(d).map_err(|e| e.to_string())?);
                    (now == replay_counts)
                        .then_some(())
                        .ok_or_else(|| format!("{now:?} != clean {replay_counts:?}"))
                });
                (killed, r)
            }
            Phase::Ingest => {
                let after = Duration::from_secs_f64(rng.random_range(0.0..ingest_secs * 1.1));
                let a = ingest_args(d);
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                let killed = kill_after(spawn(&a, &live_env), after);
                let r = rerun(&a, &live_env).and_then(|()| {
                    let now = counts(&coincast::store::Store::open(d).map_err(|e| e.to_string())?);
                    (now == ingest_counts)
                        .then_some(())
                        .ok_or_else(|| format!("{now:?} != clean {ingest_counts:?}"))
                });
                (killed, r)
            }
            Phase::Train => {
                copy_dir(loaded.path(), d);
                let after = Duration::from_secs_f64(rng.random_range(0.0..train_secs * 1.1));
                let a = train_args(d);
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                let killed = kill_after(spawn(&a, &[]), after);
                (killed, rerun(&a, &[]))
            }
            Phase::Serve => {
                copy_dir(trained.path(), d);
                let after = Duration::from_secs_f64(rng.random_range(0.5..4.0));
                let (killed, r) = serve_trial(d, &live_env, after, &http, &model_id).await;
                (killed, r)
            }
        };
        let found = inspect(d);
        let incident = has_incident(d);
        let t = &mut tallies[slot];
        t.trials += 1;
        t.killed_mid_run += u32::from(killed);
        t.add(trial, &found, rerun_result, incident);
        eprintln!(
            "trial {trial:>2} {:<24} killed mid-run: {killed:<5} checks: {}",
            phase.name(),
            if found.all_ok() { "ok" } else { "FAILED" }
        );
    }

    println!("\n| phase | trials | killed mid-run | file opens | no (coin, hour) twice | no good batch quarantined | nothing left running | registry consistent | re-run = clean | incidents |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut failures = Vec::new();
    for (phase, t) in phases.iter().zip(&tallies) {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            phase.name(),
            t.trials,
            t.killed_mid_run,
            t.opened,
            t.no_duplicates,
            t.no_good_quarantined,
            t.nothing_running,
            t.registry_ok,
            t.rerun_clean,
            t.incidents
        );
        failures.extend(t.failures.iter().cloned());
    }
    println!("seed {seed}");
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Starts `serve` on a copy with a champion, loads it with /predict, kills it after `after`;
/// the re-run is a restart that must answer /predict with the same champion.
async fn serve_trial(
    d: &Path,
    live_env: &[(&str, &str)],
    after: Duration,
    http: &reqwest::Client,
    model_id: &str,
) -> (bool, Result<(), String>) {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let base = format!("http://{bind}");
    let args = ["--data-dir", arg(d), "serve", "--bind", bind.as_str()];
    let child = spawn(&args, live_env);
    let stop_load = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (http, base, stop) = (http.clone(), base.clone(), stop_load.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = http
                    .post(format!("{base}/predict"))
                    .header("content-type", "application/json")
                    .body(r#"{"coin_id": "solana", "hours_ahead": 6}"#)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let killed = tokio::task::spawn_blocking(move || kill_after(child, after))
        .await
        .expect("kill");
    stop_load.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in load {
        let _ = l.await;
    }
    // Restart on the same folder: it must come up and serve the same champion.
    let mut child = spawn(&args, live_env);
    let result = async {
        for _ in 0..200 {
            if let Ok(r) = http
                .post(format!("{base}/predict"))
                .header("content-type", "application/json")
                .body(r#"{"coin_id": "solana", "hours_ahead": 6}"#)
                .send()
                .await
            {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                return if status.is_success() && body.contains(model_id) {
                    Ok(())
                } else {
                    Err(format!("/predict after restart: {status} {body}"))
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("the restarted server never answered".to_string())
    }
    .await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let waited = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("wait");
    let result = result.and_then(|()| match waited {
        Ok(s) if s.success() => Ok(()),
        other => Err(format!("restarted server exit: {other:?}")),
    });
    (killed, result)
}
