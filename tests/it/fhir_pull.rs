//! FHIR R4 pull (`type: fhir`) against the local test server (`fhir_server.rs`): incremental
//! runs, re-reading changes nothing, 429 with Retry-After, an outage that degrades and then
//! recovers, OAuth2 tokens refreshed on expiry, and `carehub pull --once`. Runs on the suite's
//! backend.

use std::path::Path;

use serde_json::{Value, json};

use crate::fhir_server::FhirServer;
use crate::helpers::*;

fn patient(id: &str, mrn: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "identifier": [{"system": "urn:oid:1.2.704.77", "value": mrn}],
           "name": [{"family": family, "given": ["An"]}], "gender": "male", "birthDate": "1980-01-01"})
}

fn observation(id: &str, patient: &str, value: f64) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}]},
           "subject": {"reference": format!("Patient/{patient}")},
           "effectiveDateTime": "2024-07-01T08:00:00Z", "valueQuantity": {"value": value, "unit": "mmol/L"}})
}

fn sample() -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..7 {
        out.push(patient(
            &format!("p{i}"),
            &format!("PULL-{i}"),
            &format!("Family{i}"),
        ));
    }
    for i in 0..5 {
        out.push(observation(
            &format!("o{i}"),
            &format!("p{i}"),
            5.0 + f64::from(i),
        ));
    }
    out
}

/// A hub configuration in `dir` with one pull connector per `(name, extra yaml)`.
async fn settings(
    dir: &Path,
    server: &FhirServer,
    connectors: &[(&str, &str)],
) -> Option<carehub::config::Settings> {
    // One store per test: the URL (a fresh PostgreSQL schema, or the SQLite file) is made once.
    let remembered = dir.join("store-url");
    let store = match std::fs::read_to_string(&remembered) {
        Ok(url) => url,
        Err(_) => {
            let url = fresh_store_url(Backend::default(), dir).await?;
            std::fs::write(&remembered, &url).unwrap();
            url
        }
    };
    std::fs::create_dir_all(dir.join("connectors")).unwrap();
    std::fs::write(
        dir.join("carehub.yaml"),
        format!(
            "store:\n  url: \"{store}\"\napi:\n  enabled: false\nconnectors_dir: {}\nmappings_dir: {}\ntimezone: Asia/Ho_Chi_Minh\nnotifications:\n  rules_dir: {}\n",
            dir.join("connectors").display(),
            mappings_dir().display(),
            dir.join("no-rules").display()
        ),
    )
    .unwrap();
    for (name, extra) in connectors {
        std::fs::write(
            dir.join(format!("connectors/{name}.yaml")),
            format!(
                "type: fhir\nname: {name}\nbase_url: {}\nsource_system: TEST-EHR\nresources:\n  - type: Patient\n  - type: Observation\npage_size: 3\ninitial_backoff_ms: 50\nmax_backoff_secs: 2\n{extra}",
                server.base_url()
            ),
        )
        .unwrap();
    }
    Some(carehub::config::load_with_env(&dir.join("carehub.yaml"), &[]).expect("test config valid"))
}

async fn pull(
    dir: &Path,
    server: &FhirServer,
    name: &str,
    connectors: &[(&str, &str)],
) -> carehub::sources::fhir::RunSummary {
    let s = settings(dir, server, connectors).await.expect("backend");
    carehub::app::pull_once(s, name)
        .await
        .expect("the run is recorded")
}

async fn store_of(dir: &Path, server: &FhirServer) -> carehub::store::Store {
    let s = settings(dir, server, &[]).await.expect("backend");
    carehub::store::Store::open_existing(&s.hub.store).await.unwrap()
}

#[tokio::test]
async fn incremental_runs_read_only_what_changed_and_rereading_changes_nothing() {
    let server = FhirServer::start(sample()).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let both = [("ehr", ""), ("ehr-copy", "")];

    let first = pull(dir, &server, "ehr", &both).await;
    assert_eq!(first.failure, None);
    assert_eq!((first.resources, first.processed), (12, 12), "{first:?}");
    assert_eq!(
        first.pages,
        3 + 2,
        "pages of 3: Patients 7 → 3, Observations 5 → 2"
    );
    assert!(first.cursors_after.contains_key("Patient") && first.cursors_after.contains_key("Observation"));
    // The Observations found their Patients (pulled earlier in the run) through the store.
    let store = store_of(dir, &server).await;
    let found = store.find_persons("PULL-0", None).await.unwrap();
    assert_eq!(found.len(), 1);

    // One Patient changes: the next run applies that new version and nothing else (the one at
    // the cursor's instant is read again, as a duplicate).
    server.put(patient("p3", "PULL-3", "Renamed"));
    let second = pull(dir, &server, "ehr", &both).await;
    assert_eq!(second.processed, 1, "{second:?}");
    assert!(second.resources <= 3, "only the tail is read again: {second:?}");
    let p3 = store.find_persons("PULL-3", None).await.unwrap();
    assert_eq!(p3[0].profile["names"][0]["family"], "Renamed");

    // A connector that starts from nothing re-reads every page: all duplicates, nothing applied
    // twice — what a crash between a page and its cursor would do.
    let again = pull(dir, &server, "ehr-copy", &both).await;
    assert_eq!((again.processed, again.duplicates), (0, 12), "{again:?}");
    assert_eq!(
        store
            .timeline(&found[0].id, Some("result"), 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // The run history is kept and shown with the connector.
    let runs = store.runs("ehr", 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].outcome, "ok");
    assert_eq!(runs[1].resources, 12);
    let listed = store.connectors().await.unwrap();
    let ehr = listed.iter().find(|c| c.name == "ehr").expect("listed");
    assert_eq!(ehr.state, "running");
    assert_eq!(ehr.last_run.as_ref().map(|r| r.id), Some(runs[0].id));
}

#[tokio::test]
async fn a_rate_limited_server_is_waited_for_and_an_outage_degrades_then_recovers() {
    let server = FhirServer::start(sample()).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let conn = [("ehr", "max_attempts: 3\n")];

    server.fail_next(2, 429, Some(1));
    let started = std::time::Instant::now();
    let run = pull(dir, &server, "ehr", &conn).await;
    assert_eq!(run.failure, None, "{run:?}");
    assert_eq!(run.processed, 12);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "Retry-After: 1 was honoured twice"
    );
    assert_eq!(server.stats().searches_failed, 2);

    // The server fails more often than the connector tries: the run fails, the connector is
    // degraded with the reason, the cursor stays.
    server.put(patient("p1", "PULL-1", "Changed"));
    server.fail_next(10, 503, None);
    let failed = pull(dir, &server, "ehr", &conn).await;
    assert!(
        failed.failure.as_deref().is_some_and(|f| f.contains("503")),
        "{failed:?}"
    );
    let store = store_of(dir, &server).await;
    let ehr = store
        .connectors()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name == "ehr")
        .unwrap();
    assert_eq!(ehr.state, "degraded");
    assert!(ehr.detail.unwrap_or_default().contains("503"));
    assert_eq!(ehr.last_run.unwrap().outcome, "failed");

    // Service is back: the next run resumes from the cursor and picks up the change.
    server.fail_next(0, 503, None);
    let recovered = pull(dir, &server, "ehr", &conn).await;
    assert_eq!(recovered.failure, None, "{recovered:?}");
    assert_eq!(recovered.processed, 1);
    let ehr = store
        .connectors()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name == "ehr")
        .unwrap();
    assert_eq!(ehr.state, "running");
}

#[tokio::test]
async fn a_run_cut_off_mid_way_counts_every_page_it_stored_and_the_next_run_reads_the_rest() {
    let server = FhirServer::start(sample()).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let conn = [("ehr", "max_attempts: 2\n")];

    // Patients come in pages of 3: the first two pages are served, then the server fails. The
    // second page is still being stored when the third fails to come.
    server.fail_after(2, 10, 503, None);
    let cut = pull(dir, &server, "ehr", &conn).await;
    assert!(
        cut.failure.as_deref().is_some_and(|f| f.contains("503")),
        "{cut:?}"
    );
    assert_eq!(
        (cut.resources, cut.processed),
        (6, 6),
        "both stored pages are counted: {cut:?}"
    );
    assert!(cut.cursors_after.contains_key("Patient"), "{cut:?}");
    let store = store_of(dir, &server).await;
    let runs = store.runs("ehr", 10).await.unwrap();
    assert_eq!((runs[0].outcome.as_str(), runs[0].resources), ("failed", 6));

    // Back in service: the next run reads from the cursor on, and every resource is applied
    // exactly once over the two runs.
    server.fail_next(0, 503, None);
    let rest = pull(dir, &server, "ehr", &conn).await;
    assert_eq!(rest.failure, None, "{rest:?}");
    assert_eq!(
        rest.cursors_before.get("Patient"),
        cut.cursors_after.get("Patient"),
        "it starts where the cut-off run's stored pages end"
    );
    // The last Patient, the one at the cursor's instant again (a duplicate), five Observations.
    assert!(
        rest.resources <= 7,
        "the stored pages are not read again: {rest:?}"
    );
    assert_eq!(cut.processed + rest.processed, 12, "{rest:?}");
}

#[tokio::test]
async fn oauth2_tokens_are_cached_and_fetched_again_when_they_expire() {
    let server = FhirServer::start(sample()).await;
    server.require_oauth("carehub", "s3cret", 3600);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let auth = format!(
        "auth:\n  type: oauth2_client_credentials\n  token_url: {}\n  client_id: carehub\n  client_secret: s3cret\n",
        server.token_url()
    );
    let conn = [("ehr", auth.as_str())];
    let run = pull(dir, &server, "ehr", &conn).await;
    assert_eq!(run.failure, None, "{run:?}");
    assert_eq!(server.stats().tokens_issued, 1, "one token for the whole run");

    server.expire_tokens();
    server.put(patient("p2", "PULL-2", "Later"));
    let again = pull(dir, &server, "ehr", &conn).await;
    assert_eq!(again.failure, None, "{again:?}");
    assert_eq!(again.processed, 1);

    // Wrong credentials: the run fails and says why, without the secret.
    let bad = auth.replace("s3cret", "wrong");
    let failed = pull(dir, &server, "ehr", &[("ehr", bad.as_str())]).await;
    let why = failed.failure.unwrap_or_default();
    assert!(why.contains("token endpoint") && !why.contains("wrong"), "{why}");
}

#[test]
fn carehub_pull_once_runs_a_connector_from_the_command_line() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(FhirServer::start(sample()));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    if rt.block_on(settings(dir, &server, &[("ehr", "")])).is_none() {
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_carehub"))
        .args(["pull", "ehr", "--once", "--config"])
        .arg(dir.join("carehub.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("12 resources: 12 applied"), "{stdout}");
    assert!(
        stdout.contains("Patient") && stdout.contains("cursor - ->"),
        "{stdout}"
    );
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_carehub"))
        .args(["pull", "nope", "--once", "--config"])
        .arg(dir.join("carehub.yaml"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no FHIR pull connector named nope"));
}

/// The three example connectors shipped in `connectors/` (EMR, LIS, scheduling), pointed at
/// local test servers loaded with the corpus's resources, each with its own authentication.
#[tokio::test]
async fn the_shipped_example_connectors_pull_the_corpus() {
    let Some(corpus) = corpus_dir() else { return };
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("connectors");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut servers = Vec::new();
    let mut files = Vec::new();
    for (file, types) in [
        ("ehr-fhir", &["Patient", "Encounter", "Condition"][..]),
        ("lis-fhir", &["DiagnosticReport", "Observation"][..]),
        ("scheduling-fhir", &["Appointment"][..]),
    ] {
        let server = FhirServer::start(FhirServer::corpus_resources(&corpus, types)).await;
        let yaml = std::fs::read_to_string(shipped.join(format!("{file}.yaml"))).unwrap();
        let port = |url: &str| {
            url.rsplit(':')
                .next()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_string()
        };
        let here = port(&server.base_url());
        let yaml = yaml
            .replace("enabled: false", "enabled: true")
            .replace(":8090/", &format!(":{here}/"))
            .replace(":8091/", &format!(":{here}/"))
            .replace(":8092/", &format!(":{here}/"));
        match file {
            "ehr-fhir" => server.require_oauth("carehub", "change-me", 600),
            "scheduling-fhir" => server.require_basic("carehub", "change-me"),
            _ => {}
        }
        files.push((file, yaml));
        servers.push(server);
    }
    let _ = settings(dir, &servers[0], &[]).await.expect("backend");
    for (file, yaml) in &files {
        std::fs::write(dir.join(format!("connectors/{file}.yaml")), yaml).unwrap();
    }
    let mut totals = Vec::new();
    for (file, _) in &files {
        let s = carehub::config::load_with_env(&dir.join("carehub.yaml"), &[])
            .expect("the shipped examples validate");
        let run = carehub::app::pull_once(s, file).await.expect("recorded");
        assert_eq!(run.failure, None, "{file}: {run:?}");
        assert!(run.processed > 0, "{file}: {run:?}");
        totals.push((file, run.resources, run.processed, run.errors));
    }
    eprintln!("shipped example connectors against the corpus: {totals:?}");
}

#[tokio::test]
async fn smart_backend_services_sign_a_client_assertion() {
    use base64::Engine;
    use ring::signature::KeyPair;
    let rng = ring::rand::SystemRandom::new();
    let alg = &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING;
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let server = FhirServer::start(sample()).await;
    server.require_smart("carehub-backend", pair.public_key().as_ref(), 300);
    let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
    let pem: String = b64
        .as_bytes()
        .chunks(64)
        .map(|c| format!("      {}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    let auth = format!(
        "auth:\n  type: smart_backend\n  token_url: {}\n  client_id: carehub-backend\n  key_id: k1\n  private_key: |\n      -----BEGIN PRIVATE KEY-----\n{pem}      -----END PRIVATE KEY-----\n",
        server.token_url()
    );
    let tmp = tempfile::tempdir().unwrap();
    let run = pull(tmp.path(), &server, "ehr", &[("ehr", auth.as_str())]).await;
    assert_eq!(run.failure, None, "{run:?}");
    assert_eq!(run.processed, 12);
    assert_eq!(server.stats().tokens_issued, 1);

    // Another key's assertion is refused by the server: the run fails at the token endpoint.
    let other = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let other_pair = ring::signature::EcdsaKeyPair::from_pkcs8(alg, other.as_ref(), &rng).unwrap();
    server.require_smart("carehub-backend", other_pair.public_key().as_ref(), 300);
    server.put(patient("p4", "PULL-4", "Again"));
    let refused = pull(tmp.path(), &server, "ehr", &[("ehr", auth.as_str())]).await;
    assert!(refused.failure.unwrap_or_default().contains("token endpoint"));
}

/// Inside `carehub run`, a pull connector runs on its schedule (every second here), and its
/// runs show in the API.
#[tokio::test]
async fn the_hub_runs_pull_connectors_on_their_schedule() {
    let server = FhirServer::start(sample()).await;
    let yaml = format!(
        "type: fhir\nname: ehr\nbase_url: {}\nschedule: \"* * * * * *\"\nresources:\n  - type: Patient\n  - type: Observation\n",
        server.base_url()
    );
    let t = spawn_hub_with(HubOptions {
        connectors: vec![("ehr.yaml".into(), yaml)],
        ..Default::default()
    })
    .await;
    let api = t.api();
    eventually("a scheduled run applied the resources", || {
        let api = api.clone();
        async move {
            let (_, body) = get_json(&format!("{api}/api/v1/patients?identifier=PULL-6")).await;
            !body["items"].as_array().is_some_and(|a| a.is_empty())
        }
    })
    .await;
    let (_, connectors) = get_json(&format!("{api}/api/v1/connectors")).await;
    let ehr = connectors["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ehr")
        .cloned()
        .expect("listed");
    assert_eq!(ehr["kind"], "fhir");
    assert!(ehr["last_run"]["id"].as_i64().is_some(), "{ehr}");
    t.hub.shutdown().await;
}

/// With `history: true` the connector reads `Type/_history`: new versions and deletions. A
/// deleted Observation's result is marked entered-in-error (kept, not erased); reading the
/// history again changes nothing.
#[tokio::test]
async fn history_pulls_see_deletions() {
    let server = FhirServer::start(sample()).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let conn = [(
        "ehr",
        "resources:\n  - type: Patient\n  - type: Observation\n    history: true\n",
    )];
    // `resources` given twice would be a YAML error: write the connector without the default list.
    let settings_yaml = |server: &FhirServer| {
        format!(
            "type: fhir\nname: ehr\nbase_url: {}\nsource_system: TEST-EHR\npage_size: 2\ninitial_backoff_ms: 50\n{}",
            server.base_url(),
            conn[0].1
        )
    };
    let _ = settings(dir, &server, &[]).await.expect("backend");
    std::fs::write(dir.join("connectors/ehr.yaml"), settings_yaml(&server)).unwrap();
    let load = || carehub::config::load_with_env(&dir.join("carehub.yaml"), &[]).expect("valid");
    let first = carehub::app::pull_once(load(), "ehr").await.unwrap();
    assert_eq!(
        (first.failure.as_deref(), first.processed),
        (None, 12),
        "{first:?}"
    );

    server.put(observation("o1", "p1", 9.9));
    server.delete("Observation", "o2");
    let second = carehub::app::pull_once(load(), "ehr").await.unwrap();
    assert_eq!(second.failure, None, "{second:?}");
    assert_eq!(
        second.processed, 2,
        "the new version and the deletion: {second:?}"
    );

    let store = store_of(dir, &server).await;
    let result_of = |mrn: &'static str| {
        let store = store.clone();
        async move {
            let person = store.find_persons(mrn, None).await.unwrap().remove(0);
            store
                .timeline(&person.id, Some("result"), 10)
                .await
                .unwrap()
                .remove(0)
        }
    };
    assert_eq!(result_of("PULL-1").await.record["numeric"], 9.9);
    let deleted = result_of("PULL-2").await;
    assert_eq!(deleted.status.as_deref(), Some("entered-in-error"));
    assert_eq!(deleted.record["numeric"], 7.0, "kept, not erased");

    let again = carehub::app::pull_once(load(), "ehr").await.unwrap();
    assert_eq!(again.processed, 0, "{again:?}");
}
