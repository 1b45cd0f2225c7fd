//! Private keys at rest: AES-256-GCM with a random 96-bit nonce per value, the key's id stored
//! beside each ciphertext, and the row's identity as associated data (a ciphertext moved to
//! another row does not open).
//!
//! Sealed text is `v1.<key id>.<base64(nonce || ciphertext || tag)>`. New values are always
//! sealed with the current key; previous keys only open old values, so a key can be rotated
//! and old rows re-sealed at leisure.

use std::fmt;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use thiserror::Error;

use crate::config::EncryptionKey;

/// Why a value could not be sealed or opened. Holds no key material.
#[derive(Debug, Error)]
pub enum SealError {
    /// A key is not 32 bytes of base64.
    #[error(
        "{0}: an encryption key must be 32 bytes, base64 (generate one: openssl rand -base64 32)"
    )]
    BadKey(String),
    /// The value was sealed with a key that is not configured.
    #[error(
        "a private key in the database was sealed with key {0}, which is not configured; add it to storage.previousEncryptionKeys"
    )]
    UnknownKey(String),
    /// The value is not in the sealed format, or failed authentication.
    #[error("a sealed value in the database is corrupt or was moved from another row")]
    Corrupt,
    /// The system's random source failed.
    #[error("the system random source failed")]
    Random,
    /// The key file could not be read or written.
    #[error("{0}")]
    KeyFile(String),
}

struct DataKey {
    id: String,
    key: LessSafeKey,
}

/// Seals and opens private keys.
pub struct Sealer {
    current: DataKey,
    previous: Vec<DataKey>,
    random: SystemRandom,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let previous: Vec<&str> = self.previous.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Sealer")
            .field("current", &self.current.id)
            .field("previous", &previous)
            .finish()
    }
}

impl Sealer {
    /// A sealer writing with `current` and also opening with `previous`.
    pub fn new(current: &EncryptionKey, previous: &[EncryptionKey]) -> Result<Self, SealError> {
        let previous = previous
            .iter()
            .map(data_key)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            current: data_key(current)?,
            previous,
            random: SystemRandom::new(),
        })
    }

    /// The id of the key new values are sealed with.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plaintext`, bound to `context` (the row's identity).
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let mut buffer = plaintext.to_vec();
        self.current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buffer,
            )
            .map_err(|_| SealError::Corrupt)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        Ok(format!("v1.{}.{}", self.current.id, STANDARD.encode(out)))
    }

    /// Opens a value sealed by [`Sealer::seal`] with the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SealError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some("v1"), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SealError::Corrupt);
        };
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let bytes = STANDARD.decode(body).map_err(|_| SealError::Corrupt)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Corrupt);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Corrupt)?;
        let mut buffer = ciphertext.to_vec();
        let plaintext = key
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
            .map_err(|_| SealError::Corrupt)?;
        Ok(plaintext.to_vec())
    }

    /// Whether `sealed` was written with the current key.
    pub fn is_current(&self, sealed: &str) -> bool {
        sealed
            .strip_prefix("v1.")
            .and_then(|rest| rest.split_once('.'))
            .is_some_and(|(id, _)| id == self.current.id)
    }
}

fn data_key(key: &EncryptionKey) -> Result<DataKey, SealError> {
    let unbound = UnboundKey::new(&AES_256_GCM, key.expose())
        .map_err(|_| SealError::BadKey(key.origin().to_owned()))?;
    Ok(DataKey {
        id: key_id(key.expose()),
        key: LessSafeKey::new(unbound),
    })
}

/// A short public id for a key: the first 4 bytes of a domain-separated SHA-256, in hex.
fn key_id(key: &[u8]) -> String {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(b"certfleet data key id\0");
    context.update(key);
    context.finish().as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads the key in `path`, or creates it (32 random bytes, base64, mode 0600) when missing.
/// Returns the key text and whether it was created.
pub fn load_or_create_key_file(path: &Path) -> Result<(String, bool), SealError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read_to_string(path) {
        Ok(text) => return Ok((text.trim().to_owned(), false)),
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(SealError::KeyFile(format!(
                "cannot read the encryption key file {}: {err}",
                path.display()
            )));
        }
        Err(_) => {}
    }
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| SealError::Random)?;
    let text = STANDARD.encode(key);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            SealError::KeyFile(format!(
                "cannot create the key file {}: {e}",
                path.display()
            ))
        })?;
    file.write_all(format!("{text}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            SealError::KeyFile(format!("cannot write the key file {}: {e}", path.display()))
        })?;
    Ok((text, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const KEY_B: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    fn key(text: &str) -> EncryptionKey {
        EncryptionKey::parse("k", text).expect("a 32-byte key")
    }

    #[test]
    fn seals_and_opens_bound_to_context() {
        let sealer = Sealer::new(&key(KEY_A), &[]).expect("key");
        let sealed = sealer
            .seal(b"secret pem", "a.example.com|ecdsa-p256")
            .expect("seal");
        assert!(sealed.starts_with(&format!("v1.{}.", sealer.current_id())));
        assert!(!sealed.contains("secret"));
        assert_eq!(
            sealer
                .open(&sealed, "a.example.com|ecdsa-p256")
                .expect("open"),
            b"secret pem"
        );
        assert!(matches!(
            sealer.open(&sealed, "b.example.com|ecdsa-p256"),
            Err(SealError::Corrupt)
        ));
        let other = sealer
            .seal(b"secret pem", "a.example.com|ecdsa-p256")
            .expect("seal");
        assert_ne!(sealed, other, "a fresh nonce per value");
    }

    #[test]
    fn rotation_opens_old_values_and_writes_new_ones() {
        let old = Sealer::new(&key(KEY_A), &[]).expect("key");
        let sealed = old.seal(b"pem", "ctx").expect("seal");
        let rotated = Sealer::new(&key(KEY_B), &[key(KEY_A)]).expect("keys");
        assert!(!rotated.is_current(&sealed));
        assert_eq!(
            rotated.open(&sealed, "ctx").expect("open with previous"),
            b"pem"
        );
        let resealed = rotated.seal(b"pem", "ctx").expect("seal");
        assert!(rotated.is_current(&resealed));
        let forgotten = Sealer::new(&key(KEY_B), &[]).expect("key");
        assert!(matches!(
            forgotten.open(&sealed, "ctx"),
            Err(SealError::UnknownKey(_))
        ));
    }

    #[test]
    fn bad_keys_and_values_are_refused() {
        assert!(EncryptionKey::parse("storage.encryptionKey", "c2hvcnQ=").is_none());
        let sealer = Sealer::new(&key(KEY_A), &[]).expect("key");
        for bad in [
            "",
            "v1",
            "v2.x.y",
            "v1.zzzz.AAAA",
            &format!("v1.{}.!!", sealer.current_id()),
        ] {
            assert!(sealer.open(bad, "ctx").is_err(), "{bad}");
        }
        let mut sealed = sealer.seal(b"pem", "ctx").expect("seal");
        sealed.pop();
        sealed.push('A');
        assert!(sealer.open(&sealed, "ctx").is_err());
    }
}
