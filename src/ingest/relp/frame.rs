//! RELP frames: the decoder of a connection's read buffer, and the frames the server writes.
//!
//! Which question it answers: "which RELP command is at the front of this buffer, and what
//! do we answer?" The grammar is librelp's (`doc/relp.md`), which rsyslog's `omrelp` speaks:
//!
//! ```text
//! FRAME   = TXNR SP COMMAND SP DATALEN [SP DATA] LF
//! TXNR    = 1*9DIGIT        ; 0 is reserved for hints (serverclose)
//! COMMAND = 1*32ALPHA       ; open, syslog, close, rsp, ...
//! DATALEN = 1*9DIGIT        ; octets of DATA; 0 means no SP and no DATA
//! ```
//!
//! [`RelpDecoder::decode`] is zero-copy like the syslog framer: it hands out the frame at the
//! front of the buffer as sub-slices, asks for more bytes, or says the stream is broken. A
//! frame whose data is longer than `data_bytes_max` is not refused (the sender would resend it
//! forever): its first `data_bytes_max` bytes are handed out marked `truncated`, and the rest
//! is skipped, as syslog TCP cuts an over-long frame. A broken header or a missing trailer
//! cannot be resynchronised (DATALEN is the only framing), so the connection is closed, as
//! the RELP specification asks; nothing it sent without an answer is lost, because the
//! sender resends every command it has no `rsp` for.

/// Digits of a transaction number or a data length at most (the specification's `1*9DIGIT`).
pub const NUMBER_DIGITS_MAX: usize = 9;
/// Bytes of a command name at most.
pub const COMMAND_BYTES_MAX: usize = 32;
/// The longest header: `TXNR SP COMMAND SP DATALEN SP`.
pub const HEADER_BYTES_MAX: usize =
    NUMBER_DIGITS_MAX + 1 + COMMAND_BYTES_MAX + 1 + NUMBER_DIGITS_MAX + 1;
/// The data size librelp and rsyslog use unless configured otherwise (128 KiB).
pub const DATA_BYTES_MAX_DEFAULT: usize = 128 * 1024;

/// What is at the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// One whole frame (or the first `data_bytes_max` bytes of an over-long one).
    Frame(Frame<'a>),
    /// Bytes of an over-long frame's data (and its trailer) thrown away.
    Skipped { consumed: usize },
    /// The buffer holds only the start of a frame.
    NeedMore,
    /// The bytes are not RELP: the connection must be closed.
    Invalid(&'static str),
}

/// One RELP command, borrowed from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub txnr: u32,
    pub command: &'a [u8],
    pub data: &'a [u8],
    /// Bytes of the buffer this frame took.
    pub consumed: usize,
    /// The data was cut at `data_bytes_max`; the rest is skipped by the next decodes.
    pub truncated: bool,
}

/// The decoder of one connection: it remembers only how much of an over-long frame is left
/// to skip.
#[derive(Debug)]
pub struct RelpDecoder {
    data_bytes_max: usize,
    /// Data bytes of the current over-long frame still to throw away.
    skip: usize,
    /// The trailer of the current over-long frame is still to come.
    trailer_due: bool,
}

impl RelpDecoder {
    pub fn new(data_bytes_max: usize) -> RelpDecoder {
        RelpDecoder {
            data_bytes_max: data_bytes_max.max(1),
            skip: 0,
            trailer_due: false,
        }
    }

    /// The buffer size below which [`Decoded::NeedMore`] can be returned: the longest
    /// header, `data_bytes_max` bytes and the trailer. A buffer that can grow to this size
    /// always makes progress.
    pub fn buffer_bytes_min(&self) -> usize {
        HEADER_BYTES_MAX + self.data_bytes_max + 1
    }

    /// Decodes the front of `buf`, all the unconsumed bytes of the connection. Every `Frame`
    /// and `Skipped` consumes at least one byte.
    pub fn decode<'a>(&mut self, buf: &'a [u8]) -> Decoded<'a> {
        if self.skip > 0 {
            if buf.is_empty() {
                return Decoded::NeedMore;
            }
            let n = self.skip.min(buf.len());
            self.skip -= n;
            return Decoded::Skipped { consumed: n };
        }
        if self.trailer_due {
            return match buf.first() {
                None => Decoded::NeedMore,
                Some(b'\n') => {
                    self.trailer_due = false;
                    Decoded::Skipped { consumed: 1 }
                }
                Some(_) => Decoded::Invalid("a frame's data is not followed by LF"),
            };
        }
        let mut at = 0;
        let txnr = match number(buf, &mut at, Number::Txnr) {
            Ok(n) => n,
            Err(d) => return d,
        };
        if let Err(d) = space(buf, &mut at, "no space after the transaction number") {
            return d;
        }
        let command_start = at;
        while at < buf.len() && buf[at].is_ascii_alphabetic() {
            at += 1;
            if at - command_start > COMMAND_BYTES_MAX {
                return Decoded::Invalid("a command is longer than 32 letters");
            }
        }
        if at == buf.len() {
            return Decoded::NeedMore;
        }
        if at == command_start {
            return Decoded::Invalid("a frame has no command");
        }
        let command = &buf[command_start..at];
        if let Err(d) = space(buf, &mut at, "no space after the command") {
            return d;
        }
        let len = match number(buf, &mut at, Number::DataLen) {
            Ok(n) => n as usize,
            Err(d) => return d,
        };
        if len > 0
            && let Err(d) = space(buf, &mut at, "no space after the data length")
        {
            return d;
        }
        let kept = len.min(self.data_bytes_max);
        if len > kept {
            // Hand out what fits; the rest and the trailer are skipped by the next decodes.
            if buf.len() < at + kept {
                return Decoded::NeedMore;
            }
            self.skip = len - kept;
            self.trailer_due = true;
            return Decoded::Frame(Frame {
                txnr,
                command,
                data: &buf[at..at + kept],
                consumed: at + kept,
                truncated: true,
            });
        }
        match buf.get(at + len) {
            None => Decoded::NeedMore,
            Some(b'\n') => Decoded::Frame(Frame {
                txnr,
                command,
                data: &buf[at..at + len],
                consumed: at + len + 1,
                truncated: false,
            }),
            Some(_) => Decoded::Invalid("a frame's data is not followed by LF"),
        }
    }
}

/// Reads `1*9DIGIT` at `at`, which must be followed by something (a space or the trailer);
/// `name` says which number it is in the error.
fn number<'a>(buf: &[u8], at: &mut usize, name: Number) -> Result<u32, Decoded<'a>> {
    let start = *at;
    let mut n: u32 = 0;
    while *at < buf.len() && buf[*at].is_ascii_digit() {
        if *at - start == NUMBER_DIGITS_MAX {
            return Err(Decoded::Invalid(match name {
                Number::Txnr => "a transaction number has more than 9 digits",
                Number::DataLen => "a data length has more than 9 digits",
            }));
        }
        n = n * 10 + u32::from(buf[*at] - b'0');
        *at += 1;
    }
    if *at == buf.len() {
        return Err(Decoded::NeedMore);
    }
    if *at == start {
        return Err(Decoded::Invalid(match name {
            Number::Txnr => "a frame does not start with a transaction number",
            Number::DataLen => "a frame has no data length",
        }));
    }
    Ok(n)
}

/// The two numbers of a header.
#[derive(Clone, Copy)]
enum Number {
    Txnr,
    DataLen,
}

/// Reads the one space expected at `at`; `missing` is the error without it.
fn space<'a>(buf: &[u8], at: &mut usize, missing: &'static str) -> Result<(), Decoded<'a>> {
    match buf.get(*at) {
        None => Err(Decoded::NeedMore),
        Some(b' ') => {
            *at += 1;
            Ok(())
        }
        Some(_) => Err(Decoded::Invalid(missing)),
    }
}

/// Appends the frame `TXNR rsp LEN DATA LF` answering `txnr` with `data`.
pub fn write_rsp(out: &mut Vec<u8>, txnr: u32, data: &[u8]) {
    write_frame(out, txnr, b"rsp", data);
}

/// Appends `200 OK` for `txnr`: the command's line is durable.
pub fn write_ok(out: &mut Vec<u8>, txnr: u32) {
    write_rsp(out, txnr, b"200 OK");
}

/// The data of a `500 <why>` answer; `why` loses any LF, which would end the human text.
pub fn error_data(why: &str) -> Vec<u8> {
    let mut data = b"500 ".to_vec();
    data.extend(why.bytes().map(|b| if b == b'\n' { b' ' } else { b }));
    data
}

/// Appends `500 <why>` for `txnr`.
pub fn write_error(out: &mut Vec<u8>, txnr: u32, why: &str) {
    write_rsp(out, txnr, &error_data(why));
}

/// Appends the `serverclose` hint (transaction 0) sent before the server closes a session.
pub fn write_serverclose(out: &mut Vec<u8>) {
    write_frame(out, 0, b"serverclose", b"");
}

fn write_frame(out: &mut Vec<u8>, txnr: u32, command: &[u8], data: &[u8]) {
    use std::io::Write;
    let _ = write!(out, "{txnr} ");
    out.extend_from_slice(command);
    let _ = write!(out, " {}", data.len());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
}

/// What a client's `open` offered, as far as the server cares.
#[derive(Debug, PartialEq, Eq)]
pub struct Offers {
    pub relp_version: u32,
    pub syslog_command: bool,
}

/// Reads the offers of an `open` command's data: LF-separated `name[=value[,value...]]`. The
/// `relp_version` offer is required (a number); `commands` must include `syslog`, the only
/// command this server takes.
pub fn parse_offers(data: &[u8]) -> Result<Offers, &'static str> {
    let mut version = None;
    let mut syslog_command = false;
    for line in data.split(|&b| b == b'\n') {
        let (name, values) = match line.iter().position(|&b| b == b'=') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &b""[..]),
        };
        match name {
            b"relp_version" => {
                let text =
                    std::str::from_utf8(values).map_err(|_| "relp_version is not a number")?;
                version = Some(
                    text.trim()
                        .parse::<u32>()
                        .map_err(|_| "relp_version is not a number")?,
                );
            }
            b"commands" => {
                syslog_command |= values.split(|&b| b == b',').any(|c| c == b"syslog");
            }
            _ => {}
        }
    }
    let relp_version = version.ok_or("the open command offers no relp_version")?;
    Ok(Offers {
        relp_version,
        syslog_command,
    })
}

/// The version of RELP answered to every client: 0, the one librelp (and so every rsyslog)
/// speaks, and the lowest, which librelp answers too when a client offers more.
pub const RELP_VERSION: u32 = 0;

/// The `200 OK` answer to `open`, with the server's offers.
pub fn open_answer() -> Vec<u8> {
    format!(
        "200 OK\nrelp_version={RELP_VERSION}\nrelp_software=shardlog,{}\ncommands=syslog",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(buf: &[u8]) -> Frame<'_> {
        match RelpDecoder::new(DATA_BYTES_MAX_DEFAULT).decode(buf) {
            Decoded::Frame(f) => f,
            other => panic!("not a frame: {other:?}"),
        }
    }

    #[test]
    fn decodes_librelp_frames() {
        let offers =
            &b"relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog"[..];
        let mut open = format!("1 open {} ", offers.len()).into_bytes();
        open.extend_from_slice(offers);
        open.push(b'\n');
        let f = frame(&open);
        assert_eq!(
            (f.txnr, f.command, f.consumed),
            (1, &b"open"[..], open.len())
        );
        assert_eq!(f.data, offers);
        let f = frame(b"2 syslog 5 <13>x\n3 close 0\n");
        assert_eq!(
            (f.txnr, f.command, f.data),
            (2, &b"syslog"[..], &b"<13>x"[..])
        );
        assert_eq!(f.consumed, 17);
        let f = frame(b"3 close 0\n");
        assert_eq!(
            (f.txnr, f.command, f.data, f.consumed),
            (3, &b"close"[..], &b""[..], 10)
        );
    }

    #[test]
    fn every_prefix_of_a_frame_needs_more() {
        let whole = b"12 syslog 11 <13>hello w\n";
        for n in 0..whole.len() {
            assert_eq!(
                RelpDecoder::new(64).decode(&whole[..n]),
                Decoded::NeedMore,
                "prefix {n}"
            );
        }
    }

    #[test]
    fn broken_frames_are_invalid() {
        for bad in [
            &b"x syslog 1 a\n"[..],
            b"1syslog 1 a\n",
            b"1 syslog x\n",
            b"1 syslog 1 ab\n",
            b"1 syslog 1a\n",
            b"1  syslog 1 a\n",
            b"1234567890 syslog 1 a\n",
            b"1 syslog 1234567890 a\n",
        ] {
            assert!(
                matches!(RelpDecoder::new(64).decode(bad), Decoded::Invalid(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("1 {} 0\n", "a".repeat(33));
        assert!(matches!(
            RelpDecoder::new(64).decode(long.as_bytes()),
            Decoded::Invalid(_)
        ));
    }

    #[test]
    fn an_over_long_frame_is_cut_and_the_next_one_follows() {
        let mut d = RelpDecoder::new(4);
        let buf = b"1 syslog 10 0123456789\n2 syslog 2 ab\n";
        let Decoded::Frame(f) = d.decode(buf) else {
            panic!()
        };
        assert_eq!((f.data, f.truncated), (&b"0123"[..], true));
        let mut at = f.consumed;
        loop {
            match d.decode(&buf[at..]) {
                Decoded::Skipped { consumed } => at += consumed,
                Decoded::Frame(f) => {
                    assert_eq!((f.txnr, f.data, f.truncated), (2, &b"ab"[..], false));
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn answers_are_frames_librelp_reads() {
        let mut out = Vec::new();
        write_ok(&mut out, 7);
        write_error(&mut out, 8, "disk\nfull");
        write_rsp(&mut out, 9, b"");
        write_serverclose(&mut out);
        assert_eq!(
            out,
            b"7 rsp 6 200 OK\n8 rsp 13 500 disk full\n9 rsp 0\n0 serverclose 0\n"
        );
        // Our own decoder reads them back.
        let mut d = RelpDecoder::new(64);
        let f = match d.decode(&out) {
            Decoded::Frame(f) => f,
            other => panic!("{other:?}"),
        };
        assert_eq!((f.command, f.data), (&b"rsp"[..], &b"200 OK"[..]));
    }

    #[test]
    fn offers_need_a_version_and_say_whether_syslog_is_there() {
        let o = parse_offers(b"relp_version=0\nrelp_software=librelp,1.11.0,x\ncommands=syslog")
            .unwrap();
        assert_eq!(
            o,
            Offers {
                relp_version: 0,
                syslog_command: true
            }
        );
        assert!(
            !parse_offers(b"relp_version=1\ncommands=eventlog")
                .unwrap()
                .syslog_command
        );
        assert!(parse_offers(b"commands=syslog").is_err());
        assert!(parse_offers(b"relp_version=x").is_err());
        let answer = String::from_utf8(open_answer()).unwrap();
        assert!(answer.starts_with("200 OK\nrelp_version=0\n"));
        assert!(answer.ends_with("\ncommands=syslog"));
    }

    proptest! {
        /// Any bytes, fed in any split, never panic, never loop, and every frame handed out
        /// lies inside what was given.
        #[test]
        fn decoding_arbitrary_bytes_makes_progress(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            max in 1usize..40,
        ) {
            let mut d = RelpDecoder::new(max);
            let mut at = 0;
            loop {
                match d.decode(&bytes[at..]) {
                    Decoded::Frame(f) => {
                        prop_assert!(f.consumed > 0 && at + f.consumed <= bytes.len());
                        prop_assert!(f.data.len() <= max);
                        at += f.consumed;
                    }
                    Decoded::Skipped { consumed } => {
                        prop_assert!(consumed > 0);
                        at += consumed;
                    }
                    Decoded::NeedMore => {
                        prop_assert!(bytes.len() - at < d.buffer_bytes_min());
                        break;
                    }
                    Decoded::Invalid(_) => break,
                }
            }
        }

        /// Frames written one after another come back whole and in order, whatever the data
        /// (LF included) and the limit.
        #[test]
        fn written_frames_decode_back(
            datas in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 1..6),
            max in 1usize..60,
        ) {
            let mut buf = Vec::new();
            for (i, data) in datas.iter().enumerate() {
                write_frame(&mut buf, i as u32 + 1, b"syslog", data);
            }
            let mut d = RelpDecoder::new(max);
            let mut at = 0;
            let mut seen = Vec::new();
            while at < buf.len() {
                match d.decode(&buf[at..]) {
                    Decoded::Frame(f) => {
                        seen.push((f.txnr, f.data.to_vec(), f.truncated));
                        at += f.consumed;
                    }
                    Decoded::Skipped { consumed } => at += consumed,
                    other => prop_assert!(false, "{other:?}"),
                }
            }
            prop_assert_eq!(seen.len(), datas.len());
            for (i, (txnr, data, truncated)) in seen.into_iter().enumerate() {
                prop_assert_eq!(txnr, i as u32 + 1);
                let want = &datas[i][..datas[i].len().min(max)];
                prop_assert_eq!(&data[..], want);
                prop_assert_eq!(truncated, datas[i].len() > max);
            }
        }
    }
}
