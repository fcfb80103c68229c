//! A real S3-compatible server for the lake's tests: SeaweedFS (`weed mini`, fetched by
//! `scripts/fetch-seaweedfs.sh`), every port on 127.0.0.1, real SigV4 credentials, telemetry off.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "coincast-test";
pub const SECRET_KEY: &str = "coincast-test-secret";
pub const BUCKET: &str = "lake";

pub struct SeaweedFs {
    child: Option<Child>,
    dir: PathBuf,
    ports: Vec<u16>,
    pub s3_port: u16,
}

/// The weed binary: COINCAST_WEED, else where `make test` fetched it.
fn weed() -> PathBuf {
    std::env::var("COINCAST_WEED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/coincast/seaweedfs-4.48/weed")
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl SeaweedFs {
    /// Starts a server keeping its data in `dir`, with the bucket made; waits until S3 answers.
    pub fn start(dir: &Path) -> Self {
        let ports: Vec<u16> = (0..10).map(|_| free_port()).collect();
        let mut server = Self {
            child: None,
            dir: dir.to_path_buf(),
            s3_port: ports[6],
            ports,
        };
        server.run();
        server
    }

    fn run(&mut self) {
        let weed = weed();
        assert!(
            weed.exists(),
            "{} is missing: `make test` fetches SeaweedFS (scripts/fetch-seaweedfs.sh)",
            weed.display()
        );
        std::fs::create_dir_all(self.dir.join("data")).expect("data dir");
        let config = self.dir.join("s3.json");
        std::fs::write(
            &config,
            serde_json::json!({"identities": [{"name": "coincast", "credentials": [
                {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]})
            .to_string(),
        )
        .expect("s3 config");
        let p = &self.ports;
        let log = std::fs::File::create(self.dir.join("weed.log")).expect("log");
        let child = Command::new(weed)
            .arg("mini")
            .arg(format!("-dir={}", self.dir.join("data").display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                "-webdav=false",
                "-admin.ui=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ])
            .arg(format!("-s3.config={}", config.display()))
            .arg(format!("-bucket={BUCKET}"))
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg(format!("-s3.port={}", p[6]))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .arg(format!("-admin.port={}", p[8]))
            .arg(format!("-admin.port.grpc={}", p[9]))
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start weed");
        self.child = Some(child);
        self.wait_until_serving();
    }

    /// The filer lists the bucket (made asynchronously at start) and S3 accepts connections.
    fn wait_until_serving(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            let s3_up = std::net::TcpStream::connect(("127.0.0.1", self.s3_port)).is_ok();
            if s3_up && self.filer_lists(&format!("/buckets/{BUCKET}\"")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "SeaweedFS did not start: {}",
            std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default()
        );
    }

    /// Whether the filer's JSON listing of /buckets/ holds `needle`.
    fn filer_lists(&self, needle: &str) -> bool {
        self.answer_holds(self.ports[4], "/buckets/", needle)
    }

    /// Whether `GET path` on 127.0.0.1:`port` answers with a body holding `needle`.
    fn answer_holds(&self, port: u16, path: &str, needle: &str) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n");
        let mut body = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut body).is_ok()
            && body.contains(needle)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Stops the server (its data stays) until `restart`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on its data. Serving again means more than listening: stored objects
    /// can be read only once the volume server has told the master its volumes again (before,
    /// a read of an existing object answers 500).
    pub fn restart(&mut self) {
        self.stop();
        self.run();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60)
            && !self.answer_holds(self.ports[0], "/dir/lookup?volumeId=1", "\"locations\"")
        {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.stop();
    }
}
