//! `limits`: the CA's limits certfleet knows in advance (`service/limits.rs` counts and
//! decides), and the `{count, window}` shape a credential's `quota` shares.
//!
//! For a Let's Encrypt directory the defaults are Let's Encrypt's published limits
//! (letsencrypt.org/docs/rate-limits, June 2025): 50 new certificates per registered domain and
//! 5 per exact set of names per 7 days, 300 new orders per account per 3 hours, 5 failed
//! authorizations per identifier per account per hour. Other directories have no limit unless
//! one is configured.

use std::time::Duration;

use serde::Serialize;

use super::{
    print::as_duration,
    raw::{RawLimit, RawLimits},
    report::{Report, Reported},
};
use crate::util::duration::parse_duration;

/// The default `limits.renewalReserve`: the share of each per-domain and per-account limit only
/// renewals may use.
const DEFAULT_RESERVE_PERCENT: u8 = 20;

/// Let's Encrypt's production and staging directories' hosts.
const LETS_ENCRYPT_HOSTS: [&str; 2] = [
    "acme-v02.api.letsencrypt.org",
    "acme-staging-v02.api.letsencrypt.org",
];

/// At most `count` events per `window` (sliding: an event counts until `window` after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limit {
    /// How many.
    pub count: u32,
    /// Per how long.
    #[serde(serialize_with = "as_duration")]
    pub window: Duration,
}

impl Limit {
    const fn new(count: u32, secs: u64) -> Self {
        Self {
            count,
            window: Duration::from_secs(secs),
        }
    }
}

/// `limits`. A limit left out is none (`None`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitsConfig {
    /// `limits.perRegisteredDomain`: new certificates per registered domain (the Public Suffix
    /// List's).
    pub per_registered_domain: Option<Limit>,
    /// `limits.perExactSet`: new certificates for one exact set of names.
    pub per_exact_set: Option<Limit>,
    /// `limits.perAccount`: new orders of the ACME account.
    pub per_account: Option<Limit>,
    /// `limits.failedValidations`: failed authorizations per name.
    pub failed_validations: Option<Limit>,
    /// `limits.renewalReserve`: the percentage of the per-domain and per-account limits that
    /// new certificates leave to renewals.
    pub renewal_reserve: u8,
    /// `limits.renewalPace`: the most renewals the worker starts per window.
    pub renewal_pace: Option<Limit>,
}

impl LimitsConfig {
    /// Let's Encrypt's published limits.
    fn lets_encrypt() -> Self {
        Self {
            per_registered_domain: Some(Limit::new(50, 7 * 86_400)),
            per_exact_set: Some(Limit::new(5, 7 * 86_400)),
            per_account: Some(Limit::new(300, 3 * 3600)),
            failed_validations: Some(Limit::new(5, 3600)),
            renewal_reserve: DEFAULT_RESERVE_PERCENT,
            renewal_pace: None,
        }
    }

    /// The longest window of any limit (counts older than it can go).
    pub fn longest_window(&self) -> Duration {
        [
            self.per_registered_domain,
            self.per_exact_set,
            self.per_account,
            self.failed_validations,
        ]
        .iter()
        .flatten()
        .map(|limit| limit.window)
        .max()
        .unwrap_or(Duration::ZERO)
    }
}

/// Whether `url` is one of Let's Encrypt's directories.
fn is_lets_encrypt(url: &str) -> bool {
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    LETS_ENCRYPT_HOSTS
        .iter()
        .any(|known| host.eq_ignore_ascii_case(known))
}

/// Resolves `limits` for the CA at `directory_url` (whose defaults apply to keys left out).
pub(super) fn limits(
    raw: RawLimits,
    directory_url: &str,
    report: &mut Report<'_>,
) -> Result<LimitsConfig, Reported> {
    let defaults = if is_lets_encrypt(directory_url) {
        LimitsConfig::lets_encrypt()
    } else {
        LimitsConfig {
            renewal_reserve: DEFAULT_RESERVE_PERCENT,
            ..LimitsConfig::default()
        }
    };
    let mut one = |key: &str, value: Option<RawLimit>, default: Option<Limit>| match value {
        None => Ok(default),
        Some(value) => limit(&format!("limits.{key}"), &value, report),
    };
    let per_registered_domain = one(
        "perRegisteredDomain",
        raw.per_registered_domain,
        defaults.per_registered_domain,
    );
    let per_exact_set = one("perExactSet", raw.per_exact_set, defaults.per_exact_set);
    let per_account = one("perAccount", raw.per_account, defaults.per_account);
    let failed_validations = one(
        "failedValidations",
        raw.failed_validations,
        defaults.failed_validations,
    );
    let renewal_pace = one("renewalPace", raw.renewal_pace, defaults.renewal_pace);
    let renewal_reserve = match raw.renewal_reserve.as_deref() {
        None => Ok(defaults.renewal_reserve),
        Some(text) => percent(text).ok_or_else(|| {
            report.error(
                "limits.renewalReserve",
                format!(
                    "\"{text}\" is not a share; write a percentage from 0% to 100%, like \
                     {DEFAULT_RESERVE_PERCENT}% (the default)"
                ),
            )
        }),
    };
    let config = LimitsConfig {
        per_registered_domain: per_registered_domain?,
        per_exact_set: per_exact_set?,
        per_account: per_account?,
        failed_validations: failed_validations?,
        renewal_reserve: renewal_reserve?,
        renewal_pace: renewal_pace?,
    };
    // `enabled: false` turns every limit off, the pace included; the keys are still checked.
    match raw.enabled {
        Some(false) => Ok(LimitsConfig::default()),
        _ => Ok(config),
    }
}

/// A `{count, window}` at `key`: `count` a whole number (0: no limit), `window` a duration
/// longer than zero. `Ok(None)` for a count of 0.
pub(super) fn limit(
    key: &str,
    raw: &RawLimit,
    report: &mut Report<'_>,
) -> Result<Option<Limit>, Reported> {
    let count = match raw.count.as_deref().map(str::trim) {
        None => Err(report.error(
            &format!("{key}.count"),
            "is missing; give how many are allowed per window, like {count: 50, window: 7d} \
             (0 = no limit)",
        )),
        Some(text) => text.parse::<u32>().map_err(|_| {
            report.error(
                &format!("{key}.count"),
                format!("\"{text}\" is not a count; give a whole number, like 50 (0 = no limit)"),
            )
        }),
    };
    let window = match raw.window.as_deref().map(str::trim) {
        None => Err(report.error(
            &format!("{key}.window"),
            "is missing; give the window the count is per, like 7d, 3h or 1m",
        )),
        Some(text) => match parse_duration(text) {
            Ok(window) if window >= Duration::from_secs(1) => Ok(window),
            Ok(_) => Err(report.error(
                &format!("{key}.window"),
                format!("\"{text}\" is too short; give at least 1s, like 7d, 3h or 1m"),
            )),
            Err(err) => Err(report.error(&format!("{key}.window"), err)),
        },
    };
    let (count, window) = (count?, window?);
    Ok((count > 0).then_some(Limit { count, window }))
}

/// A credential's `quota` at `key` (new certificates per window, counted per credential);
/// `None` when absent or of count 0.
pub(super) fn quota(
    key: &str,
    raw: Option<RawLimit>,
    report: &mut Report<'_>,
) -> Result<Option<Limit>, Reported> {
    raw.map_or(Ok(None), |raw| limit(key, &raw, report))
}

/// `20%` (or `20`) as 20, when from 0 to 100.
fn percent(text: &str) -> Option<u8> {
    let number = text.trim().strip_suffix('%').unwrap_or(text.trim()).trim();
    number.parse::<u8>().ok().filter(|p| *p <= 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_encrypt_directories_are_recognised() {
        assert!(is_lets_encrypt(
            "https://acme-v02.api.letsencrypt.org/directory"
        ));
        assert!(is_lets_encrypt(
            "https://acme-staging-v02.api.letsencrypt.org/directory"
        ));
        assert!(!is_lets_encrypt("https://localhost:14000/dir"));
        assert!(!is_lets_encrypt(
            "https://acme-v02.api.letsencrypt.org.example/directory"
        ));
    }

    #[test]
    fn percentages_are_read_with_or_without_the_sign() {
        assert_eq!(percent("20%"), Some(20));
        assert_eq!(percent(" 0 "), Some(0));
        assert_eq!(percent("100%"), Some(100));
        assert_eq!(percent("101%"), None);
        assert_eq!(percent("-1%"), None);
        assert_eq!(percent("a lot"), None);
    }
}
