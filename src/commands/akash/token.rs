//! `certfleet akash token`: mint a token from a key file or a BIP-39 mnemonic, for testing
//! with curl. The signing is the library's ([`certfleet::akash::mint`]); this reads the key.

use std::path::{Path, PathBuf};

use k256::ecdsa::SigningKey;
use serde_json::{Value, json};

use certfleet::akash::{Address, Algorithm, MintError, mint};
use certfleet::util::clock;
use certfleet::util::duration::{DurationError, format_duration, parse_duration};

/// The derivation path of Cosmos wallets (coin type 118), as Keplr and the Akash CLI use.
pub const HD_PATH: &str = "m/44'/118'/0'/0/0";

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

/// Why `certfleet akash token` printed no token. Never quotes the key or the mnemonic.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Neither key flag (clap requires one; kept for a caller that builds the flags itself).
    #[error("give --key-file or --mnemonic-file")]
    NoKey,
    /// An `--alg` the verifier does not know.
    #[error("--alg {0}: use ES256K or ES256KADR36")]
    Algorithm(String),
    /// `--lifetime` is not a duration.
    #[error("--lifetime: {0}")]
    Lifetime(#[source] DurationError),
    /// `--lifetime 0`.
    #[error("--lifetime must be at least 1s")]
    ZeroLifetime,
    /// `--leases` is not JSON.
    #[error("--leases is not JSON: {0}")]
    Leases(#[source] serde_json::Error),
    /// The key or mnemonic file cannot be read.
    #[error("cannot read the {what} file {}: {source}", .path.display())]
    Read {
        /// "key" or "mnemonic".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file does not hold 64 hex characters of a valid secp256k1 scalar.
    #[error(
        "{} does not hold a secp256k1 private key as 64 hex characters (export one with \
         `provider-services keys export NAME --unarmored-hex --unsafe`)",
        .0.display()
    )]
    HexKey(PathBuf),
    /// The mnemonic file does not hold a mnemonic a key derives from.
    #[error("{}: {source}", .path.display())]
    Mnemonic {
        /// The file.
        path: PathBuf,
        /// Why.
        source: MnemonicError,
    },
    /// The claims break a rule, or the signer failed.
    #[error(transparent)]
    Mint(#[from] MintError),
}

/// Why no key derives from a mnemonic.
#[derive(Debug, thiserror::Error)]
pub enum MnemonicError {
    /// Not English BIP-39 words with a valid checksum. (Without its `std` feature, bip39's
    /// error is no `std::error::Error`, so it is shown but not a source.)
    #[error("not a BIP-39 mnemonic: {0}")]
    NotBip39(bip39::Error),
    /// [`HD_PATH`] does not parse (it is a constant: a bug if it happens).
    #[error("the derivation path {HD_PATH}: {0}")]
    Path(#[source] bip32::Error),
    /// The derivation failed (an invalid child key, with negligible probability).
    #[error("derive the key at {HD_PATH}: {0}")]
    Derive(#[source] bip32::Error),
}

/// Runs `token`: prints a freshly signed token on stdout.
pub fn token(args: &TokenArgs) -> Result<(), TokenError> {
    let key = match (&args.key_file, &args.mnemonic_file) {
        (Some(path), _) => key_from_hex_file(path)?,
        (None, Some(path)) => key_from_mnemonic_file(path)?,
        (None, None) => return Err(TokenError::NoKey),
    };
    let algorithm =
        Algorithm::from_name(&args.alg).ok_or_else(|| TokenError::Algorithm(args.alg.clone()))?;
    let lifetime = parse_duration(&args.lifetime).map_err(TokenError::Lifetime)?;
    if lifetime.as_secs() == 0 {
        return Err(TokenError::ZeroLifetime);
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

fn leases(args: &TokenArgs) -> Result<Value, TokenError> {
    if let Some(text) = &args.leases {
        return serde_json::from_str(text).map_err(TokenError::Leases);
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

fn read_secret_file(path: &Path, what: &'static str) -> Result<String, TokenError> {
    std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// A private key written as 64 hex characters (an optional `0x` and whitespace aside).
fn key_from_hex_file(path: &Path) -> Result<SigningKey, TokenError> {
    let text = read_secret_file(path, "key")?;
    let hex = text.trim();
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    let invalid = || TokenError::HexKey(path.to_owned());
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
fn key_from_mnemonic_file(path: &Path) -> Result<SigningKey, TokenError> {
    let text = read_secret_file(path, "mnemonic")?;
    key_from_mnemonic(&text).map_err(|source| TokenError::Mnemonic {
        path: path.to_owned(),
        source,
    })
}

/// The key at [`HD_PATH`] of a BIP-39 mnemonic (English, no passphrase).
pub fn key_from_mnemonic(mnemonic: &str) -> Result<SigningKey, MnemonicError> {
    let words = mnemonic
        .split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ");
    let mnemonic = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &words)
        .map_err(MnemonicError::NotBip39)?;
    let seed = mnemonic.to_seed_normalized("");
    let path: bip32::DerivationPath = HD_PATH.parse().map_err(MnemonicError::Path)?;
    let xprv = bip32::XPrv::derive_from_path(&seed, &path).map_err(MnemonicError::Derive)?;
    Ok(xprv.private_key().clone())
}

#[cfg(test)]
mod tests {
    use certfleet::akash::Token;

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
    fn a_mnemonic_key_mints_tokens_that_verify() {
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
    }

    #[test]
    fn key_files_are_read_without_quoting_the_key() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("key");
        std::fs::write(&path, format!("0x{}\n", "11".repeat(32))).expect("write");
        let key = key_from_hex_file(&path).expect("a valid key file");
        assert_eq!(key.to_bytes().as_slice(), [0x11; 32]);
        let secret = "zz".repeat(32);
        std::fs::write(&path, &secret).expect("write");
        let err = key_from_hex_file(&path).expect_err("not hex").to_string();
        assert!(err.contains("64 hex characters"), "{err}");
        assert!(!err.contains(&secret), "{err}");
        let err = key_from_hex_file(&dir.path().join("absent")).expect_err("no file");
        assert!(
            err.to_string().starts_with("cannot read the key file "),
            "{err}"
        );
    }
}
