//! The container's stdio as the shim moves it: output goes to the json-file
//! log and to attached clients; what clients send goes to its stdin (a pipe,
//! or the pty master, where closing stdin is a ^D).

use super::Shim;
use dockyard_runtime::sys;
use std::os::fd::AsRawFd;

impl Shim {
    pub(super) fn read_stream(&mut self, which: usize) -> bool {
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

    pub(super) fn flush_stdin(&mut self) {
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
}
