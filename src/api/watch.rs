//! The watch: `GET /api/certificate?...&wait=DURATION` with `If-None-Match` holds the request
//! while the client's certificate is current, and answers as soon as another is stored (or at
//! the end of the wait, 304). A client learns of a renewal at once instead of at its next timer
//! tick, with one idle request open.
//!
//! Waiting is cheap: a waiter is its request's future plus one `watch::Receiver` of the
//! certificate service's change counter. A change wakes every waiter, and each compares its own
//! certificate's `ETag` (from the cache). Bounds: `server.watch.maxWaiters` on the process and
//! `server.watch.maxPerCredential` per credential, counted here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::config::WatchConfig;
use crate::error::ApiError;
use crate::util::duration::parse_duration;

/// The waiters of one process, by credential.
#[derive(Debug)]
pub struct Watchers {
    config: WatchConfig,
    waiting: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_credential: HashMap<Arc<str>, usize>,
}

/// One waiting request's place; given back when dropped (the request answered, or the client
/// went away).
#[derive(Debug)]
pub struct Slot {
    watchers: Arc<Watchers>,
    credential: Arc<str>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .watchers
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_credential.get_mut(&self.credential) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.by_credential.remove(&self.credential);
            }
        }
        crate::observe::metrics::watchers(counts.total);
    }
}

/// How long a refused waiter is told to wait before asking again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

impl Watchers {
    /// The waiters of `config`'s bounds.
    pub fn new(config: WatchConfig) -> Self {
        Self {
            config,
            waiting: Mutex::new(Counts::default()),
        }
    }

    /// A request's `wait` value, at most `server.watch.maxWait`.
    pub fn wait(&self, value: &str) -> Result<Duration, ApiError> {
        let wait = parse_duration(value).map_err(|e| {
            ApiError::InvalidBody(format!(
                "wait: {e}; give how long to hold the request, such as 60s or 5m"
            ))
        })?;
        Ok(wait.min(self.config.max_wait))
    }

    /// A place for one more waiter of `credential`; 429 `watch_limit` past a bound.
    pub fn enter(self: &Arc<Self>, credential: &Arc<str>) -> Result<Slot, ApiError> {
        let mut counts = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = counts.by_credential.get(credential).copied().unwrap_or(0);
        if counts.total >= self.config.max_waiters {
            return Err(ApiError::WatchLimit {
                message: format!(
                    "{} requests are waiting on this server (server.watch.maxWaiters); ask \
                     again without wait, or later",
                    counts.total
                ),
                retry_after: RETRY_AFTER,
            });
        }
        if mine >= self.config.max_per_credential {
            return Err(ApiError::WatchLimit {
                message: format!(
                    "{credential} has {mine} requests waiting (server.watch.maxPerCredential); \
                     keep one watch per certificate"
                ),
                retry_after: RETRY_AFTER,
            });
        }
        counts.total += 1;
        *counts.by_credential.entry(credential.clone()).or_insert(0) += 1;
        crate::observe::metrics::watchers(counts.total);
        Ok(Slot {
            watchers: self.clone(),
            credential: credential.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watchers(max_waiters: usize, max_per_credential: usize) -> Arc<Watchers> {
        Arc::new(Watchers::new(WatchConfig {
            max_wait: Duration::from_secs(300),
            max_waiters,
            max_per_credential,
        }))
    }

    #[test]
    fn places_are_bounded_per_server_and_per_credential_and_given_back() {
        let watchers = watchers(3, 2);
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let a1 = watchers.enter(&a).expect("a 1");
        let _a2 = watchers.enter(&a).expect("a 2");
        assert!(matches!(
            watchers.enter(&a),
            Err(ApiError::WatchLimit { .. })
        ));
        let _b1 = watchers.enter(&b).expect("b 1");
        let err = watchers.enter(&b).expect_err("the server is full");
        assert!(format!("{err:?}").contains("maxWaiters"), "{err:?}");
        drop(a1);
        let _b2 = watchers.enter(&b).expect("a place was given back");
    }

    #[test]
    fn waits_are_parsed_and_capped() {
        let watchers = watchers(1, 1);
        assert_eq!(watchers.wait("30s").expect("30s"), Duration::from_secs(30));
        assert_eq!(watchers.wait("2h").expect("2h"), Duration::from_secs(300));
        assert!(matches!(
            watchers.wait("soon"),
            Err(ApiError::InvalidBody(_))
        ));
    }
}
