//! dockyard-shim: one per container (or exec). Started by the daemon, it
//! reports `{"shim_pid":N,"pid":M}` (or `{"error":"...","exit_code":127}`) as
//! one JSON line on stdout and the launched process exits; the shim itself has
//! double-forked into its own session, so it outlives the daemon.
//!
//! It then holds the container's stdio (pipes, or the pty master), writes the
//! json-file log, serves attach on `<state-dir>/attach.sock`, reaps the
//! process, records `<state-dir>/exit.json` (temp + rename), removes the
//! container's cgroup and exits.
//!
//! Usage:
//!   dockyard-shim run  --id ID --state-dir DIR --spec FILE [--log FILE]
//!                      [--log-max-size BYTES] [--log-max-file N] [--tty]
//!                      [--stdin] [--wait-start] [--debug]
//!                      [--runtime runc --bundle DIR --runc-root DIR [--runc PATH]]
//!   dockyard-shim exec --pid PID (same options but --runtime)
//!   dockyard-shim idle --exec-root DIR PADDING   (see `idle`)
//!   dockyard-shim init -- CMD [ARG...]   (also as /sbin/docker-init; see init.rs)
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
//!                   5 hello (u8 mask: 1 stdin, 2 stdout, 4 stderr; default all)
//!   shim -> client: 1 stdout, 2 stderr, 3 exit (JSON, as exit.json),
//!                   5 start result (JSON: {} or {"error":..,"exit_code":..})

mod init;
mod log;
mod runc;

use dockyard_runtime::{self as rt, sys, Options, Spec, Stdio};
use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

#[derive(Default)]
struct Args {
    mode: String,
    id: String,
    state_dir: PathBuf,
    spec: PathBuf,
    log: Option<PathBuf>,
    log_max_size: u64,
    log_max_file: u32,
    tty: bool,
    stdin: bool,
    wait_start: bool,
    debug: bool,
    pid: i32,
    /// "native" (default) or "runc".
    runtime: String,
    bundle: PathBuf,
    runc: PathBuf,
    runc_root: PathBuf,
}

fn usage(msg: &str) -> ! {
    eprintln!("dockyard-shim: {msg}\nusage: dockyard-shim run|exec --id ID --state-dir DIR --spec FILE [--log FILE] [--log-max-size N] [--log-max-file N] [--tty] [--stdin] [--wait-start] [--pid PID]");
    std::process::exit(2)
}

fn parse_args(argv: Vec<String>) -> Args {
    let mut a = Args { log_max_file: 1, runtime: "native".into(), runc: "runc".into(), ..Default::default() };
    let mut it = argv.into_iter();
    a.mode = it.next().unwrap_or_default();
    if a.mode != "run" && a.mode != "exec" {
        usage("first argument must be run or exec");
    }
    while let Some(k) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage(&format!("{k} needs a value")));
        match k.as_str() {
            "--id" => a.id = val(),
            "--state-dir" => a.state_dir = val().into(),
            "--spec" => a.spec = val().into(),
            "--log" => a.log = Some(val().into()),
            "--log-max-size" => a.log_max_size = val().parse().unwrap_or_else(|_| usage("bad --log-max-size")),
            "--log-max-file" => a.log_max_file = val().parse().unwrap_or_else(|_| usage("bad --log-max-file")),
            "--pid" => a.pid = val().parse().unwrap_or_else(|_| usage("bad --pid")),
            "--tty" => a.tty = true,
            "--stdin" => a.stdin = true,
            "--wait-start" => a.wait_start = true,
            "--debug" => a.debug = true,
            "--runtime" => a.runtime = val(),
            "--bundle" => a.bundle = val().into(),
            "--runc" => a.runc = val().into(),
            "--runc-root" => a.runc_root = val().into(),
            _ => usage(&format!("unknown option {k}")),
        }
    }
    if a.state_dir.as_os_str().is_empty() || a.spec.as_os_str().is_empty() {
        usage("--state-dir and --spec are required");
    }
    if a.mode == "exec" && a.pid <= 0 {
        usage("exec needs --pid");
    }
    match a.runtime.as_str() {
        "native" => {}
        "runc" if a.mode == "run" && !a.bundle.as_os_str().is_empty() && !a.runc_root.as_os_str().is_empty() => {}
        "runc" => usage("--runtime runc needs run, --bundle and --runc-root"),
        _ => usage("--runtime must be native or runc"),
    }
    a
}

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
        idle();
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
    supervise(&args, rep_w, None)
}

/// `dockyard-shim idle --exec-root DIR PADDING`: a shim started ahead of need
/// (the daemon keeps one ready per exec root). The launched process exits at
/// once; the daemonized one waits for one request on stdin, the argv of a
/// `run` or `exec` as a JSON array, and reports on stdout as the launcher
/// would. That takes the exec, the dynamic loading, the fork and a process
/// hop off the start path. EOF on stdin (the daemon went away) ends it.
fn idle() -> ! {
    let pid = unsafe { libc::fork() };
    if pid != 0 {
        std::process::exit(if pid < 0 { 1 } else { 0 });
    }
    unsafe { libc::setsid() };
    // The next container's network namespace, made while nobody waits.
    let host_net = rt::prepare_network().ok();
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
    let argv: Vec<String> = serde_json::from_slice(&line).unwrap_or_else(|e| refuse(format!("bad request: {e}")));
    let args = parse_args(argv.clone());
    set_cmdline(&argv);
    if let Err(e) = std::fs::create_dir_all(&args.state_dir) {
        refuse(format!("state dir {}: {e}", args.state_dir.display()));
    }
    supervise(&args, rep, host_net)
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

/// The daemonized shim: chdir to the state dir, stdio to /dev/null, start the
/// process and serve it until it exits.
fn supervise(args: &Args, report: OwnedFd, host_net: Option<OwnedFd>) -> ! {
    let _ = std::env::set_current_dir(&args.state_dir);
    redirect_stdio(args);
    let code = match Shim::start(args, report, host_net) {
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

struct Client {
    fd: OwnedFd,
    inbuf: Vec<u8>,
    out: VecDeque<u8>,
    mask: u8,
    closing: bool,
}

/// The supervised process: cloned by the runtime crate, or made by runc.
enum Child {
    Native(rt::Process),
    Runc { runc: runc::Runc, pidfd: OwnedFd, cgroup: Option<rt::cgroup::Cgroup>, created: bool },
}

impl Child {
    fn pidfd(&self) -> RawFd {
        match self {
            Child::Native(p) => p.pidfd.as_raw_fd(),
            Child::Runc { pidfd, .. } => pidfd.as_raw_fd(),
        }
    }

    fn is_created(&self) -> bool {
        match self {
            Child::Native(p) => p.is_created(),
            Child::Runc { created, .. } => *created,
        }
    }

    /// Release a process parked before exec (`--wait-start`).
    fn start(&mut self) -> Result<(), (String, i32)> {
        match self {
            Child::Native(p) => p.start().map_err(|e| (e.to_string(), e.exit_code())),
            Child::Runc { runc, created, .. } => {
                if !std::mem::take(created) {
                    return Ok(());
                }
                runc.start().inspect_err(|_| runc.delete())
            }
        }
    }

    fn oom_killed(&self) -> bool {
        let cg = match self {
            Child::Native(p) => p.cgroup.as_ref(),
            Child::Runc { cgroup, .. } => cgroup.as_ref(),
        };
        cg.is_some_and(|c| c.oom_kills() > 0)
    }

    /// After the exit: remove the cgroup (and, for runc, its state).
    fn cleanup(&mut self) {
        match self {
            Child::Native(p) => {
                if let Some(cg) = p.cgroup.take() {
                    let _ = cg.remove();
                }
            }
            Child::Runc { runc, cgroup, .. } => {
                runc.delete();
                if let Some(cg) = cgroup.take() {
                    let _ = cg.remove();
                }
            }
        }
    }
}

/// `runc create` (and, unless parked, `runc start`) for `spec`'s container.
fn start_runc(args: &Args, spec: &Spec, stdio: Stdio) -> Result<(Child, i32, Option<OwnedFd>), (String, i32)> {
    let r = runc::Runc { bin: args.runc.clone(), root: args.runc_root.clone(), bundle: args.bundle.clone(), id: args.id.clone() };
    // Adopt the container's init when `runc create` exits.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let created = r.create(stdio, spec.terminal)?;
    let pidfd = match sys::pidfd_open(created.pid) {
        Ok(fd) => fd,
        Err(e) => {
            r.delete();
            return Err((e.to_string(), 128));
        }
    };
    let cgroup = spec.cgroup.as_ref().and_then(|c| rt::cgroup::Layout::detect().and_then(|l| rt::cgroup::Cgroup::open(&c.path, &l)).ok());
    let mut child = Child::Runc { runc: r, pidfd, cgroup, created: true };
    if !args.wait_start {
        child.start()?;
    }
    Ok((child, created.pid, created.pty_master))
}

struct Shim {
    state: PathBuf,
    child: Child,
    pid: i32,
    tty: bool,
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    stdin_buf: VecDeque<u8>,
    stdin_close: bool,
    log: Option<log::JsonLog>,
    listener: OwnedFd,
    clients: Vec<Client>,
    started_at: String,
    exited: Option<i32>,
    signal: Option<i32>,
    start_error: Option<String>,
}

fn nonblock(fd: RawFd) {
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    v.push(kind);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

pub(crate) fn listen(path: &str) -> std::io::Result<OwnedFd> {
    let _ = std::fs::remove_file(path);
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (i, b) in path.bytes().enumerate() {
            addr.sun_path[i] = b as libc::c_char;
        }
        let old = libc::umask(0o077);
        let r = libc::bind(fd.as_raw_fd(), &addr as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_un>() as u32);
        libc::umask(old);
        if r < 0 || libc::listen(fd.as_raw_fd(), 16) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(fd)
    }
}

impl Shim {
    /// `host_net`: the shim stands in a network namespace made for the
    /// container (an idle shim's); this is the one it left.
    fn start(args: &Args, report: OwnedFd, host_net: Option<OwnedFd>) -> Result<Shim, ()> {
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
        let spec_text = match std::fs::read_to_string(&args.spec) {
            Ok(s) => s,
            Err(e) => {
                fail(format!("read spec {}: {e}", args.spec.display()), 125);
                return Err(());
            }
        };
        let mut spec = match Spec::from_json(&spec_text) {
            Ok(s) => s,
            Err(e) => {
                fail(e.to_string(), 125);
                return Err(());
            }
        };
        if args.tty {
            spec.terminal = true;
        }
        let listener = match listen("attach.sock") {
            Ok(l) => l,
            Err(e) => {
                fail(format!("attach socket: {e}"), 125);
                return Err(());
            }
        };
        let log = match &args.log {
            Some(p) => match log::JsonLog::open(p.clone(), args.log_max_size, args.log_max_file) {
                Ok(l) => Some(l),
                Err(e) => {
                    fail(format!("open log {}: {e}", p.display()), 125);
                    return Err(());
                }
            },
            None => None,
        };
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

    fn broadcast(&mut self, stream: u8, data: &[u8]) {
        let bit = if stream == 1 { 2 } else { 4 };
        let f = frame(stream, data);
        for c in self.clients.iter_mut() {
            if c.mask & bit != 0 && !c.closing {
                if c.out.len() > 8 << 20 {
                    c.closing = true; // too slow a reader: drop it rather than block the container
                    c.out.clear();
                    continue;
                }
                c.out.extend(f.iter());
            }
        }
    }

    fn read_stream(&mut self, which: usize) -> bool {
        let fd = match if which == 0 { &self.out } else { &self.err } {
            Some(f) => f.as_raw_fd(),
            None => return false,
        };
        let mut buf = [0u8; 32 * 1024];
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n > 0 {
            let data = &buf[..n as usize];
            if let Some(l) = self.log.as_mut() {
                l.write(which, data);
            }
            self.broadcast(which as u8 + 1, data);
            return true;
        }
        if n < 0 && matches!(sys::errno(), libc::EAGAIN | libc::EINTR) {
            return true;
        }
        // EOF (pipe) or EIO (pty closed): this stream is done.
        if which == 0 {
            self.out = None;
        } else {
            self.err = None;
        }
        false
    }

    fn exit_json(&self) -> String {
        let oom = self.child.oom_killed();
        let mut v = serde_json::json!({
            "exit_code": self.exited.unwrap_or(-1),
            "signal": self.signal,
            "oom_killed": oom,
            "pid": self.pid,
            "started_at": self.started_at,
            "finished_at": now_str(),
        });
        if let Some(e) = &self.start_error {
            v["error"] = serde_json::Value::String(e.clone());
        }
        v.to_string()
    }

    fn handle_frame(&mut self, ci: usize, kind: u8, payload: Vec<u8>) {
        match kind {
            0 => {
                if self.stdin.is_some() && !self.stdin_close {
                    self.stdin_buf.extend(payload);
                }
            }
            1 => self.stdin_close = true,
            2 if payload.len() >= 4 => {
                let rows = u16::from_be_bytes([payload[0], payload[1]]);
                let cols = u16::from_be_bytes([payload[2], payload[3]]);
                if self.tty {
                    if let Some(m) = &self.out {
                        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
                        unsafe { libc::ioctl(m.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
                    }
                }
            }
            3 if payload.len() >= 4 => {
                let sig = i32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                if self.exited.is_none() {
                    unsafe { libc::syscall(libc::SYS_pidfd_send_signal, self.child.pidfd(), sig, 0usize, 0u32) };
                }
            }
            4 => {
                let res = match self.child.start() {
                    Ok(()) => "{}".to_string(),
                    Err((msg, code)) => {
                        let j = serde_json::json!({"error": msg, "exit_code": code}).to_string();
                        self.exited = Some(code);
                        self.start_error = Some(msg);
                        j
                    }
                };
                let f = frame(5, res.as_bytes());
                self.clients[ci].out.extend(f.iter());
            }
            5 if !payload.is_empty() => self.clients[ci].mask = payload[0],
            _ => {}
        }
    }

    fn read_client(&mut self, ci: usize) {
        let mut buf = [0u8; 16 * 1024];
        let n = unsafe { libc::read(self.clients[ci].fd.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n < 0 && matches!(sys::errno(), libc::EAGAIN | libc::EINTR) {
            return;
        }
        if n <= 0 {
            self.clients[ci].closing = true;
            self.clients[ci].out.clear();
            return;
        }
        self.clients[ci].inbuf.extend_from_slice(&buf[..n as usize]);
        loop {
            let ib = &self.clients[ci].inbuf;
            if ib.len() < 5 {
                break;
            }
            let len = u32::from_be_bytes([ib[1], ib[2], ib[3], ib[4]]) as usize;
            if len > 1 << 20 {
                self.clients[ci].closing = true;
                break;
            }
            if ib.len() < 5 + len {
                break;
            }
            let kind = ib[0];
            let payload = ib[5..5 + len].to_vec();
            self.clients[ci].inbuf.drain(..5 + len);
            self.handle_frame(ci, kind, payload);
        }
    }

    fn flush_client(c: &mut Client) {
        while !c.out.is_empty() {
            let (a, _) = c.out.as_slices();
            let n = unsafe { libc::write(c.fd.as_raw_fd(), a.as_ptr() as *const libc::c_void, a.len()) };
            if n <= 0 {
                if n < 0 && sys::errno() == libc::EAGAIN {
                    return;
                }
                c.closing = true;
                c.out.clear();
                return;
            }
            c.out.drain(..n as usize);
        }
    }

    fn flush_stdin(&mut self) {
        if let Some(fd) = &self.stdin {
            while !self.stdin_buf.is_empty() {
                let (a, _) = self.stdin_buf.as_slices();
                let n = unsafe { libc::write(fd.as_raw_fd(), a.as_ptr() as *const libc::c_void, a.len()) };
                if n <= 0 {
                    if n < 0 && sys::errno() == libc::EAGAIN {
                        return;
                    }
                    self.stdin_buf.clear();
                    self.stdin = None;
                    return;
                }
                self.stdin_buf.drain(..n as usize);
            }
            if self.stdin_close {
                if self.tty {
                    // EOF on a tty is ^D at the start of a line.
                    if let Some(fd) = &self.stdin {
                        let _ = sys::write_all(fd.as_raw_fd(), b"\x04");
                    }
                }
                self.stdin = None;
            }
        }
    }

    fn reap(&mut self) {
        let mut st = 0;
        let r = unsafe { libc::waitpid(self.pid, &mut st, libc::WNOHANG | libc::__WALL) };
        if r == self.pid {
            if libc::WIFEXITED(st) {
                self.exited = Some(libc::WEXITSTATUS(st));
            } else if libc::WIFSIGNALED(st) {
                self.signal = Some(libc::WTERMSIG(st));
                self.exited = Some(128 + libc::WTERMSIG(st));
            }
        }
    }

    fn run(&mut self) {
        let mut drain_deadline: Option<std::time::Instant> = None;
        loop {
            if self.exited.is_some() {
                let done = (self.out.is_none() && self.err.is_none())
                    || drain_deadline.is_some_and(|d| std::time::Instant::now() >= d)
                    || self.start_error.is_some();
                if done {
                    break;
                }
                drain_deadline.get_or_insert_with(|| std::time::Instant::now() + std::time::Duration::from_millis(500));
            }
            self.clients.retain(|c| !(c.closing && c.out.is_empty()));
            let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(8 + self.clients.len());
            let pf = |fd: RawFd, ev: i16| libc::pollfd { fd, events: ev, revents: 0 };
            pfds.push(pf(if self.exited.is_none() { self.child.pidfd() } else { -1 }, libc::POLLIN));
            pfds.push(pf(self.out.as_ref().map_or(-1, |f| f.as_raw_fd()), libc::POLLIN));
            pfds.push(pf(self.err.as_ref().map_or(-1, |f| f.as_raw_fd()), libc::POLLIN));
            pfds.push(pf(self.listener.as_raw_fd(), libc::POLLIN));
            let stdin_ev = if self.stdin_buf.is_empty() { 0 } else { libc::POLLOUT };
            pfds.push(pf(self.stdin.as_ref().filter(|_| stdin_ev != 0).map_or(-1, |f| f.as_raw_fd()), stdin_ev));
            for c in &self.clients {
                let mut ev = 0;
                if !c.closing {
                    ev |= libc::POLLIN;
                }
                if !c.out.is_empty() {
                    ev |= libc::POLLOUT;
                }
                pfds.push(pf(c.fd.as_raw_fd(), ev));
            }
            let timeout = if drain_deadline.is_some() { 50 } else { -1 };
            let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
            if r < 0 {
                if sys::errno() == libc::EINTR {
                    continue;
                }
                break;
            }
            if pfds[1].revents != 0 {
                while self.read_stream(0) && self.out.is_some() {
                    if !sys::poll_in(self.out.as_ref().unwrap().as_raw_fd(), 0).unwrap_or(false) {
                        break;
                    }
                }
            }
            if pfds[2].revents != 0 {
                self.read_stream(1);
            }
            if pfds[0].revents != 0 {
                self.reap();
            }
            if pfds[3].revents != 0 {
                loop {
                    let fd = unsafe {
                        libc::accept4(self.listener.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
                    };
                    if fd < 0 {
                        break;
                    }
                    self.clients.push(Client { fd: unsafe { OwnedFd::from_raw_fd(fd) }, inbuf: Vec::new(), out: VecDeque::new(), mask: 7, closing: false });
                }
            }
            let nclients = pfds.len() - 5;
            for i in 0..nclients.min(self.clients.len()) {
                let re = pfds[5 + i].revents;
                if re & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    self.read_client(i);
                }
                if re & libc::POLLOUT != 0 {
                    Self::flush_client(&mut self.clients[i]);
                }
            }
            self.flush_stdin();
        }
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(l) = self.log.as_mut() {
            l.flush();
        }
        if self.exited.is_none() {
            self.reap();
        }
        let j = self.exit_json();
        // runc's state goes before exit.json appears: a daemon that restarts the
        // container on seeing exit.json must find the runc id free.
        let runc = matches!(self.child, Child::Runc { .. });
        if runc {
            self.child.cleanup();
        }
        write_atomic(&self.state, "exit.json", j.as_bytes());
        if !runc {
            self.child.cleanup();
        }
        let _ = std::fs::remove_file("attach.sock");
        // Tell attached clients, then give them a moment to read.
        let f = frame(3, j.as_bytes());
        for c in self.clients.iter_mut() {
            if !c.closing {
                c.out.extend(f.iter());
            }
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            let mut pending = false;
            for c in self.clients.iter_mut() {
                Self::flush_client(c);
                pending |= !c.out.is_empty();
            }
            if !pending {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        for c in self.clients.drain(..) {
            unsafe { libc::shutdown(c.fd.as_raw_fd(), libc::SHUT_RDWR) };
        }
    }
}
