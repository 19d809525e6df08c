//! Request extractors whose refusals are the API's own.
//!
//! axum's `Path`, `Query` and `Json` refuse a malformed request with a plain-text body and
//! statuses of their own (415, 422…). The API answers every refusal the same way — a status
//! the OpenAPI document lists and `{"error": reason}` — so its handlers take these wrappers
//! instead: 400 with the extractor's reason, 413 when a body is over the limit.
//!
//! Text that carries a NUL character is refused here too: PostgreSQL cannot store or compare
//! it (SQLite could), so a `%00` in a path or query, or a `\u0000` in a JSON string, would
//! otherwise reach the store and come back as a store error. No value is logged.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;

/// The reason given for text with a NUL character.
pub(super) const NUL_REFUSED: &str = "text may not contain NUL characters (\\u0000, %00)";

/// Path parameters (`/patients/{id}`), refused as a 400 when they do not parse.
pub(super) struct PathParams<T>(pub T);

/// Query parameters, refused as a 400 when they do not parse.
pub(super) struct QueryParams<T>(pub T);

/// A JSON request body, refused as a 400 (413 when too large) when it is not the expected JSON.
pub(super) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if has_encoded_nul(parts.uri.path()) {
            return Err(ApiError::BadRequest(NUL_REFUSED.into()));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|r| refusal(r.status(), r.body_text()))
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if parts.uri.query().is_some_and(has_encoded_nul) {
            return Err(ApiError::BadRequest(NUL_REFUSED.into()));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|r| refusal(r.status(), r.body_text()))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| refusal(r.status(), r.body_text()))?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A JSON body parsed as `T`: 400 with serde's reason (line, column, field) when it is not,
/// or when one of its strings holds a NUL character. An empty body is a 400 too.
pub(super) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::BadRequest("the request needs a JSON body".into()));
    }
    // serde reads a struct from an array of its fields too; no body of this API is an array.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::BadRequest(
            "the body is a JSON object, not an array".into(),
        ));
    }
    let value: T =
        serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    if may_hold_nul(bytes) {
        let tree: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        if holds_nul(&tree) {
            return Err(ApiError::BadRequest(NUL_REFUSED.into()));
        }
    }
    Ok(value)
}

/// A query value that is a date (`YYYY-MM-DD`, its midnight UTC) or an RFC 3339 instant, as
/// the document describes it (`anyOf: [date, date-time]`); a 400 naming `name` otherwise.
pub(super) fn date_or_instant(text: &str, name: &str) -> Result<jiff::Timestamp, ApiError> {
    let parsed = if text.len() == 10 {
        text.parse::<jiff::civil::Date>()
            .ok()
            .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .map(|z| z.timestamp())
    } else {
        text.parse::<jiff::Timestamp>().ok()
    };
    parsed.ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{name}: not a date (YYYY-MM-DD) nor an instant (RFC 3339, e.g. 2026-01-20T08:30:00Z)"
        ))
    })
}

/// 413 stays 413 (the body is over `api.max_body_bytes`); every other refusal is a 400.
fn refusal(status: StatusCode, reason: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(reason)
    } else {
        ApiError::BadRequest(reason)
    }
}

fn has_encoded_nul(text: &str) -> bool {
    text.contains("%00")
}

/// A cheap first look: JSON can only spell NUL as a `\u0000` escape.
fn may_hold_nul(bytes: &[u8]) -> bool {
    bytes
        .windows(6)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && &w[2..6] == b"0000")
}

fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Named {
        #[allow(dead_code)]
        name: String,
    }

    fn reason(e: ApiError) -> String {
        match e {
            ApiError::BadRequest(m) => m,
            _ => panic!("not a 400"),
        }
    }

    #[test]
    fn a_nul_in_a_json_string_is_refused_and_an_escaped_backslash_is_not() {
        assert_eq!(
            reason(parse_json::<Named>(br#"{"name": "a\u0000b"}"#).unwrap_err()),
            NUL_REFUSED
        );
        assert!(parse_json::<Named>(br#"{"name": "a\\u0000b"}"#).is_ok());
    }

    #[test]
    fn dates_and_instants_read_and_nothing_else_does() {
        let at = |t: &str| date_or_instant(t, "since").map(|ts| ts.to_string());
        assert_eq!(at("2026-01-20").ok().as_deref(), Some("2026-01-20T00:00:00Z"));
        assert_eq!(
            at("2026-01-20T08:30:00+07:00").ok().as_deref(),
            Some("2026-01-20T01:30:00Z")
        );
        for bad in [
            "",
            "2026-13-01",
            "2026-01-20garbage",
            "yesterday",
            "2026-01-20T08:30:00",
        ] {
            assert!(at(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_body_that_is_not_the_expected_json_says_why() {
        assert!(reason(parse_json::<Named>(b"").unwrap_err()).contains("JSON body"));
        assert!(reason(parse_json::<Named>(b"{}").unwrap_err()).contains("name"));
        assert!(reason(parse_json::<Named>(b"{\"name\": 1").unwrap_err()).contains("invalid JSON"));
        // A struct is an object, never the array of its fields serde would take.
        assert!(reason(parse_json::<Named>(br#" ["x"]"#).unwrap_err()).contains("not an array"));
    }
}
