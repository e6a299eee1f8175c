//! A server stopped and started again at once on the same ports comes up: the connections
//! the first run closed itself (keep-alive connections it ends at shutdown) wait in TIME_WAIT
//! for a minute, and neither the start-up check of the addresses nor the listeners may take
//! them for a process that still listens.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::server::{free_ports, server_args};
use common::{Server, ServerOptions, TestDir};

/// Keep-alive connections left open when the first run stops, so that the server closes
/// them first and they stay in TIME_WAIT on the server's port.
const IDLE_CONNECTIONS: usize = 8;

#[test]
fn a_restart_on_the_same_ports_starts_despite_time_wait() {
    let dir = TestDir::new("restart-ports");
    let options = ServerOptions::default();
    let (http_port, syslog_port) = free_ports(options.syslog);
    let args = server_args(&dir, &options, http_port, syslog_port);
    let mut first = Server::spawn_ready(&dir, &args, http_port, syslog_port)
        .unwrap_or_else(|e| panic!("first run: {e}"));
    let mut idle = Vec::new();
    for _ in 0..IDLE_CONNECTIONS {
        let mut s = TcpStream::connect(first.http).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).expect("an answer");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        idle.push(s);
    }
    first.terminate_ok();
    // The server closed them: read their end so that the client side is closed too.
    for mut s in idle {
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    }
    let mut second = Server::spawn_ready(&dir, &args, http_port, syslog_port)
        .unwrap_or_else(|e| panic!("second run on the same ports: {e}"));
    second.terminate_ok();
}
