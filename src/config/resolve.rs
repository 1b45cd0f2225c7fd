//! The last stage: raw values into the typed [`Config`], with defaults, secret files, checks.
//!
//! Every check reports into a [`Report`] and carries on, so one run lists every problem. Each
//! function returns `Err(Reported)` once its problem is recorded; the whole config is built only
//! when nothing was reported.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose},
};

use super::{
    AcmeConfig, ChallengesConfig, Config, EabConfig, Http01Config, Loaded, ServerConfig,
    StorageConfig,
    error::{ConfigError, Problem},
    parse_duration, psk,
    raw::{RawAcme, RawChallenges, RawConfig, RawEab, RawServer, RawStorage},
    secret::Secret,
    tree::Origins,
};
use crate::domain::KeyType;

const DEFAULT_API_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8443);
const DEFAULT_HTTP01_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 80);
const DEFAULT_ISSUE_WAIT: Duration = Duration::from_secs(60);
/// Longer than this, most HTTP clients and proxies give up before the 202 arrives.
const MAX_ISSUE_WAIT: Duration = Duration::from_secs(600);
const DEFAULT_DATABASE_URL: &str = "sqlite://certfleet.db";
const DEFAULT_DIRECTORY_URL: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// RFC 8555 section 7.3.4 leaves the size to the CA; every CA in use issues 32 bytes or more,
/// so a shorter decoded key is a truncated copy.
const MIN_HMAC_KEY_BYTES: usize = 16;
const PEM_CERTIFICATE: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// Builds the typed config, or every problem found.
pub(super) fn resolve(raw: RawConfig, origins: &Origins) -> Result<Loaded, ConfigError> {
    let mut report = Report {
        origins,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let server = server(raw.server.unwrap_or_default(), &mut report);
    let storage = storage(raw.storage.unwrap_or_default(), &mut report);
    let acme = acme(raw.acme.unwrap_or_default(), &mut report);
    let challenges = challenges(raw.challenges.unwrap_or_default(), &mut report);
    let auth = psk::auth(raw.auth.unwrap_or_default(), &mut report);
    match (server, storage, acme, challenges, auth) {
        (Ok(server), Ok(storage), Ok(acme), Ok(challenges), Ok(auth))
            if report.problems.is_empty() =>
        {
            Ok(Loaded {
                config: Config {
                    server,
                    storage,
                    acme,
                    challenges,
                    auth,
                },
                warnings: report.warnings,
            })
        }
        _ => Err(ConfigError::Invalid(report.problems)),
    }
}

/// Proof that a problem was recorded in the [`Report`].
#[derive(Debug)]
pub(super) struct Reported(());

/// The problems and warnings found so far.
pub(super) struct Report<'a> {
    origins: &'a Origins,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

/// A secret read from its key or from its `File` key.
pub(super) struct SecretValue {
    pub secret: Secret,
    /// The key it came from (`auth.psk.key` or `auth.psk.keyFile`), for messages about it.
    pub key: String,
}

impl Report<'_> {
    /// Records a problem with `key`; `message` says what is wrong and how to fix it.
    pub(super) fn error(&mut self, key: &str, message: impl Into<String>) -> Reported {
        self.problems.push(Problem {
            key: key.to_owned(),
            env_var: self.origins.var_for(key).map(str::to_owned),
            message: message.into(),
        });
        Reported(())
    }

    /// Records a warning to log at start.
    pub(super) fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    /// Reads the secret `key`, given inline or as a path in `keyFile` (Kubernetes and Docker
    /// secrets), with one trailing newline removed from a file.
    pub(super) fn secret(
        &mut self,
        key: &str,
        value: Option<String>,
        file: Option<String>,
    ) -> Result<Option<SecretValue>, Reported> {
        let file_key = format!("{key}File");
        match (value, non_empty(file)) {
            (Some(_), Some(_)) => Err(self.error(
                key,
                format!("is set together with {file_key}; keep only one of the two"),
            )),
            (Some(value), None) => Ok(Some(SecretValue {
                secret: Secret::new(value),
                key: key.to_owned(),
            })),
            (None, Some(path)) => {
                let text = fs::read_to_string(&path).map_err(|e| {
                    self.error(
                        &file_key,
                        format!(
                            "cannot read {path}: {e}; point it at a readable file that holds \
                             only the secret"
                        ),
                    )
                })?;
                let trimmed = text
                    .strip_suffix("\r\n")
                    .or_else(|| text.strip_suffix('\n'))
                    .unwrap_or(&text);
                Ok(Some(SecretValue {
                    secret: Secret::new(trimmed.to_owned()),
                    key: file_key,
                }))
            }
            (None, None) => Ok(None),
        }
    }
}

/// An optional value where an empty string means "not set", as an empty environment variable
/// conventionally does.
pub(super) fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn server(raw: RawServer, report: &mut Report<'_>) -> Result<ServerConfig, Reported> {
    let listen = listen_addr(raw.listen, "server.listen", DEFAULT_API_LISTEN, report);
    let issue_wait = issue_wait(raw.issue_wait, report);
    Ok(ServerConfig {
        listen: listen?,
        issue_wait: issue_wait?,
    })
}

fn listen_addr(
    value: Option<String>,
    key: &str,
    default: SocketAddr,
    report: &mut Report<'_>,
) -> Result<SocketAddr, Reported> {
    let Some(text) = value else {
        return Ok(default);
    };
    text.parse().map_err(|_| {
        let port = default.port();
        report.error(
            key,
            format!(
                "\"{text}\" is not an IP address and port; write it like {default} or \
                 [::]:{port} (a host name is not accepted)"
            ),
        )
    })
}

fn issue_wait(value: Option<String>, report: &mut Report<'_>) -> Result<Duration, Reported> {
    const KEY: &str = "server.issueWait";
    let Some(text) = value else {
        return Ok(DEFAULT_ISSUE_WAIT);
    };
    match parse_duration(&text) {
        Err(message) => Err(report.error(KEY, message)),
        Ok(wait) if wait.is_zero() => Err(report.error(
            KEY,
            "must be more than 0: a request needs some time to wait for its certificate \
             (default 60s)",
        )),
        Ok(wait) if wait > MAX_ISSUE_WAIT => Err(report.error(
            KEY,
            format!(
                "\"{text}\" is longer than the 10m maximum, and clients would time out first; \
                 use at most 10m (default 60s)"
            ),
        )),
        Ok(wait) => Ok(wait),
    }
}

fn storage(raw: RawStorage, report: &mut Report<'_>) -> Result<StorageConfig, Reported> {
    let (url, key) = match report.secret("storage.url", raw.url, raw.url_file)? {
        Some(value) => (value.secret, value.key),
        None => (
            Secret::new(DEFAULT_DATABASE_URL.to_owned()),
            "storage.url".to_owned(),
        ),
    };
    check_database_url(url.expose()).map_err(|message| report.error(&key, message))?;
    Ok(StorageConfig { url })
}

/// Accepts `sqlite:` URLs. The message quotes at most the scheme: the rest may hold a password.
fn check_database_url(url: &str) -> Result<(), String> {
    const FIX: &str = "use a SQLite URL such as sqlite://certfleet.db";
    if url.starts_with("sqlite:") {
        return Ok(());
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err(format!(
            "PostgreSQL support is not in this version of certfleet yet; {FIX}"
        ));
    }
    match url.split_once("://") {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Err(format!("the {scheme}:// scheme is not supported; {FIX}"))
        }
        _ => Err(format!("is not a database URL; {FIX}")),
    }
}

fn acme(raw: RawAcme, report: &mut Report<'_>) -> Result<AcmeConfig, Reported> {
    let directory_url = raw.directory_url.map_or_else(
        || Ok(DEFAULT_DIRECTORY_URL.to_owned()),
        |url| match check_directory_url(&url) {
            Ok(()) => Ok(url),
            Err(message) => Err(report.error("acme.directoryUrl", message)),
        },
    );
    let email = email(non_empty(raw.email), report);
    let ca_certificates = ca_certificates(non_empty(raw.ca_certificates), report);
    let eab = raw.eab.map(|raw| eab(raw, report)).transpose();
    let key_type = raw.key_type.map_or(Ok(KeyType::EcdsaP256), |text| {
        KeyType::parse(&text).ok_or_else(|| {
            let names = KeyType::ALL.map(|k| k.as_str()).join(", ");
            let message = format!("unknown key type \"{text}\"; use one of {names}");
            report.error("acme.keyType", message)
        })
    });
    Ok(AcmeConfig {
        directory_url: directory_url?,
        email: email?,
        ca_certificates: ca_certificates?,
        eab: eab?,
        key_type: key_type?,
        profile: non_empty(raw.profile),
    })
}

/// An `https://` URL; `http://` only for a loopback host, where a test CA such as Pebble runs.
fn check_directory_url(url: &str) -> Result<(), String> {
    let scheme_rest = |scheme: &str| {
        url.get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .map(|_| &url[scheme.len()..])
    };
    let (secure, rest) = match (scheme_rest("https://"), scheme_rest("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => {
            return Err(format!(
                "\"{url}\" is not an https:// URL; use your CA's ACME directory URL, such as \
                 {DEFAULT_DIRECTORY_URL}"
            ));
        }
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() || url.contains(char::is_whitespace) {
        return Err(format!(
            "\"{url}\" is not a valid URL; use your CA's ACME directory URL, such as \
             {DEFAULT_DIRECTORY_URL}"
        ));
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !secure && !loopback {
        return Err(format!(
            "\"{url}\" uses http:// for a host that is not loopback; use https:// (http:// is \
             allowed only for 127.0.0.0/8, ::1 and localhost, e.g. a local Pebble)"
        ));
    }
    Ok(())
}

fn email(value: Option<String>, report: &mut Report<'_>) -> Result<Option<String>, Reported> {
    let Some(text) = value else {
        return Ok(None);
    };
    let address = text.strip_prefix("mailto:").unwrap_or(&text);
    let well_formed = address
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && address.matches('@').count() == 1
        && !address.contains(|c: char| c == ',' || c.is_whitespace());
    match well_formed {
        true => Ok(Some(address.to_owned())),
        false => Err(report.error(
            "acme.email",
            format!(
                "\"{text}\" is not one email address; write a single address such as \
                 ops@example.com"
            ),
        )),
    }
}

fn ca_certificates(
    value: Option<String>,
    report: &mut Report<'_>,
) -> Result<Option<PathBuf>, Reported> {
    const KEY: &str = "acme.caCertificates";
    const FIX: &str = "point it at a PEM file of the CA certificates to trust";
    let Some(path) = value else {
        return Ok(None);
    };
    let pem = fs::read(&path)
        .map_err(|e| report.error(KEY, format!("cannot read {path}: {e}; {FIX}")))?;
    if !pem
        .windows(PEM_CERTIFICATE.len())
        .any(|w| w == PEM_CERTIFICATE)
    {
        return Err(report.error(
            KEY,
            format!("{path} holds no PEM certificate (no \"-----BEGIN CERTIFICATE-----\"); {FIX}"),
        ));
    }
    Ok(Some(PathBuf::from(path)))
}

fn eab(raw: RawEab, report: &mut Report<'_>) -> Result<EabConfig, Reported> {
    const HMAC_KEY: &str = "acme.eab.hmacKey";
    let kid = non_empty(raw.kid).ok_or_else(|| {
        report.error(
            "acme.eab.kid",
            "is required with acme.eab; copy the key ID from your CA's EAB credentials",
        )
    });
    let hmac_key = match report.secret(HMAC_KEY, raw.hmac_key, raw.hmac_key_file) {
        Ok(Some(value)) => decode_hmac_key(value.secret.expose())
            .map(|bytes| Secret::new(general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
            .map_err(|message| report.error(&value.key, message)),
        Ok(None) => Err(report.error(
            HMAC_KEY,
            "is required with acme.eab (or hmacKeyFile); copy the HMAC key from your CA's EAB \
             credentials",
        )),
        Err(reported) => Err(reported),
    };
    Ok(EabConfig {
        kid: kid?,
        hmac_key: hmac_key?,
    })
}

/// Decodes base64url as CAs print it, padded or not; standard base64 is accepted too, as some
/// dashboards show it. The message never includes the key or the decoder's error, which quotes
/// the offending byte.
fn decode_hmac_key(text: &str) -> Result<Vec<u8>, String> {
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
    let text = text.trim();
    let bytes = URL_SAFE
        .decode(text)
        .or_else(|_| STANDARD.decode(text))
        .map_err(|_| {
            "is not base64url (nor standard base64); copy the HMAC key exactly as your CA shows it"
                .to_owned()
        })?;
    if bytes.len() < MIN_HMAC_KEY_BYTES {
        return Err(format!(
            "decodes to {} bytes, but an EAB HMAC key has at least {MIN_HMAC_KEY_BYTES}; copy the \
             whole key from your CA",
            bytes.len()
        ));
    }
    Ok(bytes)
}

fn challenges(raw: RawChallenges, report: &mut Report<'_>) -> Result<ChallengesConfig, Reported> {
    let http01 = raw.http01.unwrap_or_default();
    let listen = listen_addr(
        http01.listen,
        "challenges.http01.listen",
        DEFAULT_HTTP01_LISTEN,
        report,
    )?;
    Ok(ChallengesConfig {
        http01: Http01Config { listen },
    })
}
