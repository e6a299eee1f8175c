//! Certificates for the TLS listeners' tests, made per test with rcgen: a CA, a server
//! certificate it signs (for `localhost` and 127.0.0.1) and a client certificate it signs,
//! written as PEM files where the real clients (`openssl s_client`, loggen, librelp) and the
//! server read them.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
};

/// The PEM files of one CA and the two leaves it signed.
pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// Makes a CA named `name` and its server and client certificates, written into `dir` as
/// `<name>-ca.pem`, `<name>-server.pem`, ...
pub fn make(dir: &Path, name: &str) -> Certs {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("self-signed CA");

    let leaf = |common_name: &str, purpose: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string()]).expect("leaf params");
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![purpose];
        let cert = params
            .signed_by(&key, &ca_cert, &ca_key)
            .expect("leaf signed by the CA");
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) = leaf("test client", ExtendedKeyUsagePurpose::ClientAuth);

    let write = |suffix: &str, pem: &str| {
        let path = dir.join(format!("{name}-{suffix}.pem"));
        std::fs::write(&path, pem).expect("write a PEM file");
        path
    };
    Certs {
        ca: write("ca", &ca_cert.pem()),
        server_cert: write("server", &server_cert),
        server_key: write("server-key", &server_key),
        client_cert: write("client", &client_cert),
        client_key: write("client-key", &client_key),
    }
}
