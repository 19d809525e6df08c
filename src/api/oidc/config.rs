//! `api.oidc` settings: which identity provider carehub trusts for bearer tokens and how it
//! reads roles from them. The pure pass — it reads and checks, it fetches nothing.

use std::collections::BTreeMap;

use jsonwebtoken::Algorithm;
use serde::Deserialize;

use crate::config::{Document, Problem, Secret};

/// The carehub role names a token may grant; anything else a token carries is dropped.
pub const ROLE_NAMES: &[&str] = &["admin", "ops", "clinician", "sender", "auditor"];

/// How carehub checks bearer tokens from an OpenID Connect identity provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL, exactly as tokens carry it in `iss` (for Keycloak
    /// `https://HOST/realms/REALM`, for Azure AD `https://login.microsoftonline.com/TENANT/v2.0`).
    pub issuer: String,
    /// The audience (`aud`) a token must name: one string or a list, any of them accepted.
    pub audience: Audiences,
    /// The provider's JWKS URL; by default the `jwks_uri` of
    /// `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Claim holding the roles: a top-level name or a dotted path (`realm_access.roles` for
    /// Keycloak realm roles, `roles` for Azure AD app roles). A string or a list of strings.
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// From the provider's role value to a carehub role (`admin`, `ops`, `clinician`, `sender`,
    /// `auditor`). Without it the values are taken as carehub role names; with it, values not in
    /// the map are dropped.
    #[serde(default)]
    pub role_map: Option<BTreeMap<String, String>>,
    /// Claim naming the user in carehub's audit log (`sub`, or e.g. `preferred_username`).
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// Signing algorithms accepted. `none` and `HS256`/`HS384`/`HS512` are never accepted.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<SigningAlgorithm>,
    /// How long a fetched JWKS is used before it is fetched again.
    #[serde(default = "default_jwks_cache_secs")]
    pub jwks_cache_secs: u64,
    /// The least time between two JWKS fetches caused by unknown key ids or failed fetches.
    #[serde(default = "default_jwks_min_refetch_secs")]
    pub jwks_min_refetch_secs: u64,
    /// Clock skew allowed when checking `exp` and `nbf`.
    #[serde(default = "default_leeway_secs")]
    pub leeway_secs: u64,
    /// How long one request to the provider (discovery or JWKS) may take.
    #[serde(default = "default_http_timeout_secs")]
    pub http_timeout_secs: u64,
    /// The console's client at the provider (authorization-code login). With `redirect_url`
    /// set too, the login page offers "Log in with the identity provider".
    #[serde(default)]
    pub client_id: Option<String>,
    /// The client's secret, sent to the token endpoint (`client_secret_post`); give it as
    /// `${VAR}` from the environment. Absent for a public client (PKCE alone).
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// The console's callback as the provider knows it, e.g.
    /// `https://hub.example/login/oidc/callback`.
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// The provider's authorization endpoint; by default the discovery document's.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// The provider's token endpoint; by default the discovery document's.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// The scopes asked for at login (`openid` is always asked).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

impl OidcConfig {
    /// True when the console offers logging in through the provider.
    pub fn console_login(&self) -> bool {
        self.client_id.as_deref().is_some_and(|c| !c.is_empty())
            && self.redirect_url.as_deref().is_some_and(|r| !r.is_empty())
    }
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into()]
}

/// One audience or several.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audiences {
    One(String),
    Many(Vec<String>),
}

impl Audiences {
    /// The accepted audiences as a list.
    pub fn as_slice(&self) -> &[String] {
        match self {
            Audiences::One(one) => std::slice::from_ref(one),
            Audiences::Many(many) => many,
        }
    }
}

/// A signing algorithm carehub accepts (asymmetric only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum SigningAlgorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
}

impl SigningAlgorithm {
    const ALL: [SigningAlgorithm; 8] = [
        SigningAlgorithm::RS256,
        SigningAlgorithm::RS384,
        SigningAlgorithm::RS512,
        SigningAlgorithm::PS256,
        SigningAlgorithm::PS384,
        SigningAlgorithm::PS512,
        SigningAlgorithm::ES256,
        SigningAlgorithm::ES384,
    ];

    pub(super) fn jwt(self) -> Algorithm {
        match self {
            SigningAlgorithm::RS256 => Algorithm::RS256,
            SigningAlgorithm::RS384 => Algorithm::RS384,
            SigningAlgorithm::RS512 => Algorithm::RS512,
            SigningAlgorithm::PS256 => Algorithm::PS256,
            SigningAlgorithm::PS384 => Algorithm::PS384,
            SigningAlgorithm::PS512 => Algorithm::PS512,
            SigningAlgorithm::ES256 => Algorithm::ES256,
            SigningAlgorithm::ES384 => Algorithm::ES384,
        }
    }

    /// The algorithm a token header names, if carehub can accept it at all.
    pub(super) fn from_jwt(alg: Algorithm) -> Option<SigningAlgorithm> {
        SigningAlgorithm::ALL.into_iter().find(|a| a.jwt() == alg)
    }
}

impl TryFrom<String> for SigningAlgorithm {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        if name.eq_ignore_ascii_case("none") {
            return Err("`none` (unsigned tokens) is never accepted".into());
        }
        if name.to_ascii_uppercase().starts_with("HS") {
            return Err(format!(
                "{name} is never accepted: a shared-secret algorithm cannot be checked with a \
                 provider's published keys"
            ));
        }
        SigningAlgorithm::ALL
            .into_iter()
            .find(|a| format!("{a:?}") == name)
            .ok_or_else(|| {
                format!(
                    "unknown algorithm \"{name}\", expected one of RS256, RS384, RS512, PS256, \
                     PS384, PS512, ES256, ES384"
                )
            })
    }
}

fn default_role_claim() -> String {
    "roles".into()
}
fn default_subject_claim() -> String {
    "sub".into()
}
fn default_algorithms() -> Vec<SigningAlgorithm> {
    vec![SigningAlgorithm::RS256, SigningAlgorithm::ES256]
}
fn default_jwks_cache_secs() -> u64 {
    300
}
fn default_jwks_min_refetch_secs() -> u64 {
    10
}
fn default_leeway_secs() -> u64 {
    60
}
fn default_http_timeout_secs() -> u64 {
    10
}

impl OidcConfig {
    /// Pure checks: every problem, none of them I/O. `field` is where the settings stand in the
    /// document (a dotted path such as `api.oidc`), so problems name the right line.
    pub fn check(&self, doc: &Document, field: &str) -> Vec<Problem> {
        let at = |key: &str| {
            if field.is_empty() {
                key.to_string()
            } else {
                format!("{field}.{key}")
            }
        };
        let mut problems = Vec::new();
        if let Some(problem) = check_provider_url(&self.issuer) {
            problems.push(doc.problem(&at("issuer"), problem));
        }
        if let Some(url) = &self.jwks_url
            && let Some(problem) = check_provider_url(url)
        {
            problems.push(doc.problem(&at("jwks_url"), problem));
        }
        let audiences = self.audience.as_slice();
        if audiences.is_empty() {
            problems.push(doc.problem(&at("audience"), "name at least one audience"));
        }
        if audiences.iter().any(|a| a.trim().is_empty()) {
            problems.push(doc.problem(&at("audience"), "an audience cannot be empty"));
        }
        if self.role_claim.trim().is_empty() {
            problems.push(doc.problem(&at("role_claim"), "cannot be empty"));
        }
        if self.subject_claim.trim().is_empty() {
            problems.push(doc.problem(&at("subject_claim"), "cannot be empty"));
        }
        for (from, to) in self.role_map.iter().flatten() {
            if !ROLE_NAMES.contains(&to.as_str()) {
                problems.push(doc.problem(
                    &at(&format!("role_map.{from}")),
                    format!(
                        "unknown carehub role \"{to}\", expected one of {}",
                        ROLE_NAMES.join(", ")
                    ),
                ));
            }
        }
        if self.algorithms.is_empty() {
            problems.push(doc.problem(&at("algorithms"), "name at least one algorithm"));
        }
        if self.jwks_cache_secs == 0 {
            problems.push(doc.problem(&at("jwks_cache_secs"), "must be at least 1"));
        }
        if self.http_timeout_secs == 0 {
            problems.push(doc.problem(&at("http_timeout_secs"), "must be at least 1"));
        }
        for (key, url) in [
            ("redirect_url", &self.redirect_url),
            ("authorization_endpoint", &self.authorization_endpoint),
            ("token_endpoint", &self.token_endpoint),
        ] {
            if let Some(url) = url {
                let problem = if key == "redirect_url" {
                    match reqwest::Url::parse(url) {
                        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => None,
                        _ => Some(format!("expected an http(s):// URL, got \"{url}\"")),
                    }
                } else {
                    check_provider_url(url)
                };
                if let Some(problem) = problem {
                    problems.push(doc.problem(&at(key), problem));
                }
            }
        }
        if self.redirect_url.is_some() && self.client_id.is_none() {
            problems.push(doc.problem(&at("client_id"), "redirect_url needs a client_id"));
        }
        if self.leeway_secs > 300 {
            problems.push(doc.problem(
                &at("leeway_secs"),
                "must be at most 300 (a larger leeway keeps expired tokens working)",
            ));
        }
        problems
    }
}

/// Why `url` cannot be the provider's address: https:// only, http:// for loopback hosts.
pub(super) fn check_provider_url(url: &str) -> Option<String> {
    match reqwest::Url::parse(url) {
        Ok(u) if u.host().is_none() => Some(format!("expected an https:// URL, got \"{url}\"")),
        Ok(u) if u.scheme() == "https" => None,
        Ok(u) if u.scheme() == "http" && is_loopback(&u) => None,
        Ok(u) if u.scheme() == "http" => Some(format!(
            "expected an https:// URL (http:// only for localhost), got \"{url}\""
        )),
        Ok(_) => Some(format!("expected an https:// URL, got \"{url}\"")),
        Err(e) => Some(format!("not a URL ({e})")),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(yaml: &str) -> (Option<OidcConfig>, Vec<String>) {
        let doc = Document::parse("config/carehub.yaml", yaml).expect("valid YAML");
        let value = doc.value["oidc"].clone();
        let (config, mut problems) = crate::config::deserialize_value::<OidcConfig>(&doc, &value, "oidc");
        if let Some(c) = &config {
            problems.extend(c.check(&doc, "oidc"));
        }
        (config, problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_minimal_config_reads_with_defaults() {
        let (config, problems) =
            read("oidc:\n  issuer: https://id.example.org/realms/clinic\n  audience: carehub\n");
        assert_eq!(problems, Vec::<String>::new());
        let c = config.expect("a config");
        assert_eq!(c.audience.as_slice(), ["carehub".to_string()]);
        assert_eq!(c.role_claim, "roles");
        assert_eq!(c.subject_claim, "sub");
        assert_eq!(
            c.algorithms,
            vec![SigningAlgorithm::RS256, SigningAlgorithm::ES256]
        );
        assert_eq!((c.jwks_cache_secs, c.leeway_secs), (300, 60));
        assert_eq!(c.jwks_url, None);
    }

    #[test]
    fn the_console_login_needs_a_client_id_and_a_redirect_url() {
        let (config, problems) = read(
            "oidc:\n  issuer: https://id.example.org\n  audience: carehub\n  client_id: console\n  client_secret: s\n  redirect_url: https://hub.example/login/oidc/callback\n",
        );
        assert_eq!(problems, Vec::<String>::new());
        let c = config.unwrap();
        assert!(c.console_login());
        assert_eq!(format!("{:?}", c.client_secret), "Some(Secret(***))");
        let (config, problems) =
            read("oidc:\n  issuer: https://id.example.org\n  audience: carehub\n  client_id: console\n");
        assert_eq!(problems, Vec::<String>::new());
        assert!(!config.unwrap().console_login());
        let (_, problems) = read(
            "oidc:\n  issuer: https://id.example.org\n  audience: carehub\n  redirect_url: hub/callback\n  token_endpoint: http://id.example.org/token\n",
        );
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn audiences_may_be_a_list() {
        let (config, problems) =
            read("oidc:\n  issuer: https://id.example.org\n  audience: [carehub, api://carehub]\n");
        assert_eq!(problems, Vec::<String>::new());
        assert_eq!(config.unwrap().audience.as_slice().len(), 2);
    }

    #[test]
    fn plain_http_is_refused_except_for_loopback() {
        let (_, problems) = read("oidc:\n  issuer: http://id.example.org\n  audience: a\n");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("config/carehub.yaml:2: oidc.issuer: expected an https://"));
        for ok in [
            "http://127.0.0.1:8080/realms/x",
            "http://localhost:9000",
            "http://[::1]:1",
        ] {
            let (_, problems) = read(&format!("oidc:\n  issuer: {ok}\n  audience: a\n"));
            assert_eq!(problems, Vec::<String>::new(), "{ok}");
        }
        let (_, problems) =
            read("oidc:\n  issuer: https://id.example.org\n  audience: a\n  jwks_url: ftp://x/keys\n");
        assert!(
            problems[0].contains("oidc.jwks_url: expected an https:// URL"),
            "{problems:?}"
        );
    }

    #[test]
    fn none_and_hmac_algorithms_are_refused_with_a_reason() {
        let (config, problems) =
            read("oidc:\n  issuer: https://id.example.org\n  audience: a\n  algorithms: [RS256, HS256]\n");
        assert!(config.is_none());
        assert!(problems[0].contains("HS256 is never accepted"), "{problems:?}");
        let (_, problems) =
            read("oidc:\n  issuer: https://id.example.org\n  audience: a\n  algorithms: [none]\n");
        assert!(
            problems[0].contains("`none` (unsigned tokens) is never accepted"),
            "{problems:?}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_role_map_targets_are_reported() {
        let (_, problems) =
            read("oidc:\n  issuer: https://id.example.org\n  audience: a\n  roles_claim: x\n");
        assert!(
            problems.iter().any(|p| p.contains("oidc.roles_claim")),
            "{problems:?}"
        );
        let (_, problems) = read(
            "oidc:\n  issuer: https://id.example.org\n  audience: a\n  role_map:\n    carehub-admin: admin\n    nurse: clincian\n",
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("oidc.role_map.nurse: unknown carehub role \"clincian\""));
    }
}
