//! ACME Renewal Information (RFC 9773): the CA's suggested renewal window, and the certificate
//! identifier a renewal order names in `replaces`.

use instant_acme::{Account, CertificateIdentifier};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::{IssueError, Issuer, classify};
use crate::clock;

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

/// A point in the window `[start, end]` chosen by `draw` in [0, 1): RFC 9773 section 4.2 asks
/// for a uniformly random point; a window already open means "now".
pub fn point_in_window(start: i64, end: i64, now: i64, draw: f64) -> i64 {
    if start <= now {
        return now;
    }
    let width = (end - start).max(0);
    // The product is within [0, width]: the cast cannot overflow or lose a sign.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let offset = (width as f64 * draw.clamp(0.0, 1.0)) as i64;
    start + offset
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

    /// When to renew `cert_pem` by the CA's window: `None` without ARI or when it cannot be
    /// asked now (the caller keeps its own schedule).
    pub async fn ari_renewal_time(&self, cert_pem: &str) -> Option<i64> {
        let account = self.account().await.ok()?;
        match self.renewal_window(&account, cert_pem).await {
            Ok(Some((start, end))) => Some(point_in_window(
                start,
                end,
                clock::now(),
                crate::renewal::jitter(),
            )),
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(error = %err, "cannot ask the CA for a renewal window");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_fall_in_the_window() {
        let cases = [
            (1_000, 2_000, 500, 0.0, 1_000),
            (1_000, 2_000, 500, 0.5, 1_500),
            (1_000, 2_000, 500, 0.999, 1_999),
            (1_000, 2_000, 1_200, 0.5, 1_200),
            (1_000, 1_000, 500, 0.7, 1_000),
            (1_000, 900, 500, 0.7, 1_000),
        ];
        for (start, end, now, draw, want) in cases {
            assert_eq!(
                point_in_window(start, end, now, draw),
                want,
                "{start}..{end} now={now} draw={draw}"
            );
        }
    }
}
