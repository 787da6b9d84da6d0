//! What happens to gateway traffic once its headers are parsed: shedding
//! (blocklist, per-source token bucket), owner selection (pinned owner, else the
//! Maglev table) and IP-in-IP encapsulation towards a remote owner.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use aya_ebpf::maps::lpm_trie::Key;
use aya_ebpf::programs::XdpContext;
use gateway_common::{ClientKey, NO_NODE, NodeEntry, Settings, TokenBucket, action, counter_index, reason};

use crate::log;
use crate::maps::{BLOCKLIST_V4, BLOCKLIST_V6, COUNTERS, MAGLEV, NODES, OWNERS, PEERS, RATE};
use crate::packet::{self, ETH_LEN, ETH_P_IPV4, EthHdr, IPV4_LEN, Ipv4Hdr, Malformed};

/// What to do with a packet, and why (one counter slot).
#[derive(Clone, Copy)]
pub struct Verdict {
    pub action: u32,
    pub reason: u32,
}

impl Verdict {
    pub const fn new(action: u32, reason: u32) -> Self {
        Self { action, reason }
    }
}

/// One packet of gateway traffic, as the parsers found it.
pub struct Flow {
    /// The source address as a per-client key.
    pub client: ClientKey,
    /// TCP SYN without ACK, or any UDP datagram.
    pub new_flow: bool,
    /// Bytes of the IP packet (header included), the payload of the outer header.
    pub ip_len: usize,
    /// Protocol number of the outer header when encapsulating (IPIP or IPv6).
    pub encap_proto: u8,
}

/// Adds one to the counter of `verdict` on this CPU.
#[inline(always)]
#[expect(unsafe_code, reason = "a per-CPU array slot is only reachable through a raw pointer")]
pub fn count(verdict: Verdict) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter_index(verdict.action, verdict.reason)) {
        // SAFETY: the pointer is this CPU's value of an existing slot; nothing else
        // on this CPU runs the program concurrently.
        unsafe { *slot += 1 };
    }
}

/// True when the IPv4 source is in the blocklist.
#[inline(always)]
pub fn blocked_v4(src: [u8; 4]) -> bool {
    BLOCKLIST_V4.get(Key::new(32, src)).is_some()
}

/// True when the IPv6 source is in the blocklist.
#[inline(always)]
pub fn blocked_v6(src: [u8; 16]) -> bool {
    BLOCKLIST_V6.get(Key::new(128, src)).is_some()
}

/// True when `src` is a peer node whose encapsulated packets this node accepts.
#[inline(always)]
pub fn is_peer(src: [u8; 4]) -> bool {
    PEERS.get_ptr(src).is_some()
}

/// Strips the outer IPv4 header a peer added (20 bytes, as [`encapsulate`] writes
/// it), leaving the client's packet behind a rewritten Ethernet header, for the
/// local stack. The peer already shed the packet, so it is passed as is.
#[inline(always)]
pub fn decapsulate(ctx: &XdpContext, inner_ether_type: u16) -> Verdict {
    let Ok(eth) = packet::read::<EthHdr>(ctx, 0) else { return Verdict::new(action::DROP, reason::MALFORMED) };
    if packet::adjust_head(ctx, IPV4_LEN as i32).is_err() {
        // Unchanged: the stack drops an IP-in-IP packet it has no tunnel for.
        return Verdict::new(action::PASS, reason::OTHER);
    }
    let inner_eth = EthHdr { dst: eth.dst, src: eth.src, ether_type: inner_ether_type.to_be_bytes() };
    match packet::write(ctx, 0, inner_eth) {
        Ok(()) => Verdict::new(action::PASS, reason::DECAPSULATED),
        Err(Malformed) => Verdict::new(action::DROP, reason::MALFORMED),
    }
}

/// Shedding and owner selection for gateway traffic the blocklist let through.
#[inline(always)]
pub fn gateway(ctx: &XdpContext, flow: &Flow, settings: &Settings) -> Verdict {
    if flow.new_flow && !take_token(ctx, &flow.client, settings) {
        return Verdict::new(action::DROP, reason::RATE_LIMITED);
    }
    if settings.node_count == 0 {
        return Verdict::new(action::PASS, reason::PASSED);
    }
    let Some((slot, node)) = owner(ctx, &flow.client) else {
        return Verdict::new(action::PASS, reason::NO_OWNER);
    };
    if slot == settings.local_node {
        return Verdict::new(action::PASS, reason::PASSED);
    }
    if node.has_mac == 0 {
        return Verdict::new(action::PASS, reason::NO_OWNER);
    }
    encapsulate(ctx, &node, settings, flow)
}

/// Takes one token from the client's bucket; false when it is empty.
///
/// The bucket keeps nanoseconds of credit: elapsed time is added (capped at the
/// burst) and a new flow costs `ns_per_token`, so no division runs in the kernel.
/// Buckets of different CPUs may race on one source; the error is one token.
#[inline(always)]
#[expect(unsafe_code, reason = "an LRU hash value is only reachable through a raw pointer")]
fn take_token(ctx: &XdpContext, client: &ClientKey, settings: &Settings) -> bool {
    let cost = settings.ns_per_token;
    if cost == 0 {
        return true;
    }
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    match RATE.get_ptr_mut(client) {
        Some(bucket) => {
            // SAFETY: the value of a live LRU element; it stays valid during this run.
            let bucket = unsafe { &mut *bucket };
            let elapsed = now.saturating_sub(bucket.last_ns);
            let credit = bucket.credit_ns.saturating_add(elapsed).min(settings.burst_ns);
            bucket.last_ns = now;
            if credit < cost {
                bucket.credit_ns = credit;
                false
            } else {
                bucket.credit_ns = credit - cost;
                true
            }
        }
        None => {
            let fresh = TokenBucket { credit_ns: settings.burst_ns.saturating_sub(cost), last_ns: now };
            // A full map evicts the least recently used source; an insert error
            // (memory pressure) lets the flow through rather than dropping it.
            if let Err(errno) = RATE.insert(client, fresh, 0)
                && log::first(log::BUCKET_FAILED)
            {
                aya_log_ebpf::warn!(ctx, "XDP: creating a token bucket failed ({}); logged once per load", errno);
            }
            true
        }
    }
}

/// The client's owner: its pinned node while that node is live, else the Maglev
/// table's choice, which is then pinned.
#[inline(always)]
#[expect(unsafe_code, reason = "an LRU hash value is only reachable through a raw pointer")]
fn owner(ctx: &XdpContext, client: &ClientKey) -> Option<(u32, NodeEntry)> {
    if let Some(pinned) = OWNERS.get_ptr(client) {
        // SAFETY: the value of a live LRU element, copied out at once.
        let slot = unsafe { *pinned };
        if let Some(node) = NODES.get(slot)
            && node.live == 1
        {
            return Some((slot, *node));
        }
    }
    let slot = *MAGLEV.get(client.maglev_index())?;
    if slot == NO_NODE {
        return None;
    }
    let node = *NODES.get(slot)?;
    if node.live != 1 {
        return None;
    }
    // Failing to pin (memory pressure) only means the next packet hashes again.
    if let Err(errno) = OWNERS.insert(client, slot, 0)
        && log::first(log::PIN_FAILED)
    {
        aya_log_ebpf::warn!(ctx, "XDP: pinning a client to node {} failed ({}); logged once per load", slot, errno);
    }
    Some((slot, node))
}

/// Prepends an outer IPv4 header addressed to `node` and a new Ethernet header
/// (to the node's next hop, from this interface), ready for `XDP_TX`.
///
/// Until the head moves the frame is unchanged, so a failure there passes it to
/// the local node, which can still serve the client through userspace session
/// routing; after the move the frame is only valid once both headers are written.
#[inline(always)]
fn encapsulate(ctx: &XdpContext, node: &NodeEntry, settings: &Settings, flow: &Flow) -> Verdict {
    let unchanged = Verdict::new(action::PASS, reason::ENCAP_FAILED);
    // The frame arrived addressed to this interface: its destination MAC becomes
    // the new source. Read it before the head moves (pointers die with the move).
    let Ok(eth) = packet::read::<EthHdr>(ctx, 0) else { return unchanged };
    let Ok(tot_len) = u16::try_from(flow.ip_len + IPV4_LEN) else { return unchanged };
    if packet::adjust_head(ctx, -(IPV4_LEN as i32)).is_err() {
        return unchanged;
    }
    match write_headers(ctx, node, settings, flow, eth.dst, tot_len) {
        Ok(()) => Verdict::new(action::TX, reason::FORWARDED),
        Err(Malformed) => {
            if log::first(log::ENCAP_FAILED) {
                aya_log_ebpf::error!(ctx, "XDP: encapsulated frame too short for its headers; logged once per load");
            }
            Verdict::new(action::DROP, reason::ENCAP_FAILED)
        }
    }
}

/// Writes the new Ethernet and outer IPv4 headers at the front of the grown frame.
#[inline(always)]
fn write_headers(
    ctx: &XdpContext,
    node: &NodeEntry,
    settings: &Settings,
    flow: &Flow,
    our_mac: [u8; 6],
    tot_len: u16,
) -> Result<(), Malformed> {
    let mut outer = Ipv4Hdr {
        version_ihl: 0x45,
        tos: 0,
        tot_len: tot_len.to_be_bytes(),
        id: [0, 0],
        frag_off: [0, 0],
        ttl: 64,
        protocol: flow.encap_proto,
        check: [0, 0],
        src: settings.local_addr,
        dst: node.addr,
    };
    outer.check = packet::ipv4_checksum(&outer);
    let new_eth = EthHdr { dst: node.mac, src: our_mac, ether_type: ETH_P_IPV4.to_be_bytes() };
    packet::write(ctx, 0, new_eth)?;
    packet::write(ctx, ETH_LEN, outer)
}
