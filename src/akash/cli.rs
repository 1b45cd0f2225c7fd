//! `certfleet akash verify` and `certfleet akash token`: check a token the way the server
//! would, and mint one for testing with curl.
//!
//! `verify` exits 0 when the token is valid, 1 when it is not (the reason on stderr), and 2
//! when it cannot tell (bad flags or config, the chain unreachable). Without `--config` it
//! checks the signature and the claims only and needs no file.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k256::ecdsa::signature::hazmat::PrehashSigner as _;
use k256::ecdsa::{Signature, SigningKey};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::token::{adr36_document, parse_signature};
use super::{
    Address, Algorithm, ChainKeys, ChainOptions, Claims, KeySource, MemoryOnly, Token, Validity,
    Verifier,
};
use crate::auth::akash::{AkashAuth, Refusal};
use crate::config::{AkashKeySource, Config};
use crate::util::clock;
use crate::util::duration::{format_duration, parse_duration};

/// The derivation path of Cosmos wallets (coin type 118), as Keplr and the Akash CLI use.
pub const HD_PATH: &str = "m/44'/118'/0'/0/0";
/// Exit code: the token could not be checked (flags, config, chain).
const CANNOT_TELL: u8 = 2;

/// Where `verify` takes the public key from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeySourceArg {
    /// The account's key on chain (needs --rest-url or the config's restUrl).
    Chain,
    /// Recovered from the signature and checked against iss.
    Recover,
}

/// The flags of `certfleet akash verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The token, or - to read it from standard input (keeps it out of the process list).
    #[arg(value_name = "TOKEN")]
    pub token: String,

    /// Where the issuer's public key comes from (default: recover, or the config's keySource).
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub key_source: Option<KeySourceArg>,

    /// The Cosmos REST endpoint for --key-source chain, e.g. https://api.akashnet.net.
    #[arg(long, value_name = "URL")]
    pub rest_url: Option<String>,

    /// The longest exp - nbf accepted, 0 for none (default: 15m, or the config's
    /// maxTokenLifetime).
    #[arg(long, value_name = "DUR")]
    pub max_lifetime: Option<String>,

    /// Clock skew tolerated on nbf and exp (default: 30s, or the config's leeway).
    #[arg(long, value_name = "DUR")]
    pub leeway: Option<String>,
}

/// The flags of `certfleet akash token`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// A file holding the wallet's private key as 64 hex characters (what
    /// `provider-services keys export NAME --unarmored-hex --unsafe` prints).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "mnemonic_file",
        required_unless_present = "mnemonic_file"
    )]
    pub key_file: Option<PathBuf>,

    /// A file holding the wallet's BIP-39 mnemonic (English); the key is derived at
    /// m/44'/118'/0'/0/0, as Keplr and the Akash CLI do.
    #[arg(long, value_name = "FILE")]
    pub mnemonic_file: Option<PathBuf>,

    /// ES256K (the Go client, provider-services) or ES256KADR36 (the TypeScript SDK, Keplr).
    #[arg(long, value_name = "ALG", default_value = "ES256K", value_parser = ["ES256K", "ES256KADR36"])]
    pub alg: String,

    /// How long the token is valid (exp - nbf).
    #[arg(long, value_name = "DUR", default_value = "15m")]
    pub lifetime: String,

    /// The leases claim as JSON (default {"access":"full"}).
    #[arg(long, value_name = "JSON", conflicts_with = "provider")]
    pub leases: Option<String>,

    /// Make a granular token giving full access with this provider (repeatable): what a
    /// certfleet with auth.akash.audience asks for.
    #[arg(long, value_name = "ADDRESS")]
    pub provider: Vec<String>,

    /// A jti (token id) claim.
    #[arg(long, value_name = "ID")]
    pub jti: Option<String>,
}

/// Runs `verify`; `config` is the loaded `--config`, if one was given.
pub async fn verify(args: VerifyArgs, config: Option<Config>) -> ExitCode {
    let token = match read_token(&args.token) {
        Ok(token) => token,
        Err(e) => return cannot_tell(&e),
    };
    let now = clock::now();
    let result = match config {
        None => verify_alone(&args, &token, now).await,
        Some(config) => verify_with_config(&args, &config, &token, now).await,
    };
    match result {
        Ok(report) => {
            println!("{report:#}");
            ExitCode::SUCCESS
        }
        Err(Outcome::Invalid(reason)) => {
            eprintln!("certfleet: invalid token: {reason}");
            ExitCode::FAILURE
        }
        Err(Outcome::CannotTell(reason)) => cannot_tell(&reason),
    }
}

enum Outcome {
    Invalid(String),
    CannotTell(String),
}

impl From<Refusal> for Outcome {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Invalid(m) | Refusal::Forbidden(m) => Self::Invalid(m),
            Refusal::Unavailable(m) => Self::CannotTell(m),
        }
    }
}

fn cannot_tell(reason: &str) -> ExitCode {
    eprintln!("certfleet: cannot verify the token: {reason}");
    ExitCode::from(CANNOT_TELL)
}

/// Signature and claims only.
async fn verify_alone(args: &VerifyArgs, token: &str, now: i64) -> Result<Value, Outcome> {
    let keys = match (args.key_source, args.rest_url.as_deref()) {
        (None | Some(KeySourceArg::Recover), None) => KeySource::Recover,
        (None | Some(KeySourceArg::Recover), Some(_)) => {
            return Err(Outcome::CannotTell(
                "--rest-url is only used with --key-source chain".to_owned(),
            ));
        }
        (Some(KeySourceArg::Chain), None) => {
            return Err(Outcome::CannotTell(
                "--key-source chain needs --rest-url (a Cosmos REST endpoint such as \
                 https://api.akashnet.net)"
                    .to_owned(),
            ));
        }
        (Some(KeySourceArg::Chain), Some(url)) => KeySource::Chain(
            ChainKeys::new(ChainOptions::new(url), Arc::new(MemoryOnly))
                .map_err(Outcome::CannotTell)?,
        ),
    };
    let validity = Validity {
        leeway: duration(args.leeway.as_deref(), "--leeway")?.unwrap_or(Duration::from_secs(30)),
        max_lifetime: lifetime(args.max_lifetime.as_deref())?
            .unwrap_or(Some(Duration::from_secs(900))),
    };
    let source = key_source_name(&keys);
    let verified = Verifier::new(keys, validity)
        .verify(token, now)
        .await
        .map_err(|r| Outcome::from(Refusal::from(r)))?;
    Ok(report(token, verified.algorithm, source, None))
}

/// Signature, claims, principals and audience, as `config`'s server would check them.
async fn verify_with_config(
    args: &VerifyArgs,
    config: &Config,
    token: &str,
    now: i64,
) -> Result<Value, Outcome> {
    let Some(akash) = &config.auth.akash else {
        return Err(Outcome::CannotTell(
            "the config has no auth.akash section; run without --config to check only the \
             signature and the claims"
                .to_owned(),
        ));
    };
    let mut akash = akash.clone();
    match args.key_source {
        Some(KeySourceArg::Chain) => akash.key_source = AkashKeySource::Chain,
        Some(KeySourceArg::Recover) => {
            akash.key_source = AkashKeySource::Recover;
            akash.rest_url = None;
        }
        None => {}
    }
    if let Some(url) = &args.rest_url {
        akash.rest_url = Some(url.clone());
    }
    if let Some(leeway) = duration(args.leeway.as_deref(), "--leeway")? {
        akash.leeway = leeway;
    }
    if let Some(max) = lifetime(args.max_lifetime.as_deref())? {
        akash.max_token_lifetime = max;
    }
    // The store is not opened: a lookup here asks the chain, and keeps nothing.
    let auth = AkashAuth::new(&akash, Arc::new(MemoryOnly)).map_err(Outcome::CannotTell)?;
    let source = key_source_name(auth.verifier().keys());
    let (verified, principal) = auth.verify(token, now).await?;
    let domains: Vec<String> = principal.domains.iter().map(ToString::to_string).collect();
    Ok(report(token, verified.algorithm, source, Some(domains)))
}

fn key_source_name(keys: &KeySource) -> &'static str {
    match keys {
        KeySource::Chain(_) => "chain",
        KeySource::Recover => "recover",
    }
}

/// What `verify` prints: the address, the algorithm and the claims as the token carries them.
fn report(token: &str, algorithm: Algorithm, source: &str, domains: Option<Vec<String>>) -> Value {
    // The token parsed a moment ago, so it parses again.
    let claims = Token::parse(token)
        .map(|t| t.claims().clone())
        .unwrap_or_default();
    let mut out = json!({
        "address": claims.get("iss").cloned().unwrap_or(Value::Null),
        "algorithm": algorithm.name(),
        "keySource": source,
        "claims": claims,
    });
    if let (Some(domains), Value::Object(map)) = (domains, &mut out) {
        map.insert("domains".to_owned(), json!(domains));
    }
    out
}

fn read_token(arg: &str) -> Result<String, String> {
    if arg != "-" {
        return Ok(arg.trim().to_owned());
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| format!("read the token from standard input: {e}"))?;
    Ok(text.trim().to_owned())
}

fn duration(value: Option<&str>, flag: &str) -> Result<Option<Duration>, Outcome> {
    value
        .map(|text| parse_duration(text).map_err(|e| Outcome::CannotTell(format!("{flag}: {e}"))))
        .transpose()
}

/// `--max-lifetime`: `Some(None)` for 0 (no limit).
fn lifetime(value: Option<&str>) -> Result<Option<Option<Duration>>, Outcome> {
    Ok(duration(value, "--max-lifetime")?.map(|d| (!d.is_zero()).then_some(d)))
}

/// Runs `token`: prints a freshly signed token on stdout.
pub fn token(args: &TokenArgs) -> Result<(), String> {
    let key = match (&args.key_file, &args.mnemonic_file) {
        (Some(path), _) => key_from_hex_file(path)?,
        (None, Some(path)) => key_from_mnemonic_file(path)?,
        (None, None) => return Err("give --key-file or --mnemonic-file".to_owned()),
    };
    let algorithm = Algorithm::from_name(&args.alg)
        .ok_or_else(|| format!("--alg {}: use ES256K or ES256KADR36", args.alg))?;
    let lifetime = parse_duration(&args.lifetime).map_err(|e| format!("--lifetime: {e}"))?;
    if lifetime.as_secs() == 0 {
        return Err("--lifetime must be at least 1s".to_owned());
    }
    let leases = leases(args)?;
    let now = clock::now();
    let exp = now.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
    let token = mint(&key, algorithm, &leases, args.jti.as_deref(), now, exp)?;
    eprintln!(
        "certfleet: {} token for {} valid for {} (until {})",
        algorithm.name(),
        Address::from_public_key(key.verifying_key()),
        format_duration(lifetime),
        clock::rfc3339(exp)
    );
    println!("{token}");
    Ok(())
}

fn leases(args: &TokenArgs) -> Result<Value, String> {
    if let Some(text) = &args.leases {
        return serde_json::from_str(text).map_err(|e| format!("--leases is not JSON: {e}"));
    }
    if args.provider.is_empty() {
        return Ok(json!({"access": "full"}));
    }
    let permissions: Vec<Value> = args
        .provider
        .iter()
        .map(|p| json!({"provider": p, "access": "full"}))
        .collect();
    Ok(json!({"access": "granular", "permissions": permissions}))
}

/// Signs a token with `key` (what the Akash clients do), after checking its claims against
/// the same rules the verifier applies.
pub fn mint(
    key: &SigningKey,
    algorithm: Algorithm,
    leases: &Value,
    jti: Option<&str>,
    now: i64,
    exp: i64,
) -> Result<String, String> {
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
    Claims::parse(&claims).map_err(|e| format!("the token would be invalid: {e}"))?;
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
        .map_err(|e| format!("sign the token: {e}"))?;
    // k256 signs low-S (RFC 6979, normalised), the only form the verifiers accept.
    let signature = parse_signature(&signature.to_bytes()).map_err(|e| e.to_string())?;
    Ok(format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    ))
}

fn read_secret_file(path: &Path, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the {what} file {}: {e}", path.display()))
}

/// A private key written as 64 hex characters (an optional `0x` and whitespace aside).
fn key_from_hex_file(path: &Path) -> Result<SigningKey, String> {
    let text = read_secret_file(path, "key")?;
    let hex = text.trim();
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    let invalid = || {
        format!(
            "{} does not hold a secp256k1 private key as 64 hex characters (export one with \
             `provider-services keys export NAME --unarmored-hex --unsafe`)",
            path.display()
        )
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    let bytes: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| invalid())?;
    SigningKey::from_slice(&bytes).map_err(|_| invalid())
}

/// The key at [`HD_PATH`] of a BIP-39 mnemonic (English, no passphrase).
fn key_from_mnemonic_file(path: &Path) -> Result<SigningKey, String> {
    let text = read_secret_file(path, "mnemonic")?;
    key_from_mnemonic(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The key at [`HD_PATH`] of a BIP-39 mnemonic (English, no passphrase).
pub fn key_from_mnemonic(mnemonic: &str) -> Result<SigningKey, String> {
    let words = mnemonic
        .split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ");
    let mnemonic = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &words)
        .map_err(|e| format!("not a BIP-39 mnemonic: {e}"))?;
    let seed = mnemonic.to_seed_normalized("");
    let path: bip32::DerivationPath = HD_PATH
        .parse()
        .map_err(|e| format!("the derivation path {HD_PATH}: {e}"))?;
    let xprv = bip32::XPrv::derive_from_path(&seed, &path)
        .map_err(|e| format!("derive the key at {HD_PATH}: {e}"))?;
    Ok(xprv.private_key().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BIP-39 test mnemonic; `Secp256k1HdWallet.fromMnemonic` of @cosmjs/amino 0.36 (the
    /// version pinned in tests/akash) gives its first account as
    /// cosmos1lsagfzrm4gz28he4wunt63sts5xzmczw8pkek3: the key at m/44'/118'/0'/0/0.
    const MNEMONIC: &str = "surround miss nominee dream gap cross assault thank captain prosper \
                            drop duty group candy wealth weather scale put";

    #[test]
    fn derives_the_cosmos_key_of_a_mnemonic() {
        let key = key_from_mnemonic(MNEMONIC).expect("a valid mnemonic");
        let address = Address::from_public_key(key.verifying_key());
        let cosmos = bech32::encode_lower::<bech32::Bech32>(
            bech32::Hrp::parse_unchecked("cosmos"),
            address.bytes(),
        )
        .expect("encode");
        assert_eq!(cosmos, "cosmos1lsagfzrm4gz28he4wunt63sts5xzmczw8pkek3");
        assert!(key_from_mnemonic("surround miss nominee").is_err());
    }

    #[test]
    fn minted_tokens_verify() {
        let key = key_from_mnemonic(MNEMONIC).expect("a valid mnemonic");
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
            assert_eq!(parsed.recover_key(), Ok(*key.verifying_key()));
            assert_eq!(parsed.claims()["jti"], "t1");
        }
        let err = mint(
            &key,
            Algorithm::Es256k,
            &json!({"access": "scoped"}),
            None,
            1,
            2,
        )
        .expect_err("invalid leases");
        assert!(err.contains("leases.scope is missing"), "{err}");
    }
}
