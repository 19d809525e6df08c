//! `/api/v1/subscriptions` (admin): the clinic systems told of changes — list (with their
//! deliveries by status), create, delete. Secrets go in and never come out. See
//! docs/subscriptions.md; the delivery itself is `crate::subscriptions`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{JsonBody, PathParams};
use super::{ApiError, AppState, ErrorBody};
use crate::store::{ChangeFilter, DeliveryCounts, SubscriptionRow};
use crate::subscriptions::{ChangeEvent, MIN_SECRET_CHARS, Payload, RecordKind};

/// A subscription as the API shows it (never its secret).
#[derive(Serialize, ToSchema)]
pub(super) struct SubscriptionView {
    name: String,
    url: String,
    /// The events and record kinds it wants (empty: all).
    filter: ChangeFilter,
    /// `event` or `fhir`.
    payload: String,
    /// `config` (from carehub.yaml; delete it there) or `api`.
    origin: String,
    created_at: String,
    /// Its deliveries by status (delivered and failed ones are kept 7 days).
    deliveries: DeliveryCounts,
}

/// Subscriptions, as a list.
#[derive(Serialize, ToSchema)]
pub(super) struct SubscriptionList {
    items: Vec<SubscriptionView>,
}

fn view(row: SubscriptionRow, counts: &[(String, DeliveryCounts)]) -> SubscriptionView {
    let deliveries = counts
        .iter()
        .find(|(n, _)| *n == row.name)
        .map(|(_, c)| c.clone())
        .unwrap_or_default();
    SubscriptionView {
        name: row.name,
        url: row.url,
        filter: row.filter,
        payload: row.payload,
        origin: row.origin,
        created_at: row.created_at,
        deliveries,
    }
}

/// Every subscription, configured or made through the API, with its deliveries.
#[utoipa::path(get, path = "/api/v1/subscriptions", tag = "subscriptions",
    responses((status = 200, description = "The subscriptions", body = SubscriptionList)))]
pub(super) async fn list(State(s): State<AppState>) -> Result<Response, ApiError> {
    let counts = s.store.delivery_counts().await?;
    let items = s
        .store
        .subscriptions()
        .await?
        .into_iter()
        .map(|r| view(r, &counts))
        .collect();
    Ok(Json(SubscriptionList { items }).into_response())
}

/// A subscription to make.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSubscription {
    /// Letters, digits, `-` and `_` (1 to 64).
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9_-]+$")]
    name: String,
    /// Where notifications are POSTed: an `http://` or `https://` URL (its pattern is
    /// `crate::subscriptions::URL_PATTERN`, set by `openapi::refine`).
    #[schema(min_length = 1, max_length = 2000)]
    url: String,
    /// The events wanted (default: all).
    #[serde(default)]
    events: Vec<ChangeEvent>,
    /// For `record.changed`: only these kinds (default: all).
    #[serde(default)]
    record_kinds: Vec<RecordKind>,
    /// `event` (default) or `fhir`.
    #[serde(default)]
    payload: Payload,
    /// The HMAC-SHA256 key of `X-Carehub-Signature` (16 to 200 characters); never shown again.
    #[schema(min_length = 16, max_length = 200)]
    secret: String,
}

/// Makes a subscription; it hears of changes made from now on.
#[utoipa::path(post, path = "/api/v1/subscriptions", tag = "subscriptions", request_body = NewSubscription,
    responses((status = 201, description = "The subscription, made", body = SubscriptionView),
        (status = 409, description = "A subscription with that name exists", body = ErrorBody)))]
pub(super) async fn create(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<NewSubscription>,
) -> Result<Response, ApiError> {
    if let Some(p) = crate::subscriptions::name_problem(&body.name) {
        return Err(ApiError::BadRequest(format!("name: {p}")));
    }
    if body.url.len() > 2000 {
        return Err(ApiError::BadRequest("url: at most 2000 characters".into()));
    }
    if let Some(p) = crate::subscriptions::url_problem(&body.url) {
        return Err(ApiError::BadRequest(format!("url: {p}")));
    }
    let secret_chars = body.secret.chars().count();
    if !(MIN_SECRET_CHARS..=200).contains(&secret_chars) {
        return Err(ApiError::BadRequest(format!(
            "secret: {MIN_SECRET_CHARS} to 200 characters"
        )));
    }
    if body.secret.contains('\0') || body.url.contains('\0') {
        return Err(ApiError::BadRequest("NUL characters are not accepted".into()));
    }
    let row = SubscriptionRow {
        name: body.name,
        url: body.url,
        filter: crate::subscriptions::filter(&body.events, &body.record_kinds),
        payload: body.payload.as_str().to_string(),
        secret: Some(body.secret),
        origin: "api".into(),
        through: 0,
        created_at: String::new(),
    };
    let made = s.store.create_subscription(&row).await?;
    Ok((StatusCode::CREATED, Json(view(made, &[]))).into_response())
}

/// What a deletion deleted.
#[derive(Serialize, ToSchema)]
pub(super) struct Deleted {
    deleted: String,
}

/// Deletes a subscription made through the API, with its deliveries not yet made.
#[utoipa::path(delete, path = "/api/v1/subscriptions/{name}", tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    responses((status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 409, description = "A configured subscription: remove it from carehub.yaml", body = ErrorBody)))]
pub(super) async fn delete(
    State(s): State<AppState>,
    PathParams(name): PathParams<String>,
) -> Result<Response, ApiError> {
    s.store.delete_subscription(&name).await?;
    Ok(Json(Deleted { deleted: name }).into_response())
}
