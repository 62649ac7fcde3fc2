//! Shims started ahead of need: at most one idle `dockyard-shim idle` per
//! (shim binary, state-dir parent). Starting a container hands the idle shim
//! its argv over a pipe instead of exec'ing a new one (the exec, the dynamic
//! loading, the daemonizing fork and a process hop: about 2 ms), and a
//! background thread starts the next. An idle shim exits when its pipe closes:
//! `clear`, or this process ending.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

struct Idle {
    ctl: File,
    rep: File,
}

type Key = (String, String);

static POOL: Mutex<Option<HashMap<Key, Idle>>> = Mutex::new(None);
/// Bumped by `clear`: a refill begun before it drops the shim it made (a
/// closed engine must not be handed one after its close).
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Whether the next idle shim makes a network namespace ahead: the last
/// container started wanted a new one (`--network none`, or a daemon without
/// a bridge), or none has started yet. A container on a bridge joins the
/// namespace the daemon made for it, and a namespace made ahead would be made
/// and destroyed for nothing: a millisecond of kernel work on the start's
/// cores, and the kernel's clean-up after it.
static NET_AHEAD: AtomicBool = AtomicBool::new(true);

/// Say whether the container being started wants a network namespace of
/// its own; its successor on the idle shim prepares one or not alike.
pub fn expect_new_network(yes: bool) {
    NET_AHEAD.store(yes, Ordering::Relaxed);
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn start(shim: &str, key: &str) -> std::io::Result<Idle> {
    let (ctl_r, ctl_w) = pipe()?;
    let (rep_r, rep_w) = pipe()?;
    // The padding is where the request's argv is written over, for ps.
    let mut cmd = Command::new(shim);
    cmd.arg("idle").arg("--exec-root").arg(key);
    if !NET_AHEAD.load(Ordering::Relaxed) {
        cmd.arg("--no-netns");
    }
    cmd.arg(" ".repeat(2048))
        .stdin(Stdio::from(ctl_r))
        .stdout(Stdio::from(rep_w))
        .stderr(Stdio::null())
        .status()?;
    Ok(Idle { ctl: File::from(ctl_w), rep: File::from(rep_r) })
}

/// An idle shim taken from the pool, its request sent (`take`).
pub struct Taken {
    idle: Idle,
    shim: String,
    key: String,
}

/// Hand `argv` to the idle shim for (`shim`, `key`), if there is one; None
/// when none could take it (the caller starts one the usual way). With
/// `--await-spec` in `argv` it does what it can before the spec is there,
/// and goes on at `Taken::go`.
pub fn take(shim: &str, key: &str, argv: &[String]) -> Option<Taken> {
    let k = (shim.to_string(), key.to_string());
    let mut idle = POOL.lock().ok()?.as_mut()?.remove(&k)?;
    let mut req = serde_json::to_string(argv).ok()?;
    req.push('\n');
    if idle.ctl.write_all(req.as_bytes()).is_err() {
        refill(shim, key);
        return None; // it had gone (killed): nothing was started
    }
    Some(Taken { idle, shim: k.0, key: k.1 })
}

impl Taken {
    /// Let it go on (the spec is written, for `--await-spec`) and return its
    /// report line; its successor is started then.
    pub fn go(mut self) -> String {
        let _ = self.idle.ctl.write_all(b"go\n"); // gone already: its report says why
        self.finish()
    }

    fn finish(self) -> String {
        let Taken { idle: Idle { ctl, mut rep }, shim, key } = self;
        drop(ctl);
        let mut out = Vec::new();
        let mut b = [0u8; 512];
        while !out.contains(&b'\n') {
            match rep.read(&mut b) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        // The successor is made after the report: on two cores its exec would
        // compete with this container's start.
        refill(&shim, &key);
        let line = String::from_utf8_lossy(&out).trim().to_string();
        if line.is_empty() { r#"{"error":"shim died during start-up","exit_code":125}"#.to_string() } else { line }
    }

    /// Give the start up: the shim sees EOF before its go line and leaves
    /// without a trace. Its successor is started.
    pub fn abort(self) {
        refill(&self.shim, &self.key);
    }
}

/// Run `argv` on the idle shim for (`shim`, `key`), if there is one, and
/// start its successor. Returns the shim's report line; None when no idle
/// shim could take the request (the caller starts one the usual way).
pub fn run(shim: &str, key: &str, argv: &[String]) -> Option<String> {
    take(shim, key, argv).map(Taken::finish)
}

/// Start an idle shim for (`shim`, `key`) in the background unless one is there.
pub fn refill(shim: &str, key: &str) {
    let k = (shim.to_string(), key.to_string());
    let gen = GENERATION.load(Ordering::SeqCst);
    std::thread::spawn(move || {
        if POOL.lock().map(|p| p.as_ref().is_some_and(|m| m.contains_key(&k))).unwrap_or(true) {
            return;
        }
        // At nice 10 (this thread only; the spawned shim inherits it and goes
        // back to 0 when it takes a request): on two cores, making the next
        // shim must not slow the container starting or exiting now.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10) };
        if let Ok(idle) = start(&k.0, &k.1) {
            if let Ok(mut p) = POOL.lock() {
                // A racing refill may have won, or a clear come in between:
                // then this one is dropped and exits.
                if GENERATION.load(Ordering::SeqCst) == gen {
                    p.get_or_insert_with(HashMap::new).entry(k).or_insert(idle);
                }
            }
        }
    });
}

/// Let go of the idle shims for state dirs under the directory `root` (they exit).
pub fn clear(root: &str) {
    if let Ok(mut p) = POOL.lock() {
        GENERATION.fetch_add(1, Ordering::SeqCst);
        if let Some(m) = p.as_mut() {
            // Component-wise: /x/exec is not under /x/ex.
            m.retain(|(_, key), _| !std::path::Path::new(key).starts_with(root));
        }
    }
}
