//! The connection limits of `server::serve_with` over real sockets on 127.0.0.1: a slow-loris client is
//! closed after the header-read timeout, a kept-alive connection left idle too, the connection cap
//! closes one connection too many at once, and an oversized URI or request head is refused (414, 431).

mod common;

use common::{primary, Fixed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_api::server::{serve_with, ServeLimits, MAX_HEAD};

/// How long a test waits for something that should happen well before.
const PATIENCE: Duration = Duration::from_secs(5);

/// Serves the health router within `limits` on a loopback port; its address.
async fn serve(limits: ServeLimits) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    let app = vigil_api::router(Arc::new(Fixed { status: primary(), leading: true }));
    tokio::spawn(serve_with(listener, app, None, limits));
    addr
}

/// Reads until the server closes the connection (or resets it); what it sent. Panics after
/// [`PATIENCE`].
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.expect("the server closed the connection");
    received
}

/// Sends `GET /health` on a kept-alive connection and reads the whole answer.
async fn health(stream: &mut TcpStream) -> String {
    stream.write_all(b"GET /health HTTP/1.1\r\nhost: test\r\n\r\n").await.expect("send");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // The status JSON is small: the answer is complete once its Content-Length bytes follow the head.
    while !complete(&answer) {
        let n =
            tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await.expect("an answer").expect("read");
        assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
    let length =
        head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ")?.parse().ok());
    length.is_some_and(|n: usize| body.len() >= n)
}

#[tokio::test]
async fn a_slow_loris_is_closed_after_the_header_read_timeout() {
    let timeout = Duration::from_millis(300);
    let addr = serve(ServeLimits { header_read_timeout: timeout, ..Default::default() }).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    stream.write_all(b"GET /heal").await.expect("half a request line");
    let answer = until_closed(&mut stream).await;
    assert!(started.elapsed() >= timeout, "closed after {:?}", started.elapsed());
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"), "{answer:?}");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_header_read_timeout() {
    let timeout = Duration::from_millis(300);
    let addr = serve(ServeLimits { header_read_timeout: timeout, ..Default::default() }).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    assert!(health(&mut stream).await.starts_with("HTTP/1.1 200"));
    let idle_since = Instant::now();
    until_closed(&mut stream).await;
    assert!(idle_since.elapsed() >= timeout, "closed after {:?}", idle_since.elapsed());
}

#[tokio::test]
async fn a_connection_over_the_cap_is_closed_at_once_and_a_freed_slot_is_reused() {
    let addr = serve(ServeLimits { max_connections: 2, ..Default::default() }).await;
    let mut first = TcpStream::connect(addr).await.expect("connect");
    let mut second = TcpStream::connect(addr).await.expect("connect");
    // Answered: both are being served (and stay open, kept alive).
    assert!(health(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(health(&mut second).await.starts_with("HTTP/1.1 200"));

    let mut third = TcpStream::connect(addr).await.expect("the kernel accepts the connection");
    let _ = third.write_all(b"GET /health HTTP/1.1\r\nhost: test\r\n\r\n").await;
    assert_eq!(until_closed(&mut third).await, b"", "closed without an answer");

    drop(first);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut next = TcpStream::connect(addr).await.expect("connect");
        let sent = next.write_all(b"GET /health HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n").await;
        let answer = until_closed(&mut next).await;
        if sent.is_ok() && answer.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `request` and returns the status line of the answer the server closes the connection after.
async fn refused(addr: std::net::SocketAddr, request: String) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(request.as_bytes()).await;
    let answer = String::from_utf8_lossy(&until_closed(&mut stream).await).into_owned();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn an_oversized_uri_gets_414_and_an_oversized_head_431() {
    let addr = serve(ServeLimits::default()).await;
    let query = "tag_a=b&".repeat(MAX_HEAD / 8 + 1);
    let long_uri = format!("GET /replica?{query} HTTP/1.1\r\nhost: test\r\n\r\n");
    assert_eq!(refused(addr, long_uri).await, "HTTP/1.1 414 URI Too Long");
    let long_header =
        format!("GET /health HTTP/1.1\r\nhost: test\r\nx-pad: {}\r\n\r\n", "a".repeat(2 * MAX_HEAD));
    assert_eq!(refused(addr, long_header).await, "HTTP/1.1 431 Request Header Fields Too Large");
}

#[tokio::test]
async fn a_long_query_within_the_limit_is_answered() {
    let addr = serve(ServeLimits::default()).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let query = "x=1&".repeat(MAX_HEAD / 8);
    let request = format!("GET /health?{query} HTTP/1.1\r\nhost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut head = [0u8; 12];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut head)).await.expect("an answer").expect("read");
    assert_eq!(&head, b"HTTP/1.1 200");
}
