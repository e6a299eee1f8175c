//! `--compare syslog-ng`: the baseline an operator would otherwise deploy, syslog-ng
//! relaying syslog TCP to a file, started by the harness with a configuration it writes into
//! the run directory, pinned like shardlog, and driven by the same senders.
//!
//! syslog-ng has no query API, so its throughput is the line count of its output file over
//! the time from the start of the load to the file's last growth. It holds a partial flush
//! batch in memory until more arrives, so the harness stops waiting once the file has not
//! grown for [`OUTPUT_SETTLE_MS`] and reports any shortfall.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::BenchError;
use super::options::{Framing, Plan, SyslogFormat};
use super::target::{POLL_INTERVAL_MS, READY_TIMEOUT_MS, ServerProcess, free_ports};

/// How long syslog-ng's output file may stay the same size before the run is taken to be
/// over: its flush batch (`flush-lines`) can sit in memory, and a second of silence after
/// the senders stopped is plenty for what has arrived to be written.
pub const OUTPUT_SETTLE_MS: u64 = 2_000;
/// The longest wait for syslog-ng's output after the senders stop.
pub const OUTPUT_WAIT_MS_MAX: u64 = 120_000;
/// Lines syslog-ng writes per flush: its usual high-throughput setting.
const FLUSH_LINES: usize = 1000;
/// Messages syslog-ng may hold in its destination queue: large enough that the relay, not
/// its queue, is what limits it.
const LOG_FIFO_SIZE: usize = 100_000;
/// Where syslog-ng is usually installed (it lives in sbin, which may not be on PATH).
const SEARCH_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"];

/// Finds the `syslog-ng` binary on PATH or in the usual sbin directories.
pub fn find_syslog_ng() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SEARCH_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join("syslog-ng"))
        .find(|p| p.is_file())
}

/// The configuration the comparison runs syslog-ng with.
pub fn config(
    port: u16,
    format: SyslogFormat,
    framing: Framing,
    connections: usize,
    out: &Path,
) -> String {
    // network() reads newline-framed TCP by default and octet counting only with the
    // `framed` transport (it does not detect it: octet-counted input would be read as a few
    // huge lines); RFC 5424 is its `syslog-protocol` flag, RFC 3164 its default.
    let transport = match framing {
        Framing::Octet => "framed",
        Framing::Newline => "tcp",
    };
    let flags = match format {
        SyslogFormat::Rfc5424 => " flags(syslog-protocol)",
        SyslogFormat::Rfc3164 => "",
    };
    format!(
        r#"@version: 3.38
# Written by `shardlog bench --compare syslog-ng`: relay syslog TCP to a file.
options {{ threaded(yes); flush-lines({FLUSH_LINES}); log-fifo-size({LOG_FIFO_SIZE}); stats_freq(0); }};
source s_net {{ network(ip(127.0.0.1) port({port}) transport("{transport}"){flags} max-connections({}) log-iw-size({})); }};
destination d_file {{ file("{}"); }};
log {{ source(s_net); destination(d_file); }};
"#,
        connections + 16,
        LOG_FIFO_SIZE,
        out.display()
    )
}

/// A running syslog-ng relaying to a file.
pub struct SyslogNg {
    pub process: ServerProcess,
    pub addr: SocketAddr,
    pub out_file: PathBuf,
}

impl SyslogNg {
    pub fn start(binary: &Path, plan: &Plan, dir: &Path) -> Result<SyslogNg, BenchError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| BenchError::new(format!("create {}: {e}", dir.display())))?;
        let (_, port) = free_ports()?;
        let out_file = dir.join("syslog-ng.out");
        let conf = dir.join("syslog-ng.conf");
        std::fs::write(
            &conf,
            config(
                port,
                plan.syslog_format,
                plan.framing,
                plan.connections,
                &out_file,
            ),
        )
        .map_err(|e| BenchError::new(format!("write {}: {e}", conf.display())))?;
        let mut cmd = Command::new(binary);
        cmd.arg("-F")
            .arg("-f")
            .arg(&conf)
            .arg("-R")
            .arg(dir.join("syslog-ng.persist"))
            .arg("-p")
            .arg(dir.join("syslog-ng.pid"))
            .arg("-c")
            .arg(dir.join("syslog-ng.ctl"));
        let mut process = ServerProcess::spawn(
            "syslog-ng",
            cmd,
            dir.join("syslog-ng.log"),
            plan.server_cpus.as_deref(),
        )?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
        loop {
            if let Some(status) = process.exited() {
                return Err(BenchError::new(format!(
                    "syslog-ng exited ({status}) before it listened; its log:\n{}",
                    process.log_tail()
                )));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(BenchError::new(format!(
                    "syslog-ng did not listen on {addr} within {READY_TIMEOUT_MS} ms; its log:\n{}",
                    process.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
        // Its worker threads may have started after the first pinning.
        if let Some(cpus) = &plan.server_cpus {
            process.pin(cpus)?;
        }
        Ok(SyslogNg {
            process,
            addr,
            out_file,
        })
    }

    /// Waits until the output file stops growing; returns its line count and the seconds
    /// from `load_start` to its last growth.
    pub fn wait_output(&self, load_start: Instant) -> Result<(u64, f64), BenchError> {
        let began = Instant::now();
        let mut size = 0;
        let mut last_growth = load_start;
        loop {
            let now_size = std::fs::metadata(&self.out_file)
                .map(|m| m.len())
                .unwrap_or(0);
            if now_size != size {
                size = now_size;
                last_growth = Instant::now();
            }
            if last_growth.elapsed() >= Duration::from_millis(OUTPUT_SETTLE_MS)
                || began.elapsed() >= Duration::from_millis(OUTPUT_WAIT_MS_MAX)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
        let lines = count_lines(&self.out_file)?;
        Ok((lines, last_growth.duration_since(load_start).as_secs_f64()))
    }
}

/// Counts newlines in a file, streaming (the output of a long run is gigabytes).
pub fn count_lines(path: &Path) -> Result<u64, BenchError> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(BenchError::new(format!("open {}: {e}", path.display()))),
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut lines = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| BenchError::new(format!("read {}: {e}", path.display())))?;
        if n == 0 {
            return Ok(lines);
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_matches_the_format() {
        let c = config(
            5514,
            SyslogFormat::Rfc5424,
            Framing::Octet,
            4,
            Path::new("/x/out"),
        );
        assert!(c.starts_with("@version: 3.38\n"));
        assert!(c.contains("port(5514)") && c.contains("flags(syslog-protocol)"));
        assert!(c.contains(r#"transport("framed")"#));
        assert!(c.contains(r#"file("/x/out")"#) && c.contains("stats_freq(0)"));
        assert!(c.contains("max-connections(20)"));
        let c = config(
            1,
            SyslogFormat::Rfc3164,
            Framing::Newline,
            4,
            Path::new("/x/out"),
        );
        assert!(!c.contains("syslog-protocol") && c.contains(r#"transport("tcp")"#));
    }

    #[test]
    fn counts_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, "a\nb\nc\n").unwrap();
        assert_eq!(count_lines(&p).unwrap(), 3);
        assert_eq!(count_lines(&d.path().join("missing")).unwrap(), 0);
    }
}
