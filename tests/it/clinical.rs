//! Clinical records through the whole hub: ADT visits, lab results, appointments and their
//! updates land on the person's timeline; an ADT^A40 merge moves a person's timeline under the
//! survivor; several patients in one message are refused. Runs on the suite's backend (SQLite,
//! or PostgreSQL in CI).

use crate::helpers::*;

fn msh(kind: &str, control: &str) -> String {
    format!("MSH|^~\\&|EMR|HOSP|CAREHUB|CLINIC|20240105083000+0700||{kind}|{control}|P|2.5.1\r")
}

const PID: &str = "PID|1||MRN-C1^^^HOSP^MR||Nguyễn^Thị Lan^^^^^L||19850307|F\r";

async fn timeline(api: &str, person: &str, query: &str) -> Vec<serde_json::Value> {
    let (code, body) = get_json(&format!("{api}/api/v1/patients/{person}/timeline{query}")).await;
    assert_eq!(code, 200, "{body}");
    body["items"].as_array().expect("items").clone()
}

async fn person_id(api: &str, identifier: &str) -> String {
    let (code, body) = get_json(&format!("{api}/api/v1/patients?identifier={identifier}")).await;
    assert_eq!(code, 200);
    body["items"][0]["id"]
        .as_str()
        .expect("a person holds the identifier")
        .to_string()
}

#[tokio::test]
async fn visits_results_and_appointments_reach_the_timeline_and_updates_replace_them() {
    let t = spawn_hub().await;
    let api = t.api();
    let admit = format!(
        "{}{PID}PV1|1|I|W3^301^B|||||||MED|||||||||V-1|||||||||||||||||||||||||20240105080000\rDG1|1||E11.9^Type 2 diabetes^I10\r",
        msh("ADT^A01^ADT_A01", "C-1")
    );
    let discharge = format!(
        "{}{PID}PV1|1|I|W3^301^B|||||||MED|||||||||V-1|||||||||||||||||||||||||20240105080000|20240108100000\r",
        msh("ADT^A03^ADT_A03", "C-2")
    );
    let result = |control: &str, status: &str, value: &str| {
        format!(
            "{}{PID}OBR|1|ORD-1|FIL-1|2093-3^Cholesterol^LN|||20240105073000\rOBX|1|NM|2093-3^Cholesterol^LN||{value}|mmol/L|<5.2|H|||{status}|||20240105073000\r",
            msh("ORU^R01^ORU_R01", control)
        )
    };
    let booking = |control: &str, trigger: &str| {
        format!(
            "{}SCH|APT-1|APT-1F|||||CHECKUP^Check-up^L|||||||||||||||||Booked\rTQ1|1||||||20240110090000|20240110093000\r{PID}",
            msh(&format!("SIU^{trigger}^SIU_S12"), control)
        )
    };
    for m in [
        admit,
        discharge,
        result("C-3", "P", "5.6"),
        result("C-4", "C", "5.4"),
        booking("C-5", "S12"),
        booking("C-6", "S15"),
    ] {
        let ack = send(t.mllp(), &m).await;
        assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
    }
    let person = person_id(&api, "MRN-C1").await;
    let items = timeline(&api, &person, "").await;
    let mut kinds: Vec<&str> = items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    // Newest first: the appointment (10 Jan), the encounter (5 Jan 08:00), then the order and
    // its result (both 5 Jan 07:30), then the diagnosis (no time). One of each: updates
    // replaced, never duplicated.
    kinds[2..4].sort();
    assert_eq!(
        kinds,
        ["appointment", "encounter", "order", "result", "diagnosis"],
        "{items:#?}"
    );
    assert_eq!(items[0]["status"], "cancelled", "S15 cancelled the S12 booking");
    assert_eq!(items[1]["status"], "finished", "A03 finished the A01 visit");
    assert_eq!(items[1]["record"]["end"], "2024-01-08T10:00:00+07:00");
    let result = items.iter().find(|i| i["kind"] == "result").unwrap();
    assert_eq!(result["status"], "corrected");
    assert_eq!(
        result["record"]["numeric"], 5.4,
        "the correction replaced the preliminary value"
    );
    assert!(result["last_message_id"].as_i64() > result["first_message_id"].as_i64());

    // Updates that leave things out do not erase them: an A08 without discharge time keeps the
    // visit finished; a status-only result (OBX-11 U, no value) keeps the corrected value.
    let update = format!(
        "{}{PID}PV1|1|I|W3^302^A|||||||MED|||||||||V-1\r",
        msh("ADT^A08^ADT_A01", "C-8")
    );
    let status_only = format!(
        "{}{PID}OBR|1|ORD-1|FIL-1|2093-3^Cholesterol^LN\rOBX|1|NM|2093-3^Cholesterol^LN||||||||U\r",
        msh("ORU^R01^ORU_R01", "C-9")
    );
    for m in [update, status_only] {
        assert_eq!(field(&send(t.mllp(), &m).await, "MSA", 1), "AA");
    }
    let items = timeline(&api, &person, "").await;
    let of = |kind: &str| items.iter().find(|i| i["kind"] == kind).unwrap().clone();
    assert_eq!(of("encounter")["status"], "finished");
    assert_eq!(
        of("encounter")["record"]["location"],
        "W3 302 A",
        "the update's new bed"
    );
    assert_eq!(of("result")["status"], "final");
    assert_eq!(of("result")["record"]["numeric"], 5.4);

    let results = timeline(&api, &person, "?kind=result").await;
    assert_eq!(results.len(), 1);
    let (code, _) = get_json(&format!("{api}/api/v1/patients/{person}/timeline?kind=pizza")).await;
    assert_eq!(code, 400);
    let (code, _) = get_json(&format!("{api}/api/v1/patients/nobody/timeline")).await;
    assert_eq!(code, 404);

    // Another patient with the same diagnosis code has a diagnosis of their own: records are
    // recognised within their patient, never moved from one to another.
    let other = format!(
        "{}PID|1||MRN-C3^^^HOSP^MR||Le^Hoa||19900101|F\rPV1|1|O|CLINIC|||||||||||||||||V-2\rDG1|1||E11.9^Type 2 diabetes^I10\r",
        msh("ADT^A04^ADT_A01", "C-10")
    );
    assert_eq!(field(&send(t.mllp(), &other).await, "MSA", 1), "AA");
    let other_person = person_id(&api, "MRN-C3").await;
    assert_eq!(timeline(&api, &other_person, "?kind=diagnosis").await.len(), 1);
    assert_eq!(timeline(&api, &person, "?kind=diagnosis").await.len(), 1);

    // Results of two patients in one message are refused (AE), kept, and filed nowhere.
    let two = format!(
        "{}{PID}OBR|1|ORD-9||718-7^Hb^LN\rOBX|1|NM|718-7^Hb^LN||12|g/dL||||F\rPID|1||MRN-C2^^^HOSP^MR||Le^Hoa\rOBR|1|ORD-10||718-7^Hb^LN\rOBX|1|NM|718-7^Hb^LN||15|g/dL||||F\r",
        msh("ORU^R01^ORU_R01", "C-7")
    );
    let ack = send(t.mllp(), &two).await;
    assert_eq!(field(&ack, "MSA", 1), "AE", "{ack}");
    assert!(field(&ack, "ERR", 8).contains("several patients"), "{ack}");
    assert_eq!(timeline(&api, &person, "?kind=result").await.len(), 1);
    t.hub.shutdown().await;
}

#[tokio::test]
async fn an_a40_merge_brings_the_retired_patients_timeline_under_the_survivor() {
    let t = spawn_hub().await;
    let api = t.api();
    let old_pid = "PID|1||MRN-OLD^^^HOSP^MR||Nguyễn^Lan||19850307|F\r";
    let lab = format!(
        "{}{old_pid}OBR|1|ORD-5|FIL-5|718-7^Hb^LN|||20240103070000\rOBX|1|NM|718-7^Hb^LN||12.5|g/dL||||F\r",
        msh("ORU^R01^ORU_R01", "M-1")
    );
    let register = format!("{}{PID}", msh("ADT^A04^ADT_A01", "M-2"));
    for m in [lab, register] {
        assert_eq!(field(&send(t.mllp(), &m).await, "MSA", 1), "AA");
    }
    let (survivor, retired) = (person_id(&api, "MRN-C1").await, person_id(&api, "MRN-OLD").await);
    assert_ne!(survivor, retired);
    assert!(timeline(&api, &survivor, "").await.is_empty());

    let merge = format!(
        "{}EVN|A40\r{PID}MRG|MRN-OLD^^^HOSP^MR\r",
        msh("ADT^A40^ADT_A39", "M-3")
    );
    assert_eq!(field(&send(t.mllp(), &merge).await, "MSA", 1), "AA");
    let items = timeline(&api, &survivor, "").await;
    assert_eq!(
        items.len(),
        2,
        "the order and result of the retired person: {items:#?}"
    );
    assert!(items.iter().all(|i| i["person_id"] == retired.as_str()));
    let (_, retired_view) = get_json(&format!("{api}/api/v1/patients/{retired}")).await;
    assert_eq!(retired_view["merged_into"], survivor.as_str());
    assert_eq!(
        person_id(&api, "MRN-OLD").await,
        survivor,
        "the identifier moved too"
    );

    // The merge is an ordinary one: undoing it gives the retired person its timeline back.
    let client = crate::helpers::http();
    let resp = client
        .post(format!("{api}/api/v1/patients/{survivor}/unmerge"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(timeline(&api, &survivor, "").await.is_empty());
    assert_eq!(timeline(&api, &retired, "").await.len(), 2);

    // A retired patient whose identifiers are held by two different persons (one reused or
    // mislinked) is not merged at all: a human decides.
    let stranger = format!(
        "{}PID|1||MRN-X^^^HOSP^MR||Pham^Minh||19990101|M\r",
        msh("ADT^A04^ADT_A01", "M-5")
    );
    assert_eq!(field(&send(t.mllp(), &stranger).await, "MSA", 1), "AA");
    let ambiguous = format!(
        "{}EVN|A40\r{PID}MRG|MRN-OLD^^^HOSP^MR~MRN-X^^^HOSP^MR\r",
        msh("ADT^A40^ADT_A39", "M-6")
    );
    assert_eq!(field(&send(t.mllp(), &ambiguous).await, "MSA", 1), "AA");
    let (_, retired_view) = get_json(&format!("{api}/api/v1/patients/{retired}")).await;
    assert!(retired_view["merged_into"].is_null(), "{retired_view}");
    assert_ne!(person_id(&api, "MRN-X").await, survivor);

    // A merge naming nobody known changes nothing and is still accepted.
    let nobody = format!(
        "{}EVN|A40\r{PID}MRG|MRN-NONE^^^HOSP^MR\r",
        msh("ADT^A40^ADT_A39", "M-4")
    );
    assert_eq!(field(&send(t.mllp(), &nobody).await, "MSA", 1), "AA");
    t.hub.shutdown().await;
}

/// A corrected coded result replaces the code whole — its old text never sticks to the new
/// code (SQLite and PostgreSQL alike).
#[tokio::test]
async fn a_corrected_code_does_not_keep_the_old_text() {
    let t = spawn_hub().await;
    let api = t.api();
    let result = |control: &str, value: &str, status: &str| {
        format!(
            "{}{PID}OBR|1|ORD-7|FIL-7|94500-6^SARS-CoV-2^LN\rOBX|1|CWE|94500-6^SARS-CoV-2^LN||{value}||||||{status}\r",
            msh("ORU^R01^ORU_R01", control)
        )
    };
    for m in [result("K-1", "NEG^Negative^L", "F"), result("K-2", "POS", "C")] {
        assert_eq!(field(&send(t.mllp(), &m).await, "MSA", 1), "AA");
    }
    let person = person_id(&api, "MRN-C1").await;
    let items = timeline(&api, &person, "?kind=result").await;
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["record"]["value_code"],
        serde_json::json!({"code": "POS"})
    );
    assert_eq!(items[0]["record"]["value"], "POS");
    assert_eq!(items[0]["status"], "corrected");
    t.hub.shutdown().await;
}
