//! Survivorship: golden records derived field by field from the source records, by the rules
//! in `identity.survivorship`, with the kept values marked in the provenance. Runs on the
//! suite's backend (SQLite, or PostgreSQL in CI).

use crate::helpers::*;
use crate::identity::store_record;

fn rules(yaml: &str) -> carehub::identity::Matcher {
    let config: carehub::identity::IdentityConfig =
        serde_saphyr::from_str(yaml).expect("valid identity YAML");
    carehub::identity::Matcher::new(&config).expect("valid identity config")
}

/// The EMR, the lab and the booking system on one national id, disagreeing.
fn three_systems() -> Vec<carehub::store::NewRecord> {
    let nid = serde_json::json!([{"system": "VN-CCCD", "value": "079085001234"}]);
    vec![
        store_record(
            "EMR",
            "1",
            serde_json::json!({"identifiers": nid, "names": [{"family": "Nguyễn", "given": ["Thị", "Lan"]}],
                "birth_date": "1985-03-07", "sex": "female",
                "telecom": [{"system": "phone", "value": "+84903000001"}]}),
        ),
        store_record(
            "LIS",
            "1",
            serde_json::json!({"identifiers": nid, "names": [{"family": "NGUYEN", "given": ["THI", "LAN"]}],
                "birth_date": "1985-07-03", "sex": "male"}),
        ),
        store_record(
            "BOOKING",
            "1",
            serde_json::json!({"identifiers": nid, "sex": "female",
                "telecom": [{"system": "phone", "value": "+84903000002"}]}),
        ),
    ]
}

async fn person(store: &carehub::store::Store, id: &str) -> serde_json::Value {
    let view = store.person(id).await.unwrap().expect("the person");
    serde_json::to_value(view).unwrap()
}

/// The systems whose value of `field` the golden record kept, per the provenance.
fn chosen(view: &serde_json::Value, field: &str) -> Vec<String> {
    view["provenance"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["field"] == field && p["chosen"] == true)
        .map(|p| p["source_system"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn golden_records_follow_the_configured_rules_and_change_when_the_rules_do() {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = fresh_store_url(Backend::default(), dir.path()).await else {
        return;
    };
    let config = carehub::config::StoreConfig {
        url,
        ..Default::default()
    };
    let trusted = rules(
        "survivorship:\n  sources: [EMR]\n  fields:\n    birth_date: source_priority\n    sex: most_frequent\n",
    );
    let store = carehub::store::Store::open(&config)
        .await
        .unwrap()
        .with_matcher(trusted);
    // The rules the store opened with are recorded: nothing to derive again.
    assert_eq!(store.rederive_golden_records().await.unwrap(), 0);
    let mut person_id = None;
    for record in three_systems() {
        let applied = store.apply_batch(&[record]).await.unwrap();
        person_id.get_or_insert(applied[0].person_id.clone().expect("a person"));
    }
    let id = person_id.unwrap();
    let view = person(&store, &id).await;
    let profile = &view["profile"];
    assert_eq!(
        profile["birth_date"], "1985-03-07",
        "the EMR is trusted for birth dates"
    );
    assert_eq!(profile["sex"], "female", "two of three systems say female");
    assert_eq!(
        profile["telecom"][0]["value"], "+84903000002",
        "the newest phone first"
    );
    assert_eq!(profile["telecom"].as_array().unwrap().len(), 2);
    assert_eq!(chosen(&view, "birth_date"), ["EMR"]);
    let mut sex = chosen(&view, "sex");
    sex.sort();
    assert_eq!(sex, ["BOOKING", "EMR"]);

    // The same store under the default rules: the newest birth date wins once derived again.
    let store = carehub::store::Store::open(&config).await.unwrap();
    assert_eq!(store.rederive_golden_records().await.unwrap(), 1);
    assert_eq!(store.rederive_golden_records().await.unwrap(), 0, "once");
    let view = person(&store, &id).await;
    assert_eq!(view["profile"]["birth_date"], "1985-07-03");
    assert_eq!(chosen(&view, "birth_date"), ["LIS"]);

    // A sparse update from the EMR restates the birth date and nothing else: its phone stays
    // in its source record, and the golden record keeps it.
    let update = store_record(
        "EMR",
        "2",
        serde_json::json!({"identifiers": [{"system": "VN-CCCD", "value": "079085001234"}],
            "birth_date": "1985-03-08"}),
    );
    store.apply_batch(&[update]).await.unwrap();
    let view = person(&store, &id).await;
    assert_eq!(view["profile"]["birth_date"], "1985-03-08");
    let emr = view["source_records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source_system"] == "EMR")
        .unwrap()["id"]
        .clone();
    let emr_phone = view["provenance"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["field"] == "telecom" && p["source_record_id"] == emr)
        .expect("the EMR's phone is still its statement");
    assert_eq!(emr_phone["value"][0]["value"], "+84903000001");
    let phones: Vec<&str> = view["profile"]["telecom"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["value"].as_str().unwrap())
        .collect();
    assert_eq!(phones, ["+84903000001", "+84903000002"], "the EMR spoke last");
}

#[tokio::test]
async fn a_merge_derives_the_survivor_by_the_rules_and_an_unmerge_gives_both_back() {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = fresh_store_url(Backend::default(), dir.path()).await else {
        return;
    };
    let config = carehub::config::StoreConfig {
        url,
        ..Default::default()
    };
    let store = carehub::store::Store::open(&config)
        .await
        .unwrap()
        .with_matcher(rules(
            "matching: false\nsurvivorship:\n  fields:\n    birth_date: {rule: source_priority, sources: [LIS]}\n",
        ));
    let lis = store_record(
        "LIS",
        "1",
        serde_json::json!({"identifiers": [{"system": "LAB", "value": "L-1"}], "birth_date": "1990-01-02"}),
    );
    let emr = store_record(
        "EMR",
        "1",
        serde_json::json!({"identifiers": [{"system": "HOSP", "value": "M-1"}], "birth_date": "1990-02-01",
            "names": [{"family": "Trần", "given": ["Minh"]}]}),
    );
    let lis_id = store.apply_batch(&[lis]).await.unwrap()[0]
        .person_id
        .clone()
        .unwrap();
    let emr_id = store.apply_batch(&[emr]).await.unwrap()[0]
        .person_id
        .clone()
        .unwrap();
    let before = (person(&store, &emr_id).await, person(&store, &lis_id).await);

    store.merge(&emr_id, &lis_id, "test").await.unwrap();
    let merged = person(&store, &emr_id).await;
    assert_eq!(
        merged["profile"]["birth_date"], "1990-01-02",
        "the lab is trusted for birth dates"
    );
    assert_eq!(merged["profile"]["names"][0]["family"], "Trần");
    assert_eq!(merged["profile"]["identifiers"].as_array().unwrap().len(), 2);

    store.unmerge(&emr_id).await.unwrap();
    let after = (person(&store, &emr_id).await, person(&store, &lis_id).await);
    for (b, a) in [(&before.0, &after.0), (&before.1, &after.1)] {
        for key in ["profile", "identifiers", "source_records", "provenance"] {
            assert_eq!(b[key], a[key], "{key} restored");
        }
    }
}
