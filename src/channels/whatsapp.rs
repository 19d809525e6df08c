//! `type: whatsapp`: the WhatsApp Cloud API.
//!
//! A send is `POST {base_url}/{api_version}/{phone_number_id}/messages` with `Authorization:
//! Bearer <token>`: a text message, or — with `template` set — a template message whose body
//! parameter `{{1}}` is the text (the only kind WhatsApp delivers outside the 24-hour window
//! after the person last wrote). The answer's `messages[0].id` is the provider id. The Cloud API
//! has no idempotency key. Webhooks: `statuses[]` → delivery receipts, `messages[]` with a stop
//! word → opt-out; `X-Hub-Signature-256` is checked when `app_secret` is set.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{exchange, redacted, status_error, text_of, verify_sha256_signature};
use super::{Outbound, SendError, Sent, WebhookEvent, opt_out};
use crate::config::{Document, Problem, Secret};

/// `type: whatsapp` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppConfig {
    /// The business phone number's id (not the number itself).
    pub phone_number_id: String,
    /// A system-user access token with `whatsapp_business_messaging`.
    pub access_token: Secret,
    /// Graph API version in the path.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// The Meta app's secret; when set, webhooks must carry a valid `X-Hub-Signature-256`.
    #[serde(default)]
    pub app_secret: Option<Secret>,
    /// Send as this approved template (text as its body parameter `{{1}}`) instead of as text.
    #[serde(default)]
    pub template: Option<WhatsAppTemplate>,
}

/// An approved message template with one body parameter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppTemplate {
    /// The template's name.
    pub name: String,
    /// Our language (`vi`, `zh`) → the template's language code (`vi`, `zh_CN`); a language not
    /// listed is sent as is.
    #[serde(default)]
    pub languages: BTreeMap<String, String>,
}

fn default_api_version() -> String {
    "v21.0".into()
}

impl WhatsAppConfig {
    pub(super) fn check(&self, doc: &Document, field: &str) -> Vec<Problem> {
        let mut problems = Vec::new();
        let v = &self.api_version;
        let looks_right = v
            .strip_prefix('v')
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.'));
        if !looks_right {
            problems.push(doc.problem(
                &format!("{field}.api_version"),
                format!("expected a Graph API version such as v21.0, got \"{v}\""),
            ));
        }
        if self.phone_number_id.is_empty() || !self.phone_number_id.chars().all(|c| c.is_ascii_digit()) {
            problems.push(doc.problem(
                &format!("{field}.phone_number_id"),
                "expected the phone number's numeric id from the WhatsApp Manager",
            ));
        }
        problems
    }
}

pub struct WhatsAppChannel {
    http: reqwest::Client,
    url: String,
    config: WhatsAppConfig,
}

impl WhatsAppChannel {
    pub fn new(config: &WhatsAppConfig, base_url: &str, http: reqwest::Client) -> WhatsAppChannel {
        WhatsAppChannel {
            http,
            url: format!(
                "{base_url}/{}/{}/messages",
                config.api_version, config.phone_number_id
            ),
            config: config.clone(),
        }
    }

    pub async fn send(&self, m: &Outbound, timeout: Duration) -> Result<Sent, SendError> {
        let to = m.to.trim().trim_start_matches('+');
        if to.is_empty() || !to.chars().all(|c| c.is_ascii_digit()) {
            return Err(SendError::Permanent {
                reason: "the recipient is not an E.164 phone number".into(),
            });
        }
        let payload = match &self.config.template {
            None => json!({
                "messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
                "type": "text", "text": {"body": m.body},
            }),
            Some(t) => {
                let code = t.languages.get(&m.language).unwrap_or(&m.language);
                // A template parameter may not hold new lines or tabs.
                let text = m.body.split_whitespace().collect::<Vec<_>>().join(" ");
                json!({
                    "messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
                    "type": "template", "template": {
                        "name": t.name, "language": {"code": code},
                        "components": [{"type": "body", "parameters": [{"type": "text", "text": text}]}],
                    },
                })
            }
        };
        let request = self
            .http
            .post(&self.url)
            .bearer_auth(self.config.access_token.expose())
            .json(&payload);
        let answer = exchange(request, timeout).await?;
        if !answer.is_success() {
            // {"error": {"message": "…", "type": "OAuthException", "code": 131030, …}}
            let error = &answer.body["error"];
            let detail = match (text_of(&error["code"]), error["message"].as_str()) {
                (Some(code), Some(text)) => Some(format!("{code} {}", redacted(text, m))),
                (None, Some(text)) => Some(redacted(text, m)),
                (code, None) => code,
            };
            return Err(status_error(answer.status, answer.retry_after, detail));
        }
        Ok(Sent {
            provider_id: text_of(&answer.body["messages"][0]["id"]),
            delivered: false,
        })
    }

    pub fn webhook(&self, headers: &axum::http::HeaderMap, body: &[u8]) -> Result<Vec<WebhookEvent>, String> {
        if let Some(secret) = &self.config.app_secret {
            let given = super::http::header(headers, "x-hub-signature-256");
            if !verify_sha256_signature(secret.expose(), body, given) {
                return Err("X-Hub-Signature-256 is missing or does not match".into());
            }
        }
        let update: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        let mut events = Vec::new();
        let values = each(&update["entry"])
            .flat_map(|entry| each(&entry["changes"]))
            .map(|c| &c["value"]);
        for value in values {
            for s in each(&value["statuses"]) {
                let status = match s["status"].as_str() {
                    Some("delivered" | "read") => "delivered",
                    Some("failed") => "failed",
                    _ => continue,
                };
                let Some(id) = text_of(&s["id"]) else { continue };
                let error = &s["errors"][0];
                let detail = match (text_of(&error["code"]), error["title"].as_str()) {
                    (Some(code), Some(title)) => Some(format!("{code} {title}")),
                    (code, title) => code.or(title.map(str::to_string)),
                };
                events.push(WebhookEvent::Status {
                    provider_id: id,
                    status: status.into(),
                    detail,
                });
            }
            for msg in each(&value["messages"]) {
                let text = msg["text"]["body"].as_str().or(msg["button"]["text"].as_str());
                if let (Some(from), Some(text)) = (msg["from"].as_str(), text) {
                    events.extend(opt_out::event(text, &format!("+{from}")));
                }
            }
        }
        Ok(events)
    }
}

/// The items of a JSON array, none when it is not one.
fn each(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(app_secret: Option<&str>) -> WhatsAppChannel {
        let config = WhatsAppConfig {
            phone_number_id: "1055".into(),
            access_token: Secret::new("tok"),
            api_version: default_api_version(),
            app_secret: app_secret.map(Secret::new),
            template: None,
        };
        WhatsAppChannel::new(
            &config,
            "https://graph.facebook.com",
            super::super::http::test_client(),
        )
    }

    fn notification() -> String {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "statuses": [
                {"id": "wamid.A", "status": "delivered", "recipient_id": "84901234567"},
                {"id": "wamid.B", "status": "sent", "recipient_id": "84901234567"},
                {"id": "wamid.C", "status": "failed", "errors": [{"code": 131047, "title": "Re-engagement message"}]}
            ],
            "messages": [
                {"from": "84901234567", "id": "wamid.in", "type": "text", "text": {"body": "STOP"}},
                {"from": "84901234568", "id": "wamid.in2", "type": "text", "text": {"body": "xin chào"}}
            ]
        }}]}]})
        .to_string()
    }

    #[test]
    fn statuses_and_stop_replies_are_read_from_every_entry() {
        let events = channel(None)
            .webhook(&Default::default(), notification().as_bytes())
            .unwrap();
        assert_eq!(
            events,
            vec![
                WebhookEvent::Status {
                    provider_id: "wamid.A".into(),
                    status: "delivered".into(),
                    detail: None
                },
                WebhookEvent::Status {
                    provider_id: "wamid.C".into(),
                    status: "failed".into(),
                    detail: Some("131047 Re-engagement message".into())
                },
                WebhookEvent::OptOut {
                    address: "+84901234567".into()
                },
            ]
        );
    }

    #[test]
    fn with_an_app_secret_the_body_must_be_signed() {
        let c = channel(Some("app-secret"));
        let body = notification();
        let mut h = axum::http::HeaderMap::new();
        let sig = format!(
            "sha256={}",
            super::super::http::hmac_sha256_hex("app-secret", body.as_bytes())
        );
        h.insert("x-hub-signature-256", sig.parse().unwrap());
        assert_eq!(c.webhook(&h, body.as_bytes()).unwrap().len(), 3);
        assert!(c.webhook(&h, body.replace("STOP", "START").as_bytes()).is_err());
        assert!(c.webhook(&Default::default(), body.as_bytes()).is_err());
    }
}
