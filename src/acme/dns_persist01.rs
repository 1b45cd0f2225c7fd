//! DNS-PERSIST-01 (draft-ietf-acme-dns-persist): a name is validated by one standing TXT record
//! at `_validation-persist.<name>` that names the CA (an issuer domain name) and the ACME
//! account (`accounturi`), published once by the operator. certfleet writes nothing to DNS: it
//! reads the record (read-only, at `challenges.resolvers` or the system's resolvers) before an
//! order is created, refuses with a clear error when it is missing or does not fit, and then
//! answers the challenge with an empty POST.
//!
//! The record's RDATA is an RFC 8659 section 4.2 issue-value: `issuer; accounturi=URI`, with
//! `policy=wildcard` (the draft's "Validation Record Format", item 4) for wildcard names and
//! subdomains, and `persistUntil=<Unix seconds>` (item 5) after which the CA no longer accepts it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use instant_acme::ChallengeType;

use super::solver::{ChallengeChoice, CleanupError, Presented, Solver};
use super::{IssueError, Issuer};
use crate::config::DnsPersistEntry;
use crate::dns::{wire, zone};
use crate::domain::CertKey;
use crate::util::clock;

/// The challenge's name in the CA's authorization (instant-acme knows it only as unknown).
pub const CHALLENGE: &str = "dns-persist-01";
/// The DNS label the record sits under (the draft's "Persistent DCV Domain Label").
pub const LABEL: &str = "_validation-persist";
/// How long one TXT query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The challenge type, as instant-acme reads it from the authorization.
pub fn challenge_type() -> ChallengeType {
    ChallengeType::Unknown(CHALLENGE.to_owned())
}

/// The Authorization Domain Name of `name`: `_validation-persist.<name>`, a wildcard's being
/// that of its base name (the CA validates `*.x` at `x`, with `policy=wildcard`).
pub fn record_name(name: &str) -> String {
    format!("{LABEL}.{}", name.strip_prefix("*.").unwrap_or(name))
}

/// One `_validation-persist` record's value, read or to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistRecord {
    /// The CA's issuer domain name, lowercase, without a trailing dot.
    pub issuer: String,
    /// `accounturi`: the ACME account's URL, compared as a plain string (RFC 3986 6.2.1).
    pub account_uri: String,
    /// `policy=wildcard` (compared case-insensitively).
    pub wildcard: bool,
    /// `persistUntil`, Unix seconds.
    pub persist_until: Option<i64>,
}

impl PersistRecord {
    /// Parses an issue-value (RFC 8659 section 4.2): `issuer [; tag=value]...`, white space
    /// around each part ignored, empty parts skipped, unknown tags ignored (the draft's item 1),
    /// tags compared case-insensitively, each known tag at most once.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split(';');
        let issuer = parts.next().unwrap_or_default().trim();
        if issuer.is_empty() {
            return Err("no issuer domain name before the first \";\"".to_owned());
        }
        let issuer = issuer.trim_end_matches('.').to_ascii_lowercase();
        let mut params: BTreeMap<String, String> = BTreeMap::new();
        for part in parts.map(str::trim).filter(|part| !part.is_empty()) {
            let Some((tag, value)) = part.split_once('=') else {
                return Err(format!("parameter {part:?} is not tag=value"));
            };
            let tag = tag.trim().to_ascii_lowercase();
            if params
                .insert(tag.clone(), value.trim().to_owned())
                .is_some()
            {
                return Err(format!("parameter {tag} is given twice"));
            }
        }
        let account_uri = params
            .remove("accounturi")
            .filter(|uri| !uri.is_empty())
            .ok_or_else(|| "no accounturi parameter".to_owned())?;
        let wildcard = params
            .remove("policy")
            .is_some_and(|policy| policy.eq_ignore_ascii_case("wildcard"));
        let persist_until = match params.remove("persistuntil") {
            None => None,
            Some(value) => Some(
                value
                    .parse::<i64>()
                    .map_err(|_| format!("persistUntil {value:?} is not a Unix time"))?,
            ),
        };
        Ok(Self {
            issuer,
            account_uri,
            wildcard,
            persist_until,
        })
    }

    /// The value as the CA reads it: `issuer; accounturi=URI[; policy=wildcard][; persistUntil=N]`.
    pub fn value(&self) -> String {
        let mut text = format!("{}; accounturi={}", self.issuer, self.account_uri);
        if self.wildcard {
            text.push_str("; policy=wildcard");
        }
        if let Some(at) = self.persist_until {
            text.push_str(&format!("; persistUntil={at}"));
        }
        text
    }

    /// The record as a zone-file line for `name`: `_validation-persist.NAME. IN TXT "..."`, the
    /// value split into character-strings of at most 255 bytes (RFC 1035 section 3.3.14).
    pub fn zone_line(&self, name: &str) -> String {
        let value = self.value();
        let strings: Vec<String> = value
            .as_bytes()
            .chunks(255)
            .map(|chunk| {
                format!(
                    "\"{}\"",
                    String::from_utf8_lossy(chunk).replace('"', "\\\"")
                )
            })
            .collect();
        format!("{}. IN TXT {}", record_name(name), strings.join(" "))
    }
}

/// What was found for a name: the record that validates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The record's name.
    pub fqdn: String,
    /// The matching record.
    pub record: PersistRecord,
}

/// Why a name cannot be validated by its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No record names one of the issuer domain names.
    Missing(String),
    /// Records for this CA exist, but none for this account and policy (or one is malformed).
    Mismatch(String),
    /// This account's record (with the right policy) is past its `persistUntil`.
    Expired(String),
}

/// What is wrong with a name's record, as the API tells it (one error code each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordProblem {
    /// No `_validation-persist` record names the CA: `dns_persist_record_missing`.
    Missing,
    /// Records name the CA, none fits: `dns_persist_record_mismatch`.
    Mismatch,
    /// This account's record is past its `persistUntil`: `dns_persist_record_expired`.
    Expired,
}

/// Checks and answers DNS-PERSIST-01 for the names `challenges.dnsPersist` covers.
#[derive(Debug)]
pub struct DnsPersistSolver {
    entries: Vec<DnsPersistEntry>,
    resolvers: Vec<SocketAddr>,
    /// The latest `persistUntil` seen per record name (`None`: the record has none), with the
    /// entry's index: what the expiry watch reports.
    seen: Mutex<BTreeMap<String, (usize, Option<i64>)>>,
}

impl DnsPersistSolver {
    /// A solver for `entries`, reading records at `resolvers` (empty: the system's).
    pub fn new(entries: Vec<DnsPersistEntry>, resolvers: Vec<SocketAddr>) -> Self {
        Self {
            entries,
            resolvers,
            seen: Mutex::new(BTreeMap::new()),
        }
    }

    /// The first entry covering `name`, with its index.
    pub fn entry_for(&self, name: &str) -> Option<(usize, &DnsPersistEntry)> {
        self.entries
            .iter()
            .enumerate()
            .find(|(_, entry)| entry.matches(name))
    }

    /// Every entry.
    pub fn entries(&self) -> &[DnsPersistEntry] {
        &self.entries
    }

    /// What the checks saw: record name -> (entry index, `persistUntil`).
    pub fn seen(&self) -> BTreeMap<String, (usize, Option<i64>)> {
        self.seen
            .lock()
            .map(|seen| seen.clone())
            .unwrap_or_default()
    }

    /// The TXT values at `fqdn`, from the first resolver that answers.
    pub async fn txt_values(&self, fqdn: &str) -> Result<Vec<String>, IssueError> {
        let servers = if self.resolvers.is_empty() {
            zone::system_resolvers()
        } else {
            self.resolvers.clone()
        };
        let mut last = "no resolver (set challenges.resolvers)".to_owned();
        for server in servers {
            match wire::txt_values(server, fqdn, QUERY_TIMEOUT).await {
                Ok(values) => return Ok(values),
                Err(err) => last = err.to_string(),
            }
        }
        Err(IssueError::Dns(format!(
            "dns-persist: read TXT record {fqdn}: {last}"
        )))
    }

    /// Checks at `now` that `name`'s record validates it for `account_uri` at a CA named by
    /// `issuers` (lowercase), with `policy=wildcard` when the name is a wildcard.
    pub async fn check(
        &self,
        name: &str,
        account_uri: &str,
        issuers: &[String],
        now: i64,
    ) -> Result<Result<Found, Refusal>, IssueError> {
        let fqdn = record_name(name);
        let values = self.txt_values(&fqdn).await?;
        let verdict = judge(name, &fqdn, &values, account_uri, issuers, now);
        if let (Ok(found), Some((index, _))) = (&verdict, self.entry_for(name))
            && let Ok(mut seen) = self.seen.lock()
        {
            seen.insert(fqdn, (index, found.record.persist_until));
        }
        Ok(verdict)
    }
}

/// Judges the TXT `values` at `fqdn` for `name` (the draft's "Verification Procedure").
pub fn judge(
    name: &str,
    fqdn: &str,
    values: &[String],
    account_uri: &str,
    issuers: &[String],
    now: i64,
) -> Result<Found, Refusal> {
    let wildcard = name.starts_with("*.");
    let mut objections = Vec::new();
    let mut expired = Vec::new();
    for value in values {
        let record = match PersistRecord::parse(value) {
            Ok(record) if issuers.contains(&record.issuer) => record,
            Ok(_) => continue,
            // A malformed value may be another CA's; it counts only if it names ours.
            Err(why) => {
                let issuer = value.split(';').next().unwrap_or_default().trim();
                if issuers.contains(&issuer.trim_end_matches('.').to_ascii_lowercase()) {
                    objections.push(format!("\"{value}\" is malformed: {why}"));
                }
                continue;
            }
        };
        if record.account_uri != account_uri {
            objections.push(format!(
                "\"{value}\" names the account {}, not this server's",
                record.account_uri
            ));
        } else if wildcard && !record.wildcard {
            objections.push(format!(
                "\"{value}\" has no policy=wildcard, which the wildcard {name} needs"
            ));
        } else if let Some(until) = record.persist_until.filter(|until| *until <= now) {
            expired.push(format!(
                "\"{value}\" expired at persistUntil {}",
                clock::rfc3339(until)
            ));
        } else {
            return Ok(Found {
                fqdn: fqdn.to_owned(),
                record,
            });
        }
    }
    if !expired.is_empty() {
        // The record that would fit is there, only too old: say that first.
        expired.extend(objections);
        return Err(Refusal::Expired(format!("{fqdn}: {}", expired.join("; "))));
    }
    if objections.is_empty() {
        let seen = match values.len() {
            0 => "there is no TXT record".to_owned(),
            n => format!(
                "its {n} TXT record(s) name no issuer of {}",
                issuers.join(", ")
            ),
        };
        Err(Refusal::Missing(format!("{fqdn}: {seen}")))
    } else {
        Err(Refusal::Mismatch(format!(
            "{fqdn}: {}",
            objections.join("; ")
        )))
    }
}

#[async_trait]
impl Solver for DnsPersistSolver {
    fn challenge_type(&self) -> ChallengeType {
        challenge_type()
    }

    /// The handle is the record's name: nothing is written, so nothing is cleaned up.
    async fn prepare(
        &self,
        name: &str,
        _token: &str,
        _key_authorization: &str,
    ) -> Result<Presented, IssueError> {
        Ok(Presented {
            name: name.to_owned(),
            handle: format!("{CHALLENGE}:{name}"),
        })
    }

    async fn present(
        &self,
        prepared: &Presented,
        _token: &str,
        _key_authorization: &str,
    ) -> Result<Presented, IssueError> {
        Ok(prepared.clone())
    }

    async fn cleanup(&self, _presented: &Presented) -> Result<(), CleanupError> {
        Ok(())
    }
}

impl Issuer {
    /// The ACME account's URL (the `accounturi` of a DNS-PERSIST-01 record), the account loaded
    /// from the store or created exactly as an issuance would.
    pub async fn account_uri(&self) -> Result<String, IssueError> {
        Ok(self.account().await?.id().to_owned())
    }

    /// The issuer domain names `entry` writes and accepts: its own, else the directory's first
    /// `meta.caaIdentities` (known once the account is loaded).
    pub fn issuer_domain_names(&self, entry: &DnsPersistEntry) -> Result<Vec<String>, IssueError> {
        if !entry.issuer_domain_names.is_empty() {
            return Ok(entry.issuer_domain_names.clone());
        }
        match self.http.caa_identities().and_then(<[String]>::first) {
            Some(first) => Ok(vec![first.clone()]),
            None => Err(IssueError::Ca(format!(
                "{} lists no meta.caaIdentities: set challenges.dnsPersist[].issuerDomainNames \
                 to the CA's issuer domain name",
                self.directory_url
            ))),
        }
    }

    /// The record to publish for `name` at `now`: from the matching `challenges.dnsPersist`
    /// entry (its first issuer domain name, `policy=wildcard`, `persistUntil`) and the account.
    pub async fn persist_record(&self, name: &str, now: i64) -> Result<PersistRecord, IssueError> {
        let solver = self.dns_persist.as_ref();
        let Some((_, entry)) = solver.and_then(|solver| solver.entry_for(name)) else {
            return Err(IssueError::Internal(format!(
                "no challenges.dnsPersist entry's names hold {name}"
            )));
        };
        let account_uri = self.account_uri().await?;
        let issuer = self.issuer_domain_names(entry)?.remove(0);
        Ok(PersistRecord {
            issuer,
            account_uri,
            wildcard: entry.wildcard,
            persist_until: entry.persist_until.map(|until| until.at(now)),
        })
    }

    /// Before an order: every name that will be validated by DNS-PERSIST-01 has its record,
    /// naming this account. A refusal names the record and what to publish.
    pub(super) async fn check_persist(
        &self,
        key: &CertKey,
        choice: ChallengeChoice,
    ) -> Result<(), IssueError> {
        let Some(solver) = self.dns_persist.as_ref() else {
            return Ok(());
        };
        let now = clock::now();
        for name in key.names.names() {
            let name = name.as_str();
            let uses_persist = self
                .solver_for(name, choice)
                .is_ok_and(|chosen| chosen.challenge_type() == challenge_type());
            let Some((index, entry)) = solver.entry_for(name).filter(|_| uses_persist) else {
                continue;
            };
            let account_uri = self.account_uri().await?;
            let issuers = self.issuer_domain_names(entry)?;
            let refusal = match solver.check(name, &account_uri, &issuers, now).await? {
                Ok(found) => {
                    tracing::debug!(name, record = %found.fqdn, "DNS-PERSIST-01 record found");
                    continue;
                }
                Err(refusal) => refusal,
            };
            if name.starts_with("*.") && !entry.wildcard {
                return Err(IssueError::DnsPersist {
                    problem: RecordProblem::Mismatch,
                    message: format!(
                        "{name}: a wildcard needs policy=wildcard, and challenges.dnsPersist[{index}] \
                         has no policy: wildcard; set it and publish the record `certfleet \
                         dns-persist record {name}` prints"
                    ),
                });
            }
            let wanted = self.persist_record(name, now).await?;
            let (problem, seen) = match refusal {
                Refusal::Missing(seen) => (RecordProblem::Missing, seen),
                Refusal::Mismatch(seen) => (RecordProblem::Mismatch, seen),
                Refusal::Expired(seen) => (RecordProblem::Expired, seen),
            };
            return Err(IssueError::DnsPersist {
                problem,
                message: format!(
                    "{name} is validated by DNS-PERSIST-01 (challenges.dnsPersist[{index}]), but {seen}; \
                     publish {} (`certfleet dns-persist record {name}` prints it)",
                    wanted.zone_line(name)
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "https://ca.example/acct/123";

    fn record(text: &str) -> PersistRecord {
        PersistRecord::parse(text).expect("parses")
    }

    #[test]
    fn records_parse_as_rfc8659_issue_values() {
        assert_eq!(
            record("authority.example; accounturi=https://ca.example/acct/123"),
            PersistRecord {
                issuer: "authority.example".to_owned(),
                account_uri: ACCOUNT.to_owned(),
                wildcard: false,
                persist_until: None,
            }
        );
        let full = record(
            "  CA.Example. ;AccountURI = https://ca.example/acct/123 ;; POLICY=WildCard; \
             persistUntil=1767225600; future=x ",
        );
        assert_eq!(full.issuer, "ca.example");
        assert!(full.wildcard);
        assert_eq!(full.persist_until, Some(1_767_225_600));
        assert!(!record("ca.example; accounturi=u; policy=subdomains").wildcard);
        for bad in [
            "",
            "; accounturi=u",
            "ca.example",
            "ca.example; accounturi=",
            "ca.example; accounturi=u; persistUntil=soon",
            "ca.example; accounturi=u; accounturi=v",
            "ca.example; accounturi=u; flag",
        ] {
            assert!(PersistRecord::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn records_print_as_the_ca_reads_them() {
        let mut wanted = record("pebble.letsencrypt.org; accounturi=https://ca.example/acct/123");
        assert_eq!(
            wanted.zone_line("example.com"),
            "_validation-persist.example.com. IN TXT \"pebble.letsencrypt.org; \
             accounturi=https://ca.example/acct/123\""
        );
        wanted.wildcard = true;
        wanted.persist_until = Some(1_800_000_000);
        assert_eq!(
            wanted.value(),
            "pebble.letsencrypt.org; accounturi=https://ca.example/acct/123; policy=wildcard; \
             persistUntil=1800000000"
        );
        assert_eq!(record(&wanted.value()), wanted, "round trip");
        assert!(
            wanted
                .zone_line("*.example.com")
                .starts_with("_validation-persist.example.com. ")
        );
        wanted.account_uri = "x".repeat(300);
        let line = wanted.zone_line("example.com");
        assert_eq!(
            line.matches("\" \"").count(),
            1,
            "split in two strings: {line}"
        );
    }

    #[test]
    fn the_verification_procedure() {
        let issuers = ["ca.example".to_owned()];
        let fqdn = record_name("example.com");
        let judge_one = |name: &str, values: &[&str]| {
            let values: Vec<String> = values.iter().map(ToString::to_string).collect();
            judge(name, &fqdn, &values, ACCOUNT, &issuers, 1_000)
        };
        let good = "ca.example; accounturi=https://ca.example/acct/123";
        assert!(judge_one("example.com", &[good]).is_ok());
        assert!(judge_one("example.com", &["other.ca; accounturi=x", good]).is_ok());
        assert!(matches!(
            judge_one("example.com", &[]),
            Err(Refusal::Missing(_))
        ));
        assert!(matches!(
            judge_one(
                "example.com",
                &["other.ca; accounturi=https://ca.example/acct/123"]
            ),
            Err(Refusal::Missing(_))
        ));
        let other = judge_one(
            "example.com",
            &["ca.example; accounturi=https://ca.example/acct/9"],
        );
        assert!(matches!(other, Err(Refusal::Mismatch(m)) if m.contains("acct/9")));
        assert!(
            matches!(judge_one("*.example.com", &[good]), Err(Refusal::Mismatch(m)) if m.contains("policy=wildcard"))
        );
        assert!(judge_one("*.example.com", &[&format!("{good}; policy=wildcard")]).is_ok());
        let expired = judge_one("example.com", &[&format!("{good}; persistUntil=999")]);
        assert!(matches!(expired, Err(Refusal::Expired(m)) if m.contains("expired")));
        // Another account's record beside an expired one of ours: the expiry is what to fix.
        let both = judge_one(
            "example.com",
            &[
                "ca.example; accounturi=https://ca.example/acct/9",
                &format!("{good}; persistUntil=999"),
            ],
        );
        assert!(matches!(both, Err(Refusal::Expired(m)) if m.contains("acct/9")));
        assert!(judge_one("example.com", &[&format!("{good}; persistUntil=1001")]).is_ok());
        let malformed = judge_one("example.com", &["ca.example; policy=wildcard"]);
        assert!(matches!(malformed, Err(Refusal::Mismatch(m)) if m.contains("malformed")));
    }
}
