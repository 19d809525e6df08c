//! Conformance with the HL7 v2-to-FHIR implementation guide, measured on CDC prime-reportstream's
//! mapping inventory (`suites/prime-reportstream-mappinginventory/`: small HL7 v2 inputs, each
//! beside the FHIR R4 Bundle the guide expects). Every input goes through the shipped mappings;
//! the fields carehub models are compared with the expected Patient and Observations by meaning
//! (instants, not date strings; phone digits, not formatting), and the test prints a per-folder
//! table, every mismatch and what was out of scope. It asserts the overall match ratio stays
//! above a measured floor, so a mapping regression fails. See docs/conformance.md.
//!
//! It reads the shared corpus only and writes nothing; it skips loudly when the suite is absent
//! (fails instead if CAREHUB_REQUIRE_SERVICES=1).

mod compare;
mod meaning;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use carehub::hl7::Message;
use carehub::mapping::{Input, Mapping, MappingSet, TransformEnv};
use serde_json::Value;

use crate::helpers::{corpus_dir, mappings_dir, required};
use compare::{Comparison, Outcome};

const SUITE: &str = "suites/prime-reportstream-mappinginventory";

/// Measured: 275 of 284 comparable fields match (96.8%; Patient 143 of 150, Observation 132 of
/// 134) with the shipped mappings (ORU^R01 → hl7v2-oru-results). The floor sits just below.
const FLOOR_PERCENT: f64 = 96.0;

/// Counts for one folder of the suite (one HL7 v2 data type or segment).
#[derive(Default, Clone, Copy)]
struct Tally {
    files: usize,
    comparable: usize,
    matched: usize,
    missing: usize,
    different: usize,
    extra: usize,
}

impl Tally {
    fn add(&mut self, c: &Comparison) {
        self.files += 1;
        for check in &c.checks {
            self.comparable += 1;
            match check.outcome {
                Outcome::Matched => self.matched += 1,
                Outcome::Missing => self.missing += 1,
                Outcome::Different => self.different += 1,
            }
        }
        self.extra += c.extras.len();
    }

    fn absorb(&mut self, o: &Tally) {
        self.files += o.files;
        self.comparable += o.comparable;
        self.matched += o.matched;
        self.missing += o.missing;
        self.different += o.different;
        self.extra += o.extra;
    }

    fn percent(&self) -> Option<f64> {
        (self.comparable > 0).then(|| 100.0 * self.matched as f64 / self.comparable as f64)
    }
}

/// Every `.hl7` under `dir` that has a `.fhir` beside it, sorted.
fn cases(dir: &Path) -> Vec<PathBuf> {
    crate::helpers::files_under(dir, &|p| {
        p.extension().is_some_and(|x| x == "hl7") && p.with_extension("fhir").is_file()
    })
}

/// How a case was mapped: the mapping's name and whether it was the fallback.
enum Chosen<'a> {
    Listed(&'a Mapping),
    Fallback(&'a Mapping),
    None,
}

fn choose<'a>(mappings: &'a MappingSet, msg: &Message) -> Chosen<'a> {
    let listed = msg
        .message_type()
        .and_then(|t| mappings.for_message_type(&t))
        .filter(|m| m.input == Input::Hl7v2);
    if let Some(m) = listed {
        return Chosen::Listed(m);
    }
    // No mapping lists the type (ORU^R01 has none yet): the person parts are still worth
    // comparing, with any HL7 v2 mapping that has a person output.
    match mappings
        .iter()
        .find(|m| m.input == Input::Hl7v2 && m.person.is_some())
    {
        Some(m) => Chosen::Fallback(m),
        None => Chosen::None,
    }
}

/// Maps one input and compares it with its expected Bundle. A message that does not parse or
/// map is compared as an empty output: every expected field counts as missing. The note says
/// why a case did not map, or which values the mapping skipped.
fn run_case(
    hl7: &Path,
    mappings: &MappingSet,
    env: &TransformEnv,
    how: &mut BTreeMap<String, usize>,
    out_of_scope: &mut BTreeMap<String, usize>,
) -> (Comparison, Option<String>) {
    let bytes = std::fs::read(hl7).expect("suite file is readable");
    let text = String::from_utf8_lossy(&bytes);
    let expected: Value =
        serde_json::from_slice(&std::fs::read(hl7.with_extension("fhir")).expect("readable"))
            .expect("the expected Bundle is JSON");
    let mut note = None;
    let got = match Message::parse(&text) {
        Err(e) => {
            note = Some(format!("not a valid HL7 v2 message: {e}"));
            Value::Null
        }
        Ok(msg) => {
            let (mapping, label) = match choose(mappings, &msg) {
                Chosen::Listed(m) => (Some(m), m.name.clone()),
                Chosen::Fallback(m) => (
                    Some(m),
                    format!(
                        "{} (fallback: no mapping lists {})",
                        m.name,
                        msg.message_type().map(|t| t.to_string()).unwrap_or_default()
                    ),
                ),
                Chosen::None => (None, "none".to_string()),
            };
            *how.entry(label).or_default() += 1;
            match mapping.map(|m| m.apply(&msg, env)) {
                Some(Ok(out)) => {
                    if !out.warnings.is_empty() {
                        note = Some(format!("mapped with warnings: {}", out.warnings.join("; ")));
                    }
                    out.to_json()
                }
                Some(Err(e)) => {
                    note = Some(format!("mapping failed: {e}"));
                    Value::Null
                }
                None => Value::Null,
            }
        }
    };
    let mut c = Comparison::default();
    compare::compare_bundle(&mut c, &expected, &got, out_of_scope);
    (c, note)
}

/// `Patient.name[1].suffix` → `Patient.name.suffix`, to group mismatches by field.
fn field_kind(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut in_index = false;
    for ch in field.chars() {
        match ch {
            '[' => in_index = true,
            ']' => in_index = false,
            _ if !in_index => out.push(ch),
            _ => {}
        }
    }
    out
}

fn shown(v: Option<&str>) -> String {
    v.map(|s| format!("{s:?}")).unwrap_or_else(|| "nothing".into())
}

#[test]
fn the_v2_to_fhir_inventory_maps_to_the_same_meaning() {
    let Some(corpus) = corpus_dir() else { return };
    let suite = corpus.join(SUITE);
    if !suite.is_dir() {
        if required() {
            panic!("CAREHUB_REQUIRE_SERVICES=1 but {} is missing", suite.display());
        }
        eprintln!(
            "\n!!! SKIPPED: {} not found (set CAREHUB_CORPUS_DIR) !!!\n",
            suite.display()
        );
        return;
    }
    let mappings = MappingSet::load_dir(&mappings_dir()).expect("shipped mappings compile");
    // The guide's data is from the US; times without an offset are read as UTC, as it does.
    let env = TransformEnv {
        phone_region: "US".into(),
        timezone: jiff::tz::TimeZone::UTC,
        // As if received on a connector: identifiers without an issuer take its name.
        connector: Some("ig-inventory".into()),
    };
    let files = cases(&suite);
    assert!(files.len() > 100, "the suite has its cases ({})", files.len());

    let mut folders: BTreeMap<String, Tally> = BTreeMap::new();
    let mut how: BTreeMap<String, usize> = BTreeMap::new();
    let mut out_of_scope: BTreeMap<String, usize> = BTreeMap::new();
    let mut mismatches = Vec::new();
    let mut extras = Vec::new();
    let mut notes = Vec::new();
    let mut by_kind: BTreeMap<(String, &'static str), usize> = BTreeMap::new();
    let mut by_resource: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&suite).unwrap_or(f);
        let name = rel.with_extension("").display().to_string();
        let folder = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let (c, note) = run_case(f, &mappings, &env, &mut how, &mut out_of_scope);
        folders.entry(folder).or_default().add(&c);
        for check in &c.checks {
            let resource = check.field.split(['.', '[']).next().unwrap_or_default();
            let (comparable, matched) = by_resource.entry(resource.to_string()).or_default();
            *comparable += 1;
            *matched += usize::from(check.outcome == Outcome::Matched);
        }
        if let Some(n) = note {
            notes.push(format!("{name}: {n}"));
        }
        for check in c.checks.iter().filter(|c| c.outcome != Outcome::Matched) {
            *by_kind
                .entry((field_kind(&check.field), check.outcome.as_str()))
                .or_default() += 1;
            mismatches.push(format!(
                "  {name}  {}  {}: expected {:?}, got {}",
                check.field,
                check.outcome.as_str(),
                check.expected,
                shown(check.got.as_deref())
            ));
        }
        for (field, got) in &c.extras {
            extras.push(format!("  {name}  {field}: not expected, got {got:?}"));
        }
    }

    let mut total = Tally::default();
    eprintln!("\nconformance: {} cases from {SUITE}", files.len());
    for (label, n) in &how {
        eprintln!("  mapped with {label}: {n}");
    }
    eprintln!(
        "\n  {:<8} {:>5} {:>10} {:>7} {:>7} {:>9} {:>7}  {:>5}",
        "folder", "files", "comparable", "matched", "missing", "different", "match", "extra"
    );
    let row = |name: &str, t: &Tally| {
        let pct = t
            .percent()
            .map(|p| format!("{p:.1}%"))
            .unwrap_or_else(|| "-".into());
        eprintln!(
            "  {:<8} {:>5} {:>10} {:>7} {:>7} {:>9} {:>7}  {:>5}",
            name, t.files, t.comparable, t.matched, t.missing, t.different, pct, t.extra
        );
    };
    for (name, t) in &folders {
        row(name, t);
        total.absorb(t);
    }
    row("total", &total);
    for (resource, (comparable, matched)) in &by_resource {
        eprintln!("  {resource}: {matched} of {comparable} comparable fields match");
    }

    eprintln!("\nmismatches by field ({}):", mismatches.len());
    for ((field, outcome), n) in &by_kind {
        eprintln!("  {n:4}  {field}  {outcome}");
    }
    eprintln!("\nmismatches:");
    for m in &mismatches {
        eprintln!("{m}");
    }
    eprintln!("\nproduced but not in the expected FHIR ({}):", extras.len());
    for e in &extras {
        eprintln!("{e}");
    }
    eprintln!(
        "\ncases that did not map, or mapped with warnings ({}):",
        notes.len()
    );
    for n in &notes {
        eprintln!("  {n}");
    }
    eprintln!("\nout of scope (expected, not modelled by carehub), occurrences:");
    for (what, n) in &out_of_scope {
        eprintln!("  {n:4}  {what}");
    }

    assert!(total.comparable > 0, "the suite has fields carehub models");
    let pct = total.percent().unwrap_or(0.0);
    eprintln!(
        "\noverall: {} of {} comparable fields match ({pct:.1}%; floor {FLOOR_PERCENT}%)\n",
        total.matched, total.comparable
    );
    assert!(
        pct >= FLOOR_PERCENT,
        "conformance fell to {pct:.1}% (floor {FLOOR_PERCENT}%)"
    );
}
