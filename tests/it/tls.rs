//! TLS as a clinic's systems see it, with clients we did not write: Python's `ssl` module and
//! `openssl s_client` speak MLLP over TLS (with and without client certificates), Python's
//! `urllib` reads the API over HTTPS. Certificates are made at test time with the `openssl`
//! command: a CA, a server certificate for 127.0.0.1/localhost, a client certificate from the
//! CA, and one from another CA.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// The certificates of one test, in its own folder.
pub struct Certs {
    pub dir: tempfile::TempDir,
}

impl Certs {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A `tls:` block (indented by `indent` spaces) for a server asking for client certificates.
    pub fn server_yaml(&self, indent: usize, mtls: bool) -> String {
        let pad = " ".repeat(indent);
        let mut out = format!(
            "{pad}tls:\n{pad}  cert_path: {}\n{pad}  key_path: {}\n",
            self.path("server.pem").display(),
            self.path("server.key").display()
        );
        if mtls {
            out.push_str(&format!(
                "{pad}  client_ca_path: {}\n",
                self.path("ca.pem").display()
            ));
        }
        out
    }
}

/// True when a command can be run; otherwise a loud skip (or a panic when tools are required).
pub fn tool(name: &str, probe: &[&str], install: &str) -> bool {
    if Command::new(name)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    if required() {
        panic!("CAREHUB_REQUIRE_SERVICES=1 but {name} is missing ({install})");
    }
    eprintln!("\n!!! SKIPPED: {name} not found ({install}) !!!\n");
    false
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes the test certificates, or `None` (with a loud message) when `openssl` is absent.
pub fn make_certs() -> Option<Certs> {
    if !tool("openssl", &["version"], "apt-get install openssl") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(
        d.join("client.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    for ca in ["ca", "other-ca"] {
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN=carehub test {ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }
    for (name, ca, ext) in [
        ("server", "ca", "server.ext"),
        ("client", "ca", "client.ext"),
        ("stranger", "other-ca", "client.ext"),
    ] {
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                ext,
            ],
        );
    }
    Some(Certs { dir })
}

/// Sends one MLLP frame over TLS with Python's `ssl` module and prints what comes back.
const PY_MLLP_TLS: &str = r#"
import socket, ssl, sys
port, ca, cert, key, msg = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
if cert:
    ctx.load_cert_chain(cert, key)
with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"\x0b" + msg.encode() + b"\x1c\x0d")
        buf = b""
        while not buf.endswith(b"\x1c\x0d"):
            chunk = s.recv(4096)
            if not chunk:
                sys.exit("connection closed without an ACK")
            buf += chunk
        sys.stdout.write(buf[1:-2].decode("latin-1"))
"#;

/// Runs [`PY_MLLP_TLS`]; `client` names the `.pem`/`.key` pair, if any. (status ok, stdout, stderr)
async fn python_send(port: u16, certs: &Certs, client: Option<&str>, msg: &str) -> (bool, String, String) {
    let (cert, key) = match client {
        Some(c) => (
            certs.path(&format!("{c}.pem")).display().to_string(),
            certs.path(&format!("{c}.key")).display().to_string(),
        ),
        None => (String::new(), String::new()),
    };
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(PY_MLLP_TLS)
        .arg(port.to_string())
        .arg(certs.path("ca.pem"))
        .args([cert, key, msg.to_string()])
        .output()
        .await
        .expect("run python3");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn have_python() -> bool {
    tool("python3", &["-c", "import ssl"], "apt-get install python3")
}

/// The hub's log lines while the guard lives (the test runtime is single-threaded, so every
/// task of the hub logs on this thread).
pub struct Logs(Arc<Mutex<Vec<u8>>>);

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    pub fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        (Logs(buf), tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines that say `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

async fn mtls_hub(certs: &Certs) -> TestHub {
    spawn_hub_with(HubOptions {
        mllp_extra: certs.server_yaml(0, true),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn python_ssl_with_the_clinic_certificate_gets_aa_over_mllp_tls() {
    let Some(certs) = make_certs() else { return };
    if !have_python() {
        return;
    }
    let t = mtls_hub(&certs).await;
    let (ok, ack, err) = python_send(
        t.mllp().port(),
        &certs,
        Some("client"),
        &adt("TLS-1", "MRN-TLS", "Nguyen"),
    )
    .await;
    assert!(ok, "python failed: {err}");
    assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
    assert_eq!(field(&ack, "MSA", 2), "TLS-1");
    assert_eq!(t.hub.store.find_persons("MRN-TLS", None).await.unwrap().len(), 1);
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_and_the_log_names_no_patient() {
    let Some(certs) = make_certs() else { return };
    if !have_python() {
        return;
    }
    let (logs, _guard) = Logs::capture();
    let t = mtls_hub(&certs).await;
    let (ok, ack, err) = python_send(
        t.mllp().port(),
        &certs,
        None,
        &adt("NOCERT-1", "MRN-NOCERT", "Pham"),
    )
    .await;
    assert!(!ok, "refused: {ack}");
    assert!(ack.is_empty(), "no ACK: {ack}");
    assert!(
        err.to_lowercase().contains("certificate"),
        "the client is told why: {err}"
    );
    assert_eq!(t.hub.store.person_count().await.unwrap(), 0);
    let refusals = logs.lines_with("TLS handshake failed");
    assert_eq!(refusals.len(), 1, "{}", logs.text());
    assert!(
        refusals[0].contains("127.0.0.1:"),
        "the peer is named: {}",
        refusals[0]
    );
    assert!(
        !logs.text().contains("MRN-NOCERT") && !logs.text().contains("Pham"),
        "no PHI in logs"
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let Some(certs) = make_certs() else { return };
    if !have_python() {
        return;
    }
    let (logs, _guard) = Logs::capture();
    let t = mtls_hub(&certs).await;
    let (ok, ack, err) = python_send(
        t.mllp().port(),
        &certs,
        Some("stranger"),
        &adt("OTHER-1", "MRN-OTHER", "Ly"),
    )
    .await;
    assert!(!ok && ack.is_empty(), "refused: {ack} {err}");
    assert_eq!(t.hub.store.person_count().await.unwrap(), 0);
    let refusals = logs.lines_with("TLS handshake failed");
    assert_eq!(refusals.len(), 1, "{}", logs.text());
    assert!(
        refusals[0].contains("UnknownIssuer"),
        "the reason: {}",
        refusals[0]
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn openssl_s_client_gets_aa_over_mllp_tls() {
    let Some(certs) = make_certs() else { return };
    let t = mtls_hub(&certs).await;
    let mut child = tokio::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error", "-connect"])
        .arg(t.mllp().to_string())
        .arg("-CAfile")
        .arg(certs.path("ca.pem"))
        .arg("-cert")
        .arg(certs.path("client.pem"))
        .arg("-key")
        .arg(certs.path("client.key"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run openssl s_client");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(&frame(&adt("SCLIENT-1", "MRN-SC", "Do")))
        .await
        .unwrap();
    stdin.flush().await.unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !got.ends_with(&[FS, CR]) {
            let n = stdout.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let ack = String::from_utf8_lossy(&got)
        .trim_matches(['\x0b', '\x1c', '\r'])
        .to_string();
    assert!(read.is_ok(), "an ACK within 10 s: {ack:?}");
    assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
    assert_eq!(field(&ack, "MSA", 2), "SCLIENT-1");
    let _ = child.kill().await;
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_peer_outside_allow_from_is_refused_before_anything_is_read() {
    let (logs, _guard) = Logs::capture();
    let t = spawn_hub_with(HubOptions {
        mllp_extra: "allow_from: [10.0.0.0/8]\n".into(),
        ..Default::default()
    })
    .await;
    let mut s = TcpStream::connect(t.mllp()).await.unwrap();
    // The frame may or may not be written before the hub closes; either way it is not read.
    let _ = s.write_all(&frame(&adt("DENY-1", "MRN-DENY", "Trinh"))).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .expect("the hub closes the connection");
    assert!(
        read.is_err() || rest.is_empty(),
        "no ACK: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert_eq!(t.hub.store.person_count().await.unwrap(), 0);
    let refusals = logs.lines_with("refused an MLLP connection");
    assert_eq!(refusals.len(), 1, "{}", logs.text());
    assert!(
        refusals[0].contains("not in allow_from") && refusals[0].contains("127.0.0.1:"),
        "{}",
        refusals[0]
    );
    assert!(
        !logs.text().contains("MRN-DENY") && !logs.text().contains("Trinh"),
        "no PHI in logs"
    );
    t.hub.shutdown().await;
}

/// Calls `url` with Python's `urllib`, trusting `ca`, optionally with a client certificate
/// and a FHIR JSON body to POST, with the test hubs' admin token; prints the status and the body.
const PY_HTTPS: &str = r#"
import ssl, sys, urllib.request
url, ca, cert, key, body, token = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=ca)
if cert:
    ctx.load_cert_chain(cert, key)
req = urllib.request.Request(url, data=body.encode() if body else None,
                             headers={"Content-Type": "application/fhir+json",
                                      "Authorization": "Bearer " + token})
with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
    sys.stdout.write(str(r.status) + "\n" + r.read().decode())
"#;

/// (status ok, stdout, stderr) of [`PY_HTTPS`].
async fn python_https(url: &str, certs: &Certs, client: Option<&str>, body: &str) -> (bool, String, String) {
    let (cert, key) = match client {
        Some(c) => (
            certs.path(&format!("{c}.pem")).display().to_string(),
            certs.path(&format!("{c}.key")).display().to_string(),
        ),
        None => (String::new(), String::new()),
    };
    let out = tokio::process::Command::new("python3")
        .args(["-c", PY_HTTPS, url])
        .arg(certs.path("ca.pem"))
        .args([cert, key, body.to_string()])
        .arg(crate::helpers::ADMIN_TOKEN)
        .output()
        .await
        .expect("run python3");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_api_serves_https_and_refuses_plain_http() {
    let Some(certs) = make_certs() else { return };
    if !have_python() {
        return;
    }
    let t = spawn_hub_with(HubOptions {
        api_extra: certs.server_yaml(2, false),
        fhir_push: true,
        ..Default::default()
    })
    .await;
    let addr = t.hub.api_addr.unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}/healthz", addr.port());
        let (ok, out, err) = python_https(&url, &certs, None, "").await;
        assert!(ok && out.starts_with("200\n"), "GET {url}: {out} {err}");
    }
    let plain = http().get(format!("http://{addr}/healthz")).send().await;
    assert!(plain.is_err(), "plain HTTP to the TLS port fails: {plain:?}");

    // The server goes on after the failed handshake, and handlers still see the peer address
    // (the FHIR push endpoint records it as the message's origin).
    let patient = r#"{"resourceType": "Patient", "id": "p1", "identifier": [{"system": "urn:oid:1.2.704.9", "value": "F-TLS"}], "name": [{"family": "Pham", "given": ["Thu"]}], "gender": "female", "birthDate": "1990-04-12"}"#;
    let url = format!("https://127.0.0.1:{}/fhir/r4", addr.port());
    let (ok, out, err) = python_https(&url, &certs, None, patient).await;
    assert!(ok && out.starts_with("20"), "POST {url}: {out} {err}");
    let logged = t
        .hub
        .store
        .messages(&carehub::store::MessageFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(logged.len(), 1);
    assert!(
        logged[0]
            .origin
            .as_deref()
            .unwrap_or("")
            .starts_with("127.0.0.1:"),
        "the peer address: {:?}",
        logged[0].origin
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn the_api_with_client_certificates_lets_in_only_the_clinics_clients() {
    let Some(certs) = make_certs() else { return };
    if !have_python() {
        return;
    }
    let t = spawn_hub_with(HubOptions {
        api_extra: certs.server_yaml(2, true),
        ..Default::default()
    })
    .await;
    let url = format!("https://127.0.0.1:{}/healthz", t.hub.api_addr.unwrap().port());
    let (ok, out, err) = python_https(&url, &certs, Some("client"), "").await;
    assert!(
        ok && out.starts_with("200\n"),
        "with the clinic's certificate: {out} {err}"
    );
    for client in [None, Some("stranger")] {
        let (ok, out, _) = python_https(&url, &certs, client, "").await;
        assert!(!ok && out.is_empty(), "{client:?} is refused: {out}");
    }
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_missing_certificate_file_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("connectors")).unwrap();
    std::fs::write(
        root.join("carehub.yaml"),
        format!(
            "store:\n  url: \"sqlite://{}\"\napi:\n  listen: 127.0.0.1:0\n  tls:\n    cert_path: {}\n    key_path: {}\nconnectors_dir: {}\nmappings_dir: {}\nnotifications:\n  rules_dir: {}\n",
            root.join("db.sqlite").display(),
            root.join("nowhere.pem").display(),
            root.join("nowhere.key").display(),
            root.join("connectors").display(),
            mappings_dir().display(),
            root.join("connectors").display(),
        ),
    )
    .unwrap();
    let settings = carehub::config::load_with_env(&root.join("carehub.yaml"), &[]).expect("valid config");
    let err = match carehub::app::start(settings).await {
        Ok(_) => panic!("the hub must not start without its certificate"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("api.tls") && err.contains("cert_path") && err.contains("nowhere.pem"),
        "{err}"
    );
}
