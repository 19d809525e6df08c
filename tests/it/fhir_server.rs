//! A local FHIR R4 server for the FHIR pull connector's tests (`type: fhir`): `_lastUpdated`
//! searches paged over a snapshot, next links both relative and absolute, injected failures,
//! and no / basic / OAuth2 client-credentials auth, plus the corpus's FHIR resources to serve.
//! It is a test double: it answers only what an incremental pull asks, and must not grow into a
//! FHIR server (no reads, no writes over HTTP, no other search parameters).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[path = "fhir_server_auth.rs"]
mod auth;
#[path = "fhir_server_corpus.rs"]
mod corpus;

/// The page size when a search gives no `_count`.
const DEFAULT_COUNT: usize = 50;
/// The largest page size; a larger `_count` is cut to it.
const MAX_COUNT: usize = 1000;

/// A FHIR R4 server on a port of 127.0.0.1, serving searches under `/fhir` and OAuth2 tokens at
/// `/token`. Dropping it stops the server.
pub struct FhirServer {
    shared: Arc<Mutex<ServerState>>,
    addr: SocketAddr,
    /// Dropped with the server, which ends the graceful shutdown's wait.
    _stop: oneshot::Sender<()>,
}

/// What the server has answered so far, for assertions.
#[derive(Clone, Debug, Default)]
pub struct ServerStats {
    /// Searches answered 200 (first pages and next pages).
    pub searches_ok: usize,
    /// Searches answered with an injected failure ([`FhirServer::fail_next`]) or a 400.
    pub searches_failed: usize,
    /// Searches answered 401.
    pub unauthorized: usize,
    /// Tokens the token endpoint handed out.
    pub tokens_issued: usize,
    /// The query string of every search request, in order (empty when it had none).
    pub queries: Vec<String>,
}

impl FhirServer {
    /// Starts a server holding `resources` (FHIR JSON objects with resourceType and id;
    /// meta.lastUpdated and meta.versionId are set by the server when absent, see `put`).
    pub async fn start(resources: Vec<Value>) -> FhirServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a port for the FHIR server");
        let addr = listener.local_addr().expect("the FHIR server's address");
        let mut state = ServerState::new(format!("http://{addr}/fhir"));
        state.load(resources);
        let shared = Arc::new(Mutex::new(state));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(run(listener, shared.clone(), async move {
            let _ = stopped.await;
        }));
        FhirServer {
            shared,
            addr,
            _stop: stop,
        }
    }

    /// The service base URL: `http://127.0.0.1:PORT/fhir`.
    pub fn base_url(&self) -> String {
        format!("http://{}/fhir", self.addr)
    }

    /// The OAuth2 token endpoint: `http://127.0.0.1:PORT/token`.
    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Adds or updates a resource: a new version (versionId + 1) with lastUpdated = now
    /// (strictly later than any earlier lastUpdated the server handed out, even within the same
    /// millisecond). Searches already under way keep paging over what they started on.
    pub fn put(&self, resource: Value) {
        lock(&self.shared).put(resource);
    }

    /// Deletes a resource: it leaves searches, and its type's history records the deletion.
    pub fn delete(&self, resource_type: &str, id: &str) {
        let mut state = lock(&self.shared);
        if let Some(by_id) = state.resources.get_mut(resource_type) {
            by_id.remove(id);
        }
        let at = state.next_stamp();
        state
            .history
            .push((at, resource_type.to_string(), id.to_string(), None));
    }

    /// The next `n` search requests (GET /fhir/{Type}…, including next-page requests) answer
    /// with `status` (e.g. 429 or 500) and, when given, a `Retry-After: secs` header, before
    /// normal service resumes. They fail whatever their credentials.
    pub fn fail_next(&self, n: usize, status: u16, retry_after_secs: Option<u64>) {
        self.fail_after(0, n, status, retry_after_secs);
    }

    /// As [`Self::fail_next`], after `ok` more search requests are answered normally (an
    /// outage in the middle of a run).
    pub fn fail_after(&self, ok: usize, n: usize, status: u16, retry_after_secs: Option<u64>) {
        let status = StatusCode::from_u16(status).expect("fail_next takes an HTTP status");
        lock(&self.shared).failures = Failures {
            ok,
            left: n,
            status,
            retry_after_secs,
        };
    }

    /// Requires `Authorization: Bearer <token>` on searches; tokens come from the token
    /// endpoint for this client id/secret and expire after `ttl_secs` (then searches answer
    /// 401). Replaces any earlier auth requirement.
    pub fn require_oauth(&self, client_id: &str, client_secret: &str, ttl_secs: u64) {
        lock(&self.shared).auth = Auth::OAuth2 {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            ttl_secs,
        };
    }

    /// Requires SMART Backend Services tokens: the token endpoint takes a client assertion, an
    /// ES384 JWT signed by the key whose public part is `public_key` (uncompressed P-384
    /// point), with `iss` = `sub` = `client_id`, `aud` = the token URL and an `exp` to come.
    pub fn require_smart(&self, client_id: &str, public_key: &[u8], ttl_secs: u64) {
        lock(&self.shared).auth = Auth::Smart {
            client_id: client_id.to_string(),
            public_key: public_key.to_vec(),
            ttl_secs,
        };
    }

    /// Requires HTTP basic auth on searches. Replaces any earlier auth requirement.
    pub fn require_basic(&self, user: &str, password: &str) {
        lock(&self.shared).auth = Auth::Basic {
            user: user.to_string(),
            password: password.to_string(),
        };
    }

    /// Expires every token handed out so far (the next search with one answers 401).
    pub fn expire_tokens(&self) {
        lock(&self.shared).tokens.clear();
    }

    /// Counters for assertions: searches served (by status), tokens issued, and the query
    /// strings received.
    pub fn stats(&self) -> ServerStats {
        lock(&self.shared).stats.clone()
    }
}

/// Serves `shared` on `listener` until `shutdown` completes.
async fn run(
    listener: TcpListener,
    shared: Arc<Mutex<ServerState>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = Router::new()
        .route("/fhir/{resource_type}", get(search))
        .route("/fhir/{resource_type}/_history", get(history))
        .route("/token", post(token))
        .with_state(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .expect("the FHIR test server runs");
}

fn lock(shared: &Mutex<ServerState>) -> MutexGuard<'_, ServerState> {
    shared
        .lock()
        .expect("no handler panicked holding the FHIR server's state")
}

/// Everything the server holds, behind one lock (no handler awaits while holding it).
struct ServerState {
    base: String,
    /// Type → id → current version.
    resources: HashMap<String, BTreeMap<String, Stored>>,
    /// Every version put and every deletion, in order: (when, type, id, the version or None).
    history: Vec<(Timestamp, String, String, Option<Arc<Value>>)>,
    /// The latest lastUpdated handed out or loaded; the next one is strictly later.
    last_stamp: Timestamp,
    /// The searches started so far, by number: what their page tokens page over.
    searches: Vec<Snapshot>,
    failures: Failures,
    auth: Auth,
    /// Live bearer tokens and when they expire.
    tokens: HashMap<String, Instant>,
    stats: ServerStats,
}

/// A resource's current version with its parsed lastUpdated.
struct Stored {
    updated: Timestamp,
    /// Shared with the history and the searches' snapshots, never copied.
    resource: Arc<Value>,
}

/// The resources a search matched when it started, in order, and its page size.
struct Snapshot {
    resource_type: String,
    matches: Vec<Arc<Value>>,
    count: usize,
}

/// Failures still to inject into searches.
struct Failures {
    /// Searches still answered normally before the failures start.
    ok: usize,
    left: usize,
    status: StatusCode,
    retry_after_secs: Option<u64>,
}

/// The credentials searches need.
enum Auth {
    None,
    Basic {
        user: String,
        password: String,
    },
    OAuth2 {
        client_id: String,
        client_secret: String,
        ttl_secs: u64,
    },
    /// SMART Backend Services: a client assertion (ES384 JWT) signed by this public key.
    Smart {
        client_id: String,
        public_key: Vec<u8>,
        ttl_secs: u64,
    },
}

impl ServerState {
    fn new(base: String) -> ServerState {
        ServerState {
            base,
            resources: HashMap::new(),
            history: Vec::new(),
            last_stamp: Timestamp::UNIX_EPOCH,
            searches: Vec::new(),
            failures: Failures {
                ok: 0,
                left: 0,
                status: StatusCode::OK,
                retry_after_secs: None,
            },
            auth: Auth::None,
            tokens: HashMap::new(),
            stats: ServerStats::default(),
        }
    }

    /// Takes the resources as given, filling in meta.versionId ("1") and meta.lastUpdated
    /// (stamped in order, later than every lastUpdated already present) where absent.
    fn load(&mut self, resources: Vec<Value>) {
        let given = |r: &Value| {
            r["meta"]["lastUpdated"]
                .as_str()
                .and_then(|s| s.parse::<Timestamp>().ok())
        };
        if let Some(latest) = resources.iter().filter_map(given).max() {
            self.last_stamp = self.last_stamp.max(latest);
        }
        for mut resource in resources {
            let updated = match given(&resource) {
                Some(updated) => updated,
                None => {
                    let updated = self.next_stamp();
                    meta_of(&mut resource)["lastUpdated"] = json!(format!("{updated:.3}"));
                    updated
                }
            };
            if resource["meta"]["versionId"].is_null() {
                meta_of(&mut resource)["versionId"] = json!("1");
            }
            let (rtype, id) = type_and_id(&resource);
            let resource = Arc::new(resource);
            self.history.push((updated, rtype, id, Some(resource.clone())));
            self.insert(updated, resource);
        }
    }

    fn put(&mut self, mut resource: Value) {
        let (rtype, id) = type_and_id(&resource);
        let version = self
            .resources
            .get(&rtype)
            .and_then(|by_id| by_id.get(&id))
            .and_then(|stored| stored.resource["meta"]["versionId"].as_str()?.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        let updated = self.next_stamp();
        let meta = meta_of(&mut resource);
        meta["versionId"] = json!(version.to_string());
        meta["lastUpdated"] = json!(format!("{updated:.3}"));
        let resource = Arc::new(resource);
        self.history
            .push((updated, rtype.clone(), id.clone(), Some(resource.clone())));
        self.insert(updated, resource);
    }

    fn insert(&mut self, updated: Timestamp, resource: Arc<Value>) {
        let (rtype, id) = type_and_id(&resource);
        self.resources
            .entry(rtype)
            .or_default()
            .insert(id, Stored { updated, resource });
    }

    /// Now, to the millisecond, or 1 ms after the last stamp when that is not earlier.
    fn next_stamp(&mut self) -> Timestamp {
        let ms = Timestamp::now()
            .as_millisecond()
            .max(self.last_stamp.as_millisecond() + 1);
        self.last_stamp = Timestamp::from_millisecond(ms).expect("a lastUpdated within jiff's range");
        self.last_stamp
    }

    /// The answer to a search request, failures and auth first.
    fn answer_search(&mut self, resource_type: &str, query: &str, headers: &HeaderMap) -> Response {
        self.stats.queries.push(query.to_string());
        if self.failures.left > 0 && self.failures.ok > 0 {
            self.failures.ok -= 1;
        } else if self.failures.left > 0 {
            self.failures.left -= 1;
            self.stats.searches_failed += 1;
            let mut response = fhir_json(
                self.failures.status,
                outcome("transient", "an injected failure (FhirServer::fail_next)"),
            );
            if let Some(secs) = self.failures.retry_after_secs {
                response.headers_mut().insert(header::RETRY_AFTER, secs.into());
            }
            return response;
        }
        if let Some(challenge) = self.refusal(headers) {
            self.stats.unauthorized += 1;
            let mut response = fhir_json(
                StatusCode::UNAUTHORIZED,
                outcome("login", "missing, wrong or expired credentials"),
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                challenge.parse().expect("a header value"),
            );
            return response;
        }
        let answer = match resource_type.strip_suffix("/_history") {
            Some(t) => self.history_page(t, query).map(|bundle| bundle.to_string()),
            None => self.search(resource_type, query),
        };
        match answer {
            Ok(bundle) => {
                self.stats.searches_ok += 1;
                fhir_text(StatusCode::OK, bundle)
            }
            Err(problem) => {
                self.stats.searches_failed += 1;
                fhir_json(StatusCode::BAD_REQUEST, outcome("invalid", &problem))
            }
        }
    }

    /// A type's history (`GET /fhir/{Type}/_history?_since=…&_count=…&_offset=…`): versions and
    /// deletions since the instant, newest first, as a `history` Bundle; a deletion is an entry
    /// without a resource, `request.method` DELETE and `response.status` 410.
    fn history_page(&mut self, resource_type: &str, query: &str) -> Result<Value, String> {
        let params = form_pairs(query);
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.replace(' ', "+"))
        };
        let since = match get("_since") {
            Some(v) => Some(
                v.parse::<Timestamp>()
                    .map_err(|_| format!("_since: not an instant: {v:?}"))?,
            ),
            None => None,
        };
        let count: usize = get("_count")
            .map_or(Ok(50), |c| c.parse())
            .map_err(|_| "_count: not a number")?;
        let offset: usize = get("_offset")
            .map_or(Ok(0), |c| c.parse())
            .map_err(|_| "_offset: not a number")?;
        let mut items: Vec<&(Timestamp, String, String, Option<Arc<Value>>)> = self
            .history
            .iter()
            .filter(|(at, t, _, _)| t == resource_type && since.is_none_or(|s| *at >= s))
            .collect();
        items.sort_by_key(|item| std::cmp::Reverse(item.0));
        let total = items.len();
        let entries: Vec<Value> = items
            .iter()
            .skip(offset)
            .take(count.max(1))
            .map(|(at, t, id, resource)| match resource {
                Some(r) => json!({"fullUrl": format!("{}/{t}/{id}", self.base), "resource": **r,
                                  "request": {"method": "PUT", "url": format!("{t}/{id}")},
                                  "response": {"status": "200", "lastModified": format!("{at:.3}")}}),
                None => json!({"request": {"method": "DELETE", "url": format!("{t}/{id}")},
                               "response": {"status": "410", "lastModified": format!("{at:.3}")}}),
            })
            .collect();
        let mut links =
            vec![json!({"relation": "self", "url": format!("{}/{resource_type}/_history", self.base)})];
        if offset + count.max(1) < total {
            let mut next = format!(
                "{}/{resource_type}/_history?_count={count}&_offset={}",
                self.base,
                offset + count.max(1)
            );
            if let Some(s) = since {
                next.push_str(&format!("&_since={}", s.to_string().replace('+', "%2B")));
            }
            links.push(json!({"relation": "next", "url": next}));
        }
        Ok(
            json!({"resourceType": "Bundle", "type": "history", "total": total, "link": links, "entry": entries}),
        )
    }

    /// One page of a search: a new search on the current resources, or the next page of one
    /// started earlier (`_page_token`), as a searchset Bundle's text (written straight from
    /// the stored resources: a page copies none of them).
    fn search(&mut self, resource_type: &str, query: &str) -> Result<String, String> {
        let params = form_pairs(query);
        let (number, offset) = match params.iter().find(|(k, _)| k == "_page_token") {
            Some((_, token)) => parse_page_token(token)
                .filter(|(n, _)| {
                    self.searches
                        .get(*n)
                        .is_some_and(|s| s.resource_type == resource_type)
                })
                .ok_or_else(|| format!("_page_token: unknown page {token:?}"))?,
            None => {
                let snapshot = self.snapshot(resource_type, &params)?;
                self.searches.push(snapshot);
                (self.searches.len() - 1, 0)
            }
        };
        let snapshot = &self.searches[number];
        let base = &self.base;
        let mut entries = String::new();
        for resource in snapshot.matches.iter().skip(offset).take(snapshot.count) {
            let id = resource["id"].as_str().unwrap_or_default();
            let full_url = Value::String(format!("{base}/{resource_type}/{id}"));
            if !entries.is_empty() {
                entries.push(',');
            }
            entries.push_str(&format!(
                r#"{{"fullUrl":{full_url},"resource":{resource},"search":{{"mode":"match"}}}}"#
            ));
        }
        let mut links = vec![json!({"relation": "self", "url": format!("{base}/{resource_type}?{query}")})];
        let next_offset = offset + snapshot.count;
        if snapshot.count > 0 && next_offset < snapshot.matches.len() {
            // Odd pages link relatively (to the service base), even pages absolutely.
            let page = offset / snapshot.count + 1;
            let path = format!("{resource_type}?_page_token=s{number}-{next_offset}");
            let url = if page % 2 == 1 {
                path
            } else {
                format!("{base}/{path}")
            };
            links.push(json!({"relation": "next", "url": url}));
        }
        let head = json!({
            "resourceType": "Bundle",
            "id": format!("search-{number}-{offset}"),
            "meta": {"lastUpdated": format!("{:.3}", Timestamp::now())},
            "type": "searchset",
            "total": snapshot.matches.len(),
            "link": links,
        })
        .to_string();
        // The head's closing brace gives way to the entries.
        Ok(format!("{},\"entry\":[{entries}]}}", &head[..head.len() - 1]))
    }

    /// What a new search matches now, sorted by lastUpdated then id.
    fn snapshot(&self, resource_type: &str, params: &[(String, String)]) -> Result<Snapshot, String> {
        let mut bounds = Vec::new();
        let mut count = DEFAULT_COUNT;
        for (key, value) in params {
            match key.as_str() {
                "_lastUpdated" => bounds.push(UpdatedBound::parse(value)?),
                "_count" => {
                    let n: usize = value
                        .parse()
                        .map_err(|_| format!("_count: not a number: {value:?}"))?;
                    count = n.min(MAX_COUNT);
                }
                _ => {}
            }
        }
        let mut matches: Vec<(&String, &Stored)> = self
            .resources
            .get(resource_type)
            .into_iter()
            .flatten()
            .filter(|(_, stored)| bounds.iter().all(|b| b.admits(stored.updated)))
            .collect();
        matches.sort_by(|(a_id, a), (b_id, b)| (a.updated, a_id).cmp(&(b.updated, b_id)));
        Ok(Snapshot {
            resource_type: resource_type.to_string(),
            matches: matches
                .into_iter()
                .map(|(_, stored)| stored.resource.clone())
                .collect(),
            count,
        })
    }
}

async fn search(
    State(shared): State<Arc<Mutex<ServerState>>>,
    UrlPath(resource_type): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    lock(&shared).answer_search(&resource_type, query.as_deref().unwrap_or_default(), &headers)
}

async fn history(
    State(shared): State<Arc<Mutex<ServerState>>>,
    UrlPath(resource_type): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let key = format!("{resource_type}/_history");
    lock(&shared).answer_search(&key, query.as_deref().unwrap_or_default(), &headers)
}

async fn token(State(shared): State<Arc<Mutex<ServerState>>>, headers: HeaderMap, body: String) -> Response {
    lock(&shared).answer_token(&headers, &body)
}

/// One `_lastUpdated` condition: `ge`, `gt`, `le` or `lt` and an instant.
struct UpdatedBound {
    prefix: String,
    at: Timestamp,
}

impl UpdatedBound {
    fn parse(value: &str) -> Result<UpdatedBound, String> {
        let (prefix, instant) = value.split_at_checked(2).unwrap_or(("", value));
        if !["ge", "gt", "le", "lt"].contains(&prefix) {
            return Err(format!(
                "_lastUpdated: expected ge, gt, le or lt before the instant: {value:?}"
            ));
        }
        // A `+` offset sent unencoded arrives as a space.
        let at = instant
            .replace(' ', "+")
            .parse::<Timestamp>()
            .map_err(|e| format!("_lastUpdated: not an instant: {instant:?}: {e}"))?;
        Ok(UpdatedBound {
            prefix: prefix.to_string(),
            at,
        })
    }

    fn admits(&self, updated: Timestamp) -> bool {
        match self.prefix.as_str() {
            "ge" => updated >= self.at,
            "gt" => updated > self.at,
            "le" => updated <= self.at,
            _ => updated < self.at,
        }
    }
}

/// `s{search}-{offset}` → (search, offset).
fn parse_page_token(token: &str) -> Option<(usize, usize)> {
    let (number, offset) = token.strip_prefix('s')?.split_once('-')?;
    Some((number.parse().ok()?, offset.parse().ok()?))
}

pub fn type_and_id(resource: &Value) -> (String, String) {
    match (resource["resourceType"].as_str(), resource["id"].as_str()) {
        (Some(rtype), Some(id)) => (rtype.to_string(), id.to_string()),
        _ => panic!("a resource for the FHIR server needs resourceType and id: {resource}"),
    }
}

/// The resource's `meta` object, made one when absent or not an object.
fn meta_of(resource: &mut Value) -> &mut Value {
    let object = resource
        .as_object_mut()
        .expect("a FHIR resource is a JSON object");
    let meta = object.entry("meta").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta
}

fn fhir_json(status: StatusCode, body: Value) -> Response {
    fhir_text(status, body.to_string())
}

fn fhir_text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/fhir+json")], body).into_response()
}

fn outcome(code: &str, text: &str) -> Value {
    json!({"resourceType": "OperationOutcome",
           "issue": [{"severity": "error", "code": code, "diagnostics": text}]})
}

/// `a=1&b=x%20y` as decoded pairs, in order (`application/x-www-form-urlencoded`).
fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(key), form_decode(value))
        })
        .collect()
}

/// Undoes form encoding: `+` is a space, `%XX` a byte; a stray `%` stays itself.
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = text
            .get(i + 1..i + 3)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(hex)) => {
                out.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
