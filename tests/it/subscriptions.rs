//! Change notifications (docs/subscriptions.md) through the whole hub: a clinic system stood
//! up in the test is POSTed one signed notification per change, and one that is down (answers
//! 500, or refuses the connection) gets each notification after it recovers, exactly once per
//! event id. Runs on the suite's backend (SQLite, or PostgreSQL with CAREHUB_TEST_BACKEND).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const SECRET: &str = "a-shared-secret-of-the-clinic-emr";

/// What the clinic system received and answered.
#[derive(Default)]
struct Receiver {
    /// Answer 500 while true.
    down: AtomicBool,
    /// Requests answered 500.
    refused: AtomicUsize,
    /// Requests answered 200: (event id header, signature valid, body).
    accepted: Mutex<Vec<(String, bool, Value)>>,
}

impl Receiver {
    fn accepted(&self) -> Vec<(String, bool, Value)> {
        self.accepted.lock().unwrap().clone()
    }
}

/// Verifies the way docs/subscriptions.md tells a receiver to: HMAC-SHA256 of the raw body
/// with the shared secret, hex, after `sha256=`.
fn signature_valid(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let tag: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    tag.is_some_and(|t| ring::hmac::verify(&key, body, &t).is_ok())
}

/// Serves the receiver on `listener` until the test ends.
fn serve(listener: tokio::net::TcpListener, r: Arc<Receiver>) {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let r = r.clone();
            async move {
                if r.down.load(Ordering::SeqCst) {
                    r.refused.fetch_add(1, Ordering::SeqCst);
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
                let valid = signature_valid(SECRET, &body, header("x-carehub-signature").as_deref());
                let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                r.accepted.lock().unwrap().push((
                    header("x-carehub-event-id").unwrap_or_default(),
                    valid,
                    parsed,
                ));
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
}

async fn receiver() -> (Arc<Receiver>, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let r = Arc::new(Receiver::default());
    serve(listener, r.clone());
    (r, addr)
}

/// Retries after 1–2 s, so an outage of a few seconds is crossed quickly.
fn fast_retries() -> HubOptions {
    HubOptions {
        hub_extra: "queue:\n  retry_base_secs: 1\n  retry_max_secs: 2\n  max_attempts: 50\n".into(),
        ..Default::default()
    }
}

async fn subscribe(api: &str, name: &str, url: &str, extra: Value) {
    let mut body = json!({"name": name, "url": url, "secret": SECRET});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let resp = http()
        .post(format!("{api}/api/v1/subscriptions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201, "{}", resp.text().await.unwrap());
}

async fn deliveries(api: &str, name: &str) -> Value {
    let (code, body) = get_json(&format!("{api}/api/v1/subscriptions")).await;
    assert_eq!(code, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .map(|s| s["deliveries"].clone())
        .unwrap_or(Value::Null)
}

fn adt_named(control: &str, mrn: &str, family: &str) -> String {
    adt(control, mrn, family)
}

fn result_for(mrn: &str, control: &str) -> String {
    format!(
        "MSH|^~\\&|LAB|HOSP|CAREHUB|CLINIC|20240105083000+0700||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||{mrn}^^^CLINIC^MR||Pham^Lan^Thi||19850307|F\r\
         OBR|1|ORD-{control}|FIL-{control}|2093-3^Cholesterol^LN|||20240105073000\r\
         OBX|1|NM|2093-3^Cholesterol^LN||5.6|mmol/L|<5.2|H|||F|||20240105073000\r"
    )
}

#[tokio::test]
async fn a_subscriber_gets_one_signed_notification_per_change() {
    let (r, addr) = receiver().await;
    let t = spawn_hub_with(fast_retries()).await;
    let api = t.api();
    subscribe(&api, "emr", &format!("http://{addr}/hook"), json!({})).await;

    for m in [
        adt_named("S-1", "MRN-S1", "Tran"),
        // The same message again: a duplicate changes nothing, so it announces nothing.
        adt_named("S-1", "MRN-S1", "Tran"),
        // A new family name: the golden record changes.
        adt_named("S-2", "MRN-S1", "Pham"),
        result_for("MRN-S1", "S-3"),
    ] {
        let ack = send(t.mllp(), &m).await;
        assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
    }
    let (code, found) = get_json(&format!("{api}/api/v1/patients?identifier=MRN-S1")).await;
    assert_eq!(code, 200);
    let person = found["items"][0]["id"].as_str().unwrap().to_string();

    eventually("the changes delivered", || async {
        deliveries(&api, "emr").await["delivered"].as_i64() >= Some(4)
    })
    .await;
    let got = r.accepted();
    assert!(
        got.iter().all(|(_, valid, _)| *valid),
        "every body signed with the secret"
    );
    let mut events: Vec<(String, Option<String>)> = got
        .iter()
        .map(|(_, _, b)| {
            assert_eq!(b["person"], person.as_str(), "{b}");
            (
                b["event"].as_str().unwrap().to_string(),
                b["record"]["kind"].as_str().map(str::to_string),
            )
        })
        .collect();
    events.sort();
    // The result message files an order and its result: two records changed. It restates
    // the patient as stored, which changes no golden record: no patient.updated for it.
    let expected: Vec<(String, Option<String>)> = [
        ("patient.created", None),
        ("patient.updated", None),
        ("record.changed", Some("order")),
        ("record.changed", Some("result")),
    ]
    .into_iter()
    .map(|(e, k)| (e.to_string(), k.map(str::to_string)))
    .collect();
    assert_eq!(events, expected);
    let ids: std::collections::HashSet<&String> = got.iter().map(|(id, _, _)| id).collect();
    assert_eq!(ids.len(), got.len(), "each change has an id of its own");
    for (id, _, body) in &got {
        assert_eq!(
            body["id"].as_str(),
            Some(id.as_str()),
            "the header names the body's id"
        );
        if body["event"] == "record.changed" {
            let rt = body["record"]["resourceType"].as_str().unwrap();
            assert!(["ServiceRequest", "Observation"].contains(&rt), "{body}");
        }
    }
}

#[tokio::test]
async fn a_receiver_down_gets_each_notification_after_it_recovers_exactly_once() {
    let (r, addr) = receiver().await;
    r.down.store(true, Ordering::SeqCst);
    let t = spawn_hub_with(fast_retries()).await;
    let api = t.api();
    subscribe(
        &api,
        "portal",
        &format!("http://{addr}/hook"),
        json!({"events": ["patient.created"], "payload": "fhir"}),
    )
    .await;
    for (control, mrn) in [("D-1", "MRN-D1"), ("D-2", "MRN-D2")] {
        let ack = send(t.mllp(), &adt_named(control, mrn, "Vo")).await;
        assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
    }
    eventually("a few refused attempts", || async {
        r.refused.load(Ordering::SeqCst) >= 3
    })
    .await;
    assert!(r.accepted().is_empty());
    r.down.store(false, Ordering::SeqCst);
    eventually("both delivered after the outage", || async {
        deliveries(&api, "portal").await["delivered"].as_i64() == Some(2)
    })
    .await;
    let d = deliveries(&api, "portal").await;
    assert_eq!(
        (d["pending"].as_i64(), d["queued"].as_i64()),
        (Some(0), Some(0)),
        "{d}"
    );
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for (id, valid, body) in r.accepted() {
        assert!(valid);
        assert_eq!(body["resourceType"], "Bundle");
        assert_eq!(body["type"], "history");
        assert_eq!(body["entry"][0]["resource"]["resourceType"], "Parameters");
        let focus = body["entry"][1]["request"]["url"].as_str().unwrap();
        assert!(focus.starts_with("Patient/"), "{body}");
        *per_id.entry(id).or_default() += 1;
    }
    assert_eq!(per_id.len(), 2, "{per_id:?}");
    assert!(
        per_id.values().all(|n| *n == 1),
        "exactly once per id: {per_id:?}"
    );
}

#[tokio::test]
async fn a_configured_subscription_whose_receiver_refuses_connections_is_delivered_once_it_listens() {
    // A port with nothing listening yet: connections are refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut opts = fast_retries();
    opts.hub_extra.push_str(&format!(
        "subscriptions:\n  - name: lab-system\n    url: http://127.0.0.1:{port}/hook\n    events: [patient.created]\n    secret: \"${{CAREHUB_ADMIN_TOKEN}}\"\n"
    ));
    let t = spawn_hub_with(opts).await;
    let api = t.api();
    let ack = send(t.mllp(), &adt_named("R-1", "MRN-R1", "Do")).await;
    assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
    eventually("an attempt refused", || async {
        deliveries(&api, "lab-system").await["attempts"].as_i64() >= Some(2)
    })
    .await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let r = Arc::new(Receiver::default());
    serve(listener, r.clone());
    eventually("delivered once the receiver listens", || async {
        deliveries(&api, "lab-system").await["delivered"].as_i64() == Some(1)
    })
    .await;
    let got = r.accepted();
    assert_eq!(got.len(), 1);
    let (code, list) = get_json(&format!("{api}/api/v1/subscriptions")).await;
    assert_eq!(code, 200);
    assert_eq!(list["items"][0]["origin"], "config");
    assert!(
        !list.to_string().contains(ADMIN_TOKEN),
        "the secret is never shown"
    );
    let resp = http()
        .delete(format!("{api}/api/v1/subscriptions/lab-system"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        409,
        "a configured subscription is removed in the file"
    );
}
