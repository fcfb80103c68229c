//! Serving beyond loopback, through the real binary: HTTPS with a certificate of the test's own
//! (checked with the real curl), the readers' token, `coincast healthcheck`, and the warning when
//! a non-loopback bind has no readers' token. Every connection goes to 127.0.0.1.

use std::process::{Child, Command, Stdio};

use crate::support::{certificate, coincast, coincast_command, free_port, text};

fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(args)
        .output()
        .expect("curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

/// SIGTERM, then the exit code and everything the server printed.
fn terminate(child: Child) -> (Option<i32>, String) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    (out.status.code(), text(&out))
}

fn start(data: &str, bind: &str, env: &[(&str, &str)]) -> Child {
    let mut env = env.to_vec();
    env.extend([
        ("COINCAST__COINGECKO__BASE_URL", "http://127.0.0.1:9/api/v3"),
        ("COINCAST__SERVE__PIPELINE_SCHEDULE", ""),
        ("COINCAST__SERVE__RETRAIN_SCHEDULE", ""),
    ]);
    coincast_command(&["--data-dir", data, "serve", "--bind", bind], &env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve")
}

#[test]
fn https_with_a_read_token_and_the_healthcheck() {
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = certificate(dir.path());
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8");
    let port = free_port();
    let env = [
        ("COINCAST__SERVE__TLS_CERT", cert.as_str()),
        ("COINCAST__SERVE__TLS_KEY", key.as_str()),
        ("COINCAST__SERVE__READ_TOKEN", "r3ad"),
    ];
    let server = start(data, &format!("127.0.0.1:{port}"), &env);
    let base = format!("https://127.0.0.1:{port}");
    let health = format!("{base}/health");
    let mut up = false;
    for _ in 0..100 {
        if curl(&["--cacert", &cert, &health]).1 == "200" {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(up, "no HTTPS answer on {health}");
    let overview = format!("{base}/api/overview");
    assert_eq!(curl(&["--cacert", &cert, &overview]).1, "401");
    assert_eq!(
        curl(&[
            "--cacert",
            &cert,
            "-H",
            "Authorization: Bearer r3ad",
            &overview
        ])
        .1,
        "200"
    );
    assert_eq!(
        curl(&["--cacert", &cert, "-u", "me:r3ad", &overview]).1,
        "200"
    );
    assert_eq!(
        curl(&["--cacert", &cert, &format!("{base}/metrics")]).1,
        "200"
    );
    // Without the certificate curl refuses the server; plain HTTP gets no answer.
    assert_ne!(curl(&[&health]).0, 0);
    assert_ne!(curl(&[&format!("http://127.0.0.1:{port}/health")]).1, "200");
    // The healthcheck finds the server through serve.url and trusts its certificate.
    let check = coincast(&["--data-dir", data, "healthcheck"], &env);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    assert!(text(&check).contains(&format!("https://127.0.0.1:{port}/health")));
    let (code, log) = terminate(server);
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("database checkpointed"), "{log}");
    // Gone with the server: the healthcheck now fails, and says where it looked.
    let check = coincast(&["--data-dir", data, "healthcheck"], &env);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(text(&check).contains("unhealthy"), "{}", text(&check));
}

#[test]
fn a_certificate_that_is_not_pem_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("dir");
    let bad = dir.path().join("cert.pem");
    std::fs::write(&bad, "not a certificate").expect("write");
    let bad = bad.to_str().expect("utf-8");
    let data = dir.path().join("data");
    let out = coincast(
        &[
            "--data-dir",
            data.to_str().expect("utf-8"),
            "serve",
            "--bind",
            "127.0.0.1:0",
        ],
        &[
            ("COINCAST__SERVE__TLS_CERT", bad),
            ("COINCAST__SERVE__TLS_KEY", bad),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(bad), "{}", text(&out));
    let out = coincast(
        &["--data-dir", data.to_str().expect("utf-8"), "status"],
        &[("COINCAST__SERVE__TLS_CERT", bad)],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("serve.tls_key"), "{}", text(&out));
}

#[test]
fn an_open_bind_without_a_read_token_says_anyone_can_read() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8");
    let port = free_port();
    let server = start(data, &format!("0.0.0.0:{port}"), &[]);
    let overview = format!("http://127.0.0.1:{port}/api/overview");
    let mut body = String::new();
    for _ in 0..100 {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5", &overview])
            .output()
            .expect("curl");
        if out.status.success() {
            body = String::from_utf8_lossy(&out.stdout).to_string();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(body.contains("OpenToReaders"), "{body}");
    let (code, log) = terminate(server);
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("anyone who can reach this port can read"),
        "{log}"
    );
}
