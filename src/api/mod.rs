//! The HTTP API (axum): health, patients, the message log, connectors, tokens, the audit log,
//! and the operator console's pages (`crate::console`), all behind one access layer.
//!
//! Every route is registered with its rule from the one table in `access.rs`; the access layer
//! (`auth.rs`) checks the credential and role of every request before its handler runs and
//! audits the routes that carry patient data. Store errors map to HTTP status in one place
//! ([`ApiError`]). Responses never echo request values into logs.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use utoipa::{IntoParams, ToSchema};

use crate::store::{
    ConnectorStatus, MatchResult, MergeView, PersonView, ReviewItem, Store, StoreError, TimelineEntry,
};

pub mod access;
mod admin;
pub mod auth;
mod extract;
mod fhir;
mod messages;
mod notify;
pub mod oidc;
pub mod openapi;
mod ops;
mod subscriptions;
mod tls_serve;
pub mod tokens;

pub use access::{Role, RouteRule};
use auth::carrying;
pub use auth::{AuditLog, Principal};
use extract::{JsonBody, PathParams, QueryParams};
pub use fhir::FhirEndpoint;
pub use messages::MessagesApi;
pub use notify::Channels;
pub use ops::{OpsApi, Readiness};

#[derive(Clone)]
struct AppState {
    store: Store,
    /// The notification queue, when notifications run.
    queue: Option<crate::queue::Queue>,
    /// Channels by name (their webhooks).
    channels: Channels,
    /// Readiness of this hub's connectors.
    ops: OpsApi,
    /// Reprocess and how message searches read times.
    messages: MessagesApi,
    /// The OpenAPI document, with this hub's channel names.
    openapi: Arc<str>,
    /// The operator console's pages.
    console: crate::console::ConsoleState,
}

impl axum::extract::FromRef<AppState> for crate::console::ConsoleState {
    fn from_ref(s: &AppState) -> Self {
        s.console.clone()
    }
}

/// What the notification routes need; `Default` when notifications are off.
#[derive(Clone, Default)]
pub struct NotifyApi {
    pub queue: Option<crate::queue::Queue>,
    pub channels: Channels,
}

/// The router with the list of its routes and their rules.
pub struct Api {
    pub router: Router,
    /// Every route the router has: method, path and rule (the route test walks them).
    pub routes: Vec<(Method, String, &'static RouteRule)>,
}

/// Builds the router, with the POST endpoint of each FHIR push connector, every route behind
/// the access layer.
// Each argument is one room's handle, built by `app`; a struct gathering them would only
// move the list.
#[allow(clippy::too_many_arguments)]
pub fn router(
    store: Store,
    request_timeout: Duration,
    max_body_bytes: usize,
    fhir_endpoints: Vec<FhirEndpoint>,
    notify_api: NotifyApi,
    messages_api: MessagesApi,
    ops_api: OpsApi,
    oidc: Option<Arc<oidc::OidcVerifier>>,
    console: crate::console::ConsoleConfig,
) -> Api {
    use Method as M;
    let mut routes = access::Routes::<AppState>::new()
        .add(M::GET, "/healthz", get(healthz))
        .add(M::GET, "/readyz", get(ops::readyz))
        .add(M::GET, "/metrics", get(ops::metrics))
        .add(M::GET, "/api/v1/alerts", get(ops::alerts))
        .add(M::GET, "/api/v1/patients", get(find_patients))
        .add(M::GET, "/api/v1/patients/{id}", get(get_patient))
        .add(M::GET, "/api/v1/patients/{id}/timeline", get(get_timeline))
        .add(M::GET, "/api/v1/messages", get(messages::list_messages))
        .add(M::POST, "/api/v1/messages/reprocess", post(messages::reprocess))
        .add(M::GET, "/api/v1/messages/{id}", get(messages::get_message))
        .add(M::GET, "/api/v1/connectors", get(list_connectors))
        .add(M::POST, "/api/v1/match", post(match_patient))
        .add(M::GET, "/api/v1/review", get(list_reviews))
        .add(M::POST, "/api/v1/review/{id}/link", post(link_review))
        .add(M::POST, "/api/v1/review/{id}/reject", post(reject_review))
        .add(M::POST, "/api/v1/patients/{id}/merge", post(merge_patient))
        .add(M::POST, "/api/v1/patients/{id}/unmerge", post(unmerge_patient))
        .add(
            M::GET,
            "/api/v1/patients/{id}/interactions",
            get(notify::interactions),
        )
        .add(M::GET, "/api/v1/patients/{id}/consents", get(notify::consents))
        .add(
            M::POST,
            "/api/v1/patients/{id}/consents",
            post(notify::set_consent),
        )
        .add(
            M::POST,
            "/api/v1/patients/{id}/unsubscribe",
            post(notify::unsubscribe),
        )
        .add(
            M::GET,
            "/api/v1/patients/{id}/preferences",
            get(notify::preferences),
        )
        .add(
            M::PUT,
            "/api/v1/patients/{id}/preferences",
            put(notify::set_preferences),
        )
        .add(M::GET, "/api/v1/reports/channels", get(notify::channel_report))
        .add(M::GET, "/api/v1/notifications", get(notify::queue_state))
        .add(M::POST, "/api/v1/webhooks/{channel}", post(notify::webhook))
        .add(M::GET, "/api/v1/subscriptions", get(subscriptions::list))
        .add(M::POST, "/api/v1/subscriptions", post(subscriptions::create))
        .add(
            M::DELETE,
            "/api/v1/subscriptions/{name}",
            delete(subscriptions::delete),
        )
        .add(M::GET, "/api/v1/tokens", get(admin::list_tokens))
        .add(M::POST, "/api/v1/tokens", post(admin::create_token))
        .add(M::DELETE, "/api/v1/tokens/{id}", delete(admin::revoke_token))
        .add(M::GET, "/api/v1/audit", get(admin::audit))
        .add(M::GET, "/api/v1/whoami", get(admin::whoami))
        .add(M::GET, "/api/v1/openapi.json", get(openapi::openapi_json));
    let push_rule = access::rule_for(&M::POST, access::FHIR_PUSH).expect("the FHIR push rule");
    for endpoint in fhir_endpoints {
        let path = endpoint.path.clone();
        routes = routes.add_ruled(
            M::POST,
            &path,
            post(
                move |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
                      body: axum::body::Bytes| {
                    let endpoint = endpoint.clone();
                    async move { fhir::push(endpoint, Some(peer.to_string()), body).await }
                },
            ),
            push_rule,
        );
    }
    let routes = crate::console::add_routes(routes);
    let (router, registered) = routes.into_parts();
    let console_oidc = oidc.clone();
    let access = auth::Access::new(store.clone(), AuditLog::start(store.clone()), oidc, &registered);
    let router = router
        .layer(axum::middleware::from_fn_with_state(access, auth::authorize))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body_bytes))
        // Body extractors have their own 2 MB default; the configured limit is the one.
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .with_state(AppState {
            console: crate::console::ConsoleState::new(
                store.clone(),
                notify_api.queue.clone(),
                notify_api.channels.keys().cloned().collect(),
                messages_api.clone(),
                console,
            )
            .with_oidc(console_oidc),
            store,
            queue: notify_api.queue,
            openapi: openapi::document(&notify_api.channels.keys().map(String::as_str).collect::<Vec<_>>())
                .into(),
            channels: notify_api.channels,
            ops: ops_api,
            messages: messages_api,
        });
    Api {
        router,
        routes: registered,
    }
}

/// Serves the API on `listener` until `shutdown` turns true; HTTPS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    if let Some(tls) = tls {
        return tls_serve::serve(listener, router, tls, shutdown).await;
    }
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
    /// The role may use the route, not in this way (the reason says why).
    Forbidden(String),
    /// A request body over `api.max_body_bytes`.
    TooLarge(String),
    Conflict(String),
    /// Not possible now (the reason says why).
    Unavailable(String),
    Store(StoreError),
}

/// Every refusal's body: why, in a sentence (never a patient value from the store).
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
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
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            ApiError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            ApiError::Store(e) => {
                tracing::error!(error = %e, "store error while answering an API request");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store is unavailable".to_string(),
                )
            }
        };
        (status, Json(ErrorBody { error: message })).into_response()
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PatientQuery {
    /// The identifier's value (an MRN, a national id…).
    #[param(required = true, min_length = 1)]
    identifier: Option<String>,
    /// Only identifiers issued by this system.
    system: Option<String>,
}

/// Persons, as a list.
#[derive(Serialize, ToSchema)]
struct PatientList {
    items: Vec<PersonView>,
}

/// The persons holding an identifier (an empty list when nobody does).
#[utoipa::path(get, path = "/api/v1/patients", tag = "patients", params(PatientQuery),
    responses((status = 200, description = "The persons holding the identifier", body = PatientList)))]
async fn find_patients(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<PatientQuery>,
) -> Result<Response, ApiError> {
    let Some(value) = q.identifier.filter(|v| !v.is_empty()) else {
        return Err(ApiError::BadRequest(
            "give ?identifier=VALUE (and optionally &system=SYSTEM)".into(),
        ));
    };
    let items = s.store.find_persons(&value, q.system.as_deref()).await?;
    let persons = items.iter().map(|p| p.id.clone()).collect();
    Ok(carrying(Json(PatientList { items }).into_response(), persons))
}

/// A person's unified profile: golden record, identifiers, field-level provenance.
#[utoipa::path(get, path = "/api/v1/patients/{id}", tag = "patients", params(("id" = String, Path, description = "A person id")),
    responses((status = 200, description = "The person", body = PersonView), (status = 404, description = "No such person", body = ErrorBody)))]
async fn get_patient(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    match s.store.person(&id).await? {
        Some(p) => {
            let persons = vec![p.id.clone()];
            Ok(carrying(Json(p).into_response(), persons))
        }
        None => Err(ApiError::NotFound("patient")),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TimelineQuery {
    /// Only records of this kind.
    #[param(inline)]
    kind: Option<RecordKindParam>,
    /// How many records (default 200; 1 to 1000, larger or smaller values are brought within).
    limit: Option<i64>,
}

/// The kinds of clinical record (as the timeline names them).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum RecordKindParam {
    Encounter,
    Appointment,
    Order,
    Result,
    Diagnosis,
}

impl RecordKindParam {
    fn as_str(&self) -> &'static str {
        match self {
            RecordKindParam::Encounter => "encounter",
            RecordKindParam::Appointment => "appointment",
            RecordKindParam::Order => "order",
            RecordKindParam::Result => "result",
            RecordKindParam::Diagnosis => "diagnosis",
        }
    }
}

/// A person's clinical records, newest first.
#[derive(Serialize, ToSchema)]
struct Timeline {
    person_id: String,
    /// Set when this person was merged into another.
    merged_into: Option<String>,
    items: Vec<TimelineEntry>,
}

/// A person's encounters, appointments, orders, results and diagnoses, newest first:
/// `?kind=result` narrows to one kind, `?limit=` (default 200, at most 1000).
#[utoipa::path(get, path = "/api/v1/patients/{id}/timeline", tag = "patients",
    params(("id" = String, Path, description = "A person id"), TimelineQuery),
    responses((status = 200, description = "The person's timeline", body = Timeline), (status = 404, description = "No such person", body = ErrorBody)))]
async fn get_timeline(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<TimelineQuery>,
) -> Result<Response, ApiError> {
    let kind = q.kind.as_ref().map(RecordKindParam::as_str);
    debug_assert!(kind.is_none_or(|k| crate::model::RecordKind::parse(k).is_some()));
    let person = s.store.person(&id).await?.ok_or(ApiError::NotFound("patient"))?;
    let items = s
        .store
        .timeline(&id, kind, q.limit.unwrap_or(200).clamp(1, 1000))
        .await?;
    let persons = vec![person.id.clone()];
    let timeline = Timeline {
        person_id: person.id,
        merged_into: person.merged_into,
        items,
    };
    Ok(carrying(Json(timeline).into_response(), persons))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ReviewQuery {
    /// Which items (default `open`).
    #[param(inline)]
    status: Option<ReviewStatus>,
    /// How many items (default 100; 1 to 1000, other values are brought within).
    limit: Option<i64>,
}

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ReviewStatus {
    Open,
    Linked,
    Rejected,
}

/// Review items, as a list.
#[derive(Serialize, ToSchema)]
struct ReviewList {
    items: Vec<ReviewItem>,
}

/// Possible duplicates: `?status=open` (default), `linked` or `rejected`.
#[utoipa::path(get, path = "/api/v1/review", tag = "identity", params(ReviewQuery),
    responses((status = 200, description = "The review items, newest first", body = ReviewList)))]
async fn list_reviews(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<ReviewQuery>,
) -> Result<Response, ApiError> {
    let status = match q.status.unwrap_or(ReviewStatus::Open) {
        ReviewStatus::Open => "open",
        ReviewStatus::Linked => "linked",
        ReviewStatus::Rejected => "rejected",
    };
    let items = s
        .store
        .reviews(status, q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    let persons = items
        .iter()
        .flat_map(|i| [i.person_id.clone(), i.candidate_id.clone()])
        .collect();
    Ok(carrying(Json(ReviewList { items }).into_response(), persons))
}

/// The two are one person: the new one is merged into the existing one.
#[utoipa::path(post, path = "/api/v1/review/{id}/link", tag = "identity", params(("id" = i64, Path, description = "A review item's id")),
    responses((status = 200, description = "The item, decided", body = ReviewItem), (status = 404, description = "No such item", body = ErrorBody),
        (status = 409, description = "The item is decided already", body = ErrorBody)))]
async fn link_review(
    State(s): State<AppState>,
    PathParams(id): PathParams<i64>,
) -> Result<Response, ApiError> {
    let item = s.store.decide_review(id, true).await?;
    let persons = vec![item.person_id.clone(), item.candidate_id.clone()];
    Ok(carrying(Json(item).into_response(), persons))
}

/// The two are different people: the item is closed, both stay.
#[utoipa::path(post, path = "/api/v1/review/{id}/reject", tag = "identity", params(("id" = i64, Path, description = "A review item's id")),
    responses((status = 200, description = "The item, decided", body = ReviewItem), (status = 404, description = "No such item", body = ErrorBody),
        (status = 409, description = "The item is decided already", body = ErrorBody)))]
async fn reject_review(
    State(s): State<AppState>,
    PathParams(id): PathParams<i64>,
) -> Result<Response, ApiError> {
    let item = s.store.decide_review(id, false).await?;
    let persons = vec![item.person_id.clone(), item.candidate_id.clone()];
    Ok(carrying(Json(item).into_response(), persons))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    /// The person merged into the one in the path.
    merge: String,
}

/// Merges the person named in the body into the one in the path (undone by unmerge).
#[utoipa::path(post, path = "/api/v1/patients/{id}/merge", tag = "identity",
    params(("id" = String, Path, description = "The surviving person's id")), request_body = MergeBody,
    responses((status = 200, description = "The merge, as recorded", body = MergeView), (status = 404, description = "No such person", body = ErrorBody),
        (status = 409, description = "The two cannot be merged (the same person, or one merged already)", body = ErrorBody)))]
async fn merge_patient(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<MergeBody>,
) -> Result<Response, ApiError> {
    let view = s.store.merge(&id, &body.merge, "api").await?;
    let persons = vec![view.survivor_id.clone(), view.merged_id.clone()];
    Ok(carrying(Json(view).into_response(), persons))
}

/// What ingest would do with this record (a profile in the canonical form: identifiers,
/// names, birth_date, sex, telecom, addresses): the person it belongs to, or review, or new,
/// with the score breakdown. Nothing is stored — a front desk asking "do we know this person?".
#[utoipa::path(post, path = "/api/v1/match", tag = "identity", request_body = crate::model::ProfilePatch,
    responses((status = 200, description = "The decision ingest would take, with its score", body = MatchResult)))]
async fn match_patient(
    State(s): State<AppState>,
    JsonBody(patch): JsonBody<crate::model::ProfilePatch>,
) -> Result<Response, ApiError> {
    if patch.is_empty() {
        return Err(ApiError::BadRequest(
            "the record names nothing to match on (identifiers, names, birth_date, telecom…)".into(),
        ));
    }
    let found = s.store.match_patch(&patch).await?;
    let persons = found
        .person_id
        .iter()
        .chain(found.candidate_id.iter())
        .cloned()
        .collect();
    Ok(carrying(Json(found).into_response(), persons))
}

/// Undoes the latest merge into this person: both persons are as they were.
#[utoipa::path(post, path = "/api/v1/patients/{id}/unmerge", tag = "identity",
    params(("id" = String, Path, description = "The surviving person's id")),
    responses((status = 200, description = "The merge, undone", body = MergeView), (status = 404, description = "No such person, or no merge into it", body = ErrorBody),
        (status = 409, description = "The merge cannot be undone", body = ErrorBody)))]
async fn unmerge_patient(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let view = s.store.unmerge(&id).await?;
    let persons = vec![view.survivor_id.clone(), view.merged_id.clone()];
    Ok(carrying(Json(view).into_response(), persons))
}

/// Connectors, as a list.
#[derive(Serialize, ToSchema)]
struct ConnectorList {
    items: Vec<ConnectorStatus>,
}

/// Every connector's state and counters; a pull connector's latest run.
#[utoipa::path(get, path = "/api/v1/connectors", tag = "operations",
    responses((status = 200, description = "The connectors", body = ConnectorList)))]
async fn list_connectors(State(s): State<AppState>) -> Result<Response, ApiError> {
    let items = s.store.connectors().await?;
    Ok(Json(ConnectorList { items }).into_response())
}
