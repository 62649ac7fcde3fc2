//! The shim's runc mode (`--runtime runc`): the container is made by runc from
//! the OCI bundle the daemon wrote, while the shim stays its supervisor.
//!
//! `runc create` sets the container up and parks its init before execve; the
//! shim, a child subreaper, adopts that init when `runc create` exits, so it
//! reaps the container's own status exactly as in native mode. `runc start`
//! (at once, or on the attach start frame with `--wait-start`) lets it exec.
//! Without a terminal the container's stdio are the shim's pipes (runc hands
//! its own stdio to a detached container); with one, runc allocates the pty in
//! the container's devpts and sends the master over `--console-socket`, as
//! the native driver does with its own socket. At exit the shim runs
//! `runc delete --force`, which removes runc's state and the cgroup.

use dockyard_runtime::{sys, Stdio};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::Command;

/// Where runc, its state and the bundle are.
pub struct Runc {
    pub bin: PathBuf,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub id: String,
}

/// A container runc created (parked before exec until [`Runc::start`]).
pub struct Created {
    /// The container's init, in the shim's pid namespace; the shim's child.
    pub pid: i32,
    pub pty_master: Option<OwnedFd>,
}

/// A runc failure: the message (Docker's "exec: ..." part when there is one)
/// and Docker's exit code for it (127 not found, 126 not executable, 128 other).
pub type Failure = (String, i32);

const LOG: &str = "runc.log";
const PID_FILE: &str = "runc.pid";
/// Relative to the bundle: runc changes into `--bundle` before dialling it, so
/// the name stays short whatever the state directory's length.
const CONSOLE_SOCKET: &str = "console.sock";

fn dup(fd: RawFd) -> std::io::Result<OwnedFd> {
    let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// Docker's exit code for a start failure, from the message.
pub fn exit_code(msg: &str) -> i32 {
    if msg.contains("executable file not found") || msg.contains("no such file or directory") {
        127
    } else if msg.contains("permission denied") {
        126
    } else {
        128
    }
}

impl Runc {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root).arg("--log").arg(std::env::current_dir().unwrap_or_default().join(LOG)).arg("--log-format").arg("json");
        c
    }

    /// The last error runc logged (without runc's own prefixes), or `fallback`.
    fn failure(&self, fallback: String) -> Failure {
        let text = std::fs::read_to_string(LOG).unwrap_or_default();
        let msg = text
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("level").and_then(|l| l.as_str()) == Some("error"))
            .find_map(|v| v.get("msg").and_then(|m| m.as_str()).map(str::to_string))
            .unwrap_or(fallback);
        let mut m = msg.as_str();
        for p in ["runc create failed: ", "runc start failed: ", "unable to start container process: "] {
            m = m.strip_prefix(p).unwrap_or(m);
        }
        (m.to_string(), exit_code(m))
    }

    /// `runc delete --force`: stops what is left and removes runc's state and cgroup.
    pub fn delete(&self) {
        let _ = self.cmd().arg("delete").arg("--force").arg(&self.id).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status();
    }

    /// `runc create`; the container's stdio are `stdio` (ignored with a terminal).
    pub fn create(&self, stdio: Stdio, terminal: bool) -> Result<Created, Failure> {
        let os = |what: &str, e: std::io::Error| (format!("{what}: {e}"), 125);
        // A shim killed earlier may have left a container of this name behind.
        if self.root.join(&self.id).exists() {
            self.delete();
        }
        let _ = std::fs::remove_file(LOG);
        let _ = std::fs::remove_file(PID_FILE);
        let mut c = self.cmd();
        c.arg("create").arg("--bundle").arg(&self.bundle).arg("--pid-file").arg(std::env::current_dir().unwrap_or_default().join(PID_FILE));
        let console = if terminal {
            // Bound by a path relative to the state dir (sun_path is short).
            let cwd = std::env::current_dir().unwrap_or_default();
            let path = self.bundle.strip_prefix(&cwd).unwrap_or(&self.bundle).join(CONSOLE_SOCKET);
            let l = crate::supervisor::listen(&path.to_string_lossy()).map_err(|e| os("console socket", e))?;
            c.arg("--console-socket").arg(CONSOLE_SOCKET);
            c.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
            Some((l, path))
        } else {
            let io = |fd| dup(fd).map(std::process::Stdio::from).map_err(|e| os("dup stdio", e));
            c.stdin(io(stdio.stdin)?).stdout(io(stdio.stdout)?).stderr(io(stdio.stderr)?);
            None
        };
        c.arg(&self.id);
        let mut child = c.spawn().map_err(|e| os(&format!("run {}", self.bin.display()), e))?;
        drop(c); // the stdio duplicates
        let mut master = None;
        if let Some((l, path)) = console {
            // Accept runc's connection while it runs; give up when it exits.
            loop {
                let fd = unsafe { libc::accept4(l.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
                if fd >= 0 {
                    let conn = unsafe { OwnedFd::from_raw_fd(fd) };
                    // The listener is non-blocking; the connection is not.
                    master = sys::recv_fd(conn.as_raw_fd()).ok().flatten();
                    break;
                }
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                let _ = sys::poll_in(l.as_raw_fd(), 20);
            }
            let _ = std::fs::remove_file(path);
        }
        let status = child.wait().map_err(|e| os("wait for runc create", e))?;
        if !status.success() {
            return Err(self.failure(format!("runc create failed ({status})")));
        }
        let pid = std::fs::read_to_string(PID_FILE).ok().and_then(|s| s.trim().parse::<i32>().ok()).unwrap_or(0);
        if pid <= 0 {
            self.delete();
            return Err(("runc create: no pid file".into(), 128));
        }
        if terminal && master.is_none() {
            self.delete();
            return Err(("runc create: no console from runc".into(), 128));
        }
        Ok(Created { pid, pty_master: master })
    }

    /// `runc start`: the parked init execs.
    pub fn start(&self) -> Result<(), Failure> {
        let _ = std::fs::remove_file(LOG);
        let st = self.cmd().arg("start").arg(&self.id).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status();
        match st {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(self.failure(format!("runc start failed ({s})"))),
            Err(e) => Err((format!("run {}: {e}", self.bin.display()), 128)),
        }
    }
}
