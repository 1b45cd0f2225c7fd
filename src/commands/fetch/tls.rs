//! Whom the client trusts for the server's HTTPS: the system's roots, only the roots of
//! `--ca-file`, or one certificate pinned by its SHA-256 fingerprint (`--pin-sha256`).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::digest::{SHA256, digest};
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::args::FlagPath;

/// Why the trust flags cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// `--ca-file` cannot be read.
    #[error("{file}: cannot read it: {source}")]
    Unreadable {
        file: FlagPath,
        source: std::io::Error,
    },
    /// `--ca-file` is not a PEM bundle reqwest accepts.
    #[error("{file}: not PEM certificates: {source}")]
    NotPem {
        file: FlagPath,
        source: reqwest::Error,
    },
    /// `--ca-file` decodes, but to no certificate.
    #[error("{file}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate { file: FlagPath },
    /// `--pin-sha256` is not 64 hex digits (colons aside); `text` is the flag's value.
    #[error(
        "--pin-sha256 {text:?}: expected the certificate's SHA-256 fingerprint, 64 hex digits \
         (openssl x509 -in cert.pem -noout -fingerprint -sha256)"
    )]
    Pin { text: String },
    /// rustls refused the pinning configuration.
    #[error("TLS setup failed: {source}")]
    Setup { source: rustls::Error },
}

/// The server-certificate policy chosen on the command line.
#[derive(Debug)]
pub(super) enum Trust {
    /// The system's roots (through rustls-platform-verifier), names checked.
    System,
    /// Only these roots (a private CA), names checked. The system's roots are NOT added: a
    /// client pointed at a private CA should not also accept any public CA's certificate for
    /// that name.
    Roots(Vec<reqwest::Certificate>),
    /// Exactly one certificate, by the SHA-256 of its DER; no chain or name check.
    Pin([u8; 32]),
}

impl Trust {
    /// From `--ca-file` and `--pin-sha256` (clap refuses both at once).
    pub(super) fn new(ca_file: Option<&Path>, pin: Option<&str>) -> Result<Self, TrustError> {
        if let Some(path) = ca_file {
            let file = || FlagPath::new("--ca-file", path);
            let pem = std::fs::read(path).map_err(|source| TrustError::Unreadable {
                file: file(),
                source,
            })?;
            let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                TrustError::NotPem {
                    file: file(),
                    source,
                }
            })?;
            if roots.is_empty() {
                return Err(TrustError::NoCertificate { file: file() });
            }
            return Ok(Self::Roots(roots));
        }
        match pin {
            Some(text) => parse_pin(text).map(Self::Pin),
            None => Ok(Self::System),
        }
    }

    /// Applies the policy to a reqwest client under construction.
    pub(super) fn apply(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, TrustError> {
        Ok(match self {
            Self::System => builder,
            Self::Roots(roots) => builder.tls_certs_only(roots.iter().cloned()),
            Self::Pin(pin) => builder.tls_backend_preconfigured(pinned_config(*pin)?),
        })
    }
}

/// Parses a SHA-256 fingerprint: 64 hex digits, colons and case ignored (the forms `openssl
/// x509 -fingerprint -sha256` and `sha256sum` print).
fn parse_pin(text: &str) -> Result<[u8; 32], TrustError> {
    let hex: String = text.chars().filter(|&c| c != ':').collect();
    let problem = || TrustError::Pin {
        text: text.to_owned(),
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(problem());
    }
    let mut pin = [0u8; 32];
    for (byte, pair) in pin.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| problem())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| problem())?;
    }
    Ok(pin)
}

/// A rustls client config that accepts only the pinned certificate. The handshake's
/// signatures are still verified, with the aws-lc-rs provider's algorithms, so the peer must
/// hold the pinned certificate's private key.
fn pinned_config(pin: [u8; 32]) -> Result<rustls::ClientConfig, TrustError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = PinVerifier {
        pin,
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TrustError::Setup { source })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts the server certificate whose DER hashes to `pin`.
#[derive(Debug)]
struct PinVerifier {
    pin: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = digest(&SHA256, end_entity.as_ref());
        if got.as_ref() == self.pin {
            return Ok(ServerCertVerified::assertion());
        }
        let mismatch = PinMismatch {
            got: to_hex(got.as_ref()),
            want: to_hex(&self.pin),
        };
        // `Other` rather than `InvalidCertificate(Other)`: rustls prints the latter with Debug.
        Err(rustls::Error::Other(rustls::OtherError(Arc::new(mismatch))))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The server presented another certificate than the pinned one.
#[derive(Debug)]
struct PinMismatch {
    got: String,
    want: String,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server's certificate has SHA-256 {}, but --pin-sha256 is {}",
            self.got, self.want
        )
    }
}

impl std::error::Error for PinMismatch {}

/// Lowercase hex, colon-separated like `openssl -fingerprint` prints it.
fn to_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_ignore_colons_and_case() {
        let plain = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_pin(&plain).expect("plain"), [0xab; 32]);
        assert_eq!(parse_pin(&colons).expect("colons"), [0xab; 32]);
        for bad in [
            "",
            "ab",
            &"ab".repeat(33),
            &"zz".repeat(32),
            &"é".repeat(32),
        ] {
            let err = parse_pin(bad).expect_err(bad);
            assert!(err.to_string().contains("64 hex digits"), "{err}");
        }
    }

    #[test]
    fn the_verifier_accepts_only_the_pinned_certificate() {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("self-signed");
        let der = cert.der().clone();
        let pin: [u8; 32] = digest(&SHA256, der.as_ref())
            .as_ref()
            .try_into()
            .expect("32 bytes");
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let verifier = |pin| PinVerifier {
            pin,
            algorithms: provider.signature_verification_algorithms,
        };
        let name = ServerName::try_from("anything.example").expect("name");
        let check = |v: &PinVerifier| v.verify_server_cert(&der, &[], &name, &[], UnixTime::now());
        assert!(check(&verifier(pin)).is_ok());
        let err = check(&verifier([0; 32])).expect_err("another pin");
        assert!(err.to_string().contains("--pin-sha256"), "{err}");
    }
}
