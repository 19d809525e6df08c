//! OIDC bearer tokens against an identity provider of the test's own: a small axum server on
//! 127.0.0.1:0 serving a discovery document and a JWKS, with keys made at test time (ECDSA
//! P-256 by `ring`) or read from tests/fixtures/oidc (a test-only RSA key, since `ring` cannot
//! generate RSA keys). Tokens are signed here by hand, so that broken ones can be made too.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use carehub::api::oidc::{OidcConfig, OidcError, OidcIdentity, OidcVerifier};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{Value, json};

const AUDIENCE: &str = "carehub";

/// The test's identity provider: what it serves and how often it was asked.
struct Idp {
    issuer: String,
    jwks: Mutex<Value>,
    up: AtomicBool,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
}

impl Idp {
    /// Starts the provider serving `keys` as its JWKS.
    async fn start(keys: &[&Signer]) -> Arc<Idp> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let idp = Arc::new(Idp {
            issuer,
            jwks: Mutex::new(Value::Null),
            up: AtomicBool::new(true),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
        });
        idp.serve_keys(keys);
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(idp.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        idp
    }

    /// Replaces the published key set (a key rotation).
    fn serve_keys(&self, keys: &[&Signer]) {
        let keys: Vec<Value> = keys.iter().map(|k| k.jwk()).collect();
        *self.jwks.lock().unwrap() = json!({ "keys": keys });
    }

    fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// A verifier for this provider; `extra` overrides or adds config keys.
    fn verifier(&self, extra: Value) -> OidcVerifier {
        let mut config = json!({
            "issuer": self.issuer,
            "audience": AUDIENCE,
            "jwks_url": format!("{}/jwks", self.issuer),
            "role_map": { "carehub-ops": "ops", "carehub-admin": "admin" },
        });
        for (k, v) in extra.as_object().expect("an object") {
            if v.is_null() {
                config.as_object_mut().unwrap().remove(k);
            } else {
                config[k] = v.clone();
            }
        }
        let config: OidcConfig = serde_json::from_value(config).expect("a valid config");
        let _ = rustls::crypto::ring::default_provider().install_default();
        OidcVerifier::new(config, reqwest::Client::new())
    }

    /// Good claims for this provider, valid for an hour.
    fn claims(&self) -> Value {
        json!({
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "user-7",
            "iat": now(),
            "exp": now() + 3600,
            "roles": ["carehub-ops", "offline_access"],
        })
    }
}

async fn discovery(State(idp): State<Arc<Idp>>) -> Response {
    idp.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({
        "issuer": idp.issuer,
        "jwks_uri": format!("{}/jwks", idp.issuer),
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
    .into_response()
}

async fn jwks(State(idp): State<Arc<Idp>>) -> Response {
    idp.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if !idp.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let body = idp.jwks.lock().unwrap().clone();
    axum::Json(body).into_response()
}

/// A signing key of the test's provider.
enum Signer {
    Rsa { kid: String, key: RsaKeyPair },
    Ec { kid: String, key: EcdsaKeyPair },
}

impl Signer {
    /// The test-only RSA key of tests/fixtures/oidc (2048 bits, made with openssl genpkey).
    fn rsa(kid: &str) -> Signer {
        let pem = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/oidc/rsa-test-key.pk8.pem"
        ))
        .expect("the RSA test key");
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(b64).expect("base64 PEM body");
        let key = RsaKeyPair::from_pkcs8(&der).expect("a PKCS#8 RSA key");
        Signer::Rsa { kid: kid.into(), key }
    }

    /// A P-256 key made now.
    fn ec(kid: &str) -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate a P-256 key");
        let key = EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("read it back");
        Signer::Ec { kid: kid.into(), key }
    }

    fn kid(&self) -> &str {
        match self {
            Signer::Rsa { kid, .. } | Signer::Ec { kid, .. } => kid,
        }
    }

    fn alg(&self) -> &'static str {
        match self {
            Signer::Rsa { .. } => "RS256",
            Signer::Ec { .. } => "ES256",
        }
    }

    /// The public half as a JWK, as a provider publishes it.
    fn jwk(&self) -> Value {
        match self {
            Signer::Rsa { kid, key } => {
                let public = sig::RsaPublicKeyComponents::<Vec<u8>>::from(key.public());
                json!({
                    "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                    "n": b64(&public.n), "e": b64(&public.e),
                })
            }
            Signer::Ec { kid, key } => {
                let point = key.public_key().as_ref();
                json!({
                    "kty": "EC", "use": "sig", "alg": "ES256", "crv": "P-256", "kid": kid,
                    "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                })
            }
        }
    }

    /// Signs `message` (the first two parts of a JWT).
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Signer::Rsa { key, .. } => {
                let mut out = vec![0; key.public().modulus_len()];
                key.sign(&sig::RSA_PKCS1_SHA256, &rng, message, &mut out)
                    .expect("RSA signing");
                out
            }
            Signer::Ec { key, .. } => key.sign(&rng, message).expect("ECDSA signing").as_ref().to_vec(),
        }
    }

    /// A token with this key's `alg` and `kid`.
    fn token(&self, claims: &Value) -> String {
        let header = json!({ "alg": self.alg(), "typ": "JWT", "kid": self.kid() });
        self.token_with_header(&header, claims)
    }

    fn token_with_header(&self, header: &Value, claims: &Value) -> String {
        let message = unsigned(header, claims);
        format!("{message}.{}", b64(&self.sign(message.as_bytes())))
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The first two parts of a JWT.
fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

#[tokio::test]
async fn rs256_and_es256_tokens_name_the_user_with_the_mapped_role() {
    let (rsa, ec) = (Signer::rsa("rsa-1"), Signer::ec("ec-1"));
    let idp = Idp::start(&[&rsa, &ec]).await;
    let verifier = idp.verifier(json!({}));
    let expected = OidcIdentity {
        subject: "user-7".into(),
        roles: vec!["ops".into()],
        issuer: idp.issuer.clone(),
    };
    for signer in [&rsa, &ec] {
        let identity = verifier.verify(&signer.token(&idp.claims())).await;
        assert_eq!(identity, Ok(expected.clone()), "{}", signer.alg());
    }
    // An audience list in the token passes when one of them is carehub's.
    let mut claims = idp.claims();
    claims["aud"] = json!(["another-app", AUDIENCE]);
    assert_eq!(verifier.verify(&ec.token(&claims)).await, Ok(expected));
    assert_eq!(idp.jwks_fetches(), 1, "the key set is fetched once and cached");
}

#[tokio::test]
async fn an_expired_token_is_refused_and_the_leeway_holds() {
    let ec = Signer::ec("ec-1");
    let idp = Idp::start(&[&ec]).await;
    let verifier = idp.verifier(json!({}));
    let mut claims = idp.claims();
    claims["exp"] = json!(now() - 3600);
    assert_eq!(verifier.verify(&ec.token(&claims)).await, Err(OidcError::Expired));
    claims["exp"] = json!(now() - 10);
    assert!(
        verifier.verify(&ec.token(&claims)).await.is_ok(),
        "within the 60 s leeway"
    );
    let mut claims = idp.claims();
    claims.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        verifier.verify(&ec.token(&claims)).await,
        Err(OidcError::Claim("exp".into()))
    );
    let mut claims = idp.claims();
    claims["nbf"] = json!(now() + 3600);
    assert_eq!(
        verifier.verify(&ec.token(&claims)).await,
        Err(OidcError::NotYetValid)
    );
}

#[tokio::test]
async fn a_wrong_issuer_or_audience_is_refused() {
    let rsa = Signer::rsa("rsa-1");
    let idp = Idp::start(&[&rsa]).await;
    let verifier = idp.verifier(json!({}));
    let mut claims = idp.claims();
    claims["iss"] = json!(format!("{}/", idp.issuer));
    assert_eq!(verifier.verify(&rsa.token(&claims)).await, Err(OidcError::Issuer));
    claims["iss"] = json!([idp.issuer]);
    assert_eq!(verifier.verify(&rsa.token(&claims)).await, Err(OidcError::Issuer));
    let mut claims = idp.claims();
    claims["aud"] = json!("another-app");
    assert_eq!(
        verifier.verify(&rsa.token(&claims)).await,
        Err(OidcError::Audience)
    );
    claims.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        verifier.verify(&rsa.token(&claims)).await,
        Err(OidcError::Claim("aud".into()))
    );
}

#[tokio::test]
async fn a_bad_signature_is_refused() {
    let ec = Signer::ec("ec-1");
    let idp = Idp::start(&[&ec]).await;
    let verifier = idp.verifier(json!({}));
    // Signed by another key under the published key's kid.
    let impostor = Signer::ec("ec-1");
    assert_eq!(
        verifier.verify(&impostor.token(&idp.claims())).await,
        Err(OidcError::BadSignature)
    );
    // A good token whose claims were changed after signing.
    let token = ec.token(&idp.claims());
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = idp.claims();
    claims["roles"] = json!(["carehub-admin"]);
    let forged = format!("{}.{}.{}", parts[0], b64(claims.to_string().as_bytes()), parts[2]);
    assert_eq!(verifier.verify(&forged).await, Err(OidcError::BadSignature));
}

#[tokio::test]
async fn unsigned_and_hmac_tokens_are_never_accepted() {
    let rsa = Signer::rsa("rsa-1");
    let idp = Idp::start(&[&rsa]).await;
    let verifier = idp.verifier(json!({}));
    let claims = idp.claims();

    let none = unsigned(&json!({"alg": "none", "typ": "JWT"}), &claims);
    assert_eq!(
        verifier.verify(&format!("{none}.")).await,
        Err(OidcError::Malformed)
    );
    assert_eq!(
        verifier.verify(&format!("{none}.c2ln")).await,
        Err(OidcError::AlgorithmNotAccepted)
    );

    // The classic confusion: HS256 keyed with the provider's public key, which anyone can read.
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"});
    let message = unsigned(&header, &claims);
    for secret in [rsa.jwk().to_string().into_bytes(), {
        let Signer::Rsa { key, .. } = &rsa else {
            unreachable!()
        };
        key.public().as_ref().to_vec()
    }] {
        let mac = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
            message.as_bytes(),
        );
        let token = format!("{message}.{}", b64(mac.as_ref()));
        assert_eq!(
            verifier.verify(&token).await,
            Err(OidcError::AlgorithmNotAccepted)
        );
    }

    // An algorithm carehub supports but this config does not list.
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-1"});
    let es_only = idp.verifier(json!({"algorithms": ["ES256"]}));
    assert_eq!(
        es_only.verify(&rsa.token_with_header(&header, &claims)).await,
        Err(OidcError::AlgorithmNotAccepted)
    );
    // A token claiming ES256 under the RSA key's kid: the key type must match the algorithm.
    let ec = Signer::ec("other");
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": "rsa-1"});
    assert_eq!(
        verifier.verify(&ec.token_with_header(&header, &claims)).await,
        Err(OidcError::KeyMismatch)
    );
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_a_token_names_it() {
    let (old, new) = (Signer::ec("2026-11"), Signer::rsa("2026-12"));
    let idp = Idp::start(&[&old]).await;
    // No minimum gap between fetches here: the rotation follows the first fetch at once.
    let verifier = idp.verifier(json!({"jwks_min_refetch_secs": 0}));
    assert!(verifier.verify(&old.token(&idp.claims())).await.is_ok());
    idp.serve_keys(&[&new]);
    let identity = verifier.verify(&new.token(&idp.claims())).await;
    assert_eq!(identity.map(|i| i.subject), Ok("user-7".to_string()));
    assert_eq!(
        idp.jwks_fetches(),
        2,
        "one fetch at first use, one for the new kid"
    );
}

#[tokio::test]
async fn a_flood_of_unknown_key_ids_fetches_the_keys_at_most_twice() {
    let ec = Signer::ec("ec-1");
    let idp = Idp::start(&[&ec]).await;
    let verifier = Arc::new(idp.verifier(json!({})));

    // Concurrent first use: one fetch serves them all.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (verifier, token) = (verifier.clone(), ec.token(&idp.claims()));
        tasks.spawn(async move { verifier.verify(&token).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert!(result.expect("task").is_ok());
    }
    assert_eq!(idp.jwks_fetches(), 1);

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": format!("made-up-{i}")});
        let (verifier, token) = (verifier.clone(), ec.token_with_header(&header, &idp.claims()));
        tasks.spawn(async move { verifier.verify(&token).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.expect("task"), Err(OidcError::UnknownKey));
    }
    assert!(
        idp.jwks_fetches() <= 2,
        "200 unknown kids caused {} JWKS fetches",
        idp.jwks_fetches()
    );
    // The known key still works.
    assert!(verifier.verify(&ec.token(&idp.claims())).await.is_ok());
}

#[tokio::test]
async fn cached_keys_stay_in_use_while_the_provider_is_down() {
    let rsa = Signer::rsa("rsa-1");
    let idp = Idp::start(&[&rsa]).await;

    // Nothing cached and the provider down: a 503-worthy error, not a token fault.
    idp.up.store(false, Ordering::SeqCst);
    let cold = idp.verifier(json!({}));
    let err = cold.verify(&rsa.token(&idp.claims())).await.unwrap_err();
    assert_eq!(err, OidcError::KeysUnavailable);
    assert!(err.is_unavailable());
    idp.up.store(true, Ordering::SeqCst);

    let verifier = idp.verifier(json!({"jwks_cache_secs": 1, "jwks_min_refetch_secs": 0}));
    assert!(verifier.verify(&rsa.token(&idp.claims())).await.is_ok());
    let fetched = idp.jwks_fetches();
    idp.up.store(false, Ordering::SeqCst);
    // Let the cached set go stale, so the next verification tries to refresh it and fails.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(verifier.verify(&rsa.token(&idp.claims())).await.is_ok());
    assert!(idp.jwks_fetches() > fetched, "a refresh was tried");
    // An unknown kid while down: the refetch fails, the cached key set is kept.
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-2"});
    assert_eq!(
        verifier
            .verify(&rsa.token_with_header(&header, &idp.claims()))
            .await,
        Err(OidcError::UnknownKey)
    );
    assert!(verifier.verify(&rsa.token(&idp.claims())).await.is_ok());
}

#[tokio::test]
async fn the_jwks_is_found_through_discovery() {
    let ec = Signer::ec("ec-1");
    let idp = Idp::start(&[&ec]).await;
    let verifier = idp.verifier(json!({"jwks_url": null}));
    assert!(verifier.verify(&ec.token(&idp.claims())).await.is_ok());
    assert!(verifier.verify(&ec.token(&idp.claims())).await.is_ok());
    assert_eq!(idp.discovery_fetches.load(Ordering::SeqCst), 1);
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test]
async fn keycloak_realm_roles_map_to_carehub_roles() {
    let rsa = Signer::rsa("kc-1");
    let idp = Idp::start(&[&rsa]).await;
    let verifier = idp.verifier(json!({
        "role_claim": "realm_access.roles",
        "subject_claim": "preferred_username",
        "role_map": { "carehub-admin": "admin", "nurse": "clinician" },
    }));
    let mut claims = idp.claims();
    claims.as_object_mut().unwrap().remove("roles");
    claims["azp"] = json!(AUDIENCE);
    claims["preferred_username"] = json!("dr.lan");
    claims["realm_access"] =
        json!({"roles": ["offline_access", "carehub-admin", "nurse", "uma_authorization"]});
    let identity = verifier.verify(&rsa.token(&claims)).await.expect("accepted");
    assert_eq!(identity.subject, "dr.lan");
    assert_eq!(identity.roles, vec!["admin", "clinician"]);

    // A token without the subject claim names nobody.
    claims.as_object_mut().unwrap().remove("preferred_username");
    assert_eq!(
        verifier.verify(&rsa.token(&claims)).await,
        Err(OidcError::Claim("preferred_username".into()))
    );
}

/// The hub itself, configured for the provider: a clinician's JWT reads a patient and is
/// audited under its subject; an ops JWT is refused the patient; an expired one gets 401.
#[tokio::test]
async fn the_hub_takes_the_providers_tokens_with_their_roles() {
    let ec = Signer::ec("hub-1");
    let idp = Idp::start(&[&ec]).await;
    let t = crate::helpers::spawn_hub_with(crate::helpers::HubOptions {
        auth_extra: format!(
            "    oidc:\n      issuer: {issuer}\n      audience: {AUDIENCE}\n      role_claim: realm_access.roles\n      role_map: {{doctor: clinician, carehub-ops: ops}}\n      subject_claim: preferred_username\n",
            issuer = idp.issuer
        ),
        ..Default::default()
    })
    .await;
    let ack = crate::helpers::send(t.mllp(), &crate::helpers::adt("OIDC-1", "MRN-OIDC", "Khuc")).await;
    assert_eq!(crate::helpers::field(&ack, "MSA", 1), "AA");
    let person = t.hub.store.find_persons("MRN-OIDC", None).await.unwrap()[0]
        .id
        .clone();
    let url = format!("{}/api/v1/patients/{person}", t.api());
    let token = |roles: &[&str], exp: u64| {
        let mut claims = idp.claims();
        claims["exp"] = json!(exp);
        claims["preferred_username"] = json!("dr.mai");
        claims["realm_access"] = json!({ "roles": roles });
        ec.token(&claims)
    };
    let doctor = token(&["doctor"], now() + 600);
    let resp = crate::helpers::http_as(&doctor).get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let rows = t.hub.store.audit_page(0, 10).await.unwrap();
    let row = rows.last().expect("an audit row");
    assert_eq!(row.entry.subject, "oidc:dr.mai");
    assert_eq!(row.entry.role, "clinician");
    assert_eq!(row.entry.persons, vec![person.clone()]);

    let ops = token(&["carehub-ops"], now() + 600);
    let resp = crate::helpers::http_as(&ops).get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let resp = crate::helpers::http_as(&ops)
        .get(format!("{}/api/v1/connectors", t.api()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    let expired = token(&["doctor"], now() - 3600);
    let resp = crate::helpers::http_as(&expired).get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.text().await.unwrap().contains("expired"));
    let nobody = token(&["offline_access"], now() + 600);
    let resp = crate::helpers::http_as(&nobody).get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401, "a token naming no carehub role");
    // carehub's own tokens still work beside the provider's.
    let resp = crate::helpers::http().get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    t.hub.shutdown().await;
}
