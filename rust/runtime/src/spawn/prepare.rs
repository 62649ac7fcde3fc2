//! What is computed before the clone, so that the child does little but
//! syscalls: argv and env as C strings, capability masks, rlimits, the
//! seccomp program, and the namespaces checked.

use crate::caps::{self, Masks};
use crate::cgroup::Layout;
use crate::error::{Error, Result};
use crate::ns;
use crate::seccomp;
use crate::spec::{IdMapping, Spec};
use crate::sys::cstr;
use std::ffi::CString;
use std::os::fd::OwnedFd;

/// Everything computed before the clone (so the child does little but syscalls).
pub(super) struct Prepared {
    pub(super) argv: Vec<CString>,
    pub(super) envp: Vec<CString>,
    pub(super) caps: Option<Masks>,
    pub(super) last_cap: u32,
    pub(super) rlimits: Vec<(libc::__rlimit_resource_t, libc::rlimit)>,
    pub(super) seccomp: Option<Vec<libc::sock_filter>>,
    /// Join files of each hierarchy, with whether it is the v2 one (`Cgroup::join_fds`).
    pub(super) cgroup_fds: Vec<(OwnedFd, bool)>,
    pub(super) layout: Option<Layout>,
    /// A new user namespace: the uid_map and gid_map texts the parent writes.
    pub(super) id_maps: Option<(String, String)>,
}

fn rlimit_resource(name: &str) -> Result<libc::__rlimit_resource_t> {
    let n = name.to_ascii_uppercase();
    let n = n.strip_prefix("RLIMIT_").unwrap_or(&n);
    Ok(match n {
        "CPU" => libc::RLIMIT_CPU,
        "FSIZE" => libc::RLIMIT_FSIZE,
        "DATA" => libc::RLIMIT_DATA,
        "STACK" => libc::RLIMIT_STACK,
        "CORE" => libc::RLIMIT_CORE,
        "RSS" => libc::RLIMIT_RSS,
        "NPROC" => libc::RLIMIT_NPROC,
        "NOFILE" => libc::RLIMIT_NOFILE,
        "MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "AS" => libc::RLIMIT_AS,
        "LOCKS" => libc::RLIMIT_LOCKS,
        "SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "NICE" => libc::RLIMIT_NICE,
        "RTPRIO" => libc::RLIMIT_RTPRIO,
        "RTTIME" => libc::RLIMIT_RTTIME,
        _ => return Err(Error::Invalid(format!("unknown rlimit {name:?}"))),
    })
}

pub(super) fn prepare(spec: &Spec) -> Result<Prepared> {
    if spec.args.is_empty() {
        return Err(Error::Invalid("no command specified".into()));
    }
    let argv = spec.args.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
    let envp = spec.env.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
    let caps = spec.capabilities.as_ref().map(Masks::from_spec).transpose()?;
    let mut rlimits = Vec::new();
    for r in &spec.rlimits {
        rlimits.push((rlimit_resource(&r.kind)?, libc::rlimit { rlim_cur: r.soft, rlim_max: r.hard }));
    }
    let seccomp = seccomp::program_for(spec)?;
    for n in &spec.namespaces {
        if ns::flag(&n.kind) == 0 {
            return Err(Error::Invalid(format!("unknown namespace type {:?}", n.kind)));
        }
    }
    let id_maps = match spec.namespaces.iter().find(|n| n.kind == "user") {
        Some(n) if n.path.is_none() => {
            if spec.uid_mappings.is_empty() || spec.gid_mappings.is_empty() {
                return Err(Error::Invalid("user namespaces enabled, but no uid or gid mappings found".into()));
            }
            let text = |ms: &[IdMapping]| ms.iter().map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size)).collect::<String>();
            Some((text(&spec.uid_mappings), text(&spec.gid_mappings)))
        }
        _ => None,
    };
    Ok(Prepared { argv, envp, caps, last_cap: caps::last_cap(), rlimits, seccomp, cgroup_fds: vec![], layout: None, id_maps })
}
