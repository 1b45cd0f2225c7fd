//! `certfleet fetch`: the fleet client. One run asks certfleet for the certificate of a name set
//! and keeps it in a directory, for cron or a systemd timer (docs/fetch.md):
//!
//! 1. with `--key local`, read `DIR/key.pem` (made, 0600, when missing) and build the CSR; a
//!    rotation (`--rotate-key`, `--rotate-every`, or one left unfinished) makes its new key in
//!    `DIR/.key.next.pem` first, or takes the one already there ([`key`]);
//! 2. read `DIR/.etag` (only when all four PEM files are there too);
//! 3. `GET /api/certificate` with `If-None-Match` (and `spkiSha256` with `--key local`): 304
//!    ends the run, nothing touched; 404 falls back to `POST /api/certificate` (with the CSR),
//!    so a first run also issues; a rotation POSTs at once, naming the key it `replaces`; 202 is
//!    polled at its `Location` after `Retry-After`, within `--wait` ([`http`]);
//! 4. check the 200 body before touching anything: the PEMs parse, the leaf covers every
//!    requested name, and its key is the one sent with it, or with `--key local` this machine's
//!    key, and no key was sent ([`bundle`]);
//! 5. write the files that differ, each atomically; a rotation then renames `.key.next.pem`
//!    over `key.pem`; `.etag` last ([`files`]);
//! 6. run `--exec` when files changed.
//!
//! Any failure is one line on stderr, exit status 1, and the old files as they were (an
//! unfinished rotation keeps its `.key.next.pem` for the next run).
//!
//! With `--watch` the run repeats for good: each later GET asks the server to hold it until
//! the certificate changes (`wait=`, `--watch-hold`), so a renewal is written and `--exec` run
//! within a second; a failure is printed and retried with back-off (1 s doubling to 60 s), so a
//! restarting server is waited out.

mod args;
mod bundle;
mod credential;
mod files;
mod formats;
mod http;
mod key;
mod p12;
mod tls;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use reqwest::Url;

use certfleet::domain::{DomainError, DomainName, KeyType, NameSet, Profile};
use certfleet::util::duration::{DurationError, parse_duration};

use self::args::{API_KEY_ENV, TOKEN_ENV, UrlError};
pub use self::args::{FetchArgs, ServerArgs};
use self::bundle::{Bundle, BundleError, CertBody, LeafKey};
use self::credential::{Credential, CredentialError};
use self::files::{FilesError, KEY, NEXT_KEY, OutDir};
use self::formats::Formats;
pub use self::formats::{FormatError, RenderError};
pub use self::http::HttpError;
use self::http::{Answer, Api, Ask};
pub use self::key::LocalKeyError;
use self::key::{KeyStep, Rotation};
use self::tls::{Trust, TrustError};

/// Why a run of `certfleet fetch` failed; its `Display` is the one line printed on stderr.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The command line does not make a run.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The output directory cannot be opened, locked or written.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// With `--key local`: the key cannot be read, made or put in a CSR.
    #[error(transparent)]
    Key(#[from] LocalKeyError),
    /// The server gave no usable answer.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The server's 200 failed the checks; the files were left alone.
    #[error("refused the server's certificate for {names}: {source}; nothing was written")]
    Refused { names: NameSet, source: BundleError },
    /// `cert.p12` or `combined.pem` could not be made; nothing was written.
    #[error("{0}; nothing was written")]
    Render(#[from] RenderError),
    /// The files were written but `--exec` did not succeed.
    #[error(transparent)]
    Exec(#[from] ExecError),
}

/// A flag or environment value that does not make a run, found before the network or the disk.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// `--server` does not parse as a URL; `text` is the flag's value.
    #[error(
        "--server {text:?}: not a URL ({source}); write it like https://certs.example.com:8443"
    )]
    ServerNotUrl { text: String, source: UrlError },
    /// `--server` holds a user name or password (not kept: it is a secret).
    #[error(
        "--server: the URL carries a user name or password; give the key with --api-key-file or CERTFLEET_API_KEY instead"
    )]
    ServerUserInfo,
    /// `--server` has another scheme than http or https.
    #[error(
        "--server {text:?}: scheme {scheme:?} is not supported; use https:// (or http:// on loopback)"
    )]
    ServerScheme { text: String, scheme: String },
    /// `--server` carries a query or fragment.
    #[error("--server {text:?}: give the base URL only, without ?query or #fragment")]
    ServerNotBase { text: String },
    /// A `--domain` is not a name certfleet accepts.
    #[error("--domain: {source}")]
    Domain { source: DomainError },
    /// `--key-type` is not one of certfleet's key types.
    #[error("--key-type {text:?}: use one of {}", KeyType::names())]
    KeyType { text: String },
    /// `--profile` is not a profile name.
    #[error("--profile {text:?}: a profile name is 1 to 64 letters, digits, '.', '_' or '-'")]
    Profile { text: String },
    /// `--key` is neither `server` nor `local`.
    #[error(
        "--key {text:?}: use server (certfleet makes the key) or local (the key is made here and never leaves this machine)"
    )]
    KeyMode { text: String },
    /// `--rotate-key` or `--rotate-every` without `--key local`.
    #[error(
        "{flag} rotates a key kept on this machine: add --key local (with --key server, the server makes a new key for every certificate)"
    )]
    RotationNeedsLocalKey { flag: &'static str },
    /// No usable credential.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// `--ca-file` or `--pin-sha256` with a plain-HTTP server.
    #[error(
        "--ca-file and --pin-sha256 secure HTTPS, but --server {server} is http://; use https://"
    )]
    TrustOverHttp { server: Url },
    /// `--ca-file` or `--pin-sha256` is unusable.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// `--format`, `--p12-password-file` or `--combined` is unusable.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// `--wait` is not a duration.
    #[error("--wait: {source}")]
    Wait {
        /// What is wrong with it.
        source: DurationError,
    },
    /// `--wait` is below one second.
    #[error("--wait: give at least 1s (the default is 10m)")]
    WaitTooShort,
    /// `--watch-hold` is not a duration.
    #[error("--watch-hold: {source}")]
    WatchHold {
        /// What is wrong with it.
        source: DurationError,
    },
    /// `--watch-hold` is below one second.
    #[error("--watch-hold: give at least 1s (the default is 5m)")]
    WatchHoldTooShort,
}

/// `--exec` did not succeed after the files were updated; it is owed to the next run.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The blocking task that waits for the shell panicked or was cancelled.
    #[error("--exec: the task running it failed: {source}")]
    Task { source: tokio::task::JoinError },
    /// The shell could not be started, or the command exited unsuccessfully.
    #[error(
        "the files in {} were updated, but --exec {command:?} {why}; it runs again on the next run",
        .out.display()
    )]
    Failed {
        out: PathBuf,
        command: String,
        #[source]
        why: ExecFailure,
    },
}

/// How `--exec` failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecFailure {
    /// The command exited unsuccessfully or was killed.
    #[error("failed ({0})")]
    Status(ExitStatus),
    /// `sh` could not be started.
    #[error("could not start: {0}")]
    Start(#[source] std::io::Error),
}

/// `certfleet fetch`: logs at the default level (it never reads the server's config) and runs,
/// with credentials from the process environment when no file is given.
pub fn main(args: FetchArgs) -> std::process::ExitCode {
    certfleet::observe::logging::init(&certfleet::config::LogConfig::default());
    super::run_async(run(args))
}

/// The back-off of `--watch` after a failure: doubling from the first to the last.
const WATCH_RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));

/// Brings `--out` up to date with the server's certificate (and with `--watch` keeps it so).
/// The error's `Display` is the one line to print.
pub async fn run(args: FetchArgs) -> Result<(), FetchError> {
    let plan = Plan::new(args, |name| std::env::var(name).ok())?;
    warn(&plan.warnings);
    let out = OutDir::open(&plan.out)?;
    let api = Api::new(&plan.server, &plan.credential, &plan.trust)?;
    let Some(hold) = plan.watch else {
        return once(&plan, &out, &api, None).await;
    };
    let mut retry = WATCH_RETRY.0;
    let mut held = None;
    loop {
        match once(&plan, &out, &api, held).await {
            Ok(()) => {
                retry = WATCH_RETRY.0;
                held = Some(hold);
            }
            Err(err) => {
                eprintln!(
                    "certfleet: {err}; --watch tries again in {}s",
                    retry.as_secs()
                );
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(WATCH_RETRY.1);
                // After a failure, a plain run first: the server may have restarted with
                // another certificate, or the files may need rewriting.
                held = None;
            }
        }
    }
}

/// One run: `hold`, the watch's request held until the certificate changes.
async fn once(
    plan: &Plan,
    out: &OutDir,
    api: &Api,
    hold: Option<Duration>,
) -> Result<(), FetchError> {
    let mut warnings = Vec::new();
    let keys = plan
        .local
        .map(|rotation| KeyStep::prepare(out, &plan.names, plan.key_type, rotation, &mut warnings))
        .transpose()?;
    warn(&warnings);
    let ask = keys
        .as_ref()
        .map_or(Ask::Server(plan.key_type), KeyStep::ask);
    // A rotation orders for a new key: the tag of the old key's certificate says nothing.
    let etag = match &keys {
        Some(step) if step.rotating() => None,
        _ => out.etag(),
    };
    // A missing cert.p12 or combined.pem is made again from a full answer.
    let etag = etag.filter(|_| {
        plan.formats
            .files()
            .iter()
            .all(|name| out.path(name).is_file())
    });
    let answer = api
        .fetch(
            &plan.names,
            plan.profile.as_ref(),
            ask,
            etag.as_deref(),
            plan.wait,
            hold,
        )
        .await?;
    let changed = match answer {
        Answer::NotModified => false,
        Answer::Certificate { body, etag } => {
            install(plan, out, keys.as_ref(), &body, etag.as_deref())?
        }
    };
    match &plan.exec {
        Some(command) if changed || out.exec_pending() => {
            run_exec(command, &plan.out, &plan.names).await?;
            Ok(out.clear_exec_pending()?)
        }
        _ => Ok(()),
    }
}

/// Prints each warning on stderr.
fn warn(warnings: &[String]) {
    for warning in warnings {
        eprintln!("certfleet: warning: {warning}");
    }
}

/// Checks a 200 body against the names and the key it must be for (`keys`, with `--key
/// local`), then writes what differs. Returns whether a PEM file changed.
fn install(
    plan: &Plan,
    out: &OutDir,
    keys: Option<&KeyStep>,
    body: &CertBody,
    etag: Option<&str>,
) -> Result<bool, FetchError> {
    let leaf_key = keys.map_or(LeafKey::Sent, |step| LeafKey::Local(&step.key().spki_der));
    let now = certfleet::util::clock::now();
    let bundle =
        Bundle::check(body, &plan.names, now, leaf_key).map_err(|source| FetchError::Refused {
            names: plan.names.clone(),
            source,
        })?;
    // The key of the extra files: the server's, or this machine's (a rotation's new one).
    let key_file = match keys {
        Some(step) if step.rotating() => NEXT_KEY,
        _ => KEY,
    };
    let local_pem;
    let key_pem = match &bundle.key_pem {
        Some(pem) => pem.as_str(),
        None => {
            local_pem = out.read(key_file)?.unwrap_or_default();
            local_pem.as_str()
        }
    };
    let extras = plan.formats.render(&bundle, key_pem, key_file)?;
    let client_key = keys.map(KeyStep::client_key);
    let changed = out.install_with(&bundle, &extras, client_key, etag, plan.exec.is_some())?;
    if changed {
        let new_key = if keys.is_some_and(KeyStep::rotating) {
            " with a new key"
        } else {
            ""
        };
        println!(
            "certfleet: wrote {} for {}{new_key} (valid until {})",
            plan.out.display(),
            plan.names,
            bundle.not_after
        );
    }
    Ok(changed)
}

/// The command line, checked: every input parsed once, before the network or the disk.
#[derive(Debug)]
struct Plan {
    server: Url,
    names: NameSet,
    key_type: Option<KeyType>,
    /// `--profile`.
    profile: Option<Profile>,
    /// `--key local` and when to rotate; `None` with `--key server`.
    local: Option<Rotation>,
    credential: Credential,
    trust: Trust,
    out: PathBuf,
    exec: Option<String>,
    /// `--format p12` and `--combined`.
    formats: Formats,
    wait: Duration,
    /// `--watch`, with `--watch-hold`.
    watch: Option<Duration>,
    warnings: Vec<String>,
}

impl Plan {
    /// `env` reads an environment variable (a parameter so tests need not touch the process's).
    fn new(args: FetchArgs, env: impl Fn(&str) -> Option<String>) -> Result<Self, PlanError> {
        let mut warnings = Vec::new();
        let Connection {
            server,
            credential,
            trust,
        } = Connection::new(&args.connect, env, &mut warnings)?;
        let names = NameSet::parse(&args.domains).map_err(|source| PlanError::Domain { source })?;
        let key_type = args
            .key_type
            .as_deref()
            .map(|text| {
                KeyType::parse(text).ok_or_else(|| PlanError::KeyType {
                    text: text.to_owned(),
                })
            })
            .transpose()?;
        let profile = args
            .profile
            .as_deref()
            .map(|text| {
                Profile::parse(text).ok_or_else(|| PlanError::Profile {
                    text: text.to_owned(),
                })
            })
            .transpose()?;
        let local = local_key(&args)?;
        let formats = Formats::new(&args)?;
        let wait = parse_duration(&args.wait).map_err(|source| PlanError::Wait { source })?;
        if wait < Duration::from_secs(1) {
            return Err(PlanError::WaitTooShort);
        }
        let watch = match args.watch {
            false => None,
            true => {
                let hold = parse_duration(&args.watch_hold)
                    .map_err(|source| PlanError::WatchHold { source })?;
                if hold < Duration::from_secs(1) {
                    return Err(PlanError::WatchHoldTooShort);
                }
                Some(hold)
            }
        };
        Ok(Self {
            server,
            names,
            key_type,
            profile,
            local,
            credential,
            trust,
            out: args.out,
            exec: args.exec,
            formats,
            wait,
            watch,
            warnings,
        })
    }
}

/// `--key` with `--rotate-key` / `--rotate-every`: `Some` rotation for `--key local`, `None` for
/// `--key server`, which has no key to rotate.
fn local_key(args: &FetchArgs) -> Result<Option<Rotation>, PlanError> {
    let rotation = Rotation {
        now: args.rotate_key,
        every: args.rotate_every,
    };
    match args.key.as_str() {
        "local" => Ok(Some(rotation)),
        "server" if rotation.now => Err(PlanError::RotationNeedsLocalKey {
            flag: "--rotate-key",
        }),
        "server" if rotation.every > 0 => Err(PlanError::RotationNeedsLocalKey {
            flag: "--rotate-every",
        }),
        "server" => Ok(None),
        other => Err(PlanError::KeyMode {
            text: other.to_owned(),
        }),
    }
}

/// The server, the credential and the trust of a client: `--server`, `--api-key-file` /
/// `--token-file` (or the environment), `--ca-file` / `--pin-sha256`, each checked.
#[derive(Debug)]
pub(crate) struct Connection {
    /// The base URL, ending in `/`.
    pub server: Url,
    credential: Credential,
    trust: Trust,
}

impl Connection {
    /// `env` reads an environment variable; what deserves a warning is added to `warnings`.
    pub(crate) fn new(
        args: &ServerArgs,
        env: impl Fn(&str) -> Option<String>,
        warnings: &mut Vec<String>,
    ) -> Result<Self, PlanError> {
        let server = parse_server(&args.server, warnings)?;
        let credential = Credential::new(args, env, warnings)?;
        if server.scheme() == "http" && (args.ca_file.is_some() || args.pin_sha256.is_some()) {
            return Err(PlanError::TrustOverHttp { server });
        }
        let trust = Trust::new(args.ca_file.as_deref(), args.pin_sha256.as_deref())?;
        Ok(Self {
            server,
            credential,
            trust,
        })
    }

    /// A client for the server (no redirects: one could carry the credential elsewhere), and
    /// the `Authorization` header to send with every request.
    pub(crate) fn client(
        &self,
        user_agent: &'static str,
    ) -> Result<(reqwest::Client, reqwest::header::HeaderValue), HttpError> {
        let client = http::client(&self.trust, user_agent)?;
        Ok((client, self.credential.header()?))
    }
}

/// Parses `--server`: http or https, no credentials in the URL; plain HTTP warned about unless
/// the host is loopback.
fn parse_server(text: &str, warnings: &mut Vec<String>) -> Result<Url, PlanError> {
    let mut url = Url::parse(text).map_err(|source| PlanError::ServerNotUrl {
        text: text.to_owned(),
        source,
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: the URL holds a password.
        return Err(PlanError::ServerUserInfo);
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => warnings.push(format!(
            "--server {url} is plain HTTP: the API key, and any private key the server sends, cross the network in clear; use https://"
        )),
        other => {
            return Err(PlanError::ServerScheme {
                text: text.to_owned(),
                scheme: other.to_owned(),
            });
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(PlanError::ServerNotBase {
            text: text.to_owned(),
        });
    }
    // A base with a path (behind a reverse proxy at /certfleet) must end in '/' for the API
    // paths to be joined below it rather than replace its last segment.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Whether the URL's host is on this machine: `localhost`, 127.0.0.0/8 or `::1`.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// Runs `--exec` through `sh -c`, with the output directory and the names in its environment
/// and the client's credentials removed from it.
async fn run_exec(command: &str, out: &Path, names: &NameSet) -> Result<(), ExecError> {
    let domains = names
        .names()
        .iter()
        .map(DomainName::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("sh");
    child
        .arg("-c")
        .arg(command)
        .env("CERTFLEET_OUT", out)
        .env("CERTFLEET_DOMAINS", domains)
        .env_remove(API_KEY_ENV)
        .env_remove(TOKEN_ENV)
        .stdin(Stdio::null());
    let status = tokio::task::spawn_blocking(move || child.status())
        .await
        .map_err(|source| ExecError::Task { source })?;
    let why = match status {
        Ok(status) if status.success() => return Ok(()),
        Ok(status) => ExecFailure::Status(status),
        Err(e) => ExecFailure::Start(e),
    };
    Err(ExecError::Failed {
        out: out.to_owned(),
        command: command.to_owned(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: FetchArgs,
    }

    fn args(extra: &[&str]) -> FetchArgs {
        let mut argv = vec![
            "fetch",
            "--server",
            "https://certs.example.com:8443",
            "--domain",
            "www.example.com",
            "--out",
            "/tmp/x",
        ];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("valid flags").args
    }

    fn plan(extra: &[&str], env: &[(&str, &str)]) -> Result<Plan, PlanError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Plan::new(args(extra), move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    /// Flags, environment, and the expected header or error.
    type Case<'a> = (
        &'a [&'a str],
        &'a [(&'a str, &'a str)],
        Result<&'a str, &'a str>,
    );

    #[test]
    fn credentials_file_wins_over_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, "from-file\n").expect("write key");
        let key_file = key_file.to_str().expect("utf-8 path");

        let cases: [Case; 6] = [
            (
                &["--api-key-file", key_file],
                &[(TOKEN_ENV, "t")],
                Ok("APIKey from-file"),
            ),
            (
                &["--token-file", key_file],
                &[(API_KEY_ENV, "k")],
                Ok("Bearer from-file"),
            ),
            (&[], &[(API_KEY_ENV, " k \n")], Ok("APIKey k")),
            (&[], &[(TOKEN_ENV, "t")], Ok("Bearer t")),
            (&[], &[(API_KEY_ENV, "k"), (TOKEN_ENV, "t")], Err("both")),
            (&[], &[(API_KEY_ENV, "  ")], Err("no credentials")),
        ];
        for (extra, env, want) in cases {
            let got = plan(extra, env)
                .map_err(|e| e.to_string())
                .and_then(|p| p.credential.header().map_err(|e| e.to_string()));
            match (got, want) {
                (Ok(header), Ok(want)) => assert_eq!(header, want, "{extra:?} {env:?}"),
                (Err(err), Err(want)) => assert!(err.contains(want), "{err}"),
                (got, want) => panic!("{extra:?} {env:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn server_urls() {
        let cases = [
            (
                "https://certs.example.com",
                Ok("https://certs.example.com/"),
                false,
            ),
            (
                "https://h.example/certfleet",
                Ok("https://h.example/certfleet/"),
                false,
            ),
            ("http://127.0.0.1:8443", Ok("http://127.0.0.1:8443/"), false),
            ("http://localhost:8443", Ok("http://localhost:8443/"), false),
            ("http://[::1]:8443", Ok("http://[::1]:8443/"), false),
            (
                "http://certs.example.com",
                Ok("http://certs.example.com/"),
                true,
            ),
            ("ftp://certs.example.com", Err("scheme"), false),
            (
                "https://u:pw@certs.example.com",
                Err("user name or password"),
                false,
            ),
            ("certs.example.com", Err("not a URL"), false),
            ("https://h.example/?x=1", Err("base URL only"), false),
        ];
        for (input, want, warned) in cases {
            let mut warnings = Vec::new();
            match (parse_server(input, &mut warnings), want) {
                (Ok(url), Ok(want)) => assert_eq!(url.as_str(), want, "{input}"),
                (Err(err), Err(want)) => {
                    let err = err.to_string();
                    assert!(err.contains(want), "{input}: {err}");
                    assert!(
                        !err.contains("pw"),
                        "{input}: the password is echoed: {err}"
                    );
                }
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
            assert_eq!(!warnings.is_empty(), warned, "{input}: {warnings:?}");
        }
    }

    #[test]
    fn flags_are_parsed_once() {
        let env = [(API_KEY_ENV, "k")];
        let err = plan(&["--key-type", "dsa"], &env).expect_err("bad key type");
        assert!(err.to_string().contains("ecdsa-p256"), "{err}");
        let err = plan(&["--wait", "10"], &env).expect_err("bare number");
        assert!(matches!(err, PlanError::Wait { .. }), "{err:?}");
        assert!(err.to_string().starts_with("--wait"), "{err}");
        let err = plan(&["--domain", "a..example.com"], &env).expect_err("bad name");
        assert!(matches!(err, PlanError::Domain { .. }), "{err:?}");
        assert!(err.to_string().starts_with("--domain"), "{err}");
        let ok = plan(&["--key-type", "rsa-2048", "--wait", "90s"], &env).expect("valid");
        assert_eq!(ok.key_type, Some(KeyType::Rsa2048));
        assert_eq!(ok.wait, Duration::from_secs(90));
        assert_eq!(ok.local, None, "--key server by default");
    }

    #[test]
    fn key_flags() {
        let env = [(API_KEY_ENV, "k")];
        let err = plan(&["--key", "client"], &env).expect_err("unknown mode");
        assert!(matches!(err, PlanError::KeyMode { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with("--key \"client\": use server"),
            "{err}"
        );
        for (flags, flag) in [
            (&["--rotate-key"][..], "--rotate-key"),
            (&["--rotate-every", "3"], "--rotate-every"),
            (&["--key", "server", "--rotate-key"], "--rotate-key"),
        ] {
            let err = plan(flags, &env).expect_err("rotation without a local key");
            assert!(
                matches!(err, PlanError::RotationNeedsLocalKey { .. }),
                "{flags:?}: {err:?}"
            );
            let line = err.to_string();
            assert!(
                line.starts_with(flag) && line.contains("add --key local"),
                "{line}"
            );
        }
        let ok = plan(&["--key", "server", "--rotate-every", "0"], &env).expect("0 is never");
        assert_eq!(ok.local, None);

        let ok = plan(&["--key", "local"], &env).expect("local");
        assert_eq!(ok.local, Some(Rotation::default()));
        assert_eq!(ok.key_type, None);
        let flags = [
            "--key",
            "local",
            "--key-type",
            "ecdsa-p384",
            "--rotate-key",
            "--rotate-every",
            "4",
        ];
        let ok = plan(&flags, &env).expect("local with rotation");
        assert_eq!(ok.key_type, Some(KeyType::EcdsaP384));
        assert_eq!(
            ok.local,
            Some(Rotation {
                now: true,
                every: 4
            })
        );
    }
}
