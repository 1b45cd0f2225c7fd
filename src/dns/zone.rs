//! Which zone a name is in, written once for every provider: the entry's `zones` when set, else
//! an SOA walk through DNS (RFC 1035 section 6.2: a name's SOA, or the SOA in the authority
//! section of a negative answer, names its zone), else the provider's own API.
//!
//! challtestsrv answers SOA queries with NOTIMP, so the end-to-end tests go through the
//! provider-API fallback; BIND answers them, so the RFC 2136 tests go through the walk.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use super::wire::{self, WireError, plain};
use super::{DnsError, DnsProvider};
use crate::domain::in_zone;

/// Why one server's SOA walk found no zone.
#[derive(Debug, thiserror::Error)]
pub enum SoaWalkError {
    /// The query itself failed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The server answers SOA queries with an error code (challtestsrv: NOTIMP).
    #[error("SOA query answered {0}")]
    Answered(ResponseCode),
}

/// The zone of `fqdn`: the longest of `configured` that holds it; else the SOA walk through
/// `servers`; else `provider.find_zone`.
pub async fn find(
    fqdn: &str,
    configured: &[String],
    servers: &[SocketAddr],
    provider: &dyn DnsProvider,
    timeout: Duration,
) -> Result<String, DnsError> {
    if let Some(zone) = configured
        .iter()
        .filter(|zone| in_zone(fqdn, zone))
        .max_by_key(|zone| zone.len())
    {
        return Ok(zone.clone());
    }
    let mut tried = Vec::new();
    for server in servers {
        match soa_walk(*server, fqdn, timeout).await {
            Ok(Some(zone)) => return Ok(zone),
            Ok(None) => tried.push(format!("{server}: no SOA")),
            Err(why) => tried.push(format!("{server}: {why}")),
        }
    }
    if let Some(zone) = provider.find_zone(fqdn).await? {
        return Ok(zone);
    }
    let walked = if tried.is_empty() {
        "no DNS server to ask".to_owned()
    } else {
        tried.join("; ")
    };
    Err(DnsError::new(
        provider.name(),
        format!("find the zone of {fqdn}"),
        format!(
            "the SOA walk found none ({walked}) and the provider's API knows no zone holding it; \
             list the zone under zones in this challenges.dns01 entry"
        ),
    ))
}

/// Walks from `fqdn` towards the root asking `server` for SOA records. `Ok(None)` when no
/// answer names a zone; `Err` when the server refuses SOA queries (challtestsrv: NOTIMP).
pub async fn soa_walk(
    server: SocketAddr,
    fqdn: &str,
    timeout: Duration,
) -> Result<Option<String>, SoaWalkError> {
    let mut candidate = fqdn.trim_end_matches('.').to_owned();
    while candidate.contains('.') {
        let response = wire::query(server, &candidate, RecordType::SOA, timeout).await?;
        match response.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            code => return Err(SoaWalkError::Answered(code)),
        }
        let soa_owner = response
            .answers
            .iter()
            .chain(response.authorities.iter())
            .find(|record| matches!(record.data, RData::SOA(_)))
            .map(|record| plain(&record.name));
        if let Some(zone) = soa_owner.filter(|zone| in_zone(fqdn, zone)) {
            return Ok(Some(zone));
        }
        candidate = match candidate.split_once('.') {
            Some((_, parent)) => parent.to_owned(),
            None => break,
        };
    }
    Ok(None)
}

/// The system's resolvers (`nameserver` lines of /etc/resolv.conf), on port 53.
pub fn system_resolvers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}
