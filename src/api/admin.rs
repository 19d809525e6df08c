//! Access routes: tokens (admin), the audit log (auditor, admin), and `whoami`.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::access::Role;
use super::auth::Principal;
use super::{ApiError, AppState};
use crate::store::AuditFilter;

pub(super) async fn whoami(Extension(who): Extension<Principal>) -> Response {
    Json(json!({"subject": who.subject, "role": who.role})).into_response()
}

pub(super) async fn list_tokens(State(s): State<AppState>) -> Result<Response, ApiError> {
    let now = jiff::Timestamp::now();
    let items: Vec<_> = s
        .store
        .tokens()
        .await?
        .into_iter()
        .map(|t| {
            let active = t.is_active(&now);
            let mut v = serde_json::to_value(&t).unwrap_or_default();
            v["active"] = json!(active);
            v
        })
        .collect();
    Ok(Json(json!({ "items": items })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewToken {
    name: String,
    role: String,
    /// `90d`, `12h`, `never` (default).
    #[serde(default)]
    expires: Option<String>,
}

/// Makes a token; the answer is the only time its secret is shown.
pub(super) async fn create_token(
    State(s): State<AppState>,
    Json(body): Json<NewToken>,
) -> Result<Response, ApiError> {
    let role = Role::parse(&body.role).ok_or_else(|| {
        ApiError::BadRequest("role is one of admin, ops, clinician, sender, auditor".into())
    })?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::BadRequest("name: 1 to 100 characters".into()));
    }
    let lifetime = match body.expires.as_deref() {
        None => None,
        Some(t) => super::tokens::parse_lifetime(t).map_err(ApiError::BadRequest)?,
    };
    let (record, token) = super::tokens::create(&s.store, name, role, lifetime).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"token": token, "record": record})),
    )
        .into_response())
}

pub(super) async fn revoke_token(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match s.store.revoke_token(&id).await? {
        0 => Err(ApiError::NotFound("active token")),
        n => Ok(Json(json!({"revoked": n})).into_response()),
    }
}

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    person: Option<String>,
    subject: Option<String>,
    /// A route or action prefix: `GET /api/v1/patients`.
    route: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

/// The audit log, newest first, filtered by person, subject, route and time; `next_before`
/// pages on.
pub(super) async fn audit(
    State(s): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let instant = |v: Option<String>, name: &str| -> Result<Option<String>, ApiError> {
        match v.filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(t) => crate::rules::parse_sort_key(&t)
                .map(|ts| Some(ts.to_string()))
                .ok_or_else(|| ApiError::BadRequest(format!("{name}: not a date or instant"))),
        }
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
    let next = (items.len() as i64 == filter.limit)
        .then(|| items.last().map(|r| r.id))
        .flatten();
    Ok(Json(json!({ "items": items, "next_before": next })).into_response())
}
