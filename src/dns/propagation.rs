//! Propagation: before the CA is told to validate (RFC 8555 section 7.5.1), every TXT value
//! must be visible where the CA will look. Checked at `challenges.resolvers` when set, else at
//! each zone's authoritative servers (its NS records, found through the system's resolvers),
//! polled until every value is there or the time is up.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::rr::{RData, RecordType};

use super::wire::{self, plain};
use super::{DnsError, TxtRecord};

/// How long one DNS query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits until every record's value is visible at every server that checks it: `resolvers`
/// when not empty, else the authoritative servers of the record's zone.
pub async fn wait_visible(
    records: &[TxtRecord],
    resolvers: &[SocketAddr],
    timeout: Duration,
    interval: Duration,
) -> Result<(), DnsError> {
    let mut checks: Vec<(&TxtRecord, Vec<SocketAddr>)> = Vec::new();
    let mut authoritative: BTreeMap<&str, Vec<SocketAddr>> = BTreeMap::new();
    for record in records {
        let servers = if resolvers.is_empty() {
            if !authoritative.contains_key(record.zone.as_str()) {
                let found = authoritative_servers(&record.zone).await?;
                authoritative.insert(&record.zone, found);
            }
            authoritative[record.zone.as_str()].clone()
        } else {
            resolvers.to_vec()
        };
        checks.push((record, servers));
    }
    let deadline = Instant::now() + timeout;
    loop {
        let mut missing = None;
        for (record, servers) in &checks {
            for server in servers {
                let seen = wire::txt_values(*server, &record.fqdn, QUERY_TIMEOUT).await;
                if !seen
                    .as_ref()
                    .is_ok_and(|values| values.contains(&record.value))
                {
                    missing = Some((*record, *server, seen));
                    break;
                }
            }
            if missing.is_some() {
                break;
            }
        }
        let Some((record, server, seen)) = missing else {
            return Ok(());
        };
        if Instant::now() + interval > deadline {
            let answer = match seen {
                Ok(values) if values.is_empty() => "no TXT record".to_owned(),
                Ok(values) => format!("only {}", values.join(", ")),
                Err(why) => why.to_string(),
            };
            return Err(DnsError::new(
                "dns",
                format!("wait for TXT record {}", record.fqdn),
                format!(
                    "value {} is not visible at {server} after {}s (it answers: {answer}); \
                     check that this server sees the zone {}, or raise propagationTimeout",
                    record.value,
                    timeout.as_secs(),
                    record.zone
                ),
            ));
        }
        tokio::time::sleep(interval).await;
    }
}

/// The addresses of `zone`'s name servers (NS, then A/AAAA), asked of the system's resolvers.
async fn authoritative_servers(zone: &str) -> Result<Vec<SocketAddr>, DnsError> {
    let fail = |why: &dyn std::fmt::Display| {
        DnsError::new(
            "dns",
            format!("find the authoritative servers of {zone}"),
            format!("{why}; set challenges.resolvers to check propagation there instead"),
        )
    };
    let resolvers = super::zone::system_resolvers();
    let Some(resolver) = resolvers.first().copied() else {
        return Err(fail(&"no nameserver in /etc/resolv.conf"));
    };
    let ns = wire::query(resolver, zone, RecordType::NS, QUERY_TIMEOUT)
        .await
        .map_err(|e| fail(&e))?;
    let hosts: Vec<String> = ns
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::NS(name) => Some(plain(&name.0)),
            _ => None,
        })
        .collect();
    let mut servers = Vec::new();
    for host in &hosts {
        for kind in [RecordType::A, RecordType::AAAA] {
            let Ok(answer) = wire::query(resolver, host, kind, QUERY_TIMEOUT).await else {
                continue;
            };
            servers.extend(
                answer
                    .answers
                    .iter()
                    .filter_map(|record| record.data.ip_addr())
                    .map(|ip| SocketAddr::new(ip, 53)),
            );
        }
    }
    if servers.is_empty() {
        return Err(fail(&format!(
            "{resolver} names no reachable NS for the zone (NS: {})",
            if hosts.is_empty() {
                "none".to_owned()
            } else {
                hosts.join(", ")
            }
        )));
    }
    Ok(servers)
}
