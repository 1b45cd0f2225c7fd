//! `challenges.dns01` (a list of DNS providers, each for some zones) and `challenges.resolvers`.
//!
//! Every entry is one `provider` with that provider's keys; a key of another provider in an
//! entry is an error naming the provider it belongs to. Secrets (`apiToken`, `serviceAccount`,
//! `tsigSecret`) also come as `...File`. Nothing here contacts a provider: credentials are
//! checked for form only (a service-account key parses, a TSIG secret is base64).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;

use super::{
    print::as_duration,
    raw::RawDns01Entry,
    report::{Report, Reported, non_empty},
    secret::Secret,
};
use crate::domain::{DomainName, in_zone};
use crate::util::duration::parse_duration;

const CLOUDFLARE_API: &str = "https://api.cloudflare.com/client/v4";
const GCLOUD_API: &str = "https://dns.googleapis.com/dns/v1";
const DEFAULT_TTL: u32 = 120;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_PROPAGATION_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_POLLING_INTERVAL: Duration = Duration::from_secs(2);
const PROVIDERS: &str = "cloudflare (alias cf), gcloud (alias googleCloud) or rfc2136";

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
}

impl Dns01Entry {
    /// Whether this entry handles `name` (a wildcard counts as its base name).
    pub fn matches(&self, name: &str) -> bool {
        let name = name.strip_prefix("*.").unwrap_or(name);
        self.zones.is_empty() || self.zones.iter().any(|zone| in_zone(name, zone))
    }
}

/// The provider of an entry: the registry of DNS providers (`dns::build` maps each arm).
#[derive(Debug, Clone, Serialize)]
#[serde(
    tag = "provider",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
pub enum DnsProviderConfig {
    /// `cloudflare` / `cf`.
    Cloudflare {
        /// `apiToken` (or `apiTokenFile`): a scoped API token.
        api_token: Secret,
        /// `apiUrl`: the API base (default `https://api.cloudflare.com/client/v4`).
        api_url: String,
    },
    /// `gcloud` / `googleCloud`.
    Gcloud {
        /// `project`: the project of the managed zones (else the key's or the platform's).
        project: Option<String>,
        /// `serviceAccount` (or `serviceAccountFile`): a key JSON; absent = platform identity.
        service_account: Option<Secret>,
        /// `apiUrl`: the API base (default `https://dns.googleapis.com/dns/v1`).
        api_url: String,
    },
    /// `rfc2136`.
    Rfc2136 {
        /// `nameserver`: `host:port` of the primary (port 53 when absent).
        nameserver: String,
        /// `tsigKeyName`.
        tsig_key_name: String,
        /// `tsigSecret` (or `tsigSecretFile`): base64.
        tsig_secret: Secret,
        /// `tsigAlgorithm`: `hmac-sha256` (default) or `hmac-sha512`.
        tsig_algorithm: TsigAlgorithm,
    },
}

impl DnsProviderConfig {
    /// The canonical provider name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Cloudflare { .. } => "cloudflare",
            Self::Gcloud { .. } => "gcloud",
            Self::Rfc2136 { .. } => "rfc2136",
        }
    }
}

/// A TSIG algorithm (RFC 8945 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TsigAlgorithm {
    /// `hmac-sha256`.
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// `hmac-sha512`.
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
}

/// Resolves `challenges.dns01`.
pub(super) fn entries(
    raw: Option<Vec<RawDns01Entry>>,
    report: &mut Report<'_>,
) -> Result<Vec<Dns01Entry>, Reported> {
    let mut entries = Vec::new();
    let mut failure = None;
    for (i, raw) in raw.unwrap_or_default().into_iter().enumerate() {
        match entry(&format!("challenges.dns01[{i}]"), raw, report) {
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

fn entry(path: &str, raw: RawDns01Entry, report: &mut Report<'_>) -> Result<Dns01Entry, Reported> {
    let provider = provider(path, &raw, report);
    let zones = zones(path, raw.zones, report);
    let ttl = match non_empty(raw.ttl) {
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
    let timeout = duration(path, "timeout", raw.timeout, DEFAULT_TIMEOUT, report);
    let propagation_timeout = duration(
        path,
        "propagationTimeout",
        raw.propagation_timeout,
        DEFAULT_PROPAGATION_TIMEOUT,
        report,
    );
    let polling_interval = duration(
        path,
        "pollingInterval",
        raw.polling_interval,
        DEFAULT_POLLING_INTERVAL,
        report,
    );
    Ok(Dns01Entry {
        provider: provider?,
        zones: zones?,
        ttl: ttl?,
        timeout: timeout?,
        propagation_timeout: propagation_timeout?,
        polling_interval: polling_interval?,
    })
}

fn provider(
    path: &str,
    raw: &RawDns01Entry,
    report: &mut Report<'_>,
) -> Result<DnsProviderConfig, Reported> {
    let key = format!("{path}.provider");
    let Some(name) = non_empty(raw.provider.clone()) else {
        return Err(report.error(&key, format!("is required: {PROVIDERS}")));
    };
    // Every key of every provider, and the provider that owns it.
    let owned = [
        (
            "apiToken",
            raw.api_token.is_some() || raw.api_token_file.is_some(),
            "cloudflare",
        ),
        ("project", raw.project.is_some(), "gcloud"),
        (
            "serviceAccount",
            raw.service_account.is_some() || raw.service_account_file.is_some(),
            "gcloud",
        ),
        ("nameserver", raw.nameserver.is_some(), "rfc2136"),
        ("tsigKeyName", raw.tsig_key_name.is_some(), "rfc2136"),
        (
            "tsigSecret",
            raw.tsig_secret.is_some() || raw.tsig_secret_file.is_some(),
            "rfc2136",
        ),
        ("tsigAlgorithm", raw.tsig_algorithm.is_some(), "rfc2136"),
    ];
    let canonical = match name.as_str() {
        "cloudflare" | "cf" => "cloudflare",
        "gcloud" | "googleCloud" => "gcloud",
        "rfc2136" => "rfc2136",
        other => {
            return Err(report.error(
                &key,
                format!("unknown provider \"{other}\"; use {PROVIDERS}"),
            ));
        }
    };
    let mut failure = None;
    for (field, set, owner) in owned {
        if set && owner != canonical {
            failure = Some(report.error(
                &format!("{path}.{field}"),
                format!("is a setting of the {owner} provider, not of {canonical}; remove it from this entry"),
            ));
        }
    }
    if raw.api_url.is_some() && canonical == "rfc2136" {
        failure = Some(report.error(
            &format!("{path}.apiUrl"),
            "rfc2136 has no API URL; set nameserver instead",
        ));
    }
    if let Some(reported) = failure {
        return Err(reported);
    }
    match canonical {
        "cloudflare" => cloudflare(path, raw, report),
        "gcloud" => gcloud(path, raw, report),
        _ => rfc2136(path, raw, report),
    }
}

fn cloudflare(
    path: &str,
    raw: &RawDns01Entry,
    report: &mut Report<'_>,
) -> Result<DnsProviderConfig, Reported> {
    let key = format!("{path}.apiToken");
    let token = report.secret(&key, raw.api_token.clone(), raw.api_token_file.clone())?;
    let Some(token) = token.filter(|t| !t.secret.expose().trim().is_empty()) else {
        return Err(report.error(
            &key,
            "is required (or apiTokenFile): a Cloudflare API token with Zone.DNS Edit and Zone.Zone Read \
             on the zones (docs/dns-providers.md)",
        ));
    };
    Ok(DnsProviderConfig::Cloudflare {
        api_token: token.secret,
        api_url: api_url(path, raw.api_url.clone(), CLOUDFLARE_API, report)?,
    })
}

fn gcloud(
    path: &str,
    raw: &RawDns01Entry,
    report: &mut Report<'_>,
) -> Result<DnsProviderConfig, Reported> {
    let key = format!("{path}.serviceAccount");
    let service_account = report.secret(
        &key,
        raw.service_account.clone(),
        raw.service_account_file.clone(),
    )?;
    if let Some(value) = &service_account
        && let Err(problem) =
            crate::dns::gcloud::Credentials::service_account(value.secret.expose())
    {
        return Err(report.error(&value.key, problem));
    }
    Ok(DnsProviderConfig::Gcloud {
        project: non_empty(raw.project.clone()),
        service_account: service_account.map(|value| value.secret),
        api_url: api_url(path, raw.api_url.clone(), GCLOUD_API, report)?,
    })
}

fn rfc2136(
    path: &str,
    raw: &RawDns01Entry,
    report: &mut Report<'_>,
) -> Result<DnsProviderConfig, Reported> {
    let nameserver = match non_empty(raw.nameserver.clone()) {
        Some(server) if !server.contains(char::is_whitespace) => Ok(server),
        Some(_) => Err(report.error(
            &format!("{path}.nameserver"),
            "has a space; write host:port, such as ns1.example.com:53",
        )),
        None => Err(report.error(
            &format!("{path}.nameserver"),
            "is required: the primary's host:port, such as ns1.example.com:53",
        )),
    };
    let key_name = match non_empty(raw.tsig_key_name.clone()) {
        Some(name) if crate::dns::wire::parse_name(&name).is_ok() => Ok(name),
        Some(name) => Err(report.error(
            &format!("{path}.tsigKeyName"),
            format!("\"{name}\" is not a DNS name; use the key's name from named.conf"),
        )),
        None => Err(report.error(
            &format!("{path}.tsigKeyName"),
            "is required: the TSIG key's name, such as acme-key",
        )),
    };
    let secret_key = format!("{path}.tsigSecret");
    let secret = match report.secret(&secret_key, raw.tsig_secret.clone(), raw.tsig_secret_file.clone()) {
        Ok(Some(value)) if base64::engine::general_purpose::STANDARD.decode(value.secret.expose().trim()).is_ok() => Ok(value.secret),
        Ok(Some(value)) => Err(report.error(&value.key, "is not base64; paste the secret exactly as tsig-keygen printed it")),
        Ok(None) => Err(report.error(&secret_key, "is required (or tsigSecretFile): generate a key with `tsig-keygen -a hmac-sha256 acme-key`")),
        Err(reported) => Err(reported),
    };
    let algorithm = match raw.tsig_algorithm.as_deref() {
        None | Some("hmac-sha256") => Ok(TsigAlgorithm::HmacSha256),
        Some("hmac-sha512") => Ok(TsigAlgorithm::HmacSha512),
        Some(other) => Err(report.error(
            &format!("{path}.tsigAlgorithm"),
            format!("\"{other}\" is not supported; use hmac-sha256 or hmac-sha512"),
        )),
    };
    Ok(DnsProviderConfig::Rfc2136 {
        nameserver: nameserver?,
        tsig_key_name: key_name?,
        tsig_secret: secret?,
        tsig_algorithm: algorithm?,
    })
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
        match DomainName::parse(text.trim_end_matches('.')) {
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
