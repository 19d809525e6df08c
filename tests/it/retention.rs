//! Retention of raw message bodies (docs/operations.md), with an injected clock: the prune is
//! run "as if" days had passed, never by waiting. Runs on SQLite, or on PostgreSQL under
//! `CAREHUB_TEST_BACKEND=postgres`.

use std::time::Duration;

use carehub::store::{MessageFilter, MessageStatus, MessageSummary, PruneCount, PruneReport, Store};

use crate::helpers::*;

fn settings(t: &TestHub) -> carehub::config::Settings {
    carehub::config::load_with_env(&t.dir.path().join("carehub.yaml"), &[]).expect("the test config loads")
}

async fn all_messages(store: &Store) -> Vec<MessageSummary> {
    store
        .messages(&MessageFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn by_control_id(store: &Store, control_id: &str) -> MessageSummary {
    all_messages(store)
        .await
        .into_iter()
        .find(|m| m.control_id.as_deref() == Some(control_id))
        .unwrap_or_else(|| panic!("a logged message {control_id}"))
}

fn at(summary: &MessageSummary, days: i64) -> jiff::Timestamp {
    summary.received_at.parse::<jiff::Timestamp>().unwrap() + jiff::SignedDuration::from_hours(24 * days)
}

fn counts(report: &PruneReport) -> Vec<(String, String, u64)> {
    report
        .counts
        .iter()
        .map(|((c, s), n)| (c.clone(), s.clone(), n.messages))
        .collect()
}

fn row(c: &str, s: &str, n: u64) -> (String, String, u64) {
    (c.to_string(), s.to_string(), n)
}

#[tokio::test]
async fn old_processed_bodies_go_errored_ones_wait_for_their_own_limit_and_metadata_stays() {
    let t = spawn_hub_with(HubOptions {
        hub_extra: "retention:\n  processed_body_days: 30\n  error_body_days: 90\n".into(),
        ..Default::default()
    })
    .await;
    let old = adt("RET-OLD", "MRN-RET-1", "Nguyen");
    assert_eq!(field(&send(t.mllp(), &old).await, "MSA", 1), "AA");
    assert_eq!(field(&send(t.mllp(), "not HL7 at all").await, "MSA", 1), "AR");
    // Received strictly later than the two above: the cut-off falls between them.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        field(
            &send(t.mllp(), &adt("RET-NEW", "MRN-RET-2", "Tran")).await,
            "MSA",
            1
        ),
        "AA"
    );
    let store = &t.hub.store;
    let before = by_control_id(store, "RET-OLD").await;
    let newer = by_control_id(store, "RET-NEW").await;
    let settings = settings(&t);

    // 30 days after the newer message arrived, to the instant: the older one is past 30 days,
    // the newer one exactly at it (kept), the error far from its 90.
    let now = at(&newer, 30);
    let dry = carehub::retention::prune(store, &settings, now, true)
        .await
        .unwrap();
    assert_eq!(counts(&dry), [row("mllp", "processed", 1)]);
    assert_eq!(
        dry.counts[&("mllp".to_string(), "processed".to_string())].bytes,
        old.len() as u64,
        "the dry run counts the body's bytes"
    );
    let untouched = store.message(before.id).await.unwrap().unwrap();
    assert_eq!(untouched.raw, old.as_bytes(), "a dry run changes nothing");
    assert!(untouched.summary.body_pruned_at.is_none());

    let real = carehub::retention::prune(store, &settings, now, false)
        .await
        .unwrap();
    assert_eq!(real.counts, dry.counts, "the run does what the dry run said");
    let pruned = store.message(before.id).await.unwrap().unwrap();
    assert!(pruned.raw.is_empty(), "the old processed body is gone");
    assert_eq!(
        pruned.summary.body_pruned_at.as_deref(),
        Some(now.to_string().as_str())
    );
    // Every metadata column stays.
    assert_eq!(pruned.summary.control_id.as_deref(), Some("RET-OLD"));
    assert_eq!(pruned.summary.message_type, before.message_type);
    assert_eq!(pruned.summary.status, "processed");
    assert_eq!(pruned.summary.received_at, before.received_at);
    assert_eq!(pruned.summary.person_id, before.person_id);
    assert_eq!(pruned.summary.sender, before.sender);
    assert_eq!(pruned.content_hash.len(), 64, "the content hash stays");
    assert_eq!(
        store.message(newer.id).await.unwrap().unwrap().raw.len(),
        newer.size_bytes as usize
    );
    let error = &messages_with(store, MessageStatus::Error).await[0];
    assert!(
        store
            .message(error.id)
            .await
            .unwrap()
            .unwrap()
            .raw
            .starts_with(b"not HL7")
    );
    assert!(error.error.is_some(), "the error text stays");

    // The API says the body was pruned, and when, instead of an empty message.
    let (code, body) = get_json(&format!("{}/api/v1/messages/{}", t.api(), before.id)).await;
    assert_eq!(code, 200);
    assert!(body["raw"].is_null(), "{body}");
    assert_eq!(body["body_pruned_at"], now.to_string());
    assert!(body["body_note"].as_str().unwrap().contains("pruned"), "{body}");
    assert_eq!(body["control_id"], "RET-OLD");

    // A second run at the same time has nothing left to do.
    let again = carehub::retention::prune(store, &settings, now, false)
        .await
        .unwrap();
    assert!(again.counts.is_empty(), "{again:?}");

    // 91 days on: the error's 90 days are over too, and so are the newer one's 30.
    let later = at(&newer, 91);
    let report = carehub::retention::prune(store, &settings, later, false)
        .await
        .unwrap();
    assert_eq!(
        counts(&report),
        [row("mllp", "error", 1), row("mllp", "processed", 1)]
    );
    assert!(store.message(error.id).await.unwrap().unwrap().raw.is_empty());

    // A resend of the pruned message is still known: dedupe works on the kept hash.
    assert_eq!(field(&send(t.mllp(), &old).await, "MSA", 1), "AA");
    let dups = messages_with(store, MessageStatus::Duplicate).await;
    assert_eq!(dups.len(), 1, "the resend is logged as a duplicate");
    assert_eq!(dups[0].duplicate_of, Some(before.id));
    assert_eq!(store.person_count().await.unwrap(), 2, "no new person");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_connectors_own_retention_beats_the_hub_default() {
    let t = spawn_hub_with(HubOptions {
        hub_extra: "retention:\n  processed_body_days: 30\n".into(),
        mllp_extra: "retention:\n  processed_body_days: 5\n".into(),
        file_connector: true,
        file_extra: "retention:\n  error_body_days: 2\n".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        field(
            &send(t.mllp(), &adt("OWN-1", "MRN-OWN-1", "Pham")).await,
            "MSA",
            1
        ),
        "AA"
    );
    std::fs::write(t.inbox().join("adt.hl7"), adt("OWN-2", "MRN-OWN-2", "Vo")).unwrap();
    eventually("the inbox file is processed", || async {
        messages_with(&t.hub.store, MessageStatus::Processed).await.len() == 2
    })
    .await;
    let store = &t.hub.store;
    let last = all_messages(store).await.into_iter().next().unwrap();
    let settings = settings(&t);

    // Six days on: the MLLP connector keeps 5 days, the file connector the hub's 30.
    let report = carehub::retention::prune(store, &settings, at(&last, 6), false)
        .await
        .unwrap();
    assert_eq!(counts(&report), [row("mllp", "processed", 1)]);
    assert!(
        !store
            .message(by_control_id(store, "OWN-2").await.id)
            .await
            .unwrap()
            .unwrap()
            .raw
            .is_empty(),
        "the file connector keeps the hub's 30 days"
    );
    // Its own error_body_days does not touch the hub's processed_body_days.
    let report = carehub::retention::prune(store, &settings, at(&last, 31), false)
        .await
        .unwrap();
    assert_eq!(counts(&report), [row("inbox", "processed", 1)]);
    assert_eq!(
        report.total(),
        PruneCount {
            messages: 1,
            bytes: report.total().bytes
        }
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn without_a_limit_nothing_is_pruned() {
    let t = spawn_hub().await;
    assert_eq!(
        field(&send(t.mllp(), &adt("KEEP-1", "MRN-K", "Ho")).await, "MSA", 1),
        "AA"
    );
    let m = by_control_id(&t.hub.store, "KEEP-1").await;
    let settings = settings(&t);
    assert!(!carehub::retention::any_limit(&settings), "no job is started");
    let report = carehub::retention::prune(&t.hub.store, &settings, at(&m, 36_000), false)
        .await
        .unwrap();
    assert!(report.counts.is_empty(), "{report:?}");
    t.hub.shutdown().await;
}

fn carehub_prune(config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_carehub"))
        .arg("prune")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn carehub_prune_says_what_it_would_do_then_does_it() {
    let t = spawn_hub_with(HubOptions {
        hub_extra: "retention:\n  processed_body_days: 7\n".into(),
        ..Default::default()
    })
    .await;
    let msg = adt("CLI-1", "MRN-CLI", "Do");
    assert_eq!(field(&send(t.mllp(), &msg).await, "MSA", 1), "AA");
    let m = by_control_id(&t.hub.store, "CLI-1").await;
    let config = t.dir.path().join("carehub.yaml");
    let now = at(&m, 8).to_string();
    let store = t.hub.store.clone();
    t.hub.shutdown().await;

    let (ok, dry, err) = carehub_prune(&config, &["--dry-run", "--now", &now]);
    assert!(ok, "{dry}{err}");
    assert!(dry.contains("connector"), "a table: {dry}");
    let line = dry
        .lines()
        .find(|l| l.starts_with("mllp"))
        .unwrap_or_else(|| panic!("{dry}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols, ["mllp", "processed", "1", &msg.len().to_string()], "{dry}");
    assert!(dry.contains("would prune 1 message body"), "{dry}");
    assert!(
        !store.message(m.id).await.unwrap().unwrap().raw.is_empty(),
        "the dry run changed nothing"
    );

    let (ok, done, err) = carehub_prune(&config, &["--now", &now]);
    assert!(ok, "{done}{err}");
    assert!(done.contains("pruned 1 message body"), "{done}");
    assert!(store.message(m.id).await.unwrap().unwrap().raw.is_empty());
    let (ok, again, _) = carehub_prune(&config, &["--now", &now]);
    assert!(ok && again.contains("nothing to prune"), "{again}");

    let (ok, _, err) = carehub_prune(&config, &["--now", "next tuesday"]);
    assert!(!ok && err.contains("--now"), "{err}");
}

#[test]
fn a_bad_retention_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("connectors")).unwrap();
    std::fs::write(
        root.join("carehub.yaml"),
        format!(
            "connectors_dir: {}\nmappings_dir: {}\nretention:\n  processed_body_days: 0\n  schedule: \"every night\"\n",
            root.join("connectors").display(),
            mappings_dir().display()
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("connectors/lab.yaml"),
        "type: mllp\nname: lab\nretention:\n  error_body_days: soon\n",
    )
    .unwrap();
    let problems: Vec<String> = carehub::config::load_with_env(&root.join("carehub.yaml"), &[])
        .expect_err("problems")
        .iter()
        .map(|p| p.to_string())
        .collect();
    let text = problems.join("\n");
    assert!(
        text.contains("carehub.yaml:4: retention.processed_body_days: must be from 1"),
        "{text}"
    );
    assert!(text.contains("carehub.yaml:5: retention.schedule:"), "{text}");
    assert!(text.contains("lab.yaml:4: retention.error_body_days:"), "{text}");
}
