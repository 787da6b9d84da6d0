//! Loading the embedded XDP object, writing a [`Plan`] into its maps, attaching
//! it to interfaces, and reading its counters.
//!
//! Order matters while traffic flows: the maps are written before any attach, and
//! within a write `SETTINGS` (whose `node_count` turns owner selection on) comes
//! last, after the nodes and the Maglev table it refers to. Attaching uses
//! `bpf_link`, so the program detaches when this process exits, even by a crash.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use aya::maps::lpm_trie::Key;
use aya::maps::{Array, HashMap, LpmTrie, Map, MapData, PerCpuArray};
use aya::programs::{Xdp, XdpMode as AttachMode};
use aya::{Ebpf, EbpfLoader};
use gateway_common::{COUNTER_SLOTS, ClientKey, NO_NODE, NodeEntry, PROGRAM, Settings, maps};

use super::pinned_link;
use super::plan::Plan;
use super::{EbpfError, Peer, maglev};
use crate::config::{XdpConfig, XdpMode};
use crate::telemetry::metrics::XdpSample;

/// The XDP object built by `build.rs` (empty with `AYA_BUILD_SKIP=1`).
fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/gateway-xdp"))
}

/// Maps pinned under `xdp.pin_path`: state worth keeping across a restart.
const PINNED: [&str; 3] = [maps::OWNERS, maps::RATE, maps::COUNTERS];

/// Where the program is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// Interface name.
    pub interface: String,
    /// `driver`, `generic`, or `pinned` (took over a link pinned by an earlier gateway).
    pub mode: &'static str,
}

/// A loaded XDP program with its maps; dropping it detaches the program.
pub struct DataPlane {
    ebpf: Mutex<Ebpf>,
    plan: Mutex<Plan>,
    counters: PerCpuArray<MapData, u64>,
    attached: Vec<Attached>,
    /// The task forwarding the program's aya-log records, when one runs.
    logs: Option<tokio::task::AbortHandle>,
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        if let Some(task) = &self.logs {
            task.abort();
        }
    }
}

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlane").field("attached", &self.attached).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Map, EbpfError> {
    ebpf.map_mut(name).ok_or(EbpfError::Missing { what: "map", name })
}

fn map_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> EbpfError {
    move |source| EbpfError::Map { name, source }
}

fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp, EbpfError> {
    let prog = ebpf.program_mut(PROGRAM).ok_or(EbpfError::Missing { what: "program", name: PROGRAM })?;
    prog.try_into().map_err(|source| EbpfError::Program { source })
}

/// True when a bpf filesystem is mounted at `dir` or one of its parents.
fn on_bpffs(mounts: &str, dir: &Path) -> bool {
    mounts.lines().any(|line| {
        let mut f = line.split_whitespace();
        let (_, at, kind) = (f.next(), f.next(), f.next());
        kind == Some("bpf") && at.is_some_and(|at| dir.starts_with(at))
    })
}

impl DataPlane {
    /// Loads the program, writes the plan for `cfg` and `ports`, and attaches it
    /// to every configured interface.
    pub fn start(cfg: &XdpConfig, ports: &[u16]) -> Result<Self, EbpfError> {
        let mut plane = Self::load(cfg, ports)?;
        for interface in &cfg.interfaces {
            let mode = plane.attach(interface, cfg.mode, cfg.pin_path.as_deref())?;
            plane.attached.push(Attached { interface: interface.clone(), mode });
        }
        Ok(plane)
    }

    /// Loads the program and writes its maps without attaching it anywhere.
    pub fn load(cfg: &XdpConfig, ports: &[u16]) -> Result<Self, EbpfError> {
        let bytes = object();
        if bytes.is_empty() {
            return Err(EbpfError::Skipped);
        }
        for name in &cfg.interfaces {
            // Checked up front so a typo is reported as such, not as an attach error.
            if !Path::new("/sys/class/net").join(name).exists() {
                return Err(EbpfError::NoInterface { name: name.clone() });
            }
        }
        let mut loader = EbpfLoader::new();
        if let Some(dir) = &cfg.pin_path {
            let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
            if !on_bpffs(&mounts, dir) {
                return Err(EbpfError::NoBpffs { path: dir.clone() });
            }
            std::fs::create_dir_all(dir).map_err(|source| EbpfError::PinDir { path: dir.clone(), source })?;
            for name in PINNED {
                loader.map_pin_path(name, dir.join(name));
            }
        }
        let mut ebpf = loader.load(bytes).map_err(|source| EbpfError::Load { source })?;
        program(&mut ebpf)?.load().map_err(|source| {
            tracing::debug!("XDP program load failed: {source:?}");
            EbpfError::Program { source }
        })?;
        let arp = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
        let plan = Plan::new(cfg, ports, &arp);
        write(&mut ebpf, &plan, None)?;
        let counters = ebpf.take_map(maps::COUNTERS).ok_or(EbpfError::Missing { what: "map", name: maps::COUNTERS })?;
        let counters = PerCpuArray::try_from(counters).map_err(map_err(maps::COUNTERS))?;
        let logs = super::logs::forward(&mut ebpf);
        Ok(Self { ebpf: Mutex::new(ebpf), plan: Mutex::new(plan), counters, attached: Vec::new(), logs })
    }

    /// Attaches in `mode`; `auto` tries driver mode, then generic (SKB) mode.
    /// With `pin_dir`, a link a previous gateway pinned for `interface` gets this
    /// program instead (mode `pinned`), and a new link is pinned there.
    fn attach(&mut self, interface: &str, mode: XdpMode, pin_dir: Option<&Path>) -> Result<&'static str, EbpfError> {
        let mut ebpf = lock(&self.ebpf);
        let prog = program(&mut ebpf)?;
        let pin = pin_dir.map(|dir| pinned_link::path(dir, interface));
        if let Some(path) = pin.as_deref().filter(|p| p.exists()) {
            match pinned_link::take_over(prog, path) {
                Ok(()) => return Ok("pinned"),
                Err(e) => {
                    tracing::warn!(interface, "{e}; removing the pin and attaching anew");
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        let tries: &[(AttachMode, &'static str)] = match mode {
            XdpMode::Auto => &[(AttachMode::Driver, "driver"), (AttachMode::Skb, "generic")],
            XdpMode::Driver => &[(AttachMode::Driver, "driver")],
            XdpMode::Generic => &[(AttachMode::Skb, "generic")],
        };
        let mut last = None;
        for &(flags, name) in tries {
            match prog.attach(interface, flags) {
                Ok(link) => {
                    if let Some(path) = &pin {
                        // Not fatal: the program runs, only without the hitless restart.
                        if let Err(e) = pinned_link::pin(prog, link, path) {
                            tracing::warn!(interface, "{e}: the XDP link is not pinned");
                        }
                    }
                    return Ok(name);
                }
                Err(source) => {
                    tracing::debug!(interface, mode = name, "XDP attach failed: {source}");
                    last = Some((name, source));
                }
            }
        }
        let (mode, source) = last.expect("at least one attach mode is tried");
        Err(EbpfError::Attach { interface: interface.to_owned(), mode, source })
    }

    /// Where the program is attached.
    pub fn attached(&self) -> &[Attached] {
        &self.attached
    }

    /// Packets by counter slot, summed over CPUs (zero for unreadable slots).
    pub fn totals(&self) -> Vec<u64> {
        (0..COUNTER_SLOTS).map(|i| self.counters.get(&i, 0).map(|per_cpu| per_cpu.iter().sum()).unwrap_or(0)).collect()
    }

    /// Counter samples for `mcp_xdp_packets_total`.
    pub fn samples(&self) -> Vec<XdpSample> {
        super::samples(&self.totals())
    }

    /// Marks node `name` live or dead, rewriting the changed Maglev entries.
    ///
    /// When a node dies, every client pinned to it is re-pinned at once to its
    /// owner in the new table (the same choice on every node, since all build the
    /// same table), so it does not go back to the node when that returns; pins to
    /// other nodes stay. When a node comes back only unpinned (new) clients can
    /// hash to it. Returns the number of pins moved, or `None` for an unknown name.
    pub fn set_node_live(&self, name: &str, live: bool) -> Result<Option<u64>, EbpfError> {
        let mut plan = lock(&self.plan);
        let Some(slot) = plan.slot(name) else { return Ok(None) };
        let before = plan.clone();
        plan.set_live(name, live);
        let mut ebpf = lock(&self.ebpf);
        write(&mut ebpf, &plan, Some(&before))?;
        if live {
            return Ok(Some(0));
        }
        repin(&mut ebpf, &plan, slot).map(Some)
    }

    /// Every configured node with its liveness as the program sees it.
    pub fn members(&self) -> Vec<Peer> {
        let plan = lock(&self.plan);
        let local = plan.settings.local_node;
        (0u32..)
            .zip(plan.names.iter().zip(&plan.nodes))
            .filter(|(_, (name, _))| !name.is_empty())
            .map(|(slot, (name, node))| Peer {
                name: name.clone(),
                address: Ipv4Addr::from(node.addr),
                live: node.live == 1,
                local: slot == local,
            })
            .collect()
    }

    /// Whether the program's log records are being forwarded.
    #[cfg(test)]
    pub(super) fn forwards_logs(&self) -> bool {
        self.logs.is_some()
    }

    /// Pins `client` to `slot` directly, as a packet in an earlier membership would have.
    #[cfg(test)]
    pub(super) fn pin(&self, client: &ClientKey, slot: u32) {
        let mut ebpf = lock(&self.ebpf);
        let mut owners: HashMap<_, ClientKey, u32> = HashMap::try_from(ebpf.map_mut(maps::OWNERS).unwrap()).unwrap();
        owners.insert(client, slot, 0).unwrap();
    }

    /// The owner slot pinned for `client`, if any (tests check re-pinning with it).
    #[cfg(test)]
    pub(super) fn pinned_owner(&self, client: &ClientKey) -> Option<u32> {
        let mut ebpf = lock(&self.ebpf);
        let owners: HashMap<_, ClientKey, u32> = HashMap::try_from(ebpf.map_mut(maps::OWNERS)?).ok()?;
        owners.get(client, 0).ok()
    }

    /// Applies a changed `xdp:` section (ports, blocklist, limits, nodes) to the
    /// running program without reloading it: maps are rewritten in place, entries
    /// that disappeared are removed, nodes keep their slot and liveness by name,
    /// and the clients of a removed node are re-pinned.
    /// Interfaces, mode and pin path only change with a restart.
    pub fn reconfigure(&self, cfg: &XdpConfig, ports: &[u16]) -> Result<(), EbpfError> {
        let arp = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
        let mut plan = lock(&self.plan);
        let next = plan.next(cfg, ports, &arp);
        let mut ebpf = lock(&self.ebpf);
        write(&mut ebpf, &next, Some(&plan))?;
        // A removed node's clients move like a dead node's.
        for slot in plan.removed_in(&next) {
            repin(&mut ebpf, &next, slot)?;
        }
        *plan = next;
        Ok(())
    }

    /// Runs `f` with the loaded object (tests drive `BPF_PROG_TEST_RUN` through it).
    #[cfg(test)]
    pub(super) fn with_ebpf<T>(&self, f: impl FnOnce(&mut Ebpf) -> T) -> T {
        f(&mut lock(&self.ebpf))
    }
}

impl super::Nodes for DataPlane {
    fn members(&self) -> Vec<Peer> {
        DataPlane::members(self)
    }

    fn set_live(&self, name: &str, live: bool) -> Result<Option<u64>, EbpfError> {
        self.set_node_live(name, live)
    }
}

/// Moves every client pinned to the dead node `slot` to its owner in `plan`'s
/// Maglev table (or unpins it when the table is empty); returns how many moved.
/// Entries the program re-pinned meanwhile (same choice) or the LRU evicted are
/// skipped. One syscall pair per pin: this runs only when a node dies.
fn repin(ebpf: &mut Ebpf, plan: &Plan, slot: u32) -> Result<u64, EbpfError> {
    let mut owners: HashMap<_, ClientKey, u32> =
        HashMap::try_from(map_mut(ebpf, maps::OWNERS)?).map_err(map_err(maps::OWNERS))?;
    let stale: Vec<ClientKey> =
        owners.iter().filter_map(Result::ok).filter(|(_, owner)| *owner == slot).map(|(client, _)| client).collect();
    let mut moved = 0;
    for client in stale {
        let next = plan.maglev.get(client.maglev_index() as usize).copied().unwrap_or(NO_NODE);
        let done = if next == NO_NODE {
            owners.remove(&client)
        } else {
            // BPF_EXIST: only rewrite a pin that is still there.
            owners.insert(client, next, BPF_EXIST)
        };
        match done {
            Ok(()) => moved += 1,
            Err(e) => tracing::debug!(?client, "re-pinning a client of a dead node: {e}"),
        }
    }
    Ok(moved)
}

/// `BPF_EXIST` map update flag: fail unless the key exists.
const BPF_EXIST: u64 = 2;

/// Writes `plan` into the maps; with `before`, only what changed.
fn write(ebpf: &mut Ebpf, plan: &Plan, before: Option<&Plan>) -> Result<(), EbpfError> {
    let mut ports: HashMap<_, u16, u8> =
        HashMap::try_from(map_mut(ebpf, maps::PORTS)?).map_err(map_err(maps::PORTS))?;
    for port in &plan.ports {
        ports.insert(port, 1, 0).map_err(map_err(maps::PORTS))?;
    }
    for port in before.iter().flat_map(|old| &old.ports).filter(|p| !plan.ports.contains(p)) {
        ports.remove(port).map_err(map_err(maps::PORTS))?;
    }
    let mut v4: LpmTrie<_, [u8; 4], u32> =
        LpmTrie::try_from(map_mut(ebpf, maps::BLOCKLIST_V4)?).map_err(map_err(maps::BLOCKLIST_V4))?;
    for (rule, (len, addr)) in (0u32..).zip(&plan.blocklist_v4) {
        v4.insert(&Key::new(*len, *addr), rule, 0).map_err(map_err(maps::BLOCKLIST_V4))?;
    }
    for (len, addr) in before.iter().flat_map(|old| &old.blocklist_v4).filter(|c| !plan.blocklist_v4.contains(c)) {
        v4.remove(&Key::new(*len, *addr)).map_err(map_err(maps::BLOCKLIST_V4))?;
    }
    let mut v6: LpmTrie<_, [u8; 16], u32> =
        LpmTrie::try_from(map_mut(ebpf, maps::BLOCKLIST_V6)?).map_err(map_err(maps::BLOCKLIST_V6))?;
    for (rule, (len, addr)) in (0u32..).zip(&plan.blocklist_v6) {
        v6.insert(&Key::new(*len, *addr), rule, 0).map_err(map_err(maps::BLOCKLIST_V6))?;
    }
    for (len, addr) in before.iter().flat_map(|old| &old.blocklist_v6).filter(|c| !plan.blocklist_v6.contains(c)) {
        v6.remove(&Key::new(*len, *addr)).map_err(map_err(maps::BLOCKLIST_V6))?;
    }
    let mut nodes: Array<_, NodeEntry> = Array::try_from(map_mut(ebpf, maps::NODES)?).map_err(map_err(maps::NODES))?;
    for (slot, node) in (0u32..).zip(&plan.nodes) {
        nodes.set(slot, node, 0).map_err(map_err(maps::NODES))?;
    }
    // Slots beyond a shrunk node list: not live, so clients pinned there re-hash.
    let old_len = before.map_or(0, |old| old.nodes.len());
    for slot in (plan.nodes.len()..old_len).filter_map(|s| u32::try_from(s).ok()) {
        nodes.set(slot, NodeEntry::default(), 0).map_err(map_err(maps::NODES))?;
    }
    let mut peers: HashMap<_, [u8; 4], u32> =
        HashMap::try_from(map_mut(ebpf, maps::PEERS)?).map_err(map_err(maps::PEERS))?;
    for (addr, slot) in &plan.peers {
        peers.insert(addr, slot, 0).map_err(map_err(maps::PEERS))?;
    }
    for (addr, _) in before.iter().flat_map(|old| &old.peers).filter(|(a, _)| !plan.peers.iter().any(|(b, _)| a == b)) {
        peers.remove(addr).map_err(map_err(maps::PEERS))?;
    }
    let mut table: Array<_, u32> = Array::try_from(map_mut(ebpf, maps::MAGLEV)?).map_err(map_err(maps::MAGLEV))?;
    let indices = match before {
        Some(old) => maglev::changed(&old.maglev, &plan.maglev),
        None => (0..u32::try_from(plan.maglev.len()).unwrap_or(u32::MAX)).collect(),
    };
    for i in indices {
        table.set(i, plan.maglev[i as usize], 0).map_err(map_err(maps::MAGLEV))?;
    }
    let mut settings: Array<_, Settings> =
        Array::try_from(map_mut(ebpf, maps::SETTINGS)?).map_err(map_err(maps::SETTINGS))?;
    settings.set(0, plan.settings, 0).map_err(map_err(maps::SETTINGS))
}
