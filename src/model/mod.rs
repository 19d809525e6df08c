//! The canonical model: what every source is mapped into and what the store keeps.
//!
//! Shaped after FHIR R4 (`Patient.identifier`, `name`, `telecom`, `address`…) so that a FHIR
//! read API is a projection, not a translation. Pure types: no I/O, no knowledge of HL7 or SQL.
//! Values are checked once, when they enter (`BirthDate`, `Sex`, `ContactPoint`), and trusted
//! after that.

mod clinical;
mod person;

pub use clinical::{
    Appointment, AppointmentStatus, ClinicalRecord, Code, Diagnosis, DiagnosisStatus, Encounter,
    EncounterStatus, LabResult, MergeInstruction, Order, OrderStatus, RecordKind, ResultStatus, When,
};
pub use person::{
    Address, BirthDate, Consent, ConsentDecision, ContactPoint, ContactSystem, HumanName, Identifier,
    ProfilePatch, Sex,
};
