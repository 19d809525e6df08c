//! The HTTP API (axum): health, patients, the message log, connectors, tokens, the audit log,
//! and the operator console's pages (`crate::console`), all behind one access layer.
//!
//! Every route is registered with its rule from the one table in `access.rs`; the access layer
//! (`auth.rs`) checks the credential and role of every request before its handler runs and
//! audits the routes that carry patient data. Store errors map to HTTP status in one place
//! ([`ApiError`]). Responses never echo request values into logs.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::store::{Store, StoreError};

pub mod access;
mod admin;
pub mod auth;
mod fhir;
mod messages;
mod notify;
pub mod oidc;
mod tls_serve;
pub mod tokens;

pub use access::{Role, RouteRule};
use auth::carrying;
pub use auth::{AuditLog, Principal};
pub use fhir::FhirEndpoint;
pub use messages::MessagesApi;
pub use notify::Channels;

#[derive(Clone)]
struct AppState {
    store: Store,
    /// The notification queue, when notifications run.
    queue: Option<crate::queue::Queue>,
    /// Channels by name (their webhooks).
    channels: Channels,
    /// Reprocess and how message searches read times.
    messages: MessagesApi,
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
    oidc: Option<Arc<oidc::OidcVerifier>>,
    console: crate::console::ConsoleConfig,
) -> Api {
    use Method as M;
    let mut routes = access::Routes::<AppState>::new()
        .add(M::GET, "/healthz", get(healthz))
        .add(M::GET, "/readyz", get(readyz))
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
        .add(M::GET, "/api/v1/tokens", get(admin::list_tokens))
        .add(M::POST, "/api/v1/tokens", post(admin::create_token))
        .add(M::DELETE, "/api/v1/tokens/{id}", delete(admin::revoke_token))
        .add(M::GET, "/api/v1/audit", get(admin::audit))
        .add(M::GET, "/api/v1/whoami", get(admin::whoami));
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
            ),
            store,
            queue: notify_api.queue,
            channels: notify_api.channels,
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
    Conflict(String),
    /// Not possible now (the reason says why).
    Unavailable(String),
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
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
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
        (status, Json(json!({ "error": message }))).into_response()
    }
}

/// Ready to take work: the store answers and is writable. (Connector and queue checks join it
/// with the operator console.)
async fn readyz(State(s): State<AppState>) -> Response {
    match s.store.ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "store unavailable"})),
        )
            .into_response(),
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
    let persons = items.iter().map(|p| p.id.clone()).collect();
    Ok(carrying(Json(json!({ "items": items })).into_response(), persons))
}

async fn get_patient(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match s.store.person(&id).await? {
        Some(p) => {
            let persons = vec![p.id.clone()];
            Ok(carrying(Json(p).into_response(), persons))
        }
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
    let persons = vec![person.id.clone()];
    Ok(carrying(
        Json(json!({ "person_id": person.id, "merged_into": person.merged_into, "items": items }))
            .into_response(),
        persons,
    ))
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
    let persons = items
        .iter()
        .flat_map(|i| [i.person_id.clone(), i.candidate_id.clone()])
        .collect();
    Ok(carrying(Json(json!({ "items": items })).into_response(), persons))
}

/// The two are one person: the new one is merged into the existing one.
async fn link_review(State(s): State<AppState>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let item = s.store.decide_review(id, true).await?;
    let persons = vec![item.person_id.clone(), item.candidate_id.clone()];
    Ok(carrying(Json(item).into_response(), persons))
}

/// The two are different people: the item is closed, both stay.
async fn reject_review(State(s): State<AppState>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let item = s.store.decide_review(id, false).await?;
    let persons = vec![item.person_id.clone(), item.candidate_id.clone()];
    Ok(carrying(Json(item).into_response(), persons))
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
    let view = s.store.merge(&id, &body.merge, "api").await?;
    let persons = vec![view.survivor_id.clone(), view.merged_id.clone()];
    Ok(carrying(Json(view).into_response(), persons))
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
async fn unmerge_patient(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let view = s.store.unmerge(&id).await?;
    let persons = vec![view.survivor_id.clone(), view.merged_id.clone()];
    Ok(carrying(Json(view).into_response(), persons))
}

async fn list_connectors(State(s): State<AppState>) -> Result<Response, ApiError> {
    let items = s.store.connectors().await?;
    Ok(Json(json!({ "items": items })).into_response())
}
