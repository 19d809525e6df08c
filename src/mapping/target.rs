//! What a mapping may write to: the shape of each output of the canonical model.
//!
//! The compiler checks every rule's target key against these shapes, so a typo such as
//! `birthdate:` is a `validate` error with its line rather than a silently empty field. A new
//! output (encounters, appointments…) is one more shape here and one more typed struct in
//! `model`.

/// The shape of a target field.
#[derive(Debug)]
pub enum Shape {
    /// One text value.
    Text,
    /// Several values of the inner shape.
    List(&'static Shape),
    /// Named fields.
    Object(&'static [(&'static str, Shape)]),
}

impl Shape {
    /// The field `key` of an object shape.
    pub fn field(&self, key: &str) -> Option<&'static Shape> {
        match self {
            Shape::Object(fields) => fields.iter().find(|(k, _)| *k == key).map(|(_, s)| s),
            _ => None,
        }
    }

    /// Field names of an object shape, for "expected one of" messages.
    pub fn field_names(&self) -> Vec<&'static str> {
        match self {
            Shape::Object(fields) => fields.iter().map(|(k, _)| *k).collect(),
            _ => Vec::new(),
        }
    }
}

const TEXT: Shape = Shape::Text;

/// `ProfilePatch`, as a mapping sees it.
pub static PERSON: Shape = Shape::Object(&[
    (
        "identifiers",
        Shape::List(&Shape::Object(&[
            ("system", TEXT),
            ("value", TEXT),
            ("type", TEXT),
        ])),
    ),
    (
        "names",
        Shape::List(&Shape::Object(&[
            ("family", TEXT),
            ("given", Shape::List(&TEXT)),
            ("prefix", TEXT),
            ("suffix", TEXT),
            ("use", TEXT),
        ])),
    ),
    ("birth_date", TEXT),
    ("sex", TEXT),
    (
        "telecom",
        Shape::List(&Shape::Object(&[
            ("system", TEXT),
            ("value", TEXT),
            ("use", TEXT),
        ])),
    ),
    (
        "addresses",
        Shape::List(&Shape::Object(&[
            ("lines", Shape::List(&TEXT)),
            ("city", TEXT),
            ("district", TEXT),
            ("state", TEXT),
            ("postal_code", TEXT),
            ("country", TEXT),
            ("use", TEXT),
        ])),
    ),
    ("language", TEXT),
]);

/// Outputs a mapping file may declare at its top level, with their shapes.
pub static OUTPUTS: &[(&str, &Shape)] = &[("person", &PERSON)];
