//! Network namespaces: a new one has `lo` down, Docker's have it up; and one
//! readied ahead of time, while a shim is idle.

use crate::error::{Error, Result};
use crate::sys;
use std::os::fd::{AsRawFd, OwnedFd};

/// Move the calling process into a new network namespace with loopback up,
/// for the next container it spawns with `net_ready` (a shim does this while
/// idle). Returns the namespace it left, to go back to when the container
/// turns out not to want a new one.
pub fn prepare_network() -> Result<OwnedFd> {
    if sys::in_user_ns() {
        // The rootless daemon's shims: the host's network namespace belongs to
        // the initial user namespace, so a shim that left it could not go back
        // for a --network host container. They make the namespace at spawn.
        return Err(Error::Invalid("in a user namespace: no network namespace made ahead".into()));
    }
    let host = sys::open(c"/proc/self/ns/net", libc::O_RDONLY, 0)?;
    sys::check(unsafe { libc::unshare(libc::CLONE_NEWNET) }, || "unshare network namespace".into())?;
    if let Err(e) = loopback_up() {
        unsafe { libc::setns(host.as_raw_fd(), libc::CLONE_NEWNET) };
        return Err(e);
    }
    Ok(host)
}

/// A new network namespace starts with `lo` down; Docker containers have it up.
pub(super) fn loopback_up() -> Result<()> {
    unsafe {
        let fd = sys::owned(libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0), || "socket".into())?;
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        sys::check(libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req), || "get lo flags".into())?;
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        sys::check(libc::ioctl(fd.as_raw_fd(), libc::SIOCSIFFLAGS, &req), || "bring lo up".into())?;
    }
    Ok(())
}
