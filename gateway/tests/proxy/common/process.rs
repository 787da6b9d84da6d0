//! Child processes for the tests: the demo MCP server and the `mcp-gateway`
//! binary. Each child runs in its own process group, which is killed on drop;
//! stdout and stderr are collected line by line so tests can wait for a line
//! (bounded) and show the output when something fails.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// Path of the demo server binary built with this package.
pub const DEMO_BIN: &str = env!("CARGO_BIN_EXE_mcp-demo-server");
/// Path of the gateway binary built with this package.
pub const GATEWAY_BIN: &str = env!("CARGO_BIN_EXE_mcp-gateway");

/// Which output stream of a child.
#[derive(Debug, Clone, Copy)]
pub enum Pipe {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

type Lines = Arc<Mutex<Vec<String>>>;

/// A running child process; its whole process group is killed on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    pid: u32,
    stdout: Lines,
    stderr: Lines,
}

fn collect(pipe: Option<impl AsyncRead + Unpin + Send + 'static>, sink: &Lines) {
    let Some(pipe) = pipe else { return };
    let sink = Arc::clone(sink);
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap_or_else(PoisonError::into_inner).push(line);
        }
    });
}

impl Proc {
    /// Spawn `command` with piped stdout/stderr in a new process group.
    pub fn spawn(mut command: Command) -> Self {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        let pid = child.id().unwrap();
        let (stdout, stderr) = (Lines::default(), Lines::default());
        collect(child.stdout.take(), &stdout);
        collect(child.stderr.take(), &stderr);
        Self { child, pid, stdout, stderr }
    }

    /// The lines of one stream collected so far.
    pub fn lines(&self, pipe: Pipe) -> Vec<String> {
        let lines = match pipe {
            Pipe::Stdout => &self.stdout,
            Pipe::Stderr => &self.stderr,
        };
        lines.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Both streams, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.lines(Pipe::Stdout).join("\n"),
            self.lines(Pipe::Stderr).join("\n")
        )
    }

    /// The first line of `pipe` matching `pred`, waiting at most `limit`.
    pub async fn wait_line(&self, pipe: Pipe, limit: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(line) = self.lines(pipe).into_iter().find(|l| pred(l)) {
                return Some(line);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Send a signal (e.g. `TERM`) to the process itself, through `kill(1)`.
    pub fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .args(["-s", sig, &self.pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "kill -s {sig} {} failed", self.pid);
    }

    /// Wait for the exit, at most `limit`; `None` if it is still running.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(limit, self.child.wait()).await.ok().map(Result::unwrap)
    }

    /// Kill the process group and reap the child (bounded).
    pub async fn kill(&mut self) {
        self.kill_group();
        let _ = self.wait_exit(Duration::from_secs(5)).await;
    }

    fn kill_group(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.pid)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.start_kill();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            self.kill_group();
        }
    }
}

/// A running `mcp-demo-server`.
#[derive(Debug)]
pub struct Demo {
    /// The process.
    pub proc: Proc,
    /// Its MCP endpoint, `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// Its listening address.
    pub addr: SocketAddr,
}

impl Demo {
    /// A stateful JSON-mode demo server named `name`.
    pub async fn start(name: &str) -> Self {
        Self::spawn(&["--name", name], &[]).await
    }

    /// Start with extra `args` and environment `env`; waits for the listening line.
    pub async fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(DEMO_BIN);
        cmd.args(["--listen", "127.0.0.1:0"]).args(args).env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let proc = Proc::spawn(cmd);
        let prefix = "mcp-demo-server listening on ";
        let line = proc.wait_line(Pipe::Stdout, Duration::from_secs(10), |l| l.starts_with(prefix)).await;
        let Some(line) = line else { panic!("demo server did not start:\n{}", proc.output()) };
        let url = line[prefix.len()..].trim().to_owned();
        let addr = url.trim_start_matches("http://").split('/').next().unwrap().parse().unwrap();
        Self { proc, url, addr }
    }

    /// Kill it and wait until its port refuses connections (bounded).
    pub async fn kill(&mut self) {
        self.proc.kill().await;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(self.addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("demo server at {} still accepts connections after kill", self.addr);
    }
}

/// A local port with nothing listening on it.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Run a short-lived command to completion (at most 20 s): (status, stdout, stderr).
pub async fn run_to_end(mut cmd: Command) -> (ExitStatus, String, String) {
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("command did not finish within 20 s")
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status, text(&out.stdout), text(&out.stderr))
}
