//! CSR mode against Pebble: the client keeps its private key and sends a CSR; certfleet issues,
//! stores and renews with that CSR, and holds no private key for the certificate.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::common;
use common::service::{ADMIN_KEY, FLEET_A_KEY, Service, json};
use common::{Pebble, PebbleOptions};

const CERT: &str = "/api/certificate";
const SEALING_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A key and a CSR made by openssl, as an operator or an appliance would.
struct OpensslCsr {
    /// The CSR, PEM.
    csr: String,
    /// The key's SubjectPublicKeyInfo, DER (`openssl pkey -pubout`).
    spki: Vec<u8>,
    /// The private key, PKCS #8 DER (`openssl pkey -outform DER`).
    key_der: Vec<u8>,
}

impl OpensslCsr {
    /// `openssl req` for `names` (the first also the common name) with a new `key` (`ec` on
    /// P-256, or `rsa:BITS`), in `dir`.
    fn new(dir: &Path, tag: &str, names: &[&str], key: &str) -> Self {
        let key_file = dir.join(format!("{tag}.key"));
        let csr_file = dir.join(format!("{tag}.csr"));
        let san = names
            .iter()
            .map(|n| format!("DNS:{n}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut req = Command::new("openssl");
        req.arg("req").arg("-new").arg("-nodes");
        match key {
            "ec" => req.args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
            rsa => req.args(["-newkey", rsa]),
        };
        req.arg("-keyout")
            .arg(&key_file)
            .arg("-out")
            .arg(&csr_file)
            .args(["-subj", &format!("/CN={}", names[0])])
            .args(["-addext", &format!("subjectAltName={san}")]);
        run(
            &mut req,
            "openssl req (install openssl: apt-get install -y openssl)",
        );
        let spki = run(
            Command::new("openssl")
                .args(["pkey", "-pubout", "-outform", "DER", "-in"])
                .arg(&key_file),
            "openssl pkey -pubout",
        );
        let key_der = run(
            Command::new("openssl")
                .args(["pkey", "-outform", "DER", "-in"])
                .arg(&key_file),
            "openssl pkey",
        );
        Self {
            csr: std::fs::read_to_string(&csr_file).expect("read the CSR"),
            spki,
            key_der,
        }
    }

    /// The API's `spkiSha256`, computed here from openssl's output.
    fn spki_sha256(&self) -> String {
        use sha2::Digest as _;
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&self.spki))
    }

    /// The CSR as base64url DER, as RFC 8555 carries it.
    fn der_b64url(&self) -> String {
        let der =
            rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(self.csr.as_bytes())
                .expect("openssl's CSR is PEM");
        URL_SAFE_NO_PAD.encode(der.as_ref())
    }
}

/// Runs `command`, panicking with `what` unless it succeeds; its standard output.
fn run(command: &mut Command, what: &str) -> Vec<u8> {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The leaf's SubjectPublicKeyInfo (DER) and serial (lowercase hex, as certfleet prints it).
fn leaf(body: &Value) -> (Vec<u8>, String) {
    let der = common::leaf_der(body);
    let (_, cert) = X509Certificate::from_der(&der).expect("parse the leaf");
    (cert.public_key().raw.to_vec(), common::serial_hex(&cert))
}

fn query(names: &[&str], spki: &str) -> String {
    let domains: String = names.iter().map(|n| format!("domain={n}&")).collect();
    format!("{CERT}?{domains}spkiSha256={spki}")
}

/// Every file of the service's SQLite database (main file, WAL), concatenated.
fn database_bytes(service: &Service) -> Vec<u8> {
    let path = service
        .db_url
        .strip_prefix("sqlite://")
        .expect("a SQLite URL");
    let file = Path::new(path);
    let dir = file.parent().expect("the database's directory");
    let stem = file.file_name().expect("a file name").to_string_lossy();
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).expect("list the directory") {
        let entry = entry.expect("an entry");
        if entry.file_name().to_string_lossy().starts_with(&*stem) {
            bytes.extend(std::fs::read(entry.path()).expect("read a database file"));
        }
    }
    assert!(bytes.len() > 4096, "the database files were found");
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_csr_from_openssl_is_issued_and_renewed_with_its_key_and_no_private_key_is_stored() {
    let pebble = Pebble::start(PebbleOptions {
        validity_secs: Some(30),
        ..Default::default()
    })
    .await;
    // `privateKeys: client`: certfleet may hold no certificate's key at all.
    let service = Service::start_with(&pebble, "30s", |yaml| {
        yaml.replace(
            "storage:\n",
            &format!("storage:\n  encryptionKey: \"{SEALING_KEY}\"\n"),
        ) + "certificates:\n  privateKeys: client\n"
    })
    .await;
    let dir = tempfile::tempdir().expect("a directory");
    let names = ["csr.example.test", "www.csr.example.test"];
    let made = OpensslCsr::new(dir.path(), "one", &names, "ec");

    let refused = service
        .post(CERT, ADMIN_KEY, json!({"domain": "plain.example.test"}))
        .await;
    assert_eq!(refused.status(), 400);
    let body = json(refused).await;
    assert_eq!(body["code"], "csr_required", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("certificates.privateKeys")),
        "{body}"
    );

    let answer = service
        .post(CERT, ADMIN_KEY, json!({"csr": made.csr}))
        .await;
    assert_eq!(answer.status(), 200);
    let etag = answer.headers()["etag"].to_str().expect("etag").to_owned();
    let first = json(answer).await;
    let keys: BTreeSet<&str> = first
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "cached",
            "certificate",
            "domain",
            "domains",
            "issuerCert",
            "keyMode",
            "notAfter",
            "notBefore",
            "renewAfter",
            "spkiSha256",
        ]),
        "no privateKey key at all"
    );
    assert_eq!(first["keyMode"], "client");
    assert_eq!(first["spkiSha256"], made.spki_sha256());
    assert_eq!(first["domains"], json!(names));
    let (spki, serial) = leaf(&first);
    assert_eq!(spki, made.spki, "the leaf carries the CSR's public key");
    assert_eq!(pebble.issued_count(), 1);

    // The same CSR again, as base64url DER: the stored certificate, no new order.
    let again = service
        .post(
            CERT,
            ADMIN_KEY,
            json!({"csr": made.der_b64url(), "domains": names}),
        )
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(json(again).await["cached"], true);
    assert_eq!(pebble.issued_count(), 1);

    // The database holds the CSR and the chain, and no private key of any kind for it.
    let db = database_bytes(&service);
    assert!(contains(&db, b"CERTIFICATE REQUEST"), "the CSR is kept");
    assert!(
        !contains(&db, b"PRIVATE KEY"),
        "a PEM private key is stored"
    );
    assert!(!contains(&db, &made.key_der), "the client's key is stored");
    let key_b64 = STANDARD.encode(&made.key_der);
    assert!(
        !contains(&db, &key_b64.as_bytes()[..64]),
        "the key's base64"
    );
    // PKCS #8 (version 0, id-ecPublicKey) and SEC 1 (version 1, a 32-byte scalar) in DER.
    for marker in [
        &[
            0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
        ][..],
        &[0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20][..],
    ] {
        assert!(!contains(&db, marker), "a DER private key is stored");
    }
    let empty = service
        .count_rows("certificates WHERE key_type LIKE 'spki:%' AND key_pem = ''")
        .await;
    assert_eq!(empty, 1, "the client-key row has no key");

    // Renewed by the worker with the kept CSR: same key, new serial, found by GET.
    let deadline = Instant::now() + Duration::from_secs(45);
    let renewed = loop {
        let response = service
            .client()
            .get(format!(
                "{}{}",
                service.base,
                query(&names, &made.spki_sha256())
            ))
            .header("Authorization", format!("APIKey {ADMIN_KEY}"))
            .header("If-None-Match", &etag)
            .send()
            .await
            .expect("GET");
        match response.status().as_u16() {
            304 => {}
            200 => break json(response).await,
            other => panic!("GET: {other} {}", json(response).await),
        }
        assert!(Instant::now() < deadline, "not renewed in time");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (renewed_spki, renewed_serial) = leaf(&renewed);
    assert_ne!(renewed_serial, serial, "a new certificate");
    assert_eq!(renewed_spki, made.spki, "renewed with the same public key");
    assert!(renewed.get("privateKey").is_none());
    assert!(pebble.issued_count() >= 2);

    // The inventory says who holds the key.
    let list = json(service.get("/api/certificates", ADMIN_KEY).await).await;
    let item = &list["items"][0];
    assert_eq!(item["keyMode"], "client", "{list}");
    assert_eq!(item["spkiSha256"], made.spki_sha256());
    assert_eq!(item["keyType"], Value::Null);
}

#[tokio::test]
async fn bad_csrs_are_refused_with_their_codes_and_nothing_is_ordered() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start(&pebble).await;
    let dir = tempfile::tempdir().expect("a directory");
    let good = OpensslCsr::new(dir.path(), "good", &["x.a.example.test"], "ec");
    let other = OpensslCsr::new(dir.path(), "other", &["other.example.test"], "ec");

    let mut broken = URL_SAFE_NO_PAD
        .decode(good.der_b64url())
        .expect("base64url");
    let last = broken.len() - 1;
    broken[last] ^= 1;
    let nameless = {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .serialize_request(&key)
            .expect("CSR")
            .pem()
            .expect("PEM")
    };
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "a broken signature",
            json!({"csr": URL_SAFE_NO_PAD.encode(&broken)}),
            400,
            "csr_bad_signature",
        ),
        (
            "names the credential may not have",
            json!({"csr": other.csr}),
            403,
            "domain_not_allowed",
        ),
        (
            "names differing from domains",
            json!({"csr": good.csr, "domains": ["y.a.example.test"]}),
            400,
            "csr_names_mismatch",
        ),
        (
            "an RSA-1024 key",
            json!({"csr": include_str!("../../src/acme/testdata/rsa1024.csr")}),
            400,
            "csr_unsupported_key",
        ),
        (
            "a secp256k1 key",
            json!({"csr": include_str!("../../src/acme/testdata/secp256k1.csr")}),
            400,
            "csr_unsupported_key",
        ),
        (
            "an IP address the key's patterns do not hold",
            json!({"csr": include_str!("../../src/acme/testdata/ip-address.csr")}),
            403,
            "domain_not_allowed",
        ),
        (
            "an empty name list",
            json!({"csr": nameless}),
            400,
            "csr_no_names",
        ),
        (
            "garbage",
            json!({"csr": "garbage, not a CSR"}),
            400,
            "csr_malformed",
        ),
        (
            "20 kB of garbage",
            json!({"csr": "A".repeat(20_000)}),
            400,
            "csr_too_large",
        ),
        (
            "1 MB of garbage (past the body limit)",
            json!({"csr": "A".repeat(1 << 20)}),
            413,
            "body_too_large",
        ),
        (
            "keyType with a CSR",
            json!({"csr": good.csr, "keyType": "rsa-2048"}),
            400,
            "invalid_body",
        ),
        (
            "replaces without a CSR",
            json!({"domain": "x.a.example.test", "replaces": good.spki_sha256()}),
            400,
            "invalid_body",
        ),
    ];
    for (what, body, status, code) in cases {
        let answer = service.post(CERT, FLEET_A_KEY, body).await;
        assert_eq!(answer.status().as_u16(), status, "{what}");
        let body = json(answer).await;
        assert_eq!(body["code"], code, "{what}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
    }
    assert_eq!(pebble.orders_count(), 0, "no refusal reached the CA");
    assert_eq!(service.count_rows("client_csrs").await, 0);

    // With `privateKeys: server`, a CSR is refused before it is even read.
    service.stop().await;
    let service = Service::start_with(&pebble, "30s", |yaml| {
        yaml + "certificates:\n  privateKeys: server\n"
    })
    .await;
    let answer = service
        .post(CERT, FLEET_A_KEY, json!({"csr": good.csr}))
        .await;
    assert_eq!(answer.status(), 400);
    assert_eq!(json(answer).await["code"], "csr_not_allowed");
    assert_eq!(pebble.orders_count(), 0);
}

#[tokio::test]
async fn a_rotation_retires_the_old_key_and_the_bound_on_keys_holds() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let service = Service::start_with(&pebble, "30s", |yaml| {
        yaml + "certificates:\n  maxClientKeys: 2\n"
    })
    .await;
    let dir = tempfile::tempdir().expect("a directory");
    let names = ["rot.a.example.test"];
    let one = OpensslCsr::new(dir.path(), "one", &names, "ec");
    let two = OpensslCsr::new(dir.path(), "two", &names, "rsa:2048");
    let three = OpensslCsr::new(dir.path(), "three", &names, "ec");

    for made in [&one, &two] {
        let answer = service
            .post(CERT, FLEET_A_KEY, json!({"csr": made.csr}))
            .await;
        assert_eq!(answer.status(), 200);
        assert_eq!(json(answer).await["spkiSha256"], made.spki_sha256());
    }
    assert_eq!(pebble.issued_count(), 2, "two keys, two certificates");

    // A forced renewal names the key without sending its CSR again: the kept one is used.
    let before = json(
        service
            .get(&query(&names, &two.spki_sha256()), FLEET_A_KEY)
            .await,
    )
    .await;
    let renewed = service
        .post(
            "/api/certificate/renew",
            FLEET_A_KEY,
            json!({"domains": names, "spkiSha256": two.spki_sha256()}),
        )
        .await;
    assert_eq!(renewed.status(), 200);
    let renewed = json(renewed).await;
    assert_ne!(leaf(&renewed).1, leaf(&before).1, "a new certificate");
    assert_eq!(leaf(&renewed).0, two.spki, "with the kept CSR's key");
    assert_eq!(pebble.issued_count(), 3);
    let unknown = service
        .post(
            CERT,
            FLEET_A_KEY,
            json!({"domains": names, "spkiSha256": three.spki_sha256()}),
        )
        .await;
    assert_eq!(unknown.status(), 400);
    assert_eq!(json(unknown).await["code"], "csr_required");

    let refused = service
        .post(CERT, FLEET_A_KEY, json!({"csr": three.csr}))
        .await;
    assert_eq!(refused.status(), 409);
    let body = json(refused).await;
    assert_eq!(body["code"], "client_key_limit", "{body}");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains("certificates.maxClientKeys") && message.contains("five"),
        "{message}"
    );
    assert_eq!(pebble.orders_count(), 3);

    // The third key replacing the first: within the bound, and the first is retired.
    let rotated = service
        .post(
            CERT,
            FLEET_A_KEY,
            json!({"csr": three.csr, "replaces": one.spki_sha256()}),
        )
        .await;
    assert_eq!(rotated.status(), 200);
    let rotated = json(rotated).await;
    assert_eq!(leaf(&rotated).0, three.spki);
    // Retired before the answer: GET with the old key finds nothing.
    let old = service
        .get(&query(&names, &one.spki_sha256()), FLEET_A_KEY)
        .await;
    assert_eq!(old.status(), 404, "the old key was not retired");
    for kept in [&two, &three] {
        let answer = service
            .get(&query(&names, &kept.spki_sha256()), FLEET_A_KEY)
            .await;
        assert_eq!(answer.status(), 200, "{} stays", kept.spki_sha256());
    }
    let list = json(service.get("/api/certificates", ADMIN_KEY).await).await;
    let listed: BTreeSet<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|item| item["spkiSha256"].as_str())
        .collect();
    assert_eq!(
        listed,
        BTreeSet::from([two.spki_sha256().as_str(), three.spki_sha256().as_str()])
    );
    assert_eq!(service.count_rows("client_csrs").await, 2);
    let retired = service
        .count_rows(
            "attempts WHERE cause = 'deletion' AND message LIKE '%by certfleet:rotation to%'",
        )
        .await;
    assert_eq!(
        retired, 1,
        "the retirement is in the old identity's history"
    );

    // The operator's client lists the client keys and renews one by its id, with its CSR.
    let (code, out) = crate::inventory::certs(&service, ADMIN_KEY, &["list"]).await;
    assert_eq!(code, Some(0), "{out}");
    for kept in [&two, &three] {
        let start = format!("client:{}", &kept.spki_sha256()[..11]);
        assert!(out.contains(&start), "{start} in:\n{out}");
    }
    let id = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|item| item["spkiSha256"] == three.spki_sha256())
        .and_then(|item| item["id"].as_str())
        .expect("the third key's id")
        .to_owned();
    let (code, out) = crate::inventory::certs(&service, ADMIN_KEY, &["renew", &id]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with("renewed rot.a.example.test: serial "),
        "{out}"
    );
    let after = json(
        service
            .get(&query(&names, &three.spki_sha256()), FLEET_A_KEY)
            .await,
    )
    .await;
    let (spki, serial) = leaf(&after);
    assert_eq!(spki, three.spki, "renewed with the kept CSR's key");
    assert!(
        out.contains(&serial),
        "the printed serial is the new one: {out}"
    );

    // A client's key revoked for keyCompromise gets no replacement and no new certificate.
    let issued = pebble.issued_count();
    let revoked = service
        .post(
            "/api/certificate/revoke",
            ADMIN_KEY,
            json!({"domains": names, "spkiSha256": two.spki_sha256(), "reason": "keyCompromise"}),
        )
        .await;
    assert_eq!(revoked.status(), 200);
    let revoked = json(revoked).await;
    assert_eq!(revoked["replacement"], Value::Null, "{revoked}");
    assert_eq!(revoked["keyMode"], "client", "{revoked}");
    let again = service
        .post(CERT, FLEET_A_KEY, json!({"csr": two.csr}))
        .await;
    assert_eq!(again.status(), 400);
    assert_eq!(json(again).await["code"], "key_compromised");
    assert_eq!(pebble.issued_count(), issued, "nothing issued for that key");
}
