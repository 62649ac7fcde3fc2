//! Dockyard's execution driver, native half: spawn a container's init
//! (clone3 + namespaces + cgroup + mounts + pivot_root + caps + rlimits +
//! seccomp + execve) and exec into a running container (setns). No Python here;
//! `dockyard-shim` drives it, `dockyard-core` binds a few helpers.
//!
//! Everything here blocks; `spawn`/`exec_in` must be called from a
//! single-threaded process (the shim), since the child runs Rust code between
//! clone and execve.

pub mod caps;
pub mod cgroup;
pub mod devices;
mod error;
pub mod mounts;
pub mod ns;
pub mod seccomp;
pub mod spawn;
pub mod spec;
pub mod sys;

pub use error::{strerror, Error, Result};
pub use spawn::{exec_in, init_reaper, lookup, prepare_network, spawn, Options, Process, Stdio};
pub use spec::Spec;
