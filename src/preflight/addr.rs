//! One server per address: a plain bind (no SO_REUSEPORT) of every address `serve` will
//! listen on, before any executor binds its SO_REUSEPORT sockets.
//!
//! SO_REUSEPORT lets any process of the same user join a port that a shardlog already
//! listens on, and the kernel then splits connections and datagrams between the two
//! silently. A socket without SO_REUSEPORT cannot share a port with anything, so if the
//! probe's bind fails with `EADDRINUSE`, something listens there (another shardlog or any
//! other program) and `serve` refuses to start. The probe socket is closed at once, so the
//! executors' own binds do not collide with it.
//!
//! Limitation: two servers started at the same instant can both pass the probe before
//! either binds; the data-dir lock still keeps them off the same data, and the second
//! start of a service manager never races its own first one.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, UdpSocket};

/// Whether a listener speaks TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        }
    }
}

/// One address `serve` listens on, with the configuration key that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    /// The key, e.g. `http_addr` (the flag is the same with `-`).
    pub key: &'static str,
    pub addr: SocketAddr,
    pub proto: Proto,
}

impl Listen {
    /// The flag that sets this address, e.g. `--http-addr`.
    pub fn flag(&self) -> String {
        if self.key == SYSLOG_SECTION_KEY {
            return "`listen` of its [[syslog]] section".to_string();
        }
        format!("--{}", self.key.replace('_', "-"))
    }
}

/// The key of an address set by a `[[syslog]]` section (TOML only, no flag).
pub const SYSLOG_SECTION_KEY: &str = "syslog";

/// Every address the configuration listens on, in the order they are probed.
pub fn listens(config: &crate::config::Config) -> Vec<Listen> {
    let mut out = vec![Listen {
        key: "http_addr",
        addr: config.http_addr,
        proto: Proto::Tcp,
    }];
    let defaults = [
        ("syslog_tcp_addr", config.syslog_tcp_addr, Proto::Tcp),
        ("syslog_udp_addr", config.syslog_udp_addr, Proto::Udp),
        ("syslog_tls_addr", config.syslog_tls_addr, Proto::Tcp),
        ("relp_addr", config.relp_addr, Proto::Tcp),
        ("relp_tls_addr", config.relp_tls_addr, Proto::Tcp),
    ];
    for (key, addr, proto) in defaults {
        if let Some(addr) = addr {
            out.push(Listen { key, addr, proto });
        }
    }
    for listener in &config.syslog_listeners {
        let sockets = listener
            .stream_addrs()
            .map(|a| (Some(a), Proto::Tcp))
            .chain([(listener.udp_addr, Proto::Udp)]);
        for (addr, proto) in sockets {
            if let Some(addr) = addr {
                out.push(Listen {
                    key: SYSLOG_SECTION_KEY,
                    addr,
                    proto,
                });
            }
        }
    }
    out
}

/// Binds `addr` without SO_REUSEPORT and releases it at once. Port 0 (any free port) is
/// always free.
pub fn probe(addr: SocketAddr, proto: Proto) -> std::io::Result<()> {
    match proto {
        // std sets SO_REUSEADDR on TCP listeners, which on Linux admits a bind next to
        // TIME_WAIT connections of an earlier run but never next to a listening socket.
        Proto::Tcp => TcpListener::bind(addr).map(drop),
        Proto::Udp => UdpSocket::bind(addr).map(drop),
    }
}

/// Why an address cannot be listened on, in words an operator can act on.
#[derive(Debug)]
pub struct AddrError {
    pub listen: Listen,
    pub error: std::io::Error,
}

impl AddrError {
    /// What the error means for this address, without the address itself.
    pub fn reason(&self) -> String {
        match self.error.kind() {
            ErrorKind::AddrInUse => format!(
                "the address is already in use: another process (a shardlog or any other \
                 server) listens on {} port {}",
                self.listen.proto.name(),
                self.listen.addr.port()
            ),
            ErrorKind::PermissionDenied => "permission denied: ports below \
                 net.ipv4.ip_unprivileged_port_start (1024 by default) need \
                 CAP_NET_BIND_SERVICE"
                .to_string(),
            ErrorKind::AddrNotAvailable => "no interface of this host has that address".to_string(),
            _ => self.error.to_string(),
        }
    }
}

impl std::fmt::Display for AddrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot listen on {} {} ({}): {}",
            self.listen.proto.name(),
            self.listen.addr,
            self.listen.flag(),
            self.reason()
        )?;
        if self.error.kind() == ErrorKind::AddrInUse {
            write!(
                f,
                "; `ss -lntup 'sport = :{}'` shows which",
                self.listen.addr.port()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for AddrError {}

/// Probes every address of `listens`; the first one that cannot be bound is the error.
pub fn probe_all(listens: &[Listen]) -> Result<(), AddrError> {
    for listen in listens {
        probe(listen.addr, listen.proto).map_err(|error| AddrError {
            listen: *listen,
            error,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_tcp_or_udp_port_is_refused_and_named() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let listen = Listen {
            key: "http_addr",
            addr,
            proto: Proto::Tcp,
        };
        let err = probe_all(&[listen]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&addr.to_string()), "{msg}");
        assert!(
            msg.contains("--http-addr") && msg.contains("in use"),
            "{msg}"
        );
        drop(held);
        probe_all(&[listen]).unwrap();

        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let listen = Listen {
            key: "syslog_udp_addr",
            addr: udp.local_addr().unwrap(),
            proto: Proto::Udp,
        };
        let msg = probe_all(&[listen]).unwrap_err().to_string();
        assert!(
            msg.contains("--syslog-udp-addr") && msg.contains("UDP"),
            "{msg}"
        );
    }

    #[test]
    fn a_wildcard_listener_blocks_a_loopback_probe() {
        // A server on 0.0.0.0:P owns 127.0.0.1:P too.
        let held = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(
            probe(addr, Proto::Tcp).unwrap_err().kind(),
            ErrorKind::AddrInUse
        );
    }

    #[test]
    fn reasons_say_what_to_do() {
        let listen = Listen {
            key: "syslog_tcp_addr",
            addr: "0.0.0.0:514".parse().unwrap(),
            proto: Proto::Tcp,
        };
        let denied = AddrError {
            listen,
            error: ErrorKind::PermissionDenied.into(),
        };
        assert!(denied.reason().contains("CAP_NET_BIND_SERVICE"));
        let gone = AddrError {
            listen,
            error: ErrorKind::AddrNotAvailable.into(),
        };
        assert!(gone.to_string().contains("no interface"), "{gone}");
    }
}
