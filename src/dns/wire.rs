//! DNS messages on the wire (RFC 1035 section 4.2): one query or update, over UDP with a TCP
//! retry when the answer is truncated, or over TCP only (updates). Shared by zone discovery, the
//! propagation check and the RFC 2136 provider.

use std::net::SocketAddr;
use std::time::Duration;
use std::{fmt, io};

use hickory_proto::ProtoError;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::DecodeError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Largest UDP answer read (EDNS is not sent, so servers stay under 512 bytes or truncate).
const UDP_BUFFER: usize = 4096;

/// Why a DNS exchange failed: which server, over what, and the error underneath.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The text is not a DNS name hickory can encode.
    #[error("{name:?} is not a DNS name: {source}")]
    Name {
        /// The text as given.
        name: String,
        /// hickory's reason.
        source: ProtoError,
    },
    /// A query could not be encoded.
    #[error("encode a {kind} query for {name}: {source}")]
    Encode {
        /// The record type asked for.
        kind: RecordType,
        /// The name asked about.
        name: String,
        /// hickory's reason.
        source: ProtoError,
    },
    /// The socket failed (connect, send or receive).
    #[error("DNS over {transport} to {server}: {source}")]
    Io {
        /// UDP or TCP.
        transport: Transport,
        /// The server talked to.
        server: SocketAddr,
        /// The socket's error.
        source: io::Error,
    },
    /// No answer in time.
    #[error("{server} did not answer{} within {timeout:?}", transport.over())]
    Timeout {
        /// UDP or TCP.
        transport: Transport,
        /// The server asked.
        server: SocketAddr,
        /// How long it was given.
        timeout: Duration,
    },
    /// The answer is not a DNS message.
    #[error("unreadable answer from {server}: {source}")]
    Unreadable {
        /// The server that answered.
        server: SocketAddr,
        /// hickory's reason.
        source: DecodeError,
    },
    /// The answer carries another message's id (RFC 1035 section 4.1.1).
    #[error("{server} answered another query (id mismatch)")]
    IdMismatch {
        /// The server that answered.
        server: SocketAddr,
    },
    /// A server's host name could not be resolved.
    #[error("cannot resolve {server}: {source}")]
    Resolve {
        /// `host:port` as configured.
        server: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// A server's host name resolves to nothing.
    #[error("{server} resolves to no address")]
    NoAddress {
        /// `host:port` as configured.
        server: String,
    },
}

/// How a message travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// One datagram each way.
    Udp,
    /// Length-prefixed over a connection (RFC 1035 section 4.2.2).
    Tcp,
}

impl Transport {
    /// ` over TCP` for TCP, nothing for UDP (the usual transport goes without saying).
    fn over(self) -> &'static str {
        match self {
            Self::Udp => "",
            Self::Tcp => " over TCP",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
        })
    }
}

/// Sends `query` for `name`/`kind` to `server` and returns the answer (any response code).
pub async fn query(
    server: SocketAddr,
    name: &str,
    kind: RecordType,
    timeout: Duration,
) -> Result<Message, WireError> {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(parse_name(name)?, kind));
    let bytes = message.to_vec().map_err(|source| WireError::Encode {
        kind,
        name: name.to_owned(),
        source,
    })?;
    let answer = exchange_udp(server, &bytes, timeout).await?;
    let mut response = decode(&answer, message.metadata.id, server)?;
    if response.metadata.truncation {
        let answer = exchange_tcp(server, &bytes, timeout).await?;
        response = decode(&answer, message.metadata.id, server)?;
    }
    Ok(response)
}

/// The TXT strings of `name` at `server` (each record's strings joined, RFC 7208 style).
pub async fn txt_values(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<String>, WireError> {
    let response = query(server, name, RecordType::TXT, timeout).await?;
    Ok(response
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|part| String::from_utf8_lossy(part).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect())
}

/// Sends raw message bytes over TCP (two-byte length prefix, RFC 1035 section 4.2.2) and
/// returns the raw answer.
pub async fn exchange_tcp(
    server: SocketAddr,
    bytes: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, WireError> {
    let work = async {
        let mut stream = TcpStream::connect(server).await?;
        let len = u16::try_from(bytes.len())
            .map_err(|_| io::Error::other("message longer than 65535 bytes"))?;
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(bytes);
        stream.write_all(&framed).await?;
        let mut prefix = [0u8; 2];
        stream.read_exact(&mut prefix).await?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        stream.read_exact(&mut answer).await?;
        Ok::<_, io::Error>(answer)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(source)) => Err(WireError::Io {
            transport: Transport::Tcp,
            server,
            source,
        }),
        Err(_) => Err(WireError::Timeout {
            transport: Transport::Tcp,
            server,
            timeout,
        }),
    }
}

async fn exchange_udp(
    server: SocketAddr,
    bytes: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, WireError> {
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let work = async {
        let socket = UdpSocket::bind(local).await?;
        socket.connect(server).await?;
        socket.send(bytes).await?;
        let mut buffer = vec![0u8; UDP_BUFFER];
        let len = socket.recv(&mut buffer).await?;
        buffer.truncate(len);
        Ok::<_, io::Error>(buffer)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(source)) => Err(WireError::Io {
            transport: Transport::Udp,
            server,
            source,
        }),
        Err(_) => Err(WireError::Timeout {
            transport: Transport::Udp,
            server,
            timeout,
        }),
    }
}

/// Decodes an answer and checks that it answers the message with `id`.
pub fn decode(answer: &[u8], id: u16, server: SocketAddr) -> Result<Message, WireError> {
    let message =
        Message::from_vec(answer).map_err(|source| WireError::Unreadable { server, source })?;
    if message.metadata.id != id {
        return Err(WireError::IdMismatch { server });
    }
    Ok(message)
}

/// A fully qualified DNS name from `text` (with or without the trailing dot).
pub fn parse_name(text: &str) -> Result<Name, WireError> {
    let mut name = Name::from_ascii(text).map_err(|source| WireError::Name {
        name: text.to_owned(),
        source,
    })?;
    name.set_fqdn(true);
    Ok(name)
}

/// `name` in certfleet's form: lowercase, no trailing dot.
pub fn plain(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// Resolves `host:port` (a name or an address) to one socket address.
pub async fn resolve_server(server: &str) -> Result<SocketAddr, WireError> {
    if let Ok(addr) = server.parse() {
        return Ok(addr);
    }
    tokio::net::lookup_host(server)
        .await
        .map_err(|source| WireError::Resolve {
            server: server.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| WireError::NoAddress {
            server: server.to_owned(),
        })
}
