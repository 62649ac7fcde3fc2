//! Spawning a container's init (one clone3 from the caller, no intermediate
//! process) and exec'ing into a running container (setns).
//!
//! The caller must be single-threaded (the shim is): the child runs ordinary
//! Rust code (allocations) between clone and execve.
//!
//! Setup errors travel back over a CLOEXEC pipe: EOF means the execve
//! succeeded; otherwise the child writes one message `E<code:i32le><text>`
//! (`R` first when it is parked at the start gate).
//!
//! Here: the public types. `container` spawns (cgroup, namespaces, one
//! clone) and `exec` execs into a running container; both `prepare` what
//! they can before the `clone`. In the child, `child` runs the container
//! init's setup sequence and `finalize` the tail it shares with exec (user,
//! caps, cwd, seccomp, execve), with `stdio` (pipes or the pty) and
//! `lookpath`; `parent` waits for the child's one message. `network` readies
//! a network namespace ahead of time; `reaper` is the `--init` PID 1.

mod child;
mod clone;
mod container;
mod exec;
mod finalize;
mod lookpath;
mod network;
mod parent;
mod prepare;
mod reaper;
mod stdio;

pub use container::spawn;
pub use exec::exec_in;
pub use lookpath::lookup;
pub use network::prepare_network;
pub use reaper::init_reaper;

use crate::cgroup::Cgroup;
use crate::error::{Error, Result};
use crate::sys;
use parent::{read_msg, reap, Msg};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Where the container's stdio goes (ignored with `spec.terminal`: the pty is
/// allocated inside the container and its master returned).
#[derive(Clone, Copy, Debug)]
pub struct Stdio {
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub stdio: Stdio,
    /// Park the process just before execve until [`Process::start`].
    pub wait_start: bool,
    /// The caller already stands in a new network namespace made for this
    /// container, loopback up ([`prepare_network`]): the container inherits
    /// it instead of cloning one (half a millisecond).
    pub net_ready: bool,
}

/// A spawned (or created, with `wait_start`) container process.
#[derive(Debug)]
pub struct Process {
    /// Pid in the caller's pid namespace.
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub pty_master: Option<OwnedFd>,
    /// The cgroup created for it (spawn only; exec joins the container's).
    pub cgroup: Option<Cgroup>,
    gate: Option<OwnedFd>,
    sync: Option<OwnedFd>,
}

impl Process {
    /// Release a process created with `wait_start`; returns once it exec'd
    /// (or with its exec error; it has then exited and been reaped).
    pub fn start(&mut self) -> Result<()> {
        let Some(gate) = self.gate.take() else { return Ok(()) };
        sys::write_all(gate.as_raw_fd(), b"S")?;
        drop(gate);
        let sync = self.sync.take().expect("sync pipe");
        match read_msg(sync.as_raw_fd())? {
            Msg::Exec => Ok(()),
            Msg::Ready => Err(Error::Invalid("unexpected ready message".into())),
            Msg::Err(e) => {
                reap(self.pid);
                Err(e)
            }
        }
    }

    pub fn is_created(&self) -> bool {
        self.gate.is_some()
    }
}
