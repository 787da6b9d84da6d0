//! Empty on purpose: the XDP program is the `gateway-xdp` binary (`main.rs`), built
//! for `bpfel-unknown-none` only. This library lets `gateway` build-depend on the
//! package so cargo re-runs `gateway/build.rs` when the program changes.
#![no_std]
