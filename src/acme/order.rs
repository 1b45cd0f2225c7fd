//! The order flow (RFC 8555 section 7.4) as a resumable state machine.
//!
//! Every step is persisted before it is acted on: the intent before the CA creates the order,
//! the order URL as soon as the CA answers, each challenge before it is made visible, and the
//! certificate's private key before finalize. A process killed at any point resumes the same
//! order at the next start (by its URL), so a certificate the CA issued is downloaded and paired
//! with its stored key instead of being ordered twice. A kill between the CA creating an order
//! and its URL being saved can cost an abandoned (never finalized) order, never a certificate.

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeStatus, ChallengeType, Identifier, NewOrder, Order,
    OrderStatus,
};

use super::csr::ClientCsr;
use super::solver::{ChallengeChoice, Presented, Solver};
use super::{
    IssueError, Issuer, ari, cert, challenge_name, classify, http, poll_policy, validation_error,
};
use crate::domain::{CertKey, KeySpec};
use crate::store::{NewEvent, PresentedRecord, StoredCert};
use crate::util::clock;
use crate::util::failpoint::hit;

/// Builds the events that report a certificate just stored, given the serial it replaces (none
/// for an identity's first): written by the store in the certificate's own transaction.
pub type Announce<'a> = &'a (dyn Fn(&StoredCert, Option<&str>) -> Vec<NewEvent> + Send + Sync);

/// How long cleaning up one presented challenge may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

impl Issuer {
    /// Runs (or resumes) the order for `key` and stores the certificate, validating each name
    /// as `choice` asks (see [`Issuer::solver_for`]). Presented challenges are cleaned up
    /// whatever the outcome.
    pub async fn issue(
        &self,
        key: &CertKey,
        choice: ChallengeChoice,
        announce: Announce<'_>,
    ) -> Result<StoredCert, IssueError> {
        let (result, retry_after) = http::with_retry_after(async {
            let _slot = self.in_flight.acquire().await;
            let account = self.account().await?;
            // DNS-PERSIST-01 records are checked before anything is asked of the CA.
            self.check_persist(key, choice).await?;
            let outcome = self.run(&account, key, choice, announce).await;
            self.cleanup(key).await;
            if self.order_is_spent(key, &outcome).await {
                self.store.finish_order(key).await?;
            }
            outcome
        })
        .await;
        match result {
            Err(IssueError::RateLimited {
                detail,
                retry_after: None,
            }) => Err(IssueError::RateLimited {
                detail,
                retry_after,
            }),
            other => other,
        }
    }

    /// Whether the order record can go. After a failure, an order that was finalized is kept
    /// (the CA may still issue: the next attempt resumes it rather than ordering again), unless
    /// the CA said the order itself is dead.
    async fn order_is_spent(
        &self,
        key: &CertKey,
        outcome: &Result<StoredCert, IssueError>,
    ) -> bool {
        match outcome {
            Ok(_) | Err(IssueError::Rejected(_) | IssueError::ValidationFailed(_)) => true,
            Err(_) => !matches!(self.store.order(key).await, Ok(Some(record)) if record.finalizing),
        }
    }

    /// The state machine: resume the stored order or create one, then drive it to a stored
    /// certificate.
    async fn run(
        &self,
        account: &Account,
        key: &CertKey,
        choice: ChallengeChoice,
        announce: Announce<'_>,
    ) -> Result<StoredCert, IssueError> {
        let mut order = self.resume_or_create(account, key).await?;
        loop {
            match order.state().status {
                OrderStatus::Pending => {
                    self.present_all(&mut order, key, choice).await?;
                    match order.poll_ready(&poll_policy()).await {
                        Ok(OrderStatus::Ready) => hit("order-ready").await,
                        Ok(_) | Err(instant_acme::Error::Api(_)) => {
                            let failed = validation_error(&mut order).await;
                            return Err(failed.unwrap_or_else(|| {
                                IssueError::ValidationFailed(
                                    "the order became invalid without a challenge error".to_owned(),
                                )
                            }));
                        }
                        Err(err) => return Err(classify("wait for validation", err)),
                    }
                }
                OrderStatus::Ready => self.finalize(&mut order, key).await?,
                OrderStatus::Processing => {
                    let pem = order
                        .poll_certificate(&poll_policy())
                        .await
                        .map_err(|e| classify("wait for the certificate", e))?;
                    return self.store_certificate(key, &pem, announce).await;
                }
                OrderStatus::Valid => {
                    let pem = order
                        .certificate()
                        .await
                        .map_err(|e| classify("download the certificate", e))?
                        .ok_or_else(|| IssueError::Ca("the CA sent no certificate".to_owned()))?;
                    return self.store_certificate(key, &pem, announce).await;
                }
                OrderStatus::Invalid => {
                    return Err(validation_error(&mut order).await.unwrap_or_else(|| {
                        IssueError::Ca("the CA marked the order invalid".to_owned())
                    }));
                }
            }
        }
    }

    /// The order recorded for `key` if the CA still knows it, else a new one.
    async fn resume_or_create(
        &self,
        account: &Account,
        key: &CertKey,
    ) -> Result<Order, IssueError> {
        if let Some(url) = self.store.order(key).await?.and_then(|record| record.url) {
            match account.order(url.clone()).await {
                Ok(order) => {
                    tracing::info!(names = %key.names, order = %url, "resuming the ACME order");
                    return Ok(order);
                }
                Err(err) => {
                    tracing::warn!(names = %key.names, error = %err, "the recorded order is gone; ordering anew");
                    self.cleanup(key).await;
                    self.store.finish_order(key).await?;
                }
            }
        }
        self.store.begin_order(key, clock::now()).await?;
        hit("order-recorded").await;
        let identifiers: Vec<Identifier> = key
            .names
            .names()
            .iter()
            .map(|name| match name.ip() {
                Some(ip) => Identifier::Ip(ip),
                None => Identifier::Dns(name.to_string()),
            })
            .collect();
        // The identity's profile, else `acme.profile`, else the CA's default. A fallback CA
        // uses the identity's profile only when it offers one of that name, else its own
        // `acme.fallback.profile`: profiles are each CA's own.
        let profile = match &key.profile {
            Some(asked)
                if !self.fallback || account.profiles().any(|p| p.name == asked.as_str()) =>
            {
                Some(asked)
            }
            _ => self.profile.as_ref(),
        }
        .map(crate::domain::Profile::as_str);
        let build = || match profile {
            Some(profile) => NewOrder::new(&identifiers).profile(profile),
            None => NewOrder::new(&identifiers),
        };
        // A renewal names the certificate it replaces (RFC 9773 section 5), when the CA has ARI.
        let replaces = match self.store.certificate(key).await? {
            Some(old)
                if self
                    .renewal_window(account, &old.cert_pem)
                    .await
                    .ok()
                    .flatten()
                    .is_some() =>
            {
                ari::identifier(&old.cert_pem)
            }
            _ => None,
        };
        let created = match replaces {
            Some(id) => match account.new_order(&build().replaces(id)).await {
                Ok(order) => Ok(order),
                // An earlier order replaces it already (one a crash abandoned before its URL
                // was saved, or another client's with this account: RFC 9773 section 5): the
                // renewal is ordered without `replaces`, which only exempts it from limits.
                Err(instant_acme::Error::Api(problem))
                    if super::problem_kind(&problem) == Some("alreadyReplaced") =>
                {
                    tracing::info!(names = %key.names, detail = %super::problem_text(&problem), "the certificate already has a replacement order; ordering without replaces");
                    account.new_order(&build()).await
                }
                // A CA that refuses `replaces` for another reason (Pebble 2.6 cannot always find
                // the order behind a certificate, say) still gets the renewal ordered.
                Err(err) => {
                    tracing::warn!(names = %key.names, error = %err, "ordering without replaces");
                    account.new_order(&build()).await
                }
            },
            None => account.new_order(&build()).await,
        };
        let order = created.map_err(|e| classify("new order", e))?;
        self.orders
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        hit("order-created").await;
        self.store.set_order_url(key, order.url()).await?;
        hit("order-url-saved").await;
        tracing::info!(names = %key.names, key_type = %key.key, order = order.url(), "ACME order created");
        Ok(order)
    }

    /// Presents a challenge for every pending authorization, each recorded before it is made
    /// visible; waits until the DNS-01 records can be seen; then tells the CA to validate the
    /// challenges it has not started on (RFC 8555 section 7.5.1).
    async fn present_all(
        &self,
        order: &mut Order,
        key: &CertKey,
        choice: ChallengeChoice,
    ) -> Result<(), IssueError> {
        let mut to_validate = Vec::new();
        let mut dns_presented = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|e| classify("fetch an authorization", e))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                // Reused from an earlier order (RFC 8555 section 7.1.4), or validated before
                // a restart: nothing to do.
                AuthorizationStatus::Valid => continue,
                status => {
                    return Err(IssueError::Ca(format!(
                        "authorization for {} is {status:?}",
                        authz.identifier()
                    )));
                }
            }
            let name = authz.identifier().to_string();
            let solver = self
                .solver_for(&name, choice)
                .map_err(|e| IssueError::Dns(format!("dns: {e}")))?;
            let challenge_type = solver.challenge_type();
            let challenge = authz.challenge(challenge_type.clone()).ok_or_else(|| {
                IssueError::Rejected(format!(
                    "the CA offers no {} challenge for {name}",
                    challenge_name(&challenge_type)
                ))
            })?;
            let key_authorization = challenge.key_authorization();
            let presented = self
                .present_one(
                    key,
                    solver.as_ref(),
                    &name,
                    &challenge.token,
                    key_authorization.as_str(),
                )
                .await?;
            if challenge.status == ChallengeStatus::Pending {
                to_validate.push((name, challenge_type.clone()));
            }
            // DNS-ACCOUNT-01 records are DNS-01's under another name: the same wait.
            if challenge_type == ChallengeType::Dns01
                || challenge_type == super::dns01::account_challenge_type()
            {
                dns_presented.push(presented);
            }
        }
        if let Some(dns) = self.dns01.as_ref().filter(|_| !dns_presented.is_empty()) {
            dns.wait_visible(&dns_presented).await?;
        }
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|e| classify("fetch an authorization", e))?;
            let name = authz.identifier().to_string();
            let Some((_, kind)) = to_validate.iter().find(|(n, _)| *n == name) else {
                continue;
            };
            if let Some(mut challenge) = authz.challenge(kind.clone()) {
                challenge
                    .set_ready()
                    .await
                    .map_err(|e| classify("start validation", e))?;
                hit("challenge-ready").await;
            }
        }
        Ok(())
    }

    /// Records what `solver` will present for `name` and presents it; when the final handle
    /// differs from the prepared one (a DNS record id), it replaces the prepared record.
    async fn present_one(
        &self,
        key: &CertKey,
        solver: &dyn Solver,
        name: &str,
        token: &str,
        key_authorization: &str,
    ) -> Result<Presented, IssueError> {
        let challenge_type = challenge_name(&solver.challenge_type());
        let prepared = solver.prepare(name, token, key_authorization).await?;
        let record = |handle: &str| PresentedRecord {
            challenge_type: challenge_type.clone(),
            name: name.to_owned(),
            handle: handle.to_owned(),
        };
        self.store
            .add_presented(key, &record(&prepared.handle))
            .await?;
        hit("challenge-recorded").await;
        let presented = solver.present(&prepared, token, key_authorization).await?;
        if presented.handle != prepared.handle {
            self.store
                .add_presented(key, &record(&presented.handle))
                .await?;
            self.store.remove_presented(key, &prepared.handle).await?;
        }
        hit("challenge-presented").await;
        Ok(presented)
    }

    /// Finalizes with the order's key: for a key certfleet holds, the stored one when resuming,
    /// else a fresh one that is stored (sealed) before the CSR reaches the CA; for a client's
    /// key, the client's CSR, with the fact recorded first.
    async fn finalize(&self, order: &mut Order, key: &CertKey) -> Result<(), IssueError> {
        let csr_der = match key.key {
            KeySpec::Server(key_type) => {
                let key_pem = match self
                    .store
                    .order(key)
                    .await?
                    .and_then(|record| record.key_pem)
                {
                    Some(pem) => pem,
                    None => {
                        let pem = cert::new_key(key_type).map_err(IssueError::internal)?;
                        self.store.set_order_key(key, Some(&pem)).await?;
                        hit("order-key-saved").await;
                        pem
                    }
                };
                cert::csr(&key.names, &key_pem)
                    .map_err(IssueError::internal)?
                    .csr_der
            }
            KeySpec::Client(_) => {
                let csr = self.client_csr(key).await?;
                self.store.set_order_key(key, None).await?;
                hit("order-key-saved").await;
                csr.der
            }
        };
        order
            .finalize_csr(&csr_der)
            .await
            .map_err(|e| classify("finalize", e))?;
        hit("finalize-sent").await;
        Ok(())
    }

    /// The CSR kept for a client's key, checked again: it must still ask for exactly the
    /// identity's names with the identity's key.
    async fn client_csr(&self, key: &CertKey) -> Result<ClientCsr, IssueError> {
        let record = self.store.client_csr(key).await?.ok_or_else(|| {
            IssueError::Internal(format!("no CSR is kept for {key}; send it again"))
        })?;
        let csr = super::csr::parse(&record.csr_pem)
            .map_err(|e| IssueError::Internal(format!("the CSR kept for {key}: {e}")))?;
        if csr.names != key.names || csr.key_spec() != key.key {
            return Err(IssueError::Internal(format!(
                "the CSR kept for {key} asks for another identity"
            )));
        }
        Ok(csr)
    }

    /// Checks the chain against the order's key and names and stores it (with the key, when
    /// certfleet holds it).
    async fn store_certificate(
        &self,
        key: &CertKey,
        pem: &str,
        announce: Announce<'_>,
    ) -> Result<StoredCert, IssueError> {
        hit("certificate-downloaded").await;
        let (key_pem, spki_der) = match key.key {
            KeySpec::Server(_) => {
                let key_pem = self
                    .store
                    .order(key)
                    .await?
                    .and_then(|record| record.key_pem)
                    .ok_or_else(|| {
                        IssueError::Internal("the order's private key is missing".to_owned())
                    })?;
                let material = cert::csr(&key.names, &key_pem).map_err(IssueError::internal)?;
                (Some(key_pem), material.spki_der)
            }
            KeySpec::Client(_) => (None, self.client_csr(key).await?.spki_der),
        };
        let chain = cert::check_chain(pem, &key.names, &spki_der)
            .map_err(|e| IssueError::Ca(e.to_string()))?;
        let renew_after = match self.ari_renewal_time(&chain.full_pem).await {
            Some(at) => at,
            None => crate::schedule::renewal_time(
                chain.not_before,
                chain.not_after,
                crate::schedule::jitter(),
            ),
        };
        let cert = StoredCert {
            names: key.names.clone(),
            key: key.key,
            profile: key.profile.clone(),
            cert_pem: chain.full_pem,
            key_pem,
            issuer_pem: chain.issuer_pem,
            serial: chain.serial,
            not_before: chain.not_before,
            not_after: chain.not_after,
            renew_after,
            issued_at: clock::now(),
            ca: Some(self.directory_url.clone()),
        };
        // The serial this one replaces, revoked or not, for the event that reports it.
        let previous = self
            .store
            .inventory_entry(key)
            .await?
            .and_then(|entry| entry.cert)
            .map(|summary| summary.serial);
        let events = announce(&cert, previous.as_deref());
        self.store.save_certificate(&cert, &events).await?;
        hit("certificate-saved").await;
        tracing::info!(names = %key.names, serial = %cert.serial, not_after = cert.not_after, "certificate issued");
        Ok(cert)
    }

    /// Removes every challenge response recorded for `key`, each bounded in time; a failure is
    /// logged and its record kept for the next attempt.
    pub(super) async fn cleanup(&self, key: &CertKey) {
        let records = match self.store.presented(key).await {
            Ok(records) => records,
            Err(err) => {
                tracing::warn!(error = %err, "cannot list challenges to clean up");
                return;
            }
        };
        for record in records {
            let presented = Presented {
                name: record.name.clone(),
                handle: record.handle.clone(),
            };
            let solver: Arc<dyn Solver> = match (record.challenge_type.as_str(), &self.dns01) {
                ("dns-01" | "dns-account-01", Some(dns)) => dns.clone(),
                // Nothing was written for DNS-PERSIST-01.
                (super::dns_persist01::CHALLENGE, _) => {
                    let _ = self.store.remove_presented(key, &record.handle).await;
                    continue;
                }
                ("dns-01" | "dns-account-01", None) => {
                    tracing::warn!(name = %record.name, handle = %record.handle, "no challenges.dns01 is configured to remove this DNS-01 record; delete it by hand");
                    continue;
                }
                // Both keep their responses in the store only: removing them needs no listener.
                ("tls-alpn-01", _) => {
                    Arc::new(super::tls_alpn01::TlsAlpn01Solver::new(self.store.clone()))
                }
                _ => Arc::new(super::http01::Http01Solver::new(self.store.clone())),
            };
            match tokio::time::timeout(CLEANUP_TIMEOUT, solver.cleanup(&presented)).await {
                Ok(Ok(())) => {
                    if let Err(err) = self.store.remove_presented(key, &record.handle).await {
                        tracing::warn!(error = %err, "cannot forget a cleaned-up challenge");
                    }
                }
                Ok(Err(err)) => tracing::warn!(error = %err, "challenge cleanup failed"),
                Err(_) => tracing::warn!(name = %record.name, "challenge cleanup timed out"),
            }
        }
        hit("cleanup-done").await;
    }
}
