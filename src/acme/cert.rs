//! Certificate material: a fresh key and CSR per order, and the checks on what the CA returns.

use rcgen::{CertificateParams, DistinguishedName, KeyPair, PublicKeyData, RsaKeySize};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::domain::{DomainName, KeyType, NameSet};
use crate::util::pem::{self, PemError};

/// Why a key or CSR could not be made: certfleet's own failure.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key generator failed.
    #[error("generate a {key_type} key: {source}")]
    Generate {
        /// The key type asked for.
        key_type: KeyType,
        /// The generator's error.
        source: rcgen::Error,
    },
    /// The order's stored key does not parse.
    #[error("read the order's key: {0}")]
    Read(#[source] rcgen::Error),
    /// The names do not make CSR parameters.
    #[error("build the CSR: {0}")]
    Build(#[source] rcgen::Error),
    /// Signing the CSR failed.
    #[error("sign the CSR: {0}")]
    Sign(#[source] rcgen::Error),
}

/// Why the CA's chain is refused.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// No certificate in what the CA sent.
    #[error("the CA returned no certificate")]
    Empty,
    /// The leaf is not readable PEM.
    #[error("the CA returned an unreadable certificate: {0}")]
    Unreadable(#[source] PemError),
    /// The leaf is not a parseable X.509 certificate.
    #[error("the CA returned an unparseable certificate: {0}")]
    Unparseable(#[source] x509_parser::nom::Err<x509_parser::error::X509Error>),
    /// The leaf carries another public key than the CSR's.
    #[error("the CA returned a certificate for another key")]
    OtherKey,
    /// The leaf names other names than the order's.
    #[error("the CA returned a certificate for {sans} instead of {names}")]
    OtherNames {
        /// The leaf's names, comma-joined.
        sans: String,
        /// The order's names.
        names: NameSet,
    },
}

/// A private key (PKCS#8 PEM) and a CSR (DER) naming every name of the set.
pub struct KeyAndCsr {
    /// The private key, PEM.
    pub key_pem: String,
    /// The CSR, DER.
    pub csr_der: Vec<u8>,
    /// The public key, SubjectPublicKeyInfo DER: the issued leaf must carry exactly this.
    pub spki_der: Vec<u8>,
}

impl std::fmt::Debug for KeyAndCsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAndCsr")
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Generates a fresh private key of `key_type`, PKCS#8 PEM.
pub fn new_key(key_type: KeyType) -> Result<String, KeyError> {
    let key = match key_type {
        KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048),
        KeyType::Rsa3072 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072),
        KeyType::Rsa4096 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096),
    }
    .map_err(|source| KeyError::Generate { key_type, source })?;
    Ok(key.serialize_pem())
}

/// A CSR for `key_pem` with the names as SANs and an empty subject (RFC 8555 section 7.4
/// takes the names from the SANs).
pub fn csr(names: &NameSet, key_pem: &str) -> Result<KeyAndCsr, KeyError> {
    let key = KeyPair::from_pem(key_pem).map_err(KeyError::Read)?;
    let names: Vec<String> = names.names().iter().map(ToString::to_string).collect();
    let mut params = CertificateParams::new(names).map_err(KeyError::Build)?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(KeyError::Sign)?;
    Ok(KeyAndCsr {
        key_pem: key_pem.to_owned(),
        csr_der: csr.der().to_vec(),
        spki_der: key.subject_public_key_info(),
    })
}

/// What certfleet keeps of an issued chain, after checking it.
#[derive(Debug)]
pub struct IssuedChain {
    /// Leaf then chain, PEM, as the CA sent it.
    pub full_pem: String,
    /// The chain without the leaf, PEM.
    pub issuer_pem: String,
    /// The leaf's serial number, lowercase hex.
    pub serial: String,
    /// Validity start, Unix seconds.
    pub not_before: i64,
    /// Validity end, Unix seconds.
    pub not_after: i64,
}

/// Splits the CA's PEM chain (RFC 8555 section 7.4.2: leaf first) and checks that the leaf
/// carries our public key and exactly the requested names.
pub fn check_chain(
    chain_pem: &str,
    names: &NameSet,
    spki_der: &[u8],
) -> Result<IssuedChain, ChainError> {
    const END: &str = "-----END CERTIFICATE-----";
    let blocks: Vec<String> = chain_pem
        .split_inclusive(END)
        .map(str::trim)
        .filter(|block| block.contains("-----BEGIN CERTIFICATE-----"))
        .map(|block| format!("{block}\n"))
        .collect();
    let Some(leaf_pem) = blocks.first() else {
        return Err(ChainError::Empty);
    };
    let leaf_der = pem::first_certificate(leaf_pem).map_err(ChainError::Unreadable)?;
    let (_, leaf) = X509Certificate::from_der(&leaf_der).map_err(ChainError::Unparseable)?;
    if leaf.public_key().raw != spki_der {
        return Err(ChainError::OtherKey);
    }
    let sans = pem::identifiers(&leaf);
    let mut sans: Vec<&str> = sans.iter().map(String::as_str).collect();
    sans.sort();
    sans.dedup();
    let wanted: Vec<&str> = names.names().iter().map(DomainName::as_str).collect();
    if sans != wanted {
        return Err(ChainError::OtherNames {
            sans: sans.join(","),
            names: names.clone(),
        });
    }
    let serial = leaf
        .tbs_certificate
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(IssuedChain {
        full_pem: blocks.concat(),
        issuer_pem: blocks[1..].concat(),
        serial,
        not_before: leaf.validity().not_before.timestamp(),
        not_after: leaf.validity().not_after.timestamp(),
    })
}
