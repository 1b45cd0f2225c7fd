//! One storage story, run against every backend: SQLite, and a real PostgreSQL server started
//! by the test (`tests/it/common/postgres.rs`). The story calls every `Store` method the way the
//! app does and checks the answers, so the backends cannot drift apart. After it, what only
//! PostgreSQL has: replicas starting together on one fresh database, and TLS to the database.

use std::path::Path;
use std::sync::Arc;

use certfleet::config::{Config, EncryptionKey, StorageConfig};
use certfleet::domain::EventType;
use certfleet::domain::{CertKey, FailureKind, KeySpec, KeyType, NameSet, SpkiHash};
use certfleet::store::seal::Sealer;
use certfleet::store::{
    self, Attempt, Census, Delivery, Failure, InventoryEntry, NewEvent, NotificationAttempt,
    NotificationOutcome, OrderRecord, PresentedRecord, RenewalClaim, ScheduleEntry, Store,
    StoredCert,
};
use futures_util::future::join_all;
use tempfile::TempDir;

use crate::common;
use common::ca::TestCa;
use common::postgres::Postgres;

/// The storage key, and the one it is rotated to (32 bytes each, base64).
const KEY_A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const KEY_B: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
/// "Now" in the story, Unix seconds.
const T: i64 = 1_800_000_000;
const DIRECTORY: &str = "https://acme.example.test/directory";
/// Certificates added before the rotation: more than one re-seal batch (256 rows).
const BULK: u64 = 600;

#[tokio::test]
async fn story_on_sqlite() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
    story(&Backend::Sqlite { url, _dir: dir }).await;
}

#[tokio::test]
async fn story_on_postgres() {
    let server = Postgres::start().await;
    let url = server.create_database("story", "").await;
    story(&Backend::Postgres { url }).await;
}

/// The backend under test, reopened with other keys as the story rotates them.
enum Backend {
    Sqlite { url: String, _dir: TempDir },
    Postgres { url: String },
}

impl Backend {
    /// Opens the store sealing with `current` and also opening with `previous`. Opened
    /// directly, not through `store::open`, which would re-seal before `reseal` is called.
    async fn open(&self, current: &str, previous: &[&str]) -> Arc<dyn Store> {
        let previous: Vec<EncryptionKey> = previous
            .iter()
            .enumerate()
            .map(|(i, key)| encryption_key(&format!("previous[{i}]"), key))
            .collect();
        let sealer = Sealer::new(&encryption_key("current", current), &previous).expect("sealer");
        let url = match self {
            Backend::Sqlite { url, .. } | Backend::Postgres { url } => url,
        };
        let database = storage_config(url, current, "").database;
        store::connect(&database, sealer)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"))
    }

    /// The text values of a query's first column, read past the store (to see what is at rest).
    async fn raw_texts(&self, sql: &'static str) -> Vec<String> {
        match self {
            Backend::Sqlite { url, .. } => {
                let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
                sqlx::query_scalar(sql).fetch_all(&pool).await.expect(sql)
            }
            Backend::Postgres { url } => {
                let pool = sqlx::PgPool::connect(url).await.expect("connect");
                sqlx::query_scalar(sql).fetch_all(&pool).await.expect(sql)
            }
        }
    }

    /// Changes rows past the store (to plant what an older version or an attacker would).
    async fn raw_execute(&self, sql: &'static str) {
        match self {
            Backend::Sqlite { url, .. } => {
                let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
                sqlx::query(sql).execute(&pool).await.expect(sql);
            }
            Backend::Postgres { url } => {
                let pool = sqlx::PgPool::connect(url).await.expect("connect");
                sqlx::query(sql).execute(&pool).await.expect(sql);
            }
        }
    }
}

fn encryption_key(origin: &str, text: &str) -> EncryptionKey {
    EncryptionKey::parse(origin, text).expect("a 32-byte key")
}

/// `storage` as the config file gives it, so the pool settings go through the real parser.
fn storage_config(url: &str, key: &str, extra: &str) -> StorageConfig {
    let yaml = format!(
        "storage:\n  url: \"{url}\"\n  encryptionKey: \"{key}\"\n  maxConnections: 4\n  \
         connectTimeout: 5s\n{extra}"
    );
    Config::from_yaml(&yaml, std::iter::empty())
        .unwrap_or_else(|e| panic!("config: {e}"))
        .config
        .storage
}

fn cert_key(names: &[&str], key_type: KeyType) -> CertKey {
    CertKey {
        names: NameSet::parse(names).expect("valid names"),
        key: KeySpec::Server(key_type),
        profile: None,
    }
}

fn stored(key: &CertKey, serial: &str, renew_after: i64) -> StoredCert {
    StoredCert {
        names: key.names.clone(),
        key: key.key,
        profile: key.profile.clone(),
        ca: None,
        cert_pem: format!(
            "-----BEGIN CERTIFICATE-----\nleaf {serial}\n-----END CERTIFICATE-----\n"
        ),
        key_pem: Some(format!(
            "-----BEGIN PRIVATE KEY-----\nkey {serial}\n-----END PRIVATE KEY-----\n"
        )),
        issuer_pem: "-----BEGIN CERTIFICATE-----\nissuer\n-----END CERTIFICATE-----\n".to_owned(),
        serial: serial.to_owned(),
        not_before: T - 1000,
        not_after: T + 90 * 86_400,
        renew_after,
        issued_at: T - 1000,
    }
}

fn assert_same(read: &StoredCert, saved: &StoredCert) {
    assert_eq!(read.key(), saved.key());
    assert_eq!(read.cert_pem, saved.cert_pem);
    assert_eq!(read.key_pem, saved.key_pem);
    assert_eq!(read.issuer_pem, saved.issuer_pem);
    assert_eq!(read.serial, saved.serial);
    assert_eq!(
        (
            read.not_before,
            read.not_after,
            read.renew_after,
            read.issued_at
        ),
        (
            saved.not_before,
            saved.not_after,
            saved.renew_after,
            saved.issued_at
        )
    );
}

fn failure(count: u32, next_attempt: i64) -> Failure {
    Failure {
        count,
        next_attempt,
        kind: FailureKind::ValidationFailed,
        message: format!("attempt {count} failed"),
    }
}

/// Every `Store` method, in the order an issuance, a renewal and a key rotation use them.
async fn story(backend: &Backend) {
    let store = backend.open(KEY_A, &[]).await;
    let a = cert_key(&["a.example.com", "www.a.example.com"], KeyType::EcdsaP256);
    let a_rsa = cert_key(&["a.example.com", "www.a.example.com"], KeyType::Rsa2048);
    let b = cert_key(&["b.example.com"], KeyType::EcdsaP256);
    let c = cert_key(&["c.example.com"], KeyType::EcdsaP256);
    let d = cert_key(&["d.example.com"], KeyType::EcdsaP256);

    // An empty store.
    store.ping().await.expect("ping");
    assert!(store.certificate(&a).await.expect("read").is_none());
    assert_eq!(store.due(T, 10).await.expect("due"), vec![]);
    assert_eq!(store.next_due().await.expect("next due"), None);
    assert_eq!(
        store.schedule(None, u32::MAX).await.expect("schedule"),
        vec![]
    );
    assert_eq!(store.census(T).await.expect("census"), Census::default());
    assert_eq!(store.orders().await.expect("orders"), vec![]);

    certificates(backend, &*store, &a, &a_rsa).await;
    http01_tokens(&*store).await;
    tls_alpn01_key_authorizations(&*store).await;
    account(backend, &*store).await;
    forced_renewals(&*store, &a, &b, &d).await;
    orders(backend, &*store, &a, &b).await;
    failures(&*store, &b).await;
    due_and_next_due(&*store, [&a, &a_rsa, &b, &c, &d]).await;
    server_identity(backend, &*store).await;
    akash_pubkeys(&*store).await;
    leases(&*store).await;
    ca_usage(&*store).await;

    // An order in flight holds a sealed key too: the rotation must carry it over.
    store.begin_order(&c, T).await.expect("begin");
    store
        .set_order_key(&c, Some("-----BEGIN PRIVATE KEY-----\norder c\n"))
        .await
        .expect("order key");
    inventory(&*store, &a, &c).await;
    outbox(&*store).await;
    client_keys(backend, &*store).await;
    drop(store);
    rotation(backend, &a, &b, &c).await;
}

/// CSR mode: kept CSRs, the key bound's list, rows without a key, and a deletion that clears
/// the rotation pointing at it. Left in the store for the rotation chapter, which must skip
/// these rows.
async fn client_keys(backend: &Backend, store: &dyn Store) {
    let names = NameSet::parse(&["e.example.com"]).expect("names");
    let client = |byte: u8| CertKey {
        names: names.clone(),
        key: KeySpec::Client(SpkiHash::from_digest(&[byte; 32])),
        profile: None,
    };
    let (e, e2) = (client(1), client(2));
    assert_eq!(store.client_csr(&e).await.expect("read"), None);
    store
        .put_client_csr(&e, "csr e\n", None, T)
        .await
        .expect("keep");
    store
        .put_client_csr(&e, "another csr for e\n", Some(&e2.key), T + 5)
        .await
        .expect("keep again");
    let kept = store.client_csr(&e).await.expect("read").expect("kept");
    assert_eq!(kept.csr_pem, "csr e\n", "the first CSR stays");
    assert_eq!(kept.replaces, Some(e2.key), "replaces is set");
    store
        .put_client_csr(&e2, "csr e2\n", None, T + 1)
        .await
        .expect("keep");
    assert_eq!(
        store.client_keys(&names).await.expect("list"),
        vec![e.key, e2.key]
    );

    let mut cert = stored(&e, "e1", T + 500);
    cert.key_pem = None;
    store.save_certificate(&cert, &[]).await.expect("save");
    let read = store.certificate(&e).await.expect("read").expect("stored");
    assert_eq!(read.key_pem, None);
    assert_eq!(read.key, e.key);
    store.begin_order(&e, T).await.expect("begin");
    store.set_order_key(&e, None).await.expect("finalizing");
    let order = store.order(&e).await.expect("read").expect("begun");
    assert!(order.finalizing);
    assert_eq!(order.key_pem, None);
    let at_rest = backend
        .raw_texts("SELECT key_pem FROM certificates WHERE key_type LIKE 'spki:%'")
        .await;
    assert_eq!(at_rest, vec![String::new()], "no key, sealed or not");
    let at_rest = backend
        .raw_texts("SELECT key_pem FROM orders WHERE key_type LIKE 'spki:%'")
        .await;
    assert_eq!(at_rest, vec![String::new()]);
    store.finish_order(&e).await.expect("finish");
    assert!(
        store
            .revoke_certificate(&e, "e1", "superseded", T + 10, false, &[])
            .await
            .expect("revoke")
    );
    let at_rest = backend
        .raw_texts("SELECT key_pem FROM certificates WHERE key_type LIKE 'spki:%'")
        .await;
    assert_eq!(at_rest, vec![String::new()], "revoked: still nothing");
    store
        .save_certificate(&cert, &[])
        .await
        .expect("save again");

    // Deleting the key a rotation replaces: its CSR goes, and so does the pointer to it.
    store.delete_identity(&e2, &[]).await.expect("delete");
    assert_eq!(store.client_csr(&e2).await.expect("read"), None);
    let kept = store.client_csr(&e).await.expect("read").expect("kept");
    assert_eq!(kept.replaces, None);
    assert_eq!(store.client_keys(&names).await.expect("list"), vec![e.key]);
}

/// Save, read, replace; one row per identity (names + key type); keys sealed at rest and bound
/// to their row.
async fn certificates(backend: &Backend, store: &dyn Store, a: &CertKey, a_rsa: &CertKey) {
    let first = stored(a, "01", T - 100);
    store.save_certificate(&first, &[]).await.expect("save");
    assert_same(
        &store.certificate(a).await.expect("read").expect("saved"),
        &first,
    );

    let second = stored(a, "02", T - 100);
    store.save_certificate(&second, &[]).await.expect("replace");
    assert_same(
        &store.certificate(a).await.expect("read").expect("saved"),
        &second,
    );

    let rsa = stored(a_rsa, "03", T + 5000);
    store.save_certificate(&rsa, &[]).await.expect("save RSA");
    assert_same(
        &store.certificate(a).await.expect("read").expect("kept"),
        &second,
    );
    assert_same(
        &store
            .certificate(a_rsa)
            .await
            .expect("read")
            .expect("saved"),
        &rsa,
    );
    let at_rest = backend.raw_texts("SELECT key_pem FROM certificates").await;
    assert_eq!(at_rest.len(), 2, "one row per identity");
    for value in &at_rest {
        assert!(
            value.starts_with("v1.") && !value.contains("PRIVATE"),
            "{value}"
        );
    }

    // A sealed key copied into another row does not open there.
    backend
        .raw_execute(
            "UPDATE certificates SET key_pem = (SELECT key_pem FROM certificates \
             WHERE key_type = 'rsa-2048') WHERE key_type = 'ecdsa-p256'",
        )
        .await;
    let error = store.certificate(a).await.expect_err("moved ciphertext");
    assert!(
        error.to_string().contains("moved from another row"),
        "{error}"
    );
    store.save_certificate(&second, &[]).await.expect("restore");
    assert_same(
        &store.certificate(a).await.expect("read").expect("saved"),
        &second,
    );
}

/// TLS-ALPN-01 key authorizations by identifier: the newest of two orders' is served, each is
/// removed by its own token, and addresses are identifiers like names.
async fn tls_alpn01_key_authorizations(store: &dyn Store) {
    let name = "alpn.example.test";
    assert_eq!(store.tls_alpn01(name).await.expect("read"), None);
    store
        .put_tls_alpn01(name, "tok-a", "tok-a.thumb", T)
        .await
        .expect("put");
    store
        .put_tls_alpn01(name, "tok-b", "tok-b.thumb", T + 5)
        .await
        .expect("put a second order's");
    store
        .put_tls_alpn01("::1", "tok-c", "tok-c.thumb", T)
        .await
        .expect("put an address's");
    assert_eq!(
        store.tls_alpn01(name).await.expect("read").as_deref(),
        Some("tok-b.thumb"),
        "the newest is served"
    );
    store
        .delete_tls_alpn01(name, "tok-b")
        .await
        .expect("delete");
    assert_eq!(
        store.tls_alpn01(name).await.expect("read").as_deref(),
        Some("tok-a.thumb"),
        "the other order's stays"
    );
    store
        .delete_tls_alpn01(name, "tok-b")
        .await
        .expect("already gone is not an error");
    store
        .delete_tls_alpn01(name, "tok-a")
        .await
        .expect("delete");
    assert_eq!(store.tls_alpn01(name).await.expect("read"), None);
    assert_eq!(
        store.tls_alpn01("::1").await.expect("read").as_deref(),
        Some("tok-c.thumb")
    );
    store
        .delete_tls_alpn01("::1", "tok-c")
        .await
        .expect("delete");
}

/// HTTP-01 key authorizations: any process sharing the store answers the CA.
async fn http01_tokens(store: &dyn Store) {
    assert_eq!(store.http01("tok-1").await.expect("read"), None);
    store
        .put_http01("tok-1", "tok-1.thumb", T)
        .await
        .expect("put");
    store
        .put_http01("tok-2", "tok-2.thumb", T)
        .await
        .expect("put");
    assert_eq!(
        store.http01("tok-1").await.expect("read").as_deref(),
        Some("tok-1.thumb")
    );
    store
        .put_http01("tok-1", "tok-1.other", T + 1)
        .await
        .expect("overwrite");
    assert_eq!(
        store.http01("tok-1").await.expect("read").as_deref(),
        Some("tok-1.other")
    );
    store.delete_http01("tok-1").await.expect("delete");
    store
        .delete_http01("tok-1")
        .await
        .expect("already gone is not an error");
    assert_eq!(store.http01("tok-1").await.expect("read"), None);
    assert_eq!(
        store.http01("tok-2").await.expect("read").as_deref(),
        Some("tok-2.thumb")
    );
    store.delete_http01("tok-2").await.expect("delete");
}

/// The ACME account: one per directory, sealed at rest, replaced in place.
async fn account(backend: &Backend, store: &dyn Store) {
    assert_eq!(store.account(DIRECTORY).await.expect("read"), None);
    store
        .save_account(DIRECTORY, r#"{"id":"acct-1"}"#, T)
        .await
        .expect("save");
    assert_eq!(
        store.account(DIRECTORY).await.expect("read").as_deref(),
        Some(r#"{"id":"acct-1"}"#)
    );
    store
        .save_account(DIRECTORY, r#"{"id":"acct-2"}"#, T + 1)
        .await
        .expect("replace");
    assert_eq!(
        store.account(DIRECTORY).await.expect("read").as_deref(),
        Some(r#"{"id":"acct-2"}"#)
    );
    assert_eq!(
        store.account("https://other.test/dir").await.expect("read"),
        None
    );
    let at_rest = backend
        .raw_texts("SELECT credentials FROM acme_accounts")
        .await;
    assert!(
        at_rest
            .iter()
            .all(|v| v.starts_with("v1.") && !v.contains("acct")),
        "{at_rest:?}"
    );
}

/// Forced renewals: granted, too soon (with when to retry), granted again; atomic under
/// concurrent claims.
async fn forced_renewals(store: &dyn Store, a: &CertKey, b: &CertKey, d: &CertKey) {
    let claim = |key, now| store.claim_forced_renewal(key, now, 3600);
    assert_eq!(claim(a, T).await.expect("claim"), RenewalClaim::Granted);
    assert_eq!(
        claim(a, T + 10).await.expect("claim"),
        RenewalClaim::TooSoon { retry_at: T + 3600 }
    );
    assert_eq!(
        claim(b, T + 10).await.expect("claim"),
        RenewalClaim::Granted,
        "per identity"
    );
    assert_eq!(
        claim(a, T + 3600).await.expect("claim"),
        RenewalClaim::Granted
    );

    let claims = join_all((0..8).map(|_| claim(d, T))).await;
    let granted = claims
        .iter()
        .filter(|c| matches!(c, Ok(RenewalClaim::Granted)))
        .count();
    assert_eq!(granted, 1, "{claims:?}");
}

/// An order's life: begun before the CA knows it, URL and key saved, challenges recorded and
/// forgotten, finished.
async fn orders(backend: &Backend, store: &dyn Store, a: &CertKey, b: &CertKey) {
    assert!(store.order(a).await.expect("read").is_none());
    store.begin_order(a, T).await.expect("begin");
    let record = store.order(a).await.expect("read").expect("begun");
    assert_eq!(
        (record.url, record.key_pem, record.started_at),
        (None, None, T)
    );
    store
        .begin_order(a, T + 50)
        .await
        .expect("begin again keeps the record");
    store
        .set_order_url(a, "https://ca.test/order/1")
        .await
        .expect("url");
    store
        .set_order_key(a, Some("-----BEGIN PRIVATE KEY-----\norder a\n"))
        .await
        .expect("key");
    let OrderRecord {
        url,
        finalizing,
        key_pem,
        started_at,
    } = store.order(a).await.expect("read").expect("begun");
    assert_eq!(url.as_deref(), Some("https://ca.test/order/1"));
    assert_eq!(
        key_pem.as_deref(),
        Some("-----BEGIN PRIVATE KEY-----\norder a\n")
    );
    assert!(finalizing, "a stored key means finalize is being sent");
    assert_eq!(started_at, T, "the first begin counts");
    let at_rest = backend.raw_texts("SELECT key_pem FROM orders").await;
    assert!(at_rest.iter().all(|v| v.starts_with("v1.")), "{at_rest:?}");

    store.begin_order(b, T + 1).await.expect("begin");
    assert_eq!(
        store.orders().await.expect("orders"),
        vec![a.clone(), b.clone()]
    );

    let http = PresentedRecord {
        challenge_type: "http-01".to_owned(),
        name: "a.example.com".to_owned(),
        handle: "h1-token".to_owned(),
    };
    let dns = PresentedRecord {
        challenge_type: "dns-01".to_owned(),
        name: "www.a.example.com".to_owned(),
        handle: "h2-record".to_owned(),
    };
    assert_eq!(store.presented(a).await.expect("presented"), vec![]);
    store.add_presented(a, &http).await.expect("add");
    store.add_presented(a, &dns).await.expect("add");
    store
        .add_presented(a, &http)
        .await
        .expect("add twice is one record");
    assert_eq!(
        store.presented(a).await.expect("presented"),
        vec![http.clone(), dns.clone()]
    );
    assert_eq!(store.presented(b).await.expect("presented"), vec![]);
    store.remove_presented(a, "h1-token").await.expect("remove");
    store
        .remove_presented(a, "h1-token")
        .await
        .expect("already gone");
    assert_eq!(store.presented(a).await.expect("presented"), vec![dns]);

    store.finish_order(a).await.expect("finish");
    assert!(store.order(a).await.expect("read").is_none());
    assert_eq!(store.presented(a).await.expect("presented"), vec![]);
    assert_eq!(store.orders().await.expect("orders"), vec![b.clone()]);
    store.finish_order(a).await.expect("finish again");
    store.finish_order(b).await.expect("finish");
    assert_eq!(store.orders().await.expect("orders"), vec![]);
}

/// Failure back-off: recorded, replaced, cleared.
async fn failures(store: &dyn Store, b: &CertKey) {
    assert_eq!(store.failure(b).await.expect("read"), None);
    store
        .record_failure(b, &failure(1, T + 3600), &[])
        .await
        .expect("record");
    assert_eq!(
        store.failure(b).await.expect("read"),
        Some(failure(1, T + 3600))
    );
    store
        .record_failure(b, &failure(2, T + 7200), &[])
        .await
        .expect("record");
    assert_eq!(
        store.failure(b).await.expect("read"),
        Some(failure(2, T + 7200))
    );
    store.clear_failure(b).await.expect("clear");
    store.clear_failure(b).await.expect("clear again");
    assert_eq!(store.failure(b).await.expect("read"), None);
}

/// What the renewal worker sees: due identities most urgent first, back-off excluded, and the
/// next time anything becomes due.
async fn due_and_next_due(store: &dyn Store, [a, a_rsa, b, c, d]: [&CertKey; 5]) {
    // a renews at T-100 and a_rsa at T+5000 (saved above); b and c are more urgent.
    store
        .save_certificate(&stored(b, "0b", T - 300), &[])
        .await
        .expect("save");
    store
        .save_certificate(&stored(c, "0c", T - 200), &[])
        .await
        .expect("save");
    let due = |now, limit| store.due(now, limit);
    assert_eq!(
        due(T, 10).await.expect("due"),
        vec![b.clone(), c.clone(), a.clone()]
    );
    assert_eq!(due(T, 2).await.expect("due"), vec![b.clone(), c.clone()]);
    assert_eq!(due(T - 250, 10).await.expect("due"), vec![b.clone()]);
    assert_eq!(store.next_due().await.expect("next"), Some(T - 300));

    // b backs off until T+600: not due before, and that is when it next becomes due.
    store
        .record_failure(b, &failure(1, T + 600), &[])
        .await
        .expect("record");
    assert_eq!(due(T, 10).await.expect("due"), vec![c.clone(), a.clone()]);
    store.set_renew_after(c, T + 1000, &[]).await.expect("move");
    store.set_renew_after(a, T + 2000, &[]).await.expect("move");
    // The metrics' view: every certificate, backing off or not, with its current times.
    let schedule = store.schedule(None, u32::MAX).await.expect("schedule");
    let entry = |key: &CertKey| {
        schedule
            .iter()
            .find(|e| e.names == key.names.key() && e.key_type == key.key.as_str())
            .map(|e| e.renew_after)
    };
    assert_eq!(schedule.len(), 4, "{schedule:?}");
    assert_eq!(
        [entry(a), entry(b), entry(c), entry(d)],
        [Some(T + 2000), Some(T - 300), Some(T + 1000), None]
    );
    assert!(schedule.iter().all(|e| e.not_after > e.renew_after));
    // Bounded: the first entries by names, or only those renewing by a time, earliest first.
    let listed = |entries: Vec<ScheduleEntry>| -> Vec<String> {
        entries.into_iter().map(|e| e.names).collect()
    };
    let all = listed(schedule.clone());
    let first_two = listed(store.schedule(None, 2).await.expect("schedule"));
    assert_eq!(first_two, all[..2]);
    assert_eq!(
        listed(store.schedule(Some(T + 1000), 10).await.expect("due list")),
        [b.names.key(), c.names.key()]
    );
    assert_eq!(
        listed(store.schedule(Some(T + 1000), 1).await.expect("due list")),
        [b.names.key()]
    );
    assert_eq!(
        listed(store.schedule(Some(T - 301), 10).await.expect("due list")),
        Vec::<String>::new()
    );
    // The census: b is past its renewal time but backing off until T+600, then due; each
    // certificate is counted once; all expire at T + 90 days.
    let census = |now| store.census(now);
    let expiry = Some(T + 90 * 86_400);
    assert_eq!(
        census(T).await.expect("census"),
        Census {
            valid: 3,
            due: 0,
            backing_off: 1,
            expired: 0,
            revoked: 0,
            earliest_expiry: expiry
        }
    );
    assert_eq!(
        census(T + 700).await.expect("census"),
        Census {
            valid: 3,
            due: 1,
            backing_off: 0,
            expired: 0,
            revoked: 0,
            earliest_expiry: expiry
        }
    );
    assert_eq!(
        census(T + 1500).await.expect("census"),
        Census {
            valid: 2,
            due: 2,
            backing_off: 0,
            expired: 0,
            revoked: 0,
            earliest_expiry: expiry
        }
    );
    assert_eq!(
        census(T + 90 * 86_400).await.expect("census"),
        Census {
            valid: 0,
            due: 0,
            backing_off: 0,
            expired: 4,
            revoked: 0,
            earliest_expiry: expiry
        }
    );
    assert_eq!(due(T, 10).await.expect("due"), vec![]);
    assert_eq!(store.next_due().await.expect("next"), Some(T + 600));
    assert_eq!(due(T + 600, 10).await.expect("due"), vec![b.clone()]);
    assert_eq!(
        due(T + 2000, 10).await.expect("due"),
        vec![b.clone(), c.clone(), a.clone()]
    );
    assert_eq!(
        due(T + 5000, 10).await.expect("due"),
        vec![b.clone(), c.clone(), a.clone(), a_rsa.clone()]
    );

    // A back-off ending before the renewal time waits for the renewal time; a failure of an
    // identity without a certificate (a first issuance) schedules no renewal.
    store
        .record_failure(c, &failure(1, T + 10), &[])
        .await
        .expect("record");
    store
        .record_failure(d, &failure(1, T - 5000), &[])
        .await
        .expect("record");
    assert_eq!(store.next_due().await.expect("next"), Some(T + 600));
    store.clear_failure(b).await.expect("clear");
    assert_eq!(store.next_due().await.expect("next"), Some(T - 300));
    store.clear_failure(c).await.expect("clear");
    store.clear_failure(d).await.expect("clear");
    store
        .set_renew_after(d, T, &[])
        .await
        .expect("no certificate: nothing to move");
    assert!(store.certificate(d).await.expect("read").is_none());
    let renew_after = store.certificate(c).await.expect("read").expect("saved");
    assert_eq!(renew_after.renew_after, T + 1000);
}

/// certfleet's own TLS identity: the first writer wins, also when replicas race.
async fn server_identity(backend: &Backend, store: &dyn Store) {
    assert_eq!(store.server_identity("fallback").await.expect("read"), None);
    let saved = store
        .save_server_identity("fallback", "cert 1", "-----BEGIN PRIVATE KEY-----\n1\n", T)
        .await
        .expect("save");
    assert!(saved);
    let saved = store
        .save_server_identity("fallback", "cert 2", "-----BEGIN PRIVATE KEY-----\n2\n", T)
        .await
        .expect("save");
    assert!(!saved, "the first identity is kept");
    assert_eq!(
        store.server_identity("fallback").await.expect("read"),
        Some((
            "cert 1".to_owned(),
            "-----BEGIN PRIVATE KEY-----\n1\n".to_owned()
        ))
    );

    let racers = (0..4).map(|i| async move {
        let key = format!("-----BEGIN PRIVATE KEY-----\nracer {i}\n");
        let won = store
            .save_server_identity("raced", &format!("cert {i}"), &key, T)
            .await
            .expect("save");
        (won, format!("cert {i}"), key)
    });
    let results = join_all(racers).await;
    let winners: Vec<_> = results.iter().filter(|(won, ..)| *won).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let (_, cert, key) = winners[0];
    assert_eq!(
        store.server_identity("raced").await.expect("read"),
        Some((cert.clone(), key.clone()))
    );
    let at_rest = backend
        .raw_texts("SELECT key_pem FROM server_identity")
        .await;
    assert!(at_rest.iter().all(|v| v.starts_with("v1.")), "{at_rest:?}");
}

/// Akash public keys found on chain, kept across restarts.
async fn akash_pubkeys(store: &dyn Store) {
    let address = "akash1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5lzv7xu";
    assert_eq!(store.akash_pubkey(address).await.expect("read"), None);
    let mut key = vec![2u8; 33];
    store.save_akash_pubkey(address, &key).await.expect("save");
    assert_eq!(
        store.akash_pubkey(address).await.expect("read"),
        Some(key.clone())
    );
    key[32] = 7;
    store
        .save_akash_pubkey(address, &key)
        .await
        .expect("save again");
    assert_eq!(store.akash_pubkey(address).await.expect("read"), Some(key));
}

/// The CA limits' counts: each use counted in every dimension it names, per directory, after a
/// time (strictly), renewals told apart, the oldest of each kind; pruning by age.
async fn ca_usage(store: &dyn Store) {
    use certfleet::store::{Usage, UsageDimension};
    const DIR: &str = "https://ca.example/dir";
    let empty = store
        .ca_usage(DIR, UsageDimension::Account, "", 0)
        .await
        .expect("count nothing");
    assert_eq!(empty, Usage::default());
    let order = |at, renewal, domain: &'static str| async move {
        store
            .record_ca_usage(
                DIR,
                at,
                renewal,
                &[
                    (UsageDimension::Account, ""),
                    (UsageDimension::Domain, domain),
                    (UsageDimension::NameSet, "x.example.com"),
                    (UsageDimension::Credential, "psk:fleet-a"),
                ],
            )
            .await
            .expect("record");
    };
    order(T - 300, true, "example.com").await;
    order(T - 200, false, "example.com").await;
    order(T - 100, false, "example.org").await;
    store
        .record_ca_usage(
            "https://other.example/dir",
            T,
            false,
            &[(UsageDimension::Account, "")],
        )
        .await
        .expect("record at another CA");
    store
        .record_ca_usage(
            DIR,
            T,
            false,
            &[(UsageDimension::FailedValidation, "x.example.com")],
        )
        .await
        .expect("record a failure");
    let count = |dimension, subject: &'static str, since| async move {
        store
            .ca_usage(DIR, dimension, subject, since)
            .await
            .expect("count")
    };
    assert_eq!(
        count(UsageDimension::Account, "", 0).await,
        Usage {
            total: 3,
            renewals: 1,
            oldest: Some(T - 300),
            oldest_new: Some(T - 200),
        }
    );
    assert_eq!(
        count(UsageDimension::Domain, "example.com", 0).await,
        Usage {
            total: 2,
            renewals: 1,
            oldest: Some(T - 300),
            oldest_new: Some(T - 200),
        }
    );
    // After a time, strictly: the use at T - 300 has left a window starting there.
    assert_eq!(
        count(UsageDimension::NameSet, "x.example.com", T - 300).await,
        Usage {
            total: 2,
            renewals: 0,
            oldest: Some(T - 200),
            oldest_new: Some(T - 200),
        }
    );
    assert_eq!(
        count(UsageDimension::Credential, "psk:fleet-a", 0)
            .await
            .total,
        3
    );
    assert_eq!(
        count(UsageDimension::Domain, "example.org", 0).await.total,
        1
    );
    assert_eq!(
        count(UsageDimension::FailedValidation, "x.example.com", 0)
            .await
            .total,
        1
    );
    assert_eq!(
        count(UsageDimension::FailedValidation, "y.example.com", 0)
            .await
            .total,
        0
    );
    // Pruning drops what is older than the time given, whatever its dimension or CA.
    assert_eq!(store.prune_ca_usage(T - 150).await.expect("prune"), 8);
    assert_eq!(count(UsageDimension::Account, "", 0).await.total, 1);
    assert_eq!(
        store
            .ca_usage("https://other.example/dir", UsageDimension::Account, "", 0)
            .await
            .expect("count")
            .total,
        1
    );
}

/// Leases: one owner at a time, extended by its owner, taken over once expired, released only
/// by the owner; one winner when replicas race.
async fn leases(store: &dyn Store) {
    let lease = |owner, now| store.try_lease("issue:a", owner, now, 60);
    assert!(lease("r1", T).await.expect("take"));
    assert!(!lease("r2", T + 1).await.expect("held"));
    assert!(lease("r1", T + 30).await.expect("extend: now until T+90"));
    assert!(
        !lease("r2", T + 61)
            .await
            .expect("still held after the first expiry")
    );
    assert!(lease("r2", T + 90).await.expect("expired: taken over"));
    store
        .release_lease("issue:a", "r1")
        .await
        .expect("not the holder: no effect");
    assert!(!lease("r1", T + 91).await.expect("held by r2"));
    store.release_lease("issue:a", "r2").await.expect("release");
    assert!(lease("r1", T + 91).await.expect("free again"));
    store.release_lease("issue:a", "r1").await.expect("release");
    store
        .release_lease("issue:a", "r1")
        .await
        .expect("release again");

    let owners: Vec<String> = (0..8).map(|i| format!("replica-{i}")).collect();
    let results = join_all(
        owners
            .iter()
            .map(|owner| store.try_lease("issue:b", owner, T, 60)),
    )
    .await;
    let taken = results.iter().filter(|r| matches!(r, Ok(true))).count();
    assert_eq!(taken, 1, "{results:?}");
}

/// The operator's view: every certificate by expiry in cursor pages that neither skip nor
/// repeat; a failure with its time from the history; an order in progress; revocation, cleared
/// by the next certificate; the history newest first; deliveries one row per credential.
async fn inventory(store: &dyn Store, a: &CertKey, c: &CertKey) {
    // Two identities whose every attempt failed: no certificate, listed first.
    let never = [
        cert_key(&["never-b.example.com"], KeyType::EcdsaP256),
        cert_key(&["never-a.example.com"], KeyType::EcdsaP256),
    ];
    for key in &never {
        store
            .record_failure(key, &failure(1, T + 60), &[])
            .await
            .expect("failure");
    }
    let everything = store.inventory(None, u32::MAX).await.expect("list");
    let census = store.census(T).await.expect("census");
    let total = census.valid + census.due + census.backing_off + census.expired;
    assert_eq!(
        everything.len() as u64,
        total + 2,
        "every stored certificate and the two failing identities"
    );
    assert_eq!(
        everything[0].key, never[1],
        "certificate-less ones first, by names"
    );
    assert_eq!(everything[1].key, never[0]);
    assert!(
        everything[..2]
            .iter()
            .all(|e| e.cert.is_none() && e.failure == Some(failure(1, T + 60)))
    );
    let order = |e: &InventoryEntry| {
        (
            e.cert.as_ref().map(|c| c.not_after),
            e.key.names.key(),
            e.key.key.as_str().to_owned(),
        )
    };
    assert!(
        everything.windows(2).all(|w| order(&w[0]) < order(&w[1])),
        "by expiry, then identity"
    );
    assert!(everything[2..].iter().all(|e| e.cert.is_some()));
    assert_eq!(
        store.inventory_entry(&never[0]).await.expect("read"),
        Some(everything[1].clone())
    );
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.inventory(cursor.as_ref(), 2).await.expect("page");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        cursor = Some(last.cursor());
        paged.extend(page);
    }
    assert_eq!(paged, everything, "the pages add up to the list");
    for key in &never {
        store.clear_failure(key).await.expect("clear");
    }

    async fn entry(store: &dyn Store, key: &CertKey) -> InventoryEntry {
        store
            .inventory_entry(key)
            .await
            .expect("read")
            .expect("listed")
    }
    let before = entry(store, c).await;
    assert!(before.ordering, "c's order is in progress");
    assert!(!entry(store, a).await.ordering);
    assert_eq!(before.failure, None);

    // History: newest first, bounded.
    assert_eq!(store.attempts(a, 10).await.expect("history"), vec![]);
    let attempt = |outcome: &str, at: i64| Attempt {
        trigger: "renewal".to_owned(),
        outcome: outcome.to_owned(),
        message: (outcome != "success").then(|| format!("{outcome} at {at}")),
        serial: (outcome == "success").then(|| format!("s{at}")),
        started_at: at,
        duration_ms: 1234,
    };
    for (outcome, at) in [
        ("success", T - 50),
        ("validation_failed", T - 20),
        ("ca_error", T - 10),
    ] {
        store
            .record_attempt(a, &attempt(outcome, at))
            .await
            .expect("record");
    }
    assert_eq!(
        store.attempts(a, 2).await.expect("history"),
        vec![
            attempt("ca_error", T - 10),
            attempt("validation_failed", T - 20)
        ]
    );
    store
        .record_failure(a, &failure(2, T + 600), &[])
        .await
        .expect("failure");
    let failing = entry(store, a).await;
    assert_eq!(failing.failure, Some(failure(2, T + 600)));
    assert_eq!(failing.failed_at, Some(T - 10), "the last failed attempt");
    store.clear_failure(a).await.expect("clear");

    // Revocation: listed, never read again, the key destroyed; due at once when a replacement
    // is wanted, never renewed otherwise; a new certificate for the identity clears it.
    assert_eq!(failing.revoked, None);
    let current = store.certificate(c).await.expect("read").expect("saved");
    let revoke = |serial: String, reason: &'static str, replace: bool| async move {
        store
            .revoke_certificate(c, &serial, reason, T + 1, replace, &[])
            .await
            .expect("revoke")
    };
    assert!(
        !revoke("0".to_owned(), "keyCompromise", true).await,
        "another serial"
    );
    let census_before = store.census(T + 1).await.expect("census");
    assert!(revoke(current.serial.clone(), "keyCompromise", true).await);
    assert!(
        !revoke(current.serial.clone(), "superseded", true).await,
        "already revoked"
    );
    assert_eq!(
        entry(store, c).await.revoked,
        Some((T + 1, "keyCompromise".to_owned()))
    );
    assert!(
        store.certificate(c).await.expect("read").is_none(),
        "never read"
    );
    assert!(store.due(T + 1, 100).await.expect("due").contains(c));
    let census = store.census(T + 1).await.expect("census");
    assert_eq!(census.revoked, census_before.revoked + 1);
    let counted = |c: Census| c.valid + c.due + c.backing_off + c.expired + c.revoked;
    assert_eq!(counted(census), counted(census_before), "each in one state");
    store.save_certificate(&current, &[]).await.expect("save");
    assert_eq!(entry(store, c).await.revoked, None);
    assert!(revoke(current.serial.clone(), "unspecified", false).await);
    let far = T + 80 * 86_400;
    assert!(
        !store.due(far, 100).await.expect("due").contains(c),
        "not renewed"
    );
    store.save_certificate(&current, &[]).await.expect("save");
    assert_same(
        &store
            .certificate(c)
            .await
            .expect("read")
            .expect("saved again"),
        &current,
    );

    // Deletion: everything but the history goes; the history tells other processes.
    let doomed = cert_key(&["doomed.example.com"], KeyType::EcdsaP256);
    store
        .save_certificate(&stored(&doomed, "d1", T + 600), &[])
        .await
        .expect("save");
    store
        .record_failure(&doomed, &failure(1, T + 60), &[])
        .await
        .expect("failure");
    let attempt = |trigger: &str, at: i64| Attempt {
        trigger: trigger.to_owned(),
        outcome: "success".to_owned(),
        message: None,
        serial: Some("d1".to_owned()),
        started_at: at,
        duration_ms: 0,
    };
    store
        .record_attempt(&doomed, &attempt("request", T - 5))
        .await
        .expect("record");
    store.delete_identity(&doomed, &[]).await.expect("delete");
    assert!(store.certificate(&doomed).await.expect("read").is_none());
    assert_eq!(store.failure(&doomed).await.expect("read"), None);
    assert_eq!(store.inventory_entry(&doomed).await.expect("read"), None);
    assert_eq!(store.attempts(&doomed, 10).await.expect("history").len(), 1);
    assert_eq!(store.retired_since(T).await.expect("retired"), vec![]);
    store
        .record_attempt(&doomed, &attempt("deletion", T + 2))
        .await
        .expect("record");
    assert_eq!(
        store.retired_since(T).await.expect("retired"),
        vec![doomed.clone()]
    );
    assert_eq!(store.retired_since(T + 3).await.expect("retired"), vec![]);

    // Deliveries: one row per credential, the latest serial.
    assert_eq!(store.deliveries(a).await.expect("read"), vec![]);
    store
        .record_delivery(a, "psk:fleet-a", "01", T - 5)
        .await
        .expect("record");
    store
        .record_delivery(a, "jwt:ops", "01", T - 4)
        .await
        .expect("record");
    store
        .record_delivery(a, "psk:fleet-a", "02", T - 3)
        .await
        .expect("record");
    let delivery = |principal: &str, serial: &str, at| Delivery {
        principal: principal.to_owned(),
        serial: serial.to_owned(),
        at,
    };
    assert_eq!(
        store.deliveries(a).await.expect("read"),
        vec![
            delivery("psk:fleet-a", "02", T - 3),
            delivery("jwt:ops", "01", T - 4)
        ]
    );
}

/// Key rotation: the new key writes, the old one still opens, `reseal` moves every sealed value
/// (and any plaintext left by an old version) to the new key, then the old key can go.
fn event(id: &str, kind: EventType, key: &CertKey, at: i64, channels: &[&str]) -> NewEvent {
    NewEvent {
        id: id.to_owned(),
        kind,
        key: key.clone(),
        body: format!(r#"{{"type":"{}","id":"{id}"}}"#, kind.as_str()),
        at,
        channels: channels.iter().map(|c| (*c).to_owned()).collect(),
    }
}

fn attempt(at: i64, outcome: &str) -> NotificationAttempt {
    NotificationAttempt {
        at,
        outcome: outcome.to_owned(),
        message: format!("{outcome} at {at}"),
        duration_ms: 7,
    }
}

/// The outbox: events written with their change (or not at all), claims that one process
/// holds at a time, one identity's events in order per channel, every attempt kept; the scans'
/// notes, each once.
async fn outbox(store: &dyn Store) {
    let e = cert_key(&["e.example.com"], KeyType::EcdsaP256);
    let issued = event(
        "evt_issued",
        EventType::CertificateIssued,
        &e,
        T,
        &["hook", "email"],
    );
    store
        .save_certificate(&stored(&e, "e1", T - 10), &[issued])
        .await
        .expect("save with its event");
    assert_eq!(store.pending_notifications().await.expect("count"), 2);
    // What other processes read to refresh their caches and wake their watchers.
    assert_eq!(
        store.stored_since(T).await.expect("stored"),
        vec![e.clone()]
    );
    assert_eq!(store.stored_since(T + 1).await.expect("stored"), vec![]);

    // One claimer gets both channels' notifications; another, at once, none.
    let first = store
        .claim_notifications("p1", T, T + 60, 10)
        .await
        .expect("claim");
    let mut channels: Vec<&str> = first.iter().map(|n| n.channel.as_str()).collect();
    channels.sort_unstable();
    assert_eq!(channels, ["email", "hook"]);
    assert!(
        first
            .iter()
            .all(|n| n.id == "evt_issued" && n.attempts == 0)
    );
    assert_eq!(
        first[0].body,
        r#"{"type":"certificate.issued","id":"evt_issued"}"#
    );
    assert!(
        store
            .claim_notifications("p2", T, T + 60, 10)
            .await
            .expect("claim")
            .is_empty()
    );

    // A later event of the same identity waits for the earlier one on its channel.
    let renewed = event(
        "evt_renewed",
        EventType::CertificateRenewed,
        &e,
        T + 1,
        &["hook"],
    );
    store
        .record_failure(&e, &failure(1, T + 30), std::slice::from_ref(&renewed))
        .await
        .expect("a failure with an event");
    let hook = first.iter().find(|n| n.channel == "hook").expect("hook");
    store
        .finish_notification(
            hook,
            "p1",
            NotificationOutcome::Retry(T + 100),
            &attempt(T + 2, "failed"),
        )
        .await
        .expect("retry later");
    assert!(
        store
            .claim_notifications("p3", T + 50, T + 110, 10)
            .await
            .expect("claim")
            .is_empty(),
        "the hook's first event is not due, the second waits for it, email is still claimed"
    );
    // A claim that expired (its process died) is taken over.
    let email = store
        .claim_notifications("p3", T + 61, T + 120, 10)
        .await
        .expect("claim");
    assert_eq!(email.len(), 1);
    assert_eq!(email[0].channel, "email");
    let stale_claim = first.iter().find(|n| n.channel == "email").expect("email");
    store
        .finish_notification(
            stale_claim,
            "p1",
            NotificationOutcome::Delivered,
            &attempt(T + 62, "delivered"),
        )
        .await
        .expect("a lost claim records nothing");
    store
        .finish_notification(
            &email[0],
            "p3",
            NotificationOutcome::Delivered,
            &attempt(T + 62, "delivered"),
        )
        .await
        .expect("delivered");
    let again = store
        .claim_notifications("p4", T + 100, T + 160, 10)
        .await
        .expect("claim");
    assert_eq!(
        (again.len(), again[0].id.as_str(), again[0].attempts),
        (1, "evt_issued", 1)
    );
    store
        .finish_notification(
            &again[0],
            "p4",
            NotificationOutcome::Delivered,
            &attempt(T + 101, "delivered"),
        )
        .await
        .expect("delivered");
    let next = store
        .claim_notifications("p4", T + 102, T + 160, 10)
        .await
        .expect("claim");
    assert_eq!(
        next.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
        ["evt_renewed"]
    );
    store
        .finish_notification(
            &next[0],
            "p4",
            NotificationOutcome::GaveUp,
            &attempt(T + 103, "failed"),
        )
        .await
        .expect("given up");
    assert_eq!(store.pending_notifications().await.expect("count"), 0);

    // The history: newest first, each notification's state and every attempt.
    let events = store.events(&e, 10).await.expect("events");
    let ids: Vec<&str> = events.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["evt_renewed", "evt_issued"]);
    assert_eq!(events[0].kind, "certificate.renewed");
    assert_eq!(events[0].notifications[0].state, "failed");
    assert_eq!(
        events[0].notifications[0].last_error.as_deref(),
        Some(
            "failed at 103"
                .replace("103", &(T + 103).to_string())
                .as_str()
        )
    );
    let issued = &events[1];
    let hook = issued
        .notifications
        .iter()
        .find(|n| n.channel == "hook")
        .expect("hook");
    assert_eq!(
        (hook.state.as_str(), hook.attempts, hook.done_at),
        ("delivered", 2, Some(T + 101))
    );
    let outcomes: Vec<&str> = hook.history.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["failed", "delivered"]);
    let email = issued
        .notifications
        .iter()
        .find(|n| n.channel == "email")
        .expect("email");
    assert_eq!(
        (email.state.as_str(), email.history.len()),
        ("delivered", 1)
    );
    let troubled = store.recent_events(10, true).await.expect("recent");
    assert_eq!(
        troubled.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["evt_renewed"],
        "given up; the other was delivered in the end"
    );

    // An id is written once; a guarded change that changes nothing writes no event.
    let dup = event(
        "evt_issued",
        EventType::CertificateIssued,
        &e,
        T + 5,
        &["hook"],
    );
    store
        .record_events(&[dup])
        .await
        .expect("a duplicate is skipped");
    let revoke_none = event(
        "evt_revoked",
        EventType::CertificateRevoked,
        &e,
        T + 5,
        &["hook"],
    );
    assert!(
        !store
            .revoke_certificate(
                &e,
                "not-the-serial",
                "unspecified",
                T + 5,
                false,
                &[revoke_none]
            )
            .await
            .expect("revoke")
    );
    assert_eq!(store.events(&e, 10).await.expect("events").len(), 2);
    assert_eq!(store.pending_notifications().await.expect("count"), 0);

    // Expiring: each tighter threshold once per serial.
    let candidates = store.expiring_candidates(T, 100).await.expect("candidates");
    let mine = candidates
        .iter()
        .find(|c| c.key == e)
        .expect("e is due and not renewed");
    assert_eq!((mine.serial.as_str(), mine.notified), ("e1", None));
    let note = |id: &str| event(id, EventType::CertificateExpiring, &e, T, &["hook"]);
    assert!(
        store
            .note_expiring(&e, "e1", 1000, &note("evt_x1"))
            .await
            .expect("note")
    );
    assert!(
        !store
            .note_expiring(&e, "e1", 1000, &note("evt_x2"))
            .await
            .expect("note")
    );
    assert!(
        !store
            .note_expiring(&e, "e1", 2000, &note("evt_x3"))
            .await
            .expect("note")
    );
    assert!(
        !store
            .note_expiring(&e, "e0", 500, &note("evt_x4"))
            .await
            .expect("note")
    );
    assert!(
        store
            .note_expiring(&e, "e1", 500, &note("evt_x5"))
            .await
            .expect("note")
    );
    let mine = store.expiring_candidates(T, 100).await.expect("candidates");
    assert_eq!(
        mine.iter().find(|c| c.key == e).and_then(|c| c.notified),
        Some(500)
    );
    let written: Vec<String> = store
        .events(&e, 10)
        .await
        .expect("events")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(&written[..2], ["evt_x5", "evt_x1"]);
    // A renewal clears the note.
    store
        .save_certificate(
            &StoredCert {
                issued_at: T - 10,
                ..stored(&e, "e2", T + 10_000)
            },
            &[],
        )
        .await
        .expect("renew");
    assert!(
        store
            .expiring_candidates(T, 100)
            .await
            .expect("candidates")
            .iter()
            .all(|c| c.key != e)
    );

    // Stale: a credential that got e1 and not e2, once.
    store
        .record_delivery(&e, "psk:edge", "e1", T - 20)
        .await
        .expect("delivery");
    store
        .record_delivery(&e, "psk:fresh", "e2", T)
        .await
        .expect("delivery");
    assert!(
        store
            .stale_candidates(T - 2000, 10)
            .await
            .expect("stale")
            .is_empty(),
        "renewed too recently"
    );
    let stale = store.stale_candidates(T, 10).await.expect("stale");
    assert_eq!(stale.len(), 1);
    assert_eq!(
        (
            stale[0].principal.as_str(),
            stale[0].delivered_serial.as_str(),
            stale[0].serial.as_str()
        ),
        ("psk:edge", "e1", "e2")
    );
    let told = event("evt_stale", EventType::DeliveryStale, &e, T, &[]);
    assert!(
        store
            .note_stale(&e, "psk:edge", "e2", &told)
            .await
            .expect("note")
    );
    assert!(
        !store
            .note_stale(&e, "psk:edge", "e2", &told)
            .await
            .expect("note")
    );
    assert!(
        store
            .stale_candidates(T, 10)
            .await
            .expect("stale")
            .is_empty()
    );

    // The ARI watch's list: not yet due, unrevoked, its time to ask again come.
    let due_at = |list: Vec<store::AriCandidate>| list.into_iter().any(|c| c.key == e);
    assert!(
        !due_at(store.ari_checks_due(T, 100).await.expect("ari")),
        "asked 6 hours after issuance"
    );
    store
        .set_ari_next_check(&e, "e2", T - 5)
        .await
        .expect("ask now");
    let due = store.ari_checks_due(T, 100).await.expect("ari");
    let mine = due.iter().find(|c| c.key == e).expect("due now");
    assert_eq!((mine.serial.as_str(), mine.renew_after), ("e2", T + 10_000));
    assert!(mine.cert_pem.contains("leaf e2"));
    assert!(
        !due_at(store.ari_checks_due(T + 10_000, 100).await.expect("ari")),
        "due for renewal: the worker's"
    );
    store
        .set_ari_next_check(&e, "e1", T + 5)
        .await
        .expect("an old serial changes nothing");
    assert!(due_at(store.ari_checks_due(T, 100).await.expect("ari")));
    store
        .set_ari_next_check(&e, "e2", T + 5)
        .await
        .expect("later");
    assert!(!due_at(store.ari_checks_due(T, 100).await.expect("ari")));

    // Pruning keeps what is recent and removes the finished past.
    assert_eq!(store.prune_events(T - 1).await.expect("prune"), 0);
    let pruned = store.prune_events(T + 1_000_000).await.expect("prune");
    assert_eq!(
        pruned, 3,
        "issued, renewed, stale: the expiring ones are still pending"
    );
    let left: Vec<String> = store
        .events(&e, 10)
        .await
        .expect("events")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, ["evt_x5", "evt_x1"]);
    assert_eq!(store.pending_notifications().await.expect("count"), 2);
}

async fn rotation(backend: &Backend, a: &CertKey, b: &CertKey, c: &CertKey) {
    let store = backend.open(KEY_A, &[]).await;
    assert_eq!(store.reseal().await.expect("reseal"), 0, "all current");
    backend
        .raw_execute(
            "UPDATE certificates SET key_pem = '-----BEGIN PRIVATE KEY-----\nplain b\n' \
             WHERE names = 'b.example.com'",
        )
        .await;
    let plain = store.certificate(b).await.expect("read").expect("saved");
    assert_eq!(
        plain.key_pem.as_deref(),
        Some("-----BEGIN PRIVATE KEY-----\nplain b\n")
    );
    assert_eq!(
        store.reseal().await.expect("reseal"),
        1,
        "the plaintext key"
    );
    // More rows than one re-seal batch reads, a run of them left in plaintext across a batch
    // boundary: every one is carried over, none twice.
    for i in 0..BULK {
        let key = cert_key(&[&format!("bulk-{i:04}.example.com")], KeyType::EcdsaP256);
        store
            .save_certificate(&stored(&key, &format!("b{i}"), T + 10_000), &[])
            .await
            .expect("save");
    }
    backend
        .raw_execute(
            "UPDATE certificates SET key_pem = '-----BEGIN PRIVATE KEY-----\nplain\n' \
             WHERE names >= 'bulk-0250' AND names < 'bulk-0260'",
        )
        .await;
    assert_eq!(
        store.reseal().await.expect("reseal"),
        10,
        "the plaintext run"
    );
    drop(store);

    let store = backend.open(KEY_B, &[KEY_A]).await;
    let expected = store
        .certificate(a)
        .await
        .expect("old key opens")
        .expect("saved");
    // 5 certificates (the outbox's e too), 1 order key, 1 account, 2 server identities, and
    // the bulk certificates; not the client-key row, which holds no key.
    assert_eq!(store.reseal().await.expect("reseal"), 9 + BULK);
    assert_eq!(store.reseal().await.expect("reseal"), 0, "all current now");
    drop(store);

    let new_id = Sealer::new(&encryption_key("b", KEY_B), &[])
        .expect("sealer")
        .current_id()
        .to_owned();
    assert_eq!(
        backend
            .raw_texts("SELECT key_pem FROM certificates WHERE key_type LIKE 'spki:%'")
            .await,
        vec![String::new()],
        "a client key's row stays empty"
    );
    for sql in [
        "SELECT key_pem FROM certificates WHERE key_type NOT LIKE 'spki:%'",
        "SELECT key_pem FROM orders",
        "SELECT credentials FROM acme_accounts",
        "SELECT key_pem FROM server_identity",
    ] {
        for value in backend.raw_texts(sql).await {
            assert!(
                value.starts_with(&format!("v1.{new_id}.")),
                "{sql}: {value}"
            );
        }
    }

    // The old key is no longer needed, and no longer enough.
    let store = backend.open(KEY_B, &[]).await;
    assert_same(
        &store.certificate(a).await.expect("read").expect("saved"),
        &expected,
    );
    let plain = store.certificate(b).await.expect("read").expect("saved");
    assert_eq!(
        plain.key_pem.as_deref(),
        Some("-----BEGIN PRIVATE KEY-----\nplain b\n")
    );
    let order = store.order(c).await.expect("read").expect("begun");
    assert_eq!(
        order.key_pem.as_deref(),
        Some("-----BEGIN PRIVATE KEY-----\norder c\n")
    );
    assert_eq!(
        store.account(DIRECTORY).await.expect("read").as_deref(),
        Some(r#"{"id":"acct-2"}"#)
    );
    drop(store);
    let store = backend.open(KEY_A, &[]).await;
    let error = store.certificate(a).await.expect_err("the old key alone");
    assert!(
        error.to_string().contains("previousEncryptionKeys"),
        "{error}"
    );
}

/// Replicas starting together on a fresh database: every one migrates (the migrator's advisory
/// lock serialises them) and then they share the store: one winner per claim, lease and
/// identity.
#[tokio::test]
async fn postgres_replicas_start_together_on_a_fresh_database() {
    let server = Postgres::start().await;
    let url = server.create_database("replicas", "").await;
    let config = storage_config(&url, KEY_A, "");
    let opened = join_all((0..3).map(|_| store::open(&config))).await;
    let replicas: Vec<Arc<dyn Store>> = opened
        .into_iter()
        .map(|store| store.expect("every replica migrates"))
        .collect();

    // Each file's version is the number its name starts with.
    let mut versions: Vec<i64> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres"))
            .expect("migrations/postgres")
            .map(|entry| {
                let name = entry.expect("a directory entry").file_name();
                let name = name.to_string_lossy();
                name.split('_')
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{name} does not start with its version"))
            })
            .collect();
    versions.sort_unstable();
    let mut conn = server.superuser("replicas").await;
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .expect("read the migrations table");
    let expected: Vec<(i64, bool)> = versions.into_iter().map(|v| (v, true)).collect();
    assert_eq!(applied, expected, "each migration applied once");

    let key = cert_key(&["shared.example.com"], KeyType::EcdsaP256);
    let claims = join_all(
        replicas
            .iter()
            .map(|r| r.claim_forced_renewal(&key, T, 3600)),
    )
    .await;
    let granted = claims
        .iter()
        .filter(|c| matches!(c, Ok(RenewalClaim::Granted)))
        .count();
    assert_eq!(granted, 1, "{claims:?}");
    let owners = ["replica-0", "replica-1", "replica-2"];
    let leases = join_all(
        replicas
            .iter()
            .zip(owners)
            .map(|(r, owner)| r.try_lease("issue:x", owner, T, 60)),
    )
    .await;
    assert_eq!(
        leases.iter().filter(|l| matches!(l, Ok(true))).count(),
        1,
        "{leases:?}"
    );
    let identities = join_all(
        replicas
            .iter()
            .zip(owners)
            .map(|(r, owner)| r.save_server_identity("fallback", owner, "key", T)),
    )
    .await;
    assert_eq!(
        identities.iter().filter(|s| matches!(s, Ok(true))).count(),
        1
    );

    // What one replica writes, another reads (an HTTP-01 token answered by any of them).
    replicas[0]
        .put_http01("tok", "tok.thumb", T)
        .await
        .expect("put");
    assert_eq!(
        replicas[2].http01("tok").await.expect("read").as_deref(),
        Some("tok.thumb")
    );
}

/// TLS to the database with sqlx's rustls: a server that refuses plain TCP, a private CA given as
/// `storage.caCertificates`, and verification on by default once a CA is given.
#[tokio::test]
async fn postgres_over_tls_with_a_private_ca() {
    let ca = TestCa::new();
    let server = Postgres::start_tls(&ca).await;
    let url = server.create_database("tls", "").await;
    let ca_line = format!("  caCertificates: {}\n", ca.ca_pem_path().display());
    let open = |url: String, extra: String| async move {
        store::open(&storage_config(&url, KEY_A, &extra)).await
    };

    // verify-full against the private CA, explicit or implied by caCertificates.
    let store = open(format!("{url}?sslmode=verify-full"), ca_line.clone())
        .await
        .expect("verify-full with the private CA");
    store.ping().await.expect("ping over TLS");
    store
        .put_http01("tok", "tok.thumb", T)
        .await
        .expect("write over TLS");
    let store = open(url.clone(), ca_line.clone())
        .await
        .expect("caCertificates alone");
    assert_eq!(
        store.http01("tok").await.expect("read").as_deref(),
        Some("tok.thumb")
    );

    // Verification is real: another CA, or no CA (only the public roots), is refused.
    let other = TestCa::new();
    let other_line = format!("  caCertificates: {}\n", other.ca_pem_path().display());
    let error = open(url.clone(), other_line)
        .await
        .expect_err("a CA that did not sign it");
    assert!(
        error.to_string().contains("connect to PostgreSQL"),
        "{error}"
    );
    open(format!("{url}?sslmode=verify-full"), String::new())
        .await
        .expect_err("verify-full without the private CA");
    // And the server takes no plain connections, so the connections above were TLS.
    open(format!("{url}?sslmode=disable"), String::new())
        .await
        .expect_err("plain TCP is refused by this server");
}

/// Every migration exists for both backends, with the same version and name, and the PostgreSQL
/// ones keep to the port's rules (BIGINT times, no SQLite-only syntax).
#[test]
fn migrations_exist_for_both_backends() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let names = |backend: &str| {
        let mut names: Vec<String> = std::fs::read_dir(root.join(backend))
            .expect("migrations folder")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    };
    let postgres = names("postgres");
    assert_eq!(postgres, names("sqlite"));
    for name in postgres {
        let sql = std::fs::read_to_string(root.join("postgres").join(&name)).expect("read");
        // The statements, without their comments.
        let sql: String = sql
            .lines()
            .map(|line| line.split("--").next().unwrap_or_default().to_uppercase() + "\n")
            .collect();
        assert!(!sql.contains("WITHOUT ROWID"), "{name}");
        assert!(
            !sql.contains(" INTEGER"),
            "{name}: times are BIGINT on PostgreSQL"
        );
    }
}
