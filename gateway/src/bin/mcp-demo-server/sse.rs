//! Server-Sent Events framing: `event: message` events carrying one JSON-RPC message each,
//! with ids unique across every stream of the process (so across every stream of a session,
//! as the spec asks), plus the paced progress stream and the long-lived GET stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::protocol::Payload;

/// The media type of an SSE response.
pub const CONTENT_TYPE: &str = "text/event-stream";

/// The comment sent on idle GET streams.
pub const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// The comment that opens a GET stream. Without a first body chunk HTTP/1.1 response
/// headers would wait in hyper's buffer until the first keepalive.
pub const OPENED: &[u8] = b": stream opened\n\n";

static NEXT_EVENT_ID: AtomicU64 = AtomicU64::new(1);

/// Allocates the next event id.
pub fn next_event_id() -> u64 {
    NEXT_EVENT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Appends one `event: message` event holding `payload` (single-line JSON) to `out`.
pub fn push_event(out: &mut Vec<Bytes>, payload: Payload) {
    out.push(Bytes::from(format!("event: message\nid: {}\ndata: ", next_event_id())));
    payload.push_chunks(out);
    out.push(Bytes::from_static(b"\n\n"));
}

/// One event as a single buffer.
pub fn event(payload: Payload) -> Bytes {
    let mut parts = Vec::with_capacity(5);
    push_event(&mut parts, payload);
    Bytes::from(parts.concat())
}

/// Sends `events` in order, waiting `interval` between two of them.
pub fn paced(events: Vec<Bytes>, interval: Duration) -> BoxStream<'static, Bytes> {
    stream::iter(events.into_iter().enumerate())
        .then(move |(i, event)| async move {
            if i > 0 {
                tokio::time::sleep(interval).await;
            }
            event
        })
        .boxed()
}

/// The GET stream: [`OPENED`] at once, then a keepalive comment every `keepalive`, ending
/// when `alive` reports the session gone. A client that leaves drops the body, which ends it
/// too.
pub fn listen(keepalive: Duration, alive: watch::Receiver<()>) -> BoxStream<'static, Bytes> {
    let mut ticks = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let keepalives = stream::unfold((ticks, alive), |(mut ticks, mut alive)| async move {
        // Each pass either yields a keepalive or consumes a change; no value is ever sent on
        // the channel, so `changed()` only returns once, with an error, when the session goes.
        loop {
            tokio::select! {
                _ = ticks.tick() => return Some((Bytes::from_static(KEEPALIVE), (ticks, alive))),
                r = alive.changed() => if r.is_err() { return None },
            }
        }
    });
    stream::once(std::future::ready(Bytes::from_static(OPENED))).chain(keepalives).boxed()
}

/// Parses `--keepalive`-style durations: `15`, `15s`, `500ms`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| format!("`{s}` is not a duration like 15s or 500ms"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("`{s}`: unit must be ms, s or m")),
    };
    if d.is_zero() {
        return Err("duration must be positive".to_owned());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_increasing_ids_and_one_data_line() {
        let a = event(Payload::Inline(br#"{"a":1}"#.to_vec()));
        let b = event(Payload::Inline(br#"{"b":2}"#.to_vec()));
        let parse = |e: &Bytes| {
            let text = std::str::from_utf8(e).unwrap().to_owned();
            assert!(text.starts_with("event: message\nid: "), "{text}");
            assert!(text.ends_with("\n\n"));
            let lines: Vec<&str> = text.trim_end().lines().collect();
            assert_eq!(lines.len(), 3);
            assert!(lines[2].starts_with("data: {"));
            lines[1]["id: ".len()..].parse::<u64>().unwrap()
        };
        assert!(parse(&b) > parse(&a));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[tokio::test]
    async fn paced_keeps_order_and_waits() {
        let start = Instant::now();
        let events = vec![Bytes::from("1"), Bytes::from("2"), Bytes::from("3")];
        let got: Vec<Bytes> = paced(events, Duration::from_millis(20)).collect().await;
        assert_eq!(got, vec![Bytes::from("1"), Bytes::from("2"), Bytes::from("3")]);
        assert!(start.elapsed() >= Duration::from_millis(40));
    }

    #[tokio::test]
    async fn listen_sends_keepalives_until_the_session_goes() {
        let (tx, rx) = watch::channel(());
        let mut s = listen(Duration::from_millis(30), rx);
        let start = Instant::now();
        assert_eq!(s.next().await.unwrap(), Bytes::from_static(OPENED));
        assert!(start.elapsed() < Duration::from_millis(30));
        assert_eq!(s.next().await.unwrap(), Bytes::from_static(KEEPALIVE));
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(s.next().await.unwrap(), Bytes::from_static(KEEPALIVE));
        assert!(start.elapsed() >= Duration::from_millis(60));
        drop(tx);
        let end = tokio::time::timeout(Duration::from_secs(5), s.next()).await.unwrap();
        assert!(end.is_none());
    }
}
