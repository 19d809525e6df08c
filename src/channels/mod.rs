//! Channel adapters: email (SMTP), SMS (Twilio-compatible, generic JSON webhook), messengers
//! (Telegram, Zalo OA, WhatsApp Cloud) and the `file` channel.
//!
//! An adapter turns one [`Outbound`] into one provider call and the answer into [`Sent`] or a
//! [`SendError`] that says whether trying again can help; it also reads the provider's inbound
//! webhooks into [`WebhookEvent`]s. It does not retry, choose a channel, or know patients — the
//! notification pipeline does that. Adapters never log addresses or message text: only the
//! channel name, the notification id and statuses.
//!
//! A new channel type is one file here (its settings struct and behaviour), one variant of
//! [`AdapterConfig`] and one of the adapter enum below.

mod config;
mod email;
mod file;
mod http;
mod opt_out;
mod rate_limit;
mod sms_webhook;
mod telegram;
mod twilio;
mod types;
mod whatsapp;
mod zalo;

use std::time::Duration;

pub use config::{AdapterConfig, ChannelConfig, TYPES};
pub use email::{EmailConfig, SmtpTls};
pub use file::FileChannelConfig;
pub use opt_out::{Keyword, keyword};
pub use sms_webhook::{SIGNATURE_HEADER, SmsWebhookConfig};
pub use telegram::TelegramConfig;
pub use twilio::TwilioConfig;
pub use types::*;
pub use whatsapp::{WhatsAppConfig, WhatsAppTemplate};
pub use zalo::ZaloConfig;

use rate_limit::RateLimit;

/// A built channel: its adapter, its rate limit and its timeout.
pub struct Channel {
    name: String,
    timeout: Duration,
    limit: RateLimit,
    adapter: Adapter,
}

enum Adapter {
    File(file::FileChannel),
    Email(email::EmailChannel),
    Twilio(twilio::TwilioChannel),
    SmsWebhook(sms_webhook::SmsWebhookChannel),
    Telegram(telegram::TelegramChannel),
    Zalo(zalo::ZaloChannel),
    WhatsApp(whatsapp::WhatsAppChannel),
}

impl Channel {
    /// Builds the channel `name` (the key under `channels:`) from checked settings. `http` is
    /// shared by every HTTP channel; each request gets the channel's own timeout.
    pub fn build(name: &str, config: &ChannelConfig, http: reqwest::Client) -> Result<Channel, String> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "channel name \"{name}\": use letters, digits, - and _ only"
            ));
        }
        let timeout = Duration::from_secs(config.timeout_secs.max(1));
        let base_url = || {
            config
                .base_url
                .clone()
                .ok_or_else(|| format!("channel {name}: no base_url"))
        };
        let adapter = match &config.adapter {
            AdapterConfig::File(c) => Adapter::File(file::FileChannel::new(name, c)),
            AdapterConfig::Email(c) => Adapter::Email(
                email::EmailChannel::new(c, timeout).map_err(|e| format!("channel {name}: {e}"))?,
            ),
            AdapterConfig::Twilio(c) => Adapter::Twilio(twilio::TwilioChannel::new(c, &base_url()?, http)),
            AdapterConfig::SmsWebhook(c) => Adapter::SmsWebhook(sms_webhook::SmsWebhookChannel::new(c, http)),
            AdapterConfig::Telegram(c) => {
                Adapter::Telegram(telegram::TelegramChannel::new(c, &base_url()?, http))
            }
            AdapterConfig::Zalo(c) => Adapter::Zalo(zalo::ZaloChannel::new(c, &base_url()?, http)),
            AdapterConfig::WhatsApp(c) => {
                Adapter::WhatsApp(whatsapp::WhatsAppChannel::new(c, &base_url()?, http))
            }
        };
        Ok(Channel {
            name: name.to_string(),
            timeout,
            limit: RateLimit::new(config.rate_per_sec),
            adapter,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The channel's `type:`.
    pub fn kind(&self) -> &'static str {
        match &self.adapter {
            Adapter::File(_) => "file",
            Adapter::Email(_) => "email",
            Adapter::Twilio(_) => "twilio",
            Adapter::SmsWebhook(_) => "sms_webhook",
            Adapter::Telegram(_) => "telegram",
            Adapter::Zalo(_) => "zalo",
            Adapter::WhatsApp(_) => "whatsapp",
        }
    }

    /// Which of a patient's contacts this channel sends to.
    pub fn address(&self) -> AddressKind {
        match &self.adapter {
            Adapter::File(_) => AddressKind::Any,
            Adapter::Email(_) => AddressKind::Email,
            Adapter::Twilio(_) | Adapter::SmsWebhook(_) | Adapter::WhatsApp(_) => AddressKind::Phone,
            Adapter::Telegram(_) => AddressKind::Messenger("telegram"),
            Adapter::Zalo(_) => AddressKind::Messenger("zalo"),
        }
    }

    /// Waits for the rate limit, then sends with the configured timeout.
    pub async fn send(&self, m: &Outbound) -> Result<Sent, SendError> {
        self.ready().await;
        self.send_now(m).await
    }

    /// Waits for the rate limit's turn (a worker takes it before it claims a send, so that
    /// its hold on the send covers the provider call, not the wait).
    pub async fn ready(&self) {
        self.limit.acquire().await;
    }

    /// Sends with the configured timeout, after [`Self::ready`].
    pub async fn send_now(&self, m: &Outbound) -> Result<Sent, SendError> {
        let t = self.timeout;
        let sending = async {
            match &self.adapter {
                Adapter::File(a) => a.send(m).await,
                Adapter::Email(a) => a.send(m).await,
                Adapter::Twilio(a) => a.send(m, t).await,
                Adapter::SmsWebhook(a) => a.send(m, t).await,
                Adapter::Telegram(a) => a.send(m, t).await,
                Adapter::Zalo(a) => a.send(m, t).await,
                Adapter::WhatsApp(a) => a.send(m, t).await,
            }
        };
        // The HTTP adapters time out on their own (and say whether the request went out); this
        // bound covers SMTP's several round trips and a stuck disk.
        let result = match tokio::time::timeout(t + Duration::from_secs(1), sending).await {
            Ok(result) => result,
            Err(_) => Err(SendError::Unknown {
                reason: format!("no outcome within {} s", t.as_secs()),
            }),
        };
        match &result {
            Ok(_) => {
                tracing::debug!(channel = %self.name, notification = %m.id, "The provider took the send.")
            }
            Err(e) => {
                // The summary: a provider's error text may echo the patient (see `SendError::summary`).
                tracing::warn!(channel = %self.name, notification = %m.id, error = %e.summary(), "A send failed.")
            }
        }
        result
    }

    /// Parses an inbound provider webhook (delivery receipts, STOP/START) after checking
    /// its authenticity where the provider defines one.
    pub fn webhook(&self, headers: &axum::http::HeaderMap, body: &[u8]) -> Result<Vec<WebhookEvent>, String> {
        match &self.adapter {
            Adapter::File(_) | Adapter::Email(_) => Err("this channel has no webhook".into()),
            Adapter::Twilio(a) => a.webhook(headers, body),
            Adapter::SmsWebhook(a) => a.webhook(headers, body),
            Adapter::Telegram(a) => a.webhook(headers, body),
            Adapter::Zalo(a) => a.webhook(body),
            Adapter::WhatsApp(a) => a.webhook(headers, body),
        }
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}
