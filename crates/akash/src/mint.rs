//! Signing a token, as the Akash clients do: for tests, tools (`certfleet akash token`) and a
//! gateway's own checks. Its claims are checked against the verifier's rules first, so what it
//! signs is a token the verifier accepts until it expires.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k256::ecdsa::signature::hazmat::PrehashSigner as _;
use k256::ecdsa::{Signature, SigningKey};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::address::Address;
use crate::claims::{Claims, ClaimsError};
use crate::token::{Algorithm, SignatureError, adr36_document, parse_signature};

/// Signs a token with `key` (what the Akash clients do), after checking its claims against
/// the same rules the verifier applies: `iss` is the key's address, `iat` and `nbf` are `now`,
/// `exp` is `exp` (Unix seconds), `version` is `v1`, with `leases` and an optional `jti`.
pub fn mint(
    key: &SigningKey,
    algorithm: Algorithm,
    leases: &Value,
    jti: Option<&str>,
    now: i64,
    exp: i64,
) -> Result<String, MintError> {
    let issuer = Address::from_public_key(key.verifying_key());
    let mut claims = Map::new();
    claims.insert("iss".to_owned(), json!(issuer.as_str()));
    claims.insert("iat".to_owned(), json!(now));
    claims.insert("nbf".to_owned(), json!(now));
    claims.insert("exp".to_owned(), json!(exp));
    claims.insert("version".to_owned(), json!("v1"));
    claims.insert("leases".to_owned(), leases.clone());
    if let Some(jti) = jti {
        claims.insert("jti".to_owned(), json!(jti));
    }
    Claims::parse(&claims).map_err(MintError::Claims)?;
    let header = json!({"alg": algorithm.name(), "typ": "JWT"});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string())
    );
    let message = match algorithm {
        Algorithm::Es256k => input.clone(),
        Algorithm::Es256kAdr36 => adr36_document(&input, &issuer),
    };
    let signature: Signature = key
        .sign_prehash(&Sha256::digest(message.as_bytes()))
        .map_err(MintError::Sign)?;
    // k256 signs low-S (RFC 6979, normalised), the only form the verifiers accept.
    let signature = parse_signature(&signature.to_bytes())?;
    Ok(format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    ))
}

/// Why [`mint`] made no token. Never carries the key.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The claims break a rule: the verifier would refuse the token.
    #[error("the token would be invalid: {0}")]
    Claims(#[source] ClaimsError),
    /// The signer failed.
    #[error("sign the token: {0}")]
    Sign(#[source] k256::ecdsa::Error),
    /// The signature is not one the verifiers accept.
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{KeySource, Leases, Token, Validity, Verifier};

    fn key() -> SigningKey {
        SigningKey::from_slice(&[0x42; 32]).expect("a valid scalar")
    }

    #[test]
    fn minted_tokens_parse_and_recover_their_key() {
        let key = key();
        for algorithm in [Algorithm::Es256k, Algorithm::Es256kAdr36] {
            let token = mint(
                &key,
                algorithm,
                &json!({"access": "full"}),
                Some("t1"),
                100,
                400,
            )
            .expect("mint");
            let parsed = Token::parse(&token).expect("parses");
            assert_eq!(parsed.algorithm(), algorithm);
            assert_eq!(parsed.recover_key(), Ok(*key.verifying_key()));
            assert_eq!(parsed.claims()["jti"], "t1");
        }
    }

    #[test]
    fn claims_that_break_a_rule_are_not_signed() {
        let err = mint(
            &key(),
            Algorithm::Es256k,
            &json!({"access": "scoped"}),
            None,
            1,
            2,
        )
        .expect_err("invalid leases");
        assert_eq!(
            err.to_string(),
            "the token would be invalid: leases.scope is missing"
        );
    }

    #[tokio::test]
    async fn the_verifier_accepts_a_minted_token_until_it_expires() {
        let verifier = Verifier::new(
            KeySource::Recover,
            Validity {
                leeway: Duration::ZERO,
                max_lifetime: Some(Duration::from_secs(900)),
            },
        );
        let token = mint(
            &key(),
            Algorithm::Es256kAdr36,
            &json!({"access": "scoped", "scope": ["logs"]}),
            None,
            1000,
            1900,
        )
        .expect("mint");
        let verified = verifier.verify(&token, 1899).await.expect("valid");
        assert_eq!(verified.key, *key().verifying_key());
        assert!(matches!(verified.claims.leases, Leases::Scoped(_)));
        let expired = verifier.verify(&token, 1900).await.expect_err("expired");
        assert_eq!(
            expired.to_string(),
            "the token expired 0s ago (exp)",
            "{expired:?}"
        );
        assert!(!expired.is_unavailable());
    }
}
