//! A compiled mapping: what `compile` builds from YAML and `engine` walks over a message.
//!
//! Every node keeps `rule`, the dotted path of the YAML key it came from, so that a failure at
//! run time can say which rule failed without quoting any patient data.

use std::collections::HashMap;

use super::transform::Transform;
use crate::model::RecordKind;
use crate::{fhirpath, hl7};

/// One compiled mapping file.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// Unique name (`hl7v2-adt-person`).
    pub name: String,
    pub description: Option<String>,
    /// The file it was read from, for messages.
    pub file: String,
    /// What it reads: HL7 v2 messages or FHIR resources.
    pub input: Input,
    /// Message types it maps (`ADT^A01`, `ADT^*`, `ADT`), used to pick it automatically.
    pub message_types: Vec<String>,
    /// FHIR resource types it maps (`Patient`), used to pick it automatically.
    pub resource_types: Vec<String>,
    pub tables: HashMap<String, CodeTable>,
    /// The person output, when the mapping has one.
    pub person: Option<Node>,
    /// `person: {from: NAME}`: the person output of another mapping of the same input, with
    /// its code tables (filled in when the set is loaded).
    pub person_from: Option<String>,
    /// `person: {from: NAME, on_error: skip}`: a value of the borrowed person output that fails
    /// is skipped with a warning instead of refusing the message (a lab result is not refused
    /// for a malformed birth date).
    pub person_from_skips: bool,
    /// Code tables copied from that mapping (replaced when it is).
    pub inherited_tables: Vec<String>,
    /// Clinical outputs (`encounters:`, `results:`…), each a list node.
    pub records: Vec<(RecordKind, Node)>,
    /// The `merge:` output (an identity instruction).
    pub merge: Option<Node>,
}

/// The kind of record a mapping reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Hl7v2,
    Fhir,
}

/// A code table (`map:`) and what to do with codes it does not list.
#[derive(Debug, Clone)]
pub struct CodeTable {
    pub values: HashMap<String, String>,
    pub unknown: UnknownCode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownCode {
    /// A mapping error: the message is not applied.
    Error,
    /// Pass the code through unchanged.
    Keep,
    /// Leave the field empty.
    Empty,
    /// Use this value.
    Default(String),
}

/// A node of the output tree.
#[derive(Debug, Clone)]
pub enum Node {
    Value(Box<ValueExpr>),
    Object(Vec<(String, Node)>),
    /// A list built from items in order.
    List(Vec<ListItem>),
}

#[derive(Debug, Clone)]
pub enum ListItem {
    /// One entry (or none, when it comes out empty or its condition is false).
    Single { when: Option<Cond>, body: Node },
    /// One entry per repetition of each field in `over`.
    Each {
        rule: String,
        over: Vec<Over>,
        when: Option<Cond>,
        body: Node,
        /// Fields that must have a value for the entry to be kept.
        require: Vec<String>,
    },
}

/// What a `foreach` walks: the repetitions of an HL7 field, or the items a FHIRPath gives.
#[derive(Debug, Clone)]
pub enum Over {
    Hl7(hl7::Path),
    /// Segments of one name (`OBX`). At the top level: every such segment. Inside a segment's
    /// foreach: those that follow it — directly (`NTE` after an `OBX`), or, with `until`, up to
    /// the first segment named there (`OBX` after an `OBR`, until the next `OBR`).
    ///
    /// `group` names the segments that belong to each one's own group (`ORC`, `TQ1` of an
    /// `OBR`): they are read only from that group, never from a neighbour's.
    Segment {
        name: String,
        until: Vec<String>,
        group: SegmentGroup,
    },
    Fhir(fhirpath::Expr),
}

/// The segments of a walked segment's own group: those that come before it (back to the
/// previous segment of its name: ORC before OBR) and those after it (up to the next one: TQ1
/// after OBR in ORU_R01 v2.5). `group: [ORC, TQ1]` lists segments before it;
/// `group: {before: [ORC], after: [TQ1]}` says both.
#[derive(Debug, Clone, Default)]
pub struct SegmentGroup {
    pub before: Vec<String>,
    pub after: Vec<String>,
}

impl SegmentGroup {
    pub const NONE: SegmentGroup = SegmentGroup {
        before: Vec::new(),
        after: Vec::new(),
    };

    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after.is_empty()
    }
}

/// Where a value comes from and what is done to it.
#[derive(Debug, Clone)]
pub struct ValueExpr {
    pub rule: String,
    pub source: Source,
    pub transforms: Vec<Transform>,
    pub table: Option<String>,
    pub default: Option<String>,
    pub when: Option<Cond>,
    pub on_error: OnError,
}

#[derive(Debug, Clone)]
pub enum Source {
    /// The first non-empty of these paths.
    Paths(Vec<PathRef>),
    Literal(String),
    Concat {
        parts: Vec<ValueExpr>,
        sep: String,
    },
    First(Vec<ValueExpr>),
}

#[derive(Debug, Clone)]
pub enum PathRef {
    /// `PID-7`: from the message.
    Abs(hl7::Path),
    /// `.4.1`: from the repetition a `foreach` is on.
    Rel(hl7::RelPath),
    /// A FHIRPath expression, on the resource — or, inside a `foreach`, on the current item.
    Fhir(fhirpath::Expr),
    /// `$source`: the connector's source system (or its name) the record came through.
    Source,
}

impl std::fmt::Display for PathRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathRef::Abs(p) => write!(f, "{p}"),
            PathRef::Rel(r) => match r.subcomponent {
                Some(s) => write!(f, ".{}.{s}", r.component),
                None => write!(f, ".{}", r.component),
            },
            PathRef::Fhir(e) => write!(f, "{e}"),
            PathRef::Source => f.write_str("$source"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// The whole message fails to map.
    Error,
    /// The value is left empty and a warning is kept with the message.
    Skip,
}

#[derive(Debug, Clone)]
pub enum Cond {
    In { path: PathRef, values: Vec<String> },
    Exists { path: PathRef, exists: bool },
    Not(Box<Cond>),
    All(Vec<Cond>),
    Any(Vec<Cond>),
}

impl Node {
    /// Every value below this node fails softly (`on_error: skip`).
    pub fn skip_errors(&mut self) {
        match self {
            Node::Value(e) => e.on_error = OnError::Skip,
            Node::Object(fields) => fields.iter_mut().for_each(|(_, n)| n.skip_errors()),
            Node::List(items) => {
                for item in items {
                    match item {
                        ListItem::Single { body, .. } | ListItem::Each { body, .. } => body.skip_errors(),
                    }
                }
            }
        }
    }
}

impl Mapping {
    /// Every FHIRPath expression the mapping evaluates (paths, foreach, conditions), so that a
    /// test can check they stay inside the subset the official suite passes.
    pub fn fhir_expressions(&self) -> Vec<&fhirpath::Expr> {
        fn value<'a>(e: &'a ValueExpr, out: &mut Vec<&'a fhirpath::Expr>) {
            match &e.source {
                Source::Paths(ps) => ps.iter().for_each(|p| path(p, out)),
                Source::Literal(_) => {}
                Source::Concat { parts, .. } | Source::First(parts) => {
                    parts.iter().for_each(|p| value(p, out))
                }
            }
            if let Some(c) = &e.when {
                cond(c, out);
            }
        }
        fn path<'a>(p: &'a PathRef, out: &mut Vec<&'a fhirpath::Expr>) {
            if let PathRef::Fhir(e) = p {
                out.push(e);
            }
        }
        fn cond<'a>(c: &'a Cond, out: &mut Vec<&'a fhirpath::Expr>) {
            match c {
                Cond::In { path: p, .. } | Cond::Exists { path: p, .. } => path(p, out),
                Cond::Not(c) => cond(c, out),
                Cond::All(cs) | Cond::Any(cs) => cs.iter().for_each(|c| cond(c, out)),
            }
        }
        fn node<'a>(n: &'a Node, out: &mut Vec<&'a fhirpath::Expr>) {
            match n {
                Node::Value(e) => value(e, out),
                Node::Object(fields) => fields.iter().for_each(|(_, n)| node(n, out)),
                Node::List(items) => {
                    for item in items {
                        match item {
                            ListItem::Single { when, body } => {
                                when.iter().for_each(|c| cond(c, out));
                                node(body, out);
                            }
                            ListItem::Each { over, when, body, .. } => {
                                for o in over {
                                    if let Over::Fhir(e) = o {
                                        out.push(e);
                                    }
                                }
                                when.iter().for_each(|c| cond(c, out));
                                node(body, out);
                            }
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        let nodes = self
            .person
            .iter()
            .chain(self.records.iter().map(|(_, n)| n))
            .chain(self.merge.iter());
        for n in nodes {
            node(n, &mut out);
        }
        out
    }
}
