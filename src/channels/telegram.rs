//! `type: telegram`: the Telegram Bot API.
//!
//! A send is `POST {base_url}/bot{token}/sendMessage` with `{"chat_id","text"}`; the answer is
//! `{"ok":true,"result":{"message_id":…}}` or `{"ok":false,"error_code":…,"description":…,
//! "parameters":{"retry_after":…}}`. The Bot API has no idempotency key: a retried send after an
//! unknown outcome may arrive twice. Webhook updates: `/stop` or a stop word → opt-out, `/start`
//! → opt-in, a user blocking the bot (`my_chat_member` → `kicked`) → opt-out.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{exchange, redacted, status_error, text_of};
use super::{Outbound, SendError, Sent, WebhookEvent, opt_out};
use crate::config::Secret;

/// `type: telegram` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The bot's token from @BotFather (`123456:ABC…`).
    pub bot_token: Secret,
    /// The `secret_token` given to `setWebhook`; when set, webhooks must carry it in
    /// `X-Telegram-Bot-Api-Secret-Token`.
    #[serde(default)]
    pub webhook_secret: Option<Secret>,
}

pub struct TelegramChannel {
    http: reqwest::Client,
    /// `{base_url}/bot{token}/sendMessage`: holds the token, never logged.
    url: String,
    webhook_secret: Option<Secret>,
}

impl TelegramChannel {
    pub fn new(config: &TelegramConfig, base_url: &str, http: reqwest::Client) -> TelegramChannel {
        TelegramChannel {
            http,
            url: format!("{base_url}/bot{}/sendMessage", config.bot_token.expose()),
            webhook_secret: config.webhook_secret.clone(),
        }
    }

    pub async fn send(&self, m: &Outbound, timeout: Duration) -> Result<Sent, SendError> {
        let request = self
            .http
            .post(&self.url)
            .json(&json!({"chat_id": m.to, "text": m.body}));
        let answer = exchange(request, timeout).await?;
        let body = &answer.body;
        if answer.is_success() && body["ok"] == true {
            return Ok(Sent {
                provider_id: text_of(&body["result"]["message_id"]),
                delivered: false,
            });
        }
        // The HTTP status is the Bot API's `error_code`; a 200 with `ok:false` falls back to it.
        let code = match body["error_code"].as_u64() {
            _ if !answer.is_success() => answer.status,
            Some(c @ 400..600) => c as u16,
            _ => 502,
        };
        let after = body["parameters"]["retry_after"]
            .as_u64()
            .map(Duration::from_secs)
            .or(answer.retry_after);
        let detail = body["description"].as_str().map(|d| redacted(d, m));
        Err(status_error(code, after, detail))
    }

    pub fn webhook(&self, headers: &axum::http::HeaderMap, body: &[u8]) -> Result<Vec<WebhookEvent>, String> {
        if let Some(secret) = &self.webhook_secret {
            let given = super::http::header(headers, "x-telegram-bot-api-secret-token").unwrap_or("");
            if !constant_time_eq(given.as_bytes(), secret.expose().as_bytes()) {
                return Err("X-Telegram-Bot-Api-Secret-Token is missing or wrong".into());
            }
        }
        let update: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        let message = &update["message"];
        if let (Some(chat), Some(text)) = (text_of(&message["chat"]["id"]), message["text"].as_str()) {
            return Ok(opt_out::event(text, &chat).into_iter().collect());
        }
        let member = &update["my_chat_member"];
        if let Some(chat) = text_of(&member["chat"]["id"]) {
            let event = match member["new_chat_member"]["status"].as_str() {
                Some("kicked") => Some(WebhookEvent::OptOut { address: chat }),
                _ => None,
            };
            return Ok(event.into_iter().collect());
        }
        Ok(Vec::new())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(secret: Option<&str>) -> TelegramChannel {
        let config = TelegramConfig {
            bot_token: Secret::new("1:T"),
            webhook_secret: secret.map(Secret::new),
        };
        TelegramChannel::new(
            &config,
            "https://api.telegram.org",
            super::super::http::test_client(),
        )
    }

    fn update(text: &str) -> String {
        json!({"update_id": 1, "message": {"message_id": 5, "chat": {"id": 4242, "type": "private"}, "text": text}})
            .to_string()
    }

    #[test]
    fn stop_and_start_commands_from_a_chat() {
        let c = channel(None);
        let read = |text: &str| c.webhook(&Default::default(), update(text).as_bytes()).unwrap();
        assert_eq!(
            read("/stop"),
            vec![WebhookEvent::OptOut {
                address: "4242".into()
            }]
        );
        assert_eq!(
            read("СТОП"),
            vec![WebhookEvent::OptOut {
                address: "4242".into()
            }]
        );
        assert_eq!(
            read("/start"),
            vec![WebhookEvent::OptIn {
                address: "4242".into()
            }]
        );
        assert_eq!(read("when is my appointment?"), vec![]);
    }

    #[test]
    fn blocking_the_bot_is_an_opt_out() {
        let body = json!({"update_id": 2, "my_chat_member": {"chat": {"id": 77}, "new_chat_member": {"status": "kicked"}}});
        let events = channel(None)
            .webhook(&Default::default(), body.to_string().as_bytes())
            .unwrap();
        assert_eq!(events, vec![WebhookEvent::OptOut { address: "77".into() }]);
    }

    #[test]
    fn the_secret_token_header_must_match_when_configured() {
        let c = channel(Some("hook-secret"));
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-telegram-bot-api-secret-token", "hook-secret".parse().unwrap());
        assert_eq!(c.webhook(&h, update("/stop").as_bytes()).unwrap().len(), 1);
        h.insert("x-telegram-bot-api-secret-token", "hook-secreT".parse().unwrap());
        assert!(c.webhook(&h, update("/stop").as_bytes()).is_err());
        assert!(
            c.webhook(&Default::default(), update("/stop").as_bytes())
                .is_err()
        );
    }
}
