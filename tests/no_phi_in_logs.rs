//! No PHI in logs, proven (docs/security.md): one end-to-end scenario — MLLP ADT, ORU and
//! SIU, a file dropped in the inbox and a malformed one, a FHIR pull, a FHIR push,
//! notifications through the `file` channel, and the API reads a clinic's app makes — logged at
//! `debug` through the hub's own formatting (`carehub::telemetry::fmt_layer`, text and JSON at
//! once), then every captured line is searched for the scenario's patient values.
//!
//! A test target of its own, not a module of `tests/it`: a tracing subscriber is process-wide
//! and can be installed once, and in the shared binary the other tests' hubs would write into
//! this capture (and this one would swallow their logs). The `it` helpers and the test FHIR
//! server are included through `#[path]` modules.

#[allow(dead_code)]
#[path = "it/fhir_server.rs"]
mod fhir_server;
#[allow(dead_code)]
#[path = "it/helpers.rs"]
mod helpers;

use std::io::Write;
use std::sync::{Arc, Mutex};

use carehub::config::LogFormat;
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use helpers::*;

/// Every byte the subscriber wrote, per format.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn make(&self) -> impl Fn() -> CaptureWriter + Send + Sync + 'static {
        let buf = self.0.clone();
        move || CaptureWriter(buf.clone())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Installs the hub's formatting, text and JSON, at `debug` for every target (the hub's and
/// its libraries': sqlx, hyper, reqwest, axum…), into two captures.
fn capture_logs() -> (Capture, Capture) {
    let (text, json) = (Capture::default(), Capture::default());
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("debug"))
        .with(carehub::telemetry::fmt_layer(LogFormat::Text, text.make(), false))
        .with(carehub::telemetry::fmt_layer(LogFormat::Json, json.make(), false))
        .try_init()
        .expect("the only subscriber of this test process");
    (text, json)
}

/// The lines of `log` holding any of `values`, with the value found. JSON lines are also read
/// as JSON, so that a value escaped in the line (`\"`, `\u…`) is found too.
fn leaks(log: &str, values: &[&str]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for line in log.lines() {
        let mut haystacks = vec![line.to_string()];
        if let Ok(v) = serde_json::from_str::<Value>(line) {
            let mut strings = Vec::new();
            collect_strings(&v, &mut strings);
            haystacks.push(strings.join("\n"));
        }
        for value in values {
            if haystacks.iter().any(|h| h.contains(value)) {
                found.push((value.to_string(), line.to_string()));
            }
        }
    }
    found
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(o) => o.iter().for_each(|(k, v)| {
            out.push(k.clone());
            collect_strings(v, out)
        }),
        other => out.push(other.to_string()),
    }
}

/// Every patient value the scenario sends: none of them may appear in a log line.
const PHI: &[&str] = &[
    // Vietnamese patient (MLLP ADT, SIU, ORU).
    "Nguyễn",
    "Hằng",
    "Nguyễn Thị Hằng",
    "NGUYEN",
    "MRN-PHI-7731",
    "079185001234",
    "0912345678",
    "0912 345 678",
    "+84912345678",
    "84912345678",
    "hang.nguyen.phi@example.vn",
    "Phố Hàng Bạc",
    "19850307",
    "1985-03-07",
    "than phiền đau ngực dữ dội",
    "Đau ngực",
    // Russian patient (file drop).
    "Щербакова",
    "Анастасия",
    "Юрьевна",
    "SHCHERBAKOVA",
    "MRN-PHI-5520",
    "+7 916 555-12-34",
    "+79165551234",
    "a.shcherbakova.phi@example.ru",
    "Тверская",
    "1979-11-23",
    // The malformed file's content.
    "MRN-PHI-9999",
    "Lê Bí Mật",
    // Chinese patient (FHIR pull).
    "欧阳",
    "娜娜",
    "OUYANG",
    "MRN-PHI-8842",
    "+86 138 0013 8000",
    "+8613800138000",
    "nana.ouyang.phi@example.cn",
    "朝阳区建国路",
    "1992-02-29",
    // Vietnamese patient with diacritics (FHIR push).
    "Phạm Quỳnh",
    "Quỳnh",
    "MRN-PHI-3310",
    "+84987654321",
    "0987654321",
    "quynh.pham.phi@example.vn",
    "Lê Lợi",
];

fn adt() -> String {
    "MSH|^~\\&|EMR|CLINIC|CAREHUB|CLINIC|20261120083000+0700||ADT^A04^ADT_A01|PHI-1|P|2.5.1\r\
     EVN|A04|20261120083000\r\
     PID|1||MRN-PHI-7731^^^CLINIC^MR~079185001234^^^VNM^NI||Nguyễn^Thị Hằng||19850307|F|||12 Phố Hàng Bạc^^Hà Nội^^100000^VN^H||0912345678^PRN^CP~^NET^Internet^hang.nguyen.phi@example.vn||vi\r"
        .to_string()
}

fn oru() -> String {
    "MSH|^~\\&|LAB|CLINIC|CAREHUB|CLINIC|20261120090000+0700||ORU^R01^ORU_R01|PHI-2|P|2.5.1\r\
     PID|1||MRN-PHI-7731^^^CLINIC^MR||Nguyễn^Thị Hằng||19850307|F\r\
     OBR|1|ORD-PHI-1|FIL-PHI-1|2093-3^Cholesterol^LN|||20261120073000\r\
     OBX|1|NM|2093-3^Cholesterol^LN||5.6|mmol/L|<5.2|H|||F|||20261120073000\r\
     NTE|1||Bệnh nhân than phiền đau ngực dữ dội\r"
        .to_string()
}

fn siu() -> String {
    let start = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(72))
        .to_zoned(jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap())
        .strftime("%Y%m%d%H%M00%z")
        .to_string();
    format!(
        "MSH|^~\\&|SCHED|CLINIC|CAREHUB|CLINIC|20261121140000+0700||SIU^S12^SIU_S12|PHI-3|P|2.5\r\
         SCH|APT-PHI-1|APT-PHI-1|||||ROUTINE^Đau ngực|NORMAL|30|min|^^30^{start}|||||||||||||BOOKED\r\
         PID|1||MRN-PHI-7731^^^CLINIC^MR||Nguyễn^Thị Hằng||19850307|F\r"
    )
}

fn russian_file() -> String {
    "MSH|^~\\&|EMR|CLINIC|CAREHUB|CLINIC|20261120100000+0300||ADT^A04^ADT_A01|PHI-4|P|2.5.1|||||||UNICODE UTF-8\r\
     PID|1||MRN-PHI-5520^^^CLINIC^MR||Щербакова^Анастасия^Юрьевна||19791123|F|||ул. Тверская 7^^Москва^^125009^RU^H||+7 916 555-12-34^PRN^CP~^NET^Internet^a.shcherbakova.phi@example.ru||ru\r"
        .to_string()
}

fn chinese_patient() -> Value {
    json!({"resourceType": "Patient", "id": "pat-cn-1",
           "identifier": [{"system": "urn:oid:1.2.156.1", "value": "MRN-PHI-8842"}],
           "name": [{"family": "欧阳", "given": ["娜娜"]}], "gender": "female", "birthDate": "1992-02-29",
           "telecom": [{"system": "phone", "value": "+86 138 0013 8000"},
                       {"system": "email", "value": "nana.ouyang.phi@example.cn"}],
           "address": [{"line": ["朝阳区建国路 88号"], "city": "北京", "country": "CN"}]})
}

fn pushed_patient() -> Value {
    json!({"resourceType": "Patient", "id": "pat-vn-2",
           "identifier": [{"system": "urn:oid:1.2.704.9", "value": "MRN-PHI-3310"}],
           "name": [{"family": "Phạm Quỳnh", "given": ["Anh"]}], "gender": "female", "birthDate": "1990-04-12",
           "telecom": [{"system": "phone", "value": "0987654321"},
                       {"system": "email", "value": "quynh.pham.phi@example.vn"}],
           "address": [{"line": ["5 Lê Lợi"], "city": "Huế", "country": "VN"}]})
}

/// An SMS gateway that refuses every send with an error text echoing the patient's number (in
/// national format) and the start of the text, as real providers do: the hub must not log it.
async fn refusing_gateway() -> String {
    let app = axum::Router::new().route(
        "/send",
        axum::routing::post(|| async {
            (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "cannot deliver to 0912 345 678 (Nguyễn Thị Hằng): 'Kính gửi Nguyễn…' rejected"})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/send", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

const CONFIRM: &str = "name: confirm\ncategory: transactional\ntrigger: {event: appointment.booked}\nchannels: [gateway, sms, email]\ntemplate: appointment-confirmation\nquiet_hours: false\n";
const RESULT: &str = "name: result\ncategory: transactional\ntrigger: {event: lab_result.final}\nchannels: [email]\ntemplate: result-ready\nquiet_hours: false\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_to_end_scenario_logs_no_patient_value() {
    let (text_cap, json_cap) = capture_logs();
    let outbox = tempfile::tempdir().unwrap();
    let server = fhir_server::FhirServer::start(vec![chinese_patient()]).await;
    let t = spawn_hub_with(HubOptions {
        file_connector: true,
        fhir_push: true,
        rules: vec![
            ("confirm.yaml".into(), CONFIRM.into()),
            ("result.yaml".into(), RESULT.into()),
        ],
        connectors: vec![(
            "ehr.yaml".into(),
            format!(
                "type: fhir\nname: ehr\nbase_url: {}\nsource_system: TEST-EHR\nresources:\n  - type: Patient\nschedule: \"* * * * * *\"\n",
                server.base_url()
            ),
        )],
        hub_extra: format!(
            "log:\n  level: debug\nchannels:\n  gateway: {{type: sms_webhook, url: \"{gw}\"}}\n  sms: {{type: file, dir: {d}}}\n  email: {{type: file, dir: {d}}}\n",
            d = outbox.path().display(),
            gw = refusing_gateway().await
        ),
        ..Default::default()
    })
    .await;
    let api = t.api();

    // MLLP: ADT, then a result and a booking for the same patient.
    for m in [adt(), oru(), siu()] {
        let ack = send(t.mllp(), &m).await;
        assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
    }
    // A malformed message over MLLP too: refused, kept in the message log.
    let bad = send(t.mllp(), "PID|1||MRN-PHI-9999^^^CLINIC^MR||Lê Bí Mật").await;
    assert_eq!(field(&bad, "MSA", 1), "AR", "{bad}");

    // File drop: one good file, one malformed.
    std::fs::write(t.inbox().join("a.hl7"), russian_file()).unwrap();
    std::fs::write(
        t.inbox().join("b.hl7"),
        "PID|1||MRN-PHI-9999^^^CLINIC^MR||Lê Bí Mật\r",
    )
    .unwrap();

    // FHIR push.
    let resp = http()
        .post(format!("{api}/fhir/r4"))
        .header("content-type", "application/fhir+json")
        .body(pushed_patient().to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());

    // Everything lands: the file connector's patient, the pulled one, the pushed one.
    let store = t.hub.store.clone();
    for mrn in ["MRN-PHI-7731", "MRN-PHI-5520", "MRN-PHI-8842", "MRN-PHI-3310"] {
        eventually(&format!("patient {mrn} is stored"), || async {
            !store.find_persons(mrn, None).await.unwrap().is_empty()
        })
        .await;
    }
    eventually("both inbox files are done", || async {
        std::fs::read_dir(t.inbox())
            .map(|d| d.filter_map(Result::ok).filter(|e| e.path().is_file()).count() == 0)
            .unwrap_or(false)
    })
    .await;
    // Notifications: the booking's confirmation (refused by the gateway, then the sms file
    // channel) and the result notice (the email file channel).
    let sent = || {
        files_under(outbox.path(), &|p| {
            p.extension()
                .is_some_and(|e| e == "txt" || e == "eml" || e == "json")
        })
    };
    eventually("notifications are written by the file channel", || async {
        sent().len() >= 2
    })
    .await;

    // API reads.
    let (code, found) = get_json(&format!("{api}/api/v1/patients?identifier=MRN-PHI-7731")).await;
    assert_eq!(code, 200, "{found}");
    let person = found["items"][0]["id"].as_str().expect("a person").to_string();
    for path in [
        format!("/api/v1/patients/{person}"),
        format!("/api/v1/patients/{person}/timeline"),
        format!("/api/v1/patients/{person}/interactions"),
        "/api/v1/messages".to_string(),
        "/api/v1/review?status=open".to_string(),
        "/api/v1/connectors".to_string(),
    ] {
        let (code, body) = get_json(&format!("{api}{path}")).await;
        assert_eq!(code, 200, "{path}: {body}");
    }
    let (_, messages) = get_json(&format!("{api}/api/v1/messages?limit=100")).await;
    for m in messages["items"].as_array().unwrap() {
        let (code, _) = get_json(&format!("{api}/api/v1/messages/{}", m["id"])).await;
        assert_eq!(code, 200);
    }
    let (code, _) = get_json(&format!("{api}/api/v1/patients?identifier=MRN-PHI-8842")).await;
    assert_eq!(code, 200);
    let (code, _) = get_json(&format!("{api}/api/v1/messages?patient_identifier=MRN-PHI-7731")).await;
    assert_eq!(code, 200);
    // Every stored message read and written again, the refused ones included.
    let resp = http()
        .post(format!("{api}/api/v1/messages/reprocess"))
        .json(&json!({"status": ["processed", "error", "unmapped"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    t.hub.shutdown().await;

    let (text, json_log) = (text_cap.text(), json_cap.text());
    if let Ok(path) = std::env::var("CAREHUB_LOG_CAPTURE") {
        // For a person reviewing what the hub logs: the captured text lines.
        std::fs::write(path, &text).unwrap();
    }
    // The capture saw the scenario: it can fail.
    for log in [&text, &json_log] {
        assert!(
            log.contains("MLLP listener started"),
            "the capture misses the hub's lines"
        );
        assert!(
            log.contains("reprocess finished"),
            "the capture misses the reprocess"
        );
        assert!(
            log.contains("files processed"),
            "the file connector's counts are logged"
        );
        assert!(log.contains("A send failed."), "the refused send is logged");
        assert!(log.lines().count() > 20, "{} lines only", log.lines().count());
    }
    assert!(
        json_log.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "JSON lines"
    );

    let mut found = leaks(&text, PHI);
    found.extend(leaks(&json_log, PHI));
    assert!(
        found.is_empty(),
        "{} log line(s) carry patient data:\n{}",
        found.len(),
        found
            .iter()
            .take(40)
            .map(|(v, l)| format!("  [{v}] {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // A planted value is caught, in both formats, through the same subscriber and search.
    tracing::warn!(
        connector = "mllp",
        patient = "Щербакова Анастасия",
        "planted to prove the check"
    );
    for log in [text_cap.text(), json_cap.text()] {
        let caught = leaks(&log, PHI);
        assert!(
            caught
                .iter()
                .any(|(v, l)| v == "Щербакова" && l.contains("planted")),
            "the planted value is not found: {caught:?}"
        );
    }
}
