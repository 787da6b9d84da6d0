//! Header layouts and bounds-checked packet access.
//!
//! Every header is a `#[repr(C)]` struct of bytes (alignment 1), so a read never
//! depends on where the driver placed the frame. Every access goes through
//! [`ptr_at`] / [`ptr_at_mut`], which check `data + offset + size <= data_end` right
//! before the pointer is formed: the verifier refuses any packet access it cannot
//! prove in bounds, and it forgets earlier checks after `bpf_xdp_adjust_head`.
#![expect(unsafe_code, reason = "packet memory is only reachable through raw pointers from the XDP context")]

use core::mem;

use aya_ebpf::programs::XdpContext;

/// Ethernet header length.
pub const ETH_LEN: usize = 14;
/// IPv4 header length without options.
pub const IPV4_LEN: usize = 20;
/// IPv6 fixed header length.
pub const IPV6_LEN: usize = 40;
/// EtherType IPv4.
pub const ETH_P_IPV4: u16 = 0x0800;
/// EtherType IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// IP protocol numbers.
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_IPV6: u8 = 41;

/// A header could not be read in bounds, or its fields contradict each other.
pub struct Malformed;

/// Ethernet II header.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ether_type: [u8; 2],
}

/// IPv4 header without options.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ipv4Hdr {
    pub version_ihl: u8,
    pub tos: u8,
    pub tot_len: [u8; 2],
    pub id: [u8; 2],
    pub frag_off: [u8; 2],
    pub ttl: u8,
    pub protocol: u8,
    pub check: [u8; 2],
    pub src: [u8; 4],
    pub dst: [u8; 4],
}

/// IPv6 fixed header.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ipv6Hdr {
    pub version_class_flow: [u8; 4],
    pub payload_len: [u8; 2],
    pub next_header: u8,
    pub hop_limit: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

/// The part of the TCP header the program reads.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TcpHdr {
    pub src_port: [u8; 2],
    pub dst_port: [u8; 2],
    pub seq: [u8; 4],
    pub ack: [u8; 4],
    /// Data offset in the high nibble.
    pub data_offset: u8,
    pub flags: u8,
    pub window: [u8; 2],
    pub check: [u8; 2],
    pub urgent: [u8; 2],
}

/// UDP header.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UdpHdr {
    pub src_port: [u8; 2],
    pub dst_port: [u8; 2],
    pub len: [u8; 2],
    pub check: [u8; 2],
}

/// TCP flag bits.
pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;

/// Length of the frame in bytes.
#[inline(always)]
pub fn frame_len(ctx: &XdpContext) -> usize {
    ctx.data_end().saturating_sub(ctx.data())
}

/// A pointer to a `T` at `offset`, if the whole `T` lies inside the frame.
#[inline(always)]
fn ptr_at_mut<T>(ctx: &XdpContext, offset: usize) -> Result<*mut T, Malformed> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + mem::size_of::<T>() > end {
        return Err(Malformed);
    }
    Ok((start + offset) as *mut T)
}

/// A copy of the `T` at `offset`, bounds-checked.
#[inline(always)]
pub fn read<T: Copy>(ctx: &XdpContext, offset: usize) -> Result<T, Malformed> {
    let ptr = ptr_at_mut::<T>(ctx, offset)?;
    // SAFETY: in bounds (checked just above); T is made of bytes, so any value is valid.
    Ok(unsafe { ptr.read_unaligned() })
}

/// Overwrites the `T` at `offset`, bounds-checked.
#[inline(always)]
pub fn write<T: Copy>(ctx: &XdpContext, offset: usize, value: T) -> Result<(), Malformed> {
    let ptr = ptr_at_mut::<T>(ctx, offset)?;
    // SAFETY: in bounds (checked just above); packet memory is writable in XDP.
    unsafe { ptr.write_unaligned(value) };
    Ok(())
}

/// Moves the frame start by `delta` bytes (negative grows the headroom into the frame).
#[inline(always)]
pub fn adjust_head(ctx: &XdpContext, delta: i32) -> Result<(), Malformed> {
    // SAFETY: a helper call on the live context; the kernel checks the headroom.
    let rc = unsafe { aya_ebpf::helpers::bpf_xdp_adjust_head(ctx.ctx, delta) };
    if rc == 0 { Ok(()) } else { Err(Malformed) }
}

/// The Internet checksum of a 20-byte IPv4 header (its `check` field must be zero).
#[inline(always)]
pub fn ipv4_checksum(hdr: &Ipv4Hdr) -> [u8; 2] {
    let bytes: [u8; IPV4_LEN] = [
        hdr.version_ihl,
        hdr.tos,
        hdr.tot_len[0],
        hdr.tot_len[1],
        hdr.id[0],
        hdr.id[1],
        hdr.frag_off[0],
        hdr.frag_off[1],
        hdr.ttl,
        hdr.protocol,
        hdr.check[0],
        hdr.check[1],
        hdr.src[0],
        hdr.src[1],
        hdr.src[2],
        hdr.src[3],
        hdr.dst[0],
        hdr.dst[1],
        hdr.dst[2],
        hdr.dst[3],
    ];
    let mut sum: u32 = 0;
    let mut i = 0;
    while i < IPV4_LEN {
        sum += u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
        i += 2;
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    (!(sum as u16)).to_be_bytes()
}
