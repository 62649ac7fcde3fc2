//! Docker's `journald` log driver: one datagram per message to the journal's
//! native socket, in systemd's native protocol as go-systemd's journal.Send
//! builds it: `PRIORITY=6` (stdout) or `3` (stderr), `MESSAGE=...`, then the
//! container's fields (CONTAINER_ID, CONTAINER_ID_FULL, CONTAINER_NAME,
//! CONTAINER_TAG, IMAGE_NAME, SYSLOG_IDENTIFIER, label/env attributes, the
//! daemon's choice), and CONTAINER_PARTIAL_* for partial messages. A value
//! holding a newline is sent as `NAME\n<u64 LE length><value>\n`.

use super::{Driver, Message};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub const SOCKET: &str = "/run/systemd/journal/socket";

pub struct Journald {
    sock: OwnedFd,
    addr: libc::sockaddr_un,
    fields: Vec<(String, String)>,
}

fn sockaddr(path: &str) -> Option<libc::sockaddr_un> {
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if path.len() >= a.sun_path.len() {
        return None;
    }
    for (d, s) in a.sun_path.iter_mut().zip(path.bytes()) {
        *d = s as libc::c_char;
    }
    Some(a)
}

/// `name=value\n`, or the binary-safe form when the value has a newline.
pub fn append_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// The datagram for `m` with the container's `fields`.
pub fn datagram(m: &Message, fields: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.line.len() + 512);
    append_field(&mut out, "PRIORITY", if m.source == "stderr" { b"3" } else { b"6" });
    append_field(&mut out, "MESSAGE", m.line);
    for (k, v) in fields {
        append_field(&mut out, k, v.as_bytes());
    }
    if let Some(p) = &m.partial {
        append_field(&mut out, "CONTAINER_PARTIAL_ID", p.id.as_bytes());
        append_field(&mut out, "CONTAINER_PARTIAL_ORDINAL", p.ordinal.to_string().as_bytes());
        append_field(&mut out, "CONTAINER_PARTIAL_LAST", if p.last { b"true" } else { b"false" });
        if !p.last {
            append_field(&mut out, "CONTAINER_PARTIAL_MESSAGE", b"true");
        }
    }
    out
}

impl Journald {
    /// Fails as dockerd does where no journal listens at `path`.
    pub fn open(path: &str, fields: Vec<(String, String)>) -> Result<Journald, String> {
        let not_enabled = || "journald is not enabled on this host".to_string();
        let addr = sockaddr(path).ok_or_else(not_enabled)?;
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        // go-systemd's journal.Enabled(): the socket must take a connection.
        let probe = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        let ok = probe >= 0
            && unsafe { libc::connect(probe, &addr as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_un>() as u32) } == 0;
        if probe >= 0 {
            unsafe { libc::close(probe) };
        }
        if !ok {
            return Err(not_enabled());
        }
        let tv = libc::timeval { tv_sec: 2, tv_usec: 0 };
        unsafe {
            libc::setsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDTIMEO, &tv as *const _ as *const libc::c_void, std::mem::size_of::<libc::timeval>() as u32)
        };
        Ok(Journald { sock, addr, fields })
    }
}

impl Driver for Journald {
    fn log(&mut self, m: &Message) {
        let d = datagram(m, &self.fields);
        // Blocking as go-systemd's send is, but a journal that stops reading
        // costs a message per timeout (see open), not the container's output.
        unsafe {
            libc::sendto(
                self.sock.as_raw_fd(),
                d.as_ptr() as *const libc::c_void,
                d.len(),
                libc::MSG_NOSIGNAL,
                &self.addr as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_un>() as u32,
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::super::Partial;
    use super::*;

    #[test]
    fn native_protocol() {
        let f = vec![("CONTAINER_ID".to_string(), "0123456789ab".to_string())];
        let m = Message { source: "stdout", line: b"hi", secs: 0, nanos: 0, partial: None };
        assert_eq!(datagram(&m, &f), b"PRIORITY=6\nMESSAGE=hi\nCONTAINER_ID=0123456789ab\n");
        let m = Message { source: "stderr", line: b"a\nb", secs: 0, nanos: 0, partial: Some(Partial { id: "p".into(), ordinal: 1, last: false }) };
        assert_eq!(
            datagram(&m, &[]),
            b"PRIORITY=3\nMESSAGE\n\x03\0\0\0\0\0\0\0a\nb\nCONTAINER_PARTIAL_ID=p\nCONTAINER_PARTIAL_ORDINAL=1\nCONTAINER_PARTIAL_LAST=false\nCONTAINER_PARTIAL_MESSAGE=true\n"
        );
    }

    #[test]
    fn refused_without_a_journal() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("nothing");
        assert_eq!(Journald::open(p.to_str().unwrap(), vec![]).err().unwrap(), "journald is not enabled on this host");
    }
}
