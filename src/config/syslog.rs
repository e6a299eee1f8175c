//! Syslog listeners beyond the default one, each with its own tenant: the `[[syslog]]`
//! sections of the TOML file.
//!
//! Which question it answers: "on which sockets does syslog arrive, and whose lines are
//! they?" Syslog carries no tenant, so the listener gives one (DESIGN §7): the default
//! listener (`syslog_tcp_addr`, `syslog_udp_addr`, `syslog_tls_addr`, `relp_addr`,
//! `relp_tls_addr`) stores under `syslog_tenant`, and each section adds one address, over
//! UDP and one of the stream protocols (plain TCP, TLS, RELP, RELP over TLS), storing under
//! its own tenant, whose limits then hold for every line it receives.

use std::net::SocketAddr;

use serde::Deserialize;

use super::{ConfigError, addr};
use crate::model::validate_tenant;

/// One `[[syslog]]` section as written.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyslogSection {
    /// `HOST:PORT` or `:PORT`.
    pub listen: String,
    /// `tcp`, `udp` or both (the default); instead of `tcp`, one of `tls` (RFC 5425),
    /// `relp` or `relp-tls`, which share the address's TCP port with it.
    #[serde(default = "both_protocols")]
    pub protocols: Vec<String>,
    /// The tenant of every line this listener receives; `syslog_tenant` when left out.
    pub tenant: Option<String>,
}

fn both_protocols() -> Vec<String> {
    vec!["tcp".into(), "udp".into()]
}

/// A syslog listener the server runs: its sockets and its tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct SyslogListener {
    pub tcp_addr: Option<SocketAddr>,
    pub udp_addr: Option<SocketAddr>,
    /// Syslog over TLS (RFC 5425).
    pub tls_addr: Option<SocketAddr>,
    /// RELP, answered after the WAL commit.
    pub relp_addr: Option<SocketAddr>,
    /// RELP over TLS.
    pub relp_tls_addr: Option<SocketAddr>,
    pub tenant: String,
}

impl SyslogListener {
    /// The TCP ports this listener binds (every protocol but UDP is a TCP port).
    pub fn stream_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        [
            self.tcp_addr,
            self.tls_addr,
            self.relp_addr,
            self.relp_tls_addr,
        ]
        .into_iter()
        .flatten()
    }
}

/// The protocols a section may name; all but `udp` take the address's TCP port.
const PROTOCOLS: [&str; 5] = ["tcp", "udp", "tls", "relp", "relp-tls"];

/// A section's key has no flag: the error names the section instead.
fn bad(key: &str, msg: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!(
        "invalid value for `{key}` in a [[syslog]] section: {msg}"
    ))
}

/// Validates the sections: an address, known protocols each named once, a valid tenant,
/// and no socket (address and protocol) listened on twice, the default listener's included.
pub fn resolve_sections(
    sections: &[SyslogSection],
    default: &SyslogListener,
) -> Result<Vec<SyslogListener>, ConfigError> {
    let mut out: Vec<SyslogListener> = Vec::with_capacity(sections.len());
    for (i, section) in sections.iter().enumerate() {
        let key = format!("syslog[{i}]");
        let listen_key = format!("{key}.listen");
        let at = addr(&listen_key, &section.listen)
            .map_err(|e| {
                ConfigError(e.0.replace(&format!(" (--{listen_key})"), " in a [[syslog]] section"))
            })?
            .ok_or_else(|| bad(&format!("{key}.listen"), "must not be empty"))?;
        let mut named: Vec<&str> = Vec::new();
        for p in &section.protocols {
            if !PROTOCOLS.contains(&p.as_str()) {
                return Err(bad(
                    &format!("{key}.protocols"),
                    format!(
                        "'{p}' is not a protocol: give \"tcp\", \"udp\", \"tls\", \"relp\" \
                         or \"relp-tls\""
                    ),
                ));
            }
            if named.contains(&p.as_str()) {
                return Err(bad(
                    &format!("{key}.protocols"),
                    format!("'{p}' is named twice"),
                ));
            }
            named.push(p);
        }
        let streams: Vec<&str> = named.iter().copied().filter(|p| *p != "udp").collect();
        if streams.len() > 1 {
            return Err(bad(
                &format!("{key}.protocols"),
                format!(
                    "{} would share one TCP port: give each its own [[syslog]] section",
                    streams.join(" and ")
                ),
            ));
        }
        if named.is_empty() {
            return Err(bad(
                &format!("{key}.protocols"),
                "must name \"tcp\", \"udp\" or both (or \"tls\", \"relp\", \"relp-tls\")",
            ));
        }
        let tenant = section
            .tenant
            .clone()
            .unwrap_or_else(|| default.tenant.clone());
        validate_tenant(&tenant).map_err(|e| bad(&format!("{key}.tenant"), e))?;
        let has = |p: &str| named.contains(&p).then_some(at);
        let listener = SyslogListener {
            tcp_addr: has("tcp"),
            udp_addr: has("udp"),
            tls_addr: has("tls"),
            relp_addr: has("relp"),
            relp_tls_addr: has("relp-tls"),
            tenant,
        };
        for other in std::iter::once(default).chain(out.iter()) {
            let same_tcp = listener
                .stream_addrs()
                .any(|a| other.stream_addrs().any(|b| a == b));
            let same_udp = listener.udp_addr.is_some() && listener.udp_addr == other.udp_addr;
            if same_tcp || same_udp {
                return Err(bad(
                    &format!("{key}.listen"),
                    format!("{at} is already a syslog listener's address"),
                ));
            }
        }
        out.push(listener);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> SyslogListener {
        SyslogListener {
            tcp_addr: Some("0.0.0.0:5514".parse().unwrap()),
            udp_addr: Some("0.0.0.0:5514".parse().unwrap()),
            tls_addr: None,
            relp_addr: Some("0.0.0.0:2514".parse().unwrap()),
            relp_tls_addr: None,
            tenant: "fake".into(),
        }
    }

    fn section(listen: &str, protocols: &[&str], tenant: Option<&str>) -> SyslogSection {
        SyslogSection {
            listen: listen.into(),
            protocols: protocols.iter().map(|p| p.to_string()).collect(),
            tenant: tenant.map(str::to_string),
        }
    }

    #[test]
    fn sections_become_listeners_with_their_tenant() {
        let got = resolve_sections(
            &[
                section(":6000", &["tcp", "udp"], Some("net")),
                section("127.0.0.1:6001", &["udp"], None),
            ],
            &default(),
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                SyslogListener {
                    tcp_addr: Some("0.0.0.0:6000".parse().unwrap()),
                    udp_addr: Some("0.0.0.0:6000".parse().unwrap()),
                    tls_addr: None,
                    relp_addr: None,
                    relp_tls_addr: None,
                    tenant: "net".into(),
                },
                SyslogListener {
                    tcp_addr: None,
                    udp_addr: Some("127.0.0.1:6001".parse().unwrap()),
                    tls_addr: None,
                    relp_addr: None,
                    relp_tls_addr: None,
                    tenant: "fake".into(),
                },
            ]
        );
    }

    #[test]
    fn bad_sections_name_the_section_and_the_problem() {
        let err = |s: SyslogSection| resolve_sections(&[s], &default()).unwrap_err().0;
        assert!(err(section(":6000", &["sctp"], None)).contains("syslog[0].protocols"));
        assert!(err(section(":6000", &["tcp", "tcp"], None)).contains("named twice"));
        assert!(err(section(":6000", &[], None)).contains("\"tcp\", \"udp\" or both"));
        let relp = resolve_sections(&[section(":6001", &["relp", "udp"], Some("r"))], &default());
        let relp = &relp.unwrap()[0];
        assert_eq!(relp.relp_addr, Some("0.0.0.0:6001".parse().unwrap()));
        assert_eq!(
            (relp.tcp_addr, relp.tls_addr, relp.relp_tls_addr),
            (None, None, None)
        );
        assert!(err(section("", &["tcp"], None)).contains("must not be empty"));
        assert!(err(section(":6000", &["tcp"], Some("a|b"))).contains("syslog[0].tenant"));
        assert!(err(section(":5514", &["udp"], Some("x"))).contains("already"));
        let twice = resolve_sections(
            &[
                section(":6000", &["tcp"], None),
                section(":6000", &["tcp"], Some("x")),
            ],
            &default(),
        );
        assert!(twice.unwrap_err().0.contains("syslog[1].listen"));
        // Two stream protocols cannot share a port, with another section or the default.
        assert!(err(section(":6000", &["tcp", "relp"], None)).contains("share one TCP port"));
        assert!(err(section(":2514", &["tls"], None)).contains("already"));
        assert!(err(section(":5514", &["relp-tls"], Some("x"))).contains("already"));
        // The same port over the other protocol is another socket.
        assert!(
            resolve_sections(
                &[
                    section(":6000", &["tcp"], None),
                    section(":6000", &["udp"], Some("x"))
                ],
                &default()
            )
            .is_ok()
        );
    }

    #[test]
    fn toml_sections_parse_with_both_protocols_by_default() {
        #[derive(Deserialize)]
        struct File {
            syslog: Vec<SyslogSection>,
        }
        let f: File = toml::from_str(
            "[[syslog]]\nlisten = \":6000\"\ntenant = \"net\"\n\n[[syslog]]\nlisten = \":6001\"\nprotocols = [\"udp\"]\n",
        )
        .unwrap();
        assert_eq!(f.syslog[0].protocols, vec!["tcp", "udp"]);
        assert_eq!(f.syslog[1].protocols, vec!["udp"]);
        assert!(toml::from_str::<File>("[[syslog]]\nlisten = \":1\"\nport = 2\n").is_err());
    }
}
