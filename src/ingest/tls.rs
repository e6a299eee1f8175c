//! TLS for the syslog and RELP listeners (RFC 5425): the server's certificate and key, the
//! optional CA that client certificates must chain to, and their reload when the files change.
//!
//! Which question it answers: "with which certificate does this core greet the next TLS
//! client, and whom does it let in?" Each core keeps its own [`TlsAcceptor`] (the state of a
//! core is `!Send` and never shared). Before every handshake it looks at the three files'
//! identity (inode, size, modification time): when one changed, as after a certificate
//! renewal that replaces the files, the next client gets the new certificate; connections
//! already open keep theirs. A reload that fails (a half-written file, a key that does not
//! match) is reported and counted, and the previous certificate stays in use, so a renewal
//! gone wrong never turns the listener off.
//!
//! rustls with the ring provider does the protocol (TLS 1.2 and 1.3, no OpenSSL), and
//! futures-rustls drives it over glommio's sockets.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_rustls::rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// How long a client has for its handshake: a connection that opens and says nothing must not
/// hold a connection slot for good.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The files a TLS listener is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server's certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM: the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM: the CAs client certificates must chain to; without it no client certificate is
    /// asked for.
    pub client_ca: Option<PathBuf>,
}

/// What identifies one version of a file: a renewal that writes a new file and renames it
/// over the old one changes the inode; one that rewrites it in place changes the time or size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    len: u64,
    modified_ns: i128,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        inode: m.ino(),
        len: m.len(),
        modified_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

/// The stamps of the three files, in the order cert, key, client CA.
fn stamps(files: &TlsFiles) -> [Option<FileStamp>; 3] {
    [
        stamp(&files.cert),
        stamp(&files.key),
        files.client_ca.as_deref().and_then(stamp),
    ]
}

/// Reads the files and builds the rustls configuration; the error names the file and what is
/// wrong with it.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    // ring rather than aws-lc-rs: no C/cmake build beyond ring's own. rustls marks ring's
    // provider deprecated because it has no post-quantum key exchange; the syslog and RELP
    // senders that connect here (rsyslog's gnutls/openssl, syslog-ng) negotiate X25519 or
    // the NIST curves, which it has.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let read = |path: &Path, what: &str| {
        std::fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
    };
    let cert_pem = read(&files.cert, "TLS certificate file")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", files.cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "{}: holds no certificate (expected PEM `BEGIN CERTIFICATE` blocks)",
            files.cert.display()
        ));
    }
    let key_pem = read(&files.key, "TLS key file")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "{}: no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            files.key.display()
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let ca_pem = read(ca, "TLS client CA file")?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&ca_pem) {
                let cert =
                    cert.map_err(|e| format!("{}: not a PEM certificate: {e}", ca.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: not a usable CA certificate: {e}", ca.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: holds no CA certificate", ca.display()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        format!(
            "{} and {} do not make a usable certificate and key: {e}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    // No TLS 1.3 session tickets. A syslog sender never reads (the protocol is one-way), so
    // tickets sent after the handshake would sit unread in its socket, and its kernel then
    // answers the sender's close with a reset instead of a FIN, which throws away the lines
    // still in our receive queue (loggen -U lost about half of 1,000 lines that way).
    // Resumption saves one round trip per connection, and syslog connections live long.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// One core's acceptor for one set of files, reloaded when they change.
pub struct TlsAcceptor {
    files: TlsFiles,
    current: RefCell<Current>,
}

struct Current {
    stamps: [Option<FileStamp>; 3],
    acceptor: futures_rustls::TlsAcceptor,
}

/// What [`TlsAcceptor::acceptor`] found when it looked at the files.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// The files did not change.
    Same,
    /// They changed and the new certificate is in use.
    Reloaded,
    /// They changed but could not be used; the previous certificate stays.
    Failed(String),
}

impl TlsAcceptor {
    /// Loads the files; an error here refuses the start.
    pub fn load(files: TlsFiles) -> Result<TlsAcceptor, String> {
        let stamps = stamps(&files);
        let config = server_config(&files)?;
        Ok(TlsAcceptor {
            files,
            current: RefCell::new(Current {
                stamps,
                acceptor: futures_rustls::TlsAcceptor::from(config),
            }),
        })
    }

    /// The acceptor for the next handshake, reloading first if a file changed.
    pub fn acceptor(&self) -> (futures_rustls::TlsAcceptor, Reload) {
        let now = stamps(&self.files);
        let mut current = self.current.borrow_mut();
        if now == current.stamps {
            return (current.acceptor.clone(), Reload::Same);
        }
        // Remember the stamps either way: a broken file is reported once, not per client.
        current.stamps = now;
        match server_config(&self.files) {
            Ok(config) => {
                current.acceptor = futures_rustls::TlsAcceptor::from(config);
                (current.acceptor.clone(), Reload::Reloaded)
            }
            Err(e) => (current.acceptor.clone(), Reload::Failed(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate and its key, as PEM.
    fn self_signed(name: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        (c.cert.pem(), c.key_pair.serialize_pem())
    }

    fn files(dir: &Path, ca: bool) -> TlsFiles {
        TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            client_ca: ca.then(|| dir.join("ca.pem")),
        }
    }

    #[test]
    fn loads_a_certificate_and_reloads_it_when_the_files_change() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("a.example");
        std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), &key).unwrap();
        let acceptor = TlsAcceptor::load(files(dir.path(), false)).unwrap();
        assert_eq!(acceptor.acceptor().1, Reload::Same);

        // A renewal: new files renamed over the old ones.
        let (cert, key) = self_signed("b.example");
        std::fs::write(dir.path().join("new.pem"), &cert).unwrap();
        std::fs::rename(dir.path().join("new.pem"), dir.path().join("cert.pem")).unwrap();
        std::fs::write(dir.path().join("new.pem"), &key).unwrap();
        std::fs::rename(dir.path().join("new.pem"), dir.path().join("key.pem")).unwrap();
        assert_eq!(acceptor.acceptor().1, Reload::Reloaded);
        assert_eq!(acceptor.acceptor().1, Reload::Same);

        // A broken renewal keeps the previous certificate and is reported once.
        std::fs::write(dir.path().join("new.pem"), "not a key").unwrap();
        std::fs::rename(dir.path().join("new.pem"), dir.path().join("key.pem")).unwrap();
        assert!(matches!(acceptor.acceptor().1, Reload::Failed(e) if e.contains("key.pem")));
        assert_eq!(acceptor.acceptor().1, Reload::Same);
    }

    #[test]
    fn errors_name_the_file_and_the_fault() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path(), true);
        let e = server_config(&f).unwrap_err();
        assert!(e.contains("cert.pem") && e.contains("cannot read"), "{e}");

        let (cert, key) = self_signed("a.example");
        std::fs::write(&f.cert, "garbage").unwrap();
        std::fs::write(&f.key, &key).unwrap();
        let e = server_config(&f).unwrap_err();
        assert!(e.contains("holds no certificate"), "{e}");

        std::fs::write(&f.cert, &cert).unwrap();
        let (_, other_key) = self_signed("b.example");
        std::fs::write(&f.key, &other_key).unwrap();
        std::fs::write(f.client_ca.as_ref().unwrap(), &cert).unwrap();
        let e = server_config(&f).unwrap_err();
        assert!(
            e.contains("do not make a usable certificate and key"),
            "{e}"
        );

        std::fs::write(&f.key, &key).unwrap();
        std::fs::write(f.client_ca.as_ref().unwrap(), "").unwrap();
        let e = server_config(&f).unwrap_err();
        assert!(e.contains("holds no CA certificate"), "{e}");
        std::fs::write(f.client_ca.as_ref().unwrap(), &cert).unwrap();
        server_config(&f).unwrap();
    }
}
