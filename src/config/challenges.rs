//! `challenges`: where HTTP-01 is answered, the DNS-01 providers, the DNS-PERSIST-01 records,
//! and where DNS records are checked.

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

/// `challenges`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChallengesConfig {
    /// `challenges.http01`.
    pub http01: Http01Config,
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
    /// `challenges.http01.listen`: where `/.well-known/acme-challenge/{token}` is served
    /// (default `0.0.0.0:80`).
    #[serde(serialize_with = "as_display")]
    pub listen: SocketAddr,
}

/// Resolves `challenges`.
pub(super) fn challenges(
    raw: RawChallenges,
    report: &mut Report<'_>,
) -> Result<ChallengesConfig, Reported> {
    let http01 = raw.http01.unwrap_or_default();
    let listen = listen_addr(
        http01.listen,
        "challenges.http01.listen",
        DEFAULT_HTTP01_LISTEN,
        report,
    )?;
    let dns01 = dns01::entries(raw.dns01, report);
    let dns_persist = dns_persist::entries(raw.dns_persist, report);
    let resolvers = dns01::resolvers(raw.resolvers, report);
    Ok(ChallengesConfig {
        http01: Http01Config { listen },
        dns01: dns01?,
        dns_persist: dns_persist?,
        resolvers: resolvers?,
    })
}
