//! The token on the wire and its signature: a compact JWS (RFC 7515 section 7.1) signed with
//! the issuer's secp256k1 wallet key, as the Akash provider API defines it (AEP-64).
//!
//! - `ES256K` (RFC 8812 section 3.2; the Go client and `provider-services`): ECDSA over
//!   SHA-256 of the signing input `base64url(header).base64url(payload)` exactly as received.
//! - `ES256KADR36` (the TypeScript SDK's default: Console, Keplr, Leap): browser wallets sign
//!   only ADR-036 "arbitrary data" documents, so the signature covers SHA-256 of an amino JSON
//!   sign document wrapping the signing input ([`adr36_document`]).
//!
//! Both carry a 64-byte `R || S` signature whose `S` is in the lower half of the group order:
//! the Cosmos SDK refuses high-S (malleable) signatures, and so does [`parse_signature`]. A
//! DER signature, another length, or `R`/`S` out of range is invalid.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use k256::ecdsa::signature::hazmat::PrehashVerifier as _;
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use k256::elliptic_curve::scalar::IsHigh as _;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::address::{Address, AddressError, printable};

/// A bearer token longer than this is not an Akash token worth decoding (the API's whole header
/// limit is 16 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// A JOSE header is a few dozen bytes.
const MAX_HEADER_CHARS: usize = 1024;

/// The two signature algorithms of Akash provider-API tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `ES256K`: ECDSA secp256k1 over SHA-256 of the signing input.
    Es256k,
    /// `ES256KADR36`: ECDSA secp256k1 over SHA-256 of the ADR-036 document wrapping it.
    Es256kAdr36,
}

impl Algorithm {
    /// The `alg` header value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Es256k => "ES256K",
            Self::Es256kAdr36 => "ES256KADR36",
        }
    }

    /// The algorithm an `alg` value names, if it is one of the two (exact, case-sensitive, as
    /// RFC 7515 section 4.1.1 compares it).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ES256K" => Some(Self::Es256k),
            "ES256KADR36" => Some(Self::Es256kAdr36),
            _ => None,
        }
    }
}

/// Why a signature was refused, as the signature layer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not 64 bytes (a DER signature lands here).
    #[error(
        "the signature is {0} bytes, not the 64 bytes of R||S (a DER signature is not accepted)"
    )]
    Length(usize),
    /// `R` or `S` is zero or not below the group order.
    #[error("the signature's R or S is out of range")]
    OutOfRange,
    /// `S` in the upper half: valid ECDSA, but malleable, and refused by the Cosmos SDK.
    #[error("the signature has a high S value (only low-S signatures are accepted)")]
    HighS,
    /// The signature does not verify under the key.
    #[error("the signature does not verify")]
    Mismatch,
    /// No key recovered from the signature has the expected address.
    #[error("the signature was not made by the key of the address")]
    NotSigner,
}

/// Parses a 64-byte `R || S` signature with `S` in the lower half of the order (the rule the
/// Cosmos SDK's secp256k1 keys apply). Never normalises `S`: a high-S signature is refused.
pub fn parse_signature(bytes: &[u8]) -> Result<Signature, SignatureError> {
    if bytes.len() != 64 {
        return Err(SignatureError::Length(bytes.len()));
    }
    let signature = Signature::from_slice(bytes).map_err(|_| SignatureError::OutOfRange)?;
    if bool::from(signature.s().is_high()) {
        return Err(SignatureError::HighS);
    }
    Ok(signature)
}

/// Verifies an `ES256K` signature (64 bytes, low S) of `message` under `key`: the signature
/// layer both algorithms share, with `message` the bytes that were signed.
pub fn verify_es256k(
    key: &VerifyingKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let signature = parse_signature(signature)?;
    verify_prehash(key, &Sha256::digest(message), &signature)
}

/// Recovers the key that made an `ES256K` signature (64 bytes, low S) of `message`, trying
/// each recovery id, and returns it only if its address is `address` and the signature verifies
/// under it.
pub fn recover_es256k(
    message: &[u8],
    signature: &[u8],
    address: &Address,
) -> Result<VerifyingKey, SignatureError> {
    let signature = parse_signature(signature)?;
    recover_prehash(&Sha256::digest(message), &signature, address)
}

fn recover_prehash(
    prehash: &[u8],
    signature: &Signature,
    address: &Address,
) -> Result<VerifyingKey, SignatureError> {
    for id in 0..=RecoveryId::MAX {
        let Some(id) = RecoveryId::from_byte(id) else {
            continue;
        };
        let Ok(key) = VerifyingKey::recover_from_prehash(prehash, signature, id) else {
            continue;
        };
        if Address::from_public_key(&key) == *address {
            return verify_prehash(&key, prehash, signature).map(|()| key);
        }
    }
    Err(SignatureError::NotSigner)
}

fn verify_prehash(
    key: &VerifyingKey,
    prehash: &[u8],
    signature: &Signature,
) -> Result<(), SignatureError> {
    key.verify_prehash(prehash, signature)
        .map_err(|_| SignatureError::Mismatch)
}

/// The ADR-036 amino sign document that `ES256KADR36` signs: keys sorted, no whitespace, the
/// signing input as standard padded base64 in `data` and the signer's address in `signer`
/// (what Keplr's `signArbitrary` and the SDK's `createOfflineDataSigner` build).
pub fn adr36_document(signing_input: &str, signer: &Address) -> String {
    let data = STANDARD.encode(signing_input);
    // Neither value needs JSON escaping: base64 and bech32 use only [A-Za-z0-9+/=].
    format!(
        "{{\"account_number\":\"0\",\"chain_id\":\"\",\"fee\":{{\"amount\":[],\"gas\":\"0\"}},\
         \"memo\":\"\",\"msgs\":[{{\"type\":\"sign/MsgSignData\",\"value\":{{\"data\":\"{data}\",\
         \"signer\":\"{signer}\"}}}}],\"sequence\":\"0\"}}"
    )
}

/// The `alg` of a compact JWS's header, read without checking anything else: how the
/// authentication chain tells an Akash token from an OIDC one. `None` when the first segment
/// is not a base64url JSON object with a string `alg`.
pub fn header_algorithm(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    if header.len() > MAX_HEADER_CHARS {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    #[derive(serde::Deserialize)]
    struct Alg {
        alg: String,
    }
    serde_json::from_slice::<Alg>(&bytes).ok().map(|h| h.alg)
}

/// A token split and decoded, its signature not yet checked.
#[derive(Debug, Clone)]
pub struct Token {
    algorithm: Algorithm,
    signing_input: String,
    claims: Map<String, Value>,
    issuer: Address,
    signature: Signature,
}

impl Token {
    /// Splits and decodes a token: exactly three unpadded base64url segments, a header whose
    /// `alg` is `ES256K` or `ES256KADR36` (its other fields are ignored), a JSON object payload
    /// with an `iss` address, and a 64-byte low-S signature.
    pub fn parse(token: &str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong);
        }
        let mut segments = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(TokenError::NotJws);
        };
        let alg = header_algorithm(token).ok_or(TokenError::NoAlgorithm)?;
        let algorithm = Algorithm::from_name(&alg).ok_or_else(|| TokenError::UnknownAlgorithm {
            alg: printable(&alg),
        })?;
        let payload_bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(TokenError::PayloadNotBase64)?;
        let claims: Map<String, Value> =
            serde_json::from_slice(&payload_bytes).map_err(TokenError::PayloadNotObject)?;
        let issuer = match claims.get("iss") {
            Some(Value::String(iss)) => Address::parse(iss).map_err(TokenError::Issuer)?,
            Some(_) => return Err(TokenError::IssuerNotString),
            None => return Err(TokenError::NoIssuer),
        };
        let signature_bytes = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(TokenError::SignatureNotBase64)?;
        let signature = parse_signature(&signature_bytes)?;
        let signing_input = &token[..header.len() + 1 + payload.len()];
        Ok(Self {
            algorithm,
            signing_input: signing_input.to_owned(),
            claims,
            issuer,
            signature,
        })
    }

    /// The signature algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The claimed signer, `iss`.
    pub fn issuer(&self) -> &Address {
        &self.issuer
    }

    /// The decoded payload, unchecked: [`crate::Claims::parse`] applies the rules.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The bytes the signature covers: the signing input itself (`ES256K`) or the ADR-036
    /// document wrapping it (`ES256KADR36`).
    pub fn signed_message(&self) -> Cow<'_, [u8]> {
        match self.algorithm {
            Algorithm::Es256k => Cow::Borrowed(self.signing_input.as_bytes()),
            Algorithm::Es256kAdr36 => {
                Cow::Owned(adr36_document(&self.signing_input, &self.issuer).into_bytes())
            }
        }
    }

    /// Checks the signature under `key` (from the chain or a cache).
    pub fn verify_with(&self, key: &VerifyingKey) -> Result<(), SignatureError> {
        verify_prehash(key, &Sha256::digest(self.signed_message()), &self.signature)
    }

    /// Recovers the signing key from the signature, trying each recovery id, and returns it
    /// only if its address is `iss` and the signature verifies under it. Works for wallets
    /// that never sent a transaction (no public key on chain yet).
    pub fn recover_key(&self) -> Result<VerifyingKey, RecoveryError> {
        let prehash = Sha256::digest(self.signed_message());
        recover_prehash(&prehash, &self.signature, &self.issuer).map_err(|e| match e {
            SignatureError::NotSigner => RecoveryError::NotSigner {
                issuer: self.issuer.clone(),
            },
            other => RecoveryError::Signature(other),
        })
    }
}

/// Why [`Token::parse`] refused a token. Never quotes the token; at most its `alg`, cut short.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("the token is longer than {max} bytes", max = MAX_TOKEN_BYTES)]
    TooLong,
    /// Not three dot-separated segments.
    #[error("the token is not a compact JWS (three base64url segments: header.payload.signature)")]
    NotJws,
    /// The header is not base64url JSON with a string `alg`.
    #[error("the token's header is not a JSON object with an alg")]
    NoAlgorithm,
    /// An `alg` other than the two of Akash tokens.
    #[error("the token's alg \"{alg}\" is not ES256K or ES256KADR36")]
    UnknownAlgorithm {
        /// The `alg`, cut to 64 printable characters.
        alg: String,
    },
    /// The payload segment does not decode.
    #[error("the token's payload is not unpadded base64url")]
    PayloadNotBase64(#[source] base64::DecodeError),
    /// The payload is not a JSON object.
    #[error("the token's payload is not a JSON object")]
    PayloadNotObject(#[source] serde_json::Error),
    /// `iss` is not an Akash address.
    #[error("the token's iss: {0}")]
    Issuer(#[source] AddressError),
    /// `iss` is there but not a string.
    #[error("the token's iss is not a string")]
    IssuerNotString,
    /// No `iss`, so no signer to check against.
    #[error("the token has no iss (the signer's akash1 address)")]
    NoIssuer,
    /// The signature segment does not decode.
    #[error("the token's signature is not unpadded base64url")]
    SignatureNotBase64(#[source] base64::DecodeError),
    /// The signature is not a 64-byte low-S `R || S`.
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// Why [`Token::recover_key`] found no key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    /// No key recovered from the signature derives to `iss`: another wallet signed it, or the
    /// token was changed after signing.
    #[error("the signature was not made by the key of {issuer} (iss)")]
    NotSigner {
        /// The token's `iss`.
        issuer: Address,
    },
    /// The key with the address did not verify the signature.
    #[error(transparent)]
    Signature(SignatureError),
}

#[cfg(test)]
mod tests {
    use k256::ecdsa::SigningKey;
    use k256::ecdsa::signature::hazmat::PrehashSigner as _;

    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_slice(&[0x11; 32]).expect("a valid scalar")
    }

    fn mint(alg: &str, key: &SigningKey, iss: &Address) -> String {
        let header = URL_SAFE_NO_PAD.encode(format!("{{\"alg\":\"{alg}\",\"typ\":\"JWT\"}}"));
        let payload = URL_SAFE_NO_PAD.encode(format!("{{\"iss\":\"{iss}\",\"version\":\"v1\"}}"));
        let input = format!("{header}.{payload}");
        let message = match alg {
            "ES256KADR36" => adr36_document(&input, iss).into_bytes(),
            _ => input.clone().into_bytes(),
        };
        let signature: Signature = key.sign_prehash(&Sha256::digest(&message)).expect("sign");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    #[test]
    fn both_algorithms_verify_and_recover() {
        let key = key();
        let iss = Address::from_public_key(key.verifying_key());
        for alg in ["ES256K", "ES256KADR36"] {
            let token = Token::parse(&mint(alg, &key, &iss)).expect(alg);
            assert_eq!(token.algorithm().name(), alg);
            assert_eq!(token.verify_with(key.verifying_key()), Ok(()));
            assert_eq!(token.recover_key(), Ok(*key.verifying_key()));
            let other = SigningKey::from_slice(&[0x22; 32]).expect("scalar");
            assert_eq!(
                token.verify_with(other.verifying_key()),
                Err(SignatureError::Mismatch)
            );
        }
    }

    #[test]
    fn the_adr36_document_is_the_sorted_amino_json() {
        let iss = Address::from_public_key(key().verifying_key());
        assert_eq!(
            adr36_document("a.b", &iss),
            format!(
                r#"{{"account_number":"0","chain_id":"","fee":{{"amount":[],"gas":"0"}},"memo":"","msgs":[{{"type":"sign/MsgSignData","value":{{"data":"YS5i","signer":"{iss}"}}}}],"sequence":"0"}}"#
            )
        );
    }

    #[test]
    fn a_wrong_algorithm_label_breaks_the_signature() {
        let key = key();
        let iss = Address::from_public_key(key.verifying_key());
        let token = mint("ES256K", &key, &iss);
        let (_, rest) = token.split_once('.').expect("segments");
        let relabelled = format!(
            "{}.{rest}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256KADR36","typ":"JWT"}"#)
        );
        let token = Token::parse(&relabelled).expect("parses");
        assert!(token.verify_with(key.verifying_key()).is_err());
        assert!(token.recover_key().is_err());
    }

    #[test]
    fn malformed_tokens_are_refused_with_a_reason() {
        let key = key();
        let iss = Address::from_public_key(key.verifying_key());
        let good = mint("ES256K", &key, &iss);
        let (input, sig) = good.rsplit_once('.').expect("segments");
        let signature = URL_SAFE_NO_PAD.decode(sig).expect("base64url");
        let parsed = Signature::from_slice(&signature).expect("sig");
        let der = parsed.to_der();
        let high_s = Signature::from_scalars(parsed.r().to_bytes(), (-*parsed.s()).to_bytes())
            .expect("high-S signature");
        let header_only = |header: &str| {
            format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                &good[good.find('.').expect("dot") + 1..]
            )
        };
        let cases = [
            (input.to_owned(), "compact JWS"),
            (format!("{good}.x"), "compact JWS"),
            (format!("{input}.{sig}="), "base64url"),
            (
                format!("{input}.{}", URL_SAFE_NO_PAD.encode(der.as_bytes())),
                "DER",
            ),
            (
                format!("{input}.{}", URL_SAFE_NO_PAD.encode(high_s.to_bytes())),
                "high S",
            ),
            (
                format!("{input}.{}", URL_SAFE_NO_PAD.encode([0u8; 64])),
                "out of range",
            ),
            (header_only(r#"{"alg":"ES256"}"#), "not ES256K"),
            (header_only(r#"{"alg":"es256k"}"#), "not ES256K"),
            (header_only(r#"{"typ":"JWT"}"#), "alg"),
            (header_only("[1]"), "alg"),
            (
                format!("{}.e30.{sig}", input.split('.').next().expect("header")),
                "no iss",
            ),
            (
                format!("{}.bnVsbA.{sig}", input.split('.').next().expect("header")),
                "JSON object",
            ),
        ];
        for (token, why) in cases {
            let err = Token::parse(&token).expect_err(why).to_string();
            assert!(err.contains(why), "{why}: {err}");
        }
        // Only alg counts: no typ, an unknown kid, extra fields.
        for header in [
            r#"{"alg":"ES256K"}"#,
            r#"{"kid":"x","alg":"ES256K","x":[1]}"#,
        ] {
            let token = Token::parse(&header_only(header)).expect(header);
            assert_eq!(token.algorithm(), Algorithm::Es256k);
        }
    }

    #[test]
    fn header_algorithm_reads_only_the_first_segment() {
        let token = format!("{}.x.y", URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256KADR36"}"#));
        assert_eq!(header_algorithm(&token).as_deref(), Some("ES256KADR36"));
        assert_eq!(header_algorithm("not base64!.x.y"), None);
        assert_eq!(header_algorithm(&URL_SAFE_NO_PAD.encode("{}")), None);
    }
}
