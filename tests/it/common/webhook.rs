//! A webhook endpoint for the notification tests: a real HTTP server (hyper, HTTP/1.1 and h2c)
//! in the test process on 127.0.0.1 that records every POST, answers with the status the test
//! chose, and can be stopped (connections refused) and started again on the same port.
//!
//! `Receiver::verify` checks recorded deliveries with the published Standard Webhooks library
//! (PyPI `standardwebhooks`, run by `tests/notify/verify_webhooks.py`): an independent check of
//! certfleet's signatures. It needs that package under target/test-tools/python
//! (`scripts/install-test-deps.sh`): without it those tests FAIL with that hint, never skip.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::{JoinHandle, JoinSet};

/// What to run when the Python packages are missing.
pub const INSTALL_HINT: &str = "run scripts/install-test-deps.sh: it installs \
                                tests/notify/requirements.txt (aiosmtpd, standardwebhooks) \
                                into target/test-tools/python";

/// Where scripts/install-test-deps.sh installs tests/notify/requirements.txt.
const PYTHONPATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-tools/python");
const VERIFY_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/notify/verify_webhooks.py"
);

/// The answer to a POST until `set_status` says otherwise.
const DEFAULT_STATUS: u16 = 204;
/// How long `restart` tries to bind the port again (a lingering socket may hold it briefly).
const REBIND_TIMEOUT: Duration = Duration::from_secs(5);

/// One POST the receiver got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The request's path, with its query if it had one (`/hooks/a?x=1`).
    pub path: String,
    /// The request's headers, names lowercased; a name sent more than once keeps every value,
    /// joined by `", "`.
    pub headers: BTreeMap<String, String>,
    /// The body exactly as sent (as UTF-8 text: certfleet sends JSON).
    pub body: String,
    /// When it arrived, for intervals between deliveries.
    pub at: Instant,
    /// When it arrived by the wall clock, to compare with a `webhook-timestamp`.
    pub wall: SystemTime,
    /// The status it was answered with.
    pub status: u16,
    /// Answered with a status other than 2xx: the sender must treat it as not delivered.
    pub refused: bool,
}

/// The receiver; it stops serving (and drops every open connection) when dropped.
#[derive(Debug)]
pub struct Receiver {
    port: u16,
    state: Arc<Shared>,
    server: Option<Server>,
}

/// What the handler and the test share.
#[derive(Debug)]
struct Shared {
    status: AtomicU16,
    received: Mutex<Vec<Received>>,
    arrived: Notify,
}

/// The accept loop while it runs: `stop` ends it, connections and all.
#[derive(Debug)]
struct Server {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Starts the receiver on a free port of 127.0.0.1; it answers every POST with 204.
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook receiver on 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("webhook receiver's local address")
            .port();
        let state = Arc::new(Shared {
            status: AtomicU16::new(DEFAULT_STATUS),
            received: Mutex::new(Vec::new()),
            arrived: Notify::new(),
        });
        let server = Server::spawn(listener, Arc::clone(&state));
        Receiver {
            port,
            state,
            server: Some(server),
        }
    }

    /// `http://127.0.0.1:PORT/path` (a leading `/` of `path` is optional).
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    /// Every POST so far, accepted or refused, in the order they arrived.
    pub fn requests(&self) -> Vec<Received> {
        self.state
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until at least `n` POSTs were accepted (answered 2xx) and returns the accepted
    /// ones; panics after `timeout` with everything it got.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Taken before looking, so a POST recorded meanwhile still wakes this loop.
            let arrived = self.state.arrived.notified();
            let all = self.requests();
            let accepted: Vec<Received> = all.iter().filter(|r| !r.refused).cloned().collect();
            if accepted.len() >= n {
                return accepted;
            }
            assert!(
                tokio::time::timeout_at(deadline, arrived).await.is_ok(),
                "the webhook receiver accepted {} of {n} POSTs in {timeout:?}; it got: {all:#?}",
                accepted.len()
            );
        }
    }

    /// From now on every POST is answered with `status` (and recorded; refused unless 2xx),
    /// across `stop` and `restart` too.
    pub fn set_status(&self, status: u16) {
        assert!(
            StatusCode::from_u16(status).is_ok(),
            "{status} is not an HTTP status code"
        );
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// Closes the listener and every open connection: once this returns, a request on a
    /// connection that was open fails and a new connection is refused. Already stopped is fine.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            // The loop ends when told (or when the sender is gone); a send error means it
            // already ended.
            let _ = server.stop.send(());
            server
                .task
                .await
                .expect("the webhook receiver's accept loop ends cleanly");
        }
    }

    /// Stops (if it runs), then listens again on the same port with the same records and
    /// status.
    pub async fn restart(&mut self) {
        self.stop().await;
        let started = Instant::now();
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(e) => assert!(
                    started.elapsed() < REBIND_TIMEOUT,
                    "the webhook receiver cannot listen on 127.0.0.1:{} again: {e}",
                    self.port
                ),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.server = Some(Server::spawn(listener, Arc::clone(&self.state)));
    }

    /// Checks each delivery with the Standard Webhooks library (`Webhook(secret).verify(body,
    /// headers)`): `Ok` when the signature, id and timestamp check out, else the library's
    /// reason. Panics (never skips) when python3 or standardwebhooks is missing.
    pub fn verify(&self, secret: &str, received: &[Received]) -> Vec<Result<(), String>> {
        let package = Path::new(PYTHONPATH).join("standardwebhooks");
        assert!(
            package.is_dir(),
            "{} is missing: {INSTALL_HINT}",
            package.display()
        );
        let deliveries: Vec<Value> = received
            .iter()
            .map(|r| json!({"secret": secret, "headers": r.headers, "body": r.body}))
            .collect();
        let mut child = Command::new("python3")
            .arg(VERIFY_SCRIPT)
            .env("PYTHONPATH", PYTHONPATH)
            .env("PYTHONNOUSERSITE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run python3 {VERIFY_SCRIPT}: {e}; {INSTALL_HINT}"));
        // The script reads all of its input before it writes: no deadlock on full pipes.
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(Value::Array(deliveries).to_string().as_bytes())
            .expect("write the deliveries to verify_webhooks.py");
        let output = child
            .wait_with_output()
            .expect("wait for verify_webhooks.py");
        assert!(
            output.status.success(),
            "verify_webhooks.py failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let verdicts: Vec<Verdict> = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "verify_webhooks.py printed no verdicts ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
        assert_eq!(verdicts.len(), received.len(), "one verdict per delivery");
        verdicts
            .into_iter()
            .map(|v| {
                if v.ok {
                    Ok(())
                } else {
                    Err(v
                        .error
                        .unwrap_or_else(|| "not ok, no reason given".to_owned()))
                }
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            // Dropping the accept loop drops its JoinSet, which aborts every connection task.
            server.task.abort();
        }
    }
}

/// One line of verify_webhooks.py's answer.
#[derive(Debug, Deserialize)]
struct Verdict {
    ok: bool,
    error: Option<String>,
}

impl Server {
    /// Serves `listener` until told to stop.
    fn spawn(listener: TcpListener, state: Arc<Shared>) -> Server {
        let router = Router::new().fallback(record).with_state(state);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(listener, router, stopped));
        Server { stop, task }
    }
}

/// Accepts connections and serves each with hyper-util's HTTP/1 + HTTP/2 builder until `stop`
/// fires (or its sender is dropped); then closes the listener and every connection, and waits
/// for their tasks to end.
async fn serve(listener: TcpListener, router: Router, mut stop: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else {
                    // Out of file descriptors, say: wait instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let service = TowerToHyperService::new(router.clone());
                connections.spawn(async move {
                    // A client hanging up mid-request is not the receiver's failure.
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Records a POST (before answering it, so a sender that saw the answer finds it recorded)
/// and answers with the chosen status; any other method gets 405, unrecorded.
async fn record(
    State(state): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED;
    }
    let status = state.status.load(Ordering::SeqCst);
    let mut recorded: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        recorded
            .entry(name.as_str().to_owned())
            .and_modify(|all| {
                all.push_str(", ");
                all.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let received = Received {
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), ToString::to_string),
        headers: recorded,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
        wall: SystemTime::now(),
        status,
        refused: !(200..300).contains(&status),
    };
    state
        .received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(received);
    state.arrived.notify_waiters();
    // set_status only stores valid codes.
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
