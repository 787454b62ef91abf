//! The signatures, the certificate check, and real nodes refusing what they must refuse: each attack
//! of issue 13 on the Raft port, sent over loopback to a [`DcsNode`] serving as the agent serves it.

use super::*;
use crate::raft::identity::{Envelope, RpcHeader};
use crate::raft::{DcsNode, NodeId, TypeConfig};
use crate::DcsConfig;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{LeaderId, LogId, SnapshotMeta, StoredMembership, Vote};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use vigil_api::pki::Authority;

const NOW: u64 = 1_800_000_000_000;

fn mac() -> Mac {
    Mac::new("right")
}

#[test]
fn a_signed_request_checks_out_once() {
    let mac = mac();
    let (signature, nonce) = mac.sign_request("POST", "10.0.0.1:2222", "/raft/vote", b"{}", NOW);
    let checked = mac.check_request("POST", "10.0.0.1:2222", "/raft/vote", Some(&signature), b"{}", NOW + 10);
    assert_eq!(checked, Ok(nonce));
    let replayed =
        mac.check_request("POST", "10.0.0.1:2222", "/raft/vote", Some(&signature), b"{}", NOW + 20);
    assert!(replayed.unwrap_err().contains("replayed"));
}

#[test]
fn any_change_to_a_signed_request_breaks_its_signature() {
    let mac = mac();
    let (signature, _) = mac.sign_request("POST", "10.0.0.1:2222", "/raft/vote", b"{}", NOW);
    let altered = [
        ("GET", "10.0.0.1:2222", "/raft/vote", b"{}".as_slice()),
        ("POST", "10.0.0.2:2222", "/raft/vote", b"{}"),
        ("POST", "10.0.0.1:2222", "/raft/append", b"{}"),
        ("POST", "10.0.0.1:2222", "/raft/vote", b"{ }"),
    ];
    for (method, host, path, body) in altered {
        let err = mac.check_request(method, host, path, Some(&signature), body, NOW).unwrap_err();
        assert!(err.starts_with("wrong signature"), "{method} {host} {path}: {err}");
    }
    let err =
        Mac::new("wrong").check_request("POST", "10.0.0.1:2222", "/raft/vote", Some(&signature), b"{}", NOW);
    assert!(err.unwrap_err().contains("raft.password differs"));
}

#[test]
fn requests_signed_too_long_ago_or_ahead_are_refused() {
    let mac = mac();
    let window = WINDOW.as_millis() as u64;
    for signed_at in [NOW - window - 1, NOW + window + 1] {
        let (signature, _) = mac.sign_request("POST", "h:1", "/raft/vote", b"", signed_at);
        let err = mac.check_request("POST", "h:1", "/raft/vote", Some(&signature), b"", NOW).unwrap_err();
        assert!(err.contains("are the clocks synchronized?"), "{err}");
    }
    let (signature, _) = mac.sign_request("POST", "h:1", "/raft/vote", b"", NOW - window);
    assert!(mac.check_request("POST", "h:1", "/raft/vote", Some(&signature), b"", NOW).is_ok());
}

#[test]
fn missing_or_malformed_signatures_are_refused() {
    let mac = mac();
    let err = mac.check_request("POST", "h:1", "/raft/vote", None, b"", NOW).unwrap_err();
    assert_eq!(err, "no signature: raft.password is set on this node");
    for bad in ["", "x", "1.2", "1.00.00", "abc.00112233445566778899aabbccddeeff.00", "1.zz.00", "1.0011.00"]
    {
        let err = mac.check_request("POST", "h:1", "/raft/vote", Some(bad), b"", NOW).unwrap_err();
        assert!(err.starts_with("malformed") || err.starts_with("wrong"), "{bad:?}: {err}");
    }
}

#[test]
fn an_answer_must_be_signed_for_its_request() {
    let mac = mac();
    let signature = mac.sign_response("00ff", 200, b"{\"Ok\":1}");
    assert_eq!(mac.check_response("00ff", 200, Some(&signature), b"{\"Ok\":1}"), Ok(()));
    assert!(mac.check_response("00fe", 200, Some(&signature), b"{\"Ok\":1}").is_err());
    assert!(mac.check_response("00ff", 403, Some(&signature), b"{\"Ok\":1}").is_err());
    assert!(mac.check_response("00ff", 200, Some(&signature), b"{\"Ok\":2}").is_err());
    let err = mac.check_response("00ff", 200, None, b"forged").unwrap_err();
    assert!(err.contains("without a valid signature") && err.contains("forged"), "{err}");
}

#[test]
fn a_certificate_must_name_the_members_address() {
    let ca = Authority::new("test CA").unwrap();
    let issued = ca.issue(&["127.0.0.2", "node2.example"]).unwrap();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
    let cert = PeerCertificate(Arc::new(der));
    assert_eq!(check_certificate(&cert, 2, Some("127.0.0.2:2222")), Ok(()));
    assert_eq!(check_certificate(&cert, 2, Some("node2.example:2222")), Ok(()));
    assert_eq!(check_certificate(&cert, 2, None), Ok(()));
    let err = check_certificate(&cert, 3, Some("127.0.0.3:2222")).unwrap_err();
    assert!(err.contains("not valid for 127.0.0.3, the address of node 3"), "{err}");
}

// ---------------------------------------------------------------------------------------------------------
// Real nodes

/// A store node serving on loopback, initialized with itself and an unreachable node 2 at `peer2` as
/// voters. Its election timeout is an hour: its Raft state only changes by what it is sent.
struct Node {
    node: Arc<DcsNode>,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

async fn start(security: RaftSecurity, peer2: &str) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = DcsConfig::new(1, "it", dir.path().join("raft"));
    config.security = security;
    config.timing.election_min = Duration::from_secs(3600);
    config.timing.election_max = Duration::from_secs(7200);
    let node = Arc::new(DcsNode::start(config).await.unwrap());
    let (routes, tls) = (node.router(), node.tls());
    tokio::spawn(vigil_api::tls::serve(listener, routes, tls));
    node.initialize(BTreeMap::from([(1, addr.to_string()), (2, peer2.to_owned())])).await.unwrap();
    Node { node, addr, _dir: dir }
}

fn password(secret: &str) -> RaftSecurity {
    RaftSecurity { tls: None, password: Some(secret.into()) }
}

fn header(node: &Node, from: NodeId) -> RpcHeader {
    let mut header = node.node.identity.header();
    header.from = from;
    header
}

fn body<T: serde::Serialize>(header: RpcHeader, rpc: T) -> Vec<u8> {
    serde_json::to_vec(&Envelope { header, rpc }).unwrap()
}

/// What a forged leader would send: the highest term there is.
fn forged_append(node: &Node) -> Vec<u8> {
    let vote = Vote::new_committed(u64::MAX, 2);
    let append =
        AppendEntriesRequest::<TypeConfig> { vote, prev_log_id: None, entries: vec![], leader_commit: None };
    body(header(node, 2), append)
}

/// A vote request of node 2 with a log ahead of node 1's, which node 1 grants.
fn vote_request(node: &Node, term: u64) -> Vec<u8> {
    let last = LogId::new(LeaderId::new(term - 1, 2), 100);
    body(header(node, 2), VoteRequest::new(Vote::new(term, 2), Some(last)))
}

/// The Raft state an attacker must not move: term, voters and members, last applied entry.
fn raft_state(node: &Node) -> (u64, Vec<NodeId>, Vec<NodeId>, Option<u64>) {
    let s = node.node.raft_status();
    (s.term, s.voters.into_iter().collect(), s.nodes.into_keys().collect(), s.last_applied)
}

async fn call(
    client: &PeerClient,
    node: &Node,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<Answer, PeerError> {
    client.call(&node.addr.to_string(), path, body, Duration::from_secs(5)).await
}

/// Waits until the node's term is `term` (metrics follow the Raft core a moment later).
async fn wait_term(node: &Node, term: u64) {
    let wait = node.node.raft.wait(Some(Duration::from_secs(5)));
    wait.metrics(|m| m.current_term == term, "term").await.unwrap();
}

fn error_of(answer: &Answer) -> String {
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    json["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn without_the_password_nothing_reaches_raft() {
    let node = start(password("right"), "127.0.0.2:9").await;
    let before = raft_state(&node);
    for secret in [None, Some("wrong")] {
        let client = secret.map_or_else(RaftSecurity::default, password).client().unwrap();
        let calls = [
            ("/raft/append", Some(forged_append(&node))),
            ("/raft/vote", Some(vote_request(&node, 1000))),
            ("/raft/snapshot", Some(b"{}".to_vec())),
            ("/raft/identity", None),
            ("/dcs/write", Some(b"{}".to_vec())),
            ("/dcs/read-index", Some(b"{}".to_vec())),
        ];
        for (path, body) in calls {
            match call(&client, &node, path, body).await {
                // Without a password the client reads the refusal; with the wrong one it refuses the
                // answer, which the server signed with the right one... or not at all.
                Ok(answer) => {
                    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{secret:?} {path}");
                    assert!(error_of(&answer).contains("signature"), "{}", error_of(&answer));
                }
                Err(PeerError::Unsigned(why)) => assert!(why.contains("HTTP 401"), "{why}"),
                Err(e) => panic!("{path}: {e}"),
            }
        }
    }
    assert_eq!(raft_state(&node), before);
}

#[tokio::test]
async fn with_the_password_a_member_is_heard_and_the_answer_is_signed() {
    let node = start(password("right"), "127.0.0.2:9").await;
    let client = password("right").client().unwrap();
    let answer = call(&client, &node, "/raft/vote", Some(vote_request(&node, 1000))).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer.body));
    wait_term(&node, 1000).await;
    let identity = call(&client, &node, "/raft/identity", None).await.unwrap();
    assert_eq!(identity.status, StatusCode::OK);
}

#[tokio::test]
async fn a_replayed_or_misaddressed_request_is_refused() {
    let node = start(password("right"), "127.0.0.2:9").await;
    let addr = node.addr.to_string();
    let mac = Mac::new("right");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let send = |host: String, body: Vec<u8>| {
        let (signature, _) = mac.sign_request("POST", &host, "/raft/vote", &body, unix_millis());
        let request = http.post(format!("http://{addr}/raft/vote")).header(SIGNATURE, signature);
        request.header("content-type", "application/json").body(body)
    };
    let first = send(addr.clone(), vote_request(&node, 5)).build().unwrap();
    let again = first.try_clone().unwrap();
    assert_eq!(http.execute(first).await.unwrap().status(), StatusCode::OK);
    let replayed = http.execute(again).await.unwrap();
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    assert!(replayed.text().await.unwrap().contains("replayed"));

    let elsewhere = send("127.0.0.9:2222".to_owned(), vote_request(&node, 6)).send().await.unwrap();
    assert_eq!(elsewhere.status(), StatusCode::UNAUTHORIZED);
    assert!(elsewhere.text().await.unwrap().contains("another address"));
    wait_term(&node, 5).await;
}

/// A CA with certificates for node 1 (127.0.0.1), for 127.0.0.2 (member 2's address) and a stranger's CA
/// with one for 127.0.0.2 too.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::new("cluster CA").unwrap();
        ca.write(dir.path(), "node1", &["127.0.0.1"]).unwrap();
        ca.write(dir.path(), "node2", &["127.0.0.2"]).unwrap();
        let other = tempfile::tempdir_in(dir.path()).unwrap();
        let stranger =
            Authority::new("another CA").unwrap().write(other.path(), "stranger", &["127.0.0.2"]).unwrap();
        std::fs::rename(stranger.certfile, dir.path().join("stranger.pem")).unwrap();
        std::fs::rename(stranger.keyfile, dir.path().join("stranger.key")).unwrap();
        Pki { dir }
    }

    fn security(&self, stem: &str) -> RaftSecurity {
        let tls = RaftTls {
            certfile: self.dir.path().join(format!("{stem}.pem")),
            keyfile: Some(self.dir.path().join(format!("{stem}.key"))),
            cafile: self.dir.path().join("ca.pem"),
        };
        RaftSecurity { tls: Some(tls), password: None }
    }
}

#[tokio::test]
async fn over_tls_only_a_certificate_of_the_cluster_naming_the_member_is_heard() {
    let pki = Pki::new();
    let node = start(pki.security("node1"), "127.0.0.2:9").await;
    let before = raft_state(&node);

    // No TLS at all, TLS without a client certificate, a certificate of another CA: no connection.
    let plain = RaftSecurity::default().client().unwrap();
    assert!(matches!(call(&plain, &node, "/raft/identity", None).await, Err(PeerError::Http(_))));
    let ca = reqwest::Certificate::from_pem(&std::fs::read(pki.dir.path().join("ca.pem")).unwrap()).unwrap();
    let anonymous = reqwest::Client::builder().no_proxy().tls_certs_only([ca]).build().unwrap();
    let url = format!("https://{}/raft/identity", node.addr);
    assert!(anonymous.get(&url).send().await.is_err(), "no client certificate");
    let stranger = pki.security("stranger").client().unwrap();
    let err = call(&stranger, &node, "/raft/append", Some(forged_append(&node))).await;
    assert!(matches!(err, Err(PeerError::Http(_))), "a certificate of another CA");

    // The cluster's CA, but a certificate for node 1's address while claiming to be node 2.
    let impostor = pki.security("node1").client().unwrap();
    let answer = call(&impostor, &node, "/raft/append", Some(forged_append(&node))).await.unwrap();
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(
        error_of(&answer).contains("not valid for 127.0.0.2, the address of node 2"),
        "{}",
        error_of(&answer)
    );
    assert_eq!(raft_state(&node), before);

    let member = pki.security("node2").client().unwrap();
    let answer = call(&member, &node, "/raft/vote", Some(vote_request(&node, 1000))).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer.body));
}

fn chunk(node: &Node, offset: u64, data: &[u8]) -> Vec<u8> {
    let meta = SnapshotMeta::<NodeId, crate::raft::Node> {
        last_log_id: Some(LogId::new(LeaderId::new(1000, 2), 10)),
        last_membership: StoredMembership::default(),
        snapshot_id: "forged-1".to_owned(),
    };
    let request = InstallSnapshotRequest::<TypeConfig> {
        vote: Vote::new_committed(1000, 2),
        meta,
        offset,
        data: data.to_vec(),
        done: false,
    };
    body(header(node, 2), request)
}

#[tokio::test]
async fn a_snapshot_chunk_must_continue_the_stream_where_it_stopped() {
    let node = start(RaftSecurity::default(), "127.0.0.2:9").await;
    let client = RaftSecurity::default().client().unwrap();
    let send = |offset: u64, data: &'static [u8]| {
        let (client, body) = (client.clone(), chunk(&node, offset, data));
        let addr = node.addr.to_string();
        async move {
            let answer =
                client.call(&addr, "/raft/snapshot", Some(body), Duration::from_secs(5)).await.unwrap();
            assert_eq!(answer.status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer.body));
            serde_json::from_slice::<serde_json::Value>(&answer.body).unwrap()
        }
    };
    // Far past the end, before any stream: refused without allocating (a 2^62-byte buffer would abort).
    let answer = send(1 << 62, b"x").await;
    assert_eq!(answer["Err"]["APIError"]["SnapshotMismatch"]["expect"]["offset"], 0, "{answer}");
    assert!(send(0, b"0123456789").await.get("Ok").is_some());
    let answer = send(1 << 62, b"x").await;
    assert_eq!(answer["Err"]["APIError"]["SnapshotMismatch"]["expect"]["offset"], 10, "{answer}");
    assert!(send(10, b"abc").await.get("Ok").is_some(), "the stream goes on where it stopped");
}
