//! `type: fhir_push` connector settings.

use serde::Deserialize;

use crate::config::{Document, Problem};

/// FHIR R4 resources and Bundles that systems POST to the hub's API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirPushConfig {
    /// Unique connector name, shown in the API and the message log.
    pub name: String,
    /// A disabled connector is validated but its endpoint is not served.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The path on the API server that takes the POSTs.
    #[serde(default = "default_path")]
    pub path: String,
    /// Mapping to apply to every resource; by default the one whose `resource_types` lists it.
    #[serde(default)]
    pub mapping: Option<String>,
    /// Name of the sending system in provenance and record keys; by default the connector's name.
    #[serde(default)]
    pub source_system: Option<String>,
    /// Phone region for numbers without a country code; by default the hub's `phone_region`.
    #[serde(default)]
    pub phone_region: Option<String>,
    /// IANA time zone for times written without an offset; by default the hub's `timezone`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Most resources one request may carry; a larger Bundle is refused whole (413).
    #[serde(default = "default_max_resources")]
    pub max_resources: usize,
    /// How long this connector's raw message bodies are kept; each field absent takes the
    /// hub's `retention:` value (docs/operations.md).
    #[serde(default)]
    pub retention: crate::config::RetentionPolicy,
}

fn yes() -> bool {
    true
}

fn default_path() -> String {
    "/fhir/r4".to_string()
}

fn default_max_resources() -> usize {
    10_000
}

impl FhirPushConfig {
    /// Checks what serde cannot: the path's shape, the limit.
    pub fn check(&self, doc: &Document) -> Vec<Problem> {
        let mut problems = Vec::new();
        let path_ok = self.path.starts_with('/')
            && self.path.len() > 1
            && !self.path.ends_with('/')
            && self
                .path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
            && !self.path.starts_with("/api/")
            && self.path != "/healthz";
        if !path_ok {
            problems.push(doc.problem(
                "path",
                format!(
                    "expected a path such as /fhir/r4 (letters, digits, / - _ .; not under /api/), got \"{}\"",
                    self.path
                ),
            ));
        }
        if self.max_resources == 0 {
            problems.push(doc.problem("max_resources", "must be at least 1"));
        }
        problems
    }
}
