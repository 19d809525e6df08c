//! Operations routes: `GET /metrics` (Prometheus), `GET /api/v1/alerts` and `GET /readyz`.
//!
//! None of them carries patient data: metrics labels are connector, channel and type names,
//! alerts carry their own PHI-free summaries, readiness names checks. The gauges that live in
//! the store are read at scrape time (a handful of indexed counts), so every replica reports
//! the same values.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::extract::QueryParams;
use super::{ApiError, AppState};
use crate::metrics::StoreGauges;
use crate::store::AlertRow;

/// Whether each enabled connector of this hub started (per process: what `/readyz` answers
/// for this replica). The composition root writes it; a connector that could not start says why.
#[derive(Debug, Default)]
pub struct Readiness {
    connectors: Mutex<BTreeMap<String, Result<(), String>>>,
}

impl Readiness {
    /// Records that `connector` started.
    pub fn started(&self, connector: &str) {
        self.set(connector, Ok(()));
    }

    /// Records that `connector` could not start, and why (no patient data).
    pub fn failed(&self, connector: &str, reason: String) {
        self.set(connector, Err(reason));
    }

    fn set(&self, connector: &str, state: Result<(), String>) {
        self.connectors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(connector.to_string(), state);
    }

    fn snapshot(&self) -> BTreeMap<String, Result<(), String>> {
        self.connectors.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What the operations routes need beyond the store.
#[derive(Clone, Default)]
pub struct OpsApi {
    pub readiness: Arc<Readiness>,
}

/// How long one readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Ready to take work: the store takes a write, the queue answers, every enabled connector
/// started. 503 with the reason of each failed check otherwise.
pub(super) async fn readyz(State(s): State<AppState>) -> Response {
    let mut checks = Vec::new();
    let mut ready = true;
    let mut check = |name: String, outcome: Result<(), String>| {
        ready &= outcome.is_ok();
        checks.push(match outcome {
            Ok(()) => json!({"check": name, "ok": true}),
            Err(reason) => json!({"check": name, "ok": false, "reason": reason}),
        });
    };
    let store = match tokio::time::timeout(CHECK_TIMEOUT, s.store.probe_write()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the store does not take writes");
            Err("the store does not take writes".to_string())
        }
        Err(_) => Err(format!(
            "the store did not answer a write within {} s",
            CHECK_TIMEOUT.as_secs()
        )),
    };
    check("store".into(), store);
    if let Some(q) = &s.queue {
        let outcome = match s.channels.keys().next() {
            Some(channel) => match tokio::time::timeout(CHECK_TIMEOUT, q.depth(channel)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => {
                    tracing::warn!(queue = q.kind(), error = %e, "readiness: the queue does not answer");
                    Err(format!("the {} queue does not answer", q.kind()))
                }
                Err(_) => Err(format!(
                    "the {} queue did not answer within {} s",
                    q.kind(),
                    CHECK_TIMEOUT.as_secs()
                )),
            },
            None => Ok(()),
        };
        check("queue".into(), outcome);
    }
    for (name, state) in s.ops.readiness.snapshot() {
        check(format!("connector {name}"), state);
    }
    let body = json!({"status": if ready { "ready" } else { "not ready" }, "checks": checks});
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text format.
pub(super) async fn metrics(State(s): State<AppState>) -> Result<Response, ApiError> {
    let now = jiff::Timestamp::now();
    let connectors = s.store.connectors().await?;
    let counts = s.store.ops_counts(now.as_millisecond()).await?;
    let alerts = s.store.alert_rows().await?;
    let mut gauges = StoreGauges {
        connectors: connectors
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.kind.clone(),
                    c.state.clone(),
                    crate::alerts::age_secs(c.last_message_at.as_deref(), now),
                )
            })
            .collect(),
        outbox: counts.outbox,
        outbox_oldest_pending_secs: counts
            .oldest_pending_due_ms
            .map_or(0.0, |ms| (now.as_millisecond() - ms).max(0) as f64 / 1000.0),
        queued_oldest_secs: crate::alerts::age_secs(counts.oldest_queued_at.as_deref(), now).unwrap_or(0.0),
        review_open: counts.review_open,
        cursor_lag: counts
            .cursors
            .iter()
            .filter_map(|(c, t, cursor)| {
                Some((c.clone(), t.clone(), crate::alerts::age_secs(Some(cursor), now)?))
            })
            .collect(),
        ..Default::default()
    };
    let mut firing: BTreeMap<String, i64> = BTreeMap::new();
    for a in alerts.iter().filter(|a| a.state == "firing") {
        *firing.entry(a.name.clone()).or_default() += 1;
    }
    gauges.alerts_firing = firing.into_iter().collect();
    if let Some(q) = &s.queue {
        for name in s.channels.keys() {
            if let Ok(Ok(depth)) = tokio::time::timeout(Duration::from_secs(2), q.depth(name)).await {
                gauges.queue_depth.push((name.clone(), depth));
            }
        }
    }
    let text = s.store.metrics().render(&gauges);
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct AlertsQuery {
    /// Resolved alerts of the last this many hours are listed too (default 24, at most 720).
    #[param(minimum = 0, maximum = 720)]
    resolved_hours: Option<i64>,
}

/// Alerts firing now, and those resolved lately.
#[derive(Serialize, ToSchema)]
pub(super) struct AlertList {
    firing: Vec<AlertRow>,
    resolved: Vec<AlertRow>,
}

/// `GET /api/v1/alerts`: alerts firing now, and those resolved lately (summaries carry no
/// patient data).
#[utoipa::path(get, path = "/api/v1/alerts", tag = "operations", params(AlertsQuery),
    responses((status = 200, description = "Firing and lately resolved alerts", body = AlertList)))]
pub(super) async fn alerts(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<AlertsQuery>,
) -> Result<Response, ApiError> {
    let hours = q.resolved_hours.unwrap_or(24);
    if !(0..=720).contains(&hours) {
        return Err(ApiError::BadRequest("resolved_hours is between 0 and 720".into()));
    }
    let now = jiff::Timestamp::now();
    let rows = s.store.alert_rows().await?;
    let (firing, resolved): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.state == "firing");
    let resolved: Vec<_> = resolved
        .into_iter()
        .filter(|r| {
            crate::alerts::age_secs(r.resolved_at.as_deref(), now)
                .is_some_and(|age| age <= hours as f64 * 3600.0)
        })
        .collect();
    Ok(Json(AlertList { firing, resolved }).into_response())
}
