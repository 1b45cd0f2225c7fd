//! `challenges`: where HTTP-01 and TLS-ALPN-01 are answered, the DNS-01 providers, the
//! DNS-PERSIST-01 records, and where DNS records are checked.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::Serialize;

use super::{
    dns_persist::{self, DnsPersistEntry},
    dns01::{self, Dns01Entry},
    print::{as_display, as_display_seq},
    raw::RawChallenges,
    report::{Report, Reported, listen_addr},
};

const DEFAULT_HTTP01_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 80);
const DEFAULT_TLS_ALPN01_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 443);

/// `challenges`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChallengesConfig {
    /// `challenges.http01`.
    pub http01: Http01Config,
    /// `challenges.tlsAlpn01`: `None` when TLS-ALPN-01 is not answered.
    pub tls_alpn01: Option<TlsAlpn01Config>,
    /// `challenges.dns01`: DNS providers, the first whose zones match a name handles it.
    pub dns01: Vec<Dns01Entry>,
    /// `challenges.dnsPersist`: names validated by a standing `_validation-persist` record (no
    /// DNS write); the first entry whose names match is used.
    pub dns_persist: Vec<DnsPersistEntry>,
    /// `challenges.resolvers`: where DNS-01 propagation is checked; empty = the zone's
    /// authoritative servers.
    #[serde(serialize_with = "as_display_seq")]
    pub resolvers: Vec<SocketAddr>,
}

/// `challenges.http01`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Http01Config {
    /// `challenges.http01.enabled`: whether HTTP-01 is answered and its listener opened; off
    /// when `false`, or by default when `challenges.tlsAlpn01` is set without a
    /// `challenges.http01` section.
    pub enabled: bool,
    /// `challenges.http01.listen`: where `/.well-known/acme-challenge/{token}` is served
    /// (default `0.0.0.0:80`).
    #[serde(serialize_with = "as_display")]
    pub listen: SocketAddr,
}

/// `challenges.tlsAlpn01`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsAlpn01Config {
    /// `challenges.tlsAlpn01.listen`: where `acme-tls/1` handshakes are answered (default
    /// `0.0.0.0:443`). When it is `server.listen` and the API has TLS, the API's listener answers
    /// them and no other socket is opened.
    #[serde(serialize_with = "as_display")]
    pub listen: SocketAddr,
}

/// Resolves `challenges`.
pub(super) fn challenges(
    raw: RawChallenges,
    report: &mut Report<'_>,
) -> Result<ChallengesConfig, Reported> {
    let tls_alpn01 = match raw.tls_alpn01 {
        Some(alpn) => Some(TlsAlpn01Config {
            listen: listen_addr(
                alpn.listen,
                "challenges.tlsAlpn01.listen",
                DEFAULT_TLS_ALPN01_LISTEN,
                report,
            )?,
        }),
        None => None,
    };
    // HTTP-01 is on by default, unless only TLS-ALPN-01 is configured (an operator who can
    // expose 443 alone must not need port 80 to start).
    let http01_default = raw.http01.is_some() || tls_alpn01.is_none();
    let http01 = raw.http01.unwrap_or_default();
    let listen = listen_addr(
        http01.listen,
        "challenges.http01.listen",
        DEFAULT_HTTP01_LISTEN,
        report,
    )?;
    let enabled = http01.enabled.unwrap_or(http01_default);
    let dns01 = dns01::entries(raw.dns01, report);
    let dns_persist = dns_persist::entries(raw.dns_persist, report);
    let resolvers = dns01::resolvers(raw.resolvers, report);
    let (dns01, dns_persist, resolvers) = (dns01?, dns_persist?, resolvers?);
    if !enabled && tls_alpn01.is_none() && dns01.is_empty() && dns_persist.is_empty() {
        return Err(report.error(
            "challenges.http01.enabled",
            "is false, and neither challenges.tlsAlpn01 nor challenges.dns01 is set (nor \
             challenges.dnsPersist): no challenge could be answered; enable HTTP-01 or \
             configure another challenge",
        ));
    }
    Ok(ChallengesConfig {
        http01: Http01Config { enabled, listen },
        tls_alpn01,
        dns01,
        dns_persist,
        resolvers,
    })
}
