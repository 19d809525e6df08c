//! Sources: where records come in. One folder per connector type (`mllp`, `file`), each with
//! its `config.rs` and its behaviour.
//!
//! A source receives or reads raw bytes and hands them to the pipeline (`crate::pipeline`),
//! which stores, maps and applies them; a source never talks to the store itself. A new
//! connector type is one folder here and one variant of [`ConnectorConfig`].

pub mod fhir;
pub mod fhir_push;
pub mod file;
pub mod mllp;

use serde_json::Value;

use crate::config::{Document, Problem, deserialize_value};

pub use fhir::FhirConfig;
pub use fhir_push::FhirPushConfig;
pub use file::FileConfig;
pub use mllp::MllpConfig;

/// Connector types, as written in `type:`.
pub const TYPES: &[&str] = &["mllp", "file", "fhir", "fhir_push"];

/// One connector file, typed.
#[derive(Debug, Clone)]
pub enum ConnectorConfig {
    Mllp(MllpConfig),
    File(FileConfig),
    Fhir(FhirConfig),
    FhirPush(FhirPushConfig),
}

impl ConnectorConfig {
    /// Reads a connector document: `type` picks the variant, then the rest is checked.
    pub fn from_document(doc: &Document) -> Result<ConnectorConfig, Vec<Problem>> {
        let Some(map) = doc.value.as_object() else {
            return Err(vec![
                doc.problem("", "a connector file must be a YAML mapping of keys"),
            ]);
        };
        let kind = match map.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(other) => {
                return Err(vec![doc.problem(
                    "type",
                    format!("expected one of {}, got {other}", TYPES.join(", ")),
                )]);
            }
            None => {
                return Err(vec![
                    doc.problem("", format!("type: missing (one of {})", TYPES.join(", "))),
                ]);
            }
        };
        let mut rest = map.clone();
        rest.remove("type");
        let rest = Value::Object(rest);
        let (config, problems) = match kind.as_str() {
            "mllp" => {
                let (c, mut p) = deserialize_value::<MllpConfig>(doc, &rest, "");
                if let Some(c) = &c {
                    p.extend(c.check(doc));
                }
                (c.map(ConnectorConfig::Mllp), p)
            }
            "file" => {
                let (c, mut p) = deserialize_value::<FileConfig>(doc, &rest, "");
                if let Some(c) = &c {
                    p.extend(c.check(doc));
                }
                (c.map(ConnectorConfig::File), p)
            }
            "fhir" => {
                let (c, mut p) = deserialize_value::<FhirConfig>(doc, &rest, "");
                if let Some(c) = &c {
                    p.extend(c.check(doc));
                }
                (c.map(ConnectorConfig::Fhir), p)
            }
            "fhir_push" => {
                let (c, mut p) = deserialize_value::<FhirPushConfig>(doc, &rest, "");
                if let Some(c) = &c {
                    p.extend(c.check(doc));
                }
                (c.map(ConnectorConfig::FhirPush), p)
            }
            other => {
                return Err(vec![doc.problem(
                    "type",
                    format!(
                        "unknown connector type \"{other}\" (expected one of {})",
                        TYPES.join(", ")
                    ),
                )]);
            }
        };
        let mut problems = problems;
        if let Some(c) = &config {
            let name = c.name();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                problems.push(doc.problem("name", "use letters, digits, - and _ only"));
            }
            if let Some(region) = c.phone_region()
                && !crate::config::is_region(region)
            {
                problems.push(doc.problem(
                    "phone_region",
                    format!("expected a two-letter region such as VN, got \"{region}\""),
                ));
            }
            if let Some(tz) = c.timezone()
                && jiff::tz::TimeZone::get(tz).is_err()
            {
                problems.push(doc.problem(
                    "timezone",
                    format!("unknown time zone \"{tz}\" (use an IANA name such as Asia/Ho_Chi_Minh)"),
                ));
            }
            problems.extend(c.retention().check(doc, "retention"));
            if crate::hl7::Charset::from_hl7(c.default_charset()).is_none() {
                problems.push(doc.problem(
                    "default_charset",
                    format!("unknown character set \"{}\" (use an HL7 table 0211 name such as 8859/1 or UNICODE UTF-8)", c.default_charset()),
                ));
            }
        }
        match config {
            Some(c) if problems.is_empty() => Ok(c),
            _ => Err(problems),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            ConnectorConfig::Mllp(c) => &c.name,
            ConnectorConfig::File(c) => &c.name,
            ConnectorConfig::Fhir(c) => &c.name,
            ConnectorConfig::FhirPush(c) => &c.name,
        }
    }

    /// The connector's own `retention:` (each absent field takes the hub's).
    pub fn retention(&self) -> &crate::config::RetentionPolicy {
        match self {
            ConnectorConfig::Mllp(c) => &c.retention,
            ConnectorConfig::File(c) => &c.retention,
            ConnectorConfig::Fhir(c) => &c.retention,
            ConnectorConfig::FhirPush(c) => &c.retention,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorConfig::Mllp(_) => "mllp",
            ConnectorConfig::File(_) => "file",
            ConnectorConfig::Fhir(_) => "fhir",
            ConnectorConfig::FhirPush(_) => "fhir_push",
        }
    }

    pub fn enabled(&self) -> bool {
        match self {
            ConnectorConfig::Mllp(c) => c.enabled,
            ConnectorConfig::File(c) => c.enabled,
            ConnectorConfig::Fhir(c) => c.enabled,
            ConnectorConfig::FhirPush(c) => c.enabled,
        }
    }

    pub fn mapping(&self) -> Option<&str> {
        match self {
            ConnectorConfig::Mllp(c) => c.mapping.as_deref(),
            ConnectorConfig::File(c) => c.mapping.as_deref(),
            ConnectorConfig::Fhir(c) => c.mapping.as_deref(),
            ConnectorConfig::FhirPush(c) => c.mapping.as_deref(),
        }
    }

    pub fn source_system(&self) -> Option<&str> {
        match self {
            ConnectorConfig::Mllp(c) => c.source_system.as_deref(),
            ConnectorConfig::File(c) => c.source_system.as_deref(),
            // FHIR has no MSH: the connector names the sender.
            ConnectorConfig::Fhir(c) => Some(c.source_system.as_deref().unwrap_or(&c.name)),
            ConnectorConfig::FhirPush(c) => Some(c.source_system.as_deref().unwrap_or(&c.name)),
        }
    }

    pub fn phone_region(&self) -> Option<&str> {
        match self {
            ConnectorConfig::Mllp(c) => c.phone_region.as_deref(),
            ConnectorConfig::File(c) => c.phone_region.as_deref(),
            ConnectorConfig::Fhir(c) => c.phone_region.as_deref(),
            ConnectorConfig::FhirPush(c) => c.phone_region.as_deref(),
        }
    }

    pub fn timezone(&self) -> Option<&str> {
        match self {
            ConnectorConfig::Mllp(c) => c.timezone.as_deref(),
            ConnectorConfig::File(c) => c.timezone.as_deref(),
            ConnectorConfig::Fhir(c) => c.timezone.as_deref(),
            ConnectorConfig::FhirPush(c) => c.timezone.as_deref(),
        }
    }

    pub fn default_charset(&self) -> &str {
        match self {
            ConnectorConfig::Mllp(c) => &c.default_charset,
            ConnectorConfig::File(c) => &c.default_charset,
            ConnectorConfig::Fhir(_) => "UNICODE UTF-8",
            ConnectorConfig::FhirPush(_) => "UNICODE UTF-8",
        }
    }
}
