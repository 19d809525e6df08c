//! Identity: records without a shared identifier find their person; look-alikes go to review;
//! a merge and its unmerge. Runs on the suite's backend (SQLite, or PostgreSQL in CI).

use crate::helpers::*;

/// An ADT^A04 from `app^facility` with one identifier and the demographics given.
pub(crate) fn adt_from(
    app: &str,
    control_id: &str,
    (id, system): (&str, &str),
    name: &str,
    dob: &str,
    phone: &str,
    street: &str,
) -> String {
    format!(
        "MSH|^~\\&|{app}|CAREHUB|CLINIC|20261120083000+0700||ADT^A04^ADT_A01|{control_id}|P|2.5.1\r\
         EVN|A04|20261120083000\r\
         PID|1||{id}^^^{system}^MR||{name}^^^^L||{dob}|F|||{street}||{phone}^PRN^CP\r"
    )
}

async fn person_of(api: &str, identifier: &str) -> serde_json::Value {
    let (code, body) = get_json(&format!("{api}/api/v1/patients?identifier={identifier}")).await;
    assert_eq!(code, 200);
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "one person holds {identifier}");
    items[0].clone()
}

async fn post(url: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
    let client = crate::helpers::http();
    let mut req = client.post(url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("API answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn the_lab_spelling_of_a_patient_links_to_the_emr_patient_with_its_score() {
    let t = spawn_hub().await;
    let api = t.api();
    let emr = adt_from(
        "EMR|HOSP",
        "E1",
        ("EMR-1", "HOSP"),
        "Nguyễn^Thị Lan",
        "19850307",
        "0903123456",
        "12 Lý Thường Kiệt^^Hà Nội",
    );
    let lis = adt_from(
        "LIS|LAB",
        "L1",
        ("LAB-77", "LAB"),
        "NGUYEN^THI LAN",
        "19850307",
        "0903123465",
        "",
    );
    assert_eq!(field(&send(t.mllp(), &emr).await, "MSA", 1), "AA");
    assert_eq!(field(&send(t.mllp(), &lis).await, "MSA", 1), "AA");

    let a = person_of(&api, "EMR-1").await;
    let b = person_of(&api, "LAB-77").await;
    assert_eq!(a["id"], b["id"], "one person for both systems");
    let records = b["source_records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    let matched = records
        .iter()
        .find(|r| r["link_method"] == "match")
        .expect("a record linked by matching");
    assert!(matched["link_score"].as_f64().unwrap() >= 15.0, "{matched}");
    let fields = matched["link_detail"]["fields"]
        .as_array()
        .expect("a score breakdown");
    assert!(fields.iter().any(|f| f["field"] == "birth_date"), "{matched}");

    // A different person with the same family name and birth year stays apart.
    let other = adt_from(
        "LIS|LAB",
        "L2",
        ("LAB-78", "LAB"),
        "Nguyễn^Văn Hùng",
        "19851111",
        "0911000222",
        "",
    );
    send(t.mllp(), &other).await;
    assert_ne!(person_of(&api, "LAB-78").await["id"], a["id"]);
    t.hub.shutdown().await;
}

#[tokio::test]
async fn match_answers_what_ingest_would_do_and_stores_nothing() {
    let t = spawn_hub().await;
    let api = t.api();
    let emr = adt_from(
        "EMR|HOSP",
        "E1",
        ("EMR-1", "HOSP"),
        "Nguyễn^Thị Lan",
        "19850307",
        "0903123456",
        "12 Lý Thường Kiệt^^Hà Nội",
    );
    assert_eq!(field(&send(t.mllp(), &emr).await, "MSA", 1), "AA");
    let lan = person_of(&api, "EMR-1").await;
    let url = format!("{api}/api/v1/match");

    // The lab's spelling, a typo in the phone: the EMR's person, with the breakdown.
    let (code, m) = post(
        &url,
        Some(
            serde_json::json!({"names": [{"family": "NGUYEN", "given": ["THI", "LAN"]}],
            "birth_date": "1985-03-07", "telecom": [{"system": "phone", "value": "+84903123465"}]}),
        ),
    )
    .await;
    assert_eq!(code, 200, "{m}");
    assert_eq!(m["decision"], "match", "{m}");
    assert_eq!(m["person_id"], lan["id"]);
    assert!(m["score"].as_f64().unwrap() >= 15.0, "{m}");
    assert!(
        m["breakdown"]["fields"].as_array().is_some_and(|f| !f.is_empty()),
        "{m}"
    );

    // A known identifier decides alone.
    let (_, m) = post(
        &url,
        Some(serde_json::json!({"identifiers": [{"system": "HOSP", "value": "EMR-1"}]})),
    )
    .await;
    assert_eq!(
        (m["decision"].as_str(), &m["person_id"]),
        (Some("identifier"), &lan["id"])
    );

    // A twin sharing everything but the given name: a human would be asked.
    let (_, m) = post(
        &url,
        Some(
            serde_json::json!({"names": [{"family": "Nguyễn", "given": ["Thị", "Mai"]}],
            "birth_date": "1985-03-07", "sex": "female",
            "telecom": [{"system": "phone", "value": "+84903123456"}],
            "addresses": [{"lines": ["12 Lý Thường Kiệt"], "city": "Hà Nội"}]}),
        ),
    )
    .await;
    assert_eq!(m["decision"], "review", "{m}");
    assert_eq!(m["candidate_id"], lan["id"]);
    assert!(m.get("person_id").is_none(), "{m}");

    // Someone else entirely.
    let (_, m) = post(
        &url,
        Some(serde_json::json!({"names": [{"family": "Иванов", "given": ["Пётр"]}], "birth_date": "1960-01-02"})),
    )
    .await;
    assert_eq!(m["decision"], "new", "{m}");

    let (code, m) = post(&url, Some(serde_json::json!({}))).await;
    assert_eq!(code, 400, "{m}");
    assert!(m["error"].as_str().unwrap().contains("nothing to match"), "{m}");

    // Nothing was stored: one message, no review, the person as it was.
    let (_, messages) = get_json(&format!("{api}/api/v1/messages")).await;
    assert_eq!(messages["items"].as_array().unwrap().len(), 1, "{messages}");
    let (_, review) = get_json(&format!("{api}/api/v1/review")).await;
    assert_eq!(review["items"].as_array().unwrap().len(), 0, "{review}");
    let (_, after) = get_json(&format!("{api}/api/v1/patients/{}", lan["id"].as_str().unwrap())).await;
    assert_eq!(after["source_records"], lan["source_records"]);
    assert_eq!(after["profile"], lan["profile"]);
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_look_alike_goes_to_review_and_link_then_unmerge_restores_both_persons() {
    let t = spawn_hub().await;
    let api = t.api();
    let lan = adt_from(
        "EMR|HOSP",
        "E1",
        ("EMR-1", "HOSP"),
        "Nguyễn^Thị Lan",
        "19850307",
        "0903123456",
        "12 Lý Thường Kiệt^^Hà Nội",
    );
    // A twin: same family, birth date, phone and address; another given name.
    let mai = adt_from(
        "LIS|LAB",
        "L1",
        ("LAB-9", "LAB"),
        "Nguyễn^Thị Mai",
        "19850307",
        "0903123456",
        "12 Lý Thường Kiệt^^Hà Nội",
    );
    send(t.mllp(), &lan).await;
    send(t.mllp(), &mai).await;
    let lan_before = person_of(&api, "EMR-1").await;
    let mai_before = person_of(&api, "LAB-9").await;
    assert_ne!(lan_before["id"], mai_before["id"], "never linked without a human");

    let (code, review) = get_json(&format!("{api}/api/v1/review")).await;
    assert_eq!(code, 200);
    let items = review["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{review}");
    let item = &items[0];
    assert_eq!(item["person_id"], mai_before["id"]);
    assert_eq!(item["candidate_id"], lan_before["id"]);
    assert!(
        item["breakdown"]["vetoed_by"].is_string(),
        "the breakdown says why it was not linked: {item}"
    );

    let (code, _) = post(&format!("{api}/api/v1/review/{}/link", item["id"]), None).await;
    assert_eq!(code, 200);
    let (code, _) = post(&format!("{api}/api/v1/review/{}/reject", item["id"]), None).await;
    assert_eq!(code, 409, "a decided item cannot be decided again");
    let merged = person_of(&api, "LAB-9").await;
    assert_eq!(
        merged["id"], lan_before["id"],
        "the twin's identifier now leads to the survivor"
    );
    assert_eq!(merged["source_records"].as_array().unwrap().len(), 2);
    let (_, old) = get_json(&format!(
        "{api}/api/v1/patients/{}",
        mai_before["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(old["merged_into"], lan_before["id"]);

    let (code, _) = post(
        &format!(
            "{api}/api/v1/patients/{}/unmerge",
            lan_before["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(code, 200);
    let lan_after = person_of(&api, "EMR-1").await;
    let mai_after = person_of(&api, "LAB-9").await;
    for (before, after) in [(&lan_before, &lan_after), (&mai_before, &mai_after)] {
        for key in ["id", "profile", "identifiers", "source_records", "provenance"] {
            assert_eq!(before[key], after[key], "{key} restored");
        }
        assert!(after.get("merged_into").is_none());
    }
    let (code, _) = post(
        &format!(
            "{api}/api/v1/patients/{}/unmerge",
            lan_before["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(code, 404, "nothing left to unmerge");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn linkage_eval_scores_a_labelled_csv() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("people.csv");
    std::fs::write(
        &csv,
        "id,given,family,dob,phone,truth\n\
         1,Lan,Nguyễn,1985-03-07,+84903123456,a\n\
         2,LAN,NGUYEN,1985-03-07,+84903123456,a\n\
         3,Hùng,Trần,1970-01-02,+84911000222,b\n\
         4,Mai,Lê,1999-12-31,+84988777666,c\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_carehub"))
        .args(["linkage-eval", csv.to_str().unwrap(), "--truth", "truth"])
        .args([
            "--field",
            "given=given",
            "--field",
            "family=family",
            "--field",
            "birth_date=dob",
            "--field",
            "phone=phone",
        ])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let figures: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(figures["records"], 4);
    assert_eq!(figures["true_pairs"], 1);
    assert_eq!(figures["precision"], 1.0);
    assert_eq!(figures["recall"], 1.0);

    let bad = tokio::process::Command::new(env!("CARGO_BIN_EXE_carehub"))
        .args(["linkage-eval", csv.to_str().unwrap(), "--truth", "nope"])
        .output()
        .await
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no column nope"));
}

#[tokio::test]
async fn only_the_merge_on_top_can_be_undone() {
    let t = spawn_hub().await;
    let api = t.api();
    let people = [
        ("A1", ("MRN-A", "HOSP"), "Phạm^Văn An", "19700101", "0911111111"),
        ("B1", ("MRN-B", "HOSP"), "Trần^Thị Bình", "19800202", "0922222222"),
        ("C1", ("MRN-C", "HOSP"), "Lê^Văn Cường", "19900303", "0933333333"),
    ];
    for (cid, id, name, dob, phone) in people {
        send(t.mllp(), &adt_from("EMR|HOSP", cid, id, name, dob, phone, "")).await;
    }
    let a = person_of(&api, "MRN-A").await;
    let b = person_of(&api, "MRN-B").await;
    let c = person_of(&api, "MRN-C").await;
    let id = |p: &serde_json::Value| p["id"].as_str().unwrap().to_string();
    let merge = |into: String, other: String| {
        let api = api.clone();
        async move {
            post(
                &format!("{api}/api/v1/patients/{into}/merge"),
                Some(serde_json::json!({"merge": other})),
            )
            .await
            .0
        }
    };
    assert_eq!(merge(id(&a), id(&b)).await, 200);
    assert_eq!(merge(id(&a), id(&b)).await, 409, "B is merged already");
    assert_eq!(merge(id(&c), id(&a)).await, 200);
    assert_eq!(
        person_of(&api, "MRN-B").await["id"],
        c["id"],
        "B's identifier follows both merges"
    );

    let unmerge = |p: String| {
        let api = api.clone();
        async move { post(&format!("{api}/api/v1/patients/{p}/unmerge"), None).await.0 }
    };
    assert_eq!(unmerge(id(&a)).await, 409, "A itself was merged into C since");
    assert_eq!(unmerge(id(&c)).await, 200);
    assert_eq!(unmerge(id(&a)).await, 200);
    for (mrn, before) in [("MRN-A", &a), ("MRN-B", &b), ("MRN-C", &c)] {
        let after = person_of(&api, mrn).await;
        for key in ["id", "profile", "identifiers", "source_records"] {
            assert_eq!(before[key], after[key], "{mrn}: {key} restored");
        }
    }
    t.hub.shutdown().await;
}

/// A record as the store receives it from `system`, with one identifier.
pub(crate) fn store_record(
    system: &str,
    control: &str,
    patch: serde_json::Value,
) -> carehub::store::NewRecord {
    carehub::store::NewRecord {
        connector: "test".into(),
        origin: None,
        received_at: "2026-11-20T00:00:00Z".into(),
        sender: Some(system.into()),
        control_id: Some(control.into()),
        message_type: Some("ADT^A04".into()),
        charset: None,
        content_hash: format!("hash-{system}-{control}"),
        raw: b"MSH|".to_vec(),
        disposition: carehub::store::Disposition::Apply {
            mapping: "m".into(),
            source_system: system.into(),
            patch: Some(serde_json::from_value(patch).expect("a patch")),
            records: Vec::new(),
            merge: None,
            warnings: vec![],
        },
        cursor: None,
        match_input: None,
        reprocess: None,
    }
}

#[tokio::test]
async fn records_stored_while_matching_was_off_are_found_once_it_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = fresh_store_url(Backend::default(), dir.path()).await else {
        return;
    };
    let config = carehub::config::StoreConfig {
        url,
        ..Default::default()
    };
    let emr = store_record(
        "EMR",
        "1",
        serde_json::json!({"identifiers": [{"system": "HOSP", "value": "MRN-1"}],
            "names": [{"family": "Nguyễn", "given": ["Thị", "Lan"]}], "birth_date": "1985-03-07", "sex": "female",
            "telecom": [{"system": "phone", "value": "+84903123456"}]}),
    );
    let off = carehub::identity::IdentityConfig {
        matching: false,
        ..Default::default()
    };
    let store = carehub::store::Store::open(&config)
        .await
        .unwrap()
        .with_matcher(carehub::identity::Matcher::new(&off).unwrap());
    let first = store.apply_batch(&[emr]).await.unwrap();

    let store = carehub::store::Store::open(&config).await.unwrap();
    assert_eq!(
        store.backfill_match_keys().await.unwrap(),
        1,
        "the one record is indexed"
    );
    assert_eq!(store.backfill_match_keys().await.unwrap(), 0, "and only once");
    let lis = store_record(
        "LIS",
        "1",
        serde_json::json!({"identifiers": [{"system": "LAB", "value": "L-77"}],
            "names": [{"family": "NGUYEN", "given": ["THI LAN"]}], "birth_date": "1985-03-07", "sex": "female",
            "telecom": [{"system": "phone", "value": "+84903123456"}]}),
    );
    let second = store.apply_batch(&[lis]).await.unwrap();
    assert_eq!(
        second[0].person_id, first[0].person_id,
        "the lab record links to the stored person"
    );
    assert_eq!(
        store.backfill_match_keys().await.unwrap(),
        0,
        "records stored with matching on are indexed already"
    );
}

/// `carehub estimate-model` learns m/u from a store's records and prints YAML the hub accepts.
#[tokio::test]
async fn estimate_model_prints_probabilities_learnt_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let Some((store, url)) = fresh_store(Backend::default(), dir.path()).await else {
        return;
    };
    const FAMILY: [&str; 9] = [
        "Nguyễn",
        "Trần",
        "Lê",
        "Phạm",
        "Hoàng",
        "Иванов",
        "Smith",
        "王",
        "Đặng",
    ];
    const GIVEN: [&str; 11] = [
        "Lan", "Minh", "Anh", "Hùng", "Thảo", "Dũng", "Mai", "Quân", "Linh", "Олег", "Emma",
    ];
    let mut records = Vec::new();
    for n in 0..300usize {
        // A third of the persons come twice (the lab's copy with a typo in the given name).
        for copy in 0..(1 + usize::from(n % 3 == 0)) {
            let given = GIVEN[(n / 9) % 11];
            let given = if copy == 1 {
                format!("{given}h")
            } else {
                given.to_string()
            };
            let (system, sex) = (["EMR", "LIS"][copy], ["female", "male"][n % 2]);
            records.push(store_record(
                if copy == 0 { "EMR" } else { "LIS" },
                &format!("{n}-{copy}"),
                serde_json::json!({"identifiers": [{"system": system, "value": format!("{n}")}],
                    "names": [{"family": FAMILY[n % 9], "given": [given]}],
                    "birth_date": format!("{}-{:02}-{:02}", 1940 + n % 60, 1 + n % 12, 1 + n % 28),
                    "sex": sex,
                    "telecom": [{"system": "phone", "value": format!("+8490{:07}", n * 7919 % 10_000_000)}]}),
            ));
        }
    }
    for chunk in records.chunks(100) {
        store.apply_batch(chunk).await.unwrap();
    }
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(
        dir.path().join("carehub.yaml"),
        format!("store:\n  url: \"{url}\"\nconnectors_dir: {0}\nmappings_dir: {0}\nnotifications:\n  enabled: false\n  rules_dir: {0}\n", empty.display()),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_carehub"))
        .args(["estimate-model", "--config"])
        .arg(dir.path().join("carehub.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("from {} stored person records", records.len())),
        "{text}"
    );
    #[derive(serde::Deserialize)]
    struct IdentityOnly {
        identity: carehub::identity::IdentityConfig,
    }
    let learnt = serde_saphyr::from_str::<IdentityOnly>(&text)
        .expect("valid YAML")
        .identity;
    carehub::identity::Matcher::new(&learnt).expect("a model the hub accepts");
    let default = carehub::identity::ModelConfig::default();
    assert_eq!(learnt.model.given.m.len(), default.given.m.len());
    assert_ne!(
        learnt.model.birth_date.u, default.birth_date.u,
        "u is measured on the store's own pairs"
    );
}
