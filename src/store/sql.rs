//! The one SQL store: every statement, every row decoding and every sealed column, written once
//! over the [`Backend`] seam and run unchanged on SQLite and PostgreSQL.
//!
//! Private keys and account credentials are sealed ([`super::seal`]) with the row's identity as
//! associated data. The contexts below are part of the stored format: changing one makes every
//! sealed value of that table unreadable.

use std::fmt;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::backend::{Arg, Backend, Row};
use super::seal::Sealer;
use super::{
    AriCandidate, Attempt, Census, CertSummary, ClientCsrRecord, Delivery, EventRecord,
    ExpiryCandidate, Failure, InventoryCursor, InventoryEntry, NewEvent, NotificationAttempt,
    NotificationOutcome, NotificationState, OrderRecord, PendingNotification, PresentedRecord,
    RenewalClaim, ScheduleEntry, StaleCandidate, Store, StoreError, StoredCert, Usage,
    UsageDimension,
};
use crate::domain::{CertKey, FailureKind, KeySpec, NameSet};

/// [`Store`] over any [`Backend`]; private keys sealed by a [`Sealer`].
pub struct SqlStore<B> {
    db: B,
    sealer: Sealer,
}

impl<B: fmt::Debug> fmt::Debug for SqlStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("db", &self.db)
            .field("sealer", &self.sealer)
            .finish()
    }
}

impl<B: Backend> SqlStore<B> {
    /// A store over `db`, which has its schema migrated already.
    pub fn new(db: B, sealer: Sealer) -> Self {
        Self { db, sealer }
    }

    fn seal(&self, plaintext: &str, context: &str) -> Result<String, StoreError> {
        self.sealer
            .seal(plaintext.as_bytes(), context)
            .map_err(|e| StoreError::new("seal a private key", e))
    }

    /// Opens a sealed value; plaintext PEM or JSON, written before sealing existed (or into a
    /// database filled by hand), is accepted and re-sealed by `reseal`.
    fn open_sealed(&self, stored: &str, context: &str) -> Result<String, StoreError> {
        if is_legacy_plaintext(stored) {
            return Ok(stored.to_owned());
        }
        let bytes = self
            .sealer
            .open(stored, context)
            .map_err(|e| StoreError::new("open a sealed private key", e))?;
        String::from_utf8(bytes).map_err(|e| StoreError::new("open a sealed private key", e))
    }

    async fn execute(
        &self,
        step: &'static str,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<u64, StoreError> {
        self.db
            .execute(sql, args)
            .await
            .map_err(|e| StoreError::new(step, e))
    }

    async fn fetch_all(
        &self,
        step: &'static str,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Vec<B::Row>, StoreError> {
        self.db
            .fetch_all(sql, args)
            .await
            .map_err(|e| StoreError::new(step, e))
    }

    async fn fetch_optional(
        &self,
        step: &'static str,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<B::Row>, StoreError> {
        self.db
            .fetch_optional(sql, args)
            .await
            .map_err(|e| StoreError::new(step, e))
    }

    /// Runs `first` and then the statements that write `events`, in one transaction (one
    /// statement alone needs none).
    async fn execute_with_events(
        &self,
        step: &'static str,
        first: (&'static str, &[Arg<'_>]),
        events: &[NewEvent],
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return self.execute(step, first.0, first.1).await.map(drop);
        }
        let names = event_columns(events);
        let writes = event_writes(events, &names);
        let mut statements = vec![first];
        statements.extend(writes.iter().map(|(sql, args)| (*sql, args.as_slice())));
        self.db
            .execute_all(&statements)
            .await
            .map_err(|e| StoreError::new(step, e))
    }

    /// Runs `first`, and when it changed a row the statements that write `events`, in one
    /// transaction; whether it did.
    async fn execute_guarded_with_events(
        &self,
        step: &'static str,
        first: (&'static str, &[Arg<'_>]),
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let names = event_columns(events);
        let writes = event_writes(events, &names);
        let mut statements = vec![first];
        statements.extend(writes.iter().map(|(sql, args)| (*sql, args.as_slice())));
        self.db
            .execute_guarded(&statements)
            .await
            .map_err(|e| StoreError::new(step, e))
    }

    /// The notifications of the events from `min_seq` on (of `key`, or of every identity),
    /// with their attempts, by event.
    async fn notification_states(
        &self,
        min_seq: i64,
        key: Option<(&str, &str)>,
    ) -> Result<Vec<(i64, NotificationState)>, StoreError> {
        // One identity's through its events (one range of `events_identity`); the latest of
        // every identity as one range of the outbox.
        let (rows, attempts) = match key {
            Some((names, key_type)) => {
                let args = [Arg::from(min_seq), Arg::from(names), Arg::from(key_type)];
                let rows = self
                    .fetch_all(
                        "read notifications",
                        "SELECT n.event_seq, n.channel, n.state, n.attempts, n.next_attempt, \
                         n.last_error, n.done_at FROM events e \
                         JOIN notifications n ON n.event_seq = e.seq \
                         WHERE e.names = $2 AND e.key_type = $3 AND e.seq >= $1 \
                         ORDER BY n.event_seq, n.channel",
                        &args,
                    )
                    .await?;
                let attempts = self
                    .fetch_all(
                        "read notification attempts",
                        "SELECT a.event_seq, a.channel, a.at, a.outcome, a.message, \
                         a.duration_ms FROM events e \
                         JOIN notification_attempts a ON a.event_seq = e.seq \
                         WHERE e.names = $2 AND e.key_type = $3 AND e.seq >= $1 ORDER BY a.id",
                        &args,
                    )
                    .await?;
                (rows, attempts)
            }
            None => {
                let args = [Arg::from(min_seq)];
                let rows = self
                    .fetch_all(
                        "read notifications",
                        "SELECT event_seq, channel, state, attempts, next_attempt, last_error, \
                         done_at FROM notifications WHERE event_seq >= $1 \
                         ORDER BY event_seq, channel",
                        &args,
                    )
                    .await?;
                let attempts = self
                    .fetch_all(
                        "read notification attempts",
                        "SELECT event_seq, channel, at, outcome, message, duration_ms \
                         FROM notification_attempts WHERE event_seq >= $1 ORDER BY id",
                        &args,
                    )
                    .await?;
                (rows, attempts)
            }
        };
        let mut states = Vec::with_capacity(rows.len());
        for row in &rows {
            states.push((
                int(row, 0)?,
                NotificationState {
                    channel: text(row, 1)?,
                    state: text(row, 2)?,
                    attempts: u32::try_from(int(row, 3)?).unwrap_or(u32::MAX),
                    next_attempt: int(row, 4)?,
                    last_error: decode(row.optional_text(5))?,
                    done_at: decode(row.optional_int(6))?,
                    history: Vec::new(),
                },
            ));
        }
        for row in &attempts {
            let (seq, channel) = (int(row, 0)?, text(row, 1)?);
            if let Some((_, state)) = states
                .iter_mut()
                .find(|(s, state)| *s == seq && state.channel == channel)
            {
                state.history.push(NotificationAttempt {
                    at: int(row, 2)?,
                    outcome: text(row, 3)?,
                    message: text(row, 4)?,
                    duration_ms: int(row, 5)?,
                });
            }
        }
        Ok(states)
    }

    /// Adds to `records` (whose events are `seqs`) their notifications.
    async fn attach_notifications(
        &self,
        records: &mut [EventRecord],
        seqs: &[i64],
        key: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let Some(&min_seq) = seqs.iter().min() else {
            return Ok(());
        };
        for (seq, state) in self.notification_states(min_seq, key).await? {
            if let Some(i) = seqs.iter().position(|s| *s == seq) {
                records[i].notifications.push(state);
            }
        }
        Ok(())
    }

    /// Re-seals one column where it is not sealed with the current key, [`RESEAL_BATCH`] rows at
    /// a time, so a table of any size costs one batch of memory.
    ///
    /// `select` returns the row's two key columns and the sealed value for rows whose value does
    /// not start with `$1` (the current key's prefix) and whose keys sort after (`$2`, `$3`),
    /// ordered by those keys, at most `LIMIT` rows. `update` sets `$1` where the keys are `$2`,
    /// `$3` and the value is still `$4`, so processes re-sealing at once cannot lose a write.
    async fn reseal_column(
        &self,
        select: &'static str,
        update: &'static str,
        context: impl Fn(&str, &str) -> String + Send + Sync,
    ) -> Result<u64, StoreError> {
        let prefix = format!("v1.{}.", self.sealer.current_id());
        let (mut after_a, mut after_b) = (String::new(), String::new());
        let mut count = 0;
        loop {
            let args = [Arg::from(&prefix), Arg::from(&after_a), Arg::from(&after_b)];
            let rows = self
                .fetch_all("read rows to re-seal", select, &args)
                .await?;
            let full = rows.len() >= RESEAL_BATCH;
            for row in rows {
                let (a, b, value) = (text(&row, 0)?, text(&row, 1)?, text(&row, 2)?);
                if !self.sealer.is_current(&value) {
                    let context = context(&a, &b);
                    let sealed = self.seal(&self.open_sealed(&value, &context)?, &context)?;
                    let args = [
                        Arg::from(&sealed),
                        Arg::from(&a),
                        Arg::from(&b),
                        Arg::from(&value),
                    ];
                    count += self.execute("write a re-sealed row", update, &args).await?;
                }
                (after_a, after_b) = (a, b);
            }
            if !full {
                return Ok(count);
            }
        }
    }
}

/// The condition, on `certificates c`, that the renewal worker may renew a certificate: not
/// revoked, or revoked by a revocation that asked for a replacement (never `keyCompromise` of a
/// client's key, which only the client can replace) (its renewal time was set to
/// the revocation's, so it is due at once and retried like any renewal until it succeeds).
/// `revoked_reason` is in the renewal index, so the scan still reads only the index.
macro_rules! renewable {
    () => {
        "(c.revoked_reason IS NULL OR c.revoked_reason = 'superseded' \
         OR (c.revoked_reason = 'keyCompromise' AND c.key_type NOT LIKE 'spki:%'))"
    };
}

/// Rows read per batch by [`SqlStore::reseal_column`]; the `LIMIT` of its queries.
const RESEAL_BATCH: usize = 256;

/// The inventory's columns for stored certificates, in the order `inventory_from_row` reads
/// them, up to the `FROM` and the join; each query adds its `WHERE` and `ORDER BY`.
macro_rules! inventory_of_certificates {
    () => {
        "SELECT c.names, c.key_type, c.serial, c.not_before, c.not_after, c.renew_after, \
         c.issued_at, f.count, f.next_attempt, f.code, f.message, \
         CASE WHEN f.count IS NULL THEN NULL ELSE (SELECT MAX(a.started_at) FROM attempts a \
          WHERE a.names = c.names AND a.key_type = c.key_type AND a.outcome <> 'success') END, \
         CASE WHEN EXISTS (SELECT 1 FROM orders o WHERE o.names = c.names \
          AND o.key_type = c.key_type) THEN CAST(1 AS BIGINT) ELSE CAST(0 AS BIGINT) END, \
         c.revoked_at, c.revoked_reason, c.ca \
         FROM certificates c \
         LEFT JOIN failures f ON f.names = c.names AND f.key_type = c.key_type"
    };
}

/// The same columns for an identity with a failure and no certificate (typed NULLs where the
/// certificate's would be), up to the `FROM`.
macro_rules! inventory_of_failures {
    () => {
        "SELECT f.names, f.key_type, CAST(NULL AS TEXT), CAST(NULL AS BIGINT), \
         CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), f.count, \
         f.next_attempt, f.code, f.message, \
         (SELECT MAX(a.started_at) FROM attempts a WHERE a.names = f.names \
          AND a.key_type = f.key_type AND a.outcome <> 'success'), \
         CASE WHEN EXISTS (SELECT 1 FROM orders o WHERE o.names = f.names \
          AND o.key_type = f.key_type) THEN CAST(1 AS BIGINT) ELSE CAST(0 AS BIGINT) END, \
         CAST(NULL AS BIGINT), CAST(NULL AS TEXT), CAST(NULL AS TEXT) \
         FROM failures f"
    };
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    async fn ping(&self) -> Result<(), StoreError> {
        self.fetch_optional("ping", "SELECT 1", &[]).await.map(drop)
    }

    async fn certificate(&self, key: &CertKey) -> Result<Option<StoredCert>, StoreError> {
        let names = key.names.key();
        let row = self
            .fetch_optional(
                "read certificate",
                // The columns in the order `cert_from_row` reads them.
                "SELECT names, key_type, cert_pem, key_pem, issuer_pem, serial, not_before, \
                 not_after, renew_after, issued_at, ca FROM certificates \
                 WHERE names = $1 AND key_type = $2 AND revoked_at IS NULL",
                &[Arg::from(&names), Arg::from(key.variant().as_ref())],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut cert = cert_from_row(&row)?;
        cert.key_pem = match (&cert.key, cert.key_pem.take()) {
            (KeySpec::Server(_), Some(sealed)) => {
                Some(self.open_sealed(&sealed, &cert_context(&names, key.variant().as_ref()))?)
            }
            // A client's key: the column holds '', never a key.
            _ => None,
        };
        Ok(Some(cert))
    }

    async fn save_certificate(
        &self,
        cert: &StoredCert,
        events: &[NewEvent],
    ) -> Result<(), StoreError> {
        let names = cert.names.key();
        let variant = cert.key.with_profile(cert.profile.as_ref());
        let key_type = variant.as_ref();
        // A client's key is never stored: its row holds '' where a server key's is sealed.
        let sealed = match &cert.key_pem {
            Some(pem) => self.seal(pem, &cert_context(&names, key_type))?,
            None => String::new(),
        };
        let args = [
            Arg::from(&names),
            Arg::from(key_type),
            Arg::from(&cert.cert_pem),
            Arg::from(&sealed),
            Arg::from(&cert.issuer_pem),
            Arg::from(&cert.serial),
            Arg::from(cert.not_before),
            Arg::from(cert.not_after),
            Arg::from(cert.renew_after),
            Arg::from(cert.issued_at),
            Arg::from(
                cert.issued_at
                    + crate::schedule::ari_check_interval(cert.not_before, cert.not_after),
            ),
            Arg::OptionalText(cert.ca.as_deref()),
        ];
        let save = (
            "INSERT INTO certificates (names, key_type, cert_pem, key_pem, issuer_pem, serial, \
             not_before, not_after, renew_after, issued_at, ari_next_check, ca) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (names, key_type) DO UPDATE SET cert_pem = excluded.cert_pem, \
             key_pem = excluded.key_pem, issuer_pem = excluded.issuer_pem, \
             serial = excluded.serial, not_before = excluded.not_before, \
             not_after = excluded.not_after, renew_after = excluded.renew_after, \
             issued_at = excluded.issued_at, revoked_at = NULL, revoked_reason = NULL, \
             expiring_notified = NULL, ari_next_check = excluded.ari_next_check, \
             ca = excluded.ca",
            &args[..],
        );
        self.execute_with_events("save certificate", save, events)
            .await
    }

    async fn put_http01(
        &self,
        token: &str,
        key_authorization: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.execute(
            "save HTTP-01 token",
            "INSERT INTO http01_tokens (token, key_authorization, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (token) DO UPDATE SET key_authorization = excluded.key_authorization",
            &[token.into(), key_authorization.into(), now.into()],
        )
        .await
        .map(drop)
    }

    async fn http01(&self, token: &str) -> Result<Option<String>, StoreError> {
        self.fetch_optional(
            "read HTTP-01 token",
            "SELECT key_authorization FROM http01_tokens WHERE token = $1",
            &[token.into()],
        )
        .await?
        .map(|row| text(&row, 0))
        .transpose()
    }

    async fn delete_http01(&self, token: &str) -> Result<(), StoreError> {
        self.execute(
            "delete HTTP-01 token",
            "DELETE FROM http01_tokens WHERE token = $1",
            &[token.into()],
        )
        .await
        .map(drop)
    }

    async fn put_tls_alpn01(
        &self,
        name: &str,
        token: &str,
        key_authorization: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.execute(
            "save TLS-ALPN-01 key authorization",
            "INSERT INTO tls_alpn01_challenges (name, token, key_authorization, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (name, token) DO UPDATE SET \
             key_authorization = excluded.key_authorization, created_at = excluded.created_at",
            &[
                name.into(),
                token.into(),
                key_authorization.into(),
                now.into(),
            ],
        )
        .await
        .map(drop)
    }

    async fn tls_alpn01(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.fetch_optional(
            "read TLS-ALPN-01 key authorization",
            "SELECT key_authorization FROM tls_alpn01_challenges WHERE name = $1 \
             ORDER BY created_at DESC LIMIT 1",
            &[name.into()],
        )
        .await?
        .map(|row| text(&row, 0))
        .transpose()
    }

    async fn delete_tls_alpn01(&self, name: &str, token: &str) -> Result<(), StoreError> {
        self.execute(
            "delete TLS-ALPN-01 key authorization",
            "DELETE FROM tls_alpn01_challenges WHERE name = $1 AND token = $2",
            &[name.into(), token.into()],
        )
        .await
        .map(drop)
    }

    async fn account(&self, directory_url: &str) -> Result<Option<String>, StoreError> {
        let row = self
            .fetch_optional(
                "read ACME account",
                "SELECT credentials FROM acme_accounts WHERE directory_url = $1",
                &[directory_url.into()],
            )
            .await?;
        row.map(|row| self.open_sealed(&text(&row, 0)?, &account_context(directory_url)))
            .transpose()
    }

    async fn save_account(
        &self,
        directory_url: &str,
        credentials: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let sealed = self.seal(credentials, &account_context(directory_url))?;
        self.execute(
            "save ACME account",
            "INSERT INTO acme_accounts (directory_url, credentials, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (directory_url) DO UPDATE SET credentials = excluded.credentials",
            &[directory_url.into(), Arg::from(&sealed), now.into()],
        )
        .await
        .map(drop)
    }

    async fn claim_forced_renewal(
        &self,
        key: &CertKey,
        now: i64,
        min_interval: i64,
    ) -> Result<RenewalClaim, StoreError> {
        let variant = key.variant();
        let names = key.names.key();
        let identity = [Arg::from(&names), Arg::from(variant.as_ref())];
        // One statement: the row is written only when no claim exists or the last one is old
        // enough. ON CONFLICT locks the row and checks the condition on its newest version, so
        // two requests (or two replicas) claiming together cannot both be granted.
        let granted = self
            .execute(
                "claim forced renewal",
                "INSERT INTO forced_renewals (names, key_type, renewed_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (names, key_type) DO UPDATE SET renewed_at = excluded.renewed_at \
                 WHERE forced_renewals.renewed_at <= $4",
                &[
                    identity[0],
                    identity[1],
                    now.into(),
                    (now - min_interval).into(),
                ],
            )
            .await?
            == 1;
        if granted {
            return Ok(RenewalClaim::Granted);
        }
        let row = self
            .fetch_optional(
                "read forced renewal",
                "SELECT renewed_at FROM forced_renewals WHERE names = $1 AND key_type = $2",
                &identity,
            )
            .await?
            .ok_or_else(|| StoreError::new("read forced renewal", "the claim row vanished"))?;
        Ok(RenewalClaim::TooSoon {
            retry_at: int(&row, 0)? + min_interval,
        })
    }

    async fn begin_order(&self, key: &CertKey, now: i64) -> Result<(), StoreError> {
        let names = key.names.key();
        self.execute(
            "record an order",
            "INSERT INTO orders (names, key_type, started_at) VALUES ($1, $2, $3) \
             ON CONFLICT (names, key_type) DO NOTHING",
            &[Arg::from(&names), key.variant().as_ref().into(), now.into()],
        )
        .await
        .map(drop)
    }

    async fn order(&self, key: &CertKey) -> Result<Option<OrderRecord>, StoreError> {
        let names = key.names.key();
        let row = self
            .fetch_optional(
                "read an order",
                "SELECT order_url, key_pem, started_at FROM orders \
                 WHERE names = $1 AND key_type = $2",
                &[Arg::from(&names), key.variant().as_ref().into()],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let context = order_context(&names, key.variant().as_ref());
        let sealed = decode(row.optional_text(1))?;
        Ok(Some(OrderRecord {
            url: decode(row.optional_text(0))?,
            finalizing: sealed.is_some(),
            key_pem: sealed
                .filter(|s| !s.is_empty())
                .map(|s| self.open_sealed(&s, &context))
                .transpose()?,
            started_at: int(&row, 2)?,
        }))
    }

    async fn set_order_url(&self, key: &CertKey, url: &str) -> Result<(), StoreError> {
        let names = key.names.key();
        self.execute(
            "save the order URL",
            "UPDATE orders SET order_url = $3 WHERE names = $1 AND key_type = $2",
            &[Arg::from(&names), key.variant().as_ref().into(), url.into()],
        )
        .await
        .map(drop)
    }

    async fn set_order_key(&self, key: &CertKey, key_pem: Option<&str>) -> Result<(), StoreError> {
        let names = key.names.key();
        // A client's order stores '' in the key's place: only that finalize is being sent.
        let sealed = match key_pem {
            Some(pem) => self.seal(pem, &order_context(&names, key.variant().as_ref()))?,
            None => String::new(),
        };
        self.execute(
            "save the order key",
            "UPDATE orders SET key_pem = $3 WHERE names = $1 AND key_type = $2",
            &[
                Arg::from(&names),
                key.variant().as_ref().into(),
                Arg::from(&sealed),
            ],
        )
        .await
        .map(drop)
    }

    async fn put_client_csr(
        &self,
        key: &CertKey,
        csr_pem: &str,
        replaces: Option<&KeySpec>,
        now: i64,
    ) -> Result<(), StoreError> {
        let names = key.names.key();
        self.execute(
            "keep a client's CSR",
            "INSERT INTO client_csrs (names, key_type, csr_pem, replaces, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (names, key_type) DO UPDATE \
             SET replaces = COALESCE(excluded.replaces, client_csrs.replaces)",
            &[
                Arg::from(&names),
                key.variant().as_ref().into(),
                csr_pem.into(),
                Arg::OptionalText(replaces.map(KeySpec::as_str)),
                now.into(),
            ],
        )
        .await
        .map(drop)
    }

    async fn client_csr(&self, key: &CertKey) -> Result<Option<ClientCsrRecord>, StoreError> {
        let names = key.names.key();
        let row = self
            .fetch_optional(
                "read a client's CSR",
                "SELECT csr_pem, replaces FROM client_csrs WHERE names = $1 AND key_type = $2",
                &[Arg::from(&names), key.variant().as_ref().into()],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(ClientCsrRecord {
            csr_pem: text(&row, 0)?,
            replaces: decode(row.optional_text(1))?
                .map(|stored| key_spec(&stored))
                .transpose()?,
        }))
    }

    async fn client_keys(&self, names: &NameSet) -> Result<Vec<KeySpec>, StoreError> {
        let names = names.key();
        let rows = self
            .fetch_all(
                "list a name set's client keys",
                "SELECT key_type FROM client_csrs WHERE names = $1 ORDER BY created_at",
                &[Arg::from(&names)],
            )
            .await?;
        // One key may have certificates of several profiles: each key once.
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            let variant = text(row, 0)?;
            let key = key_spec(
                variant
                    .split_once('@')
                    .map_or(variant.as_str(), |(key, _)| key),
            )?;
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    async fn finish_order(&self, key: &CertKey) -> Result<(), StoreError> {
        let variant = key.variant();
        let names = key.names.key();
        let identity = [Arg::from(&names), Arg::from(variant.as_ref())];
        self.db
            .execute_all(&[
                (
                    "DELETE FROM presented WHERE names = $1 AND key_type = $2",
                    &identity,
                ),
                (
                    "DELETE FROM orders WHERE names = $1 AND key_type = $2",
                    &identity,
                ),
            ])
            .await
            .map_err(|e| StoreError::new("finish an order", e))
    }

    async fn orders(&self) -> Result<Vec<CertKey>, StoreError> {
        let rows = self
            .fetch_all(
                "list orders",
                "SELECT names, key_type FROM orders ORDER BY started_at",
                &[],
            )
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn add_presented(
        &self,
        key: &CertKey,
        record: &PresentedRecord,
    ) -> Result<(), StoreError> {
        let names = key.names.key();
        self.execute(
            "record a presented challenge",
            "INSERT INTO presented (names, key_type, challenge_type, name, handle) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (names, key_type, handle) DO NOTHING",
            &[
                Arg::from(&names),
                key.variant().as_ref().into(),
                Arg::from(&record.challenge_type),
                Arg::from(&record.name),
                Arg::from(&record.handle),
            ],
        )
        .await
        .map(drop)
    }

    async fn presented(&self, key: &CertKey) -> Result<Vec<PresentedRecord>, StoreError> {
        let names = key.names.key();
        let rows = self
            .fetch_all(
                "list presented challenges",
                "SELECT challenge_type, name, handle FROM presented \
                 WHERE names = $1 AND key_type = $2 ORDER BY handle",
                &[Arg::from(&names), key.variant().as_ref().into()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(PresentedRecord {
                    challenge_type: text(row, 0)?,
                    name: text(row, 1)?,
                    handle: text(row, 2)?,
                })
            })
            .collect()
    }

    async fn remove_presented(&self, key: &CertKey, handle: &str) -> Result<(), StoreError> {
        let names = key.names.key();
        self.execute(
            "forget a presented challenge",
            "DELETE FROM presented WHERE names = $1 AND key_type = $2 AND handle = $3",
            &[
                Arg::from(&names),
                key.variant().as_ref().into(),
                handle.into(),
            ],
        )
        .await
        .map(drop)
    }

    async fn failure(&self, key: &CertKey) -> Result<Option<Failure>, StoreError> {
        let names = key.names.key();
        let row = self
            .fetch_optional(
                "read a failure",
                "SELECT count, next_attempt, code, message FROM failures \
                 WHERE names = $1 AND key_type = $2",
                &[Arg::from(&names), key.variant().as_ref().into()],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Failure {
            count: u32::try_from(int(&row, 0)?).unwrap_or(u32::MAX),
            next_attempt: int(&row, 1)?,
            kind: FailureKind::parse(&text(&row, 2)?),
            message: text(&row, 3)?,
        }))
    }

    async fn record_failure(
        &self,
        key: &CertKey,
        failure: &Failure,
        events: &[NewEvent],
    ) -> Result<(), StoreError> {
        let variant = key.variant();
        let names = key.names.key();
        let args = [
            Arg::from(&names),
            variant.as_ref().into(),
            i64::from(failure.count).into(),
            failure.next_attempt.into(),
            failure.kind.as_str().into(),
            Arg::from(&failure.message),
        ];
        let record = (
            "INSERT INTO failures (names, key_type, count, next_attempt, code, message, certless) \
             VALUES ($1, $2, $3, $4, $5, $6, NOT EXISTS (SELECT 1 FROM certificates c \
                                              WHERE c.names = $1 AND c.key_type = $2)) \
             ON CONFLICT (names, key_type) DO UPDATE SET \
             count = excluded.count, next_attempt = excluded.next_attempt, \
             code = excluded.code, message = excluded.message, certless = excluded.certless",
            &args[..],
        );
        self.execute_with_events("record a failure", record, events)
            .await
    }

    async fn clear_failure(&self, key: &CertKey) -> Result<(), StoreError> {
        let names = key.names.key();
        self.execute(
            "clear a failure",
            "DELETE FROM failures WHERE names = $1 AND key_type = $2",
            &[Arg::from(&names), key.variant().as_ref().into()],
        )
        .await
        .map(drop)
    }

    async fn due(&self, now: i64, limit: u32) -> Result<Vec<CertKey>, StoreError> {
        let rows = self
            .fetch_all(
                "list due certificates",
                concat!(
                    "SELECT c.names, c.key_type FROM certificates c \
                     LEFT JOIN failures f ON f.names = c.names AND f.key_type = c.key_type \
                     WHERE c.renew_after <= $1 AND (f.next_attempt IS NULL OR f.next_attempt <= $1) \
                     AND ",
                    renewable!(),
                    " ORDER BY c.renew_after LIMIT $2"
                ),
                &[now.into(), i64::from(limit).into()],
            )
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        // Two indexed lookups rather than one scan: the earliest renewal of a certificate that is
        // not backing off, and the earliest end of a back-off of a stored certificate (the later
        // of its next attempt and its renewal time: CASE, as both engines spell it alike).
        let renewal = self
            .fetch_optional(
                "find the next renewal",
                concat!(
                    "SELECT c.renew_after FROM certificates c \
                     WHERE NOT EXISTS (SELECT 1 FROM failures f \
                                       WHERE f.names = c.names AND f.key_type = c.key_type) \
                     AND ",
                    renewable!(),
                    " ORDER BY c.renew_after LIMIT 1"
                ),
                &[],
            )
            .await?;
        let retry = self
            .fetch_optional(
                "find the next retry",
                concat!(
                    "SELECT CASE WHEN f.next_attempt > c.renew_after THEN f.next_attempt \
                     ELSE c.renew_after END AS at FROM failures f \
                     JOIN certificates c ON c.names = f.names AND c.key_type = f.key_type \
                     WHERE ",
                    renewable!(),
                    " ORDER BY at LIMIT 1"
                ),
                &[],
            )
            .await?;
        let renewal = renewal.map(|row| int(&row, 0)).transpose()?;
        let retry = retry.map(|row| int(&row, 0)).transpose()?;
        Ok(match (renewal, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    async fn schedule(
        &self,
        renewal_by: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ScheduleEntry>, StoreError> {
        let limit = i64::from(limit);
        let rows = match renewal_by {
            // The renewal index (renew_after, not_after) finds these without reading the rows.
            Some(by) => {
                self.fetch_all(
                    "list the certificates due for renewal",
                    "SELECT names, key_type, not_after, renew_after FROM certificates \
                     WHERE renew_after <= $1 ORDER BY renew_after, names, key_type LIMIT $2",
                    &[by.into(), limit.into()],
                )
                .await?
            }
            None => {
                self.fetch_all(
                    "list the certificates' schedule",
                    "SELECT names, key_type, not_after, renew_after FROM certificates \
                     ORDER BY names, key_type LIMIT $1",
                    &[limit.into()],
                )
                .await?
            }
        };
        rows.iter()
            .map(|row| {
                Ok(ScheduleEntry {
                    names: text(row, 0)?,
                    key_type: text(row, 1)?,
                    not_after: int(row, 2)?,
                    renew_after: int(row, 3)?,
                })
            })
            .collect()
    }

    async fn census(&self, now: i64) -> Result<Census, StoreError> {
        // One pass; CASE and COALESCE read the same in both engines. The states are tested in
        // order (expired, valid, backing off, due), so each row lands in exactly one.
        let row = self
            .fetch_optional(
                "count the certificates by state",
                "SELECT \
                   COALESCE(SUM(CASE WHEN c.revoked_reason IS NULL AND c.not_after <= $1 \
                                THEN 1 ELSE 0 END), 0), \
                   COALESCE(SUM(CASE WHEN c.revoked_reason IS NULL AND c.not_after > $1 \
                                AND c.renew_after > $1 THEN 1 ELSE 0 END), 0), \
                   COALESCE(SUM(CASE WHEN c.revoked_reason IS NULL AND c.not_after > $1 \
                                AND c.renew_after <= $1 AND f.next_attempt > $1 \
                                THEN 1 ELSE 0 END), 0), \
                   COUNT(*), MIN(c.not_after), \
                   COALESCE(SUM(CASE WHEN c.revoked_reason IS NULL THEN 0 ELSE 1 END), 0) \
                 FROM certificates c \
                 LEFT JOIN failures f ON f.names = c.names AND f.key_type = c.key_type",
                &[now.into()],
            )
            .await?;
        let Some(row) = row else {
            return Ok(Census::default());
        };
        let count = |column| int(&row, column).map(|n| u64::try_from(n).unwrap_or(0));
        let (expired, valid, backing_off, total) = (count(0)?, count(1)?, count(2)?, count(3)?);
        let revoked = count(5)?;
        Ok(Census {
            valid,
            due: total.saturating_sub(expired + valid + backing_off + revoked),
            backing_off,
            expired,
            revoked,
            earliest_expiry: decode(row.optional_int(4))?,
        })
    }

    async fn server_identity(&self, name: &str) -> Result<Option<(String, String)>, StoreError> {
        let row = self
            .fetch_optional(
                "read the server identity",
                "SELECT cert_pem, key_pem FROM server_identity WHERE name = $1",
                &[name.into()],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let key_pem = self.open_sealed(&text(&row, 1)?, &identity_context(name))?;
        Ok(Some((text(&row, 0)?, key_pem)))
    }

    async fn save_server_identity(
        &self,
        name: &str,
        cert_pem: &str,
        key_pem: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let sealed = self.seal(key_pem, &identity_context(name))?;
        // First writer wins: processes starting together agree on one identity.
        let inserted = self
            .execute(
                "save the server identity",
                "INSERT INTO server_identity (name, cert_pem, key_pem, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
                &[name.into(), cert_pem.into(), Arg::from(&sealed), now.into()],
            )
            .await?;
        Ok(inserted == 1)
    }

    async fn try_lease(
        &self,
        name: &str,
        owner: &str,
        now: i64,
        ttl: i64,
    ) -> Result<bool, StoreError> {
        // One statement: taken when free, expired, or already ours (then extended). ON CONFLICT
        // locks the row, so of two processes racing for an expired lease exactly one gets it.
        let taken = self
            .execute(
                "take a lease",
                "INSERT INTO leases (name, owner, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, \
                 expires_at = excluded.expires_at \
                 WHERE leases.owner = excluded.owner OR leases.expires_at <= $4",
                &[
                    name.into(),
                    owner.into(),
                    now.saturating_add(ttl).into(),
                    now.into(),
                ],
            )
            .await?;
        Ok(taken == 1)
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        self.execute(
            "release a lease",
            "DELETE FROM leases WHERE name = $1 AND owner = $2",
            &[name.into(), owner.into()],
        )
        .await
        .map(drop)
    }

    async fn set_renew_after(
        &self,
        key: &CertKey,
        at: i64,
        events: &[NewEvent],
    ) -> Result<(), StoreError> {
        let variant = key.variant();
        let names = key.names.key();
        let args = [Arg::from(&names), variant.as_ref().into(), at.into()];
        let update = (
            "UPDATE certificates SET renew_after = $3 WHERE names = $1 AND key_type = $2",
            &args[..],
        );
        self.execute_with_events("move a renewal time", update, events)
            .await
    }

    async fn reseal(&self) -> Result<u64, StoreError> {
        // Each select: rows not sealed with the current key (`$1` is its prefix), after the
        // last keys of the previous batch (`$2`, `$3`), in key order, `RESEAL_BATCH` at a time.
        let certificates = self
            .reseal_column(
                "SELECT names, key_type, key_pem FROM certificates \
                 WHERE key_pem <> '' AND substr(key_pem, 1, length($1)) <> $1 \
                 AND (names, key_type) > ($2, $3) \
                 ORDER BY names, key_type LIMIT 256",
                "UPDATE certificates SET key_pem = $1 \
                 WHERE names = $2 AND key_type = $3 AND key_pem = $4",
                cert_context,
            )
            .await?;
        let orders = self
            .reseal_column(
                "SELECT names, key_type, key_pem FROM orders WHERE key_pem IS NOT NULL \
                 AND key_pem <> '' AND substr(key_pem, 1, length($1)) <> $1 AND (names, key_type) > ($2, $3) \
                 ORDER BY names, key_type LIMIT 256",
                "UPDATE orders SET key_pem = $1 WHERE names = $2 AND key_type = $3 AND key_pem = $4",
                order_context,
            )
            .await?;
        // One-column keys are selected twice, to fit the two-key shape of `reseal_column`.
        let accounts = self
            .reseal_column(
                "SELECT directory_url, directory_url, credentials FROM acme_accounts \
                 WHERE substr(credentials, 1, length($1)) <> $1 AND directory_url > $2 \
                 AND directory_url >= $3 ORDER BY directory_url LIMIT 256",
                "UPDATE acme_accounts SET credentials = $1 WHERE directory_url = $2 \
                 AND directory_url = $3 AND credentials = $4",
                |url, _| account_context(url),
            )
            .await?;
        let identities = self
            .reseal_column(
                "SELECT name, name, key_pem FROM server_identity \
                 WHERE substr(key_pem, 1, length($1)) <> $1 AND name > $2 AND name >= $3 \
                 ORDER BY name LIMIT 256",
                "UPDATE server_identity SET key_pem = $1 WHERE name = $2 AND name = $3 \
                 AND key_pem = $4",
                |name, _| identity_context(name),
            )
            .await?;
        Ok(certificates + orders + accounts + identities)
    }

    async fn akash_pubkey(&self, address: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self
            .fetch_optional(
                "read an Akash public key",
                "SELECT pubkey FROM akash_pubkeys WHERE address = $1",
                &[address.into()],
            )
            .await?;
        row.map(|row| {
            STANDARD
                .decode(text(&row, 0)?)
                .map_err(|e| StoreError::new("decode a stored Akash public key", e))
        })
        .transpose()
    }

    async fn save_akash_pubkey(&self, address: &str, key: &[u8]) -> Result<(), StoreError> {
        let encoded = STANDARD.encode(key);
        self.execute(
            "save an Akash public key",
            "INSERT INTO akash_pubkeys (address, pubkey) VALUES ($1, $2) \
             ON CONFLICT (address) DO UPDATE SET pubkey = excluded.pubkey",
            &[address.into(), Arg::from(&encoded)],
        )
        .await
        .map(drop)
    }

    async fn record_attempt(&self, key: &CertKey, attempt: &Attempt) -> Result<(), StoreError> {
        let names = key.names.key();
        self.execute(
            "record an issuance attempt",
            "INSERT INTO attempts (names, key_type, cause, outcome, message, serial, started_at, \
             duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                Arg::from(&names),
                key.variant().as_ref().into(),
                Arg::from(&attempt.trigger),
                Arg::from(&attempt.outcome),
                Arg::OptionalText(attempt.message.as_deref()),
                Arg::OptionalText(attempt.serial.as_deref()),
                attempt.started_at.into(),
                attempt.duration_ms.into(),
            ],
        )
        .await
        .map(drop)
    }

    async fn attempts(&self, key: &CertKey, limit: u32) -> Result<Vec<Attempt>, StoreError> {
        let names = key.names.key();
        let rows = self
            .fetch_all(
                "read the issuance history",
                "SELECT cause, outcome, message, serial, started_at, duration_ms FROM attempts \
                 WHERE names = $1 AND key_type = $2 ORDER BY id DESC LIMIT $3",
                &[
                    Arg::from(&names),
                    key.variant().as_ref().into(),
                    i64::from(limit).into(),
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Attempt {
                    trigger: text(row, 0)?,
                    outcome: text(row, 1)?,
                    message: decode(row.optional_text(2))?,
                    serial: decode(row.optional_text(3))?,
                    started_at: int(row, 4)?,
                    duration_ms: int(row, 5)?,
                })
            })
            .collect()
    }

    async fn record_delivery(
        &self,
        key: &CertKey,
        principal: &str,
        serial: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        let names = key.names.key();
        self.execute(
            "record a delivery",
            "INSERT INTO deliveries (names, key_type, principal, serial, delivered_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (names, key_type, principal) DO UPDATE \
             SET serial = excluded.serial, delivered_at = excluded.delivered_at",
            &[
                Arg::from(&names),
                key.variant().as_ref().into(),
                principal.into(),
                serial.into(),
                at.into(),
            ],
        )
        .await
        .map(drop)
    }

    async fn deliveries(&self, key: &CertKey) -> Result<Vec<Delivery>, StoreError> {
        let names = key.names.key();
        let rows = self
            .fetch_all(
                "read the deliveries",
                "SELECT principal, serial, delivered_at FROM deliveries \
                 WHERE names = $1 AND key_type = $2 ORDER BY delivered_at DESC, principal",
                &[Arg::from(&names), key.variant().as_ref().into()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Delivery {
                    principal: text(row, 0)?,
                    serial: text(row, 1)?,
                    at: int(row, 2)?,
                })
            })
            .collect()
    }

    async fn inventory(
        &self,
        after: Option<&InventoryCursor>,
        limit: u32,
    ) -> Result<Vec<InventoryEntry>, StoreError> {
        let mut entries = Vec::new();
        // Identities that failed before any certificate: few, and listed first.
        if after.is_none_or(|cursor| cursor.not_after.is_none()) {
            let (names, key_type) = after.map_or(("", ""), |c| (&c.names, &c.key_type));
            let rows = self
                .fetch_all(
                    "list the failing identities",
                    concat!(
                        inventory_of_failures!(),
                        " WHERE f.certless AND (f.names, f.key_type) > ($1, $2) \
                     AND NOT EXISTS (SELECT 1 FROM certificates c \
                                     WHERE c.names = f.names AND c.key_type = f.key_type) \
                     ORDER BY f.names, f.key_type LIMIT $3"
                    ),
                    &[names.into(), key_type.into(), i64::from(limit).into()],
                )
                .await?;
            for row in &rows {
                entries.push(inventory_from_row(row)?);
            }
        }
        let left = i64::from(limit) - entries.len() as i64;
        if left <= 0 {
            return Ok(entries);
        }
        let rows = match after.and_then(|c| c.not_after.map(|at| (at, c))) {
            None => {
                self.fetch_all(
                    "list the inventory",
                    concat!(
                        inventory_of_certificates!(),
                        " ORDER BY c.not_after, c.names, c.key_type LIMIT $1"
                    ),
                    &[left.into()],
                )
                .await?
            }
            Some((not_after, cursor)) => {
                self.fetch_all(
                    "list the inventory",
                    concat!(
                        inventory_of_certificates!(),
                        " WHERE (c.not_after, c.names, c.key_type) > ($1, $2, $3) \
                     ORDER BY c.not_after, c.names, c.key_type LIMIT $4"
                    ),
                    &[
                        not_after.into(),
                        Arg::from(&cursor.names),
                        Arg::from(&cursor.key_type),
                        left.into(),
                    ],
                )
                .await?
            }
        };
        for row in &rows {
            entries.push(inventory_from_row(row)?);
        }
        Ok(entries)
    }

    async fn inventory_entry(&self, key: &CertKey) -> Result<Option<InventoryEntry>, StoreError> {
        let variant = key.variant();
        let names = key.names.key();
        let args = [Arg::from(&names), variant.as_ref().into()];
        let row = self
            .fetch_optional(
                "read an inventory entry",
                concat!(
                    inventory_of_certificates!(),
                    " WHERE c.names = $1 AND c.key_type = $2"
                ),
                &args,
            )
            .await?;
        let row = match row {
            Some(row) => Some(row),
            None => {
                self.fetch_optional(
                    "read an inventory entry",
                    concat!(
                        inventory_of_failures!(),
                        " WHERE f.names = $1 AND f.key_type = $2"
                    ),
                    &args,
                )
                .await?
            }
        };
        row.as_ref().map(inventory_from_row).transpose()
    }

    async fn revoke_certificate(
        &self,
        key: &CertKey,
        serial: &str,
        reason: &str,
        at: i64,
        replace: bool,
        events: &[NewEvent],
    ) -> Result<bool, StoreError> {
        let variant = key.variant();
        let names = key.names.key();
        // The key is replaced by a sealed empty string: secure_delete (SQLite) and VACUUM
        // (PostgreSQL) leave no copy of it, and re-sealing still reads every row as sealed.
        let destroyed = match key.key {
            KeySpec::Server(_) => self.seal("", &cert_context(&names, variant.as_ref()))?,
            KeySpec::Client(_) => String::new(),
        };
        let args = [
            Arg::from(&names),
            variant.as_ref().into(),
            serial.into(),
            at.into(),
            reason.into(),
            Arg::from(&destroyed),
            i64::from(replace).into(),
        ];
        let revoke = (
            "UPDATE certificates SET revoked_at = $4, revoked_reason = $5, key_pem = $6, \
             renew_after = CASE WHEN $7 = 1 THEN $4 ELSE renew_after END \
             WHERE names = $1 AND key_type = $2 AND serial = $3 AND revoked_at IS NULL",
            &args[..],
        );
        self.execute_guarded_with_events("revoke a certificate", revoke, events)
            .await
    }

    async fn delete_identity(&self, key: &CertKey, events: &[NewEvent]) -> Result<(), StoreError> {
        let variant = key.variant();
        let names = key.names.key();
        let identity = [Arg::from(&names), Arg::from(variant.as_ref())];
        let event_names = event_columns(events);
        let writes = event_writes(events, &event_names);
        let mut statements: Vec<(&'static str, &[Arg<'_>])> = vec![
            (
                "DELETE FROM certificates WHERE names = $1 AND key_type = $2",
                &identity,
            ),
            (
                "DELETE FROM failures WHERE names = $1 AND key_type = $2",
                &identity,
            ),
            (
                "DELETE FROM presented WHERE names = $1 AND key_type = $2",
                &identity,
            ),
            (
                "DELETE FROM orders WHERE names = $1 AND key_type = $2",
                &identity,
            ),
            (
                "DELETE FROM forced_renewals WHERE names = $1 AND key_type = $2",
                &identity,
            ),
            (
                "DELETE FROM client_csrs WHERE names = $1 AND key_type = $2",
                &identity,
            ),
            (
                "UPDATE client_csrs SET replaces = NULL WHERE names = $1 AND replaces = $2",
                &identity,
            ),
        ];
        statements.extend(writes.iter().map(|(sql, args)| (*sql, args.as_slice())));
        self.db
            .execute_all(&statements)
            .await
            .map_err(|e| StoreError::new("delete an identity", e))
    }

    fn seal_secret(&self, plaintext: &str, context: &str) -> Result<String, StoreError> {
        self.seal(plaintext, context)
    }

    fn open_secret(&self, sealed: &str, context: &str) -> Result<String, StoreError> {
        let bytes = self
            .sealer
            .open(sealed, context)
            .map_err(|e| StoreError::new("open a sealed secret", e))?;
        String::from_utf8(bytes).map_err(|e| StoreError::new("open a sealed secret", e))
    }

    async fn retired_since(&self, since: i64) -> Result<Vec<CertKey>, StoreError> {
        let rows = self
            .fetch_all(
                "list revoked and deleted identities",
                "SELECT DISTINCT names, key_type FROM attempts \
                 WHERE cause IN ('revocation', 'deletion') AND started_at >= $1",
                &[since.into()],
            )
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn stored_since(&self, since: i64) -> Result<Vec<CertKey>, StoreError> {
        let rows = self
            .fetch_all(
                "list identities with a new certificate",
                "SELECT DISTINCT names, key_type FROM events \
                 WHERE created_at >= $1 AND type IN ('certificate.issued', 'certificate.renewed')",
                &[since.into()],
            )
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn record_events(&self, events: &[NewEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let names = event_columns(events);
        let writes = event_writes(events, &names);
        let statements: Vec<_> = writes
            .iter()
            .map(|(sql, args)| (*sql, args.as_slice()))
            .collect();
        self.db
            .execute_all(&statements)
            .await
            .map_err(|e| StoreError::new("record events", e))
    }

    async fn expiring_candidates(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<ExpiryCandidate>, StoreError> {
        // One range of the renewal index (due ones only), then the rows of those few.
        let rows = self
            .fetch_all(
                "list expiring certificates",
                "SELECT names, key_type, serial, not_before, not_after, expiring_notified \
                 FROM certificates WHERE renew_after <= $1 AND not_after > $1 \
                 AND revoked_at IS NULL ORDER BY not_after LIMIT $2",
                &[now.into(), i64::from(limit).into()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ExpiryCandidate {
                    key: key_from_row(row)?,
                    serial: text(row, 2)?,
                    not_before: int(row, 3)?,
                    not_after: int(row, 4)?,
                    notified: decode(row.optional_int(5))?,
                })
            })
            .collect()
    }

    async fn note_expiring(
        &self,
        key: &CertKey,
        serial: &str,
        left: i64,
        event: &NewEvent,
    ) -> Result<bool, StoreError> {
        let variant = key.variant();
        let names = key.names.key();
        let args = [
            Arg::from(&names),
            variant.as_ref().into(),
            serial.into(),
            left.into(),
        ];
        let note = (
            "UPDATE certificates SET expiring_notified = $4 \
             WHERE names = $1 AND key_type = $2 AND serial = $3 AND revoked_at IS NULL \
             AND (expiring_notified IS NULL OR expiring_notified > $4)",
            &args[..],
        );
        self.execute_guarded_with_events(
            "note an expiring certificate",
            note,
            std::slice::from_ref(event),
        )
        .await
    }

    async fn stale_candidates(
        &self,
        renewed_before: i64,
        limit: u32,
    ) -> Result<Vec<StaleCandidate>, StoreError> {
        let rows = self
            .fetch_all(
                "list stale deliveries",
                "SELECT d.names, d.key_type, d.principal, d.serial, d.delivered_at, c.serial, \
                 c.issued_at FROM deliveries d JOIN certificates c \
                 ON c.names = d.names AND c.key_type = d.key_type \
                 WHERE d.serial <> c.serial AND d.delivered_at < c.issued_at \
                 AND c.issued_at <= $1 AND c.revoked_at IS NULL \
                 AND (d.stale_serial IS NULL OR d.stale_serial <> c.serial) \
                 ORDER BY c.issued_at LIMIT $2",
                &[renewed_before.into(), i64::from(limit).into()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(StaleCandidate {
                    key: key_from_row(row)?,
                    principal: text(row, 2)?,
                    delivered_serial: text(row, 3)?,
                    delivered_at: int(row, 4)?,
                    serial: text(row, 5)?,
                    renewed_at: int(row, 6)?,
                })
            })
            .collect()
    }

    async fn note_stale(
        &self,
        key: &CertKey,
        principal: &str,
        serial: &str,
        event: &NewEvent,
    ) -> Result<bool, StoreError> {
        let variant = key.variant();
        let names = key.names.key();
        let args = [
            Arg::from(&names),
            variant.as_ref().into(),
            principal.into(),
            serial.into(),
        ];
        let note = (
            "UPDATE deliveries SET stale_serial = $4 \
             WHERE names = $1 AND key_type = $2 AND principal = $3 AND serial <> $4 \
             AND (stale_serial IS NULL OR stale_serial <> $4)",
            &args[..],
        );
        self.execute_guarded_with_events("note a stale delivery", note, std::slice::from_ref(event))
            .await
    }

    async fn claim_notifications(
        &self,
        claimer: &str,
        now: i64,
        until: i64,
        limit: u32,
    ) -> Result<Vec<PendingNotification>, StoreError> {
        let claimed = self
            .execute(
                "claim notifications",
                "UPDATE notifications SET claimed_by = $1, claimed_until = $2 \
                 WHERE state = 'pending' AND next_attempt <= $3 \
                 AND (claimed_until IS NULL OR claimed_until < $3) \
                 AND (event_seq, channel) IN ( \
                   SELECT n.event_seq, n.channel FROM notifications n \
                   WHERE n.state = 'pending' AND n.next_attempt <= $3 \
                   AND (n.claimed_until IS NULL OR n.claimed_until < $3) \
                   AND NOT EXISTS (SELECT 1 FROM notifications p WHERE p.state = 'pending' \
                     AND p.channel = n.channel AND p.names = n.names \
                     AND p.key_type = n.key_type AND p.event_seq < n.event_seq) \
                   ORDER BY n.next_attempt LIMIT $4)",
                &[
                    claimer.into(),
                    until.into(),
                    now.into(),
                    i64::from(limit).into(),
                ],
            )
            .await?;
        if claimed == 0 {
            return Ok(Vec::new());
        }
        let rows = self
            .fetch_all(
                "read claimed notifications",
                "SELECT n.event_seq, n.channel, n.attempts, e.id, e.type, e.body, e.created_at \
                 FROM notifications n JOIN events e ON e.seq = n.event_seq \
                 WHERE n.state = 'pending' AND n.next_attempt <= $2 AND n.claimed_by = $1 \
                 ORDER BY n.event_seq",
                &[claimer.into(), now.into()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(PendingNotification {
                    seq: int(row, 0)?,
                    channel: text(row, 1)?,
                    attempts: u32::try_from(int(row, 2)?).unwrap_or(u32::MAX),
                    id: text(row, 3)?,
                    kind: text(row, 4)?,
                    body: text(row, 5)?,
                    at: int(row, 6)?,
                })
            })
            .collect()
    }

    async fn finish_notification(
        &self,
        notification: &PendingNotification,
        claimer: &str,
        outcome: NotificationOutcome,
        attempt: &NotificationAttempt,
    ) -> Result<(), StoreError> {
        let (next_attempt, done_at) = match outcome {
            NotificationOutcome::Retry(at) => (at, None),
            NotificationOutcome::Delivered | NotificationOutcome::GaveUp => {
                (attempt.at, Some(attempt.at))
            }
        };
        let last_error = (attempt.outcome != "delivered").then_some(attempt.message.as_str());
        let update = [
            Arg::from(notification.seq),
            Arg::from(&notification.channel),
            outcome.state().into(),
            next_attempt.into(),
            Arg::OptionalText(last_error),
            Arg::OptionalInt(done_at),
            claimer.into(),
        ];
        let record = [
            Arg::from(notification.seq),
            Arg::from(&notification.channel),
            attempt.at.into(),
            Arg::from(&attempt.outcome),
            Arg::from(&attempt.message),
            attempt.duration_ms.into(),
        ];
        self.db
            .execute_guarded(&[
                (
                    "UPDATE notifications SET state = $3, attempts = attempts + 1, \
                     next_attempt = $4, last_error = COALESCE($5, last_error), done_at = $6, \
                     claimed_by = NULL, claimed_until = NULL \
                     WHERE event_seq = $1 AND channel = $2 AND claimed_by = $7",
                    &update,
                ),
                (
                    "INSERT INTO notification_attempts (event_seq, channel, at, outcome, \
                     message, duration_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                    &record,
                ),
            ])
            .await
            .map(drop)
            .map_err(|e| StoreError::new("record a notification attempt", e))
    }

    async fn events(&self, key: &CertKey, limit: u32) -> Result<Vec<EventRecord>, StoreError> {
        let names = key.names.key();
        let rows = self
            .fetch_all(
                "read events",
                "SELECT seq, id, type, names, key_type, created_at FROM events \
                 WHERE names = $1 AND key_type = $2 ORDER BY seq DESC LIMIT $3",
                &[
                    Arg::from(&names),
                    key.variant().as_ref().into(),
                    i64::from(limit).into(),
                ],
            )
            .await?;
        let (mut records, seqs) = event_records(&rows)?;
        drop(rows);
        self.attach_notifications(&mut records, &seqs, Some((&names, key.variant().as_ref())))
            .await?;
        Ok(records)
    }

    async fn recent_events(
        &self,
        limit: u32,
        troubled: bool,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let rows = self
            .fetch_all(
                "read recent events",
                "SELECT seq, id, type, names, key_type, created_at FROM events e \
                 WHERE $2 = 0 OR EXISTS (SELECT 1 FROM notifications n \
                   WHERE n.event_seq = e.seq AND (n.state = 'failed' \
                   OR (n.state = 'pending' AND n.attempts > 0))) \
                 ORDER BY seq DESC LIMIT $1",
                &[i64::from(limit).into(), i64::from(troubled).into()],
            )
            .await?;
        let (mut records, seqs) = event_records(&rows)?;
        drop(rows);
        self.attach_notifications(&mut records, &seqs, None).await?;
        Ok(records)
    }

    async fn prune_events(&self, before: i64) -> Result<u64, StoreError> {
        let count = self
            .fetch_optional(
                "count old events",
                "SELECT COUNT(*) FROM events WHERE created_at < $1 AND NOT EXISTS \
                 (SELECT 1 FROM notifications n WHERE n.event_seq = events.seq \
                  AND n.state = 'pending')",
                &[before.into()],
            )
            .await?
            .map_or(Ok(0), |row| int(&row, 0))?;
        if count == 0 {
            return Ok(0);
        }
        let args = [Arg::from(before)];
        self.db
            .execute_all(&[
                (
                    "DELETE FROM notification_attempts WHERE event_seq IN (SELECT seq FROM events \
                     WHERE created_at < $1 AND NOT EXISTS (SELECT 1 FROM notifications n \
                     WHERE n.event_seq = events.seq AND n.state = 'pending'))",
                    &args,
                ),
                (
                    "DELETE FROM notifications WHERE event_seq IN (SELECT seq FROM events \
                     WHERE created_at < $1) AND NOT EXISTS (SELECT 1 FROM notifications p \
                     WHERE p.event_seq = notifications.event_seq AND p.state = 'pending')",
                    &args,
                ),
                (
                    "DELETE FROM events WHERE created_at < $1 AND NOT EXISTS \
                     (SELECT 1 FROM notifications n WHERE n.event_seq = events.seq)",
                    &args,
                ),
            ])
            .await
            .map_err(|e| StoreError::new("prune events", e))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn ari_checks_due(&self, now: i64, limit: u32) -> Result<Vec<AriCandidate>, StoreError> {
        let rows = self
            .fetch_all(
                "list renewal windows to ask again",
                "SELECT names, key_type, serial, cert_pem, not_before, not_after, renew_after, ca \
                 FROM certificates WHERE ari_next_check <= $1 AND revoked_at IS NULL \
                 AND renew_after > $1 ORDER BY ari_next_check LIMIT $2",
                &[now.into(), i64::from(limit).into()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AriCandidate {
                    key: key_from_row(row)?,
                    serial: text(row, 2)?,
                    cert_pem: text(row, 3)?,
                    not_before: int(row, 4)?,
                    not_after: int(row, 5)?,
                    renew_after: int(row, 6)?,
                    ca: decode(row.optional_text(7))?,
                })
            })
            .collect()
    }

    async fn set_ari_next_check(
        &self,
        key: &CertKey,
        serial: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        let names = key.names.key();
        self.execute(
            "set when to ask for the renewal window",
            "UPDATE certificates SET ari_next_check = $4 \
             WHERE names = $1 AND key_type = $2 AND serial = $3",
            &[
                Arg::from(&names),
                key.variant().as_ref().into(),
                serial.into(),
                at.into(),
            ],
        )
        .await
        .map(drop)
    }

    async fn record_ca_usage(
        &self,
        directory: &str,
        at: i64,
        renewal: bool,
        counted: &[(UsageDimension, &str)],
    ) -> Result<(), StoreError> {
        const INSERT: &str = "INSERT INTO ca_usage (directory, dimension, subject, renewal, at) \
                              VALUES ($1, $2, $3, $4, $5)";
        let args: Vec<[Arg<'_>; 5]> = counted
            .iter()
            .map(|(dimension, subject)| {
                [
                    directory.into(),
                    dimension.as_str().into(),
                    (*subject).into(),
                    i64::from(renewal).into(),
                    at.into(),
                ]
            })
            .collect();
        let statements: Vec<(&'static str, &[Arg<'_>])> =
            args.iter().map(|row| (INSERT, &row[..])).collect();
        self.db
            .execute_all(&statements)
            .await
            .map_err(|e| StoreError::new("record an order for the CA limits", e))
    }

    async fn ca_usage(
        &self,
        directory: &str,
        dimension: UsageDimension,
        subject: &str,
        since: i64,
    ) -> Result<Usage, StoreError> {
        // The literals keep SUM an integer on PostgreSQL (SUM of a BIGINT column is NUMERIC).
        let row = self
            .fetch_optional(
                "count orders for the CA limits",
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN renewal = 1 THEN 1 ELSE 0 END), 0), \
                        MIN(at), MIN(CASE WHEN renewal = 0 THEN at END) \
                 FROM ca_usage \
                 WHERE dimension = $1 AND subject = $2 AND directory = $3 AND at > $4",
                &[
                    dimension.as_str().into(),
                    subject.into(),
                    directory.into(),
                    since.into(),
                ],
            )
            .await?;
        let Some(row) = row else {
            return Ok(Usage::default());
        };
        let count = |value: i64| u64::try_from(value).unwrap_or(0);
        Ok(Usage {
            total: count(int(&row, 0)?),
            renewals: count(int(&row, 1)?),
            oldest: decode(row.optional_int(2))?,
            oldest_new: decode(row.optional_int(3))?,
        })
    }

    async fn prune_ca_usage(&self, before: i64) -> Result<u64, StoreError> {
        self.execute(
            "prune the CA limits' counts",
            "DELETE FROM ca_usage WHERE at < $1",
            &[before.into()],
        )
        .await
    }

    async fn pending_notifications(&self) -> Result<u64, StoreError> {
        let row = self
            .fetch_optional(
                "count pending notifications",
                "SELECT COUNT(*) FROM notifications WHERE state = 'pending'",
                &[],
            )
            .await?;
        Ok(row
            .map_or(Ok(0), |row| int(&row, 0))
            .map(|n| u64::try_from(n).unwrap_or(0))?)
    }
}

/// Event records (without their notifications) and their outbox places, from rows of `seq,
/// id, type, names, key_type, created_at`.
fn event_records(rows: &[impl Row]) -> Result<(Vec<EventRecord>, Vec<i64>), StoreError> {
    let mut records = Vec::with_capacity(rows.len());
    let mut seqs = Vec::with_capacity(rows.len());
    for row in rows {
        seqs.push(int(row, 0)?);
        records.push(EventRecord {
            id: text(row, 1)?,
            kind: text(row, 2)?,
            key: identity(&text(row, 3)?, &text(row, 4)?)?,
            at: int(row, 5)?,
            notifications: Vec::new(),
        });
    }
    Ok((records, seqs))
}

/// The identity columns (names, key_type) of each event, for [`event_writes`].
fn event_columns(events: &[NewEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| (e.key.names.key(), e.key.variant().into_owned()))
        .collect()
}

/// The statements that write `events` (`columns[i]` is `events[i]`'s identity columns, from
/// [`event_columns`]): each event once (an id already written is skipped), then one pending
/// notification per channel, due at the event's time.
fn event_writes<'a>(
    events: &'a [NewEvent],
    columns: &'a [(String, String)],
) -> Vec<(&'static str, Vec<Arg<'a>>)> {
    let mut writes = Vec::new();
    for (event, (names, variant)) in events.iter().zip(columns) {
        writes.push((
            "INSERT INTO events (id, type, names, key_type, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            vec![
                Arg::from(&event.id),
                event.kind.as_str().into(),
                Arg::from(names),
                Arg::from(variant),
                Arg::from(&event.body),
                event.at.into(),
            ],
        ));
        for channel in &event.channels {
            writes.push((
                "INSERT INTO notifications (event_seq, channel, names, key_type, state, \
                 attempts, next_attempt) SELECT seq, $2, names, key_type, 'pending', 0, \
                 created_at FROM events WHERE id = $1 \
                 ON CONFLICT (event_seq, channel) DO NOTHING",
                vec![Arg::from(&event.id), Arg::from(channel)],
            ));
        }
    }
    writes
}

/// An inventory entry from a row of the inventory's columns (see `inventory`).
fn inventory_from_row(row: &impl Row) -> Result<InventoryEntry, StoreError> {
    let failure = match decode(row.optional_int(7))? {
        None => None,
        Some(count) => Some(Failure {
            count: u32::try_from(count).unwrap_or(u32::MAX),
            next_attempt: decode(row.optional_int(8))?.unwrap_or_default(),
            kind: FailureKind::parse(&decode(row.optional_text(9))?.unwrap_or_default()),
            message: decode(row.optional_text(10))?.unwrap_or_default(),
        }),
    };
    let revoked = match (
        decode(row.optional_int(13))?,
        decode(row.optional_text(14))?,
    ) {
        (Some(at), reason) => Some((at, reason.unwrap_or_else(|| "unspecified".to_owned()))),
        (None, _) => None,
    };
    let cert = match decode(row.optional_text(2))? {
        None => None,
        Some(serial) => Some(CertSummary {
            serial,
            not_before: int(row, 3)?,
            not_after: int(row, 4)?,
            renew_after: int(row, 5)?,
            issued_at: int(row, 6)?,
            ca: decode(row.optional_text(15))?,
        }),
    };
    Ok(InventoryEntry {
        key: key_from_row(row)?,
        cert,
        failure,
        failed_at: decode(row.optional_int(11))?,
        ordering: int(row, 12)? > 0,
        revoked,
    })
}

fn is_legacy_plaintext(stored: &str) -> bool {
    stored.starts_with("-----BEGIN") || stored.starts_with('{')
}

fn cert_context(names: &str, key_type: &str) -> String {
    format!("certificate|{names}|{key_type}")
}

fn order_context(names: &str, key_type: &str) -> String {
    format!("order|{names}|{key_type}")
}

fn identity_context(name: &str) -> String {
    format!("server-identity|{name}")
}

fn account_context(directory_url: &str) -> String {
    format!("account|{directory_url}")
}

fn decode<T>(value: Result<T, sqlx::Error>) -> Result<T, StoreError> {
    value.map_err(|e| StoreError::new("decode a row", e))
}

fn text(row: &impl Row, column: usize) -> Result<String, StoreError> {
    decode(row.text(column))
}

fn int(row: &impl Row, column: usize) -> Result<i64, StoreError> {
    decode(row.int(column))
}

fn names(stored: &str) -> Result<NameSet, StoreError> {
    NameSet::parse(&stored.split(',').collect::<Vec<_>>())
        .map_err(|e| StoreError::new("decode stored names", e))
}

fn key_spec(stored: &str) -> Result<KeySpec, StoreError> {
    KeySpec::parse(stored).ok_or_else(|| {
        StoreError::new(
            "decode stored key type",
            format!("unknown key type {stored:?}"),
        )
    })
}

/// An identity from its stored columns `names, key_type`.
fn identity(names_column: &str, variant: &str) -> Result<CertKey, StoreError> {
    let (key, profile) = CertKey::parse_variant(variant).ok_or_else(|| {
        StoreError::new(
            "decode stored key type",
            format!("unknown key type {variant:?}"),
        )
    })?;
    Ok(CertKey {
        names: names(names_column)?,
        key,
        profile,
    })
}

/// An identity from a row whose first two columns are `names, key_type`.
fn key_from_row(row: &impl Row) -> Result<CertKey, StoreError> {
    identity(&text(row, 0)?, &text(row, 1)?)
}

/// A certificate from a row of every `certificates` column in table order, its key still
/// sealed.
fn cert_from_row(row: &impl Row) -> Result<StoredCert, StoreError> {
    let identity = identity(&text(row, 0)?, &text(row, 1)?)?;
    Ok(StoredCert {
        names: identity.names,
        key: identity.key,
        profile: identity.profile,
        cert_pem: text(row, 2)?,
        key_pem: Some(text(row, 3)?),
        issuer_pem: text(row, 4)?,
        serial: text(row, 5)?,
        not_before: int(row, 6)?,
        not_after: int(row, 7)?,
        renew_after: int(row, 8)?,
        issued_at: int(row, 9)?,
        ca: decode(row.optional_text(10))?,
    })
}
