//! `server.watch`: the long-poll of `GET /api/certificate?...&wait=` (clients that learn of a
//! renewal at once): how long a request may wait, and how many may wait at once.

use std::time::Duration;

use serde::Serialize;

use super::{
    print::as_duration,
    raw::RawWatch,
    report::{Report, Reported},
};
use crate::util::duration::parse_duration;

const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(300);
/// Longer than this, proxies and NATs on the way drop an idle connection anyway.
const MAX_MAX_WAIT: Duration = Duration::from_secs(3600);
const DEFAULT_MAX_WAITERS: usize = 10_000;
const DEFAULT_MAX_PER_CREDENTIAL: usize = 100;

/// `server.watch`.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchConfig {
    /// `server.watch.maxWait`: the longest `wait` a request may ask for; a longer one waits this
    /// long (default 5m, at most 1h).
    #[serde(serialize_with = "as_duration")]
    pub max_wait: Duration,
    /// `server.watch.maxWaiters`: requests waiting at once on this process (default 10000);
    /// one more is answered 429 `watch_limit` at once.
    pub max_waiters: usize,
    /// `server.watch.maxPerCredential`: requests one credential may have waiting at once
    /// (default 100).
    pub max_per_credential: usize,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            max_wait: DEFAULT_MAX_WAIT,
            max_waiters: DEFAULT_MAX_WAITERS,
            max_per_credential: DEFAULT_MAX_PER_CREDENTIAL,
        }
    }
}

/// Resolves `server.watch`.
pub(super) fn watch(
    raw: Option<RawWatch>,
    report: &mut Report<'_>,
) -> Result<WatchConfig, Reported> {
    let Some(raw) = raw else {
        return Ok(WatchConfig::default());
    };
    let max_wait = match raw.max_wait.as_deref().map(parse_duration) {
        None => Ok(DEFAULT_MAX_WAIT),
        Some(Ok(wait)) if !wait.is_zero() && wait <= MAX_MAX_WAIT => Ok(wait),
        Some(Ok(_)) => Err(report.error(
            "server.watch.maxWait",
            "must be more than 0 and at most 1h (default 5m): longer, proxies and NATs drop \
             the idle connection anyway",
        )),
        Some(Err(message)) => Err(report.error("server.watch.maxWait", message)),
    };
    let mut count = |value: Option<String>, key: &str, default: usize| match value {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| {
                report.error(
                    key,
                    format!(
                        "\"{text}\" is not a number of requests; write a whole number from 1 to \
                         1000000 (default {default})"
                    ),
                )
            }),
    };
    let max_waiters = count(
        raw.max_waiters,
        "server.watch.maxWaiters",
        DEFAULT_MAX_WAITERS,
    );
    let max_per_credential = count(
        raw.max_per_credential,
        "server.watch.maxPerCredential",
        DEFAULT_MAX_PER_CREDENTIAL,
    );
    Ok(WatchConfig {
        max_wait: max_wait?,
        max_waiters: max_waiters?,
        max_per_credential: max_per_credential?,
    })
}
