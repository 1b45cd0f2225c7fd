//! A real SMTP server for the notification tests: aiosmtpd (PyPI), run by
//! `tests/notify/smtp_server.py` as a child process killed on `Drop`. It speaks plain SMTP,
//! STARTTLS (required before MAIL) or implicit TLS with a `TestCa` leaf for `localhost` and
//! 127.0.0.1, and requires AUTH PLAIN or LOGIN when given credentials. Every message it accepts
//! is recorded, and read back as a `Mail`.
//!
//! Needs aiosmtpd under target/test-tools/python (`scripts/install-test-deps.sh` installs
//! tests/notify/requirements.txt there): without it these tests FAIL with that hint, never skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tempfile::TempDir;

use super::TestCa;
use super::process::Process;

/// What to run when the Python packages are missing.
pub const INSTALL_HINT: &str = "run scripts/install-test-deps.sh: it installs \
                                tests/notify/requirements.txt (aiosmtpd, standardwebhooks) \
                                into target/test-tools/python";

/// Where scripts/install-test-deps.sh installs tests/notify/requirements.txt.
const PYTHONPATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-tools/python");
const SERVER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/notify/smtp_server.py");

/// How long `SmtpServer::start` waits for `ready <port>`, and how often it looks.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// After the server exits, how long its last output may take to reach the log.
const EXIT_GRACE: Duration = Duration::from_millis(200);

/// How the server speaks TLS (`SmtpOptions::tls`; `None` is plain SMTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// STARTTLS offered (RFC 3207) and required before MAIL.
    StartTls,
    /// TLS from the first byte (RFC 8314 "implicit TLS", the submissions port's way).
    Implicit,
}

/// How a test wants its SMTP server. `Default` is plain SMTP without AUTH.
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    /// `None`: no TLS at all.
    pub tls: Option<SmtpTls>,
    /// (user, password): AUTH PLAIN or LOGIN required before MAIL, offered only under TLS
    /// when TLS is on.
    pub credentials: Option<(String, String)>,
}

/// One message the server accepted, as `smtp_server.py` recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Mail {
    /// The envelope sender (MAIL FROM).
    pub mail_from: String,
    /// The envelope recipients (RCPT TO), in order.
    pub rcpt_tos: Vec<String>,
    /// The decoded `Subject` header; empty when the message has none.
    pub subject: String,
    /// The text/plain part, transfer encoding and charset undone; empty when there is none.
    pub body: String,
    /// The message's headers, decoded, names lowercased; a name sent more than once keeps
    /// every value, one per line.
    pub headers: BTreeMap<String, String>,
    /// Whether the session was under TLS (after STARTTLS, or implicit) when it sent this.
    pub tls: bool,
    /// Whether the session had authenticated when it sent this.
    pub authenticated: bool,
}

/// A running aiosmtpd on 127.0.0.1; killed and reaped on `Drop`.
#[derive(Debug)]
pub struct SmtpServer {
    process: Process,
    port: u16,
    out: PathBuf,
    ca: TestCa,
    _dir: TempDir,
}

impl SmtpServer {
    /// Starts the server on a free loopback port and waits until it listens. Panics (never
    /// skips) when python3 or aiosmtpd is missing, or when the server does not start.
    pub async fn start(options: SmtpOptions) -> SmtpServer {
        let aiosmtpd = Path::new(PYTHONPATH).join("aiosmtpd");
        assert!(
            aiosmtpd.is_dir(),
            "{} is missing: {INSTALL_HINT}",
            aiosmtpd.display()
        );
        let ca = TestCa::new();
        let dir = tempfile::Builder::new()
            .prefix("certfleet-smtp-")
            .tempdir()
            .expect("create temporary directory for the SMTP server");
        let out = dir.path().join("messages.jsonl");

        let mut command = Command::new("python3");
        command
            .arg(SERVER_SCRIPT)
            .arg("--port=0")
            .arg("--out")
            .arg(&out)
            .env("PYTHONPATH", PYTHONPATH)
            // Only the pinned packages: nothing from the user's own site-packages.
            .env("PYTHONNOUSERSITE", "1");
        if let Some(tls) = options.tls {
            command
                .arg("--tls-cert")
                .arg(ca.leaf_cert_path())
                .arg("--tls-key")
                .arg(ca.leaf_key_path());
            if tls == SmtpTls::Implicit {
                command.arg("--implicit-tls");
            }
        }
        if let Some((user, password)) = &options.credentials {
            command
                .arg("--user")
                .arg(user)
                .arg("--password")
                .arg(password);
        }
        let mut process = Process::spawn("aiosmtpd", &mut command)
            .unwrap_or_else(|e| panic!("cannot run python3 {SERVER_SCRIPT}: {e}; {INSTALL_HINT}"));
        let port = wait_ready(&mut process).await;
        SmtpServer {
            process,
            port,
            out,
            ca,
            _dir: dir,
        }
    }

    /// The port it listens on, on 127.0.0.1 (and so `localhost`, the leaf's name).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA certificate (PEM file) a client must trust for the server's TLS.
    pub fn ca_file(&self) -> &Path {
        self.ca.ca_pem_path()
    }

    /// Every message accepted so far, in the order they arrived.
    pub fn messages(&self) -> Vec<Mail> {
        let text = match std::fs::read_to_string(&self.out) {
            Ok(text) => text,
            // Nothing was received yet: the server creates the file with the first message.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("read {}: {e}", self.out.display()),
        };
        text.split_inclusive('\n')
            // A line still being written has no newline yet: it is read next time.
            .filter(|line| line.ends_with('\n'))
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!("{}: unreadable record {line:?}: {e}", self.out.display())
                })
            })
            .collect()
    }

    /// Waits until at least `n` messages were accepted and returns all of them; panics after
    /// `timeout` with the ones it has and the server's log.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "the SMTP server received {} of {n} messages in {timeout:?}: {messages:#?}\n\
                 --- aiosmtpd output ---\n{}",
                messages.len(),
                self.process.log()
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// Waits for the server's `ready <port>` line and returns the port; panics with its output
/// when it exits first or does not get there in time.
async fn wait_ready(process: &mut Process) -> u16 {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut exited: Option<(ExitStatus, Instant)> = None;
    loop {
        let log = process.log();
        if let Some(port) = log.lines().find_map(ready_port) {
            return port;
        }
        if exited.is_none() {
            exited = process.exit_status().map(|status| (status, Instant::now()));
        }
        let gave_up = match exited {
            Some((_, at)) => at.elapsed() > EXIT_GRACE,
            None => Instant::now() > deadline,
        };
        assert!(
            !gave_up,
            "aiosmtpd ({SERVER_SCRIPT}) did not start (exited: {:?}); it printed:\n{log}\n\
             (a missing package: {INSTALL_HINT})",
            exited.map(|(status, _)| status)
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The port of a `ready <port>` line.
fn ready_port(line: &str) -> Option<u16> {
    line.strip_prefix("ready ")?.trim().parse().ok()
}
