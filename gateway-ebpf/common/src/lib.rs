//! What the mcp-gateway XDP program and its userspace loader must agree on: map
//! names and capacities, the `#[repr(C)]` map values, the counter layout, and the
//! client hash both sides use for owner selection.
//!
//! Every map value is a fixed-width, explicitly padded `Copy` struct (no `bool`,
//! `Option` or enum), so its bytes mean the same in the kernel and in userspace; the
//! size asserts below pin the layouts. With the `user` feature the types implement
//! `aya::Pod` and can be read and written through aya's map wrappers.
#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_code)]

/// Names of the maps in the XDP object, as `EbpfLoader` and `Ebpf::map` see them.
pub mod maps {
    /// `HashMap<u16, u8>`: destination ports (host order) the program acts on.
    pub const PORTS: &str = "PORTS";
    /// `Array<Settings>` with one entry: rate limit and local-node settings.
    pub const SETTINGS: &str = "SETTINGS";
    /// `LpmTrie<[u8; 4], u32>`: blocked IPv4 source prefixes.
    pub const BLOCKLIST_V4: &str = "BLOCKLIST_V4";
    /// `LpmTrie<[u8; 16], u32>`: blocked IPv6 source prefixes.
    pub const BLOCKLIST_V6: &str = "BLOCKLIST_V6";
    /// `LruHashMap<ClientKey, TokenBucket>`: per-source new-flow token buckets.
    pub const RATE: &str = "RATE";
    /// `Array<NodeEntry>`: the gateway nodes, by stable slot.
    pub const NODES: &str = "NODES";
    /// `Array<u32>` of [`super::MAGLEV_SIZE`] entries: Maglev lookup table of node slots.
    pub const MAGLEV: &str = "MAGLEV";
    /// `LruHashMap<ClientKey, u32>`: client → owner slot, so a client keeps its owner.
    pub const OWNERS: &str = "OWNERS";
    /// `PerCpuArray<u64>` of [`super::COUNTER_SLOTS`]: packets by (action, reason).
    pub const COUNTERS: &str = "COUNTERS";
    /// `HashMap<[u8; 4], u32>`: node address → slot; encapsulated packets from these
    /// addresses to this node are decapsulated.
    pub const PEERS: &str = "PEERS";
}

/// The XDP program's name in the object.
pub const PROGRAM: &str = "gateway_xdp";

/// Capacity of [`maps::PORTS`].
pub const PORTS_CAPACITY: u32 = 64;
/// Capacity of each blocklist trie.
pub const BLOCKLIST_CAPACITY: u32 = 16_384;
/// Capacity of [`maps::RATE`] (least recently seen sources are evicted).
pub const RATE_CAPACITY: u32 = 65_536;
/// Capacity of [`maps::OWNERS`] (least recently seen clients are evicted and re-hashed).
pub const OWNERS_CAPACITY: u32 = 65_536;
/// Capacity of [`maps::NODES`]: the most gateway nodes a cluster can have.
pub const MAX_NODES: u32 = 64;
/// Maglev table size: a prime well above 100 × [`MAX_NODES`], as in the Maglev paper
/// and Katran (65537), so each node's share differs from 1/N by well under 1 %.
pub const MAGLEV_SIZE: u32 = 65_537;
/// Slot value meaning "no node" (in [`Settings::local_node`] and empty table entries).
pub const NO_NODE: u32 = u32::MAX;

/// Verdicts, as counter rows. The XDP return code is derived from them.
pub mod action {
    /// `XDP_DROP`.
    pub const DROP: u32 = 0;
    /// `XDP_PASS`: the local stack handles the packet.
    pub const PASS: u32 = 1;
    /// `XDP_TX`: encapsulated and sent back out to the owner node.
    pub const TX: u32 = 2;
    /// Number of actions.
    pub const COUNT: u32 = 3;
    /// Metric label of each action, by value.
    pub const NAMES: [&str; COUNT as usize] = ["drop", "pass", "tx"];
}

/// Why a verdict was given, as counter columns.
pub mod reason {
    /// Not TCP/UDP to a gateway port (non-IP, other ports, ICMP, fragments): untouched.
    pub const OTHER: u32 = 0;
    /// Gateway traffic that this node serves (it owns the client, or no cluster is set).
    pub const PASSED: u32 = 1;
    /// Source matched the blocklist.
    pub const BLOCKED: u32 = 2;
    /// Source exceeded its new-flow token bucket.
    pub const RATE_LIMITED: u32 = 3;
    /// Truncated or inconsistent IP/TCP/UDP header.
    pub const MALFORMED: u32 = 4;
    /// Encapsulated to the owner node.
    pub const FORWARDED: u32 = 5;
    /// A cluster is set but no live owner (or its MAC) is known: served locally.
    pub const NO_OWNER: u32 = 6;
    /// Growing the packet for encapsulation failed: served locally.
    pub const ENCAP_FAILED: u32 = 7;
    /// Forwarded to this node by a peer: the outer header was stripped.
    pub const DECAPSULATED: u32 = 8;
    /// Number of reasons.
    pub const COUNT: u32 = 9;
    /// Metric label of each reason, by value.
    pub const NAMES: [&str; COUNT as usize] = [
        "other",
        "passed",
        "blocked",
        "rate_limited",
        "malformed",
        "forwarded",
        "no_owner",
        "encap_failed",
        "decapsulated",
    ];
}

/// Length of [`maps::COUNTERS`].
pub const COUNTER_SLOTS: u32 = action::COUNT * reason::COUNT;

/// Counter slot of `(action, reason)`.
pub const fn counter_index(action: u32, reason: u32) -> u32 {
    action * reason::COUNT + reason
}

/// [`Settings::flags`] bit: the blocklist applies to every IP packet, not only to
/// traffic for the gateway's ports.
pub const FLAG_BLOCK_ALL_PORTS: u32 = 1;

/// The single [`maps::SETTINGS`] entry, written by userspace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Nanoseconds of credit one new flow costs (`1e9 / rate`); 0 disables rate limiting.
    pub ns_per_token: u64,
    /// Most credit a source can hold, in nanoseconds (`burst × ns_per_token`).
    pub burst_ns: u64,
    /// This node's IPv4 address (network order): the outer source of encapsulated packets.
    pub local_addr: [u8; 4],
    /// This node's slot in [`maps::NODES`], or [`NO_NODE`].
    pub local_node: u32,
    /// Live nodes in the Maglev table; 0 turns owner selection off (every client is local).
    pub node_count: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
}

/// One [`maps::NODES`] slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeEntry {
    /// IPv4 address (network order): the outer destination when forwarding to this node.
    pub addr: [u8; 4],
    /// Ethernet address of the next hop towards the node.
    pub mac: [u8; 6],
    /// 1 when the node is healthy; a client pinned to a dead node is re-hashed.
    pub live: u8,
    /// 1 when `mac` is known; without it the node cannot be forwarded to.
    pub has_mac: u8,
    /// Explicit padding to 16 bytes; always zero.
    pub pad: [u8; 4],
}

/// Key of the per-client maps: an IPv6 address, or an IPv4 one mapped as `::ffff:a.b.c.d`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// The address bytes, network order.
    pub addr: [u8; 16],
}

impl ClientKey {
    /// The IPv4-mapped key of `addr` (network order).
    pub const fn v4(addr: [u8; 4]) -> Self {
        let [a, b, c, d] = addr;
        Self { addr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d] }
    }

    /// The key of an IPv6 address (network order).
    pub const fn v6(addr: [u8; 16]) -> Self {
        Self { addr }
    }

    /// Hash used to index the Maglev table: FNV-1a over the 16 bytes, then the
    /// murmur3 finalizer so neighbouring addresses spread over the table.
    pub const fn hash(&self) -> u32 {
        let mut h: u32 = 0x811c_9dc5;
        let mut i = 0;
        while i < 16 {
            h ^= self.addr[i] as u32;
            h = h.wrapping_mul(0x0100_0193);
            i += 1;
        }
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }

    /// The Maglev table index of this client.
    pub const fn maglev_index(&self) -> u32 {
        self.hash() % MAGLEV_SIZE
    }
}

/// One [`maps::RATE`] value: a token bucket kept as nanoseconds of credit, so the
/// kernel side needs no division.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenBucket {
    /// Credit in nanoseconds; a new flow costs [`Settings::ns_per_token`].
    pub credit_ns: u64,
    /// `bpf_ktime_get_ns()` of the last refill.
    pub last_ns: u64,
}

const _: () = assert!(core::mem::size_of::<Settings>() == 32);
const _: () = assert!(core::mem::size_of::<NodeEntry>() == 16);
const _: () = assert!(core::mem::size_of::<ClientKey>() == 16);
const _: () = assert!(core::mem::size_of::<TokenBucket>() == 16);
const _: () = assert!(MAGLEV_SIZE > 100 * MAX_NODES);

#[cfg(feature = "user")]
mod pod {
    //! `aya::Pod` for the map types: each is `#[repr(C)]`, `Copy`, made of integers
    //! and byte arrays with explicit padding, so every bit pattern is valid.
    #![expect(unsafe_code, reason = "aya::Pod is an unsafe marker trait; the layouts are asserted above")]

    unsafe impl aya::Pod for super::Settings {}
    unsafe impl aya::Pod for super::NodeEntry {}
    unsafe impl aya::Pod for super::ClientKey {}
    unsafe impl aya::Pod for super::TokenBucket {}
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    #[test]
    fn counter_slots_are_dense_and_distinct() {
        let mut seen = [false; COUNTER_SLOTS as usize];
        for a in 0..action::COUNT {
            for r in 0..reason::COUNT {
                let i = counter_index(a, r) as usize;
                assert!(!seen[i], "slot {i} used twice");
                seen[i] = true;
            }
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn v4_keys_are_mapped_and_hash_spreads_neighbours() {
        let k = ClientKey::v4([10, 0, 0, 1]);
        assert_eq!(&k.addr[10..], &[0xff, 0xff, 10, 0, 0, 1]);
        let mut buckets = [0u32; 16];
        for i in 0..=255u8 {
            let idx = ClientKey::v4([10, 0, 0, i]).maglev_index();
            assert!(idx < MAGLEV_SIZE);
            buckets[(idx % 16) as usize] += 1;
        }
        // 256 consecutive addresses over 16 buckets: none empty, none holding a third.
        assert!(buckets.iter().all(|&n| n > 0 && n < 85), "{buckets:?}");
    }
}
