//! The HTTP API as a clinic's app and ops see it.

use crate::helpers::*;

#[tokio::test]
async fn health_patients_messages_and_connectors() {
    let t = spawn_hub().await;
    let api = t.api();
    let (code, body) = get_json(&format!("{api}/healthz")).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("ok")));

    send(t.mllp(), &adt("API-1", "MRN-API", "Doan")).await;
    send(t.mllp(), "garbage").await;

    let (code, body) = get_json(&format!("{api}/api/v1/patients?identifier=MRN-API")).await;
    assert_eq!(code, 200);
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let id = items[0]["id"].as_str().unwrap().to_string();

    let (code, person) = get_json(&format!("{api}/api/v1/patients/{id}")).await;
    assert_eq!(code, 200);
    assert_eq!(person["profile"]["names"][0]["family"], "Doan");
    let prov = person["provenance"].as_array().unwrap();
    assert!(
        prov.iter()
            .any(|p| p["field"] == "birth_date" && p["source_system"] == "EMR^CLINIC"),
        "{person}"
    );

    let (code, _) = get_json(&format!("{api}/api/v1/patients/no-such-id")).await;
    assert_eq!(code, 404);
    let (code, _) = get_json(&format!("{api}/api/v1/patients")).await;
    assert_eq!(code, 400);

    let (code, errors) = get_json(&format!("{api}/api/v1/messages?status=error")).await;
    assert_eq!(code, 200);
    let items = errors["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["status"], "error");
    let (code, _) = get_json(&format!("{api}/api/v1/messages?status=bogus")).await;
    assert_eq!(code, 400);

    let (code, conns) = get_json(&format!("{api}/api/v1/connectors")).await;
    assert_eq!(code, 200);
    let mllp = conns["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "mllp")
        .unwrap()
        .clone();
    assert_eq!(mllp["received"], 2);
    assert_eq!(mllp["processed"], 1);
    assert_eq!(mllp["errors"], 1);
    assert!(mllp["last_message_at"].is_string());
    t.hub.shutdown().await;
}
