//! `coincast tokens add | list | revoke`: the named tokens of `serve.tokens_file`. A new token is
//! printed once; the file keeps only its SHA-256. A running server rereads the file when it
//! changes, so what is done here holds from its next request on.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};

use super::{usage, Exit};
use coincast::access::{self, Scope, TokenEntry};
use coincast::config::Settings;

#[derive(Debug, Subcommand)]
pub enum TokensAction {
    /// Make a token and print it (once: the file keeps only its hash).
    Add(AddArgs),
    /// The tokens: name, scope, when made, when they expire.
    List,
    /// Remove a token: refused from the server's next request on.
    Revoke {
        /// The token's name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// A name for the person or program (letters, digits, `-`, `_`, `.`): the audit trail's.
    name: String,
    /// read (/predict, pages, /api/*), sql (and SQL over HTTP and the Postgres wire) or admin
    /// (and runs, promotions, backups, the audit page).
    #[arg(long, value_parser = parse_scope)]
    scope: Scope,
    /// When it stops working: a date (UTC midnight) or an RFC 3339 time.
    #[arg(long, value_parser = parse_expiry)]
    expires: Option<DateTime<Utc>>,
    /// Its own request rate (else serve.token_requests_per_minute).
    #[arg(long)]
    requests_per_minute: Option<u32>,
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    Scope::parse(text).ok_or_else(|| format!("`{text}` is not a scope: read, sql or admin"))
}

fn parse_expiry(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("`{text}` is not a date (2027-01-31) or an RFC 3339 time"))
}

pub(super) fn tokens(settings: &Settings, action: TokensAction) -> anyhow::Result<Exit> {
    let path = file(settings)?;
    let mut current = access::read_file(&path)?;
    match action {
        TokensAction::Add(args) => {
            if !access::valid_name(&args.name) {
                return Err(usage(format!(
                    "token name `{}`: use 1-64 letters, digits, `-`, `_` or `.`",
                    args.name
                )));
            }
            if current.tokens.iter().any(|t| t.name == args.name) {
                return Err(usage(format!(
                    "a token named `{}` exists: revoke it first, or choose another name",
                    args.name
                )));
            }
            if args.requests_per_minute == Some(0) {
                return Err(usage("--requests-per-minute must be at least 1"));
            }
            if args.expires.is_some_and(|e| e <= Utc::now()) {
                return Err(usage("--expires is in the past"));
            }
            let secret = access::new_secret();
            current.tokens.push(TokenEntry {
                name: args.name.clone(),
                scope: args.scope,
                sha256: access::sha256_hex(&secret),
                created: Utc::now(),
                expires: args.expires,
                requests_per_minute: args.requests_per_minute,
            });
            access::write_file(&path, &current)?;
            errln!(
                "token `{}` ({} scope) added to {}; it is shown once, here:",
                args.name,
                args.scope.name(),
                path.display()
            );
            outln!("{secret}");
        }
        TokensAction::List => {
            outln!(
                "{:<24} {:<6} {:<20} {:<20} {:>8}",
                "name",
                "scope",
                "created (UTC)",
                "expires (UTC)",
                "req/min"
            );
            let now = Utc::now();
            for t in &current.tokens {
                let expires = t.expires.map_or("-".to_string(), |e| {
                    let at = e.format("%Y-%m-%d %H:%M").to_string();
                    if e <= now {
                        format!("{at} (expired)")
                    } else {
                        at
                    }
                });
                outln!(
                    "{:<24} {:<6} {:<20} {:<20} {:>8}",
                    t.name,
                    t.scope.name(),
                    t.created.format("%Y-%m-%d %H:%M").to_string(),
                    expires,
                    t.requests_per_minute
                        .map_or("-".to_string(), |r| r.to_string())
                );
            }
            if current.tokens.is_empty() {
                outln!("no tokens yet: coincast tokens add NAME --scope read|sql|admin");
            }
        }
        TokensAction::Revoke { name } => {
            let before = current.tokens.len();
            current.tokens.retain(|t| t.name != name);
            if current.tokens.len() == before {
                return Err(usage(format!(
                    "no token named `{name}` in {} (`coincast tokens list`)",
                    path.display()
                )));
            }
            access::write_file(&path, &current)?;
            errln!("token `{name}` revoked: a running server refuses it from its next request on");
        }
    }
    Ok(Exit::Ok)
}

fn file(settings: &Settings) -> anyhow::Result<PathBuf> {
    settings.serve.tokens_file().ok_or_else(|| {
        usage("serve.tokens_file is not set: name the file (COINCAST__SERVE__TOKENS_FILE=/data/tokens.toml)")
    })
}
