//! The HTTP API (axum): health, patients, the message log, connectors.
//!
//! Routes are grouped so that authentication (a later issue) is one `route_layer` on the
//! `/api/v1` router. Store errors map to HTTP status in one place ([`ApiError`]). Responses
//! never echo request values into logs.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::store::{MessageFilter, MessageStatus, Store, StoreError};

mod fhir;
mod notify;

pub use fhir::FhirEndpoint;
pub use notify::Channels;

#[derive(Clone)]
struct AppState {
    store: Store,
    /// The notification queue, when notifications run.
    queue: Option<crate::queue::Queue>,
    /// Channels by name (their webhooks).
    channels: Channels,
}

/// What the notification routes need; `Default` when notifications are off.
#[derive(Clone, Default)]
pub struct NotifyApi {
    pub queue: Option<crate::queue::Queue>,
    pub channels: Channels,
}

/// Builds the router, with the POST endpoint of each FHIR push connector.
pub fn router(
    store: Store,
    request_timeout: Duration,
    max_body_bytes: usize,
    fhir_endpoints: Vec<FhirEndpoint>,
    notify_api: NotifyApi,
) -> Router {
    let v1 = Router::new()
        .route("/patients", get(find_patients))
        .route("/patients/{id}", get(get_patient))
        .route("/patients/{id}/timeline", get(get_timeline))
        .route("/messages", get(list_messages))
        .route("/messages/{id}", get(get_message))
        .route("/connectors", get(list_connectors))
        .route("/match", post(match_patient))
        .route("/review", get(list_reviews))
        .route("/review/{id}/link", post(link_review))
        .route("/review/{id}/reject", post(reject_review))
        .route("/patients/{id}/merge", post(merge_patient))
        .route("/patients/{id}/unmerge", post(unmerge_patient))
        .route("/patients/{id}/interactions", get(notify::interactions))
        .route(
            "/patients/{id}/consents",
            get(notify::consents).post(notify::set_consent),
        )
        .route("/patients/{id}/unsubscribe", post(notify::unsubscribe))
        .route(
            "/patients/{id}/preferences",
            get(notify::preferences).put(notify::set_preferences),
        )
        .route("/reports/channels", get(notify::channel_report))
        .route("/notifications", get(notify::queue_state))
        .route("/webhooks/{channel}", post(notify::webhook));
    let mut root = Router::new().route("/healthz", get(healthz)).nest("/api/v1", v1);
    for endpoint in fhir_endpoints {
        let path = endpoint.path.clone();
        root = root.route(
            &path,
            post(
                move |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
                      body: axum::body::Bytes| {
                    let endpoint = endpoint.clone();
                    async move { fhir::push(endpoint, Some(peer.to_string()), body).await }
                },
            ),
        );
    }
    root.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        request_timeout,
    ))
    .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body_bytes))
    // Body extractors have their own 2 MB default; the configured limit is the one.
    .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
    .with_state(AppState {
        store,
        queue: notify_api.queue,
        channels: notify_api.channels,
    })
}

/// Serves the API on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = shutdown.wait_for(|s| *s).await;
    })
    .await
}

/// Errors as HTTP answers.
enum ApiError {
    NotFound(&'static str),
    BadRequest(String),
    Conflict(String),
    Store(StoreError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            e => ApiError::Store(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, format!("{what} not found")),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
            ApiError::Store(e) => {
                tracing::error!(error = %e, "store error while answering an API request");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store is unavailable".to_string(),
                )
            }
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

async fn healthz(State(s): State<AppState>) -> Response {
    match s.store.ping().await {
        Ok(()) => Json(json!({"status": "ok"})).into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "store unavailable"})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct PatientQuery {
    identifier: Option<String>,
    system: Option<String>,
}

async fn find_patients(
    State(s): State<AppState>,
    Query(q): Query<PatientQuery>,
) -> Result<Response, ApiError> {
    let Some(value) = q.identifier.filter(|v| !v.is_empty()) else {
        return Err(ApiError::BadRequest(
            "give ?identifier=VALUE (and optionally &system=SYSTEM)".into(),
        ));
    };
    let items = s.store.find_persons(&value, q.system.as_deref()).await?;
    Ok(Json(json!({ "items": items })).into_response())
}

async fn get_patient(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match s.store.person(&id).await? {
        Some(p) => Ok(Json(p).into_response()),
        None => Err(ApiError::NotFound("patient")),
    }
}

#[derive(Deserialize)]
struct TimelineQuery {
    kind: Option<String>,
    limit: Option<i64>,
}

/// A person's encounters, appointments, orders, results and diagnoses, newest first:
/// `?kind=result` narrows to one kind, `?limit=` (default 200, at most 1000).
async fn get_timeline(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<TimelineQuery>,
) -> Result<Response, ApiError> {
    if let Some(k) = q.kind.as_deref()
        && crate::model::RecordKind::parse(k).is_none()
    {
        return Err(ApiError::BadRequest(
            "kind is one of encounter, appointment, order, result, diagnosis".into(),
        ));
    }
    let person = s.store.person(&id).await?.ok_or(ApiError::NotFound("patient"))?;
    let items = s
        .store
        .timeline(&id, q.kind.as_deref(), q.limit.unwrap_or(200).clamp(1, 1000))
        .await?;
    Ok(
        Json(json!({ "person_id": person.id, "merged_into": person.merged_into, "items": items }))
            .into_response(),
    )
}

#[derive(Deserialize)]
struct ReviewQuery {
    status: Option<String>,
    limit: Option<i64>,
}

/// Possible duplicates: `?status=open` (default), `linked` or `rejected`.
async fn list_reviews(State(s): State<AppState>, Query(q): Query<ReviewQuery>) -> Result<Response, ApiError> {
    let status = q.status.unwrap_or_else(|| "open".into());
    if !matches!(status.as_str(), "open" | "linked" | "rejected") {
        return Err(ApiError::BadRequest(
            "status is one of open, linked, rejected".into(),
        ));
    }
    let items = s
        .store
        .reviews(&status, q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    Ok(Json(json!({ "items": items })).into_response())
}

/// The two are one person: the new one is merged into the existing one.
async fn link_review(State(s): State<AppState>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    Ok(Json(s.store.decide_review(id, true).await?).into_response())
}

/// The two are different people: the item is closed, both stay.
async fn reject_review(State(s): State<AppState>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    Ok(Json(s.store.decide_review(id, false).await?).into_response())
}

#[derive(Deserialize)]
struct MergeBody {
    /// The person merged into the one in the path.
    merge: String,
}

async fn merge_patient(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<MergeBody>,
) -> Result<Response, ApiError> {
    Ok(Json(s.store.merge(&id, &body.merge, "api").await?).into_response())
}

/// What ingest would do with this record (a profile in the canonical form: identifiers,
/// names, birth_date, sex, telecom, addresses): the person it belongs to, or review, or new,
/// with the score breakdown. Nothing is stored — a front desk asking "do we know this person?".
async fn match_patient(
    State(s): State<AppState>,
    Json(patch): Json<crate::model::ProfilePatch>,
) -> Result<Response, ApiError> {
    if patch.is_empty() {
        return Err(ApiError::BadRequest(
            "the record names nothing to match on (identifiers, names, birth_date, telecom…)".into(),
        ));
    }
    Ok(Json(s.store.match_patch(&patch).await?).into_response())
}

/// Undoes the latest merge into this person: both persons are as they were.
async fn unmerge_patient(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(s.store.unmerge(&id).await?).into_response())
}

#[derive(Deserialize)]
struct MessageQuery {
    status: Option<String>,
    connector: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

async fn list_messages(
    State(s): State<AppState>,
    Query(q): Query<MessageQuery>,
) -> Result<Response, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(v) => Some(MessageStatus::parse(v).ok_or_else(|| {
            ApiError::BadRequest(
                "status must be one of received, processed, error, duplicate, unmapped".into(),
            )
        })?),
    };
    let filter = MessageFilter {
        status,
        connector: q.connector,
        before_id: q.before,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    let items = s.store.messages(&filter).await?;
    let next = (items.len() as i64 == filter.limit)
        .then(|| items.last().map(|m| m.id))
        .flatten();
    Ok(Json(json!({ "items": items, "next_before": next })).into_response())
}

async fn get_message(State(s): State<AppState>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    match s.store.message(id).await? {
        Some(m) => {
            let mut body = serde_json::to_value(&m).unwrap_or_default();
            body["raw"] = match &m.summary.body_pruned_at {
                // Retention emptied it: say so rather than show an empty message.
                Some(at) => {
                    body["body_note"] =
                        json!(format!("the raw body was pruned by the retention policy at {at}"));
                    serde_json::Value::Null
                }
                None => json!(String::from_utf8_lossy(&m.raw)),
            };
            Ok(Json(body).into_response())
        }
        None => Err(ApiError::NotFound("message")),
    }
}

async fn list_connectors(State(s): State<AppState>) -> Result<Response, ApiError> {
    let items = s.store.connectors().await?;
    Ok(Json(json!({ "items": items })).into_response())
}
