//! One server per data dir and per address, against the real binary: a second `serve` on a
//! data dir, an HTTP port or a syslog UDP port that a running server holds exits non-zero
//! with a message naming the dir and the holder's PID, or the address and its flag, while
//! the first keeps serving; a port held by any other program is refused the same way; a
//! lock file left by a killed server does not block; a tmpfs data dir is refused unless
//! `--allow-volatile-data-dir` is given.

mod common;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use common::loki::INGEST_WAIT_MS;
use common::server::{free_ports, run_to_exit};
use common::tmpfs::Tmpfs;
use common::{Server, TestDir, now_ns};
use serde_json::json;

/// A refused start happens before any executor exists: a second is plenty, ten allow for a
/// loaded machine.
const REFUSAL_EXIT_MS: u64 = 10_000;

/// The lock file's name (`store::paths::LOCK_FILE`).
const LOCK_FILE: &str = "shardlog.lock";

/// Runs `shardlog serve` with `args`, expects a quick non-zero exit, returns its output.
fn refused(args: &[String]) -> String {
    let mut full = vec!["serve"];
    full.extend(args.iter().map(String::as_str));
    let (status, output) = run_to_exit(&full, REFUSAL_EXIT_MS);
    assert!(
        !status.success(),
        "`shardlog {}` should have been refused, exited {status}; output:\n{output}",
        full.join(" ")
    );
    assert_eq!(status.code(), Some(2), "refusals exit 2; output:\n{output}");
    output
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn path_arg(p: &Path) -> String {
    p.to_str().expect("UTF-8 test path").to_string()
}

/// Every path under `dir`, relative to it.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            out.insert(path.strip_prefix(dir).unwrap().to_path_buf());
            if entry.file_type().unwrap().is_dir() {
                todo.push(path);
            }
        }
    }
    out
}

/// Pushes one line with a unique app label and reads it back: the server still serves.
fn still_serves(server: &Server, app: &str) {
    let ts = now_ns().to_string();
    server.push_json_ok(&json!({
        "streams": [{"stream": {"app": app}, "values": [[ts, "still here"]]}]
    }));
    let query = format!("{{app=\"{app}\"}}");
    assert_eq!(server.wait_for_count(&query, 1, INGEST_WAIT_MS), 1);
    assert_eq!(server.get("/ready").status, 200);
}

#[test]
fn a_second_server_on_one_data_dir_is_refused_with_the_holders_pid() {
    let dir = TestDir::new("own-dir");
    let first = Server::start(&dir);
    let data = std::fs::canonicalize(dir.data_dir()).unwrap();
    let lock = std::fs::read_to_string(data.join(LOCK_FILE)).unwrap();
    assert_eq!(lock.trim(), first.pid().to_string(), "the holder's PID");
    let before = tree(&data);

    let (http_port, _) = free_ports(false);
    let out = refused(&strings(&[
        "--data-dir",
        &path_arg(&data),
        "--http-addr",
        &format!("127.0.0.1:{http_port}"),
        "--syslog-tcp-addr",
        "",
        "--syslog-udp-addr",
        "",
        "--cores",
        "1",
    ]));
    assert!(out.contains(&path_arg(&data)), "names the dir:\n{out}");
    assert!(
        out.contains(&format!("process {}", first.pid())),
        "names the holder's PID:\n{out}"
    );
    assert_eq!(
        tree(&data),
        before,
        "the second server touched the data dir"
    );
    still_serves(&first, "own-dir");
}

#[test]
fn a_lock_file_left_by_a_killed_server_does_not_block() {
    let dir = TestDir::new("own-stale");
    let mut first = Server::start(&dir);
    let killed = first.pid();
    first.kill9();
    let lock_path = dir.data_dir().join(LOCK_FILE);
    assert_eq!(
        std::fs::read_to_string(&lock_path).unwrap().trim(),
        killed.to_string(),
        "the killed server's PID stays in the file"
    );
    let second = Server::start(&dir);
    assert_eq!(
        std::fs::read_to_string(&lock_path).unwrap().trim(),
        second.pid().to_string()
    );
    still_serves(&second, "own-stale");
}

/// The arguments of a server on its own data dir in `dir`, with the given addresses.
fn args_with(dir: &TestDir, http: &str, syslog_tcp: &str, syslog_udp: &str) -> Vec<String> {
    strings(&[
        "--data-dir",
        &path_arg(&dir.data_dir()),
        "--http-addr",
        http,
        "--syslog-tcp-addr",
        syslog_tcp,
        "--syslog-udp-addr",
        syslog_udp,
        "--cores",
        "1",
    ])
}

fn assert_names_address(out: &str, addr: &str, flag: &str) {
    assert!(
        out.contains(addr) && out.contains(flag) && out.contains("in use"),
        "the message should name {addr} and {flag}:\n{out}"
    );
}

#[test]
fn a_second_server_on_the_same_http_port_is_refused() {
    let first_dir = TestDir::new("own-http-1");
    let first = Server::start(&first_dir);
    let second_dir = TestDir::new("own-http-2");
    let addr = first.http.to_string();
    let out = refused(&args_with(&second_dir, &addr, "", ""));
    assert_names_address(&out, &addr, "--http-addr");
    // Addresses are probed once the lock is held, so the lock file is all the second server
    // created in its own data dir.
    let left: Vec<_> = tree(&second_dir.data_dir()).into_iter().collect();
    assert_eq!(left, vec![PathBuf::from(LOCK_FILE)]);
    still_serves(&first, "own-http");
}

#[test]
fn a_second_server_on_the_same_syslog_udp_port_is_refused() {
    let first_dir = TestDir::new("own-udp-1");
    let first = Server::start(&first_dir);
    let second_dir = TestDir::new("own-udp-2");
    let (http_port, _) = free_ports(false);
    let udp = format!("127.0.0.1:{}", first.syslog_port);
    let out = refused(&args_with(
        &second_dir,
        &format!("127.0.0.1:{http_port}"),
        "",
        &udp,
    ));
    assert_names_address(&out, &udp, "--syslog-udp-addr");
    assert!(out.contains("UDP"), "{out}");
    // The first server still gets every datagram.
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender
        .send_to(
            b"<14>1 - udphost ownudp - - - only the first server listens",
            SocketAddr::from(([127, 0, 0, 1], first.syslog_port)),
        )
        .unwrap();
    assert_eq!(
        first.wait_for_count(r#"{app="ownudp"}"#, 1, INGEST_WAIT_MS),
        1
    );
    still_serves(&first, "own-udp");
}

#[test]
fn a_port_held_by_another_program_is_refused() {
    let dir = TestDir::new("own-plain");
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let out = refused(&args_with(&dir, &addr, "", ""));
    assert_names_address(&out, &addr, "--http-addr");

    let (http_port, _) = free_ports(false);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_addr = udp.local_addr().unwrap().to_string();
    let out = refused(&args_with(
        &dir,
        &format!("127.0.0.1:{http_port}"),
        "",
        &udp_addr,
    ));
    assert_names_address(&out, &udp_addr, "--syslog-udp-addr");
    drop((held, udp));
}

/// `(major, minor)` of the running kernel.
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next().unwrap().parse().unwrap();
    let minor = parts.next().unwrap().parse().unwrap();
    (major, minor)
}

/// Linux accepts O_DIRECT on tmpfs from 6.6 on; before, the WAL cannot open there at all.
const KERNEL_TMPFS_DIRECT_IO: (u32, u32) = (6, 6);

#[test]
fn a_tmpfs_data_dir_is_refused_unless_allowed() {
    let dir = TestDir::new("own-tmpfs");
    let Some(tmpfs) = Tmpfs::find(&dir) else {
        return;
    };
    eprintln!(
        "tmpfs data dir {} ({})",
        tmpfs.path.display(),
        if tmpfs.mounted {
            "mounted for the test"
        } else {
            "/dev/shm"
        }
    );
    let (http_port, _) = free_ports(false);
    let http = format!("127.0.0.1:{http_port}");
    let mut args = strings(&[
        "--data-dir",
        &tmpfs.path_arg(),
        "--http-addr",
        &http,
        "--syslog-tcp-addr",
        "",
        "--syslog-udp-addr",
        "",
        "--cores",
        "1",
    ]);
    let out = refused(&args);
    for needle in [
        tmpfs.path_arg().as_str(),
        "tmpfs",
        "O_DIRECT",
        "--allow-volatile-data-dir",
    ] {
        assert!(
            out.contains(needle),
            "the refusal should say {needle}:\n{out}"
        );
    }
    assert!(
        tree(&tmpfs.path).is_empty(),
        "refused before taking the lock or writing anything"
    );

    args.insert(0, "serve".to_string());
    args.push("--allow-volatile-data-dir".to_string());
    match Server::spawn_ready(&dir, &args, http_port, 0) {
        Ok(server) => still_serves(&server, "own-tmpfs"),
        Err(failure) => {
            assert!(
                !failure.contains("--allow-volatile-data-dir"),
                "the flag did not lift the refusal:\n{failure}"
            );
            assert!(
                kernel_version() < KERNEL_TMPFS_DIRECT_IO,
                "tmpfs takes O_DIRECT on this kernel, the server should run:\n{failure}"
            );
        }
    }
}
