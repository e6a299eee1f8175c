//! The durable list of delete requests: `<data>/delete_requests`, written by core 0 only.
//!
//! Layout: one header line, then the body.
//!
//! ```text
//! shardlog-delete-requests 1 <crc32c of body, 8 hex digits> <body bytes, decimal>\n
//! <body: a JSON array of requests (request_id, tenant, query, start_ms, end_ms,
//!        created_at_ms, status)>
//! ```
//!
//! The file is replaced whole, as the manifest is: the new list goes to
//! `delete_requests.tmp`, which is fsynced, renamed over the old one, and the data directory
//! is fsynced; only then is a change acknowledged. A crash leaves the old list or the new
//! one; a `.tmp` left behind is garbage. A file whose header or checksum is wrong is
//! [`FileError::Corruption`]: the server does not start rather than show deleted lines again.
//!
//! The list is small (requests are made by hand, a few a day) and written seldom, so it is
//! written with blocking calls on the core: a few hundred microseconds, less than one query.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::request::DeleteRequest;
use crate::store::paths::{DELETE_REQUESTS_FILE, DELETE_REQUESTS_TMP_FILE};

const MAGIC: &str = "shardlog-delete-requests";
const VERSION: u32 = 1;
/// Bytes the list may take: 64 MiB is hundreds of thousands of requests; a bigger file is
/// not one this server wrote, and not a reason to allocate that much.
const FILE_BYTES_MAX: u64 = 64 << 20;

#[derive(Debug)]
pub enum FileError {
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    Corruption {
        path: PathBuf,
        what: String,
    },
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileError::Io { path, op, source } => {
                write!(f, "{op} failed for {}: {source}", path.display())
            }
            FileError::Corruption { path, what } => {
                write!(f, "corrupt delete request list {}: {what}", path.display())
            }
        }
    }
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(DELETE_REQUESTS_FILE)
}

/// Encodes the list (see the module doc).
pub fn encode(requests: &[DeleteRequest]) -> Vec<u8> {
    let body = serde_json::to_vec(requests).expect("requests always serialize");
    let mut out = format!(
        "{MAGIC} {VERSION} {:08x} {}\n",
        crc32c::crc32c(&body),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Decodes a list written by [`encode`].
pub fn decode(bytes: &[u8], path: &Path) -> Result<Vec<DeleteRequest>, FileError> {
    let corrupt = |what: String| FileError::Corruption {
        path: path.to_path_buf(),
        what,
    };
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt("no header line".into()))?;
    let header =
        std::str::from_utf8(&bytes[..nl]).map_err(|_| corrupt("header not UTF-8".into()))?;
    let fields: Vec<&str> = header.split(' ').collect();
    let [magic, version, crc, len] = fields[..] else {
        return Err(corrupt(format!("header {header:?} is not four fields")));
    };
    if magic != MAGIC {
        return Err(corrupt(format!("magic {magic:?}, expected {MAGIC:?}")));
    }
    if version != VERSION.to_string() {
        return Err(corrupt(format!(
            "version {version}, this server reads {VERSION}"
        )));
    }
    let crc = u32::from_str_radix(crc, 16).map_err(|_| corrupt(format!("checksum {crc:?}")))?;
    let len: usize = len
        .parse()
        .map_err(|_| corrupt(format!("length {len:?}")))?;
    let body = &bytes[nl + 1..];
    if body.len() != len {
        return Err(corrupt(format!(
            "body of {} bytes, header says {len}",
            body.len()
        )));
    }
    if crc32c::crc32c(body) != crc {
        return Err(corrupt("body checksum mismatch".into()));
    }
    serde_json::from_slice(body).map_err(|e| corrupt(format!("body: {e}")))
}

/// Reads the list; a missing file is the empty list of a new data directory.
pub fn read(data_dir: &Path) -> Result<Vec<DeleteRequest>, FileError> {
    let path = path(data_dir);
    let io = |op| {
        let path = path.clone();
        move |source| FileError::Io { path, op, source }
    };
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("reading the delete request list")(e)),
        Ok(m) if m.len() > FILE_BYTES_MAX => {
            return Err(FileError::Corruption {
                path,
                what: format!(
                    "{} bytes, over the {FILE_BYTES_MAX} a list may hold",
                    m.len()
                ),
            });
        }
        Ok(_) => {}
    }
    let bytes = std::fs::read(&path).map_err(io("reading the delete request list"))?;
    decode(&bytes, &path)
}

/// Replaces the list durably (see the module doc).
pub fn write(data_dir: &Path, requests: &[DeleteRequest]) -> Result<(), FileError> {
    let tmp = data_dir.join(DELETE_REQUESTS_TMP_FILE);
    let path = path(data_dir);
    let io = |path: &Path, op| {
        let path = path.to_path_buf();
        move |source| FileError::Io { path, op, source }
    };
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp, "creating"))?;
    file.write_all(&encode(requests))
        .map_err(io(&tmp, "writing"))?;
    file.sync_all().map_err(io(&tmp, "syncing"))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(io(&tmp, "renaming into place"))?;
    std::fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(io(data_dir, "syncing the data directory"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deletion::request::Status;

    fn sample() -> Vec<DeleteRequest> {
        vec![DeleteRequest {
            request_id: "0a0b0c0d".into(),
            tenant: "t1".into(),
            query: r#"{app="a"} |= "x""#.into(),
            start_ms: 1,
            end_ms: 2,
            created_at_ms: 3,
            status: Status::Received,
        }]
    }

    #[test]
    fn a_list_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_empty(), "no file: no requests");
        write(dir.path(), &sample()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), sample());
        write(dir.path(), &[]).unwrap();
        assert!(read(dir.path()).unwrap().is_empty());
        assert!(!dir.path().join(DELETE_REQUESTS_TMP_FILE).exists());
    }

    #[test]
    fn every_damaged_byte_is_reported_not_trusted() {
        let good = encode(&sample());
        let p = Path::new("x");
        assert_eq!(decode(&good, p).unwrap(), sample());
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            match decode(&bad, p) {
                Err(FileError::Corruption { .. }) => {}
                other => panic!("byte {i} flipped: {other:?}"),
            }
        }
        assert!(decode(&good[..good.len() - 1], p).is_err(), "a torn body");
    }
}
