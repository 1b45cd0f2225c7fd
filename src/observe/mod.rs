//! What operators see: [`metrics`] (the Prometheus series and `/metrics`), [`logging`] (text or
//! JSON lines), and, for each API request, a request id on every log line it causes, the HTTP
//! metrics, and one audit line for every private key handed out.
//!
//! [`ObserveLayer`] wraps every route. A handler that answers with a private key says so with
//! [`key_handed_out`] as it builds the response; the middleware turns that into the audit line
//! when the response leaves, so the line is written once per response with a key, and never
//! holds the key itself.

pub mod audit;
pub mod logging;
pub mod metrics;

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::response::Response;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};
use tracing::instrument::Instrumented;
use tracing::{Instrument as _, Span};

use crate::store::StoredCert;

/// The header carrying the request id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-chosen request id kept; longer ones are replaced.
const MAX_CLIENT_ID: usize = 64;

pub use audit::AUDIT_TARGET;

/// A response whose body carries a private key: who received which certificate.
#[derive(Debug, Clone)]
pub struct KeyDelivery {
    /// The principal's name (the PSK's name, the token's subject, the Akash address).
    pub principal: Arc<str>,
    /// The method that authenticated it: `psk`, `jwt` or `akash`.
    pub method: &'static str,
    /// The certificate handed out; the line names it by names, key type and serial.
    pub cert: Arc<StoredCert>,
}

/// The private keys a response carries: one for a certificate, several for the Traefik
/// document (`GET /api/servers/traefik`), which holds every certificate a credential may read.
#[derive(Debug, Default)]
enum Delivered {
    /// No private key.
    #[default]
    None,
    /// One, noted without an allocation.
    One(KeyDelivery),
    /// Several, in the order they were handed out.
    Many(Vec<KeyDelivery>),
}

impl Delivered {
    fn add(self, delivery: KeyDelivery) -> Self {
        match self {
            Self::None => Self::One(delivery),
            Self::One(first) => Self::Many(vec![first, delivery]),
            Self::Many(mut all) => {
                all.push(delivery);
                Self::Many(all)
            }
        }
    }

    fn as_slice(&self) -> &[KeyDelivery] {
        match self {
            Self::None => &[],
            Self::One(one) => std::slice::from_ref(one),
            Self::Many(all) => all,
        }
    }
}

tokio::task_local! {
    /// The private keys the request's handler handed out: a slot in the request's own future,
    /// so noting a delivery allocates nothing (a response extension would: a map and a box, on
    /// every fetch).
    static DELIVERY: Cell<Delivered>;
}

/// Notes that the response the handler is building carries a private key, for the audit line
/// [`Observe`] writes when it leaves (one line per key: call it once for each). Call it only
/// for the response the handler returns. Outside [`Observe`] (a router without the layer)
/// there is no audit line to write, and nothing is noted.
pub fn key_handed_out(delivery: KeyDelivery) {
    let _ = DELIVERY.try_with(|slot| slot.set(slot.take().add(delivery)));
}

/// The layer that observes every route ([`Observe`]). Applied with `Router::layer`, so the
/// matched route template is known.
#[derive(Debug, Clone, Copy, Default)]
pub struct ObserveLayer;

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe { inner }
    }
}

/// Request id and span, metrics, audit line, `X-Request-Id` on the answer. A hand-written
/// service and future rather than `middleware::from_fn`: it runs for every request, and this
/// way it costs no allocation of its own.
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let id = request_id(request.headers().get(&REQUEST_ID));
        let route = metrics::route_label(
            request
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str),
        );
        let remote = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        let method = request.method().clone();
        let span = tracing::info_span!("request", id = %id.to_str().unwrap_or_default());
        // The route's call only builds its future: the handler runs, and logs, when it is
        // polled inside the span.
        ObserveFuture {
            inner: DELIVERY
                .scope(Cell::new(Delivered::None), self.inner.call(request))
                .instrument(span),
            request: Some(Seen {
                started,
                id,
                route,
                remote,
                method,
            }),
        }
    }
}

/// What [`Observe`] noted of a request before passing it on.
#[derive(Debug)]
struct Seen {
    started: Instant,
    id: HeaderValue,
    route: &'static str,
    remote: Option<SocketAddr>,
    method: Method,
}

pin_project_lite::pin_project! {
    /// The route's future in the request's span; once it answers: the metrics, the audit line
    /// and the request id header.
    pub struct ObserveFuture<F> {
        // The span lives in the instrumented future and is borrowed back, not cloned: a clone
        // goes through the subscriber, on every request.
        #[pin]
        inner: Instrumented<TaskLocalFuture<Cell<Delivered>, F>>,
        request: Option<Seen>,
    }
}

impl<F> std::fmt::Debug for ObserveFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserveFuture")
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

impl<F> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Ok(mut response) = std::task::ready!(this.inner.as_mut().poll(cx));
        if let Some(seen) = this.request.take() {
            let status = response.status();
            metrics::http_request(seen.route, &seen.method, status, seen.started.elapsed());
            let delivered = this.inner.as_mut().inner_pin_mut().take_value();
            let delivered = delivered.map(Cell::into_inner).unwrap_or_default();
            for delivery in delivered.as_slice() {
                metrics::key_delivered(delivery.method);
                audit(delivery, seen.remote, &seen.id, this.inner.span());
            }
            response.headers_mut().insert(REQUEST_ID, seen.id);
        }
        Poll::Ready(Ok(response))
    }
}

/// The audit line: who, which names, when (the line's time), from where. Never the key.
fn audit(delivery: &KeyDelivery, remote: Option<SocketAddr>, id: &HeaderValue, span: &Span) {
    let cert = &delivery.cert;
    audit::record(
        span,
        &audit::AuditLine {
            principal: &delivery.principal,
            method: delivery.method,
            names: &cert.names,
            key_type: cert.key.as_str(),
            serial: &cert.serial,
            remote,
            request_id: id.to_str().unwrap_or_default(),
        },
    );
}

/// The client's id when it is a sane token (so a proxy's id ties its logs to ours), else a new
/// one: a per-process random prefix and a counter, unique across replicas in practice.
fn request_id(client: Option<&HeaderValue>) -> HeaderValue {
    if let Some(value) = client.filter(|value| is_sane_id(value.as_bytes())) {
        return value.clone();
    }
    static PREFIX: OnceLock<u32> = OnceLock::new();
    // Each thread takes a block of numbers at a time: one counter that every core bumped on
    // every request would pass its cache line between them each time.
    static NEXT_BLOCK: AtomicU64 = AtomicU64::new(0);
    const BLOCK: u64 = 1024;
    thread_local! {
        static NUMBERS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    let prefix = *PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 4];
        // Without randomness the ids are still unique within this process.
        let _ = aws_lc_rs::rand::fill(&mut bytes);
        u32::from_le_bytes(bytes)
    });
    let n = NUMBERS.with(|numbers| {
        let (mut next, mut end) = numbers.get();
        if next == end {
            next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
            end = next + BLOCK;
        }
        numbers.set((next + 1, end));
        next
    });
    // 8 hex digits of prefix, 12 of counter; written by hand: this runs for every request.
    let mut id = [0u8; 20];
    let digits = (u128::from(prefix) << 48) | u128::from(n & 0xffff_ffff_ffff);
    for (i, byte) in id.iter_mut().enumerate() {
        let nibble = (digits >> (4 * (19 - i))) & 0xf;
        *byte = b"0123456789abcdef"[usize::try_from(nibble).unwrap_or(0)];
    }
    // Hex digits only: always a valid header value.
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Letters, digits, `-`, `_`, `.`, at most [`MAX_CLIENT_ID`] bytes: safe in any log format.
fn is_sane_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CLIENT_ID
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_sane() {
        let kept = HeaderValue::from_static("abc-123_x.y");
        assert_eq!(request_id(Some(&kept)), kept);
        for bad in ["", "has space", "quote\"", "{json}", &"x".repeat(65)] {
            let value = HeaderValue::from_str(bad).expect("header");
            let id = request_id(Some(&value));
            assert_ne!(id, value, "{bad:?}");
            assert_eq!(id.len(), 20);
        }
        let (a, b) = (request_id(None), request_id(None));
        assert_ne!(a, b);
        // Unique across threads too (each takes its own block of numbers).
        let elsewhere: Vec<HeaderValue> =
            std::thread::spawn(|| (0..3).map(|_| request_id(None)).collect())
                .join()
                .expect("thread");
        assert!(
            elsewhere.iter().all(|id| *id != a && *id != b),
            "{elsewhere:?}"
        );
        assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit), "{a:?}");
    }
}
