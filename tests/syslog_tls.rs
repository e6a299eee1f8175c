//! Syslog over TLS (RFC 5425) and RELP over TLS, with real clients: syslog-ng's `loggen -U`,
//! `openssl s_client` and librelp (gnutls and OpenSSL). Client certificates are verified
//! against `--tls-client-ca-file` when it is given, and a renewed certificate is taken into
//! use by the next connection without a restart.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::loki::{INGEST_WAIT_MS, metric_sum, parse_metrics};
use common::relp::{relp_send, send};
use common::server::free_tcp_port;
use common::tls::{Certs, make};
use common::tools::{corpus_lines, require_program, run_checked};
use common::{Server, ServerOptions, TestDir};

struct Ports {
    syslog_tls: u16,
    relp_tls: u16,
}

/// A server with both TLS listeners and the certificate of `certs`; clients must present a
/// certificate of `client_ca` when it is given.
fn tls_server(dir: &TestDir, certs: &Certs, client_ca: Option<&Path>) -> (Server, Ports) {
    let ports = Ports {
        syslog_tls: free_tcp_port(),
        relp_tls: free_tcp_port(),
    };
    let mut extra_args = vec![
        "--syslog-tls-addr".to_string(),
        format!("127.0.0.1:{}", ports.syslog_tls),
        "--relp-tls-addr".to_string(),
        format!("127.0.0.1:{}", ports.relp_tls),
        "--tls-cert-file".to_string(),
        certs.server_cert.display().to_string(),
        "--tls-key-file".to_string(),
        certs.server_key.display().to_string(),
    ];
    if let Some(ca) = client_ca {
        extra_args.push("--tls-client-ca-file".into());
        extra_args.push(ca.display().to_string());
    }
    let options = ServerOptions {
        syslog: false,
        extra_args,
        ..ServerOptions::default()
    };
    (Server::start_with(dir, &options), ports)
}

/// Sends `lines` newline-framed through `openssl s_client`, which verifies the server against
/// `ca` and presents `client` (certificate, key) if given; true if the handshake succeeded and
/// everything was written.
fn openssl_send(port: u16, ca: &Path, client: Option<(&Path, &Path)>, lines: &[String]) -> bool {
    let mut command = Command::new("openssl");
    command
        .args(["s_client", "-quiet", "-no_ign_eof", "-verify_return_error"])
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-CAfile")
        .arg(ca);
    if let Some((cert, key)) = client {
        command.arg("-cert").arg(cert).arg("-key").arg(key);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl s_client");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        let mut text = lines.join("\n");
        text.push('\n');
        let _ = stdin.write_all(text.as_bytes());
    }
    let output = child.wait_with_output().expect("wait for openssl");
    output.status.success()
}

fn have_openssl() -> bool {
    require_program("openssl", "Debian package openssl")
}

/// `n` RFC 5424 messages of `app` with corpus text, stamped with the receive time.
fn messages(app: &str, n: usize) -> Option<Vec<String>> {
    let corpus = corpus_lines("OpenSSH_2k.log")?;
    Some(
        (0..n)
            .map(|i| {
                format!(
                    "<38>1 - tlshost {app} - - - #{i} {}",
                    corpus[i % corpus.len()]
                )
            })
            .collect(),
    )
}

fn wait_count(server: &Server, query: &str, want: u64) {
    let got = server.wait_for_count(query, want, INGEST_WAIT_MS);
    assert_eq!(got, want, "{query}");
}

#[test]
fn loggen_over_tls_delivers_every_line() {
    if !require_program("loggen", "Debian package syslog-ng-core") {
        return;
    }
    let dir = TestDir::new("tls-loggen");
    let certs = make(dir.path(), "a");
    let (server, ports) = tls_server(&dir, &certs, None);
    for _ in 0..2 {
        run_checked(
            Command::new("loggen")
                .args(["-U", "-P", "-n", "2000", "-r", "100000", "127.0.0.1"])
                .arg(ports.syslog_tls.to_string()),
        );
    }
    wait_count(&server, r#"{app="prg00000"}"#, 4000);
    let metrics = parse_metrics(&server.metrics());
    assert_eq!(
        metric_sum(
            &metrics,
            "shardlog_ingested_lines_total",
            &[("protocol", "syslog_tls")]
        ),
        4000.0
    );
}

#[test]
fn client_certificates_are_required_when_a_client_ca_is_given() {
    if !have_openssl() {
        return;
    }
    let Some(lines) = messages("mtls", 500) else {
        return;
    };
    let dir = TestDir::new("tls-mtls");
    let certs = make(dir.path(), "a");
    let stranger = make(dir.path(), "stranger");
    let (server, ports) = tls_server(&dir, &certs, Some(&certs.ca));

    // A client with a certificate of the CA gets in.
    let with_cert = Some((certs.client_cert.as_path(), certs.client_key.as_path()));
    assert!(openssl_send(ports.syslog_tls, &certs.ca, with_cert, &lines));
    wait_count(&server, r#"{app="mtls"}"#, 500);

    // Without a certificate, or with one of another CA, the handshake fails: nothing stored.
    let foreign = Some((
        stranger.client_cert.as_path(),
        stranger.client_key.as_path(),
    ));
    let refused = messages("refused", 10).unwrap();
    openssl_send(ports.syslog_tls, &certs.ca, None, &refused);
    openssl_send(ports.syslog_tls, &certs.ca, foreign, &refused);
    let failures = || {
        metric_sum(
            &parse_metrics(&server.metrics()),
            "shardlog_tls_handshake_failures_total",
            &[],
        )
    };
    let deadline = Instant::now() + Duration::from_millis(INGEST_WAIT_MS);
    while failures() < 2.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(failures(), 2.0, "{}", server.output());
    assert_eq!(server.index_stats(r#"{app="refused"}"#).entries, 0);

    // RELP over TLS with librelp (gnutls), presenting the client certificate.
    let Some(client) = relp_send() else { return };
    let relp_lines = messages("relptls", 1000).unwrap();
    let ca = certs.ca.display().to_string();
    let cert = certs.client_cert.display().to_string();
    let key = certs.client_key.display().to_string();
    let sent = send(
        &client,
        ports.relp_tls,
        &["--tls", &ca, &cert, &key],
        &relp_lines,
    );
    assert!(sent.ok, "relp_send over TLS failed: {}", sent.stderr);
    // Every message was answered, so every line is there already.
    assert_eq!(server.index_stats(r#"{app="relptls"}"#).entries, 1000);
    // Without a client certificate librelp cannot get in.
    let sent = send(
        &client,
        ports.relp_tls,
        &["--tls-lib", "openssl", "--tls", &ca],
        &relp_lines[..5],
    );
    assert!(!sent.ok, "a RELP client without a certificate got in");
}

#[test]
fn relp_over_tls_without_client_certificates() {
    let Some(client) = relp_send() else { return };
    let Some(lines) = messages("relpserverauth", 2000) else {
        return;
    };
    let dir = TestDir::new("tls-relp");
    let certs = make(dir.path(), "a");
    let (server, ports) = tls_server(&dir, &certs, None);
    let ca = certs.ca.display().to_string();
    let sent = send(
        &client,
        ports.relp_tls,
        &["--tls-lib", "openssl", "--tls", &ca],
        &lines,
    );
    assert!(sent.ok, "relp_send over TLS failed: {}", sent.stderr);
    assert_eq!(
        server.index_stats(r#"{app="relpserverauth"}"#).entries,
        2000
    );
    // A client that trusts another CA refuses our certificate.
    let other = make(dir.path(), "other");
    let other_ca = other.ca.display().to_string();
    let sent = send(
        &client,
        ports.relp_tls,
        &["--tls-lib", "openssl", "--tls", &other_ca],
        &lines[..5],
    );
    assert!(
        !sent.ok,
        "a client trusting another CA accepted our certificate"
    );
}

#[test]
fn a_renewed_certificate_is_used_by_the_next_connection() {
    if !have_openssl() {
        return;
    }
    let dir = TestDir::new("tls-reload");
    let old = make(dir.path(), "old");
    let (server, ports) = tls_server(&dir, &old, None);
    let before = messages("beforerenewal", 10).unwrap();
    assert!(openssl_send(ports.syslog_tls, &old.ca, None, &before));
    wait_count(&server, r#"{app="beforerenewal"}"#, 10);

    // The renewal: a certificate of another CA, written beside and renamed over the files
    // the server was started with, as certbot and most renewal tools do.
    let new = make(dir.path(), "new");
    for (from, to) in [
        (&new.server_cert, &old.server_cert),
        (&new.server_key, &old.server_key),
    ] {
        let staged = to.with_extension("staged");
        std::fs::copy(from, &staged).unwrap();
        std::fs::rename(&staged, to).unwrap();
    }
    let after = messages("afterrenewal", 10).unwrap();
    // A client that trusts only the new CA now gets in; one that trusts only the old does not.
    assert!(openssl_send(ports.syslog_tls, &new.ca, None, &after));
    wait_count(&server, r#"{app="afterrenewal"}"#, 10);
    assert!(!openssl_send(ports.syslog_tls, &old.ca, None, &after[..1]));
    let metrics = parse_metrics(&server.metrics());
    assert!(metric_sum(&metrics, "shardlog_tls_reloads_total", &[]) >= 1.0);

    // A broken renewal (a key that is not PEM) keeps the certificate in use.
    std::fs::write(&old.server_key, "not a key").unwrap();
    let still = messages("brokenrenewal", 10).unwrap();
    // Each core keeps the certificate it last loaded: the renewed one if it took a handshake
    // since the renewal, else the first one. Either way the listener still serves.
    let port = ports.syslog_tls;
    // Which core takes a connection is the kernel's choice, so the client tries both CAs a
    // few times.
    let served = (0..5).any(|_| {
        openssl_send(port, &new.ca, None, &still) || openssl_send(port, &old.ca, None, &still)
    });
    assert!(
        served,
        "no core served a certificate after a broken renewal"
    );
    wait_count(&server, r#"{app="brokenrenewal"}"#, 10);
    let metrics = parse_metrics(&server.metrics());
    assert!(metric_sum(&metrics, "shardlog_tls_reload_failures_total", &[]) >= 1.0);
}

#[test]
fn tls_listeners_refuse_to_start_without_usable_files() {
    let dir = TestDir::new("tls-refuse");
    let certs = make(dir.path(), "a");
    let port = free_tcp_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let data_dir = dir.data_dir().display().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--data-dir",
            &data_dir,
            "--http-addr",
            "127.0.0.1:0",
            "--syslog-tcp-addr",
            "",
            "--syslog-udp-addr",
            "",
        ];
        args.extend_from_slice(extra);
        common::server::run_to_exit(&args, 20_000)
    };
    let (status, out) = run(&["--syslog-tls-addr", &addr]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("tls_cert_file"), "{out}");
    let cert = certs.server_cert.display().to_string();
    let wrong_key = certs.client_key.display().to_string();
    let (status, out) = run(&[
        "--relp-tls-addr",
        &addr,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &wrong_key,
    ]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(
        out.contains("do not make a usable certificate and key"),
        "{out}"
    );
}
