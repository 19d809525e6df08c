//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers (utoipa) and served at
//! `GET /api/v1/openapi.json`.
//!
//! Each handler carries its own `#[utoipa::path(...)]` — method, path, parameters, body and
//! the answers only it gives (200, 404, 409…) — and is named once in [`ApiDoc`]'s `paths(...)`.
//! What every route shares is added here, from the one table of rules (`access.rs`), so that
//! the document cannot drift from what the access layer does: the bearer scheme and its
//! 401/403 on every route that needs a token (open routes say so), the roles allowed, 400 where
//! a route takes parameters or a body, 413 where it takes a body, 405 for other methods, and
//! 503 when the store cannot answer. A test checks that every `/api/v1` route the router
//! serves is in the document, so a route added without its annotation fails.
//!
//! This room does no I/O; it describes.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, PathItem, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::AppState;
use super::access::{Audit, RULES};

/// The document: every `/api/v1` handler, named once in `paths(...)`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "carehub API",
        description = "carehub's HTTP API: unified patient profiles, the message log, identity review, \
                       notifications, access. Every route but the open ones needs \
                       `Authorization: Bearer <token>` and a role allowed on it (each operation names them); \
                       reads of patient data are audited."
    ),
    paths(
        super::find_patients,
        super::get_patient,
        super::get_timeline,
        super::match_patient,
        super::list_reviews,
        super::link_review,
        super::reject_review,
        super::merge_patient,
        super::unmerge_patient,
        super::messages::list_messages,
        super::messages::get_message,
        super::messages::reprocess,
        super::list_connectors,
        super::ops::alerts,
        super::notify::interactions,
        super::notify::consents,
        super::notify::set_consent,
        super::notify::unsubscribe,
        super::notify::preferences,
        super::notify::set_preferences,
        super::notify::channel_report,
        super::notify::queue_state,
        super::notify::webhook,
        super::subscriptions::list,
        super::subscriptions::create,
        super::subscriptions::delete,
        super::admin::list_tokens,
        super::admin::create_token,
        super::admin::revoke_token,
        super::admin::audit,
        super::admin::whoami,
        openapi_json,
    ),
    components(schemas(super::ErrorBody)),
    modifiers(&FromRules),
    tags(
        (name = "patients", description = "Unified profiles and timelines (patient data: audited)"),
        (name = "identity", description = "Matching, the review queue, merge and unmerge"),
        (name = "operations", description = "The message log and connectors (metadata; bodies only for admin)"),
        (name = "notifications", description = "Consents, preferences, interactions, queue and provider webhooks"),
        (name = "subscriptions", description = "Change notifications to clinic systems (signed POSTs)"),
        (name = "access", description = "Tokens, the audit log, who am I, this document"),
    )
)]
pub struct ApiDoc;

/// The document as this hub serves it: [`ApiDoc`] with what the derive cannot say (see
/// [`refine`]) and the hub's own channel names, so that a client (or a tester) knows which
/// values each field takes.
pub fn document(channels: &[&str]) -> String {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
    refine(&mut doc, channels);
    serde_json::to_string_pretty(&doc).expect("the OpenAPI document serialises")
}

/// This document (OpenAPI 3.1): every `/api/v1` operation, its parameters, bodies and answers.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "access",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)))]
pub(super) async fn openapi_json(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        s.openapi.to_string(),
    )
        .into_response()
}

/// What the derive cannot say, written as JSON Schema: values the handlers parse from text
/// (partial dates, lifetimes, flags and counts written as text by mappings), the rule that a
/// record to match must state something, and the names this hub's configuration allows
/// (channels, time zones). Each is what the handler accepts, neither more nor less, so that
/// valid data is accepted and invalid data refused as the document says.
fn refine(doc: &mut Value, channels: &[&str]) {
    let year = json!({"type": "string", "pattern": "^[0-9]{4}$"});
    let month = json!({"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"});
    let date = json!({"type": "string", "format": "date"});
    let instant = json!({"type": "string", "format": "date-time"});
    let schemas = &mut doc["components"]["schemas"];
    schemas["NewSubscription"]["properties"]["url"]["pattern"] = json!(crate::subscriptions::URL_PATTERN);
    schemas["BirthDate"] = json!({
        "description": "A date of birth at the precision known: YYYY, YYYY-MM or YYYY-MM-DD",
        "anyOf": [year, month, date],
    });
    schemas["When"] = json!({
        "description": "A time at the precision known: YYYY, YYYY-MM, YYYY-MM-DD or an RFC 3339 date-time",
        "anyOf": [year, month, date, instant],
    });
    // Text a mapping writes for a flag or a count reads too.
    let blank = "[ \\t\\n\\r]*";
    schemas["ProfilePatch"]["properties"]["deceased"] = json!({
        "description": "`true` when the source says the person has died (`\"true\"`/`\"false\"` as text read too)",
        "anyOf": [{"type": "boolean"}, {"type": "string", "pattern": format!("^{blank}([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]){blank}$")}, {"type": "null"}],
    });
    schemas["ContactPoint"]["properties"]["rank"] = json!({
        "description": "The order of preference, 1 first (a number, or a number as text)",
        "anyOf": [{"type": "integer", "minimum": 0, "maximum": u32::MAX}, {"type": "string", "pattern": format!("^{blank}[0-9]{{1,9}}{blank}$")}, {"type": "null"}],
    });
    // A record to match states at least one thing (a non-null value, a non-empty list).
    let stated: Vec<Value> = schemas["ProfilePatch"]["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|field| {
            let mut stated = serde_json::Map::new();
            stated.insert(field.clone(), json!({"not": {"type": "null"}, "minItems": 1}));
            json!({"required": [field], "properties": stated})
        })
        .collect();
    schemas["ProfilePatch"]["anyOf"] = Value::Array(stated);
    schemas["NewToken"]["properties"]["expires"] = json!({
        "description": "`never` (the default), or 1 to 9999 minutes, hours, days or weeks: `30m`, `12h`, `90d`, `2w`",
        "type": ["string", "null"],
        "pattern": format!("^{blank}([Nn][Ee][Vv][Ee][Rr]|0*[1-9][0-9]{{0,3}}[mhdw]){blank}$"),
    });
    let mut channel_names = vec!["*"];
    channel_names.extend(channels);
    for body in ["ConsentBody", "UnsubscribeBody"] {
        schemas[body]["properties"]["channel"] = json!({
            "description": "A configured channel's name, or `*` (every channel, the default)",
            "type": ["string", "null"],
            "enum": channel_names.iter().map(|c| Value::from(*c)).chain([Value::Null]).collect::<Vec<_>>(),
        });
    }
    let zones: Vec<Value> = jiff::tz::db()
        .available()
        .map(|z| Value::from(z.as_str()))
        .chain([Value::Null])
        .collect();
    let prefs = &mut schemas["Preferences"]["properties"];
    prefs["timezone"] =
        json!({"description": "IANA time zone for quiet hours (overrides the clinic's)", "enum": zones});
    prefs["language"] = json!({
        "description": "Language for notifications (overrides the profile's): `vi`, `ru`, `zh`, `en`, `vi-VN`…",
        "type": ["string", "null"],
        "pattern": "^[A-Za-z]{1,8}([-_^][A-Za-z0-9]{1,8})*$",
    });
    prefs["addresses"] = json!({
        "description": "Messenger ids by channel kind",
        "type": "object",
        "properties": {"telegram": {"type": "string"}, "zalo": {"type": "string"}},
        "additionalProperties": false,
    });
    // A provider's webhook body is the provider's format: any JSON (each channel reads what it
    // knows and passes over the rest), or a form.
    doc["paths"]["/api/v1/webhooks/{channel}"]["post"]["requestBody"]["content"]["application/json"]["schema"] =
        json!({"description": "The provider's own JSON"});
    // Query values that are a date or an instant.
    for (path, names) in [
        ("/api/v1/audit", ["since", "until"]),
        ("/api/v1/reports/channels", ["from", "to"]),
    ] {
        if let Some(params) = doc["paths"][path]["get"]["parameters"].as_array_mut() {
            for p in params
                .iter_mut()
                .filter(|p| names.contains(&p["name"].as_str().unwrap_or("")))
            {
                p["schema"] = json!({"anyOf": [date, instant]});
            }
        }
    }
    refine_messages(doc, &date, &instant);
}

/// The message log's search and reprocess: statuses by name, times as dates or instants.
fn refine_messages(doc: &mut Value, date: &Value, instant: &Value) {
    if let Some(params) = doc["paths"]["/api/v1/messages"]["get"]["parameters"].as_array_mut() {
        for p in params.iter_mut() {
            match p["name"].as_str().unwrap_or("") {
                "status" => {
                    p["schema"] =
                        json!({"enum": ["", "received", "processed", "error", "duplicate", "unmapped"]})
                }
                "received_from" | "received_to" => {
                    p["schema"] = json!({"anyOf": [date, instant, {"type": "string", "maxLength": 0}]})
                }
                _ => {}
            }
        }
    }
    let reprocessable = json!({"enum": ["error", "unmapped", "processed"]});
    let body = &mut doc["components"]["schemas"]["ReprocessBody"]["properties"];
    body["status"] = json!({
        "description": "`error`, `unmapped` or `processed`, or a list of them (default: error and unmapped)",
        "anyOf": [reprocessable, {"type": "array", "items": reprocessable}, {"type": "null"}],
    });
    body["ids"]["maxItems"] = json!(crate::reprocess::MAX_IDS);
    for name in ["received_from", "received_to"] {
        body[name] = json!({"anyOf": [date, instant, {"type": "string", "maxLength": 0}, {"type": "null"}]});
    }
}

/// What every operation shares, written from `access::RULES` (see the module doc).
struct FromRules;

/// The name of the bearer scheme in `components.securitySchemes`.
const BEARER: &str = "bearer";

impl Modify for FromRules {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A carehub token (`carehub token create`, `POST /api/v1/tokens`) or, when one is \
                         configured, a JWT from the clinic's identity provider",
                    ))
                    .build(),
            ),
        );
        for (name, description) in [
            (
                "BadRequest",
                "The path, query or body is not what the operation takes; `error` says why",
            ),
            ("Unauthorized", "No token, or an unknown, revoked or expired one"),
            ("Forbidden", "The token's role may not use this operation"),
            ("TooLarge", "The body is larger than `api.max_body_bytes`"),
            (
                "Unavailable",
                "The store (or the audit log) cannot be reached now; try again",
            ),
        ] {
            components
                .responses
                .insert(name.to_string(), RefOr::T(error_response(description)));
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, op) in operations_mut(item) {
                let Some(rule) = RULES.iter().find(|r| r.method == method && r.path == path) else {
                    continue;
                };
                let mut add = |status: &str, name: &str| {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                };
                if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) || op.request_body.is_some() {
                    add("400", "BadRequest");
                }
                if op.request_body.is_some() {
                    add("413", "TooLarge");
                }
                if !rule.public {
                    add("401", "Unauthorized");
                    add("403", "Forbidden");
                }
                if path != "/api/v1/openapi.json" {
                    add("503", "Unavailable");
                }
                let who = if rule.public {
                    op.security = Some(vec![SecurityRequirement::default()]);
                    "Open: no token needed.".to_string()
                } else {
                    op.security = Some(vec![SecurityRequirement::new::<_, _, &str>(BEARER, [])]);
                    let roles: Vec<&str> = rule.roles.iter().map(|r| r.as_str()).collect();
                    let audit = match rule.audit {
                        Audit::No => "",
                        Audit::PhiRead => " Audited: carries patient data.",
                        Audit::Action => " Audited: an action.",
                    };
                    format!("Roles: {}.{audit}", roles.join(", "))
                };
                op.description = Some(match op.description.take() {
                    Some(d) if !d.is_empty() => format!("{d}\n\n{who}"),
                    _ => who,
                });
            }
        }
    }
}

/// A refusal: its description and the `ErrorBody` it carries.
fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// The operations of a path item, with their method as the access rules write it.
fn operations_mut(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("GET", item.get.as_mut()),
        ("PUT", item.put.as_mut()),
        ("POST", item.post.as_mut()),
        ("DELETE", item.delete.as_mut()),
        ("PATCH", item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
    .collect()
}

/// The methods a path item documents (`GET`, `POST`…).
pub fn documented_methods(item: &PathItem) -> Vec<&'static str> {
    [
        ("GET", item.get.is_some()),
        ("PUT", item.put.is_some()),
        ("POST", item.post.is_some()),
        ("DELETE", item.delete.is_some()),
        ("PATCH", item.patch.is_some()),
    ]
    .into_iter()
    .filter_map(|(m, present)| present.then_some(m))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `/api/v1` rule is a documented operation, and every documented operation has a
    /// rule: a route added without its `#[utoipa::path]` (or its line in `paths(...)`) fails.
    #[test]
    fn every_api_route_is_documented_and_nothing_else_is() {
        let doc = ApiDoc::openapi();
        for rule in RULES.iter().filter(|r| r.path.starts_with("/api/v1/")) {
            let item = doc.paths.paths.get(rule.path).unwrap_or_else(|| {
                panic!(
                    "{} {} is not in the OpenAPI document: annotate its handler",
                    rule.method, rule.path
                )
            });
            assert!(
                documented_methods(item).contains(&rule.method),
                "{} {} is not in the OpenAPI document: annotate its handler",
                rule.method,
                rule.path
            );
        }
        for (path, item) in &doc.paths.paths {
            for method in documented_methods(item) {
                assert!(
                    RULES.iter().any(|r| r.method == method && r.path == path),
                    "{method} {path} is documented but has no rule in access::RULES"
                );
            }
        }
    }

    #[test]
    fn it_is_openapi_3_1_with_the_bearer_scheme_and_the_refusals_of_the_access_layer() {
        let doc: serde_json::Value = serde_json::from_str(&document(&["sms"])).unwrap();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1"),
            "{}",
            doc["openapi"]
        );
        assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
        let patient = &doc["paths"]["/api/v1/patients/{id}"]["get"];
        for status in ["200", "400", "401", "403", "404", "503"] {
            assert!(
                patient["responses"][status].is_object(),
                "GET /api/v1/patients/{{id}} lacks {status}"
            );
        }
        assert!(
            patient["description"]
                .as_str()
                .unwrap()
                .contains("Roles: admin, clinician.")
        );
        assert_eq!(patient["security"][0]["bearer"], serde_json::json!([]));
        // Open routes need no token and never answer 401 for want of one.
        let webhook = &doc["paths"]["/api/v1/webhooks/{channel}"]["post"];
        assert_eq!(webhook["security"], serde_json::json!([{}]));
        assert!(webhook["responses"]["403"].is_null());
        // Bodies are described: the match route takes a profile.
        let matching = &doc["paths"]["/api/v1/match"]["post"];
        assert!(matching["requestBody"]["content"]["application/json"]["schema"].is_object());
        assert!(matching["responses"]["413"].is_object());
    }
}
