//! FHIR R4 push (`type: fhir_push`, `POST /fhir/r4`): Bundles and resources from systems that
//! push, through the message log and the FHIR mappings to the profile and the timeline, with
//! the answers a FHIR client expects. Runs on the suite's backend.

use serde_json::{Value, json};

use crate::helpers::*;

async fn push(api: &str, body: &str) -> (u16, Value) {
    let resp = crate::helpers::http()
        .post(format!("{api}/fhir/r4"))
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .expect("the endpoint answers");
    let status = resp.status().as_u16();
    let ctype = resp.headers()["content-type"].to_str().unwrap_or("").to_string();
    assert!(ctype.starts_with("application/fhir+json"), "{ctype}");
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn hub_with_push() -> HubOptions {
    HubOptions {
        fhir_push: true,
        ..Default::default()
    }
}

fn patient(id: &str, mrn: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "identifier": [{"system": "urn:oid:1.2.704.9", "value": mrn}],
           "name": [{"family": "Phạm", "given": ["Thu"]}], "gender": "female", "birthDate": "1990-04-12"})
}

#[tokio::test]
async fn a_transaction_bundle_lands_on_the_profile_and_the_timeline() {
    let t = spawn_hub_with(hub_with_push()).await;
    let api = t.api();
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001", "resource": patient("p1", "F-100"),
         "request": {"method": "PUT", "url": "Patient/p1"}},
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000002",
         "resource": {"resourceType": "Observation", "id": "o1", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0", "display": "Glucose"}]},
                      "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"},
                      "effectiveDateTime": "2024-07-01T08:00:00+07:00",
                      "valueQuantity": {"value": 5.1, "unit": "mmol/L"}},
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Basic", "id": "b1"}, "request": {"method": "POST", "url": "Basic"}}
    ]});
    let (status, body) = push(&api, &bundle.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "transaction-response");
    let statuses: Vec<&str> = body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201 Created", "201 Created", "200 OK"], "{body}");

    let (_, found) = get_json(&format!("{api}/api/v1/patients?identifier=F-100")).await;
    let person = found["items"][0]["id"]
        .as_str()
        .expect("the Patient became a person")
        .to_string();
    let (_, timeline) = get_json(&format!("{api}/api/v1/patients/{person}/timeline")).await;
    let items = timeline["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{timeline}");
    assert_eq!(items[0]["kind"], "result");
    assert_eq!(items[0]["record"]["numeric"], 5.1);
    assert_eq!(items[0]["source_system"], "EHR-FHIR");

    // Each resource is a message of the log; the same versions again are duplicates.
    let (_, log) = get_json(&format!("{api}/api/v1/messages?connector=fhir")).await;
    assert_eq!(log["items"].as_array().unwrap().len(), 3, "{log}");
    let (status, again) = push(&api, &bundle.to_string()).await;
    assert_eq!(status, 200);
    assert!(
        again["entry"][0]["response"]["outcome"]["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("already received")
    );
    let (_, timeline) = get_json(&format!("{api}/api/v1/patients/{person}/timeline")).await;
    assert_eq!(timeline["items"].as_array().unwrap().len(), 1);
    t.hub.shutdown().await;
}

#[tokio::test]
async fn refusals_are_answered_and_kept() {
    let t = spawn_hub_with(hub_with_push()).await;
    let api = t.api();
    // Not JSON: 400 with an OperationOutcome, and the body kept in the log.
    let (status, body) = push(&api, "MSH|^~\\&|not fhir").await;
    assert_eq!(status, 400);
    assert_eq!(body["resourceType"], "OperationOutcome");
    let (_, log) = get_json(&format!("{api}/api/v1/messages?status=error&connector=fhir")).await;
    assert_eq!(log["items"].as_array().unwrap().len(), 1);

    // A batch: each entry on its own; the broken one is 422, the other applied.
    let bad = json!({"resourceType": "Appointment", "id": "a9", "status": "rescheduled",
                     "participant": [{"actor": {"type": "Patient", "identifier": {"system": "urn:oid:1.2.704.9", "value": "F-200"}}}]});
    let batch = json!({"resourceType": "Bundle", "type": "batch",
                       "entry": [{"resource": patient("p2", "F-200")}, {"resource": bad}]});
    let (status, body) = push(&api, &batch.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entry"][0]["response"]["status"], "201 Created");
    assert_eq!(body["entry"][1]["response"]["status"], "422 Unprocessable Entity");
    let why = body["entry"][1]["response"]["outcome"]["issue"][0]["diagnostics"]
        .as_str()
        .unwrap();
    assert!(
        why.contains("fhir-appointment") && why.contains("status"),
        "names mapping and rule: {why}"
    );
    assert!(!why.contains("rescheduled"), "no data in the reason: {why}");

    // A transaction with the same broken entry: nothing applied, 400 naming the entry.
    let transaction = json!({"resourceType": "Bundle", "type": "transaction",
                             "entry": [{"resource": patient("p3", "F-300")}, {"resource": bad}]});
    let (status, body) = push(&api, &transaction.to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("entry 2")
    );
    let (_, found) = get_json(&format!("{api}/api/v1/patients?identifier=F-300")).await;
    assert!(
        found["items"].as_array().unwrap().is_empty(),
        "the transaction's Patient was not applied"
    );

    // Too many resources for the connector (max_resources: 50): refused whole.
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"resource": patient(&format!("m{i}"), &format!("M-{i}"))}))
        .collect();
    let (status, body) = push(
        &api,
        &json!({"resourceType": "Bundle", "type": "batch", "entry": many}).to_string(),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_patient_that_replaces_another_merges_it() {
    let t = spawn_hub_with(hub_with_push()).await;
    let api = t.api();
    let (status, _) = push(&api, &patient("old", "F-OLD").to_string()).await;
    assert_eq!(status, 201);
    let mut survivor = patient("new", "F-NEW");
    survivor["link"] = json!([{"type": "replaces", "other": {"identifier": {"system": "urn:oid:1.2.704.9", "value": "F-OLD"}}}]);
    let (status, body) = push(&api, &survivor.to_string()).await;
    assert_eq!(status, 201, "{body}");
    let (_, old) = get_json(&format!("{api}/api/v1/patients?identifier=F-OLD")).await;
    let (_, new) = get_json(&format!("{api}/api/v1/patients?identifier=F-NEW")).await;
    assert_eq!(
        old["items"][0]["id"], new["items"][0]["id"],
        "F-OLD now belongs to the survivor"
    );
    t.hub.shutdown().await;
}

/// A resource without a version that changes and changes back is applied each time: only a
/// copy of the latest content is a duplicate.
#[tokio::test]
async fn a_resource_that_changes_back_is_applied_again() {
    let t = spawn_hub_with(hub_with_push()).await;
    let api = t.api();
    let a = patient("pa", "F-ABA");
    let mut b = a.clone();
    b["name"][0]["family"] = json!("Lê");
    for (body, want) in [(&a, 201), (&b, 201), (&a, 201), (&a, 200)] {
        let (status, answer) = push(&api, &body.to_string()).await;
        assert_eq!(status, want, "{answer}");
    }
    let (_, found) = get_json(&format!("{api}/api/v1/patients?identifier=F-ABA")).await;
    assert_eq!(found["items"][0]["profile"]["names"][0]["family"], "Phạm");
    t.hub.shutdown().await;
}

/// A pushed resource is also read as the typed FHIR model (fhir-sdk): what the model finds
/// wrong is said in the answer and kept on the message, and the resource is still applied
/// (the mapping decides what is taken). A well-formed one gets no such warning.
#[tokio::test]
async fn what_the_fhir_model_finds_is_answered_and_kept_as_a_warning() {
    let t = spawn_hub_with(hub_with_push()).await;
    let api = t.api();
    let mut zalo = patient("p-zalo", "F-300");
    zalo["telecom"] =
        json!([{"system": "phone", "value": "+84903000300"}, {"system": "zalo", "value": "0903000300"}]);
    let (status, body) = push(&api, &zalo.to_string()).await;
    assert_eq!(status, 201, "{body}");
    let said = body["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(
        said.contains("FHIR R4B model: Unknown value: zalo (at Patient.telecom[1].system)"),
        "{said}"
    );
    let (_, found) = get_json(&format!("{api}/api/v1/patients?identifier=F-300")).await;
    assert_eq!(
        found["items"].as_array().unwrap().len(),
        1,
        "applied all the same"
    );
    let (_, log) = get_json(&format!("{api}/api/v1/messages?connector=fhir")).await;
    assert!(log.to_string().contains("Unknown value: zalo"), "{log}");

    let (status, body) = push(&api, &patient("p-ok", "F-301").to_string()).await;
    assert_eq!(status, 201, "{body}");
    assert!(!body.to_string().contains("FHIR R4B model"), "{body}");
    t.hub.shutdown().await;
}
