//! dockyard-shim: one per container (or exec). Started by the daemon, it
//! reports `{"shim_pid":N,"pid":M}` (or `{"error":"...","exit_code":127}`) as
//! one JSON line on stdout and the launched process exits; the shim itself has
//! double-forked into its own session, so it outlives the daemon.
//!
//! It then holds the container's stdio (pipes, or the pty master), writes the
//! log (Docker's log drivers, see log/), serves attach on `<state-dir>/attach.sock`, reaps the
//! process, records `<state-dir>/exit.json` (temp + rename), removes the
//! container's cgroup and exits.
//!
//! Usage:
//!   dockyard-shim run  --id ID --state-dir DIR --spec FILE [--log FILE]
//!                      [--log-max-size BYTES] [--log-max-file N]
//!                      [--log-driver json-file|local|none|journald|syslog|cri]
//!                      [--log-opt KEY=VALUE]... [--tty]
//!                      [--stdin] [--wait-start] [--debug]
//!                      [--runtime runc --bundle DIR --runc-root DIR [--runc PATH]]
//!   dockyard-shim exec --pid PID (same options but --runtime)
//!   dockyard-shim idle --exec-root DIR [--no-netns] PADDING   (see `idle`)
//!   dockyard-shim init -- CMD [ARG...]   (also as /sbin/docker-init; see init.rs)
//!   dockyard-shim pod-init   (a pod's shared PID namespace; see podinit.rs)
//!   dockyard-shim rootless-init [--uid-range S:N --gid-range S:N | --join PID] -- CMD...
//!                            (the rootless daemon's namespaces; see rootless.rs)
//!
//! With `--runtime runc` the container is made by runc from the OCI bundle
//! (see runc.rs); stdio, log, attach, reaping and exit.json are the same.
//!
//! Files in the state dir: shim.pid, pid (container process, host pid ns),
//! exit.json, attach.sock (removed at exit), shim.log (with --debug),
//! runc.log and runc.pid (runc mode).
//!
//! Attach protocol (stream socket): frames `[type:u8][len:u32 BE][payload]`.
//!   client -> shim: 0 stdin data, 1 close stdin, 2 resize (rows:u16, cols:u16 BE),
//!                   3 signal (i32 BE), 4 start (with --wait-start),
//!                   5 hello (u8 mask: 1 stdin, 2 stdout, 4 stderr; default all),
//!                   6 reopen the log file (the cri driver, after kubelet renamed it)
//!   shim -> client: 1 stdout, 2 stderr, 3 exit (JSON, as exit.json),
//!                   5 start result (JSON: {} or {"error":..,"exit_code":..}),
//!                   6 reopen result (JSON: {} or {"error":..})
//!
//! Modules: `args` (the command line), `idle` (the pre-started shim),
//! `child` (the supervised process, native or runc), `supervisor` (start-up,
//! stdio, attach server, reaping and exit.json), plus `init`, `log`, `runc`.

mod args;
mod child;
mod idle;
mod init;
mod log;
mod podinit;
mod rootless;
mod runc;
mod supervisor;

use args::{parse_args, Args};
use dockyard_runtime::sys;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use supervisor::Shim;

/// Temp + rename, so readers never see half a file. No fsync: this is runtime
/// state (the exec root is a tmpfs under /run normally), meaningless after a
/// host crash, and a sync on the start path cost 0.5-1.3 ms per file.
fn write_atomic(dir: &Path, name: &str, data: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    if let Ok(mut f) = std::fs::File::create(&tmp) {
        let _ = f.write_all(data);
        let _ = std::fs::rename(&tmp, dir.join(name));
    }
}

fn now_str() -> String {
    let (s, n) = log::now();
    log::rfc3339_nano(s, n)
}

fn main() {
    if init::wanted() {
        init::main();
    }
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().is_some_and(|m| m == "idle") {
        idle::idle();
    }
    if argv.first().is_some_and(|m| m == "pod-init") {
        podinit::main();
    }
    if argv.first().is_some_and(|m| m == "rootless-init") {
        rootless::main(&argv[1..]);
    }
    let args = parse_args(argv);
    if let Err(e) = std::fs::create_dir_all(&args.state_dir) {
        println!("{}", serde_json::json!({"error": format!("state dir {}: {e}", args.state_dir.display()), "exit_code": 125}));
        std::process::exit(1);
    }
    // Daemonize: the launched process waits for the report, prints it and exits;
    // the shim runs on in its own session, reparented to init (or a subreaper).
    let (rep_r, rep_w) = sys::pipe().expect("pipe");
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        println!("{}", serde_json::json!({"error": "fork failed", "exit_code": 125}));
        std::process::exit(1);
    }
    if pid > 0 {
        drop(rep_w);
        // One line; not EOF: a container parked at the start gate still holds the pipe.
        let mut out = Vec::new();
        let mut b = [0u8; 512];
        loop {
            let n = unsafe { libc::read(rep_r.as_raw_fd(), b.as_mut_ptr() as *mut libc::c_void, b.len()) };
            if n < 0 && sys::errno() == libc::EINTR {
                continue;
            }
            if n <= 0 {
                break;
            }
            out.extend_from_slice(&b[..n as usize]);
            if out.contains(&b'\n') {
                break;
            }
        }
        let out = String::from_utf8_lossy(&out);
        let line = if out.trim().is_empty() { "{\"error\":\"shim died during start-up\",\"exit_code\":125}".to_string() } else { out.trim().to_string() };
        println!("{line}");
        std::process::exit(if line.contains("\"error\"") { 1 } else { 0 });
    }
    drop(rep_r);
    unsafe { libc::setsid() };
    supervise(&args, rep_w, None, None)
}

/// The daemonized shim: chdir to the state dir, stdio to /dev/null, start the
/// process and serve it until it exits.
/// `go`: with `--await-spec`, the pipe its go line comes on, and what of it
/// was read already.
fn supervise(args: &Args, report: OwnedFd, host_net: Option<OwnedFd>, go: Option<(OwnedFd, Vec<u8>)>) -> ! {
    if let Err(e) = std::env::set_current_dir(&args.state_dir) {
        // Its state dir went away (the container was removed meanwhile): the
        // files it writes must not land in the directory it was started from.
        let msg = format!("state dir {}: {e}", args.state_dir.display());
        let line = serde_json::json!({"error": msg, "exit_code": 125}).to_string() + "\n";
        let _ = sys::write_all(report.as_raw_fd(), line.as_bytes());
        std::process::exit(1);
    }
    redirect_stdio(args);
    let code = match Shim::start(args, report, host_net, go) {
        Ok(mut shim) => {
            shim.run();
            0
        }
        Err(()) => 1,
    };
    std::process::exit(code);
}

fn redirect_stdio(args: &Args) {
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        libc::dup2(null, 0);
        libc::dup2(null, 1);
        let err = if args.debug {
            libc::open(c"shim.log".as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC, 0o600)
        } else {
            -1
        };
        libc::dup2(if err >= 0 { err } else { null }, 2);
        if null > 2 {
            libc::close(null);
        }
        if err > 2 {
            libc::close(err);
        }
    }
}
