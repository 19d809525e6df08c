//! `type: email`: SMTP through lettre (tokio, rustls with ring).
//!
//! Every message carries `Message-ID: <{notification id}@carehub>`, so a receiving system can
//! drop a duplicate of a retried send. Subject and body are UTF-8 (lettre encodes the subject
//! per RFC 2047 and picks quoted-printable or base64 for the body). SMTP 4xx replies and
//! connection failures are retried, 5xx replies are permanent, a timeout is unknown.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;

use super::{Outbound, SendError, Sent};
use crate::config::{Document, Problem, Secret};

/// `type: email` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server's host name.
    pub host: String,
    /// The SMTP port; by default 587 for `starttls`, 465 for `tls`, 25 for `none`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (upgrade a plain connection, required), `tls` (TLS from the first byte) or
    /// `none` (plain text: only for a relay on the same host or a test server).
    #[serde(default)]
    pub tls: SmtpTls,
    /// SMTP user name; no authentication when absent.
    #[serde(default)]
    pub username: Option<Secret>,
    /// SMTP password, with `username`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// The sender: `clinic@example.org` or `Clinic <clinic@example.org>`.
    pub from: String,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    #[default]
    Starttls,
    Tls,
    None,
}

impl EmailConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }

    pub(super) fn check(&self, doc: &Document, field: &str) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.host.trim().is_empty() {
            problems.push(doc.problem(&format!("{field}.host"), "must not be empty"));
        }
        if let Err(e) = self.from.parse::<Mailbox>() {
            let message = format!("expected an address such as \"Clinic <clinic@example.org>\" ({e})");
            problems.push(doc.problem(&format!("{field}.from"), message));
        }
        if self.username.is_some() != self.password.is_some() {
            problems.push(doc.problem(&format!("{field}.username"), "set username and password together"));
        }
        problems
    }
}

pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl EmailChannel {
    pub fn new(config: &EmailConfig, timeout: Duration) -> Result<EmailChannel, String> {
        let from: Mailbox = config.from.parse().map_err(|e| format!("from: {e}"))?;
        let builder = match config.tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host),
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host),
            SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &config.host,
            )),
        }
        .map_err(|e| format!("host: {e}"))?;
        let mut builder = builder.port(config.port()).timeout(Some(timeout));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(
                user.expose().to_string(),
                password.expose().to_string(),
            ));
        }
        Ok(EmailChannel {
            transport: builder.build(),
            from,
        })
    }

    pub async fn send(&self, m: &Outbound) -> Result<Sent, SendError> {
        let message = self.message(m)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(Sent {
                provider_id: Some(message_id(&m.id)),
                delivered: false,
            }),
            Err(e) => Err(smtp_error(&e)),
        }
    }

    fn message(&self, m: &Outbound) -> Result<Message, SendError> {
        let to: Mailbox = m.to.parse().map_err(|_| SendError::Permanent {
            reason: "the recipient is not an e-mail address".into(),
        })?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .message_id(Some(message_id(&m.id)))
            .header(ContentType::TEXT_PLAIN);
        if let Some(subject) = &m.subject {
            builder = builder.subject(subject.replace(['\r', '\n'], " "));
        }
        builder.body(m.body.clone()).map_err(|e| SendError::Permanent {
            reason: format!("the message cannot be built: {e}"),
        })
    }
}

/// `<{id}@carehub>`, with characters a Message-ID cannot hold replaced.
fn message_id(id: &str) -> String {
    let local: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !"<>@\"\\()[],;:".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("<{local}@carehub>")
}

/// SMTP reply classes: 4xx try again, 5xx never; a timeout may have been after DATA.
fn smtp_error(e: &lettre::transport::smtp::Error) -> SendError {
    let code = e.status().map(|c| c.to_string());
    let reason = match &code {
        Some(code) => format!("SMTP {code}"),
        None if e.is_timeout() => "timed out waiting for the SMTP server".into(),
        None if e.is_tls() => "TLS with the SMTP server failed".into(),
        None => "the SMTP connection failed".into(),
    };
    if e.is_permanent() {
        SendError::Permanent { reason }
    } else if e.is_transient() {
        SendError::Retry { reason, after: None }
    } else if e.is_timeout() {
        SendError::Unknown { reason }
    } else {
        SendError::Retry { reason, after: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_the_notification_id_at_carehub() {
        assert_eq!(message_id("0191f0a2-7c3e"), "<0191f0a2-7c3e@carehub>");
        assert_eq!(message_id("a b<c>@d"), "<a_b_c__d@carehub>");
    }

    #[test]
    fn the_port_follows_the_tls_mode_unless_set() {
        let config = |tls, port| EmailConfig {
            host: "smtp.example.org".into(),
            port,
            tls,
            username: None,
            password: None,
            from: "clinic@example.org".into(),
        };
        assert_eq!(config(SmtpTls::Starttls, None).port(), 587);
        assert_eq!(config(SmtpTls::Tls, None).port(), 465);
        assert_eq!(config(SmtpTls::None, Some(2525)).port(), 2525);
    }

    #[test]
    fn a_message_keeps_utf8_subject_and_body_and_its_message_id() {
        let channel = EmailChannel::new(
            &EmailConfig {
                host: "localhost".into(),
                port: Some(2525),
                tls: SmtpTls::None,
                username: None,
                password: None,
                from: "Phòng khám <clinic@example.org>".into(),
            },
            Duration::from_secs(5),
        )
        .unwrap();
        let m = Outbound {
            id: "n-42".into(),
            to: "patient@example.org".into(),
            subject: Some("Kết quả xét nghiệm".into()),
            body: "Здравствуйте! 您好".into(),
            language: "ru".into(),
        };
        let raw = String::from_utf8(channel.message(&m).unwrap().formatted()).unwrap();
        assert!(raw.contains("Message-ID: <n-42@carehub>"), "{raw}");
        assert!(
            raw.contains("Subject: =?utf-8?"),
            "the subject is RFC 2047 encoded: {raw}"
        );
        let bad = Outbound {
            to: "not an address".into(),
            ..m
        };
        assert!(matches!(channel.message(&bad), Err(SendError::Permanent { .. })));
    }
}
