//! `challenges.dns01` (a list of DNS providers, each for some zones) and `challenges.resolvers`.
//!
//! Each provider owns its settings: `cloudflare.rs`, `gcloud.rs` and `rfc2136.rs` each define
//! the provider's keys as written (a serde struct), its typed settings (the struct its arm of
//! [`DnsProviderConfig`] holds) and how the one becomes the other, through [`Provider`].
//!
//! An entry is read in two steps. The de stage checks its keys against the keys of every
//! provider, so a key no provider takes is reported with the file's other unknown keys, and
//! keeps the entry as a tree ([`RawDns01Entry`]). Here its `provider` is read first, then its
//! keys through that provider's struct ([`de::from_subtree`]); a key of another provider is an
//! error naming the provider it belongs to, found in the providers' own field lists
//! ([`de::fields`]), never in a list written by hand.
//!
//! Secrets (`apiToken`, `serviceAccount`, `tsigSecret`) also come as `...File`. Nothing here
//! contacts a provider: a service-account key is parsed into a [`ServiceAccountKey`], a TSIG
//! secret is checked to be base64.

mod cloudflare;
mod gcloud;
mod rfc2136;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;
use std::time::Duration;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

pub use self::cloudflare::CloudflareConfig;
pub use self::gcloud::{GcloudConfig, ServiceAccountKey, ServiceAccountKeyError};
pub use self::rfc2136::{Rfc2136Config, TsigAlgorithm};
use super::{
    de,
    print::as_duration,
    report::{Report, Reported, non_empty},
    secret::Secret,
};
use crate::domain::{DomainName, in_zone};
use crate::util::duration::parse_duration;

const DEFAULT_TTL: u32 = 120;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_PROPAGATION_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_POLLING_INTERVAL: Duration = Duration::from_secs(2);

/// Every DNS provider, in the order messages list them. Adding a provider is its file beside
/// this one, one line here and its arm of [`DnsProviderConfig`].
const PROVIDERS: [Registered; 3] = [
    Registered::of::<CloudflareConfig>(),
    Registered::of::<GcloudConfig>(),
    Registered::of::<Rfc2136Config>(),
];

/// One `challenges.dns01` entry: a provider and the zones it answers for.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dns01Entry {
    /// The provider and its settings.
    #[serde(flatten)]
    pub provider: DnsProviderConfig,
    /// `zones`: the zones (apex names) this entry handles; empty = any zone.
    pub zones: Vec<String>,
    /// `ttl`: TTL of the TXT records created, seconds (default 120).
    pub ttl: u32,
    /// `timeout`: bound on each call to the provider (default 30s).
    #[serde(serialize_with = "as_duration")]
    pub timeout: Duration,
    /// `propagationTimeout`: how long to wait for the records to be visible (default 2m).
    #[serde(serialize_with = "as_duration")]
    pub propagation_timeout: Duration,
    /// `pollingInterval`: how often visibility is checked meanwhile (default 2s).
    #[serde(serialize_with = "as_duration")]
    pub polling_interval: Duration,
    /// `challenge`: `dns-01` (default) or `dns-account-01`, the record under an account label.
    pub challenge: Dns01Challenge,
}

/// Which TXT-record challenge an entry answers by default (a request's `challenge` may ask for
/// the other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Dns01Challenge {
    /// `dns-01` (RFC 8555 section 8.4): `_acme-challenge.<name>`.
    #[default]
    #[serde(rename = "dns-01")]
    Dns01,
    /// `dns-account-01` (draft-ietf-acme-dns-account-label): `_<label>._acme-challenge.<name>`,
    /// the label derived from the ACME account's URL.
    #[serde(rename = "dns-account-01")]
    DnsAccount01,
}

impl Dns01Entry {
    /// Whether this entry handles `name` (a wildcard counts as its base name).
    pub fn matches(&self, name: &str) -> bool {
        let name = name.strip_prefix("*.").unwrap_or(name);
        self.zones.is_empty() || self.zones.iter().any(|zone| in_zone(name, zone))
    }
}

/// The provider of an entry, each arm holding that provider's own settings (`dns::build` makes
/// the provider of each arm).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum DnsProviderConfig {
    /// `cloudflare` / `cf`.
    Cloudflare(CloudflareConfig),
    /// `gcloud` / `googleCloud`.
    Gcloud(GcloudConfig),
    /// `rfc2136`.
    Rfc2136(Rfc2136Config),
}

impl DnsProviderConfig {
    /// The canonical provider name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Cloudflare(_) => CloudflareConfig::NAME,
            Self::Gcloud(_) => GcloudConfig::NAME,
            Self::Rfc2136(_) => Rfc2136Config::NAME,
        }
    }
}

/// What each provider's file defines: its name, its keys, and how they become its settings.
trait Provider: Sized {
    /// The `provider` value that selects it.
    const NAME: &'static str;
    /// Another spelling `provider` accepts.
    const ALIAS: Option<&'static str>;
    /// Its keys as written, every one optional: the struct's fields are the keys it takes.
    type Raw: for<'de> Deserialize<'de>;

    /// Checks and types its keys; `path` is the entry's (`challenges.dns01[0]`).
    fn resolve(path: &str, raw: Self::Raw, report: &mut Report<'_>) -> Result<Self, Reported>;

    /// Its arm of [`DnsProviderConfig`].
    fn into_config(self) -> DnsProviderConfig;
}

/// A provider in [`PROVIDERS`]: its [`Provider`] impl as plain values, so that the providers can
/// be listed and searched.
struct Registered {
    name: &'static str,
    alias: Option<&'static str>,
    /// The keys of its raw struct.
    keys: fn() -> &'static [&'static str],
    /// Reads an entry's keys (only those in `keys`) into its arm.
    resolve: fn(&str, &Value, &mut Report<'_>) -> Result<DnsProviderConfig, Reported>,
}

impl Registered {
    const fn of<P: Provider>() -> Self {
        Self {
            name: P::NAME,
            alias: P::ALIAS,
            keys: de::fields::<P::Raw>,
            resolve: resolve_as::<P>,
        }
    }

    fn is_named(&self, name: &str) -> bool {
        self.name == name || self.alias == Some(name)
    }

    fn takes(&self, key: &str) -> bool {
        (self.keys)().contains(&key)
    }
}

fn resolve_as<P: Provider>(
    path: &str,
    keys: &Value,
    report: &mut Report<'_>,
) -> Result<DnsProviderConfig, Reported> {
    let raw = de::from_subtree::<P::Raw>(keys, path, report)?;
    P::resolve(path, raw, report).map(P::into_config)
}

/// The keys every entry takes, whatever its provider.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDns01Common {
    provider: Option<String>,
    zones: Option<Vec<String>>,
    ttl: Option<String>,
    timeout: Option<String>,
    propagation_timeout: Option<String>,
    polling_interval: Option<String>,
    challenge: Option<String>,
}

/// One item of `challenges.dns01` as the file has it: only keys that some provider (or every
/// entry) takes, their values still the tree's until [`entries`] knows the provider.
///
/// Holds secrets as plain strings, so it deliberately derives no `Debug`.
pub(super) struct RawDns01Entry(Map<String, Value>);

impl RawDns01Entry {
    /// The entry's values of `keys` only, as a mapping.
    fn only(&self, keys: &[&str]) -> Value {
        Value::Object(
            self.0
                .iter()
                .filter(|(key, _)| keys.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        )
    }
}

impl<'de> Deserialize<'de> for RawDns01Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = RawDns01Entry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawDns01Entry, A::Error> {
                let mut entry = Map::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    entry.insert(key, value);
                }
                Ok(RawDns01Entry(entry))
            }
        }
        // As a struct of every provider's keys: the config's deserializer reports the others
        // as unknown keys, listing these.
        deserializer.deserialize_struct("RawDns01Entry", every_key(), Visit)
    }
}

/// The keys of every entry, then those of each provider, each once.
fn every_key() -> &'static [&'static str] {
    static KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
        let mut keys = de::fields::<RawDns01Common>().to_vec();
        for key in PROVIDERS.iter().flat_map(|provider| (provider.keys)()) {
            if !keys.contains(key) {
                keys.push(key);
            }
        }
        keys
    });
    &KEYS
}

/// Resolves `challenges.dns01`.
pub(super) fn entries(
    raw: Option<Vec<RawDns01Entry>>,
    report: &mut Report<'_>,
) -> Result<Vec<Dns01Entry>, Reported> {
    let mut entries = Vec::new();
    let mut failure = None;
    for (i, raw) in raw.unwrap_or_default().into_iter().enumerate() {
        match entry(&format!("challenges.dns01[{i}]"), &raw, report) {
            Ok(entry) => entries.push(entry),
            Err(reported) => failure = Some(reported),
        }
    }
    failure.map_or(Ok(entries), Err)
}

/// Resolves `challenges.resolvers`: `ip` or `ip:port` (port 53 when absent).
pub(super) fn resolvers(
    raw: Option<Vec<String>>,
    report: &mut Report<'_>,
) -> Result<Vec<SocketAddr>, Reported> {
    let mut resolvers = Vec::new();
    for (i, text) in raw.unwrap_or_default().iter().enumerate() {
        let parsed = text
            .parse::<SocketAddr>()
            .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)));
        match parsed {
            Ok(addr) => resolvers.push(addr),
            Err(_) => {
                return Err(report.error(
                    &format!("challenges.resolvers[{i}]"),
                    format!(
                        "\"{text}\" is not an IP address with an optional port; write it like \
                         10.0.0.53:53 or 1.1.1.1"
                    ),
                ));
            }
        }
    }
    Ok(resolvers)
}

fn entry(path: &str, raw: &RawDns01Entry, report: &mut Report<'_>) -> Result<Dns01Entry, Reported> {
    let common: RawDns01Common =
        de::from_subtree(&raw.only(de::fields::<RawDns01Common>()), path, report)?;
    let provider = provider(path, common.provider, raw, report);
    let zones = zones(path, common.zones, report);
    let ttl = match non_empty(common.ttl) {
        None => Ok(DEFAULT_TTL),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|ttl| *ttl > 0)
            .ok_or_else(|| {
                report.error(
                    &format!("{path}.ttl"),
                    format!("\"{text}\" is not a TTL in seconds; write a whole number such as 120"),
                )
            }),
    };
    let timeout = duration(path, "timeout", common.timeout, DEFAULT_TIMEOUT, report);
    let propagation_timeout = duration(
        path,
        "propagationTimeout",
        common.propagation_timeout,
        DEFAULT_PROPAGATION_TIMEOUT,
        report,
    );
    let polling_interval = duration(
        path,
        "pollingInterval",
        common.polling_interval,
        DEFAULT_POLLING_INTERVAL,
        report,
    );
    let challenge = match non_empty(common.challenge).as_deref() {
        None | Some("dns-01") => Ok(Dns01Challenge::Dns01),
        Some("dns-account-01") => Ok(Dns01Challenge::DnsAccount01),
        Some(other) => Err(report.error(
            &format!("{path}.challenge"),
            format!("\"{other}\" is not a DNS challenge; write dns-01 or dns-account-01"),
        )),
    };
    Ok(Dns01Entry {
        challenge: challenge?,
        provider: provider?,
        zones: zones?,
        ttl: ttl?,
        timeout: timeout?,
        propagation_timeout: propagation_timeout?,
        polling_interval: polling_interval?,
    })
}

/// The entry's provider and its settings: `provider` picks the provider, whose struct then reads
/// the entry's other keys; the keys of another provider are refused first.
fn provider(
    path: &str,
    name: Option<String>,
    raw: &RawDns01Entry,
    report: &mut Report<'_>,
) -> Result<DnsProviderConfig, Reported> {
    let key = format!("{path}.provider");
    let Some(name) = non_empty(name) else {
        return Err(report.error(&key, format!("is required: {}", provider_names())));
    };
    let Some(chosen) = PROVIDERS.iter().find(|p| p.is_named(&name)) else {
        return Err(report.error(
            &key,
            format!("unknown provider \"{name}\"; use {}", provider_names()),
        ));
    };
    let common = de::fields::<RawDns01Common>();
    let mut failure = None;
    for key in raw.0.keys().map(String::as_str) {
        if common.contains(&key) || chosen.takes(key) {
            continue;
        }
        // The de stage kept only keys some provider takes, so `owners` names at least one.
        let owners: Vec<&str> = PROVIDERS
            .iter()
            .filter(|p| p.takes(key))
            .map(|p| p.name)
            .collect();
        let owners = match owners.as_slice() {
            [one] => format!("the {one} provider"),
            many => format!("the {} providers", listing(many, "and")),
        };
        failure = Some(report.error(
            &format!("{path}.{key}"),
            format!(
                "is a setting of {owners}, not of {}; remove it from this entry",
                chosen.name
            ),
        ));
    }
    if let Some(reported) = failure {
        return Err(reported);
    }
    (chosen.resolve)(path, &raw.only((chosen.keys)()), report)
}

/// `cloudflare (alias cf), gcloud (alias googleCloud) or rfc2136`.
fn provider_names() -> String {
    let names: Vec<String> = PROVIDERS
        .iter()
        .map(|p| match p.alias {
            Some(alias) => format!("{} (alias {alias})", p.name),
            None => p.name.to_owned(),
        })
        .collect();
    listing(&names, "or")
}

/// `a`, `a or b`, `a, b or c` (with `and` for `conjunction` "and").
fn listing(items: &[impl AsRef<str>], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [rest @ .., last] => {
            let rest: Vec<&str> = rest.iter().map(AsRef::as_ref).collect();
            format!("{} {conjunction} {}", rest.join(", "), last.as_ref())
        }
    }
}

/// `zones`: apex names, normalised like certificate names (lowercase, punycode, no dot).
fn zones(
    path: &str,
    raw: Option<Vec<String>>,
    report: &mut Report<'_>,
) -> Result<Vec<String>, Reported> {
    let Some(list) = raw else {
        return Ok(Vec::new());
    };
    if list.is_empty() {
        return Err(report.error(&format!("{path}.zones"), "is empty, which would match no name; list zones such as example.com, or remove zones to match every zone"));
    }
    let mut zones = Vec::new();
    for (j, text) in list.iter().enumerate() {
        match DomainName::parse_dns(text.trim_end_matches('.')) {
            Ok(name) if !name.is_wildcard() => zones.push(name.as_str().to_owned()),
            _ => {
                return Err(report.error(
                    &format!("{path}.zones[{j}]"),
                    format!(
                        "\"{text}\" is not a zone name; write the zone's apex, such as example.com"
                    ),
                ));
            }
        }
    }
    Ok(zones)
}

fn duration(
    path: &str,
    key: &str,
    raw: Option<String>,
    default: Duration,
    report: &mut Report<'_>,
) -> Result<Duration, Reported> {
    match non_empty(raw) {
        None => Ok(default),
        Some(text) => match parse_duration(&text) {
            Ok(value) if !value.is_zero() => Ok(value),
            Ok(_) => Err(report.error(&format!("{path}.{key}"), "must be more than 0")),
            Err(message) => Err(report.error(&format!("{path}.{key}"), message)),
        },
    }
}

/// `apiUrl` of the API-based providers: `https://`, or `http://` on loopback (a test fake or a
/// local proxy); `default` when unset.
fn api_url(
    path: &str,
    raw: Option<String>,
    default: &str,
    report: &mut Report<'_>,
) -> Result<String, Reported> {
    let Some(url) = non_empty(raw) else {
        return Ok(default.to_owned());
    };
    let loopback = ["http://127.", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| url.starts_with(p));
    if url.starts_with("https://") || loopback {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(report.error(
            &format!("{path}.apiUrl"),
            format!("\"{url}\" is not an https:// URL (http:// only on loopback)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The problems of a config whose only section is `challenges.dns01` with `entry`.
    fn problems_of(entry: &str) -> Vec<String> {
        let yaml = format!("challenges:\n  dns01:\n{entry}");
        match super::super::Config::from_yaml(&yaml, std::iter::empty()) {
            Ok(_) => panic!("{yaml} should be refused"),
            Err(e) => e.problems().iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_key_of_other_providers_names_each_owner() {
        let problems = problems_of(
            "    - provider: cf\n      apiToken: t\n      apiUrl: https://api.example.com\n      \
             project: p\n      tsigSecretFile: /run/secrets/tsig\n",
        );
        assert_eq!(
            problems,
            [
                "challenges.dns01[0].project: is a setting of the gcloud provider, not of \
                 cloudflare; remove it from this entry",
                "challenges.dns01[0].tsigSecretFile: is a setting of the rfc2136 provider, not \
                 of cloudflare; remove it from this entry",
            ]
        );
        let problems = problems_of(
            "    - provider: rfc2136\n      nameserver: ns1:53\n      tsigKeyName: k\n      \
             tsigSecret: c2VjcmV0\n      apiUrl: https://api.example.com\n",
        );
        assert_eq!(
            problems,
            [
                "challenges.dns01[0].apiUrl: is a setting of the cloudflare and gcloud providers, \
              not of rfc2136; remove it from this entry"
            ]
        );
    }

    #[test]
    fn an_entry_s_keys_are_read_at_their_path() {
        let problems = problems_of("    - provider: gcloud\n      project: [a, b]\n");
        assert_eq!(
            problems,
            ["challenges.dns01[0].project: expected a string, found a list"]
        );
    }

    #[test]
    fn listings_read_as_prose() {
        assert_eq!(listing(&["a"], "or"), "a");
        assert_eq!(listing(&["a", "b"], "and"), "a and b");
        assert_eq!(listing(&["a", "b", "c"], "or"), "a, b or c");
    }

    #[test]
    fn every_key_is_listed_once_and_each_belongs_somewhere() {
        let keys = every_key();
        for key in keys {
            assert_eq!(keys.iter().filter(|k| *k == key).count(), 1, "{key}");
            let common = de::fields::<RawDns01Common>().contains(key);
            assert!(common || PROVIDERS.iter().any(|p| p.takes(key)), "{key}");
        }
        assert!(keys.contains(&"provider") && keys.contains(&"tsigSecretFile"));
    }
}
