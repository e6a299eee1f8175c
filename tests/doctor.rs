//! `shardlog doctor` as an operator runs it: the real binary on a temporary data dir passes
//! and exits 0; a tmpfs data dir, too many cores, a bad config key and a taken port each
//! produce their line with the fix, and failures exit non-zero.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::TestDir;
use common::server::run_to_exit;

/// The checks take well under a second (16 fdatasyncs and an executor start); this allows
/// for a loaded machine.
const DOCTOR_EXIT_MS: u64 = 30_000;

/// `statfs` magic of tmpfs (linux/magic.h).
const TMPFS_MAGIC: u64 = 0x0102_1994;

fn doctor(args: &[&str]) -> (i32, String) {
    let mut full = vec!["doctor"];
    full.extend_from_slice(args);
    let (status, output) = run_to_exit(&full, DOCTOR_EXIT_MS);
    (status.code().unwrap_or(-1), output)
}

/// The line of one check, e.g. `line(out, "io_uring")` -> `ok    io_uring  ...`.
fn line<'a>(output: &'a str, check: &str) -> &'a str {
    output
        .lines()
        .find(|l| {
            l.get(6..)
                .is_some_and(|rest| rest.starts_with(&format!("{check} ")))
        })
        .unwrap_or_else(|| panic!("no `{check}` line in:\n{output}"))
}

fn status_of<'a>(output: &'a str, check: &str) -> &'a str {
    line(output, check).split_whitespace().next().unwrap()
}

fn path_arg(p: &Path) -> String {
    p.to_str().expect("UTF-8 test path").to_string()
}

#[test]
fn passes_on_a_real_data_dir_with_aligned_columns() {
    let dir = TestDir::new("doctor");
    let data = path_arg(&dir.data_dir());
    let (code, out) = doctor(&[
        "--data-dir",
        &data,
        "--cores",
        "1",
        "--http-addr",
        "127.0.0.1:0",
        "--syslog-tcp-addr",
        "127.0.0.1:0",
        "--syslog-udp-addr",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 0, "doctor should pass here:\n{out}");
    for check in [
        "config",
        "io_uring",
        "executor",
        "filesystem",
        "O_DIRECT",
        "http addr",
    ] {
        assert_eq!(status_of(&out, check), "ok", "{check}:\n{out}");
    }
    for check in [
        "kernel",
        "memlock",
        "open files",
        "cores",
        "disk space",
        "udp buffer",
    ] {
        assert_ne!(status_of(&out, check), "FAIL", "{check}:\n{out}");
    }
    assert!(
        dir.data_dir().is_dir(),
        "doctor creates the data dir as serve would"
    );
    let left: Vec<_> = std::fs::read_dir(dir.data_dir()).unwrap().collect();
    assert!(left.is_empty(), "the probe file is removed: {left:?}");
    // Every check line has its detail in the same column.
    let check_lines: Vec<&str> = out
        .lines()
        .filter(|l| {
            ["ok ", "skip ", "warn ", "FAIL "]
                .iter()
                .any(|s| l.starts_with(s))
        })
        .collect();
    let detail_col = |l: &str| {
        let after_status = l.find(' ').unwrap();
        let name_start = after_status + l[after_status..].find(|c| c != ' ').unwrap();
        let name_end = name_start + l[name_start..].find("  ").unwrap();
        name_end + l[name_end..].find(|c| c != ' ').unwrap()
    };
    let cols: Vec<usize> = check_lines.iter().map(|l| detail_col(l)).collect();
    assert!(cols.len() >= 15, "{out}");
    assert!(
        cols.windows(2).all(|w| w[0] == w[1]),
        "columns differ {cols:?}:\n{out}"
    );
    assert!(
        out.trim_end()
            .lines()
            .last()
            .unwrap()
            .contains("checks passed")
            || out.contains("warning(s): `shardlog serve` will run"),
        "{out}"
    );
}

#[test]
fn too_many_cores_fail_with_the_count_to_use() {
    let dir = TestDir::new("doctor-cores");
    let data = path_arg(&dir.data_dir());
    let (code, out) = doctor(&[
        "--data-dir",
        &data,
        "--cores",
        "999",
        "--http-addr",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 1, "{out}");
    let l = line(&out, "cores");
    assert!(
        l.starts_with("FAIL") && l.contains("--cores 999") && l.contains("only"),
        "{out}"
    );
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert!(out.contains(&format!("fix: --cores {cpus}")), "{out}");
}

/// A tmpfs mounted for the test (root), else /dev/shm if it is tmpfs; `None` when neither.
struct Tmpfs {
    path: PathBuf,
    mounted: bool,
}

impl Tmpfs {
    fn find(dir: &TestDir) -> Option<Tmpfs> {
        let mountpoint = dir.path().join("tmpfs");
        std::fs::create_dir_all(&mountpoint).ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "shardlog-doctor-test"])
            .arg(&mountpoint)
            .output()
            .is_ok_and(|o| o.status.success());
        if mounted {
            return Some(Tmpfs {
                path: mountpoint.join("data"),
                mounted: true,
            });
        }
        let shm = Path::new("/dev/shm");
        let is_tmpfs = shardlog::doctor::disk::statfs(shm).is_ok_and(|(m, _)| m == TMPFS_MAGIC);
        is_tmpfs.then(|| Tmpfs {
            path: shm.join(format!("shardlog-doctor-test-{}", std::process::id())),
            mounted: false,
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount")
                .arg(self.path.parent().unwrap())
                .status();
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[test]
fn tmpfs_data_dir_fails_and_says_where_to_put_it() {
    let dir = TestDir::new("doctor-tmpfs");
    let Some(tmpfs) = Tmpfs::find(&dir) else {
        common::tools::missing("a tmpfs: cannot mount one and /dev/shm is not tmpfs");
        return;
    };
    let data = path_arg(&tmpfs.path);
    let how = if tmpfs.mounted {
        "mounted for the test"
    } else {
        "/dev/shm"
    };
    eprintln!("tmpfs data dir {data} ({how})");
    let (code, out) = doctor(&[
        "--data-dir",
        &data,
        "--cores",
        "1",
        "--http-addr",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 1, "{out}");
    let l = line(&out, "filesystem");
    assert!(
        l.starts_with("FAIL") && l.contains("tmpfs") && l.contains(&data),
        "{out}"
    );
    assert!(out.contains("fix: put --data-dir on ext4 or xfs"), "{out}");
    assert!(out.contains("1 failure(s)"), "{out}");
}

#[test]
fn config_file_is_the_one_serve_reads() {
    let dir = TestDir::new("doctor-config");
    let data = path_arg(&dir.data_dir());
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/tuning/shardlog.toml");
    // The example, with flags laid over it as serve would.
    let (code, out) = doctor(&[
        "--config",
        example,
        "--data-dir",
        &data,
        "--cores",
        "1",
        "--http-addr",
        "127.0.0.1:0",
        "--syslog-tcp-addr",
        "",
        "--syslog-udp-addr",
        "",
    ]);
    assert_eq!(code, 0, "{out}");
    let l = line(&out, "config");
    assert!(
        l.contains("tuning/shardlog.toml") && l.contains(&data),
        "{out}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "wal_segment_bytes_max = 1000\n").unwrap();
    let (code, out) = doctor(&["--config", &path_arg(&bad), "--http-addr", "127.0.0.1:0"]);
    assert_eq!(code, 1, "{out}");
    let l = line(&out, "config");
    assert!(
        l.starts_with("FAIL") && l.contains("wal_segment_bytes_max"),
        "{out}"
    );
    // The host checks still run and say what they found.
    assert_eq!(status_of(&out, "io_uring"), "ok", "{out}");
    assert_eq!(status_of(&out, "data dir"), "skip", "{out}");
}

#[test]
fn a_taken_port_is_a_warning_naming_it() {
    let dir = TestDir::new("doctor-port");
    let data = path_arg(&dir.data_dir());
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let (code, out) = doctor(&[
        "--data-dir",
        &data,
        "--cores",
        "1",
        "--http-addr",
        &addr,
        "--syslog-tcp-addr",
        "",
        "--syslog-udp-addr",
        "",
    ]);
    assert_eq!(code, 0, "a taken port does not fail the run:\n{out}");
    let l = line(&out, "http addr");
    assert!(
        l.starts_with("warn") && l.contains(&addr) && l.contains("in use"),
        "{out}"
    );
    assert_eq!(
        line(&out, "syslog tcp addr").split_whitespace().last(),
        Some("off")
    );
    drop(held);
}
