//! Tenants: what each may do, and the state its limits keep.
//!
//! Which question it answers: "may this tenant do this now?" The limits carry Loki's names
//! (`ingestion_rate_mb`, `ingestion_burst_size_mb`) and refuse with Loki's texts, so an
//! operator's Loki knowledge and dashboards carry over. A tenant's ingestion rate is one
//! budget over all cores ([`rate::RateTable`]): SO_REUSEPORT hashes each connection to one
//! core, so a budget split per core (Loki's `local` strategy over N distributors) would hold a
//! client with one connection to a fraction of its rate.

pub mod admit;
pub mod federation;
pub mod limits;
pub mod rate;
pub mod stream_rate;
pub mod streams;

/// A tenant's ingestion rate limit (Loki's `ingestion_rate_mb` and `ingestion_burst_size_mb`,
/// where MB means MiB).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IngestionRate {
    /// Bytes a second; 0: no limit.
    pub bytes_per_second: f64,
    /// Bytes one moment may take at once (and the largest request ever accepted).
    pub burst_bytes: f64,
}

impl IngestionRate {
    pub const OFF: IngestionRate = IngestionRate {
        bytes_per_second: 0.0,
        burst_bytes: 0.0,
    };

    pub fn is_off(&self) -> bool {
        self.bytes_per_second <= 0.0
    }
}

/// Loki's refusal of a push over the tenant's rate (`validation.RateLimitedErrorMsg`).
pub fn rate_limited_message(tenant: &str, limit: &IngestionRate, lines: u64, bytes: u64) -> String {
    format!(
        "ingestion rate limit exceeded for user {tenant} (limit: {} bytes/sec) while attempting \
         to ingest '{lines}' lines totaling '{bytes}' bytes, reduce log volume or contact your \
         Loki administrator to see if the limit can be increased",
        limit.bytes_per_second as u64
    )
}
