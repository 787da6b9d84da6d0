//! The flood sender of `cargo xtask bench --flood`: TCP SYNs with spoofed (blocked)
//! source addresses and random-ish source ports, sent as fast as one raw socket per
//! thread allows, bounded by a packet count and a deadline.
//!
//! It runs inside the attacker namespace: the bench re-executes its own binary there
//! (`ip netns exec NS xtask bench --flood-send SPEC`), and this module prints one
//! `FLOOD sent=N errors=E secs=S` line that the bench parses.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Longest flood one sender may run.
const MAX_SECS: f64 = 120.0;
/// The deadline is checked every this many packets.
const CHECK_EVERY: u64 = 256;

/// What to send, from the `--flood-send` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct SendSpec {
    /// Destination address and TCP port.
    pub target: SocketAddrV4,
    /// Source addresses, used in turn.
    pub sources: Vec<Ipv4Addr>,
    /// Seconds to send for.
    pub secs: f64,
    /// Packets to send at most (over all threads).
    pub max_packets: u64,
    /// Sending threads (one raw socket each).
    pub threads: u32,
}

impl SendSpec {
    /// `target=A:P;from=A,B;secs=S;max=N;threads=T`.
    pub fn render(&self) -> String {
        let from: Vec<String> = self.sources.iter().map(ToString::to_string).collect();
        format!(
            "target={};from={};secs={};max={};threads={}",
            self.target,
            from.join(","),
            self.secs,
            self.max_packets,
            self.threads
        )
    }

    /// Parses [`SendSpec::render`]'s format.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let field = |key: &str| -> anyhow::Result<&str> {
            text.split(';')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .with_context(|| format!("no {key}= in flood spec `{text}`"))
        };
        let spec = Self {
            target: field("target")?.parse().context("flood target")?,
            sources: field("from")?.split(',').map(str::parse).collect::<Result<_, _>>().context("flood sources")?,
            secs: field("secs")?.parse().context("flood secs")?,
            max_packets: field("max")?.parse().context("flood max")?,
            threads: field("threads")?.parse().context("flood threads")?,
        };
        ensure!(!spec.sources.is_empty(), "flood spec without sources");
        ensure!(spec.secs > 0.0 && spec.secs <= MAX_SECS, "flood secs must be in (0, {MAX_SECS}]");
        ensure!((1..=16).contains(&spec.threads), "flood threads must be 1 to 16");
        Ok(spec)
    }
}

/// Ones' complement sum of big-endian 16-bit words (an odd last byte is padded).
pub fn sum_words(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// The Internet checksum (RFC 1071) of a partial sum.
pub fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 + TCP SYN packet (40 bytes, no options). The IP checksum, total length and
/// id are left for the kernel (`IP_HDRINCL` fills them); the TCP checksum is computed.
pub fn syn_packet(src: Ipv4Addr, dst: SocketAddrV4, sport: u16, seq: u32) -> [u8; 40] {
    let mut p = [0u8; 40];
    p[0] = 0x45;
    p[3] = 40;
    p[6] = 0x40; // don't fragment
    p[8] = 64; // TTL
    p[9] = 6; // TCP
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.ip().octets());
    let tcp = &mut p[20..];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dst.port().to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[12] = 5 << 4; // data offset: 5 words
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&64240_u16.to_be_bytes()); // window
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.ip().octets());
    pseudo[9] = 6;
    pseudo[10..12].copy_from_slice(&20_u16.to_be_bytes());
    let sum = sum_words(sum_words(0, &pseudo), &p[20..]);
    p[36..38].copy_from_slice(&fold(sum).to_be_bytes());
    p
}

/// Packets sent and send errors of a flood.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendCount {
    /// Packets the kernel accepted.
    pub sent: u64,
    /// `send_to` calls that failed (e.g. ENOBUFS).
    pub errors: u64,
}

/// The line the sender prints.
pub fn render_count(count: SendCount, secs: f64) -> String {
    format!("FLOOD sent={} errors={} secs={secs:.3}", count.sent, count.errors)
}

/// Reads [`render_count`]'s line out of the sender's output.
pub fn parse_count(text: &str) -> anyhow::Result<(SendCount, f64)> {
    let line = text.lines().find_map(|l| l.strip_prefix("FLOOD ")).context("the sender printed no FLOOD line")?;
    let value = |key: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .with_context(|| format!("no {key} in `{line}`"))
    };
    let count = SendCount { sent: value("sent")?.parse()?, errors: value("errors")?.parse()? };
    Ok((count, value("secs")?.parse()?))
}

fn worker(spec: &SendSpec, index: u32, deadline: Instant) -> anyhow::Result<SendCount> {
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP)).context("raw socket (needs root)")?;
    socket.set_header_included_v4(true).context("IP_HDRINCL")?;
    // Replies (SYN-ACKs when nothing filters) land in this socket too: keep its queue tiny.
    let _ = socket.set_recv_buffer_size(4096);
    let dst = SockAddr::from(SocketAddrV4::new(*spec.target.ip(), 0));
    let quota = spec.max_packets / u64::from(spec.threads);
    let mut count = SendCount::default();
    let mut i = u64::from(index);
    let mut last_error = None;
    while count.sent + count.errors < quota {
        if (count.sent + count.errors) % CHECK_EVERY == 0 && Instant::now() >= deadline {
            break;
        }
        let src = spec.sources[(i % spec.sources.len() as u64) as usize];
        let sport = 1024 + (i % 64_000) as u16;
        let packet = syn_packet(src, spec.target, sport, (i as u32).wrapping_mul(2_654_435_761));
        match socket.send_to(&packet, &dst) {
            Ok(_) => count.sent += 1,
            Err(e) => {
                count.errors += 1;
                last_error = Some(e);
            }
        }
        i += u64::from(spec.threads);
    }
    if count.sent == 0 {
        bail!("the flood sender sent nothing: {last_error:?}");
    }
    Ok(count)
}

/// Sends the flood of `spec` and returns the counts.
pub fn send(spec: &SendSpec) -> anyhow::Result<SendCount> {
    let deadline = Instant::now() + Duration::from_secs_f64(spec.secs.min(MAX_SECS));
    let results: Vec<anyhow::Result<SendCount>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..spec.threads).map(|t| scope.spawn(move || worker(spec, t, deadline))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("sender panicked")))).collect()
    });
    let mut total = SendCount::default();
    for result in results {
        let count = result?;
        total.sent += count.sent;
        total.errors += count.errors;
    }
    Ok(total)
}

/// `xtask bench --flood-send SPEC`: send and print the count line.
#[expect(clippy::print_stdout, reason = "the bench reads the sender's count from stdout")]
pub fn main(spec: &str) -> anyhow::Result<()> {
    let spec = SendSpec::parse(spec)?;
    let started = Instant::now();
    let count = send(&spec)?;
    println!("{}", render_count(count, started.elapsed().as_secs_f64()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let sum = sum_words(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
        assert_eq!(fold(sum), !0xddf2);
        assert_eq!(sum_words(0, &[0x12]), 0x1200);
    }

    #[test]
    fn syn_checksum_verifies() {
        let (src, dst) = ("10.204.1.129".parse().unwrap(), "10.204.1.1:8443".parse().unwrap());
        let p = syn_packet(src, dst, 40_000, 7);
        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&p[12..16]);
        pseudo[4..8].copy_from_slice(&p[16..20]);
        pseudo[9] = 6;
        pseudo[11] = 20;
        // Summing a segment together with its checksum gives 0xffff, i.e. fold() == 0.
        assert_eq!(fold(sum_words(sum_words(0, &pseudo), &p[20..])), 0);
        assert_eq!(u16::from_be_bytes([p[22], p[23]]), 8443);
        assert_eq!(u16::from_be_bytes([p[20], p[21]]), 40_000);
        assert_eq!(p[33], 0x02);
        let other = syn_packet(src, dst, 40_001, 7);
        assert_ne!(p[36..38], other[36..38]);
    }

    #[test]
    fn spec_round_trips_and_is_checked() {
        let spec = SendSpec {
            target: "10.204.1.1:8443".parse().unwrap(),
            sources: vec!["10.204.1.129".parse().unwrap(), "10.204.1.130".parse().unwrap()],
            secs: 10.5,
            max_packets: 1000,
            threads: 2,
        };
        assert_eq!(SendSpec::parse(&spec.render()).unwrap(), spec);
        assert!(SendSpec::parse("target=1.2.3.4:1;from=;secs=1;max=1;threads=1").is_err());
        assert!(SendSpec::parse("target=1.2.3.4:1;from=1.1.1.1;secs=999;max=1;threads=1").is_err());
        assert!(SendSpec::parse("target=1.2.3.4:1;secs=1;max=1;threads=1").is_err());
    }

    #[test]
    fn count_line_round_trips() {
        let count = SendCount { sent: 123_456, errors: 7 };
        let text = format!("noise\n{}\n", render_count(count, 10.25));
        assert_eq!(parse_count(&text).unwrap(), (count, 10.25));
        assert!(parse_count("nothing").is_err());
    }
}
