//! The 200 body, checked before anything is written: the PEMs parse, `issuerCert` is the chain
//! behind the leaf, the leaf is not expired and covers every requested name, and the leaf's key
//! is the expected one (same SubjectPublicKeyInfo): with `--key server` the `privateKey` sent
//! with it, with `--key local` this machine's key, and then the body must carry no
//! `privateKey` at all.
//!
//! The files are rendered from what was parsed, not copied from the body: the world-readable
//! ones can only ever hold certificates, and the key file only the one key.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::PublicKeyData;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use x509_parser::error::X509Error;
use x509_parser::prelude::{FromDer, X509Certificate};

use certfleet::domain::{DomainName, NameSet};
use certfleet::util::clock::rfc3339;
use certfleet::util::pem::{self, PemError};

/// The fields of the success body the client uses (docs/api.md); the rest is ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CertBody {
    /// Leaf followed by the chain.
    certificate: String,
    /// PKCS#8 PEM; only with `--key server` (absent for a certificate of the client's key).
    private_key: Option<String>,
    /// The chain without the leaf.
    issuer_cert: String,
}

impl fmt::Debug for CertBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertBody")
            .field("certificate", &self.certificate)
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "<redacted>"),
            )
            .field("issuer_cert", &self.issuer_cert)
            .finish()
    }
}

/// Why a 200 body was refused. No variant holds the private key or text from it.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A field's PEM does not decode; `field` is its JSON name.
    #[error("the {field} field is not valid PEM: {source}")]
    NotPem {
        field: &'static str,
        source: PemError,
    },
    /// The `certificate` field holds no certificate at all.
    #[error("the certificate field holds no PEM certificate")]
    NoCertificate,
    /// `issuerCert` differs from the certificates after the leaf in `certificate`.
    #[error("issuerCert is not the chain that follows the leaf in the certificate field")]
    ChainMismatch,
    /// The leaf's DER is not an X.509 certificate.
    #[error("the leaf certificate does not parse: {source}")]
    Leaf {
        source: x509_parser::nom::Err<X509Error>,
    },
    /// The leaf's notAfter (Unix seconds) has passed.
    #[error("the certificate expired at {}", rfc3339(*.not_after))]
    Expired { not_after: i64 },
    /// Requested names the leaf's DNS names do not cover, and the names it has.
    #[error(
        "the certificate does not cover {} (it names {})",
        .missing.join(", "),
        named(.sans)
    )]
    NotCovered {
        missing: Vec<String>,
        sans: Vec<String>,
    },
    /// `privateKey` is not a key rcgen reads; rcgen's error names the step, never the bytes.
    #[error("privateKey is not a PKCS#8 PEM private key ({source})")]
    Key { source: rcgen::Error },
    /// The key is not the leaf's.
    #[error("the private key does not match the certificate's public key")]
    KeyMismatch,
    /// `--key server`, and the body has no `privateKey`.
    #[error("the answer carries no privateKey, which --key server needs")]
    NoKey,
    /// `--key local`, and the body has a `privateKey`: the server misbehaves.
    #[error(
        "the answer carries a privateKey, but with --key local the key is made here and a server never sends one; check the server"
    )]
    KeySent,
    /// `--key local`, and the leaf is for another key than this machine's.
    #[error("the certificate is for another public key than the local key's")]
    NotLocalKey,
}

/// Whose public key the leaf must carry.
#[derive(Debug, Clone, Copy)]
pub(super) enum LeafKey<'a> {
    /// `--key server`: the key sent with it, in `privateKey`.
    Sent,
    /// `--key local`: this machine's key, SubjectPublicKeyInfo DER; no `privateKey` allowed.
    Local(&'a [u8]),
}

/// The leaf's DNS names for a message, or that it has none.
fn named(sans: &[String]) -> String {
    if sans.is_empty() {
        "no DNS name".to_owned()
    } else {
        sans.join(", ")
    }
}

/// The four files' contents, checked.
pub(super) struct Bundle {
    /// `cert.pem`: the leaf.
    pub(super) leaf_pem: String,
    /// `chain.pem`: the intermediates (`issuerCert`).
    pub(super) chain_pem: String,
    /// `fullchain.pem`: leaf + intermediates (`certificate`).
    pub(super) fullchain_pem: String,
    /// `key.pem`: the leaf's private key, PKCS#8, as the server sent it; `None` with
    /// `--key local`, where `key.pem` already holds it.
    pub(super) key_pem: Option<String>,
    /// The leaf's serial number, lowercase hex.
    pub(super) serial: String,
    /// The leaf's notAfter, RFC 3339.
    pub(super) not_after: String,
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("leaf_pem", &self.leaf_pem)
            .field("key_pem", &"<redacted>")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Bundle {
    /// Checks `body` for `names` at Unix time `now`, its leaf for `leaf_key`. The error says
    /// what is wrong and never quotes the key.
    pub(super) fn check(
        body: &CertBody,
        names: &NameSet,
        now: i64,
        leaf_key: LeafKey<'_>,
    ) -> Result<Self, BundleError> {
        let chain = certificates(&body.certificate, "certificate")?;
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(BundleError::NoCertificate);
        };
        if certificates(&body.issuer_cert, "issuerCert")? != intermediates {
            return Err(BundleError::ChainMismatch);
        }
        let (_, parsed) =
            X509Certificate::from_der(leaf).map_err(|source| BundleError::Leaf { source })?;
        let not_after = parsed.validity().not_after.timestamp();
        if not_after <= now {
            return Err(BundleError::Expired { not_after });
        }
        let sans: Vec<String> = pem::identifiers(&parsed)
            .iter()
            .map(|san| san.to_ascii_lowercase())
            .collect();
        let missing: Vec<String> = names
            .names()
            .iter()
            .map(DomainName::as_str)
            .filter(|name| !sans.iter().any(|san| covers(san, name)))
            .map(str::to_owned)
            .collect();
        if !missing.is_empty() {
            return Err(BundleError::NotCovered { missing, sans });
        }
        let key_pem = check_key(
            body.private_key.as_deref(),
            parsed.public_key().raw,
            leaf_key,
        )?;
        Ok(Self {
            leaf_pem: to_pem("CERTIFICATE", leaf),
            chain_pem: intermediates
                .iter()
                .map(|c| to_pem("CERTIFICATE", c))
                .collect(),
            fullchain_pem: chain.iter().map(|c| to_pem("CERTIFICATE", c)).collect(),
            key_pem,
            serial: parsed
                .tbs_certificate
                .raw_serial()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            not_after: rfc3339(not_after),
        })
    }
}

/// Checks that the leaf's public key (`leaf_spki`, DER) is `leaf_key`, and that a key was sent
/// exactly when one is expected. Returns the sent key, re-rendered as PKCS#8 PEM.
fn check_key(
    sent: Option<&str>,
    leaf_spki: &[u8],
    leaf_key: LeafKey<'_>,
) -> Result<Option<String>, BundleError> {
    match (leaf_key, sent) {
        (LeafKey::Sent, None) => Err(BundleError::NoKey),
        (LeafKey::Sent, Some(pem)) => {
            let key =
                rcgen::KeyPair::from_pem(pem).map_err(|source| BundleError::Key { source })?;
            if key.subject_public_key_info() != leaf_spki {
                return Err(BundleError::KeyMismatch);
            }
            Ok(Some(key.serialize_pem()))
        }
        (LeafKey::Local(_), Some(_)) => Err(BundleError::KeySent),
        (LeafKey::Local(local), None) if local != leaf_spki => Err(BundleError::NotLocalKey),
        (LeafKey::Local(_), None) => Ok(None),
    }
}

/// Every certificate in a PEM text (other PEM sections are skipped); `field` names it in errors.
fn certificates(
    text: &str,
    field: &'static str,
) -> Result<Vec<CertificateDer<'static>>, BundleError> {
    pem::certificates(text).map_err(|source| BundleError::NotPem { field, source })
}

/// Whether a certificate's DNS name covers a requested (normalised) name: equal, or a wildcard
/// `*.b.c` for a name exactly one label deeper (RFC 6125 section 6.4.3).
fn covers(san: &str, name: &str) -> bool {
    let san = san.strip_suffix('.').unwrap_or(san);
    if san == name {
        return true;
    }
    match (san.strip_prefix("*."), name.split_once('.')) {
        (Some(base), Some((label, rest))) => label != "*" && !label.is_empty() && base == rest,
        _ => false,
    }
}

/// PEM text of one DER object: base64 in 64-character lines, LF endings.
fn to_pem(label: &str, der: &[u8]) -> String {
    let encoded = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        // Base64 is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use rcgen::{CertificateParams, Issuer, KeyPair};

    /// A CA, and a leaf for `names` signed by it with `key`.
    fn issued(names: &[&str], key: &KeyPair) -> (String, String) {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let names: Vec<String> = names.iter().map(ToString::to_string).collect();
        let leaf = CertificateParams::new(names)
            .expect("leaf params")
            .signed_by(key, &issuer)
            .expect("leaf");
        (leaf.pem(), ca.pem())
    }

    fn body(certificate: String, private_key: String, issuer_cert: String) -> CertBody {
        CertBody {
            certificate,
            private_key: Some(private_key),
            issuer_cert,
        }
    }

    /// A body as a server sends it for a client's key: no `privateKey`.
    fn local_body(certificate: String, issuer_cert: String) -> CertBody {
        CertBody {
            certificate,
            private_key: None,
            issuer_cert,
        }
    }

    fn names(list: &[&str]) -> NameSet {
        NameSet::parse(list).expect("names")
    }

    #[test]
    fn a_consistent_body_becomes_four_files() {
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_RSA_SHA256,
        ] {
            let key = KeyPair::generate_for(alg).expect("key");
            let (leaf, ca) = issued(&["a.example.com", "*.b.example.com"], &key);
            let full = format!("{leaf}{ca}");
            let body = body(full, key.serialize_pem(), ca.clone());
            let wanted = names(&["A.example.com", "x.b.example.com", "*.b.example.com"]);
            let bundle =
                Bundle::check(&body, &wanted, certfleet::util::clock::now(), LeafKey::Sent)
                    .expect("consistent");
            assert_eq!(
                bundle.leaf_pem.replace("\r\n", "\n"),
                leaf.replace("\r\n", "\n")
            );
            assert_eq!(
                bundle.fullchain_pem,
                format!("{}{}", bundle.leaf_pem, bundle.chain_pem)
            );
            assert_eq!(bundle.key_pem, Some(key.serialize_pem()));
        }
    }

    #[test]
    fn inconsistent_bodies_are_refused() {
        let key = KeyPair::generate().expect("key");
        let other = KeyPair::generate().expect("other key");
        let (leaf, ca) = issued(&["a.example.com"], &key);
        let (_, other_ca) = issued(&["a.example.com"], &key);
        let full = format!("{leaf}{ca}");
        let now = certfleet::util::clock::now();
        let cases = [
            (
                body(full.clone(), other.serialize_pem(), ca.clone()),
                "a.example.com",
                "does not match",
            ),
            (
                body(full.clone(), "garbage".to_owned(), ca.clone()),
                "a.example.com",
                "privateKey",
            ),
            (
                body(full.clone(), key.serialize_pem(), other_ca),
                "a.example.com",
                "issuerCert",
            ),
            (
                body(String::new(), key.serialize_pem(), String::new()),
                "a.example.com",
                "no PEM",
            ),
            (
                body(full.clone(), key.serialize_pem(), ca.clone()),
                "b.example.com",
                "does not cover b.example.com",
            ),
            (
                body(full, key.serialize_pem(), ca),
                "x.a.example.com",
                "does not cover",
            ),
        ];
        for (body, name, want) in cases {
            let err = Bundle::check(&body, &names(&[name]), now, LeafKey::Sent)
                .expect_err(want)
                .to_string();
            assert!(err.contains(want), "{want}: {err}");
            assert!(!err.contains("PRIVATE KEY"), "{err}");
        }
    }

    #[test]
    fn with_a_local_key_the_leaf_is_for_it_and_no_key_comes_with_it() {
        let local = KeyPair::generate().expect("local key");
        let spki = local.subject_public_key_info();
        let (leaf, ca) = issued(&["a.example.com"], &local);
        let full = format!("{leaf}{ca}");
        let wanted = names(&["a.example.com"]);
        let now = certfleet::util::clock::now();

        let bundle = Bundle::check(
            &local_body(full.clone(), ca.clone()),
            &wanted,
            now,
            LeafKey::Local(&spki),
        )
        .expect("the local key's certificate");
        assert_eq!(bundle.key_pem, None, "key.pem is not written from the body");
        assert!(!bundle.serial.is_empty());

        // A leaf for another key than the local one.
        let other = KeyPair::generate().expect("other key");
        let (foreign, foreign_ca) = issued(&["a.example.com"], &other);
        let err = Bundle::check(
            &local_body(format!("{foreign}{foreign_ca}"), foreign_ca),
            &wanted,
            now,
            LeafKey::Local(&spki),
        )
        .expect_err("another key");
        assert!(matches!(err, BundleError::NotLocalKey), "{err:?}");

        // A private key sent along, even the right one: the server misbehaves.
        let err = Bundle::check(
            &body(full.clone(), local.serialize_pem(), ca.clone()),
            &wanted,
            now,
            LeafKey::Local(&spki),
        )
        .expect_err("a key was sent");
        assert!(matches!(err, BundleError::KeySent), "{err:?}");
        assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");

        // And a server-mode run needs the key.
        let err =
            Bundle::check(&local_body(full, ca), &wanted, now, LeafKey::Sent).expect_err("no key");
        assert!(matches!(err, BundleError::NoKey), "{err:?}");
    }

    #[test]
    fn an_expired_certificate_is_refused() {
        let key = KeyPair::generate().expect("key");
        let (leaf, ca) = issued(&["a.example.com"], &key);
        let body = body(format!("{leaf}{ca}"), key.serialize_pem(), ca);
        // rcgen's default validity ends in 4096.
        let err = Bundle::check(
            &body,
            &names(&["a.example.com"]),
            420_000_000_000,
            LeafKey::Sent,
        )
        .expect_err("expired");
        assert!(matches!(err, BundleError::Expired { .. }), "{err:?}");
        assert!(err.to_string().contains("expired"), "{err}");
    }

    #[test]
    fn wildcards_cover_one_label() {
        let cases = [
            ("a.example.com", "a.example.com", true),
            ("a.example.com.", "a.example.com", true),
            ("*.example.com", "a.example.com", true),
            ("*.example.com", "*.example.com", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "a.b.example.com", false),
            ("a.example.com", "*.example.com", false),
        ];
        for (san, name, want) in cases {
            assert_eq!(covers(san, name), want, "{san} covers {name}");
        }
    }

    #[test]
    fn the_key_never_shows_in_debug() {
        let key = KeyPair::generate().expect("key");
        let body = body(String::new(), key.serialize_pem(), String::new());
        assert!(!format!("{body:?}").contains("PRIVATE"));
    }
}
