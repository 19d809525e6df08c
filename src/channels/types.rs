//! What a channel adapter is handed and what it answers. Adapters know providers, not patients:
//! they get an address and a rendered text, never a profile.

use std::time::Duration;

use serde::Serialize;

/// One send, exactly as queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// The notification's id: the idempotency key every provider call carries.
    pub id: String,
    /// Where to: an e-mail address, an E.164 phone number, a messenger chat or user id.
    pub to: String,
    /// E-mail subject (other channels ignore it).
    pub subject: Option<String>,
    pub body: String,
    /// BCP 47 language of the text (`vi`, `ru`, `zh`, `en`).
    pub language: String,
}

/// What the provider said when it took a send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sent {
    /// The provider's id for the message, when it gives one (Twilio SID, Telegram message id…).
    pub provider_id: Option<String>,
    /// True when taking it is delivering it (the `file` channel); otherwise `sent`, and a
    /// delivery receipt may follow through a webhook.
    pub delivered: bool,
}

/// Why a send did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again (connect error, timeout before the request was written, 429, 5xx);
    /// `after` is the provider's `Retry-After` when it sent one.
    #[error("temporary failure: {reason}")]
    Retry { reason: String, after: Option<Duration> },
    /// Will never work as is (bad address, 4xx other than 429, rejected credentials): try the
    /// next channel of the rule, or fail.
    #[error("permanent failure: {reason}")]
    Permanent { reason: String },
    /// The request may or may not have reached the provider (a timeout after sending). Retried
    /// with the same idempotency key.
    #[error("outcome unknown: {reason}")]
    Unknown { reason: String },
}

impl SendError {
    /// The failure for a log line: its kind and the hub's own words, without the provider's
    /// error text that follows the first `": "` (`HTTP 400: …`, `Zalo error 12: …`) — a
    /// provider may echo the number in another format or part of the message, which
    /// `redacted` cannot know. The whole (redacted) reason stays in the delivery record.
    pub fn summary(&self) -> String {
        let (kind, reason) = match self {
            SendError::Retry { reason, .. } => ("temporary failure", reason),
            SendError::Permanent { reason } => ("permanent failure", reason),
            SendError::Unknown { reason } => ("outcome unknown", reason),
        };
        let head = reason.split(": ").next().unwrap_or_default();
        format!("{kind}: {head}")
    }
}

/// Which contact of a patient a channel sends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    /// The profile's e-mail.
    Email,
    /// The profile's phone, E.164 (`+84901234567`).
    Phone,
    /// A messenger id recorded for the patient under this channel kind (`telegram`, `zalo`).
    Messenger(&'static str),
    /// The `file` channel: any contact, or none (it writes a file).
    Any,
}

/// What an inbound provider webhook told us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WebhookEvent {
    /// A delivery receipt: `status` is `delivered` or `failed`.
    Status {
        provider_id: String,
        status: String,
        detail: Option<String>,
    },
    /// The person behind `address` asked to stop (STOP, UNSUBSCRIBE, /stop, ДОВОЛЬНО…).
    OptOut { address: String },
    /// The person asked to receive again (START, UNSTOP).
    OptIn { address: String },
}

#[cfg(test)]
mod tests {
    use super::SendError;

    #[test]
    fn a_summary_leaves_out_what_the_provider_said() {
        let e = SendError::Permanent {
            reason: "HTTP 400: cannot deliver to 0912 345 678 (Nguyễn Thị Hằng)".into(),
        };
        assert_eq!(e.summary(), "permanent failure: HTTP 400");
        let e = SendError::Retry {
            reason: "connection failed".into(),
            after: None,
        };
        assert_eq!(e.summary(), "temporary failure: connection failed");
    }
}
