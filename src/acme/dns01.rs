//! DNS-01 (RFC 8555 section 8.4): the TXT record `_acme-challenge.<name>` holding
//! base64url(SHA-256(key authorization)), through the `challenges.dns01` entry whose zones
//! match the name (the first one).
//!
//! Handles are JSON naming the entry, the zone, the record and the provider's own handle, so a
//! record is deleted through the same provider after a restart. A handle from `prepare` has no
//! provider handle yet: if a crash came between the provider's add and the final handle being
//! stored, cleanup finds the record by name and value.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use instant_acme::ChallengeType;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::IssueError;
use super::solver::{CleanupError, Presented, Solver};
use crate::config::{Dns01Challenge, Dns01Entry};
use crate::dns::{self, DnsError, DnsProvider, TxtRecord, propagation, zone};

/// Bound on one SOA query of the zone walk.
const SOA_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a DNS-01 step failed before or after its provider was asked.
#[derive(Debug, thiserror::Error)]
pub enum Dns01Error {
    /// No `challenges.dns01` entry's zones hold the name.
    #[error("dns: no challenges.dns01 entry has a zone holding {name}")]
    NoEntry {
        /// The name to validate.
        name: String,
    },
    /// A stored record's entry is gone or now another provider's (the configuration changed
    /// since the record was created), so it cannot be deleted through it.
    #[error(
        "dns: challenges.dns01[{entry}] is no longer the {provider} entry that created TXT \
         record {fqdn} (value {value}); delete that record by hand"
    )]
    EntryChanged {
        /// The entry's index, as stored.
        entry: usize,
        /// The provider that created the record.
        provider: String,
        /// The record's name.
        fqdn: String,
        /// The record's value.
        value: String,
    },
    /// A stored handle is not one this solver wrote.
    #[error("dns: unreadable stored DNS-01 handle: {0}")]
    Handle(#[source] serde_json::Error),
    /// The provider failed.
    #[error(transparent)]
    Provider(#[from] DnsError),
}

/// Presents DNS-01 responses through the configured providers.
#[derive(Debug)]
pub struct Dns01Solver {
    routes: Vec<Route>,
    resolvers: Vec<SocketAddr>,
}

/// One `challenges.dns01` entry and its provider.
#[derive(Debug)]
struct Route {
    entry: Dns01Entry,
    provider: Arc<dyn DnsProvider>,
}

/// What is stored for one DNS-01 record (the `presented.handle` column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Handle {
    /// Index of the `challenges.dns01` entry.
    entry: usize,
    /// Its provider's name, to notice a reordered configuration.
    provider: String,
    #[serde(flatten)]
    record: TxtRecord,
    /// The provider's handle; absent until the provider has answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_handle: Option<Value>,
}

impl Dns01Solver {
    /// A solver over `entries` (built with `dns::build`), checking propagation at `resolvers`.
    pub fn new(entries: &[Dns01Entry], resolvers: Vec<SocketAddr>) -> Result<Self, DnsError> {
        let routes = entries
            .iter()
            .map(|entry| {
                Ok(Route {
                    provider: dns::build(entry)?,
                    entry: entry.clone(),
                })
            })
            .collect::<Result<_, DnsError>>()?;
        Ok(Self { routes, resolvers })
    }

    /// A solver over providers built elsewhere (tests), one per entry.
    pub fn with_providers(
        routes: Vec<(Dns01Entry, Arc<dyn DnsProvider>)>,
        resolvers: Vec<SocketAddr>,
    ) -> Self {
        let routes = routes
            .into_iter()
            .map(|(entry, provider)| Route { entry, provider })
            .collect();
        Self { routes, resolvers }
    }

    /// Whether an entry handles `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.routes.iter().any(|route| route.entry.matches(name))
    }

    fn route_for(&self, name: &str) -> Result<(usize, &Route), Dns01Error> {
        self.routes
            .iter()
            .enumerate()
            .find(|(_, route)| route.entry.matches(name))
            .ok_or_else(|| Dns01Error::NoEntry {
                name: name.to_owned(),
            })
    }

    /// The servers that answer SOA queries for the zone walk.
    async fn soa_servers(&self, route: &Route) -> Vec<SocketAddr> {
        if !self.resolvers.is_empty() {
            return self.resolvers.clone();
        }
        if let Some(server) = route.provider.authoritative_server()
            && let Ok(addr) = dns::wire::resolve_server(server).await
        {
            return vec![addr];
        }
        zone::system_resolvers()
    }

    /// The stored handle's route, checked against the configuration.
    fn route_of(&self, handle: &Handle) -> Result<&Route, Dns01Error> {
        match self.routes.get(handle.entry) {
            Some(route) if route.provider.name() == handle.provider => Ok(route),
            _ => Err(Dns01Error::EntryChanged {
                entry: handle.entry,
                provider: handle.provider.clone(),
                fqdn: handle.record.fqdn.clone(),
                value: handle.record.value.clone(),
            }),
        }
    }
}

#[async_trait]
impl Solver for Dns01Solver {
    fn challenge_type(&self) -> ChallengeType {
        ChallengeType::Dns01
    }

    async fn prepare(
        &self,
        name: &str,
        _token: &str,
        key_authorization: &str,
    ) -> Result<Presented, IssueError> {
        // RFC 8555 section 8.4: a wildcard's record is that of its base name.
        let base = name.strip_prefix("*.").unwrap_or(name);
        self.prepare_at(name, format!("_acme-challenge.{base}"), key_authorization)
            .await
    }

    async fn present(
        &self,
        prepared: &Presented,
        _token: &str,
        _key_authorization: &str,
    ) -> Result<Presented, IssueError> {
        let mut handle = decode(&prepared.handle).map_err(issue_error)?;
        let route = self.route_of(&handle).map_err(issue_error)?;
        let provider_handle = route
            .provider
            .add_txt(&handle.record)
            .await
            .map_err(issue_error)?;
        tracing::info!(provider = %handle.provider, record = %handle.record.fqdn, zone = %handle.record.zone, "DNS-01 TXT record created");
        handle.provider_handle = Some(provider_handle);
        Ok(Presented {
            name: prepared.name.clone(),
            handle: encode(&handle),
        })
    }

    async fn wait_visible(&self, presented: &[Presented]) -> Result<(), IssueError> {
        let mut records = Vec::new();
        let (mut timeout, mut interval) = (Duration::ZERO, Duration::MAX);
        for item in presented {
            let handle = decode(&item.handle).map_err(issue_error)?;
            let route = self.route_of(&handle).map_err(issue_error)?;
            timeout = timeout.max(route.entry.propagation_timeout);
            interval = interval.min(route.entry.polling_interval);
            records.push(handle.record);
        }
        if records.is_empty() {
            return Ok(());
        }
        propagation::wait_visible(&records, &self.resolvers, timeout, interval)
            .await
            .map_err(issue_error)
    }

    async fn cleanup(&self, presented: &Presented) -> Result<(), CleanupError> {
        Ok(self.delete(presented).await?)
    }
}

impl Dns01Solver {
    /// The handle of the TXT record `fqdn` for `name`'s challenge, in the zone of the entry
    /// that holds `name`: DNS-01 and DNS-ACCOUNT-01 differ only in the record's name.
    async fn prepare_at(
        &self,
        name: &str,
        fqdn: String,
        key_authorization: &str,
    ) -> Result<Presented, IssueError> {
        let (entry, route) = self.route_for(name).map_err(issue_error)?;
        let servers = self.soa_servers(route).await;
        let zone = zone::find(
            &fqdn,
            &route.entry.zones,
            &servers,
            route.provider.as_ref(),
            SOA_TIMEOUT,
        )
        .await
        .map_err(issue_error)?;
        let handle = Handle {
            entry,
            provider: route.provider.name().to_owned(),
            record: TxtRecord {
                zone,
                fqdn,
                value: txt_value(key_authorization),
            },
            provider_handle: None,
        };
        Ok(Presented {
            name: name.to_owned(),
            handle: encode(&handle),
        })
    }

    /// The `challenge` of the first entry holding `name` (`dns-01` when none does).
    pub fn default_challenge(&self, name: &str) -> Dns01Challenge {
        self.route_for(name)
            .map_or(Dns01Challenge::Dns01, |(_, route)| route.entry.challenge)
    }

    /// Deletes the record `presented` names, through the entry that created it.
    async fn delete(&self, presented: &Presented) -> Result<(), Dns01Error> {
        let handle = decode(&presented.handle)?;
        let route = self.route_of(&handle)?;
        route
            .provider
            .delete_txt(&handle.record, handle.provider_handle.as_ref())
            .await?;
        tracing::info!(provider = %handle.provider, record = %handle.record.fqdn, "DNS-01 TXT record deleted");
        Ok(())
    }
}

/// The challenge type of DNS-ACCOUNT-01, as instant-acme reads it (it knows it only as unknown).
pub fn account_challenge_type() -> ChallengeType {
    ChallengeType::Unknown("dns-account-01".to_owned())
}

/// The account label of draft-ietf-acme-dns-account-label: `_` and the lowercase base32 (RFC
/// 4648, no padding) of the first 10 bytes of SHA-256 of the ACME account's URL: 16 characters.
pub fn account_label(account_uri: &str) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let digest = digest::digest(&digest::SHA256, account_uri.as_bytes());
    let bits = digest.as_ref()[..10]
        .iter()
        .fold(0u128, |bits, byte| (bits << 8) | u128::from(*byte));
    let label: String = (0..16)
        .rev()
        .map(|i| char::from(ALPHABET[usize::try_from((bits >> (i * 5)) & 31).unwrap_or(0)]))
        .collect();
    format!("_{label}")
}

/// DNS-ACCOUNT-01 (draft-ietf-acme-dns-account-label): DNS-01's record, value and providers,
/// at `_<label>._acme-challenge.<name>` with the label derived from the account's URL, so
/// that several accounts (several certfleet installations) can validate one name at once.
#[derive(Debug)]
pub struct DnsAccount01Solver {
    dns01: Arc<Dns01Solver>,
    /// The account's URL, set once the issuer has loaded the account.
    account_uri: Arc<OnceLock<String>>,
}

impl DnsAccount01Solver {
    /// Answers DNS-ACCOUNT-01 through `dns01`'s entries for the account whose URL
    /// `account_uri` will hold.
    pub fn new(dns01: Arc<Dns01Solver>, account_uri: Arc<OnceLock<String>>) -> Self {
        Self { dns01, account_uri }
    }
}

#[async_trait]
impl Solver for DnsAccount01Solver {
    fn challenge_type(&self) -> ChallengeType {
        account_challenge_type()
    }

    async fn prepare(
        &self,
        name: &str,
        _token: &str,
        key_authorization: &str,
    ) -> Result<Presented, IssueError> {
        let account_uri = self.account_uri.get().ok_or_else(|| {
            IssueError::Internal("dns-account-01 before the ACME account is loaded".to_owned())
        })?;
        let base = name.strip_prefix("*.").unwrap_or(name);
        let fqdn = format!("{}._acme-challenge.{base}", account_label(account_uri));
        self.dns01.prepare_at(name, fqdn, key_authorization).await
    }

    async fn present(
        &self,
        prepared: &Presented,
        token: &str,
        key_authorization: &str,
    ) -> Result<Presented, IssueError> {
        self.dns01.present(prepared, token, key_authorization).await
    }

    async fn wait_visible(&self, presented: &[Presented]) -> Result<(), IssueError> {
        self.dns01.wait_visible(presented).await
    }

    async fn cleanup(&self, presented: &Presented) -> Result<(), CleanupError> {
        self.dns01.cleanup(presented).await
    }
}

/// base64url(SHA-256(key authorization)), unpadded (RFC 8555 section 8.4).
pub fn txt_value(key_authorization: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(
        &digest::SHA256,
        key_authorization.as_bytes(),
    ))
}

/// A DNS-01 failure as the order flow reports it: a handle it cannot read is certfleet's own
/// fault (500), everything else the DNS side's (502 `dns_error`).
fn issue_error(err: impl Into<Dns01Error>) -> IssueError {
    match err.into() {
        err @ Dns01Error::Handle(_) => IssueError::Internal(err.to_string()),
        err => IssueError::Dns(err.to_string()),
    }
}

fn encode(handle: &Handle) -> String {
    // A struct of strings, numbers and JSON values always serialises.
    serde_json::to_string(handle).unwrap_or_default()
}

fn decode(text: &str) -> Result<Handle, Dns01Error> {
    serde_json::from_str(text).map_err(Dns01Error::Handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_value_is_rfc8555_section_8_4() {
        // SHA-256 of "token.thumbprint", base64url without padding: 43 characters.
        let value = txt_value(
            "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEt62jcerQ",
        );
        assert_eq!(value.len(), 43);
        assert!(!value.contains(['=', '+', '/']));
    }

    #[test]
    fn the_account_label_is_base32_of_ten_bytes_of_sha256() {
        // The draft's example account (its label `_ujmmovf2vn55tgye`), which Python's
        // base64.b32encode(sha256(url).digest()[:10]).lower() gives too.
        assert_eq!(
            account_label("https://example.com/acme/acct/ExampleAccount"),
            "_ujmmovf2vn55tgye"
        );
        let label = account_label("https://ca.test/acct/1");
        assert_eq!(label.len(), 17);
        assert!(
            label[1..]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
        );
    }

    #[test]
    fn handles_round_trip_with_and_without_the_provider_handle() {
        let mut handle = Handle {
            entry: 1,
            provider: "cloudflare".to_owned(),
            record: TxtRecord {
                zone: "example.com".to_owned(),
                fqdn: "_acme-challenge.example.com".to_owned(),
                value: "v".to_owned(),
            },
            provider_handle: None,
        };
        assert_eq!(decode(&encode(&handle)).expect("decodes"), handle);
        handle.provider_handle = Some(serde_json::json!({"zoneId": "z", "recordId": "r"}));
        assert_eq!(decode(&encode(&handle)).expect("decodes"), handle);
        assert!(matches!(decode("{}"), Err(Dns01Error::Handle(_))));
    }
}
