//! FHIR pull benchmark: a `type: fhir` connector pulls N resources (default 100,000) from a
//! local FHIR server (the integration tests' `tests/it/fhir_server.rs`, in this process) in
//! pages of 500 into a hub on the SQLite store, through the whole path: HTTP, JSON, the FHIR
//! mappings, identity by identifier, the message log, cursors committed with each page.
//!
//!     cargo bench --bench fhir_pull
//!     BENCH_RESOURCES=20000 BENCH_PAGE=500 cargo bench --bench fhir_pull
//!     BENCH_MATCHING=off cargo bench --bench fhir_pull   # identifiers only, no comparisons
//!
//! Resources are Patients (70%) and Observations of them (30%). Prints resources/s and the
//! process's peak RSS (VmHWM; it includes the server holding every resource in memory).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[allow(dead_code)]
#[path = "support/proc_cpu.rs"]
mod proc_cpu;

#[allow(dead_code)]
#[path = "../tests/it/fhir_server.rs"]
mod fhir_server;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// CPU seconds spent so far by this process's threads named `name` (Linux), the writer's
/// share being what bounds the rate when the other threads wait for it.
fn thread_cpu_secs(name: &str) -> Option<f64> {
    proc_cpu::named_cpu_seconds("/proc/self/task", name)
}

fn main() {
    let n = env_usize("BENCH_RESOURCES", 100_000);
    let page = env_usize("BENCH_PAGE", 500);
    let matching = std::env::var("BENCH_MATCHING").map_or(true, |v| v != "off");
    let patients = n * 7 / 10;
    let mut resources = Vec::with_capacity(n);
    const FAMILY: [&str; 4] = ["Nguyễn", "Trần", "Lê", "Phạm"];
    for i in 0..patients {
        let family = FAMILY[i % 4];
        resources.push(json!({"resourceType": "Patient", "id": format!("p{i}"),
            "identifier": [{"system": "urn:oid:1.2.704.1", "value": format!("B-{i}")}],
            "name": [{"family": family, "given": [format!("Lan{i}")]}],
            "gender": if i % 2 == 0 { "female" } else { "male" },
            "birthDate": format!("{}-{:02}-{:02}", 1940 + i % 70, 1 + i % 12, 1 + i % 28),
            "telecom": [{"system": "phone", "value": format!("+8490{:07}", i % 10_000_000)}]}));
    }
    for i in 0..(n - patients) {
        resources.push(
            json!({"resourceType": "Observation", "id": format!("o{i}"), "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0", "display": "Glucose"}]},
            "subject": {"reference": format!("Patient/p{}", i % patients.max(1))},
            "effectiveDateTime": "2024-07-01T08:00:00+07:00",
            "valueQuantity": {"value": 4.0 + (i % 40) as f64 / 10.0, "unit": "mmol/L"}}),
        );
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let server = fhir_server::FhirServer::start(resources).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("connectors")).unwrap();
        std::fs::create_dir_all(root.join("rules")).unwrap();
        std::fs::write(
            root.join("carehub.yaml"),
            format!(
                "store:\n  url: \"sqlite://{}\"\napi:\n  enabled: false\nconnectors_dir: {}\nmappings_dir: {}\nnotifications: {{enabled: false, rules_dir: {}}}\nidentity: {{matching: {matching}}}\n",
                root.join("bench.db").display(),
                root.join("connectors").display(),
                concat!(env!("CARGO_MANIFEST_DIR"), "/mappings"),
                root.join("rules").display(),
            ),
        )
        .unwrap();
        std::fs::write(
            root.join("connectors/pull.yaml"),
            format!(
                "type: fhir\nname: bench\nbase_url: {}\nresources:\n  - type: Patient\n  - type: Observation\npage_size: {page}\n",
                server.base_url()
            ),
        )
        .unwrap();
        let settings = carehub::config::load_with_env(&root.join("carehub.yaml"), &[]).expect("config");
        // The writer thread ends with the run: its CPU time is sampled while it lives.
        let writer_ms = Arc::new(AtomicU64::new(0));
        let sampled = writer_ms.clone();
        std::thread::spawn(move || {
            loop {
                if let Some(secs) = thread_cpu_secs("carehub-writer") {
                    sampled.fetch_max((secs * 1000.0) as u64, Ordering::Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        let started = Instant::now();
        let summary = carehub::app::pull_once(settings, "bench").await.expect("run");
        let secs = started.elapsed().as_secs_f64();
        let writer_cpu = writer_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        assert_eq!(summary.failure, None);
        println!(
            "fhir_pull: resources={} pages={} applied={} page_size={page} matching={matching} elapsed={secs:.2}s rate={:.0} resources/s peak_rss={:.0}MiB writer_cpu={:.1}µs/resource",
            summary.resources,
            summary.pages,
            summary.processed,
            summary.resources as f64 / secs,
            peak_rss_mib().unwrap_or(f64::NAN),
            writer_cpu * 1e6 / summary.resources.max(1) as f64,
        );
    });
}
