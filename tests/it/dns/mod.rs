//! DNS test helpers shared by `tests/it/dns_conformance.rs` and `tests/it/dns01.rs`: a real BIND, and
//! in-process fakes of the Cloudflare v4 and Google Cloud DNS v1 APIs (which cannot run here)
//! that publish every TXT change to pebble-challtestsrv so that Pebble can validate through them.

pub mod bind;
pub mod cloudflare_fake;
pub mod gcloud_fake;

use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;

/// What a fake does to the calls that create records, to test failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// Answer 500 (the API's own error body).
    ServerError,
    /// Never answer (the client's timeout must fire).
    Hang,
    /// Answer 429 to this many calls, then normally.
    RateLimit(u32),
}

/// Writes a name's TXT values into challtestsrv: clear, then set each value (challtestsrv keeps
/// several values per name).
#[derive(Debug, Clone)]
pub struct Publisher {
    client: reqwest::Client,
    base: Option<String>,
}

impl Publisher {
    /// Publishes to challtestsrv's management API at `base` (`None`: publishes nowhere).
    pub fn new(base: Option<String>) -> Publisher {
        Publisher {
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            base,
        }
    }

    /// Makes `fqdn` (no trailing dot) answer exactly `values`.
    pub async fn publish(&self, fqdn: &str, values: &[String]) {
        let Some(base) = &self.base else { return };
        let host = format!("{}.", fqdn.trim_end_matches('.'));
        self.post(&format!("{base}/clear-txt"), json!({"host": host}))
            .await;
        for value in values {
            self.post(
                &format!("{base}/set-txt"),
                json!({"host": host, "value": value}),
            )
            .await;
        }
    }

    async fn post(&self, url: &str, body: serde_json::Value) {
        let response = self.client.post(url).json(&body).send().await;
        assert!(
            response.as_ref().is_ok_and(|r| r.status().is_success()),
            "challtestsrv {url} {body}: {response:?}"
        );
    }
}

/// A query string as a map (the fakes' query parameters).
pub fn params(query: Option<String>) -> std::collections::BTreeMap<String, String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// Serves `router` on a free loopback port; returns `http://127.0.0.1:PORT`.
pub async fn serve(router: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a fake");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    base
}
