//! The operator console in a real browser: Chromium driven through chromedriver (WebDriver,
//! fantoccini). Log in with a token, send an HL7 message over MLLP, see it counted on the
//! overview and listed in the message log, open it, fix a mapping and reprocess a message it
//! refused, look the patient up, decide a review item, and check that an ops login sees no
//! patient name anywhere. A screenshot of each page is
//! kept under `target/console-screenshots/` for people to look at.
//!
//! Needs Debian's `chromium` and `chromium-driver`; skips loudly without them unless
//! `CAREHUB_REQUIRE_SERVICES=1` (`.ci/run` installs them).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use carehub::api::{Role, tokens};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::*;

/// The browser and its driver, or None (said loudly) when they are not installed.
fn browser_binaries() -> Option<(PathBuf, PathBuf)> {
    let find = |names: &[&str]| {
        names.iter().find_map(|n| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(n))
                    .find(|p| p.is_file())
            })
        })
    };
    let chromium = find(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = find(&["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ if required() => {
            panic!(
                "CAREHUB_REQUIRE_SERVICES=1 but chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
            )
        }
        _ => {
            eprintln!(
                "\n!!! SKIPPED: the console's browser test needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver) !!!\n"
            );
            None
        }
    }
}

/// Where the screenshots go: `<target>/console-screenshots/`.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot folder");
    dir
}

/// chromedriver on a free port; stopped when dropped.
struct Driver {
    /// Held for its `kill_on_drop`.
    _child: tokio::process::Child,
    url: String,
}

impl Driver {
    async fn start(binary: &PathBuf) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Driver { _child: child, url };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not listen on port {port}");
    }
}

async fn browser(driver: &Driver, chromium: &PathBuf) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--lang=en-US"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session through chromedriver")
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("a screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).expect("the screenshot is saved");
}

/// Logs in through the form: the browser is sent there from `/`, pastes the token, comes back.
async fn log_in(c: &Client, api: &str, token: &str, shot_name: Option<&str>) {
    c.goto(&format!("{api}/")).await.unwrap();
    let url = c.current_url().await.unwrap();
    assert_eq!(
        url.path(),
        "/login",
        "a browser without a session is sent to the login page"
    );
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    if let Some(name) = shot_name {
        shot(c, name).await;
    }
    c.find(Locator::Id("login")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("header nav")).await.unwrap();
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css)).await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn the_console_in_a_browser_counts_lists_opens_decides_and_hides_patients_from_ops() {
    let Some((chromium, chromedriver)) = browser_binaries() else {
        return;
    };
    let driver = Driver::start(&chromedriver).await;
    // The result mapping is broken: a lab result is refused until it is fixed.
    let dir = tempfile::tempdir().unwrap();
    let maps = crate::reprocess::copy_mappings(dir.path(), &[]);
    crate::reprocess::break_oru(&maps);
    let t = spawn_hub_with(HubOptions {
        mappings_dir: Some(maps.clone()),
        ..Default::default()
    })
    .await;
    let api = t.api();
    let admin = tokens::create(&t.hub.store, "browser admin", Role::Admin, None)
        .await
        .unwrap()
        .1;
    let ops = tokens::create(&t.hub.store, "browser ops", Role::Ops, None)
        .await
        .unwrap()
        .1;
    let c = browser(&driver, &chromium).await;

    log_in(&c, &api, &admin, Some("01-login")).await;
    assert_eq!(c.current_url().await.unwrap().path(), "/");
    shot(&c, "02-overview-empty").await;

    // A message over MLLP is counted on the overview…
    let ack = send(t.mllp(), &adt("BRW-1", "MRN-BRW-1", "Vuong")).await;
    assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
    c.goto(&format!("{api}/")).await.unwrap();
    assert_eq!(text_of(&c, r#"tr[data-connector="mllp"] td.received"#).await, "1");
    shot(&c, "03-overview").await;

    // …listed in the message log, and opened.
    c.find(Locator::LinkText("Messages"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let list = c.wait().for_element(Locator::Id("message-list")).await.unwrap();
    assert!(list.text().await.unwrap().contains("BRW-1"));
    shot(&c, "04-messages").await;
    c.find(Locator::Css("#message-list tbody a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Css(".tree")).await.unwrap();
    let page = c.source().await.unwrap();
    assert!(
        page.contains("PID-5") && page.contains("Vuong"),
        "the fields as a tree"
    );
    shot(&c, "05-message").await;

    // A result the broken mapping refused: found among the errors, reprocessed after the fix.
    let ack = send(t.mllp(), &crate::reprocess::oru("BRW-2", "MRN-BRW-1")).await;
    assert_eq!(field(&ack, "MSA", 1), "AE", "{ack}");
    c.goto(&format!("{api}/messages?status=error")).await.unwrap();
    let list = c.wait().for_element(Locator::Id("message-list")).await.unwrap();
    assert!(list.text().await.unwrap().contains("BRW-2"));
    shot(&c, "05b-messages-errors").await;
    c.find(Locator::Css("#message-list tbody a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("reprocess-one")).await.unwrap();
    shot(&c, "05c-message-error").await;
    crate::reprocess::restore(&maps, crate::reprocess::ORU_FILE);
    c.find(Locator::Id("reprocess-one"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let report = c
        .wait()
        .for_element(Locator::Id("reprocess-report"))
        .await
        .unwrap();
    assert!(
        report.text().await.unwrap().contains("processed 1"),
        "the result is processed now"
    );
    shot(&c, "05d-reprocessed").await;
    assert!(
        messages_with(&t.hub.store, carehub::store::MessageStatus::Error)
            .await
            .is_empty(),
        "nothing is left in error"
    );

    // The patient, found by identifier, with provenance and timeline.
    c.goto(&format!("{api}/patients?identifier=MRN-BRW-1"))
        .await
        .unwrap();
    shot(&c, "06-patients").await;
    c.find(Locator::Css("#patient-list tbody a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("timeline")).await.unwrap();
    assert!(c.source().await.unwrap().contains("MRN-BRW-1"));
    shot(&c, "07-patient").await;

    // Two look-alikes go to review; the admin decides from the page.
    for (app, control, id, name) in [
        ("EMR|HOSP", "E1", ("EMR-1", "HOSP"), "Nguyễn^Thị Lan"),
        ("LIS|LAB", "L1", ("LAB-9", "LAB"), "Nguyễn^Thị Mai"),
    ] {
        let msg = crate::identity::adt_from(
            app,
            control,
            id,
            name,
            "19850307",
            "0903123456",
            "12 Lý Thường Kiệt^^Hà Nội",
        );
        send(t.mllp(), &msg).await;
    }
    let item = t
        .hub
        .store
        .reviews("open", 10)
        .await
        .unwrap()
        .pop()
        .expect("a review item");
    c.find(Locator::LinkText("Review"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Css(".pair")).await.unwrap();
    shot(&c, "08-review").await;
    c.find(Locator::Id(&format!("link-{}", item.id)))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Css("p.empty")).await.unwrap();
    assert!(
        t.hub.store.reviews("open", 10).await.unwrap().is_empty(),
        "the item is decided"
    );
    assert_eq!(t.hub.store.reviews("linked", 10).await.unwrap().len(), 1);

    c.find(Locator::LinkText("Notifications"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("failed")).await.unwrap();
    shot(&c, "09-notifications").await;

    // The same overview on a tablet, in Vietnamese.
    c.set_window_size(820, 1180).await.unwrap();
    c.goto(&format!("{api}/language?set=vi&next=/")).await.unwrap();
    assert!(c.source().await.unwrap().contains("Tổng quan"));
    shot(&c, "10-overview-tablet-vi").await;
    c.goto(&format!("{api}/language?set=en&next=/")).await.unwrap();
    c.set_window_size(1280, 900).await.unwrap();

    c.find(Locator::Id("logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("token")).await.unwrap();

    // Ops: every page it may open, and none with a patient's name.
    log_in(&c, &api, &ops, None).await;
    let message = messages_with(&t.hub.store, carehub::store::MessageStatus::Processed)
        .await
        .first()
        .unwrap()
        .id;
    for (path, name) in [
        ("/".to_string(), "11-ops-overview"),
        ("/messages".to_string(), "12-ops-messages"),
        (format!("/messages/{message}"), "13-ops-message"),
        ("/notifications".to_string(), "14-ops-notifications"),
    ] {
        c.goto(&format!("{api}{path}")).await.unwrap();
        let page = c.source().await.unwrap();
        for name_part in ["Vuong", "Nguyễn", "Thị Lan", "Thị Mai", "MRN-BRW-1", "0903123456"] {
            assert!(!page.contains(name_part), "{path} shows ops {name_part:?}");
        }
        shot(&c, name).await;
    }
    c.goto(&format!("{api}/patients?identifier=MRN-BRW-1"))
        .await
        .unwrap();
    assert!(
        !c.source().await.unwrap().contains("Vuong"),
        "the patient pages refuse ops"
    );

    c.close().await.unwrap();
    drop(driver);
    t.hub.shutdown().await;
}
