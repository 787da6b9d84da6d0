//! The mcp-gateway XDP program: sheds hostile traffic for the gateway's ports and
//! sends each client's packets to the node that owns it.
//!
//! For IPv4 and IPv6 TCP/UDP packets to a port in `PORTS`, in order:
//! 1. malformed headers → `XDP_DROP` (`malformed`);
//! 2. source in the blocklist → `XDP_DROP` (`blocked`);
//! 3. a new flow (TCP SYN without ACK, any UDP datagram) over the source's token
//!    bucket → `XDP_DROP` (`rate_limited`);
//! 4. owner selection: this node → `XDP_PASS` (`passed`); a remote node →
//!    IP-in-IP towards it and `XDP_TX` (`forwarded`); none known → `XDP_PASS`
//!    (`no_owner`).
//!
//! IP-in-IP (or IPv6-in-IPv4) packets from a peer node to this node's address
//! are decapsulated and passed (`decapsulated`): that is how a forwarded client
//! packet reaches its owner's stack, without an ipip device. Other packets from a
//! peer to this node's address (its health checks) pass untouched (`other`).
//!
//! Everything else passes untouched (`other`); with `FLAG_BLOCK_ALL_PORTS` the
//! blocklist applies to every IP packet. Each packet increments exactly one
//! per-CPU counter. The program never panics: every parse error is an explicit
//! verdict.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod flow;
mod log;
mod maps;
mod packet;

use aya_ebpf::bindings::xdp_action;
use aya_ebpf::programs::XdpContext;
use gateway_common::{ClientKey, FLAG_BLOCK_ALL_PORTS, Settings, action, reason};

use crate::flow::{Flow, Verdict};
use crate::maps::{PORTS, SETTINGS};
use crate::packet::{
    ETH_LEN, ETH_P_IPV4, ETH_P_IPV6, EthHdr, IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_TCP, IPPROTO_UDP, IPV4_LEN, IPV6_LEN,
    Ipv4Hdr, Ipv6Hdr, Malformed, TCP_ACK, TCP_SYN, TcpHdr, UdpHdr,
};

mod entry {
    //! The exported entry point.
    #![expect(unsafe_code, reason = "#[xdp] exports the entry point with #[no_mangle] and a link section")]

    use aya_ebpf::macros::xdp;
    use aya_ebpf::programs::XdpContext;

    /// Entry point: one verdict per frame, counted, as an XDP action.
    #[xdp]
    pub fn gateway_xdp(ctx: XdpContext) -> u32 {
        super::run(&ctx)
    }

    /// The kernel license string: the project's own license, Apache-2.0.
    ///
    /// The kernel only uses this string to refuse GPL-only helpers to programs
    /// that are not GPL-compatible (it never taints). Every helper this program
    /// calls is available to any license: map lookup/update/delete,
    /// `bpf_ktime_get_ns`, `bpf_xdp_adjust_head`, and aya-log's
    /// `bpf_ringbuf_reserve`/`bpf_ringbuf_submit`. So it declares what the code is
    /// licensed under instead of aya-template's "Dual MIT/GPL", which would be a
    /// licence grant the project never made. A GPL-only helper added later (for
    /// example `bpf_xdp_output` or `bpf_trace_printk`) fails the verifier with
    /// "cannot call GPL-restricted function from non-GPL compatible program": the
    /// BPF_PROG_TEST_RUN tests load the program, so they catch it.
    #[unsafe(no_mangle)]
    #[unsafe(link_section = "license")]
    pub static LICENSE: [u8; 11] = *b"Apache-2.0\0";
}

#[inline(always)]
fn run(ctx: &XdpContext) -> u32 {
    let verdict = try_gateway_xdp(ctx).unwrap_or(Verdict::new(action::DROP, reason::MALFORMED));
    flow::count(verdict);
    match verdict.action {
        action::DROP => xdp_action::XDP_DROP,
        action::TX => xdp_action::XDP_TX,
        _ => xdp_action::XDP_PASS,
    }
}

fn try_gateway_xdp(ctx: &XdpContext) -> Result<Verdict, Malformed> {
    let eth: EthHdr = packet::read(ctx, 0)?;
    // Without settings (never: an array slot always exists) act as a plain pass-through.
    let Some(settings) = SETTINGS.get(0).copied() else {
        return Ok(Verdict::new(action::PASS, reason::OTHER));
    };
    match u16::from_be_bytes(eth.ether_type) {
        ETH_P_IPV4 => ipv4(ctx, &settings),
        ETH_P_IPV6 => ipv6(ctx, &settings),
        _ => Ok(Verdict::new(action::PASS, reason::OTHER)),
    }
}

#[inline(always)]
fn ipv4(ctx: &XdpContext, settings: &Settings) -> Result<Verdict, Malformed> {
    let ip: Ipv4Hdr = packet::read(ctx, ETH_LEN)?;
    let ihl = usize::from(ip.version_ihl & 0x0f) * 4;
    let tot_len = usize::from(u16::from_be_bytes(ip.tot_len));
    if ip.version_ihl >> 4 != 4 || ihl < IPV4_LEN || tot_len < ihl || ETH_LEN + tot_len > packet::frame_len(ctx) {
        return Err(Malformed);
    }
    if settings.node_count > 0 && ip.dst == settings.local_addr && flow::is_peer(ip.src) {
        if ihl == IPV4_LEN && (ip.protocol == IPPROTO_IPIP || ip.protocol == IPPROTO_IPV6) {
            let inner = if ip.protocol == IPPROTO_IPIP { ETH_P_IPV4 } else { ETH_P_IPV6 };
            return Ok(flow::decapsulate(ctx, inner));
        }
        // Node to node (the peers' health checks of this node): never shed or
        // steered, or a check could be forwarded away from the node it tests.
        return Ok(Verdict::new(action::PASS, reason::OTHER));
    }
    let blocked = || flow::blocked_v4(ip.src);
    if settings.flags & FLAG_BLOCK_ALL_PORTS != 0 && blocked() {
        return Ok(Verdict::new(action::DROP, reason::BLOCKED));
    }
    // Only the first fragment carries ports.
    if u16::from_be_bytes(ip.frag_off) & 0x1fff != 0 {
        return Ok(Verdict::new(action::PASS, reason::OTHER));
    }
    let Some((port, new_flow)) = ports(ctx, ip.protocol, ETH_LEN + ihl)? else {
        return Ok(Verdict::new(action::PASS, reason::OTHER));
    };
    if PORTS.get_ptr(port).is_none() {
        return Ok(Verdict::new(action::PASS, reason::OTHER));
    }
    if blocked() {
        return Ok(Verdict::new(action::DROP, reason::BLOCKED));
    }
    let flow = Flow { client: ClientKey::v4(ip.src), new_flow, ip_len: tot_len, encap_proto: IPPROTO_IPIP };
    Ok(flow::gateway(ctx, &flow, settings))
}

#[inline(always)]
fn ipv6(ctx: &XdpContext, settings: &Settings) -> Result<Verdict, Malformed> {
    let ip: Ipv6Hdr = packet::read(ctx, ETH_LEN)?;
    let ip_len = IPV6_LEN + usize::from(u16::from_be_bytes(ip.payload_len));
    if ip.version_class_flow[0] >> 4 != 6 || ETH_LEN + ip_len > packet::frame_len(ctx) {
        return Err(Malformed);
    }
    let blocked = || flow::blocked_v6(ip.src);
    if settings.flags & FLAG_BLOCK_ALL_PORTS != 0 && blocked() {
        return Ok(Verdict::new(action::DROP, reason::BLOCKED));
    }
    // Extension headers are not walked: such packets (rare for TCP/UDP) pass.
    let Some((port, new_flow)) = ports(ctx, ip.next_header, ETH_LEN + IPV6_LEN)? else {
        return Ok(Verdict::new(action::PASS, reason::OTHER));
    };
    if PORTS.get_ptr(port).is_none() {
        return Ok(Verdict::new(action::PASS, reason::OTHER));
    }
    if blocked() {
        return Ok(Verdict::new(action::DROP, reason::BLOCKED));
    }
    let flow = Flow { client: ClientKey::v6(ip.src), new_flow, ip_len, encap_proto: IPPROTO_IPV6 };
    Ok(flow::gateway(ctx, &flow, settings))
}

/// The destination port and whether the packet opens a flow, for TCP and UDP;
/// `None` for other protocols.
#[inline(always)]
fn ports(ctx: &XdpContext, protocol: u8, offset: usize) -> Result<Option<(u16, bool)>, Malformed> {
    match protocol {
        IPPROTO_TCP => {
            let tcp: TcpHdr = packet::read(ctx, offset)?;
            if usize::from(tcp.data_offset >> 4) * 4 < 20 {
                return Err(Malformed);
            }
            let new_flow = tcp.flags & TCP_SYN != 0 && tcp.flags & TCP_ACK == 0;
            Ok(Some((u16::from_be_bytes(tcp.dst_port), new_flow)))
        }
        IPPROTO_UDP => {
            let udp: UdpHdr = packet::read(ctx, offset)?;
            if usize::from(u16::from_be_bytes(udp.len)) < 8 {
                return Err(Malformed);
            }
            Ok(Some((u16::from_be_bytes(udp.dst_port), true)))
        }
        _ => Ok(None),
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable: the verifier rejects programs that could reach a panic path.
    loop {}
}
