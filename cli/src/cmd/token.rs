//! The bearer token of `serve`: generated when none is given, saved to a
//! file only its owner can read, and found there by `stream`.
//!
//! The default file is `wsdrain/token-PORT` under `$XDG_RUNTIME_DIR` (a
//! per-user tmpfs, mode 0700), else under `$XDG_STATE_HOME`, else under
//! `~/.local/state`. It is keyed by port, so `stream` finds it from the URL
//! alone, and only for a loopback URL: a token for this machine's server is
//! never sent to another host.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bytes of OS randomness in a generated token (256 bits, 64 hex digits).
const TOKEN_BYTES: usize = 32;

/// A new random token, from the OS's RNG.
pub(crate) fn generate() -> std::io::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The default token file of a server on `port` (see the module docs).
pub(crate) fn default_path(port: u16) -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let base = var("XDG_RUNTIME_DIR")
        .or_else(|| var("XDG_STATE_HOME"))
        .or_else(|| var("HOME").map(|home| home.join(".local/state")))?;
    Some(base.join("wsdrain").join(format!("token-{port}")))
}

/// Save `token` to `path` (with a trailing newline), readable by its owner
/// only (0600; a missing parent directory is made 0700). The file is written
/// whole under another name, then renamed, so no reader sees half of it and
/// an old file's permissions never carry over.
pub(crate) fn save(path: &Path, token: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(format!("{token}\n").as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Read a token file: its content without one trailing newline.
pub(crate) fn load(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    Ok(text.to_owned())
}

/// The default token file for a stream URL (`http://HOST:PORT...`), when
/// HOST is a loopback name or address.
pub(crate) fn default_for_url(url: &str) -> Option<PathBuf> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => 80,
        "https" | "wss" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (ip, after) = v6.split_once(']')?;
        (ip, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => default_port,
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback.then(|| default_path(port)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_long_and_differ() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert_eq!(a.len(), 2 * TOKEN_BYTES);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn saved_file_is_private_and_reads_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/token");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        save(&path, "s3cret").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load(&path).unwrap(), "s3cret");
        std::fs::write(&path, "x\r\n").unwrap();
        assert_eq!(load(&path).unwrap(), "x");
    }

    #[test]
    fn only_loopback_urls_get_a_default_file() {
        let found = |url: &str| default_for_url(url).is_some();
        if default_path(1).is_none() {
            return; // no HOME at all: nothing to find
        }
        assert!(found("http://127.0.0.1:4000"));
        assert!(found("http://localhost:4000/x"));
        assert!(found("ws://[::1]:4000"));
        assert!(!found("http://example.com:4000"));
        assert!(!found("http://10.0.0.1:4000"));
        assert!(!found("ftp://127.0.0.1:4000"));
        assert_eq!(default_for_url("http://127.0.0.1:4000"), default_path(4000));
    }
}
