//! Akash account addresses: bech32 (BIP-173, not bech32m) with the human-readable part `akash`
//! over the 20-byte Cosmos account hash `RIPEMD160(SHA256(compressed secp256k1 public key))`.

use std::fmt;

use bech32::primitives::decode::{CheckedHrpstring, CheckedHrpstringError};
use bech32::{Bech32, Hrp};
use k256::ecdsa::VerifyingKey;
use ripemd::Ripemd160;
use sha2::{Digest as _, Sha256};

/// The bech32 human-readable part of Akash account addresses.
pub const HRP: &str = "akash";
/// The length of an account address's data: a RIPEMD-160 digest.
const ADDRESS_BYTES: usize = 20;

/// A valid `akash1...` account address, kept in its canonical lowercase form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    text: String,
    bytes: [u8; ADDRESS_BYTES],
}

impl Address {
    /// Parses an `akash1...` address: bech32 with a valid checksum, lowercase, the `akash`
    /// prefix and 20 bytes of data (an account controlled by a secp256k1 key).
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let shown = || printable(text);
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(AddressError::Uppercase { shown: shown() });
        }
        let checked =
            CheckedHrpstring::new::<Bech32>(text).map_err(|source| AddressError::NotBech32 {
                shown: shown(),
                source,
            })?;
        if checked.hrp().as_str() != HRP {
            return Err(AddressError::Prefix {
                shown: shown(),
                prefix: checked.hrp().to_string(),
            });
        }
        let data: Vec<u8> = checked.byte_iter().collect();
        let bytes: [u8; ADDRESS_BYTES] =
            data.as_slice()
                .try_into()
                .map_err(|_| AddressError::Length {
                    shown: shown(),
                    len: data.len(),
                })?;
        Ok(Self {
            text: text.to_owned(),
            bytes,
        })
    }

    /// The address of the account a public key controls (the Cosmos SDK's secp256k1 address:
    /// RIPEMD-160 of SHA-256 of the 33-byte compressed point).
    pub fn from_public_key(key: &VerifyingKey) -> Self {
        Self::from_compressed_key(&compressed(key))
    }

    /// The address of a 33-byte compressed public key.
    pub fn from_compressed_key(compressed: &[u8; 33]) -> Self {
        let sha = Sha256::digest(compressed);
        let hash = Ripemd160::digest(sha);
        let mut bytes = [0u8; ADDRESS_BYTES];
        bytes.copy_from_slice(&hash);
        Self {
            text: encode(&bytes),
            bytes,
        }
    }

    /// The address as text, `akash1...`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The 20 bytes the address encodes.
    pub fn bytes(&self) -> &[u8; ADDRESS_BYTES] {
        &self.bytes
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why text is not an Akash account address. `shown` is the text as given, cut to 64
/// printable characters (it comes from untrusted tokens and configs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Bech32 is case-insensitive, but an address is compared as text: one spelling only.
    #[error("\"{shown}\" is not an Akash address: write it in lowercase (akash1...)")]
    Uppercase {
        /// The text, for the message.
        shown: String,
    },
    /// Not bech32 (BIP-173), or its checksum does not match.
    #[error("\"{shown}\" is not an Akash address: not valid bech32 ({source})")]
    NotBech32 {
        /// The text, for the message.
        shown: String,
        /// What the bech32 decoder found.
        source: CheckedHrpstringError,
    },
    /// Valid bech32 of another chain or kind of key (`cosmos1...`, `akashvaloper1...`).
    #[error("\"{shown}\" is not an Akash address: its prefix is {prefix}, not {hrp}", hrp = HRP)]
    Prefix {
        /// The text, for the message.
        shown: String,
        /// The human-readable part it has.
        prefix: String,
    },
    /// An `akash1` string that does not hold a 20-byte account hash (a module or contract
    /// address, say).
    #[error(
        "\"{shown}\" is not an Akash account address: it holds {len} bytes, not {bytes}",
        bytes = ADDRESS_BYTES
    )]
    Length {
        /// The text, for the message.
        shown: String,
        /// How many bytes it holds.
        len: usize,
    },
}

/// The 33-byte SEC1 compressed encoding of a public key, the form Cosmos stores and hashes.
pub fn compressed(key: &VerifyingKey) -> [u8; 33] {
    let point = key.to_sec1_point(true);
    let mut out = [0u8; 33];
    out.copy_from_slice(point.as_bytes());
    out
}

fn encode(bytes: &[u8; ADDRESS_BYTES]) -> String {
    // A fixed valid HRP and 20 bytes are always encodable: bech32 limits only the total length
    // (90 characters), and an akash address is 44.
    let hrp = Hrp::parse_unchecked(HRP);
    bech32::encode_lower::<Bech32>(hrp, bytes).unwrap_or_default()
}

/// At most 64 printable characters of untrusted text, for messages.
pub(crate) fn printable(text: &str) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(64).collect();
    if text.chars().count() > 64 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_the_cosmos_address_of_a_key() {
        // secp256k1 generator point G (private key 1): a key anyone can check by hand.
        let key = hex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798");
        let address = Address::from_compressed_key(&key.try_into().expect("33 bytes"));
        // RIPEMD160(SHA256(G)) = 751e76e8199196d454941c45d1b3a323f1433bd6 (Bitcoin's
        // well-known hash160 of the generator's compressed key).
        assert_eq!(
            address.bytes().to_vec(),
            hex("751e76e8199196d454941c45d1b3a323f1433bd6")
        );
        assert!(address.as_str().starts_with("akash1"));
        assert_eq!(address.as_str().len(), 44);
        assert_eq!(Address::parse(address.as_str()), Ok(address));
    }

    #[test]
    fn parses_only_lowercase_20_byte_akash_bech32() {
        let good = Address::from_compressed_key(&[2; 33]);
        let text = good.as_str().to_owned();
        assert!(Address::parse(&text).is_ok());
        let upper = text.to_ascii_uppercase();
        let mut bad_checksum = text.clone();
        let last = bad_checksum.pop().expect("non-empty");
        bad_checksum.push(if last == 'q' { 'p' } else { 'q' });
        let cosmos = bech32::encode_lower::<Bech32>(Hrp::parse_unchecked("cosmos"), good.bytes())
            .expect("encode");
        let long =
            bech32::encode_lower::<Bech32>(Hrp::parse_unchecked(HRP), &[7; 32]).expect("encode");
        let bech32m = bech32::encode_lower::<bech32::Bech32m>(Hrp::parse_unchecked(HRP), &[7; 20])
            .expect("encode");
        for (bad, why) in [
            (upper.as_str(), "lowercase"),
            (bad_checksum.as_str(), "bech32"),
            (cosmos.as_str(), "prefix is cosmos"),
            (long.as_str(), "32 bytes"),
            (bech32m.as_str(), "bech32"),
            ("", "bech32"),
            ("akash1", "bech32"),
        ] {
            let err = Address::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }
}
