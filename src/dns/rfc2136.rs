//! RFC 2136 dynamic updates signed with TSIG (RFC 8945), for BIND, Knot, PowerDNS and any
//! primary that takes them. A record is added to its rrset (section 2.5.1) and deleted by its
//! exact data (section 2.5.4), so other values of the same name are never touched; deleting a
//! record that is not there is silently ignored by the server, which is the contract.
//!
//! The server must let the key update TXT records below the zone, e.g. in BIND:
//! `update-policy { grant acme-key zonesub TXT; };`.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hickory_proto::ProtoError;
use hickory_proto::dnssec::DnsSecError;
use hickory_proto::op::{Message, ResponseCode, update_message};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm as HickoryAlgorithm, TsigError};
use hickory_proto::rr::{RData, Record, RecordSet, TSigner};
use serde_json::{Value, json};

use super::wire::{self, WireError, parse_name};
use super::{DnsError, DnsProvider, TxtRecord};
use crate::config::{Rfc2136Config, TsigAlgorithm};

const NAME: &str = "rfc2136";
/// Allowed clock difference between certfleet and the server (RFC 8945 section 10: 300 s).
const FUDGE: u16 = 300;

/// Why an RFC 2136 update (or its TSIG key) failed.
#[derive(Debug, thiserror::Error)]
pub enum Rfc2136Error {
    /// `tsigSecret` is not base64.
    #[error("the TSIG secret is not base64")]
    SecretNotBase64(#[source] base64::DecodeError),
    /// hickory refuses the key (an algorithm it cannot sign with).
    #[error("TSIG key: {0}")]
    Key(#[source] DnsSecError),
    /// A name that is not a DNS name, or a DNS exchange that failed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The record is not below the zone the update is for.
    #[error("{fqdn} is not in zone {zone}")]
    NotInZone {
        /// The record's name.
        fqdn: String,
        /// The zone of the update.
        zone: String,
    },
    /// The update could not be signed.
    #[error("sign the update: {0}")]
    Sign(#[source] ProtoError),
    /// The signed update could not be encoded.
    #[error("encode the update: {0}")]
    Encode(#[source] ProtoError),
    /// The server answered with an error code (RFC 2136 section 2.2, RFC 8945 section 5.3).
    #[error("{}", refusal(.server, .code, .tsig, .key, .zone))]
    Refused {
        /// The server.
        server: SocketAddr,
        /// Its response code.
        code: ResponseCode,
        /// The TSIG error of its answer, if it carries one.
        tsig: Option<TsigError>,
        /// The key the update was signed with.
        key: String,
        /// The zone of the update.
        zone: String,
    },
    /// NOERROR, but the answer's signature does not verify (RFC 8945 section 5.3.2).
    #[error("{server} answered NOERROR without a valid TSIG signature: {source}")]
    Unsigned {
        /// The server.
        server: SocketAddr,
        /// hickory's reason.
        source: ProtoError,
    },
}

/// The RFC 2136 provider.
#[derive(Clone)]
pub struct Rfc2136 {
    nameserver: String,
    key_name: String,
    signer: TSigner,
    ttl: u32,
    timeout: Duration,
}

impl std::fmt::Debug for Rfc2136 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rfc2136")
            .field("nameserver", &self.nameserver)
            .field("key_name", &self.key_name)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Rfc2136 {
    /// A provider sending updates signed with the entry's TSIG key to `config.nameserver`,
    /// creating records with `ttl`, each exchange bounded by `timeout`.
    pub fn new(config: &Rfc2136Config, ttl: u32, timeout: Duration) -> Result<Self, DnsError> {
        let step = || format!("load the TSIG key {}", config.tsig_key_name);
        let fail = |e: Rfc2136Error| DnsError::at(NAME, step(), e);
        let secret = STANDARD
            .decode(config.tsig_secret.expose().trim())
            .map_err(|e| fail(Rfc2136Error::SecretNotBase64(e)))?;
        let algorithm = match config.tsig_algorithm {
            TsigAlgorithm::HmacSha256 => HickoryAlgorithm::HmacSha256,
            TsigAlgorithm::HmacSha512 => HickoryAlgorithm::HmacSha512,
        };
        let key_name = parse_name(&config.tsig_key_name).map_err(|e| fail(e.into()))?;
        let signer = TSigner::new(secret, algorithm, key_name, FUDGE)
            .map_err(|e| fail(Rfc2136Error::Key(e)))?;
        // RFC 2136 updates go to port 53 unless the entry names another.
        let nameserver = if config
            .nameserver
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
        {
            config.nameserver.clone()
        } else {
            format!("{}:53", config.nameserver)
        };
        Ok(Self {
            nameserver,
            key_name: config.tsig_key_name.clone(),
            signer,
            ttl,
            timeout,
        })
    }

    /// The update for `record` (append or delete by data), zone and name checked first so that
    /// the message builders' assertions cannot fire.
    fn update(&self, record: &TxtRecord, delete: bool) -> Result<Message, Rfc2136Error> {
        let zone = parse_name(&record.zone)?;
        let name = parse_name(&record.fqdn)?;
        if !zone.zone_of(&name) {
            return Err(Rfc2136Error::NotInZone {
                fqdn: record.fqdn.clone(),
                zone: record.zone.clone(),
            });
        }
        let txt = Record::from_rdata(
            name,
            self.ttl,
            RData::TXT(TXT::new(vec![record.value.clone()])),
        );
        let rrset = RecordSet::from(txt);
        Ok(if delete {
            update_message::delete_by_rdata(rrset, zone, false)
        } else {
            update_message::append(rrset, zone, false, false)
        })
    }

    /// Signs `message`, sends it over TCP, and checks the answer's code and signature.
    async fn send(&self, mut message: Message, zone: &str) -> Result<(), Rfc2136Error> {
        let server = wire::resolve_server(&self.nameserver).await?;
        let now = u64::try_from(crate::util::clock::now()).unwrap_or_default();
        let verifier = message
            .finalize(&self.signer, now)
            .map_err(Rfc2136Error::Sign)?;
        let bytes = message.to_vec().map_err(Rfc2136Error::Encode)?;
        let answer = wire::exchange_tcp(server, &bytes, self.timeout).await?;
        let response = wire::decode(&answer, message.metadata.id, server)?;
        let code = response.metadata.response_code;
        if code != ResponseCode::NoError {
            return Err(Rfc2136Error::Refused {
                server,
                code,
                tsig: response.signature.as_ref().and_then(|sig| sig.data.error),
                key: self.key_name.clone(),
                zone: zone.to_owned(),
            });
        }
        match verifier {
            Some(mut verifier) => verifier
                .verify(&answer)
                .map(drop)
                .map_err(|source| Rfc2136Error::Unsigned { server, source }),
            None => Ok(()),
        }
    }
}

/// What a refusal means, in the server's terms, and what to check.
fn refusal(
    server: &SocketAddr,
    code: &ResponseCode,
    tsig: &Option<TsigError>,
    key: &str,
    zone: &str,
) -> String {
    match (*code, *tsig) {
        (ResponseCode::NotAuth, Some(TsigError::BadSig)) => format!(
            "{server} answered NOTAUTH (TSIG BADSIG): the signature of key {key} does not verify; check tsigSecret and tsigAlgorithm"
        ),
        (ResponseCode::NotAuth, Some(TsigError::BadKey)) => format!(
            "{server} answered NOTAUTH (TSIG BADKEY): the server knows no key {key} with this algorithm; check tsigKeyName and tsigAlgorithm"
        ),
        (ResponseCode::NotAuth, Some(TsigError::BadTime)) => format!(
            "{server} answered NOTAUTH (TSIG BADTIME): the clocks of certfleet and the server differ by more than {FUDGE}s"
        ),
        (ResponseCode::NotAuth, _) => format!(
            "{server} answered NOTAUTH: it is not authoritative for {zone}, or refused key {key}"
        ),
        (ResponseCode::Refused, _) => format!(
            "{server} answered REFUSED: its update-policy does not let key {key} update TXT records in {zone} \
             (BIND: update-policy {{ grant {key} zonesub TXT; }};)"
        ),
        (ResponseCode::NotZone, _) => {
            format!("{server} answered NOTZONE: {zone} is not a zone it serves")
        }
        (code, _) => format!("{server} answered {code}"),
    }
}

#[async_trait]
impl DnsProvider for Rfc2136 {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn add_txt(&self, record: &TxtRecord) -> Result<Value, DnsError> {
        let step = format!("create TXT record in zone {}", record.zone);
        let message = self
            .update(record, false)
            .map_err(|e| DnsError::at(NAME, &step, e))?;
        self.send(message, &record.zone)
            .await
            .map_err(|e| DnsError::at(NAME, step, e))?;
        // The record is its own handle: name and data identify it exactly.
        Ok(json!({}))
    }

    async fn delete_txt(
        &self,
        record: &TxtRecord,
        _handle: Option<&Value>,
    ) -> Result<(), DnsError> {
        let step = format!("delete TXT record in zone {}", record.zone);
        let message = self
            .update(record, true)
            .map_err(|e| DnsError::at(NAME, &step, e))?;
        self.send(message, &record.zone)
            .await
            .map_err(|e| DnsError::at(NAME, step, e))
    }

    fn authoritative_server(&self) -> Option<&str> {
        Some(&self.nameserver)
    }
}
