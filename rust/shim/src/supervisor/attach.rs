//! The attach server on `<state-dir>/attach.sock`: the socket, the framing
//! (`[type:u8][len:u32 BE][payload]`, see the crate docs for the frame
//! types), client input (stdin data, close, resize, signal, start, hello, reopen log)
//! and output buffered per client, which a too slow reader loses.

use super::{Client, Shim};
use dockyard_runtime::sys;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub(super) fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
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
    pub(super) fn broadcast(&mut self, stream: u8, data: &[u8]) {
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
            6 => {
                let res = match self.log.as_mut().map(|l| l.reopen()) {
                    Some(Ok(())) => "{}".to_string(),
                    Some(Err(e)) => serde_json::json!({ "error": e }).to_string(),
                    None => r#"{"error":"the container keeps no log"}"#.to_string(),
                };
                let f = frame(6, res.as_bytes());
                self.clients[ci].out.extend(f.iter());
            }
            _ => {}
        }
    }

    pub(super) fn read_client(&mut self, ci: usize) {
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

    pub(super) fn flush_client(c: &mut Client) {
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

}
