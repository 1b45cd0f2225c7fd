//! `server`: the API listener, the metrics listener, how long a request waits for an issuance,
//! and certfleet's own TLS.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use serde::Serialize;

use super::{
    print::{as_display, as_duration, as_optional_listen, as_size},
    raw::RawServer,
    report::{Report, Reported, listen_addr},
    tls::TlsConfig,
};
use crate::util::duration::parse_duration;
use crate::util::size::parse_size;

const DEFAULT_API_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8443);
/// Loopback: metrics are for the operator's Prometheus, which reaches them through a deliberate
/// `0.0.0.0:9090` (containers) or a local agent.
const DEFAULT_METRICS_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);
const DEFAULT_ISSUE_WAIT: Duration = Duration::from_secs(60);
/// Longer than this, most HTTP clients and proxies give up before the 202 arrives.
const MAX_ISSUE_WAIT: Duration = Duration::from_secs(600);
/// 32 MiB: about 6,000 typical certificates (an ECDSA key, a name or two, a two-certificate
/// chain) with their rendered answers, and well under the memory a small pod is given.
const DEFAULT_CACHE_SIZE: u64 = 32 << 20;

/// `server`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerConfig {
    /// `server.listen`: the API listener's address (default `0.0.0.0:8443`).
    #[serde(serialize_with = "as_display")]
    pub listen: SocketAddr,
    /// `server.metricsListen`: where `GET /metrics` is served (default `127.0.0.1:9090`);
    /// `None` when set to `""`, which turns the listener off.
    #[serde(serialize_with = "as_optional_listen")]
    pub metrics_listen: Option<SocketAddr>,
    /// `server.metricsCertificates`: which certificates get series of their own on `/metrics`
    /// (default `due`).
    pub metrics_certificates: CertificateSeries,
    /// `server.issueWait`: how long a request waits for an issuance before answering 202
    /// (default 60s; more than 0 and at most 10m).
    #[serde(serialize_with = "as_duration")]
    pub issue_wait: Duration,
    /// `server.cacheSize`: the bytes the in-memory certificate cache may hold, the stored
    /// certificates and their rendered answers together (default 32MiB; `0` reads the store on
    /// every fetch).
    #[serde(serialize_with = "as_size")]
    pub cache_size: u64,
    /// `server.ui`: serve the web dashboard at `/ui` on the API listener (default true).
    pub ui: bool,
    /// `server.tls`: certfleet's own certificate; `None` serves plain HTTP (warned at start).
    pub tls: Option<TlsConfig>,
    /// `server.watch`: the long-poll of `GET /api/certificate?...&wait=`.
    pub watch: super::watch::WatchConfig,
}

/// Which certificates `/metrics` describes one by one. Every mode also exports the counts by
/// state and the earliest expiry, so a scrape stays small at any fleet size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CertificateSeries {
    /// Only those whose renewal time has passed (due, failing, expired): what the alerts need,
    /// at most [`CertificateSeries::DUE_LIMIT`], earliest renewal first.
    Due,
    /// Every stored certificate (a large fleet makes a large scrape: about 250 bytes each).
    All,
    /// None: only the counts.
    None,
}

impl CertificateSeries {
    /// The most per-certificate series `due` exports; the rest are counted, not listed.
    pub const DUE_LIMIT: u32 = 1_000;
}

/// Resolves `server`.
pub(super) fn server(raw: RawServer, report: &mut Report<'_>) -> Result<ServerConfig, Reported> {
    let listen = listen_addr(raw.listen, "server.listen", DEFAULT_API_LISTEN, report);
    // An empty value turns the metrics listener off (SPEC), unlike other keys where "" = unset.
    let metrics_listen = match raw.metrics_listen.as_deref() {
        Some("") => Ok(None),
        _ => listen_addr(
            raw.metrics_listen,
            "server.metricsListen",
            DEFAULT_METRICS_LISTEN,
            report,
        )
        .map(Some),
    };
    let metrics_certificates = match raw.metrics_certificates.as_deref() {
        None | Some("due") => Ok(CertificateSeries::Due),
        Some("all") => Ok(CertificateSeries::All),
        Some("none") => Ok(CertificateSeries::None),
        Some(other) => Err(report.error(
            "server.metricsCertificates",
            format!(
                "\"{other}\" is not a choice; use due (default: series only for certificates \
                 whose renewal time has passed), all, or none"
            ),
        )),
    };
    let issue_wait = issue_wait(raw.issue_wait, report);
    let cache_size = match raw.cache_size.as_deref().map(parse_size) {
        None => Ok(DEFAULT_CACHE_SIZE),
        Some(Ok(size)) => Ok(size),
        Some(Err(message)) => Err(report.error("server.cacheSize", message)),
    };
    let tls = super::tls::tls(raw.tls, report);
    let watch = super::watch::watch(raw.watch, report);
    let (listen, metrics_listen) = (listen?, metrics_listen?);
    if metrics_listen == Some(listen) {
        return Err(report.error(
            "server.metricsListen",
            format!(
                "is the same address as server.listen ({listen}); give metrics their own port \
                 (default {DEFAULT_METRICS_LISTEN}) or \"\" to turn them off"
            ),
        ));
    }
    Ok(ServerConfig {
        listen,
        metrics_listen,
        metrics_certificates: metrics_certificates?,
        issue_wait: issue_wait?,
        cache_size: cache_size?,
        ui: raw.ui.unwrap_or(true),
        tls: tls?,
        watch: watch?,
    })
}

fn issue_wait(value: Option<String>, report: &mut Report<'_>) -> Result<Duration, Reported> {
    const KEY: &str = "server.issueWait";
    let Some(text) = value else {
        return Ok(DEFAULT_ISSUE_WAIT);
    };
    match parse_duration(&text) {
        Err(message) => Err(report.error(KEY, message)),
        Ok(wait) if wait.is_zero() => Err(report.error(
            KEY,
            "must be more than 0: a request needs some time to wait for its certificate \
             (default 60s)",
        )),
        Ok(wait) if wait > MAX_ISSUE_WAIT => Err(report.error(
            KEY,
            format!(
                "\"{text}\" is longer than the 10m maximum, and clients would time out first; \
                 use at most 10m (default 60s)"
            ),
        )),
        Ok(wait) => Ok(wait),
    }
}
