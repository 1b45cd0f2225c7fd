//! The file's shape as serde structs: every key optional, unknown keys refused.
//!
//! Field names here are the config keys (camelCase); the deserializer in `de.rs` takes each
//! struct's list of valid keys from these definitions, so a key added here is accepted and
//! listed in "unknown key" messages with no other change. These structs hold secrets as plain
//! strings and so deliberately derive no `Debug`.
//!
//! A `challenges.dns01` entry is the exception: which keys it takes depends on its `provider`,
//! so each provider's struct lives with that provider's settings in `dns01/`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::dns_persist::RawDnsPersistEntry;
use super::dns01::RawDns01Entry;

/// The whole file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawConfig {
    pub server: Option<RawServer>,
    pub storage: Option<RawStorage>,
    pub acme: Option<RawAcme>,
    pub challenges: Option<RawChallenges>,
    pub auth: Option<RawAuth>,
    pub log: Option<RawLog>,
    pub notifications: Option<RawNotifications>,
    pub certificates: Option<RawCertificates>,
    pub limits: Option<RawLimits>,
}

/// `limits`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawLimits {
    pub enabled: Option<bool>,
    pub per_registered_domain: Option<RawLimit>,
    pub per_exact_set: Option<RawLimit>,
    pub per_account: Option<RawLimit>,
    pub failed_validations: Option<RawLimit>,
    pub renewal_reserve: Option<String>,
    pub renewal_pace: Option<RawLimit>,
}

/// A `{count, window}` limit (`limits.*`, a credential's `quota`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawLimit {
    pub count: Option<String>,
    pub window: Option<String>,
}

/// `certificates`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawCertificates {
    pub private_keys: Option<String>,
    pub max_client_keys: Option<String>,
}

/// `log`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}

/// `server`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawServer {
    pub listen: Option<String>,
    pub metrics_listen: Option<String>,
    pub metrics_certificates: Option<String>,
    pub issue_wait: Option<String>,
    pub cache_size: Option<String>,
    pub ui: Option<bool>,
    pub tls: Option<RawTls>,
    pub watch: Option<RawWatch>,
}

/// `server.watch`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawWatch {
    pub max_wait: Option<String>,
    pub max_waiters: Option<String>,
    pub max_per_credential: Option<String>,
}

/// `server.tls`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub acme: Option<RawTlsAcme>,
}

/// `server.tls.acme`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawTlsAcme {
    pub hostnames: Option<Vec<String>>,
}

/// `storage`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawStorage {
    pub url: Option<String>,
    pub url_file: Option<String>,
    pub encryption_key: Option<String>,
    pub encryption_key_file: Option<String>,
    pub previous_encryption_keys: Option<Vec<String>>,
    pub max_connections: Option<String>,
    pub connect_timeout: Option<String>,
    pub ca_certificates: Option<String>,
    pub lease_ttl: Option<String>,
}

/// `acme`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawAcme {
    pub directory_url: Option<String>,
    pub email: Option<String>,
    pub ca_certificates: Option<String>,
    pub eab: Option<RawEab>,
    pub key_type: Option<String>,
    pub profile: Option<String>,
    pub ip_profile: Option<String>,
    pub max_concurrent_orders: Option<String>,
    pub fallback: Option<RawAcmeFallback>,
}

/// `acme.fallback`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawAcmeFallback {
    pub directory_url: Option<String>,
    pub email: Option<String>,
    pub ca_certificates: Option<String>,
    pub eab: Option<RawEab>,
    pub profile: Option<String>,
}

/// `acme.eab`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawEab {
    pub kid: Option<String>,
    pub hmac_key: Option<String>,
    pub hmac_key_file: Option<String>,
}

/// `challenges`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawChallenges {
    pub http01: Option<RawHttp01>,
    pub tls_alpn01: Option<RawTlsAlpn01>,
    /// Each entry's keys depend on its provider: see `dns01/`.
    pub dns01: Option<Vec<RawDns01Entry>>,
    pub dns_persist: Option<Vec<RawDnsPersistEntry>>,
    pub resolvers: Option<Vec<String>>,
}

/// `challenges.http01`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawHttp01 {
    pub listen: Option<String>,
    pub enabled: Option<bool>,
}

/// `challenges.tlsAlpn01`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawTlsAlpn01 {
    pub listen: Option<String>,
}

/// `auth`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawAuth {
    pub psk: Option<RawPsk>,
    pub jwt: Option<RawJwt>,
    pub akash: Option<RawAkash>,
}

/// `auth.psk`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawPsk {
    pub key: Option<String>,
    pub key_file: Option<String>,
    pub keys: Option<Vec<RawPskEntry>>,
}

/// One item of `auth.psk.keys`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawPskEntry {
    pub name: Option<String>,
    pub key: Option<String>,
    pub key_file: Option<String>,
    pub domains: Option<Vec<String>>,
    pub admin: Option<bool>,
    pub profiles: Option<Vec<String>>,
    pub quota: Option<RawLimit>,
}

/// `auth.jwt`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawJwt {
    pub issuer_url: Option<String>,
    pub audience: Option<OneOrMany>,
    pub required_scopes: Option<Vec<String>>,
    pub admin_scope: Option<String>,
    pub domains_claim: Option<String>,
    pub roles_claim: Option<String>,
    pub leeway: Option<String>,
    pub algorithms: Option<Vec<String>>,
    pub max_token_bytes: Option<String>,
    pub ca_certificates: Option<String>,
    pub profiles: Option<Vec<String>>,
    pub quota: Option<RawLimit>,
}

/// `auth.akash`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawAkash {
    pub key_source: Option<String>,
    pub rest_url: Option<String>,
    pub ca_certificates: Option<String>,
    pub max_token_lifetime: Option<String>,
    pub leeway: Option<String>,
    pub audience: Option<String>,
    pub principals: Option<Vec<RawAkashPrincipal>>,
}

/// One item of `auth.akash.principals`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawAkashPrincipal {
    pub address: Option<String>,
    pub domains: Option<Vec<String>>,
    pub profiles: Option<Vec<String>>,
    pub quota: Option<RawLimit>,
}

/// `notifications`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawNotifications {
    pub webhooks: Option<Vec<RawWebhook>>,
    pub email: Option<RawEmail>,
    pub expiring_at: Option<Vec<String>>,
    pub stale_after: Option<String>,
    pub retry_initial: Option<String>,
    pub retry_max: Option<String>,
    pub max_age: Option<String>,
    pub retention: Option<String>,
}

/// One item of `notifications.webhooks`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawWebhook {
    pub name: Option<String>,
    pub url: Option<String>,
    pub url_file: Option<String>,
    pub secret: Option<String>,
    pub secret_file: Option<String>,
    pub events: Option<Vec<String>>,
    pub format: Option<String>,
    pub timeout: Option<String>,
}

/// `notifications.email`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawEmail {
    pub host: Option<String>,
    pub port: Option<String>,
    pub tls: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub from: Option<String>,
    pub to: Option<OneOrMany>,
    /// Event type name -> addresses: the names are data, not keys, so no field list applies.
    pub to_by_event: Option<BTreeMap<String, OneOrMany>>,
    pub events: Option<Vec<String>>,
    pub timeout: Option<String>,
    pub ca_certificates: Option<String>,
}

/// A value written as one string or as a list of strings (`audience: x` or `audience: [x, y]`).
pub(super) struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![value.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(OneOrMany(items))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}
