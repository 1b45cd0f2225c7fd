//! `certfleet dns-persist record NAME`: the exact `_validation-persist` TXT record
//! (draft-ietf-acme-dns-persist) that validates NAME for this server's ACME account, to publish
//! once in the name's zone.
//!
//! It uses the account the service uses: loaded from the store (opened, and migrated, as
//! `serve` does), or created and stored exactly as the service would, under the same lease. The
//! issuer domain name, `policy=wildcard` and `persistUntil` come from the first
//! `challenges.dnsPersist` entry whose names hold NAME.
//!
//! Exit codes: 0 printed; 1 the CA or the store failed; 2 the command line or the config is
//! wrong, or no entry holds NAME.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use certfleet::acme::Issuer;
use certfleet::acme::dns_persist01::{self, DnsPersistSolver};
use certfleet::domain::DomainName;
use certfleet::util::clock;

/// Exit status of a usage or config error, as clap's own usage errors.
const EXIT_USAGE: u8 = 2;

/// `certfleet dns-persist`.
#[derive(Debug, clap::Subcommand)]
pub enum DnsPersistCommand {
    /// Print the TXT record to publish for NAME (zone-file form), from this server's ACME
    /// account and the challenges.dnsPersist entry holding NAME.
    Record(RecordArgs),
}

/// `certfleet dns-persist record`.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// The name to validate (`example.com`; `*.example.com` gives the record of example.com).
    pub name: String,
    /// Print JSON: {"name", "fqdn", "type", "value", "zoneLine", "issuerDomainName",
    /// "accountUri", "policy", "persistUntil"}.
    #[arg(long)]
    pub json: bool,
    /// The record for `acme.fallback`'s CA and account instead of the primary's (publish both
    /// for the fallback CA to validate the name too).
    #[arg(long)]
    pub fallback: bool,
}

/// Runs a `dns-persist` subcommand with the config at `config`.
pub fn run(command: DnsPersistCommand, config: Option<&Path>) -> ExitCode {
    match command {
        DnsPersistCommand::Record(args) => record(&args, config),
    }
}

fn record(args: &RecordArgs, config: Option<&Path>) -> ExitCode {
    let Some(loaded) = super::load_config(config) else {
        return ExitCode::from(EXIT_USAGE);
    };
    let config = loaded.config;
    let name = match DomainName::parse(args.name.trim_end_matches('.')) {
        Ok(name) => name.as_str().to_owned(),
        Err(e) => {
            eprintln!("certfleet: {:?} is not a domain name: {e}", args.name);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let solver = DnsPersistSolver::new(
        config.challenges.dns_persist.clone(),
        config.challenges.resolvers.clone(),
    );
    if solver.entry_for(&name).is_none() {
        eprintln!(
            "certfleet: no challenges.dnsPersist entry's names hold {name}; add it (or a \
             pattern such as *.{}) to an entry's names",
            name.strip_prefix("*.").unwrap_or(&name)
        );
        return ExitCode::from(EXIT_USAGE);
    }
    super::run_async(async {
        let store = certfleet::store::open(&config.storage)
            .await
            .map_err(|e| e.to_string())?;
        let issuer = Issuer::new(&config.acme, store)
            .map_err(|e| e.to_string())?
            .with_dns_persist(solver);
        let issuer = match (&config.acme.fallback, args.fallback) {
            (_, false) => issuer,
            (Some(fallback), true) => {
                Issuer::fallback(&config.acme, fallback, &issuer).map_err(|e| e.to_string())?
            }
            (None, true) => {
                return Err("--fallback: there is no acme.fallback in the config".to_owned());
            }
        };
        let record = issuer
            .persist_record(&name, clock::now())
            .await
            .map_err(|e| e.to_string())?;
        if args.json {
            let body = json!({
                "name": name,
                "fqdn": dns_persist01::record_name(&name),
                "type": "TXT",
                "value": record.value(),
                "zoneLine": record.zone_line(&name),
                "issuerDomainName": record.issuer,
                "accountUri": record.account_uri,
                "policy": record.wildcard.then_some("wildcard"),
                "persistUntil": record.persist_until,
            });
            println!("{body}");
        } else {
            println!("{}", record.zone_line(&name));
        }
        Ok::<(), String>(())
    })
}
