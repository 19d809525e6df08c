//! carehub's integration tests: one binary, a real hub per test (temp SQLite store, port 0).

mod api;
mod at_rest;
mod backends;
mod backup;
mod channels;
mod cli;
mod clinical;
mod conformance;
mod corpus;
mod fhir_corpus;
mod fhir_pull;
mod fhir_push;
mod fhir_server;
mod fhir_server_tests;
mod fhirpath_suite;
mod file_source;
mod helpers;
mod identity;
mod mllp;
mod notify;
mod queue;
mod queue_rabbit;
mod replay;
mod survivorship;
