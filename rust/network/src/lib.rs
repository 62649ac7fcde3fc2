//! Kernel side of container networking, in-process over rtnetlink: network
//! namespaces persisted as bind mounts, Linux bridges, veth endpoints whose
//! container end is created directly inside the container's namespace.
//!
//! Nothing here runs `ip` or any other program. Work that must happen inside
//! another network namespace runs on a short-lived dedicated thread that
//! enters it (unshare/setns) and then exits, so the caller's thread never
//! changes namespace. "Host" below means the caller's network namespace.

mod endpoint;
mod link;
mod netns;
mod nl;
mod parse;
mod relay;

pub use endpoint::{endpoint_add, endpoint_remove, Endpoint};
pub use link::{bridge_ensure, link_delete, link_info, link_names, LinkInfo};
pub use netns::{netns_create, netns_remove, netns_socket, ns_pin, ns_unpin, NsKind};
pub use parse::{parse_cidr, parse_ip, parse_mac, Cidr};
pub use relay::{relay, Relay};

/// What failed, and why.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A syscall or a netlink request failed with `errno`; `step` says which.
    #[error("{step}: {}", strerror(*errno))]
    Os { step: String, errno: i32 },
    /// An argument is malformed (CIDR, MAC, interface name...).
    #[error("{0}")]
    Invalid(String),
    /// The kernel's reply could not be understood.
    #[error("{step}: bad netlink reply: {msg}")]
    Protocol { step: String, msg: String },
}

impl Error {
    /// The errno of an `Os` error.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Os { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    pub(crate) fn os(step: impl Into<String>, e: std::io::Error) -> Self {
        Error::Os { step: step.into(), errno: e.raw_os_error().unwrap_or(libc::EIO) }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// `strerror` without the " (os error N)" suffix std adds.
fn strerror(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Interface names: 1..15 bytes, no '/', ':' or whitespace (the kernel's
/// `dev_valid_name`, plus ':' which aliases use).
pub(crate) fn check_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0);
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("invalid interface name {name:?}")))
    }
}
