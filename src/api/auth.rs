//! The access layer: every request's credential, role and audit.
//!
//! For each route it finds the route's rule (`access.rs`), reads `Authorization: Bearer …` —
//! a carehub token (looked up by its hash) or, when an identity provider is configured, a JWT
//! from it (`oidc.rs`) — or, on the console's pages only, the session cookie
//! ([`SESSION_COOKIE`], a session row in the store), and answers 401 (no or bad credential;
//! a browser asking a console page for HTML is sent to the login page instead) or 403 (role
//! not allowed, or a console form posted with the cookie but without the session's CSRF
//! token) before any handler runs. For audited routes it writes the audit row — who, role, route,
//! the persons the answer carries, purpose of use, client — and only then lets the answer go:
//! an answer whose audit cannot be written is withheld (503). Nothing here logs a token or a
//! patient value.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::access::{Audit, Role, RouteRule};
use super::oidc::{OidcVerifier, looks_like_jwt};
use crate::audit::AuditEntry;
use crate::store::Store;

/// Who is calling, once authenticated.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `token:<id>` or `oidc:<subject>`.
    pub subject: String,
    /// The role the request is allowed under.
    pub role: Role,
}

/// The persons an answer carries, set by handlers on their response for the audit row;
/// `count` is how many records of patient data it carries (persons, messages…).
#[derive(Debug, Clone, Default)]
pub struct AuditPersons {
    pub persons: Vec<String>,
    pub count: i64,
}

/// `response` marked as carrying these persons' data.
pub fn carrying(mut response: Response, persons: Vec<String>) -> Response {
    let count = persons.len() as i64;
    response.extensions_mut().insert(AuditPersons { persons, count });
    response
}

/// The console's session cookie: a random secret whose SHA-256 keys a `console_sessions` row.
pub const SESSION_COOKIE: &str = "carehub_session";

/// The console session a request came with (set beside [`Principal`] when the cookie was the
/// credential): pages put its CSRF token in their forms.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub csrf: String,
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The largest console form the CSRF check reads (forms are a few fields).
const MAX_FORM_BYTES: usize = 256 * 1024;

/// What the access layer needs.
#[derive(Clone)]
pub struct Access {
    store: Store,
    audit: AuditLog,
    oidc: Option<Arc<OidcVerifier>>,
    /// (method, route path) → rule, for every route the router has.
    rules: Arc<HashMap<(Method, String), &'static RouteRule>>,
}

impl Access {
    pub fn new(
        store: Store,
        audit: AuditLog,
        oidc: Option<Arc<OidcVerifier>>,
        routes: &[(Method, String, &'static RouteRule)],
    ) -> Access {
        let rules = routes
            .iter()
            .map(|(m, p, r)| ((m.clone(), p.clone()), *r))
            .collect();
        Access {
            store,
            audit,
            oidc,
            rules: Arc::new(rules),
        }
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut resp = (status, axum::Json(json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

/// Why a credential was not taken: the answer's status and reason.
struct Refusal(StatusCode, String);

impl From<&str> for Refusal {
    fn from(reason: &str) -> Self {
        Refusal(StatusCode::UNAUTHORIZED, reason.to_string())
    }
}

/// Who holds `bearer`, with every role they hold; `Err` with the status (401, or 503 when
/// the token cannot be checked now) and the reason.
async fn authenticate(access: &Access, bearer: &str) -> Result<(String, Vec<Role>), Refusal> {
    if bearer.starts_with(super::tokens::PREFIX) || access.oidc.is_none() || !looks_like_jwt(bearer) {
        let record = access
            .store
            .token_by_hash(&super::tokens::hash(bearer))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "token look-up failed");
                Refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the token cannot be checked now".into(),
                )
            })?
            .ok_or("unknown token")?;
        if record.revoked_at.is_some() {
            return Err("token revoked".into());
        }
        if !record.is_active(&jiff::Timestamp::now()) {
            return Err("token expired".into());
        }
        let role = Role::parse(&record.role).ok_or("token has an unknown role")?;
        return Ok((format!("token:{}", record.id), vec![role]));
    }
    let Some(oidc) = &access.oidc else {
        return Err("unknown token".into());
    };
    let identity = oidc.verify(bearer).await.map_err(|e| {
        let status = match e.is_unavailable() {
            true => StatusCode::SERVICE_UNAVAILABLE,
            false => StatusCode::UNAUTHORIZED,
        };
        Refusal(status, e.to_string())
    })?;
    let subject = identity.subject;
    let roles: Vec<Role> = identity.roles.iter().filter_map(|r| Role::parse(r)).collect();
    if roles.is_empty() {
        return Err("the identity provider's token names no carehub role".into());
    }
    Ok((format!("oidc:{subject}"), roles))
}

/// The access layer as axum middleware (`from_fn_with_state`).
pub async fn authorize(State(access): State<Access>, mut req: Request, next: Next) -> Response {
    let Some(path) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
    else {
        return refuse(StatusCode::NOT_FOUND, "no such route");
    };
    let method = req.method().clone();
    let Some(rule) = access.rules.get(&(method.clone(), path.clone())).copied() else {
        // Another method on a route that exists: 405 with the methods it takes, as HTTP says.
        let mut allowed: Vec<&str> = access
            .rules
            .keys()
            .filter(|(_, p)| *p == path)
            .map(|(m, _)| m.as_str())
            .collect();
        if !allowed.is_empty() {
            allowed.sort_unstable();
            let mut resp = refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("this route takes {}", allowed.join(", ")),
            );
            if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
            return resp;
        }
        // Deny by default: a route without a rule is nobody's.
        return refuse(StatusCode::FORBIDDEN, "this route has no access rule");
    };
    if rule.public {
        return next.run(req).await;
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|v| v.trim().to_string());
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());
    let mut session = None;
    let (subject, roles) = match bearer.filter(|b| !b.is_empty()) {
        Some(bearer) => match authenticate(&access, &bearer).await {
            Ok(who) => who,
            Err(Refusal(status, reason)) => {
                tracing::warn!(route = %path, %method, client = client.as_deref().unwrap_or("-"), %reason, "request refused: not authenticated");
                return refuse(status, &reason);
            }
        },
        None if rule.console => {
            let found = match cookie(req.headers(), SESSION_COOKIE) {
                Some(secret) if !secret.is_empty() => access
                    .store
                    .session(&super::tokens::hash(secret))
                    .await
                    .map_err(|e| tracing::error!(error = %e, "session look-up failed")),
                _ => Ok(None),
            };
            match found {
                Ok(Some(s)) => {
                    let Some(role) = Role::parse(&s.role) else {
                        return refuse(StatusCode::UNAUTHORIZED, "the session has an unknown role");
                    };
                    session = Some(ConsoleSession { csrf: s.csrf });
                    (s.subject, vec![role])
                }
                Ok(None) if wants_html(&req) => return to_login(&req),
                Ok(None) => {
                    return refuse(
                        StatusCode::UNAUTHORIZED,
                        "this page needs a console session (log in at /login) or a token",
                    );
                }
                Err(()) => {
                    return refuse(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the session cannot be checked now",
                    );
                }
            }
        }
        None => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "this route needs a token: Authorization: Bearer <token>",
            );
        }
    };
    // A form posted with the cookie carries the session's CSRF token (a bearer token is no
    // ambient credential: another site cannot make a browser send it).
    if let Some(s) = &session
        && method == Method::POST
    {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large");
        };
        let sent = form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned());
        if !sent.is_some_and(|v| same_secret(&v, &s.csrf)) {
            tracing::warn!(route = %path, %method, "request refused: a console form without its CSRF token");
            return refuse(
                StatusCode::FORBIDDEN,
                "the form's CSRF token is missing or wrong: reload the page and try again",
            );
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    let purpose = req
        .headers()
        .get("x-purpose-of-use")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(64).collect::<String>());
    let allowed = roles.iter().copied().find(|r| rule.allows(*r));
    let action = format!("{method} {path}");
    let Some(role) = allowed else {
        let shown = roles.first().map(|r| r.as_str()).unwrap_or("none");
        tracing::warn!(route = %path, %method, %subject, role = shown, "request refused: role not allowed");
        if rule.audit != Audit::No {
            // A refused attempt at patient data is worth a row too.
            let entry = AuditEntry {
                at: jiff::Timestamp::now().to_string(),
                subject,
                role: shown.to_string(),
                action,
                status: 403,
                persons: Vec::new(),
                person_count: 0,
                purpose,
                client,
            };
            if let Err(e) = access.audit.record(entry).await {
                tracing::error!(error = %e, "audit row of a refused request not written");
            }
        }
        let reason = format!("the {} role may not use this route", shown);
        if rule.console && wants_html(&req) {
            return refused_page(&reason);
        }
        return refuse(StatusCode::FORBIDDEN, &reason);
    };
    req.extensions_mut().insert(Principal {
        subject: subject.clone(),
        role,
    });
    if let Some(s) = session {
        req.extensions_mut().insert(s);
    }
    let response = next.run(req).await;
    // A route that carries no patient data as a rule is still audited when an answer does
    // (a message search by patient identifier).
    if rule.audit == Audit::No && response.extensions().get::<AuditPersons>().is_none() {
        return response;
    }
    let carried = response
        .extensions()
        .get::<AuditPersons>()
        .cloned()
        .unwrap_or_default();
    let entry = AuditEntry {
        at: jiff::Timestamp::now().to_string(),
        subject,
        role: role.as_str().to_string(),
        action,
        status: i64::from(response.status().as_u16()),
        person_count: carried.count.max(carried.persons.len() as i64),
        persons: carried.persons,
        purpose,
        client,
    };
    match access.audit.record(entry).await {
        Ok(()) => response,
        Err(e) => {
            tracing::error!(error = %e, route = %path, "audit row not written: the answer is withheld");
            let mut resp = refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the audit log cannot be written now; the answer is withheld",
            );
            *resp.body_mut() =
                Body::from(r#"{"error":"the audit log cannot be written now; the answer is withheld"}"#);
            resp
        }
    }
}

/// Whether the caller is a browser asking for a page.
fn wants_html(req: &Request) -> bool {
    req.method() == Method::GET
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}

/// A 403 for a person at a browser: a page saying why, with a way back.
fn refused_page(reason: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>403</title>\
         <link rel=\"stylesheet\" href=\"/assets/console.css\"></head><body><main>\
         <section class=\"card\"><h1>403</h1><p class=\"error\">{reason}</p>\
         <p><a href=\"/\">carehub</a> · <a href=\"/login\">/login</a></p></section></main></body></html>"
    );
    let mut resp = (StatusCode::FORBIDDEN, axum::response::Html(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A redirect to the login page, which brings the browser back here afterwards.
fn to_login(req: &Request) -> Response {
    let back = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let next: String = form_urlencoded::byte_serialize(back.as_bytes()).collect();
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/login?next={next}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Writes audit rows in groups: each request waits for its own row's commit, and the rows of
/// requests arriving together share one transaction.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<(AuditEntry, oneshot::Sender<Result<(), String>>)>,
}

/// Rows written in one transaction at most.
const AUDIT_GROUP: usize = 256;

impl AuditLog {
    /// Starts the writer task; it ends when the last handle is dropped.
    pub fn start(store: Store) -> AuditLog {
        let (tx, mut rx) = mpsc::channel::<(AuditEntry, oneshot::Sender<Result<(), String>>)>(4096);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut group = vec![first];
                while group.len() < AUDIT_GROUP {
                    match rx.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                let entries: Vec<AuditEntry> = group.iter().map(|(e, _)| e.clone()).collect();
                let outcome = store
                    .append_audit(&entries)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                for (_, reply) in group {
                    let _ = reply.send(outcome.clone());
                }
            }
        });
        AuditLog { tx }
    }

    /// Records one row; returns once it is committed.
    pub async fn record(&self, entry: AuditEntry) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((entry, reply))
            .await
            .map_err(|_| "the audit writer stopped".to_string())?;
        answer.await.map_err(|_| "the audit writer stopped".to_string())?
    }
}
