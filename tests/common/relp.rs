//! The RELP client of the tests: `tests/clients/relp_send.c`, built against librelp (the
//! library of rsyslog's `omrelp`, Debian package `librelp-dev`) once per test binary.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::tools::{find_program, missing};

/// The built client, or `None` (after the CI rule) when librelp or a C compiler is missing.
pub fn relp_send() -> Option<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        if find_program("cc").is_none() {
            return Err("no C compiler `cc` (Debian package gcc)".into());
        }
        if !std::path::Path::new("/usr/include/librelp.h").is_file() {
            return Err("librelp is not installed (Debian package librelp-dev)".into());
        }
        let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/relp_send.c");
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("relp_send-{}", std::process::id()));
        let status = Command::new("cc")
            .args(["-O1", "-Wall", "-o"])
            .arg(&out)
            .arg(&source)
            .arg("-lrelp")
            .status()
            .map_err(|e| format!("cannot run cc: {e}"))?;
        if !status.success() {
            return Err(format!("cc could not build {}", source.display()));
        }
        Ok(out)
    });
    match built {
        Ok(path) => Some(path.clone()),
        Err(why) => {
            missing(why);
            None
        }
    }
}

/// What one run of the client did.
pub struct Sent {
    /// Exit status 0: every message was answered and so was the session's close.
    pub ok: bool,
    /// Messages the client sent (its stdout), when it finished.
    pub sent: Option<u64>,
    pub stderr: String,
}

/// Sends `messages` to `port` on 127.0.0.1, one RELP `syslog` command each, with `args`
/// (`--window N`, `--tls-lib L`, `--tls CA [CERT KEY]`).
pub fn send(client: &PathBuf, port: u16, args: &[&str], messages: &[String]) -> Sent {
    let mut child = Command::new(client)
        .arg("127.0.0.1")
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run relp_send");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        let mut text = messages.join("\n");
        text.push('\n');
        // A refused session ends the client early: a broken pipe here is its answer.
        let _ = stdin.write_all(text.as_bytes());
    }
    let output = child.wait_with_output().expect("wait for relp_send");
    Sent {
        ok: output.status.success(),
        sent: String::from_utf8_lossy(&output.stdout).trim().parse().ok(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
