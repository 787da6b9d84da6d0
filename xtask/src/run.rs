//! Running external commands with a time limit, and small helpers (hashing, stamps).

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::step;

/// How often a running child is polled.
const POLL: Duration = Duration::from_millis(100);

/// Render a command for progress lines.
pub fn display(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Wait for `child` at most `limit`; kill it and fail when the limit passes.
fn wait_bounded(child: &mut Child, what: &str, limit: Duration) -> anyhow::Result<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().with_context(|| format!("waiting for {what}"))? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} did not finish within {limit:?}; killed");
        }
        thread::sleep(POLL);
    }
}

/// Run `command` with inherited stdout/stderr (no stdin); fail on non-zero exit or after `limit`.
pub fn run(command: &mut Command, limit: Duration) -> anyhow::Result<()> {
    let what = display(command);
    step!("$ {what}");
    let mut child = command.stdin(Stdio::null()).spawn().with_context(|| format!("failed to start `{what}`"))?;
    let status = wait_bounded(&mut child, &what, limit)?;
    if !status.success() {
        bail!("`{what}` failed: {status}");
    }
    Ok(())
}

/// Run `command` and return its stdout (trimmed); `None` if it cannot start or fails.
pub fn output(command: &mut Command, limit: Duration) -> Option<String> {
    let what = display(command);
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().ok()?;
    let mut stdout = child.stdout.take()?;
    let reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let status = wait_bounded(&mut child, &what, limit).ok()?;
    let text = reader.join().ok()?;
    status.success().then(|| text.trim().to_owned())
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// True when the stamp file at `path` holds exactly `expected`.
pub fn stamp_matches(path: &Path, expected: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.trim() == expected.trim())
}

/// Write `content` to the stamp file at `path`.
pub fn write_stamp(path: &Path, content: &str) -> anyhow::Result<()> {
    std::fs::write(path, format!("{}\n", content.trim())).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn run_reports_failure_and_timeout() {
        run(Command::new("true").arg("x"), Duration::from_secs(10)).unwrap();
        let err = run(&mut Command::new("false"), Duration::from_secs(10)).unwrap_err();
        assert!(err.to_string().contains("failed"), "{err}");
        let started = Instant::now();
        let err = run(Command::new("sleep").arg("30"), Duration::from_millis(300)).unwrap_err();
        assert!(err.to_string().contains("did not finish"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn output_captures_stdout() {
        let text = output(Command::new("echo").arg(" hi "), Duration::from_secs(10));
        assert_eq!(text.as_deref(), Some("hi"));
        assert_eq!(output(&mut Command::new("false"), Duration::from_secs(10)), None);
        assert_eq!(output(&mut Command::new("/nonexistent/tool"), Duration::from_secs(10)), None);
    }

    #[test]
    fn stamps_round_trip() {
        let path = std::env::temp_dir().join(format!("xtask-stamp-{}", std::process::id()));
        assert!(!stamp_matches(&path, "a"));
        write_stamp(&path, "a b").unwrap();
        assert!(stamp_matches(&path, "a b"));
        assert!(!stamp_matches(&path, "a c"));
        std::fs::remove_file(&path).unwrap();
    }
}
