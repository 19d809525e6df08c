//! Golden mapping tests: `mappings/tests/<case>/input.hl7|input.json` with `expected.yaml`.
//!
//! A case says what a shipped mapping must make of a sample record — the person patch, or the
//! error it must give. `carehub test-mappings` and `cargo test` run every case and print a
//! readable difference for each that fails. Cases are written by us (no third-party data).
//!
//! `expected.yaml` holds either `person: {…}` (compared exactly, in the JSON shape `carehub map`
//! prints) or `error: "text the error must contain"`, and optionally `mapping: NAME` to force a
//! mapping instead of choosing it by message or resource type.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{MappingSet, TransformEnv};
use crate::config::Document;
use crate::hl7;

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    /// Empty when the case passed; otherwise one line per difference.
    pub differences: Vec<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Runs every case folder under `dir` (sorted by name) against `mappings`.
pub fn run_dir(dir: &Path, mappings: &MappingSet, env: &TransformEnv) -> std::io::Result<Vec<CaseResult>> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    if cases.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no test cases in {}", dir.display()),
        ));
    }
    Ok(cases.iter().map(|c| run_case(c, mappings, env)).collect())
}

fn run_case(dir: &Path, mappings: &MappingSet, env: &TransformEnv) -> CaseResult {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let fail = |why: String| CaseResult {
        name: name.clone(),
        differences: vec![why],
    };
    let expected_path = dir.join("expected.yaml");
    let expected = match std::fs::read_to_string(&expected_path) {
        Ok(text) => match Document::parse(&expected_path.display().to_string(), &text) {
            Ok(doc) => doc.value,
            Err(p) => return fail(p.to_string()),
        },
        Err(e) => return fail(format!("cannot read expected.yaml: {e}")),
    };
    if let Some(name) = expected.get("mapping").and_then(Value::as_str)
        && mappings.get(name).is_none()
    {
        return fail(format!(
            "expected.yaml names mapping {name}, which does not exist"
        ));
    }
    let actual = match (
        std::fs::read(dir.join("input.hl7")),
        std::fs::read(dir.join("input.json")),
    ) {
        (Ok(bytes), _) => map_hl7(&bytes, &expected, mappings, env),
        (_, Ok(bytes)) => map_fhir(&bytes, &expected, mappings, env),
        _ => return fail("no input.hl7 or input.json".into()),
    };
    let mut differences = Vec::new();
    match (&actual, expected.get("error"), expected.get("person")) {
        (Err(e), Some(Value::String(want)), _) if e.contains(want.as_str()) => {}
        (Err(e), Some(Value::String(want)), _) => {
            differences.push(format!("error: expected one containing {want:?}, got {e:?}"))
        }
        (Err(_), Some(other), _) => {
            differences.push(format!("error: must be a text to look for, got {other}"))
        }
        (Ok(_), Some(want), _) => differences.push(format!("error: expected {want}, but the record mapped")),
        (Err(e), None, _) => differences.push(format!("mapping failed: {e}")),
        (Ok(person), None, Some(want)) => diff("person", want, person, &mut differences),
        (Ok(_), None, None) => differences.push("expected.yaml has neither person: nor error:".into()),
    }
    CaseResult { name, differences }
}

fn chosen<'a>(
    expected: &Value,
    mappings: &'a MappingSet,
    by_type: Option<&'a super::Mapping>,
) -> Option<&'a super::Mapping> {
    match expected.get("mapping").and_then(Value::as_str) {
        Some(name) => mappings.get(name),
        None => by_type,
    }
}

fn map_hl7(
    bytes: &[u8],
    expected: &Value,
    mappings: &MappingSet,
    env: &TransformEnv,
) -> Result<Value, String> {
    let (text, _) = hl7::decode(bytes, hl7::Charset::Latin1).map_err(|e| e.to_string())?;
    let msg = hl7::Message::parse(&text).map_err(|e| format!("not a valid HL7 v2 message: {e}"))?;
    let by_type = msg.message_type().and_then(|t| mappings.for_message_type(&t));
    let mapping = chosen(expected, mappings, by_type).ok_or("no mapping for this message")?;
    let out = mapping.apply(&msg, env).map_err(|e| e.to_string())?;
    serde_json::to_value(out.person).map_err(|e| e.to_string())
}

fn map_fhir(
    bytes: &[u8],
    expected: &Value,
    mappings: &MappingSet,
    env: &TransformEnv,
) -> Result<Value, String> {
    let resource: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let by_type = resource["resourceType"]
        .as_str()
        .and_then(|t| mappings.for_resource_type(t));
    let mapping = chosen(expected, mappings, by_type).ok_or("no mapping for this resource")?;
    let out = mapping.apply_fhir(&resource, env).map_err(|e| e.to_string())?;
    serde_json::to_value(out.person).map_err(|e| e.to_string())
}

/// Every difference between two JSON values, as `path: expected X, got Y` lines.
fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                diff(&format!("{path}.{k}"), wv, g.get(k).unwrap_or(&Value::Null), out);
            }
            for k in g.keys().filter(|k| !w.contains_key(*k)) {
                out.push(format!("{path}.{k}: not expected, got {}", g[k]));
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            for i in 0..w.len().max(g.len()) {
                diff(
                    &format!("{path}.{i}"),
                    w.get(i).unwrap_or(&Value::Null),
                    g.get(i).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (w, g) if w == g => {}
        (w, g) => out.push(format!("{path}: expected {w}, got {g}")),
    }
}

#[cfg(test)]
mod tests {
    use super::diff;
    use serde_json::json;

    #[test]
    fn differences_are_listed_by_path() {
        let mut out = Vec::new();
        diff(
            "person",
            &json!({"sex": "female", "names": [{"family": "Le"}]}),
            &json!({"sex": "male", "names": [{"family": "Le"}, {"family": "Ly"}], "language": "vi"}),
            &mut out,
        );
        out.sort();
        assert_eq!(
            out,
            vec![
                "person.language: not expected, got \"vi\"",
                "person.names.1: expected null, got {\"family\":\"Ly\"}",
                "person.sex: expected \"female\", got \"male\"",
            ]
        );
    }
}
