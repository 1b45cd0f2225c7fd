//! TLS-ALPN-01 (RFC 8737, and RFC 8738 section 6 for IP addresses): the CA opens a TLS
//! connection offering only the `acme-tls/1` protocol, with the identifier as SNI (an address's
//! reverse name, `1.2.0.192.in-addr.arpa`, for an IP), and expects a self-signed certificate
//! naming exactly that identifier with the critical `acmeIdentifier` extension holding the
//! SHA-256 of the key authorization.
//!
//! Key authorizations live in the store, like HTTP-01 tokens, so any process sharing it answers
//! the handshake: on `challenges.tlsAlpn01.listen`, and on certfleet's own TLS listener, which
//! hands a hello offering `acme-tls/1` to [`Responder::answer`] and serves everything else.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::digest;
use instant_acme::ChallengeType;
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, KeyPair, SanType};
use rustls::server::ClientHello;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::{LazyConfigAcceptor, StartHandshake};

use super::IssueError;
use super::solver::{CleanupError, Presented, Solver};
use crate::domain::DomainName;
use crate::store::{Store, StoreError};

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737 section 6.2).
pub const ACME_TLS_1: &[u8] = b"acme-tls/1";

/// A handshake slower than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS-ALPN-01 key authorization that could not be removed from the store.
#[derive(Debug, thiserror::Error)]
#[error("tls-alpn-01: remove the key authorization for {name}: {source}")]
struct RemoveError {
    /// The identifier it validated.
    name: String,
    source: StoreError,
}

/// Presents TLS-ALPN-01 responses by writing the key authorizations to the store.
#[derive(Debug, Clone)]
pub struct TlsAlpn01Solver {
    store: Arc<dyn Store>,
}

impl TlsAlpn01Solver {
    /// A solver writing to `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl Solver for TlsAlpn01Solver {
    fn challenge_type(&self) -> ChallengeType {
        ChallengeType::TlsAlpn01
    }

    async fn present(
        &self,
        prepared: &Presented,
        token: &str,
        key_authorization: &str,
    ) -> Result<Presented, IssueError> {
        self.store
            .put_tls_alpn01(
                &prepared.name,
                token,
                key_authorization,
                crate::util::clock::now(),
            )
            .await
            .map_err(|e| {
                IssueError::Internal(format!(
                    "tls-alpn-01: present the key authorization for {}: {e}",
                    prepared.name
                ))
            })?;
        Ok(prepared.clone())
    }

    async fn cleanup(&self, presented: &Presented) -> Result<(), CleanupError> {
        self.store
            .delete_tls_alpn01(&presented.name, &presented.handle)
            .await
            .map_err(|source| {
                RemoveError {
                    name: presented.name.clone(),
                    source,
                }
                .into()
            })
    }
}

/// Answers `acme-tls/1` handshakes from the store's key authorizations.
#[derive(Debug, Clone)]
pub struct Responder {
    store: Arc<dyn Store>,
}

/// Whether a client hello asks for TLS-ALPN-01 (offers `acme-tls/1`).
pub fn wants_challenge(hello: &ClientHello<'_>) -> bool {
    hello
        .alpn()
        .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_1))
}

impl Responder {
    /// A responder reading `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Completes a handshake whose hello offered `acme-tls/1` with the challenge certificate
    /// of its SNI name, then closes the connection (RFC 8737 section 3: no application data).
    /// A name with no key authorization being presented gets the handshake aborted.
    pub async fn answer<IO>(&self, start: StartHandshake<IO>)
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let hello = start.client_hello();
        let Some(name) = hello.server_name().and_then(identifier_of_sni) else {
            tracing::debug!("tls-alpn-01: a hello without a usable server name");
            return;
        };
        let key_authorization = match self.store.tls_alpn01(name.as_str()).await {
            Ok(Some(key_authorization)) => key_authorization,
            Ok(None) => {
                tracing::debug!(name = %name, "tls-alpn-01: no challenge is being presented for this name");
                return;
            }
            Err(err) => {
                tracing::error!(error = %err, "tls-alpn-01: cannot read the challenge store");
                return;
            }
        };
        let config = match challenge_config(&name, &key_authorization) {
            Ok(config) => config,
            Err(err) => {
                tracing::error!(name = %name, error = %err, "tls-alpn-01: cannot build the challenge certificate");
                return;
            }
        };
        match start.into_stream(Arc::new(config)).await {
            Ok(mut tls) => {
                tracing::debug!(name = %name, "tls-alpn-01: answered a validation handshake");
                let _ = tls.shutdown().await;
            }
            Err(err) => {
                tracing::debug!(name = %name, error = %err, "tls-alpn-01: handshake failed");
            }
        }
    }

    /// Serves `acme-tls/1` on `listener` until `stop` turns true; hellos not asking for it are
    /// dropped.
    pub async fn serve(self, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.wait_for(|stop| *stop) => return,
            };
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                Err(err) => {
                    tracing::warn!(error = %err, "tls-alpn-01: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let responder = self.clone();
            tokio::spawn(async move {
                let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
                let work = async {
                    let Ok(start) = acceptor.await else { return };
                    if wants_challenge(&start.client_hello()) {
                        responder.answer(start).await;
                    }
                };
                let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, work).await;
            });
        }
    }
}

/// The identifier an SNI name stands for: a DNS name as is, an address's reverse name
/// (`in-addr.arpa`, `ip6.arpa`: RFC 8738 section 6) as the address.
fn identifier_of_sni(sni: &str) -> Option<DomainName> {
    let sni = sni.trim_end_matches('.').to_ascii_lowercase();
    if let Some(reversed) = sni.strip_suffix(".in-addr.arpa") {
        let mut octets = [0u8; 4];
        let parts: Vec<&str> = reversed.split('.').collect();
        if parts.len() != 4 {
            return None;
        }
        for (slot, part) in octets.iter_mut().rev().zip(&parts) {
            *slot = part.parse().ok()?;
        }
        return DomainName::parse(&Ipv4Addr::from(octets).to_string()).ok();
    }
    if let Some(reversed) = sni.strip_suffix(".ip6.arpa") {
        let nibbles: Vec<&str> = reversed.split('.').collect();
        if nibbles.len() != 32 {
            return None;
        }
        let mut value = 0u128;
        for nibble in nibbles.iter().rev() {
            let digit = u8::from_str_radix(nibble, 16)
                .ok()
                .filter(|_| nibble.len() == 1)?;
            value = value << 4 | u128::from(digit);
        }
        return DomainName::parse(&Ipv6Addr::from(value).to_string()).ok();
    }
    DomainName::parse_dns(&sni)
        .ok()
        .filter(|name| !name.is_wildcard())
}

/// The reverse name a CA sends as SNI for an address (RFC 8738 section 6).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(73);
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            name.push_str("ip6.arpa");
            name
        }
    }
}

/// Why the challenge certificate could not be made: certfleet's own failure.
#[derive(Debug, thiserror::Error)]
pub enum ChallengeCertError {
    /// rcgen refused the key, the name or the signature.
    #[error("{0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the certificate or key.
    #[error("{0}")]
    Tls(#[from] rustls::Error),
}

/// The self-signed challenge certificate for `name` (RFC 8737 section 3): the one identifier as
/// its only subjectAltName and the critical `id-pe-acmeIdentifier` extension with the SHA-256
/// of `key_authorization`.
pub fn challenge_certificate(
    name: &DomainName,
    key_authorization: &str,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), ChallengeCertError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![match name.ip() {
        Some(ip) => SanType::IpAddress(ip),
        None => SanType::DnsName(name.as_str().try_into()?),
    }];
    let digest = digest::digest(&digest::SHA256, key_authorization.as_bytes());
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest.as_ref())];
    let cert = params.self_signed(&key)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((cert.der().clone(), key_der))
}

/// Presents one certificate to every hello. (`with_single_cert` would refuse the challenge
/// certificate: webpki rejects the critical `acmeIdentifier` extension it does not know.)
#[derive(Debug)]
struct Only(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Only {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A server configuration presenting only the challenge certificate and only `acme-tls/1`.
fn challenge_config(
    name: &DomainName,
    key_authorization: &str,
) -> Result<rustls::ServerConfig, ChallengeCertError> {
    let (cert, key) = challenge_certificate(name, key_authorization)?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)?;
    let certified = rustls::sign::CertifiedKey::new(vec![cert], signing);
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(Only(Arc::new(certified))));
    config.alpn_protocols = vec![ACME_TLS_1.to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_map_back_to_their_addresses() {
        for text in [
            "127.0.0.1",
            "192.0.2.45",
            "::1",
            "2001:db8::8:800:200c:417a",
        ] {
            let ip: IpAddr = text.parse().expect("address");
            let reverse = reverse_name(ip);
            let back = identifier_of_sni(&reverse).expect(&reverse);
            assert_eq!(back.as_str(), ip.to_string(), "{reverse}");
        }
        assert_eq!(
            reverse_name("192.0.2.45".parse().expect("v4")),
            "45.2.0.192.in-addr.arpa"
        );
        assert_eq!(
            reverse_name("::1".parse().expect("v6")),
            format!("1.{}ip6.arpa", "0.".repeat(31))
        );
        assert_eq!(
            identifier_of_sni("WWW.Example.com.").map(|n| n.to_string()),
            Some("www.example.com".to_owned())
        );
        for bad in [
            "1.2.3.in-addr.arpa",
            "300.0.0.1.in-addr.arpa",
            "x.ip6.arpa",
            "*.example.com",
            "",
        ] {
            assert_eq!(identifier_of_sni(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_challenge_certificate_names_one_identifier_and_carries_the_digest() {
        use x509_parser::prelude::{FromDer, X509Certificate};
        for (name, key_authorization) in [("www.example.com", "token.thumb"), ("192.0.2.1", "t.k")]
        {
            let name = DomainName::parse(name).expect("name");
            let (der, _) = challenge_certificate(&name, key_authorization).expect("certificate");
            let (_, cert) = X509Certificate::from_der(&der).expect("parse");
            let acme = cert
                .extensions()
                .iter()
                .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
                .expect("acmeIdentifier");
            assert!(acme.critical);
            let digest = digest::digest(&digest::SHA256, key_authorization.as_bytes());
            // DER OCTET STRING of 32 bytes: tag 4, length 32, then the digest.
            assert_eq!(&acme.value[..2], &[4, 32]);
            assert_eq!(&acme.value[2..], digest.as_ref());
            assert_eq!(crate::util::pem::identifiers(&cert), [name.to_string()]);
        }
    }
}
