//! The program's maps. Names, key/value types and capacities come from
//! `gateway-common`, so the loader opens them by the same names.
//!
//! None is declared pinned: a map pinned by name would make loading fail on hosts
//! without bpffs. The loader pins the ones worth keeping across restarts
//! (`OWNERS`, `RATE`, `COUNTERS`) by path when `xdp.pin_path` is set.

use aya_ebpf::macros::map;
use aya_ebpf::maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray};
use gateway_common::{
    BLOCKLIST_CAPACITY, COUNTER_SLOTS, ClientKey, MAGLEV_SIZE, MAX_NODES, NodeEntry, OWNERS_CAPACITY, PORTS_CAPACITY,
    RATE_CAPACITY, Settings, TokenBucket,
};

/// Gateway destination ports (host order) → 1.
#[map]
pub static PORTS: HashMap<u16, u8> = HashMap::with_max_entries(PORTS_CAPACITY, 0);

/// Index 0: the settings userspace wrote.
#[map]
pub static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);

/// Blocked IPv4 source prefixes → rule number.
#[map]
pub static BLOCKLIST_V4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(BLOCKLIST_CAPACITY, 0);

/// Blocked IPv6 source prefixes → rule number.
#[map]
pub static BLOCKLIST_V6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(BLOCKLIST_CAPACITY, 0);

/// Source → new-flow token bucket.
#[map]
pub static RATE: LruHashMap<ClientKey, TokenBucket> = LruHashMap::with_max_entries(RATE_CAPACITY, 0);

/// Node slot → address, next-hop MAC, liveness.
#[map]
pub static NODES: Array<NodeEntry> = Array::with_max_entries(MAX_NODES, 0);

/// Maglev lookup table: `ClientKey::maglev_index()` → node slot.
#[map]
pub static MAGLEV: Array<u32> = Array::with_max_entries(MAGLEV_SIZE, 0);

/// Client → owner node slot, so a client keeps its owner while membership changes.
#[map]
pub static OWNERS: LruHashMap<ClientKey, u32> = LruHashMap::with_max_entries(OWNERS_CAPACITY, 0);

/// Node address → slot: the peers whose encapsulated packets are decapsulated here.
#[map]
pub static PEERS: HashMap<[u8; 4], u32> = HashMap::with_max_entries(MAX_NODES, 0);

/// Packets by `counter_index(action, reason)`, per CPU.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);
