//! A real PostgreSQL for the lake's catalog tests: Debian's server binaries, a fresh cluster in a
//! temporary folder, listening on 127.0.0.1 only. `initdb` and the server refuse to run as root,
//! so as root (CI) they run as the `postgres` user through `runuser`.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Postgres {
    dir: PathBuf,
    pub port: u16,
}

/// Debian's server binaries (`postgresql` package): /usr/lib/postgresql/<major>/bin.
fn bin(name: &str) -> PathBuf {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|dirs| {
            dirs.flatten()
                .map(|d| d.path().join("bin").join(name))
                .find(|p| p.exists())
        });
    found.unwrap_or_else(|| {
        panic!("no PostgreSQL server binaries: `make test` installs the postgresql package")
    })
}

fn as_server_user(program: &Path) -> Command {
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    /// A new cluster in `dir` (made readable by the server's user) with a database `lake`.
    pub fn start(dir: &Path) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = dir.join("pg");
        std::fs::create_dir_all(&dir).expect("pg dir");
        // The server's user must reach its folder: open the temporary folders on the way.
        for p in dir.ancestors().take(3) {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
        }
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status();
        let data = dir.join("data");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut initdb = as_server_user(&bin("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync"]);
        run(initdb, "initdb");
        let mut start = as_server_user(&bin("pg_ctl"));
        start
            .arg("-D")
            .arg(&data)
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                dir.display()
            ))
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-w", "start"]);
        run(start, "pg_ctl start");
        let server = Self { dir, port };
        server.psql("CREATE DATABASE lake");
        server
    }

    pub fn psql(&self, sql: &str) {
        let mut psql = Command::new("psql");
        psql.args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .arg("-p")
        .arg(self.port.to_string());
        run(psql, sql);
    }

    /// The libpq string of the `lake` database.
    pub fn lake_dsn(&self) -> String {
        format!(
            "dbname=lake host=127.0.0.1 port={} user=postgres",
            self.port
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut stop = as_server_user(&bin("pg_ctl"));
        stop.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"]);
        let _ = stop.output();
    }
}
