//! DNS messages on the wire (RFC 1035 section 4.2): one query or update, over UDP with a TCP
//! retry when the answer is truncated, or over TCP only (updates). Shared by zone discovery, the
//! propagation check and the RFC 2136 provider.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Largest UDP answer read (EDNS is not sent, so servers stay under 512 bytes or truncate).
const UDP_BUFFER: usize = 4096;

/// Sends `query` for `name`/`kind` to `server` and returns the answer (any response code).
pub async fn query(
    server: SocketAddr,
    name: &str,
    kind: RecordType,
    timeout: Duration,
) -> Result<Message, String> {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(parse_name(name)?, kind));
    let bytes = message
        .to_vec()
        .map_err(|e| format!("encode a {kind} query for {name}: {e}"))?;
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
) -> Result<Vec<String>, String> {
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
) -> Result<Vec<u8>, String> {
    let work = async {
        let mut stream = TcpStream::connect(server).await?;
        let len = u16::try_from(bytes.len())
            .map_err(|_| std::io::Error::other("message longer than 65535 bytes"))?;
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(bytes);
        stream.write_all(&framed).await?;
        let mut prefix = [0u8; 2];
        stream.read_exact(&mut prefix).await?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        stream.read_exact(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(format!("DNS over TCP to {server}: {e}")),
        Err(_) => Err(format!(
            "{server} did not answer over TCP within {timeout:?}"
        )),
    }
}

async fn exchange_udp(
    server: SocketAddr,
    bytes: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, String> {
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
        Ok::<_, std::io::Error>(buffer)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(format!("DNS over UDP to {server}: {e}")),
        Err(_) => Err(format!("{server} did not answer within {timeout:?}")),
    }
}

/// Decodes an answer and checks that it answers the message with `id`.
pub fn decode(answer: &[u8], id: u16, server: SocketAddr) -> Result<Message, String> {
    let message =
        Message::from_vec(answer).map_err(|e| format!("unreadable answer from {server}: {e}"))?;
    if message.metadata.id != id {
        return Err(format!("{server} answered another query (id mismatch)"));
    }
    Ok(message)
}

/// A fully qualified DNS name from `text` (with or without the trailing dot).
pub fn parse_name(text: &str) -> Result<Name, String> {
    let mut name =
        Name::from_ascii(text).map_err(|e| format!("{text:?} is not a DNS name: {e}"))?;
    name.set_fqdn(true);
    Ok(name)
}

/// `name` in certfleet's form: lowercase, no trailing dot.
pub fn plain(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// Resolves `host:port` (a name or an address) to one socket address.
pub async fn resolve_server(server: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = server.parse() {
        return Ok(addr);
    }
    tokio::net::lookup_host(server)
        .await
        .map_err(|e| format!("cannot resolve {server}: {e}"))?
        .next()
        .ok_or_else(|| format!("{server} resolves to no address"))
}
