//! `type: sms_webhook`: a generic JSON webhook for local SMS gateways.
//!
//! A send is `POST {url}` with `{"id","to","body","language"}`, `Idempotency-Key: <id>`, an
//! optional `Authorization: Bearer <token>` and, with `signing_secret`, `X-Carehub-Signature:
//! sha256=<hex HMAC-SHA256 of the body>`. The answer's `id`, when present, is the provider id.
//! The gateway posts back `{"id","status"}` receipts and `{"from","text"}` replies, signed the
//! same way.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{exchange, hmac_sha256_hex, redacted, status_error, text_of, verify_sha256_signature};
use super::{Outbound, SendError, Sent, WebhookEvent, opt_out};
use crate::config::{Document, Problem, Secret};

/// The header that carries the body's signature, both ways.
pub const SIGNATURE_HEADER: &str = "X-Carehub-Signature";

/// `type: sms_webhook` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsWebhookConfig {
    /// The gateway's endpoint for sends.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>` when set.
    #[serde(default)]
    pub token: Option<Secret>,
    /// When set, sends carry `X-Carehub-Signature` and inbound webhooks must carry a valid one.
    #[serde(default)]
    pub signing_secret: Option<Secret>,
}

impl SmsWebhookConfig {
    pub(super) fn check(&self, doc: &Document, field: &str) -> Vec<Problem> {
        super::config::check_http_url(&self.url)
            .map(|p| doc.problem(&format!("{field}.url"), p))
            .into_iter()
            .collect()
    }
}

pub struct SmsWebhookChannel {
    http: reqwest::Client,
    config: SmsWebhookConfig,
}

impl SmsWebhookChannel {
    pub fn new(config: &SmsWebhookConfig, http: reqwest::Client) -> SmsWebhookChannel {
        SmsWebhookChannel {
            http,
            config: config.clone(),
        }
    }

    pub async fn send(&self, m: &Outbound, timeout: Duration) -> Result<Sent, SendError> {
        let body = json!({"id": m.id, "to": m.to, "body": m.body, "language": m.language}).to_string();
        let mut request = self
            .http
            .post(&self.config.url)
            .header("content-type", "application/json")
            .header("Idempotency-Key", &m.id);
        if let Some(token) = &self.config.token {
            request = request.bearer_auth(token.expose());
        }
        if let Some(secret) = &self.config.signing_secret {
            let signature = format!("sha256={}", hmac_sha256_hex(secret.expose(), body.as_bytes()));
            request = request.header(SIGNATURE_HEADER, signature);
        }
        let answer = exchange(request.body(body), timeout).await?;
        if !answer.is_success() {
            let detail = ["error", "message"]
                .iter()
                .find_map(|k| answer.body[*k].as_str())
                .map(|text| redacted(text, m));
            return Err(status_error(answer.status, answer.retry_after, detail));
        }
        Ok(Sent {
            provider_id: text_of(&answer.body["id"]),
            delivered: false,
        })
    }

    /// One object or an array of them: `{"id","status"}` receipts, `{"from","text"}` replies.
    pub fn webhook(&self, headers: &axum::http::HeaderMap, body: &[u8]) -> Result<Vec<WebhookEvent>, String> {
        if let Some(secret) = &self.config.signing_secret {
            let given = super::http::header(headers, SIGNATURE_HEADER);
            if !verify_sha256_signature(secret.expose(), body, given) {
                return Err(format!("{SIGNATURE_HEADER} is missing or does not match"));
            }
        }
        let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        let items = match value {
            Value::Array(items) => items,
            one => vec![one],
        };
        Ok(items.iter().filter_map(event).collect())
    }
}

fn event(item: &Value) -> Option<WebhookEvent> {
    if let (Some(id), Some(status)) = (text_of(&item["id"]), item["status"].as_str()) {
        let status = match status.to_ascii_lowercase().as_str() {
            "delivered" => "delivered",
            "failed" | "undelivered" | "rejected" | "expired" => "failed",
            _ => return None,
        };
        return Some(WebhookEvent::Status {
            provider_id: id,
            status: status.into(),
            detail: item["error"].as_str().map(str::to_string),
        });
    }
    opt_out::event(item["text"].as_str()?, item["from"].as_str()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(signing_secret: Option<&str>) -> SmsWebhookChannel {
        let config = SmsWebhookConfig {
            url: "http://127.0.0.1:9/send".into(),
            token: None,
            signing_secret: signing_secret.map(Secret::new),
        };
        SmsWebhookChannel::new(&config, super::super::http::test_client())
    }

    fn signed(secret: &str, body: &str) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        let sig = format!("sha256={}", hmac_sha256_hex(secret, body.as_bytes()));
        h.insert("x-carehub-signature", sig.parse().unwrap());
        h
    }

    #[test]
    fn receipts_and_replies_are_read_one_or_many() {
        let body = r#"[{"id":"g-1","status":"DELIVERED"},{"id":"g-2","status":"failed","error":"no route"},
                      {"id":"g-3","status":"queued"},{"from":"+84901234567","text":"Hủy"},{"from":"+1","text":"hi"}]"#;
        let events = channel(None)
            .webhook(&Default::default(), body.as_bytes())
            .unwrap();
        assert_eq!(
            events,
            vec![
                WebhookEvent::Status {
                    provider_id: "g-1".into(),
                    status: "delivered".into(),
                    detail: None
                },
                WebhookEvent::Status {
                    provider_id: "g-2".into(),
                    status: "failed".into(),
                    detail: Some("no route".into())
                },
                WebhookEvent::OptOut {
                    address: "+84901234567".into()
                },
            ]
        );
        assert!(channel(None).webhook(&Default::default(), b"not json").is_err());
    }

    #[test]
    fn with_a_signing_secret_only_signed_webhooks_are_read() {
        let c = channel(Some("gateway-secret"));
        let body = r#"{"from":"+84901234567","text":"STOP"}"#;
        assert_eq!(
            c.webhook(&signed("gateway-secret", body), body.as_bytes())
                .unwrap()
                .len(),
            1
        );
        assert!(c.webhook(&signed("guess", body), body.as_bytes()).is_err());
        assert!(c.webhook(&Default::default(), body.as_bytes()).is_err());
    }
}
