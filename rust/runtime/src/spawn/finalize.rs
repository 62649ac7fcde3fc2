//! The tail that init and exec share, in the child: the pty, seccomp and
//! capabilities (in the order privileges allow), user and groups, cwd, the
//! executable's lookup, the start gate, the `--init` fork, and execve.

use super::child::ChildFds;
use super::init_reaper;
use super::lookpath::lookup;
use super::prepare::Prepared;
use super::stdio::setup_console;
use crate::caps;
use crate::error::{Error, Result};
use crate::seccomp;
use crate::spec::Spec;
use crate::sys::{self, cstr};

/// Shared tail of init and exec: stdio/pty, user, caps, cwd, lookup, seccomp, execve.
pub(super) fn finalize(spec: &Spec, prep: &Prepared, fds: &ChildFds) -> Result<()> {
    if let Some(sock) = fds.console {
        setup_console(spec, sock)?;
    }
    // Seccomp without no_new_privs needs CAP_SYS_ADMIN: install before dropping caps.
    if !spec.no_new_privileges {
        if let Some(p) = &prep.seccomp {
            seccomp::install(p)?;
        }
    }
    if let Some(c) = &prep.caps {
        caps::drop_bounding(c, prep.last_cap)?;
    }
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    let u = &spec.user;
    let groups: Vec<libc::gid_t> = u.additional_gids.clone();
    if sys::setgroups_denied() {
        // The rootless daemon's single-ID map: setgroups is denied there, and
        // the process keeps the none it has (runc skips it too).
    } else {
        sys::check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) }, || "setgroups".into())?;
    }
    sys::check(unsafe { libc::setresgid(u.gid, u.gid, u.gid) }, || format!("setgid {}", u.gid))?;
    sys::check(unsafe { libc::setresuid(u.uid, u.uid, u.uid) }, || format!("setuid {}", u.uid))?;
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    if let Some(c) = &prep.caps {
        caps::apply(c)?;
    }
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    let ccwd = cstr(cwd)?;
    sys::check(unsafe { libc::chdir(ccwd.as_ptr()) }, || format!("chdir to cwd (\"{cwd}\") set in config.json failed"))?;
    check_cwd_inside(cwd)?;
    let exe = lookup(&spec.args[0], spec.path_env())?;
    if let Some(g) = fds.gate_r {
        sys::write_all(fds.sync_w, b"R")?;
        let mut b = [0u8; 1];
        let n = unsafe { libc::read(g, b.as_mut_ptr() as *mut libc::c_void, 1) };
        if n != 1 {
            // The supervisor went away without starting us.
            unsafe { libc::_exit(137) };
        }
    }
    if spec.no_new_privileges {
        sys::check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }, || "set no_new_privs".into())?;
        if let Some(p) = &prep.seccomp {
            seccomp::install(p)?;
        }
    }
    unsafe { libc::umask(spec.user.umask.unwrap_or(0o022)) };
    if spec.init {
        // The command runs as our child; this process stays as PID 1. Only the
        // child keeps the sync pipe, so its execve (or its error) is what the
        // supervisor sees.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(Error::Os { op: "fork for --init".into(), errno: sys::errno() });
        }
        if pid > 0 {
            // The reaper needs no fds: keep none of the shim's in the container.
            unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
            init_reaper(pid);
        }
    }
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    let mut argv: Vec<*const libc::c_char> = prep.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = prep.envp.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    unsafe { libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    let e = sys::errno();
    let name = &spec.args[0];
    Err(match e {
        libc::ENOENT => Error::Exec { msg: format!("exec: \"{name}\": no such file or directory"), code: 127 },
        libc::EACCES | libc::EPERM => Error::Exec { msg: format!("exec: \"{name}\": permission denied"), code: 126 },
        e => Error::Exec { msg: format!("exec: \"{name}\": {}", crate::error::strerror(e)), code: 126 },
    })
}

/// The cwd must be reachable from the container's root: a cwd such as
/// /proc/self/fd/N naming a directory fd we inherited would leave the process
/// outside it (CVE-2024-21626). The kernel's getcwd says so with a
/// "(unreachable)" prefix instead of a leading '/'.
fn check_cwd_inside(cwd: &str) -> Result<()> {
    let mut buf = [0u8; 4096];
    let n = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    if n < 0 || buf[0] != b'/' {
        return Err(Error::Exec {
            msg: format!("chdir to cwd (\"{cwd}\") set in config.json failed: current working directory is outside of container mount namespace root -- possible container breakout detected"),
            code: 126,
        });
    }
    Ok(())
}
