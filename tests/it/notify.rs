//! Notifications end to end: a message in, a send out — through the rules, the outbox, the
//! embedded queue (or RabbitMQ, in `queue_rabbit.rs`), a channel and back into the patient's
//! interaction history. Each test reads like something a clinic would check.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::helpers::{self, HubOptions, TestHub, eventually, get_json, send};

/// A local SMS gateway (the `sms_webhook` channel's provider): records what it receives and
/// answers 503 while `fail` is above zero.
#[derive(Clone, Default)]
pub struct Gateway {
    pub received: Arc<Mutex<Vec<Value>>>,
    pub fail: Arc<Mutex<u32>>,
}

impl Gateway {
    pub async fn start() -> (Gateway, String) {
        let gw = Gateway::default();
        let app = axum::Router::new()
            .route("/send", axum::routing::post(gateway_send))
            .with_state(gw.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/send", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (gw, url)
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }
}

async fn gateway_send(State(gw): State<Gateway>, Json(body): Json<Value>) -> axum::response::Response {
    {
        let mut fail = gw.fail.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return (StatusCode::SERVICE_UNAVAILABLE, [("Retry-After", "1")], "busy").into_response();
        }
    }
    let mut received = gw.received.lock().unwrap();
    received.push(body);
    Json(json!({"id": format!("gw-{}", received.len())})).into_response()
}

pub const CONFIRM: &str = "name: confirm\ncategory: transactional\ntrigger: {event: appointment.booked}\nchannels: [sms, email]\ntemplate: appointment-confirmation\nquiet_hours: false\n";

pub fn adt_vi(control_id: &str, mrn: &str, phone: &str) -> String {
    format!(
        "MSH|^~\\&|EMR|CLINIC|CAREHUB|CLINIC|20261120083000+0700||ADT^A04^ADT_A01|{control_id}|P|2.5.1\r\
         PID|1||{mrn}^^^CLINIC^MR||Nguyễn^Thị Lan||19850307|F|||1 Main St^^Hanoi^^100000^VN^H||{phone}^PRN^CP||vi\r"
    )
}

/// A booking (S12) or a cancellation (S15) `hours_ahead` from now.
pub fn siu(trigger: &str, control_id: &str, appointment: &str, mrn: &str, hours_ahead: i64) -> String {
    let start = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(hours_ahead);
    let start = start
        .to_zoned(jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap())
        .strftime("%Y%m%d%H%M00%z")
        .to_string();
    format!(
        "MSH|^~\\&|SCHED|CLINIC|CAREHUB|CLINIC|20261121140000+0700||SIU^{trigger}^SIU_S12|{control_id}|P|2.5\r\
         SCH|{appointment}|{appointment}|||||ROUTINE|NORMAL|30|min|^^30^{start}|||||||||||||BOOKED\r\
         PID|1||{mrn}^^^CLINIC^MR||Nguyễn^Thị Lan||19850307|F\r"
    )
}

async fn hub(rules: &[(&str, &str)], hub_extra: String) -> TestHub {
    helpers::spawn_hub_with(HubOptions {
        rules: rules
            .iter()
            .map(|(f, y)| (f.to_string(), y.to_string()))
            .collect(),
        hub_extra,
        ..Default::default()
    })
    .await
}

pub fn file_channels(t: &std::path::Path) -> String {
    format!(
        "channels:\n  sms: {{type: file, dir: {d}}}\n  email: {{type: file, dir: {d}}}\n",
        d = t.display()
    )
}

async fn person_id(h: &TestHub, mrn: &str) -> String {
    let url = format!("{}/api/v1/patients?identifier={mrn}", h.api());
    eventually("the patient exists", || async {
        get_json(&url).await.1["items"][0]["id"].is_string()
    })
    .await;
    get_json(&url).await.1["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn interactions(h: &TestHub, person: &str) -> Vec<Value> {
    let (_, body) = get_json(&format!("{}/api/v1/patients/{person}/interactions", h.api())).await;
    body["interactions"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_booking_is_confirmed_in_the_patients_language_through_the_file_channel() {
    let outbox = tempfile::tempdir().unwrap();
    let h = hub(&[("confirm.yaml", CONFIRM)], file_channels(outbox.path())).await;
    send(h.mllp(), &adt_vi("N1", "MRN-N1", "0903123456")).await;
    let ack = send(h.mllp(), &siu("S12", "N2", "APT-1", "MRN-N1", 72)).await;
    assert!(ack.contains("MSA|AA"), "{ack}");

    let sms_files = || {
        helpers::files_under(&outbox.path().join("sms"), &|p| {
            p.extension().is_some_and(|e| e == "txt")
        })
    };
    eventually("a confirmation is written to the sms channel", || async {
        !sms_files().is_empty()
    })
    .await;
    let files = sms_files();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("To: +84903123456"), "{text}");
    assert!(text.contains("Language: vi"), "{text}");
    assert!(
        text.contains("đã được xác nhận"),
        "Vietnamese confirmation: {text}"
    );

    let person = person_id(&h, "MRN-N1").await;
    eventually("the send is on the patient's profile as delivered", || async {
        interactions(&h, &person)
            .await
            .first()
            .is_some_and(|s| s["status"] == "delivered")
    })
    .await;
    let sends = interactions(&h, &person).await;
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["channel"], "sms");
    assert_eq!(sends[0]["language"], "vi");
    assert_eq!(sends[0]["attempts"][0]["outcome"], "delivered");

    // The same booking again (a duplicate message, or the same appointment re-sent) confirms nothing more.
    send(h.mllp(), &siu("S12", "N3", "APT-1", "MRN-N1", 72)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        interactions(&h, &person).await.len(),
        1,
        "one confirmation per appointment"
    );

    let (status, report) = get_json(&format!("{}/api/v1/reports/channels", h.api())).await;
    assert_eq!(status, 200);
    let line = &report["channels"][0];
    assert_eq!(
        (line["channel"].as_str(), line["rule"].as_str()),
        (Some("sms"), Some("confirm"))
    );
    assert_eq!(line["delivered"], 1);
    h.hub.shutdown().await;
}

#[tokio::test]
async fn a_cancellation_stops_the_reminder_still_waiting_for_morning() {
    // Quiet hours around now, so the reminder waits in the outbox.
    let tz = jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap();
    let local = jiff::Timestamp::now().to_zoned(tz);
    let clock = |z: jiff::Zoned| format!("{:02}:{:02}", z.hour(), z.minute());
    let quiet = format!(
        "notifications:\n  quiet_hours: {{start: \"{}\", end: \"{}\"}}\n",
        clock(local.checked_sub(jiff::Span::new().hours(1)).unwrap()),
        clock(local.checked_add(jiff::Span::new().hours(2)).unwrap()),
    );
    let remind = "name: remind\ncategory: transactional\ntrigger: {before: appointment.start, offset: 24h, schedule: '* * * * * *'}\nchannels: [sms]\ntemplate: appointment-reminder\nstop_on: [appointment.cancelled]\n";
    let outbox = tempfile::tempdir().unwrap();
    let h = hub(
        &[("remind.yaml", remind)],
        format!("{}{quiet}", file_channels(outbox.path())),
    )
    .await;
    send(h.mllp(), &adt_vi("C1", "MRN-C1", "0903000111")).await;
    send(h.mllp(), &siu("S12", "C2", "APT-C", "MRN-C1", 20)).await;
    let person = person_id(&h, "MRN-C1").await;
    eventually("the reminder waits for the end of quiet hours", || async {
        let sends = interactions(&h, &person).await;
        sends
            .first()
            .is_some_and(|s| s["status"] == "pending" && s["detail"] == "quiet hours")
    })
    .await;

    send(h.mllp(), &siu("S15", "C3", "APT-C", "MRN-C1", 20)).await;
    eventually("the cancellation stops it", || async {
        let sends = interactions(&h, &person).await;
        sends
            .first()
            .is_some_and(|s| s["status"] == "cancelled" && s["detail"] == "stopped by appointment.cancelled")
    })
    .await;
    assert!(
        helpers::files_under(outbox.path(), &|_| true).is_empty(),
        "nothing was sent"
    );
    h.hub.shutdown().await;
}

#[tokio::test]
async fn marketing_needs_an_opt_in_and_a_stop_reply_ends_it() {
    let (gw, url) = Gateway::start().await;
    let offer = "name: offer\ncategory: marketing\ntrigger: {event: appointment.booked}\nchannels: [sms]\ntemplate: birthday\nquiet_hours: false\ndedupe: subject\n";
    let channels = format!("channels:\n  sms: {{type: sms_webhook, url: \"{url}\"}}\n");
    let h = hub(&[("offer.yaml", offer)], channels).await;
    send(h.mllp(), &adt_vi("M1", "MRN-M1", "0903000222")).await;
    let person = person_id(&h, "MRN-M1").await;

    send(h.mllp(), &siu("S12", "M2", "APT-M1", "MRN-M1", 72)).await;
    eventually("without an opt-in the offer is suppressed", || async {
        let sends = interactions(&h, &person).await;
        sends.first().is_some_and(|s| s["status"] == "suppressed")
    })
    .await;
    assert!(
        interactions(&h, &person).await[0]["detail"]
            .as_str()
            .unwrap()
            .contains("marketing needs an opt-in")
    );

    let client = helpers::http();
    let consent = client
        .post(format!("{}/api/v1/patients/{person}/consents", h.api()))
        .json(&json!({"category": "marketing", "decision": "permit"}))
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), 200);
    for bad in [
        json!({"category": "marketting", "decision": "deny"}),
        json!({"category": "marketing", "channel": "SMS", "decision": "deny"}),
        json!({"category": "marketing", "decision": "maybe"}),
    ] {
        let answer = client
            .post(format!("{}/api/v1/patients/{person}/consents", h.api()))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer.status(),
            400,
            "a consent that would match nothing is refused: {bad}"
        );
    }
    send(h.mllp(), &siu("S12", "M3", "APT-M2", "MRN-M1", 96)).await;
    eventually("with the opt-in it reaches the gateway", || async {
        gw.bodies().len() == 1
    })
    .await;
    let sent = &gw.bodies()[0];
    assert_eq!(sent["to"], "+84903000222");
    assert!(
        sent["body"].as_str().unwrap().contains("STOP"),
        "a marketing text says how to stop: {sent}"
    );

    // The patient replies STOP: the gateway posts it to the hub's webhook.
    let stop = client
        .post(format!("{}/api/v1/webhooks/sms", h.api()))
        .json(&json!({"from": "+84903000222", "text": "STOP"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status(), 200);
    let answer: Value = stop.json().await.unwrap();
    assert_eq!(answer["opt_outs"], 1);
    send(h.mllp(), &siu("S12", "M4", "APT-M3", "MRN-M1", 120)).await;
    eventually("after STOP nothing more is sent", || async {
        let sends = interactions(&h, &person).await;
        sends.len() == 3 && sends[0]["status"] == "suppressed"
    })
    .await;
    assert_eq!(gw.bodies().len(), 1);
    h.hub.shutdown().await;
}

#[tokio::test]
async fn a_frequency_cap_holds_back_the_second_send_and_a_provider_outage_only_delays() {
    let (gw, url) = Gateway::start().await;
    *gw.fail.lock().unwrap() = 2;
    let capped = "name: capped\ncategory: transactional\ntrigger: {event: appointment.booked}\nchannels: [sms]\ntemplate: appointment-confirmation\nquiet_hours: false\ncap: {max: 1, per: 7d}\n";
    let hub_extra =
        format!("channels:\n  sms: {{type: sms_webhook, url: \"{url}\"}}\nqueue:\n  retry_base_secs: 1\n");
    let h = hub(&[("capped.yaml", capped)], hub_extra).await;
    send(h.mllp(), &adt_vi("F1", "MRN-F1", "0903000333")).await;
    let person = person_id(&h, "MRN-F1").await;
    send(h.mllp(), &siu("S12", "F2", "APT-F1", "MRN-F1", 72)).await;
    eventually("the gateway is back and gets the send", || async {
        gw.bodies().len() == 1
    })
    .await;
    eventually("the send is recorded as sent, after its retries", || async {
        let sends = interactions(&h, &person).await;
        sends
            .first()
            .is_some_and(|s| s["status"] == "sent" && s["provider_id"] == "gw-1")
    })
    .await;
    let sends = interactions(&h, &person).await;
    let outcomes: Vec<&str> = sends[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retry", "retry", "sent"]);

    send(h.mllp(), &siu("S12", "F3", "APT-F2", "MRN-F1", 96)).await;
    eventually("the second booking's send is capped", || async {
        let sends = interactions(&h, &person).await;
        sends.len() == 2 && sends[0]["status"] == "suppressed"
    })
    .await;
    assert!(
        interactions(&h, &person).await[0]["detail"]
            .as_str()
            .unwrap()
            .contains("frequency cap")
    );
    assert_eq!(gw.bodies().len(), 1);
    h.hub.shutdown().await;
}

#[tokio::test]
async fn the_same_rules_deliver_through_rabbitmq() {
    let Some(queue) = crate::queue::rabbit_config().await else {
        return;
    };
    let outbox = tempfile::tempdir().unwrap();
    let hub_extra = format!(
        "{}queue:\n  kind: rabbitmq\n  url: \"amqp://guest:guest@127.0.0.1:5672/%2f\"\n  prefix: {}\n",
        file_channels(outbox.path()),
        queue.prefix
    );
    let h = hub(&[("confirm.yaml", CONFIRM)], hub_extra).await;
    send(h.mllp(), &adt_vi("R1", "MRN-R1", "0903000666")).await;
    send(h.mllp(), &siu("S12", "R2", "APT-R1", "MRN-R1", 72)).await;
    let person = person_id(&h, "MRN-R1").await;
    eventually(
        "the confirmation went through RabbitMQ to the file channel",
        || async {
            interactions(&h, &person)
                .await
                .first()
                .is_some_and(|s| s["status"] == "delivered")
        },
    )
    .await;
    let files = helpers::files_under(&outbox.path().join("sms"), &|_| true);
    assert_eq!(files.len(), 1);
    assert!(
        std::fs::read_to_string(&files[0])
            .unwrap()
            .contains("đã được xác nhận")
    );
    let (_, state) = get_json(&format!("{}/api/v1/notifications", h.api())).await;
    assert_eq!(state["queue"], "rabbitmq");
    assert_eq!(state["channels"][0]["depth"], 0);
    h.hub.shutdown().await;
    let q = carehub::queue::RabbitQueue::connect(&queue).await.unwrap();
    q.delete_topology(&["sms".into(), "email".into()]).await.unwrap();
}

#[tokio::test]
async fn a_booking_cancelled_and_made_again_is_confirmed_again() {
    let outbox = tempfile::tempdir().unwrap();
    let h = hub(&[("confirm.yaml", CONFIRM)], file_channels(outbox.path())).await;
    send(h.mllp(), &adt_vi("B1", "MRN-B1", "0903000777")).await;
    let person = person_id(&h, "MRN-B1").await;
    send(h.mllp(), &siu("S12", "B2", "APT-B", "MRN-B1", 72)).await;
    eventually("the first confirmation", || async {
        interactions(&h, &person)
            .await
            .first()
            .is_some_and(|s| s["status"] == "delivered")
    })
    .await;
    send(h.mllp(), &siu("S15", "B3", "APT-B", "MRN-B1", 72)).await;
    send(h.mllp(), &siu("S12", "B4", "APT-B", "MRN-B1", 72)).await;
    eventually("the booking made again is confirmed again", || async {
        let sends = interactions(&h, &person).await;
        sends.len() == 2 && sends.iter().all(|s| s["status"] == "delivered")
    })
    .await;
    h.hub.shutdown().await;
}

#[tokio::test]
async fn a_recall_and_a_birthday_run_on_their_schedule() {
    let recall = "name: recall\ncategory: transactional\ntrigger: {recall: {from: 3 months, to: 6 months}, schedule: '* * * * * *'}\nchannels: [sms]\ntemplate: recall\nquiet_hours: false\n";
    let birthday = "name: birthday\ncategory: marketing\ntrigger: {birthday: true, schedule: '* * * * * *'}\nchannels: [sms]\ntemplate: birthday\nquiet_hours: false\n";
    let outbox = tempfile::tempdir().unwrap();
    let h = hub(
        &[("recall.yaml", recall), ("birthday.yaml", birthday)],
        file_channels(outbox.path()),
    )
    .await;
    let tz = jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap();
    // A visit four months ago.
    let visit = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 120))
        .to_zoned(tz.clone())
        .strftime("%Y%m%d%H%M00%z")
        .to_string();
    let mut pv1 = vec![""; 45];
    pv1[0] = "PV1";
    pv1[1] = "1";
    pv1[2] = "O";
    pv1[19] = "V-R1";
    pv1[44] = &visit;
    send(
        h.mllp(),
        &format!("{}{}\r", adt_vi("Y1", "MRN-Y1", "0903000888"), pv1.join("|")),
    )
    .await;
    // Born on this day.
    let today = jiff::Timestamp::now()
        .to_zoned(tz)
        .strftime("1992%m%d")
        .to_string();
    let born_today = adt_vi("Y2", "MRN-Y2", "0903000999").replace("19850307", &today);
    send(h.mllp(), &born_today).await;

    let recalled = person_id(&h, "MRN-Y1").await;
    eventually(
        "the recall reaches the patient whose last visit was four months ago",
        || async {
            interactions(&h, &recalled)
                .await
                .iter()
                .any(|s| s["rule"] == "recall" && s["status"] == "delivered")
        },
    )
    .await;
    let text =
        std::fs::read_to_string(&helpers::files_under(&outbox.path().join("sms"), &|_| true)[0]).unwrap();
    assert!(
        text.contains("4 tháng"),
        "the months since the visit, in Vietnamese: {text}"
    );

    let celebrated = person_id(&h, "MRN-Y2").await;
    eventually(
        "the birthday greeting waits for an opt-in it does not have",
        || async {
            interactions(&h, &celebrated).await.iter().any(|s| {
                s["rule"] == "birthday"
                    && s["status"] == "suppressed"
                    && s["detail"].as_str().is_some_and(|d| d.contains("opt-in"))
            })
        },
    )
    .await;
    assert!(
        !interactions(&h, &recalled)
            .await
            .iter()
            .any(|s| s["rule"] == "birthday"),
        "no greeting on another day's birthday"
    );
    h.hub.shutdown().await;
}
