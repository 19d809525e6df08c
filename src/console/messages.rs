//! The message log: search with keyset paging, and one message in detail — its metadata, the
//! error, what it became, and for roles that see message bodies its raw text and its segments
//! and fields as a tree. For other roles (ops) the body is never read into the page.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ConsoleState, Viewer, problem, render, store_problem};
use crate::api::Role;
use crate::api::auth::AuditPersons;
use crate::store::{MessageFilter, MessageStatus};

/// Rows per page.
const PAGE_ROWS: i64 = 50;
/// Segments shown in the tree at most (the raw text has them all).
const TREE_SEGMENTS: usize = 300;

const STATUSES: [&str; 5] = ["received", "processed", "error", "duplicate", "unmapped"];

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    connector: Option<String>,
    status: Option<String>,
    before: Option<i64>,
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `GET /messages?connector=&status=&before=`.
pub(super) async fn list(State(s): State<ConsoleState>, v: Viewer, Query(q): Query<ListQuery>) -> Response {
    let connector = q.connector.filter(|c| !c.is_empty());
    let status_text = q.status.filter(|c| !c.is_empty());
    let status = match status_text.as_deref() {
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
    let filter = MessageFilter {
        status,
        connector: connector.clone(),
        before_id: q.before,
        limit: PAGE_ROWS,
    };
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
            if let Some(c) = &connector {
                url.push_str(&format!("&connector={}", encode(c)));
            }
            if let Some(st) = &status_text {
                url.push_str(&format!("&status={}", encode(st)));
            }
            url
        });
    render(
        &s,
        &v,
        "messages.html",
        json!({
            "items": items,
            "next": next,
            "connectors": connectors,
            "statuses": STATUSES,
            "filter": {"connector": connector, "status": status_text},
        }),
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
    let sees_patients = matches!(v.role, Some(Role::Admin | Role::Clinician));
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
