//! OIDC bearer tokens: checks a JWT issued by the clinic's identity provider (Keycloak, Azure
//! AD / Entra ID, any OpenID Connect provider) and says who it names and which carehub roles it
//! grants.
//!
//! The auth middleware calls [`OidcVerifier::verify`] for a bearer token shaped like a JWT
//! (three dot-separated base64url parts); carehub's own opaque tokens never come here. The
//! verifier fetches the provider's signing keys (its JWKS, found through
//! `{issuer}/.well-known/openid-configuration` unless `jwks_url` names it), caches them, and
//! refetches when a token names a key it does not know (key rotation) — at most once per
//! `jwks_min_refetch_secs`, so a flood of made-up key ids cannot hammer the provider.
//!
//! JWT parsing and the claim checks (`exp`, `nbf`, `iss`, `aud`, leeway) are the
//! `jsonwebtoken` crate's; the signature arithmetic is `ring`'s, plugged into `jsonwebtoken` as
//! its crypto provider (see `oidc/ring_provider.rs` and docs/security.md for why).
//!
//! This room must not: accept an unsigned (`alg: none`) or HMAC-signed token, use a key of
//! another type than the token's algorithm asks for, or put a token or any claim's value in an
//! error or a log line (claims carry names and e-mail addresses). It does no authorisation:
//! what a role may do is `access.rs`'s business.

use std::collections::BTreeMap;
use std::sync::{Arc, Once, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use config::check_provider_url;

mod config;
mod ring_provider;

pub use config::{Audiences, OidcConfig, ROLE_NAMES, SigningAlgorithm};

/// The largest JWKS or discovery document read (real ones are a few kilobytes).
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Who a verified token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// The value of the configured `subject_claim`.
    pub subject: String,
    /// carehub role names granted (after `role_map`; only names in [`ROLE_NAMES`]), sorted,
    /// without repeats; may be empty.
    pub roles: Vec<String>,
    /// The issuer the token came from (the configured one).
    pub issuer: String,
}

/// Why a token was refused. The words fit a 401 body and a log line; they never carry the token
/// or a claim's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("token signing algorithm not accepted")]
    AlgorithmNotAccepted,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("signing key does not match the token's algorithm")]
    KeyMismatch,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("issuer not accepted")]
    Issuer,
    #[error("audience not accepted")]
    Audience,
    /// A required claim is absent or of the wrong type; holds the claim's name.
    #[error("token lacks a valid {0} claim")]
    Claim(String),
    /// The provider's JWKS (or discovery document) could not be fetched and no keys are cached.
    #[error("the identity provider's keys cannot be fetched")]
    KeysUnavailable,
}

impl OidcError {
    /// True when the fault is the provider's reachability, not the token (answer 503, not 401).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, OidcError::KeysUnavailable)
    }
}

/// True when `token` has the shape of a JWT: three non-empty base64url parts.
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = 0;
    for part in token.split('.') {
        parts += 1;
        if part.is_empty()
            || !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
    }
    parts == 3
}

/// Checks bearer tokens against one OIDC provider. Cheap to share behind an `Arc`; concurrent
/// calls share one cached key set and one fetch.
pub struct OidcVerifier {
    config: OidcConfig,
    algorithms: Vec<SigningAlgorithm>,
    http: reqwest::Client,
    /// The keys last fetched; read without waiting.
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Held while fetching, so that concurrent verifications share one fetch.
    fetch: tokio::sync::Mutex<FetchState>,
}

/// What the single fetcher remembers between fetches.
#[derive(Default)]
struct FetchState {
    /// When a fetch was last tried (whether it worked or not).
    last_attempt: Option<Instant>,
    /// The JWKS URL found through discovery.
    discovered_jwks_url: Option<String>,
}

/// A fetched JWKS: the usable signing keys.
struct KeySet {
    keys: Vec<SigningKey>,
    fetched_at: Instant,
}

struct SigningKey {
    kid: Option<String>,
    kind: KeyKind,
    /// The `alg` the JWK pins, when it pins one.
    alg: Option<String>,
    decoding: DecodingKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
}

impl KeySet {
    /// The key a token's `kid` names, or the only key when it names none.
    fn find(&self, kid: Option<&str>) -> Option<&SigningKey> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }
}

/// The parts of a JOSE header read before the key is chosen.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

static INSTALL_PROVIDER: Once = Once::new();

impl OidcVerifier {
    /// A verifier for `config` (which should have passed [`OidcConfig::check`]) fetching through
    /// `http`. Nothing is fetched until the first token.
    pub fn new(config: OidcConfig, http: reqwest::Client) -> OidcVerifier {
        INSTALL_PROVIDER.call_once(|| {
            // Fails only when a provider is installed already; jsonwebtoken is built without its
            // own backends, so that one is ours.
            let _ = ring_provider::PROVIDER.install_default();
        });
        let mut algorithms = config.algorithms.clone();
        algorithms.dedup();
        OidcVerifier {
            config,
            algorithms,
            http,
            keys: RwLock::new(None),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        }
    }

    /// The settings this verifier runs with.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Checks `token` and returns who it names. Fetches the provider's keys on first use, when
    /// the cached set is older than `jwks_cache_secs`, and when the token names an unknown key.
    pub async fn verify(&self, token: &str) -> Result<OidcIdentity, OidcError> {
        let audiences = self.config.audience.as_slice().to_vec();
        self.verify_for(token, &audiences)
            .await
            .map(|(identity, _)| identity)
    }

    /// Checks an ID token from the console's login: signed by the provider, for the console's
    /// client (`client_id`, or one of the configured audiences), not expired, carrying `nonce`.
    pub async fn verify_id_token(&self, token: &str, nonce: &str) -> Result<OidcIdentity, OidcError> {
        let mut audiences = self.config.audience.as_slice().to_vec();
        if let Some(client) = &self.config.client_id {
            audiences.push(client.clone());
        }
        let (identity, claims) = self.verify_for(token, &audiences).await?;
        let claimed = claims.get("nonce").and_then(Value::as_str).unwrap_or_default();
        if nonce.is_empty() || !super::auth::same_secret(claimed, nonce) {
            return Err(OidcError::Claim("nonce".into()));
        }
        Ok(identity)
    }

    async fn verify_for(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<(OidcIdentity, serde_json::Map<String, Value>), OidcError> {
        if !looks_like_jwt(token) {
            return Err(OidcError::Malformed);
        }
        let header = read_header(token)?;
        let alg: Algorithm = header.alg.parse().map_err(|_| OidcError::AlgorithmNotAccepted)?;
        let alg = SigningAlgorithm::from_jwt(alg)
            .filter(|a| self.algorithms.contains(a))
            .ok_or(OidcError::AlgorithmNotAccepted)?;

        let keys = self.keys_for(header.kid.as_deref()).await?;
        let key = keys.find(header.kid.as_deref()).ok_or(OidcError::UnknownKey)?;
        if !key_fits(key, alg) {
            return Err(OidcError::KeyMismatch);
        }

        let mut validation = Validation::new(alg.jwt());
        validation.algorithms = vec![alg.jwt()];
        validation.leeway = self.config.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| map_jwt_error(e.kind()))?;
        let claims = data.claims;

        // `iss` as a list would pass jsonwebtoken's subset check; OIDC says one string.
        if claims.get("iss").and_then(Value::as_str) != Some(self.config.issuer.as_str()) {
            return Err(OidcError::Issuer);
        }
        let subject = claim_at(&claims, &self.config.subject_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| OidcError::Claim(self.config.subject_claim.clone()))?
            .to_string();
        let roles = roles_of(
            claim_at(&claims, &self.config.role_claim),
            self.config.role_map.as_ref(),
        );
        Ok((
            OidcIdentity {
                subject,
                roles,
                issuer: self.config.issuer.clone(),
            },
            claims,
        ))
    }

    /// The provider's authorization and token endpoints: the configured ones, else the
    /// discovery document's.
    pub async fn login_endpoints(&self) -> Result<(String, String), String> {
        if let (Some(a), Some(t)) = (&self.config.authorization_endpoint, &self.config.token_endpoint) {
            return Ok((a.clone(), t.clone()));
        }
        let doc = self.discovery().await?;
        let authorization = match (&self.config.authorization_endpoint, &doc.authorization_endpoint) {
            (Some(a), _) | (None, Some(a)) => a.clone(),
            (None, None) => return Err("the discovery document names no authorization_endpoint".into()),
        };
        let token = match (&self.config.token_endpoint, &doc.token_endpoint) {
            (Some(t), _) | (None, Some(t)) => t.clone(),
            (None, None) => return Err("the discovery document names no token_endpoint".into()),
        };
        for url in [&authorization, &token] {
            if let Some(problem) = check_provider_url(url) {
                return Err(format!("the discovery document's endpoint: {problem}"));
            }
        }
        Ok((authorization, token))
    }

    /// Exchanges an authorization code for the ID token (`client_secret_post` when a secret is
    /// configured, PKCE always). The error words carry no code, token or secret.
    pub async fn exchange_code(
        &self,
        token_endpoint: &str,
        code: &str,
        verifier: &str,
    ) -> Result<String, String> {
        let client_id = self.config.client_id.as_deref().unwrap_or_default();
        let redirect = self.config.redirect_url.as_deref().unwrap_or_default();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ];
        if let Some(secret) = &self.config.client_secret {
            form.push(("client_secret", secret.expose()));
        }
        let response = self
            .http
            .post(token_endpoint)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .timeout(Duration::from_secs(self.config.http_timeout_secs))
            .send()
            .await
            .map_err(|e| format!("the token endpoint cannot be reached ({})", e.without_url()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the token endpoint answered HTTP {}", status.as_u16()));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("the token endpoint's answer was cut ({})", e.without_url()))?;
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err("the token endpoint's answer is too large".into());
        }
        #[derive(Deserialize)]
        struct TokenAnswer {
            id_token: Option<String>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|_| "the token endpoint's answer is not valid JSON".to_string())?;
        answer
            .id_token
            .ok_or_else(|| "the token endpoint's answer holds no id_token".to_string())
    }

    /// The cached key set, fetched or refreshed first when needed and allowed.
    async fn keys_for(&self, kid: Option<&str>) -> Result<Arc<KeySet>, OidcError> {
        let cache_for = Duration::from_secs(self.config.jwks_cache_secs);
        let cached = self.cached();
        if let Some(set) = &cached {
            let has_key = set.find(kid).is_some();
            let fresh = set.fetched_at.elapsed() < cache_for;
            if has_key && fresh {
                return Ok(set.clone());
            }
            if has_key {
                // Stale but usable: refresh unless someone else is doing it right now.
                let Ok(mut state) = self.fetch.try_lock() else {
                    return Ok(set.clone());
                };
                self.refetch_if_allowed(&mut state).await;
                return Ok(self.cached().unwrap_or_else(|| set.clone()));
            }
        }
        let mut state = self.fetch.lock().await;
        // Another verification may have fetched while this one waited.
        if let Some(set) = self.cached()
            && set.find(kid).is_some()
            && set.fetched_at.elapsed() < cache_for
        {
            return Ok(set);
        }
        self.refetch_if_allowed(&mut state).await;
        self.cached().ok_or(OidcError::KeysUnavailable)
    }

    fn cached(&self) -> Option<Arc<KeySet>> {
        match self.keys.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Fetches the JWKS unless a fetch was tried within `jwks_min_refetch_secs`. A failure
    /// keeps the cached set and is logged.
    async fn refetch_if_allowed(&self, state: &mut FetchState) {
        let min_gap = Duration::from_secs(self.config.jwks_min_refetch_secs);
        if state.last_attempt.is_some_and(|t| t.elapsed() < min_gap) {
            return;
        }
        state.last_attempt = Some(Instant::now());
        match self.fetch_keys(state).await {
            Ok(set) => {
                let set = Some(Arc::new(set));
                match self.keys.write() {
                    Ok(mut guard) => *guard = set,
                    Err(poisoned) => *poisoned.into_inner() = set,
                }
            }
            Err(reason) => {
                // A later attempt looks the JWKS URL up again (the provider may have moved it).
                state.discovered_jwks_url = None;
                tracing::warn!(
                    issuer = %self.config.issuer,
                    reason = %reason,
                    "The identity provider's signing keys could not be fetched; cached keys, if any, stay in use."
                );
            }
        }
    }

    /// One fetch: discovery when needed, then the JWKS.
    async fn fetch_keys(&self, state: &mut FetchState) -> Result<KeySet, String> {
        let url = match (&self.config.jwks_url, &state.discovered_jwks_url) {
            (Some(url), _) | (None, Some(url)) => url.clone(),
            (None, None) => {
                let url = self.discover().await?;
                state.discovered_jwks_url = Some(url.clone());
                url
            }
        };
        let body = self.get(&url).await?;
        let jwks: RawJwks =
            serde_json::from_slice(&body).map_err(|e| format!("the JWKS is not valid JSON ({e})"))?;
        let keys = jwks.keys.iter().filter_map(signing_key).collect::<Vec<_>>();
        tracing::debug!(
            issuer = %self.config.issuer,
            keys = keys.len(),
            listed = jwks.keys.len(),
            "Fetched the identity provider's signing keys."
        );
        Ok(KeySet {
            keys,
            fetched_at: Instant::now(),
        })
    }

    /// The `jwks_uri` of the provider's discovery document.
    async fn discover(&self) -> Result<String, String> {
        let doc = self.discovery().await?;
        if let Some(problem) = check_provider_url(&doc.jwks_uri) {
            return Err(format!("the discovery document's jwks_uri: {problem}"));
        }
        Ok(doc.jwks_uri)
    }

    /// The provider's discovery document, for the configured issuer.
    async fn discovery(&self) -> Result<Discovery, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let body = self.get(&url).await?;
        let doc: Discovery = serde_json::from_slice(&body)
            .map_err(|e| format!("the discovery document is not valid ({e})"))?;
        if doc.issuer != self.config.issuer {
            return Err("the discovery document names another issuer".into());
        }
        Ok(doc)
    }

    /// A GET with the configured timeout, refusing bodies over [`MAX_DOCUMENT_BYTES`].
    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(Duration::from_secs(self.config.http_timeout_secs))
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("GET {url}: {e}"))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!(
                    "GET {url}: the answer exceeds {MAX_DOCUMENT_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
}

/// A JWKS read key by key, so that one key of a kind carehub does not know (or a malformed one)
/// does not hide the others.
#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<Value>,
}

/// The JWK as a signing key carehub can use, or `None` (encryption keys, symmetric keys,
/// unknown kinds, malformed ones).
fn signing_key(raw: &Value) -> Option<SigningKey> {
    let jwk: Jwk = serde_json::from_value(raw.clone()).ok()?;
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyKind::Rsa,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => KeyKind::P256,
            EllipticCurve::P384 => KeyKind::P384,
            _ => return None,
        },
        _ => return None,
    };
    let decoding = DecodingKey::from_jwk(&jwk).ok()?;
    Some(SigningKey {
        kid: jwk.common.key_id.clone(),
        kind,
        alg: raw.get("alg").and_then(Value::as_str).map(str::to_string),
        decoding,
    })
}

/// Whether `key` may check a signature made with `alg`: the key type must match, and a JWK that
/// pins an `alg` must pin this one.
fn key_fits(key: &SigningKey, alg: SigningAlgorithm) -> bool {
    use SigningAlgorithm::*;
    let kind_fits = match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => key.kind == KeyKind::Rsa,
        ES256 => key.kind == KeyKind::P256,
        ES384 => key.kind == KeyKind::P384,
    };
    kind_fits && key.alg.as_deref().is_none_or(|a| a == format!("{alg:?}"))
}

fn read_header(token: &str) -> Result<RawHeader, OidcError> {
    let encoded = token.split('.').next().ok_or(OidcError::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| OidcError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| OidcError::Malformed)
}

/// jsonwebtoken's error, in carehub's words (its own messages may quote claim values).
fn map_jwt_error(kind: &ErrorKind) -> OidcError {
    match kind {
        ErrorKind::InvalidSignature => OidcError::BadSignature,
        ErrorKind::ExpiredSignature => OidcError::Expired,
        ErrorKind::ImmatureSignature => OidcError::NotYetValid,
        ErrorKind::InvalidIssuer => OidcError::Issuer,
        ErrorKind::InvalidAudience => OidcError::Audience,
        ErrorKind::MissingRequiredClaim(name) | ErrorKind::InvalidClaimFormat(name) => {
            OidcError::Claim(name.clone())
        }
        ErrorKind::InvalidAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => OidcError::AlgorithmNotAccepted,
        ErrorKind::InvalidKeyFormat
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_) => OidcError::KeyMismatch,
        _ => OidcError::Malformed,
    }
}

/// The claim named `path`: a top-level claim of that exact name first (names such as
/// `https://example.org/roles` hold dots), else the dotted path through nested objects.
fn claim_at<'a>(claims: &'a serde_json::Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// carehub roles from the role claim's value: a string or a list of strings, mapped through
/// `role_map` when there is one, kept only when a carehub role name.
fn roles_of(value: Option<&Value>, role_map: Option<&BTreeMap<String, String>>) -> Vec<String> {
    let values: Vec<&str> = match value {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mut roles: Vec<String> = values
        .into_iter()
        .filter_map(|v| match role_map {
            Some(map) => map.get(v).map(String::as_str),
            None => Some(v),
        })
        .filter(|r| ROLE_NAMES.contains(r))
        .map(str::to_string)
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roles_come_from_a_string_or_a_list_through_the_map() {
        let claims = json!({"roles": "ops", "realm_access": {"roles": ["carehub-admin", "offline_access", "nurse"]},
            "https://example.org/roles": ["auditor", "superuser"]});
        let claims = claims.as_object().unwrap();
        assert_eq!(roles_of(claim_at(claims, "roles"), None), vec!["ops"]);
        let map: BTreeMap<String, String> = [("carehub-admin", "admin"), ("nurse", "clinician")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(
            roles_of(claim_at(claims, "realm_access.roles"), Some(&map)),
            vec!["admin", "clinician"]
        );
        // Without a map, values that are no carehub role are dropped.
        assert_eq!(
            roles_of(claim_at(claims, "https://example.org/roles"), None),
            vec!["auditor"]
        );
        assert_eq!(roles_of(claim_at(claims, "groups"), None), Vec::<String>::new());
    }

    #[test]
    fn jwt_shape_is_three_base64url_parts() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(!looks_like_jwt("chub_abcdef"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a+b.c.d"));
    }

    #[test]
    fn error_words_carry_no_claim_values() {
        assert_eq!(OidcError::Expired.to_string(), "token expired");
        assert_eq!(OidcError::Issuer.to_string(), "issuer not accepted");
        assert_eq!(OidcError::UnknownKey.to_string(), "unknown signing key");
        assert_eq!(
            OidcError::KeysUnavailable.to_string(),
            "the identity provider's keys cannot be fetched"
        );
        assert_eq!(
            map_jwt_error(&ErrorKind::MissingRequiredClaim("exp".into())).to_string(),
            "token lacks a valid exp claim"
        );
    }
}
