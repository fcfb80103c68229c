//! Model artifacts and backup archives off the machine: with `lake.data_path` on S3 they go to
//! the same bucket, through `object_store`. The serving publication (`crate::publish`) uses the
//! same objects at `publish.url`, an S3 prefix or a folder (`file:///dir`, a shared volume).
//!
//! Layout under `s3://bucket/prefix/`:
//! - `blobs/sha256/<hex>`: every file, named by its content, uploaded once (a HEAD first), so an
//!   upload is idempotent and a file shared by two models or two backups is stored once;
//! - `models/<model_id>.json` (`ModelManifest`): the registry row (a Parquet blob) and the
//!   artifact's files, written last, so a manifest names only blobs that are there;
//! - `backups/<time>-<sha>.json` (`BackupIndex`): a backup's manifest and its archive's blob.
//!
//! Every download is checked against its sha256 before it is used. The calls block: each runs on
//! a small runtime of its own, on its own thread, so that they work from the CLI and from
//! the pipeline's tasks (which run inside the server's runtime) alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use duckdb::{params, Connection};
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{literal, LakeError};
use crate::config::{S3Settings, Settings};
use crate::model::artifacts;
use crate::model::registry;
use crate::store::BackupManifest;

/// Where blobs lie, each named by its sha256.
pub(crate) const BLOBS_DIR: &str = "blobs/sha256";

/// A file as the bucket names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob {
    pub sha256: String,
    pub bytes: u64,
}

/// A model in the bucket: its registry row and its artifact's files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelManifest {
    pub model_id: String,
    /// The `model_versions` row, as a one-row Parquet file.
    pub registry_row: Blob,
    /// Each file of the artifact folder, by its path inside it.
    pub files: Vec<(String, Blob)>,
}

/// A backup in the bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupIndex {
    pub manifest: BackupManifest,
    pub archive: Blob,
}

/// An object as a listing gives it.
pub(crate) struct Object {
    pub(crate) name: String,
    pub(crate) bytes: u64,
    pub(crate) modified: chrono::DateTime<chrono::Utc>,
}

/// What `prune` removed from the bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PrunedBucket {
    pub manifests: usize,
    pub blobs: usize,
    pub bytes: u64,
}

/// The bucket and prefix of `lake.data_path`.
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
}

impl Bucket {
    /// The bucket of `lake.data_path`, when the lake is on and on S3.
    pub fn of(settings: &Settings) -> Result<Option<Self>, LakeError> {
        let location = super::Location::of(settings);
        if !settings.lake.enabled || !location.on_s3() {
            return Ok(None);
        }
        Self::at(&location.data_path, &settings.s3).map(Some)
    }

    /// The objects under `url`: `file:///dir` (a folder, made if missing) or an S3 prefix
    /// (`Bucket::at`).
    pub fn at_url(url: &str, s3: &S3Settings) -> Result<Self, LakeError> {
        let Some(dir) = url.strip_prefix("file://") else {
            return Self::at(url, s3);
        };
        std::fs::create_dir_all(dir)
            .map_err(|source| io_error("cannot create", Path::new(dir), source))?;
        let store =
            object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(|source| {
                LakeError::Bucket {
                    action: "opening",
                    key: url.to_string(),
                    source: Box::new(source),
                }
            })?;
        Ok(Self {
            store: Arc::new(store),
            prefix: String::new(),
            url: url.trim_end_matches('/').to_string(),
        })
    }

    /// The bucket and prefix of an `s3://bucket/prefix` URL, reached as `[s3]` says, with the
    /// credentials of `AWS_*`.
    pub fn at(url: &str, s3: &S3Settings) -> Result<Self, LakeError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| LakeError::NotS3(url.to_string()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(LakeError::NotS3(url.to_string()));
        }
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (Some(key_id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(LakeError::NoCredentials {
                data_path: url.to_string(),
            });
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&s3.region)
            .with_access_key_id(key_id)
            .with_secret_access_key(secret)
            .with_virtual_hosted_style_request(s3.url_style == "vhost")
            .with_allow_http(s3.allow_http);
        if let Some(token) = var("AWS_SESSION_TOKEN") {
            builder = builder.with_token(token);
        }
        let endpoint = s3.endpoint.trim();
        if !endpoint.is_empty() {
            builder = builder.with_endpoint(endpoint.trim_end_matches('/'));
        }
        let store = builder.build().map_err(|source| LakeError::Bucket {
            action: "configuring",
            key: url.to_string(),
            source: Box::new(source),
        })?;
        Ok(Self {
            store: Arc::new(store),
            prefix: prefix.trim_matches('/').to_string(),
            url: format!("s3://{bucket}/{}", prefix.trim_matches('/')),
        })
    }

    /// `s3://bucket/prefix`, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, name: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(name)
        } else {
            Key::from(format!("{}/{name}", self.prefix))
        }
    }

    fn blob_key(&self, sha256: &str) -> Key {
        self.key(&format!("{BLOBS_DIR}/{sha256}"))
    }

    /// Uploads `file` as a blob unless the bucket has it already.
    pub fn upload_file(&self, file: &Path) -> Result<Blob, LakeError> {
        let blob = hash_file(file)?;
        let key = self.blob_key(&blob.sha256);
        let store = self.store.clone();
        let path = file.to_path_buf();
        blocking(async move {
            match store.head(&key).await {
                Ok(meta) if meta.size == blob.bytes => return Ok(blob),
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => return Err(bucket_error("checking", &key, source)),
            }
            let mut reader = tokio::fs::File::open(&path)
                .await
                .map_err(|source| io_error("cannot read", &path, source))?;
            let mut writer = object_store::buffered::BufWriter::new(store, key.clone());
            let copied = tokio::io::copy(&mut reader, &mut writer).await;
            let shut = writer.shutdown().await;
            copied
                .and(shut)
                .map_err(|source| io_error("cannot upload", &path, source))?;
            Ok(blob)
        })
    }

    /// Downloads blob `blob` to `dest` (which must not exist) and checks its sha256.
    pub fn download_blob(&self, blob: &Blob, dest: &Path) -> Result<(), LakeError> {
        let key = self.blob_key(&blob.sha256);
        let store = self.store.clone();
        let path = dest.to_path_buf();
        blocking(async move {
            let got = store
                .get(&key)
                .await
                .map_err(|source| bucket_error("reading", &key, source))?;
            let mut stream = got.into_stream();
            let mut out = tokio::fs::File::create(&path)
                .await
                .map_err(|source| io_error("cannot create", &path, source))?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|source| bucket_error("reading", &key, source))?;
                out.write_all(&chunk)
                    .await
                    .map_err(|source| io_error("cannot write", &path, source))?;
            }
            out.sync_all()
                .await
                .map_err(|source| io_error("cannot write", &path, source))?;
            Ok(())
        })?;
        let got = hash_file(dest)?;
        if got != *blob {
            let _ = std::fs::remove_file(dest);
            return Err(LakeError::Corrupt {
                key: self.blob_key(&blob.sha256).to_string(),
                expected: blob.sha256.clone(),
                got: got.sha256,
            });
        }
        Ok(())
    }

    /// Uploads `file` as the object `name` (replacing it: a whole object appears at once).
    pub(crate) fn put_file(&self, name: &str, file: &Path) -> Result<(), LakeError> {
        let body = std::fs::read(file).map_err(|source| io_error("cannot read", file, source))?;
        self.put_bytes(name, body)
    }

    /// Writes `body` as the object `name` (replacing it: a whole object appears at once).
    pub(crate) fn put_bytes(&self, name: &str, body: Vec<u8>) -> Result<(), LakeError> {
        let key = self.key(name);
        let store = self.store.clone();
        blocking(async move {
            store
                .put(&key, body.into())
                .await
                .map(|_| ())
                .map_err(|source| bucket_error("writing", &key, source))
        })
    }

    /// The object `name`'s bytes, or `None` when there is no such object.
    pub(crate) fn get_bytes(&self, name: &str) -> Result<Option<Vec<u8>>, LakeError> {
        let key = self.key(name);
        let store = self.store.clone();
        blocking(async move {
            match store.get(&key).await {
                Ok(got) => got
                    .bytes()
                    .await
                    .map(|b| Some(b.to_vec()))
                    .map_err(|source| bucket_error("reading", &key, source)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(source) => Err(bucket_error("reading", &key, source)),
            }
        })
    }

    pub(crate) fn put_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), LakeError> {
        let body = serde_json::to_vec_pretty(value).map_err(|e| LakeError::Metadata {
            version: -1,
            message: e.to_string(),
        })?;
        self.put_bytes(name, body)
    }

    /// The JSON object `name`, or `None` when the bucket has no such object.
    pub(crate) fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        name: &str,
    ) -> Result<Option<T>, LakeError> {
        let body = self.get_bytes(name)?;
        body.map(|b| {
            serde_json::from_slice(&b).map_err(|e| LakeError::Metadata {
                version: -1,
                message: format!("{}/{name}: {e}", self.url),
            })
        })
        .transpose()
    }

    /// The names of the objects under `folder/`, sorted.
    pub(crate) fn list(&self, folder: &str) -> Result<Vec<String>, LakeError> {
        Ok(self
            .list_objects(folder)?
            .into_iter()
            .map(|o| o.name)
            .collect())
    }

    /// The objects under `folder/` with their sizes and ages, sorted by name.
    pub(crate) fn list_objects(&self, folder: &str) -> Result<Vec<Object>, LakeError> {
        let key = self.key(folder);
        let store = self.store.clone();
        let mut objects = blocking(async move {
            let mut listing = store.list(Some(&key));
            let mut objects = Vec::new();
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(|source| bucket_error("listing", &key, source))?;
                if let Some(name) = meta.location.filename() {
                    objects.push(Object {
                        name: name.to_string(),
                        bytes: meta.size,
                        modified: meta.last_modified,
                    });
                }
            }
            Ok(objects)
        })?;
        objects.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(objects)
    }

    pub(crate) fn delete(&self, name: &str) -> Result<(), LakeError> {
        let key = self.key(name);
        let store = self.store.clone();
        blocking(async move {
            match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(source) => Err(bucket_error("deleting", &key, source)),
            }
        })
    }

    fn has(&self, name: &str) -> Result<bool, LakeError> {
        let key = self.key(name);
        let store = self.store.clone();
        blocking(async move {
            match store.head(&key).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(source) => Err(bucket_error("checking", &key, source)),
            }
        })
    }
}

/// Uploads every registered model that is not retired and not in the bucket yet (its files, its
/// registry row, then its manifest); the number uploaded.
pub fn upload_models(
    conn: &Connection,
    bucket: &Bucket,
    data_dir: &Path,
) -> Result<usize, LakeError> {
    let mut uploaded = 0;
    for m in registry::list(conn).map_err(|e| LakeError::Model(Box::new(e)))? {
        let name = format!("models/{}.json", m.model_id);
        if m.retired || bucket.has(&name)? {
            continue;
        }
        let dir = m.artifact_dir(data_dir);
        let mut files = Vec::new();
        for path in files_under(&dir)? {
            let relative = path
                .strip_prefix(&dir)
                .unwrap_or(&path)
                .display()
                .to_string();
            files.push((relative, bucket.upload_file(&path)?));
        }
        let row_file = data_dir.join(format!(".registry-{}.parquet", m.model_id));
        conn.execute_batch(&format!(
            "COPY (SELECT * FROM model_versions WHERE model_id = {}) TO {} (FORMAT parquet);",
            literal(&m.model_id),
            literal(&row_file.display().to_string())
        ))?;
        let registry_row = bucket.upload_file(&row_file);
        let _ = std::fs::remove_file(&row_file);
        let manifest = ModelManifest {
            model_id: m.model_id.clone(),
            registry_row: registry_row?,
            files,
        };
        bucket.put_json(&name, &manifest)?;
        uploaded += 1;
    }
    Ok(uploaded)
}

/// Brings model `model_id` from the bucket into this data folder: its artifact (checked file by
/// file, renamed into place whole) and its registry row (with no alias and not the floor here:
/// it serves when asked for). False when the bucket does not have it.
pub fn fetch_model(
    conn: &Connection,
    bucket: &Bucket,
    data_dir: &Path,
    model_id: &str,
) -> Result<bool, LakeError> {
    let Some(manifest) = bucket.get_json::<ModelManifest>(&format!("models/{model_id}.json"))?
    else {
        return Ok(false);
    };
    artifacts::write_atomically(data_dir, model_id, |dir, _| {
        for (relative, blob) in &manifest.files {
            let dest = dir.join(relative);
            bucket
                .download_blob(blob, &dest)
                .map_err(|e| crate::model::ModelError::Artifact {
                    path: dest.display().to_string(),
                    message: e.to_string(),
                })?;
        }
        Ok(())
    })
    .map_err(|e| LakeError::Model(Box::new(e)))?;
    let row_file = data_dir.join(format!(".registry-{model_id}.parquet"));
    let _ = std::fs::remove_file(&row_file);
    bucket.download_blob(&manifest.registry_row, &row_file)?;
    let inserted = conn.execute(
        &format!(
            "INSERT INTO model_versions BY NAME
             SELECT * REPLACE (CAST(NULL AS VARCHAR) AS alias, false AS floor,
                               'models/' || model_id AS artifact_path)
             FROM read_parquet({})
             WHERE model_id = ? AND model_id NOT IN (SELECT model_id FROM model_versions)",
            literal(&row_file.display().to_string())
        ),
        params![model_id],
    );
    let _ = std::fs::remove_file(&row_file);
    inserted?;
    conn.execute(
        "INSERT INTO model_events (model_id, event_at, event, reason) VALUES (?, now(), 'fetched', ?)",
        params![model_id, format!("from {}", bucket.url())],
    )?;
    Ok(true)
}

/// Removes the manifests of `retired` models, then every blob that no model manifest and no
/// backup index names and that is older than `grace` (a younger one may belong to an upload in
/// progress, whose manifest is written last). Backups are never removed.
pub fn prune(
    bucket: &Bucket,
    retired: &[String],
    grace: chrono::Duration,
) -> Result<PrunedBucket, LakeError> {
    let mut pruned = PrunedBucket::default();
    for id in retired {
        let name = format!("models/{id}.json");
        if bucket.has(&name)? {
            bucket.delete(&name)?;
            pruned.manifests += 1;
        }
    }
    let mut named = std::collections::HashSet::new();
    for name in bucket.list("models")? {
        if let Some(m) = bucket.get_json::<ModelManifest>(&format!("models/{name}"))? {
            named.insert(m.registry_row.sha256);
            named.extend(m.files.into_iter().map(|(_, blob)| blob.sha256));
        }
    }
    for name in bucket.list("backups")? {
        if let Some(index) = bucket.get_json::<BackupIndex>(&format!("backups/{name}"))? {
            named.insert(index.archive.sha256);
        }
    }
    let settled = chrono::Utc::now() - grace;
    for blob in bucket.list_objects(BLOBS_DIR)? {
        if !named.contains(&blob.name) && blob.modified <= settled {
            bucket.delete(&format!("{BLOBS_DIR}/{}", blob.name))?;
            pruned.blobs += 1;
            pruned.bytes += blob.bytes;
        }
    }
    Ok(pruned)
}

/// Uploads a backup archive and its index; the index's name.
pub fn upload_backup(
    bucket: &Bucket,
    archive: &Path,
    manifest: &BackupManifest,
) -> Result<String, LakeError> {
    let blob = bucket.upload_file(archive)?;
    let stamp = manifest
        .created_at
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>();
    let name = format!("backups/{stamp}-{}.json", &blob.sha256[..16]);
    bucket.put_json(
        &name,
        &BackupIndex {
            manifest: manifest.clone(),
            archive: blob,
        },
    )?;
    Ok(format!("{}/{name}", bucket.url()))
}

/// Downloads a backup archive to `dest`: the one `url` names (`s3://…/backups/X.json`), or the
/// newest under `url` (`s3://bucket/prefix`). The index's name.
pub fn download_backup(url: &str, s3: &S3Settings, dest: &Path) -> Result<String, LakeError> {
    let (base, index) = match url.trim_end_matches('/').rsplit_once("/backups/") {
        Some((base, name)) if name.ends_with(".json") => (base.to_string(), Some(name.to_string())),
        _ => (url.trim_end_matches('/').to_string(), None),
    };
    let bucket = Bucket::at(&base, s3)?;
    let name = match index {
        Some(name) => name,
        None => bucket
            .list("backups")?
            .into_iter()
            .rfind(|n| n.ends_with(".json"))
            .ok_or_else(|| LakeError::NoBackup(bucket.url().to_string()))?,
    };
    let index: BackupIndex = bucket
        .get_json(&format!("backups/{name}"))?
        .ok_or_else(|| LakeError::NoBackup(format!("{}/backups/{name}", bucket.url())))?;
    bucket.download_blob(&index.archive, dest)?;
    Ok(format!("{}/backups/{name}", bucket.url()))
}

/// Copies a coin's market data and features from the lake's newest version into the file, when
/// the file has none of it (a data folder that starts from the bucket); the rows copied.
pub fn hydrate_coin(conn: &Connection, coin: &str, vs_currency: &str) -> Result<i64, LakeError> {
    let held: i64 = conn.query_row(
        "SELECT count(*) FROM market_data WHERE coin_id = ? AND vs_currency = ?",
        params![coin, vs_currency],
        |r| r.get(0),
    )?;
    if held > 0 {
        return Ok(0);
    }
    crate::store::in_transaction(conn, || -> Result<i64, LakeError> {
        let rows = conn.execute(
            "INSERT INTO market_data BY NAME
             SELECT * FROM lake.market_data WHERE coin_id = ? AND vs_currency = ?",
            params![coin, vs_currency],
        )?;
        conn.execute(
            "INSERT INTO features BY NAME
             SELECT * FROM lake.features WHERE coin_id = ? AND vs_currency = ?",
            params![coin, vs_currency],
        )?;
        Ok(rows as i64)
    })
}

pub(crate) fn files_under(dir: &Path) -> Result<Vec<PathBuf>, LakeError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| io_error("cannot read", dir, source))?;
    for entry in entries {
        let path = entry
            .map_err(|source| io_error("cannot read", dir, source))?
            .path();
        if path.is_dir() {
            out.extend(files_under(&path)?);
        } else {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) fn hash_file(path: &Path) -> Result<Blob, LakeError> {
    let mut file =
        std::fs::File::open(path).map_err(|source| io_error("cannot read", path, source))?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher)
        .map_err(|source| io_error("cannot read", path, source))?;
    Ok(Blob {
        sha256: hex::encode(hasher.finalize()),
        bytes,
    })
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> LakeError {
    LakeError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn bucket_error(action: &'static str, key: &Key, source: object_store::Error) -> LakeError {
    LakeError::Bucket {
        action,
        key: key.to_string(),
        source: Box::new(source),
    }
}

/// Runs `work` to completion on a current-thread runtime of its own, on a thread of its own
/// (never inside the caller's runtime, where blocking on it would panic).
fn blocking<T: Send>(
    work: impl std::future::Future<Output = Result<T, LakeError>> + Send,
) -> Result<T, LakeError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|source| LakeError::Io {
                        action: "cannot start",
                        path: PathBuf::from("an object-store runtime"),
                        source,
                    })?
                    .block_on(work)
            })
            .join()
            .unwrap_or_else(|_| Err(LakeError::Panicked))
    })
}
