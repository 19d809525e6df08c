//! `type: mllp` connector settings.

use serde::Deserialize;

use crate::config::{Document, Problem};
use crate::net::{AllowList, TlsConfig};

/// An HL7 v2 listener speaking MLLP over TCP.
#[derive(Debug, Clone, Deserialize)]
pub struct MllpConfig {
    /// Unique connector name, shown in the API and the message log.
    pub name: String,
    /// A disabled connector is validated but not started.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Address and port to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Mapping to apply; by default the one whose `message_types` lists the message's type.
    #[serde(default)]
    pub mapping: Option<String>,
    /// Name of the sending system in provenance; by default MSH-3^MSH-4 of each message.
    #[serde(default)]
    pub source_system: Option<String>,
    /// Phone region for numbers without a country code; by default the hub's `phone_region`.
    #[serde(default)]
    pub phone_region: Option<String>,
    /// IANA time zone for times written without an offset; by default the hub's `timezone`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Character set assumed when MSH-18 is empty and the bytes are not UTF-8 (HL7 table 0211).
    #[serde(default = "default_charset")]
    pub default_charset: String,
    /// A frame larger than this is refused with AR and skipped.
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: usize,
    /// A connection silent this long is closed.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Connections open at once. At the cap a newcomer is still accepted and the connection
    /// idle the longest (not inside a frame, not awaiting its ACK) is closed; the newcomer is
    /// refused only when none is idle.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections open at once from one peer IP address, with the same rule as
    /// `max_connections`: that peer's longest-idle connection makes room, if it has one.
    #[serde(default = "default_max_connections_per_peer")]
    pub max_connections_per_peer: usize,
    /// A connection that has not sent a whole first frame this long after it was accepted
    /// (TLS handshake included) is closed.
    #[serde(default = "default_first_frame_timeout_secs")]
    pub first_frame_timeout_secs: u64,
    /// Peer addresses or CIDR networks allowed to connect (`10.0.0.0/8`, `192.168.1.5`);
    /// empty lets anyone connect. Others are closed before anything is read.
    #[serde(default)]
    pub allow_from: Vec<String>,
    /// MLLP over TLS, with optional client certificates (docs/hl7.md).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// How long this connector's raw message bodies are kept; each field absent takes the
    /// hub's `retention:` value (docs/operations.md).
    #[serde(default)]
    pub retention: crate::config::RetentionPolicy,
}

fn yes() -> bool {
    true
}
fn default_listen() -> String {
    "127.0.0.1:2575".into()
}
pub(crate) fn default_charset() -> String {
    "8859/1".into()
}
fn default_max_frame_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_idle_timeout_secs() -> u64 {
    300
}
fn default_max_connections() -> usize {
    64
}
fn default_max_connections_per_peer() -> usize {
    32
}
fn default_first_frame_timeout_secs() -> u64 {
    10
}

impl MllpConfig {
    pub fn check(&self, doc: &Document) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(doc.problem(
                "listen",
                format!(
                    "expected HOST:PORT such as 127.0.0.1:2575, got \"{}\"",
                    self.listen
                ),
            ));
        }
        if self.max_frame_bytes < 1024 {
            problems.push(doc.problem("max_frame_bytes", "must be at least 1024"));
        }
        if self.max_connections == 0 {
            problems.push(doc.problem("max_connections", "must be at least 1"));
        }
        if self.idle_timeout_secs == 0 {
            problems.push(doc.problem("idle_timeout_secs", "must be at least 1"));
        }
        if self.max_connections_per_peer == 0 {
            problems.push(doc.problem("max_connections_per_peer", "must be at least 1"));
        }
        if self.first_frame_timeout_secs == 0 {
            problems.push(doc.problem("first_frame_timeout_secs", "must be at least 1"));
        }
        problems.extend(AllowList::check(&self.allow_from, doc, "allow_from"));
        if let Some(tls) = &self.tls {
            problems.extend(tls.check(doc, "tls"));
        }
        problems
    }
}
