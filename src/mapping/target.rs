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
    /// One text value from a closed set (a status, a sex): literals and code tables that feed
    /// it are checked against the set when the mapping is compiled.
    OneOf(&'static [&'static str]),
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

const SEX: Shape = Shape::OneOf(&["male", "female", "other", "unknown"]);
const CONTACT_SYSTEM: Shape = Shape::OneOf(&["phone", "email", "fax", "other"]);
const FLAG: Shape = Shape::OneOf(&["true", "false"]);
const ENCOUNTER_STATUS: Shape = Shape::OneOf(crate::model::EncounterStatus::ALL);
const APPOINTMENT_STATUS: Shape = Shape::OneOf(crate::model::AppointmentStatus::ALL);
const ORDER_STATUS: Shape = Shape::OneOf(crate::model::OrderStatus::ALL);
const RESULT_STATUS: Shape = Shape::OneOf(crate::model::ResultStatus::ALL);
const DIAGNOSIS_STATUS: Shape = Shape::OneOf(crate::model::DiagnosisStatus::ALL);

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
            ("text", TEXT),
        ])),
    ),
    ("birth_date", TEXT),
    ("sex", SEX),
    (
        "telecom",
        Shape::List(&Shape::Object(&[
            ("system", CONTACT_SYSTEM),
            ("value", TEXT),
            ("use", TEXT),
            ("rank", TEXT),
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
    ("marital_status", TEXT),
    ("deceased", FLAG),
    ("deceased_at", TEXT),
    (
        "consents",
        Shape::List(&Shape::Object(&[
            ("scope", TEXT),
            ("decision", TEXT),
            ("at", TEXT),
        ])),
    ),
    ("preferred_channel", TEXT),
]);

/// `Code`: a code, its system and its text.
const CODE: Shape = Shape::Object(&[("system", TEXT), ("code", TEXT), ("display", TEXT)]);

/// `Encounter`.
pub static ENCOUNTERS: Shape = Shape::List(&Shape::Object(&[
    ("id", TEXT),
    ("class", TEXT),
    ("status", ENCOUNTER_STATUS),
    ("start", TEXT),
    ("end", TEXT),
    ("location", TEXT),
    ("practitioner", TEXT),
    ("service", TEXT),
    ("reason", TEXT),
    ("discharge_disposition", TEXT),
]));

/// `Appointment`.
pub static APPOINTMENTS: Shape = Shape::List(&Shape::Object(&[
    ("id", TEXT),
    ("status", APPOINTMENT_STATUS),
    ("start", TEXT),
    ("end", TEXT),
    ("minutes", TEXT),
    ("practitioner", TEXT),
    ("service", CODE),
    ("location", TEXT),
    ("reason", TEXT),
    ("cancellation_reason", TEXT),
    ("comment", TEXT),
]));

/// `Order`.
pub static ORDERS: Shape = Shape::List(&Shape::Object(&[
    ("id", TEXT),
    ("filler_id", TEXT),
    ("code", CODE),
    ("status", ORDER_STATUS),
    ("ordered_at", TEXT),
    ("priority", TEXT),
    ("requester", TEXT),
]));

/// `LabResult` (`numeric` and `comparator` are read from `value` by its type).
pub static RESULTS: Shape = Shape::List(&Shape::Object(&[
    ("id", TEXT),
    ("order_id", TEXT),
    ("code", CODE),
    ("sub_id", TEXT),
    ("value_type", TEXT),
    ("value", TEXT),
    ("comparator", TEXT),
    ("value_code", CODE),
    ("unit", TEXT),
    ("reference_range", TEXT),
    ("abnormal_flag", TEXT),
    ("status", RESULT_STATUS),
    ("observed_at", TEXT),
    ("issued_at", TEXT),
    ("category", TEXT),
    ("notes", Shape::List(&TEXT)),
]));

/// `Diagnosis`.
pub static DIAGNOSES: Shape = Shape::List(&Shape::Object(&[
    ("id", TEXT),
    ("code", CODE),
    ("status", DIAGNOSIS_STATUS),
    ("kind", TEXT),
    ("onset", TEXT),
    ("recorded_at", TEXT),
    ("encounter_id", TEXT),
]));

/// `MergeInstruction`: identifiers of the persons merged into the message's person.
pub static MERGE: Shape = Shape::Object(&[(
    "retired",
    Shape::List(&Shape::Object(&[
        ("system", TEXT),
        ("value", TEXT),
        ("type", TEXT),
    ])),
)]);

/// Outputs a mapping file may declare at its top level, with their shapes.
pub static OUTPUTS: &[(&str, &Shape)] = &[
    ("person", &PERSON),
    ("encounters", &ENCOUNTERS),
    ("appointments", &APPOINTMENTS),
    ("orders", &ORDERS),
    ("results", &RESULTS),
    ("diagnoses", &DIAGNOSES),
    ("merge", &MERGE),
];
