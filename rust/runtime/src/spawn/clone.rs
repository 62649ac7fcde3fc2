//! The clone itself: clone3 with a pidfd, straight into the container's
//! cgroup when the kernel allows; plain clone (and pidfd_open) where clone3
//! is missing.

use crate::error::{Error, Result};
use crate::sys;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3 (falling back to clone) like fork: returns (pid, pidfd) in the
/// parent, (0, None) in the child, each with whether the child was born in
/// `cgroup_fd`'s cgroup (else it must join it itself).
///
/// The child is born non-dumpable and stays so until its execve (which resets
/// it): until then it runs our binary, holds our fds and, before pivot_root,
/// the host's root, all of which a container process sharing its pid
/// namespace could otherwise reach through /proc/<pid>/{exe,fd,root,mem}
/// (CVE-2019-5736). Set in the parent around the clone so there is no window.
pub(super) fn clone(flags: libc::c_int, cgroup_fd: Option<RawFd>) -> Result<(i32, Option<OwnedFd>, bool)> {
    let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let r = clone_raw(flags, cgroup_fd);
    if !matches!(r, Ok((0, _, _))) && dumpable > 0 {
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, dumpable as libc::c_ulong, 0, 0, 0) };
    }
    r
}

fn clone_raw(flags: libc::c_int, cgroup_fd: Option<RawFd>) -> Result<(i32, Option<OwnedFd>, bool)> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: (flags | libc::CLONE_PIDFD) as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    let mut r = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>()) };
    if r < 0 && cgroup_fd.is_some() && sys::errno() != libc::ENOSYS {
        // CLONE_INTO_CGROUP refused: retry plain; the child joins by writing.
        args.flags &= !(CLONE_INTO_CGROUP);
        args.cgroup = 0;
        r = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>()) };
    }
    if r < 0 && sys::errno() == libc::ENOSYS {
        args.flags &= !(CLONE_INTO_CGROUP);
        r = unsafe { libc::syscall(libc::SYS_clone, (flags | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize) };
        if r > 0 {
            pidfd = sys::pidfd_open(r as i32).map(|f| {
                let raw = f.as_raw_fd();
                std::mem::forget(f);
                raw
            })?;
        }
    }
    if r < 0 {
        return Err(Error::os("clone"));
    }
    let into_cgroup = args.flags & CLONE_INTO_CGROUP != 0;
    if r == 0 {
        return Ok((0, None, into_cgroup));
    }
    Ok((r as i32, Some(unsafe { OwnedFd::from_raw_fd(pidfd) }), into_cgroup))
}
