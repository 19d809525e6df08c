//! Searching the message log as ops do when a feed misbehaves: by connector, status, type,
//! control id, patient identifier and receive time, newest first, page after page. Runs on
//! the suite's backend (SQLite, or PostgreSQL with `CAREHUB_TEST_BACKEND=postgres`).

use std::collections::HashSet;
use std::time::Duration;

use carehub::api::{Role, tokens};
use serde_json::Value;

use crate::helpers::*;

fn msg(kind: &str, control: &str, mrn: &str) -> String {
    format!(
        "MSH|^~\\&|EMR|HOSP|CAREHUB|CLINIC|20240105083000+0700||{kind}|{control}|P|2.5.1\r\
         PID|1||{mrn}^^^HOSP^MR||Trần^Văn Minh||19800101|M\r"
    )
}

/// The control ids a search answers, in its order.
async fn search(t: &TestHub, query: &str) -> Vec<String> {
    let (status, body) = get_json(&format!("{}/api/v1/messages?{query}", t.api())).await;
    assert_eq!(status, 200, "{query}: {body}");
    controls(&body)
}

fn controls(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["control_id"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A hub with messages of two connectors, several types, an error and two patients.
async fn seeded() -> TestHub {
    let t = spawn_hub_with(HubOptions {
        file_connector: true,
        ..Default::default()
    })
    .await;
    for m in [
        msg("ADT^A04^ADT_A01", "S-1", "MRN-S1"),
        msg("ADT^A08^ADT_A01", "S-2", "MRN-S1"),
        msg("ADT^A04^ADT_A01", "S-3", "MRN-S2"),
        msg("ZZZ^Z01", "S-4", "MRN-S2"), // no mapping: unmapped
        "MSH|^~\\&|EMR|HOSP|CAREHUB|CLINIC|2024||ADT^A04|S-5|P|2.5.1\rPID|1||MRN-S3^^^HOSP^MR||X||notadate|Q\r"
            .to_string(),
    ] {
        send(t.mllp(), &m).await;
    }
    std::fs::write(t.inbox().join("one.hl7"), msg("ADT^A08^ADT_A01", "S-6", "MRN-S2")).unwrap();
    eventually("the file connector's message is stored", || async {
        search(&t, "connector=inbox").await.len() == 1
    })
    .await;
    t
}

#[tokio::test]
async fn each_filter_finds_its_messages_newest_first() {
    let t = seeded().await;
    assert_eq!(search(&t, "").await, ["S-6", "S-5", "S-4", "S-3", "S-2", "S-1"]);
    assert_eq!(search(&t, "connector=inbox").await, ["S-6"]);
    assert_eq!(search(&t, "connector=mllp&type=ADT%5EA08").await, ["S-2"]);
    assert_eq!(search(&t, "type=ADT%5EA04").await, ["S-5", "S-3", "S-1"]);
    // A code alone: every event of it; lower case too.
    assert_eq!(search(&t, "type=adt").await, ["S-6", "S-5", "S-3", "S-2", "S-1"]);
    assert_eq!(search(&t, "type=ZZZ").await, ["S-4"]);
    assert_eq!(search(&t, "status=unmapped").await, ["S-4"]);
    assert_eq!(search(&t, "control_id=S-3").await, ["S-3"]);
    assert_eq!(
        search(&t, "control_id=S-3&connector=inbox").await,
        Vec::<String>::new()
    );
    // A patient identifier: that patient's messages, whichever connector brought them.
    assert_eq!(search(&t, "patient_identifier=MRN-S2").await, ["S-6", "S-3"]);
    assert_eq!(
        search(&t, "patient_identifier=MRN-S2&patient_system=HOSP&connector=mllp").await,
        ["S-3"]
    );
    assert_eq!(
        search(&t, "patient_identifier=MRN-NOBODY").await,
        Vec::<String>::new()
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn pages_follow_the_next_link_to_the_end() {
    let t = seeded().await;
    for query in ["limit=2", "limit=2&type=ADT", "limit=2&received_from=2020-01-01"] {
        let mut url = format!("/api/v1/messages?{query}");
        let mut seen = Vec::new();
        for _ in 0..10 {
            let (status, body) = get_json(&format!("{}{url}", t.api())).await;
            assert_eq!(status, 200, "{body}");
            seen.extend(controls(&body));
            match body["next"].as_str() {
                Some(next) => url = next.to_string(),
                None => break,
            }
        }
        let all = search(&t, &query.replace("limit=2", "limit=100")).await;
        assert_eq!(seen, all, "{query}: pages in order, none twice, none missed");
        assert!(all.len() >= 5, "{query}: {all:?}");
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());
    }
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_time_range_keeps_what_was_received_within_it() {
    let t = spawn_hub().await;
    send(t.mllp(), &msg("ADT^A04^ADT_A01", "T-1", "MRN-T1")).await;
    let between = jiff::Timestamp::now();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    send(t.mllp(), &msg("ADT^A04^ADT_A01", "T-2", "MRN-T2")).await;
    let enc = |t: jiff::Timestamp| t.to_string().replace(':', "%3A").replace('+', "%2B");
    assert_eq!(
        search(&t, &format!("received_to={}", enc(between))).await,
        ["T-1"]
    );
    let later = between + jiff::SignedDuration::from_secs(1);
    assert_eq!(
        search(&t, &format!("received_from={}", enc(later))).await,
        ["T-2"]
    );
    assert_eq!(
        search(&t, "received_from=2020-01-01&received_to=2099-01-01").await,
        ["T-2", "T-1"]
    );
    assert_eq!(search(&t, "received_to=2020-01-01").await, Vec::<String>::new());
    t.hub.shutdown().await;
}

#[tokio::test]
async fn ops_searches_metadata_but_not_by_patient_identifier() {
    let t = seeded().await;
    let (_, ops) = tokens::create(&t.hub.store, "ops", Role::Ops, None)
        .await
        .unwrap();
    let url = |q: &str| format!("{}/api/v1/messages?{q}", t.api());
    let resp = http_as(&ops).get(url("type=ADT")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(
        !body.contains("Trần") && !body.contains("MRN-S"),
        "metadata only: {body}"
    );
    let resp = http_as(&ops)
        .get(url("patient_identifier=MRN-S2"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("patient identifier"));
    // An admin's search by identifier is a read of that patient, audited.
    let (status, _) = get_json(&url("patient_identifier=MRN-S2")).await;
    assert_eq!(status, 200);
    let (_, audit) = get_json(&format!("{}/api/v1/audit?limit=20", t.api())).await;
    let row = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "GET /api/v1/messages")
        .cloned()
        .unwrap_or_else(|| panic!("an audit row: {audit}"));
    assert_eq!(row["person_count"], 1, "{row}");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn bad_search_parameters_get_a_reason() {
    let t = spawn_hub().await;
    for (query, says) in [
        ("status=lost", "status must be one of"),
        ("received_from=yesterday", "received_from"),
        ("received_from=2026-02-01&received_to=2026-01-01", "before"),
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
    ] {
        let (status, body) = get_json(&format!("{}/api/v1/messages?{query}", t.api())).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap_or("").contains(says),
            "{query}: {body}"
        );
    }
    let resp = http()
        .get(format!("{}/api/v1/messages?conector=mllp", t.api()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "a misspelt filter is refused, not ignored");
    assert!(resp.text().await.unwrap().contains("conector"));
    t.hub.shutdown().await;
}
