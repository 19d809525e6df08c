//! Access routes: tokens (admin), the audit log (auditor, admin), and `whoami`.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::access::Role;
use super::auth::Principal;
use super::extract::{JsonBody, PathParams, QueryParams, date_or_instant};
use super::{ApiError, AppState, ErrorBody};
use crate::audit::AuditRow;
use crate::store::{AuditFilter, TokenRecord};

/// Who the caller is, as the API knows them.
#[derive(Serialize, ToSchema)]
pub(super) struct WhoAmI {
    /// `token:<id>` or `oidc:<subject>`.
    subject: String,
    /// The role the request was allowed under.
    role: Role,
}

/// The caller's subject and role.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "access",
    responses((status = 200, description = "The caller", body = WhoAmI)))]
pub(super) async fn whoami(Extension(who): Extension<Principal>) -> Response {
    Json(WhoAmI {
        subject: who.subject,
        role: who.role,
    })
    .into_response()
}

/// A stored token (never its secret), with whether it is active now.
#[derive(Serialize, ToSchema)]
pub(super) struct TokenView {
    #[serde(flatten)]
    record: TokenRecord,
    /// Neither revoked nor expired.
    active: bool,
}

/// Tokens, as a list.
#[derive(Serialize, ToSchema)]
pub(super) struct TokenList {
    items: Vec<TokenView>,
}

/// Every API token (never a secret).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "access",
    responses((status = 200, description = "The tokens", body = TokenList)))]
pub(super) async fn list_tokens(State(s): State<AppState>) -> Result<Response, ApiError> {
    let now = jiff::Timestamp::now();
    let items = s
        .store
        .tokens()
        .await?
        .into_iter()
        .map(|record| TokenView {
            active: record.is_active(&now),
            record,
        })
        .collect();
    Ok(Json(TokenList { items }).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewToken {
    /// What the token is for (1 to 100 characters).
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    name: String,
    role: Role,
    /// `90d`, `12h`, `never` (default).
    #[serde(default)]
    expires: Option<String>,
}

/// A new token: its secret, shown this once, and its record.
#[derive(Serialize, ToSchema)]
pub(super) struct NewTokenAnswer {
    /// The bearer token; the store keeps only its hash.
    token: String,
    record: TokenRecord,
}

/// Makes a token; the answer is the only time its secret is shown.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "access", request_body = NewToken,
    responses((status = 201, description = "The token, made", body = NewTokenAnswer)))]
pub(super) async fn create_token(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<Response, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::BadRequest("name: 1 to 100 characters".into()));
    }
    let lifetime = match body.expires.as_deref() {
        None => None,
        Some(t) => super::tokens::parse_lifetime(t).map_err(ApiError::BadRequest)?,
    };
    let (record, token) = super::tokens::create(&s.store, name, body.role, lifetime).await?;
    Ok((StatusCode::CREATED, Json(NewTokenAnswer { token, record })).into_response())
}

/// How many tokens a revocation revoked.
#[derive(Serialize, ToSchema)]
pub(super) struct Revoked {
    revoked: u64,
}

/// Revokes a token, named by its id or its name.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "access",
    params(("id" = String, Path, description = "A token's id or name")),
    responses((status = 200, description = "The token is revoked", body = Revoked),
        (status = 404, description = "No active token with that id or name", body = ErrorBody)))]
pub(super) async fn revoke_token(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    match s.store.revoke_token(&id).await? {
        0 => Err(ApiError::NotFound("active token")),
        revoked => Ok(Json(Revoked { revoked }).into_response()),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Only rows about this person.
    person: Option<String>,
    /// Only rows of this subject (`token:<id>`, `oidc:<subject>`, `cli:<user>`).
    subject: Option<String>,
    /// A route or action prefix: `GET /api/v1/patients`.
    route: Option<String>,
    /// Only rows at or after this date (`YYYY-MM-DD`) or instant (RFC 3339).
    since: Option<String>,
    /// Only rows before this date or instant.
    until: Option<String>,
    /// Only ids below this one: the previous page's `next_before`.
    before: Option<i64>,
    /// How many rows (default 100; 1 to 1000, other values are brought within).
    limit: Option<i64>,
}

/// A page of the audit log, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct AuditPage {
    items: Vec<AuditRow>,
    /// Give it as `before` for the next page; null on the last one.
    next_before: Option<i64>,
}

/// The audit log, newest first, filtered by person, subject, route and time; `next_before`
/// pages on.
#[utoipa::path(get, path = "/api/v1/audit", tag = "access", params(AuditQuery),
    responses((status = 200, description = "A page of the audit log", body = AuditPage)))]
pub(super) async fn audit(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<AuditQuery>,
) -> Result<Response, ApiError> {
    let instant = |v: Option<String>, name: &str| -> Result<Option<String>, ApiError> {
        v.map(|t| date_or_instant(&t, name).map(|ts| ts.to_string()))
            .transpose()
    };
    let filter = AuditFilter {
        person: q.person.filter(|v| !v.is_empty()),
        subject: q.subject.filter(|v| !v.is_empty()),
        action: q.route.filter(|v| !v.is_empty()),
        since: instant(q.since, "since")?,
        until: instant(q.until, "until")?,
        before_id: q.before,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    let items = s.store.audit_rows(&filter).await?;
    let next_before = (items.len() as i64 == filter.limit)
        .then(|| items.last().map(|r| r.id))
        .flatten();
    Ok(Json(AuditPage { items, next_before }).into_response())
}
