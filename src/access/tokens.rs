//! Named tokens: who may do what. A token is a name, a scope, an optional expiry and the SHA-256
//! of a high-entropy secret; the secret itself is printed once, when it is made, and never
//! stored. The tokens file is TOML (`[[token]]` tables), written by `coincast tokens`.

use std::path::Path;

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AccessError;

/// What a token opens. Each scope opens what the ones before it do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `/predict`, `/predict/batch`, the pages and `/api/*`.
    Read,
    /// And SQL: `/api/sql`, `/sql` and the Postgres wire.
    Sql,
    /// And the admin routes: runs, promote, rollback, backup, the audit trail.
    Admin,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Sql => "sql",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Scope::Read),
            "sql" => Some(Scope::Sql),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// One token as the file holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub name: String,
    pub scope: Scope,
    /// Hex SHA-256 of the secret.
    pub sha256: String,
    #[serde(deserialize_with = "time::required")]
    pub created: DateTime<Utc>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "time::optional"
    )]
    pub expires: Option<DateTime<Utc>>,
    /// This token's own request rate (else `serve.token_requests_per_minute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
}

/// Times as the file may hold them: a quoted RFC 3339 string (as `coincast tokens` writes) or a
/// TOML date-time (as a person may write), with a zone.
mod time {
    use chrono::{DateTime, Utc};
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = match toml::Value::deserialize(d)? {
            toml::Value::String(s) => s,
            toml::Value::Datetime(t) => t.to_string(),
            other => return Err(D::Error::custom(format!("`{other}` is not a time"))),
        };
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                D::Error::custom(format!(
                    "`{text}` is not a time with a zone, like 2027-01-31T00:00:00Z"
                ))
            })
    }

    pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        required(d).map(Some)
    }
}

/// The file: `[[token]]` tables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensFile {
    #[serde(default, rename = "token")]
    pub tokens: Vec<TokenEntry>,
}

/// Who a request is: the token's name and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub scope: Scope,
    /// Requests a minute this name may make (None: unlimited).
    pub requests_per_minute: Option<u32>,
}

/// Why a presented token opens nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    Expired,
}

/// A token the server accepts: from the file, or one of the three settings (unnamed there,
/// named here after the setting).
#[derive(Debug, Clone)]
struct Accepted {
    identity: Identity,
    digest: [u8; 32],
    expires: Option<DateTime<Utc>>,
}

/// Every token accepted now, and which scopes are guarded.
#[derive(Debug, Clone, Default)]
pub struct TokenSet {
    accepted: Vec<Accepted>,
    /// Per scope (read, sql, admin): whether a token is needed. Without a tokens file, as the
    /// three settings always had it: reading is open without `read_token`, SQL without
    /// `sql_token` or `read_token` (loopback only), the admin routes off without `api_token`.
    guarded: [bool; 3],
}

/// The three settings' tokens, as they were before named tokens.
#[derive(Debug, Clone, Default)]
pub struct SettingsTokens {
    pub api: Option<String>,
    pub read: Option<String>,
    pub sql: Option<String>,
}

impl TokenSet {
    /// The file's tokens (if a file is configured) and the settings' tokens.
    pub fn new(
        file: Option<&TokensFile>,
        settings: &SettingsTokens,
        default_rate: Option<u32>,
    ) -> Self {
        let mut accepted = Vec::new();
        let mut add = |name: &str, scope: Scope, secret: &str| {
            accepted.push(Accepted {
                identity: Identity {
                    name: name.to_string(),
                    scope,
                    requests_per_minute: default_rate,
                },
                digest: digest(secret),
                expires: None,
            });
        };
        if let Some(t) = &settings.api {
            add("serve.api_token", Scope::Admin, t);
        }
        if let Some(t) = &settings.sql {
            add("serve.sql_token", Scope::Sql, t);
        }
        if let Some(t) = &settings.read {
            // The readers' token has always opened SQL too when no SQL token is set.
            let scope = if settings.sql.is_some() {
                Scope::Read
            } else {
                Scope::Sql
            };
            add("serve.read_token", scope, t);
        }
        for entry in file.map(|f| f.tokens.as_slice()).unwrap_or_default() {
            // Entries were validated when the file was read.
            let Some(digest) = from_hex(&entry.sha256) else {
                continue;
            };
            accepted.push(Accepted {
                identity: Identity {
                    name: entry.name.clone(),
                    scope: entry.scope,
                    requests_per_minute: entry.requests_per_minute.or(default_rate),
                },
                digest,
                expires: entry.expires,
            });
        }
        let from_file = file.is_some();
        let guarded = [
            from_file || settings.read.is_some(),
            from_file || settings.read.is_some() || settings.sql.is_some(),
            from_file || settings.api.is_some(),
        ];
        Self { accepted, guarded }
    }

    /// Whether `scope` needs a token (else what it opens is open, as without tokens; for the
    /// admin scope: off).
    pub fn guards(&self, scope: Scope) -> bool {
        self.guarded[scope as usize]
    }

    /// The names tokens may carry (bounded label values for the metrics).
    pub fn names(&self) -> Vec<String> {
        self.accepted
            .iter()
            .map(|a| a.identity.name.clone())
            .collect()
    }

    /// Who presents `secret` at `now`. Every accepted digest is compared, in constant time,
    /// so timing says nothing of which one matched or how far.
    pub fn identify(&self, secret: &str, now: DateTime<Utc>) -> Result<Identity, Refusal> {
        let presented = digest(secret);
        let mut found: Option<&Accepted> = None;
        for a in &self.accepted {
            if constant_time_eq(&a.digest, &presented) && found.is_none() {
                found = Some(a);
            }
        }
        let a = found.ok_or(Refusal::Unknown)?;
        if a.expires.is_some_and(|e| e <= now) {
            return Err(Refusal::Expired);
        }
        Ok(a.identity.clone())
    }
}

/// A new secret: 32 random bytes, URL-safe, with a prefix that secret scanners can match.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "cct_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Hex SHA-256 of a secret, as the file stores it.
pub fn sha256_hex(secret: &str) -> String {
    digest(secret).iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn from_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads and checks the tokens file; an error names the file and the line. A missing file is
/// an empty one (the first `coincast tokens add` makes it).
pub fn read_file(path: &Path) -> Result<TokensFile, AccessError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TokensFile::default()),
        Err(source) => {
            return Err(AccessError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    parse(path, &text)
}

/// Parses and checks the file's text.
pub fn parse(path: &Path, text: &str) -> Result<TokensFile, AccessError> {
    let bad = |line: usize, message: String| AccessError::BadFile {
        path: path.to_path_buf(),
        line,
        message,
    };
    let file: TokensFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        bad(line, e.message().trim().to_string())
    })?;
    let mut names = std::collections::BTreeSet::new();
    for entry in &file.tokens {
        let line = entry_line(text, &entry.name);
        if !valid_name(&entry.name) {
            return Err(bad(
                line,
                format!(
                    "token name `{}`: use 1-64 letters, digits, `-`, `_` or `.`",
                    entry.name
                ),
            ));
        }
        if !names.insert(entry.name.clone()) {
            return Err(bad(
                line,
                format!("token name `{}` appears twice", entry.name),
            ));
        }
        if from_hex(&entry.sha256).is_none() {
            return Err(bad(
                line,
                format!(
                    "token `{}`: sha256 must be 64 hex digits (the file stores hashes, never tokens)",
                    entry.name
                ),
            ));
        }
        if entry.requests_per_minute == Some(0) {
            return Err(bad(
                line,
                format!(
                    "token `{}`: requests_per_minute must be at least 1",
                    entry.name
                ),
            ));
        }
    }
    Ok(file)
}

/// Writes the file whole (a temporary file renamed over it), readable by its owner only.
pub fn write_file(path: &Path, file: &TokensFile) -> Result<(), AccessError> {
    let io = |source| AccessError::Io {
        path: path.to_path_buf(),
        source,
    };
    let body = toml::to_string(file).map_err(|e| AccessError::BadFile {
        path: path.to_path_buf(),
        line: 0,
        message: e.to_string(),
    })?;
    let text = format!(
        "# coincast tokens (`coincast tokens add | list | revoke`): each token's SHA-256, never the token.\n# The server rereads this file when it changes.\n\n{body}"
    );
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        out.write_all(text.as_bytes()).map_err(io)?;
        out.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |t| t.matches('\n').count() + 1)
}

/// The line of the `name = "<name>"` that names an entry (its table's line is near).
fn entry_line(text: &str, name: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim();
            l.starts_with("name") && l.contains(&format!("\"{name}\""))
        })
        .map_or(1, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, scope: Scope, secret: &str) -> TokenEntry {
        TokenEntry {
            name: name.into(),
            scope,
            sha256: sha256_hex(secret),
            created: Utc::now(),
            expires: None,
            requests_per_minute: None,
        }
    }

    #[test]
    fn a_token_is_known_by_its_hash_and_refused_once_expired() {
        let mut file = TokensFile {
            tokens: vec![
                entry("grafana", Scope::Sql, "s1"),
                entry("ops", Scope::Admin, "s2"),
            ],
        };
        file.tokens[1].expires = Some(Utc::now() - chrono::Duration::seconds(1));
        let settings = SettingsTokens {
            read: Some("r".into()),
            ..SettingsTokens::default()
        };
        let set = TokenSet::new(Some(&file), &settings, Some(60));
        let now = Utc::now();
        assert_eq!(
            set.identify("s1", now).map(|i| i.name),
            Ok("grafana".into())
        );
        assert_eq!(set.identify("s2", now), Err(Refusal::Expired));
        // The readers' token opens SQL while no SQL token is set, as it always did.
        assert_eq!(set.identify("r", now).map(|i| i.scope), Ok(Scope::Sql));
        assert_eq!(set.identify("nope", now), Err(Refusal::Unknown));
        assert!(set.guards(Scope::Admin));
        let legacy = TokenSet::new(None, &settings, None);
        assert!(legacy.guards(Scope::Read) && legacy.guards(Scope::Sql));
        assert!(
            !legacy.guards(Scope::Admin),
            "the admin routes stay off without api_token"
        );
        let admin_only = SettingsTokens {
            api: Some("a".into()),
            ..SettingsTokens::default()
        };
        assert!(!TokenSet::new(None, &admin_only, None).guards(Scope::Read));
    }

    #[test]
    fn the_file_round_trips_and_bad_files_name_the_line() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("tokens.toml");
        let file = TokensFile {
            tokens: vec![entry("grafana", Scope::Sql, "s1")],
        };
        write_file(&path, &file).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains("s1\""), "{text}");
        assert_eq!(read_file(&path).expect("parse"), file);
        let broken = text.replace("scope = \"sql\"", "scope = \"root\"");
        let err = parse(&path, &broken).expect_err("bad scope").to_string();
        let line = broken
            .lines()
            .position(|l| l.contains("root"))
            .expect("line")
            + 1;
        assert!(err.contains(&format!("line {line}")), "{err}");
        let twice = format!(
            "{text}\n{}",
            text.lines().skip(3).collect::<Vec<_>>().join("\n")
        );
        let err = parse(&path, &twice).expect_err("twice").to_string();
        assert!(err.contains("appears twice"), "{err}");
        assert!(read_file(&dir.path().join("none.toml"))
            .expect("missing")
            .tokens
            .is_empty());
    }

    #[test]
    fn a_person_may_write_toml_times() {
        let text = format!(
            "[[token]]\nname = \"ci\"\nscope = \"read\"\nsha256 = \"{}\"\ncreated = 2026-12-01T00:00:00Z\nexpires = \"2027-01-01T00:00:00Z\"\n",
            sha256_hex("x")
        );
        let file = parse(Path::new("t.toml"), &text).expect("parse");
        assert_eq!(
            file.tokens[0].expires.map(|e| e.to_rfc3339()),
            Some("2027-01-01T00:00:00+00:00".to_string())
        );
        let local = text.replace("2026-12-01T00:00:00Z", "2026-12-01");
        let err = parse(Path::new("t.toml"), &local)
            .expect_err("no zone")
            .to_string();
        assert!(err.contains("line 5") && err.contains("zone"), "{err}");
    }

    #[test]
    fn secrets_are_long_and_distinct() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with("cct_") && a.len() >= 40, "{a}");
    }
}
