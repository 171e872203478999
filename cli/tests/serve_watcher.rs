//! The workspace watcher of `wsdrain serve` against a workspace that links
//! outside itself, and one that is deleted and created again.
#![cfg(unix)]

mod common;

use std::time::Duration;

use common::*;

fn is_change(v: &serde_json::Value, path: &str) -> bool {
    v["type"] == "file_change" && v["file_change"]["path"] == path
}

/// A symbolic link to a directory outside the workspace is not followed:
/// nothing that happens out there is published.
#[test]
fn symlinks_are_not_followed_out_of_the_workspace() {
    let outside = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("outside-link")).unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let (status, _, mut tcp) = upgrade(serve.addr, &serve.auth());
    assert_eq!(status, 101);
    expect_json(&mut tcp, "connected", |v| v["type"] == "connected");
    std::fs::write(outside.path().join("secret.txt"), "x").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(dir.path().join("inside.txt"), "x").unwrap();
    let first = expect_json(&mut tcp, "a file_change", |v| v["type"] == "file_change");
    assert!(
        is_change(&first, "inside.txt"),
        "published a change outside the workspace: {first}"
    );
}

/// Deleting the workspace is reported to clients and logged; when it is
/// created again, events flow again (after a `refresh`).
#[test]
fn a_deleted_workspace_is_reported_and_watched_again_when_back() {
    let parent = tempfile::tempdir().unwrap();
    let ws = parent.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    let serve = Serve::start(&ws, &[]);
    let (status, _, mut tcp) = upgrade(serve.addr, &serve.auth());
    assert_eq!(status, 101);
    expect_json(&mut tcp, "connected", |v| v["type"] == "connected");
    // The shell started: only the deletion can be reported now.
    use std::io::Write;
    tcp.write_all(&shell_input("echo re\"\"ady\n")).unwrap();
    expect_shell_output(&mut tcp, "ready");

    std::fs::remove_dir_all(&ws).unwrap();
    let error = expect_json(&mut tcp, "an error", |v| v["type"] == "error");
    assert!(
        error["error"].as_str().unwrap().contains("deleted"),
        "{error}"
    );
    wait_until("the deletion is logged", PATIENCE, || {
        serve.stderr().contains("the workspace was deleted")
    });

    std::fs::create_dir(&ws).unwrap();
    expect_json(&mut tcp, "a refresh", |v| {
        v["type"] == "file_change" && v["file_change"]["operation"] == "refresh"
    });
    std::fs::write(ws.join("again.txt"), "x").unwrap();
    expect_json(&mut tcp, "the new file's event", |v| {
        is_change(v, "again.txt")
    });
}
