//! Runs a compiled [`Mapping`] over one HL7 v2 message and gives back a typed patch.
//!
//! The engine builds a JSON tree in the shape of the target, then deserializes it into the
//! canonical types, which check the values (a birth date that is no date, a sex outside the
//! closed set). Errors name the mapping, the rule and the path — never the data.

use serde_json::{Map, Value};

use super::plan::*;
use super::transform::TransformEnv;
use crate::hl7::{FieldRef, Message};
use crate::model::{ClinicalRecord, MergeInstruction, ProfilePatch, RecordKind};

/// What a mapping made of one message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MappingOutput {
    /// The person the message describes, if the mapping has a person output and it says anything.
    pub person: Option<ProfilePatch>,
    /// Encounters, appointments, orders, results and diagnoses, in the order they were mapped.
    pub records: Vec<ClinicalRecord>,
    /// Persons the message says are this person (ADT^A40), to be merged into it.
    pub merge: Option<MergeInstruction>,
    /// Values that were skipped (`on_error: skip`), with the reason; kept with the message.
    pub warnings: Vec<String>,
}

impl MappingOutput {
    /// The output as JSON, under the names a mapping file writes to: `person`, `encounters`,
    /// `appointments`, `orders`, `results`, `diagnoses`, `merge`, `warnings` (empty ones left out).
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        if let Some(p) = &self.person {
            out.insert("person".into(), serde_json::to_value(p).unwrap_or(Value::Null));
        }
        for kind in [
            RecordKind::Encounter,
            RecordKind::Appointment,
            RecordKind::Order,
            RecordKind::Result,
            RecordKind::Diagnosis,
        ] {
            let name = output_name(kind);
            let items: Vec<Value> = self
                .records
                .iter()
                .filter(|r| r.kind() == kind)
                .map(ClinicalRecord::to_json)
                .collect();
            if !items.is_empty() {
                out.insert(name.into(), Value::Array(items));
            }
        }
        if let Some(m) = &self.merge {
            out.insert("merge".into(), serde_json::to_value(m).unwrap_or(Value::Null));
        }
        if !self.warnings.is_empty() {
            out.insert(
                "warnings".into(),
                serde_json::to_value(&self.warnings).unwrap_or(Value::Null),
            );
        }
        Value::Object(out)
    }
}

/// A mapping that failed on a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mapping {mapping}: rule {rule}{}: {reason}", path.as_ref().map(|p| format!(" ({p})")).unwrap_or_default())]
pub struct MappingError {
    pub mapping: String,
    /// The dotted YAML key of the rule (`person.birth_date`).
    pub rule: String,
    /// The message path it read, when there is one (`PID-7`).
    pub path: Option<String>,
    pub reason: String,
}

/// What rules read from: an HL7 message (and the field repetition a foreach is on), or a FHIR
/// resource (and the item a foreach is on).
#[derive(Clone, Copy)]
enum Record<'a> {
    Hl7 {
        msg: &'a Message,
        rep: Option<&'a FieldRef<'a>>,
        /// The segment a `foreach` over segments is on (index in the message).
        seg: Option<usize>,
        /// Segments of that segment's own group (`group:`).
        group: &'a SegmentGroup,
    },
    Fhir {
        resource: &'a Value,
        item: Option<&'a Value>,
    },
}

struct Ctx<'a> {
    mapping: &'a Mapping,
    source: Record<'a>,
    env: &'a TransformEnv,
    warnings: &'a mut Vec<String>,
}

impl Mapping {
    /// Maps one HL7 v2 message.
    pub fn apply(&self, msg: &Message, env: &TransformEnv) -> Result<MappingOutput, MappingError> {
        self.apply_source(
            Record::Hl7 {
                msg,
                rep: None,
                seg: None,
                group: &SegmentGroup::NONE,
            },
            env,
        )
    }

    /// Maps one FHIR resource (JSON).
    pub fn apply_fhir(&self, resource: &Value, env: &TransformEnv) -> Result<MappingOutput, MappingError> {
        self.apply_source(Record::Fhir { resource, item: None }, env)
    }

    fn apply_source(&self, source: Record<'_>, env: &TransformEnv) -> Result<MappingOutput, MappingError> {
        let reads = match source {
            Record::Hl7 { .. } => Input::Hl7v2,
            Record::Fhir { .. } => Input::Fhir,
        };
        if reads != self.input {
            return Err(MappingError {
                mapping: self.name.clone(),
                rule: String::new(),
                path: None,
                reason: format!("this mapping reads {:?} records, not {reads:?}", self.input),
            });
        }
        let mut warnings = Vec::new();
        let mut ctx = Ctx {
            mapping: self,
            source,
            env,
            warnings: &mut warnings,
        };
        let mut person = None;
        if let Some(node) = &self.person {
            let tree = eval_node(&mut ctx, node)?.unwrap_or(Value::Object(Map::new()));
            let patch: ProfilePatch = self.typed("person", tree)?;
            if !patch.is_empty() {
                person = Some(patch);
            }
        }
        // Clinical records are filed under the message's one person: a message holding several
        // patients (several PIDs) would file some under the wrong one. Refuse it instead.
        // A merge names one surviving patient and one retired one: pairs beyond the first
        // would be merged into the wrong survivor.
        if let Record::Hl7 { msg, .. } = source
            && (!self.records.is_empty() || self.merge.is_some())
        {
            let count = |name: &str| msg.segments().iter().filter(|s| s.name == name).count();
            for (segment, what) in [("PID", "patients"), ("MRG", "merges")] {
                if count(segment) > 1 && (segment == "PID" || self.merge.is_some()) {
                    return Err(MappingError {
                        mapping: self.name.clone(),
                        rule: if segment == "PID" {
                            "person".into()
                        } else {
                            "merge".into()
                        },
                        path: Some(segment.into()),
                        reason: format!(
                            "the message holds several {what} ({segment} segments); send one per message"
                        ),
                    });
                }
            }
        }
        let mut records = Vec::new();
        for (kind, node) in &self.records {
            let Some(Value::Array(items)) = eval_node(&mut ctx, node)? else {
                continue;
            };
            let output = output_name(*kind);
            for (i, item) in items.into_iter().enumerate() {
                let at = format!("{output}.{i}");
                let record = match kind {
                    RecordKind::Encounter => ClinicalRecord::Encounter(self.typed(&at, item)?),
                    RecordKind::Appointment => ClinicalRecord::Appointment(self.typed(&at, item)?),
                    RecordKind::Order => ClinicalRecord::Order(self.typed(&at, item)?),
                    RecordKind::Diagnosis => ClinicalRecord::Diagnosis(self.typed(&at, item)?),
                    RecordKind::Result => {
                        let mut r: crate::model::LabResult = self.typed(&at, item)?;
                        if let Some(w) = r.settle() {
                            ctx.warnings.push(format!("{at}.value: {w}"));
                        }
                        ClinicalRecord::Result(r)
                    }
                };
                records.push(record);
            }
        }
        let mut merge = None;
        if let Some(node) = &self.merge
            && let Some(tree) = eval_node(&mut ctx, node)?
        {
            let m: MergeInstruction = self.typed("merge", tree)?;
            if !m.retired.is_empty() {
                merge = Some(m);
            }
        }
        Ok(MappingOutput {
            person,
            records,
            merge,
            warnings,
        })
    }

    /// The tree an output rule built, as its typed value. The fast way first; only a tree that
    /// does not fit is read again, slowly, to name the field that failed (never its value).
    fn typed<T: serde::de::DeserializeOwned>(&self, output: &str, tree: Value) -> Result<T, MappingError> {
        if let Ok(v) = T::deserialize(&tree) {
            return Ok(v);
        }
        let (rule, reason) = match serde_path_to_error::deserialize::<_, T>(tree) {
            Ok(v) => return Ok(v),
            Err(e) => (
                format!("{output}.{}", e.path()),
                without_values(&e.inner().to_string()),
            ),
        };
        Err(MappingError {
            mapping: self.name.clone(),
            rule,
            path: None,
            reason,
        })
    }
}

/// The mapping file's name for an output of this kind.
fn output_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Encounter => "encounters",
        RecordKind::Appointment => "appointments",
        RecordKind::Order => "orders",
        RecordKind::Result => "results",
        RecordKind::Diagnosis => "diagnoses",
    }
}

fn eval_node(ctx: &mut Ctx<'_>, node: &Node) -> Result<Option<Value>, MappingError> {
    match node {
        Node::Value(e) => Ok(eval_value(ctx, e)?.map(Value::String)),
        Node::Object(fields) => {
            let mut out = Map::new();
            for (key, n) in fields {
                if let Some(v) = eval_node(ctx, n)? {
                    out.insert(key.clone(), v);
                }
            }
            Ok((!out.is_empty()).then_some(Value::Object(out)))
        }
        Node::List(items) => {
            let mut out = Vec::new();
            for item in items {
                eval_item(ctx, item, &mut out)?;
            }
            Ok((!out.is_empty()).then_some(Value::Array(out)))
        }
    }
}

fn eval_item(ctx: &mut Ctx<'_>, item: &ListItem, out: &mut Vec<Value>) -> Result<(), MappingError> {
    match item {
        ListItem::Single { when, body } => {
            if when.as_ref().is_none_or(|c| eval_cond(ctx, c))
                && let Some(v) = eval_node(ctx, body)?
            {
                push_unique(out, v);
            }
            Ok(())
        }
        ListItem::Each {
            over,
            when,
            body,
            require,
            ..
        } => {
            for over in over {
                match (over, ctx.source) {
                    (Over::Hl7(path), Record::Hl7 { msg, seg, group, .. }) => {
                        // Inside a segment's foreach, the field of that segment (or of the
                        // group's segment the path names); else of every such segment.
                        let reps = match seg.and_then(|i| scoped_segment(msg, i, path, group)) {
                            Some(segment) => msg.field_refs_in_segment(segment, path),
                            None if seg.is_some() && path.segment_index.is_none() => Vec::new(),
                            None => msg.field_refs(path),
                        };
                        for rep in reps {
                            let source = Record::Hl7 {
                                msg,
                                rep: Some(&rep),
                                seg,
                                group,
                            };
                            each_entry(ctx, source, when.as_ref(), body, require, out)?;
                        }
                    }
                    (Over::Segment { name, until, group }, Record::Hl7 { msg, seg, .. }) => {
                        for i in segment_indexes(msg, seg, name, until) {
                            let source = Record::Hl7 {
                                msg,
                                rep: None,
                                seg: Some(i),
                                group,
                            };
                            each_entry(ctx, source, when.as_ref(), body, require, out)?;
                        }
                    }
                    (Over::Fhir(expr), Record::Fhir { resource, item }) => {
                        let items = fhir_eval(ctx, expr, resource, item)?;
                        if items.len() > MAX_ITEMS {
                            ctx.warnings.push(format!(
                                "{} items in a foreach; the first {MAX_ITEMS} were read",
                                items.len()
                            ));
                        }
                        for it in items.iter().take(MAX_ITEMS) {
                            let source = Record::Fhir {
                                resource,
                                item: Some(it),
                            };
                            each_entry(ctx, source, when.as_ref(), body, require, out)?;
                        }
                    }
                    // The compiler builds paths of the mapping's own input only.
                    _ => {}
                }
            }
            Ok(())
        }
    }
}

/// Most items a FHIR `foreach` reads: hostile input must not make mapping quadratic.
const MAX_ITEMS: usize = 1000;

/// The segments a `foreach: NAME` walks. At the top level, every `NAME`. From a segment at
/// `from`: the `NAME`s that follow it — directly (no `until`: `NTE`s after their `OBX`), or up
/// to the first segment named in `until` (`OBX`s after their `OBR`, until the next `OBR`).
fn segment_indexes(msg: &Message, from: Option<usize>, name: &str, until: &[String]) -> Vec<usize> {
    let segments = msg.segments();
    let Some(start) = from else {
        return (0..segments.len())
            .filter(|&i| segments[i].name == name)
            .collect();
    };
    let mut out = Vec::new();
    for (i, s) in segments.iter().enumerate().skip(start + 1) {
        if s.name == name {
            out.push(i);
        } else if until.is_empty() || until.contains(&s.name) {
            break;
        }
    }
    out
}

/// The segment a path means from inside a segment's foreach at `at`: the current segment when
/// the path names it; else the nearest one of that name before it (the group it belongs to:
/// an `OBX`'s `OBR`, an `OBR`'s `PID`); else the first in the message. A path with an explicit
/// segment index (`OBX[2]-5`) is absolute and gets `None`.
///
/// A segment of the current one's `group` is only looked for back to the previous segment of
/// the current one's name: a group without it reads nothing rather than an earlier group's.
fn scoped_segment<'m>(
    msg: &'m Message,
    at: usize,
    path: &crate::hl7::Path,
    group: &SegmentGroup,
) -> Option<&'m crate::hl7::Segment> {
    if path.segment_index.is_some() {
        return None;
    }
    let segments = msg.segments();
    let current = segments.get(at)?;
    if current.name == path.segment {
        return Some(current);
    }
    if group.before.contains(&path.segment) {
        return segments[..at]
            .iter()
            .rev()
            .take_while(|s| s.name != current.name)
            .find(|s| s.name == path.segment);
    }
    if group.after.contains(&path.segment) {
        return segments[at + 1..]
            .iter()
            .take_while(|s| s.name != current.name)
            .find(|s| s.name == path.segment);
    }
    segments[..at]
        .iter()
        .rev()
        .find(|s| s.name == path.segment)
        .or_else(|| segments.iter().find(|s| s.name == path.segment))
}

/// One entry of a foreach, read from `source`.
fn each_entry(
    ctx: &mut Ctx<'_>,
    source: Record<'_>,
    when: Option<&Cond>,
    body: &Node,
    require: &[String],
    out: &mut Vec<Value>,
) -> Result<(), MappingError> {
    let mut inner = Ctx {
        mapping: ctx.mapping,
        source,
        env: ctx.env,
        warnings: &mut *ctx.warnings,
    };
    if when.is_some_and(|c| !eval_cond(&inner, c)) {
        return Ok(());
    }
    if let Some(v) = eval_node(&mut inner, body)?
        && require.iter().all(|r| v.get(r).is_some())
    {
        push_unique(out, v);
    }
    Ok(())
}

/// A FHIRPath on the current item (inside a foreach) or on the resource.
fn fhir_eval(
    ctx: &Ctx<'_>,
    expr: &crate::fhirpath::Expr,
    resource: &Value,
    item: Option<&Value>,
) -> Result<Vec<Value>, MappingError> {
    expr.evaluate_on(resource, item.unwrap_or(resource))
        .map_err(|e| MappingError {
            mapping: ctx.mapping.name.clone(),
            rule: String::new(),
            path: Some(expr.to_string()),
            reason: e.to_string(),
        })
}

/// The text of a FHIR value: strings, numbers and booleans as written; others have none.
fn fhir_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn push_unique(out: &mut Vec<Value>, v: Value) {
    if !out.contains(&v) {
        out.push(v);
    }
}

/// The value at a path; `Err` when a FHIRPath fails on this resource (an array where one
/// item was expected, say) — a value rule then fails by its `on_error`.
fn try_read(ctx: &Ctx<'_>, p: &PathRef) -> Result<Option<String>, String> {
    Ok(match (p, ctx.source) {
        (PathRef::Abs(path), Record::Hl7 { msg, seg, group, .. }) => match seg {
            Some(i) if path.segment_index.is_none() => {
                scoped_segment(msg, i, path, group).and_then(|segment| msg.get_in_segment(segment, path))
            }
            _ => msg.get(path),
        },
        (PathRef::Rel(r), Record::Hl7 { rep, .. }) => {
            rep.and_then(|rep| rep.component(r.component, r.subcomponent))
        }
        (PathRef::Source, _) => ctx.env.connector.clone(),
        (PathRef::Fhir(expr), Record::Fhir { resource, item }) => {
            let values = expr
                .evaluate_on(resource, item.unwrap_or(resource))
                .map_err(|e| e.to_string())?;
            values.iter().filter_map(fhir_text).find(|s| !s.trim().is_empty())
        }
        _ => None,
    })
}

/// The value at a path for a condition: a path that fails to evaluate counts as absent.
fn read(ctx: &Ctx<'_>, p: &PathRef) -> Option<String> {
    try_read(ctx, p).ok().flatten()
}

fn eval_cond(ctx: &Ctx<'_>, c: &Cond) -> bool {
    match c {
        Cond::In { path, values } => {
            read(ctx, path).is_some_and(|v| values.iter().any(|x| x.eq_ignore_ascii_case(v.trim())))
        }
        Cond::Exists { path, exists } => read(ctx, path).is_some() == *exists,
        Cond::Not(inner) => !eval_cond(ctx, inner),
        Cond::All(cs) => cs.iter().all(|c| eval_cond(ctx, c)),
        Cond::Any(cs) => cs.iter().any(|c| eval_cond(ctx, c)),
    }
}

fn eval_value(ctx: &mut Ctx<'_>, e: &ValueExpr) -> Result<Option<String>, MappingError> {
    if e.when.as_ref().is_some_and(|c| !eval_cond(ctx, c)) {
        return Ok(None);
    }
    let mut read_error: Option<String> = None;
    // The path is written out only when a failure names it.
    let (raw, path): (Option<String>, Option<&PathRef>) = match &e.source {
        Source::Literal(s) => (Some(s.clone()), None),
        Source::Paths(paths) => {
            let mut found = (None, paths.first());
            for p in paths {
                match try_read(ctx, p) {
                    Ok(Some(v)) => {
                        found = (Some(v), Some(p));
                        break;
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        found = (None, Some(p));
                        read_error = Some(reason);
                        break;
                    }
                }
            }
            found
        }
        Source::Concat { parts, sep } => {
            let mut vals = Vec::new();
            for p in parts {
                if let Some(v) = eval_value(ctx, p)? {
                    vals.push(v);
                }
            }
            ((!vals.is_empty()).then(|| vals.join(sep)), None)
        }
        Source::First(alts) => {
            let mut found = None;
            for a in alts {
                if let Some(v) = eval_value(ctx, a)? {
                    found = Some(v);
                    break;
                }
            }
            (found, None)
        }
    };
    let fail = |ctx: &mut Ctx<'_>, reason: String| -> Result<Option<String>, MappingError> {
        match e.on_error {
            OnError::Skip => {
                ctx.warnings.push(format!(
                    "rule {}{}: {reason}; value skipped",
                    e.rule,
                    path.map(|p| format!(" ({p})")).unwrap_or_default()
                ));
                Ok(None)
            }
            OnError::Error => Err(MappingError {
                mapping: ctx.mapping.name.clone(),
                rule: e.rule.clone(),
                path: path.map(ToString::to_string),
                reason,
            }),
        }
    };
    if let Some(reason) = read_error {
        return fail(ctx, reason);
    }
    let mut value = raw;
    for t in &e.transforms {
        let Some(v) = value.as_deref() else { break };
        match t.apply(v, ctx.env) {
            Ok(v) => value = v,
            Err(err) => return fail(ctx, err.0),
        }
    }
    if let (Some(v), Some(table_name)) = (value.as_deref(), e.table.as_ref()) {
        let Some(table) = ctx.mapping.tables.get(table_name) else {
            return fail(ctx, format!("no table {table_name}"));
        };
        let key = v.trim();
        let hit = table.values.get(key).or_else(|| {
            table
                .values
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        });
        value = match (hit, &table.unknown) {
            (Some(mapped), _) => Some(mapped.clone()),
            (None, UnknownCode::Keep) => Some(key.to_string()),
            (None, UnknownCode::Empty) => None,
            (None, UnknownCode::Default(d)) => Some(d.clone()),
            (None, UnknownCode::Error) => {
                return fail(ctx, format!("the code is not in table {table_name}"));
            }
        };
    }
    Ok(value.filter(|v| !v.is_empty()).or_else(|| e.default.clone()))
}

/// serde quotes the offending value in backticks (`unknown variant `X`, expected one of …`):
/// the first quoted span is the data, the rest are the expected names. Drop the data.
fn without_values(message: &str) -> String {
    let Some(start) = message.find('`') else {
        return message.to_string();
    };
    let Some(len) = message[start + 1..].find('`') else {
        return message.to_string();
    };
    format!(
        "{}(value not shown){}",
        &message[..start],
        &message[start + 1 + len + 1..]
    )
}

#[cfg(test)]
mod tests {
    use super::without_values;

    #[test]
    fn serde_messages_lose_the_value_but_keep_the_expectation() {
        assert_eq!(
            without_values("unknown variant `Q`, expected one of `male`, `female`"),
            "unknown variant (value not shown), expected one of `male`, `female`"
        );
        assert_eq!(without_values("not a date"), "not a date");
    }
}
