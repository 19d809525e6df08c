//! Golden mapping tests: `mappings/tests/<case>/input.hl7|input.json` with `expected.yaml`.
//!
//! A case says what a shipped mapping must make of a sample record — its outputs, or the error
//! it must give. `carehub test-mappings` and `cargo test` run every case and print a readable
//! difference for each that fails. Cases are written by us (no third-party data).
//!
//! `expected.yaml` holds the outputs (`person`, `encounters`, `appointments`, `orders`,
//! `results`, `diagnoses`, `merge`, in the JSON shape `carehub map` prints; every output is
//! compared exactly, so one the case does not list must come out empty; `warnings` only when
//! listed), or, for a FHIR Bundle, `entries: [{…outputs…}, …]` in document order; or
//! `error: "text the error must contain"`. `mapping: NAME` forces a mapping instead of choosing
//! it by message or resource type.

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
    match (&actual, expected.get("error")) {
        (Err(e), Some(Value::String(want))) if e.contains(want.as_str()) => {}
        (Err(e), Some(Value::String(want))) => {
            differences.push(format!("error: expected one containing {want:?}, got {e:?}"))
        }
        (Err(_), Some(other)) => differences.push(format!("error: must be a text to look for, got {other}")),
        (Ok(_), Some(want)) => differences.push(format!("error: expected {want}, but the record mapped")),
        (Err(e), None) => differences.push(format!("mapping failed: {e}")),
        (Ok(got), None) => {
            if !OUTPUTS.iter().any(|k| expected.get(*k).is_some()) {
                differences.push(format!(
                    "expected.yaml has none of {} nor error:",
                    OUTPUTS.join(", ")
                ));
            }
            compare_outputs("", &expected, got, &mut differences);
        }
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

/// What `expected.yaml` may list.
const OUTPUTS: &[&str] = &[
    "person",
    "encounters",
    "appointments",
    "orders",
    "results",
    "diagnoses",
    "merge",
    "entries",
];

/// Every output exactly; warnings only when the case lists them; Bundle entries one by one.
fn compare_outputs(at: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    for key in OUTPUTS
        .iter()
        .copied()
        .chain(want.get("warnings").map(|_| "warnings"))
    {
        let (w, g) = (
            want.get(key).unwrap_or(&Value::Null),
            got.get(key).unwrap_or(&Value::Null),
        );
        match (key, w, g) {
            ("entries", Value::Array(ws), Value::Array(gs)) => {
                if ws.len() != gs.len() {
                    out.push(format!(
                        "{at}entries: expected {} entries, got {}",
                        ws.len(),
                        gs.len()
                    ));
                }
                for (i, (w, g)) in ws.iter().zip(gs).enumerate() {
                    compare_outputs(&format!("{at}entries.{i}."), w, g, out);
                }
            }
            _ => diff(&format!("{at}{key}"), w, g, out),
        }
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
    Ok(out.to_json())
}

fn map_fhir(
    bytes: &[u8],
    expected: &Value,
    mappings: &MappingSet,
    env: &TransformEnv,
) -> Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let (entries, single) = super::fhir_entries(text)?;
    let forced = match expected.get("mapping").and_then(Value::as_str) {
        Some(name) => Some(mappings.get(name).ok_or("no such mapping")?),
        None => None,
    };
    let mapped = super::map_entries(&entries, mappings, forced, env);
    if single {
        let m = mapped.into_iter().next().ok_or("no mapping for this resource")?;
        return m.result.map(|o| o.to_json()).map_err(|e| e.to_string());
    }
    let mut out = Vec::new();
    for m in mapped {
        let mut v = m
            .result
            .map(|o| o.to_json())
            .map_err(|e| format!("entry {}: {e}", m.index + 1))?;
        v["resource_type"] = entries[m.index].resource["resourceType"].clone();
        out.push(v);
    }
    Ok(serde_json::json!({ "entries": out }))
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
