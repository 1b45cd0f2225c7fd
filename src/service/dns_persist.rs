//! The watch on DNS-PERSIST-01 records' `persistUntil`: after that time the CA no longer
//! accepts a record, and every certificate it validates stops renewing. Every
//! [`SCAN_INTERVAL`] (the first scan shortly after start) each `challenges.dnsPersist` entry
//! with a `persistUntil` is looked at:
//!
//! - the records it is known by: the exact names of its `names`, and every record a check
//!   before an order found for it (so `*.example.com` entries are covered once used);
//! - each record's `persistUntil` is read from DNS (this account's record, naming the CA), else
//!   taken from the entry when it is a fixed time;
//! - the gauge `certfleet_dns_persist_expires_seconds{entry}` is the time left until the
//!   soonest of them (negative once passed);
//! - within the entry's `warnBefore`, a warning is logged and a `dns_persist.expiring` event is
//!   written, once per record and `persistUntil` (its id is derived from both, so replicas
//!   write it once, and a record republished with a new `persistUntil` warns again).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::CertService;
use crate::acme::dns_persist01::{self, PersistRecord};
use crate::config::{DnsPersistEntry, PersistUntil};
use crate::domain::{CertKey, DomainName, EventType, KeySpec, KeyType, NameSet};
use crate::notify::derived_id;
use crate::store::Store;
use crate::util::clock;

/// How often the records are looked at.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(3600);
/// How long after start the first scan runs (the account is loaded meanwhile).
const FIRST_SCAN: Duration = Duration::from_secs(2);

/// One record's expiry, as a scan found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// The index of the `challenges.dnsPersist` entry.
    pub entry: usize,
    /// The name it validates (`example.com`).
    pub name: String,
    /// `_validation-persist.example.com`.
    pub fqdn: String,
    /// Its `persistUntil`, Unix seconds.
    pub persist_until: i64,
    /// Whether that came from DNS (else from the entry's fixed `persistUntil`).
    pub published: bool,
}

/// Scans until `shutdown` turns true.
pub async fn watch(
    certs: Arc<CertService>,
    store: Arc<dyn Store>,
    mut shutdown: watch::Receiver<bool>,
) {
    let watched = certs
        .issuer()
        .dns_persist()
        .is_some_and(|solver| solver.entries().iter().any(|e| e.persist_until.is_some()));
    if !watched {
        return;
    }
    // The events this process wrote: each is built once (the store would not write it twice,
    // but the events metric would count it).
    let mut written = BTreeSet::new();
    let mut wait = FIRST_SCAN;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        wait = SCAN_INTERVAL;
        let now = clock::now();
        let expiries = expiries(&certs).await;
        report(&certs, store.as_ref(), &expiries, now, &mut written).await;
    }
}

/// Every watched record's expiry.
pub async fn expiries(certs: &CertService) -> Vec<Expiry> {
    let issuer = certs.issuer();
    let Some(solver) = issuer.dns_persist() else {
        return Vec::new();
    };
    // Without the account, records cannot be told apart: the entries' fixed times still count.
    let account = match issuer.account_uri().await {
        Ok(account) => Some(account),
        Err(err) => {
            tracing::warn!(error = %err, "dns-persist: cannot load the ACME account to read persistUntil from DNS");
            None
        }
    };
    let mut seen_by_entry: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (fqdn, (index, _)) in solver.seen() {
        if let Some(name) = fqdn.strip_prefix(&format!("{}.", dns_persist01::LABEL)) {
            seen_by_entry
                .entry(index)
                .or_default()
                .insert(name.to_owned());
        }
    }
    let mut found = Vec::new();
    for (index, entry) in solver.entries().iter().enumerate() {
        let Some(configured) = entry.persist_until else {
            continue;
        };
        let mut names = exact_names(entry);
        names.extend(seen_by_entry.remove(&index).unwrap_or_default());
        for name in names {
            let fqdn = dns_persist01::record_name(&name);
            let published = match &account {
                Some(account) => published_until(certs, entry, &fqdn, account).await,
                None => None,
            };
            let (persist_until, published) = match (published, configured) {
                (Some(at), _) => (at, true),
                (None, PersistUntil::At(at)) => (at, false),
                // A relative persistUntil whose record is not found: nothing known to watch.
                (None, PersistUntil::After(_)) => continue,
            };
            found.push(Expiry {
                entry: index,
                name,
                fqdn,
                persist_until,
                published,
            });
        }
    }
    found
}

/// The names of `entry` that are exact (not patterns).
fn exact_names(entry: &DnsPersistEntry) -> BTreeSet<String> {
    entry
        .names
        .iter()
        .map(ToString::to_string)
        .filter(|name| !name.starts_with('*'))
        .collect()
}

/// The `persistUntil` of this account's record at `fqdn` naming one of `entry`'s issuers, if
/// it is published and has one (the latest, when there are several).
async fn published_until(
    certs: &CertService,
    entry: &DnsPersistEntry,
    fqdn: &str,
    account: &str,
) -> Option<i64> {
    let issuer = certs.issuer();
    let solver = issuer.dns_persist()?;
    let issuers = issuer.issuer_domain_names(entry).ok()?;
    let values = match solver.txt_values(fqdn).await {
        Ok(values) => values,
        Err(err) => {
            tracing::warn!(record = fqdn, error = %err, "dns-persist: cannot read the record to watch its persistUntil");
            return None;
        }
    };
    values
        .iter()
        .filter_map(|value| PersistRecord::parse(value).ok())
        .filter(|record| record.account_uri == account && issuers.contains(&record.issuer))
        .filter_map(|record| record.persist_until)
        .max()
}

/// Sets the gauges and writes the warnings and events `expiries` call for at `now`, except
/// the events whose ids `written` holds (it gets the new ones); returns how many were written.
pub async fn report(
    certs: &CertService,
    store: &dyn Store,
    expiries: &[Expiry],
    now: i64,
    written: &mut BTreeSet<String>,
) -> usize {
    let Some(solver) = certs.issuer().dns_persist() else {
        return 0;
    };
    let mut soonest: BTreeMap<usize, i64> = BTreeMap::new();
    for expiry in expiries {
        let left = expiry.persist_until - now;
        soonest
            .entry(expiry.entry)
            .and_modify(|least| *least = (*least).min(left))
            .or_insert(left);
    }
    for (entry, left) in &soonest {
        crate::observe::metrics::dns_persist_expires(*entry, *left);
    }
    let mut count = 0;
    for expiry in expiries {
        let Some(entry) = solver.entries().get(expiry.entry) else {
            continue;
        };
        let left = expiry.persist_until - now;
        let warn_before = i64::try_from(entry.warn_before.as_secs()).unwrap_or(i64::MAX);
        if left > warn_before {
            continue;
        }
        let id = derived_id(&[
            EventType::DnsPersistExpiring.as_str(),
            &expiry.fqdn,
            &expiry.persist_until.to_string(),
        ]);
        if written.contains(&id) {
            continue;
        }
        tracing::warn!(
            entry = expiry.entry,
            record = %expiry.fqdn,
            persist_until = %clock::rfc3339(expiry.persist_until),
            "the DNS-PERSIST-01 record's persistUntil is near (or passed): publish a new record (`certfleet dns-persist record {}`)",
            expiry.name
        );
        let Some(key) = event_key(&expiry.name) else {
            continue;
        };
        let data = json!({
            "entry": expiry.entry,
            "record": {
                "name": expiry.name,
                "fqdn": expiry.fqdn,
                "persistUntil": clock::rfc3339(expiry.persist_until),
                "published": expiry.published,
            },
            "remainingSeconds": left,
            "expiresIn": if left <= 0 {
                "now".to_owned()
            } else {
                clock::relative(expiry.persist_until, now)
            },
            "warnBefore": crate::util::duration::format_duration(entry.warn_before),
        });
        let event = certs.notifier().event(
            EventType::DnsPersistExpiring,
            &key,
            data,
            now,
            Some(id.clone()),
        );
        match store.record_events(&[event]).await {
            Ok(()) => {
                written.insert(id);
                count += 1;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot record the dns_persist.expiring event");
            }
        }
    }
    count
}

/// The identity an event about the record of `name` names: the name alone, the default key
/// (events are listed by name; this one is about the name, not a certificate).
fn event_key(name: &str) -> Option<CertKey> {
    let name = DomainName::parse(name).ok()?;
    let names = NameSet::new(vec![name]).ok()?;
    Some(CertKey::new(names, KeySpec::Server(KeyType::default())))
}
