//! Namespaces persisted as bind mounts of `/proc/thread-self/ns/<kind>` (as
//! `ip netns add` does for net, and CRI-O's pinns for a pod's ipc and uts
//! too), and running code inside a network one. Namespace switches
//! happen on a dedicated short-lived thread, never on the caller's.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::mount::UnmountFlags;
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

use crate::nl::Netlink;
use crate::{Error, Result};

const NSFS_MAGIC: i64 = 0x6e73_6673;
/// Enough for the netlink code; the default 2 MiB would only cost mmap time.
const THREAD_STACK: usize = 256 * 1024;

/// Run `f` on a fresh thread that exits afterwards, so whatever namespace it
/// enters dies with it.
pub(crate) fn on_thread<T: Send>(name: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name(name.into())
            .stack_size(THREAD_STACK)
            .spawn_scoped(s, f)
            .map_err(|e| Error::os("spawn netns thread", e))?;
        match h.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// Open a persisted namespace file (for setns or IFLA_NET_NS_FD).
pub(crate) fn open_netns(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::os(format!("open netns {}", path.display()), e.into()))
}

/// Run `f` on a dedicated thread inside the network namespace at `path`.
pub(crate) fn in_netns<T: Send>(path: &Path, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    in_netns_fd(open_netns(path)?, path, f)
}

/// Same, for an already opened namespace file (`path` only names it in errors).
pub(crate) fn in_netns_fd<T: Send>(fd: OwnedFd, path: &Path, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    on_thread("dockyard-netns", move || {
        rustix::thread::move_into_link_name_space(fd.as_fd(), Some(LinkNameSpaceType::Network))
            .map_err(|e| Error::os(format!("enter netns {}", path.display()), e.into()))?;
        drop(fd);
        f()
    })
}

/// A namespace a pinned file can hold ([`ns_pin`]): what pods share without
/// a process to keep them alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NsKind {
    /// A network namespace, `lo` up.
    Net,
    /// An IPC namespace (SysV IPC, POSIX message queues).
    Ipc,
    /// A UTS namespace, with its hostname set before it is pinned.
    Uts,
}

impl NsKind {
    /// From "net"/"network", "ipc", "uts".
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "net" | "network" => Ok(NsKind::Net),
            "ipc" => Ok(NsKind::Ipc),
            "uts" => Ok(NsKind::Uts),
            _ => Err(Error::Invalid(format!("cannot pin a {s:?} namespace: use net, ipc or uts"))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            NsKind::Net => "net",
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
        }
    }

    fn flag(self) -> UnshareFlags {
        match self {
            NsKind::Net => UnshareFlags::NEWNET,
            NsKind::Ipc => UnshareFlags::NEWIPC,
            NsKind::Uts => UnshareFlags::NEWUTS,
        }
    }
}

/// Create a new namespace of `kind` and persist it on `path` (a new file; its
/// directory must exist) by a bind mount of the creating thread's
/// `/proc/thread-self/ns/<kind>`, as `ip netns add` and CRI-O's pinns do. A
/// network namespace gets `lo` up; a UTS one `hostname` (if given, else the
/// caller's). EEXIST if `path` already holds a namespace.
pub fn ns_pin(path: &Path, kind: NsKind, hostname: Option<&str>) -> Result<()> {
    let what = |s: &str| format!("{s} {}", path.display());
    if hostname.is_some() && kind != NsKind::Uts {
        return Err(Error::Invalid(format!("a hostname is only set in a uts namespace, not {}", kind.name())));
    }
    if let Some(h) = hostname {
        if h.len() > 64 {
            return Err(Error::Invalid(format!("hostname {h:?} is longer than 64 bytes")));
        }
    }
    let created = match rustix::fs::open(path, OFlags::RDONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC, Mode::empty()) {
        Ok(_) => true,
        Err(rustix::io::Errno::EXIST) => {
            // A leftover plain file is reused; a live namespace is not replaced.
            let f = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| Error::os(what("open namespace file"), e.into()))?;
            let st = rustix::fs::fstatfs(&f).map_err(|e| Error::os(what("statfs namespace file"), e.into()))?;
            if st.f_type as i64 == NSFS_MAGIC {
                return Err(Error::Os { step: what("create namespace file: already a namespace"), errno: libc::EEXIST });
            }
            false
        }
        Err(e) => return Err(Error::os(what("create namespace file"), e.into())),
    };
    let r = on_thread("dockyard-nspin", || {
        // SAFETY: only a per-thread namespace (net, ipc, uts) is unshared, no
        // fd table or fs split, on a thread that exits right after.
        unsafe { rustix::thread::unshare_unsafe(kind.flag()) }
            .map_err(|e| Error::os(format!("unshare {} namespace", kind.name()), e.into()))?;
        match kind {
            // lo is always ifindex 1 in a new namespace.
            NsKind::Net => Netlink::open()?.set_link(1, true, Vec::new(), "set lo up")?,
            NsKind::Uts => {
                if let Some(h) = hostname {
                    // SAFETY: a valid buffer of that length.
                    if unsafe { libc::sethostname(h.as_ptr().cast(), h.len()) } < 0 {
                        return Err(Error::os("sethostname", std::io::Error::last_os_error()));
                    }
                }
            }
            NsKind::Ipc => {}
        }
        let src = format!("/proc/thread-self/ns/{}", kind.name());
        rustix::mount::mount_bind(src.as_str(), path).map_err(|e| Error::os(what("bind-mount namespace on"), e.into()))
    });
    if r.is_err() && created {
        let _ = std::fs::remove_file(path);
    }
    r
}

/// Unmount (lazily) and remove a pinned namespace file; a missing one is
/// fine. The namespace itself lives on while a process is in it.
pub fn ns_unpin(path: &Path) -> Result<()> {
    match rustix::mount::unmount(path, UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(Error::os(format!("unmount namespace {}", path.display()), e.into())),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::os(format!("remove namespace {}", path.display()), e)),
    }
}

/// Create a network namespace with `lo` up and persist it on `path` (a new
/// file; its directory must exist). EEXIST if `path` already holds one.
pub fn netns_create(path: &Path) -> Result<()> {
    ns_pin(path, NsKind::Net, None)
}

/// Unmount (lazily) and remove a namespace file; a missing one is fine.
pub fn netns_remove(path: &Path) -> Result<()> {
    ns_unpin(path)
}

/// A socket made inside the namespace at `path`: a socket belongs for life to
/// the namespace it was created in, so the daemon can serve a container's
/// namespace (the embedded DNS server) from its own threads.
pub fn netns_socket(path: &Path, domain: i32, ty: i32) -> Result<OwnedFd> {
    in_netns(path, || {
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(Error::os("socket in netns", std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    })
}
