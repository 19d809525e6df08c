//! Every HL7 v2 file of the third-party corpus through the file source: no panic, every file
//! accounted for, well-formed ADT messages become persons, malformed ones are refused with a
//! reason. Prints the counts (they go in the closing note).

use std::path::Path;

use carehub::store::{MessageFilter, MessageStatus};

use crate::helpers::*;

fn copy_tree(from: &Path, to: &Path, n: &mut usize) {
    let mut entries: Vec<_> = std::fs::read_dir(from).unwrap().filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, to, n);
        } else if p
            .extension()
            .is_some_and(|x| x != "csv" && x != "json" && x != "md")
        {
            *n += 1;
            // Flatten with a numbered prefix: names repeat across vendors' folders.
            let name = format!("{:04}-{}", *n, p.file_name().unwrap().to_string_lossy());
            std::fs::copy(&p, to.join(name)).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_file_goes_through_the_file_source() {
    let Some(corpus) = corpus_dir() else { return };
    let t = spawn_hub_with(HubOptions {
        file_connector: true,
        ..Default::default()
    })
    .await;
    let staging = t.dir.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let mut files = 0;
    copy_tree(&corpus.join("hl7v2"), &staging, &mut files);
    assert!(files > 100, "the corpus has its files ({files})");
    for e in std::fs::read_dir(&staging).unwrap().filter_map(Result::ok) {
        std::fs::rename(e.path(), t.inbox().join(e.file_name())).unwrap();
    }
    eventually("every corpus file is processed", || async {
        std::fs::read_dir(t.inbox())
            .unwrap()
            .filter_map(Result::ok)
            .all(|e| e.path().is_dir())
    })
    .await;

    let outcomes = t.hub.store.files("inbox").await.unwrap();
    assert_eq!(outcomes.len(), files, "every file has a recorded outcome");
    let done = outcomes.iter().filter(|o| o.outcome == "done").count();
    let failed: Vec<_> = outcomes.iter().filter(|o| o.outcome == "error").collect();
    for f in &failed {
        let reason = f.reason.as_deref().unwrap_or("");
        assert!(!reason.trim().is_empty(), "{} has a reason", f.file_name);
        let reason_file = t.inbox().join("error").join(format!("{}.error.txt", f.file_name));
        assert!(reason_file.exists(), "{} has a reason file", f.file_name);
    }

    let count = |status| {
        let store = t.hub.store.clone();
        async move {
            store
                .messages(&MessageFilter {
                    status: Some(status),
                    limit: 100_000,
                    ..Default::default()
                })
                .await
                .unwrap()
        }
    };
    let processed = count(MessageStatus::Processed).await;
    let unmapped = count(MessageStatus::Unmapped).await;
    let errors = count(MessageStatus::Error).await;
    let duplicates = count(MessageStatus::Duplicate).await;
    let persons = t.hub.store.person_count().await.unwrap();
    let adt_processed = processed
        .iter()
        .filter(|m| m.message_type.as_deref().is_some_and(|t| t.starts_with("ADT")))
        .count();

    eprintln!(
        "corpus: {files} files ({done} done, {} error); messages: {} processed ({adt_processed} ADT), {} unmapped, {} error, {} duplicate; {persons} persons",
        failed.len(),
        processed.len(),
        unmapped.len(),
        errors.len(),
        duplicates.len()
    );
    let mut by_reason: std::collections::BTreeMap<String, usize> = Default::default();
    for m in &errors {
        let r = m.error.clone().unwrap_or_default();
        let key: String = r.split(':').take(2).collect::<Vec<_>>().join(":");
        *by_reason.entry(key).or_default() += 1;
    }
    for (r, n) in &by_reason {
        eprintln!("  {n:4}  {r}");
    }
    let mut unmapped_types: std::collections::BTreeMap<String, usize> = Default::default();
    for m in &unmapped {
        *unmapped_types
            .entry(m.message_type.clone().unwrap_or_default())
            .or_default() += 1;
    }
    eprintln!("  unmapped by type: {unmapped_types:?}");

    // Floors measured on the corpus as shipped (81 ADT processed, 78 with a PID, 18 distinct
    // patients: vendors reuse the same sample patients).
    assert!(
        adt_processed >= 75,
        "well-formed ADT messages are mapped ({adt_processed})"
    );
    let with_person = processed.iter().filter(|m| m.person_id.is_some()).count();
    assert!(
        with_person * 10 >= adt_processed * 9,
        "ADT messages with a PID become persons ({with_person}/{adt_processed})"
    );
    assert!(persons >= 15, "ADT messages make persons ({persons})");
    assert!(
        unmapped.len() >= 50,
        "other well-formed messages are kept as unmapped ({})",
        unmapped.len()
    );
    for m in &errors {
        assert!(
            m.error.as_deref().is_some_and(|e| !e.is_empty()),
            "message {} has a reason",
            m.id
        );
    }
    // Every refused message is still in the log with its bytes.
    for m in errors.iter().take(20) {
        let d = t.hub.store.message(m.id).await.unwrap().unwrap();
        assert!(!d.raw.is_empty());
    }
    t.hub.shutdown().await;
}
