//! Spawning a container's init (one clone3 from the caller, no intermediate
//! process) and exec'ing into a running container (setns).
//!
//! The caller must be single-threaded (the shim is): the child runs ordinary
//! Rust code (allocations) between clone and execve.
//!
//! Setup errors travel back over a CLOEXEC pipe: EOF means the execve
//! succeeded; otherwise the child writes one message `E<code:i32le><text>`
//! (`R` first when it is parked at the start gate).

use crate::caps::{self, Masks};
use crate::cgroup::{self, Cgroup, Layout};
use crate::error::{Error, Result};
use crate::mounts;
use crate::ns;
use crate::seccomp;
use crate::spec::Spec;
use crate::sys::{self, cstr};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Where the container's stdio goes (ignored with `spec.terminal`: the pty is
/// allocated inside the container and its master returned).
#[derive(Clone, Copy, Debug)]
pub struct Stdio {
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub stdio: Stdio,
    /// Park the process just before execve until [`Process::start`].
    pub wait_start: bool,
    /// The caller already stands in a new network namespace made for this
    /// container, loopback up ([`prepare_network`]): the container inherits
    /// it instead of cloning one (half a millisecond).
    pub net_ready: bool,
}

/// Move the calling process into a new network namespace with loopback up,
/// for the next container it spawns with `net_ready` (a shim does this while
/// idle). Returns the namespace it left, to go back to when the container
/// turns out not to want a new one.
pub fn prepare_network() -> Result<OwnedFd> {
    let host = sys::open(c"/proc/self/ns/net", libc::O_RDONLY, 0)?;
    sys::check(unsafe { libc::unshare(libc::CLONE_NEWNET) }, || "unshare network namespace".into())?;
    if let Err(e) = loopback_up() {
        unsafe { libc::setns(host.as_raw_fd(), libc::CLONE_NEWNET) };
        return Err(e);
    }
    Ok(host)
}

/// A spawned (or created, with `wait_start`) container process.
#[derive(Debug)]
pub struct Process {
    /// Pid in the caller's pid namespace.
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub pty_master: Option<OwnedFd>,
    /// The cgroup created for it (spawn only; exec joins the container's).
    pub cgroup: Option<Cgroup>,
    gate: Option<OwnedFd>,
    sync: Option<OwnedFd>,
}

impl Process {
    /// Release a process created with `wait_start`; returns once it exec'd
    /// (or with its exec error; it has then exited and been reaped).
    pub fn start(&mut self) -> Result<()> {
        let Some(gate) = self.gate.take() else { return Ok(()) };
        sys::write_all(gate.as_raw_fd(), b"S")?;
        drop(gate);
        let sync = self.sync.take().expect("sync pipe");
        match read_msg(sync.as_raw_fd())? {
            Msg::Exec => Ok(()),
            Msg::Ready => Err(Error::Invalid("unexpected ready message".into())),
            Msg::Err(e) => {
                reap(self.pid);
                Err(e)
            }
        }
    }

    pub fn is_created(&self) -> bool {
        self.gate.is_some()
    }
}

enum Msg {
    Exec,
    Ready,
    Err(Error),
}

fn read_msg(fd: RawFd) -> Result<Msg> {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    loop {
        let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr() as *mut libc::c_void, buf.len() - len) };
        if n < 0 {
            if sys::errno() == libc::EINTR {
                continue;
            }
            return Err(Error::os("read sync pipe"));
        }
        len += n as usize;
        if n == 0 || buf[0] == b'R' || len == buf.len() {
            break;
        }
    }
    if len == 0 {
        return Ok(Msg::Exec);
    }
    if buf[0] == b'R' {
        return Ok(Msg::Ready);
    }
    if buf[0] == b'E' && len >= 5 {
        let code = i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]);
        let msg = String::from_utf8_lossy(&buf[5..len]).into_owned();
        return Ok(Msg::Err(Error::Exec { msg, code }));
    }
    Err(Error::Invalid("garbled message from container init".into()))
}

fn reap(pid: i32) {
    let mut st = 0;
    unsafe {
        while libc::waitpid(pid, &mut st, libc::__WALL) < 0 && sys::errno() == libc::EINTR {}
    }
}

/// Everything computed before the clone (so the child does little but syscalls).
struct Prepared {
    argv: Vec<CString>,
    envp: Vec<CString>,
    caps: Option<Masks>,
    last_cap: u32,
    rlimits: Vec<(libc::__rlimit_resource_t, libc::rlimit)>,
    seccomp: Option<Vec<libc::sock_filter>>,
    cgroup_fds: Vec<OwnedFd>,
    layout: Option<Layout>,
}

fn rlimit_resource(name: &str) -> Result<libc::__rlimit_resource_t> {
    let n = name.to_ascii_uppercase();
    let n = n.strip_prefix("RLIMIT_").unwrap_or(&n);
    Ok(match n {
        "CPU" => libc::RLIMIT_CPU,
        "FSIZE" => libc::RLIMIT_FSIZE,
        "DATA" => libc::RLIMIT_DATA,
        "STACK" => libc::RLIMIT_STACK,
        "CORE" => libc::RLIMIT_CORE,
        "RSS" => libc::RLIMIT_RSS,
        "NPROC" => libc::RLIMIT_NPROC,
        "NOFILE" => libc::RLIMIT_NOFILE,
        "MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "AS" => libc::RLIMIT_AS,
        "LOCKS" => libc::RLIMIT_LOCKS,
        "SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "NICE" => libc::RLIMIT_NICE,
        "RTPRIO" => libc::RLIMIT_RTPRIO,
        "RTTIME" => libc::RLIMIT_RTTIME,
        _ => return Err(Error::Invalid(format!("unknown rlimit {name:?}"))),
    })
}

fn prepare(spec: &Spec) -> Result<Prepared> {
    if spec.args.is_empty() {
        return Err(Error::Invalid("no command specified".into()));
    }
    let argv = spec.args.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
    let envp = spec.env.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
    let caps = spec.capabilities.as_ref().map(Masks::from_spec).transpose()?;
    let mut rlimits = Vec::new();
    for r in &spec.rlimits {
        rlimits.push((rlimit_resource(&r.kind)?, libc::rlimit { rlim_cur: r.soft, rlim_max: r.hard }));
    }
    let seccomp = seccomp::program_for(spec)?;
    for n in &spec.namespaces {
        if ns::flag(&n.kind) == 0 {
            return Err(Error::Invalid(format!("unknown namespace type {:?}", n.kind)));
        }
        if n.kind == "user" {
            return Err(Error::Invalid("user namespaces are not supported yet".into()));
        }
    }
    Ok(Prepared { argv, envp, caps, last_cap: caps::last_cap(), rlimits, seccomp, cgroup_fds: vec![], layout: None })
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3 (falling back to clone) like fork: returns (pid, pidfd) in the parent, (0, None) in the child.
fn clone(flags: libc::c_int, cgroup_fd: Option<RawFd>) -> Result<(i32, Option<OwnedFd>)> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: (flags | libc::CLONE_PIDFD) as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    let mut r = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>()) };
    if r < 0 && cgroup_fd.is_some() && sys::errno() != libc::ENOSYS {
        // CLONE_INTO_CGROUP refused: retry plain; the child writes cgroup.procs.
        args.flags &= !(CLONE_INTO_CGROUP);
        args.cgroup = 0;
        r = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>()) };
    }
    if r < 0 && sys::errno() == libc::ENOSYS {
        r = unsafe { libc::syscall(libc::SYS_clone, (flags | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize) };
        if r > 0 {
            pidfd = sys::pidfd_open(r as i32).map(|f| {
                let raw = f.as_raw_fd();
                std::mem::forget(f);
                raw
            })?;
        }
    }
    if r < 0 {
        return Err(Error::os("clone"));
    }
    if r == 0 {
        return Ok((0, None));
    }
    Ok((r as i32, Some(unsafe { OwnedFd::from_raw_fd(pidfd) })))
}

/// Fds the child needs.
struct ChildFds {
    stdio: Stdio,
    sync_w: RawFd,
    gate_r: Option<RawFd>,
    console: Option<RawFd>,
}

fn child_fail(sync_w: RawFd, e: &Error) -> ! {
    let mut msg = vec![b'E'];
    msg.extend_from_slice(&e.exit_code().to_le_bytes());
    let text = e.to_string();
    let text = &text.as_bytes()[..text.len().min(4000)];
    msg.extend_from_slice(text);
    let _ = sys::write_all(sync_w, &msg);
    unsafe { libc::_exit(e.exit_code()) }
}

/// Create the container: cgroup, then one clone with the namespaces; the
/// child sets everything up and execs `spec.args`.
pub fn spawn(spec: &Spec, opts: Options) -> Result<Process> {
    let mut prep = prepare(spec)?;
    let mut cg = None;
    let mut cgroup_dir_fd = None;
    if let Some(c) = &spec.cgroup {
        let layout = Layout::detect()?;
        let g = Cgroup::create(&c.path, &c.resources, &layout)?;
        cgroup_dir_fd = g.v2_dir_fd();
        if cgroup_dir_fd.is_none() {
            prep.cgroup_fds = g.procs_fds()?;
        } else {
            // Also keep the procs fds: used when CLONE_INTO_CGROUP is refused.
            prep.cgroup_fds = g.procs_fds()?;
        }
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
            Some(p) => joins.push((f, sys::open(&sys::cpath(p)?, libc::O_RDONLY, 0)?)),
            None if f == libc::CLONE_NEWNET && opts.net_ready => {}
            None if f != libc::CLONE_NEWCGROUP => flags |= f,
            None => {}
        }
    }
    // Joining a pid namespace only affects children: do it here, undo after the clone.
    let mut restore_pid = None;
    if let Some((_, fd)) = joins.iter().find(|(f, _)| *f == libc::CLONE_NEWPID) {
        restore_pid = Some(sys::open(c"/proc/self/ns/pid", libc::O_RDONLY, 0)?);
        sys::check(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID) }, || "join pid namespace".into())?;
    }
    let cl = clone(flags, cgroup_dir);
    if let Some(fd) = restore_pid {
        unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID) };
    }
    let (pid, pidfd) = cl?;
    if pid == 0 {
        let fds = ChildFds {
            stdio: opts.stdio,
            sync_w: sync_w.as_raw_fd(),
            gate_r: gate.as_ref().map(|(r, _)| r.as_raw_fd()),
            console: console.as_ref().map(|(_, c)| c.as_raw_fd()),
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| init_child(spec, prep, &fds, &joins, cgroup_dir.is_some(), opts.net_ready)));
        let e = match r {
            Ok(Err(e)) => e,
            Ok(Ok(())) => Error::Invalid("init returned".into()),
            Err(_) => Error::Invalid("panic in container init".into()),
        };
        child_fail(fds.sync_w, &e);
    }
    finish_parent(pid, pidfd.unwrap(), sync_r, sync_w, gate, console)
}

fn finish_parent(
    pid: i32,
    pidfd: OwnedFd,
    sync_r: OwnedFd,
    sync_w: OwnedFd,
    gate: Option<(OwnedFd, OwnedFd)>,
    console: Option<(OwnedFd, OwnedFd)>,
) -> Result<Process> {
    drop(sync_w);
    let gate_w = gate.map(|(r, w)| {
        drop(r);
        w
    });
    let mut pty_master = None;
    if let Some((mine, theirs)) = console {
        drop(theirs);
        pty_master = sys::recv_fd(mine.as_raw_fd())?;
    }
    let msg = read_msg(sync_r.as_raw_fd());
    let msg = match msg {
        Ok(m) => m,
        Err(e) => {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            reap(pid);
            return Err(e);
        }
    };
    match msg {
        Msg::Exec => Ok(Process { pid, pidfd, pty_master, cgroup: None, gate: None, sync: None }),
        Msg::Ready => Ok(Process { pid, pidfd, pty_master, cgroup: None, gate: gate_w, sync: Some(sync_r) }),
        Msg::Err(e) => {
            reap(pid);
            Err(e)
        }
    }
}

/// A new network namespace starts with `lo` down; Docker containers have it up.
fn loopback_up() -> Result<()> {
    unsafe {
        let fd = sys::owned(libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0), || "socket".into())?;
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        sys::check(libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req), || "get lo flags".into())?;
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        sys::check(libc::ioctl(fd.as_raw_fd(), libc::SIOCSIFFLAGS, &req), || "bring lo up".into())?;
    }
    Ok(())
}

fn reset_signals() {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for s in 1..libc::SIGRTMAX() {
            if s != libc::SIGKILL && s != libc::SIGSTOP {
                libc::signal(s, libc::SIG_DFL);
            }
        }
    }
}

fn stdio_dup(io: &Stdio) -> Result<()> {
    // Move out of the way first: the source fds may be 0..2 themselves.
    let hi: Vec<RawFd> = [io.stdin, io.stdout, io.stderr]
        .iter()
        .map(|fd| sys::check(unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10) }, || format!("dup fd {fd}")))
        .collect::<Result<_>>()?;
    for (i, fd) in hi.iter().enumerate() {
        sys::check(unsafe { libc::dup2(*fd, i as RawFd) }, || "dup2 stdio".into())?;
        unsafe { libc::close(*fd) };
    }
    Ok(())
}

fn init_child(spec: &Spec, prep: &Prepared, fds: &ChildFds, joins: &[(libc::c_int, OwnedFd)], born_in_cgroup: bool, net_ready: bool) -> Result<()> {
    reset_signals();
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    // cgroup first, then its namespace (so the container's cgroup is the ns root).
    if !born_in_cgroup {
        for fd in &prep.cgroup_fds {
            sys::write_all(fd.as_raw_fd(), b"0").map_err(|e| Error::Invalid(format!("join cgroup: {e}")))?;
        }
    }
    for (f, fd) in joins {
        if *f != libc::CLONE_NEWPID {
            sys::check(unsafe { libc::setns(fd.as_raw_fd(), *f) }, || format!("join {} namespace", ns::proc_name(*f)))?;
        }
    }
    if spec.namespaces.iter().any(|n| n.kind == "cgroup" && n.path.is_none()) {
        sys::check(unsafe { libc::unshare(libc::CLONE_NEWCGROUP) }, || "unshare cgroup namespace".into())?;
    }
    if !net_ready && spec.namespaces.iter().any(|n| ns::flag(&n.kind) == libc::CLONE_NEWNET && n.path.is_none()) {
        loopback_up()?;
    }
    if let Some(adj) = spec.oom_score_adj {
        sys::write_file("/proc/self/oom_score_adj", &adj.to_string())?;
    }
    for (res, lim) in &prep.rlimits {
        sys::check(unsafe { libc::setrlimit(*res, lim) }, || format!("setrlimit {res}"))?;
    }
    unsafe { libc::setsid() };
    if !spec.terminal {
        stdio_dup(&fds.stdio)?;
    }
    let new_mnt = spec.namespaces.iter().any(|n| ns::flag(&n.kind) == libc::CLONE_NEWNS);
    let rootfs = sys::cpath(&spec.rootfs)?;
    unsafe { libc::umask(0) };
    if new_mnt {
        sys::mount(None, c"/", None, libc::MS_SLAVE | libc::MS_REC, None).map_err(|e| Error::errno("make / rslave", e))?;
        sys::mount(Some(&rootfs), &rootfs, None, libc::MS_BIND | libc::MS_REC, None)
            .map_err(|e| Error::errno(format!("bind rootfs {}", spec.rootfs.display()), e))?;
        let root = sys::open(&rootfs, libc::O_PATH | libc::O_DIRECTORY, 0)?;
        for m in &spec.mounts {
            mounts::mount_one(root.as_raw_fd(), m, prep.layout.as_ref())?;
        }
        if !spec.cwd.is_empty() && spec.cwd != "/" {
            let _ = mounts::mkdir_all_in_root(root.as_raw_fd(), &spec.cwd, mounts::Kind::Dir);
        }
        mounts::pivot(root.as_raw_fd())?;
    } else {
        sys::check(unsafe { libc::chroot(rootfs.as_ptr()) }, || "chroot".into())?;
        sys::check(unsafe { libc::chdir(c"/".as_ptr()) }, || "chdir /".into())?;
    }
    for (k, v) in &spec.sysctl {
        if k.contains("..") || k.contains('/') {
            return Err(Error::Invalid(format!("invalid sysctl {k:?}")));
        }
        sys::write_file(&format!("/proc/sys/{}", k.replace('.', "/")), v)?;
    }
    if new_mnt {
        for p in &spec.readonly_paths {
            mounts::readonly_path(p)?;
        }
        for p in &spec.masked_paths {
            mounts::mask_path(p)?;
        }
        if spec.readonly_rootfs {
            sys::mount(None, c"/", None, libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY, None)
                .map_err(|e| Error::errno("remount rootfs read-only", e))?;
        }
    }
    if spec.has_ns("uts") {
        if !spec.hostname.is_empty() {
            let h = spec.hostname.as_bytes();
            sys::check(unsafe { libc::sethostname(h.as_ptr() as *const libc::c_char, h.len()) }, || "sethostname".into())?;
        }
        if !spec.domainname.is_empty() {
            let h = spec.domainname.as_bytes();
            sys::check(unsafe { libc::setdomainname(h.as_ptr() as *const libc::c_char, h.len()) }, || "setdomainname".into())?;
        }
    }
    finalize(spec, prep, fds)
}

/// PID 1 for `--init`: forward signals to the command, reap every child, and
/// exit with the command's status (128 + signal when it was killed).
pub fn init_reaper(child: libc::pid_t) -> ! {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for s in [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGABRT, libc::SIGTRAP, libc::SIGSYS] {
            libc::sigdelset(&mut set, s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let ts = libc::timespec { tv_sec: 1, tv_nsec: 0 };
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigtimedwait(&set, &mut info, &ts);
            if sig > 0 && sig != libc::SIGCHLD {
                libc::kill(child, sig);
            }
            loop {
                let mut st = 0;
                let r = libc::waitpid(-1, &mut st, libc::WNOHANG);
                if r <= 0 {
                    break;
                }
                if r == child {
                    let code = if libc::WIFEXITED(st) { libc::WEXITSTATUS(st) } else { 128 + libc::WTERMSIG(st) };
                    libc::_exit(code);
                }
            }
        }
    }
}

/// Shared tail of init and exec: stdio/pty, user, caps, cwd, lookup, seccomp, execve.
fn finalize(spec: &Spec, prep: &Prepared, fds: &ChildFds) -> Result<()> {
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
    sys::check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) }, || "setgroups".into())?;
    sys::check(unsafe { libc::setresgid(u.gid, u.gid, u.gid) }, || format!("setgid {}", u.gid))?;
    sys::check(unsafe { libc::setresuid(u.uid, u.uid, u.uid) }, || format!("setuid {}", u.uid))?;
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    if let Some(c) = &prep.caps {
        caps::apply(c)?;
    }
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    let ccwd = cstr(cwd)?;
    sys::check(unsafe { libc::chdir(ccwd.as_ptr()) }, || format!("chdir to cwd (\"{cwd}\") set in config.json failed"))?;
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
            unsafe { libc::close(fds.sync_w) };
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

fn is_executable(path: &CString) -> std::result::Result<(), i32> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::stat(path.as_ptr(), &mut st) } < 0 {
        return Err(sys::errno());
    }
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        // Go's LookPath (and so runc) calls a directory "permission denied".
        return Err(libc::EACCES);
    }
    if st.st_mode & 0o111 == 0 {
        return Err(libc::EACCES);
    }
    Ok(())
}

/// Go's exec.LookPath, with Docker's messages and exit codes.
pub fn lookup(name: &str, path: &str) -> Result<CString> {
    if name.contains('/') {
        let c = cstr(name)?;
        return match is_executable(&c) {
            Ok(()) => Ok(c),
            Err(libc::ENOENT) | Err(libc::ENOTDIR) => {
                Err(Error::Exec { msg: format!("exec: \"{name}\": stat {name}: no such file or directory"), code: 127 })
            }
            Err(libc::EACCES) => Err(Error::Exec { msg: format!("exec: \"{name}\": permission denied"), code: 126 }),
            Err(e) => Err(Error::Exec { msg: format!("exec: \"{name}\": {}", crate::error::strerror(e)), code: 126 }),
        };
    }
    if !name.is_empty() {
        for dir in path.split(':') {
            let dir = if dir.is_empty() { "." } else { dir };
            let cand = cstr(&format!("{dir}/{name}"))?;
            if is_executable(&cand).is_ok() {
                return Ok(cand);
            }
        }
    }
    Err(Error::Exec { msg: format!("exec: \"{name}\": executable file not found in $PATH"), code: 127 })
}

fn setup_console(spec: &Spec, sock: RawFd) -> Result<()> {
    let master = sys::open(c"/dev/pts/ptmx", libc::O_RDWR | libc::O_NOCTTY, 0)
        .or_else(|_| sys::open(c"/dev/ptmx", libc::O_RDWR | libc::O_NOCTTY, 0))?;
    let zero: libc::c_int = 0;
    sys::check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &zero) }, || "unlockpt".into())?;
    let slave = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    let slave = sys::owned(slave, || "open pty peer".into())?;
    if let Some((rows, cols)) = spec.console_size {
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    if spec.user.uid != 0 {
        unsafe { libc::fchown(slave.as_raw_fd(), spec.user.uid, u32::MAX) };
    }
    // /dev/console -> the pty (runc does the same), when /dev is ours.
    if let Ok(c) = sys::open(c"/dev/console", libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW, 0o600) {
        drop(c);
        let _ = sys::mount(Some(&sys::fd_path(&slave)), c"/dev/console", None, libc::MS_BIND, None);
    }
    sys::send_fd(sock, master.as_raw_fd())?;
    drop(master);
    sys::check(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) }, || "set controlling terminal".into())?;
    for i in 0..3 {
        sys::check(unsafe { libc::dup2(slave.as_raw_fd(), i) }, || "dup2 pty".into())?;
    }
    Ok(())
}

/// Run `spec.args` inside the running container whose init is `pid`: join its
/// cgroup and namespaces (mount last), then the same user/caps/cwd/seccomp/exec
/// tail as init. Uses `spec`'s args, env, cwd, user, capabilities, rlimits,
/// terminal; ignores rootfs, mounts and namespaces.
///
/// Joining the pid namespace happens in the caller for the duration of the clone.
pub fn exec_in(pid: i32, spec: &Spec, opts: Options) -> Result<Process> {
    let mut prep = prepare(spec)?;
    let target_pidfd = sys::pidfd_open(pid)?;
    let layout = Layout::detect()?;
    for d in cgroup::of_pid(pid, &layout)? {
        if let Ok(fd) = sys::open(&sys::cpath(&d.join("cgroup.procs"))?, libc::O_WRONLY, 0) {
            prep.cgroup_fds.push(fd);
        }
    }
    let mut joins = Vec::new();
    for f in ns::JOIN_ORDER {
        let name = ns::proc_name(f);
        let theirs = format!("/proc/{pid}/ns/{name}");
        let mine = format!("/proc/self/ns/{name}");
        let (Ok(a), Ok(b)) = (std::fs::metadata(&theirs), std::fs::metadata(&mine)) else { continue };
        use std::os::unix::fs::MetadataExt;
        if a.ino() == b.ino() && a.dev() == b.dev() {
            continue;
        }
        joins.push((f, sys::open(&cstr(&theirs)?, libc::O_RDONLY, 0)?));
    }
    let (sync_r, sync_w) = sys::pipe()?;
    let gate = if opts.wait_start { Some(sys::pipe()?) } else { None };
    let console = if spec.terminal { Some(sys::socketpair()?) } else { None };
    let mut restore_pid = None;
    if let Some((_, fd)) = joins.iter().find(|(f, _)| *f == libc::CLONE_NEWPID) {
        restore_pid = Some(sys::open(c"/proc/self/ns/pid", libc::O_RDONLY, 0)?);
        sys::check(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID) }, || "join pid namespace".into())?;
    }
    let cl = clone(0, None);
    if let Some(fd) = restore_pid {
        unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID) };
    }
    let (cpid, pidfd) = cl?;
    if cpid == 0 {
        let fds = ChildFds {
            stdio: opts.stdio,
            sync_w: sync_w.as_raw_fd(),
            gate_r: gate.as_ref().map(|(r, _)| r.as_raw_fd()),
            console: console.as_ref().map(|(_, c)| c.as_raw_fd()),
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<()> {
            reset_signals();
            if !spec.terminal {
                stdio_dup(&fds.stdio)?;
            }
            for fd in &prep.cgroup_fds {
                let _ = sys::write_all(fd.as_raw_fd(), b"0");
            }
            for (f, fd) in &joins {
                if *f != libc::CLONE_NEWPID {
                    sys::check(unsafe { libc::setns(fd.as_raw_fd(), *f) }, || format!("join {} namespace", ns::proc_name(*f)))?;
                }
            }
            drop(target_pidfd);
            if let Some(adj) = spec.oom_score_adj {
                let _ = sys::write_file("/proc/self/oom_score_adj", &adj.to_string());
            }
            for (res, lim) in &prep.rlimits {
                sys::check(unsafe { libc::setrlimit(*res, lim) }, || format!("setrlimit {res}"))?;
            }
            unsafe { libc::setsid() };
            finalize(spec, &prep, &fds)
        }));
        let e = match r {
            Ok(Err(e)) => e,
            Ok(Ok(())) => Error::Invalid("exec returned".into()),
            Err(_) => Error::Invalid("panic in exec setup".into()),
        };
        child_fail(fds.sync_w, &e);
    }
    finish_parent(cpid, pidfd.unwrap(), sync_r, sync_w, gate, console)
}
