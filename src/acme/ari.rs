//! ACME Renewal Information (RFC 9773): the CA's suggested renewal window, and the certificate
//! identifier a renewal order names in `replaces`.

use instant_acme::{Account, CertificateIdentifier};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::{IssueError, Issuer, classify};
use crate::util::clock;

/// The RFC 9773 section 4.1 identifier of the leaf in `cert_pem`, if it has the authority key
/// identifier extension it needs.
pub fn identifier(cert_pem: &str) -> Option<CertificateIdentifier<'static>> {
    let der = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .next()?
        .ok()?;
    CertificateIdentifier::try_from(&der)
        .ok()
        .map(CertificateIdentifier::into_owned)
}

impl Issuer {
    /// The CA's suggested renewal window for `cert_pem` as Unix seconds, `None` when the CA has
    /// no ARI (or the certificate cannot be identified).
    pub(super) async fn renewal_window(
        &self,
        account: &Account,
        cert_pem: &str,
    ) -> Result<Option<(i64, i64)>, IssueError> {
        let Some(id) = identifier(cert_pem) else {
            return Ok(None);
        };
        match account.renewal_info(&id).await {
            Ok((info, _)) => Ok(Some((
                info.suggested_window.start.unix_timestamp(),
                info.suggested_window.end.unix_timestamp(),
            ))),
            Err(instant_acme::Error::Unsupported(_)) => Ok(None),
            Err(err) => Err(classify("fetch the renewal window (ARI)", err)),
        }
    }

    /// The CA's suggested renewal window for `cert_pem` (Unix seconds): `Ok(None)` when the CA
    /// has no ARI, `Err` when it cannot be asked now (the CA or the account is unavailable).
    pub async fn ari_window(&self, cert_pem: &str) -> Result<Option<(i64, i64)>, IssueError> {
        let account = self.account().await?;
        self.renewal_window(&account, cert_pem).await
    }

    /// When to renew `cert_pem` by the CA's window: `None` without ARI or when it cannot be
    /// asked now (the caller keeps its own schedule).
    pub async fn ari_renewal_time(&self, cert_pem: &str) -> Option<i64> {
        let account = self.account().await.ok()?;
        match self.renewal_window(&account, cert_pem).await {
            Ok(Some((start, end))) => Some(crate::schedule::point_in_window(
                start,
                end,
                clock::now(),
                crate::schedule::jitter(),
            )),
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(error = %err, "cannot ask the CA for a renewal window");
                None
            }
        }
    }
}
