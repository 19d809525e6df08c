//! `fhir:` in `carehub.yaml`: how carehub's names for identifier and code systems are written
//! as FHIR `system` URIs (docs/fhir-api.md#systems).

use std::collections::BTreeMap;

use serde::Deserialize;

/// How FHIR resources name systems.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirOutConfig {
    /// carehub identifier system (as mappings write it: `HOSPITAL-A`, `VN-CCCD`) → the URI a
    /// FHIR reader knows it by (`urn:oid:1.2.3.4`, `https://clinic.example/mrn`). A system
    /// not listed is written by the rule of [`FhirOutConfig::system_uri`].
    #[serde(default)]
    pub identifier_systems: BTreeMap<String, String>,
    /// Code system (as sources send it: `LN`, `I10`, a local name) → URI. Built in (and
    /// overridable here): `LN`/`LOINC` → `http://loinc.org`, `SCT`/`SNOMED` →
    /// `http://snomed.info/sct`, `I10`/`ICD10`/`ICD-10` → `http://hl7.org/fhir/sid/icd-10`,
    /// `UCUM` → `http://unitsofmeasure.org`.
    #[serde(default)]
    pub code_systems: BTreeMap<String, String>,
}

impl FhirOutConfig {
    /// The URI of an identifier system: the configured one; else the system itself when it is
    /// already a URI (`http:`, `https:`, `urn:`); `urn:oid:<oid>` for a bare OID
    /// (`2.16.840.1.113883.4.1`); otherwise `urn:carehub:id:<system>` with every character
    /// outside `A-Z a-z 0-9 - . _ ~` percent-encoded (UTF-8).
    pub fn system_uri(&self, system: &str) -> String {
        if let Some(uri) = self.identifier_systems.get(system) {
            return uri.clone();
        }
        fallback_uri("urn:carehub:id:", system)
    }

    /// The URI of a code system: the configured one, a built-in one, a URI as it is, a bare
    /// OID as `urn:oid:`, otherwise `urn:carehub:code:<system>` (encoded as above).
    pub fn code_system_uri(&self, system: &str) -> String {
        if let Some(uri) = self.code_systems.get(system) {
            return uri.clone();
        }
        let builtin = match system.to_ascii_uppercase().as_str() {
            "LN" | "LOINC" => Some("http://loinc.org"),
            "SCT" | "SNOMED" | "SNOMEDCT" | "SNOMED-CT" => Some("http://snomed.info/sct"),
            "I10" | "ICD10" | "ICD-10" => Some("http://hl7.org/fhir/sid/icd-10"),
            "UCUM" => Some("http://unitsofmeasure.org"),
            _ => None,
        };
        match builtin {
            Some(uri) => uri.to_string(),
            None => fallback_uri("urn:carehub:code:", system),
        }
    }
}

fn fallback_uri(prefix: &str, system: &str) -> String {
    let s = system.trim();
    let lower = s.to_ascii_lowercase();
    if (lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("urn:"))
        && !s.chars().any(char::is_whitespace)
    {
        return s.to_string();
    }
    let is_oid = s.contains('.')
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if is_oid {
        return format!("urn:oid:{s}");
    }
    let mut out = String::with_capacity(prefix.len() + s.len());
    out.push_str(prefix);
    if s.is_empty() {
        out.push_str("unknown");
    }
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
