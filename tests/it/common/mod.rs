//! The harness the integration tests share (`crate::common`): a throw-away CA for the servers'
//! own HTTPS, a real Pebble ACME CA with pebble-challtestsrv as its DNS, a fault-injecting proxy
//! that answers new-order with `rateLimited`, a real PostgreSQL, tokens from the real Akash SDK,
//! certfleet in-process (`service`) and as the real binary (`process`).

pub mod akash;
pub mod browser;
pub mod ca;
pub mod pebble;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod service;
pub mod smtp;
pub mod webhook;

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock, PoisonError};

// Short paths for the tests (`common::Pebble`).
pub use ca::TestCa;
pub use pebble::{Pebble, PebbleOptions};
pub use proxy::RateLimitProxy;

/// A loopback TCP port that was free a moment ago: bind `127.0.0.1:0`, read the port, drop.
///
/// Never returns the same port twice in one test binary, so parallel tests (and the several
/// ports of one Pebble) cannot be handed the same number. Another process may still take the
/// port before it is used: `Pebble::start` retries with new ports when a bind fails.
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(|| Mutex::new(HashSet::new()));
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("bind 127.0.0.1:0 to find a free port")
            .port();
        let mut given = given.lock().unwrap_or_else(PoisonError::into_inner);
        if given.insert(port) {
            return port;
        }
    }
}

/// The DNS names in a certificate's subject alternative names, sorted.
pub fn san_dns_names(der: &[u8]) -> Vec<String> {
    use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).expect("parse the certificate");
    let mut names: Vec<String> = cert
        .extensions()
        .iter()
        .filter_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => Some(san.general_names.clone()),
            _ => None,
        })
        .flatten()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_owned()),
            _ => None,
        })
        .collect();
    names.sort();
    names
}

/// The leaf (first certificate, DER) of an API answer's `certificate` chain.
pub fn leaf_der(body: &serde_json::Value) -> Vec<u8> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let pem = body["certificate"].as_str().expect("certificate");
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .expect("a certificate")
        .expect("PEM")
        .to_vec()
}

/// A certificate's serial in lowercase hex, as certfleet reports it.
pub fn serial_hex(cert: &x509_parser::certificate::X509Certificate<'_>) -> String {
    cert.tbs_certificate
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
