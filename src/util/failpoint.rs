//! Crash-test hooks: named points right after each persisted step of an order.
//!
//! With `CERTFLEET_FAILPOINT=<name>` in the environment, the first task to reach that point
//! prints `certfleet failpoint <name> reached` to stderr and stops there for good, so a test can
//! kill the process with SIGKILL at exactly that step and check what the next start recovers.
//! Unset (always, outside such tests), a point costs one comparison.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Every failpoint, in the order an issuance passes them.
pub const POINTS: &[&str] = &[
    "order-recorded",
    "order-created",
    "order-url-saved",
    "challenge-recorded",
    "challenge-presented",
    "challenge-ready",
    "order-ready",
    "order-key-saved",
    "finalize-sent",
    "certificate-downloaded",
    "certificate-saved",
    "cleanup-done",
];

/// Stops the calling task forever at `name` when the environment arms it.
pub async fn hit(name: &'static str) {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    static FIRED: AtomicBool = AtomicBool::new(false);
    let armed = ARMED.get_or_init(|| std::env::var("CERTFLEET_FAILPOINT").ok());
    if armed.as_deref() == Some(name) && !FIRED.swap(true, Ordering::SeqCst) {
        eprintln!("certfleet failpoint {name} reached");
        std::future::pending::<()>().await;
    }
}
