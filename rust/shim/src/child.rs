//! The supervised process, cloned by the runtime crate or made by runc, and
//! what the shim does with it: start it when parked, tell whether the OOM
//! killer hit its cgroup, clean up after it.

use crate::args::Args;
use crate::runc;
use dockyard_runtime::{self as rt, sys, Spec, Stdio};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// The supervised process: cloned by the runtime crate, or made by runc.
pub enum Child {
    Native(rt::Process),
    Runc { runc: runc::Runc, pidfd: OwnedFd, cgroup: Option<rt::cgroup::Cgroup>, created: bool },
}

impl Child {
    pub fn pidfd(&self) -> RawFd {
        match self {
            Child::Native(p) => p.pidfd.as_raw_fd(),
            Child::Runc { pidfd, .. } => pidfd.as_raw_fd(),
        }
    }

    pub fn is_created(&self) -> bool {
        match self {
            Child::Native(p) => p.is_created(),
            Child::Runc { created, .. } => *created,
        }
    }

    /// Release a process parked before exec (`--wait-start`).
    pub fn start(&mut self) -> Result<(), (String, i32)> {
        match self {
            Child::Native(p) => p.start().map_err(|e| (e.to_string(), e.exit_code())),
            Child::Runc { runc, created, .. } => {
                if !std::mem::take(created) {
                    return Ok(());
                }
                runc.start().inspect_err(|_| runc.delete())
            }
        }
    }

    pub fn oom_killed(&self) -> bool {
        let cg = match self {
            Child::Native(p) => p.cgroup.as_ref(),
            Child::Runc { cgroup, .. } => cgroup.as_ref(),
        };
        cg.is_some_and(|c| c.oom_kills() > 0)
    }

    /// After the exit: remove the cgroup (and, for runc, its state).
    pub fn cleanup(&mut self) {
        match self {
            Child::Native(p) => {
                if let Some(cg) = p.cgroup.take() {
                    let _ = cg.remove();
                }
            }
            Child::Runc { runc, cgroup, .. } => {
                runc.delete();
                if let Some(cg) = cgroup.take() {
                    let _ = cg.remove();
                }
            }
        }
    }
}

/// `runc create` (and, unless parked, `runc start`) for `spec`'s container.
pub fn start_runc(args: &Args, spec: &Spec, stdio: Stdio) -> Result<(Child, i32, Option<OwnedFd>), (String, i32)> {
    let r = runc::Runc { bin: args.runc.clone(), root: args.runc_root.clone(), bundle: args.bundle.clone(), id: args.id.clone() };
    // Adopt the container's init when `runc create` exits.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let created = r.create(stdio, spec.terminal)?;
    let pidfd = match sys::pidfd_open(created.pid) {
        Ok(fd) => fd,
        Err(e) => {
            r.delete();
            return Err((e.to_string(), 128));
        }
    };
    let cgroup = spec.cgroup.as_ref().and_then(|c| rt::cgroup::Layout::detect().and_then(|l| rt::cgroup::Cgroup::open(&c.path, &l)).ok());
    let mut child = Child::Runc { runc: r, pidfd, cgroup, created: true };
    if !args.wait_start {
        child.start()?;
    }
    Ok((child, created.pid, created.pty_master))
}
