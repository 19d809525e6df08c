//! The same store contract on SQLite and on PostgreSQL: what a sender and the API see must not
//! depend on the backend.

use carehub::store::MessageStatus;

use crate::helpers::*;

/// Ingest, duplicates, updates, refusals and the API, on one backend.
async fn store_contract(backend: Backend) {
    let Some(t) = try_spawn_hub_with(HubOptions {
        backend,
        file_connector: true,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    assert_eq!(
        t.hub.store.backend_name(),
        if backend == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );

    // A new person, then a retransmission, then an update from the same system.
    let msg = adt("BK-1", "MRN-BK", "Nguyen");
    assert_eq!(field(&send(t.mllp(), &msg).await, "MSA", 1), "AA");
    assert_eq!(field(&send(t.mllp(), &msg).await, "MSA", 1), "AA");
    let update = adt("BK-2", "MRN-BK", "Nguyen-Tran").replace("ADT^A04", "ADT^A08");
    assert_eq!(field(&send(t.mllp(), &update).await, "MSA", 1), "AA");
    assert_eq!(t.hub.store.person_count().await.unwrap(), 1);
    let p = &t.hub.store.find_persons("MRN-BK", Some("CLINIC")).await.unwrap()[0];
    assert_eq!(p.profile["names"][0]["family"], "Nguyen-Tran");
    assert_eq!(p.source_records.len(), 1);
    assert!(
        p.provenance
            .iter()
            .any(|f| f.field == "birth_date" && f.source_system == "EMR^CLINIC")
    );

    // Two frames in one write: two persons, in one group commit or two.
    let mut both = frame(&adt("BK-3", "MRN-BK3", "Le"));
    both.extend(frame(&adt("BK-4", "MRN-BK4", "Ly")));
    let mut s = tokio::net::TcpStream::connect(t.mllp()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut s, &both).await.unwrap();
    assert_eq!(field(&read_frame(&mut s).await.unwrap(), "MSA", 2), "BK-3");
    assert_eq!(field(&read_frame(&mut s).await.unwrap(), "MSA", 2), "BK-4");
    assert_eq!(t.hub.store.person_count().await.unwrap(), 3);

    // Refused and unmapped messages are kept with their reasons.
    assert_eq!(field(&send(t.mllp(), "not hl7").await, "MSA", 1), "AR");
    let oru = "MSH|^~\\&|LAB|CLINIC|CAREHUB|CLINIC|20261120||VXU^V04|BK-5|P|2.5\rPID|1||MRN-BK^^^CLINIC^MR\r";
    assert_eq!(field(&send(t.mllp(), oru).await, "MSA", 1), "AA");
    assert_eq!(
        messages_with(&t.hub.store, MessageStatus::Processed).await.len(),
        4
    );
    assert_eq!(
        messages_with(&t.hub.store, MessageStatus::Duplicate).await.len(),
        1
    );
    assert_eq!(
        messages_with(&t.hub.store, MessageStatus::Unmapped).await.len(),
        1
    );
    let errors = messages_with(&t.hub.store, MessageStatus::Error).await;
    assert_eq!(errors.len(), 1);
    assert_eq!(
        t.hub.store.message(errors[0].id).await.unwrap().unwrap().raw,
        b"not hl7"
    );

    // A batch file through the file source, recorded.
    let batch = format!(
        "BHS|^~\\&|EMR|CLINIC\n{}{}BTS|2\n",
        adt("BK-6", "MRN-BK6", "Vo").replace('\r', "\n"),
        adt("BK-7", "MRN-BK7", "Vu").replace('\r', "\n")
    );
    std::fs::write(t.inbox().join("batch.hl7"), batch).unwrap();
    eventually("the batch file is processed", || async {
        t.inbox().join("done/batch.hl7").exists()
    })
    .await;
    let files = t.hub.store.files("inbox").await.unwrap();
    assert_eq!(
        (files.len(), files[0].messages, files[0].outcome.as_str()),
        (1, 2, "done")
    );
    assert_eq!(t.hub.store.person_count().await.unwrap(), 5);

    // Counters per connector.
    let conns = t.hub.store.connectors().await.unwrap();
    let mllp = conns.iter().find(|c| c.name == "mllp").unwrap();
    assert_eq!(
        (
            mllp.received,
            mllp.processed,
            mllp.duplicates,
            mllp.errors,
            mllp.unmapped
        ),
        (7, 4, 1, 1, 1)
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn the_store_contract_holds_on_sqlite() {
    store_contract(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_store_contract_holds_on_postgresql() {
    store_contract(Backend::Postgres).await;
}

/// A record with more identifiers than one SQLite query may bind is looked up in several
/// queries there (PostgreSQL takes them as one array).
async fn many_identifiers(backend: Backend) {
    use carehub::model::{Identifier, ProfilePatch};
    use carehub::store::{Disposition, NewRecord};
    let Some(t) = try_spawn_hub_with(HubOptions {
        backend,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let patch = ProfilePatch {
        identifiers: (0..12_000)
            .map(|i| Identifier {
                system: "BULK".into(),
                value: format!("ID-{i}"),
                kind: None,
            })
            .collect(),
        ..Default::default()
    };
    let record = |control: &str| NewRecord {
        connector: "bulk".into(),
        origin: None,
        received_at: "2026-11-20T00:00:00Z".into(),
        sender: Some("EMR^H".into()),
        control_id: Some(control.into()),
        message_type: Some("ADT^A04".into()),
        charset: None,
        content_hash: format!("hash-{control}"),
        raw: b"MSH|".to_vec(),
        disposition: Disposition::Apply {
            mapping: "m".into(),
            source_system: "EMR^H".into(),
            patch: Some(patch.clone()),
            records: Vec::new(),
            merge: None,
            warnings: vec![],
        },
        cursor: None,
        match_input: None,
        reprocess: None,
    };
    let first = t
        .hub
        .store
        .apply_batch(&[record("1")])
        .await
        .expect("a first batch with 12,000 identifiers");
    let second = t
        .hub
        .store
        .apply_batch(&[record("2")])
        .await
        .expect("a second one, looked up in pieces");
    assert_eq!(
        first[0].person_id, second[0].person_id,
        "the same identifiers are the same person"
    );
    assert_eq!(t.hub.store.person_count().await.unwrap(), 1);
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_huge_record_is_looked_up_in_pieces_on_sqlite() {
    many_identifiers(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_huge_record_is_looked_up_in_pieces_on_postgresql() {
    many_identifiers(Backend::Postgres).await;
}

/// PostgreSQL keeps a prepared statement's plan until its tables' statistics change. A hub
/// started on an empty database must not go on planning its look-ups for empty tables where
/// autovacuum is off (as on the test server) or has not come round yet: the store analyses its
/// ingest tables itself as they grow.
#[tokio::test]
async fn postgresql_statistics_follow_a_growing_store() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let Some((store, url)) = fresh_store(Backend::Postgres, dir.path()).await else {
        return;
    };
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let analyses = async |conn: &mut sqlx::PgConnection| -> i64 {
        sqlx::query_scalar(
            "SELECT COALESCE(SUM(analyze_count + autoanalyze_count), 0)::bigint FROM pg_stat_user_tables
             WHERE schemaname = current_schema() AND relname = 'persons'",
        )
        .fetch_one(conn)
        .await
        .unwrap()
    };
    assert_eq!(
        analyses(&mut conn).await,
        0,
        "a fresh schema has never been analysed"
    );
    // Up to 300 persons, a batch at a time, until `persons` has been analysed (the check runs at
    // most once a second, after a batch; the server publishes its counters within a second).
    let mut n = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while analyses(&mut conn).await == 0 {
        assert!(std::time::Instant::now() < deadline, "persons was never analysed");
        let batch: Vec<_> = (n..n + 100)
            .map(|i| {
                crate::identity::store_record(
                    "EMR",
                    &format!("ST-{i}"),
                    serde_json::json!({"identifiers": [{"system": "HOSP", "value": format!("MRN-ST-{i}")}],
                        "names": [{"family": "Trần", "given": ["Minh"]}]}),
                )
            })
            .collect();
        if n < 300 {
            store.apply_batch(&batch).await.unwrap();
            n += 100;
        } else {
            // Nothing more to write: one small batch triggers the check again.
            store.apply_batch(&batch[..1]).await.unwrap();
            n += 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    // The planner knows the table is no longer empty.
    let estimate: f32 = sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = 'persons'::regclass")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(estimate >= 100.0, "persons estimated at {estimate} rows");
}

/// A SQLite store reached through a symbolic link (a data volume mounted elsewhere): SQLite keeps
/// its write-ahead log beside the real file, and the sync that comes before every answer must
/// find it there (a missing log is an error, not a skipped sync).
#[tokio::test]
async fn a_sqlite_store_behind_a_symbolic_link_is_synced_where_its_log_is() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("volume")).unwrap();
    let real = dir.path().join("volume/carehub.db");
    // SQLite creates the file; the link must exist first, pointing at where it will be.
    std::os::unix::fs::symlink(&real, dir.path().join("carehub.db")).unwrap();
    let store = carehub::store::Store::open(&carehub::config::StoreConfig {
        url: format!("sqlite://{}", dir.path().join("carehub.db").display()),
        ..Default::default()
    })
    .await
    .unwrap();
    let record = crate::identity::store_record(
        "EMR",
        "LINK-1",
        serde_json::json!({"identifiers": [{"system": "HOSP", "value": "MRN-LINK"}]}),
    );
    let applied = store.apply_batch(&[record]).await.expect("committed and synced");
    assert!(applied[0].person_id.is_some());
    assert!(
        dir.path().join("volume/carehub.db-wal").exists(),
        "the log is beside the real file"
    );
    assert!(!dir.path().join("carehub.db-wal").exists());
}
