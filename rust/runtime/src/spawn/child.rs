//! The container init's setup sequence, in the child between clone and
//! execve: signals reset, cgroup and namespaces joined, loopback, rlimits, a
//! new session, stdio, the rootfs (bind, mounts, pivot_root, or chroot),
//! sysctls, read-only and masked paths, hostname; then `finalize`. A failure
//! goes back to the parent as one `E` message.

use super::finalize::finalize;
use super::network::loopback_up;
use super::prepare::Prepared;
use super::stdio::stdio_dup;
use super::Stdio;
use crate::error::{Error, Result};
use crate::mounts;
use crate::ns;
use crate::spec::Spec;
use crate::sys;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Fds the child needs.
pub(super) struct ChildFds {
    pub(super) stdio: Stdio,
    pub(super) sync_w: RawFd,
    pub(super) gate_r: Option<RawFd>,
    pub(super) console: Option<RawFd>,
    /// A user-namespaced container's sysfs, made by the parent (`mounts::detached_sysfs`).
    pub(super) sysfs: Option<RawFd>,
}

pub(super) fn child_fail(sync_w: RawFd, e: &Error) -> ! {
    let mut msg = vec![b'E'];
    msg.extend_from_slice(&e.exit_code().to_le_bytes());
    let text = e.to_string();
    let text = &text.as_bytes()[..text.len().min(4000)];
    msg.extend_from_slice(text);
    let _ = sys::write_all(sync_w, &msg);
    unsafe { libc::_exit(e.exit_code()) }
}

pub(super) fn reset_signals() {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for s in 1..libc::SIGRTMAX() {
            if s != libc::SIGKILL && s != libc::SIGSTOP {
                libc::signal(s, libc::SIG_DFL);
            }
        }
    }
}

pub(super) fn init_child(spec: &Spec, prep: &Prepared, fds: &ChildFds, joins: &[(libc::c_int, OwnedFd)], born_in_cgroup: bool, net_ready: bool, maps_r: Option<RawFd>) -> Result<()> {
    reset_signals();
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    // cgroup first, then its namespace (so the container's cgroup is the ns root).
    for (fd, v2) in &prep.cgroup_fds {
        if !(*v2 && born_in_cgroup) {
            sys::write_all(fd.as_raw_fd(), b"0").map_err(|e| Error::Invalid(format!("join cgroup: {e}")))?;
        }
    }
    for (f, fd) in joins {
        if *f != libc::CLONE_NEWPID {
            sys::check(unsafe { libc::setns(fd.as_raw_fd(), *f) }, || format!("join {} namespace", ns::proc_name(*f)))?;
        }
    }
    if let Some(fd) = maps_r {
        become_root_in_userns(fd)?;
    }
    if spec.namespaces.iter().any(|n| n.kind == "cgroup" && n.path.is_none()) {
        sys::check(unsafe { libc::unshare(libc::CLONE_NEWCGROUP) }, || "unshare cgroup namespace".into())?;
    }
    if !net_ready && spec.namespaces.iter().any(|n| ns::flag(&n.kind) == libc::CLONE_NEWNET && n.path.is_none()) {
        loopback_up()?;
    }
    if let Some(adj) = spec.oom_score_adj {
        sys::write_file("/proc/self/oom_score_adj", &adj.to_string())?;
    }
    for (i, (res, lim)) in prep.rlimits.iter().enumerate() {
        if unsafe { libc::setrlimit(*res, lim) } == 0 {
            continue;
        }
        let e = sys::errno();
        if e == libc::EPERM && sys::in_user_ns() {
            // Rootless: no CAP_SYS_RESOURCE over the host, so no hard limit above the user's.
            let mut have = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            unsafe { libc::getrlimit(*res, &mut have) };
            let name = spec.rlimits.get(i).map_or("?", |r| r.kind.as_str());
            return Err(Error::Invalid(format!(
                "rootless: ulimit {name}: hard limit {} is above the daemon user's hard limit {}",
                lim.rlim_max, have.rlim_max
            )));
        }
        return Err(Error::errno(format!("setrlimit {res}"), e));
    }
    unsafe { libc::setsid() };
    if !spec.terminal {
        stdio_dup(&fds.stdio)?;
    }
    let new_mnt = spec.namespaces.iter().any(|n| ns::flag(&n.kind) == libc::CLONE_NEWNS);
    let rootfs = sys::cpath(&spec.rootfs)?;
    unsafe { libc::umask(0) };
    if new_mnt {
        let shared = matches!(spec.rootfs_propagation.as_deref(), Some("rshared" | "shared"));
        let flag = match spec.rootfs_propagation.as_deref() {
            Some("rshared" | "shared") => libc::MS_SHARED,
            Some("rprivate" | "private") => libc::MS_PRIVATE,
            _ => libc::MS_SLAVE,
        };
        sys::mount(None, c"/", None, flag | libc::MS_REC, None).map_err(|e| Error::errno("set the propagation of /", e))?;
        if shared {
            // As runc: the rootfs's own mount must not carry the bind below
            // (nor pivot_root) back to the host.
            mounts::make_parent_mount_private(&spec.rootfs)?;
        }
        sys::mount(Some(&rootfs), &rootfs, None, libc::MS_BIND | libc::MS_REC, None)
            .map_err(|e| Error::errno(format!("bind rootfs {}", spec.rootfs.display()), e))?;
        let root = sys::open(&rootfs, libc::O_PATH | libc::O_DIRECTORY, 0)?;
        for m in &spec.mounts {
            match fds.sysfs {
                Some(fd) if m.kind == "sysfs" => mounts::attach_detached(root.as_raw_fd(), m, fd)?,
                _ => mounts::mount_one(root.as_raw_fd(), m, prep.layout.as_ref())?,
            }
        }
        // As runc: not into the host's /dev when that is bound in.
        if !spec.mounts.iter().any(|m| m.kind == "bind" && m.destination.trim_end_matches('/') == "/dev") {
            mounts::make_devices(root.as_raw_fd(), &spec.devices)?;
        }
        if !spec.cwd.is_empty() && spec.cwd != "/" {
            let _ = mounts::mkdir_all_in_root(root.as_raw_fd(), &spec.cwd, mounts::Kind::Dir);
        }
        mounts::pivot(root.as_raw_fd())?;
    } else {
        sys::check(unsafe { libc::chroot(rootfs.as_ptr()) }, || "chroot".into())?;
        sys::check(unsafe { libc::chdir(c"/".as_ptr()) }, || "chdir /".into())?;
    }
    for (k, v) in &spec.sysctl {
        if k.contains("..") || k.contains('/') {
            return Err(Error::Invalid(format!("invalid sysctl {k:?}")));
        }
        sys::write_file(&format!("/proc/sys/{}", k.replace('.', "/")), v)?;
    }
    if new_mnt {
        for p in &spec.readonly_paths {
            mounts::readonly_path(p)?;
        }
        for p in &spec.masked_paths {
            mounts::mask_path(p)?;
        }
        if spec.readonly_rootfs {
            sys::mount(None, c"/", None, libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY, None)
                .map_err(|e| Error::errno("remount rootfs read-only", e))?;
        }
    }
    if spec.has_ns("uts") {
        if !spec.hostname.is_empty() {
            let h = spec.hostname.as_bytes();
            sys::check(unsafe { libc::sethostname(h.as_ptr() as *const libc::c_char, h.len()) }, || "sethostname".into())?;
        }
        if !spec.domainname.is_empty() {
            let h = spec.domainname.as_bytes();
            sys::check(unsafe { libc::setdomainname(h.as_ptr() as *const libc::c_char, h.len()) }, || "setdomainname".into())?;
        }
    }
    finalize(spec, prep, fds)
}

/// In a new user namespace: wait until the parent wrote the maps, then take
/// the namespace's root as our IDs (files made from here on, mount targets
/// included, belong to the remapped root). Credential changes clear the
/// parent-death signal: set it again.
fn become_root_in_userns(maps_r: RawFd) -> Result<()> {
    let mut b = [0u8; 1];
    let n = loop {
        let n = unsafe { libc::read(maps_r, b.as_mut_ptr() as *mut libc::c_void, 1) };
        if n >= 0 || sys::errno() != libc::EINTR {
            break n;
        }
    };
    if n != 1 {
        return Err(Error::Invalid("the user namespace's maps were not written".into()));
    }
    sys::check(unsafe { libc::setresgid(0, 0, 0) }, || "setgid 0 in the user namespace".into())?;
    sys::check(unsafe { libc::setresuid(0, 0, 0) }, || "setuid 0 in the user namespace".into())?;
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    Ok(())
}
