//! Hand-written wire fixtures for the workspace stream protocol: decode each one,
//! check every field, re-encode and compare with the fixture as JSON values.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use wsdrain::protocol::{
    DecodeError, Envelope, FileChange, FileInfo, FileOperation, GitStatus, Message, ProcessKind,
    ProcessOutput, ProcessState, ProcessStatus, ProcessStream,
};

macro_rules! fixture {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("fixtures/protocol/", $name, ".json")),
        )
    };
}

/// Every fixture file, by name. `fixture_directory_is_covered` checks the list is complete.
const FIXTURES: &[(&str, &str)] = &[
    fixture!("connected"),
    fixture!("shell_output"),
    fixture!("shell_exit"),
    fixture!("shell_input"),
    fixture!("shell_resize"),
    fixture!("ping"),
    fixture!("pong"),
    fixture!("git_status"),
    fixture!("git_commit"),
    fixture!("git_reset"),
    fixture!("branch_switch"),
    fixture!("file_change"),
    fixture!("process_output"),
    fixture!("process_status"),
    fixture!("error"),
    fixture!("unknown_type"),
    fixture!("unknown_fields"),
    fixture!("go_shell_output"),
    fixture!("go_shell_exit"),
    fixture!("go_shell_resize"),
    fixture!("go_process_status"),
    fixture!("go_git_status"),
];

fn fixture(name: &str) -> &'static str {
    FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

fn as_value(text: &str) -> Value {
    serde_json::from_str(text).expect("valid JSON")
}

/// Decodes a fixture from both `&str` and `&[u8]` and checks they agree.
fn decode(name: &str) -> Envelope {
    let text = fixture(name);
    let env = Envelope::decode(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let from_bytes = Envelope::decode_slice(text.as_bytes()).unwrap();
    assert_eq!(env, from_bytes, "{name}: decode and decode_slice differ");
    env
}

/// Encodes `env` and checks it equals the fixture as a JSON value.
fn assert_round_trip(name: &str, env: &Envelope) {
    let encoded = env.encode();
    assert_eq!(
        as_value(&encoded),
        as_value(fixture(name)),
        "{name}: re-encoded message differs from the fixture"
    );
    // And decoding our own output gives the same value again.
    assert_eq!(&Envelope::decode(&encoded).unwrap(), env, "{name}");
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn encode_value(message: Message) -> Value {
    as_value(
        &Envelope {
            timestamp: 1_737_312_000_000,
            message,
        }
        .encode(),
    )
}

// ---------------------------------------------------------------- fixtures

#[test]
fn fixture_directory_is_covered() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/protocol");
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let listed: BTreeSet<String> = FIXTURES.iter().map(|(n, _)| format!("{n}.json")).collect();
    assert_eq!(on_disk, listed);
}

#[test]
fn connected() {
    let env = decode("connected");
    assert_eq!(env.timestamp, 1_737_312_000_123);
    assert_eq!(env.message, Message::Connected);
    assert_eq!(env.message.kind(), "connected");
    assert_round_trip("connected", &env);
}

#[test]
fn shell_output() {
    let env = decode("shell_output");
    assert_eq!(env.timestamp, 1_737_312_001_456);
    let Message::ShellOutput { data } = &env.message else {
        panic!("{:?}", env.message)
    };
    assert_eq!(
        data,
        "\u{1b}[32m~/src/kandev\u{1b}[0m $ ls\r\napps  docs  README.md\r\n"
    );
    assert_eq!(env.message.kind(), "shell_output");
    assert_round_trip("shell_output", &env);
}

#[test]
fn shell_exit() {
    let env = decode("shell_exit");
    assert_eq!(env.timestamp, 1_737_312_099_001);
    assert_eq!(env.message, Message::ShellExit { code: 130 });
    assert_eq!(env.message.kind(), "shell_exit");
    assert_round_trip("shell_exit", &env);
}

#[test]
fn shell_input() {
    let env = decode("shell_input");
    assert_eq!(env.timestamp, 1_737_312_001_000);
    assert_eq!(
        env.message,
        Message::ShellInput {
            data: "git status --short\r".to_owned()
        }
    );
    assert_eq!(env.message.kind(), "shell_input");
    assert_round_trip("shell_input", &env);
}

#[test]
fn shell_resize() {
    let env = decode("shell_resize");
    assert_eq!(env.timestamp, 1_737_312_000_500);
    assert_eq!(
        env.message,
        Message::ShellResize {
            cols: 132,
            rows: 43
        }
    );
    assert_eq!(env.message.kind(), "shell_resize");
    assert_round_trip("shell_resize", &env);
}

#[test]
fn ping_and_pong() {
    let ping = decode("ping");
    assert_eq!(ping.timestamp, 1_737_312_030_000);
    assert_eq!(ping.message, Message::Ping);
    assert_eq!(ping.message.kind(), "ping");
    assert_round_trip("ping", &ping);

    let pong = decode("pong");
    assert_eq!(pong.timestamp, 1_737_312_030_004);
    assert_eq!(pong.message, Message::Pong);
    assert_eq!(pong.message.kind(), "pong");
    assert_round_trip("pong", &pong);
}

#[test]
fn git_status() {
    let env = decode("git_status");
    assert_eq!(env.timestamp, 1_737_312_005_250);
    assert_eq!(env.message.kind(), "git_status");
    let Message::GitStatus(s) = &env.message else {
        panic!("{:?}", env.message)
    };
    assert_eq!(s.timestamp, "2025-01-19T18:40:05.249871Z");
    assert_eq!(s.repository_name, "kandev");
    assert!(!s.is_submodule);
    assert_eq!(
        s.modified,
        strings(&["apps/backend/internal/agentctl/types/types.go", "README.md"])
    );
    assert_eq!(
        s.added,
        strings(&["apps/backend/internal/agentctl/types/streams/shell.go"])
    );
    assert_eq!(s.deleted, strings(&["docs/old-protocol.md"]));
    assert_eq!(s.untracked, strings(&["scratch/notes.txt"]));
    assert_eq!(s.renamed, strings(&["docs/protocol.md"]));
    assert_eq!((s.ahead, s.behind), (3, 1));
    assert_eq!(s.branch, "feat/workspace-stream");
    assert_eq!(s.remote_branch, "origin/feat/workspace-stream");
    assert_eq!((s.remote_ahead, s.remote_behind), (1, 0));
    assert_eq!(
        s.remote_head_commit,
        "9f1c2e4b7a0d3e6f5c8b1a2d4e7f0a3b6c9d2e5f"
    );
    assert_eq!(s.head_commit, "4b7a0d3e6f5c8b1a2d4e7f0a3b6c9d2e5f9f1c2e");
    assert_eq!(s.base_commit, "0d3e6f5c8b1a2d4e7f0a3b6c9d2e5f9f1c2e4b7a");
    assert_eq!(s.comparison_target, "");
    assert_eq!(s.comparison_status, "");
    assert_eq!(s.comparison_error_code, "");
    assert_eq!((s.branch_additions, s.branch_deletions), (212, 37));
    assert!(s.extra.is_empty());

    assert_eq!(
        s.files.keys().map(String::as_str).collect::<Vec<_>>(),
        ["README.md", "docs/protocol.md", "scratch/notes.txt"]
    );
    assert_eq!(
        s.files["README.md"],
        FileInfo {
            path: "README.md".into(),
            status: "modified".into(),
            staged: false,
            additions: 4,
            deletions: 1,
            old_path: String::new(),
            diff: "@@ -1,3 +1,6 @@\n # kandev\n+\n+Workspace stream docs.\n".into(),
            diff_skip_reason: String::new(),
            extra: Map::new(),
        }
    );
    assert_eq!(
        s.files["docs/protocol.md"],
        FileInfo {
            path: "docs/protocol.md".into(),
            status: "renamed".into(),
            staged: true,
            old_path: "docs/old-protocol.md".into(),
            ..FileInfo::default()
        }
    );
    assert_eq!(
        s.files["scratch/notes.txt"],
        FileInfo {
            path: "scratch/notes.txt".into(),
            status: "untracked".into(),
            additions: 120,
            diff_skip_reason: "too_large".into(),
            ..FileInfo::default()
        }
    );
    assert_round_trip("git_status", &env);
}

fn assert_free_form(name: &str, expected_payload: Value) {
    let env = decode(name);
    let payload = match &env.message {
        Message::GitCommit(m) | Message::GitReset(m) | Message::BranchSwitch(m) => m,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(env.message.kind(), name);
    assert_eq!(payload, &object(expected_payload), "{name}");
    assert_round_trip(name, &env);
}

#[test]
fn git_commit() {
    assert_eq!(decode("git_commit").timestamp, 1_737_312_010_777);
    assert_free_form(
        "git_commit",
        json!({
            "timestamp": "2025-01-19T18:40:10.776Z",
            "repository_name": "kandev",
            "commit_sha": "4b7a0d3e6f5c8b1a2d4e7f0a3b6c9d2e5f9f1c2e",
            "parent_sha": "0d3e6f5c8b1a2d4e7f0a3b6c9d2e5f9f1c2e4b7a",
            "message": "agentctl: register stream tasks before publishing",
            "author_name": "Ada Lovelace",
            "author_email": "ada@example.com",
            "files_changed": 3,
            "insertions": 41,
            "deletions": 12,
            "committed_at": "2025-01-19T19:40:09+01:00"
        }),
    );
}

#[test]
fn git_reset() {
    assert_eq!(decode("git_reset").timestamp, 1_737_312_020_000);
    assert_free_form(
        "git_reset",
        json!({
            "timestamp": "2025-01-19T18:40:19.998Z",
            "previous_head": "4b7a0d3e6f5c8b1a2d4e7f0a3b6c9d2e5f9f1c2e",
            "current_head": "0d3e6f5c8b1a2d4e7f0a3b6c9d2e5f9f1c2e4b7a"
        }),
    );
}

#[test]
fn branch_switch() {
    assert_eq!(decode("branch_switch").timestamp, 1_737_312_025_500);
    assert_free_form(
        "branch_switch",
        json!({
            "timestamp": "2025-01-19T18:40:25.499Z",
            "repository_name": "kandev",
            "previous_branch": "feat/workspace-stream",
            "current_branch": "main",
            "current_head": "7e2a9c1d0b3f6e5a8c4d2b1f0e9a7c6d5b4a3f2e",
            "base_commit": "7e2a9c1d0b3f6e5a8c4d2b1f0e9a7c6d5b4a3f2e"
        }),
    );
}

#[test]
fn file_change() {
    let env = decode("file_change");
    assert_eq!(env.timestamp, 1_737_312_006_010);
    assert_eq!(env.message.kind(), "file_change");
    assert_eq!(
        env.message,
        Message::FileChange(Box::new(FileChange {
            timestamp: "2025-01-19T18:40:06.009512345Z".into(),
            repository_name: "kandev".into(),
            path: "apps/backend/internal/agentctl/types/types.go".into(),
            operation: FileOperation::Write,
            extra: Map::new(),
        }))
    );
    assert_round_trip("file_change", &env);
}

#[test]
fn process_output() {
    let env = decode("process_output");
    assert_eq!(env.timestamp, 1_737_312_040_321);
    assert_eq!(env.message.kind(), "process_output");
    assert_eq!(
        env.message,
        Message::ProcessOutput(Box::new(ProcessOutput {
            session_id: "sess_01HQ7Z3K9V2M".into(),
            process_id: "proc_dev_8c1f".into(),
            kind: ProcessKind::Dev,
            stream: ProcessStream::Stderr,
            data: "warning: unused variable `x`\n".into(),
            timestamp: "2025-01-19T18:40:40.32Z".into(),
            extra: Map::new(),
        }))
    );
    assert_round_trip("process_output", &env);
}

#[test]
fn process_status() {
    let env = decode("process_status");
    assert_eq!(env.timestamp, 1_737_312_050_000);
    assert_eq!(env.message.kind(), "process_status");
    assert_eq!(
        env.message,
        Message::ProcessStatus(Box::new(ProcessStatus {
            session_id: "sess_01HQ7Z3K9V2M".into(),
            process_id: "proc_setup_2b7e".into(),
            kind: ProcessKind::Setup,
            script_name: "setup.sh".into(),
            command: "bash ./scripts/setup.sh --ci".into(),
            working_dir: "/workspace/kandev".into(),
            status: ProcessState::Failed,
            exit_code: Some(2),
            timestamp: "2025-01-19T18:40:49.87-05:00".into(),
            extra: Map::new(),
        }))
    );
    assert_round_trip("process_status", &env);
}

#[test]
fn error() {
    let env = decode("error");
    assert_eq!(env.timestamp, 1_737_312_060_000);
    assert_eq!(env.message.kind(), "error");
    assert_eq!(
        env.message,
        Message::Error {
            error: "shell not running: exec /bin/zsh: no such file or directory".into()
        }
    );
    assert_round_trip("error", &env);
}

#[test]
fn unknown_type_round_trips_unchanged() {
    let env = decode("unknown_type");
    assert_eq!(env.timestamp, 1_737_312_070_000);
    assert_eq!(env.message.kind(), "file_list");
    let Message::Unknown { kind, raw } = &env.message else {
        panic!("{:?}", env.message)
    };
    assert_eq!(kind, "file_list");
    assert_eq!(raw, &as_value(fixture("unknown_type")));
    // `data` is an object here, which a known type would reject: unknown types are
    // not checked against the known field shapes.
    assert_eq!(raw["data"], json!({"not": "a string"}));
    assert_round_trip("unknown_type", &env);

    // The raw object wins over the envelope's timestamp on encode.
    let moved = Envelope {
        timestamp: 5,
        message: env.message.clone(),
    };
    assert_eq!(as_value(&moved.encode()), as_value(fixture("unknown_type")));
}

#[test]
fn unknown_fields_survive_in_nested_objects() {
    let env = decode("unknown_fields");
    assert_eq!(env.timestamp, 1_737_312_080_000);
    let Message::ProcessStatus(status) = &env.message else {
        panic!("{:?}", env.message)
    };
    assert_eq!(status.session_id, "sess_01HQ7Z3K9V2M");
    assert_eq!(status.process_id, "proc_custom_91aa");
    assert_eq!(status.kind, ProcessKind::Other("preview".into()));
    assert_eq!(status.script_name, "");
    assert_eq!(status.command, "npm run preview");
    assert_eq!(status.working_dir, "/workspace/kandev/apps/web");
    assert_eq!(status.status, ProcessState::Other("restarting".into()));
    assert_eq!(status.exit_code, None);
    assert_eq!(status.timestamp, "2025-01-19T18:41:20Z");
    assert_eq!(
        status.extra,
        object(json!({
            "pid": 48213,
            "resources": {"cpu_percent": 12.5, "rss_bytes": 73400320, "labels": ["web", "preview"]}
        }))
    );

    // Unknown *top-level* fields are not kept; everything nested is.
    let mut expected = as_value(fixture("unknown_fields"));
    expected.as_object_mut().unwrap().remove("trace_id");
    assert_eq!(as_value(&env.encode()), expected);
}

#[test]
fn unknown_fields_survive_in_git_status_and_file_info() {
    let text = json!({
        "type": "git_status",
        "timestamp": 1,
        "git_status": {
            "timestamp": "2025-01-19T18:40:05Z",
            "modified": ["a.rs"], "added": [], "deleted": [], "untracked": [], "renamed": [],
            "ahead": 0, "behind": 0, "branch": "main", "remote_ahead": 0, "remote_behind": 0,
            "stash_count": 2,
            "conflicts": [{"path": "b.rs", "ours": "x"}],
            "files": {"a.rs": {"path": "a.rs", "status": "modified", "staged": false,
                               "mode_change": "100644 -> 100755"}}
        }
    });
    let env = Envelope::decode(&text.to_string()).unwrap();
    let Message::GitStatus(s) = &env.message else {
        panic!("{:?}", env.message)
    };
    assert_eq!(s.extra["stash_count"], json!(2));
    assert_eq!(s.extra["conflicts"], json!([{"path": "b.rs", "ours": "x"}]));
    assert_eq!(
        s.files["a.rs"].extra,
        object(json!({"mode_change": "100644 -> 100755"}))
    );
    assert_eq!(as_value(&env.encode()), text);
}

#[test]
fn file_operation_strings() {
    for (wire, op) in [
        ("create", FileOperation::Create),
        ("write", FileOperation::Write),
        ("remove", FileOperation::Remove),
        ("rename", FileOperation::Rename),
        ("chmod", FileOperation::Chmod),
        ("refresh", FileOperation::Refresh),
        ("symlink", FileOperation::Other("symlink".into())),
    ] {
        let text = json!({"type": "file_change", "timestamp": 2,
                          "file_change": {"timestamp": "2025-01-19T18:40:06Z", "path": "x", "operation": wire}});
        let env = Envelope::decode(&text.to_string()).unwrap();
        let Message::FileChange(change) = &env.message else {
            panic!("{:?}", env.message)
        };
        assert_eq!(change.operation, op);
        assert_eq!(as_value(&env.encode()), text, "{wire}");
    }
}

// ------------------------------------------------------------- omitempty

#[test]
fn omitempty_top_level_fields() {
    assert_eq!(
        encode_value(Message::ShellOutput {
            data: String::new()
        }),
        json!({"type": "shell_output", "timestamp": 1_737_312_000_000_i64})
    );
    assert_eq!(
        encode_value(Message::ShellInput {
            data: String::new()
        }),
        json!({"type": "shell_input", "timestamp": 1_737_312_000_000_i64})
    );
    assert_eq!(
        encode_value(Message::ShellExit { code: 0 }),
        json!({"type": "shell_exit", "timestamp": 1_737_312_000_000_i64})
    );
    assert_eq!(
        encode_value(Message::ShellExit { code: -1 }),
        json!({"type": "shell_exit", "timestamp": 1_737_312_000_000_i64, "code": -1})
    );
    assert_eq!(
        encode_value(Message::ShellResize { cols: 0, rows: 24 }),
        json!({"type": "shell_resize", "timestamp": 1_737_312_000_000_i64, "rows": 24})
    );
    assert_eq!(
        encode_value(Message::Error {
            error: String::new()
        }),
        json!({"type": "error", "timestamp": 1_737_312_000_000_i64})
    );
    // `timestamp` is always written, even when zero.
    assert_eq!(
        as_value(
            &Envelope {
                timestamp: 0,
                message: Message::Ping
            }
            .encode()
        ),
        json!({"type": "ping", "timestamp": 0})
    );
}

#[test]
fn missing_fields_decode_to_zero_values() {
    let cases = [
        (
            r#"{"type":"shell_output"}"#,
            Message::ShellOutput {
                data: String::new(),
            },
        ),
        (
            r#"{"type":"shell_input"}"#,
            Message::ShellInput {
                data: String::new(),
            },
        ),
        (r#"{"type":"shell_exit"}"#, Message::ShellExit { code: 0 }),
        (
            r#"{"type":"shell_resize"}"#,
            Message::ShellResize { cols: 0, rows: 0 },
        ),
        (
            r#"{"type":"error"}"#,
            Message::Error {
                error: String::new(),
            },
        ),
    ];
    for (text, message) in cases {
        let env = Envelope::decode(text).unwrap();
        assert_eq!(
            env,
            Envelope {
                timestamp: 0,
                message
            },
            "{text}"
        );
    }
}

#[test]
fn omitempty_nested_fields() {
    let status = encode_value(Message::GitStatus(Box::new(GitStatus {
        timestamp: "2025-01-19T18:40:05Z".into(),
        branch: "main".into(),
        ..GitStatus::default()
    })));
    let payload = status["git_status"].as_object().unwrap();
    for absent in [
        "repository_name",
        "is_submodule",
        "remote_branch",
        "remote_head_commit",
        "head_commit",
        "base_commit",
        "comparison_target",
        "comparison_status",
        "comparison_error_code",
        "files",
        "branch_additions",
        "branch_deletions",
    ] {
        assert!(!payload.contains_key(absent), "{absent} should be omitted");
    }
    for present in [
        "timestamp",
        "modified",
        "added",
        "deleted",
        "untracked",
        "renamed",
        "ahead",
        "behind",
        "branch",
        "remote_ahead",
        "remote_behind",
    ] {
        assert!(payload.contains_key(present), "{present} should be present");
    }
    assert_eq!(payload["modified"], json!([]));

    let info = serde_json::to_value(FileInfo {
        path: "a".into(),
        status: "added".into(),
        ..FileInfo::default()
    })
    .unwrap();
    assert_eq!(
        info,
        json!({"path": "a", "status": "added", "staged": false})
    );

    let change = encode_value(Message::FileChange(Box::new(FileChange {
        timestamp: "2025-01-19T18:40:06Z".into(),
        path: "x".into(),
        operation: FileOperation::Remove,
        ..FileChange::default()
    })));
    assert_eq!(
        change["file_change"],
        json!({"timestamp": "2025-01-19T18:40:06Z", "path": "x", "operation": "remove"})
    );

    let process = encode_value(Message::ProcessStatus(Box::new(ProcessStatus {
        kind: ProcessKind::Cleanup,
        status: ProcessState::Running,
        timestamp: "2025-01-19T18:40:06Z".into(),
        ..ProcessStatus::default()
    })));
    let payload = process["process_status"].as_object().unwrap();
    assert!(!payload.contains_key("script_name"));
    assert!(!payload.contains_key("exit_code"));
    // exit_code is a pointer in Go: Some(0) is written, None is not.
    let exited = encode_value(Message::ProcessStatus(Box::new(ProcessStatus {
        status: ProcessState::Exited,
        exit_code: Some(0),
        ..ProcessStatus::default()
    })));
    assert_eq!(exited["process_status"]["exit_code"], json!(0));
}

// ----------------------------------------------------------------- errors

#[test]
fn malformed_json_is_json_error() {
    for text in [
        "",
        "{",
        r#"{"type":"ping""#,
        r#"{"type":"ping",}"#,
        r#"{'type':'ping'}"#,
        r#"{"type":"ping"}{"type":"pong"}"#,
        "\u{feff}{\"type\":\"ping\"}",
    ] {
        let err = Envelope::decode(text).unwrap_err();
        assert!(matches!(err, DecodeError::Json(_)), "{text:?}: {err:?}");
        assert!(err.to_string().starts_with("malformed JSON"), "{err}");
    }
    let err = Envelope::decode_slice(b"{\"type\":\"ping\",\"x\":\"\xc3\x28\"}").unwrap_err();
    assert!(matches!(err, DecodeError::Json(_)), "{err:?}");
}

#[test]
fn non_object_is_not_object() {
    for (text, found) in [
        ("[]", "array"),
        (r#"[{"type":"ping"}]"#, "array"),
        ("\"ping\"", "string"),
        ("42", "number"),
        ("false", "boolean"),
        ("null", "null"),
    ] {
        match Envelope::decode(text) {
            Err(DecodeError::NotObject { found: f }) => assert_eq!(f, found, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn missing_or_ill_typed_type() {
    for text in [r#"{}"#, r#"{"timestamp":1,"data":"x"}"#, r#"{"type":null}"#] {
        assert!(
            matches!(Envelope::decode(text), Err(DecodeError::MissingType)),
            "{text}"
        );
    }
    // Also when other fields are wrong: the missing `type` is reported first.
    assert!(matches!(
        Envelope::decode(r#"{"timestamp":"x"}"#),
        Err(DecodeError::MissingType)
    ));
    for (text, found) in [
        (r#"{"type":1}"#, "number"),
        (r#"{"type":true,"timestamp":1}"#, "boolean"),
        (r#"{"type":["ping"]}"#, "array"),
        (r#"{"type":{}}"#, "object"),
    ] {
        match Envelope::decode(text) {
            Err(DecodeError::InvalidType { found: f }) => assert_eq!(f, found, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn wrong_field_types_are_invalid_fields() {
    let cases = [
        (r#"{"type":"shell_output","data":42}"#, "shell_output"),
        (r#"{"type":"shell_exit","code":"1"}"#, "shell_exit"),
        (
            r#"{"type":"shell_resize","cols":80.5,"rows":24}"#,
            "shell_resize",
        ),
        // Go's `int` takes -80 but not 2^63.
        (
            r#"{"type":"shell_resize","cols":9223372036854775808}"#,
            "shell_resize",
        ),
        (
            r#"{"type":"connected","timestamp":"2025-01-19T18:40:05Z"}"#,
            "connected",
        ),
        (r#"{"type":"error","error":{"message":"x"}}"#, "error"),
        (
            r#"{"type":"git_status","git_status":{"modified":"a.rs"}}"#,
            "git_status",
        ),
        (
            r#"{"type":"git_status","git_status":{"ahead":"3"}}"#,
            "git_status",
        ),
        (
            r#"{"type":"git_status","git_status":{"files":{"a":{"staged":"no"}}}}"#,
            "git_status",
        ),
        (r#"{"type":"git_commit","git_commit":[]}"#, "git_commit"),
        (r#"{"type":"git_reset","git_reset":"HEAD~1"}"#, "git_reset"),
        (
            r#"{"type":"branch_switch","branch_switch":1}"#,
            "branch_switch",
        ),
        (
            r#"{"type":"file_change","file_change":{"operation":7}}"#,
            "file_change",
        ),
        (
            r#"{"type":"process_output","process_output":{"stream":1}}"#,
            "process_output",
        ),
        (
            r#"{"type":"process_status","process_status":{"exit_code":"0"}}"#,
            "process_status",
        ),
    ];
    for (text, kind) in cases {
        match Envelope::decode(text) {
            Err(err @ DecodeError::InvalidFields { kind: k, .. }) => {
                assert_eq!(k, kind, "{text}");
                assert!(err.to_string().contains(&format!("`{kind}`")), "{err}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn missing_payload_object() {
    for kind in [
        "git_status",
        "git_commit",
        "git_reset",
        "branch_switch",
        "file_change",
        "process_output",
        "process_status",
    ] {
        let text = format!(r#"{{"type":"{kind}","timestamp":1}}"#);
        match Envelope::decode(&text) {
            Err(DecodeError::MissingPayload { kind: k }) => assert_eq!(k, kind),
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn unknown_top_level_fields_are_ignored() {
    let env = Envelope::decode(
        r#"{"type":"shell_output","timestamp":3,"data":"x","seq":17,"meta":{"a":[1,{}]}}"#,
    )
    .unwrap();
    assert_eq!(
        env,
        Envelope {
            timestamp: 3,
            message: Message::ShellOutput { data: "x".into() }
        }
    );
}

// ---------------------------------------------------------- robustness

/// Every prefix and many single-byte mutations of every fixture decode without
/// panicking, and whatever decodes re-encodes into something that decodes again.
#[test]
fn mutated_fixtures_never_panic() {
    const BYTES: &[u8] = b"{}[]\",:0-1e.ntf\\ \x00\xff\x80a";
    for (name, text) in FIXTURES {
        let bytes = text.as_bytes();
        for end in 0..=bytes.len() {
            check_no_panic(name, &bytes[..end]);
        }
        for i in 0..bytes.len() {
            for &b in BYTES {
                let mut m = bytes.to_vec();
                m[i] = b;
                check_no_panic(name, &m);
            }
            let mut removed = bytes.to_vec();
            removed.remove(i);
            check_no_panic(name, &removed);
        }
    }
}

fn check_no_panic(name: &str, bytes: &[u8]) {
    if let Ok(env) = Envelope::decode_slice(bytes) {
        let again = Envelope::decode(&env.encode())
            .unwrap_or_else(|e| panic!("{name}: re-encoded message does not decode: {e}"));
        assert_eq!(again.message.kind(), env.message.kind(), "{name}");
    }
}

#[test]
fn large_git_status() {
    let paths: Vec<String> = (0..1000)
        .map(|i| format!("src/module_{i:04}/file.rs"))
        .collect();
    let text = json!({
        "type": "git_status",
        "timestamp": 7,
        "git_status": {
            "timestamp": "2025-01-19T18:40:05Z",
            "modified": paths, "added": [], "deleted": [], "untracked": [], "renamed": [],
            "ahead": 0, "behind": 0, "branch": "main", "remote_ahead": 0, "remote_behind": 0
        }
    });
    let env = Envelope::decode(&text.to_string()).unwrap();
    let Message::GitStatus(s) = &env.message else {
        panic!("{:?}", env.message)
    };
    assert_eq!(s.modified.len(), 1000);
    assert_eq!(s.modified[999], "src/module_0999/file.rs");
    assert_eq!(as_value(&env.encode()), text);
}

// ---------------------------------------------------------------------------
// Frames exactly as Go's encoding/json writes them (gorilla's WriteJSON uses
// json.Encoder): compact, `<` `>` `&` U+2028 U+2029 escaped as \uXXXX, a
// trailing newline, `null` for nil slices, and Go's 64-bit `int`.
// ---------------------------------------------------------------------------

#[test]
fn go_fixtures_are_as_go_writes_them() {
    for (name, text) in FIXTURES.iter().filter(|(n, _)| n.starts_with("go_")) {
        assert!(
            text.ends_with("}\n"),
            "{name}: Go's Encoder ends with a newline"
        );
        assert_eq!(text.lines().count(), 1, "{name}: compact, one line");
        assert!(!text.contains(['<', '>', '&']), "{name}: Go escapes HTML");
    }
}

#[test]
fn go_html_escapes_decode_to_the_characters() {
    let env = decode("go_shell_output");
    assert_eq!(env.timestamp, 1_737_312_001_456);
    assert_eq!(
        env.message,
        Message::ShellOutput {
            data: "<script>alert(1)</script> && echo 'ok' > out.txt\r\n\u{1b}[0m\u{2028}\u{2029}\u{fffd}"
                .into()
        }
    );
    assert_round_trip("go_shell_output", &env);
}

#[test]
fn go_64_bit_exit_code_decodes() {
    // 3221225477 = 0xC0000005, a Windows status; it does not fit an i32.
    let env = decode("go_shell_exit");
    assert_eq!(
        env.message,
        Message::ShellExit {
            code: 3_221_225_477
        }
    );
    assert_round_trip("go_shell_exit", &env);

    let env = decode("go_process_status");
    let Message::ProcessStatus(status) = &env.message else {
        panic!("{:?}", env.message)
    };
    assert_eq!(status.exit_code, Some(3_221_225_477));
    assert_eq!(status.command, "cmd.exe /c npm run dev > log.txt && exit");
    assert_eq!(status.working_dir, r"C:\workspace\kandev");
    assert_eq!(status.kind, ProcessKind::Dev);
    assert_eq!(status.status, ProcessState::Failed);
    assert_eq!(status.timestamp, "2025-01-19T18:40:49.870000001-05:00");
    assert_round_trip("go_process_status", &env);
}

#[test]
fn go_int_terminal_sizes_decode_whole() {
    let env = decode("go_shell_resize");
    assert_eq!(
        env.message,
        Message::ShellResize {
            cols: 70_000,
            rows: -1
        }
    );
    assert_round_trip("go_shell_resize", &env);
}

#[test]
fn go_null_lists_decode_empty() {
    let env = decode("go_git_status");
    let Message::GitStatus(status) = &env.message else {
        panic!("{:?}", env.message)
    };
    for list in [
        &status.modified,
        &status.added,
        &status.deleted,
        &status.untracked,
        &status.renamed,
    ] {
        assert!(list.is_empty(), "{list:?}");
    }
    assert_eq!(status.branch, "feat/<stream>");
    assert_eq!(status.timestamp, "2025-01-19T18:40:05.249871Z");
}
