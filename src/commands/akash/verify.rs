//! `certfleet akash verify`: check a token the way the server would.
//!
//! Exits 0 when the token is valid, 1 when it is not (the reason on stderr), and 2 when it
//! cannot tell (bad flags or config, the chain unreachable). Without `--config` it checks the
//! signature and the claims only and needs no file.

use std::fmt::Display;
use std::io::Read as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use certfleet::akash::{
    Algorithm, ChainKeys, ChainOptions, KeySource, MemoryOnly, Token, Validity, Verifier,
};
use certfleet::auth::akash::{AkashAuth, Refusal};
use certfleet::config::{AkashKeySource, Config};
use certfleet::util::clock;
use certfleet::util::duration::parse_duration;

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

/// Runs `verify`; `config` is the loaded `--config`, if one was given.
pub async fn verify(args: VerifyArgs, config: Option<Config>) -> ExitCode {
    let token = match read_token(&args.token) {
        Ok(token) => token,
        Err(e) => return cannot_tell(e),
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
        Err(Outcome::CannotTell(reason)) => cannot_tell(reason),
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

fn cannot_tell(reason: impl Display) -> ExitCode {
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
                .map_err(|e| Outcome::CannotTell(e.to_string()))?,
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
    let auth = AkashAuth::new(&akash, Arc::new(MemoryOnly))
        .map_err(|e| Outcome::CannotTell(e.to_string()))?;
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

/// The token from standard input could not be read.
#[derive(Debug, thiserror::Error)]
#[error("read the token from standard input: {0}")]
struct ReadTokenError(#[source] std::io::Error);

fn read_token(arg: &str) -> Result<String, ReadTokenError> {
    if arg != "-" {
        return Ok(arg.trim().to_owned());
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(ReadTokenError)?;
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
