//! A full disk, against the real binary on a small file system of its own: an ext4 image on
//! a loop device, made by the test (it needs root; elsewhere it is a loud skip).
//!
//! What the reported behaviour lacked, checked here: a full disk shows up as a state, not a
//! death. Pushes get 507 with the reason, `/ready` answers 503 with it and `/metrics` names
//! it, syslog TCP is paused (not read, not dropped), nothing acknowledged is lost, and
//! ingest resumes by itself once space is freed, without a restart. A server started on a
//! disk without room for a WAL segment serves queries read-only and says so, and takes
//! writes again once space is freed. No `.tmp` file is left behind.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::loki::{metric_sum, parse_metrics};
use common::{Server, ServerOptions, TestDir, now_ns};
use serde_json::json;

/// The file system's size: room for the WAL segments of two shards, their preallocated
/// successors and some parts, small enough to fill in a moment.
const IMAGE_BYTES: u64 = 96 << 20;

/// The WAL segment size of the server under test (the default, 64 MiB, is most of the disk).
const SEGMENT: &str = "4MiB";

/// Lines per push, and pushes at most while filling the WAL (well beyond what fits).
const LINES_PER_PUSH: usize = 200;
const PUSHES_MAX: usize = 1_000;

/// How long a state change may take to show (the WAL's space preparer retries at most every
/// few seconds): a bound against a hang, not a speed figure.
const SETTLE: Duration = Duration::from_secs(30);

/// An ext4 file system in an image file, on a loop device, mounted at a directory; unmounted
/// and detached on drop.
struct LoopMount {
    device: String,
    mount_point: PathBuf,
}

impl LoopMount {
    /// Makes and mounts the file system at `mount_point`, or `None` after a skip when this
    /// process cannot (not root, or no loop devices).
    fn new(image: &Path, mount_point: &Path) -> Option<LoopMount> {
        if !nix::unistd::geteuid().is_root() {
            common::tools::skip("a full disk is made on a loop device, which needs root");
            return None;
        }
        if !Path::new("/dev/loop-control").exists() {
            common::tools::skip("no loop devices on this machine (/dev/loop-control)");
            return None;
        }
        for (program, package) in [
            ("losetup", "util-linux"),
            ("mount", "mount"),
            ("umount", "mount"),
            ("mkfs.ext4", "e2fsprogs"),
        ] {
            if !common::tools::require_program(program, &format!("Debian package {package}")) {
                return None;
            }
        }
        std::fs::File::create(image)
            .and_then(|f| f.set_len(IMAGE_BYTES))
            .expect("create the image file");
        // No blocks reserved for root (the server runs as root here): full means full.
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(image));
        let device = String::from_utf8(
            run(Command::new("losetup")
                .args(["--find", "--show"])
                .arg(image))
            .stdout,
        )
        .expect("device name")
        .trim()
        .to_string();
        std::fs::create_dir_all(mount_point).expect("create the mount point");
        let mounted = LoopMount {
            device,
            mount_point: mount_point.to_path_buf(),
        };
        run(Command::new("mount").arg(&mounted.device).arg(mount_point));
        // mkfs's lost+found is no file of the server's.
        std::fs::remove_dir(mount_point.join("lost+found")).expect("remove lost+found");
        Some(mounted)
    }

    /// Takes every free block of the file system into `filler`.
    fn fill(&self) -> PathBuf {
        let filler = self.mount_point.join("filler");
        let mut file = std::fs::File::create(&filler).expect("create the filler");
        let block = vec![0xa5u8; 1 << 20];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        // Small writes take the last partial blocks.
        while let Ok(n) = file.write(&block[..4096]) {
            if n == 0 {
                break;
            }
        }
        let _ = file.sync_all();
        filler
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("--lazy")
            .arg(&self.mount_point)
            .status();
        let _ = Command::new("losetup")
            .args(["--detach", &self.device])
            .status();
    }
}

fn run(command: &mut Command) -> std::process::Output {
    common::tools::run_checked(command)
}

/// What became of one push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Stored,
    Refused,
}

/// One push of [`LINES_PER_PUSH`] loghub lines to its own stream (`push="N"`), so that what
/// is stored of it can be counted.
fn push(server: &Server, n: usize, corpus: &[String]) -> Fate {
    let ts = now_ns();
    let values: Vec<_> = (0..LINES_PER_PUSH)
        .map(|i| {
            let line = &corpus[(n * LINES_PER_PUSH + i) % corpus.len()];
            json!([(ts + i as i64).to_string(), format!("{n}.{i} {line}")])
        })
        .collect();
    let body = json!({"streams": [{"stream": {"test": "full", "push": n.to_string()},
        "values": values}]});
    let r = server.push_json(&body);
    match r.status {
        204 => Fate::Stored,
        507 => {
            let text = r.text();
            assert!(
                text.contains("disk full") || text.contains("read-only"),
                "a 507 says why: {text}"
            );
            Fate::Refused
        }
        other => panic!("push {n}: {other} {}", r.text()),
    }
}

/// Pushes until one is refused with 507, or panics after [`PUSHES_MAX`]; returns the fates.
fn push_until_refused(server: &Server, first: usize, corpus: &[String]) -> Vec<(usize, Fate)> {
    let mut fates = Vec::new();
    for n in first..first + PUSHES_MAX {
        let fate = push(server, n, corpus);
        fates.push((n, fate));
        if fate == Fate::Refused {
            return fates;
        }
    }
    panic!(
        "{PUSHES_MAX} pushes stored on a full disk; output:\n{}",
        server.output()
    );
}

/// Waits until `/ready` answers `status` with a body that says `says`; panics after
/// [`SETTLE`].
fn wait_ready_status(server: &Server, status: u16, says: &str) -> String {
    let deadline = Instant::now() + SETTLE;
    loop {
        // A server just started may not listen yet. One shard may say `says` while another
        // still replays its WAL, when queries are still refused: wait for every shard.
        let answer = common::http::request(server.http, "GET", "/ready", &[], &[])
            .map(|r| (r.status, r.text()));
        if let Ok((got, text)) = &answer
            && *got == status
            && text.contains(says)
            && !text.contains("replaying the write-ahead log")
        {
            return text.clone();
        }
        assert!(
            Instant::now() < deadline,
            "/ready still {answer:?} after {SETTLE:?}; output:\n{}",
            server.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Checks that every stored push is there whole and no refused one is there at all.
fn check_fates(server: &Server, fates: &[(usize, Fate)]) {
    for (n, fate) in fates {
        let stats = server.index_stats(&format!("{{test=\"full\",push=\"{n}\"}}"));
        let expected = match fate {
            Fate::Stored => LINES_PER_PUSH as u64,
            Fate::Refused => 0,
        };
        assert_eq!(stats.entries, expected, "push {n} was {fate:?}");
    }
}

/// Every file under `dir` whose name ends in `.tmp`.
fn tmp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).expect("read a data dir folder") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.to_string_lossy().ends_with(".tmp") {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn a_full_disk_refuses_writes_until_space_is_freed_and_loses_nothing() {
    let Some(corpus) = common::tools::corpus_lines("Hadoop_2k.log") else {
        return;
    };
    let dir = TestDir::new("full-disk");
    let Some(disk) = LoopMount::new(&dir.path().join("disk.img"), &dir.data_dir()) else {
        return;
    };
    let options = ServerOptions {
        extra_args: vec![
            "--wal-segment-bytes-max".into(),
            SEGMENT.into(),
            "--seal-age".into(),
            "2s".into(),
        ],
        ..ServerOptions::default()
    };
    let mut server = Server::start_with(&dir, &options);
    let mut fates = vec![(0, push(&server, 0, &corpus))];

    // The disk fills: writes are refused with 507 once the WAL cannot prepare its next
    // segment, and the server says so.
    let filler = disk.fill();
    fates.extend(push_until_refused(&server, 1, &corpus));
    wait_ready_status(&server, 503, "disk full");
    let metrics = parse_metrics(&server.metrics());
    assert!(
        metric_sum(
            &metrics,
            "shardlog_shard_not_ready",
            &[("reason", "disk_full")]
        ) >= 1.0,
        "/metrics names the shard and the reason"
    );
    // Queries still answer.
    check_fates(&server, &fates);

    // Syslog TCP is paused, not dropped: what is sent now is stored once space is back.
    let syslog = SocketAddr::from(([127, 0, 0, 1], server.syslog_port));
    let mut sender = TcpStream::connect(syslog).expect("connect to syslog");
    for i in 0..50 {
        sender
            .write_all(format!("<13>1 - diskhost fullapp - - - while full {i}\n").as_bytes())
            .expect("send syslog");
    }

    // Space is freed: ingest resumes by itself.
    std::fs::remove_file(&filler).expect("free the space");
    wait_ready_status(&server, 200, "ready");
    let n = fates.len();
    fates.push((n, push(&server, n, &corpus)));
    assert_eq!(fates[n].1, Fate::Stored, "a push after space came back");
    assert_eq!(server.wait_for_count("{app=\"fullapp\"}", 50, 30_000), 50);
    drop(sender);
    check_fates(&server, &fates);

    // A start on a full disk: queries answered read-only, writes refused, until space is
    // freed, without a restart.
    server.terminate_ok();
    assert_eq!(tmp_files(&dir.data_dir()), Vec::<PathBuf>::new());
    let filler = disk.fill();
    let mut server = Server::start_unready(&dir, &options);
    wait_ready_status(&server, 503, "read-only");
    assert!(
        server.output().contains("read-only"),
        "the start-up log says so: {}",
        server.output()
    );
    check_fates(&server, &fates);
    let n = fates.len();
    fates.push((n, push(&server, n, &corpus)));
    assert_eq!(fates[n].1, Fate::Refused, "a write to a read-only server");
    std::fs::remove_file(&filler).expect("free the space");
    wait_ready_status(&server, 200, "ready");
    let n = fates.len();
    fates.push((n, push(&server, n, &corpus)));
    assert_eq!(fates[n].1, Fate::Stored, "a push after space came back");
    check_fates(&server, &fates);

    // No temporary file outlives the failures, and a restart has it all.
    server.terminate_ok();
    assert_eq!(tmp_files(&dir.data_dir()), Vec::<PathBuf>::new());
    let server = Server::start_with(&dir, &options);
    check_fates(&server, &fates);
    drop(server);
    drop(disk);
}
