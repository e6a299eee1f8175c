//! `shardlog doctor` as an operator runs it: the real binary on a temporary data dir passes
//! and exits 0; every condition that makes `serve` refuse to start is a FAIL line with its
//! fix and a non-zero exit: a tmpfs data dir (a warning with --allow-volatile-data-dir), too
//! many cores, a bad config key, a taken port, a data dir held by a running server (naming
//! its PID) and a data dir this user cannot write.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::server::{Signal, free_ports, run_to_exit, send_signal, wait_timeout};
use common::tmpfs::Tmpfs;
use common::tools::missing;
use common::{Server, TestDir};

/// The checks take well under a second (16 fdatasyncs and an executor start); this allows
/// for a loaded machine.
const DOCTOR_EXIT_MS: u64 = 30_000;

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
        "data dir",
        "data dir lock",
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

#[test]
fn tmpfs_data_dir_fails_and_says_where_to_put_it() {
    let dir = TestDir::new("doctor-tmpfs");
    let Some(tmpfs) = Tmpfs::find(&dir) else {
        return;
    };
    let data = tmpfs.path_arg();
    let how = if tmpfs.mounted {
        "mounted for the test"
    } else {
        "/dev/shm"
    };
    eprintln!("tmpfs data dir {data} ({how})");
    let args = [
        "--data-dir",
        &data,
        "--cores",
        "1",
        "--http-addr",
        "127.0.0.1:0",
    ];
    let (code, out) = doctor(&args);
    assert_eq!(code, 1, "{out}");
    let l = line(&out, "filesystem");
    assert!(
        l.starts_with("FAIL") && l.contains("tmpfs") && l.contains(&data),
        "{out}"
    );
    assert!(out.contains("fix: put --data-dir on ext4 or xfs"), "{out}");
    assert!(out.contains("--allow-volatile-data-dir"), "{out}");
    assert!(out.contains("1 failure(s)"), "{out}");
    // With the flag, serve starts there: a warning, not a failure.
    let mut allowed = args.to_vec();
    allowed.push("--allow-volatile-data-dir");
    let (_, out) = doctor(&allowed);
    assert_eq!(status_of(&out, "filesystem"), "warn", "{out}");
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
fn a_taken_port_fails_naming_it() {
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
    assert_eq!(code, 1, "serve would refuse the port:\n{out}");
    let l = line(&out, "http addr");
    assert!(
        l.starts_with("FAIL") && l.contains(&addr) && l.contains("in use"),
        "{out}"
    );
    assert!(out.contains("choose another --http-addr"), "{out}");
    assert_eq!(
        line(&out, "syslog tcp addr").split_whitespace().last(),
        Some("off")
    );
    drop(held);
}

#[test]
fn a_data_dir_held_by_a_running_server_fails_with_its_pid() {
    let dir = TestDir::new("doctor-held");
    let server = Server::start(&dir);
    let data = path_arg(&dir.data_dir());
    let before: Vec<_> = std::fs::read_dir(dir.data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let (http_port, _) = free_ports(false);
    let (code, out) = doctor(&[
        "--data-dir",
        &data,
        "--cores",
        "1",
        "--http-addr",
        &format!("127.0.0.1:{http_port}"),
        "--syslog-tcp-addr",
        "",
        "--syslog-udp-addr",
        "",
    ]);
    assert_eq!(code, 1, "{out}");
    let l = line(&out, "data dir lock");
    assert!(
        l.starts_with("FAIL") && l.contains(&format!("process {}", server.pid())),
        "{out}"
    );
    assert!(
        out.contains(&format!("kill -TERM {}", server.pid())),
        "{out}"
    );
    // The write probe stays out of a live data dir.
    assert_eq!(status_of(&out, "O_DIRECT"), "skip", "{out}");
    let after: Vec<_> = std::fs::read_dir(dir.data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "doctor left a file in the live data dir");
    assert_eq!(
        server.get("/ready").status,
        200,
        "the server is undisturbed"
    );
}

/// The user `doctor` runs as when the test is root: nobody, which owns nothing.
const NOBODY: &str = "65534";

#[test]
fn a_data_dir_this_user_cannot_write_fails() {
    let dir = TestDir::new("doctor-ro");
    let data = dir.path().join("readonly");
    std::fs::create_dir_all(&data).unwrap();
    let root = running_as_root();
    let mut command = if root {
        // Root may write anywhere: run doctor as nobody, on a directory that root owns and
        // nobody can traverse to but not write.
        if !Path::new("/usr/bin/setpriv").exists() {
            missing("setpriv (util-linux) is needed to run doctor as another user");
            return;
        }
        chmod(dir.path(), 0o755);
        let mut c = Command::new("/usr/bin/setpriv");
        c.args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--",
        ])
        .arg(env!("CARGO_BIN_EXE_shardlog"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_shardlog"))
    };
    chmod(&data, 0o555);
    let mut child = command
        .args(["doctor", "--data-dir"])
        .arg(&data)
        .args(["--cores", "1", "--http-addr", "127.0.0.1:0"])
        .args(["--syslog-tcp-addr", "", "--syslog-udp-addr", ""])
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn doctor");
    let status = wait_timeout(&mut child, Duration::from_millis(DOCTOR_EXIT_MS));
    let Some(status) = status else {
        send_signal(child.id() as i32, Signal::SIGKILL);
        panic!("doctor did not exit within {DOCTOR_EXIT_MS} ms");
    };
    let output = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&output.stdout).to_string();
    chmod(&data, 0o755);
    assert_eq!(status.code(), Some(1), "{out}");
    let l = line(&out, "data dir");
    assert!(
        l.starts_with("FAIL") && l.contains("not writable"),
        "{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.contains("fix: chown -R"), "{out}");
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        .unwrap_or(false)
}
