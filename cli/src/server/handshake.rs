//! The HTTP side of a connection: read the request head, route it, check
//! the token, and either upgrade to a WebSocket or answer with an error.
//!
//! Done by hand (with `httparse`) rather than by tungstenite's server
//! handshake, because tungstenite validates the upgrade headers before its
//! callback runs: a plain `GET` without upgrade headers would get no HTTP
//! answer at all, where this server must say 401 or 404.

use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::Shared;

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// How a handshake ended.
pub(crate) enum Outcome {
    /// Upgraded: the WebSocket.
    Upgraded(Box<WebSocketStream<TcpStream>>),
    /// Answered with an HTTP error (status given), connection closed.
    Refused(u16),
}

/// Run the server side of the handshake on `tcp`.
pub(crate) async fn accept(shared: &Shared, mut tcp: TcpStream) -> std::io::Result<Outcome> {
    let mut buf = Vec::with_capacity(1024);
    let head_len = loop {
        if buf.len() >= MAX_HEAD {
            return refuse(tcp, 431, "Request Header Fields Too Large", &[]).await;
        }
        let mut chunk = [0u8; 2048];
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => break len,
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return refuse(tcp, 400, "Bad Request", &[]).await,
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    if req.parse(&buf[..head_len]).is_err() {
        return refuse(tcp, 400, "Bad Request", &[]).await;
    }
    let path = req.path.unwrap_or("");
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    if path != wsdrain::STREAM_PATH {
        return refuse(tcp, 404, "Not Found", &[]).await;
    }
    if req.method != Some("GET") {
        return refuse(tcp, 405, "Method Not Allowed", &[("Allow", "GET")]).await;
    }
    let header = |name: &str| -> Vec<&[u8]> {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect()
    };
    if let Some(token) = &shared.config.token
        && !authorized(&header("authorization"), token)
    {
        super::bump(&shared.counters.unauthorized, 1);
        return refuse(tcp, 401, "Unauthorized", &[("WWW-Authenticate", "Bearer")]).await;
    }
    let has_token = |name: &str, token: &str| {
        header(name).iter().any(|v| {
            std::str::from_utf8(v)
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let key = header("sec-websocket-key");
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") || key.len() != 1 {
        return refuse(
            tcp,
            426,
            "Upgrade Required",
            &[("Upgrade", "websocket"), ("Connection", "Upgrade")],
        )
        .await;
    }
    if header("sec-websocket-version") != [b"13"] {
        return refuse(
            tcp,
            426,
            "Upgrade Required",
            &[("Sec-WebSocket-Version", "13")],
        )
        .await;
    }
    if buf.len() > head_len {
        // A client must wait for the 101 before it sends frames.
        return refuse(tcp, 400, "Bad Request", &[]).await;
    }
    let accept = derive_accept_key(key[0]);
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    tcp.write_all(response.as_bytes()).await?;
    let size = shared.config.max_message_size;
    let config = WebSocketConfig::default()
        .max_message_size(Some(size))
        .max_frame_size(Some(size));
    let ws = WebSocketStream::from_raw_socket(tcp, Role::Server, Some(config)).await;
    Ok(Outcome::Upgraded(Box::new(ws)))
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

async fn refuse(
    mut tcp: TcpStream,
    status: u16,
    reason: &str,
    extra: &[(&str, &str)],
) -> std::io::Result<Outcome> {
    let body = format!("{status} {reason}\n");
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in extra {
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
    Ok(Outcome::Refused(status))
}

#[cfg(test)]
mod tests {
    use super::authorized;

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
