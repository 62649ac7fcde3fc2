//! Exec into a running container (`docker exec`): join its cgroup and
//! namespaces, then the same tail as the init.

use super::child::{child_fail, reset_signals, ChildFds};
use super::clone::clone;
use super::finalize::finalize;
use super::parent::finish_parent;
use super::prepare::prepare;
use super::stdio::stdio_dup;
use super::{Options, Process};
use crate::cgroup::{self, Layout};
use crate::error::{Error, Result};
use crate::ns;
use crate::spec::Spec;
use crate::sys::{self, cstr};
use std::os::fd::AsRawFd;

/// Run `spec.args` inside the running container whose init is `pid`: join its
/// cgroup and namespaces (mount last), then the same user/caps/cwd/seccomp/exec
/// tail as init. Uses `spec`'s args, env, cwd, user, capabilities, rlimits,
/// terminal; ignores rootfs, mounts and namespaces.
///
/// Joining the pid namespace happens in the caller for the duration of the clone.
pub fn exec_in(pid: i32, spec: &Spec, opts: Options) -> Result<Process> {
    let mut prep = prepare(spec)?;
    let target_pidfd = sys::pidfd_open(pid)?;
    let layout = Layout::detect()?;
    let mut cgroup_dir = None;
    for (d, v2) in cgroup::of_pid(pid, &layout)? {
        if let Ok(mut fds) = cgroup::join_fds(std::iter::once((d.as_path(), v2))) {
            prep.cgroup_fds.append(&mut fds);
        }
        if v2 {
            cgroup_dir = cgroup::v2_dir_fd(&d);
        }
    }
    let mut joins = Vec::new();
    // The user namespace last: before it, the host's privileges open the others.
    for f in ns::JOIN_ORDER.into_iter().chain([libc::CLONE_NEWUSER]) {
        let name = ns::proc_name(f);
        let theirs = format!("/proc/{pid}/ns/{name}");
        let mine = format!("/proc/self/ns/{name}");
        let (Ok(a), Ok(b)) = (std::fs::metadata(&theirs), std::fs::metadata(&mine)) else { continue };
        use std::os::unix::fs::MetadataExt;
        if a.ino() == b.ino() && a.dev() == b.dev() {
            continue;
        }
        joins.push((f, sys::open(&cstr(&theirs)?, libc::O_RDONLY, 0)?));
    }
    let (sync_r, sync_w) = sys::pipe()?;
    let gate = if opts.wait_start { Some(sys::pipe()?) } else { None };
    let console = if spec.terminal { Some(sys::socketpair()?) } else { None };
    let mut restore_pid = None;
    if let Some((_, fd)) = joins.iter().find(|(f, _)| *f == libc::CLONE_NEWPID) {
        restore_pid = Some(sys::open(c"/proc/self/ns/pid", libc::O_RDONLY, 0)?);
        sys::check(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID) }, || "join pid namespace".into())?;
    }
    let cl = clone(0, cgroup_dir.as_ref().map(|f| f.as_raw_fd()));
    if let Some(fd) = restore_pid {
        unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID) };
    }
    let (cpid, pidfd, into_cgroup) = cl?;
    if cpid == 0 {
        let fds = ChildFds {
            stdio: opts.stdio,
            sync_w: sync_w.as_raw_fd(),
            gate_r: gate.as_ref().map(|(r, _)| r.as_raw_fd()),
            console: console.as_ref().map(|(_, c)| c.as_raw_fd()),
            sysfs: None,
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<()> {
            reset_signals();
            if !spec.terminal {
                stdio_dup(&fds.stdio)?;
            }
            for (fd, v2) in &prep.cgroup_fds {
                if !(*v2 && into_cgroup) {
                    let _ = sys::write_all(fd.as_raw_fd(), b"0");
                }
            }
            for (f, fd) in &joins {
                if *f != libc::CLONE_NEWPID {
                    sys::check(unsafe { libc::setns(fd.as_raw_fd(), *f) }, || format!("join {} namespace", ns::proc_name(*f)))?;
                }
            }
            drop(target_pidfd);
            if let Some(adj) = spec.oom_score_adj {
                let _ = sys::write_file("/proc/self/oom_score_adj", &adj.to_string());
            }
            for (res, lim) in &prep.rlimits {
                sys::check(unsafe { libc::setrlimit(*res, lim) }, || format!("setrlimit {res}"))?;
            }
            unsafe { libc::setsid() };
            finalize(spec, &prep, &fds)
        }));
        let e = match r {
            Ok(Err(e)) => e,
            Ok(Ok(())) => Error::Invalid("exec returned".into()),
            Err(_) => Error::Invalid("panic in exec setup".into()),
        };
        child_fail(fds.sync_w, &e);
    }
    finish_parent(cpid, pidfd.unwrap(), sync_r, sync_w, gate, console)
}
