//! Channel adapters against servers that answer like the providers: a local axum server per
//! HTTP adapter that records each request (checked against the provider's documentation after
//! the send), a real SMTP server (Python's aiosmtpd) for email, and a temp folder for `file`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use carehub::channels::{AddressKind, Channel, ChannelConfig, Outbound, SendError, Sent};
use carehub::config::Document;
use serde_json::{Value, json};

use crate::helpers;

/// One request as the fake provider saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
    fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

/// What the fake provider answers next.
#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Value,
    delay: Duration,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body,
        delay: Duration::ZERO,
    }
}

/// A local HTTP server standing in for a provider.
#[derive(Clone)]
struct FakeProvider {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    answer: Arc<Mutex<Answer>>,
}

impl FakeProvider {
    async fn start(first: Answer) -> FakeProvider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let provider = FakeProvider {
            url,
            seen: Arc::default(),
            answer: Arc::new(Mutex::new(first)),
        };
        let state = provider.clone();
        let app =
            axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { state.reply(method, uri, headers, body).await }
            });
        tokio::spawn(async move { axum::serve(listener, app).await });
        provider
    }

    async fn reply(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        self.seen.lock().unwrap().push(Seen {
            method,
            path: uri.path().to_string(),
            headers,
            body: body.to_vec(),
        });
        let a = self.answer.lock().unwrap().clone();
        tokio::time::sleep(a.delay).await;
        let mut response = (StatusCode::from_u16(a.status).unwrap(), axum::Json(a.body)).into_response();
        for (k, v) in a.headers {
            response.headers_mut().insert(k, v.parse().unwrap());
        }
        response
    }

    fn answer_next(&self, a: Answer) {
        *self.answer.lock().unwrap() = a;
    }

    fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request reached the provider")
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// Builds `channels.<name>` of a YAML text, which must have no problem.
fn channel(name: &str, yaml: &str) -> Channel {
    let doc = Document::parse("test.yaml", yaml).expect("valid YAML");
    let (config, problems) =
        ChannelConfig::from_value(&doc, &doc.value["channels"][name], &format!("channels.{name}"));
    assert!(problems.is_empty(), "{problems:?}");
    Channel::build(name, &config.expect("a config"), helpers::http()).expect("the channel builds")
}

fn outbound(id: &str, to: &str) -> Outbound {
    Outbound {
        id: id.into(),
        to: to.into(),
        subject: Some("Kết quả xét nghiệm".into()),
        body: "Здравствуйте! Ваш результат готов. 您的结果已出。".into(),
        language: "ru".into(),
    }
}

/// The failure answers every HTTP provider shares: 429 with Retry-After, 500, 400 and a server
/// slower than the channel's 1 s timeout. `error` is the provider's error body.
async fn assert_status_mapping(provider: &FakeProvider, channel: &Channel, to: &str, error: Value) {
    let m = outbound("n-fail", to);
    provider.answer_next(Answer {
        headers: vec![("retry-after", "7".into())],
        ..answer(429, error.clone())
    });
    match channel.send(&m).await {
        Err(SendError::Retry { after, .. }) => assert_eq!(after, Some(Duration::from_secs(7))),
        other => panic!("429 should be retried after 7 s, got {other:?}"),
    }
    provider.answer_next(answer(500, error.clone()));
    assert!(
        matches!(channel.send(&m).await, Err(SendError::Retry { .. })),
        "500 is retried"
    );
    provider.answer_next(answer(400, error.clone()));
    match channel.send(&m).await {
        Err(SendError::Permanent { reason }) => {
            assert!(reason.starts_with("HTTP 400"), "{reason}");
            assert!(
                !reason.contains(to.trim_start_matches('+')),
                "no address in reasons: {reason}"
            );
            assert!(
                !reason.contains("Здравствуйте"),
                "no message text in reasons: {reason}"
            );
        }
        other => panic!("400 is permanent, got {other:?}"),
    }
    provider.answer_next(Answer {
        delay: Duration::from_millis(2500),
        ..answer(200, json!({}))
    });
    assert!(
        matches!(channel.send(&m).await, Err(SendError::Unknown { .. })),
        "a timeout after the request went out leaves the outcome unknown"
    );
}

/// A URL on which nothing listens.
async fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

#[tokio::test]
async fn twilio_sends_a_form_with_basic_auth_and_the_idempotency_token() {
    let provider = FakeProvider::start(answer(
        201,
        json!({"sid": "SM0123456789abcdef", "status": "queued", "to": "+84901234567"}),
    ))
    .await;
    let yaml = format!(
        "channels:\n  sms:\n    type: twilio\n    base_url: {}\n    account_sid: AC42\n    auth_token: tok3n\n    \
         from: \"+15005550006\"\n    status_callback_url: https://hub.example.org/api/v1/webhooks/sms\n    \
         timeout_secs: 1\n    rate_per_sec: 100\n",
        provider.url
    );
    let sms = channel("sms", &yaml);
    assert_eq!((sms.kind(), sms.address()), ("twilio", AddressKind::Phone));

    let sent = sms.send(&outbound("n-1", "+84901234567")).await.unwrap();
    assert_eq!(
        sent,
        Sent {
            provider_id: Some("SM0123456789abcdef".into()),
            delivered: false
        }
    );
    let req = provider.last();
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.path, "/2010-04-01/Accounts/AC42/Messages.json");
    assert_eq!(
        req.header("authorization"),
        Some("Basic QUM0Mjp0b2szbg=="),
        "AC42:tok3n"
    );
    assert_eq!(
        req.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(req.header("i-twilio-idempotency-token"), Some("n-1"));
    let form = req.form();
    let field = |k: &str| form.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    assert_eq!(field("To"), Some("+84901234567"));
    assert_eq!(field("From"), Some("+15005550006"));
    assert_eq!(
        field("Body"),
        Some("Здравствуйте! Ваш результат готов. 您的结果已出。")
    );
    assert_eq!(
        field("StatusCallback"),
        Some("https://hub.example.org/api/v1/webhooks/sms")
    );
    assert_eq!(field("MessagingServiceSid"), None);

    let error = json!({"code": 21211, "message": "The 'To' number +84901234567 is not a valid phone number.",
                       "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400});
    assert_status_mapping(&provider, &sms, "+84901234567", error).await;
}

#[tokio::test]
async fn twilio_can_send_through_a_messaging_service_and_a_dead_endpoint_is_retried() {
    let provider = FakeProvider::start(answer(201, json!({"sid": "SM1"}))).await;
    let yaml = format!(
        "channels:\n  sms:\n    type: twilio\n    base_url: {}\n    account_sid: AC42\n    auth_token: t\n    \
         messaging_service_sid: MG9\n",
        provider.url
    );
    channel("sms", &yaml)
        .send(&outbound("n-2", "+84901234567"))
        .await
        .unwrap();
    let form = provider.last().form();
    assert!(
        form.contains(&("MessagingServiceSid".into(), "MG9".into())),
        "{form:?}"
    );
    assert!(!form.iter().any(|(k, _)| k == "From"), "{form:?}");

    let yaml = format!(
        "channels:\n  sms:\n    type: twilio\n    base_url: {}\n    account_sid: AC42\n    auth_token: t\n    from: \"+1\"\n",
        closed_url().await
    );
    let dead = channel("sms", &yaml).send(&outbound("n-3", "+84901234567")).await;
    assert!(matches!(dead, Err(SendError::Retry { .. })), "{dead:?}");
}

#[tokio::test]
async fn sms_webhook_posts_signed_json_with_bearer_token_and_idempotency_key() {
    let provider = FakeProvider::start(answer(202, json!({"id": "gw-77"}))).await;
    let yaml = format!(
        "channels:\n  local_sms:\n    type: sms_webhook\n    url: {}/api/send\n    token: gw-token\n    \
         signing_secret: gw-secret\n    timeout_secs: 1\n    rate_per_sec: 100\n",
        provider.url
    );
    let sms = channel("local_sms", &yaml);
    let sent = sms.send(&outbound("n-10", "+84901234567")).await.unwrap();
    assert_eq!(sent.provider_id.as_deref(), Some("gw-77"));

    let req = provider.last();
    assert_eq!(
        (req.method.clone(), req.path.as_str()),
        (Method::POST, "/api/send")
    );
    assert_eq!(req.header("authorization"), Some("Bearer gw-token"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("idempotency-key"), Some("n-10"));
    assert_eq!(
        req.json(),
        json!({"id": "n-10", "to": "+84901234567", "body": "Здравствуйте! Ваш результат готов. 您的结果已出。", "language": "ru"})
    );
    // The gateway checks the signature with the shared secret, independently of our code.
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"gw-secret");
    let expected: String = ring::hmac::sign(&key, &req.body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        req.header("x-carehub-signature"),
        Some(format!("sha256={expected}").as_str())
    );

    assert_status_mapping(
        &provider,
        &sms,
        "+84901234567",
        json!({"error": "bad number +84901234567"}),
    )
    .await;
}

#[tokio::test]
async fn the_rate_limit_spaces_sends() {
    let provider = FakeProvider::start(answer(200, json!({"id": "x"}))).await;
    let yaml = format!(
        "channels:\n  slow_sms:\n    type: sms_webhook\n    url: {}/send\n    rate_per_sec: 4\n",
        provider.url
    );
    let sms = Arc::new(channel("slow_sms", &yaml));
    let start = std::time::Instant::now();
    // 12 sends at once: a burst of 4, then one every 250 ms.
    let sends: Vec<_> = (0..12)
        .map(|i| {
            let sms = sms.clone();
            tokio::spawn(async move { sms.send(&outbound(&format!("n-{i}"), "+84901234567")).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let early = provider.count();
    for s in sends {
        s.await.unwrap().unwrap();
    }
    assert!(
        early <= 7,
        "by 0.5 s at most 4 + 2 sends may have gone out, saw {early}"
    );
    assert_eq!(provider.count(), 12);
    assert!(
        start.elapsed() >= Duration::from_millis(1900),
        "8 sends after the burst take 2 s at 4/s, took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn telegram_sends_to_the_bot_api_and_reads_its_errors() {
    let provider = FakeProvider::start(answer(
        200,
        json!({"ok": true, "result": {"message_id": 321, "chat": {"id": 4242}, "text": "…"}}),
    ))
    .await;
    let yaml = format!(
        "channels:\n  tg:\n    type: telegram\n    base_url: {}\n    bot_token: \"123:ABC\"\n    timeout_secs: 1\n    rate_per_sec: 100\n",
        provider.url
    );
    let tg = channel("tg", &yaml);
    assert_eq!(tg.address(), AddressKind::Messenger("telegram"));
    let sent = tg.send(&outbound("n-20", "4242")).await.unwrap();
    assert_eq!(sent.provider_id.as_deref(), Some("321"));
    let req = provider.last();
    assert_eq!(
        (req.method.clone(), req.path.as_str()),
        (Method::POST, "/bot123:ABC/sendMessage")
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.json(),
        json!({"chat_id": "4242", "text": "Здравствуйте! Ваш результат готов. 您的结果已出。"})
    );

    // The Bot API says how long to wait in the body, not in a header.
    provider.answer_next(answer(
        429,
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 12",
               "parameters": {"retry_after": 12}}),
    ));
    match tg.send(&outbound("n-21", "4242")).await {
        Err(SendError::Retry { after, .. }) => assert_eq!(after, Some(Duration::from_secs(12))),
        other => panic!("{other:?}"),
    }
    provider.answer_next(answer(
        403,
        json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
    ));
    match tg.send(&outbound("n-22", "4242")).await {
        Err(SendError::Permanent { reason }) => assert!(reason.contains("bot was blocked"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let error = json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"});
    assert_status_mapping(&provider, &tg, "4242", error).await;
}

#[tokio::test]
async fn zalo_sends_a_cs_message_and_reads_error_codes() {
    let provider = FakeProvider::start(answer(
        200,
        json!({"error": 0, "message": "Success", "data": {"message_id": "zm-1", "user_id": "2468"}}),
    ))
    .await;
    let yaml = format!(
        "channels:\n  zalo:\n    type: zalo\n    base_url: {}\n    access_token: oa-token\n    timeout_secs: 1\n    rate_per_sec: 100\n",
        provider.url
    );
    let zalo = channel("zalo", &yaml);
    assert_eq!(zalo.address(), AddressKind::Messenger("zalo"));
    let sent = zalo.send(&outbound("n-30", "2468")).await.unwrap();
    assert_eq!(sent.provider_id.as_deref(), Some("zm-1"));
    let req = provider.last();
    assert_eq!(
        (req.method.clone(), req.path.as_str()),
        (Method::POST, "/v3.0/oa/message/cs")
    );
    assert_eq!(req.header("access_token"), Some("oa-token"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.json(),
        json!({"recipient": {"user_id": "2468"}, "message": {"text": "Здравствуйте! Ваш результат готов. 您的结果已出。"}})
    );

    // Zalo answers HTTP 200 with an error code.
    provider.answer_next(answer(
        200,
        json!({"error": -213, "message": "User has not followed the OA"}),
    ));
    assert!(matches!(
        zalo.send(&outbound("n-31", "2468")).await,
        Err(SendError::Permanent { .. })
    ));
    provider.answer_next(answer(
        200,
        json!({"error": -32, "message": "Request quota exceeded"}),
    ));
    assert!(matches!(
        zalo.send(&outbound("n-32", "2468")).await,
        Err(SendError::Retry { .. })
    ));
    assert_status_mapping(
        &provider,
        &zalo,
        "2468",
        json!({"error": -201, "message": "invalid"}),
    )
    .await;
}

#[tokio::test]
async fn whatsapp_sends_text_and_templates_to_the_cloud_api() {
    let provider = FakeProvider::start(answer(
        200,
        json!({"messaging_product": "whatsapp", "contacts": [{"input": "84901234567", "wa_id": "84901234567"}],
               "messages": [{"id": "wamid.HBgL"}]}),
    ))
    .await;
    let yaml = format!(
        "channels:\n  wa:\n    type: whatsapp\n    base_url: {}\n    phone_number_id: \"1055\"\n    access_token: wa-token\n    \
         timeout_secs: 1\n    rate_per_sec: 100\n",
        provider.url
    );
    let wa = channel("wa", &yaml);
    assert_eq!(wa.address(), AddressKind::Phone);
    let sent = wa.send(&outbound("n-40", "+84901234567")).await.unwrap();
    assert_eq!(sent.provider_id.as_deref(), Some("wamid.HBgL"));
    let req = provider.last();
    assert_eq!(
        (req.method.clone(), req.path.as_str()),
        (Method::POST, "/v21.0/1055/messages")
    );
    assert_eq!(req.header("authorization"), Some("Bearer wa-token"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.json(),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "84901234567",
               "type": "text", "text": {"body": "Здравствуйте! Ваш результат готов. 您的结果已出。"}})
    );
    assert!(
        matches!(
            wa.send(&outbound("n-41", "not a phone")).await,
            Err(SendError::Permanent { .. })
        ),
        "an address that is not E.164 is refused before any request"
    );
    let error =
        json!({"error": {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100}});
    assert_status_mapping(&provider, &wa, "+84901234567", error).await;

    let yaml = format!(
        "channels:\n  wa_t:\n    type: whatsapp\n    base_url: {}\n    phone_number_id: \"1055\"\n    access_token: t\n    \
         api_version: v20.0\n    template:\n      name: result_ready\n      languages: {{zh: zh_CN}}\n",
        provider.url
    );
    provider.answer_next(answer(200, json!({"messages": [{"id": "wamid.T"}]})));
    let m = Outbound {
        language: "zh".into(),
        body: "您的结果\n已出".into(),
        ..outbound("n-42", "+84901234567")
    };
    channel("wa_t", &yaml).send(&m).await.unwrap();
    let req = provider.last();
    assert_eq!(req.path, "/v20.0/1055/messages");
    assert_eq!(
        req.json()["template"],
        json!({"name": "result_ready", "language": {"code": "zh_CN"},
               "components": [{"type": "body", "parameters": [{"type": "text", "text": "您的结果 已出"}]}]})
    );
}

#[tokio::test]
async fn the_file_channel_writes_one_file_per_notification_id() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "channels:\n  outbox:\n    type: file\n    dir: {}\n",
        dir.path().display()
    );
    let outbox = channel("outbox", &yaml);
    assert_eq!(outbox.address(), AddressKind::Any);
    let sent = outbox
        .send(&outbound("n-50", "patient@example.org"))
        .await
        .unwrap();
    assert_eq!(
        sent,
        Sent {
            provider_id: Some("n-50.txt".into()),
            delivered: true
        }
    );
    let path = dir.path().join("outbox").join("n-50.txt");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "To: patient@example.org\nSubject: Kết quả xét nghiệm\nLanguage: ru\nId: n-50\n\n\
         Здравствуйте! Ваш результат готов. 您的结果已出。\n"
    );

    let again = Outbound {
        body: "second try".into(),
        ..outbound("n-50", "patient@example.org")
    };
    outbox.send(&again).await.unwrap();
    let files = helpers::files_under(dir.path(), &|_| true);
    assert_eq!(
        files,
        vec![path.clone()],
        "the same id twice is one file, no temp file left"
    );
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .ends_with("\n\nsecond try\n")
    );
    assert_eq!(
        outbox.webhook(&HeaderMap::new(), b"{}"),
        Err("this channel has no webhook".to_string())
    );
}

/// aiosmtpd's handler: keeps each message as `<n>.json`, decoded by Python's own e-mail
/// package; a recipient starting with `busy` gets 451, one starting with `reject` gets 550.
const SMTP_SINK: &str = r#"
import email, email.policy, json, os

class Sink:
    def __init__(self, folder):
        self.folder = folder

    @classmethod
    def from_cli(cls, parser, *args):
        return cls(*args)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("busy"):
            return "451 4.3.0 Try again later"
        if address.startswith("reject"):
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        found = {
            "mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg["From"]), "to": str(msg["To"]), "subject": str(msg["Subject"]),
            "message_id": str(msg["Message-ID"]), "body": msg.get_body(("plain",)).get_content(),
        }
        n = len([f for f in os.listdir(self.folder) if f.endswith(".json")])
        tmp = os.path.join(self.folder, ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(found, f, ensure_ascii=False)
        os.rename(tmp, os.path.join(self.folder, f"{n}.json"))
        return "250 2.0.0 Accepted"
"#;

/// Starts aiosmtpd on a free port with [`SMTP_SINK`]; `None` (with a loud message) when
/// aiosmtpd is not installed and not required.
async fn start_smtp(dir: &std::path::Path) -> Option<(tokio::process::Child, u16)> {
    let has_aiosmtpd = std::process::Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_aiosmtpd {
        if helpers::required() {
            panic!(
                "CAREHUB_REQUIRE_SERVICES=1 but Python's aiosmtpd is not installed (pip install aiosmtpd)"
            );
        }
        eprintln!(
            "\n!!! SKIPPED: the email channel test needs Python's aiosmtpd (pip install aiosmtpd==1.4.6) !!!\n"
        );
        return None;
    }
    std::fs::write(dir.join("smtp_sink.py"), SMTP_SINK).unwrap();
    let mail = dir.join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new("python3")
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "smtp_sink.Sink",
        ])
        .arg(&mail)
        .env("PYTHONPATH", dir)
        .kill_on_drop(true)
        .spawn()
        .expect("start aiosmtpd");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "aiosmtpd did not start listening"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some((child, port))
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server_with_utf8_and_our_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_server, port)) = start_smtp(dir.path()).await else {
        return;
    };
    let yaml = format!(
        "channels:\n  mail:\n    type: email\n    host: 127.0.0.1\n    port: {port}\n    tls: none\n    \
         from: \"Phòng khám An Bình <clinic@example.org>\"\n    timeout_secs: 5\n"
    );
    let mail = channel("mail", &yaml);
    assert_eq!(mail.address(), AddressKind::Email);
    let m = Outbound {
        subject: Some("Kết quả xét nghiệm của bạn đã có".into()),
        ..outbound("0191f0a2-email-1", "patient@example.org")
    };
    let sent = mail.send(&m).await.unwrap();
    assert_eq!(sent.provider_id.as_deref(), Some("<0191f0a2-email-1@carehub>"));

    let got: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("mail/0.json")).unwrap()).unwrap();
    assert_eq!(got["mail_from"], "clinic@example.org");
    assert_eq!(got["rcpt_tos"], json!(["patient@example.org"]));
    assert_eq!(got["from"], "Phòng khám An Bình <clinic@example.org>");
    assert_eq!(got["to"], "patient@example.org");
    assert_eq!(got["subject"], "Kết quả xét nghiệm của bạn đã có");
    assert_eq!(got["message_id"], "<0191f0a2-email-1@carehub>");
    assert_eq!(
        got["body"].as_str().map(str::trim_end),
        Some("Здравствуйте! Ваш результат готов. 您的结果已出。")
    );

    let busy = mail.send(&outbound("n-61", "busy@example.org")).await;
    assert!(
        matches!(busy, Err(SendError::Retry { .. })),
        "SMTP 451 is retried: {busy:?}"
    );
    let rejected = mail.send(&outbound("n-62", "reject@example.org")).await;
    match rejected {
        Err(SendError::Permanent { reason }) => assert!(reason.contains("550"), "{reason}"),
        other => panic!("SMTP 550 is permanent: {other:?}"),
    }
    assert!(
        matches!(
            mail.send(&outbound("n-63", "not an address")).await,
            Err(SendError::Permanent { .. })
        ),
        "a malformed address is permanent"
    );
}

#[tokio::test]
async fn email_to_a_server_that_is_not_there_is_retried() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = format!(
        "channels:\n  mail:\n    type: email\n    host: 127.0.0.1\n    port: {port}\n    tls: none\n    from: clinic@example.org\n"
    );
    let result = channel("mail", &yaml)
        .send(&outbound("n-70", "patient@example.org"))
        .await;
    assert!(matches!(result, Err(SendError::Retry { .. })), "{result:?}");
}
