//! Loading the embedded XDP object, writing a [`Plan`] into its maps, attaching
//! it to interfaces, and reading its counters.
//!
//! Order matters while traffic flows: the maps are written before any attach, and
//! within a write `SETTINGS` (whose `node_count` turns owner selection on) comes
//! last, after the nodes and the Maglev table it refers to. Attaching uses
//! `bpf_link`, so the program detaches when this process exits, even by a crash.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use aya::maps::lpm_trie::Key;
use aya::maps::{Array, HashMap, LpmTrie, Map, MapData, PerCpuArray};
use aya::programs::{Xdp, XdpMode as AttachMode};
use aya::{Ebpf, EbpfLoader};
use gateway_common::{COUNTER_SLOTS, NodeEntry, PROGRAM, Settings, maps};

use super::plan::Plan;
use super::{EbpfError, maglev};
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
    /// `driver` or `generic`.
    pub mode: &'static str,
}

/// A loaded XDP program with its maps; dropping it detaches the program.
pub struct DataPlane {
    ebpf: Mutex<Ebpf>,
    plan: Mutex<Plan>,
    counters: PerCpuArray<MapData, u64>,
    attached: Vec<Attached>,
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
            let mode = plane.attach(interface, cfg.mode)?;
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
        Ok(Self { ebpf: Mutex::new(ebpf), plan: Mutex::new(plan), counters, attached: Vec::new() })
    }

    /// Attaches in `mode`; `auto` tries driver mode, then generic (SKB) mode.
    fn attach(&mut self, interface: &str, mode: XdpMode) -> Result<&'static str, EbpfError> {
        let mut ebpf = lock(&self.ebpf);
        let prog = program(&mut ebpf)?;
        let tries: &[(AttachMode, &'static str)] = match mode {
            XdpMode::Auto => &[(AttachMode::Driver, "driver"), (AttachMode::Skb, "generic")],
            XdpMode::Driver => &[(AttachMode::Driver, "driver")],
            XdpMode::Generic => &[(AttachMode::Skb, "generic")],
        };
        let mut last = None;
        for &(flags, name) in tries {
            match prog.attach(interface, flags) {
                Ok(_link) => return Ok(name),
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

    /// Marks node `name` live or dead, rewriting the changed Maglev entries; its
    /// pinned clients are re-hashed on their next packet. False for an unknown name.
    pub fn set_node_live(&self, name: &str, live: bool) -> Result<bool, EbpfError> {
        let mut plan = lock(&self.plan);
        let before = plan.clone();
        if !plan.set_live(name, live) {
            return Ok(false);
        }
        write(&mut lock(&self.ebpf), &plan, Some(&before))?;
        Ok(true)
    }

    /// Applies a changed `xdp:` section (ports, blocklist, limits, nodes) to the
    /// running program without reloading it: maps are rewritten in place, entries
    /// that disappeared are removed, and nodes keep their liveness by name.
    /// Interfaces, mode and pin path only change with a restart.
    pub fn reconfigure(&self, cfg: &XdpConfig, ports: &[u16]) -> Result<(), EbpfError> {
        let arp = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
        let mut plan = lock(&self.plan);
        let mut next = Plan::new(cfg, ports, &arp);
        for (name, node) in plan.names.iter().zip(&plan.nodes) {
            if node.live == 0 {
                next.set_live(name, false);
            }
        }
        write(&mut lock(&self.ebpf), &next, Some(&plan))?;
        *plan = next;
        Ok(())
    }

    /// Runs `f` with the loaded object (tests drive `BPF_PROG_TEST_RUN` through it).
    #[cfg(test)]
    pub(super) fn with_ebpf<T>(&self, f: impl FnOnce(&mut Ebpf) -> T) -> T {
        f(&mut lock(&self.ebpf))
    }
}

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
