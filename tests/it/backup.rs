//! `carehub backup` while the hub ingests, and `carehub restore` into an empty folder: every
//! message ACKed before the backup began is in the restored store, which checks clean.

use std::sync::{Arc, Mutex};

use carehub::config::{Secret, StoreConfig};
use carehub::store::{MessageFilter, Store};

use crate::at_rest::KEY;
use crate::helpers::{self, Backend, HubOptions, TestHub};

async fn carehub(args: &[&std::ffi::OsStr]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_carehub"))
        .args(args)
        .output()
        .await
        .expect("carehub runs")
}

#[tokio::test]
async fn a_backup_taken_under_load_restores_every_acked_message() {
    let t = helpers::spawn_hub_with(HubOptions {
        backend: Backend::Sqlite,
        store_extra: format!("  encryption_key: \"{KEY}\"\n"),
        ..Default::default()
    })
    .await;
    let addr = t.mllp();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    for sender in 0..4 {
        let (acked, stop) = (acked.clone(), stop.clone());
        load.spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let id = format!("BK{sender}-{n}");
                let ack =
                    helpers::send(addr, &helpers::adt(&id, &format!("MRN{sender}X{n}"), "Backup")).await;
                if helpers::field(&ack, "MSA", 1) == "AA" {
                    acked.lock().unwrap().push(id);
                }
            }
        });
    }
    helpers::eventually("200 messages ACKed", || {
        let n = acked.lock().unwrap().len();
        async move { n >= 200 }
    })
    .await;

    // A clinician's reads are audited: the audit log's chain is part of what is backed up.
    let url = format!("{}/api/v1/patients?identifier=MRN0X1", t.api());
    for _ in 0..5 {
        let (code, _) = helpers::get_json(&url).await;
        assert_eq!(code, 200);
    }

    // Everything ACKed up to here must be in the backup; the load goes on meanwhile.
    let before: Vec<String> = acked.lock().unwrap().clone();
    let config = t.dir.path().join("carehub.yaml");
    let snapshot = t.dir.path().join("snapshot.db");
    let out = carehub(&[
        "backup".as_ref(),
        "--to".as_ref(),
        snapshot.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
    ])
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let during = acked.lock().unwrap().len() - before.len();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    let TestHub { hub, dir, .. } = t;
    hub.shutdown().await;
    eprintln!(
        "{} messages ACKed before the backup, {during} while it ran",
        before.len()
    );

    // Restore into an empty folder, with a configuration naming the same key.
    let target = tempfile::tempdir().unwrap();
    let restored_db = target.path().join("data/carehub.db");
    let restored_url = format!("sqlite://{}", restored_db.display());
    let yaml = std::fs::read_to_string(&config).unwrap().replacen(
        &format!("sqlite://{}", dir.path().join("carehub.db").display()),
        &restored_url,
        1,
    );
    let restore_config = target.path().join("carehub.yaml");
    std::fs::write(&restore_config, yaml).unwrap();
    let out = carehub(&[
        "restore".as_ref(),
        snapshot.as_os_str(),
        "--config".as_ref(),
        restore_config.as_os_str(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("integrity ok"), "{stdout}");
    assert!(
        stdout.contains("(current)"),
        "the schema is not at this carehub's version: {stdout}"
    );

    let store = Store::open_existing(&StoreConfig {
        url: restored_url.clone(),
        encryption_key: Some(Secret::new(KEY)),
        ..Default::default()
    })
    .await
    .expect("the restored store opens with the key");
    let stored: std::collections::HashSet<String> = store
        .messages(&MessageFilter {
            limit: 1_000_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| m.control_id)
        .collect();
    let missing: Vec<&String> = before.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "ACKed before the backup but not restored: {missing:?}"
    );
    // The snapshot is encrypted like the store: the patients' family name is not in its bytes.
    let bytes = std::fs::read(&snapshot).unwrap();
    assert!(
        !bytes.windows(6).any(|w| w == b"Backup"),
        "the snapshot is not encrypted"
    );

    // The audit log came along whole: its chain verifies, reads and the backup itself in it.
    let out = carehub(&[
        "audit".as_ref(),
        "verify".as_ref(),
        "--config".as_ref(),
        restore_config.as_os_str(),
    ])
    .await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("audit log intact"), "{said}");
    let rows = store.audit_page(0, 1000).await.unwrap();
    assert!(
        rows.iter()
            .filter(|r| r.entry.action == "GET /api/v1/patients")
            .count()
            >= 5,
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|r| r.entry.action.starts_with("backup to ")),
        "{rows:?}"
    );

    // A second restore onto the now-filled place is refused.
    drop(store);
    let out = carehub(&[
        "restore".as_ref(),
        snapshot.as_os_str(),
        "--config".as_ref(),
        restore_config.as_os_str(),
    ])
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exists"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
