//! RFC 2136 dynamic updates signed with TSIG (RFC 8945), for BIND, Knot, PowerDNS and any
//! primary that takes them. A record is added to its rrset (section 2.5.1) and deleted by its
//! exact data (section 2.5.4), so other values of the same name are never touched; deleting a
//! record that is not there is silently ignored by the server, which is the contract.
//!
//! The server must let the key update TXT records below the zone, e.g. in BIND:
//! `update-policy { grant acme-key zonesub TXT; };`.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hickory_proto::op::{Message, ResponseCode, update_message};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm as HickoryAlgorithm, TsigError};
use hickory_proto::rr::{RData, Record, RecordSet, TSigner};
use serde_json::{Value, json};

use super::wire::{self, parse_name};
use super::{DnsError, DnsProvider, TxtRecord};
use crate::config::{Secret, TsigAlgorithm};

const NAME: &str = "rfc2136";
/// Allowed clock difference between certfleet and the server (RFC 8945 section 10: 300 s).
const FUDGE: u16 = 300;

/// How to reach the primary server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `host:port` of the primary (port 53 when absent).
    pub nameserver: String,
    /// The TSIG key's name as the server knows it.
    pub key_name: String,
    /// The TSIG secret, base64 (as `tsig-keygen` prints it).
    pub secret: Secret,
    /// `hmac-sha256` or `hmac-sha512`.
    pub algorithm: TsigAlgorithm,
    /// TTL of created records, seconds.
    pub ttl: u32,
    /// Bound on each exchange with the server.
    pub timeout: Duration,
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
    /// A provider sending signed updates to `settings.nameserver`.
    pub fn new(settings: Settings) -> Result<Self, String> {
        let secret = STANDARD
            .decode(settings.secret.expose().trim())
            .map_err(|_| "rfc2136: the TSIG secret is not base64".to_owned())?;
        let algorithm = match settings.algorithm {
            TsigAlgorithm::HmacSha256 => HickoryAlgorithm::HmacSha256,
            TsigAlgorithm::HmacSha512 => HickoryAlgorithm::HmacSha512,
        };
        let key_name = parse_name(&settings.key_name).map_err(|e| format!("rfc2136: {e}"))?;
        let signer = TSigner::new(secret, algorithm, key_name, FUDGE)
            .map_err(|e| format!("rfc2136: TSIG key: {e}"))?;
        let nameserver = if settings
            .nameserver
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
        {
            settings.nameserver
        } else {
            format!("{}:53", settings.nameserver)
        };
        Ok(Self {
            nameserver,
            key_name: settings.key_name,
            signer,
            ttl: settings.ttl,
            timeout: settings.timeout,
        })
    }

    /// The update for `record` (append or delete by data), zone and name checked first so that
    /// the message builders' assertions cannot fire.
    fn update(&self, record: &TxtRecord, delete: bool) -> Result<Message, String> {
        let zone = parse_name(&record.zone)?;
        let name = parse_name(&record.fqdn)?;
        if !zone.zone_of(&name) {
            return Err(format!("{} is not in zone {}", record.fqdn, record.zone));
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
    async fn send(&self, mut message: Message, zone: &str) -> Result<(), String> {
        let server = wire::resolve_server(&self.nameserver).await?;
        let now = u64::try_from(crate::util::clock::now()).unwrap_or_default();
        let verifier = message
            .finalize(&self.signer, now)
            .map_err(|e| format!("sign the update: {e}"))?;
        let bytes = message
            .to_vec()
            .map_err(|e| format!("encode the update: {e}"))?;
        let answer = wire::exchange_tcp(server, &bytes, self.timeout).await?;
        let response = wire::decode(&answer, message.metadata.id, server)?;
        let code = response.metadata.response_code;
        if code != ResponseCode::NoError {
            let tsig = response.signature.as_ref().and_then(|sig| sig.data.error);
            return Err(self.refusal(code, tsig, zone, server));
        }
        match verifier {
            Some(mut verifier) => verifier.verify(&answer).map(drop).map_err(|e| {
                format!("{server} answered NOERROR without a valid TSIG signature: {e}")
            }),
            None => Ok(()),
        }
    }

    /// What a refusal means, in the server's terms and what to check.
    fn refusal(
        &self,
        code: ResponseCode,
        tsig: Option<TsigError>,
        zone: &str,
        server: std::net::SocketAddr,
    ) -> String {
        let key = &self.key_name;
        match (code, tsig) {
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
            .map_err(|e| DnsError::new(NAME, &step, e))?;
        self.send(message, &record.zone)
            .await
            .map_err(|e| DnsError::new(NAME, step, e))?;
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
            .map_err(|e| DnsError::new(NAME, &step, e))?;
        self.send(message, &record.zone)
            .await
            .map_err(|e| DnsError::new(NAME, step, e))
    }

    fn authoritative_server(&self) -> Option<&str> {
        Some(&self.nameserver)
    }
}
