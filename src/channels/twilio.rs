//! `type: twilio`: SMS through Twilio's Messages API, or any gateway that speaks it.
//!
//! A send is `POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded,
//! with HTTP basic auth `AccountSid:AuthToken` and `I-Twilio-Idempotency-Token: <notification
//! id>`; the answer's `sid` is the provider id. Webhooks (status callbacks and inbound replies)
//! are form-encoded too and signed with `X-Twilio-Signature` (checked when `webhook_url` is set).

use std::time::Duration;

use base64::Engine;
use ring::hmac;
use serde::Deserialize;

use super::http::{exchange, redacted, status_error, text_of};
use super::{Outbound, SendError, Sent, WebhookEvent, opt_out};
use crate::config::{Document, Problem, Secret};

/// `type: twilio` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// The account SID (`AC…`), also the basic-auth user.
    pub account_sid: String,
    /// The account's auth token: basic-auth password and webhook signing key.
    pub auth_token: Secret,
    /// The sending number (E.164) or alphanumeric sender id; or set `messaging_service_sid`.
    #[serde(default)]
    pub from: Option<String>,
    /// A Messaging Service (`MG…`) that picks the sender; instead of `from`.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// Where Twilio should post delivery receipts (`StatusCallback`): the hub's
    /// `/api/v1/webhooks/<channel name>` as the internet sees it.
    #[serde(default)]
    pub status_callback_url: Option<String>,
    /// The exact public URL Twilio posts webhooks to; when set, `X-Twilio-Signature` is
    /// required and checked against it.
    #[serde(default)]
    pub webhook_url: Option<String>,
}

impl TwilioConfig {
    pub(super) fn check(&self, doc: &Document, field: &str) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.from.is_some() == self.messaging_service_sid.is_some() {
            problems.push(doc.problem(
                &format!("{field}.from"),
                "set from or messaging_service_sid (one of them)",
            ));
        }
        for (key, url) in [
            ("status_callback_url", &self.status_callback_url),
            ("webhook_url", &self.webhook_url),
        ] {
            if let Some(p) = url.as_deref().and_then(super::config::check_http_url) {
                problems.push(doc.problem(&format!("{field}.{key}"), p));
            }
        }
        problems
    }
}

pub struct TwilioChannel {
    http: reqwest::Client,
    url: String,
    config: TwilioConfig,
}

impl TwilioChannel {
    pub fn new(config: &TwilioConfig, base_url: &str, http: reqwest::Client) -> TwilioChannel {
        TwilioChannel {
            http,
            url: format!(
                "{base_url}/2010-04-01/Accounts/{}/Messages.json",
                config.account_sid
            ),
            config: config.clone(),
        }
    }

    pub async fn send(&self, m: &Outbound, timeout: Duration) -> Result<Sent, SendError> {
        let mut form = vec![("To", m.to.as_str()), ("Body", m.body.as_str())];
        match (&self.config.from, &self.config.messaging_service_sid) {
            (Some(from), _) => form.push(("From", from)),
            (None, Some(service)) => form.push(("MessagingServiceSid", service)),
            (None, None) => {}
        }
        if let Some(callback) = &self.config.status_callback_url {
            form.push(("StatusCallback", callback));
        }
        let request = self
            .http
            .post(&self.url)
            .basic_auth(&self.config.account_sid, Some(self.config.auth_token.expose()))
            .header("I-Twilio-Idempotency-Token", &m.id)
            .form(&form);
        let answer = exchange(request, timeout).await?;
        if !answer.is_success() {
            // Twilio's errors: {"code": 21211, "message": "The 'To' number … is not valid", …}
            let detail = match (text_of(&answer.body["code"]), answer.body["message"].as_str()) {
                (Some(code), Some(text)) => Some(format!("{code} {}", redacted(text, m))),
                (None, Some(text)) => Some(redacted(text, m)),
                (code, None) => code,
            };
            return Err(status_error(answer.status, answer.retry_after, detail));
        }
        Ok(Sent {
            provider_id: text_of(&answer.body["sid"]),
            delivered: false,
        })
    }

    /// A status callback (`MessageSid`, `MessageStatus`) or an inbound reply (`From`, `Body`).
    pub fn webhook(&self, headers: &axum::http::HeaderMap, body: &[u8]) -> Result<Vec<WebhookEvent>, String> {
        let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        if let Some(url) = &self.config.webhook_url {
            let given =
                super::http::header(headers, "x-twilio-signature").ok_or("X-Twilio-Signature is missing")?;
            if !signature_matches(self.config.auth_token.expose(), url, &params, given) {
                return Err("X-Twilio-Signature does not match".into());
            }
        }
        let get = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        if let (Some(sid), Some(status)) = (get("MessageSid"), get("MessageStatus")) {
            let status = match status {
                "delivered" => "delivered",
                "undelivered" | "failed" => "failed",
                // queued, sending, sent, accepted…: not an outcome yet.
                _ => return Ok(Vec::new()),
            };
            return Ok(vec![WebhookEvent::Status {
                provider_id: sid.to_string(),
                status: status.to_string(),
                detail: get("ErrorCode").map(|c| format!("error {c}")),
            }]);
        }
        if let (Some(from), Some(text)) = (get("From"), get("Body")) {
            return Ok(opt_out::event(text, from).into_iter().collect());
        }
        Ok(Vec::new())
    }
}

/// Twilio's request signature: base64 of HMAC-SHA1, keyed with the auth token, of the full URL
/// followed by each POST parameter's name and value, sorted by name.
fn signature_matches(auth_token: &str, url: &str, params: &[(String, String)], given: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(given.trim()) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    hmac::verify(&key, signed_text(url, params).as_bytes(), &given).is_ok()
}

fn signed_text(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut text = url.to_string();
    for (k, v) in sorted {
        text.push_str(k);
        text.push_str(v);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://clinic.example.org/api/v1/webhooks/sms";

    fn channel(webhook_url: Option<&str>) -> TwilioChannel {
        let config = TwilioConfig {
            account_sid: "AC123".into(),
            auth_token: Secret::new("12345"),
            from: Some("+15005550006".into()),
            messaging_service_sid: None,
            status_callback_url: None,
            webhook_url: webhook_url.map(str::to_string),
        };
        TwilioChannel::new(
            &config,
            "https://api.twilio.com",
            super::super::http::test_client(),
        )
    }

    /// Signs a form body the way Twilio does, independently of `signed_text`.
    fn sign(token: &str, url: &str, body: &str) -> String {
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
        pairs.sort();
        let text = pairs.iter().fold(url.to_string(), |acc, (k, v)| acc + k + v);
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, token.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, text.as_bytes()))
    }

    fn headers(signature: &str) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-twilio-signature", signature.parse().unwrap());
        h
    }

    #[test]
    fn the_signed_text_matches_twilios_documented_example() {
        // Twilio's security guide example: the URL, then name+value sorted by name.
        let params = vec![
            ("From".to_string(), "+14158675310".to_string()),
            ("CallSid".to_string(), "CA1234567890ABCDE".to_string()),
            ("Caller".to_string(), "+12349013030".to_string()),
        ];
        assert_eq!(
            signed_text("https://example.com/myapp", &params),
            "https://example.com/myappCallSidCA1234567890ABCDECaller+12349013030From+14158675310"
        );
    }

    #[test]
    fn delivery_receipts_become_status_events() {
        let body = "MessageSid=SM1&MessageStatus=delivered&AccountSid=AC123";
        let events = channel(None)
            .webhook(&Default::default(), body.as_bytes())
            .unwrap();
        assert_eq!(
            events,
            vec![WebhookEvent::Status {
                provider_id: "SM1".into(),
                status: "delivered".into(),
                detail: None
            }]
        );
        let body = "MessageSid=SM2&MessageStatus=undelivered&ErrorCode=30003";
        let events = channel(None)
            .webhook(&Default::default(), body.as_bytes())
            .unwrap();
        assert_eq!(
            events,
            vec![WebhookEvent::Status {
                provider_id: "SM2".into(),
                status: "failed".into(),
                detail: Some("error 30003".into())
            }]
        );
        let body = "MessageSid=SM3&MessageStatus=sent";
        assert_eq!(
            channel(None)
                .webhook(&Default::default(), body.as_bytes())
                .unwrap(),
            vec![]
        );
    }

    #[test]
    fn stop_and_start_replies_become_opt_out_and_opt_in() {
        let c = channel(None);
        let stop = "MessageSid=SM9&From=%2B84901234567&Body=+Stop+&SmsStatus=received";
        assert_eq!(
            c.webhook(&Default::default(), stop.as_bytes()).unwrap(),
            vec![WebhookEvent::OptOut {
                address: "+84901234567".into()
            }]
        );
        let start = "From=%2B84901234567&Body=UNSTOP";
        assert_eq!(
            c.webhook(&Default::default(), start.as_bytes()).unwrap(),
            vec![WebhookEvent::OptIn {
                address: "+84901234567".into()
            }]
        );
        let chat = "From=%2B84901234567&Body=Please+stop+calling+me";
        assert_eq!(c.webhook(&Default::default(), chat.as_bytes()).unwrap(), vec![]);
    }

    #[test]
    fn with_webhook_url_set_only_a_correct_signature_is_accepted() {
        let c = channel(Some(URL));
        let body = "MessageSid=SM1&MessageStatus=failed&To=%2B84901234567";
        let good = sign("12345", URL, body);
        assert_eq!(c.webhook(&headers(&good), body.as_bytes()).unwrap().len(), 1);
        let wrong_key = sign("54321", URL, body);
        assert!(c.webhook(&headers(&wrong_key), body.as_bytes()).is_err());
        let other_url = sign("12345", "https://evil.example/", body);
        assert!(c.webhook(&headers(&other_url), body.as_bytes()).is_err());
        let tampered = "MessageSid=SM1&MessageStatus=delivered&To=%2B84901234567";
        assert!(c.webhook(&headers(&good), tampered.as_bytes()).is_err());
        assert_eq!(
            c.webhook(&Default::default(), body.as_bytes()),
            Err("X-Twilio-Signature is missing".to_string())
        );
    }
}
