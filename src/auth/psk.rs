//! Pre-shared keys: `Authorization: APIKey <key>`, each key named and limited to its patterns.
//!
//! Keys are kept as SHA-256 digests and every configured key is compared in constant time, so
//! neither timing nor a memory dump of this struct tells a key.

use std::sync::Arc;

use aws_lc_rs::digest;
use subtle::ConstantTimeEq;

use super::{Authenticator, Check, Outcome, Principal};
use crate::config::PskKey;

/// The configured pre-shared keys.
#[derive(Debug)]
pub struct PskAuth {
    keys: Vec<Entry>,
}

struct Entry {
    digest: Digest,
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
                    admin: key.admin,
                    profiles: key.profiles.as_deref().map(Arc::from),
                    quota: key.quota,
                },
            })
            .collect();
        Self { keys }
    }
}

/// A SHA-256 digest as four words: compared in constant time word by word (a byte-wise
/// comparison costs eight times the optimisation barriers, for every key on every request).
type Digest = [u64; 4];

fn sha256(text: &str) -> Digest {
    let hash = digest::digest(&digest::SHA256, text.as_bytes());
    let mut words = [0u64; 4];
    for (word, bytes) in words.iter_mut().zip(hash.as_ref().chunks_exact(8)) {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(bytes);
        *word = u64::from_be_bytes(eight);
    }
    words
}

impl Authenticator for PskAuth {
    fn method(&self) -> &'static str {
        "psk"
    }

    fn authenticate<'a>(&'a self, scheme: &'a str, credentials: &'a str) -> Check<'a> {
        if !scheme.eq_ignore_ascii_case("apikey") {
            return Check::Now(Outcome::NotMine);
        }
        let presented = sha256(credentials);
        // Compare against every key without stopping early.
        let mut found = None;
        for entry in &self.keys {
            if bool::from(entry.digest.ct_eq(&presented)) {
                found = Some(&entry.principal);
            }
        }
        Check::Now(match found {
            Some(principal) => Outcome::Authenticated(principal.clone()),
            None => Outcome::Invalid("invalid API key".to_owned()),
        })
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
                0xba78_16bf_8f01_cfea,
                0x4141_40de_5dae_2223,
                0xb003_61a3_9617_7a9c,
                0xb410_ff61_f200_15ad,
            ]
        );
    }
}
