//! Hitless restart with `xdp.pin_path`: the program's link to each interface
//! is pinned on bpffs (`link_<interface>`), so the program keeps running when the
//! gateway exits, and the next gateway atomically swaps its freshly loaded
//! program into that link (`bpf_link_update`) instead of attaching anew. With
//! the client pins, rate buckets and counters also pinned, no packet sees a
//! detached interface or an empty owner map across a restart.
//!
//! The cost is the one the plain link avoids: once pinned, the program stays
//! attached after the gateway exits, crash included, until the pin is removed
//! (`rm <pin_path>/link_<interface>`).

use std::path::{Path, PathBuf};

use aya::programs::Xdp;
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::xdp::{XdpLink, XdpLinkId};

/// Why a link could not be pinned or taken over.
#[derive(Debug, thiserror::Error)]
pub enum LinkPinError {
    /// Opening, converting or updating the pinned link failed.
    #[error("pinned XDP link {path}: {message}")]
    Link {
        /// The pin.
        path: PathBuf,
        /// Cause.
        message: String,
    },
}

fn err(path: &Path, message: impl std::fmt::Display) -> LinkPinError {
    LinkPinError::Link { path: path.to_owned(), message: message.to_string() }
}

/// Where the link to `interface` is pinned under `dir`.
pub fn path(dir: &Path, interface: &str) -> PathBuf {
    dir.join(format!("link_{interface}"))
}

/// Replaces the program in the link pinned at `path` with `prog` (atomically:
/// every packet sees the old or the new program). The pin stays.
pub fn take_over(prog: &mut Xdp, path: &Path) -> Result<(), LinkPinError> {
    let pinned = PinnedLink::from_pin(path).map_err(|e| err(path, e))?;
    let link = XdpLink::try_from(FdLink::from(pinned)).map_err(|e| err(path, e))?;
    prog.attach_to_link(link).map_err(|e| err(path, e))?;
    Ok(())
}

/// Pins the link `id` of `prog` at `path`. A netlink (pre-`bpf_link`) attach
/// cannot be pinned.
pub fn pin(prog: &mut Xdp, id: XdpLinkId, path: &Path) -> Result<(), LinkPinError> {
    let link = prog.take_link(id).map_err(|e| err(path, e))?;
    let fd_link = FdLink::try_from(link).map_err(|e| err(path, e))?;
    // Dropping the returned PinnedLink closes this process's fd; the pin keeps the link.
    fd_link.pin(path).map_err(|e| err(path, e))?;
    Ok(())
}
