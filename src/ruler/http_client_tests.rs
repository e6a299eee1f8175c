use std::time::{Duration, Instant};

use super::*;
use crate::ruler::fake_peer::{FakePeer, Reply};

fn endpoint(url: &str) -> Endpoint {
    Endpoint::parse(url).unwrap()
}

#[test]
fn urls_give_host_port_and_target() {
    let e = endpoint("http://am.example:9093");
    assert_eq!(
        (e.host.as_str(), e.port, e.target.as_str()),
        ("am.example", 9093, "/")
    );
    assert_eq!(e.authority, "am.example:9093");
    let e = endpoint("HTTP://am/prefix/?a=1");
    assert_eq!(
        (e.host.as_str(), e.port, e.target.as_str()),
        ("am", 80, "/prefix/?a=1")
    );
    let e = endpoint("http://[::1]:9090/api/v1/write");
    assert_eq!(
        (e.host.as_str(), e.port, e.target.as_str()),
        ("::1", 9090, "/api/v1/write")
    );
    assert_eq!(e.authority, "[::1]:9090");
    let e = endpoint("http://h?x=y");
    assert_eq!(e.target, "/?x=y");
}

#[test]
fn the_alerts_path_joins_with_or_without_a_trailing_slash_and_a_prefix() {
    for (base, target) in [
        ("http://am:9093", "/api/v2/alerts"),
        ("http://am:9093/", "/api/v2/alerts"),
        ("http://am:9093/alertmanager", "/alertmanager/api/v2/alerts"),
        (
            "http://am:9093/alertmanager/",
            "/alertmanager/api/v2/alerts",
        ),
        ("http://am:9093/am?t=1", "/am/api/v2/alerts?t=1"),
    ] {
        assert_eq!(
            endpoint(base).join("api/v2/alerts").target,
            target,
            "{base}"
        );
    }
}

#[test]
fn bad_urls_are_refused_with_a_message_naming_them() {
    for (url, says) in [
        ("https://am:9093", "https is not supported"),
        ("am:9093", "no scheme"),
        ("ftp://am", "only http://"),
        ("http://user:pw@am:9093", "user info"),
        ("http://am:0", "not a port"),
        ("http://am:99999", "not a port"),
        ("http://am:x", "not a port"),
        ("http://:9093", "no host"),
        ("http://::1:9093", "brackets"),
        ("http://[::1:9093", "not closed"),
        ("http://am/a b", "spaces"),
        ("http://am/#frag", "fragment"),
    ] {
        let e = Endpoint::parse(url).unwrap_err();
        let text = e.to_string();
        assert!(text.contains(url), "{url}: {text}");
        assert!(text.contains(says), "{url}: {text}");
    }
}

#[test]
fn a_post_writes_its_headers_and_body_and_reads_the_answer() {
    let peer = FakePeer::start(|_, _| Reply::Status(202, "accepted"));
    let mut client = Client::new(Duration::from_secs(5));
    let target = endpoint(&format!("{}/prefix/api?x=1", peer.url()));
    let response = client
        .post(
            &target,
            &[
                ("Content-Type", "application/json"),
                ("X-Scope-OrgID", "t1"),
            ],
            b"[1,2]",
        )
        .unwrap();
    assert_eq!(response.status, 202);
    assert!(response.is_success());
    assert_eq!(response.body, b"accepted");
    let requests = peer.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.target.as_str()),
        ("POST", "/prefix/api?x=1")
    );
    assert_eq!(r.body, b"[1,2]");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-scope-orgid"), Some("t1"));
    assert_eq!(r.header("content-length"), Some("5"));
    assert_eq!(r.header("host"), target.authority.as_str().into());
    assert_eq!(
        r.header("user-agent"),
        Some(format!("shardlog/{}", env!("CARGO_PKG_VERSION")).as_str())
    );
}

#[test]
fn a_connection_is_kept_for_the_next_request() {
    let peer = FakePeer::start(|_, _| Reply::Status(200, "{}"));
    let mut client = Client::new(Duration::from_secs(5));
    let target = endpoint(&peer.url());
    for _ in 0..3 {
        assert_eq!(client.post(&target, &[], b"x").unwrap().status, 200);
    }
    assert_eq!(peer.requests().len(), 3);
    assert_eq!(peer.connections(), 1);
    assert_eq!(client.idle_connections(), 1);
}

#[test]
fn a_chunked_answer_is_read_whole_and_the_connection_kept() {
    let peer = FakePeer::start(|n, _| match n {
        0 => Reply::Chunked(500, vec!["internal ", "server ", "error"]),
        _ => Reply::Status(200, ""),
    });
    let mut client = Client::new(Duration::from_secs(5));
    let target = endpoint(&peer.url());
    let response = client.post(&target, &[], b"x").unwrap();
    assert_eq!(response.status, 500);
    assert_eq!(response.body_text(), "internal server error");
    // The chunk extensions and the trailer are read past, and the next answer is read from
    // the right place on the same connection.
    assert_eq!(client.post(&target, &[], b"y").unwrap().status, 200);
    assert_eq!(peer.connections(), 1);
}

#[test]
fn a_body_without_length_ends_with_the_connection_which_is_not_kept() {
    let peer = FakePeer::start(|_, _| Reply::UntilClose(400, "bad labels"));
    let mut client = Client::new(Duration::from_secs(5));
    let target = endpoint(&peer.url());
    let response = client.post(&target, &[], b"x").unwrap();
    assert_eq!(
        (response.status, response.body_text().as_str()),
        (400, "bad labels")
    );
    assert_eq!(client.idle_connections(), 0);
    assert_eq!(client.post(&target, &[], b"x").unwrap().status, 400);
    assert_eq!(peer.connections(), 2);
}

#[test]
fn a_kept_connection_closed_by_the_peer_is_replaced_without_an_error() {
    let peer = FakePeer::start(|n, _| match n {
        0 => Reply::OkThenClose,
        _ => Reply::Status(200, "second"),
    });
    let mut client = Client::new(Duration::from_secs(5));
    let target = endpoint(&peer.url());
    assert_eq!(client.post(&target, &[], b"1").unwrap().status, 200);
    // Give the close time to arrive, as an idle timeout would.
    std::thread::sleep(Duration::from_millis(50));
    let response = client.post(&target, &[], b"2").unwrap();
    assert_eq!(response.body, b"second");
    assert_eq!(peer.connections(), 2);
    let seen: Vec<(Vec<u8>, usize)> = peer
        .requests()
        .into_iter()
        .map(|r| (r.body, r.connection))
        .collect();
    assert_eq!(seen, [(b"1".to_vec(), 0), (b"2".to_vec(), 1)]);
}

#[test]
fn a_stalled_peer_times_out_at_the_deadline() {
    let peer = FakePeer::start(|_, _| Reply::Stall(Duration::from_secs(3)));
    let mut client = Client::new(Duration::from_millis(300));
    let started = Instant::now();
    let error = client.post(&endpoint(&peer.url()), &[], b"x").unwrap_err();
    let took = started.elapsed();
    assert!(matches!(error, HttpError::Timeout { .. }), "{error}");
    assert!(error.is_transient());
    assert!(took >= Duration::from_millis(290), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn a_hang_up_and_a_refused_connection_are_transient_errors() {
    let peer = FakePeer::start(|_, _| Reply::Hangup);
    let mut client = Client::new(Duration::from_secs(5));
    let error = client.post(&endpoint(&peer.url()), &[], b"x").unwrap_err();
    assert!(
        matches!(error, HttpError::Closed | HttpError::Io { .. }),
        "{error}"
    );
    assert!(error.is_transient());

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let error = client.post(&endpoint(&url), &[], b"x").unwrap_err();
    assert!(matches!(error, HttpError::Connect { .. }), "{error}");
    assert!(error.is_transient());
    assert!(error.to_string().contains("cannot connect"), "{error}");
}

#[test]
fn an_answer_that_is_not_http_is_a_lasting_error() {
    for raw in [
        "SSH-2.0-OpenSSH_9.2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    ] {
        let peer = FakePeer::start(move |_, _| Reply::Raw(raw));
        let mut client = Client::new(Duration::from_secs(5));
        let error = client.post(&endpoint(&peer.url()), &[], b"x").unwrap_err();
        assert!(matches!(error, HttpError::Malformed(_)), "{raw:?}: {error}");
        assert!(!error.is_transient());
    }
}

#[test]
fn a_large_error_body_is_read_through_but_only_its_start_kept() {
    static BIG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let big: &'static str = BIG.get_or_init(|| "e".repeat(100_000));
    let peer = FakePeer::start(move |n, _| match n {
        0 => Reply::Status(500, big),
        _ => Reply::Status(204, ""),
    });
    let mut client = Client::new(Duration::from_secs(5));
    let target = endpoint(&peer.url());
    let response = client.post(&target, &[], b"x").unwrap();
    assert_eq!(response.status, 500);
    assert_eq!(response.body.len(), BODY_BYTES_KEPT);
    assert_eq!(client.post(&target, &[], b"x").unwrap().status, 204);
    assert_eq!(peer.connections(), 1);
}
