//! The operator console: server-rendered pages at `/` for the people who run the hub.
//!
//! Pages are minijinja templates and one stylesheet (plus a few lines of progressive
//! JavaScript), all embedded in the binary: no Node build step, no files to deploy. Charts are
//! inline SVG drawn on the server (`chart.rs`). The console's own strings live in one table in
//! four languages (`i18n.rs`).
//!
//! Every page is a route of the API's router with its rule in `api::access::RULES`: the
//! access layer (`api/auth.rs`) checks the session cookie (or a bearer token), the role and the
//! CSRF token of every form, and audits the pages that show patients, with the persons shown
//! (`carrying`). What a page holds follows the role: for `ops` the handlers never load patient
//! names, identifiers, birth dates, contacts or message bodies, so the HTML cannot carry them.
//! This room reads the store; it writes only sessions and the actions an admin takes
//! (merge, unmerge, review decisions), through the store's own functions.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::Environment;
use serde_json::{Value, json};

use crate::api::Role;
use crate::api::auth::{ConsoleSession, Principal, cookie};
use crate::store::{Store, StoreError};

mod chart;
pub mod i18n;
mod messages;
mod notifications;
mod oidc_login;
mod overview;
mod patients;
pub mod session;
mod strings;

pub use i18n::Lang;

/// What the console needs besides the store.
#[derive(Debug, Clone, Default)]
pub struct ConsoleConfig {
    /// Mark the session cookie `Secure` (the API is served over TLS).
    pub secure_cookie: bool,
    /// How long a session lasts, in hours.
    pub session_hours: u64,
    /// Each FHIR pull connector's name and cron schedule (for "next run").
    pub fhir_schedules: Vec<(String, String)>,
    /// The clinic's time zone (IANA), in which schedules run.
    pub timezone: Option<String>,
    /// `alerts.yaml` declares alerts (the overview lists those firing).
    pub alerts_configured: bool,
}

/// The console's shared state: the store, the notification queue, and its templates.
#[derive(Clone)]
pub struct ConsoleState {
    pub store: Store,
    pub queue: Option<crate::queue::Queue>,
    /// Configured channel names (their queues).
    pub channels: Vec<String>,
    pub config: Arc<ConsoleConfig>,
    /// Reprocess (when the hub runs its writer) and the time zone searches read times in.
    pub messages: crate::api::MessagesApi,
    /// The identity provider, when `api.auth.oidc` is configured (its login needs
    /// `client_id` and `redirect_url`).
    pub oidc: Option<Arc<crate::api::oidc::OidcVerifier>>,
    templates: Arc<Environment<'static>>,
}

impl ConsoleState {
    pub fn new(
        store: Store,
        queue: Option<crate::queue::Queue>,
        channels: Vec<String>,
        messages: crate::api::MessagesApi,
        config: ConsoleConfig,
    ) -> ConsoleState {
        ConsoleState {
            store,
            queue,
            channels,
            messages,
            config: Arc::new(config),
            oidc: None,
            templates: Arc::new(templates()),
        }
    }

    /// The same state, logging in through `oidc` too when it is configured for the console.
    pub fn with_oidc(mut self, oidc: Option<Arc<crate::api::oidc::OidcVerifier>>) -> ConsoleState {
        self.oidc = oidc;
        self
    }

    /// The provider the console logs in through, when `client_id` and `redirect_url` are set.
    pub(crate) fn oidc_login(&self) -> Option<&crate::api::oidc::OidcVerifier> {
        self.oidc.as_deref().filter(|o| o.config().console_login())
    }
}

/// Every template, compiled once.
fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("login.html", include_str!("templates/login.html")),
        ("overview.html", include_str!("templates/overview.html")),
        ("messages.html", include_str!("templates/messages.html")),
        ("message.html", include_str!("templates/message.html")),
        ("patients.html", include_str!("templates/patients.html")),
        ("patient.html", include_str!("templates/patient.html")),
        ("review.html", include_str!("templates/review.html")),
        ("notifications.html", include_str!("templates/notifications.html")),
        ("problem.html", include_str!("templates/problem.html")),
        ("reprocess.html", include_str!("templates/reprocess.html")),
    ] {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("console template {name}: {e:#}"));
    }
    env
}

/// The stylesheet and script, by the name the pages link them under.
pub fn asset(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "console.css" => Some(("text/css; charset=utf-8", include_str!("assets/console.css"))),
        "console.js" => Some((
            "text/javascript; charset=utf-8",
            include_str!("assets/console.js"),
        )),
        _ => None,
    }
}

/// Who is looking at a page, in which language, and the CSRF token their forms carry.
pub struct Viewer {
    /// None on the login page.
    pub role: Option<Role>,
    pub lang: Lang,
    pub csrf: String,
    /// The page's path and query (the language picker brings the browser back to it).
    pub here: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let role = parts
            .extensions
            .get::<Principal>()
            .map(|p| p.role)
            .ok_or_else(|| StatusCode::UNAUTHORIZED.into_response())?;
        let csrf = parts
            .extensions
            .get::<ConsoleSession>()
            .map(|s| s.csrf.clone())
            .unwrap_or_default();
        Ok(Viewer {
            role: Some(role),
            lang: lang_of(&parts.headers),
            csrf,
            here: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into()),
        })
    }
}

/// The language cookie, else the first language of `Accept-Language` the console speaks.
pub fn lang_of(headers: &axum::http::HeaderMap) -> Lang {
    if let Some(l) = cookie(headers, i18n::LANG_COOKIE).and_then(Lang::parse) {
        return l;
    }
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(i18n::from_accept_language)
        .unwrap_or_default()
}

/// A navigation link the viewer's role may follow.
fn nav(v: &Viewer) -> Vec<Value> {
    let t = v.lang.strings();
    let links: [(&str, &str, &[Role]); 5] = [
        ("/", "overview", &[Role::Admin, Role::Ops]),
        ("/messages", "messages", &[Role::Admin, Role::Ops]),
        ("/patients", "patients", &[Role::Admin, Role::Clinician]),
        ("/review", "review", &[Role::Admin, Role::Clinician]),
        ("/notifications", "notifications", &[Role::Admin, Role::Ops]),
    ];
    let path = v.here.split('?').next().unwrap_or("/");
    links
        .iter()
        .filter(|(_, _, roles)| v.role.is_some_and(|r| roles.contains(&r)))
        .map(|(href, key, _)| {
            let current = if *href == "/" {
                path == "/"
            } else {
                path.starts_with(href)
            };
            json!({"href": href, "label": t.get(key).copied().unwrap_or(key), "current": current})
        })
        .collect()
}

/// Renders `template` for `v` with the page's own values in `page`.
pub(crate) fn render(s: &ConsoleState, v: &Viewer, template: &str, page: Value) -> Response {
    let t: BTreeMap<&str, &str> = v.lang.strings();
    let ctx = json!({
        "t": t,
        "lang": v.lang.code(),
        "langs": i18n::choices(),
        "role": v.role.map(Role::as_str),
        "csrf": v.csrf,
        "here": v.here,
        "nav": nav(v),
        "admin": v.role == Some(Role::Admin),
        "page": page,
    });
    match s
        .templates
        .get_template(template)
        .and_then(|tpl| tpl.render(&ctx))
    {
        Ok(html) => with_page_headers(Html(html).into_response()),
        Err(e) => {
            tracing::error!(template, error = %e, "a console page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// The headers every page carries: no caching of patient data, no framing, only our own
/// scripts and styles.
pub(crate) fn with_page_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

/// A page saying what went wrong (a bad filter, a missing record) with the status to match.
pub(crate) fn problem(s: &ConsoleState, v: &Viewer, status: StatusCode, message: &str) -> Response {
    let mut resp = render(s, v, "problem.html", json!({"message": message}));
    *resp.status_mut() = status;
    resp
}

/// A store error as a page: the reason for bad requests and missing records, a plain 503
/// for the store being away (logged without values).
pub(crate) fn store_problem(s: &ConsoleState, v: &Viewer, e: StoreError) -> Response {
    let t = v.lang.strings();
    match e {
        StoreError::NotFound(what) => problem(
            s,
            v,
            StatusCode::NOT_FOUND,
            &format!("{what}: {}", t["not_found"]),
        ),
        StoreError::Conflict(m) => problem(s, v, StatusCode::CONFLICT, &m),
        e => {
            tracing::error!(error = %e, "store error while rendering a console page");
            problem(s, v, StatusCode::SERVICE_UNAVAILABLE, t["store_down"])
        }
    }
}

/// After a form: back to a page (303, so a reload does not post again).
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Only a path on this site (`/…`, not `//host`): where a login or a language change returns.
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_string(),
        _ => "/".to_string(),
    }
}

/// "3 min", "2 h", "5 d": how long ago an RFC 3339 instant was (None when it is unreadable).
pub(crate) fn ago(at: &str, now: jiff::Timestamp) -> Option<String> {
    let then: jiff::Timestamp = at.parse().ok()?;
    let secs = (now.as_second() - then.as_second()).max(0);
    Some(duration_words(secs))
}

pub(crate) fn duration_words(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// Registers the console's routes on the API's router.
pub fn add_routes<S>(routes: crate::api::access::Routes<S>) -> crate::api::access::Routes<S>
where
    S: Clone + Send + Sync + 'static,
    ConsoleState: axum::extract::FromRef<S>,
{
    use axum::http::Method as M;
    use axum::routing::{get, post};
    routes
        .add(M::GET, "/login", get(session::login_page))
        .add(M::POST, "/login", post(session::login))
        .add(M::GET, "/login/oidc", get(oidc_login::start))
        .add(M::GET, "/login/oidc/callback", get(oidc_login::callback))
        .add(M::GET, "/language", get(session::language))
        .add(M::GET, "/assets/{file}", get(session::assets))
        .add(M::POST, "/logout", post(session::logout))
        .add(M::GET, "/", get(overview::page))
        .add(M::GET, "/messages", get(messages::list))
        .add(M::GET, "/messages/{id}", get(messages::detail))
        .add(M::POST, "/messages/reprocess", post(messages::reprocess))
        .add(M::GET, "/patients", get(patients::search))
        .add(M::GET, "/patients/{id}", get(patients::profile))
        .add(M::POST, "/patients/{id}/merge", post(patients::merge))
        .add(M::POST, "/patients/{id}/unmerge", post(patients::unmerge))
        .add(M::GET, "/review", get(patients::review))
        .add(M::POST, "/review/{id}/link", post(patients::link))
        .add(M::POST, "/review/{id}/reject", post(patients::reject))
        .add(M::GET, "/notifications", get(notifications::page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        let env = templates();
        assert!(env.get_template("overview.html").is_ok());
    }

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(
            local_path(Some("/messages?status=error")),
            "/messages?status=error"
        );
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn durations_read_in_words() {
        assert_eq!(duration_words(5), "5 s");
        assert_eq!(duration_words(600), "10 min");
        assert_eq!(duration_words(3 * 3600), "3 h");
        assert_eq!(duration_words(3 * 86_400), "3 d");
    }
}
