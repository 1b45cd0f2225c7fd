//! [`Report`]: the problems and warnings found while resolving the config, and the helpers
//! every section uses to read its values (secrets from `xFile`, certificate files).
//!
//! Every check reports into a [`Report`] and carries on, so one run lists every problem. Each
//! function returns `Err(Reported)` once its problem is recorded; the whole config is built only
//! when nothing was reported.

use std::{fmt, fs, net::SocketAddr, path::PathBuf};

use super::{error::Problem, secret::Secret, tree::Origins};
use crate::domain::Profile;

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

impl<'a> Report<'a> {
    /// An empty report; `origins` says which keys came from the environment.
    pub(super) fn new(origins: &'a Origins) -> Self {
        Self {
            origins,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The problems and the warnings found.
    pub(super) fn finish(self) -> (Vec<Problem>, Vec<String>) {
        (self.problems, self.warnings)
    }

    /// Which keys came from the environment: for `de::from_subtree`, which reads part of the
    /// tree during resolution.
    pub(super) fn origins(&self) -> &'a Origins {
        self.origins
    }

    /// Records a problem with `key`; `message` says what is wrong and how to fix it.
    pub(super) fn error(&mut self, key: &str, message: impl fmt::Display) -> Reported {
        self.problems.push(Problem {
            key: key.to_owned(),
            env_var: self.origins.var_for(key).map(str::to_owned),
            message: message.to_string(),
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

/// An ACME profile name at `key` (`acme.profile`, ...), `None` when unset or empty.
pub(super) fn profile(
    key: &str,
    value: Option<String>,
    report: &mut Report<'_>,
) -> Result<Option<Profile>, Reported> {
    let Some(text) = non_empty(value) else {
        return Ok(None);
    };
    Profile::parse(&text).map(Some).ok_or_else(|| {
        report.error(
            key,
            format!(
                "{text:?} is not a profile name: 1 to {} letters, digits, '.', '_' or '-', as the \
                 CA's directory lists them (Let's Encrypt: classic, tlsserver, shortlived)",
                Profile::MAX_LEN
            ),
        )
    })
}

/// A `...profiles` list: the ACME profiles a credential may ask for; `None` (absent) is every
/// profile the CA offers.
pub(super) fn profiles(
    key: &str,
    value: Option<Vec<String>>,
    report: &mut Report<'_>,
) -> Result<Option<Vec<Profile>>, Reported> {
    let Some(list) = value else {
        return Ok(None);
    };
    let mut profiles = Vec::with_capacity(list.len());
    let mut failure = Ok(());
    for (i, text) in list.into_iter().enumerate() {
        match profile(&format!("{key}[{i}]"), Some(text), report) {
            Ok(Some(p)) => profiles.push(p),
            Ok(None) => {
                failure = Err(report.error(
                    &format!("{key}[{i}]"),
                    "is empty; write a profile name, or remove the item",
                ));
            }
            Err(reported) => failure = Err(reported),
        }
    }
    failure.map(|()| Some(profiles))
}

/// A `...caCertificates` key: a readable file holding at least one PEM certificate. `fix` ends
/// the message when it is not.
pub(super) fn pem_certificates_file(
    path: String,
    key: &str,
    fix: &str,
    report: &mut Report<'_>,
) -> Result<PathBuf, Reported> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    let pem = fs::read(&path)
        .map_err(|e| report.error(key, format!("cannot read {path}: {e}; {fix}")))?;
    if !pem.windows(BEGIN.len()).any(|w| w == BEGIN) {
        return Err(report.error(
            key,
            format!("{path} holds no PEM certificate (no \"-----BEGIN CERTIFICATE-----\"); {fix}"),
        ));
    }
    Ok(PathBuf::from(path))
}

/// An `IP:port` listener address; `default` when unset.
pub(super) fn listen_addr(
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

/// Whether a `domains` list holds `*` together with other name patterns (address patterns such
/// as `10.0.0.0/8` may join `*`, which matches no address).
pub(super) fn star_with_name_patterns(list: &[String]) -> bool {
    let is_address = |item: &str| {
        let bare = item.trim().trim_start_matches('[').trim_end_matches(']');
        item.contains('/') || bare.parse::<std::net::IpAddr>().is_ok()
    };
    list.iter().any(|item| item.trim() == "*")
        && list
            .iter()
            .any(|item| item.trim() != "*" && !is_address(item))
}
