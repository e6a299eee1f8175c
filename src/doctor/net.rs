//! Network checks: the kernel's socket buffer ceiling against the configured UDP buffer, and
//! whether the configured listen addresses can be bound (the same plain-bind probe `serve`
//! makes before it starts).

use std::io::ErrorKind;

use super::host::bytes;
use super::report::Finding;
use crate::config::Config;
use crate::preflight::addr::{self, AddrError, Listen};

/// `rmem_max` is `net.core.rmem_max`; `wanted` the configured syslog UDP receive buffer.
pub fn classify_rmem(
    rmem_max: Option<u64>,
    wanted: usize,
    udp_enabled: bool,
    cap_net_admin: bool,
) -> Finding {
    let wanted = wanted as u64;
    if !udp_enabled {
        return Finding::ok(
            "udp buffer",
            "syslog UDP is off; net.core.rmem_max does not matter",
        );
    }
    let Some(max) = rmem_max else {
        return Finding::skip("udp buffer", "cannot read /proc/sys/net/core/rmem_max");
    };
    let shown = format!("net.core.rmem_max = {max} ({})", bytes(max));
    if max >= wanted {
        Finding::ok(
            "udp buffer",
            format!("{shown} >= syslog_udp_recv_buffer_bytes {}", bytes(wanted)),
        )
    } else if cap_net_admin {
        Finding::ok(
            "udp buffer",
            format!(
                "{shown} < {}, but the process has CAP_NET_ADMIN and SO_RCVBUFFORCE goes past it",
                bytes(wanted)
            ),
        )
    } else {
        Finding::warn(
            "udp buffer",
            format!(
                "{shown} < syslog_udp_recv_buffer_bytes {}: each UDP socket gets only {}, and \
                 bursts past it are dropped (`nstat -az UdpRcvbufErrors` counts them)",
                bytes(wanted),
                bytes(max)
            ),
            format!(
                "sysctl -w net.core.rmem_max={wanted}  (persist: tuning/sysctl.conf in \
                 /etc/sysctl.d/)"
            ),
        )
    }
}

/// The doctor's name of each listener's check line.
fn check_name(key: &str) -> &'static str {
    match key {
        "http_addr" => "http addr",
        "syslog_tcp_addr" => "syslog tcp addr",
        "syslog_tls_addr" => "syslog tls addr",
        "relp_addr" => "relp addr",
        "relp_tls_addr" => "relp tls addr",
        _ => "syslog udp addr",
    }
}

/// What the plain-bind probe of `serve` ([`crate::preflight::addr`]) answered for one
/// address. Every error is a failure: `serve` refuses to start on it.
pub fn classify_bind(listen: Listen, result: std::io::Result<()>) -> Finding {
    let check = check_name(listen.key);
    let Err(error) = result else {
        return Finding::ok(check, format!("{} is free", listen.addr));
    };
    let fix = match error.kind() {
        ErrorKind::AddrInUse => format!(
            "ss -lntup 'sport = :{}'  shows who holds it; stop it, or choose another {}",
            listen.addr.port(),
            listen.flag()
        ),
        ErrorKind::PermissionDenied => "AmbientCapabilities=CAP_NET_BIND_SERVICE \
             (tuning/shardlog.service), or\n\
             setcap cap_net_bind_service=+ep /usr/local/bin/shardlog"
            .to_string(),
        ErrorKind::AddrNotAvailable => {
            "use 0.0.0.0 (or `:PORT`) or an address shown by `ip -br addr`".to_string()
        }
        _ => format!("check {}", listen.flag()),
    };
    let detail = format!(
        "{} {}: {}; serve would refuse to start",
        listen.proto.name(),
        listen.addr,
        AddrError { listen, error }.reason()
    );
    Finding::fail(check, detail, fix)
}

/// One line per listener of the configuration (`off` for a syslog one turned off).
pub fn check_listens(config: &Config) -> Vec<Finding> {
    let listens = addr::listens(config);
    let mut out = Vec::new();
    for key in ["http_addr", "syslog_tcp_addr", "syslog_udp_addr"] {
        match listens.iter().find(|l| l.key == key) {
            Some(l) => out.push(classify_bind(*l, addr::probe(l.addr, l.proto))),
            None => out.push(Finding::ok(check_name(key), "off")),
        }
    }
    // The listeners that are off by default get a line only when configured.
    for key in ["syslog_tls_addr", "relp_addr", "relp_tls_addr"] {
        if let Some(l) = listens.iter().find(|l| l.key == key) {
            out.push(classify_bind(*l, addr::probe(l.addr, l.proto)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, TcpListener, UdpSocket};

    use super::super::report::Status;
    use super::*;
    use crate::preflight::addr::Proto;

    #[test]
    fn rmem_classification() {
        let eight = 8 << 20;
        assert_eq!(
            classify_rmem(Some(eight), eight as usize, true, false).status,
            Status::Ok
        );
        let f = classify_rmem(Some(212_992), eight as usize, true, false);
        assert_eq!(f.status, Status::Warn);
        assert!(f.fix.unwrap().contains("net.core.rmem_max=8388608"));
        // Root forces past the ceiling, so the same numbers are fine with CAP_NET_ADMIN.
        assert_eq!(
            classify_rmem(Some(212_992), eight as usize, true, true).status,
            Status::Ok
        );
        assert_eq!(
            classify_rmem(Some(1), eight as usize, false, false).status,
            Status::Ok
        );
        assert_eq!(
            classify_rmem(None, eight as usize, true, false).status,
            Status::Skip
        );
    }

    fn listen(key: &'static str, addr: SocketAddr, proto: Proto) -> Listen {
        Listen { key, addr, proto }
    }

    #[test]
    fn a_held_port_fails_as_serve_would() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let l = listen("http_addr", addr, Proto::Tcp);
        let f = classify_bind(l, addr::probe(addr, Proto::Tcp));
        assert_eq!(f.status, Status::Fail, "{}", f.detail);
        assert!(f.detail.contains("in use") && f.detail.contains(&addr.to_string()));
        assert!(f.fix.unwrap().contains("--http-addr"));
        drop(held);
        let f = classify_bind(l, addr::probe(addr, Proto::Tcp));
        assert_eq!(f.status, Status::Ok, "{}", f.detail);
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        let f = classify_bind(
            listen("syslog_udp_addr", addr, Proto::Udp),
            addr::probe(addr, Proto::Udp),
        );
        assert_eq!((f.check, f.status), ("syslog udp addr", Status::Fail));
    }

    #[test]
    fn bind_errors_say_what_to_do() {
        let addr: SocketAddr = "0.0.0.0:514".parse().unwrap();
        let l = listen("syslog_tcp_addr", addr, Proto::Tcp);
        let f = classify_bind(l, Err(ErrorKind::PermissionDenied.into()));
        assert_eq!(f.status, Status::Fail);
        assert!(f.fix.unwrap().contains("CAP_NET_BIND_SERVICE"));
        let f = classify_bind(l, Err(ErrorKind::AddrNotAvailable.into()));
        assert!(f.detail.contains("no interface"), "{}", f.detail);
    }
}
