//! `acme`: the CA's directory, the account's contact and EAB credentials, the default key type.

use std::{net::IpAddr, path::PathBuf};

use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose},
};

use serde::Serialize;

use super::{
    print::{as_key_type, as_optional_path},
    raw::{RawAcme, RawAcmeFallback, RawEab},
    report::{Report, Reported, non_empty, pem_certificates_file},
    secret::Secret,
};
use crate::domain::{KeyType, Profile};

const DEFAULT_DIRECTORY_URL: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// RFC 8555 section 7.3.4 leaves the size to the CA; every CA in use issues 32 bytes or more,
/// so a shorter decoded key is a truncated copy.
const MIN_HMAC_KEY_BYTES: usize = 16;
/// The default of `acme.maxConcurrentOrders`: a burst of 100 orders on Pebble stalls it (a lock
/// held while its validator waits), 50 at a time does not, and a fleet's renewals rarely need
/// more at once.
pub const DEFAULT_MAX_CONCURRENT_ORDERS: usize = 50;

/// `acme`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcmeConfig {
    /// `acme.directoryUrl`: an `https://` URL, or `http://` for a loopback host (a local Pebble).
    pub directory_url: String,
    /// `acme.email`: the account contact, a bare address (any `mailto:` prefix removed).
    pub email: Option<String>,
    /// `acme.caCertificates`: a PEM file of roots added to the system's for the CA's HTTPS;
    /// checked to exist and to hold at least one certificate.
    #[serde(serialize_with = "as_optional_path")]
    pub ca_certificates: Option<PathBuf>,
    /// `acme.eab`: External Account Binding (RFC 8555 section 7.3.4).
    pub eab: Option<EabConfig>,
    /// `acme.keyType`: the key type of certificates whose request names none
    /// (default `ecdsa-p256`).
    #[serde(serialize_with = "as_key_type")]
    pub key_type: KeyType,
    /// `acme.profile`: an ACME profile name, checked against the directory later.
    pub profile: Option<Profile>,
    /// `acme.ipProfile`: the profile of a certificate naming an IP address whose request names
    /// none; unset: `shortlived` when the directory lists it (Let's Encrypt issues for
    /// addresses only with it), else `acme.profile`.
    pub ip_profile: Option<Profile>,
    /// `acme.maxConcurrentOrders`: how many orders this process drives at the CA at once
    /// (1 to 1000); more issuances wait for a free slot, in the order they came.
    pub max_concurrent_orders: usize,
    /// `acme.fallback`: a second CA for when this one fails for its own reasons.
    pub fallback: Option<FallbackConfig>,
}

/// `acme.fallback`: a second ACME directory, with its own account, used for an identity when
/// the primary fails for the CA's reasons (unreachable, 5xx, rate limit), never for the name's
/// own fault.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FallbackConfig {
    /// `acme.fallback.directoryUrl` (required): checked like `acme.directoryUrl`.
    pub directory_url: String,
    /// `acme.fallback.email`: the account contact; default `acme.email`.
    pub email: Option<String>,
    /// `acme.fallback.caCertificates`: roots added to the system's for this CA's HTTPS.
    #[serde(serialize_with = "as_optional_path")]
    pub ca_certificates: Option<PathBuf>,
    /// `acme.fallback.eab`: this CA's External Account Binding.
    pub eab: Option<EabConfig>,
    /// `acme.fallback.profile`: the profile of its orders (the identity's own when this CA
    /// offers one of that name).
    pub profile: Option<Profile>,
}

/// `acme.eab`: the key ID and HMAC key a CA such as ZeroSSL or Google Trust Services issues.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EabConfig {
    /// `acme.eab.kid`: the key ID.
    pub kid: String,
    /// `acme.eab.hmacKey` (or `hmacKeyFile`): known to decode to at least 16 bytes, and stored
    /// re-encoded as unpadded base64url whatever form the file used, so it decodes with
    /// `base64::engine::general_purpose::URL_SAFE_NO_PAD`.
    pub hmac_key: Secret,
}

/// Resolves `acme`, reporting every problem in it.
pub(super) fn acme(raw: RawAcme, report: &mut Report<'_>) -> Result<AcmeConfig, Reported> {
    let directory_url = raw.directory_url.map_or_else(
        || Ok(DEFAULT_DIRECTORY_URL.to_owned()),
        |url| match check_directory_url(&url) {
            Ok(()) => Ok(url),
            Err(message) => Err(report.error("acme.directoryUrl", message)),
        },
    );
    let email = email("acme.email", non_empty(raw.email), report);
    let fallback = raw.fallback.map(|raw| fallback(raw, report)).transpose();
    let ca_certificates = non_empty(raw.ca_certificates)
        .map(|path| {
            pem_certificates_file(
                path,
                "acme.caCertificates",
                "point it at a PEM file of the CA certificates to trust",
                report,
            )
        })
        .transpose();
    let eab = raw.eab.map(|raw| eab("acme.eab", raw, report)).transpose();
    let key_type = raw.key_type.map_or(Ok(KeyType::EcdsaP256), |text| {
        KeyType::parse(&text).ok_or_else(|| {
            let names = KeyType::ALL.map(|k| k.as_str()).join(", ");
            let message = format!("unknown key type \"{text}\"; use one of {names}");
            report.error("acme.keyType", message)
        })
    });
    let max_concurrent_orders =
        raw.max_concurrent_orders
            .map_or(Ok(DEFAULT_MAX_CONCURRENT_ORDERS), |text| {
                text.parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        report.error(
                            "acme.maxConcurrentOrders",
                            format!(
                                "\"{text}\" is not a number of orders; write a whole number from 1 \
                                 to 1000 (default {DEFAULT_MAX_CONCURRENT_ORDERS})"
                            ),
                        )
                    })
            });
    let profile = super::report::profile("acme.profile", raw.profile, report);
    let ip_profile = super::report::profile("acme.ipProfile", raw.ip_profile, report);
    Ok(AcmeConfig {
        directory_url: directory_url?,
        email: email?,
        ca_certificates: ca_certificates?,
        eab: eab?,
        key_type: key_type?,
        profile: profile?,
        ip_profile: ip_profile?,
        max_concurrent_orders: max_concurrent_orders?,
        fallback: fallback?,
    })
}

/// Resolves `acme.fallback`.
fn fallback(raw: RawAcmeFallback, report: &mut Report<'_>) -> Result<FallbackConfig, Reported> {
    const KEY: &str = "acme.fallback.directoryUrl";
    let directory_url = match non_empty(raw.directory_url) {
        None => Err(report.error(
            KEY,
            "is required with acme.fallback: the second CA's ACME directory URL, such as \
             https://acme.zerossl.com/v2/DV90 (or remove acme.fallback)",
        )),
        Some(url) => match check_directory_url(&url) {
            Ok(()) => Ok(url),
            Err(message) => Err(report.error(KEY, message)),
        },
    };
    let email = email("acme.fallback.email", non_empty(raw.email), report);
    let ca_certificates = non_empty(raw.ca_certificates)
        .map(|path| {
            pem_certificates_file(
                path,
                "acme.fallback.caCertificates",
                "point it at a PEM file of the CA certificates to trust",
                report,
            )
        })
        .transpose();
    let eab = raw
        .eab
        .map(|raw| eab("acme.fallback.eab", raw, report))
        .transpose();
    let profile = super::report::profile("acme.fallback.profile", raw.profile, report);
    Ok(FallbackConfig {
        directory_url: directory_url?,
        email: email?,
        ca_certificates: ca_certificates?,
        eab: eab?,
        profile: profile?,
    })
}

/// An `https://` URL; `http://` only for a loopback host, where a test CA such as Pebble runs.
fn check_directory_url(url: &str) -> Result<(), String> {
    let scheme_rest = |scheme: &str| {
        url.get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .and_then(|_| url.get(scheme.len()..))
    };
    let (secure, rest) = match (scheme_rest("https://"), scheme_rest("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => {
            return Err(format!(
                "\"{url}\" is not an https:// URL; use your CA's ACME directory URL, such as \
                 {DEFAULT_DIRECTORY_URL}"
            ));
        }
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() || url.contains(char::is_whitespace) {
        return Err(format!(
            "\"{url}\" is not a valid URL; use your CA's ACME directory URL, such as \
             {DEFAULT_DIRECTORY_URL}"
        ));
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !secure && !loopback {
        return Err(format!(
            "\"{url}\" uses http:// for a host that is not loopback; use https:// (http:// is \
             allowed only for 127.0.0.0/8, ::1 and localhost, e.g. a local Pebble)"
        ));
    }
    Ok(())
}

fn email(
    key: &str,
    value: Option<String>,
    report: &mut Report<'_>,
) -> Result<Option<String>, Reported> {
    let Some(text) = value else {
        return Ok(None);
    };
    let address = text.strip_prefix("mailto:").unwrap_or(&text);
    let well_formed = address
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && address.matches('@').count() == 1
        && !address.contains(|c: char| c == ',' || c.is_whitespace());
    match well_formed {
        true => Ok(Some(address.to_owned())),
        false => Err(report.error(
            key,
            format!(
                "\"{text}\" is not one email address; write a single address such as \
                 ops@example.com"
            ),
        )),
    }
}

fn eab(section: &str, raw: RawEab, report: &mut Report<'_>) -> Result<EabConfig, Reported> {
    let hmac_key_path = format!("{section}.hmacKey");
    let kid = non_empty(raw.kid).ok_or_else(|| {
        report.error(
            &format!("{section}.kid"),
            format!("is required with {section}; copy the key ID from your CA's EAB credentials"),
        )
    });
    let hmac_key = match report.secret(&hmac_key_path, raw.hmac_key, raw.hmac_key_file) {
        Ok(Some(value)) => decode_hmac_key(value.secret.expose())
            .map(|bytes| Secret::new(general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
            .map_err(|message| report.error(&value.key, message)),
        Ok(None) => Err(report.error(
            &hmac_key_path,
            format!(
                "is required with {section} (or hmacKeyFile); copy the HMAC key from your CA's \
                 EAB credentials"
            ),
        )),
        Err(reported) => Err(reported),
    };
    Ok(EabConfig {
        kid: kid?,
        hmac_key: hmac_key?,
    })
}

/// Decodes base64url as CAs print it, padded or not; standard base64 is accepted too, as some
/// dashboards show it. The message never includes the key or the decoder's error, which quotes
/// the offending byte.
fn decode_hmac_key(text: &str) -> Result<Vec<u8>, String> {
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
    let text = text.trim();
    let bytes = URL_SAFE
        .decode(text)
        .or_else(|_| STANDARD.decode(text))
        .map_err(|_| {
            "is not base64url (nor standard base64); copy the HMAC key exactly as your CA shows it"
                .to_owned()
        })?;
    if bytes.len() < MIN_HMAC_KEY_BYTES {
        return Err(format!(
            "decodes to {} bytes, but an EAB HMAC key has at least {MIN_HMAC_KEY_BYTES}; copy the \
             whole key from your CA",
            bytes.len()
        ));
    }
    Ok(bytes)
}
