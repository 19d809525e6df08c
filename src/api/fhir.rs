//! `POST {path}` of a `fhir_push` connector: FHIR R4 resources and Bundles from systems that
//! push. Answers as a FHIR server would: a `batch-response` / `transaction-response` Bundle
//! with one entry per resource (201 applied, 200 already had or kept without a mapping, 422
//! refused, each with an OperationOutcome saying why), or an OperationOutcome alone for a
//! body that is no document (400), too many resources (413), a failed transaction (400) or a
//! store outage (503). Nothing a sender posts is lost: refused bodies and resources are kept in
//! the message log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::pipeline::{ConnectorContext, FhirEntryOutcome, FhirOutcome, Ingest};
use crate::store::MessageStatus;

/// One push endpoint: the connector it belongs to and the pipeline it feeds.
#[derive(Clone)]
pub struct FhirEndpoint {
    pub path: String,
    pub ctx: ConnectorContext,
    pub ingest: Ingest,
    pub max_resources: usize,
}

pub async fn push(endpoint: FhirEndpoint, origin: Option<String>, body: axum::body::Bytes) -> Response {
    let outcome = endpoint
        .ingest
        .submit_fhir(&endpoint.ctx, body.to_vec(), origin, endpoint.max_resources)
        .await;
    answer(outcome)
}

fn fhir_json(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json; charset=utf-8"),
    );
    resp
}

fn outcome(severity: &str, code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]
    })
}

fn answer(o: FhirOutcome) -> Response {
    match o {
        FhirOutcome::Unreadable { reason, message_id } => {
            let kept = message_id
                .map(|id| format!(" (kept as message {id})"))
                .unwrap_or_default();
            fhir_json(
                StatusCode::BAD_REQUEST,
                outcome("error", "structure", &format!("{reason}{kept}")),
            )
        }
        FhirOutcome::TooLarge { resources, limit } => fhir_json(
            StatusCode::PAYLOAD_TOO_LARGE,
            outcome(
                "error",
                "too-costly",
                &format!("{resources} resources in one request; this endpoint takes at most {limit}"),
            ),
        ),
        FhirOutcome::StoreUnavailable => fhir_json(
            StatusCode::SERVICE_UNAVAILABLE,
            outcome(
                "error",
                "transient",
                "the store could not confirm that the document is stored; send it again (what was stored is recognised as already received)",
            ),
        ),
        FhirOutcome::Stored {
            bundle_type,
            entries,
            transaction_failed,
        } => {
            if let Some(failed) = transaction_failed {
                let why = entries
                    .iter()
                    .find(|e| e.index == failed)
                    .and_then(|e| e.error.clone())
                    .unwrap_or_default();
                return fhir_json(
                    StatusCode::BAD_REQUEST,
                    outcome(
                        "error",
                        "processing",
                        &format!(
                            "entry {} could not be mapped, so no entry of this transaction was applied (all are kept): {why}",
                            failed + 1
                        ),
                    ),
                );
            }
            if bundle_type.is_none() && entries.len() == 1 {
                let (status, body) = entry_response(&entries[0]);
                return fhir_json(status, body);
            }
            let kind = match bundle_type.as_deref() {
                Some("transaction") => "transaction-response",
                _ => "batch-response",
            };
            let items: Vec<Value> = entries
                .iter()
                .map(|e| {
                    let (status, body) = entry_response(e);
                    json!({"response": {
                        "status": format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("")),
                        "outcome": body,
                    }})
                })
                .collect();
            fhir_json(
                StatusCode::OK,
                json!({"resourceType": "Bundle", "type": kind, "entry": items}),
            )
        }
    }
}

/// The status and OperationOutcome of one resource.
fn entry_response(e: &FhirEntryOutcome) -> (StatusCode, Value) {
    let id = e.applied.as_ref().map(|a| a.message_id).unwrap_or_default();
    let status = e.applied.as_ref().map(|a| a.status);
    let warnings = if e.warnings.is_empty() {
        String::new()
    } else {
        format!("; warnings: {}", e.warnings.join("; "))
    };
    match (status, &e.error) {
        (_, Some(reason)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            outcome("error", "processing", &format!("{reason} (kept as message {id})")),
        ),
        (Some(MessageStatus::Duplicate), _) => (
            StatusCode::OK,
            outcome(
                "information",
                "duplicate",
                &format!("already received (message {id})"),
            ),
        ),
        (Some(MessageStatus::Unmapped), _) => (
            StatusCode::OK,
            outcome(
                "information",
                "not-supported",
                &format!("no mapping for {}; kept as message {id}", e.resource_type),
            ),
        ),
        (Some(MessageStatus::Error), _) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            outcome("error", "processing", &format!("refused (message {id})")),
        ),
        _ => (
            StatusCode::CREATED,
            outcome(
                "information",
                "informational",
                &format!("applied as message {id}{warnings}"),
            ),
        ),
    }
}
