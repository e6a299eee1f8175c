//! RFC 6587 framing of a syslog TCP byte stream, detected per frame.
//!
//! Which question it answers: "where does the next syslog message in this connection's read
//! buffer start and end?" [`Framer::decode`] is a zero-copy decoder: it looks at the
//! unconsumed bytes of a connection's read buffer and either hands out one message as a
//! sub-slice of that buffer, asks for more bytes, or tells the caller to throw bytes away.
//! It never allocates and never copies.
//!
//! # Framing rules, decided for every frame on its own
//!
//! - **Octet counting** (`LEN SP MSG`): the frame starts with a count (1 to
//!   [`COUNT_DIGITS_MAX`] ASCII digits, no leading zero), one space and a `<`, the first byte
//!   of every RFC 5424/3164 message (its PRI). MSG is exactly LEN bytes, starting at the `<`.
//!   Requiring the `<` keeps plain text lines that happen to start with a number (`134681
//!   node-246 ...`) on newline framing, where a misread count would swallow the stream.
//!   A trailing LF (or CRLF) inside MSG is stripped: rsyslog and `loggen -P` count it,
//!   `logger --octet-count` neither counts nor sends it.
//! - **Newline framing** otherwise: the frame ends at LF or NUL (some senders terminate with
//!   NUL); a CR directly before the terminator is stripped.
//! - **Empty lines are skipped.** This also covers senders that count no LF and then send
//!   one anyway: the LF (or CRLF) after an octet-counted frame is an empty line.
//! - **At end of stream**, remaining bytes without a terminator are one last message (an
//!   incomplete octet-counted frame is returned as far as it got, marked truncated).
//! - **Maximum frame size**: a message longer than `frame_bytes_max` is cut; its first
//!   `frame_bytes_max` bytes are returned with `truncated = true` and the rest of the frame is
//!   skipped, up to the next terminator (newline framing) or exactly LEN bytes (octet
//!   counting), so the connection resynchronises and stays usable.
//!
//! # Buffer contract
//!
//! The caller keeps a read buffer per connection, passes all of its unconsumed bytes to
//! [`Framer::decode`], drops `consumed` bytes from its front after a `Frame` or `Skipped`,
//! and reads more after `NeedMore`. `NeedMore` is only returned while fewer than
//! [`Framer::buffer_bytes_min`] bytes are buffered, so a buffer that can grow to that size
//! always makes progress: no byte sequence can make the decoder wait forever.

use memchr::memchr2;

/// Default longest message kept from one frame. 64 KiB is rsyslog's largest common
/// `$MaxMessageSize` setting and Loki's default line limit is far above typical syslog
/// lines; anything longer is a runaway sender and is cut, not buffered without bound.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 64 * 1024;

/// Longest digit run read as an octet count. Ten digits hold any count a 32-bit sender can
/// produce; a longer run is not a count (so a line of digits cannot make the decoder wait
/// for an ever longer header) and the frame falls back to newline framing.
pub const COUNT_DIGITS_MAX: usize = 10;

/// Largest octet count believed. No syslog sender produces a single message of a GiB; a
/// larger count is a corrupt header, and skipping that many bytes would swallow the rest of
/// the connection, so such a frame falls back to newline framing and resyncs at the next LF.
pub const OCTET_COUNT_MAX: u64 = 1 << 30;

const LF: u8 = b'\n';
const CR: u8 = b'\r';
const NUL: u8 = 0;
const SP: u8 = b' ';
const PRI_START: u8 = b'<';

/// What [`Framer::decode`] found at the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// One message, its terminator (LF, CRLF, NUL) or trailing counted LF stripped. The caller
    /// drops `consumed` bytes (which may include empty lines before the frame). With
    /// `truncated`, the message was longer than `frame_bytes_max` (or the stream ended inside
    /// an octet-counted frame) and only its first bytes are here.
    Frame {
        message: &'a [u8],
        consumed: usize,
        truncated: bool,
    },
    /// The frame at the front is incomplete: read more bytes, append them and call again with
    /// the same (grown) buffer. With `eof`, this is only returned for an empty buffer: the
    /// stream is fully decoded.
    NeedMore,
    /// Bytes to drop without a message: empty lines, or the rest of an oversized frame.
    Skipped { consumed: usize, reason: SkipReason },
}

/// Why bytes were skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Empty lines (LF, CRLF or NUL alone). Not data loss: there was nothing in them.
    EmptyLines,
    /// The rest of a frame whose first `frame_bytes_max` bytes were returned truncated.
    OversizedRest,
}

impl SkipReason {
    /// Whether the skipped bytes carried log data (to be counted as dropped bytes).
    pub fn is_data_loss(self) -> bool {
        matches!(self, SkipReason::OversizedRest)
    }
}

/// What remains to be thrown away of an oversized frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    None,
    /// The rest of an octet-counted frame: exactly this many bytes.
    Octets(u64),
    /// The rest of a newline-framed line, up to and including its terminator.
    ToTerminator,
}

/// Splits one connection's byte stream into syslog messages. One per connection: it holds
/// the state of an oversized frame being skipped across reads.
#[derive(Debug, Clone)]
pub struct Framer {
    frame_bytes_max: usize,
    skip: Skip,
}

/// How the frame at the front of the buffer is framed, once that can be told.
enum Header {
    /// `LEN SP` of `header_len` bytes, MSG follows.
    Counted {
        len: u64,
        header_len: usize,
    },
    Newline,
    /// Not enough bytes to tell yet.
    Undecided,
}

impl Framer {
    /// A framer that cuts messages longer than `frame_bytes_max` bytes (at least 1).
    pub fn new(frame_bytes_max: usize) -> Framer {
        assert!(frame_bytes_max > 0, "frame_bytes_max must be at least 1");
        Framer {
            frame_bytes_max,
            skip: Skip::None,
        }
    }

    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    /// The buffer size below which [`Decoded::NeedMore`] can be returned: a connection's read
    /// buffer must be able to grow to at least this many bytes. It is the longest count
    /// header, a full message and a CRLF.
    pub fn buffer_bytes_min(&self) -> usize {
        COUNT_DIGITS_MAX + 1 + self.frame_bytes_max + 2
    }

    /// Decodes the frame at the front of `buf` (all unconsumed bytes of the connection).
    /// `eof` says no more bytes will come. Every `Frame` and `Skipped` consumes at least one
    /// byte.
    pub fn decode<'a>(&mut self, buf: &'a [u8], eof: bool) -> Decoded<'a> {
        if buf.is_empty() {
            return Decoded::NeedMore;
        }
        match self.skip {
            Skip::None => {}
            Skip::Octets(remaining) => {
                let n = remaining.min(buf.len() as u64);
                self.skip = if n == remaining {
                    Skip::None
                } else {
                    Skip::Octets(remaining - n)
                };
                return skipped(n as usize, SkipReason::OversizedRest);
            }
            Skip::ToTerminator => {
                let consumed = match memchr2(LF, NUL, buf) {
                    Some(end) => {
                        self.skip = Skip::None;
                        end + 1
                    }
                    None => buf.len(),
                };
                return skipped(consumed, SkipReason::OversizedRest);
            }
        }

        let empty = empty_prefix_len(buf, eof);
        if empty == buf.len() {
            return skipped(empty, SkipReason::EmptyLines);
        }
        match self.decode_frame(&buf[empty..], eof) {
            Decoded::Frame {
                message,
                consumed,
                truncated,
            } => Decoded::Frame {
                message,
                consumed: empty + consumed,
                truncated,
            },
            // Drop the empty lines now so that they never count against the buffer size.
            _ if empty > 0 => skipped(empty, SkipReason::EmptyLines),
            other => other,
        }
    }

    /// Decodes a frame that starts at `buf[0]` (not an empty line, no skip in progress).
    fn decode_frame<'a>(&mut self, buf: &'a [u8], eof: bool) -> Decoded<'a> {
        match header(buf, eof) {
            Header::Undecided => Decoded::NeedMore,
            Header::Counted { len, header_len } => self.decode_counted(buf, len, header_len, eof),
            Header::Newline => self.decode_line(buf, eof),
        }
    }

    fn decode_counted<'a>(
        &mut self,
        buf: &'a [u8],
        len: u64,
        header_len: usize,
        eof: bool,
    ) -> Decoded<'a> {
        let max = self.frame_bytes_max;
        let body = &buf[header_len..];
        // A message is whole if it fits once a counted LF or CRLF is stripped, so up to
        // max + 2 bytes are waited for; beyond that, max bytes suffice to return the cut.
        if len <= (max + 2) as u64 {
            let len = len as usize;
            if body.len() < len {
                if !eof {
                    return Decoded::NeedMore;
                }
                let message = strip_counted_lf(body);
                let message = &message[..message.len().min(max)];
                return frame(message, buf.len(), true);
            }
            let message = strip_counted_lf(&body[..len]);
            let truncated = message.len() > max;
            return frame(
                &message[..message.len().min(max)],
                header_len + len,
                truncated,
            );
        }
        if body.len() < max {
            if !eof {
                return Decoded::NeedMore;
            }
            return frame(body, buf.len(), true);
        }
        self.skip = Skip::Octets(len - max as u64);
        frame(&body[..max], header_len + max, true)
    }

    fn decode_line<'a>(&mut self, buf: &'a [u8], eof: bool) -> Decoded<'a> {
        let max = self.frame_bytes_max;
        // A line of max bytes plus CR and terminator is still whole: look that far.
        let window = &buf[..buf.len().min(max + 2)];
        if let Some(end) = memchr2(LF, NUL, window) {
            let message = strip_cr(&buf[..end]);
            let truncated = message.len() > max;
            return frame(&message[..message.len().min(max)], end + 1, truncated);
        }
        if buf.len() >= max + 2 {
            // At least max + 1 bytes of content: cut it and skip to the terminator.
            self.skip = Skip::ToTerminator;
            return frame(&buf[..max], max, true);
        }
        if !eof {
            return Decoded::NeedMore;
        }
        let message = strip_cr(buf);
        let truncated = message.len() > max;
        frame(&message[..message.len().min(max)], buf.len(), truncated)
    }
}

fn frame(message: &[u8], consumed: usize, truncated: bool) -> Decoded<'_> {
    debug_assert!(consumed > 0, "a frame always consumes bytes");
    Decoded::Frame {
        message,
        consumed,
        truncated,
    }
}

fn skipped<'a>(consumed: usize, reason: SkipReason) -> Decoded<'a> {
    debug_assert!(consumed > 0, "a skip always consumes bytes");
    Decoded::Skipped { consumed, reason }
}

/// Length of the empty lines (LF, NUL, CRLF, CR NUL) at the front of `buf`. A CR as the last
/// byte may start a CRLF: it is left alone unless the stream has ended.
fn empty_prefix_len(buf: &[u8], eof: bool) -> usize {
    let mut i = 0;
    while i < buf.len() {
        match buf[i] {
            LF | NUL => i += 1,
            CR => match buf.get(i + 1) {
                Some(&LF) | Some(&NUL) => i += 2,
                Some(_) => break,
                None if eof => i += 1,
                None => break,
            },
            _ => break,
        }
    }
    i
}

/// Tells octet counting from newline framing at the front of `buf`.
fn header(buf: &[u8], eof: bool) -> Header {
    let digits = buf
        .iter()
        .take(COUNT_DIGITS_MAX + 1)
        .take_while(|b| b.is_ascii_digit())
        .count();
    // Leading zeros are allowed: loggen pads its counts (`000000107 <38>...`).
    if digits == 0 || digits > COUNT_DIGITS_MAX {
        return Header::Newline;
    }
    // Count, space and the PRI's '<' must all be there to decide.
    match (buf.get(digits), buf.get(digits + 1)) {
        (Some(&SP), Some(&PRI_START)) => {}
        (None, _) | (Some(&SP), None) if !eof => return Header::Undecided,
        _ => return Header::Newline,
    }
    let len = buf[..digits]
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    if len == 0 || len > OCTET_COUNT_MAX {
        return Header::Newline;
    }
    Header::Counted {
        len,
        header_len: digits + 1,
    }
}

/// Strips one trailing LF (and a CR before it) that an octet count included.
fn strip_counted_lf(msg: &[u8]) -> &[u8] {
    match msg.split_last() {
        Some((&LF, rest)) => strip_cr(rest),
        _ => msg,
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    match line.split_last() {
        Some((&CR, rest)) => rest,
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One decoded message: its bytes and whether it was cut.
    type Msg = (Vec<u8>, bool);

    /// Feeds `chunks` to a framer the way a connection does: unconsumed bytes stay in the
    /// buffer, newly read bytes are appended, the last chunk comes with end of stream. Checks
    /// the buffer contract on every call.
    fn decode_chunks(frame_bytes_max: usize, chunks: &[&[u8]]) -> (Vec<Msg>, usize) {
        let mut framer = Framer::new(frame_bytes_max);
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        let mut lost_bytes = 0;
        for (k, chunk) in chunks.iter().enumerate() {
            buf.extend_from_slice(chunk);
            let eof = k + 1 == chunks.len();
            loop {
                match framer.decode(&buf, eof) {
                    Decoded::Frame {
                        message,
                        consumed,
                        truncated,
                    } => {
                        assert!(consumed > 0 && consumed <= buf.len());
                        assert!(message.len() <= frame_bytes_max);
                        out.push((message.to_vec(), truncated));
                        buf.drain(..consumed);
                    }
                    Decoded::Skipped { consumed, reason } => {
                        assert!(consumed > 0 && consumed <= buf.len());
                        if reason.is_data_loss() {
                            lost_bytes += consumed;
                        }
                        buf.drain(..consumed);
                    }
                    Decoded::NeedMore => {
                        assert!(
                            buf.len() < framer.buffer_bytes_min(),
                            "NeedMore with {} bytes buffered",
                            buf.len()
                        );
                        assert!(!eof || buf.is_empty(), "NeedMore at eof with bytes left");
                        break;
                    }
                }
            }
        }
        (out, lost_bytes)
    }

    fn decode_all(frame_bytes_max: usize, stream: &[u8]) -> Vec<Msg> {
        decode_chunks(frame_bytes_max, &[stream]).0
    }

    fn msgs(list: &[(&str, bool)]) -> Vec<Msg> {
        list.iter()
            .map(|(m, t)| (m.as_bytes().to_vec(), *t))
            .collect()
    }

    #[test]
    fn newline_framing_strips_lf_crlf_and_nul() {
        let got = decode_all(100, b"a b\nc\r\nd\0e\r\0last");
        assert_eq!(
            got,
            msgs(&[
                ("a b", false),
                ("c", false),
                ("d", false),
                ("e", false),
                ("last", false)
            ])
        );
    }

    #[test]
    fn empty_lines_are_skipped() {
        let got = decode_all(100, b"\n\r\n\0a\n\n\n\r\nb\n\r");
        assert_eq!(got, msgs(&[("a", false), ("b", false)]));
        assert!(decode_all(100, b"\n\n\r\n").is_empty());
    }

    #[test]
    fn octet_counted_with_and_without_counted_lf() {
        // rsyslog / loggen -P count the LF; logger --octet-count neither counts nor sends it.
        let got = decode_all(100, b"6 <13>ab\n5 <13>c7 <13>d\r\n");
        assert_eq!(
            got,
            msgs(&[("<13>ab", false), ("<13>c", false), ("<13>d", false)])
        );
    }

    #[test]
    fn uncounted_lf_after_octet_frame_is_skipped() {
        let got = decode_all(100, b"5 <13>a\n5 <13>b\r\n5 <13>c");
        assert_eq!(
            got,
            msgs(&[("<13>a", false), ("<13>b", false), ("<13>c", false)])
        );
    }

    #[test]
    fn octet_counted_message_keeps_inner_newlines() {
        let got = decode_all(100, b"9 <1>a\nb\0c\n");
        assert_eq!(got, msgs(&[("<1>a\nb\0c", false)]));
    }

    #[test]
    fn framing_is_decided_per_frame() {
        let got = decode_all(100, b"<1>line\n4 <1>x5 <1>y\n\n<1>z\n");
        assert_eq!(
            got,
            msgs(&[
                ("<1>line", false),
                ("<1>x", false),
                ("<1>y", false),
                ("<1>z", false)
            ])
        );
    }

    #[test]
    fn digits_not_followed_by_space_and_pri_are_newline_framed() {
        let got = decode_all(
            100,
            b"134681 node-246 unix.hw\n081109 203615 148 INFO\n12345\n0 <1>x\n2024-01-01 x\n",
        );
        assert_eq!(
            got,
            msgs(&[
                ("134681 node-246 unix.hw", false),
                ("081109 203615 148 INFO", false),
                ("12345", false),
                ("0 <1>x", false),
                ("2024-01-01 x", false),
            ])
        );
    }

    #[test]
    fn long_digit_run_is_not_a_count_and_does_not_wait() {
        let mut framer = Framer::new(100);
        // Eleven digits: decided as newline framing without waiting for a space.
        assert_eq!(framer.decode(b"12345678901", false), Decoded::NeedMore);
        let got = decode_all(100, b"12345678901 <1>x\n");
        assert_eq!(got, msgs(&[("12345678901 <1>x", false)]));
        // Ten digits and a space: still undecided until the byte after the space.
        assert_eq!(framer.decode(b"1234567890 ", false), Decoded::NeedMore);
    }

    #[test]
    fn absurd_count_falls_back_to_newline_framing() {
        let got = decode_all(100, b"9999999999 <1>abc\n<1>next\n");
        assert_eq!(
            got,
            msgs(&[("9999999999 <1>abc", false), ("<1>next", false)])
        );
    }

    #[test]
    fn oversized_line_is_cut_and_the_connection_resyncs() {
        let (got, lost) = decode_chunks(4, &[b"abcdefgh\nij\nklmnop"]);
        assert_eq!(got, msgs(&[("abcd", true), ("ij", false), ("klmn", true)]));
        assert_eq!(lost, "efgh\n".len() + "op".len());
    }

    #[test]
    fn line_of_exactly_the_maximum_is_whole() {
        let got = decode_all(4, b"abcd\r\nabcd\nabcde\r\n");
        assert_eq!(
            got,
            msgs(&[("abcd", false), ("abcd", false), ("abcd", true)])
        );
    }

    #[test]
    fn oversized_octet_frame_is_cut_and_exactly_len_bytes_skipped() {
        let (got, lost) = decode_chunks(4, &[b"10 <1>abcdefg3 <1>"]);
        assert_eq!(got, msgs(&[("<1>a", true), ("<1>", false)]));
        assert_eq!(lost, 6);
        // Counted LF within the limit: whole.
        let got = decode_all(4, b"5 <1>a\n6 <1>a\r\n");
        assert_eq!(got, msgs(&[("<1>a", false), ("<1>a", false)]));
    }

    #[test]
    fn oversized_skip_spans_many_reads() {
        let mut framer = Framer::new(4);
        assert_eq!(
            framer.decode(b"20 <1>ab", false),
            Decoded::Frame {
                message: b"<1>a",
                consumed: 7,
                truncated: true
            }
        );
        assert_eq!(
            framer.decode(b"b", false),
            Decoded::Skipped {
                consumed: 1,
                reason: SkipReason::OversizedRest
            }
        );
        assert_eq!(
            framer.decode(&[b'x'; 14], false),
            Decoded::Skipped {
                consumed: 14,
                reason: SkipReason::OversizedRest
            }
        );
        assert_eq!(
            framer.decode(b"xz\n", false),
            Decoded::Skipped {
                consumed: 1,
                reason: SkipReason::OversizedRest
            }
        );
        assert_eq!(
            framer.decode(b"z\n", false),
            Decoded::Frame {
                message: b"z",
                consumed: 2,
                truncated: false
            }
        );
    }

    #[test]
    fn eof_flushes_the_last_unterminated_message() {
        assert_eq!(
            decode_all(100, b"a\nlast\r"),
            msgs(&[("a", false), ("last", false)])
        );
        // An octet-counted frame cut by the end of the stream is kept, marked truncated.
        assert_eq!(decode_all(100, b"10 <1>abc"), msgs(&[("<1>abc", true)]));
        // Digits alone at the end are a line.
        assert_eq!(decode_all(100, b"123"), msgs(&[("123", false)]));
        let mut framer = Framer::new(100);
        assert_eq!(framer.decode(b"", true), Decoded::NeedMore);
        assert_eq!(framer.decode(b"partial", false), Decoded::NeedMore);
    }

    #[test]
    fn empty_lines_before_an_incomplete_frame_are_released() {
        let mut framer = Framer::new(100);
        assert_eq!(
            framer.decode(b"\n\n5 <1>", false),
            Decoded::Skipped {
                consumed: 2,
                reason: SkipReason::EmptyLines
            }
        );
        assert!(!SkipReason::EmptyLines.is_data_loss());
    }

    /// One frame of a generated stream and the message it must decode to.
    #[derive(Debug, Clone)]
    enum Gen {
        Counted {
            body: Vec<u8>,
            counted_lf: bool,
            extra: &'static [u8],
        },
        Line {
            body: Vec<u8>,
            terminator: &'static [u8],
        },
        Empty(&'static [u8]),
    }

    const FRAME_BYTES_MAX_TEST: usize = 8;

    fn gen_frame() -> impl Strategy<Value = Gen> {
        // Counted bodies start with the PRI '<' and may hold any byte but must not end with
        // LF/CR (which would read as a counted terminator).
        let counted_body = (
            proptest::collection::vec(any::<u8>(), 0..12),
            proptest::sample::select(vec![b'a', b'>', b'0', b' ']),
        )
            .prop_map(|(mut mid, last)| {
                let mut body = vec![b'<'];
                body.append(&mut mid);
                body.push(last);
                body
            });
        // Line bodies never start with a digit (that could read as a count), hold no
        // terminator and end with a letter (a CR there would be stripped); a CR elsewhere,
        // even first, is content.
        let line_body = (
            proptest::sample::select(vec![b'x', b'\r']),
            proptest::collection::vec(proptest::sample::select(b"ab1 <>\r".to_vec()), 0..12),
        )
            .prop_map(|(first, mut rest)| {
                let mut body = vec![first];
                body.append(&mut rest);
                body.push(b'y');
                body
            });
        prop_oneof![
            (
                counted_body,
                any::<bool>(),
                proptest::sample::select(vec![&b""[..], b"\n", b"\r\n"])
            )
                .prop_map(|(body, counted_lf, extra)| Gen::Counted {
                    body,
                    counted_lf,
                    extra
                }),
            (
                line_body,
                proptest::sample::select(vec![&b"\n"[..], b"\r\n", b"\0", b"\r\0"])
            )
                .prop_map(|(body, terminator)| Gen::Line { body, terminator }),
            proptest::sample::select(vec![&b"\n"[..], b"\r\n", b"\0", b"\r\0"])
                .prop_map(Gen::Empty),
        ]
    }

    /// Serialises generated frames; the last line may lose its terminator (flushed at eof).
    fn build(frames: &[Gen], last_unterminated: bool) -> (Vec<u8>, Vec<Msg>) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        let max = FRAME_BYTES_MAX_TEST;
        for (i, f) in frames.iter().enumerate() {
            match f {
                Gen::Counted {
                    body,
                    counted_lf,
                    extra,
                } => {
                    let len = body.len() + usize::from(*counted_lf);
                    stream.extend_from_slice(format!("{len} ").as_bytes());
                    stream.extend_from_slice(body);
                    if *counted_lf {
                        stream.push(b'\n');
                    }
                    stream.extend_from_slice(extra);
                    expected.push((body[..body.len().min(max)].to_vec(), body.len() > max));
                }
                Gen::Line { body, terminator } => {
                    stream.extend_from_slice(body);
                    if !(last_unterminated && i + 1 == frames.len()) {
                        stream.extend_from_slice(terminator);
                    }
                    expected.push((body[..body.len().min(max)].to_vec(), body.len() > max));
                }
                Gen::Empty(bytes) => stream.extend_from_slice(bytes),
            }
        }
        (stream, expected)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Every split of the stream into two or three reads decodes to the same messages as
        /// the whole stream, and those are the messages that were framed.
        #[test]
        fn every_split_decodes_the_same(
            frames in proptest::collection::vec(gen_frame(), 1..7),
            last_unterminated in any::<bool>(),
        ) {
            let (stream, expected) = build(&frames, last_unterminated);
            let (whole, _) = decode_chunks(FRAME_BYTES_MAX_TEST, &[&stream]);
            prop_assert_eq!(&whole, &expected);
            for i in 0..=stream.len() {
                let (a, b) = stream.split_at(i);
                let (got, _) = decode_chunks(FRAME_BYTES_MAX_TEST, &[a, b]);
                prop_assert_eq!(&got, &expected, "split at {}", i);
                for j in i..=stream.len() {
                    let (b, c) = stream[i..].split_at(j - i);
                    let (got, _) = decode_chunks(FRAME_BYTES_MAX_TEST, &[a, b, c]);
                    prop_assert_eq!(&got, &expected, "split at {} and {}", i, j);
                }
            }
        }

        /// Arbitrary bytes in arbitrary reads: never a panic, never a stuck buffer.
        #[test]
        fn arbitrary_bytes_always_make_progress(
            stream in proptest::collection::vec(
                proptest::sample::select(b"0123456789 <>\r\n\0ab".to_vec()), 0..200),
            cut in 0usize..200,
        ) {
            let cut = cut.min(stream.len());
            let (a, b) = stream.split_at(cut);
            decode_chunks(5, &[a, b]);
        }
    }
}
