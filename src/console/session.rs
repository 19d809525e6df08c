//! Logging in and out of the console, its language, and its assets.
//!
//! Sessions are rows in the store (`console_sessions`), not signed cookies: a logout or a
//! revoked token ends a session at once on every replica, a restart keeps sessions, and there
//! is no signing key to share and rotate between replicas. The cookie holds a random secret
//! (only its SHA-256 is stored), `HttpOnly; SameSite=Strict; Path=/`, `Secure` over TLS.
//! The login form itself carries a double-submit token (a `SameSite=Strict` cookie and a field
//! that must match), so another site cannot log a browser in under someone else's token.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::json;

use super::i18n::{LANG_COOKIE, Lang};
use super::{ConsoleState, Viewer, lang_of, local_path, render, see_other, with_page_headers};
use crate::api::Role;
use crate::api::auth::{Principal, SESSION_COOKIE, cookie, same_secret};
use crate::api::tokens;
use crate::store::SessionRecord;

/// The login form's double-submit cookie.
const LOGIN_COOKIE: &str = "carehub_login";

#[derive(Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

/// A random secret, base64url (32 bytes).
pub(super) fn secret() -> String {
    tokens::generate()[tokens::PREFIX.len()..].to_string()
}

fn cookie_header(name: &str, value: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}"
    ))
    .expect("cookie values are base64url")
}

/// A login page viewer: nobody yet.
fn anonymous(headers: &HeaderMap, here: &str) -> Viewer {
    Viewer {
        role: None,
        lang: lang_of(headers),
        csrf: String::new(),
        here: here.to_string(),
    }
}

pub(super) fn login_form(
    s: &ConsoleState,
    headers: &HeaderMap,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let v = anonymous(headers, &format!("/login?next={}", encode(next)));
    let form_secret = secret();
    let mut resp = render(
        s,
        &v,
        "login.html",
        json!({
            "next": next,
            "form": form_secret,
            "error": error,
            "oidc": s.oidc_login().is_some(),
            "oidc_href": format!("/login/oidc?next={}", encode(next)),
        }),
    );
    *resp.status_mut() = status;
    resp.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(LOGIN_COOKIE, &form_secret, 3600, s.config.secure_cookie),
    );
    resp
}

pub(super) fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `GET /login`: the form to paste a token into.
pub(super) async fn login_page(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    login_form(&s, &headers, &local_path(q.next.as_deref()), None, StatusCode::OK)
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    form: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login`: a valid token opens a session with its role.
pub(super) async fn login(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = local_path(f.next.as_deref());
    let t = lang_of(&headers).strings();
    let form_ok = cookie(&headers, LOGIN_COOKIE).is_some_and(|c| !c.is_empty() && same_secret(c, &f.form));
    if !form_ok {
        return login_form(
            &s,
            &headers,
            &next,
            Some(t["login_expired"]),
            StatusCode::FORBIDDEN,
        );
    }
    let token = f.token.trim();
    let record = match s.store.token_by_hash(&tokens::hash(token)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "token look-up failed at console login");
            return login_form(
                &s,
                &headers,
                &next,
                Some(t["store_down"]),
                StatusCode::SERVICE_UNAVAILABLE,
            );
        }
    };
    let now = jiff::Timestamp::now();
    let Some(record) = record.filter(|r| !token.is_empty() && r.is_active(&now)) else {
        tracing::warn!("console login refused: unknown, revoked or expired token");
        return login_form(
            &s,
            &headers,
            &next,
            Some(t["login_refused"]),
            StatusCode::UNAUTHORIZED,
        );
    };
    open_session(
        &s,
        &headers,
        next,
        format!("token:{}", record.id),
        Some(record.id.clone()),
        record.role.clone(),
    )
    .await
}

/// Stores a session for `subject` with `role` and sends the browser on to `next` with its cookie
/// (a clinician landing on `/` goes to `/patients`). The token login and the provider login
/// both end here.
pub(super) async fn open_session(
    s: &ConsoleState,
    headers: &HeaderMap,
    next: String,
    subject: String,
    token_id: Option<String>,
    role: String,
) -> Response {
    let t = lang_of(headers).strings();
    let now = jiff::Timestamp::now();
    let hours = s.config.session_hours.max(1);
    let expires = now + jiff::SignedDuration::from_hours(hours as i64);
    let session_secret = secret();
    let session = SessionRecord {
        subject,
        token_id,
        role,
        csrf: secret(),
        created_at: now.to_string(),
        expires_at: expires.to_string(),
    };
    if let Err(e) = s
        .store
        .create_session(&tokens::hash(&session_secret), &session)
        .await
    {
        tracing::error!(error = %e, "a console session could not be stored");
        return login_form(
            s,
            headers,
            &next,
            Some(t["store_down"]),
            StatusCode::SERVICE_UNAVAILABLE,
        );
    }
    tracing::info!(subject = %session.subject, role = %session.role, "console session opened");
    let landing = match (next.as_str(), Role::parse(&session.role)) {
        ("/", Some(Role::Clinician)) => "/patients".to_string(),
        _ => next,
    };
    let mut resp = see_other(&landing);
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        cookie_header(
            SESSION_COOKIE,
            &session_secret,
            hours * 3600,
            s.config.secure_cookie,
        ),
    );
    h.append(
        header::SET_COOKIE,
        cookie_header(LOGIN_COOKIE, "", 0, s.config.secure_cookie),
    );
    resp
}

/// `POST /logout`: the session row goes, and the cookie with it.
pub(super) async fn logout(
    State(s): State<ConsoleState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    if let Some(secret) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = s.store.delete_session(&tokens::hash(secret)).await
    {
        tracing::error!(error = %e, "a console session could not be ended");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the session could not be ended now",
        )
            .into_response();
    }
    tracing::info!(subject = %who.subject, "console session closed");
    let mut resp = see_other("/login");
    resp.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(SESSION_COOKIE, "", 0, s.config.secure_cookie),
    );
    resp
}

#[derive(Deserialize)]
pub(super) struct LanguageQuery {
    set: Option<String>,
    next: Option<String>,
}

/// `GET /language?set=vi&next=/messages`: remembers the language (a year) and goes back.
pub(super) async fn language(State(s): State<ConsoleState>, Query(q): Query<LanguageQuery>) -> Response {
    let next = local_path(q.next.as_deref());
    let mut resp = see_other(&next);
    if let Some(lang) = q.set.as_deref().and_then(Lang::parse) {
        let secure = if s.config.secure_cookie { "; Secure" } else { "" };
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; SameSite=Lax; Path=/; Max-Age=31536000{secure}",
            lang.code()
        )) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// `GET /assets/{file}`: the stylesheet and the script, embedded.
pub(super) async fn assets(Path(file): Path<String>) -> Response {
    match super::asset(&file) {
        Some((mime, body)) => {
            let mut resp = with_page_headers(body.into_response());
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            resp
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
