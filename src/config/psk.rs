//! `auth.psk`: pre-shared API keys, in both forms.
//!
//! `auth.psk.key` is le-cert-server's form (one key for every domain) and becomes a key named
//! `default`; `auth.psk.keys` names each key and the domains it may request. Names and keys must
//! be unique across both, so a log line's key name identifies exactly one client.

use serde::Serialize;

use super::{
    print::as_display_seq,
    raw::{RawPsk, RawPskEntry},
    report::{Report, Reported, SecretValue, non_empty},
    secret::Secret,
};
use crate::domain::{DomainPattern, Profile};

/// One pre-shared API key and the names it may request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PskKey {
    /// Who holds the key, for logs.
    pub name: String,
    /// The key clients send as `Authorization: APIKey <key>`.
    pub key: Secret,
    /// The patterns of names this key may request; `[DomainPattern::any()]` for every domain.
    #[serde(serialize_with = "as_display_seq")]
    pub domains: Vec<DomainPattern>,
    /// `admin`: the key may also administer certfleet (list every certificate, revoke,
    /// delete), whatever its `domains` (default `false`).
    pub admin: bool,
    /// `profiles`: the ACME profiles the key may ask for besides the default; absent: any.
    pub profiles: Option<Vec<Profile>>,
    /// `quota`: the most new certificates the key may obtain per window; absent: no quota.
    pub quota: Option<super::limits::Limit>,
}

/// The length below which `auth.psk.key` is refused (le-cert-server accepted it).
const MIN_SINGLE_KEY_CHARS: usize = 16;
/// The length below which `auth.psk.key` is warned about and `auth.psk.keys[].key` refused:
/// about 192 bits of base64, beyond any online guessing.
const MIN_KEY_CHARS: usize = 32;
/// How to make a good key, for messages.
const GENERATE: &str = "generate one with `openssl rand -base64 48`";
/// The name `auth.psk.key` gets.
const SINGLE_KEY_NAME: &str = "default";

/// A parsed key with where it came from, for messages about duplicates.
struct Entry {
    /// `auth.psk.key` or `auth.psk.keys[i]`.
    path: String,
    /// The key the secret came from (`...key` or `...keyFile`).
    secret_key: String,
    key: PskKey,
}

impl Entry {
    /// `auth.psk.keys[0] (fleet-a)`, naming the entry without its secret.
    fn label(&self) -> String {
        format!("{} ({})", self.path, self.key.name)
    }
}

/// Resolves `auth.psk` into its keys (empty when none is configured).
pub(super) fn keys(raw: RawPsk, report: &mut Report<'_>) -> Result<Vec<PskKey>, Reported> {
    let mut entries = Vec::new();
    let mut failure = None;
    match single_key(raw.key, raw.key_file, report) {
        Ok(entry) => entries.extend(entry),
        Err(reported) => failure = Some(reported),
    }
    for (i, raw_entry) in raw.keys.unwrap_or_default().into_iter().enumerate() {
        match entry(i, raw_entry, report) {
            Ok(entry) => entries.push(entry),
            Err(reported) => failure = Some(reported),
        }
    }
    check_unique(&entries, report)?;
    if let Some(reported) = failure {
        return Err(reported);
    }
    Ok(entries.into_iter().map(|entry| entry.key).collect())
}

/// `auth.psk.key`: 16 characters at least, 32 recommended; allowed every domain.
fn single_key(
    key: Option<String>,
    key_file: Option<String>,
    report: &mut Report<'_>,
) -> Result<Option<Entry>, Reported> {
    let Some(SecretValue { secret, key }) = report.secret("auth.psk.key", key, key_file)? else {
        return Ok(None);
    };
    let len = secret.expose().chars().count();
    if len < MIN_SINGLE_KEY_CHARS {
        return Err(report.error(
            &key,
            format!(
                "is {len} characters, but a PSK needs at least {MIN_SINGLE_KEY_CHARS} \
                 ({MIN_KEY_CHARS} or more recommended); {GENERATE}"
            ),
        ));
    }
    if len < MIN_KEY_CHARS {
        report.warn(format!(
            "{key} is only {len} characters; use {MIN_KEY_CHARS} or more ({GENERATE})"
        ));
    }
    Ok(Some(Entry {
        path: "auth.psk.key".to_owned(),
        secret_key: key,
        key: PskKey {
            name: SINGLE_KEY_NAME.to_owned(),
            key: secret,
            domains: vec![DomainPattern::any()],
            // The single key of le-cert-server's form fetches; administration needs a named key.
            admin: false,
            profiles: None,
            quota: None,
        },
    }))
}

/// One item of `auth.psk.keys`.
fn entry(i: usize, raw: RawPskEntry, report: &mut Report<'_>) -> Result<Entry, Reported> {
    let path = format!("auth.psk.keys[{i}]");
    let name = match non_empty(raw.name) {
        Some(name) if name.contains(char::is_control) => Err(report.error(
            &format!("{path}.name"),
            "contains a control character; use a plain name such as fleet-a",
        )),
        Some(name) => Ok(name),
        None => Err(report.error(
            &format!("{path}.name"),
            "is required: a unique name for logs, such as fleet-a",
        )),
    };
    let key_path = format!("{path}.key");
    let key = match report.secret(&key_path, raw.key, raw.key_file) {
        Ok(Some(value)) => match value.secret.expose().chars().count() {
            len if len < MIN_KEY_CHARS => Err(report.error(
                &value.key,
                format!("is {len} characters; use at least {MIN_KEY_CHARS}: {GENERATE}"),
            )),
            _ => Ok(value),
        },
        Ok(None) => Err(report.error(&key_path, format!("is required (or keyFile); {GENERATE}"))),
        Err(reported) => Err(reported),
    };
    let domains = domains(&path, raw.domains, report);
    let profiles = super::report::profiles(&format!("{path}.profiles"), raw.profiles, report);
    let quota = super::limits::quota(&format!("{path}.quota"), raw.quota, report);
    let (name, key, domains, profiles, quota) = (name?, key?, domains?, profiles?, quota?);
    if domains.iter().any(DomainPattern::is_any) {
        report.warn(format!(
            "{path} ({name}) may request certificates for every domain"
        ));
    }
    Ok(Entry {
        path,
        secret_key: key.key,
        key: PskKey {
            name,
            key: key.secret,
            domains,
            admin: raw.admin.unwrap_or(false),
            profiles,
            quota,
        },
    })
}

/// `domains`: absent or `["*"]` is every domain; otherwise each item is a pattern.
fn domains(
    path: &str,
    value: Option<Vec<String>>,
    report: &mut Report<'_>,
) -> Result<Vec<DomainPattern>, Reported> {
    let key = format!("{path}.domains");
    let Some(list) = value else {
        return Ok(vec![DomainPattern::any()]);
    };
    if list.is_empty() {
        return Err(report.error(
            &key,
            "is empty, which would allow no domain at all; list the patterns this key may \
             request, or remove domains to allow every domain",
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

/// Names and keys are unique. A duplicate key's message names both entries, never the key.
fn check_unique(entries: &[Entry], report: &mut Report<'_>) -> Result<(), Reported> {
    let mut failure = None;
    for (j, later) in entries.iter().enumerate() {
        let earlier = &entries[..j];
        if let Some(first) = earlier.iter().find(|e| e.key.name == later.key.name) {
            failure = Some(report.error(
                &format!("{}.name", later.path),
                format!(
                    "\"{}\" is already the name of {}; give every key its own name",
                    later.key.name, first.path
                ),
            ));
        }
        let same_key = |e: &&Entry| e.key.key.expose() == later.key.key.expose();
        if let Some(first) = earlier.iter().find(same_key) {
            failure = Some(report.error(
                &later.secret_key,
                format!(
                    "is the same key as {}, used by {}; give every entry its own key ({GENERATE})",
                    first.secret_key,
                    first.label()
                ),
            ));
        }
    }
    failure.map_or(Ok(()), Err)
}
