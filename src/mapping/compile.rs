//! From a mapping file's YAML to a [`Mapping`]: every problem found, each with its line.
//!
//! The compiler walks the YAML tree itself (rather than through serde) so that it can keep
//! going after a problem and report all of them: unknown target fields, bad paths, unknown
//! transforms and tables, relative paths outside a `foreach`. Nothing here reads a message.

use std::collections::HashMap;

use serde_json::Value;

use super::plan::*;
use super::target::{OUTPUTS, Shape};
use crate::config::{Document, Problem};
use crate::model::RecordKind;
use crate::{fhirpath, hl7};

mod value;

use value::scalar_text;

/// Inputs a mapping may read; `fhir` arrives with the FHIR connector.
const INPUTS: &[&str] = &["hl7v2", "fhir"];

struct Compiler<'a> {
    doc: &'a Document,
    problems: Vec<Problem>,
    tables: HashMap<String, CodeTable>,
    input: Input,
}

/// Compiles one mapping document.
pub fn compile(doc: &Document) -> Result<Mapping, Vec<Problem>> {
    let mut c = Compiler {
        doc,
        problems: Vec::new(),
        tables: HashMap::new(),
        input: Input::Hl7v2,
    };
    let Some(root) = doc.value.as_object() else {
        return Err(vec![
            doc.problem("", "a mapping file must be a YAML mapping of keys"),
        ]);
    };
    let known = [
        "name",
        "description",
        "input",
        "message_types",
        "resource_types",
        "tables",
    ];
    for key in root.keys() {
        if !known.contains(&key.as_str()) && !OUTPUTS.iter().any(|(k, _)| k == key) {
            let outputs: Vec<&str> = OUTPUTS.iter().map(|(k, _)| *k).collect();
            c.problem(
                key,
                format!(
                    "unknown key (expected one of {}, {})",
                    known.join(", "),
                    outputs.join(", ")
                ),
            );
        }
    }
    let name = match root.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(_) => {
            c.problem("name", "must be a non-empty string");
            String::new()
        }
        None => {
            c.problem("", "name: missing (every mapping needs a unique name)");
            String::new()
        }
    };
    let description = root
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_string);
    match root.get("input") {
        Some(Value::String(s)) if s == "fhir" => c.input = Input::Fhir,
        Some(Value::String(s)) if INPUTS.contains(&s.as_str()) => {}
        Some(other) => c.problem(
            "input",
            format!("expected one of {}, got {other}", INPUTS.join(", ")),
        ),
        None => c.problem("", format!("input: missing (one of {})", INPUTS.join(", "))),
    }
    let message_types = c.string_list(root.get("message_types"), "message_types");
    let resource_types = c.string_list(root.get("resource_types"), "resource_types");
    match c.input {
        Input::Hl7v2 if !resource_types.is_empty() => {
            c.problem("resource_types", "an hl7v2 mapping chooses by message_types")
        }
        Input::Fhir if !message_types.is_empty() => {
            c.problem("message_types", "a fhir mapping chooses by resource_types")
        }
        _ => {}
    }
    for (i, t) in resource_types.iter().enumerate() {
        if t.is_empty()
            || !t.starts_with(|ch: char| ch.is_ascii_uppercase())
            || !t.chars().all(|ch| ch.is_ascii_alphanumeric())
        {
            c.problem(
                &format!("resource_types.{i}"),
                format!("\"{t}\" is not a FHIR resource type such as Patient"),
            );
        }
    }
    for (i, t) in message_types.iter().enumerate() {
        if !valid_message_type(t) {
            c.problem(
                &format!("message_types.{i}"),
                format!("\"{t}\" is not a message type such as ADT^A01, ADT^* or ADT"),
            );
        }
    }
    if let Some(tables) = root.get("tables") {
        c.tables(tables);
    }
    let mut person = None;
    let mut records = Vec::new();
    let mut merge = None;
    let mut person_from = None;
    let mut person_from_skips = false;
    for (key, shape) in OUTPUTS {
        let Some(v) = root.get(*key) else { continue };
        if *key == "person"
            && let Some(obj) = v.as_object()
            && obj.contains_key("from")
        {
            let skips = match obj.get("on_error") {
                None => Some(false),
                Some(Value::String(s)) if s == "skip" => Some(true),
                Some(Value::String(s)) if s == "error" => Some(false),
                Some(_) => None,
            };
            let extra = obj.keys().any(|k| k != "from" && k != "on_error");
            match (obj.get("from"), skips) {
                (Some(Value::String(name)), Some(skips)) if !name.trim().is_empty() && !extra => {
                    person_from = Some(name.trim().to_string());
                    person_from_skips = skips;
                }
                _ => c.problem(
                    "person.from",
                    "expected {from: MAPPING-NAME} with, optionally, on_error: skip or error",
                ),
            }
            continue;
        }
        let Some(node) = c.node(v, shape, key, false) else {
            continue;
        };
        match *key {
            "person" => person = Some(node),
            "merge" => merge = Some(node),
            "encounters" => records.push((RecordKind::Encounter, node)),
            "appointments" => records.push((RecordKind::Appointment, node)),
            "orders" => records.push((RecordKind::Order, node)),
            "results" => records.push((RecordKind::Result, node)),
            _ => records.push((RecordKind::Diagnosis, node)),
        }
    }
    if person.is_none()
        && person_from.is_none()
        && records.is_empty()
        && merge.is_none()
        && c.problems.is_empty()
    {
        let outputs: Vec<&str> = OUTPUTS.iter().map(|(k, _)| *k).collect();
        c.problem(
            "",
            format!("the mapping has no output (add one of {})", outputs.join(", ")),
        );
    }
    if c.problems.is_empty() {
        Ok(Mapping {
            name,
            description,
            file: doc.file.clone(),
            input: c.input,
            message_types,
            resource_types,
            tables: c.tables,
            person,
            person_from,
            person_from_skips,
            inherited_tables: Vec::new(),
            records,
            merge,
        })
    } else {
        Err(c.problems)
    }
}

/// A segment name (`OBX`, `ZPI`): a `foreach` over it walks segments, not field repetitions.
fn is_segment_name(s: &str) -> bool {
    s.len() == 3
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn valid_message_type(t: &str) -> bool {
    let mut parts = t.split('^');
    let code = parts.next().unwrap_or("");
    let code_ok = code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphanumeric());
    let trigger_ok = match parts.next() {
        None => true,
        Some("*") => true,
        Some(tr) => !tr.is_empty() && tr.bytes().all(|b| b.is_ascii_alphanumeric()),
    };
    code_ok && trigger_ok && parts.next().is_none()
}

impl Compiler<'_> {
    fn problem(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(self.doc.problem(field, message));
    }

    fn string_list(&mut self, v: Option<&Value>, at: &str) -> Vec<String> {
        match v {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        _ => self.problem(&format!("{at}.{i}"), "expected a string"),
                    }
                }
                out
            }
            Some(_) => {
                self.problem(at, "expected a string or a list of strings");
                Vec::new()
            }
        }
    }

    fn tables(&mut self, v: &Value) {
        let Some(map) = v.as_object() else {
            self.problem("tables", "expected a mapping of table names");
            return;
        };
        for (name, table) in map {
            let at = format!("tables.{name}");
            let Some(t) = table.as_object() else {
                self.problem(&at, "expected {values: {...}, unknown: ...}");
                continue;
            };
            for k in t.keys() {
                if k != "values" && k != "unknown" {
                    self.problem(&format!("{at}.{k}"), "unknown key (expected values or unknown)");
                }
            }
            let mut values = HashMap::new();
            match t.get("values") {
                Some(Value::Object(m)) => {
                    for (code, target) in m {
                        match scalar_text(target) {
                            Some(s) => {
                                values.insert(code.clone(), s);
                            }
                            None => self.problem(&format!("{at}.values.{code}"), "expected a text value"),
                        }
                    }
                }
                _ => self.problem(&at, "values: missing or not a mapping of code: value"),
            }
            let unknown = match t.get("unknown") {
                None => UnknownCode::Error,
                Some(Value::String(s)) if s == "error" => UnknownCode::Error,
                Some(Value::String(s)) if s == "keep" => UnknownCode::Keep,
                Some(Value::String(s)) if s == "empty" => UnknownCode::Empty,
                Some(Value::Object(m)) if m.len() == 1 && m.contains_key("default") => {
                    match m.get("default").and_then(scalar_text) {
                        Some(d) => UnknownCode::Default(d),
                        None => {
                            self.problem(&format!("{at}.unknown.default"), "expected a text value");
                            UnknownCode::Error
                        }
                    }
                }
                Some(_) => {
                    self.problem(
                        &format!("{at}.unknown"),
                        "expected error, keep, empty or {default: VALUE}",
                    );
                    UnknownCode::Error
                }
            };
            self.tables.insert(name.clone(), CodeTable { values, unknown });
        }
    }

    /// Compiles the value at `at` for a target of `shape`.
    fn node(&mut self, v: &Value, shape: &'static Shape, at: &str, in_each: bool) -> Option<Node> {
        match shape {
            Shape::Text => self.value(v, at, in_each).map(|e| Node::Value(Box::new(e))),
            Shape::OneOf(allowed) => {
                let e = self.value(v, at, in_each)?;
                self.check_closed(&e, allowed, at);
                Some(Node::Value(Box::new(e)))
            }
            Shape::Object(_) => {
                let Some(map) = v.as_object() else {
                    self.problem(
                        at,
                        format!("expected the fields {}", shape.field_names().join(", ")),
                    );
                    return None;
                };
                let mut fields = Vec::new();
                for (key, fv) in map {
                    let child = format!("{at}.{key}");
                    match shape.field(key) {
                        Some(s) => {
                            if let Some(n) = self.node(fv, s, &child, in_each) {
                                fields.push((key.clone(), n));
                            }
                        }
                        None => self.problem(
                            &child,
                            format!(
                                "unknown target field (expected one of {})",
                                shape.field_names().join(", ")
                            ),
                        ),
                    }
                }
                Some(Node::Object(fields))
            }
            Shape::List(inner) => {
                let items: Vec<(String, &Value)> = match v {
                    Value::Array(a) => a
                        .iter()
                        .enumerate()
                        .map(|(i, x)| (format!("{at}.{i}"), x))
                        .collect(),
                    other => vec![(at.to_string(), other)],
                };
                let mut out = Vec::new();
                for (item_at, item) in items {
                    if let Some(li) = self.list_item(item, inner, &item_at, in_each) {
                        out.push(li);
                    }
                }
                Some(Node::List(out))
            }
        }
    }

    fn list_item(&mut self, v: &Value, inner: &'static Shape, at: &str, in_each: bool) -> Option<ListItem> {
        let obj = v.as_object();
        let is_text = matches!(inner, Shape::Text);
        let body_key = if is_text { "item" } else { "fields" };
        let has = |k: &str| obj.is_some_and(|o| o.contains_key(k));
        if is_text && !has("foreach") {
            // A list of text values: each entry is a value rule.
            return self.value(v, at, in_each).map(|e| ListItem::Single {
                when: None,
                body: Node::Value(Box::new(e)),
            });
        }
        let Some(obj) = obj else {
            self.problem(
                at,
                format!("expected {{foreach: PATH, {body_key}: ...}} or {{{body_key}: ...}}"),
            );
            return None;
        };
        for k in obj.keys() {
            if !["foreach", "when", body_key, "require", "until", "group"].contains(&k.as_str()) {
                self.problem(
                    &format!("{at}.{k}"),
                    format!("unknown key (expected foreach, when, {body_key}, require, until, group)"),
                );
            }
        }
        let until = self.string_list(obj.get("until"), &format!("{at}.until"));
        let group = match obj.get("group") {
            Some(Value::Object(m)) => {
                for k in m.keys().filter(|k| *k != "before" && *k != "after") {
                    self.problem(&format!("{at}.group.{k}"), "unknown key (expected before, after)");
                }
                SegmentGroup {
                    before: self.string_list(m.get("before"), &format!("{at}.group.before")),
                    after: self.string_list(m.get("after"), &format!("{at}.group.after")),
                }
            }
            other => SegmentGroup {
                before: self.string_list(other, &format!("{at}.group")),
                after: Vec::new(),
            },
        };
        let names = [
            ("until", until.clone()),
            ("group", [group.before.clone(), group.after.clone()].concat()),
        ];
        for (key, names) in names.iter().map(|(k, n)| (*k, n)) {
            for (i, u) in names.iter().enumerate() {
                if !is_segment_name(u) {
                    self.problem(
                        &format!("{at}.{key}.{i}"),
                        format!("\"{u}\" is not a segment name such as OBR"),
                    );
                }
            }
        }
        let Some(body_v) = obj.get(body_key) else {
            self.problem(at, format!("{body_key}: missing"));
            return None;
        };
        match obj.get("foreach") {
            Some(fv) => {
                let over_at = format!("{at}.foreach");
                let mut over = Vec::new();
                for (i, p) in self.string_list(Some(fv), &over_at).iter().enumerate() {
                    let p_at = if fv.is_array() {
                        format!("{over_at}.{i}")
                    } else {
                        over_at.clone()
                    };
                    match self.input {
                        Input::Hl7v2 if is_segment_name(p) => over.push(Over::Segment {
                            name: p.clone(),
                            until: until.clone(),
                            group: group.clone(),
                        }),
                        Input::Hl7v2 => match hl7::Path::parse(p) {
                            Ok(path) => over.push(Over::Hl7(path)),
                            Err(e) => self.problem(&p_at, format!("bad path \"{p}\": {e}")),
                        },
                        Input::Fhir => match fhirpath::Expr::parse(p) {
                            Ok(e) => over.push(Over::Fhir(e)),
                            Err(e) => self.problem(&p_at, format!("bad FHIRPath \"{p}\": {e}")),
                        },
                    }
                }
                if (!until.is_empty() || !group.is_empty())
                    && !over.iter().all(|o| matches!(o, Over::Segment { .. }))
                {
                    self.problem(
                        &format!("{at}.foreach"),
                        "until and group are for a foreach over segments (foreach: OBX)",
                    );
                }
                let when = obj
                    .get("when")
                    .and_then(|w| self.cond(w, &format!("{at}.when"), true));
                let body = self.node(body_v, inner, &format!("{at}.{body_key}"), true)?;
                let require = self.string_list(obj.get("require"), &format!("{at}.require"));
                for r in &require {
                    if inner.field(r).is_none() {
                        self.problem(
                            &format!("{at}.require"),
                            format!("{r} is not a field of this list"),
                        );
                    }
                }
                Some(ListItem::Each {
                    rule: at.to_string(),
                    over,
                    when,
                    body,
                    require,
                })
            }
            None => {
                if !until.is_empty() || !group.is_empty() {
                    self.problem(
                        at,
                        "until and group are for a foreach over segments (foreach: OBX)",
                    );
                }
                let when = obj
                    .get("when")
                    .and_then(|w| self.cond(w, &format!("{at}.when"), in_each));
                let body = self.node(body_v, inner, &format!("{at}.{body_key}"), in_each)?;
                Some(ListItem::Single { when, body })
            }
        }
    }

    /// A value for a closed field: its literals, its default and its code table's values must
    /// be in the set, so a typo (`finised`) is a `validate` problem, not a refused message.
    fn check_closed(&mut self, e: &ValueExpr, allowed: &[&str], at: &str) {
        let expected = || allowed.join(", ");
        let mut bad: Vec<String> = Vec::new();
        match &e.source {
            Source::Literal(v) if !allowed.contains(&v.as_str()) => bad.push(format!("value {v:?}")),
            Source::First(alts) => alts.iter().for_each(|a| self.check_closed(a, allowed, at)),
            _ => {}
        }
        if let Some(d) = &e.default
            && !allowed.contains(&d.as_str())
        {
            bad.push(format!("default {d:?}"));
        }
        if let Some(t) = e
            .table
            .as_ref()
            .and_then(|name| self.tables.get(name).map(|t| (name, t)))
        {
            let (name, table) = t;
            let mut wrong: Vec<&String> = table
                .values
                .values()
                .filter(|v| !allowed.contains(&v.as_str()))
                .collect();
            wrong.sort();
            wrong.dedup();
            if !wrong.is_empty() {
                bad.push(format!(
                    "table {name} gives {}",
                    wrong
                        .iter()
                        .map(|w| format!("{w:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            match &table.unknown {
                UnknownCode::Default(d) if !allowed.contains(&d.as_str()) => {
                    bad.push(format!("table {name}'s default {d:?}"))
                }
                UnknownCode::Keep => bad.push(format!("table {name} keeps unknown codes as they are")),
                _ => {}
            }
        }
        if !bad.is_empty() {
            self.problem(
                at,
                format!("{}: this field takes only {}", bad.join("; "), expected()),
            );
        }
    }

    fn path(&mut self, s: &str, at: &str, in_each: bool) -> Option<PathRef> {
        if s == "$source" {
            return Some(PathRef::Source);
        }
        if self.input == Input::Fhir {
            // Inside a foreach a FHIRPath runs on the current item; %resource is the resource.
            return match fhirpath::Expr::parse(s) {
                Ok(e) => Some(PathRef::Fhir(e)),
                Err(e) => {
                    self.problem(at, format!("bad FHIRPath \"{s}\": {e}"));
                    None
                }
            };
        }
        if s.starts_with('.') {
            if !in_each {
                self.problem(
                    at,
                    format!("relative path \"{s}\" is only meaningful inside a foreach"),
                );
                return None;
            }
            match hl7::Path::parse_relative(s) {
                Ok(r) => Some(PathRef::Rel(r)),
                Err(e) => {
                    self.problem(at, format!("bad path \"{s}\": {e}"));
                    None
                }
            }
        } else {
            match hl7::Path::parse(s) {
                Ok(p) => Some(PathRef::Abs(p)),
                Err(e) => {
                    self.problem(at, format!("bad path \"{s}\": {e}"));
                    None
                }
            }
        }
    }
}
