//! Rare-event logs through aya-log (its `AYA_LOGS` ring buffer, read by the
//! loader and forwarded to `tracing`). Each event is logged at most once per
//! program load, never per packet: a map update that fails under memory pressure
//! would otherwise log on every packet.

use aya_ebpf::macros::map;
use aya_ebpf::maps::Array;

/// Pinning a client to its owner failed (an `OWNERS` update error).
pub const PIN_FAILED: u32 = 1;
/// Creating a source's token bucket failed (a `RATE` update error).
pub const BUCKET_FAILED: u32 = 1 << 1;
/// Writing the headers of an encapsulated packet failed after the head moved.
pub const ENCAP_FAILED: u32 = 1 << 2;

/// Index 0: the events already logged, as bits. Private to the program.
#[map]
static LOGGED: Array<u32> = Array::with_max_entries(1, 0);

/// True the first time `event` happens since the program was loaded. Two CPUs
/// may both see it first; the cost is one extra line.
#[inline(always)]
#[expect(unsafe_code, reason = "an array value is only reachable through a raw pointer")]
pub fn first(event: u32) -> bool {
    let Some(bits) = LOGGED.get_ptr_mut(0) else { return false };
    // SAFETY: the value of an existing array slot; a racing write loses one bit at worst.
    unsafe {
        if *bits & event != 0 {
            return false;
        }
        *bits |= event;
    }
    true
}
