//! The OpenAPI document as a client developer relies on it: it is served without a token, it
//! describes every `/api/v1` route the hub serves, and the hub answers as it says — checked by
//! schemathesis (PyPI), a tester we did not write, which sends valid and invalid requests to
//! every operation and checks for server errors and answers that do not match the document.
//! Each class of bug it found has its own regression test below.

use std::collections::BTreeSet;

use carehub::api::{Role, tokens};
use serde_json::{Value, json};

use crate::helpers::*;

/// A hub with a channel (for consents and webhooks), a FHIR push endpoint, and records: two
/// patients, a processed message and an errored one. Returns a person id.
async fn seeded_hub() -> Option<(TestHub, String)> {
    let t = try_spawn_hub_with(HubOptions {
        fhir_push: true,
        // zalo: a channel whose webhook takes any JSON, unsigned, so that requests reach it.
        hub_extra: "channels:\n  sms:\n    type: file\n  zalo:\n    type: zalo\n    base_url: http://127.0.0.1:9\n    access_token: oa-token\n".into(),
        ..Default::default()
    })
    .await?;
    for (control, mrn, family) in [("OA-1", "MRN-OA-1", "Tran"), ("OA-2", "MRN-OA-2", "Pham")] {
        let ack = send(t.mllp(), &adt(control, mrn, family)).await;
        assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
    }
    let bad = "MSH|^~\\&|EMR|CLINIC|CAREHUB|CLINIC|20261120083000+0700||ADT^A04^ADT_A01|OA-3|P|2.5.1\rPID|1||MRN-OA-3^^^CLINIC^MR||Le^An||notadate|F\r";
    send(t.mllp(), bad).await;
    let person = t
        .hub
        .store
        .find_persons("MRN-OA-1", None)
        .await
        .unwrap()
        .pop()
        .expect("the seeded person")
        .id;
    Some((t, person))
}

async fn document(api: &str) -> Value {
    let resp = anonymous_http()
        .get(format!("{api}/api/v1/openapi.json"))
        .send()
        .await
        .expect("the API answers");
    assert_eq!(resp.status(), 200, "the document is open");
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().await.expect("the document is JSON")
}

#[tokio::test]
async fn the_served_document_describes_every_api_route_the_hub_serves() {
    let t = spawn_hub_with(HubOptions {
        fhir_push: true,
        ..Default::default()
    })
    .await;
    let doc = document(&t.api()).await;
    // Kept for people to read (and to load into a viewer).
    let kept = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("openapi.json");
    std::fs::write(&kept, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let served: BTreeSet<(String, String)> = t
        .hub
        .api_routes
        .iter()
        .filter(|(_, path, _)| path.starts_with("/api/v1/"))
        .map(|(m, p, _)| (m.as_str().to_lowercase(), p.clone()))
        .collect();
    assert!(served.len() >= 25, "{served:?}");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );
    // The FHIR push endpoint is not part of /api/v1, and nothing is documented that is not served.
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(unserved.is_empty(), "documented but not served: {unserved:?}");
    // Every schema an operation refers to is in the document.
    let text = doc.to_string();
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        assert!(
            text.contains(&format!("#/components/schemas/{name}")),
            "{name} is never used"
        );
    }
    let mut refs = text.split("\"$ref\":\"#/components/schemas/").skip(1);
    assert!(refs.all(|r| {
        let name = &r[..r.find('"').unwrap()];
        doc["components"]["schemas"][name].is_object()
    }));
}

/// Bug class 1: axum's own extractors refused malformed paths, queries and bodies with plain
/// text and statuses the document did not list (415, 422). Every refusal is JSON now.
#[tokio::test]
async fn malformed_paths_queries_and_bodies_get_a_json_400_that_says_why() {
    let t = spawn_hub().await;
    let api = t.api();
    let client = http();
    for (method, url, body) in [
        ("GET", "/api/v1/messages/not-a-number", None),
        ("GET", "/api/v1/messages?limit=many", None),
        ("GET", "/api/v1/messages?status=lost", None),
        ("GET", "/api/v1/patients/x/timeline?kind=pizza", None),
        ("POST", "/api/v1/review/abc/link", None),
        ("POST", "/api/v1/match", Some("{\"names\": 7}")),
        ("POST", "/api/v1/match", Some("not json")),
        ("POST", "/api/v1/match", Some("")),
        (
            "POST",
            "/api/v1/tokens",
            Some("{\"name\": \"x\", \"role\": \"root\"}"),
        ),
        ("POST", "/api/v1/patients/x/merge", Some("{}")),
    ] {
        let mut req = client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{api}{url}"),
        );
        if let Some(b) = body {
            // No Content-Type: the JSON is read all the same (415 is not an answer of this API).
            req = req.body(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
        let reply: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 400, "{method} {url}: {reply}");
        assert_eq!(kind, "application/json", "{method} {url}");
        assert!(
            reply["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{method} {url}: {reply}"
        );
    }
    // Found by schemathesis: a lifetime past the calendar overflowed (a panic: 500 in a debug
    // build, a wrong expiry in a release one); a struct read from an array of its fields; a
    // time bound that was not one (empty, or a date with trailing text) meant no bound.
    for (method, url, body) in [
        (
            "POST",
            "/api/v1/tokens",
            Some(json!({"name": "x", "role": "ops", "expires": "9223372036854775807w"})),
        ),
        (
            "POST",
            "/api/v1/tokens",
            Some(json!({"name": "x", "role": "ops", "expires": "10000d"})),
        ),
        ("PUT", "/api/v1/patients/x/preferences", Some(json!([null, null]))),
        ("GET", "/api/v1/audit?until=", None),
        ("GET", "/api/v1/audit?since=2026-01-20garbage", None),
        ("GET", "/api/v1/reports/channels?from=2026-13-01", None),
    ] {
        let mut req = client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{api}{url}"),
        );
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let reply: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 400, "{method} {url}: {reply}");
        assert!(
            reply["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{method} {url}: {reply}"
        );
    }
    // An empty status filter, as a form sends it, still means every status.
    let (code, page) = get_json(&format!("{api}/api/v1/messages?status=")).await;
    assert_eq!(code, 200, "{page}");
}

/// Bug class 4: requests the document calls valid were refused (a rank written `2.0`, an
/// unsubscribe whose body is `null`, an empty match record the document allowed, a channel or
/// time zone the document could not name). The document now says what the handlers take.
#[tokio::test]
async fn what_the_document_calls_valid_is_accepted() {
    let Some((t, person)) = seeded_hub().await else {
        return;
    };
    let api = t.api();
    let client = http();
    for (method, url, body, expected) in [
        (
            "POST",
            "/api/v1/match".to_string(),
            Some(json!({"telecom": [{"system": "phone", "value": "+84903123456", "rank": 2.0}]})),
            200,
        ),
        (
            "POST",
            format!("/api/v1/patients/{person}/unsubscribe"),
            Some(Value::Null),
            200,
        ),
        (
            "POST",
            "/api/v1/tokens".to_string(),
            Some(json!({"name": "long", "role": "ops", "expires": " 9999w "})),
            201,
        ),
        (
            "GET",
            "/api/v1/audit?since=2026-01-20&until=2099-01-20T08:30:00%2B07:00".to_string(),
            None,
            200,
        ),
        (
            "PUT",
            format!("/api/v1/patients/{person}/preferences"),
            Some(json!({"language": "vi-VN", "timezone": "Asia/Ho_Chi_Minh", "addresses": {"zalo": "8480"}})),
            200,
        ),
    ] {
        let mut req = client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{api}{url}"),
        );
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let reply: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, expected, "{method} {url}: {reply}");
    }
    // The document names this hub's channels and the time zones it knows, and says that a
    // record to match must state something.
    let doc = document(&api).await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["ConsentBody"]["properties"]["channel"]["enum"],
        json!(["*", "sms", "zalo", null])
    );
    let zones = schemas["Preferences"]["properties"]["timezone"]["enum"]
        .as_array()
        .unwrap();
    assert!(
        zones.contains(&json!("Asia/Ho_Chi_Minh")) && zones.len() > 300,
        "{}",
        zones.len()
    );
    assert!(
        schemas["ProfilePatch"]["anyOf"]
            .as_array()
            .is_some_and(|a| a.len() >= 10)
    );
}

/// Bug class 2: text with a NUL character reached PostgreSQL, which refuses it, and came back
/// as a 503 "store unavailable". It is a 400 on both backends now; in a provider's webhook
/// (the provider's format, not ours) such an id names nobody and is passed over.
#[tokio::test]
async fn text_with_a_nul_character_is_a_400_on_either_backend() {
    let Some((t, person)) = seeded_hub().await else {
        return;
    };
    let api = t.api();
    let client = http();
    for (method, url, body) in [
        ("GET", "/api/v1/patients?identifier=a%00b".to_string(), None),
        ("GET", "/api/v1/patients/a%00b".to_string(), None),
        ("GET", "/api/v1/messages?connector=%00".to_string(), None),
        ("GET", "/api/v1/audit?person=%00".to_string(), None),
        ("DELETE", "/api/v1/tokens/%00".to_string(), None),
        (
            "POST",
            format!("/api/v1/patients/{person}/consents"),
            Some(json!({"category": "marketing", "decision": "deny", "source": "desk\u{0}"})),
        ),
        (
            "POST",
            "/api/v1/match".to_string(),
            Some(json!({"names": [{"family": "Tr\u{0}an"}]})),
        ),
        (
            "PUT",
            format!("/api/v1/patients/{person}/preferences"),
            Some(json!({"tags": ["vip\u{0}"]})),
        ),
        (
            "POST",
            "/api/v1/tokens".to_string(),
            Some(json!({"name": "n\u{0}", "role": "ops"})),
        ),
    ] {
        let mut req = client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{api}{url}"),
        );
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let reply: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 400, "{method} {url}: {reply}");
        assert!(reply["error"].as_str().unwrap_or("").contains("NUL"), "{reply}");
    }
    // A provider's webhook (open: no token) naming an address or a send with a NUL.
    for event in [
        json!({"event_name": "unfollow", "follower": {"id": "84\u{0}90"}}),
        json!({"event_name": "user_send_text", "sender": {"id": "\u{0}"}, "message": {"text": "STOP"}}),
    ] {
        let resp = anonymous_http()
            .post(format!("{api}/api/v1/webhooks/zalo"))
            .json(&event)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let reply: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "{event}: {reply}");
        assert_eq!(reply["opt_outs"], 0, "{reply}");
    }
    // The person's preferences were not touched.
    let (code, prefs) = get_json(&format!("{api}/api/v1/patients/{person}/preferences")).await;
    assert_eq!(code, 200);
    assert_eq!(prefs["tags"], json!([]), "{prefs}");
}

/// Bug class 3: another method on an existing route answered 403 "no access rule"; HTTP says
/// 405 with the methods the route takes, and the document lists only those.
#[tokio::test]
async fn another_method_on_a_route_is_a_405_naming_the_methods_it_takes() {
    let t = spawn_hub().await;
    let api = t.api();
    for (method, url, allow) in [
        ("PATCH", "/api/v1/patients", "GET"),
        ("DELETE", "/api/v1/patients/p1/consents", "GET, POST"),
        ("PUT", "/api/v1/openapi.json", "GET"),
        ("POST", "/api/v1/tokens/tok_1", "DELETE"),
    ] {
        for client in [http(), anonymous_http()] {
            let resp = client
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    format!("{api}{url}"),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 405, "{method} {url}");
            assert_eq!(resp.headers()["allow"], allow, "{method} {url}");
        }
    }
}

/// The `st` (or `schemathesis`) command, or `None` with a loud message when it is absent and
/// not required.
fn schemathesis() -> Option<String> {
    for name in ["st", "schemathesis"] {
        // `st, version 4.32.5`: schemathesis, not another program of that name.
        let found = std::process::Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(", version "));
        if found {
            return Some(name.to_string());
        }
    }
    if required() {
        panic!(
            "CAREHUB_REQUIRE_SERVICES=1 but schemathesis is not installed (pip install schemathesis==4.32.5)"
        );
    }
    eprintln!("\n!!! SKIPPED: schemathesis is not installed (pip install schemathesis==4.32.5) !!!\n");
    None
}

/// schemathesis against a running hub: every operation, valid and invalid data, no server
/// error, every answer as the document describes it (status, content type, schema, headers).
///
/// It runs with an admin token of its own, so that whatever it revokes (it may revoke its own
/// token, or the tokens it made) leaves the hub's admin token working; merges and review
/// decisions name persons and items it cannot guess, and the hub is this test's alone.
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_unlike_the_document() {
    let Some(st) = schemathesis() else {
        return;
    };
    let Some((t, person)) = seeded_hub().await else {
        return;
    };
    let (_, token) = tokens::create(&t.hub.store, "schemathesis", Role::Admin, None)
        .await
        .expect("a token for schemathesis");
    let api = t.api();
    let message = messages_with(&t.hub.store, carehub::store::MessageStatus::Processed)
        .await
        .pop()
        .expect("a processed message")
        .id;
    // The seeded person and message stand in for the ids schemathesis cannot guess, so that
    // its requests reach the handlers' logic rather than stop at 404.
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[[operations]]\ninclude-path-regex = '^/api/v1/patients/\\{{id\\}}'\nparameters = {{ \"path.id\" = \"{person}\" }}\n\n\
             [[operations]]\ninclude-path = '/api/v1/messages/{{id}}'\nparameters = {{ \"path.id\" = {message} }}\n\n\
             [[operations]]\ninclude-path = '/api/v1/webhooks/{{channel}}'\nparameters = {{ \"path.channel\" = \"zalo\" }}\n"
        ),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(&st);
    cmd.current_dir(work.path())
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{api}/api/v1/openapi.json"), "--url", &api])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all"])
        .args(["--mode", "all"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "25", "--seed", "20261207", "--workers", "2"])
        // Text never holds NUL: the API refuses it with a 400 (tested above), which positive
        // data would count against the document otherwise.
        .args(["--generation-allow-x00", "false"])
        .args([
            "--generation-database",
            "none",
            "--no-color",
            "--output-truncate",
            "true",
        ])
        .args(["--request-timeout", "20"])
        .kill_on_drop(true)
        .env("PYTHONIOENCODING", "utf-8");
    let out = cmd.output().await.expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    // It did test every operation (a run that reached none would pass too).
    let doc = document(&api).await;
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    let tested = stdout
        .split("Tested: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    // schemathesis leaves out the operation that serves the document itself.
    assert_eq!(
        tested,
        operations - 1,
        "schemathesis did not test every operation:\n{stdout}"
    );
    println!("{stdout}");
    // The hub's own admin token and the seeded person are still there.
    let (code, _) = get_json(&format!("{api}/api/v1/patients/{person}")).await;
    assert_eq!(code, 200);
}
