//! The gateway's global allocator: mimalloc (fewer instructions per allocation than glibc
//! malloc on the request path, and a small idle RSS with transparent huge pages off).
//!
//! The `mimalloc` crate's `GlobalAlloc` calls `mi_malloc_aligned` for every allocation. For
//! blocks over 1 KiB mimalloc's aligned fast path does not apply and its generic path costs
//! ~180 instructions before it ends up in plain `mi_malloc` anyway (callgrind, ~9 such
//! allocations per proxied `tools/call`). This allocator calls `mi_malloc` directly whenever
//! mimalloc guarantees the alignment for it, by the same rule mimalloc itself uses
//! (`mi_malloc_is_naturally_aligned`): every block is aligned to `MI_MAX_ALIGN_SIZE` (16)
//! when it is at least that large, and to its size when smaller (blocks of the small size
//! classes start at multiples of their size). Anything else takes the aligned entry points.

#![no_std]

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

use libmimalloc_sys as ffi;

/// `MI_MAX_ALIGN_SIZE`: the alignment of every `mi_malloc` block of at least this size.
const MAX_NATURAL_ALIGN: usize = 16;

/// mimalloc as the global allocator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allocator;

/// True when `mi_malloc(size)` (and `mi_realloc(_, size)`) returns a block aligned to `align`.
#[inline(always)]
const fn naturally_aligned(size: usize, align: usize) -> bool {
    align <= MAX_NATURAL_ALIGN && align <= size
}

// SAFETY: every method forwards to mimalloc, which returns blocks of at least the requested
// size, aligned as asked (`naturally_aligned` only picks the unaligned entry points where
// mimalloc guarantees the alignment), or null on failure; `mi_free` and `mi_realloc*` accept
// any block mimalloc returned, whichever entry point allocated it.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain FFI calls; mimalloc has no preconditions on size or (power-of-two) align.
        unsafe {
            if naturally_aligned(layout.size(), layout.align()) {
                ffi::mi_malloc(layout.size()).cast()
            } else {
                ffi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if naturally_aligned(layout.size(), layout.align()) {
                ffi::mi_zalloc(layout.size()).cast()
            } else {
                ffi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned, so mimalloc's.
        unsafe { ffi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller passes a block this allocator returned with `layout`; a moved
        // block is a new `mi_malloc(new_size)`, aligned by the same rule as `alloc`.
        unsafe {
            if naturally_aligned(new_size, layout.align()) {
                ffi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                ffi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    /// Every size class boundary up to 64 KiB with every alignment up to 4 KiB: the block is
    /// aligned, writable over its whole size, survives growing and shrinking with its
    /// contents intact, and is freed.
    #[test]
    fn blocks_are_aligned_and_usable() {
        let a = Allocator;
        let mut sizes: Vec<usize> = (1..=256).collect();
        sizes.extend((9..=16).map(|s| 1_usize << s));
        sizes.extend([1023, 1025, 1536, 3000, 4097, 12_345, 65_535]);
        for &size in &sizes {
            for shift in 0..=12 {
                let align = 1_usize << shift;
                let layout = Layout::from_size_align(size, align).unwrap();
                for zeroed in [false, true] {
                    // SAFETY: non-zero size; each block is freed with the layout it was made with.
                    unsafe {
                        let p = if zeroed { a.alloc_zeroed(layout) } else { a.alloc(layout) };
                        assert!(!p.is_null());
                        assert_eq!(p as usize % align, 0, "size {size} align {align}");
                        if zeroed {
                            assert!((0..size).all(|i| *p.add(i) == 0), "size {size} not zeroed");
                        }
                        p.write_bytes(0xA5, size);
                        let grown = size * 3 + 7;
                        let q = a.realloc(p, layout, grown);
                        assert!(!q.is_null());
                        assert_eq!(q as usize % align, 0, "realloc {size} -> {grown} align {align}");
                        assert!((0..size).all(|i| *q.add(i) == 0xA5));
                        let big = Layout::from_size_align(grown, align).unwrap();
                        let shrunk = size.div_ceil(2);
                        let r = a.realloc(q, big, shrunk);
                        assert_eq!(r as usize % align, 0, "shrink {grown} -> {shrunk} align {align}");
                        assert!((0..shrunk).all(|i| *r.add(i) == 0xA5));
                        a.dealloc(r, Layout::from_size_align(shrunk, align).unwrap());
                    }
                }
            }
        }
    }

    #[test]
    fn the_unaligned_path_is_taken_only_where_mimalloc_guarantees_alignment() {
        assert!(naturally_aligned(24, 8));
        assert!(naturally_aligned(16, 16));
        assert!(naturally_aligned(4096, 16));
        assert!(naturally_aligned(1, 1));
        assert!(!naturally_aligned(8, 16), "smaller than its alignment");
        assert!(!naturally_aligned(4096, 32), "over MI_MAX_ALIGN_SIZE");
    }
}
