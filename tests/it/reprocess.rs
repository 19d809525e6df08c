//! Reprocess as ops and IT use it after a mapping fix: the errored or unmapped messages read
//! again with the mapping files as they are on disk now, through the normal writer — rows
//! rewritten in place, identities and events as at arrival, a booking confirmed once. Runs on
//! the suite's backend (SQLite, or PostgreSQL with `CAREHUB_TEST_BACKEND=postgres`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use carehub::api::{Role, tokens};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::notify::{CONFIRM, file_channels, siu};

pub(crate) const ORU_FILE: &str = "hl7v2-oru-results.yaml";
const SIU_FILE: &str = "hl7v2-siu-appointment.yaml";

/// A copy of the shipped mapping files in `dir`, leaving out `without`.
pub(crate) fn copy_mappings(dir: &Path, without: &[&str]) -> PathBuf {
    let to = dir.join("maps");
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(mappings_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if path.extension().is_some_and(|e| e == "yaml") && !without.contains(&name.as_str()) {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
    to
}

/// Puts the shipped version of mapping `file` back into `maps` (the fix).
pub(crate) fn restore(maps: &Path, file: &str) {
    std::fs::copy(mappings_dir().join(file), maps.join(file)).unwrap();
}

/// The ORU mapping with OBX-11 `F` (final) no longer in its status table, and unknown codes
/// refused: a final result fails to map.
pub(crate) fn break_oru(maps: &Path) {
    let text = std::fs::read_to_string(mappings_dir().join(ORU_FILE)).unwrap();
    let broken = text
        .replacen(
            "values: {F: final, P: preliminary,",
            "values: {P: preliminary,",
            1,
        )
        .replacen("unknown: {default: unknown}", "unknown: error", 1);
    assert_ne!(broken, text, "the ORU mapping's status table changed");
    std::fs::write(maps.join(ORU_FILE), broken).unwrap();
}

pub(crate) fn adt(control: &str, mrn: &str) -> String {
    format!(
        "MSH|^~\\&|EMR|HOSP|CAREHUB|CLINIC|20240105083000+0700||ADT^A04^ADT_A01|{control}|P|2.5.1\r\
         PID|1||{mrn}^^^HOSP^MR||Nguyễn^Thị Lan||19850307|F\r"
    )
}

pub(crate) fn oru(control: &str, mrn: &str) -> String {
    format!(
        "MSH|^~\\&|LAB|HOSP|CAREHUB|CLINIC|20240105083000+0700||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||{mrn}^^^HOSP^MR||Nguyễn^Thị Lan||19850307|F\r\
         OBR|1|ORD-{control}|FIL-{control}|2093-3^Cholesterol^LN|||20240105073000\r\
         OBX|1|NM|2093-3^Cholesterol^LN||5.6|mmol/L|<5.2|H|||F|||20240105073000\r"
    )
}

async fn post(client: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    let resp = client
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("the API answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn reprocess(t: &TestHub, body: Value) -> (u16, Value) {
    post(&http(), &format!("{}/api/v1/messages/reprocess", t.api()), body).await
}

/// The message-log rows, newest first, as the API lists them (with a query).
async fn messages(t: &TestHub, query: &str) -> Vec<Value> {
    let (status, body) = get_json(&format!("{}/api/v1/messages?limit=1000{query}", t.api())).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

async fn message(t: &TestHub, id: i64) -> Value {
    let (status, body) = get_json(&format!("{}/api/v1/messages/{id}", t.api())).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn person_of(t: &TestHub, mrn: &str) -> String {
    let (_, body) = get_json(&format!("{}/api/v1/patients?identifier={mrn}", t.api())).await;
    body["items"][0]["id"].as_str().expect("a person").to_string()
}

async fn connector(t: &TestHub, name: &str) -> Value {
    let (_, body) = get_json(&format!("{}/api/v1/connectors", t.api())).await;
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .expect("the connector")
}

#[tokio::test]
async fn a_result_refused_by_a_broken_mapping_is_processed_after_the_fix_and_a_reprocess() {
    let dir = tempfile::tempdir().unwrap();
    let maps = copy_mappings(dir.path(), &[]);
    break_oru(&maps);
    let t = spawn_hub_with(HubOptions {
        mappings_dir: Some(maps.clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        field(&send(t.mllp(), &adt("RX-1", "MRN-RX1")).await, "MSA", 1),
        "AA"
    );
    let ack = send(t.mllp(), &oru("RX-2", "MRN-RX1")).await;
    assert_eq!(
        field(&ack, "MSA", 1),
        "AE",
        "the broken mapping refuses the result: {ack}"
    );
    let errors = messages(&t, "&status=error").await;
    assert_eq!(errors.len(), 1);
    let id = errors[0]["id"].as_i64().unwrap();
    let rows_before = messages(&t, "").await.len();
    let counters_before = connector(&t, "mllp").await;

    // A mapping file that does not compile: refused with where and why, nothing touched.
    std::fs::write(
        maps.join(ORU_FILE),
        "name: hl7v2-oru-results\ninput: hl7v2\nresults: [\n",
    )
    .unwrap();
    let (status, body) = reprocess(&t, json!({})).await;
    assert_eq!(status, 400, "{body}");
    let problems = body["problems"].to_string();
    let at = problems.find(&format!("{ORU_FILE}:")).expect("the file is named");
    let after = &problems[at + ORU_FILE.len() + 1..];
    assert!(
        after.starts_with(|c: char| c.is_ascii_digit()),
        "file:line: {body}"
    );
    assert_eq!(message(&t, id).await["status"], "error");

    // Fixed on disk; the hub is not restarted. A dry run counts, and writes nothing.
    restore(&maps, ORU_FILE);
    let (status, dry) = reprocess(&t, json!({"status": "error", "dry_run": true})).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["selected"], 1);
    assert_eq!(dry["outcomes"]["processed"], 1, "{dry}");
    assert_eq!(dry["changed"], 1);
    assert_eq!(dry["by"][0]["connector"], "mllp");
    assert_eq!(dry["by"][0]["type"], "ORU^R01");
    assert_eq!(
        (dry["by"][0]["before"].as_str(), dry["by"][0]["after"].as_str()),
        (Some("error"), Some("processed"))
    );
    let unchanged = message(&t, id).await;
    assert_eq!(unchanged["status"], "error", "a dry run writes nothing");
    assert_eq!(unchanged["reprocess_count"], 0);

    let (status, done) = reprocess(&t, json!({"status": "error"})).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["dry_run"], false);
    assert_eq!(done["outcomes"]["processed"], 1, "{done}");

    // The same row, now processed, linked to the patient, its result on the timeline.
    let row = message(&t, id).await;
    assert_eq!(row["status"], "processed", "{row}");
    assert_eq!(row["error"], Value::Null);
    assert_eq!(row["mapping"], "hl7v2-oru-results");
    assert_eq!(row["reprocess_count"], 1);
    assert!(row["reprocessed_at"].is_string());
    let person = person_of(&t, "MRN-RX1").await;
    assert_eq!(
        row["person_id"],
        person.as_str(),
        "the result's patient is the one the ADT made"
    );
    assert_eq!(messages(&t, "").await.len(), rows_before, "no second row");
    let (_, timeline) = get_json(&format!(
        "{}/api/v1/patients/{person}/timeline?kind=result",
        t.api()
    ))
    .await;
    let results = timeline["items"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{timeline}");
    assert_eq!(results[0]["record"]["numeric"], 5.6);
    assert_eq!(results[0]["status"], "final");
    assert_eq!(results[0]["first_message_id"], id);

    // The connector's counts move from error to processed; nothing more was received.
    let counters = connector(&t, "mllp").await;
    assert_eq!(counters["received"], counters_before["received"]);
    assert_eq!(
        counters["errors"].as_i64(),
        counters_before["errors"].as_i64().map(|n| n - 1)
    );
    assert_eq!(
        counters["processed"].as_i64(),
        counters_before["processed"].as_i64().map(|n| n + 1)
    );

    // Nothing left in error: a second run finds nothing.
    let (_, again) = reprocess(&t, json!({})).await;
    assert_eq!(again["selected"], 0, "{again}");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_booking_reprocessed_twice_is_confirmed_once() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = tempfile::tempdir().unwrap();
    // No scheduling mapping yet: bookings are kept as unmapped.
    let maps = copy_mappings(dir.path(), &[SIU_FILE]);
    let t = spawn_hub_with(HubOptions {
        mappings_dir: Some(maps.clone()),
        rules: vec![("confirm.yaml".into(), CONFIRM.into())],
        hub_extra: file_channels(outbox.path()),
        ..Default::default()
    })
    .await;
    send(t.mllp(), &crate::notify::adt_vi("RB-1", "MRN-RB1", "0903123456")).await;
    let ack = send(t.mllp(), &siu("S12", "RB-2", "APT-RB", "MRN-RB1", 72)).await;
    assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
    let unmapped = messages(&t, "&status=unmapped").await;
    assert_eq!(unmapped.len(), 1);
    let id = unmapped[0]["id"].as_i64().unwrap();

    restore(&maps, SIU_FILE);
    for round in 1..=2 {
        let (status, done) = reprocess(&t, json!({"ids": [id]})).await;
        assert_eq!(status, 200, "{done}");
        assert_eq!(done["outcomes"]["processed"], 1, "round {round}: {done}");
    }
    assert_eq!(message(&t, id).await["reprocess_count"], 2);

    let sms = || {
        files_under(&outbox.path().join("sms"), &|p| {
            p.extension().is_some_and(|e| e == "txt")
        })
    };
    eventually("the booking's confirmation is sent", || async {
        !sms().is_empty()
    })
    .await;
    // Time for a second confirmation to show, were one owed.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sms().len(), 1, "one confirmation for one booking");
    let person = person_of(&t, "MRN-RB1").await;
    let (_, timeline) = get_json(&format!(
        "{}/api/v1/patients/{person}/timeline?kind=appointment",
        t.api()
    ))
    .await;
    assert_eq!(timeline["items"].as_array().unwrap().len(), 1, "{timeline}");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn messages_are_chosen_by_ids_or_by_a_filter() {
    let dir = tempfile::tempdir().unwrap();
    let maps = copy_mappings(dir.path(), &[ORU_FILE, SIU_FILE]);
    let t = spawn_hub_with(HubOptions {
        mappings_dir: Some(maps.clone()),
        ..Default::default()
    })
    .await;
    for m in [
        adt("RS-1", "MRN-RS1"),
        oru("RS-2", "MRN-RS1"),
        oru("RS-3", "MRN-RS1"),
        siu("S12", "RS-4", "APT-RS", "MRN-RS1", 48),
    ] {
        assert_eq!(field(&send(t.mllp(), &m).await, "MSA", 1), "AA");
    }
    let id_of = |rows: &[Value], control: &str| {
        rows.iter().find(|r| r["control_id"] == control).unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let all = messages(&t, "").await;
    let (adt_id, oru_a, oru_b, siu_id) = (
        id_of(&all, "RS-1"),
        id_of(&all, "RS-2"),
        id_of(&all, "RS-3"),
        id_of(&all, "RS-4"),
    );
    restore(&maps, ORU_FILE);
    restore(&maps, SIU_FILE);

    // A filter by type counts only that type (ORU: every ORU event).
    let (_, dry) = reprocess(&t, json!({"type": "ORU", "dry_run": true})).await;
    assert_eq!(
        (dry["selected"].as_u64(), dry["outcomes"]["processed"].as_u64()),
        (Some(2), Some(2)),
        "{dry}"
    );
    let (_, dry) = reprocess(
        &t,
        json!({"type": "SIU^S12", "connector": "mllp", "dry_run": true}),
    )
    .await;
    assert_eq!(dry["selected"], 1, "{dry}");
    let (_, dry) = reprocess(&t, json!({"connector": "elsewhere", "dry_run": true})).await;
    assert_eq!(dry["selected"], 0, "{dry}");

    // By id: that message only.
    let (_, done) = reprocess(&t, json!({"ids": [oru_a]})).await;
    assert_eq!(done["selected"], 1, "{done}");
    let status = |rows: &[Value], id: i64| rows.iter().find(|r| r["id"] == id).unwrap()["status"].clone();
    let rows = messages(&t, "").await;
    assert_eq!(status(&rows, oru_a), "processed");
    assert_eq!(status(&rows, oru_b), "unmapped");
    assert_eq!(status(&rows, siu_id), "unmapped");

    // A filter: the rest of the unmapped ones; the processed ADT is not read again.
    let (_, done) = reprocess(&t, json!({"status": "unmapped"})).await;
    assert_eq!(done["selected"], 2, "{done}");
    assert_eq!(done["outcomes"]["processed"], 2, "{done}");
    let rows = messages(&t, "").await;
    assert!(rows.iter().all(|r| r["status"] == "processed"), "{rows:#?}");
    let adt_row = rows.iter().find(|r| r["id"] == adt_id).unwrap();
    assert_eq!(adt_row["reprocess_count"], 0);

    // Bad choices get a reason.
    for (body, says) in [
        (json!({"status": "duplicate"}), "cannot be reprocessed"),
        (
            json!({"status": "sideways"}),
            "expected error, unmapped or processed",
        ),
        (json!({"received_from": "yesterday"}), "received_from"),
    ] {
        let (status, answer) = reprocess(&t, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap_or("").contains(says),
            "{body}: {answer}"
        );
    }
    // A reversed range chooses nothing.
    let (status, answer) = reprocess(
        &t,
        json!({"received_from": "2026-02-01", "received_to": "2026-01-01", "dry_run": true}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["selected"], 0, "{answer}");
    let (status, _) = reprocess(&t, json!({"idz": [1]})).await;
    assert!(
        (400..500).contains(&status),
        "an unknown key is refused: {status}"
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn only_an_admin_may_reprocess() {
    let dir = tempfile::tempdir().unwrap();
    let maps = copy_mappings(dir.path(), &[ORU_FILE]);
    let t = spawn_hub_with(HubOptions {
        mappings_dir: Some(maps.clone()),
        ..Default::default()
    })
    .await;
    send(t.mllp(), &oru("RA-1", "MRN-RA1")).await;
    restore(&maps, ORU_FILE);
    let url = format!("{}/api/v1/messages/reprocess", t.api());
    for role in [Role::Ops, Role::Clinician, Role::Sender, Role::Auditor] {
        let (_, token) = tokens::create(&t.hub.store, &format!("rp {role}"), role, None)
            .await
            .unwrap();
        let (status, body) = post(&http_as(&token), &url, json!({})).await;
        assert_eq!(status, 403, "{role}: {body}");
    }
    assert_eq!(
        messages(&t, "&status=unmapped").await.len(),
        1,
        "nothing was reprocessed"
    );
    let (status, done) = post(&http(), &url, json!({})).await;
    assert_eq!(
        (status, done["outcomes"]["processed"].as_u64()),
        (200, Some(1)),
        "{done}"
    );
    // The action is in the audit log.
    let (_, audit) = get_json(&format!("{}/api/v1/audit?limit=50", t.api())).await;
    assert!(
        audit.to_string().contains("POST /api/v1/messages/reprocess"),
        "{audit}"
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn the_command_line_reprocesses_with_a_dry_run_first() {
    let dir = tempfile::tempdir().unwrap();
    let maps = copy_mappings(dir.path(), &[ORU_FILE]);
    let t = spawn_hub_with(HubOptions {
        mappings_dir: Some(maps.clone()),
        ..Default::default()
    })
    .await;
    send(t.mllp(), &oru("RC-1", "MRN-RC1")).await;
    let config = t.dir.path().join("carehub.yaml");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_carehub"))
            .arg("reprocess")
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("CAREHUB_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap()
    };
    // Before the fix: still unmapped.
    let out = run(&["--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("0 processed, 0 error, 1 unmapped"), "{stdout}");

    restore(&maps, ORU_FILE);
    let out = run(&["--type", "ORU^R01", "--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 processed"), "{stdout}");
    let out = run(&["--status", "unmapped"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 of 1 selected messages reprocessed: 1 processed"),
        "{stdout}"
    );
    assert_eq!(messages(&t, "&status=processed").await.len(), 1);

    // A bad argument: exit 2 with the reason.
    let out = run(&["--status", "duplicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be reprocessed"));
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_pushed_fhir_resource_without_a_mapping_is_applied_after_one_is_added() {
    const PATIENT_FILE: &str = "fhir-patient-person.yaml";
    let dir = tempfile::tempdir().unwrap();
    let maps = copy_mappings(dir.path(), &[PATIENT_FILE]);
    let t = spawn_hub_with(HubOptions {
        mappings_dir: Some(maps.clone()),
        fhir_push: true,
        ..Default::default()
    })
    .await;
    let patient = json!({"resourceType": "Patient", "id": "rf-1", "meta": {"versionId": "1"},
        "identifier": [{"system": "urn:oid:1.2.704.9", "value": "F-RP-1"}],
        "name": [{"family": "Phạm", "given": ["Thu"]}], "gender": "female", "birthDate": "1990-04-12"});
    let resp = http()
        .post(format!("{}/fhir/r4", t.api()))
        .header("content-type", "application/fhir+json")
        .body(patient.to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let unmapped = messages(&t, "&status=unmapped&connector=fhir").await;
    assert_eq!(unmapped.len(), 1, "{unmapped:#?}");
    let id = unmapped[0]["id"].as_i64().unwrap();
    let (_, found) = get_json(&format!("{}/api/v1/patients?identifier=F-RP-1", t.api())).await;
    assert_eq!(found["items"].as_array().unwrap().len(), 0);

    restore(&maps, PATIENT_FILE);
    let (status, done) = reprocess(&t, json!({"connector": "fhir", "type": "Patient"})).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["outcomes"]["processed"], 1, "{done}");
    let row = message(&t, id).await;
    assert_eq!(row["status"], "processed", "{row}");
    assert_eq!(row["control_id"], "Patient/rf-1/_history/1");
    let (_, found) = get_json(&format!("{}/api/v1/patients?identifier=F-RP-1", t.api())).await;
    assert_eq!(
        found["items"][0]["profile"]["names"][0]["family"], "Phạm",
        "{found}"
    );
    t.hub.shutdown().await;
}
