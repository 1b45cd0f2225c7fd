//! `provider: rfc2136`: a primary server taking dynamic updates (RFC 2136) signed with a TSIG
//! key (RFC 8945).

use base64::Engine as _;
use hickory_proto::rr::Name;
use serde::{Deserialize, Serialize};

use super::{DnsProviderConfig, Provider, Report, Reported, Secret, non_empty};

/// An `rfc2136` entry's keys as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawRfc2136 {
    nameserver: Option<String>,
    tsig_key_name: Option<String>,
    tsig_secret: Option<String>,
    tsig_secret_file: Option<String>,
    tsig_algorithm: Option<String>,
}

/// The settings of an `rfc2136` entry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rfc2136Config {
    /// `nameserver`: `host:port` of the primary (port 53 when absent).
    pub nameserver: String,
    /// `tsigKeyName`: the TSIG key's name as the server knows it (a DNS name).
    pub tsig_key_name: String,
    /// `tsigSecret` (or `tsigSecretFile`): base64, as `tsig-keygen` prints it.
    pub tsig_secret: Secret,
    /// `tsigAlgorithm`: `hmac-sha256` (default) or `hmac-sha512`.
    pub tsig_algorithm: TsigAlgorithm,
}

/// A TSIG algorithm (RFC 8945 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TsigAlgorithm {
    /// `hmac-sha256`.
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// `hmac-sha512`.
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
}

impl Provider for Rfc2136Config {
    const NAME: &'static str = "rfc2136";
    const ALIAS: Option<&'static str> = None;
    type Raw = RawRfc2136;

    fn resolve(path: &str, raw: RawRfc2136, report: &mut Report<'_>) -> Result<Self, Reported> {
        let nameserver = match non_empty(raw.nameserver) {
            Some(server) if !server.contains(char::is_whitespace) => Ok(server),
            Some(_) => Err(report.error(
                &format!("{path}.nameserver"),
                "has a space; write host:port, such as ns1.example.com:53",
            )),
            None => Err(report.error(
                &format!("{path}.nameserver"),
                "is required: the primary's host:port, such as ns1.example.com:53",
            )),
        };
        // The provider signs with this name as a DNS name, so it must parse as one.
        let key_name = match non_empty(raw.tsig_key_name) {
            Some(name) if Name::from_ascii(&name).is_ok() => Ok(name),
            Some(name) => Err(report.error(
                &format!("{path}.tsigKeyName"),
                format!("\"{name}\" is not a DNS name; use the key's name from named.conf"),
            )),
            None => Err(report.error(
                &format!("{path}.tsigKeyName"),
                "is required: the TSIG key's name, such as acme-key",
            )),
        };
        let secret_key = format!("{path}.tsigSecret");
        let base64 = base64::engine::general_purpose::STANDARD;
        let secret = match report.secret(&secret_key, raw.tsig_secret, raw.tsig_secret_file) {
            Ok(Some(value)) if base64.decode(value.secret.expose().trim()).is_ok() => {
                Ok(value.secret)
            }
            Ok(Some(value)) => Err(report.error(
                &value.key,
                "is not base64; paste the secret exactly as tsig-keygen printed it",
            )),
            Ok(None) => Err(report.error(
                &secret_key,
                "is required (or tsigSecretFile): generate a key with \
                 `tsig-keygen -a hmac-sha256 acme-key`",
            )),
            Err(reported) => Err(reported),
        };
        let algorithm = match raw.tsig_algorithm.as_deref() {
            None | Some("hmac-sha256") => Ok(TsigAlgorithm::HmacSha256),
            Some("hmac-sha512") => Ok(TsigAlgorithm::HmacSha512),
            Some(other) => Err(report.error(
                &format!("{path}.tsigAlgorithm"),
                format!("\"{other}\" is not supported; use hmac-sha256 or hmac-sha512"),
            )),
        };
        Ok(Self {
            nameserver: nameserver?,
            tsig_key_name: key_name?,
            tsig_secret: secret?,
            tsig_algorithm: algorithm?,
        })
    }

    fn into_config(self) -> DnsProviderConfig {
        DnsProviderConfig::Rfc2136(self)
    }
}
