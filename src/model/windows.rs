//! Walk-forward folds, in hours of sample *origins*.
//!
//! A sample with origin t uses inputs from hours (t-L, t] and targets at t+1..=t+H. Two sets of
//! samples are independent when no target of the earlier one reaches the inputs or targets of the
//! later one: train origins must end at least `gap = L + H` hours before the first test origin.
//! All ranges are half-open `[start, end)`.

use std::ops::Range;

/// One walk-forward fold: fit on `train` origins, evaluate on `test` origins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    pub train: Range<i64>,
    pub test: Range<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkForward {
    /// Number of test windows.
    pub windows: u32,
    /// Length of each test window and the step between origins of consecutive windows, hours.
    pub step_hours: i64,
    /// Hours left out between the last train origin and the first test origin (>= L + H).
    pub gap_hours: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error(
        "not enough history: {} hours of sample origins needed for {}, {} available ({} missing)",
        .needed, .what, .have, .needed - .have
    )]
    TooShort {
        what: &'static str,
        needed: i64,
        have: i64,
    },
    #[error("invalid walk-forward setting: {0}")]
    Invalid(&'static str),
}

impl WalkForward {
    /// The folds over origins `[first, end)`: the last `windows * step` hours are cut into
    /// consecutive test windows; each fold trains on every origin from `first` up to `gap` hours
    /// before its test window (an expanding window), so the test windows never overlap and every
    /// test origin is evaluated exactly once.
    pub fn folds(&self, origins: Range<i64>, min_train: i64) -> Result<Vec<Fold>, WindowError> {
        if self.windows == 0 || self.step_hours <= 0 {
            return Err(WindowError::Invalid("windows and step must be positive"));
        }
        if self.gap_hours < 0 {
            return Err(WindowError::Invalid("the gap cannot be negative"));
        }
        let test_span = i64::from(self.windows) * self.step_hours;
        let needed = test_span + self.gap_hours + min_train.max(1);
        let have = origins.end - origins.start;
        if have < needed {
            return Err(WindowError::TooShort {
                what: "the walk-forward windows",
                needed,
                have,
            });
        }
        let first_test = origins.end - test_span;
        Ok((0..i64::from(self.windows))
            .map(|k| {
                let test_start = first_test + k * self.step_hours;
                Fold {
                    train: origins.start..test_start - self.gap_hours,
                    test: test_start..test_start + self.step_hours,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn folds_cover_the_tail_exactly_once_with_gaps() {
        let wf = WalkForward {
            windows: 3,
            step_hours: 24,
            gap_hours: 48,
        };
        let folds = wf.folds(0..1000, 100).expect("enough history");
        assert_eq!(
            folds,
            vec![
                Fold {
                    train: 0..880,
                    test: 928..952
                },
                Fold {
                    train: 0..904,
                    test: 952..976
                },
                Fold {
                    train: 0..928,
                    test: 976..1000
                },
            ]
        );
    }

    #[test]
    fn too_little_history_is_an_error_that_says_how_much() {
        let wf = WalkForward {
            windows: 4,
            step_hours: 168,
            gap_hours: 72,
        };
        let err = wf.folds(0..700, 24).expect_err("too short");
        assert_eq!(
            err,
            WindowError::TooShort {
                what: "the walk-forward windows",
                needed: 4 * 168 + 72 + 24,
                have: 700
            }
        );
    }

    proptest! {
        #[test]
        fn no_fold_lets_a_training_target_reach_its_test_window(
            len in 500i64..5000, windows in 1u32..10, step in 1i64..200,
            lookback in 1i64..100, horizon in 1i64..25,
        ) {
            let gap = lookback + horizon;
            let wf = WalkForward { windows, step_hours: step, gap_hours: gap };
            if let Ok(folds) = wf.folds(0..len, 10) {
                prop_assert_eq!(folds.len() as u32, windows);
                prop_assert_eq!(folds.last().map(|f| f.test.end), Some(len));
                for pair in folds.windows(2) {
                    prop_assert_eq!(pair[0].test.end, pair[1].test.start);
                }
                for f in &folds {
                    // The last training sample's targets end at train.end - 1 + horizon; the first
                    // test sample's inputs start at test.start - lookback + 1.
                    prop_assert!(f.train.end - 1 + horizon < f.test.start - lookback + 1);
                    prop_assert!(f.train.end - f.train.start >= 10);
                }
            }
        }
    }
}
