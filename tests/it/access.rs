//! Access control as a clinic's security officer checks it: every route the router has asks
//! for a token and a role; ops never sees patient data; every read of patient data leaves a
//! chained audit row; the first start writes an admin token only its owner can read.

use std::collections::BTreeMap;

use carehub::api::{Role, tokens};
use serde_json::{Value, json};

use crate::helpers::*;

/// One token per role, made through the store as `carehub token create` does.
async fn role_tokens(t: &TestHub) -> BTreeMap<Role, String> {
    let mut out = BTreeMap::new();
    for role in Role::ALL {
        let (_, token) = tokens::create(&t.hub.store, &format!("test {role}"), role, None)
            .await
            .expect("a token");
        out.insert(role, token);
    }
    out
}

/// A hub with a patient (two messages: the second one errors), a FHIR push endpoint and a
/// file channel; returns the person's id and a message id.
async fn seeded_hub() -> (TestHub, String, i64) {
    let t = spawn_hub_with(HubOptions {
        fhir_push: true,
        hub_extra: "channels:\n  sms:\n    type: file\n".into(),
        ..Default::default()
    })
    .await;
    let ack = send(t.mllp(), &adt("ACC-1", "MRN-ACC-1", "Vuong")).await;
    assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
    let person = t
        .hub
        .store
        .find_persons("MRN-ACC-1", None)
        .await
        .unwrap()
        .pop()
        .expect("the person")
        .id;
    let message = messages_with(&t.hub.store, carehub::store::MessageStatus::Processed)
        .await
        .pop()
        .expect("a processed message")
        .id;
    (t, person, message)
}

/// The route's path with its parameters filled in, and the request body it is sent.
fn request_for(method: &str, path: &str, person: &str, message: i64) -> (String, Option<Value>) {
    let url = path
        .replace("/patients/{id}", &format!("/patients/{person}"))
        .replace("/messages/{id}", &format!("/messages/{message}"))
        .replace("/review/{id}", "/review/999999")
        .replace("/tokens/{id}", "/tokens/tok_none")
        .replace("{channel}", "no-such-channel");
    let url = match path {
        "/api/v1/patients" => format!("{url}?identifier=MRN-ACC-1"),
        // The language picker sends the browser back to a page: the (open) login page here.
        "/language" => format!("{url}?set=vi&next=/login"),
        "/assets/{file}" => "/assets/console.css".to_string(),
        _ => url,
    };
    let body = match (method, path) {
        ("POST", "/api/v1/match") => {
            Some(json!({"identifiers": [{"system": "CLINIC", "value": "MRN-ACC-1"}]}))
        }
        ("POST", p) if p.ends_with("/consents") => Some(json!({"category": "marketing", "decision": "deny"})),
        ("PUT", p) if p.ends_with("/preferences") => Some(json!({})),
        ("POST", p) if p.ends_with("/merge") => Some(json!({"merge": "no-such-person"})),
        ("POST", "/api/v1/tokens") => Some(json!({"name": "made in the route test", "role": "ops"})),
        ("POST", "/fhir/r4") => Some(json!({"resourceType": "Patient", "id": "acc-1",
            "identifier": [{"system": "urn:mrn", "value": "FHIR-ACC-1"}], "name": [{"family": "Lam"}]})),
        ("POST", _) => Some(json!({})),
        _ => None,
    };
    (url, body)
}

async fn call(
    client: &reqwest::Client,
    api: &str,
    method: &str,
    url: &str,
    body: &Option<Value>,
) -> (u16, String) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client.request(m, format!("{api}{url}"));
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.expect("the API answers");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn every_route_asks_for_a_token_and_a_role_allowed_on_it() {
    let (t, person, message) = seeded_hub().await;
    let api = t.api();
    let tokens = role_tokens(&t).await;
    let routes = t.hub.api_routes.clone();
    assert!(routes.len() >= 25, "the router has {} routes", routes.len());
    for (method, path, rule) in &routes {
        assert_eq!(
            Some(*rule as *const _),
            carehub::api::access::rule_for(method, path)
                .or_else(|| carehub::api::access::rule_for(method, carehub::api::access::FHIR_PUSH))
                .map(|r| r as *const _),
            "{method} {path} is served under the table's rule"
        );
        let (url, body) = request_for(method.as_str(), path, &person, message);
        let (status, text) = call(&anonymous_http(), &api, method.as_str(), &url, &body).await;
        if rule.public {
            assert_ne!(status, 401, "{method} {path} is open: {text}");
        } else {
            assert_eq!(status, 401, "{method} {path} without a token: {text}");
        }
        for (role, token) in &tokens {
            let (status, text) = call(&http_as(token), &api, method.as_str(), &url, &body).await;
            if rule.allows(*role) {
                assert!(
                    status != 401 && status != 403 && status < 500,
                    "{method} {path} as {role}: {status} {text}"
                );
                if method == "GET" && !rule.public {
                    assert_eq!(status, 200, "{method} {path} as {role}: {text}");
                }
            } else {
                assert_eq!(status, 403, "{method} {path} as {role}: {text}");
            }
        }
    }
    t.hub.shutdown().await;
}

#[tokio::test]
async fn bad_revoked_and_expired_tokens_are_refused() {
    let (t, person, _) = seeded_hub().await;
    let url = format!("{}/api/v1/patients/{person}", t.api());
    for bad in ["", "chk_nonsense", "not.a.jwt", "Basic abc"] {
        let resp = http_as(if bad.is_empty() { "x" } else { bad })
            .get(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "token {bad:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    }
    let (record, token) = tokens::create(&t.hub.store, "nurse", Role::Clinician, None)
        .await
        .unwrap();
    assert_eq!(
        http_as(&token).get(&url).send().await.unwrap().status().as_u16(),
        200
    );
    assert_eq!(t.hub.store.revoke_token(&record.id).await.unwrap(), 1);
    let resp = http_as(&token).get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.text().await.unwrap().contains("revoked"));

    let (_, short) = tokens::create(
        &t.hub.store,
        "short-lived",
        Role::Clinician,
        Some(jiff::SignedDuration::from_mins(1)),
    )
    .await
    .unwrap();
    assert_eq!(
        http_as(&short).get(&url).send().await.unwrap().status().as_u16(),
        200
    );
    // A token whose time is up (its expiry moved into the past rather than waited for).
    let (record, expired) = tokens::create(&t.hub.store, "expired", Role::Clinician, None)
        .await
        .unwrap();
    sql(
        &t,
        &format!(
            "UPDATE api_tokens SET expires_at = '2020-01-01T00:00:00Z' WHERE id = '{}'",
            record.id
        ),
    )
    .await;
    let resp = http_as(&expired).get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.text().await.unwrap().contains("expired"));
    t.hub.shutdown().await;
}

/// `GET /api/v1/whoami` with `token`.
async fn whoami(t: &TestHub, token: &str) -> Value {
    http_as(token)
        .get(format!("{}/api/v1/whoami", t.api()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Runs one statement on the test hub's store, as someone with database access would.
async fn sql(t: &TestHub, statement: &str) {
    use sqlx::Connection;
    let statement = sqlx::AssertSqlSafe(statement.to_string());
    if t.store_url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&t.store_url).await.unwrap();
        sqlx::raw_sql(statement).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(&t.store_url).await.unwrap();
        sqlx::raw_sql(statement).execute(&mut c).await.unwrap();
    }
}

#[tokio::test]
async fn ops_answers_carry_no_patient_data() {
    let (t, person, message) = seeded_hub().await;
    let api = t.api();
    let ops = role_tokens(&t).await[&Role::Ops].clone();
    let secrets = [
        "Vuong",
        "MRN-ACC-1",
        "0903123456",
        "84903123456",
        "19850307",
        "1985-03-07",
        "Main St",
    ];
    let mut read = 0;
    for (method, path, rule) in &t.hub.api_routes {
        if method != "GET" || !rule.allows(Role::Ops) || rule.public {
            continue;
        }
        let (url, _) = request_for("GET", path, &person, message);
        let (status, text) = call(&http_as(&ops), &api, "GET", &url, &None).await;
        assert_eq!(status, 200, "{path}: {text}");
        for s in secrets {
            assert!(!text.contains(s), "GET {path} as ops carries {s:?}: {text}");
        }
        read += 1;
    }
    assert!(read >= 4, "ops read {read} routes");
    // The admin sees the same message with its body.
    let (_, admin) = call(
        &http(),
        &api,
        "GET",
        &format!("/api/v1/messages/{message}"),
        &None,
    )
    .await;
    assert!(admin.contains("Vuong"), "{admin}");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn reads_of_patient_data_are_audited_in_a_chain_that_shows_tampering() {
    let (t, person, _) = seeded_hub().await;
    let api = t.api();
    let tokens = role_tokens(&t).await;
    let nurse = http_as(&tokens[&Role::Clinician]);
    let resp = nurse
        .get(format!("{api}/api/v1/patients/{person}"))
        .header("X-Purpose-Of-Use", "treatment")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let resp = nurse
        .get(format!("{api}/api/v1/patients?identifier=MRN-ACC-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // Refused, and recorded as refused.
    let resp = http_as(&tokens[&Role::Ops])
        .get(format!("{api}/api/v1/patients/{person}/timeline"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    // The auditor reads who saw her.
    let auditor = http_as(&tokens[&Role::Auditor]);
    let log: Value = auditor
        .get(format!("{api}/api/v1/audit?person={person}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{log}");
    let read = items
        .iter()
        .find(|r| r["action"] == "GET /api/v1/patients/{id}")
        .expect("the read");
    assert_eq!(read["role"], "clinician");
    assert_eq!(read["purpose"], "treatment");
    assert_eq!(read["status"], 200);
    assert!(read["subject"].as_str().unwrap().starts_with("token:tok_"));
    assert!(read["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    let all: Value = auditor
        .get(format!(
            "{api}/api/v1/audit?route=GET%20/api/v1/patients/%7Bid%7D/timeline"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"][0]["status"], 403, "{all}");
    assert_eq!(all["items"][0]["role"], "ops", "{all}");
    // Clinicians may not read the audit log.
    assert_eq!(
        nurse
            .get(format!("{api}/api/v1/audit"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );

    let v = t.hub.store.verify_audit().await.unwrap();
    assert!(v.breaks.is_empty() && v.rows >= 3, "{:?}", v.breaks);
    // Someone with database access hides that the nurse looked.
    sql(
        &t,
        "UPDATE audit_log SET persons = '[]', person_count = 0 WHERE id = 1",
    )
    .await;
    let v = t.hub.store.verify_audit().await.unwrap();
    assert_eq!(v.breaks.len(), 1, "{:?}", v.breaks);
    assert!(v.breaks[0].to_string().contains("row 1"), "{}", v.breaks[0]);
    t.hub.shutdown().await;
}

#[tokio::test]
async fn removed_audit_rows_are_found() {
    let (t, person, _) = seeded_hub().await;
    for _ in 0..3 {
        let (code, _) = get_json(&format!("{}/api/v1/patients/{person}", t.api())).await;
        assert_eq!(code, 200);
    }
    assert!(t.hub.store.verify_audit().await.unwrap().breaks.is_empty());
    sql(&t, "DELETE FROM audit_log WHERE id = 2").await;
    let v = t.hub.store.verify_audit().await.unwrap();
    assert!(!v.breaks.is_empty());
    assert!(
        v.breaks
            .iter()
            .any(|b| b.to_string().contains("row 2 is missing")),
        "{:?}",
        v.breaks
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_first_start_writes_an_admin_token_only_its_owner_can_read() {
    let t = spawn_hub_with(HubOptions {
        first_run_admin: true,
        ..Default::default()
    })
    .await;
    let file = t.dir.path().join("admin.token");
    let token = std::fs::read_to_string(&file).expect("the admin token file");
    let token = token.trim();
    assert!(token.starts_with("chk_"), "{token}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let who = whoami(&t, token).await;
    assert_eq!(who["role"], "admin", "{who}");
    // The given test token was not stored: only the written one lets an admin in.
    assert_eq!(
        http()
            .get(format!("{}/api/v1/whoami", t.api()))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    // Made through the API: shown once, then works with its role.
    let made: Value = http_as(token)
        .post(format!("{}/api/v1/tokens", t.api()))
        .json(&json!({"name": "front desk", "role": "clinician", "expires": "90d"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let clinician = made["token"].as_str().unwrap();
    assert!(made["record"]["expires_at"].is_string(), "{made}");
    let who = whoami(&t, clinician).await;
    assert_eq!(who["role"], "clinician");
    let listed: Value = http_as(token)
        .get(format!("{}/api/v1/tokens", t.api()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !listed.to_string().contains(clinician),
        "a listing never shows a token"
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn the_command_line_makes_lists_and_revokes_tokens_and_verifies_the_audit_log() {
    let (t, person, _) = seeded_hub().await;
    let config = t.dir.path().join("carehub.yaml");
    let carehub = |args: &[&str]| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_carehub"));
        c.args(args).arg("--config").arg(&config);
        c
    };
    let out = carehub(&[
        "token",
        "create",
        "--name",
        "lab system",
        "--role",
        "sender",
        "--expires",
        "30d",
    ])
    .output()
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("chk_"), "{token}");
    let who = whoami(&t, &token).await;
    assert_eq!(who["role"], "sender");
    // A sender may push records, not read patients.
    let resp = http_as(&token)
        .get(format!("{}/api/v1/patients/{person}", t.api()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    let out = carehub(&["token", "list"]).output().await.unwrap();
    let listing = String::from_utf8(out.stdout).unwrap();
    let line = listing
        .lines()
        .find(|l| l.ends_with("lab system"))
        .expect("the token listed");
    assert!(line.contains("sender") && line.contains("active"), "{listing}");
    assert!(!listing.contains(&token), "a listing never shows a token");

    let out = carehub(&["token", "revoke", "lab system"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let resp = http_as(&token)
        .get(format!("{}/api/v1/whoami", t.api()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let out = carehub(&["token", "revoke", "lab system"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "nothing left to revoke");

    let out = carehub(&["audit", "verify"]).output().await.unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{said}");
    assert!(said.contains("audit log intact"), "{said}");
    let rows = t.hub.store.audit_page(0, 100).await.unwrap();
    assert!(
        rows.iter()
            .any(|r| r.entry.subject.starts_with("cli:") && r.entry.action.starts_with("token revoke")),
        "{rows:?}"
    );
    sql(&t, "UPDATE audit_log SET subject = 'someone-else' WHERE id = 1").await;
    let out = carehub(&["audit", "verify"]).output().await.unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("BROKEN: row 1"), "{said}");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_revoked_admin_token_from_the_environment_stays_revoked_and_a_new_one_is_written() {
    let first = spawn_hub().await;
    assert_eq!(
        first
            .hub
            .store
            .revoke_token("admin (from the environment)")
            .await
            .unwrap(),
        1
    );
    let url = first.store_url.clone();
    first.hub.shutdown().await;
    // Started again with the same token in the environment, over the same store.
    let t = spawn_hub_with(HubOptions {
        store_url: Some(url),
        ..Default::default()
    })
    .await;
    let resp = http()
        .get(format!("{}/api/v1/whoami", t.api()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401, "the revoked token stays revoked");
    let written = std::fs::read_to_string(t.dir.path().join("admin.token")).expect("a new admin token");
    assert_eq!(whoami(&t, written.trim()).await["role"], "admin");
    t.hub.shutdown().await;
}
