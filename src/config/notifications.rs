//! `notifications`: where certfleet's events go (webhooks, email), which events each receiver
//! wants, when a certificate counts as expiring, and how long an undelivered event is retried
//! and kept.
//!
//! Only the settings are here; the sending code reads them. A webhook's URL is a secret (a
//! Slack-style URL carries its token), so no message quotes one, and a webhook's default name
//! is a hash of it, which names the webhook in logs without giving the URL away.

use std::{collections::BTreeMap, fmt, net::IpAddr, path::PathBuf, time::Duration};

use aws_lc_rs::digest;
use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use serde::{Serialize, Serializer};

use super::{
    print::{as_display_seq, as_duration, as_optional_path},
    raw::{OneOrMany, RawEmail, RawNotifications, RawWebhook},
    report::{Report, Reported, non_empty, pem_certificates_file},
    secret::Secret,
};
use crate::domain::EventType;
use crate::util::duration::{format_duration, parse_duration};

/// `notifications.expiringAt` default: soon after a renewal was due (with a third of the
/// lifetime left, `schedule.rs`) and had not happened, and again late.
const DEFAULT_EXPIRING_AT: [ExpiryThreshold; 2] =
    [ExpiryThreshold::Share(0.3), ExpiryThreshold::Share(0.1)];
const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(24 * 3600);
/// `notifications.staleAfter` minimum: whole seconds, so tests can use a short one.
const MIN_STALE_AFTER: Duration = Duration::from_secs(1);
const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(60);
const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3 * 86_400);
const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 86_400);
const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_EMAIL_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_EMAIL_TIMEOUT: Duration = Duration::from_secs(300);
/// A timeout shorter than this fails on any real network.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest webhook name: it appears in logs and metric labels.
const MAX_NAME_CHARS: usize = 64;
/// The prefix of a Standard Webhooks signing secret.
const SECRET_PREFIX: &str = "whsec_";
/// The decoded sizes of a signing secret that the Standard Webhooks libraries accept.
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;
/// How to make a signing secret, for messages.
const MAKE_SECRET: &str = "make one with: echo \"whsec_$(openssl rand -base64 32)\"";

/// `notifications`. The default configures no receiver: nothing is sent.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationsConfig {
    /// `notifications.webhooks`: the HTTP receivers, names unique.
    pub webhooks: Vec<WebhookConfig>,
    /// `notifications.email`: the SMTP server and the recipients; `None` sends no email.
    pub email: Option<EmailConfig>,
    /// `notifications.expiringAt`: each threshold sends one `certificate.expiring` event for a
    /// certificate not renewed by then (default 30% and 10% of the lifetime left); empty sends
    /// none.
    #[serde(serialize_with = "as_display_seq")]
    pub expiring_at: Vec<ExpiryThreshold>,
    /// `notifications.staleAfter`: how long after a renewal a client that fetched the previous
    /// certificate may go without fetching the new one before `delivery.stale` (default 24h, at
    /// least 1s).
    #[serde(serialize_with = "as_duration")]
    pub stale_after: Duration,
    /// `notifications.retryInitial`: the wait before the first retry of a failed delivery,
    /// doubled after each failure (default 1m).
    #[serde(serialize_with = "as_duration")]
    pub retry_initial: Duration,
    /// `notifications.retryMax`: the longest wait between retries (default 24h, at least
    /// `retry_initial`).
    #[serde(serialize_with = "as_duration")]
    pub retry_max: Duration,
    /// `notifications.maxAge`: an event not delivered this long after it happened is given up
    /// (default 3d, longer than `retry_initial`).
    #[serde(serialize_with = "as_duration")]
    pub max_age: Duration,
    /// `notifications.retention`: delivered and given-up events older than this are pruned
    /// (default 30d, at least `max_age`).
    #[serde(serialize_with = "as_duration")]
    pub retention: Duration,
}

/// One item of `notifications.expiringAt`: when a certificate counts as expiring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExpiryThreshold {
    /// `"30%"`: this share of the certificate's lifetime is left (0.3), in (0, 1).
    Share(f64),
    /// `"7d"`: this much time is left.
    Left(Duration),
}

/// One item of `notifications.webhooks`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfig {
    /// `name`: for logs and metrics; default `webhook-` and the first 8 hex digits of the URL's
    /// SHA-256. At most 64 characters, no control character.
    pub name: String,
    /// `url` (or `urlFile`): an absolute `https://` URL (`http://` only for a loopback host),
    /// without user info.
    pub url: Secret,
    /// `secret` (or `secretFile`): the Standard Webhooks signing secret, `whsec_` and the base64
    /// of 24 to 64 bytes; always set with [`WebhookFormat::Standard`].
    pub secret: Option<Secret>,
    /// `events`: the event types sent; `None` for every type.
    pub events: Option<Vec<EventType>>,
    /// `format`: what a request's body is (default `standard`).
    pub format: WebhookFormat,
    /// `timeout`: bound on each request (default 10s, 1s to 60s).
    #[serde(serialize_with = "as_duration")]
    pub timeout: Duration,
}

/// `notifications.webhooks[].format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The event as JSON, signed as Standard Webhooks specifies (`webhook-id`,
    /// `webhook-timestamp`, `webhook-signature`).
    Standard,
    /// A Slack incoming webhook's message (`{"text": ...}`), which Slack-compatible chat servers
    /// (Mattermost, Rocket.Chat) take too.
    Slack,
}

/// `notifications.email`: one SMTP server and who gets which events.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailConfig {
    /// `host`: the SMTP server, a DNS name or an IP address (IPv6 without brackets).
    pub host: String,
    /// `port`: default 587 with `starttls`, 465 with `implicit`, 25 with `none`.
    pub port: u16,
    /// `tls`: how the connection is protected (default `starttls`); `none` only for a loopback
    /// host.
    pub tls: SmtpTls,
    /// `username`: set exactly when `password` is.
    pub username: Option<String>,
    /// `password` (or `passwordFile`): set exactly when `username` is.
    pub password: Option<Secret>,
    /// `from`: the sender, one address, optionally with a display name
    /// (`certfleet <certfleet@example.com>`).
    pub from: String,
    /// `to`: the recipients of every event type that `to_by_event` does not name.
    pub to: Vec<String>,
    /// `toByEvent`: recipients per event type, instead of `to` for that type; each list has at
    /// least one address.
    #[serde(serialize_with = "as_event_map")]
    pub to_by_event: Vec<(EventType, Vec<String>)>,
    /// `events`: the event types sent; `None` for every type.
    pub events: Option<Vec<EventType>>,
    /// `timeout`: bound on each conversation with the server (default 30s, 1s to 5m).
    #[serde(serialize_with = "as_duration")]
    pub timeout: Duration,
    /// `caCertificates`: a PEM file of roots added to the system's for the server's certificate
    /// (a private CA); checked to exist and to hold at least one certificate.
    #[serde(serialize_with = "as_optional_path")]
    pub ca_certificates: Option<PathBuf>,
}

/// `notifications.email.tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP upgraded with STARTTLS, which must succeed (RFC 3207; submission on 587).
    StartTls,
    /// TLS from the first byte (RFC 8314 section 3.3; submission on 465).
    Implicit,
    /// No TLS: for a relay on the same host only.
    None,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            email: None,
            expiring_at: DEFAULT_EXPIRING_AT.to_vec(),
            stale_after: DEFAULT_STALE_AFTER,
            retry_initial: DEFAULT_RETRY_INITIAL,
            retry_max: DEFAULT_RETRY_MAX,
            max_age: DEFAULT_MAX_AGE,
            retention: DEFAULT_RETENTION,
        }
    }
}

impl NotificationsConfig {
    /// Whether no receiver is configured (no webhook, no email), so nothing is ever sent.
    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty() && self.email.is_none()
    }
}

impl ExpiryThreshold {
    /// The remaining lifetime, in seconds (`not_after - now`), at which this threshold fires for
    /// a certificate valid from `not_before` to `not_after` (Unix seconds).
    pub fn left_at(&self, not_before: i64, not_after: i64) -> i64 {
        match *self {
            Self::Share(share) => share_of(not_after.saturating_sub(not_before).max(0), share),
            Self::Left(left) => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// Reads `30%` (a share of the lifetime, above 0 and below 100) or a duration (`7d`).
    fn parse(text: &str) -> Result<Self, String> {
        if let Some(number) = text.strip_suffix('%') {
            // Digits with at most one point: no sign, exponent, `inf` or `NaN`, which
            // `f64::from_str` would take.
            let plain = number.chars().any(|c| c.is_ascii_digit())
                && number.chars().all(|c| c.is_ascii_digit() || c == '.')
                && number.matches('.').count() <= 1;
            return number
                .parse::<f64>()
                .ok()
                .filter(|percent| plain && *percent > 0.0 && *percent < 100.0)
                .map(|percent| Self::Share(percent / 100.0))
                .ok_or_else(|| {
                    format!(
                        "\"{text}\" is not a share of the lifetime; write a percentage above 0% \
                         and below 100%, such as 30% or 12.5%"
                    )
                });
        }
        match parse_duration(text) {
            Ok(left) if left.is_zero() => Err(
                "is 0, which fires only once the certificate has expired; write the time left at \
                 which to warn, such as 7d, or a share of the lifetime such as 10%"
                    .to_owned(),
            ),
            Ok(left) => Ok(Self::Left(left)),
            Err(e) => Err(format!(
                "is neither a share of the lifetime (30%) nor a time left (7d, 12h): {e}"
            )),
        }
    }
}

/// `share` of `lifetime` seconds, to the nearest second.
// `share` is in (0, 1) and `lifetime` at least 0, so the product is within [0, lifetime]: the
// cast cannot overflow or lose a sign, and no lifetime is near 2^53 seconds.
#[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
fn share_of(lifetime: i64, share: f64) -> i64 {
    (lifetime as f64 * share.clamp(0.0, 1.0)).round() as i64
}

impl fmt::Display for ExpiryThreshold {
    /// As the file writes it: `30%`, `12.5%`, `7d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Share(share) => {
                // Six decimals drop the binary rounding of `share * 100` (0.3 * 100 is not
                // exactly 30), then the zeros and point a whole percentage does not need.
                let percent = format!("{:.6}", share * 100.0);
                let percent = percent.trim_end_matches('0').trim_end_matches('.');
                write!(f, "{percent}%")
            }
            Self::Left(left) => f.write_str(&format_duration(*left)),
        }
    }
}

impl WebhookConfig {
    /// Whether this webhook is sent `event`: its `events` filter, and always the test event.
    pub fn wants(&self, event: EventType) -> bool {
        wants(self.events.as_deref(), event)
    }
}

impl EmailConfig {
    /// Whether an email is sent for `event`: the `events` filter, and always the test event.
    pub fn wants(&self, event: EventType) -> bool {
        wants(self.events.as_deref(), event)
    }

    /// Who receives `event`: its `toByEvent` list, else `to` (which may be empty when
    /// `toByEvent` names every type that matters).
    pub fn recipients(&self, event: EventType) -> &[String] {
        self.to_by_event
            .iter()
            .find(|(named, _)| *named == event)
            .map_or(self.to.as_slice(), |(_, list)| list.as_slice())
    }
}

fn wants(events: Option<&[EventType]>, event: EventType) -> bool {
    event == EventType::Test || events.is_none_or(|list| list.contains(&event))
}

/// Resolves `notifications`, reporting every problem in it.
pub(super) fn notifications(
    raw: RawNotifications,
    report: &mut Report<'_>,
) -> Result<NotificationsConfig, Reported> {
    let webhooks = webhooks(raw.webhooks.unwrap_or_default(), report);
    let email = raw.email.map(|raw| email(raw, report)).transpose();
    let expiring_at = expiring_at(raw.expiring_at, report);
    let stale_after = duration(
        "notifications.staleAfter",
        raw.stale_after,
        DEFAULT_STALE_AFTER,
        MIN_STALE_AFTER,
        None,
        report,
    );
    let retry_initial = duration(
        "notifications.retryInitial",
        raw.retry_initial,
        DEFAULT_RETRY_INITIAL,
        Duration::ZERO,
        None,
        report,
    );
    let retry_max = duration(
        "notifications.retryMax",
        raw.retry_max,
        DEFAULT_RETRY_MAX,
        Duration::ZERO,
        None,
        report,
    );
    let max_age = duration(
        "notifications.maxAge",
        raw.max_age,
        DEFAULT_MAX_AGE,
        Duration::ZERO,
        None,
        report,
    );
    let retention = duration(
        "notifications.retention",
        raw.retention,
        DEFAULT_RETENTION,
        Duration::ZERO,
        None,
        report,
    );
    let retries = retry_bounds(retry_initial, retry_max, max_age, retention, report);
    let (retry_initial, retry_max, max_age, retention) = retries?;
    Ok(NotificationsConfig {
        webhooks: webhooks?,
        email: email?,
        expiring_at: expiring_at?,
        stale_after: stale_after?,
        retry_initial,
        retry_max,
        max_age,
        retention,
    })
}

/// The retry durations agree: `retryInitial <= retryMax`, `retryInitial < maxAge`,
/// `maxAge <= retention`. Checked only between the values that parsed.
fn retry_bounds(
    retry_initial: Result<Duration, Reported>,
    retry_max: Result<Duration, Reported>,
    max_age: Result<Duration, Reported>,
    retention: Result<Duration, Reported>,
    report: &mut Report<'_>,
) -> Result<(Duration, Duration, Duration, Duration), Reported> {
    let mut failure = None;
    if let (Ok(initial), Ok(max)) = (&retry_initial, &retry_max)
        && max < initial
    {
        let (max, initial) = (format_duration(*max), format_duration(*initial));
        failure = Some(report.error(
            "notifications.retryMax",
            format!(
                "is {max}, shorter than notifications.retryInitial ({initial}): the wait between \
                 retries grows from retryInitial up to retryMax; make it at least {initial} \
                 (default {})",
                format_duration(DEFAULT_RETRY_MAX)
            ),
        ));
    }
    if let (Ok(initial), Ok(age)) = (&retry_initial, &max_age)
        && age <= initial
    {
        let (age, initial) = (format_duration(*age), format_duration(*initial));
        failure = Some(report.error(
            "notifications.maxAge",
            format!(
                "is {age}, not longer than notifications.retryInitial ({initial}): a failed event \
                 would be given up before its first retry; make it longer (default {})",
                format_duration(DEFAULT_MAX_AGE)
            ),
        ));
    }
    if let (Ok(age), Ok(kept)) = (&max_age, &retention)
        && kept < age
    {
        let (kept, age) = (format_duration(*kept), format_duration(*age));
        failure = Some(report.error(
            "notifications.retention",
            format!(
                "is {kept}, shorter than notifications.maxAge ({age}): events still being retried \
                 would be pruned; make it at least {age} (default {})",
                format_duration(DEFAULT_RETENTION)
            ),
        ));
    }
    let values = (retry_initial?, retry_max?, max_age?, retention?);
    failure.map_or(Ok(values), Err)
}

/// A duration at `key`: `default` when unset; more than 0, at least `min`, and at most `max`
/// when there is one. The message gives the bounds and the default.
fn duration(
    key: &str,
    value: Option<String>,
    default: Duration,
    min: Duration,
    max: Option<Duration>,
    report: &mut Report<'_>,
) -> Result<Duration, Reported> {
    let Some(text) = value else {
        return Ok(default);
    };
    let default = format_duration(default);
    match parse_duration(&text) {
        Err(message) => Err(report.error(key, message)),
        Ok(value) if value.is_zero() => {
            Err(report.error(key, format!("must be more than 0 (default {default})")))
        }
        Ok(value) if value < min => Err(report.error(
            key,
            format!(
                "\"{text}\" is shorter than the {} minimum (default {default})",
                format_duration(min)
            ),
        )),
        Ok(value) => match max {
            Some(max) if value > max => Err(report.error(
                key,
                format!(
                    "\"{text}\" is longer than the {} maximum (default {default})",
                    format_duration(max)
                ),
            )),
            _ => Ok(value),
        },
    }
}

fn expiring_at(
    value: Option<Vec<String>>,
    report: &mut Report<'_>,
) -> Result<Vec<ExpiryThreshold>, Reported> {
    let Some(list) = value else {
        return Ok(DEFAULT_EXPIRING_AT.to_vec());
    };
    let mut thresholds = Vec::with_capacity(list.len());
    let mut failure = None;
    for (j, text) in list.iter().enumerate() {
        let key = format!("notifications.expiringAt[{j}]");
        match ExpiryThreshold::parse(text) {
            Ok(threshold) if thresholds.contains(&threshold) => {
                failure = Some(report.error(
                    &key,
                    format!("\"{text}\" is listed twice; list each threshold once"),
                ));
            }
            Ok(threshold) => thresholds.push(threshold),
            Err(message) => failure = Some(report.error(&key, message)),
        }
    }
    failure.map_or(Ok(thresholds), Err)
}

/// An event type filter (`events`): `None` when absent; each item a wire name, the test event
/// excluded (it is always sent), duplicates dropped.
fn events(
    key: &str,
    value: Option<Vec<String>>,
    report: &mut Report<'_>,
) -> Result<Option<Vec<EventType>>, Reported> {
    let Some(list) = value else {
        return Ok(None);
    };
    let names = EventType::names();
    if list.is_empty() {
        return Err(report.error(
            key,
            format!(
                "is empty, which would send nothing; list some of {names}, or remove {key} to \
                 send every event type"
            ),
        ));
    }
    let mut events = Vec::with_capacity(list.len());
    let mut failure = None;
    for (j, text) in list.iter().enumerate() {
        match EventType::parse(text) {
            Some(EventType::Test) => {
                failure = Some(report.error(
                    &format!("{key}[{j}]"),
                    format!(
                        "\"{text}\" is the test event, which `certfleet notify test` always \
                         sends; list only the event types to subscribe to: {names}"
                    ),
                ));
            }
            Some(event) if events.contains(&event) => {}
            Some(event) => events.push(event),
            None => {
                failure = Some(report.error(
                    &format!("{key}[{j}]"),
                    format!("\"{text}\" is not an event type; use one of {names}"),
                ));
            }
        }
    }
    failure.map_or(Ok(Some(events)), Err)
}

/// A resolved webhook and where it came from, for messages about duplicate names.
struct Entry {
    /// `notifications.webhooks[i]`.
    path: String,
    /// Whether the name is the default one, made from the URL.
    named_by_url: bool,
    webhook: WebhookConfig,
}

fn webhooks(
    list: Vec<RawWebhook>,
    report: &mut Report<'_>,
) -> Result<Vec<WebhookConfig>, Reported> {
    let mut entries: Vec<Entry> = Vec::with_capacity(list.len());
    let mut failure = None;
    for (i, raw) in list.into_iter().enumerate() {
        match webhook(format!("notifications.webhooks[{i}]"), raw, report) {
            Ok(entry) => entries.push(entry),
            Err(reported) => failure = Some(reported),
        }
    }
    for (j, later) in entries.iter().enumerate() {
        let name = &later.webhook.name;
        let Some(first) = entries[..j].iter().find(|e| e.webhook.name == *name) else {
            continue;
        };
        let fix = match (later.named_by_url, first.named_by_url) {
            (true, true) => "the two have the same URL; give each its own name",
            _ => "give every webhook its own name",
        };
        failure = Some(report.error(
            &format!("{}.name", later.path),
            format!("\"{name}\" is already the name of {}; {fix}", first.path),
        ));
    }
    match failure {
        Some(reported) => Err(reported),
        None => Ok(entries.into_iter().map(|entry| entry.webhook).collect()),
    }
}

fn webhook(path: String, raw: RawWebhook, report: &mut Report<'_>) -> Result<Entry, Reported> {
    let name = non_empty(raw.name)
        .map(|name| check_name(&name).map(|()| name))
        .transpose()
        .map_err(|message| report.error(&format!("{path}.name"), message));
    let url_key = format!("{path}.url");
    let url = match report.secret(&url_key, raw.url, raw.url_file) {
        Ok(Some(value)) => match check_url(value.secret.expose()) {
            Ok(()) => Ok(value.secret),
            Err(message) => Err(report.error(&value.key, message)),
        },
        Ok(None) => Err(report.error(
            &url_key,
            "is required (or urlFile): the receiver's URL, such as \
             https://hooks.example.com/certfleet",
        )),
        Err(reported) => Err(reported),
    };
    let secret_key = format!("{path}.secret");
    let secret = match report.secret(&secret_key, raw.secret, raw.secret_file) {
        Ok(Some(value)) => match check_signing_secret(value.secret.expose()) {
            Ok(()) => Ok(Some(value.secret)),
            Err(message) => Err(report.error(&value.key, message)),
        },
        Ok(None) => Ok(None),
        Err(reported) => Err(reported),
    };
    let events = events(&format!("{path}.events"), raw.events, report);
    let format = match non_empty(raw.format).as_deref() {
        None | Some("standard") => Ok(WebhookFormat::Standard),
        Some("slack") => Ok(WebhookFormat::Slack),
        Some(other) => Err(report.error(
            &format!("{path}.format"),
            format!(
                "\"{other}\" is not a webhook format; use standard (default: the event as JSON, \
                 signed as Standard Webhooks specifies) or slack (a Slack incoming webhook's \
                 message)"
            ),
        )),
    };
    let timeout = duration(
        &format!("{path}.timeout"),
        raw.timeout,
        DEFAULT_WEBHOOK_TIMEOUT,
        MIN_TIMEOUT,
        Some(MAX_WEBHOOK_TIMEOUT),
        report,
    );
    let (format, secret) = (format?, secret?);
    if format == WebhookFormat::Standard && secret.is_none() {
        return Err(report.error(
            &secret_key,
            format!(
                "is required with format standard (or secretFile): the receiver checks each \
                 request's signature with it; {MAKE_SECRET}, and give the receiver the same value"
            ),
        ));
    }
    let (name, url) = (name?, url?);
    let named_by_url = name.is_none();
    let name = name.unwrap_or_else(|| default_name(url.expose()));
    Ok(Entry {
        path,
        named_by_url,
        webhook: WebhookConfig {
            name,
            url,
            secret,
            events: events?,
            format,
            timeout: timeout?,
        },
    })
}

/// `webhook-` and the first 8 hex digits of the URL's SHA-256: the same at every start and for
/// every replica, and no help in guessing the URL.
fn default_name(url: &str) -> String {
    let hash = digest::digest(&digest::SHA256, url.as_bytes());
    let hex: String = hash.as_ref()[..4]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("webhook-{hex}")
}

fn check_name(name: &str) -> Result<(), String> {
    if name.contains(char::is_control) {
        return Err("contains a control character; use a plain name such as ops-alerts".to_owned());
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(format!(
            "is {chars} characters; use at most {MAX_NAME_CHARS}, such as ops-alerts"
        ));
    }
    Ok(())
}

/// An absolute `https://` URL, or `http://` for a loopback host (a receiver on the same
/// machine), without user info. The messages never quote the URL: it may carry a token.
fn check_url(text: &str) -> Result<(), String> {
    const EXAMPLE: &str = "write it like https://hooks.example.com/certfleet";
    let url = reqwest::Url::parse(text)
        .map_err(|e| format!("is not an absolute URL ({e}); {EXAMPLE}"))?;
    let host = url.host_str().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("has no host; {EXAMPLE}"));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => {
            return Err(
                "uses http:// for a host that is not loopback: the events and their signatures \
                 would cross the network in clear; use https:// (http:// is allowed only for \
                 127.0.0.0/8, ::1 and localhost)"
                    .to_owned(),
            );
        }
        _ => return Err(format!("is not an https:// URL; {EXAMPLE}")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "holds user info (user:password@ before the host), which certfleet does not send; \
             remove it (a receiver that needs a token takes it in the path or the query, which \
             stay as secret as the rest of the URL)"
                .to_owned(),
        );
    }
    if url.fragment().is_some() {
        return Err("has a #fragment, which is never sent to the receiver; remove it".to_owned());
    }
    Ok(())
}

/// A Standard Webhooks secret: `whsec_` and the standard base64 (padded or not) of 24 to 64
/// bytes. The messages never quote it, nor the decoder's error, which quotes a byte.
fn check_signing_secret(text: &str) -> Result<(), String> {
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
    let Some(encoded) = text.strip_prefix(SECRET_PREFIX) else {
        return Err(format!(
            "does not start with whsec_: a signing secret is \"whsec_\" and the base64 of 24 to \
             64 random bytes; {MAKE_SECRET}"
        ));
    };
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|_| format!("is not standard base64 after \"whsec_\"; {MAKE_SECRET}"))?;
    if !SECRET_BYTES.contains(&bytes.len()) {
        return Err(format!(
            "decodes to {} bytes, but a signing secret has 24 to 64; {MAKE_SECRET}",
            bytes.len()
        ));
    }
    Ok(())
}

/// `localhost`, `127.0.0.0/8` or `::1` (brackets allowed): where plain text stays on the machine.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.trim_end_matches('.').eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn email(raw: RawEmail, report: &mut Report<'_>) -> Result<EmailConfig, Reported> {
    let host = smtp_host(non_empty(raw.host), report);
    let tls = match non_empty(raw.tls).as_deref() {
        None | Some("starttls") => Ok(SmtpTls::StartTls),
        Some("implicit") => Ok(SmtpTls::Implicit),
        Some("none") => Ok(SmtpTls::None),
        Some(other) => Err(report.error(
            "notifications.email.tls",
            format!(
                "\"{other}\" is not a choice; use starttls (default, port 587), implicit (TLS \
                 from the start, port 465) or none (a relay on this host only)"
            ),
        )),
    };
    let port = smtp_port(non_empty(raw.port), report);
    let username = match non_empty(raw.username) {
        Some(name) if name.contains(char::is_control) => Err(report.error(
            "notifications.email.username",
            "contains a control character; write the user name the SMTP server expects",
        )),
        other => Ok(other),
    };
    let password = report.secret(
        "notifications.email.password",
        raw.password,
        raw.password_file,
    );
    let from = match non_empty(raw.from) {
        Some(from) => check_address(&from)
            .map(|()| from.trim().to_owned())
            .map_err(|message| report.error("notifications.email.from", message)),
        None => Err(report.error(
            "notifications.email.from",
            "is required with notifications.email: the sender, such as \
             certfleet <certfleet@example.com>",
        )),
    };
    let to = addresses(
        "notifications.email.to",
        &raw.to.map(|to| to.0).unwrap_or_default(),
        report,
    );
    let to_by_event = to_by_event(raw.to_by_event.unwrap_or_default(), report);
    let events = events("notifications.email.events", raw.events, report);
    let timeout = duration(
        "notifications.email.timeout",
        raw.timeout,
        DEFAULT_EMAIL_TIMEOUT,
        MIN_TIMEOUT,
        Some(MAX_EMAIL_TIMEOUT),
        report,
    );
    let ca_certificates = non_empty(raw.ca_certificates)
        .map(|path| {
            pem_certificates_file(
                path,
                "notifications.email.caCertificates",
                "point it at a PEM file of the CA certificates that sign your SMTP server's \
                 certificate",
                report,
            )
        })
        .transpose();
    // The rules between keys, each checked when the keys it reads are valid.
    let mut failure = None;
    if let (Ok(host), Ok(SmtpTls::None)) = (&host, &tls)
        && !is_loopback(host)
    {
        failure = Some(report.error(
            "notifications.email.tls",
            format!(
                "is none, but {host} is not loopback: the SMTP credentials and the certificate \
                 details in every email would cross the network in clear; use starttls \
                 (default) or implicit (none is allowed only for localhost, 127.0.0.0/8 and ::1: \
                 a relay on this host)"
            ),
        ));
    }
    if let (Ok(SmtpTls::None), Ok(Some(_))) = (&tls, &ca_certificates) {
        failure = Some(report.error(
            "notifications.email.caCertificates",
            "is used only to verify the server with tls starttls or implicit; remove it, or \
             choose one of those",
        ));
    }
    match (&username, &password) {
        (Ok(Some(_)), Ok(None)) => {
            failure = Some(report.error(
                "notifications.email.password",
                "is required with username (or passwordFile): the SMTP server's password for \
                 that user; or remove username to send without logging in",
            ));
        }
        (Ok(None), Ok(Some(value))) => {
            failure = Some(report.error(
                &value.key,
                "is set without notifications.email.username; add the user name the SMTP \
                 server expects, or remove the password to send without logging in",
            ));
        }
        _ => {}
    }
    if let (Ok(to), Ok(to_by_event)) = (&to, &to_by_event)
        && to.is_empty()
        && to_by_event.is_empty()
    {
        failure = Some(report.error(
            "notifications.email.to",
            "is required unless toByEvent names recipients: the addresses that receive every \
             event, such as ops@example.com",
        ));
    }
    let tls = tls?;
    let config = EmailConfig {
        host: host?,
        port: port?.unwrap_or(match tls {
            SmtpTls::StartTls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        }),
        tls,
        username: username?,
        password: password?.map(|value| value.secret),
        from: from?,
        to: to?,
        to_by_event: to_by_event?,
        events: events?,
        timeout: timeout?,
        ca_certificates: ca_certificates?,
    };
    failure.map_or(Ok(config), Err)
}

/// A DNS name or an IP address (an IPv6 one with or without brackets, kept without).
fn smtp_host(value: Option<String>, report: &mut Report<'_>) -> Result<String, Reported> {
    const KEY: &str = "notifications.email.host";
    let Some(text) = value else {
        return Err(report.error(
            KEY,
            "is required with notifications.email: your SMTP server, such as smtp.example.com",
        ));
    };
    let bare = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(&text);
    if bare.parse::<IpAddr>().is_ok() {
        return Ok(bare.to_owned());
    }
    let name = text.strip_suffix('.').unwrap_or(&text);
    let is_label = |label: &str| {
        (1..=63).contains(&label.len())
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.len() <= 253 && name.split('.').all(is_label) {
        return Ok(text);
    }
    Err(report.error(
        KEY,
        format!(
            "\"{text}\" is not a host name or IP address; write the SMTP server's name alone, \
             such as smtp.example.com (the port is notifications.email.port)"
        ),
    ))
}

fn smtp_port(value: Option<String>, report: &mut Report<'_>) -> Result<Option<u16>, Reported> {
    let Some(text) = value else {
        return Ok(None);
    };
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(Some(port)),
        _ => Err(report.error(
            "notifications.email.port",
            format!(
                "\"{text}\" is not a port; write a number from 1 to 65535, or leave it out for \
                 the port of notifications.email.tls (587 for starttls, 465 for implicit, 25 for \
                 none)"
            ),
        )),
    }
}

/// One mailbox: `ops@example.com`, or `certfleet <certfleet@example.com>` with a display name.
/// A light check (exactly one `@`, no control character, something on both sides of the `@`)
/// that catches two addresses in one item and header injection; the server judges the rest.
fn check_address(text: &str) -> Result<(), String> {
    const FORM: &str = "write one address such as ops@example.com or certfleet <ops@example.com>";
    if text.contains(char::is_control) {
        return Err(format!(
            "contains a control character (a line break?), which could add mail headers; {FORM}"
        ));
    }
    if text.matches('@').count() != 1 {
        return Err(format!(
            "\"{text}\" is not one address (it must hold exactly one @); {FORM}, and list several \
             addresses as a list"
        ));
    }
    let text = text.trim();
    let address = match text.rfind('<') {
        Some(open) => text[open + 1..].strip_suffix('>').unwrap_or_default(),
        None => text,
    };
    let well_formed = address
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !address.contains(char::is_whitespace);
    match well_formed {
        true => Ok(()),
        false => Err(format!("\"{text}\" is not an email address; {FORM}")),
    }
}

/// A list of addresses at `key`: the key itself names a single one, `key[j]` an item of several.
fn addresses(key: &str, list: &[String], report: &mut Report<'_>) -> Result<Vec<String>, Reported> {
    let single = list.len() == 1;
    let mut failure = None;
    let mut out = Vec::with_capacity(list.len());
    for (j, text) in list.iter().enumerate() {
        match check_address(text) {
            Ok(()) => out.push(text.trim().to_owned()),
            Err(message) => {
                let item = match single {
                    true => key.to_owned(),
                    false => format!("{key}[{j}]"),
                };
                failure = Some(report.error(&item, message));
            }
        }
    }
    failure.map_or(Ok(out), Err)
}

/// `toByEvent`: each key an event type (the test event's too), each value its recipients.
fn to_by_event(
    map: BTreeMap<String, OneOrMany>,
    report: &mut Report<'_>,
) -> Result<Vec<(EventType, Vec<String>)>, Reported> {
    let mut out = Vec::with_capacity(map.len());
    let mut failure = None;
    for (name, list) in map {
        let key = format!("notifications.email.toByEvent.{name}");
        let Some(event) = EventType::parse(&name) else {
            failure = Some(report.error(
                &key,
                format!(
                    "\"{name}\" is not an event type; use one of {} (or certfleet.test, the \
                     test of `certfleet notify test`)",
                    EventType::names()
                ),
            ));
            continue;
        };
        if list.0.is_empty() {
            failure = Some(report.error(
                &key,
                format!(
                    "is empty; list the addresses that receive {name}, or remove it so that \
                     notifications.email.to does"
                ),
            ));
            continue;
        }
        match addresses(&key, &list.0, report) {
            Ok(addresses) => out.push((event, addresses)),
            Err(reported) => failure = Some(reported),
        }
    }
    failure.map_or(Ok(out), Err)
}

/// `toByEvent` as the file writes it: a mapping from event type to addresses.
fn as_event_map<S: Serializer>(
    value: &[(EventType, Vec<String>)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(value.iter().map(|(event, list)| (event.as_str(), list)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_ZG9jcy10ZXN0LXdlYmhvb2stc2lnbmluZy1zZWNyZXQ=";

    fn load(yaml: &str) -> Result<super::super::Config, String> {
        super::super::Config::from_yaml(yaml, std::iter::empty())
            .map(|loaded| loaded.config)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn thresholds_are_shares_or_times_left() {
        let cases = [
            ("30%", ExpiryThreshold::Share(0.3)),
            ("12.5%", ExpiryThreshold::Share(0.125)),
            ("0.5%", ExpiryThreshold::Share(0.005)),
            ("7d", ExpiryThreshold::Left(Duration::from_secs(7 * 86_400))),
            ("12h", ExpiryThreshold::Left(Duration::from_secs(12 * 3600))),
            ("90s", ExpiryThreshold::Left(Duration::from_secs(90))),
        ];
        for (text, want) in cases {
            let got = ExpiryThreshold::parse(text).expect(text);
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string(), text, "printed as written");
        }
        for bad in [
            "0%", "100%", "150%", "-5%", "%", "1e1%", "inf%", "NaN%", "30 %", "1.2.3%", "30", "0",
            "7days", "",
        ] {
            assert!(ExpiryThreshold::parse(bad).is_err(), "{bad}");
        }
        let day = 86_400;
        let share = ExpiryThreshold::Share(0.3);
        assert_eq!(share.left_at(1_000, 1_000 + 90 * day), 27 * day);
        assert_eq!(
            ExpiryThreshold::Share(0.1).left_at(0, 6 * day),
            6 * day / 10
        );
        assert_eq!(
            share.left_at(500, 100),
            0,
            "a nonsensical lifetime fires at expiry"
        );
        let left = ExpiryThreshold::Left(Duration::from_secs(7 * 86_400));
        assert_eq!(left.left_at(0, 90 * day), 7 * day);
        assert_eq!(left.left_at(0, day), 7 * day, "whatever the lifetime");
    }

    #[test]
    fn expiring_at_defaults_and_turns_off() {
        let config = load("").expect("defaults");
        assert_eq!(config.notifications.expiring_at, DEFAULT_EXPIRING_AT);
        assert!(config.notifications.is_empty());
        let yaml = config.to_redacted_yaml();
        assert!(yaml.contains("30%") && yaml.contains("10%"), "{yaml}");
        let off = load("notifications:\n  expiringAt: []\n").expect("off");
        assert!(off.notifications.expiring_at.is_empty());
        let mixed = load("notifications:\n  expiringAt: [\"20%\", 3d]\n").expect("mixed");
        assert_eq!(
            mixed.notifications.expiring_at,
            [
                ExpiryThreshold::Share(0.2),
                ExpiryThreshold::Left(Duration::from_secs(3 * 86_400))
            ]
        );
        let err = load("notifications:\n  expiringAt: [\"30%\", 120%, \"30%\", soon]\n")
            .expect_err("invalid");
        for expected in [
            "notifications.expiringAt[1]: \"120%\" is not a share of the lifetime",
            "notifications.expiringAt[2]: \"30%\" is listed twice",
            "notifications.expiringAt[3]: is neither a share of the lifetime",
        ] {
            assert!(err.contains(expected), "{expected} in {err}");
        }
    }

    #[test]
    fn the_default_name_is_a_stable_hash_of_the_url() {
        // `printf %s https://hooks.example.com/certfleet | sha256sum` starts with b87fc85c.
        assert_eq!(
            default_name("https://hooks.example.com/certfleet"),
            "webhook-b87fc85c"
        );
        assert_eq!(
            default_name("https://hooks.slack.com/services/T000/B000/XXXX"),
            "webhook-9fbe5ae8"
        );
        let config = load(&format!(
            "notifications:\n  webhooks:\n    - url: https://hooks.example.com/certfleet\n      secret: {SECRET}\n"
        ))
        .expect("valid");
        let hook = &config.notifications.webhooks[0];
        assert_eq!(hook.name, "webhook-b87fc85c");
        assert_eq!(hook.format, WebhookFormat::Standard);
        assert_eq!(hook.timeout, DEFAULT_WEBHOOK_TIMEOUT);
        assert!(hook.events.is_none() && EventType::ALL.into_iter().all(|e| hook.wants(e)));
    }

    #[test]
    fn webhook_urls() {
        for ok in [
            "https://hooks.example.com/certfleet",
            "https://hooks.slack.com/services/T000/B000/XXXX",
            "https://example.com:8443/hook?token=abc",
            "http://127.0.0.1:8080/hook",
            "http://127.5.6.7/hook",
            "http://localhost:9000/hook",
            "http://[::1]:9000/hook",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://hooks.example.com/certfleet",
            "http://10.0.0.1/hook",
            "http://127.0.0.1@evil.example.com/hook",
            "https://user:token@hooks.example.com/x",
            "https://user@hooks.example.com/x",
            "https://hooks.example.com/x#frag",
            "ftp://hooks.example.com/x",
            "hooks.example.net/certfleet",
            "relative-path",
            "",
        ] {
            let message = check_url(bad).expect_err(bad);
            if !bad.is_empty() {
                assert!(!message.contains(bad), "{bad} quoted in {message}");
            }
        }
    }

    #[test]
    fn signing_secrets() {
        assert_eq!(check_signing_secret(SECRET), Ok(()));
        assert_eq!(
            check_signing_secret(SECRET.trim_end_matches('=')),
            Ok(()),
            "padding optional"
        );
        for bad in [
            "ZG9jcy10ZXN0LXdlYmhvb2stc2lnbmluZy1zZWNyZXQ=",
            "whsec_",
            "whsec_c2hvcnQtc2VjcmV0LTE2Yg==",
            "whsec_not base64!",
            "whsec_ZG9jcy10ZXN0LXdlYmhvb2stc2lnbmluZy1zZWNyZXQ-_",
        ] {
            let message = check_signing_secret(bad).expect_err(bad);
            assert!(message.contains("openssl rand -base64 32"), "{message}");
        }
    }

    #[test]
    fn filters_and_recipients() {
        let config = load(
            "notifications:\n  email:\n    host: smtp.example.com\n    from: certfleet@example.com\n    to: ops@example.com\n    toByEvent:\n      certificate.renewal_failed: [oncall@example.com, ops@example.com]\n    events: [certificate.renewal_failed, certificate.expiring, certificate.expiring]\n",
        )
        .expect("valid");
        let email = config.notifications.email.expect("email");
        assert_eq!(email.port, 587);
        assert_eq!(email.tls, SmtpTls::StartTls);
        assert_eq!(
            email.events.as_deref(),
            Some(
                [
                    EventType::CertificateRenewalFailed,
                    EventType::CertificateExpiring
                ]
                .as_slice()
            )
        );
        assert!(email.wants(EventType::CertificateExpiring));
        assert!(!email.wants(EventType::CertificateIssued));
        assert!(
            email.wants(EventType::Test),
            "the test event is always sent"
        );
        assert_eq!(
            email.recipients(EventType::CertificateRenewalFailed),
            ["oncall@example.com", "ops@example.com"]
        );
        assert_eq!(
            email.recipients(EventType::CertificateExpiring),
            ["ops@example.com"]
        );
        assert_eq!(email.recipients(EventType::Test), ["ops@example.com"]);
    }

    #[test]
    fn addresses_are_checked_lightly() {
        for ok in [
            "ops@example.com",
            "certfleet <certfleet@example.com>",
            "\"Ops, On Call\" <oncall@example.com>",
        ] {
            assert_eq!(check_address(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ops",
            "a@b@example.com",
            "ops@example.com, dev@example.com",
            "ops@example.com\r\nBcc: x@example.com",
            "o ps@example.com",
            "@example.com",
            "certfleet <certfleet@example.com",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }
}
