//! The agent's TOML file: where to push, where to keep its state, and which files to ship with
//! which labels. This module owns parsing and checking it; every other module of the agent
//! takes the resolved [`AgentConfig`] and never sees TOML.
//!
//! Unknown keys are refused (with the key's name) rather than ignored, because a misspelt
//! `multiline` or `exclude` would otherwise ship the wrong records silently. Sizes and
//! durations take the server's forms (`1MiB`, `500ms`; see [`crate::config::units`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use crate::config::units::{parse_duration_ns, size_key};

/// Where the agent pushes unless told otherwise: a shardlog server on this host.
pub const URL_DEFAULT: &str = "http://127.0.0.1:3100/loki/api/v1/push";
/// Promtail's `batchsize`: big enough to amortise a request, small enough for any server's
/// request limit.
pub const BATCH_BYTES_DEFAULT: u64 = 1024 * 1024;
/// Promtail's `batchwait`: a line waits at most this long before it is sent.
pub const BATCH_WAIT_DEFAULT: Duration = Duration::from_secs(1);
/// How long one push may take, connect to answer, before it counts as failed and is retried.
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Attempts of one batch before it goes to the spool (Promtail's `max_retries` is 10, with the
/// same backoff; ours is lower because a spooled batch is not lost, only resent later).
pub const RETRIES_MAX_DEFAULT: u32 = 5;
/// First backoff after a failed push (Promtail's `min_period`).
pub const BACKOFF_MIN_DEFAULT: Duration = Duration::from_millis(500);
/// Longest backoff between two attempts. Promtail's `max_period` is 5 minutes; ours is
/// shorter because batches wait safely in the spool, and a restarted server should see the
/// backlog within half a minute.
pub const BACKOFF_MAX_DEFAULT: Duration = Duration::from_secs(30);
/// Spool size at which reading stops: enough for hours of a busy host's logs, small enough
/// that a dead server cannot fill the disk.
pub const BUFFER_BYTES_MAX_DEFAULT: u64 = 256 * 1024 * 1024;
/// Promtail's metrics port.
pub const METRICS_ADDR_DEFAULT: &str = "127.0.0.1:9080";
/// How long a multiline record may wait for its next line before it is sent as it is
/// (Promtail's `max_wait_time`).
pub const MULTILINE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(3);
/// Lines one multiline record may gather before it is cut (Promtail's `max_lines`).
pub const MULTILINE_LINES_MAX_DEFAULT: usize = 128;
/// A line longer than this is cut into pieces of this size: it bounds the agent's memory per
/// file, and it is the server's default `line_bytes_max`.
pub const LINE_BYTES_MAX_DEFAULT: u64 = 256 * 1024;
/// How often files are polled for new data and globs are expanded again.
pub const POLL_INTERVAL_DEFAULT: Duration = Duration::from_millis(250);

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub client: ClientConfig,
    pub positions_file: PathBuf,
    pub buffer_dir: PathBuf,
    pub buffer_bytes_max: u64,
    pub metrics_addr: Option<SocketAddr>,
    pub poll_interval: Duration,
    pub line_bytes_max: usize,
    pub files: Vec<FilesConfig>,
}

/// Where and how batches are pushed.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub url: PushUrl,
    pub tenant: Option<String>,
    pub batch_bytes: u64,
    pub batch_wait: Duration,
    pub timeout: Duration,
    pub retries_max: u32,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// The `Authorization` header value (`Basic ...` or `Bearer ...`), when one is set.
    pub authorization: Option<String>,
    /// The TLS settings of an `https://` URL: the server's certificate is checked against
    /// `client.ca_file`, or the system's CA store.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A push URL split into what a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushUrl {
    /// `https://`: the request goes inside TLS.
    pub https: bool,
    /// The host, as the server's certificate must name it.
    pub host: String,
    /// `host:port` as written (resolved at each connect, so a DNS change is followed).
    pub authority: String,
    /// The path and query, `/loki/api/v1/push` by default.
    pub path: String,
}

/// One `[[files]]` table: globs, the labels of their streams and how records are cut.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    pub paths: Vec<String>,
    pub exclude: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub multiline: Option<MultilineConfig>,
}

/// How lines are joined into records: a line matching `start` begins one.
#[derive(Debug, Clone)]
pub struct MultilineConfig {
    pub start: Regex,
    pub timeout: Duration,
    pub lines_max: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    client: RawClient,
    positions_file: Option<PathBuf>,
    buffer_dir: Option<PathBuf>,
    #[serde(default, deserialize_with = "size_key")]
    buffer_bytes_max: Option<u64>,
    metrics_addr: Option<String>,
    poll_interval: Option<String>,
    #[serde(default, deserialize_with = "size_key")]
    line_bytes_max: Option<u64>,
    #[serde(default)]
    files: Vec<RawFiles>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawClient {
    url: Option<String>,
    tenant: Option<String>,
    #[serde(default, deserialize_with = "size_key")]
    batch_bytes: Option<u64>,
    batch_wait: Option<String>,
    timeout: Option<String>,
    retries_max: Option<u32>,
    backoff_min: Option<String>,
    backoff_max: Option<String>,
    /// PEM CAs for an `https://` URL (default: the system's CA store).
    ca_file: Option<PathBuf>,
    /// `Authorization: Bearer <token>`, as Promtail's `bearer_token`.
    bearer_token: Option<String>,
    /// `Authorization: Basic ...`, as Promtail's `basic_auth` (Grafana Cloud's form).
    basic_auth: Option<RawBasicAuth>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasicAuth {
    username: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFiles {
    paths: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    multiline: Option<RawMultiline>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMultiline {
    start: String,
    timeout: Option<String>,
    lines_max: Option<usize>,
}

impl AgentConfig {
    /// Reads and checks the file at `path`; the error names the file and the key.
    pub fn load(path: &Path) -> Result<AgentConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        AgentConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks TOML text. Relative state paths stay relative to the working
    /// directory, as the server's `data_dir` does.
    pub fn parse(text: &str) -> Result<AgentConfig, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let c = raw.client;
        let url = PushUrl::parse(c.url.as_deref().unwrap_or(URL_DEFAULT))?;
        let tls = match (url.https, &c.ca_file) {
            (true, ca_file) => Some(tls_client_config(ca_file.as_deref())?),
            (false, Some(_)) => {
                return Err("client.ca_file is set but client.url is not https://".into());
            }
            (false, None) => None,
        };
        let client = ClientConfig {
            url,
            tenant: c.tenant.filter(|t| !t.is_empty()),
            batch_bytes: c.batch_bytes.unwrap_or(BATCH_BYTES_DEFAULT),
            batch_wait: duration("client.batch_wait", c.batch_wait, BATCH_WAIT_DEFAULT)?,
            timeout: duration("client.timeout", c.timeout, TIMEOUT_DEFAULT)?,
            retries_max: c.retries_max.unwrap_or(RETRIES_MAX_DEFAULT),
            backoff_min: duration("client.backoff_min", c.backoff_min, BACKOFF_MIN_DEFAULT)?,
            backoff_max: duration("client.backoff_max", c.backoff_max, BACKOFF_MAX_DEFAULT)?,
            authorization: authorization(c.bearer_token, c.basic_auth)?,
            tls,
        };
        if client.batch_bytes == 0 {
            return Err("client.batch_bytes must be above 0".into());
        }
        if client.timeout.is_zero() {
            return Err("client.timeout must be above 0".into());
        }
        if client.backoff_min.is_zero() || client.backoff_min > client.backoff_max {
            return Err(format!(
                "client.backoff_min ({:?}) must be above 0 and at most client.backoff_max ({:?})",
                client.backoff_min, client.backoff_max
            ));
        }
        let metrics_addr = match raw.metrics_addr.as_deref().unwrap_or(METRICS_ADDR_DEFAULT) {
            "" => None,
            text => Some(text.parse().map_err(|e| {
                format!("metrics_addr `{text}` is not an address like 127.0.0.1:9080 ({e}); empty turns the listener off")
            })?),
        };
        let poll_interval = duration("poll_interval", raw.poll_interval, POLL_INTERVAL_DEFAULT)?;
        if poll_interval.is_zero() {
            return Err("poll_interval must be above 0".into());
        }
        let line_bytes_max = raw.line_bytes_max.unwrap_or(LINE_BYTES_MAX_DEFAULT);
        if line_bytes_max == 0 {
            return Err("line_bytes_max must be above 0".into());
        }
        if raw.files.is_empty() {
            return Err("no [[files]] table: the agent has nothing to ship".into());
        }
        let mut files = Vec::with_capacity(raw.files.len());
        for (i, f) in raw.files.into_iter().enumerate() {
            files.push(FilesConfig::resolve(i, f)?);
        }
        Ok(AgentConfig {
            client,
            positions_file: raw
                .positions_file
                .unwrap_or_else(|| PathBuf::from("agent-positions")),
            buffer_dir: raw
                .buffer_dir
                .unwrap_or_else(|| PathBuf::from("agent-buffer")),
            buffer_bytes_max: raw.buffer_bytes_max.unwrap_or(BUFFER_BYTES_MAX_DEFAULT),
            metrics_addr,
            poll_interval,
            line_bytes_max: usize::try_from(line_bytes_max)
                .map_err(|_| "line_bytes_max is too large for this host".to_string())?,
            files,
        })
    }
}

impl FilesConfig {
    fn resolve(i: usize, raw: RawFiles) -> Result<FilesConfig, String> {
        let here = format!("files[{i}]");
        if raw.paths.is_empty() {
            return Err(format!("{here}.paths is empty"));
        }
        for pattern in raw.paths.iter().chain(&raw.exclude) {
            glob::Pattern::new(pattern)
                .map_err(|e| format!("{here}: `{pattern}` is not a glob: {e}"))?;
        }
        for name in raw.labels.keys() {
            let valid = name
                .chars()
                .enumerate()
                .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
            if name.is_empty() || !valid || name.starts_with("__") {
                return Err(format!("{here}.labels: `{name}` is not a label name"));
            }
            if name == "filename" {
                return Err(format!(
                    "{here}.labels: `filename` is set by the agent to each file's path"
                ));
            }
        }
        let multiline = match raw.multiline {
            None => None,
            Some(m) => {
                let start = Regex::new(&m.start).map_err(|e| {
                    format!("{here}.multiline.start `{}` is not a regex: {e}", m.start)
                })?;
                let lines_max = m.lines_max.unwrap_or(MULTILINE_LINES_MAX_DEFAULT);
                if lines_max == 0 {
                    return Err(format!("{here}.multiline.lines_max must be above 0"));
                }
                let timeout = duration(
                    &format!("{here}.multiline.timeout"),
                    m.timeout,
                    MULTILINE_TIMEOUT_DEFAULT,
                )?;
                Some(MultilineConfig {
                    start,
                    timeout,
                    lines_max,
                })
            }
        };
        Ok(FilesConfig {
            paths: raw.paths,
            exclude: raw.exclude,
            labels: raw.labels.into_iter().collect(),
            multiline,
        })
    }
}

/// The `Authorization` header of the client's credentials: a bearer token or a user and
/// password, not both.
fn authorization(
    bearer: Option<String>,
    basic: Option<RawBasicAuth>,
) -> Result<Option<String>, String> {
    use base64::Engine;
    match (bearer.filter(|t| !t.is_empty()), basic) {
        (Some(_), Some(_)) => {
            Err("client.bearer_token and client.basic_auth are both set: give one of them".into())
        }
        (Some(token), None) => Ok(Some(format!("Bearer {token}"))),
        (None, Some(b)) => {
            let pair = format!("{}:{}", b.username, b.password);
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            Ok(Some(format!("Basic {encoded}")))
        }
        (None, None) => Ok(None),
    }
}

/// The TLS settings of an `https://` push: the CAs of `ca_file`, or the system's store.
pub fn tls_client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("client.ca_file {}: {e}", path.display()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("client.ca_file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("client.ca_file {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system store holds some certificates webpki cannot use; skip those.
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err(match ca_file {
            Some(path) => format!("client.ca_file {} holds no CA certificate", path.display()),
            None => "https needs CA certificates: the system's store has none (install \
                     ca-certificates) and client.ca_file is not set"
                .into(),
        });
    }
    // ring, as the server's TLS listeners (see `crate::ingest::tls`).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl PushUrl {
    /// Accepts `http://host[:port][/path]` and `https://host[:port][/path]`.
    pub fn parse(url: &str) -> Result<PushUrl, String> {
        let (https, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => {
                return Err(format!(
                    "client.url `{url}` must start with http:// or https://"
                ));
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/loki/api/v1/push"),
        };
        if authority.is_empty() {
            return Err(format!("client.url `{url}` has no host"));
        }
        let (authority, host) = if authority.contains(':') && !authority.ends_with(']') {
            let host = authority[..authority.rfind(':').unwrap_or(0)].to_string();
            (authority.to_string(), host)
        } else {
            let port = if https { 443 } else { 80 };
            (format!("{authority}:{port}"), authority.to_string())
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(PushUrl {
            https,
            host,
            authority,
            path: path.to_string(),
        })
    }
}

fn duration(key: &str, text: Option<String>, default: Duration) -> Result<Duration, String> {
    match text {
        None => Ok(default),
        Some(t) => parse_duration_ns(&t)
            .map(Duration::from_nanos)
            .map_err(|e| format!("{key}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
        positions_file = "/var/lib/shardlog-agent/positions"
        buffer_dir = "/var/lib/shardlog-agent/buffer"
        buffer_bytes_max = "64MiB"
        metrics_addr = "127.0.0.1:9081"

        [client]
        url = "http://logs.example:3100/loki/api/v1/push"
        tenant = "team-a"
        batch_bytes = "512KiB"
        batch_wait = "200ms"
        timeout = "5s"
        retries_max = 3
        backoff_min = "100ms"
        backoff_max = "10s"

        [[files]]
        paths = ["/var/log/app/*.log"]
        exclude = ["/var/log/app/debug*.log"]
        labels = { job = "app", env = "prod" }
        [files.multiline]
        start = '^\d{4}-\d{2}-\d{2}'
        timeout = "2s"
        lines_max = 50
    "#;

    #[test]
    fn every_key_is_read() {
        let c = AgentConfig::parse(FULL).unwrap();
        assert_eq!(c.client.url.authority, "logs.example:3100");
        assert_eq!(c.client.url.path, "/loki/api/v1/push");
        assert_eq!(c.client.tenant.as_deref(), Some("team-a"));
        assert_eq!(c.client.batch_bytes, 512 * 1024);
        assert_eq!(c.client.batch_wait, Duration::from_millis(200));
        assert_eq!(c.client.retries_max, 3);
        assert_eq!(c.buffer_bytes_max, 64 << 20);
        assert_eq!(c.metrics_addr, Some("127.0.0.1:9081".parse().unwrap()));
        let f = &c.files[0];
        assert_eq!(
            f.labels,
            vec![("env".into(), "prod".into()), ("job".into(), "app".into())]
        );
        let m = f.multiline.as_ref().unwrap();
        assert!(m.start.is_match("2015-10-18 18:01:47,978 INFO"));
        assert_eq!((m.timeout, m.lines_max), (Duration::from_secs(2), 50));
    }

    #[test]
    fn https_urls_credentials_and_ca_files() {
        let u = PushUrl::parse("https://logs.example/loki/api/v1/push").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.authority.as_str()),
            (true, "logs.example", "logs.example:443")
        );
        let u = PushUrl::parse("http://[::1]:3100").unwrap();
        assert_eq!((u.https, u.host.as_str()), (false, "::1"));
        let files = "[[files]]\npaths = [\"/a\"]\n";
        let basic = format!(
            "[client]\nurl = \"http://x:1\"\n[client.basic_auth]\nusername = \"123\"\npassword = \"p:w\"\n{files}"
        );
        let c = AgentConfig::parse(&basic).unwrap();
        // base64("123:p:w")
        assert_eq!(
            c.client.authorization.as_deref(),
            Some("Basic MTIzOnA6dw==")
        );
        let bearer = format!("[client]\nbearer_token = \"t0k\"\n{files}");
        let c = AgentConfig::parse(&bearer).unwrap();
        assert_eq!(c.client.authorization.as_deref(), Some("Bearer t0k"));
        let both = format!(
            "[client]\nbearer_token = \"t\"\n[client.basic_auth]\nusername = \"u\"\npassword = \"p\"\n{files}"
        );
        assert!(
            AgentConfig::parse(&both)
                .unwrap_err()
                .contains("give one of them")
        );
        let ca_on_http = format!("[client]\nca_file = \"/x.pem\"\n{files}");
        assert!(
            AgentConfig::parse(&ca_on_http)
                .unwrap_err()
                .contains("not https")
        );
        let missing_ca =
            format!("[client]\nurl = \"https://x/\"\nca_file = \"/nonexistent/ca.pem\"\n{files}");
        assert!(
            AgentConfig::parse(&missing_ca)
                .unwrap_err()
                .contains("client.ca_file")
        );
    }

    #[test]
    fn defaults_are_promtails() {
        let c = AgentConfig::parse("[[files]]\npaths = [\"/tmp/*.log\"]\n").unwrap();
        assert_eq!(c.client.url, PushUrl::parse(URL_DEFAULT).unwrap());
        assert_eq!(c.client.url.authority, "127.0.0.1:3100");
        assert_eq!(c.metrics_addr, Some(METRICS_ADDR_DEFAULT.parse().unwrap()));
        assert_eq!(c.client.batch_bytes, BATCH_BYTES_DEFAULT);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let cases = [
            ("[[files]]\npaths = [\"/a\"]\nmultilne = 1\n", "multilne"),
            (
                "[client]\nurll = \"x\"\n[[files]]\npaths = [\"/a\"]\n",
                "urll",
            ),
            (
                "[client]\nurl = \"ftp://x/\"\n[[files]]\npaths = [\"/a\"]\n",
                "http:// or https://",
            ),
            (
                "[[files]]\npaths = [\"/a\"]\nlabels = { filename = \"x\" }\n",
                "filename",
            ),
            (
                "[[files]]\npaths = [\"/a\"]\n[files.multiline]\nstart = \"(\"\n",
                "regex",
            ),
            (
                "[client]\nbatch_wait = \"soon\"\n[[files]]\npaths = [\"/a\"]\n",
                "batch_wait",
            ),
            ("positions_file = \"p\"\n", "nothing to ship"),
            (
                "poll_interval = \"0\"\n[[files]]\npaths = [\"/a\"]\n",
                "poll_interval",
            ),
        ];
        for (text, word) in cases {
            let e = AgentConfig::parse(text).unwrap_err();
            assert!(e.contains(word), "{text:?}: {e}");
        }
    }
}
