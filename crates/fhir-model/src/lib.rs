//! Typed FHIR models for carehub, from fhir-sdk, behind non-generic functions.
//!
//! fhir-sdk generates its serde code in the crate that calls it: minutes of compile time for
//! every change of the caller. Kept here, in a crate of its own that rarely changes, the app
//! rebuilds in seconds. The mapping path stays on `serde_json::Value`; the typed models check
//! what senders push.

use serde::Deserialize;

/// What the FHIR R4B model says of one resource: `Ok` when it reads as the model of its
/// `resourceType`, else the problem in the words of the model (a code outside its value set,
/// a wrong JSON type, a missing required element, an unknown resource type). Elements the model
/// does not know (newer versions, vendor additions) are not a problem.
///
/// R4B is the model fhir-sdk has closest to R4; the differences between them are few and in
/// resources carehub does not map.
pub fn check_resource(resource: &serde_json::Value) -> Result<(), String> {
    match fhir_sdk::r4b::resources::Resource::deserialize(resource) {
        Ok(_) => Ok(()),
        Err(e) => Err(explain(resource, &e.to_string())),
    }
}

/// The model's words, made shorter, placed where they can be, and without the patient's data
/// (the text is kept on the message and listed by the API). Its resource is read through a
/// tagged enum, which loses the path of a problem, so a code outside its value set is looked
/// for in the resource and named by the paths it sits at; a value is quoted only when it looks
/// like a code.
fn explain(resource: &serde_json::Value, problem: &str) -> String {
    let kind = resource["resourceType"].as_str().unwrap_or("");
    if problem.starts_with("unknown variant") {
        return format!(
            "unknown resource type `{}`",
            if is_code(kind) { kind } else { "…" }
        );
    }
    if problem.starts_with("missing field") {
        return problem.to_string();
    }
    if let Some(value) = problem.strip_prefix("Unknown value: ") {
        let mut paths = Vec::new();
        find_string(resource, value, kind.to_string(), &mut paths);
        let shown = if is_code(value) { value } else { "…" };
        if paths.is_empty() {
            return format!("Unknown value: {shown}");
        }
        return format!("Unknown value: {shown} (at {})", paths.join(", "));
    }
    redact(problem)
}

/// A short token of letters, digits and `.-_`: a code, not a name or a date someone typed.
fn is_code(value: &str) -> bool {
    (1..=32).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Serde's words with every quoted value (`"…"`, `` `…` ``) left out.
fn redact(problem: &str) -> String {
    let mut out = String::with_capacity(problem.len());
    let mut quote: Option<char> = None;
    for c in problem.chars() {
        match quote {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None if c == '"' || c == '`' => {
                out.push(c);
                quote = Some(c);
            }
            None => out.push(c),
        }
    }
    out
}

/// The paths (`Patient.telecom[0].system`) of the string `wanted` in `value`, the first three.
fn find_string(value: &serde_json::Value, wanted: &str, path: String, out: &mut Vec<String>) {
    if out.len() == 3 {
        return;
    }
    match value {
        serde_json::Value::String(s) if s == wanted => out.push(path),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_string(item, wanted, format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::Object(fields) => {
            for (key, item) in fields.iter().filter(|(k, _)| *k != "resourceType") {
                find_string(item, wanted, format!("{path}.{key}"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_well_formed_patient_reads() {
        let patient = json!({
            "resourceType": "Patient", "id": "p1",
            "identifier": [{"system": "urn:oid:1.2.3", "value": "MRN-1"}],
            "name": [{"family": "Nguyễn", "given": ["Thị", "Lan"]}],
            "gender": "female", "birthDate": "1985-03-07",
            "telecom": [{"system": "phone", "value": "+84903123456"}],
            "x-vendor-field": true
        });
        assert_eq!(check_resource(&patient), Ok(()));
    }

    #[test]
    fn problems_are_named_where_they_are() {
        let gender = check_resource(&json!({"resourceType": "Patient", "gender": "f"})).unwrap_err();
        assert_eq!(gender, "Unknown value: f (at Patient.gender)");
        let contact =
            json!({"resourceType": "Patient", "telecom": [{"system": "phone"}, {"system": "zalo"}]});
        assert_eq!(
            check_resource(&contact).unwrap_err(),
            "Unknown value: zalo (at Patient.telecom[1].system)"
        );
        let status =
            check_resource(&json!({"resourceType": "Observation", "code": {"text": "Hb"}})).unwrap_err();
        assert_eq!(status, "missing field `status`");
        let unknown = check_resource(&json!({"resourceType": "Pateint"})).unwrap_err();
        assert_eq!(unknown, "unknown resource type `Pateint`");
        assert!(check_resource(&json!({"resourceType": "Patient", "birthDate": "07/03/1985"})).is_err());
        // A person's data is never quoted back: a name in a code field, a number for a string.
        let name = json!({"resourceType": "Patient", "gender": "Nguyễn Thị Lan"});
        assert_eq!(
            check_resource(&name).unwrap_err(),
            "Unknown value: … (at Patient.gender)"
        );
        let number = json!({"resourceType": "Patient", "id": 84903123456_i64});
        let said = check_resource(&number).unwrap_err();
        assert!(!said.contains("84903123456"), "{said}");
        assert!(said.starts_with("invalid type: integer `…`"), "{said}");
    }
}
