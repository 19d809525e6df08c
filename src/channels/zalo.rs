//! `type: zalo`: Zalo Official Account API v3 customer-service messages.
//!
//! A send is `POST {base_url}/v3.0/oa/message/cs` with header `access_token: <token>` and
//! `{"recipient":{"user_id":…},"message":{"text":…}}`. Zalo answers HTTP 200 either way:
//! `{"error":0,"data":{"message_id":…}}` is success; a nonzero `error` is permanent (bad token,
//! user not following the OA, outside the interaction window…) except `-32` (the app's request
//! quota is exceeded), which is retried. Zalo has no idempotency key. The access token expires
//! (about 25 hours): refreshing it with the OA's refresh token is left to whoever sets the
//! environment variable. Webhooks: `unfollow` → opt-out, `follow` → opt-in, a text reply with a
//! stop word → opt-out. Zalo's webhook signature (`X-ZEvent-Signature`) is not checked yet.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{exchange, redacted, status_error, text_of};
use super::{Outbound, SendError, Sent, WebhookEvent, opt_out};
use crate::config::Secret;

/// Zalo error codes worth trying again.
const RETRY_CODES: &[i64] = &[-32];

/// `type: zalo` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZaloConfig {
    /// The Official Account's access token.
    pub access_token: Secret,
}

pub struct ZaloChannel {
    http: reqwest::Client,
    url: String,
    access_token: Secret,
}

impl ZaloChannel {
    pub fn new(config: &ZaloConfig, base_url: &str, http: reqwest::Client) -> ZaloChannel {
        ZaloChannel {
            http,
            url: format!("{base_url}/v3.0/oa/message/cs"),
            access_token: config.access_token.clone(),
        }
    }

    pub async fn send(&self, m: &Outbound, timeout: Duration) -> Result<Sent, SendError> {
        let request = self
            .http
            .post(&self.url)
            .header("access_token", self.access_token.expose())
            .json(&json!({"recipient": {"user_id": m.to}, "message": {"text": m.body}}));
        let answer = exchange(request, timeout).await?;
        let detail = answer.body["message"].as_str().map(|d| redacted(d, m));
        if !answer.is_success() {
            return Err(status_error(answer.status, answer.retry_after, detail));
        }
        match answer.body["error"].as_i64() {
            Some(0) => Ok(Sent {
                provider_id: text_of(&answer.body["data"]["message_id"]),
                delivered: false,
            }),
            Some(code) => {
                let reason = format!("Zalo error {code}: {}", detail.unwrap_or_default());
                if RETRY_CODES.contains(&code) {
                    Err(SendError::Retry { reason, after: None })
                } else {
                    Err(SendError::Permanent { reason })
                }
            }
            None => Err(SendError::Unknown {
                reason: "Zalo answered without an error code".into(),
            }),
        }
    }

    pub fn webhook(&self, body: &[u8]) -> Result<Vec<WebhookEvent>, String> {
        let event: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        let follower = text_of(&event["follower"]["id"]);
        let found = match (event["event_name"].as_str(), follower) {
            (Some("unfollow"), Some(id)) => Some(WebhookEvent::OptOut { address: id }),
            (Some("follow"), Some(id)) => Some(WebhookEvent::OptIn { address: id }),
            (Some("user_send_text"), _) => {
                match (text_of(&event["sender"]["id"]), event["message"]["text"].as_str()) {
                    (Some(sender), Some(text)) => opt_out::event(text, &sender),
                    _ => None,
                }
            }
            _ => None,
        };
        Ok(found.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel() -> ZaloChannel {
        let config = ZaloConfig {
            access_token: Secret::new("tok"),
        };
        ZaloChannel::new(
            &config,
            "https://openapi.zalo.me",
            super::super::http::test_client(),
        )
    }

    #[test]
    fn unfollow_and_stop_replies_opt_out_follow_opts_in() {
        let c = channel();
        let unfollow = json!({"event_name": "unfollow", "follower": {"id": "2468"}, "oa_id": "1"});
        assert_eq!(
            c.webhook(unfollow.to_string().as_bytes()).unwrap(),
            vec![WebhookEvent::OptOut {
                address: "2468".into()
            }]
        );
        let follow = json!({"event_name": "follow", "follower": {"id": "2468"}});
        assert_eq!(
            c.webhook(follow.to_string().as_bytes()).unwrap(),
            vec![WebhookEvent::OptIn {
                address: "2468".into()
            }]
        );
        let reply =
            json!({"event_name": "user_send_text", "sender": {"id": "2468"}, "message": {"text": "Hủy"}});
        assert_eq!(
            c.webhook(reply.to_string().as_bytes()).unwrap(),
            vec![WebhookEvent::OptOut {
                address: "2468".into()
            }]
        );
        let chat =
            json!({"event_name": "user_send_text", "sender": {"id": "2468"}, "message": {"text": "Cảm ơn"}});
        assert_eq!(c.webhook(chat.to_string().as_bytes()).unwrap(), vec![]);
    }
}
