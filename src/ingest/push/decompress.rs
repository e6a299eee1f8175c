//! Bounded decompression of request bodies: HTTP `Content-Encoding` (gzip, deflate, identity)
//! and the raw snappy block of Loki's protobuf pushes.
//!
//! Which question it answers: "what are the bytes the client meant, if they fit?" A body that
//! inflates beyond the limit is refused after reading at most `limit + 1` bytes of output, so
//! a zip bomb costs no more memory than an honest body of the largest accepted size.

use std::borrow::Cow;
use std::io::Read;

use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

use super::PushError;

/// Largest first allocation for an inflated body. Compressed logs typically inflate 5 to 20
/// times; starting from a guess and letting the vector grow avoids committing the whole limit
/// to a small request.
const INFLATE_RESERVE_BYTES_MAX: usize = 1 << 20;

/// Undoes a `Content-Encoding`, refusing output larger than `limit` bytes.
///
/// Accepted encodings (case-insensitive): absent, empty or `identity` (the body is borrowed),
/// `gzip`/`x-gzip` (concatenated members are read as one stream, like Go's reader), and
/// `deflate`, which RFC 9110 defines as zlib-wrapped but which some clients send raw; the
/// zlib header is checked to tell the two apart.
pub fn decompress<'a>(
    content_encoding: Option<&str>,
    body: &'a [u8],
    limit: usize,
) -> Result<Cow<'a, [u8]>, PushError> {
    let encoding = content_encoding.map(str::trim).unwrap_or("");
    if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        if body.len() > limit {
            return Err(too_large(body.len(), limit));
        }
        return Ok(Cow::Borrowed(body));
    }
    let out = if encoding.eq_ignore_ascii_case("gzip") || encoding.eq_ignore_ascii_case("x-gzip") {
        inflate(MultiGzDecoder::new(body), "gzip", body.len(), limit)?
    } else if encoding.eq_ignore_ascii_case("deflate") {
        if has_zlib_header(body) {
            inflate(ZlibDecoder::new(body), "deflate", body.len(), limit)?
        } else {
            inflate(DeflateDecoder::new(body), "deflate", body.len(), limit)?
        }
    } else {
        return Err(PushError::UnsupportedMediaType(format!(
            "unsupported Content-Encoding '{}': supported encodings are gzip, deflate and identity",
            super::validate::echo(encoding)
        )));
    };
    Ok(Cow::Owned(out))
}

/// RFC 1950: compression method 8 (deflate) in the low nibble of CMF, a window of at most
/// 32 KiB, and a header checksum that makes `CMF * 256 + FLG` a multiple of 31.
fn has_zlib_header(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// Reads a decoder to its end through a `limit + 1` byte window: one byte more than allowed
/// proves the body too large without inflating the rest.
fn inflate(
    decoder: impl Read,
    name: &str,
    compressed_bytes: usize,
    limit: usize,
) -> Result<Vec<u8>, PushError> {
    let reserve = compressed_bytes
        .saturating_mul(4)
        .min(limit)
        .min(INFLATE_RESERVE_BYTES_MAX);
    let mut out = Vec::with_capacity(reserve);
    let window = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    decoder
        .take(window)
        .read_to_end(&mut out)
        .map_err(|e| PushError::BadRequest(format!("cannot decompress {name} body: {e}")))?;
    if out.len() > limit {
        return Err(too_large_inflated(name, limit));
    }
    Ok(out)
}

/// Decompresses a raw (block format, not framed) snappy body, checking the length it declares
/// against `limit` before allocating the output.
pub fn snappy(body: &[u8], limit: usize) -> Result<Vec<u8>, PushError> {
    let len = snap::raw::decompress_len(body)
        .map_err(|e| PushError::BadRequest(format!("cannot decompress snappy body: {e}")))?;
    if len > limit {
        return Err(PushError::TooLarge(format!(
            "snappy body declares {len} bytes decompressed, over the limit of {limit} bytes"
        )));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| PushError::BadRequest(format!("cannot decompress snappy body: {e}")))
}

/// Refuses a body longer than `limit` bytes (413 with Loki's words), before it is parsed.
pub fn check_body_size(body: &[u8], limit: usize) -> Result<(), PushError> {
    match body.len() > limit {
        true => Err(too_large(body.len(), limit)),
        false => Ok(()),
    }
}

fn too_large(len: usize, limit: usize) -> PushError {
    PushError::TooLarge(format!(
        "request body of {len} bytes is over the limit of {limit} bytes"
    ))
}

fn too_large_inflated(name: &str, limit: usize) -> PushError {
    PushError::TooLarge(format!(
        "{name} request body decompresses to more than the limit of {limit} bytes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    const TEXT: &[u8] = b"hello hello hello compressed world";

    #[test]
    fn identity_borrows_and_checks_the_limit() {
        for ce in [None, Some(""), Some("identity"), Some(" Identity ")] {
            let out = decompress(ce, TEXT, 100).unwrap();
            assert!(matches!(out, Cow::Borrowed(_)));
            assert_eq!(&*out, TEXT);
        }
        let err = decompress(None, TEXT, 10).unwrap_err();
        assert_eq!(err.status(), 413, "{err}");
    }

    #[test]
    fn gzip_and_both_deflates() {
        assert_eq!(&*decompress(Some("gzip"), &gzip(TEXT), 100).unwrap(), TEXT);
        assert_eq!(&*decompress(Some("GZIP"), &gzip(TEXT), 100).unwrap(), TEXT);
        assert_eq!(
            &*decompress(Some("deflate"), &zlib(TEXT), 100).unwrap(),
            TEXT
        );
        assert_eq!(
            &*decompress(Some("deflate"), &raw_deflate(TEXT), 100).unwrap(),
            TEXT
        );
        // Concatenated gzip members are one body.
        let mut two = gzip(b"ab");
        two.extend(gzip(b"cd"));
        assert_eq!(&*decompress(Some("gzip"), &two, 100).unwrap(), b"abcd");
    }

    #[test]
    fn exact_limit_is_accepted_one_more_is_not() {
        assert_eq!(
            decompress(Some("gzip"), &gzip(TEXT), TEXT.len())
                .unwrap()
                .len(),
            TEXT.len()
        );
        let err = decompress(Some("gzip"), &gzip(TEXT), TEXT.len() - 1).unwrap_err();
        assert_eq!(err.status(), 413, "{err}");
    }

    #[test]
    fn zip_bomb_is_refused_without_inflating_it() {
        // 64 MiB of zeros compress to about 64 KiB; the limit is 1 MiB.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            e.write_all(&zeros).unwrap();
        }
        let bomb = e.finish().unwrap();
        assert!(bomb.len() < 256 << 10);
        let err = decompress(Some("gzip"), &bomb, 1 << 20).unwrap_err();
        assert!(matches!(err, PushError::TooLarge(_)), "{err}");
        // The output buffer never grows past the window: check the reader bound directly.
        let mut out = Vec::new();
        MultiGzDecoder::new(&bomb[..])
            .take((1 << 20) + 1)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), (1 << 20) + 1);
    }

    #[test]
    fn malformed_and_unknown() {
        let err = decompress(Some("gzip"), b"not gzip at all", 100).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(
            err.to_string().contains("cannot decompress gzip body"),
            "{err}"
        );
        let mut truncated = gzip(TEXT);
        truncated.truncate(truncated.len() - 6);
        assert_eq!(
            decompress(Some("gzip"), &truncated, 100)
                .unwrap_err()
                .status(),
            400
        );
        let err = decompress(Some("br"), TEXT, 100).unwrap_err();
        assert_eq!(err.status(), 415);
        assert!(err.to_string().contains("'br'"), "{err}");
    }

    #[test]
    fn snappy_checks_declared_length_first() {
        let body = snap::raw::Encoder::new().compress_vec(TEXT).unwrap();
        assert_eq!(snappy(&body, 100).unwrap(), TEXT);
        assert_eq!(snappy(&body, 10).unwrap_err().status(), 413);
        // A header declaring 4 GiB with no data behind it: refused on the header alone.
        let liar = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(snappy(&liar, 1 << 20).unwrap_err().status(), 413);
        assert_eq!(snappy(&[0x05, 0x00], 100).unwrap_err().status(), 400);
        assert_eq!(snappy(&[], 100).unwrap_err().status(), 400);
    }
}
