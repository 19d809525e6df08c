//! Tests of the batch planner (`batch.rs`): what a group of records becomes.

use super::*;
use crate::model::Identifier;

fn record(control_id: &str, mrn: &str, hash: &str) -> NewRecord {
    NewRecord {
        connector: "c".into(),
        origin: None,
        received_at: "2026-11-20T00:00:00Z".into(),
        sender: Some("EMR^H".into()),
        control_id: Some(control_id.into()),
        message_type: Some("ADT^A04".into()),
        charset: None,
        content_hash: hash.into(),
        raw: b"MSH|".to_vec(),
        disposition: Disposition::Apply {
            mapping: "m".into(),
            source_system: "EMR^H".into(),
            patch: Some(ProfilePatch {
                identifiers: vec![Identifier {
                    system: "H".into(),
                    value: mrn.into(),
                    kind: None,
                }],
                ..Default::default()
            }),
            records: Vec::new(),
            merge: None,
            warnings: vec![],
        },
        cursor: None,
        match_input: None,
        reprocess: None,
    }
}

fn fresh() -> Lookups {
    Lookups {
        next_message_id: 10,
        next_source_record_id: 5,
        ..Default::default()
    }
}

#[test]
fn two_records_of_one_new_person_in_a_batch_make_one_person() {
    let records = vec![record("1", "A", "h1"), record("2", "A", "h2")];
    let plan = plan(&records, fresh(), &[], &Matcher::default()).unwrap();
    assert_eq!(plan.persons.len(), 1);
    assert_eq!(plan.source_records.len(), 1);
    assert_eq!(plan.identifiers.len(), 1);
    assert_eq!(plan.applied[0].person_id, plan.applied[1].person_id);
    assert_eq!((plan.applied[0].message_id, plan.applied[1].message_id), (10, 11));
    assert_eq!(plan.source_records[0].last_message_id, 11);
}

#[test]
fn a_copy_within_the_batch_or_from_before_is_a_duplicate() {
    let records = vec![
        record("1", "A", "h1"),
        record("1", "A", "h1"),
        record("9", "B", "h9"),
    ];
    let mut l = fresh();
    l.accepted.insert(
        (Some("EMR^H".into()), "9".into(), "h9".into()),
        (3, Some("p-old".into())),
    );
    let plan = plan(&records, l, &[], &Matcher::default()).unwrap();
    let statuses: Vec<_> = plan.applied.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses,
        vec![
            MessageStatus::Processed,
            MessageStatus::Duplicate,
            MessageStatus::Duplicate
        ]
    );
    assert_eq!(plan.messages[1].duplicate_of, Some(10));
    assert_eq!(plan.messages[2].duplicate_of, Some(3));
    assert_eq!(plan.applied[2].person_id.as_deref(), Some("p-old"));
    assert_eq!(plan.persons.len(), 1, "only the first record touches a person");
}

#[test]
fn a_reprocessed_message_keeps_its_row_is_no_copy_of_itself_and_moves_its_count() {
    let again = |mut r: NewRecord, id: i64, previous: MessageStatus| {
        r.reprocess = Some(Reprocess { id, previous });
        r
    };
    let records = vec![
        // Once processed, read again: it finds itself among the accepted, and is applied.
        again(record("7", "A", "h7"), 7, MessageStatus::Processed),
        // Once refused, now a copy of another accepted message: a duplicate of that one.
        again(record("9", "B", "h9"), 4, MessageStatus::Error),
        record("new", "C", "hn"),
    ];
    let mut l = fresh();
    note_accepted(
        &mut l,
        (Some("EMR^H".into()), "7".into(), "h7".into()),
        7,
        Some("p-a".into()),
    );
    note_accepted(
        &mut l,
        (Some("EMR^H".into()), "9".into(), "h9".into()),
        8,
        Some("p-b".into()),
    );
    let plan = plan(&records, l, &[], &Matcher::default()).unwrap();
    let got: Vec<_> = plan.applied.iter().map(|a| (a.message_id, a.status)).collect();
    assert_eq!(
        got,
        vec![
            (7, MessageStatus::Processed),
            (4, MessageStatus::Duplicate),
            (10, MessageStatus::Processed)
        ],
        "rows keep their ids; the new record takes the first free one"
    );
    assert_eq!(plan.messages[1].duplicate_of, Some(8));
    let c = &plan.counters[0].1;
    assert_eq!(c.received, 1, "only the new record was received");
    assert_eq!(
        (c.processed, c.errors, c.duplicates),
        (1, -1, 1),
        "processed: 7 leaves and comes back, the new one adds one; the error became a duplicate"
    );
}

#[test]
fn a_known_identifier_updates_the_golden_record_derived_from_all_sources() {
    let mut l = fresh();
    l.identifiers.insert(("H".into(), "A".into()), "p1".into());
    let records = [record("1", "A", "h1")];
    let mut plan = plan(&records, l, &[], &Matcher::default()).unwrap();
    assert_eq!(plan.persons.len(), 1);
    assert_eq!(plan.persons[0].id, "p1");
    assert!(
        plan.identifiers.is_empty(),
        "a known identifier is not inserted again"
    );
    assert_eq!(stored_needed(&plan), (vec!["p1".to_string()], vec![]));
    // The person's other source (a lab system) states a language this record does not.
    let lab = StoredSource {
        id: 2,
        person_id: "p1".into(),
        system: "LIS".into(),
        at: "2026-11-01T00:00:00Z".into(),
        message_id: 3,
        patch: ProfilePatch {
            language: Some("vi".into()),
            ..Default::default()
        },
    };
    settle(&mut plan, &[lab], &Matcher::default().survivorship).unwrap();
    let golden: ProfilePatch = serde_json::from_str(&plan.persons[0].profile).unwrap();
    assert_eq!(golden.language.as_deref(), Some("vi"), "nothing erased");
    assert_eq!(golden.identifiers.len(), 1);
}

#[test]
fn an_update_of_a_stored_source_record_is_laid_over_what_it_said() {
    let mut l = fresh();
    l.identifiers.insert(("H".into(), "A".into()), "p1".into());
    l.source_records.insert(("EMR^H".into(), "H|A".into()), 4);
    let records = [record("1", "A", "h1")];
    let mut plan = plan(&records, l, &[], &Matcher::default()).unwrap();
    assert_eq!(stored_needed(&plan), (vec!["p1".to_string()], vec![4]));
    let before = StoredSource {
        id: 4,
        person_id: "p1".into(),
        system: "EMR^H".into(),
        at: "2026-11-01T00:00:00Z".into(),
        message_id: 3,
        patch: ProfilePatch {
            language: Some("ru".into()),
            ..Default::default()
        },
    };
    settle(&mut plan, &[before], &Matcher::default().survivorship).unwrap();
    let state: ProfilePatch = serde_json::from_str(&plan.source_records[0].patch).unwrap();
    assert_eq!(
        state.language.as_deref(),
        Some("ru"),
        "an update that leaves it out keeps it"
    );
    assert_eq!(state.identifiers.len(), 1);
    assert!(plan.persons[0].profile.contains("\"language\":\"ru\""));
}

/// A record of `system` with a patch read from JSON.
fn person_record(control_id: &str, system: &str, patch: serde_json::Value) -> NewRecord {
    let mut r = record(control_id, "", control_id);
    r.sender = Some(system.into());
    if let Disposition::Apply {
        patch: p,
        source_system,
        ..
    } = &mut r.disposition
    {
        *p = Some(serde_json::from_value(patch).expect("a patch"));
        *source_system = system.into();
    }
    r
}

/// The plan of `records` with matching on, the default limits checked to be below `over`.
fn plan_matched(records: &[NewRecord], over: usize) -> Plan<'_> {
    let matcher = Matcher::default();
    assert!(over > matcher.max_block);
    let inputs = match_inputs(records, &matcher);
    plan(records, fresh(), &inputs, &matcher).unwrap()
}

#[test]
fn a_record_still_finds_its_person_among_many_namesakes_of_its_batch() {
    // A first pull: 60 patients called Nguyễn Văn An on one page (more than `max_block`
    // share their name key, so that key is skipped), then the lab's record of the 38th, with
    // the lab's own number but the same birth date and phone.
    let namesake = |i: usize| {
        serde_json::json!({
            "identifiers": [{"system": "urn:emr", "value": format!("MRN-{i}")}],
            "names": [{"family": "Nguyễn", "given": ["Văn", "An"]}],
            "birth_date": format!("{}-{:02}-{:02}", 1950 + i, 1 + i % 12, 1 + i % 28),
            "telecom": [{"system": "phone", "value": format!("+849012{i:05}")}],
        })
    };
    let mut records: Vec<NewRecord> = (0..60)
        .map(|i| person_record(&format!("emr-{i}"), "EMR", namesake(i)))
        .collect();
    let mut lab = namesake(37);
    lab["identifiers"] = serde_json::json!([{"system": "urn:lis", "value": "LAB-9"}]);
    records.push(person_record("lab-1", "LIS", lab));
    let plan = plan_matched(&records, 60);
    assert_eq!(
        plan.persons.len(),
        60,
        "the namesakes stay apart, the lab record joins one"
    );
    assert_eq!(plan.applied[60].person_id, plan.applied[37].person_id);
}

#[test]
fn many_messages_of_one_patient_in_a_batch_count_once_under_its_keys() {
    // A burst of 30 messages about one patient (one source record, more messages than
    // `max_block`), then the lab's first record of her, with the lab's own number: her keys
    // are still narrow, so the lab record links to her.
    let patient = serde_json::json!({
        "identifiers": [{"system": "urn:emr", "value": "MRN-7"}],
        "names": [{"family": "Trần", "given": ["Thị", "Mai"]}],
        "birth_date": "1984-03-17",
        "telecom": [{"system": "phone", "value": "+84901234567"}],
    });
    let mut records: Vec<NewRecord> = (0..30)
        .map(|i| person_record(&format!("adt-{i}"), "EMR", patient.clone()))
        .collect();
    let mut lab = patient.clone();
    lab["identifiers"] = serde_json::json!([{"system": "urn:lis", "value": "LAB-1"}]);
    records.push(person_record("lab-1", "LIS", lab));
    let plan = plan_matched(&records, 30);
    assert_eq!(plan.persons.len(), 1, "the lab record is the same patient");
    assert_eq!(plan.applied[30].person_id, plan.applied[0].person_id);
}
