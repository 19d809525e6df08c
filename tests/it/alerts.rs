//! Alerts to ops as an on-call person lives them, with the clock moved by the test (nothing
//! sleeps): a connector stops — one message, however many replicas evaluate; it stays down —
//! no more; it comes back — one "resolved"; it stops again within the cool-down — held back,
//! then sent once the cool-down is over. `GET /api/v1/alerts` and `/metrics` show the state.

use std::path::Path;
use std::sync::Arc;

use carehub::alerts::{Alerter, Notice};
use carehub::api::{Role, tokens};
use jiff::{SignedDuration, Timestamp};

use crate::helpers::*;

/// The alert messages written by the `ops` file channel, as (file name, text), sorted.
fn messages(dir: &Path) -> Vec<(String, String)> {
    files_under(&dir.join("ops"), &|p| p.extension().is_some_and(|e| e == "txt"))
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

/// Both replicas evaluate at `now`, at the same time; answers how many messages went out.
async fn both(a: &Alerter, b: &Alerter, now: Timestamp) -> Vec<Notice> {
    let (x, y) = tokio::join!(a.evaluate_at(now), b.evaluate_at(now));
    x.unwrap()
        .into_iter()
        .chain(y.unwrap())
        .map(|s| s.notice)
        .collect()
}

#[tokio::test]
async fn a_stopped_connector_pages_ops_once_cools_down_and_resolves() {
    let out = tempfile::tempdir().unwrap();
    let alerts_file = out.path().join("alerts.yaml");
    std::fs::write(
        &alerts_file,
        "evaluate_every_secs: 3600\ncooldown_mins: 30\nsend_to:\n  - {channel: ops, to: oncall@clinic.example}\n\
         alerts:\n  mllp-down:\n    kind: connector_down\n    connector: mllp\n  reviews:\n    kind: review_queue\n    over: 50\n",
    )
    .unwrap();
    let t = spawn_hub_with(HubOptions {
        hub_extra: format!(
            "alerts_file: {}\nchannels:\n  ops:\n    type: file\n    dir: {}\n",
            alerts_file.display(),
            out.path().display()
        ),
        ..Default::default()
    })
    .await;
    let store = &t.hub.store;
    // Replica A is the hub's own evaluator; replica B another one on the same store.
    let a = t.hub.alerter.clone().expect("the hub evaluates alerts");
    let settings = carehub::config::load_with_env(
        &t.dir.path().join("carehub.yaml"),
        &[("CAREHUB_ADMIN_TOKEN".into(), ADMIN_TOKEN.into())],
    )
    .unwrap();
    let b = Arc::new(carehub::alerts::alerter_for(&settings, store).unwrap().unwrap());
    let t0: Timestamp = "2026-12-07T08:00:00Z".parse().unwrap();
    let at = |mins: i64| t0 + SignedDuration::from_mins(mins);

    assert!(
        both(&a, &b, at(0)).await.is_empty(),
        "all is well: nothing to say"
    );
    store
        .set_connector_state("mllp", "mllp", "stopped", None)
        .await
        .unwrap();
    assert_eq!(
        both(&a, &b, at(1)).await,
        [Notice::Firing],
        "one message from two replicas"
    );
    assert!(
        both(&a, &b, at(2)).await.is_empty(),
        "still down: no second message"
    );
    assert!(a.evaluate_at(at(3)).await.unwrap().is_empty());
    let sent = messages(out.path());
    assert_eq!(sent.len(), 1, "{sent:?}");
    let text = &sent[0].1;
    assert!(
        text.starts_with("To: oncall@clinic.example\nSubject: [carehub] FIRING: mllp-down\n"),
        "{text}"
    );
    assert!(text.contains("connector mllp is stopped"), "{text}");

    // What the console shows, to an ops token; and the gauge Prometheus sees.
    let (_, ops) = tokens::create(store, "on call", Role::Ops, None).await.unwrap();
    let listed: serde_json::Value = http_as(&ops)
        .get(format!("{}/api/v1/alerts", t.api()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["firing"][0]["key"], "mllp-down", "{listed}");
    assert_eq!(listed["firing"][0]["summary"], "connector mllp is stopped");
    assert_eq!(listed["firing"][0]["announced"], true);
    let scrape = http_as(&ops)
        .get(format!("{}/metrics", t.api()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        scrape.contains("carehub_alerts_firing{alert=\"mllp-down\"} 1"),
        "{scrape}"
    );
    // The console's overview lists it for ops.
    let console = crate::console::Session::login(&t.api(), &ops).await;
    let (status, page) = console.get("/").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("mllp-down") && page.contains("connector mllp is stopped"),
        "the overview lists the firing alert"
    );

    store
        .set_connector_state("mllp", "mllp", "running", None)
        .await
        .unwrap();
    assert_eq!(both(&a, &b, at(5)).await, [Notice::Resolved]);
    assert!(both(&a, &b, at(6)).await.is_empty());
    let sent = messages(out.path());
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent.iter().any(|(_, m)| m.contains("RESOLVED: mllp-down")),
        "{sent:?}"
    );

    // Down again 5 minutes after the last message: held back by the 30-minute cool-down…
    store
        .set_connector_state("mllp", "mllp", "degraded", None)
        .await
        .unwrap();
    assert!(both(&a, &b, at(10)).await.is_empty(), "within the cool-down");
    let listed: serde_json::Value = http_as(&ops)
        .get(format!("{}/api/v1/alerts", t.api()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["firing"][0]["announced"], false, "{listed}");
    // …and sent once it is over.
    assert!(both(&a, &b, at(20)).await.is_empty());
    assert_eq!(both(&a, &b, at(36)).await, [Notice::Firing]);
    assert!(both(&a, &b, at(40)).await.is_empty());
    assert_eq!(messages(out.path()).len(), 3);
}

#[tokio::test]
async fn a_broken_alerts_file_is_reported_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alerts.yaml");
    std::fs::write(
        &file,
        "send_to:\n  - {channel: pager, to: x}\nalerts:\n  lab-silent:\n    kind: no_messages\n    connector: mllp\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("connectors")).unwrap();
    std::fs::write(
        dir.path().join("carehub.yaml"),
        format!(
            "store:\n  url: sqlite://{}/db\nconnectors_dir: {}\nmappings_dir: {}\nalerts_file: {}\n",
            dir.path().display(),
            dir.path().join("connectors").display(),
            mappings_dir().display(),
            file.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("connectors/mllp.yaml"),
        "type: mllp\nname: mllp\nlisten: 127.0.0.1:0\n",
    )
    .unwrap();
    let problems: Vec<String> = carehub::config::load_with_env(&dir.path().join("carehub.yaml"), &[])
        .expect_err("the file has problems")
        .iter()
        .map(ToString::to_string)
        .collect();
    let shown = file.display().to_string();
    assert!(
        problems.contains(&format!(
            "{shown}:2: send_to.0.channel: no channel named pager in carehub.yaml (known: none)"
        )),
        "{problems:#?}"
    );
    assert!(
        problems.contains(&format!(
            "{shown}:5: alerts.lab-silent.kind: minutes: needed with kind: no_messages"
        )),
        "{problems:#?}"
    );
}
