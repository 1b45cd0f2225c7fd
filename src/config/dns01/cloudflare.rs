//! `provider: cloudflare` (alias `cf`): a scoped API token, and where the API is.

use serde::{Deserialize, Serialize};

use super::{DnsProviderConfig, Provider, Report, Reported, Secret, api_url};

const CLOUDFLARE_API: &str = "https://api.cloudflare.com/client/v4";

/// A `cloudflare` entry's keys as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawCloudflare {
    api_token: Option<String>,
    api_token_file: Option<String>,
    api_url: Option<String>,
}

/// The settings of a `cloudflare` entry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudflareConfig {
    /// `apiToken` (or `apiTokenFile`): a scoped API token (never a global API key).
    pub api_token: Secret,
    /// `apiUrl`: the API base (default `https://api.cloudflare.com/client/v4`).
    pub api_url: String,
}

impl Provider for CloudflareConfig {
    const NAME: &'static str = "cloudflare";
    const ALIAS: Option<&'static str> = Some("cf");
    type Raw = RawCloudflare;

    fn resolve(path: &str, raw: RawCloudflare, report: &mut Report<'_>) -> Result<Self, Reported> {
        let key = format!("{path}.apiToken");
        let token = report.secret(&key, raw.api_token, raw.api_token_file)?;
        let Some(token) = token.filter(|t| !t.secret.expose().trim().is_empty()) else {
            return Err(report.error(
                &key,
                "is required (or apiTokenFile): a Cloudflare API token with Zone.DNS Edit and \
                 Zone.Zone Read on the zones (docs/dns-providers.md)",
            ));
        };
        Ok(Self {
            api_token: token.secret,
            api_url: api_url(path, raw.api_url, CLOUDFLARE_API, report)?,
        })
    }

    fn into_config(self) -> DnsProviderConfig {
        DnsProviderConfig::Cloudflare(self)
    }
}
