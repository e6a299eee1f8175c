//! Part file benchmarks on real logs: encoding a part (zstd blocks, blooms, metadata),
//! opening it and decoding every block into a reused buffer, building bloom filters and
//! probing them.
//!
//! The part holds the ten loghub corpus files, one stream each (`app=<file>`). Before the
//! timed runs it prints the storage figures: part bytes per file against `zstd -3` of the raw
//! file, the bloom share, and (with `CHUNK_SWEEP=1`) the same for other zstd levels, block
//! sizes and bloom densities, with the false-positive rate measured on real needles.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rkyv::util::AlignedVec;
use shardlog::chunk::bloom::BloomBuilder;
use shardlog::chunk::tokens::NeedleProbe;
use shardlog::chunk::{
    DecodedBlock, EntryInput, PartReader, PartWriterOptions, StreamBlockInput, encode_part,
};
use shardlog::model::{Labels, stream_hash};

#[path = "common/corpus.rs"]
mod corpus;

/// One corpus file as a stream.
struct Corpus {
    app: String,
    raw: Vec<u8>,
    labels: Labels,
    lines: Vec<String>,
    /// Arrival-like timestamps: 1 ms apart with nanosecond jitter, the hardest case for the
    /// delta column (a receiver stamps lines with the clock's full precision).
    ts: Vec<i64>,
}

fn corpus() -> Vec<Corpus> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    corpus::files()
        .into_iter()
        .map(|(app, text)| {
            let raw = text.clone().into_bytes();
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            let ts = (0..lines.len())
                .map(|i| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    1_700_000_000_000_000_000 + i as i64 * 1_000_000 + (seed % 1_000_000) as i64
                })
                .collect();
            Corpus {
                labels: Labels::from_pairs([("app", app.as_str())]),
                app,
                raw,
                lines,
                ts,
            }
        })
        .collect()
}

fn encode(files: &[&Corpus], opts: &PartWriterOptions, coarse_ts: bool) -> AlignedVec {
    let entries: Vec<Vec<EntryInput<'_>>> = files
        .iter()
        .map(|c| {
            c.lines
                .iter()
                .zip(&c.ts)
                .enumerate()
                .map(|(i, (l, &t))| {
                    // Coarse: whole seconds, ten lines a second, as parsed from the text.
                    let t = if coarse_ts {
                        1_700_000_000_000_000_000 + (i as i64 / 10) * 1_000_000_000
                    } else {
                        t
                    };
                    (t, l.as_str(), &[][..])
                })
                .collect()
        })
        .collect();
    let inputs: Vec<StreamBlockInput<'_>> = files
        .iter()
        .zip(&entries)
        .map(|(c, e)| StreamBlockInput {
            stream_id: stream_hash("fake", &c.labels),
            tenant: "fake",
            labels: &c.labels,
            entries: e,
        })
        .collect();
    let bytes = encode_part(&inputs, opts).expect("corpus encodes");
    let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(&bytes);
    aligned
}

/// Bytes of a part without the alignment padding before the footer, and of its blooms.
fn sizes(part: &[u8]) -> (usize, usize, usize) {
    let r = PartReader::open(part, Path::new("bench")).unwrap();
    let f = r.footer();
    let content = (f.meta_offset + f.meta_len) as usize + 96;
    let blooms: usize = r
        .blocks()
        .iter()
        .map(|b| b.bloom_len.to_native() as usize)
        .sum();
    (content, blooms, f.meta_len as usize)
}

fn print_figures(corpus: &[Corpus]) {
    let opts = PartWriterOptions::default();
    println!("part figures, defaults {opts:?}, one part per file, ns-jitter timestamps");
    println!(
        "{:<12} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8} {:>7}",
        "file", "lines", "raw", "zstd-3", "part", "content", "bloom%", "B/line", "ratio"
    );
    let (mut t_raw, mut t_z3, mut t_part, mut t_content, mut t_bloom, mut t_lines) =
        (0, 0, 0, 0, 0, 0);
    for c in corpus {
        let z3 = zstd::bulk::compress(&c.raw, 3).unwrap().len();
        let part = encode(&[c], &opts, false);
        let (content, blooms, _) = sizes(&part);
        println!(
            "{:<12} {:>6} {:>9} {:>9} {:>9} {:>9} {:>6.1}% {:>8.2} {:>7.3}",
            c.app,
            c.lines.len(),
            c.raw.len(),
            z3,
            part.len(),
            content,
            100.0 * blooms as f64 / content as f64,
            part.len() as f64 / c.lines.len() as f64,
            part.len() as f64 / z3 as f64
        );
        t_raw += c.raw.len();
        t_z3 += z3;
        t_part += part.len();
        t_content += content;
        t_bloom += blooms;
        t_lines += c.lines.len();
    }
    println!(
        "{:<12} {:>6} {:>9} {:>9} {:>9} {:>9} {:>6.1}% {:>8.2} {:>7.3}  (content/zstd-3 {:.3})",
        "total",
        t_lines,
        t_raw,
        t_z3,
        t_part,
        t_content,
        100.0 * t_bloom as f64 / t_content as f64,
        t_part as f64 / t_lines as f64,
        t_part as f64 / t_z3 as f64,
        t_content as f64 / t_z3 as f64
    );
    if std::env::var_os("CHUNK_SWEEP").is_some() {
        sweep(corpus, t_z3);
    }
}

/// Content bytes of all ten files (one part each) and timings for other settings, and the
/// needle false-positive rate: 6- to 12-byte words of other files that a block lacks.
fn sweep(corpus: &[Corpus], z3: usize) {
    println!("sweep: level block_KiB bits/gram ts -> content/zstd-3, bloom share, encode ms, fpr");
    let needles: Vec<&str> = corpus
        .iter()
        .flat_map(|c| c.lines.iter().step_by(50))
        .flat_map(|l| l.split(|ch: char| !ch.is_ascii_alphanumeric()))
        .filter(|w| (6..=12).contains(&w.len()))
        .collect();
    for (level, block_kib, bpg, coarse) in [
        (3, 1024, 3.25, false),
        (9, 1024, 3.25, false),
        (15, 1024, 3.25, false),
        (19, 1024, 3.25, false),
        (9, 256, 3.25, false),
        (9, 64, 3.25, false),
        (9, 1024, 0.0, false),
        (9, 1024, 2.5, false),
        (9, 1024, 5.0, false),
        (9, 1024, 3.25, true),
        (9, 64, 2.5, false),
        (9, 64, 5.0, false),
    ] {
        let opts = PartWriterOptions {
            zstd_level: level,
            block_bytes_target: block_kib << 10,
            bloom_bits_per_gram: bpg,
            ..Default::default()
        };
        let start = std::time::Instant::now();
        let parts: Vec<AlignedVec> = corpus.iter().map(|c| encode(&[c], &opts, coarse)).collect();
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let (mut content, mut blooms) = (0, 0);
        let (mut probes, mut passed) = (0u64, 0u64);
        for (c, part) in corpus.iter().zip(&parts) {
            let (n, b, _) = sizes(part);
            content += n;
            blooms += b;
            let reader = PartReader::open(part, Path::new("bench")).unwrap();
            let mut block = DecodedBlock::new();
            for i in 0..reader.blocks().len() {
                let Some(bloom) = reader.bloom(i) else {
                    continue;
                };
                reader.decode_block_into(i, &mut block).unwrap();
                for n in &needles {
                    if block.iter().any(|e| e.line.contains(n)) {
                        continue;
                    }
                    probes += 1;
                    passed += u64::from(NeedleProbe::new(n.as_bytes()).unwrap().may_occur(&bloom));
                }
            }
            let _ = c;
        }
        println!(
            "  {level:>2} {block_kib:>5} {bpg:>4} {} -> {:.3}, {:>5.1}%, {ms:>7.1} ms, fpr {:.4} of {probes}",
            if coarse { "coarse" } else { "ns    " },
            content as f64 / z3 as f64,
            100.0 * blooms as f64 / content as f64,
            passed as f64 / probes.max(1) as f64,
        );
    }
}

fn bench_part(c: &mut Criterion) {
    let corpus = corpus();
    print_figures(&corpus);
    let all: Vec<&Corpus> = corpus.iter().collect();
    let lines: u64 = corpus.iter().map(|c| c.lines.len() as u64).sum();
    let line_bytes: u64 = corpus
        .iter()
        .flat_map(|c| &c.lines)
        .map(|l| l.len() as u64)
        .sum();
    let opts = PartWriterOptions::default();
    let part = encode(&all, &opts, false);

    let mut g = c.benchmark_group("part");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(line_bytes));
    g.bench_function("encode_bytes", |b| {
        b.iter(|| black_box(encode(black_box(&all), &opts, false)))
    });
    let mut block = DecodedBlock::new();
    let decode = |block: &mut DecodedBlock| {
        let r = PartReader::open(black_box(&part), Path::new("bench")).unwrap();
        let mut n = 0;
        for i in 0..r.blocks().len() {
            r.decode_block_into(i, block).unwrap();
            n += block.len();
        }
        assert_eq!(n as u64, lines);
    };
    g.bench_function("open_decode_bytes", |b| b.iter(|| decode(&mut block)));
    g.throughput(Throughput::Elements(lines));
    g.bench_function("open_decode_lines", |b| b.iter(|| decode(&mut block)));
    g.finish();
    bench_printed_times(c, &corpus);

    let grams: u64 = corpus
        .iter()
        .flat_map(|c| &c.lines)
        .map(|l| l.len().saturating_sub(3) as u64)
        .sum();
    let mut g = c.benchmark_group("bloom");
    g.throughput(Throughput::Elements(grams));
    let mut builder = BloomBuilder::new();
    let mut out = Vec::new();
    g.bench_function("insert_grams", |b| {
        b.iter(|| {
            out.clear();
            for c in &corpus {
                for l in &c.lines {
                    builder.add_line(l.as_bytes());
                }
                builder.finish(3.25, 2, &mut out);
            }
            black_box(out.len())
        })
    });
    let reader = PartReader::open(&part, Path::new("bench")).unwrap();
    let blooms: Vec<_> = (0..reader.blocks().len())
        .filter_map(|i| reader.bloom(i))
        .collect();
    let probes: Vec<NeedleProbe> = ["Failed password", "exception", "blk_3886504906", "zzqqxx"]
        .iter()
        .map(|n| NeedleProbe::new(n.as_bytes()).unwrap())
        .collect();
    g.throughput(Throughput::Elements((blooms.len() * probes.len()) as u64));
    g.bench_function("probe_needles", |b| {
        b.iter(|| {
            let mut hits = 0;
            for bl in &blooms {
                for p in &probes {
                    hits += usize::from(p.may_occur(black_box(bl)));
                }
            }
            black_box(hits)
        })
    });
    g.finish();
}

/// Cold parts (templates, compaction's level) of lines that print their own time, decoded:
/// with each entry stamped with that time, the printed numbers come back from clock slots;
/// stamped a second and a millisecond later, they are delta slots. The two give the cost of
/// rebuilding numbers from timestamps against differences.
fn bench_printed_times(c: &mut Criterion, corpus: &[Corpus]) {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]"
    );
    let printed: Vec<Corpus> = corpus
        .iter()
        .map(|c| {
            let ts: Vec<i64> = c.ts.iter().map(|t| t / 1_000 * 1_000).collect();
            let lines = c
                .lines
                .iter()
                .zip(&ts)
                .map(|(l, &t)| {
                    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t))
                        .expect("a time")
                        .format(&fmt)
                        .expect("formats");
                    format!("{at} {l}")
                })
                .collect();
            Corpus {
                app: c.app.clone(),
                raw: Vec::new(),
                labels: c.labels.clone(),
                lines,
                ts,
            }
        })
        .collect();
    let later: Vec<Corpus> = printed
        .iter()
        .map(|c| Corpus {
            app: c.app.clone(),
            raw: Vec::new(),
            labels: c.labels.clone(),
            lines: c.lines.clone(),
            ts: c.ts.iter().map(|t| t + 1_001_000_000).collect(),
        })
        .collect();
    let opts = PartWriterOptions {
        zstd_level: 19,
        line_templates: shardlog::chunk::LineTemplates::Auto,
        ..Default::default()
    };
    let lines: u64 = corpus.iter().map(|c| c.lines.len() as u64).sum();
    let mut g = c.benchmark_group("printed_times");
    g.sample_size(10);
    g.throughput(Throughput::Elements(lines));
    for (name, files) in [("clock_slots", &printed), ("delta_slots", &later)] {
        let all: Vec<&Corpus> = files.iter().collect();
        let part = encode(&all, &opts, false);
        println!("printed_times/{name}: part of {} B", part.len());
        let mut block = DecodedBlock::new();
        g.bench_function(format!("{name}_decode_lines"), |b| {
            b.iter(|| {
                let r = PartReader::open(black_box(&part), Path::new("bench")).unwrap();
                let mut n = 0;
                for i in 0..r.blocks().len() {
                    r.decode_block_into(i, &mut block).unwrap();
                    n += block.len();
                }
                assert_eq!(n as u64, lines);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_part);
criterion_main!(benches);
