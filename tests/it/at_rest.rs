//! Encryption at rest: with `store.encryption_key` set, a copy of the SQLite store (database
//! and write-ahead log) shows none of a patient's data; on PostgreSQL the message bodies are
//! sealed by the hub. A wrong or missing key fails at open with a clear error; `carehub rekey`
//! moves a store to a new key (or encrypts a plain one).

use std::path::{Path, PathBuf};

use carehub::config::{Secret, StoreConfig};
use carehub::store::{MessageFilter, Store};

use crate::helpers::{self, Backend, HubOptions, TestHub};

pub const KEY: &str = "test-store-key-0123456789-abcdefghijklmnop";
const OTHER_KEY: &str = "another-store-key-9876543210-zyxwvutsrqpon";

/// The patient's data the store must not show: family and given name, MRN, phone, email, and
/// a sentence of the message body.
const SECRETS: &[&str] = &[
    "Thistlewood",
    "Quillon",
    "MRN7Q4Z9X",
    "903987654",
    "quillon.t@example.org",
    "zebracorn pollen allergy",
];

fn message(control_id: &str) -> String {
    format!(
        "MSH|^~\\&|EMR|CLINIC|CAREHUB|CLINIC|20261120083000+0700||ADT^A04^ADT_A01|{control_id}|P|2.5.1\r\
         EVN|A04|20261120083000\r\
         PID|1||MRN7Q4Z9X^^^CLINIC^MR||Thistlewood^Quillon^Thi||19850307|F|||1 Main St^^Hanoi^^100000^VN^H||0903987654^PRN^CP~^NET^Internet^quillon.t@example.org\r\
         NTE|1||Patient reports a zebracorn pollen allergy\r"
    )
}

fn key_yaml(key: &str) -> String {
    format!("  encryption_key: \"{key}\"\n")
}

/// The database file and its write-ahead log, as bytes (what a stolen copy would hold).
fn raw_bytes(db: &Path) -> Vec<u8> {
    let mut out = std::fs::read(db).unwrap_or_default();
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    out.extend(std::fs::read(PathBuf::from(wal)).unwrap_or_default());
    out
}

fn found(bytes: &[u8]) -> Vec<&'static str> {
    SECRETS
        .iter()
        .copied()
        .filter(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes()))
        .collect()
}

async fn ingest_patient(t: &TestHub) {
    let ack = helpers::send(t.mllp(), &message("ATREST-1")).await;
    assert_eq!(helpers::field(&ack, "MSA", 1), "AA", "{ack}");
}

fn config(url: &str, key: Option<&str>) -> StoreConfig {
    StoreConfig {
        url: url.to_string(),
        encryption_key: key.map(Secret::new),
        ..Default::default()
    }
}

async fn stored_messages(url: &str, key: Option<&str>) -> usize {
    let store = Store::open_existing(&config(url, key))
        .await
        .expect("the store opens");
    store
        .messages(&MessageFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("messages")
        .len()
}

fn rekey(config: &Path, new_key: &str) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_carehub"));
    c.arg("rekey")
        .arg("--config")
        .arg(config)
        .env("CAREHUB_STORE_NEW_KEY", new_key);
    c.output().expect("carehub runs")
}

#[tokio::test]
async fn an_encrypted_sqlite_store_shows_no_patient_data() {
    let t = helpers::spawn_hub_with(HubOptions {
        backend: Backend::Sqlite,
        store_extra: key_yaml(KEY),
        ..Default::default()
    })
    .await;
    ingest_patient(&t).await;
    let db = t.dir.path().join("carehub.db");
    let url = format!("sqlite://{}", db.display());
    // A copy taken while the hub runs: the message may still be in the log only.
    let live = raw_bytes(&db);
    assert!(!live.is_empty());
    assert_eq!(
        found(&live),
        Vec::<&str>::new(),
        "patient data in the live store's bytes"
    );
    let TestHub { hub, dir, .. } = t;
    hub.shutdown().await;
    assert_eq!(
        found(&raw_bytes(&db)),
        Vec::<&str>::new(),
        "patient data in the stopped store's bytes"
    );

    // The key opens it; another key, or none, fails with a clear error.
    assert_eq!(stored_messages(&url, Some(KEY)).await, 1);
    let wrong = Store::open_existing(&config(&url, Some(OTHER_KEY)))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        wrong.contains("is encrypted and this key does not open it"),
        "{wrong}"
    );
    let none = Store::open_existing(&config(&url, None))
        .await
        .unwrap_err()
        .to_string();
    assert!(none.contains("no store.encryption_key is set"), "{none}");

    // Rekey: the new key opens it, the old one no longer does.
    let out = rekey(&dir.path().join("carehub.yaml"), OTHER_KEY);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stored_messages(&url, Some(OTHER_KEY)).await, 1);
    let old = Store::open_existing(&config(&url, Some(KEY)))
        .await
        .unwrap_err()
        .to_string();
    assert!(old.contains("this key does not open it"), "{old}");
    assert_eq!(found(&raw_bytes(&db)), Vec::<&str>::new());
}

#[tokio::test]
async fn a_plain_sqlite_store_shows_it_until_rekeyed() {
    let t = helpers::spawn_hub_with(HubOptions {
        backend: Backend::Sqlite,
        // Not empty: a plain store even under CAREHUB_TEST_STORE_KEY.
        store_extra: "  sqlite_synchronous: full\n".into(),
        ..Default::default()
    })
    .await;
    ingest_patient(&t).await;
    let db = t.dir.path().join("carehub.db");
    let url = format!("sqlite://{}", db.display());
    let TestHub { hub, dir, .. } = t;
    hub.shutdown().await;
    // Without a key the same bytes give the patient away: the check above can fail.
    assert_eq!(found(&raw_bytes(&db)), SECRETS.to_vec());
    // A key configured for a plain store is refused with the way out.
    let keyed = Store::open_existing(&config(&url, Some(KEY)))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        keyed.contains("is not encrypted but store.encryption_key is set"),
        "{keyed}"
    );

    // `carehub rekey` encrypts it (no key configured yet: the store is plain).
    let out = rekey(&dir.path().join("carehub.yaml"), KEY);
    assert!(
        out.status.success(),
        "{}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(found(&raw_bytes(&db)), Vec::<&str>::new());
    assert_eq!(stored_messages(&url, Some(KEY)).await, 1);
}

#[tokio::test]
async fn rekey_refuses_a_store_in_use() {
    let t = helpers::spawn_hub_with(HubOptions {
        backend: Backend::Sqlite,
        store_extra: key_yaml(KEY),
        ..Default::default()
    })
    .await;
    ingest_patient(&t).await;
    let out = rekey(&t.dir.path().join("carehub.yaml"), OTHER_KEY);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rekey ran under a live hub");
    assert!(stderr.contains("the store is in use"), "{stderr}");
    // And the hub goes on with its key.
    let ack = helpers::send(t.mllp(), &message("ATREST-2")).await;
    assert_eq!(helpers::field(&ack, "MSA", 1), "AA", "{ack}");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn postgres_message_bodies_are_sealed_by_the_hub() {
    let Some(t) = helpers::try_spawn_hub_with(HubOptions {
        backend: Backend::Postgres,
        store_extra: key_yaml(KEY),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    ingest_patient(&t).await;
    let yaml = std::fs::read_to_string(t.dir.path().join("carehub.yaml")).unwrap();
    let store_url = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("url: "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&store_url).await.unwrap();
    let raws: Vec<Vec<u8>> = sqlx::query_scalar("SELECT raw FROM messages")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(raws.len(), 1);
    assert_eq!(
        found(&raws[0]),
        Vec::<&str>::new(),
        "the body column holds the message text"
    );
    // The hub reads it back whole.
    let id: i64 = sqlx::query_scalar("SELECT id FROM messages")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let detail = t.hub.store.message(id).await.unwrap().unwrap();
    assert_eq!(found(&detail.raw), SECRETS.to_vec());
    // Without the key the sealed body is refused, not shown as noise.
    let plain = Store::open_existing(&config(&store_url, None)).await.unwrap();
    let err = plain.message(id).await.unwrap_err().to_string();
    assert!(err.contains("no store.encryption_key is configured"), "{err}");
    t.hub.shutdown().await;

    // Rekey (hub stopped): the new key reads the body, the old one is told it is not the key.
    let rewritten = carehub::store::rekey(&config(&store_url, Some(KEY)), &Secret::new(OTHER_KEY))
        .await
        .unwrap();
    assert_eq!(rewritten, 1);
    let renewed = Store::open_existing(&config(&store_url, Some(OTHER_KEY)))
        .await
        .unwrap();
    assert_eq!(
        found(&renewed.message(id).await.unwrap().unwrap().raw),
        SECRETS.to_vec()
    );
    let old = Store::open_existing(&config(&store_url, Some(KEY)))
        .await
        .unwrap();
    let err = old.message(id).await.unwrap_err().to_string();
    assert!(err.contains("is sealed with key id"), "{err}");
    let raw: Vec<u8> = sqlx::query_scalar("SELECT raw FROM messages")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(found(&raw), Vec::<&str>::new());
    // Run again: nothing left to rewrite.
    let again = carehub::store::rekey(&config(&store_url, Some(OTHER_KEY)), &Secret::new(OTHER_KEY))
        .await
        .unwrap();
    assert_eq!(again, 0);
}

#[tokio::test]
async fn postgres_notification_texts_are_sealed_by_the_hub() {
    use crate::notify::{CONFIRM, adt_vi, file_channels, siu};
    let outbox = tempfile::tempdir().unwrap();
    let Some(t) = helpers::try_spawn_hub_with(HubOptions {
        backend: Backend::Postgres,
        store_extra: key_yaml(KEY),
        rules: vec![("confirm.yaml".into(), CONFIRM.into())],
        hub_extra: file_channels(outbox.path()),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    helpers::send(t.mllp(), &adt_vi("N1", "MRN-N1", "0903123456")).await;
    let ack = helpers::send(t.mllp(), &siu("S12", "N2", "APT-1", "MRN-N1", 72)).await;
    assert!(ack.contains("MSA|AA"), "{ack}");
    let sms = || {
        helpers::files_under(&outbox.path().join("sms"), &|p| {
            p.extension().is_some_and(|e| e == "txt")
        })
    };
    helpers::eventually("the confirmation is sent", || async { !sms().is_empty() }).await;
    // The worker read the sealed text back whole.
    let sent = std::fs::read_to_string(&sms()[0]).unwrap();
    assert!(sent.contains("đã được xác nhận"), "{sent}");

    let yaml = std::fs::read_to_string(t.dir.path().join("carehub.yaml")).unwrap();
    let store_url = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("url: "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&store_url).await.unwrap();
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM notifications WHERE body IS NOT NULL")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(bodies.len(), 1);
    assert!(bodies[0].starts_with("enc1:"), "not sealed: {}", bodies[0]);
    assert!(!bodies[0].contains("xác nhận"));
    t.hub.shutdown().await;
}
