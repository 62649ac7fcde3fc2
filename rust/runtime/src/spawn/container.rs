//! Creating a container: its cgroup, then one clone with the new namespaces
//! (existing ones to join are joined in the child, except pid, which the
//! caller joins around the clone); the child runs the init's setup.

use super::child::{child_fail, init_child, ChildFds};
use super::clone::clone;
use super::parent::finish_parent;
use super::prepare::{prepare, Prepared};
use super::{Options, Process};
use crate::cgroup::{Cgroup, Layout};
use crate::error::{Error, Result};
use crate::ns;
use crate::spec::Spec;
use crate::sys;
use std::os::fd::{AsRawFd, RawFd};

/// Create the container: cgroup, then one clone with the namespaces; the
/// child sets everything up and execs `spec.args`.
pub fn spawn(spec: &Spec, opts: Options) -> Result<Process> {
    let mut prep = prepare(spec)?;
    let mut cg = None;
    let mut cgroup_dir_fd = None;
    if let Some(c) = &spec.cgroup {
        let layout = Layout::detect()?;
        let g = Cgroup::create(&c.path, &c.resources, &layout)?;
        cgroup_dir_fd = g.v2_dir_fd();
        if cgroup_dir_fd.is_none() {
            prep.cgroup_fds = g.procs_fds()?;
        } else {
            // Also keep the procs fds: used when CLONE_INTO_CGROUP is refused.
            prep.cgroup_fds = g.procs_fds()?;
        }
        prep.layout = Some(layout);
        cg = Some(g);
    } else if spec.mounts.iter().any(|m| m.kind == "cgroup") {
        prep.layout = Some(Layout::detect()?);
    }
    let res = spawn_inner(spec, opts, &prep, cgroup_dir_fd.as_ref().map(|f| f.as_raw_fd()));
    match res {
        Ok(mut p) => {
            p.cgroup = cg;
            Ok(p)
        }
        Err(e) => {
            if let Some(g) = cg {
                let _ = g.remove();
            }
            Err(e)
        }
    }
}

fn spawn_inner(spec: &Spec, opts: Options, prep: &Prepared, cgroup_dir: Option<RawFd>) -> Result<Process> {
    let (sync_r, sync_w) = sys::pipe()?;
    let gate = if opts.wait_start { Some(sys::pipe()?) } else { None };
    let console = if spec.terminal { Some(sys::socketpair()?) } else { None };
    let mut flags = 0;
    let mut joins = Vec::new();
    for n in &spec.namespaces {
        let f = ns::flag(&n.kind);
        match &n.path {
            Some(p) => joins.push((f, sys::open(&sys::cpath(p)?, libc::O_RDONLY, 0)?)),
            None if f == libc::CLONE_NEWNET && opts.net_ready => {}
            None if f != libc::CLONE_NEWCGROUP => flags |= f,
            None => {}
        }
    }
    // Joining a pid namespace only affects children: do it here, undo after the clone.
    let mut restore_pid = None;
    if let Some((_, fd)) = joins.iter().find(|(f, _)| *f == libc::CLONE_NEWPID) {
        restore_pid = Some(sys::open(c"/proc/self/ns/pid", libc::O_RDONLY, 0)?);
        sys::check(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID) }, || "join pid namespace".into())?;
    }
    let cl = clone(flags, cgroup_dir);
    if let Some(fd) = restore_pid {
        unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID) };
    }
    let (pid, pidfd) = cl?;
    if pid == 0 {
        let fds = ChildFds {
            stdio: opts.stdio,
            sync_w: sync_w.as_raw_fd(),
            gate_r: gate.as_ref().map(|(r, _)| r.as_raw_fd()),
            console: console.as_ref().map(|(_, c)| c.as_raw_fd()),
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| init_child(spec, prep, &fds, &joins, cgroup_dir.is_some(), opts.net_ready)));
        let e = match r {
            Ok(Err(e)) => e,
            Ok(Ok(())) => Error::Invalid("init returned".into()),
            Err(_) => Error::Invalid("panic in container init".into()),
        };
        child_fail(fds.sync_w, &e);
    }
    finish_parent(pid, pidfd.unwrap(), sync_r, sync_w, gate, console)
}
