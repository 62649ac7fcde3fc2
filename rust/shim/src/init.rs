//! `dockyard-shim init -- CMD [ARG...]`, also run as `/sbin/docker-init -- CMD
//! [ARG...]`: the container's PID 1 for `docker run --init` under the runc
//! driver. The daemon bind-mounts this (statically linked) binary read-only at
//! `/sbin/docker-init` and prefixes the process args with it, as Docker does
//! with tini. The native driver needs none of this: its runtime forks the same
//! reaper in the container just before execve.
//!
//! The command runs as our child, with default signal dispositions and the
//! mask we started with; we stay behind as [`rt::init_reaper`]: every signal
//! we can catch goes to the child, every process re-parented to us is reaped,
//! and we exit with the child's status (128 + signal when it was killed).
//! A command that can't be run exits 127 (not found) or 126 (not executable)
//! with Docker's message on stderr.

use dockyard_runtime::{self as rt, spec::DEFAULT_PATH};
use std::ffi::{CString, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// Whether this process is the init: argv[0] named `docker-init`, or `init` first.
pub fn wanted() -> bool {
    let mut a = std::env::args_os();
    let arg0 = a.next().unwrap_or_default();
    std::path::Path::new(&arg0).file_name().is_some_and(|n| n == "docker-init") || a.next().is_some_and(|m| m == "init")
}

fn fail(msg: &str, code: i32) -> ! {
    eprintln!("{msg}");
    unsafe { libc::_exit(code) }
}

pub fn main() -> ! {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "init") {
        args.remove(0);
    }
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    if args.is_empty() {
        fail("usage: docker-init -- COMMAND [ARG...]", 2);
    }
    if unsafe { libc::getpid() } != 1 {
        // Not the pid namespace's init (--pid host): adopt the orphans anyway.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    // Block the signals before forking, so none that arrives in between is
    // lost (PID 1 drops signals it has no handler for); the child restores.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_BLOCK, &all, &mut old);
    }
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail(&format!("docker-init: fork: {}", rt::strerror(rt::sys::errno())), 1);
    }
    if pid > 0 {
        rt::init_reaper(pid);
    }
    child(args, &old)
}

/// The command, as execvp would run it but with Go's (and so Docker's) lookup
/// rules and messages.
fn child(args: Vec<OsString>, mask: &libc::sigset_t) -> ! {
    unsafe {
        // Rust's runtime ignores SIGPIPE, and an ignored signal stays ignored
        // across execve: give the command the dispositions runc would have.
        for s in 1..libc::SIGRTMAX() {
            if s != libc::SIGKILL && s != libc::SIGSTOP {
                libc::signal(s, libc::SIG_DFL);
            }
        }
        libc::sigprocmask(libc::SIG_SETMASK, mask, std::ptr::null_mut());
    }
    let name = args[0].to_string_lossy().into_owned();
    let path = std::env::var_os("PATH");
    let exe = match (args[0].to_str(), path.as_deref().map(|p| p.to_str())) {
        (Some(n), None) => rt::lookup(n, DEFAULT_PATH),
        (Some(n), Some(Some(p))) => rt::lookup(n, p),
        // Not UTF-8: the bytes as given; execve reports what is wrong.
        _ => Ok(CString::new(args[0].as_bytes()).unwrap_or_default()),
    };
    let exe = match exe {
        Ok(e) => e,
        Err(rt::Error::Exec { msg, code }) => fail(&msg, code),
        Err(e) => fail(&format!("exec: \"{name}\": {e}"), 127),
    };
    let argv: Vec<CString> = match args.into_iter().map(|a| CString::new(a.into_vec())).collect() {
        Ok(v) => v,
        Err(_) => fail(&format!("exec: \"{name}\": argument contains a NUL byte"), 127),
    };
    let mut argp: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argp.push(std::ptr::null());
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    unsafe { libc::execve(exe.as_ptr(), argp.as_ptr(), environ) };
    let e = rt::sys::errno();
    let code = if e == libc::ENOENT || e == libc::ENOTDIR { 127 } else { 126 };
    fail(&format!("exec: \"{name}\": {}", rt::strerror(e)), code)
}
