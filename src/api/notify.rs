//! Notification routes: a patient's interactions, consent and preferences, unsubscribe, the
//! channel report, the queue's state, and inbound provider webhooks (delivery receipts,
//! STOP/START replies).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::carrying;
use super::extract::{PathParams, QueryParams, date_or_instant, parse_json};
use super::{ApiError, AppState, ErrorBody};
use crate::channels::{Channel, WebhookEvent};
use crate::store::{ChannelReportLine, ConsentView, InteractionView, Preferences, Store};

/// The channels whose webhooks the API answers.
pub type Channels = Arc<BTreeMap<String, Arc<Channel>>>;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct LimitQuery {
    /// How many (default 100; 1 to 1000, other values are brought within).
    #[serde(default)]
    limit: Option<i64>,
}

/// The person an id names now: itself, or the person it was merged into.
async fn survivor(store: &Store, id: &str) -> Result<String, ApiError> {
    let mut id = id.to_string();
    for _ in 0..16 {
        match store.person(&id).await? {
            None => return Err(ApiError::NotFound("patient")),
            Some(p) => match p.merged_into {
                Some(next) => id = next,
                None => return Ok(id),
            },
        }
    }
    Err(ApiError::NotFound("patient"))
}

async fn existing(store: &Store, id: &str) -> Result<(), ApiError> {
    survivor(store, id).await.map(|_| ())
}

/// A consent's category and channel as the relay reads them, or a 400.
fn check_scope(s: &AppState, category: &str, channel: &str) -> Result<(), ApiError> {
    if !matches!(category, "transactional" | "marketing" | "*") {
        return Err(ApiError::BadRequest(
            "category: transactional, marketing or *".into(),
        ));
    }
    if channel != "*" && !s.channels.contains_key(channel) {
        let known: Vec<&str> = s.channels.keys().map(String::as_str).collect();
        return Err(ApiError::BadRequest(format!(
            "channel: * or a configured channel ({})",
            known.join(", ")
        )));
    }
    Ok(())
}

/// A person's notifications, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct Interactions {
    interactions: Vec<InteractionView>,
}

/// A person's notifications with their provider calls, newest first.
#[utoipa::path(get, path = "/api/v1/patients/{id}/interactions", tag = "notifications",
    params(("id" = String, Path, description = "A person id"), LimitQuery),
    responses((status = 200, description = "The person's notifications", body = Interactions), (status = 404, description = "No such person", body = ErrorBody)))]
pub(super) async fn interactions(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<LimitQuery>,
) -> Result<Response, ApiError> {
    existing(&s.store, &id).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let body = Interactions {
        interactions: s.store.interactions(&id, limit).await?,
    };
    Ok(carrying(Json(body).into_response(), vec![id]))
}

/// A person's consent decisions.
#[derive(Serialize, ToSchema)]
pub(super) struct Consents {
    consents: Vec<ConsentView>,
}

/// A person's consent decisions (a merged person's are its survivor's).
#[utoipa::path(get, path = "/api/v1/patients/{id}/consents", tag = "notifications",
    params(("id" = String, Path, description = "A person id")),
    responses((status = 200, description = "The person's consents", body = Consents), (status = 404, description = "No such person", body = ErrorBody)))]
pub(super) async fn consents(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let id = survivor(&s.store, &id).await?;
    let body = Consents {
        consents: s.store.consents(&id).await?,
    };
    Ok(carrying(Json(body).into_response(), vec![id]))
}

/// A consent's category as the relay reads it.
#[derive(Deserialize, ToSchema, Clone, Copy)]
pub(super) enum ConsentCategory {
    #[serde(rename = "transactional")]
    Transactional,
    #[serde(rename = "marketing")]
    Marketing,
    /// Every category.
    #[serde(rename = "*")]
    Every,
}

impl ConsentCategory {
    fn as_str(self) -> &'static str {
        match self {
            ConsentCategory::Transactional => "transactional",
            ConsentCategory::Marketing => "marketing",
            ConsentCategory::Every => "*",
        }
    }
}

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(super) enum Decision {
    Permit,
    Deny,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsentBody {
    category: ConsentCategory,
    /// A configured channel's name, or `*` (default).
    #[serde(default)]
    channel: Option<String>,
    decision: Decision,
    /// Who says so (default `api`).
    #[serde(default)]
    source: Option<String>,
}

/// A consent decision, recorded, with the pending notifications it cancelled.
#[derive(Serialize, ToSchema)]
pub(super) struct ConsentSet {
    consent: ConsentView,
    /// Pending notifications the decision cancelled.
    cancelled: u64,
}

/// Records a consent decision for a category on a channel (or every channel).
#[utoipa::path(post, path = "/api/v1/patients/{id}/consents", tag = "notifications",
    params(("id" = String, Path, description = "A person id")), request_body = ConsentBody,
    responses((status = 200, description = "The decision, recorded", body = ConsentSet), (status = 404, description = "No such person", body = ErrorBody)))]
pub(super) async fn set_consent(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: ConsentBody = parse_json(&body)?;
    check_scope(&s, b.category.as_str(), b.channel.as_deref().unwrap_or("*"))?;
    let id = survivor(&s.store, &id).await?;
    let c = ConsentView {
        category: b.category.as_str().into(),
        channel: b.channel.unwrap_or_else(|| "*".into()),
        decision: match b.decision {
            Decision::Permit => "permit",
            Decision::Deny => "deny",
        }
        .into(),
        source: b.source.unwrap_or_else(|| "api".into()),
        at: jiff::Timestamp::now().to_string(),
    };
    let cancelled = s.store.set_consent(&id, &c).await?;
    let body = ConsentSet {
        consent: c,
        cancelled,
    };
    Ok(carrying(Json(body).into_response(), vec![id]))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UnsubscribeBody {
    /// Default `marketing`; `*` stops everything.
    #[serde(default)]
    category: Option<ConsentCategory>,
    /// A configured channel's name, or `*` (default).
    #[serde(default)]
    channel: Option<String>,
}

/// Unsubscribe: a `deny` for marketing (or the given category) on every channel (or one).
/// The body is optional.
#[utoipa::path(post, path = "/api/v1/patients/{id}/unsubscribe", tag = "notifications",
    params(("id" = String, Path, description = "A person id")),
    request_body(content = Option<UnsubscribeBody>, description = "Optional: the category and channel"),
    responses((status = 200, description = "The denial, recorded", body = ConsentSet), (status = 404, description = "No such person", body = ErrorBody)))]
pub(super) async fn unsubscribe(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // No body, or `null`: the defaults.
    let b: UnsubscribeBody = if body.is_empty() {
        UnsubscribeBody::default()
    } else {
        parse_json::<Option<UnsubscribeBody>>(&body)?.unwrap_or_default()
    };
    let category = b.category.unwrap_or(ConsentCategory::Marketing).as_str();
    check_scope(&s, category, b.channel.as_deref().unwrap_or("*"))?;
    let id = survivor(&s.store, &id).await?;
    let c = ConsentView {
        category: category.into(),
        channel: b.channel.unwrap_or_else(|| "*".into()),
        decision: "deny".into(),
        source: "unsubscribe".into(),
        at: jiff::Timestamp::now().to_string(),
    };
    let cancelled = s.store.set_consent(&id, &c).await?;
    let body = ConsentSet {
        consent: c,
        cancelled,
    };
    Ok(carrying(Json(body).into_response(), vec![id]))
}

/// A person's communication preferences.
#[utoipa::path(get, path = "/api/v1/patients/{id}/preferences", tag = "notifications",
    params(("id" = String, Path, description = "A person id")),
    responses((status = 200, description = "The person's preferences", body = Preferences), (status = 404, description = "No such person", body = ErrorBody)))]
pub(super) async fn preferences(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let id = survivor(&s.store, &id).await?;
    let body = s.store.preferences(&id).await?;
    Ok(carrying(Json(body).into_response(), vec![id]))
}

/// Sets a person's communication preferences (the whole set: what is left out is cleared).
#[utoipa::path(put, path = "/api/v1/patients/{id}/preferences", tag = "notifications",
    params(("id" = String, Path, description = "A person id")), request_body = Preferences,
    responses((status = 200, description = "The preferences, stored", body = Preferences), (status = 404, description = "No such person", body = ErrorBody)))]
pub(super) async fn set_preferences(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut p: Preferences = parse_json(&body)?;
    if let Some(code) = &p.language {
        p.language = Some(
            crate::delivery::normalize_language(code)
                .ok_or_else(|| ApiError::BadRequest(format!("language: not a language code: {code:?}")))?,
        );
    }
    if let Some(kind) = p
        .addresses
        .keys()
        .find(|k| !matches!(k.as_str(), "telegram" | "zalo"))
    {
        return Err(ApiError::BadRequest(format!(
            "addresses: {kind:?} is not a messenger (telegram, zalo); phones and e-mails come from the profile"
        )));
    }
    if let Some(tz) = &p.timezone
        && jiff::tz::TimeZone::get(tz).is_err()
    {
        return Err(ApiError::BadRequest(format!(
            "timezone: unknown time zone {tz:?}"
        )));
    }
    let id = survivor(&s.store, &id).await?;
    s.store.set_preferences(&id, &p).await?;
    Ok(carrying(Json(p).into_response(), vec![id]))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ReportQuery {
    /// From this date (`YYYY-MM-DD`) or instant (RFC 3339); default 30 days ago.
    from: Option<String>,
    /// Until this date or instant (excluded); default now.
    to: Option<String>,
}

/// Sends per channel and rule in a time range.
#[derive(Serialize, ToSchema)]
pub(super) struct ChannelReport {
    from: String,
    to: String,
    channels: Vec<ChannelReportLine>,
}

/// Sends per channel and rule created in [from, to) (RFC 3339 instants or dates; default the
/// last 30 days).
#[utoipa::path(get, path = "/api/v1/reports/channels", tag = "notifications", params(ReportQuery),
    responses((status = 200, description = "The report", body = ChannelReport)))]
pub(super) async fn channel_report(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<ReportQuery>,
) -> Result<Response, ApiError> {
    let now = jiff::Timestamp::now();
    let from = match &q.from {
        None => now - jiff::SignedDuration::from_hours(24 * 30),
        Some(t) => date_or_instant(t, "from")?,
    };
    let to = match &q.to {
        None => now + jiff::SignedDuration::from_secs(1),
        Some(t) => date_or_instant(t, "to")?,
    };
    let (from, to) = (from.to_string(), to.to_string());
    let channels = s.store.channel_report(&from, &to).await?;
    Ok(Json(ChannelReport { from, to, channels }).into_response())
}

/// The notification queue's state.
#[derive(Serialize, ToSchema)]
pub(super) struct QueueState {
    /// The queue backend (`rabbitmq`, `embedded`); null when notifications are off.
    queue: Option<&'static str>,
    /// Notifications in the outbox by status.
    outbox: BTreeMap<String, i64>,
    channels: Vec<ChannelQueue>,
}

/// One channel's queue.
#[derive(Serialize, ToSchema)]
pub(super) struct ChannelQueue {
    channel: String,
    /// Sends waiting; null when the queue cannot tell now.
    depth: Option<u64>,
    /// Sends given up on; null when the queue cannot tell now.
    dead_letters: Option<u64>,
}

/// Outbox counts by status and each channel's queue depth and dead letters.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications",
    responses((status = 200, description = "The queue's state", body = QueueState)))]
pub(super) async fn queue_state(State(s): State<AppState>) -> Result<Response, ApiError> {
    let outbox: BTreeMap<String, i64> = s.store.notification_counts().await?.into_iter().collect();
    let mut channels = Vec::new();
    if let Some(q) = &s.queue {
        for name in s.channels.keys() {
            channels.push(ChannelQueue {
                channel: name.clone(),
                depth: q.depth(name).await.ok(),
                dead_letters: q.dead_letters(name).await.map(|d| d.len() as u64).ok(),
            });
        }
    }
    Ok(Json(QueueState {
        queue: s.queue.as_ref().map(|q| q.kind()),
        outbox,
        channels,
    })
    .into_response())
}

/// What a provider's webhook call changed.
#[derive(Serialize, ToSchema)]
pub(super) struct WebhookCounts {
    /// Delivery receipts recorded.
    receipts: u64,
    /// Persons a STOP reply opted out.
    opt_outs: u64,
    /// Persons a START reply opted back in.
    opt_ins: u64,
}

/// What a provider reports: delivery receipts, STOP and START replies. Open: the channel
/// checks the provider's own signature; the body is the provider's own format.
#[utoipa::path(post, path = "/api/v1/webhooks/{channel}", tag = "notifications",
    params(("channel" = String, Path, description = "A configured channel's name")),
    request_body(description = "The provider's call, in its own format (JSON or a form)",
        content((Object = "application/json"), (String = "application/x-www-form-urlencoded"))),
    responses((status = 200, description = "What the call changed", body = WebhookCounts),
        (status = 401, description = "The provider's signature does not check", body = ErrorBody),
        (status = 404, description = "No such channel, or no send with the receipt's provider id (yet)", body = ErrorBody)))]
pub(super) async fn webhook(
    State(s): State<AppState>,
    PathParams(name): PathParams<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(channel) = s.channels.get(&name) else {
        return Err(ApiError::NotFound("channel"));
    };
    let events = match channel.webhook(&headers, &body) {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(channel = %name, reason = %e, "webhook refused");
            let refusal = ErrorBody { error: e.to_string() };
            return Ok((StatusCode::UNAUTHORIZED, Json(refusal)).into_response());
        }
    };
    let (mut receipts, mut opt_outs, mut opt_ins, mut unmatched) = (0, 0, 0, 0);
    for event in events {
        // An id or address with a NUL character names no send and nobody (PostgreSQL cannot
        // even compare it: it came back as a 503); a NUL in the provider's detail is dropped.
        let event = match event {
            WebhookEvent::Status { provider_id, .. } if provider_id.contains('\0') => {
                unmatched += 1;
                continue;
            }
            WebhookEvent::OptOut { address } | WebhookEvent::OptIn { address } if address.contains('\0') => {
                continue;
            }
            WebhookEvent::Status {
                provider_id,
                status,
                detail,
            } => WebhookEvent::Status {
                provider_id,
                status,
                detail: detail.map(|d| d.replace('\0', "")),
            },
            other => other,
        };
        match event {
            WebhookEvent::Status {
                provider_id,
                status,
                detail,
            } => {
                let status = if status == "delivered" {
                    "delivered"
                } else {
                    "failed"
                };
                if s.store
                    .delivery_receipt(&name, &provider_id, status, detail.as_deref())
                    .await?
                {
                    receipts += 1;
                } else {
                    unmatched += 1;
                }
            }
            WebhookEvent::OptOut { address } => opt_outs += opt(&s.store, &name, &address, "deny").await?,
            WebhookEvent::OptIn { address } => opt_ins += opt(&s.store, &name, &address, "permit").await?,
        }
    }
    // A receipt for a send whose provider id is not recorded yet (the receipt outran the
    // worker): an error, so that the provider tries again later.
    if unmatched > 0 && receipts == 0 && opt_outs == 0 && opt_ins == 0 {
        return Err(ApiError::NotFound("send with that provider id (yet)"));
    }
    Ok(Json(WebhookCounts {
        receipts,
        opt_outs,
        opt_ins,
    })
    .into_response())
}

/// Records a STOP (or START) for every person this channel sent to at `address`; returns how
/// many persons it concerned. Phone numbers match with or without their `+`.
async fn opt(store: &Store, channel: &str, address: &str, decision: &str) -> Result<u64, ApiError> {
    let mut sent_to = store.persons_at_address(channel, address).await?;
    let other = match address.strip_prefix('+') {
        Some(bare) => bare.to_string(),
        None => format!("+{address}"),
    };
    sent_to.extend(store.persons_at_address(channel, &other).await?);
    // The persons they are now (a merge since the send moves the decision to the survivor).
    let mut persons: Vec<String> = Vec::new();
    for p in sent_to {
        if let Ok(id) = survivor(store, &p).await
            && !persons.contains(&id)
        {
            persons.push(id);
        }
    }
    for person in &persons {
        if decision == "deny" {
            let c = ConsentView {
                category: "*".into(),
                channel: channel.to_string(),
                decision: "deny".into(),
                source: format!("webhook:{channel}"),
                at: jiff::Timestamp::now().to_string(),
            };
            store.set_consent(person, &c).await?;
        } else {
            // START undoes STOP; it is not an opt-in to anything the person had not agreed to.
            store.clear_denial(person, "*", channel).await?;
        }
    }
    tracing::info!(
        channel,
        decision,
        persons = persons.len(),
        "opt-out/in from a provider webhook"
    );
    Ok(persons.len() as u64)
}
