//! The file's shape as serde structs: every key optional, unknown keys refused.
//!
//! Field names here are the config keys (camelCase); the deserializer in `de.rs` takes each
//! struct's list of valid keys from these definitions, so a key added here is accepted and
//! listed in "unknown key" messages with no other change. These structs hold secrets as plain
//! strings and so deliberately derive no `Debug`.

use serde::Deserialize;

/// Keys the SPEC names that this version does not implement yet. They get their own message, so
/// a user following the documentation is not told the key does not exist.
pub(super) const NOT_YET_SUPPORTED: &[&str] = &[
    "server.metricsListen",
    "server.tls",
    "storage.encryptionKey",
    "storage.encryptionKeyFile",
    "storage.previousEncryptionKeys",
    "challenges.dns01",
    "challenges.resolvers",
    "auth.jwt",
    "auth.akash",
];

/// The whole file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawConfig {
    pub server: Option<RawServer>,
    pub storage: Option<RawStorage>,
    pub acme: Option<RawAcme>,
    pub challenges: Option<RawChallenges>,
    pub auth: Option<RawAuth>,
}

/// `server`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawServer {
    pub listen: Option<String>,
    pub issue_wait: Option<String>,
}

/// `storage`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawStorage {
    pub url: Option<String>,
    pub url_file: Option<String>,
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
}

/// `challenges.http01`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawHttp01 {
    pub listen: Option<String>,
}

/// `auth`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawAuth {
    pub psk: Option<RawPsk>,
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
}
