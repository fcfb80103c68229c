//! Parsing of a CoinGecko `market_chart` body into loosely typed points.
//!
//! The parser judges only what makes a body unreadable (not JSON, not an object, an error object).
//! Everything else, including nulls, strings where numbers belong and arrays of different lengths,
//! is staged as it came and judged by the SQL rules in `sql/quality/`, so that the verdict and the
//! failing rows end up in the database.

use std::borrow::Cow;

use serde_json::Value;

/// The three arrays of a market_chart body, with the names used in `staged_points.series`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    Prices,
    MarketCaps,
    TotalVolumes,
}

impl Series {
    pub const ALL: [Series; 3] = [Series::Prices, Series::MarketCaps, Series::TotalVolumes];

    pub fn name(self) -> &'static str {
        match self {
            Series::Prices => "prices",
            Series::MarketCaps => "market_caps",
            Series::TotalVolumes => "total_volumes",
        }
    }
}

/// One element of a series. `raw` keeps the element's JSON when it is not a plain
/// `[number, number]` pair, for the numeric_types rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub index: u32,
    pub ts_ms: Option<f64>,
    pub value: Option<f64>,
    pub raw: Option<String>,
}

/// A series as found in the body: `None` when the key is missing or not an array.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSeries {
    pub series: Series,
    pub points: Option<Vec<Point>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParsedChart {
    pub series: Vec<ParsedSeries>,
}

/// Longest element text kept in `raw`; longer ones are replaced by a note of their size.
const MAX_RAW_ELEMENT: usize = 1000;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("the body is empty")]
    Empty,
    #[error("the body ends early at line {line}, column {column} (truncated response)")]
    Truncated { line: usize, column: usize },
    #[error("the body is not valid JSON: {message}")]
    NotJson { message: String },
    #[error("the body is JSON {found}, not a market_chart object")]
    NotObject { found: &'static str },
    #[error("the provider answered with an error instead of data: {message}")]
    ErrorObject { message: String },
}

impl ParseError {
    /// A truncated body is worth fetching again; the others are not.
    pub fn is_transient(&self) -> bool {
        matches!(self, ParseError::Truncated { .. })
    }
}

impl ParsedChart {
    pub fn points(&self, series: Series) -> Option<&[Point]> {
        self.series
            .iter()
            .find(|s| s.series == series)
            .and_then(|s| s.points.as_deref())
    }
}

pub fn parse(body: &[u8]) -> Result<ParsedChart, ParseError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::Empty);
    }
    let body = quote_non_finite(body);
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        if e.is_eof() {
            ParseError::Truncated {
                line: e.line(),
                column: e.column(),
            }
        } else {
            ParseError::NotJson {
                message: e.to_string(),
            }
        }
    })?;
    let Value::Object(object) = value else {
        return Err(ParseError::NotObject {
            found: json_kind(&value),
        });
    };
    let has_any_series = Series::ALL.iter().any(|s| object.contains_key(s.name()));
    if !has_any_series {
        if let Some(message) = super::error_body::message_from_json(&Value::Object(object.clone()))
        {
            return Err(ParseError::ErrorObject { message });
        }
    }
    let series = Series::ALL
        .iter()
        .map(|&series| ParsedSeries {
            series,
            points: match object.get(series.name()) {
                Some(Value::Array(items)) => Some(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| parse_point(i, item))
                        .collect(),
                ),
                _ => None,
            },
        })
        .collect();
    Ok(ParsedChart { series })
}

/// Python's `json.dump` writes bare `NaN`, `Infinity` and `-Infinity`, which JSON does not allow.
/// They are turned into strings so that the body parses and the numeric_types rule reports each
/// such point by series and index, instead of the whole body failing at one byte offset.
fn quote_non_finite(body: &[u8]) -> Cow<'_, [u8]> {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    if !has(b"NaN") && !has(b"Infinity") {
        return Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len() + 64);
    let (mut in_string, mut escaped, mut i) = (false, false, 0);
    while i < body.len() {
        let b = body[i];
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        let token = [&b"-Infinity"[..], b"Infinity", b"NaN"]
            .into_iter()
            .find(|t| body[i..].starts_with(t));
        match token {
            Some(t) => {
                out.push(b'"');
                out.extend_from_slice(t);
                out.push(b'"');
                i += t.len();
            }
            None => {
                in_string = b == b'"';
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

fn parse_point(index: usize, item: &Value) -> Point {
    let index = u32::try_from(index).unwrap_or(u32::MAX);
    if let Value::Array(pair) = item {
        if let [Value::Number(ts), Value::Number(v)] = pair.as_slice() {
            return Point {
                index,
                ts_ms: ts.as_f64(),
                value: v.as_f64(),
                raw: None,
            };
        }
        let number = |i: usize| pair.get(i).and_then(Value::as_f64);
        return Point {
            index,
            ts_ms: number(0),
            value: number(1),
            raw: Some(raw_text(item)),
        };
    }
    Point {
        index,
        ts_ms: None,
        value: None,
        raw: Some(raw_text(item)),
    }
}

fn raw_text(item: &Value) -> String {
    let text = item.to_string();
    if text.len() <= MAX_RAW_ELEMENT {
        text
    } else {
        Value::String(format!(
            "<{} element of {} bytes>",
            json_kind(item),
            text.len()
        ))
        .to_string()
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_pairs_have_no_raw() {
        let chart = parse(
            br#"{"prices":[[1700000000000,42.5]],"market_caps":[[1700000000000,1e9]],"total_volumes":[]}"#,
        )
        .expect("parses");
        let prices = chart.points(Series::Prices).expect("present");
        assert_eq!(
            prices[0],
            Point {
                index: 0,
                ts_ms: Some(1.7e12),
                value: Some(42.5),
                raw: None
            }
        );
        assert_eq!(chart.points(Series::TotalVolumes).map(<[_]>::len), Some(0));
    }

    #[test]
    fn loose_elements_are_kept_for_the_rules() {
        let chart =
            parse(br#"{"prices":[[1,"42"],[2,null],[3],"x"],"market_caps":[],"total_volumes":[]}"#)
                .expect("parses");
        let p = chart.points(Series::Prices).expect("present");
        assert_eq!(p[0].raw.as_deref(), Some(r#"[1,"42"]"#));
        assert_eq!(p[0].value, None);
        assert_eq!(p[1].raw.as_deref(), Some("[2,null]"));
        assert_eq!(p[2].ts_ms, Some(3.0));
        assert_eq!(p[3].raw.as_deref(), Some(r#""x""#));
    }

    #[test]
    fn bare_non_finite_tokens_become_reportable_strings() {
        let chart = parse(
            br#"{"prices":[[1,NaN],[2,-Infinity]],"market_caps":[],"total_volumes":[[3,Infinity]],"note":"NaN in a string"}"#,
        )
        .expect("parses");
        let p = chart.points(Series::Prices).expect("present");
        assert_eq!(p[0].raw.as_deref(), Some(r#"[1,"NaN"]"#));
        assert_eq!(p[0].value, None);
        assert_eq!(p[1].raw.as_deref(), Some(r#"[2,"-Infinity"]"#));
        let v = chart.points(Series::TotalVolumes).expect("present");
        assert_eq!(v[0].raw.as_deref(), Some(r#"[3,"Infinity"]"#));
    }

    #[test]
    fn missing_series_is_none() {
        let chart = parse(br#"{"prices":[],"total_volumes":{}}"#).expect("parses");
        assert!(chart.points(Series::MarketCaps).is_none());
        assert!(chart.points(Series::TotalVolumes).is_none());
    }

    #[test]
    fn unreadable_bodies() {
        assert_eq!(parse(b"  "), Err(ParseError::Empty));
        assert!(matches!(
            parse(br#"{"prices":[[1,2],"#),
            Err(ParseError::Truncated { .. })
        ));
        assert!(parse(br#"{"prices":[[1,2],"#)
            .expect_err("truncated")
            .is_transient());
        assert!(matches!(
            parse(b"<html>blocked</html>"),
            Err(ParseError::NotJson { .. })
        ));
        assert_eq!(
            parse(b"[1,2]"),
            Err(ParseError::NotObject { found: "an array" })
        );
        assert_eq!(
            parse(br#"{"error":"coin not found"}"#),
            Err(ParseError::ErrorObject {
                message: "coin not found".into()
            })
        );
    }
}
