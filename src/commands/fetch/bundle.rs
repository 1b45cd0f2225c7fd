//! The 200 body, checked before anything is written: the PEMs parse, `issuerCert` is the chain
//! behind the leaf, the leaf is not expired and covers every requested name, and the private key
//! is the leaf's (same SubjectPublicKeyInfo).
//!
//! The files are rendered from what was parsed, not copied from the body: the world-readable
//! ones can only ever hold certificates, and the key file only the one key.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::PublicKeyData;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

use certfleet::domain::{DomainName, NameSet};
use certfleet::util::clock::rfc3339;

/// The fields of the success body the client uses (docs/api.md); the rest is ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CertBody {
    /// Leaf followed by the chain.
    certificate: String,
    /// PKCS#8 PEM.
    private_key: String,
    /// The chain without the leaf.
    issuer_cert: String,
}

impl fmt::Debug for CertBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertBody")
            .field("certificate", &self.certificate)
            .field("private_key", &"<redacted>")
            .field("issuer_cert", &self.issuer_cert)
            .finish()
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
    /// `key.pem`: the leaf's private key, PKCS#8.
    pub(super) key_pem: String,
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
    /// Checks `body` for `names` at Unix time `now`. The error says what is wrong and never
    /// quotes the key.
    pub(super) fn check(body: &CertBody, names: &NameSet, now: i64) -> Result<Self, String> {
        let chain = certificates(&body.certificate, "certificate")?;
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err("the certificate field holds no PEM certificate".to_owned());
        };
        if certificates(&body.issuer_cert, "issuerCert")? != intermediates {
            return Err(
                "issuerCert is not the chain that follows the leaf in the certificate field"
                    .to_owned(),
            );
        }
        let (_, parsed) = X509Certificate::from_der(leaf)
            .map_err(|e| format!("the leaf certificate does not parse: {e}"))?;
        let not_after = parsed.validity().not_after.timestamp();
        if not_after <= now {
            return Err(format!("the certificate expired at {}", rfc3339(not_after)));
        }
        let sans = dns_names(&parsed);
        let missing: Vec<&str> = names
            .names()
            .iter()
            .map(DomainName::as_str)
            .filter(|name| !sans.iter().any(|san| covers(san, name)))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "the certificate does not cover {} (it names {})",
                missing.join(", "),
                if sans.is_empty() {
                    "no DNS name".to_owned()
                } else {
                    sans.join(", ")
                }
            ));
        }
        // rcgen's errors name the parsing step, never the key's bytes.
        let key = rcgen::KeyPair::from_pem(&body.private_key)
            .map_err(|e| format!("privateKey is not a PKCS#8 PEM private key ({e})"))?;
        if key.subject_public_key_info() != parsed.public_key().raw {
            return Err("the private key does not match the certificate's public key".to_owned());
        }
        Ok(Self {
            leaf_pem: pem("CERTIFICATE", leaf),
            chain_pem: intermediates
                .iter()
                .map(|c| pem("CERTIFICATE", c))
                .collect(),
            fullchain_pem: chain.iter().map(|c| pem("CERTIFICATE", c)).collect(),
            key_pem: key.serialize_pem(),
            not_after: rfc3339(not_after),
        })
    }
}

/// Every certificate in a PEM text (other PEM sections are skipped); `field` names it in errors.
fn certificates(text: &str, field: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the {field} field is not valid PEM: {e}"))
}

/// The DNS names of the leaf's subjectAltName extension, lowercased.
fn dns_names(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.extensions()
        .iter()
        .filter_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => Some(&san.general_names),
            _ => None,
        })
        .flatten()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
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
fn pem(label: &str, der: &[u8]) -> String {
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
            private_key,
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
                Bundle::check(&body, &wanted, certfleet::util::clock::now()).expect("consistent");
            assert_eq!(
                bundle.leaf_pem.replace("\r\n", "\n"),
                leaf.replace("\r\n", "\n")
            );
            assert_eq!(
                bundle.fullchain_pem,
                format!("{}{}", bundle.leaf_pem, bundle.chain_pem)
            );
            assert_eq!(bundle.key_pem, key.serialize_pem());
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
            let err = Bundle::check(&body, &names(&[name]), now).expect_err(want);
            assert!(err.contains(want), "{want}: {err}");
            assert!(!err.contains("PRIVATE KEY"), "{err}");
        }
    }

    #[test]
    fn an_expired_certificate_is_refused() {
        let key = KeyPair::generate().expect("key");
        let (leaf, ca) = issued(&["a.example.com"], &key);
        let body = body(format!("{leaf}{ca}"), key.serialize_pem(), ca);
        // rcgen's default validity ends in 4096.
        let err =
            Bundle::check(&body, &names(&["a.example.com"]), 420_000_000_000).expect_err("expired");
        assert!(err.contains("expired"), "{err}");
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
