//! Logging in to the console through the clinic's identity provider: the OpenID Connect
//! authorization-code flow with PKCE (S256), `state` and `nonce`.
//!
//! `GET /login/oidc` makes the state, the nonce and the PKCE verifier, keeps them in a
//! short-lived cookie (`HttpOnly; SameSite=Lax; Path=/login/oidc`: Lax, since the provider
//! sends the browser back from another site) and sends the browser to the provider.
//! `GET /login/oidc/callback` checks the state against the cookie, exchanges the code (with the
//! verifier) at the token endpoint, checks the ID token with the API's verifier (issuer,
//! audience, expiry, signature) and its nonce, and opens a console session for
//! `oidc:<subject>` with the role the token grants. Every failure shows the login page with a
//! reason; no code, token or claim value reaches a log line.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::session::{login_form, open_session, secret};
use super::{ConsoleState, lang_of, local_path, see_other};
use crate::api::auth::{cookie, same_secret};
use crate::api::oidc::ROLE_NAMES;

/// The cookie holding one login's state, nonce, PKCE verifier and return path.
const FLOW_COOKIE: &str = "carehub_oidc";
/// How long a browser may take at the provider.
const FLOW_SECS: u64 = 600;

#[derive(Serialize, Deserialize)]
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
}

fn flow_cookie(value: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{FLOW_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/login/oidc; Max-Age={max_age_secs}{secure}"
    ))
    .expect("cookie values are base64url")
}

fn read_flow(headers: &HeaderMap) -> Option<Flow> {
    let raw = cookie(headers, FLOW_COOKIE).filter(|c| !c.is_empty())?;
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The PKCE challenge of `verifier` (S256).
fn challenge(verifier: &str) -> String {
    let digest = Sha256::digest(verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..])
}

#[derive(Deserialize)]
pub(super) struct StartQuery {
    next: Option<String>,
}

/// `GET /login/oidc`: to the provider's authorization endpoint.
pub(super) async fn start(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Response {
    let next = local_path(q.next.as_deref());
    let t = lang_of(&headers).strings();
    let Some(oidc) = s.oidc_login() else {
        return login_form(&s, &headers, &next, Some(t["oidc_off"]), StatusCode::NOT_FOUND);
    };
    let (authorize, _) = match oidc.login_endpoints().await {
        Ok(endpoints) => endpoints,
        Err(reason) => {
            tracing::warn!(%reason, "console login: the identity provider's endpoints are unknown");
            return login_form(&s, &headers, &next, Some(t["oidc_down"]), StatusCode::BAD_GATEWAY);
        }
    };
    let config = oidc.config();
    let flow = Flow {
        state: secret(),
        nonce: secret(),
        verifier: secret(),
        next,
    };
    let mut scopes = vec!["openid".to_string()];
    scopes.extend(config.scopes.iter().filter(|s| *s != "openid").cloned());
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", config.client_id.as_deref().unwrap_or_default())
        .append_pair("redirect_uri", config.redirect_url.as_deref().unwrap_or_default())
        .append_pair("scope", &scopes.join(" "))
        .append_pair("state", &flow.state)
        .append_pair("nonce", &flow.nonce)
        .append_pair("code_challenge", &challenge(&flow.verifier))
        .append_pair("code_challenge_method", "S256")
        .finish();
    let sep = if authorize.contains('?') { '&' } else { '?' };
    let value = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&flow).expect("a flow serialises"));
    let mut resp = see_other(&format!("{authorize}{sep}{query}"));
    resp.headers_mut().append(
        header::SET_COOKIE,
        flow_cookie(&value, FLOW_SECS, s.config.secure_cookie),
    );
    resp
}

#[derive(Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /login/oidc/callback?code&state`: the provider's answer, a session or the login page.
pub(super) async fn callback(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let t = lang_of(&headers).strings();
    let flow = read_flow(&headers);
    let next = flow
        .as_ref()
        .map(|f| local_path(Some(&f.next)))
        .unwrap_or_else(|| "/".into());
    let refuse = |message: &str, status: StatusCode| {
        let mut resp = login_form(&s, &headers, &next, Some(message), status);
        resp.headers_mut()
            .append(header::SET_COOKIE, flow_cookie("", 0, s.config.secure_cookie));
        resp
    };
    let Some(oidc) = s.oidc_login() else {
        return refuse(t["oidc_off"], StatusCode::NOT_FOUND);
    };
    let state_ok = match (&flow, q.state.as_deref()) {
        (Some(f), Some(state)) => !state.is_empty() && same_secret(&f.state, state),
        _ => false,
    };
    if !state_ok {
        tracing::warn!(
            "console login through the identity provider refused: state missing or not this browser's"
        );
        return refuse(t["oidc_state"], StatusCode::BAD_REQUEST);
    }
    let flow = flow.expect("checked with the state");
    if let Some(error) = q.error.as_deref() {
        // The provider's error codes are words like access_denied; keep only those characters.
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        tracing::warn!(%error, "console login: the identity provider answered with an error");
        return refuse(t["oidc_refused"], StatusCode::UNAUTHORIZED);
    }
    let Some(code) = q.code.as_deref().filter(|c| !c.is_empty()) else {
        return refuse(t["oidc_refused"], StatusCode::BAD_REQUEST);
    };
    let token_endpoint = match oidc.login_endpoints().await {
        Ok((_, token)) => token,
        Err(reason) => {
            tracing::warn!(%reason, "console login: the identity provider's endpoints are unknown");
            return refuse(t["oidc_down"], StatusCode::BAD_GATEWAY);
        }
    };
    let id_token = match oidc.exchange_code(&token_endpoint, code, &flow.verifier).await {
        Ok(token) => token,
        Err(reason) => {
            tracing::warn!(%reason, "console login: the code exchange failed");
            return refuse(t["oidc_down"], StatusCode::BAD_GATEWAY);
        }
    };
    let identity = match oidc.verify_id_token(&id_token, &flow.nonce).await {
        Ok(identity) => identity,
        Err(e) => {
            tracing::warn!(reason = %e, "console login: the ID token was refused");
            let status = if e.is_unavailable() {
                StatusCode::BAD_GATEWAY
            } else {
                StatusCode::UNAUTHORIZED
            };
            return refuse(t["oidc_refused"], status);
        }
    };
    // One role per session: the first the token grants in carehub's order of roles.
    let Some(role) = ROLE_NAMES.iter().find(|r| identity.roles.iter().any(|g| g == *r)) else {
        tracing::warn!("console login: the identity provider's token grants no carehub role");
        return refuse(t["oidc_no_role"], StatusCode::FORBIDDEN);
    };
    let mut resp = open_session(
        &s,
        &headers,
        flow.next,
        format!("oidc:{}", identity.subject),
        None,
        role.to_string(),
    )
    .await;
    resp.headers_mut()
        .append(header::SET_COOKIE, flow_cookie("", 0, s.config.secure_cookie));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_s256() {
        // BASE64URL(SHA-256(verifier)) without padding (RFC 7636 §4.2), the value computed
        // apart with Python's hashlib and base64.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOg-cM"),
            "sRzfUMiHQa7xH23I9wwZ-6DGdBkBx4khJ5pbpDvQbTA"
        );
    }

    #[test]
    fn the_flow_cookie_is_lax_httponly_and_short() {
        let v = flow_cookie("abc", FLOW_SECS, true);
        let v = v.to_str().unwrap();
        assert!(v.contains("HttpOnly") && v.contains("SameSite=Lax") && v.contains("Secure"));
        assert!(v.contains("Path=/login/oidc") && v.contains("Max-Age=600"));
    }
}
