//! The overview page: every connector's state, last message, lag, per-minute counts over the
//! last hour (a small chart) and counters; FHIR pulls; queue depth per channel; the outbox by
//! status; the review queue's size; the alerts slot. Nothing here is patient data.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};

use super::{ConsoleState, Viewer, ago, chart, duration_words, render, store_problem};
use crate::api::Role;

/// Minutes the per-minute chart covers.
const CHART_MINUTES: i64 = 60;

/// The CSS class of a connector's state: ok, warn or bad.
fn state_class(state: &str) -> &'static str {
    match state {
        "running" | "listening" | "idle" | "ok" => "ok",
        "stopped" | "error" | "failed" => "bad",
        _ => "warn",
    }
}

/// Per connector, the counts of the last [`CHART_MINUTES`] minutes, oldest first.
fn per_minute(rows: &[(String, String, i64)], now: jiff::Timestamp) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let start = now.as_second() / 60 - (CHART_MINUTES - 1);
    for (connector, minute, n) in rows {
        let Ok(at) = format!("{minute}:00Z").parse::<jiff::Timestamp>() else {
            continue;
        };
        let slot = at.as_second() / 60 - start;
        if (0..CHART_MINUTES).contains(&slot) {
            out.entry(connector.clone())
                .or_insert_with(|| vec![0; CHART_MINUTES as usize])[slot as usize] += n;
        }
    }
    out
}

/// `GET /`.
pub(super) async fn page(State(s): State<ConsoleState>, v: Viewer) -> Response {
    match build(&s, &v).await {
        Ok(page) => render(&s, &v, "overview.html", page),
        Err(e) => store_problem(&s, &v, e),
    }
}

async fn build(s: &ConsoleState, v: &Viewer) -> Result<Value, crate::store::StoreError> {
    let now = jiff::Timestamp::now();
    let since = now - jiff::SignedDuration::from_mins(CHART_MINUTES);
    let connectors = s.store.connectors().await?;
    let rates = per_minute(&s.store.message_rate(&since.to_string()).await?, now);
    let empty = vec![0; CHART_MINUTES as usize];
    let rows: Vec<Value> = connectors
        .iter()
        .map(|c| {
            let minutes = rates.get(&c.name).unwrap_or(&empty);
            json!({
                "name": c.name,
                "kind": c.kind,
                "state": c.state,
                "state_class": state_class(&c.state),
                "detail": c.detail,
                "lag": c.last_message_at.as_deref().and_then(|at| ago(at, now)),
                "chart": chart::bars(minutes, &format!("{}: {}", c.name, v.lang.strings()["per_minute_hour"])),
                "last_hour": minutes.iter().sum::<i64>(),
                "received": c.received,
                "processed": c.processed,
                "errors": c.errors,
                "unmapped": c.unmapped,
                "duplicates": c.duplicates,
            })
        })
        .collect();

    let tz = s
        .config
        .timezone
        .as_deref()
        .and_then(|t| jiff::tz::TimeZone::get(t).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let mut pulls = Vec::new();
    for (name, schedule) in &s.config.fhir_schedules {
        let status = connectors.iter().find(|c| &c.name == name);
        let run = status.and_then(|c| c.last_run.as_ref());
        let next = crate::sources::fhir::schedule::parse(schedule)
            .ok()
            .and_then(|cron| crate::sources::fhir::schedule::next_after(&cron, now, &tz))
            .map(|z| z.strftime("%Y-%m-%d %H:%M %Z").to_string());
        // The cursor furthest behind: how old the newest change it has seen is.
        let cursor_lag = s
            .store
            .cursors(name)
            .await?
            .iter()
            .filter_map(|(_, value)| value.parse::<jiff::Timestamp>().ok())
            .min()
            .map(|at| duration_words((now.as_second() - at.as_second()).max(0)));
        pulls.push(json!({
            "name": name,
            "last_run": run.map(|r| r.started_at.clone()),
            "outcome": run.map(|r| format!("{} ({} pages, {} resources, {} errors)", r.outcome, r.pages, r.resources, r.errors)),
            "next_run": next,
            "cursor_lag": cursor_lag,
        }));
    }

    let (channels, outbox) = queues_and_outbox(s).await?;
    // Alerts firing now (their summaries carry no patient data); none when none is configured.
    let alerts = if s.config.alerts_configured {
        let firing: Vec<Value> = s
            .store
            .alert_rows()
            .await?
            .into_iter()
            .filter(|a| a.state == "firing")
            .map(|a| json!({"name": a.name, "summary": a.summary, "since": a.fired_at}))
            .collect();
        Value::Array(firing)
    } else {
        Value::Null
    };
    Ok(json!({
        "connectors": rows,
        "pulls": pulls,
        "channels": channels,
        "queue_kind": s.queue.as_ref().map(|q| q.kind()),
        "outbox": outbox,
        "review": s.store.review_count().await?,
        "sees_patients": matches!(v.role, Some(Role::Admin | Role::Clinician)),
        // None says "no alert configured"; a list (possibly empty) is what fires.
        "alerts": alerts,
    }))
}

/// Each channel's queue depth and dead letters, and the outbox by status (counts only): the
/// overview and the notifications page show both.
pub(super) async fn queues_and_outbox(
    s: &ConsoleState,
) -> Result<(Vec<Value>, Vec<Value>), crate::store::StoreError> {
    let mut channels = Vec::new();
    if let Some(q) = &s.queue {
        for name in &s.channels {
            channels.push(json!({
                "name": name,
                "depth": q.depth(name).await.ok(),
                "dead": q.dead_letters(name).await.map(|d| d.len()).ok(),
            }));
        }
    }
    let outbox: Vec<Value> = s
        .store
        .notification_counts()
        .await?
        .into_iter()
        .map(|(status, n)| json!({"status": status, "n": n}))
        .collect();
    Ok((channels, outbox))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_fall_in_their_slot_and_old_ones_drop_out() {
        let now: jiff::Timestamp = "2026-12-07T10:30:20Z".parse().unwrap();
        let rows = vec![
            ("lab".to_string(), "2026-12-07T10:30".to_string(), 4),
            ("lab".to_string(), "2026-12-07T09:31".to_string(), 2),
            ("lab".to_string(), "2026-12-07T09:30".to_string(), 9),
        ];
        let m = per_minute(&rows, now);
        assert_eq!(m["lab"][59], 4);
        assert_eq!(m["lab"][0], 2);
        assert_eq!(m["lab"].iter().sum::<i64>(), 6);
    }
}
