//! The `carehub` command as an IT person uses it: `validate` and `map`.

use std::process::Command;

fn carehub() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_carehub"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
fn the_shipped_configuration_validates() {
    let out = carehub().args(["validate"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("OK"), "{stdout}");
}

#[test]
fn validate_lists_every_problem_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("connectors")).unwrap();
    std::fs::create_dir_all(root.join("mappings")).unwrap();
    std::fs::write(
        root.join("carehub.yaml"),
        format!(
            "store:\n  url: sqlite://x.db\napi:\n  lisen: 1\n  listen: nowhere\nconnectors_dir: {c}\nmappings_dir: {m}\ntimezone: Mars/Olympus\nnotifications:\n  rules_dir: {r}\n  templates_dir: {t}\nidentity:\n  survivorship:\n    fields:\n      birth_date: source_priority\n",
            c = root.join("connectors").display(),
            m = root.join("mappings").display(),
            r = root.join("rules").display(),
            t = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/templates").display(),
        ),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("rules")).unwrap();
    std::fs::write(
        root.join("rules/r.yaml"),
        "name: r\ncategory: transactional\ntrigger:\n  before: appointment.start\nchannels: [fax]\ntemplate: appointment-reminder\n",
    )
    .unwrap();
    std::fs::write(
        root.join("connectors/a.yaml"),
        "type: mllp\nname: a\nlisten: 127.0.0.1:99999\nmax_conections: 3\n",
    )
    .unwrap();
    std::fs::write(root.join("connectors/b.yaml"), "type: ftp\nname: b\n").unwrap();
    std::fs::write(
        root.join("mappings/m.yaml"),
        "name: m\ninput: hl7v2\nmessage_types: [ADT^A01]\nperson:\n  birthdate: PID-7\n  sex: {path: PID-8, transform: shout}\n  names:\n    foreach: PID-5\n    fields:\n      family: .1.1\n      given: [PID-5.2]\n  language: {path: PID-15, map: nope}\n",
    )
    .unwrap();
    let out = carehub()
        .arg("validate")
        .arg("--config")
        .arg(root.join("carehub.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let expect = [
        ("carehub.yaml:4: api.lisen: unknown key", "unknown hub key"),
        (
            "carehub.yaml:5: api.listen: expected HOST:PORT",
            "bad listen address",
        ),
        ("carehub.yaml:8: timezone: unknown time zone", "bad time zone"),
        ("a.yaml:3: listen: expected HOST:PORT", "bad port"),
        ("a.yaml:4: max_conections: unknown key", "typo in a connector"),
        (
            "b.yaml:1: type: unknown connector type \"ftp\" (expected one of mllp, file, fhir, fhir_push)",
            "unknown type",
        ),
        (
            "m.yaml:5: person.birthdate: unknown target field",
            "typo in a target",
        ),
        (
            "m.yaml:6: person.sex.transform: unknown transform \"shout\"",
            "unknown transform",
        ),
        (
            "m.yaml:12: person.language.map: no table named nope",
            "unknown table",
        ),
        (
            "r.yaml:3: trigger.offset: needed with before",
            "a reminder without its offset",
        ),
        (
            "r.yaml:5: channels: no channel named fax",
            "a rule naming an unknown channel",
        ),
        (
            "carehub.yaml:15: identity.survivorship.fields.birth_date: source_priority needs `sources`",
            "a trust order without the sources to trust",
        ),
    ];
    for (needle, what) in expect {
        assert!(err.contains(needle), "{what}: expected `{needle}` in:\n{err}");
    }
    assert!(err.contains("12 problems found"), "{err}");
}

#[test]
fn map_prints_the_patch_without_touching_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.hl7");
    std::fs::write(
        &input,
        "MSH|^~\\&|EMR|CLINIC|CAREHUB|CLINIC|20261120||ADT^A01|M-1|P|2.5\nPID|1||77^^^CLINIC^MR||Pham^Van \\T\\ Minh||19800101|M|||||0912345678\n",
    )
    .unwrap();
    let out = carehub().arg("map").arg(&input).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mapping"], "hl7v2-adt-person");
    assert_eq!(v["person"]["names"][0]["family"], "Pham");
    assert_eq!(
        v["person"]["names"][0]["given"][0], "Van & Minh",
        "escape sequences are decoded"
    );
    assert_eq!(v["person"]["telecom"][0]["value"], "+84912345678");
    assert_eq!(v["person"]["identifiers"][0]["system"], "CLINIC");

    let explicit = carehub()
        .arg("map")
        .arg("--mapping")
        .arg("mappings/hl7v2-adt-person.yaml")
        .arg(&input)
        .output()
        .unwrap();
    assert!(explicit.status.success());

    let unknown = dir.path().join("oru.hl7");
    std::fs::write(&unknown, "MSH|^~\\&|LAB|X|||20261120||VXU^V04|O-1|P|2.5\r").unwrap();
    let out = carehub().arg("map").arg(&unknown).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no mapping for message type VXU^V04"));
}

#[test]
fn map_reads_fhir_patients_and_bundles() {
    let dir = tempfile::tempdir().unwrap();
    let patient = r#"{"resourceType":"Patient","id":"p1",
        "identifier":[{"system":"urn:oid:1.2.3","value":" 42 ","type":{"coding":[{"code":"MR"}]}}],
        "name":[{"use":"official","family":"Nguyễn","given":["Thị","Lan"]}],
        "gender":"female","birthDate":"1985-03-07",
        "telecom":[{"system":"phone","value":"0903 123 456","use":"mobile"},{"system":"email","value":"Lan@Example.VN"}],
        "communication":[{"language":{"coding":[{"code":"vi-VN"}]},"preferred":true}]}"#;
    let file = dir.path().join("patient.json");
    std::fs::write(&file, patient).unwrap();
    let out = carehub().arg("map").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mapping"], "fhir-patient-person");
    let p = &v["person"];
    assert_eq!(
        p["identifiers"][0],
        serde_json::json!({"system": "urn:oid:1.2.3", "value": "42", "type": "MR"})
    );
    assert_eq!(p["names"][0]["family"], "Nguyễn");
    assert_eq!(p["names"][0]["given"], serde_json::json!(["Thị", "Lan"]));
    assert_eq!(
        (p["sex"].as_str(), p["birth_date"].as_str()),
        (Some("female"), Some("1985-03-07"))
    );
    assert_eq!(p["telecom"][0]["value"], "+84903123456");
    assert_eq!(p["telecom"][1]["value"], "Lan@example.vn");
    assert_eq!(p["language"], "vi");

    let bundle = format!(
        r#"{{"resourceType":"Bundle","type":"collection","entry":[{{"resource":{patient}}},{{"resource":{{"resourceType":"Encounter","id":"e1","status":"finished","subject":{{"reference":"Patient/p1"}}}}}},{{"resource":{{"resourceType":"Basic","id":"b1"}}}}]}}"#
    );
    let file = dir.path().join("bundle.json");
    std::fs::write(&file, bundle).unwrap();
    let out = carehub().arg("map").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["person"]["names"][0]["family"], "Nguyễn");
    // The Encounter is about the Patient its subject names, in the same Bundle.
    assert_eq!(v[1]["encounters"][0]["status"], "finished");
    assert_eq!(v[1]["person"]["identifiers"][0]["value"], "42");
    assert_eq!(v[2]["skipped_without_mapping"]["Basic"], 1);
}

#[test]
fn the_shipped_golden_mapping_cases_pass() {
    let out = carehub().arg("test-mappings").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let cases = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(cases >= 12, "the shipped cases all ran ({cases}):\n{stdout}");
}

#[test]
fn test_mappings_shows_a_readable_difference() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("wrong-sex");
    std::fs::create_dir_all(&case).unwrap();
    std::fs::write(
        case.join("input.hl7"),
        "MSH|^~\\&|EMR|H|||20260101||ADT^A04|1|P|2.5\rPID|1||9^^^H^MR||Le^An||2000|F\r",
    )
    .unwrap();
    std::fs::write(
        case.join("expected.yaml"),
        "person:\n  identifiers: [{system: H, value: \"9\", type: MR}]\n  names: [{family: Le, given: [An]}]\n  birth_date: \"2000\"\n  sex: male\n",
    )
    .unwrap();
    let out = carehub()
        .arg("test-mappings")
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAIL  wrong-sex"), "{stdout}");
    assert!(
        stdout.contains("person.sex: expected \"male\", got \"female\""),
        "{stdout}"
    );
}

#[tokio::test]
async fn status_shows_connector_counts_from_the_store() {
    let t = crate::helpers::spawn_hub().await;
    crate::helpers::send(t.mllp(), &crate::helpers::adt("ST-1", "MRN-ST", "Do")).await;
    let config = t.dir.path().join("carehub.yaml");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_carehub"))
        .arg("status")
        .arg("--config")
        .arg(&config)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("mllp "))
        .expect("a line for the mllp connector");
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cols[..5], ["mllp", "mllp", "running", "1", "1"], "{stdout}");
    t.hub.shutdown().await;
}

#[test]
fn a_fhirpath_that_fails_on_a_resource_fails_by_its_rule() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("m.yaml");
    std::fs::write(
        &mapping,
        "name: m\ninput: fhir\nresource_types: [Patient]\nperson:\n  identifiers: {fields: {system: {value: s}, value: id}}\n  language: {path: name.family.lower()}\n  birth_date: {path: birthDate.lower(), on_error: skip}\n",
    )
    .unwrap();
    // lower() needs one item; two names give two families.
    let input = dir.path().join("p.json");
    std::fs::write(
        &input,
        r#"{"resourceType":"Patient","id":"1","name":[{"family":"A"},{"family":"B"}],"birthDate":["x","y"]}"#,
    )
    .unwrap();
    let out = carehub()
        .arg("map")
        .arg("--mapping")
        .arg(&mapping)
        .arg(&input)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("rule person.language"),
        "the failing rule is named: {stdout}"
    );
}

#[test]
fn validate_checks_closed_values_segment_options_and_borrowed_persons() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("mappings")).unwrap();
    std::fs::create_dir_all(root.join("connectors")).unwrap();
    std::fs::write(
        root.join("carehub.yaml"),
        format!(
            "store: {{url: \"sqlite://{}/x.db\"}}\nmappings_dir: {}\nconnectors_dir: {}\n",
            root.display(),
            root.join("mappings").display(),
            root.join("connectors").display()
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("mappings/visits.yaml"),
        "name: visits\ninput: hl7v2\nmessage_types: [ADT^A03]\n\
         tables:\n  st: {values: {A03: finised}, unknown: empty}\n\
         person: {from: hl7v2-nothing}\n\
         encounters:\n  - foreach: PV1\n    fields:\n      status: {value: done}\n\
         \x20 - foreach: PID-3\n    until: [OBR]\n    fields:\n      status: {path: MSH-9.2, map: st}\n",
    )
    .unwrap();
    std::fs::write(
        root.join("mappings/borrow.yaml"),
        "name: borrow\ninput: hl7v2\nmessage_types: [SIU^S12]\nperson: {from: nobody}\n",
    )
    .unwrap();
    let out = carehub()
        .arg("validate")
        .arg("--config")
        .arg(root.join("carehub.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "visits.yaml:10: encounters.0.fields.status: value \"done\": this field takes only planned, arrived",
        "visits.yaml:11: encounters.1.foreach: until and group are for a foreach over segments",
        "visits.yaml:14: encounters.1.fields.status: table st gives \"finised\"",
        "borrow.yaml: person.from: no mapping named nobody",
    ] {
        assert!(err.contains(needle), "expected `{needle}` in:\n{err}");
    }
}
