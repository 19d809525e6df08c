//! FHIR documents as the mapping engine reads them: a resource, a Bundle (searchset,
//! transaction, batch, collection…), or NDJSON lines — and the references between the entries
//! of one document.
//!
//! Each resource is mapped on its own by the mapping for its `resourceType`. Then references are
//! followed inside the document: an Observation, Encounter, Appointment, Condition or
//! DiagnosticReport gets the person of the Patient its `subject`/`patient`/participant points
//! at; a DiagnosticReport's `result` Observations get its order number; a Condition's or
//! Observation's `encounter` gives the encounter's id. A reference outside the document is
//! not fetched: a logical reference (`identifier`) still names the person.

use serde_json::Value;

use super::{Mapping, MappingError, MappingOutput, MappingSet, TransformEnv};
use crate::model::{ClinicalRecord, Identifier, ProfilePatch};

/// One resource of a document, with what other entries may call it.
#[derive(Debug, Clone)]
pub struct FhirEntry {
    pub resource: Value,
    /// The Bundle entry's `fullUrl` (`urn:uuid:…`, `https://…/Patient/1`).
    pub full_url: Option<String>,
}

impl FhirEntry {
    pub fn resource_type(&self) -> &str {
        self.resource["resourceType"].as_str().unwrap_or("")
    }

    /// `Patient/123`, when the resource has an id.
    fn local_ref(&self) -> Option<String> {
        let id = self.resource["id"].as_str()?;
        Some(format!("{}/{id}", self.resource_type()))
    }
}

/// The resources of a JSON document: a Bundle's entries, one resource (`single`), or NDJSON
/// lines. `Err` says which line is not JSON.
pub fn fhir_entries(text: &str) -> Result<(Vec<FhirEntry>, bool), String> {
    match serde_json::from_str::<Value>(text) {
        Ok(mut v) if v["resourceType"] == "Bundle" => {
            let entries = match v.get_mut("entry").map(Value::take) {
                Some(Value::Array(entries)) => entries,
                _ => Vec::new(),
            };
            Ok((
                entries
                    .into_iter()
                    .filter_map(|mut e| {
                        let resource = e.get_mut("resource").map(Value::take).filter(Value::is_object)?;
                        Some(FhirEntry {
                            resource,
                            full_url: e["fullUrl"].as_str().map(str::to_string),
                        })
                    })
                    .collect(),
                false,
            ))
        }
        Ok(v) => Ok((
            vec![FhirEntry {
                resource: v,
                full_url: None,
            }],
            true,
        )),
        Err(whole) => {
            let mut out = Vec::new();
            for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let resource = serde_json::from_str(line)
                    .map_err(|e| format!("not JSON ({whole}); as NDJSON, line {}: {e}", n + 1))?;
                out.push(FhirEntry {
                    resource,
                    full_url: None,
                });
            }
            Ok((out, false))
        }
    }
}

/// What became of one entry: the mapping that read it and its output, or its failure.
pub struct MappedEntry<'m> {
    /// The entry's position in the document.
    pub index: usize,
    pub mapping: &'m Mapping,
    pub result: Result<MappingOutput, MappingError>,
}

/// Maps every entry that has a mapping (`fixed`, or the one for its resource type), then
/// resolves references between entries. Entries no mapping reads are left out.
pub fn map_entries<'m>(
    entries: &[FhirEntry],
    mappings: &'m MappingSet,
    fixed: Option<&'m Mapping>,
    env: &TransformEnv,
) -> Vec<MappedEntry<'m>> {
    let mut mapped: Vec<MappedEntry<'m>> = entries
        .iter()
        .enumerate()
        .filter_map(|(index, e)| {
            let mapping = fixed.or_else(|| mappings.for_resource_type(e.resource_type()))?;
            Some(MappedEntry {
                index,
                mapping,
                result: mapping.apply_fhir(&e.resource, env),
            })
        })
        .collect();
    resolve_references(entries, &mut mapped, env.connector.as_deref());
    mapped
}

/// The entries of a document by what references call them, built once per document (a page of
/// 500 resources must not cost 500 × 500 comparisons).
struct Index<'e> {
    by_url: std::collections::HashMap<&'e str, usize>,
    full_urls: Vec<Option<&'e str>>,
    /// `Type/id` → the entries with it (two servers' `Patient/1` are two entries).
    by_ref: std::collections::HashMap<String, Vec<usize>>,
}

impl<'e> Index<'e> {
    fn new(entries: &'e [FhirEntry]) -> Index<'e> {
        let mut by_url = std::collections::HashMap::new();
        let mut by_ref: std::collections::HashMap<String, Vec<usize>> = std::collections::HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            if let Some(u) = e.full_url.as_deref() {
                by_url.entry(u).or_insert(i);
            }
            if let Some(l) = e.local_ref() {
                by_ref.entry(l).or_default().push(i);
            }
        }
        Index {
            by_url,
            full_urls: entries.iter().map(|e| e.full_url.as_deref()).collect(),
            by_ref,
        }
    }

    /// The entry a reference points at: by `fullUrl` first (exact), else by `Type/id` (also the
    /// tail of an absolute URL) when exactly one entry has it — an ambiguous id (the same
    /// Type/id from two servers, the reference saying which by neither) finds nothing rather
    /// than a guess.
    fn find(&self, reference: &str) -> Option<usize> {
        if let Some(&i) = self.by_url.get(reference) {
            return Some(i);
        }
        // A versioned reference names the resource: `Patient/1/_history/2` → `Patient/1`.
        let reference = reference.split("/_history/").next()?;
        if let Some(&i) = self.by_url.get(reference) {
            return Some(i);
        }
        let mut parts = reference.rsplit('/');
        let (id, rtype) = (parts.next()?, parts.next()?);
        let local = format!("{rtype}/{id}");
        // An absolute reference names its server: it finds an entry of the same server (or
        // one whose server is unknown), never another server's `Type/id`.
        let base = |url: &str| url.strip_suffix(&local).map(str::to_string);
        let reference_base = base(reference).filter(|b| !b.is_empty());
        let candidates: Vec<usize> = self
            .by_ref
            .get(&local)?
            .iter()
            .copied()
            .filter(
                |&i| match (&reference_base, self.full_urls.get(i).and_then(|u| u.as_deref())) {
                    (Some(b), Some(u)) => base(u).as_deref() == Some(b.as_str()) || !u.starts_with("http"),
                    _ => true,
                },
            )
            .collect();
        match candidates.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }
}

/// The references of `resource` that may name its patient, in order of preference: one that
/// says it is a Patient (`type`, `Patient/…`), or one that says nothing of its type where a
/// patient belongs (`subject`, `patient`). A participant must say so (or point at a Patient
/// entry, checked when it is resolved).
fn patient_references(resource: &Value) -> Vec<&Value> {
    let says_patient = |r: &Value| {
        r["type"] == "Patient"
            || r["reference"]
                .as_str()
                .is_some_and(|s| s.starts_with("Patient/") || s.contains("/Patient/"))
    };
    let untyped = |r: &Value| {
        r["type"].is_null()
            && r["reference"]
                .as_str()
                .is_none_or(|s| !s.contains('/') || s.starts_with("urn:"))
    };
    let mut refs: Vec<&Value> = ["subject", "patient"]
        .iter()
        .map(|k| &resource[*k])
        .filter(|r| r.is_object() && (says_patient(r) || untyped(r)))
        .collect();
    if let Some(participants) = resource["participant"].as_array() {
        refs.extend(participants.iter().map(|p| &p["actor"]).filter(|a| {
            says_patient(a)
                || a["reference"].as_str().is_some_and(|r| r.starts_with("urn:")) && a["identifier"].is_null()
        }));
    }
    refs
}

/// A relative literal reference to a Patient (`Patient/123`, `Patient/123/_history/2`): its
/// id. An absolute one may name another server's patient: not taken.
fn patient_id(reference: &str) -> Option<&str> {
    if reference.contains("://") || reference.starts_with("urn:") {
        return None;
    }
    let reference = reference.split("/_history/").next()?;
    let mut parts = reference.rsplit('/');
    let id = parts.next()?;
    (parts.next() == Some("Patient") && !id.is_empty() && !id.contains(['?', '#'])).then_some(id)
}

fn resolve_references(entries: &[FhirEntry], mapped: &mut [MappedEntry<'_>], source: Option<&str>) {
    let index = Index::new(entries);
    let find = |_: &[FhirEntry], r: &str| index.find(r);
    // Persons of the Patients in the document, by entry.
    let persons: Vec<(usize, ProfilePatch)> = mapped
        .iter()
        .filter_map(|m| match &m.result {
            Ok(MappingOutput { person: Some(p), .. }) if entries[m.index].resource_type() == "Patient" => {
                Some((m.index, p.clone()))
            }
            _ => None,
        })
        .collect();
    // Order numbers of DiagnosticReports, by the Observation entries they list.
    let mut report_orders: Vec<(usize, String)> = Vec::new();
    // Encounter ids, by entry.
    let mut encounters: Vec<(usize, String)> = Vec::new();
    for m in mapped.iter() {
        let Ok(out) = &m.result else { continue };
        for r in &out.records {
            match r {
                ClinicalRecord::Order(o) if entries[m.index].resource_type() == "DiagnosticReport" => {
                    let Some(order) = o.id.clone().or_else(|| o.filler_id.clone()) else {
                        continue;
                    };
                    for result in entries[m.index].resource["result"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        if let Some(i) = result["reference"].as_str().and_then(|r| find(entries, r)) {
                            report_orders.push((i, order.clone()));
                        }
                    }
                }
                ClinicalRecord::Encounter(e) => {
                    if let Some(id) = &e.id {
                        encounters.push((m.index, id.clone()));
                    }
                }
                _ => {}
            }
        }
    }
    for m in mapped.iter_mut() {
        let index = m.index;
        let resource = &entries[index].resource;
        let encounter = resource["encounter"]["reference"]
            .as_str()
            .and_then(|r| find(entries, r))
            .and_then(|i| encounters.iter().find(|(e, _)| *e == i).map(|(_, id)| id.clone()));
        let order = report_orders
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, o)| o.clone());
        let Ok(out) = &mut m.result else { continue };
        for r in &mut out.records {
            match r {
                ClinicalRecord::Result(res) if res.order_id.is_none() => res.order_id.clone_from(&order),
                ClinicalRecord::Diagnosis(d) if d.encounter_id.is_none() => {
                    d.encounter_id.clone_from(&encounter)
                }
                _ => {}
            }
        }
        if out.person.is_some() || out.records.is_empty() {
            continue;
        }
        let mut found = None;
        for reference in patient_references(resource) {
            if let Some(p) = reference["reference"]
                .as_str()
                .and_then(|r| find(entries, r))
                .filter(|&i| entries[i].resource_type() == "Patient")
                .and_then(|i| persons.iter().find(|(e, _)| *e == i))
            {
                found = Some(p.1.clone());
                break;
            }
            // A logical reference names the person by an identifier (a participant's only when
            // it says it is a Patient).
            let id = &reference["identifier"];
            if let (Some(system), Some(value)) = (id["system"].as_str(), id["value"].as_str()) {
                found = Some(ProfilePatch {
                    identifiers: vec![Identifier {
                        system: system.to_string(),
                        value: value.to_string(),
                        kind: None,
                    }],
                    ..Default::default()
                });
                break;
            }
        }
        // Outside the document: a Patient/<id> of the same server, by the resource-id
        // identifier its own Patient mapping gave it (`<source>/Patient`, type RI).
        if found.is_none()
            && let Some(source) = source
            && let Some(id) = patient_references(resource)
                .iter()
                .find_map(|r| r["reference"].as_str().and_then(patient_id))
        {
            found = Some(ProfilePatch {
                identifiers: vec![Identifier {
                    system: format!("{source}/Patient"),
                    value: id.to_string(),
                    kind: Some("RI".into()),
                }],
                ..Default::default()
            });
        }
        match found {
            Some(p) => out.person = Some(p),
            None => out.warnings.push(
                "the patient this resource is about is not in the document; its records have no person"
                    .into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bundle_entries_keep_their_full_urls_and_ndjson_lines_are_read() {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}},
            {"request": {"method": "DELETE", "url": "Patient/9"}}
        ]});
        let (entries, single) = fhir_entries(&bundle.to_string()).unwrap();
        assert!(!single);
        assert_eq!(entries.len(), 1, "an entry without a resource is skipped");
        assert_eq!(entries[0].full_url.as_deref(), Some("urn:uuid:1"));
        let (lines, _) =
            fhir_entries("{\"resourceType\":\"Patient\"}\n\n{\"resourceType\":\"Observation\"}\n").unwrap();
        assert_eq!(lines.len(), 2);
        assert!(
            fhir_entries("{\"a\":1}\nnot json")
                .unwrap_err()
                .contains("line 2")
        );
    }

    #[test]
    fn references_find_entries_by_full_url_and_by_type_and_id() {
        let entries = vec![
            FhirEntry {
                resource: json!({"resourceType": "Patient", "id": "p1"}),
                full_url: Some("urn:uuid:aaa".into()),
            },
            FhirEntry {
                resource: json!({"resourceType": "Encounter", "id": "e1"}),
                full_url: None,
            },
        ];
        let index = Index::new(&entries);
        assert_eq!(index.find("urn:uuid:aaa"), Some(0));
        assert_eq!(index.find("Patient/p1"), Some(0));
        assert_eq!(index.find("https://ehr.example/fhir/Encounter/e1"), Some(1));
        assert_eq!(index.find("Patient/p2"), None);
    }

    #[test]
    fn an_exact_full_url_wins_and_an_ambiguous_id_finds_nothing() {
        let patient = |url: &str| FhirEntry {
            resource: json!({"resourceType": "Patient", "id": "1"}),
            full_url: Some(url.into()),
        };
        let entries = vec![
            patient("http://a.example/fhir/Patient/1"),
            patient("http://b.example/fhir/Patient/1"),
        ];
        let index = Index::new(&entries);
        assert_eq!(index.find("http://b.example/fhir/Patient/1"), Some(1));
        assert_eq!(index.find("http://b.example/fhir/Patient/1/_history/3"), Some(1));
        assert_eq!(index.find("Patient/1"), None);
        assert_eq!(
            index.find("http://c.example/fhir/Patient/1"),
            None,
            "another server's patient"
        );
        assert_eq!(patient_id("Patient/7/_history/2"), Some("7"));
        assert_eq!(patient_id("http://c.example/fhir/Patient/7"), None);
    }

    #[test]
    fn only_references_that_may_be_patients_name_the_person() {
        let appointment = json!({"resourceType": "Appointment", "participant": [
            {"actor": {"reference": "urn:uuid:x", "identifier": {"system": "NPI", "value": "123"}}},
            {"actor": {"reference": "Practitioner/9"}},
            {"actor": {"type": "Patient", "identifier": {"system": "MRN", "value": "7"}}}
        ]});
        let refs = patient_references(&appointment);
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0]["identifier"]["value"], "7");
        let obs = json!({"subject": {"reference": "Group/5", "identifier": {"system": "G", "value": "5"}}});
        assert!(patient_references(&obs).is_empty(), "a Group is not a patient");
    }
}
