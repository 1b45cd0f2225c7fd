//! Certificate signing requests a client brings (CSR mode, where certfleet never sees the
//! private key): read from PEM or base64url DER (as RFC 8555 section 7.4 carries them), their
//! signature checked with the key they carry, their names and key judged.
//!
//! A CSR is accepted only if it is at most [`MAX_CSR_BYTES`], parses as PKCS #10, is signed by
//! its own key, asks for DNS names only (subjectAltName, or the common name when it has none;
//! IP addresses are not issued), and carries a P-256, P-384 or RSA 2048-4096 key. Every refusal
//! is a [`CsrError`] with a stable code the API answers with.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::domain::{KeySpec, NameSet, SpkiHash};

/// The largest CSR accepted, in the form it was sent: a 4096-bit RSA CSR with a hundred names
/// is under 8 KiB.
pub const MAX_CSR_BYTES: usize = 16 * 1024;

/// A CSR that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCsr {
    /// The CSR itself, DER, as the CA gets it at finalize.
    pub der: Vec<u8>,
    /// The names it asks for, parsed as every request's are.
    pub names: NameSet,
    /// Its public key's algorithm.
    pub key: CsrKey,
    /// Its public key, the DER SubjectPublicKeyInfo the issued leaf must carry.
    pub spki_der: Vec<u8>,
    /// SHA-256 of its SubjectPublicKeyInfo: with the names, the identity of a CSR-mode
    /// certificate.
    pub spki_sha256: [u8; 32],
}

impl ClientCsr {
    /// The key spec of the identity it is issued for.
    pub fn key_spec(&self) -> KeySpec {
        KeySpec::Client(SpkiHash::from_digest(&self.spki_sha256))
    }

    /// The CSR as PEM, as the store keeps it.
    pub fn pem(&self) -> String {
        crate::util::pem::encode("CERTIFICATE REQUEST", &self.der)
    }
}

/// The public key algorithms a CSR may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrKey {
    /// ECDSA on P-256.
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
    /// RSA with a modulus of this many bits (2048 to 4096).
    Rsa(usize),
}

impl CsrKey {
    /// `ecdsa-p256`, `ecdsa-p384`, `rsa-<bits>`: as key types are named elsewhere.
    pub fn name(self) -> String {
        match self {
            Self::EcdsaP256 => "ecdsa-p256".to_owned(),
            Self::EcdsaP384 => "ecdsa-p384".to_owned(),
            Self::Rsa(bits) => format!("rsa-{bits}"),
        }
    }
}

/// Why a CSR was refused; [`CsrError::code`] is the API's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// Larger than [`MAX_CSR_BYTES`].
    #[error("the CSR is {0} bytes; at most {MAX_CSR_BYTES} are accepted")]
    TooLarge(usize),
    /// Not a PKCS #10 request in PEM or base64url DER.
    #[error("not a certificate signing request: {0}; send PKCS #10 as PEM or base64url DER")]
    Malformed(String),
    /// The signature does not verify with the CSR's own key.
    #[error("the CSR's signature does not verify with its own public key")]
    BadSignature,
    /// A key certfleet does not issue for (weak, or of an unknown algorithm).
    #[error("{0}; use an ECDSA P-256 or P-384 key, or RSA of 2048 to 4096 bits")]
    UnsupportedKey(String),
    /// No name to issue for.
    #[error("the CSR names no DNS name (neither in subjectAltName nor as its common name)")]
    NoNames,
    /// An IP address subjectAltName that is neither 4 (IPv4) nor 16 (IPv6) bytes long.
    #[error(
        "the CSR's IP address subjectAltName is {0}; an address is 4 (IPv4) or 16 (IPv6) bytes"
    )]
    IpAddress(String),
    /// A name that is not a valid DNS name, or another kind of subjectAltName.
    #[error("the CSR's name {0}")]
    BadName(String),
}

impl CsrError {
    /// One refusal of every kind, for the checks that every code is documented.
    pub fn one_of_each() -> Vec<Self> {
        let all = vec![
            Self::TooLarge(0),
            Self::Malformed(String::new()),
            Self::BadSignature,
            Self::UnsupportedKey(String::new()),
            Self::NoNames,
            Self::IpAddress(String::new()),
            Self::BadName(String::new()),
        ];
        for err in &all {
            // Stops compiling when a kind is added, until it is listed above.
            match err {
                Self::TooLarge(_)
                | Self::Malformed(_)
                | Self::BadSignature
                | Self::UnsupportedKey(_)
                | Self::NoNames
                | Self::IpAddress(_)
                | Self::BadName(_) => {}
            }
        }
        all
    }

    /// The stable API error code of this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "csr_too_large",
            Self::Malformed(_) => "csr_malformed",
            Self::BadSignature => "csr_bad_signature",
            Self::UnsupportedKey(_) => "csr_unsupported_key",
            Self::NoNames => "csr_no_names",
            Self::IpAddress(_) => "csr_ip_address",
            Self::BadName(_) => "csr_bad_name",
        }
    }
}

/// Reads and checks the CSR `input`: PEM (`-----BEGIN CERTIFICATE REQUEST-----`), or the
/// base64url DER of RFC 8555 (padding allowed).
pub fn parse(input: &str) -> Result<ClientCsr, CsrError> {
    if input.len() > MAX_CSR_BYTES {
        return Err(CsrError::TooLarge(input.len()));
    }
    let text = input.trim();
    let der = if text.starts_with("-----BEGIN") {
        CertificateSigningRequestDer::from_pem_slice(text.as_bytes())
            .map_err(|e| CsrError::Malformed(format!("bad PEM ({e})")))?
            .as_ref()
            .to_vec()
    } else {
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| CsrError::Malformed("neither PEM nor base64url".to_owned()))?
    };
    let (rest, request) = X509CertificationRequest::from_der(&der)
        .map_err(|e| CsrError::Malformed(format!("bad DER ({e})")))?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed("bytes after the request".to_owned()));
    }
    let key = key(&request)?;
    request
        .verify_signature()
        .map_err(|_| CsrError::BadSignature)?;
    let names = names(&request)?;
    let spki = request.certification_request_info.subject_pki.raw;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki);
    let mut spki_sha256 = [0u8; 32];
    spki_sha256.copy_from_slice(digest.as_ref());
    Ok(ClientCsr {
        der: der.clone(),
        names,
        key,
        spki_der: spki.to_vec(),
        spki_sha256,
    })
}

/// The CSR's key, if certfleet issues for it.
fn key(request: &X509CertificationRequest<'_>) -> Result<CsrKey, CsrError> {
    let spki = &request.certification_request_info.subject_pki;
    let parsed = spki
        .parsed()
        .map_err(|_| CsrError::UnsupportedKey("the CSR's public key cannot be read".to_owned()))?;
    match parsed {
        PublicKey::EC(_) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => Ok(CsrKey::EcdsaP256),
                Some("1.3.132.0.34") => Ok(CsrKey::EcdsaP384),
                Some("1.3.132.0.10") => Err(CsrError::UnsupportedKey(
                    "the CSR's key is on secp256k1, which no public CA signs".to_owned(),
                )),
                Some(other) => Err(CsrError::UnsupportedKey(format!(
                    "the CSR's key is on the curve {other}"
                ))),
                None => Err(CsrError::UnsupportedKey(
                    "the CSR's EC key names no curve".to_owned(),
                )),
            }
        }
        PublicKey::RSA(rsa) => match rsa.key_size() {
            bits @ 2048..=4096 => Ok(CsrKey::Rsa(bits)),
            bits => Err(CsrError::UnsupportedKey(format!(
                "the CSR's RSA key has {bits} bits"
            ))),
        },
        _ => Err(CsrError::UnsupportedKey(format!(
            "the CSR's key is of the algorithm {}",
            spki.algorithm.algorithm.to_id_string()
        ))),
    }
}

/// The identifiers the CSR asks for: its subjectAltName's DNS names and IP addresses, else its
/// common name.
fn names(request: &X509CertificationRequest<'_>) -> Result<NameSet, CsrError> {
    let mut names = Vec::new();
    for extension in request.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = extension {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => match crate::util::pem::ip_address(bytes) {
                        Some(ip) => names.push(ip.to_string()),
                        None => {
                            return Err(CsrError::IpAddress(format!("{} bytes", bytes.len())));
                        }
                    },
                    other => {
                        return Err(CsrError::BadName(format!(
                            "{other} is neither a DNS name nor an IP address; only those are issued"
                        )));
                    }
                }
            }
        }
    }
    if names.is_empty() {
        let subject = &request.certification_request_info.subject;
        names.extend(
            subject
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_owned),
        );
    }
    if names.is_empty() {
        return Err(CsrError::NoNames);
    }
    NameSet::parse(&names).map_err(|e| CsrError::BadName(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PublicKeyData,
    };

    fn csr(names: &[&str], key: &KeyPair) -> String {
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("params");
        params
            .serialize_request(key)
            .expect("CSR")
            .pem()
            .expect("PEM")
    }

    #[test]
    fn a_p256_and_a_p384_csr_are_read_from_pem_and_from_base64url_der() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let pem = csr(&["www.a.example.com", "a.example.com"], &key);
        let read = parse(&pem).expect("a good CSR");
        assert_eq!(read.key, CsrKey::EcdsaP256);
        assert_eq!(read.names.key(), "a.example.com,www.a.example.com");
        let spki =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &key.subject_public_key_info());
        assert_eq!(read.spki_sha256.as_slice(), spki.as_ref());
        let der = URL_SAFE_NO_PAD.encode(&read.der);
        assert_eq!(parse(&der).expect("base64url DER"), read);

        let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).expect("key");
        assert_eq!(
            parse(&csr(&["b.example.com"], &key)).expect("P-384").key,
            CsrKey::EcdsaP384
        );
    }

    #[test]
    fn an_openssl_rsa_2048_csr_with_only_a_common_name_is_read() {
        let read = parse(include_str!("testdata/rsa2048-cn-only.csr")).expect("RSA 2048");
        assert_eq!(read.key, CsrKey::Rsa(2048));
        assert_eq!(read.key.name(), "rsa-2048");
        assert_eq!(read.names.key(), "rsa.example.com");
    }

    #[test]
    fn weak_keys_other_curves_and_ip_addresses_are_refused_with_their_codes() {
        for (file, code) in [
            (include_str!("testdata/rsa1024.csr"), "csr_unsupported_key"),
            (
                include_str!("testdata/secp256k1.csr"),
                "csr_unsupported_key",
            ),
        ] {
            let err = parse(file).expect_err("refused");
            assert_eq!(err.code(), code, "{err}");
        }
        let err = parse(include_str!("testdata/rsa1024.csr")).expect_err("weak");
        assert!(err.to_string().contains("1024 bits"), "{err}");
    }

    #[test]
    fn ip_addresses_are_identifiers_and_a_malformed_one_is_refused_with_its_code() {
        let read = parse(include_str!("testdata/ip-address.csr")).expect("an IP CSR");
        assert!(read.names.names().iter().any(|n| n.as_str() == "192.0.2.1"));
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let read = parse(&csr(&["2001:DB8::1", "a.example.com"], &key)).expect("v6");
        assert_eq!(read.names.key(), "2001:db8::1,a.example.com");
        // subjectAltName = SEQUENCE { [7] five bytes }: no address is five bytes long.
        let mut params = CertificateParams::default();
        params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            &[2, 5, 29, 17],
            vec![0x30, 7, 0x87, 5, 192, 0, 2, 1, 9],
        )];
        let pem = params
            .serialize_request(&key)
            .expect("CSR")
            .pem()
            .expect("PEM");
        let err = parse(&pem).expect_err("five bytes");
        assert_eq!(err.code(), "csr_ip_address", "{err}");
        assert!(err.to_string().contains("5 bytes"), "{err}");
    }

    #[test]
    fn a_broken_signature_garbage_and_oversized_input_are_refused() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let pem = csr(&["a.example.com"], &key);
        let mut der = parse(&pem).expect("good").der;
        // The last byte is the signature's: flipping it breaks the signature, not the DER.
        let last = der.len() - 1;
        der[last] ^= 1;
        let err = parse(&URL_SAFE_NO_PAD.encode(&der)).expect_err("broken");
        assert_eq!(err.code(), "csr_bad_signature");
        assert_eq!(
            parse("not a csr at all!").expect_err("garbage").code(),
            "csr_malformed"
        );
        assert_eq!(
            parse(&URL_SAFE_NO_PAD.encode(b"garbage"))
                .expect_err("garbage")
                .code(),
            "csr_malformed"
        );
        let huge = "A".repeat(1 << 20);
        assert_eq!(parse(&huge).expect_err("huge").code(), "csr_too_large");
    }

    #[test]
    fn a_csr_without_names_or_with_a_bad_name_is_refused() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        let pem = params
            .serialize_request(&key)
            .expect("CSR")
            .pem()
            .expect("PEM");
        assert_eq!(parse(&pem).expect_err("nameless").code(), "csr_no_names");
        let bad = csr(&["a..example.com"], &key);
        assert_eq!(parse(&bad).expect_err("bad name").code(), "csr_bad_name");
    }
}
