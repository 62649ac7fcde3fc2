//! `dockyard-shim idle`: a shim started ahead of need, which turns into a
//! `run` or `exec` shim when the daemon sends it a request.

use crate::args::parse_args;
use crate::supervise;
use dockyard_runtime::{self as rt, sys};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `dockyard-shim idle --exec-root DIR [--no-netns] PADDING`: a shim started ahead of need
/// (the daemon keeps one ready per exec root). The launched process exits at
/// once; the daemonized one waits for one request on stdin, the argv of a
/// `run` or `exec` as a JSON array, and reports on stdout as the launcher
/// would. That takes the exec, the dynamic loading, the fork and a process
/// hop off the start path. EOF on stdin (the daemon went away) ends it.
pub fn idle() -> ! {
    let pid = unsafe { libc::fork() };
    if pid != 0 {
        std::process::exit(if pid < 0 { 1 } else { 0 });
    }
    unsafe { libc::setsid() };
    // The next container's network namespace, made while nobody waits,
    // unless the daemon expects it on a network of its own (`--no-netns`).
    let ahead = !std::env::args().any(|a| a == "--no-netns");
    let host_net = if ahead { rt::prepare_network().ok() } else { None };
    let mut line = Vec::new();
    let mut b = [0u8; 4096];
    while !line.contains(&b'\n') {
        let n = unsafe { libc::read(0, b.as_mut_ptr() as *mut libc::c_void, b.len()) };
        if n < 0 && sys::errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            std::process::exit(0);
        }
        line.extend_from_slice(&b[..n as usize]);
    }
    // Made at nice 10 by the pool: the container and its supervisor run at 0.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 0) };
    let rep = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3) };
    if rep < 0 {
        std::process::exit(1);
    }
    let rep = unsafe { OwnedFd::from_raw_fd(rep) };
    let refuse = |msg: String| -> ! {
        let _ = sys::write_all(rep.as_raw_fd(), format!("{}\n", serde_json::json!({"error": msg, "exit_code": 125})).as_bytes());
        std::process::exit(1)
    };
    let nl = line.iter().position(|&c| c == b'\n').unwrap_or(line.len());
    let argv: Vec<String> = serde_json::from_slice(&line[..nl]).unwrap_or_else(|e| refuse(format!("bad request: {e}")));
    let args = parse_args(argv.clone());
    set_cmdline(&argv);
    if let Err(e) = std::fs::create_dir_all(&args.state_dir) {
        refuse(format!("state dir {}: {e}", args.state_dir.display()));
    }
    // The spec comes later: its go line arrives on stdin, which the shim's
    // stdio redirection takes over, so it moves to a descriptor of its own
    // (with whatever of it came in the request's read).
    let go = args.await_spec.then(|| {
        let fd = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3) };
        if fd < 0 {
            refuse("dup the request pipe".into());
        }
        (unsafe { OwnedFd::from_raw_fd(fd) }, line[(nl + 1).min(line.len())..].to_vec())
    });
    supervise(&args, rep, host_net, go)
}

/// Show the request's argv in /proc/PID/cmdline (ps, pkill -f), written over
/// the idle argv's padding; left as it is when it doesn't fit.
fn set_cmdline(argv: &[String]) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    // Fields after the command's closing parenthesis; arg_start and arg_end are fields 48 and 49.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return };
    let f: Vec<usize> = rest.split(' ').skip(45).take(2).map(|x| x.parse().unwrap_or(0)).collect();
    let (start, end) = (f.first().copied().unwrap_or(0), f.get(1).copied().unwrap_or(0));
    let prog = std::env::args().next().unwrap_or_default();
    let mut text = prog.into_bytes();
    text.push(0);
    for a in argv {
        text.extend_from_slice(a.as_bytes());
        text.push(0);
    }
    if start == 0 || end <= start || text.len() > end - start {
        return;
    }
    text.resize(end - start, 0);
    // The area is this process's own argv memory, mapped and writable.
    unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), start as *mut u8, text.len()) };
}
