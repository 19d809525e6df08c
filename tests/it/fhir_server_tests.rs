//! The local FHIR test server's own tests (`fhir_server.rs`, which the pull tests and the
//! `fhir_pull` benchmark share): paging, `_lastUpdated`, injected failures, authentication.

use std::collections::{BTreeMap, HashSet};

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::fhir_server::*;
use crate::helpers::corpus_dir;

fn patient(id: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "name": [{"family": format!("Family-{id}")}]})
}

/// An HTTP client for the server (plain HTTP, no TLS).
fn http_client() -> reqwest::Client {
    crate::helpers::http()
}

/// GETs a search, with an `Authorization` value when given: status, headers, body.
async fn fetch(url: &str, authorization: Option<&str>) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = http_client().get(url);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let resp = request.send().await.expect("the FHIR server answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"].as_array().cloned().unwrap_or_default()
}

fn ids(bundle: &Value) -> Vec<String> {
    entries(bundle)
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .collect()
}

fn next_link(bundle: &Value) -> Option<String> {
    let links = bundle["link"].as_array()?;
    let next = links.iter().find(|l| l["relation"] == "next")?;
    Some(next["url"].as_str()?.to_string())
}

fn updated(resource: &Value) -> Timestamp {
    resource["meta"]["lastUpdated"].as_str().unwrap().parse().unwrap()
}

/// POSTs a token request (its form body or basic auth already set): status, body.
async fn request_token(request: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = request
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .expect("the token endpoint answers");
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn paging_follows_relative_and_absolute_next_links_and_returns_every_resource_once() {
    let mut resources: Vec<Value> = (0..25).map(|n| patient(&format!("p{n:02}"))).collect();
    resources.push(json!({"resourceType": "Observation", "id": "o1", "status": "final"}));
    let server = FhirServer::start(resources).await;
    let base = server.base_url();
    let mut url = format!("{base}/Patient?_lastUpdated=ge2000-01-01T00:00:00Z&_count=10&_sort=_lastUpdated");
    let (mut seen, mut next_links, mut stamps) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        let (status, headers, bundle) = fetch(&url, None).await;
        assert_eq!(status, 200, "{bundle}");
        assert_eq!(headers["content-type"], "application/fhir+json");
        assert_eq!(bundle["type"], "searchset");
        assert_eq!(bundle["total"], 25, "the total is the snapshot's");
        for entry in entries(&bundle) {
            let id = entry["resource"]["id"].as_str().unwrap();
            assert_eq!(entry["fullUrl"], format!("{base}/Patient/{id}"));
            assert_eq!(entry["search"]["mode"], "match");
            assert_eq!(entry["resource"]["meta"]["versionId"], "1");
            stamps.push(updated(&entry["resource"]));
        }
        seen.extend(ids(&bundle));
        if next_links.is_empty() {
            // Changes after the search started move nothing on its later pages.
            server.put(patient("p00"));
            server.put(patient("p99"));
        }
        let Some(next) = next_link(&bundle) else { break };
        let resolved = reqwest::Url::parse(&url)
            .unwrap()
            .join(&next)
            .unwrap()
            .to_string();
        if !next.starts_with("http") {
            assert_eq!(
                resolved,
                format!("{base}/{next}"),
                "relative to the request and to the base alike"
            );
        }
        next_links.push(next);
        url = resolved;
    }
    let expected: Vec<String> = (0..25).map(|n| format!("p{n:02}")).collect();
    assert_eq!(seen, expected, "every Patient once, in lastUpdated order");
    assert!(
        stamps.windows(2).all(|w| w[0] < w[1]),
        "stamped in order: {stamps:?}"
    );
    assert_eq!(next_links.len(), 2, "{next_links:?}");
    assert!(
        next_links[0].starts_with("Patient?"),
        "page 1 links relatively: {}",
        next_links[0]
    );
    assert!(
        next_links[1].starts_with(&base),
        "page 2 links absolutely: {}",
        next_links[1]
    );
    let stats = server.stats();
    assert_eq!(
        (stats.searches_ok, stats.searches_failed, stats.unauthorized),
        (3, 0, 0)
    );
    assert!(stats.queries[0].contains("_count=10"), "{:?}", stats.queries);
    assert!(
        stats.queries[1].starts_with("_page_token="),
        "{:?}",
        stats.queries
    );

    let (status, _, fresh) = fetch(&format!("{base}/Patient?_count=1000"), None).await;
    assert_eq!(status, 200);
    assert_eq!(fresh["total"], 26, "a new search sees the puts");
    assert_eq!(
        ids(&fresh)[24..],
        ["p00", "p99"],
        "p00's new version sorts last but one"
    );
    let (status, _, unknown) = fetch(&format!("{base}/Pokemon"), None).await;
    assert_eq!(
        (status, unknown["total"].clone(), entries(&unknown).len()),
        (200, json!(0), 0)
    );
    let (status, _, bad) = fetch(&format!("{base}/Patient?_lastUpdated=ge-yesterday"), None).await;
    assert_eq!(
        (status, bad["resourceType"].as_str()),
        (400, Some("OperationOutcome"))
    );
}

#[tokio::test]
async fn last_updated_gt_after_a_put_returns_only_the_new_version() {
    let server = FhirServer::start(vec![patient("a"), patient("b"), patient("c")]).await;
    let base = server.base_url();
    let (_, _, all) = fetch(
        &format!("{base}/Patient?_lastUpdated=ge2000-01-01T00:00:00Z"),
        None,
    )
    .await;
    assert_eq!(ids(&all), ["a", "b", "c"]);
    let cursor = updated(&entries(&all)[2]["resource"]);

    let mut b = patient("b");
    b["active"] = json!(true);
    server.put(b);
    let (status, _, newer) = fetch(&format!("{base}/Patient?_lastUpdated=gt{cursor:.3}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&newer), ["b"]);
    let newer_entries = entries(&newer);
    let resource = &newer_entries[0]["resource"];
    assert_eq!(
        (resource["meta"]["versionId"].as_str(), &resource["active"]),
        (Some("2"), &json!(true))
    );
    assert!(updated(resource) > cursor);
    let (_, _, from) = fetch(&format!("{base}/Patient?_lastUpdated=ge{cursor:.3}"), None).await;
    assert_eq!(ids(&from), ["c", "b"], "ge keeps the resource at the cursor");

    // The same instant with an offset (its `+` encoded), then two puts in one breath.
    let in_hanoi = cursor
        .display_with_offset(jiff::tz::offset(7))
        .to_string()
        .replace('+', "%2B");
    let (_, _, same) = fetch(&format!("{base}/Patient?_lastUpdated=gt{in_hanoi}"), None).await;
    assert_eq!(ids(&same), ["b"], "{in_hanoi}");
    let cursor = updated(resource);
    server.put(patient("d"));
    server.put(patient("e"));
    let (_, _, latest) = fetch(&format!("{base}/Patient?_lastUpdated=gt{cursor:.3}"), None).await;
    assert_eq!(ids(&latest), ["d", "e"]);
    let stamps: Vec<Timestamp> = entries(&latest).iter().map(|e| updated(&e["resource"])).collect();
    assert!(
        cursor < stamps[0] && stamps[0] < stamps[1],
        "strictly later each time: {stamps:?}"
    );
}

#[tokio::test]
async fn injected_failures_answer_with_retry_after_then_service_resumes() {
    let server = FhirServer::start(vec![patient("a")]).await;
    server.fail_next(2, 429, Some(1));
    let url = format!(
        "{}/Patient?_lastUpdated=ge2000-01-01T00:00:00Z",
        server.base_url()
    );
    for _ in 0..2 {
        let (status, headers, body) = fetch(&url, None).await;
        assert_eq!(status, 429);
        assert_eq!(headers["retry-after"], "1");
        assert_eq!(body["resourceType"], "OperationOutcome");
    }
    let (status, headers, body) = fetch(&url, None).await;
    assert_eq!((status, ids(&body)), (200, vec!["a".to_string()]));
    assert!(headers.get("retry-after").is_none());
    let stats = server.stats();
    assert_eq!(
        (stats.searches_ok, stats.searches_failed, stats.queries.len()),
        (1, 2, 3)
    );
}

#[tokio::test]
async fn oauth_searches_need_a_live_token_from_the_token_endpoint() {
    let server = FhirServer::start(vec![patient("a")]).await;
    server.require_oauth("carehub", "s3cret", 3600);
    let url = format!("{}/Patient", server.base_url());
    let client = http_client();
    let form =
        |secret: &str| format!("grant_type=client_credentials&client_id=carehub&client_secret={secret}");

    let (status, headers, _) = fetch(&url, None).await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let (status, body) = request_token(client.post(server.token_url()).body(form("wrong"))).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));

    let (status, body) = request_token(
        client
            .post(server.token_url())
            .body(form("s3cret") + "&scope=system%2FPatient.read"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["token_type"], &body["expires_in"]),
        (&json!("bearer"), &json!(3600))
    );
    assert_eq!(body["scope"], "system/Patient.read");
    let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());
    let (status, _, bundle) = fetch(&url, Some(&bearer)).await;
    assert_eq!((status, ids(&bundle)), (200, vec!["a".to_string()]));

    let by_basic = client
        .post(server.token_url())
        .basic_auth("carehub", Some("s3cret"));
    let (status, body) = request_token(by_basic.body("grant_type=client_credentials")).await;
    assert_eq!(status, 200, "client auth by HTTP basic: {body}");
    let second = format!("Bearer {}", body["access_token"].as_str().unwrap());
    assert_ne!(bearer, second);

    server.expire_tokens();
    assert_eq!(fetch(&url, Some(&bearer)).await.0, 401);
    assert_eq!(fetch(&url, Some(&second)).await.0, 401);
    let stats = server.stats();
    assert_eq!(
        (stats.tokens_issued, stats.searches_ok, stats.unauthorized),
        (2, 1, 3)
    );

    server.require_oauth("carehub", "s3cret", 0);
    let (_, body) = request_token(client.post(server.token_url()).body(form("s3cret"))).await;
    let stale = format!("Bearer {}", body["access_token"].as_str().unwrap());
    assert_eq!(
        fetch(&url, Some(&stale)).await.0,
        401,
        "a token with ttl 0 is born expired"
    );
}

#[tokio::test]
async fn basic_auth_searches_need_the_user_and_password() {
    let server = FhirServer::start(vec![patient("a")]).await;
    server.require_basic("carehub", "pässword");
    let url = format!("{}/Patient", server.base_url());
    let client = http_client();
    let (status, headers, _) = fetch(&url, None).await;
    assert_eq!(status, 401);
    assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let wrong = client
        .get(&url)
        .basic_auth("carehub", Some("password"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let right = client
        .get(&url)
        .basic_auth("carehub", Some("pässword"))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status().as_u16(), 200);
}

#[tokio::test]
async fn the_corpus_serves_its_patients_observations_and_encounters() {
    let Some(corpus) = corpus_dir() else { return };
    let resources = FhirServer::corpus_resources(&corpus, &["Patient", "Observation", "Encounter"]);
    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    let mut keys = HashSet::new();
    for resource in &resources {
        let (rtype, id) = type_and_id(resource);
        assert!(keys.insert(format!("{rtype}/{id}")), "{rtype}/{id} once");
        *by_type.entry(rtype).or_default() += 1;
    }
    eprintln!("fhir server corpus: {by_type:?}");
    assert_eq!(
        by_type.keys().collect::<Vec<_>>(),
        ["Encounter", "Observation", "Patient"]
    );
    let patients = by_type["Patient"];
    assert!(
        patients >= 100,
        "Synthea bulk and bundles hold Patients ({patients})"
    );

    let server = FhirServer::start(resources).await;
    let (status, _, bundle) = fetch(&format!("{}/Patient?_count=1000", server.base_url()), None).await;
    assert_eq!((status, bundle["total"].as_u64()), (200, Some(patients as u64)));
}
