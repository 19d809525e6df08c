//! `carehub replay`: a changed mapping over the messages a real hub stored, compared with
//! today's mapping — and the store left as it was.

use std::path::Path;
use std::process::Output;

use carehub::store::{MessageFilter, Store};

use crate::helpers::{adt, mappings_dir, send, spawn_hub};

/// Runs `carehub replay --config <hub config> ARGS…`.
async fn replay(config: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_carehub"))
        .arg("replay")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .await
        .unwrap()
}

/// Everything a replay could have touched: the message log (statuses, mappings, persons),
/// persons, reviews and connector counters.
async fn snapshot(store: &Store) -> String {
    let messages = store
        .messages(&MessageFilter {
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let connectors: Vec<_> = store
        .connectors()
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            (
                c.name,
                c.received,
                c.processed,
                c.errors,
                c.duplicates,
                c.unmapped,
            )
        })
        .collect();
    format!(
        "{}\n{}\n{}\n{connectors:?}",
        serde_json::to_string(&messages).unwrap(),
        store.person_count().await.unwrap(),
        store.review_count().await.unwrap()
    )
}

/// The numbers of a report line that starts with `label` (after its leading spaces).
fn numbers(stdout: &str, label: &str) -> Vec<u64> {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("a line for {label} in:\n{stdout}"));
    line[line.find(label).unwrap() + label.len()..]
        .split_whitespace()
        .map_while(|w| w.trim_end_matches(',').parse().ok())
        .collect()
}

#[tokio::test]
async fn replay_counts_what_a_changed_mapping_would_change_and_writes_nothing() {
    let t = spawn_hub().await;
    let a = adt("RP-1", "MRN-RP1", "Nguyen");
    for msg in [
        a.clone(),
        adt("RP-2", "MRN-RP2", "Tran"),
        // Sex X: today's table turns it into `unknown`; the new one refuses it.
        adt("RP-3", "MRN-RP3", "Pham").replace("|19850307|F|", "|19850307|X|"),
        a.clone(), // a duplicate: not replayed
        "MSH|^~\\&|LAB|CLINIC|CAREHUB|CLINIC|20261120||ORU^R01|RP-4|P|2.5.1\rPID|1||MRN-RP1^^^CLINIC^MR||Nguyen^Lan\r"
            .to_string(), // another type: the new mapping does not take it
    ] {
        send(t.mllp(), &msg).await;
    }
    let before = snapshot(&t.hub.store).await;

    // The shipped mapping, with family names upper-cased and unknown sex codes refused.
    let shipped = std::fs::read_to_string(mappings_dir().join("hl7v2-adt-person.yaml")).unwrap();
    let changed = shipped
        .replace(
            "family: {path: .1.1, transform: collapse_spaces}",
            "family: {path: .1.1, transform: upper}",
        )
        .replacen("unknown: {default: unknown}", "unknown: error", 1);
    assert_ne!(changed, shipped);
    let new = t.dir.path().join("new-adt.yaml");
    std::fs::write(&new, changed).unwrap();
    let config = t.dir.path().join("carehub.yaml");

    let out = replay(&config, &["--mapping", new.to_str().unwrap()]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(numbers(&stdout, "messages read"), [3], "{stdout}");
    assert_eq!(numbers(&stdout, "compared"), [3], "{stdout}");
    assert_eq!(numbers(&stdout, "mapped → mapped"), [2], "{stdout}");
    assert_eq!(numbers(&stdout, "mapped → error"), [1], "{stdout}");
    // changed, added, removed, unchanged, messages, then the example ids.
    let family = numbers(&stdout, "person.names[].family");
    assert_eq!(&family[..5], [2, 0, 0, 0, 2], "{stdout}");
    assert_eq!(family.len(), 7, "two example messages: {stdout}");
    let error = stdout
        .lines()
        .find(|l| l.contains("rule person.sex"))
        .unwrap_or_else(|| panic!("the new mapping's error names its rule:\n{stdout}"));
    assert!(error.contains("(PID-8)"), "and its path: {error}");
    assert!(
        !error.contains("Pham") && !error.contains("MRN"),
        "no data in it: {error}"
    );
    assert!(
        !stdout
            .lines()
            .any(|l| l.starts_with("person.sex") || l.starts_with("person.birth_date")),
        "unchanged fields are left out:\n{stdout}"
    );
    for value in ["Nguyen", "NGUYEN", "Tran", "MRN-RP1"] {
        assert!(
            !stdout.contains(value),
            "no value without --show-values ({value}):\n{stdout}"
        );
    }

    let out = replay(
        &config,
        &[
            "--mapping",
            new.to_str().unwrap(),
            "--show-values",
            "--limit",
            "1",
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"Nguyen\" → \"NGUYEN\""), "{stdout}");
    assert!(
        !stdout.contains("\"TRAN\""),
        "one example per field with --limit 1:\n{stdout}"
    );

    // Filters: a connector or a time that holds none of them.
    let out = replay(
        &config,
        &["--mapping", new.to_str().unwrap(), "--connector", "elsewhere"],
    )
    .await;
    assert_eq!(
        numbers(&String::from_utf8_lossy(&out.stdout), "messages read"),
        [0]
    );
    let out = replay(
        &config,
        &["--mapping", new.to_str().unwrap(), "--since", "2999-01-01"],
    )
    .await;
    assert_eq!(
        numbers(&String::from_utf8_lossy(&out.stdout), "messages read"),
        [0]
    );
    let out = replay(
        &config,
        &[
            "--mapping",
            new.to_str().unwrap(),
            "--since",
            "2000-01-01T00:00:00Z",
        ],
    )
    .await;
    assert_eq!(
        numbers(&String::from_utf8_lossy(&out.stdout), "messages read"),
        [3]
    );

    // A mapping of another name, for every ADT event (`adt^*`, any case): compared with what
    // the hub picks today, the shipped mapping.
    let wildcard = t.dir.path().join("wildcard.yaml");
    std::fs::write(
        &wildcard,
        "name: adt-names-only\ninput: hl7v2\nmessage_types: [adt^*]\nperson:\n  identifiers:\n    foreach: PID-3\n    fields: {value: .1, system: .4.1, type: .5}\n",
    )
    .unwrap();
    let out = replay(&config, &["--mapping", wildcard.to_str().unwrap()]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(numbers(&stdout, "messages read"), [3], "{stdout}");
    assert!(
        stdout.contains("hl7v2-adt-person (3)"),
        "the baseline is the hub's pick:\n{stdout}"
    );
    assert_eq!(&numbers(&stdout, "person.names[]")[..3], [0, 0, 3], "{stdout}");

    assert_eq!(snapshot(&t.hub.store).await, before, "the store is unchanged");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn replay_refuses_a_mapping_that_does_not_compile() {
    let t = spawn_hub().await;
    let broken = t.dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "name: hl7v2-adt-person\ninput: hl7v2\nmessage_types: [ADT^A04]\nperson:\n  sex: {path: PID-8, transform: shout}\n  birthdate: PID-7\n",
    )
    .unwrap();
    let out = replay(
        &t.dir.path().join("carehub.yaml"),
        &["--mapping", broken.to_str().unwrap()],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("broken.yaml:5: person.sex.transform: unknown transform \"shout\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("broken.yaml:6: person.birthdate: unknown target field"),
        "{stderr}"
    );
    t.hub.shutdown().await;
}
