//! A real BIND 9 (`named -g`) for the RFC 2136 tests: a primary for the given zones on a free
//! loopback port, accepting TXT updates below them signed with a TSIG key (hmac-sha256), as
//! ../shared/TESTING.md describes. Killed on `Drop`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tempfile::TempDir;

use crate::common::free_port;
use crate::common::process::Process;

const NAMED_BIN: &str = "/usr/sbin/named";
const INSTALL_HINT: &str = "install BIND with `apt-get install -y bind9 bind9-utils dnsutils` \
                            (scripts/install-test-deps.sh does)";
/// The TSIG key's name in named.conf.
pub const KEY_NAME: &str = "acme-key";

/// A running `named` serving `zones`.
#[derive(Debug)]
pub struct Bind {
    named: Process,
    port: u16,
    secret: String,
    _dir: TempDir,
}

impl Bind {
    /// Starts named for `zones` (each with an SOA, an NS and `* A 127.0.0.1`) and waits until
    /// it answers. Panics (never skips) when BIND is not installed.
    pub async fn start(zones: &[&str]) -> Bind {
        assert!(
            Path::new(NAMED_BIN).exists(),
            "{NAMED_BIN} is missing: {INSTALL_HINT}"
        );
        let mut attempt = 1;
        loop {
            let mut bind = Self::spawn(zones);
            match bind.wait_ready(zones[0]).await {
                Ok(()) => return bind,
                // The free port was taken meanwhile: try another.
                Err(_) if attempt < 3 && bind.log().contains("address in use") => attempt += 1,
                Err(why) => panic!(
                    "named did not start: {why}\n--- named output ---\n{}",
                    bind.log()
                ),
            }
        }
    }

    fn spawn(zones: &[&str]) -> Bind {
        let dir = tempfile::Builder::new()
            .prefix("certfleet-bind-")
            .tempdir()
            .expect("create a temporary directory for BIND");
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).expect("random TSIG key");
        let secret = base64::engine::general_purpose::STANDARD.encode(key);
        let port = free_port();
        let conf = write_config(dir.path(), port, &secret, zones);
        let named = Process::spawn(
            "named",
            Command::new(NAMED_BIN)
                .args(["-g", "-n", "1", "-c"])
                .arg(&conf),
        )
        .unwrap_or_else(|e| panic!("spawn named: {e}; {INSTALL_HINT}"));
        Bind {
            named,
            port,
            secret,
            _dir: dir,
        }
    }

    /// `127.0.0.1:PORT` (UDP and TCP).
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The TSIG secret, base64.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// named's output so far.
    pub fn log(&self) -> String {
        self.named.log()
    }

    async fn wait_ready(&mut self, zone: &str) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let server = self.addr().parse().expect("address");
        loop {
            if let Some(status) = self.named.exit_status() {
                return Err(format!("named exited with {status}"));
            }
            let answer = certfleet::dns::wire::query(
                server,
                zone,
                hickory_proto::rr::RecordType::SOA,
                Duration::from_millis(300),
            )
            .await;
            if answer.is_ok_and(|a| !a.answers.is_empty()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("no SOA answer after 20s".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn write_config(dir: &Path, port: u16, secret: &str, zones: &[&str]) -> std::path::PathBuf {
    let d = dir.display();
    let mut conf = format!(
        r#"options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    allow-query {{ any; }};
    notify no;
    dnssec-validation no;
}};
controls {{ }};
key "{KEY_NAME}" {{
    algorithm hmac-sha256;
    secret "{secret}";
}};
"#
    );
    for zone in zones {
        let file = dir.join(format!("{zone}.db"));
        std::fs::write(
            &file,
            format!(
                "$TTL 60\n@ IN SOA ns1.{zone}. hostmaster.{zone}. 1 60 60 600 60\n\
                 @ IN NS ns1.{zone}.\nns1 IN A 127.0.0.1\n@ IN A 127.0.0.1\n* IN A 127.0.0.1\n"
            ),
        )
        .expect("write the zone file");
        conf.push_str(&format!(
            "zone \"{zone}\" {{\n    type primary;\n    file \"{}\";\n    \
             update-policy {{ grant {KEY_NAME} zonesub TXT; }};\n}};\n",
            file.display()
        ));
    }
    let path = dir.join("named.conf");
    std::fs::write(&path, conf).expect("write named.conf");
    path
}
