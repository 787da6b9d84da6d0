//! Python MCP backends (`tests/py/backend.py`, official SDK) as child processes.
//!
//! Each backend binds 127.0.0.1 on a free port and prints `READY <name> <port>` when it
//! accepts connections; [`PyBackend::spawn`] waits for that line (bounded by
//! [`READY_TIMEOUT`]) and retries on a new port if the chosen one was taken meanwhile.

use std::time::Duration;

use tokio::process::Command;

use crate::env::{self, EnvError};
use crate::ports::free_port;
use crate::process::{ChildProcess, ProcessError};

/// How long a backend may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How many ports to try before giving up on "address already in use".
const SPAWN_ATTEMPTS: usize = 3;

/// Errors starting a Python backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The interpreter is missing.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// Spawning or waiting failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// No free port could be found.
    #[error("no free port: {0}")]
    Port(#[source] std::io::Error),
    /// The backend exited or printed something else before it was ready.
    #[error("backend {name} on port {port} did not become ready: {reason}\n--- stderr tail ---\n{stderr}")]
    NotReady {
        /// Backend name.
        name: String,
        /// Port it was given.
        port: u16,
        /// What went wrong.
        reason: String,
        /// Its recent stderr.
        stderr: String,
    },
}

/// Which MCP transport a backend serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PyTransport {
    /// Streamable HTTP on `/mcp`.
    StreamableHttp,
    /// Legacy HTTP+SSE (2024-11-05): `GET /sse`, `POST /messages/?session_id=…`.
    Sse,
}

/// How to start one backend.
#[derive(Debug, Clone)]
pub struct BackendOptions {
    /// Reported by its `whoami` tool as `server`.
    pub name: String,
    /// Transport to serve.
    pub transport: PyTransport,
    /// Answer POSTs with `application/json` instead of an SSE stream.
    pub json_response: bool,
    /// Stateless streamable HTTP (no `Mcp-Session-Id`).
    pub stateless: bool,
}

impl BackendOptions {
    /// A stateful streamable-HTTP backend answering with SSE streams.
    pub fn streamable(name: &str) -> Self {
        Self { name: name.to_owned(), transport: PyTransport::StreamableHttp, json_response: false, stateless: false }
    }

    /// A legacy HTTP+SSE backend.
    pub fn sse(name: &str) -> Self {
        Self { transport: PyTransport::Sse, ..Self::streamable(name) }
    }

    /// Answer with `application/json` bodies.
    #[must_use]
    pub fn json_response(mut self) -> Self {
        self.json_response = true;
        self
    }

    /// Serve without sessions.
    #[must_use]
    pub fn stateless(mut self) -> Self {
        self.stateless = true;
        self
    }

    fn args(&self, port: u16) -> Vec<String> {
        let mut args = vec![
            "--port".to_owned(),
            port.to_string(),
            "--name".to_owned(),
            self.name.clone(),
            "--transport".to_owned(),
            match self.transport {
                PyTransport::StreamableHttp => "streamable-http",
                PyTransport::Sse => "sse",
            }
            .to_owned(),
        ];
        if self.json_response {
            args.push("--json-response".to_owned());
        }
        if self.stateless {
            args.push("--stateless".to_owned());
        }
        args
    }
}

/// A running Python backend; killed on drop.
#[derive(Debug)]
pub struct PyBackend {
    options: BackendOptions,
    port: u16,
    process: ChildProcess,
}

impl PyBackend {
    /// Start a backend and wait until it is ready.
    pub async fn spawn(options: BackendOptions) -> Result<Self, BackendError> {
        let python = env::python()?;
        let script = env::py_dir().join("backend.py");
        let mut last_error = None;
        for _ in 0..SPAWN_ATTEMPTS {
            let port = free_port().map_err(BackendError::Port)?;
            let mut command = Command::new(&python);
            command.arg(&script).args(options.args(port)).env("PYTHONUNBUFFERED", "1");
            let mut process = ChildProcess::spawn(&format!("backend {}", options.name), command, false)?;
            let expected = format!("READY {} {port}", options.name);
            let reason = match process.next_line(READY_TIMEOUT, "the READY line").await? {
                Some(line) if line.trim() == expected => {
                    return Ok(Self { options, port, process });
                }
                Some(line) => format!("unexpected first stdout line {line:?}"),
                None => "exited before printing its READY line".to_owned(),
            };
            let stderr = process.stderr_tail();
            let retry = stderr.contains("address already in use") || stderr.contains("Errno 98");
            last_error = Some(BackendError::NotReady { name: options.name.clone(), port, reason, stderr });
            if !retry {
                break;
            }
        }
        Err(last_error.unwrap_or_else(|| BackendError::NotReady {
            name: options.name.clone(),
            port: 0,
            reason: "no attempt made".to_owned(),
            stderr: String::new(),
        }))
    }

    /// Start several backends concurrently.
    pub async fn spawn_all(options: Vec<BackendOptions>) -> Result<Vec<Self>, BackendError> {
        let tasks: Vec<_> = options.into_iter().map(|o| tokio::spawn(Self::spawn(o))).collect();
        let mut backends = Vec::with_capacity(tasks.len());
        for task in tasks {
            match task.await {
                Ok(result) => backends.push(result?),
                Err(join) => {
                    return Err(BackendError::NotReady {
                        name: "?".to_owned(),
                        port: 0,
                        reason: format!("spawn task failed: {join}"),
                        stderr: String::new(),
                    });
                }
            }
        }
        Ok(backends)
    }

    /// The backend's name (its `whoami` `server` field).
    pub fn name(&self) -> &str {
        &self.options.name
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its MCP URL: `…/mcp` for streamable HTTP, `…/sse` for legacy SSE.
    pub fn url(&self) -> String {
        let path = match self.options.transport {
            PyTransport::StreamableHttp => "mcp",
            PyTransport::Sse => "sse",
        };
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// The options it was started with.
    pub fn options(&self) -> &BackendOptions {
        &self.options
    }

    /// Its recent stderr (SDK logs), for failure messages.
    pub fn stderr_tail(&self) -> String {
        self.process.stderr_tail()
    }

    /// True while the process is running.
    pub fn is_running(&mut self) -> bool {
        self.process.try_exit_status().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_follow_options() {
        let args = BackendOptions::sse("s1").args(4000);
        assert_eq!(args, ["--port", "4000", "--name", "s1", "--transport", "sse"]);
        let args = BackendOptions::streamable("b1").json_response().stateless().args(1);
        assert!(args.contains(&"--json-response".to_owned()));
        assert!(args.contains(&"--stateless".to_owned()));
        assert!(args.contains(&"streamable-http".to_owned()));
    }
}
