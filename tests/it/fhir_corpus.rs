//! Every FHIR R4 JSON file of the third-party corpus through the shipped FHIR mappings: no
//! panic, every Patient mapped or refused with a reason. Prints the counts.

use carehub::mapping::{MappingSet, TransformEnv};

use crate::helpers::*;

#[test]
fn every_corpus_resource_maps_or_is_refused_with_a_reason() {
    let Some(corpus) = corpus_dir() else { return };
    let mappings = MappingSet::load_dir(&mappings_dir()).expect("shipped mappings compile");
    let env = TransformEnv::default();
    let files = files_under(&corpus.join("fhir"), &|p| {
        p.extension().is_some_and(|x| x == "json" || x == "ndjson")
    });
    assert!(
        files.len() > 50,
        "the corpus has its FHIR files ({})",
        files.len()
    );
    // resource type → (mapped, refused, with a person)
    let mut by_type: std::collections::BTreeMap<String, (usize, usize, usize)> = Default::default();
    let mut patients_with_identifier = 0;
    // What the typed model (fhir-sdk, R4B) says of the same resources: read / with a problem.
    let mut model: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    let mut model_problems: std::collections::BTreeMap<String, usize> = Default::default();
    // Synthea's resources are generated from the specification: the model must read them all.
    let mut synthea_problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let Ok((entries, _)) = carehub::mapping::fhir_entries(&text) else {
            continue;
        };
        for entry in &entries {
            let counts = model.entry(entry.resource_type().to_string()).or_default();
            match carehub_fhir_model::check_resource(&entry.resource) {
                Ok(()) => counts.0 += 1,
                Err(problem) => {
                    counts.1 += 1;
                    if f.to_string_lossy().contains("synthea") {
                        synthea_problems.push(format!("{}: {problem}", f.display()));
                    }
                    *model_problems.entry(problem).or_default() += 1;
                }
            }
        }
        for m in carehub::mapping::map_entries(&entries, &mappings, None, &env) {
            let rtype = entries[m.index].resource_type().to_string();
            let counts = by_type.entry(rtype.clone()).or_default();
            match m.result {
                Ok(out) => {
                    counts.0 += 1;
                    if let Some(p) = &out.person {
                        counts.2 += 1;
                        if rtype == "Patient" && !p.identifiers.is_empty() {
                            patients_with_identifier += 1;
                        }
                    }
                }
                Err(e) => {
                    counts.1 += 1;
                    assert!(!e.reason.is_empty(), "{}: a refusal has a reason", f.display());
                }
            }
        }
    }
    eprintln!("fhir corpus: {} files", files.len());
    for (t, (mapped, refused, with_person)) in &by_type {
        eprintln!("  {t:<18} {mapped:>6} mapped ({with_person} with a person), {refused} refused");
    }
    eprintln!("  Patients with an identifier: {patients_with_identifier}");
    eprintln!("fhir corpus through the typed model (fhir-sdk R4B):");
    for (t, (read, problems)) in &model {
        eprintln!("  {t:<28} {read:>6} read, {problems} with a problem");
    }
    for (problem, n) in &model_problems {
        eprintln!("  {n:>5} × {problem}");
    }
    assert!(
        synthea_problems.is_empty(),
        "the typed model reads every Synthea resource: {synthea_problems:#?}"
    );
    let read: usize = model.values().map(|c| c.0).sum();
    let problems: usize = model.values().map(|c| c.1).sum();
    eprintln!("  {read} read, {problems} with a problem");
    // Floors from the corpus as shipped (see the closing note for the measured counts).
    let get = |t: &str| by_type.get(t).copied().unwrap_or_default();
    let (patients, refused_patients, _) = get("Patient");
    assert!(
        patients >= 100,
        "Synthea and the official examples hold Patients ({patients})"
    );
    assert!(refused_patients * 10 <= patients, "nearly every Patient maps");
    for t in ["Observation", "Encounter", "Condition", "DiagnosticReport"] {
        let (mapped, refused, with_person) = get(t);
        assert!(mapped >= 20, "the corpus holds {t} resources ({mapped})");
        assert!(
            refused * 20 <= mapped,
            "nearly every {t} maps ({refused} refused)"
        );
        // Synthea's bundles hold each resource's Patient: references must find it.
        assert!(
            with_person * 2 >= mapped,
            "most {t} resources find their patient ({with_person}/{mapped})"
        );
    }
}
