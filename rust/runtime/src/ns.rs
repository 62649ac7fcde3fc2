//! Namespace names <-> clone flags.

pub fn flag(kind: &str) -> libc::c_int {
    match kind {
        "pid" => libc::CLONE_NEWPID,
        "mount" | "mnt" => libc::CLONE_NEWNS,
        "uts" => libc::CLONE_NEWUTS,
        "ipc" => libc::CLONE_NEWIPC,
        "network" | "net" => libc::CLONE_NEWNET,
        "cgroup" => libc::CLONE_NEWCGROUP,
        "user" => libc::CLONE_NEWUSER,
        "time" => libc::CLONE_NEWTIME,
        _ => 0,
    }
}

/// /proc/<pid>/ns/<name> for a flag.
pub fn proc_name(flag: libc::c_int) -> &'static str {
    match flag {
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWNS => "mnt",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWNET => "net",
        libc::CLONE_NEWCGROUP => "cgroup",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWTIME => "time",
        _ => "?",
    }
}

/// Order in which an exec joins an existing container's namespaces (runc's:
/// user first; mount last so /proc/<pid>/ns stays reachable until then).
pub const JOIN_ORDER: [libc::c_int; 6] =
    [libc::CLONE_NEWCGROUP, libc::CLONE_NEWIPC, libc::CLONE_NEWUTS, libc::CLONE_NEWNET, libc::CLONE_NEWPID, libc::CLONE_NEWNS];
