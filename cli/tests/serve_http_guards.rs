//! `wsdrain serve` against hostile upgrade requests, sent as raw HTTP over
//! 127.0.0.1: web pages (foreign `Origin`, DNS rebinding `Host`), missing
//! tokens, too many connections, too many headers, another instance's id.
#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::*;

/// What a web page would do: upgrade, then ask the shell to touch a file.
fn attack(serve: &Serve, extra: &[(String, String)], marker: &str) -> (u16, String) {
    let (status, response, mut tcp) = upgrade(serve.addr, extra);
    if status == 101 {
        use std::io::Write;
        tcp.write_all(&shell_input(&format!("touch {marker}; echo to\"\"uched\n")))
            .unwrap();
        let _ = expect_shell_output(&mut tcp, "touched");
    }
    (status, response)
}

#[test]
fn web_pages_get_no_shell_with_or_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [&[][..], &["--insecure-no-auth"][..]] {
        let serve = Serve::start(dir.path(), mode);
        let port = serve.addr.port();
        let evil_host = format!("evil.example:{port}");
        let evil_origin = format!("http://evil.example:{port}");
        let mut cases = vec![
            (
                "foreign origin",
                headers(&[("Origin", "https://evil.example")]),
            ),
            ("null origin", headers(&[("Origin", "null")])),
            (
                "dns rebinding",
                headers(&[("Host", &evil_host), ("Origin", &evil_origin)]),
            ),
            ("rebinding, no origin", headers(&[("Host", &evil_host)])),
            (
                "two origins",
                headers(&[
                    ("Origin", "https://evil.example"),
                    ("Origin", "https://evil.example"),
                ]),
            ),
        ];
        // Even a page that somehow knows the token is refused.
        for (_, headers) in &mut cases {
            headers.extend(serve.auth());
        }
        for (n, (what, headers)) in cases.iter().enumerate() {
            let marker = format!("pwned-{n}");
            let (status, response) = attack(&serve, headers, &marker);
            assert_eq!(status, 403, "{what} ({mode:?}): {response}");
            assert!(
                response.contains("not allowed"),
                "{what}: the body says why: {response}"
            );
        }
        std::thread::sleep(Duration::from_millis(300));
        let touched: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(touched.is_empty(), "a page ran commands: {touched:?}");

        // Non-browser clients (no Origin) with the loopback names pass.
        for host in [
            "localhost",
            &format!("127.0.0.1:{port}"),
            &format!("LOCALHOST:{port}"),
        ] {
            let mut h = headers(&[("Host", host)]);
            h.extend(serve.auth());
            assert_eq!(upgrade(serve.addr, &h).0, 101, "Host: {host}");
        }
    }
}

#[test]
fn allowed_origin_and_host_pass() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &[
            "--allow-origin",
            "https://app.example",
            "--allow-host",
            "box.example",
        ],
    );
    let port = serve.addr.port();
    let mut ok = headers(&[
        ("Origin", "https://app.example"),
        ("Host", &format!("box.example:{port}")),
    ]);
    ok.extend(serve.auth());
    assert_eq!(upgrade(serve.addr, &ok).0, 101);
    let mut other = headers(&[("Origin", "https://app.example.evil")]);
    other.extend(serve.auth());
    assert_eq!(upgrade(serve.addr, &other).0, 403);
}

#[test]
fn auth_is_on_by_default_with_a_private_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let token = serve
        .token
        .clone()
        .unwrap_or_else(|| panic!("no token line: {:?}", serve.token_line));
    assert!(token.len() >= 32, "at least 128 bits: {token}");
    assert!(
        !serve.stderr().contains(&token),
        "the token must not reach the log"
    );
    let file = runtime_dir()
        .join("wsdrain")
        .join(format!("token-{}", serve.addr.port()));
    assert!(
        serve.token_line.contains(file.to_str().unwrap()),
        "{}",
        serve.token_line
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{token}\n")
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // No token: 401, as an attacker without the file gets.
    let (status, response, _) = upgrade(serve.addr, &[]);
    assert_eq!(status, 401, "{response}");
    let (status, _, _) = upgrade(serve.addr, &headers(&[("Authorization", "Bearer 00")]));
    assert_eq!(status, 401);
    assert_eq!(upgrade(serve.addr, &serve.auth()).0, 101);

    // `stream` finds the token by itself (loopback URL, same port)...
    let stream = |extra: &[&str]| {
        Command::new(BIN)
            .args([
                "stream",
                "--url",
                &serve.url(),
                "--no-stdin",
                "--connect-timeout",
                "10s",
            ])
            .args(extra)
            .env_remove("WSDRAIN_TOKEN")
            .env("XDG_RUNTIME_DIR", runtime_dir())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let connected = |child: std::process::Child| {
        let mut child = child;
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        use std::io::BufRead;
        stdout.read_line(&mut line).unwrap();
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        (
            line,
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (line, _, stderr) = connected(stream(&[]));
    assert!(line.contains("\"connected\""), "{line:?} {stderr}");
    // ...and from --token-file.
    let elsewhere = tempfile::tempdir().unwrap();
    let path = elsewhere.path().join("tok");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    let (line, _, stderr) = connected(stream(&["--token-file", path.to_str().unwrap()]));
    assert!(line.contains("\"connected\""), "{line:?} {stderr}");
    std::fs::write(&path, "wrong\n").unwrap();
    let (line, code, _) = connected(stream(&["--token-file", path.to_str().unwrap()]));
    assert_eq!((line.as_str(), code), ("", Some(3)));
}

#[test]
fn serve_writes_the_token_file_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("nested/serve-token");
    let serve = Serve::start(dir.path(), &["--token-file", path.to_str().unwrap()]);
    let token = serve.token.clone().expect("token line");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{token}\n")
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn no_auth_needs_its_flag_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &["--insecure-no-auth"]);
    assert!(serve.token.is_none());
    assert!(serve.token_line.contains("WARNING"), "{}", serve.token_line);
    assert_eq!(upgrade(serve.addr, &[]).0, 101);
    wait_until("the warning is logged", PATIENCE, || {
        serve.stderr().contains("no authentication")
    });
    // Still never on a non-loopback address.
    let out = Command::new(BIN)
        .args([
            "serve",
            "--insecure-no-auth",
            "--addr",
            "0.0.0.0:0",
            "--workspace",
        ])
        .arg(dir.path())
        .env("XDG_RUNTIME_DIR", runtime_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn connections_past_the_cap_get_503() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &["--max-connections", "3"]);
    let mut open: Vec<_> = (0..3)
        .map(|_| {
            let (status, response, tcp) = upgrade(serve.addr, &serve.auth());
            assert_eq!(status, 101, "{response}");
            tcp
        })
        .collect();
    let mut refused = 0;
    for _ in 0..5 {
        let (status, response, _) = upgrade(serve.addr, &serve.auth());
        assert_eq!(status, 503, "{response}");
        assert!(response.contains("too many connections"), "{response}");
        refused += 1;
    }
    eprintln!("connections refused past the cap of 3: {refused} of 5 (all)");
    // A slot frees when a connection ends.
    drop(open.pop());
    wait_until("a slot is free again", PATIENCE, || {
        let (status, _, tcp) = upgrade(serve.addr, &serve.auth());
        if status == 101 {
            open.push(tcp);
        }
        status == 101
    });
}

#[test]
fn too_many_headers_get_431() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let mut many = serve.auth();
    for i in 0..65 {
        many.push((format!("X-Filler-{i}"), "x".into()));
    }
    let (status, response, _) = upgrade(serve.addr, &many);
    assert_eq!(status, 431, "{response}");
}

#[test]
fn another_instance_id_gets_404() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &["--instance-id", "exec-1"]);
    let with = |id: Option<&str>| {
        let mut h = serve.auth();
        if let Some(id) = id {
            h.push(("X-Instance-ID".into(), id.into()));
        }
        upgrade(serve.addr, &h).0
    };
    assert_eq!(with(Some("exec-2")), 404);
    assert_eq!(with(Some("exec-1")), 101);
    assert_eq!(with(None), 101);
}

/// While the server is out of file descriptors, "accept failed" is logged at
/// most once a second (it was logged ten times a second).
#[test]
fn accept_errors_are_logged_at_most_once_a_second() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start_with(dir.path(), &[], |command| {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 48,
                    rlim_max: 48,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    // Connections that never finish their request hold a descriptor each
    // (for the 10 s handshake timeout); the rest wait in the backlog.
    let mut idle = Vec::new();
    for _ in 0..80 {
        idle.push(std::net::TcpStream::connect(serve.addr).unwrap());
    }
    wait_until("accept fails", PATIENCE, || {
        serve.stderr().contains("accept failed")
    });
    let before = serve.stderr().matches("accept failed").count();
    std::thread::sleep(Duration::from_secs(3));
    let logged = serve.stderr().matches("accept failed").count() - before;
    eprintln!("'accept failed' lines in 3 s of EMFILE: {logged}");
    assert!(
        logged <= 4,
        "logged {logged} times in 3 s:\n{}",
        serve.stderr()
    );
    drop(idle);
}
