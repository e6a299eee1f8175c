//! Network checks: the kernel's socket buffer ceiling against the configured UDP buffer, and
//! whether the configured listen addresses can be bound.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use super::host::bytes;
use super::report::Finding;

/// Whether a listener speaks TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

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

/// Binds `addr` the way a listener would and releases it at once.
pub fn probe_bind(addr: SocketAddr, proto: Proto) -> std::io::Result<()> {
    match proto {
        Proto::Tcp => TcpListener::bind(addr).map(drop),
        Proto::Udp => UdpSocket::bind(addr).map(drop),
    }
}

pub fn classify_bind(
    check: &'static str,
    addr: SocketAddr,
    result: &std::io::Result<()>,
) -> Finding {
    let Err(e) = result else {
        return Finding::ok(check, format!("{addr} is free"));
    };
    match e.kind() {
        ErrorKind::AddrInUse => Finding::warn(
            check,
            format!(
                "{addr} is in use: another process holds it (if that is a shardlog, a second \
                 one on the same port shares the traffic through SO_REUSEPORT)"
            ),
            format!("ss -lntup 'sport = :{}'  to see who holds it", addr.port()),
        ),
        ErrorKind::PermissionDenied => Finding::warn(
            check,
            format!(
                "{addr}: permission denied; ports below net.ipv4.ip_unprivileged_port_start \
                 (1024) need CAP_NET_BIND_SERVICE"
            ),
            "AmbientCapabilities=CAP_NET_BIND_SERVICE (tuning/shardlog.service), or\n\
             setcap cap_net_bind_service=+ep /usr/local/bin/shardlog",
        ),
        ErrorKind::AddrNotAvailable => Finding::warn(
            check,
            format!("{addr}: no interface of this host has that address"),
            "use 0.0.0.0 or an address shown by `ip -br addr`",
        ),
        _ => Finding::warn(check, format!("{addr}: {e}"), "check the address"),
    }
}

pub fn check_bind(check: &'static str, addr: Option<SocketAddr>, proto: Proto) -> Finding {
    match addr {
        None => Finding::ok(check, "off"),
        Some(a) => classify_bind(check, a, &probe_bind(a, proto)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::report::Status;
    use super::*;

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

    #[test]
    fn bind_probe_sees_a_held_port() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let f = check_bind("http", Some(addr), Proto::Tcp);
        assert_eq!(f.status, Status::Warn, "{}", f.detail);
        assert!(f.detail.contains("in use"));
        drop(held);
        let f = check_bind("http", Some(addr), Proto::Tcp);
        assert_eq!(f.status, Status::Ok, "{}", f.detail);
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let f = check_bind("syslog udp", Some(udp.local_addr().unwrap()), Proto::Udp);
        assert_eq!(f.status, Status::Warn);
        assert_eq!(check_bind("syslog udp", None, Proto::Udp).detail, "off");
    }

    #[test]
    fn bind_errors_say_what_to_do() {
        let addr: SocketAddr = "0.0.0.0:514".parse().unwrap();
        let denied = Err(std::io::Error::from(ErrorKind::PermissionDenied));
        let f = classify_bind("syslog tcp", addr, &denied);
        assert!(f.fix.unwrap().contains("CAP_NET_BIND_SERVICE"));
        let gone = Err(std::io::Error::from(ErrorKind::AddrNotAvailable));
        assert!(
            classify_bind("http", addr, &gone)
                .detail
                .contains("no interface")
        );
    }
}
