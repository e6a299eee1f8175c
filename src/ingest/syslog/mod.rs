//! The syslog message parser: RFC 5424, RFC 3164 and the variants real senders produce.
//!
//! Which question it answers: "what did this syslog sender mean?" [`parse`] turns one framed
//! message (from [`super::framing`] or one UDP datagram) into a [`SyslogMessage`] that borrows
//! from the input, and [`to_entry`] turns that into the labels, timestamp, line and structured
//! metadata that get stored. Parsing never fails: what cannot be understood is kept whole as
//! an [`Format::Unparsed`] message, so no log line is lost to a parser's opinion.
//!
//! # What is understood
//!
//! - RFC 5424: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]`, with nil values,
//!   fractional seconds, offsets, a UTF-8 BOM before MSG, and leniently a header cut short or
//!   a missing SD. `logger --rfc5424` and `loggen -P` send this.
//! - RFC 3164 (BSD): `<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`, also without PRI (plain log
//!   files), with a space-padded day (`Jun  9`), without HOST (`logger` to a local socket),
//!   with an RFC 3339 timestamp instead (`loggen` without `-P`, rsyslog's high precision
//!   format; no zone means UTC). A BSD timestamp has no year: the year that puts it closest
//!   to now without being more than [`MISSING_YEAR_FUTURE_NS`] ahead is taken. It has no zone
//!   either and is read as UTC.
//! - Like rsyslog and syslog-ng, the TAG is the first word after HOST, ending at `[`, `:` or
//!   a space (`syslogd 1.4.1: restart.` is app `syslogd`); `(pam_unix)`-style suffixes stay in
//!   the app name.
//! - Anything else with a valid PRI is RFC 3164 with the rest as MSG. Without a PRI and a
//!   timestamp, or with an invalid PRI (`<999>`), or with nothing after the PRI, the input is
//!   [`Format::Unparsed`]: the whole input is the message and the level is `unknown`.
//!
//! Header fields are printable ASCII; MSG may hold any bytes: invalid UTF-8 is replaced by
//! U+FFFD (the only allocation on this path) and reported by
//! [`SyslogMessage::had_invalid_utf8`] so the caller can count it.
//!
//! A header timestamp outside the range every ingest path accepts
//! ([`crate::ingest::time_range`]: the Unix epoch to 2255, which also covers the times that
//! i64 nanoseconds cannot hold) is read as no timestamp, so the receive time stands in, and is
//! reported by [`SyslogMessage::had_time_out_of_range`] so the caller can count it.

use std::borrow::Cow;

use memchr::{memchr, memchr2};
use smallvec::SmallVec;

use crate::model::Labels;

mod timestamp;

use timestamp::*;

/// Longest HOSTNAME: RFC 5424's limit, which is also the longest DNS name.
pub const HOSTNAME_BYTES_MAX: usize = 255;
/// Longest APP-NAME / TAG. RFC 5424 says 48 and RFC 3164 32, but Java-style program names
/// run longer; 128 keeps them while bounding a label value an arbitrary sender controls.
pub const APP_NAME_BYTES_MAX: usize = 128;
/// Longest PROCID: RFC 5424's limit.
pub const PROCID_BYTES_MAX: usize = 128;
/// Longest MSGID: RFC 5424's limit.
pub const MSGID_BYTES_MAX: usize = 32;
/// Longest SD-ID or PARAM-NAME: RFC 5424's SD-NAME limit.
pub const SD_NAME_BYTES_MAX: usize = 32;
/// Structured-data params turned into metadata per message. Real senders use a handful; a
/// message with thousands would flood the metadata of one entry (the batch format allows
/// 1024 pairs), so params after this many are dropped (the MSG is still stored).
pub const SD_PARAMS_MAX: usize = 64;
/// How far in the future a BSD timestamp (which has no year) may land: a month covers clock
/// skew and a message from December 31st read on January 1st; anything later is taken to be
/// from the previous year.
pub const MISSING_YEAR_FUTURE_NS: i64 = 31 * NS_PER_DAY;
/// Digits of a fractional second kept: nanoseconds.
const FRACTION_DIGITS_MAX: usize = 9;
/// The largest valid PRI: facility 23 (local7), severity 7.
const PRI_MAX: u16 = 191;

const NS_PER_SEC: i64 = 1_000_000_000;
const NS_PER_DAY: i64 = 86_400 * NS_PER_SEC;
const SP: u8 = b' ';
const BOM: &[u8] = b"\xEF\xBB\xBF";
const NIL: &[u8] = b"-";

/// Which grammar a message was read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rfc5424,
    Rfc3164,
    /// Not syslog as far as can be told: the whole input is the message.
    Unparsed,
}

/// What the parser needs to know about the present: "now" fills in a missing year and a
/// missing timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseContext {
    pub now_ns: i64,
}

/// One parsed syslog message, borrowing from the input. Absent and nil (`-`) fields are
/// `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogMessage<'a> {
    pub format: Format,
    /// PRI value, 0..=191: facility * 8 + severity.
    pub pri: Option<u8>,
    pub timestamp_ns: Option<i64>,
    pub hostname: Option<&'a str>,
    /// APP-NAME, or the RFC 3164 TAG without its `[pid]`.
    pub app_name: Option<&'a str>,
    /// PROCID, or the `pid` of an RFC 3164 `TAG[pid]`.
    pub procid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    /// The raw STRUCTURED-DATA text with its brackets, checked against the RFC 5424 grammar;
    /// read it with [`SyslogMessage::sd_params`].
    pub structured_data: Option<&'a str>,
    /// MSG without a leading BOM.
    pub message: Cow<'a, str>,
    invalid_utf8: bool,
    time_out_of_range: bool,
}

impl<'a> SyslogMessage<'a> {
    /// Whether MSG (or SD) held invalid UTF-8, replaced by U+FFFD (MSG) or dropped (SD).
    pub fn had_invalid_utf8(&self) -> bool {
        self.invalid_utf8
    }

    /// Whether the header carried a timestamp outside the accepted range (then
    /// `timestamp_ns` is `None` and the receive time is used).
    pub fn had_time_out_of_range(&self) -> bool {
        self.time_out_of_range
    }

    /// Facility code 0..=23, from PRI.
    pub fn facility(&self) -> Option<u8> {
        self.pri.map(|p| p >> 3)
    }

    /// Severity code 0..=7, from PRI.
    pub fn severity(&self) -> Option<u8> {
        self.pri.map(|p| p & 7)
    }

    /// The structured-data params, in order.
    pub fn sd_params(&self) -> SdParams<'a> {
        SdParams {
            sd: self.structured_data.unwrap_or(""),
            pos: 0,
            id: "",
        }
    }
}

/// One `PARAM-NAME="value"` of an SD-ELEMENT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdParam<'a> {
    pub sd_id: &'a str,
    pub name: &'a str,
    /// The value as sent, with its escapes; see [`SdParam::value`].
    pub value_raw: &'a str,
}

impl<'a> SdParam<'a> {
    /// The value with `\"`, `\\` and `\]` unescaped (RFC 5424 6.3.3: a backslash before any
    /// other character is kept). Borrowed unless there was an escape.
    pub fn value(&self) -> Cow<'a, str> {
        let raw = self.value_raw;
        if memchr(b'\\', raw.as_bytes()).is_none() {
            return Cow::Borrowed(raw);
        }
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some(e @ ('"' | '\\' | ']')) => out.push(e),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        }
        Cow::Owned(out)
    }
}

/// Iterator over the params of a structured-data text (see [`SyslogMessage::sd_params`]).
/// Stops at the first thing that does not follow the grammar.
#[derive(Debug, Clone)]
pub struct SdParams<'a> {
    sd: &'a str,
    pos: usize,
    id: &'a str,
}

impl<'a> Iterator for SdParams<'a> {
    type Item = SdParam<'a>;

    fn next(&mut self) -> Option<SdParam<'a>> {
        let b = self.sd.as_bytes();
        loop {
            match *b.get(self.pos)? {
                b'[' => {
                    let start = self.pos + 1;
                    let len = sd_name_len(&b[start..])?;
                    self.id = self.sd.get(start..start + len)?;
                    self.pos = start + len;
                }
                b']' => self.pos += 1,
                SP => {
                    let start = self.pos + 1;
                    let len = sd_name_len(&b[start..])?;
                    let name = self.sd.get(start..start + len)?;
                    if b.get(start + len..start + len + 2)? != b"=\"" {
                        return None;
                    }
                    let value_start = start + len + 2;
                    let value_len = sd_value_len(b.get(value_start..)?)?;
                    let value_raw = self.sd.get(value_start..value_start + value_len)?;
                    self.pos = value_start + value_len + 1;
                    return Some(SdParam {
                        sd_id: self.id,
                        name,
                        value_raw,
                    });
                }
                _ => return None,
            }
        }
    }
}

/// Parses one message. Never fails and never panics: see the module doc for what is
/// understood. Trailing LF, CR and NUL (left by UDP senders) are not part of the message.
pub fn parse<'a>(input: &'a [u8], ctx: &ParseContext) -> SyslogMessage<'a> {
    let input = trim_terminators(input);
    let (pri, rest) = if input.first() == Some(&b'<') {
        match parse_pri(input) {
            Some((pri, len)) if len < input.len() => (Some(pri), &input[len..]),
            _ => return unparsed(input),
        }
    } else {
        (None, input)
    };
    if let (Some(pri), Some(header)) = (pri, rest.strip_prefix(b"1 "))
        && let Some(msg) = parse_5424(pri, header, true)
    {
        return msg;
    }
    // loggen replaying a file (`--read-file`) sends RFC 5424 without the version and with a
    // space after the PRI: `<38> 2024-01-01T00:00:00 host app 1234 - - msg`. An RFC 3164
    // timestamp never parses as RFC 3339, so this cannot take a BSD message.
    if let (Some(pri), Some(header)) = (pri, rest.strip_prefix(b" "))
        && header.first().is_some_and(u8::is_ascii_digit)
        && let Some(msg) = parse_5424(pri, header, false)
    {
        return msg;
    }
    parse_3164(input, pri, rest, ctx)
}

/// `<PRI>`: one to three digits, at most [`PRI_MAX`]. Returns the value and the length.
fn parse_pri(b: &[u8]) -> Option<(u8, usize)> {
    let digits = b[1..]
        .iter()
        .take(4)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if !(1..=3).contains(&digits) || b.get(1 + digits) != Some(&b'>') {
        return None;
    }
    let value = digits_value(&b[1..1 + digits]) as u16;
    (value <= PRI_MAX).then_some((value as u8, digits + 2))
}

/// `zone_required`: RFC 5424 demands a zone; loggen's version-less form sends none (UTC).
fn parse_5424(pri: u8, b: &[u8], zone_required: bool) -> Option<SyslogMessage<'_>> {
    let mut c = Cursor { b, pos: 0 };
    let ts = c.token();
    let (timestamp_ns, time_out_of_range) = if ts == NIL {
        (None, false)
    } else {
        match parse_rfc3339(ts, zone_required)? {
            (ns, len) if len == ts.len() => accepted_time(ns),
            _ => return None,
        }
    };
    let hostname = header_field(&mut c, HOSTNAME_BYTES_MAX)?;
    let app_name = header_field(&mut c, APP_NAME_BYTES_MAX)?;
    let procid = header_field(&mut c, PROCID_BYTES_MAX)?;
    let msgid = header_field(&mut c, MSGID_BYTES_MAX)?;

    let mut invalid_utf8 = false;
    let mut structured_data = None;
    let mut msg: &[u8] = &[];
    if c.eat(SP) {
        let r = c.rest();
        msg = r;
        if r == NIL || r.starts_with(b"- ") {
            msg = r.get(2..).unwrap_or(&[]);
        } else if r.first() == Some(&b'[')
            && let Some(len) = sd_len(r)
        {
            match std::str::from_utf8(&r[..len]) {
                Ok(sd) => structured_data = Some(sd),
                Err(_) => invalid_utf8 = true,
            }
            msg = &r[len..];
            if msg.first() == Some(&SP) {
                msg = &msg[1..];
            }
        }
        // Otherwise SD is missing or malformed: everything after MSGID is MSG.
    }
    let (message, bad_msg) = message_text(msg.strip_prefix(BOM).unwrap_or(msg));
    Some(SyslogMessage {
        format: Format::Rfc5424,
        pri: Some(pri),
        timestamp_ns,
        hostname,
        app_name,
        procid,
        msgid,
        structured_data,
        message,
        invalid_utf8: invalid_utf8 || bad_msg,
        time_out_of_range,
    })
}

/// The next space-separated RFC 5424 header field: `Some(None)` for nil or for a header
/// that ended early (leniency for truncating senders), `None` if it is not a valid field.
fn header_field<'a>(c: &mut Cursor<'a>, max: usize) -> Option<Option<&'a str>> {
    if c.at_end() {
        return Some(None);
    }
    if !c.eat(SP) {
        return None;
    }
    let tok = c.token();
    if tok == NIL {
        return Some(None);
    }
    printable_ascii(tok, max).map(Some)
}

fn parse_3164<'a>(
    input: &'a [u8],
    pri: Option<u8>,
    rest: &'a [u8],
    ctx: &ParseContext,
) -> SyslogMessage<'a> {
    let mut c = Cursor { b: rest, pos: 0 };
    let mut msg = SyslogMessage {
        format: Format::Rfc3164,
        pri,
        timestamp_ns: None,
        hostname: None,
        app_name: None,
        procid: None,
        msgid: None,
        structured_data: None,
        message: Cow::Borrowed(""),
        invalid_utf8: false,
        time_out_of_range: false,
    };
    let timestamp = parse_bsd_timestamp(rest, ctx)
        .or_else(|| parse_rfc3339(rest, false))
        .filter(|&(_, len)| matches!(rest.get(len), None | Some(&SP)));
    if let Some((ns, len)) = timestamp {
        (msg.timestamp_ns, msg.time_out_of_range) = accepted_time(ns);
        c.pos = len;
        c.skip_spaces();
        let first = c.peek_token();
        if !looks_like_tag(first)
            && let Some(host) = printable_ascii(first, HOSTNAME_BYTES_MAX)
        {
            msg.hostname = Some(host);
            c.token();
            c.skip_spaces();
        }
        if let Some(tag) = parse_tag(c.rest(), false) {
            msg.app_name = Some(tag.app);
            msg.procid = tag.procid;
            c.pos += tag.len;
        }
    } else {
        if pri.is_none() {
            return unparsed(input);
        }
        // No header: RFC 3164 reads everything as MSG, but `app[pid]: ` or `app: ` right at
        // the start is a tag as sure as can be.
        if let Some(tag) = parse_tag(rest, true) {
            msg.app_name = Some(tag.app);
            msg.procid = tag.procid;
            c.pos = tag.len;
        }
    }
    let (message, invalid_utf8) = message_text(c.rest());
    msg.message = message;
    msg.invalid_utf8 = invalid_utf8;
    msg
}

/// A token that can only be a TAG, not a HOSTNAME: `app:` or `app[pid]...`.
fn looks_like_tag(tok: &[u8]) -> bool {
    tok.ends_with(b":") || memchr(b'[', tok).is_some()
}

struct Tag<'a> {
    app: &'a str,
    procid: Option<&'a str>,
    /// Bytes up to the start of MSG.
    len: usize,
}

/// Reads `TAG[PID]: ` at the front of `b`. `strict` (no header before it) requires the colon
/// and the end of the word after it; otherwise the first word is the tag, as rsyslog and
/// syslog-ng read it, and a word of punctuation only (`--`, written by old `login`) yields to
/// a strict tag right after it.
fn parse_tag(b: &[u8], strict: bool) -> Option<Tag<'_>> {
    let word_len = memchr(SP, b).unwrap_or(b.len());
    let word = &b[..word_len];
    let name_len = memchr2(b'[', b':', word).unwrap_or(word_len);
    let app = printable_ascii(&word[..name_len], APP_NAME_BYTES_MAX);
    let Some(app) = app.filter(|a| a.bytes().any(|c| c.is_ascii_alphanumeric())) else {
        if strict || word_len == 0 {
            return None;
        }
        let skip = word_len + b[word_len..].iter().take_while(|&&c| c == SP).count();
        let tag = parse_tag(&b[skip..], true)?;
        return Some(Tag {
            len: skip + tag.len,
            ..tag
        });
    };
    let mut i = name_len;
    let mut procid = None;
    if word.get(i) == Some(&b'[') {
        let close = memchr(b']', &word[i + 1..])?;
        procid = Some(printable_ascii(
            &word[i + 1..i + 1 + close],
            PROCID_BYTES_MAX,
        )?);
        i += close + 2;
    }
    let colon = word.get(i) == Some(&b':');
    if colon {
        i += 1;
    }
    if strict && !(colon && i == word_len) {
        return None;
    }
    if b.get(i) == Some(&SP) {
        i += 1;
    }
    Some(Tag {
        app,
        procid,
        len: i,
    })
}

fn unparsed(input: &[u8]) -> SyslogMessage<'_> {
    let (message, invalid_utf8) = message_text(input);
    SyslogMessage {
        format: Format::Unparsed,
        pri: None,
        timestamp_ns: None,
        hostname: None,
        app_name: None,
        procid: None,
        msgid: None,
        structured_data: None,
        message,
        invalid_utf8,
        time_out_of_range: false,
    }
}

fn message_text(b: &[u8]) -> (Cow<'_, str>, bool) {
    match std::str::from_utf8(b) {
        Ok(s) => (Cow::Borrowed(s), false),
        Err(_) => (String::from_utf8_lossy(b), true),
    }
}

fn trim_terminators(mut b: &[u8]) -> &[u8] {
    while let Some((&(b'\n' | b'\r' | 0), rest)) = b.split_last() {
        b = rest;
    }
    b
}

/// `b` as a string if it is 1..=max printable ASCII bytes (RFC 5424 PRINTUSASCII).
fn printable_ascii(b: &[u8], max: usize) -> Option<&str> {
    if b.is_empty() || b.len() > max || !b.iter().all(|c| (0x21..=0x7e).contains(c)) {
        return None;
    }
    std::str::from_utf8(b).ok()
}

/// A byte cursor over a header.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.b[self.pos..]
    }
    fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }
    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.b.get(self.pos) == Some(&byte);
        self.pos += usize::from(hit);
        hit
    }
    fn peek_token(&self) -> &'a [u8] {
        let rest = self.rest();
        &rest[..memchr(SP, rest).unwrap_or(rest.len())]
    }
    /// The bytes up to the next space or the end; stops before the space.
    fn token(&mut self) -> &'a [u8] {
        let tok = self.peek_token();
        self.pos += tok.len();
        tok
    }
    fn skip_spaces(&mut self) {
        while self.eat(SP) {}
    }
}

// ---- Structured data -------------------------------------------------------------------

/// Length of the STRUCTURED-DATA (one or more SD-ELEMENTs) at the front of `b`, or `None` if
/// it does not follow the RFC 5424 grammar.
fn sd_len(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        i += 1;
        i += sd_name_len(&b[i..])?;
        loop {
            match *b.get(i)? {
                b']' => {
                    i += 1;
                    break;
                }
                SP => {
                    i += 1;
                    i += sd_name_len(&b[i..])?;
                    if b.get(i..i + 2)? != b"=\"" {
                        return None;
                    }
                    i += 2;
                    i += sd_value_len(&b[i..])? + 1;
                }
                _ => return None,
            }
        }
    }
    (i > 0).then_some(i)
}

/// Length of an SD-NAME (SD-ID or PARAM-NAME): printable ASCII except `=`, SP, `]`, `"`.
fn sd_name_len(b: &[u8]) -> Option<usize> {
    let len = b
        .iter()
        .take(SD_NAME_BYTES_MAX + 1)
        .take_while(|&&c| (0x21..=0x7e).contains(&c) && !matches!(c, b'=' | b']' | b'"'))
        .count();
    (1..=SD_NAME_BYTES_MAX).contains(&len).then_some(len)
}

/// Length of a PARAM-VALUE up to (not including) its closing unescaped quote.
fn sd_value_len(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        i += memchr2(b'"', b'\\', &b[i..])?;
        if b[i] == b'"' {
            return Some(i);
        }
        i += 2;
        if i > b.len() {
            return None;
        }
    }
}

// ---- Timestamps ------------------------------------------------------------------------

const FACILITY_NAMES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

const SEVERITY_NAMES: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "debug",
];

/// The `level` of a message without a (valid) PRI.
pub const LEVEL_UNKNOWN: &str = "unknown";

/// Facility name of a code 0..=23 (`unknown` otherwise).
pub fn facility_name(code: u8) -> &'static str {
    FACILITY_NAMES
        .get(usize::from(code))
        .copied()
        .unwrap_or(LEVEL_UNKNOWN)
}

/// Severity name of a code 0..=7 (`unknown` otherwise).
pub fn severity_name(code: u8) -> &'static str {
    SEVERITY_NAMES
        .get(usize::from(code))
        .copied()
        .unwrap_or(LEVEL_UNKNOWN)
}

/// A parsed header time (`None`: not representable in i64 nanoseconds) as stored: the time
/// if it is in the accepted range, else no time and `true` (out of range).
fn accepted_time(ns: Option<i64>) -> (Option<i64>, bool) {
    match ns {
        Some(ns) if super::time_range::in_range(ns) => (Some(ns), false),
        _ => (None, true),
    }
}

/// What gets stored for one syslog message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogEntry<'a> {
    /// `host`, `app`, `facility`, `level`; absent fields are omitted.
    pub labels: Labels,
    pub timestamp_ns: i64,
    /// MSG.
    pub line: Cow<'a, str>,
    /// `procid`, `msgid` and every SD param as `<sd-id>_<param-name>` (see [`metadata_key`]).
    pub metadata: SmallVec<[(Cow<'a, str>, Cow<'a, str>); 8]>,
}

/// Converts a parsed message into what gets stored. `peer` (the sender's address, without
/// port so that a stream is not made per connection) stands in for a missing HOSTNAME; a
/// missing timestamp is `ctx.now_ns`.
pub fn to_entry<'a>(
    msg: &SyslogMessage<'a>,
    ctx: &ParseContext,
    peer: Option<&str>,
) -> SyslogEntry<'a> {
    SyslogEntry {
        labels: Labels::from_pairs(label_pairs(msg, peer)),
        timestamp_ns: msg.timestamp_ns.unwrap_or(ctx.now_ns),
        line: msg.message.clone(),
        metadata: metadata(msg),
    }
}

/// Labels a syslog stream can have: its own four (`app`, `facility`, `host`, `level`) and a
/// `service_name` that discovery derives (see [`crate::ingest::discovery`]), all inline.
pub const SYSLOG_LABELS_MAX: usize = 5;

/// The stream labels of a message, borrowed and already sorted by name (`app`, `facility`,
/// `host`, `level`), absent and empty values left out: exactly the pairs of
/// [`SyslogEntry::labels`], without allocating, for the listener's hot path.
pub fn label_pairs<'a>(
    msg: &SyslogMessage<'a>,
    peer: Option<&'a str>,
) -> SmallVec<[(&'static str, &'a str); SYSLOG_LABELS_MAX]> {
    let mut pairs: SmallVec<[(&'static str, &'a str); SYSLOG_LABELS_MAX]> = SmallVec::new();
    if let Some(app) = msg.app_name {
        pairs.push(("app", app));
    }
    if let Some(facility) = msg.facility() {
        pairs.push(("facility", facility_name(facility)));
    }
    if let Some(host) = msg.hostname.or(peer) {
        pairs.push(("host", host));
    }
    pairs.push(("level", msg.severity().map_or(LEVEL_UNKNOWN, severity_name)));
    pairs.retain(|(_, v)| !v.is_empty());
    pairs
}

/// Structured metadata of a message: PROCID, MSGID and the structured-data parameters.
pub fn metadata<'a>(msg: &SyslogMessage<'a>) -> SmallVec<[(Cow<'a, str>, Cow<'a, str>); 8]> {
    let mut metadata = SmallVec::new();
    if let Some(procid) = msg.procid {
        metadata.push((Cow::Borrowed("procid"), Cow::Borrowed(procid)));
    }
    if let Some(msgid) = msg.msgid {
        metadata.push((Cow::Borrowed("msgid"), Cow::Borrowed(msgid)));
    }
    for param in msg.sd_params().take(SD_PARAMS_MAX) {
        metadata.push((
            Cow::Owned(metadata_key(param.sd_id, param.name)),
            param.value(),
        ));
    }
    metadata
}

/// `<sd-id>_<param-name>` with every character outside `[A-Za-z0-9_]` replaced by `_`, and
/// a `_` in front if it would start with a digit, so that it is a valid Loki metadata name:
/// `exampleSDID@32473` + `iut` is `exampleSDID_32473_iut`.
pub fn metadata_key(sd_id: &str, name: &str) -> String {
    let mut key = String::with_capacity(sd_id.len() + name.len() + 2);
    if sd_id.starts_with(|c: char| c.is_ascii_digit()) {
        key.push('_');
    }
    let clean = |c: char| if c.is_ascii_alphanumeric() { c } else { '_' };
    key.extend(sd_id.chars().map(clean));
    key.push('_');
    key.extend(name.chars().map(clean));
    key
}

#[cfg(test)]
mod tests;
