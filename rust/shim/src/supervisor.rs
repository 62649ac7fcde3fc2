//! The daemonized shim's state and its poll loop: the child's pidfd, its
//! stdout/stderr (pipes or the pty master), the attach socket and its
//! clients, and the container's stdin, until the child has exited and its
//! output is drained.
//!
//! `start` starts the child, `stdio` moves its output and input, `attach`
//! serves the attach socket, `exit` reaps and records the exit.

mod attach;
mod exit;
mod start;
mod stdio;

pub(crate) use attach::listen;

use crate::child::Child;
use crate::log;
use dockyard_runtime::sys;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// An attach connection: frames read but not yet whole, output not yet
/// written, and the streams it asked for (`mask`, as in the hello frame).
struct Client {
    fd: OwnedFd,
    inbuf: Vec<u8>,
    out: VecDeque<u8>,
    mask: u8,
    closing: bool,
}

/// A shim serving one started process.
pub struct Shim {
    state: PathBuf,
    child: Child,
    pid: i32,
    tty: bool,
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    stdin_buf: VecDeque<u8>,
    stdin_close: bool,
    log: Option<log::Logger>,
    listener: OwnedFd,
    clients: Vec<Client>,
    started_at: String,
    exited: Option<i32>,
    signal: Option<i32>,
    start_error: Option<String>,
}

impl Shim {
    pub fn run(&mut self) {
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
}
