//! `certfleet certs`: the operator's client of the inventory and admin API, with the fetch
//! client's server, credential and trust flags. A readable table by default, `--json` for
//! scripts (the API's own JSON, never a private key).
//!
//! Exit codes: 0 done; 1 the command failed (the server refused it, or could not be reached:
//! one line on stderr says why); 2 the command line is wrong (clap's usage error); 3 `list`
//! printed a failing certificate (`backing_off`, `expired` or `revoked`), so that a cron job
//! can alert on it.

use std::process::ExitCode;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use super::fetch::{Connection, PlanError, ServerArgs};
use certfleet::domain::{KeyType, NameSet, RevocationReason};
use certfleet::util::clock;

/// The longest one request may take (a renewal waits for the issuance: `server.issueWait`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// The largest answer read (a page of 1,000 entries is about half a megabyte).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Exit status of `list` when a listed certificate is failing.
const EXIT_FAILING: u8 = 3;

/// `certfleet certs`.
#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    /// The server, the credential and the trust.
    #[command(flatten)]
    pub connect: ServerArgs,

    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: CertsCommand,
}

/// What to do.
#[derive(Debug, clap::Subcommand)]
pub enum CertsCommand {
    /// List the certificates (every one for an admin credential, else those it may request),
    /// soonest expiry first; failing ones are marked with `!`.
    List {
        /// Only certificates with a name this pattern matches (`*.example.com`).
        #[arg(long, value_name = "PATTERN")]
        name: Option<String>,
        /// Only this status: valid, due, renewing, backing_off, expired or revoked.
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
        /// At most this many certificates (default: all, read page by page).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// One certificate: its state, its history and who received which serial.
    Show(Target),
    /// Force a new certificate with a new key now (at most once per identity per hour).
    Renew(Target),
    /// Revoke the current certificate at the CA (admin); keyCompromise and superseded get a
    /// replacement with a new key at once.
    Revoke {
        #[command(flatten)]
        target: Target,
        /// unspecified, keyCompromise, superseded, cessationOfOperation or affiliationChanged.
        #[arg(long, value_name = "REASON")]
        reason: String,
    },
    /// Stop managing a certificate (admin): no more renewals, its key deleted, its history
    /// kept.
    Delete {
        #[command(flatten)]
        target: Target,
        /// Revoke it at the CA (cessationOfOperation) first.
        #[arg(long)]
        revoke: bool,
    },
}

/// Which certificate: an inventory id, or its names (and key type).
#[derive(Debug, clap::Args)]
pub struct Target {
    /// The id from `list`, or the certificate's names (one certificate for all of them).
    #[arg(value_name = "ID|NAME", required = true)]
    pub names: Vec<String>,
    /// The key type (default: the server's acme.keyType).
    #[arg(long, value_name = "TYPE")]
    pub key_type: Option<String>,
}

/// Why a command failed; its `Display` is the line printed.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// The server, credential or trust flags.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The HTTP client cannot be set up.
    #[error(transparent)]
    Client(#[from] super::fetch::HttpError),
    /// A name or key type that is not one.
    #[error("{0}")]
    Usage(String),
    /// No answer; `call` is the method and URL.
    #[error("{call}: {source}")]
    Request {
        call: String,
        source: reqwest::Error,
    },
    /// The server refused: its status, code and message.
    #[error("{call}: {status}: {message} ({code})")]
    Refused {
        call: String,
        status: StatusCode,
        code: String,
        message: String,
    },
    /// An answer that is not certfleet's JSON.
    #[error("{call}: the answer is not certfleet's JSON: {why}")]
    Unreadable { call: String, why: String },
}

/// Runs the command; prints the error (exit 1) or the result.
pub fn main(args: CertsArgs) -> ExitCode {
    super::run_async_with_code(run(args))
}

async fn run(args: CertsArgs) -> Result<ExitCode, CertsError> {
    let mut warnings = Vec::new();
    let connection = Connection::new(
        &args.connect,
        |name| std::env::var(name).ok(),
        &mut warnings,
    )?;
    for warning in &warnings {
        eprintln!("certfleet: warning: {warning}");
    }
    let (client, authorization) =
        connection.client(concat!("certfleet-certs/", env!("CARGO_PKG_VERSION")))?;
    let api = Api {
        client,
        authorization,
        server: connection.server.clone(),
    };
    let now = clock::now();
    match args.command {
        CertsCommand::List {
            name,
            status,
            limit,
        } => {
            let items = api.list(name.as_deref(), status.as_deref(), limit).await?;
            let failing = items.iter().any(is_failing);
            if args.json {
                print_json(&Value::Array(items));
            } else {
                print!("{}", table(&items, now));
            }
            Ok(if failing {
                ExitCode::from(EXIT_FAILING)
            } else {
                ExitCode::SUCCESS
            })
        }
        CertsCommand::Show(target) => {
            let detail = api.detail(&target).await?;
            if args.json {
                print_json(&detail);
            } else {
                print!("{}", detail_text(&detail, now));
            }
            Ok(ExitCode::SUCCESS)
        }
        CertsCommand::Renew(target) => {
            let (names, key) = api.identity(&target).await?;
            let mut body = json!({"domains": names});
            for (param, value) in key {
                body[param] = json!(value);
            }
            let mut answer = api
                .call(Method::POST, "api/certificate/renew", None, Some(&body))
                .await?;
            // The body has the chain, not its serial: read it from the leaf.
            answer["serial"] = json!(answer["certificate"].as_str().and_then(leaf_serial));
            answer["names"] = answer["domains"].clone();
            // Only what an operator needs; the private key is never printed.
            if let Some(fields) = answer.as_object_mut() {
                fields.retain(|k, _| {
                    [
                        "names",
                        "keyMode",
                        "keyType",
                        "spkiSha256",
                        "profile",
                        "serial",
                        "notBefore",
                        "notAfter",
                        "renewAfter",
                    ]
                    .contains(&k.as_str())
                });
            }
            if args.json {
                print_json(&answer);
            } else {
                println!(
                    "renewed {}: serial {}, valid until {} ({})",
                    names.join(" "),
                    text(&answer["serial"]),
                    text(&answer["notAfter"]),
                    relative(&answer["notAfter"], now)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CertsCommand::Revoke { target, reason } => {
            if RevocationReason::parse(&reason).is_none() {
                return Err(CertsError::Usage(format!(
                    "--reason {reason:?}: use one of {}",
                    RevocationReason::names()
                )));
            }
            let (names, key) = api.identity(&target).await?;
            let mut body = json!({"domains": names, "reason": reason});
            for (param, value) in key {
                body[param] = json!(value);
            }
            let answer = api
                .call(Method::POST, "api/certificate/revoke", None, Some(&body))
                .await?;
            if args.json {
                print_json(&answer);
            } else {
                println!(
                    "revoked {} ({}): serial {}",
                    names.join(" "),
                    text(&answer["reason"]),
                    text(&answer["serial"])
                );
                let replacement = &answer["replacement"];
                match replacement["status"].as_str() {
                    Some("issued") => {
                        println!(
                            "replacement issued: serial {}",
                            text(&replacement["serial"])
                        );
                    }
                    Some("issuing") => println!("replacement being issued"),
                    Some(_) => println!(
                        "replacement failed: {}; the server retries it",
                        text(&replacement["error"]["message"])
                    ),
                    None => println!("no replacement: it is served again once requested"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CertsCommand::Delete { target, revoke } => {
            let (names, key) = api.identity(&target).await?;
            let mut query: Vec<(&str, String)> =
                names.iter().map(|n| ("domain", n.clone())).collect();
            query.extend(key);
            if revoke {
                query.push(("revoke", "true".to_owned()));
            }
            let answer = api
                .call(Method::DELETE, "api/certificate", Some(&query), None)
                .await?;
            if args.json {
                print_json(&answer);
            } else {
                println!(
                    "deleted {}{}; its history stays (certfleet certs show {})",
                    names.join(" "),
                    if answer["revoked"] == true {
                        " (revoked first: cessationOfOperation)"
                    } else {
                        ""
                    },
                    text(&answer["id"])
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The server's API, as this command uses it.
struct Api {
    client: reqwest::Client,
    authorization: HeaderValue,
    server: Url,
}

impl Api {
    /// One request; the JSON answer of a 2xx, else the server's error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: Option<&[(&str, String)]>,
        body: Option<&Value>,
    ) -> Result<Value, CertsError> {
        let mut url = self.server.join(path).map_err(|e| CertsError::Unreadable {
            call: format!("{method} {}{path}", self.server),
            why: e.to_string(),
        })?;
        if let Some(query) = query {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self
            .client
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .timeout(REQUEST_TIMEOUT);
        if let Some(body) = body {
            request = request.json(body);
        }
        let call = format!("{method} {url}");
        let fail = |source| CertsError::Request {
            call: call.clone(),
            source,
        };
        let mut response = request.send().await.map_err(fail)?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(fail)? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_BODY_BYTES {
                return Err(CertsError::Unreadable {
                    call,
                    why: format!("larger than {MAX_BODY_BYTES} bytes"),
                });
            }
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| CertsError::Unreadable {
            call: call.clone(),
            why: e.to_string(),
        })?;
        if status.is_success() {
            return Ok(value);
        }
        Err(CertsError::Refused {
            call,
            status,
            code: text(&value["code"]),
            message: text(&value["message"]),
        })
    }

    /// Every page of the list, until `limit` entries.
    async fn list(
        &self,
        name: Option<&str>,
        status: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<Value>, CertsError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let want = limit.map_or(1_000, |l| (l - items.len()).clamp(1, 1_000));
            let mut query = vec![("limit", want.to_string())];
            query.extend(name.map(|n| ("name", n.to_owned())));
            query.extend(status.map(|s| ("status", s.to_owned())));
            query.extend(cursor.take().map(|c| ("cursor", c)));
            let page = self
                .call(Method::GET, "api/certificates", Some(&query), None)
                .await?;
            if let Some(page_items) = page["items"].as_array() {
                items.extend(page_items.iter().cloned());
            }
            if limit.is_some_and(|l| items.len() >= l) {
                items.truncate(limit.unwrap_or(usize::MAX));
                return Ok(items);
            }
            match page["next"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(items),
            }
        }
    }

    /// The detail of the target: by id, or found by its names (and key type) in the list.
    async fn detail(&self, target: &Target) -> Result<Value, CertsError> {
        let id = match target_id(target) {
            Some(id) => id,
            None => self.find_id(target).await?,
        };
        self.call(Method::GET, &format!("api/certificates/{id}"), None, None)
            .await
    }

    /// The id of the identity with exactly the target's names (and key type, when given).
    async fn find_id(&self, target: &Target) -> Result<String, CertsError> {
        let (names, key_type) = parse_names(target)?;
        let wanted: Vec<&str> = names
            .names()
            .iter()
            .map(certfleet::domain::DomainName::as_str)
            .collect();
        let first = wanted.first().copied().unwrap_or_default();
        let found: Vec<Value> = self
            .list(Some(first), None, None)
            .await?
            .into_iter()
            .filter(|item| {
                let listed: Vec<&str> = item["names"]
                    .as_array()
                    .map(|n| n.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                listed == wanted
                    && key_type.is_none_or(|k| item["keyType"].as_str() == Some(k.as_str()))
            })
            .collect();
        match found.as_slice() {
            [one] => Ok(text(&one["id"])),
            [] => Err(CertsError::Usage(format!(
                "no certificate for {names} is listed for this credential"
            ))),
            _ => Err(CertsError::Usage(format!(
                "{names} has certificates of several key types; give --key-type"
            ))),
        }
    }

    /// The target's names and the rest of its identity, as the API names them: `keyType`
    /// (absent: the server's default) or, for a client's key (CSR mode), `spkiSha256`, and
    /// `profile` when it names one; an id is looked up.
    async fn identity(&self, target: &Target) -> Result<(Vec<String>, Vec<KeyParam>), CertsError> {
        if target_id(target).is_some() {
            let detail = self.detail(target).await?;
            let names = detail["names"]
                .as_array()
                .map(|names| names.iter().map(text).collect())
                .unwrap_or_default();
            let mut key: Vec<KeyParam> =
                match (detail["keyType"].as_str(), detail["spkiSha256"].as_str()) {
                    (Some(key_type), _) => vec![("keyType", key_type.to_owned())],
                    (None, Some(spki)) => vec![("spkiSha256", spki.to_owned())],
                    (None, None) => Vec::new(),
                };
            key.extend(
                detail["profile"]
                    .as_str()
                    .map(|p| ("profile", p.to_owned())),
            );
            return Ok((names, key));
        }
        let (names, key_type) = parse_names(target)?;
        let names = names
            .names()
            .iter()
            .map(|n| n.as_str().to_owned())
            .collect();
        Ok((
            names,
            key_type
                .map(|k| ("keyType", k.as_str().to_owned()))
                .into_iter()
                .collect(),
        ))
    }
}

/// How a request names part of an identity: `("keyType", type)`, `("spkiSha256", hash)` or
/// `("profile", name)`.
type KeyParam = (&'static str, String);

/// The id of a target given as one word without a dot (names always have one).
fn target_id(target: &Target) -> Option<String> {
    match target.names.as_slice() {
        [one] if !one.contains('.') && target.key_type.is_none() => Some(one.clone()),
        _ => None,
    }
}

fn parse_names(target: &Target) -> Result<(NameSet, Option<KeyType>), CertsError> {
    let names = NameSet::parse(&target.names).map_err(|e| CertsError::Usage(e.to_string()))?;
    let key_type = target
        .key_type
        .as_deref()
        .map(|text| {
            KeyType::parse(text).ok_or_else(|| {
                CertsError::Usage(format!(
                    "--key-type {text:?}: use one of {}",
                    KeyType::names()
                ))
            })
        })
        .transpose()?;
    Ok((names, key_type))
}

fn is_failing(item: &Value) -> bool {
    matches!(
        item["status"].as_str(),
        Some("backing_off" | "expired" | "revoked")
    )
}

fn print_json(value: &Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(err) => eprintln!("certfleet: cannot print the JSON: {err}"),
    }
}

/// A JSON value as text: strings bare, `null` as `-`.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An RFC 3339 time (as the API writes them) relative to `now`: "in 23 days", "2 hours ago".
fn relative(value: &Value, now: i64) -> String {
    value
        .as_str()
        .and_then(clock::parse_rfc3339)
        .map_or_else(|| "-".to_owned(), |at| clock::relative(at, now))
}

/// The list as a table: failing rows marked `!`, expiry relative, the last error cut short.
fn table(items: &[Value], now: i64) -> String {
    let header = [
        "",
        "STATUS",
        "EXPIRES",
        "NAMES",
        "KEY",
        "SERIAL",
        "LAST ERROR",
    ];
    let rows: Vec<[String; 7]> = items
        .iter()
        .map(|item| {
            let names = item["names"]
                .as_array()
                .map(|n| n.iter().map(text).collect::<Vec<_>>().join(","))
                .unwrap_or_default();
            let serial = text(&item["serial"]);
            let error = match &item["lastError"] {
                Value::Null => String::new(),
                e => format!(
                    "{}: {}",
                    text(&e["code"]),
                    shorten(&text(&e["message"]), 60)
                ),
            };
            [
                if is_failing(item) { "!" } else { "" }.to_owned(),
                text(&item["status"]),
                match &item["notAfter"] {
                    Value::Null => "-".to_owned(),
                    at => relative(at, now),
                },
                names,
                key_text(item),
                shorten(&serial, 16),
                error,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    let failing = items.iter().filter(|i| is_failing(i)).count();
    out.push_str(&format!(
        "{} certificate{}, {failing} failing\n",
        items.len(),
        if items.len() == 1 { "" } else { "s" }
    ));
    out
}

/// The serial of the first certificate of `chain_pem`, lowercase hex, as the inventory shows it.
fn leaf_serial(chain_pem: &str) -> Option<String> {
    use x509_parser::prelude::FromDer as _;
    let der = certfleet::util::pem::first_certificate(chain_pem).ok()?;
    let (_, leaf) = x509_parser::certificate::X509Certificate::from_der(&der).ok()?;
    Some(
        leaf.tbs_certificate
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// An identity's key in a few words: its type, or (CSR mode) `client:` and the start of its
/// `spkiSha256`.
fn key_text(item: &Value) -> String {
    let key = match (item["keyType"].as_str(), item["spkiSha256"].as_str()) {
        (Some(key_type), _) => key_type.to_owned(),
        (None, Some(spki)) => format!("client:{}", shorten(spki, 12)),
        (None, None) => "-".to_owned(),
    };
    match item["profile"].as_str() {
        Some(profile) => format!("{key}@{profile}"),
        None => key,
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// One certificate, its history and its deliveries, as text.
fn detail_text(detail: &Value, now: i64) -> String {
    let mut out = String::new();
    let names = detail["names"]
        .as_array()
        .map(|n| n.iter().map(text).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let field = |out: &mut String, label: &str, value: String| {
        out.push_str(&format!("{label:<12} {value}\n"));
    };
    field(&mut out, "names", names);
    field(&mut out, "id", text(&detail["id"]));
    field(&mut out, "key", key_text(detail));
    field(&mut out, "status", text(&detail["status"]));
    field(&mut out, "serial", text(&detail["serial"]));
    for (label, key) in [
        ("not before", "notBefore"),
        ("not after", "notAfter"),
        ("renew after", "renewAfter"),
        ("next attempt", "nextAttempt"),
        ("revoked at", "revokedAt"),
    ] {
        if !detail[key].is_null() {
            field(
                &mut out,
                label,
                format!("{} ({})", text(&detail[key]), relative(&detail[key], now)),
            );
        }
    }
    if !detail["revocationReason"].is_null() {
        field(&mut out, "reason", text(&detail["revocationReason"]));
    }
    if let Some(error) = detail["lastError"].as_object() {
        field(
            &mut out,
            "last error",
            format!(
                "{}: {} ({} in a row)",
                text(&error["code"]),
                text(&error["message"]),
                text(&error["count"])
            ),
        );
    }
    out.push_str("\nhistory (newest first):\n");
    for entry in detail["history"].as_array().into_iter().flatten() {
        let outcome = match entry["errorCode"].as_str() {
            Some(code) => format!("failure {code}"),
            None => "success".to_owned(),
        };
        out.push_str(&format!(
            "  {}  {:<12} {:<24} {:>7} ms  {}{}\n",
            text(&entry["at"]),
            text(&entry["trigger"]),
            outcome,
            text(&entry["durationMs"]),
            text(&entry["serial"]),
            entry["message"]
                .as_str()
                .map(|m| format!("  {m}"))
                .unwrap_or_default()
        ));
    }
    out.push_str("\ndeliveries (per credential, the last serial received):\n");
    for entry in detail["deliveries"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:<32} {}  {}\n",
            text(&entry["principal"]),
            text(&entry["serial"]),
            text(&entry["at"])
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_times_read_relative_to_now() {
        let now = 1_800_000_000;
        let at = |delta: i64| json!(clock::rfc3339(now + delta));
        assert_eq!(relative(&at(23 * 86_400 + 100), now), "in 23 days");
        assert_eq!(relative(&at(-7_200), now), "2 hours ago");
        assert_eq!(relative(&Value::Null, now), "-");
        assert_eq!(relative(&json!("soon"), now), "-");
    }

    #[test]
    fn the_table_marks_failing_rows_and_counts_them() {
        let now = 1_800_000_000;
        let items = [
            json!({"status": "backing_off", "names": ["a.example.com"], "keyType": "ecdsa-p256",
                   "serial": null, "notAfter": null,
                   "lastError": {"code": "validation_failed", "message": "no answer"}}),
            json!({"status": "valid", "names": ["b.example.com", "c.example.com"],
                   "keyType": "rsa-2048", "serial": "0123456789abcdef0123",
                   "notAfter": clock::rfc3339(now + 23 * 86_400 + 60), "lastError": null}),
        ];
        let table = table(&items, now);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("   STATUS"), "{table}");
        assert!(lines[1].starts_with("!  backing_off"), "{table}");
        assert!(
            lines[1].ends_with("validation_failed: no answer"),
            "{table}"
        );
        assert!(lines[2].starts_with("   valid"), "{table}");
        assert!(lines[2].contains("in 23 days"), "{table}");
        assert!(lines[2].contains("b.example.com,c.example.com"), "{table}");
        assert!(lines[2].contains("0123456789abcde…"), "{table}");
        assert_eq!(lines[3], "2 certificates, 1 failing");
    }

    #[test]
    fn a_target_is_an_id_or_names() {
        let target = |names: &[&str], key_type: Option<&str>| Target {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            key_type: key_type.map(str::to_owned),
        };
        let id = "ZWNkc2EtcDI1NnxhLmV4YW1wbGUuY29t";
        assert_eq!(target_id(&target(&[id], None)), Some(id.to_owned()));
        assert_eq!(target_id(&target(&["a.example.com"], None)), None);
        assert_eq!(target_id(&target(&[id, "b"], None)), None);
        assert!(parse_names(&target(&["a..b"], None)).is_err());
        assert!(parse_names(&target(&["a.example.com"], Some("dsa"))).is_err());
    }
}
