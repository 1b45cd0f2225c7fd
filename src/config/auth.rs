//! `auth`: the configured authentication methods, any number at once.

use serde::Serialize;

use super::{
    akash::{self, AkashConfig},
    jwt::{self, JwtConfig},
    psk::{self, PskKey},
    raw::RawAuth,
    report::{Report, Reported},
};

/// `auth`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthConfig {
    /// `auth.psk.key` (as a key named `default` for every domain) followed by `auth.psk.keys`.
    /// Names and keys are unique; empty when no PSK is configured.
    pub psk: Vec<PskKey>,
    /// `auth.jwt`: OIDC / OAuth 2.0 bearer tokens; `None` when not configured.
    pub jwt: Option<JwtConfig>,
    /// `auth.akash`: Akash provider-API tokens (AEP-64); `None` when not configured.
    pub akash: Option<AkashConfig>,
}

impl AuthConfig {
    /// The longest window of any credential's `quota` (zero without quotas): how long the CA
    /// limits must keep what credentials ordered.
    pub fn longest_quota(&self) -> std::time::Duration {
        let psk = self.psk.iter().filter_map(|key| key.quota);
        let akash = self
            .akash
            .iter()
            .flat_map(|akash| akash.principals.iter().filter_map(|p| p.quota));
        let jwt = self.jwt.iter().filter_map(|jwt| jwt.quota);
        psk.chain(akash)
            .chain(jwt)
            .map(|quota| quota.window)
            .max()
            .unwrap_or_default()
    }
}

/// `auth`: every configured method; warns when there is none, since then every request is
/// refused.
pub(super) fn auth(raw: RawAuth, report: &mut Report<'_>) -> Result<AuthConfig, Reported> {
    let psk = psk::keys(raw.psk.unwrap_or_default(), report);
    let jwt = jwt::jwt(raw.jwt, report);
    let akash = akash::akash(raw.akash, report);
    let (psk, jwt, akash) = (psk?, jwt?, akash?);
    if psk.is_empty() && jwt.is_none() && akash.is_none() {
        report.warn(
            "no auth method is configured (auth.psk, auth.jwt and auth.akash are empty): every \
             API request will be refused; add a key under auth.psk.keys or configure auth.jwt or \
             auth.akash",
        );
    }
    Ok(AuthConfig { psk, jwt, akash })
}
