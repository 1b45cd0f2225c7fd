//! A real Pebble ACME CA (Let's Encrypt's test CA, Debian package `pebble` 2.4) with
//! pebble-challtestsrv as its DNS server, as child processes killed on `Drop` (the pattern of
//! instant-acme's `tests/pebble.rs`).
//!
//! challtestsrv answers every A query with 127.0.0.1 unless told otherwise (`add_a`), so any test
//! domain validates against a server on loopback; DNS-01 TXT records are set with `set_txt`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use super::process::Process;
use super::{TestCa, free_port};

const PEBBLE_BIN: &str = "/usr/bin/pebble";
const CHALLTESTSRV_BIN: &str = "/usr/bin/pebble-challtestsrv";
/// Pebble 2.6 (Debian trixie), which has ACME Renewal Information (RFC 9773): unpacked by
/// `scripts/install-test-deps.sh` without touching the system's apt sources.
const PEBBLE_ARI_BIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/target/test-tools/pebble-2.6/usr/bin/pebble"
);
const ARI_INSTALL_HINT: &str =
    "run scripts/install-test-deps.sh, which unpacks Debian trixie's pebble 2.6 there";
/// Pebble 2.10 and its challtestsrv (Debian forky), which have profiles, IP identifiers,
/// TLS-ALPN-01, dns-persist-01, dns-account-01 and ARI with `alreadyReplaced`.
const PEBBLE_2_10_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/target/test-tools/pebble-2.10/usr/bin"
);
const PEBBLE_2_10_INSTALL_HINT: &str =
    "run scripts/install-test-deps.sh, which unpacks Debian forky's pebble 2.10 there";
const INSTALL_HINT: &str = "install it with `apt-get install -y pebble` (Debian's package gives \
                            /usr/bin/pebble and /usr/bin/pebble-challtestsrv)";

/// How long `Pebble::start` waits for the directory to answer, and how often it looks.
const START_TIMEOUT: Duration = Duration::from_secs(15);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// One probe must not eat the whole start-up budget when a stranger holds the port.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// A port from `free_port` can be taken by another process before the child binds it: start
/// again on new ports when that happens.
const START_ATTEMPTS: usize = 3;

/// What Pebble (which then exits) and challtestsrv (which does not) log when a port is taken.
const BIND_FAILED: &str = "bind: address already in use";

/// Pebble 2.4 logs this once per issued certificate (when finalize completes), e.g.
/// `Pebble 2026/11/22 05:20:50 Issued certificate serial 5605efe28c9f306a for order hEo02S2P574uIv8j3ZSBlR89izPe48AuSPjGj8rSszY`
const ISSUED_MARKER: &str = "Issued certificate serial ";
/// Pebble 2.4 logs this once per order created by new-order (`POST /order-plz`), e.g.
/// `Pebble 2026/11/22 05:20:50 Added order "hEo02S2P574uIv8j3ZSBlR89izPe48AuSPjGj8rSszY" to the db`
/// (followed by `There are now N orders in the db`, not counted: one marker per order).
const ORDER_MARKER: &str = "Added order \"";

/// How a test wants its Pebble configured. `Default` is a plain CA on fresh ports.
#[derive(Debug, Default, Clone)]
pub struct PebbleOptions {
    /// The port Pebble's validator dials for HTTP-01 (Pebble's `httpPort`): certfleet's HTTP-01
    /// listener must be on it. `None` picks a free port.
    pub http_port: Option<u16>,
    /// External account binding keys: (kid, base64url HMAC key). Non-empty makes EAB required.
    pub eab_keys: Vec<(String, String)>,
    /// Names Pebble refuses with `rejectedIdentifier` (`domainBlocklist`).
    pub blocklist: Vec<String>,
    /// Lifetime of issued certificates in seconds (`certificateValidityPeriod`).
    pub validity_secs: Option<u64>,
    /// Percentage of requests Pebble rejects with `badNonce` (`PEBBLE_WFE_NONCEREJECT`).
    pub nonce_reject_percent: u8,
    /// Run Pebble 2.6, which serves ACME Renewal Information (ARI), instead of 2.4.
    pub ari: bool,
    /// Run Pebble 2.10 and its challtestsrv (profiles, IP identifiers, TLS-ALPN-01,
    /// dns-persist-01, dns-account-01) instead of 2.4. Its profiles are `profiles`, or when that
    /// is empty `default` (`validity_secs`, else 90 days) and `shortlived` (6 days).
    pub v2_10: bool,
    /// Pebble 2.10's profiles: (name, validity in seconds).
    pub profiles: Vec<(String, u64)>,
    /// The DNS server Pebble resolves and validates DNS-01 through (`-dnsserver`), e.g. a BIND
    /// started by the test. `None`: its challtestsrv.
    pub dns_server: Option<String>,
}

/// A running Pebble and its pebble-challtestsrv. Both are killed and reaped on `Drop`.
#[derive(Debug)]
pub struct Pebble {
    pebble: Process,
    challtestsrv: Process,
    ports: Ports,
    ca: TestCa,
    client: reqwest::Client,
    _dir: TempDir,
}

#[derive(Debug, Clone, Copy)]
struct Ports {
    listen: u16,
    management: u16,
    http: u16,
    tls: u16,
    dns: u16,
    challtestsrv_management: u16,
}

impl Pebble {
    /// Starts challtestsrv and Pebble on free loopback ports and waits until Pebble's directory
    /// and management API answer. Panics (never skips) if the binaries are missing.
    pub async fn start(opts: PebbleOptions) -> Pebble {
        if opts.ari {
            assert!(
                Path::new(PEBBLE_ARI_BIN).exists(),
                "{PEBBLE_ARI_BIN} is missing: {ARI_INSTALL_HINT}"
            );
        }
        if opts.v2_10 {
            for bin in ["pebble", "pebble-challtestsrv"] {
                let path = format!("{PEBBLE_2_10_DIR}/{bin}");
                assert!(
                    Path::new(&path).exists(),
                    "{path} is missing: {PEBBLE_2_10_INSTALL_HINT}"
                );
            }
        }
        for bin in [PEBBLE_BIN, CHALLTESTSRV_BIN] {
            assert!(Path::new(bin).exists(), "{bin} is missing: {INSTALL_HINT}");
        }
        let ca = TestCa::new();
        let client = ca.reqwest_client();
        let dir = tempfile::Builder::new()
            .prefix("certfleet-pebble-")
            .tempdir()
            .expect("create temporary directory for Pebble");
        let http = opts.http_port.unwrap_or_else(free_port);

        for attempt in 1..=START_ATTEMPTS {
            let ports = Ports {
                listen: free_port(),
                management: free_port(),
                http,
                tls: free_port(),
                dns: free_port(),
                challtestsrv_management: free_port(),
            };
            let config_path = dir.path().join("pebble-config.json");
            let config = pebble_config(&opts, &ports, &ca);
            std::fs::write(&config_path, config.to_string()).expect("write Pebble config");

            let mut challtestsrv = spawn_challtestsrv(&opts, &ports);
            let mut pebble = spawn_pebble(&opts, &ports, &config_path);
            match wait_ready(&client, &ports, &mut pebble, &mut challtestsrv).await {
                Ok(()) => {
                    return Pebble {
                        pebble,
                        challtestsrv,
                        ports,
                        ca,
                        client,
                        _dir: dir,
                    };
                }
                Err(why) => {
                    let output = format!("{}{}", pebble.log(), challtestsrv.log());
                    if attempt < START_ATTEMPTS && output.contains(BIND_FAILED) {
                        continue; // A port was taken meanwhile: the children die on drop.
                    }
                    panic!(
                        "Pebble did not start ({why}, attempt {attempt})\n\
                         --- pebble output ---\n{}\n--- pebble-challtestsrv output ---\n{}",
                        pebble.log(),
                        challtestsrv.log(),
                    );
                }
            }
        }
        unreachable!("the last attempt returns or panics");
    }

    /// The ACME directory, e.g. `https://127.0.0.1:PORT/dir`.
    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.ports.listen)
    }

    /// The port Pebble's validator dials for HTTP-01.
    pub fn http_port(&self) -> u16 {
        self.ports.http
    }

    /// The port Pebble's validator dials for TLS-ALPN-01.
    pub fn tls_port(&self) -> u16 {
        self.ports.tls
    }

    /// challtestsrv's DNS server (UDP and TCP), the resolver Pebble uses: point a DNS-01
    /// propagation check here.
    pub fn dns_server(&self) -> String {
        format!("127.0.0.1:{}", self.ports.dns)
    }

    /// challtestsrv's management API (`http://127.0.0.1:PORT`), for in-process DNS API fakes
    /// that publish their TXT records there (`/set-txt`, `/clear-txt`).
    pub fn challtestsrv_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.challtestsrv_management)
    }

    /// The CA behind Pebble's own HTTPS (not the issuing root): certfleet's
    /// `acme.caCertificates` = `ca().ca_pem_path()`.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// Pebble's issuing root (new at every start), from the management API.
    pub async fn root_pem(&self) -> String {
        self.management_get("/roots/0").await
    }

    /// The intermediate that signs leaves, from the management API.
    pub async fn intermediate_pem(&self) -> String {
        self.management_get("/intermediates/0").await
    }

    /// How many certificates Pebble has issued so far (counted in its log, see `ISSUED_MARKER`).
    pub fn issued_count(&self) -> usize {
        self.pebble.log().matches(ISSUED_MARKER).count()
    }

    /// How many orders Pebble has created so far (counted in its log, see `ORDER_MARKER`).
    pub fn orders_count(&self) -> usize {
        self.pebble.log().matches(ORDER_MARKER).count()
    }

    /// Pebble's captured stdout and stderr so far, followed by challtestsrv's.
    pub fn log(&self) -> String {
        format!(
            "{}--- pebble-challtestsrv ---\n{}",
            self.pebble.log(),
            self.challtestsrv.log()
        )
    }

    /// Makes challtestsrv answer A queries for `host` with `ip` instead of 127.0.0.1.
    pub async fn add_a(&self, host: &str, ip: &str) {
        self.challtestsrv_post("/add-a", json!({"host": fqdn(host), "addresses": [ip]}))
            .await;
    }

    /// Sets the TXT record of `host` (e.g. `_acme-challenge.x.example.com`; the trailing dot
    /// challtestsrv requires is added when missing).
    pub async fn set_txt(&self, host: &str, value: &str) {
        self.challtestsrv_post("/set-txt", json!({"host": fqdn(host), "value": value}))
            .await;
    }

    /// Removes the TXT record of `host`.
    pub async fn clear_txt(&self, host: &str) {
        self.challtestsrv_post("/clear-txt", json!({"host": fqdn(host)}))
            .await;
    }

    /// Pebble's revocation status of the certificate with `serial` (hex, as certfleet reports
    /// it): `"Valid"` or `"Revoked"`, from the management API's `/cert-status-by-serial/`.
    pub async fn cert_status(&self, serial: &str) -> String {
        let body = self
            .management_get(&format!("/cert-status-by-serial/{serial}"))
            .await;
        let status: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("cert-status-by-serial/{serial}: {e}: {body}"));
        status["Status"]
            .as_str()
            .unwrap_or_else(|| panic!("no Status in {body}"))
            .to_owned()
    }

    async fn management_get(&self, path: &str) -> String {
        let url = format!("https://127.0.0.1:{}{path}", self.ports.management);
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status();
        let body = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: read body: {e}"));
        assert!(status.is_success(), "GET {url}: {status}: {body}");
        body
    }

    async fn challtestsrv_post(&self, path: &str, body: Value) {
        let url = format!(
            "http://127.0.0.1:{}{path}",
            self.ports.challtestsrv_management
        );
        let response = self
            .client
            .post(&url)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url} {body}: {e}"));
        let status = response.status();
        assert!(status.is_success(), "POST {url} {body}: {status}");
    }
}

fn fqdn(host: &str) -> String {
    if host.ends_with('.') {
        host.to_owned()
    } else {
        format!("{host}.")
    }
}

fn pebble_config(opts: &PebbleOptions, ports: &Ports, ca: &TestCa) -> Value {
    let mut pebble = json!({
        "listenAddress": format!("127.0.0.1:{}", ports.listen),
        "managementListenAddress": format!("127.0.0.1:{}", ports.management),
        "certificate": ca.leaf_cert_path(),
        "privateKey": ca.leaf_key_path(),
        "httpPort": ports.http,
        "tlsPort": ports.tls,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": !opts.eab_keys.is_empty(),
        "externalAccountMACKeys": opts.eab_keys.iter().cloned().collect::<BTreeMap<_, _>>(),
        "domainBlocklist": opts.blocklist,
    });
    if let Some(secs) = opts.validity_secs {
        pebble["certificateValidityPeriod"] = json!(secs);
    }
    if opts.v2_10 {
        let profiles = if opts.profiles.is_empty() {
            vec![
                (
                    "default".to_owned(),
                    opts.validity_secs.unwrap_or(7_776_000),
                ),
                ("shortlived".to_owned(), 518_400),
            ]
        } else {
            opts.profiles.clone()
        };
        pebble["profiles"] = profiles
            .into_iter()
            .map(|(name, secs)| {
                let description = format!("{secs} s");
                (
                    name,
                    json!({"description": description, "validityPeriod": secs}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    json!({ "pebble": pebble })
}

fn spawn_challtestsrv(opts: &PebbleOptions, ports: &Ports) -> Process {
    let mut command = if opts.v2_10 {
        // 2.10 renamed `-dns01` and added a DoH listener on :8443 by default.
        let mut command = Command::new(format!("{PEBBLE_2_10_DIR}/pebble-challtestsrv"));
        command.args(["-doh", "", "-dnsserver"]);
        command
    } else {
        let mut command = Command::new(CHALLTESTSRV_BIN);
        command.arg("-dns01");
        command
    };
    command
        .arg(format!("127.0.0.1:{}", ports.dns))
        .arg("-management")
        .arg(format!("127.0.0.1:{}", ports.challtestsrv_management))
        .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
        .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""]);
    Process::spawn("pebble-challtestsrv", &mut command)
        .unwrap_or_else(|e| panic!("spawn pebble-challtestsrv: {e}; {INSTALL_HINT}"))
}

fn spawn_pebble(opts: &PebbleOptions, ports: &Ports, config_path: &Path) -> Process {
    let mut command = if opts.v2_10 {
        Command::new(format!("{PEBBLE_2_10_DIR}/pebble"))
    } else {
        Command::new(if opts.ari { PEBBLE_ARI_BIN } else { PEBBLE_BIN })
    };
    command
        .arg("-config")
        .arg(config_path)
        .arg("-dnsserver")
        .arg(
            opts.dns_server
                .clone()
                .unwrap_or_else(|| format!("127.0.0.1:{}", ports.dns)),
        )
        // Validate at once instead of sleeping up to 15 s (PEBBLE_VA_NOSLEEP).
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env(
            "PEBBLE_WFE_NONCEREJECT",
            opts.nonce_reject_percent.to_string(),
        )
        // Never reuse an authorization: every order goes through validation.
        .env("PEBBLE_AUTHZREUSE", "0")
        // A developer's shell must not change what the tests see.
        .env_remove("PEBBLE_VA_ALWAYS_VALID")
        .env_remove("PEBBLE_CHAIN_LENGTH")
        .env_remove("PEBBLE_ALTERNATE_ROOTS");
    Process::spawn("pebble", &mut command)
        .unwrap_or_else(|e| panic!("spawn pebble: {e}; {INSTALL_HINT}"))
}

/// Polls until Pebble's directory and management API and challtestsrv's management API
/// answer, a child exits, or `START_TIMEOUT` passes.
async fn wait_ready(
    client: &reqwest::Client,
    ports: &Ports,
    pebble: &mut Process,
    challtestsrv: &mut Process,
) -> Result<(), String> {
    let directory = format!("https://127.0.0.1:{}/dir", ports.listen);
    let roots = format!("https://127.0.0.1:{}/roots/0", ports.management);
    let challtestsrv_addr = format!("127.0.0.1:{}", ports.challtestsrv_management);
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        for process in [&mut *pebble, &mut *challtestsrv] {
            if let Some(status) = process.exit_status() {
                return Err(format!("{} exited early with {status}", process.name()));
            }
            // challtestsrv logs a failed bind and keeps running: without this check it would
            // wait out START_TIMEOUT, or its port would answer for someone else.
            if process.log().contains(BIND_FAILED) {
                return Err(format!("{} could not bind a port", process.name()));
            }
        }
        let Err(last_error) = probe(client, &directory, &roots, &challtestsrv_addr).await else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "not ready after {START_TIMEOUT:?}; last error: {last_error}"
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn probe(
    client: &reqwest::Client,
    directory: &str,
    roots: &str,
    challtestsrv_addr: &str,
) -> Result<(), String> {
    tokio::net::TcpStream::connect(challtestsrv_addr)
        .await
        .map_err(|e| format!("connect to challtestsrv at {challtestsrv_addr}: {e}"))?;
    let dir: Value = client
        .get(directory)
        .timeout(PROBE_TIMEOUT)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("GET {directory}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("GET {directory}: body: {e}"))?;
    if dir.get("newOrder").is_none() {
        return Err(format!("GET {directory}: no newOrder in {dir}"));
    }
    client
        .get(roots)
        .timeout(PROBE_TIMEOUT)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("GET {roots}: {e}"))?;
    Ok(())
}
