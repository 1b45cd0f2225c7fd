//! `challenges.dnsPersist`: names validated by one standing `_validation-persist` TXT record
//! (draft-ietf-acme-dns-persist), with no DNS credential at all.
//!
//! Each entry names the names it covers (domain patterns), the CA's issuer domain names the
//! record may name (default: the directory's first `meta.caaIdentities`), whether the record
//! carries `policy=wildcard` (needed for wildcard names and for subdomains), an optional
//! `persistUntil` written into the record, and how long before it passes to warn.

use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use super::{
    print::as_duration,
    report::{Report, Reported, non_empty},
};
use crate::domain::{DomainName, DomainPattern};
use crate::util::clock;
use crate::util::duration::{format_duration, parse_duration};

/// How long before a record's `persistUntil` passes certfleet warns, unless an entry says.
const DEFAULT_WARN_BEFORE: Duration = Duration::from_secs(30 * 86_400);
/// The draft's bound on `issuer-domain-names` (section "Challenge Object").
const MAX_ISSUER_NAMES: usize = 10;

/// One `challenges.dnsPersist` entry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsPersistEntry {
    /// `names`: the names this entry validates (`example.com`, `*.example.com` for every name
    /// below it, `*` for every name).
    #[serde(serialize_with = "as_patterns")]
    pub names: Vec<DomainPattern>,
    /// `issuerDomainNames`: the CA's issuer domain names a record may name (the first is the one
    /// printed); empty = the directory's first `meta.caaIdentities`.
    pub issuer_domain_names: Vec<String>,
    /// `policy: wildcard`: the record also covers wildcard names and subdomains.
    pub wildcard: bool,
    /// `persistUntil`: written into the record as a Unix time.
    pub persist_until: Option<PersistUntil>,
    /// `warnBefore`: how long before a record's `persistUntil` to warn (default 30 days).
    #[serde(serialize_with = "as_duration")]
    pub warn_before: Duration,
}

impl DnsPersistEntry {
    /// Whether this entry covers `name` (`*.x` counts as itself: a pattern `*.example.com`
    /// holds `*.www.example.com`, and `*.example.com` needs the pattern `*` or `*.com`, or
    /// the exact `*.example.com`).
    pub fn matches(&self, name: &str) -> bool {
        let Ok(parsed) = DomainName::parse(name) else {
            return false;
        };
        self.names.iter().any(|pattern| pattern.matches(&parsed))
    }
}

/// `persistUntil`: a fixed time, or a time that far after the record is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersistUntil {
    /// An RFC 3339 time, as Unix seconds.
    At(i64),
    /// A duration after `certfleet dns-persist record` runs.
    After(Duration),
}

impl PersistUntil {
    /// The Unix time to write into a record printed at `now`.
    pub fn at(self, now: i64) -> i64 {
        match self {
            Self::At(at) => at,
            Self::After(after) => {
                now.saturating_add(i64::try_from(after.as_secs()).unwrap_or(i64::MAX))
            }
        }
    }
}

impl Serialize for PersistUntil {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::At(at) => serializer.serialize_str(&clock::rfc3339(*at)),
            Self::After(after) => serializer.serialize_str(&format_duration(*after)),
        }
    }
}

fn as_patterns<S: Serializer>(value: &[DomainPattern], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(value.iter().map(ToString::to_string))
}

/// One item of `challenges.dnsPersist` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawDnsPersistEntry {
    names: Option<Vec<String>>,
    issuer_domain_names: Option<Vec<String>>,
    policy: Option<String>,
    persist_until: Option<String>,
    warn_before: Option<String>,
}

/// Resolves `challenges.dnsPersist`.
pub(super) fn entries(
    raw: Option<Vec<RawDnsPersistEntry>>,
    report: &mut Report<'_>,
) -> Result<Vec<DnsPersistEntry>, Reported> {
    let mut entries = Vec::new();
    let mut failure = None;
    for (i, raw) in raw.unwrap_or_default().into_iter().enumerate() {
        match entry(&format!("challenges.dnsPersist[{i}]"), raw, report) {
            Ok(entry) => entries.push(entry),
            Err(reported) => failure = Some(reported),
        }
    }
    failure.map_or(Ok(entries), Err)
}

fn entry(
    path: &str,
    raw: RawDnsPersistEntry,
    report: &mut Report<'_>,
) -> Result<DnsPersistEntry, Reported> {
    let names = names(path, raw.names, report);
    let issuers = issuer_names(path, raw.issuer_domain_names, report);
    let wildcard = match non_empty(raw.policy).as_deref() {
        None | Some("none") => Ok(false),
        Some(text) if text.eq_ignore_ascii_case("wildcard") => Ok(true),
        Some(text) => Err(report.error(
            &format!("{path}.policy"),
            format!(
                "\"{text}\" is not a policy; write wildcard (the record also covers wildcard \
                 names and subdomains) or none, or leave it out"
            ),
        )),
    };
    let persist_until = match non_empty(raw.persist_until) {
        None => Ok(None),
        Some(text) => persist_until(&text).map(Some).ok_or_else(|| {
            report.error(
                &format!("{path}.persistUntil"),
                format!(
                    "\"{text}\" is neither a duration (such as 365d) nor an RFC 3339 time \
                     (such as 2027-12-31T00:00:00Z)"
                ),
            )
        }),
    };
    if let Ok(Some(PersistUntil::At(at))) = persist_until
        && at <= clock::now()
    {
        report.warn(format!(
            "{path}.persistUntil: {} has passed: the CA refuses a record carrying it; set a \
             later time (or a duration such as 365d) and publish the record `certfleet \
             dns-persist record NAME` prints",
            clock::rfc3339(at)
        ));
    }
    let warn_before = match non_empty(raw.warn_before) {
        None => Ok(DEFAULT_WARN_BEFORE),
        Some(text) => parse_duration(&text)
            .map_err(|message| report.error(&format!("{path}.warnBefore"), message)),
    };
    Ok(DnsPersistEntry {
        names: names?,
        issuer_domain_names: issuers?,
        wildcard: wildcard?,
        persist_until: persist_until?,
        warn_before: warn_before?,
    })
}

fn persist_until(text: &str) -> Option<PersistUntil> {
    if let Some(at) = clock::parse_rfc3339(text) {
        return Some(PersistUntil::At(at));
    }
    parse_duration(text)
        .ok()
        .filter(|d| !d.is_zero())
        .map(PersistUntil::After)
}

fn names(
    path: &str,
    raw: Option<Vec<String>>,
    report: &mut Report<'_>,
) -> Result<Vec<DomainPattern>, Reported> {
    let key = format!("{path}.names");
    let list = raw.unwrap_or_default();
    if list.is_empty() {
        return Err(report.error(
            &key,
            "is required: list the names this record validates, such as example.com or \
             *.example.com (every name below it)",
        ));
    }
    let mut patterns = Vec::new();
    for (j, text) in list.iter().enumerate() {
        match DomainPattern::parse(text.trim_end_matches('.')) {
            Ok(pattern) => patterns.push(pattern),
            Err(e) => {
                return Err(report.error(
                    &format!("{key}[{j}]"),
                    format!(
                        "\"{text}\" is not a name pattern ({e}); write example.com or *.example.com"
                    ),
                ));
            }
        }
    }
    Ok(patterns)
}

/// Issuer domain names in the draft's form: lowercase A-labels, no trailing dot.
fn issuer_names(
    path: &str,
    raw: Option<Vec<String>>,
    report: &mut Report<'_>,
) -> Result<Vec<String>, Reported> {
    let key = format!("{path}.issuerDomainNames");
    let list = raw.unwrap_or_default();
    if list.len() > MAX_ISSUER_NAMES {
        return Err(report.error(
            &key,
            format!(
                "lists {} names; a CA names at most {MAX_ISSUER_NAMES}",
                list.len()
            ),
        ));
    }
    let mut names = Vec::new();
    for (j, text) in list.iter().enumerate() {
        match DomainName::parse(text.trim_end_matches('.')) {
            Ok(name) if !name.is_wildcard() => names.push(name.as_str().to_owned()),
            _ => {
                return Err(report.error(
                    &format!("{key}[{j}]"),
                    format!(
                        "\"{text}\" is not a domain name; write the CA's issuer domain name, \
                         such as letsencrypt.org"
                    ),
                ));
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(entry: &str) -> Vec<String> {
        let yaml = format!("challenges:\n  dnsPersist:\n{entry}");
        match super::super::Config::from_yaml(&yaml, std::iter::empty()) {
            Ok(_) => panic!("{yaml} should be refused"),
            Err(e) => e.problems().iter().map(ToString::to_string).collect(),
        }
    }

    fn entry_of(entry: &str) -> DnsPersistEntry {
        let yaml = format!("challenges:\n  dnsPersist:\n{entry}");
        let loaded = super::super::Config::from_yaml(&yaml, std::iter::empty()).expect("valid");
        loaded.config.challenges.dns_persist[0].clone()
    }

    #[test]
    fn an_entry_is_read_with_its_defaults() {
        let entry = entry_of("    - names: [example.com, \"*.example.net\"]\n");
        assert!(entry.matches("example.com"));
        assert!(!entry.matches("www.example.com"));
        assert!(entry.matches("www.example.net") && entry.matches("*.example.net"));
        assert!(!entry.matches("example.net"));
        assert!(entry.issuer_domain_names.is_empty() && !entry.wildcard);
        assert_eq!(entry.persist_until, None);
        assert_eq!(entry.warn_before, DEFAULT_WARN_BEFORE);

        let entry = entry_of(
            "    - names: [example.com]\n      issuerDomainNames: [LetsEncrypt.org.]\n      \
             policy: Wildcard\n      persistUntil: 2027-01-01T00:00:00Z\n      warnBefore: 7d\n",
        );
        assert_eq!(entry.issuer_domain_names, ["letsencrypt.org"]);
        assert!(entry.wildcard);
        assert_eq!(entry.persist_until, Some(PersistUntil::At(1_798_761_600)));
        assert_eq!(entry.warn_before, Duration::from_secs(7 * 86_400));
        let yaml = "challenges:\n  dnsPersist:\n    - names: [example.com]\n      \
                    persistUntil: 2020-01-01T00:00:00Z\n";
        let loaded = super::super::Config::from_yaml(yaml, std::iter::empty()).expect("valid");
        assert!(
            loaded.warnings.iter().any(|w| w.starts_with(
                "challenges.dnsPersist[0].persistUntil: 2020-01-01T00:00:00Z has passed"
            )),
            "{:?}",
            loaded.warnings
        );
        let entry = entry_of("    - names: [example.com]\n      persistUntil: 365d\n");
        assert_eq!(
            entry.persist_until.map(|p| p.at(100)),
            Some(100 + 365 * 86_400)
        );
    }

    #[test]
    fn mistakes_name_the_key_and_the_fix() {
        assert_eq!(
            problems_of("    - policy: wildcard\n"),
            [
                "challenges.dnsPersist[0].names: is required: list the names this record \
              validates, such as example.com or *.example.com (every name below it)"
            ]
        );
        let problems = problems_of(
            "    - names: [example.com]\n      policy: subdomains\n      persistUntil: soon\n",
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("challenges.dnsPersist[0].policy: \"subdomains\""));
        assert!(problems[1].starts_with("challenges.dnsPersist[0].persistUntil: \"soon\""));
        let problems =
            problems_of("    - names: [example.com]\n      issuerDomainNames: [\"*.ca\"]\n");
        assert!(
            problems[0].starts_with("challenges.dnsPersist[0].issuerDomainNames[0]:"),
            "{problems:?}"
        );
    }
}
