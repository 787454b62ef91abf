//! HTTPS: the real routers served by `tls::serve` with certificates made here (a CA, a server and a
//! client certificate signed by it, and a stranger's self-signed one), called with reqwest through
//! `tls::client_builder`, as the CLI and the agents call each other.

mod common;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vigil_api::tls::{self, ClientTls, ServerTls, VerifyClient};
use vigil_api::{ApiError, BoxFuture, Management, ReinitializeRequest, RestartRequest, SwitchoverRequest};

/// PEM files in a temporary directory: `ca.pem`, `server.pem`/`server.key` (localhost, 127.0.0.1),
/// `client.pem`/`client.key` (signed by the CA), `stranger.pem`/`stranger.key` (self-signed).
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "vigil test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca");
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write pem");
        write("ca.pem", &ca.pem());
        for (name, purpose) in [
            ("server", ExtendedKeyUsagePurpose::ServerAuth),
            ("client", ExtendedKeyUsagePurpose::ClientAuth),
            ("stranger", ExtendedKeyUsagePurpose::ClientAuth),
        ] {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params");
            params.extended_key_usages = vec![purpose];
            let cert = if name == "stranger" {
                params.self_signed(&key).expect("self-signed")
            } else {
                params.signed_by(&key, &ca).expect("signed")
            };
            write(&format!("{name}.pem"), &cert.pem());
            write(&format!("{name}.key"), &key.serialize_pem());
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn server(&self, verify_client: VerifyClient) -> ServerTls {
        ServerTls {
            certfile: self.path("server.pem"),
            keyfile: Some(self.path("server.key")),
            cafile: Some(self.path("ca.pem")),
            verify_client,
        }
    }

    /// A client trusting the CA, showing `cert` (`client`, `stranger`) if given.
    fn client(&self, cert: Option<&str>) -> reqwest::Client {
        let tls = ClientTls {
            cacert: Some(self.path("ca.pem")),
            certfile: cert.map(|c| self.path(&format!("{c}.pem"))),
            keyfile: cert.map(|c| self.path(&format!("{c}.key"))),
            insecure: false,
        };
        tls::client_builder(&tls, "ctl").expect("client tls").build().expect("client")
    }
}

/// A management stand-in: every call succeeds.
struct Agreeable;

impl Management for Agreeable {
    fn cluster(&self) -> BoxFuture<'_, Result<vigil_api::Cluster, ApiError>> {
        Box::pin(async { Ok(vigil_api::Cluster { scope: "demo".into(), ..Default::default() }) })
    }
    fn history(&self) -> BoxFuture<'_, Result<Vec<vigil_api::HistoryEntry>, ApiError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn config(&self) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async { Ok(json!({})) })
    }
    fn set_config(&self, body: Value, _replace: bool) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async move { Ok(body) })
    }
    fn switchover(&self, _: SwitchoverRequest, _failover: bool) -> BoxFuture<'_, Result<String, ApiError>> {
        Box::pin(async { Ok("switched over".to_owned()) })
    }
    fn cancel_switchover(&self) -> BoxFuture<'_, Result<String, ApiError>> {
        Box::pin(async { Ok("cancelled".to_owned()) })
    }
    fn restart(&self, _: RestartRequest) -> BoxFuture<'_, Result<String, ApiError>> {
        Box::pin(async { Ok("restarted".to_owned()) })
    }
    fn reload(&self) -> BoxFuture<'_, Result<String, ApiError>> {
        Box::pin(async { Ok("reloaded".to_owned()) })
    }
    fn reinitialize(&self, _: ReinitializeRequest) -> BoxFuture<'_, Result<String, ApiError>> {
        Box::pin(async { Ok("reinitialize started".to_owned()) })
    }
}

/// Serves the health and management routers over TLS on a free port, as the agent does; the base
/// URLs `https://localhost:port` and `http://localhost:port`. The server stops when the test's runtime
/// ends.
async fn serve(tls: &ServerTls) -> (String, String) {
    let config = tls::server_config(tls, "restapi").expect("server tls");
    let source = common::Fixed { status: common::primary(), leading: true };
    let mut app =
        vigil_api::router(Arc::new(source)).merge(vigil_api::management_router(Arc::new(Agreeable)));
    if tls.verify_client != VerifyClient::None {
        app = tls::require_client_cert(app);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(tls::serve(listener, app, Some(config)));
    (format!("https://localhost:{port}"), format!("http://localhost:{port}"))
}

async fn status_of(response: Result<reqwest::Response, reqwest::Error>) -> u16 {
    response.expect("an answer").status().as_u16()
}

#[tokio::test]
async fn https_health_checks_work_and_plain_http_to_the_tls_port_fails() {
    let pki = Pki::new();
    let (https, http) = serve(&pki.server(VerifyClient::None)).await;
    let client = pki.client(None);
    let primary = client.get(format!("{https}/primary")).send().await.expect("HTTPS /primary");
    assert_eq!(primary.status(), 200);
    assert!(primary.headers().contains_key("x-vigil-fencing-token"));
    assert_eq!(status_of(client.post(format!("{https}/switchover")).body("{}").send().await).await, 200);

    let plain = reqwest::Client::new().get(format!("{http}/primary")).send().await;
    assert!(plain.is_err(), "plain HTTP to the TLS port must fail, got {plain:?}");
    let unknown_ca =
        tls::client_builder(&ClientTls::default(), "ctl").expect("builder").build().expect("client");
    assert!(
        unknown_ca.get(format!("{https}/primary")).send().await.is_err(),
        "a server signed by an unknown CA"
    );
    let insecure = ClientTls { insecure: true, ..Default::default() };
    let insecure = tls::client_builder(&insecure, "ctl").expect("builder").build().expect("client");
    assert_eq!(status_of(insecure.get(format!("{https}/health")).send().await).await, 200);
}

#[tokio::test]
async fn verify_client_required_refuses_clients_without_a_certificate_signed_by_the_ca() {
    let pki = Pki::new();
    let (https, _) = serve(&pki.server(VerifyClient::Required)).await;
    let anonymous = pki.client(None).get(format!("{https}/health")).send().await;
    assert!(anonymous.is_err(), "no client certificate: the handshake fails, got {anonymous:?}");
    let stranger = pki.client(Some("stranger")).get(format!("{https}/health")).send().await;
    assert!(stranger.is_err(), "a certificate not signed by the CA: refused, got {stranger:?}");
    let client = pki.client(Some("client"));
    assert_eq!(status_of(client.get(format!("{https}/health")).send().await).await, 200);
    let patch = client.patch(format!("{https}/config")).body(r#"{"pause": true}"#).send().await;
    assert_eq!(status_of(patch).await, 200);
}

#[tokio::test]
async fn verify_client_optional_lets_anyone_read_but_changes_need_a_certificate() {
    let pki = Pki::new();
    let (https, _) = serve(&pki.server(VerifyClient::Optional)).await;
    let anonymous = pki.client(None);
    assert_eq!(status_of(anonymous.get(format!("{https}/primary")).send().await).await, 200);
    assert_eq!(status_of(anonymous.get(format!("{https}/cluster")).send().await).await, 200);
    let refused = anonymous.post(format!("{https}/switchover")).body("{}").send().await.expect("answer");
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.expect("JSON error");
    assert!(body["error"].as_str().is_some_and(|e| e.starts_with("client certificate required")), "{body}");
    let stranger = pki.client(Some("stranger")).get(format!("{https}/health")).send().await;
    assert!(stranger.is_err(), "a certificate not signed by the CA is refused even when optional");
    let client = pki.client(Some("client"));
    assert_eq!(status_of(client.post(format!("{https}/switchover")).body("{}").send().await).await, 200);
}

fn fails_naming(tls: &ServerTls, key: &str, path: &Path) {
    let err = tls::server_config(tls, "restapi").expect_err("unusable TLS files");
    let text = err.to_string();
    assert!(text.starts_with(&format!("{key}: {}: ", path.display())), "{text}");
}

#[test]
fn unusable_certificate_and_key_files_are_named_by_their_key() {
    let pki = Pki::new();
    let garbage = pki.path("garbage.pem");
    std::fs::write(&garbage, "not a PEM file\n").expect("write");
    let good = pki.server(VerifyClient::Required);
    fails_naming(&ServerTls { certfile: garbage.clone(), ..good.clone() }, "restapi.certfile", &garbage);
    fails_naming(&ServerTls { keyfile: Some(garbage.clone()), ..good.clone() }, "restapi.keyfile", &garbage);
    fails_naming(&ServerTls { cafile: Some(garbage.clone()), ..good.clone() }, "restapi.cafile", &garbage);
    let wrong_key = pki.path("client.key");
    fails_naming(
        &ServerTls { keyfile: Some(wrong_key.clone()), ..good.clone() },
        "restapi.keyfile",
        &wrong_key,
    );
    let missing = pki.path("missing.pem");
    fails_naming(&ServerTls { certfile: missing.clone(), ..good }, "restapi.certfile", &missing);
    let client = ClientTls { cacert: Some(garbage.clone()), ..Default::default() };
    let err = tls::client_builder(&client, "ctl").expect_err("bad cacert").to_string();
    assert!(err.starts_with(&format!("ctl.cacert: {}: ", garbage.display())), "{err}");
}

#[tokio::test]
async fn the_allowlist_sees_the_client_address_over_tls_too() {
    use vigil_api::allowlist::{self, Allowlist};
    let pki = Pki::new();
    let config = tls::server_config(&pki.server(VerifyClient::None), "restapi").expect("server tls");
    let mut codes = Vec::new();
    for network in ["10.0.0.0/8", "127.0.0.0/8"] {
        let agent: Arc<dyn Management> = Arc::new(Agreeable);
        let app = vigil_api::management_router(agent.clone());
        let networks = vec![network.parse().expect("network")];
        let app = allowlist::restrict(app, Allowlist { networks, include_members: false }, agent);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(tls::serve(listener, app, Some(config.clone())));
        let url = format!("https://localhost:{port}/config");
        codes.push(status_of(pki.client(None).patch(url).body("{}").send().await).await);
    }
    assert_eq!(codes, [403, 200]);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_is_closed_after_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use vigil_api::server::{serve_with, ServeLimits};
    let pki = Pki::new();
    let config = tls::server_config(&pki.server(VerifyClient::None), "restapi").expect("server tls");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let timeout = std::time::Duration::from_millis(300);
    let limits = ServeLimits { header_read_timeout: timeout, ..Default::default() };
    tokio::spawn(serve_with(listener, axum::Router::new(), Some(config), limits));
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let started = std::time::Instant::now();
    stream.write_all(&[0x16, 0x03, 0x01]).await.expect("half a TLS record header");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "still open: {read:?}");
    assert!(started.elapsed() >= timeout, "closed after {:?}", started.elapsed());
}
