//! Every FHIR R4 JSON file of the third-party corpus through the shipped FHIR mappings: no
//! panic, every Patient mapped or refused with a reason. Prints the counts.

use std::path::{Path, PathBuf};

use carehub::mapping::{MappingSet, TransformEnv};

use crate::helpers::*;

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json" || x == "ndjson") {
            out.push(p);
        }
    }
}

#[test]
fn every_corpus_patient_maps_or_is_refused_with_a_reason() {
    let Some(corpus) = corpus_dir() else { return };
    let mappings = MappingSet::load_dir(&mappings_dir()).expect("shipped mappings compile");
    let env = TransformEnv::default();
    let mut files = Vec::new();
    json_files(&corpus.join("fhir"), &mut files);
    assert!(
        files.len() > 50,
        "the corpus has its FHIR files ({})",
        files.len()
    );
    let (mut patients, mut mapped, mut with_identifier, mut refused) = (0, 0, 0, 0);
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for r in carehub::mapping::fhir_resources(&text)
            .map(|(r, _)| r)
            .unwrap_or_default()
        {
            let Some(m) = r["resourceType"]
                .as_str()
                .and_then(|t| mappings.for_resource_type(t))
            else {
                continue;
            };
            patients += 1;
            match m.apply_fhir(&r, &env) {
                Ok(out) => {
                    mapped += 1;
                    if out.person.is_some_and(|p| !p.identifiers.is_empty()) {
                        with_identifier += 1;
                    }
                }
                Err(e) => {
                    refused += 1;
                    assert!(!e.reason.is_empty(), "{}: a refusal has a reason", f.display());
                }
            }
        }
    }
    eprintln!(
        "fhir corpus: {} files; {patients} Patient resources: {mapped} mapped ({with_identifier} with an identifier), {refused} refused",
        files.len()
    );
    // Floors from the corpus as shipped (see the closing note for the measured counts).
    assert!(
        patients >= 100,
        "Synthea and the official examples hold Patients ({patients})"
    );
    assert!(
        mapped * 10 >= patients * 9,
        "nearly every Patient maps ({mapped}/{patients})"
    );
}
