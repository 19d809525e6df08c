//! The local FHIR test server's corpus loader (`fhir_server.rs`): every resource of given
//! types from the shared corpus's FHIR folder.

use super::*;

impl FhirServer {
    /// Loads every resource of the given types from the corpus's FHIR folder (`<corpus>/fhir`,
    /// json Bundles and ndjson files: Synthea transaction bundles, bulk ndjson, official
    /// examples), de-duplicated by Type/id (the first in file order wins), with ids assigned
    /// where missing (from the entry's `fullUrl` when it ends in one, else `corpus-N`).
    /// Bundles are unpacked, nested ones too, and are not resources themselves.
    pub fn corpus_resources(corpus: &Path, types: &[&str]) -> Vec<Value> {
        let mut files = Vec::new();
        fhir_files(&corpus.join("fhir"), &mut files);
        let mut found = Vec::new();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let documents: Vec<Value> = if file.extension().is_some_and(|x| x == "ndjson") {
                text.lines()
                    .filter_map(|line| serde_json::from_str(line).ok())
                    .collect()
            } else {
                serde_json::from_str(&text).into_iter().collect()
            };
            for document in documents {
                unpack(document, None, &mut found);
            }
        }
        let mut seen = HashSet::new();
        let mut generated = 0;
        let mut out = Vec::new();
        for (mut resource, full_url) in found {
            let Some(rtype) = resource["resourceType"].as_str().map(str::to_string) else {
                continue;
            };
            if !types.contains(&rtype.as_str()) {
                continue;
            }
            if resource["id"].as_str().is_none() {
                let id = full_url.as_deref().and_then(id_from_full_url).unwrap_or_else(|| {
                    generated += 1;
                    format!("corpus-{generated}")
                });
                resource["id"] = json!(id);
            }
            if seen.insert(format!("{rtype}/{}", resource["id"].as_str().unwrap_or_default())) {
                out.push(resource);
            }
        }
        out
    }
}

/// The `.json` and `.ndjson` files under `dir`, in path order.
fn fhir_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            fhir_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "json" || x == "ndjson") {
            out.push(path);
        }
    }
}

/// The resources in `document` with the `fullUrl` of their Bundle entry: Bundles are opened
/// (nested ones too), anything else is a resource.
fn unpack(mut document: Value, full_url: Option<String>, out: &mut Vec<(Value, Option<String>)>) {
    if document["resourceType"] != "Bundle" {
        out.push((document, full_url));
        return;
    }
    let Value::Array(entries) = document["entry"].take() else {
        return;
    };
    for mut entry in entries {
        let full_url = entry["fullUrl"].as_str().map(str::to_string);
        if entry["resource"].is_object() {
            unpack(entry["resource"].take(), full_url, out);
        }
    }
}

/// The id a `fullUrl` ends in (`urn:uuid:…`, `…/Type/id`), when it is a valid FHIR id.
fn id_from_full_url(full_url: &str) -> Option<String> {
    let id = full_url
        .strip_prefix("urn:uuid:")
        .or_else(|| full_url.rsplit('/').next())?;
    let valid = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then(|| id.to_string())
}
