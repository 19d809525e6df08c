//! Who may call what: the roles and the one table of routes and the roles allowed on each.
//!
//! Every route the API serves is registered through [`Routes`], which looks its rule up in
//! [`RULES`] and refuses to build a router with a route that has none (a route added without
//! a rule fails every test that starts a hub). The access layer (`auth.rs`) then answers 401
//! without a credential, 403 for a role not in the rule, and audits the routes marked so.
//! This room holds no I/O.

use axum::Router;
use axum::http::Method;
use axum::routing::MethodRouter;

/// A role a token or an identity-provider subject holds.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including tokens, merges, review decisions and reprocessing.
    Admin,
    /// Connectors, message metadata, queue and notification state: never patient fields
    /// nor message bodies.
    Ops,
    /// Patients, timelines, interactions, consents; FHIR reads.
    Clinician,
    /// Systems that send records in: FHIR push, imports, form webhooks.
    Sender,
    /// The audit log.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Ops,
        Role::Clinician,
        Role::Sender,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Ops => "ops",
            Role::Clinician => "clinician",
            Role::Sender => "sender",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether answers to this role may carry message bodies (raw HL7, FHIR JSON).
    pub fn sees_message_bodies(self) -> bool {
        matches!(self, Role::Admin)
    }

    /// Whether this role may see or name patients (their data, their identifiers).
    pub fn sees_patients(self) -> bool {
        matches!(self, Role::Admin | Role::Clinician)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the audit log records of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audit {
    /// Nothing: the answer carries no patient data and changes nothing that matters.
    No,
    /// The answer carries patient data: who saw which persons.
    PhiRead,
    /// An action that changes patients or access (merge, review decision, token…).
    Action,
}

/// The rule of one route.
#[derive(Debug, Clone, Copy)]
pub struct RouteRule {
    pub method: &'static str,
    /// The path as the router writes it (`/api/v1/patients/{id}`).
    pub path: &'static str,
    /// Open to anyone: health checks, and provider webhooks (which check their own signatures).
    pub public: bool,
    pub roles: &'static [Role],
    pub audit: Audit,
    /// A page of the operator console: the session cookie is a credential here (besides a
    /// bearer token), a browser without one is sent to the login page, and every POST made
    /// with the cookie must carry the session's CSRF token.
    pub console: bool,
}

impl RouteRule {
    pub fn allows(&self, role: Role) -> bool {
        self.public || self.roles.contains(&role)
    }
}

use Role::{Admin, Auditor, Clinician, Ops, Sender};

const fn rule(method: &'static str, path: &'static str, roles: &'static [Role], audit: Audit) -> RouteRule {
    RouteRule {
        method,
        path,
        public: false,
        roles,
        audit,
        console: false,
    }
}

/// A console page: like [`rule`], with the session cookie accepted.
const fn page(method: &'static str, path: &'static str, roles: &'static [Role], audit: Audit) -> RouteRule {
    RouteRule {
        method,
        path,
        public: false,
        roles,
        audit,
        console: true,
    }
}

const fn open(method: &'static str, path: &'static str) -> RouteRule {
    RouteRule {
        method,
        path,
        public: true,
        roles: &[],
        audit: Audit::No,
        console: false,
    }
}

/// The path under which every FHIR push connector's endpoint is ruled (their paths are
/// configured, so they are looked up by this name).
pub const FHIR_PUSH: &str = "{fhir_push}";

/// Every route and who may call it. docs/security.md prints this table.
pub const RULES: &[RouteRule] = &[
    open("GET", "/healthz"),
    open("GET", "/readyz"),
    // Prometheus scrapes with an ops token; labels and gauges carry no patient data.
    rule("GET", "/metrics", &[Admin, Ops], Audit::No),
    // Patients and what belongs to them: patient data, read by clinicians.
    rule("GET", "/api/v1/patients", &[Admin, Clinician], Audit::PhiRead),
    rule(
        "GET",
        "/api/v1/patients/{id}",
        &[Admin, Clinician],
        Audit::PhiRead,
    ),
    rule(
        "GET",
        "/api/v1/patients/{id}/timeline",
        &[Admin, Clinician],
        Audit::PhiRead,
    ),
    rule(
        "GET",
        "/api/v1/patients/{id}/interactions",
        &[Admin, Clinician],
        Audit::PhiRead,
    ),
    rule(
        "GET",
        "/api/v1/patients/{id}/consents",
        &[Admin, Clinician],
        Audit::PhiRead,
    ),
    rule(
        "POST",
        "/api/v1/patients/{id}/consents",
        &[Admin, Clinician],
        Audit::Action,
    ),
    rule(
        "POST",
        "/api/v1/patients/{id}/unsubscribe",
        &[Admin, Clinician],
        Audit::Action,
    ),
    rule(
        "GET",
        "/api/v1/patients/{id}/preferences",
        &[Admin, Clinician],
        Audit::PhiRead,
    ),
    rule(
        "PUT",
        "/api/v1/patients/{id}/preferences",
        &[Admin, Clinician],
        Audit::Action,
    ),
    rule("POST", "/api/v1/match", &[Admin, Clinician], Audit::PhiRead),
    // Identity decisions: admin only (clinicians may look at the queue).
    rule("GET", "/api/v1/review", &[Admin, Clinician], Audit::PhiRead),
    rule("POST", "/api/v1/review/{id}/link", &[Admin], Audit::Action),
    rule("POST", "/api/v1/review/{id}/reject", &[Admin], Audit::Action),
    rule("POST", "/api/v1/patients/{id}/merge", &[Admin], Audit::Action),
    rule("POST", "/api/v1/patients/{id}/unmerge", &[Admin], Audit::Action),
    // Operations: metadata, counts and states; bodies only for roles that see them.
    rule("GET", "/api/v1/messages", &[Admin, Ops], Audit::No),
    rule("GET", "/api/v1/messages/{id}", &[Admin, Ops], Audit::PhiRead),
    rule("POST", "/api/v1/messages/reprocess", &[Admin], Audit::Action),
    rule("GET", "/api/v1/connectors", &[Admin, Ops], Audit::No),
    rule("GET", "/api/v1/notifications", &[Admin, Ops], Audit::No),
    rule("GET", "/api/v1/reports/channels", &[Admin, Ops], Audit::No),
    rule("GET", "/api/v1/alerts", &[Admin, Ops], Audit::No),
    // Provider webhooks check the provider's own signature.
    open("POST", "/api/v1/webhooks/{channel}"),
    // Change notifications to clinic systems: ids only, but who is told of what is access.
    rule("GET", "/api/v1/subscriptions", &[Admin], Audit::No),
    rule("POST", "/api/v1/subscriptions", &[Admin], Audit::Action),
    rule("DELETE", "/api/v1/subscriptions/{name}", &[Admin], Audit::Action),
    // Access itself.
    rule("GET", "/api/v1/tokens", &[Admin], Audit::No),
    rule("POST", "/api/v1/tokens", &[Admin], Audit::Action),
    rule("DELETE", "/api/v1/tokens/{id}", &[Admin], Audit::Action),
    rule("GET", "/api/v1/audit", &[Admin, Auditor], Audit::No),
    // The OpenAPI document: the API's shape, no data; open so that clients and tools can read
    // it before they hold a token.
    open("GET", "/api/v1/openapi.json"),
    rule(
        "GET",
        "/api/v1/whoami",
        &[Admin, Ops, Clinician, Sender, Auditor],
        Audit::No,
    ),
    // Records sent in.
    rule("POST", FHIR_PUSH, &[Admin, Sender], Audit::No),
    // The operator console (src/console): pages follow the API's rules for the same data.
    open("GET", "/login"),
    open("POST", "/login"),
    open("GET", "/login/oidc"),
    open("GET", "/login/oidc/callback"),
    open("GET", "/language"),
    open("GET", "/assets/{file}"),
    page(
        "POST",
        "/logout",
        &[Admin, Ops, Clinician, Sender, Auditor],
        Audit::No,
    ),
    page("GET", "/", &[Admin, Ops], Audit::No),
    page("GET", "/messages", &[Admin, Ops], Audit::No),
    page("GET", "/messages/{id}", &[Admin, Ops], Audit::PhiRead),
    page("POST", "/messages/reprocess", &[Admin], Audit::Action),
    page("GET", "/patients", &[Admin, Clinician], Audit::PhiRead),
    page("GET", "/patients/{id}", &[Admin, Clinician], Audit::PhiRead),
    page("POST", "/patients/{id}/merge", &[Admin], Audit::Action),
    page("POST", "/patients/{id}/unmerge", &[Admin], Audit::Action),
    page("GET", "/review", &[Admin, Clinician], Audit::PhiRead),
    page("POST", "/review/{id}/link", &[Admin], Audit::Action),
    page("POST", "/review/{id}/reject", &[Admin], Audit::Action),
    page("GET", "/notifications", &[Admin, Ops], Audit::No),
];

/// The rule for `method` on `path` as the router writes it.
pub fn rule_for(method: &Method, path: &str) -> Option<&'static RouteRule> {
    RULES
        .iter()
        .find(|r| r.method == method.as_str() && r.path == path)
}

/// Builds a router route by route, each with its rule, and remembers them all.
pub struct Routes<S> {
    router: Router<S>,
    registered: Vec<(Method, String, &'static RouteRule)>,
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Routes {
            router: Router::new(),
            registered: Vec::new(),
        }
    }

    /// Adds `handler` for `method` on `path`, ruled by the table's entry for it.
    ///
    /// # Panics
    /// When the table has no rule for the route: a programming error, caught by any test
    /// that starts a hub.
    pub fn add(self, method: Method, path: &str, handler: MethodRouter<S>) -> Self {
        let rule = rule_for(&method, path)
            .unwrap_or_else(|| panic!("route {method} {path} has no entry in api::access::RULES: add one"));
        self.add_ruled(method, path, handler, rule)
    }

    /// Adds a route whose path is configured, under a named rule (e.g. [`FHIR_PUSH`]).
    pub fn add_ruled(
        mut self,
        method: Method,
        path: &str,
        handler: MethodRouter<S>,
        rule: &'static RouteRule,
    ) -> Self {
        self.router = self.router.route(path, handler);
        self.registered.push((method, path.to_string(), rule));
        self
    }

    pub fn into_parts(self) -> (Router<S>, Vec<(Method, String, &'static RouteRule)>) {
        (self.router, self.registered)
    }
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_is_unique_and_names_roles_or_is_open() {
        for (i, r) in RULES.iter().enumerate() {
            assert!(
                r.public || !r.roles.is_empty(),
                "{} {} allows nobody",
                r.method,
                r.path
            );
            assert!(!r.public || r.audit == Audit::No, "{} {}", r.method, r.path);
            assert!(
                !RULES[..i]
                    .iter()
                    .any(|o| o.method == r.method && o.path == r.path),
                "{} {} twice",
                r.method,
                r.path
            );
        }
    }

    #[test]
    fn ops_is_never_allowed_patient_routes() {
        for r in RULES.iter().filter(|r| {
            r.path.starts_with("/api/v1/patients")
                || r.path.starts_with("/patients")
                || r.path.starts_with("/review")
                || r.path == "/api/v1/match"
        }) {
            assert!(!r.allows(Role::Ops), "{} {}", r.method, r.path);
        }
    }

    #[test]
    fn docs_security_lists_every_rule() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md"))
            .expect("docs/security.md");
        for r in RULES {
            let route = format!("| `{} {}`", r.method, r.path);
            let row = doc
                .lines()
                .find(|l| l.starts_with(&route))
                .unwrap_or_else(|| panic!("docs/security.md has no row for {} {}", r.method, r.path));
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let roles = cells.get(2).copied().unwrap_or_default();
            if r.public {
                assert!(roles.starts_with("open"), "{row}");
            } else {
                let listed: Vec<&str> = roles.split(", ").collect();
                let mut expected: Vec<&str> = r.roles.iter().map(|r| r.as_str()).collect();
                let mut listed_sorted = listed.clone();
                expected.sort();
                listed_sorted.sort();
                assert_eq!(listed_sorted, expected, "{row}");
            }
            let audited = match r.audit {
                Audit::No => "no",
                Audit::PhiRead => "patient data",
                Audit::Action => "action",
            };
            assert_eq!(cells.get(3).copied(), Some(audited), "{row}");
        }
    }

    #[test]
    fn the_identity_providers_role_names_are_these_roles() {
        let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(super::super::oidc::ROLE_NAMES, names.as_slice());
    }

    #[test]
    fn roles_read_back() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
