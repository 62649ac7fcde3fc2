//! Starting the supervised process: the spec, the attach socket and the log
//! are set up first (a failure there is reported and recorded in exit.json),
//! then the stdio (pipes, or a pty the child allocates), the network
//! namespace to stand in, and the runtime (native or runc). The report line
//! goes to the launcher once the child exists.

use super::{listen, Shim};
use crate::args::Args;
use crate::child::{start_runc, Child};
use crate::{log, now_str, write_atomic};
use dockyard_runtime::{self as rt, sys, Options, Spec, Stdio};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Wait for a line on `pipe` (`got`: what was read of it already); false at EOF.
fn await_line(pipe: OwnedFd, mut got: Vec<u8>) -> bool {
    let mut b = [0u8; 64];
    while !got.contains(&b'\n') {
        let n = unsafe { libc::read(pipe.as_raw_fd(), b.as_mut_ptr() as *mut libc::c_void, b.len()) };
        if n < 0 && sys::errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return false;
        }
        got.extend_from_slice(&b[..n as usize]);
    }
    true
}

fn nonblock(fd: RawFd) {
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

impl Shim {
    /// `host_net`: the shim stands in a network namespace made for the
    /// container (an idle shim's); this is the one it left.
    /// `go` (`--await-spec`): the spec is read once a line comes on this
    /// pipe (after the attach socket and the log are ready); EOF means the
    /// start was given up, and the shim leaves quietly.
    pub fn start(args: &Args, report: OwnedFd, host_net: Option<OwnedFd>, go: Option<(OwnedFd, Vec<u8>)>) -> Result<Shim, ()> {
        let rep = report.as_raw_fd();
        let fail = |msg: String, code: i32| {
            let line = serde_json::json!({"error": msg, "exit_code": code}).to_string() + "\n";
            write_atomic(
                Path::new("."),
                "exit.json",
                serde_json::json!({"exit_code": code, "signal": null, "oom_killed": false, "finished_at": now_str(), "error": msg}).to_string().as_bytes(),
            );
            let _ = sys::write_all(rep, line.as_bytes());
        };
        write_atomic(Path::new("."), "shim.pid", std::process::id().to_string().as_bytes());
        let listener = match listen("attach.sock") {
            Ok(l) => l,
            Err(e) => {
                fail(format!("attach socket: {e}"), 125);
                return Err(());
            }
        };
        // A shim made ahead of need stands in the container's network
        // namespace: the log driver's sockets (syslog over tcp/udp) are the
        // host's, as dockerd's are.
        let here = host_net.as_ref().and_then(|_| std::fs::File::open("/proc/thread-self/ns/net").ok());
        if let (Some(h), Some(_)) = (&host_net, &here) {
            unsafe { libc::setns(h.as_raw_fd(), libc::CLONE_NEWNET) };
        }
        let opened = log::Logger::open(args);
        if let Some(f) = &here {
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
                fail(format!("rejoin the container's network namespace: {}", std::io::Error::last_os_error()), 125);
                return Err(());
            }
        }
        let log = match opened {
            Ok(l) => l,
            Err(e) => {
                // dockerd's words (the daemon passes them through, status 500).
                fail(format!("failed to initialize logging driver: {e}"), 128);
                let _ = std::fs::remove_file("attach.sock");
                return Err(());
            }
        };
        if let Some((pipe, got)) = go {
            if !await_line(pipe, got) {
                let _ = std::fs::remove_file("attach.sock");
                let _ = std::fs::remove_file("shim.pid");
                std::process::exit(0);
            }
        }
        let spec = std::fs::read_to_string(&args.spec)
            .map_err(|e| format!("read spec {}: {e}", args.spec.display()))
            .and_then(|text| Spec::from_json(&text).map_err(|e| e.to_string()));
        let mut spec = match spec {
            Ok(s) => s,
            Err(msg) => {
                fail(msg, 125);
                let _ = std::fs::remove_file("attach.sock");
                return Err(());
            }
        };
        if args.tty {
            spec.terminal = true;
        }
        let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").expect("/dev/null");
        let mut keep: Vec<OwnedFd> = Vec::new();
        let (mut out_r, mut err_r, mut stdin_w) = (None, None, None);
        let stdio = if spec.terminal {
            Stdio { stdin: null.as_raw_fd(), stdout: null.as_raw_fd(), stderr: null.as_raw_fd() }
        } else {
            let (or, ow) = sys::pipe().expect("pipe");
            let (er, ew) = sys::pipe().expect("pipe");
            let sin = if args.stdin {
                let (ir, iw) = sys::pipe().expect("pipe");
                let raw = ir.as_raw_fd();
                keep.push(ir);
                stdin_w = Some(iw);
                raw
            } else {
                null.as_raw_fd()
            };
            let s = Stdio { stdin: sin, stdout: ow.as_raw_fd(), stderr: ew.as_raw_fd() };
            keep.push(ow);
            keep.push(ew);
            out_r = Some(or);
            err_r = Some(er);
            s
        };
        // A prepared namespace serves a native container that wants a new
        // one; otherwise (host or another container's network, runc, exec)
        // the shim goes back to where it came from.
        let wants_new = spec.namespaces.iter().any(|n| n.kind == "network" && n.path.is_none());
        let net_ready = host_net.is_some() && wants_new && args.runtime == "native" && args.mode == "run";
        if let (Some(fd), false) = (&host_net, net_ready) {
            if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
                fail(format!("rejoin the host network namespace: {}", std::io::Error::last_os_error()), 125);
                return Err(());
            }
        }
        drop(host_net);
        let opts = Options { stdio, wait_start: args.wait_start, net_ready };
        let started_at = now_str();
        let res = if args.runtime == "runc" {
            start_runc(args, &spec, stdio)
        } else {
            let r = if args.mode == "exec" { rt::exec_in(args.pid, &spec, opts) } else { rt::spawn(&spec, opts) };
            r.map(|mut p| {
                let (pid, m) = (p.pid, p.pty_master.take());
                (Child::Native(p), pid, m)
            })
            .map_err(|e| (e.to_string(), e.exit_code()))
        };
        drop(keep);
        drop(null);
        let (child, pid, pty_master) = match res {
            Ok(r) => r,
            Err((msg, code)) => {
                fail(msg, code);
                let _ = std::fs::remove_file("attach.sock");
                return Err(());
            }
        };
        write_atomic(Path::new("."), "pid", pid.to_string().as_bytes());
        let mut out = out_r;
        let mut stdin = stdin_w;
        if let Some(m) = pty_master {
            let dup = unsafe { libc::fcntl(m.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
            if args.stdin && dup >= 0 {
                stdin = Some(unsafe { OwnedFd::from_raw_fd(dup) });
            } else if dup >= 0 {
                unsafe { libc::close(dup) };
            }
            out = Some(m);
        }
        for fd in [&out, &err_r, &stdin].into_iter().flatten() {
            nonblock(fd.as_raw_fd());
        }
        let line = serde_json::json!({"shim_pid": std::process::id(), "pid": pid, "created": child.is_created()}).to_string() + "\n";
        let _ = sys::write_all(rep, line.as_bytes());
        drop(report);
        Ok(Shim {
            state: PathBuf::from("."),
            child,
            pid,
            tty: spec.terminal,
            out,
            err: err_r,
            stdin,
            stdin_buf: VecDeque::new(),
            stdin_close: false,
            log,
            listener,
            clients: Vec::new(),
            started_at,
            exited: None,
            signal: None,
            start_error: None,
        })
    }

}
