//! `provider: gcloud` (alias `googleCloud`): Google Cloud DNS, as a service account (its JSON
//! key, parsed here into a [`ServiceAccountKey`]) or as the platform's identity.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::signature::RsaKeyPair;
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize, Serializer};

use super::{DnsProviderConfig, Provider, Report, Reported, api_url, non_empty};

const GCLOUD_API: &str = "https://dns.googleapis.com/dns/v1";
/// Where a key without `token_uri` trades its JWT for an access token.
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// A `gcloud` entry's keys as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawGcloud {
    project: Option<String>,
    service_account: Option<String>,
    service_account_file: Option<String>,
    api_url: Option<String>,
}

/// The settings of a `gcloud` entry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcloudConfig {
    /// `project`: the project of the managed zones (else the key's or the platform's).
    pub project: Option<String>,
    /// `serviceAccount` (or `serviceAccountFile`): the key, parsed; absent = platform identity.
    pub service_account: Option<ServiceAccountKey>,
    /// `apiUrl`: the API base (default `https://dns.googleapis.com/dns/v1`).
    pub api_url: String,
}

impl Provider for GcloudConfig {
    const NAME: &'static str = "gcloud";
    const ALIAS: Option<&'static str> = Some("googleCloud");
    type Raw = RawGcloud;

    fn resolve(path: &str, raw: RawGcloud, report: &mut Report<'_>) -> Result<Self, Reported> {
        let key = format!("{path}.serviceAccount");
        let service_account =
            match report.secret(&key, raw.service_account, raw.service_account_file)? {
                Some(value) => Some(
                    ServiceAccountKey::from_json(value.secret.expose())
                        .map_err(|e| report.error(&value.key, e.to_string()))?,
                ),
                None => None,
            };
        Ok(Self {
            project: non_empty(raw.project),
            service_account,
            api_url: api_url(path, raw.api_url, GCLOUD_API, report)?,
        })
    }

    fn into_config(self) -> DnsProviderConfig {
        DnsProviderConfig::Gcloud(self)
    }
}

/// A service-account key (the JSON file Google Cloud hands out), parsed once at load: certfleet
/// signs its token requests with it (an RS256 JWT assertion, RFC 7523).
///
/// `Debug` leaves the private key out and `Serialize` prints `<redacted>`, as a `Secret` does,
/// so the key can sit in the printed configuration.
#[derive(Clone)]
pub struct ServiceAccountKey {
    /// `client_email`: the account, the issuer of the assertions.
    pub client_email: String,
    /// `private_key_id`: the key's id, sent as the assertion's `kid`.
    pub private_key_id: Option<String>,
    /// `token_uri`: where an assertion is traded for an access token (Google's by default).
    pub token_uri: String,
    /// `project_id`: the account's project, used when `project` is not set.
    pub project_id: Option<String>,
    /// `private_key`: the RSA key that signs the assertions.
    private_key: Arc<RsaKeyPair>,
}

/// Why a service-account key was refused. Messages name the missing part, never the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceAccountKeyError {
    /// Not JSON at all. serde_json's message is left out: it can quote the text, a secret.
    #[error("is not JSON; paste the service-account key file Google Cloud gave you")]
    NotJson,
    /// Another kind of credential (`authorized_user`, `external_account`, ...).
    #[error(
        "is a {kind:?} credential, not a service-account key (\"type\": \"service_account\"); \
         create a JSON key for a service account, or leave it out to use the platform's identity"
    )]
    NotServiceAccount {
        /// Its `type`, empty when absent.
        kind: String,
    },
    /// A field the key needs is absent.
    #[error("lacks {field}; use the key file exactly as downloaded")]
    Missing {
        /// The field's name in the JSON.
        field: &'static str,
    },
    /// `private_key` is not a PKCS#8 PEM block.
    #[error("private_key is not a PKCS#8 PEM key")]
    NotPkcs8,
    /// `private_key` is PKCS#8 but not an RSA key aws-lc-rs can sign with.
    #[error("private_key is not an RSA key")]
    NotRsa,
}

impl ServiceAccountKey {
    /// Parses a service-account key JSON (`"type": "service_account"`).
    pub fn from_json(json: &str) -> Result<Self, ServiceAccountKeyError> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(rename = "type")]
            kind: Option<String>,
            client_email: Option<String>,
            private_key: Option<String>,
            private_key_id: Option<String>,
            token_uri: Option<String>,
            project_id: Option<String>,
        }
        let raw: Raw = serde_json::from_str(json).map_err(|_| ServiceAccountKeyError::NotJson)?;
        if raw.kind.as_deref() != Some("service_account") {
            return Err(ServiceAccountKeyError::NotServiceAccount {
                kind: raw.kind.unwrap_or_default(),
            });
        }
        let missing = |field| ServiceAccountKeyError::Missing { field };
        let pem = raw.private_key.ok_or_else(|| missing("private_key"))?;
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| ServiceAccountKeyError::NotPkcs8)?;
        let private_key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|_| ServiceAccountKeyError::NotRsa)?;
        Ok(Self {
            client_email: raw.client_email.ok_or_else(|| missing("client_email"))?,
            private_key_id: raw.private_key_id,
            token_uri: raw.token_uri.unwrap_or_else(|| GOOGLE_TOKEN_URI.to_owned()),
            project_id: raw.project_id,
            private_key: Arc::new(private_key),
        })
    }

    /// The private key: for signing token requests, never for printing.
    pub fn private_key(&self) -> &RsaKeyPair {
        &self.private_key
    }
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("project_id", &self.project_id)
            .field("private_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Serialize for ServiceAccountKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_are_not_service_account_keys_are_refused_without_quoting_them() {
        let cases = [
            ("not json", ServiceAccountKeyError::NotJson),
            (
                r#"{"type": "authorized_user", "refresh_token": "s3cret"}"#,
                ServiceAccountKeyError::NotServiceAccount {
                    kind: "authorized_user".to_owned(),
                },
            ),
            (
                r#"{"type": "service_account", "client_email": "x@y"}"#,
                ServiceAccountKeyError::Missing {
                    field: "private_key",
                },
            ),
            (
                r#"{"type": "service_account", "private_key": "s3cret"}"#,
                ServiceAccountKeyError::NotPkcs8,
            ),
        ];
        for (json, want) in cases {
            let err = ServiceAccountKey::from_json(json).expect_err(json);
            assert_eq!(err, want, "{json}");
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
    }
}
