//! The HTTP side of a connection: read the request head, route it, check
//! the token, and either upgrade to a WebSocket or answer with an error.
//!
//! Done by hand (with `httparse`) rather than by tungstenite's server
//! handshake, because tungstenite validates the upgrade headers before its
//! callback runs: a plain `GET` without upgrade headers would get no HTTP
//! answer at all, where this server must say 401 or 404.

use std::net::IpAddr;
use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::Shared;

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Most request headers accepted (more: 431).
const MAX_HEADERS: usize = 64;
/// Bytes read from the socket at once. tungstenite's default (128 KiB) is
/// allocated and zeroed per connection, which made it most of an idle
/// connection's memory; clients send small messages, and a larger one grows
/// the buffer as needed.
const READ_BUFFER: usize = 8 * 1024;
/// Bytes the socket writes at once; [`ServerConfig::max_write_buffer`](super::ServerConfig::max_write_buffer)
/// bounds what may wait unsent.
const WRITE_BUFFER: usize = 64 * 1024;

/// How a handshake ended.
pub(crate) enum Outcome {
    /// Upgraded: the WebSocket, and the connection's slot (released on drop).
    Upgraded(Box<WebSocketStream<TcpStream>>, OwnedSemaphorePermit),
    /// Answered with an HTTP error (status given), connection closed.
    Refused(u16, &'static str),
}

/// Run the server side of the handshake on `tcp`.
pub(crate) async fn accept(shared: &Shared, mut tcp: TcpStream) -> std::io::Result<Outcome> {
    let mut buf = Vec::with_capacity(1024);
    let head_len = loop {
        if buf.len() >= MAX_HEAD {
            return refuse(tcp, Refusal::HeadTooLarge).await;
        }
        let mut chunk = [0u8; 2048];
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => break len,
            Ok(httparse::Status::Partial) => continue,
            Err(httparse::Error::TooManyHeaders) => {
                return refuse(tcp, Refusal::TooManyHeaders).await;
            }
            Err(_) => return refuse(tcp, Refusal::BadRequest).await,
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    if req.parse(&buf[..head_len]).is_err() {
        return refuse(tcp, Refusal::BadRequest).await;
    }
    let path = req.path.unwrap_or("");
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    if path != wsdrain::STREAM_PATH {
        return refuse(tcp, Refusal::NotFound).await;
    }
    if req.method != Some("GET") {
        return refuse(tcp, Refusal::MethodNotAllowed).await;
    }
    let header = |name: &str| -> Vec<&[u8]> {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect()
    };
    let config = &shared.config;
    // Browsers do not apply CORS to WebSockets: these two checks are what keep
    // a web page the user visits away from the shell, token or not.
    if !host_allowed(&header("host"), shared) {
        super::bump(&shared.counters.forbidden, 1);
        return refuse(tcp, Refusal::ForeignHost).await;
    }
    if !origin_allowed(&header("origin"), &config.allowed_origins) {
        super::bump(&shared.counters.forbidden, 1);
        return refuse(tcp, Refusal::ForeignOrigin).await;
    }
    if let Some(token) = &config.token
        && !authorized(&header("authorization"), token)
    {
        super::bump(&shared.counters.unauthorized, 1);
        return refuse(tcp, Refusal::Unauthorized).await;
    }
    if let Some(id) = &config.instance_id
        && header("x-instance-id")
            .iter()
            .any(|v| v.trim_ascii() != id.as_bytes())
    {
        return refuse(tcp, Refusal::OtherInstance).await;
    }
    let has_token = |name: &str, token: &str| {
        header(name).iter().any(|v| {
            std::str::from_utf8(v)
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let key = header("sec-websocket-key");
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") || key.len() != 1 {
        return refuse(tcp, Refusal::NotAnUpgrade).await;
    }
    if header("sec-websocket-version") != [b"13"] {
        return refuse(tcp, Refusal::WrongVersion).await;
    }
    if buf.len() > head_len {
        // A client must wait for the 101 before it sends frames.
        return refuse(tcp, Refusal::BadRequest).await;
    }
    let Ok(slot) = shared.slots.clone().try_acquire_owned() else {
        super::bump(&shared.counters.over_capacity, 1);
        return refuse(tcp, Refusal::Busy(config.max_connections)).await;
    };
    let accept = derive_accept_key(key[0]);
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    tcp.write_all(response.as_bytes()).await?;
    let size = config.max_message_size;
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(size))
        .max_frame_size(Some(size))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        // Unbounded by default: a peer that sends pings and reads nothing
        // would make every pong pile up here.
        .max_write_buffer_size(config.max_write_buffer.max(2 * WRITE_BUFFER));
    let ws = WebSocketStream::from_raw_socket(tcp, Role::Server, Some(ws_config)).await;
    Ok(Outcome::Upgraded(Box::new(ws), slot))
}

/// Why a request is not upgraded; each has its status and a short body.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    BadRequest,
    HeadTooLarge,
    TooManyHeaders,
    NotFound,
    MethodNotAllowed,
    ForeignHost,
    ForeignOrigin,
    Unauthorized,
    OtherInstance,
    NotAnUpgrade,
    WrongVersion,
    Busy(usize),
}

impl Refusal {
    fn status(self) -> (u16, &'static str) {
        match self {
            Refusal::BadRequest => (400, "Bad Request"),
            Refusal::HeadTooLarge | Refusal::TooManyHeaders => {
                (431, "Request Header Fields Too Large")
            }
            Refusal::NotFound | Refusal::OtherInstance => (404, "Not Found"),
            Refusal::MethodNotAllowed => (405, "Method Not Allowed"),
            Refusal::ForeignHost | Refusal::ForeignOrigin => (403, "Forbidden"),
            Refusal::Unauthorized => (401, "Unauthorized"),
            Refusal::NotAnUpgrade | Refusal::WrongVersion => (426, "Upgrade Required"),
            Refusal::Busy(_) => (503, "Service Unavailable"),
        }
    }

    /// What the log says.
    fn reason(self) -> &'static str {
        match self {
            Refusal::BadRequest => "bad request",
            Refusal::HeadTooLarge => "request head too large",
            Refusal::TooManyHeaders => "too many request headers",
            Refusal::NotFound => "unknown path",
            Refusal::MethodNotAllowed => "method not allowed",
            Refusal::ForeignHost => "Host is not this server (DNS rebinding?)",
            Refusal::ForeignOrigin => "Origin not allowed (a web page?)",
            Refusal::Unauthorized => "missing or wrong token",
            Refusal::OtherInstance => "X-Instance-ID is another instance's",
            Refusal::NotAnUpgrade => "not a WebSocket upgrade",
            Refusal::WrongVersion => "unsupported WebSocket version",
            Refusal::Busy(_) => "max_connections reached",
        }
    }

    fn body(self) -> String {
        let (status, text) = self.status();
        match self {
            Refusal::ForeignHost => format!(
                "{status} {text}: Host not allowed (use a loopback address, or start the server with --allow-host)\n"
            ),
            Refusal::ForeignOrigin => format!(
                "{status} {text}: Origin not allowed (start the server with --allow-origin to allow it)\n"
            ),
            Refusal::Busy(max) => {
                format!("{status} {text}: too many connections (at most {max}); retry later\n")
            }
            Refusal::OtherInstance => format!("{status} {text}: no such instance\n"),
            _ => format!("{status} {text}\n"),
        }
    }

    fn extra_headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Refusal::MethodNotAllowed => &[("Allow", "GET")],
            Refusal::Unauthorized => &[("WWW-Authenticate", "Bearer")],
            Refusal::NotAnUpgrade => &[("Upgrade", "websocket"), ("Connection", "Upgrade")],
            Refusal::WrongVersion => &[("Sec-WebSocket-Version", "13")],
            Refusal::Busy(_) => &[("Retry-After", "1")],
            _ => &[],
        }
    }
}

/// Whether the `Host` header names this server: a loopback name or address,
/// the bound address (any IP literal when bound to an unspecified address),
/// or a name from `allowed_hosts`. A name an attacker controls (DNS
/// rebinding) is none of these.
fn host_allowed(values: &[&[u8]], shared: &Shared) -> bool {
    let [value] = values else {
        return false;
    };
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let Some(host) = host_name(value.trim()) else {
        return false;
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || shared.config.allowed_hosts.contains(&host) {
        return true;
    }
    let bound = shared.local_addr.ip();
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback() || ip == bound || bound.is_unspecified(),
        Err(_) => false,
    }
}

/// The host part of a `Host` header value (`name`, `name:port`, `[v6]:port`).
fn host_name(value: &str) -> Option<&str> {
    if let Some(rest) = value.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        return (after.is_empty() || after.strip_prefix(':').is_some_and(is_port)).then_some(ip);
    }
    match value.split_once(':') {
        Some((name, port)) if is_port(port) && !name.is_empty() => Some(name),
        Some(_) => None,
        None => (!value.is_empty()).then_some(value),
    }
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Whether the `Origin` header passes: absent (not a browser), or exactly
/// one value on the allow-list. `null` (a sandboxed page, a file) never does.
fn origin_allowed(values: &[&[u8]], allowed: &[String]) -> bool {
    match values {
        [] => true,
        [value] => std::str::from_utf8(value).is_ok_and(|v| {
            let v = v.trim().trim_end_matches('/').to_ascii_lowercase();
            allowed.contains(&v)
        }),
        _ => false,
    }
}

/// Whether exactly one `Authorization: Bearer <token>` header carries `token`
/// (the token compared in constant time).
fn authorized(values: &[&[u8]], token: &str) -> bool {
    let [value] = values else {
        return false;
    };
    let Some((scheme, given)) = value.split_at_checked(7) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return false;
    }
    let given = given.trim_ascii();
    // `ct_eq` on slices of different lengths is false at once: that leaks
    // only the length, which a token's strength does not rest on.
    bool::from(given.ct_eq(token.as_bytes()))
}

async fn refuse(mut tcp: TcpStream, refusal: Refusal) -> std::io::Result<Outcome> {
    let (status, reason) = refusal.status();
    let body = refusal.body();
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in refusal.extra_headers() {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&body);
    tokio::time::timeout(Duration::from_secs(1), async {
        tcp.write_all(response.as_bytes()).await?;
        tcp.shutdown().await
    })
    .await
    .ok();
    Ok(Outcome::Refused(status, refusal.reason()))
}

#[cfg(test)]
mod tests {
    use super::{authorized, host_name, origin_allowed};

    #[test]
    fn host_names() {
        assert_eq!(host_name("localhost:80"), Some("localhost"));
        assert_eq!(host_name("127.0.0.1"), Some("127.0.0.1"));
        assert_eq!(host_name("[::1]:4000"), Some("::1"));
        assert_eq!(host_name("[::1]"), Some("::1"));
        assert_eq!(host_name("evil.example:4000"), Some("evil.example"));
        assert_eq!(host_name("::1"), None);
        assert_eq!(host_name(":80"), None);
        assert_eq!(host_name("a:b"), None);
        assert_eq!(host_name(""), None);
    }

    #[test]
    fn origins() {
        let allowed = vec!["https://app.example".to_owned()];
        assert!(origin_allowed(&[], &allowed));
        assert!(origin_allowed(&[b"https://APP.example/"], &allowed));
        assert!(!origin_allowed(&[b"https://evil.example"], &allowed));
        assert!(!origin_allowed(&[b"null"], &allowed));
        assert!(!origin_allowed(
            &[b"https://app.example", b"https://app.example"],
            &allowed
        ));
    }

    #[test]
    fn bearer_tokens() {
        assert!(authorized(&[b"Bearer s3cret"], "s3cret"));
        assert!(authorized(&[b"bearer s3cret "], "s3cret"));
        assert!(!authorized(&[b"Bearer s3cre"], "s3cret"));
        assert!(!authorized(&[b"Bearer s3cretX"], "s3cret"));
        assert!(!authorized(&[b"Basic s3cret"], "s3cret"));
        assert!(!authorized(&[b"Bearer"], "s3cret"));
        assert!(!authorized(&[], "s3cret"));
        assert!(!authorized(&[b"Bearer s3cret", b"Bearer s3cret"], "s3cret"));
    }
}
