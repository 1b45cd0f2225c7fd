//! `certfleet fetch --format p12` and `--combined` against a real Pebble: the PKCS#12 file is
//! read by OpenSSL 3 (`openssl pkcs12`) and Java's `keytool`, the key inside matches the leaf,
//! a wrong password is refused; `combined.pem` is the key then the full chain, 0600; a 304
//! leaves both alone, a renewal rewrites them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;
use tempfile::TempDir;

use crate::common;
use common::service::{ADMIN_KEY, Service};
use common::{Pebble, PebbleOptions};

const PASSWORD: &str = "correct horse battery";

/// Runs the real `certfleet fetch ARGS`, credentials and proxies from the test's environment
/// removed; `--wait 60s` bounds it.
async fn fetch(args: Vec<String>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_certfleet"));
    command.arg("fetch").args(args).args(["--wait", "60s"]);
    for name in [
        "CERTFLEET_API_KEY",
        "CERTFLEET_TOKEN",
        "CERTFLEET_CONFIG",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
    ] {
        command.env_remove(name);
    }
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the blocking task")
        .expect("run certfleet fetch")
}

/// Runs a tool the test needs (openssl, keytool): a missing one fails the test with a hint.
fn tool(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} is needed (scripts/install-test-deps.sh installs it): {e}")
        })
}

fn ok(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

struct Dir {
    tmp: TempDir,
}

impl Dir {
    fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("certfleet-formats-")
            .tempdir()
            .expect("tempdir");
        Self { tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn out(&self, name: &str) -> PathBuf {
        self.path("out").join(name)
    }

    fn s(path: &Path) -> String {
        path.display().to_string()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        Self::s(&path)
    }

    fn exec_runs(&self) -> usize {
        std::fs::read_to_string(self.path("marker"))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }

    fn mode(&self, name: &str) -> u32 {
        std::fs::metadata(self.out(name))
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }
}

/// The public key (PEM) of the private key in `key_file`, by openssl.
fn public_of_key(key_file: &str) -> String {
    ok(
        &tool("openssl", &["pkey", "-in", key_file, "-pubout"]),
        "openssl pkey",
    )
}

/// The public key (PEM) of the first certificate in `cert_file`, by openssl.
fn public_of_cert(cert_file: &str) -> String {
    ok(
        &tool("openssl", &["x509", "-in", cert_file, "-pubkey", "-noout"]),
        "openssl x509",
    )
}

fn serial_of(cert_file: &str) -> String {
    ok(
        &tool("openssl", &["x509", "-in", cert_file, "-serial", "-noout"]),
        "openssl x509 -serial",
    )
    .trim()
    .to_owned()
}

/// Checks `cert.p12` with openssl and keytool: the key matches `cert.pem`'s leaf, the
/// certificates are fullchain.pem's, one PrivateKeyEntry with a chain of them all.
fn check_p12(dir: &Dir, password_file: &str) {
    let p12 = Dir::s(&dir.out("cert.p12"));
    let passin = format!("file:{password_file}");
    let dumped = ok(
        &tool(
            "openssl",
            &["pkcs12", "-in", &p12, "-passin", &passin, "-nodes"],
        ),
        "openssl pkcs12",
    );
    assert_eq!(dumped.matches("-----BEGIN PRIVATE KEY-----").count(), 1);
    let dump_file = dir.write("dumped.pem", &dumped);
    let leaf = Dir::s(&dir.out("cert.pem"));
    assert_eq!(
        public_of_key(&dump_file),
        public_of_cert(&leaf),
        "the key in cert.p12 is the leaf's"
    );
    let certs = ok(
        &tool(
            "openssl",
            &[
                "pkcs12", "-in", &p12, "-passin", &passin, "-nokeys", "-clcerts",
            ],
        ),
        "openssl pkcs12 -clcerts",
    );
    let client = dir.write("client.pem", &certs);
    assert_eq!(
        serial_of(&client),
        serial_of(&leaf),
        "the leaf is the key's cert"
    );
    let fullchain = std::fs::read_to_string(dir.out("fullchain.pem")).expect("fullchain");
    let want = fullchain.matches("BEGIN CERTIFICATE").count();
    assert!(want >= 2, "Pebble's chain has an intermediate");
    assert_eq!(dumped.matches("BEGIN CERTIFICATE").count(), want);

    let listed = ok(
        &tool(
            "keytool",
            &[
                "-list",
                "-v",
                "-keystore",
                &p12,
                "-storetype",
                "PKCS12",
                "-storepass",
                PASSWORD,
            ],
        ),
        "keytool -list",
    );
    assert!(
        listed.contains("Your keystore contains 1 entry"),
        "{listed}"
    );
    assert!(listed.contains("Entry type: PrivateKeyEntry"), "{listed}");
    assert!(
        listed.contains(&format!("Certificate chain length: {want}")),
        "{listed}"
    );
    assert!(listed.contains("Alias name: certfleet"), "{listed}");
    assert_eq!(dir.mode("cert.p12"), 0o600, "cert.p12 holds the key");
}

/// Checks `combined.pem`: the key then fullchain.pem, 0600, the key the leaf's.
fn check_combined(dir: &Dir) {
    let combined = std::fs::read_to_string(dir.out("combined.pem")).expect("combined.pem");
    let fullchain = std::fs::read_to_string(dir.out("fullchain.pem")).expect("fullchain");
    assert!(combined.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(
        combined.ends_with(&fullchain),
        "the full chain after the key"
    );
    let combined_file = Dir::s(&dir.out("combined.pem"));
    assert_eq!(
        public_of_key(&combined_file),
        public_of_cert(&Dir::s(&dir.out("cert.pem")))
    );
    assert_eq!(dir.mode("combined.pem"), 0o600);
}

#[tokio::test]
async fn p12_and_combined_are_read_by_openssl_and_keytool_and_follow_renewals() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start(&pebble).await;
    let dir = Dir::new();
    let key_file = dir.write("api-key", &format!("{ADMIN_KEY}\n"));
    let password_file = dir.write("p12-password", &format!("{PASSWORD}\n"));
    let exec = format!("echo run >> {}", Dir::s(&dir.path("marker")));
    let name = "formats.example.test";
    let args: Vec<String> = [
        "--server",
        &service.base,
        "--domain",
        name,
        "--out",
        &Dir::s(&dir.path("out")),
        "--api-key-file",
        &key_file,
        "--format",
        "p12",
        "--p12-password-file",
        &password_file,
        "--combined",
        "--exec",
        &exec,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();

    let first = fetch(args.clone()).await;
    let stdout = ok(&first, "first fetch");
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "the password is never printed"
    );
    check_p12(&dir, &password_file);
    check_combined(&dir);
    assert_eq!(dir.exec_runs(), 1);

    // A wrong password is refused by openssl (the MAC does not verify).
    let wrong = dir.write("wrong", "not the password\n");
    let refused = tool(
        "openssl",
        &[
            "pkcs12",
            "-in",
            &Dir::s(&dir.out("cert.p12")),
            "-passin",
            &format!("file:{wrong}"),
            "-nodes",
        ],
    );
    assert!(!refused.status.success(), "a wrong password is refused");

    // Nothing changed: a 304, cert.p12 and combined.pem untouched, no --exec.
    let p12_before = std::fs::read(dir.out("cert.p12")).expect("p12");
    let combined_before = std::fs::read(dir.out("combined.pem")).expect("combined");
    ok(&fetch(args.clone()).await, "second fetch");
    assert_eq!(std::fs::read(dir.out("cert.p12")).expect("p12"), p12_before);
    assert_eq!(
        std::fs::read(dir.out("combined.pem")).expect("combined"),
        combined_before
    );
    assert_eq!(dir.exec_runs(), 1, "no --exec without a change");
    assert_eq!(pebble.issued_count(), 1);

    // cert.p12 removed: the next run makes it again (no 304 is trusted without it).
    std::fs::remove_file(dir.out("cert.p12")).expect("remove p12");
    ok(&fetch(args.clone()).await, "fetch after removing cert.p12");
    check_p12(&dir, &password_file);
    assert_eq!(dir.exec_runs(), 2, "a file made again is a change");
    assert_eq!(pebble.issued_count(), 1, "the same certificate");

    // A forced renewal: both files follow it.
    let old_serial = serial_of(&Dir::s(&dir.out("cert.pem")));
    let renewed = service
        .post(
            "/api/certificate/renew",
            ADMIN_KEY,
            json!({"domains": [name]}),
        )
        .await;
    assert_eq!(renewed.status(), 200);
    ok(&fetch(args.clone()).await, "fetch after the renewal");
    let new_serial = serial_of(&Dir::s(&dir.out("cert.pem")));
    assert_ne!(new_serial, old_serial);
    check_p12(&dir, &password_file);
    check_combined(&dir);
    assert_ne!(
        std::fs::read(dir.out("combined.pem")).expect("combined"),
        combined_before
    );
    assert_eq!(dir.exec_runs(), 3);
}

#[tokio::test]
async fn p12_with_a_local_key_holds_this_machines_key() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start(&pebble).await;
    let dir = Dir::new();
    let key_file = dir.write("api-key", &format!("{ADMIN_KEY}\n"));
    let password_file = dir.write("p12-password", &format!("{PASSWORD}\n"));
    let args: Vec<String> = [
        "--server",
        &service.base,
        "--domain",
        "local.formats.example.test",
        "--out",
        &Dir::s(&dir.path("out")),
        "--api-key-file",
        &key_file,
        "--key",
        "local",
        "--format",
        "p12",
        "--p12-password-file",
        &password_file,
        "--combined",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    ok(&fetch(args.clone()).await, "fetch --key local");
    check_p12(&dir, &password_file);
    check_combined(&dir);
    let key_pem = Dir::s(&dir.out("key.pem"));
    let combined = Dir::s(&dir.out("combined.pem"));
    assert_eq!(public_of_key(&combined), public_of_key(&key_pem));

    // A rotation: the new key goes into both files.
    let old_key = public_of_key(&key_pem);
    let mut rotate = args.clone();
    rotate.push("--rotate-key".to_owned());
    ok(&fetch(rotate).await, "fetch --rotate-key");
    let new_key = public_of_key(&key_pem);
    assert_ne!(new_key, old_key);
    check_p12(&dir, &password_file);
    assert_eq!(public_of_key(&combined), new_key);
}

#[tokio::test]
async fn format_usage_errors_name_the_flag_and_create_nothing() {
    let dir = Dir::new();
    let out = Dir::s(&dir.path("out"));
    let empty = dir.write("empty", "\n");
    let base = [
        "--server",
        "https://h.example",
        "--domain",
        "x.example.test",
        "--out",
        &out,
    ];
    for (extra, want) in [
        (
            &["--format", "p12"][..],
            "--format p12 needs --p12-password-file",
        ),
        (&["--format", "jks"], "--format \"jks\": use pem"),
        (&["--p12-password-file", empty.as_str()], "add --format p12"),
        (
            &["--format", "p12", "--p12-password-file", empty.as_str()],
            "holds no password",
        ),
    ] {
        let mut args: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_certfleet"));
        command
            .arg("fetch")
            .args(&args)
            .env("CERTFLEET_API_KEY", "k");
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("task")
            .expect("run");
        assert!(!output.status.success(), "{extra:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(want), "{extra:?}: {stderr}");
    }
    assert!(!Path::new(&out).exists(), "nothing created");
}
