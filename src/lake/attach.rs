//! Attaching the lake (`ATTACH 'ducklake:…' AS lake`) to the store's DuckDB instance: the
//! extensions loaded from files, the S3 secret from the environment, the tables made once.

use std::path::{Path, PathBuf};

use duckdb::Connection;

use super::{literal, LakeError};
use crate::config::{S3Settings, Settings};

/// Where the lake is, as resolved from `[lake]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The ATTACH target: `ducklake:<path>`, `ducklake:postgres:<libpq>` or `ducklake:sqlite:<path>`.
    pub attach_target: String,
    /// The Parquet files' folder or `s3://bucket/prefix/`, with a trailing slash.
    pub data_path: String,
    catalog: Catalog,
    origin: DataPathOrigin,
}

/// Whose the data path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataPathOrigin {
    /// `<data_dir>/lake/data/`: it moves with the data folder (a restore elsewhere, a container
    /// mounted at another path), so the catalog's recorded path gives way to today's.
    DataFolder,
    /// Configured: a different path than the catalog's is a mistake to report.
    Configured,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Catalog {
    DuckDbFile,
    Postgres,
    Sqlite,
}

impl Location {
    pub fn of(settings: &Settings) -> Self {
        let lake = &settings.lake;
        let data_dir = absolute(&settings.data_dir);
        let configured = lake.catalog.trim();
        let (catalog, target) = if let Some(libpq) = configured.strip_prefix("postgres:") {
            (Catalog::Postgres, format!("ducklake:postgres:{libpq}"))
        } else if let Some(path) = configured.strip_prefix("sqlite:") {
            (
                Catalog::Sqlite,
                format!("ducklake:sqlite:{}", absolute(Path::new(path)).display()),
            )
        } else if configured.is_empty() {
            let path = data_dir.join("lake").join("catalog.ducklake");
            (Catalog::DuckDbFile, format!("ducklake:{}", path.display()))
        } else {
            let path = absolute(Path::new(configured));
            (Catalog::DuckDbFile, format!("ducklake:{}", path.display()))
        };
        let (origin, data_path) = match lake.data_path.trim() {
            "" => (
                DataPathOrigin::DataFolder,
                data_dir.join("lake").join("data").display().to_string(),
            ),
            s3 if s3.starts_with("s3://") => (DataPathOrigin::Configured, s3.to_string()),
            folder => (
                DataPathOrigin::Configured,
                absolute(Path::new(folder)).display().to_string(),
            ),
        };
        let data_path = format!("{}/", data_path.trim_end_matches('/'));
        Self {
            attach_target: target,
            data_path,
            catalog,
            origin,
        }
    }

    /// The catalog is in PostgreSQL: every machine that reaches it reads the same lake.
    pub fn catalog_is_shared(&self) -> bool {
        self.catalog == Catalog::Postgres
    }

    /// The catalog's string holds a password (libpq's `password=`), which DuckDB shows to any
    /// query in `duckdb_databases()`; `PGPASSWORD` or `~/.pgpass` keep it out of the string.
    pub fn catalog_holds_password(&self) -> bool {
        if self.catalog != Catalog::Postgres {
            return false;
        }
        let libpq = self.attach_target.to_ascii_lowercase();
        // `password=…` in key-value form, or `postgresql://user:secret@host` as a URI.
        let in_uri = libpq
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('@'))
            .is_some_and(|(user_info, _)| user_info.contains(':'));
        libpq.contains("password") || in_uri
    }

    pub fn on_s3(&self) -> bool {
        self.data_path.starts_with("s3://")
    }

    /// The catalog as a person would name it (a Postgres string without its password).
    pub fn catalog_name(&self) -> String {
        match self.catalog {
            Catalog::Postgres => self
                .attach_target
                .split_whitespace()
                .filter(|kv| !kv.starts_with("password="))
                .collect::<Vec<_>>()
                .join(" "),
            Catalog::DuckDbFile | Catalog::Sqlite => self.attach_target.clone(),
        }
    }

    /// Creates the local folders the catalog file and the data need.
    fn prepare_folders(&self) -> Result<(), LakeError> {
        let mut folders = Vec::new();
        if let Some(path) = self.attach_target.strip_prefix("ducklake:") {
            if self.catalog == Catalog::DuckDbFile {
                folders.extend(Path::new(path).parent().map(Path::to_path_buf));
            }
        }
        if !self.on_s3() {
            folders.push(PathBuf::from(&self.data_path));
        }
        for folder in folders {
            std::fs::create_dir_all(&folder).map_err(|source| LakeError::Io {
                action: "cannot create",
                path: folder.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Attaches the lake as `lake` to the instance `conn` belongs to (every connection of the store
/// sees it; a second call is a no-op) and creates its tables if it has none.
pub fn attach(conn: &Connection, settings: &Settings) -> Result<Location, LakeError> {
    if !settings.lake.enabled {
        return Err(LakeError::Disabled);
    }
    let location = Location::of(settings);
    let attached: bool = conn.query_row(
        "SELECT count(*) > 0 FROM duckdb_databases() WHERE database_name = 'lake'",
        [],
        |r| r.get(0),
    )?;
    if attached {
        return Ok(location);
    }
    load_extensions_and_secret(conn, settings, &location)?;
    location.prepare_folders()?;
    let follow_the_folder = match location.origin {
        DataPathOrigin::DataFolder => ", OVERRIDE_DATA_PATH true",
        DataPathOrigin::Configured => "",
    };
    conn.execute_batch(&format!(
        "ATTACH {} AS lake (DATA_PATH {}, DATA_INLINING_ROW_LIMIT 0{follow_the_folder});",
        literal(&location.attach_target),
        literal(&location.data_path)
    ))
    .map_err(|source| LakeError::Attach {
        catalog: location.catalog_name(),
        data_path: location.data_path.clone(),
        source,
    })?;
    create_tables_once(conn)?;
    Ok(location)
}

/// Attaches the lake as `lake`, read-only, to the instance `conn` belongs to, and returns the
/// data path its catalog names (a configured `lake.data_path` wins; the data folder's default is
/// the writer's, not this machine's, so the catalog's is read). Creates nothing, here or there.
pub fn attach_read_only(conn: &Connection, settings: &Settings) -> Result<String, LakeError> {
    if !settings.lake.enabled {
        return Err(LakeError::Disabled);
    }
    let location = Location::of(settings);
    load_extensions_and_secret(conn, settings, &location)?;
    let data_path = match location.origin {
        DataPathOrigin::DataFolder => String::new(),
        DataPathOrigin::Configured => format!(", DATA_PATH {}", literal(&location.data_path)),
    };
    conn.execute_batch(&format!(
        "ATTACH {} AS lake (READ_ONLY{data_path});",
        literal(&location.attach_target)
    ))
    .map_err(|source| LakeError::Attach {
        catalog: location.catalog_name(),
        data_path: location.data_path.clone(),
        source,
    })?;
    Ok(conn.query_row(
        "SELECT value FROM lake.options() WHERE option_name = 'data_path'",
        [],
        |r| r.get(0),
    )?)
}

/// The extensions the catalog and the data path need, and the S3 secret when the data is there.
fn load_extensions_and_secret(
    conn: &Connection,
    settings: &Settings,
    location: &Location,
) -> Result<(), LakeError> {
    let extensions = extension_dir(settings);
    load(conn, &extensions, "ducklake")?;
    match location.catalog {
        Catalog::Postgres => load(conn, &extensions, "postgres_scanner")?,
        Catalog::Sqlite => load(conn, &extensions, "sqlite_scanner")?,
        Catalog::DuckDbFile => {}
    }
    if location.on_s3() {
        load(conn, &extensions, "httpfs")?;
        create_s3_secret(conn, &settings.s3, &location.data_path)?;
    }
    Ok(())
}

/// The extension files' folder: `lake.extension_dir`, else `lib/duckdb-extensions` beside the
/// binary (the image), else where the build fetched them.
fn extension_dir(settings: &Settings) -> PathBuf {
    let configured = settings.lake.extension_dir.trim();
    if !configured.is_empty() {
        return PathBuf::from(configured);
    }
    let beside_binary = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.parent()
                .map(|dir| dir.join("lib").join("duckdb-extensions"))
        })
        .filter(|dir| dir.is_dir());
    beside_binary
        .or_else(|| option_env!("COINCAST_BUILD_EXTENSION_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("lib/duckdb-extensions"))
}

fn load(conn: &Connection, dir: &Path, name: &'static str) -> Result<(), LakeError> {
    let path = dir.join(format!("{name}.duckdb_extension"));
    if !path.is_file() {
        return Err(LakeError::Extension { name, path });
    }
    conn.execute_batch(&format!("LOAD {};", literal(&path.display().to_string())))
        .map_err(|source| LakeError::Load { path, source })
}

/// An in-memory secret for the bucket, from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
/// `AWS_SESSION_TOKEN`. The statement holds the key, so its errors are reported without it.
fn create_s3_secret(conn: &Connection, s3: &S3Settings, data_path: &str) -> Result<(), LakeError> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(key_id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
    else {
        return Err(LakeError::NoCredentials {
            data_path: data_path.to_string(),
        });
    };
    let bucket = data_path
        .trim_start_matches("s3://")
        .split('/')
        .next()
        .unwrap_or_default();
    let mut options = vec![
        "TYPE s3".to_string(),
        format!("KEY_ID {}", literal(&key_id)),
        format!("SECRET {}", literal(&secret)),
        format!("REGION {}", literal(&s3.region)),
        format!("URL_STYLE {}", literal(&s3.url_style)),
        format!("SCOPE {}", literal(&format!("s3://{bucket}"))),
    ];
    if let Some(token) = var("AWS_SESSION_TOKEN") {
        options.push(format!("SESSION_TOKEN {}", literal(&token)));
    }
    let endpoint = s3.endpoint.trim();
    if !endpoint.is_empty() {
        let (use_ssl, host) = match endpoint.strip_prefix("http://") {
            Some(host) => (false, host),
            None => (true, endpoint.trim_start_matches("https://")),
        };
        options.push(format!("ENDPOINT {}", literal(host.trim_end_matches('/'))));
        options.push(format!("USE_SSL {use_ssl}"));
    }
    conn.execute_batch(&format!(
        "CREATE OR REPLACE SECRET coincast_lake_s3 ({});",
        options.join(", ")
    ))
    .map_err(|_| LakeError::S3Secret {
        data_path: data_path.to_string(),
    })
}

/// The lake's tables (`sql/lake/tables.sql`).
const LAKE_TABLES: i64 = 7;

/// The tables, when the lake has none yet: created by the first process that attaches it.
fn create_tables_once(conn: &Connection) -> Result<(), LakeError> {
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'lake'",
        [],
        |r| r.get(0),
    )?;
    if tables < LAKE_TABLES {
        conn.execute_batch(include_str!("../../sql/lake/tables.sql"))?;
    }
    // A lake made before batches named their writer gets the column (once, by the first
    // process of this release that attaches it).
    let named: i64 = conn.query_row(
        "SELECT count(*) FROM duckdb_columns()
         WHERE database_name = 'lake' AND table_name = 'raw_batches' AND column_name = 'writer_id'",
        [],
        |r| r.get(0),
    )?;
    if named == 0 {
        conn.execute_batch(
            "ALTER TABLE lake.raw_batches ADD COLUMN writer_id VARCHAR;
             ALTER TABLE lake.quality_results ADD COLUMN writer_id VARCHAR;",
        )?;
    }
    Ok(())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(env: &[(&str, &str)]) -> Settings {
        Settings::load_with_env(
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .expect("settings")
    }

    #[test]
    fn the_default_lake_lives_in_the_data_folder() {
        let s = settings(&[("COINCAST__DATA_DIR", "/srv/coincast")]);
        let l = Location::of(&s);
        assert_eq!(
            l.attach_target,
            "ducklake:/srv/coincast/lake/catalog.ducklake"
        );
        assert_eq!(l.data_path, "/srv/coincast/lake/data/");
        assert!(!l.on_s3());
    }

    #[test]
    fn postgres_and_s3_are_named_without_secrets() {
        let s = settings(&[
            (
                "COINCAST__LAKE__CATALOG",
                "postgres:dbname=lake host=127.0.0.1 user=me password=hunter2",
            ),
            ("COINCAST__LAKE__DATA_PATH", "s3://bucket/prefix"),
        ]);
        let l = Location::of(&s);
        assert_eq!(
            l.attach_target,
            "ducklake:postgres:dbname=lake host=127.0.0.1 user=me password=hunter2"
        );
        assert!(
            !l.catalog_name().contains("hunter2"),
            "{}",
            l.catalog_name()
        );
        assert_eq!(l.data_path, "s3://bucket/prefix/");
        assert!(l.on_s3());
        assert!(l.catalog_is_shared() && l.catalog_holds_password());
        let without = settings(&[(
            "COINCAST__LAKE__CATALOG",
            "postgres:dbname=lake host=127.0.0.1 user=me",
        )]);
        assert!(!Location::of(&without).catalog_holds_password());
        let uri = settings(&[(
            "COINCAST__LAKE__CATALOG",
            "postgres:postgresql://me:hunter2@127.0.0.1/lake",
        )]);
        assert!(Location::of(&uri).catalog_holds_password());
    }
}
