//! The owner shard's check of a batch against its tenant's stream limits, before the WAL
//! sees it: the active stream limit (`max_global_streams_per_user`, [`super::streams`]) and
//! each stream's rate (`per_stream_rate_limit`, [`super::stream_rate`]).
//!
//! Which question it answers: "which streams of this batch may be stored?" The batch is read
//! once, by stream id: the streams it writes, their entries and their bytes (line and
//! structured metadata, as Loki's `EntryTotalSize` counts them). Label text is built only
//! for a stream named in a refusal. As in Loki, a new stream over the stream limit is refused
//! whole, and so is a stream's part of the batch that does not fit its rate (Loki's
//! `rateLimitWholeStream`, on with its default stream sharding); the batch's other streams
//! are stored, and the answer is Loki's 429 naming the first refused stream.
//!
//! Other readers of every batch ride on this pass instead of making their own: a
//! [`BatchObserver`] (the `[[alert]]` counters) sees each stream and entry as the check reads
//! it, and learns from [`Checked::taken_out`] which streams were not stored.

use ahash::AHashSet;

use super::limits::TenantLimits;
use super::stream_rate::{StreamRates, stream_rate_limited_entry};
use super::streams::{ActiveStreams, local_limit, stream_limit_message};
use crate::model::{Batch, BatchItem, Labels, SkimmedItem, StreamId, TimestampNs};
use crate::shard::{AppendError, DiscardReason, Refusal};

/// Entries of a refused stream a refusal lists (Loki's ingester `max_returned_stream_errors`
/// default).
const RETURNED_ERRORS_MAX: usize = 10;

/// What one stream writes in a batch.
struct StreamUse {
    id: StreamId,
    entries: u64,
    bytes: u64,
    /// The first entries' timestamps and sizes, for a refusal's text.
    first: Vec<(TimestampNs, u64)>,
}

/// The batch left to store, the entries taken out by reason, and the refusal to answer.
pub struct Checked {
    pub batch: Batch,
    pub discarded: Vec<(DiscardReason, u64)>,
    pub refusal: Option<AppendError>,
    /// The streams whose entries were taken out of the batch (empty: the batch is whole).
    pub taken_out: AHashSet<StreamId>,
}

/// Another reader of every ingest batch, fed by the admission check's pass so that the batch
/// is read once. It sees every stream and entry in the batch's order, admitted or not:
/// admission is decided only once the whole batch has been read, and then
/// [`Checked::taken_out`] says which streams were not stored. If the batch turns out not to
/// read back, it has seen the items before the bad one, and the batch goes on whole (the
/// WAL refuses it with its own error).
pub trait BatchObserver {
    /// A stream item: entries name it by its index, in the order streams are seen.
    fn stream(&mut self, id: StreamId, labels: &[(&str, &str)]);
    /// An entry of the stream at `stream_index`.
    fn entry(&mut self, stream_index: u32, ts: TimestampNs, line: &str);
}

/// Checks `batch` of `tenant` on one of `cores` owner shards. `rate_applies`: whether the
/// per-stream rate holds for its protocol (not for syslog, which cannot be refused and is
/// held by the tenant's rate instead). `observer`, if any, is fed the batch as it is read.
pub fn check_batch(
    batch: Batch,
    limits: &TenantLimits,
    active: &ActiveStreams,
    rates: &StreamRates,
    cores: usize,
    rate_applies: bool,
    observer: Option<&mut dyn BatchObserver>,
) -> Checked {
    let unchanged = |batch| Checked {
        batch,
        discarded: Vec::new(),
        refusal: None,
        taken_out: AHashSet::new(),
    };
    let stream_limit = limits.max_global_streams_per_user;
    let rate = limits.per_stream_rate;
    // Read even without limits: the active streams are counted for the gauge.
    let (tenant, uses) = match stream_uses(&batch, observer) {
        Some(found) => found,
        // A batch that does not read back is the WAL's to refuse, with its own error.
        None => return unchanged(batch),
    };
    let over_limit = active.admit(
        &tenant,
        uses.iter().map(|u| u.id),
        local_limit(stream_limit, cores),
    );
    let mut over_rate: Vec<&StreamUse> = Vec::new();
    if rate_applies && !rate.is_off() {
        for u in uses.iter().filter(|u| !over_limit.contains(&u.id)) {
            if !rates.take(u.id, u.bytes, &rate) {
                over_rate.push(u);
            }
        }
    }
    if over_limit.is_empty() && over_rate.is_empty() {
        return unchanged(batch);
    }
    let mut dropped: AHashSet<StreamId> = over_limit.clone();
    dropped.extend(over_rate.iter().map(|u| u.id));
    let Ok((kept, _)) = batch.without_streams(&dropped) else {
        return unchanged(batch);
    };
    let count = |ids: &mut dyn Iterator<Item = StreamId>| -> u64 {
        let ids: AHashSet<StreamId> = ids.collect();
        uses.iter()
            .filter(|u| ids.contains(&u.id))
            .map(|u| u.entries)
            .sum()
    };
    let mut discarded = Vec::new();
    if !over_limit.is_empty() {
        let n = count(&mut over_limit.iter().copied());
        discarded.push((DiscardReason::StreamLimit, n));
    }
    if !over_rate.is_empty() {
        let n = count(&mut over_rate.iter().map(|u| u.id));
        discarded.push((DiscardReason::PerStreamRateLimit, n));
    }
    // The first refused stream in the batch's order is the one named, as Loki names the
    // stream whose push failed.
    let refusal = if let Some(first) = uses.iter().find(|u| over_limit.contains(&u.id)) {
        let mut message = stream_limit_message(&labels_text(&batch, first.id), &tenant);
        if over_limit.len() > 1 {
            message.push_str(&format!(" (and {} more new streams)", over_limit.len() - 1));
        }
        AppendError::new(Refusal::StreamLimit, message)
    } else {
        let first = over_rate[0];
        let labels = labels_text(&batch, first.id);
        let mut message = String::new();
        for &(ts, bytes) in &first.first {
            message.push_str(&format!(
                "entry with timestamp {} ignored, reason: '{}',\n",
                go_time_text(ts),
                stream_rate_limited_entry(&rate, &labels, bytes)
            ));
        }
        message.push_str(&format!(
            "user '{tenant}', total ignored: {} out of {} for stream: {labels}",
            first.entries, first.entries
        ));
        if over_rate.len() > 1 {
            message.push_str(&format!(
                " (and {} more streams over their rate)",
                over_rate.len() - 1
            ));
        }
        AppendError::new(Refusal::StreamRateLimit, message)
    };
    Checked {
        batch: kept,
        discarded,
        refusal: Some(refusal),
        taken_out: dropped,
    }
}

/// The batch's tenant and what each of its streams writes, in the batch's order; `observer`
/// sees each item as it is read. Without an observer the batch is only skimmed (sizes, no
/// text: [`BatchReader::skim`]).
fn stream_uses(
    batch: &Batch,
    observer: Option<&mut dyn BatchObserver>,
) -> Option<(String, Vec<StreamUse>)> {
    let mut reader = batch.reader().ok()?;
    let tenant = reader.tenant().to_string();
    let mut uses: Vec<StreamUse> = Vec::new();
    let stream = |uses: &mut Vec<StreamUse>, id| {
        uses.push(StreamUse {
            id,
            entries: 0,
            bytes: 0,
            first: Vec::new(),
        })
    };
    let entry = |uses: &mut Vec<StreamUse>, stream_index: u32, ts, bytes| {
        let u = uses.get_mut(stream_index as usize)?;
        u.entries += 1;
        u.bytes += bytes;
        if u.first.len() < RETURNED_ERRORS_MAX {
            u.first.push((ts, bytes));
        }
        Some(())
    };
    let Some(o) = observer else {
        while let Some(item) = reader.skim() {
            match item.ok()? {
                SkimmedItem::Stream { id } => stream(&mut uses, id),
                SkimmedItem::Entry {
                    stream_index,
                    ts,
                    bytes,
                } => entry(&mut uses, stream_index, ts, bytes)?,
            }
        }
        return Some((tenant, uses));
    };
    for item in reader {
        match item.ok()? {
            BatchItem::Stream { id, labels, .. } => {
                o.stream(id, &labels);
                stream(&mut uses, id);
            }
            BatchItem::Entry {
                stream_index,
                ts,
                line,
                metadata,
            } => {
                o.entry(stream_index, ts, line);
                let bytes = line.len()
                    + metadata
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>();
                entry(&mut uses, stream_index, ts, bytes as u64)?;
            }
        }
    }
    Some((tenant, uses))
}

/// The labels of stream `id` as Loki prints them.
fn labels_text(batch: &Batch, id: StreamId) -> String {
    let Ok(reader) = batch.reader() else {
        return String::new();
    };
    for item in reader.flatten() {
        if let BatchItem::Stream {
            id: found, labels, ..
        } = item
            && found == id
        {
            return Labels::from_pairs(labels).to_string();
        }
    }
    String::new()
}

/// A timestamp as Go's `time.Time.String` writes it in UTC (Loki's refusal texts):
/// `2026-12-06 01:02:03.5 +0000 UTC`, the fraction without trailing zeros.
pub fn go_time_text(ns: TimestampNs) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs) else {
        return ns.to_string();
    };
    let mut out = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BatchBuilder, stream_hash};
    use crate::tenants::IngestionRate;

    fn limits(streams: usize, rate: f64) -> TenantLimits {
        TenantLimits {
            ingestion_rate: IngestionRate::OFF,
            per_stream_rate: IngestionRate {
                bytes_per_second: rate,
                burst_bytes: rate,
            },
            creation_grace_period: std::time::Duration::from_secs(600),
            max_global_streams_per_user: streams,
            max_label_names_per_series: 15,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            reject_old_samples: false,
            reject_old_samples_max_age: std::time::Duration::from_secs(1),
            max_line_size: 1 << 20,
            max_line_size_truncate: false,
            discovery: crate::ingest::discovery::Discovery::off(),
        }
    }

    /// A batch of `t` writing `lines` lines of `bytes` bytes to each app.
    fn batch(apps: &[&str], lines: usize, bytes: usize) -> Batch {
        let mut b = BatchBuilder::new("t");
        for app in apps {
            let labels = Labels::from_pairs([("app", *app)]);
            let id = stream_hash("t", &labels);
            for i in 0..lines {
                b.push(
                    id,
                    &labels,
                    1_000_000_000 + i as i64,
                    &"x".repeat(bytes),
                    &[],
                );
            }
        }
        b.finish()
    }

    fn apps_of(batch: &Batch) -> Vec<String> {
        batch
            .streams()
            .unwrap()
            .into_iter()
            .map(|(_, l)| l)
            .collect()
    }

    #[test]
    fn a_stream_over_its_rate_is_refused_whole_and_the_others_stored() {
        let (active, rates) = (ActiveStreams::default(), StreamRates::default());
        let l = limits(0, 1000.0);
        // `a` takes 1000 bytes in two lines: fits; `b` takes 1200: refused whole.
        let mut b = BatchBuilder::new("t");
        for (app, n) in [("a", 2), ("b", 3)] {
            let labels = Labels::from_pairs([("app", app)]);
            let id = stream_hash("t", &labels);
            for i in 0..n {
                b.push(
                    id,
                    &labels,
                    1_500_000_000 + i,
                    &"x".repeat(400 + 100 * (app == "a") as usize),
                    &[],
                );
            }
        }
        let c = check_batch(b.finish(), &l, &active, &rates, 1, true, None);
        assert_eq!(apps_of(&c.batch), [r#"{app="a"}"#]);
        assert_eq!(c.discarded, [(DiscardReason::PerStreamRateLimit, 3)]);
        let e = c.refusal.unwrap();
        assert_eq!(e.refusal, Refusal::StreamRateLimit);
        assert!(
            e.reason.starts_with(
                "entry with timestamp 1970-01-01 00:00:01.5 +0000 UTC ignored, reason: 'Per \
                 stream rate limit exceeded (limit: 1000B/sec) while attempting to ingest for \
                 stream '{app=\"b\"}' totaling 400B,"
            ),
            "{}",
            e.reason
        );
        assert!(
            e.reason
                .ends_with("user 't', total ignored: 3 out of 3 for stream: {app=\"b\"}"),
            "{}",
            e.reason
        );
        // Not for syslog: its streams are held by the tenant's rate.
        let c = check_batch(batch(&["b"], 10, 400), &l, &active, &rates, 1, false, None);
        assert!(c.refusal.is_none() && c.discarded.is_empty());
    }

    #[test]
    fn new_streams_over_the_limit_go_first_and_are_not_charged() {
        let (active, rates) = (ActiveStreams::default(), StreamRates::default());
        let l = limits(1, 1000.0);
        let c = check_batch(
            batch(&["a", "b"], 1, 10),
            &l,
            &active,
            &rates,
            1,
            true,
            None,
        );
        assert_eq!(apps_of(&c.batch), [r#"{app="a"}"#]);
        assert_eq!(c.discarded, [(DiscardReason::StreamLimit, 1)]);
        assert_eq!(c.refusal.unwrap().refusal, Refusal::StreamLimit);
        // Nothing over either limit: the batch is unchanged.
        let c = check_batch(batch(&["a"], 1, 10), &l, &active, &rates, 1, true, None);
        assert!(c.refusal.is_none());
        assert_eq!(apps_of(&c.batch), [r#"{app="a"}"#]);
    }

    #[test]
    fn go_time_text_trims_the_fraction() {
        assert_eq!(go_time_text(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            go_time_text(1_733_446_923_120_000_000),
            "2024-12-06 01:02:03.12 +0000 UTC"
        );
    }
}
