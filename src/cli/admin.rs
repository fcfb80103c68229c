//! The appliance's own commands: `serve` (the HTTP API and the pipeline worker until a signal),
//! and online `backup` / `restore` of the data folder.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::{runtime, usage, Exit};
use coincast::config::Settings;
use coincast::store::{Store, StoreError};

#[derive(Args, Debug)]
pub(super) struct ServeArgs {
    /// Address to listen on (overrides serve.bind), e.g. 0.0.0.0:8000.
    #[arg(long)]
    pub(super) bind: Option<String>,
    /// `writer` holds the database, runs the pipeline and publishes; `replica` serves the
    /// writer's serving publication (publish.url) and writes nothing of the writer's.
    #[arg(long, value_enum, default_value = "writer")]
    pub(super) role: ServeRole,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ServeRole {
    Writer,
    Replica,
}

/// What runs behind the HTTP layer: the writer's worker, or a replica's follower.
enum Backend {
    Writer(coincast::runtime::Worker),
    Replica(coincast::runtime::ReplicaHandle),
}

impl Backend {
    fn stop(self) {
        match self {
            Backend::Writer(w) => w.stop(),
            Backend::Replica(r) => r.stop(),
        }
    }
}

#[derive(Args, Debug)]
pub(super) struct RestoreArgs {
    /// A backup archive, or `s3://bucket/prefix` (the newest backup there) or
    /// `s3://bucket/prefix/backups/NAME.json` (that one), reached as `[s3]` says.
    pub(super) archive: PathBuf,
    #[arg(long)]
    pub(super) force: bool,
}

#[derive(Args, Debug)]
pub(super) struct BackupArgs {
    /// The archive to write (through `<dest>.partial`, renamed when complete).
    pub(super) dest: PathBuf,
    /// The server to ask when the database is in use; default http://<serve.bind>.
    #[arg(long)]
    pub(super) server: Option<String>,
}

pub(super) fn serve(mut settings: Settings, args: ServeArgs) -> anyhow::Result<Exit> {
    let ServeArgs { bind, role } = args;
    let bind = bind.unwrap_or_else(|| settings.serve.bind.clone());
    let addr: std::net::SocketAddr =
        bind.parse()
            .map_err(|_| coincast::config::ConfigError::Invalid {
                key: "--bind".into(),
                message: format!("`{bind}` is not an address like 127.0.0.1:8000"),
            })?;
    // The pages and the healthcheck read the address actually served.
    settings.serve.bind = addr.to_string();
    let tls = settings
        .serve
        .tls()
        .map(|(cert, key)| coincast::serve::tls::config(cert, key))
        .transpose()?;
    tch::set_num_threads(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The port first: a port in use fails before the database is opened or any run starts.
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(addr))
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr()?;
    let pg_listener = match settings.serve.pg_bind() {
        Some(bind) => Some(
            rt.block_on(tokio::net::TcpListener::bind(bind))
                .with_context(|| format!("listening on {bind} (serve.pg_bind)"))?,
        ),
        None => None,
    };
    // A tokens file that does not parse stops the start (exit 2, naming its line); later, a
    // broken change leaves the last good one in force.
    let reading_guarded = coincast::access::Access::load(&settings.serve)?
        .tokens()
        .guards(coincast::access::Scope::Read);
    let metrics = std::sync::Arc::new(coincast::runtime::Metrics::new()?);
    let (backend, runtime) = match role {
        ServeRole::Writer => {
            // The worker thread owns the database file for as long as the server runs; the
            // daily retrain runs in a child process of this executable, so its memory leaves
            // with it.
            let trainer = coincast::pipeline::Trainer::child_process(
                std::env::current_exe()
                    .context("finding this executable for the retrain process")?,
            );
            let (worker, runtime) =
                coincast::runtime::Worker::start(settings.clone(), metrics, trainer).with_context(
                    || {
                        format!(
                            "opening {}",
                            coincast::store::database_file(&settings.data_dir).display()
                        )
                    },
                )?;
            (Backend::Writer(worker), runtime)
        }
        ServeRole::Replica => {
            if settings.publish.url().is_none() {
                return Err(coincast::config::ConfigError::Invalid {
                    key: "publish.url".into(),
                    message: "a replica serves the writer's publication: set publish.url (file:///dir or s3://bucket/prefix) as on the writer".into(),
                }
                .into());
            }
            let (runtime, handle) = coincast::runtime::Runtime::replica(settings.clone(), metrics)
                .context("following the serving publication")?;
            (Backend::Replica(handle), runtime)
        }
    };
    let (stop_pg, pg_stopped) = tokio::sync::watch::channel(false);
    if let Some(listener) = pg_listener {
        errln!(
            "coincast answering the Postgres wire on {}",
            listener.local_addr()?
        );
        let mut stopped = pg_stopped;
        rt.spawn(coincast::pg::serve(listener, runtime.clone(), async move {
            let _ = stopped.changed().await;
        }));
    }
    let state = std::sync::Arc::new(coincast::serve::state::AppState::new(runtime));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url_file = ServeUrl::write(&settings.data_dir, scheme, local);
    if !local.ip().is_loopback() && !reading_guarded {
        tracing::warn!(
            "serving on {local} without serve.read_token or serve.tokens_file: anyone who can reach this port can read the forecasts, pages and data"
        );
    }
    let schedule = match (role, settings.serve.pipeline_schedule.trim()) {
        (ServeRole::Replica, _) => format!(
            "replica of {} (polled every {} s)",
            settings.publish.url, settings.publish.poll_secs
        ),
        (_, "") => "no pipeline schedule (runs only when triggered)".to_string(),
        (_, cron) => format!("pipeline schedule `{cron}`"),
    };
    errln!("coincast serving on {scheme}://{local}; {schedule} (Ctrl-C or SIGTERM to stop)");
    let served = rt.block_on(async {
        match tls {
            Some(config) => {
                coincast::serve::serve_tls(listener, state, config, shutdown_signal()).await
            }
            None => coincast::serve::serve(listener, state, shutdown_signal()).await,
        }
    });
    drop(url_file);
    let _ = stop_pg.send(true);
    backend.stop();
    served?;
    errln!(
        "stopped{}",
        if role == ServeRole::Writer {
            "; database checkpointed"
        } else {
            ""
        }
    );
    Ok(Exit::Ok)
}

/// `<data_dir>/serve.url`: where the running server answers, for `coincast healthcheck` (a
/// `--bind` on the command line is not in the configuration). Removed when the server stops.
struct ServeUrl(Option<PathBuf>);

impl ServeUrl {
    const FILE: &'static str = "serve.url";

    fn write(data_dir: &Path, scheme: &str, local: std::net::SocketAddr) -> Self {
        let path = data_dir.join(Self::FILE);
        let url = format!("{scheme}://{}", loopback_for(&local.to_string()));
        match std::fs::write(&path, url) {
            Ok(()) => Self(Some(path)),
            Err(e) => {
                tracing::warn!("cannot write {}: {e}", path.display());
                Self(None)
            }
        }
    }

    fn read(data_dir: &Path) -> Option<String> {
        let text = std::fs::read_to_string(data_dir.join(Self::FILE)).ok()?;
        Some(text.trim().to_string()).filter(|t| !t.is_empty())
    }
}

impl Drop for ServeUrl {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[derive(Args, Debug)]
pub(super) struct ExportArgs {
    /// The server to ask when the database is in use; default: where it said it listens.
    #[arg(long)]
    pub(super) server: Option<String>,
}

/// Publishes the read-only copy (database and Parquet): itself when the file is free, else
/// through the running server (`POST /api/exports`, with serve.api_token).
pub(super) fn export(settings: &Settings, args: ExportArgs) -> anyhow::Result<Exit> {
    let publication = match Store::open_existing(&settings.data_dir) {
        Ok(store) => coincast::store::publish(store.conn(), &settings.data_dir)?,
        Err(StoreError::Locked { .. }) => export_through_server(settings, args.server)?,
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "opening {}",
                coincast::store::database_file(&settings.data_dir).display()
            )))
        }
    };
    outln!(
        "published {} in {:.2} s: {} ({} bytes), Parquet in {}",
        publication.version,
        publication.seconds,
        publication.database.display(),
        publication.database_bytes,
        publication.parquet.display()
    );
    for t in &publication.tables {
        outln!("  {:<24} {:>10} rows", t.name, t.rows);
    }
    Ok(Exit::Ok)
}

fn export_through_server(
    settings: &Settings,
    server: Option<String>,
) -> anyhow::Result<coincast::store::Publication> {
    runtime()?.block_on(async {
        let (response, url) = ask_server(
            settings,
            server.as_deref(),
            "/api/exports",
            "publishes on request",
        )
        .await?;
        let body = response.bytes().await?;
        serde_json::from_slice(&body)
            .with_context(|| format!("reading the server's answer from {url}"))
    })
}

/// POSTs to an admin route of the server that holds the database (`server`, else where it said
/// it listens, else `serve.bind`) with `serve.api_token`; a refusal is an error with its body.
async fn ask_server(
    settings: &Settings,
    server: Option<&str>,
    path: &str,
    what: &str,
) -> anyhow::Result<(reqwest::Response, String)> {
    let token = settings.serve.api_token().ok_or_else(|| {
        usage(format!(
            "the database is in use by a running server, which {what} only with its token: set \
             serve.api_token (COINCAST__SERVE__API_TOKEN) as the server has it"
        ))
    })?;
    let base = server
        .map(str::to_string)
        .or_else(|| ServeUrl::read(&settings.data_dir))
        .unwrap_or_else(|| format!("http://{}", loopback_for(&settings.serve.bind)));
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("asking the server ({url})"))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let refused = format!("the server answered {status} to {url}: {body}");
        // A wrong token is the user's to fix (exit 2); anything else is the server's failure.
        return Err(match status {
            reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => usage(refused),
            _ => anyhow::anyhow!(refused),
        });
    }
    Ok((response, url))
}

#[derive(Args, Debug)]
pub(super) struct HealthcheckArgs {
    /// The server's base URL; default: where the server in this data folder said it listens,
    /// else http://<serve.bind>.
    #[arg(long)]
    pub(super) url: Option<String>,
}

/// Exit 0 when the server answers `/health` with 200 within 3 s, 1 otherwise (the container's
/// HEALTHCHECK: no curl needed, and a server on another port is found through `serve.url`).
pub(super) fn healthcheck(settings: &Settings, args: HealthcheckArgs) -> anyhow::Result<Exit> {
    let scheme = if settings.serve.tls().is_some() {
        "https"
    } else {
        "http"
    };
    let base = args
        .url
        .or_else(|| ServeUrl::read(&settings.data_dir))
        .unwrap_or_else(|| format!("{scheme}://{}", loopback_for(&settings.serve.bind)));
    let url = format!("{}/health", base.trim_end_matches('/'));
    let mut client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(3));
    // The server's own certificate is the one to trust (it may be self-signed).
    if let Some((cert, _)) = settings.serve.tls() {
        client = client.use_preconfigured_tls(coincast::serve::tls::pinned_client(cert)?);
    }
    let rt = runtime()?;
    let status = rt.block_on(async { client.build()?.get(&url).send().await.map(|r| r.status()) });
    match status {
        Ok(s) if s.is_success() => {
            outln!("healthy: {url} answered {s}");
            Ok(Exit::Ok)
        }
        Ok(s) => {
            outln!("unhealthy: {url} answered {s}");
            Ok(Exit::Internal)
        }
        Err(e) => {
            outln!("unhealthy: {url}: {}", coincast::failure::report(&e));
            Ok(Exit::Internal)
        }
    }
}

pub(super) fn restore(settings: &Settings, args: RestoreArgs) -> anyhow::Result<Exit> {
    let RestoreArgs { archive, force } = args;
    let existing = if force {
        coincast::store::Existing::SetAside
    } else {
        coincast::store::Existing::Refuse
    };
    let source = archive.display().to_string();
    // Downloaded into the data folder itself: in the container it is the only writable place.
    let downloaded = source.starts_with("s3://").then(|| {
        settings
            .data_dir
            .join(format!(".restore-{}.tar", std::process::id()))
    });
    let local = match &downloaded {
        Some(dest) => {
            std::fs::create_dir_all(&settings.data_dir)
                .with_context(|| format!("creating {}", settings.data_dir.display()))?;
            let _ = std::fs::remove_file(dest);
            let index = coincast::lake::download_backup(&source, &settings.s3, dest)
                .with_context(|| format!("fetching the backup at {source}"))?;
            outln!("fetched {index}");
            dest.clone()
        }
        None => archive.clone(),
    };
    let restored = coincast::store::restore(&local, &settings.data_dir, existing);
    if let Some(dest) = &downloaded {
        let _ = std::fs::remove_file(dest);
    }
    let m = restored.with_context(|| format!("restoring {source}"))?;
    outln!(
        "restored {} into {}: schema {} from {}, {} model(s), champion {}",
        source,
        coincast::store::database_file(&settings.data_dir).display(),
        m.schema_version,
        m.created_at,
        m.models.len(),
        m.champion.as_deref().unwrap_or("none")
    );
    Ok(Exit::Ok)
}

/// A backup made here when the file is free, else by the server that holds it.
pub(super) fn backup(settings: &Settings, args: BackupArgs) -> anyhow::Result<Exit> {
    let BackupArgs { dest, server } = args;
    let manifest = match Store::open_existing(&settings.data_dir) {
        Ok(store) => coincast::store::write_backup(store.conn(), store.data_dir(), &dest)?,
        Err(StoreError::Locked { .. }) => backup_from_server(settings, &dest, server.as_deref())?,
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "opening {}",
                coincast::store::database_file(&settings.data_dir).display()
            )))
        }
    };
    let bytes = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
    outln!(
        "backup {} ({bytes} bytes): database {} bytes (schema {}), {} model(s), champion {}",
        dest.display(),
        manifest.database_bytes,
        manifest.schema_version,
        manifest.models.len(),
        manifest.champion.as_deref().unwrap_or("none")
    );
    // With the lake on S3 the archive goes to its bucket too (content-addressed: once).
    if let Some(bucket) = coincast::lake::Bucket::of(settings)? {
        let index = coincast::lake::upload_backup(&bucket, &dest, &manifest)
            .with_context(|| format!("uploading {} to {}", dest.display(), bucket.url()))?;
        outln!(
            "uploaded: {index} (restore with `coincast restore {}`)",
            bucket.url()
        );
    }
    Ok(Exit::Ok)
}

fn backup_from_server(
    settings: &Settings,
    dest: &Path,
    server: Option<&str>,
) -> anyhow::Result<coincast::store::BackupManifest> {
    let rt = runtime()?;
    let manifest = rt.block_on(async {
        let (mut response, url) = ask_server(
            settings,
            server,
            "/api/admin/backup",
            "makes online backups",
        )
        .await?;
        let manifest: coincast::store::BackupManifest = response
            .headers()
            .get(coincast::serve::admin::MANIFEST_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| serde_json::from_str(v).ok())
            .ok_or_else(|| anyhow::anyhow!("{url} sent no backup manifest"))?;
        let mut out = coincast::store::PartialFile::create(dest)?;
        while let Some(chunk) = response.chunk().await? {
            std::io::Write::write_all(&mut out, &chunk)
                .with_context(|| format!("writing {}", dest.display()))?;
        }
        out.commit()?;
        anyhow::Ok(manifest)
    })?;
    Ok(manifest)
}

/// The address to call a server bound to `bind`: a wildcard bind is reached on loopback.
fn loopback_for(bind: &str) -> String {
    match bind.parse::<std::net::SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() && a.is_ipv4() => format!("127.0.0.1:{}", a.port()),
        Ok(a) if a.ip().is_unspecified() => format!("[::1]:{}", a.port()),
        _ => bind.to_string(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
