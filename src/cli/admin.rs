//! The appliance's own commands: `serve` (the HTTP API and the pipeline worker until a signal),
//! and online `backup` / `restore` of the data folder.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::{runtime, Exit};
use coincast::config::Settings;
use coincast::store::{Store, StoreError};

#[derive(Args, Debug)]
pub(super) struct ServeArgs {
    /// Address to listen on (overrides serve.bind), e.g. 0.0.0.0:8000.
    #[arg(long)]
    pub(super) bind: Option<String>,
}

#[derive(Args, Debug)]
pub(super) struct RestoreArgs {
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

pub(super) fn serve(settings: Settings, args: ServeArgs) -> anyhow::Result<Exit> {
    let ServeArgs { bind } = args;
    let bind = bind.unwrap_or_else(|| settings.serve.bind.clone());
    let addr: std::net::SocketAddr =
        bind.parse()
            .map_err(|_| coincast::config::ConfigError::Invalid {
                key: "--bind".into(),
                message: format!("`{bind}` is not an address like 127.0.0.1:8000"),
            })?;
    tch::set_num_threads(1);
    let metrics = std::sync::Arc::new(coincast::runtime::Metrics::new()?);
    // The worker thread owns the database file for as long as the server runs.
    let (worker, runtime) = coincast::runtime::Worker::start(settings.clone(), metrics)
        .with_context(|| format!("opening {}", settings.database_path().display()))?;
    let state = std::sync::Arc::new(coincast::serve::state::AppState::new(runtime));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        eprintln!(
            "coincast serving on http://{addr}; pipeline schedule `{}` (Ctrl-C or SIGTERM to stop)",
            settings.serve.pipeline_schedule
        );
        coincast::serve::serve(listener, state, shutdown_signal()).await?;
        anyhow::Ok(())
    });
    worker.stop();
    served?;
    eprintln!("stopped; database checkpointed");
    Ok(Exit::Ok)
}

pub(super) fn restore(settings: &Settings, args: RestoreArgs) -> anyhow::Result<Exit> {
    let RestoreArgs { archive, force } = args;
    let existing = if force {
        coincast::store::Existing::SetAside
    } else {
        coincast::store::Existing::Refuse
    };
    let m = coincast::store::restore(&archive, &settings.data_dir, existing)
        .with_context(|| format!("restoring {}", archive.display()))?;
    println!(
        "restored {} into {}: schema {} from {}, {} model(s), champion {}",
        archive.display(),
        settings.database_path().display(),
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
    let manifest = match Store::open(&settings.data_dir) {
        Ok(store) => coincast::store::write_backup(store.conn(), store.data_dir(), &dest)?,
        Err(StoreError::Locked { .. }) => backup_from_server(settings, &dest, server.as_deref())?,
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("opening {}", settings.database_path().display())))
        }
    };
    let bytes = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
    println!(
        "backup {} ({bytes} bytes): database {} bytes (schema {}), {} model(s), champion {}",
        dest.display(),
        manifest.database_bytes,
        manifest.schema_version,
        manifest.models.len(),
        manifest.champion.as_deref().unwrap_or("none")
    );
    Ok(Exit::Ok)
}

fn backup_from_server(
    settings: &Settings,
    dest: &Path,
    server: Option<&str>,
) -> anyhow::Result<coincast::store::BackupManifest> {
    let token = settings.serve.api_token().ok_or_else(|| {
        anyhow::anyhow!(
            "the database is in use by a running server, which makes online backups only with its \
             token: set serve.api_token (COINCAST__SERVE__API_TOKEN) as the server has it"
        )
    })?;
    let base = match server {
        Some(s) => s.trim_end_matches('/').to_string(),
        None => format!("http://{}", loopback_for(&settings.serve.bind)),
    };
    let url = format!("{base}/api/admin/backup");
    let rt = runtime()?;
    let manifest = rt.block_on(async {
        let client = reqwest::Client::new();
        let mut response = client
            .post(&url)
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("asking the server for a backup ({url})"))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!("the server answered {status} to {url}: {body}");
        }
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
