//! `carehub map`: a message or FHIR document mapped and printed, the store untouched.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use super::print_problems;
use crate::config::{self, Document};
use crate::hl7;
use crate::mapping::{self, MappingSet};

pub(super) fn map_command(
    mapping_file: Option<&Path>,
    config_path: &Path,
    input: &Path,
) -> anyhow::Result<ExitCode> {
    let (mappings, hub) = match mapping_file {
        Some(file) => {
            let shown = file.display().to_string();
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {shown}"))?;
            let compiled = Document::parse(&shown, &text)
                .map_err(|p| vec![p])
                .and_then(|d| mapping::compile(&d));
            let settings = config::load(config_path).ok();
            // The file may take its person output from a configured mapping (`person: {from:}`).
            let configured = settings.as_ref().map(|s| s.mappings.clone()).unwrap_or_default();
            match compiled.and_then(|m| configured.with_mapping(m)) {
                Ok(set) => (set, settings.map(|s| s.hub)),
                Err(problems) => return Ok(print_problems(&problems)),
            }
        }
        None => match config::load(config_path) {
            Ok(s) => (s.mappings, Some(s.hub)),
            Err(problems) => return Ok(print_problems(&problems)),
        },
    };
    let hub = hub.unwrap_or_default();
    let env = mapping::TransformEnv {
        phone_region: hub.phone_region.to_uppercase(),
        timezone: jiff::tz::TimeZone::get(&hub.timezone).unwrap_or(jiff::tz::TimeZone::UTC),
        connector: None,
    };
    let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let mut results = Vec::new();
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let failed = if matches!(first, Some(b'{') | Some(b'[')) {
        map_fhir(
            &bytes,
            input,
            mapping_file.is_some(),
            &mappings,
            &env,
            &mut results,
        )?
    } else {
        map_hl7(
            &bytes,
            input,
            mapping_file.is_some(),
            &mappings,
            &env,
            &mut results,
        )?
    };
    let out = if results.len() == 1 {
        results.remove(0)
    } else {
        serde_json::Value::Array(results)
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Maps each message of an HL7 v2 file; true when one failed.
fn map_hl7(
    bytes: &[u8],
    input: &Path,
    fixed: bool,
    mappings: &MappingSet,
    env: &mapping::TransformEnv,
    results: &mut Vec<serde_json::Value>,
) -> anyhow::Result<bool> {
    let (text, _) =
        hl7::decode(bytes, hl7::Charset::Latin1).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    let messages = hl7::split_file(&text).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    let mut failed = false;
    for (i, text) in messages.iter().enumerate() {
        let n = i + 1;
        let msg = match hl7::Message::parse(text) {
            Ok(m) => m,
            Err(e) => {
                failed = true;
                results.push(
                    serde_json::json!({"message": n, "error": format!("not a valid HL7 v2 message: {e}")}),
                );
                continue;
            }
        };
        let mtype = msg.message_type();
        let chosen = match (fixed, &mtype) {
            (true, _) => mappings.iter().next(),
            (false, Some(t)) => mappings.for_message_type(t),
            (false, None) => None,
        };
        let mut entry = serde_json::json!({
            "message": n,
            "message_type": mtype.as_ref().map(ToString::to_string),
            "control_id": msg.control_id(),
        });
        match chosen {
            None => {
                entry["error"] = serde_json::json!(format!(
                    "no mapping for message type {}",
                    mtype
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "(empty MSH-9)".into())
                ));
                failed = true;
            }
            Some(m) if m.input != mapping::Input::Hl7v2 => {
                entry["error"] = serde_json::json!(format!("mapping {} reads FHIR, not HL7 v2", m.name));
                failed = true;
            }
            Some(m) => {
                entry["mapping"] = serde_json::json!(m.name);
                match m.apply(&msg, env) {
                    Ok(out) => {
                        if let serde_json::Value::Object(fields) = out.to_json() {
                            for (k, v) in fields {
                                entry[k] = v;
                            }
                        }
                    }
                    Err(e) => {
                        failed = true;
                        entry["error"] = serde_json::json!(e.to_string());
                    }
                }
            }
        }
        results.push(entry);
    }
    Ok(failed)
}

/// Maps a FHIR resource, a Bundle's resources, or NDJSON lines; true when one failed.
fn map_fhir(
    bytes: &[u8],
    input: &Path,
    fixed: bool,
    mappings: &MappingSet,
    env: &mapping::TransformEnv,
    results: &mut Vec<serde_json::Value>,
) -> anyhow::Result<bool> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("{}: not UTF-8 JSON: {e}", input.display()))?;
    let (entries, single) =
        mapping::fhir_entries(text).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    let mut failed = false;
    let fixed_mapping = if fixed { mappings.iter().next() } else { None };
    if let Some(m) = fixed_mapping.filter(|m| m.input != mapping::Input::Fhir) {
        anyhow::bail!("mapping {} reads HL7 v2, not FHIR", m.name);
    }
    let mapped = mapping::map_entries(&entries, mappings, fixed_mapping, env);
    // In a Bundle or NDJSON, resources no mapping handles are counted, not failures.
    let mut skipped: std::collections::BTreeMap<String, usize> = Default::default();
    for (i, e) in entries.iter().enumerate() {
        if !mapped.iter().any(|m| m.index == i) {
            *skipped.entry(e.resource_type().to_string()).or_default() += 1;
        }
    }
    if single && mapped.is_empty() {
        failed = true;
        let rtype = entries.first().map(|e| e.resource_type()).unwrap_or("");
        results.push(serde_json::json!({"resource": 1, "resource_type": rtype,
            "error": format!("no mapping for resource type {rtype}")}));
        skipped.clear();
    }
    for m in mapped {
        let resource = &entries[m.index].resource;
        let mut entry = serde_json::json!({"resource": m.index + 1, "resource_type": resource["resourceType"],
            "id": resource["id"], "mapping": m.mapping.name});
        match m.result {
            Ok(out) => {
                if let serde_json::Value::Object(fields) = out.to_json() {
                    for (k, v) in fields {
                        entry[k] = v;
                    }
                }
            }
            Err(e) => {
                failed = true;
                entry["error"] = serde_json::json!(e.to_string());
            }
        }
        results.push(entry);
    }
    if !skipped.is_empty() {
        results.push(serde_json::json!({ "skipped_without_mapping": skipped }));
    }
    Ok(failed)
}
