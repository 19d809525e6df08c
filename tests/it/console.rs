//! The operator console as its users meet it over HTTP: a token pasted into the login form
//! opens a session (a cookie, a row in the store); every page asks for that session and a role
//! allowed on it, every form for the session's CSRF token; ops never gets a patient's name,
//! identifier, birth date or contact in the HTML; a review item is decided from the page.
//! (The same pages in a real browser: `console_browser.rs`.)

use carehub::api::{Role, tokens};

use crate::helpers::*;

/// A browser-like client: no redirects followed, cookies kept by hand.
pub struct Session {
    api: String,
    client: reqwest::Client,
    pub cookie: String,
    pub csrf: String,
}

fn plain_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of `name="…" value="…"` in a page (the first such input).
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_string())
}

/// `name=value` of cookie `name` in a response's `Set-Cookie` headers.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<(String, String)> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let pair = v.split(';').next().unwrap().to_string();
            (pair, v.to_string())
        })
}

impl Session {
    /// Logs in through the form with `token`; panics unless a session opens.
    pub async fn login(api: &str, token: &str) -> Session {
        let (status, s) = Session::try_login(api, token).await;
        assert_eq!(status, 303, "login with a valid token");
        s
    }

    /// Logs in through the form; the login's status and the session (empty when refused).
    pub async fn try_login(api: &str, token: &str) -> (u16, Session) {
        let client = plain_client();
        let form = client.get(format!("{api}/login")).send().await.unwrap();
        assert_eq!(form.status().as_u16(), 200);
        let (login_cookie, _) = set_cookie(&form, "carehub_login").expect("the login form's cookie");
        let html = form.text().await.unwrap();
        let form_secret = input_value(&html, "form").expect("the login form's token");
        let resp = client
            .post(format!("{api}/login"))
            .header("cookie", &login_cookie)
            .form(&[("token", token), ("form", &form_secret), ("next", "/")])
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let cookie = set_cookie(&resp, "carehub_session");
        let mut s = Session {
            api: api.to_string(),
            client,
            cookie: String::new(),
            csrf: String::new(),
        };
        if let Some((pair, attributes)) = cookie {
            assert!(attributes.contains("HttpOnly"), "{attributes}");
            assert!(attributes.contains("SameSite=Strict"), "{attributes}");
            assert!(attributes.contains("Path=/"), "{attributes}");
            s.cookie = pair;
            // Every page carries the session's CSRF token in its logout form.
            let (_, page) = s.get_any_page().await;
            s.csrf = input_value(&page, "csrf").unwrap_or_default();
        }
        (status, s)
    }

    async fn get_any_page(&self) -> (u16, String) {
        for p in ["/", "/patients", "/messages"] {
            let (code, body) = self.get(p).await;
            if code == 200 {
                return (code, body);
            }
        }
        (403, String::new())
    }

    /// GET a page as a browser asks for it.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .client
            .get(format!("{}{path}", self.api))
            .header("cookie", &self.cookie)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// POST a form (the session's CSRF token added when `with_csrf`); status and `Location`.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)], with_csrf: bool) -> (u16, String) {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        if with_csrf {
            form.push(("csrf", &self.csrf));
        }
        let resp = self
            .client
            .post(format!("{}{path}", self.api))
            .header("cookie", &self.cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, location)
    }
}

/// What the seeded patient's data looks like in any form it could take.
const PATIENT_DATA: [&str; 7] = [
    "Vuong",
    "MRN-CON-1",
    "0903123456",
    "84903123456",
    "19850307",
    "1985-03-07",
    "Main St",
];

async fn seeded() -> (TestHub, String) {
    let t = spawn_hub().await;
    let ack = send(t.mllp(), &adt("CON-1", "MRN-CON-1", "Vuong")).await;
    assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
    let person = t
        .hub
        .store
        .find_persons("MRN-CON-1", None)
        .await
        .unwrap()
        .pop()
        .expect("the person")
        .id;
    (t, person)
}

async fn token(t: &TestHub, role: Role) -> String {
    tokens::create(&t.hub.store, &format!("console {role}"), role, None)
        .await
        .unwrap()
        .1
}

#[tokio::test]
async fn an_admin_sees_the_message_counted_listed_and_opened_and_the_patient() {
    let (t, person) = seeded().await;
    let api = t.api();
    let admin = Session::login(&api, &token(&t, Role::Admin).await).await;
    assert!(!admin.csrf.is_empty(), "pages carry the session's CSRF token");

    let (code, overview) = admin.get("/").await;
    assert_eq!(code, 200, "{overview}");
    assert!(
        overview.contains(r#"data-connector="mllp""#),
        "the connector is listed"
    );
    assert!(
        overview.contains(r#"<td class="num received">1</td>"#),
        "the message is counted: {overview}"
    );
    assert!(
        overview.contains("<svg class=\"spark\""),
        "a per-minute chart is drawn"
    );

    let (code, list) = admin.get("/messages?connector=mllp").await;
    assert_eq!(code, 200);
    assert!(list.contains("CON-1"), "the message is listed by its control id");
    let id = messages_with(&t.hub.store, carehub::store::MessageStatus::Processed)
        .await
        .pop()
        .unwrap()
        .id;
    assert!(list.contains(&format!("href=\"/messages/{id}\"")));

    let (code, detail) = admin.get(&format!("/messages/{id}")).await;
    assert_eq!(code, 200);
    assert!(detail.contains("PID-5"), "the fields are shown as a tree");
    assert!(detail.contains(".1  Vuong"), "with their components");
    assert!(detail.contains("class=\"raw\""), "and the raw message for admin");

    let (code, found) = admin.get("/patients?identifier=MRN-CON-1").await;
    assert_eq!(code, 200);
    assert!(found.contains("Vuong, Lan Thi"), "{found}");
    let (code, profile) = admin.get(&format!("/patients/{person}")).await;
    assert_eq!(code, 200);
    assert!(profile.contains("MRN-CON-1"));
    assert!(
        profile.contains(&format!("/messages/{id}")),
        "provenance points at the message"
    );

    // The patient pages were audited with the person they showed.
    let rows = t
        .hub
        .store
        .audit_rows(&carehub::store::AuditFilter {
            person: Some(person.clone()),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.entry.action.as_str()).collect();
    assert!(actions.contains(&"GET /patients/{id}"), "{actions:?}");
    assert!(actions.contains(&"GET /patients"), "{actions:?}");
    assert!(actions.contains(&"GET /messages/{id}"), "{actions:?}");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn ops_pages_carry_no_patient_data() {
    let (t, person) = seeded().await;
    let api = t.api();
    let ops = Session::login(&api, &token(&t, Role::Ops).await).await;
    let id = messages_with(&t.hub.store, carehub::store::MessageStatus::Processed)
        .await
        .pop()
        .unwrap()
        .id;
    for path in [
        "/".to_string(),
        "/messages".to_string(),
        format!("/messages/{id}"),
        "/notifications".to_string(),
    ] {
        let (code, html) = ops.get(&path).await;
        assert_eq!(code, 200, "{path}");
        for secret in PATIENT_DATA {
            assert!(!html.contains(secret), "{path} as ops carries {secret:?}");
        }
        assert!(!html.contains(&person), "{path} as ops names the person's id");
    }
    let (_, nav) = ops.get("/").await;
    assert!(
        !nav.contains("href=\"/patients\""),
        "ops is not offered the patient pages"
    );
    for path in [
        "/patients?identifier=MRN-CON-1".to_string(),
        format!("/patients/{person}"),
        "/review".into(),
    ] {
        assert_eq!(ops.get(&path).await.0, 403, "{path}");
    }
    t.hub.shutdown().await;
}

#[tokio::test]
async fn every_console_page_asks_for_a_session_and_a_role_allowed_on_it() {
    let (t, person) = seeded().await;
    let api = t.api();
    let id = messages_with(&t.hub.store, carehub::store::MessageStatus::Processed)
        .await
        .pop()
        .unwrap()
        .id;
    let mut sessions = Vec::new();
    for role in Role::ALL {
        sessions.push((role, Session::login(&api, &token(&t, role).await).await));
    }
    let nobody = Session {
        api: api.clone(),
        client: plain_client(),
        cookie: "carehub_session=not-a-session".into(),
        csrf: String::new(),
    };
    let mut walked = 0;
    for (method, path, rule) in t.hub.api_routes.iter().filter(|r| r.2.console) {
        walked += 1;
        let url = path
            .replace("/patients/{id}", &format!("/patients/{person}"))
            .replace("/messages/{id}", &format!("/messages/{id}"))
            .replace("/review/{id}", "/review/999999");
        if method == "GET" {
            let (code, _) = nobody.get(&url).await;
            assert_eq!(code, 303, "GET {path} without a session goes to the login page");
        } else {
            let (code, _) = nobody.post(&url, &[], false).await;
            assert_eq!(code, 401, "POST {path} without a session");
        }
        for (role, s) in &sessions {
            if method == "GET" {
                let (code, html) = s.get(&url).await;
                let want = if rule.allows(*role) { 200 } else { 403 };
                assert_eq!(code, want, "GET {path} as {role}: {html}");
            } else if rule.allows(*role) {
                let (code, _) = s.post(&url, &[("merge", "no-such-person")], false).await;
                assert_eq!(code, 403, "POST {path} as {role} without the CSRF token");
                if path == "/logout" {
                    continue; // the session is needed for the next routes; logout has its own test
                }
                let (code, _) = s.post(&url, &[("merge", "no-such-person")], true).await;
                assert!(
                    code != 401 && code != 403 && code < 500,
                    "POST {path} as {role} with the CSRF token: {code}"
                );
            } else {
                let (code, _) = s.post(&url, &[], true).await;
                assert_eq!(code, 403, "POST {path} as {role}");
            }
        }
    }
    assert!(walked >= 12, "{walked} console routes");
    // The redirect brings the browser back to the page it asked for.
    let resp = plain_client()
        .get(format!("{api}/messages?status=error"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["location"],
        "/login?next=%2Fmessages%3Fstatus%3Derror"
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn sessions_end_at_logout_and_with_their_token() {
    let t = spawn_hub().await;
    let api = t.api();
    let (status, refused) = Session::try_login(&api, "chk_not-a-token").await;
    assert_eq!(status, 401);
    assert!(refused.cookie.is_empty(), "no session for an unknown token");

    let (record, nurse) = tokens::create(&t.hub.store, "nurse", Role::Clinician, None)
        .await
        .unwrap();
    let s = Session::login(&api, &nurse).await;
    assert_eq!(s.get("/patients").await.0, 200);
    // A second replica (or a restart) reads the same session from the store.
    assert_eq!(s.get("/patients").await.0, 200);
    assert_eq!(t.hub.store.revoke_token(&record.id).await.unwrap(), 1);
    assert_eq!(
        s.get("/patients").await.0,
        303,
        "a revoked token's session is over"
    );

    let (_, admin) = tokens::create(&t.hub.store, "admin", Role::Admin, None)
        .await
        .unwrap();
    let s = Session::login(&api, &admin).await;
    assert_eq!(s.get("/").await.0, 200);
    assert_eq!(
        s.post("/logout", &[], false).await.0,
        403,
        "logout is a form like any other"
    );
    let (code, location) = s.post("/logout", &[], true).await;
    assert_eq!((code, location.as_str()), (303, "/login"));
    assert_eq!(s.get("/").await.0, 303, "the session is gone");

    // A login form posted without its own cookie (from another site) opens nothing.
    let resp = plain_client()
        .post(format!("{api}/login"))
        .form(&[("token", admin.as_str()), ("form", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(set_cookie(&resp, "carehub_session").is_none());
    t.hub.shutdown().await;
}

#[tokio::test]
async fn pages_speak_the_browsers_language_or_the_one_picked() {
    let t = spawn_hub().await;
    let api = t.api();
    let s = Session::login(&api, &token(&t, Role::Admin).await).await;
    let page = |lang: &'static str| {
        let s = &s;
        async move {
            s.client
                .get(format!("{api}/", api = s.api))
                .header("cookie", &s.cookie)
                .header("accept-language", lang)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    assert!(page("vi-VN,vi;q=0.9").await.contains("Tổng quan"));
    assert!(page("ru").await.contains("Обзор"));
    assert!(page("zh-CN").await.contains("概览"));
    assert!(page("de").await.contains("Overview"));
    let resp = s
        .client
        .get(format!("{api}/language?set=vi&next=/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["location"], "/messages");
    let (lang, _) = set_cookie(&resp, "carehub_lang").expect("the language cookie");
    let html = s
        .client
        .get(format!("{api}/"))
        .header("cookie", format!("{}; {lang}", s.cookie))
        .header("accept-language", "ru")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Tổng quan"),
        "the picked language wins over the browser's"
    );
    // Empty lists say what to do.
    assert!(html.contains("connectors/*.yaml") || html.contains("data-connector"));
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_review_item_is_decided_from_the_page() {
    let t = spawn_hub().await;
    let api = t.api();
    let lan = crate::identity::adt_from(
        "EMR|HOSP",
        "E1",
        ("EMR-1", "HOSP"),
        "Nguyễn^Thị Lan",
        "19850307",
        "0903123456",
        "12 Lý Thường Kiệt^^Hà Nội",
    );
    let mai = crate::identity::adt_from(
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
    let item = t
        .hub
        .store
        .reviews("open", 10)
        .await
        .unwrap()
        .pop()
        .expect("a review item");

    let nurse = Session::login(&api, &token(&t, Role::Clinician).await).await;
    let (code, html) = nurse.get("/review").await;
    assert_eq!(code, 200);
    assert!(
        html.contains("Thị Lan") && html.contains("Thị Mai"),
        "both records side by side"
    );
    assert!(
        !html.contains(&format!("/review/{}/link", item.id)),
        "only admin decides"
    );

    let admin = Session::login(&api, &token(&t, Role::Admin).await).await;
    let (_, html) = admin.get("/review").await;
    assert!(html.contains(&format!("/review/{}/link", item.id)));
    assert!(
        html.contains("<table class=\"breakdown\">"),
        "with the score breakdown"
    );
    let (code, to) = admin
        .post(&format!("/review/{}/reject", item.id), &[], true)
        .await;
    assert_eq!((code, to.as_str()), (303, "/review"));
    assert!(t.hub.store.reviews("open", 10).await.unwrap().is_empty());
    let (_, html) = admin.get("/review").await;
    assert!(
        html.contains("No possible duplicate waits for a decision"),
        "{html}"
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn an_errored_message_is_found_and_reprocessed_from_its_page_after_the_mapping_fix() {
    use crate::reprocess::{ORU_FILE, adt, break_oru, copy_mappings, oru, restore};
    let dir = tempfile::tempdir().unwrap();
    let maps = copy_mappings(dir.path(), &[]);
    break_oru(&maps);
    let t = spawn_hub_with(HubOptions {
        mappings_dir: Some(maps.clone()),
        ..Default::default()
    })
    .await;
    let api = t.api();
    assert_eq!(
        field(&send(t.mllp(), &adt("CRX-1", "MRN-CRX")).await, "MSA", 1),
        "AA"
    );
    assert_eq!(
        field(&send(t.mllp(), &oru("CRX-2", "MRN-CRX")).await, "MSA", 1),
        "AE"
    );
    let id = messages_with(&t.hub.store, carehub::store::MessageStatus::Error)
        .await
        .pop()
        .expect("the refused result")
        .id;
    let admin = Session::login(&api, &token(&t, Role::Admin).await).await;

    // Found by type, control id, time and patient identifier; ops may not search by identifier.
    for query in [
        "type=ORU",
        "type=ORU%5ER01&status=error",
        "control_id=CRX-2",
        "received_from=2020-01-01&received_to=2100-01-01&type=ORU",
    ] {
        let (code, html) = admin.get(&format!("/messages?{query}")).await;
        assert_eq!(code, 200, "{query}");
        assert!(html.contains("CRX-2"), "{query} finds the result");
        assert!(!html.contains("CRX-1"), "{query} leaves the admission out");
    }
    // The identifier finds the patient's messages (the refused result names no one yet).
    let (code, html) = admin.get("/messages?patient_identifier=MRN-CRX").await;
    assert_eq!(code, 200);
    assert!(html.contains("CRX-1") && !html.contains("CRX-2"), "{html}");
    let (code, html) = admin.get("/messages?received_from=yesterday-ish").await;
    assert_eq!(code, 400, "a time that does not read is said so");
    assert!(html.contains("received_from"), "{html}");
    let ops = Session::login(&api, &token(&t, Role::Ops).await).await;
    assert_eq!(ops.get("/messages?patient_identifier=MRN-CRX").await.0, 403);
    let (_, html) = ops.get("/messages").await;
    assert!(
        !html.contains("patient_identifier"),
        "ops is not offered the identifier search"
    );
    assert!(!html.contains("/messages/reprocess"), "nor reprocess");

    // Still broken: a reprocess changes nothing; after the fix it is processed.
    let (_, page) = admin.get(&format!("/messages/{id}")).await;
    assert!(
        page.contains("id=\"reprocess-one\""),
        "the message page offers reprocess"
    );
    let id_text = id.to_string();
    let post = |dry: bool| {
        let admin = &admin;
        let id_text = id_text.clone();
        async move {
            let mut form = vec![
                ("scope", "one".to_string()),
                ("ids", id_text),
                ("csrf", admin.csrf.clone()),
            ];
            if dry {
                form.push(("dry_run", "1".into()));
            }
            let resp = admin
                .client
                .post(format!("{}/messages/reprocess", admin.api))
                .header("cookie", &admin.cookie)
                .form(&form)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let (code, html) = post(false).await;
    assert_eq!(code, 200, "{html}");
    assert!(
        html.contains(r#"<dd id="changed">0</dd>"#),
        "still broken: {html}"
    );
    restore(&maps, ORU_FILE);
    let (code, html) = post(true).await;
    assert_eq!(code, 200);
    assert!(
        html.contains(r#"<dd id="changed">1</dd>"#),
        "a dry run counts: {html}"
    );
    assert_eq!(
        t.hub.store.message(id).await.unwrap().unwrap().summary.status,
        "error",
        "and writes nothing"
    );
    let (code, html) = post(false).await;
    assert_eq!(code, 200);
    assert!(html.contains(r#"<dd id="changed">1</dd>"#), "{html}");
    assert_eq!(
        t.hub.store.message(id).await.unwrap().unwrap().summary.status,
        "processed"
    );

    // A filter reprocess with a broken file is refused with where and why.
    std::fs::write(
        maps.join(ORU_FILE),
        "name: hl7v2-oru-results\ninput: hl7v2\nresults: [\n",
    )
    .unwrap();
    let (code, _) = admin
        .post(
            "/messages/reprocess",
            &[("scope", "filter"), ("status", "error")],
            true,
        )
        .await;
    assert_eq!(code, 400);
    t.hub.shutdown().await;
}
