//! Every kind of bad body: a clear reason naming coin, batch and field; the body kept exactly;
//! nothing merged; never a panic.

use crate::support::{TestApp, H, T0};
use coincast::pipeline::RunState;

fn good_points(n: i64) -> String {
    (0..n)
        .map(|h| format!("[{},{}]", T0 + h * H, 100.0 + h as f64))
        .collect::<Vec<_>>()
        .join(",")
}

fn chart(prices: &str, caps: &str, vols: &str) -> String {
    format!(r#"{{"prices":[{prices}],"market_caps":[{caps}],"total_volumes":[{vols}]}}"#)
}

struct Case {
    name: &'static str,
    body: String,
    state: &'static str,
    /// Words the recorded reason must contain.
    reason: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    let good = good_points(30);
    let mut with_string = good_points(29);
    with_string.push_str(&format!(r#",[{},"12.5"]"#, T0 + 29 * H));
    let mut with_null = good_points(28);
    with_null.push_str(&format!(",[{},null],[{},null]", T0 + 28 * H, T0 + 29 * H));
    let mut negative = good_points(29);
    negative.push_str(&format!(",[{},-5]", T0 + 29 * H));
    let seconds: String = (0..30)
        .map(|h| format!("[{},{}]", (T0 + h * H) / 1000, 100 + h))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        Case {
            name: "malformed JSON",
            body: r#"{"prices": [[1, 2] oops"#.into(),
            state: "failed",
            reason: &["badcoin", "not valid JSON", "line 1"],
        },
        Case {
            name: "empty body",
            body: String::new(),
            state: "failed",
            reason: &["badcoin", "empty"],
        },
        Case {
            name: "error object",
            body: r#"{"error":"coin not found"}"#.into(),
            state: "failed",
            reason: &["coin not found"],
        },
        Case {
            name: "not an object",
            body: "[1,2,3]".into(),
            state: "failed",
            reason: &["an array", "not a market_chart"],
        },
        Case {
            name: "missing array",
            body: format!(r#"{{"prices":[{good}],"total_volumes":[{good}]}}"#),
            state: "quarantined",
            reason: &["required_series", "market_caps"],
        },
        Case {
            name: "string where a number belongs",
            body: chart(&with_string, &good, &good),
            state: "quarantined",
            reason: &["numeric_types", "prices", "\\\"12.5\\\""],
        },
        Case {
            name: "nulls over the threshold",
            body: chart(&with_null, &good, &good),
            state: "quarantined",
            reason: &["null_share", "price"],
        },
        Case {
            name: "negative price",
            body: chart(&negative, &good, &good),
            state: "quarantined",
            reason: &["price_positive", "\"idx\":29", "-5"],
        },
        Case {
            name: "negative volume",
            body: chart(&good, &good, &negative),
            state: "quarantined",
            reason: &["non_negative", "total_volumes"],
        },
        Case {
            name: "NaN value",
            body: chart(&good, &good.replacen(",101", ",NaN", 1), &good),
            state: "quarantined",
            reason: &["numeric_types", "market_caps", "not a finite number"],
        },
        Case {
            name: "timestamps in seconds",
            body: chart(&seconds, &seconds, &seconds),
            state: "quarantined",
            reason: &["timestamp_range", "seconds, not milliseconds"],
        },
        Case {
            name: "too few rows",
            body: chart(&good_points(5), &good_points(5), &good_points(5)),
            state: "quarantined",
            reason: &["min_rows", "\"hours\":5"],
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_body_is_kept_explained_and_not_merged() {
    for case in cases() {
        let app = TestApp::new(&[]);
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("badcoin.json"), &case.body).expect("write");
        let report = app.replay(dir.path(), None).await;
        assert_eq!(
            report.state,
            RunState::Partial,
            "{}: {:?}",
            case.name,
            report.summary
        );
        assert_eq!(
            app.string("SELECT state FROM raw_batches"),
            case.state,
            "{}",
            case.name
        );
        let reason = app.string("SELECT reason FROM raw_batches");
        for word in case.reason {
            assert!(
                reason.contains(word),
                "{}: `{word}` not in reason: {reason}",
                case.name
            );
        }
        assert_eq!(
            app.count("SELECT body_bytes FROM raw_batches"),
            case.body.len() as i64,
            "{}",
            case.name
        );
        assert_eq!(
            app.string("SELECT coalesce(decode(body), '') FROM raw_batches"),
            case.body,
            "{}: body kept exactly",
            case.name
        );
        assert_eq!(
            app.count("SELECT count(*) FROM market_data"),
            0,
            "{}",
            case.name
        );
        assert_eq!(
            app.count("SELECT count(*) FROM features"),
            0,
            "{}",
            case.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrays_of_different_lengths_are_joined_by_timestamp() {
    let app = TestApp::new(&[]);
    let dir = tempfile::tempdir().expect("dir");
    let prices = good_points(200);
    // Market caps lack one hour and are listed in reverse; volumes carry a second point in one hour.
    let caps: Vec<String> = (0..200)
        .rev()
        .filter(|h| *h != 50)
        .map(|h| format!("[{},{}]", T0 + h * H, 1e6 + h as f64))
        .collect();
    let mut vols = good_points(200);
    vols.push_str(&format!(",[{},999]", T0 + 10 * H + 1800 * 1000));
    std::fs::write(
        dir.path().join("lenient.json"),
        chart(&prices, &caps.join(","), &vols),
    )
    .expect("write");
    let report = app.replay(dir.path(), None).await;
    assert_eq!(report.summary.merged, 1, "{:?}", report.summary);
    assert_eq!(app.count("SELECT count(*) FROM market_data"), 200);
    // Values belong to their own hour, not to a position.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM market_data WHERE market_cap = 1e6 + price - 100 AND ts <> make_timestamptz({})",
            (T0 + 50 * H) * 1000
        )),
        199
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM market_data WHERE market_cap IS NULL AND ts = make_timestamptz({})",
            (T0 + 50 * H) * 1000
        )),
        1
    );
    // The later point of the hour wins.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM market_data WHERE total_volume = 999 AND ts = make_timestamptz({})",
            (T0 + 10 * H) * 1000
        )),
        1
    );
}
