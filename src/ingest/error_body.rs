//! CoinGecko's error bodies come in several shapes; this turns each into one readable line.
//!
//! Seen shapes: `{"status":{"error_code":429,"error_message":"..."}}`,
//! `{"error":{"status":{"error_code":10002,"error_message":"..."}}}`, `{"error":"coin not found"}`,
//! and HTML or plain text from the CDN in front of the API.

use serde_json::Value;

/// Longest excerpt of a non-JSON body quoted in a message.
const EXCERPT: usize = 200;

/// A readable description of an error response body.
pub fn describe(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if let Some(message) = message_from_json(&value) {
            return message;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = strip_html(&text);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return "empty body".into();
    }
    let mut excerpt: String = text.chars().take(EXCERPT).collect();
    if excerpt.len() < text.len() {
        excerpt.push('…');
    }
    excerpt
}

/// The message of a JSON error object in any of the known shapes.
pub fn message_from_json(value: &Value) -> Option<String> {
    let status_message = |status: &Value| -> Option<String> {
        let message = status.get("error_message").and_then(Value::as_str)?;
        Some(match status.get("error_code").and_then(Value::as_i64) {
            Some(code) => format!("{message} (error code {code})"),
            None => message.to_string(),
        })
    };
    if let Some(status) = value.get("status") {
        if let Some(m) = status_message(status) {
            return Some(m);
        }
    }
    match value.get("error") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(inner @ Value::Object(_)) => {
            inner.get("status").and_then(status_message).or_else(|| {
                inner
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
        }
        _ => None,
    }
}

/// Drops tags, scripts and styles so that a CDN page reads as its text.
fn strip_html(text: &str) -> String {
    if !text.trim_start().starts_with('<') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        out.push(' ');
        let tail = &rest[start..];
        let lower = tail.get(..8).unwrap_or(tail).to_ascii_lowercase();
        let closing = if lower.starts_with("<script") {
            "</script>"
        } else if lower.starts_with("<style") {
            "</style>"
        } else {
            ">"
        };
        match tail.to_ascii_lowercase().find(closing) {
            Some(end) => rest = &tail[end + closing.len()..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_json_shapes() {
        assert_eq!(
            describe(br#"{"status":{"error_code":429,"error_message":"You've exceeded the Rate Limit"}}"#),
            "You've exceeded the Rate Limit (error code 429)"
        );
        assert_eq!(
            describe(
                br#"{"error":{"status":{"error_code":10002,"error_message":"API Key Missing"}}}"#
            ),
            "API Key Missing (error code 10002)"
        );
        assert_eq!(describe(br#"{"error":"coin not found"}"#), "coin not found");
    }

    #[test]
    fn html_and_text() {
        let html =
            b"<!DOCTYPE html><html><head><style>p{}</style><title>Access denied</title></head>\
                     <body><h1>Error 1020</h1><script>x()</script></body></html>";
        assert_eq!(describe(html), "Access denied Error 1020");
        assert_eq!(describe(b""), "empty body");
        let long = "x".repeat(500);
        assert!(describe(long.as_bytes()).chars().count() <= EXCERPT + 1);
    }
}
