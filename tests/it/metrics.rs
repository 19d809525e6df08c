//! `/metrics` as Prometheus reads it, and `/readyz` as a load balancer does: the scrape is
//! parsed by a parser we did not write (PyPI `prometheus_client`), and its counters moved by
//! exactly what was sent over MLLP and pushed over FHIR.

use carehub::api::{Role, tokens};
use serde_json::{Value, json};

use crate::helpers::*;

/// Python with `prometheus_client`, or `None` (loudly) when it is missing and not required.
fn prometheus_parser() -> Option<()> {
    let found = std::process::Command::new("python3")
        .args(["-c", "import prometheus_client.parser"])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(());
    }
    if required() {
        panic!("CAREHUB_REQUIRE_SERVICES=1 but python3 -m pip install prometheus_client is missing");
    }
    eprintln!(
        "\n!!! SKIPPED: the Python package prometheus_client is missing (python3 -m pip install prometheus_client) !!!\n"
    );
    None
}

/// The samples of a scrape as `prometheus_client.parser` reads them: (name, labels, value).
async fn parse_with_prometheus_client(text: &str) -> Vec<(String, serde_json::Map<String, Value>, f64)> {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "prometheus_client could not parse the scrape: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<(String, serde_json::Map<String, Value>, f64)> =
        serde_json::from_slice(&out.stdout).expect("the script's JSON");
    rows
}

/// The sum of the samples named `name` whose labels include `labels`.
fn value(
    samples: &[(String, serde_json::Map<String, Value>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).and_then(Value::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

#[tokio::test]
async fn a_scrape_parsed_by_prometheus_client_counts_what_was_sent() {
    if prometheus_parser().is_none() {
        return;
    }
    let t = spawn_hub_with(HubOptions {
        fhir_push: true,
        ..Default::default()
    })
    .await;
    let (_, ops) = tokens::create(&t.hub.store, "prometheus", Role::Ops, None)
        .await
        .unwrap();
    let addr = t.mllp();
    // Three new patients, one of them sent twice, a type no mapping reads, and one refused.
    for (id, mrn) in [("M1", "MRN-M1"), ("M2", "MRN-M2"), ("M3", "MRN-M3")] {
        assert_eq!(field(&send(addr, &adt(id, mrn, "Vương")).await, "MSA", 1), "AA");
    }
    assert_eq!(
        field(&send(addr, &adt("M1", "MRN-M1", "Vương")).await, "MSA", 1),
        "AA"
    );
    let unmapped = "MSH|^~\\&|EMR|CLINIC|CAREHUB|CLINIC|20261120083000||ZZZ^Z99|U1|P|2.5\rPID|1||MRN-U1^^^CLINIC^MR||Vương^Lan\r";
    assert_eq!(field(&send(addr, unmapped).await, "MSA", 1), "AA");
    let refused = "MSH|^~\\&|EMR|CLINIC|CAREHUB|CLINIC|20261120083000||ADT^A04^ADT_A01||P|2.5\rPID|1||MRN-E1^^^CLINIC^MR||Vương^Lan\r";
    assert_eq!(field(&send(addr, refused).await, "MSA", 1), "AR");
    // And one Patient pushed over FHIR.
    let patient = json!({"resourceType": "Patient", "id": "p-metrics", "meta": {"versionId": "1"},
        "identifier": [{"system": "urn:oid:1.2.704.9", "value": "F-METRICS"}],
        "name": [{"family": "Vương", "given": ["Thu"]}], "gender": "female", "birthDate": "1990-04-12"});
    let pushed = http()
        .post(format!("{}/fhir/r4", t.api()))
        .header("content-type", "application/fhir+json")
        .body(patient.to_string())
        .send()
        .await
        .unwrap();
    assert!(pushed.status().is_success(), "{:?}", pushed.text().await);

    let scrape = http_as(&ops)
        .get(format!("{}/metrics", t.api()))
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    assert!(
        scrape.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        scrape.headers()
    );
    let text = scrape.text().await.unwrap();
    for phi in ["Vương", "MRN-M1", "F-METRICS", "1990-04-12"] {
        assert!(!text.contains(phi), "the scrape carries {phi}");
    }
    let s = parse_with_prometheus_client(&text).await;
    let mllp = |outcome: &str, t: &str| {
        value(
            &s,
            "carehub_messages_total",
            &[("connector", "mllp"), ("message_type", t), ("outcome", outcome)],
        )
    };
    assert_eq!(mllp("processed", "ADT^A04"), 3.0, "{text}");
    assert_eq!(mllp("duplicate", "ADT^A04"), 1.0);
    assert_eq!(mllp("unmapped", "ZZZ^Z99"), 1.0);
    assert_eq!(mllp("error", "ADT^A04"), 1.0);
    assert_eq!(
        value(&s, "carehub_messages_received_total", &[("connector", "mllp")]),
        6.0
    );
    assert_eq!(
        value(
            &s,
            "carehub_messages_total",
            &[
                ("connector", "fhir"),
                ("message_type", "Patient"),
                ("outcome", "processed")
            ]
        ),
        1.0
    );
    // Every MLLP frame was answered and timed; every stored record went through the writer.
    assert_eq!(
        value(
            &s,
            "carehub_mllp_ack_latency_seconds_count",
            &[("connector", "mllp")]
        ),
        6.0
    );
    assert_eq!(value(&s, "carehub_writer_batch_records_sum", &[]), 7.0);
    assert!(value(&s, "carehub_writer_commit_seconds_count", &[]) >= 1.0);
    // Four records reached identity resolution: three admits and the FHIR Patient.
    assert_eq!(value(&s, "carehub_identity_outcomes_total", &[]), 4.0);
    assert!(value(&s, "carehub_identity_outcomes_total", &[("outcome", "new")]) >= 1.0);
    // Gauges read from the store.
    assert_eq!(
        value(
            &s,
            "carehub_connector_state",
            &[("connector", "mllp"), ("state", "running")]
        ),
        1.0
    );
    assert!(
        s.iter()
            .any(|(n, l, v)| n == "carehub_connector_last_message_age_seconds"
                && l["connector"] == "mllp"
                && *v >= 0.0)
    );
    assert!(s.iter().any(|(n, _, _)| n == "carehub_review_queue_open"));
    assert!(
        s.iter()
            .any(|(n, _, _)| n == "carehub_outbox_oldest_pending_age_seconds")
    );
}

#[tokio::test]
async fn readyz_names_a_connector_that_cannot_bind_its_port_until_it_can() {
    // Another program holds the port the `lab` connector is told to listen on.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    let t = spawn_hub_with(HubOptions {
        connectors: vec![(
            "lab.yaml".into(),
            format!("type: mllp\nname: lab\nlisten: 127.0.0.1:{port}\n"),
        )],
        ..Default::default()
    })
    .await;
    let url = format!("{}/readyz", t.api());
    let answer = anonymous_http().get(&url).send().await.unwrap();
    assert_eq!(answer.status(), 503);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["status"], "not ready", "{body}");
    let checks = body["checks"].as_array().unwrap();
    let check = |name: &str| {
        checks
            .iter()
            .find(|c| c["check"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(check("store")["ok"], true, "{body}");
    assert_eq!(check("connector mllp")["ok"], true, "{body}");
    assert_eq!(check("connector lab")["ok"], false, "{body}");
    let reason = check("connector lab")["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{reason}"
    );
    // The rest of the hub works meanwhile, and the connector's state says why.
    assert_eq!(
        field(&send(t.mllp(), &adt("R1", "MRN-R1", "Lê")).await, "MSA", 1),
        "AA"
    );
    let (_, connectors) = get_json(&format!("{}/api/v1/connectors", t.api())).await;
    let lab = connectors["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "lab")
        .cloned()
        .unwrap();
    assert_eq!(lab["state"], "failed", "{lab}");

    // The port is freed: the connector starts, and the hub is ready.
    drop(squatter);
    eventually("/readyz answers 200 once the port is free", || async {
        anonymous_http()
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(
        field(&send(addr, &adt("R2", "MRN-R2", "Lê")).await, "MSA", 1),
        "AA"
    );
}

#[tokio::test]
async fn readyz_is_ready_when_store_queue_and_connectors_are() {
    let t = spawn_hub_with(HubOptions {
        hub_extra: "channels:\n  sms:\n    type: file\n".into(),
        ..Default::default()
    })
    .await;
    let answer = anonymous_http()
        .get(format!("{}/readyz", t.api()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    let names: Vec<&str> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["check"].as_str())
        .collect();
    assert_eq!(names, ["store", "queue", "connector mllp"], "{body}");
}
