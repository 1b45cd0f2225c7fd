//! `certfleet fetch`, the real binary, against certfleet running in-process on a real Pebble
//! (plain HTTP on loopback, and behind TLS for `--ca-file` / `--pin-sha256`; `--key local` and
//! its rotation), and against a small scripted stub for what a correct server never sends (a
//! key that does not match) and for the exact request sequence (404 -> POST -> 202 -> GET the
//! Location).

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rcgen::{CertificateParams, Issuer, KeyPair, PublicKeyData};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::json;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::common;
use common::service::{ADMIN_KEY, FLEET_A_KEY, Service};
use common::{Pebble, PebbleOptions, TestCa, free_port};

/// The files a run owns, in the order they are compared.
const FILES: [&str; 5] = ["cert.pem", "chain.pem", "fullchain.pem", "key.pem", ".etag"];

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `certfleet fetch ARGS` with `env` added, proxies and credentials from the test's own
/// environment removed; `--wait 60s` bounds it.
async fn fetch(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_certfleet"));
    command.arg("fetch").args(args).args(["--wait", "60s"]);
    for name in [
        "CERTFLEET_API_KEY",
        "CERTFLEET_TOKEN",
        "CERTFLEET_CONFIG",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the blocking task")
        .expect("run certfleet fetch");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Run {
    fn ok(self) -> Self {
        assert!(self.success, "fetch failed: {self:?}");
        self
    }

    /// Asserts failure with one line on stderr containing every `needle`; returns that line.
    fn failed_with(self, needles: &[&str]) -> String {
        assert!(!self.success, "fetch should have failed: {self:?}");
        let line = self.stderr.trim();
        println!("failed as expected: {line}");
        assert_eq!(line.lines().count(), 1, "one line: {line}");
        for needle in needles {
            assert!(line.contains(needle), "{needle:?} not in: {line}");
        }
        line.to_owned()
    }
}

/// A scratch directory: the output directory `out` (not created: the run creates it), an
/// API key file, and the marker file `--exec` appends to.
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("certfleet-fetch-")
            .tempdir()
            .expect("tempdir");
        Self { dir }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn out_str(&self) -> String {
        self.out().display().to_string()
    }

    /// A 0600 file holding `secret`.
    fn secret(&self, name: &str, secret: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("{secret}\n")).expect("write secret");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        path.display().to_string()
    }

    /// `--exec` appending a line to the marker file.
    fn exec(&self) -> String {
        format!(
            "echo \"$CERTFLEET_DOMAINS\" >> {}",
            self.dir.path().join("marker").display()
        )
    }

    /// How many times `--exec` ran.
    fn exec_runs(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("marker"))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }

    /// The five files: contents and modification times.
    fn snapshot(&self) -> BTreeMap<&'static str, (Vec<u8>, SystemTime)> {
        FILES
            .iter()
            .map(|name| {
                let path = self.out().join(name);
                let bytes = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("{} missing: {e}", path.display()));
                let mtime = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .expect("mtime");
                (*name, (bytes, mtime))
            })
            .collect()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.out().join(name)).expect("read output file")
    }

    fn mode(&self, name: &str) -> u32 {
        std::fs::metadata(self.out().join(name))
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }
}

fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM certificates")
}

/// Checks the written files as nginx would use them: the chain verifies against Pebble's root
/// for every name, fullchain is cert + chain, and the key is the leaf's.
async fn check_files(scratch: &Scratch, pebble: &Pebble, names: &[&str]) {
    let leaf = pem_certs(&scratch.read("cert.pem"));
    let chain = pem_certs(&scratch.read("chain.pem"));
    let full = pem_certs(&scratch.read("fullchain.pem"));
    assert_eq!(leaf.len(), 1, "cert.pem holds the leaf only");
    assert!(!chain.is_empty(), "chain.pem holds the intermediates");
    assert_eq!(
        full,
        [leaf.clone(), chain.clone()].concat(),
        "fullchain = cert + chain"
    );

    let root = pem_certs(&pebble.root_pem().await).remove(0);
    let anchors = [webpki::anchor_from_trusted_cert(&root).expect("anchor")];
    let end_entity = webpki::EndEntityCert::try_from(&leaf[0]).expect("leaf parses");
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &chain,
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .expect("the chain verifies against Pebble's root");
    for name in names {
        let server_name = ServerName::try_from(*name).expect("server name");
        end_entity
            .verify_is_valid_for_subject_name(&server_name)
            .unwrap_or_else(|e| panic!("not valid for {name}: {e:?}"));
    }
    let key = KeyPair::from_pem(&scratch.read("key.pem")).expect("key.pem parses");
    let (_, parsed) = X509Certificate::from_der(&leaf[0]).expect("leaf");
    assert_eq!(
        parsed.public_key().raw,
        key.subject_public_key_info().as_slice()
    );

    assert_eq!(scratch.mode("key.pem"), 0o600, "key.pem is 0600");
    for name in ["cert.pem", "chain.pem", "fullchain.pem"] {
        assert_eq!(scratch.mode(name) & 0o022, 0, "{name} writable by others");
    }
    let leftovers: Vec<_> = std::fs::read_dir(scratch.out())
        .expect("list out")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".tmp") || name == ".exec-pending")
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

/// The server's current ETag for `names`.
async fn server_etag(service: &Service, names: &[&str]) -> String {
    let query: Vec<String> = names.iter().map(|n| format!("domain={n}")).collect();
    let response = service
        .get(&format!("/api/certificate?{}", query.join("&")), ADMIN_KEY)
        .await;
    assert_eq!(response.status(), 200);
    response.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_owned()
}

#[tokio::test]
async fn issues_then_304_then_a_renewal_rewrites_and_runs_exec_once() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start(&pebble).await;
    let scratch = Scratch::new();
    let key_file = scratch.secret("api-key", ADMIN_KEY);
    let (out, exec) = (scratch.out_str(), scratch.exec());
    let names = ["fetch.example.test", "www.fetch.example.test"];
    let args = [
        "--server",
        &service.base,
        "--domain",
        names[1],
        "--domain",
        names[0],
        "--out",
        &out,
        "--api-key-file",
        &key_file,
        "--exec",
        &exec,
    ];

    // First run: GET 404 -> POST issues; four files, .etag, --exec once.
    let first = fetch(&args, &[]).await.ok();
    assert!(first.stdout.contains("wrote"), "{first:?}");
    assert!(!first.stderr.contains(ADMIN_KEY) && !first.stdout.contains(ADMIN_KEY));
    check_files(&scratch, &pebble, &names).await;
    assert_eq!(
        scratch.mode(".") & 0o077,
        0,
        "the out directory is created 0700"
    );
    assert_eq!(pebble.issued_count(), 1);
    assert_eq!(scratch.exec_runs(), 1);
    let etag = server_etag(&service, &names).await;
    assert_eq!(scratch.read(".etag").trim(), etag);
    let before = scratch.snapshot();

    // Second run: 304, nothing touched, no --exec. The key comes from the environment now.
    let args_env = [
        "--server",
        &service.base,
        "--domain",
        names[0],
        "--domain",
        names[1],
        "--out",
        &out,
        "--exec",
        &exec,
    ];
    let second = fetch(&args_env, &[("CERTFLEET_API_KEY", ADMIN_KEY)])
        .await
        .ok();
    assert_eq!(second.stdout, "", "quiet when nothing changed");
    assert_eq!(scratch.snapshot(), before, "contents and mtimes unchanged");
    assert_eq!(scratch.exec_runs(), 1, "no --exec without a change");
    assert_eq!(pebble.issued_count(), 1);

    // A forced renewal on the server: the next run rewrites everything and runs --exec once.
    let renewed = service
        .post(
            "/api/certificate/renew",
            ADMIN_KEY,
            json!({"domains": names}),
        )
        .await;
    assert_eq!(renewed.status(), 200);
    fetch(&args, &[]).await.ok();
    check_files(&scratch, &pebble, &names).await;
    let after = scratch.snapshot();
    for name in ["cert.pem", "fullchain.pem", "key.pem", ".etag"] {
        assert!(after[name] != before[name], "{name} rewritten");
    }
    // Same intermediate: a file whose content is the same is left alone.
    assert!(
        after["chain.pem"] == before["chain.pem"],
        "chain.pem untouched"
    );
    let new_etag = server_etag(&service, &names).await;
    assert_ne!(new_etag, etag);
    assert_eq!(scratch.read(".etag").trim(), new_etag);
    assert_eq!(scratch.exec_runs(), 2, "--exec ran exactly once more");
    assert_eq!(
        std::fs::read_to_string(scratch.dir.path().join("marker")).expect("marker"),
        "fetch.example.test www.fetch.example.test\n".repeat(2),
        "--exec sees CERTFLEET_DOMAINS"
    );

    // And then it is quiet again.
    fetch(&args, &[]).await.ok();
    assert_eq!(scratch.snapshot(), after);
    assert_eq!(scratch.exec_runs(), 2);
}

/// The `spkiSha256` of a PEM private key: base64url without padding of SHA-256 over its
/// SubjectPublicKeyInfo DER.
fn spki_sha256(key_pem: &str) -> String {
    let key = KeyPair::from_pem(key_pem).expect("the key parses");
    let spki = key.subject_public_key_info();
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &spki))
}

/// `GET /api/certificate` for the client key `spki_sha256` of `names`, as the admin.
async fn get_client_key(service: &Service, names: &[&str], spki_sha256: &str) -> reqwest::Response {
    let mut query: Vec<String> = names.iter().map(|n| format!("domain={n}")).collect();
    query.push(format!("spkiSha256={spki_sha256}"));
    service
        .get(&format!("/api/certificate?{}", query.join("&")), ADMIN_KEY)
        .await
}

#[tokio::test]
async fn key_local_issues_once_with_the_key_made_here_then_304() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start(&pebble).await;
    let scratch = Scratch::new();
    let key_file = scratch.secret("api-key", ADMIN_KEY);
    let (out, exec) = (scratch.out_str(), scratch.exec());
    let names = ["local.example.test", "www.local.example.test"];
    let args = [
        "--server",
        &service.base,
        "--domain",
        names[0],
        "--domain",
        names[1],
        "--out",
        &out,
        "--api-key-file",
        &key_file,
        "--key",
        "local",
        "--exec",
        &exec,
    ];

    // First run: key.pem made here, GET 404 -> POST with the CSR issues; the leaf is for it.
    let first = fetch(&args, &[]).await.ok();
    assert!(first.stdout.contains("wrote"), "{first:?}");
    check_files(&scratch, &pebble, &names).await;
    assert!(!scratch.out().join(".key.next.pem").exists(), "no rotation");
    assert_eq!(pebble.issued_count(), 1);
    assert_eq!(scratch.exec_runs(), 1);

    // The server knows the certificate by the key's hash and never had the key.
    let hash = spki_sha256(&scratch.read("key.pem"));
    let response = get_client_key(&service, &names, &hash).await;
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_owned();
    let body = common::service::json(response).await;
    assert_eq!(body.get("privateKey"), None, "{body}");
    assert_eq!(body["keyMode"], "client", "{body}");
    assert_eq!(body["spkiSha256"], hash.as_str(), "{body}");
    assert_eq!(scratch.read(".etag").trim(), etag);
    let before = scratch.snapshot();

    // Second run: the same key, a 304, nothing written, no --exec, no issuance.
    let second = fetch(&args, &[]).await.ok();
    assert_eq!(second.stdout, "", "quiet when nothing changed");
    assert_eq!(scratch.snapshot(), before, "contents and mtimes unchanged");
    assert_eq!(scratch.exec_runs(), 1);
    assert_eq!(pebble.issued_count(), 1);
}

#[tokio::test]
async fn rotate_key_gets_a_certificate_for_a_new_key_and_retires_the_old_one() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start(&pebble).await;
    let scratch = Scratch::new();
    let (out, exec) = (scratch.out_str(), scratch.exec());
    let names = ["rotate.example.test"];
    let args = [
        "--server",
        &service.base,
        "--domain",
        names[0],
        "--out",
        &out,
        "--key",
        "local",
        "--exec",
        &exec,
    ];
    let env = [("CERTFLEET_API_KEY", ADMIN_KEY)];
    fetch(&args, &env).await.ok();
    let old_key = scratch.read("key.pem");
    let old_hash = spki_sha256(&old_key);
    let old_cert = scratch.read("cert.pem");
    assert_eq!(pebble.issued_count(), 1);

    // The rotation: a new key, a new certificate whose public key is that key.
    let rotate: Vec<&str> = args.iter().copied().chain(["--rotate-key"]).collect();
    let rotated = fetch(&rotate, &env).await.ok();
    assert!(rotated.stdout.contains("with a new key"), "{rotated:?}");
    check_files(&scratch, &pebble, &names).await;
    let new_key = scratch.read("key.pem");
    assert_ne!(new_key, old_key, "a new key");
    assert_ne!(scratch.read("cert.pem"), old_cert, "a new certificate");
    assert!(
        !scratch.out().join(".key.next.pem").exists(),
        "the new key became key.pem"
    );
    assert_eq!(pebble.issued_count(), 2);
    assert_eq!(scratch.exec_runs(), 2);

    // The old identity is retired; the new one is served, with the tag in .etag.
    let old = get_client_key(&service, &names, &old_hash).await;
    assert_eq!(old.status(), 404, "the old key's certificate is retired");
    let new_hash = spki_sha256(&new_key);
    let new = get_client_key(&service, &names, &new_hash).await;
    assert_eq!(new.status(), 200);
    assert_eq!(
        scratch.read(".etag").trim(),
        new.headers()["etag"].to_str().expect("etag")
    );

    // The next ordinary run keeps the new key: a 304, nothing touched.
    let after = scratch.snapshot();
    fetch(&args, &env).await.ok();
    assert_eq!(scratch.snapshot(), after);
    assert_eq!(scratch.exec_runs(), 2);
    assert_eq!(pebble.issued_count(), 2);
}

#[tokio::test]
async fn failures_exit_non_zero_and_keep_the_old_files() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start(&pebble).await;
    let scratch = Scratch::new();
    let out = scratch.out_str();
    let good = scratch.secret("good", ADMIN_KEY);
    let wrong = scratch.secret("wrong", "wrong-key-0123456789abcdef0123456789abcdef");
    let fleet_a = scratch.secret("fleet-a", FLEET_A_KEY);
    let exec = scratch.exec();
    let run = |server: String, key: String| {
        let (out, exec) = (out.clone(), exec.clone());
        async move {
            let args = [
                "--server",
                &server,
                "--domain",
                "keep.example.test",
                "--out",
                &out,
                "--api-key-file",
                &key,
                "--exec",
                &exec,
            ];
            fetch(&args, &[]).await
        }
    };
    run(service.base.clone(), good.clone()).await.ok();
    let before = scratch.snapshot();

    let line = run(service.base.clone(), wrong)
        .await
        .failed_with(&["401", "unauthorized"]);
    assert!(
        !line.contains("wrong-key"),
        "the key is never printed: {line}"
    );
    assert_eq!(scratch.snapshot(), before);

    run(service.base.clone(), fleet_a)
        .await
        .failed_with(&["403", "domain_not_allowed"]);
    assert_eq!(scratch.snapshot(), before);

    let nowhere = format!("http://127.0.0.1:{}", free_port());
    run(nowhere, good).await.failed_with(&[
        "GET http://127.0.0.1:",
        "cannot connect: Connection refused",
    ]);
    assert_eq!(scratch.snapshot(), before);
    assert_eq!(
        scratch.exec_runs(),
        1,
        "only the first run changed anything"
    );

    // A failing --exec: the files are in place, the run fails, and the next run (a 304)
    // runs the owed --exec again until it succeeds once.
    let scratch = Scratch::new();
    let out = scratch.out_str();
    let flag = scratch.dir.path().join("reload-ok");
    let exec = format!("test -e {} && {}", flag.display(), scratch.exec());
    let args = [
        "--server",
        &service.base,
        "--domain",
        "keep.example.test",
        "--out",
        &out,
        "--exec",
        &exec,
    ];
    let env = [("CERTFLEET_API_KEY", ADMIN_KEY)];
    fetch(&args, &env)
        .await
        .failed_with(&["were updated, but --exec", "runs again"]);
    assert!(
        scratch.out().join("key.pem").exists(),
        "the files are in place"
    );
    assert!(
        scratch.out().join(".exec-pending").exists(),
        "an --exec is owed"
    );
    fetch(&args, &env).await.failed_with(&["--exec"]);
    std::fs::write(&flag, "").expect("flag");
    fetch(&args, &env).await.ok();
    assert_eq!(scratch.exec_runs(), 1);
    fetch(&args, &env).await.ok();
    assert_eq!(scratch.exec_runs(), 1, "owed once, run once");
}

/// Serves `router` over HTTPS with `config` on a loopback port; returns the port and the task.
async fn serve_tls(router: Router, config: Arc<rustls::ServerConfig>) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind TLS");
    let port = listener.local_addr().expect("address").port();
    let acceptor = TlsAcceptor::from(config);
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let service = TowerToHyperService::new(router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, task)
}

#[tokio::test]
async fn https_with_ca_file_or_pin_and_a_wrong_pin_refused() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start(&pebble).await;
    let ca = TestCa::new();
    let (port, task) = serve_tls(
        certfleet::api::router(service.app.api.clone()),
        ca.rustls_server_config(),
    )
    .await;
    let server = format!("https://127.0.0.1:{port}");
    let ca_file = ca.ca_pem_path().display().to_string();
    let leaf = std::fs::read(ca.leaf_cert_path()).expect("leaf PEM");
    let leaf = CertificateDer::from_pem_slice(&leaf).expect("leaf DER");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf.as_ref());
    let pin: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    let pin = pin.join(":");
    let env = [("CERTFLEET_API_KEY", ADMIN_KEY)];
    let names = ["tls.example.test"];
    let run = |out: String, trust: Vec<String>| {
        let mut args = vec!["--server".to_owned(), server.clone(), "--domain".to_owned()];
        args.extend(["tls.example.test".to_owned(), "--out".to_owned(), out]);
        args.extend(trust);
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            fetch(&args, &env).await
        }
    };

    let with_ca = Scratch::new();
    run(with_ca.out_str(), vec!["--ca-file".into(), ca_file.clone()])
        .await
        .ok();
    check_files(&with_ca, &pebble, &names).await;

    let pinned = Scratch::new();
    run(pinned.out_str(), vec!["--pin-sha256".into(), pin.clone()])
        .await
        .ok();
    check_files(&pinned, &pebble, &names).await;
    assert_eq!(
        pinned.read("cert.pem"),
        with_ca.read("cert.pem"),
        "the same certificate"
    );

    let wrong_pin = Scratch::new();
    let wrong = "00".repeat(32);
    run(wrong_pin.out_str(), vec!["--pin-sha256".into(), wrong])
        .await
        .failed_with(&["--pin-sha256", &pin.to_lowercase()]);
    assert!(
        !wrong_pin.out().join("cert.pem").exists(),
        "nothing written"
    );

    // The system's roots do not include the test CA.
    let system = Scratch::new();
    run(system.out_str(), vec![]).await.failed_with(&[
        "the server's certificate is not trusted (UnknownIssuer)",
        "--ca-file FILE",
    ]);
    assert!(!system.out().join("cert.pem").exists(), "nothing written");

    // Trusting the wrong CA only (not the system's roots plus it) fails too.
    let other_ca = TestCa::new();
    let other = other_ca.ca_pem_path().display().to_string();
    let wrong_ca = Scratch::new();
    run(wrong_ca.out_str(), vec!["--ca-file".into(), other])
        .await
        .failed_with(&["the server's certificate is not trusted"]);
    assert_eq!(pebble.issued_count(), 1, "one certificate for every run");
    task.abort();
}

/// A scripted server: answers requests in order from `script` and records what it was sent.
#[derive(Debug, Clone, Default)]
struct Stub {
    script: Arc<Mutex<VecDeque<Scripted>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// One scripted answer: status, headers, body.
type Scripted = (StatusCode, Vec<(&'static str, String)>, String);

/// One request the stub received.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    uri: String,
    authorization: String,
    if_none_match: Option<String>,
    body: String,
}

impl Stub {
    async fn start() -> (Self, String) {
        let stub = Self::default();
        let router = Router::new().fallback(stub_answer).with_state(stub.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind stub");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        (stub, base)
    }

    fn then(&self, status: StatusCode, headers: &[(&'static str, &str)], body: &str) -> &Self {
        let headers = headers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back((status, headers, body.to_owned()));
        self
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

async fn stub_answer(
    State(stub): State<Stub>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    stub.seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Seen {
            method,
            uri: uri.to_string(),
            authorization: header("authorization").unwrap_or_default(),
            if_none_match: header("if-none-match"),
            body,
        });
    let next = stub
        .script
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop_front();
    let Some((status, headers, body)) = next else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "script exhausted").into_response();
    };
    let mut response = (status, body).into_response();
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

/// A certificate body for `name` as certfleet sends it, signed by a throw-away CA; the key is
/// `key` (pass another key than the leaf's to tamper with it).
fn cert_body(name: &str, leaf_key: &KeyPair, sent_key: &KeyPair) -> String {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = CertificateParams::new(vec![name.to_owned()])
        .expect("leaf params")
        .signed_by(leaf_key, &issuer)
        .expect("leaf");
    json!({
        "domain": name,
        "domains": [name],
        "certificate": format!("{}{}", leaf.pem(), ca.pem()),
        "privateKey": sent_key.serialize_pem(),
        "issuerCert": ca.pem(),
        "notBefore": "2026-01-01T00:00:00Z",
        "notAfter": "2027-01-01T00:00:00Z",
        "renewAfter": "2026-09-01T00:00:00Z",
        "cached": true,
    })
    .to_string()
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn a_body_whose_key_does_not_match_is_refused_and_nothing_changes() {
    let (stub, base) = Stub::start().await;
    let scratch = Scratch::new();
    let out = scratch.out_str();
    let token = scratch.secret("token", "header.payload.signature");
    let exec = scratch.exec();
    let args = [
        "--server",
        &base,
        "--domain",
        "stub.example.test",
        "--out",
        &out,
        "--token-file",
        &token,
        "--exec",
        &exec,
    ];
    let key = KeyPair::generate().expect("key");
    stub.then(
        StatusCode::OK,
        &[JSON, ("etag", "\"v1\"")],
        &cert_body("stub.example.test", &key, &key),
    );
    fetch(&args, &[]).await.ok();
    let before = scratch.snapshot();

    // The server now sends a certificate with somebody else's key.
    let other = KeyPair::generate().expect("other key");
    let new_key = KeyPair::generate().expect("new key");
    let tampered = cert_body("stub.example.test", &new_key, &other);
    stub.then(StatusCode::OK, &[JSON, ("etag", "\"v2\"")], &tampered);
    let line = fetch(&args, &[]).await.failed_with(&[
        "refused the server's certificate for stub.example.test",
        "does not match",
        "nothing was written",
    ]);
    assert!(!line.contains("PRIVATE KEY"), "{line}");
    assert_eq!(scratch.snapshot(), before);
    assert_eq!(scratch.exec_runs(), 1);

    // A certificate for another name is refused the same way.
    let foreign = cert_body("other.example.test", &new_key, &new_key);
    stub.then(StatusCode::OK, &[JSON, ("etag", "\"v3\"")], &foreign);
    fetch(&args, &[])
        .await
        .failed_with(&["does not cover stub.example.test"]);
    assert_eq!(scratch.snapshot(), before);

    let seen = stub.seen();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|s| s.authorization == "Bearer header.payload.signature")
    );
    assert_eq!(seen[0].if_none_match, None, "no files yet: unconditional");
    assert_eq!(seen[1].if_none_match.as_deref(), Some("\"v1\""));
}

#[tokio::test]
async fn a_404_posts_and_a_202_is_polled_at_its_location() {
    let (stub, base) = Stub::start().await;
    let scratch = Scratch::new();
    let out = scratch.out_str();
    let args = [
        "--server",
        &base,
        "--domain",
        "Poll.Example.Test",
        "--out",
        &out,
        "--key-type",
        "ecdsa-p384",
    ];
    let env = [("CERTFLEET_API_KEY", "stub-key")];
    let not_found = r#"{"code":"not_found","message":"no valid certificate"}"#;
    let issuing = r#"{"code":"issuing","message":"being issued"}"#;
    let location = "/api/certificate?domain=poll.example.test&keyType=ecdsa-p384&from=location";
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
    stub.then(StatusCode::NOT_FOUND, &[JSON], not_found)
        .then(
            StatusCode::ACCEPTED,
            &[JSON, ("retry-after", "1"), ("location", location)],
            issuing,
        )
        .then(
            StatusCode::OK,
            &[JSON, ("etag", "\"p1\"")],
            &cert_body("poll.example.test", &key, &key),
        );
    fetch(&args, &env).await.ok();
    assert_eq!(scratch.read(".etag"), "\"p1\"\n");

    let seen = stub.seen();
    let steps: Vec<(String, String)> = seen
        .iter()
        .map(|s| (s.method.to_string(), s.uri.clone()))
        .collect();
    assert_eq!(
        steps,
        [
            (
                "GET".into(),
                "/api/certificate?domain=poll.example.test&keyType=ecdsa-p384".into()
            ),
            ("POST".into(), "/api/certificate".into()),
            ("GET".into(), location.into()),
        ]
    );
    let body: serde_json::Value = serde_json::from_str(&seen[1].body).expect("POST body");
    assert_eq!(
        body,
        json!({"domains": ["poll.example.test"], "keyType": "ecdsa-p384"})
    );
    assert!(seen.iter().all(|s| s.authorization == "APIKey stub-key"));

    // A 202 asking for longer than --wait allows: fail now, files untouched.
    let before = scratch.snapshot();
    stub.then(
        StatusCode::ACCEPTED,
        &[JSON, ("retry-after", "120"), ("location", location)],
        issuing,
    );
    fetch(&args, &env)
        .await
        .failed_with(&["still being issued after --wait 60s", "run again later"]);
    assert_eq!(scratch.snapshot(), before);

    // A server error names its code and message, and the Retry-After.
    let limited = r#"{"code":"rate_limited","message":"the CA's rate limit"}"#;
    stub.then(
        StatusCode::TOO_MANY_REQUESTS,
        &[JSON, ("retry-after", "300")],
        limited,
    );
    fetch(&args, &env).await.failed_with(&[
        "429 Too Many Requests: rate_limited: the CA's rate limit",
        "retry after 5m",
    ]);
    assert_eq!(scratch.snapshot(), before);
}

/// Extra flags, environment, and a word of the expected message.
type UsageCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[tokio::test]
async fn usage_errors_name_the_flag() {
    let scratch = Scratch::new();
    let out = scratch.out_str();
    let base = ["--domain", "x.example.test", "--out", &out];
    let cases: [UsageCase; 4] = [
        (&["--server", "https://h.example"], &[], "no credentials"),
        (
            &["--server", "https://h.example"],
            &[("CERTFLEET_API_KEY", "k"), ("CERTFLEET_TOKEN", "t")],
            "both",
        ),
        (
            &["--server", "http://h.example", "--ca-file", "/x"],
            &[("CERTFLEET_API_KEY", "k")],
            "is http://; use https://",
        ),
        (
            &["--server", "https://h.example", "--pin-sha256", "abc"],
            &[("CERTFLEET_API_KEY", "k")],
            "64 hex digits",
        ),
    ];
    for (extra, env, want) in cases {
        let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
        fetch(&args, env).await.failed_with(&[want]);
    }
    assert!(
        !Path::new(&out).exists(),
        "nothing created before the flags are valid"
    );
}

/// The serial of `DIR/cert.pem`, if it is there and readable.
fn file_serial(scratch: &Scratch) -> Option<String> {
    let pem = std::fs::read_to_string(scratch.out().join("cert.pem")).ok()?;
    let der = pem_certs(&pem).into_iter().next()?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    Some(common::serial_hex(&cert))
}

/// Polls `done` every 20 ms until it holds or `within` has passed; how long it took.
async fn until(within: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// `certfleet fetch --watch` against the real `certfleet serve`: one held request, a renewal
/// written and `--exec` run within a second, nothing run while nothing changes, and the server
/// restarted under it.
#[tokio::test]
async fn watch_writes_a_renewal_at_once_and_outlives_a_server_restart() {
    use common::process::{self, Process};
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let scratch = Scratch::new();
    let db_url = format!(
        "sqlite://{}",
        scratch.dir.path().join("certfleet.db").display()
    );
    let port = free_port();
    let yaml = common::service::base_yaml(&pebble, &db_url, "30s").replace(
        "server:\n",
        &format!("server:\n  listen: \"127.0.0.1:{port}\"\n"),
    );
    let config = scratch.dir.path().join("certfleet.yaml");
    std::fs::write(&config, yaml).expect("write the config");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let mut server = process::serve(&config, None, None);
    process::wait_ready(&client, &base, &server).await;
    let name = "watch.fetch.example.test";
    let renew = || {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let response = client
                .post(format!("{base}/api/certificate/renew"))
                .header("Authorization", format!("APIKey {ADMIN_KEY}"))
                .json(&json!({"domain": name}))
                .send()
                .await
                .expect("renew");
            assert_eq!(response.status(), 200);
        }
    };

    let key_file = scratch.secret("api-key", ADMIN_KEY);
    let (out, exec) = (scratch.out_str(), scratch.exec());
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_certfleet"));
    command
        .args(["fetch", "--server", &base, "--domain", name, "--out", &out])
        .args(["--api-key-file", &key_file, "--exec", &exec])
        .args(["--watch", "--watch-hold", "30s"])
        .env_remove("CERTFLEET_API_KEY")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy");
    let watcher = Process::spawn("certfleet fetch --watch", &mut command).expect("start fetch");

    until(Duration::from_secs(30), "the first certificate", || {
        scratch.exec_runs() == 1
    })
    .await;
    let first = file_serial(&scratch).expect("cert.pem");
    // Held, nothing changes: no write, no --exec.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(scratch.exec_runs(), 1, "{}", watcher.log());

    renew().await;
    // Counted from the renewal's answer: the new certificate is stored by then.
    let lag = until(Duration::from_secs(10), "the renewal written", || {
        scratch.exec_runs() == 2
    })
    .await;
    let second = file_serial(&scratch).expect("cert.pem");
    assert_ne!(second, first, "the renewed certificate is in DIR");
    println!("--watch wrote the renewal and ran --exec {lag:?} after the renewal answered");
    assert!(lag < Duration::from_secs(1), "{lag:?}\n{}", watcher.log());

    // The server restarts: the watch reconnects with back-off and gets the next renewal.
    server.kill();
    drop(server);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let server = process::serve(&config, None, None);
    process::wait_ready(&client, &base, &server).await;
    // A forced renewal is allowed once an hour: a new certificate comes from deleting the
    // identity and asking again, which the held watch sees as a change too.
    let admin = |request: reqwest::RequestBuilder| async move {
        let response = request
            .header("Authorization", format!("APIKey {ADMIN_KEY}"))
            .send()
            .await
            .expect("admin request");
        assert_eq!(response.status(), 200);
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    admin(client.delete(format!("{base}/api/certificate?domain={name}"))).await;
    admin(
        client
            .post(format!("{base}/api/certificate"))
            .json(&json!({"domain": name})),
    )
    .await;
    until(
        Duration::from_secs(30),
        "the renewal after the restart",
        || scratch.exec_runs() == 3,
    )
    .await;
    let third = file_serial(&scratch).expect("cert.pem");
    assert_ne!(third, second);
    assert!(
        watcher.log().contains("--watch tries again"),
        "the restart was seen: {}",
        watcher.log()
    );
    assert!(
        !watcher.log().contains(ADMIN_KEY),
        "no secret in the output"
    );
    assert_eq!(scratch.exec_runs(), 3, "one --exec per change");
}
