//! Child processes for test peers: own process group, captured output, killed on drop.
//!
//! Each child runs in a new process group (`setpgid(0, 0)`), so killing the group
//! also ends anything it started; [`ChildProcess`] does that on drop. Stdout is split
//! into lines delivered through a channel (the peers speak line-oriented JSON), and the
//! last [`STDERR_TAIL_BYTES`] of stderr are kept for failure messages.

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// How much of a child's stderr is kept for error messages.
pub const STDERR_TAIL_BYTES: usize = 64 * 1024;

/// Errors driving a child process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started.
    #[error("{name}: failed to spawn: {source}")]
    Spawn {
        /// Which peer.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A wait ran past its deadline.
    #[error("{name}: timed out after {limit:?} waiting for {what}\n--- stderr tail ---\n{stderr}")]
    Timeout {
        /// Which peer.
        name: String,
        /// What was awaited.
        what: String,
        /// The deadline.
        limit: Duration,
        /// The child's recent stderr.
        stderr: String,
    },
    /// Talking to the child's stdin failed, or waiting for it failed.
    #[error("{name}: {what}: {source}")]
    Io {
        /// Which peer.
        name: String,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A running child process; killed (with its process group) on drop.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout_lines: mpsc::UnboundedReceiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl ChildProcess {
    /// Spawn `command` (stdout and stderr piped; stdin piped when `with_stdin`).
    pub fn spawn(name: &str, mut command: Command, with_stdin: bool) -> Result<Self, ProcessError> {
        command
            .stdin(if with_stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| ProcessError::Spawn { name: name.to_owned(), source })?;
        let stdin = child.stdin.take();
        let (line_tx, stdout_lines) = mpsc::unbounded_channel();
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line_tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            tokio::spawn(async move {
                let mut chunk = vec![0_u8; 8192];
                while let Ok(n) = pipe.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    let mut tail = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    tail.extend_from_slice(&chunk[..n]);
                    if tail.len() > STDERR_TAIL_BYTES {
                        let excess = tail.len() - STDERR_TAIL_BYTES;
                        tail.drain(..excess);
                    }
                }
            });
        }
        Ok(Self { name: name.to_owned(), child, stdin, stdout_lines, stderr })
    }

    /// The name given at spawn time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last [`STDERR_TAIL_BYTES`] the child wrote to stderr, lossily decoded.
    pub fn stderr_tail(&self) -> String {
        let tail = self.stderr.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&tail).into_owned()
    }

    /// The next stdout line, `Ok(None)` once stdout is closed; errors after `limit`.
    pub async fn next_line(&mut self, limit: Duration, what: &str) -> Result<Option<String>, ProcessError> {
        match tokio::time::timeout(limit, self.stdout_lines.recv()).await {
            Ok(line) => Ok(line),
            Err(_) => Err(self.timeout(what, limit)),
        }
    }

    /// Write `line` and a newline to the child's stdin.
    pub async fn write_line(&mut self, line: &str) -> Result<(), ProcessError> {
        let io = |source| ProcessError::Io { name: self.name.clone(), what: "writing stdin", source };
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(io(std::io::Error::other("stdin was not piped")));
        };
        let mut data = line.as_bytes().to_vec();
        data.push(b'\n');
        stdin.write_all(&data).await.map_err(io)?;
        stdin.flush().await.map_err(io)
    }

    /// `Some(status)` when the child has already exited.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Wait for the child to exit, at most `limit`.
    pub async fn wait(&mut self, limit: Duration) -> Result<ExitStatus, ProcessError> {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(source)) => Err(ProcessError::Io { name: self.name.clone(), what: "waiting for exit", source }),
            Err(_) => Err(self.timeout("exit", limit)),
        }
    }

    /// Kill the child's whole process group (best effort; idempotent).
    pub fn kill(&mut self) {
        if let Some(pid) = self.child.id() {
            // The group id equals the child's pid (spawned with process_group(0)).
            let _ = std::process::Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{pid}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.start_kill();
    }

    fn timeout(&self, what: &str, limit: Duration) -> ProcessError {
        ProcessError::Timeout { name: self.name.clone(), what: what.to_owned(), limit, stderr: self.stderr_tail() }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if self.try_exit_status().is_none() {
            self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[tokio::test]
    async fn captures_stdout_lines_and_stderr() {
        let mut child = ChildProcess::spawn("sh", sh("echo one; echo two; echo oops >&2"), false).unwrap();
        let limit = Duration::from_secs(5);
        assert_eq!(child.next_line(limit, "line").await.unwrap().as_deref(), Some("one"));
        assert_eq!(child.next_line(limit, "line").await.unwrap().as_deref(), Some("two"));
        assert_eq!(child.next_line(limit, "eof").await.unwrap(), None);
        assert!(child.wait(limit).await.unwrap().success());
        // stderr is drained by a task; give it a moment.
        for _ in 0..50 {
            if child.stderr_tail().contains("oops") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(child.stderr_tail().contains("oops"));
    }

    #[tokio::test]
    async fn stdin_round_trip() {
        let mut child = ChildProcess::spawn("cat", sh("read line; echo got:$line"), true).unwrap();
        child.write_line("hello").await.unwrap();
        let line = child.next_line(Duration::from_secs(5), "echo").await.unwrap();
        assert_eq!(line.as_deref(), Some("got:hello"));
    }

    #[tokio::test]
    async fn timeout_names_what_was_awaited() {
        let mut child = ChildProcess::spawn("sleeper", sh("echo started >&2; sleep 30"), false).unwrap();
        let err = child.next_line(Duration::from_millis(300), "READY line").await.unwrap_err();
        assert!(err.to_string().contains("READY line"), "{err}");
        child.kill();
        let status = child.wait(Duration::from_secs(5)).await.unwrap();
        assert!(!status.success());
    }

    #[tokio::test]
    async fn drop_kills_the_process_group() {
        // The grandchild writes its pid; after dropping the guard it must be gone.
        let pid_file = std::env::temp_dir().join(format!("mcp-e2e-pg-{}", std::process::id()));
        let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let child = ChildProcess::spawn("group", sh(&script), false).unwrap();
        let mut grandchild = String::new();
        for _ in 0..100 {
            grandchild = std::fs::read_to_string(&pid_file).unwrap_or_default().trim().to_owned();
            if !grandchild.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!grandchild.is_empty(), "grandchild never started");
        drop(child);
        let proc_path = format!("/proc/{grandchild}");
        let mut gone = false;
        for _ in 0..100 {
            let state = std::fs::read_to_string(format!("{proc_path}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for its (killed) parent's reaper.
            if state.is_empty() || state.split_whitespace().nth(2) == Some("Z") {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_file(&pid_file);
        assert!(gone, "grandchild {grandchild} survived the group kill");
    }
}
