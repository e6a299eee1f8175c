//! Tests of request parsing: heads, bodies, chunked framing, forms, limits.

use super::*;
use proptest::prelude::*;

const MAX: usize = 64 * 1024;

fn complete(buf: &[u8]) -> Head {
    match parse_head(buf, MAX) {
        Parse::Complete(h) => h,
        other => panic!("expected a complete head, got {other:?}"),
    }
}

fn error(buf: &[u8]) -> HttpError {
    match parse_head(buf, MAX) {
        Parse::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn parses_get_with_query_and_decoded_path() {
    let buf = b"GET /loki/api/v1/label/host%20name/values?start=1&end=2 HTTP/1.1\r\n\
                Host: x\r\nX-Scope-OrgID: team-a\r\n\r\nNEXT";
    let h = complete(buf);
    assert_eq!(h.method, Method::Get);
    assert_eq!(h.path, "/loki/api/v1/label/host name/values");
    assert_eq!(h.query, "start=1&end=2");
    assert_eq!(h.version_minor, 1);
    assert_eq!(h.framing, BodyFraming::Empty);
    assert!(h.keep_alive);
    assert_eq!(&buf[h.head_bytes..], b"NEXT");
    assert_eq!(
        h.headers[1],
        ("x-scope-orgid".to_string(), "team-a".to_string())
    );
}

#[test]
fn partial_until_the_empty_line() {
    assert_eq!(
        parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n", MAX),
        Parse::Partial
    );
    assert_eq!(parse_head(b"", MAX), Parse::Partial);
    assert_eq!(parse_head(b"\r\n", MAX), Parse::Partial);
}

#[test]
fn head_limit_applies_to_partial_and_complete_heads() {
    let mut buf = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    buf.resize(100, b'a');
    assert_eq!(
        parse_head(&buf, 100),
        Parse::Error(HttpError::HeadTooLarge {
            head_bytes_max: 100
        })
    );
    buf.extend_from_slice(b"\r\n\r\n");
    assert_eq!(
        parse_head(&buf, 100),
        Parse::Error(HttpError::HeadTooLarge {
            head_bytes_max: 100
        })
    );
    assert!(matches!(parse_head(&buf, 200), Parse::Complete(_)));
}

#[test]
fn framing_rules() {
    let h = complete(b"POST /p HTTP/1.1\r\nContent-Length: 12\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Length(12));
    let h = complete(b"POST /p HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Length(5));
    let h = complete(b"POST /p HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Chunked);
    assert_eq!(
        error(b"POST /p HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n").status(),
        400
    );
    assert_eq!(
        error(b"POST /p HTTP/1.1\r\nContent-Length: -1\r\n\r\n").status(),
        400
    );
    assert_eq!(
        error(b"POST /p HTTP/1.1\r\nContent-Length: +1\r\n\r\n").status(),
        400
    );
    assert_eq!(
        error(b"POST /p HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n").status(),
        400
    );
    assert_eq!(
        error(b"POST /p HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
            .status(),
        400
    );
    assert_eq!(
        error(b"POST /p HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").status(),
        501
    );
    assert_eq!(
        error(b"POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").status(),
        400
    );
}

#[test]
fn connection_and_expect() {
    assert!(!complete(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
    assert!(!complete(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    let h = complete(b"POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n");
    assert!(h.expect_continue);
    let h = complete(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    assert!(!h.expect_continue);
    assert_eq!(
        error(b"POST / HTTP/1.1\r\nExpect: magic\r\n\r\n").status(),
        417
    );
}

#[test]
fn targets() {
    let h = complete(b"GET http://example.com:3100/ready?x=1 HTTP/1.1\r\n\r\n");
    assert_eq!((h.path.as_str(), h.query.as_str()), ("/ready", "x=1"));
    let h = complete(b"GET http://example.com HTTP/1.1\r\n\r\n");
    assert_eq!(h.path, "/");
    let h = complete(b"OPTIONS * HTTP/1.1\r\n\r\n");
    assert_eq!(h.path, "*");
    assert_eq!(error(b"GET ready HTTP/1.1\r\n\r\n").status(), 400);
    assert_eq!(error(b"GET /a%zz HTTP/1.1\r\n\r\n").status(), 400);
    assert_eq!(error(b"GET /a%ff HTTP/1.1\r\n\r\n").status(), 400);
    assert_eq!(error(b"GET /a% HTTP/1.1\r\n\r\n").status(), 400);
}

#[test]
fn garbage_and_too_many_headers() {
    assert_eq!(error(b"\x00\x01\x02 garbage\r\n\r\n").status(), 400);
    assert_eq!(error(b"GET / HTTP/9.9\r\n\r\n").status(), 400);
    let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..=HEADERS_COUNT_MAX {
        buf.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
    }
    buf.extend_from_slice(b"\r\n");
    assert_eq!(error(&buf).status(), 431);
}

#[test]
fn form_decoding() {
    let pairs =
        decode_form(b"query=%7Bapp%3D%22x%22%7D+%7C%3D+%22a%2Bb%22&limit=10&&flag").unwrap();
    assert_eq!(
        pairs,
        vec![
            ("query".into(), "{app=\"x\"} |= \"a+b\"".into()),
            ("limit".into(), "10".into()),
            ("flag".into(), String::new()),
        ]
    );
    assert_eq!(decode_form(b"a=%2").unwrap_err().status(), 400);
    assert_eq!(percent_decode(b"a+b", false).unwrap(), "a+b");
}

fn decode_all(input: &[u8], max: usize) -> Result<(Vec<u8>, usize), HttpError> {
    let mut d = ChunkedDecoder::new(max);
    let mut out = Vec::new();
    let used = d.decode(input, &mut out)?;
    assert!(d.is_done(), "body not finished");
    Ok((out, used))
}

#[test]
fn chunked_bodies() {
    let (out, used) = decode_all(
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT",
        100,
    )
    .unwrap();
    assert_eq!(out, b"hello world");
    assert_eq!(used, 40);
    let (out, _) = decode_all(b"A\nabcdefghij\n0\n\n", 100).unwrap();
    assert_eq!(out, b"abcdefghij");
    assert_eq!(
        decode_all(b"5\r\nhello\r\n0\r\n\r\n", 4)
            .unwrap_err()
            .status(),
        413
    );
    assert_eq!(
        decode_all(b"ffffffffffffffffff\r\n", 4)
            .unwrap_err()
            .status(),
        413
    );
    assert_eq!(decode_all(b"x\r\n", 4).unwrap_err().status(), 400);
    assert_eq!(decode_all(b"2\r\nabc\r\n", 4).unwrap_err().status(), 400);
}

#[test]
fn chunked_byte_at_a_time_matches_whole() {
    let input = b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n";
    let mut d = ChunkedDecoder::new(1000);
    let mut out = Vec::new();
    for b in input.iter() {
        assert_eq!(d.decode(std::slice::from_ref(b), &mut out).unwrap(), 1);
    }
    assert!(d.is_done());
    assert_eq!(out, b"abc0123456789abcdef");
}

proptest! {
    #[test]
    fn parse_head_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..512), max in 1usize..1024) {
        match parse_head(&buf, max) {
            Parse::Complete(h) => prop_assert!(h.head_bytes <= buf.len() && h.head_bytes <= max),
            Parse::Partial => prop_assert!(buf.len() < max),
            Parse::Error(e) => prop_assert!(e.status() >= 400),
        }
    }

    #[test]
    fn parse_head_never_panics_on_near_valid_heads(
        line in "(GET|POST|HEAD|X) [ -~]{0,20} HTTP/1\\.[01]\r\n",
        headers in proptest::collection::vec("[!-~]{0,8}:[ -~]{0,12}\r\n", 0..8),
        tail in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut buf = line.into_bytes();
        for h in headers {
            buf.extend_from_slice(h.as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(&tail);
        let _ = parse_head(&buf, MAX);
    }

    #[test]
    fn chunked_decoder_never_panics_and_respects_limit(
        input in proptest::collection::vec(any::<u8>(), 0..512),
        split in 0usize..512,
        max in 0usize..256,
    ) {
        let mut d = ChunkedDecoder::new(max);
        let mut out = Vec::new();
        let split = split.min(input.len());
        if let Ok(used) = d.decode(&input[..split], &mut out) {
            prop_assert!(used == split || d.is_done());
            if !d.is_done() {
                let _ = d.decode(&input[split..], &mut out);
            }
        }
        prop_assert!(out.len() <= max);
    }

    #[test]
    fn chunked_roundtrip(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..64), 0..8)) {
        let mut wire = Vec::new();
        for c in &chunks {
            wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            wire.extend_from_slice(c);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        let (out, used) = decode_all(&wire, 1 << 20).unwrap();
        prop_assert_eq!(out, chunks.concat());
        prop_assert_eq!(used, wire.len());
    }

    #[test]
    fn form_decoding_never_panics(input in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_form(&input);
    }
}
