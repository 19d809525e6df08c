//! Channel adapters: email (SMTP), SMS (Twilio-compatible, generic JSON webhook), messengers
//! (Telegram, Zalo OA, WhatsApp Cloud) and the `file` channel.

mod types;

pub use types::*;
