//! Patients and identity decisions: search by identifier; a profile with the provenance of
//! every value, the timeline and the interactions; merge and unmerge; the review queue with
//! the two records side by side and the score breakdown; link or reject. Every page here is
//! audited with the persons it shows (the routes are `clinician`/`admin` only: `ops` never
//! reaches them).

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ConsoleState, Viewer, problem, render, see_other, store_problem};
use crate::api::auth::carrying;
use crate::store::PersonView;

/// Open review items shown at once.
const REVIEW_ROWS: i64 = 50;

/// "Family, Given" from a profile's first name (or its text).
fn display_name(profile: &Value) -> Option<String> {
    let name = profile.get("names")?.as_array()?.first()?;
    if let Some(text) = name.get("text").and_then(Value::as_str) {
        return Some(text.to_string());
    }
    let given: Vec<&str> = name
        .get("given")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let family = name
        .get("family")
        .and_then(Value::as_str)
        .filter(|f| !f.is_empty());
    let given = given.join(" ");
    // "Family, Given": the clinical form, which reads the same whichever order a name's
    // culture puts first (Nguyễn, Thị Lan; Иванов, Иван; 王, 芳).
    match (family, given.is_empty()) {
        (Some(f), false) => Some(format!("{f}, {given}")),
        (Some(f), true) => Some(f.to_string()),
        (None, false) => Some(given),
        (None, true) => None,
    }
}

/// A value as a line of text: strings as they are, lists joined, objects as `k: v`.
fn text_of(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text_of).collect::<Vec<_>>().join("; "),
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match k.as_str() {
                "value" | "text" | "family" | "lines" | "given" => text_of(v),
                _ => format!("{k}: {}", text_of(v)),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// The profile's fields as (name, text) rows, consents left to their own page.
fn profile_fields(profile: &Value) -> Vec<Value> {
    profile
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, v)| {
                    *k != "consents" && !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty())
                })
                .map(|(k, v)| json!({"name": k, "value": text_of(v)}))
                .collect()
        })
        .unwrap_or_default()
}

/// One line about a timeline entry's record: its code, display, value and unit…
fn record_summary(record: &Value) -> String {
    let keys = [
        "display",
        "code",
        "value",
        "unit",
        "flag",
        "reference_range",
        "location",
        "reason",
        "description",
    ];
    keys.iter()
        .filter_map(|k| record.get(*k).filter(|v| !v.is_null()).map(text_of))
        .collect::<Vec<_>>()
        .join(" · ")
}

#[derive(Deserialize)]
pub(super) struct SearchQuery {
    identifier: Option<String>,
    system: Option<String>,
}

/// `GET /patients?identifier=&system=`.
pub(super) async fn search(
    State(s): State<ConsoleState>,
    v: Viewer,
    Query(q): Query<SearchQuery>,
) -> Response {
    let identifier = q
        .identifier
        .map(|i| i.trim().to_string())
        .filter(|i| !i.is_empty());
    let system = q.system.map(|i| i.trim().to_string()).filter(|i| !i.is_empty());
    let Some(value) = identifier.clone() else {
        return render(&s, &v, "patients.html", json!({"identifier": null, "items": []}));
    };
    let found = match s.store.find_persons(&value, system.as_deref()).await {
        Ok(f) => f,
        Err(e) => return store_problem(&s, &v, e),
    };
    let ids: Vec<String> = found.iter().map(|p| p.id.clone()).collect();
    let items: Vec<Value> = found.iter().map(summary).collect();
    let resp = render(
        &s,
        &v,
        "patients.html",
        json!({"identifier": identifier, "system": system, "items": items}),
    );
    carrying(resp, ids)
}

/// What a list or a review side shows of a person.
fn summary(p: &PersonView) -> Value {
    json!({
        "id": p.id,
        "merged_into": p.merged_into,
        "name": display_name(&p.profile),
        "birth_date": p.profile.get("birth_date"),
        "sex": p.profile.get("sex"),
        "identifiers": p.identifiers.iter().map(|i| format!("{} ({})", i.value, i.system)).collect::<Vec<_>>().join(", "),
    })
}

/// `GET /patients/{id}`.
pub(super) async fn profile(State(s): State<ConsoleState>, v: Viewer, Path(id): Path<String>) -> Response {
    let p = match s.store.person(&id).await {
        Ok(Some(p)) => p,
        Ok(None) => return problem(&s, &v, StatusCode::NOT_FOUND, "patient: not found"),
        Err(e) => return store_problem(&s, &v, e),
    };
    let timeline = match s.store.timeline(&p.id, None, 200).await {
        Ok(t) => t,
        Err(e) => return store_problem(&s, &v, e),
    };
    let interactions = match s.store.interactions(&p.id, 100).await {
        Ok(i) => i,
        Err(e) => return store_problem(&s, &v, e),
    };
    let timeline: Vec<Value> = timeline
        .iter()
        .map(|e| {
            json!({
                "at": e.at, "created_at": e.created_at, "kind": e.kind, "status": e.status,
                "source_system": e.source_system, "summary": record_summary(&e.record),
            })
        })
        .collect();
    let provenance: Vec<Value> = p
        .provenance
        .iter()
        .map(|f| {
            json!({
                "field": f.field, "value": text_of(&f.value), "source_system": f.source_system,
                "observed_at": f.observed_at, "message_id": f.message_id, "chosen": f.chosen,
            })
        })
        .collect();
    let page = json!({
        "p": p,
        "name": display_name(&p.profile),
        "fields": profile_fields(&p.profile),
        "provenance": provenance,
        "timeline": timeline,
        "interactions": interactions,
        "sees_messages": v.role == Some(crate::api::Role::Admin),
    });
    let resp = render(&s, &v, "patient.html", page);
    carrying(resp, vec![p.id.clone()])
}

#[derive(Deserialize)]
pub(super) struct MergeForm {
    #[serde(default)]
    merge: String,
}

/// `POST /patients/{id}/merge`: the person named in the form is merged into this one.
pub(super) async fn merge(
    State(s): State<ConsoleState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(f): Form<MergeForm>,
) -> Response {
    let other = f.merge.trim();
    if other.is_empty() {
        return problem(
            &s,
            &v,
            StatusCode::BAD_REQUEST,
            "give the id of the person to merge into this one",
        );
    }
    match s.store.merge(&id, other, "console").await {
        Ok(view) => carrying(
            see_other(&format!("/patients/{}", view.survivor_id)),
            vec![view.survivor_id.clone(), view.merged_id.clone()],
        ),
        Err(e) => store_problem(&s, &v, e),
    }
}

/// `POST /patients/{id}/unmerge`: undoes the latest merge into this person.
pub(super) async fn unmerge(State(s): State<ConsoleState>, v: Viewer, Path(id): Path<String>) -> Response {
    match s.store.unmerge(&id).await {
        Ok(view) => carrying(
            see_other(&format!("/patients/{}", view.survivor_id)),
            vec![view.survivor_id.clone(), view.merged_id.clone()],
        ),
        Err(e) => store_problem(&s, &v, e),
    }
}

/// The score breakdown's rows: field, the level reached, the weight counted.
fn breakdown_rows(b: &Value) -> Vec<Value> {
    let list = match b {
        Value::Array(a) => Some(a),
        Value::Object(m) => m.values().find_map(|v| {
            v.as_array()
                .filter(|a| a.first().is_some_and(|x| x.get("field").is_some()))
        }),
        _ => None,
    };
    list.map(|rows| {
        rows.iter()
            .map(|r| {
                json!({
                    "field": r.get("field").map(text_of).unwrap_or_default(),
                    "outcome": r.get("level").or_else(|| r.get("outcome")).map(text_of).unwrap_or_else(|| "missing".into()),
                    "weight": r.get("weight").and_then(Value::as_f64).map(|w| format!("{w:+.2}")).unwrap_or_default(),
                })
            })
            .collect()
    })
    .unwrap_or_default()
}

/// `GET /review`: open items, each with both persons side by side.
pub(super) async fn review(State(s): State<ConsoleState>, v: Viewer) -> Response {
    let items = match s.store.reviews("open", REVIEW_ROWS).await {
        Ok(i) => i,
        Err(e) => return store_problem(&s, &v, e),
    };
    let mut shown = Vec::new();
    let mut persons = Vec::new();
    for item in &items {
        let mut sides = Vec::new();
        for id in [&item.person_id, &item.candidate_id] {
            let side = match s.store.person(id).await {
                Ok(Some(p)) => json!({
                    "id": p.id,
                    "name": display_name(&p.profile),
                    "fields": profile_fields(&p.profile),
                }),
                Ok(None) => json!({"id": id, "name": null, "fields": []}),
                Err(e) => return store_problem(&s, &v, e),
            };
            persons.push(id.clone());
            sides.push(side);
        }
        let right = sides.pop();
        let left = sides.pop();
        shown.push(json!({
            "id": item.id,
            "score": format!("{:.2}", item.score),
            "left": left,
            "right": right,
            "breakdown": breakdown_rows(&item.breakdown),
        }));
    }
    let resp = render(&s, &v, "review.html", json!({"items": shown}));
    carrying(resp, persons)
}

async fn decide(s: ConsoleState, v: Viewer, id: &str, link: bool) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return problem(&s, &v, StatusCode::BAD_REQUEST, "a review item's id is a number");
    };
    match s.store.decide_review(id, link).await {
        Ok(item) => carrying(see_other("/review"), vec![item.person_id, item.candidate_id]),
        Err(e) => store_problem(&s, &v, e),
    }
}

/// `POST /review/{id}/link`: the two are one person.
pub(super) async fn link(State(s): State<ConsoleState>, v: Viewer, Path(id): Path<String>) -> Response {
    decide(s, v, &id, true).await
}

/// `POST /review/{id}/reject`: the two are different people.
pub(super) async fn reject(State(s): State<ConsoleState>, v: Viewer, Path(id): Path<String>) -> Response {
    decide(s, v, &id, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_read_as_text() {
        let p = json!({"names": [{"family": "Nguyễn", "given": ["Thị", "Lan"]}], "birth_date": "1985-03-07",
            "telecom": [{"system": "phone", "value": "+84903123456"}], "consents": [{"scope": "x"}], "addresses": []});
        assert_eq!(display_name(&p).as_deref(), Some("Nguyễn, Thị Lan"));
        assert_eq!(
            display_name(&json!({"names": [{"family": "王"}]})).as_deref(),
            Some("王")
        );
        assert_eq!(display_name(&json!({"names": []})), None);
        let fields = profile_fields(&p);
        assert_eq!(fields.len(), 3, "{fields:?}");
        assert!(
            fields.iter().any(|f| f["value"] == "system: phone, +84903123456"),
            "{fields:?}"
        );
    }

    #[test]
    fn breakdowns_list_their_fields() {
        let b = json!({"total": 9.5, "fields": [{"field": "birth_date", "level": "exact", "weight": 4.2, "counted": true}]});
        assert_eq!(
            breakdown_rows(&b),
            vec![json!({"field": "birth_date", "outcome": "exact", "weight": "+4.20"})]
        );
        assert!(breakdown_rows(&json!(null)).is_empty());
    }
}
