//! Configuration: `config/carehub.yaml`, `connectors/*.yaml` and `mappings/*.yaml`.
//!
//! Loading is two phases (see `docs/configuration.md`): a pure pass that reads every file and
//! collects *every* problem as `file:line: field: problem` — what `carehub validate` prints —
//! and, only when there is none, the typed [`Settings`] the app builds from. Environment
//! variables override hub settings (`CAREHUB__API__LISTEN=0.0.0.0:8080`) and `${NAME}`
//! references are resolved from the environment; nothing here opens a socket or a database.

mod hub;
mod retention;
mod secret;
mod yaml;

use std::path::{Path, PathBuf};

pub use hub::{
    ApiConfig, AuthConfig, HubConfig, LogConfig, LogFormat, PipelineConfig, SqliteSync, StoreConfig,
    is_region, redact_url,
};
pub use retention::{Cutoffs, KeepBody, RetentionConfig, RetentionPolicy};
pub use secret::{Secret, interpolate};
pub use yaml::{Document, LineMap, Problem, deserialize_value};

use crate::mapping::MappingSet;
use crate::sources::ConnectorConfig;

/// The default configuration file.
pub const DEFAULT_CONFIG: &str = "config/carehub.yaml";

/// Prefix of environment overrides; `__` separates keys.
const ENV_PREFIX: &str = "CAREHUB__";

/// Everything the hub runs from, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub hub: HubConfig,
    pub connectors: Vec<ConnectorConfig>,
    pub mappings: MappingSet,
    /// Channels by name (enabled or not), from `channels:` in the hub file.
    pub channels: Vec<(String, crate::channels::ChannelConfig)>,
    /// Notification rules (`notifications.rules_dir`), enabled or not.
    pub rules: Vec<crate::rules::RuleConfig>,
    /// Alerts to ops (`alerts_file`), when the file exists.
    pub alerts: Option<crate::alerts::AlertsConfig>,
    pub templates: crate::delivery::Templates,
}

/// Loads and checks every file, reading the process environment.
pub fn load(path: &Path) -> Result<Settings, Vec<Problem>> {
    // vars_os: a variable that is not UTF-8 is skipped, not a panic.
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    load_with_env(path, &env)
}

/// Loads and checks every file against the given environment (tests pass their own).
pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Settings, Vec<Problem>> {
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut problems = Vec::new();
    let shown = path.display().to_string();
    let mut channels = Vec::new();

    let hub = match std::fs::read_to_string(path) {
        Ok(text) => match Document::parse(&shown, &text) {
            Ok(mut doc) => {
                apply_env_overrides(&mut doc, env);
                problems.extend(interpolate(&mut doc, &lookup));
                let (hub, found) = doc.deserialize::<HubConfig>();
                problems.extend(found);
                if let Some(hub) = &hub {
                    problems.extend(hub.check(&doc));
                    problems.extend(hub.notifications.check(&doc));
                    problems.extend(crate::subscriptions::check(&hub.subscriptions, &doc));
                    if hub.queue.kind == crate::queue::QueueKind::Rabbitmq && hub.queue.url.is_none() {
                        problems.push(
                            doc.problem("queue.url", "needed with kind: rabbitmq (e.g. ${RABBITMQ_URL})"),
                        );
                    }
                    for (name, value) in &hub.channels {
                        let (c, found) = crate::channels::ChannelConfig::from_value(
                            &doc,
                            value,
                            &format!("channels.{name}"),
                        );
                        problems.extend(found);
                        if let Some(c) = c {
                            channels.push((name.clone(), c));
                        }
                    }
                }
                hub
            }
            Err(p) => {
                problems.push(p);
                None
            }
        },
        Err(e) => {
            problems.push(Problem {
                file: shown,
                line: None,
                field: String::new(),
                message: format!("cannot read: {e}"),
            });
            None
        }
    };
    let Some(hub) = hub else { return Err(problems) };

    let (mappings, mappings_ok) = match MappingSet::load_dir(Path::new(&hub.mappings_dir)) {
        Ok(m) => (m, true),
        Err(p) => {
            problems.extend(p);
            (MappingSet::default(), false)
        }
    };
    let mut file_dirs: Vec<(String, std::path::PathBuf)> = Vec::new();

    let mut connectors: Vec<ConnectorConfig> = Vec::new();
    for file in yaml_files(Path::new(&hub.connectors_dir), &mut problems) {
        let Some(mut doc) = read_document(&file, &mut problems) else {
            continue;
        };
        problems.extend(interpolate(&mut doc, &lookup));
        match ConnectorConfig::from_document(&doc) {
            Ok(c) => {
                if connectors.iter().any(|o| o.name() == c.name()) {
                    problems.push(doc.problem("name", format!("connector {} is defined twice", c.name())));
                }
                // A mapping file with problems of its own is already reported; don't pile on.
                if let Some(m) = c.mapping()
                    && mappings.get(m).is_none()
                    && mappings_ok
                {
                    let known: Vec<&str> = mappings.iter().map(|m| m.name.as_str()).collect();
                    problems.push(doc.problem(
                        "mapping",
                        format!("no mapping named {m} (known: {})", known.join(", ")),
                    ));
                }
                let receives = match &c {
                    ConnectorConfig::FhirPush(_) | ConnectorConfig::Fhir(_) => crate::mapping::Input::Fhir,
                    _ => crate::mapping::Input::Hl7v2,
                };
                if let Some(m) = c.mapping().and_then(|m| mappings.get(m))
                    && m.input != receives
                {
                    let (reads, gets) = match receives {
                        crate::mapping::Input::Fhir => ("HL7 v2", "FHIR"),
                        crate::mapping::Input::Hl7v2 => ("FHIR", "HL7 v2"),
                    };
                    problems.push(doc.problem(
                        "mapping",
                        format!("mapping {} reads {reads}; this connector receives {gets}", m.name),
                    ));
                }
                if let ConnectorConfig::FhirPush(f) = &c
                    && f.enabled
                    && connectors.iter().any(|o| {
                        matches!(o, ConnectorConfig::FhirPush(x) if x.enabled && x.path == f.path && x.name != f.name)
                    })
                {
                    problems.push(doc.problem("path", format!("{} is already served by another FHIR push connector", f.path)));
                }
                if let ConnectorConfig::Mllp(mllp) = &c
                    && mllp.enabled
                {
                    let other_mllp = connectors.iter().filter_map(|o| match o {
                        ConnectorConfig::Mllp(x) if x.enabled => Some(x.listen.as_str()),
                        _ => None,
                    });
                    let api = hub.api.enabled.then_some(hub.api.listen.as_str());
                    if other_mllp.chain(api).any(|other| same_port(other, &mllp.listen)) {
                        problems.push(doc.problem(
                            "listen",
                            format!("{} is already used by another listener", mllp.listen),
                        ));
                    }
                }
                if let ConnectorConfig::File(f) = &c {
                    let dir = std::path::PathBuf::from(&f.dir);
                    if f.done_dir() == dir || f.error_dir() == dir {
                        problems.push(doc.problem("done_dir", "done_dir and error_dir must differ from dir"));
                    }
                    if let Some((other, _)) = file_dirs.iter().find(|(_, d)| *d == dir) {
                        problems
                            .push(doc.problem("dir", format!("connector {other} already reads {}", f.dir)));
                    }
                    file_dirs.push((f.name.clone(), dir));
                }
                connectors.push(c);
            }
            Err(p) => problems.extend(p),
        }
    }

    let templates =
        crate::delivery::Templates::load_dir(Path::new(&hub.notifications.templates_dir), &mut problems);
    let channel_names: Vec<String> = channels.iter().map(|(n, _)| n.clone()).collect();
    let rules = crate::rules::load_dir(
        Path::new(&hub.notifications.rules_dir),
        &channel_names,
        &|t| templates.has(t),
        &mut problems,
    );

    let connector_names: Vec<String> = connectors.iter().map(|c| c.name().to_string()).collect();
    let alerts_path = match &hub.alerts_file {
        Some(file) => PathBuf::from(file),
        None => path.parent().unwrap_or(Path::new(".")).join("alerts.yaml"),
    };
    let alerts = crate::alerts::AlertsConfig::load(&alerts_path, &connector_names, &channel_names)
        .unwrap_or_else(|found| {
            problems.extend(found);
            None
        });

    if problems.is_empty() {
        Ok(Settings {
            hub,
            connectors,
            mappings,
            channels,
            rules,
            templates,
            alerts,
        })
    } else {
        Err(problems)
    }
}

/// Whether two listen addresses would take the same port (port 0 never clashes; an unspecified
/// address such as 0.0.0.0 clashes with every address of its family).
fn same_port(a: &str, b: &str) -> bool {
    match (
        a.parse::<std::net::SocketAddr>(),
        b.parse::<std::net::SocketAddr>(),
    ) {
        (Ok(x), Ok(y)) => {
            x.port() != 0
                && x.port() == y.port()
                && (x.ip() == y.ip() || x.ip().is_unspecified() || y.ip().is_unspecified())
        }
        _ => false,
    }
}

/// Reads and parses one YAML file; an unreadable or ill-formed file is a problem.
pub fn read_document(file: &Path, problems: &mut Vec<Problem>) -> Option<Document> {
    let shown = file.display().to_string();
    match std::fs::read_to_string(file).map(|t| Document::parse(&shown, &t)) {
        Ok(Ok(doc)) => Some(doc),
        Ok(Err(p)) => {
            problems.push(p);
            None
        }
        Err(e) => {
            problems.push(Problem {
                file: shown,
                line: None,
                field: String::new(),
                message: format!("cannot read: {e}"),
            });
            None
        }
    }
}

/// `*.yaml` and `*.yml` files of a folder, sorted; a missing folder is a problem.
pub fn yaml_files(dir: &Path, problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(Problem {
                file: dir.display().to_string(),
                line: None,
                field: String::new(),
                message: format!("cannot read folder: {e}"),
            });
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    files
}

/// Applies `CAREHUB__A__B=value` as `a.b: value` (the value read as a YAML scalar).
fn apply_env_overrides(doc: &mut Document, env: &[(String, String)]) {
    for (key, raw) in env {
        let Some(rest) = key.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        if path.iter().any(String::is_empty) {
            continue;
        }
        let value = scalar_from_env(raw);
        let mut node = &mut doc.value;
        for (i, part) in path.iter().enumerate() {
            if !node.is_object() {
                *node = serde_json::Value::Object(Default::default());
            }
            let serde_json::Value::Object(map) = node else {
                break;
            };
            if i + 1 == path.len() {
                map.insert(part.clone(), value.clone());
                break;
            }
            node = map
                .entry(part.clone())
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
        }
    }
}

fn scalar_from_env(raw: &str) -> serde_json::Value {
    use serde_json::Value;
    match raw {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => raw
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::same_port;

    #[test]
    fn listeners_clash_on_the_same_port_of_overlapping_addresses() {
        assert!(same_port("127.0.0.1:2575", "127.0.0.1:2575"));
        assert!(same_port("0.0.0.0:2575", "127.0.0.1:2575"));
        assert!(!same_port("127.0.0.1:2575", "127.0.0.2:2575"));
        assert!(
            !same_port("127.0.0.1:0", "127.0.0.1:0"),
            "port 0 is picked by the OS"
        );
        assert!(!same_port("127.0.0.1:2575", "127.0.0.1:2576"));
    }
}
