//! Client peers: `tests/py/client.py` (Python SDK) and `tests/js/client.mjs` (TypeScript
//! SDK), each run as a child process that prints one JSON result line.
//!
//! A run fails (with the JSON line and the client's stderr in the message) when the
//! client exits non-zero, prints no JSON, reports `"ok": false`, or outlives its limit.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use crate::env::{self, EnvError};
use crate::process::{ChildProcess, ProcessError};

/// How much of a result line is echoed to the test's stderr.
const SHOWN_CHARS: usize = 2000;

/// Errors running a client scenario.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The peer is not installed.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// Spawning, a deadline or stdin failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The scenario ran but failed.
    #[error("{name} failed ({status}): {line}\n--- stderr tail ---\n{stderr}")]
    Failed {
        /// Which client.
        name: String,
        /// Its exit status.
        status: String,
        /// Its last stdout line (the JSON result, if any).
        line: String,
        /// Its recent stderr.
        stderr: String,
    },
}

/// One client's JSON result line.
#[derive(Debug, Clone)]
pub struct ClientOutput(pub Value);

/// One `whoami` answer: which backend server and which backend session served a call.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Served {
    /// The backend's `--name`.
    pub server: String,
    /// The session id as the backend knows it (`None` without a session).
    pub session: Option<String>,
}

impl ClientOutput {
    /// The field `key` of the result (`Value::Null` when absent).
    pub fn get(&self, key: &str) -> &Value {
        self.0.get(key).unwrap_or(&Value::Null)
    }

    /// The `whoami` answers listed under `key` (e.g. `"calls"`, `"before"`).
    pub fn served(&self, key: &str) -> Vec<Served> {
        served_list(self.get(key))
    }

    /// Every `Mcp-Session-Id` (or legacy `session_id`) the client sent or received.
    pub fn client_session_ids(&self) -> BTreeSet<String> {
        string_set(self.get("client_session_ids"))
    }

    /// How many HTTP requests went to each `host:port`.
    pub fn requests_by_target(&self) -> Vec<(String, u64)> {
        self.get("requests_by_target")
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect())
            .unwrap_or_default()
    }
}

/// Parse a JSON list of `whoami` answers.
pub fn served_list(value: &Value) -> Vec<Served> {
    value
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|call| Served {
                    server: call.get("server").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    session: call.get("session").and_then(Value::as_str).map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Parse a JSON list of strings into a set.
pub fn string_set(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn py_command(args: &[String]) -> Result<Command, EnvError> {
    let mut command = Command::new(env::python()?);
    command.arg(env::py_dir().join("client.py")).args(args).env("PYTHONUNBUFFERED", "1");
    Ok(command)
}

/// Run `client.py` with `args` (e.g. `--url … --scenario many-calls`), at most `limit`.
pub async fn py_client(args: &[String], limit: Duration) -> Result<ClientOutput, ClientError> {
    let process = ChildProcess::spawn("client.py", py_command(args)?, false)?;
    collect(process, limit).await
}

/// Run `client.mjs` (TypeScript SDK) with `args`, at most `limit`.
pub async fn node_client(args: &[String], limit: Duration) -> Result<ClientOutput, ClientError> {
    node_script("client.mjs", args, limit).await
}

/// Run the Node script `script` of `tests/js` with `args`, at most `limit`.
pub async fn node_script(script: &str, args: &[String], limit: Duration) -> Result<ClientOutput, ClientError> {
    let dir = env::node_dir()?;
    let mut command = Command::new(env::node());
    command.arg(dir.join(script)).args(args).current_dir(&dir);
    let process = ChildProcess::spawn(script, command, false)?;
    collect(process, limit).await
}

/// Build an argument list from string-ish parts.
pub fn args<I, S>(parts: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    parts.into_iter().map(|p| p.into().to_string_lossy().into_owned()).collect()
}

async fn collect(mut process: ChildProcess, limit: Duration) -> Result<ClientOutput, ClientError> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = String::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match process.next_line(left, "the JSON result line").await? {
            Some(line) if !line.trim().is_empty() => last = line,
            Some(_) => {}
            None => break,
        }
    }
    let left = deadline.saturating_duration_since(tokio::time::Instant::now()) + Duration::from_secs(2);
    let status = process.wait(left).await?;
    // Shown by the test runner on failure (or with --nocapture).
    let shown: String = last.chars().take(SHOWN_CHARS).collect();
    eprintln!("[{}] {status}: {shown}", process.name());
    let failed = |process: &ChildProcess, last: &str| ClientError::Failed {
        name: process.name().to_owned(),
        status: status.to_string(),
        line: last.to_owned(),
        stderr: process.stderr_tail(),
    };
    let value: Value = match serde_json::from_str(&last) {
        Ok(value) => value,
        Err(_) => return Err(failed(&process, &last)),
    };
    if !status.success() || value.get("ok") != Some(&Value::Bool(true)) {
        return Err(failed(&process, &last));
    }
    Ok(ClientOutput(value))
}

/// A `client.py --scenario pause` run stopped between its two phases.
#[derive(Debug)]
pub struct PausedClient {
    process: ChildProcess,
}

impl PausedClient {
    /// Start the pause scenario and wait (at most `limit`) until phase one is done.
    pub async fn start(args: &[String], limit: Duration) -> Result<Self, ClientError> {
        let mut process = ChildProcess::spawn("client.py (pause)", py_command(args)?, true)?;
        loop {
            match process.next_line(limit, "the PAUSED line").await? {
                Some(line) if line.trim() == "PAUSED" => return Ok(Self { process }),
                Some(line) if line.trim().is_empty() => {}
                Some(line) => return Err(paused_failure(&mut process, line)),
                None => return Err(paused_failure(&mut process, String::new())),
            }
        }
    }

    /// Resume: an empty `line` keeps the URLs, `"URL [ALT_URL]"` retargets phase two.
    pub async fn resume(mut self, line: &str, limit: Duration) -> Result<ClientOutput, ClientError> {
        self.process.write_line(line).await?;
        collect(self.process, limit).await
    }
}

fn paused_failure(process: &mut ChildProcess, line: String) -> ClientError {
    ClientError::Failed {
        name: process.name().to_owned(),
        status: process.try_exit_status().map_or_else(|| "running".to_owned(), |s| s.to_string()),
        line,
        stderr: process.stderr_tail(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_served_and_session_ids() {
        let out = ClientOutput(serde_json::json!({
            "ok": true,
            "calls": [{"server": "b1", "session": "x"}, {"server": "b2", "session": null}],
            "client_session_ids": ["t1", "t2"],
            "requests_by_target": {"127.0.0.1:1": 3},
        }));
        let served = out.served("calls");
        assert_eq!(served[0], Served { server: "b1".into(), session: Some("x".into()) });
        assert_eq!(served[1].session, None);
        assert_eq!(out.client_session_ids().len(), 2);
        assert_eq!(out.requests_by_target(), vec![("127.0.0.1:1".to_owned(), 3)]);
        assert!(out.served("missing").is_empty());
    }

    #[tokio::test]
    async fn collect_rejects_ok_false_and_non_json() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo '{\"ok\": false, \"error\": \"boom\"}'; echo detail >&2; exit 1"]);
        let process = ChildProcess::spawn("fake", command, false).unwrap();
        let err = collect(process, Duration::from_secs(5)).await.unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");

        let mut command = Command::new("sh");
        command.args(["-c", "echo not json"]);
        let process = ChildProcess::spawn("fake", command, false).unwrap();
        assert!(collect(process, Duration::from_secs(5)).await.is_err());

        let mut command = Command::new("sh");
        command.args(["-c", "echo '{\"ok\": true, \"n\": 1}'"]);
        let process = ChildProcess::spawn("fake", command, false).unwrap();
        let out = collect(process, Duration::from_secs(5)).await.unwrap();
        assert_eq!(out.get("n"), &serde_json::json!(1));
    }

    #[tokio::test]
    async fn collect_times_out() {
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 30"]);
        let process = ChildProcess::spawn("slow", command, false).unwrap();
        let err = collect(process, Duration::from_millis(300)).await.unwrap_err();
        assert!(matches!(err, ClientError::Process(ProcessError::Timeout { .. })), "{err}");
    }
}
