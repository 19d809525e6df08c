//! What the HTTP adapters share: one exchange with a provider, and what its answer means.
//!
//! The mapping is the same for every provider: a connect error, 429 and 5xx are worth trying
//! again (with the provider's `Retry-After`, seconds or an HTTP date); any other 4xx is
//! permanent; a timeout once the request may have been written leaves the outcome unknown. The
//! reasons carry the status and the provider's own error text, cut short and with the address
//! and the message text taken out: a provider that echoes them must not put PHI into our logs.

use std::time::Duration;

use ring::hmac;
use serde_json::Value;

use super::{Outbound, SendError};
pub(super) use crate::retry_after::retry_after;

/// At most this many characters of a provider's error text go into a reason.
const MAX_DETAIL_CHARS: usize = 200;

/// A provider's answer, read whole.
pub(super) struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Value,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends `request` with `timeout` and reads the answer. A body that is not JSON reads as `Null`.
pub(super) async fn exchange(
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let response = request.timeout(timeout).send().await.map_err(transport_error)?;
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let bytes = response.bytes().await.map_err(transport_error)?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// A request that got no answer: refused connections are retried; a timeout or a broken
/// answer may have reached the provider, so the outcome is unknown.
pub(super) fn transport_error(e: reqwest::Error) -> SendError {
    if e.is_connect() {
        SendError::Retry {
            reason: "connection failed".into(),
            after: None,
        }
    } else if e.is_timeout() {
        SendError::Unknown {
            reason: "timed out waiting for the provider".into(),
        }
    } else if e.is_builder() {
        SendError::Permanent {
            reason: "the request could not be built (check base_url)".into(),
        }
    } else {
        SendError::Unknown {
            reason: "the connection broke before the provider answered".into(),
        }
    }
}

/// What a non-success HTTP status means; `detail` is the provider's error text, already redacted.
pub(super) fn status_error(status: u16, retry_after: Option<Duration>, detail: Option<String>) -> SendError {
    let reason = match detail {
        Some(d) if !d.is_empty() => format!("HTTP {status}: {d}"),
        _ => format!("HTTP {status}"),
    };
    if status == 429 || status >= 500 {
        SendError::Retry {
            reason,
            after: retry_after,
        }
    } else {
        SendError::Permanent { reason }
    }
}

/// A provider's error text fit for a reason: the address and the message text replaced, cut to
/// [`MAX_DETAIL_CHARS`] characters.
pub(super) fn redacted(text: &str, m: &Outbound) -> String {
    let mut out = text.trim().to_string();
    let digits = m.to.trim_start_matches('+');
    for (secret, mark) in [
        (m.body.as_str(), "(text)"),
        (m.to.as_str(), "(address)"),
        (digits, "(address)"),
    ] {
        if secret.len() >= 3 {
            out = out.replace(secret, mark);
        }
    }
    match out.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((cut, _)) => format!("{}…", &out[..cut]),
        None => out,
    }
}

/// A string field of a JSON answer, or a number written as text.
pub(super) fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Lower-case hex of HMAC-SHA256 of `body` with `secret`.
pub(super) fn hmac_sha256_hex(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hex(hmac::sign(&key, body).as_ref())
}

/// Whether `header` is `sha256=<hex HMAC-SHA256 of body>` with `secret` (compared in constant
/// time by ring).
pub(super) fn verify_sha256_signature(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(given) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Some(tag) = unhex(given) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, body, &tag).is_ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// A header's value as text, when present and visible ASCII.
pub(super) fn header<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A client for unit tests, with the ring provider installed as the app does.
#[cfg(test)]
pub(super) fn test_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound() -> Outbound {
        Outbound {
            id: "n-1".into(),
            to: "+84901234567".into(),
            subject: None,
            body: "Kết quả xét nghiệm đã có".into(),
            language: "vi".into(),
        }
    }

    #[test]
    fn rate_limits_and_server_errors_are_retried_other_client_errors_are_permanent() {
        let after = Some(Duration::from_secs(30));
        assert_eq!(
            status_error(429, after, None),
            SendError::Retry {
                reason: "HTTP 429".into(),
                after
            }
        );
        assert!(matches!(
            status_error(503, None, None),
            SendError::Retry { after: None, .. }
        ));
        assert!(matches!(status_error(500, None, None), SendError::Retry { .. }));
        assert_eq!(
            status_error(400, None, Some("invalid To".into())),
            SendError::Permanent {
                reason: "HTTP 400: invalid To".into()
            }
        );
        assert!(matches!(
            status_error(401, None, None),
            SendError::Permanent { .. }
        ));
        assert!(matches!(
            status_error(404, None, None),
            SendError::Permanent { .. }
        ));
    }

    #[test]
    fn provider_text_loses_the_address_and_the_message_and_is_cut_short() {
        let m = outbound();
        let said =
            "The 'To' number +84901234567 is not valid; 84901234567 again; body Kết quả xét nghiệm đã có";
        let shown = redacted(said, &m);
        assert!(!shown.contains("84901234567"), "{shown}");
        assert!(!shown.contains("xét nghiệm"), "{shown}");
        assert!(shown.contains("(address)") && shown.contains("(text)"), "{shown}");
        let long = "é".repeat(500);
        assert_eq!(redacted(&long, &m).chars().count(), MAX_DETAIL_CHARS + 1);
    }

    #[test]
    fn sha256_signatures_verify_only_with_the_right_secret_and_body() {
        let sig = format!("sha256={}", hmac_sha256_hex("s3cret", b"{\"id\":1}"));
        assert!(verify_sha256_signature("s3cret", b"{\"id\":1}", Some(&sig)));
        assert!(!verify_sha256_signature("other", b"{\"id\":1}", Some(&sig)));
        assert!(!verify_sha256_signature("s3cret", b"{\"id\":2}", Some(&sig)));
        assert!(!verify_sha256_signature("s3cret", b"{\"id\":1}", None));
        assert!(!verify_sha256_signature(
            "s3cret",
            b"{\"id\":1}",
            Some("sha256=zz")
        ));
        // The RFC 4231 test case 2 vector: HMAC-SHA256("Jefe", "what do ya want for nothing?").
        assert_eq!(
            hmac_sha256_hex("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
