//! `dockyard-shim rootless-init [--uid-range START:COUNT --gid-range START:COUNT]
//! -- CMD [ARG...]`: runs CMD (the rootless daemon) as root of a user and
//! mount namespace of its own, the rootlesskit model without a pause process.
//!
//! It forks; the child unshares CLONE_NEWUSER|CLONE_NEWNS and waits on a pipe
//! while the parent, still outside, writes its ID maps: with the ranges, through
//! the setuid `newuidmap`/`newgidmap` (`0 UID 1 1 START COUNT`), else the one
//! map an unprivileged process may write itself (`0 UID 1`, after `deny` in
//! `setgroups`). The child then becomes uid/gid 0, makes `/` a slave (host
//! mounts still reach it, its own never leak out) and execs CMD. The parent
//! stays as a small supervisor: it forwards the usual signals, and exits with
//! the child's status. The network namespace stays the host's. The policy
//! (which ranges, the warnings) is the caller's (dockyard/rootless.py).
//!
//! `--join PID` instead enters the user and mount namespaces of PID (a shim
//! of a container the previous daemon left running): a restarted daemon
//! then sees what its predecessor made there (the containers' namespace
//! files, the rootless network namespace and its bridges) and may enter it,
//! which a sibling user namespace could not. No maps are written: they are
//! the ones PID's namespace has.

use dockyard_runtime::{self as rt, sys};
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::process::Command;

fn fail(msg: &str) -> ! {
    eprintln!("dockyard-shim rootless-init: {msg}");
    std::process::exit(125)
}

fn range(v: Option<String>, what: &str) -> (u64, u64) {
    let v = v.unwrap_or_else(|| fail(&format!("{what} needs START:COUNT")));
    match v.split_once(':').map(|(a, b)| (a.parse(), b.parse())) {
        Some((Ok(a), Ok(b))) if b > 0 => (a, b),
        _ => fail(&format!("{what} {v:?}: want START:COUNT")),
    }
}

/// `newuidmap PID 0 ID 1 1 START COUNT`; its own message when it refuses.
fn helper(tool: &str, pid: i32, id: u32, r: (u64, u64)) -> Result<(), String> {
    let out = Command::new(tool)
        .args([pid.to_string(), "0".into(), id.to_string(), "1".into(), "1".into(), r.0.to_string(), r.1.to_string()])
        .output()
        .map_err(|e| format!("{tool}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!("{tool} {pid} 0 {id} 1 1 {} {}: {}", r.0, r.1, String::from_utf8_lossy(&out.stderr).trim()))
}

fn write_maps(pid: i32, uid: u32, gid: u32, ranges: Option<((u64, u64), (u64, u64))>) -> Result<(), String> {
    if let Some((u, g)) = ranges {
        helper("newuidmap", pid, uid, u)?;
        return helper("newgidmap", pid, gid, g);
    }
    let w = |f: &str, d: String| sys::write_file(&format!("/proc/{pid}/{f}"), &d).map_err(|e| format!("/proc/{pid}/{f}: {e}"));
    w("uid_map", format!("0 {uid} 1\n"))?;
    w("setgroups", "deny".into())?;
    w("gid_map", format!("0 {gid} 1\n"))
}

const FORWARDED: [libc::c_int; 7] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH];

pub fn main(argv: &[String]) -> ! {
    let (mut uids, mut gids, mut join, mut cmd) = (None, None, None, Vec::new());
    let mut it = argv.iter().cloned();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--uid-range" => uids = Some(range(it.next(), "--uid-range")),
            "--gid-range" => gids = Some(range(it.next(), "--gid-range")),
            "--join" => join = Some(it.next().and_then(|p| p.parse::<i32>().ok()).filter(|p| *p > 0).unwrap_or_else(|| fail("--join needs a PID"))),
            "--" => {
                cmd = it.by_ref().collect();
            }
            _ => fail(&format!("unknown argument {a:?}")),
        }
    }
    if cmd.is_empty() {
        fail("usage: rootless-init [--uid-range START:COUNT --gid-range START:COUNT | --join PID] -- CMD [ARG...]");
    }
    let ranges = match (uids, gids) {
        (Some(u), Some(g)) => Some((u, g)),
        (None, None) => None,
        _ => fail("--uid-range and --gid-range go together"),
    };
    // Opened before the fork: a PID gone meanwhile fails here, not half-way.
    let joined = join.map(|p| {
        let open = |ns: &str| {
            std::fs::File::open(format!("/proc/{p}/ns/{ns}")).unwrap_or_else(|e| fail(&format!("--join {p}: /proc/{p}/ns/{ns}: {e}")))
        };
        (open("user"), open("mnt"))
    });
    let argv: Vec<CString> = cmd.iter().map(|a| CString::new(a.as_str()).unwrap_or_else(|_| fail("NUL in argument"))).collect();
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let (go_r, go_w) = sys::pipe().unwrap_or_else(|e| fail(&format!("pipe: {e}")));
    let (ready_r, ready_w) = sys::pipe().unwrap_or_else(|e| fail(&format!("pipe: {e}")));
    // Blocked before the fork, so none is lost between fork and the wait loop.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        for s in FORWARDED.iter().chain(&[libc::SIGCHLD]) {
            libc::sigaddset(&mut set, *s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
    }
    let parent = unsafe { libc::getpid() };
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail(&format!("fork: {}", rt::strerror(sys::errno())));
    }
    if pid == 0 {
        drop(go_w);
        drop(ready_r);
        unsafe {
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        }
        if let Some((user, mnt)) = &joined {
            // The user namespace first: its owner (us) gets every capability
            // there, which entering its mount namespace needs.
            unsafe {
                if libc::setns(user.as_raw_fd(), libc::CLONE_NEWUSER) != 0 || libc::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS) != 0 {
                    fail(&format!("join the namespaces of {}: {}", join.unwrap_or(0), rt::strerror(sys::errno())));
                }
            }
        } else {
            if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) } != 0 {
                fail(&format!("unshare a user and mount namespace: {}", rt::strerror(sys::errno())));
            }
            let _ = sys::write_all(ready_w.as_raw_fd(), b"u");
            // One byte: the maps are written; EOF: the parent failed and said why.
            let mut b = [0u8; 1];
            if unsafe { libc::read(go_r.as_raw_fd(), b.as_mut_ptr() as *mut libc::c_void, 1) } != 1 {
                unsafe { libc::_exit(125) };
            }
        }
        drop(ready_w);
        unsafe {
            if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                fail(&format!("become root in the user namespace: {}", rt::strerror(sys::errno())));
            }
            // Supplementary groups from outside show as nobody; with a full gid
            // map they can go (setgroups is denied with the single-ID map, and
            // then fails harmlessly in a joined namespace).
            if ranges.is_some() || joined.is_some() {
                libc::setgroups(0, std::ptr::null());
            }
            // The supervisor gone (kill -9), the daemon shuts down cleanly. Set
            // after the credential change, which clears it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            if libc::getppid() != parent {
                libc::_exit(125);
            }
            if joined.is_none() && libc::mount(std::ptr::null(), c"/".as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_SLAVE, std::ptr::null()) != 0 {
                fail(&format!("make / a slave mount: {}", rt::strerror(sys::errno())));
            }
        }
        let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        unsafe { libc::execvp(ptrs[0], ptrs.as_ptr()) };
        fail(&format!("exec {}: {}", cmd[0], rt::strerror(sys::errno())));
    }
    drop(go_r);
    drop(ready_w);
    drop(joined);
    if join.is_none() {
        let mut b = [0u8; 1];
        if unsafe { libc::read(ready_r.as_raw_fd(), b.as_mut_ptr() as *mut libc::c_void, 1) } != 1 {
            exit_like(reap(pid));
        }
        if let Err(e) = write_maps(pid, uid, gid, ranges) {
            drop(go_w);
            reap(pid);
            fail(&format!("writing the ID maps: {e}"));
        }
        let _ = sys::write_all(go_w.as_raw_fd(), b"g");
    }
    drop(go_w);
    unsafe { libc::prctl(libc::PR_SET_NAME, c"rootless-init".as_ptr(), 0, 0, 0) };
    loop {
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        if sig == libc::SIGCHLD {
            let mut status = 0;
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                exit_like(status);
            }
        } else if sig > 0 {
            unsafe { libc::kill(pid, sig) };
        }
    }
}

fn reap(pid: i32) -> i32 {
    let mut status = 0;
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 && sys::errno() == libc::EINTR {}
    status
}

/// The child's exit status as ours (a signal as 128+N, as shells show it).
fn exit_like(status: i32) -> ! {
    if libc::WIFEXITED(status) {
        std::process::exit(libc::WEXITSTATUS(status));
    }
    std::process::exit(128 + libc::WTERMSIG(status))
}
