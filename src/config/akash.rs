//! `auth.akash`: Akash provider-API tokens (AEP-64), signed by a wallet's secp256k1 key.
//!
//! Everything that can be decided before start is decided here: the key source and its REST
//! endpoint, the time bounds, the audience, and the principals (an address and the names it
//! may request). No address is looked up on chain at load time.

use std::{path::PathBuf, time::Duration};

use serde::{Serialize, Serializer};

use super::{
    print::{as_display_seq, as_duration, as_optional_path},
    raw::{RawAkash, RawAkashPrincipal},
    report::{Report, Reported, non_empty, pem_certificates_file},
};
use crate::akash::Address;
use crate::domain::DomainPattern;
use crate::util::duration::parse_duration;

/// `auth.akash.leeway` default: clock skew tolerated on `nbf` and `exp`.
const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Beyond this, an expired token stays usable long enough to matter.
const MAX_LEEWAY: Duration = Duration::from_secs(600);
/// `auth.akash.maxTokenLifetime` default: AEP-64 recommends tokens of 15 minutes at most.
const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(900);

/// `auth.akash`: which Akash wallets may request which names.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AkashConfig {
    /// `auth.akash.keySource`: `chain` or `recover` (default).
    pub key_source: AkashKeySource,
    /// `auth.akash.restUrl`: the Cosmos REST endpoint (`chain` only).
    pub rest_url: Option<String>,
    /// `auth.akash.caCertificates`: PEM roots added to the system's for the REST endpoint.
    #[serde(serialize_with = "as_optional_path")]
    pub ca_certificates: Option<PathBuf>,
    /// `auth.akash.maxTokenLifetime`: the longest `exp - nbf` accepted (default 15m); `None`
    /// (written `0`) for no limit.
    #[serde(serialize_with = "as_optional_duration")]
    pub max_token_lifetime: Option<Duration>,
    /// `auth.akash.leeway`: clock skew tolerated on `nbf` and `exp` (default 30s, at most 10m).
    #[serde(serialize_with = "as_duration")]
    pub leeway: Duration,
    /// `auth.akash.audience`: certfleet's own address; when set, only `granular` tokens naming
    /// it as a provider are accepted.
    #[serde(serialize_with = "as_optional_display")]
    pub audience: Option<Address>,
    /// `auth.akash.principals`: the wallets that may request names; other addresses get 403.
    pub principals: Vec<AkashPrincipal>,
}

/// `auth.akash.keySource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AkashKeySource {
    /// The account's key from the chain (Cosmos auth module over REST), cached for good.
    Chain,
    /// The key recovered from each signature and checked against `iss`.
    Recover,
}

/// One item of `auth.akash.principals`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AkashPrincipal {
    /// The wallet's `akash1...` address (the tokens' `iss`).
    #[serde(serialize_with = "super::print::as_display")]
    pub address: Address,
    /// The names it may request.
    #[serde(serialize_with = "as_display_seq")]
    pub domains: Vec<DomainPattern>,
    /// The ACME profiles it may ask for besides the default; absent: any.
    pub profiles: Option<Vec<crate::domain::Profile>>,
    /// `quota`: the most new certificates it may obtain per window; absent: no quota.
    pub quota: Option<super::limits::Limit>,
}

/// Resolves `auth.akash`, reporting every problem in it; `None` when the section is absent.
pub(super) fn akash(
    raw: Option<RawAkash>,
    report: &mut Report<'_>,
) -> Result<Option<AkashConfig>, Reported> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let key_source = key_source(non_empty(raw.key_source).as_deref(), report);
    let rest_url = non_empty(raw.rest_url);
    let ca_certificates = non_empty(raw.ca_certificates)
        .map(|path| {
            pem_certificates_file(
                path,
                "auth.akash.caCertificates",
                "point it at a PEM file of the CA certificates that sign the REST \
         endpoint's HTTPS certificate",
                report,
            )
        })
        .transpose();
    let max_token_lifetime = max_lifetime(raw.max_token_lifetime, report);
    let leeway = leeway(raw.leeway, report);
    let audience = audience(non_empty(raw.audience), report);
    let principals = principals(raw.principals, report);
    let key_source = key_source?;
    let rest_url = check_rest_url(key_source, rest_url, report);
    let ca_certificates = ca_certificates?;
    if ca_certificates.is_some() && key_source == AkashKeySource::Recover {
        return Err(report.error(
            "auth.akash.caCertificates",
            "is only used with keySource: chain (recover asks no server); remove it",
        ));
    }
    Ok(Some(AkashConfig {
        key_source,
        rest_url: rest_url?,
        ca_certificates,
        max_token_lifetime: max_token_lifetime?,
        leeway: leeway?,
        audience: audience?,
        principals: principals?,
    }))
}

fn key_source(value: Option<&str>, report: &mut Report<'_>) -> Result<AkashKeySource, Reported> {
    match value {
        None | Some("recover") => Ok(AkashKeySource::Recover),
        Some("chain") => Ok(AkashKeySource::Chain),
        Some(other) => Err(report.error(
            "auth.akash.keySource",
            format!(
                "\"{other}\" is not a key source; use chain (the key from the chain's auth \
                 module, needs restUrl) or recover (from the signature, the default)"
            ),
        )),
    }
}

/// `restUrl`: required with `chain`, unused with `recover`. `https://`, or `http://` (keys are
/// checked against their address, so a tampered answer cannot pass a forgery; warned unless
/// loopback).
fn check_rest_url(
    source: AkashKeySource,
    value: Option<String>,
    report: &mut Report<'_>,
) -> Result<Option<String>, Reported> {
    const KEY: &str = "auth.akash.restUrl";
    match (source, value) {
        (AkashKeySource::Recover, None) => Ok(None),
        (AkashKeySource::Recover, Some(_)) => Err(report.error(
            KEY,
            "is only used with keySource: chain; set keySource: chain or remove restUrl",
        )),
        (AkashKeySource::Chain, None) => Err(report.error(
            KEY,
            "is required with keySource: chain: a Cosmos REST (LCD) endpoint of the Akash \
             chain, such as https://api.akashnet.net (or use keySource: recover)",
        )),
        (AkashKeySource::Chain, Some(text)) => {
            let url = reqwest::Url::parse(&text).map_err(|e| {
                report.error(
                    KEY,
                    format!(
                        "\"{text}\" is not a URL ({e}); write it like https://api.akashnet.net"
                    ),
                )
            })?;
            if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
                return Err(report.error(
                    KEY,
                    format!("\"{text}\" has a query, a fragment or user info; give the base URL"),
                ));
            }
            match url.scheme() {
                "https" => {}
                "http" if is_loopback(&url) => {}
                "http" => report.warn(format!(
                    "auth.akash.restUrl {text} is plain http: keys are checked against their \
                     addresses, so a tampered answer can only make lookups fail, but use https \
                     where you can"
                )),
                _ => {
                    return Err(
                        report.error(KEY, format!("\"{text}\" is not an http:// or https:// URL"))
                    );
                }
            }
            Ok(Some(text.trim_end_matches('/').to_owned()))
        }
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn max_lifetime(
    value: Option<String>,
    report: &mut Report<'_>,
) -> Result<Option<Duration>, Reported> {
    let Some(text) = non_empty(value) else {
        return Ok(Some(DEFAULT_MAX_LIFETIME));
    };
    match parse_duration(&text) {
        Err(message) => Err(report.error("auth.akash.maxTokenLifetime", message)),
        Ok(d) if d.is_zero() => Ok(None),
        Ok(d) if d.subsec_nanos() != 0 || d < Duration::from_secs(1) => Err(report.error(
            "auth.akash.maxTokenLifetime",
            format!("\"{text}\" is not a whole number of seconds; tokens count in seconds"),
        )),
        Ok(d) => Ok(Some(d)),
    }
}

fn leeway(value: Option<String>, report: &mut Report<'_>) -> Result<Duration, Reported> {
    const KEY: &str = "auth.akash.leeway";
    let Some(text) = non_empty(value) else {
        return Ok(DEFAULT_LEEWAY);
    };
    match parse_duration(&text) {
        Err(message) => Err(report.error(KEY, message)),
        Ok(leeway) if leeway > MAX_LEEWAY => Err(report.error(
            KEY,
            format!(
                "\"{text}\" is more than the 10m maximum: expired tokens would stay usable; fix \
                 the clocks instead (default 30s)"
            ),
        )),
        Ok(leeway) => Ok(leeway),
    }
}

fn audience(value: Option<String>, report: &mut Report<'_>) -> Result<Option<Address>, Reported> {
    value
        .map(|text| {
            Address::parse(&text).map_err(|e| {
                report.error(
                    "auth.akash.audience",
                    format!(
                        "{e}; give certfleet's own akash1 address, which clients name as provider"
                    ),
                )
            })
        })
        .transpose()
}

fn principals(
    value: Option<Vec<RawAkashPrincipal>>,
    report: &mut Report<'_>,
) -> Result<Vec<AkashPrincipal>, Reported> {
    let list = value.unwrap_or_default();
    if list.is_empty() {
        return Err(report.error(
            "auth.akash.principals",
            "is required with auth.akash: list each wallet that may request certificates, as \
             {address: akash1..., domains: [\"*.provider.example.com\"]}; other addresses get 403",
        ));
    }
    let mut principals: Vec<AkashPrincipal> = Vec::with_capacity(list.len());
    let mut failure = None;
    for (i, raw) in list.into_iter().enumerate() {
        match principal(i, raw, report) {
            Ok(p) => {
                if let Some(j) = principals.iter().position(|q| q.address == p.address) {
                    failure = Some(report.error(
                        &format!("auth.akash.principals[{i}].address"),
                        format!(
                            "{} is already auth.akash.principals[{j}]; list each address once, \
                             with all its domains",
                            p.address
                        ),
                    ));
                }
                principals.push(p);
            }
            Err(reported) => failure = Some(reported),
        }
    }
    failure.map_or(Ok(principals), Err)
}

fn principal(
    i: usize,
    raw: RawAkashPrincipal,
    report: &mut Report<'_>,
) -> Result<AkashPrincipal, Reported> {
    let path = format!("auth.akash.principals[{i}]");
    let address = match non_empty(raw.address) {
        Some(text) => {
            Address::parse(&text).map_err(|e| report.error(&format!("{path}.address"), e))
        }
        None => Err(report.error(
            &format!("{path}.address"),
            "is required: the wallet's akash1... address (the tokens' iss)",
        )),
    };
    let domains = domains(&path, raw.domains, report);
    let profiles = super::report::profiles(&format!("{path}.profiles"), raw.profiles, report);
    let quota = super::limits::quota(&format!("{path}.quota"), raw.quota, report);
    let (address, domains, profiles, quota) = (address?, domains?, profiles?, quota?);
    if domains.iter().any(DomainPattern::is_any) {
        report.warn(format!(
            "{path} ({address}) may request certificates for every domain"
        ));
    }
    Ok(AkashPrincipal {
        address,
        domains,
        profiles,
        quota,
    })
}

/// `domains`: required (an Akash wallet is anyone's to create: say what each may request);
/// `["*"]` is every domain.
fn domains(
    path: &str,
    value: Option<Vec<String>>,
    report: &mut Report<'_>,
) -> Result<Vec<DomainPattern>, Reported> {
    let key = format!("{path}.domains");
    let list = value.unwrap_or_default();
    if list.is_empty() {
        return Err(report.error(
            &key,
            "is required: the patterns this wallet may request, such as \
             [\"*.provider.example.com\"] ([\"*\"] for every domain)",
        ));
    }
    if super::report::star_with_name_patterns(&list) {
        return Err(report.error(
            &key,
            "lists \"*\" (every domain) together with other name patterns; keep only \"*\" \
             (address patterns such as 10.0.0.0/8 may join it) or only the patterns",
        ));
    }
    let mut patterns = Vec::with_capacity(list.len());
    let mut failure = None;
    for (j, text) in list.iter().enumerate() {
        match DomainPattern::parse(text) {
            Ok(pattern) => patterns.push(pattern),
            Err(e) => {
                failure = Some(report.error(
                    &format!("{key}[{j}]"),
                    format!(
                        "\"{text}\" is not a domain pattern: {e}; write a name such as \
                         a.example.com, a wildcard such as *.example.com, or an address or \
                         network such as 192.0.2.1 or 10.0.0.0/8"
                    ),
                ));
            }
        }
    }
    failure.map_or(Ok(patterns), Err)
}

fn as_optional_duration<S: Serializer>(
    value: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    as_duration(&value.unwrap_or(Duration::ZERO), serializer)
}

fn as_optional_display<S: Serializer>(
    value: &Option<Address>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(address) => serializer.collect_str(address),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Loaded};
    use super::*;

    const A: &str = "akash1zyfpx9q4zct3sxg6rvwp68slyqsjygey0quqf3";
    const B: &str = "akash1yg3jgffxyu5zj23t9skjutesxyerxdp46ed34h";

    fn load(yaml: &str, env: &[(&str, &str)]) -> Result<Loaded, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_yaml(yaml, env).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_overrides() {
        let yaml = format!(
            "auth:\n  akash:\n    principals:\n      - address: {A}\n        domains: [\"*.p.example.com\"]\n"
        );
        let loaded = load(&yaml, &[]).expect("valid");
        let akash = loaded.config.auth.akash.clone().expect("auth.akash");
        assert_eq!(akash.key_source, AkashKeySource::Recover);
        assert_eq!(akash.leeway, DEFAULT_LEEWAY);
        assert_eq!(akash.max_token_lifetime, Some(DEFAULT_MAX_LIFETIME));
        assert!(akash.audience.is_none() && akash.rest_url.is_none());
        assert_eq!(akash.principals[0].address.as_str(), A);
        assert!(!loaded.warnings.iter().any(|w| w.contains("no auth method")));
        let printed = loaded.config.to_redacted_yaml();
        assert!(
            printed.contains("keySource: recover") && printed.contains(A),
            "{printed}"
        );

        let yaml = format!(
            "auth:\n  akash:\n    keySource: chain\n    restUrl: http://127.0.0.1:1317/\n    maxTokenLifetime: \"0\"\n    leeway: 5s\n    audience: {B}\n    principals:\n      - address: {A}\n        domains: [\"*\"]\n"
        );
        let loaded = load(
            &yaml,
            &[(
                "CERTFLEET_AUTH__AKASH__PRINCIPALS__0__DOMAINS__0",
                "a.example.com",
            )],
        )
        .expect("valid");
        let akash = loaded.config.auth.akash.expect("auth.akash");
        assert_eq!(akash.key_source, AkashKeySource::Chain);
        assert_eq!(akash.rest_url.as_deref(), Some("http://127.0.0.1:1317"));
        assert_eq!(akash.max_token_lifetime, None);
        assert_eq!(akash.leeway, Duration::from_secs(5));
        assert_eq!(akash.audience.map(|a| a.to_string()).as_deref(), Some(B));
        assert_eq!(akash.principals[0].domains[0].to_string(), "a.example.com");
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        let yaml = format!(
            "auth:\n  akash:\n    keySource: chain\n    caCertificates: /nonexistent/ca.pem\n    maxTokenLifetime: 15\n    leeway: 1h\n    audience: cosmos1zyfpx9q4zct3sxg6rvwp68slyqsjygeyzm38st\n    principals:\n      - address: {A}\n      - address: akash1nope\n        domains: [\"bad name!\"]\n      - address: {A}\n        domains: [\"*\", a.example.com]\n"
        );
        let err = load(&yaml, &[]).expect_err("invalid");
        for key in [
            "auth.akash.restUrl: is required with keySource: chain",
            "auth.akash.caCertificates: cannot read /nonexistent/ca.pem",
            "auth.akash.maxTokenLifetime:",
            "auth.akash.leeway:",
            "auth.akash.audience:",
            "auth.akash.principals[0].domains: is required",
            "auth.akash.principals[1].address:",
            "auth.akash.principals[1].domains[0]:",
            "auth.akash.principals[2].domains: lists \"*\"",
        ] {
            assert!(err.contains(key), "{key} in {err}");
        }
        let err = load("auth:\n  akash:\n    keySource: both\n", &[]).expect_err("invalid");
        assert!(err.contains("auth.akash.keySource: \"both\""), "{err}");
        assert!(err.contains("auth.akash.principals: is required"), "{err}");
        let err = load(
            &format!("auth:\n  akash:\n    restUrl: https://x\n    principals: [{{address: {A}, domains: [\"*\"]}}]\n"),
            &[],
        )
        .expect_err("invalid");
        assert!(
            err.contains("auth.akash.restUrl: is only used with keySource: chain"),
            "{err}"
        );
        let err = load(
            &format!("auth:\n  akash:\n    principals: [{{address: {A}, domains: [\"*\"]}}, {{address: {A}, domains: [\"*\"]}}]\n"),
            &[],
        )
        .expect_err("invalid");
        assert!(
            err.contains("auth.akash.principals[1].address: akash1zyf"),
            "{err}"
        );
        let err = load("auth:\n  akash:\n    issuer: x\n", &[]).expect_err("unknown key");
        assert!(err.contains("auth.akash.issuer: unknown key"), "{err}");
    }
}
