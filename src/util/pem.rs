//! One reader for three callers: the server's own TLS identity, the ACME chain check and
//! `certfleet fetch` read the same formats, and reading them in one place keeps them agreeing.
//!
//! The errors carry the PEM decoder's own description and say nothing more: each caller words
//! the context (which file, which field, which step) itself, and a key's bytes appear in
//! neither.

use rustls_pki_types::pem::{self as decoder, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{GeneralName, ParsedExtension, X509Certificate};

/// Why a PEM text did not yield what was asked of it.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// A `CERTIFICATE` section is malformed (bad base64, a `BEGIN` without its `END`), or, for
    /// [`first_certificate`], there is none ([`decoder::Error::NoItemsFound`]).
    #[error(transparent)]
    Certificate(decoder::Error),
    /// The private key section is malformed, or there is none.
    #[error(transparent)]
    PrivateKey(decoder::Error),
}

/// `der` as one PEM section labelled `label` (`CERTIFICATE REQUEST`, ...): base64 in lines of
/// 64 characters (RFC 7468).
pub fn encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Every `CERTIFICATE` section of `text`, in order (a chain is leaf first); other sections are
/// skipped. No certificate at all is an empty list, not an error: an intermediates-only field
/// may rightly be empty, and each caller knows whether its text must hold one.
pub fn certificates(text: &str) -> Result<Vec<CertificateDer<'static>>, PemError> {
    CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(PemError::Certificate)
}

/// The first `CERTIFICATE` section of `text`; later sections are not read.
pub fn first_certificate(text: &str) -> Result<CertificateDer<'static>, PemError> {
    CertificateDer::from_pem_slice(text.as_bytes()).map_err(PemError::Certificate)
}

/// The first private key of `text`, in any of the forms rustls signs with: PKCS#8 (`PRIVATE
/// KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`).
pub fn private_key(text: &str) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(PemError::PrivateKey)
}

/// The DNS names in a certificate's subjectAltName extension, as written (callers that compare
/// case-insensitively lowercase them).
pub fn dns_names<'a>(cert: &'a X509Certificate<'_>) -> impl Iterator<Item = &'a str> {
    alt_names(cert).filter_map(|name| match name {
        GeneralName::DNSName(dns) => Some(*dns),
        _ => None,
    })
}

/// The leaf's subjectAltName identifiers as certfleet writes them: DNS names as they are, IP
/// addresses in canonical text (`192.0.2.1`, `2001:db8::1`); other kinds are left out.
pub fn identifiers(cert: &X509Certificate<'_>) -> Vec<String> {
    alt_names(cert)
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            GeneralName::IPAddress(bytes) => ip_address(bytes).map(|ip| ip.to_string()),
            _ => None,
        })
        .collect()
}

/// Every general name of the certificate's subjectAltName extensions.
fn alt_names<'a>(cert: &'a X509Certificate<'_>) -> impl Iterator<Item = &'a GeneralName<'a>> {
    cert.extensions()
        .iter()
        .filter_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => Some(&san.general_names),
            _ => None,
        })
        .flatten()
}

/// An address from its subjectAltName bytes (4 for IPv4, 16 for IPv6).
pub fn ip_address(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rcgen::{CertificateParams, KeyPair};
    use x509_parser::prelude::FromDer;

    fn self_signed(names: &[&str]) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(ToString::to_string).collect();
        let cert = CertificateParams::new(names)
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        (cert, key)
    }

    /// PEM text of one DER object, for the key forms rcgen does not write itself.
    fn encode(label: &str, der: &[u8]) -> String {
        use base64::Engine;
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
    }

    #[test]
    fn a_chain_comes_back_in_order_with_other_sections_skipped() {
        let (leaf, key) = self_signed(&["a.example.com"]);
        let (ca, _) = self_signed(&["ca.example.com"]);
        let text = format!("{}{}{}", leaf.pem(), key.serialize_pem(), ca.pem());
        let chain = certificates(&text).expect("a chain");
        assert_eq!(chain, [leaf.der().clone(), ca.der().clone()]);
        assert_eq!(first_certificate(&text).expect("a leaf"), *leaf.der());
    }

    #[test]
    fn garbage_is_refused_as_a_certificate_error() {
        let cut = "-----BEGIN CERTIFICATE-----\nAAAA\n";
        let bad_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        for text in [cut, bad_base64] {
            let err = certificates(text).expect_err(text);
            assert!(matches!(err, PemError::Certificate(_)), "{text}: {err:?}");
            assert!(first_certificate(text).is_err(), "{text}");
        }
        // The text is the decoder's own, so callers' messages read as they always have.
        let err = certificates(cut).expect_err("no END line");
        let PemError::Certificate(inner) = &err else {
            panic!("{err:?}");
        };
        assert_eq!(err.to_string(), inner.to_string());
    }

    #[test]
    fn no_certificate_is_an_empty_chain_but_no_first_certificate() {
        let (_, key) = self_signed(&["a.example.com"]);
        for text in ["", "garbage", &key.serialize_pem()] {
            assert_eq!(certificates(text).expect(text), Vec::new(), "{text}");
            let err = first_certificate(text).expect_err(text);
            assert!(
                matches!(err, PemError::Certificate(decoder::Error::NoItemsFound)),
                "{err:?}"
            );
            assert_eq!(err.to_string(), "no items found");
        }
    }

    #[test]
    fn keys_are_read_in_every_form_rustls_signs_with() {
        let key = KeyPair::generate().expect("key");
        let (cert, _) = self_signed(&["a.example.com"]);

        // A key behind a certificate, as a combined PEM file holds it.
        let pkcs8 = private_key(&format!("{}{}", cert.pem(), key.serialize_pem())).expect("PKCS#8");
        assert!(matches!(pkcs8, PrivateKeyDer::Pkcs8(_)), "{pkcs8:?}");
        assert_eq!(pkcs8.secret_der(), key.serialized_der());

        // The label decides the form; whether the DER is a usable key is the signer's check.
        let der = [0x30, 0x03, 0x02, 0x01, 0x01];
        let sec1 = private_key(&encode("EC PRIVATE KEY", &der)).expect("SEC1");
        assert!(matches!(sec1, PrivateKeyDer::Sec1(_)), "{sec1:?}");
        let pkcs1 = private_key(&encode("RSA PRIVATE KEY", &der)).expect("PKCS#1");
        assert!(matches!(pkcs1, PrivateKeyDer::Pkcs1(_)), "{pkcs1:?}");
        assert_eq!(pkcs1.secret_der(), der);

        let cut = "-----BEGIN PRIVATE KEY-----\nAAAA\n";
        for text in [cert.pem().as_str(), "", "garbage", cut] {
            let err = private_key(text).expect_err("no key");
            assert!(matches!(err, PemError::PrivateKey(_)), "{err:?}");
        }
    }

    #[test]
    fn dns_names_are_the_san_entries_as_written() {
        let (cert, _) = self_signed(&["A.example.com", "*.b.example.com"]);
        let (_, parsed) = X509Certificate::from_der(cert.der()).expect("parses");
        let names: Vec<&str> = dns_names(&parsed).collect();
        assert_eq!(names, ["A.example.com", "*.b.example.com"]);
    }
}
