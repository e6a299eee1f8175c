//! Whole-file tests of parts: property round trips, bloom filters over real blocks, tail
//! opens, and corruption (every byte flipped, sectors overwritten, every truncation).

use std::path::Path;

use proptest::prelude::*;
use rkyv::util::AlignedVec;

use super::*;
use crate::model::{Labels, stream_hash};

type OwnedEntry = (i64, String, Vec<(String, String)>);

/// A small xorshift generator: the statistical tests draw their inputs from a fixed seed, so
/// that they measure the same thing on every run and cannot flake.
pub(super) struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A random word of `n` ASCII letters and digits.
    pub fn alnum(&mut self, n: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..n)
            .map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

/// A stream as the tests own it.
#[derive(Clone, Debug, PartialEq)]
struct OwnedStream {
    tenant: String,
    labels: Labels,
    entries: Vec<OwnedEntry>,
}

type Decoded = Vec<(u64, OwnedStream)>;

/// Encodes owned streams through the borrowed writer input.
fn encode(streams: &[OwnedStream], opts: &PartWriterOptions) -> Result<AlignedVec, ChunkError> {
    let md: Vec<Vec<Vec<(&str, &str)>>> = streams
        .iter()
        .map(|s| {
            s.entries
                .iter()
                .map(|(_, _, m)| m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
                .collect()
        })
        .collect();
    let entries: Vec<Vec<EntryInput<'_>>> = streams
        .iter()
        .zip(&md)
        .map(|(s, md)| {
            s.entries
                .iter()
                .zip(md)
                .map(|((ts, line, _), m)| (*ts, line.as_str(), m.as_slice()))
                .collect()
        })
        .collect();
    let inputs: Vec<StreamBlockInput<'_>> = streams
        .iter()
        .zip(&entries)
        .map(|(s, e)| StreamBlockInput {
            stream_id: stream_hash(&s.tenant, &s.labels),
            tenant: &s.tenant,
            labels: &s.labels,
            entries: e,
        })
        .collect();
    let bytes = encode_part(&inputs, opts)?;
    let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(&bytes);
    Ok(aligned)
}

/// [`encode`] through a [`PartEncoder`] fed a piece at a time: each stream's entries in
/// pieces cut at `cuts` (fractions of its length), every piece but the last left open, the
/// entries it holds back fed again with the next; the file's pages taken as they are ready.
fn encode_in_pieces(
    streams: &[OwnedStream],
    opts: &PartWriterOptions,
    cuts: &[f64],
) -> Result<Vec<u8>, ChunkError> {
    let mut order: Vec<&OwnedStream> = streams.iter().collect();
    order.sort_by_key(|s| stream_hash(&s.tenant, &s.labels));
    let mut encoder = PartEncoder::new(opts)?;
    let mut out = Vec::new();
    for s in order {
        let md: Vec<Vec<(&str, &str)>> = s
            .entries
            .iter()
            .map(|(_, _, m)| m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
            .collect();
        let entries: Vec<EntryInput<'_>> = s
            .entries
            .iter()
            .zip(&md)
            .map(|((ts, line, _), m)| (*ts, line.as_str(), m.as_slice()))
            .collect();
        let input = |entries| StreamBlockInput {
            stream_id: stream_hash(&s.tenant, &s.labels),
            tenant: &s.tenant,
            labels: &s.labels,
            entries,
        };
        let mut from = 0;
        for cut in cuts {
            let to = ((entries.len() as f64 * cut) as usize).clamp(from, entries.len());
            from += encoder.add(&input(&entries[from..to]), false)?;
            out.extend_from_slice(&encoder.take_ready());
        }
        let all = encoder.add(&input(&entries[from..]), true)?;
        assert_eq!(all, entries.len() - from, "the last piece is written whole");
        out.extend_from_slice(&encoder.take_ready());
    }
    out.extend_from_slice(&encoder.finish()?);
    Ok(out)
}

/// Opens a part and decodes every block, streams in part order.
fn decode(bytes: &[u8]) -> Result<Decoded, ChunkError> {
    let reader = PartReader::open(bytes, Path::new("/data/part-1"))?;
    let mut out = Vec::new();
    let mut block = DecodedBlock::new();
    for s in reader.streams() {
        let labels =
            Labels::from_pairs(s.labels.iter().map(|p| (p.name.as_str(), p.value.as_str())));
        let mut entries = Vec::new();
        for i in s.block_range() {
            reader.decode_block_into(i, &mut block)?;
            assert_eq!(block.len(), reader.blocks()[i].entries.to_native() as usize);
            for e in block.iter() {
                let md = e
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                entries.push((e.ts, e.line.to_string(), md));
            }
        }
        let stream = OwnedStream {
            tenant: s.tenant.to_string(),
            labels,
            entries,
        };
        out.push((s.id.to_native(), stream));
    }
    Ok(out)
}

/// What a correct decode of `streams` is: non-empty streams sorted by id.
fn expected(streams: &[OwnedStream]) -> Decoded {
    let mut want: Decoded = streams
        .iter()
        .filter(|s| !s.entries.is_empty())
        .map(|s| (stream_hash(&s.tenant, &s.labels), s.clone()))
        .collect();
    want.sort_by_key(|(id, _)| *id);
    want
}

fn line_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9 =:.]{0,60}",
        // Few shapes filled with numbers and hex ids (and a newline now and then), as log
        // lines are: what the templates layout is made for.
        4 => "(GET|PUT) /a/[0-9]{1,3} (200|404) [0-9a-f]{4}[0-9]( é|\n)?",
        2 => "\\PC{0,30}",
        1 => Just(String::new()),
        1 => "[a-f]{2000,6000}",
    ]
}

fn entries_strategy() -> impl Strategy<Value = Vec<OwnedEntry>> {
    let ts = prop_oneof![3 => -3i64..3, 1 => any::<i64>()];
    let md = prop::collection::vec(("[a-z_]{0,6}", "\\PC{0,8}"), 0..3);
    prop::collection::vec((ts, line_strategy(), md), 0..40).prop_map(|mut v| {
        // Stable: equal timestamps keep their generated order, which the part must keep.
        v.sort_by_key(|e| e.0);
        v
    })
}

fn streams_strategy() -> impl Strategy<Value = Vec<OwnedStream>> {
    let stream = (
        prop::sample::select(vec!["fake", "team-a", "t1"]),
        prop::collection::btree_map("[a-z_]{1,6}", "\\PC{1,10}", 0..4),
        entries_strategy(),
    );
    prop::collection::vec(stream, 1..5).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (tenant, labels, entries))| {
                // A distinct `idx` label keeps the streams distinct.
                let mut pairs: Vec<(String, String)> = labels.into_iter().collect();
                pairs.retain(|(k, _)| k != "idx");
                pairs.push(("idx".into(), i.to_string()));
                OwnedStream {
                    tenant: tenant.to_string(),
                    labels: Labels::from_pairs(pairs),
                    entries,
                }
            })
            .collect()
    })
}

/// Label names and values of the postings test: few, so that streams share pairs; with
/// prefixes of each other, an upper-case and a non-ASCII one, so that the byte order the
/// postings' binary searches rely on is exercised.
const POSTING_NAMES: &[&str] = &["Host", "app", "app_x", "env", "zone"];
const POSTING_VALUES: &[&str] = &["Prod", "a", "ab", "b", "prod", "ünï"];

/// Streams whose label sets are drawn from [`POSTING_NAMES`] and [`POSTING_VALUES`] (any
/// subset of the names, the empty set included), some of them without entries (those are not
/// written, so they must not appear in the postings), each (tenant, labels) once.
fn labelled_streams_strategy() -> impl Strategy<Value = Vec<OwnedStream>> {
    let labels = prop::collection::vec(
        prop::option::of(prop::sample::select(POSTING_VALUES)),
        POSTING_NAMES.len(),
    );
    let stream = (prop::sample::select(vec!["fake", "t1"]), labels, 0usize..3);
    prop::collection::vec(stream, 1..24).prop_map(|v| {
        let mut seen = std::collections::HashSet::new();
        v.into_iter()
            .filter_map(|(tenant, values, entries)| {
                let pairs = POSTING_NAMES
                    .iter()
                    .zip(values)
                    .filter_map(|(name, value)| value.map(|v| (*name, v)));
                let labels = Labels::from_pairs(pairs);
                seen.insert((tenant, labels.clone())).then(|| OwnedStream {
                    tenant: tenant.to_string(),
                    labels,
                    entries: (0..entries)
                        .map(|i| (i as i64, format!("line {i}"), vec![]))
                        .collect(),
                })
            })
            .collect()
    })
}

fn options_strategy() -> impl Strategy<Value = PartWriterOptions> {
    (
        prop::sample::select(vec![1, 3, 9]),
        prop::sample::select(vec![4096usize, 16 << 10, 1 << 20]),
        prop::sample::select(vec![0.0, 3.25, 10.0]),
        1u8..4,
        prop::sample::select(vec![LineTemplates::Off, LineTemplates::Auto]),
    )
        .prop_map(
            |(
                zstd_level,
                block_bytes_target,
                bloom_bits_per_gram,
                bloom_hashes,
                line_templates,
            )| {
                PartWriterOptions {
                    zstd_level,
                    block_bytes_target,
                    bloom_bits_per_gram,
                    bloom_hashes,
                    line_templates,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A part written a piece at a time (as compaction streams one) is the part written
    /// whole, byte for byte: blocks are cut where they would have been.
    #[test]
    fn a_part_written_in_pieces_is_the_part_written_whole(
        streams in streams_strategy(),
        opts in options_strategy(),
        cuts in prop::collection::vec(0.0f64..1.0, 0..4),
    ) {
        let mut cuts = cuts;
        cuts.sort_by(f64::total_cmp);
        let whole = encode(&streams, &opts);
        let pieces = encode_in_pieces(&streams, &opts, &cuts);
        match (whole, pieces) {
            (Ok(w), Ok(p)) => prop_assert!(w.as_slice() == p.as_slice(), "the bytes differ"),
            (Err(w), Err(p)) => prop_assert_eq!(w.to_string(), p.to_string()),
            (w, p) => prop_assert!(false, "whole {:?}, in pieces {:?}", w.map(|b| b.len()), p.map(|b| b.len())),
        }
    }

    #[test]
    fn part_round_trip(streams in streams_strategy(), opts in options_strategy()) {
        let want = expected(&streams);
        let bytes = match encode(&streams, &opts) {
            Ok(b) => b,
            Err(ChunkError::InvalidInput(_)) if want.is_empty() => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        };
        prop_assert_eq!(bytes.len() % PART_ALIGN_BYTES, 0);
        let got = decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&got, &want);

        let reader = PartReader::open(&bytes, Path::new("p")).unwrap();
        let f = reader.footer();
        prop_assert_eq!(f.entries as usize, want.iter().map(|(_, s)| s.entries.len()).sum::<usize>());
        for (i, (id, s)) in want.iter().enumerate() {
            prop_assert_eq!(reader.meta().stream_index(*id), Some(i));
            for (k, v) in s.labels.pairs() {
                let ids: Vec<u32> = reader.meta().postings(k, v).iter().map(|x| x.to_native()).collect();
                prop_assert!(ids.contains(&(i as u32)));
            }
        }
        // Every needle cut from a line is found by its block's filter: no false negatives.
        let mut block = DecodedBlock::new();
        for b in 0..reader.blocks().len() {
            reader.decode_block_into(b, &mut block).unwrap();
            prop_assert_eq!(reader.bloom(b).is_some(), opts.bloom_bits_per_gram > 0.0);
            for e in block.iter() {
                let line = e.line.as_bytes();
                for start in (0..line.len()).step_by(13) {
                    for len in [4usize, 6, 11, 80] {
                        if start + len <= line.len() {
                            let probe = tokens::NeedleProbe::new(&line[start..start + len]).unwrap();
                            prop_assert!(reader.bloom(b).is_none_or(|bl| probe.may_occur(&bl)));
                        }
                    }
                }
            }
        }
        // Every metadata pair of every entry is found by the part's index in its block (no
        // false negatives), and a block the index names for a key holds a pair of that key
        // or a line a parser may unescape (the escape key).
        for b in 0..reader.blocks().len() {
            reader.decode_block_into(b, &mut block).unwrap();
            let mut keys: Vec<u32> = Vec::new();
            for e in block.iter() {
                keys.extend(e.metadata.iter().map(|(k, v)| pairs::pair_key(k, v)));
                if pairs::line_may_unescape(e.line.as_bytes()) {
                    keys.push(pairs::escape_key());
                }
            }
            for &k in &keys {
                let named = reader.pair_blocks(k).unwrap().expect("a part with keys has an index");
                prop_assert!(named.contains(&(b as u32)), "key {:#x} of block {} not found", k, b);
            }
            for k in keys.iter().map(|k| k.wrapping_add(1)) {
                if let Some(named) = reader.pair_blocks(k).unwrap() {
                    prop_assert!(!named.contains(&(b as u32)) || keys.contains(&k));
                }
            }
        }
        // The same metadata, blooms and blocks through a tail open.
        for from in [f.tail_offset_with_blooms(), f.tail_offset_meta_only()] {
            let tail = PartReader::open_tail(&bytes[from as usize..], from, Path::new("p")).unwrap();
            prop_assert_eq!(tail.has_blooms(), from <= f.bloom_offset);
            prop_assert_eq!(tail.footer(), reader.footer());
            for b in 0..tail.blocks().len() {
                let r = tail.block_range(b).unwrap();
                tail.decode_block_bytes(b, &bytes[r.start as usize..r.end as usize], &mut block).unwrap();
                prop_assert_eq!(block.len(), reader.blocks()[b].entries.to_native() as usize);
                prop_assert!(tail.decode_block_into(b, &mut block).is_err());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Postings round trip: every (name, value), carried or not, answers exactly the part's
    /// streams that carry it, and the postings list nothing else.
    #[test]
    fn postings_are_exactly_the_streams_carrying_each_pair(streams in labelled_streams_strategy()) {
        let written: Vec<&OwnedStream> = streams.iter().filter(|s| !s.entries.is_empty()).collect();
        let opts = PartWriterOptions {
            zstd_level: 1,
            bloom_bits_per_gram: 0.0,
            ..PartWriterOptions::default()
        };
        let bytes = match encode(&streams, &opts) {
            Ok(b) => b,
            Err(ChunkError::InvalidInput(_)) if written.is_empty() => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        };
        let reader = PartReader::open(&bytes, Path::new("p")).unwrap();
        let meta = reader.meta();
        prop_assert_eq!(meta.streams.len(), written.len());
        // (name, value) -> the part's indexes of the written streams carrying it, from the
        // input alone; a BTreeMap of str pairs is in the byte order the postings must have.
        let mut want: std::collections::BTreeMap<(&str, &str), Vec<u32>> = Default::default();
        for s in &written {
            let idx = meta.stream_index(stream_hash(&s.tenant, &s.labels));
            prop_assert!(idx.is_some(), "stream {} missing from the part", s.labels);
            for (k, v) in s.labels.pairs() {
                want.entry((k.as_str(), v.as_str())).or_default().push(idx.unwrap() as u32);
            }
        }
        for ids in want.values_mut() {
            ids.sort_unstable();
        }
        let names = POSTING_NAMES.iter().copied().chain(["", "a", "zzz"]);
        for name in names {
            for value in POSTING_VALUES.iter().copied().chain(["", "c", "prod "]) {
                let got: Vec<u32> = meta.postings(name, value).iter().map(|x| x.to_native()).collect();
                let expected = want.get(&(name, value)).cloned().unwrap_or_default();
                prop_assert_eq!(got, expected, "postings of {}={:?}", name, value);
            }
        }
        let listed: Vec<(String, String, Vec<u32>)> = meta
            .postings
            .iter()
            .flat_map(|p| {
                p.values.iter().map(move |v| {
                    let ids = v.streams.iter().map(|x| x.to_native()).collect();
                    (p.name.to_string(), v.value.to_string(), ids)
                })
            })
            .collect();
        let want_listed: Vec<(String, String, Vec<u32>)> = want
            .into_iter()
            .map(|((k, v), ids)| (k.to_string(), v.to_string(), ids))
            .collect();
        prop_assert_eq!(listed, want_listed);
    }
}

fn small_part() -> (Vec<OwnedStream>, AlignedVec) {
    small_part_with(LineTemplates::Off)
}

/// [`small_part`] with its lines in the templates layout where the writer takes it.
fn small_part_templated() -> (Vec<OwnedStream>, AlignedVec) {
    small_part_with(LineTemplates::Auto)
}

fn small_part_with(line_templates: LineTemplates) -> (Vec<OwnedStream>, AlignedVec) {
    let line = |i: usize| {
        let session = xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes());
        format!("{i:04} sshd[42]: Failed password for root from 10.0.0.{i} session {session:x}")
    };
    let streams = vec![
        OwnedStream {
            tenant: "fake".into(),
            labels: Labels::from_pairs([("app", "sshd"), ("host", "db1")]),
            entries: (0..500)
                .map(|i| (1_700_000_000_000_000_000 + i as i64 * 1000, line(i), vec![]))
                .collect(),
        },
        OwnedStream {
            tenant: "fake".into(),
            labels: Labels::from_pairs([("app", "cron")]),
            entries: vec![
                (5, "ünïcode".into(), vec![("trace_id".into(), "abc".into())]),
                (5, String::new(), vec![]),
            ],
        },
    ];
    let opts = PartWriterOptions {
        block_bytes_target: 4096,
        line_templates,
        ..Default::default()
    };
    let bytes = encode(&streams, &opts).unwrap();
    (streams, bytes)
}

fn assert_detected(result: Result<Decoded, ChunkError>, clean: &Decoded, what: &str) {
    match result {
        Err(ChunkError::Corruption { path, offset, .. }) => {
            assert_eq!(path, Path::new("/data/part-1"), "{what}");
            assert!(offset < 1 << 20, "{what}: offset {offset}");
        }
        Err(e) => panic!("{what}: not a corruption error: {e}"),
        Ok(got) => assert_eq!(&got, clean, "{what}: undetected change altered the decode"),
    }
}

/// The index's false-positive rate: a key absent from a part matches one of its `n` index
/// entries with probability `n / 2^32` (the keys are 32-bit hashes). Measured over 250,000
/// absent trace ids against a part's index of 250,000 (trace id, block) entries: about 15
/// expected, and never a false negative.
#[test]
fn metadata_index_false_positive_rate_is_near_its_target() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut builder = pairs::PairIndexBuilder::new();
    let present: Vec<String> = (0..250_000)
        .map(|_| format!("{:016x}", rng.next()))
        .collect();
    for (i, id) in present.iter().enumerate() {
        builder.add(pairs::pair_key("trace_id", id));
        builder.end_block((i / 100) as u32);
    }
    let mut bytes = Vec::new();
    let (n, crc) = builder.finish(&mut bytes);
    let entries = u64::from(n);
    let dir_at = entries as usize * pairs::PAIR_ENTRY_BYTES;
    let dir = pairs::PairDirectory::parse(&bytes[dir_at..], 0, entries, crc).unwrap();
    let lookup = |key: u32| dir.lookup(key, &bytes[..dir_at], 4000).unwrap();
    for (i, id) in present.iter().enumerate().step_by(97) {
        assert!(lookup(pairs::pair_key("trace_id", id)).contains(&((i / 100) as u32)));
    }
    let false_matches: usize = (0..250_000)
        .map(|_| lookup(pairs::pair_key("trace_id", &format!("{:016x}", rng.next()))).len())
        .sum();
    let expected = 250_000.0 * entries as f64 / 2f64.powi(32);
    assert!(
        (expected / 3.0..expected * 2.5).contains(&(false_matches as f64)),
        "{false_matches} false matches, {expected:.1} expected"
    );
}

#[test]
fn every_flipped_byte_is_detected() {
    every_flipped_byte_is_detected_in(small_part());
}

#[test]
fn every_flipped_byte_of_a_templated_part_is_detected() {
    let (streams, bytes) = small_part_templated();
    let reader = PartReader::open(&bytes, Path::new("p")).unwrap();
    let templated = (0..reader.blocks().len())
        .filter(|&i| {
            let b = &reader.blocks()[i];
            // Templates rebuild more line bytes than the body holds on this stream.
            b.lines_bytes.to_native() > u64::from(b.uncompressed_bytes.to_native())
        })
        .count();
    assert!(templated > 0, "the part has templated blocks");
    every_flipped_byte_is_detected_in((streams, bytes));
}

fn every_flipped_byte_is_detected_in((streams, bytes): (Vec<OwnedStream>, AlignedVec)) {
    let clean = decode(&bytes).unwrap();
    assert_eq!(clean, expected(&streams));
    let reader = PartReader::open(&bytes, Path::new("p")).unwrap();
    let meta_offset = reader.footer().meta_offset as usize;
    let block1 = reader.block_range(1).unwrap();
    let mut copy = AlignedVec::<16>::with_capacity(bytes.len());
    copy.extend_from_slice(&bytes);
    for pos in 0..bytes.len() {
        let flip = 1u8 << (pos % 8);
        copy[pos] ^= flip;
        let result = decode(&copy);
        // Every byte is under a checksum or checked to be zero: nothing goes unnoticed.
        let err = result.expect_err(&format!("flip at {pos} not detected"));
        let ChunkError::Corruption { offset, .. } = err else {
            panic!("flip at {pos}: {err}")
        };
        if (block1.start..block1.end).contains(&(pos as u64)) {
            assert_eq!(
                offset, block1.start,
                "a flipped block is named by its offset"
            );
        }
        if (meta_offset..meta_offset + 64).contains(&pos) {
            assert_eq!(offset, meta_offset as u64);
        }
        copy[pos] ^= flip;
    }
    assert_eq!(decode(&copy).unwrap(), clean);
}

#[test]
fn overwritten_sectors_and_truncations_are_detected() {
    let (_, bytes) = small_part();
    let clean = decode(&bytes).unwrap();
    let mut copy = AlignedVec::<16>::with_capacity(bytes.len());
    copy.extend_from_slice(&bytes);
    let sector = 512;
    for start in (0..bytes.len()).step_by(sector / 2) {
        let end = (start + sector).min(bytes.len());
        for fill in [0x00u8, 0xff] {
            copy[start..end].fill(fill);
            assert_detected(
                decode(&copy),
                &clean,
                &format!("{fill:#x} over {start}..{end}"),
            );
            copy[start..end].copy_from_slice(&bytes[start..end]);
        }
        // Another part's bytes: the same file shifted.
        let other = &bytes[(start + 100) % bytes.len()..];
        let n = other.len().min(end - start);
        copy[start..start + n].copy_from_slice(&other[..n]);
        assert_detected(
            decode(&copy),
            &clean,
            &format!("foreign bytes over {start}..{end}"),
        );
        copy[start..end].copy_from_slice(&bytes[start..end]);
    }
    assert!(bytes.len() > 4096, "a part of several direct-I/O blocks");
    for len in (0..bytes.len()).step_by(3).chain([4096, bytes.len() - 1]) {
        let result = decode(&bytes[..len]);
        assert!(
            matches!(result, Err(ChunkError::Corruption { .. })),
            "cut at {len}: {result:?}"
        );
    }
    // A whole, valid part followed by more blocks of zeros is not silently accepted either.
    let mut longer = AlignedVec::<16>::with_capacity(bytes.len() + 4096);
    longer.extend_from_slice(&bytes);
    longer.extend_from_slice(&[0u8; 4096]);
    assert_detected(decode(&longer), &clean, "zero block appended");
}

#[test]
fn unaligned_buffers_are_refused_not_misread() {
    let (_, bytes) = small_part();
    let mut shifted = AlignedVec::<16>::with_capacity(bytes.len() + 8);
    shifted.extend_from_slice(&[0u8; 8]);
    shifted.extend_from_slice(&bytes);
    let err = PartReader::open(&shifted[8..], Path::new("p"))
        .err()
        .unwrap();
    assert!(
        matches!(err, ChunkError::InvalidInput(ref m) if m.contains("aligned")),
        "{err}"
    );
}

#[test]
fn writer_refuses_bad_input() {
    let labels = Labels::from_pairs([("app", "x")]);
    let entries: Vec<EntryInput<'_>> = vec![(1, "a", &[])];
    let input = |id, tenant| StreamBlockInput {
        stream_id: id,
        tenant,
        labels: &labels,
        entries: &entries,
    };
    let opts = PartWriterOptions::default();
    let good = stream_hash("fake", &labels);
    assert!(encode_part(&[input(good, "fake")], &opts).is_ok());
    let bad = [
        encode_part(&[], &opts),
        encode_part(&[input(good + 1, "fake")], &opts),
        encode_part(&[input(good, "fake"), input(good, "fake")], &opts),
        encode_part(&[input(stream_hash("a/b", &labels), "a/b")], &opts),
    ];
    for (i, r) in bad.into_iter().enumerate() {
        assert!(
            matches!(r, Err(ChunkError::InvalidInput(_))),
            "case {i}: {r:?}"
        );
    }
    let md: Vec<(&str, &str)> = vec![("k", "v"); METADATA_PAIRS_MAX + 1];
    let many: Vec<EntryInput<'_>> = vec![(1, "a", &md)];
    let r = encode_part(
        &[StreamBlockInput {
            entries: &many,
            ..input(good, "fake")
        }],
        &opts,
    );
    assert!(matches!(r, Err(ChunkError::TooLarge { .. })), "{r:?}");
}

#[test]
#[should_panic(expected = "sorted by timestamp")]
fn writer_asserts_sorted_entries() {
    let labels = Labels::from_pairs([("app", "x")]);
    let entries: Vec<EntryInput<'_>> = vec![(2, "a", &[]), (1, "b", &[])];
    let input = StreamBlockInput {
        stream_id: stream_hash("fake", &labels),
        tenant: "fake",
        labels: &labels,
        entries: &entries,
    };
    let _ = encode_part(&[input], &PartWriterOptions::default());
}

/// Random 6-byte needles that occur in no line are let through at about the designed rate:
/// `p^3` with `p = (1 - e^(-k/b))^k` per gram, about 6% at 2 bits per gram and one hash.
#[test]
fn needle_false_positive_rate_is_near_the_target() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut word = |n: usize| rng.alnum(n);
    let entries: Vec<OwnedEntry> = (0..4000).map(|i| (i, word(40), vec![])).collect();
    let all_text: Vec<String> = entries.iter().map(|e| e.1.clone()).collect();
    let streams = vec![OwnedStream {
        tenant: "fake".into(),
        labels: Labels::from_pairs([("app", "fpr")]),
        entries,
    }];
    let opts = PartWriterOptions {
        block_bytes_target: 64 << 10,
        ..Default::default()
    };
    let bytes = encode(&streams, &opts).unwrap();
    let reader = PartReader::open(&bytes, Path::new("p")).unwrap();
    assert!(reader.blocks().len() >= 2);
    let (mut probes, mut passed) = (0u32, 0u32);
    while probes < 30_000 {
        let needle = word(6);
        if all_text.iter().any(|l| l.contains(&needle)) {
            continue;
        }
        let probe = tokens::NeedleProbe::new(needle.as_bytes()).unwrap();
        for b in 0..reader.blocks().len() {
            probes += 1;
            passed += u32::from(probe.may_occur(&reader.bloom(b).unwrap()));
        }
    }
    let rate = f64::from(passed) / f64::from(probes);
    let b = bloom::BLOOM_BITS_PER_GRAM_DEFAULT;
    let k = f64::from(bloom::BLOOM_HASHES_DEFAULT);
    let target = (1.0 - (-k / b).exp()).powi(k as i32).powi(3);
    assert!(
        rate > target * 0.3 && rate < target * 3.0,
        "measured {rate:.4}, target {target:.4}"
    );
}

fn fuzz_corpus_dir(target: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// The seed inputs of the fuzz targets: (target, file name, bytes).
fn fuzz_seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let (_, bytes) = small_part();
    let (_, templated) = small_part_templated();
    // The first byte is the target's mode: 1 recomputes checksums after mutation.
    for (name, mode, bytes) in [
        ("small-fixed", 1u8, &bytes),
        ("small-raw", 0, &bytes),
        ("templated-fixed", 1, &templated),
    ] {
        let mut seed = vec![mode];
        seed.extend_from_slice(bytes);
        out.push(("part_decode", name, seed));
    }
    // A templated body on its own (mode 14: body parser, format version 4), its timestamps
    // whole milliseconds (the scaled timestamp layout).
    let lines: Vec<String> = (0..40)
        .map(|i| format!("{i:04} sshd[42]: session {} from 10.0.0.{}", i * 31, i % 5))
        .collect();
    let entries: Vec<EntryInput<'_>> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| ((i as i64 / 3) * 1_000_000, l.as_str(), &[][..]))
        .collect();
    let mut body = Vec::new();
    let lines_bytes = block::encode_body(&entries, LineTemplates::Auto, &mut body);
    assert!(fuzz_parse_body(
        &body,
        PART_FORMAT_VERSION,
        entries.len(),
        lines_bytes
    ));
    assert_eq!(PART_FORMAT_VERSION, 4, "the seed's mode names the version");
    let mut seed = vec![14u8];
    seed.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    seed.extend_from_slice(&(lines_bytes as u32).to_le_bytes());
    seed.extend_from_slice(&body);
    out.push(("part_decode", "templated-body", seed));
    let labels = Labels::from_pairs([("app", "sshd")]);
    let mut batch = crate::model::BatchBuilder::new("fake");
    batch.push(
        stream_hash("fake", &labels),
        &labels,
        1,
        "a line",
        &[("k", "v")],
    );
    batch.push(stream_hash("fake", &labels), &labels, 2, "another", &[]);
    let body = batch.finish().bytes;
    let mut log = Vec::new();
    crate::wal::encode_record(1, &body, &mut log);
    crate::wal::encode_record(2, b"", &mut log);
    out.push(("wal_record_decode", "two-records", log));
    out
}

/// Writes the seed inputs of the fuzz targets into `fuzz/corpus/*` (git-ignored): run with
/// `--ignored` before `cargo fuzz run`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    for (target, name, bytes) in fuzz_seeds() {
        let dir = fuzz_corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// The fuzz targets' seeds, replayed on stable as plain tests: every seed, and every
/// single-byte change of a sample of positions, opens and decodes to a result. Inputs a local
/// fuzzing run added to `fuzz/corpus/` are replayed too (any result but a panic).
#[test]
fn fuzz_seeds_replay() {
    let mut local: Vec<(String, Vec<u8>)> = Vec::new();
    for target in ["part_decode", "wal_record_decode"] {
        for entry in std::fs::read_dir(fuzz_corpus_dir(target))
            .into_iter()
            .flatten()
        {
            let path = entry.unwrap().path();
            local.push((target.to_string(), std::fs::read(&path).unwrap()));
        }
    }
    for (target, data) in &local {
        if target == "part_decode" && data.first().is_some_and(|m| m & 2 == 2) {
            if data.len() >= 7 {
                let entries = usize::from(u16::from_le_bytes([data[1], data[2]]));
                let lines_bytes = u64::from(u32::from_le_bytes(data[3..7].try_into().unwrap()));
                let version = 1 + u32::from((data[0] >> 2) & 3);
                let _ = fuzz_parse_body(&data[7..], version, entries, lines_bytes);
            }
        } else if target == "part_decode" {
            let mut buf = AlignedVec::<16>::with_capacity(data.len());
            buf.extend_from_slice(data.get(1..).unwrap_or_default());
            let _ = decode(&buf);
        } else {
            for offset in 0..data.len() {
                let _ = crate::wal::decode_record(data, offset);
            }
        }
    }
    for (target, _, data) in fuzz_seeds() {
        if target == "part_decode" && data[0] & 2 == 2 {
            // A body seed: every single-byte change parses or is refused, without a panic.
            let entries = usize::from(u16::from_le_bytes([data[1], data[2]]));
            let lines_bytes = u64::from(u32::from_le_bytes(data[3..7].try_into().unwrap()));
            let mut body = data[7..].to_vec();
            assert!(fuzz_parse_body(
                &body,
                PART_FORMAT_VERSION,
                entries,
                lines_bytes
            ));
            for pos in 0..body.len() {
                for flip in [1u8, 0x40, 0xff] {
                    body[pos] ^= flip;
                    let _ = fuzz_parse_body(&body, PART_FORMAT_VERSION, entries, lines_bytes);
                    body[pos] ^= flip;
                }
            }
        } else if target == "part_decode" {
            let mut buf = AlignedVec::<16>::with_capacity(data.len());
            buf.extend_from_slice(&data[1..]);
            for pos in (0..buf.len()).step_by(97) {
                buf[pos] = buf[pos].wrapping_add(1);
                assert!(decode(&buf).is_err(), "change at {pos} undetected");
                buf[pos] = buf[pos].wrapping_sub(1);
            }
            decode(&buf).unwrap();
        } else {
            let mut ok = 0;
            for offset in 0..data.len() {
                if let Ok(Some(_)) = crate::wal::decode_record(&data, offset) {
                    ok += 1;
                }
            }
            assert!(ok >= 1);
        }
    }
}
