//! Rule files: `sql/quality/<name>.sql` (built in) plus `quality.extra_rules_dir`, each a query
//! returning the violating rows under a header that declares name, severity, description and
//! threshold. Config may override threshold, severity or enabled per rule.

use std::fmt;
use std::path::Path;

use crate::config::QualitySettings;

use super::QualityError;

/// Built-in rules, in the order they run.
const BUILTIN: &[(&str, &str)] = &[
    (
        "required_series.sql",
        include_str!("../../sql/quality/required_series.sql"),
    ),
    (
        "numeric_types.sql",
        include_str!("../../sql/quality/numeric_types.sql"),
    ),
    (
        "null_share.sql",
        include_str!("../../sql/quality/null_share.sql"),
    ),
    (
        "min_rows.sql",
        include_str!("../../sql/quality/min_rows.sql"),
    ),
    (
        "price_positive.sql",
        include_str!("../../sql/quality/price_positive.sql"),
    ),
    (
        "non_negative.sql",
        include_str!("../../sql/quality/non_negative.sql"),
    ),
    (
        "timestamp_range.sql",
        include_str!("../../sql/quality/timestamp_range.sql"),
    ),
    (
        "absurd_jump.sql",
        include_str!("../../sql/quality/absurd_jump.sql"),
    ),
    (
        "duplicate_hours.sql",
        include_str!("../../sql/quality/duplicate_hours.sql"),
    ),
    (
        "hourly_gaps.sql",
        include_str!("../../sql/quality/hourly_gaps.sql"),
    ),
    (
        "freshness.sql",
        include_str!("../../sql/quality/freshness.sql"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// A failure quarantines the batch.
    Error,
    /// A failure is recorded and shown; the batch is merged.
    Warn,
}

impl Severity {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "error" => Some(Severity::Error),
            "warn" => Some(Severity::Warn),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warn => "warn",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub severity: Severity,
    pub description: String,
    pub threshold: f64,
    pub sql: String,
    /// Where the rule came from (file name), for error messages.
    pub origin: String,
}

/// Reads a rule's header. Every header line is `-- key: value`; the query follows.
pub fn parse_rule(origin: &str, text: &str) -> Result<Rule, QualityError> {
    let bad = |line: usize, message: String| QualityError::RuleFile {
        origin: origin.to_string(),
        line,
        message,
    };
    let (mut name, mut severity, mut description, mut threshold) = (None, None, None, None);
    for (i, line) in text.lines().enumerate() {
        let Some(comment) = line.trim().strip_prefix("--") else {
            if line.trim().is_empty() {
                continue;
            }
            break;
        };
        let Some((key, value)) = comment.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "name" => name = Some(value.to_string()),
            "severity" => {
                severity = Some(Severity::parse(value).ok_or_else(|| {
                    bad(
                        i + 1,
                        format!("severity `{value}` is neither `error` nor `warn`"),
                    )
                })?)
            }
            "description" => description = Some(value.to_string()),
            "threshold" => {
                let t: f64 = value
                    .parse()
                    .map_err(|_| bad(i + 1, format!("threshold `{value}` is not a number")))?;
                if !t.is_finite() {
                    return Err(bad(i + 1, "threshold must be finite".into()));
                }
                threshold = Some(t)
            }
            _ => {}
        }
    }
    let missing = |what: &str| bad(1, format!("the header has no `-- {what}:` line"));
    let name = name.ok_or_else(|| missing("name"))?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(bad(1, format!("rule name `{name}` must be snake_case")));
    }
    Ok(Rule {
        name,
        severity: severity.ok_or_else(|| missing("severity"))?,
        description: description.ok_or_else(|| missing("description"))?,
        threshold: threshold.ok_or_else(|| missing("threshold"))?,
        sql: text.trim().trim_end_matches(';').to_string(),
        origin: origin.to_string(),
    })
}

/// The rules in force: built-in, then extra files (same name replaces), then config overrides.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    pub fn load(settings: &QualitySettings) -> Result<Self, QualityError> {
        let mut rules = BUILTIN
            .iter()
            .map(|(file, text)| parse_rule(&format!("sql/quality/{file}"), text))
            .collect::<Result<Vec<_>, _>>()?;
        let extra = settings.extra_rules_dir.as_path();
        if !extra.as_os_str().is_empty() {
            for rule in load_dir(extra)? {
                match rules.iter_mut().find(|r| r.name == rule.name) {
                    Some(existing) => *existing = rule,
                    None => rules.push(rule),
                }
            }
        }
        for (name, over) in &settings.rules {
            let key = format!("quality.rules.{name}");
            let Some(pos) = rules.iter().position(|r| &r.name == name) else {
                return Err(QualityError::UnknownRule { key });
            };
            if over.enabled == Some(false) {
                rules.remove(pos);
                continue;
            }
            let rule = &mut rules[pos];
            if let Some(t) = over.threshold {
                if !t.is_finite() {
                    return Err(QualityError::Config {
                        key: format!("{key}.threshold"),
                        message: "must be finite".into(),
                    });
                }
                rule.threshold = t;
            }
            if let Some(s) = &over.severity {
                rule.severity = Severity::parse(s).ok_or_else(|| QualityError::Config {
                    key: format!("{key}.severity"),
                    message: format!("`{s}` is neither `error` nor `warn`"),
                })?;
            }
        }
        Ok(Self { rules })
    }

    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }
}

fn load_dir(dir: &Path) -> Result<Vec<Rule>, QualityError> {
    let io = |e: std::io::Error| QualityError::RuleFile {
        origin: dir.display().to_string(),
        line: 0,
        message: e.to_string(),
    };
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("sql"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| QualityError::RuleFile {
                origin: p.display().to_string(),
                line: 0,
                message: e.to_string(),
            })?;
            parse_rule(&p.display().to_string(), &text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuleOverride;

    fn settings() -> QualitySettings {
        QualitySettings {
            extra_rules_dir: Default::default(),
            max_failing_rows: 10,
            rules: Default::default(),
        }
    }

    #[test]
    fn builtin_rules_parse_with_the_documented_severities() {
        let set = RuleSet::load(&settings()).expect("built-in rules parse");
        let sev = |n: &str| set.get(n).map(|r| r.severity);
        for error in [
            "required_series",
            "numeric_types",
            "null_share",
            "min_rows",
            "price_positive",
            "non_negative",
            "timestamp_range",
            "absurd_jump",
        ] {
            assert_eq!(sev(error), Some(Severity::Error), "{error}");
        }
        for warn in ["duplicate_hours", "hourly_gaps", "freshness"] {
            assert_eq!(sev(warn), Some(Severity::Warn), "{warn}");
        }
        assert_eq!(set.get("null_share").map(|r| r.threshold), Some(0.01));
    }

    #[test]
    fn header_errors_name_the_file_and_line() {
        let err = parse_rule("x.sql", "-- name: x\n-- severity: fatal\nSELECT 1").expect_err("bad");
        let text = err.to_string();
        assert!(text.contains("x.sql") && text.contains("line 2"), "{text}");
        let err = parse_rule("y.sql", "-- name: y\nSELECT 1").expect_err("incomplete");
        assert!(err.to_string().contains("severity"), "{err}");
    }

    #[test]
    fn overrides_apply_and_unknown_names_are_refused() {
        let mut s = settings();
        s.rules.insert(
            "absurd_jump".into(),
            RuleOverride {
                threshold: Some(0.9),
                severity: Some("warn".into()),
                enabled: None,
            },
        );
        s.rules.insert(
            "freshness".into(),
            RuleOverride {
                enabled: Some(false),
                ..Default::default()
            },
        );
        let set = RuleSet::load(&s).expect("valid");
        let jump = set.get("absurd_jump").expect("present");
        assert_eq!((jump.threshold, jump.severity), (0.9, Severity::Warn));
        assert!(set.get("freshness").is_none());

        s.rules
            .insert("no_such_rule".into(), RuleOverride::default());
        let err = RuleSet::load(&s).expect_err("unknown");
        assert!(
            err.to_string().contains("quality.rules.no_such_rule"),
            "{err}"
        );
    }
}
