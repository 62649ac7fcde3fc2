//! The end of the supervised process: reaping it (its exit code, or 128 +
//! the signal that killed it), exit.json (after runc's state is gone, so a
//! restart finds the id free), the cgroup's removal, and the exit frame to
//! attached clients.

use super::attach::frame;
use super::Shim;
use crate::child::Child;
use crate::{now_str, write_atomic};
use std::os::fd::AsRawFd;

impl Shim {
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

    pub(super) fn reap(&mut self) {
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

    pub(super) fn finish(&mut self) {
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
        // Tell attached clients, then let them read the rest of the output
        // (an exec's last megabytes, behind a slow network): as long as each
        // keeps taking bytes, given up only after 2 s without any progress.
        let f = frame(3, j.as_bytes());
        for c in self.clients.iter_mut() {
            if !c.closing {
                c.out.extend(f.iter());
            }
        }
        let stall = std::time::Duration::from_secs(2);
        let mut progress = std::time::Instant::now();
        loop {
            let mut pfds = Vec::new();
            for c in self.clients.iter_mut() {
                let before = c.out.len();
                Self::flush_client(c);
                if c.out.len() < before {
                    progress = std::time::Instant::now();
                }
                if !c.out.is_empty() {
                    pfds.push(libc::pollfd { fd: c.fd.as_raw_fd(), events: libc::POLLOUT, revents: 0 });
                }
            }
            if pfds.is_empty() || progress.elapsed() >= stall {
                break;
            }
            unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 100) };
        }
        for c in self.clients.drain(..) {
            unsafe { libc::shutdown(c.fd.as_raw_fd(), libc::SHUT_RDWR) };
        }
    }
}
