//! The message log: search with keyset paging, and one message in detail — its metadata, the
//! error, what it became, and for roles that see message bodies its raw text and its segments
//! and fields as a tree. For other roles (ops) the body is never read into the page.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ConsoleState, Viewer, problem, render, store_problem};
use crate::api::Role;
use crate::api::auth::{AuditPersons, carrying};
use crate::reprocess::{ReprocessError, Selection};
use crate::store::{MessageFilter, MessageStatus, time_text};

/// Rows per page.
const PAGE_ROWS: i64 = 50;
/// Segments shown in the tree at most (the raw text has them all).
const TREE_SEGMENTS: usize = 300;

const STATUSES: [&str; 5] = ["received", "processed", "error", "duplicate", "unmapped"];

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    connector: Option<String>,
    status: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    control_id: Option<String>,
    /// A patient identifier (roles that see patients only).
    patient_identifier: Option<String>,
    patient_system: Option<String>,
    received_from: Option<String>,
    received_to: Option<String>,
    before: Option<i64>,
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The filter as the page echoes it (and the reprocess form carries it on).
#[derive(Default, serde::Serialize)]
struct Shown {
    connector: Option<String>,
    status: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    control_id: Option<String>,
    patient_identifier: Option<String>,
    patient_system: Option<String>,
    received_from: Option<String>,
    received_to: Option<String>,
}

impl Shown {
    fn pairs(&self) -> Vec<(&'static str, &String)> {
        [
            ("connector", &self.connector),
            ("status", &self.status),
            ("type", &self.message_type),
            ("control_id", &self.control_id),
            ("patient_identifier", &self.patient_identifier),
            ("patient_system", &self.patient_system),
            ("received_from", &self.received_from),
            ("received_to", &self.received_to),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.as_ref()?)))
        .collect()
    }
}

/// A time as typed (RFC 3339, a date, or a local time in the clinic's zone), or the reason.
fn parse_time(
    s: &ConsoleState,
    name: &str,
    text: &Option<String>,
) -> Result<Option<jiff::Timestamp>, String> {
    match text {
        None => Ok(None),
        Some(t) => crate::replay::parse_since(t, &s.messages.timezone)
            .map(Some)
            .map_err(|e| format!("{name}: {e}")),
    }
}

/// `GET /messages?connector=&status=&type=&control_id=&patient_identifier=&received_from=&received_to=&before=`.
pub(super) async fn list(State(s): State<ConsoleState>, v: Viewer, Query(q): Query<ListQuery>) -> Response {
    let sees_patients = v.role.is_some_and(Role::sees_patients);
    let shown = Shown {
        connector: nonempty(q.connector),
        status: nonempty(q.status),
        message_type: nonempty(q.message_type),
        control_id: nonempty(q.control_id),
        patient_identifier: nonempty(q.patient_identifier),
        patient_system: nonempty(q.patient_system),
        received_from: nonempty(q.received_from),
        received_to: nonempty(q.received_to),
    };
    if shown.patient_identifier.is_some() && !sees_patients {
        return problem(
            &s,
            &v,
            StatusCode::FORBIDDEN,
            "this role does not search by patient identifier (it names a patient)",
        );
    }
    let status = match shown.status.as_deref() {
        None => None,
        Some(t) => match MessageStatus::parse(t) {
            Some(st) => Some(st),
            None => {
                return problem(
                    &s,
                    &v,
                    StatusCode::BAD_REQUEST,
                    &format!("status must be one of {}", STATUSES.join(", ")),
                );
            }
        },
    };
    let (from, to) = match (
        parse_time(&s, "received_from", &shown.received_from),
        parse_time(&s, "received_to", &shown.received_to),
    ) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return problem(&s, &v, StatusCode::BAD_REQUEST, &e),
    };
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return problem(
            &s,
            &v,
            StatusCode::BAD_REQUEST,
            "received_from must be before received_to",
        );
    }
    let mut filter = MessageFilter {
        status,
        connector: shown.connector.clone(),
        message_type: shown.message_type.clone(),
        control_id: shown.control_id.clone(),
        person_ids: None,
        received_from: from.map(|t| time_text(t, false)),
        received_to: to.map(|t| time_text(t, true)),
        before_id: q.before,
        limit: PAGE_ROWS,
    };
    let mut persons = Vec::new();
    if let Some(value) = &shown.patient_identifier {
        match s
            .store
            .persons_by_identifier(value, shown.patient_system.as_deref())
            .await
        {
            Ok(ids) => {
                persons = ids.clone();
                filter.person_ids = Some(ids);
            }
            Err(e) => return store_problem(&s, &v, e),
        }
    }
    let items = match s.store.messages(&filter).await {
        Ok(items) => items,
        Err(e) => return store_problem(&s, &v, e),
    };
    let connectors: Vec<String> = match s.store.connectors().await {
        Ok(c) => c.into_iter().map(|c| c.name).collect(),
        Err(e) => return store_problem(&s, &v, e),
    };
    let next = (items.len() as i64 == PAGE_ROWS)
        .then(|| items.last().map(|m| m.id))
        .flatten()
        .map(|before| {
            let mut url = format!("/messages?before={before}");
            for (k, value) in shown.pairs() {
                url.push_str(&format!("&{k}={}", encode(value)));
            }
            url
        });
    let reprocessable = s.messages.reprocessor.is_some() && v.role == Some(Role::Admin);
    let resp = render(
        &s,
        &v,
        "messages.html",
        json!({
            "items": items,
            "next": next,
            "connectors": connectors,
            "statuses": STATUSES,
            "filter": shown,
            "sees_patients": sees_patients,
            "reprocess": reprocessable,
            // A filter reprocess takes connector, status, type and time; not ids or identifiers.
            "filter_reprocessable": shown.patient_identifier.is_none() && shown.control_id.is_none(),
        }),
    );
    if persons.is_empty() {
        resp
    } else {
        carrying(resp, persons)
    }
}

/// `POST /messages/reprocess` (admin): the checked messages (`ids`, `scope=selected`), one
/// (`scope=one`), or every message the filter fields choose (`scope=filter`), with today's
/// mapping files; `dry_run=1` counts only. Shows what became of them.
pub(super) async fn reprocess(State(s): State<ConsoleState>, v: Viewer, body: Bytes) -> Response {
    let Some(reprocessor) = s.messages.reprocessor.clone() else {
        return problem(
            &s,
            &v,
            StatusCode::SERVICE_UNAVAILABLE,
            "reprocess needs the hub's writer, which is not running",
        );
    };
    let mut ids = Vec::new();
    let mut fields: std::collections::HashMap<String, String> = Default::default();
    for (k, value) in form_urlencoded::parse(&body) {
        let value = value.trim().to_string();
        match k.as_ref() {
            "ids" => match value.parse::<i64>() {
                Ok(id) => ids.push(id),
                Err(_) => return problem(&s, &v, StatusCode::BAD_REQUEST, "ids are message numbers"),
            },
            _ if !value.is_empty() => {
                fields.insert(k.into_owned(), value);
            }
            _ => {}
        }
    }
    let scope = fields.get("scope").map(String::as_str).unwrap_or("selected");
    let dry_run = fields.contains_key("dry_run");
    let mut selection = Selection::default();
    match scope {
        "one" | "selected" => {
            if ids.is_empty() {
                return problem(
                    &s,
                    &v,
                    StatusCode::BAD_REQUEST,
                    "no message is selected: tick the messages to reprocess, or reprocess the filter",
                );
            }
            selection.ids = ids;
        }
        "filter" => {
            selection.connector = fields.get("connector").cloned();
            if let Some(st) = fields.get("status") {
                match MessageStatus::parse(st) {
                    Some(st) => selection.statuses = vec![st],
                    None => {
                        return problem(
                            &s,
                            &v,
                            StatusCode::BAD_REQUEST,
                            "status: error, unmapped or processed",
                        );
                    }
                }
            }
            selection.message_type = fields.get("type").cloned();
            let from = parse_time(&s, "received_from", &fields.get("received_from").cloned());
            let to = parse_time(&s, "received_to", &fields.get("received_to").cloned());
            match (from, to) {
                (Ok(f), Ok(t)) => {
                    selection.received_from = f;
                    selection.received_to = t;
                }
                (Err(e), _) | (_, Err(e)) => return problem(&s, &v, StatusCode::BAD_REQUEST, &e),
            }
        }
        _ => return problem(&s, &v, StatusCode::BAD_REQUEST, "scope: one, selected or filter"),
    }
    if let Err(reason) = selection.check() {
        return problem(&s, &v, StatusCode::BAD_REQUEST, &reason);
    }
    let store = s.store.clone();
    let chosen = selection.clone();
    // On a task of its own: a browser that gives up does not stop a run half-way.
    let run = tokio::spawn(async move { reprocessor.run(&store, &chosen, dry_run).await });
    let report = match run.await {
        Ok(Ok(report)) => report,
        Ok(Err(ReprocessError::Mappings(problems))) => {
            let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
            let mut resp = render(
                &s,
                &v,
                "reprocess.html",
                json!({"problems": listed, "report": null}),
            );
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            return resp;
        }
        Ok(Err(ReprocessError::Selection(reason))) => {
            return problem(&s, &v, StatusCode::BAD_REQUEST, &reason);
        }
        Ok(Err(e @ ReprocessError::Busy)) => return problem(&s, &v, StatusCode::CONFLICT, &e.to_string()),
        Ok(Err(ReprocessError::Store { source, .. })) => return store_problem(&s, &v, source),
        Err(_) => {
            return problem(
                &s,
                &v,
                StatusCode::SERVICE_UNAVAILABLE,
                "the reprocess run failed unexpectedly",
            );
        }
    };
    let back = match selection.ids.as_slice() {
        [one] => format!("/messages/{one}"),
        _ => "/messages".to_string(),
    };
    render(
        &s,
        &v,
        "reprocess.html",
        json!({"report": report, "problems": [], "back": back, "ids": selection.ids}),
    )
}

/// `GET /messages/{id}`.
pub(super) async fn detail(State(s): State<ConsoleState>, v: Viewer, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return problem(&s, &v, StatusCode::BAD_REQUEST, "a message id is a number");
    };
    let m = match s.store.message(id).await {
        Ok(Some(m)) => m,
        Ok(None) => return problem(&s, &v, StatusCode::NOT_FOUND, &format!("message {id}: not found")),
        Err(e) => return store_problem(&s, &v, e),
    };
    let t = v.lang.strings();
    let sees_bodies = v.role.is_some_and(Role::sees_message_bodies);
    let sees_patients = v.role.is_some_and(Role::sees_patients);
    let summary = &m.summary;
    let result_note = match summary.status.as_str() {
        "processed" => "processed: applied to the profile store",
        "duplicate" => "duplicate: already stored; nothing changed",
        "unmapped" => "unmapped: kept and acknowledged; no mapping for its type (add one, then reprocess)",
        "error" => "error: kept; nothing was applied (see the error above)",
        _ => "received: waiting to be processed",
    };
    let mut page = json!({
        "m": summary,
        "reprocess": s.messages.reprocessor.is_some() && v.role == Some(Role::Admin)
            && matches!(summary.status.as_str(), "error" | "unmapped" | "processed"),
        "result_note": result_note,
        "person": if sees_patients { summary.person_id.clone() } else { None },
    });
    let mut persons = Vec::new();
    if sees_bodies {
        if let Some(at) = &summary.body_pruned_at {
            page["body_note"] = json!(format!("the raw body was pruned by the retention policy at {at}"));
        } else {
            let text = String::from_utf8_lossy(&m.raw).into_owned();
            page["segments"] = tree(&text);
            page["raw"] = json!(text.replace('\r', "\n"));
            persons = summary.person_id.iter().cloned().collect();
        }
    } else {
        page["body_note"] = json!(format!(
            "{}: the {} role does not see message bodies",
            t["raw"],
            v.role.map(Role::as_str).unwrap_or("-")
        ));
    }
    let mut resp = render(&s, &v, "message.html", page);
    if sees_bodies && summary.body_pruned_at.is_none() {
        // A body is patient data even when it names no stored person.
        let count = persons.len().max(1) as i64;
        resp.extensions_mut().insert(AuditPersons { persons, count });
    }
    resp
}

/// An HL7 v2 message's segments and fields (components and repetitions listed), or nothing
/// for other bodies (FHIR JSON shows as raw text).
fn tree(text: &str) -> Value {
    if !text.starts_with("MSH") {
        return Value::Null;
    }
    let Ok(msg) = crate::hl7::Message::parse(text) else {
        return Value::Null;
    };
    let d = msg.delimiters();
    let segments: Vec<Value> = msg
        .segments()
        .iter()
        .take(TREE_SEGMENTS)
        .map(|seg| {
            let fields: Vec<Value> = (1..=seg.field_count())
                .filter_map(|n| {
                    let value = seg.field(n)?;
                    if value.is_empty() {
                        return None;
                    }
                    let structured = !(seg.name == "MSH" && n <= 2)
                        && (value.contains(d.component) || value.contains(d.repetition));
                    let parts: Vec<String> = if structured {
                        let reps: Vec<&str> = value.split(d.repetition).collect();
                        reps.iter()
                            .enumerate()
                            .flat_map(|(r, rep)| {
                                let many = reps.len() > 1;
                                rep.split(d.component)
                                    .enumerate()
                                    .filter(|(_, c)| !c.is_empty())
                                    .map(move |(c, comp)| match many {
                                        true => format!("[{}] .{}  {comp}", r + 1, c + 1),
                                        false => format!(".{}  {comp}", c + 1),
                                    })
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    Some(json!({"n": n, "value": value, "parts": parts}))
                })
                .collect();
            json!({"name": seg.name, "line": seg.line(), "fields": fields})
        })
        .collect();
    json!(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_lists_segments_fields_and_components() {
        let t = tree("MSH|^~\\&|EMR|CLINIC|||20261120||ADT^A04|M1|P|2.5\rPID|1||A1~B2^^^X||Tran^Van\r");
        let segs = t.as_array().unwrap();
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[1]["name"], "PID");
        let name = segs[1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["n"] == 5)
            .unwrap();
        assert_eq!(name["parts"], json!([".1  Tran", ".2  Van"]));
        let ids = segs[1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["n"] == 3)
            .unwrap();
        assert_eq!(ids["parts"][1], "[2] .1  B2");
        // MSH-2 (the encoding characters) is shown as it is.
        let msh2 = segs[0]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["n"] == 2)
            .unwrap();
        assert_eq!(msh2["parts"], json!([]));
        assert_eq!(tree("{\"resourceType\": \"Patient\"}"), Value::Null);
    }
}
