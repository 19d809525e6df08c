//! The HTTP side of a FHIR pull: authenticated GETs of search pages, retried with backoff.
//!
//! Connect errors, timeouts, 429 and 5xx answers are retried: the wait doubles from
//! `initial_backoff_ms` with jitter, up to `max_backoff_secs`, and a `Retry-After` (seconds or
//! an HTTP date) is honoured within that bound. A 401 with OAuth2 fetches a new token once. Any
//! other answer fails the request at once. Errors carry statuses and URLs without query
//! strings — never resource content.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::Mutex;

use super::config::{FhirAuth, FhirConfig};
use crate::retry_after::retry_after;

/// Why a request failed after its attempts.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("{url}: {reason} (after {attempts} attempt(s))")]
    Unreachable {
        url: String,
        reason: String,
        attempts: u32,
    },
    #[error("{url}: HTTP {status}{}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status {
        url: String,
        status: u16,
        detail: Option<String>,
    },
    #[error("{url}: the answer is not a FHIR Bundle ({reason})")]
    NotABundle { url: String, reason: String },
    #[error("token endpoint: {0}")]
    Token(String),
    #[error("{url}: {reason}")]
    Paging { url: String, reason: String },
}

/// A cached OAuth2 access token.
struct Token {
    value: String,
    expires: std::time::Instant,
}

pub struct FhirClient {
    http: reqwest::Client,
    auth: FhirAuth,
    token: Mutex<Option<Token>>,
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

/// A URL fit for logs: scheme, host, path; no query (search parameters can name patients).
pub fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "(bad URL)".into(),
    }
}

impl FhirClient {
    pub fn new(cfg: &FhirConfig) -> Result<FhirClient, reqwest::Error> {
        // TLS through rustls with the ring provider (built without aws-lc's C toolchain); the
        // first client installs it for the process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
            .read_timeout(Duration::from_secs(cfg.read_timeout_secs))
            .timeout(Duration::from_secs(cfg.read_timeout_secs.saturating_mul(2)))
            .user_agent(concat!("carehub/", env!("CARGO_PKG_VERSION")))
            .gzip(true)
            .build()?;
        Ok(FhirClient {
            http,
            auth: cfg.auth.clone(),
            token: Mutex::new(None),
            max_attempts: cfg.max_attempts.max(1),
            initial_backoff: Duration::from_millis(cfg.initial_backoff_ms),
            max_backoff: Duration::from_secs(cfg.max_backoff_secs),
        })
    }

    /// GETs a search page and reads it as a Bundle.
    pub async fn get_bundle(&self, url: &str) -> Result<Value, PullError> {
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            attempt += 1;
            let mut req = self.http.get(url).header("accept", "application/fhir+json");
            req = self.authorize(req).await?;
            let wait = match req.send().await {
                Err(e) => {
                    let reason = if e.is_timeout() {
                        "timed out".to_string()
                    } else {
                        "connection failed".to_string()
                    };
                    if attempt >= self.max_attempts {
                        return Err(PullError::Unreachable {
                            url: shown(url),
                            reason,
                            attempts: attempt,
                        });
                    }
                    None
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if resp.status().is_success() {
                        let body = resp.bytes().await.map_err(|_| PullError::Unreachable {
                            url: shown(url),
                            reason: "the answer was cut off".into(),
                            attempts: attempt,
                        })?;
                        let v: Value = serde_json::from_slice(&body).map_err(|e| PullError::NotABundle {
                            url: shown(url),
                            reason: format!("not JSON: line {} column {}", e.line(), e.column()),
                        })?;
                        if v["resourceType"] != "Bundle" {
                            return Err(PullError::NotABundle {
                                url: shown(url),
                                reason: "resourceType is not Bundle".into(),
                            });
                        }
                        return Ok(v);
                    }
                    if status == 401
                        && matches!(self.auth, FhirAuth::Oauth2ClientCredentials { .. })
                        && !refreshed
                    {
                        // The token expired early or was revoked: one new token, then once more.
                        *self.token.lock().await = None;
                        refreshed = true;
                        attempt -= 1;
                        continue;
                    }
                    let retryable = status == 429 || status >= 500;
                    if !retryable || attempt >= self.max_attempts {
                        return Err(PullError::Status {
                            url: shown(url),
                            status,
                            detail: (attempt > 1).then(|| format!("after {attempt} attempts")),
                        });
                    }
                    retry_after(resp.headers())
                }
            };
            tokio::time::sleep(self.backoff(attempt, wait)).await;
        }
    }

    /// The wait before attempt `attempt + 1`: the server's word if it gave one, else doubling
    /// with up to 50% jitter; never more than `max_backoff`.
    fn backoff(&self, attempt: u32, server: Option<Duration>) -> Duration {
        if let Some(d) = server {
            return d.min(self.max_backoff);
        }
        let base = self.initial_backoff.saturating_mul(1u32 << (attempt - 1).min(16));
        // Jitter from the random bits of a v7 UUID: no RNG crate for one number.
        let jitter = (uuid::Uuid::now_v7().as_u128() as u64 % 1000) as u32;
        let with_jitter = base + base.mul_f64(f64::from(jitter) / 2000.0);
        with_jitter.min(self.max_backoff)
    }

    async fn authorize(&self, req: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, PullError> {
        Ok(match &self.auth {
            FhirAuth::None => req,
            FhirAuth::Basic { username, password } => req.basic_auth(username, Some(password.expose())),
            FhirAuth::Bearer { token } => req.bearer_auth(token.expose()),
            FhirAuth::Oauth2ClientCredentials { .. } | FhirAuth::SmartBackend { .. } => {
                let token = self.oauth_token().await?;
                req.bearer_auth(token)
            }
        })
    }

    /// The cached token, or a new one from the token endpoint (client credentials, HTTP basic
    /// client authentication). Refreshed a little before it expires.
    async fn oauth_token(&self) -> Result<String, PullError> {
        let token_url = match &self.auth {
            FhirAuth::Oauth2ClientCredentials { token_url, .. }
            | FhirAuth::SmartBackend { token_url, .. } => token_url,
            _ => return Err(PullError::Token("not configured".into())),
        };
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref()
            && t.expires > std::time::Instant::now()
        {
            return Ok(t.value.clone());
        }
        let request = match &self.auth {
            FhirAuth::Oauth2ClientCredentials {
                client_id,
                client_secret,
                scope,
                ..
            } => {
                let mut form = vec![("grant_type", "client_credentials".to_string())];
                if let Some(s) = scope {
                    form.push(("scope", s.clone()));
                }
                self.http
                    .post(token_url)
                    .basic_auth(client_id, Some(client_secret.expose()))
                    .form(&form)
            }
            FhirAuth::SmartBackend {
                client_id,
                private_key,
                key_id,
                scope,
                ..
            } => {
                // SMART Backend Services: a short-lived assertion signed with the client's key.
                let key = SigningKey::from_pem(private_key.expose()).map_err(PullError::Token)?;
                let now = jiff::Timestamp::now().as_second();
                let claims = serde_json::json!({
                    "iss": client_id, "sub": client_id, "aud": token_url,
                    "exp": now + 240, "iat": now, "jti": uuid::Uuid::now_v7().to_string(),
                });
                let assertion = key.jwt(key_id.as_deref(), &claims).map_err(PullError::Token)?;
                let form = [
                    ("grant_type", "client_credentials"),
                    ("scope", scope.as_str()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.as_str()),
                ];
                self.http.post(token_url).form(&form)
            }
            _ => return Err(PullError::Token("not configured".into())),
        };
        let resp = request
            .send()
            .await
            .map_err(|_| PullError::Token(format!("{} did not answer", shown(token_url))))?;
        if !resp.status().is_success() {
            return Err(PullError::Token(format!(
                "{} answered HTTP {}",
                shown(token_url),
                resp.status().as_u16()
            )));
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|_| PullError::Token("the answer is not JSON".into()))?;
        let value = body["access_token"]
            .as_str()
            .ok_or_else(|| PullError::Token("no access_token in the answer".into()))?
            .to_string();
        let ttl = body["expires_in"].as_u64().unwrap_or(300);
        // Renew a little early so a request never leaves with a token about to expire.
        let margin = (ttl / 10).clamp(1, 30);
        *cached = Some(Token {
            value: value.clone(),
            expires: std::time::Instant::now() + Duration::from_secs(ttl.saturating_sub(margin)),
        });
        Ok(value)
    }
}

/// A SMART Backend Services signing key: ECDSA P-384 (ES384) or RSA (RS384), from PKCS#8.
pub enum SigningKey {
    Es384(ring::signature::EcdsaKeyPair),
    Rs384(ring::signature::RsaKeyPair),
}

impl SigningKey {
    /// Reads a PEM `PRIVATE KEY` (PKCS#8). The error never quotes the key.
    pub fn from_pem(pem: &str) -> Result<SigningKey, String> {
        use base64::Engine;
        let body: String = pem
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("-----") && !l.is_empty())
            .collect();
        if !pem.contains("-----BEGIN PRIVATE KEY-----") {
            return Err("expected a PKCS#8 PEM key (-----BEGIN PRIVATE KEY-----)".into());
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| "the PEM key is not valid base64".to_string())?;
        let rng = ring::rand::SystemRandom::new();
        if let Ok(k) = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            &der,
            &rng,
        ) {
            return Ok(SigningKey::Es384(k));
        }
        ring::signature::RsaKeyPair::from_pkcs8(&der)
            .map(SigningKey::Rs384)
            .map_err(|_| "the key is neither an ECDSA P-384 nor an RSA PKCS#8 key".to_string())
    }

    fn alg(&self) -> &'static str {
        match self {
            SigningKey::Es384(_) => "ES384",
            SigningKey::Rs384(_) => "RS384",
        }
    }

    /// A signed JWT (compact JWS) with these claims.
    pub fn jwt(&self, kid: Option<&str>, claims: &Value) -> Result<String, String> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut header = serde_json::json!({"alg": self.alg(), "typ": "JWT"});
        if let Some(k) = kid {
            header["kid"] = Value::String(k.to_string());
        }
        let signing_input = format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        );
        let rng = ring::rand::SystemRandom::new();
        let signature = match self {
            SigningKey::Es384(k) => k
                .sign(&rng, signing_input.as_bytes())
                .map_err(|_| "signing failed".to_string())?
                .as_ref()
                .to_vec(),
            SigningKey::Rs384(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(
                    &ring::signature::RSA_PKCS1_SHA384,
                    &rng,
                    signing_input.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| "signing failed".to_string())?;
                sig
            }
        };
        Ok(format!("{signing_input}.{}", b64.encode(signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_keys_are_read_from_pkcs8_pem_and_bad_ones_explained() {
        use base64::Engine;
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
        );
        let key = SigningKey::from_pem(&pem).unwrap();
        let jwt = key.jwt(Some("k1"), &serde_json::json!({"iss": "a"})).unwrap();
        assert_eq!(jwt.split('.').count(), 3);
        assert_eq!(key.alg(), "ES384");
        // Well-formed PEM around bytes that are no key: refused, without quoting them.
        let body = base64::engine::general_purpose::STANDARD.encode("not a key");
        let not_a_key = format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----");
        let e = SigningKey::from_pem(&not_a_key).err().unwrap();
        assert!(e.contains("neither") && !e.contains(&body), "{e}");
        assert!(SigningKey::from_pem("ssh-rsa AAAA").is_err());
    }

    #[test]
    fn urls_are_shown_without_their_query() {
        assert_eq!(
            shown("https://ehr.example.org/fhir/Patient?name=Nguyen&_count=10"),
            "https://ehr.example.org/fhir/Patient"
        );
    }
}
