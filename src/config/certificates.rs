//! `certificates`: who may hold certificates' private keys (CSR mode, docs/key-custody.md) and
//! how many client keys one name set may have.

use serde::Serialize;

pub use crate::domain::PrivateKeys;

use super::{
    raw::RawCertificates,
    report::{Report, Reported},
};

/// The default `certificates.maxClientKeys`: with Let's Encrypt's five certificates per exact
/// name set per week, three keys leave room for each to be issued and one rotation in a week.
const DEFAULT_MAX_CLIENT_KEYS: u32 = 3;

/// `certificates`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificatesConfig {
    /// `certificates.privateKeys`: who may hold a certificate's private key.
    pub private_keys: PrivateKeys,
    /// `certificates.maxClientKeys`: how many client keys (CSR-mode identities) one exact name
    /// set may have at once; a key being rotated out does not count against its replacement.
    /// 0: no bound.
    pub max_client_keys: u32,
}

impl Default for CertificatesConfig {
    fn default() -> Self {
        Self {
            private_keys: PrivateKeys::Both,
            max_client_keys: DEFAULT_MAX_CLIENT_KEYS,
        }
    }
}

/// Resolves `certificates`.
pub(super) fn certificates(
    raw: &RawCertificates,
    report: &mut Report<'_>,
) -> Result<CertificatesConfig, Reported> {
    let private_keys = match raw.private_keys.as_deref() {
        None | Some("both") => Ok(PrivateKeys::Both),
        Some("server") => Ok(PrivateKeys::Server),
        Some("client") => Ok(PrivateKeys::Client),
        Some(other) => Err(report.error(
            "certificates.privateKeys",
            format!(
                "\"{other}\" is not a choice; use server (certfleet makes every key), client \
                 (every request brings a CSR: certfleet holds no private key) or both (default)"
            ),
        )),
    };
    let max_client_keys = match raw.max_client_keys.as_deref() {
        None => Ok(DEFAULT_MAX_CLIENT_KEYS),
        Some(text) => text.trim().parse::<u32>().map_err(|_| {
            report.error(
                "certificates.maxClientKeys",
                format!(
                    "\"{text}\" is not a count; give how many client keys one name set may have \
                     (default {DEFAULT_MAX_CLIENT_KEYS}; 0 = no bound)"
                ),
            )
        }),
    };
    Ok(CertificatesConfig {
        private_keys: private_keys?,
        max_client_keys: max_client_keys?,
    })
}
