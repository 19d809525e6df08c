//! Clinical records a source sends about a person: encounters, appointments, orders, results
//! and diagnoses, shaped after FHIR R4 (`Encounter`, `Appointment`, `ServiceRequest`,
//! `Observation`, `Condition`) so that a FHIR read API is a projection.
//!
//! Every record has a *key* that stays the same across the messages that update it (a visit
//! number, an appointment id, an order id and test code…): a later message with the same key
//! replaces the record rather than adding one. Statuses are closed sets: a mapping turns a
//! source's codes into them through a code table, and a value outside the set is refused when
//! it is mapped, not discovered later by a reader.

use serde::{Deserialize, Serialize};

/// A code from a code system (one FHIR `Coding` with the concept's text).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    /// `http://loinc.org`, `ICD-10`, `LN`, a local system name…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Code {
    fn key(&self) -> String {
        match (&self.system, &self.code, &self.display) {
            (s, Some(c), _) => format!("{}|{c}", s.as_deref().unwrap_or("")),
            (_, None, Some(d)) => format!("text|{d}"),
            _ => String::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.code.is_none() && self.display.is_none()
    }
}

/// A point in time at the precision the source knew it: `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, or a
/// date and time with its offset (`2024-01-05T08:30:00+07:00`, `…Z`, fractions allowed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct When(String);

impl When {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A key that sorts in time order across precisions: UTC for instants, the date as written
    /// otherwise (a bare date sorts before the instants of that day).
    pub fn sort_key(&self) -> String {
        match self.0.parse::<jiff::Timestamp>() {
            Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            Err(_) => self.0.clone(),
        }
    }
}

impl TryFrom<String> for When {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let ok = s.is_ascii()
            && match s.len() {
                4 | 7 | 10 => super::BirthDate::try_from(s.clone()).is_ok(),
                _ => s.parse::<jiff::Timestamp>().is_ok(),
            };
        if ok {
            Ok(When(s))
        } else {
            Err(
                "not a date or a date-time with offset (YYYY[-MM[-DD]] or YYYY-MM-DDThh:mm:ss±hh:mm)"
                    .to_string(),
            )
        }
    }
}

impl From<When> for String {
    fn from(w: When) -> String {
        w.0
    }
}

macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every code, in FHIR's order: what a mapping may write and FHIR out may send.
            pub const ALL: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }
    };
}

status_enum!(
    /// FHIR `EncounterStatus`.
    EncounterStatus {
        Planned = "planned",
        Arrived = "arrived",
        Triaged = "triaged",
        InProgress = "in-progress",
        OnLeave = "onleave",
        Finished = "finished",
        Cancelled = "cancelled",
        EnteredInError = "entered-in-error",
        Unknown = "unknown",
    }
);

status_enum!(
    /// FHIR `AppointmentStatus`.
    AppointmentStatus {
        Proposed = "proposed",
        Pending = "pending",
        Booked = "booked",
        Arrived = "arrived",
        Fulfilled = "fulfilled",
        Cancelled = "cancelled",
        NoShow = "noshow",
        EnteredInError = "entered-in-error",
        CheckedIn = "checked-in",
        Waitlist = "waitlist",
    }
);

status_enum!(
    /// FHIR `RequestStatus` (ServiceRequest).
    OrderStatus {
        Draft = "draft",
        Active = "active",
        OnHold = "on-hold",
        Revoked = "revoked",
        Completed = "completed",
        EnteredInError = "entered-in-error",
        Unknown = "unknown",
    }
);

status_enum!(
    /// FHIR `ObservationStatus`.
    ResultStatus {
        Registered = "registered",
        Preliminary = "preliminary",
        Final = "final",
        Amended = "amended",
        Corrected = "corrected",
        Cancelled = "cancelled",
        EnteredInError = "entered-in-error",
        Unknown = "unknown",
    }
);

status_enum!(
    /// FHIR `condition-clinical`.
    DiagnosisStatus {
        Active = "active",
        Recurrence = "recurrence",
        Relapse = "relapse",
        Inactive = "inactive",
        Remission = "remission",
        Resolved = "resolved",
    }
);

/// A visit: an admission, an outpatient visit, an emergency stay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encounter {
    /// The source's visit or account number (PV1-19, `Encounter.identifier`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// FHIR v3 ActCode: `IMP` inpatient, `AMB` ambulatory, `EMER` emergency, `PRENC`
    /// pre-admission, `HH` home health, `VR` virtual… or what the source sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<EncounterStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<When>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<When>,
    /// Ward, room, bed or clinic, as the source names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The attending practitioner's name or id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practitioner: Option<String>,
    /// Hospital service or department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where the patient went on discharge (home, another facility, deceased…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discharge_disposition: Option<String>,
}

/// A booked (or cancelled, missed, attended) appointment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Appointment {
    /// The scheduler's appointment id (SCH-2 filler, else SCH-1 placer; `Appointment.identifier`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AppointmentStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<When>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<When>,
    /// Length in minutes, when the source gives a duration rather than an end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practitioner: Option<String>,
    /// What is booked: a service, an appointment type.
    #[serde(default, skip_serializing_if = "Code::is_empty")]
    pub service: Code,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A lab (or other) order: what was asked for, by whom, and where it stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    /// The placer's order number (ORC-2 / OBR-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The filler's (laboratory's) order number (ORC-3 / OBR-3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filler_id: Option<String>,
    #[serde(default, skip_serializing_if = "Code::is_empty")]
    pub code: Code,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<OrderStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered_at: Option<When>,
    /// `routine`, `urgent`, `asap`, `stat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
}

/// One result: a measured, observed or reported value, with its test and its order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabResult {
    /// The result's own id when the source has one (`Observation.identifier`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The order it answers (the filler's number, else the placer's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The test (`LOINC 2345-7`, a local code).
    #[serde(default, skip_serializing_if = "Code::is_empty")]
    pub code: Code,
    /// Distinguishes several results of one test in one order (OBX-4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_id: Option<String>,
    /// The value's kind as sent (HL7 OBX-2 `NM`, `ST`, `CWE`, `SN`…, or FHIR `Quantity`,
    /// `string`, `CodeableConcept`); it decides how `value` is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_type: Option<String>,
    /// The value as text, as sent (a number, a sentence, `<0.5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value as a number, when it is one (filled in by [`LabResult::settle`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numeric: Option<f64>,
    /// `<`, `<=`, `>=`, `>` when the value is a bound (`<0.5`, HL7 SN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparator: Option<String>,
    /// The value as a code, when it is coded (a culture's organism, `POS`/`NEG`).
    #[serde(default, skip_serializing_if = "Code::is_empty")]
    pub value_code: Code,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// As the laboratory wrote it (`3.5-5.0`, `<200`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_range: Option<String>,
    /// HL7 table 0078 / FHIR interpretation: `H`, `L`, `HH`, `LL`, `A`, `N`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abnormal_flag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResultStatus>,
    /// When the specimen was taken or the observation made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<When>,
    /// When the result was released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<When>,
    /// `laboratory`, `vital-signs`, `imaging`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Comments that came with the result (NTE after OBX, `Observation.note`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl LabResult {
    /// Reads the value by its type: a numeric type (or, with no type, a value that is a number)
    /// fills `numeric` and `comparator`. A value its type does not allow is kept as text and
    /// reported, never lost.
    pub fn settle(&mut self) -> Option<String> {
        let kind = self.value_type.as_deref().map(str::to_ascii_uppercase);
        let numeric_type = matches!(
            kind.as_deref(),
            Some("NM" | "SN" | "QUANTITY" | "INTEGER" | "DECIMAL")
        );
        let text = self.value.as_deref().map(str::trim)?;
        if !numeric_type && kind.is_some() {
            return None;
        }
        match parse_quantity(text) {
            Some((comparator, n)) => {
                self.numeric = Some(n);
                self.comparator = comparator.map(str::to_string);
                None
            }
            None if numeric_type => Some("a numeric result is not a number; kept as text".to_string()),
            None => None,
        }
    }
}

/// `12.5`, `<0.5`, `>= 200`, and HL7 SN `<^0.5` / `^12.5` (comparator and number components
/// joined by `^` are sent as `<^0.5` when the mapping reads the whole field).
fn parse_quantity(text: &str) -> Option<(Option<&'static str>, f64)> {
    let t = text.trim();
    let t = t.strip_prefix('^').unwrap_or(t);
    let (comparator, rest) = [("<=", "<="), (">=", ">="), ("<", "<"), (">", ">"), ("=", "")]
        .iter()
        .find_map(|(p, c)| t.strip_prefix(p).map(|r| (Some(*c).filter(|c| !c.is_empty()), r)))
        .unwrap_or((None, t));
    let rest = rest.trim().trim_start_matches('^').trim();
    if rest.is_empty() || rest.contains(['^', ' ']) {
        return None;
    }
    let n: f64 = rest.parse().ok()?;
    n.is_finite().then_some((comparator, n))
}

/// A diagnosis or problem.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Diagnosis {
    /// The source's id for this diagnosis, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// ICD-10 (`I10`), SNOMED CT, a local code.
    #[serde(default, skip_serializing_if = "Code::is_empty")]
    pub code: Code,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DiagnosisStatus>,
    /// `admitting`, `working`, `final` (HL7 DG1-6), `problem-list-item`, `encounter-diagnosis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onset: Option<When>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<When>,
    /// The visit it was made in (an encounter's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encounter_id: Option<String>,
}

/// A record kind, as stored and as the timeline shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Encounter,
    Appointment,
    Order,
    Result,
    Diagnosis,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Encounter => "encounter",
            RecordKind::Appointment => "appointment",
            RecordKind::Order => "order",
            RecordKind::Result => "result",
            RecordKind::Diagnosis => "diagnosis",
        }
    }

    pub fn parse(s: &str) -> Option<RecordKind> {
        Some(match s {
            "encounter" => RecordKind::Encounter,
            "appointment" => RecordKind::Appointment,
            "order" => RecordKind::Order,
            "result" => RecordKind::Result,
            "diagnosis" => RecordKind::Diagnosis,
            _ => return None,
        })
    }
}

/// One clinical record of any kind, with what the store needs to file it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ClinicalRecord {
    Encounter(Encounter),
    Appointment(Appointment),
    Order(Order),
    Result(LabResult),
    Diagnosis(Diagnosis),
}

impl ClinicalRecord {
    pub fn kind(&self) -> RecordKind {
        match self {
            ClinicalRecord::Encounter(_) => RecordKind::Encounter,
            ClinicalRecord::Appointment(_) => RecordKind::Appointment,
            ClinicalRecord::Order(_) => RecordKind::Order,
            ClinicalRecord::Result(_) => RecordKind::Result,
            ClinicalRecord::Diagnosis(_) => RecordKind::Diagnosis,
        }
    }

    /// The key a later message about the same record repeats; `None` when the record carries
    /// nothing to recognise it by (it is then filed once, under its message).
    pub fn key(&self) -> Option<String> {
        let k = match self {
            ClinicalRecord::Encounter(e) => {
                e.id.clone()
                    .or_else(|| e.start.as_ref().map(|s| format!("start|{}", s.sort_key())))?
            }
            ClinicalRecord::Appointment(a) => a.id.clone().or_else(|| {
                a.start
                    .as_ref()
                    .map(|s| format!("start|{}|{}", s.sort_key(), a.service.key()))
            })?,
            ClinicalRecord::Order(o) => o.id.clone().or_else(|| o.filler_id.clone())?,
            ClinicalRecord::Result(r) => match (&r.id, &r.order_id) {
                (Some(id), _) => id.clone(),
                (None, Some(order)) if !r.code.is_empty() => {
                    format!("{order}|{}|{}", r.code.key(), r.sub_id.as_deref().unwrap_or(""))
                }
                _ => return None,
            },
            ClinicalRecord::Diagnosis(d) => match &d.id {
                Some(id) => id.clone(),
                None if !d.code.is_empty() => d.code.key(),
                None => return None,
            },
        };
        Some(k)
    }

    /// The moment the timeline files it under.
    pub fn at(&self) -> Option<&When> {
        match self {
            ClinicalRecord::Encounter(e) => e.start.as_ref().or(e.end.as_ref()),
            ClinicalRecord::Appointment(a) => a.start.as_ref(),
            ClinicalRecord::Order(o) => o.ordered_at.as_ref(),
            ClinicalRecord::Result(r) => r.observed_at.as_ref().or(r.issued_at.as_ref()),
            ClinicalRecord::Diagnosis(d) => d.onset.as_ref().or(d.recorded_at.as_ref()),
        }
    }

    pub fn status(&self) -> Option<&'static str> {
        match self {
            ClinicalRecord::Encounter(e) => e.status.map(EncounterStatus::as_str),
            ClinicalRecord::Appointment(a) => a.status.map(AppointmentStatus::as_str),
            ClinicalRecord::Order(o) => o.status.map(OrderStatus::as_str),
            ClinicalRecord::Result(r) => r.status.map(ResultStatus::as_str),
            ClinicalRecord::Diagnosis(d) => d.status.map(DiagnosisStatus::as_str),
        }
    }

    /// The code the record is about (test, diagnosis, service), for listings.
    pub fn code(&self) -> Option<&Code> {
        match self {
            ClinicalRecord::Appointment(a) => Some(&a.service),
            ClinicalRecord::Order(o) => Some(&o.code),
            ClinicalRecord::Result(r) => Some(&r.code),
            ClinicalRecord::Diagnosis(d) => Some(&d.code),
            ClinicalRecord::Encounter(_) => None,
        }
        .filter(|c| !c.is_empty())
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The record as the store keeps it. A later message's fields are laid over the stored
    /// ones, so fields that only make sense together are written out together: a result that
    /// states a value clears the value fields it leaves empty (`null`), so that a corrected
    /// text result never keeps the number of the preliminary one.
    pub fn storage_json(&self) -> serde_json::Value {
        let mut v = self.to_json();
        if let (ClinicalRecord::Result(r), serde_json::Value::Object(map)) = (self, &mut v)
            && (r.value.is_some() || !r.value_code.is_empty())
        {
            for field in [
                "value",
                "value_type",
                "numeric",
                "comparator",
                "value_code",
                "unit",
            ] {
                map.entry(field).or_insert(serde_json::Value::Null);
            }
        }
        v
    }
}

/// An identity instruction: the persons holding `retired` identifiers are the same person as
/// the one the message describes, and are merged into it (HL7 ADT^A40, FHIR `Patient.link`
/// `replaces`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeInstruction {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<super::Identifier>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(value_type: Option<&str>, value: &str) -> LabResult {
        LabResult {
            value_type: value_type.map(str::to_string),
            value: Some(value.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn numeric_results_are_read_with_their_comparator() {
        let mut r = result(Some("NM"), " 5.4 ");
        assert_eq!(r.settle(), None);
        assert_eq!((r.numeric, r.comparator.as_deref()), (Some(5.4), None));
        let mut r = result(Some("SN"), "<^0.5");
        r.settle();
        assert_eq!((r.numeric, r.comparator.as_deref()), (Some(0.5), Some("<")));
        let mut r = result(None, ">=200");
        r.settle();
        assert_eq!((r.numeric, r.comparator.as_deref()), (Some(200.0), Some(">=")));
    }

    #[test]
    fn a_value_its_type_does_not_allow_is_kept_as_text_with_a_warning() {
        let mut r = result(Some("NM"), "pending");
        assert!(r.settle().is_some());
        assert_eq!(r.numeric, None);
        assert_eq!(r.value.as_deref(), Some("pending"));
        // Text types are never read as numbers, even when they look like one.
        let mut r = result(Some("ST"), "12");
        assert_eq!(r.settle(), None);
        assert_eq!(r.numeric, None);
        // SN ranges (1^-^5) are not one number.
        let mut r = result(Some("SN"), "^1^-^5");
        assert!(r.settle().is_some());
    }

    #[test]
    fn times_keep_their_precision_and_sort_across_it() {
        for ok in [
            "2024",
            "2024-01",
            "2024-01-05",
            "2024-01-05T08:30:00+07:00",
            "2024-01-05T01:30:00.5Z",
        ] {
            assert!(When::try_from(ok.to_string()).is_ok(), "{ok}");
        }
        for bad in ["2024-13", "20240105", "2024-01-05T08:30:00", "yesterday", ""] {
            assert!(When::try_from(bad.to_string()).is_err(), "{bad}");
        }
        let local = When::try_from("2024-01-05T08:30:00+07:00".to_string()).unwrap();
        assert_eq!(local.sort_key(), "2024-01-05T01:30:00Z");
        let day = When::try_from("2024-01-05".to_string()).unwrap();
        assert!(day.sort_key() < local.sort_key());
    }

    #[test]
    fn a_stated_value_clears_the_value_fields_it_leaves_empty() {
        let text = ClinicalRecord::Result(LabResult {
            value_type: Some("ST".into()),
            value: Some("see comment".into()),
            ..Default::default()
        });
        let stored = text.storage_json();
        assert_eq!(stored["numeric"], serde_json::Value::Null);
        assert!(stored.as_object().unwrap().contains_key("numeric"));
        // A status-only update says nothing about the value.
        let status = ClinicalRecord::Result(LabResult {
            status: Some(ResultStatus::Final),
            ..Default::default()
        });
        assert!(!status.storage_json().as_object().unwrap().contains_key("numeric"));
    }

    #[test]
    fn records_are_recognised_by_their_keys() {
        let a = ClinicalRecord::Result(LabResult {
            order_id: Some("ORD1".into()),
            code: Code {
                system: Some("LN".into()),
                code: Some("2345-7".into()),
                display: None,
            },
            ..Default::default()
        });
        assert_eq!(a.key().as_deref(), Some("ORD1|LN|2345-7|"));
        // A result with neither its own id nor an order cannot be recognised later.
        let b = ClinicalRecord::Result(LabResult::default());
        assert_eq!(b.key(), None);
        let d = ClinicalRecord::Diagnosis(Diagnosis {
            code: Code {
                system: Some("I10".into()),
                code: Some("E11.9".into()),
                display: None,
            },
            ..Default::default()
        });
        assert_eq!(d.key().as_deref(), Some("I10|E11.9"));
    }
}
