//! Pre-shared keys: `Authorization: APIKey <key>`, each key named and limited to its patterns.
//!
//! Keys are kept as SHA-256 digests and every configured key is compared in constant time, so
//! neither timing nor a memory dump of this struct tells a key.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lc_rs::digest;
use subtle::ConstantTimeEq;

use super::{Authenticator, Outcome, Principal};
use crate::config::PskKey;

/// The configured pre-shared keys.
#[derive(Debug)]
pub struct PskAuth {
    keys: Vec<Entry>,
}

struct Entry {
    digest: [u8; 32],
    principal: Principal,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.principal.name)
            .finish_non_exhaustive()
    }
}

impl PskAuth {
    /// Builds the method from `auth.psk`.
    pub fn new(keys: &[PskKey]) -> Self {
        let keys = keys
            .iter()
            .map(|key| Entry {
                digest: sha256(key.key.expose()),
                principal: Principal {
                    name: key.name.as_str().into(),
                    method: "psk",
                    domains: Arc::from(key.domains.clone()),
                },
            })
            .collect();
        Self { keys }
    }
}

fn sha256(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, text.as_bytes()).as_ref());
    out
}

#[async_trait]
impl Authenticator for PskAuth {
    fn method(&self) -> &'static str {
        "psk"
    }

    async fn authenticate(&self, scheme: &str, credentials: &str) -> Outcome {
        if !scheme.eq_ignore_ascii_case("apikey") {
            return Outcome::NotMine;
        }
        let presented = sha256(credentials);
        // Compare against every key without stopping early.
        let mut found = None;
        for entry in &self.keys {
            if bool::from(entry.digest.ct_eq(&presented)) {
                found = Some(&entry.principal);
            }
        }
        match found {
            Some(principal) => Outcome::Authenticated(principal.clone()),
            None => Outcome::Invalid("invalid API key".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kept_as_their_sha256() {
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            sha256("abc"),
            [
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
                0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
                0xf2, 0x00, 0x15, 0xad,
            ]
        );
    }
}
