//! Prometheus metrics: every series certfleet exports, and `GET /metrics` on
//! `server.metricsListen`.
//!
//! Counters and histograms are recorded through the `metrics` facade into one process-wide
//! Prometheus recorder, installed by [`install`] when the listener is on (without it the
//! recording calls do nothing). The certificate gauges are not recorded at all: each scrape
//! reads them from the store, so they are right on every replica and a deleted certificate
//! leaves no stale series. Per-certificate series are bounded (`server.metricsCertificates`):
//! by default only the certificates whose renewal time has passed, which is what the alerts
//! watch, plus counts for all. docs/operations.md lists the series and example alerts.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{Label, SharedString, counter, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::CertificateSeries;
use crate::store::{Store, StoreError};
use crate::util::clock;

/// notAfter of each stored certificate, Unix seconds.
pub const CERTIFICATE_EXPIRY: &str = "certfleet_certificate_expiry_timestamp_seconds";
/// When each stored certificate's renewal is due, Unix seconds.
pub const CERTIFICATE_RENEWAL: &str = "certfleet_certificate_renewal_timestamp_seconds";
/// Issuance attempts by trigger and outcome.
pub const ISSUANCES: &str = "certfleet_issuances_total";
/// Issuances sent to `acme.fallback` after the primary CA failed for its own reasons.
pub const FALLBACK_ISSUANCES: &str = "certfleet_fallback_issuances_total";
/// Requests waiting for a certificate to change (`GET /api/certificate?...&wait=`).
pub const WATCHERS: &str = "certfleet_watchers";
/// New certificates refused before ordering because a CA limit would be exceeded, by limit.
pub const CA_LIMIT_REFUSALS: &str = "certfleet_ca_limit_refusals_total";
/// Stored certificates by state.
pub const CERTIFICATES: &str = "certfleet_certificates";
/// The earliest notAfter of any stored certificate, Unix seconds.
pub const EARLIEST_EXPIRY: &str = "certfleet_certificate_earliest_expiry_timestamp_seconds";
/// Certificates the per-certificate gauges leave out.
pub const UNLISTED: &str = "certfleet_certificates_unlisted";
/// Requests to the ACME server by endpoint and status.
pub const ACME_REQUESTS: &str = "certfleet_acme_requests_total";
/// Duration of requests to the ACME server by endpoint.
pub const ACME_DURATION: &str = "certfleet_acme_request_duration_seconds";
/// Refused credentials by method and reason.
pub const AUTH_FAILURES: &str = "certfleet_auth_failures_total";
/// API requests by route, method and status.
pub const HTTP_REQUESTS: &str = "certfleet_http_requests_total";
/// Duration of API requests by route and method.
pub const HTTP_DURATION: &str = "certfleet_http_request_duration_seconds";
/// Responses that carried a private key, by authentication method.
pub const KEY_DELIVERIES: &str = "certfleet_private_key_deliveries_total";
/// Entries in an in-memory cache, by cache.
pub const CACHE_ENTRIES: &str = "certfleet_cache_entries";
/// Bytes an in-memory cache holds, by cache; together at most `server.cacheSize`.
pub const CACHE_BYTES: &str = "certfleet_cache_bytes";
/// Events written, by type.
pub const EVENTS: &str = "certfleet_events_total";
/// `certfleet_dns_persist_expires_seconds{entry}`: see [`dns_persist_expires`].
pub const DNS_PERSIST_EXPIRES: &str = "certfleet_dns_persist_expires_seconds";
/// Notification delivery attempts by channel kind, event type and outcome.
pub const NOTIFICATIONS: &str = "certfleet_notifications_total";
/// Duration of notification delivery attempts by channel kind.
pub const NOTIFICATION_DURATION: &str = "certfleet_notification_duration_seconds";
/// Notifications waiting to be delivered (or retried), in the whole store.
pub const NOTIFICATIONS_PENDING: &str = "certfleet_notifications_pending";
/// Always 1, labelled with the version.
pub const BUILD_INFO: &str = "certfleet_build_info";

/// Histogram buckets, in seconds: a cached fetch takes microseconds, an ACME call up to the
/// HTTP client's 30-second timeout.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// How often histogram samples are folded into their buckets, bounding the memory they hold
/// between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls return the same handle).
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &DURATION_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            // An embedding program installed its own: certfleet's series go there instead.
            tracing::warn!(
                "a metrics recorder is already installed; /metrics shows only certificates"
            );
        }
        describe();
        metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

/// Folds histogram samples into buckets every few seconds, until the process ends.
pub fn spawn_upkeep(handle: &'static PrometheusHandle) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            fold();
            handle.run_upkeep();
        }
    });
}

fn describe() {
    describe_gauge!(
        CERTIFICATE_EXPIRY,
        "notAfter of each stored certificate (Unix time)"
    );
    describe_gauge!(
        CERTIFICATE_RENEWAL,
        "when each stored certificate is due for renewal (Unix time)"
    );
    describe_counter!(
        ISSUANCES,
        "issuance attempts by trigger (request, renewal, forced, resume) and outcome (success or the error code)"
    );
    describe_counter!(
        CA_LIMIT_REFUSALS,
        "new certificates refused before ordering because a CA limit (limits.*, a credential's quota) would be exceeded"
    );
    describe_gauge!(
        WATCHERS,
        "requests waiting (GET /api/certificate with wait=) for their certificate to change"
    );
    describe_counter!(
        FALLBACK_ISSUANCES,
        "issuances ordered from acme.fallback after the primary CA failed (unreachable, 5xx, rate limit)"
    );
    describe_counter!(
        ACME_REQUESTS,
        "requests to the ACME server by endpoint and HTTP status (error: no answer)"
    );
    describe_histogram!(
        ACME_DURATION,
        metrics::Unit::Seconds,
        "duration of requests to the ACME server by endpoint"
    );
    describe_counter!(
        AUTH_FAILURES,
        "refused API requests by authentication method and reason"
    );
    describe_counter!(
        HTTP_REQUESTS,
        "API requests by route template, method and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "duration of API requests by route template and method"
    );
    describe_counter!(
        KEY_DELIVERIES,
        "responses that carried a private key, by authentication method"
    );
    describe_gauge!(
        CACHE_ENTRIES,
        "entries in an in-memory cache (certificates: as stored; renderings: their answers)"
    );
    describe_gauge!(
        CACHE_BYTES,
        "bytes an in-memory cache holds; the caches together stay within server.cacheSize"
    );
    describe_gauge!(
        DNS_PERSIST_EXPIRES,
        "seconds until the soonest persistUntil of a challenges.dnsPersist entry's records (negative once passed), by entry index"
    );
    describe_counter!(
        EVENTS,
        "events written by this process (certificate.renewed, delivery.stale, ...), by type"
    );
    describe_counter!(
        NOTIFICATIONS,
        "notification delivery attempts by channel kind (webhook, slack, email), event type and outcome (delivered, retrying, given_up)"
    );
    describe_histogram!(
        NOTIFICATION_DURATION,
        metrics::Unit::Seconds,
        "duration of notification delivery attempts by channel kind"
    );
    describe_gauge!(
        NOTIFICATIONS_PENDING,
        "notifications waiting for delivery or a retry, across every process sharing the store"
    );
    describe_gauge!(
        BUILD_INFO,
        "always 1; the version label names the running version"
    );
}

/// One issuance attempt that reached the CA: `trigger` is `request`, `renewal`, `forced` or
/// `resume`; `outcome` is `success` or the API error code of the failure.
pub fn issuance(trigger: &'static str, outcome: &'static str) {
    counter!(ISSUANCES, "trigger" => trigger, "outcome" => outcome).increment(1);
}

/// One new certificate refused by a CA limit; `limit` is the limit's config name
/// (`perRegisteredDomain`, `perExactSet`, `perAccount`, `failedValidations`, `quota`): never a
/// name or a credential.
pub fn ca_limit_refusal(limit: &'static str) {
    counter!(CA_LIMIT_REFUSALS, "limit" => limit).increment(1);
}

/// How many requests wait for a certificate to change, now.
#[allow(clippy::cast_precision_loss)] // a count of requests, far below 2^52
pub fn watchers(count: usize) {
    metrics::gauge!(WATCHERS).set(count as f64);
}

/// One issuance sent to the fallback CA after the primary failed.
pub fn fallback_issuance() {
    counter!(FALLBACK_ISSUANCES).increment(1);
}

/// One request to the ACME server; `status` is `None` when no answer came.
pub fn acme_request(endpoint: &'static str, status: Option<u16>, elapsed: Duration) {
    let status = status.map_or(SharedString::const_str("error"), status_label);
    counter!(ACME_REQUESTS, "endpoint" => endpoint, "status" => status).increment(1);
    metrics::histogram!(ACME_DURATION, "endpoint" => endpoint).record(elapsed.as_secs_f64());
}

/// One refused request: `method` is `psk`, `jwt`, `akash` or `none` (no method claimed the
/// credential); `reason` is `missing`, `invalid`, `unavailable`, `insufficient_scope` or
/// `domain_not_allowed`.
pub fn auth_failure(method: &'static str, reason: &'static str) {
    counter!(AUTH_FAILURES, "method" => method, "reason" => reason).increment(1);
}

/// The route label of a request: its matched route template, or `other`. Interned (a router
/// has a fixed handful of templates), so the label outlives the request without a clone of the
/// request's `MatchedPath`, and [`http_request`] finds its series by pointer.
pub fn route_label(matched: Option<&str>) -> &'static str {
    static INTERNED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    thread_local! {
        static SEEN: std::cell::RefCell<Vec<&'static str>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let Some(path) = matched else {
        return "other";
    };
    SEEN.with_borrow_mut(|seen| {
        if let Some(label) = seen.iter().find(|label| **label == path) {
            return *label;
        }
        let mut interned = lock(&INTERNED);
        let label = match interned.iter().find(|label| **label == path) {
            Some(label) => *label,
            None => {
                let label: &'static str = Box::leak(path.to_owned().into_boxed_str());
                interned.push(label);
                label
            }
        };
        seen.push(label);
        label
    })
}

/// One API request, labelled by its route template ([`route_label`]).
///
/// This runs for every request, so it is noted in this thread's [`Shard`] (folded into the
/// series at each scrape), the series' handles are kept there after their first use (a
/// registry lookup hashes every label each time), and nothing runs while metrics are off.
pub fn http_request(route: &'static str, method: &Method, status: StatusCode, elapsed: Duration) {
    if HANDLE.get().is_none() {
        return;
    }
    let (method, status) = (method_label(method), status.as_u16());
    with_shard(|shard| {
        let series = &mut shard.http;
        // Labels are interned: one template, one pointer.
        let index = match series
            .iter()
            .position(|s| std::ptr::eq(s.route, route) && s.method == method && s.status == status)
        {
            Some(index) => index,
            None => {
                let labels = |with_status: bool| {
                    let mut labels = vec![Label::new("route", route), Label::new("method", method)];
                    if with_status {
                        labels.push(Label::new("status", status_label(status)));
                    }
                    labels
                };
                series.push(HttpSeries {
                    route,
                    method,
                    status,
                    count: counter!(HTTP_REQUESTS, labels(true)),
                    duration: metrics::histogram!(HTTP_DURATION, labels(false)),
                    requests: 0,
                    durations: Vec::new(),
                });
                series.len() - 1
            }
        };
        let noted = &mut series[index];
        noted.requests += 1;
        noted.durations.push(elapsed.as_secs_f64());
        if noted.durations.len() >= FOLD_AT {
            noted.fold();
        }
    });
}

/// The handles of one route's series for one method and status, and what this thread
/// observed for them since the last fold.
struct HttpSeries {
    route: &'static str,
    method: &'static str,
    status: u16,
    count: metrics::Counter,
    duration: metrics::Histogram,
    requests: u64,
    durations: Vec<f64>,
}

impl HttpSeries {
    fn fold(&mut self) {
        if self.requests > 0 {
            self.count.increment(std::mem::take(&mut self.requests));
        }
        for seconds in self.durations.drain(..) {
            self.duration.record(seconds);
        }
    }
}

/// What one thread observed of the per-request series since they were last folded into the
/// recorder's. The recorder's counters and histograms are atomics that every core's requests
/// would otherwise write, on every request (a cache line passed between the cores each time);
/// a shard is locked by its own thread for every request and by others only to fold it.
#[derive(Default)]
struct Shard {
    /// [`http_request`]'s series: a handful of routes, methods and statuses.
    http: Vec<HttpSeries>,
    /// [`key_delivered`]'s counters by method, and the deliveries not yet added to them.
    deliveries: Vec<(&'static str, metrics::Counter, u64)>,
}

impl Shard {
    fn fold(&mut self) {
        for series in &mut self.http {
            series.fold();
        }
        for (_, counter, pending) in &mut self.deliveries {
            if *pending > 0 {
                counter.increment(std::mem::take(pending));
            }
        }
    }
}

/// Durations a thread holds for one series before it folds them itself (2 KiB), between
/// scrapes.
const FOLD_AT: usize = 256;

/// Every thread's shard, to fold.
static SHARDS: Mutex<Vec<Arc<Mutex<Shard>>>> = Mutex::new(Vec::new());

thread_local! {
    static SHARD: Arc<Mutex<Shard>> = {
        let shard = Arc::new(Mutex::new(Shard::default()));
        lock(&SHARDS).push(shard.clone());
        shard
    };
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `note` on this thread's shard (nothing while the thread is being torn down).
fn with_shard(note: impl FnOnce(&mut Shard)) {
    let _ = SHARD.try_with(|shard| note(&mut lock(shard)));
}

/// Adds every thread's observations to the recorder's series: before each scrape, so that
/// `/metrics` counts every request answered before it, and with the upkeep. The shards of
/// threads that have ended are folded one last time and let go.
pub fn fold() {
    lock(&SHARDS).retain(|shard| {
        lock(shard).fold();
        // One reference here, one in the thread's own slot while it lives.
        Arc::strong_count(shard) > 1
    });
}

/// What the in-memory cache `cache` (`certificates` or `renderings`) holds, after it changed:
/// on a miss, never on the cached path.
pub fn cache_size(cache: &'static str, entries: usize, bytes: usize) {
    if HANDLE.get().is_none() {
        return;
    }
    metrics::gauge!(CACHE_ENTRIES, "cache" => cache).set(entries as f64);
    metrics::gauge!(CACHE_BYTES, "cache" => cache).set(bytes as f64);
}

/// The seconds left until the soonest `persistUntil` of the records of `challenges.dnsPersist`
/// entry `entry` (negative once passed).
#[allow(clippy::cast_precision_loss)]
pub fn dns_persist_expires(entry: usize, left: i64) {
    metrics::gauge!(DNS_PERSIST_EXPIRES, "entry" => entry.to_string()).set(left as f64);
}

/// One event built by this process.
pub fn event(kind: &'static str) {
    counter!(EVENTS, "type" => kind).increment(1);
}

/// One notification delivery attempt: `channel` is `webhook`, `slack`, `email` (or `removed`),
/// `outcome` is `delivered`, `retrying` or `given_up`.
pub fn notification(channel: &'static str, kind: &str, outcome: &'static str, elapsed: Duration) {
    // The event type as stored: bounded by the types there are (unknown ones are given up).
    let kind = SharedString::from(kind.to_owned());
    counter!(NOTIFICATIONS, "channel" => channel, "type" => kind, "outcome" => outcome)
        .increment(1);
    metrics::histogram!(NOTIFICATION_DURATION, "channel" => channel).record(elapsed.as_secs_f64());
}

/// The notifications pending in the store.
#[allow(clippy::cast_precision_loss)]
pub fn notifications_pending(count: u64) {
    metrics::gauge!(NOTIFICATIONS_PENDING).set(count as f64);
}

/// One response that carried a private key (per request too: noted in this thread's [`Shard`]).
pub fn key_delivered(method: &'static str) {
    if HANDLE.get().is_none() {
        return;
    }
    with_shard(|shard| {
        let handles = &mut shard.deliveries;
        let index = match handles.iter().position(|(m, _, _)| *m == method) {
            Some(index) => index,
            None => {
                handles.push((method, counter!(KEY_DELIVERIES, "method" => method), 0));
                handles.len() - 1
            }
        };
        handles[index].2 += 1;
    });
}

/// Common statuses without an allocation.
fn status_label(status: u16) -> SharedString {
    let text = match status {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        413 => "413",
        415 => "415",
        429 => "429",
        431 => "431",
        500 => "500",
        502 => "502",
        503 => "503",
        other => return SharedString::from_owned(other.to_string()),
    };
    SharedString::const_str(text)
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// What the metrics listener needs.
#[derive(Debug, Clone)]
struct Exporter {
    handle: &'static PrometheusHandle,
    store: Arc<dyn Store>,
    series: CertificateSeries,
}

/// The metrics listener's routes: `GET /metrics`, nothing else. `series` chooses which
/// certificates get series of their own (`server.metricsCertificates`).
pub fn router(
    handle: &'static PrometheusHandle,
    store: Arc<dyn Store>,
    series: CertificateSeries,
) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Exporter {
            handle,
            store,
            series,
        })
}

/// `GET /metrics`: the recorded series, then the certificates read from the store.
async fn scrape(State(exporter): State<Exporter>) -> Response {
    fold();
    let mut text = exporter.handle.render();
    if let Err(err) =
        write_certificates(&mut text, &*exporter.store, exporter.series, clock::now()).await
    {
        // The other series are still worth having; the gap shows on the dashboards.
        tracing::warn!(error = %err, "metrics: cannot read the certificates");
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The certificate families: the counts by state and the earliest expiry, always; then one
/// expiry and one renewal gauge per certificate that `series` lists, and how many it left out.
///
/// The counts are one pass over the table and `due` reads only the due rows through the
/// renewal index, so at 100,000 certificates a scrape stays a few kilobytes.
async fn write_certificates(
    out: &mut String,
    store: &dyn Store,
    series: CertificateSeries,
    now: i64,
) -> Result<(), StoreError> {
    let census = store.census(now).await?;
    let _ = writeln!(
        out,
        "# HELP {CERTIFICATES} stored certificates by state (valid, due, backing_off, expired, revoked)\n\
         # TYPE {CERTIFICATES} gauge"
    );
    for (state, count) in [
        ("valid", census.valid),
        ("due", census.due),
        ("backing_off", census.backing_off),
        ("expired", census.expired),
        ("revoked", census.revoked),
    ] {
        let _ = writeln!(out, "{CERTIFICATES}{{state=\"{state}\"}} {count}");
    }
    if let Some(earliest) = census.earliest_expiry {
        let _ = writeln!(
            out,
            "# HELP {EARLIEST_EXPIRY} the earliest notAfter of any stored certificate (Unix time)\n\
             # TYPE {EARLIEST_EXPIRY} gauge\n{EARLIEST_EXPIRY} {earliest}"
        );
    }
    let (entries, eligible) = match series {
        CertificateSeries::None => (
            Vec::new(),
            census.valid + census.due + census.backing_off + census.expired + census.revoked,
        ),
        CertificateSeries::Due => (
            store
                .schedule(Some(now), CertificateSeries::DUE_LIMIT)
                .await?,
            census.due + census.backing_off + census.expired,
        ),
        CertificateSeries::All => {
            let all = store.schedule(None, u32::MAX).await?;
            let count = all.len() as u64;
            (all, count)
        }
    };
    if series != CertificateSeries::None {
        let expiry = entries.iter().map(|e| (&e.names, &e.key_type, e.not_after));
        let renewal = entries
            .iter()
            .map(|e| (&e.names, &e.key_type, e.renew_after));
        write_gauges(
            out,
            CERTIFICATE_EXPIRY,
            "notAfter of each stored certificate (Unix time)",
            expiry,
        );
        write_gauges(
            out,
            CERTIFICATE_RENEWAL,
            "when each stored certificate is due for renewal (Unix time)",
            renewal,
        );
    }
    let unlisted = eligible.saturating_sub(entries.len() as u64);
    let _ = writeln!(
        out,
        "# HELP {UNLISTED} certificates left out of the per-certificate series \
         (server.metricsCertificates none, or due past its limit of {limit})\n# TYPE {UNLISTED} gauge\n{UNLISTED} {unlisted}",
        limit = CertificateSeries::DUE_LIMIT,
    );
    Ok(())
}

/// Appends one gauge family in the Prometheus text format (names and key types are normalised
/// DNS names and fixed words, so they need no escaping beyond what [`escape`] does).
fn write_gauges<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (&'a String, &'a String, i64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (names, key_type, value) in series {
        let _ = writeln!(
            out,
            "{name}{{names=\"{}\",key_type=\"{}\"}} {value}",
            escape(names),
            escape(key_type)
        );
    }
}

/// Escapes a label value (Prometheus text format: backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_are_interned_once_per_template() {
        let first = route_label(Some("/api/certificate"));
        assert_eq!(first, "/api/certificate");
        let again = route_label(Some(&String::from("/api/certificate")));
        assert!(std::ptr::eq(first, again), "one label per template");
        let elsewhere = std::thread::spawn(|| route_label(Some("/api/certificate")))
            .join()
            .expect("thread");
        assert!(std::ptr::eq(first, elsewhere), "shared across threads");
        assert_eq!(route_label(None), "other");
        assert_eq!(route_label(Some("/healthz")), "/healthz");
    }

    #[test]
    fn gauges_are_valid_text_format() {
        let names = "a.example.com,*.a.example.com".to_owned();
        let key_type = "ecdsa-p256".to_owned();
        let mut out = String::new();
        write_gauges(
            &mut out,
            CERTIFICATE_EXPIRY,
            "help",
            [(&names, &key_type, 42)].into_iter(),
        );
        assert_eq!(
            out,
            "# HELP certfleet_certificate_expiry_timestamp_seconds help\n\
             # TYPE certfleet_certificate_expiry_timestamp_seconds gauge\n\
             certfleet_certificate_expiry_timestamp_seconds{names=\"a.example.com,*.a.example.com\",key_type=\"ecdsa-p256\"} 42\n"
        );
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn every_threads_observations_reach_the_scrape_even_after_the_thread_ended() {
        let handle = install();
        let route = route_label(Some("/test/fold"));
        std::thread::spawn(move || {
            for _ in 0..3 {
                http_request(
                    route,
                    &Method::GET,
                    StatusCode::OK,
                    Duration::from_millis(2),
                );
            }
            key_delivered("fold-test");
        })
        .join()
        .expect("the recording thread");
        let requests =
            format!("{HTTP_REQUESTS}{{route=\"/test/fold\",method=\"GET\",status=\"200\"}} 3");
        let durations = format!("{HTTP_DURATION}_count{{route=\"/test/fold\",method=\"GET\"}} 3");
        let deliveries = format!("{KEY_DELIVERIES}{{method=\"fold-test\"}} 1");
        // Noted in the ended thread's shard, not yet in the recorder.
        let before = handle.render();
        assert!(!before.contains(&requests), "{before}");
        fold();
        let after = handle.render();
        for line in [&requests, &durations, &deliveries] {
            assert!(after.contains(line.as_str()), "{line} in:\n{after}");
        }
        // Folded once: a second fold adds nothing.
        fold();
        assert!(handle.render().contains(&requests));
    }

    #[test]
    fn labels() {
        assert_eq!(&*status_label(404), "404");
        assert_eq!(&*status_label(418), "418");
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::CONNECT), "other");
    }
}
