//! What `certfleet fetch` is given: its flags, the environment variables it reads, and how
//! messages name a flag's file. Every other part of the client builds on these.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use reqwest::Url;

/// Where the API key comes from when no `--api-key-file` / `--token-file` is given.
pub const API_KEY_ENV: &str = "CERTFLEET_API_KEY";
/// Where the bearer token comes from when no `--api-key-file` / `--token-file` is given.
pub const TOKEN_ENV: &str = "CERTFLEET_TOKEN";

/// The error of parsing a URL (`url::ParseError`, named through reqwest's re-exported `Url`
/// so the client needs no direct dependency on the `url` crate).
pub type UrlError = <Url as FromStr>::Err;

/// A file given by a flag, as messages name it: `--ca-file /etc/certfleet/ca.pem`.
#[derive(Debug, Clone)]
pub struct FlagPath {
    /// The flag, e.g. `--token-file`.
    pub flag: &'static str,
    /// The file as given.
    pub path: PathBuf,
}

impl FlagPath {
    pub(super) fn new(flag: &'static str, path: &Path) -> Self {
        Self {
            flag,
            path: path.to_owned(),
        }
    }
}

impl fmt::Display for FlagPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.flag, self.path.display())
    }
}

/// How a client reaches certfleet: the server, the credential and the trust. `certfleet fetch`
/// and `certfleet certs` take the same flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// certfleet's base URL, e.g. https://certs.example.com:8443 (http:// only on loopback
    /// without a warning: the key and the certificate's private key would travel in clear).
    #[arg(long, value_name = "URL")]
    pub server: String,

    /// A file holding the pre-shared API key (sent as `Authorization: APIKey ...`). Wins over
    /// CERTFLEET_API_KEY and CERTFLEET_TOKEN.
    #[arg(long, value_name = "FILE", conflicts_with = "token_file")]
    pub api_key_file: Option<PathBuf>,

    /// A file holding a bearer token (OIDC or Akash JWT). Wins over CERTFLEET_API_KEY and
    /// CERTFLEET_TOKEN; the file is read again on every run, so a refreshed token is picked up.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Trust only the CA certificates in this PEM file for the server's HTTPS (not the
    /// system's roots).
    #[arg(long, value_name = "FILE", conflicts_with = "pin_sha256")]
    pub ca_file: Option<PathBuf>,

    /// Accept only a server certificate whose SHA-256 fingerprint (of its DER) is HEX; colons
    /// and case are ignored. No chain or name check: the pin is the trust.
    #[arg(long, value_name = "HEX")]
    pub pin_sha256: Option<String>,
}

/// The flags of `certfleet fetch`.
#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    /// The server, the credential and the trust.
    #[command(flatten)]
    pub connect: ServerArgs,

    /// A name on the certificate; repeat for more names (one certificate for all of them).
    #[arg(long = "domain", value_name = "NAME", required = true)]
    pub domains: Vec<String>,

    /// The directory receiving cert.pem, chain.pem, fullchain.pem, key.pem and .etag (created
    /// with mode 0700 when missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// The key type: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072 or rsa-4096 (default: the
    /// server's acme.keyType; with --key local, the type of the keys made here: ecdsa-p256, or
    /// the current key's type on a rotation).
    #[arg(long, value_name = "TYPE")]
    pub key_type: Option<String>,

    /// The ACME profile to ask for, one the server's CA offers (such as Let's Encrypt's
    /// shortlived); default: the server's acme.profile.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// Where the private key is made: `server` (certfleet makes it and sends it with the
    /// certificate) or `local` (made here, kept in DIR/key.pem, never sent: the server gets a
    /// CSR).
    #[arg(long, value_name = "WHERE", default_value = "server")]
    pub key: String,

    /// With --key local: replace the key now (a new key, a new certificate for it, the old
    /// key's certificate retired). For a one-off run; --rotate-every rotates on a schedule.
    #[arg(long)]
    pub rotate_key: bool,

    /// With --key local: replace the key once it has been through N renewals (0: never).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub rotate_every: u32,

    /// A shell command (`sh -c`) run after the files changed, e.g. "systemctl reload nginx".
    /// When it fails, it runs again on the next run, changed or not, until it succeeds once.
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,

    /// The output format: `pem` (cert.pem, chain.pem, fullchain.pem, key.pem) or `p12`
    /// (also DIR/cert.p12, a PKCS#12 file with the key and the full chain, for Java and
    /// Windows; its password from --p12-password-file).
    #[arg(long, value_name = "FORMAT", default_value = "pem")]
    pub format: String,

    /// With --format p12: the file holding the PKCS#12 password (its first line, surrounding
    /// whitespace removed). The password is never printed.
    #[arg(long, value_name = "FILE")]
    pub p12_password_file: Option<PathBuf>,

    /// Also write DIR/combined.pem: the private key then the full chain in one file, mode 0600
    /// (what HAProxy's `crt` takes).
    #[arg(long)]
    pub combined: bool,

    /// The longest a run may take, waiting for an issuance included (90s, 10m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub wait: String,

    /// Keep running: after bringing DIR up to date, hold one request open that the server
    /// answers as soon as the certificate is renewed (`wait=`), then write and run --exec at
    /// once; reconnect with back-off when the server is away. Stop it with SIGTERM or Ctrl-C.
    #[arg(long, conflicts_with = "rotate_key")]
    pub watch: bool,

    /// With --watch: how long one held request lasts before it is asked again (keep it under
    /// the idle timeout of any proxy in between; the server holds at most its
    /// server.watch.maxWait).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "5m",
        requires = "watch"
    )]
    pub watch_hold: String,
}
