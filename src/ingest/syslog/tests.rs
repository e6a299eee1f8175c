//! Tests of the syslog parser: RFC examples, real senders' output, the corpus, garbage.

mod loggen_file_tests {
    use super::super::*;

    #[test]
    fn label_pairs_are_the_entry_labels_sorted() {
        let ctx = ParseContext { now_ns: 0 };
        for input in [
            &b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed"[..],
            b"<165>1 2003-10-11T22:14:15.003Z host app 1 ID47 - msg",
            b"no pri at all",
            b"<13>1 - - - - - -",
        ] {
            let m = parse(input, &ctx);
            let pairs = label_pairs(&m, Some("10.0.0.1"));
            let labels = to_entry(&m, &ctx, Some("10.0.0.1")).labels;
            let owned: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(owned, labels.pairs(), "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn loggen_read_file_form() {
        let ctx = ParseContext { now_ns: 0 };
        let m = parse(
            b"<38> 2026-11-25T14:08:18 LabSZ sshd 24200 - - \xef\xbb\xbfInvalid user webmaster\r\n",
            &ctx,
        );
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!(m.hostname, Some("LabSZ"));
        assert_eq!(m.app_name, Some("sshd"));
        assert_eq!(m.procid, Some("24200"));
        assert_eq!(m.message, "Invalid user webmaster");
        let bsd = parse(b"<38> Oct 11 22:14:15 host su: hi", &ctx);
        assert_eq!(bsd.format, Format::Rfc3164);
    }
}

mod parsing {
    use super::super::*;
    use proptest::prelude::*;

    /// 2003-11-01T00:00:00Z: "now" for the RFC examples.
    const NOW_2003: ParseContext = ParseContext {
        now_ns: 1_067_644_800_000_000_000,
    };
    /// 2026-11-25T13:59:07Z: when the logger and loggen samples were captured.
    const NOW_2026: ParseContext = ParseContext {
        now_ns: 1_795_615_147_000_000_000,
    };

    fn p(input: &[u8]) -> SyslogMessage<'_> {
        parse(input, &NOW_2003)
    }

    fn label_pairs<'e>(entry: &'e SyslogEntry<'_>) -> Vec<(&'e str, &'e str)> {
        entry
            .labels
            .pairs()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn meta<'e>(entry: &'e SyslogEntry<'_>) -> Vec<(&'e str, &'e str)> {
        entry
            .metadata
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect()
    }

    #[test]
    fn rfc5424_example_with_bom_and_no_sd() {
        let m = p(
            b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \
              \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8",
        );
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!(m.pri, Some(34));
        assert_eq!((m.facility(), m.severity()), (Some(4), Some(2)));
        assert_eq!(m.timestamp_ns, Some(1_065_910_455_003_000_000));
        assert_eq!(m.hostname, Some("mymachine.example.com"));
        assert_eq!(m.app_name, Some("su"));
        assert_eq!(m.procid, None);
        assert_eq!(m.msgid, Some("ID47"));
        assert_eq!(m.structured_data, None);
        assert_eq!(m.message, "'su root' failed for lonvick on /dev/pts/8");
        assert!(!m.had_invalid_utf8());
        let e = to_entry(&m, &NOW_2003, Some("192.0.2.9"));
        assert_eq!(
            label_pairs(&e),
            [
                ("app", "su"),
                ("facility", "auth"),
                ("host", "mymachine.example.com"),
                ("level", "critical")
            ]
        );
        assert_eq!(meta(&e), [("msgid", "ID47")]);
        assert_eq!(e.timestamp_ns, 1_065_910_455_003_000_000);
        assert_eq!(e.line, "'su root' failed for lonvick on /dev/pts/8");
    }

    #[test]
    fn rfc5424_example_with_offset_and_microseconds() {
        let m = p(
            b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - \
                    %% It's time to make the do-nuts.",
        );
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!(m.timestamp_ns, Some(1_061_727_255_000_003_000));
        assert_eq!(m.hostname, Some("192.0.2.1"));
        assert_eq!(m.app_name, Some("myproc"));
        assert_eq!(m.procid, Some("8710"));
        assert_eq!(m.msgid, None);
        assert_eq!(m.message, "%% It's time to make the do-nuts.");
        let e = to_entry(&m, &NOW_2003, None);
        assert_eq!(e.labels.get("facility"), Some("local4"));
        assert_eq!(e.labels.get("level"), Some("notice"));
        assert_eq!(meta(&e), [("procid", "8710")]);
    }

    #[test]
    fn rfc5424_example_with_structured_data() {
        let m = p(
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 \
                    [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \
                    \xEF\xBB\xBFAn application event log entry...",
        );
        assert_eq!(
            m.structured_data,
            Some("[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"]")
        );
        assert_eq!(m.message, "An application event log entry...");
        let e = to_entry(&m, &NOW_2003, None);
        assert_eq!(
            meta(&e),
            [
                ("msgid", "ID47"),
                ("exampleSDID_32473_iut", "3"),
                ("exampleSDID_32473_eventSource", "Application"),
                ("exampleSDID_32473_eventID", "1011"),
            ]
        );
        assert_eq!(e.labels.get("app"), Some("evntslog"));
    }

    #[test]
    fn rfc5424_example_with_two_sd_elements_and_no_msg() {
        let m = p(
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 \
                    [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"]\
                    [examplePriority@32473 class=\"high\"]",
        );
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!(m.message, "");
        let params: Vec<_> = m
            .sd_params()
            .map(|p| (p.sd_id, p.name, p.value_raw))
            .collect();
        assert_eq!(params.len(), 4);
        assert_eq!(params[3], ("examplePriority@32473", "class", "high"));
    }

    #[test]
    fn sd_values_are_unescaped() {
        let m = p(r#"<13>1 - h a - - [x@1 q="a\"b\\c\]d" n="e\nf" u="ü"] msg"#.as_bytes());
        assert_eq!(m.message, "msg");
        let e = to_entry(&m, &NOW_2003, None);
        assert_eq!(
            meta(&e),
            [("x_1_q", "a\"b\\c]d"), ("x_1_n", "e\\nf"), ("x_1_u", "ü")]
        );
        // A quote inside a value does not end the SD early.
        let m = p(br#"<13>1 - h a - - [x@1 q="a ] [b\" c"] rest"#);
        assert_eq!(m.message, "rest");
    }

    #[test]
    fn malformed_or_missing_sd_leaves_everything_in_msg() {
        let m = p(b"<13>1 - h a - - [broken sd no close");
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!(m.structured_data, None);
        assert_eq!(m.message, "[broken sd no close");
        let m = p(b"<13>1 - h a - - plain message");
        assert_eq!(m.message, "plain message");
        let m = p(b"<13>1 - h a - - [id k=v] x");
        assert_eq!(m.message, "[id k=v] x");
    }

    #[test]
    fn logger_rfc5424() {
        let m = parse(
            b"<13>1 2026-11-25T13:59:06.976960+00:00 vm root - - \
              [timeQuality tzKnown=\"1\" isSynced=\"0\"] hello 5424",
            &NOW_2026,
        );
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!(m.timestamp_ns, Some(1_795_615_146_976_960_000));
        assert_eq!((m.hostname, m.app_name), (Some("vm"), Some("root")));
        assert_eq!(m.message, "hello 5424");
        let e = to_entry(&m, &NOW_2026, None);
        assert_eq!(
            label_pairs(&e),
            [
                ("app", "root"),
                ("facility", "user"),
                ("host", "vm"),
                ("level", "notice")
            ]
        );
        assert_eq!(
            meta(&e),
            [("timeQuality_tzKnown", "1"), ("timeQuality_isSynced", "0")]
        );
    }

    #[test]
    fn logger_rfc5424_octet_counted_with_sd_and_without_time() {
        let m = parse(
            b"<156>1 2026-11-25T13:59:06.987395+00:00 vm myapp - - \
              [timeQuality tzKnown=\"1\" isSynced=\"0\"][zoo@123 tiger=\"hungry\"] octet",
            &NOW_2026,
        );
        let e = to_entry(&m, &NOW_2026, None);
        assert_eq!(e.labels.get("facility"), Some("local3"));
        assert_eq!(e.labels.get("level"), Some("warning"));
        assert_eq!(e.metadata[2].0, "zoo_123_tiger");
        assert_eq!(e.metadata[2].1, "hungry");
        assert_eq!(e.line, "octet");

        // `logger --rfc5424=notq,notime`: nil timestamp and SD; stored at "now".
        let m = parse(b"<13>1 - vm root - - - nt", &NOW_2026);
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!(m.timestamp_ns, None);
        assert_eq!(m.message, "nt");
        assert_eq!(to_entry(&m, &NOW_2026, None).timestamp_ns, NOW_2026.now_ns);
    }

    #[test]
    fn loggen_syslog_proto() {
        let m = parse(
            b"<38>1 2026-11-25T13:59:07+00:00 localhost prg00000 1234 - - \
              \xEF\xBB\xBFseq: 0000000000, thread: 0000, runid: 1795615147, \
              stamp: 2026-11-25T13:59:07 PADDPADD",
            &NOW_2026,
        );
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!(m.timestamp_ns, Some(1_795_615_147_000_000_000));
        assert_eq!(
            (m.hostname, m.app_name, m.procid),
            (Some("localhost"), Some("prg00000"), Some("1234"))
        );
        assert!(m.message.starts_with("seq: 0000000000, thread: 0000"));
        let e = to_entry(&m, &NOW_2026, None);
        assert_eq!(e.labels.get("facility"), Some("auth"));
        assert_eq!(e.labels.get("level"), Some("info"));
    }

    #[test]
    fn loggen_bsd_with_iso_timestamp() {
        let m = parse(
            b"<38>2026-11-25T13:59:07 localhost prg00000[1234]: seq: 0000000000, thread: 0000",
            &NOW_2026,
        );
        assert_eq!(m.format, Format::Rfc3164);
        assert_eq!(m.timestamp_ns, Some(1_795_615_147_000_000_000));
        assert_eq!(
            (m.hostname, m.app_name, m.procid),
            (Some("localhost"), Some("prg00000"), Some("1234"))
        );
        assert_eq!(m.message, "seq: 0000000000, thread: 0000");
    }

    #[test]
    fn iso_timestamp_in_bsd_message_with_zone_and_fraction() {
        let m = p(b"<13>2024-01-01T12:00:00.5+01:00 host app: x");
        assert_eq!(m.timestamp_ns, Some(1_704_106_800_500_000_000));
        let m = p(b"<13>2024-01-01T12:00:00.5+0100 host app: x");
        assert_eq!(m.timestamp_ns, Some(1_704_106_800_500_000_000));
        let m = p(b"2024-01-01T12:00:00Z host app: x");
        assert_eq!(m.format, Format::Rfc3164);
        assert_eq!(m.timestamp_ns, Some(1_704_110_400_000_000_000));
        assert_eq!((m.hostname, m.app_name), (Some("host"), Some("app")));
    }

    #[test]
    fn rfc3164_example() {
        let m = p(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(m.format, Format::Rfc3164);
        assert_eq!(m.pri, Some(34));
        assert_eq!(m.timestamp_ns, Some(1_065_910_455_000_000_000));
        assert_eq!((m.hostname, m.app_name), (Some("mymachine"), Some("su")));
        assert_eq!(m.procid, None);
        assert_eq!(m.message, "'su root' failed for lonvick on /dev/pts/8");
    }

    #[test]
    fn rfc3164_with_pid_and_logger_forms() {
        let m = parse(b"<13>Nov 25 13:59:06 vm root[77]: hello 3164", &NOW_2026);
        assert_eq!(
            (m.hostname, m.app_name, m.procid),
            (Some("vm"), Some("root"), Some("77"))
        );
        assert_eq!(m.message, "hello 3164");
        let e = to_entry(&m, &NOW_2026, None);
        assert_eq!(meta(&e), [("procid", "77")]);
        // `logger` to a local socket sends no hostname: the peer stands in.
        let m = parse(b"<13>Nov 25 13:59:06 root: hello", &NOW_2026);
        assert_eq!((m.hostname, m.app_name), (None, Some("root")));
        assert_eq!(m.message, "hello");
        let e = to_entry(&m, &NOW_2026, Some("10.1.2.3"));
        assert_eq!(e.labels.get("host"), Some("10.1.2.3"));
    }

    #[test]
    fn plain_log_file_lines_without_pri() {
        let linux = ParseContext {
            now_ns: 1_120_176_000_000_000_000, // 2005-07-01
        };
        let m = parse(
            b"Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname=",
            &linux,
        );
        assert_eq!(m.format, Format::Rfc3164);
        assert_eq!(m.pri, None);
        assert_eq!(m.timestamp_ns, Some(1_118_762_161_000_000_000));
        assert_eq!(
            (m.hostname, m.app_name, m.procid),
            (Some("combo"), Some("sshd(pam_unix)"), Some("19939"))
        );
        assert_eq!(m.message, "authentication failure; logname=");
        let e = to_entry(&m, &linux, None);
        assert_eq!(
            label_pairs(&e),
            [
                ("app", "sshd(pam_unix)"),
                ("host", "combo"),
                ("level", "unknown")
            ]
        );

        let ssh = ParseContext {
            now_ns: 1_514_764_800_000_000_000, // 2018-01-01
        };
        let m = parse(
            b"Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
            &ssh,
        );
        assert_eq!(m.timestamp_ns, Some(1_512_888_946_000_000_000));
        assert_eq!(
            (m.hostname, m.app_name, m.procid),
            (Some("LabSZ"), Some("sshd"), Some("24200"))
        );
        assert_eq!(m.message, "Invalid user webmaster from 173.234.31.186");
    }

    #[test]
    fn single_digit_day_padded_or_not() {
        let ctx = ParseContext {
            now_ns: 1_120_176_000_000_000_000, // 2005-07-01
        };
        for line in [&b"Jun  9 04:05:06 h a: m"[..], b"Jun 9 04:05:06 h a: m"] {
            let m = parse(line, &ctx);
            assert_eq!(m.timestamp_ns, Some(1_118_289_906_000_000_000));
            assert_eq!((m.hostname, m.app_name), (Some("h"), Some("a")));
            assert_eq!(m.message, "m");
        }
        // Not a day: not a timestamp, and without PRI not syslog.
        assert_eq!(
            parse(b"Jun 123 04:05:06 h a: m", &ctx).format,
            Format::Unparsed
        );
        assert_eq!(
            parse(b"Jun 32 04:05:06 h a: m", &ctx).format,
            Format::Unparsed
        );
    }

    #[test]
    fn missing_year_is_the_closest_not_too_far_in_the_future() {
        let jan_5_2024 = ParseContext {
            now_ns: 1_704_412_800_000_000_000,
        };
        let ts = |line: &[u8], ctx| parse(line, ctx).timestamp_ns;
        assert_eq!(
            ts(b"Dec 31 23:59:59 h a: m", &jan_5_2024),
            Some(1_704_067_199_000_000_000)
        );
        // Fifteen days ahead: clock skew, this year.
        assert_eq!(
            ts(b"Jan 20 00:00:00 h a: m", &jan_5_2024),
            Some(1_705_708_800_000_000_000)
        );
        // Six weeks ahead: last year.
        assert_eq!(
            ts(b"Feb 20 00:00:00 h a: m", &jan_5_2024),
            Some(1_676_851_200_000_000_000)
        );
        // Read on December 20th, January 2nd is next year.
        let dec_20_2024 = ParseContext {
            now_ns: 1_734_652_800_000_000_000,
        };
        assert_eq!(
            ts(b"Jan  2 00:00:00 h a: m", &dec_20_2024),
            Some(1_735_776_000_000_000_000)
        );
        // February 29th goes back to the last leap year.
        let mar_1_2025 = ParseContext {
            now_ns: 1_740_787_200_000_000_000,
        };
        assert_eq!(
            ts(b"Feb 29 12:00:00 h a: m", &mar_1_2025),
            Some(1_709_208_000_000_000_000)
        );
    }

    #[test]
    fn tag_variants_from_real_logs() {
        let m = p(b"Jun 19 04:09:11 combo syslogd 1.4.1: restart.");
        assert_eq!((m.hostname, m.app_name), (Some("combo"), Some("syslogd")));
        assert_eq!(m.message, "1.4.1: restart.");
        let m = p(b"Jul  7 08:06:15 combo  -- root[2421]: ROOT LOGIN ON tty2");
        assert_eq!(
            (m.hostname, m.app_name, m.procid),
            (Some("combo"), Some("root"), Some("2421"))
        );
        assert_eq!(m.message, "ROOT LOGIN ON tty2");
        let m = p(b"<13>Oct 11 22:14:15 host postfix/smtpd[12]: connect");
        assert_eq!(m.app_name, Some("postfix/smtpd"));
        let m = p(b"<13>Oct 11 22:14:15 host kernel:[ 1.0] x");
        assert_eq!(
            (m.app_name, m.message.as_ref()),
            (Some("kernel"), "[ 1.0] x")
        );
    }

    #[test]
    fn pri_without_header() {
        let m = p(b"<13>app[12]: the message");
        assert_eq!(m.format, Format::Rfc3164);
        assert_eq!((m.app_name, m.procid), (Some("app"), Some("12")));
        assert_eq!(m.message, "the message");
        // RFC 3164: with a PRI and no timestamp, the rest is MSG.
        let m = p(b"<13>hello world");
        assert_eq!((m.format, m.app_name), (Format::Rfc3164, None));
        assert_eq!(m.message, "hello world");
        let m = p(b"<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org sched[0]: x");
        assert_eq!((m.format, m.timestamp_ns), (Format::Rfc3164, None));
        assert_eq!(
            m.message,
            "1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org sched[0]: x"
        );
        // A version 1 with a bad timestamp is not RFC 5424: the rest is MSG.
        let m = p(b"<13>1 yesterday host app - - - m");
        assert_eq!(
            (m.format, m.message.as_ref()),
            (Format::Rfc3164, "1 yesterday host app - - - m")
        );
    }

    #[test]
    fn rfc5424_header_cut_short_and_timestamps_out_of_range() {
        let m = p(b"<13>1 2024-01-01T12:00:00Z host");
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!(
            (m.hostname, m.app_name, m.message.as_ref()),
            (Some("host"), None, "")
        );
        let m = p(b"<13>1 9999-12-31T23:59:59Z h a - - - m");
        assert_eq!((m.format, m.timestamp_ns), (Format::Rfc5424, None));
        assert!(m.had_time_out_of_range());
        assert_eq!(m.message, "m");
        // The range every ingest path shares: before the epoch (representable or not) and
        // after 2255 is out of range, replaced by the receive time and flagged for counting.
        for (line, out) in [
            (&b"<13>1 1969-12-31T23:59:59Z h a - - - m"[..], true),
            (b"<13>1 0001-01-01T00:00:00Z h a - - - m", true),
            (b"<13>1 2260-01-01T00:00:00Z h a - - - m", true),
            (b"<13>1970-01-01T00:00:00Z h app: m", false),
            (b"<13>1 2255-03-14T16:00:00Z h a - - - m", false),
            (b"<13>1 - h a - - - m", false),
            (b"<13>1600-06-01T00:00:00Z h app: m", true),
        ] {
            let m = p(line);
            let shown = String::from_utf8_lossy(line);
            assert_eq!(m.had_time_out_of_range(), out, "{shown}");
            assert_eq!(
                m.timestamp_ns.is_none(),
                out || shown.contains(" - h"),
                "{shown}"
            );
            assert_eq!(m.message, "m", "{shown}");
            let e = to_entry(&m, &NOW_2026, None);
            if out {
                assert_eq!(e.timestamp_ns, NOW_2026.now_ns, "{shown}");
            }
            assert!(
                crate::ingest::time_range::in_range(e.timestamp_ns),
                "{shown}"
            );
        }
        // Zone required in RFC 5424.
        assert_eq!(
            p(b"<13>1 2024-01-01T12:00:00 h a - - - m").format,
            Format::Rfc3164
        );
        // Invalid dates and times are not timestamps.
        for ts in [
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00.1234567890Z",
            "2024-01-01T00:00:00+24:00",
        ] {
            let line = format!("<13>1 {ts} h a - - - m");
            assert_eq!(p(line.as_bytes()).format, Format::Rfc3164, "{ts}");
        }
    }

    #[test]
    fn garbage_is_unparsed_with_level_unknown() {
        for input in [
            &b""[..],
            b"<13>",
            b"<999>hello",
            b"<192>hello",
            b"<13",
            b"<>x",
            b"<1234>x",
            b"hello world",
            b"\x00\xff\xfe\x80binary",
            b"\n\r\0",
        ] {
            let m = p(input);
            assert_eq!(m.format, Format::Unparsed, "{input:?}");
            assert_eq!(m.pri, None);
            assert_eq!(
                m.message,
                String::from_utf8_lossy(super::super::trim_terminators(input))
            );
            let e = to_entry(&m, &NOW_2003, None);
            assert_eq!(label_pairs(&e), [("level", "unknown")], "{input:?}");
            assert_eq!(e.timestamp_ns, NOW_2003.now_ns);
        }
        assert!(p(b"\xffbinary").had_invalid_utf8());
        assert_eq!(p(b"<191>x").severity(), Some(7));
    }

    #[test]
    fn invalid_utf8_in_msg_is_replaced_and_reported() {
        let m = p(b"<13>1 - h a - - - caf\xe9 ok");
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!(m.message, "caf\u{FFFD} ok");
        assert!(m.had_invalid_utf8());
        let m = p(b"<13>Oct 11 22:14:15 h a: \xc3\x28");
        assert!(m.had_invalid_utf8());
        assert_eq!(m.app_name, Some("a"));
        assert!(!p(b"<13>Oct 11 22:14:15 h a: caf\xc3\xa9").had_invalid_utf8());
    }

    #[test]
    fn trailing_terminators_are_not_part_of_the_message() {
        assert_eq!(p(b"<13>1 - h a - - - m\r\n\0").message, "m");
    }

    #[test]
    fn names_of_facilities_and_severities() {
        assert_eq!(facility_name(0), "kern");
        assert_eq!(facility_name(10), "authpriv");
        assert_eq!(facility_name(15), "solaris-cron");
        assert_eq!(facility_name(23), "local7");
        assert_eq!(facility_name(24), "unknown");
        assert_eq!(severity_name(0), "emergency");
        assert_eq!(severity_name(3), "error");
        assert_eq!(severity_name(7), "debug");
        assert_eq!(severity_name(8), "unknown");
    }

    #[test]
    fn metadata_keys_are_valid_names() {
        assert_eq!(
            metadata_key("exampleSDID@32473", "iut"),
            "exampleSDID_32473_iut"
        );
        assert_eq!(metadata_key("1x", "a-b.c"), "_1x_a_b_c");
    }

    #[test]
    fn sd_params_are_capped() {
        let mut line = b"<13>1 - h a - - [x".to_vec();
        for i in 0..SD_PARAMS_MAX + 10 {
            line.extend_from_slice(format!(" p{i}=\"v\"").as_bytes());
        }
        line.extend_from_slice(b"] m");
        let m = p(&line);
        assert_eq!(m.sd_params().count(), SD_PARAMS_MAX + 10);
        assert_eq!(to_entry(&m, &NOW_2003, None).metadata.len(), SD_PARAMS_MAX);
    }

    fn assert_valid_labels(labels: &Labels) -> Result<(), TestCaseError> {
        prop_assert!(labels.get("level").is_some());
        for (name, value) in labels.pairs() {
            prop_assert!(["app", "facility", "host", "level"].contains(&name.as_str()));
            prop_assert!(!value.is_empty());
            prop_assert!(value.len() <= HOSTNAME_BYTES_MAX);
            prop_assert!(!value.chars().any(|c| c.is_control() || c.is_whitespace()));
        }
        Ok(())
    }

    /// Syslog-looking fragments, so that arbitrary concatenations reach the deep paths.
    fn fragments() -> impl Strategy<Value = Vec<u8>> {
        let piece = proptest::sample::select(vec![
            &b"<13>"[..],
            b"<191>",
            b"<9999>",
            b"1 ",
            b"-",
            b" ",
            b"  ",
            b"Oct 11 ",
            b"Jun  9 ",
            b"22:14:15",
            b".003",
            b"2003-10-11T22:14:15",
            b"Z",
            b"+07:00",
            b"-0700",
            b"host",
            b"app",
            b"[",
            b"]",
            b"[12]",
            b":",
            b"=",
            b"\"",
            b"\\",
            b"x@1",
            b"\xEF\xBB\xBF",
            b"\xff",
            b"\n",
            b"\0",
            b"--",
            b"29",
        ]);
        proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn never_panics_and_labels_are_valid(
            input in proptest::collection::vec(any::<u8>(), 0..300),
            now_ns in any::<i64>(),
        ) {
            let ctx = ParseContext { now_ns };
            let m = parse(&input, &ctx);
            let e = to_entry(&m, &ctx, Some("192.0.2.1"));
            assert_valid_labels(&e.labels)?;
            prop_assert!(input.len() >= e.line.len() || m.had_invalid_utf8());
        }

        #[test]
        fn syslog_like_input_never_panics(input in fragments(), now_ns in any::<i64>()) {
            let ctx = ParseContext { now_ns };
            let m = parse(&input, &ctx);
            let e = to_entry(&m, &ctx, None);
            assert_valid_labels(&e.labels)?;
            for (k, _) in &e.metadata {
                prop_assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            }
            if m.format == Format::Unparsed {
                prop_assert_eq!(e.labels.len(), 1);
            }
        }
    }

    /// Every line of the loghub Linux and OpenSSH samples (plain syslog files, no PRI) gives
    /// a host and an app.
    #[test]
    fn loghub_syslog_files_parse_completely() {
        let ctx = ParseContext {
            now_ns: 1_514_764_800_000_000_000,
        };
        for (file, host) in [("Linux_2k.log", "combo"), ("OpenSSH_2k.log", "LabSZ")] {
            let path = crate::testing::corpus_dir().join(file);
            let Ok(text) = std::fs::read(&path) else {
                crate::testing::missing(&format!("corpus file {}", path.display()));
                return;
            };
            let mut lines = 0;
            for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let m = parse(line, &ctx);
                let e = to_entry(&m, &ctx, None);
                let shown = String::from_utf8_lossy(line);
                assert_eq!(m.format, Format::Rfc3164, "{file}: {shown}");
                assert!(m.timestamp_ns.is_some(), "{file}: {shown}");
                assert_eq!(e.labels.get("host"), Some(host), "{file}: {shown}");
                let app = e
                    .labels
                    .get("app")
                    .unwrap_or_else(|| panic!("{file}: {shown}"));
                assert!(
                    app.bytes().any(|c| c.is_ascii_alphabetic()),
                    "{file}: {shown}"
                );
                lines += 1;
            }
            assert_eq!(lines, 2000, "{file}");
        }
    }
}
