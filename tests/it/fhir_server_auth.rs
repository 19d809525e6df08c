//! Authentication of the local FHIR test server (`fhir_server.rs`): which searches it lets
//! through, and its token endpoint (OAuth2 client credentials, SMART Backend Services).

use super::*;

impl ServerState {
    /// The `WWW-Authenticate` challenge when `headers` do not carry the credentials required.
    pub(super) fn refusal(&self, headers: &HeaderMap) -> Option<&'static str> {
        let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        match &self.auth {
            Auth::None => None,
            Auth::Basic { user, password } => match authorization.and_then(basic_credentials) {
                Some((u, p)) if u == *user && p == *password => None,
                _ => Some("Basic realm=\"fhir\""),
            },
            Auth::OAuth2 { .. } | Auth::Smart { .. } => {
                let token = authorization.and_then(|v| strip_scheme(v, "Bearer"));
                match token.and_then(|t| self.tokens.get(t)) {
                    Some(expires) if Instant::now() < *expires => None,
                    _ => Some("Bearer error=\"invalid_token\""),
                }
            }
        }
    }

    /// A SMART Backend Services token request: the assertion's signature and claims checked.
    fn answer_smart(&mut self, body: &str) -> Response {
        use base64::Engine;
        let Auth::Smart {
            client_id,
            public_key,
            ttl_secs,
        } = &self.auth
        else {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "not SMART");
        };
        let form = form_pairs(body);
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let refuse = |why: &str| oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why);
        if field("grant_type").as_deref() != Some("client_credentials")
            || field("client_assertion_type").as_deref()
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "not a SMART backend request",
            );
        }
        let Some(assertion) = field("client_assertion") else {
            return refuse("no client_assertion");
        };
        let parts: Vec<&str> = assertion.split('.').collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (Ok(header), Ok(claims), Ok(signature)) = (
            b64.decode(parts.first().copied().unwrap_or("")),
            b64.decode(parts.get(1).copied().unwrap_or("")),
            b64.decode(parts.get(2).copied().unwrap_or("")),
        ) else {
            return refuse("the assertion is not a JWT");
        };
        let header: Value = serde_json::from_slice(&header).unwrap_or(Value::Null);
        let claims: Value = serde_json::from_slice(&claims).unwrap_or(Value::Null);
        let signed = format!("{}.{}", parts[0], parts[1]);
        let key =
            ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P384_SHA384_FIXED, public_key);
        if header["alg"] != "ES384" || key.verify(signed.as_bytes(), &signature).is_err() {
            return refuse("bad signature");
        }
        let now = Timestamp::now().as_second();
        if claims["iss"] != client_id.as_str()
            || claims["sub"] != client_id.as_str()
            || claims["aud"] != format!("{}/token", self.base.trim_end_matches("/fhir")).as_str()
            || claims["exp"].as_i64().is_none_or(|exp| exp <= now)
        {
            return refuse("wrong claims");
        }
        let ttl_secs = *ttl_secs;
        self.stats.tokens_issued += 1;
        let token = format!("carehub-test-token-{}", self.stats.tokens_issued);
        self.tokens
            .insert(token.clone(), Instant::now() + Duration::from_secs(ttl_secs));
        (
            StatusCode::OK,
            axum::Json(json!({"access_token": token, "token_type": "bearer", "expires_in": ttl_secs})),
        )
            .into_response()
    }

    /// The answer to a token request: client credentials in the form body or by basic auth.
    pub(super) fn answer_token(&mut self, headers: &HeaderMap, body: &str) -> Response {
        if matches!(self.auth, Auth::Smart { .. }) {
            return self.answer_smart(body);
        }
        let Auth::OAuth2 {
            client_id,
            client_secret,
            ttl_secs,
        } = &self.auth
        else {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "this server does not use OAuth2",
            );
        };
        let form = form_pairs(body);
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        if field("grant_type") != Some("client_credentials") {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only client_credentials is supported",
            );
        }
        let by_form = field("client_id") == Some(client_id.as_str())
            && field("client_secret") == Some(client_secret.as_str());
        // RFC 6749 §2.3.1 form-encodes the id and secret before base64; accept them either way.
        let by_basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(basic_credentials)
            .is_some_and(|(id, secret)| {
                (id == *client_id && secret == *client_secret)
                    || (form_decode(&id) == *client_id && form_decode(&secret) == *client_secret)
            });
        if !(by_form || by_basic) {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "unknown client or wrong secret",
            );
        }
        let ttl_secs = *ttl_secs;
        self.stats.tokens_issued += 1;
        let token = format!("carehub-test-token-{}", self.stats.tokens_issued);
        self.tokens
            .insert(token.clone(), Instant::now() + Duration::from_secs(ttl_secs));
        let mut answer = json!({"access_token": token, "token_type": "bearer", "expires_in": ttl_secs});
        if let Some(scope) = field("scope") {
            answer["scope"] = json!(scope);
        }
        (StatusCode::OK, axum::Json(answer)).into_response()
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// The credentials in an `Authorization: Basic …` value.
fn basic_credentials(authorization: &str) -> Option<(String, String)> {
    let decoded = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        strip_scheme(authorization, "Basic")?,
    )
    .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The rest of an `Authorization` value after `scheme` (matched case-insensitively) and a space.
fn strip_scheme<'a>(authorization: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = authorization.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}
