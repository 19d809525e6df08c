//! The file-drop connector: line endings, BOM, batches, done/ and error/.

use crate::helpers::*;

async fn files_settled(t: &TestHub) -> bool {
    std::fs::read_dir(t.inbox())
        .map(|d| d.filter_map(Result::ok).all(|e| e.path().is_dir()))
        .unwrap_or(false)
}

#[tokio::test]
async fn files_with_any_line_ending_and_a_bom_become_persons_and_move_to_done() {
    let t = spawn_hub_with(HubOptions {
        file_connector: true,
        ..Default::default()
    })
    .await;
    let inbox = t.inbox();
    let base = adt("F-CR", "MRN-CR", "Cao");
    std::fs::write(inbox.join("a-cr.hl7"), &base).unwrap();
    std::fs::write(
        inbox.join("b-lf.hl7"),
        adt("F-LF", "MRN-LF", "Lam").replace('\r', "\n"),
    )
    .unwrap();
    std::fs::write(
        inbox.join("c-crlf.hl7"),
        adt("F-CRLF", "MRN-CRLF", "Ta").replace('\r', "\r\n"),
    )
    .unwrap();
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(adt("F-BOM", "MRN-BOM", "Trinh").as_bytes());
    std::fs::write(inbox.join("d-bom.hl7"), bom).unwrap();
    eventually("the inbox is empty", || files_settled(&t)).await;
    for mrn in ["MRN-CR", "MRN-LF", "MRN-CRLF", "MRN-BOM"] {
        assert_eq!(
            t.hub.store.find_persons(mrn, None).await.unwrap().len(),
            1,
            "{mrn}"
        );
    }
    for f in ["a-cr.hl7", "b-lf.hl7", "c-crlf.hl7", "d-bom.hl7"] {
        assert!(inbox.join("done").join(f).exists(), "{f} moved to done/");
    }
    let files = t.hub.store.files("inbox").await.unwrap();
    assert_eq!(files.len(), 4);
    assert!(files.iter().all(|f| f.outcome == "done" && f.messages == 1));
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_batch_file_is_split_into_its_messages() {
    let t = spawn_hub_with(HubOptions {
        file_connector: true,
        ..Default::default()
    })
    .await;
    let batch = format!(
        "FHS|^~\\&|EMR|CLINIC\nBHS|^~\\&|EMR|CLINIC\n{}{}BTS|2\nFTS|1\n",
        adt("B-1", "MRN-B1", "Duong").replace('\r', "\n"),
        adt("B-2", "MRN-B2", "Quach").replace('\r', "\n")
    );
    std::fs::write(t.inbox().join("batch.hl7"), batch).unwrap();
    eventually("the batch is processed", || files_settled(&t)).await;
    assert_eq!(t.hub.store.person_count().await.unwrap(), 2);
    let files = t.hub.store.files("inbox").await.unwrap();
    assert_eq!(files[0].messages, 2);
    assert_eq!(files[0].outcome, "done");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_broken_batch_goes_to_error_with_a_reason_and_nothing_is_applied() {
    let t = spawn_hub_with(HubOptions {
        file_connector: true,
        ..Default::default()
    })
    .await;
    let truncated = format!(
        "BHS|^~\\&|EMR|CLINIC\n{}",
        adt("T-1", "MRN-T", "Khuc").replace('\r', "\n")
    );
    std::fs::write(t.inbox().join("truncated.hl7"), truncated).unwrap();
    eventually("the file is moved", || files_settled(&t)).await;
    let err_dir = t.inbox().join("error");
    assert!(err_dir.join("truncated.hl7").exists());
    let reason = std::fs::read_to_string(err_dir.join("truncated.hl7.error.txt")).unwrap();
    assert!(
        reason.contains("BTS"),
        "the reason names the missing trailer: {reason}"
    );
    assert_eq!(t.hub.store.person_count().await.unwrap(), 0);
    let errors = messages_with(&t.hub.store, carehub::store::MessageStatus::Error).await;
    assert_eq!(errors.len(), 1, "the file's bytes are kept in the message log");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_file_with_one_bad_message_keeps_the_good_ones_and_says_which_failed() {
    let t = spawn_hub_with(HubOptions {
        file_connector: true,
        ..Default::default()
    })
    .await;
    let good = adt("M-1", "MRN-M1", "Luu");
    let bad = adt("M-2", "MRN-M2", "Kim").replace("19850307", "notadate");
    std::fs::write(t.inbox().join("mixed.hl7"), format!("{good}{bad}")).unwrap();
    eventually("the file is moved", || files_settled(&t)).await;
    assert_eq!(t.hub.store.find_persons("MRN-M1", None).await.unwrap().len(), 1);
    assert!(t.hub.store.find_persons("MRN-M2", None).await.unwrap().is_empty());
    let reason = std::fs::read_to_string(t.inbox().join("error/mixed.hl7.error.txt")).unwrap();
    assert!(reason.starts_with("message 2 of 2:"), "{reason}");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn the_sample_inbox_is_ingested_from_a_working_copy() {
    let t = spawn_hub_with(HubOptions {
        file_connector: true,
        file_extra: format!("seed_from: {}/examples/inbox\n", env!("CARGO_MANIFEST_DIR")),
        ..Default::default()
    })
    .await;
    // The inbox did not exist before the start, so it was seeded from the samples.
    eventually("the sample inbox is processed", || files_settled(&t)).await;
    let vi = t.hub.store.find_persons("MRN100234", None).await.unwrap();
    assert_eq!(vi.len(), 1, "register and update are one person");
    assert_eq!(vi[0].profile["names"][0]["family"], "Nguyễn");
    assert_eq!(vi[0].profile["language"], "vi");
    let ru = t.hub.store.find_persons("4410022", None).await.unwrap();
    assert_eq!(ru[0].profile["names"][0]["family"], "Иванова");
    let zh = t.hub.store.find_persons("SH-778812", None).await.unwrap();
    assert_eq!(zh[0].profile["names"][0]["family"], "王");
    let en = t.hub.store.find_persons("SH-778813", None).await.unwrap();
    assert!(
        en[0].profile["telecom"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["value"] == "JOHN.SMITH@example.com")
    );
    // The repository's own sample files are untouched.
    assert!(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/inbox/001-register-vi.hl7")
            .exists()
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_file_still_growing_is_not_read_even_with_an_old_timestamp() {
    let t = spawn_hub_with(HubOptions {
        file_connector: true,
        file_extra: "min_file_age_ms: 1\npoll_interval_ms: 200\n".into(),
        ..Default::default()
    })
    .await;
    let path = t.inbox().join("copying.hl7");
    let full = adt("G-1", "MRN-G", "Ha");
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    // A copy that keeps the original's time: the size grows, the time stays an hour old.
    for end in (10..full.len()).step_by(10) {
        let f = std::fs::File::create(&path).unwrap();
        std::io::Write::write_all(&mut &f, &full.as_bytes()[..end]).unwrap();
        f.set_modified(old).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert!(path.exists(), "a growing file is left alone (at {end} bytes)");
    }
    let f = std::fs::File::create(&path).unwrap();
    std::io::Write::write_all(&mut &f, full.as_bytes()).unwrap();
    f.set_modified(old).unwrap();
    drop(f);
    eventually("the finished file is processed", || async {
        t.inbox().join("done/copying.hl7").exists()
    })
    .await;
    let p = t.hub.store.find_persons("MRN-G", None).await.unwrap();
    assert_eq!(
        p[0].profile["names"][0]["family"], "Ha",
        "the whole message was read"
    );
    t.hub.shutdown().await;
}
