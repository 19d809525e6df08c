//! The message log over HTTP: search (`GET /api/v1/messages`), one message, and reprocess
//! (`POST /api/v1/messages/reprocess`, admin only).
//!
//! The search answers metadata only, whoever asks; a search by patient identifier names a
//! patient, so the `ops` role may not make it, and when an admin makes it the answer is
//! audited as a read of the persons it resolved to. Reprocess runs on a task of its own: the
//! answer carries its counts, and should the request time out the run goes on and reports
//! in the log.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::auth::{self, carrying};
use super::{ApiError, AppState, Principal};
use crate::reprocess::{ReprocessError, Reprocessor, Selection};
use crate::store::{MessageFilter, MessageStatus, time_text};

/// What the message routes need besides the store.
#[derive(Clone)]
pub struct MessagesApi {
    /// Reprocess, when the hub runs its writer (`None`: the route answers 503).
    pub reprocessor: Option<Arc<Reprocessor>>,
    /// How times without an offset are read (`2026-01-20`, `2026-01-20T08:30`).
    pub timezone: jiff::tz::TimeZone,
}

impl Default for MessagesApi {
    fn default() -> Self {
        MessagesApi {
            reprocessor: None,
            timezone: jiff::tz::TimeZone::UTC,
        }
    }
}

/// Most rows per page.
const MAX_LIMIT: i64 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MessageQuery {
    status: Option<String>,
    connector: Option<String>,
    /// `ADT^A01`, or `ADT` for every ADT event, or a FHIR resource type.
    #[serde(rename = "type")]
    message_type: Option<String>,
    control_id: Option<String>,
    /// A patient identifier's value: that patient's messages.
    patient_identifier: Option<String>,
    /// Its system, to tell apart equal values of different systems.
    patient_system: Option<String>,
    /// Received at or after (RFC 3339, or a date or local time in the hub's time zone).
    received_from: Option<String>,
    /// Received before.
    received_to: Option<String>,
    /// The last id of the previous page (`next` carries it).
    before_id: Option<i64>,
    /// The former name of `before_id`.
    before: Option<i64>,
    limit: Option<i64>,
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn parse_time(
    name: &str,
    text: Option<String>,
    tz: &jiff::tz::TimeZone,
) -> Result<Option<jiff::Timestamp>, ApiError> {
    match nonempty(text) {
        None => Ok(None),
        Some(t) => crate::replay::parse_since(&t, tz)
            .map(Some)
            .map_err(|e| ApiError::BadRequest(format!("{name}: {e}"))),
    }
}

/// Newest first, one page; `next` is the link to the following page (absent on the last).
pub(super) async fn list_messages(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    RawQuery(raw): RawQuery,
    Query(q): Query<MessageQuery>,
) -> Result<Response, ApiError> {
    let status = match nonempty(q.status) {
        None => None,
        Some(v) => Some(MessageStatus::parse(&v).ok_or_else(|| {
            ApiError::BadRequest(
                "status must be one of received, processed, error, duplicate, unmapped".into(),
            )
        })?),
    };
    let tz = &s.messages.timezone;
    let from = parse_time("received_from", q.received_from, tz)?;
    let to = parse_time("received_to", q.received_to, tz)?;
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err(ApiError::BadRequest(
            "received_from must be before received_to".into(),
        ));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit is 1 to {MAX_LIMIT}")));
    }
    let mut filter = MessageFilter {
        status,
        connector: nonempty(q.connector),
        message_type: nonempty(q.message_type),
        control_id: nonempty(q.control_id),
        person_ids: None,
        received_from: from.map(|t| time_text(t, false)),
        received_to: to.map(|t| time_text(t, true)),
        before_id: q.before_id.or(q.before),
        limit,
    };
    let identifier = nonempty(q.patient_identifier);
    if let Some(value) = &identifier {
        if !who.role.sees_patients() {
            return Err(ApiError::Forbidden(format!(
                "the {} role does not search by patient identifier (it names a patient)",
                who.role
            )));
        }
        let system = nonempty(q.patient_system);
        filter.person_ids = Some(s.store.persons_by_identifier(value, system.as_deref()).await?);
    }
    let items = s.store.messages(&filter).await?;
    let last = (items.len() as i64 == filter.limit)
        .then(|| items.last().map(|m| m.id))
        .flatten();
    let next = last.map(|id| next_link(raw.as_deref(), id));
    let body = json!({ "items": items, "next": next, "next_before": last });
    let response = Json(body).into_response();
    match (identifier, filter.person_ids) {
        // The identifier named these persons: a read of patient data, audited.
        (Some(_), Some(persons)) => Ok(carrying(response, persons)),
        _ => Ok(response),
    }
}

/// The link to the page after `last`: the same query with `before_id=last`.
fn next_link(query: Option<&str>, last: i64) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k != "before_id" && k != "before" {
            out.append_pair(&k, &v);
        }
    }
    out.append_pair("before_id", &last.to_string());
    format!("/api/v1/messages?{}", out.finish())
}

/// A message's metadata; its raw body too for roles that see message bodies (ops never does).
pub(super) async fn get_message(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let Some(m) = s.store.message(id).await? else {
        return Err(ApiError::NotFound("message"));
    };
    let mut body = serde_json::to_value(&m).unwrap_or_default();
    if !who.role.sees_message_bodies() {
        body["raw"] = serde_json::Value::Null;
        body["raw_withheld"] = json!(format!("the {} role does not see message bodies", who.role));
        return Ok(Json(body).into_response());
    }
    if let Some(at) = &m.summary.body_pruned_at {
        // Retention emptied it: say so rather than show an empty message.
        body["raw"] = serde_json::Value::Null;
        body["body_note"] = json!(format!("the raw body was pruned by the retention policy at {at}"));
        return Ok(Json(body).into_response());
    }
    body["raw"] = json!(String::from_utf8_lossy(&m.raw));
    let persons = m.summary.person_id.iter().cloned().collect::<Vec<_>>();
    let mut resp = carrying(Json(body).into_response(), persons);
    // A body is patient data even when it names no stored person.
    if let Some(a) = resp.extensions_mut().get_mut::<auth::AuditPersons>() {
        a.count = a.count.max(1);
    }
    Ok(resp)
}

/// One status or several.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Statuses {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReprocessBody {
    #[serde(default)]
    ids: Vec<i64>,
    connector: Option<String>,
    /// `error`, `unmapped` (the default, both, when no ids are given) or `processed`.
    status: Option<Statuses>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    received_from: Option<String>,
    received_to: Option<String>,
    /// Count what would change; write nothing.
    #[serde(default)]
    dry_run: bool,
}

/// Applies the mapping files as they are on disk now to the chosen messages.
pub(super) async fn reprocess(
    State(s): State<AppState>,
    Json(body): Json<ReprocessBody>,
) -> Result<Response, ApiError> {
    let Some(reprocessor) = s.messages.reprocessor.clone() else {
        return Err(ApiError::Unavailable(
            "reprocess needs the hub's writer, which is not running".into(),
        ));
    };
    let statuses = match body.status {
        None => Vec::new(),
        Some(Statuses::One(s)) => vec![s],
        Some(Statuses::Many(v)) => v,
    };
    let statuses = statuses
        .iter()
        .map(|v| {
            MessageStatus::parse(v.trim()).ok_or_else(|| {
                ApiError::BadRequest(format!("status {v}: expected error, unmapped or processed"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tz = &s.messages.timezone;
    let selection = Selection {
        ids: body.ids,
        connector: nonempty(body.connector),
        statuses,
        message_type: nonempty(body.message_type),
        received_from: parse_time("received_from", body.received_from, tz)?,
        received_to: parse_time("received_to", body.received_to, tz)?,
    };
    selection.check().map_err(ApiError::BadRequest)?;
    let store = s.store.clone();
    let dry_run = body.dry_run;
    // On a task of its own: a request that times out does not stop a run half-way.
    let run = tokio::spawn(async move { reprocessor.run(&store, &selection, dry_run).await });
    match run.await {
        Ok(Ok(report)) => Ok(Json(report).into_response()),
        Ok(Err(ReprocessError::Mappings(problems))) => {
            let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
            Ok((
                StatusCode::BAD_REQUEST,
                Json(json!({
                    "error": "the mapping files have problems; nothing was reprocessed",
                    "problems": listed,
                })),
            )
                .into_response())
        }
        Ok(Err(ReprocessError::Selection(reason))) => Err(ApiError::BadRequest(reason)),
        Ok(Err(e @ ReprocessError::Busy)) => Err(ApiError::Conflict(e.to_string())),
        Ok(Err(ReprocessError::Store { source, .. })) => Err(ApiError::Store(source)),
        Err(_) => Err(ApiError::Unavailable(
            "the reprocess run failed unexpectedly".into(),
        )),
    }
}
