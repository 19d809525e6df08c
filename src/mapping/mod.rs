//! Declarative mappings: YAML files that turn a source record into the canonical model.
//!
//! A mapping file is data, not code. It is compiled once at load (`compile`), which reports
//! every problem with its line, and then applied to each message (`engine`). The engine is pure:
//! it reads a parsed message and writes a typed patch; it never touches the store.
//!
//! Paths: `PID-3[2].4.1` (segment-field[repetition].component.subcomponent) and, inside a
//! `foreach`, `.4.1` relative to the current repetition. See `docs/mapping.md`.

mod compile;
mod engine;
pub mod fhir;
pub mod golden;
mod plan;
mod target;
mod transform;

use std::path::Path;

pub use compile::compile;
pub use engine::{MappingError, MappingOutput};
pub use fhir::{FhirEntry, MappedEntry, fhir_entries, map_entries};
pub use plan::{Input, Mapping};
pub use transform::{Transform, TransformEnv};

use crate::config::{Document, Problem};
use crate::hl7::MessageType;

/// The FHIR resources a JSON document holds: a Bundle's entries, one resource (`single`), or
/// NDJSON lines. `Err` says which line is not JSON.
pub fn fhir_resources(text: &str) -> Result<(Vec<serde_json::Value>, bool), String> {
    let (entries, single) = fhir_entries(text)?;
    Ok((entries.into_iter().map(|e| e.resource).collect(), single))
}

/// Fills in `person: {from: NAME}`: the named mapping's person output and the code tables it
/// uses. A table of the same name must say the same thing in both files.
fn resolve_person_from(mappings: &mut [Mapping], problems: &mut Vec<Problem>) {
    for i in 0..mappings.len() {
        let Some(from) = mappings[i].person_from.clone() else {
            continue;
        };
        let problem = |m: &Mapping, message: String| Problem {
            file: m.file.clone(),
            line: None,
            field: "person.from".into(),
            message,
        };
        let Some(source) = mappings.iter().find(|m| m.name == from) else {
            problems.push(problem(&mappings[i], format!("no mapping named {from}")));
            continue;
        };
        if source.person_from.is_some() || source.person.is_none() || source.input != mappings[i].input {
            let why = if source.input != mappings[i].input {
                "reads another kind of input"
            } else {
                "has no person output of its own"
            };
            problems.push(problem(&mappings[i], format!("mapping {from} {why}")));
            continue;
        }
        let (node, tables) = (source.person.clone(), source.tables.clone());
        let target = &mut mappings[i];
        // Resolved before against another version of the source: forget what came from it.
        for name in std::mem::take(&mut target.inherited_tables) {
            target.tables.remove(&name);
        }
        for (name, table) in tables {
            match target.tables.get(&name) {
                Some(own) if own.values != table.values || own.unknown != table.unknown => {
                    problems.push(problem(
                        target,
                        format!("table {name} differs from the one in mapping {from}; rename one of them"),
                    ))
                }
                Some(_) => {}
                None => {
                    target.inherited_tables.push(name.clone());
                    target.tables.insert(name, table);
                }
            }
        }
        target.person = node;
        if target.person_from_skips
            && let Some(n) = target.person.as_mut()
        {
            n.skip_errors();
        }
    }
}

/// Every mapping the hub knows, and the choice of one for a message.
#[derive(Debug, Clone, Default)]
pub struct MappingSet {
    mappings: Vec<Mapping>,
}

impl MappingSet {
    pub fn new(mappings: Vec<Mapping>) -> MappingSet {
        MappingSet { mappings }
    }

    /// Loads and compiles every `*.yaml` file of `dir` (sorted by name), collecting every problem.
    pub fn load_dir(dir: &Path) -> Result<MappingSet, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut mappings: Vec<Mapping> = Vec::new();
        for file in crate::config::yaml_files(dir, &mut problems) {
            let shown = file.display().to_string();
            let doc = match std::fs::read_to_string(&file) {
                Ok(text) => Document::parse(&shown, &text),
                Err(e) => Err(Problem {
                    file: shown.clone(),
                    line: None,
                    field: String::new(),
                    message: format!("cannot read: {e}"),
                }),
            };
            match doc.map_err(|p| vec![p]).and_then(|d| compile(&d).map(|m| (d, m))) {
                Ok((doc, m)) => {
                    if let Some(other) = mappings.iter().find(|o| o.name == m.name) {
                        problems.push(doc.problem(
                            "name",
                            format!("mapping {} is already defined in {}", m.name, other.file),
                        ));
                    } else {
                        mappings.push(m);
                    }
                }
                Err(mut ps) => problems.append(&mut ps),
            }
        }
        resolve_person_from(&mut mappings, &mut problems);
        if problems.is_empty() {
            Ok(MappingSet { mappings })
        } else {
            Err(problems)
        }
    }

    /// This set with `m` first, in place of a mapping of the same name (a mapping being tried
    /// out: `carehub map --mapping`, `carehub replay`).
    pub fn with_mapping(&self, m: Mapping) -> Result<MappingSet, Vec<Problem>> {
        let name = m.name.clone();
        let mut mappings = vec![m];
        mappings.extend(self.mappings.iter().filter(|o| o.name != name).cloned());
        let mut problems = Vec::new();
        resolve_person_from(&mut mappings, &mut problems);
        if problems.is_empty() {
            Ok(MappingSet { mappings })
        } else {
            Err(problems)
        }
    }

    pub fn get(&self, name: &str) -> Option<&Mapping> {
        self.mappings.iter().find(|m| m.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Mapping> {
        self.mappings.iter()
    }

    /// The mapping for a FHIR resource type (`Patient`).
    pub fn for_resource_type(&self, resource_type: &str) -> Option<&Mapping> {
        self.mappings
            .iter()
            .find(|m| m.resource_types.iter().any(|t| t == resource_type))
    }

    /// The mapping for a message type: an exact `ADT^A01` entry first, then `ADT^*` or `ADT`.
    pub fn for_message_type(&self, t: &MessageType) -> Option<&Mapping> {
        type_entries(t).iter().find_map(|want| {
            self.mappings
                .iter()
                .find(|m| m.message_types.iter().any(|mt| mt.eq_ignore_ascii_case(want)))
        })
    }
}

impl Mapping {
    /// True when `message_types` lists `t`: as `ADT^A01`, `ADT^*` or `ADT` (any case).
    pub fn covers_message_type(&self, t: &MessageType) -> bool {
        let entries = type_entries(t);
        self.message_types
            .iter()
            .any(|mt| entries.iter().any(|want| mt.eq_ignore_ascii_case(want)))
    }
}

/// The `message_types` entries that name `t`, most specific first: `ADT^A01`, `ADT^*`, `ADT`.
fn type_entries(t: &MessageType) -> [String; 3] {
    [
        format!("{}^{}", t.code, t.trigger),
        format!("{}^*", t.code),
        t.code.clone(),
    ]
}
