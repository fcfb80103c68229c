//! Who may do what, and what they did: named tokens from a file that is reread when it changes
//! (`tokens.rs`), a request rate per token name, and the audit trail (`audit.rs`).
//!
//! Invariants:
//! - tokens are stored and compared only as SHA-256 digests, every digest compared in constant
//!   time; a token is printed once, by `coincast tokens add`, and never logged or recorded;
//! - the tokens in force are the last good file's and the three settings' (named after the
//!   setting): a file that fails to parse changes nothing, and says which line (`problem`);
//! - a changed file is noticed before the next request is checked (its inode, length and
//!   modification time are compared on each check), so a revocation holds from that request on;
//! - rate-limit state is keyed by token name, and names come from the file and the settings
//!   only, so the metrics' label values stay bounded.

mod audit;
mod tokens;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

pub use audit::{AuditEvent, AuditLog, Channel};
pub use tokens::{
    new_secret, read_file, sha256_hex, valid_name, write_file, Identity, Refusal, Scope,
    SettingsTokens, TokenEntry, TokenSet, TokensFile,
};

use crate::config::ServeSettings;

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {message}")]
    BadFile {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Usage(String),
}

impl crate::failure::Classify for AccessError {
    fn failure(&self) -> crate::failure::Failure {
        match self {
            AccessError::Io { .. } => crate::failure::Failure::Internal,
            AccessError::BadFile { .. } | AccessError::Usage(_) => crate::failure::Failure::Usage,
        }
    }
}

/// The tokens file's identity on disk: a rename gives a new inode, a write a new length or time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Fingerprint {
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
    present: bool,
}

impl Fingerprint {
    fn of(path: &Path) -> Self {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(path) {
            Ok(m) => Self {
                inode: m.ino(),
                len: m.len(),
                modified: m.modified().ok(),
                present: true,
            },
            Err(_) => Self::default(),
        }
    }
}

struct FileState {
    fingerprint: Fingerprint,
    /// Why the file on disk is not in force (None: it is).
    problem: Option<String>,
    reloads: u64,
    failures: u64,
}

/// The tokens in force, their file, and the per-name rate limiters.
pub struct Access {
    file: Option<PathBuf>,
    settings: SettingsTokens,
    default_rate: Option<u32>,
    current: ArcSwap<TokenSet>,
    state: Mutex<FileState>,
    limiters: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
}

impl Access {
    /// The tokens of `serve.tokens_file` (when set) and of the three settings. A file that does
    /// not parse is an error naming its line (the server then exits 2).
    pub fn load(serve: &ServeSettings) -> Result<Self, AccessError> {
        let file = serve.tokens_file();
        let (parsed, fingerprint) = match &file {
            Some(path) => {
                let fingerprint = Fingerprint::of(path);
                (Some(read_file(path)?), fingerprint)
            }
            None => (None, Fingerprint::default()),
        };
        Ok(Self::with(
            serve,
            parsed.as_ref(),
            FileState {
                fingerprint,
                problem: None,
                reloads: 0,
                failures: 0,
            },
        ))
    }

    /// The settings' tokens alone, with `problem` said (a file that broke between the check at
    /// start-up and the load).
    pub fn settings_only(serve: &ServeSettings, problem: String) -> Self {
        Self::with(
            serve,
            Some(&TokensFile::default()),
            FileState {
                fingerprint: Fingerprint::default(),
                problem: Some(problem),
                reloads: 0,
                failures: 1,
            },
        )
    }

    /// The settings' tokens and `file`'s (None: no tokens file), with the file's state.
    fn with(serve: &ServeSettings, file: Option<&TokensFile>, state: FileState) -> Self {
        let settings = settings_tokens(serve);
        let default_rate = default_rate(serve);
        let set = TokenSet::new(file, &settings, default_rate);
        Self {
            file: serve.tokens_file(),
            settings,
            default_rate,
            current: ArcSwap::from_pointee(set),
            state: Mutex::new(state),
            limiters: Mutex::new(HashMap::new()),
        }
    }

    /// The tokens in force, after rereading the file if it changed since the last look.
    pub fn tokens(&self) -> Arc<TokenSet> {
        self.reread_if_changed();
        self.current.load_full()
    }

    /// Why the file on disk is not in force (the last good one is), if it is not.
    pub fn problem(&self) -> Option<String> {
        self.state.lock().ok()?.problem.clone()
    }

    /// Rereads of the file so far: (in force, refused).
    pub fn reloads(&self) -> (u64, u64) {
        self.state
            .lock()
            .map(|s| (s.reloads, s.failures))
            .unwrap_or_default()
    }

    /// The tokens file, when one is configured.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    fn reread_if_changed(&self) {
        let Some(path) = &self.file else {
            return;
        };
        let now = Fingerprint::of(path);
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.fingerprint == now {
            return;
        }
        state.fingerprint = now;
        match read_file(path) {
            Ok(parsed) => {
                let set = TokenSet::new(Some(&parsed), &self.settings, self.default_rate);
                self.current.store(Arc::new(set));
                // A rate changed in the file holds from now on.
                if let Ok(mut limiters) = self.limiters.lock() {
                    limiters.clear();
                }
                state.problem = None;
                state.reloads += 1;
                tracing::info!(
                    "tokens file {} reread: {} token(s)",
                    path.display(),
                    parsed.tokens.len()
                );
            }
            Err(e) => {
                let message = format!("{e}; the tokens read before stay in force");
                tracing::error!("{message}");
                state.problem = Some(message);
                state.failures += 1;
            }
        }
    }

    /// Whether `who` may make a request now: Err with how long to wait when over its rate.
    pub fn admit(&self, who: &Identity) -> Result<(), Duration> {
        let Some(rate) = who.requests_per_minute.and_then(NonZeroU32::new) else {
            return Ok(());
        };
        let limiter = {
            let Ok(mut limiters) = self.limiters.lock() else {
                return Ok(());
            };
            limiters
                .entry(who.name.clone())
                .or_insert_with(|| Arc::new(RateLimiter::direct(Quota::per_minute(rate))))
                .clone()
        };
        limiter.check().map_err(|not_until| {
            not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ))
        })
    }
}

fn settings_tokens(serve: &ServeSettings) -> SettingsTokens {
    SettingsTokens {
        api: serve.api_token().map(str::to_string),
        read: serve.read_token().map(str::to_string),
        sql: serve.own_sql_token().map(str::to_string),
    }
}

fn default_rate(serve: &ServeSettings) -> Option<u32> {
    Some(serve.token_requests_per_minute).filter(|r| *r > 0)
}
