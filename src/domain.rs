//! Names, parsed once at the edge: [`DomainName`], [`NameSet`], [`DomainPattern`], [`KeyType`], [`KeySpec`],
//! and [`in_zone`], the zone test every DNS-01 step shares; and the other words certfleet's
//! layers share: [`FailureKind`], [`RevocationReason`], [`EventType`].
//!
//! Everything past the API layer holds these types, never raw strings, so a name is normalised
//! (lowercase, IDNA to punycode, no trailing dot; an IP address in its canonical text, RFC 5952
//! for IPv6) and checked (lengths, characters) exactly once.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use serde::{Serialize, Serializer};
use thiserror::Error;

/// The most names one certificate may carry (Let's Encrypt's limit).
pub const MAX_NAMES: usize = 100;

/// Why a name or pattern was refused. The message names the offending input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// Empty input.
    #[error("empty domain name")]
    Empty,
    /// An IP address where only a DNS name fits (a DNS zone, a wildcard's base).
    #[error("{0:?} is an IP address; a DNS name is needed here")]
    IpAddress(String),
    /// An IPv6 address with a zone (`fe80::1%eth0`): no certificate can name one.
    #[error("{0:?} is an IPv6 address with a zone index; give the address without %zone")]
    IpZone(String),
    /// A pattern `address/prefix` whose prefix is not a number within the address's length.
    #[error(
        "{0:?}: a network is written address/prefix, the prefix at most 32 for IPv4 and 128 for IPv6"
    )]
    BadNetwork(String),
    /// More than 253 characters once encoded.
    #[error("{0:?} is longer than 253 characters")]
    TooLong(String),
    /// An empty label (`a..b.com`, a leading dot).
    #[error("{0:?} has an empty label")]
    EmptyLabel(String),
    /// A label longer than 63 octets.
    #[error("{0:?} has a label longer than 63 characters")]
    LabelTooLong(String),
    /// A character that no hostname label may hold, or a hyphen at a label's edge.
    #[error("{0:?} has an invalid character or label: {1}")]
    InvalidLabel(String, &'static str),
    /// A single label: no public CA issues for those.
    #[error("{0:?} needs at least two labels (a name like example.com)")]
    SingleLabel(String),
    /// `*` anywhere but as the whole leftmost label.
    #[error("{0:?}: a wildcard must be the whole leftmost label, as in *.example.com")]
    BadWildcard(String),
    /// IDNA conversion failed.
    #[error("{0:?} is not a valid internationalised domain name")]
    Idna(String),
    /// No names in a set.
    #[error("no domain given")]
    NoNames,
    /// Too many names in one set.
    #[error("{0} names requested; one certificate holds at most {MAX_NAMES}")]
    TooMany(usize),
}

/// One identifier of a certificate: a normalised DNS name, possibly a wildcard
/// (`*.example.com`), or an IP address (RFC 8738) in its canonical text (`192.0.2.1`, `2001:db8::1`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName(String);

impl DomainName {
    /// Parses and normalises an identifier. An IPv4 or IPv6 address (IPv6 also in brackets) is
    /// kept in canonical form; a name has one trailing dot trimmed, is lowercased, has IDNA
    /// labels converted to punycode, and is checked for RFC 1035 lengths and the LDH rule (RFC
    /// 5890 for A-labels).
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let trimmed = input.trim();
        let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(DomainError::Empty);
        }
        // What clients send nearly always: a name already in normal form. One pass accepts
        // it; anything it does not accept (errors included) goes through the checks below,
        // which alone decide what is refused and why.
        if is_plain_normal(trimmed.strip_prefix("*.").unwrap_or(trimmed)) {
            return Ok(Self(trimmed.to_owned()));
        }
        Self::parse_checked(input, trimmed)
    }

    /// [`Self::parse`] from the trimmed input, by the full checks.
    fn parse_checked(input: &str, trimmed: &str) -> Result<Self, DomainError> {
        let bare = trimmed.trim_start_matches('[').trim_end_matches(']');
        // Only digits, dots and hex digits with colons can be an address: most names skip the
        // parse (this runs for every name of every request).
        let may_be_address = bare
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || matches!(b, b'.' | b':' | b'%'));
        if may_be_address && let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Self(ip.to_string()));
        }
        if let Some((address, _zone)) = bare.split_once('%')
            && address.parse::<std::net::Ipv6Addr>().is_ok()
        {
            return Err(DomainError::IpZone(input.to_owned()));
        }
        let (wildcard, rest) = match trimmed.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if rest.contains('*') {
            return Err(DomainError::BadWildcard(input.to_owned()));
        }
        if rest.split('.').any(str::is_empty) {
            return Err(DomainError::EmptyLabel(input.to_owned()));
        }
        // Most names arrive already normalised: those are checked where they are and copied
        // once, at the end.
        let ascii = if !rest
            .bytes()
            .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
        {
            Cow::Borrowed(rest)
        } else if rest.is_ascii() {
            Cow::Owned(rest.to_ascii_lowercase())
        } else {
            Cow::Owned(
                idna::domain_to_ascii(rest).map_err(|_| DomainError::Idna(input.to_owned()))?,
            )
        };
        check_ascii_name(input, &ascii)?;
        let name = match (wildcard, ascii) {
            // Unchanged: the name is the input as given, `*.` included.
            (_, Cow::Borrowed(_)) => trimmed.to_owned(),
            (true, Cow::Owned(ascii)) => format!("*.{ascii}"),
            (false, Cow::Owned(ascii)) => ascii,
        };
        if name.len() > 253 {
            return Err(DomainError::TooLong(truncate_for_message(input)));
        }
        Ok(Self(name))
    }

    /// Parses a DNS name only: an IP address is refused (DNS zones, names DNS-01 validates).
    pub fn parse_dns(input: &str) -> Result<Self, DomainError> {
        let name = Self::parse(input)?;
        match name.ip() {
            Some(_) => Err(DomainError::IpAddress(input.to_owned())),
            None => Ok(name),
        }
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address, when this identifier is an IP address. A DNS name never has a colon nor an
    /// all-digit last label (see [`Self::parse`]), so most names are told apart without a parse.
    pub fn ip(&self) -> Option<IpAddr> {
        // Only the last label is looked at (every fetch asks): an IPv6 address without a dot
        // is all last label, with its colons; one ending in IPv4 ends in digits, as IPv4 does.
        let bytes = self.0.as_bytes();
        let last = &bytes[bytes
            .iter()
            .rposition(|&b| b == b'.')
            .map_or(0, |dot| dot + 1)..];
        let may_be = last.iter().all(u8::is_ascii_digit) || last.contains(&b':');
        if may_be { self.0.parse().ok() } else { None }
    }

    /// Whether this identifier is an IP address.
    pub fn is_ip(&self) -> bool {
        self.ip().is_some()
    }

    /// Whether this is a wildcard name (`*.example.com`).
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// The name without a leading `*.`: the name DNS-01 validates and HTTP-01 cannot.
    pub fn base(&self) -> &str {
        self.0.strip_prefix("*.").unwrap_or(&self.0)
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `name` (no `*.`) certainly passes every check of [`DomainName::parse`] unchanged:
/// lowercase letters, digits, hyphens and dots only, two or more labels of 1 to 63 characters
/// with no hyphen at either edge, at most 253 characters, the last label not all digits (so
/// neither an address nor a dotted IPv4 form). `false` says nothing: the full checks run.
fn is_plain_normal(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.len() > 253 {
        return false;
    }
    let (mut labels, mut len, mut digits_only, mut last) = (1usize, 0usize, true, b'.');
    for &b in bytes {
        match b {
            b'.' => {
                if len == 0 || last == b'-' {
                    return false;
                }
                labels += 1;
                len = 0;
                digits_only = true;
            }
            b'a'..=b'z' | b'0'..=b'9' | b'-' => {
                if len == 0 && b == b'-' {
                    return false;
                }
                len += 1;
                if len > 63 {
                    return false;
                }
                digits_only &= b.is_ascii_digit();
            }
            _ => return false,
        }
        last = b;
    }
    labels >= 2 && len > 0 && last != b'-' && !digits_only
}

/// Checks an all-ASCII, lowercase, non-wildcard name label by label.
fn check_ascii_name(input: &str, ascii: &str) -> Result<(), DomainError> {
    if ascii.len() > 253 {
        return Err(DomainError::TooLong(truncate_for_message(input)));
    }
    if !ascii.contains('.') {
        return Err(DomainError::SingleLabel(input.to_owned()));
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err(DomainError::EmptyLabel(input.to_owned()));
        }
        if label.len() > 63 {
            return Err(DomainError::LabelTooLong(truncate_for_message(input)));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(DomainError::InvalidLabel(
                input.to_owned(),
                "only letters, digits and hyphens are allowed",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(DomainError::InvalidLabel(
                input.to_owned(),
                "a label cannot start or end with a hyphen",
            ));
        }
    }
    // An all-numeric top-level label is how dotted IPv4 forms like 1.2.3 or 10.1 look.
    if ascii
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(DomainError::InvalidLabel(
            input.to_owned(),
            "the last label cannot be all digits",
        ));
    }
    Ok(())
}

/// Keeps error messages short when a client sends a huge name.
fn truncate_for_message(input: &str) -> String {
    match input.char_indices().nth(64) {
        Some((at, _)) => format!("{}...", &input[..at]),
        None => input.to_owned(),
    }
}

/// The set of names on one certificate: sorted, without duplicates, 1 to [`MAX_NAMES`] names.
///
/// The first name is the certificate's primary name (`domain` in API responses).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NameSet(Vec<DomainName>);

impl NameSet {
    /// Parses every name and builds the normalised set.
    pub fn parse<S: AsRef<str>>(inputs: &[S]) -> Result<Self, DomainError> {
        let names = inputs
            .iter()
            .map(|s| DomainName::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(names)
    }

    /// Builds the set from parsed names.
    pub fn new(mut names: Vec<DomainName>) -> Result<Self, DomainError> {
        names.sort();
        names.dedup();
        match names.len() {
            0 => Err(DomainError::NoNames),
            n if n > MAX_NAMES => Err(DomainError::TooMany(n)),
            _ => Ok(Self(names)),
        }
    }

    /// The names, sorted.
    pub fn names(&self) -> &[DomainName] {
        &self.0
    }

    /// The primary name: the first in sort order.
    pub fn primary(&self) -> &DomainName {
        // The constructor guarantees at least one name.
        &self.0[0]
    }

    /// Whether any name is a wildcard.
    pub fn has_wildcard(&self) -> bool {
        self.0.iter().any(DomainName::is_wildcard)
    }

    /// Whether any identifier is an IP address.
    pub fn has_ip(&self) -> bool {
        self.0.iter().any(DomainName::is_ip)
    }

    /// The stable text form used as a storage key: names joined by commas.
    pub fn key(&self) -> String {
        self.to_string()
    }

    /// The bytes the set holds on the heap, for caches bounded by size.
    pub fn heap_size(&self) -> usize {
        self.0.capacity() * size_of::<DomainName>()
            + self.0.iter().map(|name| name.0.capacity()).sum::<usize>()
    }
}

impl fmt::Display for NameSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(name.as_str())?;
        }
        Ok(())
    }
}

/// A pattern of identifiers a client may request: `*` (any DNS name), `*.example.com` (any name
/// below example.com at any depth, wildcards included, but not example.com itself), one exact
/// name or address, or a network of addresses (`10.0.0.0/8`, `2001:db8::/32`). No DNS pattern
/// matches an IP address, not even `*`: addresses are allowed only by address patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainPattern {
    /// Every DNS name.
    Any,
    /// Names strictly below this suffix (stored without the `*.`).
    Below(String),
    /// Exactly this name or address.
    Exact(DomainName),
    /// The addresses of a network: its first address (host bits zero) and prefix length.
    Network(IpAddr, u8),
}

impl DomainPattern {
    /// Parses a pattern, normalising it like a name.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        if input.trim() == "*" {
            return Ok(Self::Any);
        }
        if let Some((address, prefix)) = input.trim().split_once('/') {
            let bad = || DomainError::BadNetwork(input.to_owned());
            let address: IpAddr = address.parse().map_err(|_| bad())?;
            let prefix: u8 = prefix.parse().map_err(|_| bad())?;
            let bits = if address.is_ipv4() { 32 } else { 128 };
            if prefix > bits {
                return Err(bad());
            }
            return Ok(Self::Network(network_start(address, prefix), prefix));
        }
        let name = DomainName::parse(input)?;
        Ok(match name.is_wildcard() {
            true => Self::Below(name.base().to_owned()),
            false => Self::Exact(name),
        })
    }

    /// The pattern that matches every name.
    pub fn any() -> Self {
        Self::Any
    }

    /// Whether this pattern matches every name.
    pub fn is_any(&self) -> bool {
        matches!(self, Self::Any)
    }

    /// Whether `name` falls under this pattern.
    pub fn matches(&self, name: &DomainName) -> bool {
        match self {
            Self::Any => !name.is_ip(),
            Self::Network(start, prefix) => name
                .ip()
                .is_some_and(|ip| network_start(ip, *prefix) == *start),
            Self::Exact(exact) => exact == name,
            Self::Below(suffix) => name
                .as_str()
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Below(suffix) => write!(f, "*.{suffix}"),
            Self::Exact(name) => write!(f, "{name}"),
            Self::Network(start, prefix) => write!(f, "{start}/{prefix}"),
        }
    }
}

/// The first address of `ip`'s network of `prefix` bits (host bits cleared); an address of the
/// other family than the network's never compares equal to it.
fn network_start(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

/// Whether `name` is `zone` itself or a name below it, both in certfleet's form (lowercase, no
/// trailing dot): `www.example.com` is in `example.com`, `badexample.com` is not. Comparing
/// whole labels is what a zone cut means (RFC 1034 section 4.2).
pub fn in_zone(name: &str, zone: &str) -> bool {
    name == zone
        || name
            .strip_suffix(zone)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// The private key algorithm of a certificate; part of a certificate's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256: the default, small and fast.
    #[default]
    EcdsaP256,
    /// ECDSA on P-384 with SHA-384.
    EcdsaP384,
    /// RSA 2048-bit.
    Rsa2048,
    /// RSA 3072-bit.
    Rsa3072,
    /// RSA 4096-bit (slow to generate: about a second).
    Rsa4096,
}

impl KeyType {
    /// Every key type, in the order they are documented.
    pub const ALL: [Self; 5] = [
        Self::EcdsaP256,
        Self::EcdsaP384,
        Self::Rsa2048,
        Self::Rsa3072,
        Self::Rsa4096,
    ];

    /// Parses a config or API name such as `ecdsa-p256`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The config and API name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::EcdsaP384 => "ecdsa-p384",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
        }
    }

    /// The accepted names, for error messages.
    pub fn names() -> String {
        Self::ALL.map(|k| k.as_str()).join(", ")
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The length of a [`SpkiHash`]'s stored form: `spki:` and 43 base64url characters.
const SPKI_TEXT_LEN: usize = 5 + 43;

/// The SHA-256 of a public key's DER SubjectPublicKeyInfo: how certfleet knows a key it never
/// holds (CSR mode). Written `spki:` followed by the digest in base64url without padding; the
/// API's `spkiSha256` is the digest part alone.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpkiHash {
    /// The stored form, ASCII.
    text: [u8; SPKI_TEXT_LEN],
}

impl SpkiHash {
    /// The hash of a key whose SubjectPublicKeyInfo has this SHA-256 digest.
    pub fn from_digest(digest: &[u8; 32]) -> Self {
        use base64::Engine as _;
        let mut text = [0u8; SPKI_TEXT_LEN];
        text[..5].copy_from_slice(b"spki:");
        let written = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode_slice(digest, &mut text[5..])
            .unwrap_or(0);
        debug_assert_eq!(written, 43);
        Self { text }
    }

    /// Reads the API's form (the 43 base64url characters of the digest), as a client sends it.
    pub fn parse(digest_b64: &str) -> Option<Self> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(digest_b64)
            .ok()?;
        let digest: [u8; 32] = bytes.try_into().ok()?;
        Some(Self::from_digest(&digest))
    }

    /// The stored form, `spki:<digest>`.
    pub fn as_str(&self) -> &str {
        // Only ever built from ASCII.
        std::str::from_utf8(&self.text).unwrap_or("spki:")
    }

    /// The digest in base64url: the API's `spkiSha256`.
    pub fn digest_b64(&self) -> &str {
        &self.as_str()[5..]
    }
}

impl fmt::Debug for SpkiHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose private key a certificate has, and which: with the names, its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeySpec {
    /// certfleet generates a key of this type, keeps it sealed and hands it out.
    Server(KeyType),
    /// The client holds the key and sent a CSR for it (CSR mode): certfleet knows only the
    /// public key, never the private one.
    Client(SpkiHash),
}

impl KeySpec {
    /// The stored form (the `key_type` column of every table) and the metrics' `key_type`
    /// label: the key type's name, or `spki:<digest>`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Server(key_type) => key_type.as_str(),
            Self::Client(spki) => spki.as_str(),
        }
    }

    /// The stored form of this key with `profile` (see [`CertKey::variant`]).
    pub fn with_profile(&self, profile: Option<&Profile>) -> Cow<'_, str> {
        match profile {
            None => Cow::Borrowed(self.as_str()),
            Some(profile) => Cow::Owned(format!("{}@{profile}", self.as_str())),
        }
    }

    /// Reads the stored form.
    pub fn parse(stored: &str) -> Option<Self> {
        match stored.strip_prefix("spki:") {
            Some(digest) => SpkiHash::parse(digest).map(Self::Client),
            None => KeyType::parse(stored).map(Self::Server),
        }
    }

    /// `server` or `client`: who holds the private key, as the API and the inventory say it.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::Server(_) => "server",
            Self::Client(_) => "client",
        }
    }

    /// The type certfleet generates, for a server-held key.
    pub fn key_type(&self) -> Option<KeyType> {
        match self {
            Self::Server(key_type) => Some(*key_type),
            Self::Client(_) => None,
        }
    }

    /// The client's key, for a client-held one.
    pub fn spki(&self) -> Option<&SpkiHash> {
        match self {
            Self::Server(_) => None,
            Self::Client(spki) => Some(spki),
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server(key_type) => f.write_str(key_type.as_str()),
            Self::Client(spki) => write!(f, "client key {}", spki.as_str()),
        }
    }
}

/// Who may hold a certificate's private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrivateKeys {
    /// Only certfleet: requests carrying a CSR are refused.
    Server,
    /// Only the clients: every request carries a CSR, and certfleet holds no private key.
    Client,
    /// Either, as each request asks (the default).
    Both,
}

impl PrivateKeys {
    /// Whether certfleet may generate and hold keys.
    pub fn server_allowed(self) -> bool {
        self != Self::Client
    }

    /// Whether clients may bring their own keys.
    pub fn client_allowed(self) -> bool {
        self != Self::Server
    }
}

/// An ACME profile (draft-ietf-acme-profiles) a certificate is ordered with, such as Let's
/// Encrypt's `classic`, `tlsserver` or `shortlived`: 1 to 64 ASCII letters, digits, `.`, `_`
/// or `-`. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Profile(std::sync::Arc<str>);

impl Profile {
    /// The longest profile name accepted.
    pub const MAX_LEN: usize = 64;

    /// A profile name, if `name` is one.
    pub fn parse(name: &str) -> Option<Self> {
        let ok = (1..=Self::MAX_LEN).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        ok.then(|| Self(name.into()))
    }

    /// The name, as the CA's directory lists it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Profile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A certificate's identity: its name set, its key (a type certfleet generates, or the
/// client's public key), and the ACME profile it was asked with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertKey {
    /// The names on the certificate.
    pub names: NameSet,
    /// Whose private key, and which.
    pub key: KeySpec,
    /// The profile the request named; `None`: the configured default (`acme.profile`, or the
    /// CA's own default when that is unset), whatever it is at each order.
    pub profile: Option<Profile>,
}

impl CertKey {
    /// An identity with the default profile.
    pub fn new(names: NameSet, key: KeySpec) -> Self {
        Self {
            names,
            key,
            profile: None,
        }
    }

    /// The bytes the identity holds on the heap, for caches bounded by size.
    pub fn heap_size(&self) -> usize {
        self.names.heap_size() + self.profile.as_ref().map_or(0, |p| p.as_str().len())
    }

    /// The stored form of the key and profile together, the `key_type` column of every table:
    /// the key's stored form (`KeySpec::as_str`), followed by `@` and the profile when one was
    /// named. Identities with the default profile are stored as before profiles existed.
    pub fn variant(&self) -> Cow<'_, str> {
        self.key.with_profile(self.profile.as_ref())
    }

    /// The key and profile from their stored form ([`CertKey::variant`]).
    pub fn parse_variant(stored: &str) -> Option<(KeySpec, Option<Profile>)> {
        match stored.split_once('@') {
            None => Some((KeySpec::parse(stored)?, None)),
            Some((key, profile)) => Some((KeySpec::parse(key)?, Some(Profile::parse(profile)?))),
        }
    }

    /// An identity from its stored columns: names (comma-joined) and variant.
    pub fn from_stored(names: &str, variant: &str) -> Option<Self> {
        let names: Vec<&str> = names.split(',').collect();
        let (key, profile) = Self::parse_variant(variant)?;
        Some(Self {
            names: NameSet::parse(&names).ok()?,
            key,
            profile,
        })
    }

    /// The identity's id in the API and in events: its variant and names, base64url.
    /// Stable across restarts and replicas, and opaque to clients, which only pass it back.
    pub fn opaque_id(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "{}|{}",
            self.variant(),
            self.names.key()
        ))
    }

    /// The identity an [`CertKey::opaque_id`] names, if it is one.
    pub fn from_opaque_id(id: &str) -> Option<Self> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(id)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (variant, names) = text.split_once('|')?;
        Self::from_stored(names, variant)
    }
}

impl fmt::Display for CertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.profile {
            None => write!(f, "{} ({})", self.names, self.key),
            Some(profile) => write!(f, "{} ({}, profile {profile})", self.names, self.key),
        }
    }
}

/// What kind of failure an issuance ended with, as the back-off remembers it: stored with the
/// failure and mapped to an HTTP status and code by `error.rs` alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The CA refuses to issue for a name (RFC 8555 `rejectedIdentifier`, `caa`, ...).
    Rejected,
    /// A challenge failed validation.
    ValidationFailed,
    /// The CA's rate limit.
    RateLimited,
    /// The CA failed, was unreachable, or answered something unusable.
    Ca,
    /// A DNS provider failed, or a DNS-01 record never became visible.
    Dns,
    /// No DNS-PERSIST-01 record names the CA (found before ordering).
    DnsPersistMissing,
    /// The DNS-PERSIST-01 record does not fit this account or policy.
    DnsPersistMismatch,
    /// This account's DNS-PERSIST-01 record is past its `persistUntil`.
    DnsPersistExpired,
}

impl FailureKind {
    /// Every kind, for tests that must cover them all.
    pub const ALL: [Self; 8] = [
        Self::Rejected,
        Self::ValidationFailed,
        Self::RateLimited,
        Self::Ca,
        Self::Dns,
        Self::DnsPersistMissing,
        Self::DnsPersistMismatch,
        Self::DnsPersistExpired,
    ];

    /// The stored form and the issuance metric's `outcome` label: the API code a failure of this
    /// kind is answered with (`error.rs` maps it and tests that the two agree), which is also
    /// what the first versions stored, so their databases read back unchanged.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "domain_rejected",
            Self::ValidationFailed => "validation_failed",
            Self::RateLimited => "rate_limited",
            Self::Ca => "ca_error",
            Self::Dns => "dns_error",
            Self::DnsPersistMissing => "dns_persist_record_missing",
            Self::DnsPersistMismatch => "dns_persist_record_mismatch",
            Self::DnsPersistExpired => "dns_persist_record_expired",
        }
    }

    /// Reads the stored form; anything unknown is a CA failure, the most general kind.
    pub fn parse(stored: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == stored)
            .unwrap_or(Self::Ca)
    }
}

/// Why a certificate is revoked: the RFC 5280 (section 5.3.1) reasons an operator may give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationReason {
    /// No reason given (0).
    Unspecified,
    /// The private key may be known to someone else (1): a replacement with a new key is
    /// issued at once.
    KeyCompromise,
    /// The names' owner changed (3).
    AffiliationChanged,
    /// Replaced by another certificate (4): a replacement is issued at once.
    Superseded,
    /// No longer needed (5): what a deletion that revokes gives.
    CessationOfOperation,
}

impl RevocationReason {
    /// Every reason, in RFC 5280 code order.
    pub const ALL: [Self; 5] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
    ];

    /// The RFC 5280 name, as the API takes it and the store keeps it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
        }
    }

    /// The reason named `name` (exactly as RFC 5280 spells it).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The names, for messages.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }

    /// The CRLReason code sent to the CA.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
        }
    }

    /// Whether the identity gets a replacement with a new key at once (and the renewal worker
    /// retries it until it is stored); the other reasons leave it revoked until a client asks
    /// for it again or an operator renews it.
    pub fn replaces(self) -> bool {
        matches!(self, Self::KeyCompromise | Self::Superseded)
    }
}

/// What happened to a certificate or a delivery, as a notification names it: the `type` of a
/// webhook's body, the subject of an email, and the names the `events` filters of
/// `notifications` list. The wire names are stable: receivers route on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A certificate was issued for an identity that had none (`certificate.issued`).
    CertificateIssued,
    /// A certificate was replaced by a renewal (`certificate.renewed`).
    CertificateRenewed,
    /// A renewal failed; the current certificate stays in use (`certificate.renewal_failed`).
    CertificateRenewalFailed,
    /// A certificate crossed one of the `notifications.expiringAt` thresholds without being
    /// renewed (`certificate.expiring`).
    CertificateExpiring,
    /// A certificate was revoked (`certificate.revoked`).
    CertificateRevoked,
    /// An identity and its certificate were deleted (`certificate.deleted`).
    CertificateDeleted,
    /// The CA's renewal window brought a renewal forward (`certificate.renewal_advanced`).
    CertificateRenewalAdvanced,
    /// A client has not fetched the current certificate of an identity it fetched before
    /// (`delivery.stale`).
    DeliveryStale,
    /// A `challenges.dnsPersist` record's `persistUntil` is within the entry's `warnBefore`
    /// (`dns_persist.expiring`): publish a new record before it passes.
    DnsPersistExpiring,
    /// The test event of `certfleet notify test` (`certfleet.test`): never in [`EventType::ALL`],
    /// never chosen by an `events` filter, always sent by that command.
    Test,
}

impl EventType {
    /// Every event type an `events` filter may name, in the order they are documented; the test
    /// event is not one of them.
    pub const ALL: [Self; 9] = [
        Self::CertificateIssued,
        Self::CertificateRenewed,
        Self::CertificateRenewalFailed,
        Self::CertificateExpiring,
        Self::CertificateRevoked,
        Self::CertificateDeleted,
        Self::CertificateRenewalAdvanced,
        Self::DeliveryStale,
        Self::DnsPersistExpiring,
    ];

    /// The wire name, as config files, webhook bodies and emails write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CertificateIssued => "certificate.issued",
            Self::CertificateRenewed => "certificate.renewed",
            Self::CertificateRenewalFailed => "certificate.renewal_failed",
            Self::CertificateExpiring => "certificate.expiring",
            Self::CertificateRevoked => "certificate.revoked",
            Self::CertificateDeleted => "certificate.deleted",
            Self::CertificateRenewalAdvanced => "certificate.renewal_advanced",
            Self::DeliveryStale => "delivery.stale",
            Self::DnsPersistExpiring => "dns_persist.expiring",
            Self::Test => "certfleet.test",
        }
    }

    /// The event type whose wire name is exactly `text` (the test event's too).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain([Self::Test])
            .find(|event| event.as_str() == text)
    }

    /// The wire names of [`EventType::ALL`], for messages.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serialized as its wire name.
impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_reasons_read_back_and_name_their_codes() {
        for reason in RevocationReason::ALL {
            assert_eq!(RevocationReason::parse(reason.as_str()), Some(reason));
        }
        let codes: Vec<u8> = RevocationReason::ALL.map(RevocationReason::code).to_vec();
        assert_eq!(codes, [0, 1, 3, 4, 5]);
        assert_eq!(RevocationReason::parse("KeyCompromise"), None);
        assert_eq!(RevocationReason::parse("cACompromise"), None);
        let replacing: Vec<_> = RevocationReason::ALL
            .into_iter()
            .filter(|r| r.replaces())
            .collect();
        assert_eq!(
            replacing,
            [
                RevocationReason::KeyCompromise,
                RevocationReason::Superseded
            ]
        );
    }

    #[test]
    fn event_types_read_back_by_their_wire_names() {
        for event in EventType::ALL {
            assert_eq!(EventType::parse(event.as_str()), Some(event));
            assert_eq!(event.to_string(), event.as_str());
        }
        assert!(!EventType::ALL.contains(&EventType::Test));
        assert_eq!(EventType::parse("certfleet.test"), Some(EventType::Test));
        for unknown in ["certificate.Issued", "certificate_issued", "issued", ""] {
            assert_eq!(EventType::parse(unknown), None, "{unknown}");
        }
        let names: std::collections::HashSet<&str> =
            EventType::ALL.map(EventType::as_str).into_iter().collect();
        assert_eq!(names.len(), EventType::ALL.len(), "wire names are distinct");
    }

    #[test]
    fn failure_kinds_read_back_as_stored() {
        for kind in FailureKind::ALL {
            assert_eq!(FailureKind::parse(kind.as_str()), kind);
        }
        assert_eq!(FailureKind::parse("internal_error"), FailureKind::Ca);
    }

    #[test]
    fn in_zone_compares_whole_labels() {
        assert!(in_zone("example.com", "example.com"));
        assert!(in_zone("_acme-challenge.www.example.com", "example.com"));
        assert!(!in_zone("badexample.com", "example.com"));
        assert!(!in_zone("example.com", "www.example.com"));
        assert!(!in_zone("example.org", "example.com"));
    }

    #[test]
    fn names_normalise() {
        let cases = [
            ("Example.COM.", "example.com"),
            ("*.Example.com", "*.example.com"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("*.bücher.example", "*.xn--bcher-kva.example"),
            (" www.example.com ", "www.example.com"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("*.example.com", "*.example.com"),
            ("example.com.", "example.com"),
        ];
        for (input, want) in cases {
            assert_eq!(
                DomainName::parse(input).map(|n| n.0),
                Ok(want.to_owned()),
                "{input}"
            );
        }
    }

    /// The one-pass acceptance never accepts what the full checks refuse or would change:
    /// every string up to 6 characters over an alphabet of the interesting bytes, and random
    /// longer ones.
    #[test]
    fn plain_names_pass_the_full_checks_unchanged() {
        const ALPHABET: &[u8] = b"a0-.*A_:";
        let mut checked = 0;
        let mut check = |name: &str| {
            let rest = name.strip_prefix("*.").unwrap_or(name);
            if is_plain_normal(rest) {
                let full = DomainName::parse_checked(name, name);
                assert_eq!(full.as_ref().map(DomainName::as_str), Ok(name), "{name:?}");
                checked += 1;
            }
        };
        let mut name = Vec::new();
        for len in 1..=6u32 {
            for mut n in 0..ALPHABET.len().pow(len) {
                name.clear();
                for _ in 0..len {
                    name.push(ALPHABET[n % ALPHABET.len()]);
                    n /= ALPHABET.len();
                }
                check(std::str::from_utf8(&name).expect("ASCII"));
            }
        }
        // Lengths around the 63-character label and 253-character name limits.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = 55 + usize::try_from(seed % 210).unwrap_or(0);
            let text: String = (0..len)
                .map(|i| {
                    let pick = (seed >> (i % 50)) ^ (i as u64).wrapping_mul(0x9e37_79b9);
                    if pick.is_multiple_of(23) {
                        '.'
                    } else if pick.is_multiple_of(41) {
                        '-'
                    } else {
                        'q'
                    }
                })
                .collect();
            check(&text);
        }
        assert!(checked > 1_000, "only {checked} plain names generated");
    }

    #[test]
    fn names_refused() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}.com", ["abcdefghij"; 30].join("."));
        type Check = fn(&DomainError) -> bool;
        let cases: Vec<(&str, Check)> = vec![
            ("", |e| matches!(e, DomainError::Empty)),
            (".", |e| matches!(e, DomainError::Empty)),
            ("fe80::1%eth0", |e| matches!(e, DomainError::IpZone(_))),
            ("*.127.0.0.1", |e| {
                matches!(e, DomainError::InvalidLabel(..))
            }),
            ("127.0.0.01", |e| matches!(e, DomainError::InvalidLabel(..))),
            ("a..b.com", |e| matches!(e, DomainError::EmptyLabel(_))),
            (".a.com", |e| matches!(e, DomainError::EmptyLabel(_))),
            (&long_label, |e| matches!(e, DomainError::LabelTooLong(_))),
            (&long_name, |e| matches!(e, DomainError::TooLong(_))),
            ("a_b.example.com", |e| {
                matches!(e, DomainError::InvalidLabel(..))
            }),
            ("-a.example.com", |e| {
                matches!(e, DomainError::InvalidLabel(..))
            }),
            ("a b.com", |e| matches!(e, DomainError::InvalidLabel(..))),
            ("10.1", |e| matches!(e, DomainError::InvalidLabel(..))),
            ("localhost", |e| matches!(e, DomainError::SingleLabel(_))),
            ("www.*.example.com", |e| {
                matches!(e, DomainError::BadWildcard(_))
            }),
            ("*example.com", |e| matches!(e, DomainError::BadWildcard(_))),
            ("*.*.example.com", |e| {
                matches!(e, DomainError::BadWildcard(_))
            }),
            ("*.com", |e| matches!(e, DomainError::SingleLabel(_))),
        ];
        for (input, expected) in cases {
            let err = DomainName::parse(input).expect_err(input);
            assert!(expected(&err), "{input}: got {err:?}");
        }
    }

    #[test]
    fn addresses_are_identifiers_in_canonical_form() {
        let cases = [
            ("127.0.0.1", "127.0.0.1"),
            ("::1", "::1"),
            ("[::1]", "::1"),
            ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
            ("2001:db8::0:1", "2001:db8::1"),
        ];
        for (input, want) in cases {
            let name = DomainName::parse(input).expect(input);
            assert_eq!(name.as_str(), want, "{input}");
            assert!(name.is_ip(), "{input}");
            assert!(!name.is_wildcard(), "{input}");
            assert_eq!(
                DomainName::parse_dns(input),
                Err(DomainError::IpAddress(input.to_owned()))
            );
        }
        for dns in ["example.com", "a1.b2", "x.c0m"] {
            assert!(!DomainName::parse(dns).expect(dns).is_ip(), "{dns}");
        }
        let set = NameSet::parse(&["www.example.com", "192.0.2.1"]).expect("mixed");
        assert!(set.has_ip());
        assert!(!NameSet::parse(&["example.com"]).expect("dns").has_ip());
    }

    #[test]
    fn address_patterns_match_only_addresses_and_no_dns_pattern_matches_one() {
        let name = |s: &str| DomainName::parse(s).expect("valid name");
        let pattern = |s: &str| DomainPattern::parse(s).expect("valid pattern");
        let cases = [
            ("10.0.0.0/8", "10.200.3.4", true),
            ("10.1.2.3/8", "10.200.3.4", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.0.0.0/8", "::ffff:10.0.0.1", false),
            ("192.0.2.7/32", "192.0.2.7", true),
            ("192.0.2.7/32", "192.0.2.8", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "::1", false),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "::1", true),
            ("127.0.0.1", "127.0.0.1", true),
            ("::1", "[::1]", true),
            ("*", "127.0.0.1", false),
            ("*", "::1", false),
            ("*", "example.com", true),
            ("10.0.0.0/8", "example.com", false),
        ];
        for (p, input, want) in cases {
            assert_eq!(pattern(p).matches(&name(input)), want, "{p} vs {input}");
        }
        assert_eq!(pattern("10.1.2.3/8").to_string(), "10.0.0.0/8");
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/x",
            "example.com/8",
            "10.0.0.0/",
        ] {
            assert_eq!(
                DomainPattern::parse(bad),
                Err(DomainError::BadNetwork(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn huge_names_are_truncated_in_messages() {
        let err = DomainName::parse(&"a".repeat(300)).expect_err("too long");
        assert!(err.to_string().len() < 120, "{err}");
    }

    #[test]
    fn name_sets_sort_and_dedupe() {
        let set =
            NameSet::parse(&["b.example.com", "A.example.com", "a.example.com."]).expect("valid");
        assert_eq!(set.key(), "a.example.com,b.example.com");
        assert_eq!(set.primary().as_str(), "a.example.com");
        assert_eq!(NameSet::parse::<&str>(&[]), Err(DomainError::NoNames));
        let many: Vec<String> = (0..=MAX_NAMES)
            .map(|i| format!("n{i}.example.com"))
            .collect();
        assert_eq!(
            NameSet::parse(&many),
            Err(DomainError::TooMany(MAX_NAMES + 1))
        );
    }

    #[test]
    fn patterns_match() {
        let name = |s: &str| DomainName::parse(s).expect("valid name");
        let below = DomainPattern::parse("*.Example.com").expect("valid pattern");
        let exact = DomainPattern::parse("example.com").expect("valid pattern");
        let cases = [
            (&below, "www.example.com", true),
            (&below, "a.b.example.com", true),
            (&below, "*.example.com", true),
            (&below, "*.a.example.com", true),
            (&below, "example.com", false),
            (&below, "badexample.com", false),
            (&below, "www.example.org", false),
            (&exact, "example.com", true),
            (&exact, "www.example.com", false),
            (&DomainPattern::Any, "anything.example.net", true),
        ];
        for (pattern, input, want) in cases {
            assert_eq!(pattern.matches(&name(input)), want, "{pattern} vs {input}");
        }
        assert_eq!(below.to_string(), "*.example.com");
        assert!(DomainPattern::parse("*").expect("any").is_any());
    }

    #[test]
    fn key_specs_and_their_ids_round_trip() {
        let spki = SpkiHash::from_digest(&[7u8; 32]);
        assert_eq!(spki.digest_b64().len(), 43);
        assert_eq!(spki.as_str(), format!("spki:{}", spki.digest_b64()));
        assert_eq!(SpkiHash::parse(spki.digest_b64()), Some(spki));
        for bad in [
            "",
            "AAAA",
            &"A".repeat(44),
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        ] {
            assert_eq!(SpkiHash::parse(bad), None, "{bad}");
        }
        let names = NameSet::parse(&["b.example.com", "a.example.com"]).expect("names");
        for key in [KeySpec::Server(KeyType::Rsa3072), KeySpec::Client(spki)] {
            assert_eq!(KeySpec::parse(key.as_str()), Some(key));
            for profile in [None, Profile::parse("shortlived")] {
                let id = CertKey {
                    names: names.clone(),
                    key,
                    profile,
                };
                assert_eq!(CertKey::from_opaque_id(&id.opaque_id()), Some(id.clone()));
                assert_eq!(
                    CertKey::parse_variant(&id.variant()),
                    Some((id.key, id.profile.clone()))
                );
            }
        }
        assert_eq!(
            CertKey::parse_variant("ecdsa-p256@short lived"),
            None,
            "a stored profile is a profile name"
        );
        assert_eq!(Profile::parse(""), None);
        assert_eq!(Profile::parse(&"a".repeat(65)), None);
        assert!(Profile::parse(&"a".repeat(64)).is_some());
        assert_eq!(KeySpec::Client(spki).mode(), "client");
        assert_eq!(KeySpec::Server(KeyType::EcdsaP256).mode(), "server");
        assert_eq!(KeySpec::parse("spki:short"), None);
        assert_eq!(KeySpec::parse("ecdsa"), None);
    }

    #[test]
    fn key_types_round_trip() {
        for key_type in KeyType::ALL {
            assert_eq!(KeyType::parse(key_type.as_str()), Some(key_type));
        }
        assert_eq!(KeyType::parse("ecdsa"), None);
        assert_eq!(KeyType::default(), KeyType::EcdsaP256);
    }
}
