//! certfleet itself, started in-process on loopback sockets for a test, with its own SQLite file.

use std::sync::Arc;
use std::time::Duration;

use certfleet::app::{App, Listeners};
use certfleet::config::Config;
use serde_json::Value;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Pebble;

/// A PSK allowed every domain, with the admin right.
pub const ADMIN_KEY: &str = "admin-key-0123456789abcdef0123456789abcdef";
/// A PSK allowed `*.a.example.test` and `a.example.test` only.
pub const FLEET_A_KEY: &str = "fleet-a-key-0123456789abcdef0123456789abcdef";

/// A running certfleet: the API at `base`, HTTP-01 on the Pebble's validation port.
#[derive(Debug)]
pub struct Service {
    /// The shared state, for counters and direct store access.
    pub app: Arc<App>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The SQLite URL of this instance.
    pub db_url: String,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    _dir: TempDir,
}

/// The config a test service runs with, before `extra` YAML is appended. `{db}` is the SQLite
/// file, the ACME section points at `pebble`.
pub fn base_yaml(pebble: &Pebble, db_url: &str, issue_wait: &str) -> String {
    format!(
        r#"server:
  issueWait: {issue_wait}
storage:
  url: "{db_url}"
acme:
  directoryUrl: "{directory}"
  caCertificates: "{ca}"
  email: "ops@example.test"
challenges:
  http01:
    listen: "127.0.0.1:{http_port}"
auth:
  psk:
    keys:
      - name: admin
        key: "{ADMIN_KEY}"
        admin: true
      - name: fleet-a
        key: "{FLEET_A_KEY}"
        domains: ["*.a.example.test", "a.example.test"]
"#,
        directory = pebble.directory_url(),
        ca = pebble.ca().ca_pem_path().display(),
        http_port = pebble.http_port(),
    )
}

impl Service {
    /// Starts certfleet against `pebble` with the default test config.
    pub async fn start(pebble: &Pebble) -> Service {
        Self::start_with(pebble, "30s", |yaml| yaml).await
    }

    /// Starts certfleet against `pebble`; `edit` may change the YAML (e.g. the directory URL).
    pub async fn start_with(
        pebble: &Pebble,
        issue_wait: &str,
        edit: impl FnOnce(String) -> String,
    ) -> Service {
        let dir = tempfile::Builder::new()
            .prefix("certfleet-test-")
            .tempdir()
            .expect("create a temporary directory");
        let db_url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
        let yaml = edit(base_yaml(pebble, &db_url, issue_wait));
        Self::start_yaml(&yaml, dir, db_url).await
    }

    /// Starts certfleet from complete YAML, storing into `dir`.
    pub async fn start_yaml(yaml: &str, dir: TempDir, db_url: String) -> Service {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let loaded = Config::from_yaml(yaml, std::iter::empty()).expect("the test config is valid");
        let config = loaded.config;
        let app = App::start(&config).await.expect("certfleet starts");
        // TLS-ALPN-01 on the API's own TLS listener (as `serve` does): the API binds that address.
        let shared_alpn = config.tls_alpn01_on_api_listener();
        let api_address = match shared_alpn {
            true => config.server.listen,
            false => "127.0.0.1:0".parse().expect("address"),
        };
        let api = TcpListener::bind(api_address)
            .await
            .expect("bind the API listener");
        let base = format!("http://{}", api.local_addr().expect("API address"));
        let http01 = match config.challenges.http01.enabled {
            true => Some(
                TcpListener::bind(config.challenges.http01.listen)
                    .await
                    .expect("bind the HTTP-01 listener on the Pebble's httpPort"),
            ),
            false => None,
        };
        let tls_alpn01 = match &config.challenges.tls_alpn01 {
            Some(_) if shared_alpn => None,
            Some(alpn) => Some(
                TcpListener::bind(alpn.listen)
                    .await
                    .expect("bind the TLS-ALPN-01 listener on the Pebble's tlsPort"),
            ),
            None => None,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.clone().serve(
            Listeners {
                api,
                http01,
                tls_alpn01,
                metrics: None,
            },
            async {
                let _ = stopped.await;
            },
        ));
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("build the test client");
        Service {
            app,
            base,
            db_url,
            client,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// The test's HTTP client (no proxy, long timeout).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `POST path` with `Authorization: APIKey key` and a JSON body.
    pub async fn post(&self, path: &str, key: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("APIKey {key}"))
            .json(&body)
            .send()
            .await
            .expect("POST reaches certfleet")
    }

    /// `GET path` with `Authorization: APIKey key`.
    pub async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("APIKey {key}"))
            .send()
            .await
            .expect("GET reaches certfleet")
    }

    /// `DELETE path` with `Authorization: APIKey key`.
    pub async fn delete(&self, path: &str, key: &str) -> reqwest::Response {
        self.client
            .delete(format!("{}{path}", self.base))
            .header("Authorization", format!("APIKey {key}"))
            .send()
            .await
            .expect("DELETE reaches certfleet")
    }

    /// How many rows a table of this instance's database holds.
    pub async fn count_rows(&self, table: &str) -> i64 {
        let pool = sqlx::SqlitePool::connect(&self.db_url)
            .await
            .expect("open the test database");
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&pool)
            .await
            .expect("count rows");
        pool.close().await;
        count
    }

    /// Stops the service and waits until its listeners are closed.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The response's JSON body.
pub async fn json(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}
