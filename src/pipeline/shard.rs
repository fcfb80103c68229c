//! Coin shards: `coincast run --shard I/N` runs the pipeline for every N-th configured coin from
//! the I-th, so N processes (a Kubernetes Indexed Job, `I` from `JOB_COMPLETION_INDEX`) share the
//! coins, each with a data folder of its own, all committing into one lake with a PostgreSQL
//! catalog. No protocol of ours: the lake's catalog orders their commits.

use std::fmt;

/// One process's share of the coins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("--shard {given}: {message}")]
pub struct ShardError {
    given: String,
    message: String,
}

impl crate::failure::Classify for ShardError {
    fn failure(&self) -> crate::failure::Failure {
        crate::failure::Failure::Usage
    }
}

/// The variable an Indexed Job sets in each of its pods.
pub const INDEX_VARIABLE: &str = "JOB_COMPLETION_INDEX";

impl Shard {
    /// `I/N`, or `N` with I from `index_variable` (`JOB_COMPLETION_INDEX`'s value).
    pub fn parse(given: &str, index_variable: Option<&str>) -> Result<Self, ShardError> {
        let error = |message: String| ShardError {
            given: given.to_string(),
            message,
        };
        let number = |text: &str, what: &str| {
            text.trim()
                .parse::<u32>()
                .map_err(|_| error(format!("{what} `{text}` is not a whole number")))
        };
        let (index, count) = match given.split_once('/') {
            Some((i, n)) => (number(i, "the index")?, number(n, "the count")?),
            None => {
                let index = index_variable.ok_or_else(|| {
                    error(format!(
                        "give I/N, or N with {INDEX_VARIABLE} set (an Indexed Job)"
                    ))
                })?;
                (number(index, INDEX_VARIABLE)?, number(given, "the count")?)
            }
        };
        if count == 0 || index >= count {
            return Err(error(format!(
                "the index must be within 0..{count} (shards are numbered from 0)"
            )));
        }
        Ok(Self { index, count })
    }

    /// This shard's coins: every `count`-th of `all` from the `index`-th, in the configured
    /// order (every process reads the same configuration, so the shares never overlap).
    pub fn coins(&self, all: &[String]) -> Vec<String> {
        all.iter()
            .skip(self.index as usize)
            .step_by(self.count as usize)
            .cloned()
            .collect()
    }

    /// This shard's part of the API key's rate limit: the shards together stay within it.
    pub fn calls_per_minute(&self, key_limit: u32) -> u32 {
        (key_limit / self.count).max(1)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_share_the_coins_without_overlap_and_split_the_rate_limit() {
        let all: Vec<String> = (0..7).map(|i| format!("c{i}")).collect();
        let shards: Vec<Shard> = (0..3)
            .map(|i| Shard::parse(&format!("{i}/3"), None).expect("shard"))
            .collect();
        let mut seen: Vec<String> = shards.iter().flat_map(|s| s.coins(&all)).collect();
        assert_eq!(shards[0].coins(&all), ["c0", "c3", "c6"]);
        seen.sort();
        assert_eq!(seen, all, "every coin in exactly one shard");
        assert_eq!(shards[1].calls_per_minute(30), 10);
        assert_eq!(shards[1].calls_per_minute(2), 1);
        assert_eq!(
            Shard::parse("4", Some("2")).expect("from the job"),
            Shard { index: 2, count: 4 }
        );
    }

    #[test]
    fn a_bad_shard_is_named() {
        for (given, env, expected) in [
            ("3/3", None, "within 0..3"),
            ("1/0", None, "within 0..0"),
            ("x/2", None, "the index `x`"),
            ("2", None, "JOB_COMPLETION_INDEX"),
            ("2", Some("two"), "JOB_COMPLETION_INDEX `two`"),
        ] {
            let err = Shard::parse(given, env).expect_err(given).to_string();
            assert!(err.contains(expected) && err.contains(given), "{err}");
        }
    }
}
