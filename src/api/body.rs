//! The success body of the certificate routes and its `ETag`, rendered once per certificate.
//!
//! A cached fetch is the hot path: it must not serialise the PEMs (a few kilobytes of JSON
//! escaping) per request. [`Renderings`] keeps each certificate's body with `"cached": true`
//! and its `ETag` header, made the first time the certificate is handed out and
//! replaced when the service hands out another certificate for the same identity, within a
//! budget of bytes (half of `server.cacheSize`).

use std::cell::RefCell;
use std::sync::{Arc, PoisonError, RwLock, Weak};

use aws_lc_rs::digest;
use bytes::Bytes;
use http::HeaderValue;
use serde::Serialize;

use crate::domain::{CertKey, DomainName};
use crate::store::StoredCert;
use crate::util::clock::rfc3339;
use crate::util::sized_cache::SizedCache;

/// The success body of the certificate routes (SPEC: camelCase, le-cert-server compatible).
/// Its OpenAPI schema (`Certificate`) is derived from this type, so the two cannot drift.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(
    as = Certificate,
    description = "A certificate, with its private key when certfleet holds it (camelCase: \
        le-cert-server clients keep working)."
)]
pub(crate) struct CertBody<'a> {
    /// The first name of the sorted set.
    domain: &'a str,
    /// Every name, sorted.
    domains: Vec<&'a str>,
    /// The leaf followed by the chain, PEM.
    certificate: &'a str,
    /// The certificate's private key, PKCS#8 PEM. Absent in CSR mode (`keyMode` `client`):
    /// the client holds the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    private_key: Option<&'a str>,
    /// `server` (certfleet generated the key and sends it) or `client` (CSR mode).
    #[schema(value_type = KeyMode)]
    key_mode: &'static str,
    /// In CSR mode, the base64url SHA-256 of the key's SubjectPublicKeyInfo: with the names,
    /// what `GET /api/certificate?spkiSha256=` finds the certificate by.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    spki_sha256: Option<&'a str>,
    /// The chain without the leaf, PEM.
    issuer_cert: &'a str,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    not_before: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    not_after: String,
    /// When certfleet renews it (RFC 3339, UTC): the CA's ARI window, else two thirds of the
    /// lifetime.
    #[schema(format = DateTime)]
    renew_after: String,
    /// `true` when served from the store, `false` when issued for this request.
    cached: bool,
}

/// The schema of `keyMode`: who holds the certificate's private key.
#[derive(Debug)]
pub struct KeyMode;

impl utoipa::PartialSchema for KeyMode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "`server`: certfleet generated the private key and hands it out \
                 (`privateKey`); `client`: the client holds it and sent a CSR (CSR mode).",
            ))
            .enum_values(Some(["server", "client"]))
            .into()
    }
}

impl utoipa::ToSchema for KeyMode {}

/// One certificate's responses, ready to send.
#[derive(Debug)]
pub(super) struct Rendered {
    /// The certificate they render.
    pub cert: Arc<StoredCert>,
    /// The strong ETag (quoted): a digest of the certificate chain.
    pub etag: String,
    /// The same, as a header value.
    pub etag_header: HeaderValue,
    /// The body with `"cached": true`, what every fetch sends. The one with `false` is sent
    /// once per issuance, so it is rendered when asked for, not kept: half the memory.
    body_cached: Bytes,
}

/// How often one credential's receipt of one serial is written again, in seconds.
const DELIVERY_REFRESH: i64 = 3600;
/// The most (rendering, credential) pairs each thread remembers; past it the oldest is
/// forgotten (and written again on its next fetch).
const DELIVERY_SLOTS: usize = 64;

/// One delivery this thread wrote: of which rendering (weak: a dropped rendering's slot never
/// matches a new one at the same address), to whom, when.
struct Noted {
    rendered: Weak<Rendered>,
    method: &'static str,
    name: Arc<str>,
    at: i64,
}

thread_local! {
    /// The deliveries this thread wrote lately. Per thread, so that the check on every fetch
    /// touches no memory another core writes (a shared lock here cost the cached fetch about
    /// a sixth of its throughput under load); the price is one write per worker thread, not
    /// per process, for each credential and serial.
    static NOTED: RefCell<Vec<Noted>> = const { RefCell::new(Vec::new()) };
}

impl Rendered {
    fn new(cert: Arc<StoredCert>) -> Self {
        let hash = digest::digest(&digest::SHA256, cert.cert_pem.as_bytes());
        let etag = format!(
            "\"{}\"",
            hash.as_ref()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        Self {
            body_cached: render(&cert, true),
            etag_header: HeaderValue::from_str(&etag)
                // Quotes around hex digits: always a valid header value.
                .unwrap_or_else(|_| HeaderValue::from_static("\"\"")),
            etag,
            cert,
        }
    }

    /// Whether the delivery of this certificate to (`method`, `name`) at `now` should be
    /// written to the store: the first time on this thread, then at most every
    /// [`DELIVERY_REFRESH`]. Marks it written.
    pub fn mark_delivered(
        self: &Arc<Self>,
        method: &'static str,
        name: &Arc<str>,
        now: i64,
    ) -> bool {
        NOTED.with_borrow_mut(|noted| {
            let this = Arc::as_ptr(self);
            if let Some(slot) = noted.iter_mut().find(|slot| {
                slot.rendered.as_ptr() == this
                    && slot.method == method
                    && (Arc::ptr_eq(&slot.name, name) || *slot.name == **name)
            }) {
                if now - slot.at < DELIVERY_REFRESH {
                    return false;
                }
                slot.at = now;
                return true;
            }
            // Slots of dropped renderings go first, then the oldest.
            noted.retain(|slot| slot.rendered.strong_count() > 0);
            if noted.len() >= DELIVERY_SLOTS
                && let Some(oldest) = (0..noted.len()).min_by_key(|&i| noted[i].at)
            {
                noted.swap_remove(oldest);
            }
            noted.push(Noted {
                rendered: Arc::downgrade(self),
                method,
                name: name.clone(),
                at: now,
            });
            true
        })
    }

    /// The JSON body: `cached` says whether the certificate came from the store or was issued
    /// for this request.
    pub fn body(&self, cached: bool) -> Bytes {
        match cached {
            true => self.body_cached.clone(),
            false => render(&self.cert, false),
        }
    }
}

/// The success body for `cert`.
fn render(cert: &StoredCert, cached: bool) -> Bytes {
    let body = CertBody {
        domain: cert.names.primary().as_str(),
        domains: cert.names.names().iter().map(DomainName::as_str).collect(),
        certificate: &cert.cert_pem,
        private_key: cert.key_pem.as_deref(),
        key_mode: cert.key.mode(),
        spki_sha256: cert.key.spki().map(crate::domain::SpkiHash::digest_b64),
        issuer_cert: &cert.issuer_pem,
        not_before: rfc3339(cert.not_before),
        not_after: rfc3339(cert.not_after),
        renew_after: rfc3339(cert.renew_after),
        cached,
    };
    // Serialising plain strings and a bool cannot fail.
    let mut json = serde_json::to_vec(&body).unwrap_or_default();
    // The buffer grew by doubling; `Bytes` would keep the spare half for as long as it is cached.
    json.shrink_to_fit();
    Bytes::from(json)
}

/// The renderings of the certificates handed out, by identity; what is dropped is rendered
/// again when asked for.
#[derive(Debug)]
pub(super) struct Renderings {
    map: RwLock<SizedCache<CertKey, Arc<Rendered>>>,
}

impl Renderings {
    /// No renderings yet, and at most `budget` bytes of them.
    pub fn new(budget: usize) -> Self {
        Self {
            map: RwLock::new(SizedCache::new(budget)),
        }
    }

    /// The rendering of `cert`, the certificate the service holds for `key`: the one kept when
    /// it renders this very certificate, else a new one (kept from now on).
    /// Drops `key`'s rendering (revoked or deleted): its private key leaves memory with it.
    pub fn forget(&self, key: &CertKey) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        map.remove(key);
        crate::observe::metrics::cache_size("renderings", map.len(), map.bytes());
    }

    pub fn of(&self, key: &CertKey, cert: &Arc<StoredCert>) -> Arc<Rendered> {
        let kept = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .filter(|kept| Arc::ptr_eq(&kept.cert, cert))
            .cloned();
        if let Some(kept) = kept {
            return kept;
        }
        let rendered = Arc::new(Rendered::new(cert.clone()));
        // Counted as if the rendering alone kept its certificate alive, as it does once the
        // service's cache has dropped it: the bound holds either way.
        let heap = key.heap_size()
            + size_of::<Rendered>()
            + rendered.etag.capacity()
            + rendered.body_cached.len()
            + size_of::<StoredCert>()
            + cert.heap_size();
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        map.insert(key.clone(), rendered.clone(), heap);
        crate::observe::metrics::cache_size("renderings", map.len(), map.bytes());
        rendered
    }
}
