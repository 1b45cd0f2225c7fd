//! `server.tls`: certfleet's own certificate, from files or through its own ACME flow.

use std::path::PathBuf;

use serde::Serialize;

use super::raw::RawTls;
use super::report::{Report, Reported, non_empty};
use crate::domain::{DomainName, NameSet};

/// Where the API listener's certificate comes from.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum TlsConfig {
    /// `certFile` + `keyFile`: PEM files, reloaded when they change.
    #[serde(rename_all = "camelCase")]
    Files {
        /// `server.tls.certFile`: the certificate chain, leaf first.
        cert_file: PathBuf,
        /// `server.tls.keyFile`: its private key.
        key_file: PathBuf,
    },
    /// `acme.hostnames`: certfleet obtains and renews its own certificate.
    Acme {
        /// `server.tls.acme`.
        acme: TlsAcmeConfig,
    },
}

/// `server.tls.acme`.
#[derive(Debug, Clone, Serialize)]
pub struct TlsAcmeConfig {
    /// The names certfleet is reached by (one certificate for all of them).
    #[serde(serialize_with = "names")]
    pub hostnames: NameSet,
}

fn names<S: serde::Serializer>(set: &NameSet, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(set.names().iter().map(DomainName::as_str))
}

/// Resolves `server.tls`; `None` when absent (plain HTTP, warned at start).
pub(super) fn tls(
    raw: Option<RawTls>,
    report: &mut Report<'_>,
) -> Result<Option<TlsConfig>, Reported> {
    let Some(raw) = raw else { return Ok(None) };
    let cert_file = non_empty(raw.cert_file);
    let key_file = non_empty(raw.key_file);
    match (cert_file, key_file, raw.acme) {
        (Some(cert), Some(key), None) => {
            for (name, path) in [("server.tls.certFile", &cert), ("server.tls.keyFile", &key)] {
                if std::fs::metadata(path).is_err() {
                    return Err(
                        report.error(name, format!("cannot read {path}; point it at a PEM file"))
                    );
                }
            }
            Ok(Some(TlsConfig::Files {
                cert_file: cert.into(),
                key_file: key.into(),
            }))
        }
        (None, None, Some(acme)) => {
            let hostnames = acme.hostnames.unwrap_or_default();
            match NameSet::parse(&hostnames) {
                Ok(set) if !set.has_wildcard() => Ok(Some(TlsConfig::Acme {
                    acme: TlsAcmeConfig { hostnames: set },
                })),
                Ok(_) => Err(report.error(
                    "server.tls.acme.hostnames",
                    "a wildcard cannot be validated over HTTP-01; list the exact names",
                )),
                Err(err) => Err(report.error(
                    "server.tls.acme.hostnames",
                    format!("{err}; list the names clients use to reach certfleet"),
                )),
            }
        }
        (Some(_), None, _) | (None, Some(_), _) => Err(report.error(
            "server.tls",
            "certFile and keyFile go together; set both, or use acme.hostnames instead",
        )),
        (Some(_), Some(_), Some(_)) => Err(report.error(
            "server.tls",
            "set either certFile + keyFile or acme.hostnames, not both",
        )),
        (None, None, None) => Err(report.error(
            "server.tls",
            "is empty: set certFile + keyFile, or acme.hostnames; remove it for plain HTTP",
        )),
    }
}
