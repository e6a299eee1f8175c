//! Syslog listeners beyond the default one, each with its own tenant: the `[[syslog]]`
//! sections of the TOML file.
//!
//! Which question it answers: "on which sockets does syslog arrive, and whose lines are
//! they?" Syslog carries no tenant, so the listener gives one (DESIGN §7): the default
//! listener (`syslog_tcp_addr`, `syslog_udp_addr`) stores under `syslog_tenant`, and each
//! section adds one address, over TCP, UDP or both, storing under its own tenant, whose
//! limits then hold for every line it receives.

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
    /// `tcp`, `udp` or both (the default).
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
    pub tenant: String,
}

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
        let (mut tcp, mut udp) = (false, false);
        for p in &section.protocols {
            let seen = match p.as_str() {
                "tcp" => std::mem::replace(&mut tcp, true),
                "udp" => std::mem::replace(&mut udp, true),
                other => {
                    return Err(bad(
                        &format!("{key}.protocols"),
                        format!("'{other}' is not a protocol: give \"tcp\", \"udp\" or both"),
                    ));
                }
            };
            if seen {
                return Err(bad(
                    &format!("{key}.protocols"),
                    format!("'{p}' is named twice"),
                ));
            }
        }
        if !tcp && !udp {
            return Err(bad(
                &format!("{key}.protocols"),
                "must name \"tcp\", \"udp\" or both",
            ));
        }
        let tenant = section
            .tenant
            .clone()
            .unwrap_or_else(|| default.tenant.clone());
        validate_tenant(&tenant).map_err(|e| bad(&format!("{key}.tenant"), e))?;
        let listener = SyslogListener {
            tcp_addr: tcp.then_some(at),
            udp_addr: udp.then_some(at),
            tenant,
        };
        for other in std::iter::once(default).chain(out.iter()) {
            let same_tcp = listener.tcp_addr.is_some() && listener.tcp_addr == other.tcp_addr;
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
                    tenant: "net".into(),
                },
                SyslogListener {
                    tcp_addr: None,
                    udp_addr: Some("127.0.0.1:6001".parse().unwrap()),
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
