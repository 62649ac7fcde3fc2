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
use crate::mounts;
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
        let g = if c.made { Cgroup::open(&c.path, &layout)? } else { Cgroup::create(&c.path, &c.resources, &layout)? };
        cgroup_dir_fd = g.v2_dir_fd();
        // The v2 one is also kept for when CLONE_INTO_CGROUP is refused.
        prep.cgroup_fds = g.join_fds()?;
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
            Some(_) if f == libc::CLONE_NEWUSER => return Err(Error::Invalid("joining an existing user namespace is not supported".into())),
            Some(p) => joins.push((f, sys::open(&sys::cpath(p)?, libc::O_RDONLY, 0)?)),
            None if f == libc::CLONE_NEWNET && opts.net_ready => {}
            None if f != libc::CLONE_NEWCGROUP => flags |= f,
            None => {}
        }
    }
    // Joining a pid namespace only affects children: do it here, undo after
    // the clone. With a new user namespace every join happens here: once in
    // it, the child has no privilege over the host's namespaces.
    let in_parent = |f: libc::c_int| f == libc::CLONE_NEWPID || prep.id_maps.is_some();
    let mut restore = Vec::new();
    for (f, fd) in joins.iter().filter(|(f, _)| in_parent(*f)) {
        let mine = sys::open(&sys::cstr(&format!("/proc/self/ns/{}", ns::proc_name(*f)))?, libc::O_RDONLY, 0)?;
        if let Err(e) = sys::check(unsafe { libc::setns(fd.as_raw_fd(), *f) }, || format!("join {} namespace", ns::proc_name(*f))) {
            undo_joins(&restore);
            return Err(e);
        }
        restore.push((*f, mine));
    }
    let maps_pipe = if prep.id_maps.is_some() { Some(sys::pipe()?) } else { None };
    // A user-namespaced container in a network namespace it doesn't own
    // (joined here, or the one the caller stands in): its sysfs is made here,
    // while we are still the host's root and in that namespace. Should that
    // fail, the child binds the host's /sys as runc does.
    let sysfs = if prep.id_maps.is_some() && flags & libc::CLONE_NEWNET == 0 {
        spec.mounts.iter().find(|m| m.kind == "sysfs").and_then(|m| mounts::detached_sysfs(m).ok())
    } else {
        None
    };
    let cl = clone(flags, cgroup_dir);
    undo_joins(&restore);
    let (pid, pidfd, into_cgroup) = cl?;
    if pid == 0 {
        let fds = ChildFds {
            stdio: opts.stdio,
            sync_w: sync_w.as_raw_fd(),
            gate_r: gate.as_ref().map(|(r, _)| r.as_raw_fd()),
            console: console.as_ref().map(|(_, c)| c.as_raw_fd()),
            sysfs: sysfs.as_ref().map(|f| f.as_raw_fd()),
        };
        let joins: Vec<_> = joins.into_iter().filter(|(f, _)| !in_parent(*f)).collect();
        let maps_r = maps_pipe.as_ref().map(|(r, _)| r.as_raw_fd());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| init_child(spec, prep, &fds, &joins, into_cgroup, opts.net_ready, maps_r)));
        let e = match r {
            Ok(Err(e)) => e,
            Ok(Ok(())) => Error::Invalid("init returned".into()),
            Err(_) => Error::Invalid("panic in container init".into()),
        };
        child_fail(fds.sync_w, &e);
    }
    if let (Some((uid_map, gid_map)), Some((_, maps_w))) = (&prep.id_maps, &maps_pipe) {
        // The child waits for its maps: until then its IDs mean nothing in its namespace.
        let w = write_id_maps(pid, uid_map, gid_map).and_then(|_| sys::write_all(maps_w.as_raw_fd(), b"M"));
        if let Err(e) = w {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            super::parent::reap(pid);
            return Err(e);
        }
    }
    drop(maps_pipe);
    finish_parent(pid, pidfd.unwrap(), sync_r, sync_w, gate, console)
}

fn undo_joins(restore: &[(libc::c_int, std::os::fd::OwnedFd)]) {
    for (f, fd) in restore.iter().rev() {
        unsafe { libc::setns(fd.as_raw_fd(), *f) };
    }
}

fn write_id_maps(pid: i32, uid_map: &str, gid_map: &str) -> Result<()> {
    for (name, text) in [("uid_map", uid_map), ("gid_map", gid_map)] {
        let path = format!("/proc/{pid}/{name}");
        let fd = sys::open(&sys::cstr(&path)?, libc::O_WRONLY, 0)?;
        // One write: the kernel takes the whole map at once or not at all.
        let n = unsafe { libc::write(fd.as_raw_fd(), text.as_ptr() as *const libc::c_void, text.len()) };
        if n != text.len() as isize {
            return Err(Error::errno(format!("write {name} of the container's user namespace"), sys::errno()));
        }
    }
    Ok(())
}
