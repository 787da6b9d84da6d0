//! Processes under test: starting them pinned to a CPU (`taskset`) with a raised file limit
//! (`prlimit`), stopping them, and reading what the kernel counts for them: CPU time from
//! `/proc/PID/stat`, resident memory from `/proc/PID/status`, and per-core busy time from
//! `/proc/stat` (to tell when the load generator's core is the limit).

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::step;

/// The core the proxy under test runs on.
pub const PROXY_CPU: u32 = 0;
/// The core the load generator and the backend share.
pub const LOAD_CPU: u32 = 1;
/// Open-file limit wanted for every started process (10k SSE streams need ~20k fds in the
/// gateway: one downstream and one upstream socket each); capped by the hard limit.
pub const NOFILE: u64 = 65_536;
/// How long a process may take to accept connections.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long a process may take to exit after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// A started process, stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Proc {
    /// Short name for progress lines and errors.
    pub name: String,
    child: Child,
}

impl Proc {
    /// Start `program args` pinned to `cpu` with [`NOFILE`] open files, output to `log`.
    pub fn start(name: &str, cpu: u32, program: &Path, args: &[String], log: &Path) -> anyhow::Result<Self> {
        Self::start_env(name, cpu, program, args, log, &[])
    }

    /// [`Proc::start`] with extra environment variables.
    pub fn start_env(
        name: &str,
        cpu: u32,
        program: &Path,
        args: &[String],
        log: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let nofile = nofile_limit();
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={nofile}:{nofile}"))
            .args(["--", "taskset", "-c", &cpu.to_string()])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (key, value) in env {
            command.env(key, value);
        }
        step!("$ {} (cpu {cpu}, log {})", crate::run::display(&command), log.display());
        let child = command.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Self { name: name.to_owned(), child })
    }

    /// The process id (prlimit and taskset `exec`, so it is the program's own pid).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fail if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited unexpectedly: {status}", self.name);
        }
        Ok(())
    }

    /// Wait until `addr` accepts TCP connections (or the process dies, or [`START_LIMIT`]).
    pub fn wait_for_port(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_LIMIT;
        while Instant::now() < deadline {
            self.check_alive()?;
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(50));
        }
        bail!("{} did not accept connections on {addr} within {START_LIMIT:?}", self.name)
    }

    /// CPU time (user + system) of the process and its descendants, in seconds.
    pub fn cpu_secs(&self, ticks_per_sec: f64) -> anyhow::Result<f64> {
        let mut ticks = 0_u64;
        for pid in tree(self.pid()) {
            ticks += cpu_ticks(pid)?;
        }
        Ok(ticks as f64 / ticks_per_sec)
    }

    /// Resident set (`VmRSS`, or `VmHWM` for the peak) summed over the process tree, in KiB.
    pub fn memory_kib(&self, field: &str) -> anyhow::Result<u64> {
        let mut total = 0;
        for pid in tree(self.pid()) {
            total += status_kib(pid, field)?;
        }
        Ok(total)
    }

    /// Proportional set size summed over the process tree, in KiB: shared pages (nginx's
    /// master and worker map the same binary) are split between the processes sharing them.
    pub fn pss_kib(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for pid in tree(self.pid()) {
            let path = format!("/proc/{pid}/smaps_rollup");
            let text = std::fs::read_to_string(&path).with_context(|| path.clone())?;
            total += parse_status_kib(&text, "Pss").with_context(|| format!("no Pss in {path}"))?;
        }
        Ok(total)
    }

    /// SIGTERM, wait up to [`STOP_LIMIT`], then SIGKILL.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill").args(["-s", "TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + STOP_LIMIT;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        step!("{} ignored SIGTERM for {STOP_LIMIT:?}; killing", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The open-file limit processes get: [`NOFILE`], or the hard limit if that is lower (a
/// container without CAP_SYS_RESOURCE cannot raise it).
pub fn nofile_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    parse_nofile_hard(&limits).map_or(NOFILE, |hard| hard.min(NOFILE))
}

/// The hard "Max open files" of a `/proc/PID/limits` text (`None` for unlimited).
pub fn parse_nofile_hard(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(4)?.parse().ok()
}

/// `pid` and all its descendants (nginx: master and worker).
pub fn tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut next = 0;
    while next < all.len() && all.len() < 1024 {
        let current = all[next];
        next += 1;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{current}/task")) else { continue };
        for task in tasks.flatten() {
            let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            all.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    all
}

/// utime + stime of `pid` (all its threads, live and exited) in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("/proc/{pid}/stat"))?;
    parse_stat_ticks(&text).with_context(|| format!("parsing /proc/{pid}/stat"))
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line.
pub fn parse_stat_ticks(text: &str) -> anyhow::Result<u64> {
    // The command name (field 2) may hold spaces and parentheses: count from its last ')'.
    let rest = text.rsplit_once(')').map(|(_, rest)| rest).context("no ')' in stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field N is at index N - 3.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("/proc/{pid}/status"))?;
    parse_status_kib(&text, field).with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// The KiB value of `field` (e.g. `VmRSS`) in a `/proc/PID/status` text.
pub fn parse_status_kib(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}

/// Busy and total jiffies of one CPU, from `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Everything but idle and iowait.
    pub busy: u64,
    /// All states.
    pub total: u64,
}

impl CpuTimes {
    /// Read the counters of `cpu` now.
    pub fn read(cpu: u32) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string("/proc/stat").context("/proc/stat")?;
        parse_cpu_line(&text, cpu).with_context(|| format!("no cpu{cpu} line in /proc/stat"))
    }

    /// Fraction of the time between `self` and `later` that the CPU was busy.
    pub fn busy_since(self, later: Self) -> f64 {
        let total = later.total.saturating_sub(self.total);
        if total == 0 { 0.0 } else { later.busy.saturating_sub(self.busy) as f64 / total as f64 }
    }
}

/// The `cpuN` line of a `/proc/stat` text.
pub fn parse_cpu_line(text: &str, cpu: u32) -> Option<CpuTimes> {
    let label = format!("cpu{cpu}");
    let line = text.lines().find(|line| line.split_whitespace().next() == Some(label.as_str()))?;
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some(CpuTimes { busy: total - idle, total })
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux).
pub fn ticks_per_sec() -> f64 {
    crate::run::output(Command::new("getconf").arg("CLK_TCK"), Duration::from_secs(10))
        .and_then(|text| text.parse().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_skip_a_command_with_spaces() {
        let line = "42 (tokio (w) 1) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_stat_ticks(line).unwrap(), 325);
        assert!(parse_stat_ticks("garbage").is_err());
    }

    #[test]
    fn own_stat_parses() {
        cpu_ticks(std::process::id()).unwrap();
    }

    #[test]
    fn status_fields() {
        let text = "Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(parse_status_kib(text, "VmRSS"), Some(1024));
        assert_eq!(parse_status_kib(text, "VmHWM"), Some(2048));
        assert_eq!(parse_status_kib(text, "VmSwap"), None);
        let rollup = "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss:  900 kB\nPss:  700 kB\nPss_Anon: 500 kB\n";
        assert_eq!(parse_status_kib(rollup, "Pss"), Some(700));
    }

    #[test]
    fn nofile_hard_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 20000                files\n";
        assert_eq!(parse_nofile_hard(limits), Some(20_000));
        assert_eq!(parse_nofile_hard("Max open files  unlimited unlimited files"), None);
        assert!(nofile_limit() <= NOFILE);
    }

    #[test]
    fn cpu_lines() {
        let text = "cpu  9 9 9 9 9 0 0 0 0 0\ncpu0 10 0 5 80 5 0 0 0 0 0\ncpu1 50 0 40 10 0 0 0 0 0 0\n";
        let cpu0 = parse_cpu_line(text, 0).unwrap();
        assert_eq!(cpu0, CpuTimes { busy: 15, total: 100 });
        assert_eq!(parse_cpu_line(text, 1).unwrap().busy, 90);
        assert_eq!(parse_cpu_line(text, 7), None);
        let later = CpuTimes { busy: 65, total: 200 };
        assert!((cpu0.busy_since(later) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn tree_holds_the_process_and_its_children() {
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let pids = tree(std::process::id());
        assert!(pids.contains(&child.id()), "{pids:?}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
