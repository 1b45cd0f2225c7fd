//! A throw-away certificate authority for the tests' own HTTPS servers.
//!
//! Pebble needs a TLS certificate for its directory and management endpoints, and the rate-limit
//! proxy serves the same leaf. The ACME client under test trusts `ca.pem` (certfleet's
//! `acme.caCertificates`). This CA is NOT Pebble's issuing root: that one comes from Pebble's
//! management API (`Pebble::root_pem`).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tempfile::TempDir;

/// A CA and one server leaf for `localhost` and `127.0.0.1`, written as PEM files into a
/// temporary directory that lives as long as this value.
#[derive(Debug)]
pub struct TestCa {
    _dir: TempDir,
    ca_pem: String,
    ca_pem_path: PathBuf,
    leaf_cert_path: PathBuf,
    leaf_key_path: PathBuf,
    leaf_der: CertificateDer<'static>,
    leaf_key_der: Vec<u8>,
}

impl TestCa {
    /// Generates a fresh CA and leaf (ECDSA P-256) and writes `ca.pem`, `leaf.pem`, `leaf.key`.
    pub fn new() -> TestCa {
        let ca_key = KeyPair::generate().expect("generate test CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new())
            .expect("empty subject alt names are valid");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "certfleet test CA (not the ACME root)");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .expect("self-sign test CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().expect("generate test leaf key");
        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("localhost and 127.0.0.1 are valid subject alt names");
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf_params.use_authority_key_identifier_extension = true;
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_cert = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("sign test leaf certificate");

        let dir = tempfile::Builder::new()
            .prefix("certfleet-test-ca-")
            .tempdir()
            .expect("create temporary directory for the test CA");
        let ca_pem = ca_cert.pem();
        let ca_pem_path = dir.path().join("ca.pem");
        let leaf_cert_path = dir.path().join("leaf.pem");
        let leaf_key_path = dir.path().join("leaf.key");
        write(&ca_pem_path, &ca_pem);
        write(&leaf_cert_path, &leaf_cert.pem());
        write(&leaf_key_path, &leaf_key.serialize_pem());

        TestCa {
            _dir: dir,
            ca_pem,
            ca_pem_path,
            leaf_cert_path,
            leaf_key_path,
            leaf_der: leaf_cert.der().clone(),
            leaf_key_der: leaf_key.serialize_der(),
        }
    }

    /// The CA certificate (PEM file) a client must trust to talk to the test servers.
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_pem_path
    }

    /// The CA certificate as PEM text.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The leaf certificate (PEM file) for `localhost` and `127.0.0.1`.
    pub fn leaf_cert_path(&self) -> &Path {
        &self.leaf_cert_path
    }

    /// The leaf's PKCS#8 private key (PEM file).
    pub fn leaf_key_path(&self) -> &Path {
        &self.leaf_key_path
    }

    /// A rustls server configuration presenting the leaf, with ALPN `h2` and `http/1.1` (what
    /// hyper-util's auto builder serves).
    pub fn rustls_server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key_der.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf_der.clone()], key)
            .expect("test leaf certificate and key match");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A reqwest client that trusts only this CA and never goes through an HTTP proxy from the
    /// environment (all test traffic is loopback).
    pub fn reqwest_client(&self) -> reqwest::Client {
        let certs = reqwest::Certificate::from_pem_bundle(self.ca_pem.as_bytes())
            .expect("parse the test CA PEM");
        reqwest::Client::builder()
            .tls_certs_only(certs)
            // Pebble 2.10 refuses requests without one (400).
            .user_agent("certfleet-tests")
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("build reqwest client trusting the test CA")
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

fn write(path: &Path, contents: &str) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
