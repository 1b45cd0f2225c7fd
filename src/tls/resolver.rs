//! SNI selection: the public certificate for the names it covers while it is valid, the
//! self-signed fallback for everyone else (no SNI, an unknown name, no public certificate yet, or
//! an expired one), so the service never goes down for want of a certificate.

use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::util::pem::{self, PemError};

/// Why a certificate and key cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ServedError {
    /// The chain is not readable PEM.
    #[error("unreadable certificate PEM: {0}")]
    Chain(#[source] PemError),
    /// The chain holds no certificate.
    #[error("no certificate in the PEM")]
    NoCertificate,
    /// The key is not readable PEM.
    #[error("unreadable private key PEM: {0}")]
    Key(#[source] PemError),
    /// rustls cannot sign with the key.
    #[error("unsupported private key: {0}")]
    UnsupportedKey(#[source] rustls::Error),
    /// The key is not the leaf's.
    #[error("the private key does not match the certificate: {0}")]
    Mismatch(#[source] rustls::Error),
    /// The leaf is not a parseable X.509 certificate.
    #[error("unparseable certificate: {0}")]
    Unparseable(#[source] x509_parser::nom::Err<x509_parser::error::X509Error>),
}

/// A certificate ready to serve, with what SNI selection needs to know about it.
#[derive(Debug, Clone)]
pub struct Served {
    /// The chain and signing key.
    pub key: Arc<CertifiedKey>,
    /// The DNS names of the leaf, lowercase.
    pub names: Vec<String>,
    /// Validity end, Unix seconds.
    pub not_after: i64,
    /// The leaf's serial number, hex: tells a renewed certificate from the one in place.
    pub serial: String,
    /// SHA-256 of the leaf's DER, lowercase hex.
    pub fingerprint: String,
}

impl Served {
    /// Parses a PEM chain (leaf first) and its PEM private key.
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> Result<Self, ServedError> {
        let chain = pem::certificates(chain_pem).map_err(ServedError::Chain)?;
        let leaf = chain.first().ok_or(ServedError::NoCertificate)?.clone();
        let key = pem::private_key(key_pem).map_err(ServedError::Key)?;
        let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
            .map_err(ServedError::UnsupportedKey)?;
        let certified = CertifiedKey::new(chain, signing);
        certified.keys_match().map_err(ServedError::Mismatch)?;
        let (_, parsed) = X509Certificate::from_der(&leaf).map_err(ServedError::Unparseable)?;
        let names = pem::dns_names(&parsed)
            .map(str::to_ascii_lowercase)
            .collect();
        Ok(Self {
            names,
            not_after: parsed.validity().not_after.timestamp(),
            serial: hex(parsed.tbs_certificate.raw_serial()),
            fingerprint: fingerprint(&leaf),
            key: Arc::new(certified),
        })
    }

    /// Whether the leaf covers `server_name` (a wildcard covers exactly one label).
    pub fn covers(&self, server_name: &str) -> bool {
        let wanted = server_name.trim_end_matches('.').to_ascii_lowercase();
        self.names.iter().any(|name| match name.strip_prefix("*.") {
            Some(parent) => wanted
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            None => *name == wanted,
        })
    }
}

/// SHA-256 of a certificate's DER, lowercase hex (what `certfleet fetch --pin-sha256` takes).
pub fn fingerprint(der: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The server's certificate resolver.
pub struct Resolver {
    public: RwLock<Option<Served>>,
    fallback: Served,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("public", &self.public().map(|p| p.serial))
            .field("fallback", &self.fallback.fingerprint)
            .finish()
    }
}

impl Resolver {
    /// A resolver serving `fallback` until a public certificate is set.
    pub fn new(fallback: Served) -> Self {
        Self {
            public: RwLock::new(None),
            fallback,
        }
    }

    /// The public certificate in place.
    pub fn public(&self) -> Option<Served> {
        self.public
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Swaps in a public certificate; new connections use it at once.
    pub fn set_public(&self, served: Served) {
        *self
            .public
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(served);
    }

    /// The fallback certificate.
    pub fn fallback(&self) -> &Served {
        &self.fallback
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            let public = self
                .public
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(public) = public
                .as_ref()
                .filter(|p| p.covers(name) && crate::util::clock::now() < p.not_after)
            {
                return Some(public.key.clone());
            }
        }
        Some(self.fallback.key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(names: &[&str]) -> Served {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(
            names.iter().map(ToString::to_string).collect::<Vec<_>>(),
        )
        .expect("params");
        let cert = params.self_signed(&key).expect("cert");
        Served::from_pem(&cert.pem(), &key.serialize_pem()).expect("served")
    }

    #[test]
    fn sni_coverage() {
        let s = served(&["certs.example.com", "*.fleet.example.com"]);
        let cases = [
            ("certs.example.com", true),
            ("CERTS.example.com.", true),
            ("a.fleet.example.com", true),
            ("fleet.example.com", false),
            ("a.b.fleet.example.com", false),
            ("other.example.com", false),
        ];
        for (name, want) in cases {
            assert_eq!(s.covers(name), want, "{name}");
        }
        assert_eq!(s.fingerprint.len(), 64);
    }

    #[test]
    fn mismatched_key_is_refused() {
        let a = rcgen::KeyPair::generate().expect("key");
        let b = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["x.example.com".to_owned()])
            .expect("params")
            .self_signed(&a)
            .expect("cert");
        let err = Served::from_pem(&cert.pem(), &b.serialize_pem()).expect_err("mismatch");
        assert!(matches!(err, ServedError::Mismatch(_)), "{err}");
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(Served::from_pem("garbage", &a.serialize_pem()).is_err());
    }
}
