//! The wire protocol of the agentctl *workspace stream*.
//!
//! Every WebSocket text frame carries one JSON object, the [`Envelope`]:
//!
//! ```text
//! { "type": <string>, "timestamp": <int64, Unix milliseconds>, ...fields for that type }
//! ```
//!
//! The field names and omission rules follow kandev's Go types
//! (`WorkspaceStreamMessage` in `internal/agentctl/types` and the payload structs
//! in `internal/agentctl/types/streams`).
//!
//! # Omit-if-empty rules (Go `omitempty`)
//!
//! On encode:
//!
//! * `type` and `timestamp` are always written.
//! * `data` (`shell_output`, `shell_input`), `code` (`shell_exit`), `cols` / `rows`
//!   (`shell_resize`) and `error` (`error`) are written only when they are not
//!   empty / zero. A `shell_exit` with code 0 is therefore `{"type":"shell_exit","timestamp":..}`.
//! * The payload object of `git_status`, `git_commit`, `git_reset`, `branch_switch`,
//!   `file_change`, `process_output` and `process_status` is always written (Go
//!   sends a non-nil pointer), even when every field in it is empty.
//! * Inside the payload objects, the fields Go tags `omitempty` are skipped when
//!   empty / zero / `false` (`repository_name`, `is_submodule`, `remote_branch`,
//!   `remote_head_commit`, `head_commit`, `base_commit`, `comparison_*`, `files`,
//!   `branch_additions`, `branch_deletions`, `script_name`, `exit_code` when `None`,
//!   and in [`FileInfo`] `additions`, `deletions`, `old_path`, `diff`,
//!   `diff_skip_reason`). Every other field is always written, with one exception:
//!   a nested `timestamp` that is the empty string (which Go could not parse as a
//!   time) is left out, so that Go reads it as its zero time.
//!
//! On decode, a missing field or a JSON `null` gives the zero value (`""`, `0`,
//! `false`, empty list), as in Go, where `null` leaves a field untouched.
//!
//! # Unknown types and unknown fields
//!
//! * A message whose `type` this client does not know decodes to
//!   [`Message::Unknown`], which keeps the whole original object and re-encodes it
//!   unchanged. Its fields are not checked at all; [`Envelope::timestamp`] is its
//!   `timestamp` if that is an integer, else 0.
//! * Unknown top-level fields of a known type are ignored (and not re-encoded).
//!   Top-level fields that the protocol knows but that do not belong to the message's
//!   type (say `code` on a `ping`) are ignored too, but, like in Go, they must still
//!   have the right JSON type.
//! * Unknown fields inside the payload objects are kept in the struct's `extra` map
//!   and written back on encode, so nothing a newer server sends is lost.
//! * `git_commit`, `git_reset` and `branch_switch` are kept as free-form JSON objects.
//!
//! # Errors
//!
//! [`Envelope::decode`] never panics. It fails with a [`DecodeError`] for malformed
//! JSON, a top-level value that is not an object, a missing (or `null`) or non-string
//! `type`, and for a known type whose fields have the wrong JSON type or whose
//! payload object is missing (the Go client silently skips the latter).
//!
//! # Example
//!
//! ```
//! use wsdrain::protocol::{Envelope, Message};
//!
//! let env = Envelope::decode(r#"{"type":"shell_output","timestamp":1700000000000,"data":"ls\r\n"}"#)?;
//! assert_eq!(env.timestamp, 1_700_000_000_000);
//! assert_eq!(env.message, Message::ShellOutput { data: "ls\r\n".into() });
//! assert_eq!(env.message.kind(), "shell_output");
//!
//! // A zero exit code is omitted on the wire, as Go's `omitempty` does.
//! let exit = Envelope { timestamp: 1, message: Message::ShellExit { code: 0 } };
//! assert_eq!(exit.encode(), r#"{"type":"shell_exit","timestamp":1}"#);
//! # Ok::<(), wsdrain::protocol::DecodeError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// One message on the wire: `{ "type": ..., "timestamp": <unix ms>, ...fields }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// When the message was created, in Unix milliseconds (`0` if the sender left it out).
    pub timestamp: i64,
    /// The message itself; its variant gives the wire `type`.
    pub message: Message,
}

/// The content of a workspace stream message, one variant per wire `type`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Message {
    /// `connected`: sent by the server first, right after the upgrade.
    Connected,
    /// `shell_output`: output of the workspace shell.
    ShellOutput {
        /// The output bytes, as text.
        data: String,
    },
    /// `shell_exit`: the workspace shell exited.
    ShellExit {
        /// The shell's exit code (omitted on the wire when 0). 64-bit, as Go's
        /// `int`: a Go server on Windows reports statuses like 3221225477.
        code: i64,
    },
    /// `shell_input`: client to server, text written to the shell's stdin.
    ShellInput {
        /// The input text.
        data: String,
    },
    /// `shell_resize`: client to server, new terminal size.
    ShellResize {
        /// Columns (omitted on the wire when 0). 64-bit, as Go's `int`, so
        /// that any value a Go peer sends decodes; a server clamps it to
        /// what its terminal takes.
        cols: i64,
        /// Rows (omitted on the wire when 0), like `cols`.
        rows: i64,
    },
    /// `ping`: client to server keep-alive.
    Ping,
    /// `pong`: the server's answer to `ping`.
    Pong,
    /// `git_status`: the repository status changed.
    GitStatus(Box<GitStatus>),
    /// `git_commit`: a new commit was detected (free-form object, Go's `GitCommitNotification`).
    GitCommit(Map<String, Value>),
    /// `git_reset`: HEAD moved backwards (free-form object, Go's `GitResetNotification`).
    GitReset(Map<String, Value>),
    /// `branch_switch`: the checked-out branch changed (free-form object, Go's
    /// `GitBranchSwitchNotification`).
    BranchSwitch(Map<String, Value>),
    /// `file_change`: a file in the workspace changed.
    FileChange(Box<FileChange>),
    /// `process_output`: output of a workspace process.
    ProcessOutput(Box<ProcessOutput>),
    /// `process_status`: lifecycle change of a workspace process.
    ProcessStatus(Box<ProcessStatus>),
    /// `error`: the server reports an error.
    Error {
        /// The error text (omitted on the wire when empty).
        error: String,
    },
    /// A `type` this client does not know (forward compatibility). `raw` is the whole original object.
    Unknown {
        /// The wire `type` string.
        kind: String,
        /// The whole original message; [`Envelope::encode`] writes it back unchanged.
        raw: Value,
    },
}

/// The `type`s this client knows. Private: the public face is [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connected,
    ShellOutput,
    ShellExit,
    ShellInput,
    ShellResize,
    Ping,
    Pong,
    GitStatus,
    GitCommit,
    GitReset,
    BranchSwitch,
    FileChange,
    ProcessOutput,
    ProcessStatus,
    Error,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "connected" => Kind::Connected,
            "shell_output" => Kind::ShellOutput,
            "shell_exit" => Kind::ShellExit,
            "shell_input" => Kind::ShellInput,
            "shell_resize" => Kind::ShellResize,
            "ping" => Kind::Ping,
            "pong" => Kind::Pong,
            "git_status" => Kind::GitStatus,
            "git_commit" => Kind::GitCommit,
            "git_reset" => Kind::GitReset,
            "branch_switch" => Kind::BranchSwitch,
            "file_change" => Kind::FileChange,
            "process_output" => Kind::ProcessOutput,
            "process_status" => Kind::ProcessStatus,
            "error" => Kind::Error,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Kind::Connected => "connected",
            Kind::ShellOutput => "shell_output",
            Kind::ShellExit => "shell_exit",
            Kind::ShellInput => "shell_input",
            Kind::ShellResize => "shell_resize",
            Kind::Ping => "ping",
            Kind::Pong => "pong",
            Kind::GitStatus => "git_status",
            Kind::GitCommit => "git_commit",
            Kind::GitReset => "git_reset",
            Kind::BranchSwitch => "branch_switch",
            Kind::FileChange => "file_change",
            Kind::ProcessOutput => "process_output",
            Kind::ProcessStatus => "process_status",
            Kind::Error => "error",
        }
    }
}

impl Message {
    /// The wire `type` string of this message (for [`Message::Unknown`], its `kind`).
    ///
    /// ```
    /// # use wsdrain::protocol::Message;
    /// assert_eq!(Message::Ping.kind(), "ping");
    /// ```
    #[must_use]
    pub fn kind(&self) -> &str {
        let kind = match self {
            Message::Connected => Kind::Connected,
            Message::ShellOutput { .. } => Kind::ShellOutput,
            Message::ShellExit { .. } => Kind::ShellExit,
            Message::ShellInput { .. } => Kind::ShellInput,
            Message::ShellResize { .. } => Kind::ShellResize,
            Message::Ping => Kind::Ping,
            Message::Pong => Kind::Pong,
            Message::GitStatus(_) => Kind::GitStatus,
            Message::GitCommit(_) => Kind::GitCommit,
            Message::GitReset(_) => Kind::GitReset,
            Message::BranchSwitch(_) => Kind::BranchSwitch,
            Message::FileChange(_) => Kind::FileChange,
            Message::ProcessOutput(_) => Kind::ProcessOutput,
            Message::ProcessStatus(_) => Kind::ProcessStatus,
            Message::Error { .. } => Kind::Error,
            Message::Unknown { kind, .. } => return kind,
        };
        kind.as_str()
    }
}

/// Why [`Envelope::decode`] rejected a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is not valid JSON (syntax error, truncated, trailing characters,
    /// invalid UTF-8, nesting too deep).
    #[error("malformed JSON: {0}")]
    Json(serde_json::Error),
    /// The input is valid JSON but not an object.
    #[error("message is not a JSON object (found {found})")]
    NotObject {
        /// The JSON type found instead: `array`, `string`, `number`, `boolean` or `null`.
        found: &'static str,
    },
    /// The object has no `type` field, or it is `null`.
    #[error("message has no `type` field")]
    MissingType,
    /// The object's `type` field is not a string.
    #[error("message `type` must be a string, found {found}")]
    InvalidType {
        /// The JSON type found instead: `object`, `array`, `number` or `boolean`.
        found: &'static str,
    },
    /// A known type whose fields have the wrong JSON type (or out-of-range numbers,
    /// or a duplicated field).
    #[error("invalid `{kind}` message: {error}")]
    InvalidFields {
        /// The wire `type` of the message.
        kind: &'static str,
        /// What `serde_json` found wrong, with its position.
        error: serde_json::Error,
    },
    /// A known type that needs a payload object (for example `git_status` needs a
    /// `git_status` object) arrived without one, or with `null`.
    #[error("`{kind}` message has no `{kind}` object")]
    MissingPayload {
        /// The wire `type` of the message, which is also the name of the missing field.
        kind: &'static str,
    },
}

/// Status of a git repository in the workspace (Go: `streams.GitStatusUpdate`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GitStatus {
    /// When the status was captured (RFC 3339, kept verbatim).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub timestamp: String,
    /// Repository in a multi-repo workspace; empty for a single repo (omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub repository_name: String,
    /// Whether the repository is an initialized submodule (omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub is_submodule: bool,
    /// Modified paths.
    #[serde(default, deserialize_with = "nullable")]
    pub modified: Vec<String>,
    /// Added / staged paths.
    #[serde(default, deserialize_with = "nullable")]
    pub added: Vec<String>,
    /// Deleted paths.
    #[serde(default, deserialize_with = "nullable")]
    pub deleted: Vec<String>,
    /// Untracked paths.
    #[serde(default, deserialize_with = "nullable")]
    pub untracked: Vec<String>,
    /// Renamed paths.
    #[serde(default, deserialize_with = "nullable")]
    pub renamed: Vec<String>,
    /// Commits ahead of the base branch.
    #[serde(default, deserialize_with = "nullable")]
    pub ahead: i64,
    /// Commits behind the base branch.
    #[serde(default, deserialize_with = "nullable")]
    pub behind: i64,
    /// Current local branch.
    #[serde(default, deserialize_with = "nullable")]
    pub branch: String,
    /// Tracked remote branch, e.g. `origin/main` (omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub remote_branch: String,
    /// Local commits not yet on the upstream.
    #[serde(default, deserialize_with = "nullable")]
    pub remote_ahead: i64,
    /// Upstream commits not yet local.
    #[serde(default, deserialize_with = "nullable")]
    pub remote_behind: i64,
    /// Locally observed tip of `remote_branch` (omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub remote_head_commit: String,
    /// HEAD commit SHA (omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub head_commit: String,
    /// Base branch commit SHA (omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub base_commit: String,
    /// Display identity of an explicit comparison target (omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub comparison_target: String,
    /// `ready` or `unavailable` for an explicit comparison target (omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub comparison_status: String,
    /// Machine-readable comparison failure code (omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub comparison_error_code: String,
    /// Per-file details, keyed by path (omitempty; sorted like Go's map encoding).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub files: BTreeMap<String, FileInfo>,
    /// Lines added on the branch since the merge-base (omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub branch_additions: i64,
    /// Lines deleted on the branch since the merge-base (omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub branch_deletions: i64,
    /// Fields this client does not know, written back unchanged on encode.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Git details of one changed file (Go: `streams.FileInfo`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FileInfo {
    /// Path relative to the workspace root.
    #[serde(default, deserialize_with = "nullable")]
    pub path: String,
    /// `modified`, `added`, `deleted`, `untracked` or `renamed`.
    #[serde(default, deserialize_with = "nullable")]
    pub status: String,
    /// Whether the change is staged.
    #[serde(default, deserialize_with = "nullable")]
    pub staged: bool,
    /// Added lines (omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub additions: i64,
    /// Deleted lines (omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub deletions: i64,
    /// Original path of a renamed file (omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub old_path: String,
    /// Unified diff (omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub diff: String,
    /// Why the diff was left out or truncated (omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub diff_skip_reason: String,
    /// Fields this client does not know, written back unchanged on encode.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A filesystem change in the workspace (Go: `streams.FileChangeNotification`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FileChange {
    /// When the change was detected (RFC 3339, kept verbatim).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub timestamp: String,
    /// Repository in a multi-repo workspace (omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub repository_name: String,
    /// Path relative to the workspace root.
    #[serde(default, deserialize_with = "nullable")]
    pub path: String,
    /// What happened to the file.
    #[serde(default, deserialize_with = "nullable")]
    pub operation: FileOperation,
    /// Fields this client does not know, written back unchanged on encode.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Output of a workspace process (Go: `streams.ProcessOutput`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProcessOutput {
    /// Agent session the process belongs to.
    #[serde(default, deserialize_with = "nullable")]
    pub session_id: String,
    /// The process.
    #[serde(default, deserialize_with = "nullable")]
    pub process_id: String,
    /// Which kind of script the process runs.
    #[serde(default, deserialize_with = "nullable")]
    pub kind: ProcessKind,
    /// `stdout` or `stderr`.
    #[serde(default, deserialize_with = "nullable")]
    pub stream: ProcessStream,
    /// The output text.
    #[serde(default, deserialize_with = "nullable")]
    pub data: String,
    /// When the output was read (RFC 3339, kept verbatim).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub timestamp: String,
    /// Fields this client does not know, written back unchanged on encode.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Lifecycle update of a workspace process (Go: `streams.ProcessStatusUpdate`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProcessStatus {
    /// Agent session the process belongs to.
    #[serde(default, deserialize_with = "nullable")]
    pub session_id: String,
    /// The process.
    #[serde(default, deserialize_with = "nullable")]
    pub process_id: String,
    /// Which kind of script the process runs.
    #[serde(default, deserialize_with = "nullable")]
    pub kind: ProcessKind,
    /// Name of the repository script (omitempty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub script_name: String,
    /// The command line.
    #[serde(default, deserialize_with = "nullable")]
    pub command: String,
    /// Working directory of the process.
    #[serde(default, deserialize_with = "nullable")]
    pub working_dir: String,
    /// The new lifecycle state.
    #[serde(default, deserialize_with = "nullable")]
    pub status: ProcessState,
    /// Exit code once the process ended (omitempty: written only when `Some`, even `Some(0)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// 64-bit, as Go's `int` (e.g. the Windows status 3221225477).
    pub exit_code: Option<i64>,
    /// When the status changed (RFC 3339, kept verbatim).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub timestamp: String,
    /// Fields this client does not know, written back unchanged on encode.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Defines a string-valued wire enum with a catch-all `Other(String)`.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal, )*
        }
    ) => {
        $(#[$meta])*
        ///
        /// Serialized as a lowercase string. A string this client does not know is
        /// kept in `Other` and written back unchanged; `Other` never holds a known
        /// string when it comes from decoding or [`From`]. The default is
        /// `Other(String::new())`, the empty string Go's zero value encodes to.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// Any other string, kept verbatim.
            Other(String),
        }

        impl $name {
            /// The wire string.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )*
                    $name::Other(s) => s,
                }
            }

            fn known(s: &str) -> Option<Self> {
                match s {
                    $( $wire => Some($name::$variant), )*
                    _ => None,
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::Other(String::new())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::known(s).unwrap_or_else(|| $name::Other(s.to_owned()))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self::known(&s).unwrap_or($name::Other(s))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a string")
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        Ok($name::from(v))
                    }
                    fn visit_string<E: de::Error>(self, v: String) -> Result<$name, E> {
                        Ok($name::from(v))
                    }
                }
                deserializer.deserialize_str(V)
            }
        }
    };
}

string_enum! {
    /// What happened to a file (Go: the `FileOp*` constants).
    pub enum FileOperation {
        /// `create`: the file was created.
        Create => "create",
        /// `write`: the file was written.
        Write => "write",
        /// `remove`: the file was removed.
        Remove => "remove",
        /// `rename`: the file was renamed.
        Rename => "rename",
        /// `chmod`: the file's permissions changed.
        Chmod => "chmod",
        /// `refresh`: the file should be rescanned.
        Refresh => "refresh",
    }
}

string_enum! {
    /// Which kind of repository script a process runs (Go: `streams.ProcessKind`).
    pub enum ProcessKind {
        /// `setup`: the setup script.
        Setup => "setup",
        /// `cleanup`: the cleanup script.
        Cleanup => "cleanup",
        /// `dev`: the dev server script.
        Dev => "dev",
        /// `custom`: a custom script.
        Custom => "custom",
        /// `agent_passthrough`: the agent's own process.
        AgentPassthrough => "agent_passthrough",
    }
}

string_enum! {
    /// Which output stream a chunk of process output came from.
    pub enum ProcessStream {
        /// `stdout`.
        Stdout => "stdout",
        /// `stderr`.
        Stderr => "stderr",
    }
}

string_enum! {
    /// Lifecycle state of a process (Go: `streams.ProcessStatus`).
    pub enum ProcessState {
        /// `starting`.
        Starting => "starting",
        /// `running`.
        Running => "running",
        /// `exited`.
        Exited => "exited",
        /// `failed`.
        Failed => "failed",
        /// `stopped`.
        Stopped => "stopped",
    }
}

/// Go semantics for `null`: it leaves the field at its zero value.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// The wire `type` while decoding: known kinds without allocating, anything else
/// as `Unknown` (the text is parsed again into a `Value` for those).
enum WireKind {
    Known(Kind),
    Unknown,
}

impl<'de> Deserialize<'de> for WireKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = WireKind;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WireKind, E> {
                Ok(Kind::parse(v).map_or(WireKind::Unknown, WireKind::Known))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// The union of all envelope fields, decoded in one pass (Go: `WorkspaceStreamMessage`).
/// The large payloads are boxed to keep this struct small: it is moved a few times
/// for every message, and most messages are small.
#[derive(Deserialize)]
struct WireIn {
    #[serde(rename = "type")]
    kind: Option<WireKind>,
    timestamp: Option<i64>,
    data: Option<String>,
    code: Option<i64>,
    cols: Option<i64>,
    rows: Option<i64>,
    git_status: Option<Box<GitStatus>>,
    git_commit: Option<Map<String, Value>>,
    git_reset: Option<Map<String, Value>>,
    branch_switch: Option<Map<String, Value>>,
    file_change: Option<Box<FileChange>>,
    process_output: Option<Box<ProcessOutput>>,
    process_status: Option<Box<ProcessStatus>>,
    error: Option<String>,
}

/// The union of all envelope fields, borrowed for encoding; `None` is omitted.
#[derive(Serialize)]
struct WireOut<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cols: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    git_status: Option<&'a GitStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    git_commit: Option<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    git_reset: Option<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    branch_switch: Option<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_change: Option<&'a FileChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    process_output: Option<&'a ProcessOutput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    process_status: Option<&'a ProcessStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

impl<'a> WireOut<'a> {
    fn new(kind: &'a str, timestamp: i64) -> Self {
        WireOut {
            kind,
            timestamp,
            data: None,
            code: None,
            cols: None,
            rows: None,
            git_status: None,
            git_commit: None,
            git_reset: None,
            branch_switch: None,
            file_change: None,
            process_output: None,
            process_status: None,
            error: None,
        }
    }
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn non_zero<T: Default + PartialEq>(n: T) -> Option<T> {
    (n != T::default()).then_some(n)
}

fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn now_unix_millis() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

impl Envelope {
    /// Wraps `message` with the current time (Unix milliseconds) as its timestamp.
    ///
    /// ```
    /// # use wsdrain::protocol::{Envelope, Message};
    /// let env = Envelope::new(Message::Ping);
    /// assert!(env.timestamp > 0);
    /// ```
    #[must_use]
    pub fn new(message: Message) -> Self {
        Envelope {
            timestamp: now_unix_millis(),
            message,
        }
    }

    /// Decodes one message from a JSON text frame. Never panics.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Json`] for malformed JSON, [`DecodeError::NotObject`],
    /// [`DecodeError::MissingType`] / [`DecodeError::InvalidType`] for a missing or
    /// non-string `type`, and for a known `type`, [`DecodeError::InvalidFields`] or
    /// [`DecodeError::MissingPayload`]. An unknown `type` is not an error.
    ///
    /// ```
    /// # use wsdrain::protocol::{DecodeError, Envelope, Message};
    /// let env = Envelope::decode(r#"{"type":"pong","timestamp":42}"#).unwrap();
    /// assert_eq!(env, Envelope { timestamp: 42, message: Message::Pong });
    ///
    /// let future = Envelope::decode(r#"{"type":"hologram","timestamp":1}"#).unwrap();
    /// assert_eq!(future.message.kind(), "hologram");
    ///
    /// assert!(matches!(Envelope::decode("[]"), Err(DecodeError::NotObject { found: "array" })));
    /// ```
    pub fn decode(text: &str) -> Result<Envelope, DecodeError> {
        // The derived struct would also accept a JSON array (as a sequence of fields).
        if text.trim_ascii_start().as_bytes().first() != Some(&b'{') {
            return Err(match serde_json::from_str::<Value>(text) {
                Ok(v) => DecodeError::NotObject {
                    found: json_type_name(&v),
                },
                Err(e) => DecodeError::Json(e),
            });
        }
        match serde_json::from_str::<WireIn>(text) {
            Ok(w) => match w.kind {
                Some(WireKind::Known(kind)) => build(kind, w),
                Some(WireKind::Unknown) => slow_path(text, None),
                None => Err(DecodeError::MissingType),
            },
            Err(e) if e.is_data() => slow_path(text, Some(e)),
            Err(e) => Err(DecodeError::Json(e)),
        }
    }

    /// Like [`Envelope::decode`], for raw bytes. The whole input must be UTF-8
    /// (including fields that are ignored).
    ///
    /// # Errors
    ///
    /// [`DecodeError::Json`] if `bytes` is not UTF-8, otherwise as [`Envelope::decode`].
    ///
    /// ```
    /// # use wsdrain::protocol::{Envelope, Message};
    /// let env = Envelope::decode_slice(br#"{"type":"connected","timestamp":7}"#).unwrap();
    /// assert_eq!(env.message, Message::Connected);
    /// ```
    pub fn decode_slice(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Envelope::decode(text),
            Err(e) => Err(DecodeError::Json(de::Error::custom(format_args!(
                "invalid UTF-8: {e}"
            )))),
        }
    }

    /// Encodes the message as one JSON text frame, applying Go's `omitempty` rules
    /// (see the [module docs](self)). [`Message::Unknown`] writes its `raw` object
    /// back unchanged, ignoring `self.timestamp`.
    ///
    /// ```
    /// # use wsdrain::protocol::{Envelope, Message};
    /// let env = Envelope { timestamp: 5, message: Message::ShellResize { cols: 120, rows: 40 } };
    /// assert_eq!(env.encode(), r#"{"type":"shell_resize","timestamp":5,"cols":120,"rows":40}"#);
    /// ```
    ///
    /// # Panics
    ///
    /// Never: every value in a [`Message`] is serializable to JSON.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = WireOut::new(self.message.kind(), self.timestamp);
        match &self.message {
            Message::Connected | Message::Ping | Message::Pong => {}
            Message::ShellOutput { data } | Message::ShellInput { data } => {
                out.data = non_empty(data);
            }
            Message::ShellExit { code } => out.code = non_zero(*code),
            Message::ShellResize { cols, rows } => {
                out.cols = non_zero(*cols);
                out.rows = non_zero(*rows);
            }
            Message::GitStatus(status) => out.git_status = Some(status),
            Message::GitCommit(commit) => out.git_commit = Some(commit),
            Message::GitReset(reset) => out.git_reset = Some(reset),
            Message::BranchSwitch(switch) => out.branch_switch = Some(switch),
            Message::FileChange(change) => out.file_change = Some(change),
            Message::ProcessOutput(output) => out.process_output = Some(output),
            Message::ProcessStatus(status) => out.process_status = Some(status),
            Message::Error { error } => out.error = non_empty(error),
            Message::Unknown { raw, .. } => return raw.to_string(),
        }
        // Cannot fail: every key is a string and serde_json numbers are finite.
        serde_json::to_string(&out).expect("serializing a workspace stream message cannot fail")
    }
}

/// Parses into a `Value` to build [`Message::Unknown`] or to say what is wrong.
fn slow_path(text: &str, typed_error: Option<serde_json::Error>) -> Result<Envelope, DecodeError> {
    let raw: Value = serde_json::from_str(text).map_err(DecodeError::Json)?;
    let Value::Object(obj) = &raw else {
        return Err(DecodeError::NotObject {
            found: json_type_name(&raw),
        });
    };
    let kind = match obj.get("type") {
        None | Some(Value::Null) => return Err(DecodeError::MissingType),
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(DecodeError::InvalidType {
                found: json_type_name(other),
            });
        }
    };
    if let Some(known) = Kind::parse(kind) {
        return Err(match typed_error {
            Some(error) => DecodeError::InvalidFields {
                kind: known.as_str(),
                error,
            },
            // Unreachable in practice (a known kind that parsed cleanly never gets
            // here); answer with a typed decode of the value rather than panic.
            None => match serde_json::from_str::<WireIn>(text) {
                Ok(w) => return build(known, w),
                Err(error) => DecodeError::InvalidFields {
                    kind: known.as_str(),
                    error,
                },
            },
        });
    }
    let timestamp = obj.get("timestamp").and_then(Value::as_i64).unwrap_or(0);
    let kind = kind.clone();
    Ok(Envelope {
        timestamp,
        message: Message::Unknown { kind, raw },
    })
}

/// Turns the decoded union into the [`Message`] of a known `kind`.
fn build(kind: Kind, w: WireIn) -> Result<Envelope, DecodeError> {
    fn payload<T>(kind: Kind, field: Option<T>) -> Result<T, DecodeError> {
        field.ok_or(DecodeError::MissingPayload {
            kind: kind.as_str(),
        })
    }
    let message = match kind {
        Kind::Connected => Message::Connected,
        Kind::ShellOutput => Message::ShellOutput {
            data: w.data.unwrap_or_default(),
        },
        Kind::ShellExit => Message::ShellExit {
            code: w.code.unwrap_or_default(),
        },
        Kind::ShellInput => Message::ShellInput {
            data: w.data.unwrap_or_default(),
        },
        Kind::ShellResize => Message::ShellResize {
            cols: w.cols.unwrap_or_default(),
            rows: w.rows.unwrap_or_default(),
        },
        Kind::Ping => Message::Ping,
        Kind::Pong => Message::Pong,
        Kind::GitStatus => Message::GitStatus(payload(kind, w.git_status)?),
        Kind::GitCommit => Message::GitCommit(payload(kind, w.git_commit)?),
        Kind::GitReset => Message::GitReset(payload(kind, w.git_reset)?),
        Kind::BranchSwitch => Message::BranchSwitch(payload(kind, w.branch_switch)?),
        Kind::FileChange => Message::FileChange(payload(kind, w.file_change)?),
        Kind::ProcessOutput => Message::ProcessOutput(payload(kind, w.process_output)?),
        Kind::ProcessStatus => Message::ProcessStatus(payload(kind, w.process_status)?),
        Kind::Error => Message::Error {
            error: w.error.unwrap_or_default(),
        },
    };
    Ok(Envelope {
        timestamp: w.timestamp.unwrap_or_default(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(v: Value) -> Result<Envelope, DecodeError> {
        Envelope::decode(&v.to_string())
    }

    #[test]
    fn kind_names_round_trip() {
        let all = [
            Kind::Connected,
            Kind::ShellOutput,
            Kind::ShellExit,
            Kind::ShellInput,
            Kind::ShellResize,
            Kind::Ping,
            Kind::Pong,
            Kind::GitStatus,
            Kind::GitCommit,
            Kind::GitReset,
            Kind::BranchSwitch,
            Kind::FileChange,
            Kind::ProcessOutput,
            Kind::ProcessStatus,
            Kind::Error,
        ];
        for k in all {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("Ping"), None);
    }

    #[test]
    fn null_fields_are_zero_values() {
        let env = decode(json!({"type": "shell_output", "timestamp": null, "data": null})).unwrap();
        assert_eq!(env.timestamp, 0);
        assert_eq!(
            env.message,
            Message::ShellOutput {
                data: String::new()
            }
        );

        let env = decode(json!({
            "type": "git_status", "timestamp": 1,
            "git_status": {"modified": null, "branch": null, "ahead": null, "files": null,
                           "is_submodule": null}
        }))
        .unwrap();
        assert_eq!(env.message, Message::GitStatus(Box::default()));

        let env = decode(json!({
            "type": "process_status", "timestamp": 1,
            "process_status": {"status": null, "exit_code": null, "kind": null}
        }))
        .unwrap();
        assert_eq!(env.message, Message::ProcessStatus(Box::default()));
    }

    #[test]
    fn null_payload_is_missing_payload() {
        for kind in [
            "git_status",
            "git_commit",
            "git_reset",
            "branch_switch",
            "file_change",
            "process_output",
            "process_status",
        ] {
            let err = decode(json!({"type": kind, "timestamp": 1, kind: null})).unwrap_err();
            assert!(
                matches!(err, DecodeError::MissingPayload { kind: k } if k == kind),
                "{kind}: {err}"
            );
            let err = decode(json!({"type": kind})).unwrap_err();
            assert!(
                matches!(err, DecodeError::MissingPayload { .. }),
                "{kind}: {err}"
            );
        }
    }

    #[test]
    fn payload_must_be_an_object() {
        for payload in [json!([]), json!("x"), json!(1), json!(true)] {
            let err = decode(json!({"type": "git_status", "timestamp": 1, "git_status": payload}))
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    DecodeError::InvalidFields {
                        kind: "git_status",
                        ..
                    }
                ),
                "{payload}: {err}"
            );
        }
    }

    #[test]
    fn top_level_shapes() {
        assert!(matches!(Envelope::decode(""), Err(DecodeError::Json(_))));
        assert!(matches!(Envelope::decode("   "), Err(DecodeError::Json(_))));
        assert!(matches!(Envelope::decode("{"), Err(DecodeError::Json(_))));
        assert!(matches!(Envelope::decode("[1,"), Err(DecodeError::Json(_))));
        for (text, found) in [
            ("null", "null"),
            (" true", "boolean"),
            ("3", "number"),
            ("\"ping\"", "string"),
            ("[\"ping\", 1]", "array"),
        ] {
            match Envelope::decode(text) {
                Err(DecodeError::NotObject { found: f }) => assert_eq!(f, found),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            Envelope::decode("{}"),
            Err(DecodeError::MissingType)
        ));
        assert!(matches!(
            Envelope::decode(r#"{"type":null,"timestamp":1}"#),
            Err(DecodeError::MissingType)
        ));
        assert!(matches!(
            Envelope::decode(r#"{"type":7}"#),
            Err(DecodeError::InvalidType { found: "number" })
        ));
        assert!(matches!(
            Envelope::decode(r#"{"type":{"a":1}}"#),
            Err(DecodeError::InvalidType { found: "object" })
        ));
        assert!(matches!(
            Envelope::decode(r#"{"type":"ping"} trailing"#),
            Err(DecodeError::Json(_))
        ));
    }

    #[test]
    fn invalid_utf8_is_json_error() {
        let err =
            Envelope::decode_slice(b"{\"type\":\"shell_output\",\"data\":\"\xff\"}").unwrap_err();
        assert!(matches!(err, DecodeError::Json(_)), "{err}");
    }

    #[test]
    fn numbers_out_of_range_or_fractional() {
        // Go's `int` is 64-bit: only what it cannot hold is rejected.
        for v in [
            json!({"type": "shell_exit", "code": 1u64 << 63}),
            json!({"type": "shell_exit", "code": 1.5}),
            json!({"type": "shell_resize", "cols": 1u64 << 63}),
            json!({"type": "shell_resize", "rows": 2.5}),
            json!({"type": "ping", "timestamp": "now"}),
            json!({"type": "ping", "timestamp": 1.0}),
        ] {
            let err = decode(v.clone()).unwrap_err();
            assert!(
                matches!(err, DecodeError::InvalidFields { .. }),
                "{v}: {err}"
            );
        }
    }

    #[test]
    fn go_int_fields_take_any_64_bit_value() {
        assert_eq!(
            decode(json!({"type": "shell_exit", "code": 1u64 << 40}))
                .unwrap()
                .message,
            Message::ShellExit { code: 1 << 40 }
        );
        assert_eq!(
            decode(json!({"type": "shell_resize", "cols": -1, "rows": 70000}))
                .unwrap()
                .message,
            Message::ShellResize {
                cols: -1,
                rows: 70000
            }
        );
    }

    #[test]
    fn unrelated_known_field_must_still_be_well_typed() {
        let err = decode(json!({"type": "ping", "timestamp": 1, "code": "x"})).unwrap_err();
        assert!(
            matches!(err, DecodeError::InvalidFields { kind: "ping", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("`ping`"), "{err}");
    }

    #[test]
    fn unknown_type_with_odd_fields_is_still_unknown() {
        let raw =
            json!({"type": "future", "timestamp": "soon", "data": {"x": [1, 2]}, "code": "x"});
        let env = decode(raw.clone()).unwrap();
        assert_eq!(env.timestamp, 0);
        assert_eq!(
            env.message,
            Message::Unknown {
                kind: "future".into(),
                raw: raw.clone()
            }
        );
        assert_eq!(serde_json::from_str::<Value>(&env.encode()).unwrap(), raw);
    }

    #[test]
    fn duplicate_field_is_invalid_not_panic() {
        let err = Envelope::decode(r#"{"type":"shell_output","data":"a","data":"b"}"#).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::InvalidFields {
                    kind: "shell_output",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let deep = format!(
            r#"{{"type":"git_commit","git_commit":{{"x":{}{}}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(Envelope::decode(&deep).is_err());
        let deep = format!(r#"{{"type":"future","x":{}}}"#, "[".repeat(100_000));
        assert!(Envelope::decode(&deep).is_err());
    }

    #[test]
    fn string_enums() {
        assert_eq!(FileOperation::from("chmod"), FileOperation::Chmod);
        assert_eq!(
            FileOperation::from("symlink"),
            FileOperation::Other("symlink".into())
        );
        assert_eq!(
            FileOperation::from(String::from("write")),
            FileOperation::Write
        );
        assert_eq!(FileOperation::default().as_str(), "");
        assert_eq!(
            ProcessKind::AgentPassthrough.to_string(),
            "agent_passthrough"
        );
        assert_eq!(ProcessStream::from("stderr"), ProcessStream::Stderr);
        assert_eq!(ProcessState::from("zombie").as_str(), "zombie");
        let v: ProcessState = serde_json::from_str(r#""st\u006fpped""#).unwrap();
        assert_eq!(v, ProcessState::Stopped);
        assert!(serde_json::from_str::<ProcessState>("3").is_err());
        assert_eq!(
            serde_json::to_string(&ProcessKind::Dev).unwrap(),
            r#""dev""#
        );
    }

    #[test]
    fn escaped_type_is_recognized() {
        let env = Envelope::decode(r#"{"type":"p\u0069ng","timestamp":3}"#).unwrap();
        assert_eq!(env.message, Message::Ping);
    }

    #[test]
    fn empty_fields_are_omitted() {
        let enc = |m: Message| {
            serde_json::from_str::<Value>(
                &Envelope {
                    timestamp: 9,
                    message: m,
                }
                .encode(),
            )
            .unwrap()
        };
        assert_eq!(
            enc(Message::ShellOutput {
                data: String::new()
            }),
            json!({"type": "shell_output", "timestamp": 9})
        );
        assert_eq!(
            enc(Message::ShellResize { cols: 80, rows: 0 }),
            json!({"type": "shell_resize", "timestamp": 9, "cols": 80})
        );
        assert_eq!(
            enc(Message::Error {
                error: String::new()
            }),
            json!({"type": "error", "timestamp": 9})
        );
        assert_eq!(
            enc(Message::GitCommit(Map::new())),
            json!({"type": "git_commit", "timestamp": 9, "git_commit": {}})
        );
        assert_eq!(
            enc(Message::GitStatus(Box::default())),
            json!({"type": "git_status", "timestamp": 9, "git_status": {
                "modified": [], "added": [], "deleted": [], "untracked": [], "renamed": [],
                "ahead": 0, "behind": 0, "branch": "", "remote_ahead": 0, "remote_behind": 0
            }})
        );
        assert_eq!(
            enc(Message::ProcessStatus(Box::new(ProcessStatus {
                exit_code: Some(0),
                ..Default::default()
            }))),
            json!({"type": "process_status", "timestamp": 9, "process_status": {
                "session_id": "", "process_id": "", "kind": "", "command": "",
                "working_dir": "", "status": "", "exit_code": 0
            }})
        );
    }

    #[test]
    fn new_uses_current_time() {
        let before = now_unix_millis();
        let env = Envelope::new(Message::Ping);
        assert!(env.timestamp >= before);
        assert!(env.timestamp > 1_600_000_000_000);
    }

    #[test]
    fn error_messages_name_the_type() {
        let err = decode(json!({"type": "file_change", "file_change": {"path": 3}})).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("invalid `file_change` message:"), "{text}");
        let err = decode(json!({"type": "process_output"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`process_output` message has no `process_output` object"
        );
    }
}
