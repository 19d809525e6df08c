//! OIDC bearer tokens against an identity provider of the test's own: a small axum server on
//! 127.0.0.1:0 serving a discovery document and a JWKS, with keys made at test time (ECDSA
//! P-256 by `ring`) or read from tests/fixtures/oidc (a test-only RSA key, since `ring` cannot
//! generate RSA keys). Tokens are signed here by hand, so that broken ones can be made too.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Form, Query, State};
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
    /// Console login: code → (PKCE challenge, nonce) handed out by `/authorize`.
    codes: Mutex<HashMap<String, (String, String)>>,
    /// Console login: the key the token endpoint signs ID tokens with.
    id_token_signer: Mutex<Option<Arc<Signer>>>,
    /// Console login: claims the next ID tokens carry besides iss, aud, exp and nonce.
    login_claims: Mutex<Value>,
    /// Console login: the token endpoint puts another nonce in the ID token.
    tamper_nonce: AtomicBool,
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
            codes: Mutex::new(HashMap::new()),
            id_token_signer: Mutex::new(None),
            login_claims: Mutex::new(json!({})),
            tamper_nonce: AtomicBool::new(false),
        });
        idp.serve_keys(keys);
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", axum::routing::post(token_endpoint))
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
        "authorization_endpoint": format!("{}/authorize", idp.issuer),
        "token_endpoint": format!("{}/token", idp.issuer),
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

/// The provider's authorization endpoint: the user is taken as logged in at once; the code it
/// hands back remembers the PKCE challenge and the nonce.
async fn authorize(State(idp): State<Arc<Idp>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("response_type") != "code"
        || get("client_id") != CLIENT_ID
        || get("code_challenge_method") != "S256"
        || get("code_challenge").is_empty()
        || !get("scope").split(' ').any(|s| s == "openid")
    {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let code = format!("code-{}", idp.codes.lock().unwrap().len() + 1);
    idp.codes
        .lock()
        .unwrap()
        .insert(code.clone(), (get("code_challenge"), get("nonce")));
    let to = format!(
        "{}?code={code}&state={}",
        get("redirect_uri"),
        form_urlencoded::byte_serialize(get("state").as_bytes()).collect::<String>()
    );
    axum::response::Redirect::to(&to).into_response()
}

/// The provider's token endpoint: checks the client, the redirect URI and the PKCE verifier,
/// and answers a signed ID token carrying the nonce.
async fn token_endpoint(State(idp): State<Arc<Idp>>, Form(f): Form<HashMap<String, String>>) -> Response {
    use sha2::Digest as _;
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let Some((challenge, nonce)) = idp.codes.lock().unwrap().remove(&get("code")) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    };
    let verified = b64(&sha2::Sha256::digest(get("code_verifier").as_bytes())[..]) == challenge;
    if get("grant_type") != "authorization_code"
        || get("client_id") != CLIENT_ID
        || get("client_secret") != CLIENT_SECRET
        || get("redirect_uri") != REDIRECT_URL
        || !verified
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let mut claims = json!({
        "iss": idp.issuer,
        "aud": CLIENT_ID,
        "sub": "user-9",
        "iat": now(),
        "exp": now() + 300,
        "nonce": if idp.tamper_nonce.load(Ordering::SeqCst) { "another".to_string() } else { nonce },
    });
    for (k, v) in idp.login_claims.lock().unwrap().as_object().unwrap() {
        claims[k] = v.clone();
    }
    let signer = idp.id_token_signer.lock().unwrap().clone().expect("a signer");
    axum::Json(json!({
        "access_token": "opaque", "token_type": "Bearer", "expires_in": 300,
        "id_token": signer.token(&claims),
    }))
    .into_response()
}

const CLIENT_ID: &str = "carehub-console";
const CLIENT_SECRET: &str = "console-secret";
/// The console's callback as the provider knows it; the test sends the browser on to the hub.
const REDIRECT_URL: &str = "http://hub.test/login/oidc/callback";

/// A browser that keeps cookies by hand: `name=value` pairs.
#[derive(Default)]
struct Browser {
    cookies: HashMap<String, String>,
}

impl Browser {
    async fn get(&mut self, url: &str) -> reqwest::Response {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut req = client.get(url);
        if !cookie.is_empty() {
            req = req.header(reqwest::header::COOKIE, cookie);
        }
        let resp = req.send().await.unwrap();
        for v in resp.headers().get_all(reqwest::header::SET_COOKIE) {
            let pair = v.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), value.into());
            }
        }
        resp
    }
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(reqwest::header::LOCATION)
        .expect("a Location")
        .to_str()
        .unwrap()
        .to_string()
}

async fn console_hub(idp: &Idp) -> crate::helpers::TestHub {
    crate::helpers::spawn_hub_with(crate::helpers::HubOptions {
        auth_extra: format!(
            "    oidc:\n      issuer: {issuer}\n      audience: {AUDIENCE}\n      client_id: {CLIENT_ID}\n      client_secret: \"${{CAREHUB_TEST_OIDC_CLIENT_SECRET:-{CLIENT_SECRET}}}\"\n      redirect_url: {REDIRECT_URL}\n      role_claim: realm_access.roles\n      role_map: {{doctor: clinician, carehub-ops: ops}}\n      subject_claim: preferred_username\n",
            issuer = idp.issuer
        ),
        ..Default::default()
    })
    .await
}

/// From the login page to the provider and back; returns the callback's answer. `state` may
/// rewrite the state the provider sends back.
async fn log_in_through_provider(
    t: &crate::helpers::TestHub,
    browser: &mut Browser,
    state: impl Fn(&str) -> String,
) -> reqwest::Response {
    let page = browser.get(&format!("{}/login", t.api())).await;
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("id=\"login-oidc\""));
    let start = browser.get(&format!("{}/login/oidc?next=%2F", t.api())).await;
    assert_eq!(start.status().as_u16(), 303);
    let flow_cookie = start
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("carehub_oidc="))
        .expect("the flow cookie");
    assert!(flow_cookie.contains("HttpOnly") && flow_cookie.contains("SameSite=Lax"));
    let to_provider = location(&start);
    assert!(to_provider.contains("code_challenge_method=S256"));
    let back = browser.get(&to_provider).await;
    assert_eq!(back.status().as_u16(), 303, "the provider sends the browser back");
    let callback = location(&back);
    let callback = callback.replace("http://hub.test", &t.api());
    let url = reqwest::Url::parse(&callback).unwrap();
    let got_state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.to_string())
        .unwrap();
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.to_string())
        .unwrap();
    let callback = format!(
        "{}/login/oidc/callback?code={code}&state={}",
        t.api(),
        form_urlencoded::byte_serialize(state(&got_state).as_bytes()).collect::<String>()
    );
    browser.get(&callback).await
}

/// The console's "Log in with the identity provider": a clinician lands on /patients with a
/// session; an ops user gets the overview and a 403 on /patients; no role is a 403 page.
#[tokio::test]
async fn the_console_logs_in_through_the_provider_with_pkce_state_and_nonce() {
    let idp = Idp::start(&[&Signer::rsa("login-1")]).await;
    *idp.id_token_signer.lock().unwrap() = Some(Arc::new(Signer::rsa("login-1")));
    let t = console_hub(&idp).await;

    *idp.login_claims.lock().unwrap() =
        json!({"preferred_username": "dr.mai", "realm_access": {"roles": ["doctor"]}});
    let mut doctor = Browser::default();
    let resp = log_in_through_provider(&t, &mut doctor, |s| s.to_string()).await;
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(location(&resp), "/patients");
    assert!(doctor.cookies.contains_key("carehub_session"));
    assert!(
        !doctor.cookies.contains_key("carehub_oidc"),
        "the flow cookie is spent"
    );
    let resp = doctor.get(&format!("{}/patients", t.api())).await;
    assert_eq!(resp.status().as_u16(), 200);

    *idp.login_claims.lock().unwrap() =
        json!({"preferred_username": "ops.lan", "realm_access": {"roles": ["carehub-ops"]}});
    let mut ops = Browser::default();
    let resp = log_in_through_provider(&t, &mut ops, |s| s.to_string()).await;
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(location(&resp), "/");
    let resp = ops.get(&format!("{}/patients", t.api())).await;
    assert_eq!(resp.status().as_u16(), 403);
    let resp = ops.get(&format!("{}/", t.api())).await;
    assert_eq!(resp.status().as_u16(), 200);

    *idp.login_claims.lock().unwrap() =
        json!({"preferred_username": "guest", "realm_access": {"roles": ["offline_access"]}});
    let mut guest = Browser::default();
    let resp = log_in_through_provider(&t, &mut guest, |s| s.to_string()).await;
    assert_eq!(resp.status().as_u16(), 403);
    assert!(resp.text().await.unwrap().contains("grants no carehub role"));
    assert!(!guest.cookies.contains_key("carehub_session"));
    t.hub.shutdown().await;
}

/// A state not this browser's, a tampered nonce, a provider error or a code the token endpoint
/// refuses: the login page with a reason, no session.
#[tokio::test]
async fn a_wrong_state_or_a_tampered_nonce_is_refused() {
    let idp = Idp::start(&[&Signer::rsa("login-2")]).await;
    *idp.id_token_signer.lock().unwrap() = Some(Arc::new(Signer::rsa("login-2")));
    *idp.login_claims.lock().unwrap() =
        json!({"preferred_username": "dr.mai", "realm_access": {"roles": ["doctor"]}});
    let t = console_hub(&idp).await;

    let mut b = Browser::default();
    let resp = log_in_through_provider(&t, &mut b, |s| format!("{s}x")).await;
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().await.unwrap().contains("not started in this browser"));
    assert!(!b.cookies.contains_key("carehub_session"));

    idp.tamper_nonce.store(true, Ordering::SeqCst);
    let mut b = Browser::default();
    let resp = log_in_through_provider(&t, &mut b, |s| s.to_string()).await;
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.text().await.unwrap().contains("did not log you in"));
    assert!(!b.cookies.contains_key("carehub_session"));
    idp.tamper_nonce.store(false, Ordering::SeqCst);

    // No flow cookie at all (a callback opened in another browser).
    let mut b = Browser::default();
    let resp = b
        .get(&format!("{}/login/oidc/callback?code=code-1&state=abc", t.api()))
        .await;
    assert_eq!(resp.status().as_u16(), 400);
    // The provider's own error.
    let mut b = Browser::default();
    let start = b.get(&format!("{}/login/oidc", t.api())).await;
    let state = reqwest::Url::parse(&location(&start))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.to_string())
        .unwrap();
    let resp = b
        .get(&format!(
            "{}/login/oidc/callback?error=access_denied&state={state}",
            t.api()
        ))
        .await;
    assert_eq!(resp.status().as_u16(), 401);
    assert!(!b.cookies.contains_key("carehub_session"));
    // A code the token endpoint does not know: the exchange fails, still no 500.
    let mut b = Browser::default();
    let start = b.get(&format!("{}/login/oidc", t.api())).await;
    let state = reqwest::Url::parse(&location(&start))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.to_string())
        .unwrap();
    let resp = b
        .get(&format!(
            "{}/login/oidc/callback?code=made-up&state={state}",
            t.api()
        ))
        .await;
    assert_eq!(resp.status().as_u16(), 502);
    assert!(!b.cookies.contains_key("carehub_session"));
    t.hub.shutdown().await;
}
