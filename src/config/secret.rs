//! Secrets and `${VAR}` references: values an IT team must never write into a YAML file.
//!
//! Any string in a configuration file may reference the environment as `${NAME}` (or
//! `${NAME:-default}`); `$${` stands for a literal `${`. References are resolved once, at load, and a missing variable is a
//! configuration problem, not an empty string. Fields that hold credentials are typed
//! [`Secret`], whose `Debug` prints `***` so that a dumped config never shows them.

use serde::Deserialize;
use serde_json::Value;

use super::yaml::{Document, Problem};

/// A credential taken from configuration; never printed.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The secret's value, for the one place that hands it to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Replaces every `${NAME}` in every string of `doc` with the environment's value, using `env`
/// to look names up (tests pass their own). Returns one problem per missing variable.
pub fn interpolate(doc: &mut Document, env: &dyn Fn(&str) -> Option<String>) -> Vec<Problem> {
    let mut missing: Vec<(String, String)> = Vec::new();
    walk(&mut doc.value, String::new(), env, &mut missing);
    missing
        .into_iter()
        .map(|(field, name)| {
            doc.problem(
                &field,
                format!("environment variable {name} is not set (referenced as ${{{name}}})"),
            )
        })
        .collect()
}

fn walk(
    value: &mut Value,
    path: String,
    env: &dyn Fn(&str) -> Option<String>,
    missing: &mut Vec<(String, String)>,
) {
    match value {
        Value::String(s) if s.contains('$') => match resolve(s, env) {
            Ok(resolved) => *s = resolved,
            Err(name) => missing.push((path, name)),
        },
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                walk(v, child(&path, &i.to_string()), env, missing);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                walk(v, child(&path, k), env, missing);
            }
        }
        _ => {}
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Resolves references in one string; `Err(name)` names the first missing variable.
pub fn resolve(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            match tail.find('}') {
                Some(end) => {
                    let inner = &tail[..end];
                    // `${NAME:-default}` falls back to the default when NAME is unset or empty.
                    let (name, default) = match inner.split_once(":-") {
                        Some((n, d)) => (n, Some(d)),
                        None => (inner, None),
                    };
                    match (env(name).filter(|v| !v.is_empty() || default.is_none()), default) {
                        (Some(v), _) => out.push_str(&v),
                        (None, Some(d)) => out.push_str(d),
                        (None, None) => return Err(name.to_string()),
                    }
                    rest = &tail[end + 1..];
                }
                None => {
                    out.push_str(after);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "SMTP_PASSWORD").then(|| "hunter2".to_string())
    }

    #[test]
    fn references_resolve_and_escapes_stay_literal() {
        assert_eq!(resolve("p=${SMTP_PASSWORD}!", &env).unwrap(), "p=hunter2!");
        assert_eq!(resolve("$${SMTP_PASSWORD}", &env).unwrap(), "${SMTP_PASSWORD}");
        assert_eq!(resolve("cost $5", &env).unwrap(), "cost $5");
        assert_eq!(resolve("${NOPE}", &env).unwrap_err(), "NOPE");
        assert_eq!(
            resolve("${NOPE:-127.0.0.1:2575}", &env).unwrap(),
            "127.0.0.1:2575"
        );
        assert_eq!(resolve("${SMTP_PASSWORD:-x}", &env).unwrap(), "hunter2");
    }

    #[test]
    fn a_missing_variable_is_a_problem_with_a_line() {
        let mut doc = Document::parse("c.yaml", "a: 1\nsmtp:\n  password: ${NOPE}\n").unwrap();
        let problems = interpolate(&mut doc, &env);
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].to_string(),
            "c.yaml:3: smtp.password: environment variable NOPE is not set (referenced as ${NOPE})"
        );
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
