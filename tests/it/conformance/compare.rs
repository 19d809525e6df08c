//! Compares what carehub made of a message (`MappingOutput::to_json()`) with the FHIR R4 Bundle
//! the HL7 v2-to-FHIR guide expects, field by field and by meaning: dates as instants at a
//! precision, phones as digits, code systems by what they name. Only fields that the expected
//! FHIR has and carehub models are counted; everything else the Bundle holds is tallied as out
//! of scope. Nothing here panics on a missing output: absent means "missing".

use std::collections::BTreeMap;

use serde_json::Value;

use super::meaning::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Matched,
    /// The expected FHIR has the field; carehub produced nothing for it.
    Missing,
    /// Both have it, with different meanings.
    Different,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Matched => "matched",
            Outcome::Missing => "missing",
            Outcome::Different => "different",
        }
    }
}

/// One comparable field of one case.
pub struct Check {
    /// `Patient.name[0].family`, `Observation[1].valueQuantity.value`.
    pub field: String,
    pub expected: String,
    pub got: Option<String>,
    pub outcome: Outcome,
}

/// The checks of one case, and what carehub produced that the guide does not expect.
#[derive(Default)]
pub struct Comparison {
    pub checks: Vec<Check>,
    pub extras: Vec<(String, String)>,
}

impl Comparison {
    /// One comparable field: `same(expected, got)` says whether they mean the same.
    fn field(
        &mut self,
        field: impl Into<String>,
        expected: Option<String>,
        got: Option<String>,
        same: impl Fn(&str, &str) -> bool,
    ) {
        let Some(expected) = expected else {
            return;
        };
        let outcome = match &got {
            None => Outcome::Missing,
            Some(g) if same(&expected, g) => Outcome::Matched,
            Some(_) => Outcome::Different,
        };
        self.checks.push(Check {
            field: field.into(),
            expected,
            got,
            outcome,
        });
    }

    /// A value carehub produced where the expected FHIR has none.
    fn extra_if(&mut self, field: &str, expected: Option<String>, got: Option<String>) {
        if let (None, Some(g)) = (expected, got) {
            self.extras.push((field.to_string(), g));
        }
    }
}

// ---- reading JSON -------------------------------------------------------------------------

/// The non-empty text (or number, or boolean, as text) at a JSON pointer.
fn text(v: &Value, pointer: &str) -> Option<String> {
    match v.pointer(pointer)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn items<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The non-empty texts of an array (`given`, `line`, `prefix`), joined with `sep`.
fn joined(v: &Value, pointer: &str, sep: &str) -> Option<String> {
    let parts: Vec<&str> = match v.pointer(pointer)? {
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .collect(),
        Value::String(s) if !s.trim().is_empty() => vec![s.as_str()],
        _ => Vec::new(),
    };
    (!parts.is_empty()).then(|| parts.join(sep))
}

/// The `valueString` of the extension with this URL.
fn extension(v: &Value, url: &str) -> Option<String> {
    items(v, "/extension")
        .iter()
        .find(|e| e["url"] == url)
        .and_then(|e| text(e, "/valueString"))
}

// ---- Patient ------------------------------------------------------------------------------

/// Patient keys compared below; the others (and `resourceType`, `id`, `meta`, `_x`) are out of
/// scope.
const PATIENT_COMPARED: &[&str] = &[
    "identifier",
    "name",
    "birthDate",
    "gender",
    "telecom",
    "address",
    "deceasedBoolean",
    "deceasedDateTime",
    "maritalStatus",
    "communication",
];

const OBSERVATION_COMPARED: &[&str] = &[
    "identifier",
    "code",
    "status",
    "valueQuantity",
    "valueString",
    "valueCodeableConcept",
    "valueDateTime",
    "valueTime",
    "effectiveDateTime",
    "issued",
    "referenceRange",
    "interpretation",
    "note",
];

const BOOKKEEPING: &[&str] = &["resourceType", "id", "meta", "text"];

fn tally_out_of_scope(r: &Value, compared: &[&str], out_of_scope: &mut BTreeMap<String, usize>) {
    let kind = r["resourceType"].as_str().unwrap_or("?");
    for key in r.as_object().into_iter().flat_map(|o| o.keys()) {
        if !compared.contains(&key.as_str()) && !BOOKKEEPING.contains(&key.as_str()) && !key.starts_with('_')
        {
            *out_of_scope.entry(format!("{kind}.{key}")).or_default() += 1;
        }
    }
}

/// The identifier's system as the guide writes it, and the parts of it carehub can hold: the
/// guide's `system` is the CX.4 namespace, or else `urn:oid:`/`urn:uuid:` and the universal id;
/// carehub keeps the assigning authority's text (namespace, else universal id).
fn identifier_systems(e: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(s) = text(e, "/system") {
        for prefix in ["urn:oid:", "urn:uuid:"] {
            if let Some(rest) = s.strip_prefix(prefix) {
                out.push(rest.to_string());
            }
        }
        out.push(s);
    }
    let ext = items(e, "/_system/extension");
    for url in ["namespace-id", "universal-id"] {
        let full = format!("https://reportstream.cdc.gov/fhir/StructureDefinition/{url}");
        if let Some(v) = ext
            .iter()
            .find(|x| x["url"] == full.as_str())
            .and_then(|x| text(x, "/valueString"))
        {
            out.push(v);
        }
    }
    out
}

fn compare_identifiers(c: &mut Comparison, expected: &Value, person: &Value) {
    let (pairs, left) = pair(
        items(expected, "/identifier"),
        items(person, "/identifiers"),
        |e, o| {
            2 * agree(text(e, "/value"), text(o, "/value"), same_text)
                + usize::from(
                    text(o, "/system")
                        .is_some_and(|s| identifier_systems(e).iter().any(|x| same_token(x, &s))),
                )
        },
    );
    for (i, (e, o)) in pairs.into_iter().enumerate() {
        let got = |p: &str| o.and_then(|o| text(o, p));
        let f = |name: &str| format!("Patient.identifier[{i}].{name}");
        c.field(f("value"), text(e, "/value"), got("/value"), same_text);
        let systems = identifier_systems(e);
        c.field(f("system"), text(e, "/system"), got("/system"), |_, g| {
            systems.iter().any(|s| same_token(s, g))
        });
        c.field(
            f("type"),
            text(e, "/type/coding/0/code"),
            got("/type"),
            same_token,
        );
    }
    for o in left {
        c.extras.push(("Patient.identifier".into(), o.to_string()));
    }
}

fn compare_names(c: &mut Comparison, expected: &Value, person: &Value) {
    let (pairs, left) = pair(items(expected, "/name"), items(person, "/names"), |e, o| {
        2 * agree(text(e, "/family"), text(o, "/family"), same_text)
            + agree(joined(e, "/given", " "), joined(o, "/given", " "), same_text)
    });
    for (i, (e, o)) in pairs.into_iter().enumerate() {
        let f = |name: &str| format!("Patient.name[{i}].{name}");
        let got = |p: &str| o.and_then(|o| joined(o, p, " "));
        c.field(f("family"), text(e, "/family"), got("/family"), same_text);
        c.field(f("given"), joined(e, "/given", " "), got("/given"), same_text);
        c.field(f("prefix"), joined(e, "/prefix", " "), got("/prefix"), same_text);
        c.field(f("suffix"), joined(e, "/suffix", " "), got("/suffix"), same_text);
        c.field(f("use"), text(e, "/use"), got("/use"), same_token);
    }
    for o in left {
        c.extras.push(("Patient.name".into(), o.to_string()));
    }
}

/// The expected contact value: `value`, or for a phone the guide splits into extensions
/// (country, area, local) when XTN.12 is empty, those parts.
fn expected_contact(e: &Value) -> Option<String> {
    text(e, "/value").or_else(|| {
        let part = |p: &str| {
            extension(
                e,
                &format!("http://hl7.org/fhir/StructureDefinition/contactpoint-{p}"),
            )
        };
        let local = part("local")?;
        let mut s = String::new();
        if let Some(country) = part("country") {
            s.push_str(&format!("+{country} "));
        }
        if let Some(area) = part("area") {
            s.push_str(&format!("({area}) "));
        }
        s.push_str(&local);
        Some(s)
    })
}

fn compare_telecom(c: &mut Comparison, expected: &Value, person: &Value) {
    let (pairs, left) = pair(items(expected, "/telecom"), items(person, "/telecom"), |e, o| {
        2 * agree(expected_contact(e), text(o, "/value"), same_contact)
            + agree(text(e, "/system"), text(o, "/system"), same_token)
            + agree(text(e, "/use"), text(o, "/use"), same_token)
    });
    for (i, (e, o)) in pairs.into_iter().enumerate() {
        let f = |name: &str| format!("Patient.telecom[{i}].{name}");
        let got = |p: &str| o.and_then(|o| text(o, p));
        c.field(f("system"), text(e, "/system"), got("/system"), same_token);
        c.field(f("value"), expected_contact(e), got("/value"), same_contact);
        c.field(f("use"), text(e, "/use"), got("/use"), same_token);
    }
    for o in left {
        c.extras.push(("Patient.telecom".into(), o.to_string()));
    }
}

fn compare_addresses(c: &mut Comparison, expected: &Value, person: &Value) {
    let (pairs, left) = pair(
        items(expected, "/address"),
        items(person, "/addresses"),
        |e, o| {
            agree(joined(e, "/line", " | "), joined(o, "/lines", " | "), same_text)
                + agree(text(e, "/city"), text(o, "/city"), same_text)
                + agree(text(e, "/postalCode"), text(o, "/postal_code"), same_text)
                + agree(text(e, "/use"), text(o, "/use"), same_token)
        },
    );
    for (i, (e, o)) in pairs.into_iter().enumerate() {
        let f = |name: &str| format!("Patient.address[{i}].{name}");
        let got = |p: &str| o.and_then(|o| text(o, p));
        let lines = o.and_then(|o| joined(o, "/lines", " | "));
        c.field(f("line"), joined(e, "/line", " | "), lines, same_text);
        for (fhir, ours) in [
            ("city", "/city"),
            ("district", "/district"),
            ("state", "/state"),
            ("postalCode", "/postal_code"),
            ("country", "/country"),
        ] {
            c.field(f(fhir), text(e, &format!("/{fhir}")), got(ours), same_text);
        }
        c.field(f("use"), text(e, "/use"), got("/use"), same_token);
    }
    for o in left {
        c.extras.push(("Patient.address".into(), o.to_string()));
    }
}

fn compare_patient(c: &mut Comparison, e: &Value, person: &Value) {
    compare_identifiers(c, e, person);
    compare_names(c, e, person);
    c.field(
        "Patient.birthDate",
        text(e, "/birthDate"),
        text(person, "/birth_date"),
        same_moment,
    );
    c.field(
        "Patient.gender",
        text(e, "/gender"),
        text(person, "/sex"),
        same_token,
    );
    compare_telecom(c, e, person);
    compare_addresses(c, e, person);
    c.field(
        "Patient.deceasedBoolean",
        text(e, "/deceasedBoolean"),
        text(person, "/deceased"),
        same_token,
    );
    c.field(
        "Patient.deceasedDateTime",
        text(e, "/deceasedDateTime"),
        text(person, "/deceased_at"),
        same_moment,
    );
    c.field(
        "Patient.maritalStatus",
        text(e, "/maritalStatus/coding/0/code"),
        text(person, "/marital_status"),
        same_token,
    );
    c.field(
        "Patient.communication.language",
        text(e, "/communication/0/language/coding/0/code"),
        text(person, "/language"),
        same_token,
    );
    for (fhir, ours) in [
        ("/birthDate", "/birth_date"),
        ("/gender", "/sex"),
        ("/deceasedDateTime", "/deceased_at"),
        ("/maritalStatus/coding/0/code", "/marital_status"),
        ("/communication/0/language/coding/0/code", "/language"),
    ] {
        c.extra_if(
            &format!("Patient{}", fhir.replace('/', ".")),
            text(e, fhir),
            text(person, ours),
        );
    }
    if e.pointer("/deceasedBoolean").is_none() && e.pointer("/deceasedDateTime").is_none() {
        c.extra_if("Patient.deceased", None, text(person, "/deceased"));
    }
}

// ---- Observation --------------------------------------------------------------------------

fn compare_observation(c: &mut Comparison, i: usize, e: &Value, o: Option<&Value>) {
    let f = |name: &str| format!("Observation[{i}].{name}");
    let got = |p: &str| o.and_then(|o| text(o, p));
    c.field(
        f("code.code"),
        text(e, "/code/coding/0/code"),
        got("/code/code"),
        same_token,
    );
    c.field(
        f("identifier"),
        text(e, "/identifier/0/value"),
        got("/id"),
        same_text,
    );
    c.field(
        f("code.system"),
        text(e, "/code/coding/0/system"),
        got("/code/system"),
        same_code_system,
    );
    // FHIR requires a status and the guide writes `unknown` when OBX-11 is empty; carehub
    // leaves an unstated status empty. Both say "not known".
    let status = got("/status").or_else(|| {
        let unknown = o.is_some() && text(e, "/status").as_deref() == Some("unknown");
        unknown.then(String::new)
    });
    c.field(f("status"), text(e, "/status"), status, |x, g| {
        same_token(x, g) || (x == "unknown" && g.is_empty())
    });
    let numeric = got("/numeric").or_else(|| got("/value").filter(|v| v.trim().parse::<f64>().is_ok()));
    c.field(
        f("valueQuantity.value"),
        text(e, "/valueQuantity/value"),
        numeric,
        same_number,
    );
    let unit_code = text(e, "/valueQuantity/code");
    c.field(
        f("valueQuantity.unit"),
        text(e, "/valueQuantity/unit"),
        got("/unit"),
        |x, g| same_text(x, g) || unit_code.as_deref().is_some_and(|u| same_text(u, g)),
    );
    c.field(
        f("valueQuantity.comparator"),
        text(e, "/valueQuantity/comparator"),
        got("/comparator"),
        same_token,
    );
    c.field(
        f("valueString"),
        text(e, "/valueString"),
        got("/value"),
        same_text,
    );
    c.field(
        f("valueCodeableConcept.code"),
        text(e, "/valueCodeableConcept/coding/0/code"),
        got("/value_code/code"),
        same_token,
    );
    c.field(
        f("valueDateTime"),
        text(e, "/valueDateTime"),
        got("/value"),
        same_moment,
    );
    c.field(f("valueTime"), text(e, "/valueTime"), got("/value"), same_text);
    c.field(
        f("effectiveDateTime"),
        text(e, "/effectiveDateTime"),
        got("/observed_at"),
        same_moment,
    );
    c.field(f("issued"), text(e, "/issued"), got("/issued_at"), same_moment);
    c.field(
        f("referenceRange.text"),
        text(e, "/referenceRange/0/text"),
        got("/reference_range"),
        same_text,
    );
    c.field(
        f("interpretation"),
        text(e, "/interpretation/0/coding/0/code"),
        got("/abnormal_flag"),
        same_token,
    );
    c.field(
        f("note"),
        joined(
            &Value::Array(items(e, "/note").iter().map(|n| n["text"].clone()).collect()),
            "",
            "\n",
        ),
        o.and_then(|o| joined(o, "/notes", "\n")),
        same_text,
    );
}

// ---- the Bundle ---------------------------------------------------------------------------

/// Compares one expected Bundle with carehub's output for the same message.
pub fn compare_bundle(
    c: &mut Comparison,
    bundle: &Value,
    got: &Value,
    out_of_scope: &mut BTreeMap<String, usize>,
) {
    let resources: Vec<&Value> = items(bundle, "/entry").iter().map(|e| &e["resource"]).collect();
    let mut observations = Vec::new();
    let mut patient_seen = false;
    for r in resources {
        match r["resourceType"].as_str().unwrap_or("?") {
            // One Patient per message: a second one would be the guide's, not the message's.
            "Patient" if !patient_seen => {
                patient_seen = true;
                tally_out_of_scope(r, PATIENT_COMPARED, out_of_scope);
                compare_patient(c, r, &got["person"]);
            }
            "Observation" => {
                tally_out_of_scope(r, OBSERVATION_COMPARED, out_of_scope);
                observations.push(r.clone());
            }
            other => *out_of_scope.entry(format!("{other} (resource)")).or_default() += 1,
        }
    }
    let results = items(got, "/results");
    let (pairs, left) = pair(&observations, results, |e, o| {
        2 * agree(text(e, "/code/coding/0/code"), text(o, "/code/code"), same_token)
            + agree(text(e, "/valueString"), text(o, "/value"), same_text)
    });
    for (i, (e, o)) in pairs.into_iter().enumerate() {
        compare_observation(c, i, e, o);
    }
    for o in left {
        c.extras.push(("Observation".into(), o.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Observation comparisons, before any shipped mapping produces results: a result in the
    /// shape `MappingOutput::to_json()` gives matches the guide's Observation.
    #[test]
    fn a_result_in_carehub_shape_matches_the_guides_observation() {
        let bundle = serde_json::json!({"entry": [{"resource": {
            "resourceType": "Observation", "status": "unknown",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8675-3", "display": "Fake"}]},
            "valueQuantity": {"value": 5, "unit": "ML", "system": "METRIC", "code": "1"},
            "effectiveDateTime": "2023-05-01T10:25:31-04:00"
        }}]});
        let got = serde_json::json!({"results": [{
            "code": {"system": "LN", "code": "8675-3", "display": "Fake"},
            "value_type": "NM", "value": "5", "numeric": 5.0, "unit": "ML",
            "observed_at": "2023-05-01T14:25:31Z"
        }]});
        let mut c = Comparison::default();
        compare_bundle(&mut c, &bundle, &got, &mut BTreeMap::new());
        let fields: Vec<_> = c.checks.iter().map(|c| (c.field.as_str(), c.outcome)).collect();
        assert_eq!(c.checks.len(), 6, "{fields:?}");
        assert!(
            c.checks.iter().all(|c| c.outcome == Outcome::Matched),
            "{fields:?}"
        );

        let mut c = Comparison::default();
        compare_bundle(&mut c, &bundle, &serde_json::json!({}), &mut BTreeMap::new());
        assert!(
            c.checks.iter().all(|c| c.outcome == Outcome::Missing),
            "no output is missing, status too"
        );
    }
}
