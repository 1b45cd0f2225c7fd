//! CA limits known in advance: certfleet counts what it orders from its CA (per registered
//! domain, per exact name set, per account, per credential) and the authorizations that failed
//! (per name), and refuses a new certificate that would exceed a limit before the CA is asked
//! (`limits` in the config; Let's Encrypt's published limits for its directories).
//!
//! The counts live in the store (`ca_usage`), so every replica sharing it counts the same
//! orders. Renewals are counted too but never refused: a share of the per-domain and
//! per-account limits (`limits.renewalReserve`) is theirs alone, which new certificates stop
//! short of. The decision is [`decide`], a pure function of the counts, the limit and the time.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::acme::IssueError;
use crate::config::{Limit, LimitsConfig};
use crate::domain::CertKey;
use crate::store::{Store, StoreError, Usage, UsageDimension};

/// How often one process prunes counts older than the longest window, in seconds.
const PRUNE_EVERY: i64 = 3600;
/// How long the CA limits' lease lasts unreleased (a process that died holding it), seconds.
const LEASE_SECS: i64 = 30;
/// How often a process waiting for the lease asks again.
const LEASE_POLL: Duration = Duration::from_millis(20);
/// How long a process waits for the lease before giving up on the issuance.
const LEASE_WAIT: Duration = Duration::from_secs(45);

/// Who asks for a certificate, as the limits see it: a credential's `method:name` and its
/// `quota`; the renewal worker has neither.
#[derive(Debug, Clone, Default)]
pub struct Asker {
    /// `method:name` of the credential.
    pub credential: Option<String>,
    /// The credential's quota of new certificates.
    pub quota: Option<Limit>,
}

/// How one limit is applied in [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The limit.
    pub limit: Limit,
    /// The percentage of it only renewals may use (0: none).
    pub reserve: u8,
    /// Whether renewals' uses count toward what a new certificate may use.
    pub counts_renewals: bool,
}

/// Whether a new certificate fits `rule` given what was counted in its window (`usage`), at
/// `now`: `None` if it fits, else how long until the oldest counted use leaves the window.
/// A renewal always fits: the reserve is there for it.
pub fn decide(rule: Rule, usage: Usage, renewal: bool, now: i64) -> Option<Duration> {
    if renewal {
        return None;
    }
    let max = u64::from(rule.limit.count);
    let reserved = max * u64::from(rule.reserve.min(100)) / 100;
    let allowed = max - reserved;
    let (used, oldest) = if rule.counts_renewals {
        (usage.total, usage.oldest)
    } else {
        (usage.total.saturating_sub(usage.renewals), usage.oldest_new)
    };
    if used < allowed {
        return None;
    }
    let window = i64::try_from(rule.limit.window.as_secs()).unwrap_or(i64::MAX);
    let frees_at = oldest.map_or(now.saturating_add(window), |at| at.saturating_add(window));
    let wait = u64::try_from(frees_at.saturating_sub(now))
        .unwrap_or(0)
        .max(1);
    Some(Duration::from_secs(wait))
}

/// The registered domain of `name` by the Public Suffix List (`a.example.co.uk` ->
/// `example.co.uk`), a wildcard's without its `*.`; a name that is a public suffix itself is its
/// own. An IP address counts as Let's Encrypt counts it: an IPv4 address alone, an IPv6 address
/// with its /64.
pub fn registered_domain(name: &str) -> String {
    use psl::Psl as _;
    use std::net::{IpAddr, Ipv6Addr};
    let name = name.strip_prefix("*.").unwrap_or(name);
    match name.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => return name.to_owned(),
        Ok(IpAddr::V6(address)) => {
            let [a, b, c, d, ..] = address.segments();
            return format!("{}/64", Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0));
        }
        Err(_) => {}
    }
    psl::List
        .domain(name.as_bytes())
        .and_then(|domain| std::str::from_utf8(domain.as_bytes()).ok())
        .map_or_else(|| name.to_owned(), str::to_owned)
}

/// `limits.renewalPace`: the renewal worker starts at most `count` renewals in any `window`,
/// so a batch due at once is spread out rather than fired together. Per process.
#[derive(Debug)]
pub struct Pacer {
    pace: Option<Limit>,
    started: std::collections::VecDeque<tokio::time::Instant>,
}

impl Pacer {
    /// A pacer of `pace`; `None` never waits.
    pub fn new(pace: Option<Limit>) -> Self {
        Self {
            pace,
            started: std::collections::VecDeque::new(),
        }
    }

    /// Waits until one more renewal may start within the pace, and counts it as started.
    pub async fn turn(&mut self) {
        let Some(pace) = self.pace else {
            return;
        };
        let count = usize::try_from(pace.count).unwrap_or(usize::MAX).max(1);
        loop {
            let now = tokio::time::Instant::now();
            while self
                .started
                .front()
                .is_some_and(|at| now.duration_since(*at) >= pace.window)
            {
                self.started.pop_front();
            }
            match self.started.front() {
                Some(oldest) if self.started.len() >= count => {
                    tokio::time::sleep_until(*oldest + pace.window).await;
                }
                _ => break,
            }
        }
        self.started.push_back(tokio::time::Instant::now());
    }
}

/// The counting and the refusals for one ACME directory.
#[derive(Debug)]
pub struct Limits {
    config: LimitsConfig,
    directory: String,
    store: Arc<dyn Store>,
    /// Held from the check to the record, so that this process's concurrent issuances wait
    /// here rather than on the store's lease.
    gate: tokio::sync::Mutex<()>,
    /// The lease (`ca-limits:DIRECTORY`) held from the check to the record across every
    /// process sharing the store, and this process's name on it.
    lease_name: String,
    owner: String,
    last_prune: AtomicI64,
    /// How long counts are kept: the longest window.
    keep: Duration,
}

impl Limits {
    /// The limits of `config` for orders from `directory`, counted in `store`; counts are kept
    /// for the longest of `config`'s windows and `longest_quota` (the credentials' quotas').
    pub fn new(
        config: LimitsConfig,
        directory: &str,
        store: Arc<dyn Store>,
        longest_quota: Duration,
    ) -> Self {
        let keep = config.longest_window().max(longest_quota);
        Self {
            keep,
            config,
            directory: directory.to_owned(),
            store,
            gate: tokio::sync::Mutex::new(()),
            lease_name: format!("ca-limits:{directory}"),
            owner: super::owner_id(),
            last_prune: AtomicI64::new(0),
        }
    }

    /// `limits.renewalPace`, for the renewal worker.
    pub fn renewal_pace(&self) -> Option<Limit> {
        self.config.renewal_pace
    }

    /// Admits an order for `key` at `now`, asked by `asker`, and counts it; or refuses it with
    /// [`IssueError::Limited`] (counted in `certfleet_ca_limit_refusals_total`), nothing
    /// counted. A renewal is always admitted and counted.
    pub async fn admit(
        &self,
        key: &CertKey,
        renewal: bool,
        asker: &Asker,
        now: i64,
    ) -> Result<(), IssueError> {
        let _gate = self.gate.lock().await;
        // A renewal is never refused: it needs no check, and so no lease.
        if renewal {
            return self.record(key, true, asker, now).await;
        }
        self.lease().await?;
        let result = match self.check(key, asker, now).await {
            Ok(()) => self.record(key, false, asker, now).await,
            Err(err) => {
                if let IssueError::Limited { limit, .. } = &err {
                    crate::observe::metrics::ca_limit_refusal(limit);
                    tracing::warn!(names = %key.names, limit, error = %err, "a CA limit refuses the new certificate");
                }
                Err(err)
            }
        };
        if let Err(err) = self
            .store
            .release_lease(&self.lease_name, &self.owner)
            .await
        {
            tracing::warn!(error = %err, "cannot release the CA limits' lease; it expires by itself");
        }
        result
    }

    /// Takes the lease every process sharing the store checks and counts under, so that two
    /// replicas cannot both take the last place.
    async fn lease(&self) -> Result<(), IssueError> {
        let started = tokio::time::Instant::now();
        while !self
            .store
            .try_lease(
                &self.lease_name,
                &self.owner,
                crate::util::clock::now(),
                LEASE_SECS,
            )
            .await?
        {
            if started.elapsed() > LEASE_WAIT {
                return Err(IssueError::Internal(
                    "the CA limits' lease stayed taken; is another process stuck?".to_owned(),
                ));
            }
            tokio::time::sleep(LEASE_POLL).await;
        }
        Ok(())
    }

    /// Counts the order for `key` in every dimension it belongs to.
    async fn record(
        &self,
        key: &CertKey,
        renewal: bool,
        asker: &Asker,
        now: i64,
    ) -> Result<(), IssueError> {
        let set = key.names.key();
        let domains = self.domains(key);
        let mut counted: Vec<(UsageDimension, &str)> = vec![
            (UsageDimension::Account, ""),
            (UsageDimension::NameSet, set.as_str()),
        ];
        counted.extend(domains.iter().map(|d| (UsageDimension::Domain, d.as_str())));
        // A credential's quota counts the new certificates it asked for, not renewals.
        if let (Some(credential), false) = (&asker.credential, renewal) {
            counted.push((UsageDimension::Credential, credential.as_str()));
        }
        self.store
            .record_ca_usage(&self.directory, now, renewal, &counted)
            .await?;
        self.prune(now).await;
        Ok(())
    }

    /// Counts a failed validation of each of `key`'s names (the CA's limit is per identifier;
    /// which of the names failed is not told apart, so all are counted).
    pub async fn failed_validation(&self, key: &CertKey, now: i64) {
        let names: Vec<String> = key.names.names().iter().map(ToString::to_string).collect();
        let counted: Vec<(UsageDimension, &str)> = names
            .iter()
            .map(|name| (UsageDimension::FailedValidation, name.as_str()))
            .collect();
        if let Err(err) = self
            .store
            .record_ca_usage(&self.directory, now, false, &counted)
            .await
        {
            tracing::warn!(error = %err, "cannot count a failed validation for the CA limits");
        }
    }

    fn domains(&self, key: &CertKey) -> Vec<String> {
        let mut domains: Vec<String> = key
            .names
            .names()
            .iter()
            .map(|name| registered_domain(name.as_str()))
            .collect();
        domains.sort();
        domains.dedup();
        domains
    }

    /// Every limit a new certificate for `key` must fit.
    async fn check(&self, key: &CertKey, asker: &Asker, now: i64) -> Result<(), IssueError> {
        let reserve = self.config.renewal_reserve;
        let rule = |limit, reserve, counts_renewals| Rule {
            limit,
            reserve,
            counts_renewals,
        };
        let mut checks = Vec::new();
        if let Some(limit) = self.config.per_account {
            checks.push(Check {
                name: "perAccount",
                rule: rule(limit, reserve, true),
                dimension: UsageDimension::Account,
                subject: String::new(),
                what: "new orders of the ACME account".to_owned(),
            });
        }
        if let Some(limit) = self.config.per_registered_domain {
            checks.extend(self.domains(key).into_iter().map(|domain| Check {
                name: "perRegisteredDomain",
                rule: rule(limit, reserve, true),
                dimension: UsageDimension::Domain,
                what: format!("new certificates under the registered domain {domain}"),
                subject: domain,
            }));
        }
        if let Some(limit) = self.config.per_exact_set {
            checks.push(Check {
                name: "perExactSet",
                rule: rule(limit, 0, true),
                dimension: UsageDimension::NameSet,
                subject: key.names.key(),
                what: format!("new certificates for exactly {}", key.names),
            });
        }
        if let Some(limit) = self.config.failed_validations {
            checks.extend(key.names.names().iter().map(|name| Check {
                name: "failedValidations",
                rule: rule(limit, 0, true),
                dimension: UsageDimension::FailedValidation,
                subject: name.to_string(),
                what: format!("failed validations of {name}"),
            }));
        }
        if let (Some(limit), Some(credential)) = (asker.quota, &asker.credential) {
            checks.push(Check {
                name: "quota",
                rule: rule(limit, 0, false),
                dimension: UsageDimension::Credential,
                subject: credential.clone(),
                what: format!("new certificates for the credential {credential} (its quota)"),
            });
        }
        for check in checks {
            let window = i64::try_from(check.rule.limit.window.as_secs()).unwrap_or(i64::MAX);
            let usage = self
                .store
                .ca_usage(
                    &self.directory,
                    check.dimension,
                    &check.subject,
                    now.saturating_sub(window),
                )
                .await?;
            if let Some(retry_after) = decide(check.rule, usage, false, now) {
                return Err(refusal(&check, usage, retry_after));
            }
        }
        Ok(())
    }

    /// Drops counts older than the longest window, at most hourly per process.
    async fn prune(&self, now: i64) {
        let last = self.last_prune.load(Ordering::Relaxed);
        if now - last < PRUNE_EVERY
            || self
                .last_prune
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let longest = i64::try_from(self.keep.as_secs()).unwrap_or(i64::MAX);
        let result: Result<u64, StoreError> = self
            .store
            .prune_ca_usage(now.saturating_sub(longest.max(86_400)))
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %err, "cannot prune the CA limits' counts");
        }
    }
}

/// One limit to check a new certificate against.
struct Check {
    /// The limit's config name (the metric label).
    name: &'static str,
    rule: Rule,
    dimension: UsageDimension,
    subject: String,
    /// What is counted, for the message.
    what: String,
}

/// The refusal of `check`: what it allows, what was counted, and when it frees up.
fn refusal(check: &Check, usage: Usage, retry_after: Duration) -> IssueError {
    let (name, rule, what) = (check.name, check.rule, &check.what);
    let window = crate::util::duration::format_duration(rule.limit.window);
    let used = if rule.counts_renewals {
        usage.total
    } else {
        usage.total - usage.renewals
    };
    let reserve = match rule.reserve {
        0 => String::new(),
        share => format!(" ({share}% of them kept for renewals)"),
    };
    IssueError::Limited {
        limit: name,
        message: format!(
            "the CA limit {name} allows {} {what} per {window}{reserve}; {used} were ordered in \
             the last {window}: retry in {}s",
            rule.limit.count,
            retry_after.as_secs()
        ),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(count: u32, reserve: u8, counts_renewals: bool) -> Rule {
        Rule {
            limit: Limit {
                count,
                window: Duration::from_secs(100),
            },
            reserve,
            counts_renewals,
        }
    }

    fn usage(total: u64, renewals: u64, oldest: i64, oldest_new: i64) -> Usage {
        Usage {
            total,
            renewals,
            oldest: Some(oldest),
            oldest_new: Some(oldest_new),
        }
    }

    #[test]
    fn decide_under_at_and_over_the_limit_with_the_reserve() {
        let now = 1_000;
        // (rule, usage, renewal, expected wait)
        let cases = [
            // Nothing counted yet.
            (rule(3, 0, true), Usage::default(), false, None),
            // Under, at, over.
            (rule(3, 0, true), usage(2, 0, 950, 950), false, None),
            (rule(3, 0, true), usage(3, 0, 950, 950), false, Some(50)),
            (rule(3, 0, true), usage(5, 0, 901, 901), false, Some(1)),
            // A renewal always fits, even over the limit.
            (rule(3, 0, true), usage(9, 0, 950, 950), true, None),
            // 20% of 10 kept for renewals: new certificates stop at 8.
            (rule(10, 20, true), usage(7, 0, 990, 990), false, None),
            (rule(10, 20, true), usage(8, 0, 990, 990), false, Some(90)),
            // Renewals eat into the shared count but never get refused.
            (rule(10, 20, true), usage(8, 5, 920, 990), false, Some(20)),
            (rule(10, 20, true), usage(10, 10, 920, 990), true, None),
            // A 20% reserve of 3 rounds down to nothing kept.
            (rule(3, 20, true), usage(2, 0, 950, 950), false, None),
            // A quota counts only new certificates, and waits for the oldest new one.
            (rule(2, 0, false), usage(5, 4, 910, 960), false, None),
            (rule(2, 0, false), usage(6, 4, 910, 960), false, Some(60)),
            // Nothing is ever allowed with a 100% reserve.
            (rule(3, 100, true), Usage::default(), false, Some(100)),
        ];
        for (i, (rule, usage, renewal, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                decide(rule, usage, renewal, now),
                expected.map(Duration::from_secs),
                "case {i}"
            );
        }
    }

    #[test]
    fn registered_domains_follow_the_public_suffix_list() {
        for (name, domain) in [
            ("a.example.co.uk", "example.co.uk"),
            ("example.co.uk", "example.co.uk"),
            ("new.blog.example.com", "example.com"),
            ("*.api.example.org", "example.org"),
            ("a.b.example.test", "example.test"),
            ("user.github.io", "user.github.io"),
            ("co.uk", "co.uk"),
            ("127.0.0.1", "127.0.0.1"),
            ("2001:db8:1:2::5", "2001:db8:1:2::/64"),
            ("::1", "::/64"),
        ] {
            assert_eq!(registered_domain(name), domain, "{name}");
        }
    }
}
