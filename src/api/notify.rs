//! Notification routes: a patient's interactions, consent and preferences, unsubscribe, the
//! channel report, the queue's state, and inbound provider webhooks (delivery receipts,
//! STOP/START replies).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::auth::carrying;
use super::{ApiError, AppState};
use crate::channels::{Channel, WebhookEvent};
use crate::store::{ConsentView, Preferences, Store};

/// The channels whose webhooks the API answers.
pub type Channels = Arc<BTreeMap<String, Arc<Channel>>>;

#[derive(Deserialize)]
pub(super) struct LimitQuery {
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

pub(super) async fn interactions(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Result<Response, ApiError> {
    existing(&s.store, &id).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let body = json!({"interactions": s.store.interactions(&id, limit).await?});
    Ok(carrying(Json(body).into_response(), vec![id]))
}

pub(super) async fn consents(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = survivor(&s.store, &id).await?;
    let body = json!({"consents": s.store.consents(&id).await?});
    Ok(carrying(Json(body).into_response(), vec![id]))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsentBody {
    /// `transactional`, `marketing` or `*`.
    category: String,
    /// A channel name, or `*` (default).
    #[serde(default)]
    channel: Option<String>,
    /// `permit` or `deny`.
    decision: String,
    #[serde(default)]
    source: Option<String>,
}

pub(super) async fn set_consent(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: ConsentBody = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    check_scope(&s, &b.category, b.channel.as_deref().unwrap_or("*"))?;
    if !matches!(b.decision.as_str(), "permit" | "deny") {
        return Err(ApiError::BadRequest("decision: permit or deny".into()));
    }
    let id = survivor(&s.store, &id).await?;
    let c = ConsentView {
        category: b.category,
        channel: b.channel.unwrap_or_else(|| "*".into()),
        decision: b.decision,
        source: b.source.unwrap_or_else(|| "api".into()),
        at: jiff::Timestamp::now().to_string(),
    };
    let cancelled = s.store.set_consent(&id, &c).await?;
    let body = json!({"consent": c, "cancelled": cancelled});
    Ok(carrying(Json(body).into_response(), vec![id]))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct UnsubscribeBody {
    /// Default `marketing`; `*` stops everything.
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    channel: Option<String>,
}

/// Unsubscribe: a `deny` for marketing (or the given category) on every channel (or one).
pub(super) async fn unsubscribe(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: UnsubscribeBody = if body.is_empty() {
        UnsubscribeBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?
    };
    check_scope(
        &s,
        b.category.as_deref().unwrap_or("marketing"),
        b.channel.as_deref().unwrap_or("*"),
    )?;
    let id = survivor(&s.store, &id).await?;
    let c = ConsentView {
        category: b.category.unwrap_or_else(|| "marketing".into()),
        channel: b.channel.unwrap_or_else(|| "*".into()),
        decision: "deny".into(),
        source: "unsubscribe".into(),
        at: jiff::Timestamp::now().to_string(),
    };
    let cancelled = s.store.set_consent(&id, &c).await?;
    let body = json!({"consent": c, "cancelled": cancelled});
    Ok(carrying(Json(body).into_response(), vec![id]))
}

pub(super) async fn preferences(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = survivor(&s.store, &id).await?;
    let body = s.store.preferences(&id).await?;
    Ok(carrying(Json(body).into_response(), vec![id]))
}

pub(super) async fn set_preferences(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut p: Preferences =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
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

#[derive(Deserialize)]
pub(super) struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
}

/// Sends per channel and rule created in [from, to) (RFC 3339 instants or dates; default the
/// last 30 days).
pub(super) async fn channel_report(
    State(s): State<AppState>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let parse = |v: &Option<String>, default: jiff::Timestamp| -> Result<String, ApiError> {
        match v {
            None => Ok(default.to_string()),
            Some(t) => crate::rules::parse_sort_key(t)
                .map(|ts| ts.to_string())
                .ok_or_else(|| ApiError::BadRequest(format!("not a date or instant: {t:?}"))),
        }
    };
    let now = jiff::Timestamp::now();
    let from = parse(&q.from, now - jiff::SignedDuration::from_hours(24 * 30))?;
    let to = parse(&q.to, now + jiff::SignedDuration::from_secs(1))?;
    let lines = s.store.channel_report(&from, &to).await?;
    Ok(Json(json!({"from": from, "to": to, "channels": lines})).into_response())
}

/// Outbox counts by status and each channel's queue depth and dead letters.
pub(super) async fn queue_state(State(s): State<AppState>) -> Result<Response, ApiError> {
    let counts: BTreeMap<String, i64> = s.store.notification_counts().await?.into_iter().collect();
    let mut channels = Vec::new();
    if let Some(q) = &s.queue {
        for name in s.channels.keys() {
            channels.push(json!({
                "channel": name,
                "depth": q.depth(name).await.ok(),
                "dead_letters": q.dead_letters(name).await.map(|d| d.len()).ok(),
            }));
        }
    }
    Ok(Json(json!({
        "queue": s.queue.as_ref().map(|q| q.kind()),
        "outbox": counts,
        "channels": channels,
    }))
    .into_response())
}

/// `POST /api/v1/webhooks/{channel}`: what a provider reports.
pub(super) async fn webhook(
    State(s): State<AppState>,
    Path(name): Path<String>,
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
            return Ok((StatusCode::UNAUTHORIZED, Json(json!({"error": e}))).into_response());
        }
    };
    let (mut receipts, mut opt_outs, mut opt_ins, mut unmatched) = (0, 0, 0, 0);
    for event in events {
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
        return Ok((
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no send with that provider id (yet)"})),
        )
            .into_response());
    }
    Ok(Json(json!({"receipts": receipts, "opt_outs": opt_outs, "opt_ins": opt_ins})).into_response())
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
