//! The value rules of a mapping file — paths, literals, `concat`/`first`, transforms, code
//! tables, conditions — compiled for [`super::Compiler`].

use serde_json::{Map, Value};

use super::Compiler;
use crate::mapping::plan::*;
use crate::mapping::transform::Transform;

impl Compiler<'_> {
    pub(super) fn value(&mut self, v: &Value, at: &str, in_each: bool) -> Option<ValueExpr> {
        let expr = |source| ValueExpr {
            rule: at.to_string(),
            source,
            transforms: Vec::new(),
            table: None,
            default: None,
            when: None,
            on_error: OnError::Error,
        };
        match v {
            Value::String(s) => self.path(s, at, in_each).map(|p| expr(Source::Paths(vec![p]))),
            Value::Object(m) => self.value_map(m, at, in_each),
            _ => {
                self.problem(at, "expected a path such as PID-7, or {path: ..., transform: ...}; write literals as {value: ...}");
                None
            }
        }
    }

    pub(super) fn value_map(&mut self, m: &Map<String, Value>, at: &str, in_each: bool) -> Option<ValueExpr> {
        const KEYS: &[&str] = &[
            "path",
            "value",
            "concat",
            "sep",
            "first",
            "transform",
            "map",
            "default",
            "when",
            "on_error",
        ];
        for k in m.keys() {
            if !KEYS.contains(&k.as_str()) {
                self.problem(
                    &format!("{at}.{k}"),
                    format!("unknown key (expected one of {})", KEYS.join(", ")),
                );
            }
        }
        let sources: Vec<&str> = ["path", "value", "concat", "first"]
            .into_iter()
            .filter(|k| m.contains_key(*k))
            .collect();
        if sources.len() != 1 {
            self.problem(at, "give exactly one of path, value, concat, first");
            return None;
        }
        let source = match sources[0] {
            "path" => {
                let p_at = format!("{at}.path");
                let list = self.string_list(m.get("path"), &p_at);
                let paths: Vec<PathRef> = list.iter().filter_map(|s| self.path(s, &p_at, in_each)).collect();
                if paths.len() != list.len() || paths.is_empty() {
                    if paths.is_empty() && list.is_empty() {
                        self.problem(&p_at, "expected at least one path");
                    }
                    return None;
                }
                Source::Paths(paths)
            }
            "value" => match m.get("value").and_then(scalar_text) {
                Some(s) => Source::Literal(s),
                None => {
                    self.problem(
                        &format!("{at}.value"),
                        "expected a text, number or boolean literal",
                    );
                    return None;
                }
            },
            key => {
                let list_at = format!("{at}.{key}");
                let Some(Value::Array(items)) = m.get(key) else {
                    self.problem(&list_at, "expected a list of rules");
                    return None;
                };
                let parts: Vec<ValueExpr> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, x)| self.value(x, &format!("{list_at}.{i}"), in_each))
                    .collect();
                if parts.len() != items.len() {
                    return None;
                }
                if key == "concat" {
                    let sep = match m.get("sep") {
                        None => " ".to_string(),
                        Some(s) => scalar_text(s).unwrap_or_default(),
                    };
                    Source::Concat { parts, sep }
                } else {
                    Source::First(parts)
                }
            }
        };
        if m.contains_key("sep") && !m.contains_key("concat") {
            self.problem(&format!("{at}.sep"), "sep only goes with concat");
        }
        let transforms = self.transforms(m.get("transform"), &format!("{at}.transform"));
        let table = match m.get("map") {
            None => None,
            Some(Value::String(t)) => {
                if !self.tables.contains_key(t) {
                    let known: Vec<&String> = self.tables.keys().collect();
                    self.problem(
                        &format!("{at}.map"),
                        format!("no table named {t} (tables: {known:?})"),
                    );
                }
                Some(t.clone())
            }
            Some(_) => {
                self.problem(&format!("{at}.map"), "expected a table name");
                None
            }
        };
        let default = m.get("default").and_then(scalar_text);
        let when = m
            .get("when")
            .and_then(|w| self.cond(w, &format!("{at}.when"), in_each));
        let on_error = match m.get("on_error").and_then(Value::as_str) {
            None if !m.contains_key("on_error") => OnError::Error,
            Some("error") => OnError::Error,
            Some("skip") => OnError::Skip,
            _ => {
                self.problem(&format!("{at}.on_error"), "expected error or skip");
                OnError::Error
            }
        };
        Some(ValueExpr {
            rule: at.to_string(),
            source,
            transforms,
            table,
            default,
            when,
            on_error,
        })
    }

    pub(super) fn transforms(&mut self, v: Option<&Value>, at: &str) -> Vec<Transform> {
        let items: Vec<(String, &Value)> = match v {
            None => return Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, x)| (format!("{at}.{i}"), x))
                .collect(),
            Some(other) => vec![(at.to_string(), other)],
        };
        let mut out = Vec::new();
        for (item_at, item) in items {
            let built = match item {
                Value::String(name) => Transform::from_name(name, None),
                Value::Object(m) if m.len() == 1 => {
                    let (name, args) = m.iter().next().expect("one entry");
                    Transform::from_name(name, Some(args))
                }
                _ => Err("expected a transform name or {name: {arguments}}".to_string()),
            };
            match built {
                Ok(t) => out.push(t),
                Err(e) => self.problem(&item_at, e),
            }
        }
        out
    }

    pub(super) fn cond(&mut self, v: &Value, at: &str, in_each: bool) -> Option<Cond> {
        let Some(m) = v.as_object() else {
            self.problem(at, "expected a condition such as {path: PID-8, in: [M, F]}");
            return None;
        };
        let list = |c: &mut Self, key: &str| -> Option<Vec<Cond>> {
            let Some(Value::Array(items)) = m.get(key) else {
                c.problem(&format!("{at}.{key}"), "expected a list of conditions");
                return None;
            };
            let conds: Vec<Cond> = items
                .iter()
                .enumerate()
                .filter_map(|(i, x)| c.cond(x, &format!("{at}.{key}.{i}"), in_each))
                .collect();
            (conds.len() == items.len()).then_some(conds)
        };
        if m.len() == 1 {
            if let Some(inner) = m.get("not") {
                return self
                    .cond(inner, &format!("{at}.not"), in_each)
                    .map(|c| Cond::Not(Box::new(c)));
            }
            if m.contains_key("all") {
                return list(self, "all").map(Cond::All);
            }
            if m.contains_key("any") {
                return list(self, "any").map(Cond::Any);
            }
        }
        let Some(Value::String(p)) = m.get("path") else {
            self.problem(at, "expected path with equals, in or exists; or not, all, any");
            return None;
        };
        for k in m.keys() {
            if !["path", "equals", "in", "exists"].contains(&k.as_str()) {
                self.problem(
                    &format!("{at}.{k}"),
                    "unknown key (expected path, equals, in, exists, not, all, any)",
                );
            }
        }
        let path = self.path(p, &format!("{at}.path"), in_each)?;
        if let Some(e) = m.get("equals") {
            return match scalar_text(e) {
                Some(s) => Some(Cond::In {
                    path,
                    values: vec![s],
                }),
                None => {
                    self.problem(&format!("{at}.equals"), "expected a text value");
                    None
                }
            };
        }
        if let Some(list) = m.get("in") {
            let values = self.string_list(Some(list), &format!("{at}.in"));
            return Some(Cond::In { path, values });
        }
        match m.get("exists") {
            Some(Value::Bool(b)) => Some(Cond::Exists { path, exists: *b }),
            _ => {
                self.problem(at, "give equals, in or exists: true|false");
                None
            }
        }
    }
}

pub(super) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
