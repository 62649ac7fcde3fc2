//! `dockyard-shim pod-init`: the PID 1 of a pod's shared PID namespace (a CRI
//! pod whose containers share one). With no pause image, something must be
//! the namespace's init: it holds the namespace open for the containers that
//! join it (setns + fork), and reaps what they orphan.
//!
//! The launched process unshares a PID namespace and forks its init, prints
//! the init's PID (as seen from here) as one line on stdout and exits. The
//! init leaves the launcher's stdio and session, blocks every signal (from
//! outside, only SIGKILL reaches a namespace's init without a handler: the
//! pod's stop sends it) and reaps until then. Its death ends every process of
//! the namespace, as the kernel does for any PID 1.

use dockyard_runtime::{self as rt, sys};

fn fail(msg: &str) -> ! {
    eprintln!("dockyard-shim pod-init: {msg}: {}", rt::strerror(sys::errno()));
    unsafe { libc::_exit(1) }
}

pub fn main() -> ! {
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        fail("unshare the PID namespace");
    }
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail("fork the pod's init");
    }
    if pid > 0 {
        println!("{pid}");
        std::process::exit(0);
    }
    unsafe {
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        libc::chdir(c"/".as_ptr());
        libc::prctl(libc::PR_SET_NAME, c"pod-init".as_ptr(), 0, 0, 0);
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
        let mut chld: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut chld);
        libc::sigaddset(&mut chld, libc::SIGCHLD);
        loop {
            let mut status = 0;
            if libc::waitpid(-1, &mut status, 0) < 0 && sys::errno() == libc::ECHILD {
                // Nothing to reap yet: sleep until a child of ours changes.
                libc::sigwaitinfo(&chld, std::ptr::null_mut());
            }
        }
    }
}
