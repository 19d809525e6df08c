use serde_json::json;

use super::*;
use crate::model::ProfilePatch;

fn cfg() -> FhirOutConfig {
    FhirOutConfig {
        identifier_systems: [("HOSPITAL-A".to_string(), "urn:oid:1.2.3.4".to_string())].into(),
        ..Default::default()
    }
}

fn profile() -> ProfilePatch {
    serde_json::from_value(json!({
        "identifiers": [{"system": "HOSPITAL-A", "value": "MRN1", "type": "MR"},
                        {"system": "VN CCCD/2", "value": "0791"}],
        "names": [{"family": "Nguyễn", "given": ["Thị", "Lan"], "use": "Official", "text": "Nguyễn Thị Lan"}],
        "birth_date": "1985-07-03",
        "sex": "female",
        "telecom": [{"system": "phone", "value": "+84903123456", "use": "mobile"},
                    {"system": "email", "value": "lan@example.com", "use": "inbox"}],
        "addresses": [{"lines": ["1 Lê Lợi", " "], "city": "Huế", "use": "home"}],
        "language": "vi",
        "deceased": false
    }))
    .unwrap()
}

#[test]
fn a_patient_carries_its_identifiers_as_uris_and_its_demographics() {
    let p = profile();
    let res = patient(
        &PersonInput {
            id: "p1",
            profile: &p,
            identifiers: &[],
            updated_at: "2026-01-05T08:30:00.123456789Z",
            merged_into: None,
            replaces: &[],
        },
        &cfg(),
    );
    assert_eq!(res["resourceType"], "Patient");
    assert_eq!(res["meta"]["versionId"], "1767601800123456789");
    assert_eq!(res["meta"]["lastUpdated"], "2026-01-05T08:30:00.123Z");
    assert_eq!(res["identifier"][0]["system"], "urn:oid:1.2.3.4");
    assert_eq!(res["identifier"][0]["type"]["coding"][0]["code"], "MR");
    assert_eq!(res["identifier"][1]["system"], "urn:carehub:id:VN%20CCCD%2F2");
    assert_eq!(res["name"][0]["use"], "official");
    assert_eq!(res["name"][0]["given"], json!(["Thị", "Lan"]));
    assert_eq!(res["gender"], "female");
    assert_eq!(res["birthDate"], "1985-07-03");
    // A use outside FHIR's value set is left out, not sent.
    assert!(res["telecom"][1].get("use").is_none());
    assert_eq!(res["address"][0]["line"], json!(["1 Lê Lợi"]));
    assert_eq!(res["deceasedBoolean"], false);
    assert_eq!(res["active"], true);
    assert!(res.get("link").is_none());
}

#[test]
fn a_merged_person_links_to_its_survivor_and_back() {
    let p = profile();
    let merged = patient(
        &PersonInput {
            id: "old",
            profile: &p,
            identifiers: &[],
            updated_at: "2026-01-05T08:30:00Z",
            merged_into: Some("new"),
            replaces: &[],
        },
        &cfg(),
    );
    assert_eq!(merged["active"], false);
    assert_eq!(
        merged["link"],
        json!([{"other": {"reference": "Patient/new"}, "type": "replaced-by"}])
    );
    let survivor = patient(
        &PersonInput {
            id: "new",
            profile: &p,
            identifiers: &[],
            updated_at: "2026-01-05T08:30:00Z",
            merged_into: None,
            replaces: &["old".to_string()],
        },
        &cfg(),
    );
    assert_eq!(survivor["link"][0]["type"], "replaces");
    assert_eq!(survivor["link"][0]["other"]["reference"], "Patient/old");
}

#[test]
fn system_uris_follow_one_documented_rule() {
    let c = cfg();
    assert_eq!(
        c.system_uri("https://clinic.example/mrn"),
        "https://clinic.example/mrn"
    );
    assert_eq!(
        c.system_uri("2.16.840.1.113883.4.1"),
        "urn:oid:2.16.840.1.113883.4.1"
    );
    assert_eq!(
        c.system_uri("Bệnh viện"),
        "urn:carehub:id:B%E1%BB%87nh%20vi%E1%BB%87n"
    );
    assert_eq!(c.code_system_uri("LN"), "http://loinc.org");
    assert_eq!(c.code_system_uri("L"), "urn:carehub:code:L");
}

fn record<'a>(
    id: i64,
    kind: &'a str,
    status: Option<&'a str>,
    data: &'a serde_json::Value,
) -> RecordInput<'a> {
    RecordInput {
        id,
        kind,
        source_system: "LIS",
        key: "K1",
        person_id: "p1",
        status,
        data,
        updated_at: "2026-01-05T08:30:00Z",
    }
}

#[test]
fn each_record_kind_becomes_its_resource() {
    let c = cfg();
    let enc = json!({"id": "V1", "class": "IMP", "status": "finished", "start": "2026-01-01T08:00:00+07:00", "location": "W1"});
    let r = record_resource(&record(1, "encounter", Some("finished"), &enc), &c).unwrap();
    assert_eq!(
        (r["resourceType"].as_str(), r["id"].as_str()),
        (Some("Encounter"), Some("1"))
    );
    assert_eq!(r["class"]["code"], "IMP");
    assert_eq!(r["subject"]["reference"], "Patient/p1");
    assert_eq!(r["identifier"][0]["system"], "urn:carehub:id:LIS");

    // An appointment known only to the day asks for that day: start must be an instant.
    let appt = json!({"start": "2026-02-01", "service": {"code": "CONS"}});
    let r = record_resource(&record(2, "appointment", None, &appt), &c).unwrap();
    assert_eq!(r["status"], "booked");
    assert!(r.get("start").is_none());
    assert_eq!(r["requestedPeriod"][0]["start"], "2026-02-01");
    assert_eq!(r["participant"][0]["actor"]["reference"], "Patient/p1");

    let res = json!({"code": {"system": "LN", "code": "2345-7", "display": "Glucose"}, "value": "<5.4",
                     "numeric": 5.4, "comparator": "<", "unit": "mmol/L", "status": "final", "value_code": null});
    let r = record_resource(&record(3, "result", Some("final"), &res), &c).unwrap();
    assert_eq!(r["resourceType"], "Observation");
    assert_eq!(r["code"]["coding"][0]["system"], "http://loinc.org");
    assert_eq!(
        r["valueQuantity"],
        json!({"value": 5.4, "comparator": "<", "unit": "mmol/L"})
    );

    // A deletion marks the row: the column wins over the data.
    let dx = json!({"code": {"system": "I10", "code": "E11.9"}, "status": "active"});
    let r = record_resource(&record(4, "diagnosis", Some("entered-in-error"), &dx), &c).unwrap();
    assert_eq!(r["verificationStatus"]["coding"][0]["code"], "entered-in-error");
    assert!(r.get("clinicalStatus").is_none());

    let order = json!({"id": "ORD1", "filler_id": "F1", "code": {"code": "CBC"}, "priority": "STAT", "status": "completed"});
    let o = record(5, "order", Some("completed"), &order);
    let r = record_resource(&o, &c).unwrap();
    assert_eq!(
        (r["resourceType"].as_str(), r["intent"].as_str()),
        (Some("ServiceRequest"), Some("order"))
    );
    assert_eq!(r["priority"], "stat");
    assert_eq!(r["identifier"].as_array().unwrap().len(), 3);
    let report = diagnostic_report(&o, &[record(3, "result", Some("final"), &res)], &c).unwrap();
    assert_eq!(report["status"], "final");
    assert_eq!(report["result"][0]["reference"], "Observation/3");
    assert_eq!(report["basedOn"][0]["reference"], "ServiceRequest/5");
}

#[test]
fn kinds_not_served_and_broken_data_give_nothing_rather_than_a_panic() {
    let c = cfg();
    let data = json!({"vaccine": "x"});
    assert!(record_resource(&record(1, "immunization", None, &data), &c).is_none());
    assert!(record_resource(&record(1, "encounter", None, &json!({"start": 5})), &c).is_none());
    assert!(record_resource(&record(1, "encounter", None, &json!("text")), &c).is_none());
    assert_eq!(resource_type("result"), Some("Observation"));
    assert_eq!(record_kind("DiagnosticReport"), Some("order"));
}
