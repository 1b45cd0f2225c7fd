//! ACME (RFC 8555) through instant-acme: the account, and the one order flow that both first
//! issuance and renewal use.
//!
//! [`Issuer::issue`] runs a whole order for one identity: new order, present every challenge,
//! wait for validation, finalize with a fresh key, download and check the chain, store it, and
//! always clean up the presented challenges.

pub mod ari;
pub mod cert;
pub mod csr;
pub mod dns01;
pub mod dns_persist01;
pub mod http;
pub mod http01;
mod order;
pub use order::Announce;
pub mod solver;
pub mod tls_alpn01;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use instant_acme::{
    Account, AccountCredentials, ChallengeType, ExternalAccountKey, NewAccount, Order, Problem,
    RetryPolicy,
};
use thiserror::Error;
use tokio::sync::Mutex;

use crate::config::AcmeConfig;
use crate::domain::FailureKind;
use crate::store::{Store, StoreError};
use solver::Solver;

/// How one issuance failed; each variant maps to one API error (see `error.rs`).
#[derive(Debug, Clone, Error)]
pub enum IssueError {
    /// The CA refuses to issue for a name (RFC 8555 `rejectedIdentifier`, `caa`, ...).
    #[error("the CA refused the name: {0}")]
    Rejected(String),
    /// A challenge failed validation: which name, and what the CA saw.
    #[error("validation failed: {0}")]
    ValidationFailed(String),
    /// The CA's rate limit, with its `Retry-After` when it sent one.
    #[error("the CA's rate limit: {detail}")]
    RateLimited {
        /// The CA's explanation.
        detail: String,
        /// How long the CA asks to wait.
        retry_after: Option<Duration>,
    },
    /// The CA failed, was unreachable, or answered something unusable.
    #[error("{0}")]
    Ca(String),
    /// A DNS provider failed, or a DNS-01 record never became visible: the provider, the step
    /// and the provider's own message (`cloudflare: create TXT record in zone ...: 403 ...`).
    #[error("{0}")]
    Dns(String),
    /// certfleet itself failed (storage, key generation).
    #[error("{0}")]
    Internal(String),
    /// A DNS-PERSIST-01 record is missing, does not validate the name for this account, or is
    /// past its `persistUntil`: found before any order, the message names the record to publish.
    #[error("{message}")]
    DnsPersist {
        /// What is wrong with the record.
        problem: dns_persist01::RecordProblem,
        /// Which name, which record, what was seen and what to publish.
        message: String,
    },
    /// A CA limit certfleet keeps to (`limits`, a credential's `quota`) would be exceeded:
    /// refused before the CA is asked (`service/limits.rs`).
    #[error("{message}")]
    Limited {
        /// The limit's config name (`perRegisteredDomain`, ..., `quota`), a metric label.
        limit: &'static str,
        /// The limit, the count and the window.
        message: String,
        /// How long until the oldest counted order leaves the window.
        retry_after: Duration,
    },
    /// An earlier failure is backing off: no order until `retry_after` has passed.
    #[error("{message}")]
    BackingOff {
        /// What kind of failure it was.
        kind: FailureKind,
        /// Its message, with when the next attempt is allowed.
        message: String,
        /// How long until the next attempt.
        retry_after: Duration,
    },
}

impl IssueError {
    /// certfleet's own failure, from any error: its message is kept, for the log.
    pub fn internal(err: impl std::error::Error) -> Self {
        Self::Internal(err.to_string())
    }

    /// The kind of failure the back-off records, `None` for certfleet's own failures (retried at
    /// once) and for a back-off already under way.
    pub fn kind(&self) -> Option<FailureKind> {
        match self {
            Self::Rejected(_) => Some(FailureKind::Rejected),
            Self::ValidationFailed(_) => Some(FailureKind::ValidationFailed),
            // The record would fail the CA's validation: backed off like a failed one, with
            // its own code.
            Self::DnsPersist { problem, .. } => Some(match problem {
                dns_persist01::RecordProblem::Missing => FailureKind::DnsPersistMissing,
                dns_persist01::RecordProblem::Mismatch => FailureKind::DnsPersistMismatch,
                dns_persist01::RecordProblem::Expired => FailureKind::DnsPersistExpired,
            }),
            Self::RateLimited { .. } => Some(FailureKind::RateLimited),
            Self::Ca(_) => Some(FailureKind::Ca),
            Self::Dns(_) => Some(FailureKind::Dns),
            // A limit refusal is certfleet's own arithmetic: nothing to back off from.
            Self::Internal(_) | Self::Limited { .. } | Self::BackingOff { .. } => None,
        }
    }
}

impl From<StoreError> for IssueError {
    fn from(err: StoreError) -> Self {
        Self::Internal(err.to_string())
    }
}

/// An identifier that no challenge this server answers can validate as asked.
#[derive(Debug, Clone, Error)]
#[error("{name}: {why}")]
pub struct NoSolver {
    /// The name or address.
    pub name: String,
    /// Why.
    pub why: NoSolverWhy,
}

/// Why an identifier cannot be validated as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum NoSolverWhy {
    /// A wildcard, which only a DNS challenge validates, and no `challenges.dns01` or
    /// `challenges.dnsPersist` entry holds it.
    #[error(
        "a wildcard certificate needs DNS-01 (or DNS-PERSIST-01), and no challenges.dns01 entry of this server has a zone holding it (nor a challenges.dnsPersist entry its names)"
    )]
    Wildcard,
    /// The request asks for `dns-01`, and no `challenges.dns01` entry holds the name.
    #[error(
        "the request asks for DNS-01, and no challenges.dns01 entry of this server has a zone holding it"
    )]
    Dns01Missing,
    /// The request (or the entry's `challenge`) asks for `dns-account-01`, and no
    /// `challenges.dns01` entry holds the name.
    #[error(
        "the request asks for dns-account-01, and no challenges.dns01 entry of this server has a zone holding it"
    )]
    DnsAccount01Missing,
    /// The request asks for `dns-persist-01`, and no `challenges.dnsPersist` entry holds the
    /// name.
    #[error(
        "the request asks for dns-persist-01, and no challenges.dnsPersist entry of this server has names holding it"
    )]
    DnsPersistMissing,
    /// The request asks for a DNS challenge for an IP address (RFC 8738: HTTP-01 and
    /// TLS-ALPN-01 only).
    #[error(
        "an IP address cannot be validated by DNS-01 (or another DNS challenge); ask for http-01 or tls-alpn-01"
    )]
    Dns01ForAddress,
    /// The request asks for `http-01`, which this server does not answer.
    #[error("the request asks for HTTP-01, and this server does not answer it (challenges.http01)")]
    Http01Off,
    /// The request asks for `tls-alpn-01`, which this server does not answer.
    #[error(
        "the request asks for TLS-ALPN-01, and this server does not answer it (challenges.tlsAlpn01)"
    )]
    TlsAlpn01Off,
    /// No challenge this server answers fits: an address, or a name no DNS-01 entry holds,
    /// with neither HTTP-01 nor TLS-ALPN-01 answered.
    #[error(
        "this server answers neither HTTP-01 nor TLS-ALPN-01 (challenges.http01, challenges.tlsAlpn01), and no challenges.dns01 entry holds it"
    )]
    NoneAnswered,
}

impl NoSolverWhy {
    /// Whether the identifier itself cannot be certified here (else only the request's choice
    /// of challenge cannot be served).
    pub fn is_identifier_fault(self) -> bool {
        matches!(self, Self::Wildcard | Self::NoneAnswered)
    }
}

/// A profile the request names that the CA's directory does not list (instant-acme does not
/// check): a client's mistake, answered before anything is ordered.
#[derive(Debug, Clone, Error)]
#[error("profile {profile:?} is not offered by the CA; it offers {}", offered_list(.offered))]
pub struct UnknownProfile {
    /// The profile asked for.
    pub profile: String,
    /// The profiles the directory lists.
    pub offered: Vec<String>,
}

/// Whether `account`'s directory lists `profile` (`meta.profiles`).
fn offers(account: &Account, profile: &crate::domain::Profile) -> Result<(), UnknownProfile> {
    if account.profiles().any(|p| p.name == profile.as_str()) {
        return Ok(());
    }
    Err(UnknownProfile {
        profile: profile.as_str().to_owned(),
        offered: account.profiles().map(|p| p.name.to_owned()).collect(),
    })
}

fn offered_list(offered: &[String]) -> String {
    if offered.is_empty() {
        "no profiles: leave profile out".to_owned()
    } else {
        offered.join(", ")
    }
}

/// Obtains certificates from one ACME directory with one account.
pub struct Issuer {
    directory_url: String,
    email: Option<String>,
    profile: Option<crate::domain::Profile>,
    ip_profile: Option<crate::domain::Profile>,
    eab: Option<(String, Vec<u8>)>,
    http: http::AcmeHttp,
    store: Arc<dyn Store>,
    /// `None` when `challenges.http01` is off.
    http01: Option<Arc<dyn Solver>>,
    /// `Some` when `challenges.tlsAlpn01` is set.
    tls_alpn01: Option<Arc<dyn Solver>>,
    dns01: Option<Arc<dns01::Dns01Solver>>,
    dns_account: Option<Arc<dns01::DnsAccount01Solver>>,
    dns_persist: Option<Arc<dns_persist01::DnsPersistSolver>>,
    account: Mutex<Option<Account>>,
    /// The account's URL once loaded: the DNS-ACCOUNT-01 label's input.
    account_uri: Arc<OnceLock<String>>,
    orders: AtomicU64,
    /// `acme.maxConcurrentOrders` slots: an issuance drives its order only while it holds one
    /// (tokio's semaphore is fair: first come, first served).
    in_flight: tokio::sync::Semaphore,
    /// Whether this is `acme.fallback`'s issuer, used when the primary fails for the CA's reasons.
    fallback: bool,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("directory_url", &self.directory_url)
            .field("orders", &self.orders)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer for `config`'s directory, storing into `store`.
    pub fn new(config: &AcmeConfig, store: Arc<dyn Store>) -> Result<Self, http::ClientError> {
        let http = http::client(config.ca_certificates.as_deref())?;
        let eab = config.eab.as_ref().map(|eab| {
            // The config holds the key re-encoded as unpadded base64url, so this cannot fail.
            let key = URL_SAFE_NO_PAD
                .decode(eab.hmac_key.expose())
                .unwrap_or_default();
            (eab.kid.clone(), key)
        });
        Ok(Self {
            directory_url: config.directory_url.clone(),
            email: config.email.clone(),
            profile: config.profile.clone(),
            ip_profile: config.ip_profile.clone(),
            eab,
            http: http::AcmeHttp::new(http, &config.directory_url),
            http01: Some(Arc::new(http01::Http01Solver::new(store.clone()))),
            tls_alpn01: None,
            dns01: None,
            dns_account: None,
            dns_persist: None,
            store,
            account: Mutex::new(None),
            account_uri: Arc::new(OnceLock::new()),
            orders: AtomicU64::new(0),
            in_flight: tokio::sync::Semaphore::new(config.max_concurrent_orders),
            fallback: false,
        })
    }

    /// The issuer of `acme.fallback`: its own directory, account, EAB and profile, the rest
    /// (key type, concurrency) as `config`'s; answering challenges like `primary`.
    pub fn fallback(
        config: &AcmeConfig,
        fallback: &crate::config::FallbackConfig,
        primary: &Issuer,
    ) -> Result<Self, http::ClientError> {
        let mut own = config.clone();
        own.directory_url.clone_from(&fallback.directory_url);
        own.email = fallback.email.clone().or_else(|| config.email.clone());
        own.ca_certificates.clone_from(&fallback.ca_certificates);
        own.eab.clone_from(&fallback.eab);
        own.profile.clone_from(&fallback.profile);
        let mut issuer = Self::new(&own, primary.store.clone())?;
        issuer.http01.clone_from(&primary.http01);
        issuer.tls_alpn01.clone_from(&primary.tls_alpn01);
        issuer.dns01.clone_from(&primary.dns01);
        // DNS-ACCOUNT-01's label is the fallback account's own; DNS-PERSIST-01's records are
        // checked against it too.
        if let Some(dns01) = &primary.dns01 {
            issuer.dns_account = Some(Arc::new(dns01::DnsAccount01Solver::new(
                dns01.clone(),
                issuer.account_uri.clone(),
            )));
        }
        issuer.dns_persist.clone_from(&primary.dns_persist);
        issuer.fallback = true;
        Ok(issuer)
    }

    /// Whether an order URL is at this issuer's CA (same scheme, host and port as its
    /// directory).
    pub fn owns_order(&self, url: &str) -> bool {
        fn origin(url: &str) -> &str {
            let start = url.find("://").map_or(0, |i| i + 3);
            url[start..]
                .find('/')
                .map_or(url, |end| &url[..start + end])
        }
        origin(url).eq_ignore_ascii_case(origin(&self.directory_url))
    }

    /// The ACME directory this issuer orders from.
    pub fn directory_url(&self) -> &str {
        &self.directory_url
    }

    /// Whether a certificate issued by `ca` (its stored directory) came from this issuer's CA;
    /// `None` (stored before fallbacks existed) counts as the primary's.
    pub fn issued(&self, ca: Option<&str>) -> bool {
        match ca {
            Some(ca) => ca == self.directory_url,
            None => !self.fallback,
        }
    }

    /// Answers DNS-01 challenges through `solver` (the `challenges.dns01` providers).
    #[must_use]
    pub fn with_dns01(mut self, solver: dns01::Dns01Solver) -> Self {
        let solver = Arc::new(solver);
        self.dns_account = Some(Arc::new(dns01::DnsAccount01Solver::new(
            solver.clone(),
            self.account_uri.clone(),
        )));
        self.dns01 = Some(solver);
        self
    }

    /// Answers HTTP-01 only when `http01` (`challenges.http01.enabled`), and TLS-ALPN-01 when
    /// `tls_alpn01` (`challenges.tlsAlpn01` is set).
    #[must_use]
    pub fn with_challenges(mut self, http01: bool, tls_alpn01: bool) -> Self {
        if !http01 {
            self.http01 = None;
        }
        if tls_alpn01 {
            self.tls_alpn01 = Some(Arc::new(tls_alpn01::TlsAlpn01Solver::new(
                self.store.clone(),
            )));
        }
        self
    }

    /// Answers DNS-PERSIST-01 for the names `solver`'s `challenges.dnsPersist` entries cover.
    #[must_use]
    pub fn with_dns_persist(mut self, solver: dns_persist01::DnsPersistSolver) -> Self {
        self.dns_persist = Some(Arc::new(solver));
        self
    }

    /// The DNS-PERSIST-01 solver, when `challenges.dnsPersist` has entries.
    pub fn dns_persist(&self) -> Option<&dns_persist01::DnsPersistSolver> {
        self.dns_persist.as_deref()
    }

    /// The solver for `name` (`*.x` for a wildcard, or an IP address): wildcards always a DNS
    /// challenge, addresses never (RFC 8738); a request's choice forces its challenge;
    /// otherwise DNS-PERSIST-01 when a `challenges.dnsPersist` entry covers the name (it needs
    /// no DNS write), else the `challenge` (DNS-01 or DNS-ACCOUNT-01) of the `challenges.dns01`
    /// entry whose zones hold it, else HTTP-01, else TLS-ALPN-01, whichever this server
    /// answers. `Err` says why the name cannot be validated as asked.
    pub fn solver_for(
        &self,
        name: &str,
        choice: solver::ChallengeChoice,
    ) -> Result<Arc<dyn Solver>, NoSolver> {
        use solver::ChallengeChoice;
        let address = name.contains(':') || name.parse::<std::net::Ipv4Addr>().is_ok();
        let dns = self
            .dns01
            .as_ref()
            .filter(|dns| !address && dns.matches(name));
        let persist: Option<Arc<dyn Solver>> = self
            .dns_persist
            .as_ref()
            .filter(|persist| !address && persist.entry_for(name).is_some())
            .map(|persist| persist.clone() as Arc<dyn Solver>);
        let fail = |why| NoSolver {
            name: name.to_owned(),
            why,
        };
        let account = || -> Result<Arc<dyn Solver>, NoSolver> {
            match (&self.dns_account, dns) {
                (Some(account), Some(_)) => Ok(account.clone()),
                _ => Err(fail(NoSolverWhy::DnsAccount01Missing)),
            }
        };
        // The `challenge` of the dns01 entry holding the name.
        let by_entry = |dns: &Arc<dns01::Dns01Solver>| match dns.default_challenge(name) {
            crate::config::Dns01Challenge::DnsAccount01 => account(),
            crate::config::Dns01Challenge::Dns01 => Ok(dns.clone() as Arc<dyn Solver>),
        };
        let http01 = || self.http01.clone().ok_or(fail(NoSolverWhy::Http01Off));
        let tls_alpn01 = || {
            self.tls_alpn01
                .clone()
                .ok_or(fail(NoSolverWhy::TlsAlpn01Off))
        };
        let dns_asked = |choice| match choice {
            ChallengeChoice::Dns01 => dns
                .map(|dns| dns.clone() as Arc<dyn Solver>)
                .ok_or(fail(NoSolverWhy::Dns01Missing)),
            ChallengeChoice::DnsAccount01 => account(),
            _ => persist.clone().ok_or(fail(NoSolverWhy::DnsPersistMissing)),
        };
        let wildcard = name.starts_with("*.");
        match choice {
            ChallengeChoice::Dns01
            | ChallengeChoice::DnsAccount01
            | ChallengeChoice::DnsPersist01
                if address =>
            {
                Err(fail(NoSolverWhy::Dns01ForAddress))
            }
            ChallengeChoice::Dns01
            | ChallengeChoice::DnsAccount01
            | ChallengeChoice::DnsPersist01 => dns_asked(choice),
            // A wildcard's `http-01` or `tls-alpn-01` is read as no choice.
            _ if wildcard => match (&persist, dns) {
                (Some(persist), _) => Ok(persist.clone()),
                (None, Some(dns)) => by_entry(dns),
                (None, None) => Err(fail(NoSolverWhy::Wildcard)),
            },
            ChallengeChoice::Http01 => http01(),
            ChallengeChoice::TlsAlpn01 => tls_alpn01(),
            ChallengeChoice::Auto => match (&persist, dns) {
                (Some(persist), _) => Ok(persist.clone()),
                (None, Some(dns)) => by_entry(dns),
                (None, None) => http01()
                    .or_else(|_| tls_alpn01())
                    .map_err(|_| fail(NoSolverWhy::NoneAnswered)),
            },
        }
    }

    /// How many ACME orders this issuer has created since start.
    pub fn orders_created(&self) -> u64 {
        self.orders.load(Ordering::Relaxed)
    }

    /// The account, loaded from the store or created once (RFC 8555 section 7.3) and stored.
    async fn account(&self) -> Result<Account, IssueError> {
        let mut slot = self.account.lock().await;
        if let Some(account) = slot.as_ref() {
            return Ok(account.clone());
        }
        let builder = || Account::builder_with_http(Box::new(self.http.clone()));
        // Processes sharing the store and starting together must not each register an
        // account: creation runs under a lease, and the store is read again once it is held.
        let lease = format!("account|{}", self.directory_url);
        let owner = format!("{}-{:p}", std::process::id(), std::ptr::from_ref(self));
        while !self
            .store
            .try_lease(&lease, &owner, crate::util::clock::now(), 60)
            .await?
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let stored = self.store.account(&self.directory_url).await;
        let account = match stored {
            Err(err) => Err(err.into()),
            Ok(Some(json)) => match serde_json::from_str::<AccountCredentials>(&json) {
                Ok(credentials) => builder()
                    .from_credentials(credentials)
                    .await
                    .map_err(|e| classify("load the ACME account", e)),
                Err(e) => Err(IssueError::Internal(format!(
                    "stored ACME account is unreadable: {e}"
                ))),
            },
            Ok(None) => self.create_account(builder()).await,
        };
        let _ = self.store.release_lease(&lease, &owner).await;
        let account = account?;
        self.check_profile(&account)?;
        let _ = self.account_uri.set(account.id().to_owned());
        *slot = Some(account.clone());
        Ok(account)
    }

    /// Whether the CA's directory lists `profile` (`Err` when the account cannot be loaded).
    pub async fn require_profile(
        &self,
        profile: &crate::domain::Profile,
    ) -> Result<Result<(), UnknownProfile>, IssueError> {
        Ok(offers(&self.account().await?, profile))
    }

    /// The profile for an identity naming an IP address whose request names none:
    /// `acme.ipProfile`, else `shortlived` when the directory lists it, else `None`
    /// (`acme.profile`).
    pub async fn profile_for_addresses(
        &self,
    ) -> Result<Option<crate::domain::Profile>, IssueError> {
        if let Some(profile) = &self.ip_profile {
            return Ok(Some(profile.clone()));
        }
        // The directory's profiles are read once with the account, so this costs no request.
        let account = self.account().await?;
        let shortlived = crate::domain::Profile::parse("shortlived");
        Ok(shortlived.filter(|p| offers(&account, p).is_ok()))
    }

    /// `acme.profile` must be one the directory lists (instant-acme does not check).
    fn check_profile(&self, account: &Account) -> Result<(), IssueError> {
        let Some(wanted) = &self.profile else {
            return Ok(());
        };
        offers(account, wanted).map_err(|unknown| {
            IssueError::Ca(format!(
                "acme.{unknown} ({}); change or remove acme.profile",
                self.directory_url
            ))
        })
    }

    /// Revokes the leaf of `cert_pem` at the CA (RFC 8555 section 7.6), signed by the account
    /// key, for `reason`. The CA answering that it is already revoked counts as done. (Let's
    /// Encrypt accepts `keyCompromise` from the account key too; it blocks the key for future
    /// issuance only when the request is signed by the certificate's own key.)
    pub async fn revoke(
        &self,
        cert_pem: &str,
        reason: crate::domain::RevocationReason,
    ) -> Result<(), IssueError> {
        let leaf = crate::util::pem::first_certificate(cert_pem)
            .map_err(|e| IssueError::Internal(format!("the stored certificate: {e}")))?;
        let account = self.account().await?;
        let reason = match reason {
            crate::domain::RevocationReason::Unspecified => {
                instant_acme::RevocationReason::Unspecified
            }
            crate::domain::RevocationReason::KeyCompromise => {
                instant_acme::RevocationReason::KeyCompromise
            }
            crate::domain::RevocationReason::AffiliationChanged => {
                instant_acme::RevocationReason::AffiliationChanged
            }
            crate::domain::RevocationReason::Superseded => {
                instant_acme::RevocationReason::Superseded
            }
            crate::domain::RevocationReason::CessationOfOperation => {
                instant_acme::RevocationReason::CessationOfOperation
            }
        };
        let request = instant_acme::RevocationRequest {
            certificate: &leaf,
            reason: Some(reason),
        };
        match account.revoke(&request).await {
            Ok(()) => Ok(()),
            Err(instant_acme::Error::Api(problem))
                if problem_kind(&problem) == Some("alreadyRevoked") =>
            {
                Ok(())
            }
            Err(err) => Err(classify("revoke the certificate", err)),
        }
    }

    /// Loads the account now (at start), so that a configuration the CA refuses is reported
    /// at once rather than at the first request. Failures are logged; requests retry.
    pub async fn warm_up(&self) {
        if let Err(err) = self.account().await {
            tracing::error!(error = %err, directory = %self.directory_url, "the ACME account is not usable yet");
        }
    }

    async fn create_account(
        &self,
        builder: instant_acme::AccountBuilder,
    ) -> Result<Account, IssueError> {
        let contact = self.email.as_ref().map(|email| format!("mailto:{email}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let new_account = NewAccount {
            contact: &contacts,
            terms_of_service_agreed: true,
            only_return_existing: false,
        };
        let eab = self
            .eab
            .as_ref()
            .map(|(kid, key)| ExternalAccountKey::new(kid.clone(), key));
        let (account, credentials) = builder
            .create(&new_account, self.directory_url.clone(), eab.as_ref())
            .await
            .map_err(|e| classify("create the ACME account", e))?;
        let json = serde_json::to_string(&credentials)
            .map_err(|e| IssueError::Internal(format!("serialise the ACME account: {e}")))?;
        self.store
            .save_account(&self.directory_url, &json, crate::util::clock::now())
            .await?;
        tracing::info!(directory = %self.directory_url, account = account.id(), "created the ACME account");
        Ok(account)
    }
}

/// Polling: Pebble and Let's Encrypt usually validate within a second, so start short.
fn poll_policy() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(150))
        .backoff(1.5)
        .timeout(Duration::from_secs(120))
}

/// After an order went invalid: the first failed challenge's name and the CA's detail.
async fn validation_error(order: &mut Order) -> Option<IssueError> {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let name = authz.identifier().to_string();
        let Ok(state) = authz.refresh().await else {
            continue;
        };
        let failed = state.challenges.iter().find(|c| c.error.is_some());
        if let Some((challenge, Some(problem))) = failed.map(|c| (c, c.error.as_ref())) {
            let kind = challenge_name(&challenge.r#type);
            let detail = format!("{kind} challenge for {name}: {}", problem_text(problem));
            return Some(match problem_kind(problem) {
                Some("rejectedIdentifier" | "unsupportedIdentifier" | "caa") => {
                    IssueError::Rejected(detail)
                }
                _ => IssueError::ValidationFailed(detail),
            });
        }
    }
    None
}

/// The RFC 8555 name of a challenge type.
fn challenge_name(kind: &ChallengeType) -> String {
    match kind {
        ChallengeType::Http01 => "http-01".to_owned(),
        ChallengeType::Dns01 => "dns-01".to_owned(),
        ChallengeType::TlsAlpn01 => "tls-alpn-01".to_owned(),
        ChallengeType::Unknown(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

/// Maps an instant-acme error at `step` onto an [`IssueError`].
fn classify(step: &str, err: instant_acme::Error) -> IssueError {
    match err {
        instant_acme::Error::Api(problem) => {
            let detail = format!("{step}: {}", problem_text(&problem));
            match problem_kind(&problem) {
                Some("rejectedIdentifier" | "unsupportedIdentifier" | "caa") => {
                    IssueError::Rejected(detail)
                }
                Some("rateLimited") => IssueError::RateLimited {
                    detail,
                    retry_after: None,
                },
                Some("connection" | "dns" | "incorrectResponse" | "unauthorized" | "tls") => {
                    IssueError::ValidationFailed(detail)
                }
                _ => IssueError::Ca(detail),
            }
        }
        instant_acme::Error::Timeout(_) => {
            IssueError::Ca(format!("{step}: the CA did not finish in time"))
        }
        other => IssueError::Ca(format!(
            "{step}: the ACME server failed: {}",
            error_chain(&other)
        )),
    }
}

/// The ACME error type without its `urn:ietf:params:acme:error:` prefix (RFC 8555 section 6.7).
fn problem_kind(problem: &Problem) -> Option<&str> {
    problem
        .r#type
        .as_deref()
        .and_then(|t| t.strip_prefix("urn:ietf:params:acme:error:"))
}

fn problem_text(problem: &Problem) -> String {
    let mut text = problem
        .detail
        .clone()
        .unwrap_or_else(|| "no detail".to_owned());
    if let Some(kind) = problem_kind(problem) {
        text.push_str(&format!(" ({kind})"));
    }
    for sub in &problem.subproblems {
        if let Some(detail) = &sub.detail {
            text.push_str(&format!("; {detail}"));
        }
    }
    text
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
