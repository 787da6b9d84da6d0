//! The `mcp-gateway` binary: config validation and exit codes, `keygen`,
//! graceful shutdown on SIGTERM with a call in flight, SIGHUP reloads, and the
//! service manager's readiness protocol (`NOTIFY_SOCKET`).

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;

use crate::common::process::{Demo, GATEWAY_BIN, Pipe, Proc, run_to_end};
use crate::common::rpc::{call, client, get_stream, open_session, post, response_message, tool_text};
use crate::common::{KeyFile, bounded, key};

/// The gateway binary with a clean logging environment.
fn gateway(args: &[&str]) -> Command {
    let mut cmd = Command::new(GATEWAY_BIN);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("LOG_LEVEL")
        .env_remove("LOG_FORMAT")
        .env_remove("MCP_GATEWAY_CONFIG")
        .env_remove("MCP_GATEWAY_XDP_LOCAL_NODE")
        .env_remove("NOTIFY_SOCKET");
    cmd
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// An unknown key on line 4, a bad duration on line 6.
const BAD_YAML: &str =
    "server:\n  host: 127.0.0.1\n  port: 0\n  read_timout: 5s\nrouting:\n  health_check_interval: 5 parsecs\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_is_exit_1_with_every_error_located() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let bad = write(dir.path(), "bad.yaml", BAD_YAML);
        for args in [vec!["--config", bad.as_str(), "--validate"], vec!["validate", "--config", bad.as_str()]] {
            let (status, _, stderr) = run_to_end(gateway(&args)).await;
            assert_eq!(status.code(), Some(1), "{args:?}: {stderr}");
            assert!(stderr.contains(&format!("{bad}:4:")), "{args:?}: no file:line for the unknown key:\n{stderr}");
            assert!(stderr.contains("server.read_timout"), "{args:?}: key not named:\n{stderr}");
            assert!(stderr.contains(&format!("{bad}:6:")), "{args:?}: no file:line for the duration:\n{stderr}");
            assert!(stderr.contains("routing.health_check_interval"), "{args:?}: key not named:\n{stderr}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_config_flags_and_keygen() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyFile::new(&[key(50)]);
        let good = format!(
            "server:\n  host: 127.0.0.1\n  port: 0\nadmin:\n  host: 127.0.0.1\n  port: 0\nsessions:\n  key_file: \"{}\"\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/mcp\n",
            keys.path.display()
        );
        let good = write(dir.path(), "good.yaml", &good);
        let (status, _, stderr) = run_to_end(gateway(&["--config", &good, "--validate"])).await;
        assert_eq!(status.code(), Some(0), "{stderr}");
        assert!(stderr.contains("configuration OK"), "{stderr}");
        let (status, _, stderr) = run_to_end(gateway(&["validate", "--config", &good])).await;
        assert_eq!(status.code(), Some(0), "{stderr}");

        let (status, _, stderr) = run_to_end(gateway(&["--no-such-flag"])).await;
        assert_eq!(status.code(), Some(2), "{stderr}");

        let args = ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--backend", "nourl"];
        let (status, _, stderr) = run_to_end(gateway(&args)).await;
        assert!(!status.success(), "started with --backend nourl: {stderr}");
        assert!(stderr.contains("--backend") && stderr.contains("expected NAME=URL"), "{stderr}");

        let (status, first, _) = run_to_end(gateway(&["keygen"])).await;
        assert!(status.success());
        let (_, second, _) = run_to_end(gateway(&["keygen"])).await;
        for out in [&first, &second] {
            let k = out.trim_end_matches('\n');
            assert_eq!(k.len(), 64, "{out:?}");
            assert!(k.bytes().all(|b| b.is_ascii_hexdigit()), "{out:?}");
        }
        assert_ne!(first, second, "keygen printed the same key twice");
    })
    .await;
}

/// A fleet shares one file listing `xdp.nodes`; each gateway learns its own node from the
/// environment (a DaemonSet's `spec.nodeName`) or the flag, which wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_node_comes_from_the_environment_or_the_flag() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let shared =
            "xdp:\n  nodes:\n    - {name: node-a, address: 10.0.0.1}\n    - {name: node-b, address: 10.0.0.2}\n";
        let file = write(dir.path(), "fleet.yaml", shared);
        let validate = |env: Option<&str>, flag: Option<&str>| {
            let mut args = vec!["validate", "--config", file.as_str()];
            args.extend(flag.map(|f| ["--xdp-local-node", f]).into_iter().flatten());
            let mut cmd = gateway(&args);
            if let Some(v) = env {
                cmd.env("MCP_GATEWAY_XDP_LOCAL_NODE", v);
            }
            run_to_end(cmd)
        };
        let (status, _, stderr) = validate(None, None).await;
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("xdp.local_node: required") && stderr.contains("MCP_GATEWAY_XDP_LOCAL_NODE"),
            "{stderr}"
        );
        let (status, _, stderr) = validate(Some("node-b"), None).await;
        assert_eq!(status.code(), Some(0), "{stderr}");
        let (status, _, stderr) = validate(Some("node-c"), Some("node-a")).await;
        assert_eq!(status.code(), Some(0), "the flag should beat the environment: {stderr}");
        let (status, _, stderr) = validate(Some("node-c"), None).await;
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(
                "--xdp-local-node:0:0: xdp.local_node: \"node-c\" is not in xdp.nodes (names: node-a, node-b)"
            ),
            "{stderr}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_calls_then_exits_0() {
    drain_test(&[]).await;
}

/// `--workers 1` runs tokio's current-thread scheduler: the same drain, on one thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_on_the_single_thread_runtime() {
    drain_test(&["--workers", "1"]).await;
}

async fn drain_test(extra: &[&str]) {
    bounded(async {
        let demo = Demo::start("a").await;
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyFile::new(&[key(51)]);
        let yaml = format!(
            "server:\n  host: 127.0.0.1\n  port: 0\n  shutdown_timeout: 10s\nadmin:\n  host: 127.0.0.1\n  port: 0\n\
             sessions:\n  key_file: \"{}\"\nbackends:\n  - name: a\n    url: {}\nlogging:\n  format: json\n  level: info\n",
            keys.path.display(),
            demo.url
        );
        let config = write(dir.path(), "gateway.yaml", &yaml);
        let mut gw = Proc::spawn(gateway(&[&["--config", config.as_str()], extra].concat()));
        let log = listening(&mut gw).await;
        let addr = log["data_addr"].as_str().unwrap().to_owned();
        let url = format!("http://{addr}/mcp");

        let c = client();
        let sid = open_session(&c, &url).await;
        let in_flight = tokio::spawn({
            let (c, url, sid) = (c.clone(), url.clone(), sid.clone());
            async move {
                let resp = post(&c, &url, &call(9, "sleep", json!({"ms": 1000})), Some(&sid)).send().await.unwrap();
                (resp.status().as_u16(), response_message(resp).await)
            }
        });
        let mut stream = get_stream(&c, &url, &sid)
                        .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), 200);
        tokio::time::sleep(Duration::from_millis(250)).await;
        gw.signal("TERM");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(tokio::net::TcpStream::connect(&addr).await.is_err(), "new connections still accepted while draining");
        assert!(gw.wait_exit(Duration::from_millis(1)).await.is_none(), "exited before the call finished");

        // The GET stream is ended (cleanly, at an event boundary) so its client reconnects.
        let end = tokio::time::timeout(Duration::from_secs(3), async {
            while let Some(chunk) = stream.chunk().await.unwrap() {
                assert!(chunk.starts_with(b":"), "unexpected data on the GET stream: {chunk:?}");
            }
        });
        end.await.expect("GET stream still open 3 s into the drain");
        let (status, msg) = tokio::time::timeout(Duration::from_secs(5), in_flight).await.unwrap().unwrap();
        assert_eq!(status, 200);
        assert_eq!(tool_text(&msg), "slept");
        let exit = gw.wait_exit(Duration::from_secs(5)).await;
        let exit = exit.unwrap_or_else(|| panic!("gateway still running 5 s after the drain:\n{}", gw.output()));
        assert_eq!(exit.code(), Some(0), "{}", gw.output());
        assert!(tokio::net::TcpStream::connect(&addr).await.is_err());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_xdp_section_and_survives_a_broken_file() {
    bounded(async {
        let demo = Demo::start("a").await;
        let dir = tempfile::tempdir().unwrap();
        let base = format!(
            "server:\n  host: 127.0.0.1\n  port: 0\nadmin:\n  host: 127.0.0.1\n  port: 0\n\
             backends:\n  - name: a\n    url: {}\nlogging:\n  format: json\n  level: info\n",
            demo.url
        );
        let config = write(dir.path(), "gateway.yaml", &base);
        let mut gw = Proc::spawn(gateway(&["--config", &config]));
        let log = listening(&mut gw).await;
        let url = format!("http://{}/mcp", log["data_addr"].as_str().unwrap());
        let c = client();

        // A broken file: every error is logged with its place, and nothing changes.
        write(dir.path(), "gateway.yaml", &format!("{base}xdp:\n  syn_rate: lots\n"));
        gw.signal("HUP");
        let err = gw.wait_line(Pipe::Stderr, Duration::from_secs(10), |l| l.contains("keeping the running")).await;
        assert!(err.is_some(), "no reload error logged:\n{}", gw.output());
        assert!(gw.output().contains("gateway.yaml:14:13: xdp.syn_rate"), "{}", gw.output());
        open_session(&c, &url).await;

        // A valid change of the xdp section and of another section: the other one is named as
        // waiting for a restart; without a data plane the xdp section waits too.
        let changed = base.replace("level: info", "level: debug");
        write(dir.path(), "gateway.yaml", &format!("{changed}xdp:\n  syn_rate: 5\n"));
        gw.signal("HUP");
        let warn = gw.wait_line(Pipe::Stderr, Duration::from_secs(10), |l| l.contains("no XDP data plane")).await;
        assert!(warn.is_some(), "no reload outcome logged:\n{}", gw.output());
        assert!(gw.output().contains("changed more than the xdp section"), "{}", gw.output());
        open_session(&c, &url).await;
        assert!(gw.wait_exit(Duration::from_millis(1)).await.is_none(), "SIGHUP stopped the gateway");
        gw.signal("TERM");
        let exit = gw.wait_exit(Duration::from_secs(10)).await;
        let exit = exit.unwrap_or_else(|| panic!("gateway did not exit on SIGTERM:\n{}", gw.output()));
        assert_eq!(exit.code(), Some(0), "{}", gw.output());
    })
    .await;
}

/// `server.drain_delay`: after SIGTERM `/ready` is 503 at once, but new connections and
/// requests are still served until the delay is over; then the usual drain and exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_delay_withdraws_readiness_before_the_drain() {
    bounded(async {
        let demo = Demo::start("a").await;
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "server:\n  host: 127.0.0.1\n  port: 0\n  drain_delay: 1500ms\n  read_timeout: 60s\nadmin:\n  host: 127.0.0.1\n  port: 0\n\
             backends:\n  - name: a\n    url: {}\nlogging:\n  format: json\n  level: info\n",
            demo.url
        );
        let config = write(dir.path(), "gateway.yaml", &yaml);
        let mut gw = Proc::spawn(gateway(&["--config", &config, "--workers", "1"]));
        let log = listening(&mut gw).await;
        let url = format!("http://{}/mcp", log["data_addr"].as_str().unwrap());
        let ready = format!("http://{}/ready", log["admin_addr"].as_str().unwrap());
        let c = client();
        let status = |c: reqwest::Client, url: String| async move { c.get(url).send().await.unwrap().status().as_u16() };
        for _ in 0..50 {
            if status(c.clone(), ready.clone()).await == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(status(c.clone(), ready.clone()).await, 200);
        // A client that connected and sent nothing yet must not hold the drain for read_timeout.
        let silent = tokio::net::TcpStream::connect(log["data_addr"].as_str().unwrap()).await.unwrap();

        gw.signal("TERM");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(status(c.clone(), ready.clone()).await, 503, "still ready during drain_delay");
        // A new client (new connection) still gets a session.
        open_session(&client(), &url).await;
        assert!(gw.wait_exit(Duration::from_millis(1)).await.is_none(), "exited inside drain_delay");

        let exit = gw.wait_exit(Duration::from_secs(10)).await;
        let exit = exit.unwrap_or_else(|| panic!("gateway still running after drain_delay:\n{}", gw.output()));
        assert_eq!(exit.code(), Some(0), "{}", gw.output());
        assert!(gw.output().contains("still serving for server.drain_delay"), "{}", gw.output());
        drop(silent);
    })
    .await;
}

/// Under systemd's `Type=notify` (`NOTIFY_SOCKET` set): `READY=1` once the listeners are
/// bound (the admin port answers by then), `STOPPING=1` on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_socket_gets_ready_and_stopping() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let socket_path = dir.path().join("notify.sock");
        let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
        let config = write(
            dir.path(),
            "gateway.yaml",
            "server:\n  host: 127.0.0.1\n  port: 0\nadmin:\n  host: 127.0.0.1\n  port: 0\n\
             backends:\n  - name: a\n    url: http://127.0.0.1:9/mcp\n",
        );
        let mut cmd = gateway(&["--config", &config]);
        cmd.env("NOTIFY_SOCKET", &socket_path);
        let mut gw = Proc::spawn(cmd);
        let ready = notification(&socket).await;
        assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
        let status = ready.lines().find_map(|l| l.strip_prefix("STATUS=")).unwrap_or_else(|| panic!("{ready:?}"));
        let admin = status.rsplit(' ').next().unwrap();
        let health = client().get(format!("http://{admin}/health")).send().await.unwrap();
        assert_eq!(health.status(), 200, "READY=1 before the admin listener answers");

        gw.signal("TERM");
        let stopping = notification(&socket).await;
        assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
        let exit = gw.wait_exit(Duration::from_secs(10)).await.expect("no exit after SIGTERM");
        assert_eq!(exit.code(), Some(0), "{}", gw.output());
    })
    .await;
}

/// With `WatchdogSec=` (`WATCHDOG_USEC`, here 300 ms): `WATCHDOG=1` at half the period after
/// `READY=1`; not at all when `WATCHDOG_PID` names another process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_pings_reach_the_service_manager() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let config = write(
            dir.path(),
            "gateway.yaml",
            "server:\n  host: 127.0.0.1\n  port: 0\nadmin:\n  host: 127.0.0.1\n  port: 0\n\
             backends:\n  - name: a\n    url: http://127.0.0.1:9/mcp\n",
        );
        for (pid, expect) in [(None, true), (Some("1"), false)] {
            let socket_path = dir.path().join(format!("notify-{expect}.sock"));
            let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
            let mut cmd = gateway(&["--config", &config]);
            cmd.env("NOTIFY_SOCKET", &socket_path).env("WATCHDOG_USEC", "300000");
            if let Some(pid) = pid {
                cmd.env("WATCHDOG_PID", pid);
            }
            let mut gw = Proc::spawn(cmd);
            assert!(notification(&socket).await.lines().any(|l| l == "READY=1"));
            let started = tokio::time::Instant::now();
            let mut pings = 0;
            let mut buf = vec![0u8; 4096];
            while let Ok(Ok(n)) =
                tokio::time::timeout_at(started + Duration::from_millis(1000), socket.recv(&mut buf)).await
            {
                assert_eq!(&buf[..n], b"WATCHDOG=1", "{:?}", String::from_utf8_lossy(&buf[..n]));
                pings += 1;
            }
            if expect {
                // Every 150 ms for 1 s: 7 expected; a loaded machine may delay a few.
                assert!((3..=8).contains(&pings), "{pings} pings in 1 s:\n{}", gw.output());
            } else {
                assert_eq!(pings, 0, "pings meant for pid 1 were sent");
            }
            gw.signal("TERM");
            let exit = gw.wait_exit(Duration::from_secs(10)).await.expect("no exit after SIGTERM");
            assert_eq!(exit.code(), Some(0), "{}", gw.output());
        }
    })
    .await;
}

/// The gateway's JSON "listening" log line (`data_addr`, `admin_addr`), once it is serving.
async fn listening(gw: &mut Proc) -> Value {
    let line = gw.wait_line(Pipe::Stderr, Duration::from_secs(10), |l| l.contains("\"data_addr\"")).await;
    let line = line.unwrap_or_else(|| panic!("gateway did not start:\n{}", gw.output()));
    serde_json::from_str(&line).unwrap()
}

/// The next datagram on `socket`, as text.
async fn notification(socket: &tokio::net::UnixDatagram) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf)).await;
    String::from_utf8(buf[..n.expect("no notification within 10 s").unwrap()].to_vec()).unwrap()
}
