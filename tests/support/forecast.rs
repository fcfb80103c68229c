//! A `predict --json` forecast compared with one recorded elsewhere.
//!
//! libtorch picks its kernels by the CPU's instruction set, so a network's float32 outputs agree
//! across machines only to about 1e-7 relative: a forecast recorded on another machine is compared
//! at 1e-6 relative on each horizon's ln(price / current price) and its bounds. What is not
//! arithmetic (the hour, the current price read from the file, the model, who answered, the level
//! each interval is drawn at) must be equal.

use chrono::DateTime;

/// The relative tolerance for forecasts recorded on another machine.
pub const ACROSS_MACHINES: f64 = 1e-6;

#[derive(Debug, Clone, PartialEq)]
pub struct ForecastFigures {
    pub model_id: Option<String>,
    pub served_by: Option<String>,
    /// Hours since the epoch.
    pub as_of_hour: i64,
    pub current_price: f64,
    pub interval_level: f64,
    pub horizons: Vec<HorizonFigures>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HorizonFigures {
    pub hours_ahead: u64,
    /// ln(price / current price), and the same for the bounds.
    pub ln_price: f64,
    pub ln_lower: f64,
    pub ln_upper: f64,
    pub drawn_at_level: f64,
}

impl ForecastFigures {
    /// Reads `predict --json`, of this release (`as_of`, `model_id`, `served_by`, per-horizon
    /// `drawn_at_level`) or of release v4 (`as_of_hour`, every interval drawn at the nominal level).
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        let v: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| format!("forecast json: {e}"))?;
        let num = |v: &serde_json::Value, key: &str| {
            v[key]
                .as_f64()
                .ok_or_else(|| format!("`{key}` is not a number in {v}"))
        };
        let as_of_hour = match (v["as_of"].as_str(), v["as_of_hour"].as_i64()) {
            (Some(t), _) => DateTime::parse_from_rfc3339(t)
                .map_err(|e| format!("as_of {t:?}: {e}"))?
                .timestamp()
                .div_euclid(3600),
            (None, Some(h)) => h,
            (None, None) => return Err("neither `as_of` nor `as_of_hour`".into()),
        };
        let current_price = num(&v, "current_price")?;
        let interval_level = num(&v, "interval_level")?;
        let ln = |x: f64| (x / current_price).ln();
        let horizons = v["horizons"]
            .as_array()
            .ok_or("no `horizons` array")?
            .iter()
            .map(|h| {
                Ok(HorizonFigures {
                    hours_ahead: h["hours_ahead"].as_u64().ok_or("no hours_ahead")?,
                    ln_price: ln(num(h, "price")?),
                    ln_lower: ln(num(h, "lower")?),
                    ln_upper: ln(num(h, "upper")?),
                    drawn_at_level: h["drawn_at_level"].as_f64().unwrap_or(interval_level),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            model_id: v["model_id"].as_str().map(String::from),
            served_by: v["served_by"].as_str().map(String::from),
            as_of_hour,
            current_price,
            interval_level,
            horizons,
        })
    }

    /// `Ok` when `here` is this forecast within `rel` on the ln ratios and equal in the rest; the
    /// error names every difference.
    pub fn matches(&self, here: &ForecastFigures, rel: f64) -> Result<(), String> {
        let mut diffs = Vec::new();
        let mut exact = |what: &str, recorded: String, got: String| {
            if recorded != got {
                diffs.push(format!("{what}: recorded {recorded}, got {got}"));
            }
        };
        exact(
            "model_id",
            format!("{:?}", self.model_id),
            format!("{:?}", here.model_id),
        );
        exact(
            "served_by",
            format!("{:?}", self.served_by),
            format!("{:?}", here.served_by),
        );
        exact(
            "as_of_hour",
            self.as_of_hour.to_string(),
            here.as_of_hour.to_string(),
        );
        exact(
            "current_price",
            self.current_price.to_string(),
            here.current_price.to_string(),
        );
        exact(
            "interval_level",
            self.interval_level.to_string(),
            here.interval_level.to_string(),
        );
        exact(
            "horizons",
            self.horizons.len().to_string(),
            here.horizons.len().to_string(),
        );
        for (a, b) in self.horizons.iter().zip(&here.horizons) {
            let h = a.hours_ahead;
            exact(
                &format!("h{h} hours_ahead"),
                h.to_string(),
                b.hours_ahead.to_string(),
            );
            exact(
                &format!("h{h} drawn_at_level"),
                a.drawn_at_level.to_string(),
                b.drawn_at_level.to_string(),
            );
        }
        for (a, b) in self.horizons.iter().zip(&here.horizons) {
            let h = a.hours_ahead;
            for (what, x, y) in [
                ("ln(price/current)", a.ln_price, b.ln_price),
                ("ln(lower/current)", a.ln_lower, b.ln_lower),
                ("ln(upper/current)", a.ln_upper, b.ln_upper),
            ] {
                if !close(x, y, rel) {
                    diffs.push(format!(
                        "h{h} {what}: recorded {x:e}, got {y:e} (relative difference {:e} > {rel:e})",
                        (x - y).abs() / x.abs().max(y.abs())
                    ));
                }
            }
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(diffs.join("\n"))
        }
    }
}

/// Within `rel` of each other, relative to the larger magnitude (two exact zeros, a persistence
/// forecast's log return, are equal).
fn close(x: f64, y: f64, rel: f64) -> bool {
    x == y || (x - y).abs() <= rel * x.abs().max(y.abs())
}
