//! The canonical model: what every source is mapped into and what the store keeps.
//!
//! Shaped after FHIR R4 (`Patient.identifier`, `name`, `telecom`, `address`…) so that a FHIR
//! read API is a projection, not a translation. Pure types: no I/O, no knowledge of HL7 or SQL.
//! Values are checked once, when they enter (`BirthDate`, `Sex`, `ContactPoint`), and trusted
//! after that.

mod person;

pub use person::{Address, BirthDate, ContactPoint, ContactSystem, HumanName, Identifier, ProfilePatch, Sex};
