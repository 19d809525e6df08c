//! Channel settings: one entry of the `channels:` map of `config/carehub.yaml`, chosen by
//! `type:`. This is the pure pass — it reads and checks, it opens nothing (see `Channel::build`).
//!
//! Keys every type shares (`enabled`, `timeout_secs`, `rate_per_sec`, and `base_url` for the
//! HTTP providers) are read apart from the type's own keys, so each type's struct holds only what
//! is particular to it; both are `deny_unknown_fields`.

use serde::Deserialize;
use serde_json::Value;

use crate::config::{Document, Problem, deserialize_value};

use super::email::EmailConfig;
use super::file::FileChannelConfig;
use super::sms_webhook::SmsWebhookConfig;
use super::telegram::TelegramConfig;
use super::twilio::TwilioConfig;
use super::whatsapp::WhatsAppConfig;
use super::zalo::ZaloConfig;

/// Channel types, as written in `type:`.
pub const TYPES: &[&str] = &[
    "file",
    "email",
    "twilio",
    "sms_webhook",
    "telegram",
    "zalo",
    "whatsapp",
];

/// One channel, checked: the shared keys resolved to their values, and the type's own keys.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// A disabled channel is validated but not built.
    pub enabled: bool,
    /// How long one send may take, connection included.
    pub timeout_secs: u64,
    /// Sends per second (a token bucket holding one second's worth, at least one send).
    pub rate_per_sec: f64,
    /// The provider's endpoint: the configured `base_url` or the provider's real one; `None` for
    /// types without one (`file`, `email`, `sms_webhook`, which has its own `url`).
    pub base_url: Option<String>,
    pub adapter: AdapterConfig,
}

/// The closed set of channel types.
#[derive(Debug, Clone)]
pub enum AdapterConfig {
    File(FileChannelConfig),
    Email(EmailConfig),
    Twilio(TwilioConfig),
    SmsWebhook(SmsWebhookConfig),
    Telegram(TelegramConfig),
    Zalo(ZaloConfig),
    WhatsApp(WhatsAppConfig),
}

/// The keys every channel type shares.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedKeys {
    /// A disabled channel is validated but not built.
    #[serde(default = "yes")]
    enabled: bool,
    /// How long one send may take, connection included.
    #[serde(default = "default_timeout_secs")]
    timeout_secs: u64,
    /// Sends per second; by default the provider's usual limit (see `default_rate_per_sec`).
    #[serde(default)]
    rate_per_sec: Option<f64>,
    /// The provider's endpoint, for tests and self-hosted gateways; HTTP providers only.
    #[serde(default)]
    base_url: Option<String>,
}

const SHARED: &[&str] = &["enabled", "timeout_secs", "rate_per_sec", "base_url"];

fn yes() -> bool {
    true
}
fn default_timeout_secs() -> u64 {
    10
}

/// Sends per second when `rate_per_sec` is not set: roughly what each provider allows a new
/// account (Twilio: one per second per long-code number; Telegram: 30 per second per bot).
fn default_rate_per_sec(kind: &str) -> f64 {
    match kind {
        "file" => 100.0,
        "email" => 5.0,
        "twilio" => 1.0,
        "sms_webhook" => 5.0,
        "telegram" => 25.0,
        "zalo" => 10.0,
        "whatsapp" => 20.0,
        _ => 1.0,
    }
}

/// The provider's real endpoint, for types that have one.
fn default_base_url(kind: &str) -> Option<&'static str> {
    match kind {
        "twilio" => Some("https://api.twilio.com"),
        "telegram" => Some("https://api.telegram.org"),
        "zalo" => Some("https://openapi.zalo.me"),
        "whatsapp" => Some("https://graph.facebook.com"),
        _ => None,
    }
}

impl ChannelConfig {
    /// Reads one channel entry found at `field` (`channels.sms`) of `doc`: `type` picks the
    /// struct, then every problem found is returned, each with its line.
    pub fn from_value(doc: &Document, value: &Value, field: &str) -> (Option<ChannelConfig>, Vec<Problem>) {
        let at = |key: &str| format!("{field}.{key}");
        let Some(map) = value.as_object() else {
            return (
                None,
                vec![doc.problem(field, "a channel must be a mapping of keys")],
            );
        };
        let kind = match map.get("type") {
            Some(Value::String(t)) if TYPES.contains(&t.as_str()) => t.clone(),
            Some(Value::String(t)) => {
                let message = format!(
                    "unknown channel type \"{t}\" (expected one of {})",
                    TYPES.join(", ")
                );
                return (None, vec![doc.problem(&at("type"), message)]);
            }
            Some(other) => {
                let message = format!("expected one of {}, got {other}", TYPES.join(", "));
                return (None, vec![doc.problem(&at("type"), message)]);
            }
            None => {
                let message = format!("type: missing (one of {})", TYPES.join(", "));
                return (None, vec![doc.problem(field, message)]);
            }
        };

        let (mut shared, mut own) = (serde_json::Map::new(), serde_json::Map::new());
        for (k, v) in map.iter().filter(|(k, _)| *k != "type") {
            let side = if SHARED.contains(&k.as_str()) {
                &mut shared
            } else {
                &mut own
            };
            side.insert(k.clone(), v.clone());
        }
        let (keys, mut problems) = deserialize_value::<SharedKeys>(doc, &Value::Object(shared), field);
        let own = Value::Object(own);
        let adapter = match kind.as_str() {
            "file" => read(doc, &own, field, &mut problems, AdapterConfig::File),
            "email" => read(doc, &own, field, &mut problems, AdapterConfig::Email),
            "twilio" => read(doc, &own, field, &mut problems, AdapterConfig::Twilio),
            "sms_webhook" => read(doc, &own, field, &mut problems, AdapterConfig::SmsWebhook),
            "telegram" => read(doc, &own, field, &mut problems, AdapterConfig::Telegram),
            "zalo" => read(doc, &own, field, &mut problems, AdapterConfig::Zalo),
            _ => read(doc, &own, field, &mut problems, AdapterConfig::WhatsApp),
        };
        let (Some(keys), Some(adapter)) = (keys, adapter) else {
            return (None, problems);
        };

        if keys.timeout_secs == 0 {
            problems.push(doc.problem(&at("timeout_secs"), "must be at least 1"));
        }
        let rate_per_sec = keys.rate_per_sec.unwrap_or_else(|| default_rate_per_sec(&kind));
        if !(rate_per_sec.is_finite() && rate_per_sec > 0.0) {
            problems.push(doc.problem(&at("rate_per_sec"), "must be a number above 0"));
        }
        let base_url = match (keys.base_url, default_base_url(&kind)) {
            (Some(_), None) => {
                let message = format!("{kind} channels have no base_url");
                problems.push(doc.problem(&at("base_url"), message));
                None
            }
            (Some(url), Some(_)) => {
                if let Some(p) = check_http_url(&url) {
                    problems.push(doc.problem(&at("base_url"), p));
                }
                Some(url.trim_end_matches('/').to_string())
            }
            (None, default) => default.map(str::to_string),
        };
        problems.extend(adapter.check(doc, field));
        let config = ChannelConfig {
            enabled: keys.enabled,
            timeout_secs: keys.timeout_secs,
            rate_per_sec,
            base_url,
            adapter,
        };
        (Some(config), problems)
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The `type:` it was read from.
    pub fn kind(&self) -> &'static str {
        match &self.adapter {
            AdapterConfig::File(_) => "file",
            AdapterConfig::Email(_) => "email",
            AdapterConfig::Twilio(_) => "twilio",
            AdapterConfig::SmsWebhook(_) => "sms_webhook",
            AdapterConfig::Telegram(_) => "telegram",
            AdapterConfig::Zalo(_) => "zalo",
            AdapterConfig::WhatsApp(_) => "whatsapp",
        }
    }
}

impl AdapterConfig {
    /// Checks beyond types: values that parse but cannot work.
    fn check(&self, doc: &Document, field: &str) -> Vec<Problem> {
        match self {
            AdapterConfig::Email(c) => c.check(doc, field),
            AdapterConfig::Twilio(c) => c.check(doc, field),
            AdapterConfig::SmsWebhook(c) => c.check(doc, field),
            AdapterConfig::WhatsApp(c) => c.check(doc, field),
            AdapterConfig::File(_) | AdapterConfig::Telegram(_) | AdapterConfig::Zalo(_) => Vec::new(),
        }
    }
}

/// Deserializes a type's own keys into `T` and wraps it in its variant.
fn read<T: serde::de::DeserializeOwned>(
    doc: &Document,
    own: &Value,
    field: &str,
    problems: &mut Vec<Problem>,
    variant: fn(T) -> AdapterConfig,
) -> Option<AdapterConfig> {
    let (config, found) = deserialize_value::<T>(doc, own, field);
    problems.extend(found);
    config.map(variant)
}

/// Why `url` cannot be an HTTP endpoint, if it cannot.
pub(super) fn check_http_url(url: &str) -> Option<String> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => None,
        Ok(_) => Some(format!("expected an http:// or https:// URL, got \"{url}\"")),
        Err(e) => Some(format!("not a URL ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `channels.<name>` of a YAML text.
    fn channel(yaml: &str, name: &str) -> (Option<ChannelConfig>, Vec<String>) {
        let doc = Document::parse("config/carehub.yaml", yaml).expect("valid YAML");
        let value = doc.value["channels"][name].clone();
        let (config, problems) = ChannelConfig::from_value(&doc, &value, &format!("channels.{name}"));
        (config, problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_twilio_channel_reads_with_provider_defaults() {
        let yaml = "channels:\n  sms:\n    type: twilio\n    account_sid: AC123\n    auth_token: tok\n    from: \"+15005550006\"\n";
        let (config, problems) = channel(yaml, "sms");
        assert_eq!(problems, Vec::<String>::new());
        let config = config.expect("a config");
        assert_eq!(config.kind(), "twilio");
        assert!(config.enabled());
        assert_eq!(config.timeout_secs, 10);
        assert_eq!(config.rate_per_sec, 1.0);
        assert_eq!(config.base_url.as_deref(), Some("https://api.twilio.com"));
    }

    #[test]
    fn an_unknown_key_is_reported_with_its_line_and_path() {
        let yaml = "channels:\n  sms:\n    type: twilio\n    account_sid: AC123\n    auth_token: tok\n    from: \"+1500\"\n    acount_sid: typo\n";
        let (config, problems) = channel(yaml, "sms");
        assert!(config.is_none());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("config/carehub.yaml:7: channels.sms.acount_sid: unknown key"),
            "{problems:?}"
        );
    }

    #[test]
    fn an_unknown_shared_key_is_reported_too() {
        let yaml = "channels:\n  out:\n    type: file\n    timeout_sec: 3\n";
        let (_, problems) = channel(yaml, "out");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("config/carehub.yaml:4: channels.out.timeout_sec: unknown key")),
            "{problems:?}"
        );
    }

    #[test]
    fn an_unknown_type_lists_the_types() {
        let yaml = "channels:\n  sms:\n    type: twillio\n";
        let (config, problems) = channel(yaml, "sms");
        assert!(config.is_none());
        assert_eq!(
            problems,
            vec![
                "config/carehub.yaml:3: channels.sms.type: unknown channel type \"twillio\" (expected one of \
                 file, email, twilio, sms_webhook, telegram, zalo, whatsapp)"
                    .to_string()
            ]
        );
    }

    #[test]
    fn a_missing_type_and_a_missing_required_key_are_problems() {
        let (_, problems) = channel("channels:\n  sms:\n    account_sid: AC1\n", "sms");
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("channels.sms: type: missing (one of file, email"),
            "{problems:?}"
        );

        let (config, problems) = channel("channels:\n  tg:\n    type: telegram\n", "tg");
        assert!(config.is_none());
        assert!(
            problems
                .iter()
                .any(|p| p.contains("channels.tg: missing field `bot_token`")),
            "{problems:?}"
        );
    }

    #[test]
    fn values_that_cannot_work_are_all_reported() {
        let yaml = "channels:\n  sms:\n    type: twilio\n    account_sid: AC1\n    auth_token: t\n    \
                    timeout_secs: 0\n    rate_per_sec: 0\n    base_url: ftp://x\n";
        let (_, problems) = channel(yaml, "sms");
        let joined = problems.join("\n");
        assert!(
            joined.contains("channels.sms.timeout_secs: must be at least 1"),
            "{joined}"
        );
        assert!(
            joined.contains("channels.sms.rate_per_sec: must be a number above 0"),
            "{joined}"
        );
        assert!(
            joined.contains("channels.sms.base_url: expected an http:// or https:// URL"),
            "{joined}"
        );
        assert!(
            joined.contains("channels.sms.from: set from or messaging_service_sid"),
            "{joined}"
        );
    }

    #[test]
    fn base_url_is_refused_where_there_is_no_provider_endpoint() {
        let (_, problems) = channel(
            "channels:\n  out:\n    type: file\n    base_url: http://x\n",
            "out",
        );
        assert_eq!(
            problems,
            vec!["config/carehub.yaml:4: channels.out.base_url: file channels have no base_url".to_string()]
        );
    }

    #[test]
    fn an_email_from_address_must_parse() {
        let yaml =
            "channels:\n  mail:\n    type: email\n    host: smtp.example.org\n    from: not an address\n";
        let (_, problems) = channel(yaml, "mail");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("config/carehub.yaml:5: channels.mail.from:")),
            "{problems:?}"
        );
    }
}
